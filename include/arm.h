/* arm: one trainer on its own thread. Between steps it applies scripted
 * commands due at this step and commands from its command ring, and it
 * reports everything it does as telemetry records on its own ring. Pause
 * waits on a condition variable. */
#ifndef GATELAB_ARM_H
#define GATELAB_ARM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "record.h"
#include "ring.h"
#include "trainer.h"

typedef struct {
    size_t steps;              /* train until this many steps are done */
    size_t eval_every, save_every;
    const char *ckpt_dir;      /* NULL: no checkpoints (and none on request) */
    int telemetry;             /* 0: only evaluations and statuses are reported */
    size_t keep_checkpoints;   /* --keep-checkpoints: 0 keeps every resumable file, N
                                  deletes the oldest beyond N after each save */
    size_t heatmap_every;      /* --heatmap-every: 0 or 1 stores every evaluation's
                                  heatmaps, N every Nth (arm_heat_stored) */
    _Atomic int64_t *run_id;   /* the store's id of the run (0 until numbered), for
                                  checkpoint owners; written by the store thread */
} arm_config;

typedef struct arm {
    uint32_t index;
    char name[64];
    trainer t;                     /* owned; touched only by the arm thread once started */
    arm_config cfg;
    ring *tel;                     /* arm -> main, tel_record */
    ring *cmd;                     /* main -> arm, cmd_record */
    latest_slot *heat;             /* arm -> main, the last evaluation's heatmaps */
    uint8_t *heat_flat;            /* staging for heat: step + gate + oracle + attn */
    size_t heat_bytes;
    scripted_command *script;      /* sorted by step; owned */
    size_t nscript, next_script;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;            /* guards the pause wait only */
    pthread_cond_t cv;
    atomic_int done;               /* the thread has pushed its last record */
    atomic_ullong backpressure;    /* pushes that found the telemetry ring full */
    atomic_ullong step;            /* steps done, for the screen */
    double tok_since, time_since;  /* throughput since the last evaluation */
    int temps_swept;               /* stale .tmp files of the checkpoint dir removed */
} arm;

/* Takes ownership of *t (moved in). script entries are copied. */
arm *arm_create(uint32_t index, const char *name, trainer *t, const arm_config *cfg,
                const scripted_command *script, size_t nscript);
void arm_destroy(arm *a);
/* Creates the arm's checkpoint directory and checks it can be written, so a
 * bad place fails before the first step, not at the first save. */
int arm_check_dir(const arm *a, gl_error *err);
int arm_start(arm *a, gl_error *err);
void arm_join(arm *a);

/* Main thread: queue a command and wake the arm if it is paused. -1 when the
 * command ring is full. */
int arm_send(arm *a, const cmd_record *c);

/* Whether the heatmaps of the evaluation at `step` are stored: every one
 * with heatmap_every <= 1; else the scheduled evaluations at multiples of
 * heatmap_every * eval_every, and every off-schedule one (the last step, a
 * stop between evaluations). Depends on the step alone, so a resumed run
 * thins exactly as it would have; the session loop also stores the last
 * heatmaps of an arm that ends on a thinned step. */
int arm_heat_stored(const arm *a, uint64_t step);

/* The evaluation schedule: 1 when an arm evaluates after `step` steps of a
 * run of `steps` with --eval-every `eval_every` (0: only at the end): every
 * eval_every steps, at the last step, and early at steps 10, 25 and 50 when
 * below both. arm_eval_count: how many evaluations a whole run makes. */
int arm_eval_due(size_t step, size_t eval_every, size_t steps);
size_t arm_eval_count(size_t eval_every, size_t steps);

/* Size of the flat heatmap payload: 8-byte step, then gate, oracle, attn. */
size_t arm_heat_bytes(const trainer *t);
/* Unpacks a flat payload read from a->heat into a new snapshot. */
heatmap_snapshot *arm_heat_unpack(const arm *a, const uint8_t *flat);

#endif
