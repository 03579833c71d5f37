/* plot: charts and heatmaps drawn by Cairo into an SVG, PNG or PDF file —
 * plain data in, one file out. No database and no screen here: `gatelab
 * plot` (src/plot_cli.c) reads the store into these structs, the screen's
 * `w` key (src/plot_screen.c) fills them from what the screen holds.
 *
 * Cairo is optional at build time (GATELAB_HAVE_CAIRO, set by the Makefile
 * when pkg-config finds cairo): without it every write fails with
 * plot_unavailable()'s message and nothing is written.
 *
 * A file is written whole or not at all: drawn into a temporary file beside
 * the target, renamed over it once Cairo reports success.
 *
 * What a chart is made of, so a program can read an SVG back (Cairo's SVG
 * surface writes no ids or classes, so the elements are told apart by their
 * stroke width, each used by one kind of element only):
 *   PLOT_CURVE_WIDTH  one stroked path per series: its whole curve
 *   PLOT_MARK_WIDTH   the outline of one event marker (a badge in the
 *                     series' colour with the event's letter on it)
 *   PLOT_KEY_WIDTH    the legend's swatch of a series */
#ifndef GATELAB_PLOT_H
#define GATELAB_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define PLOT_CURVE_WIDTH 1.75
#define PLOT_MARK_WIDTH 0.65
#define PLOT_KEY_WIDTH 4.0

typedef enum {
    PLOT_SVG,
    PLOT_PNG,
    PLOT_PDF,
} plot_format;

/* "svg", "png", "pdf": 0, or -1 with a message naming the word. */
int plot_format_parse(const char *name, plot_format *out, gl_error *err);
/* The format a file name's extension names (.svg .png .pdf, any case): 0,
 * or -1 when it names none. */
int plot_format_of_path(const char *path, plot_format *out);
const char *plot_format_name(plot_format f);

/* NULL when this build can draw; otherwise the one line that says why not
 * and how to get a build that can. */
const char *plot_unavailable(void);

typedef struct {
    const char *label;        /* legend: "#12 soft (gate soft)" */
    const uint64_t *step;     /* ascending */
    const double *value;      /* non-finite values are skipped (and so are
                                 values <= 0 on a log axis) */
    size_t n;
    const uint32_t *count;    /* raw values each point stands for (merged
                                 points of the screen's series); NULL: 1 each */
    int dots;                 /* a dot at every point too (evaluations) */
    size_t color;             /* palette index */
} plot_series;

typedef struct {
    size_t series;            /* whose curve it sits on */
    uint64_t step;
    char glyph;               /* event_kind_glyph() */
} plot_mark;

typedef struct {
    const char *title;        /* first line */
    const char *y_name;       /* "val_loss" */
    const char *y_unit;       /* "nats", "" for none */
    int log_y;
    double smooth;            /* debiased EMA beta (smooth.h), 0: raw */
    const plot_series *series;
    size_t nseries;
    const plot_mark *marks;
    size_t nmarks;
    int width, height;        /* 0: 960 x 600 (SVG/PDF: points; PNG: pixels) */
} plot_chart;

/* Draws the chart: axes with ticks and the unit, one colour per series with
 * a legend, the markers on their curves, each series smoothed at full
 * resolution, then merged to the plot area's width only when it has more
 * points than that width has pixels (the chart then says so). A chart with
 * no drawable point is an error. */
typedef struct {
    size_t points;            /* the finite points of every series */
    size_t drawn;             /* the points drawn: fewer when some were merged */
    size_t merged;            /* series merged to the plot's pixel columns */
    size_t columns;           /* the plot area's width in pixels */
    size_t left_out;          /* values not drawn: not finite, or <= 0 on a log axis */
} plot_chart_info;
/* info (NULL: not wanted) gets the figures the chart's note states. */
int plot_chart_write(const plot_chart *c, const char *path, plot_format f,
                     plot_chart_info *info, gl_error *err);

typedef struct {
    const char *title;        /* "run 3 soft: step 400, layer 0, head 1" */
    size_t T;
    const uint8_t *gate, *oracle, *attn;   /* T*T each, row = query, 0..255 */
} plot_heatmap;

/* Three T x T maps side by side: the gate's mask, the oracle top-k mask and
 * the attention probabilities, each a grey scale (0 white, 255 black). */
int plot_heatmap_write(const plot_heatmap *h, const char *path, plot_format f, gl_error *err);

#endif
