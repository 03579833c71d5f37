/* test_store_migrate: the store's forward-only migrations on files made as
 * older gatelab versions made them — a version-3 file to 4 and a version-4
 * file to 5 with every row kept (names, tags and notes arrive empty), and a
 * migration that fails part-way leaving the file exactly as it was, and a
 * version-5 file to 6 (the commands table) with the commands API on it, and
 * a version-6 file to 7 (the absorption_trace view, checked on hand-made
 * rows). The rest of the store is test_store.c. */
#include "store_fixture.h"

#include <math.h>

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
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "user_version is %d",
          STORE_SCHEMA_VERSION);
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

/* ---- migration from schema 5 to 6: the commands table ------------------ */

static const char *const v5_tables[] = {
    "sessions", "runs", "metrics", "layer_metrics", "summaries", "events", "segments",
    "heatmaps", "checkpoints", "experiments", "experiment_runs", "experiment_results", "tags",
};
#define N_V5_TABLES (sizeof v5_tables / sizeof v5_tables[0])

static int first_row(void *ctx, const store_command_row *row)
{
    *(store_command_row *)ctx = *row;
    return 1;
}

static int count_cmd(void *ctx, const store_command_row *row)
{
    (void)row;
    (*(size_t *)ctx)++;
    return 0;
}

static int count_absorption(void *ctx, const store_absorption_row *row)
{
    (void)row;
    (*(size_t *)ctx)++;
    return 0;
}

static void test_migrate_v5(void)
{
    char *path = tmp_path("v5.db");
    sqlite3 *db = old_file(path, 5);
    raw_exec(db, "INSERT INTO tags (run, key, value) VALUES (1, 'lr', '3e-3');"
                 "UPDATE sessions SET name = 'baseline' WHERE id = 1;"
                 "INSERT INTO db_info (key, value) VALUES ('id', 'fedcba9876543210fedcba9876543210')");
    char *before[N_V5_TABLES];
    for (size_t t = 0; t < N_V5_TABLES; t++)
        before[t] = table_text(db, v5_tables[t]);
    sqlite3_close(db);

    gl_error err = {{0}};
    store *s = store_open(path, STORE_EXISTING, &err);
    CHECK(s != NULL, "a version-5 file opens (%s)", s ? "migrated" : err.msg);
    if (!s) {
        for (size_t t = 0; t < N_V5_TABLES; t++)
            free(before[t]);
        free(path);
        return;
    }
    db = raw_open(path);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "user_version is %d",
          STORE_SCHEMA_VERSION);
    size_t same = 0;
    for (size_t t = 0; t < N_V5_TABLES; t++) {
        char *after = table_text(db, v5_tables[t]);
        same += strcmp(after, before[t]) == 0;
        free(after);
        free(before[t]);
    }
    CHECK(same == N_V5_TABLES, "5 -> 6: every row of the %zu tables is kept (%zu equal)",
          N_V5_TABLES, same);
    CHECK(raw_int(db, "SELECT count(*) FROM commands") == 0 &&
              raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                          " name = 'commands_pending' AND sql LIKE '%WHERE state = ''pending''%'") == 1,
          "an empty commands table with its partial index of pending rows");
    /* the owner's poll reads the partial index, not the table */
    char plan[512];
    sqlite3_stmt *q;
    GL_ASSERT(sqlite3_prepare_v2(db,
                                 "EXPLAIN QUERY PLAN SELECT id FROM commands WHERE session = 1"
                                 " AND state = 'pending' AND id > 0 ORDER BY id",
                                 -1, &q, NULL) == SQLITE_OK);
    plan[0] = '\0';
    while (sqlite3_step(q) == SQLITE_ROW) {
        const unsigned char *d = sqlite3_column_text(q, 3);
        strncat(plan, d ? (const char *)d : "", sizeof plan - strlen(plan) - 1);
    }
    sqlite3_finalize(q);
    CHECK(strstr(plan, "commands_pending") != NULL, "the pending poll uses its index (%s)", plan);

    /* the API on the migrated file */
    int64_t id1 = 0, id2 = 0, id3 = 0;
    CHECK(store_command_add(s, 1, 2, "swap", "random", &id1, &err) == 0 && id1 > 0,
          "a command for run 2 of session 1 is added (%s)", err.msg);
    CHECK(store_command_add(s, 1, 0, "pause", NULL, &id2, &err) == 0 && id2 > id1 &&
              raw_int(db, "SELECT count(*) FROM commands WHERE run IS NULL AND arg IS NULL") == 1,
          "one for every arm: run and arg NULL");
    CHECK(store_command_add(s, 1, 0, "stop", "", &id3, &err) == 0, "a third");
    CHECK(store_command_add(s, 9, 0, "pause", NULL, NULL, &err) == -1 &&
              strstr(err.msg, "no session 9"),
          "a missing session is refused, naming it (%s)", err.msg);
    CHECK(store_command_add(s, 2, 1, "pause", NULL, NULL, &err) == -1 &&
              strstr(err.msg, "no run 1 in session 2"),
          "a run of another session is refused (%s)", err.msg);
    CHECK(store_command_add(s, 1, 0, "", NULL, NULL, &err) == -1 &&
              raw_int(db, "SELECT count(*) FROM commands") == 3,
          "an empty kind is refused; nothing refused was inserted");
    store_command_row row;
    CHECK(store_command_pending(s, 1, 0, first_row, &row, &err) == 1 && row.id == id1 &&
              row.run == 2 && strcmp(row.kind, "swap") == 0 && strcmp(row.arg, "random") == 0 &&
              strcmp(row.state, "pending") == 0 && row.requested[0],
          "the poll reads the first pending row with its fields");
    size_t n = 0;
    CHECK(store_command_pending(s, 1, id1, count_cmd, &n, &err) == 0 && n == 2,
          "after its id, the two others (%zu)", n);
    n = 0;
    CHECK(store_command_pending(s, 2, 0, count_cmd, &n, &err) == 0 && n == 0,
          "another session has none");
    int changed = -1;
    CHECK(store_command_applied(s, id1, 812, NULL, &changed, &err) == 0 && changed == 1 &&
              store_command_get(s, id1, &row, &err) == 0 && strcmp(row.state, "applied") == 0 &&
              row.has_step && row.applied_step == 812 && row.decided[0] && !row.reason[0],
          "applied at step 812, with a decision time");
    CHECK(store_command_rejected(s, id1, "too late", &changed, &err) == 0 && changed == 0 &&
              store_command_get(s, id1, &row, &err) == 0 && strcmp(row.state, "applied") == 0,
          "a decided row is never decided again");
    CHECK(store_command_rejected(s, id2, "run 3 has ended", &changed, &err) == 0 &&
              changed == 1 && store_command_get(s, id2, &row, &err) == 0 &&
              strcmp(row.state, "rejected") == 0 && !row.has_step &&
              strcmp(row.reason, "run 3 has ended") == 0,
          "rejected with its reason, no step");
    CHECK(store_command_reject_pending(s, 1, "the session ended", &changed, &err) == 0 &&
              changed == 1 && store_command_get(s, id3, &row, &err) == 0 &&
              strcmp(row.reason, "the session ended") == 0,
          "the session's end rejects what is still pending (%d)", changed);
    n = 0;
    CHECK(store_command_pending(s, 1, 0, count_cmd, &n, &err) == 0 && n == 0, "none pending");
    CHECK(store_command_get(s, 99, &row, &err) == -1 && strstr(err.msg, "no command 99"),
          "a missing command is named (%s)", err.msg);
    CHECK(sqlite3_exec(db, "UPDATE commands SET state = 'applied', applied_step = NULL"
                           " WHERE id = 3", NULL, NULL, NULL) != SQLITE_OK &&
              sqlite3_exec(db, "UPDATE commands SET state = 'done' WHERE id = 3", NULL, NULL,
                           NULL) != SQLITE_OK,
          "the schema refuses an applied row without a step and an unknown state");
    store_close(s);
    raw_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 2");
    CHECK(raw_int(db, "SELECT count(*) FROM commands") == 2,
          "deleting a run deletes its commands");
    raw_exec(db, "DELETE FROM sessions WHERE id = 1");
    CHECK(raw_int(db, "SELECT count(*) FROM commands") == 0,
          "deleting a session deletes its commands");
    sqlite3_close(db);
    free(path);
}

/* ---- migration from schema 6 to 7: the absorption_trace view ---------- */

/* run 2 (random) evaluated at step 0 and 200, two layers, two heads in
 * layer 0: layer 0's F1 goes 0.3 -> 0.55 (index 0.25 / 0.7), layer 1's
 * stays 0.3 (index 0), the model's 0.3 -> 0.425 (index 0.125 / 0.7) */
static void test_migrate_v6(void)
{
    char *path = tmp_path("v6.db");
    sqlite3 *db = old_file(path, 6);
    raw_exec(db, "INSERT INTO layer_metrics (run, step, layer, head, key, value) VALUES"
                 " (2, 0, 0, 0, 'f1', 0.2), (2, 0, 0, 1, 'f1', 0.4), (2, 0, 1, 0, 'f1', 0.3),"
                 " (2, 200, 0, 0, 'f1', 0.5), (2, 200, 0, 1, 'f1', 0.6), (2, 200, 1, 0, 'f1', 0.3),"
                 " (2, 200, 0, 0, 'oracle_drift', 0.1), (2, 200, 0, 1, 'oracle_drift', 0.3),"
                 " (2, 200, 1, 0, 'oracle_drift', 0.4), (2, 200, 0, 0, 'chance_f1', 0.25),"
                 " (2, 200, 0, 0, 'mass_kept', 0.5)");
    char *before[N_V5_TABLES];
    for (size_t t = 0; t < N_V5_TABLES; t++)
        before[t] = table_text(db, v5_tables[t]);
    sqlite3_close(db);

    gl_error err = {{0}};
    store *s = store_open(path, STORE_EXISTING, &err);
    CHECK(s != NULL, "a version-6 file opens (%s)", s ? "migrated" : err.msg);
    if (!s) {
        for (size_t t = 0; t < N_V5_TABLES; t++)
            free(before[t]);
        free(path);
        return;
    }
    db = raw_open(path);
    CHECK(raw_int(db, "PRAGMA user_version") == 7, "user_version is 7");
    size_t same = 0;
    for (size_t t = 0; t < N_V5_TABLES; t++) {
        char *after = table_text(db, v5_tables[t]);
        same += strcmp(after, before[t]) == 0;
        free(after);
        free(before[t]);
    }
    CHECK(same == N_V5_TABLES, "6 -> 7: every row of the %zu tables is kept (%zu equal)",
          N_V5_TABLES, same);
    double l0 = raw_double(db, "SELECT absorption_index FROM absorption_trace WHERE run = 2"
                               " AND step = 200 AND layer = 0");
    double l1 = raw_double(db, "SELECT absorption_index FROM absorption_trace WHERE run = 2"
                               " AND step = 200 AND layer = 1");
    double mo = raw_double(db, "SELECT absorption_index FROM absorption_trace WHERE run = 2"
                               " AND step = 200 AND layer IS NULL");
    CHECK(fabs(l0 - 0.25 / 0.7) < 1e-12 && fabs(l1) < 1e-12 && fabs(mo - 0.125 / 0.7) < 1e-12,
          "absorption_trace: layer 0 (0.55-0.3)/0.7 = %.6f, layer 1 0 (%.6f), model "
          "(0.425-0.3)/0.7 = %.6f", l0, l1, mo);
    CHECK(fabs(raw_double(db, "SELECT oracle_drift FROM absorption_trace WHERE run = 2 AND"
                              " step = 200 AND layer = 0") - 0.2) < 1e-12 &&
              fabs(raw_double(db, "SELECT oracle_drift FROM absorption_trace WHERE run = 2 AND"
                                  " step = 200 AND layer IS NULL") - 0.3) < 1e-12 &&
              raw_int(db, "SELECT count(*) FROM absorption_trace WHERE run = 2 AND step = 0 AND"
                          " oracle_drift IS NULL AND absorption_index = 0") == 3,
          "oracle drift: the mean over heads per layer (0.2), over layers for the model (0.3); "
          "none at step 0, where the index is 0");
    CHECK(raw_int(db, "SELECT count(*) FROM absorption_trace WHERE run = 1 AND"
                      " absorption_index IS NULL AND f1_0 IS NULL") == 3 &&
              raw_int(db, "SELECT count(*) FROM absorption_trace WHERE run = 1") == 3,
          "a run without a step-0 evaluation has its trace and no index");
    size_t n = 0;
    CHECK(store_list_absorption(s, 2, 1, count_absorption, &n, &err) == 0 && n == 2,
          "store_list_absorption, model only: steps 0 and 200 (%zu)", n);
    n = 0;
    CHECK(store_list_absorption(s, 2, 0, count_absorption, &n, &err) == 0 && n == 6,
          "... and with the layers: 3 rows per evaluation (%zu)", n);
    sqlite3_close(db);
    store_close(s);
    free(path);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_test_migrate_XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));

    test_migrate_v3();
    test_migrate_fails_whole();
    test_migrate_v4();
    test_migrate_v5();
    test_migrate_v6();

    rm_tree(tmpdir);
    return check_finish();
}
