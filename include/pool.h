/* pool: a fixed set of worker threads that run a range [0, n) cut into
 * blocks. All of a trainer's parallelism goes through it so OpenBLAS itself
 * runs single-threaded and never competes with these threads for cores.
 *
 * Guarantee: the same bits for any thread count. pool_run cuts [0, n) into
 * blocks that depend only on n and the caller's grain (pool_blocks), never on
 * the number of threads; threads only decide who runs which block. So each
 * block makes exactly the same calls with exactly the same shapes whether one
 * thread runs all of them or eight share them. That matters because OpenBLAS
 * rounds a row of an sgemm differently depending on the call's M, N (its
 * kernels and edge paths change with the shape): a per-thread chunking made
 * a model's loss differ in the 9th digit between --threads 1 and 2. The
 * caller's half of the contract: a block writes only its own outputs, and
 * anything summed across blocks is written per item (or per block) and added
 * up afterwards in index order, never accumulated per worker. `worker` is
 * for scratch memory only, which must not carry values from one block to
 * the next. */
#ifndef GATELAB_POOL_H
#define GATELAB_POOL_H

#include <stddef.h>

typedef struct pool pool;

/* fn(ctx, worker, begin, end) runs one block [begin, end). worker is
 * 0..threads-1, the thread running it: no two blocks run at once with the
 * same worker. Which worker gets which block varies from run to run. */
typedef void (*pool_fn)(void *ctx, size_t worker, size_t begin, size_t end);

/* threads >= 1; with 1 no thread is started. Returns NULL if pthread fails. */
pool *pool_create(size_t threads);
void pool_destroy(pool *p);
size_t pool_threads(const pool *p);
/* Detach (live_detach.c): park joins the worker threads, so that the process
 * can fork with its calling thread alone; unpark starts them again (in the
 * child), -1 when pthread fails (the pool is then still parked). Both do
 * nothing when already so, destroy takes a parked pool, and neither changes
 * a bit of what pool_run computes; no pool_run may run while parked. */
void pool_park(pool *p);
int pool_unpark(pool *p);
/* How many of the pool's threads (the caller's included) share the jobs
 * that start from now on: 1..pool_threads, clamped; pool_threads at
 * creation. Any thread may set it at any time (pace.c lends an arm the
 * cores of arms that wait); a job already running keeps its width. Like the
 * thread count, it never changes a bit of what pool_run computes. */
void pool_set_width(pool *p, size_t width);
size_t pool_width(const pool *p);

/* The number of blocks [0, n) is cut into: max(1, n / grain), so every block
 * holds at least grain items (n >= grain) and at most 2 * grain - 1; block i
 * is [n * i / blocks, n * (i + 1) / blocks). grain >= 1 is the caller's
 * estimate of the smallest block worth running on its own (one GEMM row
 * block, one attention pair, ...). */
size_t pool_blocks(size_t n, size_t grain);
/* Runs fn over every block of [0, n) and returns when all are done. Each
 * thread, the caller's included, runs its own contiguous share of the blocks
 * and then helps with what is left of the others'. */
void pool_run(pool *p, pool_fn fn, void *ctx, size_t n, size_t grain);

#endif
