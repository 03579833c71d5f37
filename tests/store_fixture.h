/* store_fixture: what the store tests share — a temporary directory, file
 * and raw-SQL helpers beside the store, records of every kind, and
 * synthetic sessions (fill_arm). Header-only: each test binary uses a part. */
#ifndef GATELAB_STORE_FIXTURE_H
#define GATELAB_STORE_FIXTURE_H

#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "gate.h"
#include "metrics.h"
/* store_migrations: the schema as older binaries made it */
#include "../store/store_int.h"

#define T_HEAT 4
/* the uid a root test drops to where a permission must be refused */
#define NOBODY 65534

static char tmpdir[64];

/* ---- walk callbacks ------------------------------------------------------ */

/* counts the rows of a store_list_* walk into *(size_t *)ctx */
static inline int count_row(void *ctx, const void *row)
{
    (void)row;
    (*(size_t *)ctx)++;
    return 0;
}

static inline int run_count(void *ctx, const store_run_row *row)
{
    return count_row(ctx, row);
}

/* ---- files ------------------------------------------------------------- */

static inline char *tmp_path(const char *name)
{
    size_t n = strlen(tmpdir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", tmpdir, name);
    return p;
}

static inline void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    GL_ASSERT(f);
    GL_ASSERT(fwrite(data, 1, n, f) == n);
    GL_ASSERT(fclose(f) == 0);
}

/* The whole file, or NULL (size 0) when it cannot be read. */
static inline unsigned char *read_bytes(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 4096;
            unsigned char *p = xmalloc(cap);
            if (*n)
                memcpy(p, buf, *n);
            free(buf);
            buf = p;
        }
        size_t got = fread(buf + *n, 1, cap - *n, f);
        *n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    return buf;
}

static inline size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    GL_ASSERT(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static inline void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A snapshot of one file and of the number of entries in its directory, to
 * show that a refused open changed nothing. */
typedef struct {
    const char *path, *dir;
    unsigned char *bytes;
    size_t n, entries;
} file_snap;

static inline file_snap snap_take(const char *path, const char *dir)
{
    file_snap s = {.path = path, .dir = dir};
    s.bytes = read_bytes(path, &s.n);
    s.entries = dir_entries(dir);
    return s;
}

static inline int snap_same(file_snap *s)
{
    size_t n;
    unsigned char *now = read_bytes(s->path, &n);
    int same = n == s->n && (n == 0 || memcmp(now, s->bytes, n) == 0) &&
               dir_entries(s->dir) == s->entries;
    free(now);
    free(s->bytes);
    s->bytes = NULL;
    return same;
}

/* ---- raw SQL beside the store ------------------------------------------ */

static inline sqlite3 *raw_open(const char *path)
{
    sqlite3 *db;
    GL_ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ==
              SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static inline void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "raw_exec: %s\n  in: %s\n", msg, sql);
        GL_ASSERT(0);
    }
}

/* First column of the first row as an integer / real / text (copied), or
 * the fallback when there is no row. */
static inline int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw_int: %s\n  in: %s\n", sqlite3_errmsg(db), sql);
        GL_ASSERT(0);
    }
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static inline double raw_double(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    GL_ASSERT(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    double v = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
                   ? sqlite3_column_double(st, 0)
                   : NAN;
    sqlite3_finalize(st);
    return v;
}

static inline void raw_text(sqlite3 *db, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st;
    GL_ASSERT(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    const unsigned char *t = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    snprintf(out, size, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
}

/* ---- databases of an older schema -------------------------------------- */

/* A file exactly as a binary of schema `version` left it: its migrations,
 * its application_id and user_version, WAL. Returned open (raw). */
static inline sqlite3 *old_db_create(const char *path, int version)
{
    GL_ASSERT(version >= 1 && version <= STORE_SCHEMA_VERSION);
    sqlite3 *db = raw_open(path);
    raw_exec(db, "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; BEGIN IMMEDIATE");
    for (int v = 0; v < version; v++)
        raw_exec(db, store_migrations[v]);
    char stamp[128];
    snprintf(stamp, sizeof stamp, "PRAGMA application_id = %d; PRAGMA user_version = %d; COMMIT",
             STORE_APPLICATION_ID, version);
    raw_exec(db, stamp);
    return db;
}

/* A session row, by raw SQL (for files of an older schema). */
static inline void raw_session(sqlite3 *db, int64_t id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO sessions (id, started_at, command, version, host, pid)"
             " VALUES (%lld, '2023-11-14T22:13:20.000Z', 'gatelab run', 'old', 'box', 1)",
             (long long)id);
    raw_exec(db, sql);
}

/* A run with its first segment, an evaluation at step 100 (val_loss and
 * val_ppl, so the summaries and the views see it) and train losses at steps
 * 1..3, by raw SQL. parent 0: none. */
static inline void raw_run(sqlite3 *db, int64_t id, int64_t session, uint32_t arm,
                           const char *name, const char *mode, const char *config,
                           const char *status, int64_t parent, double val_loss)
{
    char sql[1024], par[24] = "NULL";
    if (parent > 0)
        snprintf(par, sizeof par, "%lld", (long long)parent);
    int final = strcmp(status, "running") != 0 && strcmp(status, "paused") != 0;
    snprintf(sql, sizeof sql,
             "INSERT INTO runs (id, session, arm, name, mode, k, frozen, seed, config, parent_run,"
             " start_step, status, started_at, ended_at, final_step, owner_pid, host, heartbeat)"
             " VALUES (%lld, %lld, %u, '%s', '%s', 16, 0, 1, '%s', %s, 0, '%s',"
             " '2023-11-14T22:13:20.000Z', %s, %s, 1, 'box', '2023-11-14T22:13:30.000Z');"
             "INSERT INTO segments (run, from_step, to_step, mode, k, frozen)"
             " VALUES (%lld, 0, %s, '%s', 16, 0);",
             (long long)id, (long long)session, arm, name, mode, config, par, status,
             final ? "'2023-11-14T22:13:30.000Z'" : "NULL", final ? "100" : "NULL",
             (long long)id, final ? "100" : "NULL", mode);
    raw_exec(db, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO metrics (run, key, step, wall_ms, value) VALUES"
             " (%lld, 'val_loss', 100, 1700000010000, %.17g),"
             " (%lld, 'val_ppl', 100, 1700000010000, %.17g),"
             " (%lld, 'train_loss', 1, 1700000000100, 3.5),"
             " (%lld, 'train_loss', 2, 1700000000200, 3.25),"
             " (%lld, 'train_loss', 3, 1700000000300, 3.375)",
             (long long)id, val_loss, (long long)id, exp(val_loss), (long long)id, (long long)id,
             (long long)id);
    raw_exec(db, sql);
}

/* Summary rows that disagree with a rescan of metrics, plus (run, key)
 * pairs with metrics and no summary or the reverse. */
static inline int64_t summary_mismatches(sqlite3 *db)
{
    return raw_int(db,
        "WITH truth AS (SELECT run, key,"
        "  (SELECT value FROM metrics b WHERE b.run = a.run AND b.key = a.key ORDER BY step DESC LIMIT 1) AS last,"
        "  max(step) AS last_step,"
        "  (SELECT value FROM metrics b WHERE b.run = a.run AND b.key = a.key ORDER BY value, step LIMIT 1) AS min,"
        "  (SELECT step FROM metrics b WHERE b.run = a.run AND b.key = a.key ORDER BY value, step LIMIT 1) AS min_step,"
        "  (SELECT value FROM metrics b WHERE b.run = a.run AND b.key = a.key ORDER BY value DESC, step LIMIT 1) AS max,"
        "  (SELECT step FROM metrics b WHERE b.run = a.run AND b.key = a.key ORDER BY value DESC, step LIMIT 1) AS max_step"
        "  FROM metrics a GROUP BY run, key)"
        "SELECT (SELECT count(*) FROM truth t LEFT JOIN summaries s USING (run, key)"
        "         WHERE s.run IS NULL OR s.last IS NOT t.last OR s.last_step IS NOT t.last_step"
        "            OR s.min IS NOT t.min OR s.min_step IS NOT t.min_step"
        "            OR s.max IS NOT t.max OR s.max_step IS NOT t.max_step)"
        "     + (SELECT count(*) FROM summaries s WHERE NOT EXISTS"
        "         (SELECT 1 FROM metrics m WHERE m.run = s.run AND m.key = s.key))");
}

/* ---- records ------------------------------------------------------------ */

#define T0_MS 1.7e12   /* 2023-11-14: a fixed wall clock for synthetic runs */

static inline tel_record rec(rec_kind kind, uint64_t step)
{
    tel_record r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.step = step;
    r.wall_ms = T0_MS + 100.0 * (double)step;
    return r;
}

static inline tel_record rec_step(uint64_t step, double loss)
{
    tel_record r = rec(REC_STEP, step);
    r.u.step.loss = loss;
    r.u.step.grad_norm = 1.0 + 0.001 * (double)step;
    r.u.step.lr = 3e-4;
    return r;
}

static inline tel_record rec_eval(uint64_t step, double val_loss, double f1)
{
    tel_record r = rec(REC_EVAL, step);
    r.u.eval.val_loss = val_loss;
    r.u.eval.val_ppl = exp(val_loss);
    r.u.eval.bits_per_byte = NAN;
    r.u.eval.f1 = f1;
    r.u.eval.mass_kept = 0.5 + f1 / 4;
    r.u.eval.oracle_mass = 0.9;
    r.u.eval.gate_grad_norm = 0.01;
    r.u.eval.tokens_per_s = 10000 + (double)step;
    r.u.eval.train_loss = 99.0;   /* must not override the step's own train loss */
    r.u.eval.expert_balance = NAN;
    return r;
}

static inline tel_record rec_layer(uint64_t step, uint32_t layer, uint32_t head, double f1)
{
    tel_record r = rec(REC_LAYER, step);
    r.u.layer.layer = layer;
    r.u.layer.head = head;
    for (int k = 0; k < METRIC_COUNT; k++)
        r.u.layer.value[k] = 0.01 * k + 0.001 * layer;
    r.u.layer.value[METRIC_F1] = f1;
    r.u.layer.value[METRIC_FLIP_RATE] = NAN;   /* undefined values are skipped */
    return r;
}

static inline tel_record rec_event(uint64_t step, event_kind kind, gate_mode mode, uint32_t k,
                            const char *detail)
{
    tel_record r = rec(REC_EVENT, step);
    r.u.event.kind = kind;
    r.u.event.mode = mode;
    r.u.event.k = k;
    snprintf(r.u.event.detail, sizeof r.u.event.detail, "%s", detail);
    return r;
}

static inline tel_record rec_status(uint64_t step, run_status status)
{
    tel_record r = rec(REC_STATUS, step);
    r.u.status.status = status;
    return r;
}

static inline tel_record rec_checkpoint(uint64_t step, int resumable)
{
    tel_record r = rec(REC_CHECKPOINT, step);
    r.u.checkpoint.resumable = (uint32_t)resumable;
    snprintf(r.u.checkpoint.path, sizeof r.u.checkpoint.path, "ckpt/run-step%05llu.safetensors",
             (unsigned long long)step);
    return r;
}

/* ---- synthetic sessions ------------------------------------------------- */

#define STEPS 300
#define EVAL_EVERY 50
#define SWAP_STEP 150
#define SETK_STEP 200

static inline double train_loss_at(gate_mode mode, uint64_t seed, uint64_t step)
{
    double base = mode == GATE_DENSE ? 2.0 : mode == GATE_SOFT ? 2.2 : 2.6;
    return base + 3.0 / (1.0 + 0.02 * (double)step) + 0.01 * (double)(seed % 7) +
           0.05 * sin((double)step);
}

static inline double val_loss_at(gate_mode mode, uint64_t seed, uint64_t step)
{
    /* the last evaluation is a touch worse than the one before: best != final */
    double v = train_loss_at(mode, seed, step) + 0.1 - 0.05 * sin((double)step);
    return step == STEPS ? v + 0.3 : v;
}

static inline int write_or_die(store *s, int64_t run, const tel_record *r)
{
    gl_error err = {{0}};
    if (store_write(s, run, r, &err)) {
        fprintf(stderr, "store_write: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* One arm: STEPS steps, an evaluation (and 2x2 layer records) every
 * EVAL_EVERY, checkpoints at 100 and 200 (resumable) and 300 (final), a
 * heatmap at the last evaluation; the soft arm swaps to topk at SWAP_STEP
 * and sets k = 8 at SETK_STEP. Commits every 64 records. Returns the run. */
static inline int64_t fill_arm(store *s, int64_t session, uint32_t arm, gate_mode mode, uint64_t seed,
                        run_status final)
{
    gl_error err = {{0}};
    char cfg[128];
    snprintf(cfg, sizeof cfg, "{\"mode\":\"%s\",\"seed\":%llu,\"k\":16}", gate_mode_name(mode),
             (unsigned long long)seed);
    store_run_desc d = {.arm = arm, .name = gate_mode_name(mode), .mode = gate_mode_name(mode),
                        .k = 16, .seed = seed, .config_json = cfg};
    int64_t run = store_run_begin(s, session, &d, &err);
    if (run < 0) {
        fprintf(stderr, "store_run_begin: %s\n", err.msg);
        return -1;
    }
    size_t batched = 0;
    GL_ASSERT(store_begin(s, &err) == 0);
#define PUT(r)                                                             \
    do {                                                                   \
        tel_record r_ = (r);                                               \
        if (write_or_die(s, run, &r_))                                     \
            return -1;                                                     \
        if (++batched % 64 == 0) {                                         \
            GL_ASSERT(store_commit(s, &err) == 0 && store_begin(s, &err) == 0); \
        }                                                                  \
    } while (0)
    PUT(rec_event(0, EV_START, mode, 16, ""));
    for (uint64_t step = 1; step <= STEPS; step++) {
        PUT(rec_step(step, step == 7 ? NAN : train_loss_at(mode, seed, step)));
        if (mode == GATE_SOFT && step == SWAP_STEP)
            PUT(rec_event(step, EV_SWAP, GATE_TOPK, 16, "soft -> topk"));
        if (mode == GATE_SOFT && step == SETK_STEP)
            PUT(rec_event(step, EV_SET_K, GATE_TOPK, 8, "k 16 -> 8"));
        if (step % EVAL_EVERY == 0) {
            double f1 = mode == GATE_DENSE ? NAN : 0.2 + 0.001 * (double)step;
            PUT(rec_eval(step, val_loss_at(mode, seed, step), f1));
            if (mode != GATE_DENSE)
                for (uint32_t l = 0; l < 2; l++)
                    for (uint32_t h = 0; h < 2; h++)
                        PUT(rec_layer(step, l, h, f1 + 0.01 * h));
        }
        if (step == 100 || step == 200 || step == STEPS)
            PUT(rec_checkpoint(step, step != STEPS));
    }
    heatmap_snapshot *hm = heatmap_snapshot_new(2, 2, T_HEAT);
    hm->step = STEPS;
    for (size_t i = 0; i < (size_t)2 * 2 * T_HEAT * T_HEAT; i++) {
        hm->gate[i] = (uint8_t)i;
        hm->oracle[i] = (uint8_t)(255 - i);
        hm->attn[i] = (uint8_t)(3 * i);
    }
    gl_error herr = {{0}};
    int rc = store_write_heatmap(s, run, hm, &herr);
    if (rc)
        fprintf(stderr, "store_write_heatmap: %s\n", herr.msg);
    heatmap_snapshot_free(hm);
    if (rc)
        return -1;
    if (final != RUN_RUNNING) {
        event_kind ev = final == RUN_FINISHED   ? EV_FINISH
                        : final == RUN_DIVERGED ? EV_DIVERGED
                        : final == RUN_PAUSED   ? EV_PAUSE
                                                : EV_STOP;
        PUT(rec_event(STEPS, ev, mode, 16, ""));
        PUT(rec_status(STEPS, final));
    }
#undef PUT
    GL_ASSERT(store_commit(s, &err) == 0);
    return run;
}

#endif
