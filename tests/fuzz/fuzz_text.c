/* fuzz_text: libFuzzer target for the text loader of src/data.c — a UTF-8
 * text file, and a directory of text files (its non-hidden regular files in
 * strcmp order, concatenated). Run it with
 *   make fuzz FUZZ_TARGETS=fuzz_text FUZZ_SECONDS=60
 * or reproduce one input from the repo root with
 *   build/fuzz/bin/fuzz_text CRASH_FILE
 *
 * Input: byte 0 chooses the context length and what else the directory
 * holds (bits below); the rest is split at each 0x1e byte (ASCII record
 * separator) into at most MAX_FILES files "00".."07" of a directory in a
 * per-process scratch directory, and written whole as one file all.txt
 * beside it (bit OPT_NO_FILES leaves the directory without them). data_open
 * and data_load_tokens run on both paths.
 *
 * An independent reading decides the outcome: the loader must open exactly
 * the inputs that hold something, have no NUL byte in any file's first
 * 4 KiB and hold at least 2*(T+1) bytes; the tokens loaded must be the
 * expected bytes in order; val windows, train batches and a restored cursor
 * are checked as in fuzz_bin. Otherwise: -1 and one line. Never a crash, a
 * leak or a hang. */
#include "data.h"

#include <math.h>
#include <unistd.h>

#include "fuzz_util.h"

#define MAX_FILES 8
#define SEPARATOR 0x1e
#define NUL_PROBE 4096
#define VAL_WINDOWS_MAX 64
#define BATCH 2

/* byte 0 */
#define OPT_T_MASK 0x03     /* T = 1, 2, 5 or 16 */
#define OPT_HIDDEN 0x04     /* a ".hidden" file the loader must skip */
#define OPT_SUBDIR 0x08     /* a subdirectory (with a file) it must skip */
#define OPT_LINK 0x10       /* "zz": a symlink to file 00, read like a file */
#define OPT_REVERSE 0x20    /* chunk i goes to file 07-i: order comes from the names */
#define OPT_BIN_DIR 0x40    /* the directory is named d.bin: still text */
#define OPT_NO_FILES 0x80   /* the chunks are not written: no regular file to read */

typedef struct {
    const uint8_t *p;
    size_t n;
} chunk;

static int has_nul(const chunk *c)
{
    return memchr(c->p, 0, c->n < NUL_PROBE ? c->n : NUL_PROBE) != NULL;
}

/* The expected stream of `files` (in load order) into want; 1 when the
 * loader must accept it (not empty, no NUL in any file's probe). */
static int expected(const chunk *files, size_t nfiles, uint8_t *want, size_t *n)
{
    int ok = 1;
    *n = 0;
    for (size_t i = 0; i < nfiles; i++) {
        if (files[i].n)
            memcpy(want + *n, files[i].p, files[i].n);
        *n += files[i].n;
        ok &= !has_nul(&files[i]);
    }
    return ok && *n > 0;
}

static void check_load(const char *path, int ok, const uint8_t *want, size_t n)
{
    int32_t *tok = NULL;
    size_t count = 0;
    gl_error e = {{0}};
    int rc = data_load_tokens(path, &tok, &count, &e);
    FUZZ_CHECK((rc == 0) == ok, "data_load_tokens %s returned %d (%s)", path, rc, e.msg);
    if (rc) {
        fuzz_check_error(&e, NULL);
        return;
    }
    FUZZ_CHECK(count == n, "loaded %zu tokens, expected %zu", count, n);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(tok[i] == want[i], "token %zu is %d, expected %u", i, (int)tok[i],
                   (unsigned)want[i]);
    free(tok);
}

static void check_open(const char *path, int ok, const uint8_t *want, size_t n, size_t T)
{
    gl_error e = {{0}};
    data_source *d = data_open(path, T, 7, &e);
    int should = ok && n >= 2 * (T + 1);
    FUZZ_CHECK((d != NULL) == should, "data_open %s %s with T=%zu, %zu bytes: %s", path,
               d ? "opened" : "refused", T, n, d ? "" : e.msg);
    if (!d) {
        fuzz_check_error(&e, NULL);
        return;
    }
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++)
        mx = want[i] > mx ? want[i] : mx;
    FUZZ_CHECK(data_kind_of(d) == DATA_TEXT, "kind %d", (int)data_kind_of(d));
    FUZZ_CHECK(data_vocab(d) == 256, "vocab %zu", data_vocab(d));
    FUZZ_CHECK(data_max_token(d) == mx, "max token %u, expected %u", data_max_token(d), mx);

    size_t tenth = n / 10, w = tenth > 0 ? (tenth - 1) / T : 0;
    w = w < 1 ? 1 : w > VAL_WINDOWS_MAX ? VAL_WINDOWS_MAX : w;
    FUZZ_CHECK(data_val_windows(d) == w, "%zu val windows, expected %zu", data_val_windows(d), w);
    size_t v = n - (w * T + 1);
    int32_t *win = xmalloc(BATCH * (T + 1) * sizeof *win);
    int32_t *again = xmalloc(BATCH * (T + 1) * sizeof *again);
    for (size_t k = 0; k < w; k++) {
        data_val_window(d, k, win);
        for (size_t i = 0; i <= T; i++)
            FUZZ_CHECK(win[i] == want[v + k * T + i], "val window %zu token %zu", k, i);
    }
    double h = data_unigram_entropy(d);
    FUZZ_CHECK(isfinite(h) && h >= 0.0 && h <= log(256.0) + 1e-9, "entropy %g", h);

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
    fuzz_scratch_init("fuzz_text");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t Ts[] = {1, 2, 5, 16};
    uint8_t opt = size ? data[0] : 0;
    const uint8_t *body = size ? data + 1 : data;
    size_t len = size ? size - 1 : 0;
    size_t T = Ts[opt & OPT_T_MASK];
    char dir[320], path[400];
    uint8_t *want = xmalloc(len + 1);
    size_t n;
    fuzz_scratch_clear();

    /* one file: the whole body */
    chunk whole = {body, len};
    fuzz_path(path, sizeof path, "all.txt");
    fuzz_write_file(path, body, len);
    int ok = expected(&whole, 1, want, &n);
    check_load(path, ok, want, n);
    check_open(path, ok, want, n, T);

    /* the directory: the body split at each separator */
    chunk parts[MAX_FILES];
    size_t nparts = 0, start = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || (body[i] == SEPARATOR && nparts < MAX_FILES - 1)) {
            parts[nparts++] = (chunk){body + start, i - start};
            start = i + 1;
        }
    fuzz_path(dir, sizeof dir, opt & OPT_BIN_DIR ? "d.bin" : "d");
    FUZZ_CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    chunk order[MAX_FILES + 1];   /* the files in strcmp order of their names */
    if (opt & OPT_NO_FILES)
        nparts = 0;
    for (size_t i = 0; i < nparts; i++) {
        size_t slot = opt & OPT_REVERSE ? MAX_FILES - 1 - i : i;
        snprintf(path, sizeof path, "%s/%02zu", dir, slot);
        fuzz_write_file(path, parts[i].p, parts[i].n);
        order[opt & OPT_REVERSE ? nparts - 1 - i : i] = parts[i];
    }
    size_t nfiles = nparts;
    if (opt & OPT_HIDDEN) {
        snprintf(path, sizeof path, "%s/.hidden", dir);
        fuzz_write_file(path, (const uint8_t *)"\0skip me", 8);
    }
    if (opt & OPT_SUBDIR) {
        snprintf(path, sizeof path, "%s/sub", dir);
        FUZZ_CHECK(mkdir(path, 0700) == 0, "mkdir %s", path);
        snprintf(path, sizeof path, "%s/sub/inner.txt", dir);
        fuzz_write_file(path, (const uint8_t *)"\0not read", 9);
    }
    if (opt & OPT_LINK) {
        size_t first = opt & OPT_REVERSE ? MAX_FILES - 1 : 0;
        char target[8];
        snprintf(target, sizeof target, "%02zu", first);
        snprintf(path, sizeof path, "%s/zz", dir);
        FUZZ_CHECK(symlink(target, path) == 0, "symlink %s", path);
        if (nparts)   /* else the link dangles and is skipped */
            order[nfiles++] = parts[0];
    }
    uint8_t *dwant = xmalloc(2 * len + 1);
    ok = expected(order, nfiles, dwant, &n);
    check_load(dir, ok, dwant, n);
    check_open(dir, ok, dwant, n, T);
    free(dwant);
    free(want);
    return 0;
}
