/* arm: one trainer on its own thread. Between steps it applies scripted
 * commands due at this step and commands from its command ring, and it
 * reports everything it does as telemetry records on its own ring. Pause
 * waits on a condition variable. */
#ifndef GATELAB_ARM_H
#define GATELAB_ARM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "pace.h"
#include "record.h"
#include "trainer.h"

typedef struct {
    size_t steps;              /* train until this many steps are done */
    size_t eval_every, save_every;
    const char *ckpt_dir;      /* NULL: no checkpoints (and none on request) */
    int telemetry;             /* 0: only evaluations and statuses are reported */
    size_t keep_checkpoints;   /* --keep-checkpoints: 0 keeps every resumable file, N
                                  deletes the oldest beyond N after each save */
    size_t heatmap_every;      /* --heatmap-every: 0 or 1 stores every evaluation's
                                  heatmaps, N every Nth (arm_heat_take) */
    _Atomic int64_t *run_id;   /* the store's id of the run (0 until numbered), for
                                  checkpoint owners: stored (release) by the store
                                  thread's begin_run, loaded (acquire) by the arm
                                  thread in save_checkpoint */
    pace *pace;                /* the session's pacing (pace.h), slot = the arm's
                                  index; NULL: the arm runs unpaced */
} arm_config;

/* The arm itself is private to arm.c: the session reaches it through the
 * functions below, and ui/ and store/ never see it (DESIGN §1). */
typedef struct arm arm;

/* Takes ownership of *t (moved in). script entries and cfg->ckpt_dir are
 * copied. */
arm *arm_create(uint32_t index, const char *name, trainer *t, const arm_config *cfg,
                const scripted_command *script, size_t nscript);
void arm_destroy(arm *a);
/* Creates the arm's checkpoint directory and checks it can be written, so a
 * bad place fails before the first step, not at the first save. */
int arm_check_dir(const arm *a, gl_error *err);
int arm_start(arm *a, gl_error *err);
void arm_join(arm *a);
/* Detach (live_detach.c), main thread: arm_park asks the arm's thread to
 * leave its loop at the next step boundary (a paused arm leaves its wait)
 * with its trainer, pause and schedule intact and its pool's workers
 * joined; arm_parked says it has (then arm_join). arm_start on a parked arm
 * starts its pool and a thread that goes on from exactly that step, so the
 * run's results are the same bits as without the park. An arm that ends
 * first (its last step, a stop) never parks: arm_done says so instead. */
void arm_park(arm *a);
int arm_parked(const arm *a);
/* After arm_join, on an arm that ended before the park: its pool's workers
 * are still waiting for work, and a fork would copy their condition
 * variable with waiters no thread is left to be (pool_destroy would then
 * wait for them forever); this joins them. */
void arm_park_ended(arm *a);

/* Main thread: queue a command and wake the arm if it is paused. -1 when the
 * command ring is full. */
int arm_send(arm *a, const cmd_record *c);
/* Main thread: the next telemetry record of the arm, decoded; -1 when there
 * is none waiting. */
int arm_poll(arm *a, tel_record *r);
/* Main thread, on a REC_FORKED record of this arm: the trainer the fork made
 * (the caller owns it). The arm hands one over per REC_FORKED, in order. */
trainer *arm_take_fork(arm *a);

/* What the session reads of an arm. name, index and the config are fixed at
 * creation; step, done and backpressure are the arm thread's counters. */
uint32_t arm_index(const arm *a);
const char *arm_name(const arm *a);
const arm_config *arm_cfg(const arm *a);
uint64_t arm_step(const arm *a);        /* steps done, for the screen (may lag) */
int arm_done(const arm *a);             /* the thread has pushed its last record */
void arm_mark_done(arm *a);             /* main thread: an arm whose thread never started */
uint64_t arm_backpressure(const arm *a);
/* --dp: the arm ended failed because its replicas' weights differed (its
 * EV_ERROR event names them); the session then stops with that error. An
 * arm's trainer is made a replica by trainer_set_dp before arm_create:
 * replica 0 leads (it applies its script and command ring, reports, writes
 * checkpoints, and hands what it applied to the others at each step
 * boundary); a follower reads neither script nor ring, reports nothing and
 * writes nothing; forks are refused. */
int arm_dp_mismatch(const arm *a);

/* The arm's last evaluation's heatmaps, as a heatmap payload (record.h).
 * arm_heat_bytes: the payload's size, 0 when the arm makes none.
 * arm_heat_read (main thread only): copies the newest payload into
 * out[arm_heat_bytes] and returns its version, 0 when none yet.
 * arm_heat_version: the newest version, without copying. */
size_t arm_heat_bytes(const arm *a);
uint64_t arm_heat_read(arm *a, uint8_t *out);
uint64_t arm_heat_version(const arm *a);

/* The heatmaps to store (every evaluation's, thinned by heatmap_every),
 * handed over without loss: arm_heat_take gives the next payload
 * (arm_heat_bytes long) or NULL when there is none; once its bytes are
 * copied, arm_heat_taken frees the slot for the arm's next. Main thread. */
const uint8_t *arm_heat_take(arm *a);
void arm_heat_taken(arm *a);

/* Remote arms (DESIGN §13): on rank 0 of an MPI job, an arm another rank
 * trains is an arm without trainer or thread, so the session loop, the
 * store and the screen read it like any other (live_remote.c fills it).
 * arm_start does nothing for it. All main thread.
 * create_remote: heat_bytes as the training rank's arm_heat_bytes (0: none).
 * remote_push: one record as record_encode made it (n bytes); -1 when its
 * ring is full. remote_heat: a heatmap payload of n bytes into the store's
 * hand-over slot (store) or the screen's latest slot; -1 when the hand-over
 * slot still holds one (arm_heat_take has not been answered), -2 when n is
 * not the arm's size. remote_step: the step counter. remote_command: the
 * next command arm_send queued for it, -1 when none. */
arm *arm_create_remote(uint32_t index, const char *name, const arm_config *cfg,
                       size_t heat_bytes);
int arm_is_remote(const arm *a);
int arm_remote_push(arm *a, const uint8_t *rec, size_t n);
int arm_remote_heat(arm *a, const uint8_t *payload, size_t n, int store);
void arm_remote_step(arm *a, uint64_t step);
int arm_remote_command(arm *a, cmd_record *c);

/* The evaluation schedule: 1 when an arm evaluates after `step` steps of a
 * run of `steps` with --eval-every `eval_every` (0: only at the end): every
 * eval_every steps, at the last step, and early at steps 10, 25 and 50 when
 * below both. A fresh run is also evaluated before its first step (step 0)
 * when eval_every > 0 (issue 16: the untrained level of the co-adaptation
 * trace); arm_eval_due is about steps taken, arm_eval_count counts that one
 * too: how many evaluations a whole run makes. */
int arm_eval_due(size_t step, size_t eval_every, size_t steps);
size_t arm_eval_count(size_t eval_every, size_t steps);

#endif
