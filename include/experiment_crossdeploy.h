/* experiment_crossdeploy: the cross-deployment matrix (issue 16 item 3) —
 * every trained arm of a session evaluated under every gate mode on the
 * same val windows. Rows: the arm (trained under), columns: the mode it is
 * evaluated under, cells: val ppl and its ratio to the diagonal (the arm
 * evaluated in the mode it trained under). Co-adaptation shows as a strong
 * diagonal. `gatelab experiment crossdeploy SESSION` for any stored session,
 * and per seed inside `experiment absorption`. The matrix is stored as
 * experiment result rows of line "X" (one per cell) and printed back from
 * them, so a reprint (`--from`) draws the same matrix. */
#ifndef GATELAB_EXPERIMENT_CROSSDEPLOY_H
#define GATELAB_EXPERIMENT_CROSSDEPLOY_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "data.h"
#include "experiment_farm.h"
#include "experiment_table.h"
#include "gate.h"
#include "store.h"
#include "world.h"

#define CROSSDEPLOY_MAX_ROWS 16
#define CROSSDEPLOY_NCOLS 7    /* dense soft random topk topk-random oracle stochastic */
#define CROSSDEPLOY_LINE "X"   /* the result rows' line */

/* the columns, in order */
extern const gate_mode crossdeploy_modes[CROSSDEPLOY_NCOLS];

typedef struct {
    size_t n;
    int64_t run[CROSSDEPLOY_MAX_ROWS];
    char label[CROSSDEPLOY_MAX_ROWS][64];     /* the arm: its mode, or "NAME (MODE) #RUN" */
    double own[CROSSDEPLOY_MAX_ROWS];         /* the diagonal: evaluated as it trained */
    double ppl[CROSSDEPLOY_MAX_ROWS][CROSSDEPLOY_NCOLS];
} crossdeploy_matrix;

/* The evaluations of one row: its own mode, then every column's. */
#define CROSSDEPLOY_TASKS_PER_ROW (1 + CROSSDEPLOY_NCOLS)

/* The rows' labels and runs for runs[0..n) (by_mode: labelled by their
 * mode, rows that line up across seeds; else by name, mode and run id), and
 * the tasks that measure them over the session's val windows: per row CROSSDEPLOY_TASKS_PER_ROW
 * EXPERIMENT_TASK_EVAL of its newest checkpoint into tasks[] (room for n of
 * them). The number of tasks, or -1 with a message. */
int crossdeploy_tasks(store *st, const int64_t *runs, size_t n, int by_mode,
                      crossdeploy_matrix *m, experiment_task *tasks, gl_error *e);
/* The cells from the tasks' results, in crossdeploy_tasks' order. */
void crossdeploy_fill(crossdeploy_matrix *m, const experiment_task_out *out);

/* One row per cell (and per diagonal) of line CROSSDEPLOY_LINE: the mean
 * ppl over the nseeds matrices (whose rows must match) and the mean ratio
 * to the diagonal, "PPL [+- SD] (xRATIO)". */
void crossdeploy_add_rows(experiment_table *t, const crossdeploy_matrix *m, size_t nseeds);

/* The matrix rebuilt from the rows of line CROSSDEPLOY_LINE among rows[0..n)
 * (a table just built, or one read back from the store) and printed as one
 * table; nothing when there are none. */
void crossdeploy_print_rows(const store_result_row *rows, size_t n);

/* `gatelab experiment crossdeploy SESSION [--db PATH] [--threads N]` or
 * `--from ID`: argv after the kind, on every rank of w (NULL: a job of
 * one); rank 0 reads the database, every rank computes its share of the
 * cells. The exit status. */
int experiment_crossdeploy_main(int argc, char **argv, const world *w);

#endif
