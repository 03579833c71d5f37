/* experiment_crossdeploy: the cross-deployment matrix (experiment_crossdeploy.h)
 * — its measurement on a session's checkpoints, its result rows, the table
 * rebuilt from them, and `gatelab experiment crossdeploy SESSION` (its cells
 * over the ranks of an MPI job, experiment_farm.h). Every
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

/* The data the session's first run trained on, as rank 0 reads it from the
 * database, for every rank to open (plain bytes, experiment_farm_bcast). */
typedef struct {
    int64_t run;              /* the run that names it */
    int32_t has_path;         /* 0: the embedded generator */
    char path[4096];
    uint64_t T, seed, V;      /* the checkpoint's context, data seed and vocabulary */
    uint64_t windows_limit;   /* the run's --eval-windows */
} session_data;

static int session_data_of(store *st, int64_t run, session_data *d, gl_error *e)
{
    memset(d, 0, sizeof *d);
    d->run = run;
    store_run_row row;
    if (store_get_run(st, run, &row, e))
        return -1;
    const char *json = row.config_json ? row.config_json : "{}";
    d->has_path = json_get_string(json, "data", d->path, sizeof d->path) == 0;
    d->windows_limit = runspec_json_size(json, "eval_windows", 64);
    store_run_row_free(&row);
    store_checkpoint_row ck;
    checkpoint_info info;
    st_file f;
    if (store_find_checkpoint(st, run, UINT64_MAX, 0, &ck, e) ||
        cli_open_checkpoint(ck.path, &f, &info, e))
        return -1;
    st_free(&f);
    d->T = info.model.T;
    d->seed = info.model.seed;
    d->V = info.model.V;
    return 0;
}

static data_source *session_data_open(const session_data *d, size_t *windows, gl_error *e)
{
    data_source *src = data_open(d->has_path ? d->path : NULL, d->T, d->seed, e);
    if (src && data_max_token(src) >= d->V) {
        gl_fail(e, "%s: token id %u >= vocabulary size V=%llu of run %lld", data_describe(src),
                data_max_token(src), (unsigned long long)d->V, (long long)d->run);
        data_close(src);
        return NULL;
    }
    if (src)
        *windows = evaluate_window_count(src, d->windows_limit);
    return src;
}

/* What every rank computes the cells with (experiment_farm's ctx). */
typedef struct {
    session_data spec;
    data_source *data;        /* NULL: why says why not */
    gl_error why;
    size_t windows, threads;
} cell_ctx;

static int cell_compute(void *ctx, const experiment_task *t, experiment_task_out *out,
                        gl_error *e)
{
    const cell_ctx *c = ctx;
    if (!c->data)
        return gl_fail(e, "%s", c->why.msg);
    if (t->op != EXPERIMENT_TASK_EVAL)
        return gl_fail(e, "experiment crossdeploy: a task of unknown kind %d", (int)t->op);
    return experiment_eval_ckpt(t->path, t->mode, c->data, c->windows, c->threads, &out->v[0],
                                NULL, e);
}

/* Rank 0: the session named by `word`, its runs with a checkpoint (sorted
 * by id) and their data, opened here. The exit status (a message printed). */
static int prepare(store **st, const char *db, const char *word, int64_t *session,
                   session_runs *sr, cell_ctx *c)
{
    gl_error e;
    if (!(*st = store_open(db, STORE_EXISTING, &e)))
        return cli_runtime_error(&e);
    int status = cli_find_session(*st, "experiment crossdeploy", word, db, session);
    if (status)
        return status;
    if (store_list_runs(*st, *session, collect, sr, &e))
        return cli_runtime_error(&e);
    /* the session's runs that have a checkpoint (one killed before its
     * first save has none) */
    size_t keep = 0;
    for (size_t i = 0; i < sr->n; i++) {
        store_checkpoint_row ck;
        gl_error ignore;
        if (!store_find_checkpoint(*st, sr->run[i], UINT64_MAX, 0, &ck, &ignore))
            sr->run[keep++] = sr->run[i];
        else
            sr->skipped++;
    }
    sr->n = keep;
    qsort(sr->run, sr->n, sizeof sr->run[0], by_id);
    if (sr->n == 0) {
        gl_fail(&e, "session %lld has no run with a checkpoint in %s", (long long)*session, db);
        return cli_runtime_error(&e);
    }
    if (sr->n > CROSSDEPLOY_MAX_ROWS) {
        gl_fail(&e, "session %lld: more than %d runs with a checkpoint (the matrix takes at "
                    "most %d rows)", (long long)*session, CROSSDEPLOY_MAX_ROWS,
                CROSSDEPLOY_MAX_ROWS);
        return cli_runtime_error(&e);
    }
    if (session_data_of(*st, sr->run[0], &c->spec, &e) ||
        !(c->data = session_data_open(&c->spec, &c->windows, &e)))
        return cli_runtime_error(&e);
    return 0;
}

/* Rank 0: the matrix measured over the ranks, printed and stored. */
static int measure_and_store(store *st, experiment_farm *f, int64_t session,
                             const session_runs *sr, const cell_ctx *c, const char *db,
                             const char *command, double start, double started_ms, gl_error *e)
{
    printf("experiment crossdeploy | session %lld | %zu runs x (own + %d modes) | %zu val "
           "windows of %s | %zu threads | db %s\n",
           (long long)session, sr->n, CROSSDEPLOY_NCOLS, c->windows, data_describe(c->data),
           c->threads, db);
    if (sr->skipped)
        printf("%zu run%s without a checkpoint left out\n", sr->skipped,
               sr->skipped > 1 ? "s" : "");
    fflush(stdout);
    crossdeploy_matrix *m = xcalloc(1, sizeof *m);
    experiment_table *t = xcalloc(1, sizeof *t);
    experiment_task *tasks = xcalloc(CROSSDEPLOY_MAX_ROWS * CROSSDEPLOY_TASKS_PER_ROW,
                                     sizeof *tasks);
    experiment_task_out *out = xcalloc(CROSSDEPLOY_MAX_ROWS * CROSSDEPLOY_TASKS_PER_ROW,
                                       sizeof *out);
    int nt = crossdeploy_tasks(st, sr->run, sr->n, 0, m, tasks, e);
    int rc = nt < 0 ? -1 : experiment_farm_run(f, tasks, (size_t)nt, out, e);
    if (!rc) {
        crossdeploy_fill(m, out);
        crossdeploy_add_rows(t, m, 1);
        double wall = gl_now() - start;
        printf("\nexperiment %lld: cross-deployment, session %lld, %zu runs (wall %.0f s)\n\n",
               (long long)session, (long long)session, sr->n, wall);
        experiment_table_print(t);
        crossdeploy_print_rows(t->row, t->n);
        /* the experiment takes the session's id, as the others do; one
         * already stored for this session as crossdeploy is measured anew */
        store_experiment_row x;
        int stored = 1;
        if (store_get_experiment(st, session, &x, e) == 0) {
            if (strcmp(x.kind, "crossdeploy") == 0) {
                rc = store_experiment_delete(st, session, e);
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
                 (long long)session, c->windows);
        if (!rc && stored)
            rc = store_experiment_begin(st, session, "crossdeploy", command, config, started_ms,
                                        e);
        for (size_t i = 0; !rc && stored && i < m->n; i++)
            rc = store_experiment_link(st, session, m->run[i], 1, "arm", m->label[i], e);
        if (!rc && stored)
            rc = experiment_table_store(st, session, t, e);
        if (!rc && stored)
            rc = store_experiment_end(st, session, "finished", wall, e);
        if (!rc && stored)
            printf("\nstored as experiment %lld in %s; reprint: gatelab experiment crossdeploy "
                   "--from %lld --db %s\n",
                   (long long)session, db, (long long)session, db);
    }
    experiment_task_outs_free(out, nt > 0 ? (size_t)nt : 0);
    free(tasks);
    free(out);
    free(m);
    free(t);
    return rc;
}

int experiment_crossdeploy_main(int argc, char **argv, const world *w)
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
    const int rank = w ? w->rank : 0;
    if (from) {
        if (word)
            return cli_usage_error("experiment crossdeploy: SESSION and --from %s: give one",
                                   from);
        /* a reprint reads the database: rank 0's alone */
        return rank > 0 ? 0 : experiment_table_reprint(db, from, "crossdeploy");
    }
    if (!word)
        return cli_usage_error("experiment crossdeploy: missing SESSION (gatelab experiment "
                               "crossdeploy SESSION [--db PATH])");
    double start = gl_now(), started_ms = gl_wall_ms();
    /* rank 0 reads the session and its data's name; every rank opens the
     * data and computes its share of the cells (task i on rank i % N) */
    store *st = NULL;
    int64_t session = 0;
    session_runs sr = {.n = 0};
    cell_ctx c = {.threads = threads};
    int status = rank == 0 ? prepare(&st, db, word, &session, &sr, &c) : 0;
    gl_error why = {{0}};
    snprintf(why.msg, sizeof why.msg, "rank 0 could not read session %s", word);
    experiment_farm *f = experiment_farm_open(w, status == 0, &why, cell_compute, &c, &e);
    if (!f) {
        /* rank 0 has said why (its own failure) or says it now */
        if (!status)
            status = cli_runtime_error(&e);
    } else if (experiment_farm_bcast(f, &c.spec, sizeof c.spec, &e)) {
        status = cli_runtime_error(&e);
    } else if (rank > 0) {
        /* a rank that cannot open the data fails its first cell, naming it */
        c.spec.path[sizeof c.spec.path - 1] = 0;
        c.data = session_data_open(&c.spec, &c.windows, &c.why);
        int next = experiment_farm_serve(f, &e);
        status = next < 0 ? cli_runtime_error(&e) : next;
    } else {
        char *command = cli_join_words("gatelab experiment crossdeploy", argc, argv);
        int rc = measure_and_store(st, f, session, &sr, &c, db, command, start, started_ms, &e);
        free(command);
        if (rc)
            status = cli_runtime_error(&e);
        gl_error ne;
        if (experiment_farm_next(f, status, &ne) && !status)
            status = cli_runtime_error(&ne);
    }
    experiment_farm_close(f);
    data_close(c.data);
    store_close(st);
    return status;
}
