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

/* Version 5: names, notes, tags and the provenance of a session; step-aligned
 * comparisons; params; evals_wide. */

/* One row per first-generation run (forks are never listed as an arm of a
 * pair): its FFN and router, and where it stopped running the gate it is
 * listed under (runs.mode, k, frozen: what it started with). changed_at is
 * the from_step of its first segment with another mode, k or frozen flag
 * (NULL: never changed); an evaluation at that very step is still clean,
 * because a change takes effect at the next step boundary and the arm
 * evaluates before it applies commands. change says what changed, e.g.
 * "random swapped to sigmoid and k 16 -> 32 at 238". */
#define ARM_CLEAN_CTE                                                                       \
    "WITH chg AS (\n"                                                                       \
    "  SELECT g.run, g.from_step AS at, g.mode, g.k, g.frozen,\n"                           \
    "         row_number() OVER (PARTITION BY g.run ORDER BY g.from_step, g.id) AS n\n"     \
    "  FROM segments g JOIN runs r ON r.id = g.run\n"                                       \
    "  WHERE g.mode IS NOT r.mode OR g.k IS NOT r.k OR g.frozen IS NOT r.frozen),\n"        \
    "arm AS (\n"                                                                            \
    "  SELECT r.id AS run, r.session, r.seed, r.name, r.mode,\n"                            \
    "         coalesce('moe' || json_extract(r.config, '$.experts'), 'dense') AS ffn,\n"    \
    "         json_extract(r.config, '$.router') AS router,\n"                              \
    "         c.at AS changed_at,\n"                                                        \
    "         r.name || ' ' || substr(\n"                                                   \
    "           CASE WHEN c.mode IS NOT r.mode THEN ' and swapped to ' || c.mode ELSE '' END\n" \
    "           || CASE WHEN c.k IS NOT r.k THEN ' and k ' || r.k || ' -> ' || c.k ELSE '' END\n" \
    "           || CASE WHEN c.frozen IS NOT r.frozen\n"                                    \
    "                   THEN CASE WHEN c.frozen THEN ' and frozen' ELSE ' and unfrozen' END\n" \
    "                   ELSE '' END, 6) || ' at ' || c.at AS change\n"                      \
    "  FROM runs r LEFT JOIN chg c ON c.run = r.id AND c.n = 1\n"                           \
    "  WHERE r.parent_run IS NULL)"

/* The evaluation steps of a pair: `newest`, the newest step at which runs
 * L and R (and D, when the pair has one) all have a val_ppl, and `step`, the
 * newest such step at or before each one's changed_at. Expects a relation P
 * with columns lr, rr, dr (run ids) and l_at, r_at, d_at (changed_at). */
#define COMMON_STEP(CLEAN)                                                                  \
    "(SELECT max(ml.step) FROM metrics ml\n"                                                \
    "   JOIN metrics mr ON mr.run = p.rr AND mr.key = 'val_ppl' AND mr.step = ml.step\n"    \
    "   WHERE ml.run = p.lr AND ml.key = 'val_ppl'\n"                                       \
    "     AND (p.dr IS NULL OR EXISTS (SELECT 1 FROM metrics md WHERE md.run = p.dr\n"      \
    "          AND md.key = 'val_ppl' AND md.step = ml.step))" CLEAN ")"
#define CLEAN_ONLY                                                                          \
    "\n     AND ml.step <= coalesce(p.l_at, ml.step) AND ml.step <= coalesce(p.r_at, ml.step)\n" \
    "     AND ml.step <= coalesce(p.d_at, ml.step)"
#define PAIR_STEPS                                                                          \
    "steps AS (SELECT p.*, " COMMON_STEP("") " AS newest,\n"                                \
    "          " COMMON_STEP(CLEAN_ONLY) " AS step FROM p),\n"                              \
    "cmp AS (SELECT s.*,\n"                                                                 \
    "  (SELECT value FROM metrics WHERE run = s.lr AND key = 'val_ppl' AND step = s.step) AS lp,\n" \
    "  (SELECT value FROM metrics WHERE run = s.rr AND key = 'val_ppl' AND step = s.step) AS rp,\n" \
    "  (SELECT value FROM metrics WHERE run = s.dr AND key = 'val_ppl' AND step = s.step) AS dp,\n" \
    "  CASE WHEN s.newest IS NULL THEN 'left out: no evaluation step that all of them reached'\n" \
    "       WHEN s.step = s.newest THEN 'aligned'\n"                                         \
    "       ELSE CASE WHEN s.step IS NULL THEN 'left out: '\n"                              \
    "                 ELSE 'at last clean step ' || s.step || ': ' END\n"                   \
    "            || substr(CASE WHEN s.l_at < s.newest THEN '; ' || s.l_change ELSE '' END\n" \
    "                   || CASE WHEN s.r_at < s.newest THEN '; ' || s.r_change ELSE '' END\n" \
    "                   || CASE WHEN s.d_at < s.newest THEN '; ' || s.d_change ELSE '' END, 3)\n" \
    "  END AS status\n"                                                                     \
    "  FROM steps s)\n"

/* The columns P carries for arms l, r and d. */
#define PAIR_ARMS                                                                           \
    "l.run AS lr, r.run AS rr, d.run AS dr, l.changed_at AS l_at, r.changed_at AS r_at,\n"  \
    "         d.changed_at AS d_at, l.change AS l_change, r.change AS r_change,\n"          \
    "         d.change AS d_change"

/* routing_benefit_rel divides by ppl_R - ppl_D; below this share of ppl_D
 * the quotient is noise (a session gave 293.4), so it is NULL with a note.
 * sessions/README.md states the same floor. */
#define REL_FLOOR "0.01"

#define RUN_FINAL_V5 \
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
    "       json_extract(r.config, '$.router') AS router,\n"                            \
    "       se.gatelab_version, se.git_rev\n"                                           \
    "FROM runs r\n"                                                                     \
    "JOIN sessions se ON se.id = r.session\n"                                           \
    "LEFT JOIN summaries tl ON tl.run = r.id AND tl.key = 'train_loss'\n"               \
    "LEFT JOIN summaries vl ON vl.run = r.id AND vl.key = 'val_loss'\n"                 \
    "LEFT JOIN summaries vp ON vp.run = r.id AND vp.key = 'val_ppl'\n"                  \
    "LEFT JOIN summaries f1 ON f1.run = r.id AND f1.key = 'f1'\n"                       \
    "LEFT JOIN summaries mk ON mk.run = r.id AND mk.key = 'mass_kept';\n"

#define PAIR_VIEWS_V5 \
    "CREATE VIEW learned_vs_random AS\n"                                                           \
    ARM_CLEAN_CTE ",\n"                                                                            \
    "pair (learned_mode, random_mode) AS (VALUES ('soft', 'random'), ('topk', 'topk-random')),\n"  \
    "p AS (SELECT l.session, l.seed, pr.learned_mode, pr.random_mode, l.ffn,\n"                    \
    "         " PAIR_ARMS "\n"                                                                     \
    "  FROM pair pr\n"                                                                             \
    "  JOIN arm l ON l.mode = pr.learned_mode\n"                                                   \
    "  JOIN arm r ON r.session = l.session AND r.seed = l.seed AND r.mode = pr.random_mode\n"      \
    "            AND r.ffn = l.ffn AND r.router IS l.router\n"                                     \
    "  LEFT JOIN arm d ON d.session = l.session AND d.seed = l.seed AND d.mode = 'dense'\n"        \
    "            AND d.ffn = l.ffn AND d.router IS l.router),\n"                                   \
    PAIR_STEPS                                                                                     \
    "SELECT session, seed, learned_mode, lr AS learned_run, lp AS learned_ppl,\n"                  \
    "       random_mode, rr AS random_run, rp AS random_ppl, rp - lp AS routing_benefit,\n"        \
    "       dr AS dense_run, dp AS dense_ppl,\n"                                                   \
    "       CASE WHEN abs(rp - dp) >= " REL_FLOOR " * dp THEN (rp - lp) / (rp - dp) END\n"         \
    "         AS routing_benefit_rel,\n"                                                           \
    "       ffn, step, status,\n"                                                                  \
    "       CASE WHEN step IS NULL THEN 'left out'\n"                                              \
    "            WHEN dr IS NULL THEN 'no dense arm'\n"                                            \
    "            WHEN abs(rp - dp) < " REL_FLOOR " * dp\n"                                         \
    "            THEN printf('|random - dense| = %.4g ppl: below the floor of 1%% of dense'\n"     \
    "                        || ' (%.4g)', abs(rp - dp), " REL_FLOOR " * dp) END AS rel_note\n"    \
    "FROM cmp;\n"                                                                                  \
    "CREATE VIEW router_learned_vs_random AS\n"                                                    \
    ARM_CLEAN_CTE ",\n"                                                                            \
    "p AS (SELECT l.session, l.seed, l.mode, l.ffn,\n"                                             \
    "         " PAIR_ARMS "\n"                                                                     \
    "  FROM arm l\n"                                                                               \
    "  JOIN arm r ON r.session = l.session AND r.seed = l.seed AND r.mode = l.mode\n"              \
    "            AND r.ffn = l.ffn AND r.router = 'random'\n"                                      \
    "  LEFT JOIN arm d ON d.session = l.session AND d.seed = l.seed AND d.mode = l.mode\n"         \
    "            AND d.ffn = 'dense'\n"                                                            \
    "  WHERE l.router = 'learned'),\n"                                                             \
    PAIR_STEPS                                                                                     \
    "SELECT session, seed, mode, ffn, lr AS learned_run, lp AS learned_ppl,\n"                     \
    "       rr AS random_run, rp AS random_ppl, rp - lp AS routing_benefit,\n"                     \
    "       dr AS dense_ffn_run, dp AS dense_ffn_ppl, step, status\n"                              \
    "FROM cmp;\n"

static const char schema_v5[] =
    "ALTER TABLE sessions ADD COLUMN name TEXT;\n"
    "ALTER TABLE sessions ADD COLUMN note TEXT;\n"
    "ALTER TABLE sessions ADD COLUMN gatelab_version TEXT;\n"
    "ALTER TABLE sessions ADD COLUMN git_rev TEXT;\n"
    /* the version every older session recorded is the binary's version */
    "UPDATE sessions SET gatelab_version = version;\n"
    "ALTER TABLE runs ADD COLUMN note TEXT;\n"
    "CREATE TABLE tags (\n"
    "  run   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  key   TEXT NOT NULL,\n"
    "  value TEXT NOT NULL DEFAULT '',\n"
    "  PRIMARY KEY (run, key)\n"
    ") WITHOUT ROWID;\n"
    "DROP VIEW router_learned_vs_random;\n"
    "DROP VIEW learned_vs_random;\n"
    "DROP VIEW run_final;\n"
    RUN_FINAL_V5
    PAIR_VIEWS_V5
    /* one column per arm index: pivots of the validation curves are one
     * SELECT away (forks have arm indexes of their own) */
    "CREATE VIEW evals_wide AS\n"
    "SELECT r.session, m.step,\n"
    "       max(m.value) FILTER (WHERE r.arm = 0) AS arm0,\n"
    "       max(m.value) FILTER (WHERE r.arm = 1) AS arm1,\n"
    "       max(m.value) FILTER (WHERE r.arm = 2) AS arm2,\n"
    "       max(m.value) FILTER (WHERE r.arm = 3) AS arm3,\n"
    "       max(m.value) FILTER (WHERE r.arm = 4) AS arm4,\n"
    "       max(m.value) FILTER (WHERE r.arm = 5) AS arm5,\n"
    "       max(m.value) FILTER (WHERE r.arm = 6) AS arm6,\n"
    "       max(m.value) FILTER (WHERE r.arm = 7) AS arm7\n"
    "FROM metrics m JOIN runs r ON r.id = m.run\n"
    "WHERE m.key = 'val_ppl'\n"
    "GROUP BY r.session, m.step;\n"
    /* the top-level fields of runs.config; a real as %.15g reads back the
     * shortest decimal config_json wrote (printf, not CAST: CAST writes
     * 1e-05 as 1.0e-05) */
    "CREATE VIEW params AS\n"
    "SELECT r.id AS run, j.key,\n"
    "       CASE j.type WHEN 'real' THEN printf('%.15g', j.value)\n"
    "                   WHEN 'null' THEN NULL\n"
    "                   WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'\n"
    "                   ELSE CAST(j.value AS TEXT) END AS value_text,\n"
    "       CASE WHEN j.type IN ('integer', 'real') THEN j.value\n"
    "            WHEN j.type = 'true' THEN 1 WHEN j.type = 'false' THEN 0 END AS value_num\n"
    "FROM runs r, json_each(r.config) j;\n";

/* Steering from outside (DESIGN §12): any process inserts a pending row; the
 * process that owns the session applies it at the arm's next step boundary
 * and marks it applied (with the step it took effect at) or rejected (with
 * why). run NULL: every arm of the session. The partial index is the
 * owner's poll: the pending rows of one session after the last id it has
 * seen, a few times a second, reading only what is new. */
static const char schema_v6[] =
    "CREATE TABLE commands (\n"
    "  id           INTEGER PRIMARY KEY,\n"
    "  session      INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,\n"
    "  run          INTEGER REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  kind         TEXT NOT NULL,\n"
    "  arg          TEXT,\n"
    "  requested_at TEXT NOT NULL,\n"
    "  state        TEXT NOT NULL DEFAULT 'pending'\n"
    "                 CHECK (state IN ('pending', 'applied', 'rejected')),\n"
    "  applied_step INTEGER CHECK (applied_step >= 0),\n"
    "  reason       TEXT,\n"
    "  decided_at   TEXT,\n"
    "  CHECK (state <> 'applied' OR applied_step IS NOT NULL),\n"
    "  CHECK (state <> 'rejected' OR reason IS NOT NULL),\n"
    "  CHECK (state = 'pending' OR decided_at IS NOT NULL)\n"
    ");\n"
    "CREATE INDEX commands_pending ON commands (session, id) WHERE state = 'pending';\n"
    "CREATE INDEX commands_run ON commands (run);\n";

/* Version 7 (issue 16): the co-adaptation trace of every gated run, per
 * evaluation: per layer (the mean over heads) and for the model (layer
 * NULL: the run's metrics, means over layers), F1 and mass kept of the mask
 * in force against the oracle, chance F1, the oracle's own drift since the
 * previous evaluation, F1 at step 0 (the evaluation before the first step)
 * and the absorption index (F1_t - F1_0) / (1 - F1_0): 0 where the oracle
 * has not moved toward the mask, 1 where the model's own top-k is the mask.
 * NULL without a step-0 evaluation (runs made before it, forks). Views only:
 * the rows are layer_metrics' and metrics'. */
static const char schema_v7[] =
    "CREATE VIEW absorption_trace AS\n"
    "WITH lay AS (\n"
    "  SELECT run, step, layer,\n"
    "         avg(value) FILTER (WHERE key = 'f1') AS f1,\n"
    "         avg(value) FILTER (WHERE key = 'mass_kept') AS mass_kept,\n"
    "         avg(value) FILTER (WHERE key = 'chance_f1') AS chance_f1,\n"
    "         avg(value) FILTER (WHERE key = 'oracle_drift') AS oracle_drift\n"
    "  FROM layer_metrics\n"
    "  WHERE key IN ('f1', 'mass_kept', 'chance_f1', 'oracle_drift')\n"
    "  GROUP BY run, step, layer),\n"
    "per_layer AS (\n"
    "  SELECT l.run, l.step, l.layer, l.f1, l.mass_kept, l.chance_f1, l.oracle_drift,\n"
    "         z.f1 AS f1_0\n"
    "  FROM lay l LEFT JOIN lay z ON z.run = l.run AND z.layer = l.layer AND z.step = 0\n"
    "  WHERE l.f1 IS NOT NULL),\n"
    "model AS (\n"
    "  SELECT run, step, NULL AS layer, avg(f1) AS f1, avg(mass_kept) AS mass_kept,\n"
    "         avg(chance_f1) AS chance_f1, avg(oracle_drift) AS oracle_drift,\n"
    "         avg(f1_0) AS f1_0\n"
    "  FROM per_layer GROUP BY run, step)\n"
    "SELECT run, step, layer, f1, mass_kept, chance_f1, oracle_drift, f1_0,\n"
    "       CASE WHEN f1_0 < 1.0 THEN (f1 - f1_0) / (1.0 - f1_0) END AS absorption_index\n"
    "FROM (SELECT * FROM per_layer UNION ALL SELECT * FROM model);\n";

const char *const store_migrations[] = {
    schema_v1,
    schema_v2,
    schema_v3,
    schema_v4,
    schema_v5,
    schema_v6,
    schema_v7,
};

_Static_assert(sizeof store_migrations / sizeof store_migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");
