/* loss: the main chart. Its first view is train and val loss of every arm
 * overlaid, with ghosts of past runs (--compare) behind them; `m` turns it to
 * one metric of every arm (val or train loss alone, F1 vs oracle, mass kept,
 * gate grad norm, grad norm, density, flip rate, lr, tokens/s, expert
 * balance), the chart table below saying which axis and smoothing apply. `v`
 * and `p` hide or pin arms' curves, `z` narrows the x axis to the last N
 * steps. Per-step curves are smoothed by a debiased EMA *before* they are
 * downsampled to the plot's pixel columns, and in log space when the axis is
 * logarithmic, so toggling the axis never changes which wiggles survive.
 * Val points are drawn raw (one per evaluation). */
#include "ui_panels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "smooth.h"

#define YLABEL_W 7

typedef struct {
    double last, min, max;  /* of the curve as drawn (smoothed), in its units */
} curve_stats;

/* Where a chart's curves come from: an arm's UI_SER_* series, or these. */
enum { SRC_NONE = UI_CURVE_NONE, SRC_VAL = UI_CURVE_VAL, SRC_TRAIN = UI_CURVE_TRAIN };

typedef struct {
    const char *name;       /* in messages: "no arm has <name>" */
    const char *title;      /* the panel's title, with the unit */
    const char *axis;       /* the unit in the axis corner, at most 6 columns */
    int src, src2;          /* the line, and val points drawn over it (the loss view) */
    int log_ok;             /* `l` applies (a loss: always > 0) */
    int smooth_ok;          /* `s` applies (a per-step curve) */
    const char *none;       /* why an arm may lack it */
} chart_def;

/* The units: losses in nats per token; F1, mass kept, density and flip rate
 * are shares in [0, 1] (means over layers of the means over heads); norms
 * are L2 norms of gradients; lr the learning rate the step used (warm-up
 * and cosine included); tokens/s the arm's own training throughput between
 * evaluations; expert balance E * sum of squared expert shares (1: even);
 * the absorption index (F1_t - F1_0) / (1 - F1_0) of issue 16 (0: the
 * oracle has not moved toward the mask since step 0, 1: it is the mask; it
 * can be negative); oracle drift the share of the oracle's top-k that changed
 * since the previous evaluation.
 * Only losses are always positive, so only they may have a log axis: an lr
 * decays to 0 with min_lr_frac 0, a hard gate's gradient norm can be 0. */
static const chart_def charts[UI_CHART_COUNT] = {
    [UI_CHART_LOSS] = {"loss", "Loss", "nats", SRC_TRAIN, SRC_VAL, 1, 1, NULL},
    [UI_CHART_VAL_LOSS] = {"val loss", "Val loss (nats/token)", "nats", SRC_VAL, SRC_NONE, 1, 0,
                           NULL},
    [UI_CHART_TRAIN_LOSS] = {"train loss", "Train loss (nats/token)", "nats", SRC_TRAIN,
                             SRC_NONE, 1, 1, NULL},
    [UI_CHART_F1] = {"F1 vs oracle", "F1 vs oracle (0-1)", "F1", UI_SER_F1, SRC_NONE, 0, 0,
                     "dense, stochastic and oracle arms have no gate mask to compare"},
    [UI_CHART_MASS_KEPT] = {"mass kept", "Mass kept (share of attn)", "share", UI_SER_MASS_KEPT,
                            SRC_NONE, 0, 0, "arms without a gate mask keep every key"},
    [UI_CHART_GATE_GRAD_NORM] = {"gate grad norm", "Gate grad norm (L2)", "L2",
                                 UI_SER_GATE_GRAD_NORM, SRC_NONE, 0, 0,
                                 "dense, stochastic and oracle arms have no gate weights"},
    [UI_CHART_GRAD_NORM] = {"grad norm", "Grad norm (L2, all)", "L2", UI_SER_GRAD_NORM,
                            SRC_NONE, 0, 1, "it comes with per-step records only"},
    [UI_CHART_DENSITY] = {"density", "Density (kept/visible)", "share", UI_SER_DENSITY,
                          SRC_NONE, 0, 0, "it comes with per-layer records only"},
    [UI_CHART_FLIP_RATE] = {"flip rate", "Flip rate (per eval)", "share", UI_SER_FLIP_RATE,
                            SRC_NONE, 0, 0,
                            "it needs a gate mask and an earlier evaluation to compare with"},
    [UI_CHART_LR] = {"lr", "Learning rate", "lr", UI_SER_LR, SRC_NONE, 0, 0,
                     "it comes with per-step records only"},
    [UI_CHART_TOKENS_PER_S] = {"tokens/s", "Tokens/s (per arm)", "tok/s", UI_SER_TOKENS_PER_S,
                               SRC_NONE, 0, 0, NULL},
    [UI_CHART_EXPERT_BALANCE] = {"expert balance", "Expert balance (1 = even)", "E*s^2",
                                 UI_SER_EXPERT_BALANCE, SRC_NONE, 0, 0,
                                 "only arms with experts (+moe) have one"},
    [UI_CHART_ABSORPTION] = {"absorption index", "Absorption index (F1-F1_0)/(1-F1_0)", "index",
                             UI_SER_ABSORPTION, SRC_NONE, 0, 0,
                             "it needs a gate mask and the evaluation at step 0"},
    [UI_CHART_ORACLE_DRIFT] = {"oracle drift", "Oracle drift (per eval)", "share",
                               UI_SER_ORACLE_DRIFT, SRC_NONE, 0, 0,
                               "it needs an earlier evaluation to compare with"},
};

void ui_chart_describe(int chart, ui_chart_info *out)
{
    const chart_def *cd = &charts[chart >= 0 && chart < UI_CHART_COUNT ? chart : UI_CHART_LOSS];
    *out = (ui_chart_info){.name = cd->name, .title = cd->title, .unit = cd->axis,
                           .line = cd->src, .points = cd->src2, .log_ok = cd->log_ok,
                           .smooth_ok = cd->smooth_ok};
}

static const ui_series *arm_src(const ui_arm *a, int src)
{
    if (src == SRC_TRAIN)
        return &a->train;
    if (src == SRC_VAL)
        return &a->val;
    if (src >= 0 && src < UI_SER_COUNT)
        return &a->metric[src];
    return NULL;
}

static const ui_series *ghost_src(const ui_ghost *g, int src)
{
    return src == SRC_TRAIN ? &g->train : src == SRC_VAL ? &g->val : NULL;
}

/* Folds a series into pixel columns: sum[px] and cnt[px] of the (smoothed)
 * values, in log space when log_y. beta = 0: no smoothing. */
static void bucket(const ui_series *s, double beta, int log_y, uint64_t x0, uint64_t x1, int pw,
                   double *sum, uint32_t *cnt, curve_stats *cs)
{
    memset(sum, 0, (size_t)pw * sizeof *sum);
    memset(cnt, 0, (size_t)pw * sizeof *cnt);
    cs->last = NAN;
    cs->min = INFINITY;
    cs->max = -INFINITY;
    if (!s)
        return;
    size_t np = ui_series_points(s);
    smooth_ema ema;
    smooth_ema_init(&ema, beta);
    double span = (double)(x1 - x0);
    for (size_t i = 0; i < np; i++) {
        uint64_t step;
        double v, lv;
        uint32_t n;
        ui_series_point(s, i, &step, &v, &lv, &n);
        double x = smooth_ema_push(&ema, log_y ? lv : v, n);
        double shown = log_y ? exp(x) : x;
        cs->last = shown;
        if (shown < cs->min)
            cs->min = shown;
        if (shown > cs->max)
            cs->max = shown;
        if (step < x0 || step > x1)
            continue;
        int px = (int)((double)(step - x0) / span * (pw - 1) + 0.5);
        if (px < 0 || px >= pw)
            continue;
        sum[px] += x;
        cnt[px]++;
    }
}

static void range_of(const double *sum, const uint32_t *cnt, int pw, double *lo, double *hi)
{
    for (int px = 0; px < pw; px++)
        if (cnt[px]) {
            double y = sum[px] / cnt[px];
            if (y < *lo)
                *lo = y;
            if (y > *hi)
                *hi = y;
        }
}

static int to_py(double y, double lo, double hi, int ph)
{
    double f = (hi - y) / (hi - lo);
    int py = (int)lround(f * (ph - 1));
    return py < 0 ? 0 : py >= ph ? ph - 1 : py;
}

/* Draws one bucketed curve: train as a line of dots, val as an 'o' per
 * evaluation (at most one every other cell, so the line under it shows).
 * The last pixel drawn comes back through lx, ly (-1 when empty). */
static void draw_curve(ui_canvas *c, const double *sum, const uint32_t *cnt, int pw, double lo,
                       double hi, attr_t a, int val, int *lx, int *ly)
{
    int px_prev = -1, py_prev = -1, last_mark_col = -100;
    for (int px = 0; px < pw; px++) {
        if (!cnt[px])
            continue;
        int py = to_py(sum[px] / cnt[px], lo, hi, c->ph);
        if (val) {
            if (px / c->sx - last_mark_col >= 2) {
                ui_canvas_mark(c, px / c->sx, py / c->sy, 'o', a | A_BOLD);
                last_mark_col = px / c->sx;
            }
        } else if (px_prev >= 0) {
            ui_canvas_line(c, px_prev, py_prev, px, py, a);
        } else {
            ui_canvas_dot(c, px, py, a);
        }
        px_prev = px;
        py_prev = py;
    }
    *lx = px_prev;
    *ly = py_prev;
}

void ui_loss_scratch_free(ui_loss_scratch *sc)
{
    ui_canvas_free(&sc->canvas);
    free(sc->sum);
    free(sc->cnt);
    memset(sc, 0, sizeof *sc);
}

static void fmt_loss(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.3f", v);
}

/* A metric's value in at most 6 columns: 12.3k, 0.532, 3.0e-4. */
static void fmt_value(char *buf, size_t n, double v)
{
    double a = fabs(v);
    if (!isfinite(v))
        snprintf(buf, n, "-");
    else if (a >= 1e4)
        ui_fmt_num(buf, n, v);
    else if (a != 0.0 && a < 1e-3) {
        char e[32];
        snprintf(e, sizeof e, "%.1e", v);   /* 3.0e-04 -> 3.0e-4 */
        char *x = strstr(e, "e-0");
        if (x)
            memmove(x + 2, x + 3, strlen(x + 3) + 1);
        snprintf(buf, n, "%s", e);
    } else
        snprintf(buf, n, "%.3g", v);
}

static int name_width(const ui_state *st)
{
    /* names line up; an MoE arm's name (dense+moe-random) is longer than a mode */
    int name_w = 9;
    for (size_t j = 0; j < st->narms; j++) {
        int len = (int)strlen(st->arms[j].name);
        name_w = len > name_w ? (len < 16 ? len : 16) : name_w;
    }
    return name_w;
}

/* The start of an arm's legend row: its number and name, and [pinned]; 0
 * when the arm's curves are not drawn (the row says why, and ends there). */
static int legend_head(int y, int x, int w, const ui_state *st, const ui_view *v, size_t i,
                       int *used)
{
    const ui_arm *a = &st->arms[i];
    attr_t at = ui_arm_attr(a->color);
    int name_w = name_width(st);
    *used = ui_textf(y, x, w, at | A_BOLD, "%zu %-*.*s", i + 1, name_w, name_w, a->name);
    if (!ui_view_shows_arm(v, i)) {
        if (v->pinned)
            ui_textf(y, x + *used, w - *used, ui_attr(UI_ATTR_DIM), " not drawn: %s is pinned",
                     st->arms[v->pinned - 1].name);
        else
            ui_text(y, x + *used, w - *used, ui_attr(UI_ATTR_DIM), " hidden (v shows it)");
        return 0;
    }
    if (v->pinned)
        *used += ui_text(y, x + *used, w - *used, at | A_REVERSE, " [pinned]");
    return 1;
}

static void legend_row(int y, int x, int w, const ui_state *st, const ui_view *v, size_t i,
                       const curve_stats *tr, double beta)
{
    const ui_arm *a = &st->arms[i];
    int used;
    if (!legend_head(y, x, w, st, v, i, &used))
        return;
    char now[16], mn[16], val[16], best[16];
    fmt_loss(now, sizeof now, tr->last);
    fmt_loss(mn, sizeof mn, tr->min);
    fmt_loss(val, sizeof val, a->val.count ? a->val.last : NAN);
    fmt_loss(best, sizeof best, a->val.count ? a->val.min : NAN);
    attr_t at = ui_arm_attr(a->color);
    const char *tilde = beta > 0 ? "~" : "";
    char wide[128];
    snprintf(wide, sizeof wide, " train%s %s min %s  val %s best %s @%llu", tilde, now, mn, val,
             best, (unsigned long long)a->val.min_step);
    if (!a->val.count)
        ui_textf(y, x + used, w - used, at, " train%s %s min %s  val -", tilde, now, mn);
    else if ((int)strlen(wide) > w - used)   /* a narrow panel: the numbers, fewer words */
        ui_textf(y, x + used, w - used, at, " tr%s %s (%s) val %s (%s)", tilde, now, mn, val,
                 best);
    else
        ui_textf(y, x + used, w - used, at, "%s", wide);
}

/* A one-metric chart's legend row: the curve's latest, lowest and highest
 * value as drawn (smoothed when `~`), or "-" when the arm has none. */
static void metric_row(int y, int x, int w, const ui_state *st, const ui_view *v, size_t i,
                       const curve_stats *cs, double beta, int is_loss)
{
    const ui_arm *a = &st->arms[i];
    int used;
    if (!legend_head(y, x, w, st, v, i, &used))
        return;
    attr_t at = ui_arm_attr(a->color);
    if (!isfinite(cs->last)) {
        ui_text(y, x + used, w - used, ui_attr(UI_ATTR_DIM), " - (none for this arm)");
        return;
    }
    char now[16], mn[16], mx[16];
    void (*fmt)(char *, size_t, double) = is_loss ? fmt_loss : fmt_value;
    fmt(now, sizeof now, cs->last);
    fmt(mn, sizeof mn, cs->min);
    fmt(mx, sizeof mx, cs->max);
    ui_textf(y, x + used, w - used, at, " now%s %s  min %s  max %s", beta > 0 ? "~" : "", now, mn,
             mx);
}

/* The x range of the arms drawn: their train curves (every chart shares
 * them, so `m` never moves the axis), narrowed by `z` to the last N steps
 * (in a replay the N steps up to the cursor). 0 when no arm drawn has a
 * step yet. */
static int x_range(const ui_state *st, const ui_view *v, uint64_t *x0_out, uint64_t *x1_out)
{
    uint64_t x0 = UINT64_MAX, x1 = 0;
    for (size_t i = 0; i < st->narms; i++) {
        const ui_series *s = &st->arms[i].train;
        size_t np = ui_series_points(s);
        if (!np || !ui_view_shows_arm(v, i))
            continue;
        uint64_t a, b;
        double dv, dlv;
        uint32_t dn;
        ui_series_point(s, 0, &a, &dv, &dlv, &dn);
        ui_series_point(s, np - 1, &b, &dv, &dlv, &dn);
        uint64_t from = st->arms[i].start_step < a ? st->arms[i].start_step : a;
        if (from < x0)
            x0 = from;
        if (b > x1)
            x1 = b;
    }
    if (x0 == UINT64_MAX)
        return 0;
    uint64_t win = ui_zoom_steps[v->zoom % UI_ZOOM_LEVELS];
    if (win) {
        if (v->mode == UI_REPLAY && v->cursor >= x0 && v->cursor < x1)
            x1 = v->cursor;
        if (x1 - x0 > win)
            x0 = x1 - win;
    }
    if (x1 <= x0)
        x1 = x0 + 1;
    *x0_out = x0;
    *x1_out = x1;
    return 1;
}

/* Why nothing is drawn: no arm shown, nothing yet, or no arm has it. */
static const char *why_empty(const ui_state *st, const ui_view *v, const chart_def *cd,
                             char *buf, size_t n)
{
    int any_hidden = 0, evaluated = 0;
    for (size_t i = 0; i < st->narms; i++) {
        const ui_arm *a = &st->arms[i];
        if (arm_src(a, cd->src)->count && !ui_view_shows_arm(v, i))
            any_hidden = 1;
        if (a->val.count)
            evaluated = 1;
    }
    if (any_hidden)
        snprintf(buf, n, "the arms with %s are hidden (v / p)", cd->name);
    else if (!evaluated && cd->src != SRC_TRAIN && cd->src != UI_SER_GRAD_NORM &&
             cd->src != UI_SER_LR)
        snprintf(buf, n, "waiting for the first evaluation...");
    else if (cd->none)
        snprintf(buf, n, "no arm has %s: %s", cd->name, cd->none);
    else
        snprintf(buf, n, "no arm has %s", cd->name);
    return buf;
}

/* Arm numbers at the ends of their curves, one row apart when curves end in
 * the same cell, so each arm keeps a glyph of its own without colour. */
static void end_labels(const ui_state *st, const int *end_row, const int *end_col, int py0,
                       int px0, int pcol, int prow)
{
    int taken_row[LIVE_MAX_ARMS], taken_col[LIVE_MAX_ARMS], ntaken = 0;
    for (size_t i = 0; i < st->narms; i++) {
        if (end_col[i] < 0 || end_col[i] + 1 >= pcol + 1)
            continue;
        int col = end_col[i] + 1, row = end_row[i];
        for (int d = 0; d < 2 * LIVE_MAX_ARMS; d++) {
            int r = end_row[i] + (d % 2 ? -(d + 1) / 2 : d / 2);
            if (r < 0 || r >= prow)
                continue;
            int clash = 0;
            for (int t = 0; t < ntaken; t++)
                clash |= taken_row[t] == r && taken_col[t] == col;
            if (!clash) {
                row = r;
                break;
            }
        }
        taken_row[ntaken] = row;
        taken_col[ntaken++] = col;
        ui_textf(py0 + row, px0 + col, 1, ui_arm_attr(st->arms[i].color) | A_BOLD, "%zu",
                 (i + 1) % 10);
    }
}

void ui_loss_draw(ui_rect r, const ui_state *st, const ui_view *v, ui_loss_scratch *sc)
{
    ui_clear(r);
    const chart_def *cd = &charts[v->chart >= 0 && v->chart < UI_CHART_COUNT ? v->chart : 0];
    int loss_view = cd->src2 != SRC_NONE;
    int log_y = v->log_y && cd->log_ok;
    double beta = cd->smooth_ok ? ui_smooth_beta[v->smooth] : 0.0;
    uint64_t win = ui_zoom_steps[v->zoom % UI_ZOOM_LEVELS];
    char zoom[32] = "all steps", right[96];
    if (win)
        snprintf(zoom, sizeof zoom, "last %llu steps", (unsigned long long)win);
    char ema[24] = "raw";
    if (beta > 0)
        snprintf(ema, sizeof ema, "EMA %.3g", beta);
    snprintf(right, sizeof right, "%s | %s | %s", log_y ? "log y" : "linear y", ema, zoom);
    /* a narrow panel keeps the window, which the axis alone would not say */
    if ((int)(strlen(cd->title) + strlen(right)) + 7 > r.w)
        snprintf(right, sizeof right, "%s", zoom);
    ui_title(r.y, r.x, r.w, cd->title, right);
    int avail = r.h - 1;
    /* ghosts (--compare) are past losses: they join the loss charts only */
    size_t nghosts = cd->src == SRC_TRAIN || cd->src == SRC_VAL ? st->nghosts : 0;
    size_t nleg = st->narms + (nghosts ? 1 : 0);
    size_t maxleg = (size_t)(avail > 9 ? avail / 3 : 1);
    if (nleg > maxleg)
        nleg = maxleg;
    int key_row = avail - (int)nleg >= 14;   /* room for the marker key */
    int prow = avail - (int)nleg - key_row - 1;
    int pcol = r.w - YLABEL_W - 2;
    int py0 = r.y + 1 + (int)nleg + key_row, px0 = r.x + YLABEL_W;
    if (prow < 3 || pcol < 8)
        return;

    /* x range: the drawn arms' steps; ghosts are clipped to it so a past
     * run is compared at the same step, like a racing ghost */
    uint64_t x0, x1;
    if (!x_range(st, v, &x0, &x1)) {
        int any = 0;
        for (size_t i = 0; i < st->narms; i++)
            any |= ui_series_points(&st->arms[i].train) > 0;
        ui_text(py0 + prow / 2, px0 + 2, pcol - 2, ui_attr(UI_ATTR_DIM),
                any ? "every arm's curves are hidden (v shows the selected arm's, p pins it)"
                    : "waiting for the first training steps...");
        return;
    }

    ui_canvas *c = &sc->canvas;
    ui_canvas_reset(c, pcol, prow);
    int pw = c->pw;
    size_t nser = 2 * (st->narms + nghosts);
    size_t need = nser * (size_t)pw;
    if (need > sc->cap) {
        free(sc->sum);
        free(sc->cnt);
        sc->sum = xmalloc(need * sizeof *sc->sum);
        sc->cnt = xmalloc(need * sizeof *sc->cnt);
        sc->cap = need;
    }
    /* series 2i: arm i's line, 2i+1 its val points (the loss view); then
     * the ghosts' the same way. An arm not drawn is bucketed empty. */
    curve_stats stats[2 * (LIVE_MAX_ARMS + UI_MAX_GHOSTS)];
    for (size_t i = 0; i < st->narms; i++) {
        const ui_arm *a = &st->arms[i];
        int shown = ui_view_shows_arm(v, i);
        bucket(shown ? arm_src(a, cd->src) : NULL, beta, log_y, x0, x1, pw,
               sc->sum + 2 * i * pw, sc->cnt + 2 * i * pw, &stats[2 * i]);
        bucket(shown ? arm_src(a, cd->src2) : NULL, 0.0, log_y, x0, x1, pw,
               sc->sum + (2 * i + 1) * pw, sc->cnt + (2 * i + 1) * pw, &stats[2 * i + 1]);
    }
    for (size_t g = 0; g < nghosts; g++) {
        const ui_ghost *gh = &st->ghosts[g];
        size_t at = 2 * (st->narms + g);
        bucket(ghost_src(gh, cd->src), beta, log_y, x0, x1, pw, sc->sum + at * pw,
               sc->cnt + at * pw, &stats[at]);
        bucket(ghost_src(gh, cd->src2), 0.0, log_y, x0, x1, pw, sc->sum + (at + 1) * pw,
               sc->cnt + (at + 1) * pw, &stats[at + 1]);
    }
    double lo = INFINITY, hi = -INFINITY;
    for (size_t sidx = 0; sidx < nser; sidx++)
        range_of(sc->sum + sidx * pw, sc->cnt + sidx * pw, pw, &lo, &hi);
    int have_curve = isfinite(lo) && isfinite(hi);
    if (!have_curve) {
        char why[160];
        if (loss_view)
            snprintf(why, sizeof why, "no finite loss yet");
        else
            why_empty(st, v, cd, why, sizeof why);
        /* an arm that has the metric outside the window still counts */
        for (size_t i = 0; i < st->narms && win; i++)
            if (ui_view_shows_arm(v, i) && arm_src(&st->arms[i], cd->src)->count)
                snprintf(why, sizeof why, "no %s in the last %llu steps", cd->name,
                         (unsigned long long)win);
        ui_text(py0 + prow / 2, px0 + 2, pcol - 2, ui_attr(UI_ATTR_DIM), why);
    }
    if (have_curve) {
        double pad = (hi - lo) * 0.05;
        if (pad <= 0)
            pad = fabs(hi) * 0.05 + 1e-6;
        lo -= pad;
        hi += pad;

        /* ghosts behind, then the lines, then val points over them */
        int lx, ly;
        for (size_t g = 0; g < nghosts; g++) {
            size_t at = 2 * (st->narms + g);
            attr_t ga = ui_ghost_attr(st->ghosts[g].color);
            draw_curve(c, sc->sum + at * pw, sc->cnt + at * pw, pw, lo, hi, ga, 0, &lx, &ly);
            draw_curve(c, sc->sum + (at + 1) * pw, sc->cnt + (at + 1) * pw, pw, lo, hi, ga, 0,
                       &lx, &ly);
        }
        int end_row[LIVE_MAX_ARMS], end_col[LIVE_MAX_ARMS];
        for (size_t i = 0; i < st->narms; i++) {
            draw_curve(c, sc->sum + 2 * i * pw, sc->cnt + 2 * i * pw, pw, lo, hi,
                       ui_arm_attr(st->arms[i].color), 0, &lx, &ly);
            end_col[i] = lx < 0 ? -1 : lx / c->sx;
            end_row[i] = ly < 0 ? -1 : ly / c->sy;
        }
        for (size_t i = 0; i < st->narms; i++)
            draw_curve(c, sc->sum + (2 * i + 1) * pw, sc->cnt + (2 * i + 1) * pw, pw, lo, hi,
                       ui_arm_attr(st->arms[i].color), 1, &lx, &ly);
        /* event markers on the arm's line */
        for (size_t m = 0; m < st->nmarks; m++) {
            const ui_mark *mk = &st->marks[m];
            if (mk->arm >= st->narms || mk->step < x0 || mk->step > x1 ||
                !ui_view_shows_arm(v, mk->arm))
                continue;
            int px = (int)((double)(mk->step - x0) / (double)(x1 - x0) * (pw - 1) + 0.5);
            const double *sum = sc->sum + 2 * mk->arm * pw;
            const uint32_t *cnt = sc->cnt + 2 * mk->arm * pw;
            int row = c->rows - 1;
            for (int d = 0; d < 8; d++) {
                int q = px - d >= 0 && cnt[px - d]       ? px - d
                        : px + d < pw && cnt[px + d] ? px + d
                                                     : -1;
                if (q >= 0) {
                    row = to_py(sum[q] / cnt[q], lo, hi, c->ph) / c->sy;
                    break;
                }
            }
            ui_canvas_mark(c, px / c->sx, row, mk->glyph,
                           ui_arm_attr(st->arms[mk->arm].color) | A_BOLD | A_REVERSE);
        }
        /* the replay cursor */
        if (v->mode == UI_REPLAY && v->cursor >= x0 && v->cursor <= x1) {
            int col =
                (int)((double)(v->cursor - x0) / (double)(x1 - x0) * (pw - 1) + 0.5) / c->sx;
            for (int row = 0; row < c->rows; row++) {
                size_t cell = (size_t)row * (size_t)c->cols + (size_t)col;
                if (!c->bits[cell] && !c->mark[cell])
                    ui_canvas_mark(c, col, row, ':', ui_attr(UI_ATTR_WARN));
            }
        }
        ui_canvas_blit(c, py0, px0);
        end_labels(st, end_row, end_col, py0, px0, pcol, prow);

        /* y axis: labels in the chart's units (log axis: at log-spaced positions) */
        ui_vline(py0, px0 - 1, prow, ui_attr(UI_ATTR_DIM));
        int ticks = prow >= 12 ? 5 : 3;
        for (int t = 0; t < ticks; t++) {
            int row = t * (prow - 1) / (ticks - 1);
            double f = ((double)row * c->sy + c->sy / 2.0) / (c->ph - 1);
            double y = hi - f * (hi - lo);
            double shown = log_y ? exp(y) : y;
            char lab[16];
            if (cd->log_ok)
                snprintf(lab, sizeof lab, "%6.3g", shown);
            else {
                char num[16];
                fmt_value(num, sizeof num, shown);
                snprintf(lab, sizeof lab, "%6s", num);
            }
            ui_text(py0 + row, r.x, YLABEL_W - 1, ui_attr(UI_ATTR_DIM), lab);
        }
    } else {
        ui_vline(py0, px0 - 1, prow, ui_attr(UI_ATTR_DIM));
    }
    /* x axis */
    int xrow = py0 + prow;
    char a0[16], am[16], a1[16];
    ui_fmt_num(a0, sizeof a0, (double)x0);
    ui_fmt_num(am, sizeof am, (double)x0 + (double)(x1 - x0) / 2);
    ui_fmt_num(a1, sizeof a1, (double)x1);
    ui_text(xrow, r.x, YLABEL_W - 1, ui_attr(UI_ATTR_DIM), log_y ? "log" : cd->axis);
    ui_text(xrow, px0, 8, ui_attr(UI_ATTR_DIM), a0);
    ui_textf(xrow, px0 + (int)strlen(a0) + 2, 6, ui_attr(UI_ATTR_DIM), "step");
    ui_text(xrow, px0 + pcol / 2 - (int)strlen(am) / 2, 8, ui_attr(UI_ATTR_DIM), am);
    ui_text(xrow, px0 + pcol - (int)strlen(a1), 8, ui_attr(UI_ATTR_DIM), a1);

    /* legend: one row per arm, then the ghosts, then the marker key */
    int row = r.y + 1;
    size_t shown = 0;
    for (size_t i = 0; i < st->narms && shown < nleg - (nghosts && nleg > 1 ? 1 : 0);
         i++, shown++) {
        if (loss_view)
            legend_row(row++, r.x + 1, r.w - 2, st, v, i, &stats[2 * i], beta);
        else
            metric_row(row++, r.x + 1, r.w - 2, st, v, i, &stats[2 * i], beta, cd->log_ok);
    }
    if (shown < nleg && nghosts) {
        int x = r.x + 1, w = r.w - 2;
        int used = ui_text(row, x, w, ui_attr(UI_ATTR_DIM), "ghosts:");
        for (size_t g = 0; g < nghosts && used < w; g++) {
            const ui_ghost *gh = &st->ghosts[g];
            char best[16];
            fmt_loss(best, sizeof best, gh->val.count ? gh->val.min : NAN);
            used += ui_textf(row, x + used, w - used, ui_ghost_attr(gh->color),
                             " #%lld %s best %s", (long long)gh->run, gh->name, best);
        }
        row++;
    }
    if (key_row)
        ui_text(row, r.x + 1, r.w - 2, ui_attr(UI_ATTR_DIM),
                loss_view ? "line train  o val  S swap P pause K k Z freeze F fork"
                          : "m next chart  S swap P pause K k Z freeze F fork");
}
