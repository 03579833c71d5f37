/* state: the screen's model of a session, folded from telemetry records (or
 * database rows in a replay). The gate each arm runs is taken from its event
 * records, never from the trainer: the arm thread owns the trainer. */
#include "ui_state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gate.h"

/* ---- series ---- */

void ui_series_init(ui_series *s)
{
    memset(s, 0, sizeof *s);
    s->stride = 1;
    s->min = INFINITY;
    s->max = -INFINITY;
    s->last = NAN;
}

void ui_series_init_linear(ui_series *s)
{
    ui_series_init(s);
    s->linear = 1;
}

void ui_series_free(ui_series *s)
{
    free(s->step);
    free(s->v);
    free(s->lv);
    free(s->n);
    int linear = s->linear;
    ui_series_init(s);
    s->linear = linear;
}

static void series_grow(ui_series *s)
{
    size_t cap = s->cap ? s->cap * 2 : 256;
    if (cap > UI_SERIES_CAP)
        cap = UI_SERIES_CAP;
    s->step = gl_grow(s->step, s->len, cap, sizeof *s->step);
    s->v = gl_grow(s->v, s->len, cap, sizeof *s->v);
    s->lv = gl_grow(s->lv, s->len, cap, sizeof *s->lv);
    s->n = gl_grow(s->n, s->len, cap, sizeof *s->n);
    s->cap = cap;
}

/* Full at the cap: merge neighbours so the series keeps its whole range at
 * half the resolution. */
static void series_halve(ui_series *s)
{
    size_t out = 0;
    for (size_t i = 0; i + 1 < s->len; i += 2, out++) {
        double n0 = s->n[i], n1 = s->n[i + 1];
        s->v[out] = (s->v[i] * n0 + s->v[i + 1] * n1) / (n0 + n1);
        s->lv[out] = (s->lv[i] * n0 + s->lv[i + 1] * n1) / (n0 + n1);
        s->n[out] = s->n[i] + s->n[i + 1];
        s->step[out] = s->step[i + 1];
    }
    if (s->len % 2) {
        s->v[out] = s->v[s->len - 1];
        s->lv[out] = s->lv[s->len - 1];
        s->n[out] = s->n[s->len - 1];
        s->step[out] = s->step[s->len - 1];
        out++;
    }
    s->len = out;
    s->stride *= 2;
}

void ui_series_add(ui_series *s, uint64_t step, double v)
{
    if (!isfinite(v) || (!s->linear && v <= 0.0))
        return;
    s->last = v;
    s->last_step = step;
    if (v < s->min) {
        s->min = v;
        s->min_step = step;
    }
    if (v > s->max) {
        s->max = v;
        s->max_step = step;
    }
    s->count++;
    s->acc_v += v;
    s->acc_lv += s->linear ? 0.0 : log(v);
    s->acc_n++;
    s->acc_step = step;
    if (s->acc_n < s->stride)
        return;
    if (s->len == s->cap) {
        if (s->cap < UI_SERIES_CAP)
            series_grow(s);
        else
            series_halve(s);
    }
    s->step[s->len] = s->acc_step;
    s->v[s->len] = s->acc_v / s->acc_n;
    s->lv[s->len] = s->acc_lv / s->acc_n;
    s->n[s->len] = s->acc_n;
    s->len++;
    s->acc_v = s->acc_lv = 0.0;
    s->acc_n = 0;
}

size_t ui_series_points(const ui_series *s)
{
    return s->len + (s->acc_n > 0);
}

void ui_series_point(const ui_series *s, size_t i, uint64_t *step, double *v, double *lv,
                     uint32_t *n)
{
    if (i < s->len) {
        *step = s->step[i];
        *v = s->v[i];
        *lv = s->lv[i];
        *n = s->n[i];
    } else {
        *step = s->acc_step;
        *v = s->acc_v / s->acc_n;
        *lv = s->acc_lv / s->acc_n;
        *n = s->acc_n;
    }
}

int ui_series_at(const ui_series *s, uint64_t step, double *v)
{
    if (s->acc_n == 1 && s->acc_step == step) {
        *v = s->acc_v;
        return 1;
    }
    size_t lo = 0, hi = s->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->step[mid] < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->len && s->step[lo] == step && s->n[lo] == 1) {
        *v = s->v[lo];
        return 1;
    }
    return 0;
}

/* ---- the session ---- */

static const struct {
    const char *name;
    int per_layer;
} series_keys[UI_SER_COUNT] = {
    [UI_SER_GRAD_NORM] = {"grad_norm", 0},
    [UI_SER_LR] = {"lr", 0},
    [UI_SER_F1] = {"f1", 0},
    [UI_SER_MASS_KEPT] = {"mass_kept", 0},
    [UI_SER_GATE_GRAD_NORM] = {"gate_grad_norm", 0},
    [UI_SER_TOKENS_PER_S] = {"tokens_per_s", 0},
    [UI_SER_EXPERT_BALANCE] = {"expert_balance", 0},
    [UI_SER_DENSITY] = {"density", 1},
    [UI_SER_FLIP_RATE] = {"flip_rate", 1},
    [UI_SER_ORACLE_DRIFT] = {"oracle_drift", 1},
    [UI_SER_ABSORPTION] = {"absorption_index", 0},
};

const char *ui_series_key_name(ui_series_key k, int *per_layer)
{
    if ((unsigned)k >= UI_SER_COUNT) {
        if (per_layer)
            *per_layer = 0;
        return "?";
    }
    if (per_layer)
        *per_layer = series_keys[k].per_layer;
    return series_keys[k].name;
}

void ui_state_init(ui_state *st, size_t L, size_t H, size_t T, size_t B, size_t steps)
{
    memset(st, 0, sizeof *st);
    st->L = L ? L : 1;
    st->H = H ? H : 1;
    st->T = T ? T : 1;
    st->B = B;
    st->steps = steps;
}

static void arm_free(ui_arm *a)
{
    ui_series_free(&a->train);
    ui_series_free(&a->val);
    for (int k = 0; k < UI_SER_COUNT; k++)
        ui_series_free(&a->metric[k]);
    free(a->layer);
    heatmap_snapshot_free(a->heat);
}

void ui_state_free(ui_state *st)
{
    for (size_t i = 0; i < st->narms; i++)
        arm_free(&st->arms[i]);
    for (size_t i = 0; i < st->nghosts; i++) {
        ui_series_free(&st->ghosts[i].train);
        ui_series_free(&st->ghosts[i].val);
    }
    free(st->marks);
    memset(st, 0, sizeof *st);
}

ui_arm *ui_state_arm(ui_state *st, size_t i, const char *name)
{
    if (i >= LIVE_MAX_ARMS)
        return NULL;
    while (st->narms <= i) {
        ui_arm *a = &st->arms[st->narms];
        memset(a, 0, sizeof *a);
        a->changed_at = UINT64_MAX;
        snprintf(a->name, sizeof a->name, "arm%zu", st->narms);
        ui_series_init(&a->train);
        ui_series_init(&a->val);
        for (int k = 0; k < UI_SER_COUNT; k++)
            ui_series_init_linear(&a->metric[k]);
        size_t n = st->L * st->H * METRIC_COUNT;
        a->layer = xmalloc(n * sizeof *a->layer);
        for (size_t j = 0; j < n; j++)
            a->layer[j] = NAN;
        a->status = RUN_RUNNING;
        a->color = st->narms;
        a->tok_s = NAN;
        a->eval_tok_s = NAN;
        a->expert_balance = NAN;
        a->f1_0 = NAN;
        st->narms++;
    }
    if (name && *name)
        snprintf(st->arms[i].name, sizeof st->arms[i].name, "%s", name);
    return &st->arms[i];
}

ui_ghost *ui_state_add_ghost(ui_state *st, const char *name, int64_t run)
{
    if (st->nghosts >= UI_MAX_GHOSTS)
        return NULL;
    ui_ghost *g = &st->ghosts[st->nghosts++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->run = run;
    g->color = st->nghosts - 1 + 2;
    ui_series_init(&g->train);
    ui_series_init(&g->val);
    return g;
}

void ui_state_log_event(ui_state *st, uint32_t arm, uint64_t step, uint32_t kind,
                        const char *detail)
{
    /* periodic checkpoints would push everything else off the events line;
     * they stay in the database */
    if (kind == EV_CHECKPOINT && detail && strncmp(detail, "periodic", 8) == 0)
        return;
    ui_event *e = &st->events[st->nevents % UI_EVENTS];
    e->step = step;
    e->arm = arm;
    e->kind = kind;
    snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
    st->nevents++;
}

unsigned ui_state_event(ui_state *st, uint32_t arm, uint64_t step, uint32_t kind,
                        const char *detail, int has_gate, uint32_t mode, uint32_t k,
                        uint32_t frozen)
{
    ui_arm *a = ui_state_arm(st, arm, NULL);
    if (!a)
        return 0;
    unsigned dirty = UI_DIRTY_EVENTS;
    if (has_gate) {
        if (!a->have_gate)
            a->start_mode = mode;
        a->mode = mode;
        a->k = k;
        a->frozen = frozen;
        a->have_gate = 1;
        dirty |= UI_DIRTY_HEADER;
    }
    if ((kind == EV_SWAP || kind == EV_SET_K || kind == EV_FREEZE || kind == EV_UNFREEZE) &&
        step < a->changed_at)
        a->changed_at = step;
    ui_state_log_event(st, arm, step, kind, detail);
    char g = event_kind_glyph((event_kind)kind);
    if (g) {
        if (st->nmarks < UI_MARKS_MAX) {
            if (!st->marks)
                st->marks = xmalloc(UI_MARKS_MAX * sizeof *st->marks);
            st->marks[st->nmarks++] = (ui_mark){.step = step, .arm = arm, .glyph = g};
            dirty |= UI_DIRTY_LOSS;
        } else {
            st->dropped_marks++;
        }
    }
    return dirty;
}

const ui_event *ui_state_event_back(const ui_state *st, size_t i)
{
    if (i >= st->nevents || i >= UI_EVENTS)
        return NULL;
    return &st->events[(st->nevents - 1 - i) % UI_EVENTS];
}

static int final_status(run_status s)
{
    return s == RUN_FINISHED || s == RUN_STOPPED || s == RUN_DIVERGED || s == RUN_CRASHED ||
           s == RUN_FAILED;
}

unsigned ui_state_record(ui_state *st, const tel_record *r)
{
    ui_arm *a = ui_state_arm(st, r->arm, NULL);
    if (!a)
        return 0;
    switch ((rec_kind)r->kind) {
    case REC_RUN_BEGIN:
        a->start_step = r->step;
        a->forked = r->u.run.parent_arm != UINT32_MAX;
        if (r->step > a->step)
            a->step = r->step;
        return UI_DIRTY_ALL;
    case REC_STEP:
        ui_series_add(&a->train, r->step, r->u.step.loss);
        ui_series_add(&a->metric[UI_SER_GRAD_NORM], r->step, r->u.step.grad_norm);
        ui_series_add(&a->metric[UI_SER_LR], r->step, r->u.step.lr);
        if (r->step > a->step)
            a->step = r->step;
        return UI_DIRTY_LOSS | UI_DIRTY_HEADER;
    case REC_EVAL:
        ui_series_add(&a->val, r->step, r->u.eval.val_loss);
        /* without per-step telemetry the evaluation's train loss is all there is */
        if (a->train.count == 0 || a->train.last_step < r->step)
            ui_series_add(&a->train, r->step, r->u.eval.train_loss);
        a->eval_tok_s = r->u.eval.tokens_per_s;
        a->expert_balance = r->u.eval.expert_balance;
        /* a NaN is a metric the arm does not have (or one that blew up,
         * which the events report): the series skips it */
        ui_series_add(&a->metric[UI_SER_F1], r->step, r->u.eval.f1);
        ui_series_add(&a->metric[UI_SER_MASS_KEPT], r->step, r->u.eval.mass_kept);
        ui_series_add(&a->metric[UI_SER_GATE_GRAD_NORM], r->step, r->u.eval.gate_grad_norm);
        ui_series_add(&a->metric[UI_SER_TOKENS_PER_S], r->step, r->u.eval.tokens_per_s);
        ui_series_add(&a->metric[UI_SER_EXPERT_BALANCE], r->step, r->u.eval.expert_balance);
        /* the evaluation's layer records came before it */
        if (a->have_layer && a->layer_step == r->step) {
            ui_series_add(&a->metric[UI_SER_DENSITY], r->step,
                          ui_state_model_mean(st, r->arm, METRIC_DENSITY));
            ui_series_add(&a->metric[UI_SER_FLIP_RATE], r->step,
                          ui_state_model_mean(st, r->arm, METRIC_FLIP_RATE));
            ui_series_add(&a->metric[UI_SER_ORACLE_DRIFT], r->step,
                          ui_state_model_mean(st, r->arm, METRIC_ORACLE_DRIFT));
        }
        /* the absorption index, as the store computes it (issue 16) */
        if (r->step == 0)
            a->f1_0 = r->u.eval.f1;
        if (a->f1_0 < 1.0)
            ui_series_add(&a->metric[UI_SER_ABSORPTION], r->step,
                          (r->u.eval.f1 - a->f1_0) / (1.0 - a->f1_0));
        if (r->step > a->step)
            a->step = r->step;
        return UI_DIRTY_LOSS | UI_DIRTY_HEADER | UI_DIRTY_EVENTS;
    case REC_LAYER: {
        uint32_t l = r->u.layer.layer, h = r->u.layer.head;
        if (l >= st->L || h >= st->H)
            return 0;
        if (a->layer_step != r->step) {
            /* a new evaluation: forget the previous one's heads */
            size_t n = st->L * st->H * METRIC_COUNT;
            for (size_t j = 0; j < n; j++)
                a->layer[j] = NAN;
            a->layer_step = r->step;
        }
        memcpy(a->layer + ((size_t)l * st->H + h) * METRIC_COUNT, r->u.layer.value,
               sizeof r->u.layer.value);
        a->have_layer = 1;
        return UI_DIRTY_AGREE;
    }
    case REC_EVENT: {
        event_kind k = (event_kind)r->u.event.kind;
        /* every arm event carries the gate in force after it; an error made
         * up by the session loop (a refused fork) does not */
        int has_gate = k != EV_ERROR;
        return ui_state_event(st, r->arm, r->step, r->u.event.kind, r->u.event.detail, has_gate,
                              r->u.event.mode, r->u.event.k, r->u.event.frozen);
    }
    case REC_STATUS:
        a->status = (run_status)r->u.status.status;
        a->done = final_status(a->status);
        if (a->done)
            a->tok_s = 0.0;
        return UI_DIRTY_HEADER;
    default:
        return 0;
    }
}

heatmap_snapshot *ui_state_heat(ui_state *st, size_t i)
{
    if (i >= st->narms)
        return NULL;
    ui_arm *a = &st->arms[i];
    if (!a->heat)
        a->heat = heatmap_snapshot_new((uint32_t)st->L, (uint32_t)st->H, (uint32_t)st->T);
    return a->heat;
}

int ui_state_heat_maps(const ui_state *st, size_t i, size_t layer, size_t head,
                       const uint8_t **gate, const uint8_t **oracle, const uint8_t **attn)
{
    if (i >= st->narms || layer >= st->L || head >= st->H)
        return 0;
    const ui_arm *a = &st->arms[i];
    if (!a->heat || !a->have_heat)
        return 0;
    size_t at = (layer * st->H + head) * st->T * st->T;
    *gate = a->heat->gate + at;
    *oracle = a->heat->oracle + at;
    *attn = a->heat->attn + at;
    return 1;
}

double ui_state_layer_mean(const ui_state *st, size_t i, size_t layer, metric_key key)
{
    if (i >= st->narms || layer >= st->L)
        return NAN;
    const ui_arm *a = &st->arms[i];
    metrics_mean mean = {0};
    for (size_t h = 0; h < st->H; h++)
        metrics_mean_add(&mean, a->layer[(layer * st->H + h) * METRIC_COUNT + key]);
    return metrics_mean_get(&mean);
}

double ui_state_model_mean(const ui_state *st, size_t i, metric_key key)
{
    metrics_mean mean = {0};
    for (size_t l = 0; l < st->L; l++)
        metrics_mean_add(&mean, ui_state_layer_mean(st, i, l, key));
    return metrics_mean_get(&mean);
}

int ui_state_has_experts(const ui_state *st)
{
    for (size_t i = 0; i < st->narms; i++)
        if (st->arms[i].metric[UI_SER_EXPERT_BALANCE].count)
            return 1;
    return 0;
}

/* The arm listed under mode m: the gate it started with, as the database's
 * learned_vs_random pairs them (a fork starts with its parent's history and
 * is never listed there, nor here). */
static size_t find_mode(const ui_state *st, gate_mode m)
{
    for (size_t i = 0; i < st->narms; i++)
        if (st->arms[i].have_gate && st->arms[i].start_mode == (uint32_t)m &&
            !st->arms[i].forked)
            return i;
    return SIZE_MAX;
}

int ui_state_routing(const ui_state *st, ui_routing *out)
{
    static const gate_mode pairs[][2] = {{GATE_SOFT, GATE_RANDOM},
                                         {GATE_TOPK, GATE_TOPK_RANDOM}};
    size_t d = find_mode(st, GATE_DENSE);
    if (d == SIZE_MAX)
        return 0;
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        size_t l = find_mode(st, pairs[p][0]), r = find_mode(st, pairs[p][1]);
        if (l == SIZE_MAX || r == SIZE_MAX)
            continue;
        const ui_series *vl = &st->arms[l].val;
        size_t np = ui_series_points(vl);
        /* the newest evaluation all three have while each still ran the gate
         * it is listed under (an arm evaluates before it applies a command,
         * so the step of a swap still counts) */
        uint64_t clean = st->arms[l].changed_at;
        if (st->arms[r].changed_at < clean)
            clean = st->arms[r].changed_at;
        if (st->arms[d].changed_at < clean)
            clean = st->arms[d].changed_at;
        for (size_t back = 0; back < np; back++) {
            uint64_t step;
            double v, lv, vr, vd;
            uint32_t n;
            ui_series_point(vl, np - 1 - back, &step, &v, &lv, &n);
            if (n != 1 || step > clean || !ui_series_at(&st->arms[r].val, step, &vr) ||
                !ui_series_at(&st->arms[d].val, step, &vd))
                continue;
            out->learned = l;
            out->random = r;
            out->dense = d;
            out->step = step;
            out->ppl_l = exp(v);
            out->ppl_r = exp(vr);
            out->ppl_d = exp(vd);
            out->benefit = out->ppl_r - out->ppl_l;
            /* below the floor of sessions/README.md (1% of dense) the ratio
             * is noise over noise: not shown, as the database leaves it NULL */
            double span = out->ppl_r - out->ppl_d;
            out->relative = fabs(span) >= 0.01 * out->ppl_d ? out->benefit / span : NAN;
            out->clean = clean;
            return 1;
        }
    }
    return 0;
}

int ui_state_all_done(const ui_state *st)
{
    if (!st->narms)
        return 0;
    for (size_t i = 0; i < st->narms; i++)
        if (!st->arms[i].done)
            return 0;
    return 1;
}

int ui_state_all_paused(const ui_state *st)
{
    size_t paused = 0;
    for (size_t i = 0; i < st->narms; i++) {
        const ui_arm *a = &st->arms[i];
        if (a->done)
            continue;
        if (a->status != RUN_PAUSED)
            return 0;
        paused++;
    }
    return paused > 0;
}

uint64_t ui_state_max_step(const ui_state *st)
{
    uint64_t m = 0;
    for (size_t i = 0; i < st->narms; i++)
        if (st->arms[i].step > m)
            m = st->arms[i].step;
    return m;
}
