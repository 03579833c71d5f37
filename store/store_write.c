/* store_write: everything the store thread writes — sessions, runs and
 * their segments, telemetry records in batched transactions, heartbeats —
 * plus crash detection at open and taking a run over for `resume`. Every
 * statement comes from store_write_sql, prepared once by store_open. */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"

/* ---- statements (prepared by store_open) ---- */

#define LIVE_STATUS "('running', 'paused')"

const char *const store_write_sql[SW_COUNT] = {
    [SW_BEGIN] = "BEGIN IMMEDIATE",
    [SW_COMMIT] = "COMMIT",
    [SW_SESSION_END] = "UPDATE sessions SET ended_at = ?2 WHERE id = ?1",
    [SW_RUN_INSERT] =
        "INSERT INTO runs (session, arm, name, mode, k, frozen, seed, config, parent_run,"
        " start_step, status, started_at, owner_pid, host, heartbeat)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'running', ?11, ?12, ?13, ?11)",
    [SW_HEARTBEAT] = "UPDATE runs SET heartbeat = ?2 WHERE id = ?1",
    [SW_SEGMENT_INSERT] =
        "INSERT INTO segments (run, from_step, mode, k, frozen) VALUES (?1, ?2, ?3, ?4, ?5)",
    /* an open segment that would end where it began never was in force */
    [SW_SEGMENT_DROP_EMPTY] =
        "DELETE FROM segments WHERE run = ?1 AND to_step IS NULL AND from_step >= ?2",
    [SW_SEGMENT_CLOSE] =
        "UPDATE segments SET to_step = max(from_step, ?2) WHERE run = ?1 AND to_step IS NULL",
    [SW_METRIC_PUT] =
        "INSERT INTO metrics (run, key, step, wall_ms, value) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (run, key, step) DO UPDATE SET wall_ms = excluded.wall_ms,"
        " value = excluded.value",
    /* the train loss an evaluation carries never overrides the step's own */
    [SW_METRIC_ADD] =
        "INSERT INTO metrics (run, key, step, wall_ms, value) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (run, key, step) DO NOTHING",
    /* the absorption index of an evaluation (issue 16): its f1 against the
     * run's f1 at step 0; nothing without a step-0 evaluation */
    [SW_ABSORPTION_PUT] =
        "INSERT INTO metrics (run, key, step, wall_ms, value)"
        " SELECT t.run, 'absorption_index', t.step, ?3, (t.value - z.value) / (1.0 - z.value)"
        " FROM metrics t JOIN metrics z ON z.run = t.run AND z.key = 'f1' AND z.step = 0"
        " WHERE t.run = ?1 AND t.key = 'f1' AND t.step = ?2 AND z.value < 1.0"
        " ON CONFLICT (run, key, step) DO UPDATE SET wall_ms = excluded.wall_ms,"
        " value = excluded.value",
    [SW_LAYER_PUT] =
        "INSERT INTO layer_metrics (run, step, layer, head, key, value)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        " ON CONFLICT (run, key, layer, head, step) DO UPDATE SET value = excluded.value",
    [SW_EVENT_INSERT] =
        "INSERT INTO events (run, step, time, kind, detail, mode, k, frozen)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [SW_STATUS_SET] = "UPDATE runs SET status = ?2 WHERE id = ?1",
    [SW_STATUS_FINAL] =
        "UPDATE runs SET status = ?2, ended_at = ?3, final_step = ?4 WHERE id = ?1",
    [SW_CHECKPOINT_PUT] =
        "INSERT INTO checkpoints (run, step, path, resumable, created) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (run, path) DO UPDATE SET step = excluded.step,"
        " resumable = excluded.resumable, created = excluded.created",
    [SW_HEATMAP_PUT] =
        "INSERT INTO heatmaps (run, step, layer, head, kind, rows, cols, data)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (run, step, layer, head, kind) DO UPDATE SET rows = excluded.rows,"
        " cols = excluded.cols, data = excluded.data",
    [SW_LIVE_RUNS] =
        "SELECT id, owner_pid, host, heartbeat,"
        " (julianday('now') - julianday(heartbeat)) * 86400.0"
        " FROM runs WHERE status IN " LIVE_STATUS,
    /* the heartbeat read must still be there: a live owner may have just
     * refreshed it */
    [SW_MARK_CRASHED] =
        "UPDATE runs SET status = 'crashed', ended_at = ?2,"
        " final_step = coalesce((SELECT max(last_step) FROM summaries WHERE run = ?1), start_step)"
        " WHERE id = ?1 AND status IN " LIVE_STATUS " AND heartbeat = ?3"
        " RETURNING final_step",
    [SW_RUN_OWNER] =
        "SELECT status, owner_pid, host, (julianday('now') - julianday(heartbeat)) * 86400.0,"
        " start_step FROM runs WHERE id = ?1",
    [SW_DELETE_METRICS] = "DELETE FROM metrics WHERE run = ?1 AND step > ?2",
    [SW_DELETE_LAYER] = "DELETE FROM layer_metrics WHERE run = ?1 AND step > ?2",
    [SW_DELETE_EVENTS] = "DELETE FROM events WHERE run = ?1 AND step > ?2",
    [SW_DELETE_HEATMAPS] = "DELETE FROM heatmaps WHERE run = ?1 AND step > ?2",
    [SW_DELETE_CHECKPOINTS] = "DELETE FROM checkpoints WHERE run = ?1 AND step > ?2",
    [SW_DELETE_SEGMENTS] = "DELETE FROM segments WHERE run = ?1 AND from_step > ?2",
    [SW_SEGMENT_REOPEN] =
        "UPDATE segments SET to_step = NULL WHERE id ="
        " (SELECT id FROM segments WHERE run = ?1 ORDER BY from_step DESC, id DESC LIMIT 1)",
    [SW_RUN_TAKE_OVER] =
        "UPDATE runs SET status = 'running', ended_at = NULL, final_step = NULL,"
        " owner_pid = ?2, host = ?3, heartbeat = ?4 WHERE id = ?1",
};

/* ---- time ---- */

static int64_t record_ms(const tel_record *r)
{
    return isfinite(r->wall_ms) && r->wall_ms > 0 ? (int64_t)llround(r->wall_ms)
                                                  : (int64_t)llround(gl_wall_ms());
}

/* ---- transactions ---- */

int store_in_transaction(const store *s)
{
    return !sqlite3_get_autocommit(s->db);
}

int store_begin(store *s, gl_error *err)
{
    if (store_in_transaction(s))
        return gl_fail(err, "%s: a transaction is already open", s->path);
    s->last_rc = SQLITE_OK;
    if (s->cap_live_tx < s->n_live) {
        free(s->live_tx);
        s->cap_live_tx = s->cap_live;
        s->live_tx = xmalloc(s->cap_live_tx * sizeof *s->live_tx);
    }
    if (s->n_live)
        memcpy(s->live_tx, s->live, s->n_live * sizeof *s->live);
    s->n_live_tx = s->n_live;
    int rc = store_exec(s, s->sw[SW_BEGIN], SQLITE_OK, err, "begin transaction");
    s->tx_saved = rc == 0;
    return rc;
}

/* After a failed statement or COMMIT, SQLite may or may not have rolled the
 * transaction back already; end it either way, and forget the runs the
 * transaction began or ended (store_begin kept the list as it was). */
void store_rollback(store *s)
{
    if (store_in_transaction(s))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);   /* cannot fail usefully */
    if (s->tx_saved) {
        /* cap_live never shrinks: the saved list fits */
        GL_ASSERT(s->n_live_tx <= s->cap_live);
        if (s->n_live_tx)
            memcpy(s->live, s->live_tx, s->n_live_tx * sizeof *s->live);
        s->n_live = s->n_live_tx;
        s->tx_saved = 0;
    }
}

static int commit(store *s, gl_error *err)
{
    if (store_exec(s, s->sw[SW_COMMIT], SQLITE_OK, err, "commit")) {
        store_rollback(s);
        return -1;
    }
    s->tx_saved = 0;   /* committed: the list stands */
    return 0;
}

/* A write made outside a transaction gets one of its own. */
static int tx_enter(store *s, int *opened, gl_error *err)
{
    *opened = !store_in_transaction(s);
    return *opened ? store_begin(s, err) : 0;
}

static int tx_leave(store *s, int opened, int rc, gl_error *err)
{
    if (!opened)
        return rc;
    if (rc) {
        store_rollback(s);
        return rc;
    }
    return commit(s, err);
}

/* ---- runs this handle keeps alive ---- */

static void live_add(store *s, int64_t run)
{
    for (size_t i = 0; i < s->n_live; i++)
        if (s->live[i] == run)
            return;
    if (s->n_live == s->cap_live) {
        s->cap_live = s->cap_live ? 2 * s->cap_live : 8;
        s->live = gl_grow(s->live, s->n_live, s->cap_live, sizeof *s->live);
    }
    s->live[s->n_live++] = run;
}

static void live_remove(store *s, int64_t run)
{
    for (size_t i = 0; i < s->n_live; i++)
        if (s->live[i] == run) {
            s->live[i] = s->live[--s->n_live];
            return;
        }
}

int store_commit(store *s, gl_error *err)
{
    if (!store_in_transaction(s))
        return gl_fail(err, "%s: commit without an open transaction", s->path);
    char now[32];
    store_iso_time(0, now);
    for (size_t i = 0; i < s->n_live; i++) {
        int rc = SQLITE_OK;
        store_bind_i64(s->sw[SW_HEARTBEAT], 1, s->live[i], &rc);
        store_bind_text(s->sw[SW_HEARTBEAT], 2, now, &rc);
        if (store_exec(s, s->sw[SW_HEARTBEAT], rc, err, "heartbeat")) {
            store_rollback(s);
            return -1;
        }
    }
    return commit(s, err);
}

/* ---- segments: which gate was in force when ---- */

static int segment_open(store *s, int64_t run, uint64_t step, const char *mode, uint32_t k,
                        int frozen, gl_error *err)
{
    sqlite3_stmt *st = s->sw[SW_SEGMENT_INSERT];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, step, &rc);
    store_bind_text(st, 3, mode, &rc);
    store_bind_i64(st, 4, k, &rc);
    store_bind_i64(st, 5, frozen != 0, &rc);
    return store_exec(s, st, rc, err, "open segment");
}

static int segment_close(store *s, int64_t run, uint64_t step, gl_error *err)
{
    sqlite3_stmt *st = s->sw[SW_SEGMENT_CLOSE];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, step, &rc);
    return store_exec(s, st, rc, err, "close segment");
}

/* ---- crash detection ---- */

typedef enum {
    OWNER_ALIVE,    /* fresh heartbeat and, on this host, the pid exists */
    OWNER_GONE,     /* on this host and the pid does not exist (ESRCH) */
    OWNER_SILENT,   /* heartbeat older than STORE_STALE_SECONDS (or unreadable) */
} owner_state;

/* The owner of a running or paused run. On another host only the heartbeat
 * can tell; a pid that exists but is not ours to signal (EPERM) is alive. */
static owner_state owner_check(const store *s, int64_t pid, const char *host, double age_s)
{
    if (!(age_s <= STORE_STALE_SECONDS))
        return OWNER_SILENT;
    if (strcmp(host, s->host) != 0)
        return OWNER_ALIVE;
    if (pid <= 0 || pid > INT_MAX)
        return OWNER_GONE;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        return OWNER_ALIVE;
    return OWNER_GONE;
}

typedef struct {
    int64_t run, pid;
    char heartbeat[32];
    char detail[REC_TEXT];
} crash_candidate;

static int mark_crashed(store *s, const crash_candidate *c, gl_error *err)
{
    char now[32];
    store_iso_time(0, now);
    sqlite3_stmt *st = s->sw[SW_MARK_CRASHED];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, c->run, &rc);
    store_bind_text(st, 2, now, &rc);
    store_bind_text(st, 3, c->heartbeat, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int marked = rc == SQLITE_ROW;
    uint64_t step = marked ? store_col_u64(st, 0) : 0;
    if (marked)
        rc = sqlite3_step(st);
    if (store_end(s, st, rc, err, "mark crashed run"))
        return -1;
    if (!marked)
        return 0;   /* its owner came back, or another process got there first */
    s->crashed_on_open++;
    if (segment_close(s, c->run, step, err))
        return -1;
    st = s->sw[SW_EVENT_INSERT];
    rc = SQLITE_OK;
    store_bind_i64(st, 1, c->run, &rc);
    store_bind_u64(st, 2, step, &rc);
    store_bind_text(st, 3, now, &rc);
    store_bind_text(st, 4, event_kind_name(EV_ERROR), &rc);
    store_bind_text(st, 5, c->detail, &rc);
    return store_exec(s, st, rc, err, "record crash event");
}

/* Reads first, without a write lock; takes one only when there is something
 * to mark. */
int store_detect_crashes(store *s, gl_error *err)
{
    crash_candidate *list = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = s->sw[SW_LIVE_RUNS];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        crash_candidate c = {.run = sqlite3_column_int64(st, 0),
                             .pid = sqlite3_column_int64(st, 1)};
        char host[256];
        store_col_text(st, 2, host, sizeof host);
        store_col_text(st, 3, c.heartbeat, sizeof c.heartbeat);
        double age = store_col_f64(st, 4);
        owner_state owner = owner_check(s, c.pid, host, age);
        if (owner == OWNER_ALIVE)
            continue;
        if (owner == OWNER_GONE)
            snprintf(c.detail, sizeof c.detail, "owner process %lld gone; marked crashed",
                     (long long)c.pid);
        else
            snprintf(c.detail, sizeof c.detail,
                     "owner process %lld on %.64s silent for %.0f s; marked crashed",
                     (long long)c.pid, host, age);
        if (n == cap) {
            cap = cap ? 2 * cap : 4;
            list = gl_grow(list, n, cap, sizeof *list);
        }
        list[n++] = c;
    }
    int out = store_end(s, st, rc, err, "find running runs");
    if (!out && n > 0) {
        out = store_begin(s, err);
        for (size_t i = 0; !out && i < n; i++)
            out = mark_crashed(s, &list[i], err);
        if (out)
            store_rollback(s);
        else
            out = commit(s, err);
        if (out)
            s->crashed_on_open = 0;
    }
    free(list);
    return out;
}

/* ---- sessions and runs ---- */

/* Statements that name the columns of schema 5 are prepared per call and
 * finalized at its end, never in store_write_sql: store_open prepares that
 * table on a read-only handle too, where an older file has no such columns.
 * These writes are rare (a session's start, a tag, a note). */
static int prepare_rare(store *s, const char *sql, sqlite3_stmt **st, gl_error *err,
                        const char *what)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc == SQLITE_OK)
        return 0;
    sqlite3_finalize(*st);
    *st = NULL;
    return store_fail(s, err, rc, what);
}

/* store_exec, then finalize; *changes gets the rows it changed. */
static int exec_rare(store *s, sqlite3_stmt *st, int rc, int *changes, gl_error *err,
                     const char *what)
{
    int out = store_exec(s, st, rc, err, what);
    *changes = out ? 0 : sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return out;
}

int64_t store_session_begin(store *s, const char *command, gl_error *err)
{
    char now[32];
    store_iso_time(0, now);
    sqlite3_stmt *st;
    /* `version` (schema 1) and `gatelab_version` (schema 5) hold the same
     * string: the old column stays for the queries written against it */
    if (prepare_rare(s,
                     "INSERT INTO sessions (started_at, command, version, host, pid,"
                     " gatelab_version, git_rev) VALUES (?1, ?2, ?3, ?4, ?5, ?3, ?6)",
                     &st, err, "prepare begin session"))
        return -1;
    int rc = SQLITE_OK, changes;
    store_bind_text(st, 1, now, &rc);
    store_bind_text(st, 2, command ? command : "", &rc);
    store_bind_text(st, 3, GL_VERSION, &rc);
    store_bind_text(st, 4, s->host, &rc);
    store_bind_i64(st, 5, s->pid, &rc);
    store_bind_text(st, 6, gl_git_rev(), &rc);
    if (exec_rare(s, st, rc, &changes, err, "begin session"))
        return -1;
    return sqlite3_last_insert_rowid(s->db);
}

int store_run_adopt(store *s, int64_t run, int *adopted, gl_error *err)
{
    char now[32];
    store_iso_time(0, now);
    sqlite3_stmt *st;
    *adopted = 0;
    if (prepare_rare(s,
                     "UPDATE runs SET owner_pid = ?2, host = ?3, heartbeat = ?4"
                     " WHERE id = ?1 AND status IN " LIVE_STATUS,
                     &st, err, "prepare adopt run"))
        return -1;
    int opened;
    if (tx_enter(s, &opened, err)) {
        sqlite3_finalize(st);
        return -1;
    }
    int rc = SQLITE_OK, changes;
    store_bind_i64(st, 1, run, &rc);
    store_bind_i64(st, 2, s->pid, &rc);
    store_bind_text(st, 3, s->host, &rc);
    store_bind_text(st, 4, now, &rc);
    int out = exec_rare(s, st, rc, &changes, err, "adopt run");
    if (tx_leave(s, opened, out, err))
        return -1;
    if (changes) {
        live_add(s, run);
        *adopted = 1;
    }
    return 0;
}

int store_session_set_name_note(store *s, int64_t session, const char *name, const char *note,
                                gl_error *err)
{
    sqlite3_stmt *st;
    if (prepare_rare(s,
                     "UPDATE sessions SET name = coalesce(?2, name), note = coalesce(?3, note)"
                     " WHERE id = ?1",
                     &st, err, "prepare set session name"))
        return -1;
    int rc = SQLITE_OK, changes;
    store_bind_i64(st, 1, session, &rc);
    store_bind_text(st, 2, name, &rc);
    store_bind_text(st, 3, note, &rc);
    if (exec_rare(s, st, rc, &changes, err, "set session name and note"))
        return -1;
    if (changes != 1)
        return gl_fail(err, "no session %lld in %s", (long long)session, s->path);
    return 0;
}

int store_tag_set(store *s, int64_t run, const char *key, const char *value, gl_error *err)
{
    if (!key || !*key)
        return gl_fail(err, "%s: run %lld: a tag needs a key", s->path, (long long)run);
    sqlite3_stmt *st;
    /* the EXISTS turns a missing run into no change rather than a foreign
     * key failure, so the message can name the run */
    if (prepare_rare(s,
                     "INSERT INTO tags (run, key, value)"
                     " SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)"
                     " ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
                     &st, err, "prepare set tag"))
        return -1;
    int rc = SQLITE_OK, changes;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, key, &rc);
    store_bind_text(st, 3, value ? value : "", &rc);
    if (exec_rare(s, st, rc, &changes, err, "set tag"))
        return -1;
    if (changes != 1)
        return gl_fail(err, "no run %lld in %s", (long long)run, s->path);
    return 0;
}

int store_note_set(store *s, int64_t run, const char *text, gl_error *err)
{
    sqlite3_stmt *st;
    if (prepare_rare(s, "UPDATE runs SET note = ?2 WHERE id = ?1", &st, err,
                     "prepare set note"))
        return -1;
    int rc = SQLITE_OK, changes;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, text, &rc);
    if (exec_rare(s, st, rc, &changes, err, "set note"))
        return -1;
    if (changes != 1)
        return gl_fail(err, "no run %lld in %s", (long long)run, s->path);
    return 0;
}

int store_session_end(store *s, int64_t session, gl_error *err)
{
    char now[32];
    store_iso_time(0, now);
    sqlite3_stmt *st = s->sw[SW_SESSION_END];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, session, &rc);
    store_bind_text(st, 2, now, &rc);
    if (store_exec(s, st, rc, err, "end session"))
        return -1;
    if (sqlite3_changes(s->db) != 1)
        return gl_fail(err, "no session %lld in %s", (long long)session, s->path);
    return 0;
}

int64_t store_run_begin(store *s, int64_t session, const store_run_desc *d, gl_error *err)
{
    if (!d->name || !d->mode)
        return gl_fail(err, "%s: a run needs a name and a gate mode", s->path);
    char now[32];
    store_iso_time(0, now);
    int opened;
    if (tx_enter(s, &opened, err))
        return -1;
    sqlite3_stmt *st = s->sw[SW_RUN_INSERT];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, session, &rc);
    store_bind_i64(st, 2, d->arm, &rc);
    store_bind_text(st, 3, d->name, &rc);
    store_bind_text(st, 4, d->mode, &rc);
    store_bind_i64(st, 5, d->k, &rc);
    store_bind_i64(st, 6, d->frozen != 0, &rc);
    store_bind_i64(st, 7, (int64_t)d->seed, &rc);   /* seeds above 2^63 read back negative in SQL */
    store_bind_text(st, 8, d->config_json ? d->config_json : "{}", &rc);
    if (d->parent_run > 0)
        store_bind_i64(st, 9, d->parent_run, &rc);
    store_bind_u64(st, 10, d->start_step, &rc);
    store_bind_text(st, 11, now, &rc);
    store_bind_i64(st, 12, s->pid, &rc);
    store_bind_text(st, 13, s->host, &rc);
    int out = store_exec(s, st, rc, err, "begin run");
    int64_t run = out ? -1 : sqlite3_last_insert_rowid(s->db);
    if (!out)
        out = segment_open(s, run, d->start_step, d->mode, d->k, d->frozen, err);
    if (tx_leave(s, opened, out, err))
        return -1;
    live_add(s, run);
    return run;
}

/* ---- store_write ---- */

_Static_assert(METRIC_COUNT <= 32, "layer.diverged has a bit per metric_key");

/* A `diverged` event for a value that exists but is not finite: the tables
 * hold finite values only, and dropping it quietly would make a blown-up
 * metric look merely absent. what names the metric (and its layer). */
static int put_diverged(store *s, int64_t run, const tel_record *r, const char *what, double v,
                        gl_error *err)
{
    char time[32], detail[REC_TEXT];
    store_iso_time(r->wall_ms, time);
    snprintf(detail, sizeof detail, "%s is %s at step %llu", what,
             isnan(v) ? "nan" : v > 0 ? "inf" : "-inf", (unsigned long long)r->step);
    sqlite3_stmt *st = s->sw[SW_EVENT_INSERT];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, r->step, &rc);
    store_bind_text(st, 3, time, &rc);
    store_bind_text(st, 4, event_kind_name(EV_DIVERGED), &rc);
    store_bind_text(st, 5, detail, &rc);
    return store_exec(s, st, rc, err, "write diverged metric event");
}

/* Whether a non-finite value is a divergence to report rather than an
 * absent metric: it exists (always, or by its record's diverged bit), or
 * it is an infinity, which never means absent (record.h). */
static int reportable(double v, int exists)
{
    return !isfinite(v) && (exists || !isnan(v));
}

static int put_metric(store *s, int sw, int64_t run, const char *key, const tel_record *r,
                      double v, gl_error *err)
{
    if (!isfinite(v))
        return 0;
    sqlite3_stmt *st = s->sw[sw];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, key, &rc);
    store_bind_u64(st, 3, r->step, &rc);
    store_bind_i64(st, 4, record_ms(r), &rc);
    store_bind_f64(st, 5, v, &rc);
    return store_exec(s, st, rc, err, "write metric");
}

/* One value that exists when `exists` (else NaN means absent): a row when
 * finite, a diverged event when reportable, nothing when absent. */
static int put_value(store *s, int64_t run, const char *key, const tel_record *r, double v,
                     int exists, gl_error *err)
{
    if (reportable(v, exists))
        return put_diverged(s, run, r, key, v, err);
    return put_metric(s, SW_METRIC_PUT, run, key, r, v, err);
}

static int write_step(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    /* a step always has all three */
    return put_value(s, run, "train_loss", r, r->u.step.loss, 1, err) ||
           put_value(s, run, "grad_norm", r, r->u.step.grad_norm, 1, err) ||
           put_value(s, run, "lr", r, r->u.step.lr, 1, err) ? -1 : 0;
}

static int write_eval(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    const uint32_t bits = r->u.eval.diverged;
    const struct {
        const char *key;
        double v;
        uint32_t bit;      /* 0: the value always exists */
    } m[] = {
        {"val_loss", r->u.eval.val_loss, 0},
        {"val_ppl", r->u.eval.val_ppl, 0},
        {"val_bpb", r->u.eval.bits_per_byte, REC_EVAL_BPB},
        {"f1", r->u.eval.f1, REC_EVAL_F1},
        {"mass_kept", r->u.eval.mass_kept, REC_EVAL_MASS_KEPT},
        {"oracle_mass", r->u.eval.oracle_mass, REC_EVAL_ORACLE_MASS},
        {"gate_grad_norm", r->u.eval.gate_grad_norm, REC_EVAL_GATE_GRAD_NORM},
        {"tokens_per_s", r->u.eval.tokens_per_s, REC_EVAL_TOKENS_PER_S},
        {"expert_balance", r->u.eval.expert_balance, REC_EVAL_EXPERT_BALANCE},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (put_value(s, run, m[i].key, r, m[i].v, !m[i].bit || (bits & m[i].bit), err))
            return -1;
    if (isfinite(r->u.eval.f1)) {
        sqlite3_stmt *st = s->sw[SW_ABSORPTION_PUT];
        int rc = SQLITE_OK;
        store_bind_i64(st, 1, run, &rc);
        store_bind_u64(st, 2, r->step, &rc);
        store_bind_i64(st, 3, record_ms(r), &rc);
        if (store_exec(s, st, rc, err, "write absorption index"))
            return -1;
    }
    /* a copy of the last step's loss: that step's own record reported it
     * if it was not finite */
    return put_metric(s, SW_METRIC_ADD, run, "train_loss", r, r->u.eval.train_loss, err);
}

static int write_layer(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    sqlite3_stmt *st = s->sw[SW_LAYER_PUT];
    for (int k = 0; k < METRIC_COUNT; k++) {
        double v = r->u.layer.value[k];
        if (reportable(v, (r->u.layer.diverged >> k) & 1u)) {
            char what[64];
            snprintf(what, sizeof what, "%s of layer %u head %u", metric_name((metric_key)k),
                     r->u.layer.layer, r->u.layer.head);
            if (put_diverged(s, run, r, what, v, err))
                return -1;
            continue;
        }
        if (!isfinite(v))
            continue;   /* absent: the metric does not exist here */
        int rc = SQLITE_OK;
        store_bind_i64(st, 1, run, &rc);
        store_bind_u64(st, 2, r->step, &rc);
        store_bind_i64(st, 3, r->u.layer.layer, &rc);
        store_bind_i64(st, 4, r->u.layer.head, &rc);
        store_bind_text(st, 5, metric_name((metric_key)k), &rc);
        store_bind_f64(st, 6, v, &rc);
        if (store_exec(s, st, rc, err, "write layer metric"))
            return -1;
    }
    return 0;
}

static int changes_gate(uint32_t kind)
{
    return kind == EV_SWAP || kind == EV_SET_K || kind == EV_FREEZE || kind == EV_UNFREEZE;
}

static int write_event(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    uint32_t kind = r->u.event.kind;
    if (kind >= EV_KIND_COUNT)
        return gl_fail(err, "%s: run %lld: unknown event kind %u", s->path, (long long)run, kind);
    uint32_t mode = r->u.event.mode;
    const char *mode_name = mode < GATE_MODE_COUNT ? gate_mode_name((gate_mode)mode) : NULL;
    if (changes_gate(kind) && !mode_name)
        return gl_fail(err, "%s: run %lld: %s event with unknown gate mode %u", s->path,
                       (long long)run, event_kind_name((event_kind)kind), mode);
    char time[32];
    store_iso_time(r->wall_ms, time);
    char detail[REC_TEXT];
    snprintf(detail, sizeof detail, "%.*s", (int)sizeof detail - 1, r->u.event.detail);
    sqlite3_stmt *st = s->sw[SW_EVENT_INSERT];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, r->step, &rc);
    store_bind_text(st, 3, time, &rc);
    store_bind_text(st, 4, event_kind_name((event_kind)kind), &rc);
    store_bind_text(st, 5, detail, &rc);
    store_bind_text(st, 6, mode_name, &rc);
    if (mode_name) {
        store_bind_i64(st, 7, r->u.event.k, &rc);
        store_bind_i64(st, 8, r->u.event.frozen != 0, &rc);
    }
    if (store_exec(s, st, rc, err, "write event"))
        return -1;
    if (!changes_gate(kind))
        return 0;
    /* the gate of a segment opened at this very step never ran: replace it */
    st = s->sw[SW_SEGMENT_DROP_EMPTY];
    rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, r->step, &rc);
    if (store_exec(s, st, rc, err, "drop empty segment") || segment_close(s, run, r->step, err))
        return -1;
    return segment_open(s, run, r->step, mode_name, r->u.event.k, r->u.event.frozen != 0, err);
}

static int write_status(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    uint32_t status = r->u.status.status;
    if (status >= RUN_STATUS_COUNT)
        return gl_fail(err, "%s: run %lld: unknown status %u", s->path, (long long)run, status);
    int final = status != RUN_RUNNING && status != RUN_PAUSED;
    sqlite3_stmt *st = s->sw[final ? SW_STATUS_FINAL : SW_STATUS_SET];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, run_status_name((run_status)status), &rc);
    if (final) {
        char ended[32];
        store_iso_time(r->wall_ms, ended);
        store_bind_text(st, 3, ended, &rc);
        store_bind_u64(st, 4, r->step, &rc);
    }
    if (store_exec(s, st, rc, err, "set run status"))
        return -1;
    if (sqlite3_changes(s->db) != 1)
        return gl_fail(err, "no run %lld in %s", (long long)run, s->path);
    if (!final)
        return 0;
    if (segment_close(s, run, r->step, err))
        return -1;
    live_remove(s, run);
    return 0;
}

static int write_checkpoint(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    char created[32], path[REC_TEXT];
    store_iso_time(r->wall_ms, created);
    snprintf(path, sizeof path, "%.*s", (int)sizeof path - 1, r->u.checkpoint.path);
    if (r->u.checkpoint.dropped) {
        /* --keep-checkpoints deleted the file: its row goes too, so resume
         * and export never pick a file that is gone. Rare (once per save
         * beyond N): prepared here rather than kept in store_write_sql. */
        sqlite3_stmt *del;
        int prc = sqlite3_prepare_v2(s->db, "DELETE FROM checkpoints WHERE run = ?1 AND path = ?2",
                                     -1, &del, NULL);
        if (prc != SQLITE_OK) {
            sqlite3_finalize(del);
            return store_fail(s, err, prc, "prepare drop checkpoint");
        }
        store_bind_i64(del, 1, run, &prc);
        store_bind_text(del, 2, path, &prc);
        int out = store_exec(s, del, prc, err, "drop checkpoint");
        sqlite3_finalize(del);
        return out;
    }
    sqlite3_stmt *st = s->sw[SW_CHECKPOINT_PUT];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, r->step, &rc);
    store_bind_text(st, 3, path, &rc);
    store_bind_i64(st, 4, r->u.checkpoint.resumable != 0, &rc);
    store_bind_text(st, 5, created, &rc);
    return store_exec(s, st, rc, err, "write checkpoint");
}

static int write_heatmap(store *s, int64_t run, const heatmap_snapshot *h, gl_error *err)
{
    if (h->T == 0)
        return 0;
    size_t cells = (size_t)h->T * h->T;
    sqlite3_stmt *st = s->sw[SW_HEATMAP_PUT];
    for (uint32_t l = 0; l < h->layers; l++)
        for (uint32_t hd = 0; hd < h->heads; hd++)
            for (size_t m = 0; m < STORE_HEAT_PLANES; m++) {
                size_t at = ((size_t)l * h->heads + hd) * cells;
                int rc = SQLITE_OK;
                store_bind_i64(st, 1, run, &rc);
                store_bind_u64(st, 2, h->step, &rc);
                store_bind_i64(st, 3, l, &rc);
                store_bind_i64(st, 4, hd, &rc);
                store_bind_text(st, 5, store_heat_kind[m], &rc);
                store_bind_i64(st, 6, h->T, &rc);
                store_bind_i64(st, 7, h->T, &rc);
                store_bind_blob(st, 8, store_heat_plane(h, m) + at, cells, &rc);
                if (store_exec(s, st, rc, err, "write heatmap"))
                    return -1;
            }
    return 0;
}

static int write_record(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    switch ((rec_kind)r->kind) {
    case REC_STEP: return write_step(s, run, r, err);
    case REC_EVAL: return write_eval(s, run, r, err);
    case REC_LAYER: return write_layer(s, run, r, err);
    case REC_EVENT: return write_event(s, run, r, err);
    case REC_STATUS: return write_status(s, run, r, err);
    case REC_CHECKPOINT: return write_checkpoint(s, run, r, err);
    case REC_HEATMAP:
        return gl_fail(err, "%s: run %lld: a heatmap record is written with its payload "
                            "(store_write_heatmap)", s->path, (long long)run);
    case REC_COMMAND:
        return r->u.command.applied
                   ? store_command_applied(s, (int64_t)r->u.command.id, r->step,
                                           r->u.command.reason, NULL, err)
                   : store_command_rejected(s, (int64_t)r->u.command.id, r->u.command.reason,
                                            NULL, err);
    case REC_RUN_BEGIN:
    case REC_FORKED:
    case REC_SESSION_END: return 0;   /* runs are begun through store_run_begin */
    case REC_KIND_COUNT: break;
    }
    return gl_fail(err, "%s: run %lld: record kind %u cannot be stored", s->path, (long long)run,
                   r->kind);
}

int store_write(store *s, int64_t run, const tel_record *r, gl_error *err)
{
    int opened;
    if (tx_enter(s, &opened, err))
        return -1;
    return tx_leave(s, opened, write_record(s, run, r, err), err);
}

int store_write_heatmap(store *s, int64_t run, const heatmap_snapshot *h, gl_error *err)
{
    int opened;
    if (tx_enter(s, &opened, err))
        return -1;
    return tx_leave(s, opened, write_heatmap(s, run, h, err), err);
}

/* ---- resume ---- */

static int delete_after(store *s, int sw, int64_t run, uint64_t step, gl_error *err)
{
    int rc = SQLITE_OK;
    store_bind_i64(s->sw[sw], 1, run, &rc);
    store_bind_u64(s->sw[sw], 2, step, &rc);
    return store_exec(s, s->sw[sw], rc, err, "delete rows after the resume step");
}

/* Refuses runs that must not be taken over; reads the run under the write
 * lock of the caller's transaction. */
static int check_reopen(store *s, int64_t run, uint64_t from_step, gl_error *err)
{
    sqlite3_stmt *st = s->sw[SW_RUN_OWNER];
    int rc = store_step_i64(st, run);
    if (rc != SQLITE_ROW) {
        if (store_end(s, st, rc, err, "read run"))
            return -1;
        return gl_fail(err, "no run %lld in %s", (long long)run, s->path);
    }
    char status[16], host[256];
    store_col_text(st, 0, status, sizeof status);
    int64_t pid = sqlite3_column_int64(st, 1);
    store_col_text(st, 2, host, sizeof host);
    double age = store_col_f64(st, 3);
    uint64_t start = store_col_u64(st, 4);
    store_end(s, st, SQLITE_DONE, err, "read run");
    /* a finished run may go on: `resume --steps` extends it beyond its end */
    if (strcmp(status, "diverged") == 0)
        return gl_fail(err, "run %lld %s; nothing to resume", (long long)run, status);
    if ((strcmp(status, "running") == 0 || strcmp(status, "paused") == 0) &&
        owner_check(s, pid, host, age) == OWNER_ALIVE)
        return gl_fail(err, "run %lld is %s in process %lld on %s; stop it first", (long long)run,
                       status, (long long)pid, host);
    if (from_step < start)
        return gl_fail(err, "run %lld starts at step %llu; cannot resume it from step %llu",
                       (long long)run, (unsigned long long)start, (unsigned long long)from_step);
    return 0;
}

int store_run_reopen(store *s, int64_t run, uint64_t from_step, gl_error *err)
{
    int opened;
    if (tx_enter(s, &opened, err))
        return -1;
    static const int later[] = {SW_DELETE_METRICS,  SW_DELETE_LAYER,       SW_DELETE_EVENTS,
                                SW_DELETE_HEATMAPS, SW_DELETE_CHECKPOINTS, SW_DELETE_SEGMENTS};
    int out = check_reopen(s, run, from_step, err);
    for (size_t i = 0; !out && i < sizeof later / sizeof later[0]; i++)
        out = delete_after(s, later[i], run, from_step, err);
    if (!out) {
        int rc = SQLITE_OK;
        store_bind_i64(s->sw[SW_SEGMENT_REOPEN], 1, run, &rc);
        out = store_exec(s, s->sw[SW_SEGMENT_REOPEN], rc, err, "reopen segment");
    }
    if (!out) {
        char now[32];
        store_iso_time(0, now);
        sqlite3_stmt *st = s->sw[SW_RUN_TAKE_OVER];
        int rc = SQLITE_OK;
        store_bind_i64(st, 1, run, &rc);
        store_bind_i64(st, 2, s->pid, &rc);
        store_bind_text(st, 3, s->host, &rc);
        store_bind_text(st, 4, now, &rc);
        out = store_exec(s, st, rc, err, "take over run");
    }
    if (tx_leave(s, opened, out, err))
        return -1;
    live_add(s, run);
    return 0;
}
