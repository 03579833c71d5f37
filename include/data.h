/* data: token sources for training and evaluation. Three kinds: the embedded
 * generator (infinite, deterministic by seed), UTF-8 text (a file, or a
 * directory's regular files in sorted order; bytes are tokens, V = 256) and
 * llm.c-style .bin token files (256 int32 header, magic 20240520, uint16 tokens).
 * A source yields batches of B windows of T+1 tokens (inputs = first T,
 * targets = last T) from its train split, and a fixed held-out val split. */
#ifndef GATELAB_DATA_H
#define GATELAB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "rng.h"

typedef enum {
    DATA_GENERATOR,
    DATA_TEXT,
    DATA_BIN,
} data_kind;

/* Everything needed to continue the train stream exactly where it was
 * (checkpoints store it). */
typedef struct {
    rng_state rng;      /* window sampling (files) or document generation (generator) */
    uint64_t position;  /* generator: tokens already emitted in the pending buffer */
    uint64_t batches;   /* train batches drawn so far */
} data_cursor;

typedef struct data_source data_source;

/* path NULL means the embedded generator. Fails (with a one-line message
 * naming the path and the problem) on missing/empty/unreadable input, a bad
 * .bin header, a token count that does not match the file size, or too few
 * tokens for one window of T+1 plus the val split. */
data_source *data_open(const char *path, size_t T, uint64_t seed, gl_error *err);
void data_close(data_source *d);

data_kind data_kind_of(const data_source *d);
/* Vocabulary size implied by the data: 256 for bytes and the generator, and
 * for .bin files the largest token id + 1 (callers may choose a larger V). */
size_t data_vocab(const data_source *d);
/* Largest token id in the whole source (train and val). */
uint32_t data_max_token(const data_source *d);
/* Human-readable description for progress lines and checkpoint metadata. */
const char *data_describe(const data_source *d);

/* Fills tokens[B*(T+1)] with B training windows; no allocation. */
void data_next_batch(data_source *d, int32_t *tokens, size_t B);
/* windows [B][T+1] -> inputs [B][T] (each window's first T tokens) and
 * targets [B][T] (its last T: the next token of each input); targets NULL:
 * the inputs only (distillation predicts no tokens) */
void data_split_windows(const int32_t *windows, int32_t *inputs, int32_t *targets, size_t B,
                        size_t T);

/* The val split: a fixed list of windows of T+1 tokens, the same on every
 * call and independent of the seed for the generator. */
size_t data_val_windows(const data_source *d);
void data_val_window(const data_source *d, size_t w, int32_t *tokens);

/* Unigram entropy of the train split in nats per token (estimated on a
 * fixed sample for the generator). */
double data_unigram_entropy(const data_source *d);

void data_get_cursor(const data_source *d, data_cursor *c);
/* -1 (message names data_position) when the cursor cannot be in this data. */
int data_set_cursor(data_source *d, const data_cursor *c, gl_error *err);

/* Reads a whole token file for `gatelab eval`: text/dir as bytes or .bin as
 * uint16. Caller frees *tokens. */
int data_load_tokens(const char *path, int32_t **tokens, size_t *count, gl_error *err);

/* The embedded generator's text, for inspection and tests: writes up to n
 * bytes of the document stream for seed into buf and returns bytes written. */
size_t data_generator_sample(uint64_t seed, char *buf, size_t n);

#endif
