/* attention: per-(b, h) causal attention with gate masks. Content logits
 * c = q.k/sqrt(head_dim); gate scores s = gq.gk/sqrt(r) + b_h; the mode
 * decides how s (or c, or chance) turns into the mask added to c. All
 * matrix products go through cblas_sgemm. */
#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"

void attn_scratch_init(attn_scratch *w, size_t T)
{
    w->dp = xcalloc(T * T, sizeof(float));
    w->ds = xcalloc(T * T, sizeof(float));
    w->logm = xcalloc(T, sizeof(float));
    w->idx = xcalloc(T, sizeof(uint32_t));
    w->keep = xcalloc(T, 1);
    w->gate_keep = xcalloc(T, 1);
    w->oracle_keep = xcalloc(T, 1);
}

void attn_scratch_free(attn_scratch *w)
{
    free(w->dp);
    free(w->ds);
    free(w->logm);
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

/* z[n] -> p[n] in place, only over kept entries (keep NULL keeps all). */
static void masked_softmax(float *z, const unsigned char *keep, size_t n)
{
    float maxv = -INFINITY;
    for (size_t j = 0; j < n; j++)
        if ((!keep || keep[j]) && z[j] > maxv)
            maxv = z[j];
    double sum = 0.0;
    for (size_t j = 0; j < n; j++) {
        float e = (!keep || keep[j]) ? expf(z[j] - maxv) : 0.0f;
        z[j] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (size_t j = 0; j < n; j++)
        z[j] *= inv;
}

void attention_forward(const attn_config *ac, size_t b, size_t h, float *out, float *att,
                       float *s, gate_row_stats *stats, const float *qkv, const float *gq,
                       const float *gk, const float *gbias, attn_scratch *w,
                       metrics_state *metrics, size_t layer)
{
    const size_t T = ac->T, C = ac->C, H = ac->H, hd = C / H, r = ac->r, k = ac->k;
    const size_t bh = b * H + h;
    const float *q = qkv + b * T * 3 * C + h * hd;
    const float *kk = q + C;
    const float *v = q + 2 * C;
    float *a = att + bh * T * T;
    float *sc = s + bh * T * T;
    gate_row_stats *st = stats + bh * T;
    const int gated = gate_mode_uses_gate(ac->mode);

    /* c = q k^T / sqrt(hd) [T,T] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd,
                1.0f / sqrtf((float)hd), q, (int)(3 * C), kk, (int)(3 * C), 0.0f, a, (int)T);
    if (gated) {
        /* s = gq gk^T / sqrt(r) + b_h [T,T] */
        const float *gqb = gq + b * T * H * r + h * r;
        const float *gkb = gk + b * T * H * r + h * r;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)r,
                    1.0f / sqrtf((float)r), gqb, (int)(H * r), gkb, (int)(H * r), 0.0f, sc,
                    (int)T);
        for (size_t i = 0; i < T; i++)
            for (size_t j = 0; j <= i; j++)
                sc[i * T + j] += gbias[h];
    }
    rng_state stoch;
    if (ac->mode == GATE_STOCHASTIC)
        rng_seed(&stoch, rng_derive(ac->stoch_seed, bh));

    for (size_t i = 0; i < T; i++) {
        const size_t n = i + 1;
        float *z = a + i * T;
        const float *srow = sc + i * T;
        const unsigned char *keep = NULL;
        const float *logm = NULL;
        switch (ac->mode) {
        case GATE_DENSE:
            break;
        case GATE_SOFT:
        case GATE_RANDOM:
            gate_soft_topk_forward(w->logm, &st[i], srow, n, k, ac->temp, w->idx);
            logm = w->logm;
            break;
        case GATE_SIGMOID:
            gate_sigmoid_forward(w->logm, srow, n);
            logm = w->logm;
            break;
        case GATE_TOPK:
        case GATE_TOPK_RANDOM:
        case GATE_DISTILLED:
            gate_topk_select(w->keep, srow, n, k, w->idx);
            keep = w->keep;
            break;
        case GATE_ORACLE:
            gate_topk_select(w->keep, z, n, k, w->idx);
            keep = w->keep;
            break;
        case GATE_STOCHASTIC:
            stochastic_select(w->keep, n, k, w->idx, &stoch);
            keep = w->keep;
            break;
        case GATE_MODE_COUNT:
            GL_ASSERT(!"bad gate mode");
        }
        if (metrics)
            metrics_row(metrics, layer, h, i, z, gated ? srow : NULL, keep, logm, n, b == 0,
                        w->idx, w->gate_keep, w->oracle_keep);
        if (logm)
            for (size_t j = 0; j < n; j++)
                z[j] += logm[j];
        masked_softmax(z, keep, n);
        memset(z + n, 0, (T - n) * sizeof(float));
    }

    /* y = P v [T,hd] into head h's columns of out */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, a,
                (int)T, v, (int)(3 * C), 0.0f, out + b * T * C + h * hd, (int)C);
}

void attention_backward(const attn_config *ac, size_t b, size_t h, float *dqkv, float *dgq,
                        float *dgk, const float *dout, const float *att, const float *s,
                        const gate_row_stats *stats, const float *qkv,
                        const float *gq, const float *gk, attn_scratch *w, float *dbias)
{
    const size_t T = ac->T, C = ac->C, H = ac->H, hd = C / H, r = ac->r, k = ac->k;
    const size_t bh = b * H + h;
    const float *q = qkv + b * T * 3 * C + h * hd;
    const float *kk = q + C;
    const float *v = q + 2 * C;
    float *dq = dqkv + b * T * 3 * C + h * hd;
    float *dk = dq + C;
    float *dv = dq + 2 * C;
    const float *a = att + bh * T * T;
    const float *dy = dout + b * T * C + h * hd;
    float *dp = w->dp;
    const float scale = 1.0f / sqrtf((float)hd);
    *dbias = 0.0f;

    /* dP = dy v^T [T,T]; dv += P^T dy [T,hd] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1.0f, dy,
                (int)C, v, (int)(3 * C), 0.0f, dp, (int)T);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, a,
                (int)T, dy, (int)C, 1.0f, dv, (int)(3 * C));

    /* softmax backward: dz = P * (dP - sum(P dP)); masked entries have P = 0 */
    for (size_t i = 0; i < T; i++) {
        const float *p = a + i * T;
        float *d = dp + i * T;
        const size_t n = i + 1;
        float dot = 0.0f;
        for (size_t j = 0; j < n; j++)
            dot += p[j] * d[j];
        for (size_t j = 0; j < n; j++)
            d[j] = p[j] * (d[j] - dot);
        memset(d + n, 0, (T - n) * sizeof(float));
    }

    /* dq += dz k * scale; dk += dz^T q * scale (z = c + mask term, dc = dz) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, scale, dp,
                (int)T, kk, (int)(3 * C), 1.0f, dq, (int)(3 * C));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, scale, dp,
                (int)T, q, (int)(3 * C), 1.0f, dk, (int)(3 * C));

    if (!gate_mode_uses_gate(ac->mode))
        return;

    /* dz also reaches the mask term: ds from the mode's mask derivative */
    const float *sc = s + bh * T * T;
    float *ds = w->ds;
    float db = 0.0f;
    for (size_t i = 0; i < T; i++) {
        const size_t n = i + 1;
        const float *g = dp + i * T;
        float *dsr = ds + i * T;
        switch (ac->mode) {
        case GATE_SOFT:
        case GATE_RANDOM:
            gate_soft_topk_backward(dsr, g, sc + i * T, n, k, ac->temp, &stats[bh * T + i]);
            break;
        case GATE_SIGMOID:
            gate_sigmoid_backward(dsr, g, sc + i * T, n);
            break;
        default:
            gate_topk_backward(dsr, g, n);
            break;
        }
        memset(dsr + n, 0, (T - n) * sizeof(float));
        for (size_t j = 0; j < n; j++)
            db += dsr[j];
    }
    *dbias = db;

    /* dgq += ds gk / sqrt(r); dgk += ds^T gq / sqrt(r) */
    const float rs = 1.0f / sqrtf((float)r);
    const size_t off = b * T * H * r + h * r;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)r, (int)T, rs, ds,
                (int)T, gk + off, (int)(H * r), 1.0f, dgq + off, (int)(H * r));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)r, (int)T, rs, ds,
                (int)T, gq + off, (int)(H * r), 1.0f, dgk + off, (int)(H * r));
}
