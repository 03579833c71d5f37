/* plot: the charts and heatmaps of plot.h, drawn with Cairo onto an SVG, PNG
 * or PDF surface. One drawing routine serves the three surfaces; only the
 * surface and its output stream differ. Pure data in, one file out: the
 * file appears (by rename) only when every byte of it was written. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "outfile.h"
#include "smooth.h"

int plot_format_parse(const char *name, plot_format *out, gl_error *err)
{
    static const char *const names[] = {"svg", "png", "pdf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *out = (plot_format)i;
            return 0;
        }
    return gl_fail(err, "--format %s: not a format (svg, png or pdf)", name ? name : "");
}

int plot_format_of_path(const char *path, plot_format *out)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && slash > dot))
        return -1;
    if (strcasecmp(dot, ".svg") == 0)
        *out = PLOT_SVG;
    else if (strcasecmp(dot, ".png") == 0)
        *out = PLOT_PNG;
    else if (strcasecmp(dot, ".pdf") == 0)
        *out = PLOT_PDF;
    else
        return -1;
    return 0;
}

const char *plot_format_name(plot_format f)
{
    return f == PLOT_PNG ? "png" : f == PLOT_PDF ? "pdf" : "svg";
}

#ifndef GATELAB_HAVE_CAIRO

const char *plot_unavailable(void)
{
    return "this gatelab was built without Cairo, which drawing charts needs: install "
           "libcairo2-dev (make deps does) and rebuild with make";
}

int plot_chart_write(const plot_chart *c, const char *path, plot_format f,
                     plot_chart_info *info, gl_error *err)
{
    (void)c, (void)path, (void)f, (void)info;
    return gl_fail(err, "%s", plot_unavailable());
}

int plot_heatmap_write(const plot_heatmap *h, const char *path, plot_format f, gl_error *err)
{
    (void)h, (void)path, (void)f;
    return gl_fail(err, "%s", plot_unavailable());
}

#else

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

const char *plot_unavailable(void)
{
    return NULL;
}

/* ---- the output file: a temporary beside the target, renamed at the end ---- */

typedef struct {
    outfile file;
    plot_format format;
    cairo_surface_t *surface;
    cairo_t *cr;
} plot_out;

static cairo_status_t put_bytes(void *closure, const unsigned char *data, unsigned int len)
{
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static int out_open(plot_out *o, const char *path, plot_format f, double w, double h,
                    gl_error *err)
{
    memset(o, 0, sizeof *o);
    o->format = f;
    if (outfile_open(&o->file, path, err))
        return -1;
    FILE *fp = o->file.fp;
    switch (f) {
    case PLOT_SVG:
        o->surface = cairo_svg_surface_create_for_stream(put_bytes, fp, w, h);
        break;
    case PLOT_PDF:
        o->surface = cairo_pdf_surface_create_for_stream(put_bytes, fp, w, h);
        break;
    case PLOT_PNG:
        o->surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)ceil(w), (int)ceil(h));
        break;
    }
    o->cr = cairo_create(o->surface);
    if (cairo_status(o->cr) != CAIRO_STATUS_SUCCESS) {
        gl_fail(err, "cannot draw %s: %s", path, cairo_status_to_string(cairo_status(o->cr)));
        cairo_destroy(o->cr);
        cairo_surface_destroy(o->surface);
        outfile_close(&o->file, 0, err);
        return -1;
    }
    /* a white page: PNG would otherwise be transparent */
    cairo_set_source_rgb(o->cr, 1, 1, 1);
    cairo_paint(o->cr);
    return 0;
}

/* Finishes the surface (and encodes the PNG), then has outfile rename the
 * file into place, or drop it on any failure. */
static int out_close(plot_out *o, int ok, gl_error *err)
{
    cairo_status_t st = cairo_status(o->cr);
    cairo_destroy(o->cr);
    if (ok && st == CAIRO_STATUS_SUCCESS && o->format == PLOT_PNG)
        st = cairo_surface_write_to_png_stream(o->surface, put_bytes, o->file.fp);
    cairo_surface_finish(o->surface);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(o->surface);
    cairo_surface_destroy(o->surface);
    /* Cairo keeps the fonts it looked up (fontconfig patterns) in caches of
     * its own, and fontconfig its configuration, for the life of the
     * process; charts are the process's only drawing, so both are let go
     * after each (nothing of Cairo's is alive here; the next chart loads
     * them again), and a leak checker (make test-asan) sees none held. */
    cairo_debug_reset_static_data();
    FcFini();
    if (ok && st != CAIRO_STATUS_SUCCESS) {
        gl_fail(err, "cannot write %s: %s", o->file.path, cairo_status_to_string(st));
        ok = 0;
    }
    return outfile_close(&o->file, ok, err);
}

/* ---- drawing helpers ---- */

/* Tableau's ten: distinct on white, for print and for colour-blind readers
 * alike as far as ten colours go */
static const double palette[][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
    {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
    {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
    {0.090, 0.745, 0.812},
};
#define NPALETTE (sizeof palette / sizeof palette[0])

static void set_color(cairo_t *cr, size_t i)
{
    const double *c = palette[i % NPALETTE];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
}

static void font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *t)
{
    cairo_text_extents_t ex;
    cairo_text_extents(cr, t, &ex);
    return ex.x_advance;
}

/* Text with its anchor at (x, y): align 0 left, 0.5 centred, 1 right; y is
 * the baseline. */
static void text_at(cairo_t *cr, double x, double y, double align, const char *t)
{
    cairo_move_to(cr, x - align * text_width(cr, t), y);
    cairo_show_text(cr, t);
}

/* ---- ticks ---- */

#define MAX_TICKS 32

/* 1, 2 or 5 times a power of ten, near span / target */
static double nice_step(double span, int target)
{
    double raw = span / target;
    double p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1.0 : m < 3.5 ? 2.0 : m < 7.5 ? 5.0 : 10.0) * p;
}

/* Ticks in [lo, hi] at multiples of a nice step: their values. */
static size_t linear_ticks(double lo, double hi, int target, double *out)
{
    if (!(hi > lo))
        return 0;
    double step = nice_step(hi - lo, target);
    size_t n = 0;
    for (double t = ceil(lo / step) * step; t <= hi + step * 1e-9 && n < MAX_TICKS; t += step)
        out[n++] = fabs(t) < step * 1e-9 ? 0.0 : t;
    return n;
}

/* Ticks of a log axis spanning [exp(lo), exp(hi)], drawn min_gap apart at
 * least (in log units): 1, 2 and 5 per decade (only 1 past three decades)
 * when that gives at least three; inside about a decade, where those are too
 * few, the steps 1 1.5 2 3 4 5 6 7 8 9 of each decade, every one that keeps
 * its distance from the one below (they are nearly evenly spaced on a log
 * axis, unlike linear steps, which crowd its top and leave its bottom bare);
 * in a range narrower than those steps, nice linear values. */
static size_t log_ticks(double lo, double hi, double min_gap, double *out)
{
    double vlo = exp(lo), vhi = exp(hi);
    double decades = log10(vhi) - log10(vlo);
    size_t n = 0;
    static const double per[] = {1, 2, 5};
    size_t nper = decades > 3 ? 1 : 3;
    for (double e = floor(log10(vlo)); e <= ceil(log10(vhi)) && n < MAX_TICKS; e++)
        for (size_t m = 0; m < nper && n < MAX_TICKS; m++) {
            double v = per[m] * pow(10.0, e);
            if (v >= vlo * (1 - 1e-9) && v <= vhi * (1 + 1e-9))
                out[n++] = v;
        }
    if (n >= 3)
        return n;
    static const double steps[] = {1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9};
    double last = -INFINITY;
    n = 0;
    for (double e = floor(log10(vlo)); e <= ceil(log10(vhi)) && n < MAX_TICKS; e++)
        for (size_t m = 0; m < sizeof steps / sizeof steps[0] && n < MAX_TICKS; m++) {
            double v = steps[m] * pow(10.0, e);
            if (v < vlo * (1 - 1e-9) || v > vhi * (1 + 1e-9) || log(v) - last < min_gap)
                continue;
            out[n++] = v;
            last = log(v);
        }
    if (n >= 2)
        return n;
    /* a narrow range (2.01 to 2.05): nice linear values, which fit any */
    n = linear_ticks(vlo, vhi, 5, out);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (out[i] > 0)
            out[k++] = out[i];
    return k;
}

static void fmt_tick(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.6g", v);
}

/* ---- the chart ---- */

/* the plot area's margins: room for the y labels, and a little */
#define PLOT_LEFT 78
#define PLOT_RIGHT 24

typedef struct {
    uint64_t *step;   /* of the drawn points: a column's last step when merged */
    double *y;        /* smoothed, in axis space (log of the value on a log axis) */
    size_t n;
    size_t raw;       /* the finite points it was drawn from */
    size_t left_out;  /* values not drawable: not finite, or <= 0 on a log axis */
    int merged;
} curve;

static void curve_free(curve *c)
{
    free(c->step);
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* Smooths a series at full resolution, in axis space. */
static void curve_smooth(const plot_series *s, int log_y, double beta, curve *c)
{
    memset(c, 0, sizeof *c);
    c->step = xmalloc((s->n ? s->n : 1) * sizeof *c->step);
    c->y = xmalloc((s->n ? s->n : 1) * sizeof *c->y);
    smooth_ema e;
    smooth_ema_init(&e, beta);
    for (size_t i = 0; i < s->n; i++) {
        double v = s->value[i];
        if (!isfinite(v) || (log_y && v <= 0)) {
            c->left_out++;   /* said on the chart, never dropped silently */
            continue;
        }
        uint32_t cnt = s->count ? s->count[i] : 1;
        c->step[c->n] = s->step[i];
        c->y[c->n] = smooth_ema_push(&e, log_y ? log(v) : v, cnt ? cnt : 1);
        c->n++;
    }
    c->raw = c->n;
}

/* Merges a smoothed curve to one point per pixel column (the mean of the
 * column's values) when it has more points than the plot has columns. */
static void curve_fit(curve *c, uint64_t x0, uint64_t x1, int columns)
{
    if (c->n <= (size_t)columns || columns < 2)
        return;
    size_t out = 0;
    int col_prev = -1;
    double sum = 0;
    size_t cnt = 0;
    for (size_t i = 0; i <= c->n; i++) {
        int col = i < c->n ? (int)lround((double)(c->step[i] - x0) / (double)(x1 - x0) *
                                         (columns - 1))
                           : -2;
        if (col != col_prev && cnt) {
            c->y[out] = sum / (double)cnt;
            c->step[out] = c->step[i - 1];
            out++;
            sum = 0;
            cnt = 0;
        }
        if (i < c->n) {
            sum += c->y[i];
            cnt++;
            col_prev = col;
        }
    }
    c->n = out;
    c->merged = 1;
}

typedef struct {
    double x, y, w, h;        /* plot area */
    uint64_t x0, x1;
    double lo, hi;            /* axis space */
} frame;

static double fx(const frame *f, uint64_t step)
{
    return f->x + (double)(step - f->x0) / (double)(f->x1 - f->x0) * f->w;
}

static double fy(const frame *f, double y)
{
    return f->y + (f->hi - y) / (f->hi - f->lo) * f->h;
}

/* The drawn y of a curve at a step: its last point at or before it (the
 * first point before the curve starts). */
static double curve_y_at(const curve *c, uint64_t step)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->step[mid] <= step)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c->y[lo ? lo - 1 : 0];
}

static void draw_marker(cairo_t *cr, double x, double y, char glyph, size_t color)
{
    const double w = 12, h = 14, r = 3;
    double left = x - w / 2, top = y - h / 2;
    cairo_new_sub_path(cr);
    cairo_arc(cr, left + w - r, top + r, r, -M_PI / 2, 0);
    cairo_arc(cr, left + w - r, top + h - r, r, 0, M_PI / 2);
    cairo_arc(cr, left + r, top + h - r, r, M_PI / 2, M_PI);
    cairo_arc(cr, left + r, top + r, r, M_PI, 1.5 * M_PI);
    cairo_close_path(cr);
    set_color(cr, color);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_line_width(cr, PLOT_MARK_WIDTH);
    cairo_stroke(cr);
    char t[2] = {glyph, 0};
    font(cr, 10, 1);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_text_extents_t ex;
    cairo_text_extents(cr, t, &ex);
    cairo_move_to(cr, x - ex.x_bearing - ex.width / 2, y - ex.y_bearing - ex.height / 2);
    cairo_show_text(cr, t);
}

/* The legend: a swatch and a label per series, wrapped over rows from y;
 * returns the y below it. */
static double draw_legend(cairo_t *cr, const plot_chart *c, double x, double y, double w)
{
    font(cr, 11, 0);
    double cx = x, row_h = 16;
    for (size_t i = 0; i < c->nseries; i++) {
        const char *label = c->series[i].label ? c->series[i].label : "";
        double need = 26 + text_width(cr, label) + 18;
        if (cx > x && cx + need > x + w) {
            cx = x;
            y += row_h;
        }
        set_color(cr, c->series[i].color);
        cairo_set_line_width(cr, PLOT_KEY_WIDTH);
        cairo_move_to(cr, cx, y - 4);
        cairo_line_to(cr, cx + 20, y - 4);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, cx + 26, y, 0, label);
        cx += need;
    }
    return y + row_h;
}

static void draw_chart(cairo_t *cr, const plot_chart *c, double W, double H, curve *cv,
                       uint64_t x0, uint64_t x1, double lo, double hi)
{
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    font(cr, 15, 1);
    text_at(cr, 16, 24, 0, c->title ? c->title : "");

    /* what was done to the values, and whether every point is drawn */
    size_t raw = 0, drawn = 0, merged = 0, left_out = 0;
    for (size_t i = 0; i < c->nseries; i++) {
        raw += cv[i].raw;
        drawn += cv[i].n;
        merged += cv[i].merged;
        left_out += cv[i].left_out;
    }
    const double pw = W - PLOT_LEFT - PLOT_RIGHT;
    char note[320];
    int len = snprintf(note, sizeof note, "%s axis | ", c->log_y ? "log" : "linear");
    if (c->smooth > 0)
        len += snprintf(note + len, sizeof note - (size_t)len, "debiased EMA %.4g%s | ",
                        c->smooth, c->log_y ? " in log space" : "");
    else
        len += snprintf(note + len, sizeof note - (size_t)len, "raw values | ");
    if (merged)
        len += snprintf(note + len, sizeof note - (size_t)len,
                        "%zu points merged to %zu (one mean per pixel column of %.0f): %zu "
                        "series had more points than the plot has columns", raw, drawn, pw,
                        merged);
    else
        len += snprintf(note + len, sizeof note - (size_t)len,
                        "full resolution: all %zu points drawn", raw);
    if (left_out && len > 0 && (size_t)len < sizeof note)
        snprintf(note + len, sizeof note - (size_t)len, " | %zu values left out (%s)", left_out,
                 c->log_y ? "<= 0 on the log axis, or not finite" : "not finite");
    font(cr, 11, 0);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    text_at(cr, 16, 42, 0, note);

    double legend_end = draw_legend(cr, c, 16, 62, W - 32);
    frame f = {PLOT_LEFT, legend_end + 6, pw, H - legend_end - 6 - 48, x0, x1, lo, hi};
    if (f.h < 40)
        f.h = 40;

    /* grid and ticks */
    double yt[MAX_TICKS], xt[MAX_TICKS];
    /* log ticks 28 points apart at least: room for their labels */
    size_t nyt = c->log_y ? log_ticks(lo, hi, 28.0 * (hi - lo) / f.h, yt)
                          : linear_ticks(lo, hi, 6, yt);
    size_t nxt = linear_ticks((double)x0, (double)x1, 8, xt);
    cairo_set_line_width(cr, 0.5);
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    for (size_t i = 0; i < nyt; i++) {
        double y = fy(&f, c->log_y ? log(yt[i]) : yt[i]);
        cairo_move_to(cr, f.x, y);
        cairo_line_to(cr, f.x + f.w, y);
    }
    for (size_t i = 0; i < nxt; i++) {
        double x = f.x + (xt[i] - (double)x0) / (double)(x1 - x0) * f.w;
        cairo_move_to(cr, x, f.y);
        cairo_line_to(cr, x, f.y + f.h);
    }
    cairo_stroke(cr);
    cairo_set_line_width(cr, 1.0);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, f.x, f.y, f.w, f.h);
    cairo_stroke(cr);
    font(cr, 10, 0);
    char lab[64];
    for (size_t i = 0; i < nyt; i++) {
        double y = fy(&f, c->log_y ? log(yt[i]) : yt[i]);
        cairo_move_to(cr, f.x - 4, y);
        cairo_line_to(cr, f.x, y);
        cairo_stroke(cr);
        fmt_tick(lab, sizeof lab, yt[i]);
        text_at(cr, f.x - 6, y + 3.5, 1, lab);
    }
    for (size_t i = 0; i < nxt; i++) {
        double x = f.x + (xt[i] - (double)x0) / (double)(x1 - x0) * f.w;
        cairo_move_to(cr, x, f.y + f.h);
        cairo_line_to(cr, x, f.y + f.h + 4);
        cairo_stroke(cr);
        fmt_tick(lab, sizeof lab, xt[i]);
        text_at(cr, x, f.y + f.h + 16, 0.5, lab);
    }
    font(cr, 11, 0);
    text_at(cr, f.x + f.w / 2, f.y + f.h + 34, 0.5, "step");
    char yname[128];
    if (c->y_unit && *c->y_unit)
        snprintf(yname, sizeof yname, "%s (%s%s)", c->y_name ? c->y_name : "", c->y_unit,
                 c->log_y ? ", log scale" : "");
    else
        snprintf(yname, sizeof yname, "%s%s", c->y_name ? c->y_name : "",
                 c->log_y ? " (log scale)" : "");
    cairo_save(cr);
    cairo_translate(cr, 16, f.y + f.h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, 0.5, yname);
    cairo_restore(cr);

    /* curves: one stroked path each, clipped to the plot area */
    cairo_save(cr);
    cairo_rectangle(cr, f.x, f.y, f.w, f.h);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);   /* a one-point curve is a dot */
    for (size_t i = 0; i < c->nseries; i++) {
        const curve *k = &cv[i];
        if (!k->n)
            continue;
        cairo_move_to(cr, fx(&f, k->step[0]), fy(&f, k->y[0]));
        for (size_t p = 1; p < k->n; p++)
            cairo_line_to(cr, fx(&f, k->step[p]), fy(&f, k->y[p]));
        if (k->n == 1)
            cairo_line_to(cr, fx(&f, k->step[0]), fy(&f, k->y[0]));
        set_color(cr, c->series[i].color);
        cairo_set_line_width(cr, PLOT_CURVE_WIDTH);
        cairo_stroke(cr);
        if (c->series[i].dots) {
            for (size_t p = 0; p < k->n; p++) {
                cairo_new_sub_path(cr);
                cairo_arc(cr, fx(&f, k->step[p]), fy(&f, k->y[p]), 2.5, 0, 2 * M_PI);
            }
            cairo_fill(cr);
        }
    }
    cairo_restore(cr);

    /* event markers on their curves */
    for (size_t m = 0; m < c->nmarks; m++) {
        const plot_mark *mk = &c->marks[m];
        if (mk->series >= c->nseries || !cv[mk->series].n)
            continue;
        uint64_t s = mk->step < x0 ? x0 : mk->step > x1 ? x1 : mk->step;
        double y = fy(&f, curve_y_at(&cv[mk->series], s));
        y = y < f.y ? f.y : y > f.y + f.h ? f.y + f.h : y;
        draw_marker(cr, fx(&f, s), y, mk->glyph, c->series[mk->series].color);
    }
}

int plot_chart_write(const plot_chart *c, const char *path, plot_format fmt,
                     plot_chart_info *info, gl_error *err)
{
    double W = c->width > 0 ? c->width : 960, H = c->height > 0 ? c->height : 600;
    if (W < 320 || H < 240 || W > 20000 || H > 20000)
        return gl_fail(err, "chart size %.0fx%.0f: between 320x240 and 20000x20000", W, H);
    curve *cv = xcalloc(c->nseries ? c->nseries : 1, sizeof *cv);
    uint64_t x0 = UINT64_MAX, x1 = 0;
    for (size_t i = 0; i < c->nseries; i++) {
        curve_smooth(&c->series[i], c->log_y, c->smooth, &cv[i]);
        if (cv[i].n) {
            if (cv[i].step[0] < x0)
                x0 = cv[i].step[0];
            if (cv[i].step[cv[i].n - 1] > x1)
                x1 = cv[i].step[cv[i].n - 1];
        }
    }
    int rc = 0;
    if (x0 == UINT64_MAX) {
        rc = gl_fail(err, "nothing to draw: no %svalue in %s", c->log_y ? "positive finite "
                                                                        : "finite ",
                     c->y_name ? c->y_name : "the series");
        goto done;
    }
    if (x1 <= x0)
        x1 = x0 + 1;
    int columns = (int)(W - PLOT_LEFT - PLOT_RIGHT);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < c->nseries; i++) {
        curve_fit(&cv[i], x0, x1, columns);
        for (size_t p = 0; p < cv[i].n; p++) {
            lo = cv[i].y[p] < lo ? cv[i].y[p] : lo;
            hi = cv[i].y[p] > hi ? cv[i].y[p] : hi;
        }
    }
    if (info) {
        memset(info, 0, sizeof *info);
        info->columns = (size_t)columns;
        for (size_t i = 0; i < c->nseries; i++) {
            info->points += cv[i].raw;
            info->drawn += cv[i].n;
            info->merged += cv[i].merged;
            info->left_out += cv[i].left_out;
        }
    }
    double pad = (hi - lo) * 0.05;
    if (pad <= 0)
        pad = fabs(hi) * 0.05 + (c->log_y ? 0.01 : 1e-6);
    lo -= pad;
    hi += pad;
    plot_out o;
    if (out_open(&o, path, fmt, W, H, err)) {
        rc = -1;
        goto done;
    }
    draw_chart(o.cr, c, W, H, cv, x0, x1, lo, hi);
    rc = out_close(&o, 1, err);
done:
    for (size_t i = 0; i < c->nseries; i++)
        curve_free(&cv[i]);
    free(cv);
    return rc;
}

/* ---- heatmaps ---- */

/* A T x T byte map as an image, 0 white and 255 black */
static cairo_surface_t *map_image(const uint8_t *m, size_t T)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)T, (int)T);
    cairo_surface_flush(img);
    unsigned char *px = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (size_t r = 0; r < T; r++) {
        uint32_t *row = (uint32_t *)(void *)(px + (size_t)stride * r);
        for (size_t k = 0; k < T; k++) {
            uint32_t g = 255u - m[r * T + k];
            row[k] = (g << 16) | (g << 8) | g;
        }
    }
    cairo_surface_mark_dirty(img);
    return img;
}

int plot_heatmap_write(const plot_heatmap *h, const char *path, plot_format fmt, gl_error *err)
{
    if (!h->T || !h->gate || !h->oracle || !h->attn)
        return gl_fail(err, "nothing to draw: no heatmap");
    double side = h->T * 4.0 < 240 ? 240 : h->T * 4.0 > 512 ? 512 : h->T * 4.0;
    const double gap = 36, left = 40, top = 70;
    double W = left + 3 * side + 2 * gap + 20, H = top + side + 50;
    plot_out o;
    if (out_open(&o, path, fmt, W, H, err))
        return -1;
    cairo_t *cr = o.cr;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    font(cr, 15, 1);
    text_at(cr, 16, 24, 0, h->title ? h->title : "");
    font(cr, 11, 0);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    char sub[128];
    snprintf(sub, sizeof sub, "T = %zu; rows are queries, columns keys; white 0, black 1",
             h->T);
    text_at(cr, 16, 42, 0, sub);
    const uint8_t *maps[3] = {h->gate, h->oracle, h->attn};
    static const char *const names[3] = {"gate mask", "oracle top-k mask",
                                         "attention probabilities"};
    for (int i = 0; i < 3; i++) {
        double x = left + i * (side + gap), y = top;
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        font(cr, 12, 1);
        text_at(cr, x + side / 2, y - 8, 0.5, names[i]);
        cairo_surface_t *img = map_image(maps[i], h->T);
        cairo_save(cr);
        cairo_rectangle(cr, x, y, side, side);
        cairo_clip(cr);
        cairo_translate(cr, x, y);
        cairo_scale(cr, side / (double)h->T, side / (double)h->T);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
        cairo_paint(cr);
        cairo_restore(cr);
        cairo_surface_destroy(img);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_set_line_width(cr, 1.0);
        cairo_rectangle(cr, x, y, side, side);
        cairo_stroke(cr);
        font(cr, 10, 0);
        char t[32];
        text_at(cr, x, y + side + 14, 0, "0");
        snprintf(t, sizeof t, "%zu", h->T - 1);
        text_at(cr, x + side, y + side + 14, 1, t);
        text_at(cr, x + side / 2, y + side + 28, 0.5, "key");
        cairo_save(cr);
        cairo_translate(cr, x - 8, y + side / 2);
        cairo_rotate(cr, -M_PI / 2);
        text_at(cr, 0, 0, 0.5, "query");
        cairo_restore(cr);
    }
    return out_close(&o, 1, err);
}

#endif
