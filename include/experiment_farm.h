/* experiment_farm: an experiment's measurements over the ranks of an MPI job
 * (DESIGN §13, README "MPI"). A measurement that is a pure computation on a
 * checkpoint (an evaluation under a gate mode, a probe, a router reset, a
 * distillation that writes its file beside the checkpoint) is a task: plain bytes (a code, a mode, a seed, a path on the filesystem every
 * rank sees), and its result is a fixed array of doubles with, for the
 * few that need it, a tail of any length (a distillation's metrics). Rank 0, which
 * alone reads and writes the database, makes a batch of tasks, and
 * experiment_farm_run hands task i to rank i % size; every rank computes its
 * share with the same function (the farm's, given at open by every rank
 * alike) and the results come back to rank 0 in task order. Results are
 * those of a single process: the same tasks, the same inputs, the same
 * deterministic code — only where they are computed differs.
 *
 * Between sessions the other ranks wait in experiment_farm_serve: they
 * compute batches until rank 0 says go on (the next session) or stop (with
 * the exit status rank 0 ends with). A job of one rank (no mpirun, or
 * -np 1) has no link at all: run computes the tasks in order here, next and
 * serve do nothing, so the kinds' code is the same in both cases.
 *
 * A rank that dies during the measurements: on the same host rank 0 sees
 * its pid gone where it waits (for the rank's results, or in
 * experiment_farm_next) and fails naming it, MPI left unfinished
 * (world_mark_lost); when mpirun's SIGTERM comes first, while rank 0
 * computes its own share, rank 0's last words name the rank (a stop hook,
 * gl_set_stop_hook, while the farm is open). On another host mpirun ends the
 * job (it kills every rank once one dies) and its own lines name the rank. */
#ifndef GATELAB_EXPERIMENT_FARM_H
#define GATELAB_EXPERIMENT_FARM_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "record.h"
#include "world.h"

/* doubles of one result: an evaluation with metrics needs 4 + one per
 * layer (DISTILL_MAX_LAYERS) */
#define EXPERIMENT_TASK_VALUES 72

typedef struct {
    int32_t op;              /* what to compute: the farm function's codes */
    int32_t mode;            /* gate mode to evaluate under, -1: the checkpoint's own */
    uint64_t seed;           /* the experiment seed (probes and distillations draw from it) */
    uint64_t step;           /* the checkpoint's step (a distillation names its file by it) */
    char path[REC_TEXT];     /* the checkpoint */
} experiment_task;

/* A result: v, and for a result longer than v (a distillation with its
 * per-head metrics) `more`, nmore values the task function allocates with
 * experiment_task_out_more. The farm carries both; whoever made the array
 * frees the tails with experiment_task_outs_free. */
typedef struct {
    double v[EXPERIMENT_TASK_VALUES];
    double *more;
    size_t nmore;
} experiment_task_out;

/* room for n values in out->more (zeroed; the one tail of a result) */
double *experiment_task_out_more(experiment_task_out *out, size_t n);
void experiment_task_outs_free(experiment_task_out *out, size_t n);

/* Computes one task into out (zeroed before); -1 with a message. ctx is
 * what the rank gave experiment_farm_open. */
typedef int (*experiment_task_fn)(void *ctx, const experiment_task *t, experiment_task_out *out,
                                  gl_error *e);

typedef struct experiment_farm experiment_farm;

/* Every rank, at the same point: joins the ranks (a job of one: nothing to
 * join). ready: whether this rank opened what it needs (its data), with
 * why_not its message when not; the farm opens only when every rank is
 * ready, else every rank gets -1 and rank 0 the message of the first rank
 * that was not (naming it). */
experiment_farm *experiment_farm_open(const world *w, int ready, const gl_error *why_not,
                                      experiment_task_fn fn, void *ctx, gl_error *e);
/* Every rank, at the same point (it ends the link's communicator). */
void experiment_farm_close(experiment_farm *f);

/* Every rank, at the same point: rank 0's n bytes into every rank's buf
 * (what the others need to compute, known only to rank 0: the data a
 * stored session names). A job of one: nothing to do. */
int experiment_farm_bcast(experiment_farm *f, void *buf, size_t n, gl_error *e);

/* Rank 0: tasks[0..n) over the ranks, out[i] for tasks[i] (what out held
 * is overwritten: free its tails first). -1 with the message of the first
 * task that failed ("rank R: ..." when another rank computed it), or of a
 * rank that died. The tails are the caller's to free, after a failure too. */
int experiment_farm_run(experiment_farm *f, const experiment_task *tasks, size_t n,
                        experiment_task_out *out, gl_error *e);

/* Rank 0, after each session and its measurements: the other ranks go on
 * to the next session (status 0) or stop and end with `status`. A rank
 * seen dead here (its pid gone) is skipped and the others stop: with status
 * 0, -1 with the message naming it. */
int experiment_farm_next(experiment_farm *f, int status, gl_error *e);

/* The other ranks, after each session: computes rank 0's batches until it
 * says go on (0) or stop (its status, > 0); -1 with a message when the
 * link fails. A job of one: 0 at once. */
int experiment_farm_serve(experiment_farm *f, gl_error *e);

#endif
