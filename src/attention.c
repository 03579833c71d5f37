/* attention: per-(b, h) causal attention with gate masks, over row blocks of
 * ATTN_ROWS queries against the keys they can see (attention.h). Content
 * logits c = q.k/sqrt(head_dim); gate scores s = gq.gk/sqrt(r) + b_h; the
 * mode decides how s (or c, or chance) turns into the mask added to c. All
 * matrix products go through cblas_sgemm; everything between them is one
 * fused pass per row, in the vectorised forms of lanes.h. */
#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lanes.h"
#include "rng.h"

int attn_mode_is_hard(gate_mode m)
{
    return m == GATE_TOPK || m == GATE_TOPK_RANDOM || m == GATE_DISTILLED ||
           m == GATE_ORACLE || m == GATE_STOCHASTIC;
}

size_t attn_scratch_floats(size_t T)
{
    /* four blocks and two rows of floats; the index and the three byte rows
     * counted as floats too */
    const size_t ld = lanes_round_up(T);
    return 4 * ATTN_ROWS * ld + 2 * ld + T + 3 * (ld + 3) / 4;
}

void attn_scratch_init(attn_scratch *w, size_t T)
{
    const size_t ld = lanes_round_up(T);
    w->ld = ld;
    w->c = xcalloc(ATTN_ROWS * ld, sizeof(float));
    w->dp = xcalloc(ATTN_ROWS * ld, sizeof(float));
    w->s = xcalloc(ATTN_ROWS * ld, sizeof(float));
    w->ds = xcalloc(ATTN_ROWS * ld, sizeof(float));
    w->logm = xcalloc(ld, sizeof(float));
    w->sgn = xcalloc(ld, sizeof(float));
    w->idx = xcalloc(T, sizeof(uint32_t));
    w->keep = xcalloc(ld, 1);
    w->gate_keep = xcalloc(ld, 1);
    w->oracle_keep = xcalloc(ld, 1);
}

void attn_scratch_free(attn_scratch *w)
{
    free(w->c);
    free(w->dp);
    free(w->s);
    free(w->ds);
    free(w->logm);
    free(w->sgn);
    free(w->idx);
    free(w->keep);
    free(w->gate_keep);
    free(w->oracle_keep);
    memset(w, 0, sizeof *w);
}

/* Chooses k of n keys uniformly (partial Fisher-Yates). */
static void stochastic_select(unsigned char *keep, size_t n, size_t k, uint32_t *idx,
                              rng_state *r)
{
    if (n <= k) {
        memset(keep, 1, n);
        return;
    }
    for (size_t j = 0; j < n; j++)
        idx[j] = (uint32_t)j;
    memset(keep, 0, n);
    for (size_t j = 0; j < k; j++) {
        size_t pick = j + (size_t)rng_below(r, n - j);
        uint32_t t = idx[j];
        idx[j] = idx[pick];
        idx[pick] = t;
        keep[idx[j]] = 1;
    }
}

/* ---- the row passes: z [lanes_round_up(n)] is one row of a block ---- */

/* The row passes stay functions of their own: inlined into their callers,
 * GCC 12 stops vectorising their loops (it no longer proves the rows
 * distinct), and a call per row costs nothing beside a row's work. */
#define ROW_PASS __attribute__((noinline)) static

/* The masked logits of a row with n visible keys, in place: z + logm (soft
 * modes, logm not NULL), z where kept (hard modes, keep not NULL) or z; -inf
 * for the keys not kept and from n on. */
ROW_PASS void row_mask(float *restrict z, const float *restrict logm,
                     const unsigned char *restrict keep, size_t n)
{
    const float ninf = -INFINITY;
    const size_t end = lanes_round_up(n);
    if (logm)
        LANES_FOR(j, u, end, {
            (void)u;
            const float v = z[j] + logm[j];
            z[j] = j < n ? v : ninf;
        });
    else if (keep)
        LANES_FOR(j, u, end, {
            (void)u;
            const float x = z[j];
            const uint32_t kept = keep[j], visible = j < n;
            z[j] = kept & visible ? x : ninf;
        });
    else
        LANES_FOR(j, u, end, {
            (void)u;
            const float x = z[j];
            z[j] = j < n ? x : ninf;
        });
}

/* The hard mask of a row, bits[attn_keep_bytes] from keep[n] and back
 * (keys from n on are 0). */
static void keep_pack(uint8_t *bits, const unsigned char *keep, size_t n)
{
    memset(bits, 0, (n + 7) / 8);
    for (size_t j = 0; j < n; j++)
        bits[j >> 3] |= (uint8_t)(keep[j] << (j & 7));
}

static void keep_unpack(unsigned char *restrict keep, const uint8_t *restrict bits, size_t n)
{
    for (size_t j = 0; j < n; j++)
        keep[j] = (bits[j >> 3] >> (j & 7)) & 1;
}

/* The gate bias, added to a row of scores over its padded length. */
ROW_PASS void row_add(float *restrict x, float v, size_t n)
{
    LANES_FOR(j, u, lanes_round_up(n), {
        (void)u;
        x[j] += v;
    });
}

/* masked logits z (row_mask) -> probabilities in place over the padded row,
 * then 0 up to n1 (the block's keys); returns the log-sum-exp */
ROW_PASS float row_softmax(float *restrict z, size_t n, size_t n1)
{
    const size_t end = lanes_round_up(n);
    const float m = lanes_max(z, end);
    float acc[LANES] = {0};
    LANES_FOR(j, u, end, {
        const float e = lanes_exp(z[j] - m);
        z[j] = e;
        acc[u] += e;
    });
    float sum = 0.0f;
    for (size_t u = 0; u < LANES; u++)
        sum += acc[u];
    const float inv = 1.0f / sum;
    LANES_FOR(j, u, end, {
        (void)u;
        z[j] *= inv;
    });
    if (n1 > end)
        memset(z + end, 0, (n1 - end) * sizeof(float));
    return m + logf(sum);
}

/* masked logits z, the forward's log-sum-exp -> probabilities in place,
 * then 0 up to n1 */
ROW_PASS void row_probs(float *restrict z, float lse, size_t n, size_t n1)
{
    const size_t end = lanes_round_up(n);
    LANES_FOR(j, u, end, {
        (void)u;
        z[j] = lanes_exp(z[j] - lse);
    });
    if (n1 > end)
        memset(z + end, 0, (n1 - end) * sizeof(float));
}

/* softmax backward over a row: p, dp (dL/dp) -> dp = dz = p * (dp - p.dp),
 * 0 from n up to n1 */
ROW_PASS void row_softmax_backward(float *restrict dp, const float *restrict p, size_t n,
                                 size_t n1)
{
    const size_t end = lanes_round_up(n);
    /* dp past n1 was never written by the block's product: cleared first so
     * that p = 0 there cannot meet a stale non-finite value */
    LANES_FOR(j, u, end, {
        (void)u;
        const float d = dp[j];
        dp[j] = j < n ? d : 0.0f;
    });
    const float dot = lanes_dot(p, dp, end);
    LANES_FOR(j, u, end, {
        (void)u;
        dp[j] = p[j] * (dp[j] - dot);
    });
    if (n1 > end)
        memset(dp + end, 0, (n1 - end) * sizeof(float));
}

/* ---- forward ---- */

/* One row i (n = i + 1 visible keys) of a forward block: z [ld] its scaled
 * content logits, srow [ld] its gate scores (gated modes) -> z its
 * probabilities up to n1, lse, and the mode's saved mask. */
typedef struct {
    const attn_config *ac;
    size_t b, h, layer;
    attn_scratch *w;
    metrics_state *metrics;
    gate_pivot pv;
    rng_state stoch;
} fwd_pair;

static float row_forward(fwd_pair *f, size_t i, size_t n1, float *z, float *srow, float bias,
                         uint8_t *bits, gate_row_stats *st)
{
    const attn_config *ac = f->ac;
    attn_scratch *w = f->w;
    const size_t n = i + 1, k = ac->k;
    const unsigned char *keep = NULL;
    const float *logm = NULL;
    if (srow)
        row_add(srow, bias, n);
    switch (ac->mode) {
    case GATE_DENSE:
        break;
    case GATE_SOFT:
    case GATE_RANDOM:
        if (n > k) {
            gate_soft_topk_stats(st, srow, n, k, w->idx, &f->pv);
            gate_log_mask_row(w->logm, NULL, srow, n, st->tau, gate_soft_topk_scale(ac->temp, st));
            logm = w->logm;
        } else {
            *st = (gate_row_stats){.tau = 0.0f, .sigma = 1.0f};
        }
        break;
    case GATE_SIGMOID:
        gate_log_mask_row(w->logm, NULL, srow, n, 0.0f, 1.0f);
        logm = w->logm;
        break;
    case GATE_TOPK:
    case GATE_TOPK_RANDOM:
    case GATE_DISTILLED:
        gate_topk_select_pivot(w->keep, srow, n, k, w->idx, &f->pv);
        keep = w->keep;
        break;
    case GATE_ORACLE:
        gate_topk_select_pivot(w->keep, z, n, k, w->idx, &f->pv);
        keep = w->keep;
        break;
    case GATE_STOCHASTIC:
        stochastic_select(w->keep, n, k, w->idx, &f->stoch);
        keep = w->keep;
        break;
    case GATE_MODE_COUNT:
        GL_ASSERT(!"bad gate mode");
    }
    if (f->metrics)
        metrics_row(f->metrics, f->layer, f->h, i, z, srow, keep, logm, n, f->b == 0, w->idx,
                    w->gate_keep, w->oracle_keep);
    if (keep)
        keep_pack(bits, keep, n);
    row_mask(z, logm, keep, n);
    const float lse = row_softmax(z, n, n1);
    if (f->metrics && f->b == 0)
        metrics_attn_row(f->metrics, f->layer, f->h, i, z, n);
    return lse;
}

void attention_forward(const attn_config *ac, size_t b, size_t h, float *out, float *lse,
                       uint8_t *keep, gate_row_stats *stats, const float *qkv, const float *gq,
                       const float *gk, const float *gbias, attn_scratch *w,
                       metrics_state *metrics, size_t layer)
{
    const size_t T = ac->T, C = ac->C, H = ac->H, hd = C / H, r = ac->r, Hr = H * r;
    const size_t bh = b * H + h, ld = w->ld, kb = attn_keep_bytes(T);
    const float *q = qkv + b * T * 3 * C + h * hd;
    const float *kk = q + C;
    const float *v = q + 2 * C;
    const float *gqb = gq + b * T * Hr + h * r;
    const float *gkb = gk + b * T * Hr + h * r;
    const int gated = gate_mode_uses_gate(ac->mode);
    const float scale = 1.0f / sqrtf((float)hd), rs = 1.0f / sqrtf((float)r);
    fwd_pair f = {.ac = ac, .b = b, .h = h, .layer = layer, .w = w, .metrics = metrics};
    if (ac->mode == GATE_STOCHASTIC)
        rng_seed(&f.stoch, rng_derive(ac->stoch_seed, (ac->b_base + b) * H + h));

    for (size_t i0 = 0; i0 < T; i0 += ATTN_ROWS) {
        /* rows i0..i1-1 against keys 0..n1-1 */
        const size_t i1 = i0 + ATTN_ROWS < T ? i0 + ATTN_ROWS : T, rows = i1 - i0, n1 = i1;
        /* c = q k^T / sqrt(hd) [rows, n1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n1, (int)hd, scale,
                    q + i0 * 3 * C, (int)(3 * C), kk, (int)(3 * C), 0.0f, w->c, (int)ld);
        /* s = gq gk^T / sqrt(r) [rows, n1] (+ b_h in the row pass) */
        if (gated)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n1, (int)r, rs,
                        gqb + i0 * Hr, (int)Hr, gkb, (int)Hr, 0.0f, w->s, (int)ld);
        for (size_t i = i0; i < i1; i++)
            lse[bh * T + i] = row_forward(&f, i, n1, w->c + (i - i0) * ld,
                                          gated ? w->s + (i - i0) * ld : NULL,
                                          gated ? gbias[h] : 0.0f, keep + (bh * T + i) * kb,
                                          stats + bh * T + i);
        /* y = P v [rows, hd] into head h's columns of out */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)hd, (int)n1, 1.0f,
                    w->c, (int)ld, v, (int)(3 * C), 0.0f, out + (b * T + i0) * C + h * hd,
                    (int)C);
    }
}

/* ---- backward ---- */

/* One row i of a backward block: z [ld] its recomputed content logits,
 * srow its recomputed gate scores (soft and sigmoid modes), dp [ld] dL/dP ->
 * z its probabilities, dp = dz, dsrow = ds (soft and sigmoid), each up to
 * n1; returns the row's sum of ds (the gate bias's gradient). */
static float row_backward(const attn_config *ac, attn_scratch *w, size_t i, size_t n1, float *z,
                          float *dp, float *srow, float *dsrow, float bias, float lse,
                          const uint8_t *bits, const gate_row_stats *st)
{
    const size_t n = i + 1, k = ac->k;
    const int soft = ac->mode == GATE_SOFT || ac->mode == GATE_RANDOM;
    const float *logm = NULL;
    const unsigned char *keep = NULL;
    if (srow) {
        row_add(srow, bias, n);
        if (soft && n > k) {
            gate_log_mask_row(w->logm, w->sgn, srow, n, st->tau,
                              gate_soft_topk_scale(ac->temp, st));
            logm = w->logm;
        } else if (!soft) {
            gate_log_mask_row(w->logm, w->sgn, srow, n, 0.0f, 1.0f);
            logm = w->logm;
        }
    } else if (attn_mode_is_hard(ac->mode)) {
        keep_unpack(w->keep, bits, n);
        keep = w->keep;
    }
    row_mask(z, logm, keep, n);
    row_probs(z, lse, n, n1);
    row_softmax_backward(dp, z, n, n1);
    if (!srow)
        return 0.0f;
    /* dz also reaches the mask term: dlogm = dz */
    if (logm && soft)
        gate_soft_topk_backward_row(dsrow, dp, w->sgn, srow, n, ac->temp, st);
    else if (logm)
        gate_sigmoid_backward_row(dsrow, dp, w->sgn, n);
    else
        memset(dsrow, 0, lanes_round_up(n) * sizeof(float));
    const size_t end = lanes_round_up(n);
    if (n1 > end)
        memset(dsrow + end, 0, (n1 - end) * sizeof(float));
    return lanes_sum(dsrow, end);
}

void attention_backward(const attn_config *ac, size_t b, size_t h, float *dqkv, float *dgq,
                        float *dgk, const float *dout, const float *lse, const uint8_t *keep,
                        const gate_row_stats *stats, const float *qkv, const float *gq,
                        const float *gk, const float *gbias, attn_scratch *w, float *dbias)
{
    const size_t T = ac->T, C = ac->C, H = ac->H, hd = C / H, r = ac->r, Hr = H * r;
    const size_t bh = b * H + h, ld = w->ld, kb = attn_keep_bytes(T);
    const float *q = qkv + b * T * 3 * C + h * hd;
    const float *kk = q + C;
    const float *v = q + 2 * C;
    float *dq = dqkv + b * T * 3 * C + h * hd;
    float *dk = dq + C;
    float *dv = dq + 2 * C;
    const float *dy = dout + b * T * C + h * hd;
    const size_t off = b * T * Hr + h * r;
    const float scale = 1.0f / sqrtf((float)hd), rs = 1.0f / sqrtf((float)r);
    /* the gate gets a gradient from the soft masks only: the hard ones are
     * piecewise constant in s (ds = 0 wherever it is defined), so their scores
     * are not even recomputed */
    const int gate_grad = ac->mode == GATE_SOFT || ac->mode == GATE_RANDOM ||
                          ac->mode == GATE_SIGMOID;
    float db = 0.0f;

    for (size_t i0 = 0; i0 < T; i0 += ATTN_ROWS) {
        const size_t i1 = i0 + ATTN_ROWS < T ? i0 + ATTN_ROWS : T, rows = i1 - i0, n1 = i1;
        /* c = q k^T / sqrt(hd), s = gq gk^T / sqrt(r) [rows, n1], as in the
         * forward; dP = dy v^T [rows, n1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n1, (int)hd, scale,
                    q + i0 * 3 * C, (int)(3 * C), kk, (int)(3 * C), 0.0f, w->c, (int)ld);
        if (gate_grad)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n1, (int)r, rs,
                        gq + off + i0 * Hr, (int)Hr, gk + off, (int)Hr, 0.0f, w->s, (int)ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n1, (int)hd, 1.0f,
                    dy + i0 * C, (int)C, v, (int)(3 * C), 0.0f, w->dp, (int)ld);

        /* P, dz = P * (dP - sum(P dP)) and ds, row by row */
        for (size_t i = i0; i < i1; i++) {
            const size_t at = (i - i0) * ld;
            db += row_backward(ac, w, i, n1, w->c + at, w->dp + at,
                               gate_grad ? w->s + at : NULL, gate_grad ? w->ds + at : NULL,
                               gate_grad ? gbias[h] : 0.0f, lse[bh * T + i],
                               keep + (bh * T + i) * kb, stats + bh * T + i);
        }

        /* dv[0:n1] += P^T dy [n1, hd] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n1, (int)hd, (int)rows, 1.0f,
                    w->c, (int)ld, dy + i0 * C, (int)C, 1.0f, dv, (int)(3 * C));
        /* dq[i0:i1] += dz k * scale [rows, hd]; dk[0:n1] += dz^T q * scale
         * [n1, hd] (z = c + mask term, dc = dz) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)hd, (int)n1, scale,
                    w->dp, (int)ld, kk, (int)(3 * C), 1.0f, dq + i0 * 3 * C, (int)(3 * C));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n1, (int)hd, (int)rows, scale,
                    w->dp, (int)ld, q + i0 * 3 * C, (int)(3 * C), 1.0f, dk, (int)(3 * C));
        if (!gate_grad)
            continue;
        /* dgq[i0:i1] += ds gk / sqrt(r) [rows, r]; dgk[0:n1] += ds^T gq / sqrt(r) [n1, r] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)r, (int)n1, rs,
                    w->ds, (int)ld, gk + off, (int)Hr, 1.0f, dgq + off + i0 * Hr, (int)Hr);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n1, (int)r, (int)rows, rs,
                    w->ds, (int)ld, gq + off + i0 * Hr, (int)Hr, 1.0f, dgk + off, (int)Hr);
    }
    *dbias = db;
}
