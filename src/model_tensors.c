/* model_tensors: the model's parameter table and activation table, and
 * everything derived from them. A parameter row gives a tensor's name, shape,
 * initialisation and the model_params pointer it fills; walking the table in
 * order gives the checkpoint order, the flat offsets, the pointers and the
 * weights. An activation row gives an activation's name, shape, the layers
 * that have it and its buffer; walking it gives the buffer sizes and every
 * activation pointer. Adding a tensor or an activation is one row. */
#include "model_tensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* The dimensions shapes are written in. D_NONE ends a shape (a 1-D tensor
 * has cols D_NONE). */
enum { D_NONE, D_V, D_T, D_B, D_D, D_3D, D_F, D_H, D_HR, D_E };

static size_t dim_size(const model_config *c, int dim)
{
    switch (dim) {
    case D_V: return c->V;
    case D_T: return c->T;
    case D_B: return c->batch;
    case D_D: return c->d;
    case D_3D: return 3 * c->d;
    case D_F: return c->mlp;
    case D_H: return c->heads;
    case D_HR: return c->heads * c->r;
    case D_E: return c->experts;
    default: return 0;
    }
}

/* ---- parameters ---- */

/* Where a row sits: once (P_GLOBAL, a model_params pointer), once per layer
 * (P_LAYER), once per layer with experts only (P_ROUTER), or once per layer
 * as the dense FFN and E times with experts (P_FFN). The P_ROUTER and P_FFN
 * names go under "h.L.mlp."; an expert's under "h.L.mlp.experts.E.". */
enum { P_GLOBAL, P_LAYER, P_ROUTER, P_FFN };

/* GPT-2's init: LayerNorm weights 1, biases 0, matrices and embeddings
 * N(0, 0.02), the residual projections (attn.proj, mlp proj) scaled by
 * 1/sqrt(2 * layers). */
enum { INIT_NORMAL, INIT_RESIDUAL, INIT_ONES, INIT_ZEROS };

#define GLOBAL(f) offsetof(model_params, f)
#define LAYER(f) offsetof(model_layer_params, f)

/* The table, in checkpoint order: the global rows before the first layer
 * row, the block of layer rows once per layer, then the rest. With experts
 * each P_FFN row repeats E times in a row, so expert e's tensor sits at e
 * times expert 0's size from it (the pointer is expert 0's, model.h). */
static const struct param_row {
    const char *name;
    unsigned char scope, rows, cols, init, is_gate;
    size_t field;   /* offsetof the pointer in model_params or model_layer_params */
} param_table[] = {
    {"wte", P_GLOBAL, D_V, D_D, INIT_NORMAL, 0, GLOBAL(wte)},
    {"wpe", P_GLOBAL, D_T, D_D, INIT_NORMAL, 0, GLOBAL(wpe)},
    {"ln1.weight", P_LAYER, D_D, D_NONE, INIT_ONES, 0, LAYER(ln1w)},
    {"ln1.bias", P_LAYER, D_D, D_NONE, INIT_ZEROS, 0, LAYER(ln1b)},
    {"attn.qkv.weight", P_LAYER, D_3D, D_D, INIT_NORMAL, 0, LAYER(qkvw)},
    {"attn.qkv.bias", P_LAYER, D_3D, D_NONE, INIT_ZEROS, 0, LAYER(qkvb)},
    {"attn.proj.weight", P_LAYER, D_D, D_D, INIT_RESIDUAL, 0, LAYER(projw)},
    {"attn.proj.bias", P_LAYER, D_D, D_NONE, INIT_ZEROS, 0, LAYER(projb)},
    {"ln2.weight", P_LAYER, D_D, D_NONE, INIT_ONES, 0, LAYER(ln2w)},
    {"ln2.bias", P_LAYER, D_D, D_NONE, INIT_ZEROS, 0, LAYER(ln2b)},
    {"router.weight", P_ROUTER, D_E, D_D, INIT_NORMAL, 0, LAYER(routerw)},
    {"fc.weight", P_FFN, D_F, D_D, INIT_NORMAL, 0, LAYER(fcw)},
    {"fc.bias", P_FFN, D_F, D_NONE, INIT_ZEROS, 0, LAYER(fcb)},
    {"proj.weight", P_FFN, D_D, D_F, INIT_RESIDUAL, 0, LAYER(fcprojw)},
    {"proj.bias", P_FFN, D_D, D_NONE, INIT_ZEROS, 0, LAYER(fcprojb)},
    {"gate.q.weight", P_LAYER, D_HR, D_D, INIT_NORMAL, 1, LAYER(gqw)},
    {"gate.k.weight", P_LAYER, D_HR, D_D, INIT_NORMAL, 1, LAYER(gkw)},
    {"gate.bias", P_LAYER, D_H, D_NONE, INIT_ZEROS, 1, LAYER(gb)},
    {"lnf.weight", P_GLOBAL, D_D, D_NONE, INIT_ONES, 0, GLOBAL(lnfw)},
    {"lnf.bias", P_GLOBAL, D_D, D_NONE, INIT_ZEROS, 0, GLOBAL(lnfb)},
};
#define PARAM_ROWS (sizeof param_table / sizeof param_table[0])

/* Appends tensor `row` (of layer, expert; -1 when none) at *offset. t may be
 * NULL to count only. */
static void add_tensor(const model_config *c, model_tensor *t, size_t *count, size_t *offset,
                       size_t row, int layer, int expert)
{
    const struct param_row *s = &param_table[row];
    const size_t rows = dim_size(c, s->rows), cols = dim_size(c, s->cols);
    const size_t numel = s->cols == D_NONE ? rows : rows * cols;
    if (t) {
        model_tensor *x = &t[*count];
        int len;
        if (s->scope == P_GLOBAL)
            len = snprintf(x->name, sizeof x->name, "%s", s->name);
        else if (s->scope == P_LAYER)
            len = snprintf(x->name, sizeof x->name, "h.%d.%s", layer, s->name);
        else if (expert < 0)
            len = snprintf(x->name, sizeof x->name, "h.%d.mlp.%s", layer, s->name);
        else
            len = snprintf(x->name, sizeof x->name, "h.%d.mlp.experts.%d.%s", layer, expert,
                           s->name);
        /* layers and experts are below 65: every name fits */
        GL_ASSERT(len >= 0 && (size_t)len < sizeof x->name);
        x->ndim = s->cols == D_NONE ? 1 : 2;
        x->shape[0] = rows;
        x->shape[1] = s->cols == D_NONE ? 0 : cols;
        x->numel = numel;
        x->offset = *offset;
        x->decay = x->ndim == 2;
        x->is_gate = s->is_gate;
        x->is_router = s->scope == P_ROUTER;
        x->layer = layer;
        x->expert = expert;
        x->row = (int)row;
    }
    (*count)++;
    *offset += numel;
}

/* Walks the table in checkpoint order; fills t (NULL: counts only) and
 * returns the number of tensors, *num_params their floats. */
static size_t param_walk(const model_config *c, model_tensor *t, size_t *num_params)
{
    size_t count = 0, offset = 0;
    const int E = (int)c->experts;
    for (size_t i = 0; i < PARAM_ROWS;) {
        if (param_table[i].scope == P_GLOBAL) {
            add_tensor(c, t, &count, &offset, i++, -1, -1);
            continue;
        }
        size_t end = i;
        while (end < PARAM_ROWS && param_table[end].scope != P_GLOBAL)
            end++;
        for (int l = 0; l < (int)c->layers; l++)
            for (size_t j = i; j < end; j++) {
                const int scope = param_table[j].scope;
                if (scope == P_ROUTER && !E)
                    continue;
                if (scope == P_FFN && E)
                    for (int e = 0; e < E; e++)
                        add_tensor(c, t, &count, &offset, j, l, e);
                else
                    add_tensor(c, t, &count, &offset, j, l, -1);
            }
        i = end;
    }
    *num_params = offset;
    return count;
}

/* Points each row's pointer (expert 0's for an expert's) into base, the
 * parameter or the gradient buffer. */
static void point_params(const model *m, float *base, model_params *p)
{
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        const struct param_row *s = &param_table[t->row];
        if (t->expert > 0)
            continue;
        char *owner = s->scope == P_GLOBAL ? (char *)p : (char *)&p->layer[t->layer];
        *(float **)(owner + s->field) = base + t->offset;
    }
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Each tensor has its own stream keyed by its name, so arms whose shapes
 * agree start from the same weights whatever else differs. */
static void init_tensor(float *w, const model_tensor *t, uint64_t seed, size_t layers)
{
    const int init = param_table[t->row].init;
    if (init == INIT_ONES) {
        for (size_t i = 0; i < t->numel; i++)
            w[i] = 1.0f;
        return;
    }
    if (init == INIT_ZEROS) {
        memset(w, 0, t->numel * sizeof(float));
        return;
    }
    float std = 0.02f;
    if (init == INIT_RESIDUAL)
        std /= sqrtf(2.0f * (float)layers);
    rng_state r;
    rng_seed(&r, rng_derive(seed, name_hash(t->name)));
    for (size_t i = 0; i < t->numel; i++)
        w[i] = std * rng_normal(&r);
}

void model_tensors_init(model *m)
{
    const model_config *c = &m->cfg;
    m->ntensors = param_walk(c, NULL, &m->num_params);
    m->tensors = xcalloc(m->ntensors, sizeof *m->tensors);
    param_walk(c, m->tensors, &m->num_params);
    m->params = xcalloc(m->num_params, sizeof(float));
    m->grads = xcalloc(m->num_params, sizeof(float));
    m->p.layer = xcalloc(c->layers, sizeof *m->p.layer);
    m->g.layer = xcalloc(c->layers, sizeof *m->g.layer);
    point_params(m, m->params, &m->p);
    point_params(m, m->grads, &m->g);

    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        uint64_t seed = t->is_gate ? rng_derive(c->seed, MODEL_GATE_STREAM) : c->seed;
        init_tensor(m->params + t->offset, t, seed, c->layers);
    }
    if (gate_mode_is_random(c->mode))
        model_draw_random_gate(m, rng_derive(c->seed, MODEL_RANDOM_GATE_STREAM));
}

void model_draw_random_gate(model *m, uint64_t seed)
{
    for (size_t i = 0; i < m->ntensors; i++)
        if (m->tensors[i].is_gate)
            init_tensor(m->params + m->tensors[i].offset, &m->tensors[i], seed, m->cfg.layers);
}

size_t model_count_params(const model_config *cfg)
{
    size_t n;
    param_walk(cfg, NULL, &n);
    return n;
}

const model_tensor *model_find_tensor(const model *m, const char *name)
{
    for (size_t i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* ---- activations ---- */

/* Which layers have a row: none, it is the model's (A_MODEL, a pointer in
 * model), every layer (A_LAYER, a pointer in model_layer_acts), or every
 * layer of a model with experts (A_EXPERTS; NULL without). */
enum { A_MODEL, A_LAYER, A_EXPERTS };
/* The buffers: activations kept from forward for backward (m->acts), and the
 * scratch, reused layer by layer (m->scratch). The scratch ends in a region
 * two groups of rows share, since no layer needs both at once: the FFN's
 * (gelu(fch), then d_fch) and the attention backward's (d_qkv, d_gq, d_gk,
 * d_atty); it is as long as the longer group. */
enum { BUF_ACTS, BUF_SCRATCH, BUF_SHARED_FFN, BUF_SHARED_ATTN };

#define MODEL(f) offsetof(model, f)
#define LACT(f) offsetof(model_layer_acts, f)

/* The table, in buffer order, laid out as the parameters are: the model's
 * rows before the first layer row, the block of layer rows once per layer,
 * then the rest. A shape is the product of its dims; BT = B*T rows are the
 * batch's token positions, grouped by sequence. With experts, fch, fch_gelu
 * (one layer's, in the scratch), xg and yg hold their rows in gathered (expert-grouped) order. The two
 * typed activations, the soft top-k row statistics (gate_row_stats
 * [L,B,H,T]), the hard masks (bits, [L,B,H,T,attn_keep_bytes(T)]) and the
 * routing (int32 [L, 3BT+E+1]), are laid out after the table by
 * model_acts_init. Attention keeps no T x T tensor: lse, the log-sum-exp of
 * each row, is what its backward recomputes the probabilities from.
 * Kept per layer is only what the backward cannot recompute without a
 * matrix product: a LayerNorm's output is recomputed from its input (the
 * previous res3, res2), and the embedding from the tokens, in the scratch. */
static const struct act_row {
    const char *name;
    unsigned char scope, buf;
    unsigned char shape[4];
    size_t field;   /* offsetof the pointer in model or model_layer_acts */
} act_table[] = {
    {"ln1_mean", A_LAYER, BUF_ACTS, {D_B, D_T}, LACT(ln1_mean)},
    {"ln1_rstd", A_LAYER, BUF_ACTS, {D_B, D_T}, LACT(ln1_rstd)},
    {"qkv", A_LAYER, BUF_ACTS, {D_B, D_T, D_3D}, LACT(qkv)},
    {"gq", A_LAYER, BUF_ACTS, {D_B, D_T, D_HR}, LACT(gq)},
    {"gk", A_LAYER, BUF_ACTS, {D_B, D_T, D_HR}, LACT(gk)},
    {"lse", A_LAYER, BUF_ACTS, {D_B, D_H, D_T}, LACT(lse)},
    {"atty", A_LAYER, BUF_ACTS, {D_B, D_T, D_D}, LACT(atty)},
    {"res2", A_LAYER, BUF_ACTS, {D_B, D_T, D_D}, LACT(res2)},
    {"ln2_mean", A_LAYER, BUF_ACTS, {D_B, D_T}, LACT(ln2_mean)},
    {"ln2_rstd", A_LAYER, BUF_ACTS, {D_B, D_T}, LACT(ln2_rstd)},
    {"fch", A_LAYER, BUF_ACTS, {D_B, D_T, D_F}, LACT(fch)},
    {"res3", A_LAYER, BUF_ACTS, {D_B, D_T, D_D}, LACT(res3)},
    {"router", A_EXPERTS, BUF_ACTS, {D_B, D_T, D_E}, LACT(router)},
    {"xg", A_EXPERTS, BUF_ACTS, {D_B, D_T, D_D}, LACT(xg)},
    {"yg", A_EXPERTS, BUF_ACTS, {D_B, D_T, D_D}, LACT(yg)},
    {"lnf_mean", A_MODEL, BUF_ACTS, {D_B, D_T}, MODEL(lnf_mean)},
    {"lnf_rstd", A_MODEL, BUF_ACTS, {D_B, D_T}, MODEL(lnf_rstd)},
    {"logits", A_MODEL, BUF_ACTS, {D_B, D_T, D_V}, MODEL(logits)},
    {"d_res", A_MODEL, BUF_SCRATCH, {D_B, D_T, D_D}, MODEL(d_res)},
    {"d_tmp", A_MODEL, BUF_SCRATCH, {D_B, D_T, D_D}, MODEL(d_tmp)},
    {"d_ln", A_MODEL, BUF_SCRATCH, {D_B, D_T, D_D}, MODEL(d_ln)},
    {"ln", A_MODEL, BUF_SCRATCH, {D_B, D_T, D_D}, MODEL(ln)},
    {"ln_mean", A_MODEL, BUF_SCRATCH, {D_B, D_T}, MODEL(ln_mean)},
    {"ln_rstd", A_MODEL, BUF_SCRATCH, {D_B, D_T}, MODEL(ln_rstd)},
    {"d_router", A_MODEL, BUF_SCRATCH, {D_B, D_T, D_E}, MODEL(d_router)},
    {"fch_gelu", A_MODEL, BUF_SHARED_FFN, {D_B, D_T, D_F}, MODEL(fch_gelu)},
    {"d_qkv", A_MODEL, BUF_SHARED_ATTN, {D_B, D_T, D_3D}, MODEL(d_qkv)},
    {"d_gq", A_MODEL, BUF_SHARED_ATTN, {D_B, D_T, D_HR}, MODEL(d_gq)},
    {"d_gk", A_MODEL, BUF_SHARED_ATTN, {D_B, D_T, D_HR}, MODEL(d_gk)},
    {"d_atty", A_MODEL, BUF_SHARED_ATTN, {D_B, D_T, D_D}, MODEL(d_atty)},
};
#define ACT_ROWS (sizeof act_table / sizeof act_table[0])

static size_t act_numel(const model_config *c, const struct act_row *a)
{
    size_t n = 1;
    for (size_t i = 0; i < sizeof a->shape && a->shape[i] != D_NONE; i++)
        n *= dim_size(c, a->shape[i]);
    return n;
}

/* Lays buffer buf out in table order and returns its floats; with m, also
 * points each row's pointer (in m, or in each m->la[l]) at base + offset. */
static size_t act_layout(const model_config *c, int buf, model *m, float *base)
{
    size_t at = 0;
    for (size_t i = 0; i < ACT_ROWS;) {
        size_t end = i + 1;
        if (act_table[i].scope != A_MODEL)
            while (end < ACT_ROWS && act_table[end].scope != A_MODEL)
                end++;
        const size_t copies = act_table[i].scope == A_MODEL ? 1 : c->layers;
        for (size_t l = 0; l < copies; l++)
            for (size_t j = i; j < end; j++) {
                const struct act_row *a = &act_table[j];
                if (a->buf != buf || (a->scope == A_EXPERTS && !c->experts))
                    continue;
                if (m) {
                    char *owner = a->scope == A_MODEL ? (char *)m : (char *)&m->la[l];
                    *(float **)(owner + a->field) = base + at;
                }
                at += act_numel(c, a);
            }
        i = end;
    }
    return at;
}

size_t model_acts_floats(const model_config *c)
{
    return act_layout(c, BUF_ACTS, NULL, NULL);
}

size_t model_scratch_floats(const model_config *c)
{
    const size_t ffn = act_layout(c, BUF_SHARED_FFN, NULL, NULL);
    const size_t attn = act_layout(c, BUF_SHARED_ATTN, NULL, NULL);
    return act_layout(c, BUF_SCRATCH, NULL, NULL) + (ffn > attn ? ffn : attn);
}

void model_acts_init(model *m)
{
    const model_config *c = &m->cfg;
    const size_t B = c->batch, T = c->T, L = c->layers, H = c->heads, E = c->experts;
    const size_t BT = B * T;
    m->la = xcalloc(L, sizeof *m->la);
    m->num_acts = model_acts_floats(c);
    m->acts = xcalloc(m->num_acts, sizeof(float));
    act_layout(c, BUF_ACTS, m, m->acts);
    m->num_scratch = model_scratch_floats(c);
    m->scratch = xcalloc(m->num_scratch, sizeof(float));
    float *shared = m->scratch + act_layout(c, BUF_SCRATCH, m, m->scratch);
    act_layout(c, BUF_SHARED_FFN, m, shared);
    act_layout(c, BUF_SHARED_ATTN, m, shared);
    m->d_fch = m->fch_gelu;
    m->encoded = m->d_tmp;
    m->probs = m->logits;

    m->row_stats = xcalloc(L * B * H * T, sizeof *m->row_stats);
    for (size_t l = 0; l < L; l++)
        m->la[l].stats = m->row_stats + l * B * H * T;
    const size_t kb = attn_keep_bytes(T);
    m->keep_bits = xcalloc(L * B * H * T * kb, 1);
    for (size_t l = 0; l < L; l++)
        m->la[l].keep = m->keep_bits + l * B * H * T * kb;
    if (E) {
        const size_t per = 3 * BT + E + 1;
        m->routes = xcalloc(L * per, sizeof *m->routes);
        for (size_t l = 0; l < L; l++) {
            moe_route *r = &m->la[l].route;
            r->expert = m->routes + l * per;
            r->perm = r->expert + BT;
            r->pos = r->perm + BT;
            r->offset = r->pos + BT;
        }
    }
    m->inputs = xcalloc(BT, sizeof(int32_t));
    m->targets = xcalloc(BT, sizeof(int32_t));
}
