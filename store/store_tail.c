/* store_tail: a session followed as it grows, for `gatelab watch`. Rows
 * committed since the last poll become the tel_records the trainer made
 * (the inverse of store_write), read in one deferred read transaction per
 * poll: in WAL mode a reader takes no lock a writer waits for, and every
 * table is read at the same commit, so an evaluation's layer rows (which the
 * arm sends before the evaluation itself, and the store writes in that
 * order) are complete once its val_loss row is visible. Every read is keyed
 * so it touches only new rows: metrics by (run, key, step > last), layer
 * metrics by (run, step) up to the newest evaluation, events by id > last,
 * heatmaps by the (run, step, ...) index's maximum, runs by id from the
 * session's first run on. The statements are the tail's own, prepared at
 * open and finalized at close. */
#include "store_tail.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "store_int.h"

typedef enum {
    TS_BEGIN,
    TS_END,
    TS_SESSION,
    TS_RUNS,
    TS_TRAIN,
    TS_EVAL,
    TS_EVAL_TRAIN,
    TS_LAYER,
    TS_EVENTS,
    TS_HEAT,
    TS_COUNT
} tail_stmt;

/* the evaluation's metrics, in the order eval_set fills them */
#define EVAL_KEYS                                                                          \
    "('val_loss', 'val_ppl', 'val_bpb', 'f1', 'mass_kept', 'oracle_mass', 'gate_grad_norm'," \
    " 'tokens_per_s', 'expert_balance')"

static const char *const tail_sql[TS_COUNT] = {
    [TS_BEGIN] = "BEGIN DEFERRED",
    [TS_END] = "COMMIT",
    [TS_SESSION] = "SELECT ended_at IS NOT NULL FROM sessions WHERE id = ?1",
    [TS_RUNS] = "SELECT id, arm, name, mode, k, frozen, status, coalesce(parent_run, 0),"
                " start_step, final_step, owner_pid, host FROM runs"
                " WHERE id >= ?2 AND session = ?1 ORDER BY arm",
    [TS_TRAIN] = "SELECT step, wall_ms, value FROM metrics"
                 " WHERE run = ?1 AND key = 'train_loss' AND step > ?2 ORDER BY step",
    [TS_EVAL] = "SELECT step, wall_ms, key, value FROM metrics"
                " WHERE run = ?1 AND key IN " EVAL_KEYS " AND step > ?2 ORDER BY step",
    [TS_EVAL_TRAIN] = "SELECT value FROM metrics WHERE run = ?1 AND key = 'train_loss'"
                      " AND step = ?2",
    [TS_LAYER] = "SELECT step, layer, head, key, value FROM layer_metrics"
                 " WHERE run = ?1 AND step > ?2 AND step <= ?3 ORDER BY step, layer, head",
    [TS_EVENTS] = "SELECT e.id, e.run, e.step, e.kind, coalesce(e.detail, ''), e.mode, e.k,"
                  " e.frozen FROM events e"
                  " WHERE e.id > ?2 AND e.run IN (SELECT id FROM runs WHERE session = ?1)"
                  " ORDER BY e.id",
    [TS_HEAT] = "SELECT max(step) FROM heatmaps WHERE run = ?1",
};

typedef struct {
    int64_t id;
    int seen;                   /* REC_RUN_BEGIN handed over */
    run_status status;
    int status_sent;            /* the status above has been handed over */
    int64_t train, eval;        /* last step read (-1: none) */
    int64_t layer;              /* last evaluation whose layer rows were read */
    int64_t heat;               /* newest heatmap step handed over (-1: none) */
    uint64_t last_step;
    uint32_t mode, k, frozen;   /* the gate in force, as last known */
    int64_t owner_pid;
    int owner_here;             /* its owner is a process of this host */
} tail_run;

struct store_tail {
    store *s;
    int64_t session;
    int newest;                 /* opened as "the newest session" */
    int64_t first_run;          /* lowest run id of the session (0: none yet) */
    tail_run runs[REC_MAX_ARMS]; /* by arm */
    size_t nruns;
    int64_t event_id;
    int ended;                  /* REC_SESSION_END handed over */
    sqlite3_stmt *st[TS_COUNT];
};

store_tail *store_tail_open(store *s, int64_t session, gl_error *err)
{
    int newest = session == 0;
    if (newest) {
        session = store_last_session(s, err);
        if (session < 0)
            return NULL;
        if (session == 0) {
            gl_fail(err, "%s has no sessions to watch", s->path);
            return NULL;
        }
    }
    store_session_row row;
    if (store_get_session(s, session, &row, err))
        return NULL;
    store_session_row_free(&row);
    store_tail *t = xcalloc(1, sizeof *t);
    t->s = s;
    t->session = session;
    t->newest = newest;
    for (int i = 0; i < TS_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, tail_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &t->st[i],
                                    NULL);
        if (rc != SQLITE_OK) {
            store_fail(s, err, rc, "prepare the watcher's reads");
            store_tail_close(t);
            return NULL;
        }
    }
    return t;
}

void store_tail_close(store_tail *t)
{
    if (!t)
        return;
    for (int i = 0; i < TS_COUNT; i++)
        sqlite3_finalize(t->st[i]);
    free(t);
}

int64_t store_tail_session(const store_tail *t)
{
    return t->session;
}

int store_tail_newest(const store_tail *t)
{
    return t->newest;
}

int store_tail_ended(const store_tail *t)
{
    return t->ended;
}

static int final_status(run_status s)
{
    return s != RUN_RUNNING && s != RUN_PAUSED;
}

int64_t store_tail_owner_gone(const store_tail *t)
{
    if (t->ended || !t->nruns)
        return 0;
    int64_t pid = 0;
    for (size_t i = 0; i < t->nruns; i++) {
        const tail_run *r = &t->runs[i];
        if (!r->id || final_status(r->status))
            continue;
        if (!r->owner_here || r->owner_pid <= 0)
            return 0;
        if (kill((pid_t)r->owner_pid, 0) == 0 || errno != ESRCH)
            return 0;
        pid = r->owner_pid;
    }
    return pid;
}

static uint32_t mode_of(const char *name)
{
    gate_mode m;
    return gate_mode_parse(name, &m) ? (uint32_t)GATE_DENSE : (uint32_t)m;
}

/* ---- one poll ---- */

typedef struct {
    store_tail *t;
    store_tail_fn fn;
    void *ctx;
    gl_error *err;
    int stop;                   /* what fn returned */
} poll_ctx;

static int give(poll_ctx *p, int64_t run, const tel_record *r)
{
    if (!p->stop)
        p->stop = p->fn(p->ctx, run, r);
    return p->stop;
}

/* Reads the session's runs: new ones are handed over as REC_RUN_BEGIN now,
 * status changes are kept for the end of the poll. */
static int read_runs(poll_ctx *p)
{
    store_tail *t = p->t;
    sqlite3_stmt *st = t->st[TS_RUNS];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, t->session, &rc);
    store_bind_i64(st, 2, t->first_run, &rc);
    if (rc == SQLITE_OK)
        rc = SQLITE_ROW;   /* the binds held: walk */
    while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int64_t arm = sqlite3_column_int64(st, 1);
        if (arm < 0 || arm >= REC_MAX_ARMS)
            continue;   /* past what a screen can show (and the codec allows) */
        if (!t->first_run || id < t->first_run)
            t->first_run = id;
        tail_run *r = &t->runs[arm];
        if (arm >= (int64_t)t->nruns) {
            for (size_t i = t->nruns; i <= (size_t)arm; i++) {
                memset(&t->runs[i], 0, sizeof t->runs[i]);
                t->runs[i].train = t->runs[i].eval = t->runs[i].layer = t->runs[i].heat = -1;
            }
            t->nruns = (size_t)arm + 1;
        }
        char status[16], host[256];
        store_col_text(st, 6, status, sizeof status);
        run_status rs;
        if (run_status_parse(status, &rs))
            rs = RUN_CRASHED;
        if (rs != r->status)
            r->status_sent = 0;
        r->status = rs;
        r->owner_pid = sqlite3_column_int64(st, 10);
        store_col_text(st, 11, host, sizeof host);
        r->owner_here = strcmp(host, t->s->host) == 0;
        if (sqlite3_column_type(st, 9) != SQLITE_NULL)
            r->last_step = store_col_u64(st, 9);
        if (r->seen)
            continue;
        r->id = id;
        r->seen = 1;
        tel_record rec = {.kind = REC_RUN_BEGIN, .arm = (uint32_t)arm};
        rec.step = store_col_u64(st, 8);
        if (rec.step > r->last_step)
            r->last_step = rec.step;
        char mode[24];
        store_col_text(st, 3, mode, sizeof mode);
        store_col_text(st, 2, rec.u.run.name, sizeof rec.u.run.name);
        r->mode = rec.u.run.mode = mode_of(mode);
        r->k = rec.u.run.k = (uint32_t)sqlite3_column_int64(st, 4);
        r->frozen = rec.u.run.frozen = (uint32_t)sqlite3_column_int(st, 5);
        rec.u.run.parent_arm = UINT32_MAX;
        int64_t parent = sqlite3_column_int64(st, 7);
        for (size_t i = 0; i < t->nruns && parent; i++)
            if (t->runs[i].seen && t->runs[i].id == parent)
                rec.u.run.parent_arm = (uint32_t)i;
        if (give(p, id, &rec))
            break;
    }
    return store_end(t->s, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, p->err, "follow runs");
}

static int read_train(poll_ctx *p, tail_run *r, uint32_t arm)
{
    sqlite3_stmt *st = p->t->st[TS_TRAIN];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, r->id, &rc);
    store_bind_i64(st, 2, r->train, &rc);
    for (rc = rc == SQLITE_OK ? SQLITE_ROW : rc;
         rc == SQLITE_ROW && !p->stop && (rc = sqlite3_step(st)) == SQLITE_ROW;) {
        tel_record rec = {.kind = REC_STEP, .arm = arm};
        rec.step = store_col_u64(st, 0);
        rec.wall_ms = (double)sqlite3_column_int64(st, 1);
        rec.u.step.loss = sqlite3_column_double(st, 2);
        rec.u.step.grad_norm = rec.u.step.lr = NAN;
        r->train = (int64_t)rec.step;
        if (rec.step > r->last_step)
            r->last_step = rec.step;
        give(p, r->id, &rec);
    }
    return store_end(p->t->s, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, p->err,
                     "follow train loss");
}

static void eval_set(tel_record *rec, const char *key, double v)
{
    static const char *const keys[] = {"val_loss",    "val_ppl",        "val_bpb",
                                       "f1",          "mass_kept",      "oracle_mass",
                                       "gate_grad_norm", "tokens_per_s", "expert_balance"};
    double *dst[] = {&rec->u.eval.val_loss,      &rec->u.eval.val_ppl,
                     &rec->u.eval.bits_per_byte, &rec->u.eval.f1,
                     &rec->u.eval.mass_kept,     &rec->u.eval.oracle_mass,
                     &rec->u.eval.gate_grad_norm, &rec->u.eval.tokens_per_s,
                     &rec->u.eval.expert_balance};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i], key) == 0)
            *dst[i] = v;
}

static void eval_clear(tel_record *rec, uint32_t arm, uint64_t step, double wall_ms)
{
    memset(rec, 0, sizeof *rec);
    rec->kind = REC_EVAL;
    rec->arm = arm;
    rec->step = step;
    rec->wall_ms = wall_ms;
    rec->u.eval.val_loss = rec->u.eval.val_ppl = rec->u.eval.bits_per_byte = NAN;
    rec->u.eval.f1 = rec->u.eval.mass_kept = rec->u.eval.oracle_mass = NAN;
    rec->u.eval.gate_grad_norm = rec->u.eval.tokens_per_s = NAN;
    rec->u.eval.train_loss = rec->u.eval.expert_balance = NAN;
}

/* The evaluations after r->eval, as a list (the layer rows of each must be
 * handed over before it, and are read with another statement). */
typedef struct {
    tel_record *rec;
    size_t n, cap;
} eval_list;

static int read_evals(poll_ctx *p, tail_run *r, uint32_t arm, eval_list *out)
{
    sqlite3_stmt *st = p->t->st[TS_EVAL];
    int rc = SQLITE_OK;
    out->n = 0;
    store_bind_i64(st, 1, r->id, &rc);
    store_bind_i64(st, 2, r->eval, &rc);
    for (rc = rc == SQLITE_OK ? SQLITE_ROW : rc;
         rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW;) {
        uint64_t step = store_col_u64(st, 0);
        if (!out->n || out->rec[out->n - 1].step != step) {
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 16;
                out->rec = gl_grow(out->rec, out->n, out->cap, sizeof *out->rec);
            }
            eval_clear(&out->rec[out->n++], arm, step, (double)sqlite3_column_int64(st, 1));
        }
        char key[32];
        store_col_text(st, 2, key, sizeof key);
        eval_set(&out->rec[out->n - 1], key, sqlite3_column_double(st, 3));
    }
    if (store_end(p->t->s, st, rc, p->err, "follow evaluations"))
        return -1;
    /* an evaluation always stores val_loss; a step without it is not one */
    size_t u = 0;
    for (size_t i = 0; i < out->n; i++)
        if (!isnan(out->rec[i].u.eval.val_loss))
            out->rec[u++] = out->rec[i];
    out->n = u;
    st = p->t->st[TS_EVAL_TRAIN];
    for (size_t i = 0; i < out->n; i++) {
        rc = SQLITE_OK;
        store_bind_i64(st, 1, r->id, &rc);
        store_bind_u64(st, 2, out->rec[i].step, &rc);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
            out->rec[i].u.eval.train_loss = sqlite3_column_double(st, 0);
        if (store_end(p->t->s, st, rc, p->err, "follow evaluations"))
            return -1;
    }
    return 0;
}

/* The layer rows of evaluations after r->layer up to `upto`, one REC_LAYER
 * per (step, layer, head), each handed over before the evaluation of its
 * step (evals[] from *next on). */
static int read_layers(poll_ctx *p, tail_run *r, uint32_t arm, uint64_t upto,
                       const eval_list *evals, size_t *next)
{
    sqlite3_stmt *st = p->t->st[TS_LAYER];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, r->id, &rc);
    store_bind_i64(st, 2, r->layer, &rc);
    store_bind_u64(st, 3, upto, &rc);
    tel_record rec;
    int have = 0;
    for (;;) {
        int row = (rc == SQLITE_OK || rc == SQLITE_ROW) && !p->stop &&
                  (rc = sqlite3_step(st)) == SQLITE_ROW;
        uint64_t step = row ? store_col_u64(st, 0) : 0;
        uint32_t layer = row ? (uint32_t)sqlite3_column_int64(st, 1) : 0;
        uint32_t head = row ? (uint32_t)sqlite3_column_int64(st, 2) : 0;
        if (have && (!row || rec.step != step || rec.u.layer.layer != layer ||
                     rec.u.layer.head != head)) {
            /* the evaluations before this step go first */
            while (*next < evals->n && evals->rec[*next].step < rec.step)
                give(p, r->id, &evals->rec[(*next)++]);
            give(p, r->id, &rec);
            have = 0;
        }
        if (!row)
            break;
        if (!have) {
            memset(&rec, 0, sizeof rec);
            rec.kind = REC_LAYER;
            rec.arm = arm;
            rec.step = step;
            rec.u.layer.layer = layer;
            rec.u.layer.head = head;
            for (int k = 0; k < METRIC_COUNT; k++)
                rec.u.layer.value[k] = NAN;
            have = 1;
        }
        char key[32];
        store_col_text(st, 3, key, sizeof key);
        for (int k = 0; k < METRIC_COUNT; k++)
            if (strcmp(metric_name((metric_key)k), key) == 0)
                rec.u.layer.value[k] = sqlite3_column_double(st, 4);
    }
    r->layer = (int64_t)upto;
    return store_end(p->t->s, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, p->err,
                     "follow layer metrics");
}

static int read_run(poll_ctx *p, size_t arm, eval_list *evals)
{
    tail_run *r = &p->t->runs[arm];
    if (!r->seen)
        return 0;
    if (read_train(p, r, (uint32_t)arm) || read_evals(p, r, (uint32_t)arm, evals))
        return -1;
    size_t next = 0;
    if (evals->n) {
        uint64_t newest = evals->rec[evals->n - 1].step;
        if (read_layers(p, r, (uint32_t)arm, newest, evals, &next))
            return -1;
        r->eval = (int64_t)newest;
        if (newest > r->last_step)
            r->last_step = newest;
    }
    while (next < evals->n)
        give(p, r->id, &evals->rec[next++]);
    return 0;
}

static int arm_of(const store_tail *t, int64_t run)
{
    for (size_t i = 0; i < t->nruns; i++)
        if (t->runs[i].seen && t->runs[i].id == run)
            return (int)i;
    return -1;
}

static int read_events(poll_ctx *p)
{
    store_tail *t = p->t;
    sqlite3_stmt *st = t->st[TS_EVENTS];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, t->session, &rc);
    store_bind_i64(st, 2, t->event_id, &rc);
    for (rc = rc == SQLITE_OK ? SQLITE_ROW : rc;
         rc == SQLITE_ROW && !p->stop && (rc = sqlite3_step(st)) == SQLITE_ROW;) {
        int64_t id = sqlite3_column_int64(st, 0), run = sqlite3_column_int64(st, 1);
        t->event_id = id;
        int arm = arm_of(t, run);
        if (arm < 0)
            continue;
        tail_run *r = &t->runs[arm];
        char kind[24];
        store_col_text(st, 3, kind, sizeof kind);
        uint32_t k = EV_KIND_COUNT;
        for (uint32_t i = 0; i < EV_KIND_COUNT; i++)
            if (strcmp(event_kind_name((event_kind)i), kind) == 0)
                k = i;
        if (k == EV_KIND_COUNT)
            continue;   /* a kind of a newer gatelab */
        tel_record rec = {.kind = REC_EVENT, .arm = (uint32_t)arm};
        rec.step = store_col_u64(st, 2);
        rec.u.event.kind = k;
        store_col_text(st, 4, rec.u.event.detail, sizeof rec.u.event.detail);
        if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
            char mode[24];
            store_col_text(st, 5, mode, sizeof mode);
            r->mode = mode_of(mode);
            r->k = (uint32_t)sqlite3_column_int64(st, 6);
            r->frozen = (uint32_t)sqlite3_column_int(st, 7);
        }
        rec.u.event.mode = r->mode;
        rec.u.event.k = r->k;
        rec.u.event.frozen = r->frozen;
        give(p, run, &rec);
    }
    return store_end(t->s, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, p->err, "follow events");
}

static int read_heat(poll_ctx *p, size_t arm)
{
    tail_run *r = &p->t->runs[arm];
    sqlite3_stmt *st = p->t->st[TS_HEAT];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, r->id, &rc);
    int64_t step = -1;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        step = sqlite3_column_int64(st, 0);
    if (store_end(p->t->s, st, rc, p->err, "follow heatmaps"))
        return -1;
    if (step > r->heat) {
        r->heat = step;
        tel_record rec = {.kind = REC_HEATMAP, .arm = (uint32_t)arm, .step = (uint64_t)step};
        give(p, r->id, &rec);
    }
    return 0;
}

static int read_session_end(poll_ctx *p, int *ended)
{
    sqlite3_stmt *st = p->t->st[TS_SESSION];
    int rc = SQLITE_OK;
    store_bind_i64(st, 1, p->t->session, &rc);
    *ended = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *ended = sqlite3_column_int(st, 0);
    int gone = rc == SQLITE_DONE;   /* deleted meanwhile (gatelab rm) */
    if (store_end(p->t->s, st, rc, p->err, "follow the session"))
        return -1;
    if (gone)
        return gl_fail(p->err, "session %lld was deleted from %s", (long long)p->t->session,
                       p->t->s->path);
    return 0;
}

static int poll_tables(poll_ctx *p, eval_list *evals)
{
    store_tail *t = p->t;
    int ended;
    /* the session row first: what it says is at this commit, and the runs
     * read after it are at the same one */
    if (read_session_end(p, &ended) || read_runs(p))
        return -1;
    for (size_t i = 0; i < t->nruns && !p->stop; i++)
        if (read_run(p, i, evals))
            return -1;
    if (!p->stop && read_events(p))
        return -1;
    for (size_t i = 0; i < t->nruns && !p->stop; i++)
        if (t->runs[i].seen && read_heat(p, i))
            return -1;
    int all_final = t->nruns > 0;
    for (size_t i = 0; i < t->nruns && !p->stop; i++) {
        tail_run *r = &t->runs[i];
        if (!r->seen) {
            all_final = 0;
            continue;
        }
        all_final &= final_status(r->status);
        if (r->status_sent)
            continue;
        r->status_sent = 1;
        tel_record rec = {.kind = REC_STATUS, .arm = (uint32_t)i, .step = r->last_step};
        rec.u.status.status = (uint32_t)r->status;
        give(p, r->id, &rec);
    }
    /* ended_at alone is not the end when a run of the session is live
     * again (`gatelab resume` reopens a run in its old session) */
    if (!p->stop && !t->ended && (all_final || (ended && t->nruns == 0))) {
        t->ended = 1;
        tel_record rec = {.kind = REC_SESSION_END};
        for (size_t i = 0; i < t->nruns; i++)
            if (t->runs[i].last_step > rec.step)
                rec.step = t->runs[i].last_step;
        give(p, 0, &rec);
    }
    return 0;
}

int store_tail_poll(store_tail *t, store_tail_fn fn, void *ctx, gl_error *err)
{
    poll_ctx p = {.t = t, .fn = fn, .ctx = ctx, .err = err};
    if (t->ended)
        return 0;
    if (store_exec(t->s, t->st[TS_BEGIN], SQLITE_OK, err, "begin a read"))
        return -1;
    eval_list evals = {0};
    int rc = poll_tables(&p, &evals);
    free(evals.rec);
    /* a read transaction: ending it cannot lose anything */
    if (store_exec(t->s, t->st[TS_END], SQLITE_OK, rc ? NULL : err, "end a read") && !rc)
        rc = -1;
    if (rc)
        return -1;
    return p.stop;
}
