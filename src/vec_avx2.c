/* vec_avx2: the AVX2 + FMA path of vec.h (8 lanes): the primitives that
 * include/vec_simd.h's kernels are written over, compiled for that target
 * by attribute alone, so the rest of the build keeps its flags and the
 * path runs only where cpuid says it can (vec.c). */
#include "vec.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>

#define VEC_TGT __attribute__((target("avx2,fma")))
#define VW 8
#define VEC_NAME(f) vec_avx2_##f

typedef __m256 vf;
typedef struct {
    __m256d lo, hi;
} vd;

#define vf_set1 _mm256_set1_ps
#define vf_load _mm256_loadu_ps
#define vf_store _mm256_storeu_ps
#define vf_add _mm256_add_ps
#define vf_sub _mm256_sub_ps
#define vf_mul _mm256_mul_ps
#define vf_div _mm256_div_ps
#define vf_fma _mm256_fmadd_ps
#define vf_sqrt _mm256_sqrt_ps
#define vf_min _mm256_min_ps
#define vf_max _mm256_max_ps
#define vf_round(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* lanes [0, n) all ones */
static inline VEC_TGT __m256i vec_avx2_mask(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline VEC_TGT vf vf_load_n(const float *p, size_t n, float fill)
{
    __m256i m = vec_avx2_mask(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m),
                            _mm256_castsi256_ps(m));
}

static inline VEC_TGT void vf_store_n(float *p, vf v, size_t n)
{
    _mm256_maskstore_ps(p, vec_avx2_mask(n), v);
}

static inline VEC_TGT vf vf_keep_n(vf v, size_t n)
{
    return _mm256_and_ps(v, _mm256_castsi256_ps(vec_avx2_mask(n)));
}

static inline VEC_TGT vf vf_keep_finite_nonzero(vf t, vf e)
{
    vf ok = _mm256_and_ps(_mm256_cmp_ps(e, _mm256_setzero_ps(), _CMP_GT_OQ),
                          _mm256_cmp_ps(e, _mm256_set1_ps(INFINITY), _CMP_LT_OQ));
    return _mm256_and_ps(t, ok);
}

/* 2^n as two normal halves, 2^h and 2^(n-h) with h = n >> 1 (n in
 * [-150, 128] keeps both in [-75, 64]): p 2^h is exact, the second product
 * the one rounding, as AVX-512's vscalefps does. */
static inline VEC_TGT vf vf_scale2(vf p, vf n)
{
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i h = _mm256_srai_epi32(ni, 1);
    __m256i bias = _mm256_set1_epi32(127);
    vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
    vf s2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static inline VEC_TGT float vf_hsum(vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline VEC_TGT float vf_hmax(vf v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline VEC_TGT vd vd_zero(void)
{
    return (vd){_mm256_setzero_pd(), _mm256_setzero_pd()};
}

static inline VEC_TGT vd vd_add(vd a, vf v)
{
    a.lo = _mm256_add_pd(a.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    a.hi = _mm256_add_pd(a.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    return a;
}

static inline VEC_TGT vd vd_sumsq(vd a, vf v)
{
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a.lo = _mm256_fmadd_pd(lo, lo, a.lo);
    a.hi = _mm256_fmadd_pd(hi, hi, a.hi);
    return a;
}

static inline VEC_TGT double vd_hsum(vd a)
{
    __m256d s4 = _mm256_add_pd(a.lo, a.hi);
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

#include "vec_simd.h"

const vec_ops vec_avx2_ops = VEC_OPS_TABLE("avx2");

#endif
