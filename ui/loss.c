/* loss: train and val loss of every arm overlaid, with ghosts of past runs
 * (--compare) behind them. The train curve is smoothed by a debiased EMA
 * *before* it is downsampled to the plot's pixel columns, and in log space
 * when the axis is logarithmic, so toggling the axis never changes which
 * wiggles survive. Val points are drawn raw (one per evaluation). */
#include "ui_panels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "smooth.h"

#define YLABEL_W 7

typedef struct {
    double last, min;       /* of the curve as drawn (smoothed), in loss units */
} curve_stats;

/* Folds a series into pixel columns: sum[px] and cnt[px] of the (smoothed)
 * values, in log space when log_y. beta = 0: no smoothing. */
static void bucket(const ui_series *s, double beta, int log_y, uint64_t x0, uint64_t x1, int pw,
                   double *sum, uint32_t *cnt, curve_stats *cs)
{
    memset(sum, 0, (size_t)pw * sizeof *sum);
    memset(cnt, 0, (size_t)pw * sizeof *cnt);
    cs->last = NAN;
    cs->min = INFINITY;
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

static void legend_row(int y, int x, int w, const ui_state *st, size_t i, const curve_stats *tr,
                       double beta)
{
    const ui_arm *a = &st->arms[i];
    char now[16], mn[16], val[16], best[16];
    fmt_loss(now, sizeof now, tr->last);
    fmt_loss(mn, sizeof mn, tr->min);
    fmt_loss(val, sizeof val, a->val.count ? a->val.last : NAN);
    fmt_loss(best, sizeof best, a->val.count ? a->val.min : NAN);
    attr_t at = ui_arm_attr(a->color);
    /* names line up; an MoE arm's name (dense+moe-random) is longer than a mode */
    int name_w = 9;
    for (size_t j = 0; j < st->narms; j++) {
        int len = (int)strlen(st->arms[j].name);
        name_w = len > name_w ? (len < 16 ? len : 16) : name_w;
    }
    int used = ui_textf(y, x, w, at | A_BOLD, "%zu %-*.*s", i + 1, name_w, name_w, a->name);
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

void ui_loss_draw(ui_rect r, const ui_state *st, const ui_view *v, ui_loss_scratch *sc)
{
    ui_clear(r);
    double beta = ui_smooth_beta[v->smooth];
    char right[48];
    if (beta > 0)
        snprintf(right, sizeof right, "%s | EMA %.3g", v->log_y ? "log y" : "linear y", beta);
    else
        snprintf(right, sizeof right, "%s | raw", v->log_y ? "log y" : "linear y");
    ui_title(r.y, r.x, r.w, "Loss", right);
    int avail = r.h - 1;
    size_t nleg = st->narms + (st->nghosts ? 1 : 0);
    size_t maxleg = (size_t)(avail > 9 ? avail / 3 : 1);
    if (nleg > maxleg)
        nleg = maxleg;
    int key_row = avail - (int)nleg >= 14;   /* room for the marker key */
    int prow = avail - (int)nleg - key_row - 1;
    int pcol = r.w - YLABEL_W - 2;
    int py0 = r.y + 1 + (int)nleg + key_row, px0 = r.x + YLABEL_W;
    if (prow < 3 || pcol < 8)
        return;

    /* x range: the live arms' steps; ghosts are clipped to it so a past run
     * is compared at the same step, like a racing ghost */
    uint64_t x0 = UINT64_MAX, x1 = 0;
    for (size_t i = 0; i < st->narms; i++) {
        const ui_series *s = &st->arms[i].train;
        size_t np = ui_series_points(s);
        if (!np)
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
    if (x0 == UINT64_MAX) {
        ui_text(py0 + prow / 2, px0 + 2, pcol - 2, ui_attr(UI_ATTR_DIM),
                "waiting for the first training steps...");
        return;
    }
    if (x1 <= x0)
        x1 = x0 + 1;

    ui_canvas *c = &sc->canvas;
    ui_canvas_reset(c, pcol, prow);
    int pw = c->pw;
    size_t nser = 2 * (st->narms + st->nghosts);
    size_t need = nser * (size_t)pw;
    if (need > sc->cap) {
        free(sc->sum);
        free(sc->cnt);
        sc->sum = xmalloc(need * sizeof *sc->sum);
        sc->cnt = xmalloc(need * sizeof *sc->cnt);
        sc->cap = need;
    }
    curve_stats stats[2 * (LIVE_MAX_ARMS + UI_MAX_GHOSTS)];
    for (size_t i = 0; i < st->narms; i++) {
        const ui_arm *a = &st->arms[i];
        bucket(&a->train, beta, v->log_y, x0, x1, pw, sc->sum + 2 * i * pw,
               sc->cnt + 2 * i * pw, &stats[2 * i]);
        bucket(&a->val, 0.0, v->log_y, x0, x1, pw, sc->sum + (2 * i + 1) * pw,
               sc->cnt + (2 * i + 1) * pw, &stats[2 * i + 1]);
    }
    for (size_t g = 0; g < st->nghosts; g++) {
        const ui_ghost *gh = &st->ghosts[g];
        size_t at = 2 * (st->narms + g);
        bucket(&gh->train, beta, v->log_y, x0, x1, pw, sc->sum + at * pw, sc->cnt + at * pw,
               &stats[at]);
        bucket(&gh->val, 0.0, v->log_y, x0, x1, pw, sc->sum + (at + 1) * pw,
               sc->cnt + (at + 1) * pw, &stats[at + 1]);
    }
    double lo = INFINITY, hi = -INFINITY;
    for (size_t sidx = 0; sidx < nser; sidx++)
        range_of(sc->sum + sidx * pw, sc->cnt + sidx * pw, pw, &lo, &hi);
    if (!isfinite(lo) || !isfinite(hi)) {
        ui_text(py0 + prow / 2, px0 + 2, pcol - 2, ui_attr(UI_ATTR_DIM), "no finite loss yet");
        return;
    }
    double pad = (hi - lo) * 0.05;
    if (pad <= 0)
        pad = fabs(hi) * 0.05 + 1e-6;
    lo -= pad;
    hi += pad;

    /* ghosts behind, then train, then val over it */
    int lx, ly;
    for (size_t g = 0; g < st->nghosts; g++) {
        size_t at = 2 * (st->narms + g);
        attr_t ga = ui_ghost_attr(st->ghosts[g].color);
        draw_curve(c, sc->sum + at * pw, sc->cnt + at * pw, pw, lo, hi, ga, 0, &lx, &ly);
        draw_curve(c, sc->sum + (at + 1) * pw, sc->cnt + (at + 1) * pw, pw, lo, hi, ga, 0, &lx,
                   &ly);
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
    /* event markers on the arm's train curve */
    for (size_t m = 0; m < st->nmarks; m++) {
        const ui_mark *mk = &st->marks[m];
        if (mk->arm >= st->narms || mk->step < x0 || mk->step > x1)
            continue;
        int px = (int)((double)(mk->step - x0) / (double)(x1 - x0) * (pw - 1) + 0.5);
        const double *sum = sc->sum + 2 * mk->arm * pw;
        const uint32_t *cnt = sc->cnt + 2 * mk->arm * pw;
        int row = c->rows - 1;
        for (int d = 0; d < 8; d++) {
            int q = px - d >= 0 && cnt[px - d] ? px - d : px + d < pw && cnt[px + d] ? px + d : -1;
            if (q >= 0) {
                row = to_py(sum[q] / cnt[q], lo, hi, c->ph) / c->sy;
                break;
            }
        }
        ui_canvas_mark(c, px / c->sx, row, mk->glyph, ui_arm_attr(st->arms[mk->arm].color) |
                                                          A_BOLD | A_REVERSE);
    }
    /* the replay cursor */
    if (v->mode == UI_REPLAY && v->cursor >= x0 && v->cursor <= x1) {
        int col = (int)((double)(v->cursor - x0) / (double)(x1 - x0) * (pw - 1) + 0.5) / c->sx;
        for (int row = 0; row < c->rows; row++) {
            size_t cell = (size_t)row * (size_t)c->cols + (size_t)col;
            if (!c->bits[cell] && !c->mark[cell])
                ui_canvas_mark(c, col, row, ':', ui_attr(UI_ATTR_WARN));
        }
    }
    ui_canvas_blit(c, py0, px0);
    /* arm numbers at the end of their train curves */
    for (size_t i = 0; i < st->narms; i++)
        if (end_col[i] >= 0 && end_col[i] + 1 < pcol + 1)
            ui_textf(py0 + end_row[i], px0 + end_col[i] + 1, 1,
                     ui_arm_attr(st->arms[i].color) | A_BOLD, "%zu", (i + 1) % 10);

    /* y axis: labels in loss units (log axis: at log-spaced positions) */
    ui_vline(py0, px0 - 1, prow, ui_attr(UI_ATTR_DIM));
    int ticks = prow >= 12 ? 5 : 3;
    for (int t = 0; t < ticks; t++) {
        int row = t * (prow - 1) / (ticks - 1);
        double f = ((double)row * c->sy + c->sy / 2.0) / (c->ph - 1);
        double y = hi - f * (hi - lo);
        double shown = v->log_y ? exp(y) : y;
        char lab[16];
        snprintf(lab, sizeof lab, "%6.3g", shown);
        ui_text(py0 + row, r.x, YLABEL_W - 1, ui_attr(UI_ATTR_DIM), lab);
    }
    /* x axis */
    int xrow = py0 + prow;
    char a0[16], am[16], a1[16];
    ui_fmt_num(a0, sizeof a0, (double)x0);
    ui_fmt_num(am, sizeof am, (double)x0 + (double)(x1 - x0) / 2);
    ui_fmt_num(a1, sizeof a1, (double)x1);
    ui_text(xrow, r.x, YLABEL_W - 1, ui_attr(UI_ATTR_DIM), v->log_y ? "log" : "nats");
    ui_text(xrow, px0, 8, ui_attr(UI_ATTR_DIM), a0);
    ui_textf(xrow, px0 + (int)strlen(a0) + 2, 6, ui_attr(UI_ATTR_DIM), "step");
    ui_text(xrow, px0 + pcol / 2 - (int)strlen(am) / 2, 8, ui_attr(UI_ATTR_DIM), am);
    ui_text(xrow, px0 + pcol - (int)strlen(a1), 8, ui_attr(UI_ATTR_DIM), a1);

    /* legend: one row per arm, then the ghosts, then the marker key */
    int row = r.y + 1;
    size_t shown = 0;
    for (size_t i = 0; i < st->narms && shown < nleg - (st->nghosts && nleg > 1 ? 1 : 0);
         i++, shown++)
        legend_row(row++, r.x + 1, r.w - 2, st, i, &stats[2 * i], beta);
    if (shown < nleg && st->nghosts) {
        int x = r.x + 1, w = r.w - 2;
        int used = ui_text(row, x, w, ui_attr(UI_ATTR_DIM), "ghosts:");
        for (size_t g = 0; g < st->nghosts && used < w; g++) {
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
                "line train  o val  S swap P pause K k Z freeze F fork");
}
