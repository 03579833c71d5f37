/* model_net: the network's forward and backward (DESIGN §2-3), block by
 * block, each block's forward beside its backward with the shapes above:
 *
 *   encoded = wte[tokens] + wpe                       (layers.c)
 *   per layer l:
 *     res2 = in + proj(attention(ln1(in)))            attention block
 *     res3 = res2 + ffn(ln2(res2))                    FFN block: dense or experts
 *   loss = crossentropy(lnf(res3) wte^T, targets)     head
 *
 * with in = encoded for layer 0 and the previous layer's res3 after. BT = B*T
 * token positions, d the width, F the FFN width, Hr = H*r the gate's width.
 * Forwards write their activations (model_tensors.c lays them out); backwards
 * add (+=) into the parameter gradients, and d_res carries the gradient of the
 * residual stream down the layers. A LayerNorm's output (m->ln) and the
 * embedding (m->encoded) are not kept: the backward recomputes them with the
 * forward's own calls on the same inputs, so with the same bits. Every op runs over the pool through
 * model_par.c, whose blocks do not depend on the thread count; whatever sums
 * across blocks (the loss, the gate bias) is written per item and added here
 * in index order, so the results are the same bits for any --threads. */
#include "model.h"

#include <string.h>

#include "layers.h"
#include "model_par.h"
#include "rng.h"

/* The seed of the stochastic masks varies per step (m->step_salt). */
static attn_config attn_config_of(const model *m)
{
    const model_config *c = &m->cfg;
    return (attn_config){.T = c->T, .C = c->d, .H = c->heads, .r = c->r, .k = c->k,
                         .temp = c->gate_temp, .mode = c->mode,
                         .stoch_seed = rng_derive(c->seed ^ 0x73746f63ULL, m->step_salt),
                         .b_base = m->row_base};
}

/* ---- the attention block: res2 = in + proj(attention(ln1(in))) ---- */

/* in [BT,d] -> ln1 [BT,d] (m->ln; mean, rstd [BT] kept), qkv [BT,3d], gq, gk [BT,Hr]
 * (gated modes), lse, stats [B,H,T], keep [B,H,T,T/8] (attention.h: no
 * T x T tensor is kept), atty [BT,d], res2 [BT,d].
 * With m->metrics, the gate's agreement over this layer is accumulated. */
static void attn_block_forward(model *m, size_t l, const float *in, size_t B,
                               const attn_config *ac)
{
    const size_t BT = B * m->cfg.T, d = m->cfg.d, Hr = m->cfg.heads * m->cfg.r;
    const model_layer_params *p = &m->p.layer[l];
    model_layer_acts *x = &m->la[l];
    model_par_layernorm_forward(m->pool, m->ln, x->ln1_mean, x->ln1_rstd, in, p->ln1w, p->ln1b,
                                BT, d);
    model_par_linear_forward(m->pool, x->qkv, m->ln, p->qkvw, p->qkvb, BT, d, 3 * d);
    if (gate_mode_uses_gate(ac->mode)) {
        model_par_linear_forward(m->pool, x->gq, m->ln, p->gqw, NULL, BT, d, Hr);
        model_par_linear_forward(m->pool, x->gk, m->ln, p->gkw, NULL, BT, d, Hr);
    }
    model_par_attention_forward(m->pool, ac, B, l, x, p->gb, m->scratch_w, m->metrics);
    model_par_linear_forward(m->pool, x->res2, x->atty, p->projw, p->projb, BT, d, d);
    residual_forward(x->res2, x->res2, in, BT * d);
}

/* d_res [BT,d]: the gradient of res2 on entry, of in on return (the residual
 * passes it through, ln1's input gradient is added). Parameter grads +=,
 * the gate bias's in (b, h) pair order. Scratch: d_atty, d_qkv, d_gq, d_gk,
 * d_ln, ln (ln1 recomputed). */
static void attn_block_backward(model *m, size_t l, const float *in, size_t B,
                                const attn_config *ac)
{
    const size_t BT = B * m->cfg.T, d = m->cfg.d, H = m->cfg.heads, Hr = H * m->cfg.r;
    const model_layer_params *p = &m->p.layer[l], *g = &m->g.layer[l];
    const model_layer_acts *x = &m->la[l];
    memset(m->d_atty, 0, BT * d * sizeof(float));
    model_par_linear_backward(m->pool, m->d_atty, g->projw, g->projb, m->d_res, x->atty,
                              p->projw, BT, d, d);
    memset(m->d_qkv, 0, 3 * BT * d * sizeof(float));
    memset(m->d_gq, 0, BT * Hr * sizeof(float));
    memset(m->d_gk, 0, BT * Hr * sizeof(float));
    model_par_attention_backward(m->pool, ac, B, x, p->gb, m->d_qkv, m->d_gq, m->d_gk,
                                 m->d_atty, m->scratch_w, m->gb_pair);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            g->gb[h] += m->gb_pair[b * H + h];
    model_par_layernorm_forward(m->pool, m->ln, m->ln_mean, m->ln_rstd, in, p->ln1w, p->ln1b,
                                BT, d);
    memset(m->d_ln, 0, BT * d * sizeof(float));
    model_par_linear_backward(m->pool, m->d_ln, g->qkvw, g->qkvb, m->d_qkv, m->ln, p->qkvw, BT,
                              d, 3 * d);
    if (gate_mode_uses_gate(ac->mode)) {
        model_par_linear_backward(m->pool, m->d_ln, g->gqw, NULL, m->d_gq, m->ln, p->gqw, BT, d,
                                  Hr);
        model_par_linear_backward(m->pool, m->d_ln, g->gkw, NULL, m->d_gk, m->ln, p->gkw, BT, d,
                                  Hr);
    }
    layernorm_backward(m->d_res, g->ln1w, g->ln1b, m->d_ln, in, p->ln1w, x->ln1_mean,
                       x->ln1_rstd, BT, d);
}

/* ---- the dense FFN: y = proj(gelu(fc(ln2))) ---- */

/* ln2 [BT,d] (m->ln) -> fch [BT,F] (kept), res3 [BT,d] = y (the FFN block
 * adds the residual); fch_gelu [BT,F] is scratch, recomputed by the backward */
static void dense_ffn_forward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp;
    const model_layer_params *p = &m->p.layer[l];
    model_layer_acts *x = &m->la[l];
    model_par_linear_forward(m->pool, x->fch, m->ln, p->fcw, p->fcb, BT, d, F);
    model_par_gelu_forward(m->pool, m->fch_gelu, x->fch, BT * F);
    model_par_linear_forward(m->pool, x->res3, m->fch_gelu, p->fcprojw, p->fcprojb, BT, F, d);
}

/* d_res [BT,d] (gradient of y), ln2 (m->ln, recomputed) -> d_ln [BT,d]
 * (gradient of ln2, written), weight grads +=. Scratch: fch_gelu
 * (recomputed), then d_fch [BT,F] in its floats once the weight gradient has
 * read them. */
static void dense_ffn_backward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp;
    const model_layer_params *p = &m->p.layer[l], *g = &m->g.layer[l];
    const model_layer_acts *x = &m->la[l];
    model_par_gelu_forward(m->pool, m->fch_gelu, x->fch, BT * F);
    model_par_linear_backward(m->pool, NULL, g->fcprojw, g->fcprojb, m->d_res, m->fch_gelu,
                              p->fcprojw, BT, F, d);
    memset(m->d_fch, 0, BT * F * sizeof(float));
    model_par_linear_backward_input(m->pool, m->d_fch, m->d_res, p->fcprojw, BT, F, d);
    model_par_gelu_backward(m->pool, m->d_fch, x->fch, m->d_fch, BT * F);
    memset(m->d_ln, 0, BT * d * sizeof(float));
    model_par_linear_backward(m->pool, m->d_ln, g->fcw, g->fcb, m->d_fch, m->ln, p->fcw, BT, d,
                              F);
}

/* ---- the mixture of experts: y = p(e*) * expert_e*(ln2), top-1 (moe.h) ---- */

/* ln2 [BT,d] (m->ln) -> router [BT,E] (probabilities), the routing, xg [BT,d] (ln2
 * in gathered, expert-grouped order), fch [BT,F] and yg [BT,d] (gathered),
 * res3 [BT,d] = y; fch_gelu [BT,F] is scratch, recomputed by the backward.
 * Each expert's two linears run on its block of gathered rows, expert e's
 * weights at e times expert 0's size. Adds the layer's load-balancing loss
 * to m->aux_loss and its routing to the load counts. */
static void moe_ffn_forward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp, E = m->cfg.experts;
    const model_layer_params *p = &m->p.layer[l];
    model_layer_acts *x = &m->la[l];
    const int32_t *off = x->route.offset;
    model_par_linear_forward(m->pool, x->router, m->ln, p->routerw, NULL, BT, d, E);
    moe_route_forward(&x->route, x->router, BT, E);
    moe_gather_forward(x->xg, m->ln, &x->route, BT, d);
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        m->expert_tokens[l * E + e] += n;
        if (n)
            model_par_linear_forward(m->pool, x->fch + n0 * F, x->xg + n0 * d, p->fcw + e * F * d,
                                     p->fcb + e * F, n, d, F);
    }
    model_par_gelu_forward(m->pool, m->fch_gelu, x->fch, BT * F);
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        if (n)
            model_par_linear_forward(m->pool, x->yg + n0 * d, m->fch_gelu + n0 * F,
                                     p->fcprojw + e * d * F, p->fcprojb + e * d, n, F, d);
    }
    moe_combine_forward(x->res3, x->yg, x->router, &x->route, BT, d, E);
    m->aux_loss += moe_aux_forward(x->router, &x->route, BT, E, m->cfg.moe_aux);
}

/* d_res [BT,d] (gradient of y), ln2 (m->ln, recomputed) -> d_ln [BT,d]
 * (gradient of ln2, written), weight grads +=, with the load-balancing
 * term's gradient. Scratch: d_tmp holds the gathered output gradient, then
 * (once the experts' second linears have read it) the gathered input
 * gradient, d_router the router probability then logit gradient, fch_gelu
 * (recomputed), then d_fch in its floats, expert by expert once the weight
 * gradient has read that expert's rows. */
static void moe_ffn_backward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp, E = m->cfg.experts;
    const model_layer_params *p = &m->p.layer[l], *g = &m->g.layer[l];
    const model_layer_acts *x = &m->la[l];
    const int32_t *off = x->route.offset;
    float *d_yg = m->d_tmp, *d_xg = m->d_tmp;
    moe_combine_backward(d_yg, m->d_router, m->d_res, x->yg, x->router, &x->route, BT, d, E);
    moe_aux_backward(m->d_router, &x->route, BT, E,
                     m->grad_replicas > 1 ? m->cfg.moe_aux / (float)m->grad_replicas
                                          : m->cfg.moe_aux);
    moe_softmax_backward(m->d_router, m->d_router, x->router, BT, E);
    model_par_gelu_forward(m->pool, m->fch_gelu, x->fch, BT * F);
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        if (!n)
            continue;
        model_par_linear_backward(m->pool, NULL, g->fcprojw + e * d * F, g->fcprojb + e * d,
                                  d_yg + n0 * d, m->fch_gelu + n0 * F, p->fcprojw + e * d * F, n,
                                  F, d);
        memset(m->d_fch + n0 * F, 0, n * F * sizeof(float));
        model_par_linear_backward_input(m->pool, m->d_fch + n0 * F, d_yg + n0 * d,
                                        p->fcprojw + e * d * F, n, F, d);
    }
    model_par_gelu_backward(m->pool, m->d_fch, x->fch, m->d_fch, BT * F);
    memset(d_xg, 0, BT * d * sizeof(float));
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        if (n)
            model_par_linear_backward(m->pool, d_xg + n0 * d, g->fcw + e * F * d, g->fcb + e * F,
                                      m->d_fch + n0 * F, x->xg + n0 * d, p->fcw + e * F * d, n,
                                      d, F);
    }
    memset(m->d_ln, 0, BT * d * sizeof(float));
    moe_gather_backward(m->d_ln, d_xg, &x->route, BT, d);
    model_par_linear_backward(m->pool, m->d_ln, g->routerw, NULL, m->d_router, m->ln,
                              p->routerw, BT, d, E);
}

/* ---- the FFN block: res3 = res2 + ffn(ln2(res2)) ---- */

/* res2 [BT,d] -> ln2 [BT,d] (m->ln; mean, rstd [BT] kept), the FFN's
 * activations, res3 [BT,d] */
static void ffn_block_forward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d;
    const model_layer_params *p = &m->p.layer[l];
    model_layer_acts *x = &m->la[l];
    model_par_layernorm_forward(m->pool, m->ln, x->ln2_mean, x->ln2_rstd, x->res2, p->ln2w,
                                p->ln2b, BT, d);
    if (m->cfg.experts)
        moe_ffn_forward(m, l, BT);
    else
        dense_ffn_forward(m, l, BT);
    residual_forward(x->res3, x->res3, x->res2, BT * d);
}

/* d_res [BT,d]: the gradient of res3 on entry, of res2 on return (ln2's
 * input gradient is added). Parameter grads +=. Scratch: ln (ln2
 * recomputed) and the FFN's. */
static void ffn_block_backward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d;
    const model_layer_params *p = &m->p.layer[l], *g = &m->g.layer[l];
    const model_layer_acts *x = &m->la[l];
    model_par_layernorm_forward(m->pool, m->ln, m->ln_mean, m->ln_rstd, x->res2, p->ln2w,
                                p->ln2b, BT, d);
    if (m->cfg.experts)
        moe_ffn_backward(m, l, BT);
    else
        dense_ffn_backward(m, l, BT);
    layernorm_backward(m->d_res, g->ln2w, g->ln2b, m->d_ln, x->res2, p->ln2w, x->ln2_mean,
                       x->ln2_rstd, BT, d);
}

/* ---- the head: lnf, the LM head tied to wte, cross-entropy ---- */

/* last res3 [BT,d] -> lnf [BT,d] (m->ln; mean, rstd [BT] kept), logits, then
 * probs [BT,V] in their floats, row_loss [BT]; returns the summed loss, added
 * in row order */
static double head_forward(model *m, size_t BT)
{
    const size_t d = m->cfg.d, V = m->cfg.V;
    model_par_layernorm_forward(m->pool, m->ln, m->lnf_mean, m->lnf_rstd,
                                m->la[m->cfg.layers - 1].res3, m->p.lnfw, m->p.lnfb, BT, d);
    model_par_linear_forward(m->pool, m->logits, m->ln, m->p.wte, NULL, BT, d, V);
    model_par_crossentropy_forward(m->pool, m->row_loss, m->probs, m->logits, m->targets, BT, V);
    double total = 0.0;
    for (size_t i = 0; i < BT; i++)
        total += m->row_loss[i];
    return total;
}

/* the mean loss over m->cur_targets positions -> d_res [BT,d] the gradient
 * of the last res3 (written); wte (as the head), lnf grads +=. The logits'
 * gradient [BT,V] overwrites the probabilities, row by row in place.
 * Scratch: ln (lnf recomputed), d_tmp [BT,d]. */
static void head_backward(model *m, size_t BT)
{
    const size_t d = m->cfg.d, V = m->cfg.V;
    /* a --dp replica divides by the global batch's targets (dp.c) */
    const size_t count = m->grad_targets ? m->grad_targets : m->cur_targets;
    float *d_logits = m->logits;
    const float *last = m->la[m->cfg.layers - 1].res3;
    model_par_layernorm_forward(m->pool, m->ln, m->ln_mean, m->ln_rstd, last, m->p.lnfw,
                                m->p.lnfb, BT, d);
    model_par_crossentropy_backward(m->pool, d_logits, m->probs, m->targets, BT, V,
                                    count ? 1.0f / (float)count : 0.0f);
    memset(m->d_tmp, 0, BT * d * sizeof(float));
    model_par_linear_backward(m->pool, m->d_tmp, m->g.wte, NULL, d_logits, m->ln, m->p.wte,
                              BT, d, V);
    memset(m->d_res, 0, BT * d * sizeof(float));
    layernorm_backward(m->d_res, m->g.lnfw, m->g.lnfb, m->d_tmp, last, m->p.lnfw, m->lnf_mean,
                       m->lnf_rstd, BT, d);
}

/* ---- the network ---- */

double model_forward(model *m, const int32_t *inputs, const int32_t *targets, size_t B)
{
    const model_config *c = &m->cfg;
    GL_ASSERT(B >= 1 && B <= c->batch);
    const size_t T = c->T, BT = B * T;
    m->cur_B = B;
    memcpy(m->inputs, inputs, BT * sizeof(int32_t));
    memcpy(m->targets, targets, BT * sizeof(int32_t));
    m->aux_loss = 0.0;

    encoder_forward(m->encoded, m->inputs, m->p.wte, m->p.wpe, B, T, c->d);
    const attn_config ac = attn_config_of(m);
    for (size_t l = 0; l < c->layers; l++) {
        attn_block_forward(m, l, l == 0 ? m->encoded : m->la[l - 1].res3, B, &ac);
        ffn_block_forward(m, l, BT);
    }
    const double total = head_forward(m, BT);
    m->cur_targets = 0;
    for (size_t i = 0; i < BT; i++)
        m->cur_targets += m->targets[i] >= 0;
    return m->cur_targets ? total / (double)m->cur_targets : 0.0;
}

void model_backward(model *m)
{
    const model_config *c = &m->cfg;
    const size_t B = m->cur_B, BT = B * c->T;
    memset(m->grads, 0, m->num_params * sizeof(float));

    head_backward(m, BT);
    const attn_config ac = attn_config_of(m);
    for (size_t l = c->layers; l-- > 0;) {
        ffn_block_backward(m, l, BT);
        /* the embedding shares d_tmp, which the head and the experts wrote */
        if (l == 0)
            encoder_forward(m->encoded, m->inputs, m->p.wte, m->p.wpe, B, c->T, c->d);
        attn_block_backward(m, l, l == 0 ? m->encoded : m->la[l - 1].res3, B, &ac);
        if (m->on_layer_grads)
            m->on_layer_grads(m->on_layer_ctx, m, l);
    }
    encoder_backward(m->g.wte, m->g.wpe, m->d_res, m->inputs, B, c->T, c->d);
}

const float *model_layer_ln1(model *m, size_t l)
{
    const model_config *c = &m->cfg;
    const size_t B = m->cur_B, BT = B * c->T;
    GL_ASSERT(l < c->layers && B >= 1);
    if (l == 0)
        encoder_forward(m->encoded, m->inputs, m->p.wte, m->p.wpe, B, c->T, c->d);
    const model_layer_params *p = &m->p.layer[l];
    model_par_layernorm_forward(m->pool, m->ln, m->ln_mean, m->ln_rstd,
                                l == 0 ? m->encoded : m->la[l - 1].res3, p->ln1w, p->ln1b, BT,
                                c->d);
    return m->ln;
}
