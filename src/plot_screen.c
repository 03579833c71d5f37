/* plot_screen: the `w` key of the screen (plot_screen.h). Everything comes
 * from the ui_state the screen already holds — the arms' series as the
 * screen keeps them (merged points carry their counts, so the smoothing is
 * the screen's), the event markers and the selected arm's latest heatmap —
 * so writing costs no database read and works live, in a replay and in a
 * watcher alike. */
#include "plot_screen.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "ui_state.h"

typedef struct {
    uint64_t *step;
    double *v;
    uint32_t *n;
} points;

/* A screen series as plot data (the point being filled included). */
static plot_series series_of(const ui_series *s, points *p, const char *label, size_t color,
                             int dots)
{
    size_t np = ui_series_points(s);
    p->step = xmalloc((np ? np : 1) * sizeof *p->step);
    p->v = xmalloc((np ? np : 1) * sizeof *p->v);
    p->n = xmalloc((np ? np : 1) * sizeof *p->n);
    for (size_t i = 0; i < np; i++) {
        double lv;
        ui_series_point(s, i, &p->step[i], &p->v[i], &lv, &p->n[i]);
    }
    return (plot_series){.label = label, .step = p->step, .value = p->v, .n = np,
                         .count = p->n, .dots = dots, .color = color};
}

/* letters, digits, - _ + . kept; anything else (a fork's '>') becomes '_' */
static void file_word(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) {
        char c = src[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '+' || c == '.';
        dst[i] = ok ? c : '_';
    }
    dst[i] = 0;
}

/* An arm's series for a ui_chart_info curve, and its word in a legend
 * ("train", "val", or the metric's name). */
static const ui_series *curve_of(const ui_arm *a, int src)
{
    if (src == UI_CURVE_TRAIN)
        return &a->train;
    if (src == UI_CURVE_VAL)
        return &a->val;
    return &a->metric[src >= 0 && src < UI_SER_COUNT ? src : 0];
}

static const char *curve_word(int src, const char *metric)
{
    return src == UI_CURVE_TRAIN ? "train" : src == UI_CURVE_VAL ? "val" : metric;
}

int plot_screen_write(void *ctx, const ui_state *st, const ui_write_request *rq, char *msg,
                      size_t n)
{
    (void)ctx;
    if (plot_unavailable()) {
        snprintf(msg, n, "w: %s", plot_unavailable());
        return -1;
    }
    /* DIR/BASE of DIR/BASE.db */
    char dir[4096], base[256];
    const char *db = rq->db_path;
    const char *slash = db ? strrchr(db, '/') : NULL;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - db) : 1, slash ? db : ".");
    if (slash == db)
        snprintf(dir, sizeof dir, "/");
    snprintf(base, sizeof base, "%s", db ? (slash ? slash + 1 : db) : "gatelab");
    char *dot = strrchr(base, '.');
    if (dot && dot != base)
        *dot = 0;
    char stem[4096 + 256 + 64];
    snprintf(stem, sizeof stem, "%s/%s-session%lld-step%llu", dir, base, (long long)st->session,
             (unsigned long long)rq->step);

    /* the chart the screen shows (`m`): per arm its line (the train curve
     * smoothed as on the screen, or the metric) and, for the loss view, its
     * val points; the ghosts' losses with the loss views; the markers sit on
     * the arms' lines */
    ui_chart_info ci;
    ui_chart_describe(rq->chart, &ci);
    int per_arm = 1 + (ci.points != UI_CURVE_NONE);
    int ghosts = ci.line == UI_CURVE_TRAIN || ci.line == UI_CURVE_VAL;
    size_t ns = (size_t)per_arm * (st->narms + (ghosts ? st->nghosts : 0));
    plot_series *ser = xcalloc(ns ? ns : 1, sizeof *ser);
    points *pts = xcalloc(ns ? ns : 1, sizeof *pts);
    char (*labels)[96] = xcalloc(ns ? ns : 1, sizeof *labels);
    size_t *line_of = xcalloc(st->narms ? st->narms : 1, sizeof *line_of);
    size_t k = 0;
    for (size_t i = 0; i < st->narms; i++) {
        const ui_arm *a = &st->arms[i];
        const int src[2] = {ci.line, ci.points};
        line_of[i] = SIZE_MAX;
        /* an arm without the metric (F1 under dense...) is left out, as plot does */
        if (!ghosts && !ui_series_points(curve_of(a, ci.line)))
            continue;
        for (int j = 0; j < per_arm; j++) {
            const ui_series *s = curve_of(a, src[j]);
            snprintf(labels[k], sizeof labels[k], "%zu %s %s", i + 1, a->name,
                     curve_word(src[j], ci.name));
            if (j == 0)
                line_of[i] = k;
            ser[k] = series_of(s, &pts[k], labels[k], a->color, j == 1 || src[j] == UI_CURVE_VAL);
            k++;
        }
    }
    for (size_t g = 0; ghosts && g < st->nghosts; g++) {
        const ui_ghost *gh = &st->ghosts[g];
        const int src[2] = {ci.line, ci.points};
        for (int j = 0; j < per_arm; j++) {
            snprintf(labels[k], sizeof labels[k], "ghost #%lld %s %s", (long long)gh->run,
                     gh->name, curve_word(src[j], ci.name));
            ser[k] = series_of(src[j] == UI_CURVE_VAL ? &gh->val : &gh->train, &pts[k], labels[k],
                               gh->color, j == 1 || src[j] == UI_CURVE_VAL);
            k++;
        }
    }
    plot_mark *marks = xcalloc(st->nmarks ? st->nmarks : 1, sizeof *marks);
    size_t nm = 0;
    for (size_t m = 0; m < st->nmarks; m++)
        if (st->marks[m].arm < st->narms && line_of[st->marks[m].arm] != SIZE_MAX)
            marks[nm++] = (plot_mark){.series = line_of[st->marks[m].arm],
                                      .step = st->marks[m].step, .glyph = st->marks[m].glyph};
    char title[192], chart_word[64], chart_path[sizeof stem + 80];
    snprintf(title, sizeof title, "%s of session %lld at step %llu (written from the screen)",
             ci.name, (long long)st->session, (unsigned long long)rq->step);
    file_word(chart_word, sizeof chart_word, ci.name);
    snprintf(chart_path, sizeof chart_path, "%s-%s.svg", stem, chart_word);
    plot_chart c = {.title = title, .y_name = ci.name, .y_unit = ci.unit,
                    .log_y = ci.log_ok && rq->log_y, .smooth = ci.smooth_ok ? rq->smooth : 0.0,
                    .series = ser, .nseries = k, .marks = marks, .nmarks = nm};
    gl_error e;
    int rc = plot_chart_write(&c, chart_path, PLOT_SVG, NULL, &e);
    for (size_t i = 0; i < k; i++) {
        free(pts[i].step);
        free(pts[i].v);
        free(pts[i].n);
    }
    free(pts);
    free(ser);
    free(labels);
    free(marks);
    free(line_of);
    if (rc) {
        snprintf(msg, n, "w: %s", e.msg);
        return -1;
    }

    /* the selected arm's heatmap, as the heatmap panel has it */
    const uint8_t *gate, *oracle, *attn;
    if (rq->arm >= st->narms ||
        !ui_state_heat_maps(st, rq->arm, rq->layer, rq->head, &gate, &oracle, &attn)) {
        snprintf(msg, n, "wrote %s (no heatmap yet)", chart_path);
        return 0;
    }
    const ui_arm *a = &st->arms[rq->arm];
    char word[64], heat_path[sizeof stem + 128], htitle[192];
    file_word(word, sizeof word, a->name);
    snprintf(heat_path, sizeof heat_path, "%s-%s-L%zuH%zu-heatmap.svg", stem, word, rq->layer,
             rq->head);
    snprintf(htitle, sizeof htitle, "%s: step %llu, layer %zu, head %zu (session %lld)",
             a->name, (unsigned long long)a->heat_step, rq->layer, rq->head,
             (long long)st->session);
    plot_heatmap h = {.title = htitle, .T = st->T, .gate = gate, .oracle = oracle, .attn = attn};
    if (plot_heatmap_write(&h, heat_path, PLOT_SVG, &e)) {
        snprintf(msg, n, "wrote %s; w: %s", chart_path, e.msg);
        return -1;
    }
    const char *hs = strrchr(heat_path, '/');
    snprintf(msg, n, "wrote %s and %s", chart_path, hs ? hs + 1 : heat_path);
    return 0;
}
