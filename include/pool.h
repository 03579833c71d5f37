/* pool: a fixed set of worker threads that split a range [0, n) into
 * contiguous chunks, one per thread, the caller taking the first. All of a
 * trainer's parallelism goes through it so OpenBLAS itself runs
 * single-threaded and never competes with these threads for cores. */
#ifndef GATELAB_POOL_H
#define GATELAB_POOL_H

#include <stddef.h>

typedef struct pool pool;

/* fn(ctx, worker, begin, end): worker is 0..threads-1, unique per chunk. */
typedef void (*pool_fn)(void *ctx, size_t worker, size_t begin, size_t end);

/* threads >= 1; with 1 no thread is started. Returns NULL if pthread fails. */
pool *pool_create(size_t threads);
void pool_destroy(pool *p);
size_t pool_threads(const pool *p);
/* Runs fn over [0, n) and returns when every chunk is done. */
void pool_run(pool *p, pool_fn fn, void *ctx, size_t n);

#endif
