/* session_view: what an observer of a live session sees of it — the screen,
 * the headless printer, one day a watcher in another process. Records (on
 * the main thread, in order), the session's shape, per-arm figures through
 * functions, and the commands it may send. Nothing of the trainer: ui/
 * includes this, never live.h or arm.h, so model.h, optim.h and trainer.h
 * stay out of its include closure (tests/test_seams.sh checks it). */
#ifndef GATELAB_SESSION_VIEW_H
#define GATELAB_SESSION_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "record.h"

#define LIVE_MAX_ARMS REC_MAX_ARMS   /* record.h: the codec refuses arms past it */

typedef struct live live;

/* The session as configured, before it runs (live_shape fills it). */
typedef struct {
    size_t layers, heads, T, batch;   /* the model's shape, the same for every arm */
    uint32_t k, frozen;               /* the gate every arm starts with */
    size_t steps;                     /* --steps */
    size_t narms;
    uint32_t modes[LIVE_MAX_ARMS];    /* gate_mode each arm starts in */
    char names[LIVE_MAX_ARMS][REC_NAME];
    const char *db_path;              /* NULL: nothing stored */
} session_shape;

/* What on_tick returns to detach the session instead of stopping it (the
 * `d` key): it goes on training in the background, its output in the log
 * file (live_log_path), and this process ends (live_result.detached). */
#define LIVE_ASK_DETACH (-1)

/* live_result.detached: how the session left its terminal. PARENT: this
 * process handed the session to a background child and ends without
 * touching the runs; CHILD: this process is that child (its own session,
 * stdin /dev/null, stdout and stderr in the log); HANGUP: SIGHUP came (the
 * terminal is gone), and the same process trained on with its output in
 * the log. */
enum { LIVE_DETACH_PARENT = 1, LIVE_DETACH_CHILD, LIVE_DETACH_HANGUP };

typedef struct live_observer live_observer;
struct live_observer {
    /* every record, on the main thread, before it is stored */
    void (*on_record)(void *ctx, live *lv, const tel_record *r);
    /* about every 10 ms; nonzero asks every arm to stop, and says why in the
     * observer's own terms (the person quit, its output is gone): the loop
     * keeps it in live_result.stop_asked; LIVE_ASK_DETACH detaches */
    int (*on_tick)(void *ctx, live *lv);
    void *ctx;
    /* Detach (NULL: nothing to do). Called on the main thread with `how`
     * LIVE_DETACH_HANGUP before stdout and stderr move to log_path (close
     * the screen, say where the output goes), and LIVE_DETACH_CHILD in the
     * child after they moved (forget the terminal without touching it). */
    void (*on_detach)(void *ctx, live *lv, int how, const char *log_path);
    /* The observer the session goes on with once detached (the headless
     * printer); NULL: this one. */
    const live_observer *detached;
};

typedef struct {
    int signal;                    /* SIGINT/SIGTERM/SIGHUP that stopped the session, or 0 */
    int stop_asked;                /* what on_tick returned when it stopped the session, or 0 */
    size_t diverged;               /* arms that ended diverged */
    size_t failed;                 /* arms that ended failed (a checkpoint not written) */
    int64_t session;               /* 0 without a database */
    uint64_t backpressure;         /* times a ring was full and a producer waited */
    int detached;                  /* LIVE_DETACH_*, or 0 */
    int detach_failed;             /* a detach could not be made: the session stopped */
    long detached_pid;             /* LIVE_DETACH_PARENT: the child that trains on */
    char log_path[1024];           /* detached: where the session's output goes */
} live_result;

/* For observers, on the main thread. An arm's name and target are fixed
 * before its first record reaches an observer; NULL / 0 past the end. */
size_t live_arm_count(const live *lv);
const char *live_arm_label(const live *lv, size_t i);
size_t live_arm_target(const live *lv, size_t i);    /* the steps it trains to */
uint64_t live_arm_step(const live *lv, size_t i);    /* steps done, may lag its records */
/* Arm i's newest heatmaps into out (the session's shape) when their version
 * is not `seen`: returns that version, 0 when there is none newer.
 * live_heat_version: the newest version without reading it, 0: none yet. */
uint64_t live_heat_read(live *lv, size_t i, uint64_t seen, heatmap_snapshot *out);
uint64_t live_heat_version(const live *lv, size_t i);
int64_t live_run_id(const live *lv, size_t i);   /* 0 when not stored (yet) */
int64_t live_session(const live *lv);            /* 0 without a database */
/* Where a detached session's output goes: next to the database,
 * <db dir>/<db name without its extension>-session-<N>.log (absolute);
 * without a database (only a hangup can detach then) gatelab-<pid>.log in
 * the working directory. -1 when it does not fit in n. */
int live_log_path(const live *lv, char *out, size_t n);
/* Queues a command for arm i: -1 when it has ended or its queue is full. */
int live_send(live *lv, size_t i, const cmd_record *c);

#endif
