/* experiment: what every `gatelab experiment KIND` shares (experiment.h):
 * the helpers, the shared measurement tasks (experiment_farm.c hands them
 * to the ranks), the seed loop (one live session per seed, live.c, stored
 * like any `run`, its arms over the ranks under mpirun), experiment_run
 * (one experiment from start to end, on every rank) and the dispatch to the
 * kinds (experiment_absorption.c, experiment_moe.c). */
#include "experiment.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "data.h"
#include "distill.h"
#include "evaluate.h"
#include "experiment_absorption.h"
#include "experiment_crossdeploy.h"
#include "experiment_moe.h"
#include "experiment_temperature.h"
#include "live.h"
#include "model.h"
#include "runspec.h"
#include "store.h"
#include "trainer.h"

/* ---- checkpoints: evaluation ---- */

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

/* ---- measurements as tasks ---- */

experiment_task experiment_task_make(int op, const char *path, int mode, uint64_t seed)
{
    experiment_task t = {.op = op, .mode = mode, .seed = seed};
    snprintf(t.path, sizeof t.path, "%s", path);
    return t;
}

int experiment_task_compute(void *ctx, const experiment_task *t, experiment_task_out *out,
                            gl_error *e)
{
    const experiment_env *env = ctx;
    const size_t threads = env->a->tc.threads;
    if (t->op == EXPERIMENT_TASK_EVAL)
        return experiment_eval_ckpt(t->path, t->mode, env->data, env->windows, threads,
                                    &out->v[0], NULL, e);
    if (t->op != EXPERIMENT_TASK_EVAL_METRICS)
        return gl_fail(e, "a measurement task of unknown kind %d", (int)t->op);
    _Static_assert(4 + DISTILL_MAX_LAYERS <= EXPERIMENT_TASK_VALUES, "room for every layer");
    metrics_state ms;
    if (experiment_eval_ckpt(t->path, t->mode, env->data, env->windows, threads, &out->v[0],
                             &ms, e))
        return -1;
    out->v[1] = metrics_model_value(&ms, ms.L, METRIC_DENSITY);
    out->v[2] = metrics_model_value(&ms, ms.L, METRIC_ENTROPY);
    size_t layers = ms.L < DISTILL_MAX_LAYERS ? ms.L : DISTILL_MAX_LAYERS;
    out->v[3] = (double)layers;
    for (size_t l = 0; l < layers; l++)
        out->v[4 + l] = metrics_layer_value(&ms, l, METRIC_ORACLE_MASS);
    metrics_free(&ms);
    return 0;
}

int experiment_after_session(experiment_farm *f, int rc, gl_error *e)
{
    /* the session lost rank 0: nobody is left to say stop */
    if (rc && world_is_lost())
        return -1;
    return experiment_farm_serve(f, e);
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
                      .run_argc = run_argc, .world = x->world};
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
    if (x->world && x->world->rank > 0)
        return live_run(&lc, &(live_observer){0}, res, e);   /* its share, quietly */
    printf("seed %llu/%zu: training %zu arms for %zu steps\n", (unsigned long long)seed,
           x->nseeds, x->narms, tc->steps);
    fflush(stdout);
    return live_run(&lc, &obs, res, e);
}

typedef struct {
    const char *const *names;
    size_t narms;
    experiment_match by;
    int64_t *run;
    double *ppl;
} session_runs_ctx;

static int collect_run(void *ctx, const store_run_row *row)
{
    session_runs_ctx *c = ctx;
    const char *what = c->by == EXPERIMENT_BY_MODE ? row->mode : row->name;
    if (row->parent_run == 0 && row->arm < c->narms && strcmp(what, c->names[row->arm]) == 0) {
        c->run[row->arm] = row->id;
        c->ppl[row->arm] = row->final_val_ppl;
    }
    return 0;
}

int experiment_session_runs(store *st, int64_t session, const char *const *names, size_t narms,
                            experiment_match by, int64_t *run, double *ppl, gl_error *e)
{
    session_runs_ctx c = {.names = names, .narms = narms, .by = by, .run = run, .ppl = ppl};
    if (store_list_runs(st, session, collect_run, &c, e))
        return -1;
    for (size_t a = 0; a < narms; a++)
        if (!run[a])
            return gl_fail(e, "session %lld has no %s run", (long long)session, names[a]);
    return 0;
}

/* Opens the data (checking its tokens against V, which a .bin file sets)
 * and, when st is not NULL, the database (rank 0 only), and counts the val
 * windows an evaluation uses. */
static int experiment_open(experiment_args *a, data_source **data, store **st, size_t *windows,
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
    if (st && !(*st = store_open(a->db, STORE_CREATE, e))) {
        data_close(*data);
        return -1;
    }
    *windows = evaluate_window_count(*data, tc->eval_windows);
    return 0;
}

/* ---- one experiment: the seed loop, the experiment row and the table ---- */

/* the settings stored with the experiment: its kind and seeds, the kind's
 * own, the arms, then the run-spec table's rows every arm shares */
static char *config_json(const experiment_plan *plan, const experiment_args *a)
{
    json_buf b;
    json_init(&b);
    json_object_begin(&b);
    json_key(&b, "kind");
    json_string(&b, plan->kind);
    json_key(&b, "seeds");
    json_uint(&b, a->seeds);
    plan->config_json(a, &b);
    json_key(&b, "arms");
    json_array_begin(&b);
    for (size_t i = 0; i < plan->narms; i++)
        json_string(&b, plan->names[i]);
    json_array_end(&b);
    runspec_write_json(&b, &a->tc, RUNSPEC_EXPERIMENT);
    json_object_end(&b);
    return json_take(&b);
}

int experiment_env_open(experiment_env *env, const world *w, experiment_task_fn fn, void *ctx,
                        data_source **data, gl_error *e)
{
    gl_error why = {{0}};
    *data = NULL;
    env->rank = w ? w->rank : 0;
    int ready = experiment_open(env->a, data, w && w->rank > 0 ? NULL : &env->st,
                                &env->windows, &why) == 0;
    env->data = *data;
    /* the farm opens only when every rank is ready; rank 0 says who was not */
    env->farm = experiment_farm_open(w, ready, &why, fn, ctx, e);
    if (env->farm)
        return 0;
    if (ready) {
        store_close(env->st);
        data_close(*data);
    }
    env->st = NULL;
    env->data = *data = NULL;
    return -1;
}

void experiment_env_close(experiment_env *env, data_source *data)
{
    experiment_farm_close(env->farm);
    store_close(env->st);
    data_close(data);
}

/* The task function of a plan: its own codes, then the shared ones. */
typedef struct {
    const experiment_plan *plan;
    experiment_env *env;
} plan_tasks;

static int plan_compute(void *ctx, const experiment_task *t, experiment_task_out *out,
                        gl_error *e)
{
    const plan_tasks *pt = ctx;
    if (t->op >= EXPERIMENT_TASK_KIND && pt->plan->compute)
        return pt->plan->compute(pt->env, t, out, e);
    return experiment_task_compute(pt->env, t, out, e);
}

/* Rank 0: seed si + 1 trained (trc: experiment_train_seed's answer) and
 * measured. -1 with a message; *status gets a signal's. */
static int seed_done(const experiment_plan *plan, experiment_env *env, size_t si, int trc,
                     const live_result *res, const char *command, const char *config,
                     double started_ms, int *status, gl_error *e)
{
    experiment_args *a = env->a;
    if (trc)
        return -1;
    if (res->signal) {
        *status = 128 + res->signal;
        return gl_fail(e, "%s: training stopped; the runs are stored as stopped",
                       gl_signal_name(res->signal));
    }
    if (si == 0) {
        /* the experiment takes the id of its first session */
        if (store_experiment_begin(env->st, res->session, plan->kind, command, config,
                                   started_ms, e))
            return -1;
        env->experiment = res->session;
    }
    printf("seed %zu/%zu: session %lld trained; measuring\n", si + 1, a->seeds,
           (long long)res->session);
    fflush(stdout);
    return plan->measure(plan->ctx, env, si, res->session, e);
}

int experiment_run(experiment_args *a, const experiment_plan *plan, int argc, char **argv,
                   const world *w)
{
    gl_error e;
    double start = gl_now(), started_ms = gl_wall_ms();
    const int rank = w ? w->rank : 0;
    train_config *tc = &a->tc;
    data_source *data;
    experiment_env env = {.a = a};
    plan_tasks pt = {.plan = plan, .env = &env};
    if (experiment_env_open(&env, w, plan_compute, &pt, &data, &e))
        return cli_runtime_error(&e);
    if (rank == 0)
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
                           .args = a, .world = w};
    int status = 0, rc = 0;
    for (size_t si = 0; si < a->seeds && !rc; si++) {
        live_result res;
        int trc = experiment_train_seed(&xs, si + 1, &p, &res, &e);
        if (rank > 0) {
            /* rank 0 measures (with this rank's help) and says go on or stop */
            int next = experiment_after_session(env.farm, trc, &e);
            if (next > 0)
                status = next;
            if (next)
                rc = next < 0 ? -1 : 1;
            continue;
        }
        rc = seed_done(plan, &env, si, trc, &res, command, config, started_ms, &status, &e);
        gl_error ne;
        if (experiment_farm_next(env.farm, rc ? (status ? status : 1) : 0, &ne) && !rc) {
            e = ne;
            rc = -1;
        }
    }
    if (rank > 0) {
        /* rank 0 speaks for the experiment; a stop it asked for is its status */
        if (rc < 0)
            status = cli_runtime_error(&e);
    } else if (!rc) {
        experiment_table t = {.n = 0};
        plan->build_table(plan->ctx, &env, &t);
        double wall = gl_now() - start;
        printf("\nexperiment %lld: %s, %zu seed%s, %zu steps, preset %s (wall %.0f s)\n\n",
               (long long)env.experiment, plan->title, a->seeds, a->seeds > 1 ? "s" : "",
               tc->steps, a->preset, wall);
        experiment_table_print(&t);
        crossdeploy_print_rows(t.row, t.n);
        rc = experiment_table_store(env.st, env.experiment, &t, &e);
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
    if (rank == 0 && rc) {
        int runtime = cli_runtime_error(&e);   /* prints; a signal's status wins */
        status = status ? status : runtime;
    }
    experiment_progress_free(&p);
    free(command);
    free(config);
    experiment_env_close(&env, data);
    return status;
}

int experiment_main(int argc, char **argv, const world *w)
{
    if (argc < 1)
        return cli_usage_error(
            "experiment: missing kind (gatelab experiment "
            "absorption|moe|crossdeploy|temperature [OPTIONS])");
    const int moe = strcmp(argv[0], "moe") == 0;
    const int temperature = strcmp(argv[0], "temperature") == 0;
    if (strcmp(argv[0], "crossdeploy") == 0)
        return experiment_crossdeploy_main(argc - 1, argv + 1, w);
    if (!moe && !temperature && strcmp(argv[0], "absorption") != 0)
        return cli_usage_error("experiment %s: unknown experiment (absorption, moe, "
                               "crossdeploy, temperature)", argv[0]);
    static experiment_args a;
    gl_error e;
    if (experiment_args_parse(argv[0], argc - 1, argv + 1, &a, &e))
        return cli_usage_error("%s", e.msg);
    if (a.from)   /* a reprint reads the database: rank 0's alone */
        return w && w->rank > 0 ? 0 : experiment_table_reprint(a.db, a.from, a.kind);
    if (temperature)
        return experiment_temperature_run(&a, argc, argv, w);
    return moe ? experiment_moe_run(&a, argc, argv, w)
               : experiment_absorption_run(&a, argc, argv, w);
}
