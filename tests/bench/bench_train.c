/* bench_train: the figures behind the README's performance section. Not a
 * test: one run prints plain tables and exits 0 (1 only when a measurement
 * could not run at all).
 *
 *  1. machine: the linked OpenBLAS build (openblas_get_config) and the CPUs
 *     this process may run on (what `nproc` prints).
 *  2. cblas_sgemm GFLOP/s: 2048^3 with 1 and 2 OpenBLAS threads, then every
 *     GEMM of the tiny preset (B*T = 2048 rows) in the layout the model calls
 *     it (layers.c, attention.c), single-threaded. Each figure is one untimed
 *     call, then as many calls as fit in at least MIN_GEMM_SECONDS.
 *  3. training tokens/s through the trainer API (embedded generator, no
 *     evaluation, no checkpoints) for tiny and small x dense, soft, topk x a
 *     model pool of 1 and 2 threads: warm-up steps, then timed steps;
 *     tokens/s = steps*B*T / seconds. Heap allocations made during the timed
 *     steps are counted by wrapping malloc/calloc/realloc (below).
 *  2b. the FMA peak: a register-only loop of independent FMAs (AVX-512 and
 *     AVX2 where the CPU has them), 1 and 2 threads: the physical ceiling.
 *  4. FLOPs: model_flops_per_token is the forward; a training step costs
 *     3x that (forward + backward). Achieved GFLOP/s = 3*fwd*tokens/s, shown
 *     over the 2048^3 sgemm figure and over the FMA peak for the same thread
 *     count.
 *  5. peak RSS (ru_maxrss from wait4) of a forked child that builds a
 *     trainer and runs a few steps on a pool of 1 thread. These children run
 *     first, while this process is still small, and an empty child gives the
 *     RSS every child inherits; the table is printed after the FLOPs.
 *  6. PyTorch: the same model trained by tests/bench/torch_ref.py, config by
 *     config, alternating with gatelab; the ratio per config (skipped where
 *     python3-torch is missing).
 *
 * OpenBLAS runs single-threaded throughout (the model's pool provides the
 * parallelism) except for the one 2-thread 2048^3 measurement.
 * Run: make bench (or build $(BUILD)/release/bench/bench_train and run it).
 *
 * `bench_train --one PRESET MODE THREADS STEPS` measures only section 3's
 * tokens/s of one configuration over STEPS timed steps (after the usual
 * warm-up) and prints one line. It exists for A/B comparisons of two builds:
 * run the two binaries alternately, several times each, and compare the
 * medians, since other processes on the machine move any single figure by
 * more than the change being measured.
 * `bench_train --fma` prints only section 2b, `--peer` only section 6,
 * `--rss` only section 5. */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "gate.h"
#include "live.h"
#include "model.h"
#include "optim.h"
#include "trainer.h"
#include "vec.h"

#define MIN_GEMM_SECONDS 0.3
#define MIN_GEMM_REPS 3
#define BIG_GEMM 2048
#define MIB (1024.0 * 1024.0)

/* ---- allocation counter ----
 * Every malloc/calloc/realloc of the process (OpenBLAS and libc included)
 * goes through these wrappers around glibc's own entry points, so the count
 * taken around the timed steps shows whether a training step allocates.
 * aligned_alloc/posix_memalign are not wrapped. Sanitizer builds interpose
 * malloc themselves, so there the counter is off and the column reads "-". */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BENCH_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BENCH_COUNT_ALLOCS 0
#endif
#endif
#ifndef BENCH_COUNT_ALLOCS
#define BENCH_COUNT_ALLOCS 1
#endif

#if BENCH_COUNT_ALLOCS
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t n);

/* Only grows; bumped by any thread, read by main at step boundaries (the
 * pool's join orders the workers' increments before the read). */
static _Atomic size_t alloc_calls;

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t count, size_t size)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    return __libc_calloc(count, size);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

static size_t alloc_count(void)
{
    return atomic_load_explicit(&alloc_calls, memory_order_relaxed);
}
#else
static size_t alloc_count(void)
{
    return 0;
}
#endif

/* ---- 1. machine ---- */

static size_t usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return (size_t)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* "model name" from /proc/cpuinfo, or "?" */
static void cpu_model(char *out, size_t size)
{
    snprintf(out, size, "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            colon += strspn(colon + 1, " \t") + 1;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(out, size, "%s", colon);
            break;
        }
    }
    fclose(f);
}

/* First line of a /proc file without its newline, or "?" (no /proc, no PSI). */
static void proc_line(const char *path, char *out, size_t size)
{
    snprintf(out, size, "?");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)size, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* Other processes on these CPUs skew every figure below: the load average
 * and the CPU pressure (time some task waited for a CPU) say how busy the
 * machine was. */
static void load_line(char *out, size_t size)
{
    char load[128], psi[160];
    proc_line("/proc/loadavg", load, sizeof load);
    proc_line("/proc/pressure/cpu", psi, sizeof psi);
    snprintf(out, size, "loadavg %s | cpu pressure %s", load, psi);
}

static void print_machine(const char *load_at_start)
{
    char cpu[128];
    cpu_model(cpu, sizeof cpu);
    printf("== 1. machine\n");
    printf("openblas  %s\n", openblas_get_config());
    printf("nproc     %zu\n", usable_cpus());
    printf("cpu       %s\n", cpu);
    printf("vec path  %s (element-wise kernels; GATELAB_VEC=scalar|avx2|avx512 forces one)\n",
           vec_path_name(vec_active_path()));
    printf("start     %s\n\n", load_at_start);
}

/* User + system CPU seconds of every thread of this process. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* ---- 2. cblas_sgemm ---- */

/* One call as the model makes it, row-major. lda/ldb 0 mean packed. */
typedef struct {
    const char *name;
    int ta, tb;           /* 1: that operand is transposed */
    size_t M, N, K;
    size_t lda, ldb;
    float beta;
} gemm_shape;

typedef struct {
    double gflops, ms_per_call, cpu_percent;
    size_t reps;
} gemm_rate;

static void fill(float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
    }
}

static void gemm_call(const gemm_shape *s, const float *a, size_t lda, const float *b,
                      size_t ldb, float *c)
{
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                (int)s->M, (int)s->N, (int)s->K, 1.0f, a, (int)lda, b, (int)ldb, s->beta, c,
                (int)s->N);
}

static gemm_rate gemm_measure(const gemm_shape *s)
{
    const size_t a_rows = s->ta ? s->K : s->M, a_cols = s->ta ? s->M : s->K;
    const size_t b_rows = s->tb ? s->N : s->K, b_cols = s->tb ? s->K : s->N;
    const size_t lda = s->lda ? s->lda : a_cols, ldb = s->ldb ? s->ldb : b_cols;
    GL_ASSERT(lda >= a_cols && ldb >= b_cols);
    float *a = xmalloc(a_rows * lda * sizeof(float));
    float *b = xmalloc(b_rows * ldb * sizeof(float));
    float *c = xcalloc(s->M * s->N, sizeof(float));
    fill(a, a_rows * lda, 1);
    fill(b, b_rows * ldb, 2);
    gemm_call(s, a, lda, b, ldb, c);  /* untimed: first touch, OpenBLAS buffers */
    size_t reps = 0;
    const double cpu0 = cpu_seconds();
    double start = gl_now(), elapsed;
    do {
        gemm_call(s, a, lda, b, ldb, c);
        reps++;
        elapsed = gl_now() - start;
    } while (elapsed < MIN_GEMM_SECONDS || reps < MIN_GEMM_REPS);
    const double cpu = cpu_seconds() - cpu0;
    free(a);
    free(b);
    free(c);
    double flops = 2.0 * (double)s->M * (double)s->N * (double)s->K * (double)reps;
    return (gemm_rate){.gflops = flops / elapsed * 1e-9,
                       .ms_per_call = elapsed / (double)reps * 1e3,
                       .cpu_percent = 100.0 * cpu / elapsed, .reps = reps};
}

static void print_gemm_header(void)
{
    printf("%-32s %-2s %6s %6s %6s %7s %7s %10s %5s %8s\n", "gemm", "op", "M", "N", "K",
           "threads", "reps", "ms/call", "cpu%", "GFLOP/s");
}

static void print_gemm_row(const gemm_shape *s, int threads, gemm_rate r)
{
    printf("%-32s %c%c %6zu %6zu %6zu %7d %7zu %10.4f %5.0f %8.2f\n", s->name,
           s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->M, s->N, s->K, threads, r.reps, r.ms_per_call,
           r.cpu_percent, r.gflops);
}

/* Fills peak[1] and peak[2]: 2048^3 GFLOP/s at that many OpenBLAS threads. */
static void bench_gemm(double peak[3])
{
    model_config c;
    GL_ASSERT(model_preset("tiny", &c) == 0);
    const size_t N = c.batch * c.T, d = c.d, F = c.mlp, V = c.V, Hr = c.heads * c.r;
    const size_t T = c.T, hd = c.d / c.heads;

    printf("== 2. cblas_sgemm, measured in this run (>= %.1f s and >= %d calls each)\n",
           MIN_GEMM_SECONDS, MIN_GEMM_REPS);
    print_gemm_header();
    const gemm_shape big = {"square 2048^3", 0, 0, BIG_GEMM, BIG_GEMM, BIG_GEMM, 0, 0, 0.0f};
    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        gemm_rate r = gemm_measure(&big);
        peak[threads] = r.gflops;
        print_gemm_row(&big, threads, r);
    }
    openblas_set_num_threads(1);

    /* linear layers: forward out = inp W^T (NT), input gradient dinp += dout W
     * (NN), weight gradient dW += dout^T inp (TN); W is [OC, C] */
    struct {
        const char *name;
        size_t C, OC;
    } lin[] = {
        {"qkv", d, 3 * d}, {"attn proj", d, d}, {"fc", d, F},
        {"fc proj", F, d}, {"gate q/k", d, Hr}, {"lm head (tied wte)", d, V},
    };
    char names[3][64];
    for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
        const size_t C = lin[i].C, OC = lin[i].OC;
        snprintf(names[0], sizeof names[0], "%s fwd", lin[i].name);
        snprintf(names[1], sizeof names[1], "%s bwd dinp", lin[i].name);
        snprintf(names[2], sizeof names[2], "%s bwd dweight", lin[i].name);
        const gemm_shape shapes[3] = {
            {names[0], 0, 1, N, OC, C, 0, 0, 1.0f},
            {names[1], 0, 0, N, C, OC, 0, 0, 1.0f},
            {names[2], 1, 0, OC, C, N, 0, 0, 1.0f},
        };
        for (size_t k = 0; k < 3; k++)
            print_gemm_row(&shapes[k], 1, gemm_measure(&shapes[k]));
    }

    /* one (b, h) of attention: q, k, v are hd-wide column slices of the
     * [T, 3d] qkv rows, gate factors r-wide slices of [T, H*r] */
    const gemm_shape attn[] = {
        {"attn QK^T per (b,h)", 0, 1, T, T, hd, 3 * d, 3 * d, 0.0f},
        {"attn PV per (b,h)", 0, 0, T, hd, T, 0, 3 * d, 0.0f},
        {"gate scores gq gk^T per (b,h)", 0, 1, T, T, c.r, Hr, Hr, 0.0f},
        {"attn bwd dP = dY V^T", 0, 1, T, T, hd, 0, 3 * d, 0.0f},
        {"attn bwd dV = P^T dY", 1, 0, T, hd, T, 0, 0, 1.0f},
    };
    for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++)
        print_gemm_row(&attn[i], 1, gemm_measure(&attn[i]));
    printf("(tiny preset: rows = B*T = %zu, d = %zu, mlp = %zu, V = %zu, H*r = %zu, T = %zu, "
           "head dim = %zu;\n cpu%% = CPU time of this process / wall time: under 100 x threads "
           "means other processes held the CPUs)\n\n", N, d, F, V, Hr, T, hd);
}

/* ---- 2b. the FMA units' own ceiling ----
 * A loop of independent fused multiply-adds on registers (no memory
 * traffic): what the cores can do at most, the physical ceiling every
 * training figure sits under. Twelve accumulators cover the FMA latency on
 * two ports. The inner loop must be unrolled: left as a loop over an array,
 * GCC -O2 keeps the accumulators in memory and every FMA waits on a load
 * and a store (a "ceiling" a third of the real one, under the sgemm figure).
 * The AVX-512 and AVX2 variants are compiled with target attributes and
 * chosen by what this CPU reports, so the build flags stay as they are. */

#define FMA_CHAINS 12
#define FMA_ITERS 20000000UL

__attribute__((target("avx512f"))) static float fma_loop_avx512(size_t iters)
{
    __m512 acc[FMA_CHAINS];
    for (int j = 0; j < FMA_CHAINS; j++)
        acc[j] = _mm512_set1_ps(1e-3f * (float)j);
    const __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
    for (size_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < FMA_CHAINS; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    }
    float out = 0.0f, lanes[16];
    for (int j = 0; j < FMA_CHAINS; j++) {
        _mm512_storeu_ps(lanes, acc[j]);
        out += lanes[0] + lanes[15];
    }
    return out;
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(size_t iters)
{
    __m256 acc[FMA_CHAINS];
    for (int j = 0; j < FMA_CHAINS; j++)
        acc[j] = _mm256_set1_ps(1e-3f * (float)j);
    const __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
    for (size_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < FMA_CHAINS; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    }
    float out = 0.0f, lanes[8];
    for (int j = 0; j < FMA_CHAINS; j++) {
        _mm256_storeu_ps(lanes, acc[j]);
        out += lanes[0] + lanes[7];
    }
    return out;
}

typedef struct {
    int wide;        /* 16 lanes (AVX-512) or 8 (AVX2) */
    size_t iters;
    float sink;      /* keeps the loop's result alive */
} fma_job;

static void *fma_thread(void *arg)
{
    fma_job *j = arg;
    j->sink = j->wide == 16 ? fma_loop_avx512(j->iters) : fma_loop_avx2(j->iters);
    return NULL;
}

/* GFLOP/s of `threads` threads running the loop at once, 0 when it cannot run. */
static double fma_measure(int wide, int threads)
{
    fma_job jobs[2];
    pthread_t tid[2];
    GL_ASSERT(threads >= 1 && threads <= 2);
    for (int t = 0; t < threads; t++)
        jobs[t] = (fma_job){wide, FMA_ITERS, 0.0f};
    fma_thread(&(fma_job){wide, FMA_ITERS / 20, 0.0f});   /* untimed: clocks up */
    const double start = gl_now();
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, fma_thread, &jobs[t]))
            return 0.0;
    fma_thread(&jobs[0]);
    for (int t = 1; t < threads; t++)
        pthread_join(tid[t], NULL);
    const double elapsed = gl_now() - start;
    if (!isfinite(jobs[0].sink))   /* never: the loop converges; keeps the sink read */
        printf("(fma sink %g)\n", (double)jobs[0].sink);
    return 2.0 * wide * FMA_CHAINS * (double)FMA_ITERS * threads / elapsed * 1e-9;
}

/* Fills fma[1], fma[2] with the widest loop this CPU runs; prints the table. */
static void bench_fma(double fma[3])
{
    __builtin_cpu_init();
    const int has512 = __builtin_cpu_supports("avx512f");
    const int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    printf("== 2b. FMA peak: %d independent fp32 FMA chains on registers, %lu iterations a thread\n",
           FMA_CHAINS, FMA_ITERS);
    printf("%-8s %7s %8s\n", "isa", "threads", "GFLOP/s");
    fma[1] = fma[2] = 0.0;
    for (int pass = 0; pass < 2; pass++) {
        const int wide = pass == 0 ? 16 : 8;
        if (!(pass == 0 ? has512 : has2)) {
            printf("%-8s (not supported by this CPU)\n", pass == 0 ? "avx512" : "avx2");
            continue;
        }
        for (int threads = 1; threads <= 2; threads++) {
            const double g = fma_measure(wide, threads);
            printf("%-8s %7d %8.1f\n", pass == 0 ? "avx512" : "avx2", threads, g);
            if (g > fma[threads])
                fma[threads] = g;
        }
    }
    printf("(2 FLOPs per lane per FMA; the widest ISA's figure is the ceiling used below)\n\n");
}

/* ---- 3./4. training throughput and FLOPs ---- */

static const char *const PRESETS[] = {"tiny", "small"};
/* arms as --arms spells them: dense+moe is the dense FFN replaced by 4 experts, top-1 */
static const char *const MODES[] = {"dense", "soft", "topk", "dense+moe"};
#define NPRESETS (sizeof PRESETS / sizeof PRESETS[0])
#define NMODES (sizeof MODES / sizeof MODES[0])
#define MAX_THREADS 2

typedef struct {
    size_t warmup, timed;
} step_plan;

static step_plan plan_of(const char *preset)
{
    return strcmp(preset, "tiny") == 0 ? (step_plan){3, 10} : (step_plan){1, 3};
}

static void train_config_of(train_config *tc, const char *preset, const char *mode,
                            size_t threads, size_t steps)
{
    memset(tc, 0, sizeof *tc);
    GL_ASSERT(model_preset(preset, &tc->model) == 0);
    live_ffn ffn;
    GL_ASSERT(args_parse_arm(mode, &tc->model.mode, &ffn) == 0);
    tc->model.experts = ffn == LIVE_FFN_DENSE ? 0 : 4;
    tc->model.router_frozen = ffn == LIVE_FFN_MOE_RANDOM;
    optim_default_config(&tc->optim);
    tc->steps = steps;
    tc->eval_every = 0;
    tc->data_path = NULL;
    tc->out_dir = NULL;
    tc->threads = threads;
}

typedef struct {
    int ok, diverged;
    size_t steps, tokens, allocs;
    double seconds, cpu_seconds, tokens_per_s, loss;
    double best_step;   /* the fastest timed step, seconds: the least disturbed by others */
} train_result;

/* timed: timed steps, 0 for the preset's plan */
static train_result train_measure(const char *preset, const char *mode, size_t threads,
                                  size_t timed)
{
    train_result r = {0};
    step_plan plan = plan_of(preset);
    if (timed)
        plan.timed = timed;
    train_config tc;
    train_config_of(&tc, preset, mode, threads, plan.warmup + plan.timed);
    trainer t;
    gl_error err = {{0}};
    if (trainer_init(&t, &tc, &err)) {
        fprintf(stderr, "bench_train: %s %s: %s\n", preset, mode, err.msg);
        return r;
    }
    for (size_t i = 0; i < plan.warmup && !r.diverged; i++)
        r.diverged = trainer_step(&t);
    const size_t allocs0 = alloc_count();
    const double cpu0 = cpu_seconds();
    const double start = gl_now();
    r.best_step = INFINITY;
    for (size_t i = 0; i < plan.timed && !r.diverged; i++) {
        const double t0 = gl_now();
        r.diverged = trainer_step(&t);
        const double dt = gl_now() - t0;
        r.best_step = dt < r.best_step ? dt : r.best_step;
        r.steps += !r.diverged;
    }
    r.seconds = gl_now() - start;
    r.cpu_seconds = cpu_seconds() - cpu0;
    r.allocs = alloc_count() - allocs0;
    r.tokens = r.steps * tc.model.batch * tc.model.T;
    r.tokens_per_s = r.seconds > 0 ? (double)r.tokens / r.seconds : 0.0;
    r.loss = t.last_loss;
    r.ok = 1;
    trainer_free(&t);
    return r;
}

static void print_flops(void)
{
    printf("== 4. model size and FLOPs per token (model_count_params, model_flops_per_token)\n");
    printf("%-6s %5s %5s %4s %6s %5s %10s %14s %14s\n", "preset", "T", "d", "L", "B*T", "k",
           "params", "fwd FLOP/tok", "train FLOP/tok");
    for (size_t p = 0; p < NPRESETS; p++) {
        model_config c;
        GL_ASSERT(model_preset(PRESETS[p], &c) == 0);
        double fwd = model_flops_per_token(&c);
        printf("%-6s %5zu %5zu %4zu %6zu %5zu %10zu %14.4g %14.4g\n", PRESETS[p], c.T, c.d,
               c.layers, c.batch * c.T, c.k, model_count_params(&c), fwd, 3.0 * fwd);
    }
    printf("(every mode is charged the same FLOPs: gate projections and scores included; "
           "attention and gate scores over the causal (T+1)/2 keys per query, not the masked "
           "pairs the 64-row blocks also compute)\n\n");
}

/* Returns 0 when every run completed. */
static int bench_training(const double peak[3], const double fma[3])
{
    train_result res[NPRESETS][NMODES][MAX_THREADS + 1];
    int rc = 0;
    printf("== 3. training throughput (trainer_step, embedded generator, no eval)\n");
    for (size_t p = 0; p < NPRESETS; p++)
        for (size_t threads = 1; threads <= MAX_THREADS; threads++)
            for (size_t m = 0; m < NMODES; m++) {
                res[p][m][threads] = train_measure(PRESETS[p], MODES[m], threads, 0);
                rc |= !res[p][m][threads].ok;
            }

    printf("%-6s %-9s %7s %6s %8s %5s %9s %8s %8s %8s %7s %11s %7s\n", "preset", "mode",
           "threads", "steps", "s/step", "cpu%", "tokens/s", "vs dense", "GFLOP/s", "of sgemm",
           "of FMA", "allocs/step", "loss");
    for (size_t p = 0; p < NPRESETS; p++) {
        for (size_t threads = 1; threads <= MAX_THREADS; threads++)
            for (size_t m = 0; m < NMODES; m++) {
                train_config mc;
                train_config_of(&mc, PRESETS[p], MODES[m], threads, 1);
                const double train_flops = 3.0 * model_flops_per_token(&mc.model);
                const train_result *r = &res[p][m][threads];
                const train_result *dense = &res[p][0][threads];
                if (!r->ok) {
                    printf("%-6s %-9s %7zu  (could not run)\n", PRESETS[p], MODES[m], threads);
                    continue;
                }
                double achieved = train_flops * r->tokens_per_s * 1e-9;
                double ratio = dense->tokens_per_s > 0 ? r->tokens_per_s / dense->tokens_per_s : 0;
                char allocs[24];
                if (BENCH_COUNT_ALLOCS && r->steps)
                    snprintf(allocs, sizeof allocs, "%.1f", (double)r->allocs / (double)r->steps);
                else
                    snprintf(allocs, sizeof allocs, "-");
                printf("%-6s %-9s %7zu %6zu %8.3f %5.0f %9.0f %8.2f %8.2f %7.1f%% %6.1f%% %11s "
                       "%7.4f%s\n",
                       PRESETS[p], MODES[m], threads, r->steps,
                       r->steps ? r->seconds / (double)r->steps : 0.0,
                       r->seconds > 0 ? 100.0 * r->cpu_seconds / r->seconds : 0.0,
                       r->tokens_per_s, ratio, achieved, 100.0 * achieved / peak[threads],
                       fma[threads] > 0 ? 100.0 * achieved / fma[threads] : 0.0, allocs, r->loss,
                       r->diverged ? "  diverged" : "");
            }
    }
    printf("(warm-up then timed steps: tiny %zu+%zu, small %zu+%zu; threads = model pool, "
           "OpenBLAS at 1;\n cpu%% = CPU time of all threads / wall time; vs dense = tokens/s over dense at the same preset and threads;\n"
           " GFLOP/s = 3 * fwd FLOP/tok * tokens/s; of sgemm = that / the 2048^3 sgemm GFLOP/s at "
           "the same thread count: %.2f (1), %.2f (2);\n of FMA = that / section 2b's FMA peak at "
           "the same thread count: %.1f (1), %.1f (2))\n\n",
           plan_of("tiny").warmup, plan_of("tiny").timed, plan_of("small").warmup,
           plan_of("small").timed, peak[1], peak[2], fma[1], fma[2]);
    return rc;
}

/* ---- 5. peak RSS of a forked child ---- */

typedef struct {
    const char *preset, *mode;   /* NULL preset: the empty baseline child */
    size_t steps;
} rss_case;

typedef struct {
    int ok;
    double max_rss_mib;
    size_t num_params, num_acts, num_scratch;  /* reported back by the child through a pipe */
} rss_result;

/* Child side: build the trainer, run the steps, report the buffer sizes. */
_Noreturn static void rss_child(const rss_case *rc, int fd)
{
    size_t sizes[3] = {0, 0, 0};
    if (rc->preset) {
        train_config tc;
        train_config_of(&tc, rc->preset, rc->mode, 1, rc->steps);
        trainer t;
        gl_error err = {{0}};
        if (trainer_init(&t, &tc, &err))
            _exit(2);
        for (size_t i = 0; i < rc->steps; i++)
            if (trainer_step(&t))
                _exit(3);
        sizes[0] = t.m.num_params;
        sizes[1] = t.m.num_acts;
        sizes[2] = t.m.num_scratch;
    }
    ssize_t n = write(fd, sizes, sizeof sizes);
    _exit(n == (ssize_t)sizeof sizes ? 0 : 4);
}

static rss_result rss_measure(const rss_case *rc)
{
    rss_result r = {0};
    int fds[2];
    if (pipe(fds))
        return r;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return r;
    }
    if (pid == 0) {
        close(fds[0]);
        rss_child(rc, fds[1]);
    }
    close(fds[1]);
    size_t sizes[3] = {0, 0, 0};
    ssize_t got = read(fds[0], sizes, sizeof sizes);
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid)
        return r;
    r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == (ssize_t)sizeof sizes;
    r.max_rss_mib = (double)ru.ru_maxrss / 1024.0;   /* ru_maxrss is in KiB on Linux */
    r.num_params = sizes[0];
    r.num_acts = sizes[1];
    r.num_scratch = sizes[2];
    return r;
}

static const rss_case RSS_CASES[] = {
    {NULL, NULL, 0},
    {"tiny", "dense", 3},
    {"tiny", "soft", 3},
    {"tiny", "dense+moe", 3},
    {"small", "dense", 2},
    {"small", "soft", 2},
    {"paper", "dense", 1},   /* on bytes: V = 256 */
};
#define NRSS (sizeof RSS_CASES / sizeof RSS_CASES[0])

static void print_rss(const rss_result res[NRSS])
{
    printf("== 5. peak RSS of a forked child (trainer_init + steps, pool of 1 thread)\n");
    printf("%-6s %-9s %5s %10s %10s %12s %9s %11s %9s\n", "preset", "mode", "steps", "RSS MiB",
           "- base MiB", "p+g+adam MiB", "acts MiB", "scratch MiB", "rest MiB");
    for (size_t i = 0; i < NRSS; i++) {
        const rss_case *c = &RSS_CASES[i];
        const rss_result *r = &res[i];
        if (!r->ok) {
            printf("%-6s %-9s %5zu  (child failed)\n", c->preset ? c->preset : "empty",
                   c->mode ? c->mode : "-", c->steps);
            continue;
        }
        const double pga = 16.0 * (double)r->num_params / MIB;
        const double acts = 4.0 * (double)r->num_acts / MIB;
        const double scratch = 4.0 * (double)r->num_scratch / MIB;
        printf("%-6s %-9s %5zu %10.1f %10.1f %12.1f %9.1f %11.1f %9.1f\n",
               c->preset ? c->preset : "empty", c->mode ? c->mode : "-", c->steps,
               r->max_rss_mib, r->max_rss_mib - res[0].max_rss_mib, pga, acts, scratch,
               r->max_rss_mib - res[0].max_rss_mib - pga - acts - scratch);
    }
    printf("(empty = a child that only forks and exits: what every child inherits; "
           "p+g+adam = params, grads, Adam m and v;\n acts = the activations kept for the "
           "backward (the model's acts buffer; pages a mode never writes, such as a dense "
           "arm's gate\n scores, are never touched and not resident); scratch = the buffers one "
           "layer at a time uses, recomputed LayerNorm\n outputs included; rest = - base - "
           "the three: row statistics, hard-mask bits, the per-thread attention\n scratch, "
           "OpenBLAS's touched buffer, the data, malloc's own; negative where untouched acts "
           "pages outweigh it)\n");
}

/* ---- 6. against PyTorch, config by config, interleaved ----
 * The same model in PyTorch (tests/bench/torch_ref.py: the same shapes, read
 * from gatelab's presets and passed on its command line, the same gates,
 * AdamW and batch, random tokens), at its best thread split: the script runs
 * once with 1 and once with 2 intra-op threads and the better figure counts.
 * gatelab trains with a model pool of 2 threads (what `--threads 2` does).
 * The two alternate config by config, PEER_ROUNDS times, so a disturbance
 * from another process hits both; each side's figure is its median. Skipped
 * (said, not failed) where no python3 can import torch: `make bench-deps`
 * installs python3-torch. */

static const struct {
    const char *preset, *mode;
} PEERS[] = {{"tiny", "dense"}, {"tiny", "soft"}, {"tiny", "topk"},
             {"small", "dense"}, {"small", "soft"}};
#define NPEERS (sizeof PEERS / sizeof PEERS[0])
#define PEER_ROUNDS 3

/* A python that imports torch into py (GATELAB_BENCH_PYTHON first), and the
 * script into script; 0 when there is none. */
static int torch_find(char *py, size_t pysize, char *script, size_t ssize)
{
    const char *s = getenv("GATELAB_BENCH_TORCH_SCRIPT");
    snprintf(script, ssize, "%s", s ? s : "tests/bench/torch_ref.py");
    if (access(script, R_OK) != 0)
        return 0;
    const char *env = getenv("GATELAB_BENCH_PYTHON");
    const char *cands[] = {env ? env : "", "python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i][0] || strchr(cands[i], '\''))
            continue;
        char cmd[512];
        snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) {
            snprintf(py, pysize, "%s", cands[i]);
            return 1;
        }
    }
    return 0;
}

/* tokens/s of one torch_ref run, 0 when it failed or its model is not
 * gatelab's (another parameter count); version gets its torch version. */
static double torch_measure(const char *py, const char *script, const char *preset,
                            const char *mode, int threads, char *version, size_t vsize)
{
    model_config c;
    GL_ASSERT(model_preset(preset, &c) == 0);
    const step_plan plan = plan_of(preset);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --mode %s --V %zu --T %zu --d %zu --layers %zu --heads %zu --mlp %zu "
             "--r %zu --k %zu --gate-temp %.9g --batch %zu --threads %d --warmup %zu --timed %zu",
             py, script, mode, c.V, c.T, c.d, c.layers, c.heads, c.mlp, c.r, c.k,
             (double)c.gate_temp, c.batch, threads, plan.warmup, plan.timed);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0.0;
    char line[512];
    double tps = 0.0;
    size_t params = 0;
    while (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "tokens/s ");
        const char *np = strstr(line, "params ");
        if (np)
            params = strtoull(np + 7, NULL, 10);
        const char *ver = strstr(line, "version ");
        if (at)
            tps = strtod(at + 9, NULL);
        if (ver) {
            snprintf(version, vsize, "%s", ver + 8);
            version[strcspn(version, "\n")] = '\0';
        }
    }
    if (pclose(f) != 0)
        return 0.0;
    if (params != model_count_params(&c)) {
        printf("(torch_ref %s %s: %zu parameters, gatelab %zu: not the same model)\n", preset,
               mode, params, model_count_params(&c));
        return 0.0;
    }
    return tps;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Returns 0 when every measurement ran (or PyTorch is absent). */
static int bench_peer(void)
{
    char py[256], script[512], version[64] = "?";
    printf("== 6. against PyTorch: the same model, shapes, gates, AdamW and batch, interleaved "
           "config by config (%d rounds, medians)\n", PEER_ROUNDS);
    if (!torch_find(py, sizeof py, script, sizeof script)) {
        printf("(skipped: no python3 here imports torch — `make bench-deps` installs "
               "python3-torch; GATELAB_BENCH_PYTHON names another interpreter)\n\n");
        return 0;
    }
    double g[NPEERS], tbest[NPEERS], tt[NPEERS][3];
    int rc = 0;
    for (size_t i = 0; i < NPEERS; i++) {
        double gs[PEER_ROUNDS], ts[3][PEER_ROUNDS];
        for (int r = 0; r < PEER_ROUNDS; r++) {
            train_result res = train_measure(PEERS[i].preset, PEERS[i].mode, 2, 0);
            gs[r] = res.ok ? res.tokens_per_s : 0.0;
            for (int th = 1; th <= 2; th++)
                ts[th][r] = torch_measure(py, script, PEERS[i].preset, PEERS[i].mode, th,
                                          version, sizeof version);
        }
        g[i] = median(gs, PEER_ROUNDS);
        tbest[i] = 0.0;
        for (int th = 1; th <= 2; th++) {
            tt[i][th] = median(ts[th], PEER_ROUNDS);
            if (tt[i][th] > tbest[i])
                tbest[i] = tt[i][th];
        }
        rc |= g[i] <= 0.0 || tbest[i] <= 0.0;
    }
    printf("| config | gatelab tok/s (2 threads) | PyTorch tok/s (1 / 2 threads) | ratio |\n");
    printf("|---|---|---|---|\n");
    for (size_t i = 0; i < NPEERS; i++)
        printf("| %s %s | %.0f | %.0f / %.0f | %.2f |\n", PEERS[i].preset, PEERS[i].mode, g[i],
               tt[i][1], tt[i][2], tbest[i] > 0 ? g[i] / tbest[i] : 0.0);
    printf("(PyTorch %s via %s; ratio = gatelab over PyTorch's better thread count; steps as "
           "in section 3)\n\n", version, py);
    return rc;
}

/* --one PRESET MODE THREADS STEPS: one line, see the file comment. */
static int bench_one(char **argv)
{
    char *end;
    const unsigned long threads = strtoul(argv[2], &end, 10);
    const unsigned long steps = *end ? 0 : strtoul(argv[3], &end, 10);
    model_config c;
    live_ffn ffn;
    gate_mode mode;
    if (*end || threads < 1 || threads > 256 || steps < 1 || model_preset(argv[0], &c) ||
        args_parse_arm(argv[1], &mode, &ffn)) {
        fprintf(stderr, "bench_train: --one PRESET MODE THREADS STEPS (e.g. tiny soft 2 30)\n");
        return 2;
    }
    char load[320];
    load_line(load, sizeof load);
    train_result r = train_measure(argv[0], argv[1], threads, steps);
    if (!r.ok)
        return 1;
    /* tokens per CPU second: what a busy machine disturbs least */
    printf("%s %s threads %lu steps %zu tokens/s %.0f best-step-tokens/s %.0f cpu%% %.0f "
           "tokens/cpu-s %.0f loss %.6f%s | %s\n", argv[0], argv[1], threads, r.steps,
           r.tokens_per_s, (double)(r.tokens / (r.steps ? r.steps : 1)) / r.best_step,
           r.seconds > 0 ? 100.0 * r.cpu_seconds / r.seconds : 0.0,
           r.cpu_seconds > 0 ? (double)r.tokens / r.cpu_seconds : 0.0, r.loss,
           r.diverged ? " diverged" : "", load);
    return 0;
}

int main(int argc, char **argv)
{
    const double start = gl_now();
    openblas_set_num_threads(1);
    setvbuf(stdout, NULL, _IOLBF, 0);
    gl_error verr = {{0}};
    if (vec_init(&verr)) {
        fprintf(stderr, "bench_train: %s\n", verr.msg);
        return 2;
    }
    if (argc == 6 && strcmp(argv[1], "--one") == 0)
        return bench_one(argv + 2);
    if (argc == 2 && strcmp(argv[1], "--fma") == 0) {
        double fma[3];
        bench_fma(fma);
        return fma[1] > 0 ? 0 : 1;
    }
    if (argc == 2 && strcmp(argv[1], "--peer") == 0)
        return bench_peer();
    if (argc == 2 && strcmp(argv[1], "--rss") == 0) {
        rss_result rss[NRSS];
        int bad = 0;
        for (size_t i = 0; i < NRSS; i++) {
            rss[i] = rss_measure(&RSS_CASES[i]);
            bad |= !rss[i].ok;
        }
        print_rss(rss);
        return bad;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: bench_train [--one PRESET MODE THREADS STEPS | --fma | --peer | --rss]\n");
        return 2;
    }
    char load_at_start[320], load_at_end[320];
    load_line(load_at_start, sizeof load_at_start);

    /* RSS first, while this process is small (see the file comment). */
    rss_result rss[NRSS];
    int rc = 0;
    for (size_t i = 0; i < NRSS; i++) {
        rss[i] = rss_measure(&RSS_CASES[i]);
        rc |= !rss[i].ok;
    }

    print_machine(load_at_start);
    double peak[3] = {0}, fma[3] = {0};
    bench_gemm(peak);
    bench_fma(fma);
    rc |= bench_training(peak, fma);
    print_flops();
    print_rss(rss);
    rc |= bench_peer();
    load_line(load_at_end, sizeof load_at_end);
    printf("\nend       %s\n", load_at_end);
    printf("bench_train: %.1f s wall\n", gl_now() - start);
    return rc ? 1 : 0;
}
