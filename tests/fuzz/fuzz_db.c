/* fuzz_db: libFuzzer target for the session database opener on a corrupted
 * file: store_open (store/store.c) in STORE_EXISTING and STORE_BROWSE
 * modes, then, when it opened, the reads behind ls, show and resume. Run it
 * from the repo root with
 *   make fuzz FUZZ_TARGETS=fuzz_db FUZZ_SECONDS=60
 * or reproduce one input with
 *   build/fuzz/bin/fuzz_db CRASH_FILE
 *
 * Two kinds of input, told apart by their first 16 bytes:
 *   raw    an input that starts with "SQLite format 3\0" is the file;
 *   patch  anything else is a list of patches applied to a copy of a real
 *          gatelab database (FUZZ_DB_SEED, default
 *          tests/fuzz/corpus/fuzz_db/seed.db), so the fuzzer starts past
 *          the header and schema checks. A patch is 3 bytes of offset
 *          (little-endian, taken modulo the file's size), 1 byte of length
 *          n and n bytes written there (clipped at the end of the file);
 *          n = 0 truncates the file at the offset.
 * Each mode opens a fresh copy in a per-process scratch directory (no -wal
 * or -shm left from the one before). A refusal must leave a non-empty,
 * one-line message; every read must return a result or a message (and
 * store_last_session a session id >= 0, or -1). Never a crash (an assert is one), a leak or a hang.
 *
 * STORE_BROWSE opens the copy with its mode set to 0444, so that store_open
 * takes its read-only path. Root can write any file (access(W_OK) says
 * yes), so there STORE_BROWSE would repeat the STORE_EXISTING pass on the
 * same bytes exactly: as root the target skips it and fuzzes twice as fast
 * (run as another user to fuzz the read-only path). */
#include "store.h"

#include <unistd.h>

#include "fuzz_util.h"

#define MAX_PATCHES 64

static uint8_t *seed_db;
static size_t seed_size;
static int as_root;

static uint8_t *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            uint8_t *nb = xmalloc(cap);
            if (n)
                memcpy(nb, buf, n);
            free(buf);
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *size = n;
    return buf;
}

static void free_seed(void)
{
    free(seed_db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_scratch_init("fuzz_db");
    const char *path = getenv("FUZZ_DB_SEED");
    if (!path || !*path)
        path = "tests/fuzz/corpus/fuzz_db/seed.db";
    seed_db = read_whole(path, &seed_size);
    if (!seed_db || seed_size < 100) {
        fprintf(stderr, "fuzz_db: no seed database at %s (run from the repo root or set "
                        "FUZZ_DB_SEED)\n", path);
        exit(1);
    }
    atexit(free_seed);
    as_root = geteuid() == 0;
    return 0;
}

/* The seed with the input's patches applied; *size is the result's size. */
static uint8_t *patched(const uint8_t *data, size_t size, size_t *out_size)
{
    uint8_t *f = xmalloc(seed_size);
    memcpy(f, seed_db, seed_size);
    size_t n = seed_size;
    for (int p = 0; p < MAX_PATCHES && size >= 4 && n > 0; p++) {
        size_t off = ((size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16) % n;
        size_t len = data[3];
        data += 4;
        size -= 4;
        if (len == 0) {
            n = off;
            continue;
        }
        if (len > size)
            len = size;
        size_t fit = n - off < len ? n - off : len;
        memcpy(f + off, data, fit);
        data += len;
        size -= len;
    }
    *out_size = n;
    return f;
}

static int on_run(void *ctx, const store_run_row *row)
{
    FUZZ_CHECK(memchr(row->name, '\0', sizeof row->name) && memchr(row->mode, '\0', sizeof row->mode)
                   && memchr(row->status, '\0', sizeof row->status),
               "unterminated text in a run row");
    ++*(size_t *)ctx;
    return 0;
}

/* row counters for the other listings, one per row type */
#define COUNTER(name, row_type)                      \
    static int name(void *ctx, const row_type *row) \
    {                                                \
        (void)row;                                   \
        ++*(size_t *)ctx;                            \
        return 0;                                    \
    }
COUNTER(on_event, store_event_row)
COUNTER(on_segment, store_segment_row)
COUNTER(on_summary, store_summary_row)
COUNTER(on_checkpoint, store_checkpoint_row)
COUNTER(on_metric, store_metric_row)

/* A read's status: a failure must have left a message; the message is then
 * cleared, so the next failure cannot pass on this one's. */
static int checked(int rc, gl_error *e)
{
    if (rc)
        fuzz_check_error(e, NULL);
    e->msg[0] = '\0';
    return rc;
}

static void read_run(store *s, int64_t id)
{
    store_run_row row;
    gl_error e = {{0}};
    if (checked(store_get_run(s, id, &row, &e), &e))
        return;
    size_t n = 0;
    checked(store_list_events(s, id, on_event, &n, &e), &e);
    checked(store_list_segments(s, id, on_segment, &n, &e), &e);
    checked(store_list_summaries(s, id, on_summary, &n, &e), &e);
    checked(store_list_checkpoints(s, id, on_checkpoint, &n, &e), &e);
    checked(store_list_metrics(s, id, "val_loss", on_metric, &n, &e), &e);
    store_checkpoint_row ck;
    checked(store_find_checkpoint(s, id, UINT64_MAX, 1, &ck, &e), &e);
    char **argv = NULL;
    int argc = 0;
    if (row.config_json && !checked(store_json_argv(row.config_json, &argv, &argc, &e), &e)) {
        for (int i = 0; i < argc; i++)
            free(argv[i]);
        free(argv);
    }
    store_run_row_free(&row);
}

static void open_and_read(const char *path, const uint8_t *file, size_t size,
                          store_open_mode mode)
{
    static const char *const side[] = {"-wal", "-shm", "-journal"};
    char p[400];
    for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, side[i]);
        unlink(p);
    }
    unlink(path);   /* the last pass may have left it read-only */
    fuzz_write_file(path, file, size);
    if (mode == STORE_BROWSE)
        FUZZ_CHECK(chmod(path, 0444) == 0, "chmod %s", path);

    gl_error e = {{0}};
    store *s = store_open(path, mode, &e);
    if (checked(s ? 0 : -1, &e))
        return;
    size_t n = 0;
    checked(store_list_runs(s, 0, on_run, &n, &e), &e);
    int64_t session = store_last_session(s, &e);
    FUZZ_CHECK(session >= -1, "store_last_session returned %lld", (long long)session);
    if (!checked(session < 0 ? -1 : 0, &e) && session > 0) {
        store_session_row row;
        if (!checked(store_get_session(s, session, &row, &e), &e))
            store_session_row_free(&row);
        checked(store_list_runs(s, session, on_run, &n, &e), &e);
    }
    for (int64_t id = 1; id <= 3; id++)
        read_run(s, id);
    store_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320];
    fuzz_path(path, sizeof path, "gatelab.db");
    size_t fsize = size;
    uint8_t *own = NULL;
    const uint8_t *file = data;
    if (size < 16 || memcmp(data, "SQLite format 3", 16) != 0)
        file = own = patched(data, size, &fsize);
    open_and_read(path, file, fsize, STORE_EXISTING);
    if (!as_root)
        open_and_read(path, file, fsize, STORE_BROWSE);
    free(own);
    return 0;
}
