/* trainer: one arm's training loop state — model, optimiser, data stream,
 * evaluation on the fixed val split with the gate metrics of DESIGN §4, and
 * checkpoints. It prints nothing: callers read its fields and results. */
#ifndef GATELAB_TRAINER_H
#define GATELAB_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "common.h"
#include "data.h"
#include "dp.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"
#include "record.h"

typedef struct {
    model_config model;
    optim_config optim;
    size_t steps;
    size_t eval_every;       /* steps between evaluations (0: only at the end) */
    size_t eval_windows;     /* val windows used per evaluation (0: all) */
    size_t save_every;       /* steps between checkpoints (0: only at the end when out_dir) */
    const char *data_path;   /* NULL: the embedded generator */
    const char *out_dir;     /* NULL: no checkpoints */
    size_t threads;
    int vocab_from_data;     /* .bin data sets V to its largest token id + 1 */
    int heatmaps;            /* evaluations draw a heatmap_snapshot */
} train_config;

typedef struct {
    double loss, ppl, bits_per_byte;
    double expert_balance;   /* model_expert_balance over the val windows; NaN: dense FFN */
    size_t tokens;
} eval_result;

typedef struct {
    train_config cfg;
    model m;
    optim o;
    data_source *data;
    metrics_state metrics;
    int32_t *batch, *inputs, *targets;   /* [B*(T+1)], [B*T], [B*T] */
    size_t step;                          /* steps done */
    double last_loss, last_grad_norm;
    double gate_grad_norm;                /* whole-gate norm at the last step, set by eval */
    eval_result last_eval;
    size_t commands_done;                 /* scripted commands applied (kept in checkpoints) */
    checkpoint_owner owner;               /* written into checkpoints; session 0: none */
    heatmap_snapshot *heat;               /* cfg.heatmaps: drawn by every evaluation */
    int diverged;
    double train_seconds;
    size_t tokens_trained;
    /* data parallel (trainer_set_dp): the replicas' communicator (not
     * owned), and this replica's rows [dp_row0, dp_row0 + dp_rows) of every
     * global batch; NULL and the whole batch alone */
    dp_comm *dp;
    size_t dp_row0, dp_rows;
} trainer;

/* Opens the data, checks token ids against V, builds the model. */
int trainer_init(trainer *t, const train_config *cfg, gl_error *err);
void trainer_free(trainer *t);

/* One optimisation step. Returns 0, or 1 when the loss or gradient is not
 * finite (the arm has diverged; the weights are left as they were).
 * With dp (trainer_set_dp), a collective over the replicas: each draws the
 * whole global batch (so the data cursor and RNG advance as alone), runs
 * forward and backward on its slice, and the gradients are summed over
 * the replicas (dp.h) into the gradient of the global batch's mean loss;
 * last_loss is the global batch's mean, the clip norm the global norm, and
 * every replica makes the same AdamW update. Never allocates. */
int trainer_step(trainer *t);

/* Makes t replica dp_replica(c) of dp_size(c) (c NULL: alone again): checks
 * that the batch splits (one-line error naming --batch and --dp), plans and
 * allocates the gradient buckets (dp_attach: bucket_bytes, overlap), and
 * copies replica 0's state (weights, Adam moments, step, data cursor,
 * gate mode, k, frozen, commands done) to the others, so followers need
 * only a trainer built from the same configuration. Collective over the
 * replicas; c must outlive t's use of it and serve no other trainer. */
int trainer_set_dp(trainer *t, dp_comm *c, size_t bucket_bytes, int overlap, gl_error *err);
/* Collective with dp: compares the replicas' weight hashes (dp.h). 0 when
 * they agree (always alone), -1 with a message naming the replicas. */
int trainer_dp_check(trainer *t, gl_error *err);

/* Val loss over the fixed split (evaluate.h, per token), and per-layer/head
 * gate metrics of the first val batch (in t->metrics) plus the gate gradient
 * norms of the last step. */
void trainer_eval(trainer *t, eval_result *out);

/* A new trainer continuing from src: same config, weights, Adam moments,
 * step and data cursor (so it sees the batches src would have seen), then
 * swapped to mode. */
int trainer_fork(trainer *dst, const trainer *src, gate_mode mode, gl_error *err);

/* Resumable checkpoint (weights, Adam moments, step, data cursor). */
int trainer_save(trainer *t, const char *path, gl_error *err);
/* Restores a resumable checkpoint into an initialised trainer of the same
 * shape. */
int trainer_restore(trainer *t, const char *path, gl_error *err);

#endif
