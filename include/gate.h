/* gate: the gate modes of DESIGN §3 and the per-row mask math (soft top-k,
 * sigmoid, hard top-k selection), forward and backward side by side.
 * A row is query i's visible keys j = 0..n-1 (n = i+1 under the causal mask). */
#ifndef GATELAB_GATE_H
#define GATELAB_GATE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GATE_DENSE,
    GATE_SOFT,
    GATE_RANDOM,
    GATE_SIGMOID,
    GATE_TOPK,
    GATE_TOPK_RANDOM,
    GATE_STOCHASTIC,
    GATE_ORACLE,
    GATE_DISTILLED,
    GATE_MODE_COUNT
} gate_mode;

const char *gate_mode_name(gate_mode m);
/* Returns -1 for an unknown name. */
int gate_mode_parse(const char *name, gate_mode *out);
/* The gate's scores s_ij shape the mask (gate weights matter). */
int gate_mode_uses_gate(gate_mode m);
/* The optimiser updates the gate weights in this mode during training. */
int gate_mode_trains_gate(gate_mode m);
/* The gate weights are frozen at a seeded random draw. */
int gate_mode_is_random(gate_mode m);
/* Comma-separated list of every mode name, for messages. */
const char *gate_mode_list(void);

/* What the soft top-k backward needs of its forward row. */
typedef struct {
    float tau, sigma;
    uint32_t kth, next;   /* indices of the k-th and (k+1)-th largest s */
} gate_row_stats;

/* Soft top-k (DESIGN §3). s[n] -> logm[n] = log sigmoid((s - tau)/(t*sigma)),
 * with tau the midpoint of the k-th and (k+1)-th largest s and sigma the
 * population std of s plus 1e-6. Rows with n <= k get logm = 0. idx is
 * scratch [n]. */
void gate_soft_topk_forward(float *logm, gate_row_stats *st, const float *s, size_t n,
                            size_t k, float temp, uint32_t *idx);
/* g[n] = dL/dlogm -> ds[n] (written), through s directly, tau and sigma. */
void gate_soft_topk_backward(float *ds, const float *g, const float *s, size_t n, size_t k,
                             float temp, const gate_row_stats *st);

/* logm[n] = log sigmoid(s) */
void gate_sigmoid_forward(float *logm, const float *s, size_t n);
void gate_sigmoid_backward(float *ds, const float *g, const float *s, size_t n);

/* Marks the k largest of x[n] in keep[n] (1 kept, 0 dropped); ties go to the
 * lower index so the choice is deterministic. n <= k keeps all. */
void gate_topk_select(unsigned char *keep, const float *x, size_t n, size_t k, uint32_t *idx);
/* The hard mask is piecewise constant in s: its derivative is 0 wherever it is
 * defined, so ds is all zeros whatever g is. */
void gate_topk_backward(float *ds, const float *g, size_t n);

/* Index of the j-th largest value (0-based rank) among x[idx[0..n)] after
 * partially ordering idx in place (quickselect, descending, ties by index). */
void gate_select_rank(uint32_t *idx, const float *x, size_t n, size_t rank);

#endif
