/* live_ui: the screen as a live_observer. on_record folds each telemetry
 * record into the ui_state (cheap, no curses); on_tick, every ~10 ms on the
 * main thread, reads keys, turns steering keys into commands (live_send), pulls
 * the selected arm's heatmap from its latest-value slot only when its version
 * moved, and redraws at most 10 times a second. The trainer's own fields are
 * never read: an arm's gate comes from its event records, the model shape
 * from the session's shape, and the step counter and heatmaps from the
 * session's functions (session_view.h). */
#include "ui.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gate.h"
#include "progress.h"
#include "store.h"
#include "ui_screen.h"

#define REDRAW_SECONDS 0.1
#define RATE_SECONDS 1.0
#define NO_MODE UINT32_MAX

struct ui_live {
    session_shape shape;
    ui_options opt;
    ui_screen *scr;
    ui_state st;
    ui_view view;
    unsigned dirty;
    double last_draw, rate_t;
    uint64_t rate_step[LIVE_MAX_ARMS];
    progress_pace pace[LIVE_MAX_ARMS]; /* steps per second over the last seconds, for the ETA */
    int quit;                          /* confirmed: stop every arm */
    int detach;                        /* d: the next tick asks the session to detach */
    /* a command sent and not yet answered by its event, so a second key
     * press builds on it instead of on the stale gate */
    uint32_t pend_mode[LIVE_MAX_ARMS], pend_k[LIVE_MAX_ARMS];
};

/* ---- --compare: past runs as ghosts ---- */

typedef struct {
    ui_series *s;
} series_sink;

static int add_metric(void *ctx, const store_metric_row *row)
{
    ui_series_add(((series_sink *)ctx)->s, row->step, row->value);
    return 0;
}

static int load_ghosts(ui_live *u, gl_error *err)
{
    if (!u->opt.ncompare)
        return 0;
    if (!u->opt.db_path)
        return gl_fail(err, "--compare: needs the database the runs are in (--db)");
    store *s = store_open(u->opt.db_path, STORE_BROWSE, err);
    if (!s)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < u->opt.ncompare && !rc; i++) {
        store_run_row row;
        if (store_get_run(s, u->opt.compare[i], &row, err)) {
            rc = -1;
            break;
        }
        ui_ghost *g = ui_state_add_ghost(&u->st, row.name, row.id);
        if (g) {
            /* a ghost takes the colour of the live arm that starts in its mode */
            for (size_t a = 0; a < u->shape.narms; a++)
                if (strcmp(gate_mode_name((gate_mode)u->shape.modes[a]), row.mode) == 0) {
                    g->color = a;
                    break;
                }
            series_sink tr = {&g->train}, va = {&g->val};
            rc = store_list_metrics(s, row.id, "train_loss", add_metric, &tr, err);
            if (!rc)
                rc = store_list_metrics(s, row.id, "val_loss", add_metric, &va, err);
        }
        store_run_row_free(&row);
    }
    store_close(s);
    return rc;
}

ui_live *ui_live_create(const session_shape *shape, const ui_options *o, gl_error *err)
{
    ui_live *u = xcalloc(1, sizeof *u);
    u->shape = *shape;
    u->opt = *o;
    const session_shape *sh = &u->shape;
    ui_state_init(&u->st, sh->layers, sh->heads, sh->T, sh->batch, sh->steps);
    u->st.db_path = sh->db_path;
    for (size_t i = 0; i < sh->narms; i++) {
        ui_arm *a = ui_state_arm(&u->st, i, sh->names[i]);
        /* the configured gate until the arm's start event says otherwise */
        a->mode = sh->modes[i];
        a->k = sh->k;
        a->frozen = sh->frozen;
        a->have_gate = 1;
    }
    for (size_t i = 0; i < LIVE_MAX_ARMS; i++)
        u->pend_mode[i] = NO_MODE;
    ui_view_init(&u->view, UI_LIVE);
    u->view.tok_s = NAN;
    if (load_ghosts(u, err)) {
        ui_live_free(u);
        return NULL;
    }
    return u;
}

int ui_live_start(ui_live *u, int *fallback, gl_error *err)
{
    *fallback = 0;
    int rc = ui_screen_open(&u->scr, u->opt.out, u->opt.in, u->opt.term, u->opt.allow_small, err);
    if (rc) {
        *fallback = rc != UI_SCREEN_TOO_SMALL;
        return -1;
    }
    u->dirty = UI_DIRTY_ALL;
    u->rate_t = gl_now();
    return 0;
}

/* ---- commands ---- */

static int send_cmd(ui_live *u, live *lv, size_t i, cmd_kind kind, uint32_t arg)
{
    cmd_record c = {.kind = kind, .arg = arg, .scripted = 0};
    if (live_send(lv, i, &c)) {
        const char *name = i < u->st.narms ? u->st.arms[i].name : "?";
        ui_view_message(&u->view, 1, 3.0, "%s: %s", name,
                        i < u->st.narms && u->st.arms[i].done ? "this arm has ended"
                                                              : "command queue full, try again");
        u->dirty |= UI_DIRTY_KEYS;
        return -1;
    }
    return 0;
}

/* dense soft random sigmoid topk topk-random stochastic oracle, round */
static gate_mode next_mode(uint32_t m)
{
    uint32_t n = m + 1;
    if (n > GATE_ORACLE)
        n = GATE_DENSE;
    return (gate_mode)n;
}

static void pause_resume(ui_live *u, live *lv)
{
    int resume = ui_state_all_paused(&u->st);
    size_t sent = 0;
    for (size_t i = 0; i < u->st.narms; i++)
        if (!u->st.arms[i].done)
            sent += send_cmd(u, lv, i, resume ? CMD_RESUME : CMD_PAUSE, 0) == 0;
    if (sent)
        ui_view_message(&u->view, 0, 2.0, "%s %zu arm%s", resume ? "resuming" : "pausing", sent,
                        sent == 1 ? "" : "s");
}

static void steer(ui_live *u, live *lv, ui_action act)
{
    size_t i = u->view.sel;
    if (i >= u->st.narms)
        return;
    ui_arm *a = &u->st.arms[i];
    if (a->done) {
        ui_view_message(&u->view, 1, 3.0, "%s has ended: nothing to steer", a->name);
        return;
    }
    uint32_t mode = u->pend_mode[i] != NO_MODE ? u->pend_mode[i] : a->mode;
    uint32_t k = u->pend_k[i] ? u->pend_k[i] : a->k;
    switch (act) {
    case UI_ACT_SWAP: {
        gate_mode to = next_mode(mode);
        if (send_cmd(u, lv, i, CMD_SWAP, to) == 0) {
            u->pend_mode[i] = to;
            ui_view_message(&u->view, 0, 2.0, "%s: gate %s -> %s", a->name,
                            gate_mode_name((gate_mode)mode), gate_mode_name(to));
        }
        return;
    }
    case UI_ACT_FREEZE:
        if (send_cmd(u, lv, i, a->frozen ? CMD_UNFREEZE : CMD_FREEZE, 0) == 0)
            ui_view_message(&u->view, 0, 2.0, "%s: %s the gate", a->name,
                            a->frozen ? "unfreezing" : "freezing");
        return;
    case UI_ACT_K_UP:
    case UI_ACT_K_DOWN: {
        uint32_t to = act == UI_ACT_K_UP ? k + 1 : k - 1;
        if (to < 1 || to > u->st.T) {
            ui_view_message(&u->view, 1, 2.0, "k stays within 1..%zu", u->st.T);
            return;
        }
        if (send_cmd(u, lv, i, CMD_SET_K, to) == 0) {
            u->pend_k[i] = to;
            ui_view_message(&u->view, 0, 2.0, "%s: k %u -> %u", a->name, k, to);
        }
        return;
    }
    case UI_ACT_FORK: {
        size_t n = live_arm_count(lv);
        if (n >= LIVE_MAX_ARMS) {
            ui_view_message(&u->view, 1, 3.0, "at most %d arms: no room for a fork",
                            LIVE_MAX_ARMS);
            return;
        }
        gate_mode to = next_mode(mode);
        if (send_cmd(u, lv, i, CMD_FORK, to) == 0)
            ui_view_message(&u->view, 0, 3.0, "forking %s as %s", a->name, gate_mode_name(to));
        return;
    }
    default:
        return;
    }
}

/* d: the session goes on in the background (live_detach.c). Without a
 * database nothing could follow it or re-attach: refused, on the screen. */
static void detach(ui_live *u, live *lv)
{
    ui_view *v = &u->view;
    char log[1024];
    if (!u->shape.db_path || live_session(lv) <= 0) {
        ui_view_message(v, 1, 5.0, "d: nothing is stored (no database), so nothing could "
                                   "re-attach: the screen stays");
        return;
    }
    if (ui_state_all_done(&u->st)) {
        ui_view_message(v, 0, 3.0, "d: every arm has ended: nothing to detach; q quits");
        return;
    }
    if (live_log_path(lv, log, sizeof log)) {
        ui_view_message(v, 1, 5.0, "d: the log file's path is too long: the screen stays");
        return;
    }
    ui_view_message(v, 0, 0.0, "detaching: output to %s; re-attach: gatelab watch %lld --db %s",
                    log, (long long)live_session(lv), u->shape.db_path);
    u->detach = 1;
}

static void on_key(ui_live *u, live *lv, int ch)
{
    ui_view *v = &u->view;
    u->dirty |= UI_DIRTY_KEYS;
    if (v->help && ch != KEY_RESIZE) {
        v->help = 0;
        u->dirty |= UI_DIRTY_ALL;
        return;
    }
    if (v->confirm_quit && ch != KEY_RESIZE) {
        v->confirm_quit = 0;
        if (ch == 'y' || ch == 'Y')
            u->quit = 1;
        else
            ui_view_message(v, 0, 2.0, "not quitting");
        return;
    }
    ui_action act = ui_screen_action(v, ch);
    switch (act) {
    case UI_ACT_PAUSE:
        pause_resume(u, lv);
        break;
    case UI_ACT_SWAP:
    case UI_ACT_FREEZE:
    case UI_ACT_K_UP:
    case UI_ACT_K_DOWN:
    case UI_ACT_FORK:
        steer(u, lv, act);
        break;
    case UI_ACT_CHECKPOINT: {
        size_t sent = 0;
        for (size_t i = 0; i < u->st.narms; i++)
            if (!u->st.arms[i].done)
                sent += send_cmd(u, lv, i, CMD_CHECKPOINT, 0) == 0;
        if (sent)
            ui_view_message(v, 0, 3.0, "checkpointing %zu arm%s", sent, sent == 1 ? "" : "s");
        break;
    }
    case UI_ACT_DETACH:
        detach(u, lv);
        break;
    case UI_ACT_WRITE:
        u->dirty |= ui_screen_write(v, &u->st, &u->opt, ui_state_max_step(&u->st));
        break;
    case UI_ACT_QUIT:
        if (ui_state_all_done(&u->st))
            u->quit = 1;
        else
            v->confirm_quit = 1;
        break;
    default:
        u->dirty |= ui_screen_view_action(u->scr, v, &u->st, act);
        break;
    }
}

/* ---- observer ---- */

static void on_record(void *ctx, live *lv, const tel_record *r)
{
    ui_live *u = ctx;
    if (r->arm >= u->st.narms)
        /* the name is fixed before the arm's thread starts, never after */
        ui_state_arm(&u->st, r->arm, live_arm_label(lv, r->arm));
    if (r->kind == REC_EVENT && r->arm < LIVE_MAX_ARMS) {
        event_kind k = (event_kind)r->u.event.kind;
        if (k == EV_SWAP || k == EV_ERROR)
            u->pend_mode[r->arm] = NO_MODE;
        if (k == EV_SET_K || k == EV_ERROR)
            u->pend_k[r->arm] = 0;
    }
    u->dirty |= ui_state_record(&u->st, r);
}

static void poll_heat(ui_live *u, live *lv)
{
    size_t i = u->view.sel;
    if (i >= u->st.narms || i >= live_arm_count(lv))
        return;
    ui_arm *ua = &u->st.arms[i];
    uint64_t newest = live_heat_version(lv, i);
    if (!newest || newest == ua->heat_version)
        return;   /* nothing new (or no heatmaps at all): nothing allocated */
    heatmap_snapshot *heat = ui_state_heat(&u->st, i);
    uint64_t ver = live_heat_read(lv, i, ua->heat_version, heat);
    if (!ver)
        return;
    ua->heat_version = ver;
    ua->heat_step = heat->step;
    ua->have_heat = 1;
    u->dirty |= UI_DIRTY_HEAT;
}

static void update_rates(ui_live *u, live *lv, double now)
{
    double dt = now - u->rate_t;
    if (dt < RATE_SECONDS)
        return;
    double total = 0.0;
    size_t tokens_per_step = u->st.B * u->st.T;
    for (size_t i = 0; i < u->st.narms; i++) {
        if (i >= live_arm_count(lv))
            continue;
        uint64_t step = live_arm_step(lv, i);
        ui_arm *ua = &u->st.arms[i];
        double rate = step >= u->rate_step[i]
                          ? (double)(step - u->rate_step[i]) * (double)tokens_per_step / dt
                          : 0.0;
        ua->tok_s = ua->done ? 0.0 : rate;
        if (ua->step < step)
            ua->step = step;
        u->rate_step[i] = step;
        if (!isnan(ua->tok_s))
            total += ua->tok_s;
        /* a paused arm restarts its window, so the pause is not counted as
         * a slow pace once it resumes */
        if (ua->status == RUN_PAUSED)
            u->pace[i].started = 0;
        else
            progress_pace_feed(&u->pace[i], step, now);
    }
    u->view.tok_s = total;
    /* the session ends with its slowest running arm */
    double eta = NAN;
    int running = 0;
    for (size_t i = 0; i < u->st.narms; i++) {
        const ui_arm *ua = &u->st.arms[i];
        if (ua->done || ua->status == RUN_PAUSED)
            continue;
        uint64_t left = ua->step < u->st.steps ? u->st.steps - ua->step : 0;
        double t = progress_eta(&u->pace[i], left);
        eta = !running ? t : isnan(t) || isnan(eta) ? NAN : fmax(eta, t);
        running = 1;
    }
    u->view.eta = eta;
    u->rate_t = now;
    u->dirty |= UI_DIRTY_HEADER;
}

static const char *state_word(const ui_live *u)
{
    if (u->quit)
        return "STOPPING";
    if (ui_state_all_done(&u->st))
        return "DONE";
    if (ui_state_all_paused(&u->st))
        return "PAUSED";
    return "RUNNING";
}

static void draw(ui_live *u, double now)
{
    u->dirty |= ui_view_settle(&u->view, state_word(u), now);
    ui_screen_draw(u->scr, &u->st, &u->view, u->dirty);
    u->dirty = 0;
    u->last_draw = now;
}

static int on_tick(void *ctx, live *lv)
{
    ui_live *u = ctx;
    if (!u->st.session)
        u->st.session = live_session(lv);
    for (size_t i = 0; i < u->st.narms; i++)
        if (!u->st.arms[i].run)
            u->st.arms[i].run = live_run_id(lv, i);
    int ch;
    while ((ch = ui_screen_getch(u->scr, 0)) != ERR)
        on_key(u, lv, ch);
    double now = gl_now();
    if (u->quit) {
        /* live_run stops calling us once we ask to stop: say so now */
        draw(u, now);
        return 1;
    }
    if (u->detach) {
        /* on the screen while the session parks its threads */
        u->detach = 0;
        draw(u, now);
        return LIVE_ASK_DETACH;
    }
    poll_heat(u, lv);
    update_rates(u, lv, now);
    if (u->dirty && now - u->last_draw >= REDRAW_SECONDS)
        draw(u, now);
    return 0;
}

live_observer ui_live_observer(ui_live *u)
{
    return (live_observer){.on_record = on_record, .on_tick = on_tick, .ctx = u};
}

/* ---- after the session ---- */

int ui_live_linger(ui_live *u, const live_result *res)
{
    if (!u->scr || res->signal || u->quit)
        return 0;
    /* the arm threads are gone: this thread alone takes the stop signals, as
     * the session loop did */
    sigset_t sigs, old;
    gl_stop_signal_set(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    ui_view *v = &u->view;
    v->state = "DONE";
    for (size_t i = 0; i < u->st.narms; i++)
        u->st.arms[i].tok_s = 0.0;
    v->tok_s = 0.0;
    v->eta = NAN;
    ui_view_message(v, 0, 0.0, "every arm has ended; the screen stays for a look: q quits");
    u->dirty = UI_DIRTY_ALL;
    int sig = 0;
    for (;;) {
        if (u->dirty)
            draw(u, gl_now());
        v->state = "DONE";
        int ch = ui_screen_getch(u->scr, 100);
        /* the terminal closed and no SIGHUP reached us: the same way out,
         * rather than spinning on a terminal that reads end-of-file */
        if (ch == ERR && ui_screen_hung_up(u->scr)) {
            sig = SIGHUP;
            break;
        }
        if (ch != ERR) {
            u->dirty |= UI_DIRTY_KEYS;
            if (v->help && ch != KEY_RESIZE) {
                v->help = 0;
                u->dirty = UI_DIRTY_ALL;
                continue;
            }
            ui_action act = ui_screen_action(v, ch);
            if (act == UI_ACT_QUIT)
                break;
            if (act == UI_ACT_WRITE) {
                u->dirty |= ui_screen_write(v, &u->st, &u->opt, ui_state_max_step(&u->st));
                continue;
            }
            unsigned d = ui_screen_view_action(u->scr, v, &u->st, act);
            if (!d && act != UI_ACT_NONE)
                ui_view_message(v, 0, 0.0, "the session is over: only viewing keys work; q quits");
            u->dirty |= d;
        }
        struct timespec zero = {0, 0};
        int s = sigtimedwait(&sigs, NULL, &zero);
        if (s > 0) {
            sig = s;
            break;
        }
    }
    /* a signal still pending is taken, not left to kill us with the screen up */
    for (int s; (s = sigtimedwait(&sigs, NULL, &(struct timespec){0, 0})) > 0;)
        if (!sig)
            sig = s;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return sig;
}

void ui_live_stop(ui_live *u)
{
    if (u && u->scr) {
        ui_screen_close(u->scr);
        u->scr = NULL;
    }
}

const ui_state *ui_live_state(const ui_live *u)
{
    return &u->st;
}

void ui_live_free(ui_live *u)
{
    if (!u)
        return;
    ui_live_stop(u);
    ui_state_free(&u->st);
    free(u);
}
