/* layers: embedding, LayerNorm, linear (OpenBLAS sgemm), GELU, residual and
 * the tied LM head with cross-entropy; forward and backward side by side. */
#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

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

/* inp[N,C] -> out[N,C], mean[N], rstd[N]; eps 1e-5 */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float m = 0.0f;
        for (size_t c = 0; c < C; c++)
            m += x[c];
        m /= (float)C;
        float v = 0.0f;
        for (size_t c = 0; c < C; c++) {
            float xm = x[c] - m;
            v += xm * xm;
        }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        float *o = out + n * C;
        for (size_t c = 0; c < C; c++)
            o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* dout[N,C] -> dinp[N,C] (+=), dweight[C], dbias[C] */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const float *d = dout + n * C;
        const float *x = inp + n * C;
        float *dx = dinp + n * C;
        float m = mean[n], s = rstd[n];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (size_t c = 0; c < C; c++) {
            float norm = (x[c] - m) * s;
            float dnorm = weight[c] * d[c];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (size_t c = 0; c < C; c++) {
            float norm = (x[c] - m) * s;
            float dnorm = weight[c] * d[c];
            dbias[c] += d[c];
            dweight[c] += norm * d[c];
            dx[c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
    }
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
        for (size_t n = 0; n < N; n++) {
            const float *d = dout + n * OC;
            for (size_t o = o0; o < o1; o++)
                dbias[o] += d[o];
        }
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

/* tanh through one expf: glibc's tanhf goes through expm1f and dominated
 * profiles; this form is within a few ulp and saturates cleanly to +-1. */
static inline float fast_tanh(float a)
{
    return 1.0f - 2.0f / (1.0f + expf(2.0f * a));
}

/* tanh-form GELU, elementwise over n values */
void gelu_forward(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cube = 0.044715f * x * x * x;
        out[i] = 0.5f * x * (1.0f + fast_tanh(GELU_SCALE * (x + cube)));
    }
}

/* dinp = dout * gelu'(inp) (written, not accumulated) */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cube = 0.044715f * x * x * x;
        float arg = GELU_SCALE * (x + cube);
        float th = fast_tanh(arg);
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) +
                     0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = grad * dout[i];
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* logits[N,V] -> probs[N,V]; returns summed NLL over targets >= 0 */
double crossentropy_forward(float *probs, const float *logits, const int32_t *targets,
                            size_t N, size_t V)
{
    double total = 0.0;
    for (size_t n = 0; n < N; n++) {
        const float *l = logits + n * V;
        float *p = probs + n * V;
        float maxv = l[0];
        for (size_t v = 1; v < V; v++)
            if (l[v] > maxv)
                maxv = l[v];
        double sum = 0.0;
        for (size_t v = 0; v < V; v++) {
            p[v] = expf(l[v] - maxv);
            sum += p[v];
        }
        float inv = (float)(1.0 / sum);
        for (size_t v = 0; v < V; v++)
            p[v] *= inv;
        if (targets[n] >= 0)
            total += -(double)(l[targets[n]] - maxv) + log(sum);
    }
    return total;
}

/* probs[N,V] -> dlogits[N,V] (written) */
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
