/* store_int: what the store files share — the handle, its tables of
 * prepared statements, and the small bind/step helpers that turn every
 * SQLite failure into one line. Private to store/: nothing outside includes
 * it. store.c opens and closes, store_schema.c holds the migrations,
 * store_write.c writes, store_read.c reads. */
#ifndef GATELAB_STORE_INT_H
#define GATELAB_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

/* Prepared statements, one enum per file that owns their SQL: the writes,
 * crash detection and resume of store_write.c (store_write_sql)... */
typedef enum {
    SW_BEGIN,
    SW_COMMIT,
    SW_SESSION_END,
    SW_RUN_INSERT,
    SW_HEARTBEAT,
    SW_SEGMENT_INSERT,
    SW_SEGMENT_DROP_EMPTY,
    SW_SEGMENT_CLOSE,
    SW_METRIC_PUT,
    SW_METRIC_ADD,
    SW_LAYER_PUT,
    SW_EVENT_INSERT,
    SW_STATUS_SET,
    SW_STATUS_FINAL,
    SW_CHECKPOINT_PUT,
    SW_HEATMAP_PUT,
    SW_LIVE_RUNS,
    SW_MARK_CRASHED,
    SW_RUN_OWNER,
    SW_DELETE_METRICS,
    SW_DELETE_LAYER,
    SW_DELETE_EVENTS,
    SW_DELETE_HEATMAPS,
    SW_DELETE_CHECKPOINTS,
    SW_DELETE_SEGMENTS,
    SW_SEGMENT_REOPEN,
    SW_RUN_TAKE_OVER,
    SW_ABSORPTION_PUT,
    SW_COUNT
} store_write_stmt;

/* ...and of store_read.c, whose SQL lives there (store_read_sql). */
typedef enum {
    SR_RUNS,
    SR_RUN_ONE,
    SR_EVENTS,
    SR_SEGMENTS,
    SR_SUMMARIES,
    SR_CHECKPOINTS,
    SR_CHECKPOINT_FIND,
    SR_COUNT
} store_read_stmt;

/* ...and of store_command.c: the owner's poll and answers, prepared on first
 * use (store_command.c keeps their SQL). */
typedef enum {
    SC_PENDING,
    SC_APPLIED,
    SC_REJECTED,
    SC_REJECT_ALL,
    SC_COUNT
} store_command_stmt;

extern const char *const store_write_sql[SW_COUNT];
extern const char *const store_read_sql[SR_COUNT];
/* store_migrations[v] takes a database from user_version v to v+1 */
extern const char *const store_migrations[STORE_SCHEMA_VERSION];

struct store {
    sqlite3 *db;
    char *path;
    char host[256];
    int64_t pid;
    int readonly;                 /* opened read-only (STORE_BROWSE) */
    int64_t version;              /* schema version as opened: a reader's file may be
                                     older; a writer's is migrated to the current one */
    char db_id[33];               /* db_info 'id', "" when there is none */
    int last_rc;                  /* SQLite code of the last store_fail since
                                     store_begin: store_busy reads it */
    size_t crashed_on_open;
    /* runs begun (or reopened) by this handle and not yet given a final
     * status: store_commit refreshes their heartbeat */
    int64_t *live;
    size_t n_live, cap_live;
    /* the live list as it was at store_begin: a rollback puts it back, so a
     * batch replayed after SQLITE_BUSY neither keeps a run id that was never
     * committed nor forgets a run whose final status was rolled back */
    int64_t *live_tx;
    size_t n_live_tx, cap_live_tx;
    int tx_saved;                 /* live_tx holds the list of an open store_begin */
    sqlite3_stmt *sw[SW_COUNT];
    sqlite3_stmt *sr[SR_COUNT];
    sqlite3_stmt *sc[SC_COUNT];   /* NULL until first used */
};

/* Binders keep the first failing return code in *rc, so a run of binds is
 * checked once, at the step. uint64 values above INT64_MAX are clamped. */
void store_bind_i64(sqlite3_stmt *st, int i, int64_t v, int *rc);
void store_bind_u64(sqlite3_stmt *st, int i, uint64_t v, int *rc);
void store_bind_f64(sqlite3_stmt *st, int i, double v, int *rc);
void store_bind_text(sqlite3_stmt *st, int i, const char *v, int *rc);
void store_bind_blob(sqlite3_stmt *st, int i, const void *v, size_t n, int *rc);
/* Binds v to ?1 and steps once: the bind's code if it failed, else the
 * step's (SQLITE_ROW when the one-row lookup found its row). */
int store_step_i64(sqlite3_stmt *st, int64_t v);

/* "PATH: what: sqlite3_errmsg" (or the bind's error string), returns -1;
 * remembers rc for store_busy. */
int store_fail(store *s, gl_error *err, int rc, const char *what);

/* Steps a statement that returns no rows, then resets it and clears its
 * bindings whatever happened. rc is the binders' code. */
int store_exec(store *s, sqlite3_stmt *st, int rc, gl_error *err, const char *what);

/* Ends a walk over a statement's rows: rc is the last sqlite3_step code
 * (SQLITE_DONE, or SQLITE_ROW when the walk stopped early). Resets and
 * clears the statement either way. */
int store_end(store *s, sqlite3_stmt *st, int rc, gl_error *err, const char *what);

/* A statement prepared for one call (finalized by the caller); -1 with the
 * message, *st NULL, when SQLite refuses it. */
int store_prepare(store *s, const char *sql, sqlite3_stmt **st, gl_error *err);

/* Copies column i as text into out[size] ("" for NULL), truncating. */
void store_col_text(sqlite3_stmt *st, int i, char *out, size_t size);
uint64_t store_col_u64(sqlite3_stmt *st, int i);
/* NaN for NULL */
double store_col_f64(sqlite3_stmt *st, int i);

/* wall_ms (Unix ms; <= 0 or non-finite: now) -> "YYYY-MM-DDTHH:MM:SS.mmmZ" */
void store_iso_time(double wall_ms, char out[32]);

/* The planes of a heatmap as the heatmaps table names them (its kind
 * column), in the payload's order (record.h): one list for write_heatmap
 * and store_get_heatmaps. Plane k of h is store_heat_plane(h, k). */
#define STORE_HEAT_PLANES 3
extern const char *const store_heat_kind[STORE_HEAT_PLANES];
uint8_t *store_heat_plane(const heatmap_snapshot *h, size_t k);

/* Rejects the pending commands of every session that has no running or
 * paused run left (its owner ended or crashed: nobody will apply them);
 * store_open, after store_detect_crashes. Reads first; writes only when
 * there is such a row. */
int store_command_reject_orphans(store *s, gl_error *err);
/* Finalizes the commands table's statements (store_close). */
void store_command_finalize(store *s);

/* Ends the open transaction, if any, dropping what it wrote. */
void store_rollback(store *s);
/* Marks as crashed the running and paused runs whose owner is gone
 * (store_open, after the statements are prepared). */
int store_detect_crashes(store *s, gl_error *err);

#endif
