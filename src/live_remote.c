/* live_remote: a session over the ranks of an MPI job (DESIGN §13).
 *
 * Every rank parses the same words, so every rank knows every arm. Rank 0
 * opens the store, makes the session and every run's row, and tells the
 * others what they need (session, database id, checkpoint root, run ids);
 * each rank makes and starts only the arms placement.h gives it (arm i on
 * rank i % size), and rank 0 keeps a remote arm (arm_create_remote) for
 * each of the others' so the session loop, the store and the screen read
 * it like a local one. The setup:
 *   rank 0 -> all  hello: ok, session, database id, checkpoint root
 *   all -> rank 0  setup: ok, pid, host, each local arm's REC_RUN_BEGIN
 *                  with its config JSON (made by the rank that trains it)
 *   rank 0 -> all  go: ok, the run ids (or the first error, said once by
 *                  rank 0; the others end quietly)
 * Then messages of items [u8 kind][u32 arm][u32 n][n bytes]: the other
 * ranks send their arms' records (record_encode), heatmaps (the store's,
 * through arm_heat_take, and the screen's latest), step counters and a
 * last `done` per arm, at least every HEARTBEAT seconds; rank 0 sends the
 * commands arm_send queued for remote arms (the command codec) and, when
 * every arm is done, `end`; each rank answers `end` with `bye`, its last
 * item, and rank 0 reads until it has every `bye` before the link closes.
 * Nothing may be left unread on a link's communicator: an experiment opens
 * one session after another, and a message left from one session (a
 * heartbeat, the last records) would be matched by the next session's
 * receives once MPI reuses the freed communicator's context — seen as a
 * remote arm that never ends, or as a rank that sends nonsense. A rank
 * that dies: rank 0 marks its runs
 * crashed and every other run stopped, commits at once and fails naming
 * the rank (the ranks' messages are the transport's, mpi_link.c). */
#include "live_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dp.h"
#include "mpi_link.h"
#include "placement.h"

#define HEARTBEAT 0.1          /* seconds between messages when nothing else goes */
#define SILENT_DEAD 20.0       /* a peer silent this long is gone, whatever else */
#define SILENT_ALARM 0.5       /* after SIGCONT (mpirun: a rank died), silence this long */
#define SILENT_STOPPING 3.0    /* silence while the session stops */
#define OUT_MAX ((size_t)1 << 20)   /* bytes a rank gathers before it waits for a send */
#define END_WAIT 5.0           /* a rank waits this long for its last sends after `end` */

enum { IT_REC = 1, IT_HEAT_STORE, IT_HEAT_LATEST, IT_STEP, IT_DONE, IT_CMD, IT_END, IT_BYE };

typedef struct {
    int pid;
    char host[64];
    double heard;              /* gl_now of its last message */
    int dead;
    const uint8_t *msg;        /* a message being applied (mpi_link_take's) */
    size_t n, off;
} peer_state;

struct live_remote {
    mpi_link *link;
    placement pl;
    dp_comm *group;            /* this rank's --dp group (dp_open), NULL at --dp 1 */
    dp_comm *arm_dp[LIVE_MAX_ARMS];   /* per arm this rank trains (dp_dup) */
    int rank, size;
    char host[64];
    peer_state *peers;
    double alarm;              /* rank 0: when SIGCONT came, 0: none */
    double last_post;
    int begun;                 /* the setup went through */
    int lost;                  /* a rank died: nothing collective any more */
    uint64_t steps_sent[LIVE_MAX_ARMS];
    uint64_t heat_seen[LIVE_MAX_ARMS];
    int done_sent[LIVE_MAX_ARMS];
    uint8_t *heat;             /* a worker's copy of an arm's latest heatmaps */
    size_t heat_cap;
    char fault[sizeof(gl_error)];
};

typedef struct {
    int32_t ok;
    int64_t session;
    char db_id[33];
    char ckpt_root[2048];
    char err[sizeof(gl_error)];
} hello_msg;

typedef struct {
    int32_t ok;
    int32_t pid;
    char host[64];
    char err[sizeof(gl_error)];
} setup_head;

typedef struct {
    int32_t ok;
    int64_t run_ids[LIVE_MAX_ARMS];
    char err[sizeof(gl_error)];
} go_msg;

/* ---- items ---- */

static void put_item(mpi_link *l, int to, uint8_t kind, uint32_t ix, const void *p, size_t n)
{
    GL_ASSERT(n <= UINT32_MAX);
    uint32_t len = (uint32_t)n;
    uint8_t h[9];
    h[0] = kind;
    memcpy(h + 1, &ix, 4);
    memcpy(h + 5, &len, 4);
    mpi_link_append(l, to, h, sizeof h);
    if (n)
        mpi_link_append(l, to, p, n);
}

/* 1: an item at *off (which moves past it), 0: the end, -1: malformed. */
static int get_item(const uint8_t *m, size_t n, size_t *off, uint8_t *kind, uint32_t *ix,
                    const uint8_t **p, uint32_t *len)
{
    if (*off == n)
        return 0;
    if (n - *off < 9)
        return -1;
    *kind = m[*off];
    memcpy(ix, m + *off + 1, 4);
    memcpy(len, m + *off + 5, 4);
    if (n - *off - 9 < *len || *ix >= LIVE_MAX_ARMS)
        return -1;
    *p = m + *off + 9;
    *off += 9 + (size_t)*len;
    return 1;
}

/* ---- placement ---- */

int live_remote_rank(const live *lv) { return lv->remote ? lv->remote->rank : 0; }

int live_remote_local(const live *lv, size_t ix)
{
    const live_remote *rm = lv->remote;
    return !rm || placement_trains(&rm->pl, rm->rank, ix);
}

int live_remote_leads(const live *lv, size_t ix)
{
    const live_remote *rm = lv->remote;
    return !rm || placement_leader_of_arm(&rm->pl, ix) == rm->rank;
}

/* Every replica of arm ix's group calls it for each of the group's arms in
 * arm order (live_arms_make's loop), so the collectives match: the arm's
 * own communicator, then t made its replica (which copies the leader's
 * starting state). Nothing at --dp 1. */
int live_remote_dp_make(live *lv, size_t ix, trainer *t, gl_error *e)
{
    live_remote *rm = lv->remote;
    if (!rm || !rm->group)
        return 0;
    if (dp_dup(&rm->arm_dp[ix], rm->group, e))
        return -1;
    return trainer_set_dp(t, rm->arm_dp[ix], DP_BUCKET_BYTES, 1, e);
}

static int leader(const live *lv, size_t ix)
{
    return placement_leader_of_arm(&lv->remote->pl, ix);
}

int live_remote_open(live *lv, gl_error *e)
{
    const world *w = lv->cfg->world;
    if (!w || w->size < 2)
        return 0;
    if (lv->cfg->resume_run)
        return gl_fail(e, "resume: one run trains in one process; run gatelab resume without "
                          "mpirun (or with -np 1)");
    live_remote *rm = xcalloc(1, sizeof *rm);
    if (placement_init(&rm->pl, w->size, lv->cfg->dp ? (int)lv->cfg->dp : 1, e)) {
        free(rm);
        return -1;
    }
    /* collective over every rank: the --dp groups' communicators */
    if (dp_open(&rm->group, w, &rm->pl, e)) {
        free(rm);
        return -1;
    }
    if (!(rm->link = mpi_link_open(w, e))) {
        free(rm);
        return -1;
    }
    rm->rank = w->rank;
    rm->size = w->size;
    rm->peers = xcalloc((size_t)w->size, sizeof *rm->peers);
    if (gethostname(rm->host, sizeof rm->host))
        rm->host[0] = 0;
    rm->host[sizeof rm->host - 1] = 0;
    /* mpirun's first word that a rank died is SIGCONT to the others: taken
     * here (sigtimedwait), never by a thread made from now on */
    sigset_t cont;
    sigemptyset(&cont);
    sigaddset(&cont, SIGCONT);
    pthread_sigmask(SIG_BLOCK, &cont, NULL);
    lv->remote = rm;
    return 0;
}

/* ---- setup ---- */

/* Rank 0: a worker's setup message: its pid and host, and the begin
 * record and configuration of each arm it trains. */
static int read_setup(live *lv, int from, const uint8_t *m, size_t n, gl_error *e)
{
    live_remote *rm = lv->remote;
    setup_head h;
    if (n < sizeof h)
        return gl_fail(e, "rank %d: a setup message of %zu bytes", from, n);
    memcpy(&h, m, sizeof h);
    h.host[sizeof h.host - 1] = 0;
    h.err[sizeof h.err - 1] = 0;
    peer_state *p = &rm->peers[from];
    p->pid = h.pid;
    snprintf(p->host, sizeof p->host, "%s", h.host);
    p->heard = gl_now();
    if (!h.ok)
        return gl_fail(e, "rank %d (%s): %s", from, p->host, h.err);
    size_t off = sizeof h;
    uint8_t kind;
    uint32_t ix, len;
    const uint8_t *b;
    int got;
    while ((got = get_item(m, n, &off, &kind, &ix, &b, &len)) == 1) {
        tel_record r;
        const uint8_t *json;
        if (kind != IT_REC || ix >= lv->narms || leader(lv, ix) != from ||
            record_decode(b, len, &r, &json) != (long)len || r.kind != REC_RUN_BEGIN ||
            r.arm != ix)
            return gl_fail(e, "rank %d: a malformed setup message", from);
        arm_info *in = &lv->info[ix];
        free(in->config_json);
        in->config_json = xmalloc((size_t)r.payload + 1);
        memcpy(in->config_json, json, r.payload);
        in->config_json[r.payload] = 0;
        in->begin = r;
    }
    if (got < 0)
        return gl_fail(e, "rank %d: a malformed setup message", from);
    return 0;
}

int live_remote_begin(live *lv, const char *cwd, gl_error *e)
{
    live_remote *rm = lv->remote;
    const live_config *cfg = lv->cfg;
    hello_msg *h = xcalloc(1, sizeof *h);
    gl_error mine = {0};
    int ok = 1;
    if (rm->rank == 0) {
        ok = !(cfg->db_path && live_store_open(lv, &mine)) &&
             !live_arms_checkpoint_root(lv, cwd, &mine);
        h->ok = ok;
        h->session = lv->session;
        if (lv->st)
            snprintf(h->db_id, sizeof h->db_id, "%s", store_db_id(lv->st));
        snprintf(h->ckpt_root, sizeof h->ckpt_root, "%s", lv->ckpt_root);
        snprintf(h->err, sizeof h->err, "%s", ok ? "" : mine.msg);
    }
    if (mpi_link_bcast(rm->link, h, sizeof *h, e)) {
        free(h);
        return -1;
    }
    if (!h->ok) {
        free(h);
        return rm->rank == 0 ? gl_fail(e, "%s", mine.msg) : gl_fail(e, "%s", "");
    }
    if (rm->rank) {
        lv->session = h->session;
        snprintf(lv->db_id, sizeof lv->db_id, "%s", h->db_id);
        snprintf(lv->ckpt_root, sizeof lv->ckpt_root, "%s", h->ckpt_root);
    }
    free(h);
    /* every rank: its own arms (and the others' as remote ones) */
    ok = !live_arms_make(lv, &mine);
    for (size_t i = 0; ok && i < lv->narms; i++)
        if (live_remote_local(lv, i) && arm_check_dir(lv->arms[i], &mine))
            ok = 0;
    go_msg *go = xcalloc(1, sizeof *go);
    int rc = 0;
    if (rm->rank) {
        setup_head sh = {.ok = ok, .pid = (int32_t)getpid()};
        snprintf(sh.host, sizeof sh.host, "%s", rm->host);
        snprintf(sh.err, sizeof sh.err, "%s", ok ? "" : mine.msg);
        mpi_link_append(rm->link, 0, &sh, sizeof sh);
        for (size_t i = 0; ok && i < lv->narms; i++) {
            if (!live_remote_leads(lv, i))
                continue;
            const arm_info *in = &lv->info[i];
            size_t cap = RECORD_WIRE_MAX + in->begin.payload;
            uint8_t *b = xmalloc(cap);
            size_t n = record_encode(&in->begin, in->config_json, b, cap);
            GL_ASSERT(n > 0);
            put_item(rm->link, 0, IT_REC, (uint32_t)i, b, n);
            free(b);
        }
        /* the first message of the run; rank 0 takes it before anything
         * else (a failed post leaves rank 0 waiting: MPI is broken then) */
        if (mpi_link_flush(rm->link, 0, 1) > 0)
            while (!mpi_link_idle(rm->link, 0))
                nanosleep(&(struct timespec){0, 100000}, NULL);
        if (mpi_link_bcast(rm->link, go, sizeof *go, e)) {
            free(go);
            return -1;
        }
        if (go->ok)
            for (size_t i = 0; i < lv->narms; i++)
                atomic_store_explicit(&lv->run_ids[i], go->run_ids[i], memory_order_release);
        else
            rc = gl_fail(e, "%s", "");   /* rank 0 says why */
    } else {
        gl_error first = {0};
        if (!ok)
            first = mine;
        for (int r = 1; r < rm->size; r++) {
            const uint8_t *m = NULL;
            size_t n = 0;
            int got;
            while ((got = mpi_link_take(rm->link, r, &m, &n)) == 0)
                nanosleep(&(struct timespec){0, 100000}, NULL);
            gl_error pe;
            if (got < 0) {
                gl_fail(&pe, "rank %d: its setup message did not arrive", r);
                if (ok)
                    first = pe;
                ok = 0;
            } else if (read_setup(lv, r, m, n, &pe)) {
                if (ok)
                    first = pe;
                ok = 0;
            }
        }
        for (size_t i = 0; ok && i < lv->narms; i++)
            if (!lv->info[i].config_json) {
                gl_fail(&first, "rank %d sent no configuration for arm %zu", leader(lv, i), i);
                ok = 0;
            }
        if (ok && lv->st) {
            for (uint32_t i = 0; ok && i < lv->narms; i++)
                if (live_store_begin_run(lv, &lv->info[i].begin, lv->info[i].config_json,
                                         &first))
                    ok = 0;
            if (ok && live_store_start(lv, &first))
                ok = 0;
        }
        go->ok = ok;
        for (size_t i = 0; i < lv->narms; i++)
            go->run_ids[i] = atomic_load_explicit(&lv->run_ids[i], memory_order_acquire);
        snprintf(go->err, sizeof go->err, "%s", ok ? "" : first.msg);
        if (mpi_link_bcast(rm->link, go, sizeof *go, e)) {
            free(go);
            return -1;
        }
        if (!ok)
            rc = gl_fail(e, "%s", first.msg);
        double now = gl_now();
        for (int r = 1; r < rm->size; r++)
            rm->peers[r].heard = now;
    }
    free(go);
    rm->peers[0].heard = gl_now();
    rm->last_post = gl_now();
    rm->begun = rc == 0;
    return rc;
}

/* ---- rank 0: the remote arms ---- */

/* Applies the items of peer `from`'s current message from where the last
 * call stopped; 0 when all are applied, 1 when one must wait (a remote
 * arm's ring or heatmap slot is full until the session loop drains it),
 * -1 when the message is malformed. */
static int apply_items(live *lv, int from)
{
    peer_state *p = &lv->remote->peers[from];
    for (;;) {
        size_t at = p->off;
        uint8_t kind;
        uint32_t ix, len;
        const uint8_t *b;
        int got = get_item(p->msg, p->n, &p->off, &kind, &ix, &b, &len);
        if (got <= 0)
            return got;
        if (ix >= lv->narms || leader(lv, ix) != from || !arm_is_remote(lv->arms[ix]))
            return -1;
        arm *a = lv->arms[ix];
        int rc = 0;
        tel_record r;
        switch (kind) {
        case IT_REC:
            if (len > RECORD_WIRE_MAX || record_decode(b, len, &r, NULL) != (long)len ||
                r.arm != ix || r.payload)
                return -1;
            rc = arm_remote_push(a, b, len);
            break;
        case IT_HEAT_STORE:
        case IT_HEAT_LATEST:
            rc = arm_remote_heat(a, b, len, kind == IT_HEAT_STORE);
            if (rc == -2)
                return -1;
            break;
        case IT_STEP: {
            uint64_t step;
            if (len != sizeof step)
                return -1;
            memcpy(&step, b, sizeof step);
            arm_remote_step(a, step);
            break;
        }
        case IT_DONE: arm_mark_done(a); break;
        default: return -1;
        }
        if (rc) {
            p->off = at;   /* again after the next drain */
            return 1;
        }
    }
}

/* Whether a worker is gone: on this host its process is (kill 0), else it
 * has been silent too long — after mpirun's SIGCONT, while stopping, or
 * at all. */
static int peer_gone(const live_remote *rm, const peer_state *p, double now, int stopping)
{
    if (p->pid > 0 && strcmp(p->host, rm->host) == 0 && kill(p->pid, 0) && errno == ESRCH)
        return 1;
    double silent = now - p->heard;
    if (silent > SILENT_DEAD || (stopping && silent > SILENT_STOPPING))
        return 1;
    return rm->alarm > 0 && now > rm->alarm + SILENT_ALARM && p->heard < rm->alarm;
}

/* A rank died: every run not ended is marked — the dead ranks' crashed, the
 * others stopped (their arms are told to stop) — and the store commits and
 * ends the session at once: mpirun ends the other ranks within seconds. */
static void fault(live *lv, const live_observer *obs)
{
    live_remote *rm = lv->remote;
    char who[200] = "";
    size_t at = 0;
    for (int r = 1; r < rm->size; r++)
        if (rm->peers[r].dead && at < sizeof who)
            at += (size_t)snprintf(who + at, sizeof who - at, "%srank %d (pid %d on %s)",
                                   at ? ", " : "", r, rm->peers[r].pid, rm->peers[r].host);
    cmd_record stop = {.kind = CMD_STOP, .scripted = 2};
    for (size_t i = 0; i < lv->narms; i++) {
        arm *a = lv->arms[i];
        if (arm_done(a))
            continue;
        int crashed = arm_is_remote(a) && rm->peers[leader(lv, i)].dead;
        if (!crashed)
            arm_send(a, &stop);
        tel_record ev = {.kind = REC_EVENT, .arm = (uint32_t)i, .step = arm_step(a),
                         .wall_ms = gl_wall_ms()};
        ev.u.event.kind = EV_ERROR;
        ev.u.event.mode = lv->info[i].begin.u.run.mode;
        ev.u.event.k = lv->info[i].begin.u.run.k;
        ev.u.event.frozen = lv->info[i].begin.u.run.frozen;
        snprintf(ev.u.event.detail, sizeof ev.u.event.detail, "%.120s died; run %s", who,
                 crashed ? "crashed" : "stopped");
        tel_record st = {.kind = REC_STATUS, .arm = (uint32_t)i, .step = arm_step(a),
                         .wall_ms = gl_wall_ms()};
        st.u.status.status = crashed ? RUN_CRASHED : RUN_STOPPED;
        if (obs->on_record) {
            obs->on_record(obs->ctx, lv, &ev);
            obs->on_record(obs->ctx, lv, &st);
        }
        live_store_put(lv, &ev, NULL);
        live_store_put(lv, &st, NULL);
        if (arm_is_remote(a))
            arm_mark_done(a);
    }
    /* the live ranks' arms hear the stop if they are still there */
    for (int r = 1; r < rm->size; r++)
        if (!rm->peers[r].dead) {
            for (size_t i = 0; i < lv->narms; i++) {
                cmd_record c;
                while (arm_is_remote(lv->arms[i]) && leader(lv, i) == r &&
                       arm_remote_command(lv->arms[i], &c) == 0) {
                    uint8_t w[COMMAND_WIRE_SIZE];
                    command_encode(&c, w, sizeof w);
                    put_item(rm->link, r, IT_CMD, (uint32_t)i, w, sizeof w);
                }
            }
            mpi_link_flush(rm->link, r, 0);
        }
    live_store_finish(lv);   /* commits now, not at the next batch */
    /* this rank's arms end at their next step boundary (arm_join follows);
     * what they say meanwhile is taken, so none waits on a full ring, and
     * not stored: the runs are marked */
    for (int all = 0; !all;) {
        all = 1;
        for (size_t i = 0; i < lv->narms; i++) {
            arm *a = lv->arms[i];
            if (arm_is_remote(a))
                continue;
            int done = arm_done(a);
            tel_record r;
            while (arm_poll(a, &r) == 0) {
                if (r.kind == REC_FORKED) {
                    trainer *child = arm_take_fork(a);
                    if (child) {
                        trainer_free(child);
                        free(child);
                    }
                }
            }
            if (arm_heat_take(a))   /* an arm may wait for this slot, not the ring */
                arm_heat_taken(a);
            all &= done;
        }
        if (!all)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    rm->lost = 1;
    world_mark_lost();
    snprintf(rm->fault, sizeof rm->fault,
             "%.200s died (mpirun); its runs are marked crashed, the others stopped; "
             "continue each with gatelab resume RUN", who);
}

int live_remote_pump(live *lv, const live_observer *obs, int stopping)
{
    live_remote *rm = lv->remote;
    if (!rm || rm->rank != 0 || rm->lost)
        return rm && rm->lost;
    double now = gl_now();
    sigset_t cont;
    sigemptyset(&cont);
    sigaddset(&cont, SIGCONT);
    if (sigtimedwait(&cont, NULL, &(struct timespec){0, 0}) == SIGCONT)
        rm->alarm = now;   /* mpirun's word that a rank died, or a job continued */
    /* commands to the ranks that train their arms */
    for (size_t i = 0; i < lv->narms; i++) {
        cmd_record c;
        while (arm_is_remote(lv->arms[i]) && arm_remote_command(lv->arms[i], &c) == 0) {
            uint8_t w[COMMAND_WIRE_SIZE];
            command_encode(&c, w, sizeof w);
            put_item(rm->link, leader(lv, i), IT_CMD, (uint32_t)i, w, sizeof w);
        }
    }
    int beat = now - rm->last_post > HEARTBEAT, any_dead = 0;
    for (int r = 1; r < rm->size; r++) {
        peer_state *p = &rm->peers[r];
        if (p->dead)
            continue;
        mpi_link_flush(rm->link, r, beat);
        /* their records, as far as the remote arms' rings take them */
        for (;;) {
            if (!p->msg) {
                const uint8_t *m;
                size_t n;
                if (mpi_link_take(rm->link, r, &m, &n) != 1)
                    break;
                p->msg = m;
                p->n = n;
                p->off = 0;
                p->heard = now;
            }
            int rc = apply_items(lv, r);
            if (rc > 0) {
                p->heard = now;   /* we are the slow side: it is not silent */
                break;
            }
            p->msg = NULL;
            if (rc < 0) {
                p->dead = 1;   /* what it sends makes no sense: it is not a gatelab rank */
                break;
            }
        }
        if (!p->dead && peer_gone(rm, p, now, stopping))
            p->dead = 1;
        any_dead |= p->dead;
    }
    if (beat)
        rm->last_post = now;
    if (rm->alarm > 0 && now > rm->alarm + SILENT_ALARM)
        rm->alarm = 0;   /* every rank spoke since: a job stopped and continued */
    if (any_dead)
        fault(lv, obs);
    return any_dead;
}

const char *live_remote_fault(const live *lv)
{
    return lv->remote && lv->remote->fault[0] ? lv->remote->fault : NULL;
}

/* ---- the other ranks: their arms, and the messages to and from rank 0 ---- */

static void stop_local(live *lv)
{
    cmd_record c = {.kind = CMD_STOP, .scripted = 2};
    for (size_t i = 0; i < lv->narms; i++)
        if (live_remote_local(lv, i) && !arm_done(lv->arms[i]))
            while (arm_send(lv->arms[i], &c))
                nanosleep(&(struct timespec){0, 1000000}, NULL);
}

/* Rank 0's messages: commands for our arms, and the end. -1: malformed. */
static int take_commands(live *lv, int *end)
{
    live_remote *rm = lv->remote;
    const uint8_t *m;
    size_t n;
    int got;
    while ((got = mpi_link_take(rm->link, 0, &m, &n)) == 1) {
        rm->peers[0].heard = gl_now();
        size_t off = 0;
        uint8_t kind;
        uint32_t ix, len;
        const uint8_t *b;
        int it;
        while ((it = get_item(m, n, &off, &kind, &ix, &b, &len)) == 1) {
            if (kind == IT_END) {
                *end = 1;
                continue;
            }
            cmd_record c;
            if (kind != IT_CMD || ix >= lv->narms || !live_remote_leads(lv, ix) ||
                command_decode(b, len, &c) != (long)len)
                return -1;
            while (!arm_done(lv->arms[ix]) && arm_send(lv->arms[ix], &c))
                nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
        if (it < 0)
            return -1;
    }
    return got < 0 ? -1 : 0;
}

/* One arm's waiting records into the message for rank 0, as live_drain
 * takes them: an evaluation's stored heatmaps before its record, a fork
 * refused (its trainer stays here: see README). 1 when its ring is empty. */
static int send_arm(live *lv, size_t i)
{
    live_remote *rm = lv->remote;
    arm *a = lv->arms[i];
    tel_record r;
    uint8_t w[RECORD_WIRE_MAX];
    while (mpi_link_pending(rm->link, 0) < OUT_MAX) {
        if (arm_poll(a, &r))
            return 1;
        if (r.kind == REC_FORKED) {
            trainer *child = arm_take_fork(a);
            if (child) {
                trainer_free(child);
                free(child);
            }
            tel_record ev = {.kind = REC_EVENT, .arm = (uint32_t)i, .step = r.step,
                             .wall_ms = gl_wall_ms()};
            ev.u.event.kind = EV_ERROR;
            ev.u.event.mode = r.u.forked.mode;
            snprintf(ev.u.event.detail, sizeof ev.u.event.detail,
                     "fork refused: arm %.60s trains on rank %d; under mpirun only arms of "
                     "rank 0 fork", arm_name(a), rm->rank);
            r = ev;
        }
        const uint8_t *heat = arm_heat_take(a);
        if (heat) {
            put_item(rm->link, 0, IT_HEAT_STORE, (uint32_t)i, heat, arm_heat_bytes(a));
            arm_heat_taken(a);
        }
        size_t n = record_encode(&r, NULL, w, sizeof w);
        GL_ASSERT(n > 0);
        put_item(rm->link, 0, IT_REC, (uint32_t)i, w, n);
    }
    return 0;
}

int live_remote_work(live *lv, sigset_t *sigs, live_result *res, gl_error *e)
{
    live_remote *rm = lv->remote;
    int end = 0, stopping = 0, rc = 0;
    double end_at = 0;
    for (;;) {
        double now = gl_now();
        if (take_commands(lv, &end)) {
            rc = gl_fail(e, "rank %d: a malformed message from rank 0", rm->rank);
            break;
        }
        int all_done = 1;
        for (size_t i = 0; i < lv->narms; i++) {
            if (!live_remote_local(lv, i) || rm->done_sent[i])
                continue;
            arm *a = lv->arms[i];
            if (!live_remote_leads(lv, i)) {
                /* a --dp follower: the leader reports the arm; this rank
                 * only waits for its replica to end */
                tel_record r;
                while (arm_poll(a, &r) == 0)
                    ;
                if (arm_heat_take(a))
                    arm_heat_taken(a);
                rm->done_sent[i] = arm_done(a) && arm_poll(a, &r) != 0;
                all_done &= rm->done_sent[i];
                continue;
            }
            int done = arm_done(a);   /* first: what it pushed before is then seen */
            int empty = send_arm(lv, i);
            uint64_t step = arm_step(a);
            if (step != rm->steps_sent[i]) {
                put_item(rm->link, 0, IT_STEP, (uint32_t)i, &step, sizeof step);
                rm->steps_sent[i] = step;
            }
            size_t hb = arm_heat_bytes(a);
            if (hb && arm_heat_version(a) != rm->heat_seen[i]) {
                if (rm->heat_cap < hb) {
                    free(rm->heat);
                    rm->heat = xmalloc(hb);
                    rm->heat_cap = hb;
                }
                rm->heat_seen[i] = arm_heat_read(a, rm->heat);
                put_item(rm->link, 0, IT_HEAT_LATEST, (uint32_t)i, rm->heat, hb);
            }
            if (done && empty) {
                put_item(rm->link, 0, IT_DONE, (uint32_t)i, NULL, 0);
                rm->done_sent[i] = 1;
            }
            all_done &= rm->done_sent[i];
        }
        int beat = now - rm->last_post > HEARTBEAT;
        int posted = mpi_link_flush(rm->link, 0, beat);
        if (posted > 0)
            rm->last_post = now;
        if (end) {
            /* rank 0 is done reading: after a normal end everything was read */
            if (!end_at) {
                end_at = now;
                if (!all_done)
                    stop_local(lv);
            }
            if (all_done && mpi_link_idle(rm->link, 0)) {
                /* the last item on this link: rank 0 reads up to it */
                put_item(rm->link, 0, IT_BYE, 0, NULL, 0);
                while (mpi_link_flush(rm->link, 0, 0) == 0 && gl_now() - end_at < END_WAIT)
                    nanosleep(&(struct timespec){0, 200000}, NULL);
                while (!mpi_link_idle(rm->link, 0) && gl_now() - end_at < END_WAIT)
                    nanosleep(&(struct timespec){0, 200000}, NULL);
                if (!mpi_link_idle(rm->link, 0))
                    rm->lost = 1;
                break;
            }
            if (now - end_at > END_WAIT) {
                rm->lost = 1;
                break;
            }
        } else if (now - rm->peers[0].heard > SILENT_DEAD) {
            rc = gl_fail(e, "rank %d: rank 0 silent for %.0f s; arms stopped", rm->rank,
                         SILENT_DEAD);
            rm->lost = 1;
            stop_local(lv);
            break;
        }
        int sig = sigtimedwait(sigs, NULL, &(struct timespec){0, posted > 0 ? 0 : 2000000});
        if (sig > 0) {
            if (!res->signal)
                res->signal = sig;
            if (!stopping) {
                stopping = 1;
                stop_local(lv);
            }
        }
    }
    for (size_t i = 0; i < lv->narms; i++)
        if (live_remote_local(lv, i))
            arm_join(lv->arms[i]);
    if (rm->lost)
        world_mark_lost();
    return rc;
}

/* Whether rank r's message just taken holds its `bye`; what else it holds
 * comes after every arm was done and is dropped (heartbeats). */
static int holds_bye(const uint8_t *m, size_t n)
{
    size_t off = 0;
    uint8_t kind;
    uint32_t ix, len;
    const uint8_t *b;
    while (get_item(m, n, &off, &kind, &ix, &b, &len) == 1)
        if (kind == IT_BYE)
            return 1;
    return 0;
}

/* Rank 0 at the end: `end` to every rank, once every arm is done, then
 * everything they send up to their `bye`, so the link's communicator is
 * freed with nothing in it (see the top of this file). A rank that does not
 * answer within END_WAIT leaves the communicator unfreed (lost), so no
 * later session can be handed its messages. */
void live_remote_close(live *lv)
{
    live_remote *rm = lv->remote;
    if (!rm)
        return;
    if (rm->rank == 0 && rm->begun && !rm->lost) {
        for (int r = 1; r < rm->size; r++) {
            put_item(rm->link, r, IT_END, 0, NULL, 0);
            double t0 = gl_now();
            while (mpi_link_flush(rm->link, r, 0) == 0 && gl_now() - t0 < END_WAIT)
                nanosleep(&(struct timespec){0, 200000}, NULL);
        }
        for (int r = 1; r < rm->size; r++) {
            int bye = rm->peers[r].dead;
            double t0 = gl_now();
            while (!bye && gl_now() - t0 < END_WAIT) {
                const uint8_t *m;
                size_t n;
                int got = mpi_link_take(rm->link, r, &m, &n);
                if (got < 0)
                    break;
                if (got == 1)
                    bye = holds_bye(m, n);
                else
                    nanosleep(&(struct timespec){0, 200000}, NULL);
            }
            if (!bye)
                rm->lost = 1;
        }
    }
    /* the arms (and their trainers) are freed by now (teardown) */
    if (!rm->lost) {
        for (size_t i = 0; i < LIVE_MAX_ARMS; i++)
            dp_close(rm->arm_dp[i]);
        dp_close(rm->group);
    }
    mpi_link_close(rm->link, rm->lost);
    free(rm->peers);
    free(rm->heat);
    free(rm);
    lv->remote = NULL;
}
