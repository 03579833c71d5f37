/* experiment_crossdeploy: the cross-deployment matrix (experiment_crossdeploy.h)
 * — its measurement on a session's checkpoints, its result rows, the table
 * rebuilt from them, and `gatelab experiment crossdeploy SESSION`. Every
 * cell is experiment_eval_ckpt: the evaluation the other experiments use,
 * on the val windows the session's runs evaluated on. */
#include "experiment_crossdeploy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "evaluate.h"
#include "experiment.h"
#include "json.h"
#include "runspec.h"
#include "runspec_read.h"

const gate_mode crossdeploy_modes[CROSSDEPLOY_NCOLS] = {
    GATE_DENSE, GATE_SOFT, GATE_RANDOM, GATE_TOPK, GATE_TOPK_RANDOM, GATE_ORACLE,
    GATE_STOCHASTIC};

/* the diagonal's column name in the rows */
#define OWN "own"

/* ---- measuring ---- */

int crossdeploy_tasks(store *st, const int64_t *runs, size_t n, int by_mode,
                      crossdeploy_matrix *m, experiment_task *tasks, gl_error *e)
{
    memset(m, 0, sizeof *m);
    if (n > CROSSDEPLOY_MAX_ROWS)
        return gl_fail(e, "%zu trained runs: the cross-deployment matrix takes at most %d", n,
                       CROSSDEPLOY_MAX_ROWS);
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        store_run_row row;
        store_checkpoint_row ck;
        if (store_get_run(st, runs[i], &row, e))
            return -1;
        /* a session's runs may share a mode or a name (forks): the run id
         * keeps the rows apart */
        if (by_mode)
            snprintf(m->label[i], sizeof m->label[i], "%s", row.mode);
        else if (strcmp(row.name, row.mode) == 0)
            snprintf(m->label[i], sizeof m->label[i], "%s #%lld", row.mode, (long long)runs[i]);
        else
            snprintf(m->label[i], sizeof m->label[i], "%.16s (%s) #%lld", row.name, row.mode,
                     (long long)runs[i]);
        store_run_row_free(&row);
        m->run[i] = runs[i];
        if (store_find_checkpoint(st, runs[i], UINT64_MAX, 0, &ck, e))
            return -1;
        tasks[nt++] = experiment_task_make(EXPERIMENT_TASK_EVAL, ck.path, -1, 0);
        for (size_t c = 0; c < CROSSDEPLOY_NCOLS; c++)
            tasks[nt++] = experiment_task_make(EXPERIMENT_TASK_EVAL, ck.path,
                                               (int)crossdeploy_modes[c], 0);
    }
    m->n = n;
    return (int)nt;
}

void crossdeploy_fill(crossdeploy_matrix *m, const experiment_task_out *out)
{
    for (size_t i = 0; i < m->n; i++) {
        const experiment_task_out *row = out + i * CROSSDEPLOY_TASKS_PER_ROW;
        m->own[i] = row[0].v[0];
        for (size_t c = 0; c < CROSSDEPLOY_NCOLS; c++)
            m->ppl[i][c] = row[1 + c].v[0];
    }
}

int crossdeploy_measure(store *st, const int64_t *runs, size_t n, int by_mode,
                        const data_source *data, size_t windows, size_t threads,
                        crossdeploy_matrix *m, gl_error *e)
{
    experiment_task *tasks = xcalloc(CROSSDEPLOY_MAX_ROWS * CROSSDEPLOY_TASKS_PER_ROW,
                                     sizeof *tasks);
    experiment_task_out *out = xcalloc(CROSSDEPLOY_MAX_ROWS * CROSSDEPLOY_TASKS_PER_ROW,
                                       sizeof *out);
    int nt = crossdeploy_tasks(st, runs, n, by_mode, m, tasks, e);
    int rc = nt < 0 ? -1 : 0;
    for (int i = 0; !rc && i < nt; i++)
        rc = experiment_eval_ckpt(tasks[i].path, tasks[i].mode, data, windows, threads,
                                  &out[i].v[0], NULL, e);
    if (!rc)
        crossdeploy_fill(m, out);
    else
        m->n = 0;
    free(tasks);
    free(out);
    return rc;
}

/* ---- result rows ---- */

static void add_cell(experiment_table *t, const char *label, const char *col, const double *ppl,
                     const double *ratio, size_t n)
{
    char q[96];
    snprintf(q, sizeof q, "trained %s, evaluated %s", label, col);
    store_result_row *r = experiment_table_add_stat(t, CROSSDEPLOY_LINE, q, ppl, n, 3, "-",
                                                    "n/a");
    double rm, rsd;
    experiment_table_stats(ratio, n, &rm, &rsd);
    size_t len = strlen(r->gatelab);
    snprintf(r->gatelab + len, sizeof r->gatelab - len, " (x%.3f)", rm);
}

void crossdeploy_add_rows(experiment_table *t, const crossdeploy_matrix *m, size_t nseeds)
{
    double ppl[EXPERIMENT_MAX_SEEDS], ratio[EXPERIMENT_MAX_SEEDS];
    for (size_t r = 0; r < m[0].n; r++) {
        for (size_t s = 0; s < nseeds; s++) {
            ppl[s] = m[s].own[r];
            ratio[s] = 1.0;
        }
        add_cell(t, m[0].label[r], OWN, ppl, ratio, nseeds);
        for (size_t c = 0; c < CROSSDEPLOY_NCOLS; c++) {
            for (size_t s = 0; s < nseeds; s++) {
                ppl[s] = m[s].ppl[r][c];
                ratio[s] = m[s].ppl[r][c] / m[s].own[r];
            }
            add_cell(t, m[0].label[r], gate_mode_name(crossdeploy_modes[c]), ppl, ratio, nseeds);
        }
    }
}

/* ---- the matrix from its rows ---- */

/* column of a row's "evaluated COL": 0 own, 1 + c a mode; -1 none */
static int column_of(const char *col)
{
    if (strcmp(col, OWN) == 0)
        return 0;
    for (int c = 0; c < CROSSDEPLOY_NCOLS; c++)
        if (strcmp(col, gate_mode_name(crossdeploy_modes[c])) == 0)
            return 1 + c;
    return -1;
}

void crossdeploy_print_rows(const store_result_row *rows, size_t n)
{
    enum { NC = 1 + CROSSDEPLOY_NCOLS };
    char label[CROSSDEPLOY_MAX_ROWS][64];
    double ppl[CROSSDEPLOY_MAX_ROWS][NC], ratio[CROSSDEPLOY_MAX_ROWS][NC];
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        const store_result_row *r = &rows[i];
        const char *ev = strstr(r->quantity, ", evaluated ");
        if (strcmp(r->line, CROSSDEPLOY_LINE) != 0 || strncmp(r->quantity, "trained ", 8) != 0 ||
            !ev)
            continue;
        int c = column_of(ev + strlen(", evaluated "));
        if (c < 0)
            continue;
        char lab[64];
        snprintf(lab, sizeof lab, "%.*s", (int)(ev - r->quantity - 8), r->quantity + 8);
        size_t at = 0;
        while (at < nr && strcmp(label[at], lab) != 0)
            at++;
        if (at == nr) {
            if (nr == CROSSDEPLOY_MAX_ROWS)
                continue;
            snprintf(label[nr], sizeof label[nr], "%s", lab);
            for (size_t k = 0; k < NC; k++)
                ppl[nr][k] = ratio[nr][k] = NAN;
            nr++;
        }
        const char *x = strstr(r->gatelab, "(x");
        ppl[at][c] = r->value;
        ratio[at][c] = x ? strtod(x + 2, NULL) : NAN;
    }
    if (!nr)
        return;
    printf("\ncross-deployment matrix: val ppl (x ratio to the diagonal, the arm evaluated as it "
           "trained)\n");
    printf("%-22s | %-15s", "trained \\ evaluated", OWN);
    for (size_t c = 0; c < CROSSDEPLOY_NCOLS; c++)
        printf(" | %-*s", c + 1 < CROSSDEPLOY_NCOLS ? 15 : 0,
               gate_mode_name(crossdeploy_modes[c]));
    printf("\n");
    for (size_t r = 0; r < nr; r++) {
        printf("%-22s", label[r]);
        for (size_t c = 0; c < NC; c++) {
            char cell[40];
            if (isnan(ppl[r][c]))
                snprintf(cell, sizeof cell, "-");
            else
                snprintf(cell, sizeof cell, "%.2f x%.2f", ppl[r][c], ratio[r][c]);
            printf(" | %-*s", c + 1 < NC ? 15 : 0, cell);
        }
        printf("\n");
    }
}

/* ---- gatelab experiment crossdeploy SESSION ---- */

typedef struct {
    int64_t run[4 * CROSSDEPLOY_MAX_ROWS];
    size_t n, skipped;
} session_runs;

/* the session's runs (newest first; sorted by id afterwards) */
static int collect(void *ctx, const store_run_row *row)
{
    session_runs *s = ctx;
    if (s->n == sizeof s->run / sizeof s->run[0])
        return 1;
    s->run[s->n++] = row->id;
    return 0;
}

static int by_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* the data the session's first run trained on and its evaluation windows */
static data_source *open_session_data(store *st, int64_t run, size_t *windows, gl_error *e)
{
    store_run_row row;
    if (store_get_run(st, run, &row, e))
        return NULL;
    store_checkpoint_row ck;
    checkpoint_info info;
    st_file f;
    const char *json = row.config_json ? row.config_json : "{}";
    char path[4096];
    int g = json_get_string(json, "data", path, sizeof path);
    size_t limit = runspec_json_size(json, "eval_windows", 64);
    data_source *d = NULL;
    if (!store_find_checkpoint(st, run, UINT64_MAX, 0, &ck, e) &&
        !cli_open_checkpoint(ck.path, &f, &info, e)) {
        st_free(&f);
        d = data_open(g == 0 ? path : NULL, info.model.T, info.model.seed, e);
        if (d && data_max_token(d) >= info.model.V) {
            gl_fail(e, "%s: token id %u >= vocabulary size V=%zu of run %lld", data_describe(d),
                    data_max_token(d), info.model.V, (long long)run);
            data_close(d);
            d = NULL;
        }
    }
    store_run_row_free(&row);
    if (d)
        *windows = evaluate_window_count(d, limit);
    return d;
}

int experiment_crossdeploy_main(int argc, char **argv)
{
    const char *db = EXPERIMENT_DEFAULT_DB, *word = NULL, *from = NULL;
    size_t threads = args_default_threads();
    gl_error e;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(f, "--db") == 0 || strcmp(f, "--from") == 0) {
            if (!v || !*v)
                return cli_usage_error("%s: missing value", f);
            *(f[2] == 'd' ? &db : &from) = v;
            i++;
        } else if (strcmp(f, "--threads") == 0) {
            if (runspec_parse_into(runspec_find_flag(f), v, &threads, &e))
                return cli_usage_error("%s", e.msg);
            i++;
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for experiment crossdeploy", f);
        } else if (!word) {
            word = f;
        } else {
            return cli_usage_error("experiment crossdeploy: unexpected argument '%s'", f);
        }
    }
    if (from)
        return word ? cli_usage_error("experiment crossdeploy: SESSION and --from %s: give one",
                                      from)
                    : experiment_table_reprint(db, from, "crossdeploy");
    if (!word)
        return cli_usage_error("experiment crossdeploy: missing SESSION (gatelab experiment "
                               "crossdeploy SESSION [--db PATH])");
    double start = gl_now(), started_ms = gl_wall_ms();
    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st)
        return cli_runtime_error(&e);
    int64_t session;
    int status = cli_find_session(st, "experiment crossdeploy", word, db, &session);
    if (status) {
        store_close(st);
        return status;
    }
    session_runs sr = {.n = 0};
    data_source *data = NULL;
    crossdeploy_matrix *m = xcalloc(1, sizeof *m);
    experiment_table *t = xcalloc(1, sizeof *t);
    char *command = cli_join_words("gatelab experiment crossdeploy", argc, argv);
    size_t windows = 0;
    int rc = store_list_runs(st, session, collect, &sr, &e);
    /* the session's runs that have a checkpoint (one killed before its
     * first save has none) */
    size_t keep = 0;
    for (size_t i = 0; !rc && i < sr.n; i++) {
        store_checkpoint_row ck;
        gl_error ignore;
        if (!store_find_checkpoint(st, sr.run[i], UINT64_MAX, 0, &ck, &ignore))
            sr.run[keep++] = sr.run[i];
        else
            sr.skipped++;
    }
    sr.n = keep;
    qsort(sr.run, sr.n, sizeof sr.run[0], by_id);
    if (!rc && sr.n == 0)
        rc = gl_fail(&e, "session %lld has no run with a checkpoint in %s", (long long)session,
                     db);
    if (!rc && sr.n > CROSSDEPLOY_MAX_ROWS)
        rc = gl_fail(&e, "session %lld: more than %d runs with a checkpoint (the matrix takes "
                         "at most %d rows)", (long long)session, CROSSDEPLOY_MAX_ROWS,
                     CROSSDEPLOY_MAX_ROWS);
    if (!rc && !(data = open_session_data(st, sr.run[0], &windows, &e)))
        rc = -1;
    if (!rc) {
        printf("experiment crossdeploy | session %lld | %zu runs x (own + %d modes) | %zu val "
               "windows of %s | %zu threads | db %s\n",
               (long long)session, sr.n, CROSSDEPLOY_NCOLS, windows, data_describe(data),
               threads, db);
        if (sr.skipped)
            printf("%zu run%s without a checkpoint left out\n", sr.skipped,
                   sr.skipped > 1 ? "s" : "");
        fflush(stdout);
        rc = crossdeploy_measure(st, sr.run, sr.n, 0, data, windows, threads, m, &e);
    }
    if (!rc) {
        crossdeploy_add_rows(t, m, 1);
        double wall = gl_now() - start;
        printf("\nexperiment %lld: cross-deployment, session %lld, %zu runs (wall %.0f s)\n\n",
               (long long)session, (long long)session, sr.n, wall);
        experiment_table_print(t);
        crossdeploy_print_rows(t->row, t->n);
        /* the experiment takes the session's id, as the others do; one
         * already stored for this session as crossdeploy is measured anew */
        store_experiment_row x;
        int stored = 1;
        if (store_get_experiment(st, session, &x, &e) == 0) {
            if (strcmp(x.kind, "crossdeploy") == 0) {
                rc = store_experiment_delete(st, session, &e);
            } else {
                printf("\nnot stored: session %lld is experiment %lld (%s), whose own table "
                       "holds its cross-deployment matrix\n",
                       (long long)session, (long long)x.id, x.kind);
                stored = 0;
            }
            store_experiment_row_free(&x);
        }
        char config[128];
        snprintf(config, sizeof config,
                 "{\"kind\":\"crossdeploy\",\"session\":%lld,\"eval_windows\":%zu}",
                 (long long)session, windows);
        if (!rc && stored)
            rc = store_experiment_begin(st, session, "crossdeploy", command, config, started_ms,
                                        &e);
        for (size_t i = 0; !rc && stored && i < m->n; i++)
            rc = store_experiment_link(st, session, m->run[i], 1, "arm", m->label[i], &e);
        if (!rc && stored)
            rc = experiment_table_store(st, session, t, &e);
        if (!rc && stored)
            rc = store_experiment_end(st, session, "finished", wall, &e);
        if (!rc && stored)
            printf("\nstored as experiment %lld in %s; reprint: gatelab experiment crossdeploy "
                   "--from %lld --db %s\n",
                   (long long)session, db, (long long)session, db);
    }
    free(command);
    free(m);
    free(t);
    data_close(data);
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}
