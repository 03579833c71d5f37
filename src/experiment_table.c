/* experiment_table: the result tables of the experiments: rows of a value
 * over seeds beside the paper's figure, their printing and storage, the
 * `--from` reprint of a stored experiment. What a row holds is the kind's
 * (experiment_absorption.c, experiment_moe.c). */
#include "experiment_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "common.h"
#include "experiment_crossdeploy.h"
#include "store.h"

/* ---- rows ---- */

void experiment_table_stats(const double *v, size_t n, double *mean, double *sd)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m += v[i];
    m /= (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    /* sample standard deviation over seeds, as "48.73 +- 0.60 over 3 seeds" */
    *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
}

store_result_row *experiment_table_add_row(experiment_table *t, const char *line,
                                           const char *quantity, const char *paper,
                                           const char *direction)
{
    GL_ASSERT(t->n < EXPERIMENT_MAX_ROWS);
    store_result_row *r = &t->row[t->n];
    memset(r, 0, sizeof *r);
    r->position = (uint32_t)t->n++;
    snprintf(r->line, sizeof r->line, "%s", line);
    snprintf(r->quantity, sizeof r->quantity, "%s", quantity);
    snprintf(r->paper, sizeof r->paper, "%s", paper);
    snprintf(r->same_direction, sizeof r->same_direction, "%s", direction);
    r->value = r->spread = NAN;
    return r;
}

store_result_row *experiment_table_add_stat(experiment_table *t, const char *line,
                                            const char *quantity, const double *v, size_t n,
                                            int decimals, const char *paper,
                                            const char *direction)
{
    store_result_row *r = experiment_table_add_row(t, line, quantity, paper, direction);
    experiment_table_stats(v, n, &r->value, &r->spread);
    if (isnan(r->spread))
        snprintf(r->gatelab, sizeof r->gatelab, "%.*f", decimals, r->value);
    else
        snprintf(r->gatelab, sizeof r->gatelab, "%.*f +- %.*f", decimals, r->value, decimals,
                 r->spread);
    return r;
}

const char *experiment_table_yes_no(int cond) { return cond ? "yes" : "no"; }

/* ---- printing, storing, reprinting ---- */

static void print_row(const store_result_row *r)
{
    printf("%-4s | %-52s | %-26s | %-20s | %s\n", r->line, r->quantity, r->gatelab, r->paper,
           r->same_direction);
}

static void print_header(void)
{
    printf("%-4s | %-52s | %-26s | %-20s | %s\n", "line", "quantity", "gatelab value",
           "paper value", "same direction");
    printf("-----+-%.52s-+-%.26s-+-%.20s-+---------------\n",
           "----------------------------------------------------------------",
           "----------------------------------------------------------------",
           "----------------------------------------------------------------");
}

void experiment_table_print(const experiment_table *t)
{
    print_header();
    for (size_t i = 0; i < t->n; i++)
        print_row(&t->row[i]);
}

int experiment_table_store(store *st, int64_t experiment, const experiment_table *t, gl_error *e)
{
    int rc = 0;
    for (size_t i = 0; i < t->n && !rc; i++)
        rc = store_experiment_result(st, experiment, &t->row[i], e);
    return rc;
}

/* the rows as read back, printed one by one and kept for the matrices
 * drawn from them (crossdeploy_print_rows) */
typedef struct {
    store_result_row *row;
    size_t n, cap;
} stored_rows;

static int print_stored_row(void *ctx, const store_result_row *r)
{
    stored_rows *s = ctx;
    if (s->n == s->cap) {
        s->row = gl_grow(s->row, s->n, s->cap ? 2 * s->cap : 64, sizeof *s->row);
        s->cap = s->cap ? 2 * s->cap : 64;
    }
    s->row[s->n++] = *r;
    print_row(r);
    return 0;
}

static int print_stored_run(void *ctx, const store_experiment_run_row *r)
{
    (void)ctx;
    printf("  seed %llu | session %lld | run %lld | %-7s | %-16s | %s\n",
           (unsigned long long)r->seed, (long long)r->session, (long long)r->run, r->role,
           r->label, r->status);
    return 0;
}

int experiment_table_reprint(const char *db, const char *from, const char *kind)
{
    gl_error e;
    size_t n;
    if (args_size("--from", from, 1, INT64_MAX, &n, &e))
        return cli_usage_error("%s", e.msg);
    store *st = store_open(db, STORE_BROWSE, &e);
    if (!st)
        return cli_runtime_error(&e);
    int64_t id = store_experiment_find(st, (int64_t)n, &e);
    store_experiment_row x;
    int rc = id < 0 ? -1 : store_get_experiment(st, id, &x, &e);
    if (!rc && strcmp(x.kind, kind) != 0) {
        /* a moe table reprinted as absorption's would mislabel every row */
        int status = cli_usage_error("--from %s: experiment %lld is of kind %s, not %s "
                                     "(gatelab experiment %s --from %s reprints it)", from,
                                     (long long)x.id, x.kind, kind, x.kind, from);
        store_experiment_row_free(&x);
        store_close(st);
        return status;
    }
    if (!rc) {
        printf("experiment %lld | %s | %s | started %s | ended %s", (long long)x.id, x.kind,
               x.status, x.started, x.ended[0] ? x.ended : "-");
        if (!isnan(x.wall_seconds))
            printf(" | wall %.0f s", x.wall_seconds);
        printf(" | gatelab %s\n", x.version);
        printf("command %s\nconfig %s\n\n", x.command, x.config_json);
        store_experiment_row_free(&x);
        print_header();
        stored_rows rows = {.n = 0};
        rc = store_list_experiment_results(st, id, print_stored_row, &rows, &e);
        if (!rc && rows.n == 0)
            printf("(no result rows: the experiment did not finish)\n");
        if (!rc)
            crossdeploy_print_rows(rows.row, rows.n);
        free(rows.row);
        if (!rc) {
            printf("\nruns:\n");
            rc = store_list_experiment_runs(st, id, print_stored_run, NULL, &e);
        }
    }
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}
