/* pace: a session's arms advance together (issue 13 item 6). Each arm
 * reports its step counter; an arm that is `slack` steps ahead of the
 * slowest of its running peers waits (a condition variable, no spinning)
 * until that one is within slack / 2 again, and while it waits its core is
 * lent to the arms that run: every arm's pool has as many threads as the
 * session has cores (--threads), and pace sets how many of them share its
 * jobs (pool_set_width) so that the running arms' widths add up to the
 * cores, the slowest arms getting the spare ones first. No core idles while
 * an arm is behind, and the arm behind gets the most of them.
 *
 * What counts: an arm is RUNNING (stepping), WAITING (held by pace) or
 * IDLE (paused: it neither holds the others back nor gets cores); an arm
 * that has left (ended, failed, never started) is forgotten. The slowest
 * running-or-waiting arm never waits (its peers are all at or ahead of
 * it), so there is no deadlock, and an arm with no peer never waits. The
 * guarantee: among arms that stayed RUNNING/WAITING, no arm starts a step
 * while it is slack or more steps ahead of another, so their step counters
 * stay within slack of each other. An arm resumed from a pause (IDLE ->
 * RUNNING) may be further behind; the others wait while it catches up.
 *
 * Slots are the session's arm indices. Every call is thread-safe (one
 * mutex). Pacing never touches what a step computes: results are the same
 * bits with or without it, for any width (pool.h). */
#ifndef GATELAB_PACE_H
#define GATELAB_PACE_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"

#define PACE_MAX_SLOTS 64

typedef struct pace pace;

/* cores >= 1: the session's --threads; slack >= 1 steps (pace_slack). */
pace *pace_create(size_t cores, uint64_t slack);
void pace_destroy(pace *p);
/* The slack a session with this evaluation interval gets: half of it (so
 * arms stay within one evaluation of each other), at least 1; without
 * periodic evaluations (0), 50 steps. */
uint64_t pace_slack(size_t eval_every);

/* Slot joins as RUNNING at `step`, its jobs on pool pl (NULL: none to
 * widen). The main thread, before the arm's thread starts. */
void pace_join(pace *p, size_t slot, uint64_t step, pool *pl);
/* Slot leaves for good (ended, failed, or its thread never started). */
void pace_leave(pace *p, size_t slot);
/* Paused (idle = 1) or running again (0) at step. */
void pace_idle(pace *p, size_t slot, int idle, uint64_t step);
/* The arm's thread, after each step: its counter. */
void pace_step(pace *p, size_t slot, uint64_t step);
/* The arm's thread, before a step: returns 0 when the arm may step now
 * (possibly after waiting), 1 when interrupt(ctx) became true while it
 * waited (checked under pace's lock; whoever makes it true calls
 * pace_wake afterwards). */
int pace_hold(pace *p, size_t slot, int (*interrupt)(void *), void *ctx);
void pace_wake(pace *p);

/* For tests and the screen: slot's state (PACE_*) and its pool width. */
enum { PACE_NONE, PACE_RUNNING, PACE_WAITING, PACE_IDLE };
int pace_state(pace *p, size_t slot);
/* How many times slots waited, over the session (a test reads it). */
uint64_t pace_waits(pace *p);

#endif
