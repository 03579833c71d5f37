/* model: the gated GPT's configuration (presets, checks, what a shape
 * costs), its gate mode and expert load, and the allocation of a model: the
 * buffers are laid out by the tables of model_tensors.c, the pool and the
 * per-worker scratch are started here. The forward and backward are in
 * model_net.c, the ops they spread over the pool in model_par.c. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_tensors.h"
#include "rng.h"
#include "runspec.h"

int model_preset(const char *name, model_config *cfg)
{
    /* the preset values are rows of the run-spec table (runspec.c) */
    return runspec_preset(name, cfg);
}

int model_config_check(const model_config *c, gl_error *err)
{
    /* each field's range is its run-spec row's; what is left relates two */
    if (runspec_check_model(c, err))
        return -1;
    if (c->d % c->heads)
        return gl_fail(err, "--dim %zu: must be a multiple of --heads %zu", c->d, c->heads);
    if (c->k > c->T)
        return gl_fail(err, "--k %zu: must be between 1 and the context length %zu", c->k, c->T);
    return 0;
}

/* ---- what a config costs ---- */

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
    /* QK^T and PV: 2 * d FLOPs per (query, key) pair each, plus the gate
     * scores 2 * H * r, over the pairs causality keeps: query i sees i + 1
     * keys, (T + 1) / 2 on average. The row blocks (attention.h) compute some
     * masked pairs on the diagonal too; that is waste, not work, and is not
     * charged. */
    double keys = (T + 1.0) / 2.0;
    double attn = L * (2.0 * 2.0 * d + 2.0 * (double)(c->heads * c->r)) * keys;
    return 2.0 * matmul + attn;
}

double model_memory_bytes(const model_config *c, size_t threads)
{
    /* params, grads, Adam m and v; activations, backward scratch, row stats
     * (five floats per row and head) and hard-mask bits, each worker's
     * attention scratch (row blocks, attention.h) */
    const double rows = (double)(c->layers * c->batch * c->heads * c->T);
    return 4.0 * (4.0 * (double)model_count_params(c) + (double)model_acts_floats(c) +
                  (double)model_scratch_floats(c) + 5.0 * rows) +
           rows * (double)attn_keep_bytes(c->T) +
           4.0 * (double)threads * (double)attn_scratch_floats(c->T);
}

/* ---- the gate's mode and the experts' load ---- */

void model_set_mode(model *m, gate_mode mode)
{
    m->cfg.mode = mode;
}

void model_swap_mode(model *m, gate_mode mode)
{
    if (gate_mode_is_random(mode) && !gate_mode_is_random(m->cfg.mode))
        model_draw_random_gate(m, rng_derive(m->cfg.seed, MODEL_RANDOM_GATE_STREAM));
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

/* ---- allocation: the tables lay out the buffers (model_tensors.c) ---- */

int model_init(model *m, const model_config *cfg, size_t threads, gl_error *err)
{
    memset(m, 0, sizeof *m);
    if (model_config_check(cfg, err))
        return -1;
    m->cfg = *cfg;
    const size_t BT = cfg->batch * cfg->T;
    model_tensors_init(m);
    model_acts_init(m);
    if (cfg->experts)
        m->expert_tokens = xcalloc(cfg->layers * cfg->experts, sizeof *m->expert_tokens);

    m->pool = pool_create(threads ? threads : 1);
    if (!m->pool) {
        model_free(m);
        return gl_fail(err, "cannot start %zu worker threads", threads);
    }
    size_t nw = pool_threads(m->pool);
    m->scratch_w = xcalloc(nw, sizeof *m->scratch_w);
    for (size_t i = 0; i < nw; i++)
        attn_scratch_init(&m->scratch_w[i], cfg->T);
    m->row_loss = xcalloc(BT, sizeof(double));
    m->gb_pair = xcalloc(cfg->batch * cfg->heads, sizeof(float));
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
    free(m->keep_bits);
    free(m->la);
    free(m->scratch);
    free(m->routes);
    free(m->expert_tokens);
    free(m->inputs);
    free(m->targets);
    memset(m, 0, sizeof *m);
}
