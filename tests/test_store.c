/* test_store: the SQLite store. Creating and reopening (schema version,
 * application_id, WAL, the database id), sessions and runs, every record
 * kind written in batched transactions and read back through the read API
 * and through raw SQL on the views, summaries after replaced and deleted
 * metric rows, segments, crash detection with a dead and a live owner,
 * resume, the bad files it must refuse without changing a byte, the
 * migration of a version-3 file to version 4 and of a version-4 file to 5
 * (every row kept, or nothing changed), names, tags and notes, another connection holding the write lock while a batch waits,
 * readers that may not write leaving no file behind, and gl_mkdir_p, which
 * makes a new database's directories. The views of
 * schema 3 and sessions/queries.sql are test_store_views.c. */
#include "store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define NOBODY 65534

/* ---- create, reopen, pragmas -------------------------------------------- */

static void test_create(void)
{
    char *path = tmp_path("new/sub/gatelab.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_EXISTING, &err);
    char want[256];
    snprintf(want, sizeof want, "no database at %s", path);
    CHECK(!s && strcmp(err.msg, want) == 0, "STORE_EXISTING on a missing file: %s", err.msg);
    CHECK(access(path, F_OK) != 0, "... and creates nothing");

    s = store_open(path, STORE_CREATE, &err);
    CHECK(s != NULL, "STORE_CREATE makes the directories and the file (%s)", s ? "" : err.msg);
    if (!s)
        return;
    CHECK(store_crashed_on_open(s) == 0, "nothing crashed in a new database");
    store_close(s);

    sqlite3 *db = raw_open(path);
    CHECK(raw_int(db, "PRAGMA application_id") == STORE_APPLICATION_ID, "application_id is 'gtlb'");
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "user_version is %d",
          STORE_SCHEMA_VERSION);
    char mode[16];
    raw_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    CHECK(strcmp(mode, "wal") == 0, "journal_mode is wal (%s)", mode);
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                      " ('sessions','runs','metrics','layer_metrics','summaries','events',"
                      "  'segments','heatmaps','checkpoints')") == 9,
          "all nine tables exist");
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN"
                      " ('run_final','learned_vs_random','gate_agreement')") == 3,
          "the three views exist");
    char id[64];
    raw_text(db, "SELECT value FROM db_info WHERE key = 'id'", id, sizeof id);
    CHECK(strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32,
          "db_info holds a 32-hex-digit id (%s)", id);
    sqlite3_close(db);

    s = store_open(path, STORE_EXISTING, &err);
    CHECK(s != NULL, "reopens with STORE_EXISTING (%s)", s ? "" : err.msg);
    if (s)
        CHECK(strcmp(store_db_id(s), id) == 0, "store_db_id gives it, the same after a reopen (%s)",
              store_db_id(s));
    store_close(s);
    char *other = tmp_path("new/sub/other.db");
    s = store_open(other, STORE_CREATE, &err);
    GL_ASSERT(s);
    CHECK(strlen(store_db_id(s)) == 32 && strcmp(store_db_id(s), id) != 0,
          "another new database has another id (%s)", store_db_id(s));
    store_close(s);
    free(other);
    free(path);
}

/* ---- writing and reading ------------------------------------------------ */

static int count_row(void *ctx, const void *row)
{
    (void)row;
    (*(size_t *)ctx)++;
    return 0;
}

static int collect_runs(void *ctx, const store_run_row *row)
{
    int64_t *ids = ctx;
    for (size_t i = 0; i < 8; i++)
        if (ids[i] == 0) {
            ids[i] = row->id;
            break;
        }
    return 0;
}

typedef struct {
    store_segment_row rows[8];
    size_t n;
} segment_list;

static int collect_segments(void *ctx, const store_segment_row *row)
{
    segment_list *l = ctx;
    if (l->n < 8)
        l->rows[l->n++] = *row;
    return 0;
}

typedef struct {
    store_event_row rows[16];
    size_t n;
} event_list;

static int collect_events(void *ctx, const store_event_row *row)
{
    event_list *l = ctx;
    if (l->n < 16)
        l->rows[l->n++] = *row;
    return 0;
}

typedef struct {
    const char *key;
    store_summary_row row;
    int found;
} summary_find;

static int find_summary(void *ctx, const store_summary_row *row)
{
    summary_find *f = ctx;
    if (strcmp(row->key, f->key) == 0) {
        f->row = *row;
        f->found = 1;
        return 1;   /* stop early: the walk must still end cleanly */
    }
    return 0;
}

static int run_count(void *ctx, const store_run_row *row)
{
    return count_row(ctx, row);
}

static int checkpoint_count(void *ctx, const store_checkpoint_row *row)
{
    return count_row(ctx, row);
}

static void test_write_read(void)
{
    char *path = tmp_path("rw.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "gatelab run --arms soft,random,dense", &err);
    CHECK(session > 0, "session begins (%lld)", (long long)session);
    int64_t soft = fill_arm(s, session, 0, GATE_SOFT, 42, RUN_FINISHED);
    int64_t rnd = fill_arm(s, session, 1, GATE_RANDOM, 42, RUN_FINISHED);
    int64_t dense = fill_arm(s, session, 2, GATE_DENSE, 42, RUN_STOPPED);
    CHECK(soft > 0 && rnd > 0 && dense > 0, "three arms written in batched transactions");
    CHECK(store_session_end(s, session, &err) == 0, "session ends");
    CHECK(store_session_end(s, 999, &err) == -1 && strstr(err.msg, "no session 999"),
          "ending a missing session fails: %s", err.msg);
    CHECK(!store_in_transaction(s), "no transaction left open");

    /* runs */
    store_run_row r;
    CHECK(store_get_run(s, soft, &r, &err) == 0, "store_get_run");
    double best = INFINITY;
    uint64_t best_step = 0;
    for (uint64_t st = EVAL_EVERY; st <= STEPS; st += EVAL_EVERY)
        if (val_loss_at(GATE_SOFT, 42, st) < best) {
            best = val_loss_at(GATE_SOFT, 42, st);
            best_step = st;
        }
    CHECK(strcmp(r.name, "soft") == 0 && strcmp(r.mode, "soft") == 0 &&
              strcmp(r.status, "finished") == 0 && r.session == session && r.arm == 0 &&
              r.k == 16 && r.seed == 42 && r.parent_run == 0,
          "run row: name %s mode %s status %s arm %u k %u seed %llu", r.name, r.mode, r.status,
          r.arm, r.k, (unsigned long long)r.seed);
    CHECK(r.steps == STEPS, "steps = last step with a metric (%llu)", (unsigned long long)r.steps);
    CHECK(fabs(r.final_val_loss - val_loss_at(GATE_SOFT, 42, STEPS)) < 1e-12 &&
              fabs(r.final_val_ppl - exp(r.final_val_loss)) < 1e-9,
          "final val loss %.6f and ppl %.4f", r.final_val_loss, r.final_val_ppl);
    CHECK(fabs(r.best_val_loss - best) < 1e-12 && r.best_val_step == best_step &&
              best_step != STEPS,
          "best val loss %.6f at step %llu", r.best_val_loss, (unsigned long long)r.best_val_step);
    CHECK(strlen(r.started) == 24 && r.started[10] == 'T' && r.started[23] == 'Z' &&
              strcmp(r.ended, "2023-11-14T22:13:50.000Z") == 0,
          "ISO-8601 UTC times: started %s ended %s", r.started, r.ended);
    CHECK(r.pid == getpid() && strstr(r.config_json, "\"seed\":42"), "owner pid and config JSON");
    store_run_row_free(&r);
    CHECK(store_get_run(s, 12345, &r, &err) == -1 && strstr(err.msg, "no run 12345 in"),
          "missing run: %s", err.msg);

    int64_t ids[8] = {0};
    CHECK(store_list_runs(s, 0, collect_runs, ids, &err) == 0 && ids[0] == dense &&
              ids[1] == rnd && ids[2] == soft && ids[3] == 0,
          "store_list_runs: newest first");
    size_t n = 0;
    CHECK(store_list_runs(s, session + 1, run_count, &n, &err) == 0 && n == 0,
          "store_list_runs filters by session");

    /* summaries */
    summary_find f = {.key = "train_loss"};
    CHECK(store_list_summaries(s, soft, find_summary, &f, &err) == 0 && f.found,
          "summaries walk stops early and ends cleanly");
    double mn = INFINITY, mx = -INFINITY;
    uint64_t mn_step = 0, mx_step = 0;
    for (uint64_t st = 1; st <= STEPS; st++) {
        if (st == 7)
            continue;
        double v = train_loss_at(GATE_SOFT, 42, st);
        if (v < mn)
            mn = v, mn_step = st;
        if (v > mx)
            mx = v, mx_step = st;
    }
    CHECK(f.row.last_step == STEPS && f.row.last == train_loss_at(GATE_SOFT, 42, STEPS) &&
              f.row.min == mn && f.row.min_step == mn_step && f.row.max == mx &&
              f.row.max_step == mx_step,
          "train_loss summary: last %.4f@%llu min %.4f@%llu max %.4f@%llu", f.row.last,
          (unsigned long long)f.row.last_step, f.row.min, (unsigned long long)f.row.min_step,
          f.row.max, (unsigned long long)f.row.max_step);

    /* segments: soft [0,150], topk [150,200], topk k=8 [200,300] */
    segment_list sl = {0};
    CHECK(store_list_segments(s, soft, collect_segments, &sl, &err) == 0 && sl.n == 3,
          "three segments after a swap and a k change (%zu)", sl.n);
    if (sl.n == 3)
        CHECK(sl.rows[0].from_step == 0 && sl.rows[0].to_step == SWAP_STEP &&
                  strcmp(sl.rows[0].mode, "soft") == 0 && sl.rows[0].k == 16 &&
                  sl.rows[1].from_step == SWAP_STEP && sl.rows[1].to_step == SETK_STEP &&
                  strcmp(sl.rows[1].mode, "topk") == 0 && sl.rows[1].k == 16 &&
                  sl.rows[2].from_step == SETK_STEP && sl.rows[2].to_step == STEPS &&
                  strcmp(sl.rows[2].mode, "topk") == 0 && sl.rows[2].k == 8,
              "segments soft[0,150] topk[150,200] topk/k8[200,300] closed by the final status");
    sl.n = 0;
    store_list_segments(s, rnd, collect_segments, &sl, &err);
    CHECK(sl.n == 1 && sl.rows[0].to_step == STEPS, "random arm: one segment, closed at 300");

    /* events */
    event_list el = {0};
    CHECK(store_list_events(s, soft, collect_events, &el, &err) == 0 && el.n == 5,
          "events: start, diverged (the NaN loss of step 7), swap, set_k, finish (%zu)", el.n);
    if (el.n == 5)
        CHECK(strcmp(el.rows[0].kind, "start") == 0 && strcmp(el.rows[1].kind, "diverged") == 0 &&
                  el.rows[1].step == 7 &&
                  strcmp(el.rows[1].detail, "train_loss is nan at step 7") == 0 &&
                  strcmp(el.rows[2].kind, "swap") == 0 &&
                  el.rows[2].step == SWAP_STEP && strcmp(el.rows[2].detail, "soft -> topk") == 0 &&
                  strcmp(el.rows[3].kind, "set_k") == 0 && strcmp(el.rows[4].kind, "finish") == 0 &&
                  strcmp(el.rows[2].time, "2023-11-14T22:13:35.000Z") == 0,
              "event kinds, steps, detail (%s) and time (%s)", el.rows[1].detail,
              el.rows[2].time);

    /* checkpoints */
    n = 0;
    CHECK(store_list_checkpoints(s, soft, checkpoint_count, &n, &err) == 0 && n == 3,
          "three checkpoints");
    store_checkpoint_row c;
    CHECK(store_find_checkpoint(s, soft, 250, 1, &c, &err) == 0 && c.step == 200 && c.resumable &&
              strstr(c.path, "step00200"),
          "newest resumable checkpoint at or before 250 is step 200 (%s)", c.path);
    CHECK(store_find_checkpoint(s, soft, UINT64_MAX, 0, &c, &err) == 0 && c.step == STEPS &&
              !c.resumable,
          "newest checkpoint of any kind is step 300");
    CHECK(store_find_checkpoint(s, soft, UINT64_MAX, 1, &c, &err) == 0 && c.step == 200,
          "newest resumable checkpoint is step 200");
    CHECK(store_find_checkpoint(s, soft, 50, 0, &c, &err) == -1 &&
              strstr(err.msg, "no checkpoint at or before step 50"),
          "none at or before 50: %s", err.msg);
    store_close(s);

    /* raw SQL: rows, NaN never stored, the eval's train loss, heatmaps, views */
    sqlite3 *db = raw_open(path);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM metrics WHERE run = %lld AND key = 'train_loss'", (long long)soft);
    CHECK(raw_int(db, sql) == STEPS - 1, "one train_loss per step, the NaN at step 7 skipped");
    CHECK(raw_int(db, "SELECT count(*) FROM metrics WHERE value != value OR value IS NULL") == 0 &&
              raw_int(db, "SELECT count(*) FROM metrics WHERE key = 'val_bpb'") == 0,
          "no NaN anywhere; NaN bits per byte skipped");
    snprintf(sql, sizeof sql,
             "SELECT value FROM metrics WHERE run = %lld AND key = 'train_loss' AND step = 50",
             (long long)soft);
    CHECK(raw_double(db, sql) == train_loss_at(GATE_SOFT, 42, 50),
          "an evaluation's train_loss does not replace the step's");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM metrics WHERE run = %lld AND key IN ('val_loss','val_ppl','f1',"
             "'mass_kept','oracle_mass','gate_grad_norm','tokens_per_s')", (long long)soft);
    CHECK(raw_int(db, sql) == 7 * (STEPS / EVAL_EVERY), "seven eval metrics per evaluation");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM metrics WHERE run = %lld AND key IN ('f1','mass_kept')",
             (long long)dense);
    CHECK(raw_int(db, sql) == 0, "dense arm: NaN f1 and mass_kept skipped");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM layer_metrics WHERE run = %lld", (long long)soft);
    CHECK(raw_int(db, sql) == (STEPS / EVAL_EVERY) * 4 * (METRIC_COUNT - 1),
          "layer metrics: one row per finite metric, layer, head and evaluation");
    CHECK(raw_int(db, "SELECT count(DISTINCT key) FROM layer_metrics") == METRIC_COUNT - 1 &&
              raw_int(db, "SELECT count(*) FROM layer_metrics WHERE key = 'flip_rate'") == 0,
          "layer metric keys are metric_name()s");
    CHECK(strcmp(metric_name(METRIC_CHANCE), "chance_f1") == 0 &&
              strcmp(metric_name(METRIC_F1), "f1") == 0 &&
              strcmp(metric_name(METRIC_MASS_KEPT), "mass_kept") == 0 &&
              strcmp(metric_name(METRIC_ORACLE_MASS), "oracle_mass") == 0,
          "the metric names gate_agreement reads are metric_name()s");

    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM heatmaps WHERE run = %lld AND step = %d AND rows = %d AND cols = %d",
             (long long)soft, STEPS, T_HEAT, T_HEAT);
    CHECK(raw_int(db, sql) == 2 * 2 * 3, "heatmaps: one row per layer, head and kind");
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql,
             "SELECT data FROM heatmaps WHERE run = %lld AND layer = 1 AND head = 0 AND kind = 'attn'",
             (long long)soft);
    GL_ASSERT(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    int blob_ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == T_HEAT * T_HEAT;
    const uint8_t *blob = sqlite3_column_blob(st, 0);
    for (size_t i = 0; blob_ok && i < T_HEAT * T_HEAT; i++)
        blob_ok = blob[i] == (uint8_t)(3 * ((1 * 2 + 0) * T_HEAT * T_HEAT + i));
    sqlite3_finalize(st);
    CHECK(blob_ok, "heatmap blob (layer 1, head 0, attn) is the snapshot's T*T bytes");

    snprintf(sql, sizeof sql,
             "SELECT steps = %d AND status = 'finished' AND abs(val_ppl - exp(val_loss)) < 1e-9"
             " AND best_val_step = %llu AND tokens_per_s > 10000 AND f1 > 0.2"
             " FROM run_final WHERE run = %lld",
             STEPS, (unsigned long long)best_step, (long long)soft);
    CHECK(raw_int(db, sql) == 1, "run_final: steps, status, val_ppl, best step, tokens/s, f1");
    /* soft swapped to topk at SWAP_STEP: compared at its last clean evaluation */
    double want = exp(val_loss_at(GATE_RANDOM, 42, SWAP_STEP)) -
                  exp(val_loss_at(GATE_SOFT, 42, SWAP_STEP));
    char status[128];
    raw_text(db, "SELECT status FROM learned_vs_random", status, sizeof status);
    CHECK(raw_int(db, "SELECT count(*) FROM learned_vs_random") == 1 &&
              fabs(raw_double(db, "SELECT routing_benefit FROM learned_vs_random") - want) < 1e-9 &&
              raw_int(db, "SELECT dense_run FROM learned_vs_random") == dense &&
              raw_int(db, "SELECT step FROM learned_vs_random") == SWAP_STEP &&
              strcmp(status, "at last clean step 150: soft swapped to topk at 150") == 0,
          "learned_vs_random: at soft's last clean step, routing benefit = random ppl - soft "
          "ppl = %.4f (%s)", want, status);
    snprintf(sql, sizeof sql,
             "SELECT f1 FROM gate_agreement WHERE run = %lld AND step = 100 AND layer = 1",
             (long long)soft);
    double f1 = raw_double(db, sql);
    CHECK(fabs(f1 - (0.3 + 0.005)) < 1e-12, "gate_agreement: mean over heads of f1 (%.4f)", f1);
    CHECK(raw_int(db, "SELECT count(*) FROM gate_agreement WHERE heads != 2") == 0 &&
              raw_int(db, "SELECT count(*) FROM gate_agreement") == 2 * 2 * (STEPS / EVAL_EVERY),
          "gate_agreement: one row per run, step and layer");
    CHECK(summary_mismatches(db) == 0, "every summary matches a rescan of metrics");
    sqlite3_close(db);
    free(path);
}

/* ---- transactions, autocommit, foreign keys ----------------------------- */

static void test_transactions(void)
{
    char *path = tmp_path("tx.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "tx", &err);
    store_run_desc d = {.name = "soft", .mode = "soft", .k = 16, .seed = 1};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    CHECK(store_commit(s, &err) == -1 && strstr(err.msg, "without an open transaction"),
          "commit without a transaction fails: %s", err.msg);
    CHECK(store_begin(s, &err) == 0 && store_begin(s, &err) == -1 &&
              strstr(err.msg, "already open"),
          "nested begin fails: %s", err.msg);
    CHECK(store_commit(s, &err) == 0 && !store_in_transaction(s), "commit ends it");

    tel_record r = rec_step(1, 2.5);
    CHECK(store_write(s, run, &r, &err) == 0 && !store_in_transaction(s),
          "store_write outside a transaction commits on its own");
    r = rec_step(2, 2.4);
    CHECK(store_write(s, run + 100, &r, &err) == -1 && strstr(err.msg, path) &&
              strstr(err.msg, "FOREIGN KEY constraint failed") && !store_in_transaction(s),
          "a metric of a missing run fails with SQLite's message: %s", err.msg);
    r = rec_status(2, RUN_FINISHED);
    CHECK(store_write(s, run + 100, &r, &err) == -1 && strstr(err.msg, "no run"),
          "status of a missing run: %s", err.msg);
    r = rec(REC_KIND_COUNT, 2);
    CHECK(store_write(s, run, &r, &err) == -1 && strstr(err.msg, "cannot be stored"),
          "unknown record kind: %s", err.msg);
    r = rec_event(2, EV_SWAP, GATE_MODE_COUNT + 3, 16, "");
    CHECK(store_write(s, run, &r, &err) == -1 && strstr(err.msg, "unknown gate mode"),
          "swap to an unknown mode: %s", err.msg);
    r = rec(REC_RUN_BEGIN, 0);
    CHECK(store_write(s, run, &r, &err) == 0, "REC_RUN_BEGIN is not stored and is no error");

    /* rows of an uncommitted transaction vanish at close */
    GL_ASSERT(store_begin(s, &err) == 0);
    r = rec_step(3, 2.3);
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    store_close(s);
    sqlite3 *db = raw_open(path);
    CHECK(raw_int(db, "SELECT count(*) FROM metrics WHERE step = 3") == 0 &&
              raw_int(db, "SELECT count(*) FROM metrics WHERE step = 1") == 3,
          "close rolls back what was not committed");
    sqlite3_close(db);
    free(path);
}

/* ---- summaries after replaced and deleted rows -------------------------- */

static int64_t summary_int(sqlite3 *db, int64_t run, const char *col)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT %s FROM summaries WHERE run = %lld AND key = 'train_loss'",
             col, (long long)run);
    return raw_int(db, sql);
}

static double summary_real(sqlite3 *db, int64_t run, const char *col)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT %s FROM summaries WHERE run = %lld AND key = 'train_loss'",
             col, (long long)run);
    return raw_double(db, sql);
}

static void test_summaries(void)
{
    char *path = tmp_path("sum.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "sum", &err);
    store_run_desc d = {.name = "soft", .mode = "soft", .k = 16, .seed = 1};
    int64_t run = store_run_begin(s, session, &d, &err);
    static const double v[] = {5, 3, 4, 1, 6, 2, 8, 7, 9, 0.5};   /* steps 1..10 */
    GL_ASSERT(store_begin(s, &err) == 0);
    for (int i = 0; i < 10; i++) {
        tel_record r = rec_step((uint64_t)i + 1, v[i]);
        GL_ASSERT(store_write(s, run, &r, &err) == 0);
    }
    GL_ASSERT(store_commit(s, &err) == 0);
    sqlite3 *db = raw_open(path);
    CHECK(summary_real(db, run, "min") == 0.5 && summary_int(db, run, "min_step") == 10 &&
              summary_real(db, run, "max") == 9 && summary_int(db, run, "max_step") == 9 &&
              summary_real(db, run, "last") == 0.5 && summary_int(db, run, "last_step") == 10,
          "summary after inserts: min 0.5@10 max 9@9 last 0.5@10");

    /* replace the min (step 10) with a new max, then the max with a middle value */
    tel_record r = rec_step(10, 20);
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    CHECK(summary_real(db, run, "min") == 1 && summary_int(db, run, "min_step") == 4 &&
              summary_real(db, run, "max") == 20 && summary_int(db, run, "max_step") == 10 &&
              summary_real(db, run, "last") == 20,
          "replacing the min row: min falls back to 1@4, max 20@10, last 20");
    r = rec_step(10, 4.5);
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    CHECK(summary_real(db, run, "max") == 9 && summary_int(db, run, "max_step") == 9 &&
              summary_real(db, run, "last") == 4.5,
          "replacing the max row: max falls back to 9@9, last 4.5");
    r = rec_step(5, 0.25);   /* a middle row becomes the min */
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    CHECK(summary_real(db, run, "min") == 0.25 && summary_int(db, run, "min_step") == 5 &&
              summary_int(db, run, "last_step") == 10,
          "replacing a middle row with a new min: 0.25@5, last untouched");
    r = rec_step(2, 0.25);   /* a tie at an earlier step wins */
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    CHECK(summary_int(db, run, "min_step") == 2, "ties keep the earliest step");
    r = rec_step(10, 3);   /* the last row, neither min nor max: folded, no rescan */
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    CHECK(summary_real(db, run, "last") == 3 && summary_int(db, run, "last_step") == 10,
          "replacing the last row: last 3@10");
    CHECK(summary_mismatches(db) == 0, "summaries match a rescan after replacements");

    /* random replacements (small integer values: many ties) and deletes */
    uint64_t x = 12345;
    size_t bad = 0;
    for (int i = 0; i < 400; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t step = 20 + (x >> 33) % 40;
        double v = (double)((x >> 20) % 7);
        if ((x >> 45) % 5 == 0) {
            char sql[128];
            snprintf(sql, sizeof sql, "DELETE FROM metrics WHERE key = 'train_loss' AND step = %llu",
                     (unsigned long long)step);
            raw_exec(db, sql);
        } else {
            r = rec_step(step, v);
            GL_ASSERT(store_write(s, run, &r, &err) == 0);
        }
        bad += summary_mismatches(db) != 0;
    }
    CHECK(bad == 0, "400 random replacements and deletes: summaries always match (%zu bad)", bad);

    raw_exec(db, "DELETE FROM metrics WHERE step > 6");
    CHECK(summary_int(db, run, "last_step") == 6 && summary_real(db, run, "last") == 2 &&
              summary_real(db, run, "max") == 5 && summary_int(db, run, "max_step") == 1 &&
              summary_mismatches(db) == 0,
          "deleting rows by hand rescans: last 2@6, max 5@1");
    raw_exec(db, "DELETE FROM metrics WHERE key = 'lr'");
    CHECK(raw_int(db, "SELECT count(*) FROM summaries WHERE key = 'lr'") == 0,
          "deleting every row of a key drops its summary");
    sqlite3_close(db);
    store_close(s);
    free(path);
}

/* ---- crash detection ---------------------------------------------------- */

static pid_t dead_pid(void)
{
    pid_t pid = fork();
    GL_ASSERT(pid >= 0);
    if (pid == 0)
        _exit(0);
    int status;
    GL_ASSERT(waitpid(pid, &status, 0) == pid);
    return pid;
}

static void raw_run_text(sqlite3 *db, int64_t run, const char *col, char *out, size_t size)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM runs WHERE id = %lld", col, (long long)run);
    raw_text(db, sql, out, size);
}

static void test_crash_and_resume(void)
{
    char *path = tmp_path("crash.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "crash", &err);
    int64_t gone = fill_arm(s, session, 0, GATE_SOFT, 7, RUN_RUNNING);   /* dead owner */
    int64_t mine = fill_arm(s, session, 1, GATE_RANDOM, 7, RUN_RUNNING); /* this process */
    int64_t silent = fill_arm(s, session, 2, GATE_DENSE, 7, RUN_RUNNING);/* stale heartbeat */
    int64_t away = fill_arm(s, session, 3, GATE_TOPK, 7, RUN_RUNNING);   /* other host */
    int64_t paused = fill_arm(s, session, 4, GATE_SIGMOID, 7, RUN_PAUSED);
    int64_t finished = fill_arm(s, session, 5, GATE_TOPK_RANDOM, 7, RUN_FINISHED);
    int64_t diverged = fill_arm(s, session, 6, GATE_ORACLE, 7, RUN_DIVERGED);
    GL_ASSERT(gone > 0 && mine > 0 && silent > 0 && away > 0 && paused > 0 && finished > 0 &&
              diverged > 0);
    store_close(s);

    pid_t dead = dead_pid();
    sqlite3 *db = raw_open(path);
    char sql[1024];
    snprintf(sql, sizeof sql, "UPDATE runs SET owner_pid = %d WHERE id IN (%lld, %lld, %lld)",
             (int)dead, (long long)gone, (long long)away, (long long)paused);
    raw_exec(db, sql);
    snprintf(sql, sizeof sql,
             "UPDATE runs SET heartbeat = strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now', '-1 hour')"
             " WHERE id = %lld", (long long)silent);
    raw_exec(db, sql);
    snprintf(sql, sizeof sql, "UPDATE runs SET host = 'elsewhere.example' WHERE id = %lld",
             (long long)away);
    raw_exec(db, sql);

    s = store_open(path, STORE_EXISTING, &err);
    CHECK(s != NULL, "reopens (%s)", s ? "" : err.msg);
    if (!s) {
        sqlite3_close(db);
        free(path);
        return;
    }
    CHECK(store_crashed_on_open(s) == 3, "three runs marked crashed on open (%zu)",
          store_crashed_on_open(s));
    char status[16], ended[32];
    raw_run_text(db, gone, "status", status, sizeof status);
    raw_run_text(db, gone, "ended_at", ended, sizeof ended);
    CHECK(strcmp(status, "crashed") == 0 && strlen(ended) == 24,
          "dead pid on this host: crashed, ended_at %s", ended);
    snprintf(sql, sizeof sql, "SELECT final_step FROM runs WHERE id = %lld", (long long)gone);
    CHECK(raw_int(db, sql) == STEPS, "final step = last step with a metric");
    char detail[128], want[128];
    snprintf(sql, sizeof sql,
             "SELECT detail FROM events WHERE run = %lld AND kind = 'error'", (long long)gone);
    raw_text(db, sql, detail, sizeof detail);
    snprintf(want, sizeof want, "owner process %d gone; marked crashed", (int)dead);
    CHECK(strcmp(detail, want) == 0, "error event: \"%s\"", detail);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM segments WHERE run = %lld AND to_step IS NULL", (long long)gone);
    CHECK(raw_int(db, sql) == 0, "its open segment is closed");
    raw_run_text(db, mine, "status", status, sizeof status);
    CHECK(strcmp(status, "running") == 0, "live pid with a fresh heartbeat: still running");
    raw_run_text(db, silent, "status", status, sizeof status);
    snprintf(sql, sizeof sql,
             "SELECT detail FROM events WHERE run = %lld AND kind = 'error'", (long long)silent);
    raw_text(db, sql, detail, sizeof detail);
    CHECK(strcmp(status, "crashed") == 0 && strstr(detail, "silent for 3600 s"),
          "live pid, heartbeat an hour old: crashed (%s)", detail);
    raw_run_text(db, away, "status", status, sizeof status);
    CHECK(strcmp(status, "running") == 0, "other host, fresh heartbeat: still running");
    raw_run_text(db, paused, "status", status, sizeof status);
    CHECK(strcmp(status, "crashed") == 0, "paused with a dead pid: crashed");
    raw_run_text(db, finished, "status", status, sizeof status);
    CHECK(strcmp(status, "finished") == 0, "finished runs are left alone");
    store_close(s);
    s = store_open(path, STORE_EXISTING, &err);
    CHECK(s && store_crashed_on_open(s) == 0, "a second open finds nothing new");

    /* resume the crashed run from its step-200 checkpoint */
    store_checkpoint_row c;
    GL_ASSERT(store_find_checkpoint(s, gone, UINT64_MAX, 1, &c, &err) == 0 && c.step == 200);
    CHECK(store_run_reopen(s, gone, c.step, &err) == 0, "store_run_reopen from step 200 (%s)",
          err.msg);
    snprintf(sql, sizeof sql, "SELECT max(step) FROM metrics WHERE run = %lld", (long long)gone);
    int64_t max_metric = raw_int(db, sql);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM layer_metrics WHERE run = %1$lld AND step > 200)"
             " + (SELECT count(*) FROM events WHERE run = %1$lld AND step > 200)"
             " + (SELECT count(*) FROM heatmaps WHERE run = %1$lld AND step > 200)"
             " + (SELECT count(*) FROM checkpoints WHERE run = %1$lld AND step > 200)"
             " + (SELECT count(*) FROM segments WHERE run = %1$lld AND from_step > 200)",
             (long long)gone);
    CHECK(max_metric == 200 && raw_int(db, sql) == 0, "rows after step 200 are deleted");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM checkpoints WHERE run = %lld", (long long)gone);
    CHECK(raw_int(db, sql) == 2, "checkpoints at 100 and 200 kept");
    summary_find f = {.key = "train_loss"};
    store_list_summaries(s, gone, find_summary, &f, &err);
    CHECK(f.found && f.row.last_step == 200 && summary_mismatches(db) == 0,
          "summaries rescanned: last step %llu", (unsigned long long)f.row.last_step);
    segment_list sl = {0};
    store_list_segments(s, gone, collect_segments, &sl, &err);
    CHECK(sl.n == 3 && sl.rows[2].from_step == SETK_STEP && sl.rows[2].to_step == UINT64_MAX &&
              sl.rows[1].to_step == SETK_STEP,
          "its last segment is open again (from %llu)",
          sl.n ? (unsigned long long)sl.rows[sl.n - 1].from_step : 0ULL);
    store_run_row r;
    GL_ASSERT(store_get_run(s, gone, &r, &err) == 0);
    CHECK(strcmp(r.status, "running") == 0 && r.ended[0] == '\0' && r.pid == getpid() &&
              r.steps == 200,
          "run is running again, owned by this process, steps %llu", (unsigned long long)r.steps);
    store_run_row_free(&r);
    snprintf(sql, sizeof sql,
             "UPDATE runs SET heartbeat = '2000-01-01T00:00:00.000Z' WHERE id = %lld", (long long)gone);
    raw_exec(db, sql);
    GL_ASSERT(store_begin(s, &err) == 0 && store_commit(s, &err) == 0);
    char beat[32];
    raw_run_text(db, gone, "heartbeat", beat, sizeof beat);
    CHECK(strncmp(beat, "2000", 4) != 0, "store_commit refreshes the adopted run's heartbeat (%s)",
          beat);
    tel_record st = rec_status(250, RUN_STOPPED);
    GL_ASSERT(store_write(s, gone, &st, &err) == 0);
    raw_exec(db, sql);
    GL_ASSERT(store_begin(s, &err) == 0 && store_commit(s, &err) == 0);
    raw_run_text(db, gone, "heartbeat", beat, sizeof beat);
    CHECK(strncmp(beat, "2000", 4) == 0, "a run given a final status is no longer kept alive");

    snprintf(want, sizeof want, "run %lld diverged; nothing to resume", (long long)diverged);
    CHECK(store_run_reopen(s, diverged, 100, &err) == -1 && strcmp(err.msg, want) == 0,
          "refuses a diverged run: %s", err.msg);
    CHECK(store_run_reopen(s, mine, 100, &err) == -1 && strstr(err.msg, "is running in process"),
          "refuses a run whose owner is alive: %s", err.msg);
    CHECK(store_run_reopen(s, 9999, 100, &err) == -1 && strstr(err.msg, "no run 9999"),
          "refuses a missing run: %s", err.msg);
    snprintf(sql, sizeof sql, "SELECT max(step) FROM metrics WHERE run = %lld",
             (long long)diverged);
    CHECK(raw_int(db, sql) == STEPS && !store_in_transaction(s),
          "a refused resume deletes nothing");
    /* `resume --steps` extends a finished run */
    err.msg[0] = '\0';
    CHECK(store_run_reopen(s, finished, 100, &err) == 0, "a finished run resumes (%s)",
          err.msg);
    snprintf(sql, sizeof sql, "SELECT status || ' ' || (SELECT max(step) FROM metrics"
                              " WHERE run = %1$lld) FROM runs WHERE id = %1$lld",
             (long long)finished);
    raw_text(db, sql, want, sizeof want);
    CHECK(strcmp(want, "running 100") == 0, "... running again from step 100 (%s)", want);
    CHECK(store_run_reopen(s, gone, 100, &err) == 0, "a stopped run resumes");
    store_close(s);
    sqlite3_close(db);
    free(path);
}

/* ---- files it must refuse ----------------------------------------------- */

static void expect_refused(const char *label, const char *path, store_open_mode mode,
                           const char *want)
{
    gl_error err = {{0}};
    store *s = store_open(path, mode, &err);
    CHECK(!s && strcmp(err.msg, want) == 0, "%s: \"%s\"", label, err.msg);
    store_close(s);
}

/* store_open run as user `nobody` in a child: the only way for root to meet
 * the permissions it ignores. Returns 1 when refused with `want` in the
 * message, 0 when not, -1 when privileges could not be dropped. */
static int refused_as_nobody(const char *path, store_open_mode mode, const char *want, char *msg,
                             size_t size)
{
    int fd[2];
    GL_ASSERT(pipe(fd) == 0);
    pid_t pid = fork();
    GL_ASSERT(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(3);
        gl_error err = {{0}};
        store *s = store_open(path, mode, &err);
        ssize_t w = write(fd[1], err.msg, strlen(err.msg));
        (void)w;
        store_close(s);
        _exit(s ? 1 : 0);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], msg, size - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(fd[0]);
    int status;
    GL_ASSERT(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 3)
        return -1;
    return WEXITSTATUS(status) == 0 && strstr(msg, want) != NULL;
}

/* A read-only case: in this process when permissions bind it; as root, a
 * note (after checking that access(W_OK) indeed succeeds) and the same
 * open again as `nobody` in a child. */
static void check_read_only(const char *label, const char *path, const char *check_path,
                            store_open_mode mode, const char *want, file_snap *snap)
{
    if (access(check_path, W_OK) != 0) {
        gl_error err = {{0}};
        store *s = store_open(path, mode, &err);
        CHECK(!s && strstr(err.msg, want), "%s: \"%s\"", label, err.msg);
        store_close(s);
    } else {
        CHECK(geteuid() == 0 && access(check_path, W_OK) == 0,
              "%s: skipped in this process: running as root, access(%s, W_OK) succeeds", label,
              check_path);
        printf("  note: root ignores permissions; running the %s case as uid %d\n", label, NOBODY);
        char msg[512];
        int got = refused_as_nobody(path, mode, want, msg, sizeof msg);
        if (got < 0)
            printf("  note: cannot drop privileges here; %s not exercised\n", label);
        else
            CHECK(got == 1, "%s as uid %d: \"%s\"", label, NOBODY, msg);
    }
    if (snap)
        CHECK(snap_same(snap), "%s: file and directory unchanged", label);
}

static void test_bad_files(void)
{
    char *dir = tmp_path("bad");
    GL_ASSERT(mkdir(dir, 0755) == 0);
    char want[512];

    /* not SQLite: text, and a file shorter than a header */
    char *text = tmp_path("bad/notes.db");
    char junk[300];
    memset(junk, 'x', sizeof junk);
    write_bytes(text, junk, sizeof junk);
    file_snap snap = snap_take(text, dir);
    snprintf(want, sizeof want, "%s: not a SQLite database", text);
    expect_refused("a text file", text, STORE_EXISTING, want);
    CHECK(snap_same(&snap), "text file: bytes and directory unchanged");
    char *tiny = tmp_path("bad/tiny.db");
    write_bytes(tiny, "SQLite format 3", 16);
    snap = snap_take(tiny, dir);
    snprintf(want, sizeof want, "%s: not a SQLite database", tiny);
    expect_refused("a 16-byte file", tiny, STORE_CREATE, want);
    CHECK(snap_same(&snap), "short file: bytes and directory unchanged");

    /* SQLite, but someone else's */
    char *other = tmp_path("bad/other.db");
    sqlite3 *db = raw_open(other);
    raw_exec(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                 "INSERT INTO notes (body) VALUES ('keep me');");
    sqlite3_close(db);
    snap = snap_take(other, dir);
    snprintf(want, sizeof want, "%s: not a gatelab database", other);
    expect_refused("an SQLite file with tables and no application_id", other, STORE_CREATE, want);
    CHECK(snap_same(&snap), "foreign SQLite file: bytes and directory unchanged");
    char *app = tmp_path("bad/app.db");
    db = raw_open(app);
    raw_exec(db, "PRAGMA application_id = 1234; CREATE TABLE t (x);");
    sqlite3_close(db);
    snap = snap_take(app, dir);
    snprintf(want, sizeof want, "%s: not a gatelab database (application_id 0x000004d2)", app);
    expect_refused("an SQLite file of another application", app, STORE_CREATE, want);
    CHECK(snap_same(&snap), "other application's file: bytes and directory unchanged");

    /* an empty file and an empty SQLite database are adopted */
    char *empty = tmp_path("bad/empty.db");
    write_bytes(empty, "", 0);
    gl_error err = {{0}};
    store *s = store_open(empty, STORE_EXISTING, &err);
    CHECK(s != NULL, "an empty file becomes a gatelab database (%s)", s ? "" : err.msg);
    store_close(s);

    /* newer schema */
    char *newer = tmp_path("bad/newer.db");
    s = store_open(newer, STORE_CREATE, &err);
    GL_ASSERT(s);
    store_close(s);
    db = raw_open(newer);
    raw_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    snap = snap_take(newer, dir);
    snprintf(want, sizeof want,
             "%s: schema version 99 is newer than this gatelab (%d); upgrade gatelab", newer,
             STORE_SCHEMA_VERSION);
    expect_refused("a newer schema", newer, STORE_EXISTING, want);
    CHECK(snap_same(&snap), "newer database: bytes and directory unchanged");

    snprintf(want, sizeof want, "%s: not a database file (a directory)", dir);
    expect_refused("a directory", dir, STORE_CREATE, want);

    /* read-only file in a writable directory */
    char *rofile = tmp_path("bad/ro-file.db");
    s = store_open(rofile, STORE_CREATE, &err);
    GL_ASSERT(s);
    store_close(s);
    GL_ASSERT(chmod(dir, 0777) == 0 && chmod(tmpdir, 0755) == 0 && chmod(rofile, 0444) == 0);
    snap = snap_take(rofile, dir);
    check_read_only("read-only file", rofile, rofile, STORE_EXISTING,
                    "cannot write the database: read-only file", &snap);
    GL_ASSERT(chmod(rofile, 0644) == 0);

    /* writable file in a read-only directory, and creating in one */
    char *rodir = tmp_path("bad/ro-dir");
    GL_ASSERT(mkdir(rodir, 0755) == 0);
    char *indir = tmp_path("bad/ro-dir/gatelab.db");
    s = store_open(indir, STORE_CREATE, &err);
    GL_ASSERT(s);
    store_close(s);
    GL_ASSERT(chmod(indir, 0666) == 0 && chmod(rodir, 0555) == 0);
    snap = snap_take(indir, rodir);
    check_read_only("database in a read-only directory", indir, rodir, STORE_EXISTING,
                    "read-only directory", &snap);
    char *fresh = tmp_path("bad/ro-dir/fresh.db");
    check_read_only("new database in a read-only directory", fresh, rodir, STORE_CREATE,
                    "read-only directory", NULL);
    CHECK(access(fresh, F_OK) != 0, "no file created in the read-only directory");
    GL_ASSERT(chmod(rodir, 0755) == 0 && chmod(dir, 0755) == 0 && chmod(tmpdir, 0700) == 0);

    free(fresh);
    free(indir);
    free(rodir);
    free(rofile);
    free(newer);
    free(empty);
    free(app);
    free(other);
    free(tiny);
    free(text);
    free(dir);
}

/* ---- migration from schema 3 to 4 ------------------------------------- */

static const char *const all_tables[] = {
    "sessions", "runs", "metrics", "layer_metrics", "summaries", "events", "segments",
    "heatmaps", "checkpoints", "experiments", "experiment_runs", "experiment_results",
};
#define N_TABLES (sizeof all_tables / sizeof all_tables[0])

/* Every row of a table as text, ordered by every column: what a migration
 * must keep. *ncols > 0: only the first *ncols columns (a later schema adds
 * columns at the end); 0: all of them, and *ncols is set. Caller frees. */
static char *table_text_cols(sqlite3 *db, const char *table, int *ncols)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT * FROM %s", table);
    sqlite3_stmt *st;
    GL_ASSERT(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    int ncol = sqlite3_column_count(st);
    sqlite3_finalize(st);
    if (*ncols > 0 && *ncols < ncol)
        ncol = *ncols;
    *ncols = ncol;
    size_t at = (size_t)snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY 1", table);
    for (int c = 2; c <= ncol; c++)
        at += (size_t)snprintf(sql + at, sizeof sql - at, ", %d", c);
    GL_ASSERT(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    size_t len = 0, cap = 4096;
    char *out = xmalloc(cap);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int c = 0; c < ncol; c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            int n = sqlite3_column_bytes(st, c);
            while (len + (size_t)n + 16 > cap) {
                char *p = xmalloc(2 * cap);
                memcpy(p, out, len + 1);
                free(out);
                out = p;
                cap *= 2;
            }
            len += (size_t)snprintf(out + len, cap - len, "%s%.*s", c ? "|" : "\n", n,
                                    t ? (const char *)t : "NULL");
        }
    sqlite3_finalize(st);
    return out;
}

static char *table_text(sqlite3 *db, const char *table)
{
    int ncols = 0;
    return table_text_cols(db, table, &ncols);
}

/* A version-3 file with rows in every table: four finished-or-ended runs
 * (one forked from another), events, layer metrics, segments, heatmaps,
 * checkpoints, an experiment, and one orphan metric row (a run deleted from
 * a shell without foreign keys: it must survive too). */
static sqlite3 *old_file(const char *path, int version)
{
    sqlite3 *db = old_db_create(path, version);
    raw_session(db, 1);
    raw_session(db, 2);
    raw_run(db, 1, 1, 0, "soft", "soft", "{}", "finished", 0, 1.0);
    raw_run(db, 2, 1, 1, "random", "random", "{}", "stopped", 0, 1.1);
    raw_run(db, 3, 1, 2, "soft>topk", "topk", "{}", "diverged", 1, 1.2);
    raw_run(db, 4, 2, 0, "dense+moe", "dense", "{\"experts\":4,\"router\":\"learned\"}",
            "crashed", 0, 0.9);
    raw_exec(db,
             "INSERT INTO events (run, step, time, kind, detail, mode, k, frozen) VALUES"
             " (1, 0, '2023-11-14T22:13:20.000Z', 'start', '', 'soft', 16, 0),"
             " (3, 50, '2023-11-14T22:13:25.000Z', 'fork', 'from run 1', 'topk', 16, 0),"
             " (4, 60, '2023-11-14T22:13:26.000Z', 'error', 'owner gone', NULL, NULL, NULL);"
             "INSERT INTO layer_metrics (run, step, layer, head, key, value) VALUES"
             " (1, 100, 0, 0, 'f1', 0.25), (1, 100, 0, 1, 'f1', 0.5), (1, 100, 1, 0, 'f1', 0.75);"
             "INSERT INTO heatmaps (run, step, layer, head, kind, rows, cols, data) VALUES"
             " (1, 100, 0, 0, 'gate', 2, 2, x'00ff7f01');"
             "INSERT INTO checkpoints (run, step, path, resumable, created) VALUES"
             " (1, 50, 'ckpt/a.safetensors', 1, '2023-11-14T22:13:25.000Z'),"
             " (1, 100, 'ckpt/b.safetensors', 0, '2023-11-14T22:13:30.000Z');"
             "INSERT INTO experiments (id, kind, command, config, status, started_at, version, host)"
             " VALUES (1, 'absorption', 'gatelab experiment', '{}', 'finished',"
             " '2023-11-14T22:13:20.000Z', 'old', 'box');"
             "INSERT INTO experiment_runs (experiment, run, seed, role, label) VALUES"
             " (1, 1, 1, 'arm', 'soft'), (1, 2, 1, 'arm', 'random');"
             "INSERT INTO experiment_results (experiment, position, line, quantity, value, spread,"
             " gatelab, paper, same_direction) VALUES"
             " (1, 0, '1', 'routing benefit', 0.1, NULL, '0.10', '0.2', 'yes');"
             "PRAGMA foreign_keys = OFF;"
             "INSERT INTO metrics (run, key, step, wall_ms, value)"
             " VALUES (99, 'train_loss', 1, 1700000000100, 4.0);");
    return db;
}

static sqlite3 *v3_file(const char *path)
{
    return old_file(path, 3);
}

static void test_migrate_v3(void)
{
    char *path = tmp_path("v3.db");
    sqlite3 *db = v3_file(path);
    char *before[N_TABLES];
    int ncols[N_TABLES] = {0};
    for (size_t t = 0; t < N_TABLES; t++)
        before[t] = table_text_cols(db, all_tables[t], &ncols[t]);
    int64_t orphans = raw_int(db, "SELECT count(*) FROM pragma_foreign_key_check");
    sqlite3_close(db);

    gl_error err = {{0}};
    store *s = store_open(path, STORE_EXISTING, &err);
    CHECK(s != NULL, "a version-3 file opens (%s)", s ? "migrated" : err.msg);
    if (!s) {
        for (size_t t = 0; t < N_TABLES; t++)
            free(before[t]);
        free(path);
        return;
    }
    char id[40];
    snprintf(id, sizeof id, "%s", store_db_id(s));
    db = raw_open(path);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "user_version is %d",
          STORE_SCHEMA_VERSION);
    char stored[40];
    raw_text(db, "SELECT value FROM db_info WHERE key = 'id'", stored, sizeof stored);
    CHECK(strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32 && strcmp(id, stored) == 0,
          "the migration gave it a 32-hex-digit id, the one store_db_id gives (%s)", stored);
    size_t same = 0;
    for (size_t t = 0; t < N_TABLES; t++) {
        char *after = table_text_cols(db, all_tables[t], &ncols[t]);
        if (strcmp(after, before[t]) == 0)
            same++;
        else
            printf("  note: %s changed:\n--- before%s\n--- after%s\n", all_tables[t], before[t],
                   after);
        free(after);
    }
    CHECK(same == N_TABLES, "every row of the %zu tables is kept, column for column (%zu equal)",
          N_TABLES, same);
    CHECK(raw_int(db, "SELECT count(*) FROM runs") == 4 &&
              raw_int(db, "SELECT parent_run FROM runs WHERE id = 3") == 1,
          "the four runs, the fork still pointing at its parent");
    CHECK(raw_int(db, "SELECT count(*) FROM pragma_foreign_key_check") == orphans && orphans == 2,
          "foreign_key_check: only the orphan metric row the file already had, and its summary "
          "(%lld)", (long long)orphans);
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"
                      " ('runs_live', 'runs_parent')") == 2 &&
              raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'runs_v4'") == 0,
          "runs has its indexes back, and no table is left over");
    CHECK(raw_int(db, "SELECT count(*) FROM run_final") == 4 &&
              raw_int(db, "SELECT count(*) FROM learned_vs_random WHERE learned_run = 1 AND"
                          " random_run = 2") == 1 &&
              raw_int(db, "SELECT count(*) FROM router_learned_vs_random") == 0,
          "the views that read runs are back and see its rows");
    char check[32];
    raw_text(db, "PRAGMA integrity_check", check, sizeof check);
    CHECK(strcmp(check, "ok") == 0, "integrity_check: %s", check);
    CHECK(sqlite3_exec(db, "UPDATE runs SET status = 'bogus' WHERE id = 1", NULL, NULL, NULL) ==
              SQLITE_CONSTRAINT,
          "runs.status still has a CHECK");

    /* the new status, written the way the store thread writes it */
    int64_t session = store_session_begin(s, "after", &err);
    store_run_desc d = {.name = "soft", .mode = "soft", .k = 16, .seed = 3};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    tel_record r = rec_status(40, RUN_FAILED);
    CHECK(store_write(s, run, &r, &err) == 0, "a run can become failed (%s)",
          err.msg[0] ? err.msg : "ok");
    char sql[256], status[16];
    snprintf(sql, sizeof sql, "SELECT status || ' ' || final_step || ' ' || (ended_at IS NOT NULL)"
                              " FROM runs WHERE id = %lld", (long long)run);
    raw_text(db, sql, status, sizeof status);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM segments WHERE run = %lld AND to_step = 40",
             (long long)run);
    CHECK(strcmp(status, "failed 40 1") == 0 && raw_int(db, sql) == 1,
          "... a final status: final step, ended_at, its segment closed (%s)", status);
    r = rec_step(1, 2.0);
    CHECK(store_write(s, run + 100, &r, &err) == -1 && strstr(err.msg, "FOREIGN KEY"),
          "foreign keys are on again for the store's connection: %s", err.msg);
    store_close(s);

    /* the children reference the new runs table */
    raw_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1");
    CHECK(raw_int(db, "SELECT count(*) FROM metrics WHERE run = 1") == 0 &&
              raw_int(db, "SELECT count(*) FROM checkpoints WHERE run = 1") == 0 &&
              raw_int(db, "SELECT count(*) FROM experiment_runs WHERE run = 1") == 0 &&
              raw_int(db, "SELECT count(*) FROM runs WHERE id = 3 AND parent_run IS NULL") == 1,
          "deleting a run still cascades to its rows and unlinks its fork");
    sqlite3_close(db);

    s = store_open(path, STORE_EXISTING, &err);
    GL_ASSERT(s);
    CHECK(strcmp(store_db_id(s), id) == 0, "reopened, the id is the same");
    store_close(s);
    for (size_t t = 0; t < N_TABLES; t++)
        free(before[t]);
    free(path);
}

/* A migration that fails half way leaves the file as it was. */
static void test_migrate_fails_whole(void)
{
    char *path = tmp_path("v3-clash.db");
    sqlite3 *db = v3_file(path);
    raw_exec(db, "CREATE TABLE db_info (note TEXT); INSERT INTO db_info VALUES ('mine')");
    char *before[N_TABLES];
    for (size_t t = 0; t < N_TABLES; t++)
        before[t] = table_text(db, all_tables[t]);
    sqlite3_close(db);

    gl_error err = {{0}};
    store *s = store_open(path, STORE_EXISTING, &err);
    CHECK(!s && strstr(err.msg, "migration to schema version 4") && strstr(err.msg, "db_info"),
          "a table in the way fails the migration: %s", err.msg);
    store_close(s);
    char want[512];
    snprintf(want, sizeof want, "%s: ", path);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0 && !strstr(err.msg + strlen(want), path),
          "... naming the path once");
    db = raw_open(path);
    size_t same = 0;
    for (size_t t = 0; t < N_TABLES; t++) {
        char *after = table_text(db, all_tables[t]);
        same += strcmp(after, before[t]) == 0;
        free(after);
        free(before[t]);
    }
    char sql[2048];
    raw_text(db, "SELECT sql FROM sqlite_master WHERE name = 'runs'", sql, sizeof sql);
    CHECK(raw_int(db, "PRAGMA user_version") == 3 && same == N_TABLES &&
              !strstr(sql, "'failed'") &&
              raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
                          " ('run_final', 'learned_vs_random', 'router_learned_vs_random')") == 3 &&
              raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'runs_v4'") == 0 &&
              raw_int(db, "SELECT count(*) FROM db_info") == 1,
          "... and nothing of it stays: version 3, the same rows, runs and its views as they "
          "were, the user's db_info untouched");
    sqlite3_close(db);
    free(path);
}

/* ---- absent metrics and diverged ones ---------------------------------- */

static void test_absent_and_diverged(void)
{
    char *path = tmp_path("absent.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "absent", &err);
    store_run_desc d = {.name = "dense", .mode = "dense", .k = 16, .seed = 1};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    GL_ASSERT(store_begin(s, &err) == 0);
    /* a dense evaluation: no gate, so no F1, mass kept or gate gradient */
    tel_record ev = rec_eval(100, 1.5, NAN);
    ev.u.eval.mass_kept = NAN;
    ev.u.eval.gate_grad_norm = NAN;
    GL_ASSERT(write_or_die(s, run, &ev) == 0);
    tel_record ly = rec_layer(100, 0, 1, NAN);
    ly.u.layer.value[METRIC_GATE_GRAD_NORM] = NAN;
    GL_ASSERT(write_or_die(s, run, &ly) == 0);
    /* an evaluation whose gate gradient exists and blew up, an infinite
     * oracle mass (an infinity is never absent) and a NaN val loss */
    ev = rec_eval(200, NAN, 0.5);
    ev.u.eval.val_ppl = INFINITY;
    ev.u.eval.gate_grad_norm = NAN;
    ev.u.eval.diverged = REC_EVAL_GATE_GRAD_NORM;
    ev.u.eval.oracle_mass = -INFINITY;
    GL_ASSERT(write_or_die(s, run, &ev) == 0);
    ly = rec_layer(200, 1, 0, 0.5);
    ly.u.layer.value[METRIC_GATE_GRAD_NORM] = NAN;
    ly.u.layer.diverged = 1u << METRIC_GATE_GRAD_NORM;
    GL_ASSERT(write_or_die(s, run, &ly) == 0);
    GL_ASSERT(store_commit(s, &err) == 0);
    store_close(s);

    sqlite3 *db = raw_open(path);
    CHECK(raw_int(db, "SELECT count(*) FROM metrics WHERE key IN ('f1', 'mass_kept',"
                      " 'gate_grad_norm') AND step = 100") == 0 &&
              raw_int(db, "SELECT count(*) FROM layer_metrics WHERE step = 100 AND"
                          " key IN ('f1', 'gate_grad_norm', 'flip_rate')") == 0 &&
              raw_int(db, "SELECT count(*) FROM events WHERE step = 100") == 0,
          "absent metrics (NaN, no diverged bit): no row and no event");
    CHECK(raw_int(db, "SELECT count(*) FROM metrics WHERE step = 100 AND key IN"
                      " ('val_loss', 'val_ppl', 'oracle_mass', 'tokens_per_s')") == 4,
          "... the metrics that exist are stored beside them");
    char got[512];
    raw_text(db, "SELECT group_concat(detail, '; ') FROM (SELECT detail FROM events"
                 " WHERE step = 200 AND kind = 'diverged' ORDER BY id)", got, sizeof got);
    CHECK(strcmp(got, "val_loss is nan at step 200; val_ppl is inf at step 200; oracle_mass is "
                      "-inf at step 200; gate_grad_norm is nan at step 200; gate_grad_norm of "
                      "layer 1 head 0 is nan at step 200") == 0,
          "non-finite values that exist: one diverged event each, naming metric and step (%s)",
          got);
    CHECK(raw_int(db, "SELECT count(*) FROM metrics WHERE step = 200 AND key IN ('val_loss',"
                      " 'val_ppl', 'oracle_mass', 'gate_grad_norm')") == 0 &&
              raw_int(db, "SELECT count(*) FROM metrics WHERE step = 200 AND key = 'f1'") == 1,
          "... and no row for them, while the finite ones are stored");
    sqlite3_close(db);
    free(path);
}

/* ---- migration from schema 4 to 5; names, tags and notes -------------- */

static void test_migrate_v4(void)
{
    char *path = tmp_path("v4.db");
    sqlite3 *db = old_file(path, 4);
    raw_exec(db, "UPDATE runs SET status = 'failed' WHERE id = 2;"   /* a status of schema 4 */
                 "INSERT INTO db_info (key, value) VALUES ('id', '0123456789abcdef0123456789abcdef')");
    char *before[N_TABLES];
    int ncols[N_TABLES] = {0};
    for (size_t t = 0; t < N_TABLES; t++)
        before[t] = table_text_cols(db, all_tables[t], &ncols[t]);
    int64_t orphans = raw_int(db, "SELECT count(*) FROM pragma_foreign_key_check");
    char id_before[40];
    raw_text(db, "SELECT value FROM db_info WHERE key = 'id'", id_before, sizeof id_before);
    sqlite3_close(db);

    gl_error err = {{0}};
    store *s = store_open(path, STORE_EXISTING, &err);
    CHECK(s != NULL, "a version-4 file opens (%s)", s ? "migrated" : err.msg);
    if (!s) {
        for (size_t t = 0; t < N_TABLES; t++)
            free(before[t]);
        free(path);
        return;
    }
    db = raw_open(path);
    CHECK(raw_int(db, "PRAGMA user_version") == 5, "user_version is 5");
    size_t same = 0;
    for (size_t t = 0; t < N_TABLES; t++) {
        char *after = table_text_cols(db, all_tables[t], &ncols[t]);
        if (strcmp(after, before[t]) == 0)
            same++;
        else
            printf("  note: %s changed:\n--- before%s\n--- after%s\n", all_tables[t], before[t],
                   after);
        free(after);
        free(before[t]);
    }
    CHECK(same == N_TABLES, "4 -> 5: every row of the %zu tables is kept, column for column "
                            "(%zu equal)", N_TABLES, same);
    CHECK(strcmp(store_db_id(s), id_before) == 0 &&
              raw_int(db, "SELECT count(*) FROM pragma_foreign_key_check") == orphans,
          "... the same database id, no foreign key broken");
    CHECK(raw_int(db, "SELECT count(*) FROM sessions WHERE gatelab_version = 'old' AND"
                      " git_rev IS NULL AND name IS NULL AND note IS NULL") == 2 &&
              raw_int(db, "SELECT count(*) FROM runs WHERE note IS NULL") == 4 &&
              raw_int(db, "SELECT count(*) FROM tags") == 0,
          "old sessions: gatelab_version from version, no git revision, name or note; runs "
          "without notes; an empty tags table");
    CHECK(raw_int(db, "SELECT count(*) FROM run_final WHERE gatelab_version = 'old'"
                      " AND git_rev IS NULL") == 4,
          "run_final carries the version of the binary that made each run");
    CHECK(raw_int(db, "SELECT count(*) FROM learned_vs_random WHERE learned_run = 1 AND"
                      " random_run = 2 AND step = 100 AND status = 'aligned' AND dense_run IS NULL"
                      " AND routing_benefit_rel IS NULL AND rel_note = 'no dense arm'") == 1,
          "learned_vs_random pairs the migrated runs at step 100");
    CHECK(raw_int(db, "SELECT count(*) FROM evals_wide WHERE session = 1 AND step = 100 AND"
                      " abs(arm0 - exp(1.0)) < 1e-9 AND abs(arm1 - exp(1.1)) < 1e-9 AND"
                      " abs(arm2 - exp(1.2)) < 1e-9 AND arm3 IS NULL") == 1 &&
              raw_int(db, "SELECT count(*) FROM params WHERE run = 4 AND"
                          " ((key = 'experts' AND value_text = '4' AND value_num = 4) OR"
                          "  (key = 'router' AND value_text = 'learned' AND value_num IS NULL))")
                  == 2,
          "evals_wide and params read the migrated rows");
    char check[32];
    raw_text(db, "PRAGMA integrity_check", check, sizeof check);
    CHECK(strcmp(check, "ok") == 0, "integrity_check: %s", check);

    /* the session of this binary records its version and revision */
    int64_t session = store_session_begin(s, "after", &err);
    GL_ASSERT(session > 0);
    char sql[512], text[256];
    snprintf(sql, sizeof sql, "SELECT version || '|' || gatelab_version || '|' || git_rev ||"
                              " '|' || (name IS NULL) FROM sessions WHERE id = %lld",
             (long long)session);
    raw_text(db, sql, text, sizeof text);
    char want[128];
    snprintf(want, sizeof want, "%s|%s|%s|1", GL_VERSION, GL_VERSION, gl_git_rev());
    CHECK(strcmp(text, want) == 0, "a new session records version and git revision (%s)", text);

    CHECK(store_session_set_name_note(s, session, "baseline", NULL, &err) == 0 &&
              store_session_set_name_note(s, session, NULL, "first try", &err) == 0,
          "session name, then note (%s)", err.msg[0] ? err.msg : "ok");
    snprintf(sql, sizeof sql, "SELECT name || '|' || note FROM sessions WHERE id = %lld",
             (long long)session);
    raw_text(db, sql, text, sizeof text);
    CHECK(strcmp(text, "baseline|first try") == 0, "NULL leaves the other as it was (%s)", text);
    CHECK(store_session_set_name_note(s, 999, "x", NULL, &err) == -1 &&
              strstr(err.msg, "no session 999"),
          "a missing session: %s", err.msg);

    err.msg[0] = '\0';
    CHECK(store_tag_set(s, 1, "lr", "3e-3", &err) == 0 &&
              store_tag_set(s, 1, "lr", "1e-3", &err) == 0 &&
              store_tag_set(s, 1, "baseline", NULL, &err) == 0 &&
              store_tag_set(s, 2, "lr", "3e-3", &err) == 0,
          "tags set and replaced (%s)", err.msg[0] ? err.msg : "ok");
    CHECK(raw_int(db, "SELECT count(*) FROM tags") == 3 &&
              raw_int(db, "SELECT count(*) FROM tags WHERE run = 1 AND key = 'lr'"
                          " AND value = '1e-3'") == 1 &&
              raw_int(db, "SELECT count(*) FROM tags WHERE run = 1 AND key = 'baseline'"
                          " AND value = ''") == 1,
          "one row per (run, key), the newest value; no value is ''");
    CHECK(store_tag_set(s, 999, "lr", "1", &err) == -1 && strstr(err.msg, "no run 999"),
          "a tag on a missing run: %s", err.msg);
    CHECK(store_tag_set(s, 1, "", "1", &err) == -1 && strstr(err.msg, "a tag needs a key"),
          "an empty key: %s", err.msg);

    err.msg[0] = '\0';
    CHECK(store_note_set(s, 1, "swapped by hand at 238", &err) == 0 &&
              raw_int(db, "SELECT count(*) FROM runs WHERE id = 1 AND"
                          " note = 'swapped by hand at 238'") == 1,
          "a run's note (%s)", err.msg[0] ? err.msg : "ok");
    CHECK(store_note_set(s, 1, NULL, &err) == 0 &&
              raw_int(db, "SELECT count(*) FROM runs WHERE id = 1 AND note IS NULL") == 1,
          "NULL clears it");
    CHECK(store_note_set(s, 999, "x", &err) == -1 && strstr(err.msg, "no run 999"),
          "a note on a missing run: %s", err.msg);

    /* inside the caller's transaction they go with it */
    GL_ASSERT(store_begin(s, &err) == 0);
    CHECK(store_tag_set(s, 2, "rolled", "back", &err) == 0 &&
              store_note_set(s, 2, "rolled back", &err) == 0,
          "tag and note inside a transaction");
    store_abort(s);
    CHECK(raw_int(db, "SELECT count(*) FROM tags WHERE key = 'rolled'") == 0 &&
              raw_int(db, "SELECT count(*) FROM runs WHERE id = 2 AND note IS NULL") == 1,
          "... and are dropped with it");
    store_close(s);

    raw_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1");
    CHECK(raw_int(db, "SELECT count(*) FROM tags") == 1, "deleting a run deletes its tags");
    sqlite3_close(db);
    free(path);
}

/* ---- another connection holding the write lock ------------------------- */

typedef struct {
    const char *path;
    long hold_ms;
    atomic_int held;        /* release: the lock is held (the main thread waits for it) */
    atomic_int released;    /* release: released_at is written */
    double released_at;
} lock_holder;

static void *hold_lock(void *arg)
{
    lock_holder *h = arg;
    sqlite3 *db = raw_open(h->path);
    raw_exec(db, "BEGIN IMMEDIATE");
    atomic_store_explicit(&h->held, 1, memory_order_release);
    nanosleep(&(struct timespec){h->hold_ms / 1000, (h->hold_ms % 1000) * 1000000L}, NULL);
    raw_exec(db, "COMMIT");
    h->released_at = gl_now();
    atomic_store_explicit(&h->released, 1, memory_order_release);
    sqlite3_close(db);
    return NULL;
}

static void start_holder(pthread_t *t, lock_holder *h, const char *path, long hold_ms)
{
    h->path = path;
    h->hold_ms = hold_ms;
    atomic_init(&h->held, 0);
    atomic_init(&h->released, 0);
    GL_ASSERT(pthread_create(t, NULL, hold_lock, h) == 0);
    while (!atomic_load_explicit(&h->held, memory_order_acquire))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
}

#define BATCH 2000

/* What the store thread does: the whole batch in one transaction; busy,
 * roll back and try again after a backoff. Returns the attempts that were
 * busy, or -1 (and the message) on any other failure. */
static int write_batch_retrying(store *s, int64_t run, const tel_record *recs, size_t n,
                                gl_error *err)
{
    int busy = 0;
    long backoff_ms = 5;
    for (;;) {
        int rc = store_begin(s, err);
        for (size_t i = 0; !rc && i < n; i++)
            rc = store_write(s, run, &recs[i], err);
        if (!rc)
            rc = store_commit(s, err);
        if (!rc)
            return busy;
        if (!store_busy(s))
            return -1;
        store_abort(s);
        busy++;
        nanosleep(&(struct timespec){0, backoff_ms * 1000000L}, NULL);
        backoff_ms = backoff_ms * 2 > 200 ? 200 : backoff_ms * 2;
    }
}

static void test_busy(void)
{
    char *path = tmp_path("busy.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "busy", &err);
    store_run_desc d = {.name = "soft", .mode = "soft", .k = 16, .seed = 1};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    CHECK(store_set_busy_timeout(s, 20, &err) == 0, "a short busy timeout for the writer");

    tel_record *recs = xmalloc(BATCH * sizeof *recs);
    for (size_t i = 0; i < BATCH; i++)
        recs[i] = rec_step(i + 1, 3.0 - 0.001 * (double)i);
    pthread_t t;
    lock_holder h;
    start_holder(&t, &h, path, 800);
    double t0 = gl_now();
    CHECK(store_begin(s, &err) == -1 && store_busy(s) && strstr(err.msg, "locked"),
          "BEGIN while another connection holds the write lock: busy, after the short timeout "
          "(%.0f ms): %s", 1e3 * (gl_now() - t0), err.msg);
    CHECK(!store_in_transaction(s), "... and no transaction is left open");
    int busy = write_batch_retrying(s, run, recs, BATCH, &err);
    double t1 = gl_now();
    pthread_join(t, NULL);
    CHECK(busy > 0 && atomic_load_explicit(&h.released, memory_order_acquire) &&
              t1 >= h.released_at,
          "the batch waited (%d busy attempts) and was written after the lock was released "
          "(%.0f ms after)", busy, 1e3 * (t1 - h.released_at));
    sqlite3 *db = raw_open(path);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM metrics WHERE run = %lld AND key = 'train_loss'",
             (long long)run);
    CHECK(raw_int(db, sql) == BATCH, "no row lost: %lld of %d train_loss rows",
          (long long)raw_int(db, sql), BATCH);

    /* a failure that is not a lock is not busy */
    tel_record r = rec_step(1, 2.0);
    CHECK(store_write(s, run + 100, &r, &err) == -1 && !store_busy(s),
          "a foreign key failure is not 'busy': %s", err.msg);

    /* a rolled-back batch is replayed whole: the final status it rolled back
     * leaves the run live (its heartbeat is still refreshed) */
    snprintf(sql, sizeof sql, "UPDATE runs SET heartbeat = '2000-01-01T00:00:00.000Z'"
                              " WHERE id = %lld", (long long)run);
    raw_exec(db, sql);
    GL_ASSERT(store_begin(s, &err) == 0);
    r = rec_status(BATCH, RUN_FINISHED);
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    store_abort(s);
    GL_ASSERT(store_begin(s, &err) == 0 && store_commit(s, &err) == 0);
    snprintf(sql, sizeof sql, "SELECT status = 'running' AND heartbeat > '2001' FROM runs"
                              " WHERE id = %lld", (long long)run);
    CHECK(raw_int(db, sql) == 1, "a rolled-back final status leaves the run live, heartbeat "
                                 "refreshed");
    sqlite3_close(db);

    /* a second session opens and begins while the lock is held (up to the
     * open's busy timeout) */
    start_holder(&t, &h, path, 600);
    t0 = gl_now();
    store *s2 = store_open(path, STORE_EXISTING, &err);
    int64_t session2 = s2 ? store_session_begin(s2, "second", &err) : -1;
    double waited = gl_now() - t0;
    pthread_join(t, NULL);
    CHECK(s2 && session2 > session, "another session opens and begins while the write lock is "
                                    "held for 600 ms (after %.0f ms; %s)", 1e3 * waited,
          s2 ? "ok" : err.msg);
    store_close(s2);
    store_close(s);
    free(recs);
    free(path);
}

/* ---- readers that may not write ----------------------------------------- */

/* Opens with STORE_BROWSE and counts the runs: as uid NOBODY in a child
 * when running as root (root ignores permissions), in this process
 * otherwise. Returns the count, -1 with the message, -2 when privileges
 * could not be dropped. */
static int browse_runs(const char *path, char *msg, size_t size)
{
    msg[0] = '\0';
    int root = geteuid() == 0;
    int fd[2];
    GL_ASSERT(pipe(fd) == 0);
    fflush(stdout);   /* the child must not print this process's buffer again */
    pid_t pid = root ? fork() : 0;
    GL_ASSERT(pid >= 0);
    if (pid == 0) {
        if (root && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(3);
        gl_error err = {{0}};
        store *s = store_open(path, STORE_BROWSE, &err);
        size_t n = 0;
        char line[600];
        if (s && store_list_runs(s, 0, run_count, &n, &err) == 0)
            snprintf(line, sizeof line, "runs %zu", n);
        else
            snprintf(line, sizeof line, "error %s", err.msg);
        store_close(s);
        ssize_t w = write(fd[1], line, strlen(line));
        (void)w;
        if (root)
            _exit(0);
    }
    close(fd[1]);
    char line[600];
    ssize_t n = read(fd[0], line, sizeof line - 1);
    line[n > 0 ? n : 0] = '\0';
    close(fd[0]);
    if (root) {
        int status;
        GL_ASSERT(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) == 3)
            return -2;
    }
    if (strncmp(line, "runs ", 5) == 0)
        return atoi(line + 5);
    snprintf(msg, size, "%s", strncmp(line, "error ", 6) == 0 ? line + 6 : line);
    return -1;
}

static int owned_by_nobody(const char *dir)
{
    DIR *d = opendir(dir);
    GL_ASSERT(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        n += lstat(p, &st) == 0 && st.st_uid == NOBODY;
    }
    closedir(d);
    return n;
}

static void test_readers(void)
{
    GL_ASSERT(chmod(tmpdir, 0755) == 0);
    char msg[600];
    gl_error err = {{0}};

    /* a database in a read-only directory, closed (no -wal, no -shm) */
    char *dir = tmp_path("rodir");
    GL_ASSERT(mkdir(dir, 0755) == 0);
    char *path = tmp_path("rodir/r.db");
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "r", &err);
    GL_ASSERT(fill_arm(s, session, 0, GATE_SOFT, 1, RUN_FINISHED) > 0);
    store_close(s);
    GL_ASSERT(chmod(path, 0444) == 0 && chmod(dir, 0555) == 0);
    file_snap snap = snap_take(path, dir);
    int n = browse_runs(path, msg, sizeof msg);
    if (n == -2) {
        printf("  note: cannot drop privileges here; read-only readers not exercised\n");
        snap_same(&snap);
        GL_ASSERT(chmod(dir, 0755) == 0 && chmod(tmpdir, 0700) == 0);
        free(path);
        free(dir);
        return;
    }
    CHECK(n == 1, "a reader reads a database in a read-only directory (%d runs%s%s)", n,
          msg[0] ? ": " : "", msg);
    CHECK(snap_same(&snap), "... and creates nothing there");

    /* a file it may not write in a directory it may write */
    GL_ASSERT(chmod(dir, 0777) == 0);
    snap = snap_take(path, dir);
    n = browse_runs(path, msg, sizeof msg);
    CHECK(n == 1 && snap_same(&snap) && owned_by_nobody(dir) == 0,
          "a reader of a file it may not write, in a writable directory: reads it, leaves no "
          "-wal/-shm (%d runs%s%s)", n, msg[0] ? ": " : "", msg);

    /* a live writer: its -wal holds a run not yet in the file */
    if (geteuid() == 0) {
        sqlite3 *db = raw_open(path);
        raw_exec(db, "PRAGMA wal_autocheckpoint = 0");
        raw_session(db, 2);
        raw_run(db, 2, 2, 0, "random", "random", "{}", "running", 0, 1.5);
        snap = snap_take(path, dir);
        n = browse_runs(path, msg, sizeof msg);
        CHECK(n == 2 && snap_same(&snap) && owned_by_nobody(dir) == 0,
              "while a writer has it open, a reader sees the rows in its WAL and creates nothing "
              "(%d runs%s%s)", n, msg[0] ? ": " : "", msg);

        /* a -wal without its -shm cannot be read without making one */
        char *dir2 = tmp_path("walonly");
        GL_ASSERT(mkdir(dir2, 0777) == 0);
        char *copy = tmp_path("walonly/r.db");
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s-wal' '%s-wal' && chmod 444 '%s'", path,
                 copy, path, copy, copy);
        GL_ASSERT(system(cmd) == 0);
        sqlite3_close(db);
        snap = snap_take(copy, dir2);
        n = browse_runs(copy, msg, sizeof msg);
        CHECK(n == -1 && strstr(msg, "-wal file is there without") && snap_same(&snap),
              "a -wal left without its -shm: refused, nothing created: %s", msg);
        free(copy);
        free(dir2);
    }
    GL_ASSERT(chmod(dir, 0755) == 0 && chmod(path, 0644) == 0 && chmod(tmpdir, 0700) == 0);
    free(path);
    free(dir);
}

/* gl_mkdir_p (common.c): what store_open makes a new database's directory
 * with, and the arms their checkpoint directories */
/* store_get_heatmaps reads back what store_write_heatmap wrote, plane for
 * plane; a step, run or shape with no heatmap is *found = 0, planes zero. */
static void test_heatmaps(void)
{
    char *path = tmp_path("heat.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "gatelab run", &err);
    int64_t run = fill_arm(s, session, 0, GATE_SOFT, 7, RUN_FINISHED);
    GL_ASSERT(session > 0 && run > 0);
    size_t n = (size_t)3 * 2 * T_HEAT * T_HEAT;
    heatmap_snapshot *w = heatmap_snapshot_new(3, 2, T_HEAT);
    w->step = 40;
    for (size_t i = 0; i < n; i++) {
        w->gate[i] = (uint8_t)(7 * i + 1);
        w->oracle[i] = (uint8_t)(i & 1 ? 255 : 0);
        w->attn[i] = (uint8_t)(251 - i);
    }
    CHECK(store_write_heatmap(s, run, w, &err) == 0, "a 3x2 heatmap written at step 40 (%s)",
          err.msg);

    heatmap_snapshot *r = heatmap_snapshot_new(3, 2, T_HEAT);
    memset(r->gate, 0xAA, n);
    int found = -1;
    CHECK(store_get_heatmaps(s, run, 40, r, &found, &err) == 0 && found == 1 && r->step == 40,
          "store_get_heatmaps finds step 40 (%s)", err.msg);
    CHECK(memcmp(r->gate, w->gate, n) == 0 && memcmp(r->oracle, w->oracle, n) == 0 &&
              memcmp(r->attn, w->attn, n) == 0,
          "gate, oracle and attn planes read back byte for byte");

    found = -1;
    CHECK(store_get_heatmaps(s, run, 41, r, &found, &err) == 0 && found == 0 && r->step == 41,
          "a step with no heatmap: 0 returned, *found = 0");
    int zero = 1;
    for (size_t i = 0; i < n; i++)
        zero &= r->gate[i] == 0 && r->oracle[i] == 0 && r->attn[i] == 0;
    CHECK(zero, "... and every plane zero, nothing left from the last read");
    found = -1;
    CHECK(store_get_heatmaps(s, run + 99, 40, r, &found, &err) == 0 && found == 0,
          "a run with no heatmap: *found = 0");

    /* another shape: fill_arm's 2x2 heatmap at STEPS fits a 3x2 snapshot
     * (its missing layer stays zero); one of a larger T is an error */
    found = -1;
    CHECK(store_get_heatmaps(s, run, STEPS, r, &found, &err) == 0 && found == 1 &&
              r->attn[(size_t)1 * T_HEAT * T_HEAT] == 3 * T_HEAT * T_HEAT &&
              r->gate[(size_t)2 * 2 * T_HEAT * T_HEAT] == 0,
          "fill_arm's 2x2 heatmap read into a 3x2 snapshot: its planes, the third layer zero");
    heatmap_snapshot *small = heatmap_snapshot_new(3, 2, T_HEAT / 2);
    CHECK(store_get_heatmaps(s, run, 40, small, &found, &err) == -1 &&
              strstr(err.msg, "does not fit"),
          "planes larger than the snapshot's T: -1 with a message (%s)", err.msg);
    heatmap_snapshot_free(small);
    heatmap_snapshot_free(r);
    heatmap_snapshot_free(w);
    store_close(s);
    free(path);
}

static void test_mkdir_p(void)
{
    gl_error e;
    char *deep = tmp_path("mk/a/b/c");
    CHECK(gl_mkdir_p(deep, &e) == 0, "mkdir -p of three new levels");
    struct stat st;
    CHECK(stat(deep, &st) == 0 && S_ISDIR(st.st_mode), "... and the last one is a directory");
    CHECK(gl_mkdir_p(deep, &e) == 0, "again: every level exists, nothing to do");
    char *slash = tmp_path("mk/a/b/c/");
    CHECK(gl_mkdir_p(slash, &e) == 0, "a trailing slash is the same directory");
    char *file = tmp_path("mk/file");
    write_bytes(file, "x", 1);
    char *under = tmp_path("mk/file/d");
    errno = 0;
    int rc = gl_mkdir_p(under, &e);
    CHECK(rc == -1 && errno == ENOTDIR && strstr(e.msg, "not a directory") &&
              strstr(e.msg, file),
          "a file in the path: ENOTDIR, naming it (%s)", e.msg);
    errno = 0;
    CHECK(gl_mkdir_p(file, &e) == -1 && errno == ENOTDIR, "the path itself a file: ENOTDIR");
    CHECK(gl_mkdir_p("", &e) == -1 && errno == ENOENT, "an empty path: ENOENT");
    free(deep);
    free(slash);
    free(file);
    free(under);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_test_store_XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));

    test_create();
    test_write_read();
    test_transactions();
    test_summaries();
    test_crash_and_resume();
    test_bad_files();
    test_migrate_v3();
    test_migrate_fails_whole();
    test_migrate_v4();
    test_absent_and_diverged();
    test_busy();
    test_readers();
    test_heatmaps();
    test_mkdir_p();

    rm_tree(tmpdir);
    return check_finish();
}
