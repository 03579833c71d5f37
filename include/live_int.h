/* live_int: the session's own state, shared by its three files — live.c
 * (the session loop), live_store.c (the store thread) and live_arms.c (the
 * arm registry). Nothing else includes it. */
#ifndef GATELAB_LIVE_INT_H
#define GATELAB_LIVE_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "live.h"
#include "pace.h"
#include "ring.h"
#include "store.h"

typedef struct {
    char *config_json;             /* the run's configuration: REC_RUN_BEGIN's payload,
                                      and what a resume with a new --steps stores */
    tel_record begin;              /* the arm's REC_RUN_BEGIN, made from its trainer by
                                      the main thread before the arm's thread starts */
} arm_info;

/* live_steer.c: the commands table in the owning process */
typedef struct live_steer live_steer;
/* live_remote.c: the session's other ranks (DESIGN §13) */
typedef struct live_remote live_remote;

struct live {
    const live_config *cfg;
    arm *arms[LIVE_MAX_ARMS];      /* main thread only, like everything not atomic here */
    arm_info info[LIVE_MAX_ARMS];
    /* The store's id of each arm's run, 0 until numbered. Stored (release)
     * by begin_run: on the main thread before the store thread starts (the
     * first arms), else on the store thread (forks). Its partners are the
     * acquire loads in live_run_id (main thread), in save_checkpoint (the
     * arm thread, through arm_config.run_id) and in write_batch (a fork's
     * parent run, the store thread's own or the main thread's store before
     * pthread_create). */
    _Atomic int64_t run_ids[LIVE_MAX_ARMS];
    size_t narms;
    /* store side */
    store *st;
    int64_t session;
    ring *store_ring;              /* main -> store thread: record_encode's bytes */
    byte_ring *store_bytes;        /* main -> store thread: the records' payloads, in
                                      the same order, each right after its record */
    pthread_t store_thread;
    int store_started;
    /* Stored (release) by the store thread in store_fail after it wrote
     * store_error; loaded (acquire) by the main thread (live_run), which may
     * then read store_error. The store thread's own loads are relaxed. */
    atomic_int store_failed;
    /* Stored (release) by live_store_park after the main thread put its last
     * record; loaded (acquire) by the store thread before it reads its ring:
     * once that ring is empty it commits and ends, leaving the session open. */
    atomic_int store_park;
    char store_error[sizeof(gl_error)];
    uint64_t store_backpressure;
    char ckpt_root[2048];
    size_t threads_per_arm;        /* each arm's pool: --threads (pace lends them out) */
    pace *pace;                    /* the arms' pacing (pace.h); freed by teardown */
    uint8_t *heat_flat;            /* main thread: a payload read from an arm's heat slot */
    size_t heat_cap;
    live_steer *steer;             /* with a database: the commands table (live_steer.c) */
    live_remote *remote;           /* under mpirun with several ranks, else NULL */
    char db_id[33];                /* a rank other than 0: the database's id (from rank 0) */
};

/* live_store.c: the database side. open: the session's row (or the resumed
 * run's session); begin_run: a run's row from its REC_RUN_BEGIN record and
 * its config JSON (main thread before start, the store thread after);
 * start: the rings and the thread; put: one record (and r->payload bytes of
 * payload) to the store thread, waiting when full, never dropping; finish:
 * the session's end, then joins the thread; close: frees the rest. */
int live_store_open(live *lv, gl_error *e);
int live_store_begin_run(live *lv, const tel_record *r, const char *config_json, gl_error *e);
int live_store_start(live *lv, gl_error *e);
void live_store_put(live *lv, const tel_record *r, const void *payload);
void live_store_finish(live *lv);
void live_store_close(live *lv);
/* Detach: park: every record put so far written and committed, the thread
 * joined and the connection closed (the session stays open); reopen (in the
 * process that goes on): the connection again, the session's live runs
 * adopted (store_run_adopt), and the thread started. */
void live_store_park(live *lv);
int live_store_reopen(live *lv, gl_error *e);

/* live_detach.c: the session goes on without its terminal (DESIGN §12).
 * log_path: where its output goes (next to the database). detach: the `d`
 * key: every thread parked and joined, the store closed, fork; the parent
 * returns LIVE_DETACH_PARENT (it ends without touching the runs), the child
 * (a new session, output in the log) restarts everything and returns
 * LIVE_DETACH_CHILD; -1 with a message when it could not (the session then
 * goes on as it was). hangup: SIGHUP, the terminal gone: no fork, the output
 * moves to the log and SIGHUP is ignored from then on. */
int live_detach(live *lv, const live_observer *obs, live_result *res, sigset_t *sigs,
                gl_error *e);
int live_hangup(live *lv, const live_observer *obs, live_result *res, sigset_t *sigs,
                gl_error *e);

/* live.c: every arm's waiting records to the observer and the store (forks
 * adopted unless stopping); 1 when every arm has pushed its last. */
int live_drain(live *lv, const live_observer *obs, live_result *res, int stopping);

/* live_steer.c: steering from other processes through the commands table
 * (DESIGN §12; the route is argued at the top of live_steer.c). create/free:
 * live_store_start/close. The store thread: note sees every record it takes
 * from the store ring (an arm's event or refusal answers a command, a final
 * status rejects what its arm had not answered) and poll reads the new
 * pending rows every STEER_POLL_SECONDS; both hand the rows they decide to
 * emit as REC_COMMAND records, to be written in order with the others. poll:
 * -1 with a message on an SQLite error other than a busy lock. The main
 * thread: deliver sends what poll handed over to the arms (live_send). */
typedef void (*steer_emit_fn)(void *ctx, const tel_record *r);
live_steer *live_steer_create(void);
void live_steer_free(live_steer *s);
void live_steer_note(live *lv, const tel_record *r, steer_emit_fn emit, void *ctx);
int live_steer_poll(live *lv, double now, steer_emit_fn emit, void *ctx, gl_error *e);
void live_steer_deliver(live *lv);

/* live_arms.c: the arm registry. checkpoint_root: where the session's
 * checkpoints go; make: the configured arms; adopt_fork: a forked trainer
 * (owned from here on) becomes the next arm, with its run and thread;
 * free: arm i and what the registry keeps of it. */
int live_arms_checkpoint_root(live *lv, const char *cwd, gl_error *e);
int live_arms_make(live *lv, gl_error *e);
void live_arms_adopt_fork(live *lv, trainer *child, const tel_record *r,
                          const live_observer *obs);
void live_arms_free(live *lv, size_t i);

/* live_remote.c: a session over the ranks of an MPI job (DESIGN §13).
 * open: with cfg->world of several ranks, the link and the placement (a
 * resume is refused); nothing otherwise. local: whether this rank trains
 * arm i (1 without ranks), as its leader or a --dp follower; leads: whether
 * it leads it (the rank that reports it to rank 0). dp: the communicator of
 * arm i's --dp replicas on this rank (NULL: none), made by live_arms_make
 * through live_remote_dp_make. begin: the whole setup
 * on every rank (rank 0's store and runs, every rank's own arms) instead of
 * live_run's own. pump (rank 0, each turn of the session loop): remote
 * arms' records in, their commands out; 1 when a rank died — its runs are
 * then marked crashed, the others stopped, the store finished, and
 * live_remote_fault says which. work: the loop of the other ranks.
 * close: `end` to the others (rank 0), then frees. */
int live_remote_open(live *lv, gl_error *e);
int live_remote_rank(const live *lv);
int live_remote_local(const live *lv, size_t arm);
int live_remote_leads(const live *lv, size_t arm);
int live_remote_dp_make(live *lv, size_t arm, trainer *t, gl_error *e);
int live_remote_begin(live *lv, const char *cwd, gl_error *e);
int live_remote_pump(live *lv, const live_observer *obs, int stopping);
int live_remote_work(live *lv, sigset_t *sigs, live_result *res, gl_error *e);
const char *live_remote_fault(const live *lv);
void live_remote_close(live *lv);
/* live_arms.c: arm i, trained by another rank, as a remote arm */
void live_arms_add_remote(live *lv, size_t i);

#endif
