/* vec: which path runs the element-wise kernels (vec.h), picked once per
 * process, and the portable scalar path every CPU has. The SIMD paths are
 * vec_avx2.c and vec_avx512.c (one kernel body, include/vec_simd.h). */
#include "vec.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- the scalar path: plain C, libm's expf; what runs where neither SIMD
 * path can (another architecture, an x86 without AVX2) ---- */

static void scalar_exp(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}

static float scalar_max(const float *x, size_t n)
{
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (x[i] > m)
            m = x[i];
    return m;
}

static double scalar_exp_sum(float *y, const float *x, float shift, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - shift);
        sum += y[i];
    }
    return sum;
}

static void scalar_scale(float *y, float a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] *= a;
}

static void scalar_add(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

static void scalar_colsum(float *y, const float *x, size_t N, size_t C, size_t ld)
{
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            y[c] += x[n * ld + c];
}

/* the forms of include/vec_simd.h: gelu(x) = x / (1 + e), e = exp(-2u) */
#define GELU_M2K (-1.5957691216057308f)
#define GELU_M2KC (-0.07135481627159112f)
#define GELU_K 0.7978845608028654f
#define GELU_3KC 0.10703222440738668f

static void scalar_gelu_forward(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float e = expf(x * (GELU_M2KC * (x * x) + GELU_M2K));
        out[i] = x / (1.0f + e);
    }
}

static void scalar_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], x2 = x * x;
        float e = expf(x * (GELU_M2KC * x2 + GELU_M2K));
        float s = 1.0f / (1.0f + e);
        float t = (e > 0.0f && e < INFINITY) ? e * s * s * ((x + x) * (GELU_3KC * x2 + GELU_K))
                                             : 0.0f;
        dinp[i] = (s + t) * dout[i];
    }
}

static void scalar_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
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

static void scalar_layernorm_backward(float *dinp, float *dweight, float *dbias,
                                      const float *dout, const float *inp, const float *weight,
                                      const float *mean, const float *rstd, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const float *d = dout + n * C, *x = inp + n * C;
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

static void scalar_adamw(float *p, const float *g, float *m, float *v, size_t n,
                         const vec_adamw_args *a)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * a->clip;
        m[i] = a->beta1 * m[i] + (1.0f - a->beta1) * gi;
        v[i] = a->beta2 * v[i] + (1.0f - a->beta2) * gi * gi;
        float mhat = m[i] / a->b1c, vhat = v[i] / a->b2c;
        p[i] -= a->lr * (mhat / (sqrtf(vhat) + a->eps) + a->wd * p[i]);
    }
}

static double scalar_sumsq(const float *x, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return sum;
}

static const vec_ops vec_scalar_ops = {
    .name = "scalar", .exp = scalar_exp, .max = scalar_max, .exp_sum = scalar_exp_sum,
    .scale = scalar_scale, .add = scalar_add, .colsum = scalar_colsum, .gelu_forward = scalar_gelu_forward,
    .gelu_backward = scalar_gelu_backward, .layernorm_forward = scalar_layernorm_forward,
    .layernorm_backward = scalar_layernorm_backward, .adamw = scalar_adamw,
    .sumsq = scalar_sumsq,
};

/* ---- the choice ---- */

#if defined(__x86_64__) || defined(__i386__)
#define VEC_X86 1
extern const vec_ops vec_avx2_ops, vec_avx512_ops;
#else
#define VEC_X86 0
#endif

static const char *const path_names[VEC_NPATHS] = {"scalar", "avx2", "avx512"};

const char *vec_path_name(vec_path p)
{
    return (unsigned)p < VEC_NPATHS ? path_names[p] : "?";
}

const vec_ops *vec_ops_of(vec_path p)
{
#if VEC_X86
    /* __builtin_cpu_supports also asks the OS (XGETBV) whether it saves
     * the registers */
    __builtin_cpu_init();
    if (p == VEC_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
                       __builtin_cpu_supports("fma")
                   ? &vec_avx512_ops
                   : NULL;
    if (p == VEC_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &vec_avx2_ops
                                                                               : NULL;
#endif
    return p == VEC_SCALAR ? &vec_scalar_ops : NULL;
}

/* GATELAB_VEC's path: 0 and *out, or -1 with the message */
static int vec_choose(const char *env, vec_path *out, gl_error *err)
{
    if (!env || !*env || strcmp(env, "auto") == 0) {
        vec_path p = VEC_NPATHS;
        while (p-- > 0)
            if (vec_ops_of(p)) {
                *out = p;
                return 0;
            }
        *out = VEC_SCALAR;
        return 0;
    }
    for (vec_path p = 0; p < VEC_NPATHS; p++)
        if (strcmp(env, path_names[p]) == 0) {
            if (!vec_ops_of(p))
                return gl_fail(err, "GATELAB_VEC=%s: this CPU cannot run the %s path "
                               "(scalar, avx2, avx512 or auto)", env, env);
            *out = p;
            return 0;
        }
    return gl_fail(err, "GATELAB_VEC=%.64s: not a path (scalar, avx2, avx512 or auto)", env);
}

/* written once inside pthread_once, read after it by every thread */
static pthread_once_t vec_once = PTHREAD_ONCE_INIT;
static vec_path vec_cur;
static const vec_ops *vec_cur_ops;

static void vec_pick(void)
{
    if (vec_choose(getenv("GATELAB_VEC"), &vec_cur, NULL))
        vec_choose(NULL, &vec_cur, NULL);
    vec_cur_ops = vec_ops_of(vec_cur);
}

int vec_init(gl_error *err)
{
    vec_path p;
    if (vec_choose(getenv("GATELAB_VEC"), &p, err))
        return -1;
    pthread_once(&vec_once, vec_pick);
    return 0;
}

vec_path vec_active_path(void)
{
    pthread_once(&vec_once, vec_pick);
    return vec_cur;
}

const vec_ops *vec_active(void)
{
    pthread_once(&vec_once, vec_pick);
    return vec_cur_ops;
}

float vec_softmax_row(float *p, const float *z, size_t n)
{
    const vec_ops *o = vec_active();
    const float maxv = o->max(z, n);
    const double sum = o->exp_sum(p, z, maxv, n);
    o->scale(p, (float)(1.0 / sum), n);
    return maxv + (float)log(sum);
}
