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
    float tau, sigma, mean;
    uint32_t kth, next;   /* indices of the k-th and (k+1)-th largest s */
} gate_row_stats;

/* A guess at where a row's k largest values start, carried from one row of
 * a causal pair to the next (row i+1 sees row i's keys and one more, under
 * another query): in units of the row's own spread, since the query's norm
 * scales every score of its row. z: the last row's (k+1)-th largest as
 * (x - mean) / std; margin: how far below it the next row looks (widened
 * when a guess falls short, narrowed when it lets many keys through). set 0:
 * no guess yet. Only the speed of gate_select_top depends on it, never its
 * result. */
typedef struct {
    float z, margin;
    int set;
} gate_pivot;

/* The k largest of x[n] (k < n), ties to the lower index: afterwards idx[0..k)
 * holds them (idx[k-1] the k-th largest), idx[k..c) the other candidates and
 * c (returned, > k) how many there are; every index not in idx[0..c) ranks
 * below all of them, so the (k+1)-th largest is the best of idx[k..c). With
 * a pivot (pv set) the candidates are the keys above mean + (z - margin) *
 * std, found in one pass, and the quickselect runs on those alone; too few
 * (the guess was too high) falls back to the whole row. pv (may be NULL) is
 * updated for the next row. idx is scratch [n]. */
size_t gate_select_top(uint32_t *idx, const float *x, size_t n, size_t k, gate_pivot *pv);

/* Soft top-k (DESIGN §3). s[n] -> logm[n] = log sigmoid((s - tau)/(t*sigma)),
 * with tau the midpoint of the k-th and (k+1)-th largest s and sigma the
 * population std of s plus 1e-6. Rows with n <= k get logm = 0. idx is
 * scratch [n]. */
void gate_soft_topk_forward(float *logm, gate_row_stats *st, const float *s, size_t n,
                            size_t k, float temp, uint32_t *idx);
/* g[n] = dL/dlogm -> ds[n] (written), through s directly, tau and sigma. */
void gate_soft_topk_backward(float *ds, const float *g, const float *s, size_t n, size_t k,
                             float temp, const gate_row_stats *st);

/* The soft top-k split for the attention's fused row passes, which keep row
 * buffers of lanes_round_up(n) floats (lanes.h) so that every pass runs in
 * whole vector blocks: the _row functions read and write that many entries,
 * and write 0 past n.
 * gate_soft_topk_stats: the row statistics alone (n > k), pv as for
 * gate_select_top. gate_soft_topk_scale: 1/(t*sigma), what u = (s - tau) *
 * scale is scaled by. */
void gate_soft_topk_stats(gate_row_stats *st, const float *s, size_t n, size_t k,
                          uint32_t *idx, gate_pivot *pv);
float gate_soft_topk_scale(float temp, const gate_row_stats *st);
/* s -> logm = log sigmoid(u), u = (s - tau) * scale, and (sgn not NULL)
 * sgn = sigmoid(-u) = dlogm/du, both from one exponential per key: the soft
 * top-k with (tau, scale) from its statistics, the sigmoid gate with (0, 1). */
void gate_log_mask_row(float *logm, float *sgn, const float *s, size_t n, float tau,
                       float scale);
/* g = dL/dlogm, sgn from gate_log_mask_row -> ds (written) */
void gate_soft_topk_backward_row(float *ds, const float *g, const float *sgn, const float *s,
                                 size_t n, float temp, const gate_row_stats *st);
void gate_sigmoid_backward_row(float *ds, const float *g, const float *sgn, size_t n);

/* Marks the k largest of x[n] in keep[n] (1 kept, 0 dropped); ties go to the
 * lower index so the choice is deterministic. n <= k keeps all.
 * gate_topk_select_pivot: the same choice, faster along a causal pair's rows
 * (pv as for gate_select_top). */
void gate_topk_select(unsigned char *keep, const float *x, size_t n, size_t k, uint32_t *idx);
void gate_topk_select_pivot(unsigned char *keep, const float *x, size_t n, size_t k,
                            uint32_t *idx, gate_pivot *pv);

/* Index of the j-th largest value (0-based rank) among x[idx[0..n)] after
 * partially ordering idx in place (quickselect, descending, ties by index). */
void gate_select_rank(uint32_t *idx, const float *x, size_t n, size_t rank);

#endif
