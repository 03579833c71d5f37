/* ui_screen: the curses screen shared by the live session and the replay —
 * opening and restoring the terminal (on every exit path, fatal ones
 * included), the layout and its one relayout function, the key table that
 * generates both the key bar and the help overlay, and drawing a frame from a
 * ui_state and a ui_view. All curses calls happen on the thread that opened
 * the screen. */
#ifndef GATELAB_UI_SCREEN_H
#define GATELAB_UI_SCREEN_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "ui.h"
#include "ui_draw.h"
#include "ui_state.h"

#define UI_MIN_COLS 80
#define UI_MIN_LINES 24

typedef enum {
    UI_LIVE = 1,
    UI_REPLAY = 2,
    UI_WATCH = 4,    /* `gatelab watch`: a session another process writes */
} ui_mode;

typedef enum {
    UI_ACT_NONE,
    UI_ACT_PAUSE,
    UI_ACT_SWAP,
    UI_ACT_FREEZE,
    UI_ACT_K_UP,
    UI_ACT_K_DOWN,
    UI_ACT_NEXT_ARM,
    UI_ACT_LAYER_PREV,
    UI_ACT_LAYER_NEXT,
    UI_ACT_NEXT_HEAD,
    UI_ACT_RIGHT_MAP,
    UI_ACT_LOG,
    UI_ACT_SMOOTH,
    UI_ACT_CHART,        /* m: the main chart's next metric */
    UI_ACT_HIDE,         /* v: hide / show the selected arm's curve */
    UI_ACT_PIN,          /* p: only the selected arm's curve / all again */
    UI_ACT_ZOOM,         /* z: the next x window */
    UI_ACT_CHECKPOINT,
    UI_ACT_FORK,
    UI_ACT_DETACH,
    UI_ACT_STEP_PREV,
    UI_ACT_STEP_NEXT,
    UI_ACT_STEP_FIRST,
    UI_ACT_STEP_LAST,
    UI_ACT_HELP,
    UI_ACT_QUIT,
    UI_ACT_RESIZE,
    UI_ACT_WRITE,
} ui_action;

/* Train-loss smoothing levels `s` cycles through; 0 is off. */
#define UI_SMOOTH_LEVELS 4
extern const double ui_smooth_beta[UI_SMOOTH_LEVELS];

/* What the main chart shows (`m` cycles them in this order): "loss" is
 * train and val loss together, the others one metric each (ui/loss.c has
 * their titles, units and which axis and smoothing apply). Expert balance
 * is in the cycle only once some arm has experts. */
typedef enum {
    UI_CHART_LOSS,
    UI_CHART_VAL_LOSS,
    UI_CHART_TRAIN_LOSS,
    UI_CHART_F1,
    UI_CHART_MASS_KEPT,
    UI_CHART_GATE_GRAD_NORM,
    UI_CHART_GRAD_NORM,
    UI_CHART_DENSITY,
    UI_CHART_FLIP_RATE,
    UI_CHART_LR,
    UI_CHART_TOKENS_PER_S,
    UI_CHART_EXPERT_BALANCE,
    UI_CHART_ABSORPTION,
    UI_CHART_ORACLE_DRIFT,
    UI_CHART_COUNT
} ui_chart;

/* The x windows `z` cycles through: the last N steps, 0 = every step. */
#define UI_ZOOM_LEVELS 4
extern const uint64_t ui_zoom_steps[UI_ZOOM_LEVELS];

/* What the person chose to look at, and what the screen says back. */
typedef struct {
    ui_mode mode;
    size_t sel, layer, head;   /* selected arm, and the heatmap's layer and head */
    int log_y;
    int smooth;                /* index into ui_smooth_beta */
    int right;                 /* heatmap beside the gate: 0 oracle mask, 1 attention */
    int chart;                 /* ui_chart on the main chart */
    uint32_t hidden;           /* bit i: arm i's curve is hidden */
    size_t pinned;             /* arm + 1 whose curve alone is drawn; 0: none */
    int zoom;                  /* index into ui_zoom_steps */
    int help;                  /* the help overlay is up */
    int confirm_quit;          /* "quit? y/n" is asked */
    char msg[160];
    int msg_bad;
    double msg_until;          /* gl_now() time; 0: until replaced */
    const char *state;         /* RUNNING, PAUSED, DONE, STOPPING, REPLAY, ENDED */
    int newest;                /* watch: the session is the newest (none was named) */
    uint64_t cursor;           /* replay: the evaluation step shown */
    size_t cursor_index, cursor_count;
    double tok_s;              /* all arms */
    double eta;                /* live: seconds until the slowest running arm is done at
                                  its recent pace; NaN: unknown (or a replay) */
} ui_view;

void ui_view_init(ui_view *v, ui_mode mode);
/* Whether arm i's curves are drawn: the pinned arm alone when one is
 * pinned, else every arm not hidden. */
int ui_view_shows_arm(const ui_view *v, size_t i);
void ui_view_message(ui_view *v, int bad, double seconds, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Before a draw: takes state (NULL: keeps the one shown) as the header's
 * state word and clears a timed message that has run out at now; returns
 * the UI_DIRTY_* bits of what changed. */
unsigned ui_view_settle(ui_view *v, const char *state, double now);

typedef struct ui_screen ui_screen;

/* Opens curses on out/in (NULL, NULL: stdout/stdin) with terminal type term
 * (NULL: $TERM) into *scr. Sets the locale from the environment (numbers stay
 * "C") and picks UTF-8 or ASCII from its codeset, colours or monochrome from
 * the terminal. Installs the fatal hook and crash handlers that restore the
 * terminal. 0 when open; otherwise *scr is NULL, with a message, and the
 * status is -1 when there is no usable terminal, UI_SCREEN_TOO_SMALL (ui.h)
 * when it is smaller than UI_MIN_COLS x UI_MIN_LINES (unless allow_small). */
int ui_screen_open(ui_screen **scr, FILE *out, FILE *in, const char *term, int allow_small,
                   gl_error *err);
/* Restores the terminal; safe to call twice. */
void ui_screen_close(ui_screen *s);

/* The next key, ERR when none is waiting. timeout_ms < 0 waits, 0 polls. */
int ui_screen_getch(ui_screen *s, int timeout_ms);
/* 1 when the terminal has hung up (closed, ssh dropped) though no SIGHUP
 * came: the process ignores it, or the terminal's session leader lives on. */
int ui_screen_hung_up(const ui_screen *s);
/* The action a key stands for in this mode (UI_ACT_NONE: not a key of ours). */
ui_action ui_screen_action(const ui_view *v, int ch);
/* Applies the actions that only change what is shown (arm, layer, head, log,
 * smoothing, right map, help, resize); returns the UI_DIRTY_* bits. */
unsigned ui_screen_view_action(ui_screen *s, ui_view *v, const ui_state *st, ui_action a);

/* `w`: has o->write put what the screen shows into files (step: the newest
 * step live, the cursor in a replay) and says where on the message line;
 * returns the UI_DIRTY_* bits. */
unsigned ui_screen_write(ui_view *v, const ui_state *st, const ui_options *o, uint64_t step);

/* Draws the dirty parts (UI_DIRTY_*) and refreshes. */
void ui_screen_draw(ui_screen *s, const ui_state *st, ui_view *v, unsigned dirty);

#endif
