/* header: the two header lines (session, step, throughput and state; then
 * every arm with the gate it runs now), the routing-benefit line and the
 * events lines. The gate of an arm is the one its latest event reported. */
#include "ui_panels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gate.h"
#include "progress.h"

static const char *status_word(const ui_arm *a)
{
    switch (a->status) {
    case RUN_PAUSED:
        return " paused";
    case RUN_FINISHED:
        return " finished";
    case RUN_STOPPED:
        return " stopped";
    case RUN_DIVERGED:
        return " DIVERGED";
    case RUN_CRASHED:
        return " crashed";
    case RUN_FAILED:
        return " FAILED";
    default:
        return "";
    }
}

static int arm_label(char *buf, size_t n, const ui_state *st, size_t i, int compact)
{
    const ui_arm *a = &st->arms[i];
    const char *mode = a->have_gate ? gate_mode_name((gate_mode)a->mode) : "?";
    if (compact)
        return snprintf(buf, n, "%zu %s=%s/%u%s%s", i + 1, a->name, mode, a->k,
                        a->frozen ? "F" : "", status_word(a));
    char balance[24] = "";
    if (isfinite(a->expert_balance) && a->expert_balance > 0.0)   /* experts: their load */
        snprintf(balance, sizeof balance, " bal %.2f", a->expert_balance);
    return snprintf(buf, n, "%zu %s gate=%s k=%u%s%s @%llu%s", i + 1, a->name, mode, a->k,
                    a->frozen ? " frozen" : "", balance, (unsigned long long)a->step,
                    status_word(a));
}

void ui_header_draw(ui_rect r, const ui_state *st, const ui_view *v)
{
    ui_clear(r);
    int x = r.x, w = r.w;
    char buf[256];
    int used = ui_text(r.y, x, w, ui_attr(UI_ATTR_TITLE), " gatelab");
    if (v->mode == UI_REPLAY)
        snprintf(buf, sizeof buf, " | replay of session %lld | step %llu (evaluation %zu of %zu)",
                 (long long)st->session, (unsigned long long)v->cursor, v->cursor_index + 1,
                 v->cursor_count);
    else {
        char steps[32] = "", tok[32];
        if (st->steps)
            snprintf(steps, sizeof steps, " of %zu", st->steps);
        ui_fmt_num(tok, sizeof tok, isnan(v->tok_s) ? 0.0 : v->tok_s);
        /* how long the rest takes at the current speed: "?" until a pace
         * is measured or while every arm is paused; gone once all ended */
        char eta[40] = "", when[24];
        if (!ui_state_all_done(st)) {
            progress_fmt_time(when, sizeof when, v->eta);
            snprintf(eta, sizeof eta, " | ETA %s", when);
        }
        if (st->session)
            snprintf(buf, sizeof buf, " | %s %lld%s | step %llu%s | %s tok/s%s",
                     v->mode == UI_WATCH ? "watching session" : "session", (long long)st->session,
                     v->newest ? " (newest)" : "", (unsigned long long)ui_state_max_step(st),
                     steps, tok, eta);
        else
            snprintf(buf, sizeof buf, " | not stored | step %llu%s | %s tok/s%s",
                     (unsigned long long)ui_state_max_step(st), steps, tok, eta);
    }
    used += ui_text(r.y, x + used, w - used, A_NORMAL, buf);
    const char *state = v->state ? v->state : "";
    ui_attr_role role = strcmp(state, "RUNNING") == 0   ? UI_ATTR_OK
                        : strcmp(state, "PAUSED") == 0  ? UI_ATTR_WARN
                        : strcmp(state, "STOPPING") == 0 ? UI_ATTR_WARN
                        : strcmp(state, "ENDED") == 0   ? UI_ATTR_WARN
                                                        : UI_ATTR_TITLE;
    int sl = (int)strlen(state) + 2;
    if (used + sl + 1 <= w)
        ui_textf(r.y, x + w - sl, sl, ui_attr(role), " %s ", state);

    /* the arms: full labels when they fit, compact ones otherwise */
    int total = 0;
    for (size_t i = 0; i < st->narms; i++)
        total += arm_label(buf, sizeof buf, st, i, 0) + 2;
    int compact = total > w - 1;
    int ax = x + 1;
    for (size_t i = 0; i < st->narms && ax < x + w; i++) {
        arm_label(buf, sizeof buf, st, i, compact);
        attr_t at = ui_arm_attr(st->arms[i].color) | A_BOLD;
        if (i == v->sel)
            at |= A_REVERSE;
        ax += ui_text(r.y + 1, ax, x + w - ax, at, buf);
        ax += 2;
    }
}

void ui_routing_draw(ui_rect r, const ui_state *st, const ui_view *v)
{
    (void)v;
    ui_clear(r);
    int used = ui_text(r.y, r.x, r.w, ui_attr(UI_ATTR_TITLE), " Routing benefit ");
    ui_routing rb;
    if (!ui_state_routing(st, &rb)) {
        ui_text(r.y, r.x + used, r.w - used, ui_attr(UI_ATTR_DIM),
                "needs a learned (soft or topk), a random and a dense arm with val evaluations");
        return;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "@%llu%s ppl %s %.3f %s %.3f %s %.3f",
             (unsigned long long)rb.step, rb.clean != UINT64_MAX ? " (last clean step)" : "",
             st->arms[rb.learned].name, rb.ppl_l, st->arms[rb.random].name, rb.ppl_r,
             st->arms[rb.dense].name, rb.ppl_d);
    used += ui_text(r.y, r.x + used, r.w - used, A_NORMAL, buf);
    if (isnan(rb.relative))
        snprintf(buf, sizeof buf, " | benefit %+.3f ppl (random within 1%% of dense)",
                 rb.benefit);
    else
        snprintf(buf, sizeof buf, " | benefit %+.3f ppl = %.2f of random-dense (0: absorbed)",
                 rb.benefit, rb.relative);
    ui_text(r.y, r.x + used, r.w - used, A_BOLD, buf);
}

void ui_events_draw(ui_rect r, const ui_state *st, const ui_view *v)
{
    (void)v;
    ui_clear(r);
    int lw = ui_text(r.y, r.x, r.w, ui_attr(UI_ATTR_TITLE), " Events ");
    for (int row = 0; row < r.h; row++) {
        const ui_event *e = ui_state_event_back(st, (size_t)row);
        int x = r.x + lw, w = r.w - lw;
        if (!e) {
            if (row == 0)
                ui_text(r.y, x, w, ui_attr(UI_ATTR_DIM), "none yet");
            break;
        }
        int cmd = e->kind == UI_EV_COMMAND_APPLIED || e->kind == UI_EV_COMMAND_REJECTED;
        const char *name = e->arm < st->narms ? st->arms[e->arm].name : cmd ? "all" : "?";
        attr_t at = e->arm < st->narms ? ui_arm_attr(st->arms[e->arm].color) : A_NORMAL;
        int bad = e->kind == EV_ERROR || e->kind == EV_DIVERGED ||
                  e->kind == UI_EV_COMMAND_REJECTED;
        int used = ui_textf(r.y + row, x, w, row ? ui_attr(UI_ATTR_DIM) : A_NORMAL, "%7llu ",
                            (unsigned long long)e->step);
        used += ui_textf(r.y + row, x + used, w - used, at | A_BOLD, "%s ", name);
        ui_textf(r.y + row, x + used, w - used, bad ? ui_attr(UI_ATTR_BAD) : A_NORMAL, "%s %s",
                 cmd ? "command" : event_kind_name((event_kind)e->kind), e->detail);
    }
}
