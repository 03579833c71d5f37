/* pool: worker threads parked on a condition variable between jobs (no
 * spinning, so an idle trainer costs no CPU). One job at a time; a job is a
 * range cut into blocks by pool_blocks alone (pool.h says why). Thread t,
 * the caller being 0, owns the t-th contiguous share of the blocks, so that
 * consecutive jobs over the same rows keep them on the same core, in its
 * cache (handing blocks out first come first served made 2-thread steps of
 * the tiny preset about 6% slower). A thread done with its share takes what is
 * left of the others', so one slowed by another process does not hold the
 * rest up. Neither choice changes a bit of the results.
 *
 * Width (pool_set_width, for the session's pacing, pace.c): a job is shared
 * by the first `width` threads only, read once per job; the others sleep on
 * their own condition variable and are not woken, so an arm whose extra
 * workers are lent to nobody costs nothing for them. */
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common.h"

/* One thread's share of the current job: the next of its blocks to run. Set
 * under lock before the job is published; afterwards only grows, by
 * fetch_add from its owner and from threads that have finished their own
 * share. The partners are those fetch_adds: each returns a different index,
 * so each block runs exactly once. Relaxed is enough: it only deals out
 * indices; the blocks' results are ordered before pool_run returns by
 * pending, under the lock. Padded so owners do not share a cache line. */
typedef struct {
    _Atomic size_t next;
    char pad[64 - sizeof(size_t)];
} pool_share;

struct pool {
    size_t threads;
    pthread_t *tids;
    pthread_mutex_t lock;
    pthread_cond_t done;
    pthread_cond_t *go;         /* [threads]: worker t waits on go[t] for a job */
    unsigned long generation;   /* bumped per job; workers wait for a new value */
    int parked;                 /* pool_park joined the workers (caller's thread only) */
    size_t pending;             /* workers not yet done with the current job */
    int quit;
    /* the current job: written under lock before generation is bumped, read
     * under lock by each worker when it sees the new generation */
    pool_fn fn;
    void *ctx;
    size_t n, blocks;
    size_t job_width;           /* threads 0..job_width-1 share the current job */
    pool_share *share;          /* [threads] */
    /* Relaxed both sides: the width the next job gets (pool_set_width, any
     * thread; pool_run, the caller's thread). It only decides how many
     * threads share a job, never what a block computes. */
    _Atomic size_t width;
};

typedef struct {
    pool *p;
    size_t worker;
    unsigned long seen;         /* the generation when it started: not a job to run */
} worker_arg;

size_t pool_blocks(size_t n, size_t grain)
{
    size_t blocks = n / (grain ? grain : 1);
    return blocks ? blocks : 1;
}

/* Share t of a job of `width` threads is blocks [share_begin(t),
 * share_begin(t + 1)). The width is passed, not read from the pool: workers
 * read the job's under the lock once, and the pool's may change after. */
static size_t share_begin(size_t blocks, size_t width, size_t t)
{
    return blocks * t / width;
}

/* Runs the blocks of worker's own share, then whatever is left of the
 * others', in worker order from the next one. */
static void take_blocks(pool *p, pool_fn fn, void *ctx, size_t n, size_t blocks, size_t worker,
                        size_t width)
{
    for (size_t k = 0; k < width; k++) {
        const size_t t = (worker + k) % width, end = share_begin(blocks, width, t + 1);
        for (;;) {
            size_t i = atomic_fetch_add_explicit(&p->share[t].next, 1, memory_order_relaxed);
            if (i >= end)
                break;
            fn(ctx, worker, n * i / blocks, n * (i + 1) / blocks);
        }
    }
}

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    pool *p = wa.p;
    unsigned long seen = wa.seen;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        /* a job this worker is not part of (narrower than it) is seen
         * and slept through */
        while (!p->quit && (p->generation == seen || wa.worker >= p->job_width)) {
            seen = p->generation;
            pthread_cond_wait(&p->go[wa.worker], &p->lock);
        }
        if (p->quit)
            break;
        seen = p->generation;
        pool_fn fn = p->fn;
        void *ctx = p->ctx;
        const size_t n = p->n, blocks = p->blocks, width = p->job_width;
        pthread_mutex_unlock(&p->lock);
        take_blocks(p, fn, ctx, n, blocks, wa.worker, width);
        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Starts workers 1..threads-1 (none may be running). 0, or -1 with the
 * workers started so far joined again. */
static int start_workers(pool *p)
{
    /* workers never take signals: the main thread owns them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (size_t i = 1; i < p->threads; i++) {
        worker_arg *wa = xmalloc(sizeof *wa);
        wa->p = p;
        wa->worker = i;
        wa->seen = p->generation;
        if (pthread_create(&p->tids[i], NULL, worker_main, wa) != 0) {
            free(wa);
            size_t started = p->threads;
            p->threads = i;
            pool_park(p);
            p->threads = started;
            rc = -1;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!rc)
        p->parked = 0;
    return rc;
}

pool *pool_create(size_t threads)
{
    pool *p = xcalloc(1, sizeof *p);
    p->threads = threads ? threads : 1;
    p->share = xcalloc(p->threads, sizeof *p->share);
    for (size_t t = 0; t < p->threads; t++)
        atomic_init(&p->share[t].next, 0);
    pthread_mutex_init(&p->lock, NULL);
    p->go = xcalloc(p->threads, sizeof *p->go);
    for (size_t t = 0; t < p->threads; t++)
        pthread_cond_init(&p->go[t], NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->width, p->threads);
    p->tids = xcalloc(p->threads, sizeof *p->tids);
    if (start_workers(p)) {
        p->threads = 1;   /* none running: destroy joins nothing */
        pool_destroy(p);
        return NULL;
    }
    return p;
}

void pool_park(pool *p)
{
    if (p->parked)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    for (size_t t = 1; t < p->threads; t++)
        pthread_cond_signal(&p->go[t]);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 1; i < p->threads; i++)
        pthread_join(p->tids[i], NULL);
    p->quit = 0;   /* no worker left to read it */
    p->parked = 1;
}

int pool_unpark(pool *p)
{
    return p->parked ? start_workers(p) : 0;
}

void pool_destroy(pool *p)
{
    if (!p)
        return;
    pool_park(p);
    for (size_t t = 0; t < p->threads; t++)
        pthread_cond_destroy(&p->go[t]);
    free(p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p->tids);
    free(p->share);
    free(p);
}

size_t pool_threads(const pool *p)
{
    return p->threads;
}

void pool_set_width(pool *p, size_t width)
{
    if (width < 1)
        width = 1;
    if (width > p->threads)
        width = p->threads;
    atomic_store_explicit(&p->width, width, memory_order_relaxed);   /* see pool.width */
}

size_t pool_width(const pool *p)
{
    return atomic_load_explicit(&p->width, memory_order_relaxed);
}

void pool_run(pool *p, pool_fn fn, void *ctx, size_t n, size_t grain)
{
    if (!n)
        return;
    const size_t blocks = pool_blocks(n, grain);
    const size_t width = pool_width(p);
    if (width == 1 || blocks == 1) {
        /* the same blocks, in order, on this thread */
        for (size_t i = 0; i < blocks; i++)
            fn(ctx, 0, n * i / blocks, n * (i + 1) / blocks);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->blocks = blocks;
    p->job_width = width;
    for (size_t t = 0; t < width; t++)
        atomic_store_explicit(&p->share[t].next, share_begin(blocks, width, t), memory_order_relaxed);
    p->pending = width - 1;
    p->generation++;
    for (size_t t = 1; t < width; t++)
        pthread_cond_signal(&p->go[t]);
    pthread_mutex_unlock(&p->lock);

    take_blocks(p, fn, ctx, n, blocks, 0, width);

    pthread_mutex_lock(&p->lock);
    while (p->pending)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
