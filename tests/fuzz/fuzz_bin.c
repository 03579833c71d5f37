/* fuzz_bin: libFuzzer target for the llm.c .bin token reader (data_open and
 * data_load_tokens on a path ending in .bin; src/data.c). Run it with
 *   make fuzz FUZZ_TARGETS=fuzz_bin FUZZ_SECONDS=60
 * or reproduce one input from the repo root with
 *   build/fuzz/bin/fuzz_bin CRASH_FILE
 *
 * Each input is written to a per-process scratch directory twice: as is
 * (x.bin), and repaired (r.bin: magic, version and token count set to what
 * the bytes after the 1 KiB header hold), so the token path is reached on
 * every input and not only on the ones that guess the header. Two header
 * ints the reader ignores steer the target: byte 12 (int 3) gives the
 * context length T, byte 16 (int 4) how many times r.bin repeats the body
 * (1, 1, 2 or 48: past the reader's 32768-token chunks).
 *
 * An independent reading of the format decides what the reader must do:
 * open exactly the files whose header is right, whose size matches the
 * count and that hold at least 2*(T+1) tokens; then the vocabulary, the
 * largest token, every val window (the last W*T+1 tokens,
 * W = clamp((n/10 - 1)/T, 1, 64)) and the loaded tokens must equal the
 * file's, train batches must lie inside the tokens, and a cursor restored
 * must redraw the same batch. Otherwise: -1 and one line naming the path.
 * Never a crash, a leak or a hang. */
#include "data.h"

#include <math.h>

#include "fuzz_util.h"

#define HEADER_BYTES 1024
#define MAGIC 20240520
#define VAL_WINDOWS_MAX 64
#define BATCH 2

static int32_t le32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t token(const uint8_t *file, size_t i)
{
    const uint8_t *p = file + HEADER_BYTES + 2 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

/* The token count a well-formed file of this size holds, or -1. */
static long long expected_count(const uint8_t *file, size_t size)
{
    if (size < HEADER_BYTES || le32(file) != MAGIC || le32(file + 4) != 1)
        return -1;
    int32_t count = le32(file + 8);
    if (count <= 0 || (uint64_t)count * 2 != size - HEADER_BYTES)
        return -1;
    return count;
}

static void check_tokens_loaded(const char *path, const uint8_t *file, size_t size)
{
    long long want = expected_count(file, size);
    int32_t *tok = NULL;
    size_t n = 0;
    gl_error e = {{0}};
    int rc = data_load_tokens(path, &tok, &n, &e);
    FUZZ_CHECK((rc == 0) == (want >= 0), "data_load_tokens returned %d, expected count %lld (%s)",
               rc, want, e.msg);
    if (rc) {
        fuzz_check_error(&e, path);
        return;
    }
    FUZZ_CHECK(n == (size_t)want, "loaded %zu tokens, header says %lld", n, want);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((uint32_t)tok[i] == token(file, i), "token %zu is %d, file holds %u", i,
                   (int)tok[i], (unsigned)token(file, i));
    free(tok);
}

/* entropy: also check data_unigram_entropy (a pass over max token + 1
 * counts, most of an input's time when the ids are random: on x.bin only) */
static void check_open(const char *path, const uint8_t *file, size_t size, size_t T,
                       int entropy)
{
    long long count = expected_count(file, size);
    size_t n = count > 0 ? (size_t)count : 0;
    int should_open = count > 0 && n >= 2 * (T + 1);
    gl_error e = {{0}};
    data_source *d = data_open(path, T, 1, &e);
    FUZZ_CHECK((d != NULL) == should_open, "data_open %s with T=%zu (count %lld): %s",
               d ? "opened" : "refused", T, count, d ? "" : e.msg);
    if (!d) {
        fuzz_check_error(&e, path);
        return;
    }
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++)
        if (token(file, i) > mx)
            mx = token(file, i);
    FUZZ_CHECK(data_kind_of(d) == DATA_BIN, "kind %d", (int)data_kind_of(d));
    FUZZ_CHECK(data_max_token(d) == mx, "max token %u, file's %u", data_max_token(d), mx);
    FUZZ_CHECK(data_vocab(d) == (size_t)mx + 1, "vocab %zu, max token %u", data_vocab(d), mx);
    FUZZ_CHECK(data_describe(d) && strstr(data_describe(d), path), "describe: %s",
               data_describe(d) ? data_describe(d) : "(null)");

    size_t tenth = n / 10, w = tenth > 0 ? (tenth - 1) / T : 0;
    w = w < 1 ? 1 : w > VAL_WINDOWS_MAX ? VAL_WINDOWS_MAX : w;
    FUZZ_CHECK(data_val_windows(d) == w, "%zu val windows, expected %zu", data_val_windows(d), w);
    size_t v = n - (w * T + 1);
    int32_t *win = xmalloc(BATCH * (T + 1) * sizeof *win);
    int32_t *again = xmalloc(BATCH * (T + 1) * sizeof *again);
    for (size_t k = 0; k < w; k += w > 1 ? w - 1 : 1) {   /* the first and the last */
        data_val_window(d, k, win);
        for (size_t i = 0; i <= T; i++)
            FUZZ_CHECK((uint32_t)win[i] == token(file, v + k * T + i),
                       "val window %zu token %zu", k, i);
    }

    if (entropy) {
        double h = data_unigram_entropy(d);
        FUZZ_CHECK(isfinite(h) && h >= 0.0 && h <= log((double)mx + 1.0) + 1e-9, "entropy %g",
                   h);
    }

    data_cursor c;
    for (int b = 0; b < 3; b++) {
        data_get_cursor(d, &c);
        data_next_batch(d, win, BATCH);
        for (size_t i = 0; i < BATCH * (T + 1); i++)
            FUZZ_CHECK(win[i] >= 0 && (uint32_t)win[i] <= mx, "batch token %d", (int)win[i]);
    }
    gl_error ce = {{0}};
    FUZZ_CHECK(data_set_cursor(d, &c, &ce) == 0, "its own cursor refused: %s", ce.msg);
    data_next_batch(d, again, BATCH);
    FUZZ_CHECK(memcmp(win, again, BATCH * (T + 1) * sizeof *win) == 0,
               "a restored cursor drew another batch");
    free(win);
    free(again);
    data_close(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_scratch_init("fuzz_bin");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320];
    size_t T = size > 12 ? 1 + data[12] % 48 : 4;

    fuzz_path(path, sizeof path, "x.bin");
    fuzz_write_file(path, data, size);
    check_tokens_loaded(path, data, size);
    check_open(path, data, size, T, 1);

    /* repaired: the same bytes behind a header that matches them */
    static const size_t repeats[] = {1, 1, 2, 48};
    size_t rep = size > 16 ? repeats[data[16] & 3] : 1;
    size_t body = size > HEADER_BYTES ? (size - HEADER_BYTES) & ~(size_t)1 : 0;
    size_t rsize = HEADER_BYTES + rep * body;
    uint8_t *r = xcalloc(1, rsize);
    if (size)
        memcpy(r, data, size < HEADER_BYTES ? size : HEADER_BYTES);
    for (size_t k = 0; k < rep; k++)
        if (body)
            memcpy(r + HEADER_BYTES + k * body, data + HEADER_BYTES, body);
    put_le32(r, MAGIC);
    put_le32(r + 4, 1);
    put_le32(r + 8, (uint32_t)(rep * body / 2));
    fuzz_path(path, sizeof path, "r.bin");
    fuzz_write_file(path, r, rsize);
    check_tokens_loaded(path, r, rsize);
    check_open(path, r, rsize, T, 0);
    free(r);
    return 0;
}
