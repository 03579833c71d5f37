/* screen: the curses lifecycle, the layout, the key table (which writes both
 * the key bar and the help overlay) and the frame loop's drawing. The
 * terminal is restored on every way out: ui_screen_close on normal paths, the
 * gl fatal hook for broken invariants, and crash-signal handlers that restore
 * it (async-signal-safely) before handing the signal back to whoever handled
 * it before (the sanitizers, or the default action: the process dies of it). */
#include "ui_screen.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "ui_panels.h"

const double ui_smooth_beta[UI_SMOOTH_LEVELS] = {0.0, 0.9, 0.98, 0.995};
const uint64_t ui_zoom_steps[UI_ZOOM_LEVELS] = {0, 2000, 500, 100};
#define UI_SMOOTH_DEFAULT 2

struct ui_screen {
    SCREEN *term;
    int open;
    int in_fd;          /* the terminal the keys come from */
    int in_tty;         /* ... was a terminal when the screen opened */
    ui_layout lay;
    ui_loss_scratch loss;
};

/* ---- restoring the terminal on fatal paths ---- */

static atomic_int screen_up;          /* the terminal is in curses mode: a restore is owed */
static pthread_t screen_thread;       /* the one thread that makes curses calls */
/* What endwin would do, prepared while the screen opens so that a signal
 * handler can do it with write and tcsetattr alone (async-signal-safe, and
 * safe on a thread that is not the curses one): the modes the shell left,
 * and attributes off, cursor shown, keypad off, alternate screen left. */
static int tty_fd = -1;
static struct termios tty_shell;
static int tty_have_shell;
static char tty_reset[256];
static size_t tty_reset_len;
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NCRASH (sizeof crash_signals / sizeof crash_signals[0])
static struct sigaction crash_old[NCRASH];

/* Appends terminfo capability cap without its padding ($<5>, which tputs
 * would turn into a delay, not bytes) if the terminal has it. */
static void reset_append(const char *cap)
{
    const char *v = tigetstr(cap);
    if (!v || v == (char *)-1)
        return;
    for (; *v && tty_reset_len + 1 < sizeof tty_reset; v++) {
        if (v[0] == '$' && v[1] == '<') {
            const char *end = strchr(v, '>');
            if (end) {
                v = end;
                continue;
            }
        }
        tty_reset[tty_reset_len++] = *v;
    }
}

static void restore_terminal_raw(void)
{
    if (!atomic_exchange(&screen_up, 0))
        return;
    if (tty_reset_len && write(tty_fd, tty_reset, tty_reset_len) < 0) {
        /* a terminal that is gone (hangup: EIO) cannot be helped; the
         * process carries on with its stop or its crash */
    }
    if (tty_have_shell)
        tcsetattr(tty_fd, TCSANOW, &tty_shell);   /* NOW: a dying process does not wait */
}

/* The gl fatal hook (a broken invariant, out of memory), on any thread:
 * endwin where curses may be called, the raw restore elsewhere, since curses
 * is not thread-safe and the curses thread may be in the middle of a call. */
static void restore_terminal(void)
{
    if (!pthread_equal(pthread_self(), screen_thread)) {
        restore_terminal_raw();
        return;
    }
    if (atomic_exchange(&screen_up, 0))
        endwin();
}

/* A crash signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) on any thread
 * while the screen is up: the terminal comes back first, then the signal
 * goes on to whoever handled it before (a sanitizer's report, or the default
 * action with its core dump), never to nothing: an inherited SIG_IGN becomes
 * the default. */
static void on_crash(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved = errno;
    restore_terminal_raw();
    for (size_t i = 0; i < NCRASH; i++)
        if (crash_signals[i] == sig) {
            struct sigaction prev = crash_old[i];
            if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler == SIG_IGN)
                prev.sa_handler = SIG_DFL;
            sigaction(sig, &prev, NULL);
        }
    /* A fault the CPU raised (si_code > 0) happens again when this returns,
     * and reaches the previous handler with its own address and context. A
     * signal that was sent (kill, raise, abort: si_code <= 0) does not come
     * back by itself: send it again, to this thread, where it is not blocked
     * (SA_NODEFER), so it is acted on before raise returns. */
    if (si->si_code <= 0 || sig == SIGABRT)
        raise(sig);
    errno = saved;
}

static void install_crash_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    for (size_t i = 0; i < NCRASH; i++)
        sigaction(crash_signals[i], &sa, &crash_old[i]);
}

static void remove_crash_handlers(void)
{
    for (size_t i = 0; i < NCRASH; i++)
        sigaction(crash_signals[i], &crash_old[i], NULL);
}

/* ---- open / close ---- */

static int codeset_is_utf8(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "utf8") == 0);
}

int ui_screen_open(ui_screen **scr, FILE *out, FILE *in, const char *term, int allow_small,
                   gl_error *err)
{
    *scr = NULL;
    /* the person's locale for characters; numbers keep "." (JSON, the
     * database and the summary lines are parsed by programs) */
    setlocale(LC_ALL, "");
    setlocale(LC_NUMERIC, "C");
    int utf8 = codeset_is_utf8();
    /* the modes the shell left, before curses changes them */
    tty_fd = fileno(out ? out : stdout);
    tty_have_shell = tcgetattr(tty_fd, &tty_shell) == 0;
    ui_screen *s = xcalloc(1, sizeof *s);
    /* newterm, unlike initscr, returns NULL instead of exiting when the
     * terminal type is unknown */
    s->in_fd = fileno(in ? in : stdin);
    s->in_tty = isatty(s->in_fd);   /* a hung-up one no longer says so */
    s->term = newterm(term, out ? out : stdout, in ? in : stdin);
    if (!s->term) {
        const char *t = term ? term : getenv("TERM");
        free(s);
        return gl_fail(err, "cannot open the screen on terminal type '%s'", t ? t : "(unset)");
    }
    set_term(s->term);
    /* a terminal that cannot move the cursor (TERM=dumb, emacs shells)
     * would get garbage: better the headless lines */
    const char *cup = tigetstr("cup");
    if (!cup || cup == (char *)-1) {
        endwin();
        delscreen(s->term);
        free(s);
        const char *t = term ? term : getenv("TERM");
        return gl_fail(err, "terminal type '%s' cannot address the cursor", t ? t : "(unset)");
    }
    tty_reset_len = 0;
    reset_append("sgr0");
    reset_append("cnorm");
    reset_append("rmkx");
    reset_append("rmcup");
    s->open = 1;
    screen_thread = pthread_self();
    atomic_store(&screen_up, 1);
    gl_set_fatal_hook(restore_terminal);
    install_crash_handlers();
    if (!allow_small && (LINES < UI_MIN_LINES || COLS < UI_MIN_COLS)) {
        int l = LINES, c = COLS;
        ui_screen_close(s);
        gl_fail(err, "terminal too small: %dx%d, the screen needs at least %dx%d "
                     "(enlarge it, or use --headless)", c, l, UI_MIN_COLS, UI_MIN_LINES);
        return UI_SCREEN_TOO_SMALL;
    }
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    ui_draw_setup(utf8, has_colors());
    ui_canvas_init(&s->loss.canvas);
    ui_layout_compute(&s->lay, LINES, COLS);
    *scr = s;
    return 0;
}

void ui_screen_close(ui_screen *s)
{
    if (!s)
        return;
    if (s->open) {
        remove_crash_handlers();
        gl_set_fatal_hook(NULL);
        restore_terminal();
        delscreen(s->term);
        s->open = 0;
    }
    ui_loss_scratch_free(&s->loss);
    free(s);
}

int ui_screen_getch(ui_screen *s, int timeout_ms)
{
    (void)s;
    wtimeout(stdscr, timeout_ms);
    return wgetch(stdscr);
}

/* A hung-up terminal reads end-of-file at once, so a loop that waits for
 * keys would spin; POLLHUP says so without reading. */
int ui_screen_hung_up(const ui_screen *s)
{
    struct pollfd p = {.fd = s->in_fd, .events = POLLIN};
    return s->in_tty && poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* ---- layout ---- */

void ui_layout_compute(ui_layout *l, int lines, int cols)
{
    memset(l, 0, sizeof *l);
    l->lines = lines;
    l->cols = cols;
    if (lines < UI_MIN_LINES || cols < UI_MIN_COLS) {
        l->too_small = 1;
        return;
    }
    l->header = (ui_rect){0, 0, 2, cols};
    l->keys = (ui_rect){lines - 1, 0, 1, cols};
    l->events = (ui_rect){lines - 3, 0, 2, cols};
    l->routing = (ui_rect){lines - 4, 0, 1, cols};
    int top = 2, body = lines - 4 - top;
    int left = cols * 56 / 100;
    l->sep_x = left;
    l->loss = (ui_rect){top, 0, body, left};
    int rx = left + 1, rw = cols - rx;
    /* the heatmap's two square maps want about (rw/2)/2 rows; the agreement
     * panel gets the rest but at least a third */
    int heat_h = (rw - 3) / 4 + 4;
    if (heat_h > body - body / 3)
        heat_h = body - body / 3;
    l->heat = (ui_rect){top, rx, heat_h, rw};
    l->agree = (ui_rect){top + heat_h, rx, body - heat_h, rw};
}

/* ---- keys: one table for the key bar, the help overlay and dispatch ---- */

typedef struct {
    int keys[3];          /* first action */
    ui_action act;
    int keys2[3];         /* second action of a pair, e.g. + and - */
    ui_action act2;
    const char *name;     /* as shown: "+/-" */
    const char *bar;      /* key bar word, NULL: help only */
    const char *help;
    unsigned modes;       /* UI_LIVE | UI_REPLAY | UI_WATCH */
} ui_keydef;

/* every screen; STEER: the keys that steer arms — on the live screen straight
 * to the arms, in watch as rows of the commands table */
#define BOTH (UI_LIVE | UI_REPLAY | UI_WATCH)
#define STEER (UI_LIVE | UI_WATCH)
static const ui_keydef key_table[] = {
    {{' '}, UI_ACT_PAUSE, {0}, UI_ACT_NONE, "space", "pause",
     "pause / resume every arm (each pause and resume is an event)", STEER},
    {{'g'}, UI_ACT_SWAP, {0}, UI_ACT_NONE, "g", "gate",
     "gate of the selected arm: the next of dense soft random sigmoid topk topk-random "
     "stochastic oracle", STEER},
    {{'f'}, UI_ACT_FREEZE, {0}, UI_ACT_NONE, "f", "freeze",
     "freeze / unfreeze the selected arm's gate weights", STEER},
    {{'+', '='}, UI_ACT_K_UP, {'-', '_'}, UI_ACT_K_DOWN, "+/-", "k",
     "keys kept per query (k) up / down for the selected arm, within 1..T", STEER},
    {{'\t'}, UI_ACT_NEXT_ARM, {0}, UI_ACT_NONE, "tab", "arm",
     "select the next arm (heatmap, g, f, +/-, F act on it)", BOTH},
    {{'['}, UI_ACT_LAYER_PREV, {']'}, UI_ACT_LAYER_NEXT, "[/]", "layer",
     "previous / next layer of the heatmap (and where the agreement list starts)", BOTH},
    {{'h'}, UI_ACT_NEXT_HEAD, {0}, UI_ACT_NONE, "h", "head", "next head of the heatmap", BOTH},
    {{'a'}, UI_ACT_RIGHT_MAP, {0}, UI_ACT_NONE, "a", "attn",
     "right heatmap: oracle top-k mask / attention probabilities", BOTH},
    {{'l'}, UI_ACT_LOG, {0}, UI_ACT_NONE, "l", "log",
     "loss axis: logarithmic / linear (the loss charts; the others are linear)", BOTH},
    {{'s'}, UI_ACT_SMOOTH, {0}, UI_ACT_NONE, "s", "smooth",
     "smoothing of the per-step curves (train loss, grad norm): debiased EMA 0.9 / 0.98 / "
     "0.995 / off", BOTH},
    {{'m'}, UI_ACT_CHART, {0}, UI_ACT_NONE, "m", "chart",
     "main chart: loss (train + val), val loss, train loss, F1 vs oracle, mass kept, gate grad "
     "norm, grad norm, density, flip rate, lr, tokens/s, expert balance (with experts)", BOTH},
    {{'v'}, UI_ACT_HIDE, {0}, UI_ACT_NONE, "v", NULL,
     "hide / show the selected arm's curves on the main chart", BOTH},
    {{'p'}, UI_ACT_PIN, {0}, UI_ACT_NONE, "p", NULL,
     "pin the selected arm: only its curves on the main chart; p again shows the others", BOTH},
    {{'z'}, UI_ACT_ZOOM, {0}, UI_ACT_NONE, "z", NULL,
     "main chart's x axis: every step / the last 2000 / 500 / 100 steps (replay: up to the "
     "cursor)", BOTH},
    {{'c'}, UI_ACT_CHECKPOINT, {0}, UI_ACT_NONE, "c", "ckpt", "checkpoint every arm now",
     STEER},
    {{'F'}, UI_ACT_FORK, {0}, UI_ACT_NONE, "F", "fork",
     "fork the selected arm into a new arm running the next gate mode", STEER},
    {{'d'}, UI_ACT_DETACH, {0}, UI_ACT_NONE, "d", "detach",
     "detach: close the screen, the session trains on in the background with its output in "
     "<db>-session-N.log next to the database; `gatelab watch N --db PATH` re-attaches",
     UI_LIVE},
    /* the names are the keys themselves: < and > jump to the ends, the
     * cursor keys (or , and .) move one evaluation */
    {{KEY_LEFT, ','}, UI_ACT_STEP_PREV, {KEY_RIGHT, '.'}, UI_ACT_STEP_NEXT, ",/.", "step",
     "previous / next evaluation step (left / right cursor keys, or , and .)", UI_REPLAY},
    {{KEY_HOME, '<'}, UI_ACT_STEP_FIRST, {KEY_END, '>'}, UI_ACT_STEP_LAST, "</>", "ends",
     "jump to the first / last evaluation step (< and >, or home and end)", UI_REPLAY},
    /* help only: the bar has no room left at 120 columns for q once
     * every key has a word there */
    {{'w'}, UI_ACT_WRITE, {0}, UI_ACT_NONE, "w", NULL,
     "write the loss chart and the selected arm's heatmap as SVG files next to the database "
     "(the message line says where)", BOTH},
    {{'?'}, UI_ACT_HELP, {0}, UI_ACT_NONE, "?", "help", "this help (any key closes it)", BOTH},
    {{'q'}, UI_ACT_QUIT, {0}, UI_ACT_NONE, "q", "quit",
     "quit; asks \"quit? y/n\" while arms run, then stops them cleanly (stored as stopped)",
     UI_LIVE | UI_REPLAY},
    {{'q'}, UI_ACT_QUIT, {0}, UI_ACT_NONE, "q", "quit",
     "quit the watcher; the session goes on training", UI_WATCH},
};
#define NKEYS (sizeof key_table / sizeof key_table[0])

ui_action ui_screen_action(const ui_view *v, int ch)
{
    if (ch == KEY_RESIZE)
        return UI_ACT_RESIZE;
    for (size_t i = 0; i < NKEYS; i++) {
        const ui_keydef *k = &key_table[i];
        if (!(k->modes & v->mode))
            continue;
        for (int j = 0; j < 3; j++) {
            if (k->keys[j] && k->keys[j] == ch)
                return k->act;
            if (k->keys2[j] && k->keys2[j] == ch)
                return k->act2;
        }
    }
    return UI_ACT_NONE;
}

void ui_view_init(ui_view *v, ui_mode mode)
{
    memset(v, 0, sizeof *v);
    v->mode = mode;
    v->log_y = 1;
    v->smooth = UI_SMOOTH_DEFAULT;
    v->state = mode == UI_REPLAY ? "REPLAY" : mode == UI_WATCH ? "WATCHING" : "RUNNING";
    v->eta = NAN;
}

int ui_view_shows_arm(const ui_view *v, size_t i)
{
    if (v->pinned)
        return i + 1 == v->pinned;
    return i >= 32 || !(v->hidden & (1u << i));
}

void ui_view_message(ui_view *v, int bad, double seconds, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    v->msg_bad = bad;
    v->msg_until = seconds > 0 ? gl_now() + seconds : 0.0;
}

unsigned ui_view_settle(ui_view *v, const char *state, double now)
{
    unsigned dirty = 0;
    if (state && state != v->state) {
        v->state = state;
        dirty |= UI_DIRTY_HEADER;
    }
    if (v->msg[0] && v->msg_until > 0 && now > v->msg_until) {
        v->msg[0] = 0;
        dirty |= UI_DIRTY_KEYS;
    }
    return dirty;
}

unsigned ui_screen_view_action(ui_screen *s, ui_view *v, const ui_state *st, ui_action a)
{
    switch (a) {
    case UI_ACT_NEXT_ARM:
        if (st->narms)
            v->sel = (v->sel + 1) % st->narms;
        return UI_DIRTY_HEADER | UI_DIRTY_HEAT | UI_DIRTY_AGREE;
    case UI_ACT_LAYER_PREV:
        v->layer = (v->layer + st->L - 1) % st->L;
        return UI_DIRTY_HEAT | UI_DIRTY_AGREE;
    case UI_ACT_LAYER_NEXT:
        v->layer = (v->layer + 1) % st->L;
        return UI_DIRTY_HEAT | UI_DIRTY_AGREE;
    case UI_ACT_NEXT_HEAD:
        v->head = (v->head + 1) % st->H;
        return UI_DIRTY_HEAT;
    case UI_ACT_RIGHT_MAP:
        v->right = !v->right;
        return UI_DIRTY_HEAT;
    case UI_ACT_LOG:
        v->log_y = !v->log_y;
        return UI_DIRTY_LOSS;
    case UI_ACT_SMOOTH:
        v->smooth = (v->smooth + 1) % UI_SMOOTH_LEVELS;
        return UI_DIRTY_LOSS;
    case UI_ACT_CHART:
        do
            v->chart = (v->chart + 1) % UI_CHART_COUNT;
        while (v->chart == UI_CHART_EXPERT_BALANCE && !ui_state_has_experts(st));
        return UI_DIRTY_LOSS;
    case UI_ACT_HIDE: {
        if (!st->narms || v->sel >= 32)
            return 0;
        const char *name = st->arms[v->sel].name;
        v->hidden ^= 1u << v->sel;
        if (v->pinned == v->sel + 1)
            v->pinned = 0;   /* a pinned arm hidden: nothing would be left to see */
        ui_view_message(v, 0, 2.0, "%s: curves %s", name,
                        v->hidden & (1u << v->sel) ? "hidden (v shows them)" : "shown");
        return UI_DIRTY_LOSS | UI_DIRTY_KEYS;
    }
    case UI_ACT_PIN:
        if (!st->narms)
            return 0;
        if (v->pinned == v->sel + 1) {
            v->pinned = 0;
            ui_view_message(v, 0, 2.0, "every arm's curves again");
        } else {
            v->pinned = v->sel + 1;
            ui_view_message(v, 0, 2.0, "pinned %s: only its curves (p again: every arm)",
                            st->arms[v->sel].name);
        }
        return UI_DIRTY_LOSS | UI_DIRTY_KEYS;
    case UI_ACT_ZOOM:
        v->zoom = (v->zoom + 1) % UI_ZOOM_LEVELS;
        return UI_DIRTY_LOSS;
    case UI_ACT_HELP:
        v->help = !v->help;
        return UI_DIRTY_ALL;
    case UI_ACT_RESIZE:
        ui_layout_compute(&s->lay, LINES, COLS);
        clear();
        return UI_DIRTY_ALL;
    default:
        return 0;
    }
}

unsigned ui_screen_write(ui_view *v, const ui_state *st, const ui_options *o, uint64_t step)
{
    if (!o->write) {
        ui_view_message(v, 1, 3.0, "w: this screen cannot write files");
        return UI_DIRTY_KEYS;
    }
    ui_write_request rq = {.db_path = o->db_path,
                           .arm = v->sel,
                           .layer = v->layer,
                           .head = v->head,
                           .log_y = v->log_y,
                           .smooth = ui_smooth_beta[v->smooth],
                           .step = step,
                           .chart = v->chart};
    char msg[sizeof v->msg];
    int rc = o->write(o->write_ctx, st, &rq, msg, sizeof msg);
    /* where the files are stays until the next message */
    ui_view_message(v, rc != 0, rc ? 5.0 : 0.0, "%s", msg);
    return UI_DIRTY_KEYS;
}

/* ---- drawing ---- */

static void draw_keybar(ui_rect r, const ui_view *v)
{
    ui_clear(r);
    if (v->confirm_quit || (v->msg[0] && (v->msg_until == 0 || gl_now() < v->msg_until))) {
        const char *m = v->confirm_quit ? "quit? y/n  (y stops every arm; they are stored as "
                                          "stopped)" : v->msg;
        ui_textf(r.y, r.x, r.w, ui_attr(v->msg_bad || v->confirm_quit ? UI_ATTR_WARN
                                                                      : UI_ATTR_TITLE),
                 " %s ", m);
        return;
    }
    /* `?` and `q` are what a person needs to find everything else, so their
     * room is kept; a word that does not fit is left out (it is still in the
     * help overlay) and the ones after it may still fit */
    int x = r.x, kept = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const ui_keydef *k = &key_table[i];
        if ((k->modes & v->mode) && k->bar && (k->act == UI_ACT_HELP || k->act == UI_ACT_QUIT))
            kept += (int)(strlen(k->name) + strlen(k->bar)) + 2;
    }
    for (size_t i = 0; i < NKEYS && x < r.x + r.w; i++) {
        const ui_keydef *k = &key_table[i];
        if (!(k->modes & v->mode) || !k->bar)
            continue;
        const int need = (int)(strlen(k->name) + strlen(k->bar)) + 2;
        const int essential = k->act == UI_ACT_HELP || k->act == UI_ACT_QUIT;
        if (essential)
            kept -= need;
        if (x + need + kept > r.x + r.w)
            continue;
        x += ui_text(r.y, x, r.x + r.w - x, ui_attr(UI_ATTR_KEY), k->name);
        x += ui_textf(r.y, x, r.x + r.w - x, A_NORMAL, " %s ", k->bar);
    }
}

/* Splits text into lines of at most w columns at spaces; returns the count
 * and, for line `want`, its start and length. */
static int wrap(const char *t, int w, int want, const char **start, int *len)
{
    int n = 0;
    while (*t) {
        int l = (int)strlen(t);
        if (l > w) {
            l = w;
            while (l > 0 && t[l] != ' ')
                l--;
            if (l == 0)
                l = w;
        }
        if (n == want) {
            *start = t;
            *len = l;
        }
        n++;
        t += l;
        while (*t == ' ')
            t++;
    }
    return n;
}

static void draw_help(const ui_view *v)
{
    int w = COLS - 4 < 110 ? COLS - 4 : 110, tw = w - 14, n = 0;
    const char *ls;
    int ll;
    for (size_t i = 0; i < NKEYS; i++)
        if (key_table[i].modes & v->mode)
            n += wrap(key_table[i].help, tw, -1, &ls, &ll);
    int h = n + 4;
    if (h > LINES - 2)
        h = LINES - 2;
    int y = (LINES - h) / 2, x = (COLS - w) / 2;
    ui_rect r = {y, x, h, w};
    ui_clear(r);
    ui_hline(y, x, w, A_BOLD);
    ui_hline(y + h - 1, x, w, A_BOLD);
    ui_vline(y, x, h, A_BOLD);
    ui_vline(y, x + w - 1, h, A_BOLD);
    ui_glyph(y, x, L'┌', '+', A_BOLD);
    ui_glyph(y, x + w - 1, L'┐', '+', A_BOLD);
    ui_glyph(y + h - 1, x, L'└', '+', A_BOLD);
    ui_glyph(y + h - 1, x + w - 1, L'┘', '+', A_BOLD);
    ui_text(y, x + 2, w - 4, ui_attr(UI_ATTR_TITLE),
            v->mode == UI_REPLAY  ? " Keys (replay) "
            : v->mode == UI_WATCH ? " Keys (watch: steering keys send commands to the session) "
                                  : " Keys ");
    int row = y + 1;
    for (size_t i = 0; i < NKEYS && row < y + h - 2; i++) {
        const ui_keydef *k = &key_table[i];
        if (!(k->modes & v->mode))
            continue;
        ui_text(row, x + 2, 9, ui_attr(UI_ATTR_KEY), k->name);
        int lines = wrap(k->help, tw, -1, &ls, &ll);
        for (int j = 0; j < lines && row < y + h - 2; j++, row++) {
            char buf[256];
            wrap(k->help, tw, j, &ls, &ll);
            snprintf(buf, sizeof buf, "%.*s", ll, ls);
            ui_text(row, x + 12, tw, A_NORMAL, buf);
        }
    }
    ui_text(y + h - 2, x + 2, w - 4, ui_attr(UI_ATTR_DIM), "any key closes this help");
}

static void draw_too_small(int quit)
{
    erase();
    const char *l1 = "terminal too small";
    char l2[64];
    snprintf(l2, sizeof l2, "%dx%d, need %dx%d", COLS, LINES, UI_MIN_COLS, UI_MIN_LINES);
    const char *l3 = quit ? "quit? y/n" : "enlarge it; q quits";
    int y = LINES / 2 - 1;
    ui_text(y, (COLS - (int)strlen(l1)) / 2, COLS, ui_attr(UI_ATTR_WARN), l1);
    ui_text(y + 1, (COLS - (int)strlen(l2)) / 2, COLS, A_NORMAL, l2);
    ui_text(y + 2, (COLS - (int)strlen(l3)) / 2, COLS, ui_attr(UI_ATTR_DIM), l3);
}

void ui_screen_draw(ui_screen *s, const ui_state *st, ui_view *v, unsigned dirty)
{
    if (!s || !s->open)
        return;
    /* curses may have learned the size without a KEY_RESIZE yet */
    if (s->lay.lines != LINES || s->lay.cols != COLS) {
        ui_layout_compute(&s->lay, LINES, COLS);
        clear();
        dirty = UI_DIRTY_ALL;
    }
    const ui_layout *l = &s->lay;
    if (l->too_small) {
        draw_too_small(v->confirm_quit);
        refresh();
        return;
    }
    if (v->sel >= st->narms && st->narms)
        v->sel = st->narms - 1;
    if (v->help)
        dirty = UI_DIRTY_ALL;
    if (dirty & UI_DIRTY_HEADER)
        ui_header_draw(l->header, st, v);
    if (dirty & UI_DIRTY_LOSS)
        ui_loss_draw(l->loss, st, v, &s->loss);
    if (dirty & (UI_DIRTY_LOSS | UI_DIRTY_HEAT | UI_DIRTY_AGREE))
        ui_vline(l->loss.y, l->sep_x, l->loss.h, ui_attr(UI_ATTR_DIM));
    if (dirty & UI_DIRTY_HEAT)
        ui_heat_draw(l->heat, st, v);
    if (dirty & UI_DIRTY_AGREE)
        ui_agree_draw(l->agree, st, v);
    if (dirty & (UI_DIRTY_EVENTS | UI_DIRTY_LOSS)) {
        ui_routing_draw(l->routing, st, v);
        ui_events_draw(l->events, st, v);
    }
    draw_keybar(l->keys, v);
    if (v->help)
        draw_help(v);
    refresh();
}
