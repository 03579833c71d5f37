/* test_store_tail: following a session as another connection writes it
 * (store_tail, behind `gatelab watch`). A writer handle commits batches the
 * way the store thread does; a second handle on the same file polls. Each
 * poll must hand over exactly what was committed since the last one, as the
 * records the trainer made (layers before their evaluation, the step's own
 * train loss in the evaluation, an event stored without a gate given the
 * gate last known), never what is not committed yet, and must leave no read
 * transaction open between polls (a checkpoint of the WAL would wait). */
#include "store_tail.h"

#include "store_fixture.h"

#define MAXREC 512

typedef struct {
    tel_record r[MAXREC];
    int64_t run[MAXREC];
    size_t n;
} got;

static int collect(void *ctx, int64_t run, const tel_record *r)
{
    got *g = ctx;
    if (g->n < MAXREC) {
        g->r[g->n] = *r;
        g->run[g->n] = run;
        g->n++;
    }
    return 0;
}

static size_t count_kind(const got *g, rec_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += g->r[i].kind == (uint32_t)k;
    return n;
}

static const tel_record *find(const got *g, rec_kind k, size_t nth)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->r[i].kind == (uint32_t)k && nth-- == 0)
            return &g->r[i];
    return NULL;
}

static size_t index_of(const got *g, const tel_record *r)
{
    return (size_t)(r - g->r);
}

static int poll(store_tail *t, got *g)
{
    gl_error err = {{0}};
    g->n = 0;
    int rc = store_tail_poll(t, collect, g, &err);
    if (rc)
        printf("  poll: %s\n", err.msg);
    return rc;
}

static int64_t begin_run(store *s, int64_t session, uint32_t arm, const char *name,
                         gate_mode mode, int64_t parent, uint64_t start)
{
    gl_error err = {{0}};
    store_run_desc d = {.arm = arm, .name = name, .mode = gate_mode_name(mode), .k = 4,
                        .seed = 1, .config_json = "{\"layers\":1,\"heads\":2,\"T\":4}",
                        .parent_run = parent, .start_step = start};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    return run;
}

static void steps(store *s, int64_t run, uint64_t from, uint64_t to, uint64_t eval)
{
    for (uint64_t st = from; st <= to; st++) {
        tel_record r = rec_step(st, 3.0 + 1.0 / (double)st);
        GL_ASSERT(write_or_die(s, run, &r) == 0);
        if (st == eval) {
            for (uint32_t h = 0; h < 2; h++) {
                tel_record l = rec_layer(st, 0, h, 0.25 + 0.5 * h);
                GL_ASSERT(write_or_die(s, run, &l) == 0);
            }
            tel_record e = rec_eval(st, 2.5, 0.5);
            GL_ASSERT(write_or_die(s, run, &e) == 0);
        }
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_tail.XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));
    char *path = tmp_path("t.db");
    gl_error err = {{0}};

    printf("an empty database, an unknown session\n");
    store *w = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(w);
    store *rd = store_open(path, STORE_BROWSE, &err);
    GL_ASSERT(rd);
    store_tail *t = store_tail_open(rd, 0, &err);
    CHECK(!t && strstr(err.msg, "has no sessions to watch"), "no session at all: %s", err.msg);
    int64_t session = store_session_begin(w, "gatelab run (test)", &err);
    GL_ASSERT(session > 0);
    t = store_tail_open(rd, session + 41, &err);
    CHECK(!t && strstr(err.msg, "no session") && !strchr(err.msg, '\n'),
          "an unknown session is one line: %s", err.msg);

    printf("the first poll: everything committed so far, as records\n");
    int64_t run0 = begin_run(w, session, 0, "soft", GATE_SOFT, 0, 0);
    GL_ASSERT(store_begin(w, &err) == 0);
    tel_record start = rec_event(0, EV_START, GATE_SOFT, 4, "start soft");
    GL_ASSERT(write_or_die(w, run0, &start) == 0);
    steps(w, run0, 1, 10, 10);
    GL_ASSERT(store_commit(w, &err) == 0);
    t = store_tail_open(rd, 0, &err);
    CHECK(t != NULL, "session 0 opens the newest");
    CHECK(t && store_tail_session(t) == session && store_tail_newest(t),
          "... which is session %lld, said to be the newest", (long long)session);
    got *g = xcalloc(1, sizeof *g);
    CHECK(poll(t, g) == 0, "poll");
    const tel_record *rb = find(g, REC_RUN_BEGIN, 0);
    CHECK(rb && rb->arm == 0 && strcmp(rb->u.run.name, "soft") == 0 &&
              rb->u.run.mode == GATE_SOFT && rb->u.run.k == 4 &&
              rb->u.run.parent_arm == UINT32_MAX && g->run[index_of(g, rb)] == run0,
          "a run begins: arm 0, soft, k 4, no parent, its run id");
    CHECK(count_kind(g, REC_STEP) == 10, "ten step records (%zu)", count_kind(g, REC_STEP));
    const tel_record *s3 = find(g, REC_STEP, 2);
    CHECK(s3 && s3->step == 3 && fabs(s3->u.step.loss - (3.0 + 1.0 / 3)) < 1e-12 &&
              s3->wall_ms == T0_MS + 300.0,
          "... each with its loss and its own clock");
    const tel_record *ev = find(g, REC_EVAL, 0);
    CHECK(count_kind(g, REC_EVAL) == 1 && ev && ev->step == 10 && ev->u.eval.val_loss == 2.5 &&
              fabs(ev->u.eval.val_ppl - exp(2.5)) < 1e-9 && ev->u.eval.f1 == 0.5 &&
              isnan(ev->u.eval.bits_per_byte) && ev->u.eval.tokens_per_s == 10010,
          "one evaluation at 10 with its metrics (absent ones NaN)");
    CHECK(ev && fabs(ev->u.eval.train_loss - 3.1) < 1e-12,
          "... and the step's own train loss (%g), not the evaluation's",
          ev ? ev->u.eval.train_loss : NAN);
    const tel_record *l1 = find(g, REC_LAYER, 1);
    CHECK(count_kind(g, REC_LAYER) == 2 && l1 && l1->u.layer.head == 1 &&
              l1->u.layer.value[METRIC_F1] == 0.75 && isnan(l1->u.layer.value[METRIC_FLIP_RATE]),
          "two layer records, every metric in place, an absent one NaN");
    CHECK(l1 && ev && index_of(g, l1) < index_of(g, ev), "... handed over before their evaluation");
    const tel_record *e0 = find(g, REC_EVENT, 0);
    CHECK(e0 && e0->u.event.kind == EV_START && e0->u.event.mode == GATE_SOFT &&
              strcmp(e0->u.event.detail, "start soft") == 0,
          "the start event with its gate");
    const tel_record *st0 = find(g, REC_STATUS, 0);
    CHECK(st0 && st0->u.status.status == RUN_RUNNING, "the run's status: running");
    CHECK(count_kind(g, REC_SESSION_END) == 0, "the session goes on");
    CHECK(poll(t, g) == 0 && g->n == 0, "a poll with nothing new hands over nothing (%zu)", g->n);

    printf("the reader holds nothing between polls, and sees only commits\n");
    int log = -1, ckpt = -1;
    int rc = sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &ckpt);
    CHECK(rc == SQLITE_OK, "the writer can truncate the WAL after a poll (%s)", sqlite3_errstr(rc));
    GL_ASSERT(store_begin(w, &err) == 0);
    steps(w, run0, 11, 20, 20);
    tel_record swap = rec_event(15, EV_SWAP, GATE_TOPK, 4, "soft -> topk");
    GL_ASSERT(write_or_die(w, run0, &swap) == 0);
    GL_ASSERT(store_commit(w, &err) == 0);
    int64_t run1 = begin_run(w, session, 1, "soft>random", GATE_RANDOM, run0, 20);
    GL_ASSERT(store_begin(w, &err) == 0);
    heatmap_snapshot *h = heatmap_snapshot_new(1, 2, 4);
    h->step = 20;
    GL_ASSERT(store_write_heatmap(w, run0, h, &err) == 0);
    heatmap_snapshot_free(h);
    GL_ASSERT(store_commit(w, &err) == 0);
    GL_ASSERT(store_begin(w, &err) == 0);   /* the write lock, held across the poll */
    steps(w, run0, 21, 25, 0);
    CHECK(poll(t, g) == 0, "a poll while the writer holds the write lock does not wait for it");
    CHECK(count_kind(g, REC_STEP) == 10 && find(g, REC_STEP, 0)->step == 11 &&
              find(g, REC_STEP, 9)->step == 20,
          "... and hands over steps 11..20 only: committed, and not read before");
    CHECK(count_kind(g, REC_EVAL) == 1 && find(g, REC_EVAL, 0)->step == 20,
          "... the evaluation at 20 only");
    rb = find(g, REC_RUN_BEGIN, 0);
    CHECK(rb && rb->arm == 1 && rb->u.run.parent_arm == 0 && rb->step == 20 &&
              rb->u.run.mode == GATE_RANDOM && g->run[index_of(g, rb)] == run1,
          "a fork appears: arm 1, parent arm 0, from step 20");
    const tel_record *sw = find(g, REC_EVENT, 0);
    CHECK(count_kind(g, REC_EVENT) == 1 && sw && sw->u.event.kind == EV_SWAP &&
              sw->u.event.mode == GATE_TOPK,
          "only the new event: the swap to topk");
    const tel_record *hm = find(g, REC_HEATMAP, 0);
    CHECK(count_kind(g, REC_HEATMAP) == 1 && hm && hm->arm == 0 && hm->step == 20,
          "newer heatmaps of arm 0, at step 20");
    GL_ASSERT(store_commit(w, &err) == 0);
    CHECK(poll(t, g) == 0 && count_kind(g, REC_STEP) == 5 && find(g, REC_STEP, 0)->step == 21,
          "once committed, steps 21..25 come");
    CHECK(count_kind(g, REC_HEATMAP) == 0, "the same heatmap is not handed over twice");

    printf("events without a gate, ended arms, the session's end\n");
    /* what crash marking writes: an error event with NULL gate columns */
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO events (run, step, time, kind, detail) VALUES (%lld, 25, "
             "'2026-01-01T00:00:00.000Z', 'error', 'no gate here')",
             (long long)run0);
    sqlite3 *raw = raw_open(path);
    raw_exec(raw, sql);
    sqlite3_close(raw);
    GL_ASSERT(store_begin(w, &err) == 0);
    tel_record fin = rec_status(25, RUN_STOPPED);
    GL_ASSERT(write_or_die(w, run0, &fin) == 0);
    GL_ASSERT(store_commit(w, &err) == 0);
    CHECK(poll(t, g) == 0, "poll");
    const tel_record *ne = find(g, REC_EVENT, 0);
    CHECK(ne && ne->u.event.kind == EV_ERROR && ne->u.event.mode == GATE_TOPK &&
              ne->u.event.k == 4,
          "an event stored without a gate carries the last known one (topk)");
    const tel_record *ss = find(g, REC_STATUS, 0);
    CHECK(count_kind(g, REC_STATUS) == 1 && ss && ss->arm == 0 &&
              ss->u.status.status == RUN_STOPPED && ss->step == 25,
          "arm 0 ended: stopped at step 25");
    CHECK(count_kind(g, REC_SESSION_END) == 0 && !store_tail_ended(t),
          "the fork still runs: the session has not ended");
    CHECK(store_tail_owner_gone(t) == 0, "its owner (this process) is alive");
    /* ended_at with a run live: what `resume` makes of an old session */
    GL_ASSERT(store_session_end(w, session, &err) == 0);
    CHECK(poll(t, g) == 0 && count_kind(g, REC_SESSION_END) == 0 && !store_tail_ended(t),
          "ended_at set while a run is live (a resumed run) is not the end");
    GL_ASSERT(store_begin(w, &err) == 0);
    tel_record fin1 = rec_status(30, RUN_FINISHED);
    GL_ASSERT(write_or_die(w, run1, &fin1) == 0);
    GL_ASSERT(store_commit(w, &err) == 0);
    CHECK(poll(t, g) == 0 && count_kind(g, REC_SESSION_END) == 1 && store_tail_ended(t),
          "every run ended: the session's end is handed over");
    ss = find(g, REC_STATUS, 0);
    CHECK(ss && ss->arm == 1 && ss->u.status.status == RUN_FINISHED &&
              index_of(g, ss) < index_of(g, find(g, REC_SESSION_END, 0)),
          "... after the last arm's status (finished)");
    CHECK(poll(t, g) == 0 && g->n == 0, "... once");

    printf("a session whose every run ended, without ended_at (a crash)\n");
    int64_t s2 = store_session_begin(w, "gatelab run (crashed)", &err);
    int64_t run2 = begin_run(w, s2, 0, "dense", GATE_DENSE, 0, 0);
    GL_ASSERT(store_begin(w, &err) == 0);
    steps(w, run2, 1, 3, 0);
    tel_record cr = rec_status(3, RUN_CRASHED);
    GL_ASSERT(write_or_die(w, run2, &cr) == 0);
    GL_ASSERT(store_commit(w, &err) == 0);
    store_tail *t2 = store_tail_open(rd, s2, &err);
    CHECK(t2 && !store_tail_newest(t2), "a named session is not 'the newest'");
    CHECK(t2 && poll(t2, g) == 0 && count_kind(g, REC_SESSION_END) == 1 &&
              find(g, REC_STATUS, 0)->u.status.status == RUN_CRASHED,
          "every run final: crashed, and the session ends");

    store_tail_close(t2);
    store_tail_close(t);
    store_close(rd);
    store_close(w);
    free(g);
    rm_tree(tmpdir);
    free(path);
    return check_finish();
}
