/* vec: the element-wise kernels (exp and the softmax row, GELU, LayerNorm,
 * AdamW, sums) in three paths, a portable scalar one and AVX2 / AVX-512
 * ones, picked once per process from what the CPU has (cpuid) or forced by
 * the environment variable GATELAB_VEC=scalar|avx2|avx512|auto. Every thread
 * and every arm runs the same path, and each kernel's result for an element
 * (or a row) depends on its value and the path alone, never on where a
 * pool block starts or ends: the bits do not depend on the thread count.
 *
 * Accuracy (fp32 throughout, no -ffast-math; tests/test_vec.c checks every
 * path the CPU has against a double-precision reference over wide ranges):
 *   exp              |err| <= 4e-7 |ref| + 2^-149 (a few ulp; subnormal
 *                    results to their own spacing); exp(-inf) = 0,
 *                    exp(x > 88.73) = inf, NaN stays NaN
 *   softmax row      |err| <= (1e-6 + 1.2e-7 |z - max|) p
 *   gelu_forward     |err| <= 1e-6 |ref| + 2e-7 |x| + 2^-149
 *   gelu_backward    |err| <= 1e-6 |ref| + 2e-7 |dout| + 2^-149
 *   layernorm        |err| <= 2e-5 of the output's scale times the row's
 *                    condition 1 + |mean| rstd (tests/test_vec.c)
 *   adamw, add,      the same bits on every path (no fused multiply-add;
 *   colsum           each column's adds in row order)
 * AVX2 and AVX-512 give the same bits for exp, gelu, scale, add and adamw
 * (same operations, same rounding); sums (layernorm, exp_sum, sumsq) add in
 * the path's lane order, so they differ in the last bits between paths. A
 * NaN input gives NaN outputs, so a diverged run is still detected. */
#ifndef GATELAB_VEC_H
#define GATELAB_VEC_H

#include <stddef.h>

#include "common.h"

typedef enum { VEC_SCALAR, VEC_AVX2, VEC_AVX512, VEC_NPATHS } vec_path;

/* AdamW's per-tensor constants (optim.c): gi = g * clip; m = beta1 m +
 * (1 - beta1) gi; v = beta2 v + (1 - beta2) gi gi; p -= lr (m / b1c /
 * (sqrt(v / b2c) + eps) + wd p) */
typedef struct {
    float clip, beta1, beta2, b1c, b2c, lr, wd, eps;
} vec_adamw_args;

/* One path's kernels. Shapes: n elements, or N rows of C. */
typedef struct {
    const char *name;
    /* y[i] = exp(x[i]); y may be x */
    void (*exp)(float *y, const float *x, size_t n);
    /* the largest of x[0..n) (n >= 1); NaNs are passed over, as by `>`
     * (they come back through exp_sum) */
    float (*max)(const float *x, size_t n);
    /* y[i] = exp(x[i] - shift) (y may be x); returns the sum of the y[i],
     * added in double */
    double (*exp_sum)(float *y, const float *x, float shift, size_t n);
    /* y[i] *= a */
    void (*scale)(float *y, float a, size_t n);
    /* y[i] = a[i] + b[i]; y may be a or b */
    void (*add)(float *y, const float *a, const float *b, size_t n);
    /* y[c] += x[n ld + c] for n = 0..N-1 in order, c < C: a bias gradient's
     * column sums, each column added row by row as the scalar loop does */
    void (*colsum)(float *y, const float *x, size_t N, size_t C, size_t ld);
    /* out = gelu(inp), tanh form (DESIGN §2) */
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    /* dinp = dout * gelu'(inp), written; dinp may be dout */
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    /* inp[N,C] -> out[N,C], mean[N], rstd[N]; eps 1e-5 */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, size_t N, size_t C);
    /* dout[N,C] -> dinp[N,C] (+=), dweight[C], dbias[C] (+=, rows in order) */
    void (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean,
                               const float *rstd, size_t N, size_t C);
    /* one tensor's AdamW update, p, m, v in place */
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n,
                  const vec_adamw_args *a);
    /* sum of x[i]^2, in double */
    double (*sumsq)(const float *x, size_t n);
} vec_ops;

/* Checks GATELAB_VEC (unset, empty or "auto": the best path this CPU has)
 * and fixes the process's path; -1 with a message naming the variable when
 * it names no path or one this CPU lacks. Called by main before any thread;
 * without it the first kernel call picks the path the same way (an invalid
 * value then means auto). */
int vec_init(gl_error *err);
/* the process's path and its kernels */
vec_path vec_active_path(void);
const vec_ops *vec_active(void);
/* a path's kernels, NULL when this CPU (or this build) cannot run it */
const vec_ops *vec_ops_of(vec_path p);
const char *vec_path_name(vec_path p);

/* p[n] = softmax(z[n]) (p may be z); returns log(sum exp(z - max)) + max,
 * the row's log-sum-exp, for a backward that recomputes p from it */
float vec_softmax_row(float *p, const float *z, size_t n);

#endif
