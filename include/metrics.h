/* metrics: gate-vs-oracle agreement and mask statistics of DESIGN §4, per
 * layer and head, accumulated row by row during an evaluation forward pass. */
#ifndef GATELAB_METRICS_H
#define GATELAB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Sums over rows with more than k visible keys (rows with fewer keep every
 * key and would score 1 trivially). */
typedef struct {
    double rows;
    double precision, recall, f1;  /* G = gate's top-k (or the mask used) vs O = oracle top-k */
    double mass_kept;              /* dense softmax(c) mass inside G */
    double oracle_mass;            /* dense softmax(c) mass inside O: the ceiling */
    double chance;                 /* k / visible: what a uniformly random mask scores */
    double density;                /* kept / visible of the mask in force */
    double entropy;                /* mean binary entropy (bits) of the mask entries */
    double flips, flip_rows;       /* share of G that changed since the last evaluation */
    double oracle_flips, oracle_rows;  /* share of O that changed since the last evaluation */
    int has_gate;                  /* G defined (every mode but dense) */
} metrics_head;

typedef enum {
    METRIC_F1,
    METRIC_PRECISION,
    METRIC_RECALL,
    METRIC_MASS_KEPT,
    METRIC_ORACLE_MASS,
    METRIC_CHANCE,
    METRIC_DENSITY,
    METRIC_ENTROPY,
    METRIC_FLIP_RATE,
    METRIC_GATE_GRAD_NORM,
    METRIC_ORACLE_DRIFT,          /* share of the oracle top-k changed since the last evaluation */
    METRIC_COUNT
} metric_key;

const char *metric_name(metric_key k);

/* Per-run metric state: accumulators [L*H] and the previous evaluation's gate
 * masks for the flip rate (sequence 0 of the eval batch only). */
typedef struct {
    size_t L, H, T, k;
    metrics_head *heads;          /* [L*H] */
    unsigned char *prev_mask;     /* [L*H*T*T] */
    unsigned char *cur_mask;      /* [L*H*T*T] */
    int have_prev;
    /* the oracle's own top-k masks, the same way, for its drift (every
     * mode: the oracle exists without a gate too) */
    unsigned char *prev_oracle, *cur_oracle;   /* [L*H*T*T] */
    int have_prev_oracle;
    double *grad_norm;            /* [L*H], filled by the trainer from gradients */
    /* when set, sequence 0's masks are drawn here as bytes round(255 v),
     * [L*H*T*T]: the mask in force and the oracle top-k mask */
    uint8_t *heat_gate, *heat_oracle;
    /* when set, sequence 0's attention probabilities are drawn here the same
     * way, [L*H*T*T] (the forward keeps no T x T tensor to read them from) */
    uint8_t *heat_attn;
} metrics_state;

void metrics_init(metrics_state *m, size_t L, size_t H, size_t T);
void metrics_free(metrics_state *m);
void metrics_reset(metrics_state *m, size_t k);
/* Ends an evaluation: current masks become the reference for the next flip rate. */
void metrics_finish(metrics_state *m);

/* One query row with n visible keys. c[n] content logits (already scaled);
 * gate_scores[n] or NULL; used_keep[n] (hard modes: the keys kept) or NULL;
 * logm[n] (soft modes: log mask) or NULL. record_flips for sequence 0 only.
 * Scratch: idx[n] and keep buffers of n bytes. */
void metrics_row(metrics_state *m, size_t layer, size_t head, size_t row,
                 const float *c, const float *gate_scores, const unsigned char *used_keep,
                 const float *logm, size_t n, int record_flips,
                 uint32_t *idx, unsigned char *gate_keep, unsigned char *oracle_keep);

/* One query row's attention probabilities p[n] (sequence 0) into heat_attn
 * when it is set, as bytes round(255 p), 0 past n. */
void metrics_attn_row(metrics_state *m, size_t layer, size_t head, size_t row, const float *p,
                      size_t n);

/* The mean of the values that are defined (NaN ones are skipped), NaN when
 * none is: the rule of the per-layer and per-model figures, shared by
 * metrics_layer_value/metrics_model_value and the screen's means
 * (ui_state_layer_mean/ui_state_model_mean), so the two agree. */
typedef struct {
    double sum;
    size_t n;
} metrics_mean;
void metrics_mean_add(metrics_mean *m, double v);
double metrics_mean_get(const metrics_mean *m);

/* Mean of a metric over the rows of one head (NaN when undefined). */
double metrics_value(const metrics_state *m, size_t layer, size_t head, metric_key key);
/* Whether metrics_value has a value to give for this head and key (rows were
 * measured; the mask metrics need a gate, the flip rate an earlier mask):
 * a NaN where it exists is a blow-up, not an absence. The gate grad norm is
 * the caller's to judge (it depends on the mode). */
int metrics_exists(const metrics_state *m, size_t layer, size_t head, metric_key key);
/* metrics_exists for some head of some layer. */
int metrics_model_exists(const metrics_state *m, size_t L, metric_key key);
/* Mean over heads of a layer. */
double metrics_layer_value(const metrics_state *m, size_t layer, metric_key key);
/* Mean of the defined layer means over layers 0..L-1 (NaN when none is). */
double metrics_model_value(const metrics_state *m, size_t L, metric_key key);

/* The sums behind every metrics_value as plain doubles, to carry a measured
 * state to another process (experiment_farm.h): L, H, T, k, then per head
 * its sums, whether it has a gate and its gate grad norm. pack writes
 * metrics_pack_size(m) values (v may be NULL to ask); unpack rebuilds a
 * state that answers metrics_value/_layer_/_model_ exactly as m did (not
 * the masks of its last evaluation: it reads, it does not measure on) and
 * is freed with metrics_free; -1 with a message when v is not a packed
 * state. */
size_t metrics_pack(const metrics_state *m, double *v);
int metrics_unpack(metrics_state *m, const double *v, size_t n, gl_error *e);

#endif
