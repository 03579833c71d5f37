/* experiment_absorption: `gatelab experiment absorption` (DESIGN §7). Per
 * seed one live session of the arms dense, soft, random, sigmoid, topk and
 * stochastic (ordinary stored runs); then the paper's four lines of evidence
 * measured on their checkpoints — the topk arm's gate gradient, a
 * finite-difference probe of its gate, a fresh gate distilled onto the
 * frozen dense, random and soft models, and every gated model evaluated
 * dense — and the table beside the paper's figures, with the absorption
 * index of each gated arm (the co-adaptation trace, view absorption_trace)
 * and the cross-deployment matrix of the six arms (experiment_crossdeploy.c). Every number comes
 * from a run, a checkpoint or the metrics table: nothing is adjusted to
 * agree with the paper. */
#include "experiment_absorption.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "distill.h"
#include "distill_cli.h"
#include "evaluate.h"
#include "experiment.h"
#include "experiment_crossdeploy.h"
#include "gate.h"
#include "model.h"
#include "record.h"
#include "rng.h"
#include "store.h"

/* ---- what one seed measures ---- */

/* the arms of every seed, in session order */
typedef enum {
    ABSORB_DENSE,
    ABSORB_SOFT,
    ABSORB_RANDOM,
    ABSORB_SIGMOID,
    ABSORB_TOPK,
    ABSORB_STOCH,
    ABSORB_NARMS
} absorb_arm;

/* line 3 distils onto these (mask-agnostic first, then the co-adapted) */
typedef enum { ABSORB_D_DENSE, ABSORB_D_RANDOM, ABSORB_D_SOFT, ABSORB_NDIST } absorb_dist;

/* the finite-difference probe of line 2: a random sign vector u over every
 * gate.q/gate.k weight, the loss at w +- eps u for each eps, then one large
 * random move as the control that the gate does change the loss */
#define ABSORB_PROBE_NEPS 2

typedef struct {
    size_t grad_nonzero;              /* backprop gate-gradient entries != 0 on the probe batch */
    double change[ABSORB_PROBE_NEPS]; /* max |L(w +- eps u) - L(w)| */
    double slope[ABSORB_PROBE_NEPS];  /* (L(w + eps u) - L(w - eps u)) / (2 eps) */
    double large_change;              /* L(w + 0.1 N(0,1)) - L(w) */
} absorb_probe;

/* The co-adaptation trace of one arm at its last evaluation (issue 16,
 * view absorption_trace): [0] the model, [1 + l] layer l; NaN when the arm
 * has no gate mask or no step-0 evaluation. */
typedef struct {
    size_t layers;
    uint64_t step;
    double f1[1 + DISTILL_MAX_LAYERS], f1_0[1 + DISTILL_MAX_LAYERS];
    double chance[1 + DISTILL_MAX_LAYERS], index[1 + DISTILL_MAX_LAYERS];
} absorb_trace;

/* one seed: its session, runs, checkpoints and measurements */
typedef struct {
    uint64_t seed;
    int64_t session;
    int64_t run[ABSORB_NARMS];
    char ckpt[ABSORB_NARMS][REC_TEXT];
    uint64_t ckpt_step[ABSORB_NARMS];   /* their steps (the distilled files are named by them) */
    double ppl[ABSORB_NARMS];           /* final val ppl, from the store */
    double dense_ppl[ABSORB_NARMS];     /* each checkpoint evaluated dense */
    size_t grad_evals;
    double grad_max;                    /* max |gate_grad_norm| of the topk run */
    absorb_probe probe, soft_probe;     /* the topk arm, and the soft arm as the smooth control */
    double dist_f1[ABSORB_NDIST], dist_chance[ABSORB_NDIST], dist_ppl[ABSORB_NDIST];
    double dist_source_ppl[ABSORB_NDIST];
    double dist_thr_f1[ABSORB_NDIST];
    int64_t dist_run[ABSORB_NDIST];
    double sigmoid_density;
    double oracle_mass[DISTILL_MAX_LAYERS];
    size_t layers;
    crossdeploy_matrix cross;           /* every arm under every gate mode */
    absorb_trace trace[ABSORB_NARMS];   /* the co-adaptation trace's last evaluation */
} absorb_seed;

static const gate_mode absorb_mode[ABSORB_NARMS] = {GATE_DENSE,   GATE_SOFT, GATE_RANDOM,
                                                    GATE_SIGMOID, GATE_TOPK, GATE_STOCHASTIC};
static const int absorb_dist_arm[ABSORB_NDIST] = {ABSORB_DENSE, ABSORB_RANDOM, ABSORB_SOFT};
static const float absorb_probe_eps[ABSORB_PROBE_NEPS] = {1e-3f, 1e-6f};
#define PROBE_LARGE 0.1f
#define PROBE_WINDOWS 8

/* ---- checkpoints: the top-k probe ---- */

/* Loads a checkpoint (in its own mode) and probes its loss on the first val
 * windows in the gate weights: the backprop gradient, the loss along +-eps u
 * for every absorb_probe_eps, and one large random move. */
static int probe_gate(const char *path, const data_source *data, size_t threads, uint64_t seed,
                      absorb_probe *p, gl_error *err)
{
    memset(p, 0, sizeof *p);
    checkpoint_info info;
    model m;
    if (checkpoint_load_model(path, -1, threads, &m, &info, err))
        return -1;
    const size_t T = m.cfg.T;
    size_t nb = data_val_windows(data);
    if (nb > PROBE_WINDOWS)
        nb = PROBE_WINDOWS;
    if (nb > m.cfg.batch)
        nb = m.cfg.batch;
    int32_t *win = xcalloc(nb * (T + 1), sizeof *win);
    int32_t *in = xcalloc(nb * T, sizeof *in), *tg = xcalloc(nb * T, sizeof *tg);
    const evaluate_spec first = {.data = data};
    evaluate_load(&first, T, 0, nb, win, in, tg);
    /* stochastic masks (none here) would need a fixed salt to compare losses */
    m.step_salt = 0;
    double base = model_forward(&m, in, tg, nb);
    model_backward(&m);
    size_t ng = 0;
    for (size_t i = 0; i < m.ntensors; i++)
        if (m.tensors[i].is_gate) {
            for (size_t j = 0; j < m.tensors[i].numel; j++)
                p->grad_nonzero += m.grads[m.tensors[i].offset + j] != 0.0f;
            if (m.tensors[i].ndim == 2)
                ng += m.tensors[i].numel;
        }
    /* the gate's q/k weights, flattened in tensor-table order */
    float **w = xcalloc(ng, sizeof *w);
    size_t at = 0;
    for (size_t i = 0; i < m.ntensors; i++)
        if (m.tensors[i].is_gate && m.tensors[i].ndim == 2)
            for (size_t j = 0; j < m.tensors[i].numel; j++)
                w[at++] = &m.params[m.tensors[i].offset + j];
    float *keep = xcalloc(ng, sizeof *keep), *u = xcalloc(ng, sizeof *u);
    rng_state r;
    rng_seed(&r, rng_derive(seed, 0x70726f6265ULL));
    for (size_t i = 0; i < ng; i++) {
        keep[i] = *w[i];
        u[i] = rng_below(&r, 2) ? 1.0f : -1.0f;
    }
    for (size_t e = 0; e < ABSORB_PROBE_NEPS; e++) {
        double l[2];
        for (int side = 0; side < 2; side++) {
            for (size_t i = 0; i < ng; i++)
                *w[i] = keep[i] + (side ? -absorb_probe_eps[e] : absorb_probe_eps[e]) * u[i];
            l[side] = model_forward(&m, in, tg, nb);
            p->change[e] = fmax(p->change[e], fabs(l[side] - base));
        }
        p->slope[e] = (l[0] - l[1]) / (2.0 * (double)absorb_probe_eps[e]);
    }
    for (size_t i = 0; i < ng; i++)
        *w[i] = keep[i] + PROBE_LARGE * rng_normal(&r);
    p->large_change = model_forward(&m, in, tg, nb) - base;
    free(w);
    free(keep);
    free(u);
    free(win);
    free(in);
    free(tg);
    model_free(&m);
    return 0;
}

/* ---- the kind's tasks (experiment_farm.h) ---- */

/* the probe: its result's doubles; the distillation: its packed result in
 * the tail (task mode: the source arm's, which names its progress lines) */
enum { ABSORB_TASK_PROBE = EXPERIMENT_TASK_KIND, ABSORB_TASK_DISTILL };
/* a seed's tasks: 3 distillations, 2 probes, 6 + 1 evaluations, the
 * cross-deployment matrix */
#define ABSORB_TASKS \
    (ABSORB_NDIST + 2 + ABSORB_NARMS + 1 + ABSORB_NARMS * CROSSDEPLOY_TASKS_PER_ROW)

/* a distillation of line 3 onto a checkpoint of seed `seed` */
static void distill_settings(const experiment_args *a, uint64_t seed, distill_config *dc)
{
    distill_default_config(dc);
    dc->steps = a->distill_steps;
    dc->warmup = dc->steps / 10;
    dc->batch = a->tc.model.batch;
    dc->seed = seed;
}

/* Distils onto t's checkpoint, writes the distilled file beside it (the
 * filesystem every rank sees) and packs the result into out's tail;
 * progress lines on rank 0, whose stdout is the experiment's. */
static int distill_task(const experiment_env *env, const experiment_task *t,
                        experiment_task_out *out, gl_error *e)
{
    const experiment_args *a = env->a;
    distill_config dc;
    distill_settings(a, t->seed, &dc);
    char path[1024], prefix[96];
    if (distill_cli_out_path(t->path, t->step, &dc, path, sizeof path, e))
        return -1;
    snprintf(prefix, sizeof prefix, "  onto %s: ", gate_mode_name((gate_mode)t->mode));
    distill_cli_progress pr = {.prefix = prefix,
                               .every = dc.steps >= 3 ? dc.steps / 3 : 1,
                               .t0 = gl_now()};
    distill_result r;
    int rc = distill_checkpoint(t->path, a->tc.data_path, &dc, env->windows, a->tc.threads,
                                path, env->rank == 0 ? distill_cli_on_progress : NULL, &pr, 1,
                                &r, e);
    if (pr.bar_ready)
        progress_bar_clear(&pr.bar);
    if (rc)
        return -1;
    distill_result_pack(&r, experiment_task_out_more(out, distill_result_pack(&r, NULL)));
    distill_result_free(&r);
    return 0;
}

static int absorb_compute(void *ctx, const experiment_task *t, experiment_task_out *out,
                          gl_error *e)
{
    const experiment_env *env = ctx;
    if (t->op == ABSORB_TASK_DISTILL)
        return distill_task(env, t, out, e);
    if (t->op != ABSORB_TASK_PROBE)
        return gl_fail(e, "experiment absorption: a task of unknown kind %d", (int)t->op);
    absorb_probe p;
    if (probe_gate(t->path, env->data, env->a->tc.threads, t->seed, &p, e))
        return -1;
    _Static_assert(1 + 2 * ABSORB_PROBE_NEPS + 1 <= EXPERIMENT_TASK_VALUES, "a probe's values");
    out->v[0] = (double)p.grad_nonzero;
    for (size_t k = 0; k < ABSORB_PROBE_NEPS; k++) {
        out->v[1 + k] = p.change[k];
        out->v[1 + ABSORB_PROBE_NEPS + k] = p.slope[k];
    }
    out->v[1 + 2 * ABSORB_PROBE_NEPS] = p.large_change;
    return 0;
}

static void decode_probe(const experiment_task_out *o, absorb_probe *p)
{
    p->grad_nonzero = (size_t)o->v[0];
    for (size_t k = 0; k < ABSORB_PROBE_NEPS; k++) {
        p->change[k] = o->v[1 + k];
        p->slope[k] = o->v[1 + ABSORB_PROBE_NEPS + k];
    }
    p->large_change = o->v[1 + 2 * ABSORB_PROBE_NEPS];
}

/* ---- the co-adaptation trace ---- */

/* keeps the rows of the newest step (they come in step order) */
static int take_trace(void *ctx, const store_absorption_row *r)
{
    absorb_trace *t = ctx;
    if (r->step != t->step) {
        t->step = r->step;
        t->layers = 0;
    }
    size_t at = r->layer < 0 ? 0 : 1 + (size_t)r->layer;
    if (at > DISTILL_MAX_LAYERS)
        return 0;
    if (r->layer >= 0 && (size_t)r->layer + 1 > t->layers)
        t->layers = (size_t)r->layer + 1;
    t->f1[at] = r->f1;
    t->f1_0[at] = r->f1_0;
    t->chance[at] = r->chance;
    t->index[at] = r->index;
    return 0;
}

static int read_trace(store *st, int64_t run, absorb_trace *t, gl_error *e)
{
    t->step = UINT64_MAX;
    t->layers = 0;
    for (size_t i = 0; i <= DISTILL_MAX_LAYERS; i++)
        t->f1[i] = t->f1_0[i] = t->chance[i] = t->index[i] = NAN;
    return store_list_absorption(st, run, 0, take_trace, t, e);
}

/* ---- one seed: its session, runs, checkpoints and measurements ---- */

/* Rank 0: the batch's results of seed s (distillations in out[0..3),
 * probes from first_probe on) printed and stored. */
static int seed_results(const experiment_env *x, absorb_seed *s, const experiment_task_out *out,
                        size_t first_probe, gl_error *e)
{
    const experiment_args *a = x->a;
    const char *pre = "  ";
    const size_t first_eval = first_probe + 2;
    const size_t sigmoid_dense = first_eval + ABSORB_NARMS;
    const size_t first_cross = sigmoid_dense + 1;
    decode_probe(&out[first_probe], &s->probe);
    decode_probe(&out[first_probe + 1], &s->soft_probe);
    for (size_t i = 0; i < ABSORB_NARMS; i++) {
        const experiment_task_out *o = &out[first_eval + i];
        s->dense_ppl[i] = i == ABSORB_SIGMOID ? out[sigmoid_dense].v[0] : o->v[0];
        if (i == ABSORB_DENSE) {
            s->layers = (size_t)o->v[3];
            for (size_t l = 0; l < s->layers; l++)
                s->oracle_mass[l] = o->v[4 + l];
        }
        if (i == ABSORB_SIGMOID)
            s->sigmoid_density = o->v[1];
    }
    crossdeploy_fill(&s->cross, out + first_cross);
    printf("%stopk: gate grad norm max %g over %zu evaluations, %zu backprop gate-gradient "
           "entries != 0 | |loss change| along random signs: +-1e-3 %g, +-1e-6 %g "
           "(soft, the smooth control: %g, %g; slope %.4g) | %+.6f after a %g random move\n",
           pre, s->grad_max, s->grad_evals, s->probe.grad_nonzero, s->probe.change[0],
           s->probe.change[1], s->soft_probe.change[0], s->soft_probe.change[1],
           s->soft_probe.slope[1], s->probe.large_change, (double)PROBE_LARGE);
    printf("%sevaluated dense:", pre);
    for (size_t i = 0; i < ABSORB_NARMS; i++)
        printf(" %s %.3f (as trained %.3f)%s", gate_mode_name(absorb_mode[i]), s->dense_ppl[i],
               s->ppl[i], i + 1 < ABSORB_NARMS ? "," : "\n");
    printf("%scross-deployment (evaluated under dense .. stochastic, / as trained):", pre);
    for (size_t i = 0; i < s->cross.n; i++) {
        printf(" %s", s->cross.label[i]);
        for (size_t c = 0; c < CROSSDEPLOY_NCOLS; c++)
            printf("%s%.2f", c ? "," : " ", s->cross.ppl[i][c] / s->cross.own[i]);
        printf("%s", i + 1 < s->cross.n ? ";" : "\n");
    }
    /* line 3: the fresh gates distilled onto the frozen dense, random and
     * soft models, each stored as a run of the session */
    for (size_t di = 0; di < ABSORB_NDIST; di++) {
        const int ai = absorb_dist_arm[di];
        char path[1024], prefix[96];
        distill_config dc;
        distill_settings(a, s->seed, &dc);
        distill_result r;
        /* the path the task wrote: the same function of the same inputs */
        if (distill_cli_out_path(s->ckpt[ai], s->ckpt_step[ai], &dc, path, sizeof path, e) ||
            distill_result_unpack(&r, out[di].more, out[di].nmore, e))
            return -1;
        snprintf(prefix, sizeof prefix, "%sonto %s: ", pre, gate_mode_name(absorb_mode[ai]));
        distill_cli_print(prefix, &r);
        int64_t arm = store_next_arm(x->st, s->session, e);
        distill_cli_record d = {.source_run = s->run[ai],
                                .source_name = gate_mode_name(absorb_mode[ai]),
                                .source_ckpt = s->ckpt[ai], .out_ckpt = path,
                                .data_path = a->tc.data_path, .eval_windows = x->windows,
                                .cfg = &dc, .res = &r};
        int64_t run = arm < 0 ? -1 : distill_cli_store(x->st, s->session, arm, &d, e);
        char label[40];
        snprintf(label, sizeof label, "distill:%s", gate_mode_name(absorb_mode[ai]));
        /* --tag: the distillation is a run of the session like the arms */
        for (size_t t = 0; run >= 0 && t < a->ntags; t++)
            if (store_tag_set(x->st, run, a->tags[t].key, a->tags[t].value, e))
                run = -1;
        if (run < 0 || (x->experiment && store_experiment_link(x->st, x->experiment, run,
                                                               s->seed, "distill", label, e))) {
            distill_result_free(&r);
            return -1;
        }
        s->dist_run[di] = run;
        s->dist_f1[di] = r.f1;
        s->dist_chance[di] = r.chance;
        s->dist_ppl[di] = r.val_ppl;
        s->dist_source_ppl[di] = r.source_val_ppl;
        s->dist_thr_f1[di] = r.held_out.thr_f1;
        distill_result_free(&r);
    }
    return 0;
}

/* the plan's measure: ctx is the absorb_seed array */
static int measure_seed(void *ctx, const experiment_env *x, size_t seed_index, int64_t session,
                        gl_error *e)
{
    absorb_seed *s = (absorb_seed *)ctx + seed_index;
    s->seed = seed_index + 1;
    s->session = session;
    const char *names[ABSORB_NARMS];
    for (size_t i = 0; i < ABSORB_NARMS; i++)
        names[i] = gate_mode_name(absorb_mode[i]);
    if (experiment_session_runs(x->st, s->session, names, ABSORB_NARMS, EXPERIMENT_BY_MODE,
                                s->run, s->ppl, e))
        return -1;
    for (size_t i = 0; i < ABSORB_NARMS; i++) {
        store_checkpoint_row ck;
        if (store_find_checkpoint(x->st, s->run[i], UINT64_MAX, 0, &ck, e))
            return -1;
        snprintf(s->ckpt[i], sizeof s->ckpt[i], "%s", ck.path);
        s->ckpt_step[i] = ck.step;
        if (x->experiment &&
            store_experiment_link(x->st, x->experiment, s->run[i], s->seed, "arm",
                                  gate_mode_name(absorb_mode[i]), e))
            return -1;
    }
    const char *pre = "  ";
    /* the co-adaptation trace: each gated arm's absorption index at its
     * last evaluation, from the step-0 evaluation on */
    printf("%sabsorption index (F1_t - F1_0) / (1 - F1_0) at the last evaluation:", pre);
    for (size_t i = 0; i < ABSORB_NARMS; i++) {
        if (read_trace(x->st, s->run[i], &s->trace[i], e))
            return -1;
        if (!isnan(s->trace[i].f1[0]))
            printf(" %s %.3f (F1 %.3f -> %.3f)", gate_mode_name(absorb_mode[i]),
                   s->trace[i].index[0], s->trace[i].f1_0[0], s->trace[i].f1[0]);
    }
    printf("\n");
    /* line 2: the topk arm's gate gradient at every evaluation */
    store_metric_stats gs;
    if (store_metric_summary(x->st, s->run[ABSORB_TOPK], "gate_grad_norm", &gs, e))
        return -1;
    s->grad_evals = gs.count;
    s->grad_max = gs.max_abs;
    /* every computation on the checkpoints, one batch over the ranks: the
     * distillations first (the long tasks: one per rank as far as they go;
     * line 3), the probes (line 2), every checkpoint evaluated dense (line
     * 4, the sigmoid one also in its own mode) and the cross-deployment
     * matrix of the six arms (before the distillations join the session) */
    experiment_task *tasks = xcalloc(ABSORB_TASKS, sizeof *tasks);
    experiment_task_out *out = xcalloc(ABSORB_TASKS, sizeof *out);
    size_t nt = 0;
    for (size_t di = 0; di < ABSORB_NDIST; di++) {
        const int ai = absorb_dist_arm[di];
        tasks[nt] = experiment_task_make(ABSORB_TASK_DISTILL, s->ckpt[ai], (int)absorb_mode[ai],
                                         s->seed);
        tasks[nt++].step = s->ckpt_step[ai];
    }
    const size_t first_probe = nt;
    tasks[nt++] = experiment_task_make(ABSORB_TASK_PROBE, s->ckpt[ABSORB_TOPK], -1, s->seed);
    tasks[nt++] = experiment_task_make(ABSORB_TASK_PROBE, s->ckpt[ABSORB_SOFT], -1, s->seed);
    GL_ASSERT(nt == first_probe + 2);   /* the layout seed_results reads */
    for (size_t i = 0; i < ABSORB_NARMS; i++) {
        int own = i == ABSORB_DENSE || i == ABSORB_SIGMOID;
        tasks[nt++] = experiment_task_make(own ? EXPERIMENT_TASK_EVAL_METRICS
                                               : EXPERIMENT_TASK_EVAL,
                                           s->ckpt[i], own ? -1 : GATE_DENSE, s->seed);
    }
    tasks[nt++] = experiment_task_make(EXPERIMENT_TASK_EVAL, s->ckpt[ABSORB_SIGMOID], GATE_DENSE,
                                       s->seed);
    int ct = crossdeploy_tasks(x->st, s->run, ABSORB_NARMS, 1, &s->cross, tasks + nt, e);
    int rc = ct < 0 ? -1 : 0;
    if (!rc) {
        nt += (size_t)ct;
        GL_ASSERT(nt <= ABSORB_TASKS);
        rc = experiment_farm_run(x->farm, tasks, nt, out, e);
    }
    if (!rc)
        rc = seed_results(x, s, out, first_probe, e);
    experiment_task_outs_free(out, nt);
    free(tasks);
    free(out);
    return rc;
}

/* the plan's config_json */
static void config_json_of(const experiment_args *a, json_buf *b)
{
    json_key(b, "distill_steps");
    json_uint(b, a->distill_steps);
}

/* ---- the absorption table ---- */

static void build_table(experiment_table *t, const absorb_seed *s, size_t n)
{
    double v[ABSORB_NARMS][EXPERIMENT_MAX_SEEDS], w[EXPERIMENT_MAX_SEEDS];
    for (size_t a = 0; a < ABSORB_NARMS; a++)
        for (size_t i = 0; i < n; i++)
            v[a][i] = s[i].ppl[a];
    double md, sd_, ms_, mr_;
    experiment_table_stats(v[ABSORB_DENSE], n, &md, &sd_);
    experiment_table_stats(v[ABSORB_SOFT], n, &ms_, &sd_);
    experiment_table_stats(v[ABSORB_RANDOM], n, &mr_, &sd_);

    /* line 1 */
    experiment_table_add_stat(t, "1", "dense: final val ppl", v[ABSORB_DENSE], n, 3,
                              "37.3 (line 4)", "n/a");
    experiment_table_add_stat(t, "1", "soft (learned gate): final val ppl", v[ABSORB_SOFT], n, 3,
                              "48.73 +- 0.60", "n/a");
    experiment_table_add_stat(t, "1", "random (frozen gate): final val ppl", v[ABSORB_RANDOM], n, 3,
                              "49.83 +- 0.04", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].ppl[ABSORB_RANDOM] - s[i].ppl[ABSORB_SOFT];
    store_result_row *r = experiment_table_add_stat(
        t, "1", "random - soft ppl (> 0: the learned gate helps)", w, n, 3, "1.10", "");
    snprintf(r->same_direction, sizeof r->same_direction, "%s",
             experiment_table_yes_no(r->value > 0.0));
    r = experiment_table_add_row(t, "1", "routing benefit (R - L) / (R - D) of the means", "0.09",
                                 "");
    r->value = (mr_ - ms_) / (mr_ - md);
    snprintf(r->gatelab, sizeof r->gatelab, "%.3f", r->value);
    snprintf(r->same_direction, sizeof r->same_direction, "%s",
             isnan(r->value) ? "n/a" : experiment_table_yes_no(fabs(r->value) < 0.5));
    experiment_table_add_stat(t, "1", "sigmoid (naive gate): final val ppl", v[ABSORB_SIGMOID], n,
                              3, "-", "n/a");

    /* line 2 */
    size_t evals = 0, zero = 1, nonzero = 0;
    double gmax = 0.0, dmax[ABSORB_PROBE_NEPS] = {0.0, 0.0};
    for (size_t i = 0; i < n; i++) {
        evals += s[i].grad_evals;
        zero &= s[i].grad_evals > 0 && s[i].grad_max == 0.0;
        gmax = fmax(gmax, s[i].grad_max);
        nonzero += s[i].probe.grad_nonzero;
        for (size_t k = 0; k < ABSORB_PROBE_NEPS; k++)
            dmax[k] = fmax(dmax[k], s[i].probe.change[k]);
    }
    r = experiment_table_add_row(t, "2", "topk: gate grad norm at every evaluation (max)",
                                 "0 (exact)", experiment_table_yes_no(zero));
    r->value = gmax;
    snprintf(r->gatelab, sizeof r->gatelab, "%s%g (%zu evals)", zero ? "exactly " : "", gmax,
             evals);
    r = experiment_table_add_row(t, "2", "topk: backprop gate-gradient entries != 0 (probe)", "0",
                                 experiment_table_yes_no(nonzero == 0));
    r->value = (double)nonzero;
    snprintf(r->gatelab, sizeof r->gatelab, "%zu", nonzero);
    for (size_t k = 0; k < ABSORB_PROBE_NEPS; k++) {
        char q[96];
        snprintf(q, sizeof q, "topk: max abs loss change, gate weights +-%g u",
                 (double)absorb_probe_eps[k]);
        r = experiment_table_add_row(t, "2", q, "0 (flat)",
                                     experiment_table_yes_no(dmax[k] == 0.0));
        r->value = dmax[k];
        snprintf(r->gatelab, sizeof r->gatelab, "%s%.3g", dmax[k] == 0.0 ? "bit-identical, " : "",
                 dmax[k]);
    }
    for (size_t i = 0; i < n; i++)
        w[i] = fabs(s[i].soft_probe.slope[ABSORB_PROBE_NEPS - 1]);
    char q2[96];
    snprintf(q2, sizeof q2, "soft (control): abs FD slope along u at +-%g",
             (double)absorb_probe_eps[ABSORB_PROBE_NEPS - 1]);
    experiment_table_add_stat(t, "2", q2, w, n, 4, "-", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].probe.large_change;
    experiment_table_add_stat(t, "2", "topk: loss change, gate + 0.1 N(0,1) (control)", w, n, 4,
                              "-", "n/a");

    /* line 3 */
    static const char *paper_ppl[ABSORB_NDIST] = {"48.6", "601.6 (co-adapted)",
                                                  "601.6 (co-adapted)"};
    static const char *paper_ratio[ABSORB_NDIST] = {"1.30 (48.6/37.3)", "12.1 (601.6/49.83)",
                                                    "12.3 (601.6/48.73)"};
    double ratio[ABSORB_NDIST][EXPERIMENT_MAX_SEEDS], rmean[ABSORB_NDIST], sd;
    for (size_t di = 0; di < ABSORB_NDIST; di++) {
        for (size_t i = 0; i < n; i++)
            ratio[di][i] = s[i].dist_ppl[di] / s[i].ppl[absorb_dist_arm[di]];
        experiment_table_stats(ratio[di], n, &rmean[di], &sd);
    }
    for (size_t di = 0; di < ABSORB_NDIST; di++) {
        const char *m = gate_mode_name(absorb_mode[absorb_dist_arm[di]]);
        char q[96];
        double c[EXPERIMENT_MAX_SEEDS], cm;
        for (size_t i = 0; i < n; i++) {
            w[i] = s[i].dist_f1[di];
            c[i] = s[i].dist_chance[di];
        }
        experiment_table_stats(c, n, &cm, &sd);
        snprintf(q, sizeof q, "distilled onto %s: F1 vs oracle (chance %.3f)", m, cm);
        r = experiment_table_add_stat(t, "3", q, w, n, 3, di == ABSORB_D_DENSE ? "-" : "high",
                                      "n/a");
        if (di != ABSORB_D_DENSE)
            snprintf(r->same_direction, sizeof r->same_direction, "%s",
                     experiment_table_yes_no(r->value >= 2.0 * cm));
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].dist_ppl[di];
        snprintf(q, sizeof q, "distilled onto %s: deployed val ppl", m);
        experiment_table_add_stat(t, "3", q, w, n, 3, paper_ppl[di], "n/a");
        snprintf(q, sizeof q, "distilled onto %s: deployed / trained ppl", m);
        r = experiment_table_add_stat(t, "3", q, ratio[di], n, 3, paper_ratio[di], "n/a");
        if (di != ABSORB_D_DENSE)
            snprintf(r->same_direction, sizeof r->same_direction, "%s",
                     experiment_table_yes_no(r->value > rmean[ABSORB_D_DENSE]));
    }

    /* line 4 */
    experiment_table_add_stat(t, "4", "dense baseline: val ppl", v[ABSORB_DENSE], n, 3, "37.3",
                              "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].dense_ppl[ABSORB_STOCH];
    experiment_table_add_stat(t, "4", "stochastic arm evaluated dense", w, n, 3, "78.2", "n/a");
    experiment_table_add_stat(t, "4", "stochastic arm with its own stochastic masks",
                              v[ABSORB_STOCH], n, 3, "-", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].dense_ppl[ABSORB_STOCH] / s[i].ppl[ABSORB_DENSE];
    r = experiment_table_add_stat(t, "4", "stochastic-evaluated-dense / dense ppl", w, n, 3,
                                  "2.10 (78.2/37.3)", "");
    snprintf(r->same_direction, sizeof r->same_direction, "%s",
             experiment_table_yes_no(r->value > 1.0));

    /* alongside: every gated model without its gate, the sigmoid gate's
     * density, and the oracle's own mass per layer of the dense model */
    static const int gated[] = {ABSORB_SOFT, ABSORB_RANDOM, ABSORB_SIGMOID, ABSORB_TOPK};
    for (size_t g = 0; g < sizeof gated / sizeof gated[0]; g++) {
        char q[96];
        double own, sdo;
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].ppl[gated[g]];
        experiment_table_stats(w, n, &own, &sdo);
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].dense_ppl[gated[g]];
        snprintf(q, sizeof q, "%s evaluated dense (as trained %.3f)",
                 gate_mode_name(absorb_mode[gated[g]]), own);
        experiment_table_add_stat(t, "+", q, w, n, 3, "-", "n/a");
    }
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].sigmoid_density;
    experiment_table_add_stat(t, "+", "sigmoid gate density (kept / visible)", w, n, 3, "-", "n/a");
    for (size_t l = 0; l < s[0].layers; l++) {
        char q[96];
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].oracle_mass[l];
        snprintf(q, sizeof q, "oracle attention mass kept, layer %zu (dense)", l);
        experiment_table_add_stat(t, "+", q, w, n, 3, l == 0 ? "~0.90 (k=64 of 512)" : "~0.90",
                                  "n/a");
    }

    /* the co-adaptation trace: per gated arm, the absorption index of the
     * model and of each layer at the last evaluation, F1 from step 0 */
    for (size_t g = 0; g < sizeof gated / sizeof gated[0]; g++) {
        const int ai = gated[g];
        for (size_t at = 0; at <= s[0].trace[ai].layers; at++) {
            double f0[EXPERIMENT_MAX_SEEDS], f1[EXPERIMENT_MAX_SEEDS], ch[EXPERIMENT_MAX_SEEDS];
            double m0, m1, mc, sd;
            for (size_t i = 0; i < n; i++) {
                w[i] = s[i].trace[ai].index[at];
                f0[i] = s[i].trace[ai].f1_0[at];
                f1[i] = s[i].trace[ai].f1[at];
                ch[i] = s[i].trace[ai].chance[at];
            }
            if (isnan(f1[0]))
                continue;
            experiment_table_stats(f0, n, &m0, &sd);
            experiment_table_stats(f1, n, &m1, &sd);
            experiment_table_stats(ch, n, &mc, &sd);
            char q[128], where[32];
            if (at == 0)
                snprintf(where, sizeof where, "model");
            else
                snprintf(where, sizeof where, "layer %zu", at - 1);
            snprintf(q, sizeof q, "absorption index, %s %s (F1 %.3f -> %.3f, chance %.3f)",
                     gate_mode_name(absorb_mode[ai]), where, m0, m1, mc);
            experiment_table_add_stat(t, "A", q, w, n, 3, "-", "n/a");
        }
    }

    /* the cross-deployment matrix, every cell over the seeds */
    crossdeploy_matrix *cm = xcalloc(n, sizeof *cm);
    for (size_t i = 0; i < n; i++)
        cm[i] = s[i].cross;
    crossdeploy_add_rows(t, cm, n);
    free(cm);
}

/* ---- experiment absorption: its plan ---- */

static void absorption_header(const experiment_env *env)
{
    const experiment_args *a = env->a;
    const train_config *tc = &a->tc;
    const model_config *c = &tc->model;
    printf("experiment absorption | preset %s | %zu params | V=%zu T=%zu d=%zu L=%zu H=%zu r=%zu "
           "k=%zu batch %zu | %zu seeds x %zu steps, arms dense soft random sigmoid topk "
           "stochastic | distill %zu updates | %zu threads | data %s | db %s\n",
           c->preset, model_count_params(c), c->V, c->T, c->d, c->layers, c->heads, c->r, c->k,
           c->batch, a->seeds, tc->steps, a->distill_steps, tc->threads,
           data_describe(env->data), a->db);
}

static void absorption_table(void *ctx, const experiment_env *env, experiment_table *t)
{
    build_table(t, ctx, env->a->seeds);
}

int experiment_absorption_run(experiment_args *a, int argc, char **argv, const world *w)
{
    const char *names[ABSORB_NARMS];
    for (size_t i = 0; i < ABSORB_NARMS; i++)
        names[i] = gate_mode_name(absorb_mode[i]);
    absorb_seed *seeds = xcalloc(a->seeds, sizeof *seeds);
    const experiment_plan plan = {.kind = "absorption", .title = "routing absorption",
                                  .names = names, .modes = absorb_mode, .narms = ABSORB_NARMS,
                                  .print_header = absorption_header,
                                  .config_json = config_json_of, .ctx = seeds,
                                  .measure = measure_seed,
                                  .build_table = absorption_table,
                                  .compute = absorb_compute};
    int status = experiment_run(a, &plan, argc, argv, w);
    free(seeds);
    return status;
}
