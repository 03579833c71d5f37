/* attention: causal multi-head self-attention with the gate of DESIGN §3, one
 * (sequence b, head h) pair per call so the trainer's pool can spread pairs
 * over threads. Forward and backward side by side.
 *
 * Only the work causality needs: the queries are taken in blocks of
 * ATTN_ROWS rows, each against the keys its last row can see, so the
 * products cover the lower-triangular blocks of the T x T scores and no
 * T x T tensor is kept. Per block, one pass over each row does the scale,
 * the causal mask, the gate's mask and the softmax (forward) or their
 * backward. The forward keeps per row the log-sum-exp of its masked logits
 * (and the hard mask as bits, the soft top-k's statistics); the backward
 * recomputes the block's logits, gate scores and probabilities from those. */
#ifndef GATELAB_ATTENTION_H
#define GATELAB_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "gate.h"
#include "metrics.h"

/* Queries per block. 64 rows keep OpenBLAS's kernels busy (its M blocking)
 * while the blocks on the diagonal compute 64 * 63 / 2 scores per block that
 * the causal mask discards: T = 128 computes 75% of the full T x T instead of
 * 50.4%, T = 512 56%. The blocks fix the rounding (a row's products depend
 * on the block's key count), never the thread count. */
#define ATTN_ROWS 64

typedef struct {
    size_t T, C, H, r, k;
    float temp;
    gate_mode mode;
    uint64_t stoch_seed;   /* stochastic masks: fresh per step, fixed per (b, h) */
    size_t b_base;         /* row b is row b_base + b of the global batch (dp.h):
                              the masks are seeded by the global row */
} attn_config;

/* Bytes of one row's hard mask, a bit per key. */
static inline size_t attn_keep_bytes(size_t T)
{
    return (T + 7) / 8;
}

/* The mode's mask is a hard choice of keys (kept as bits for the backward). */
int attn_mode_is_hard(gate_mode m);

/* Per-thread scratch; allocated once by the model. Every call overwrites
 * what it reads, so no value passes from one (b, h) to the next: results do
 * not depend on which thread ran which pair. Row buffers are padded to ld =
 * lanes_round_up(T) floats so the row passes run in whole vector blocks. */
typedef struct {
    size_t ld;
    float *c;              /* [ATTN_ROWS, ld] content logits, then probabilities */
    float *dp;             /* [ATTN_ROWS, ld] dP, then dz */
    float *s;              /* [ATTN_ROWS, ld] gate scores */
    float *ds;             /* [ATTN_ROWS, ld] their gradient */
    float *logm, *sgn;     /* [ld] one row's log-mask and sigmoid(-u) */
    uint32_t *idx;         /* [T] */
    unsigned char *keep, *gate_keep, *oracle_keep;  /* [ld] */
} attn_scratch;

void attn_scratch_init(attn_scratch *w, size_t T);
void attn_scratch_free(attn_scratch *w);
/* Floats one scratch holds (for the model's memory estimate). */
size_t attn_scratch_floats(size_t T);

/* qkv[B,T,3C], gq/gk[B,T,H*r], gbias[H] ->
 *   out[B,T,C] (head h's columns), lse[B,H,T] the log-sum-exp of each row's
 *   masked logits, keep[B,H,T,attn_keep_bytes(T)] the hard masks (hard
 *   modes), stats[B,H,T] soft top-k row statistics (soft modes).
 * metrics (may be NULL) accumulates agreement for this layer and draws
 * sequence 0's masks and probabilities; not thread-safe across heads of the
 * same layer. */
void attention_forward(const attn_config *ac, size_t b, size_t h, float *out, float *lse,
                       uint8_t *keep, gate_row_stats *stats, const float *qkv, const float *gq,
                       const float *gk, const float *gbias, attn_scratch *w,
                       metrics_state *metrics, size_t layer);

/* dout[B,T,C] -> dqkv[B,T,3C] (+=), dgq/dgk[B,T,H*r] (+=), *dbias = this
 * pair's gate-bias gradient (written, 0 without a gate: the caller adds the
 * pairs up in a fixed order, see pool.h). Reads what the forward kept (lse,
 * keep, stats) and recomputes the rest from qkv, gq, gk and gbias. */
void attention_backward(const attn_config *ac, size_t b, size_t h, float *dqkv, float *dgq,
                        float *dgk, const float *dout, const float *lse, const uint8_t *keep,
                        const gate_row_stats *stats, const float *qkv, const float *gq,
                        const float *gk, const float *gbias, attn_scratch *w, float *dbias);

#endif
