/* test_store_views: every query of sessions/queries.sql against synthetic
 * sessions (with the figures each must give), the views of schema 3 —
 * arms with a mixture-of-experts FFN paired only within one FFN, learned vs
 * random routers, and a version-2 file migrated (the migrations to schema 4
 * and 5 are test_store.c's) — and those of schema 5: comparisons at the
 * newest step every arm reached while still running its listed gate,
 * routing_benefit_rel's floor, evals_wide and params. */
#include "store_fixture.h"

#include "floatfmt.h"

static int64_t moe_arm(store *s, int64_t session, uint32_t arm, const char *name,
                       const char *mode, const char *config, double val_loss);

/* ---- schema 5: comparisons that mean what they say ---------------------- */

/* One arm of a session: an evaluation every 100 steps up to `full` and one
 * at `end` (ppl = base - step / 100), the gate changes given (swap and
 * set_k events, in step order) and a final status at `end`. */
static int64_t timed_arm(store *s, int64_t session, uint32_t arm, gate_mode mode,
                         const char *config, const tel_record *changes, size_t nchanges,
                         uint64_t full, uint64_t end, double base, run_status status)
{
    gl_error err = {{0}};
    store_run_desc d = {.arm = arm, .name = gate_mode_name(mode), .mode = gate_mode_name(mode),
                        .k = 16, .seed = 1, .config_json = config};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    GL_ASSERT(store_begin(s, &err) == 0);
    size_t c = 0;
    for (uint64_t step = 100; step <= end; step += step < full ? 100 : end - full) {
        for (; c < nchanges && changes[c].step < step; c++)
            GL_ASSERT(write_or_die(s, run, &changes[c]) == 0);
        tel_record ev = rec_eval(step, log(base - (double)step / 100.0), NAN);
        GL_ASSERT(write_or_die(s, run, &ev) == 0);
        if (step == end)
            break;
    }
    for (; c < nchanges; c++)
        GL_ASSERT(write_or_die(s, run, &changes[c]) == 0);
    tel_record st = rec_status(end, status);
    GL_ASSERT(write_or_die(s, run, &st) == 0);
    GL_ASSERT(store_commit(s, &err) == 0);
    return run;
}

/* The text of one column of the first row of sql, "NULL" for a NULL. */
static void cell(sqlite3 *db, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st;
    GL_ASSERT(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
    int row = sqlite3_step(st) == SQLITE_ROW;
    const unsigned char *t = row ? sqlite3_column_text(st, 0) : NULL;
    snprintf(out, size, "%s", !row ? "(no row)" : t ? (const char *)t : "NULL");
    sqlite3_finalize(st);
}

static void test_aligned_comparisons(void)
{
    char *path = tmp_path("aligned.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    /* the session of issue 11: q pressed with the arms at different steps;
     * random was swapped to sigmoid at 238 and had its k raised at 400 */
    int64_t session = store_session_begin(s, "gatelab run --arms soft,random,dense,...", &err);
    tel_record rnd_changes[] = {rec_event(238, EV_SWAP, GATE_SIGMOID, 16, "random -> sigmoid"),
                                rec_event(400, EV_SET_K, GATE_SIGMOID, 32, "k 16 -> 32")};
    tel_record topk_changes[] = {rec_event(50, EV_SWAP, GATE_SOFT, 16, "topk -> soft")};
    int64_t soft = timed_arm(s, session, 0, GATE_SOFT, "{}", NULL, 0, 600, 645, 30, RUN_STOPPED);
    int64_t rnd = timed_arm(s, session, 1, GATE_RANDOM, "{}", rnd_changes, 2, 1000, 1000, 32,
                            RUN_STOPPED);
    int64_t dense = timed_arm(s, session, 2, GATE_DENSE, "{}", NULL, 0, 1100, 1132, 28,
                              RUN_FINISHED);
    int64_t topk = timed_arm(s, session, 3, GATE_TOPK, "{}", topk_changes, 1, 300, 300, 31,
                             RUN_FINISHED);
    int64_t topk_rnd = timed_arm(s, session, 4, GATE_TOPK_RANDOM, "{}", NULL, 0, 300, 300, 33,
                                 RUN_FINISHED);
    /* a session where random and dense end within 1% of each other */
    int64_t near = store_session_begin(s, "gatelab run --arms soft,random,dense", &err);
    int64_t n_soft = timed_arm(s, near, 0, GATE_SOFT, "{}", NULL, 0, 200, 200, 21.95,
                               RUN_FINISHED);
    int64_t n_rnd = timed_arm(s, near, 1, GATE_RANDOM, "{}", NULL, 0, 200, 200, 22.0,
                              RUN_FINISHED);
    int64_t n_dense = timed_arm(s, near, 2, GATE_DENSE, "{}", NULL, 0, 200, 200, 21.9,
                                RUN_FINISHED);
    store_close(s);

    sqlite3 *db = raw_open(path);
    char sql[512], got[256];
    snprintf(sql, sizeof sql,
             "SELECT step || '|' || learned_ppl || '|' || random_ppl || '|' || dense_ppl || '|'"
             " || round(routing_benefit, 9) || '|' || round(routing_benefit_rel, 9) || '|'"
             " || status || '|' || coalesce(rel_note, 'NULL')"
             " FROM learned_vs_random WHERE learned_run = %lld AND random_run = %lld"
             " AND dense_run = %lld", (long long)soft, (long long)rnd, (long long)dense);
    cell(db, sql, got, sizeof got);
    CHECK(strcmp(got, "200|28.0|30.0|26.0|2.0|0.5|at last clean step 200: random swapped to "
                      "sigmoid at 238|NULL") == 0,
          "soft (to 645) vs random (swapped at 238, k raised at 400) vs dense (to 1132): "
          "compared at 200, the newest step all reached before random's swap: %s", got);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(step, 'NULL') || '|' || coalesce(learned_ppl, 'NULL') || '|'"
             " || coalesce(routing_benefit, 'NULL') || '|' || coalesce(routing_benefit_rel, 'NULL')"
             " || '|' || status || '|' || rel_note"
             " FROM learned_vs_random WHERE learned_run = %lld AND random_run = %lld",
             (long long)topk, (long long)topk_rnd);
    cell(db, sql, got, sizeof got);
    CHECK(strcmp(got, "NULL|NULL|NULL|NULL|left out: topk swapped to soft at 50|left out") == 0,
          "topk swapped before its first evaluation: left out, saying why: %s", got);
    CHECK(raw_int(db, "SELECT count(*) FROM learned_vs_random") == 3,
          "one row per pair, left-out pairs included");

    snprintf(sql, sizeof sql,
             "SELECT step || '|' || status || '|' || round(routing_benefit, 9) || '|'"
             " || coalesce(routing_benefit_rel, 'NULL') || '|' || rel_note"
             " FROM learned_vs_random WHERE learned_run = %lld AND random_run = %lld"
             " AND dense_run = %lld", (long long)n_soft, (long long)n_rnd, (long long)n_dense);
    cell(db, sql, got, sizeof got);
    CHECK(strcmp(got, "200|aligned|0.05|NULL|"
                      "|random - dense| = 0.1 ppl: below the floor of 1% of dense (0.199)") == 0,
          "|random - dense| under 1%% of dense: routing_benefit_rel NULL, with the reason: %s",
          got);

    /* evals_wide: one column per arm */
    snprintf(sql, sizeof sql,
             "SELECT group_concat(step || ':' || coalesce(round(arm0, 6), '-') || ','"
             " || coalesce(round(arm1, 6), '-') || ',' || coalesce(round(arm2, 6), '-') || ','"
             " || coalesce(round(arm3, 6), '-') || ',' || coalesce(arm5, '-'), ' ')"
             " FROM (SELECT * FROM evals_wide WHERE session = %lld AND step IN"
             " (200, 300, 645, 1000, 1132) ORDER BY step)", (long long)session);
    cell(db, sql, got, sizeof got);
    CHECK(strcmp(got, "200:28.0,30.0,26.0,29.0,- 300:27.0,29.0,25.0,28.0,- 645:23.55,-,-,-,- "
                      "1000:-,22.0,18.0,-,- 1132:-,-,16.68,-,-") == 0,
          "evals_wide: val ppl per arm and step (%s)", got);
    CHECK(raw_int(db, "SELECT count(*) FROM evals_wide") == 13 + 2,
          "evals_wide: one row per session and evaluation step (11 + 645 + 1132, and 2)");
    sqlite3_close(db);
    free(path);
}

/* params: the run's configuration as typed */
static void test_params(void)
{
    char fl[FLOATFMT_SIZE], tp[FLOATFMT_SIZE], ck[FLOATFMT_SIZE], wh[FLOATFMT_SIZE],
        big[FLOATFMT_SIZE];
    CHECK(strcmp(floatfmt_shortest(3e-3f, fl, sizeof fl), "0.003") == 0 &&
              strcmp(floatfmt_shortest(1e-5f, tp, sizeof tp), "1e-05") == 0 &&
              strcmp(floatfmt_shortest(1.0f, ck, sizeof ck), "1") == 0 &&
              strcmp(floatfmt_shortest(100.0f, wh, sizeof wh), "100") == 0 &&
              strcmp(floatfmt_shortest(3.40282347e38f, big, sizeof big), "3.4028235e+38") == 0,
          "floatfmt: 3e-3 -> %s, 1e-5 -> %s, 1 -> %s, 100 -> %s, FLT_MAX -> %s", fl, tp, ck,
          wh, big);
    int exact = 1;
    const float probe[] = {0.1f,    3e-4f,   1.17549435e-38f, 3.40282347e38f, 0.3333333f,
                           -2.5e-7f, 86400.f, 16777216.f,      -1e10f,         1e20f};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        char b[FLOATFMT_SIZE];
        floatfmt_shortest(probe[i], b, sizeof b);
        exact &= strtof(b, NULL) == probe[i];
    }
    CHECK(exact, "floatfmt: every probe reads back to the same float");

    char *path = tmp_path("params.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "gatelab run --lr 3e-3", &err);
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"mode\":\"soft\",\"lr\":%s,\"gate_temp\":%s,\"k\":16,\"data\":null,"
             "\"argv\":[\"--lr\",\"3e-3\"]}",
             floatfmt_shortest(3e-3f, fl, sizeof fl), floatfmt_shortest(1e-5f, tp, sizeof tp));
    int64_t run = moe_arm(s, session, 0, "soft", "soft", cfg, 1.0);
    store_close(s);
    sqlite3 *db = raw_open(path);
    char sql[256], got[256];
    snprintf(sql, sizeof sql,
             "SELECT group_concat(key || '=' || coalesce(value_text, 'NULL') || '/'"
             " || coalesce(value_num, 'NULL'), ' ') FROM params WHERE run = %lld", (long long)run);
    cell(db, sql, got, sizeof got);
    CHECK(strcmp(got, "mode=soft/NULL lr=0.003/0.003 gate_temp=1e-05/1.0e-05 k=16/16 "
                      "data=NULL/NULL argv=[\"--lr\",\"3e-3\"]/NULL") == 0,
          "params: every top-level field, values as typed (%s)", got);
    snprintf(sql, sizeof sql, "SELECT gatelab_version || '|' || git_rev FROM run_final"
                              " WHERE run = %lld", (long long)run);
    cell(db, sql, got, sizeof got);
    char want[96];
    snprintf(want, sizeof want, "%s|%s", GL_VERSION, gl_git_rev());
    CHECK(strcmp(got, want) == 0, "run_final: the version and git revision of the binary (%s)",
          got);
    sqlite3_close(db);
    free(path);
}

/* ---- schema 3: arms with a mixture-of-experts FFN ---------------------- */

/* One finished run with a config JSON and a final val loss. */
static int64_t moe_arm(store *s, int64_t session, uint32_t arm, const char *name,
                       const char *mode, const char *config, double val_loss)
{
    gl_error err = {{0}};
    store_run_desc d = {.arm = arm, .name = name, .mode = mode, .k = 16, .seed = 1,
                        .config_json = config};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    GL_ASSERT(store_begin(s, &err) == 0);
    tel_record ev = rec_eval(100, val_loss, NAN);
    GL_ASSERT(write_or_die(s, run, &ev) == 0);
    tel_record st = rec_status(100, RUN_FINISHED);
    GL_ASSERT(write_or_die(s, run, &st) == 0);
    GL_ASSERT(store_commit(s, &err) == 0);
    return run;
}

/* ---- sessions/queries.sql ----------------------------------------------- */

typedef struct {
    size_t rows;
    int cols;
    char names[16][32];
    char first[16][64];
} query_result;

static int query_row(void *ctx, int n, char **values, char **names)
{
    query_result *q = ctx;
    if (q->rows++ == 0) {
        q->cols = n < 16 ? n : 16;
        for (int i = 0; i < q->cols; i++) {
            snprintf(q->names[i], sizeof q->names[i], "%s", names[i]);
            snprintf(q->first[i], sizeof q->first[i], "%s", values[i] ? values[i] : "NULL");
        }
    }
    return 0;
}

static const char *query_col(const query_result *q, const char *name)
{
    for (int i = 0; i < q->cols; i++)
        if (strcmp(q->names[i], name) == 0)
            return q->first[i];
    return "";
}

static char *read_queries(void)
{
    static const char *const where[] = {"sessions/queries.sql", "../sessions/queries.sql",
                                        "../../sessions/queries.sql"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        size_t n;
        unsigned char *b = read_bytes(where[i], &n);
        if (b) {
            char *s = xmalloc(n + 1);
            memcpy(s, b, n);
            s[n] = '\0';
            free(b);
            return s;
        }
    }
    return NULL;
}

static void test_queries(void)
{
    char *path = tmp_path("queries.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t first_soft = 0;
    for (uint64_t seed = 1; seed <= 2; seed++) {
        int64_t session = store_session_begin(s, "gatelab run --arms soft,random,dense", &err);
        int64_t soft = fill_arm(s, session, 0, GATE_SOFT, seed, RUN_FINISHED);
        GL_ASSERT(soft > 0);
        if (!first_soft)
            first_soft = soft;
        GL_ASSERT(fill_arm(s, session, 1, GATE_RANDOM, seed, RUN_FINISHED) > 0);
        GL_ASSERT(fill_arm(s, session, 2, GATE_DENSE, seed, seed == 1 ? RUN_FINISHED : RUN_DIVERGED) > 0);
        GL_ASSERT(store_session_end(s, session, &err) == 0);
    }
    /* a session of mixture-of-experts arms, for the router query */
    int64_t session = store_session_begin(s, "gatelab run --arms dense,dense+moe,...", &err);
    moe_arm(s, session, 0, "dense", "dense", "{}", 1.3);
    moe_arm(s, session, 1, "dense+moe", "dense", "{\"experts\":4,\"router\":\"learned\"}", 1.2);
    moe_arm(s, session, 2, "dense+moe-random", "dense",
            "{\"experts\":4,\"router\":\"random\"}", 1.25);
    GL_ASSERT(store_session_end(s, session, &err) == 0);
    /* steering from outside (schema 6): a pause sent to the first session,
     * applied by the soft arm at step 50 (its event carries the source),
     * and a swap rejected */
    int64_t cmd, cmd2;
    GL_ASSERT(store_command_add(s, 1, 0, "pause", NULL, &cmd, &err) == 0);
    GL_ASSERT(store_command_add(s, 1, first_soft, "swap", "soft", &cmd2, &err) == 0);
    tel_record ev = {.kind = REC_EVENT, .step = 50, .wall_ms = 1700000000000.0};
    ev.u.event.kind = EV_PAUSE;
    ev.u.event.mode = GATE_SOFT;
    ev.u.event.k = 16;
    ev.u.event.command = (uint64_t)cmd;
    snprintf(ev.u.event.detail, sizeof ev.u.event.detail, "sent");
    GL_ASSERT(store_write(s, first_soft, &ev, &err) == 0);
    tel_record done = {.kind = REC_COMMAND, .step = 50};
    done.u.command.id = (uint64_t)cmd;
    done.u.command.applied = 1;
    GL_ASSERT(store_write(s, 0, &done, &err) == 0);
    done.u.command.id = (uint64_t)cmd2;
    done.u.command.applied = 0;
    snprintf(done.u.command.reason, sizeof done.u.command.reason,
             "arm soft already runs the soft gate");
    GL_ASSERT(store_write(s, 0, &done, &err) == 0);
    store_close(s);

    char *sql = read_queries();
    CHECK(sql != NULL, "sessions/queries.sql found");
    if (!sql) {
        free(path);
        return;
    }
    sqlite3 *db = raw_open(path);
    size_t named = 0;
    const char *found[] = {"learned_vs_random", "swap_train_loss", "gate_over_time", "throughput"};
    int seen[4] = {0};
    /* each query runs from a line starting "-- name:" to the next such line */
    for (char *at = strncmp(sql, "-- name:", 8) == 0 ? sql : strstr(sql, "\n-- name:"); at;) {
        at += *at == '\n';
        char *next = strstr(at, "\n-- name:");
        char name[64];
        sscanf(at + 8, " %63s", name);
        size_t len = next ? (size_t)(next - at) : strlen(at);
        char *q = xmalloc(len + 1);
        memcpy(q, at, len);
        q[len] = '\0';
        query_result res = {0};
        char *msg = NULL;
        int rc = sqlite3_exec(db, q, query_row, &res, &msg);
        CHECK(rc == SQLITE_OK && res.rows > 0, "query %s: %zu rows (%s)", name, res.rows,
              msg ? msg : "ok");
        sqlite3_free(msg);
        named++;
        if (strcmp(name, "learned_vs_random") == 0) {
            seen[0] = 1;
            CHECK(res.rows == 2 && atof(query_col(&res, "routing_benefit")) > 0 &&
                      strcmp(query_col(&res, "step"), "150") == 0 &&
                      strcmp(query_col(&res, "status"),
                             "at last clean step 150: soft swapped to topk at 150") == 0,
                  "learned_vs_random: one row per seed, soft beats random by %s ppl at step %s, "
                  "its last before the swap (%s)", query_col(&res, "routing_benefit"),
                  query_col(&res, "step"), query_col(&res, "status"));
        } else if (strcmp(name, "swap_train_loss") == 0) {
            seen[1] = 1;
            CHECK(res.rows == 2 && strcmp(query_col(&res, "n_before"), "100") == 0 &&
                      strcmp(query_col(&res, "n_after"), "100") == 0 &&
                      atof(query_col(&res, "loss_before")) > atof(query_col(&res, "loss_after")),
                  "swap_train_loss: 100 steps each side, before %s after %s",
                  query_col(&res, "loss_before"), query_col(&res, "loss_after"));
        } else if (strcmp(name, "gate_over_time") == 0) {
            seen[2] = 1;
            CHECK(res.rows == 2 * 2 * 2 * (STEPS / EVAL_EVERY),
                  "gate_over_time: a row per learned/random run, layer and evaluation (%zu)",
                  res.rows);
        } else if (strcmp(name, "router_learned_vs_random") == 0) {
            CHECK(res.rows == 1 && strcmp(query_col(&res, "ffn"), "moe4") == 0 &&
                      strcmp(query_col(&res, "routing_benefit"), "0.17") == 0,
                  "router_learned_vs_random: the learned router's one twin, benefit %s ppl (exp 1.25 - exp 1.2)",
                  query_col(&res, "routing_benefit"));
        } else if (strcmp(name, "commands_by_session") == 0) {
            CHECK(res.rows == 2 && strcmp(query_col(&res, "target"), "every arm") == 0 &&
                      strcmp(query_col(&res, "state"), "applied") == 0 &&
                      strcmp(query_col(&res, "applied_step"), "50") == 0,
                  "commands_by_session: both commands, the first for every arm applied at %s",
                  query_col(&res, "applied_step"));
        } else if (strcmp(name, "commands_with_events") == 0) {
            CHECK(res.rows == 1 && strcmp(query_col(&res, "event"), "pause") == 0 &&
                      strcmp(query_col(&res, "step"), "50") == 0 &&
                      strcmp(query_col(&res, "applied_step"), "50") == 0,
                  "commands_with_events: the applied pause beside its event at step %s",
                  query_col(&res, "step"));
        } else if (strcmp(name, "throughput") == 0) {
            seen[3] = 1;
            CHECK(res.rows == 9 && strcmp(query_col(&res, "steps"), "299") == 0 &&
                      atof(query_col(&res, "wall_s")) > 29.0,
                  "throughput: 9 runs, steps %s, wall %s s", query_col(&res, "steps"),
                  query_col(&res, "wall_s"));
        }
        free(q);
        at = next;
    }
    CHECK(named >= 6 && seen[0] && seen[1] && seen[2] && seen[3],
          "%zu named queries, the four required among them (%s, %s, %s, %s)", named, found[0],
          found[1], found[2], found[3]);
    sqlite3_close(db);
    free(sql);
    free(path);
}

static void test_moe_views(void)
{
    char *path = tmp_path("moe.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "gatelab run --arms ...", &err);
    const char *learned = "{\"experts\":4,\"router\":\"learned\"}";
    const char *random = "{\"experts\":4,\"router\":\"random\"}";
    int64_t soft = moe_arm(s, session, 0, "soft", "soft", "{}", 1.0);
    int64_t rnd = moe_arm(s, session, 1, "random", "random", "{}", 1.1);
    int64_t dense = moe_arm(s, session, 2, "dense", "dense", "{}", 1.3);
    int64_t soft_moe = moe_arm(s, session, 3, "soft+moe", "soft", learned, 0.9);
    int64_t dense_moe = moe_arm(s, session, 4, "dense+moe", "dense", learned, 1.2);
    int64_t dense_rnd = moe_arm(s, session, 5, "dense+moe-random", "dense", random, 1.25);
    store_close(s);

    sqlite3 *db = raw_open(path);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION,
          "a new database is at schema version %d", STORE_SCHEMA_VERSION);
    CHECK(raw_int(db, "SELECT count(*) FROM run_final WHERE ffn = 'moe4'") == 3 &&
              raw_int(db, "SELECT count(*) FROM run_final WHERE ffn = 'dense' AND router IS NULL") ==
                  3,
          "run_final: ffn moe4 for the three MoE arms, dense (router NULL) for the others");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM learned_vs_random WHERE learned_run = %lld AND random_run = %lld"
             " AND dense_run = %lld AND ffn = 'dense'",
             (long long)soft, (long long)rnd, (long long)dense);
    CHECK(raw_int(db, sql) == 1 && raw_int(db, "SELECT count(*) FROM learned_vs_random") == 1,
          "learned_vs_random pairs soft with random and dense within the dense FFN only "
          "(soft+moe has no random twin of its FFN)");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM router_learned_vs_random WHERE learned_run = %lld AND "
             "random_run = %lld AND dense_ffn_run = %lld AND mode = 'dense' AND ffn = 'moe4' AND "
             "abs(routing_benefit - (exp(1.25) - exp(1.2))) < 1e-9",
             (long long)dense_moe, (long long)dense_rnd, (long long)dense);
    CHECK(raw_int(db, sql) == 1 && raw_int(db, "SELECT count(*) FROM router_learned_vs_random") == 1,
          "router_learned_vs_random pairs dense+moe with dense+moe-random, dense FFN alongside "
          "(soft+moe has no random-router twin: %lld not listed)", (long long)soft_moe);
    CHECK(raw_int(db, "SELECT count(*) FROM router_learned_vs_random WHERE step = 100 AND"
                      " status = 'aligned'") == 1,
          "router_learned_vs_random: compared at step 100, which all three reached (aligned)");
    sqlite3_close(db);

    /* a version-2 file, as a version-2 gatelab left it, with the same arms */
    char *old = tmp_path("moe-v2.db");
    db = old_db_create(old, 2);
    raw_session(db, 1);
    raw_run(db, 1, 1, 0, "soft", "soft", "{}", "finished", 0, 1.0);
    raw_run(db, 2, 1, 1, "random", "random", "{}", "finished", 0, 1.1);
    raw_run(db, 3, 1, 2, "dense", "dense", "{}", "finished", 0, 1.3);
    raw_run(db, 4, 1, 3, "soft+moe", "soft", learned, "finished", 0, 0.9);
    raw_run(db, 5, 1, 4, "dense+moe", "dense", learned, "finished", 0, 1.2);
    raw_run(db, 6, 1, 5, "dense+moe-random", "dense", random, "finished", 0, 1.25);
    CHECK(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'router_learned_vs_random'")
              == 0, "version 2 has no router_learned_vs_random");
    sqlite3_close(db);
    s = store_open(old, STORE_EXISTING, &err);
    CHECK(s != NULL, "a version-2 database opens (%s)", s ? "migrated" : err.msg);
    if (s)
        store_close(s);
    db = raw_open(old);
    CHECK(raw_int(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION &&
              raw_int(db, "SELECT count(*) FROM router_learned_vs_random WHERE learned_run = 5"
                          " AND random_run = 6 AND dense_ffn_run = 3") == 1 &&
              raw_int(db, "SELECT count(*) FROM learned_vs_random WHERE learned_run = 1"
                          " AND random_run = 2 AND dense_run = 3") == 1 &&
              raw_int(db, "SELECT count(*) FROM runs") == 6,
          "... and is migrated to version %d with its runs kept, the views pairing them",
          STORE_SCHEMA_VERSION);
    sqlite3_close(db);
    free(old);
    free(path);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_test_store_views_XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));

    test_queries();
    test_moe_views();
    test_aligned_comparisons();
    test_params();

    rm_tree(tmpdir);
    return check_finish();
}
