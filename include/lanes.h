/* lanes: element-wise float math that the compiler vectorises. Each function
 * is branch-free (selects, not branches) and calls nothing in libm, so a loop
 * over LANES elements at a time becomes vector code at -O2; the attention's
 * fused row passes and the soft top-k gate are written that way.
 *
 * The same bits whatever the vector width: the build keeps floating-point
 * contraction off (-std=c11 implies -ffp-contract=off) and no -ffast-math,
 * so a vector lane computes exactly what the scalar call does, and a row's
 * result does not depend on how a loop was cut into vectors or where it ends.
 * Sums are kept in LANES separate accumulators added up in lane order at the
 * end: a fixed order, not the compiler's.
 *
 * Accuracy (tests/test_units.c measures it against libm in double):
 *   lanes_exp        within 2 ulp of exp on [-87, 88]; 0 below -87 (and for
 *                    -inf), exp(88) above 88; NaN stays NaN
 *   lanes_log1p01    log(1 + e) for e in [0, 1], within 3 ulp
 *   lanes_log_sigmoid, lanes_sigmoid_neg   within 4 ulp of log(sigmoid(u))
 *                    and of sigmoid(-u), any finite u */
#ifndef GATELAB_LANES_H
#define GATELAB_LANES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Elements per block of a vectorised loop: one AVX-512 register of floats,
 * two AVX2 ones. Row buffers are padded to a multiple of it. */
#define LANES 16

/* for (j = 0; j < end; j++) { ... }: whole blocks of LANES as vector code,
 * then the rest one by one. u is j's lane (j mod LANES), for per-lane
 * accumulators acc[u], which then hold the same sums whether or not a tail
 * was cut off or padded with zeros. */
#define LANES_FOR(j, u, end, ...)                                                      \
    do {                                                                               \
        const size_t lanes_end_ = (end);                                               \
        size_t lanes_j0_ = 0;                                                          \
        for (; lanes_j0_ + LANES <= lanes_end_; lanes_j0_ += LANES)                    \
            for (size_t u = 0; u < LANES; u++) {                                       \
                const size_t j = lanes_j0_ + u;                                        \
                __VA_ARGS__                                                            \
            }                                                                          \
        for (size_t u = 0; lanes_j0_ + u < lanes_end_; u++) {                          \
            const size_t j = lanes_j0_ + u;                                            \
            __VA_ARGS__                                                                \
        }                                                                              \
    } while (0)

static inline size_t lanes_round_up(size_t n)
{
    return (n + LANES - 1) / LANES * LANES;
}

static inline uint32_t lanes_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float lanes_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* exp(x) = 2^n exp(r), x = n ln2 + r, |r| <= ln2/2: n rounded by the 1.5*2^23
 * trick (its low mantissa bits are n), ln2 split in two so n*ln2_hi is
 * exact, exp(r) by its Taylor polynomial to degree 7 (truncation 5e-9). */
static inline float lanes_exp(float x)
{
    const float magic = 12582912.0f;   /* 1.5 * 2^23 */
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    float nm = xc * 1.44269504f + magic;
    float n = nm - magic;
    float r = xc - n * 0.693145752f;   /* ln2 high part: 16 bits, exact products */
    r = r - n * 1.42860677e-06f;       /* ln2 - high part */
    float p = 1.98412701e-4f;
    p = 1.38888892e-3f + r * p;
    p = 8.33333377e-3f + r * p;
    p = 4.16666679e-2f + r * p;
    p = 0.166666672f + r * p;
    p = 0.5f + r * p;
    p = 1.0f + r * p;
    p = 1.0f + r * p;
    /* 2^n from n's bits: the low bits of nm hold n + 0x400000 */
    uint32_t e = (lanes_bits(nm) - lanes_bits(magic) + 127u) << 23;
    float y = p * lanes_float(e);
    return x < -87.0f ? 0.0f : y;
}

/* log(1 + e), e in [0, 1]: 2 atanh(t) with t = e / (2 + e) in [0, 1/3], the
 * odd series to t^15 (truncation below 2e-8 relative); exact near e = 0,
 * where 1 + e would round e away. */
static inline float lanes_log1p01(float e)
{
    float t = e / (2.0f + e);
    float t2 = t * t;
    float p = 1.0f / 15.0f;
    p = 1.0f / 13.0f + t2 * p;
    p = 1.0f / 11.0f + t2 * p;
    p = 1.0f / 9.0f + t2 * p;
    p = 1.0f / 7.0f + t2 * p;
    p = 1.0f / 5.0f + t2 * p;
    p = 1.0f / 3.0f + t2 * p;
    p = 1.0f + t2 * p;
    return 2.0f * t * p;
}

/* log sigmoid(u) = min(u, 0) - log(1 + exp(-|u|)); e = exp(-|u|) is the
 * caller's, so that the mask and its derivative share one exponential. */
static inline float lanes_log_sigmoid_e(float u, float e)
{
    return (u < 0.0f ? u : 0.0f) - lanes_log1p01(e);
}

/* sigmoid(-u) = 1 - sigmoid(u), from the same e = exp(-|u|) */
static inline float lanes_sigmoid_neg_e(float u, float e)
{
    return (u >= 0.0f ? e : 1.0f) / (1.0f + e);
}

static inline float lanes_abs(float u)
{
    return u < 0.0f ? -u : u;
}

static inline float lanes_log_sigmoid(float u)
{
    return lanes_log_sigmoid_e(u, lanes_exp(-lanes_abs(u)));
}

static inline float lanes_sigmoid_neg(float u)
{
    return lanes_sigmoid_neg_e(u, lanes_exp(-lanes_abs(u)));
}

/* x[0..n): the sum, in lane order */
static inline float lanes_sum(const float *x, size_t n)
{
    float acc[LANES] = {0};
    LANES_FOR(j, u, n, acc[u] += x[j];);
    float s = 0.0f;
    for (size_t u = 0; u < LANES; u++)
        s += acc[u];
    return s;
}

/* x[0..n) . y[0..n), in lane order */
static inline float lanes_dot(const float *x, const float *y, size_t n)
{
    float acc[LANES] = {0};
    LANES_FOR(j, u, n, acc[u] += x[j] * y[j];);
    float s = 0.0f;
    for (size_t u = 0; u < LANES; u++)
        s += acc[u];
    return s;
}

/* the largest of x[0..n) (-inf for n = 0 or when all are) */
static inline float lanes_max(const float *x, size_t n)
{
    float acc[LANES];
    for (size_t u = 0; u < LANES; u++)
        acc[u] = -__builtin_inff();
    LANES_FOR(j, u, n, acc[u] = x[j] > acc[u] ? x[j] : acc[u];);
    float m = acc[0];
    for (size_t u = 1; u < LANES; u++)
        m = acc[u] > m ? acc[u] : m;
    return m;
}

#endif
