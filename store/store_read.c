/* store_read: the reads behind `ls`, `show`, `resume` and `export RUN`.
 * Each walk binds one prepared statement (store_read_sql, prepared in
 * store_open), hands every row to the caller's function and resets the
 * statement. A function returning nonzero stops its walk early (the walk
 * still returns 0); it must not start another walk of the same kind. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#define RUN_COLUMNS                                                                         \
    "SELECT r.id, r.session, coalesce(r.parent_run, 0), r.arm, r.name, r.mode, r.status,"   \
    " r.k, r.frozen, r.seed,"                                                               \
    " coalesce((SELECT max(s.last_step) FROM summaries s WHERE s.run = r.id), r.start_step),"\
    " vl.last, vp.last, vl.min, vl.min_step, r.started_at, r.ended_at, r.owner_pid, r.config"\
    " FROM runs r"                                                                          \
    " LEFT JOIN summaries vl ON vl.run = r.id AND vl.key = 'val_loss'"                      \
    " LEFT JOIN summaries vp ON vp.run = r.id AND vp.key = 'val_ppl'"

const char *const store_read_sql[SR_COUNT] = {
    [SR_RUNS] = RUN_COLUMNS " WHERE ?1 = 0 OR r.session = ?1 ORDER BY r.id DESC",
    [SR_RUN_ONE] = RUN_COLUMNS " WHERE r.id = ?1",
    [SR_EVENTS] = "SELECT step, time, kind, detail FROM events WHERE run = ?1 ORDER BY step, id",
    [SR_SEGMENTS] =
        "SELECT from_step, to_step, mode, k, frozen FROM segments WHERE run = ?1"
        " ORDER BY from_step, id",
    [SR_SUMMARIES] =
        "SELECT key, last, last_step, min, min_step, max, max_step FROM summaries"
        " WHERE run = ?1 ORDER BY key",
    [SR_CHECKPOINTS] =
        "SELECT step, resumable, path FROM checkpoints WHERE run = ?1 ORDER BY step, id",
    [SR_CHECKPOINT_FIND] =
        "SELECT step, resumable, path FROM checkpoints"
        " WHERE run = ?1 AND step <= ?2 AND (resumable = 1 OR ?3 = 0)"
        " ORDER BY step DESC, id DESC LIMIT 1",
};

/* ---- runs ---- */

static void run_row_read(sqlite3_stmt *st, store_run_row *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->session = sqlite3_column_int64(st, 1);
    r->parent_run = sqlite3_column_int64(st, 2);
    r->arm = (uint32_t)sqlite3_column_int64(st, 3);
    store_col_text(st, 4, r->name, sizeof r->name);
    store_col_text(st, 5, r->mode, sizeof r->mode);
    store_col_text(st, 6, r->status, sizeof r->status);
    r->k = (uint32_t)sqlite3_column_int64(st, 7);
    r->frozen = sqlite3_column_int(st, 8);
    r->seed = (uint64_t)sqlite3_column_int64(st, 9);   /* the bits store_run_begin bound */
    r->steps = store_col_u64(st, 10);
    r->final_val_loss = store_col_f64(st, 11);
    r->final_val_ppl = store_col_f64(st, 12);
    r->best_val_loss = store_col_f64(st, 13);
    r->best_val_step = store_col_u64(st, 14);
    store_col_text(st, 15, r->started, sizeof r->started);
    store_col_text(st, 16, r->ended, sizeof r->ended);
    r->pid = sqlite3_column_int64(st, 17);
    const unsigned char *cfg = sqlite3_column_text(st, 18);
    r->config_json = xstrdup(cfg ? (const char *)cfg : "{}");
}

void store_run_row_free(store_run_row *r)
{
    free(r->config_json);
    r->config_json = NULL;
}

int store_list_runs(store *s, int64_t session, store_run_fn fn, void *ctx, gl_error *err)
{
    sqlite3_stmt *st = s->sr[SR_RUNS];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, session, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_run_row row;
            run_row_read(st, &row);
            int stop = fn(ctx, &row);
            store_run_row_free(&row);
            if (stop)
                break;
        }
    return store_end(s, st, rc, err, "list runs");
}

int store_get_run(store *s, int64_t run, store_run_row *out, gl_error *err)
{
    sqlite3_stmt *st = s->sr[SR_RUN_ONE];
    int rc = store_step_i64(st, run);
    int found = rc == SQLITE_ROW;
    if (found)
        run_row_read(st, out);
    if (store_end(s, st, rc, err, "read run"))
        return -1;
    if (!found)
        return gl_fail(err, "no run %lld in %s", (long long)run, s->path);
    return 0;
}

/* ---- events, segments, summaries, checkpoints ---- */

int store_list_events(store *s, int64_t run, store_event_fn fn, void *ctx, gl_error *err)
{
    sqlite3_stmt *st = s->sr[SR_EVENTS];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_event_row row;
            row.step = store_col_u64(st, 0);
            store_col_text(st, 1, row.time, sizeof row.time);
            store_col_text(st, 2, row.kind, sizeof row.kind);
            store_col_text(st, 3, row.detail, sizeof row.detail);
            if (fn(ctx, &row))
                break;
        }
    return store_end(s, st, rc, err, "list events");
}

int store_list_segments(store *s, int64_t run, store_segment_fn fn, void *ctx, gl_error *err)
{
    sqlite3_stmt *st = s->sr[SR_SEGMENTS];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_segment_row row;
            row.from_step = store_col_u64(st, 0);
            row.to_step = sqlite3_column_type(st, 1) == SQLITE_NULL ? UINT64_MAX
                                                                   : store_col_u64(st, 1);
            store_col_text(st, 2, row.mode, sizeof row.mode);
            row.k = (uint32_t)sqlite3_column_int64(st, 3);
            row.frozen = sqlite3_column_int(st, 4);
            if (fn(ctx, &row))
                break;
        }
    return store_end(s, st, rc, err, "list segments");
}

int store_list_summaries(store *s, int64_t run, store_summary_fn fn, void *ctx, gl_error *err)
{
    sqlite3_stmt *st = s->sr[SR_SUMMARIES];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_summary_row row;
            store_col_text(st, 0, row.key, sizeof row.key);
            row.last = store_col_f64(st, 1);
            row.last_step = store_col_u64(st, 2);
            row.min = store_col_f64(st, 3);
            row.min_step = store_col_u64(st, 4);
            row.max = store_col_f64(st, 5);
            row.max_step = store_col_u64(st, 6);
            if (fn(ctx, &row))
                break;
        }
    return store_end(s, st, rc, err, "list summaries");
}

static void checkpoint_row_read(sqlite3_stmt *st, store_checkpoint_row *row)
{
    row->step = store_col_u64(st, 0);
    row->resumable = sqlite3_column_int(st, 1);
    store_col_text(st, 2, row->path, sizeof row->path);
}

int store_list_checkpoints(store *s, int64_t run, store_checkpoint_fn fn, void *ctx,
                           gl_error *err)
{
    sqlite3_stmt *st = s->sr[SR_CHECKPOINTS];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_checkpoint_row row;
            checkpoint_row_read(st, &row);
            if (fn(ctx, &row))
                break;
        }
    return store_end(s, st, rc, err, "list checkpoints");
}

int store_find_checkpoint(store *s, int64_t run, uint64_t max_step, int resumable_only,
                          store_checkpoint_row *out, gl_error *err)
{
    sqlite3_stmt *st = s->sr[SR_CHECKPOINT_FIND];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, max_step, &rc);
    store_bind_i64(st, 3, resumable_only != 0, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW;
    if (found)
        checkpoint_row_read(st, out);
    if (store_end(s, st, rc, err, "find checkpoint"))
        return -1;
    if (found)
        return 0;
    const char *which = resumable_only ? "resumable checkpoint" : "checkpoint";
    if (max_step == UINT64_MAX)
        return gl_fail(err, "run %lld has no %s in %s", (long long)run, which, s->path);
    return gl_fail(err, "run %lld has no %s at or before step %llu in %s", (long long)run, which,
                   (unsigned long long)max_step, s->path);
}

/* ---- the screen's reads: `replay` and `run --compare` ----
 * These statements are prepared per walk and finalized at its end (the
 * statement table in store_int.h belongs to the store's own commands); a
 * replay runs a few of them per key press, so preparing costs nothing a
 * person notices. */

static int prepare_once(store *s, const char *sql, sqlite3_stmt **st, gl_error *err,
                        const char *what)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return store_fail(s, err, rc, what);
    }
    return 0;
}

/* store_end, then finalize: the walk's statement is not kept. */
static int finish_once(store *s, sqlite3_stmt *st, int rc, gl_error *err, const char *what)
{
    int out = store_end(s, st, rc, err, what);
    sqlite3_finalize(st);
    return out;
}

/* Binds (run, key) and hands each (step, wall_ms, value) row to fn, then
 * finishes the one-call statement. */
static int walk_metrics(store *s, sqlite3_stmt *st, int64_t run, const char *key,
                        store_metric_fn fn, void *ctx, gl_error *err, const char *what)
{
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_text(st, 2, key, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_metric_row row;
            row.step = store_col_u64(st, 0);
            row.wall_ms = (double)sqlite3_column_int64(st, 1);
            row.value = store_col_f64(st, 2);
            if (fn(ctx, &row))
                break;
        }
    return finish_once(s, st, rc, err, what);
}

int store_list_metrics(store *s, int64_t run, const char *key, store_metric_fn fn, void *ctx,
                       gl_error *err)
{
    sqlite3_stmt *st;
    if (prepare_once(s, "SELECT step, wall_ms, value FROM metrics WHERE run = ?1 AND key = ?2"
                        " ORDER BY step", &st, err, "prepare list metrics"))
        return -1;
    return walk_metrics(s, st, run, key, fn, ctx, err, "list metrics");
}

int store_list_layer_metrics_at(store *s, int64_t run, uint64_t step, store_layer_fn fn,
                                void *ctx, gl_error *err)
{
    sqlite3_stmt *st;
    if (prepare_once(s, "SELECT layer, head, key, value FROM layer_metrics"
                        " WHERE run = ?1 AND step = ?2 ORDER BY layer, head, key",
                     &st, err, "prepare list layer metrics"))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, step, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_layer_row row;
            row.layer = (uint32_t)sqlite3_column_int64(st, 0);
            row.head = (uint32_t)sqlite3_column_int64(st, 1);
            store_col_text(st, 2, row.key, sizeof row.key);
            row.value = store_col_f64(st, 3);
            if (fn(ctx, &row))
                break;
        }
    return finish_once(s, st, rc, err, "list layer metrics");
}

int store_list_layer_means(store *s, int64_t run, const char *key, store_metric_fn fn,
                           void *ctx, gl_error *err)
{
    /* the mean over layers of each layer's mean over heads, as an
     * evaluation record's means are made (metrics_model_value); no wall
     * time (the 0 column) */
    sqlite3_stmt *st;
    if (prepare_once(s, "SELECT step, 0, avg(lv) FROM (SELECT step, layer, avg(value) AS lv"
                        " FROM layer_metrics WHERE run = ?1 AND key = ?2 GROUP BY step, layer)"
                        " GROUP BY step ORDER BY step",
                     &st, err, "prepare list layer means"))
        return -1;
    return walk_metrics(s, st, run, key, fn, ctx, err, "list layer means");
}

/* ---- heatmaps: one row per (layer, head, plane), written by write_heatmap ---- */

const char *const store_heat_kind[STORE_HEAT_PLANES] = {"gate", "oracle", "attn"};

uint8_t *store_heat_plane(const heatmap_snapshot *h, size_t k)
{
    uint8_t *const planes[STORE_HEAT_PLANES] = {h->gate, h->oracle, h->attn};
    return planes[k];
}

/* The heatmap of (run, step, layer, head, kind) copied into buf[cap].
 * *found = 0 (and 0 returned) when there is no such row; -1 with a message
 * on an SQLite error or a blob larger than cap. */
static int get_heatmap(store *s, int64_t run, uint64_t step, uint32_t layer, uint32_t head,
                       const char *kind, uint8_t *buf, size_t cap, uint32_t *rows,
                       uint32_t *cols, int *found, gl_error *err)
{
    sqlite3_stmt *st;
    *found = 0;
    *rows = *cols = 0;
    if (prepare_once(s, "SELECT rows, cols, data FROM heatmaps WHERE run = ?1 AND step = ?2"
                        " AND layer = ?3 AND head = ?4 AND kind = ?5", &st, err,
                     "prepare read heatmap"))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    store_bind_u64(st, 2, step, &rc);
    store_bind_i64(st, 3, layer, &rc);
    store_bind_i64(st, 4, head, &rc);
    store_bind_text(st, 5, kind, &rc);
    int bad = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t r = sqlite3_column_int64(st, 0), c = sqlite3_column_int64(st, 1);
        const void *data = sqlite3_column_blob(st, 2);
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        /* the schema checks length(data) = rows * cols; the buffer is the caller's */
        if (r <= 0 || c <= 0 || (uint64_t)r * (uint64_t)c != n || n > cap || (!data && n))
            bad = 1;
        else {
            memcpy(buf, data, n);
            *rows = (uint32_t)r;
            *cols = (uint32_t)c;
            *found = 1;
        }
    }
    if (finish_once(s, st, rc, err, "read heatmap"))
        return -1;
    if (bad)
        return gl_fail(err, "%s: heatmap of run %lld step %llu layer %u head %u (%s) does not "
                            "fit %zu bytes", s->path, (long long)run, (unsigned long long)step,
                       layer, head, kind, cap);
    return 0;
}

int store_get_heatmaps(store *s, int64_t run, uint64_t step, heatmap_snapshot *h, int *found,
                       gl_error *err)
{
    size_t cells = (size_t)h->T * h->T, n = (size_t)h->layers * h->heads * cells;
    *found = 0;
    h->step = step;
    for (size_t k = 0; k < STORE_HEAT_PLANES; k++)
        memset(store_heat_plane(h, k), 0, n);
    for (uint32_t l = 0; l < h->layers; l++)
        for (uint32_t hd = 0; hd < h->heads; hd++)
            for (size_t k = 0; k < STORE_HEAT_PLANES; k++) {
                uint8_t *dst = store_heat_plane(h, k) + ((size_t)l * h->heads + hd) * cells;
                uint32_t rows, cols;
                int got;
                if (get_heatmap(s, run, step, l, hd, store_heat_kind[k], dst, cells, &rows,
                                &cols, &got, err))
                    return -1;
                /* a plane of another shape is not this session's: left zero */
                if (got && (rows != h->T || cols != h->T))
                    memset(dst, 0, cells);
                else
                    *found |= got;
            }
    return 0;
}

int store_list_heatmap_steps(store *s, int64_t run, store_step_fn fn, void *ctx, gl_error *err)
{
    sqlite3_stmt *st;
    if (prepare_once(s, "SELECT DISTINCT step FROM heatmaps WHERE run = ?1 ORDER BY step", &st,
                     err, "prepare list heatmap steps"))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, run, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            if (fn(ctx, store_col_u64(st, 0)))
                break;
    return finish_once(s, st, rc, err, "list heatmap steps");
}

void store_session_row_free(store_session_row *r)
{
    free(r->command);
    r->command = NULL;
}

int store_get_session(store *s, int64_t session, store_session_row *out, gl_error *err)
{
    sqlite3_stmt *st;
    memset(out, 0, sizeof *out);
    if (prepare_once(s, "SELECT id, started_at, coalesce(ended_at, ''), command,"
                        " (SELECT count(*) FROM runs WHERE runs.session = sessions.id)"
                        " FROM sessions WHERE id = ?1", &st, err, "prepare read session"))
        return -1;
    int rc = store_step_i64(st, session);
    int found = rc == SQLITE_ROW;
    if (found) {
        out->id = sqlite3_column_int64(st, 0);
        store_col_text(st, 1, out->started, sizeof out->started);
        store_col_text(st, 2, out->ended, sizeof out->ended);
        const unsigned char *cmd = sqlite3_column_text(st, 3);
        out->command = xstrdup(cmd ? (const char *)cmd : "");
        out->runs = (size_t)sqlite3_column_int64(st, 4);
    }
    if (finish_once(s, st, rc, err, "read session")) {
        store_session_row_free(out);
        return -1;
    }
    if (!found)
        return gl_fail(err, "no session %lld in %s", (long long)session, s->path);
    return 0;
}

int64_t store_last_session(store *s, gl_error *err)
{
    sqlite3_stmt *st;
    if (prepare_once(s, "SELECT coalesce(max(session), 0) FROM runs", &st, err,
                     "prepare last session"))
        return -1;
    int rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (finish_once(s, st, rc, err, "last session"))
        return -1;
    return id;
}

int store_list_comparisons(store *s, int64_t session, int64_t run, store_comparison_fn fn,
                           void *ctx, gl_error *err)
{
    static const char sql[] =
        "SELECT what, session, seed, learned_run, learned_ppl, random_run, random_ppl,\n"
        "       dense_run, dense_ppl, benefit, rel, step, status, note FROM (\n"
        "  SELECT learned_mode || ' vs ' || random_mode AS what, session, seed, learned_run,\n"
        "         learned_ppl, random_run, random_ppl, dense_run, dense_ppl,\n"
        "         routing_benefit AS benefit, routing_benefit_rel AS rel, step, status,\n"
        "         rel_note AS note\n"
        "  FROM learned_vs_random\n"
        "  UNION ALL\n"
        "  SELECT mode || '+' || ffn || ' router', session, seed, learned_run, learned_ppl,\n"
        "         random_run, random_ppl, dense_ffn_run, dense_ffn_ppl, routing_benefit,\n"
        "         NULL, step, status, NULL\n"
        "  FROM router_learned_vs_random)\n"
        "WHERE (?1 = 0 OR session = ?1) AND (?2 = 0 OR ?2 IN (learned_run, random_run, dense_run))\n"
        "ORDER BY session, seed, what";
    /* a reader's older file has no comparison views: nothing to list */
    if (s->version < 5)
        return 0;
    /* prepared per call: the statement names schema-5 views */
    sqlite3_stmt *st;
    if (store_prepare(s, sql, &st, err))
        return -1;
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, session, &rc);
    store_bind_i64(st, 2, run, &rc);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            store_comparison_row row;
            store_col_text(st, 0, row.what, sizeof row.what);
            row.session = sqlite3_column_int64(st, 1);
            row.seed = sqlite3_column_int64(st, 2);
            row.learned_run = sqlite3_column_int64(st, 3);
            row.learned_ppl = store_col_f64(st, 4);
            row.random_run = sqlite3_column_int64(st, 5);
            row.random_ppl = store_col_f64(st, 6);
            row.dense_run = sqlite3_column_int64(st, 7);
            row.dense_ppl = store_col_f64(st, 8);
            row.benefit = store_col_f64(st, 9);
            row.relative = store_col_f64(st, 10);
            row.has_step = sqlite3_column_type(st, 11) != SQLITE_NULL;
            row.step = row.has_step ? store_col_u64(st, 11) : 0;
            store_col_text(st, 12, row.status, sizeof row.status);
            store_col_text(st, 13, row.note, sizeof row.note);
            if (fn(ctx, &row))
                break;
        }
    int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_fail(s, err, rc, "list comparisons");
    sqlite3_finalize(st);
    return out;
}
