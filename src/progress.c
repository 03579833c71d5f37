/* progress: pace, time left and the stderr bar (progress.h). */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define BAR_CELLS 20
#define BAR_SECONDS 0.2

void progress_pace_feed(progress_pace *p, uint64_t step, double t)
{
    if (!p->started) {
        p->mark_step = step;
        p->mark_t = t;
        p->started = 1;
        return;
    }
    double dt = t - p->mark_t;
    if (step < p->mark_step) {   /* a new count (the next seed): start over */
        p->mark_step = step;
        p->mark_t = t;
        return;
    }
    if (dt >= (p->pace > 0.0 ? PROGRESS_WINDOW : 0.5) && step > p->mark_step) {
        p->pace = (double)(step - p->mark_step) / dt;
        p->mark_step = step;
        p->mark_t = t;
    }
}

double progress_eta(const progress_pace *p, uint64_t left)
{
    if (!left)
        return 0.0;
    return p->pace > 0.0 ? (double)left / p->pace : NAN;
}

void progress_fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0.0) || s > 1e9) {
        snprintf(buf, n, "?");
        return;
    }
    unsigned long long t = (unsigned long long)(s + 0.5);
    if (t < 60)
        snprintf(buf, n, "%llus", t);
    else if (t < 3600)
        snprintf(buf, n, "%llum%02llus", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, n, "%lluh%02llum", t / 3600, t / 60 % 60);
    else
        snprintf(buf, n, "%llud%02lluh", t / 86400, t / 3600 % 24);
}

void progress_fmt(char *buf, size_t n, double frac, double eta)
{
    char t[32];
    progress_fmt_time(t, sizeof t, eta);
    if (!(frac >= 0.0))
        frac = 0.0;
    /* rounded down: 100% only when everything is done */
    snprintf(buf, n, "%.0f%% ETA %s", floor(100.0 * (frac > 1.0 ? 1.0 : frac) + 1e-9), t);
}

void progress_bar_init(progress_bar *b)
{
    memset(b, 0, sizeof *b);
    b->tty = isatty(STDERR_FILENO);
}

void progress_bar_draw(progress_bar *b, double frac, double eta, const char *label)
{
    if (!b->tty)
        return;
    double now = gl_now();
    if (b->shown && now - b->last < BAR_SECONDS)
        return;
    if (!(frac >= 0.0))
        frac = 0.0;
    if (frac > 1.0)
        frac = 1.0;
    char cells[BAR_CELLS + 1], text[64], line[160];
    int full = (int)(frac * BAR_CELLS);
    for (int i = 0; i < BAR_CELLS; i++)
        cells[i] = i < full ? '#' : '-';
    cells[BAR_CELLS] = 0;
    progress_fmt(text, sizeof text, frac, eta);
    /* short enough for an 80-column terminal: a wrapped line could not be
     * redrawn in place */
    int len = snprintf(line, sizeof line, "[%s] %s  %.30s", cells, text, label ? label : "");
    if (len > 78)
        len = 78;
    /* spaces over whatever a longer previous bar left */
    int pad = b->shown > len ? b->shown - len : 0;
    fprintf(stderr, "\r%.*s%*s", len, line, pad, "");
    if (pad)
        fprintf(stderr, "\r%.*s", len, line);
    fflush(stderr);
    b->shown = len;
    b->last = now;
}

void progress_bar_clear(progress_bar *b)
{
    if (!b->tty || !b->shown)
        return;
    fprintf(stderr, "\r%*s\r", b->shown, "");
    fflush(stderr);
    b->shown = 0;
}
