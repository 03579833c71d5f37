/* vec_avx512: the AVX-512 path of vec.h (16 lanes, masked tails, vscalefps
 * for 2^n): the primitives include/vec_simd.h's kernels are written over,
 * compiled for that target by attribute alone (vec.c runs the path only
 * where cpuid says it can). */
#include "vec.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>

#define VEC_TGT __attribute__((target("avx512f,avx2,fma")))
#define VW 16
#define VEC_NAME(f) vec_avx512_##f

typedef __m512 vf;
typedef struct {
    __m512d lo, hi;
} vd;

#define vf_set1 _mm512_set1_ps
#define vf_load _mm512_loadu_ps
#define vf_store _mm512_storeu_ps
#define vf_add _mm512_add_ps
#define vf_sub _mm512_sub_ps
#define vf_mul _mm512_mul_ps
#define vf_div _mm512_div_ps
#define vf_fma _mm512_fmadd_ps
#define vf_sqrt _mm512_sqrt_ps
#define vf_min _mm512_min_ps
#define vf_max _mm512_max_ps
#define vf_round(v) _mm512_roundscale_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vf_scale2 _mm512_scalef_ps

static inline VEC_TGT __mmask16 vec_avx512_mask(size_t n)
{
    return (__mmask16)((1u << n) - 1u);
}

static inline VEC_TGT vf vf_load_n(const float *p, size_t n, float fill)
{
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), vec_avx512_mask(n), p);
}

static inline VEC_TGT void vf_store_n(float *p, vf v, size_t n)
{
    _mm512_mask_storeu_ps(p, vec_avx512_mask(n), v);
}

static inline VEC_TGT vf vf_keep_n(vf v, size_t n)
{
    return _mm512_maskz_mov_ps(vec_avx512_mask(n), v);
}

static inline VEC_TGT vf vf_keep_finite_nonzero(vf t, vf e)
{
    __mmask16 ok = _mm512_cmp_ps_mask(e, _mm512_setzero_ps(), _CMP_GT_OQ) &
                   _mm512_cmp_ps_mask(e, _mm512_set1_ps(INFINITY), _CMP_LT_OQ);
    return _mm512_maskz_mov_ps(ok, t);
}

/* halves, then AVX2's order from there */
static inline VEC_TGT float vf_hsum(vf v)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline VEC_TGT float vf_hmax(vf v)
{
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline VEC_TGT vd vd_zero(void)
{
    return (vd){_mm512_setzero_pd(), _mm512_setzero_pd()};
}

static inline VEC_TGT __m512d vec_avx512_hi_pd(vf v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

static inline VEC_TGT vd vd_add(vd a, vf v)
{
    a.lo = _mm512_add_pd(a.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    a.hi = _mm512_add_pd(a.hi, vec_avx512_hi_pd(v));
    return a;
}

static inline VEC_TGT vd vd_sumsq(vd a, vf v)
{
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), hi = vec_avx512_hi_pd(v);
    a.lo = _mm512_fmadd_pd(lo, lo, a.lo);
    a.hi = _mm512_fmadd_pd(hi, hi, a.hi);
    return a;
}

static inline VEC_TGT double vd_hsum(vd a)
{
    __m512d s8 = _mm512_add_pd(a.lo, a.hi);
    __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s8), _mm512_extractf64x4_pd(s8, 1));
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

#include "vec_simd.h"

const vec_ops vec_avx512_ops = VEC_OPS_TABLE("avx512");

#endif
