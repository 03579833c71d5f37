/* model: the gated GPT. Owns the tensor table, the flat parameter, gradient
 * and activation buffers, and the forward/backward passes that walk the layers
 * (layers.c, attention.c) with the work split over the model's thread pool.
 * OpenBLAS runs single-threaded inside each pool block. The blocks and every
 * summation order are fixed by the shapes alone, so the results are the same
 * bits for any thread count (pool.h). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "rng.h"
#include "runspec.h"

#define GATE_STREAM 0x67617465ULL   /* "gate": the learned gate's init stream */
#define RANDOM_GATE_STREAM 0x72616e64ULL   /* "rand": the frozen random gate */

int model_preset(const char *name, model_config *cfg)
{
    /* the preset values are rows of the run-spec table (runspec.c) */
    return runspec_preset(name, cfg);
}

int model_config_check(const model_config *c, gl_error *err)
{
    if (c->V < 2 || c->V > 1u << 20)
        return gl_fail(err, "--vocab %zu: must be between 2 and 1048576", c->V);
    if (c->T < 2 || c->T > 4096)
        return gl_fail(err, "--ctx %zu: must be between 2 and 4096", c->T);
    if (c->heads < 1 || c->heads > 64)
        return gl_fail(err, "--heads %zu: must be between 1 and 64", c->heads);
    if (c->d < 1 || c->d > 8192 || c->d % c->heads)
        return gl_fail(err, "--dim %zu: must be a positive multiple of --heads %zu (at most 8192)",
                       c->d, c->heads);
    if (c->layers < 1 || c->layers > 64)
        return gl_fail(err, "--layers %zu: must be between 1 and 64", c->layers);
    if (c->mlp < 1 || c->mlp > 65536)
        return gl_fail(err, "--mlp %zu: must be between 1 and 65536", c->mlp);
    if (c->r < 1 || c->r > 1024)
        return gl_fail(err, "--gate-rank %zu: must be between 1 and 1024", c->r);
    if (c->batch < 1 || c->batch > 4096)
        return gl_fail(err, "--batch %zu: must be between 1 and 4096", c->batch);
    if (c->k < 1 || c->k > c->T)
        return gl_fail(err, "--k %zu: must be between 1 and the context length %zu", c->k, c->T);
    if (!(c->gate_temp > 0.0f) || !isfinite(c->gate_temp))
        return gl_fail(err, "--gate-temp %g: must be a positive number", (double)c->gate_temp);
    if (c->experts == 1 || c->experts > 64)
        return gl_fail(err, "--experts %zu: must be 0 (a dense FFN) or between 2 and 64",
                       c->experts);
    if (!(c->moe_aux >= 0.0f && c->moe_aux <= 10.0f))
        return gl_fail(err, "--moe-aux %g: must be between 0 and 10", (double)c->moe_aux);
    return 0;
}

/* ---- tensor table ---- */

static void add_tensor(model_tensor *t, size_t *count, size_t *offset, const char *name,
                       int layer, size_t rows, size_t cols, int is_gate)
{
    model_tensor *x = &t[(*count)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = cols ? 2 : 1;
    x->shape[0] = rows;
    x->shape[1] = cols;
    x->numel = cols ? rows * cols : rows;
    x->offset = *offset;
    x->decay = cols != 0;
    x->is_gate = is_gate;
    x->layer = layer;
    *offset += x->numel;
}

/* The tensors of one layer, in table (and checkpoint) order. Kinds of size:
 * 0 none, 1 d, 2 3d, 3 mlp, 4 H*r, 5 H. With experts, the mlp.* entries
 * become mlp.router.weight followed by each entry once per expert, grouped by
 * entry, so that expert e's tensor sits at e times the first one's size. */
static const struct {
    const char *suffix;
    int rows_kind, cols_kind, gate, mlp;
} layer_spec[] = {
    {"ln1.weight", 1, 0, 0, 0},       {"ln1.bias", 1, 0, 0, 0},
    {"attn.qkv.weight", 2, 1, 0, 0},  {"attn.qkv.bias", 2, 0, 0, 0},
    {"attn.proj.weight", 1, 1, 0, 0}, {"attn.proj.bias", 1, 0, 0, 0},
    {"ln2.weight", 1, 0, 0, 0},       {"ln2.bias", 1, 0, 0, 0},
    {"fc.weight", 3, 1, 0, 1},        {"fc.bias", 3, 0, 0, 1},
    {"proj.weight", 1, 3, 0, 1},      {"proj.bias", 1, 0, 0, 1},
    {"gate.q.weight", 4, 1, 1, 0},    {"gate.k.weight", 4, 1, 1, 0},
    {"gate.bias", 5, 0, 1, 0},
};
#define LAYER_SPEC_COUNT (sizeof layer_spec / sizeof layer_spec[0])

/* One place defines every tensor: names, shapes and order (also the
 * checkpoint order). t may be NULL to count only. */
static size_t build_table(const model_config *c, model_tensor *t, size_t *num_params)
{
    model_tensor scratch;
    size_t count = 0, offset = 0;
    const size_t d = c->d, Hr = c->heads * c->r, E = c->experts;
    const size_t dims[6] = {0, d, 3 * d, c->mlp, Hr, c->heads};
    char name[MODEL_MAX_NAME];
    int len = 0;   /* layers and experts are below 65: every name fits */
    /* counting only: every tensor lands on the same scratch entry */
#define ADD(nm, layer, rows, cols, gate)                                                  \
    do {                                                                                  \
        size_t one = 0;                                                                   \
        GL_ASSERT(len >= 0 && (size_t)len < sizeof name);                                 \
        if (t)                                                                            \
            add_tensor(t, &count, &offset, nm, layer, rows, cols, gate);                  \
        else {                                                                            \
            add_tensor(&scratch, &one, &offset, nm, layer, rows, cols, gate);             \
            count++;                                                                      \
        }                                                                                 \
    } while (0)
    ADD("wte", -1, c->V, d, 0);
    ADD("wpe", -1, c->T, d, 0);
    for (size_t l = 0; l < c->layers; l++) {
        for (size_t i = 0; i < LAYER_SPEC_COUNT; i++) {
            const size_t rows = dims[layer_spec[i].rows_kind], cols = dims[layer_spec[i].cols_kind];
            if (!layer_spec[i].mlp) {
                len = snprintf(name, sizeof name, "h.%zu.%s", l, layer_spec[i].suffix);
                ADD(name, (int)l, rows, cols, layer_spec[i].gate);
            } else if (!E) {
                len = snprintf(name, sizeof name, "h.%zu.mlp.%s", l, layer_spec[i].suffix);
                ADD(name, (int)l, rows, cols, 0);
            } else {
                if (i == 0 || !layer_spec[i - 1].mlp) {
                    len = snprintf(name, sizeof name, "h.%zu.mlp.router.weight", l);
                    ADD(name, (int)l, E, d, 0);
                    if (t)
                        t[count - 1].is_router = 1;
                }
                for (size_t e = 0; e < E; e++) {
                    len = snprintf(name, sizeof name, "h.%zu.mlp.experts.%zu.%s", l, e,
                                   layer_spec[i].suffix);
                    ADD(name, (int)l, rows, cols, 0);
                }
            }
        }
    }
    ADD("lnf.weight", -1, d, 0, 0);
    ADD("lnf.bias", -1, d, 0, 0);
#undef ADD
    *num_params = offset;
    return count;
}

size_t model_count_params(const model_config *cfg)
{
    size_t n;
    build_table(cfg, NULL, &n);
    return n;
}

double model_flops_per_token(const model_config *c)
{
    /* weights used in matmuls: everything but wpe, the norms and biases; the
     * tied wte is used once, by the head */
    double d = (double)c->d, L = (double)c->layers, T = (double)c->T;
    double per_layer = 3 * d * d + d * d + 2 * d * (double)c->mlp;
    double gate = 2 * d * (double)(c->heads * c->r);
    /* one expert per token: the FFN costs what a dense one does, plus the router */
    double router = d * (double)c->experts;
    double matmul = L * (per_layer + gate + router) + (double)c->V * d;
    /* QK^T and PV: 2 * d * T each per query (full T x T products, as computed),
     * plus the gate scores 2 * H * r * T */
    double attn = L * (2.0 * 2.0 * d * T + 2.0 * (double)(c->heads * c->r) * T);
    return 2.0 * matmul + attn;
}

static void point_params(const model *m, float *base, model_params *p)
{
    const model_tensor *t = m->tensors;
    const size_t E = m->cfg.experts;
    size_t i = 0;
    p->wte = base + t[i++].offset;
    p->wpe = base + t[i++].offset;
    for (size_t l = 0; l < m->cfg.layers; l++) {
        model_layer_params *lp = &p->layer[l];
        float **slots[LAYER_SPEC_COUNT] = {
            &lp->ln1w, &lp->ln1b, &lp->qkvw, &lp->qkvb, &lp->projw, &lp->projb,
            &lp->ln2w, &lp->ln2b, &lp->fcw,  &lp->fcb,  &lp->fcprojw, &lp->fcprojb,
            &lp->gqw,  &lp->gkw,  &lp->gb};
        lp->routerw = NULL;
        for (size_t s = 0; s < LAYER_SPEC_COUNT; s++) {
            if (layer_spec[s].mlp && E && !layer_spec[s - 1].mlp) {
                GL_ASSERT(t[i].is_router);
                lp->routerw = base + t[i++].offset;
            }
            *slots[s] = base + t[i].offset;
            i += layer_spec[s].mlp && E ? E : 1;
        }
    }
    p->lnfw = base + t[i++].offset;
    p->lnfb = base + t[i++].offset;
    GL_ASSERT(i == m->ntensors);
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
    const char *n = t->name;
    size_t len = strlen(n);
    int is_bias = len > 4 && strcmp(n + len - 4, "bias") == 0;
    int is_norm = strstr(n, "ln") != NULL;
    if (is_norm && !is_bias) {
        for (size_t i = 0; i < t->numel; i++)
            w[i] = 1.0f;
        return;
    }
    if (is_bias) {
        memset(w, 0, t->numel * sizeof(float));
        return;
    }
    float std = 0.02f;
    /* GPT-2: residual projections scaled by 1/sqrt(2 * layers) */
    if (len > 11 && strcmp(n + len - 11, "proj.weight") == 0)
        std /= sqrtf(2.0f * (float)layers);
    rng_state r;
    rng_seed(&r, rng_derive(seed, name_hash(n)));
    for (size_t i = 0; i < t->numel; i++)
        w[i] = std * rng_normal(&r);
}

void model_draw_random_gate(model *m, uint64_t seed)
{
    for (size_t i = 0; i < m->ntensors; i++)
        if (m->tensors[i].is_gate)
            init_tensor(m->params + m->tensors[i].offset, &m->tensors[i], seed, m->cfg.layers);
}

void model_set_mode(model *m, gate_mode mode)
{
    m->cfg.mode = mode;
}

void model_swap_mode(model *m, gate_mode mode)
{
    if (gate_mode_is_random(mode) && !gate_mode_is_random(m->cfg.mode))
        model_draw_random_gate(m, rng_derive(m->cfg.seed, RANDOM_GATE_STREAM));
    m->cfg.mode = mode;
}

int model_gate_trains(const model *m)
{
    return gate_mode_trains_gate(m->cfg.mode) && !m->cfg.gate_frozen;
}

int model_router_trains(const model *m)
{
    return m->cfg.experts && !m->cfg.router_frozen;
}

void model_reset_expert_load(model *m)
{
    if (m->expert_tokens)
        memset(m->expert_tokens, 0, m->cfg.layers * m->cfg.experts * sizeof *m->expert_tokens);
}

double model_expert_balance(const model *m)
{
    const size_t E = m->cfg.experts, L = m->cfg.layers;
    if (!E)
        return NAN;
    double sum = 0.0;
    for (size_t l = 0; l < L; l++) {
        const uint64_t *c = m->expert_tokens + l * E;
        double total = 0.0, sq = 0.0;
        for (size_t e = 0; e < E; e++)
            total += (double)c[e];
        if (total == 0.0)
            return NAN;
        for (size_t e = 0; e < E; e++)
            sq += ((double)c[e] / total) * ((double)c[e] / total);
        sum += (double)E * sq;
    }
    return sum / (double)L;
}

/* ---- allocation ---- */

/* Floats of the activation buffer and of the backward scratch: one formula
 * for model_init's carving and for model_memory_bytes. */
static size_t acts_floats(const model_config *c)
{
    const size_t B = c->batch, T = c->T, d = c->d, L = c->layers, H = c->heads;
    const size_t Hr = H * c->r, F = c->mlp, V = c->V, BT = B * T, E = c->experts;
    size_t per_layer = 3 * BT * d /* ln1, atty, res2 */ + 2 * BT * d /* ln2, res3 */ +
                       4 * BT /* means, rstds */ + 3 * BT * d /* qkv */ + 2 * BT * Hr +
                       2 * B * H * T * T /* s, att */ + 2 * BT * F +
                       (E ? BT * E + 2 * BT * d : 0) /* router, xg, yg */;
    return BT * d /* encoded */ + L * per_layer + BT * d + 2 * BT + 2 * BT * V;
}

static size_t scratch_floats(const model_config *c)
{
    const size_t BT = c->batch * c->T, d = c->d, Hr = c->heads * c->r;
    return 4 * BT * d + 3 * BT * d /* d_qkv */ + 2 * BT * Hr + BT * c->mlp + BT * c->V +
           BT * c->experts;
}

double model_memory_bytes(const model_config *c, size_t threads)
{
    /* params, grads, Adam m and v; activations, backward scratch, row stats
     * (a float and an index per row and head), each worker's T x T scratch */
    const double rows = (double)(c->layers * c->batch * c->heads * c->T);
    return 4.0 * (4.0 * (double)model_count_params(c) + (double)acts_floats(c) +
                  (double)scratch_floats(c) + 2.0 * rows +
                  2.0 * (double)threads * (double)(c->T * c->T));
}

int model_init(model *m, const model_config *cfg, size_t threads, gl_error *err)
{
    memset(m, 0, sizeof *m);
    if (model_config_check(cfg, err))
        return -1;
    m->cfg = *cfg;
    const size_t B = cfg->batch, T = cfg->T, d = cfg->d, L = cfg->layers, H = cfg->heads;
    const size_t Hr = H * cfg->r, F = cfg->mlp, V = cfg->V, BT = B * T, E = cfg->experts;

    m->ntensors = build_table(cfg, NULL, &m->num_params);
    m->tensors = xcalloc(m->ntensors, sizeof *m->tensors);
    build_table(cfg, m->tensors, &m->num_params);
    m->params = xcalloc(m->num_params, sizeof(float));
    m->grads = xcalloc(m->num_params, sizeof(float));
    m->p.layer = xcalloc(L, sizeof *m->p.layer);
    m->g.layer = xcalloc(L, sizeof *m->g.layer);
    point_params(m, m->params, &m->p);
    point_params(m, m->grads, &m->g);

    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        uint64_t seed = t->is_gate ? rng_derive(cfg->seed, GATE_STREAM) : cfg->seed;
        init_tensor(m->params + t->offset, t, seed, L);
    }
    if (gate_mode_is_random(cfg->mode))
        model_draw_random_gate(m, rng_derive(cfg->seed, RANDOM_GATE_STREAM));

    /* activations: one flat buffer carved in a fixed order */
    m->num_acts = acts_floats(cfg);
    m->acts = xcalloc(m->num_acts, sizeof(float));
    m->row_stats = xcalloc(L * B * H * T, sizeof *m->row_stats);
    float *a = m->acts;
#define CARVE(ptr, n) do { (ptr) = a; a += (n); } while (0)
    CARVE(m->encoded, BT * d);
    m->la = xcalloc(L, sizeof *m->la);
    for (size_t l = 0; l < L; l++) {
        model_layer_acts *x = &m->la[l];
        CARVE(x->ln1, BT * d);
        CARVE(x->ln1_mean, BT);
        CARVE(x->ln1_rstd, BT);
        CARVE(x->qkv, 3 * BT * d);
        CARVE(x->gq, BT * Hr);
        CARVE(x->gk, BT * Hr);
        CARVE(x->s, B * H * T * T);
        x->stats = m->row_stats + l * B * H * T;
        CARVE(x->att, B * H * T * T);
        CARVE(x->atty, BT * d);
        CARVE(x->res2, BT * d);
        CARVE(x->ln2, BT * d);
        CARVE(x->ln2_mean, BT);
        CARVE(x->ln2_rstd, BT);
        CARVE(x->fch, BT * F);
        CARVE(x->fch_gelu, BT * F);
        CARVE(x->res3, BT * d);
        if (E) {
            CARVE(x->router, BT * E);
            CARVE(x->xg, BT * d);
            CARVE(x->yg, BT * d);
        }
    }
    CARVE(m->lnf, BT * d);
    CARVE(m->lnf_mean, BT);
    CARVE(m->lnf_rstd, BT);
    CARVE(m->logits, BT * V);
    CARVE(m->probs, BT * V);
    GL_ASSERT((size_t)(a - m->acts) == m->num_acts);

    size_t scratch = scratch_floats(cfg);
    m->scratch = xcalloc(scratch, sizeof(float));
    a = m->scratch;
    CARVE(m->d_res, BT * d);
    CARVE(m->d_tmp, BT * d);
    CARVE(m->d_ln, BT * d);
    CARVE(m->d_atty, BT * d);
    CARVE(m->d_qkv, 3 * BT * d);
    CARVE(m->d_gq, BT * Hr);
    CARVE(m->d_gk, BT * Hr);
    CARVE(m->d_fch, BT * F);
    CARVE(m->d_logits, BT * V);
    CARVE(m->d_router, BT * E);
    GL_ASSERT((size_t)(a - m->scratch) == scratch);
#undef CARVE
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
        m->expert_tokens = xcalloc(L * E, sizeof *m->expert_tokens);
    }
    m->inputs = xcalloc(BT, sizeof(int32_t));
    m->targets = xcalloc(BT, sizeof(int32_t));

    m->pool = pool_create(threads ? threads : 1);
    if (!m->pool) {
        model_free(m);
        return gl_fail(err, "cannot start %zu worker threads", threads);
    }
    size_t nw = pool_threads(m->pool);
    m->scratch_w = xcalloc(nw, sizeof *m->scratch_w);
    for (size_t i = 0; i < nw; i++)
        attn_scratch_init(&m->scratch_w[i], T);
    m->row_loss = xcalloc(BT, sizeof(double));
    m->gb_pair = xcalloc(B * H, sizeof(float));
    return 0;
}

void model_free(model *m)
{
    if (m->scratch_w)
        for (size_t i = 0; i < pool_threads(m->pool); i++)
            attn_scratch_free(&m->scratch_w[i]);
    pool_destroy(m->pool);
    free(m->scratch_w);
    free(m->row_loss);
    free(m->gb_pair);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->p.layer);
    free(m->g.layer);
    free(m->acts);
    free(m->row_stats);
    free(m->la);
    free(m->scratch);
    free(m->routes);
    free(m->expert_tokens);
    free(m->inputs);
    free(m->targets);
    memset(m, 0, sizeof *m);
}

const model_tensor *model_find_tensor(const model *m, const char *name)
{
    for (size_t i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* ---- parallel wrappers: rows (or output rows) split over the pool ----
 * Each pool_run is cut by its grain (model.h) alone, never by the thread
 * count: the same GEMM shapes, so the same bits, with any --threads. */

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

static void par_linear_forward(model *m, float *out, const float *inp, const float *weight,
                               const float *bias, size_t N, size_t C, size_t OC)
{
    linear_job j = {.out = out, .inp = inp, .weight = weight, .bias = bias, .N = N, .C = C,
                    .OC = OC};
    pool_run(m->pool, linear_fwd_chunk, &j, N, MODEL_GRAIN_ROWS);
}

/* dinp (+=) may be NULL when the input gradient is not needed */
static void par_linear_backward(model *m, float *dinp, float *dweight, float *dbias,
                                const float *dout, const float *inp, const float *weight,
                                size_t N, size_t C, size_t OC)
{
    linear_job j = {.dinp = dinp, .dweight = dweight, .dbias = dbias, .dout = dout, .inp = inp,
                    .weight = weight, .N = N, .C = C, .OC = OC};
    if (dinp)
        pool_run(m->pool, linear_dinp_chunk, &j, N, MODEL_GRAIN_ROWS);
    pool_run(m->pool, linear_dw_chunk, &j, OC, MODEL_GRAIN_OUT_ROWS);
}

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

static void par_layernorm_forward(model *m, float *out, float *mean, float *rstd,
                                  const float *inp, const float *weight, const float *bias,
                                  size_t N, size_t C)
{
    ln_job j = {out, mean, rstd, inp, weight, bias, C};
    pool_run(m->pool, ln_fwd_chunk, &j, N, MODEL_GRAIN_ROWS);
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

typedef struct {
    model *m;
    size_t layer;
    attn_config ac;
    int with_metrics;
} attn_job;

static void attn_fwd_chunk(void *ctx, size_t w, size_t i0, size_t i1)
{
    attn_job *j = ctx;
    model *m = j->m;
    model_layer_acts *x = &m->la[j->layer];
    const size_t H = m->cfg.heads;
    for (size_t i = i0; i < i1; i++)
        attention_forward(&j->ac, i / H, i % H, x->atty, x->att, x->s, x->stats, x->qkv,
                          x->gq, x->gk, m->p.layer[j->layer].gb, &m->scratch_w[w],
                          j->with_metrics ? m->metrics : NULL, j->layer);
}

static void attn_bwd_chunk(void *ctx, size_t w, size_t i0, size_t i1)
{
    attn_job *j = ctx;
    model *m = j->m;
    model_layer_acts *x = &m->la[j->layer];
    const size_t H = m->cfg.heads;
    for (size_t i = i0; i < i1; i++)
        attention_backward(&j->ac, i / H, i % H, m->d_qkv, m->d_gq, m->d_gk, m->d_atty, x->att,
                           x->s, x->stats, x->qkv, x->gq, x->gk, &m->scratch_w[w],
                           &m->gb_pair[i]);
}

typedef struct {
    model *m;
    size_t V;
    float scale;
} head_job;

/* one loss per row, summed by the caller in row order (pool.h) */
static void ce_fwd_chunk(void *ctx, size_t w, size_t n0, size_t n1)
{
    (void)w;
    head_job *j = ctx;
    model *m = j->m;
    for (size_t n = n0; n < n1; n++)
        m->row_loss[n] = crossentropy_forward(m->probs + n * j->V, m->logits + n * j->V,
                                              m->targets + n, 1, j->V);
}

static void ce_bwd_chunk(void *ctx, size_t w, size_t n0, size_t n1)
{
    (void)w;
    head_job *j = ctx;
    model *m = j->m;
    crossentropy_backward(m->d_logits + n0 * j->V, m->probs + n0 * j->V, m->targets + n0,
                          n1 - n0, j->V, j->scale);
}

static attn_config attn_config_of(const model *m)
{
    const model_config *c = &m->cfg;
    return (attn_config){.T = c->T, .C = c->d, .H = c->heads, .r = c->r, .k = c->k,
                         .temp = c->gate_temp, .mode = c->mode,
                         .stoch_seed = rng_derive(c->seed ^ 0x73746f63ULL, m->step_salt)};
}

/* ---- the FFN: dense, or a mixture of experts ---- */

/* ln2 [BT,d] -> res3 [BT,d] = proj(gelu(fc(ln2))) (the residual is added by the caller) */
static void dense_ffn_forward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp;
    const model_layer_params *p = &m->p.layer[l];
    model_layer_acts *x = &m->la[l];
    par_linear_forward(m, x->fch, x->ln2, p->fcw, p->fcb, BT, d, F);
    gelu_job gj = {.out = x->fch_gelu, .inp = x->fch};
    pool_run(m->pool, gelu_fwd_chunk, &gj, BT * F, MODEL_GRAIN_ELEMS);
    par_linear_forward(m, x->res3, x->fch_gelu, p->fcprojw, p->fcprojb, BT, F, d);
}

/* d_res [BT,d] (gradient of res3) -> d_ln [BT,d] (gradient of ln2), weight grads += */
static void dense_ffn_backward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp;
    const model_layer_params *p = &m->p.layer[l], *g = &m->g.layer[l];
    const model_layer_acts *x = &m->la[l];
    memset(m->d_fch, 0, BT * F * sizeof(float));
    par_linear_backward(m, m->d_fch, g->fcprojw, g->fcprojb, m->d_res, x->fch_gelu, p->fcprojw,
                        BT, F, d);
    gelu_job gj = {.out = m->d_fch, .inp = x->fch, .dout = m->d_fch};
    pool_run(m->pool, gelu_bwd_chunk, &gj, BT * F, MODEL_GRAIN_ELEMS);
    memset(m->d_ln, 0, BT * d * sizeof(float));
    par_linear_backward(m, m->d_ln, g->fcw, g->fcb, m->d_fch, x->ln2, p->fcw, BT, d, F);
}

/* ln2 [BT,d] -> res3 [BT,d] = p(e*) * expert_e*(ln2) with e* = argmax softmax(ln2 Wr^T);
 * each expert's two linears run on its block of gathered rows. Adds the layer's
 * load-balancing loss to m->aux_loss and its routing to the load counts. */
static void moe_ffn_forward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp, E = m->cfg.experts;
    const model_layer_params *p = &m->p.layer[l];
    model_layer_acts *x = &m->la[l];
    const int32_t *off = x->route.offset;
    par_linear_forward(m, x->router, x->ln2, p->routerw, NULL, BT, d, E);
    moe_route_forward(&x->route, x->router, BT, E);
    moe_gather_forward(x->xg, x->ln2, &x->route, BT, d);
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        m->expert_tokens[l * E + e] += n;
        if (n)
            par_linear_forward(m, x->fch + n0 * F, x->xg + n0 * d, p->fcw + e * F * d,
                               p->fcb + e * F, n, d, F);
    }
    gelu_job gj = {.out = x->fch_gelu, .inp = x->fch};
    pool_run(m->pool, gelu_fwd_chunk, &gj, BT * F, MODEL_GRAIN_ELEMS);
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        if (n)
            par_linear_forward(m, x->yg + n0 * d, x->fch_gelu + n0 * F, p->fcprojw + e * d * F,
                               p->fcprojb + e * d, n, F, d);
    }
    moe_combine_forward(x->res3, x->yg, x->router, &x->route, BT, d, E);
    m->aux_loss += moe_aux_forward(x->router, &x->route, BT, E, m->cfg.moe_aux);
}

/* d_res [BT,d] (gradient of res3) -> d_ln [BT,d] (gradient of ln2), weight grads +=.
 * Scratch: d_atty holds the gathered output gradient, d_tmp the gathered input
 * gradient, d_router the router probability then logit gradient. */
static void moe_ffn_backward(model *m, size_t l, size_t BT)
{
    const size_t d = m->cfg.d, F = m->cfg.mlp, E = m->cfg.experts;
    const model_layer_params *p = &m->p.layer[l], *g = &m->g.layer[l];
    const model_layer_acts *x = &m->la[l];
    const int32_t *off = x->route.offset;
    float *d_yg = m->d_atty, *d_xg = m->d_tmp;
    moe_combine_backward(d_yg, m->d_router, m->d_res, x->yg, x->router, &x->route, BT, d, E);
    moe_aux_backward(m->d_router, &x->route, BT, E, m->cfg.moe_aux);
    moe_softmax_backward(m->d_router, m->d_router, x->router, BT, E);
    memset(m->d_fch, 0, BT * F * sizeof(float));
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        if (n)
            par_linear_backward(m, m->d_fch + n0 * F, g->fcprojw + e * d * F, g->fcprojb + e * d,
                                d_yg + n0 * d, x->fch_gelu + n0 * F, p->fcprojw + e * d * F, n,
                                F, d);
    }
    gelu_job gj = {.out = m->d_fch, .inp = x->fch, .dout = m->d_fch};
    pool_run(m->pool, gelu_bwd_chunk, &gj, BT * F, MODEL_GRAIN_ELEMS);
    memset(d_xg, 0, BT * d * sizeof(float));
    for (size_t e = 0; e < E; e++) {
        const size_t n0 = (size_t)off[e], n = (size_t)off[e + 1] - n0;
        if (n)
            par_linear_backward(m, d_xg + n0 * d, g->fcw + e * F * d, g->fcb + e * F,
                                m->d_fch + n0 * F, x->xg + n0 * d, p->fcw + e * F * d, n, d, F);
    }
    memset(m->d_ln, 0, BT * d * sizeof(float));
    moe_gather_backward(m->d_ln, d_xg, &x->route, BT, d);
    par_linear_backward(m, m->d_ln, g->routerw, NULL, m->d_router, x->ln2, p->routerw, BT, d, E);
}

/* ---- forward / backward ---- */

double model_forward(model *m, const int32_t *inputs, const int32_t *targets, size_t B)
{
    const model_config *c = &m->cfg;
    GL_ASSERT(B >= 1 && B <= c->batch);
    const size_t T = c->T, d = c->d, H = c->heads, Hr = H * c->r, V = c->V;
    const size_t BT = B * T;
    m->cur_B = B;
    memcpy(m->inputs, inputs, BT * sizeof(int32_t));
    memcpy(m->targets, targets, BT * sizeof(int32_t));
    const int gated = gate_mode_uses_gate(c->mode);

    m->aux_loss = 0.0;
    encoder_forward(m->encoded, m->inputs, m->p.wte, m->p.wpe, B, T, d);
    attn_job aj = {.m = m, .ac = attn_config_of(m), .with_metrics = m->metrics != NULL};
    for (size_t l = 0; l < c->layers; l++) {
        model_layer_params *p = &m->p.layer[l];
        model_layer_acts *x = &m->la[l];
        const float *in = l == 0 ? m->encoded : m->la[l - 1].res3;
        par_layernorm_forward(m, x->ln1, x->ln1_mean, x->ln1_rstd, in, p->ln1w, p->ln1b, BT, d);
        par_linear_forward(m, x->qkv, x->ln1, p->qkvw, p->qkvb, BT, d, 3 * d);
        if (gated) {
            par_linear_forward(m, x->gq, x->ln1, p->gqw, NULL, BT, d, Hr);
            par_linear_forward(m, x->gk, x->ln1, p->gkw, NULL, BT, d, Hr);
        }
        aj.layer = l;
        if (m->metrics) /* agreement sums are per head: keep one writer */
            attn_fwd_chunk(&aj, 0, 0, B * H);
        else
            pool_run(m->pool, attn_fwd_chunk, &aj, B * H, MODEL_GRAIN_PAIRS);
        par_linear_forward(m, x->res2, x->atty, p->projw, p->projb, BT, d, d);
        residual_forward(x->res2, x->res2, in, BT * d);
        par_layernorm_forward(m, x->ln2, x->ln2_mean, x->ln2_rstd, x->res2, p->ln2w, p->ln2b, BT,
                              d);
        if (c->experts)
            moe_ffn_forward(m, l, BT);
        else
            dense_ffn_forward(m, l, BT);
        residual_forward(x->res3, x->res3, x->res2, BT * d);
    }
    par_layernorm_forward(m, m->lnf, m->lnf_mean, m->lnf_rstd, m->la[c->layers - 1].res3,
                          m->p.lnfw, m->p.lnfb, BT, d);
    par_linear_forward(m, m->logits, m->lnf, m->p.wte, NULL, BT, d, V);
    head_job hj = {.m = m, .V = V};
    pool_run(m->pool, ce_fwd_chunk, &hj, BT, MODEL_GRAIN_CE_ROWS);
    double total = 0.0;
    for (size_t i = 0; i < BT; i++)
        total += m->row_loss[i];
    m->cur_targets = 0;
    for (size_t i = 0; i < BT; i++)
        m->cur_targets += m->targets[i] >= 0;
    return m->cur_targets ? total / (double)m->cur_targets : 0.0;
}

void model_backward(model *m)
{
    const model_config *c = &m->cfg;
    const size_t B = m->cur_B, T = c->T, d = c->d, H = c->heads, Hr = H * c->r;
    const size_t V = c->V, BT = B * T;
    const int gated = gate_mode_uses_gate(c->mode);
    memset(m->grads, 0, m->num_params * sizeof(float));

    const size_t count = m->cur_targets;
    head_job hj = {.m = m, .V = V, .scale = count ? 1.0f / (float)count : 0.0f};
    pool_run(m->pool, ce_bwd_chunk, &hj, BT, MODEL_GRAIN_CE_ROWS);
    memset(m->d_tmp, 0, BT * d * sizeof(float));
    par_linear_backward(m, m->d_tmp, m->g.wte, NULL, m->d_logits, m->lnf, m->p.wte, BT, d, V);
    memset(m->d_res, 0, BT * d * sizeof(float));
    layernorm_backward(m->d_res, m->g.lnfw, m->g.lnfb, m->d_tmp, m->la[c->layers - 1].res3,
                       m->p.lnfw, m->lnf_mean, m->lnf_rstd, BT, d);

    attn_job aj = {.m = m, .ac = attn_config_of(m)};
    for (size_t l = c->layers; l-- > 0;) {
        model_layer_params *p = &m->p.layer[l], *g = &m->g.layer[l];
        model_layer_acts *x = &m->la[l];
        const float *in = l == 0 ? m->encoded : m->la[l - 1].res3;

        /* MLP: res3 = res2 + ffn(ln2(res2)); d_ln = d ln2 */
        if (c->experts)
            moe_ffn_backward(m, l, BT);
        else
            dense_ffn_backward(m, l, BT);
        layernorm_backward(m->d_res, g->ln2w, g->ln2b, m->d_ln, x->res2, p->ln2w, x->ln2_mean,
                           x->ln2_rstd, BT, d);

        /* attention: res2 = in + proj(attn(ln1(in))) */
        memset(m->d_atty, 0, BT * d * sizeof(float));
        par_linear_backward(m, m->d_atty, g->projw, g->projb, m->d_res, x->atty, p->projw, BT, d,
                            d);
        memset(m->d_qkv, 0, 3 * BT * d * sizeof(float));
        memset(m->d_gq, 0, BT * Hr * sizeof(float));
        memset(m->d_gk, 0, BT * Hr * sizeof(float));
        aj.layer = l;
        pool_run(m->pool, attn_bwd_chunk, &aj, B * H, MODEL_GRAIN_PAIRS);
        /* each pair wrote its own gate-bias gradient: add them in pair order */
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                g->gb[h] += m->gb_pair[b * H + h];
        memset(m->d_ln, 0, BT * d * sizeof(float));
        par_linear_backward(m, m->d_ln, g->qkvw, g->qkvb, m->d_qkv, x->ln1, p->qkvw, BT, d,
                            3 * d);
        if (gated) {
            par_linear_backward(m, m->d_ln, g->gqw, NULL, m->d_gq, x->ln1, p->gqw, BT, d, Hr);
            par_linear_backward(m, m->d_ln, g->gkw, NULL, m->d_gk, x->ln1, p->gkw, BT, d, Hr);
        }
        layernorm_backward(m->d_res, g->ln1w, g->ln1b, m->d_ln, in, p->ln1w, x->ln1_mean,
                           x->ln1_rstd, BT, d);
    }
    encoder_backward(m->g.wte, m->g.wpe, m->d_res, m->inputs, B, T, d);
}
