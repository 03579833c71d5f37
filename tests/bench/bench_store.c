/* bench_store: what the store thread can write. Not a test: one run prints
 * a plain table and exits 0 (1 only when the database could not be used).
 *
 * One run in a fresh database under /tmp (WAL, synchronous=NORMAL, the
 * pragmas store_open sets), written through store_write exactly as the store
 * thread does:
 *   REC_STEP   3 metric rows each (train_loss, grad_norm, lr), in
 *              transactions committed every BATCH records;
 *   REC_LAYER  10 layer_metrics rows each (every metric_key finite), one
 *              record per (layer, head) of a 4 x 4 model per evaluation,
 *              committed every BATCH records;
 *   REC_STEP   again with no transaction around it (store_write then opens
 *              and commits one per record), to show what batching buys.
 * rows/s = rows written / wall seconds including the commits. The summaries
 * triggers run for every metric row, as in real use.
 * Run: make bench (or build $(BUILD)/release/bench/bench_store and run it). */
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "store.h"

#define BATCH 1000
#define STEP_RECORDS 200000
#define LAYER_RECORDS 50000
#define SINGLE_RECORDS 2000

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void print_row(const char *what, size_t records, size_t rows, double secs)
{
    printf("%-40s %9zu %9zu %8.3f %12.0f %12.0f\n", what, records, rows, secs, records / secs,
           rows / secs);
}

/* n REC_STEP records from step first, committed every `batch` (0: none). */
static int write_steps(store *s, int64_t run, uint64_t first, size_t n, size_t batch,
                       gl_error *err)
{
    tel_record r;
    memset(&r, 0, sizeof r);
    r.kind = REC_STEP;
    for (size_t i = 0; i < n; i++) {
        if (batch && i % batch == 0 && store_begin(s, err))
            return -1;
        r.step = first + i;
        r.wall_ms = gl_wall_ms();
        r.u.step.loss = 2.0 + 3.0 / (1.0 + 0.001 * (double)i) + 0.01 * sin((double)i);
        r.u.step.grad_norm = 1.0 + 0.1 * cos((double)i);
        r.u.step.lr = 3e-4;
        if (store_write(s, run, &r, err))
            return -1;
        if (batch && ((i + 1) % batch == 0 || i + 1 == n) && store_commit(s, err))
            return -1;
    }
    return 0;
}

static int write_layers(store *s, int64_t run, size_t n, gl_error *err)
{
    tel_record r;
    memset(&r, 0, sizeof r);
    r.kind = REC_LAYER;
    for (size_t i = 0; i < n; i++) {
        if (i % BATCH == 0 && store_begin(s, err))
            return -1;
        r.step = 100 * (i / 16);
        r.wall_ms = gl_wall_ms();
        r.u.layer.layer = (uint32_t)(i % 16 / 4);
        r.u.layer.head = (uint32_t)(i % 4);
        for (int k = 0; k < METRIC_COUNT; k++)
            r.u.layer.value[k] = 0.1 * k + 1e-6 * (double)i;
        if (store_write(s, run, &r, err))
            return -1;
        if (((i + 1) % BATCH == 0 || i + 1 == n) && store_commit(s, err))
            return -1;
    }
    return 0;
}

int main(void)
{
    const double start = gl_now();
    setvbuf(stdout, NULL, _IOLBF, 0);
    char dir[64] = "/tmp/gatelab_bench_store_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_store: mkdtemp");
        return 1;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/bench.db", dir);

    gl_error err = {{0}};
    int rc = 1;
    store *s = store_open(path, STORE_CREATE, &err);
    if (!s)
        goto out;
    int64_t session = store_session_begin(s, "bench_store", &err);
    store_run_desc d = {.name = "bench", .mode = "soft", .k = 16, .seed = 1};
    int64_t run = session < 0 ? -1 : store_run_begin(s, session, &d, &err);
    if (run < 0)
        goto out;

    printf("== store_write into %s\n", path);
    printf("sqlite    %s, journal_mode=wal, synchronous=NORMAL, batches of %d records\n\n",
           sqlite3_libversion(), BATCH);
    printf("%-40s %9s %9s %8s %12s %12s\n", "records", "records", "rows", "seconds", "records/s",
           "rows/s");

    double t = gl_now();
    if (write_steps(s, run, 1, STEP_RECORDS, BATCH, &err))
        goto out;
    print_row("REC_STEP (3 rows), commit every 1000", STEP_RECORDS, 3 * (size_t)STEP_RECORDS,
              gl_now() - t);

    t = gl_now();
    if (write_layers(s, run, LAYER_RECORDS, &err))
        goto out;
    print_row("REC_LAYER (10 rows), commit every 1000", LAYER_RECORDS,
              (size_t)METRIC_COUNT * LAYER_RECORDS, gl_now() - t);

    t = gl_now();
    if (write_steps(s, run, STEP_RECORDS + 1, SINGLE_RECORDS, 0, &err))
        goto out;
    print_row("REC_STEP (3 rows), one commit each", SINGLE_RECORDS, 3 * (size_t)SINGLE_RECORDS,
              gl_now() - t);

    store_close(s);
    t = gl_now();
    s = store_open(path, STORE_EXISTING, &err);
    if (!s)
        goto out;
    double reopen = gl_now() - t;
    struct stat st;
    double mib = stat(path, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : NAN;
    size_t rows = 3 * (size_t)(STEP_RECORDS + SINGLE_RECORDS) + (size_t)METRIC_COUNT * LAYER_RECORDS;
    printf("\nreopen    %.1f ms (schema check, prepare, crash scan)\n", 1e3 * reopen);
    printf("file      %.1f MiB for %zu rows (%.0f bytes/row, indexes and summaries included)\n",
           mib, rows, mib * 1024.0 * 1024.0 / (double)rows);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "bench_store: %s\n", err.msg);
    store_close(s);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    printf("bench_store: %.1f s wall\n", gl_now() - start);
    return rc;
}
