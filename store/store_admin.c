/* store_admin: housekeeping reads and writes behind `ls` (filters, names,
 * tags, the database size), `show` (names, tags, notes), `rm` (what a set of
 * runs owns, then deleting it) and `resume` (the stored config following a
 * new --steps). They are rare, so each call prepares its statements and
 * finalizes them before returning, like store_experiment.c. Files on disk
 * are the caller's: this module only says which checkpoint paths the
 * deleted rows named. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"

/* Schema 5 (names, notes, tags) or later. A file of an older schema opened
 * read-only (STORE_BROWSE) is read as it is: its runs have no names, notes
 * or tags, and a filter on them keeps none. */
static int has_labels(store *s)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM sqlite_master WHERE name = 'tags'", -1, &st,
                           NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return 1;   /* the query itself will say what is wrong */
    }
    int yes = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return yes;
}

/* ---- resume ---- */

int store_run_set_config(store *s, int64_t run, const char *config_json, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "UPDATE runs SET config = ?2 WHERE id = ?1", &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, config_json ? config_json : "{}", &rc);
    int out = store_exec(s, st, rc, err, "update run config");
    int changed = out ? 0 : sqlite3_changes(s->db);
    sqlite3_finalize(st);
    if (!out && changed != 1)
        return gl_fail(err, "no run %lld in %s", (long long)run, s->path);
    return out;
}

/* ---- ls ---- */

int store_list_runs_filtered(store *s, const store_ls_filter *f, store_ls_fn fn, void *ctx,
                             gl_error *err)
{
    sqlite3_stmt *st;
#define LS_SQL(SESSION_NAME, TAGS, TAG_MATCH)                                               \
    "SELECT r.id, r.session, r.arm, r.name, " SESSION_NAME ", r.mode, r.status,"            \
    " coalesce((SELECT max(m.last_step) FROM summaries m WHERE m.run = r.id),"            \
    "          r.start_step),"                                                            \
    " vl.last, vp.last, vl.min, r.started_at, " TAGS                                      \
    " FROM runs r JOIN sessions se ON se.id = r.session"                                  \
    " LEFT JOIN summaries vl ON vl.run = r.id AND vl.key = 'val_loss'"                    \
    " LEFT JOIN summaries vp ON vp.run = r.id AND vp.key = 'val_ppl'"                     \
    " WHERE (?1 = 0 OR r.session = ?1)"                                                   \
    "   AND (?2 IS NULL OR " SESSION_NAME " = ?2)"                                        \
    "   AND (?3 IS NULL OR r.status = ?3)"                                                \
    "   AND (?4 IS NULL OR r.mode = ?4)"                                                  \
    "   AND (?5 IS NULL OR " TAG_MATCH ")"                                                \
    "   AND (?7 IS NULL OR r.started_at >= ?7)"                                           \
    " ORDER BY r.id DESC"
    static const char v5[] = LS_SQL(
        "coalesce(se.name, '')",
        "coalesce((SELECT group_concat(t.key || '=' || t.value, ',')"
        " FROM (SELECT key, value FROM tags WHERE run = r.id ORDER BY key) t), '')",
        "EXISTS (SELECT 1 FROM tags t WHERE t.run = r.id AND t.key = ?5"
        " AND (?6 IS NULL OR t.value = ?6))");
    static const char older[] = LS_SQL("''", "''", "?6 IS NOT ?6");
#undef LS_SQL
    if (store_prepare(s, has_labels(s) ? v5 : older, &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, f->session, &rc);
    store_bind_text(st, 2, f->session_name, &rc);
    store_bind_text(st, 3, f->status, &rc);
    store_bind_text(st, 4, f->mode, &rc);
    store_bind_text(st, 5, f->tag_key, &rc);
    store_bind_text(st, 6, f->tag_value, &rc);
    store_bind_text(st, 7, f->since, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_ls_row r;
            memset(&r, 0, sizeof r);
            r.id = sqlite3_column_int64(st, 0);
            r.session = sqlite3_column_int64(st, 1);
            r.arm = (uint32_t)sqlite3_column_int64(st, 2);
            store_col_text(st, 3, r.name, sizeof r.name);
            store_col_text(st, 4, r.session_name, sizeof r.session_name);
            store_col_text(st, 5, r.mode, sizeof r.mode);
            store_col_text(st, 6, r.status, sizeof r.status);
            r.steps = store_col_u64(st, 7);
            r.final_val_loss = store_col_f64(st, 8);
            r.final_val_ppl = store_col_f64(st, 9);
            r.best_val_loss = store_col_f64(st, 10);
            store_col_text(st, 11, r.started, sizeof r.started);
            store_col_text(st, 12, r.tags, sizeof r.tags);
            if (fn(ctx, &r))
                break;
        }
    int out = store_end(s, st, rc, err, "list runs");
    sqlite3_finalize(st);
    return out;
}

int store_file_size(const store *s, int64_t *db_bytes, int64_t *wal_bytes)
{
    struct stat sb;
    char wal[4200];
    *db_bytes = stat(s->path, &sb) == 0 ? (int64_t)sb.st_size : 0;
    snprintf(wal, sizeof wal, "%s-wal", s->path);
    *wal_bytes = stat(wal, &sb) == 0 ? (int64_t)sb.st_size : 0;
    return 0;
}

/* ---- show ---- */

int store_run_labels(store *s, int64_t run, store_labels *out, gl_error *err)
{
    memset(out, 0, sizeof *out);
    if (!has_labels(s)) {
        store_run_row r;   /* an older file: no labels, but the run must exist */
        int rc = store_get_run(s, run, &r, err);
        if (!rc)
            store_run_row_free(&r);
        return rc;
    }
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT coalesce(se.name, ''), coalesce(se.note, ''), coalesce(r.note, ''),"
                " coalesce((SELECT group_concat(t.key || '=' || t.value, ', ')"
                "           FROM (SELECT key, value FROM tags WHERE run = r.id ORDER BY key) t),"
                "          '')"
                " FROM runs r JOIN sessions se ON se.id = r.session WHERE r.id = ?1",
                &st, err))
        return -1;
    int rc = store_step_i64(st, run);
    int found = rc == SQLITE_ROW;
    if (found) {
        store_col_text(st, 0, out->session_name, sizeof out->session_name);
        store_col_text(st, 1, out->session_note, sizeof out->session_note);
        store_col_text(st, 2, out->run_note, sizeof out->run_note);
        store_col_text(st, 3, out->tags, sizeof out->tags);
    }
    int o = store_end(s, st, rc, err, "read names and notes");
    sqlite3_finalize(st);
    if (!o && !found)
        return gl_fail(err, "no run %lld in %s", (long long)run, s->path);
    return o;
}

/* ---- rm ---- */

/* The runs of the plan as a JSON array, for `IN (SELECT value FROM
 * json_each(?))`: one bound parameter whatever their number. */
static char *ids_json(const int64_t *ids, size_t n)
{
    json_buf b;
    json_init(&b);
    json_array_begin(&b);
    for (size_t i = 0; i < n; i++)
        json_int(&b, ids[i]);
    json_array_end(&b);
    return json_take(&b);
}

static void push_id(int64_t **ids, size_t *n, size_t *cap, int64_t id)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *ids = gl_grow(*ids, *n, *cap, sizeof **ids);
    }
    (*ids)[(*n)++] = id;
}

/* Runs that are running or paused after store_open's crash detection have
 * an owner that is alive (store_open marked the others crashed): rm refuses
 * them, in the plan and again under the write lock of the delete. */
static int check_not_live(store *s, const char *ids, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT id, status, owner_pid, host FROM runs"
                " WHERE id IN (SELECT value FROM json_each(?1))"
                "   AND status IN ('running', 'paused') ORDER BY id LIMIT 1",
                &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_text(st, 1, ids, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int live = rc == SQLITE_ROW;
    char status[16] = "", host[256] = "";
    int64_t id = 0, pid = 0;
    if (live) {
        id = sqlite3_column_int64(st, 0);
        store_col_text(st, 1, status, sizeof status);
        pid = sqlite3_column_int64(st, 2);
        store_col_text(st, 3, host, sizeof host);
    }
    int out = store_end(s, st, rc, err, "check live runs");
    sqlite3_finalize(st);
    if (!out && live) {
        gl_fail(err, "run %lld is %s in process %lld on %s; stop it first (nothing removed)",
                (long long)id, status, (long long)pid, host);
        return 1;
    }
    return out;
}

static int count_rows(store *s, const char *table, const char *column, const char *ids,
                      int64_t *n, gl_error *err)
{
    char sql[512];
    /* names come from sqlite_master; quoted all the same */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM \"%s\" WHERE \"%s\" IN (SELECT value FROM json_each(?1))",
             table, column);
    sqlite3_stmt *st;
    if (store_prepare(s, sql, &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_text(st, 1, ids, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int out = store_end(s, st, rc, err, "count rows");
    sqlite3_finalize(st);
    return out;
}

static int plan_runs(store *s, int64_t run, const char *session, store_rm_plan *p,
                     gl_error *err)
{
    sqlite3_stmt *st;
    size_t cap = 0, scap = 0;
    int rc = SQLITE_OK;
    if (run > 0) {
        if (store_prepare(s, "SELECT id, session FROM runs WHERE id = ?1", &st, err))
            return -1;
        store_bind_i64(st, 1, run, &rc);
    } else {
        /* a session id, or every session of that name */
        if (store_prepare(s,
                    "SELECT r.id, se.id FROM sessions se LEFT JOIN runs r ON r.session = se.id"
                    " WHERE CAST(se.id AS TEXT) = ?1 OR se.name = ?1 ORDER BY se.id, r.id",
                    &st, err))
            return -1;
        store_bind_text(st, 1, session, &rc);
    }
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t sid = sqlite3_column_int64(st, 1);
            if (sqlite3_column_type(st, 0) != SQLITE_NULL)
                push_id(&p->runs, &p->nruns, &cap, sqlite3_column_int64(st, 0));
            if (run <= 0 && (p->nsessions == 0 || p->sessions[p->nsessions - 1] != sid))
                push_id(&p->sessions, &p->nsessions, &scap, sid);
        }
    int out = store_end(s, st, rc, err, "find runs");
    sqlite3_finalize(st);
    if (out)
        return -1;
    if (run > 0 && !p->nruns) {
        gl_fail(err, "no run %lld in %s", (long long)run, s->path);
        return 1;
    }
    if (run <= 0 && !p->nsessions) {
        gl_fail(err, "no session %s in %s (a session id or --name)", session, s->path);
        return 1;
    }
    return 0;
}

/* Every table whose rows a deleted run or session takes with it: the ones
 * with a foreign key ON DELETE CASCADE to runs (or, for --session, to
 * sessions), read from the schema itself, so a table added later is counted
 * without a change here. */
static int plan_counts(store *s, store_rm_plan *p, gl_error *err)
{
    char *runs = ids_json(p->runs, p->nruns), *sessions = ids_json(p->sessions, p->nsessions);
    sqlite3_stmt *st;
    int out = store_prepare(s,
                      "SELECT m.name, f.\"from\", f.\"table\" FROM sqlite_master m,"
                      " pragma_foreign_key_list(m.name) f"
                      " WHERE m.type = 'table' AND f.\"table\" IN ('runs', 'sessions')"
                      "   AND upper(f.on_delete) = 'CASCADE' ORDER BY m.rowid",
                      &st, err);
    if (out) {
        free(runs);
        free(sessions);
        return -1;
    }
    int64_t n;
    p->ncounts = 0;
    if (!count_rows(s, "runs", "id", runs, &n, err)) {
        snprintf(p->counts[0].table, sizeof p->counts[0].table, "runs");
        p->counts[0].rows = n;
        p->ncounts = 1;
    } else {
        out = -1;
    }
    if (!out && p->nsessions) {
        if (count_rows(s, "sessions", "id", sessions, &n, err)) {
            out = -1;
        } else {
            snprintf(p->counts[p->ncounts].table, sizeof p->counts[0].table, "sessions");
            p->counts[p->ncounts++].rows = n;
        }
    }
    int rc = SQLITE_OK;
    while (!out && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char table[64], column[64], parent[16];
        store_col_text(st, 0, table, sizeof table);
        store_col_text(st, 1, column, sizeof column);
        store_col_text(st, 2, parent, sizeof parent);
        /* runs -> sessions is counted above */
        if (strcmp(table, "runs") == 0 || p->ncounts == STORE_RM_MAX_TABLES)
            continue;
        int is_runs = strcmp(parent, "runs") == 0;
        if (!is_runs && !p->nsessions)
            continue;
        if (count_rows(s, table, column, is_runs ? runs : sessions, &n, err)) {
            out = -1;
            break;
        }
        /* the same table may point at both runs and sessions: add up */
        size_t i = 0;
        while (i < p->ncounts && strcmp(p->counts[i].table, table) != 0)
            i++;
        if (i == p->ncounts) {
            snprintf(p->counts[i].table, sizeof p->counts[i].table, "%s", table);
            p->counts[i].rows = 0;
            p->ncounts++;
        }
        p->counts[i].rows += n;
    }
    int end = store_end(s, st, out ? SQLITE_OK : rc, err, "list child tables");
    sqlite3_finalize(st);
    free(runs);
    free(sessions);
    return out || end ? -1 : 0;
}

/* The checkpoint files named only by the runs going away: a path another
 * run also names stays on disk. */
static int plan_paths(store *s, store_rm_plan *p, gl_error *err)
{
    char *runs = ids_json(p->runs, p->nruns);
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT DISTINCT path FROM checkpoints"
                " WHERE run IN (SELECT value FROM json_each(?1))"
                "   AND path NOT IN (SELECT path FROM checkpoints"
                "                    WHERE run NOT IN (SELECT value FROM json_each(?1)))"
                " ORDER BY path",
                &st, err)) {
        free(runs);
        return -1;
    }
    size_t cap = 0;
    int rc = SQLITE_OK;
    store_bind_text(st, 1, runs, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (p->npaths == cap) {
                cap = cap ? 2 * cap : 16;
                p->paths = gl_grow(p->paths, p->npaths, cap, sizeof *p->paths);
            }
            const unsigned char *t = sqlite3_column_text(st, 0);
            p->paths[p->npaths++] = xstrdup(t ? (const char *)t : "");
        }
    int out = store_end(s, st, rc, err, "list checkpoint files");
    sqlite3_finalize(st);
    free(runs);
    return out;
}

int store_rm_plan_make(store *s, int64_t run, const char *session, store_rm_plan *p,
                       gl_error *err)
{
    memset(p, 0, sizeof *p);
    int refused = plan_runs(s, run, session, p, err);
    if (refused)
        return refused;
    char *runs = ids_json(p->runs, p->nruns);
    int out = check_not_live(s, runs, err);
    free(runs);
    if (!out)
        out = plan_counts(s, p, err);
    if (!out)
        out = plan_paths(s, p, err);
    return out;
}

void store_rm_plan_free(store_rm_plan *p)
{
    for (size_t i = 0; i < p->npaths; i++)
        free(p->paths[i]);
    free(p->paths);
    free(p->runs);
    free(p->sessions);
    memset(p, 0, sizeof *p);
}

static int exec_ids(store *s, const char *sql, const char *ids, gl_error *err,
                    const char *what)
{
    sqlite3_stmt *st;
    if (store_prepare(s, sql, &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_text(st, 1, ids, &rc);
    int out = store_exec(s, st, rc, err, what);
    sqlite3_finalize(st);
    return out;
}

int store_rm_apply(store *s, const store_rm_plan *p, gl_error *err)
{
    char *runs = ids_json(p->runs, p->nruns), *sessions = ids_json(p->sessions, p->nsessions);
    /* one short transaction under the write lock (BEGIN IMMEDIATE, the busy
     * timeout of store_open): a run resumed since the plan is refused here */
    int out = store_begin(s, err);
    if (!out)
        out = check_not_live(s, runs, err);
    /* summaries first: the metrics cascade then finds no summary to rescan
     * (the metrics_delete trigger), which would cost a scan per row */
    if (!out)
        out = exec_ids(s, "DELETE FROM summaries WHERE run IN (SELECT value FROM json_each(?1))",
                       runs, err, "delete summaries");
    if (!out)
        out = exec_ids(s, "DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?1))", runs,
                       err, "delete runs");
    if (!out && p->nsessions)
        out = exec_ids(s, "DELETE FROM sessions WHERE id IN (SELECT value FROM json_each(?1))",
                       sessions, err, "delete sessions");
    if (!out)
        out = store_commit(s, err);
    else
        store_abort(s);
    free(runs);
    free(sessions);
    return out;
}
