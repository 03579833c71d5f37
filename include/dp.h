/* dp: the data-parallel replicas of one arm (DESIGN §13, issue 15 item 3).
 *
 * `--dp N` trains one arm on N ranks (a placement group, placement.h): every
 * replica draws the whole global batch, keeps its B/N sequences, and the
 * replicas sum their gradients with MPI_Allreduce in buckets of the flat
 * gradient buffer, posted (MPI_Iallreduce) as the backward pass finishes each
 * layer and waited before the optimiser step. The trainer's backward already
 * divides by the global batch's target count (model.grad_targets), so the
 * sum is the mean over the global batch: every replica then holds the same
 * gradient and applies the same AdamW step, and the weights stay identical —
 * which a 64-bit hash of the parameter bytes, compared at every evaluation,
 * proves. Replica 0 leads: it applies the arm's commands and hands them to
 * the others at each step boundary (dp_boundary_sync).
 *
 * Built without MPI (GATELAB_HAVE_MPI unset) or with --dp 1 there is no
 * communicator: dp_open gives NULL, and every function here takes NULL as a
 * group of one (replica 0 of 1, sums are the value itself, checks pass).
 * A dp_comm serves one trainer on one thread at a time: its collectives
 * must run in the same order on every replica, so two arms of a group
 * each need their own (dp_dup). */
#ifndef GATELAB_DP_H
#define GATELAB_DP_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "model.h"
#include "placement.h"
#include "record.h"
#include "world.h"

typedef struct dp_comm dp_comm;

/* The gradient bucket size sessions use (README: one bucket per layer of
 * the paper preset, a few for tiny). */
#define DP_BUCKET_BYTES ((size_t)4 << 20)

/* Collective over every rank of the job (MPI_Comm_split by
 * placement_group_of_rank): *out is this rank's group, NULL when p->dp is 1.
 * -1 with a message when MPI refuses. */
int dp_open(dp_comm **out, const world *w, const placement *p, gl_error *err);
/* Collective over the group: a communicator of its own for one arm the
 * group trains (call it for each such arm in arm order on every replica).
 * group NULL gives NULL. */
int dp_dup(dp_comm **out, const dp_comm *group, gl_error *err);
/* After the trainer that uses c is freed. NULL is fine. */
void dp_close(dp_comm *c);

int dp_replica(const dp_comm *c);   /* 0 .. dp_size-1; 0 for NULL */
int dp_size(const dp_comm *c);      /* 1 for NULL */

/* Sequences [*row0, *row0 + *rows) of a global batch of B are replica j's
 * of n: B/n each. -1 with a one-line message naming --batch and --dp when n
 * does not divide B. */
int dp_slice(size_t B, int n, int j, size_t *row0, size_t *rows, gl_error *err);

/* ---- gradients ---- */

/* Plans the buckets for m's gradient buffer (layer ranges of the tensor
 * table, merged until at least bucket_bytes) and allocates everything the
 * step needs, so dp_grads_* never allocate. overlap 0 sums every bucket after
 * the backward with blocking MPI_Allreduce, 1 posts them during it. */
int dp_attach(dp_comm *c, const model *m, size_t bucket_bytes, int overlap, gl_error *err);
/* The backward's per-layer hook (model.on_layer_grads): layer's gradients
 * are final; posts what is ready and drives progress of what is posted. */
void dp_grads_layer(void *ctx, model *m, size_t layer);
/* After model_backward: posts what is left, waits for every bucket. The
 * gradient buffer then holds the sum over the replicas. */
void dp_grads_finish(dp_comm *c, model *m);
/* The sum over the replicas (MPI_Allreduce, blocking); x alone for NULL. */
double dp_sum(dp_comm *c, double x);

/* Figures since dp_attach, for the bench: summed buckets (messages), bytes,
 * and seconds the step spent waiting on them (posting included). */
typedef struct {
    uint64_t allreduces, bytes, steps;
    double wait_seconds;
    size_t buckets;            /* planned per step */
    size_t bucket_floats[64];  /* the first 64 buckets' sizes */
} dp_stats;
void dp_get_stats(const dp_comm *c, dp_stats *out);

/* ---- agreement ---- */

/* The 64-bit hash of n floats' bytes (the same on every host of one byte
 * order). */
uint64_t dp_hash(const float *x, size_t n);
/* Collective: compares the hash of m's parameters across the replicas. 0
 * when all agree, -1 with a message naming the replicas that differ from
 * replica 0 and the step. */
int dp_check_weights(dp_comm *c, const model *m, size_t step, gl_error *err);
/* Collective: replica 0's bytes to the others (the starting state). */
void dp_bcast_bytes(dp_comm *c, void *buf, size_t n);

/* ---- step boundaries ----
 * What replica 0 applied at one step boundary, for the followers to apply:
 * the commands that change what a step computes or whether the arm goes on
 * (swap, freeze, unfreeze, k, stop), in order, and whether the leader's arm
 * failed. More than DP_BOUNDARY_CMDS commands go as several blocks
 * (DP_BOUNDARY_MORE on all but the last). */
#define DP_BOUNDARY_CMDS 16
#define DP_BOUNDARY_FAILED 1u   /* the leader's arm failed: end as failed */
#define DP_BOUNDARY_MORE 2u     /* another block of this boundary follows */
typedef struct {
    uint32_t flags, count;
    cmd_record cmd[DP_BOUNDARY_CMDS];
} dp_boundary;
/* Fixed size on the wire: u32 flags, u32 count, DP_BOUNDARY_CMDS command
 * slots of command_encode's bytes (unused ones zero). */
#define DP_BOUNDARY_WIRE (8 + DP_BOUNDARY_CMDS * COMMAND_WIRE_SIZE)
size_t dp_boundary_encode(const dp_boundary *b, uint8_t *buf, size_t cap);
int dp_boundary_decode(const uint8_t *buf, size_t n, dp_boundary *b);
/* Collective: replica 0 sends *b, the others receive it into *b (waiting
 * without spinning a core while the leader is paused). 0, or -1 when a
 * received block does not decode. */
int dp_boundary_sync(dp_comm *c, dp_boundary *b);

#endif
