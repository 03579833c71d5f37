/* plot_screen: the `w` key of the screen (plot_screen.h). Everything comes
 * from the ui_state the screen already holds — the arms' series as the
 * screen keeps them (merged points carry their counts, so the smoothing is
 * the screen's), the event markers and the selected arm's latest heatmap —
 * so writing costs no database read and works live, in a replay and in a
 * watcher alike. */
#include "plot_screen.h"

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

    /* the chart: per arm its train curve (smoothed as on the screen) and its
     * val points, then the ghosts; the markers sit on the train curves */
    size_t ns = 2 * (st->narms + st->nghosts);
    plot_series *ser = xcalloc(ns ? ns : 1, sizeof *ser);
    points *pts = xcalloc(ns ? ns : 1, sizeof *pts);
    char (*labels)[96] = xcalloc(ns ? ns : 1, sizeof *labels);
    size_t k = 0;
    for (size_t i = 0; i < st->narms; i++) {
        const ui_arm *a = &st->arms[i];
        snprintf(labels[k], sizeof labels[k], "%zu %s train", i + 1, a->name);
        ser[k] = series_of(&a->train, &pts[k], labels[k], a->color, 0);
        k++;
        snprintf(labels[k], sizeof labels[k], "%zu %s val", i + 1, a->name);
        ser[k] = series_of(&a->val, &pts[k], labels[k], a->color, 1);
        k++;
    }
    for (size_t g = 0; g < st->nghosts; g++) {
        const ui_ghost *gh = &st->ghosts[g];
        snprintf(labels[k], sizeof labels[k], "ghost #%lld %s train", (long long)gh->run,
                 gh->name);
        ser[k] = series_of(&gh->train, &pts[k], labels[k], gh->color, 0);
        k++;
        snprintf(labels[k], sizeof labels[k], "ghost #%lld %s val", (long long)gh->run,
                 gh->name);
        ser[k] = series_of(&gh->val, &pts[k], labels[k], gh->color, 1);
        k++;
    }
    plot_mark *marks = xcalloc(st->nmarks ? st->nmarks : 1, sizeof *marks);
    size_t nm = 0;
    for (size_t m = 0; m < st->nmarks; m++)
        if (st->marks[m].arm < st->narms)
            marks[nm++] = (plot_mark){.series = 2 * st->marks[m].arm, .step = st->marks[m].step,
                                      .glyph = st->marks[m].glyph};
    char title[128], chart_path[sizeof stem + 16];
    snprintf(title, sizeof title, "loss of session %lld at step %llu (written from the screen)",
             (long long)st->session, (unsigned long long)rq->step);
    snprintf(chart_path, sizeof chart_path, "%s-loss.svg", stem);
    plot_chart c = {.title = title, .y_name = "loss", .y_unit = "nats", .log_y = rq->log_y,
                    .smooth = rq->smooth, .series = ser, .nseries = k, .marks = marks,
                    .nmarks = nm};
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
