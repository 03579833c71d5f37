/* test_store: the SQLite store. Creating and reopening (schema version,
 * application_id, WAL, the database id), sessions and runs, every record
 * kind written in batched transactions and read back through the read API
 * and through raw SQL on the views, summaries after replaced and deleted
 * metric rows, segments, crash detection with a dead and a live owner,
 * resume, absent and diverged metrics, heatmaps read back, and gl_mkdir_p,
 * which makes a new database's directories. Elsewhere: the files it must
 * refuse (test_store_files.c), sharing the file with other connections
 * (test_store_share.c), the migrations (test_store_migrate.c), the views and
 * sessions/queries.sql (test_store_views.c). */
#include "store_fixture.h"

#include <time.h>

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

/* gl_mkdir_p (common.c): what store_open makes a new database's directory
 * with, and the arms their checkpoint directories */
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

/* Detach (src/live_detach.c): the process that trains on after a fork takes
 * the runs over. A running or paused run gets this process as its owner and
 * its heartbeat from then on; an ended one is left as it is. */
static void test_adopt(void)
{
    char *path = tmp_path("adopt.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "adopt", &err);
    int64_t running = fill_arm(s, session, 0, GATE_SOFT, 7, RUN_RUNNING);
    int64_t paused = fill_arm(s, session, 1, GATE_RANDOM, 7, RUN_PAUSED);
    int64_t finished = fill_arm(s, session, 2, GATE_DENSE, 7, RUN_FINISHED);
    GL_ASSERT(running > 0 && paused > 0 && finished > 0);
    store_close(s);
    /* the parent that detached: alive while the child adopts (here: ours) */
    sqlite3 *db = raw_open(path);
    char sql[512];
    pid_t parent = getppid();
    snprintf(sql, sizeof sql,
             "UPDATE runs SET owner_pid = %d,"
             " heartbeat = strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now', '-10 seconds')",
             (int)parent);
    raw_exec(db, sql);
    s = store_open(path, STORE_EXISTING, &err);
    CHECK(s && store_crashed_on_open(s) == 0, "reopened with the owner alive: nothing crashed");
    if (!s) {
        sqlite3_close(db);
        free(path);
        return;
    }
    int a_run = -1, a_paused = -1, a_fin = -1;
    CHECK(store_run_adopt(s, running, &a_run, &err) == 0 &&
              store_run_adopt(s, paused, &a_paused, &err) == 0 &&
              store_run_adopt(s, finished, &a_fin, &err) == 0,
          "store_run_adopt (%s)", err.msg);
    CHECK(a_run == 1 && a_paused == 1 && a_fin == 0,
          "running and paused runs adopted, the finished one not (%d %d %d)", a_run, a_paused,
          a_fin);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM runs WHERE owner_pid = %d AND id IN (%lld, %lld)"
             " AND julianday('now') - julianday(heartbeat) < 5.0 / 86400",
             (int)getpid(), (long long)running, (long long)paused);
    CHECK(raw_int(db, sql) == 2, "their owner is this process, their heartbeat now");
    snprintf(sql, sizeof sql, "SELECT owner_pid FROM runs WHERE id = %lld", (long long)finished);
    CHECK(raw_int(db, sql) == parent, "the finished run keeps its owner");
    /* adopted runs are kept alive by this handle's commits */
    raw_exec(db, "UPDATE runs SET heartbeat = '2000-01-01T00:00:00.000Z'");
    CHECK(store_begin(s, &err) == 0 && store_commit(s, &err) == 0, "a commit (%s)", err.msg);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM runs WHERE heartbeat > '2000-01-01T00:00:00.000Z'");
    CHECK(raw_int(db, sql) == 2, "a commit refreshes the adopted runs' heartbeat (and only theirs)");
    CHECK(store_run_adopt(s, 9999, &a_run, &err) == 0 && a_run == 0,
          "no such run: nothing adopted");
    store_close(s);
    sqlite3_close(db);
    free(path);
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
    test_adopt();
    test_absent_and_diverged();
    test_heatmaps();
    test_mkdir_p();

    rm_tree(tmpdir);
    return check_finish();
}
