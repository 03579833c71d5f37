/* store_experiment: the experiments of schema version 2 — the experiment
 * row, the runs behind it, its result table — and the few run-level reads
 * and writes an experiment needs beyond a live session's (a metric's
 * extent, one metric row, the next arm index of a session). An experiment
 * writes a handful of rows once, so each call prepares its statement and
 * finalizes it before returning instead of adding to the statements
 * store_open prepares for the hot paths. */
#include "store_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* store_exec, then finalize */
static int exec_once(store *s, sqlite3_stmt *st, int rc, gl_error *err, const char *what)
{
    int out = store_exec(s, st, rc, err, what);
    sqlite3_finalize(st);
    return out;
}

/* NaN -> NULL */
static void bind_real(sqlite3_stmt *st, int i, double v, int *rc)
{
    if (*rc == SQLITE_OK && !isfinite(v))
        *rc = sqlite3_bind_null(st, i);
    else
        store_bind_f64(st, i, v, rc);
}

int store_experiment_begin(store *s, int64_t id, const char *kind, const char *command,
                           const char *config_json, double started_ms, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "INSERT INTO experiments (id, kind, command, config, status, started_at, version,"
                " host) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
                &st, err))
        return -1;
    char now[32];
    store_iso_time(started_ms, now);
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, id, &rc);
    store_bind_text(st, 2, kind, &rc);
    store_bind_text(st, 3, command ? command : "", &rc);
    store_bind_text(st, 4, config_json ? config_json : "{}", &rc);
    store_bind_text(st, 5, now, &rc);
    store_bind_text(st, 6, GL_VERSION, &rc);
    store_bind_text(st, 7, s->host, &rc);
    return exec_once(s, st, rc, err, "begin experiment");
}

int store_experiment_end(store *s, int64_t experiment, const char *status, double wall_seconds,
                         gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "UPDATE experiments SET status = ?2, ended_at = ?3, wall_seconds = ?4"
                " WHERE id = ?1",
                &st, err))
        return -1;
    char now[32];
    store_iso_time(0, now);
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, experiment, &rc);
    store_bind_text(st, 2, status, &rc);
    store_bind_text(st, 3, now, &rc);
    bind_real(st, 4, wall_seconds, &rc);
    if (exec_once(s, st, rc, err, "end experiment"))
        return -1;
    if (sqlite3_changes(s->db) != 1)
        return gl_fail(err, "no experiment %lld in %s", (long long)experiment, s->path);
    return 0;
}

int store_experiment_link(store *s, int64_t experiment, int64_t run, uint64_t seed,
                          const char *role, const char *label, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "INSERT INTO experiment_runs (experiment, run, seed, role, label)"
                " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (experiment, run) DO UPDATE SET"
                " seed = excluded.seed, role = excluded.role, label = excluded.label",
                &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, experiment, &rc);
    store_bind_i64(st, 2, run, &rc);
    store_bind_u64(st, 3, seed, &rc);
    store_bind_text(st, 4, role, &rc);
    store_bind_text(st, 5, label, &rc);
    return exec_once(s, st, rc, err, "link run to experiment");
}

int store_experiment_result(store *s, int64_t experiment, const store_result_row *r,
                            gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "INSERT INTO experiment_results (experiment, position, line, quantity, value,"
                " spread, gatelab, paper, same_direction)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                " ON CONFLICT (experiment, position) DO UPDATE SET line = excluded.line,"
                " quantity = excluded.quantity, value = excluded.value, spread = excluded.spread,"
                " gatelab = excluded.gatelab, paper = excluded.paper,"
                " same_direction = excluded.same_direction",
                &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, experiment, &rc);
    store_bind_i64(st, 2, r->position, &rc);
    store_bind_text(st, 3, r->line, &rc);
    store_bind_text(st, 4, r->quantity, &rc);
    bind_real(st, 5, r->value, &rc);
    bind_real(st, 6, r->spread, &rc);
    store_bind_text(st, 7, r->gatelab, &rc);
    store_bind_text(st, 8, r->paper, &rc);
    store_bind_text(st, 9, r->same_direction, &rc);
    return exec_once(s, st, rc, err, "write experiment result");
}

int store_experiment_delete(store *s, int64_t experiment, gl_error *err)
{
    sqlite3_stmt *st;
    /* experiment_runs and experiment_results go with it (ON DELETE CASCADE) */
    if (store_prepare(s, "DELETE FROM experiments WHERE id = ?1", &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, experiment, &rc);
    return exec_once(s, st, rc, err, "delete experiment");
}

void store_experiment_row_free(store_experiment_row *r)
{
    free(r->command);
    free(r->config_json);
    r->command = r->config_json = NULL;
}

int64_t store_experiment_find(store *s, int64_t n, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT id FROM experiments WHERE id = ?1"
                " UNION ALL SELECT x.experiment FROM experiment_runs x"
                " JOIN runs r ON r.id = x.run WHERE r.session = ?1 LIMIT 1",
                &st, err))
        return -1;
    int rc = store_step_i64(st, n);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int out = store_end(s, st, rc, err, "find experiment");
    sqlite3_finalize(st);
    if (out)
        return -1;
    if (!id)
        return gl_fail(err, "no experiment %lld (nor a session of one) in %s", (long long)n,
                       s->path);
    return id;
}

int store_get_experiment(store *s, int64_t id, store_experiment_row *out, gl_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT id, kind, status, started_at, coalesce(ended_at, ''), version,"
                " wall_seconds, command, config FROM experiments WHERE id = ?1",
                &st, err))
        return -1;
    int rc = store_step_i64(st, id);
    int found = rc == SQLITE_ROW;
    if (found) {
        out->id = sqlite3_column_int64(st, 0);
        store_col_text(st, 1, out->kind, sizeof out->kind);
        store_col_text(st, 2, out->status, sizeof out->status);
        store_col_text(st, 3, out->started, sizeof out->started);
        store_col_text(st, 4, out->ended, sizeof out->ended);
        store_col_text(st, 5, out->version, sizeof out->version);
        out->wall_seconds = store_col_f64(st, 6);
        const unsigned char *c = sqlite3_column_text(st, 7), *j = sqlite3_column_text(st, 8);
        out->command = xstrdup(c ? (const char *)c : "");
        out->config_json = xstrdup(j ? (const char *)j : "{}");
    }
    int rc_out = store_end(s, st, rc, err, "read experiment");
    sqlite3_finalize(st);
    if (rc_out) {
        store_experiment_row_free(out);
        return -1;
    }
    if (!found)
        return gl_fail(err, "no experiment %lld in %s", (long long)id, s->path);
    return 0;
}

int store_list_experiment_results(store *s, int64_t experiment, store_result_fn fn, void *ctx,
                                  gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT position, line, quantity, value, spread, gatelab, paper, same_direction"
                " FROM experiment_results WHERE experiment = ?1 ORDER BY position",
                &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, experiment, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_result_row r;
            r.position = (uint32_t)sqlite3_column_int64(st, 0);
            store_col_text(st, 1, r.line, sizeof r.line);
            store_col_text(st, 2, r.quantity, sizeof r.quantity);
            r.value = store_col_f64(st, 3);
            r.spread = store_col_f64(st, 4);
            store_col_text(st, 5, r.gatelab, sizeof r.gatelab);
            store_col_text(st, 6, r.paper, sizeof r.paper);
            store_col_text(st, 7, r.same_direction, sizeof r.same_direction);
            if (fn(ctx, &r))
                break;
        }
    int out = store_end(s, st, rc, err, "list experiment results");
    sqlite3_finalize(st);
    return out;
}

int store_list_experiment_runs(store *s, int64_t experiment, store_experiment_run_fn fn,
                               void *ctx, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT x.run, r.session, x.seed, x.role, x.label, r.status"
                " FROM experiment_runs x JOIN runs r ON r.id = x.run"
                " WHERE x.experiment = ?1 ORDER BY x.seed, x.run",
                &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, experiment, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_experiment_run_row r;
            r.run = sqlite3_column_int64(st, 0);
            r.session = sqlite3_column_int64(st, 1);
            r.seed = store_col_u64(st, 2);
            store_col_text(st, 3, r.role, sizeof r.role);
            store_col_text(st, 4, r.label, sizeof r.label);
            store_col_text(st, 5, r.status, sizeof r.status);
            if (fn(ctx, &r))
                break;
        }
    int out = store_end(s, st, rc, err, "list experiment runs");
    sqlite3_finalize(st);
    return out;
}

int store_metric_summary(store *s, int64_t run, const char *key, store_metric_stats *out,
                         gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                "SELECT count(*), avg(value), max(abs(value)),"
                " (SELECT value FROM metrics WHERE run = ?1 AND key = ?2 ORDER BY step DESC"
                " LIMIT 1) FROM metrics WHERE run = ?1 AND key = ?2",
                &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, key, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->count = (size_t)sqlite3_column_int64(st, 0);
        out->mean = store_col_f64(st, 1);
        out->max_abs = store_col_f64(st, 2);
        out->last = store_col_f64(st, 3);
    }
    int bad = store_end(s, st, rc, err, "read metric");
    sqlite3_finalize(st);
    return bad;
}

int store_put_metric(store *s, int64_t run, const char *key, uint64_t step, double value,
                     gl_error *err)
{
    if (!isfinite(value))
        return 0;
    sqlite3_stmt *st;
    if (store_prepare(s,
                "INSERT INTO metrics (run, key, step, wall_ms, value) VALUES (?1, ?2, ?3, ?4, ?5)"
                " ON CONFLICT (run, key, step) DO UPDATE SET wall_ms = excluded.wall_ms,"
                " value = excluded.value",
                &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, key, &rc);
    store_bind_u64(st, 3, step, &rc);
    store_bind_i64(st, 4, (int64_t)llround(gl_wall_ms()), &rc);
    store_bind_f64(st, 5, value, &rc);
    return exec_once(s, st, rc, err, "write metric");
}

int store_list_absorption(store *s, int64_t run, int model_only, store_absorption_fn fn,
                          void *ctx, gl_error *err)
{
    sqlite3_stmt *st;
    /* a file this process may not migrate (read-only, schema 6) lacks the
     * view: no trace then, not an error */
    if (store_prepare(s, "SELECT count(*) FROM sqlite_master WHERE type = 'view'"
                         " AND name = 'absorption_trace'", &st, err))
        return -1;
    int rc = sqlite3_step(st);
    int have = rc == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0;
    int out = store_end(s, st, rc, err, "find absorption_trace");
    sqlite3_finalize(st);
    if (out || !have)
        return out;
    if (store_prepare(s,
                "SELECT step, coalesce(layer, -1), f1, mass_kept, chance_f1, oracle_drift, f1_0,"
                " absorption_index FROM absorption_trace WHERE run = ?1"
                " AND (?2 = 0 OR layer IS NULL) ORDER BY step, layer IS NULL, layer",
                &st, err))
        return -1;
    rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_i64(st, 2, model_only, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_absorption_row r;
            r.step = store_col_u64(st, 0);
            r.layer = (int)sqlite3_column_int64(st, 1);
            r.f1 = store_col_f64(st, 2);
            r.mass_kept = store_col_f64(st, 3);
            r.chance = store_col_f64(st, 4);
            r.oracle_drift = store_col_f64(st, 5);
            r.f1_0 = store_col_f64(st, 6);
            r.index = store_col_f64(st, 7);
            if (fn(ctx, &r))
                break;
        }
    out = store_end(s, st, rc, err, "list absorption trace");
    sqlite3_finalize(st);
    return out;
}

int64_t store_next_arm(store *s, int64_t session, gl_error *err)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "SELECT coalesce(max(arm) + 1, 0) FROM runs WHERE session = ?1", &st, err))
        return -1;
    int rc = store_step_i64(st, session);
    int64_t arm = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    int out = store_end(s, st, rc, err, "next arm");
    sqlite3_finalize(st);
    return out ? -1 : arm;
}

void store_abort(store *s)
{
    store_rollback(s);
}
