/* model_par: the network's ops cut into pool blocks. Each op packs its
 * arguments into a job, and a chunk function runs the op of layers.c,
 * attention.c on one block [begin, end) of it. The blocks depend on the
 * op's size and grain alone (model.h, pool.h), so the bits do not depend on
 * the thread count. OpenBLAS runs single-threaded inside each block. */
#include "model_par.h"

#include "layers.h"

/* ---- linear: rows for the forward and the input gradient, output rows for
 * the weight gradient (each block repacks the whole weight, or reads the
 * whole input, so the grains are about the smallest that keep OpenBLAS
 * efficient: model.h) ---- */

typedef struct {
    float *out, *dinp, *dweight, *dbias;
    const float *inp, *weight, *bias, *dout;
    size_t N, C, OC;
} linear_job;

static void linear_fwd_chunk(void *ctx, size_t w, size_t n0, size_t n1)
{
    (void)w;
    linear_job *j = ctx;
    linear_forward(j->out + n0 * j->OC, j->inp + n0 * j->C, j->weight, j->bias, n1 - n0, j->C,
                   j->OC);
}

static void linear_dinp_chunk(void *ctx, size_t w, size_t n0, size_t n1)
{
    (void)w;
    linear_job *j = ctx;
    linear_backward_input(j->dinp + n0 * j->C, j->dout + n0 * j->OC, j->weight, n1 - n0, j->C,
                          j->OC);
}

static void linear_dw_chunk(void *ctx, size_t w, size_t o0, size_t o1)
{
    (void)w;
    linear_job *j = ctx;
    linear_backward_weight(j->dweight, j->dbias, j->dout, j->inp, j->N, j->C, j->OC, o0, o1);
}

void model_par_linear_forward(pool *p, float *out, const float *inp, const float *weight,
                              const float *bias, size_t N, size_t C, size_t OC)
{
    linear_job j = {.out = out, .inp = inp, .weight = weight, .bias = bias, .N = N, .C = C,
                    .OC = OC};
    pool_run(p, linear_fwd_chunk, &j, N, MODEL_GRAIN_ROWS);
}

void model_par_linear_backward(pool *p, float *dinp, float *dweight, float *dbias,
                               const float *dout, const float *inp, const float *weight,
                               size_t N, size_t C, size_t OC)
{
    linear_job j = {.dinp = dinp, .dweight = dweight, .dbias = dbias, .dout = dout, .inp = inp,
                    .weight = weight, .N = N, .C = C, .OC = OC};
    if (dinp)
        pool_run(p, linear_dinp_chunk, &j, N, MODEL_GRAIN_ROWS);
    pool_run(p, linear_dw_chunk, &j, OC, MODEL_GRAIN_OUT_ROWS);
}

void model_par_linear_backward_input(pool *p, float *dinp, const float *dout,
                                     const float *weight, size_t N, size_t C, size_t OC)
{
    linear_job j = {.dinp = dinp, .dout = dout, .weight = weight, .N = N, .C = C, .OC = OC};
    pool_run(p, linear_dinp_chunk, &j, N, MODEL_GRAIN_ROWS);
}

/* ---- LayerNorm and GELU: rows, elements ---- */

typedef struct {
    float *out, *mean, *rstd;
    const float *inp, *weight, *bias;
    size_t C;
} ln_job;

static void ln_fwd_chunk(void *ctx, size_t w, size_t n0, size_t n1)
{
    (void)w;
    ln_job *j = ctx;
    layernorm_forward(j->out + n0 * j->C, j->mean + n0, j->rstd + n0, j->inp + n0 * j->C,
                      j->weight, j->bias, n1 - n0, j->C);
}

void model_par_layernorm_forward(pool *p, float *out, float *mean, float *rstd,
                                 const float *inp, const float *weight, const float *bias,
                                 size_t N, size_t C)
{
    ln_job j = {out, mean, rstd, inp, weight, bias, C};
    pool_run(p, ln_fwd_chunk, &j, N, MODEL_GRAIN_ROWS);
}

typedef struct {
    float *out;
    const float *inp, *dout;
} gelu_job;

static void gelu_fwd_chunk(void *ctx, size_t w, size_t i0, size_t i1)
{
    (void)w;
    gelu_job *j = ctx;
    gelu_forward(j->out + i0, j->inp + i0, i1 - i0);
}

static void gelu_bwd_chunk(void *ctx, size_t w, size_t i0, size_t i1)
{
    (void)w;
    gelu_job *j = ctx;
    gelu_backward(j->out + i0, j->inp + i0, j->dout + i0, i1 - i0);
}

void model_par_gelu_forward(pool *p, float *out, const float *inp, size_t n)
{
    gelu_job j = {.out = out, .inp = inp};
    pool_run(p, gelu_fwd_chunk, &j, n, MODEL_GRAIN_ELEMS);
}

void model_par_gelu_backward(pool *p, float *dinp, const float *inp, const float *dout,
                             size_t n)
{
    gelu_job j = {.out = dinp, .inp = inp, .dout = dout};
    pool_run(p, gelu_bwd_chunk, &j, n, MODEL_GRAIN_ELEMS);
}

/* ---- attention: (sequence, head) pairs i = b * H + h ---- */

typedef struct {
    const attn_config *ac;
    size_t layer;
    model_layer_acts *x;
    const model_layer_acts *cx;
    const float *gbias, *datty;
    float *dqkv, *dgq, *dgk, *dbias_pair;
    attn_scratch *w;
    metrics_state *metrics;
} attn_job;

static void attn_fwd_chunk(void *ctx, size_t w, size_t i0, size_t i1)
{
    attn_job *j = ctx;
    model_layer_acts *x = j->x;
    const size_t H = j->ac->H;
    for (size_t i = i0; i < i1; i++)
        attention_forward(j->ac, i / H, i % H, x->atty, x->lse, x->keep, x->stats, x->qkv,
                          x->gq, x->gk, j->gbias, &j->w[w], j->metrics, j->layer);
}

static void attn_bwd_chunk(void *ctx, size_t w, size_t i0, size_t i1)
{
    attn_job *j = ctx;
    const model_layer_acts *x = j->cx;
    const size_t H = j->ac->H;
    for (size_t i = i0; i < i1; i++)
        attention_backward(j->ac, i / H, i % H, j->dqkv, j->dgq, j->dgk, j->datty, x->lse,
                           x->keep, x->stats, x->qkv, x->gq, x->gk, j->gbias, &j->w[w],
                           &j->dbias_pair[i]);
}

void model_par_attention_forward(pool *p, const attn_config *ac, size_t B, size_t layer,
                                 model_layer_acts *x, const float *gbias, attn_scratch *w,
                                 metrics_state *metrics)
{
    attn_job j = {.ac = ac, .layer = layer, .x = x, .gbias = gbias, .w = w, .metrics = metrics};
    if (metrics)
        attn_fwd_chunk(&j, 0, 0, B * ac->H);
    else
        pool_run(p, attn_fwd_chunk, &j, B * ac->H, MODEL_GRAIN_PAIRS);
}

void model_par_attention_backward(pool *p, const attn_config *ac, size_t B,
                                  const model_layer_acts *x, const float *gbias, float *dqkv,
                                  float *dgq, float *dgk, const float *datty, attn_scratch *w,
                                  float *dbias_pair)
{
    attn_job j = {.ac = ac, .cx = x, .gbias = gbias, .datty = datty, .dqkv = dqkv, .dgq = dgq,
                  .dgk = dgk, .dbias_pair = dbias_pair, .w = w};
    pool_run(p, attn_bwd_chunk, &j, B * ac->H, MODEL_GRAIN_PAIRS);
}

/* ---- the loss: rows of the logits (V exponentials each) ---- */

typedef struct {
    double *row_loss;
    float *probs, *dlogits;
    const float *logits, *cprobs;
    const int32_t *targets;
    size_t V;
    float scale;
} ce_job;

static void ce_fwd_chunk(void *ctx, size_t w, size_t n0, size_t n1)
{
    (void)w;
    ce_job *j = ctx;
    for (size_t n = n0; n < n1; n++)
        j->row_loss[n] = crossentropy_forward(j->probs + n * j->V, j->logits + n * j->V,
                                              j->targets + n, 1, j->V);
}

static void ce_bwd_chunk(void *ctx, size_t w, size_t n0, size_t n1)
{
    (void)w;
    ce_job *j = ctx;
    crossentropy_backward(j->dlogits + n0 * j->V, j->cprobs + n0 * j->V, j->targets + n0,
                          n1 - n0, j->V, j->scale);
}

void model_par_crossentropy_forward(pool *p, double *row_loss, float *probs,
                                    const float *logits, const int32_t *targets, size_t N,
                                    size_t V)
{
    ce_job j = {.row_loss = row_loss, .probs = probs, .logits = logits, .targets = targets,
                .V = V};
    pool_run(p, ce_fwd_chunk, &j, N, MODEL_GRAIN_CE_ROWS);
}

void model_par_crossentropy_backward(pool *p, float *dlogits, const float *probs,
                                     const int32_t *targets, size_t N, size_t V, float scale)
{
    ce_job j = {.dlogits = dlogits, .cprobs = probs, .targets = targets, .V = V, .scale = scale};
    pool_run(p, ce_bwd_chunk, &j, N, MODEL_GRAIN_CE_ROWS);
}
