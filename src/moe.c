/* moe: top-1 routing, gather/combine and the load-balancing loss of the
 * mixture-of-experts FFN. The experts' linears are ordinary layers (layers.c)
 * run by model_net.c on each expert's block of gathered rows. */
#include "moe.h"

#include <math.h>
#include <string.h>

void moe_route_forward(moe_route *r, float *probs, size_t N, size_t E)
{
    memset(r->offset, 0, (E + 1) * sizeof *r->offset);
    for (size_t n = 0; n < N; n++) {
        float *p = probs + n * E;
        size_t best = 0;
        for (size_t e = 1; e < E; e++)
            if (p[e] > p[best])
                best = e;
        float mx = p[best], sum = 0.0f;
        for (size_t e = 0; e < E; e++) {
            p[e] = expf(p[e] - mx);
            sum += p[e];
        }
        for (size_t e = 0; e < E; e++)
            p[e] /= sum;
        r->expert[n] = (int32_t)best;
        r->offset[best + 1]++;
    }
    for (size_t e = 0; e < E; e++)
        r->offset[e + 1] += r->offset[e];
    /* counting sort: pos walks each expert's block in token order */
    for (size_t n = 0; n < N; n++) {
        int32_t e = r->expert[n];
        int32_t at = r->offset[e]++;
        r->perm[at] = (int32_t)n;
        r->pos[n] = at;
    }
    for (size_t e = E; e > 0; e--)
        r->offset[e] = r->offset[e - 1];
    r->offset[0] = 0;
}

void moe_softmax_backward(float *dlogits, const float *dprobs, const float *probs, size_t N,
                          size_t E)
{
    for (size_t n = 0; n < N; n++) {
        const float *p = probs + n * E, *dp = dprobs + n * E;
        float dot = 0.0f;
        for (size_t e = 0; e < E; e++)
            dot += p[e] * dp[e];
        float *dz = dlogits + n * E;
        for (size_t e = 0; e < E; e++)
            dz[e] = p[e] * (dp[e] - dot);
    }
}

void moe_gather_forward(float *xg, const float *x, const moe_route *r, size_t N, size_t C)
{
    for (size_t i = 0; i < N; i++)
        memcpy(xg + i * C, x + (size_t)r->perm[i] * C, C * sizeof(float));
}

void moe_gather_backward(float *dx, const float *dxg, const moe_route *r, size_t N, size_t C)
{
    for (size_t i = 0; i < N; i++) {
        float *d = dx + (size_t)r->perm[i] * C;
        const float *s = dxg + i * C;
        for (size_t c = 0; c < C; c++)
            d[c] += s[c];
    }
}

void moe_combine_forward(float *out, const float *yg, const float *probs, const moe_route *r,
                         size_t N, size_t C, size_t E)
{
    for (size_t n = 0; n < N; n++) {
        const float w = probs[n * E + (size_t)r->expert[n]];
        const float *y = yg + (size_t)r->pos[n] * C;
        float *o = out + n * C;
        for (size_t c = 0; c < C; c++)
            o[c] = w * y[c];
    }
}

void moe_combine_backward(float *dyg, float *dprobs, const float *dout, const float *yg,
                          const float *probs, const moe_route *r, size_t N, size_t C, size_t E)
{
    memset(dprobs, 0, N * E * sizeof(float));
    for (size_t n = 0; n < N; n++) {
        const size_t e = (size_t)r->expert[n];
        const float w = probs[n * E + e];
        const float *y = yg + (size_t)r->pos[n] * C, *d = dout + n * C;
        float *dy = dyg + (size_t)r->pos[n] * C;
        float dot = 0.0f;
        for (size_t c = 0; c < C; c++) {
            dy[c] = w * d[c];
            dot += d[c] * y[c];
        }
        dprobs[n * E + e] = dot;
    }
}

double moe_aux_forward(const float *probs, const moe_route *r, size_t N, size_t E, float coef)
{
    if (!N || coef == 0.0f)
        return 0.0;
    double total = 0.0;
    for (size_t e = 0; e < E; e++) {
        double mean_p = 0.0;
        for (size_t n = 0; n < N; n++)
            mean_p += probs[n * E + e];
        const double share = (double)(r->offset[e + 1] - r->offset[e]) / (double)N;
        total += share * mean_p / (double)N;
    }
    return (double)coef * (double)E * total;
}

void moe_aux_backward(float *dprobs, const moe_route *r, size_t N, size_t E, float coef)
{
    if (!N || coef == 0.0f)
        return;
    for (size_t e = 0; e < E; e++) {
        const double share = (double)(r->offset[e + 1] - r->offset[e]) / (double)N;
        const float g = (float)((double)coef * (double)E * share / (double)N);
        for (size_t n = 0; n < N; n++)
            dprobs[n * E + e] += g;
    }
}
