/* experiment_absorption: what `gatelab experiment absorption` measures per
 * seed, shared by the file that runs and measures it (experiment.c) and the
 * one that turns the measurements into the table beside the paper's figures
 * (experiment_table.c). Other experiments need only experiment.h. */
#ifndef GATELAB_EXPERIMENT_ABSORPTION_H
#define GATELAB_EXPERIMENT_ABSORPTION_H

#include <stddef.h>
#include <stdint.h>

#include "distill.h"
#include "experiment.h"
#include "gate.h"
#include "record.h"

/* the arms of every seed, in session order */
typedef enum {
    ABSORB_DENSE,
    ABSORB_SOFT,
    ABSORB_RANDOM,
    ABSORB_SIGMOID,
    ABSORB_TOPK,
    ABSORB_STOCH,
    ABSORB_NARMS
} absorb_arm;
extern const gate_mode absorb_mode[ABSORB_NARMS];

/* line 3 distils onto these (mask-agnostic first, then the co-adapted) */
typedef enum { ABSORB_D_DENSE, ABSORB_D_RANDOM, ABSORB_D_SOFT, ABSORB_NDIST } absorb_dist;
extern const int absorb_dist_arm[ABSORB_NDIST];

/* the finite-difference probe of line 2: a random sign vector u over every
 * gate.q/gate.k weight, the loss at w +- eps u for each eps, then one large
 * random move as the control that the gate does change the loss */
#define ABSORB_PROBE_NEPS 2
extern const float absorb_probe_eps[ABSORB_PROBE_NEPS];

typedef struct {
    size_t grad_nonzero;              /* backprop gate-gradient entries != 0 on the probe batch */
    double change[ABSORB_PROBE_NEPS]; /* max |L(w +- eps u) - L(w)| */
    double slope[ABSORB_PROBE_NEPS];  /* (L(w + eps u) - L(w - eps u)) / (2 eps) */
    double large_change;              /* L(w + 0.1 N(0,1)) - L(w) */
} absorb_probe;

/* one seed: its session, runs, checkpoints and measurements */
typedef struct {
    uint64_t seed;
    int64_t session;
    int64_t run[ABSORB_NARMS];
    char ckpt[ABSORB_NARMS][REC_TEXT];
    double ppl[ABSORB_NARMS];           /* final val ppl, from the store */
    double dense_ppl[ABSORB_NARMS];     /* each checkpoint evaluated dense */
    size_t grad_evals;
    double grad_max;                    /* max |gate_grad_norm| of the topk run */
    absorb_probe probe, soft_probe;     /* the topk arm, and the soft arm as the smooth control */
    double dist_f1[ABSORB_NDIST], dist_chance[ABSORB_NDIST], dist_ppl[ABSORB_NDIST];
    double dist_source_ppl[ABSORB_NDIST];
    double dist_thr_f1[ABSORB_NDIST];
    int64_t dist_run[ABSORB_NDIST];
    double sigmoid_density;
    double oracle_mass[DISTILL_MAX_LAYERS];
    size_t layers;
} absorb_seed;

/* the table of the paper's four lines (and alongside) over n seeds */
void absorb_build_table(experiment_table *t, const absorb_seed *s, size_t n);

#endif
