/* store_command: the commands table of DESIGN §12 (schema 6) — steering a
 * session from another process. Any process adds a pending row
 * (store_command_add: `gatelab send`, the keys of `gatelab watch`); only the
 * process that owns the session reads its pending rows, hands them to its
 * arms and marks each applied (with the step it took effect at) or rejected
 * (with why); the sender reads the row back to learn which. The owner's
 * statements are prepared on first use and kept (it polls a few times a
 * second); the sender's are prepared per call. A row only ever leaves
 * `pending` once: a late answer for a row already decided changes nothing. */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

static const char *const command_sql[SC_COUNT] = {
    [SC_PENDING] = "SELECT id, session, coalesce(run, 0), kind, coalesce(arg, ''), requested_at"
                   " FROM commands WHERE session = ?1 AND state = 'pending' AND id > ?2"
                   " ORDER BY id",
    [SC_APPLIED] = "UPDATE commands SET state = 'applied', applied_step = ?2, decided_at = ?3,"
                   " reason = nullif(?4, '') WHERE id = ?1 AND state = 'pending'",
    [SC_REJECTED] = "UPDATE commands SET state = 'rejected', reason = ?2, decided_at = ?3"
                    " WHERE id = ?1 AND state = 'pending'",
    [SC_REJECT_ALL] = "UPDATE commands SET state = 'rejected', reason = ?2, decided_at = ?3"
                      " WHERE session = ?1 AND state = 'pending'",
};

/* The owner's statement `which`, prepared on first use (a handle on a file
 * older than schema 6 never prepares one); finalized by store_close. */
static sqlite3_stmt *command_stmt(store *s, store_command_stmt which, gl_error *err)
{
    if (!s->sc[which]) {
        int rc = sqlite3_prepare_v3(s->db, command_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->sc[which], NULL);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(s->sc[which]);
            s->sc[which] = NULL;
            store_fail(s, err, rc, "prepare the commands table's statements");
            return NULL;
        }
    }
    return s->sc[which];
}

void store_command_finalize(store *s)
{
    for (int i = 0; i < SC_COUNT; i++) {
        sqlite3_finalize(s->sc[i]);
        s->sc[i] = NULL;
    }
}

/* A writer outside a transaction (send, watch) takes the write lock first
 * with BEGIN IMMEDIATE, whose wait the busy timeout covers: an autocommit
 * statement reads, then upgrades to write, and an upgrade that finds the
 * database changed under it fails at once ("database is locked") however
 * long the timeout, which a session writing every 0.5 s makes likely. The
 * owner's store thread calls these inside its batch's transaction. */
static int command_add(store *s, int64_t session, int64_t run, const char *kind,
                       const char *arg, int64_t *id_out, gl_error *err);

static int own_begin(store *s, int *own, gl_error *err)
{
    *own = !store_in_transaction(s);
    return *own ? store_begin(s, err) : 0;
}

static int own_end(store *s, int own, int out, gl_error *err)
{
    if (!own)
        return out;
    if (out) {
        store_abort(s);
        return out;
    }
    return store_commit(s, err);
}

int store_command_add(store *s, int64_t session, int64_t run, const char *kind, const char *arg,
                      int64_t *id_out, gl_error *err)
{
    int own;
    if (own_begin(s, &own, err))
        return -1;
    int out = command_add(s, session, run, kind, arg, id_out, err);
    return own_end(s, own, out, err);
}

static int command_add(store *s, int64_t session, int64_t run, const char *kind,
                       const char *arg, int64_t *id_out, gl_error *err)
{
    if (!kind || !*kind)
        return gl_fail(err, "%s: a command needs a kind", s->path);
    char now[32];
    store_iso_time(0, now);
    sqlite3_stmt *st;
    /* the WHERE turns a missing session, or a run of another session, into
     * no row rather than a foreign key failure, so the message can say which */
    if (store_prepare(s,
                      "INSERT INTO commands (session, run, kind, arg, requested_at)"
                      " SELECT ?1, nullif(?2, 0), ?3, ?4, ?5"
                      " WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?1)"
                      "   AND (?2 = 0 OR EXISTS (SELECT 1 FROM runs WHERE id = ?2 AND session = ?1))",
                      &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, session, &rc);
    store_bind_i64(st, 2, run, &rc);
    store_bind_text(st, 3, kind, &rc);
    store_bind_text(st, 4, arg && *arg ? arg : NULL, &rc);
    store_bind_text(st, 5, now, &rc);
    int out = store_exec(s, st, rc, err, "add a command");
    int changes = out ? 0 : sqlite3_changes(s->db);
    int64_t id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    if (out)
        return -1;
    if (changes != 1) {
        if (run)
            return gl_fail(err, "no run %lld in session %lld of %s", (long long)run,
                           (long long)session, s->path);
        return gl_fail(err, "no session %lld in %s", (long long)session, s->path);
    }
    if (id_out)
        *id_out = id;
    return 0;
}

static void row_of(sqlite3_stmt *st, store_command_row *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    out->session = sqlite3_column_int64(st, 1);
    out->run = sqlite3_column_int64(st, 2);
    store_col_text(st, 3, out->kind, sizeof out->kind);
    store_col_text(st, 4, out->arg, sizeof out->arg);
    store_col_text(st, 5, out->requested, sizeof out->requested);
}

int store_command_pending(store *s, int64_t session, int64_t after, store_command_fn fn,
                          void *ctx, gl_error *err)
{
    sqlite3_stmt *st = command_stmt(s, SC_PENDING, err);
    if (!st)
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, session, &rc);
    store_bind_i64(st, 2, after, &rc);
    if (rc != SQLITE_OK)
        return store_end(s, st, rc, err, "read pending commands");
    int stop = 0;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_command_row row;
        row_of(st, &row);
        snprintf(row.state, sizeof row.state, "pending");
        stop = fn(ctx, &row);
    }
    if (store_end(s, st, rc, err, "read pending commands"))
        return -1;
    return stop;
}

/* One UPDATE of the owner's; *changed (may be NULL): whether the row was
 * still pending. */
static int decide_in(store *s, store_command_stmt which, int64_t key, int64_t step,
                     const char *reason, int *changed, gl_error *err)
{
    sqlite3_stmt *st = command_stmt(s, which, err);
    if (!st)
        return -1;
    char now[32];
    store_iso_time(0, now);
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, key, &rc);
    if (which == SC_APPLIED) {
        store_bind_i64(st, 2, step, &rc);
        store_bind_text(st, 4, reason ? reason : "", &rc);
    } else {
        store_bind_text(st, 2, reason && *reason ? reason : "rejected", &rc);
    }
    store_bind_text(st, 3, now, &rc);
    if (store_exec(s, st, rc, err, which == SC_APPLIED ? "mark a command applied"
                                                        : "mark a command rejected"))
        return -1;
    if (changed)
        *changed = sqlite3_changes(s->db);
    return 0;
}

static int decide(store *s, store_command_stmt which, int64_t key, int64_t step,
                  const char *reason, int *changed, gl_error *err)
{
    int own;
    if (own_begin(s, &own, err))
        return -1;
    int out = decide_in(s, which, key, step, reason, changed, err);
    return own_end(s, own, out, err);
}

int store_command_applied(store *s, int64_t id, uint64_t step, const char *note, int *changed,
                          gl_error *err)
{
    return decide(s, SC_APPLIED, id, step > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)step,
                  note, changed, err);
}

int store_command_rejected(store *s, int64_t id, const char *reason, int *changed,
                           gl_error *err)
{
    return decide(s, SC_REJECTED, id, 0, reason, changed, err);
}

int store_command_reject_pending(store *s, int64_t session, const char *reason, int *changed,
                                 gl_error *err)
{
    return decide(s, SC_REJECT_ALL, session, 0, reason, changed, err);
}

int store_command_get(store *s, int64_t id, store_command_row *out, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "SELECT id, session, coalesce(run, 0), kind, coalesce(arg, ''),"
                      " requested_at, state, applied_step, coalesce(reason, ''),"
                      " coalesce(decided_at, '') FROM commands WHERE id = ?1",
                      &st, err))
        return -1;
    int rc = store_step_i64(st, id);
    int found = rc == SQLITE_ROW;
    if (found) {
        row_of(st, out);
        store_col_text(st, 6, out->state, sizeof out->state);
        out->has_step = sqlite3_column_type(st, 7) != SQLITE_NULL;
        out->applied_step = out->has_step ? store_col_u64(st, 7) : 0;
        store_col_text(st, 8, out->reason, sizeof out->reason);
        store_col_text(st, 9, out->decided, sizeof out->decided);
    }
    int bad = store_end(s, st, rc, err, "read a command");
    sqlite3_finalize(st);
    if (bad)
        return -1;
    if (!found)
        return gl_fail(err, "no command %lld in %s", (long long)id, s->path);
    return 0;
}

/* A session's pending rows whose session has no live run: a brand-new
 * session whose runs are not inserted yet has none either, so only rows
 * older than ORPHAN_SECONDS count (a session inserts its runs within a
 * moment of its own row). */
#define ORPHAN_SECONDS 60
#define ORPHAN_WHERE                                                                      \
    " FROM commands c WHERE c.state = 'pending'"                                          \
    " AND c.requested_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 seconds')"          \
    " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.session = c.session"                   \
    "                 AND r.status IN ('running', 'paused'))"
_Static_assert(ORPHAN_SECONDS == 60, "ORPHAN_WHERE says 60 seconds");

int store_command_reject_orphans(store *s, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "SELECT count(*)" ORPHAN_WHERE, &st, err))
        return -1;
    int rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int bad = store_end(s, st, rc, err, "find orphaned commands");
    sqlite3_finalize(st);
    if (bad || n == 0)
        return bad ? -1 : 0;
    char now[32];
    store_iso_time(0, now);
    if (store_prepare(s,
                      "UPDATE commands SET state = 'rejected', decided_at = ?1,"
                      " reason = 'no live process owns session ' || session"
                      " WHERE id IN (SELECT c.id" ORPHAN_WHERE ")",
                      &st, err))
        return -1;
    rc = SQLITE_OK;
    store_bind_text(st, 1, now, &rc);
    int out = store_exec(s, st, rc, err, "reject orphaned commands");
    sqlite3_finalize(st);
    return out;
}
