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

typedef struct {
    /* every record, on the main thread, before it is stored */
    void (*on_record)(void *ctx, live *lv, const tel_record *r);
    /* about every 10 ms; nonzero asks every arm to stop, and says why in the
     * observer's own terms (the person quit, its output is gone): the loop
     * keeps it in live_result.stop_asked */
    int (*on_tick)(void *ctx, live *lv);
    void *ctx;
} live_observer;

typedef struct {
    int signal;                    /* SIGINT/SIGTERM/SIGHUP that stopped the session, or 0 */
    int stop_asked;                /* what on_tick returned when it stopped the session, or 0 */
    size_t diverged;               /* arms that ended diverged */
    size_t failed;                 /* arms that ended failed (a checkpoint not written) */
    int64_t session;               /* 0 without a database */
    uint64_t backpressure;         /* times a ring was full and a producer waited */
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
/* Queues a command for arm i: -1 when it has ended or its queue is full. */
int live_send(live *lv, size_t i, const cmd_record *c);

#endif
