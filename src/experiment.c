/* experiment: `gatelab experiment absorption` (DESIGN §7): one live session
 * per seed (live.c, stored like any `run`) and the measurements on their
 * checkpoints; also what every experiment shares (experiment.h): the
 * helpers, the seed loop, experiment_run (one experiment from start to end)
 * and the dispatch of `gatelab experiment KIND`. The table is
 * experiment_table.c, `gatelab distill` distill_cli.c. Every number in the
 * table comes from a run, a checkpoint or the metrics table: nothing is
 * adjusted to agree with the paper. */
#include "experiment.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "data.h"
#include "distill.h"
#include "evaluate.h"
#include "experiment_absorption.h"
#include "gate.h"
#include "live.h"
#include "model.h"
#include "rng.h"
#include "store.h"
#include "trainer.h"

const gate_mode absorb_mode[ABSORB_NARMS] = {GATE_DENSE,   GATE_SOFT, GATE_RANDOM,
                                             GATE_SIGMOID, GATE_TOPK, GATE_STOCHASTIC};
const int absorb_dist_arm[ABSORB_NDIST] = {ABSORB_DENSE, ABSORB_RANDOM, ABSORB_SOFT};
const float absorb_probe_eps[ABSORB_PROBE_NEPS] = {1e-3f, 1e-6f};
#define PROBE_LARGE 0.1f
#define PROBE_WINDOWS 8

/* ---- shared helpers ---- */


void experiment_json_str(char *out, size_t n, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 3 < n; s++) {
        if (*s == '"' || *s == '\\')
            out[o++] = '\\';
        if ((unsigned char)*s >= 0x20)
            out[o++] = *s;
    }
    out[o] = 0;
}

/* ---- checkpoints: evaluation and the top-k probe ---- */

int experiment_eval_ckpt(const char *path, int mode, const data_source *data, size_t windows,
                         size_t threads, double *ppl, metrics_state *ms, gl_error *err)
{
    checkpoint_info info;
    model m;
    if (checkpoint_load_model(path, mode, threads, &m, &info, err))
        return -1;
    if (ms)
        metrics_init(ms, info.model.layers, info.model.heads, info.model.T);
    const evaluate_spec spec = {.data = data, .windows = windows, .weight = EVALUATE_PER_WINDOW,
                                .metrics = ms};
    *ppl = exp(evaluate_windows(&m, &spec));
    model_free(&m);
    return 0;
}

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

/* ---- the seed loop: progress lines, one session per seed ---- */

void experiment_progress_init(experiment_progress *p, size_t nseeds, size_t narms,
                              const char *const *names, size_t cap)
{
    GL_ASSERT(narms <= LIVE_MAX_ARMS);
    memset(p, 0, sizeof *p);
    p->nseeds = nseeds;
    p->narms = narms;
    p->names = names;
    p->cap = cap;
    progress_bar_init(&p->bar);
    p->step = xcalloc(narms * cap, sizeof *p->step);
    p->ppl = xcalloc(narms * cap, sizeof *p->ppl);
    p->tok = xcalloc(narms * cap, sizeof *p->tok);
}

void experiment_progress_free(experiment_progress *p)
{
    free(p->step);
    free(p->ppl);
    free(p->tok);
}

/* The training's share done and time left: the slowest running arm of this
 * seed, after the seeds before it. */
static double progress_done(experiment_progress *p, double *eta)
{
    uint64_t at = p->steps;
    for (size_t a = 0; a < p->narms; a++)
        if (!p->done[a] && p->at[a] < at)
            at = p->at[a];
    uint64_t total = p->nseeds * p->steps, done = (p->seed - 1) * p->steps + at;
    progress_pace_feed(&p->pace, done, gl_now());
    *eta = progress_eta(&p->pace, total > done ? total - done : 0);
    return total ? (double)done / (double)total : 0.0;
}

/* one line per evaluation step, once every arm has it */
static void progress_flush(experiment_progress *p)
{
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t a = 0; a < p->narms; a++) {
        if (!p->done[a] && p->got[a] < lo)
            lo = p->got[a];
        if (p->got[a] > hi)
            hi = p->got[a];
    }
    if (p->printed < lo && p->printed < hi)
        progress_bar_clear(&p->bar);   /* the lines share its terminal */
    for (; p->printed < lo && p->printed < hi; p->printed++) {
        size_t e = p->printed;
        double tok = 0.0;
        uint64_t step = 0;
        printf("seed %zu/%zu", p->seed, p->nseeds);
        char body[512];
        size_t o = 0;
        for (size_t a = 0; a < p->narms; a++) {
            if (e < p->got[a]) {
                step = p->step[a * p->cap + e];
                tok += p->tok[a * p->cap + e];
                o += (size_t)snprintf(body + o, sizeof body - o, " %s %.3f", p->names[a],
                                      p->ppl[a * p->cap + e]);
            } else {
                o += (size_t)snprintf(body + o, sizeof body - o, " %s -", p->names[a]);
            }
        }
        /* the share of the training this line stands for */
        double eta, at = (double)((p->seed - 1) * p->steps + step);
        progress_done(p, &eta);
        double total = (double)p->nseeds * (double)p->steps;
        double frac = total > 0.0 ? at / total : 1.0;
        char done[48];
        progress_fmt(done, sizeof done, frac, eta);
        printf(" | step %6llu | val ppl%s | %.0f tok/s | %s\n", (unsigned long long)step, body,
               tok, done);
    }
    fflush(stdout);
    int all = 1;
    for (size_t a = 0; a < p->narms; a++)
        all &= p->done[a];
    if (all) {
        progress_bar_clear(&p->bar);
    } else {
        double eta, frac = progress_done(p, &eta);
        char label[48];
        snprintf(label, sizeof label, "seed %zu/%zu training", p->seed, p->nseeds);
        progress_bar_draw(&p->bar, frac, eta, label);
    }
}

static void on_record(void *ctx, live *lv, const tel_record *r)
{
    (void)lv;
    experiment_progress *p = ctx;
    if (r->arm >= p->narms)
        return;
    if (r->kind == REC_STEP || r->kind == REC_EVAL)
        p->at[r->arm] = r->step;
    if (r->kind == REC_EVAL && p->got[r->arm] < p->cap) {
        size_t at = r->arm * p->cap + p->got[r->arm]++;
        p->step[at] = r->step;
        p->ppl[at] = r->u.eval.val_ppl;
        p->tok[at] = r->u.eval.tokens_per_s;
    } else if (r->kind == REC_STATUS && r->u.status.status != RUN_RUNNING &&
               r->u.status.status != RUN_PAUSED) {
        p->done[r->arm] = 1;
    } else if (r->kind == REC_EVENT &&
               (r->u.event.kind == EV_ERROR || r->u.event.kind == EV_DIVERGED)) {
        progress_bar_clear(&p->bar);
        fprintf(stderr, "gatelab: seed %zu arm %s: %s at step %llu: %s\n", p->seed,
                p->names[r->arm], event_kind_name((event_kind)r->u.event.kind),
                (unsigned long long)r->step, r->u.event.detail);
    }
    progress_flush(p);
}

int experiment_train_seed(const experiment_seeds *x, uint64_t seed, experiment_progress *p,
                          live_result *res, gl_error *e)
{
    const train_config *tc = x->tc;
    GL_ASSERT(x->narms <= LIVE_MAX_ARMS && x->npass <= EXPERIMENT_MAX_PASS - 12);
    /* the arms' own arguments, so `gatelab resume RUN` can rebuild each */
    char seed_word[24], every_word[24], steps_word[24];
    snprintf(seed_word, sizeof seed_word, "%llu", (unsigned long long)seed);
    snprintf(every_word, sizeof every_word, "%zu", tc->eval_every);
    snprintf(steps_word, sizeof steps_word, "%zu", tc->steps);
    char *run_argv[EXPERIMENT_MAX_PASS];
    int run_argc = 0;
    for (int i = 0; i < x->npass; i++)
        run_argv[run_argc++] = x->pass[i];
    char *tail[] = {"--seed", seed_word, "--eval-every", every_word, "--save-every", "0",
                    "--steps", steps_word};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
        run_argv[run_argc++] = tail[i];
    char session_cmd[1024];
    snprintf(session_cmd, sizeof session_cmd, "%.900s (seed %llu of %zu)", x->command,
             (unsigned long long)seed, x->nseeds);
    live_config lc = {.tc = *tc, .narms = x->narms, .db_path = x->db, .telemetry = 1,
                      .command_line = session_cmd, .run_argv = run_argv,
                      .run_argc = run_argc};
    if (x->args) {
        lc.name = x->args->name;
        lc.note = x->args->note;
        lc.tags = x->args->tags;
        lc.ntags = x->args->ntags;
        lc.heatmap_every = x->args->heatmap_every;
    }
    lc.tc.model.seed = seed;
    memcpy(lc.modes, x->modes, x->narms * sizeof *x->modes);
    if (x->ffn)
        memcpy(lc.ffn, x->ffn, x->narms * sizeof *x->ffn);
    lc.experts = x->experts;
    memset(p->got, 0, sizeof p->got);
    memset(p->done, 0, sizeof p->done);
    memset(p->at, 0, sizeof p->at);
    p->steps = tc->steps;
    p->printed = 0;
    p->seed = (size_t)seed;
    live_observer obs = {.on_record = on_record, .ctx = p};
    printf("seed %llu/%zu: training %zu arms for %zu steps\n", (unsigned long long)seed,
           x->nseeds, x->narms, tc->steps);
    fflush(stdout);
    return live_run(&lc, &obs, res, e);
}

/* ---- one seed: its session, runs, checkpoints and measurements ---- */

typedef struct {
    absorb_seed *s;
} runs_ctx;

static int collect_run(void *ctx, const store_run_row *row)
{
    runs_ctx *c = ctx;
    for (size_t a = 0; a < ABSORB_NARMS; a++)
        if (row->parent_run == 0 && row->arm == a &&
            strcmp(row->mode, gate_mode_name(absorb_mode[a])) == 0) {
            c->s->run[a] = row->id;
            c->s->ppl[a] = row->final_val_ppl;
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
    const experiment_args *a = x->a;
    const size_t threads = a->tc.threads;
    runs_ctx rc_ctx = {.s = s};
    if (store_list_runs(x->st, s->session, collect_run, &rc_ctx, e))
        return -1;
    for (size_t i = 0; i < ABSORB_NARMS; i++) {
        if (!s->run[i])
            return gl_fail(e, "session %lld has no %s run", (long long)s->session,
                           gate_mode_name(absorb_mode[i]));
        store_checkpoint_row ck;
        if (store_find_checkpoint(x->st, s->run[i], UINT64_MAX, 0, &ck, e))
            return -1;
        snprintf(s->ckpt[i], sizeof s->ckpt[i], "%s", ck.path);
        if (x->experiment &&
            store_experiment_link(x->st, x->experiment, s->run[i], s->seed, "arm",
                                  gate_mode_name(absorb_mode[i]), e))
            return -1;
    }
    const char *pre = "  ";
    /* line 2: the topk arm's gate gradient at every evaluation, then the probe */
    if (store_metric_extent(x->st, s->run[ABSORB_TOPK], "gate_grad_norm", &s->grad_evals,
                            &s->grad_max, e))
        return -1;
    if (probe_gate(s->ckpt[ABSORB_TOPK], x->data, threads, s->seed, &s->probe, e) ||
        probe_gate(s->ckpt[ABSORB_SOFT], x->data, threads, s->seed, &s->soft_probe, e))
        return -1;
    printf("%stopk: gate grad norm max %g over %zu evaluations, %zu backprop gate-gradient "
           "entries != 0 | |loss change| along random signs: +-1e-3 %g, +-1e-6 %g "
           "(soft, the smooth control: %g, %g; slope %.4g) | %+.6f after a %g random move\n",
           pre, s->grad_max, s->grad_evals, s->probe.grad_nonzero, s->probe.change[0],
           s->probe.change[1], s->soft_probe.change[0], s->soft_probe.change[1],
           s->soft_probe.slope[1], s->probe.large_change, (double)PROBE_LARGE);
    /* line 4 and alongside: every checkpoint evaluated dense */
    for (size_t i = 0; i < ABSORB_NARMS; i++) {
        metrics_state ms;
        int own = i == ABSORB_DENSE || i == ABSORB_SIGMOID;
        double ppl;
        if (experiment_eval_ckpt(s->ckpt[i], own ? -1 : GATE_DENSE, x->data, x->windows, threads,
                                 &ppl, own ? &ms : NULL, e))
            return -1;
        s->dense_ppl[i] = i == ABSORB_SIGMOID ? NAN : ppl;
        if (i == ABSORB_DENSE) {
            s->layers = ms.L < DISTILL_MAX_LAYERS ? ms.L : DISTILL_MAX_LAYERS;
            for (size_t l = 0; l < s->layers; l++)
                s->oracle_mass[l] = metrics_layer_value(&ms, l, METRIC_ORACLE_MASS);
        }
        if (i == ABSORB_SIGMOID) {
            s->sigmoid_density = metrics_model_value(&ms, ms.L, METRIC_DENSITY);
            /* and the sigmoid model without its gate */
            if (experiment_eval_ckpt(s->ckpt[i], GATE_DENSE, x->data, x->windows, threads,
                                     &s->dense_ppl[i], NULL, e)) {
                metrics_free(&ms);
                return -1;
            }
        }
        if (own)
            metrics_free(&ms);
    }
    printf("%sevaluated dense:", pre);
    for (size_t i = 0; i < ABSORB_NARMS; i++)
        printf(" %s %.3f (as trained %.3f)%s", gate_mode_name(absorb_mode[i]), s->dense_ppl[i],
               s->ppl[i], i + 1 < ABSORB_NARMS ? "," : "\n");
    /* line 3: distil a fresh gate onto the frozen dense, random and soft models */
    for (size_t di = 0; di < ABSORB_NDIST; di++) {
        const int ai = absorb_dist_arm[di];
        char out[1024], prefix[96];
        store_checkpoint_row ck;
        distill_config dc;
        distill_default_config(&dc);
        dc.steps = a->distill_steps;
        dc.warmup = dc.steps / 10;
        dc.batch = a->tc.model.batch;
        dc.seed = s->seed;
        if (store_find_checkpoint(x->st, s->run[ai], UINT64_MAX, 0, &ck, e) ||
            experiment_distilled_path(ck.path, ck.step, &dc, out, sizeof out, e))
            return -1;
        snprintf(prefix, sizeof prefix, "%sonto %s: ", pre, gate_mode_name(absorb_mode[ai]));
        experiment_distill_progress pr = {.prefix = prefix,
                                          .every = dc.steps >= 3 ? dc.steps / 3 : 1,
                                          .t0 = gl_now()};
        distill_result r;
        int failed = distill_checkpoint(ck.path, a->tc.data_path, &dc, x->windows, threads,
                                        out, experiment_on_distill_progress, &pr, 1, &r, e);
        if (pr.bar_ready)
            progress_bar_clear(&pr.bar);
        if (failed)
            return -1;
        experiment_print_distill(prefix, &r);
        int64_t arm = store_next_arm(x->st, s->session, e);
        experiment_distill_record d = {.source_run = s->run[ai],
                                       .source_name = gate_mode_name(absorb_mode[ai]),
                                       .source_ckpt = ck.path, .out_ckpt = out,
                                       .data_path = a->tc.data_path, .eval_windows = x->windows,
                                       .cfg = &dc, .res = &r};
        int64_t run = arm < 0 ? -1 : experiment_store_distillation(x->st, s->session, arm, &d, e);
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

/* the plan's config_json */
static void config_json_of(const experiment_args *a, char *out, size_t n)
{
    const model_config *m = &a->tc.model;
    const train_config *tc = &a->tc;
    snprintf(out, n,
             "{\"kind\":\"absorption\",\"preset\":\"%s\",\"seeds\":%zu,\"steps\":%zu,"
             "\"distill_steps\":%zu,\"arms\":[\"dense\",\"soft\",\"random\",\"sigmoid\",\"topk\","
             "\"stochastic\"],\"V\":%zu,\"T\":%zu,\"d\":%zu,\"layers\":%zu,\"heads\":%zu,"
             "\"mlp\":%zu,\"r\":%zu,\"batch\":%zu,\"k\":%zu,\"gate_temp\":%.9g,\"lr\":%.9g,"
             "\"gate_lr\":%.9g,\"warmup\":%zu,\"eval_every\":%zu,\"eval_windows\":%zu,",
             a->preset, a->seeds, tc->steps, a->distill_steps, m->V, m->T, m->d, m->layers,
             m->heads, m->mlp, m->r, m->batch, m->k, (double)m->gate_temp, (double)tc->optim.lr,
             (double)tc->optim.gate_lr, tc->optim.warmup, tc->eval_every, tc->eval_windows);
}

int experiment_open(experiment_args *a, data_source **data, store **st, size_t *windows,
                    gl_error *e)
{
    train_config *tc = &a->tc;
    /* the data is checked before anything is written */
    *data = data_open(tc->data_path, tc->model.T, 1, e);
    if (!*data)
        return -1;
    if (tc->vocab_from_data && data_kind_of(*data) == DATA_BIN)
        tc->model.V = data_vocab(*data);
    if (data_max_token(*data) >= tc->model.V) {
        gl_fail(e, "%s: token id %u >= vocabulary size V=%zu (use --vocab %u or more)",
                tc->data_path, data_max_token(*data), tc->model.V, data_max_token(*data) + 1);
        data_close(*data);
        return -1;
    }
    *st = store_open(a->db, STORE_CREATE, e);
    if (!*st) {
        data_close(*data);
        return -1;
    }
    *windows = evaluate_window_count(*data, tc->eval_windows);
    return 0;
}

/* ---- one experiment: the seed loop, the experiment row and the table ---- */

/* the settings stored with the experiment: the kind's, then threads and data */
static char *config_json(const experiment_plan *plan, const experiment_args *a)
{
    const train_config *tc = &a->tc;
    char head[1536], data[512];
    plan->config_json(a, head, sizeof head);
    experiment_json_str(data, sizeof data, tc->data_path);
    const size_t n = strlen(head) + strlen(data) + 64;
    char *s = xmalloc(n);
    snprintf(s, n, "%s\"threads\":%zu,\"data\":%s%s%s}", head, tc->threads,
             tc->data_path ? "\"" : "", tc->data_path ? data : "null", tc->data_path ? "\"" : "");
    return s;
}

int experiment_run(experiment_args *a, const experiment_plan *plan, int argc, char **argv)
{
    gl_error e;
    double start = gl_now(), started_ms = gl_wall_ms();
    train_config *tc = &a->tc;
    data_source *data;
    experiment_env env = {.a = a};
    if (experiment_open(a, &data, &env.st, &env.windows, &e))
        return cli_runtime_error(&e);
    env.data = data;
    plan->print_header(&env);
    fflush(stdout);
    char *command = cli_join_words("gatelab experiment", argc, argv);
    char *config = config_json(plan, a);
    experiment_progress p;
    /* every evaluation of the schedule (the early ones too) gets a line */
    experiment_progress_init(&p, a->seeds, plan->narms, plan->names,
                             arm_eval_count(tc->eval_every, tc->steps) + 1);
    experiment_seeds xs = {.tc = tc, .db = a->db, .modes = plan->modes, .ffn = plan->ffn,
                           .experts = plan->experts, .narms = plan->narms, .nseeds = a->seeds,
                           .pass = a->pass, .npass = a->npass, .command = command,
                           .args = a};
    int status = 0, rc = 0;
    for (size_t si = 0; si < a->seeds && !rc; si++) {
        live_result res;
        if (experiment_train_seed(&xs, si + 1, &p, &res, &e)) {
            rc = -1;
            break;
        }
        if (res.signal) {
            status = 128 + res.signal;
            gl_fail(&e, "%s: training stopped; the runs are stored as stopped",
                    gl_signal_name(res.signal));
            rc = -1;
            break;
        }
        if (si == 0) {
            /* the experiment takes the id of its first session */
            if (store_experiment_begin(env.st, res.session, plan->kind, command, config,
                                       started_ms, &e)) {
                rc = -1;
                break;
            }
            env.experiment = res.session;
        }
        printf("seed %zu/%zu: session %lld trained; measuring\n", si + 1, a->seeds,
               (long long)res.session);
        fflush(stdout);
        if (plan->measure(plan->ctx, &env, si, res.session, &e))
            rc = -1;
    }
    if (!rc) {
        experiment_table t = {.n = 0};
        plan->build_table(plan->ctx, &env, &t);
        double wall = gl_now() - start;
        printf("\nexperiment %lld: %s, %zu seed%s, %zu steps, preset %s (wall %.0f s)\n\n",
               (long long)env.experiment, plan->title, a->seeds, a->seeds > 1 ? "s" : "",
               tc->steps, a->preset, wall);
        experiment_print_table(&t);
        rc = experiment_store_table(env.st, env.experiment, &t, &e);
        if (!rc)
            rc = store_experiment_end(env.st, env.experiment, "finished", wall, &e);
        if (!rc)
            printf("\nstored as experiment %lld in %s; reprint: gatelab experiment %s --from "
                   "%lld --db %s\n",
                   (long long)env.experiment, a->db, plan->kind, (long long)env.experiment,
                   a->db);
    } else if (env.experiment) {
        gl_error ignore;
        store_experiment_end(env.st, env.experiment, "failed", gl_now() - start, &ignore);
    }
    if (rc) {
        int runtime = cli_runtime_error(&e);   /* prints; a signal's status wins */
        status = status ? status : runtime;
    }
    experiment_progress_free(&p);
    free(command);
    free(config);
    store_close(env.st);
    data_close(data);
    return status;
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
    absorb_build_table(t, ctx, env->a->seeds);
}

static int absorption_run(experiment_args *a, int argc, char **argv)
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
                                  .build_table = absorption_table};
    int status = experiment_run(a, &plan, argc, argv);
    free(seeds);
    return status;
}

int experiment_main(int argc, char **argv)
{
    if (argc < 1)
        return cli_usage_error(
            "experiment: missing kind (gatelab experiment absorption|moe [OPTIONS])");
    const int moe = strcmp(argv[0], "moe") == 0;
    if (!moe && strcmp(argv[0], "absorption") != 0)
        return cli_usage_error("experiment %s: unknown experiment (absorption, moe)",
                                      argv[0]);
    static experiment_args a;
    gl_error e;
    if (experiment_parse(argv[0], argc - 1, argv + 1, &a, &e))
        return cli_usage_error("%s", e.msg);
    if (a.from)
        return experiment_from(a.db, a.from, a.kind);
    return moe ? experiment_moe_run(&a, argc, argv) : absorption_run(&a, argc, argv);
}
