/* store_schema: the schema of DESIGN §8 as forward-only migrations. The
 * text of a released migration never changes: a new column, index or view
 * is a new entry, and STORE_SCHEMA_VERSION (store.h) grows with the array.
 * sessions/README.md documents every table, column and view below. */
#include "store_int.h"

/* Summaries follow metrics through triggers. An insert folds the new value
 * in; an update of the row that holds the min or max, or a delete of the row
 * that holds the last, min or max, rescans that (run, key) — ties keep the
 * earliest step — and a delete of its last row drops the summary. Every
 * other update or delete leaves the summary right as it is. The rescans
 * never insert, so a cascade from a deleted run cannot bring its summary
 * back. */
#define SUMMARY_FOLD                                                              \
    "INSERT INTO summaries (run, key, last, last_step, min, min_step, max, max_step)\n" \
    "VALUES (NEW.run, NEW.key, NEW.value, NEW.step, NEW.value, NEW.step, NEW.value, NEW.step)\n" \
    "ON CONFLICT (run, key) DO UPDATE SET\n"                                      \
    "  last = CASE WHEN excluded.last_step >= last_step THEN excluded.last ELSE last END,\n" \
    "  last_step = max(last_step, excluded.last_step),\n"                         \
    "  min = CASE WHEN excluded.min < min OR (excluded.min = min AND excluded.min_step < min_step)\n" \
    "             THEN excluded.min ELSE min END,\n"                              \
    "  min_step = CASE WHEN excluded.min < min OR (excluded.min = min AND excluded.min_step < min_step)\n" \
    "                  THEN excluded.min_step ELSE min_step END,\n"               \
    "  max = CASE WHEN excluded.max > max OR (excluded.max = max AND excluded.max_step < max_step)\n" \
    "             THEN excluded.max ELSE max END,\n"                              \
    "  max_step = CASE WHEN excluded.max > max OR (excluded.max = max AND excluded.max_step < max_step)\n" \
    "                  THEN excluded.max_step ELSE max_step END;\n"

#define SUMMARY_RESCAN(ROW)                                                       \
    "DELETE FROM summaries WHERE run = " ROW ".run AND key = " ROW ".key\n"       \
    "  AND NOT EXISTS (SELECT 1 FROM metrics m WHERE m.run = " ROW ".run AND m.key = " ROW ".key);\n" \
    "UPDATE summaries SET\n"                                                      \
    "  (last, last_step) = (SELECT value, step FROM metrics m\n"                  \
    "      WHERE m.run = summaries.run AND m.key = summaries.key ORDER BY step DESC LIMIT 1),\n" \
    "  (min, min_step) = (SELECT value, step FROM metrics m\n"                    \
    "      WHERE m.run = summaries.run AND m.key = summaries.key ORDER BY value, step LIMIT 1),\n" \
    "  (max, max_step) = (SELECT value, step FROM metrics m\n"                    \
    "      WHERE m.run = summaries.run AND m.key = summaries.key ORDER BY value DESC, step LIMIT 1)\n" \
    "WHERE run = " ROW ".run AND key = " ROW ".key;\n"

/* true when row ROW holds one of the summary's step columns COLS */
#define SUMMARY_HELD_BY(ROW, COLS)                                                \
    "EXISTS (SELECT 1 FROM summaries s WHERE s.run = " ROW ".run AND s.key = " ROW ".key\n" \
    "        AND " ROW ".step IN (" COLS "))"
/* a new value at the last step folds in like any other; only a changed
 * min or max must be looked for again */
#define HELD_EXTREME "s.min_step, s.max_step"
#define HELD_ANY "s.last_step, s.min_step, s.max_step"

static const char schema_v1[] =
    "CREATE TABLE sessions (\n"
    "  id         INTEGER PRIMARY KEY,\n"
    "  started_at TEXT NOT NULL,\n"
    "  ended_at   TEXT,\n"
    "  command    TEXT NOT NULL,\n"
    "  version    TEXT NOT NULL,\n"
    "  host       TEXT NOT NULL,\n"
    "  pid        INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE runs (\n"
    "  id         INTEGER PRIMARY KEY,\n"
    "  session    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,\n"
    "  arm        INTEGER NOT NULL CHECK (arm >= 0),\n"
    "  name       TEXT NOT NULL,\n"
    "  mode       TEXT NOT NULL,\n"
    "  k          INTEGER NOT NULL CHECK (k >= 0),\n"
    "  frozen     INTEGER NOT NULL CHECK (frozen IN (0, 1)),\n"
    "  seed       INTEGER NOT NULL,\n"
    "  config     TEXT NOT NULL CHECK (json_valid(config)),\n"
    "  parent_run INTEGER REFERENCES runs(id) ON DELETE SET NULL,\n"
    "  start_step INTEGER NOT NULL CHECK (start_step >= 0),\n"
    "  status     TEXT NOT NULL CHECK (status IN\n"
    "               ('running', 'paused', 'finished', 'stopped', 'diverged', 'crashed')),\n"
    "  started_at TEXT NOT NULL,\n"
    "  ended_at   TEXT,\n"
    "  final_step INTEGER,\n"
    "  owner_pid  INTEGER NOT NULL,\n"
    "  host       TEXT NOT NULL,\n"
    "  heartbeat  TEXT NOT NULL,\n"
    "  UNIQUE (session, arm)\n"
    ");\n"
    "CREATE INDEX runs_live ON runs(status) WHERE status IN ('running', 'paused');\n"
    "CREATE INDEX runs_parent ON runs(parent_run);\n"
    "CREATE TABLE metrics (\n"
    "  run     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  key     TEXT NOT NULL,\n"
    "  step    INTEGER NOT NULL,\n"
    "  wall_ms INTEGER NOT NULL,\n"
    "  value   REAL NOT NULL,\n"
    "  PRIMARY KEY (run, key, step)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE layer_metrics (\n"
    "  run   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step  INTEGER NOT NULL,\n"
    "  layer INTEGER NOT NULL,\n"
    "  head  INTEGER NOT NULL,\n"
    "  key   TEXT NOT NULL,\n"
    "  value REAL NOT NULL,\n"
    "  PRIMARY KEY (run, key, layer, head, step)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX layer_metrics_step ON layer_metrics(run, step, layer);\n"
    "CREATE TABLE summaries (\n"
    "  run       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  key       TEXT NOT NULL,\n"
    "  last      REAL NOT NULL,\n"
    "  last_step INTEGER NOT NULL,\n"
    "  min       REAL NOT NULL,\n"
    "  min_step  INTEGER NOT NULL,\n"
    "  max       REAL NOT NULL,\n"
    "  max_step  INTEGER NOT NULL,\n"
    "  PRIMARY KEY (run, key)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TRIGGER metrics_insert AFTER INSERT ON metrics BEGIN\n"
    SUMMARY_FOLD
    "END;\n"
    "CREATE TRIGGER metrics_update_fold AFTER UPDATE OF value ON metrics\n"
    "WHEN NOT " SUMMARY_HELD_BY("OLD", HELD_EXTREME) " BEGIN\n"
    SUMMARY_FOLD
    "END;\n"
    "CREATE TRIGGER metrics_update_rescan AFTER UPDATE OF value ON metrics\n"
    "WHEN " SUMMARY_HELD_BY("OLD", HELD_EXTREME) " BEGIN\n"
    SUMMARY_RESCAN("NEW")
    "END;\n"
    "CREATE TRIGGER metrics_delete AFTER DELETE ON metrics\n"
    "WHEN " SUMMARY_HELD_BY("OLD", HELD_ANY) " BEGIN\n"
    SUMMARY_RESCAN("OLD")
    "END;\n"
    "CREATE TABLE events (\n"
    "  id     INTEGER PRIMARY KEY,\n"
    "  run    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step   INTEGER NOT NULL,\n"
    "  time   TEXT NOT NULL,\n"
    "  kind   TEXT NOT NULL,\n"
    "  detail TEXT NOT NULL DEFAULT '',\n"
    "  mode   TEXT,\n"
    "  k      INTEGER,\n"
    "  frozen INTEGER\n"
    ");\n"
    "CREATE INDEX events_run ON events(run, step);\n"
    "CREATE INDEX events_kind ON events(kind, run, step);\n"
    "CREATE TABLE segments (\n"
    "  id        INTEGER PRIMARY KEY,\n"
    "  run       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  from_step INTEGER NOT NULL,\n"
    "  to_step   INTEGER CHECK (to_step IS NULL OR to_step >= from_step),\n"
    "  mode      TEXT NOT NULL,\n"
    "  k         INTEGER NOT NULL,\n"
    "  frozen    INTEGER NOT NULL CHECK (frozen IN (0, 1))\n"
    ");\n"
    "CREATE INDEX segments_run ON segments(run, from_step);\n"
    "CREATE UNIQUE INDEX segments_open ON segments(run) WHERE to_step IS NULL;\n"
    "CREATE TABLE heatmaps (\n"
    "  id    INTEGER PRIMARY KEY,\n"
    "  run   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step  INTEGER NOT NULL,\n"
    "  layer INTEGER NOT NULL,\n"
    "  head  INTEGER NOT NULL,\n"
    "  kind  TEXT NOT NULL CHECK (kind IN ('gate', 'oracle', 'attn')),\n"
    "  rows  INTEGER NOT NULL CHECK (rows > 0),\n"
    "  cols  INTEGER NOT NULL CHECK (cols > 0),\n"
    "  data  BLOB NOT NULL CHECK (length(data) = rows * cols),\n"
    "  UNIQUE (run, step, layer, head, kind)\n"
    ");\n"
    "CREATE TABLE checkpoints (\n"
    "  id        INTEGER PRIMARY KEY,\n"
    "  run       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step      INTEGER NOT NULL,\n"
    "  path      TEXT NOT NULL,\n"
    "  resumable INTEGER NOT NULL CHECK (resumable IN (0, 1)),\n"
    "  created   TEXT NOT NULL,\n"
    "  UNIQUE (run, path)\n"
    ");\n"
    "CREATE INDEX checkpoints_run ON checkpoints(run, step);\n"
    "CREATE VIEW run_final AS\n"
    "SELECT r.id AS run, r.session, r.arm, r.name, r.mode, r.k, r.seed, r.status,\n"
    "       r.parent_run,\n"
    "       coalesce((SELECT max(s.last_step) FROM summaries s WHERE s.run = r.id),\n"
    "                r.start_step) AS steps,\n"
    "       tl.last AS train_loss, vl.last AS val_loss, vp.last AS val_ppl,\n"
    "       vl.min AS best_val_loss, vl.min_step AS best_val_step,\n"
    "       f1.last AS f1, mk.last AS mass_kept,\n"
    "       (SELECT avg(m.value) FROM metrics m\n"
    "         WHERE m.run = r.id AND m.key = 'tokens_per_s') AS tokens_per_s,\n"
    "       r.started_at, r.ended_at\n"
    "FROM runs r\n"
    "LEFT JOIN summaries tl ON tl.run = r.id AND tl.key = 'train_loss'\n"
    "LEFT JOIN summaries vl ON vl.run = r.id AND vl.key = 'val_loss'\n"
    "LEFT JOIN summaries vp ON vp.run = r.id AND vp.key = 'val_ppl'\n"
    "LEFT JOIN summaries f1 ON f1.run = r.id AND f1.key = 'f1'\n"
    "LEFT JOIN summaries mk ON mk.run = r.id AND mk.key = 'mass_kept';\n"
    "CREATE VIEW learned_vs_random AS\n"
    "WITH arm AS (SELECT run, session, seed, mode, val_ppl FROM run_final\n"
    "             WHERE parent_run IS NULL),\n"
    "     pair (learned_mode, random_mode) AS\n"
    "       (VALUES ('soft', 'random'), ('topk', 'topk-random'))\n"
    "SELECT l.session, l.seed, p.learned_mode, l.run AS learned_run,\n"
    "       l.val_ppl AS learned_ppl, p.random_mode, r.run AS random_run,\n"
    "       r.val_ppl AS random_ppl, r.val_ppl - l.val_ppl AS routing_benefit,\n"
    "       d.run AS dense_run, d.val_ppl AS dense_ppl,\n"
    "       (r.val_ppl - l.val_ppl) / nullif(r.val_ppl - d.val_ppl, 0) AS routing_benefit_rel\n"
    "FROM pair p\n"
    "JOIN arm l ON l.mode = p.learned_mode\n"
    "JOIN arm r ON r.session = l.session AND r.seed = l.seed AND r.mode = p.random_mode\n"
    "LEFT JOIN arm d ON d.session = l.session AND d.seed = l.seed AND d.mode = 'dense';\n"
    "CREATE VIEW gate_agreement AS\n"
    "SELECT run, step, layer,\n"
    "       avg(value) FILTER (WHERE key = 'f1') AS f1,\n"
    "       avg(value) FILTER (WHERE key = 'mass_kept') AS mass_kept,\n"
    "       avg(value) FILTER (WHERE key = 'oracle_mass') AS oracle_mass,\n"
    "       avg(value) FILTER (WHERE key = 'chance_f1') AS chance,\n"
    "       count(DISTINCT head) AS heads\n"
    "FROM layer_metrics\n"
    "WHERE key IN ('f1', 'mass_kept', 'oracle_mass', 'chance_f1')\n"
    "GROUP BY run, step, layer;\n";

/* Version 2: experiments (`gatelab experiment`), the runs behind each and
 * its printed result table. An experiment's id is the id of its first
 * session (not a foreign key: deleting that session keeps the experiment). */
static const char schema_v2[] =
    "CREATE TABLE experiments (\n"
    "  id           INTEGER PRIMARY KEY,\n"
    "  kind         TEXT NOT NULL,\n"
    "  command      TEXT NOT NULL,\n"
    "  config       TEXT NOT NULL CHECK (json_valid(config)),\n"
    "  status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),\n"
    "  started_at   TEXT NOT NULL,\n"
    "  ended_at     TEXT,\n"
    "  wall_seconds REAL,\n"
    "  version      TEXT NOT NULL,\n"
    "  host         TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE experiment_runs (\n"
    "  experiment INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,\n"
    "  run        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  seed       INTEGER NOT NULL,\n"
    "  role       TEXT NOT NULL CHECK (role IN ('arm', 'distill')),\n"
    "  label      TEXT NOT NULL,\n"
    "  PRIMARY KEY (experiment, run)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX experiment_runs_run ON experiment_runs(run);\n"
    "CREATE TABLE experiment_results (\n"
    "  experiment     INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,\n"
    "  position       INTEGER NOT NULL CHECK (position >= 0),\n"
    "  line           TEXT NOT NULL,\n"
    "  quantity       TEXT NOT NULL,\n"
    "  value          REAL,\n"
    "  spread         REAL,\n"
    "  gatelab        TEXT NOT NULL,\n"
    "  paper          TEXT NOT NULL,\n"
    "  same_direction TEXT NOT NULL CHECK (same_direction IN ('yes', 'no', 'n/a')),\n"
    "  PRIMARY KEY (experiment, position)\n"
    ") WITHOUT ROWID;\n"
    "CREATE VIEW experiment_table AS\n"
    "SELECT e.id AS experiment, e.kind, e.status, x.position, x.line, x.quantity,\n"
    "       x.gatelab, x.paper, x.same_direction, x.value, x.spread\n"
    "FROM experiments e JOIN experiment_results x ON x.experiment = e.id;\n";

/* The views of version 3 that read runs, as macros: version 4 drops and
 * recreates them, with the same text, around its rebuild of runs. */
#define RUN_FINAL_V3 \
    "CREATE VIEW run_final AS\n"                                                        \
    "SELECT r.id AS run, r.session, r.arm, r.name, r.mode, r.k, r.seed, r.status,\n"    \
    "       r.parent_run,\n"                                                            \
    "       coalesce((SELECT max(s.last_step) FROM summaries s WHERE s.run = r.id),\n"  \
    "                r.start_step) AS steps,\n"                                         \
    "       tl.last AS train_loss, vl.last AS val_loss, vp.last AS val_ppl,\n"          \
    "       vl.min AS best_val_loss, vl.min_step AS best_val_step,\n"                   \
    "       f1.last AS f1, mk.last AS mass_kept,\n"                                     \
    "       (SELECT avg(m.value) FROM metrics m\n"                                      \
    "         WHERE m.run = r.id AND m.key = 'tokens_per_s') AS tokens_per_s,\n"        \
    "       r.started_at, r.ended_at,\n"                                                \
    "       coalesce('moe' || json_extract(r.config, '$.experts'), 'dense') AS ffn,\n"  \
    "       json_extract(r.config, '$.router') AS router\n"                             \
    "FROM runs r\n"                                                                     \
    "LEFT JOIN summaries tl ON tl.run = r.id AND tl.key = 'train_loss'\n"               \
    "LEFT JOIN summaries vl ON vl.run = r.id AND vl.key = 'val_loss'\n"                 \
    "LEFT JOIN summaries vp ON vp.run = r.id AND vp.key = 'val_ppl'\n"                  \
    "LEFT JOIN summaries f1 ON f1.run = r.id AND f1.key = 'f1'\n"                       \
    "LEFT JOIN summaries mk ON mk.run = r.id AND mk.key = 'mass_kept';\n"

#define PAIR_VIEWS_V3 \
    "CREATE VIEW learned_vs_random AS\n"                                                           \
    "WITH arm AS (SELECT run, session, seed, mode, ffn, router, val_ppl FROM run_final\n"          \
    "             WHERE parent_run IS NULL),\n"                                                    \
    "     pair (learned_mode, random_mode) AS\n"                                                   \
    "       (VALUES ('soft', 'random'), ('topk', 'topk-random'))\n"                                \
    "SELECT l.session, l.seed, p.learned_mode, l.run AS learned_run,\n"                            \
    "       l.val_ppl AS learned_ppl, p.random_mode, r.run AS random_run,\n"                       \
    "       r.val_ppl AS random_ppl, r.val_ppl - l.val_ppl AS routing_benefit,\n"                  \
    "       d.run AS dense_run, d.val_ppl AS dense_ppl,\n"                                         \
    "       (r.val_ppl - l.val_ppl) / nullif(r.val_ppl - d.val_ppl, 0) AS routing_benefit_rel,\n"  \
    "       l.ffn\n"                                                                               \
    "FROM pair p\n"                                                                                \
    "JOIN arm l ON l.mode = p.learned_mode\n"                                                      \
    "JOIN arm r ON r.session = l.session AND r.seed = l.seed AND r.mode = p.random_mode\n"         \
    "          AND r.ffn = l.ffn AND r.router IS l.router\n"                                       \
    "LEFT JOIN arm d ON d.session = l.session AND d.seed = l.seed AND d.mode = 'dense'\n"          \
    "          AND d.ffn = l.ffn AND d.router IS l.router;\n"                                      \
    "CREATE VIEW router_learned_vs_random AS\n"                                                    \
    "WITH arm AS (SELECT run, session, seed, mode, ffn, router, val_ppl FROM run_final\n"          \
    "             WHERE parent_run IS NULL)\n"                                                     \
    "SELECT l.session, l.seed, l.mode, l.ffn, l.run AS learned_run, l.val_ppl AS learned_ppl,\n"   \
    "       r.run AS random_run, r.val_ppl AS random_ppl,\n"                                       \
    "       r.val_ppl - l.val_ppl AS routing_benefit,\n"                                           \
    "       d.run AS dense_ffn_run, d.val_ppl AS dense_ffn_ppl\n"                                  \
    "FROM arm l\n"                                                                                 \
    "JOIN arm r ON r.session = l.session AND r.seed = l.seed AND r.mode = l.mode\n"                \
    "          AND r.ffn = l.ffn AND r.router = 'random'\n"                                        \
    "LEFT JOIN arm d ON d.session = l.session AND d.seed = l.seed AND d.mode = l.mode\n"           \
    "          AND d.ffn = 'dense'\n"                                                              \
    "WHERE l.router = 'learned';\n"

/* Version 3: arms with a mixture-of-experts FFN (`MODE+moe`, whose config
 * JSON holds experts and router). run_final gains `ffn` ('dense' or 'moeE')
 * and `router` ('learned', 'random' or NULL); learned_vs_random pairs gates
 * only within one FFN; router_learned_vs_random pairs a learned router with
 * its frozen random twin (same session, seed, gate mode and experts). */
static const char schema_v3[] =
    "DROP VIEW learned_vs_random;\n"
    "DROP VIEW run_final;\n"
    RUN_FINAL_V3
    PAIR_VIEWS_V3;

/* Version 4: the database's identity and the `failed` run status.
 * `db_info` holds key 'id' (32 random lowercase hex digits), written by
 * store_open in the transaction that creates or migrates the file, so a
 * checkpoint can name the database it belongs to. `failed` (a run whose
 * checkpoint could not be written) needs a new CHECK on runs.status, and
 * SQLite cannot alter a CHECK: runs is rebuilt the way
 * https://www.sqlite.org/lang_altertable.html ("Making Other Kinds Of Table
 * Schema Changes") says — new table, copy, drop, rename, then the indexes
 * and the views that read runs again (the same text as version 3). The
 * views go first: renaming a table checks every view, and these would name
 * a table that no longer exists. store_open runs this with foreign keys off
 * (DROP TABLE runs would otherwise cascade to every child row) and checks
 * PRAGMA foreign_key_check before it commits. */
static const char schema_v4[] =
    "CREATE TABLE db_info (\n"
    "  key   TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL\n"
    ");\n"
    "DROP VIEW router_learned_vs_random;\n"
    "DROP VIEW learned_vs_random;\n"
    "DROP VIEW run_final;\n"
    "CREATE TABLE runs_v4 (\n"
    "  id         INTEGER PRIMARY KEY,\n"
    "  session    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,\n"
    "  arm        INTEGER NOT NULL CHECK (arm >= 0),\n"
    "  name       TEXT NOT NULL,\n"
    "  mode       TEXT NOT NULL,\n"
    "  k          INTEGER NOT NULL CHECK (k >= 0),\n"
    "  frozen     INTEGER NOT NULL CHECK (frozen IN (0, 1)),\n"
    "  seed       INTEGER NOT NULL,\n"
    "  config     TEXT NOT NULL CHECK (json_valid(config)),\n"
    "  parent_run INTEGER REFERENCES runs(id) ON DELETE SET NULL,\n"
    "  start_step INTEGER NOT NULL CHECK (start_step >= 0),\n"
    "  status     TEXT NOT NULL CHECK (status IN\n"
    "               ('running', 'paused', 'finished', 'stopped', 'diverged', 'crashed',\n"
    "                'failed')),\n"
    "  started_at TEXT NOT NULL,\n"
    "  ended_at   TEXT,\n"
    "  final_step INTEGER,\n"
    "  owner_pid  INTEGER NOT NULL,\n"
    "  host       TEXT NOT NULL,\n"
    "  heartbeat  TEXT NOT NULL,\n"
    "  UNIQUE (session, arm)\n"
    ");\n"
    "INSERT INTO runs_v4 (id, session, arm, name, mode, k, frozen, seed, config, parent_run,\n"
    "                     start_step, status, started_at, ended_at, final_step, owner_pid,\n"
    "                     host, heartbeat)\n"
    "SELECT id, session, arm, name, mode, k, frozen, seed, config, parent_run, start_step,\n"
    "       status, started_at, ended_at, final_step, owner_pid, host, heartbeat FROM runs;\n"
    "DROP TABLE runs;\n"
    "ALTER TABLE runs_v4 RENAME TO runs;\n"
    "CREATE INDEX runs_live ON runs(status) WHERE status IN ('running', 'paused');\n"
    "CREATE INDEX runs_parent ON runs(parent_run);\n"
    RUN_FINAL_V3
    PAIR_VIEWS_V3;

const char *const store_migrations[] = {
    schema_v1,
    schema_v2,
    schema_v3,
    schema_v4,
};

_Static_assert(sizeof store_migrations / sizeof store_migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");
