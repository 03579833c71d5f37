/* store: the SQLite database of DESIGN §8 — schema and forward-only
 * migrations keyed on PRAGMA user_version, WAL, crash detection, batched
 * writes of telemetry records, and the reads behind `ls`, `show`, `resume`
 * and `export RUN`. It talks to SQLite only: no printing, no training.
 * One store handle belongs to one thread at a time. */
#ifndef GATELAB_STORE_H
#define GATELAB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "record.h"

#define STORE_SCHEMA_VERSION 7
/* PRAGMA application_id of a gatelab database ("gtlb") */
#define STORE_APPLICATION_ID 0x67746c62

typedef struct store store;

typedef enum {
    STORE_CREATE,     /* create the file (and its directory) if missing */
    STORE_EXISTING,   /* fail with "no database at PATH" if missing */
    STORE_BROWSE,     /* as STORE_EXISTING, but a database this process cannot
                         write is opened read-only (no migration, no crash
                         marking) instead of refused: for ls, show, export.
                         Such a reader creates nothing next to the file: with
                         no -wal file (every commit is in the database file)
                         it reads the file as immutable; with -wal and -shm
                         it reads through them; a -wal left without its -shm
                         is refused. An older schema is read as it is. */
} store_open_mode;

/* Opens (or creates), refuses a file that is not a gatelab database or whose
 * schema is newer than this binary (nothing written in either case), applies
 * migrations in one transaction, sets WAL and a busy timeout
 * (STORE_BUSY_TIMEOUT_MS), and marks as `crashed` every running/paused run
 * whose owner process is gone (pid not alive on this host, or heartbeat
 * older than STORE_STALE_SECONDS). Every message names the path once. */
#define STORE_STALE_SECONDS 300
#define STORE_BUSY_TIMEOUT_MS 5000
store *store_open(const char *path, store_open_mode mode, gl_error *err);
void store_close(store *s);
/* What store_open does for owners that are gone, again now: their running
 * and paused runs marked crashed, and the pending commands of sessions with
 * no live run left rejected. For a writer that waits on another process
 * (send); a read-only store does nothing. */
int store_recheck_owners(store *s, gl_error *err);
/* Runs marked crashed by the last store_open. */
size_t store_crashed_on_open(const store *s);
/* The database's id (db_info 'id': 32 lowercase hex digits, made when the
 * file was created or migrated to schema 4), valid while the store is open;
 * "" for an older schema opened read-only. */
const char *store_db_id(const store *s);

/* How long one SQLite call waits for another connection's lock before it
 * fails with SQLITE_BUSY (store_open sets STORE_BUSY_TIMEOUT_MS). The store
 * thread sets a short one and retries whole batches itself. */
int store_set_busy_timeout(store *s, int ms, gl_error *err);
/* Nonzero when the last failure of this handle since store_begin was another
 * connection holding a lock (SQLITE_BUSY or SQLITE_LOCKED): nothing is wrong
 * with the writes; end the transaction (store_abort) and retry them later. */
int store_busy(const store *s);

/* ---- writing (the store thread) ---- */

/* command: the command line, for the record; the session also records
 * GL_VERSION and gl_git_rev(). Returns the session id or -1. */
int64_t store_session_begin(store *s, const char *command, gl_error *err);
int store_session_end(store *s, int64_t session, gl_error *err);

/* ---- names, tags and notes (schema 5; rare writes: each call prepares its
 * statement, so a read-only handle on an older file never needs them) ----
 * Each joins the open transaction or runs in one of its own; a missing
 * session or run is "no session N in PATH" / "no run N in PATH". */

/* Sets sessions.name and sessions.note; NULL leaves that column as it is. */
int store_session_set_name_note(store *s, int64_t session, const char *name, const char *note,
                                gl_error *err);
/* Sets tag key of a run to value (replacing its old value; NULL value: "").
 * The key must not be empty. */
int store_tag_set(store *s, int64_t run, const char *key, const char *value, gl_error *err);
/* Sets runs.note (replacing it; NULL clears it). */
int store_note_set(store *s, int64_t run, const char *text, gl_error *err);

typedef struct {
    uint32_t arm;            /* index within the session */
    const char *name;        /* e.g. "soft", "random", "soft>topk" for a fork */
    const char *mode;        /* gate mode name at start */
    uint32_t k;
    int frozen;
    uint64_t seed;
    const char *config_json; /* the full run configuration */
    int64_t parent_run;      /* 0: none */
    uint64_t start_step;     /* 0, or the fork step */
} store_run_desc;

/* Inserts a run (status running, owner pid = this process, heartbeat now)
 * with its first segment. Returns the run id or -1. */
int64_t store_run_begin(store *s, int64_t session, const store_run_desc *d, gl_error *err);

/* Transactions around batches of store_write calls (BEGIN IMMEDIATE: the
 * write lock is taken at store_begin, so a busy database fails there).
 * store_commit also refreshes the heartbeat of every run this handle has
 * begun and not ended. A transaction that is rolled back (store_abort, a
 * failed commit, close) also forgets the runs it began or ended, so the same
 * writes can be replayed in a new transaction. */
int store_begin(store *s, gl_error *err);
int store_commit(store *s, gl_error *err);
int store_in_transaction(const store *s);

/* Writes one telemetry record of run `run` (inside a transaction):
 *   REC_STEP        metrics train_loss, grad_norm, lr at r->step
 *   REC_EVAL        metrics val_loss, val_ppl, val_bpb, f1, mass_kept,
 *                   oracle_mass, gate_grad_norm, tokens_per_s,
 *                   expert_balance, and train_loss
 *   REC_LAYER       layer_metrics, one row per metric_key
 *                   (a NaN is an absent metric: no row; a value that exists
 *                   but is not finite — see record.h — is no row either but
 *                   a `diverged` event "KEY is nan at step S")
 *   REC_EVENT       events row (kind name, detail); EV_SWAP / EV_SET_K /
 *                   EV_FREEZE / EV_UNFREEZE close the open segment at step
 *                   and open a new one with the record's mode, k, frozen
 *   REC_STATUS      runs.status (and ended_at, final step, closing the open
 *                   segment, when the status is final: every status but
 *                   running and paused, `failed` included)
 *   REC_CHECKPOINT  checkpoints row (dropped: deletes the row of that path)
 *   REC_COMMAND     the commands row u.command.id: applied at r->step, or
 *                   rejected with u.command.reason (a row already decided
 *                   is left as it is; `run` is not read)
 * REC_HEATMAP is an error here: the record is only the header of its
 * payload, written with store_write_heatmap once decoded. REC_RUN_BEGIN,
 * REC_FORKED and REC_SESSION_END are not stored here. Rows keyed on
 * (run, key, step) replace an existing row. */
int store_write(store *s, int64_t run, const tel_record *r, gl_error *err);
/* The heatmaps of run `run` at h->step (inside a transaction): one heatmaps
 * row per (layer, head, kind) with a T*T uint8 blob. */
int store_write_heatmap(store *s, int64_t run, const heatmap_snapshot *h, gl_error *err);

/* ---- reading (ls, show, resume, export) ---- */

typedef struct {
    int64_t id, session, parent_run;
    uint32_t arm;
    char name[64], mode[24], status[16];
    uint32_t k;
    int frozen;
    uint64_t seed;
    uint64_t steps;               /* last step with a metric */
    double final_val_loss, final_val_ppl, best_val_loss;   /* NaN when none */
    uint64_t best_val_step;
    char started[32], ended[32];  /* ISO-8601 UTC, "" when not ended */
    int64_t pid;
    char *config_json;            /* owned; freed by store_run_row_free */
} store_run_row;

void store_run_row_free(store_run_row *r);

typedef int (*store_run_fn)(void *ctx, const store_run_row *row);
/* Every run, newest first (session = 0: all sessions). */
int store_list_runs(store *s, int64_t session, store_run_fn fn, void *ctx, gl_error *err);
/* One run; "no run RUN in PATH" when missing. */
int store_get_run(store *s, int64_t run, store_run_row *out, gl_error *err);

typedef struct {
    uint64_t step;
    char time[32];
    char kind[24];
    char detail[REC_TEXT];
} store_event_row;
typedef int (*store_event_fn)(void *ctx, const store_event_row *row);
int store_list_events(store *s, int64_t run, store_event_fn fn, void *ctx, gl_error *err);

/* One row of learned_vs_random or router_learned_vs_random (schema 5): the
 * pair compared at `step`, the newest evaluation all its arms reached while
 * running the gate they are listed under; status says so, or why the step is
 * earlier or the pair left out. NaN / 0 where a value is absent. */
typedef struct {
    char what[48];                 /* "soft vs random", "soft+moe4 router" */
    int64_t session, seed, learned_run, random_run, dense_run;
    double learned_ppl, random_ppl, dense_ppl, benefit, relative;
    int has_step;
    uint64_t step;
    char status[160], note[160];   /* note: why relative is NULL */
} store_comparison_row;

typedef int (*store_comparison_fn)(void *ctx, const store_comparison_row *row);
/* The comparisons of a session (0: all) that involve a run (0: any). A file
 * older than schema 5 (opened read-only) has none. */
int store_list_comparisons(store *s, int64_t session, int64_t run, store_comparison_fn fn,
                           void *ctx, gl_error *err);

typedef struct {
    uint64_t from_step, to_step;  /* to_step UINT64_MAX while open */
    char mode[24];
    uint32_t k;
    int frozen;
} store_segment_row;
typedef int (*store_segment_fn)(void *ctx, const store_segment_row *row);
int store_list_segments(store *s, int64_t run, store_segment_fn fn, void *ctx, gl_error *err);

typedef struct {
    char key[32];
    double last, min, max;
    uint64_t last_step, min_step, max_step;
} store_summary_row;
typedef int (*store_summary_fn)(void *ctx, const store_summary_row *row);
int store_list_summaries(store *s, int64_t run, store_summary_fn fn, void *ctx,
                         gl_error *err);

typedef struct {
    uint64_t step;
    int resumable;
    char path[REC_TEXT];
} store_checkpoint_row;
typedef int (*store_checkpoint_fn)(void *ctx, const store_checkpoint_row *row);
int store_list_checkpoints(store *s, int64_t run, store_checkpoint_fn fn, void *ctx,
                           gl_error *err);

/* The newest checkpoint of a run at or before max_step (UINT64_MAX: any),
 * resumable ones only when resumable_only. -1 with a message when none. */
int store_find_checkpoint(store *s, int64_t run, uint64_t max_step, int resumable_only,
                          store_checkpoint_row *out, gl_error *err);

/* Resume: takes over a stopped, crashed, failed or finished run (a finished
 * one is extended by `resume --steps`; refuses diverged and live ones), deletes what it recorded after from_step (metrics,
 * layer_metrics, events, heatmaps, checkpoints, segments — those steps will
 * be trained again), reopens its last segment, sets status running, owner
 * pid this process, and adopts it as begun by this handle. */
int store_run_reopen(store *s, int64_t run, uint64_t from_step, gl_error *err);

/* Detach: the process that goes on training a session after a fork takes
 * over its running and paused run `run` (owner pid this process, its host,
 * heartbeat now) and keeps it alive like one it began; *adopted 0 when the
 * run had ended (nothing changed). In its own transaction unless one is
 * open. */
int store_run_adopt(store *s, int64_t run, int *adopted, gl_error *err);

/* The "argv" array of a run's config JSON as a NULL-terminated array the
 * caller frees (each string, then the array). */
int store_json_argv(const char *json, char ***argv, int *argc, gl_error *err);

/* ---- reading for the screen (`replay`, `run --compare`) ---- */

typedef struct {
    uint64_t step;
    double wall_ms;
    double value;
} store_metric_row;
typedef int (*store_metric_fn)(void *ctx, const store_metric_row *row);
/* One metric key of a run (e.g. "train_loss", "val_loss"), by step. */
int store_list_metrics(store *s, int64_t run, const char *key, store_metric_fn fn, void *ctx,
                       gl_error *err);

typedef struct {
    uint32_t layer, head;
    char key[32];                 /* a metric_name() */
    double value;
} store_layer_row;
typedef int (*store_layer_fn)(void *ctx, const store_layer_row *row);
/* Every layer_metrics row of a run at exactly this step. */
int store_list_layer_metrics_at(store *s, int64_t run, uint64_t step, store_layer_fn fn,
                                void *ctx, gl_error *err);
/* One layer_metrics key of a run (e.g. "density", "flip_rate") by step: at
 * each step the mean over layers of the mean over heads (wall_ms is 0). */
int store_list_layer_means(store *s, int64_t run, const char *key, store_metric_fn fn,
                           void *ctx, gl_error *err);

/* The heatmaps of run `run` at `step`, as store_write_heatmap wrote them, into
 * h, whose shape (layers, heads, T) is the caller's: h->step = step, every
 * plane stored with that shape copied, the others zero. *found = 1 when at
 * least one plane was there; *found = 0 (and 0 returned) when the run has no
 * heatmap of that shape at that step. -1 with a message on an SQLite error or
 * a stored plane larger than T x T. */
int store_get_heatmaps(store *s, int64_t run, uint64_t step, heatmap_snapshot *h, int *found,
                       gl_error *err);
/* The steps at which run `run` has heatmaps stored, ascending (`gatelab
 * plot --heatmap` names them when the asked step has none). */
typedef int (*store_step_fn)(void *ctx, uint64_t step);
int store_list_heatmap_steps(store *s, int64_t run, store_step_fn fn, void *ctx, gl_error *err);

typedef struct {
    int64_t id;
    char started[32], ended[32]; /* ended "" while running or after a crash */
    size_t runs;
    char *command;               /* owned; freed by store_session_row_free */
} store_session_row;
void store_session_row_free(store_session_row *r);
/* One session; "no session N in PATH" when missing. */
int store_get_session(store *s, int64_t session, store_session_row *out, gl_error *err);
/* The newest session that has runs, 0 when there is none, -1 on error. */
int64_t store_last_session(store *s, gl_error *err);

/* ---- experiments (schema version 2; store/store_experiment.c) ----
 * An experiment is a set of ordinary runs plus its printed result table.
 * Its id is the id of its first session, so `--from N` names the same
 * experiment whether N is read as an experiment or a session id. These are
 * rare writes: each call prepares its statement and finalizes it. */

/* started_ms: Unix ms when the experiment started (its first session exists
 * only once that session has trained); <= 0: now */
int store_experiment_begin(store *s, int64_t id, const char *kind, const char *command,
                           const char *config_json, double started_ms, gl_error *err);
/* status: finished or failed */
int store_experiment_end(store *s, int64_t experiment, const char *status, double wall_seconds,
                         gl_error *err);
/* role: "arm" (a trained arm) or "distill" (a distillation run); label: the
 * arm's mode, or "distill:<source mode>" */
int store_experiment_link(store *s, int64_t experiment, int64_t run, uint64_t seed,
                          const char *role, const char *label, gl_error *err);

/* The co-adaptation trace of a run (view absorption_trace, issue 16): per
 * evaluation, each layer (layer 0..L-1) then the model (layer -1), values
 * NaN where absent (f1_0 and index without a step-0 evaluation); only the
 * model rows when model_only. No rows on a file without the view. */
typedef struct {
    uint64_t step;
    int layer;
    double f1, mass_kept, chance, oracle_drift, f1_0, index;
} store_absorption_row;
typedef int (*store_absorption_fn)(void *ctx, const store_absorption_row *row);
int store_list_absorption(store *s, int64_t run, int model_only, store_absorption_fn fn,
                          void *ctx, gl_error *err);

/* Deletes an experiment with its result rows and run links (the runs stay):
 * a measurement stored again from scratch (experiment crossdeploy). */
int store_experiment_delete(store *s, int64_t experiment, gl_error *err);

typedef struct {
    uint32_t position;            /* row order in the printed table */
    char line[8];                 /* "1".."4", "+" for the rows alongside */
    char quantity[96];
    double value, spread;         /* the number behind the gatelab column; NaN: none */
    char gatelab[64], paper[48];  /* as printed */
    char same_direction[8];       /* yes, no or n/a */
} store_result_row;
int store_experiment_result(store *s, int64_t experiment, const store_result_row *row,
                            gl_error *err);

typedef struct {
    int64_t id;
    char kind[32], status[16], started[32], ended[32], version[32];
    double wall_seconds;          /* NaN while running */
    char *command, *config_json;  /* owned; store_experiment_row_free */
} store_experiment_row;
void store_experiment_row_free(store_experiment_row *r);
/* The experiment with this id, or the one a run of session N belongs to;
 * "no experiment or experiment session N in PATH" when neither. */
int64_t store_experiment_find(store *s, int64_t session_or_id, gl_error *err);
int store_get_experiment(store *s, int64_t id, store_experiment_row *out, gl_error *err);
typedef int (*store_result_fn)(void *ctx, const store_result_row *row);
int store_list_experiment_results(store *s, int64_t experiment, store_result_fn fn, void *ctx,
                                  gl_error *err);
typedef struct {
    int64_t run, session;
    uint64_t seed;
    char role[16], label[40], status[16];
} store_experiment_run_row;
typedef int (*store_experiment_run_fn)(void *ctx, const store_experiment_run_row *row);
int store_list_experiment_runs(store *s, int64_t experiment, store_experiment_run_fn fn,
                               void *ctx, gl_error *err);

/* Metric `key` of a run over its rows: how many, their mean, the largest
 * |value| and the value at its newest step (0 rows: NaN for the three). */
typedef struct {
    size_t count;
    double mean, max_abs, last;
} store_metric_stats;
int store_metric_summary(store *s, int64_t run, const char *key, store_metric_stats *out,
                         gl_error *err);
/* One metrics row (replacing the same run, key and step); a non-finite value
 * is not stored. */
int store_put_metric(store *s, int64_t run, const char *key, uint64_t step, double value,
                     gl_error *err);
/* The next free arm index of a session (runs added after its arms). */
int64_t store_next_arm(store *s, int64_t session, gl_error *err);
/* Ends the open transaction, if any, dropping what it wrote (the way out of
 * a store_begin whose writes failed half way). */
void store_abort(store *s);

/* ---- steering from outside: the commands table (schema 6; store_command.c)
 * DESIGN §12. Any process adds a pending row; only the process that owns the
 * session (its store thread) reads the pending rows, applies them and marks
 * each applied or rejected; the sender reads the row back. */

/* kind: a command word (pause, resume, swap, freeze, unfreeze, k,
 * checkpoint, fork, stop — the owner rejects any other); arg: its argument
 * as text (NULL or "": none); run 0: every arm of the session, else a run of
 * that session. Inserts a pending row (requested_at now) in its own
 * transaction or the open one; *id_out (may be NULL) gets its id. "no
 * session N in PATH" / "no run R in session N of PATH" when missing. */
int store_command_add(store *s, int64_t session, int64_t run, const char *kind, const char *arg,
                      int64_t *id_out, gl_error *err);

typedef struct {
    int64_t id, session, run;      /* run 0: every arm */
    char kind[16], arg[48];
    char requested[32], decided[32];   /* decided "" while pending */
    char state[12];                /* pending, applied or rejected */
    int has_step;
    uint64_t applied_step;         /* when has_step (applied) */
    char reason[REC_TEXT];         /* "" unless rejected */
} store_command_row;
typedef int (*store_command_fn)(void *ctx, const store_command_row *row);

/* The owner's poll: the pending rows of a session whose id is above `after`,
 * in id order (kind, arg, run, requested; no state but pending). A nonzero
 * return of fn stops the walk and is returned. Cheap: the partial index
 * commands_pending holds only pending rows. */
int store_command_pending(store *s, int64_t session, int64_t after, store_command_fn fn,
                          void *ctx, gl_error *err);
/* The owner's answers: a pending row becomes applied at `step` (note, NULL
 * or "": none, else kept as its reason: which arms of an every-arm command
 * refused it), or rejected with `reason` (NULL or "": "rejected"). A row no
 * longer pending is left as it is; *changed (may be NULL) says whether this
 * call decided it. store_write of a REC_COMMAND record calls one of them. */
int store_command_applied(store *s, int64_t id, uint64_t step, const char *note, int *changed,
                          gl_error *err);
int store_command_rejected(store *s, int64_t id, const char *reason, int *changed,
                           gl_error *err);
/* Rejects every pending row of a session (its end); *changed: how many. */
int store_command_reject_pending(store *s, int64_t session, const char *reason, int *changed,
                                 gl_error *err);
/* One row as it is now (the sender waits on its state); "no command N in
 * PATH" when missing. */
int store_command_get(store *s, int64_t id, store_command_row *out, gl_error *err);

/* ---- admin: ls filters, rm, tags (store_admin.c) ---- */

/* resume: the run's config JSON replaced by the resumed session's (its argv
 * carries a new --steps, so the next resume parses it) */
int store_run_set_config(store *s, int64_t run, const char *config_json, gl_error *err);

/* ls: NULL / 0 fields do not filter. since: an ISO-8601 UTC time text,
 * compared with runs.started_at. */
typedef struct {
    int64_t session;              /* 0: any */
    const char *session_name;     /* sessions.name */
    const char *status, *mode;    /* runs.status, runs.mode (the mode at start) */
    const char *tag_key, *tag_value;   /* a tag KEY, with VALUE when not NULL */
    const char *since;
} store_ls_filter;
typedef struct {
    int64_t id, session;
    uint32_t arm;
    char name[64], session_name[128], mode[24], status[16];
    uint64_t steps;
    double final_val_loss, final_val_ppl, best_val_loss;   /* NaN when none */
    char started[32];
    char tags[256];               /* "k=v,k2=v2" by key, truncated */
} store_ls_row;
typedef int (*store_ls_fn)(void *ctx, const store_ls_row *row);
/* The runs that pass every filter, newest first (schema 5). */
int store_list_runs_filtered(store *s, const store_ls_filter *f, store_ls_fn fn, void *ctx,
                             gl_error *err);
/* Bytes of the database file and of its -wal file (0 when absent). */
int store_file_size(const store *s, int64_t *db_bytes, int64_t *wal_bytes);

/* show: the run's session name and note, its own note and its tags */
typedef struct {
    char session_name[128];
    char session_note[1024], run_note[1024];
    char tags[1024];              /* "k=v, k2=v2" by key */
} store_labels;
int store_run_labels(store *s, int64_t run, store_labels *out, gl_error *err);

/* rm: what deleting a run (run > 0) or the sessions whose id or name is
 * `session` would take: the runs, the rows of every table that cascades
 * from them (read from the schema's foreign keys), and the checkpoint paths
 * no other run names. Refuses (1, message in err, nothing changed) a
 * missing run or session and a run still running or paused (store_open has
 * already marked crashed the runs whose owner is gone); -1 on an error. */
#define STORE_RM_MAX_TABLES 24
typedef struct {
    int64_t *runs, *sessions;
    size_t nruns, nsessions;
    struct {
        char table[64];
        int64_t rows;
    } counts[STORE_RM_MAX_TABLES];
    size_t ncounts;
    char **paths;
    size_t npaths;
} store_rm_plan;
int store_rm_plan_make(store *s, int64_t run, const char *session, store_rm_plan *p,
                       gl_error *err);
/* Deletes the plan's rows in one transaction (checking again, under the
 * write lock, that no run went live meanwhile: 1 then). Files are the
 * caller's. */
int store_rm_apply(store *s, const store_rm_plan *p, gl_error *err);
void store_rm_plan_free(store_rm_plan *p);

#endif
