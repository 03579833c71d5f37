/* distill: trains a fresh gate on a frozen model to predict the oracle top-k
 * masks of that model (distill.h has the loss). Work is split over the
 * model's pool by (sequence, head) pairs; every product goes through
 * cblas_sgemm. The T x T gate scores and content logits are never kept for
 * the whole batch: the backward pass recomputes them per pair from the
 * stored gate projections and the model's own q/k, which costs one more pair
 * of small GEMMs and saves L*B*H*T*T floats (600 MB at the paper preset). */
#include "distill.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "data.h"
#include "evaluate.h"
#include "gate.h"
#include "model_par.h"
#include "optim.h"
#include "rng.h"
#include "safetensors.h"

#define DISTILL_STREAM 0x64697374ULL   /* "dist": the fresh gate's draw */

void distill_default_config(distill_config *c)
{
    *c = (distill_config){.steps = 300, .batch = 16, .lr = 1e-2f, .warmup = 30,
                          .weight_decay = 0.1f, .clip = 1.0f, .seed = 1,
                          .forward = GATE_ORACLE};
}

/* ---- allocation ---- */

int distill_init(distill *d, model *m, const distill_config *cfg, gl_error *err)
{
    memset(d, 0, sizeof *d);
    const model_config *c = &m->cfg;
    if (cfg->forward != GATE_ORACLE && cfg->forward != GATE_DENSE)
        return gl_fail(err, "distill: forward mode %s: must be oracle or dense",
                       gate_mode_name(cfg->forward));
    if (cfg->batch < 1 || cfg->batch > c->batch)
        return gl_fail(err, "distill: batch %zu: must be between 1 and the model's batch %zu",
                       cfg->batch, c->batch);
    if (c->layers > DISTILL_MAX_LAYERS)
        return gl_fail(err, "distill: %zu layers: at most %d", c->layers, DISTILL_MAX_LAYERS);
    if (c->k >= c->T)
        return gl_fail(err, "distill: k %zu keeps every key of T %zu: nothing to learn", c->k,
                       c->T);
    d->m = m;
    d->cfg = *cfg;
    const size_t B = c->batch, T = c->T, H = c->heads, Hr = H * c->r, L = c->layers;
    const size_t nw = pool_threads(m->pool);
    d->gq = xcalloc(L * B * T * Hr, sizeof(float));
    d->gk = xcalloc(L * B * T * Hr, sizeof(float));
    d->dgq = xcalloc(B * T * Hr, sizeof(float));
    d->dgk = xcalloc(B * T * Hr, sizeof(float));
    d->sc = xcalloc(nw * T * T, sizeof(float));
    d->cc = xcalloc(nw * T * T, sizeof(float));
    d->idx = xcalloc(nw * T, sizeof(uint32_t));
    d->keep = xcalloc(nw * T, 1);
    /* one slot per (sequence, head) pair, added up in pair order after each
     * layer: sums that do not depend on the thread count (pool.h) */
    d->loss_part = xcalloc(B * H, sizeof(double));
    d->dbias = xcalloc(B * H, sizeof(float));
    d->agree_part = xcalloc(B * H, sizeof(distill_agree));
    /* AdamW over the gate alone: lr and weight decay are distill's own, the
     * betas, eps and the schedule's floor the trainer's defaults */
    optim_config oc;
    optim_default_config(&oc);
    oc.lr = oc.gate_lr = cfg->lr;
    oc.weight_decay = cfg->weight_decay;
    oc.clip = cfg->clip;
    oc.warmup = cfg->warmup;
    oc.total_steps = cfg->steps;
    optim_init_gate(&d->o, &oc, m);
    distill_reset_gate(d);
    return 0;
}

void distill_free(distill *d)
{
    free(d->gq);
    free(d->gk);
    free(d->dgq);
    free(d->dgk);
    free(d->sc);
    free(d->cc);
    free(d->idx);
    free(d->keep);
    free(d->loss_part);
    free(d->dbias);
    free(d->agree_part);
    optim_free(&d->o);
    memset(d, 0, sizeof *d);
}

void distill_reset_gate(distill *d)
{
    model *m = d->m;
    rng_state r;
    rng_seed(&r, rng_derive(d->cfg.seed, DISTILL_STREAM));
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (!t->is_gate)
            continue;
        float *w = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++)
            w[j] = t->ndim == 2 ? 0.02f * rng_normal(&r) : 0.0f;
    }
    optim_reset(&d->o);
}

/* ---- one (sequence, head) pair ---- */

typedef struct {
    distill *d;
    size_t layer, B;
} pair_job;

/* softplus(s) - y s = BCE(sigmoid(s), y), stable for any s; fp32 like the
 * scores (the sums are double) */
static float bce_logit(float s, int y)
{
    return fmaxf(s, 0.0f) - (y ? s : 0.0f) + log1pf(expf(-fabsf(s)));
}

static float sigmoidf(float u)
{
    if (u >= 0.0f)
        return 1.0f / (1.0f + expf(-u));
    float e = expf(u);
    return e / (1.0f + e);
}

/* gq/gk of pair (b,h) at layer l [T,r] -> S[T,T] = gq gk^T/sqrt(r) (bias not
 * added); q/k [T,hd] of the pair -> C[T,T] = q k^T/sqrt(hd). */
static void pair_scores(const distill *d, size_t l, size_t b, size_t h, float *S, float *C)
{
    const model *m = d->m;
    const size_t T = m->cfg.T, Cd = m->cfg.d, H = m->cfg.heads, r = m->cfg.r, hd = Cd / H;
    const size_t Hr = H * r, B = m->cfg.batch;
    const float *gqb = d->gq + (l * B + b) * T * Hr + h * r;
    const float *gkb = d->gk + (l * B + b) * T * Hr + h * r;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)r,
                1.0f / sqrtf((float)r), gqb, (int)Hr, gkb, (int)Hr, 0.0f, S, (int)T);
    const float *q = m->la[l].qkv + b * T * 3 * Cd + h * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd,
                1.0f / sqrtf((float)hd), q, (int)(3 * Cd), q + Cd, (int)(3 * Cd), 0.0f, C,
                (int)T);
}

/* One row's agreement: G_topk = the gate's k largest, G_thr = {s > 0}. */
static void row_agree(distill_agree *a, const float *s, const unsigned char *y, size_t n,
                      size_t k, uint32_t *idx, unsigned char *gk)
{
    gate_topk_select(gk, s, n, k, idx);
    size_t both = 0, thr = 0, thr_both = 0;
    for (size_t j = 0; j < n; j++) {
        both += gk[j] && y[j];
        thr += s[j] > 0.0f;
        thr_both += s[j] > 0.0f && y[j];
    }
    /* G_topk and the oracle both hold k keys: precision = recall = F1 */
    a->rows += 1.0;
    a->topk_f1 += (double)both / (double)k;
    double p = thr ? (double)thr_both / (double)thr : 0.0, rc = (double)thr_both / (double)k;
    a->thr_p += p;
    a->thr_r += rc;
    a->thr_f1 += p + rc > 0.0 ? 2.0 * p * rc / (p + rc) : 0.0;
    a->chance += (double)k / (double)n;
}

/* S, C of pair p -> loss_part[p] = sum over counted (i, j) of
 * BCE(sigmoid(S_ij + b_h), y_ij), y = the oracle top-k of row i of C;
 * agree_part[p] = the pair's agreement when agree_on. */
static void pair_forward(void *ctx, size_t w, size_t p0, size_t p1)
{
    pair_job *j = ctx;
    distill *d = j->d;
    const model *m = d->m;
    const size_t T = m->cfg.T, H = m->cfg.heads, k = m->cfg.k, l = j->layer;
    float *S = d->sc + w * T * T, *C = d->cc + w * T * T;
    uint32_t *idx = d->idx + w * T;
    unsigned char *y = d->keep + w * T;
    const float *gb = m->p.layer[l].gb;
    unsigned char gkeep[4096];
    for (size_t p = p0; p < p1; p++) {
        const size_t b = p / H, h = p % H;
        double loss = 0.0;
        distill_agree *agree = &d->agree_part[p];
        memset(agree, 0, sizeof *agree);
        pair_scores(d, l, b, h, S, C);
        for (size_t i = k; i < T; i++) {
            const size_t n = i + 1;
            float *s = S + i * T;
            gate_topk_select(y, C + i * T, n, k, idx);
            for (size_t jj = 0; jj < n; jj++) {
                s[jj] += gb[h];
                loss += bce_logit(s[jj], y[jj]);
            }
            if (d->agree_on)
                row_agree(agree, s, y, n, k, idx, gkeep);
        }
        d->loss_part[p] = loss;
    }
}

/* dL/dS_ij = (sigmoid(S_ij) - y_ij) / count on counted entries, 0 elsewhere
 * -> dgq, dgk [T,r] of the pair (written: each pair owns its slice),
 *    dbias[p] (written). S and the labels are recomputed from the forward's
 *    gate projections and the model's q/k. */
static void pair_backward(void *ctx, size_t w, size_t p0, size_t p1)
{
    pair_job *j = ctx;
    distill *d = j->d;
    const model *m = d->m;
    const size_t T = m->cfg.T, H = m->cfg.heads, k = m->cfg.k, l = j->layer;
    const size_t r = m->cfg.r, Hr = H * r, B = m->cfg.batch;
    float *S = d->sc + w * T * T, *C = d->cc + w * T * T;
    uint32_t *idx = d->idx + w * T;
    unsigned char *y = d->keep + w * T;
    const float *gb = m->p.layer[l].gb;
    const float inv = (float)(1.0 / d->count), rs = 1.0f / sqrtf((float)r);
    for (size_t p = p0; p < p1; p++) {
        const size_t b = p / H, h = p % H;
        pair_scores(d, l, b, h, S, C);
        float db = 0.0f;
        /* rows with n <= k are not in the loss */
        memset(S, 0, k * T * sizeof(float));
        for (size_t i = k; i < T; i++) {
            const size_t n = i + 1;
            float *s = S + i * T;
            gate_topk_select(y, C + i * T, n, k, idx);
            for (size_t jj = 0; jj < n; jj++) {
                s[jj] = (sigmoidf(s[jj] + gb[h]) - (float)y[jj]) * inv;
                db += s[jj];
            }
            memset(s + n, 0, (T - n) * sizeof(float));
        }
        d->dbias[p] = db;
        const size_t off = b * T * Hr + h * r;
        const float *gqb = d->gq + (l * B + b) * T * Hr + h * r;
        const float *gkb = d->gk + (l * B + b) * T * Hr + h * r;
        /* dgq = dS gk/sqrt(r); dgk = dS^T gq/sqrt(r) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)r, (int)T, rs, S,
                    (int)T, gkb, (int)Hr, 0.0f, d->dgq + off, (int)Hr);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)r, (int)T, rs, S,
                    (int)T, gqb, (int)Hr, 0.0f, d->dgk + off, (int)Hr);
    }
}

/* ---- forward / backward over the layers ---- */

/* inputs[B,T] -> the frozen model's activations (mode cfg.forward), then per
 * layer ln1[B,T,d], Wq/Wk[H*r,d] -> gq/gk[B,T,H*r] -> the mean BCE over
 * every counted (layer, sequence, head, i, j). */
double distill_forward(distill *d, const int32_t *inputs, size_t B)
{
    model *m = d->m;
    const model_config *c = &m->cfg;
    GL_ASSERT(B >= 1 && B <= c->batch);
    const size_t T = c->T, H = c->heads, Hr = H * c->r;
    gate_mode mode = m->cfg.mode;
    metrics_state *metrics = m->metrics;
    m->cfg.mode = d->cfg.forward;
    m->metrics = NULL;
    /* the LM loss is not used: the inputs stand in for the targets */
    model_forward(m, inputs, inputs, B);
    m->cfg.mode = mode;
    m->metrics = metrics;
    d->B = B;
    double per_seq = 0.0;
    for (size_t n = c->k + 1; n <= T; n++)
        per_seq += (double)n;
    d->count = per_seq * (double)(B * c->layers * c->heads);
    double total = 0.0;
    for (size_t l = 0; l < c->layers; l++) {
        const model_layer_params *p = &m->p.layer[l];
        /* the gate projections, over the pool as the model runs them, from
         * the layer's ln1 (recomputed: the model keeps no LayerNorm output) */
        const float *ln1 = model_layer_ln1(m, l);
        model_par_linear_forward(m->pool, d->gq + l * c->batch * T * Hr, ln1, p->gqw, NULL,
                                 B * T, c->d, Hr);
        model_par_linear_forward(m->pool, d->gk + l * c->batch * T * Hr, ln1, p->gkw, NULL,
                                 B * T, c->d, Hr);
        pair_job pj = {.d = d, .layer = l, .B = B};
        pool_run(m->pool, pair_forward, &pj, B * H, MODEL_GRAIN_PAIRS);
        /* the pairs' sums, added in pair order */
        for (size_t i = 0; i < B * H; i++) {
            total += d->loss_part[i];
            if (!d->agree_on)
                continue;
            const distill_agree *src = &d->agree_part[i];
            distill_agree *dst = &d->agree[l];
            dst->rows += src->rows;
            dst->topk_f1 += src->topk_f1;
            dst->thr_p += src->thr_p;
            dst->thr_r += src->thr_r;
            dst->thr_f1 += src->thr_f1;
            dst->chance += src->chance;
        }
    }
    return total / d->count;
}

/* Gradients of the last forward's loss: per layer dS -> dgq, dgk [B,T,H*r],
 * db[H] -> dWq, dWk [H*r,d] = dgq^T ln1, dgk^T ln1 (into m->grads). */
void distill_backward(distill *d)
{
    model *m = d->m;
    const model_config *c = &m->cfg;
    const size_t B = d->B, T = c->T, H = c->heads, Hr = H * c->r;
    for (size_t i = 0; i < m->ntensors; i++)
        if (m->tensors[i].is_gate)
            memset(m->grads + m->tensors[i].offset, 0, m->tensors[i].numel * sizeof(float));
    for (size_t l = 0; l < c->layers; l++) {
        const model_layer_params *p = &m->p.layer[l];
        model_layer_params *g = &m->g.layer[l];
        pair_job pj = {.d = d, .layer = l, .B = B};
        pool_run(m->pool, pair_backward, &pj, B * H, MODEL_GRAIN_PAIRS);
        /* each pair wrote its own bias gradient: add them in pair order */
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                g->gb[h] += d->dbias[b * H + h];
        /* weight gradients only: ln1 is frozen */
        const float *ln1 = model_layer_ln1(m, l);
        model_par_linear_backward(m->pool, NULL, g->gqw, NULL, d->dgq, ln1, p->gqw, B * T, c->d,
                                  Hr);
        model_par_linear_backward(m->pool, NULL, g->gkw, NULL, d->dgk, ln1, p->gkw, B * T, c->d,
                                  Hr);
    }
}

double distill_update(distill *d)
{
    return optim_step(&d->o, d->m, d->o.t);
}

void distill_agree_reset(distill *d)
{
    memset(d->agree, 0, sizeof d->agree);
}

void distill_agree_mean(const distill *d, size_t l0, size_t l1, distill_agree *out)
{
    memset(out, 0, sizeof *out);
    double n = 0.0;
    for (size_t l = l0; l < l1; l++) {
        const distill_agree *a = &d->agree[l];
        if (a->rows == 0.0)
            continue;
        /* each layer weighs the same, as metrics_layer_value's means do */
        out->topk_f1 += a->topk_f1 / a->rows;
        out->thr_p += a->thr_p / a->rows;
        out->thr_r += a->thr_r / a->rows;
        out->thr_f1 += a->thr_f1 / a->rows;
        out->chance += a->chance / a->rows;
        out->rows += a->rows;
        n += 1.0;
    }
    if (n == 0.0) {
        out->topk_f1 = out->thr_p = out->thr_r = out->thr_f1 = out->chance = NAN;
        return;
    }
    out->topk_f1 /= n;
    out->thr_p /= n;
    out->thr_r /= n;
    out->thr_f1 /= n;
    out->chance /= n;
}

/* ---- a whole distillation from a checkpoint ---- */

void distill_result_free(distill_result *r)
{
    if (r->deployed.heads)
        metrics_free(&r->deployed);
}

/* the doubles of a result, in packed order */
static const size_t result_doubles[] = {
    offsetof(distill_result, loss_first),       offsetof(distill_result, loss_last),
    offsetof(distill_result, held_out.rows),    offsetof(distill_result, held_out.topk_f1),
    offsetof(distill_result, held_out.thr_p),   offsetof(distill_result, held_out.thr_r),
    offsetof(distill_result, held_out.thr_f1),  offsetof(distill_result, held_out.chance),
    offsetof(distill_result, precision),        offsetof(distill_result, recall),
    offsetof(distill_result, f1),               offsetof(distill_result, chance),
    offsetof(distill_result, mass_kept),        offsetof(distill_result, oracle_mass),
    offsetof(distill_result, val_loss),         offsetof(distill_result, val_ppl),
    offsetof(distill_result, source_val_ppl),   offsetof(distill_result, seconds),
};
#define RESULT_DOUBLES (sizeof result_doubles / sizeof result_doubles[0])
/* then steps, layers, source step, source mode; then the deployed state */
#define RESULT_TOP (RESULT_DOUBLES + 4)

size_t distill_result_pack(const distill_result *r, double *v)
{
    const size_t n = RESULT_TOP + metrics_pack(&r->deployed, NULL);
    if (!v)
        return n;
    for (size_t i = 0; i < RESULT_DOUBLES; i++)
        memcpy(&v[i], (const char *)r + result_doubles[i], sizeof v[i]);
    gate_mode mode = GATE_MODE_COUNT;
    gate_mode_parse(r->source_mode, &mode);
    v[RESULT_DOUBLES] = (double)r->steps;
    v[RESULT_DOUBLES + 1] = (double)r->layers;
    v[RESULT_DOUBLES + 2] = (double)r->source_step;
    v[RESULT_DOUBLES + 3] = (double)mode;
    metrics_pack(&r->deployed, v + RESULT_TOP);
    return n;
}

int distill_result_unpack(distill_result *r, const double *v, size_t n, gl_error *e)
{
    memset(r, 0, sizeof *r);
    const double mode = n >= RESULT_TOP ? v[RESULT_DOUBLES + 3] : -1;
    if (n < RESULT_TOP || !(mode >= 0 && mode < GATE_MODE_COUNT) || v[RESULT_DOUBLES] < 0 ||
        v[RESULT_DOUBLES + 1] < 0 || v[RESULT_DOUBLES + 2] < 0)
        return gl_fail(e, "distillation: %zu values are not a packed result", n);
    for (size_t i = 0; i < RESULT_DOUBLES; i++)
        memcpy((char *)r + result_doubles[i], &v[i], sizeof v[i]);
    r->steps = (size_t)v[RESULT_DOUBLES];
    r->layers = (size_t)v[RESULT_DOUBLES + 1];
    r->source_step = (size_t)v[RESULT_DOUBLES + 2];
    snprintf(r->source_mode, sizeof r->source_mode, "%s", gate_mode_name((gate_mode)mode));
    return metrics_unpack(&r->deployed, v + RESULT_TOP, n - RESULT_TOP, e);
}

/* evaluate's batch for the held-out agreement: the distillation forward */
static double held_out_batch(void *ctx, model *m, const int32_t *inputs, const int32_t *targets,
                             size_t nb, size_t w0)
{
    (void)m;
    (void)targets;
    (void)w0;
    return distill_forward(ctx, inputs, nb);
}

int distill_checkpoint(const char *ckpt, const char *data_path, const distill_config *cfg,
                       size_t eval_windows, size_t threads, const char *out_path,
                       distill_progress_fn progress, void *ctx, size_t progress_every,
                       distill_result *res, gl_error *err)
{
    memset(res, 0, sizeof *res);
    double start = gl_now();
    st_file f;
    checkpoint_info info;
    if (st_read(ckpt, &f, err))
        return -1;
    if (checkpoint_info_read(&f, ckpt, &info, err)) {
        st_free(&f);
        return -1;
    }
    model_config mc = info.model;
    mc.gate_frozen = 0;
    data_source *data = NULL;
    model m;
    int model_ready = 0, rc = -1;
    distill d;
    int distill_ready = 0;
    int32_t *in = NULL;

    data = data_open(data_path, mc.T, cfg->seed, err);
    if (!data)
        goto out;
    if (data_max_token(data) >= mc.V) {
        gl_fail(err, "%s: token id %u >= vocabulary size V=%zu of %s",
                data_path ? data_path : "generator", data_max_token(data), mc.V, ckpt);
        goto out;
    }
    if (model_init(&m, &mc, threads, err))
        goto out;
    model_ready = 1;
    if (checkpoint_load_weights(&f, ckpt, &m, err))
        goto out;
    const size_t T = mc.T, B = mc.batch, L = mc.layers;
    evaluate_spec val = {.data = data, .windows = evaluate_window_count(data, eval_windows),
                         .weight = EVALUATE_PER_WINDOW};
    in = xcalloc(B * T, sizeof *in);
    int32_t *batch = xcalloc(B * (T + 1), sizeof *batch);
    snprintf(res->source_mode, sizeof res->source_mode, "%s", gate_mode_name(mc.mode));
    res->source_step = info.step;
    /* the checkpoint as trained, before its gate is replaced */
    res->source_val_ppl = exp(evaluate_windows(&m, &val));

    if (distill_init(&d, &m, cfg, err)) {
        free(batch);
        goto out;
    }
    distill_ready = 1;
    res->steps = cfg->steps;
    res->layers = L;
    for (size_t step = 0; step < cfg->steps; step++) {
        data_next_batch(data, batch, cfg->batch);
        data_split_windows(batch, in, NULL, cfg->batch, T);
        double loss = distill_forward(&d, in, cfg->batch);
        if (!isfinite(loss)) {
            gl_fail(err, "distill: loss is %g at update %zu", loss, step + 1);
            free(batch);
            goto out;
        }
        distill_backward(&d);
        double norm = distill_update(&d);
        if (!isfinite(norm)) {
            gl_fail(err, "distill: gate gradient norm is %g at update %zu", norm, step + 1);
            free(batch);
            goto out;
        }
        if (step == 0)
            res->loss_first = loss;
        res->loss_last = loss;
        if (progress && ((progress_every && (step + 1) % progress_every == 0) ||
                         step + 1 == cfg->steps))
            progress(ctx, step + 1, cfg->steps, loss);
    }
    free(batch);

    /* held-out agreement in the distillation forward */
    distill_agree_reset(&d);
    d.agree_on = 1;
    evaluate_spec held_out = val;
    held_out.batch = held_out_batch;
    held_out.ctx = &d;
    evaluate_windows(&m, &held_out);
    d.agree_on = 0;
    distill_agree_mean(&d, 0, L, &res->held_out);

    /* deployed: hard top-k on the distilled gate's scores */
    model_set_mode(&m, GATE_DISTILLED);
    metrics_init(&res->deployed, L, mc.heads, T);
    val.metrics = &res->deployed;
    res->val_loss = evaluate_windows(&m, &val);
    res->val_ppl = exp(res->val_loss);
    const metrics_state *ms = &res->deployed;
    res->precision = metrics_model_value(ms, L, METRIC_PRECISION);
    res->recall = metrics_model_value(ms, L, METRIC_RECALL);
    res->f1 = metrics_model_value(ms, L, METRIC_F1);
    res->chance = metrics_model_value(ms, L, METRIC_CHANCE);
    res->mass_kept = metrics_model_value(ms, L, METRIC_MASS_KEPT);
    res->oracle_mass = metrics_model_value(ms, L, METRIC_ORACLE_MASS);
    if (out_path &&
        checkpoint_save(out_path, &m, NULL, info.step, info.data, NULL, 0, NULL, err))
        goto out;
    res->seconds = gl_now() - start;
    rc = 0;
out:
    if (rc)
        distill_result_free(res);
    if (distill_ready)
        distill_free(&d);
    if (model_ready)
        model_free(&m);
    data_close(data);
    free(in);
    st_free(&f);
    return rc;
}
