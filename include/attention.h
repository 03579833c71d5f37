/* attention: causal multi-head self-attention with the gate of DESIGN §3, one
 * (sequence b, head h) pair per call so the trainer's pool can spread pairs
 * over threads. Forward and backward side by side. */
#ifndef GATELAB_ATTENTION_H
#define GATELAB_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "gate.h"
#include "metrics.h"

typedef struct {
    size_t T, C, H, r, k;
    float temp;
    gate_mode mode;
    uint64_t stoch_seed;   /* stochastic masks: fresh per step, fixed per (b, h) */
} attn_config;

/* Per-thread scratch; allocated once by the model. Every call overwrites
 * what it reads, so no value passes from one (b, h) to the next: results do
 * not depend on which thread ran which pair. */
typedef struct {
    float *dp;             /* [T*T] */
    float *ds;             /* [T*T] */
    float *logm;           /* [T] */
    uint32_t *idx;         /* [T] */
    unsigned char *keep, *gate_keep, *oracle_keep;  /* [T] */
} attn_scratch;

void attn_scratch_init(attn_scratch *w, size_t T);
void attn_scratch_free(attn_scratch *w);

/* qkv[B,T,3C], gq/gk[B,T,H*r], gbias[H] ->
 *   out[B,T,C] (head h's columns), att[B,H,T,T] probabilities (0 where masked),
 *   s[B,H,T,T] gate scores, stats[B,H,T] soft top-k row statistics.
 * metrics (may be NULL) accumulates agreement for this layer; not thread-safe
 * across heads of the same layer. */
void attention_forward(const attn_config *ac, size_t b, size_t h, float *out, float *att,
                       float *s, gate_row_stats *stats, const float *qkv, const float *gq,
                       const float *gk, const float *gbias, attn_scratch *w,
                       metrics_state *metrics, size_t layer);

/* dout[B,T,C] -> dqkv[B,T,3C] (+=), dgq/dgk[B,T,H*r] (+=), *dbias = this
 * pair's gate-bias gradient (written, 0 without a gate: the caller adds the
 * pairs up in a fixed order, see pool.h) */
void attention_backward(const attn_config *ac, size_t b, size_t h, float *dqkv, float *dgq,
                        float *dgk, const float *dout, const float *att, const float *s,
                        const gate_row_stats *stats, const float *qkv,
                        const float *gq, const float *gk, attn_scratch *w, float *dbias);

#endif
