/* test_ring: the SPSC ring (bounds, capacity rounding, full/empty, FIFO
 * across many wrap-arounds, two threaded stress runs), the latest-value
 * slot (single-thread semantics, a threaded run that checks for torn values
 * and versions going backwards) and the byte ring (bounds, partial writes
 * and reads at full and empty, wrap-around in odd pieces, a threaded stream
 * larger than the ring, checked byte by byte). GATELAB_QUICK=1 cuts the threaded counts
 * by 10x for the sanitizer builds. */
#include "ring.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common.h"

static size_t scaled(size_t n)
{
    const char *q = getenv("GATELAB_QUICK");
    return q && strcmp(q, "1") == 0 ? n / 10 : n;
}

/* ---- bounds, full and empty --------------------------------------------- */

static void test_create_bounds(void)
{
    CHECK(ring_create(0, 8) == NULL, "capacity 0 is refused");
    CHECK(ring_create(((size_t)1 << 30) + 1, 1) == NULL, "capacity > 2^30 is refused");
    CHECK(ring_create(SIZE_MAX, 1) == NULL, "capacity SIZE_MAX is refused");
    CHECK(ring_create(8, 0) == NULL, "record size 0 is refused");
    CHECK(ring_create(1 << 20, SIZE_MAX / 4) == NULL, "capacity * record size overflow is refused");

    static const size_t want[][2] = {{1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {9, 16}, {1000, 1024}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ring *r = ring_create(want[i][0], 16);
        CHECK(r && ring_capacity(r) == want[i][1], "capacity %zu rounds up to %zu (got %zu)",
              want[i][0], want[i][1], r ? ring_capacity(r) : 0);
        ring_destroy(r);
    }
    ring_destroy(NULL);

    CHECK(latest_create(0) == NULL, "latest slot of size 0 is refused");
}

static void test_full_empty(void)
{
    ring *r = ring_create(5, sizeof(uint32_t));
    GL_ASSERT(r);
    const size_t cap = ring_capacity(r);
    uint32_t v = 12345;
    CHECK(ring_pop(r, &v) == -1 && v == 12345, "pop on a new ring fails and leaves out untouched");
    CHECK(ring_count(r) == 0, "new ring counts 0");

    int ok = 1;
    for (uint32_t i = 0; i < cap; i++)
        ok &= ring_push(r, &i) == 0;
    CHECK(ok && ring_count(r) == cap, "push %zu records fills the ring (count %zu)", cap,
          ring_count(r));
    uint32_t extra = 999;
    CHECK(ring_push(r, &extra) == -1, "push on a full ring fails");
    CHECK(ring_count(r) == cap, "a failed push changes nothing");

    CHECK(ring_pop(r, &v) == 0 && v == 0, "pop returns the oldest record");
    CHECK(ring_push(r, &extra) == 0, "one pop makes room for one push");
    CHECK(ring_push(r, &extra) == -1, "and only one");

    ok = 1;
    for (uint32_t i = 1; i < cap; i++)
        ok &= ring_pop(r, &v) == 0 && v == i;
    CHECK(ok && ring_pop(r, &v) == 0 && v == extra, "the rest come out in order");
    v = 7;
    CHECK(ring_pop(r, &v) == -1 && v == 7 && ring_count(r) == 0, "drained ring is empty again");
    ring_destroy(r);

    r = ring_create(1, sizeof(uint32_t));
    GL_ASSERT(r);
    ok = 1;
    for (uint32_t i = 0; i < 100; i++) {
        ok &= ring_push(r, &i) == 0 && ring_push(r, &i) == -1;
        ok &= ring_pop(r, &v) == 0 && v == i && ring_pop(r, &v) == -1;
    }
    CHECK(ok, "capacity 1 alternates full and empty");
    ring_destroy(r);
}

/* ---- single-thread FIFO across wrap-arounds ----------------------------- */

/* 20 bytes: not a multiple of any alignment, so slots straddle lines. */
typedef struct {
    uint32_t seq;
    uint8_t bytes[16];
} odd_record;

static void odd_fill(odd_record *o, uint32_t seq)
{
    o->seq = seq;
    for (int i = 0; i < 16; i++)
        o->bytes[i] = (uint8_t)(seq * 31u + (uint32_t)i);
}

static void test_fifo_wrap(void)
{
    ring *r = ring_create(16, sizeof(odd_record));
    GL_ASSERT(r);
    const size_t total = 200000;
    uint32_t next_in = 0, next_out = 0;
    size_t bad = 0, fulls = 0;
    /* Bursts of 1..16 pushes then 1..16 pops (different periods) walk the
     * indices through every offset of the mask. */
    for (size_t round = 0; next_out < total; round++) {
        size_t np = 1 + round % 16, nc = 1 + (round * 7) % 16;
        for (size_t i = 0; i < np && next_in < total; i++) {
            odd_record o;
            odd_fill(&o, next_in);
            if (ring_push(r, &o) == 0)
                next_in++;
            else
                fulls++;
        }
        for (size_t i = 0; i < nc; i++) {
            odd_record o, want;
            if (ring_pop(r, &o) != 0)
                break;
            odd_fill(&want, next_out++);
            bad += memcmp(&o, &want, sizeof o) != 0;
        }
        if (ring_count(r) != next_in - next_out)
            bad++;
    }
    CHECK(bad == 0 && next_out == total, "%zu records through capacity 16 in FIFO order "
          "(%zu wraps, %zu full pushes seen, %zu bad)", total, total / 16, fulls, bad);
    ring_destroy(r);
}

/* ---- threaded stress ----------------------------------------------------- */

/* 64 bytes: sequence, checksum, payload derived from the sequence. */
typedef struct {
    uint64_t seq;
    uint64_t sum;
    uint64_t payload[6];
} stress_record;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t stress_sum(const stress_record *s)
{
    uint64_t h = 0;
    for (int i = 0; i < 6; i++)
        h = mix(h ^ s->payload[i]);
    return h;
}

typedef struct {
    ring *r;
    size_t count;
    size_t full_retries, empty_retries;   /* each owned by one thread, read after join */
    size_t received, out_of_order, corrupt;
} stress_run;

static void *stress_producer(void *arg)
{
    stress_run *s = arg;
    for (size_t i = 0; i < s->count; i++) {
        stress_record rec = {.seq = i};
        for (int k = 0; k < 6; k++)
            rec.payload[k] = mix(i * 6 + (uint64_t)k);
        rec.sum = stress_sum(&rec);
        while (ring_push(s->r, &rec) != 0) {
            s->full_retries++;
            sched_yield();
        }
    }
    return NULL;
}

static void *stress_consumer(void *arg)
{
    stress_run *s = arg;
    uint64_t want = 0;
    while (want < s->count) {
        stress_record rec;
        if (ring_pop(s->r, &rec) != 0) {
            s->empty_retries++;
            sched_yield();
            continue;
        }
        s->received++;
        if (rec.seq != want)
            s->out_of_order++;
        int intact = rec.sum == stress_sum(&rec);
        for (int k = 0; k < 6; k++)
            intact &= rec.payload[k] == mix(rec.seq * 6 + (uint64_t)k);
        s->corrupt += !intact;
        want = rec.seq + 1;
    }
    return NULL;
}

static void stress(size_t capacity, size_t count)
{
    stress_run s = {.r = ring_create(capacity, sizeof(stress_record)), .count = count};
    GL_ASSERT(s.r);
    CHECK(sizeof(stress_record) == 64, "stress record is 64 bytes");
    double t0 = gl_now();
    pthread_t prod, cons;
    GL_ASSERT(pthread_create(&cons, NULL, stress_consumer, &s) == 0);
    GL_ASSERT(pthread_create(&prod, NULL, stress_producer, &s) == 0);
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    double dt = gl_now() - t0;
    stress_record extra;
    CHECK(s.received == count && s.out_of_order == 0 && s.corrupt == 0 &&
          ring_pop(s.r, &extra) == -1,
          "capacity %zu: %zu records in order and intact (received %zu, out of order %zu, "
          "corrupt %zu; full retries %zu, empty retries %zu; %.2f s)",
          ring_capacity(s.r), count, s.received, s.out_of_order, s.corrupt, s.full_retries,
          s.empty_retries, dt);
    ring_destroy(s.r);
}

/* ---- latest-value slot --------------------------------------------------- */

#define SNAP_WORDS 512   /* 4096 bytes */

typedef struct {
    uint64_t word[SNAP_WORDS];
} snapshot;

/* 0 if every word equals v */
static int snap_torn(const snapshot *s, uint64_t v)
{
    for (size_t i = 0; i < SNAP_WORDS; i++)
        if (s->word[i] != v)
            return 1;
    return 0;
}

static void snap_fill(snapshot *s, uint64_t v)
{
    for (size_t i = 0; i < SNAP_WORDS; i++)
        s->word[i] = v;
}

static void test_latest_single(void)
{
    latest_slot *s = latest_create(sizeof(snapshot));
    GL_ASSERT(s);
    snapshot *a = xmalloc(sizeof *a), *out = xmalloc(sizeof *out);
    snap_fill(out, 77);
    CHECK(latest_read(s, out) == 0 && !snap_torn(out, 77) && latest_version(s) == 0,
          "empty slot reads version 0 and leaves out untouched");
    snap_fill(a, 1);
    latest_write(s, a);
    CHECK(latest_version(s) == 1, "first write is version 1");
    CHECK(latest_read(s, out) == 1 && !snap_torn(out, 1), "read returns it");
    snap_fill(out, 0);
    CHECK(latest_read(s, out) == 1 && !snap_torn(out, 1), "a second read returns it again");
    for (uint64_t v = 2; v <= 5; v++) {
        snap_fill(a, v);
        latest_write(s, a);
    }
    CHECK(latest_version(s) == 5 && latest_read(s, out) == 5 && !snap_torn(out, 5),
          "after writes 2..5 the read skips to 5");
    int ok = 1;
    for (uint64_t v = 6; v <= 50; v++) {
        snap_fill(a, v);
        latest_write(s, a);
        ok &= latest_read(s, out) == v && !snap_torn(out, v);
    }
    CHECK(ok, "alternating write/read cycles all three buffers");
    free(a);
    free(out);
    latest_destroy(s);
    latest_destroy(NULL);
}

typedef struct {
    latest_slot *s;
    uint64_t writes;
    _Atomic int done;             /* writer -> reader: stop polling */
    size_t reads, distinct, torn, backwards, ahead;
} latest_run;

static void *latest_writer(void *arg)
{
    latest_run *l = arg;
    snapshot *a = xmalloc(sizeof *a);
    for (uint64_t v = 1; v <= l->writes; v++) {
        snap_fill(a, v);
        latest_write(l->s, a);
    }
    free(a);
    atomic_store_explicit(&l->done, 1, memory_order_release);
    return NULL;
}

static void *latest_reader(void *arg)
{
    latest_run *l = arg;
    snapshot *out = xmalloc(sizeof *out);
    uint64_t last = 0;
    while (!atomic_load_explicit(&l->done, memory_order_acquire)) {
        uint64_t newest = latest_version(l->s);
        uint64_t v = latest_read(l->s, out);
        l->reads++;
        if (v == 0)
            continue;
        l->torn += snap_torn(out, v);
        l->backwards += v < last;
        /* latest_version was taken first, so the read cannot be older. */
        l->ahead += v < newest;
        l->distinct += v != last;
        last = v;
    }
    free(out);
    return NULL;
}

static void test_latest_threaded(void)
{
    latest_run l = {.s = latest_create(sizeof(snapshot)), .writes = scaled(200000)};
    GL_ASSERT(l.s);
    double t0 = gl_now();
    pthread_t w, r;
    GL_ASSERT(pthread_create(&r, NULL, latest_reader, &l) == 0);
    GL_ASSERT(pthread_create(&w, NULL, latest_writer, &l) == 0);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    double dt = gl_now() - t0;
    CHECK(l.torn == 0 && l.backwards == 0 && l.ahead == 0,
          "%llu writes of %zu bytes: %zu reads, %zu distinct versions seen, %zu torn, "
          "%zu backwards, %zu older than latest_version (%.2f s)",
          (unsigned long long)l.writes, sizeof(snapshot), l.reads, l.distinct, l.torn,
          l.backwards, l.ahead, dt);
    snapshot *out = xmalloc(sizeof *out);
    uint64_t v = latest_read(l.s, out);
    CHECK(v == l.writes && !snap_torn(out, v) && latest_version(l.s) == l.writes,
          "after the writer joins the read returns the last version %llu (got %llu)",
          (unsigned long long)l.writes, (unsigned long long)v);
    free(out);
    latest_destroy(l.s);
}

/* ---- byte ring ------------------------------------------------------------ */

static uint8_t stream_byte(uint64_t i)
{
    return (uint8_t)(mix(i >> 3) >> (8 * (i & 7)));
}

static void test_bytes_single(void)
{
    CHECK(byte_ring_create(0) == NULL, "byte ring of capacity 0 is refused");
    CHECK(byte_ring_create(((size_t)1 << 30) + 1) == NULL, "byte ring past 2^30 is refused");
    byte_ring_destroy(NULL);
    byte_ring *b = byte_ring_create(100);
    GL_ASSERT(b);
    CHECK(byte_ring_capacity(b) == 128, "capacity 100 rounds up to 128 (got %zu)",
          byte_ring_capacity(b));
    uint8_t in[300], out[300];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = stream_byte(i);
    memset(out, 0xEE, sizeof out);
    CHECK(byte_ring_read(b, out, 10) == 0 && out[0] == 0xEE && byte_ring_count(b) == 0,
          "a read from an empty ring takes nothing, out untouched");
    CHECK(byte_ring_write(b, in, 300) == 128 && byte_ring_count(b) == 128,
          "a write larger than the room writes what fits (128 of 300)");
    CHECK(byte_ring_write(b, in, 1) == 0, "a write to a full ring writes nothing");
    CHECK(byte_ring_read(b, out, 50) == 50 && memcmp(out, in, 50) == 0 &&
              byte_ring_count(b) == 78,
          "a read takes the oldest bytes first (50, 78 left)");
    CHECK(byte_ring_write(b, in + 128, 60) == 50, "the room a read made is written again (50)");
    CHECK(byte_ring_read(b, out + 50, 300) == 128 && memcmp(out, in, 178) == 0,
          "across the end of the buffer the bytes come back in order (178 in all)");
    /* odd pieces wrapping many times */
    uint64_t w = 0, r = 0;
    int same = 1;
    for (size_t round = 0; round < 5000; round++) {
        uint8_t piece[97];
        size_t want = 1 + (round * 37) % 97;
        for (size_t i = 0; i < want; i++)
            piece[i] = stream_byte(w + i);
        w += byte_ring_write(b, piece, want);
        size_t got = byte_ring_read(b, piece, 1 + (round * 53) % 97);
        for (size_t i = 0; i < got; i++)
            same &= piece[i] == stream_byte(r + i);
        r += got;
    }
    while (r < w) {
        uint8_t piece[64];
        size_t got = byte_ring_read(b, piece, sizeof piece);
        for (size_t i = 0; i < got; i++)
            same &= piece[i] == stream_byte(r + i);
        r += got;
    }
    CHECK(same && r == w && w > 100000, "%llu bytes in odd pieces come back in order",
          (unsigned long long)w);
    byte_ring_destroy(b);
}

typedef struct {
    byte_ring *b;
    uint64_t total;
    size_t full_waits, empty_waits;   /* each owned by one thread, read after join */
    uint64_t wrong;
} byte_stream;

static void *bytes_producer(void *arg)
{
    byte_stream *s = arg;
    uint8_t piece[4096];
    for (uint64_t at = 0, n = 0; at < s->total; n++) {
        size_t want = 1 + (size_t)(mix(n) % sizeof piece);
        if (want > s->total - at)
            want = (size_t)(s->total - at);
        for (size_t i = 0; i < want; i++)
            piece[i] = stream_byte(at + i);
        for (size_t done = 0; done < want;) {
            size_t wr = byte_ring_write(s->b, piece + done, want - done);
            done += wr;
            if (!wr) {
                s->full_waits++;
                sched_yield();
            }
        }
        at += want;
    }
    return NULL;
}

static void *bytes_consumer(void *arg)
{
    byte_stream *s = arg;
    uint8_t piece[3000];
    for (uint64_t at = 0, n = 0; at < s->total; n++) {
        size_t got = byte_ring_read(s->b, piece, 1 + (size_t)(mix(~n) % sizeof piece));
        if (!got) {
            s->empty_waits++;
            sched_yield();
            continue;
        }
        for (size_t i = 0; i < got; i++)
            s->wrong += piece[i] != stream_byte(at + i);
        at += got;
    }
    return NULL;
}

static void test_bytes_threaded(size_t capacity, uint64_t total)
{
    byte_stream s = {.b = byte_ring_create(capacity), .total = total};
    GL_ASSERT(s.b);
    double t0 = gl_now();
    pthread_t prod, cons;
    GL_ASSERT(pthread_create(&cons, NULL, bytes_consumer, &s) == 0);
    GL_ASSERT(pthread_create(&prod, NULL, bytes_producer, &s) == 0);
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    uint8_t extra;
    CHECK(s.wrong == 0 && byte_ring_read(s.b, &extra, 1) == 0,
          "byte ring of %zu: %llu bytes streamed in pieces up to 4096, every byte right "
          "(wrong %llu; full waits %zu, empty waits %zu; %.2f s)",
          byte_ring_capacity(s.b), (unsigned long long)total, (unsigned long long)s.wrong,
          s.full_waits, s.empty_waits, gl_now() - t0);
    byte_ring_destroy(s.b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_create_bounds();
    test_full_empty();
    test_fifo_wrap();
    stress(1024, scaled(4000000));
    stress(4, scaled(4000000));
    test_latest_single();
    test_latest_threaded();
    test_bytes_single();
    test_bytes_threaded(1024, scaled(20000000));
    test_bytes_threaded(1 << 16, scaled(20000000));
    return check_finish();
}
