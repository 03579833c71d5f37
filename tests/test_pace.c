/* test_pace: the pacing of a session's arms (pace.h) with fake arms —
 * threads whose "steps" cost different amounts of work: their counters stay
 * within the slack of each other while a fast arm waits, a paused or ended
 * arm releases the others, a command (the interrupt) ends a wait, nobody
 * deadlocks when every arm would wait, and the cores of a waiting arm go to
 * the slowest running one (pool widths). Also that a pool computes the same
 * bits at every width. Every wait is bounded by a generous deadline so a
 * broken pace fails the test instead of hanging it; nothing asserts on a
 * duration. */
#include "pace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "common.h"
#include "pool.h"

#define DEADLINE_S 120.0

static void nap(void)
{
    nanosleep(&(struct timespec){0, 1000000}, NULL);
}

/* ---- fake arms ---------------------------------------------------------- */

typedef struct {
    pace *p;
    size_t slot, narms;
    uint64_t steps, work;          /* steps to run; spin iterations per step */
    _Atomic uint64_t *counters;    /* [narms]: each arm's step, stored before pace_step */
    atomic_int *done;              /* [narms] */
    uint64_t slack;
    atomic_int worst;              /* the largest lead this arm saw over a peer */
    volatile double sink;          /* keeps the spin loop (each arm its own) */
} fake_arm;

static void *fake_main(void *arg)
{
    fake_arm *f = arg;
    for (uint64_t s = 0; s < f->steps; s++) {
        pace_hold(f->p, f->slot, NULL, NULL);
        double x = 0.0;
        for (uint64_t i = 0; i < f->work; i++)
            x += (double)i * 1e-9;
        f->sink = x;
        atomic_store(&f->counters[f->slot], s + 1);
        /* a peer's counter is stored before it tells pace, so it is at
         * least what pace knew when it let this step start */
        for (size_t j = 0; j < f->narms; j++) {
            if (j == f->slot || atomic_load(&f->done[j]))
                continue;
            int64_t lead = (int64_t)(s + 1) - (int64_t)atomic_load(&f->counters[j]);
            if (lead > atomic_load(&f->worst))
                atomic_store(&f->worst, (int)lead);
        }
        pace_step(f->p, f->slot, s + 1);
    }
    pace_leave(f->p, f->slot);
    atomic_store(&f->done[f->slot], 1);
    return NULL;
}

/* Three arms on 2 cores, one 4x and one 2x the cost of the fastest. */
static void test_arms_stay_together(void)
{
    enum { N = 3 };
    const uint64_t slack = 6, steps = 300;
    pace *p = pace_create(2, slack);
    _Atomic uint64_t counters[N];
    atomic_int done[N];
    fake_arm f[N];
    pthread_t th[N];
    const uint64_t work[N] = {80000, 40000, 20000};
    for (size_t i = 0; i < N; i++) {
        atomic_init(&counters[i], 0);
        atomic_init(&done[i], 0);
        pace_join(p, i, 0, NULL);
    }
    for (size_t i = 0; i < N; i++) {
        f[i] = (fake_arm){.p = p, .slot = i, .narms = N, .steps = steps, .work = work[i],
                          .counters = counters, .done = done, .slack = slack};
        atomic_init(&f[i].worst, 0);
        pthread_create(&th[i], NULL, fake_main, &f[i]);
    }
    double t0 = gl_now();
    int all = 0;
    while (!all && gl_now() - t0 < DEADLINE_S) {
        all = 1;
        for (size_t i = 0; i < N; i++)
            all &= atomic_load(&done[i]);
        if (!all)
            nap();
    }
    CHECK(all, "three arms of different costs all finish (no deadlock)");
    if (!all)
        exit(check_finish());   /* threads stuck: nothing more to learn */
    int worst = 0;
    for (size_t i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (atomic_load(&f[i].worst) > worst)
            worst = atomic_load(&f[i].worst);
    }
    CHECK(worst <= (int)slack, "no arm got more than the slack ahead of another (worst lead %d, slack %llu)",
          worst, (unsigned long long)slack);
    CHECK(pace_waits(p) > 0, "the fast arms waited (%llu waits)",
          (unsigned long long)pace_waits(p));
    pace_destroy(p);
}

/* Every arm the same cost and slack 1: each would wait for the others at
 * every step; the slowest never does, so they all finish. */
static void test_all_wait_no_deadlock(void)
{
    enum { N = 4 };
    const uint64_t steps = 2000;
    pace *p = pace_create(2, 1);
    _Atomic uint64_t counters[N];
    atomic_int done[N];
    fake_arm f[N];
    pthread_t th[N];
    for (size_t i = 0; i < N; i++) {
        atomic_init(&counters[i], 0);
        atomic_init(&done[i], 0);
        pace_join(p, i, 0, NULL);
    }
    for (size_t i = 0; i < N; i++) {
        f[i] = (fake_arm){.p = p, .slot = i, .narms = N, .steps = steps, .work = 100,
                          .counters = counters, .done = done, .slack = 1};
        atomic_init(&f[i].worst, 0);
        pthread_create(&th[i], NULL, fake_main, &f[i]);
    }
    double t0 = gl_now();
    int all = 0;
    while (!all && gl_now() - t0 < DEADLINE_S) {
        all = 1;
        for (size_t i = 0; i < N; i++)
            all &= atomic_load(&done[i]);
        if (!all)
            nap();
    }
    CHECK(all, "four equal arms at slack 1 all finish %llu steps", (unsigned long long)steps);
    if (!all)
        exit(check_finish());
    int worst = 0;
    for (size_t i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (atomic_load(&f[i].worst) > worst)
            worst = atomic_load(&f[i].worst);
    }
    CHECK(worst <= 1, "and stayed within one step of each other (worst lead %d)", worst);
    pace_destroy(p);
}

/* ---- one arm held, released by what its peer does ----------------------- */

typedef struct {
    pace *p;
    size_t slot;
    atomic_int interrupt;
    atomic_int returned;           /* 0 running, 1 + pace_hold's result when back */
} holder;

static int holder_interrupt(void *ctx)
{
    return atomic_load(&((holder *)ctx)->interrupt);
}

static void *holder_main(void *arg)
{
    holder *h = arg;
    int rc = pace_hold(h->p, h->slot, holder_interrupt, h);
    atomic_store(&h->returned, 1 + rc);
    return NULL;
}

static int wait_for(atomic_int *v, double deadline)
{
    double t0 = gl_now();
    while (!atomic_load(v) && gl_now() - t0 < deadline)
        nap();
    return atomic_load(v);
}

static int wait_state(pace *p, size_t slot, int state)
{
    double t0 = gl_now();
    while (pace_state(p, slot) != state && gl_now() - t0 < DEADLINE_S)
        nap();
    return pace_state(p, slot) == state;
}

/* Slot 1 is 10 steps ahead of slot 0 at slack 4: it waits. how: 0 slot 0
 * catches up, 1 slot 0 pauses, 2 slot 0 leaves, 3 a command interrupts. */
static void held_then_released(int how)
{
    static const char *what[] = {"the slow arm catches up", "the slow arm pauses",
                                 "the slow arm ends", "a command arrives"};
    pool *pa = pool_create(2), *pb = pool_create(2);
    pace *p = pace_create(2, 4);
    pace_join(p, 0, 0, pa);
    pace_join(p, 1, 10, pb);
    CHECK(pool_width(pa) == 1 && pool_width(pb) == 1,
          "two running arms on 2 cores: one thread each (%zu, %zu)", pool_width(pa),
          pool_width(pb));
    holder h = {.p = p, .slot = 1};
    atomic_init(&h.interrupt, 0);
    atomic_init(&h.returned, 0);
    pthread_t th;
    pthread_create(&th, NULL, holder_main, &h);
    CHECK(wait_state(p, 1, PACE_WAITING), "[%s] the arm 10 steps ahead waits", what[how]);
    CHECK(pool_width(pa) == 2 && pool_width(pb) == 1,
          "[%s] while it waits, its core goes to the slow arm (widths %zu, %zu)", what[how],
          pool_width(pa), pool_width(pb));
    pace_step(p, 0, 3);   /* still 7 behind: no release */
    nap();
    CHECK(!atomic_load(&h.returned), "[%s] still waiting while 7 steps ahead", what[how]);
    switch (how) {
    case 0: pace_step(p, 0, 8); break;                  /* within slack / 2 */
    case 1: pace_idle(p, 0, 1, 3); break;
    case 2: pace_leave(p, 0); break;
    case 3: atomic_store(&h.interrupt, 1); pace_wake(p); break;
    }
    int rc = wait_for(&h.returned, DEADLINE_S);
    CHECK(rc == (how == 3 ? 2 : 1), "[%s] the waiting arm goes on (%s)", what[how],
          rc == 2 ? "interrupted" : rc == 1 ? "may step" : "still held");
    if (!rc)
        exit(check_finish());
    pthread_join(th, NULL);
    CHECK(pace_state(p, 1) == PACE_RUNNING, "[%s] and runs again", what[how]);
    if (how == 0)
        CHECK(pool_width(pa) == 1 && pool_width(pb) == 1, "[%s] one thread each again",
              what[how]);
    if (how == 1 || how == 2)
        CHECK(pool_width(pb) == 2, "[%s] the arm left alone gets both cores (%zu)", what[how],
              pool_width(pb));
    if (how == 1) {
        /* resumed 7 behind: the other waits again while it catches up */
        pace_idle(p, 0, 0, 3);
        atomic_store(&h.returned, 0);
        pthread_create(&th, NULL, holder_main, &h);
        CHECK(wait_state(p, 1, PACE_WAITING), "[%s] resumed behind, it holds the other again",
              what[how]);
        pace_step(p, 0, 10);
        CHECK(wait_for(&h.returned, DEADLINE_S) == 1, "[%s] until it caught up", what[how]);
        pthread_join(th, NULL);
    }
    pace_destroy(p);
    pool_destroy(pa);
    pool_destroy(pb);
}

static void test_release(void)
{
    for (int how = 0; how < 4; how++)
        held_then_released(how);
}

/* No peer, or only paused ones: never waits, whatever its lead. */
static void test_alone_never_waits(void)
{
    pace *p = pace_create(2, 1);
    pace_join(p, 0, 1000, NULL);
    CHECK(pace_hold(p, 0, NULL, NULL) == 0 && pace_waits(p) == 0, "an arm alone never waits");
    pace_join(p, 1, 0, NULL);
    pace_idle(p, 1, 1, 0);
    CHECK(pace_hold(p, 0, NULL, NULL) == 0 && pace_waits(p) == 0,
          "an arm whose peer is paused never waits");
    pace_destroy(p);
}

/* Cores to the slowest first: 3 arms, 4 cores, pools of 4. */
static void test_share_cores(void)
{
    pool *pl[3];
    pace *p = pace_create(4, 10);
    for (size_t i = 0; i < 3; i++) {
        pl[i] = pool_create(4);
        pace_join(p, i, (uint64_t)(5 - i), pl[i]);   /* steps 5, 4, 3: slot 2 slowest */
    }
    CHECK(pool_width(pl[2]) == 2 && pool_width(pl[1]) == 1 && pool_width(pl[0]) == 1,
          "3 arms on 4 cores: the spare core to the slowest (%zu %zu %zu)", pool_width(pl[0]),
          pool_width(pl[1]), pool_width(pl[2]));
    pace_step(p, 2, 9);   /* now slot 1 is slowest */
    CHECK(pool_width(pl[1]) == 2 && pool_width(pl[2]) == 1,
          "it follows the slowest as steps change (%zu %zu %zu)", pool_width(pl[0]),
          pool_width(pl[1]), pool_width(pl[2]));
    pace_idle(p, 0, 1, 5);
    pace_leave(p, 1);
    CHECK(pool_width(pl[2]) == 4 && pool_width(pl[0]) == 1,
          "one running arm gets every core (%zu), a paused one keeps one (%zu)",
          pool_width(pl[2]), pool_width(pl[0]));
    pace_destroy(p);
    for (size_t i = 0; i < 3; i++)
        pool_destroy(pl[i]);
}

/* ---- a pool's width never changes a bit --------------------------------- */

typedef struct {
    float *out;
} sum_ctx;

static void sum_block(void *ctx, size_t worker, size_t begin, size_t end)
{
    (void)worker;
    sum_ctx *c = ctx;
    float s = 0.0f;
    for (size_t i = begin; i < end; i++)
        s += 1.0f / (float)(i + 1);
    for (size_t i = begin; i < end; i++)
        c->out[i] = s * (float)i;
}

static void test_width_bits(void)
{
    enum { N = 10007 };
    float *ref = xcalloc(N, sizeof *ref), *got = xcalloc(N, sizeof *got);
    pool *one = pool_create(1), *three = pool_create(3);
    pool_run(one, sum_block, &(sum_ctx){ref}, N, 97);
    int same = 1;
    for (size_t w = 1; w <= 4; w++) {   /* 4 is clamped to 3 */
        for (int rep = 0; rep < 50; rep++) {
            memset(got, 0, N * sizeof *got);
            pool_set_width(three, w);
            pool_run(three, sum_block, &(sum_ctx){got}, N, 97);
            same &= memcmp(ref, got, N * sizeof *got) == 0;
        }
    }
    CHECK(same, "pool_run gives the same bits at widths 1, 2, 3 as a 1-thread pool");
    pool_set_width(three, 9);
    CHECK(pool_width(three) == 3, "a width beyond the pool is clamped (%zu)", pool_width(three));
    pool_set_width(three, 0);
    CHECK(pool_width(three) == 1, "a width of 0 is clamped to 1 (%zu)", pool_width(three));
    pool_destroy(one);
    pool_destroy(three);
    free(ref);
    free(got);
}

int main(void)
{
    CHECK(pace_slack(50) == 25 && pace_slack(1) == 1 && pace_slack(0) == 50,
          "slack: half the evaluation interval, at least 1, 50 without one");
    test_width_bits();
    test_share_cores();
    test_alone_never_waits();
    test_release();
    test_arms_stay_together();
    test_all_wait_no_deadlock();
    return check_finish();
}
