/* experiment_table: the result table of an experiment — rows of a value over
 * seeds beside the paper's figure and whether it points the same way —
 * printed, stored as the experiment's results, and reprinted from the
 * database (`gatelab experiment KIND --from ID`). */
#ifndef GATELAB_EXPERIMENT_TABLE_H
#define GATELAB_EXPERIMENT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "store.h"

#define EXPERIMENT_MAX_ROWS 256   /* absorption's lines and a cross-deployment matrix per arm */

typedef struct {
    store_result_row row[EXPERIMENT_MAX_ROWS];
    size_t n;
} experiment_table;

/* mean and sample standard deviation over seeds (sd NAN for one seed) */
void experiment_table_stats(const double *v, size_t n, double *mean, double *sd);
/* a new row with value and spread NAN; the caller fills in the value */
store_result_row *experiment_table_add_row(experiment_table *t, const char *line,
                                           const char *quantity, const char *paper,
                                           const char *direction);
/* a value over seeds: "mean +- sd" (just the mean for one seed) */
store_result_row *experiment_table_add_stat(experiment_table *t, const char *line,
                                            const char *quantity, const double *v, size_t n,
                                            int decimals, const char *paper,
                                            const char *direction);
const char *experiment_table_yes_no(int cond);
/* the column header and every row */
void experiment_table_print(const experiment_table *t);
/* every row as the experiment's results */
int experiment_table_store(store *st, int64_t experiment, const experiment_table *t,
                           gl_error *e);
/* `--from ID`: reprints a stored experiment (ID an experiment or session id)
 * of this kind; another kind's is a usage error naming both. Returns the
 * exit status (errors printed with cli.h's). */
int experiment_table_reprint(const char *db, const char *from, const char *kind);

#endif
