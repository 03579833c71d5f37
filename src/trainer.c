/* trainer: the step loop of one arm. Each step: next batch, forward,
 * backward, clip + AdamW. Evaluation runs the fixed val windows with the
 * stochastic masks pinned, so val losses are comparable between evaluations. */
#include "trainer.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "evaluate.h"
#include "safetensors.h"

int trainer_init(trainer *t, const train_config *cfg, gl_error *err)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    model_config mc = cfg->model;
    if (model_config_check(&mc, err))
        return -1;
    t->data = data_open(cfg->data_path, mc.T, mc.seed, err);
    if (!t->data)
        return -1;
    if (cfg->vocab_from_data && data_kind_of(t->data) == DATA_BIN) {
        mc.V = data_vocab(t->data);
        if (model_config_check(&mc, err))
            goto fail;
    }
    uint32_t max_token = data_max_token(t->data);
    if (max_token >= mc.V) {
        gl_fail(err, "%s: token id %u >= vocabulary size V=%zu (use --vocab %u or more)",
                cfg->data_path ? cfg->data_path : "generator", max_token, mc.V, max_token + 1);
        goto fail;
    }
    if (model_init(&t->m, &mc, cfg->threads, err))
        goto fail;
    optim_config oc = cfg->optim;
    oc.total_steps = cfg->steps;
    optim_init(&t->o, &oc, t->m.num_params);
    metrics_init(&t->metrics, mc.layers, mc.heads, mc.T);
    size_t B = mc.batch, T = mc.T;
    t->batch = xcalloc(B * (T + 1), sizeof(int32_t));
    t->inputs = xcalloc(B * T, sizeof(int32_t));
    t->targets = xcalloc(B * T, sizeof(int32_t));
    if (cfg->heatmaps) {
        t->heat = heatmap_snapshot_new((uint32_t)mc.layers, (uint32_t)mc.heads, (uint32_t)T);
        t->metrics.heat_gate = t->heat->gate;
        t->metrics.heat_oracle = t->heat->oracle;
        t->metrics.heat_attn = t->heat->attn;
    }
    return 0;
fail:
    data_close(t->data);
    t->data = NULL;
    return -1;
}

void trainer_free(trainer *t)
{
    model_free(&t->m);
    optim_free(&t->o);
    metrics_free(&t->metrics);
    data_close(t->data);
    free(t->batch);
    free(t->inputs);
    free(t->targets);
    heatmap_snapshot_free(t->heat);
    memset(t, 0, sizeof *t);
}

/* Per-head gate gradient norms: head h owns rows h*r..h*r+r-1 of gate.q and
 * gate.k and entry h of gate.bias. */
static void gate_head_norms(const model *m, double *out)
{
    const size_t H = m->cfg.heads, r = m->cfg.r, d = m->cfg.d;
    for (size_t l = 0; l < m->cfg.layers; l++) {
        const model_layer_params *g = &m->g.layer[l];
        for (size_t h = 0; h < H; h++) {
            double sum = (double)g->gb[h] * g->gb[h];
            for (size_t i = h * r * d; i < (h + 1) * r * d; i++)
                sum += (double)g->gqw[i] * g->gqw[i] + (double)g->gkw[i] * g->gkw[i];
            out[l * H + h] = sqrt(sum);
        }
    }
}

int trainer_step(trainer *t)
{
    model *m = &t->m;
    const size_t B = m->cfg.batch, T = m->cfg.T;
    double start = gl_now();
    data_next_batch(t->data, t->batch, B);
    data_split_windows(t->batch, t->inputs, t->targets, B, T);
    m->step_salt = t->step;
    double loss;
    if (!t->dp) {
        loss = model_forward(m, t->inputs, t->targets, B);
    } else {
        /* this replica's rows of the global batch; the backward divides by
         * the global batch's targets, so the replicas' sum is its gradient */
        const size_t r0 = t->dp_row0, nb = t->dp_rows;
        size_t targets = 0;
        for (size_t i = 0; i < B * T; i++)
            targets += t->targets[i] >= 0;
        m->row_base = r0;
        const double mean = model_forward(m, t->inputs + r0 * T, t->targets + r0 * T, nb);
        m->row_base = 0;
        m->grad_targets = targets;
        m->grad_replicas = (size_t)dp_size(t->dp);
        /* a non-finite slice makes the sum non-finite on every replica, so
         * all of them stop here together */
        const double sum = dp_sum(t->dp, mean * (double)m->cur_targets);
        loss = targets ? sum / (double)targets : 0.0;
    }
    t->last_loss = loss;
    if (!isfinite(loss)) {
        t->diverged = 1;
        return 1;
    }
    if (t->dp)
        m->row_base = t->dp_row0;   /* the backward's attention config, as the forward's */
    model_backward(m);
    if (t->dp) {
        dp_grads_finish(t->dp, m);   /* every bucket summed: the same gradient everywhere */
        m->row_base = 0;
        m->grad_targets = 0;
        m->grad_replicas = 0;
    }
    t->last_grad_norm = optim_step(&t->o, m, t->step);
    if (!isfinite(t->last_grad_norm)) {
        t->diverged = 1;
        return 1;
    }
    t->step++;
    t->tokens_trained += B * T;
    t->train_seconds += gl_now() - start;
    return 0;
}

int trainer_set_dp(trainer *t, dp_comm *c, size_t bucket_bytes, int overlap, gl_error *err)
{
    model *m = &t->m;
    t->dp = NULL;
    t->dp_row0 = 0;
    t->dp_rows = m->cfg.batch;
    m->on_layer_grads = NULL;
    m->on_layer_ctx = NULL;
    if (!c)
        return 0;
    size_t r0, rows;
    if (dp_slice(m->cfg.batch, dp_size(c), dp_replica(c), &r0, &rows, err))
        return -1;
    if (dp_attach(c, m, bucket_bytes, overlap, err))
        return -1;
    /* replica 0's state is the arm's: a follower built from the same
     * configuration (or restored from an older file) takes it over */
    dp_bcast_bytes(c, m->params, m->num_params * sizeof(float));
    dp_bcast_bytes(c, t->o.m, t->o.num_params * sizeof(float));
    dp_bcast_bytes(c, t->o.v, t->o.num_params * sizeof(float));
    data_cursor cur;
    data_get_cursor(t->data, &cur);
    dp_bcast_bytes(c, &cur, sizeof cur);
    uint64_t state[6] = {t->step, t->o.t, (uint64_t)m->cfg.mode, m->cfg.k,
                         (uint64_t)m->cfg.gate_frozen, t->commands_done};
    dp_bcast_bytes(c, state, sizeof state);
    if (data_set_cursor(t->data, &cur, err))
        return -1;
    t->step = (size_t)state[0];
    t->o.t = (size_t)state[1];
    if ((gate_mode)state[2] != m->cfg.mode)
        model_set_mode(m, (gate_mode)state[2]);
    m->cfg.k = (size_t)state[3];
    m->cfg.gate_frozen = (int)state[4];
    t->commands_done = (size_t)state[5];
    t->dp = c;
    t->dp_row0 = r0;
    t->dp_rows = rows;
    m->on_layer_grads = dp_grads_layer;
    m->on_layer_ctx = c;
    return 0;
}

int trainer_dp_check(trainer *t, gl_error *err)
{
    return dp_check_weights(t->dp, &t->m, t->step, err);
}

void trainer_eval(trainer *t, eval_result *out)
{
    model *m = &t->m;
    const size_t T = m->cfg.T;
    const evaluate_spec spec = {
        .data = t->data, .windows = evaluate_window_count(t->data, t->cfg.eval_windows),
        .weight = EVALUATE_PER_TOKEN, .metrics = &t->metrics,
        .buf = t->batch, .inputs = t->inputs, .targets = t->targets};
    model_reset_expert_load(m);
    const double loss = evaluate_windows(m, &spec);
    /* the gradients of the last step are still in place: eval never
     * backpropagates, so the gate norms are read here, off the step path */
    gate_head_norms(m, t->metrics.grad_norm);
    double sum = 0.0;
    for (size_t i = 0; i < m->cfg.layers * m->cfg.heads; i++)
        sum += t->metrics.grad_norm[i] * t->metrics.grad_norm[i];
    t->gate_grad_norm = sqrt(sum);
    if (t->heat)
        t->heat->step = t->step;
    out->loss = loss;
    out->ppl = exp(out->loss);
    out->tokens = spec.windows * T;
    out->expert_balance = model_expert_balance(m);
    /* tokens are bytes for text and the generator */
    out->bits_per_byte = data_kind_of(t->data) == DATA_BIN ? NAN : out->loss / log(2.0);
    t->last_eval = *out;
}

int trainer_fork(trainer *dst, const trainer *src, gate_mode mode, gl_error *err)
{
    train_config cfg = src->cfg;
    cfg.model = src->m.cfg;
    cfg.vocab_from_data = 0;
    if (trainer_init(dst, &cfg, err))
        return -1;
    memcpy(dst->m.params, src->m.params, src->m.num_params * sizeof(float));
    memcpy(dst->o.m, src->o.m, src->o.num_params * sizeof(float));
    memcpy(dst->o.v, src->o.v, src->o.num_params * sizeof(float));
    dst->o.t = src->o.t;
    data_cursor cur;
    data_get_cursor(src->data, &cur);
    if (data_set_cursor(dst->data, &cur, err)) {
        trainer_free(dst);
        return -1;
    }
    dst->step = src->step;
    dst->last_loss = src->last_loss;
    dst->last_eval = src->last_eval;
    model_swap_mode(&dst->m, mode);
    return 0;
}

int trainer_save(trainer *t, const char *path, gl_error *err)
{
    data_cursor cur;
    data_get_cursor(t->data, &cur);
    return checkpoint_save(path, &t->m, &t->o, t->step, data_describe(t->data), &cur,
                           t->commands_done, t->owner.session ? &t->owner : NULL, err);
}

int trainer_restore(trainer *t, const char *path, gl_error *err)
{
    st_file f;
    if (st_read(path, &f, err))
        return -1;
    checkpoint_info info;
    int rc = checkpoint_info_read(&f, path, &info, err);
    if (!rc && !info.resumable)
        rc = gl_fail(err, "%s: weights-only checkpoint, cannot resume training from it", path);
    if (!rc && t->owner.session)
        rc = checkpoint_check_owner(&info, path, &t->owner, &t->m.cfg, err);
    if (!rc)
        rc = checkpoint_load_weights(&f, path, &t->m, err);
    if (!rc)
        rc = checkpoint_load_optim(&f, path, &t->m, &t->o, err);
    if (!rc) {
        t->step = info.step;
        t->o.t = info.adam_t;
        model_set_mode(&t->m, info.model.mode);
        t->m.cfg.k = info.model.k;
        t->m.cfg.gate_frozen = info.model.gate_frozen;
        t->commands_done = info.commands_done;
        rc = data_set_cursor(t->data, &info.cursor, err);
    }
    st_free(&f);
    return rc;
}
