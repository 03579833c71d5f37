/* layers: embedding, LayerNorm, linear (OpenBLAS sgemm), GELU, residual and
 * the tied LM head with cross-entropy; forward and backward side by side. */
#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "vec.h"

/* out[B,T,C] = wte[tokens] + wpe[t] */
void encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                     size_t B, size_t T, size_t C)
{
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            float *o = out + (b * T + t) * C;
            const float *te = wte + (size_t)tokens[b * T + t] * C;
            const float *pe = wpe + t * C;
            for (size_t c = 0; c < C; c++)
                o[c] = te[c] + pe[c];
        }
}

/* dout[B,T,C] -> dwte[V,C] (rows of the tokens), dwpe[T,C] */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                      size_t B, size_t T, size_t C)
{
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            const float *d = dout + (b * T + t) * C;
            float *te = dwte + (size_t)tokens[b * T + t] * C;
            float *pe = dwpe + t * C;
            for (size_t c = 0; c < C; c++) {
                te[c] += d[c];
                pe[c] += d[c];
            }
        }
}

/* inp[N,C] -> out[N,C], mean[N], rstd[N]; eps 1e-5 (vec.h's kernels, here
 * and below for GELU, the residual and the softmax) */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, size_t N, size_t C)
{
    vec_active()->layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
}

/* dout[N,C] -> dinp[N,C] (+=), dweight[C], dbias[C] */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, size_t N, size_t C)
{
    vec_active()->layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

/* inp[N,C], weight[OC,C], bias[OC] -> out[N,OC] = inp weight^T + bias */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    size_t N, size_t C, size_t OC)
{
    float beta = 0.0f;
    if (bias) {
        for (size_t n = 0; n < N; n++)
            memcpy(out + n * OC, bias, OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)OC, (int)C, 1.0f,
                inp, (int)C, weight, (int)C, beta, out, (int)OC);
}

/* dout[N,OC] -> dinp[N,C] (+=) */
void linear_backward_input(float *dinp, const float *dout, const float *weight,
                           size_t N, size_t C, size_t OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)C, (int)OC, 1.0f,
                dout, (int)OC, weight, (int)C, 1.0f, dinp, (int)C);
}

/* dout[N,OC], inp[N,C] -> dweight[o0:o1, C] (+=), dbias[o0:o1] (+=, may be NULL) */
void linear_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                            size_t N, size_t C, size_t OC, size_t o0, size_t o1)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(o1 - o0), (int)C, (int)N, 1.0f,
                dout + o0, (int)OC, inp, (int)C, 1.0f, dweight + o0 * C, (int)C);
    if (dbias)
        vec_active()->colsum(dbias + o0, dout + o0, N, o1 - o0, OC);
}

/* tanh-form GELU, elementwise over n values */
void gelu_forward(float *out, const float *inp, size_t n)
{
    vec_active()->gelu_forward(out, inp, n);
}

/* dinp = dout * gelu'(inp) (written, not accumulated) */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    vec_active()->gelu_backward(dinp, inp, dout, n);
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
    vec_active()->add(out, a, b, n);
}

/* logits[N,V] -> probs[N,V] (may be the logits' own floats: each row's
 * target logit is read first); returns summed NLL over targets >= 0 */
double crossentropy_forward(float *probs, const float *logits, const int32_t *targets,
                            size_t N, size_t V)
{
    const vec_ops *o = vec_active();
    double total = 0.0;
    for (size_t n = 0; n < N; n++) {
        const float *l = logits + n * V;
        float *p = probs + n * V;
        const float maxv = o->max(l, V);
        const float target = targets[n] >= 0 ? l[targets[n]] : 0.0f;
        const double sum = o->exp_sum(p, l, maxv, V);
        o->scale(p, (float)(1.0 / sum), V);
        if (targets[n] >= 0)
            total += -(double)(target - maxv) + log(sum);
    }
    return total;
}

/* probs[N,V] -> dlogits[N,V] (written; may be the probabilities' own floats) */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                           size_t N, size_t V, float scale)
{
    for (size_t n = 0; n < N; n++) {
        float *d = dlogits + n * V;
        const float *p = probs + n * V;
        if (targets[n] < 0) {
            memset(d, 0, V * sizeof(float));
            continue;
        }
        for (size_t v = 0; v < V; v++)
            d[v] = p[v] * scale;
        d[targets[n]] -= scale;
    }
}
