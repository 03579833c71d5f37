/* data: owns every token source gatelab trains and evaluates on — the
 * embedded document generator, byte-level text (a file or a directory) and
 * llm.c-style .bin token files — together with their train/val split, the
 * train cursor that checkpoints store, and the loader behind `gatelab eval`.
 *
 * Windows. Every window is T+1 tokens (inputs = first T, targets = last T).
 * Consecutive windows of a stream share one boundary token: window w is
 * tokens [w*T, w*T + T].
 *
 * Generator (path NULL). The infinite document stream of generator.c,
 * seeded with rng_derive(seed, TAG_TRAIN).
 * Train batches are consecutive windows of that stream (the same bytes
 * data_generator_sample returns), read from a one-document buffer
 * (GEN_DOC_MAX bytes, allocated by data_open; batches allocate nothing). The
 * cursor is the rng state at the start of the document being read plus the
 * byte offset into it, so set_cursor just regenerates that document. The
 * val split is the first DATA_VAL_WINDOWS*T + 1 bytes of a second stream
 * whose seed is a constant (rng_derive(VAL_SEED, TAG_VAL)): every run shares
 * it, and it never equals the train stream. Unigram entropy is measured on
 * the first 1 MiB of the train stream.
 *
 * Text and .bin. Of n tokens, the val split is the last W*T + 1 tokens with
 *     W = clamp((n/10 - 1) / T, 1, DATA_VAL_WINDOWS),
 * i.e. about the last 10% in whole windows, at least one window and at most
 * 64 (larger files keep more for training); val window w is
 * [v + w*T, v + w*T + T] where v = n - (W*T + 1). The train split is
 * [0, v) and must hold at least T+1 tokens, so a file needs n >= 2*(T+1).
 * Train windows start at uniform offsets in the train split drawn from the
 * cursor rng (seeded from rng_derive(seed, TAG_TRAIN)).
 *
 * A path ending in ".bin" is a token file; anything else is text (bytes are
 * tokens, V = 256). A directory is text: its non-hidden regular files, in
 * strcmp order, concatenated. A text file with a NUL byte in its first 4 KiB
 * is rejected as not text. */
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "generator.h"

#define DATA_VAL_WINDOWS 64
#define TAG_TRAIN 0x747261696eULL  /* "train" */
#define TAG_VAL 0x76616cULL        /* "val" */
#define VAL_SEED 0x7661ULL         /* fixed: the generator's val set ignores the user seed */
#define ENTROPY_SAMPLE (1u << 20)  /* generator bytes used for the unigram entropy */
#define NUL_PROBE 4096             /* bytes of a text file checked for NUL */
#define BIN_MAGIC 20240520
#define BIN_VERSION 1
#define BIN_HEADER_INTS 256
#define BIN_HEADER_BYTES (BIN_HEADER_INTS * 4)

size_t data_generator_sample(uint64_t seed, char *buf, size_t n)
{
    char *docbuf = xmalloc(GEN_DOC_MAX);
    gen_stream s;
    gen_stream_init(&s, rng_derive(seed, TAG_TRAIN), docbuf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)gen_stream_byte(&s);
    free(docbuf);
    return n;
}

/* ---------------------------------------------------------------------------
 * The source object.
 * ------------------------------------------------------------------------- */

struct data_source {
    data_kind kind;
    size_t T;
    char *desc;
    /* Stored tokens: text and the generator's val stream use u8, .bin u16. */
    uint8_t *u8;
    uint16_t *u16;
    size_t n;
    size_t train_len;    /* train split is [0, train_len) (files only) */
    size_t val_start;    /* val window w is [val_start + w*T, ... + T] */
    size_t val_windows;
    uint32_t max_token;
    uint64_t seed;
    data_cursor cur;     /* files: sampling rng; generator: mirrors `gen` */
    gen_stream gen;      /* generator only */
    char *docbuf;        /* generator only: GEN_DOC_MAX bytes behind gen.doc */
};

static uint32_t tok_at(const data_source *d, size_t i)
{
    return d->u16 ? d->u16[i] : d->u8[i];
}

/* ---------------------------------------------------------------------------
 * Loading files.
 * ------------------------------------------------------------------------- */

typedef struct {
    data_kind kind;
    uint8_t *u8;
    uint16_t *u16;
    size_t n;
} token_store;

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int fail_errno(gl_error *err, const char *path, const char *what)
{
    return gl_fail(err, "%s: %s: %s", path, what, strerror(errno));
}

/* Reads exactly `size` bytes of the text file at path into dst (which may be
 * NULL when size is 0) and rejects NUL bytes in the first NUL_PROBE. */
static int read_text(const char *path, uint8_t *dst, size_t size, gl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail_errno(err, path, "cannot open");
    size_t got = size ? fread(dst, 1, size, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return gl_fail(err, "%s: read error", path);
    if (got != size)
        return gl_fail(err, "%s: file shrank while reading (%zu of %zu bytes)", path, got, size);
    size_t probe = size < NUL_PROBE ? size : NUL_PROBE;
    const uint8_t *nul = probe ? memchr(dst, 0, probe) : NULL;
    if (nul)
        return gl_fail(err, "%s: not a text file (NUL byte at offset %zu); token files need the .bin extension",
                       path, (size_t)(nul - dst));
    return 0;
}

static int load_text_file(const char *path, size_t size, token_store *ts, gl_error *err)
{
    if (size == 0)
        return gl_fail(err, "%s: empty file", path);
    ts->kind = DATA_TEXT;
    ts->u8 = xmalloc(size);
    ts->n = size;
    if (read_text(path, ts->u8, size, err)) {
        free(ts->u8);
        ts->u8 = NULL;
        return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = xmalloc(a + (size_t)slash + b + 1);
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + (size_t)slash, name, b + 1);
    return p;
}

/* Non-hidden regular files of dir in strcmp order, concatenated as text. */
static int load_text_dir(const char *dir, token_store *ts, gl_error *err)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return fail_errno(err, dir, "cannot open");
    char **paths = NULL;
    size_t *sizes = NULL;
    size_t count = 0, cap = 0, total = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = join_path(dir, de->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            paths = gl_grow(paths, count, cap, sizeof *paths);
        }
        paths[count++] = p;
    }
    closedir(dp);
    if (count == 0) {
        rc = gl_fail(err, "%s: no regular files", dir);
        goto done;
    }
    qsort(paths, count, sizeof *paths, cmp_str);
    sizes = xmalloc(count * sizeof *sizes);
    for (size_t i = 0; i < count && rc == 0; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            rc = fail_errno(err, paths[i], "cannot open");
        else
            total += sizes[i] = (size_t)st.st_size;
    }
    if (rc == 0 && total == 0)
        rc = gl_fail(err, "%s: empty (all %zu files are empty)", dir, count);
    if (rc == 0) {
        ts->kind = DATA_TEXT;
        ts->u8 = xmalloc(total);
        ts->n = total;
        size_t off = 0;
        for (size_t i = 0; i < count && rc == 0; i++) {
            rc = read_text(paths[i], ts->u8 + off, sizes[i], err);
            off += sizes[i];
        }
        if (rc) {
            free(ts->u8);
            ts->u8 = NULL;
        }
    }
done:
    for (size_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
    free(sizes);
    return rc;
}

static int32_t le32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* llm.c token file: 256 little-endian int32 (magic, version, token count,
 * unused), then count little-endian uint16 tokens. */
static int load_bin(const char *path, token_store *ts, gl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail_errno(err, path, "cannot open");
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return fail_errno(err, path, "cannot stat");
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        fclose(f);
        return gl_fail(err, "%s: empty file", path);
    }
    uint8_t header[BIN_HEADER_BYTES];
    if (size < BIN_HEADER_BYTES || fread(header, 1, BIN_HEADER_BYTES, f) != BIN_HEADER_BYTES) {
        fclose(f);
        return gl_fail(err, "%s: truncated header (%zu bytes, need %d)", path, size, BIN_HEADER_BYTES);
    }
    int32_t magic = le32(header), version = le32(header + 4), count = le32(header + 8);
    int rc = 0;
    size_t have = size - BIN_HEADER_BYTES;
    if (magic != BIN_MAGIC)
        rc = gl_fail(err, "%s: bad magic %d (expected %d)", path, (int)magic, BIN_MAGIC);
    else if (version != BIN_VERSION)
        rc = gl_fail(err, "%s: unsupported version %d (expected %d: uint16 tokens)", path,
                     (int)version, BIN_VERSION);
    else if (count < 0)
        rc = gl_fail(err, "%s: bad token count %d in header", path, (int)count);
    else if (count == 0)
        rc = gl_fail(err, "%s: empty (header says 0 tokens)", path);
    else if ((uint64_t)count * 2 != have)
        rc = gl_fail(err, "%s: header says %d tokens (%llu bytes) but the file holds %zu bytes of tokens",
                     path, (int)count, (unsigned long long)count * 2, have);
    if (rc) {
        fclose(f);
        return rc;
    }
    size_t n = (size_t)count;
    uint16_t *tok = xmalloc(n * sizeof *tok);
    uint8_t chunk[65536];
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < sizeof chunk / 2 ? n - done : sizeof chunk / 2;
        if (fread(chunk, 2, want, f) != want) {
            free(tok);
            fclose(f);
            return gl_fail(err, "%s: read error after %zu of %zu tokens", path, done, n);
        }
        for (size_t i = 0; i < want; i++)
            tok[done + i] = (uint16_t)(chunk[2 * i] | chunk[2 * i + 1] << 8);
        done += want;
    }
    fclose(f);
    ts->kind = DATA_BIN;
    ts->u16 = tok;
    ts->n = n;
    return 0;
}

static int load_store(const char *path, token_store *ts, gl_error *err)
{
    memset(ts, 0, sizeof *ts);
    struct stat st;
    if (stat(path, &st) != 0)
        return fail_errno(err, path, "cannot open");
    if (S_ISDIR(st.st_mode))
        return load_text_dir(path, ts, err);
    if (!S_ISREG(st.st_mode))
        return gl_fail(err, "%s: not a regular file or directory", path);
    if (has_suffix(path, ".bin"))
        return load_bin(path, ts, err);
    return load_text_file(path, (size_t)st.st_size, ts, err);
}

int data_load_tokens(const char *path, int32_t **tokens, size_t *count, gl_error *err)
{
    token_store ts;
    if (load_store(path, &ts, err))
        return -1;
    int32_t *out = xmalloc(ts.n * sizeof *out);
    for (size_t i = 0; i < ts.n; i++)
        out[i] = ts.u16 ? ts.u16[i] : ts.u8[i];
    free(ts.u8);
    free(ts.u16);
    *tokens = out;
    *count = ts.n;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Opening, batches, val, cursor.
 * ------------------------------------------------------------------------- */

static char *format_desc(const char *kind, const char *path, size_t n)
{
    size_t len = strlen(kind) + strlen(path) + 64;
    char *s = xmalloc(len);
    snprintf(s, len, "%s:%s (%zu tokens)", kind, path, n);
    return s;
}

static data_source *open_generator(data_source *d)
{
    d->kind = DATA_GENERATOR;
    d->max_token = 127;  /* ASCII only: an upper bound, not measured */
    char desc[64];
    snprintf(desc, sizeof desc, "generator(seed=%llu)", (unsigned long long)d->seed);
    d->desc = xstrdup(desc);

    /* The fixed val stream. */
    d->docbuf = xmalloc(GEN_DOC_MAX);
    d->val_windows = DATA_VAL_WINDOWS;
    d->n = d->val_windows * d->T + 1;
    d->u8 = xmalloc(d->n);
    gen_stream vs;
    gen_stream_init(&vs, rng_derive(VAL_SEED, TAG_VAL), d->docbuf);
    for (size_t i = 0; i < d->n; i++)
        d->u8[i] = gen_stream_byte(&vs);

    /* The train stream, reusing the buffer. */
    gen_stream_init(&d->gen, rng_derive(d->seed, TAG_TRAIN), d->docbuf);
    d->cur.rng = d->gen.start;
    d->cur.position = 0;
    d->cur.batches = 0;
    return d;
}

data_source *data_open(const char *path, size_t T, uint64_t seed, gl_error *err)
{
    if (T == 0) {
        gl_fail(err, "%s: context length T must be at least 1", path ? path : "generator");
        return NULL;
    }
    data_source *d = xcalloc(1, sizeof *d);
    d->T = T;
    d->seed = seed;
    if (!path)
        return open_generator(d);

    token_store ts;
    if (load_store(path, &ts, err)) {
        free(d);
        return NULL;
    }
    d->kind = ts.kind;
    d->u8 = ts.u8;
    d->u16 = ts.u16;
    d->n = ts.n;
    size_t need = 2 * (T + 1);
    if (d->n < need) {
        gl_fail(err, "%s: %zu tokens, need at least %zu for T=%zu", path, d->n, need, T);
        data_close(d);
        return NULL;
    }
    size_t tenth = d->n / 10;
    size_t w = tenth > 0 ? (tenth - 1) / T : 0;
    if (w < 1)
        w = 1;
    if (w > DATA_VAL_WINDOWS)
        w = DATA_VAL_WINDOWS;
    d->val_windows = w;
    d->val_start = d->n - (w * T + 1);
    d->train_len = d->val_start;
    GL_ASSERT(d->train_len >= T + 1);

    uint32_t mx = 0;
    for (size_t i = 0; i < d->n; i++) {
        uint32_t t = tok_at(d, i);
        if (t > mx)
            mx = t;
    }
    d->max_token = mx;
    d->desc = format_desc(d->kind == DATA_BIN ? "bin" : "text", path, d->n);
    rng_seed(&d->cur.rng, rng_derive(seed, TAG_TRAIN));
    return d;
}

void data_close(data_source *d)
{
    if (!d)
        return;
    free(d->desc);
    free(d->u8);
    free(d->u16);
    free(d->docbuf);
    free(d);
}

data_kind data_kind_of(const data_source *d)
{
    return d->kind;
}

/* max token id + 1, not rounded: a GPT-2 .bin gives 50257, as DESIGN.md counts
 * parameters; callers that want a padded V choose it themselves. */
size_t data_vocab(const data_source *d)
{
    return d->kind == DATA_BIN ? (size_t)d->max_token + 1 : 256;
}

uint32_t data_max_token(const data_source *d)
{
    return d->max_token;
}

const char *data_describe(const data_source *d)
{
    return d->desc;
}

void data_next_batch(data_source *d, int32_t *tokens, size_t B)
{
    size_t T = d->T;
    for (size_t b = 0; b < B; b++) {
        int32_t *w = tokens + b * (T + 1);
        if (d->kind == DATA_GENERATOR) {
            for (size_t i = 0; i <= T; i++)
                w[i] = gen_stream_byte(&d->gen);
            d->gen.pos--;  /* the next window starts on this one's last token */
        } else {
            size_t off = (size_t)rng_below(&d->cur.rng, d->train_len - T);
            for (size_t i = 0; i <= T; i++)
                w[i] = (int32_t)tok_at(d, off + i);
        }
    }
    if (d->kind == DATA_GENERATOR) {
        d->cur.rng = d->gen.start;
        d->cur.position = d->gen.pos;
    }
    d->cur.batches++;
}

void data_split_windows(const int32_t *windows, int32_t *inputs, int32_t *targets, size_t B,
                        size_t T)
{
    for (size_t b = 0; b < B; b++) {
        memcpy(inputs + b * T, windows + b * (T + 1), T * sizeof(int32_t));
        if (targets)
            memcpy(targets + b * T, windows + b * (T + 1) + 1, T * sizeof(int32_t));
    }
}

size_t data_val_windows(const data_source *d)
{
    return d->val_windows;
}

void data_val_window(const data_source *d, size_t w, int32_t *tokens)
{
    GL_ASSERT(w < d->val_windows);
    size_t off = d->val_start + w * d->T;
    for (size_t i = 0; i <= d->T; i++)
        tokens[i] = (int32_t)tok_at(d, off + i);
}

static double entropy_of(const uint64_t *counts, size_t k, uint64_t total)
{
    double h = 0.0;
    for (size_t i = 0; i < k; i++) {
        if (counts[i]) {
            double p = (double)counts[i] / (double)total;
            h -= p * log(p);
        }
    }
    return h;
}

double data_unigram_entropy(const data_source *d)
{
    if (d->kind == DATA_GENERATOR) {
        uint64_t counts[256] = {0};
        char *buf = xmalloc(GEN_DOC_MAX);
        gen_stream s;
        gen_stream_init(&s, rng_derive(d->seed, TAG_TRAIN), buf);
        for (size_t i = 0; i < ENTROPY_SAMPLE; i++)
            counts[gen_stream_byte(&s)]++;
        free(buf);
        return entropy_of(counts, 256, ENTROPY_SAMPLE);
    }
    size_t k = (size_t)d->max_token + 1;
    uint64_t *counts = xcalloc(k, sizeof *counts);
    for (size_t i = 0; i < d->train_len; i++)
        counts[tok_at(d, i)]++;
    double h = entropy_of(counts, k, d->train_len);
    free(counts);
    return h;
}

void data_get_cursor(const data_source *d, data_cursor *c)
{
    *c = d->cur;
}

/* For the generator this regenerates the document the cursor points into; a
 * position past its end (a corrupt or edited checkpoint) is refused. */
int data_set_cursor(data_source *d, const data_cursor *c, gl_error *err)
{
    d->cur = *c;
    if (d->kind == DATA_GENERATOR) {
        gen_stream_restart(&d->gen, &c->rng, (size_t)c->position, d->docbuf);
        d->cur.position = d->gen.pos;
        if (d->gen.pos != c->position)
            return gl_fail(err, "data_position %llu is beyond the data (the document there has "
                                "%zu bytes)", (unsigned long long)c->position, d->gen.pos);
    } else if (c->position != 0) {
        return gl_fail(err, "data_position %llu is beyond the data (a file keeps 0)",
                       (unsigned long long)c->position);
    }
    return 0;
}
