/* test_vec: every element-wise path this CPU has (vec.h: scalar, AVX2,
 * AVX-512; one it lacks is counted skipped) against a double-precision
 * reference over wide input ranges (large |x|, tiny and subnormal values,
 * -inf where a mask puts it, NaN that must come through), against each
 * other (AVX2 and AVX-512 to the bit where vec.h says so, AdamW on every
 * path to the bit), the same bits whichever way a buffer is cut into
 * blocks (what makes results independent of the thread count), and
 * GATELAB_VEC's checks. The tolerances are vec.h's. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "vec.h"

static rng_state rs;

static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next(&rs) >> 11) / 9007199254740992.0);
}

/* ---- inputs: a dense grid, a log-spaced sweep of both signs down to
 * subnormals and up to FLT_MAX, and the special values ---- */

static size_t fill_wide(float *x, float grid_lo, float grid_hi, size_t grid)
{
    size_t n = 0;
    for (size_t i = 0; i < grid; i++)
        x[n++] = grid_lo + (grid_hi - grid_lo) * (float)i / (float)(grid - 1);
    for (double a = 1e-45; a < FLT_MAX; a *= 1.1) {
        x[n++] = (float)a;
        x[n++] = (float)-a;
    }
    const float special[] = {0.0f, -0.0f, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX, 1e-30f,
                             -1e-30f, 88.72f, 88.73f, 89.0f, -87.3f, -103.9f, -104.0f,
                             -150.0f, 1e10f, -1e10f, 1e20f, -1e20f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        x[n++] = special[i];
    return n;
}

#define WIDE_MAX (1u << 20)

/* the worst of err / tol over a kernel's outputs, and where */
typedef struct {
    double worst;
    float at;
    float got;
    double ref;
} worst_err;

static void track(worst_err *w, double err, double tol, float at, float got, double ref)
{
    double r = err == 0.0 ? 0.0 : err / tol;
    if (!(r <= w->worst)) {   /* NaN ratio counts as worst */
        w->worst = isnan(r) ? INFINITY : r;
        w->at = at;
        w->got = got;
        w->ref = ref;
    }
}

/* finite ref: within tol; non-finite ref: the same class and sign */
static void compare(worst_err *w, float got, double ref, double tol, float at)
{
    if (isnan(ref)) {
        track(w, isnan(got) ? 0.0 : INFINITY, 1.0, at, got, ref);
    } else if (isinf((float)ref)) {   /* beyond FLT_MAX: rounds to inf */
        track(w, (isinf(got) && (got > 0) == (ref > 0)) ? 0.0 : INFINITY, 1.0, at, got, ref);
    } else {
        track(w, fabs((double)got - ref), tol, at, got, ref);
    }
}

/* ---- references in double ---- */

#define GK 0.7978845608028654
#define GC 0.044715

static double ref_gelu(double x)
{
    if (isinf(x))
        return x > 0 ? x : NAN;   /* x / (1 + inf) for -inf: vec.h's NaN */
    double u = GK * (x + GC * x * x * x);
    return x / (1.0 + exp(-2.0 * u));
}

static double ref_gelu_grad(double x)
{
    if (isinf(x))
        return x > 0 ? 1.0 : 0.0;
    double u = GK * (x + GC * x * x * x), e = exp(-2.0 * u);
    double s = 1.0 / (1.0 + e), s1s = 1.0 / (e + 2.0 + 1.0 / e);   /* s (1 - s) */
    return s + 2.0 * x * GK * (1.0 + 3.0 * GC * x * x) * s1s;
}

/* ---- the kernels, one path at a time ---- */

static void test_exp(const vec_ops *o, float *x, float *y, size_t n)
{
    o->exp(y, x, n);
    worst_err w = {0};
    for (size_t i = 0; i < n; i++) {
        double ref = exp((double)x[i]);
        compare(&w, y[i], ref, 4e-7 * fabs(ref) + 0x1p-149, x[i]);
    }
    CHECK(w.worst <= 1.0, "%s exp: %zu inputs, worst err/tol %.3g (exp(%g) = %g, ref %g)",
          o->name, n, w.worst, w.at, w.got, w.ref);
    float sp[] = {-INFINITY, INFINITY, NAN, 0.0f, 100.0f, -200.0f};
    float out[6];
    o->exp(out, sp, 6);
    CHECK(out[0] == 0.0f && out[1] == INFINITY && isnan(out[2]) && out[3] == 1.0f &&
              out[4] == INFINITY && out[5] == 0.0f,
          "%s exp: -inf -> 0, inf -> inf, NaN -> NaN, 0 -> 1, 100 -> inf, -200 -> 0 "
          "(got %g %g %g %g %g %g)", o->name, out[0], out[1], out[2], out[3], out[4], out[5]);
}

static void test_softmax(const vec_ops *o)
{
    /* rows of every length up to 70 (every tail), scores spread as logits and
     * attention scores are, some entries -inf (masked) */
    worst_err w = {0};
    float z[70], p[70];
    size_t rows = 0;
    for (size_t n = 1; n <= 70; n++)
        for (int rep = 0; rep < 20; rep++, rows++) {
            float spread = rep < 10 ? 3.0f : 40.0f;
            for (size_t j = 0; j < n; j++)
                z[j] = (j > 0 && rng_below(&rs, 4) == 0) ? -INFINITY : uniform(-spread, spread);
            float mx = o->max(z, n);
            double sum = o->exp_sum(p, z, mx, n);
            o->scale(p, (float)(1.0 / sum), n);
            double rmax = -INFINITY, rsum = 0.0;
            for (size_t j = 0; j < n; j++)
                rmax = z[j] > rmax ? z[j] : rmax;
            for (size_t j = 0; j < n; j++)
                rsum += exp((double)z[j] - rmax);
            track(&w, mx == (float)rmax ? 0.0 : INFINITY, 1.0, (float)n, mx, rmax);
            for (size_t j = 0; j < n; j++) {
                double ref = exp((double)z[j] - rmax) / rsum;
                /* z - max rounds by up to |z - max| 2^-24, which exp turns
                 * into a relative error */
                compare(&w, p[j], ref, (1e-6 + 1.2e-7 * fabs(z[j] - rmax)) * ref + 1e-38, z[j]);
            }
        }
    CHECK(w.worst <= 1.0, "%s softmax (max, exp_sum, scale): %zu rows of 1..70 with -inf "
          "entries, worst err/tol %.3g", o->name, rows, w.worst);
    /* a NaN score makes the row NaN (the sum), so a diverged run is seen */
    float zn[19];
    for (size_t j = 0; j < 19; j++)
        zn[j] = (float)j;
    zn[17] = NAN;
    float mx = o->max(zn, 19);
    double sum = o->exp_sum(zn, zn, mx, 19);
    CHECK(mx == 18.0f && isnan(sum), "%s softmax: a NaN score is passed over by max (%g) and "
          "makes the sum NaN (%g)", o->name, mx, sum);
}

static void test_gelu(const vec_ops *o, float *x, float *y, float *dy, size_t n)
{
    o->gelu_forward(y, x, n);
    worst_err w = {0};
    for (size_t i = 0; i < n; i++)
        compare(&w, y[i], ref_gelu(x[i]),
                1e-6 * fabs(ref_gelu(x[i])) + 2e-7 * fabs(x[i]) + 0x1p-149, x[i]);
    CHECK(w.worst <= 1.0, "%s gelu_forward: %zu inputs, worst err/tol %.3g (gelu(%g) = %g, "
          "ref %g)", o->name, n, w.worst, w.at, w.got, w.ref);

    for (size_t i = 0; i < n; i++)
        dy[i] = (i % 3 == 0) ? 1.0f : uniform(-1e3f, 1e3f);
    float *g = malloc(n * sizeof *g);
    o->gelu_backward(g, x, dy, n);
    memset(&w, 0, sizeof w);
    for (size_t i = 0; i < n; i++) {
        double ref = ref_gelu_grad(x[i]) * dy[i];
        compare(&w, g[i], ref, 1e-6 * fabs(ref) + 2e-7 * fabs(dy[i]) + 0x1p-149, x[i]);
    }
    CHECK(w.worst <= 1.0, "%s gelu_backward: %zu inputs, worst err/tol %.3g (x %g: %g, ref "
          "%g)", o->name, n, w.worst, w.at, w.got, w.ref);
    /* in place, as the network runs it */
    memcpy(y, dy, n * sizeof *y);
    o->gelu_backward(y, x, y, n);
    CHECK(memcmp(y, g, n * sizeof *y) == 0, "%s gelu_backward in place (dinp == dout) gives "
          "the same bits", o->name);
    free(g);

    float sp[] = {NAN, INFINITY, -INFINITY}, out[3], one[3] = {1, 1, 1};
    o->gelu_forward(out, sp, 3);
    CHECK(isnan(out[0]) && out[1] == INFINITY && isnan(out[2]),
          "%s gelu_forward: NaN -> NaN, inf -> inf, -inf -> NaN (got %g %g %g)", o->name,
          out[0], out[1], out[2]);
    o->gelu_backward(out, sp, one, 3);
    CHECK(isnan(out[0]) && out[1] == 1.0f && out[2] == 0.0f,
          "%s gelu_backward: NaN -> NaN, inf -> 1, -inf -> 0 (got %g %g %g)", o->name, out[0],
          out[1], out[2]);
}

/* rows of width C: scale * N(0,1) + offset; the reference in double. The
 * tolerance is 2e-5 of the output's scale (|w| (|norm| + 1) + |b|) times
 * the row's condition 1 + |mean| rstd (cancellation in x - mean). */
static void test_layernorm(const vec_ops *o)
{
    const size_t widths[] = {1, 7, 8, 15, 16, 17, 33, 128, 384};
    const float scales[] = {1e-3f, 1.0f, 1e3f}, offsets[] = {0.0f, 10.0f};
    worst_err wf = {0}, wb = {0};
    size_t rows_done = 0;
    enum { N = 5 };
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const size_t C = widths[wi];
        float *x = malloc(N * C * 4), *out = malloc(N * C * 4), *w = malloc(C * 4),
              *b = malloc(C * 4), *d = malloc(N * C * 4), *dx = malloc(N * C * 4),
              *dw = malloc(C * 4), *db = malloc(C * 4);
        float mean[N], rstd[N];
        for (size_t si = 0; si < 3; si++)
            for (size_t oi = 0; oi < 2; oi++) {
                for (size_t c = 0; c < C; c++) {
                    w[c] = uniform(0.5f, 1.5f);
                    b[c] = uniform(-0.1f, 0.1f);
                    dw[c] = uniform(-1, 1);
                    db[c] = uniform(-1, 1);
                }
                for (size_t i = 0; i < N * C; i++) {
                    x[i] = scales[si] * (rng_normal(&rs) + offsets[oi]);
                    d[i] = rng_normal(&rs);
                    dx[i] = uniform(-1, 1);
                }
                float *dx0 = malloc(N * C * 4), *dw0 = malloc(C * 4), *db0 = malloc(C * 4);
                memcpy(dx0, dx, N * C * 4);
                memcpy(dw0, dw, C * 4);
                memcpy(db0, db, C * 4);
                o->layernorm_forward(out, mean, rstd, x, w, b, N, C);
                o->layernorm_backward(dx, dw, db, d, x, w, mean, rstd, N, C);
                double *rdw = calloc(C, sizeof *rdw), *rdb = calloc(C, sizeof *rdb),
                       dwscale = 0.0, cond_max = 1.0;
                for (size_t r = 0; r < N; r++, rows_done++) {
                    const float *xr = x + r * C, *dr = d + r * C;
                    double m = 0, v = 0, dm = 0, dnm = 0;
                    for (size_t c = 0; c < C; c++)
                        m += xr[c];
                    m /= (double)C;
                    for (size_t c = 0; c < C; c++)
                        v += (xr[c] - m) * (xr[c] - m);
                    v /= (double)C;
                    double s = 1.0 / sqrt(v + 1e-5), cond = 1.0 + fabs(m) * s;
                    cond_max = cond > cond_max ? cond : cond_max;
                    for (size_t c = 0; c < C; c++) {
                        double norm = (xr[c] - m) * s;
                        double ref = norm * w[c] + b[c];
                        compare(&wf, out[r * C + c], ref,
                                2e-5 * cond * (fabs(w[c]) * (fabs(norm) + 1) + fabs(b[c])), xr[c]);
                        dm += w[c] * (double)dr[c];
                        dnm += w[c] * (double)dr[c] * norm;
                        rdw[c] += norm * dr[c];
                        rdb[c] += dr[c];
                        dwscale += fabs(norm * dr[c]);
                    }
                    dm /= (double)C;
                    dnm /= (double)C;
                    double dscale = 0.0;
                    for (size_t c = 0; c < C; c++)
                        dscale += fabs(w[c] * (double)dr[c]);
                    dscale = dscale / (double)C + 1e-30;
                    for (size_t c = 0; c < C; c++) {
                        double norm = (xr[c] - m) * s;
                        double ref = dx0[r * C + c] + (w[c] * (double)dr[c] - dm - norm * dnm) * s;
                        double scale = fabs(dx0[r * C + c]) +
                                       (fabs(w[c] * (double)dr[c]) + dscale * (1 + fabs(norm))) * s;
                        compare(&wb, dx[r * C + c], ref, 2e-5 * cond * scale, xr[c]);
                    }
                }
                for (size_t c = 0; c < C; c++) {
                    compare(&wb, dw[c], dw0[c] + rdw[c],
                            2e-5 * cond_max * (fabs(dw0[c]) + dwscale / (double)C + 1.0), 0);
                    compare(&wb, db[c], db0[c] + rdb[c], 1e-5 * (fabs(db0[c]) + N * 4.0), 0);
                }
                free(rdw);
                free(rdb);
                free(dx0);
                free(dw0);
                free(db0);
            }
        /* a NaN in row 2 makes row 2 NaN and leaves the others finite */
        for (size_t i = 0; i < N * C; i++)
            x[i] = rng_normal(&rs);
        x[2 * C + C / 2] = NAN;
        o->layernorm_forward(out, mean, rstd, x, w, b, N, C);
        int ok = isnan(mean[2]);
        for (size_t i = 0; i < N * C; i++)
            ok &= (i / C == 2) ? isnan(out[i]) : isfinite(out[i]);
        CHECK(ok, "%s layernorm_forward C=%zu: a NaN makes its row NaN, the others finite",
              o->name, C);
        free(x), free(out), free(w), free(b), free(d), free(dx), free(dw), free(db);
    }
    CHECK(wf.worst <= 1.0, "%s layernorm_forward: %zu rows, widths 1..384, scales 1e-3..1e3 "
          "with offsets, worst err/tol %.3g (x %g: %g, ref %g)", o->name, rows_done, wf.worst,
          wf.at, wf.got, wf.ref);
    CHECK(wb.worst <= 1.0, "%s layernorm_backward: dinp (+=), dweight, dbias, worst err/tol "
          "%.3g (%g, ref %g)", o->name, wb.worst, wb.got, wb.ref);
}

/* AdamW: the scalar code's operations, so the same bits on every path */
static void test_adamw(const vec_ops *o)
{
    const size_t n = 1000 + 13;
    float *p = malloc(n * 4), *g = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4);
    float *p2 = malloc(n * 4), *m2 = malloc(n * 4), *v2 = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        p[i] = rng_normal(&rs) * (i % 7 == 0 ? 1e3f : 0.02f);
        g[i] = rng_normal(&rs) * (i % 5 == 0 ? 1e-20f : 1e-2f);
        m[i] = rng_normal(&rs) * 1e-3f;
        v[i] = fabsf(rng_normal(&rs)) * 1e-6f;
    }
    g[11] = NAN;
    memcpy(p2, p, n * 4);
    memcpy(m2, m, n * 4);
    memcpy(v2, v, n * 4);
    const vec_adamw_args a = {.clip = 0.7f, .beta1 = 0.9f, .beta2 = 0.95f, .b1c = 0.271f,
                              .b2c = 0.0975f, .lr = 3e-3f, .wd = 0.1f, .eps = 1e-8f};
    for (int step = 0; step < 3; step++) {
        o->adamw(p, g, m, v, n, &a);
        vec_ops_of(VEC_SCALAR)->adamw(p2, g, m2, v2, n, &a);
    }
    CHECK(memcmp(p, p2, n * 4) == 0 && memcmp(m, m2, n * 4) == 0 && memcmp(v, v2, n * 4) == 0,
          "%s adamw: 3 updates of %zu weights (tail included, a NaN gradient) are the scalar "
          "path's bits", o->name, n);
    CHECK(isnan(p[11]) && isfinite(p[10]) && isfinite(p[12]),
          "%s adamw: a NaN gradient makes its weight NaN only", o->name);
    /* one step checked against double */
    worst_err w = {0};
    for (size_t i = 0; i < n; i++) {
        double pi = p[i], gi = (double)g[i] * a.clip, mi = 0.9 * m[i] + 0.1 * gi,
               vi = 0.95 * v[i] + 0.05 * gi * gi;
        double ref = pi - a.lr * (mi / a.b1c / (sqrt(vi / a.b2c) + a.eps) + a.wd * pi);
        float pp = p[i], mm = m[i], vv = v[i];
        o->adamw(&pp, &g[i], &mm, &vv, 1, &a);
        compare(&w, pp, ref, 1e-6 * fabs(pi) + 1e-5 * a.lr * (fabs(mi / a.b1c) /
                (sqrt(vi / a.b2c) + a.eps) + a.wd * fabs(pi)), p[i]);
    }
    CHECK(w.worst <= 1.0, "%s adamw against double: worst err/tol %.3g", o->name, w.worst);
    free(p), free(g), free(m), free(v), free(p2), free(m2), free(v2);
}

static void test_sums(const vec_ops *o)
{
    const size_t n = 4099;
    float *x = malloc(n * 4), *a = malloc(n * 4), *y = malloc(n * 4);
    double ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = rng_normal(&rs) * (i % 9 == 0 ? 1e4f : 1e-3f);
        a[i] = rng_normal(&rs);
        ref += (double)x[i] * x[i];
    }
    double got = o->sumsq(x, n);
    CHECK(fabs(got - ref) <= 1e-12 * ref, "%s sumsq: %.17g vs %.17g", o->name, got, ref);
    o->add(y, x, a, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= y[i] == x[i] + a[i];
    o->add(x, x, a, n);
    CHECK(ok && memcmp(x, y, n * 4) == 0, "%s add: exact, in place too", o->name);
    /* colsum: every width's tail, the rows in order as the scalar loop */
    int same = 1;
    for (size_t C = 1; C <= 150; C += (C < 70 ? 1 : 37)) {
        const size_t N = 1 + C % 9, ld = C + 3;
        float *ys = malloc(C * 4), *yv = malloc(C * 4);
        for (size_t c = 0; c < C; c++)
            ys[c] = yv[c] = a[c];
        vec_ops_of(VEC_SCALAR)->colsum(ys, x, N, C, ld);
        o->colsum(yv, x, N, C, ld);
        for (size_t c = 0; c < C; c++) {
            float r = a[c];
            for (size_t k = 0; k < N; k++)
                r += x[k * ld + c];
            same &= yv[c] == r && ys[c] == r;
        }
        free(ys), free(yv);
    }
    CHECK(same, "%s colsum: widths 1..150 with a stride, the bits of adding row by row",
          o->name);
    free(x), free(a), free(y);
}

/* cutting a buffer anywhere (the pool's blocks) gives the same bits */
static void test_blocks(const vec_ops *o, const float *x, size_t n)
{
    float *whole = malloc(n * 4), *cut = malloc(n * 4), *one = malloc(n * 4);
    int ok = 1;
    o->gelu_forward(whole, x, n);
    for (size_t i = 0; i < n;) {
        size_t k = 1 + rng_below(&rs, 40);
        if (k > n - i)
            k = n - i;
        o->gelu_forward(cut + i, x + i + 0, k);
        i += k;
    }
    ok &= memcmp(whole, cut, n * 4) == 0;
    o->gelu_backward(whole, x, x, n);
    for (size_t i = 0; i < n; i++)
        o->gelu_backward(one + i, x + i, x + i, 1);
    ok &= memcmp(whole, one, n * 4) == 0;
    o->exp(whole, x, n);
    for (size_t i = 0; i < n; i++)
        o->exp(one + i, x + i, 1);
    ok &= memcmp(whole, one, n * 4) == 0;
    CHECK(ok, "%s: gelu, its gradient and exp give the same bits whole, in random blocks "
          "and one element at a time", o->name);
    free(whole), free(cut), free(one);
}

/* AVX2 and AVX-512 run the same operations on every element */
static void test_cross(const vec_ops *a, const vec_ops *b, const float *x, size_t n)
{
    float *ya = malloc(n * 4), *yb = malloc(n * 4);
    int ok = 1;
    a->exp(ya, x, n);
    b->exp(yb, x, n);
    ok &= memcmp(ya, yb, n * 4) == 0;
    a->gelu_forward(ya, x, n);
    b->gelu_forward(yb, x, n);
    ok &= memcmp(ya, yb, n * 4) == 0;
    a->gelu_backward(ya, x, x, n);
    b->gelu_backward(yb, x, x, n);
    ok &= memcmp(ya, yb, n * 4) == 0;
    CHECK(ok, "%s and %s: exp, gelu and its gradient are the same bits over %zu inputs",
          a->name, b->name, n);
    free(ya), free(yb);
}

/* the scalar path and a SIMD one agree within the sum of their tolerances */
static void test_against_scalar(const vec_ops *o, const float *x, size_t n)
{
    const vec_ops *s = vec_ops_of(VEC_SCALAR);
    float *ya = malloc(n * 4), *yb = malloc(n * 4);
    worst_err w = {0};
    o->gelu_forward(ya, x, n);
    s->gelu_forward(yb, x, n);
    for (size_t i = 0; i < n; i++)
        compare(&w, ya[i], yb[i], 2 * (1e-6 * fabs(yb[i]) + 2e-7 * fabs(x[i]) + 0x1p-149), x[i]);
    o->exp(ya, x, n);
    s->exp(yb, x, n);
    for (size_t i = 0; i < n; i++)
        compare(&w, ya[i], isnan(yb[i]) ? NAN : yb[i], 8e-7 * fabs(yb[i]) + 0x1p-148, x[i]);
    CHECK(w.worst <= 1.0, "%s against scalar: gelu and exp within twice the tolerance, worst "
          "%.3g (x %g)", o->name, w.worst, w.at);
    free(ya), free(yb);
}

static void test_select(void)
{
    gl_error e;
    vec_path best = VEC_SCALAR;
    for (vec_path p = 0; p < VEC_NPATHS; p++)
        if (vec_ops_of(p))
            best = p;
    unsetenv("GATELAB_VEC");
    CHECK(vec_init(&e) == 0 && vec_active_path() == best && vec_active() == vec_ops_of(best),
          "GATELAB_VEC unset: the best path this CPU has, %s", vec_path_name(best));
    setenv("GATELAB_VEC", "sse9", 1);
    int rc = vec_init(&e);
    CHECK(rc == -1 && strstr(e.msg, "GATELAB_VEC=sse9") && strstr(e.msg, "not a path"),
          "GATELAB_VEC=sse9 is refused naming the variable (%s)", rc ? e.msg : "accepted");
    for (vec_path p = 0; p < VEC_NPATHS; p++) {
        setenv("GATELAB_VEC", vec_path_name(p), 1);
        rc = vec_init(&e);
        if (vec_ops_of(p))
            CHECK(rc == 0, "GATELAB_VEC=%s is accepted on this CPU", vec_path_name(p));
        else
            CHECK(rc == -1 && strstr(e.msg, "cannot run"),
                  "GATELAB_VEC=%s is refused: this CPU lacks it (%s)", vec_path_name(p),
                  rc ? e.msg : "accepted");
    }
    unsetenv("GATELAB_VEC");
    CHECK(vec_active_path() == best, "the path stays the one first fixed (%s): every thread "
          "and arm runs the same", vec_path_name(vec_active_path()));
    /* the softmax row wrapper returns the log-sum-exp */
    float z[5] = {1, 2, 3, -INFINITY, 0.5f}, p[5];
    float lse = vec_softmax_row(p, z, 5);
    double rl = log(exp(1.0) + exp(2.0) + exp(3.0) + exp(0.5));
    CHECK(fabs(lse - rl) < 1e-6 && p[3] == 0.0f && fabs(p[2] - exp(3.0 - rl)) < 1e-7,
          "vec_softmax_row: probabilities and log-sum-exp %.7g (ref %.7g)", lse, rl);
}

int main(void)
{
    rng_seed(&rs, 13);
    float *x = malloc(WIDE_MAX * sizeof *x), *y = malloc(WIDE_MAX * sizeof *y),
          *dy = malloc(WIDE_MAX * sizeof *dy);
    const size_t ne = fill_wide(x, -110.0f, 95.0f, 400000);
    float *xg = malloc(WIDE_MAX * sizeof *xg);
    const size_t ng = fill_wide(xg, -14.0f, 14.0f, 400000);
    xg[ng] = NAN;   /* NaN checked apart; not in the sweeps */

    test_select();
    int per_path = 0;
    for (vec_path p = 0; p < VEC_NPATHS; p++) {
        const vec_ops *o = vec_ops_of(p);
        if (!o) {
            /* the checks the path would have run (the scalar path's, and the
             * comparison with it): each counted skipped */
            check_skipped += per_path + 1;
            printf("  skip %s path: this CPU cannot run it (%d checks: exp, softmax, gelu, "
                   "layernorm, adamw, sums, blocks, against scalar)\n", vec_path_name(p),
                   per_path + 1);
            continue;
        }
        const int before = check_passed + check_failed;
        printf("-- %s\n", o->name);
        test_exp(o, x, y, ne);
        test_softmax(o);
        test_gelu(o, xg, y, dy, ng);
        test_layernorm(o);
        test_adamw(o);
        test_sums(o);
        test_blocks(o, xg, 100003);
        if (p != VEC_SCALAR)
            test_against_scalar(o, xg, ng);
        else
            per_path = check_passed + check_failed - before;
    }
    if (vec_ops_of(VEC_AVX2) && vec_ops_of(VEC_AVX512))
        test_cross(vec_ops_of(VEC_AVX2), vec_ops_of(VEC_AVX512), xg, ng);
    else
        SKIP("avx2 against avx512: this CPU lacks one of them");
    (void)dy;
    free(x), free(y), free(dy), free(xg);
    return check_finish();
}
