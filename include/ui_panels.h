/* ui_panels: the panels of DESIGN §6, one file each under ui/ — header and
 * status lines (header.c), loss curves (loss.c), gate heatmap (heat.c) and
 * oracle agreement (agree.c) — and the layout that places them. Each draw
 * function clears and fills its own rectangle, guarding every width against
 * tiny terminals. */
#ifndef GATELAB_UI_PANELS_H
#define GATELAB_UI_PANELS_H

#include "ui_draw.h"
#include "ui_screen.h"
#include "ui_state.h"

typedef struct {
    int too_small;
    int lines, cols;
    ui_rect header;    /* 2 lines: session and state, then the arms */
    ui_rect loss;      /* left column: the main chart (loss, or the metric `m` picked) */
    ui_rect heat;      /* right column, top */
    ui_rect agree;     /* right column, bottom */
    int sep_x;         /* the rule between the columns */
    ui_rect routing;   /* 1 line */
    ui_rect events;    /* 2 lines */
    ui_rect keys;      /* the key bar: 1 line */
} ui_layout;

/* The one relayout function: every rectangle from the terminal size. */
void ui_layout_compute(ui_layout *l, int lines, int cols);

void ui_header_draw(ui_rect r, const ui_state *st, const ui_view *v);
void ui_routing_draw(ui_rect r, const ui_state *st, const ui_view *v);
void ui_events_draw(ui_rect r, const ui_state *st, const ui_view *v);

/* Scratch the loss panel keeps between frames so drawing never allocates
 * once the terminal size is stable. */
typedef struct {
    ui_canvas canvas;
    double *sum;
    uint32_t *cnt;
    size_t cap;
} ui_loss_scratch;

void ui_loss_scratch_free(ui_loss_scratch *sc);
void ui_loss_draw(ui_rect r, const ui_state *st, const ui_view *v, ui_loss_scratch *sc);
void ui_heat_draw(ui_rect r, const ui_state *st, const ui_view *v);
void ui_agree_draw(ui_rect r, const ui_state *st, const ui_view *v);

#endif
