/* ring: a lock-free single-producer / single-consumer queue of fixed-size
 * records (C11 atomics, acquire/release; producer and consumer indices on
 * their own cache lines), a latest-value slot (triple buffer) for payloads
 * too large for a ring, such as heatmaps, and a byte ring (an SPSC stream of
 * bytes) that carries such payloads beside a record ring when none may be
 * lost. Exactly one thread pushes (writes) and exactly one thread pops
 * (reads); neither ever blocks. */
#ifndef GATELAB_RING_H
#define GATELAB_RING_H

#include <stddef.h>
#include <stdint.h>

typedef struct ring ring;

/* capacity is rounded up to a power of two; NULL if it is 0 or too large. */
ring *ring_create(size_t capacity, size_t record_size);
void ring_destroy(ring *r);
size_t ring_capacity(const ring *r);

/* Producer side. Returns 0, or -1 (nothing written) when the ring is full. */
int ring_push(ring *r, const void *record);
/* Consumer side. Returns 0, or -1 when the ring is empty. */
int ring_pop(ring *r, void *record);
/* Records waiting: a lower bound for the consumer (more may arrive), an
 * upper bound for the producer (more may be taken). */
size_t ring_count(const ring *r);

/* Latest-value slot: the writer overwrites, the reader copies the newest
 * complete value. One writer thread, one reader thread. Buffers change hands
 * by atomic exchange only, so no byte is ever read while it is written. */
typedef struct latest_slot latest_slot;

latest_slot *latest_create(size_t size);
void latest_destroy(latest_slot *s);
/* Writer: publishes a copy of value[size]. */
void latest_write(latest_slot *s, const void *value);
/* Reader: copies the newest value into out[size] and returns its version
 * (0: nothing written yet, out untouched). Never sees a torn value. */
uint64_t latest_read(latest_slot *s, void *out);
/* Version of the newest published value (0: none yet), for either side. */
uint64_t latest_version(const latest_slot *s);

/* Byte ring: the SPSC queue of bytes. A write or read moves as many bytes
 * as there are room or data for and says how many, so a payload larger than
 * the ring passes in pieces (the caller waits and retries). */
typedef struct byte_ring byte_ring;

/* capacity is rounded up to a power of two; NULL if it is 0 or too large. */
byte_ring *byte_ring_create(size_t capacity);
void byte_ring_destroy(byte_ring *b);
size_t byte_ring_capacity(const byte_ring *b);
/* Producer side: writes min(n, room) bytes of data; returns how many. */
size_t byte_ring_write(byte_ring *b, const void *data, size_t n);
/* Consumer side: reads min(n, waiting) bytes into out; returns how many. */
size_t byte_ring_read(byte_ring *b, void *out, size_t n);
/* Bytes waiting: a lower bound for the consumer, an upper bound for the producer. */
size_t byte_ring_count(const byte_ring *b);

#endif
