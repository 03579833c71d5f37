/* watch: the live screen of a session another process writes (`gatelab
 * watch`). A store_tail turns what that process committed since the last
 * poll into the telemetry records the live screen folds (ui_state_record),
 * so every panel is the live one; at most POLLS_PER_SECOND polls, each a
 * short read that never blocks the writer. The steering keys of the live
 * screen become rows of the commands table (the owner applies them at the
 * arm's next step boundary); each row's fate — applied at a step, or
 * rejected and why — comes back on the events line. q leaves the watcher
 * only; the session goes on. Nothing else is written. */
#include "ui.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gate.h"
#include "progress.h"
#include "runspec_read.h"
#include "store.h"
#include "store_tail.h"
#include "ui_screen.h"

#define POLLS_PER_SECOND 4
#define REDRAW_SECONDS 0.1
#define KEY_WAIT_MS 50
/* an arm whose newest step is older than this (by its own clock) shows no
 * throughput: it is stalled, or its owner has not committed for a while */
#define STALE_SECONDS 15.0
#define NO_MODE UINT32_MAX
#define MAX_SENT 256

typedef struct {
    int64_t id;
    uint32_t arm;              /* UINT32_MAX: every arm */
    char what[64];             /* "swap topk", as the events line says it */
} sent_cmd;

typedef struct {
    store *s;
    store_tail *tail;
    ui_screen *scr;
    const ui_options *opt;     /* the caller's: the `w` key's writer */
    ui_state st;
    ui_view view;
    unsigned dirty;
    double last_draw, next_poll;
    int ended;                 /* the session is over: the picture stays */
    progress_pace pace[LIVE_MAX_ARMS];
    double last_wall[LIVE_MAX_ARMS];   /* the newest step record's own clock, seconds */
    int64_t heat_step[LIVE_MAX_ARMS];  /* newest heatmap step stored, -1: none */
    int64_t heat_read[LIVE_MAX_ARMS];  /* the step whose planes were read, -1: none */
    uint32_t pend_mode[LIVE_MAX_ARMS], pend_k[LIVE_MAX_ARMS];
    sent_cmd sent[MAX_SENT];   /* commands still pending */
    size_t nsent;
    gl_error *err;
} watcher;

/* ---- following the database ---- */

static int on_record(void *ctx, int64_t run, const tel_record *r)
{
    watcher *w = ctx;
    ui_state *st = &w->st;
    if (r->kind == REC_SESSION_END) {
        w->ended = 1;
        return 0;
    }
    if (r->arm >= LIVE_MAX_ARMS)
        return 0;
    if (r->kind == REC_RUN_BEGIN) {
        ui_arm *a = ui_state_arm(st, r->arm, r->u.run.name);
        a->run = run;
        /* the gate it started with (runs.mode), until its events say more */
        a->mode = a->start_mode = r->u.run.mode;
        a->k = r->u.run.k;
        a->frozen = r->u.run.frozen;
        a->have_gate = 1;
    }
    if (r->kind == REC_HEATMAP) {
        w->heat_step[r->arm] = (int64_t)r->step;
        return 0;
    }
    if (r->kind == REC_STEP) {
        double t = r->wall_ms / 1000.0;
        progress_pace_feed(&w->pace[r->arm], r->step, t);
        w->last_wall[r->arm] = t;
    }
    if (r->kind == REC_EVENT) {
        event_kind k = (event_kind)r->u.event.kind;
        if (k == EV_SWAP || k == EV_ERROR)
            w->pend_mode[r->arm] = NO_MODE;
        if (k == EV_SET_K || k == EV_ERROR)
            w->pend_k[r->arm] = 0;
    }
    w->dirty |= ui_state_record(st, r);
    return 0;
}

/* The selected arm's newest heatmaps, read when the database has newer
 * ones than the screen shows (or another arm was selected). */
static int load_heat(watcher *w)
{
    size_t i = w->view.sel;
    if (i >= w->st.narms || w->heat_step[i] < 0)
        return 0;
    ui_arm *a = &w->st.arms[i];
    if (w->heat_read[i] == w->heat_step[i])
        return 0;   /* read already (found, or of another shape: not again) */
    int found;
    if (store_get_heatmaps(w->s, a->run, (uint64_t)w->heat_step[i], ui_state_heat(&w->st, i),
                           &found, w->err))
        return -1;
    a->have_heat = found;
    a->heat_step = (uint64_t)w->heat_step[i];
    w->heat_read[i] = w->heat_step[i];
    w->dirty |= UI_DIRTY_HEAT;
    return 0;
}

/* Throughput and the time left, from the step records' own clock: the
 * owner's pace, whenever its commits reach us. */
static void update_rates(watcher *w)
{
    ui_state *st = &w->st;
    double total = 0.0, eta = NAN, now = gl_wall_ms() / 1000.0;
    int running = 0;
    for (size_t i = 0; i < st->narms; i++) {
        ui_arm *a = &st->arms[i];
        if (a->done || a->status == RUN_PAUSED) {
            a->tok_s = 0.0;
            w->pace[i].started = 0;   /* a pause is not counted as a slow pace */
            continue;
        }
        if (now - w->last_wall[i] > STALE_SECONDS) {
            a->tok_s = 0.0;
        } else {
            a->tok_s = w->pace[i].pace * (double)(st->B * st->T);
            total += a->tok_s;
        }
        uint64_t left = a->step < st->steps ? st->steps - a->step : 0;
        double t = progress_eta(&w->pace[i], left);
        eta = !running ? t : isnan(t) || isnan(eta) ? NAN : fmax(eta, t);
        running = 1;
    }
    w->view.tok_s = total;
    w->view.eta = eta;
}

static const char *state_word(const watcher *w)
{
    if (w->ended)
        return "ENDED";
    if (ui_state_all_paused(&w->st))
        return "PAUSED";
    return "RUNNING";
}

static void session_over(watcher *w, const char *why)
{
    w->ended = 1;
    w->view.tok_s = 0.0;
    w->view.eta = NAN;
    for (size_t i = 0; i < w->st.narms; i++)
        w->st.arms[i].tok_s = 0.0;
    ui_view_message(&w->view, 0, 0.0, "session %lld %s; the picture stays: q quits",
                    (long long)w->st.session, why);
    w->dirty = UI_DIRTY_ALL;
}

/* The commands sent and not yet decided: applied or rejected goes to the
 * events line, and the row is forgotten. */
static int poll_fates(watcher *w)
{
    size_t keep = 0;
    for (size_t i = 0; i < w->nsent; i++) {
        sent_cmd *c = &w->sent[i];
        store_command_row row;
        if (store_command_get(w->s, c->id, &row, w->err))
            return -1;
        if (strcmp(row.state, "pending") == 0) {
            w->sent[keep++] = *c;
            continue;
        }
        char detail[REC_TEXT];
        if (strcmp(row.state, "applied") == 0) {
            snprintf(detail, sizeof detail, "%.32s applied at step %llu (command %lld)", c->what,
                     (unsigned long long)row.applied_step, (long long)c->id);
            ui_state_log_event(&w->st, c->arm, row.applied_step, UI_EV_COMMAND_APPLIED, detail);
        } else {
            snprintf(detail, sizeof detail, "%.32s rejected: %.90s (command %lld)", c->what,
                     row.reason, (long long)c->id);
            ui_state_log_event(&w->st, c->arm, ui_state_max_step(&w->st),
                               UI_EV_COMMAND_REJECTED, detail);
        }
        w->dirty |= UI_DIRTY_EVENTS;
    }
    w->nsent = keep;
    return 0;
}

static int poll_db(watcher *w)
{
    if (store_tail_poll(w->tail, on_record, w, w->err) < 0)
        return -1;
    if (w->nsent && poll_fates(w))
        return -1;
    if (load_heat(w))
        return -1;
    if (w->ended) {
        session_over(w, "has ended");
        return 0;
    }
    int64_t gone = store_tail_owner_gone(w->tail);
    if (gone) {
        /* what the next open of the database will record: shown, not written */
        for (size_t i = 0; i < w->st.narms; i++)
            if (!w->st.arms[i].done) {
                w->st.arms[i].status = RUN_CRASHED;
                w->st.arms[i].done = 1;
            }
        char why[96];
        snprintf(why, sizeof why, "has lost its process %lld (killed?)", (long long)gone);
        session_over(w, why);
        return 0;
    }
    update_rates(w);
    w->dirty |= UI_DIRTY_HEADER;
    return 0;
}

/* ---- steering: rows of the commands table ---- */

static void send_cmd(watcher *w, size_t arm, cmd_kind kind, const char *arg, const char *what)
{
    if (w->ended) {
        ui_view_message(&w->view, 1, 3.0, "the session has ended: nothing to steer");
        return;
    }
    int64_t run = arm == SIZE_MAX ? 0 : w->st.arms[arm].run;
    int64_t id;
    gl_error e;
    if (store_command_add(w->s, w->st.session, run, cmd_kind_name(kind), arg, &id, &e)) {
        ui_view_message(&w->view, 1, 5.0, "%s", e.msg);
        return;
    }
    const char *name = arm == SIZE_MAX ? "every arm" : w->st.arms[arm].name;
    ui_view_message(&w->view, 0, 3.0, "sent to %s: %s (command %lld)", name, what,
                    (long long)id);
    if (w->nsent < MAX_SENT) {
        sent_cmd *c = &w->sent[w->nsent++];
        c->id = id;
        c->arm = arm == SIZE_MAX ? UINT32_MAX : (uint32_t)arm;
        snprintf(c->what, sizeof c->what, "%s", what);
    }
}

/* dense soft random sigmoid topk topk-random stochastic oracle, round */
static gate_mode next_mode(uint32_t m)
{
    uint32_t n = m + 1;
    return n > GATE_ORACLE ? GATE_DENSE : (gate_mode)n;
}

static void steer(watcher *w, ui_action act)
{
    ui_state *st = &w->st;
    if (act == UI_ACT_PAUSE || act == UI_ACT_CHECKPOINT) {
        const char *kind = act == UI_ACT_CHECKPOINT ? "checkpoint"
                           : ui_state_all_paused(st) ? "resume" : "pause";
        cmd_kind k = act == UI_ACT_CHECKPOINT ? CMD_CHECKPOINT
                     : ui_state_all_paused(st) ? CMD_RESUME : CMD_PAUSE;
        send_cmd(w, SIZE_MAX, k, NULL, kind);
        return;
    }
    size_t i = w->view.sel;
    if (i >= st->narms)
        return;
    ui_arm *a = &st->arms[i];
    if (a->done) {
        ui_view_message(&w->view, 1, 3.0, "%s has ended: nothing to steer", a->name);
        return;
    }
    uint32_t mode = w->pend_mode[i] != NO_MODE ? w->pend_mode[i] : a->mode;
    uint32_t k = w->pend_k[i] ? w->pend_k[i] : a->k;
    char arg[32], what[64];
    switch (act) {
    case UI_ACT_SWAP:
    case UI_ACT_FORK: {
        gate_mode to = next_mode(mode);
        snprintf(arg, sizeof arg, "%s", gate_mode_name(to));
        snprintf(what, sizeof what, "%s %s", act == UI_ACT_SWAP ? "swap" : "fork", arg);
        send_cmd(w, i, act == UI_ACT_SWAP ? CMD_SWAP : CMD_FORK, arg, what);
        if (act == UI_ACT_SWAP)
            w->pend_mode[i] = to;
        return;
    }
    case UI_ACT_FREEZE:
        send_cmd(w, i, a->frozen ? CMD_UNFREEZE : CMD_FREEZE, NULL,
                 a->frozen ? "unfreeze" : "freeze");
        return;
    case UI_ACT_K_UP:
    case UI_ACT_K_DOWN: {
        uint32_t to = act == UI_ACT_K_UP ? k + 1 : k - 1;
        if (to < 1 || to > st->T) {
            ui_view_message(&w->view, 1, 2.0, "k stays within 1..%zu", st->T);
            return;
        }
        snprintf(arg, sizeof arg, "%u", to);
        snprintf(what, sizeof what, "k %s", arg);
        send_cmd(w, i, CMD_SET_K, arg, what);
        w->pend_k[i] = to;
        return;
    }
    default:
        return;
    }
}

/* ---- the loop ---- */

static int on_key(watcher *w, int ch)
{
    ui_view *v = &w->view;
    w->dirty |= UI_DIRTY_KEYS;
    if (v->help && ch != KEY_RESIZE) {
        v->help = 0;
        w->dirty |= UI_DIRTY_ALL;
        return 0;
    }
    ui_action act = ui_screen_action(v, ch);
    switch (act) {
    case UI_ACT_QUIT:
        return 1;
    case UI_ACT_PAUSE:
    case UI_ACT_SWAP:
    case UI_ACT_FREEZE:
    case UI_ACT_K_UP:
    case UI_ACT_K_DOWN:
    case UI_ACT_CHECKPOINT:
    case UI_ACT_FORK:
        steer(w, act);
        break;
    case UI_ACT_WRITE:
        w->dirty |= ui_screen_write(v, &w->st, w->opt, ui_state_max_step(&w->st));
        break;
    default:
        w->dirty |= ui_screen_view_action(w->scr, v, &w->st, act);
        break;
    }
    return 0;
}

static void draw(watcher *w, double now)
{
    w->dirty |= ui_view_settle(&w->view, state_word(w), now);
    ui_screen_draw(w->scr, &w->st, &w->view, w->dirty);
    w->dirty = 0;
    w->last_draw = now;
}

static int run_loop(watcher *w, int *signal_out)
{
    sigset_t sigs, old;
    gl_stop_signal_set(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    int rc = 0;
    w->dirty = UI_DIRTY_ALL;
    for (;;) {
        double now = gl_now();
        if (!w->ended && now >= w->next_poll) {
            w->next_poll = now + 1.0 / POLLS_PER_SECOND;
            if (poll_db(w)) {
                rc = -1;
                break;
            }
        }
        if (w->dirty && now - w->last_draw >= REDRAW_SECONDS)
            draw(w, now);
        int ch = ui_screen_getch(w->scr, KEY_WAIT_MS);
        int s = sigtimedwait(&sigs, NULL, &(struct timespec){0, 0});
        if (s > 0) {
            *signal_out = s;
            break;
        }
        /* the terminal closed and no SIGHUP reached us: the same way out,
         * rather than spinning on a terminal that reads end-of-file */
        if (ch == ERR && ui_screen_hung_up(w->scr)) {
            *signal_out = SIGHUP;
            break;
        }
        if (ch != ERR && on_key(w, ch))
            break;
        if (ch != ERR)
            draw(w, gl_now());   /* a key answers at once */
    }
    /* a signal still pending is taken, not left to kill us with the screen up */
    for (int s; (s = sigtimedwait(&sigs, NULL, &(struct timespec){0, 0})) > 0;)
        if (!*signal_out)
            *signal_out = s;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* The first run's configuration: the session's shape (every arm has it). A
 * session named before its process has added its runs is waited for. */
typedef struct {
    char *config;
} first_run;

static int take_config(void *ctx, const store_run_row *row)
{
    first_run *f = ctx;
    free(f->config);
    f->config = xstrdup(row->config_json);   /* newest first: the last is the first run */
    return 0;
}

static int read_shape(watcher *w, int *signal_out)
{
    first_run f = {0};
    sigset_t sigs, old;
    gl_stop_signal_set(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    int rc = 0;
    for (;;) {
        rc = store_list_runs(w->s, w->st.session, take_config, &f, w->err);
        if (rc || f.config)
            break;
        store_session_row row;
        if ((rc = store_get_session(w->s, w->st.session, &row, w->err)))
            break;
        int ended = row.ended[0] != 0;
        store_session_row_free(&row);
        if (ended) {
            rc = gl_fail(w->err, "session %lld ended without runs", (long long)w->st.session);
            break;
        }
        struct timespec wait = {0, 1000000000L / POLLS_PER_SECOND};
        int s = sigtimedwait(&sigs, NULL, &wait);
        if (s > 0) {
            *signal_out = s;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!rc && f.config) {
        int64_t session = w->st.session;
        ui_state_init(&w->st, runspec_json_size(f.config, "layers", 1),
                      runspec_json_size(f.config, "heads", 1), runspec_json_size(f.config, "T", 1),
                      runspec_json_size(f.config, "batch", 1),
                      runspec_json_size(f.config, "steps", 0));
        w->st.session = session;
    }
    free(f.config);
    return rc;
}

int ui_watch(const char *db_path, int64_t session, const ui_options *o, int *fallback,
             int *signal_out, gl_error *err)
{
    *fallback = 0;
    *signal_out = 0;
    watcher *w = xcalloc(1, sizeof *w);
    w->err = err;
    w->opt = o;
    int rc = -1;
    w->s = store_open(db_path, STORE_BROWSE, err);
    if (!w->s)
        goto out;
    w->tail = store_tail_open(w->s, session, err);
    if (!w->tail)
        goto out;
    ui_state_init(&w->st, 1, 1, 1, 0, 0);
    w->st.session = store_tail_session(w->tail);
    w->st.db_path = db_path;
    if (read_shape(w, signal_out) || *signal_out) {
        rc = *signal_out ? 0 : -1;
        goto out;
    }
    for (size_t i = 0; i < LIVE_MAX_ARMS; i++) {
        w->pend_mode[i] = NO_MODE;
        w->heat_step[i] = w->heat_read[i] = -1;
    }
    ui_view_init(&w->view, UI_WATCH);
    w->view.newest = store_tail_newest(w->tail);
    w->view.tok_s = NAN;
    int open_rc = ui_screen_open(&w->scr, o->out, o->in, o->term, o->allow_small, err);
    if (open_rc) {
        *fallback = open_rc != UI_SCREEN_TOO_SMALL;
        rc = open_rc;
        goto out;
    }
    rc = run_loop(w, signal_out);
out:
    ui_screen_close(w->scr);
    store_tail_close(w->tail);
    store_close(w->s);
    ui_state_free(&w->st);
    free(w);
    return rc;
}
