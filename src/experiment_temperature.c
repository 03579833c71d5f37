/* experiment_temperature: `gatelab experiment temperature` (see
 * experiment_temperature.h). Each session is an ordinary stored one (ls,
 * show, replay, resume work on its runs: a temperature's sessions carry
 * --gate-temp among the arms' arguments); the experiment takes the id of its
 * first session and links every arm. Every number comes from a run's
 * stored metrics or from its checkpoint evaluated by experiment_eval_ckpt. */
#include "experiment_temperature.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "experiment.h"
#include "gate.h"
#include "json.h"
#include "model.h"
#include "runspec.h"
#include "store.h"

/* the arms of a temperature's session, and of the baseline session */
enum { TEMP_SOFT, TEMP_RANDOM, TEMP_NARMS };
enum { BASE_TOPK, BASE_TOPK_RANDOM, BASE_DENSE, BASE_NARMS };
_Static_assert((int)BASE_NARMS >= (int)TEMP_NARMS, "names[] of session_arms holds either");
static const gate_mode temp_modes[TEMP_NARMS] = {GATE_SOFT, GATE_RANDOM};
static const gate_mode base_modes[BASE_NARMS] = {GATE_TOPK, GATE_TOPK_RANDOM, GATE_DENSE};

/* one learned gate's measurements */
typedef struct {
    double ppl, random_ppl;     /* final val ppl of the learned and the frozen arm */
    size_t grad_evals;
    double grad_mean, grad_last;   /* learned gate's gradient norm over its evaluations */
    double entropy, density;    /* learned mask at the end: mean binary entropy (bits), kept share */
} temp_cell;

typedef struct {
    temp_cell t[EXPERIMENT_MAX_SEEDS][EXPERIMENT_MAX_TEMPS];
    temp_cell hard[EXPERIMENT_MAX_SEEDS];   /* topk vs topk-random */
    double dense[EXPERIMENT_MAX_SEEDS];
} temp_results;

/* the learned arm's gradient over training (its mask at the end is a
 * task: EXPERIMENT_TASK_EVAL_METRICS of its checkpoint) */
static int measure_learned(const experiment_env *x, int64_t run, temp_cell *c, gl_error *e)
{
    store_metric_stats gs;
    if (store_metric_summary(x->st, run, "gate_grad_norm", &gs, e))
        return -1;
    c->grad_evals = gs.count;
    c->grad_mean = gs.mean;
    c->grad_last = gs.last;
    return 0;
}

/* the runs a session trained (by mode), linked to the experiment */
static int session_arms(const experiment_env *x, int64_t session, uint64_t seed,
                        const gate_mode *modes, size_t n, const char *suffix, int64_t *run,
                        double *ppl, char (*ckpt)[REC_TEXT], gl_error *e)
{
    const char *names[BASE_NARMS];   /* the larger of the two */
    for (size_t i = 0; i < n; i++)
        names[i] = gate_mode_name(modes[i]);
    memset(run, 0, n * sizeof *run);
    if (experiment_session_runs(x->st, session, names, n, EXPERIMENT_BY_MODE, run, ppl, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        store_checkpoint_row ck;
        char label[40];
        snprintf(label, sizeof label, "%s%s", names[i], suffix);
        if (store_find_checkpoint(x->st, run[i], UINT64_MAX, 0, &ck, e) ||
            store_experiment_link(x->st, x->experiment, run[i], seed, "arm", label, e))
            return -1;
        snprintf(ckpt[i], REC_TEXT, "%s", ck.path);
    }
    return 0;
}

/* ---- the table ---- */

static void add_gate_rows(experiment_table *t, const char *line, const char *what,
                          const temp_cell *const *c, const double *dense, size_t n)
{
    double v[EXPERIMENT_MAX_SEEDS], w[EXPERIMENT_MAX_SEEDS], g[EXPERIMENT_MAX_SEEDS];
    char q[96];
    double ml, mr, md, sd;
    for (size_t i = 0; i < n; i++) {
        v[i] = c[i]->ppl;
        w[i] = c[i]->random_ppl;
        g[i] = c[i]->random_ppl - c[i]->ppl;
    }
    experiment_table_stats(v, n, &ml, &sd);
    experiment_table_stats(w, n, &mr, &sd);
    experiment_table_stats(dense, n, &md, &sd);
    snprintf(q, sizeof q, "%s learned: final val ppl", what);
    experiment_table_add_stat(t, line, q, v, n, 3, "-", "n/a");
    snprintf(q, sizeof q, "%s frozen random: final val ppl", what);
    experiment_table_add_stat(t, line, q, w, n, 3, "-", "n/a");
    snprintf(q, sizeof q, "%s random - learned ppl (> 0: gate helps)", what);
    experiment_table_add_stat(t, line, q, g, n, 3, "-", "n/a");
    snprintf(q, sizeof q, "%s routing benefit (R-L)/(R-D), means", what);
    store_result_row *r = experiment_table_add_row(t, line, q, "-", "n/a");
    r->value = (mr - ml) / (mr - md);
    snprintf(r->gatelab, sizeof r->gatelab, "%.3f", r->value);
    for (size_t i = 0; i < n; i++) {
        v[i] = c[i]->grad_mean;
        w[i] = c[i]->grad_last;
    }
    snprintf(q, sizeof q, "%s gate grad norm, mean of %zu evals", what,
             c[0]->grad_evals);
    experiment_table_add_stat(t, line, q, v, n, 5, "-", "n/a");
    snprintf(q, sizeof q, "%s gate grad norm, last eval", what);
    experiment_table_add_stat(t, line, q, w, n, 5, "-", "n/a");
    for (size_t i = 0; i < n; i++) {
        v[i] = c[i]->entropy;
        w[i] = c[i]->density;
    }
    snprintf(q, sizeof q, "%s mask entropy (bits per entry)", what);
    experiment_table_add_stat(t, line, q, v, n, 4, "-", "n/a");
    snprintf(q, sizeof q, "%s mask density (kept / visible)", what);
    experiment_table_add_stat(t, line, q, w, n, 4, "-", "n/a");
}

static void build_table(experiment_table *t, const temp_results *res, const experiment_args *a)
{
    const size_t n = a->seeds;
    const temp_cell *c[EXPERIMENT_MAX_SEEDS];
    for (size_t ti = 0; ti < a->ntemps; ti++) {
        char line[24], what[40];
        snprintf(line, sizeof line, "t%zu", ti + 1);
        snprintf(what, sizeof what, "soft t=%g", (double)a->temps[ti]);
        for (size_t i = 0; i < n; i++)
            c[i] = &res->t[i][ti];
        add_gate_rows(t, line, what, c, res->dense, n);
    }
    for (size_t i = 0; i < n; i++)
        c[i] = &res->hard[i];
    add_gate_rows(t, "t->0", "topk", c, res->dense, n);
    experiment_table_add_stat(t, "t->0", "dense: final val ppl", res->dense, n, 3, "-", "n/a");
}

/* ---- the run ---- */

static char *config_json(const experiment_args *a)
{
    json_buf b;
    json_init(&b);
    json_object_begin(&b);
    json_key(&b, "kind");
    json_string(&b, "temperature");
    json_key(&b, "seeds");
    json_uint(&b, a->seeds);
    json_key(&b, "temps");
    json_array_begin(&b);
    for (size_t i = 0; i < a->ntemps; i++)
        json_float(&b, a->temps[i]);
    json_array_end(&b);
    json_key(&b, "arms");
    json_array_begin(&b);
    const char *arms[] = {"soft", "random", "topk", "topk-random", "dense"};
    for (size_t i = 0; i < sizeof arms / sizeof arms[0]; i++)
        json_string(&b, arms[i]);
    json_array_end(&b);
    runspec_write_json(&b, &a->tc, RUNSPEC_EXPERIMENT);
    json_object_end(&b);
    return json_take(&b);
}

/* What rank 0 keeps of a seed's sessions until their masks are measured. */
typedef struct {
    int64_t session[EXPERIMENT_MAX_TEMPS + 1];
    temp_cell *cell[EXPERIMENT_MAX_TEMPS + 1];
    const char *learned[EXPERIMENT_MAX_TEMPS + 1], *frozen[EXPERIMENT_MAX_TEMPS + 1];
    experiment_task task[EXPERIMENT_MAX_TEMPS + 1];
} temp_seed;

/* Rank 0: session ti of the seed trained (trc: its answer); its runs
 * linked and read, its learned arm's mask made a task. */
static int session_done(experiment_args *a, experiment_env *env, size_t si, size_t ti,
                        int trc, const live_result *lr, const char *command, const char *suffix,
                        double started_ms, temp_results *res, temp_seed *ts, int *status,
                        gl_error *e)
{
    const int base = ti == a->ntemps;
    const size_t narms = base ? BASE_NARMS : TEMP_NARMS;
    if (trc)
        return -1;
    if (lr->signal) {
        *status = 128 + lr->signal;
        return gl_fail(e, "%s: training stopped; the runs are stored as stopped",
                       gl_signal_name(lr->signal));
    }
    if (!env->experiment) {
        char *config = config_json(a);
        int rc = store_experiment_begin(env->st, lr->session, "temperature", command, config,
                                        started_ms, e);
        free(config);
        if (rc)
            return -1;
        env->experiment = lr->session;
    }
    int64_t run[BASE_NARMS];
    double ppl[BASE_NARMS];
    char ckpt[BASE_NARMS][REC_TEXT];
    const gate_mode *modes = base ? base_modes : temp_modes;
    if (session_arms(env, lr->session, si + 1, modes, narms, suffix, run, ppl, ckpt, e))
        return -1;
    temp_cell *c = base ? &res->hard[si] : &res->t[si][ti];
    c->ppl = ppl[0];
    c->random_ppl = ppl[1];
    if (base)
        res->dense[si] = ppl[BASE_DENSE];
    ts->session[ti] = lr->session;
    ts->cell[ti] = c;
    ts->learned[ti] = gate_mode_name(modes[0]);
    ts->frozen[ti] = gate_mode_name(modes[1]);
    ts->task[ti] = experiment_task_make(EXPERIMENT_TASK_EVAL_METRICS, ckpt[0], -1, si + 1);
    return measure_learned(env, run[0], c, e);
}

/* Rank 0: every learned mask of the seed, one batch over the ranks, and a
 * line per session. */
static int seed_masks(const experiment_args *a, experiment_env *env, temp_seed *ts,
                      gl_error *e)
{
    const size_t n = a->ntemps + 1;
    experiment_task_out *out = xcalloc(n, sizeof *out);
    if (experiment_farm_run(env->farm, ts->task, n, out, e)) {
        free(out);
        return -1;
    }
    for (size_t ti = 0; ti < n; ti++) {
        temp_cell *c = ts->cell[ti];
        c->density = out[ti].v[1];
        c->entropy = out[ti].v[2];
        printf("  session %lld: %s %.3f, %s %.3f | learned gate grad norm mean %.4g last "
               "%.4g | mask entropy %.4f bits\n",
               (long long)ts->session[ti], ts->learned[ti], c->ppl, ts->frozen[ti],
               c->random_ppl, c->grad_mean, c->grad_last, c->entropy);
    }
    fflush(stdout);
    free(out);
    return 0;
}

/* the sessions of one seed: every temperature, then the baseline; then
 * their learned masks. Every rank runs it: the sessions spread their arms
 * over the ranks, and after each the other ranks serve rank 0's tasks until
 * it says go on or stop (*status: the stop's, or a signal's). */
static int train_seed(experiment_args *a, experiment_env *env, size_t si, const char *command,
                      temp_results *res, int *status, double started_ms, const world *w,
                      gl_error *e)
{
    train_config *tc = &a->tc;
    const int rank = w ? w->rank : 0;
    const float keep_temp = tc->model.gate_temp;
    const uint64_t seed = si + 1;
    temp_seed ts;
    memset(&ts, 0, sizeof ts);
    for (size_t ti = 0; ti <= a->ntemps; ti++) {
        const int base = ti == a->ntemps;
        const size_t narms = base ? BASE_NARMS : TEMP_NARMS;
        const char *names[BASE_NARMS];
        for (size_t i = 0; i < narms; i++)
            names[i] = gate_mode_name(base ? base_modes[i] : temp_modes[i]);
        /* the temperature is one of the arms' run options, so `resume`
         * rebuilds it */
        char temp_word[32] = "";
        char *pass[EXPERIMENT_MAX_PASS];
        int npass = 0;
        for (int i = 0; i < a->npass; i++)
            pass[npass++] = a->pass[i];
        if (!base) {
            if (npass + 2 > EXPERIMENT_MAX_PASS - 12)
                return gl_fail(e, "experiment temperature: too many run options (at most %d "
                                  "words)", EXPERIMENT_MAX_PASS - 14);
            /* the shortest text that reads back as the same float */
            for (int digits = 6; digits <= 9; digits++) {
                snprintf(temp_word, sizeof temp_word, "%.*g", digits, (double)a->temps[ti]);
                if (strtof(temp_word, NULL) == a->temps[ti])
                    break;
            }
            pass[npass++] = "--gate-temp";
            pass[npass++] = temp_word;
            tc->model.gate_temp = a->temps[ti];
        } else {
            tc->model.gate_temp = keep_temp;
        }
        experiment_progress p;
        experiment_progress_init(&p, a->seeds, narms, names,
                                 arm_eval_count(tc->eval_every, tc->steps) + 1);
        char cmd[1024];
        if (base)
            snprintf(cmd, sizeof cmd, "%.900s [topk, topk-random, dense]", command);
        else
            snprintf(cmd, sizeof cmd, "%.900s [t=%s]", command, temp_word);
        experiment_seeds xs = {.tc = tc, .db = a->db,
                               .modes = base ? base_modes : temp_modes, .narms = narms,
                               .nseeds = a->seeds, .pass = pass, .npass = npass,
                               .command = cmd, .args = a, .world = w};
        if (base)
            printf("seed %zu/%zu: topk, topk-random and dense (t -> 0)\n", si + 1, a->seeds);
        else
            printf("seed %zu/%zu: temperature %s (%zu of %zu)\n", si + 1, a->seeds, temp_word,
                   ti + 1, a->ntemps);
        live_result lr;
        int rc = experiment_train_seed(&xs, seed, &p, &lr, e);
        experiment_progress_free(&p);
        tc->model.gate_temp = keep_temp;
        if (rank > 0) {
            int next = experiment_after_session(env->farm, rc, e);
            if (next > 0) {
                *status = next;
                return gl_fail(e, "rank 0 stopped the experiment");
            }
            if (next)
                return -1;
            continue;
        }
        char suffix[40];
        snprintf(suffix, sizeof suffix, base ? "" : " t=%s", temp_word);
        rc = session_done(a, env, si, ti, rc, &lr, command, suffix, started_ms, res, &ts,
                          status, e);
        if (!rc && base)
            rc = seed_masks(a, env, &ts, e);
        gl_error ne;
        if (experiment_farm_next(env->farm, rc ? (*status ? *status : 1) : 0, &ne) && !rc) {
            *e = ne;
            rc = -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

int experiment_temperature_run(experiment_args *a, int argc, char **argv, const world *w)
{
    gl_error e;
    double start = gl_now(), started_ms = gl_wall_ms();
    const int rank = w ? w->rank : 0;
    data_source *data;
    experiment_env env = {.a = a};
    if (experiment_env_open(&env, w, experiment_task_compute, &env, &data, &e))
        return cli_runtime_error(&e);
    const model_config *c = &a->tc.model;
    printf("experiment temperature | preset %s | %zu params | V=%zu T=%zu d=%zu L=%zu H=%zu "
           "r=%zu k=%zu batch %zu | %zu seeds x %zu steps | temps",
           c->preset, model_count_params(c), c->V, c->T, c->d, c->layers, c->heads, c->r, c->k,
           c->batch, a->seeds, a->tc.steps);
    for (size_t i = 0; i < a->ntemps; i++)
        printf("%s%g", i ? "," : " ", (double)a->temps[i]);
    printf(" (soft, random each) + topk topk-random dense | %zu threads | data %s | db %s\n",
           a->tc.threads, data_describe(data), a->db);
    fflush(stdout);
    char *command = cli_join_words("gatelab experiment", argc, argv);
    temp_results *res = xcalloc(1, sizeof *res);
    int status = 0, rc = 0;
    for (size_t si = 0; si < a->seeds && !rc; si++)
        rc = train_seed(a, &env, si, command, res, &status, started_ms, w, &e);
    if (rank > 0) {
        /* rank 0 speaks for the experiment */
        if (rc && !status)
            status = cli_runtime_error(&e);
    } else if (!rc) {
        experiment_table *t = xcalloc(1, sizeof *t);
        build_table(t, res, a);
        double wall = gl_now() - start;
        printf("\nexperiment %lld: soft top-k temperature, %zu seed%s, %zu steps, preset %s "
               "(wall %.0f s)\n\n",
               (long long)env.experiment, a->seeds, a->seeds > 1 ? "s" : "", a->tc.steps,
               a->preset, wall);
        experiment_table_print(t);
        rc = experiment_table_store(env.st, env.experiment, t, &e);
        if (!rc)
            rc = store_experiment_end(env.st, env.experiment, "finished", wall, &e);
        if (!rc)
            printf("\nstored as experiment %lld in %s; reprint: gatelab experiment temperature "
                   "--from %lld --db %s\n",
                   (long long)env.experiment, a->db, (long long)env.experiment, a->db);
        free(t);
    } else if (env.experiment) {
        gl_error ignore;
        store_experiment_end(env.st, env.experiment, "failed", gl_now() - start, &ignore);
    }
    if (rank == 0 && rc) {
        int runtime = cli_runtime_error(&e);
        status = status ? status : runtime;
    }
    free(res);
    free(command);
    experiment_env_close(&env, data);
    return status;
}
