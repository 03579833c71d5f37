/* ui: the ncurses screen of DESIGN §6 as the command line sees it — an
 * observer of a live session (live_observer) steered from the keyboard, and
 * the replay of a stored session. It reads only telemetry records, the arms'
 * latest-value heatmap slots and the database; every key that steers a run is
 * a command sent through live_send, so it lands in the database as an event.
 * It prints nothing: the caller reports errors after the terminal is back. */
#ifndef GATELAB_UI_H
#define GATELAB_UI_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "session_view.h"
#include "ui_state.h"

/* The `w` key: the screen hands what it shows (its state and what is
 * selected) to a function of the caller's, which draws it into files next to
 * the database (src/plot_screen.c) and puts one line saying where, or why
 * not, into msg. ui/ itself draws nothing but the terminal. */
typedef struct {
    const char *db_path;          /* the database (NULL: none; the files go to ".") */
    size_t arm, layer, head;      /* the selected arm, and its heatmap's layer and head */
    int log_y;
    double smooth;                /* the train curve's EMA factor, 0: raw */
    uint64_t step;                /* live: the newest step; replay: the cursor */
    int chart;                    /* ui_chart: the main chart's view (ui_chart_describe) */
} ui_write_request;
/* What a view of the main chart draws, so `w` draws the same: per arm a
 * line from one of its series and, for the loss view, its val points from
 * another (UI_CURVE_TRAIN, UI_CURVE_VAL, or a ui_series_key of ui_arm's
 * metric[]; UI_CURVE_NONE: no points); its name, title and unit; whether
 * `l` (a log axis) and `s` (smoothing) apply to it. */
enum { UI_CURVE_NONE = -3, UI_CURVE_VAL = -2, UI_CURVE_TRAIN = -1 };
typedef struct {
    const char *name, *title, *unit;
    int line, points;
    int log_ok, smooth_ok;
} ui_chart_info;
void ui_chart_describe(int chart, ui_chart_info *out);

typedef int (*ui_write_fn)(void *ctx, const ui_state *st, const ui_write_request *rq, char *msg,
                           size_t n);

typedef struct {
    const char *db_path;          /* where --compare runs (and replays) are read */
    const int64_t *compare;       /* run ids drawn as ghost curves */
    size_t ncompare;
    FILE *out, *in;               /* NULL: stdout / stdin */
    const char *term;             /* NULL: $TERM */
    int allow_small;              /* open even below 80x24 (the bench's pty) */
    ui_write_fn write;            /* `w`; NULL: the key says it cannot write here */
    void *write_ctx;
} ui_options;

typedef struct ui_live ui_live;

/* The status of opening the screen on a terminal smaller than it needs (a bad
 * input: exit 2), apart from -1 (no usable terminal: run headless instead).
 * ui_screen_open and ui_replay return it. */
#define UI_SCREEN_TOO_SMALL (-2)

/* Reads the --compare runs; nothing touches the terminal yet, so a bad run id
 * is reported like any other bad input. NULL with a message. The shape is
 * copied (live_shape makes it from a session's configuration). */
ui_live *ui_live_create(const session_shape *shape, const ui_options *o, gl_error *err);
/* Opens the screen. -1 with a message: *fallback is set when there is simply
 * no usable terminal (run headless instead), clear when the terminal is too
 * small (a bad input). */
int ui_live_start(ui_live *u, int *fallback, gl_error *err);
live_observer ui_live_observer(ui_live *u);
/* After live_run: if every arm ended by itself (no q, no signal), the final
 * screen stays up, marked DONE, until q. Returns the SIGINT/SIGTERM/SIGHUP that
 * ended the wait, or 0. */
int ui_live_linger(ui_live *u, const live_result *res);
/* Restores the terminal; the state stays readable until ui_live_free. */
void ui_live_stop(ui_live *u);
const ui_state *ui_live_state(const ui_live *u);
void ui_live_free(ui_live *u);

/* Draws session (0: the newest) of the database on the screen; cursor keys,
 * ',' and '.' move through its evaluation steps, q quits. -1 with a message
 * (UI_SCREEN_TOO_SMALL when the terminal is too small); *fallback set when
 * there is no usable terminal. *signal: the SIGINT, SIGTERM or SIGHUP that
 * ended it, or 0. */
int ui_replay(const char *db_path, int64_t session, const ui_options *o, int *fallback,
              int *signal, gl_error *err);

/* Follows session (0: the newest) of the database on the screen while the
 * process that owns it writes it (ui/watch.c): the live screen's panels,
 * its steering keys sent as rows of the commands table, q leaves the
 * watcher only. When the session ends the final picture stays until q. -1
 * with a message (UI_SCREEN_TOO_SMALL when the terminal is too small);
 * *fallback set when there is no usable terminal. *signal: the SIGINT,
 * SIGTERM or SIGHUP that ended it, or 0. */
int ui_watch(const char *db_path, int64_t session, const ui_options *o, int *fallback,
             int *signal, gl_error *err);

#endif
