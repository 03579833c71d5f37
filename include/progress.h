/* progress: what long headless work (run, experiment, distill) shows while
 * it goes — the pace of a step counter, percent done, the time left, and a
 * one-line bar on stderr when stderr is a terminal. Only the main thread of
 * a command calls these; nothing here touches stdout. */
#ifndef GATELAB_PROGRESS_H
#define GATELAB_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

/* Steps per second over the recent past: measured over windows of at least
 * PROGRESS_WINDOW seconds (the first over half a second, so an estimate
 * exists early), so the time an evaluation or a checkpoint takes counts as
 * part of the pace, as it does for the time left. */
#define PROGRESS_WINDOW 5.0

typedef struct {
    uint64_t mark_step;
    double mark_t;
    double pace;      /* steps per second; 0: not measured yet */
    int started;
} progress_pace;

/* step: steps done at time t (seconds, any clock that only grows). */
void progress_pace_feed(progress_pace *p, uint64_t step, double t);
/* Seconds until `left` more steps are done at this pace; NaN when unknown. */
double progress_eta(const progress_pace *p, uint64_t left);

/* "45s", "3m12s", "1h02m", "2d03h"; "?" for NaN or negative. */
void progress_fmt_time(char *buf, size_t n, double seconds);
/* "45% ETA 3m12s" (frac in 0..1). */
void progress_fmt(char *buf, size_t n, double frac, double eta);

/* The stderr bar, drawn only when stderr is a terminal (logs stay clean):
 * "\r[#######-------------]  35% ETA 3m12s  LABEL", redrawn in place. */
typedef struct {
    int tty;          /* stderr is a terminal */
    int shown;        /* columns the bar occupies now (0: none) */
    double last;      /* gl_now() of the last draw */
} progress_bar;

void progress_bar_init(progress_bar *b);
/* Draws at most 5 times a second, unless the line was cleared since. */
void progress_bar_draw(progress_bar *b, double frac, double eta, const char *label);
/* Blanks the bar's line (before other output, and at the end). */
void progress_bar_clear(progress_bar *b);

#endif
