/* bench_ring: what the rings cost the threads around them. Not a test: one
 * run prints plain tables and exits 0.
 *
 *  1. machine: usable CPUs and the load on them (both threads of every
 *     measurement below want a core of their own).
 *  2. ring throughput: a producer thread pushes for RUN_SECONDS while a
 *     consumer thread pops, for 64-byte, tel_record-sized and 256-byte
 *     records; capacity 1024. Either side yields when the ring is full or
 *     empty. records/s = records popped / time until the last was popped.
 *  3. trainer-side push cost: bursts of BURST pushes into a ring of 4096 that
 *     a consumer thread drains concurrently; the producer waits (untimed) for
 *     the ring to empty between bursts, so no push ever finds it full.
 *     ns/push = time inside the bursts / pushes.
 *  4. latest-value slot with a heatmap-sized payload (786432 bytes: the tiny
 *     preset's three uint8 [L][H][T][T] maps): latest_write and latest_read
 *     alone on one thread, then a writer thread and a reader thread
 *     running flat out against each other.
 * Run: make bench (or build $(BUILD)/release/bench/bench_ring and run it). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "record.h"
#include "ring.h"

#define RUN_SECONDS 1.0
#define PUSH_SECONDS 0.5
#define THROUGHPUT_CAPACITY 1024
#define PUSH_CAPACITY 4096
#define BURST 256
#define HEATMAP_BYTES ((size_t)786432)
#define MAX_RECORD 512

static size_t usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return (size_t)CPU_COUNT(&set);
    return 1;
}

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

/* ---- 2 and 3: one producer, one consumer ---- */

typedef struct {
    ring *r;
    size_t record_size;
    _Atomic int stop;            /* main -> producer: stop pushing */
    _Atomic int producer_done;   /* producer -> consumer: no more pushes after this */
    /* each written by one thread, read by main after the joins */
    size_t pushed, popped, full_retries, empty_retries, bursts;
    double push_seconds, end;
} pc_run;

static void *consumer_main(void *arg)
{
    pc_run *p = arg;
    unsigned char rec[MAX_RECORD];
    for (;;) {
        if (ring_pop(p->r, rec) == 0) {
            p->popped++;
            continue;
        }
        /* Done only if the ring is still empty after the producer said so. */
        if (atomic_load_explicit(&p->producer_done, memory_order_acquire) &&
            ring_pop(p->r, rec) != 0)
            break;
        p->empty_retries++;
        sched_yield();
    }
    p->end = gl_now();
    return NULL;
}

static void *throughput_producer(void *arg)
{
    pc_run *p = arg;
    unsigned char rec[MAX_RECORD];
    memset(rec, 0xab, sizeof rec);
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        /* Check the stop flag every 256 records, not every push. */
        for (int i = 0; i < 256; i++) {
            while (ring_push(p->r, rec) != 0) {
                p->full_retries++;
                sched_yield();
            }
            p->pushed++;
        }
    }
    atomic_store_explicit(&p->producer_done, 1, memory_order_release);
    return NULL;
}

static void *burst_producer(void *arg)
{
    pc_run *p = arg;
    unsigned char rec[MAX_RECORD];
    memset(rec, 0xcd, sizeof rec);
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        double t0 = gl_now();
        for (int i = 0; i < BURST; i++) {
            if (ring_push(p->r, rec) != 0)
                p->full_retries++;   /* would mean the ring filled: reported */
            else
                p->pushed++;
        }
        p->push_seconds += gl_now() - t0;
        p->bursts++;
        while (ring_count(p->r) != 0)
            sched_yield();
    }
    atomic_store_explicit(&p->producer_done, 1, memory_order_release);
    return NULL;
}

/* Runs producer and consumer for `seconds`; returns the wall time from the
 * start to the consumer's last pop. */
static double pc_measure(pc_run *p, size_t capacity, void *(*producer)(void *), double seconds)
{
    p->r = ring_create(capacity, p->record_size);
    GL_ASSERT(p->r);
    pthread_t prod, cons;
    double start = gl_now();
    GL_ASSERT(pthread_create(&cons, NULL, consumer_main, p) == 0);
    GL_ASSERT(pthread_create(&prod, NULL, producer, p) == 0);
    while (gl_now() - start < seconds)
        sched_yield();
    atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    GL_ASSERT(p->popped == p->pushed);
    ring_destroy(p->r);
    return p->end - start;
}

typedef struct {
    const char *name;
    size_t bytes;
} record_kind;

static void bench_throughput(const record_kind *kinds, size_t n)
{
    printf("== 2. ring throughput: producer thread -> consumer thread (capacity %d, %.1f s "
           "each)\n", THROUGHPUT_CAPACITY, RUN_SECONDS);
    printf("%-12s %6s %10s %8s %9s %9s %8s %8s\n", "record", "bytes", "records", "seconds",
           "Mrec/s", "MB/s", "full%", "empty%");
    for (size_t i = 0; i < n; i++) {
        pc_run p = {.record_size = kinds[i].bytes};
        double s = pc_measure(&p, THROUGHPUT_CAPACITY, throughput_producer, RUN_SECONDS);
        double rate = (double)p.popped / s;
        printf("%-12s %6zu %10zu %8.3f %9.2f %9.0f %7.2f%% %7.2f%%\n", kinds[i].name,
               kinds[i].bytes, p.popped, s, rate * 1e-6, rate * (double)kinds[i].bytes * 1e-6,
               100.0 * (double)p.full_retries / (double)(p.pushed + p.full_retries),
               100.0 * (double)p.empty_retries / (double)(p.popped + p.empty_retries));
    }
    printf("(full%% = pushes that found the ring full and yielded, per push attempt; empty%% = "
           "the same for pops)\n\n");
}

static void bench_push(const record_kind *kinds, size_t n)
{
    printf("== 3. trainer-side ring_push, consumer draining concurrently (capacity %d, bursts "
           "of %d, %.1f s each)\n", PUSH_CAPACITY, BURST, PUSH_SECONDS);
    printf("%-12s %6s %10s %8s %9s %6s\n", "record", "bytes", "pushes", "bursts", "ns/push",
           "full");
    for (size_t i = 0; i < n; i++) {
        pc_run p = {.record_size = kinds[i].bytes};
        pc_measure(&p, PUSH_CAPACITY, burst_producer, PUSH_SECONDS);
        printf("%-12s %6zu %10zu %8zu %9.1f %6zu\n", kinds[i].name, kinds[i].bytes, p.pushed,
               p.bursts, p.pushed ? 1e9 * p.push_seconds / (double)p.pushed : 0.0,
               p.full_retries);
    }
    printf("(full = pushes refused because the ring was full: 0 means the figure is the "
           "never-full cost)\n\n");
}

/* ---- 4. latest-value slot ---- */

typedef struct {
    latest_slot *s;
    _Atomic int stop;
    /* each written by one thread, read after the joins */
    size_t writes, reads, fresh_reads;
    double write_seconds, read_seconds;
} latest_run;

static void *latest_writer(void *arg)
{
    latest_run *l = arg;
    unsigned char *v = xmalloc(HEATMAP_BYTES);
    memset(v, 1, HEATMAP_BYTES);
    double t0 = gl_now();
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        v[l->writes % HEATMAP_BYTES]++;
        latest_write(l->s, v);
        l->writes++;
    }
    l->write_seconds = gl_now() - t0;
    free(v);
    return NULL;
}

static void *latest_reader(void *arg)
{
    latest_run *l = arg;
    unsigned char *out = xmalloc(HEATMAP_BYTES);
    /* Start the clock at the first value, so reads that find nothing (and
     * copy nothing) are not counted. */
    while (latest_version(l->s) == 0)
        sched_yield();
    uint64_t last = 0;
    double t0 = gl_now();
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        uint64_t v = latest_read(l->s, out);
        l->fresh_reads += v != last;
        last = v;
        l->reads++;
    }
    l->read_seconds = gl_now() - t0;
    free(out);
    return NULL;
}

static void bench_latest(void)
{
    printf("== 4. latest-value slot, %zu-byte payload (tiny-preset heatmap snapshot)\n",
           HEATMAP_BYTES);
    latest_slot *s = latest_create(HEATMAP_BYTES);
    GL_ASSERT(s);
    unsigned char *v = xmalloc(HEATMAP_BYTES), *out = xmalloc(HEATMAP_BYTES);
    memset(v, 7, HEATMAP_BYTES);
    memset(out, 0, HEATMAP_BYTES);
    latest_write(s, v);   /* untimed: first touch of the buffers */
    latest_read(s, out);
    latest_write(s, v);
    latest_read(s, out);

    size_t n = 0;
    double t_write = 0, t_fresh = 0, t_stale = 0, start = gl_now();
    while (gl_now() - start < RUN_SECONDS) {
        double t0 = gl_now();
        latest_write(s, v);
        double t1 = gl_now();
        latest_read(s, out);   /* fresh: takes the new buffer */
        double t2 = gl_now();
        latest_read(s, out);   /* nothing new: copies the same front again */
        double t3 = gl_now();
        t_write += t1 - t0;
        t_fresh += t2 - t1;
        t_stale += t3 - t2;
        n++;
    }
    printf("%-36s %8s %10s %8s\n", "operation", "calls", "us/call", "GB/s");
    const double gb = (double)HEATMAP_BYTES * 1e-9;
    printf("%-36s %8zu %10.1f %8.2f\n", "latest_write (one thread)", n, 1e6 * t_write / (double)n,
           gb * (double)n / t_write);
    printf("%-36s %8zu %10.1f %8.2f\n", "latest_read, fresh (one thread)", n,
           1e6 * t_fresh / (double)n, gb * (double)n / t_fresh);
    printf("%-36s %8zu %10.1f %8.2f\n", "latest_read, not fresh (one thread)", n,
           1e6 * t_stale / (double)n, gb * (double)n / t_stale);
    free(v);
    free(out);
    latest_destroy(s);

    latest_run l = {.s = latest_create(HEATMAP_BYTES)};
    GL_ASSERT(l.s);
    pthread_t w, r;
    GL_ASSERT(pthread_create(&r, NULL, latest_reader, &l) == 0);
    GL_ASSERT(pthread_create(&w, NULL, latest_writer, &l) == 0);
    double t0 = gl_now();
    while (gl_now() - t0 < RUN_SECONDS)
        sched_yield();
    atomic_store_explicit(&l.stop, 1, memory_order_relaxed);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    latest_destroy(l.s);
    printf("%-36s %8zu %10.1f %8.2f\n", "latest_write (reader running)", l.writes,
           1e6 * l.write_seconds / (double)l.writes, gb * (double)l.writes / l.write_seconds);
    printf("%-36s %8zu %10.1f %8.2f\n", "latest_read (writer running)", l.reads,
           1e6 * l.read_seconds / (double)l.reads, gb * (double)l.reads / l.read_seconds);
    printf("(each call copies the whole payload once; GB/s = payload bytes per second of "
           "calls; the reader\n took a new version on %zu of its %zu reads while both ran)\n",
           l.fresh_reads, l.reads);
}

int main(void)
{
    const double start = gl_now();
    setvbuf(stdout, NULL, _IOLBF, 0);
    char load[128], psi[160];
    proc_line("/proc/loadavg", load, sizeof load);
    proc_line("/proc/pressure/cpu", psi, sizeof psi);
    printf("bench_ring: SPSC ring and latest-value slot; sizeof(tel_record) = %zu bytes\n\n",
           sizeof(tel_record));
    printf("== 1. machine\n");
    printf("nproc     %zu\n", usable_cpus());
    printf("start     loadavg %s | cpu pressure %s\n\n", load, psi);

    GL_ASSERT(sizeof(tel_record) <= MAX_RECORD);
    const record_kind kinds[] = {
        {"64 B", 64},
        {"tel_record", sizeof(tel_record)},
        {"256 B", 256},
    };
    const size_t nkinds = sizeof kinds / sizeof kinds[0];
    bench_throughput(kinds, nkinds);
    bench_push(kinds, nkinds);
    bench_latest();
    printf("\nbench_ring: %.1f s wall\n", gl_now() - start);
    return 0;
}
