/* smooth: the debiased exponential moving average the screen's loss panel
 * and `gatelab plot` smooth curves with, so both draw the same curve from
 * the same values. Plain math: no allocation, no I/O.
 *
 *   ema_t = beta ema_{t-1} + (1 - beta) x_t,   ema_0 = 0
 *   shown_t = ema_t / (1 - beta^t)             (the bias of starting at 0 removed)
 *
 * A point that stands for n raw values (a series merged to save memory) is
 * folded as n updates at once: beta^n in place of beta. The caller picks the
 * space (log of the values on a log axis) and smooths before it downsamples,
 * so changing the axis or the width never changes which wiggles survive. */
#ifndef GATELAB_SMOOTH_H
#define GATELAB_SMOOTH_H

#include <stdint.h>

typedef struct {
    double beta;       /* 0: no smoothing (push returns x) */
    double beta_n;     /* beta^last_n */
    uint32_t last_n;
    double ema, bias;  /* bias = beta^t: what is left of the zero start */
} smooth_ema;

/* beta in [0, 1); 0 turns smoothing off. */
void smooth_ema_init(smooth_ema *e, double beta);
/* Folds x, standing for n >= 1 raw values; returns the debiased average. */
double smooth_ema_push(smooth_ema *e, double x, uint32_t n);

#endif
