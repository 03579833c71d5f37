/* test_lanes: the vectorised element-wise math of include/lanes.h against
 * libm in double (the accuracy its header states), its edge values, and the
 * promise the attention's row passes rest on: a value computed in a vector
 * block is the same bits as the scalar call, and a padded row gives the
 * same results as an exact one (gate.h's _row functions against the
 * per-row ones). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gate.h"
#include "lanes.h"
#include "rng.h"

/* the distance to the next float above |ref|: one ulp at ref */
static double ulp_at(double ref)
{
    float f = fabsf((float)ref);
    return (double)nextafterf(f, INFINITY) - (double)f;
}

/* the scalar paths, kept out of line so that the loops below are not
 * vectorised into the very code they are compared with */
__attribute__((noinline)) static float scalar_exp(float x) { return lanes_exp(x); }
__attribute__((noinline)) static float scalar_ls(float x) { return lanes_log_sigmoid(x); }
__attribute__((noinline)) static float scalar_sn(float x) { return lanes_sigmoid_neg(x); }

static void test_accuracy(void)
{
    const long N = 2000000;
    double w_exp = 0.0, w_l1p = 0.0, w_ls = 0.0, w_sn = 0.0;
    for (long i = 0; i <= N; i++) {
        const float x = -87.0f + 175.0f * (float)i / (float)N;
        const double e = exp((double)x);
        w_exp = fmax(w_exp, fabs(lanes_exp(x) - e) / ulp_at(e));
        const float u = -40.0f + 80.0f * (float)i / (float)N;
        const double ls = -log1p(exp(-(double)u));
        w_ls = fmax(w_ls, fabs(lanes_log_sigmoid(u) - ls) / ulp_at(ls));
        const double sn = 1.0 / (1.0 + exp((double)u));
        w_sn = fmax(w_sn, fabs(lanes_sigmoid_neg(u) - sn) / ulp_at(sn));
        const float a = (float)i / (float)N;
        if (a > 0.0f) {
            const double l = log1p((double)a);
            w_l1p = fmax(w_l1p, fabs(lanes_log1p01(a) - l) / ulp_at(l));
        }
    }
    CHECK(w_exp <= 2.0, "lanes_exp within 2 ulp of exp on [-87, 88]: worst %.2f ulp", w_exp);
    CHECK(w_l1p <= 3.0, "lanes_log1p01 within 3 ulp of log1p on [0, 1]: worst %.2f ulp", w_l1p);
    CHECK(w_ls <= 4.0, "lanes_log_sigmoid within 4 ulp on [-40, 40]: worst %.2f ulp", w_ls);
    CHECK(w_sn <= 4.0, "lanes_sigmoid_neg within 4 ulp on [-40, 40]: worst %.2f ulp", w_sn);
    CHECK(lanes_exp(-INFINITY) == 0.0f && lanes_exp(-100.0f) == 0.0f && lanes_exp(0.0f) == 1.0f &&
              isnan(lanes_exp(NAN)) && lanes_exp(100.0f) == lanes_exp(88.0f),
          "lanes_exp: 0 at -inf and below -87, 1 at 0, NaN stays NaN, clamped above 88");
    CHECK(lanes_log_sigmoid(-200.0f) == -200.0f && lanes_log_sigmoid(200.0f) == 0.0f &&
              lanes_sigmoid_neg(200.0f) == 0.0f && lanes_sigmoid_neg(-200.0f) == 1.0f,
          "far tails: log sigmoid(-200) = -200, log sigmoid(200) = 0, sigmoid(-200) = 0");
}

static void test_vector_is_scalar(void)
{
    enum { N = 37 };
    float x[48], ve[48], vl[48], vs[48];
    rng_state r;
    rng_seed(&r, 5);
    for (size_t j = 0; j < 48; j++)
        x[j] = 8.0f * rng_normal(&r);
    LANES_FOR(j, u, (size_t)N, {
        (void)u;
        ve[j] = lanes_exp(x[j]);
        vl[j] = lanes_log_sigmoid(x[j]);
        vs[j] = lanes_sigmoid_neg(x[j]);
    });
    int same = 1;
    for (size_t j = 0; j < N; j++)
        same &= lanes_bits(ve[j]) == lanes_bits(scalar_exp(x[j])) &&
                lanes_bits(vl[j]) == lanes_bits(scalar_ls(x[j])) &&
                lanes_bits(vs[j]) == lanes_bits(scalar_sn(x[j]));
    CHECK(same, "37 values through LANES_FOR (two vector blocks and a tail) are the scalar "
                "calls' bits");
    /* a sum over a tail equals the sum over the row padded with zeros */
    float padded[48] = {0};
    memcpy(padded, x, N * sizeof(float));
    CHECK(lanes_bits(lanes_sum(x, N)) == lanes_bits(lanes_sum(padded, 48)) &&
              lanes_bits(lanes_dot(x, x, N)) == lanes_bits(lanes_dot(padded, padded, 48)),
          "lanes_sum and lanes_dot: a tail of 5 and the same row padded to 48 agree to the bit");
}

/* gate.h's padded _row functions against the exact per-row ones */
static void test_gate_rows(void)
{
    enum { N = 29, K = 6, PAD = 32 };
    const float temp = 0.25f;
    float s[PAD], g[PAD], logm_row[PAD], sgn[PAD], ds_row[PAD], logm[N], ds[N];
    uint32_t idx[N];
    rng_state r;
    rng_seed(&r, 9);
    for (size_t j = 0; j < PAD; j++) {
        s[j] = j < N ? rng_normal(&r) : NAN;   /* padding: whatever was there */
        g[j] = j < N ? rng_normal(&r) : NAN;
    }
    gate_row_stats st, st_row;
    gate_soft_topk_forward(logm, &st, s, N, K, temp, idx);
    gate_pivot pv = {0};
    gate_soft_topk_stats(&st_row, s, N, K, idx, &pv);
    gate_log_mask_row(logm_row, sgn, s, N, st_row.tau, gate_soft_topk_scale(temp, &st_row));
    gate_soft_topk_backward(ds, g, s, N, K, temp, &st);
    gate_soft_topk_backward_row(ds_row, g, sgn, s, N, temp, &st_row);
    int same = !memcmp(&st, &st_row, sizeof st) && !memcmp(logm, logm_row, sizeof logm);
    int zeros = 1;
    for (size_t j = N; j < PAD; j++)
        zeros &= logm_row[j] == 0.0f && sgn[j] == 0.0f && ds_row[j] == 0.0f;
    CHECK(same, "soft top-k: the padded row's statistics and log-mask are the exact row's bits");
    /* sigmoid(-u) kept from the mask's exponential, or recomputed: the same */
    CHECK(!memcmp(ds, ds_row, sizeof ds),
          "soft top-k backward: the padded row's ds are the exact row's bits");
    CHECK(zeros, "padding (NaN on entry) comes out 0 in the log-mask, sigmoid and ds");
}

int main(void)
{
    test_accuracy();
    test_vector_is_scalar();
    test_gate_rows();
    return check_finish();
}
