/* pool: worker threads parked on a condition variable between jobs (no
 * spinning, so an idle trainer costs no CPU). One job at a time. */
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "common.h"

struct pool {
    size_t threads;
    pthread_t *tids;
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    unsigned long generation;   /* bumped per job; workers wait for a new value */
    size_t pending;             /* chunks not yet finished by workers */
    int quit;
    pool_fn fn;
    void *ctx;
    size_t n;
};

typedef struct {
    pool *p;
    size_t worker;
} worker_arg;

static void chunk(size_t n, size_t parts, size_t i, size_t *begin, size_t *end)
{
    *begin = n * i / parts;
    *end = n * (i + 1) / parts;
}

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    pool *p = wa.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->start, &p->lock);
        if (p->quit)
            break;
        seen = p->generation;
        pool_fn fn = p->fn;
        void *ctx = p->ctx;
        size_t begin, end;
        chunk(p->n, p->threads, wa.worker, &begin, &end);
        pthread_mutex_unlock(&p->lock);
        if (begin < end)
            fn(ctx, wa.worker, begin, end);
        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

pool *pool_create(size_t threads)
{
    pool *p = xcalloc(1, sizeof *p);
    p->threads = threads ? threads : 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->tids = xcalloc(p->threads, sizeof *p->tids);
    /* workers never take signals: the main thread owns them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (size_t i = 1; i < p->threads; i++) {
        worker_arg *wa = xmalloc(sizeof *wa);
        wa->p = p;
        wa->worker = i;
        if (pthread_create(&p->tids[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->threads = i;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            pool_destroy(p);
            return NULL;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

void pool_destroy(pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 1; i < p->threads; i++)
        pthread_join(p->tids[i], NULL);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p->tids);
    free(p);
}

size_t pool_threads(const pool *p)
{
    return p->threads;
}

void pool_run(pool *p, pool_fn fn, void *ctx, size_t n)
{
    if (p->threads == 1 || n < 2) {
        if (n)
            fn(ctx, 0, 0, n);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->pending = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);

    size_t begin, end;
    chunk(n, p->threads, 0, &begin, &end);
    if (begin < end)
        fn(ctx, 0, begin, end);

    pthread_mutex_lock(&p->lock);
    while (p->pending)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
