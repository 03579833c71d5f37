/* ring: owns the SPSC record queue (its slots and both indices), the
 * latest-value triple buffer and the SPSC byte ring. No locks, no allocation
 * after *_create. */
#include "ring.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* x86-64 and most arm64 parts; a larger line only costs some false sharing. */
#define RING_CACHE_LINE 64
#define RING_MAX_CAPACITY ((size_t)1 << 30)

/* Lines: [read-only after create] [producer] [consumer]. Each side writes only
 * its own line, so the other side's line is pulled across cores only when the
 * cached copy of its index runs out. */
struct ring {
    alignas(RING_CACHE_LINE) size_t mask;   /* capacity - 1 */
    size_t record_size;
    unsigned char *slots;                    /* capacity * record_size bytes */

    /* Slots written so far; only grows. Stored (release) by ring_push after
     * the slot is filled; its partner is the acquire load in ring_pop. */
    alignas(RING_CACHE_LINE) _Atomic size_t head;
    /* Producer's last view of tail: the ring has at least this much room
     * taken back, so tail is reloaded only when the ring looks full. */
    size_t tail_cache;

    /* Slots read so far; only grows. Stored (release) by ring_pop after the
     * record is copied out; its partner is the acquire load in ring_push,
     * which lets the producer reuse the slot. */
    alignas(RING_CACHE_LINE) _Atomic size_t tail;
    /* Consumer's last view of head, reloaded only when the ring looks empty. */
    size_t head_cache;
};

/* aligned_alloc wants a size that is a multiple of the alignment. */
static size_t ring_round_line(size_t n)
{
    return (n + RING_CACHE_LINE - 1) & ~(size_t)(RING_CACHE_LINE - 1);
}

/* The aligned counterpart of xmalloc: out of memory aborts. */
static void *ring_xalloc(size_t n)
{
    size_t bytes = ring_round_line(n ? n : 1);
    void *p = aligned_alloc(RING_CACHE_LINE, bytes);
    if (!p) {
        fprintf(stderr, "gatelab: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

ring *ring_create(size_t capacity, size_t record_size)
{
    if (capacity == 0 || capacity > RING_MAX_CAPACITY || record_size == 0)
        return NULL;
    size_t cap = 1;
    while (cap < capacity)
        cap <<= 1;
    /* also leaves room for ring_round_line */
    if (record_size > (SIZE_MAX - RING_CACHE_LINE) / cap)
        return NULL;
    ring *r = ring_xalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->mask = cap - 1;
    r->record_size = record_size;
    /* Line-aligned so slot 0 does not share a line with some other object. */
    r->slots = ring_xalloc(cap * record_size);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return r;
}

void ring_destroy(ring *r)
{
    if (!r)
        return;
    free(r->slots);
    free(r);
}

size_t ring_capacity(const ring *r)
{
    return r->mask + 1;
}

int ring_push(ring *r, const void *record)
{
    /* Only this thread stores head, so its own value needs no ordering. */
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (head - r->tail_cache > r->mask) {
        /* Acquire: the consumer's copy out of the slot we are about to
         * overwrite happened before it published this tail. */
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - r->tail_cache > r->mask)
            return -1;
    }
    memcpy(r->slots + (head & r->mask) * r->record_size, record, r->record_size);
    /* Release: the record's bytes are visible before the slot is. */
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return 0;
}

int ring_pop(ring *r, void *record)
{
    /* Only this thread stores tail. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail == r->head_cache) {
        /* Acquire: pairs with the release in ring_push, so the slot's bytes
         * are complete. */
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail == r->head_cache)
            return -1;
    }
    memcpy(record, r->slots + (tail & r->mask) * r->record_size, r->record_size);
    /* Release only after the copy: once tail moves the producer may refill
     * the slot (STYLE "known traps"). */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 0;
}

size_t ring_count(const ring *r)
{
    /* tail first: head only grows, so head - tail cannot go negative. The
     * clamp covers head having run ahead between the two loads. From the
     * consumer the result is what it can certainly pop (more may arrive);
     * from the producer, at most what is still waiting. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = head - tail;
    return n > r->mask + 1 ? r->mask + 1 : n;
}

/* ---- latest-value slot ----
 * Three buffers: the writer fills "back", the reader copies from "front",
 * and the third sits in "middle". Both sides trade buffers with the middle by
 * atomic exchange, so each buffer has exactly one owner at any moment. */

#define LATEST_INDEX_MASK ((uint64_t)3)
#define LATEST_FRESH ((uint64_t)4)      /* the writer published since the reader last took it */
#define LATEST_VERSION_SHIFT 3

struct latest_slot {
    alignas(RING_CACHE_LINE) size_t size;
    unsigned char *buf[3];

    /* buffer index | LATEST_FRESH | version << LATEST_VERSION_SHIFT. Only
     * ever changed by exchange (acq_rel) in latest_write and latest_read,
     * each the other's partner: the release half hands over a buffer's
     * bytes, the acquire half takes them. */
    alignas(RING_CACHE_LINE) _Atomic uint64_t middle;
    /* Newest published version; stored (release) by latest_write after its
     * exchange, loaded (acquire) by latest_version on either side. */
    _Atomic uint64_t published;

    /* writer-only */
    alignas(RING_CACHE_LINE) unsigned back;
    uint64_t written;          /* versions handed out so far */

    /* reader-only */
    alignas(RING_CACHE_LINE) unsigned front;
    uint64_t front_version;    /* 0: front holds nothing written */
};

latest_slot *latest_create(size_t size)
{
    if (size == 0 || size > (SIZE_MAX - RING_CACHE_LINE) / 3)
        return NULL;
    latest_slot *s = ring_xalloc(sizeof *s);
    memset(s, 0, sizeof *s);
    s->size = size;
    /* Line-padded so the writer's back buffer and the reader's front buffer
     * never share a line. */
    size_t stride = ring_round_line(size);
    unsigned char *block = ring_xalloc(3 * stride);
    for (int i = 0; i < 3; i++)
        s->buf[i] = block + (size_t)i * stride;
    s->back = 0;
    s->front = 2;
    atomic_init(&s->middle, 1);
    atomic_init(&s->published, 0);
    return s;
}

void latest_destroy(latest_slot *s)
{
    if (!s)
        return;
    free(s->buf[0]);
    free(s);
}

void latest_write(latest_slot *s, const void *value)
{
    memcpy(s->buf[s->back], value, s->size);
    uint64_t v = ++s->written;
    uint64_t mine = (uint64_t)s->back | LATEST_FRESH | (v << LATEST_VERSION_SHIFT);
    /* Release our bytes; acquire the buffer we get back, which the reader
     * may have just finished copying from. */
    uint64_t old = atomic_exchange_explicit(&s->middle, mine, memory_order_acq_rel);
    s->back = (unsigned)(old & LATEST_INDEX_MASK);
    atomic_store_explicit(&s->published, v, memory_order_release);
}

uint64_t latest_read(latest_slot *s, void *out)
{
    /* Only the reader clears LATEST_FRESH, so a fresh middle stays fresh
     * until the exchange below; relaxed is enough to decide. */
    uint64_t m = atomic_load_explicit(&s->middle, memory_order_relaxed);
    if (m & LATEST_FRESH) {
        /* Acquire the writer's bytes; release our finished front buffer. */
        uint64_t mine = (uint64_t)s->front | (s->front_version << LATEST_VERSION_SHIFT);
        uint64_t old = atomic_exchange_explicit(&s->middle, mine, memory_order_acq_rel);
        s->front = (unsigned)(old & LATEST_INDEX_MASK);
        s->front_version = old >> LATEST_VERSION_SHIFT;
    }
    if (s->front_version == 0)
        return 0;
    memcpy(out, s->buf[s->front], s->size);
    return s->front_version;
}

uint64_t latest_version(const latest_slot *s)
{
    return atomic_load_explicit(&s->published, memory_order_acquire);
}

/* ---- byte ring ----
 * The record ring's indices, counted in bytes: head and tail only grow, the
 * bytes of [tail, head) are waiting, and a copy that crosses the end of the
 * buffer is split in two. */

struct byte_ring {
    alignas(RING_CACHE_LINE) size_t mask;   /* capacity - 1 */
    unsigned char *buf;

    /* Bytes written so far; only grows. Stored (release) by byte_ring_write
     * after the bytes are copied in; its partner is the acquire load in
     * byte_ring_read (and byte_ring_count). */
    alignas(RING_CACHE_LINE) _Atomic size_t head;
    size_t tail_cache;       /* producer's last view of tail */

    /* Bytes read so far; only grows. Stored (release) by byte_ring_read
     * after the bytes are copied out; its partner is the acquire load in
     * byte_ring_write, which lets the producer overwrite them. */
    alignas(RING_CACHE_LINE) _Atomic size_t tail;
    size_t head_cache;       /* consumer's last view of head */
};

byte_ring *byte_ring_create(size_t capacity)
{
    if (capacity == 0 || capacity > RING_MAX_CAPACITY)
        return NULL;
    size_t cap = 1;
    while (cap < capacity)
        cap <<= 1;
    byte_ring *b = ring_xalloc(sizeof *b);
    memset(b, 0, sizeof *b);
    b->mask = cap - 1;
    b->buf = ring_xalloc(cap);
    atomic_init(&b->head, 0);
    atomic_init(&b->tail, 0);
    return b;
}

void byte_ring_destroy(byte_ring *b)
{
    if (!b)
        return;
    free(b->buf);
    free(b);
}

size_t byte_ring_capacity(const byte_ring *b)
{
    return b->mask + 1;
}

size_t byte_ring_write(byte_ring *b, const void *data, size_t n)
{
    /* Only this thread stores head. */
    size_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
    size_t cap = b->mask + 1;
    if (cap - (head - b->tail_cache) < n)
        /* Acquire: the consumer's copy out of the bytes we may overwrite
         * happened before it published this tail. */
        b->tail_cache = atomic_load_explicit(&b->tail, memory_order_acquire);
    size_t room = cap - (head - b->tail_cache);
    if (n > room)
        n = room;
    if (!n)
        return 0;
    size_t at = head & b->mask, first = cap - at < n ? cap - at : n;
    memcpy(b->buf + at, data, first);
    memcpy(b->buf, (const unsigned char *)data + first, n - first);
    /* Release: the bytes are visible before head says they are there. */
    atomic_store_explicit(&b->head, head + n, memory_order_release);
    return n;
}

size_t byte_ring_read(byte_ring *b, void *out, size_t n)
{
    /* Only this thread stores tail. */
    size_t tail = atomic_load_explicit(&b->tail, memory_order_relaxed);
    if (b->head_cache - tail < n)
        /* Acquire: pairs with the release in byte_ring_write, so the bytes
         * up to head are complete. */
        b->head_cache = atomic_load_explicit(&b->head, memory_order_acquire);
    size_t have = b->head_cache - tail;
    if (n > have)
        n = have;
    if (!n)
        return 0;
    size_t cap = b->mask + 1, at = tail & b->mask, first = cap - at < n ? cap - at : n;
    memcpy(out, b->buf + at, first);
    memcpy((unsigned char *)out + first, b->buf, n - first);
    /* Release only after the copy: once tail moves the producer may
     * overwrite these bytes (STYLE "known traps"). */
    atomic_store_explicit(&b->tail, tail + n, memory_order_release);
    return n;
}

size_t byte_ring_count(const byte_ring *b)
{
    /* tail first, as ring_count: head only grows */
    size_t tail = atomic_load_explicit(&b->tail, memory_order_acquire);
    size_t head = atomic_load_explicit(&b->head, memory_order_acquire);
    size_t n = head - tail;
    return n > b->mask + 1 ? b->mask + 1 : n;
}
