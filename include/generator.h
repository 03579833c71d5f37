/* generator: the embedded corpus of DESIGN §9 as an infinite byte stream.
 * A stream position is the rng state at the start of the current document
 * plus the offset into it, so it can be saved and regenerated exactly. */
#ifndef GATELAB_GENERATOR_H
#define GATELAB_GENERATOR_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define GEN_DOC_MAX 16384   /* bound on one generated document (asserted) */

typedef struct {
    char *p;
    size_t len, cap;
} gen_text;

/* `start` regenerates the document in `doc`; `next` is the rng after it
 * (the following document's start); `pos` is the offset into `doc`. */
typedef struct {
    rng_state start, next;
    gen_text doc;
    size_t pos;
} gen_stream;

/* buf must hold GEN_DOC_MAX bytes and outlive the stream. */
void gen_stream_init(gen_stream *s, uint64_t stream_seed, char *buf);
/* Regenerates the document that begins at `start` and moves to offset pos. */
void gen_stream_restart(gen_stream *s, const rng_state *start, size_t pos, char *buf);
unsigned char gen_stream_byte(gen_stream *s);

#endif
