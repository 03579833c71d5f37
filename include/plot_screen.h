/* plot_screen: the screen's `w` key — what the screen shows (a ui_state and
 * the selection) turned into plot.c's plain data and written as SVG files
 * next to the database. The screen calls it through ui_options.write; ui/
 * itself never draws into files. */
#ifndef GATELAB_PLOT_SCREEN_H
#define GATELAB_PLOT_SCREEN_H

#include <stddef.h>

#include "ui.h"

/* A ui_write_fn (ctx unused): writes DIR/BASE-sessionS-stepN-loss.svg (every
 * arm's train curve, smoothed as on the screen, its val points and the
 * event markers) and, when the selected arm has one,
 * DIR/BASE-sessionS-stepN-ARM-LlHh-heatmap.svg, where DIR/BASE.db is the
 * database ("./gatelab" without one). msg: "wrote ..." or why not. */
int plot_screen_write(void *ctx, const ui_state *st, const ui_write_request *rq, char *msg,
                      size_t n);

#endif
