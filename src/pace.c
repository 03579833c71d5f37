/* pace: a session's arms advance together, and the cores of an arm that
 * waits go to the arms behind it (pace.h states the rules). One mutex over
 * every slot; one condition variable every waiting arm sleeps on, broadcast
 * when a step, a join, a leave or a pause could let one go. Called once
 * per step by each arm: a lock, a scan of at most PACE_MAX_SLOTS slots. */
#include "pace.h"

#include <pthread.h>
#include <stdlib.h>

#include "common.h"

typedef struct {
    int state;          /* PACE_* */
    uint64_t step;
    pool *pl;
    size_t width;       /* what pace last gave pl */
} pace_slot;

struct pace {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t cores;
    uint64_t slack;
    size_t nwaiting;
    uint64_t waits;
    pace_slot slot[PACE_MAX_SLOTS];
};

uint64_t pace_slack(size_t eval_every)
{
    if (!eval_every)
        return 50;
    return eval_every / 2 ? eval_every / 2 : 1;
}

pace *pace_create(size_t cores, uint64_t slack)
{
    pace *p = xcalloc(1, sizeof *p);
    p->cores = cores ? cores : 1;
    p->slack = slack ? slack : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
}

void pace_destroy(pace *p)
{
    if (!p)
        return;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int counts(int state)
{
    return state == PACE_RUNNING || state == PACE_WAITING;
}

/* The lowest step among slot's running or waiting peers; 0 when none. */
static int slowest_peer(const pace *p, size_t self, uint64_t *out)
{
    int any = 0;
    for (size_t i = 0; i < PACE_MAX_SLOTS; i++)
        if (i != self && counts(p->slot[i].state) && (!any || p->slot[i].step < *out)) {
            *out = p->slot[i].step;
            any = 1;
        }
    return any;
}

/* Widths, under the lock: each running arm one thread, the cores left over
 * (those of waiting arms, and any --threads beyond the arm count) to the
 * running arms from the slowest up, each up to its pool's size. Waiting
 * and idle arms run no jobs; they keep width 1. */
static void share_cores(pace *p)
{
    size_t running = 0;
    for (size_t i = 0; i < PACE_MAX_SLOTS; i++)
        running += p->slot[i].state == PACE_RUNNING;
    size_t spare = p->cores > running ? p->cores - running : 0;
    uint8_t given[PACE_MAX_SLOTS] = {0};
    for (size_t n = 0; n < running; n++) {
        /* the slowest running arm not yet given its width (ties: lower slot) */
        size_t best = PACE_MAX_SLOTS;
        for (size_t i = 0; i < PACE_MAX_SLOTS; i++)
            if (p->slot[i].state == PACE_RUNNING && !given[i] &&
                (best == PACE_MAX_SLOTS || p->slot[i].step < p->slot[best].step))
                best = i;
        given[best] = 1;
        pace_slot *s = &p->slot[best];
        size_t w = 1;
        if (s->pl) {
            size_t room = pool_threads(s->pl) - 1, extra = spare < room ? spare : room;
            w += extra;
            spare -= extra;
        }
        if (s->pl && s->width != w)
            pool_set_width(s->pl, w);
        s->width = w;
    }
    for (size_t i = 0; i < PACE_MAX_SLOTS; i++) {
        pace_slot *s = &p->slot[i];
        if (s->state != PACE_RUNNING && s->pl && s->width != 1) {
            pool_set_width(s->pl, 1);
            s->width = 1;
        }
    }
}

/* Under the lock, after anything that may let a waiting arm go or change
 * who is slowest. */
static void changed(pace *p)
{
    share_cores(p);
    if (p->nwaiting)
        pthread_cond_broadcast(&p->cv);
}

void pace_join(pace *p, size_t slot, uint64_t step, pool *pl)
{
    GL_ASSERT(slot < PACE_MAX_SLOTS);
    pthread_mutex_lock(&p->mu);
    p->slot[slot] = (pace_slot){.state = PACE_RUNNING, .step = step, .pl = pl, .width = 0};
    changed(p);
    pthread_mutex_unlock(&p->mu);
}

void pace_leave(pace *p, size_t slot)
{
    GL_ASSERT(slot < PACE_MAX_SLOTS);
    pthread_mutex_lock(&p->mu);
    p->slot[slot].state = PACE_NONE;
    p->slot[slot].pl = NULL;   /* the arm's pool may be freed from here on */
    changed(p);
    pthread_mutex_unlock(&p->mu);
}

void pace_idle(pace *p, size_t slot, int idle, uint64_t step)
{
    GL_ASSERT(slot < PACE_MAX_SLOTS);
    pthread_mutex_lock(&p->mu);
    pace_slot *s = &p->slot[slot];
    if (s->state != PACE_NONE) {
        s->state = idle ? PACE_IDLE : PACE_RUNNING;
        s->step = step;
        changed(p);
    }
    pthread_mutex_unlock(&p->mu);
}

void pace_step(pace *p, size_t slot, uint64_t step)
{
    GL_ASSERT(slot < PACE_MAX_SLOTS);
    pthread_mutex_lock(&p->mu);
    p->slot[slot].step = step;
    changed(p);
    pthread_mutex_unlock(&p->mu);
}

int pace_hold(pace *p, size_t slot, int (*interrupt)(void *), void *ctx)
{
    GL_ASSERT(slot < PACE_MAX_SLOTS);
    pthread_mutex_lock(&p->mu);
    pace_slot *s = &p->slot[slot];
    int rc = 0;
    uint64_t low = 0;
    /* wait at slack ahead, go again at slack / 2: a burst of steps per
     * wake-up rather than one step per step of the slowest */
    if (s->state == PACE_RUNNING && slowest_peer(p, slot, &low) && s->step >= low + p->slack) {
        s->state = PACE_WAITING;
        p->nwaiting++;
        p->waits++;
        changed(p);
        for (;;) {
            if (interrupt && interrupt(ctx)) {
                rc = 1;
                break;
            }
            if (!slowest_peer(p, slot, &low) || s->step <= low + p->slack / 2)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
        }
        p->nwaiting--;
        s->state = PACE_RUNNING;
        changed(p);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void pace_wake(pace *p)
{
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int pace_state(pace *p, size_t slot)
{
    pthread_mutex_lock(&p->mu);
    int s = slot < PACE_MAX_SLOTS ? p->slot[slot].state : PACE_NONE;
    pthread_mutex_unlock(&p->mu);
    return s;
}

uint64_t pace_waits(pace *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->waits;
    pthread_mutex_unlock(&p->mu);
    return n;
}
