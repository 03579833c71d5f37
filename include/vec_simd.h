/* vec_simd: the body of the SIMD kernels of vec.h, written once over a
 * handful of primitives and included by src/vec_avx2.c and
 * src/vec_avx512.c, which define them for their registers (no other file
 * includes this). Each includer defines, all with the VEC_TGT target
 * attribute (so the rest of the build keeps its flags):
 *
 *   VW                 lanes of a vf
 *   vf, vf_set1, vf_load, vf_store, vf_add, vf_sub, vf_mul, vf_div,
 *   vf_fma(a,b,c)=a*b+c, vf_sqrt, vf_round (to nearest)
 *   vf_min(a,b), vf_max(a,b)   the instructions' own: b when either is NaN
 *   vf_load_n(p,n,fill)        lanes [0,n) from p, the rest = fill (n < VW;
 *                              masked: nothing past p[n-1] is read)
 *   vf_store_n(p,v,n)          lanes [0,n) to p (masked)
 *   vf_keep_n(v,n)             lanes >= n zeroed
 *   vf_keep_finite_nonzero(t,e)  t where 0 < e < inf, else 0
 *   vf_scale2(p,n)             p * 2^n for whole n in [-150, 128], one
 *                              rounding (subnormals and overflow exact)
 *   vf_hsum, vf_hmax           a fixed-order horizontal sum / max
 *   vd, vd_zero, vd_add(acc,v) (acc += lanes in double), vd_sumsq(acc,v)
 *   (acc += lanes^2 in double), vd_hsum
 *   VEC_NAME(f)                the path's name for kernel f
 *
 * A tail shorter than VW goes through the same vector code on masked
 * lanes, so an element's result never depends on where a block starts. */
#ifndef GATELAB_VEC_SIMD_H
#define GATELAB_VEC_SIMD_H

#define VEC_FN static inline VEC_TGT
#define VEC_KERNEL static VEC_TGT

/* exp: n = round(x log2 e), r = x - n ln2 (ln2 in two parts, the first
 * exact in n * hi for |n| < 2^15), exp(r) by Cephes expf's polynomial on
 * |r| <= ln2/2 (about 1 ulp), times 2^n. x is clamped to [-104, 89] first
 * (exp(-104) rounds to 0, exp(89) overflows to inf) with NaN kept. */
VEC_FN vf vec_k_exp(vf x)
{
    x = vf_min(vf_set1(89.0f), x);    /* NaN stays: the second operand */
    x = vf_max(vf_set1(-104.0f), x);
    vf n = vf_round(vf_mul(x, vf_set1(1.44269504088896341f)));
    vf r = vf_fma(n, vf_set1(-0.693359375f), x);
    r = vf_fma(n, vf_set1(2.12194440e-4f), r);
    vf z = vf_mul(r, r);
    vf y = vf_set1(1.9875691500e-4f);
    y = vf_fma(y, r, vf_set1(1.3981999507e-3f));
    y = vf_fma(y, r, vf_set1(8.3334519073e-3f));
    y = vf_fma(y, r, vf_set1(4.1665795894e-2f));
    y = vf_fma(y, r, vf_set1(1.6666665459e-1f));
    y = vf_fma(y, r, vf_set1(5.0000001201e-1f));
    y = vf_add(vf_fma(y, z, r), vf_set1(1.0f));
    return vf_scale2(y, n);
}

/* GELU, tanh form: gelu(x) = x/2 (1 + tanh(u)) = x / (1 + e) with
 * u = sqrt(2/pi) (x + 0.044715 x^3) and e = exp(-2u). Its derivative is
 * s + 2 x s (1 - s) u'(x) with s = 1 / (1 + e), 1 - s = e s; the second
 * term is 0 where e is 0 or inf (|x| beyond ~10, where x^3 may overflow
 * and 0 * inf would make a NaN of an exact 0). */
#define VEC_GELU_M2K (-1.5957691216057308f)       /* -2 sqrt(2/pi) */
#define VEC_GELU_M2KC (-0.07135481627159112f)     /* -2 sqrt(2/pi) 0.044715 */
#define VEC_GELU_K 0.7978845608028654f            /* sqrt(2/pi) */
#define VEC_GELU_3KC 0.10703222440738668f         /* 3 sqrt(2/pi) 0.044715 */

VEC_FN vf vec_k_gelu(vf x)
{
    vf x2 = vf_mul(x, x);
    vf e = vec_k_exp(vf_mul(x, vf_fma(vf_set1(VEC_GELU_M2KC), x2, vf_set1(VEC_GELU_M2K))));
    return vf_div(x, vf_add(vf_set1(1.0f), e));
}

VEC_FN vf vec_k_gelu_grad(vf x)
{
    vf x2 = vf_mul(x, x);
    vf e = vec_k_exp(vf_mul(x, vf_fma(vf_set1(VEC_GELU_M2KC), x2, vf_set1(VEC_GELU_M2K))));
    vf s = vf_div(vf_set1(1.0f), vf_add(vf_set1(1.0f), e));
    vf du = vf_fma(vf_set1(VEC_GELU_3KC), x2, vf_set1(VEC_GELU_K));
    vf t = vf_mul(vf_mul(vf_mul(e, s), s), vf_mul(vf_add(x, x), du));
    return vf_add(s, vf_keep_finite_nonzero(t, e));
}

VEC_KERNEL void VEC_NAME(exp)(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(y + i, vec_k_exp(vf_load(x + i)));
    if (i < n)
        vf_store_n(y + i, vec_k_exp(vf_load_n(x + i, n - i, 0.0f)), n - i);
}

VEC_KERNEL float VEC_NAME(max)(const float *x, size_t n)
{
    vf m = vf_set1(-INFINITY);
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        m = vf_max(vf_load(x + i), m);   /* a NaN lane keeps m */
    if (i < n)
        m = vf_max(vf_load_n(x + i, n - i, -INFINITY), m);
    return vf_hmax(m);
}

VEC_KERNEL double VEC_NAME(exp_sum)(float *y, const float *x, float shift, size_t n)
{
    vd acc = vd_zero();
    const vf sh = vf_set1(shift);
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf e = vec_k_exp(vf_sub(vf_load(x + i), sh));
        vf_store(y + i, e);
        acc = vd_add(acc, e);
    }
    if (i < n) {
        vf e = vec_k_exp(vf_sub(vf_load_n(x + i, n - i, 0.0f), sh));
        vf_store_n(y + i, e, n - i);
        acc = vd_add(acc, vf_keep_n(e, n - i));
    }
    return vd_hsum(acc);
}

VEC_KERNEL void VEC_NAME(scale)(float *y, float a, size_t n)
{
    const vf av = vf_set1(a);
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(y + i, vf_mul(vf_load(y + i), av));
    if (i < n)
        vf_store_n(y + i, vf_mul(vf_load_n(y + i, n - i, 0.0f), av), n - i);
}

VEC_KERNEL void VEC_NAME(add)(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(y + i, vf_add(vf_load(a + i), vf_load(b + i)));
    if (i < n)
        vf_store_n(y + i, vf_add(vf_load_n(a + i, n - i, 0.0f), vf_load_n(b + i, n - i, 0.0f)),
                   n - i);
}

/* four vectors of columns at a time in registers, the rows in order */
VEC_KERNEL void VEC_NAME(colsum)(float *y, const float *x, size_t N, size_t C, size_t ld)
{
    size_t c = 0;
    for (; c + 4 * VW <= C; c += 4 * VW) {
        vf a0 = vf_load(y + c), a1 = vf_load(y + c + VW), a2 = vf_load(y + c + 2 * VW),
           a3 = vf_load(y + c + 3 * VW);
        for (size_t n = 0; n < N; n++) {
            const float *r = x + n * ld + c;
            a0 = vf_add(a0, vf_load(r));
            a1 = vf_add(a1, vf_load(r + VW));
            a2 = vf_add(a2, vf_load(r + 2 * VW));
            a3 = vf_add(a3, vf_load(r + 3 * VW));
        }
        vf_store(y + c, a0);
        vf_store(y + c + VW, a1);
        vf_store(y + c + 2 * VW, a2);
        vf_store(y + c + 3 * VW, a3);
    }
    for (; c < C; c += VW) {
        const size_t k = C - c < VW ? C - c : VW;
        vf a = vf_load_n(y + c, k, 0.0f);
        for (size_t n = 0; n < N; n++)
            a = vf_add(a, vf_load_n(x + n * ld + c, k, 0.0f));
        vf_store_n(y + c, a, k);
    }
}

VEC_KERNEL void VEC_NAME(gelu_forward)(float *out, const float *inp, size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(out + i, vec_k_gelu(vf_load(inp + i)));
    if (i < n)
        vf_store_n(out + i, vec_k_gelu(vf_load_n(inp + i, n - i, 0.0f)), n - i);
}

VEC_KERNEL void VEC_NAME(gelu_backward)(float *dinp, const float *inp, const float *dout,
                                        size_t n)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(dinp + i, vf_mul(vec_k_gelu_grad(vf_load(inp + i)), vf_load(dout + i)));
    if (i < n)
        vf_store_n(dinp + i,
                   vf_mul(vec_k_gelu_grad(vf_load_n(inp + i, n - i, 0.0f)),
                          vf_load_n(dout + i, n - i, 0.0f)),
                   n - i);
}

/* Each row: mean, then the variance about it (two passes, as the scalar
 * code), then out = (x - mean) rstd w + b. */
VEC_KERNEL void VEC_NAME(layernorm_forward)(float *out, float *mean, float *rstd,
                                            const float *inp, const float *weight,
                                            const float *bias, size_t N, size_t C)
{
    const size_t tail = C % VW, full = C - tail;
    for (size_t row = 0; row < N; row++) {
        const float *x = inp + row * C;
        float *o = out + row * C;
        vf acc = vf_set1(0.0f);
        for (size_t c = 0; c < full; c += VW)
            acc = vf_add(acc, vf_load(x + c));
        if (tail)
            acc = vf_add(acc, vf_load_n(x + full, tail, 0.0f));
        const float m = vf_hsum(acc) / (float)C;
        const vf mv = vf_set1(m);
        acc = vf_set1(0.0f);
        for (size_t c = 0; c < full; c += VW) {
            vf xm = vf_sub(vf_load(x + c), mv);
            acc = vf_fma(xm, xm, acc);
        }
        if (tail) {
            vf xm = vf_keep_n(vf_sub(vf_load_n(x + full, tail, 0.0f), mv), tail);
            acc = vf_fma(xm, xm, acc);
        }
        const float s = 1.0f / sqrtf(vf_hsum(acc) / (float)C + 1e-5f);
        const vf sv = vf_set1(s);
        for (size_t c = 0; c < full; c += VW)
            vf_store(o + c, vf_fma(vf_mul(vf_sub(vf_load(x + c), mv), sv), vf_load(weight + c),
                                   vf_load(bias + c)));
        if (tail)
            vf_store_n(o + full,
                       vf_fma(vf_mul(vf_sub(vf_load_n(x + full, tail, 0.0f), mv), sv),
                              vf_load_n(weight + full, tail, 0.0f),
                              vf_load_n(bias + full, tail, 0.0f)),
                       tail);
        mean[row] = m;
        rstd[row] = s;
    }
}

/* one block of VW (or the tail's n) columns of a row's second pass */
VEC_FN void vec_k_ln_back(float *dx, float *dw, float *db, vf x, vf w, vf d, vf mv, vf sv,
                          vf dm, vf dnm, size_t n)
{
    vf norm = vf_mul(vf_sub(x, mv), sv);
    vf dnorm = vf_mul(w, d);
    vf dxv = vf_mul(vf_sub(vf_sub(dnorm, dm), vf_mul(norm, dnm)), sv);
    if (n == VW) {
        vf_store(db, vf_add(vf_load(db), d));
        vf_store(dw, vf_fma(norm, d, vf_load(dw)));
        vf_store(dx, vf_add(vf_load(dx), dxv));
    } else {
        vf_store_n(db, vf_add(vf_load_n(db, n, 0.0f), d), n);
        vf_store_n(dw, vf_fma(norm, d, vf_load_n(dw, n, 0.0f)), n);
        vf_store_n(dx, vf_add(vf_load_n(dx, n, 0.0f), dxv), n);
    }
}

VEC_KERNEL void VEC_NAME(layernorm_backward)(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *weight, const float *mean,
                                             const float *rstd, size_t N, size_t C)
{
    const size_t tail = C % VW, full = C - tail;
    for (size_t row = 0; row < N; row++) {
        const float *d = dout + row * C, *x = inp + row * C;
        float *dx = dinp + row * C;
        const vf mv = vf_set1(mean[row]), sv = vf_set1(rstd[row]);
        vf a1 = vf_set1(0.0f), a2 = vf_set1(0.0f);
        for (size_t c = 0; c < full; c += VW) {
            vf dnorm = vf_mul(vf_load(weight + c), vf_load(d + c));
            a1 = vf_add(a1, dnorm);
            a2 = vf_fma(dnorm, vf_mul(vf_sub(vf_load(x + c), mv), sv), a2);
        }
        if (tail) {
            vf dnorm = vf_mul(vf_load_n(weight + full, tail, 0.0f), vf_load_n(d + full, tail, 0.0f));
            vf norm = vf_keep_n(vf_mul(vf_sub(vf_load_n(x + full, tail, 0.0f), mv), sv), tail);
            a1 = vf_add(a1, dnorm);
            a2 = vf_fma(dnorm, norm, a2);
        }
        const vf dm = vf_set1(vf_hsum(a1) / (float)C), dnm = vf_set1(vf_hsum(a2) / (float)C);
        for (size_t c = 0; c < full; c += VW)
            vec_k_ln_back(dx + c, dweight + c, dbias + c, vf_load(x + c), vf_load(weight + c),
                          vf_load(d + c), mv, sv, dm, dnm, VW);
        if (tail)
            vec_k_ln_back(dx + full, dweight + full, dbias + full,
                          vf_load_n(x + full, tail, 0.0f), vf_load_n(weight + full, tail, 0.0f),
                          vf_load_n(d + full, tail, 0.0f), mv, sv, dm, dnm, tail);
    }
}

/* AdamW in the scalar code's operations and order, without fused
 * multiply-adds, so every path gives the same bits (and a run resumed on
 * another CPU moves its weights exactly as it would have). */
VEC_FN vf vec_k_adamw(vf p, vf g, float *mp, float *vp, const vec_adamw_args *a, size_t n)
{
    vf m = n == VW ? vf_load(mp) : vf_load_n(mp, n, 0.0f);
    vf v = n == VW ? vf_load(vp) : vf_load_n(vp, n, 0.0f);
    vf gi = vf_mul(g, vf_set1(a->clip));
    m = vf_add(vf_mul(vf_set1(a->beta1), m), vf_mul(vf_set1(1.0f - a->beta1), gi));
    v = vf_add(vf_mul(vf_set1(a->beta2), v), vf_mul(vf_mul(vf_set1(1.0f - a->beta2), gi), gi));
    vf mhat = vf_div(m, vf_set1(a->b1c)), vhat = vf_div(v, vf_set1(a->b2c));
    vf upd = vf_add(vf_div(mhat, vf_add(vf_sqrt(vhat), vf_set1(a->eps))),
                    vf_mul(vf_set1(a->wd), p));
    if (n == VW) {
        vf_store(mp, m);
        vf_store(vp, v);
    } else {
        vf_store_n(mp, m, n);
        vf_store_n(vp, v, n);
    }
    return vf_sub(p, vf_mul(vf_set1(a->lr), upd));
}

VEC_KERNEL void VEC_NAME(adamw)(float *p, const float *g, float *m, float *v, size_t n,
                                const vec_adamw_args *a)
{
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(p + i, vec_k_adamw(vf_load(p + i), vf_load(g + i), m + i, v + i, a, VW));
    if (i < n)
        vf_store_n(p + i,
                   vec_k_adamw(vf_load_n(p + i, n - i, 0.0f), vf_load_n(g + i, n - i, 0.0f),
                               m + i, v + i, a, n - i),
                   n - i);
}

VEC_KERNEL double VEC_NAME(sumsq)(const float *x, size_t n)
{
    vd acc = vd_zero();
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        acc = vd_sumsq(acc, vf_load(x + i));
    if (i < n)
        acc = vd_sumsq(acc, vf_load_n(x + i, n - i, 0.0f));
    return vd_hsum(acc);
}

#define VEC_OPS_TABLE(label)                                                              \
    {                                                                                     \
        .name = label, .exp = VEC_NAME(exp), .max = VEC_NAME(max),                        \
        .exp_sum = VEC_NAME(exp_sum), .scale = VEC_NAME(scale), .add = VEC_NAME(add),     \
        .colsum = VEC_NAME(colsum),                                                       \
        .gelu_forward = VEC_NAME(gelu_forward), .gelu_backward = VEC_NAME(gelu_backward), \
        .layernorm_forward = VEC_NAME(layernorm_forward),                                 \
        .layernorm_backward = VEC_NAME(layernorm_backward), .adamw = VEC_NAME(adamw),     \
        .sumsq = VEC_NAME(sumsq)                                                          \
    }

#endif
