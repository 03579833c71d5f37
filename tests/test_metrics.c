/* test_metrics: metrics_row and metrics_value (include/metrics.h) on
 * hand-worked rows of 2 to 6 visible keys. Every expected value is worked out
 * in the comment above its checks, from DESIGN §4 and metrics.h alone:
 *   O = the k largest content logits c (ties: the earlier key),
 *   G = the k largest gate scores when there are scores, else the hard mask
 *       in force; precision |G∩O|/|G|, recall |G∩O|/|O|, F1 their harmonic
 *       mean (0 when both are 0), mass = softmax(c) summed over a set,
 *   chance k/n, density kept/n (mean of exp(logm) for a soft mask, 1 for
 *   none), entropy the mean binary entropy in bits of the soft mask,
 *   flip rate the share of G (sequence 0 only) not in the previous
 *   evaluation's G; only rows with n > k count.
 * Content logits are logarithms of small integers so the softmax masses are
 * fractions: c = ln{1,2,3,4} gives masses {1,2,3,4}/10. Tolerance 1e-6
 * (the logits are floats), exact where no float rounding is involved. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

#define TOL 1e-6

typedef struct {
    metrics_state m;
    uint32_t idx[8];
    unsigned char gate_keep[8], oracle_keep[8];
} fixture;

static void fx_init(fixture *f, size_t H, size_t k)
{
    metrics_init(&f->m, 1, H, 8);
    metrics_reset(&f->m, k);
}

static void row(fixture *f, size_t head, size_t i, const float *c, const float *s,
                const unsigned char *keep, const float *logm, size_t n, int flips)
{
    metrics_row(&f->m, 0, head, i, c, s, keep, logm, n, flips, f->idx, f->gate_keep,
                f->oracle_keep);
}

static double val(const fixture *f, size_t head, metric_key key)
{
    return metrics_value(&f->m, 0, head, key);
}

static int near(double got, double want)
{
    return fabs(got - want) <= TOL;
}

#define EXPECT(f, head, key, want)                                                       \
    CHECK(near(val(f, head, key), (want)), "%-12s %.9f (want %.9f)", metric_name(key),   \
          val(f, head, key), (double)(want))

/* ln of 1..n: softmax gives masses j/(n(n+1)/2) */
static void ln_ints(float *c, size_t n)
{
    for (size_t j = 0; j < n; j++)
        c[j] = logf((float)(j + 1));
}

static void test_gate_scores(void)
{
    printf("# gate scores: n=4, k=2, c=ln{1,2,3,4}, s={5,1,4,0}\n");
    /* masses {1,2,3,4}/10. O = {3,2} (c largest), mass 7/10.
     * G = top-2 of s = {0,2}; G∩O = {2}: precision 1/2, recall 1/2, F1 1/2;
     * mass kept (1+3)/10 = 0.4. chance 2/4. No mask in force (neither a hard
     * keep nor logm): density 1, entropy 0. */
    fixture f;
    fx_init(&f, 1, 2);
    float c[4], s[4] = {5, 1, 4, 0};
    ln_ints(c, 4);
    row(&f, 0, 3, c, s, NULL, NULL, 4, 0);
    EXPECT(&f, 0, METRIC_PRECISION, 0.5);
    EXPECT(&f, 0, METRIC_RECALL, 0.5);
    EXPECT(&f, 0, METRIC_F1, 0.5);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 0.4);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 0.7);
    EXPECT(&f, 0, METRIC_CHANCE, 0.5);
    EXPECT(&f, 0, METRIC_DENSITY, 1.0);
    EXPECT(&f, 0, METRIC_ENTROPY, 0.0);
    CHECK(f.m.heads[0].rows == 1.0, "one row counted");
    metrics_free(&f.m);
}

static void test_hard_masks(void)
{
    printf("# hard masks (no scores: G is the mask in force)\n");
    fixture f;
    float c[6];
    ln_ints(c, 6);

    /* n=5, k=2, c=ln{1..5} (total 15), keep {1,0,0,0,1}: O = {4,3}, mass
     * 9/15 = 0.6; G = {0,4}, G∩O = {4}: P = R = F1 = 1/2; mass kept (1+5)/15
     * = 0.4; density 2/5; chance 2/5. */
    fx_init(&f, 1, 2);
    const unsigned char k5[5] = {1, 0, 0, 0, 1};
    row(&f, 0, 4, c, NULL, k5, NULL, 5, 0);
    EXPECT(&f, 0, METRIC_PRECISION, 0.5);
    EXPECT(&f, 0, METRIC_RECALL, 0.5);
    EXPECT(&f, 0, METRIC_F1, 0.5);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 0.4);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 0.6);
    EXPECT(&f, 0, METRIC_DENSITY, 0.4);
    EXPECT(&f, 0, METRIC_CHANCE, 0.4);
    metrics_free(&f.m);

    /* more kept than k: n=6, k=2, c=ln{1..6} (total 21), keep {0,0,0,1,1,1}:
     * O = {5,4}, mass 11/21; G = {3,4,5}, G∩O = 2: precision 2/3, recall 1,
     * F1 = 2 (2/3) / (5/3) = 0.8; mass kept 15/21; density 1/2; chance 1/3. */
    fx_init(&f, 1, 2);
    const unsigned char k6[6] = {0, 0, 0, 1, 1, 1};
    row(&f, 0, 5, c, NULL, k6, NULL, 6, 0);
    EXPECT(&f, 0, METRIC_PRECISION, 2.0 / 3.0);
    EXPECT(&f, 0, METRIC_RECALL, 1.0);
    EXPECT(&f, 0, METRIC_F1, 0.8);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 15.0 / 21.0);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 11.0 / 21.0);
    EXPECT(&f, 0, METRIC_DENSITY, 0.5);
    EXPECT(&f, 0, METRIC_CHANCE, 1.0 / 3.0);
    metrics_free(&f.m);

    /* empty mask: n=4, k=2, keep all 0: |G| = 0, so precision is 0 by the
     * rule (not 0/0), recall 0, F1 0; mass kept 0; density 0; O = {3,2}
     * mass 7/10 as always. */
    fx_init(&f, 1, 2);
    const unsigned char none[4] = {0, 0, 0, 0};
    row(&f, 0, 3, c, NULL, none, NULL, 4, 0);
    EXPECT(&f, 0, METRIC_PRECISION, 0.0);
    EXPECT(&f, 0, METRIC_RECALL, 0.0);
    EXPECT(&f, 0, METRIC_F1, 0.0);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 0.0);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 0.7);
    EXPECT(&f, 0, METRIC_DENSITY, 0.0);
    metrics_free(&f.m);

    /* full mask: n=4, k=2, keep all 1: G∩O = O: precision 2/4, recall 1,
     * F1 = 2 (1/2) / (3/2) = 2/3; mass kept 1; density 1. */
    fx_init(&f, 1, 2);
    const unsigned char all[4] = {1, 1, 1, 1};
    row(&f, 0, 3, c, NULL, all, NULL, 4, 0);
    EXPECT(&f, 0, METRIC_PRECISION, 0.5);
    EXPECT(&f, 0, METRIC_RECALL, 1.0);
    EXPECT(&f, 0, METRIC_F1, 2.0 / 3.0);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 1.0);
    EXPECT(&f, 0, METRIC_DENSITY, 1.0);
    metrics_free(&f.m);
}

static void test_ties(void)
{
    printf("# ties go to the earlier key (gate.h)\n");
    /* n=4, k=2, c = {0,1,1,1}: three keys tie for the top; O = {1,2}. All
     * scores equal, s = {0,0,0,0}: G = {0,1}. G∩O = {1}: P = R = F1 = 1/2.
     * Masses with e = exp(1): total 1 + 3e, O (2e)/(1+3e), G (1+e)/(1+3e). */
    fixture f;
    fx_init(&f, 1, 2);
    const float c[4] = {0, 1, 1, 1}, s[4] = {0, 0, 0, 0};
    row(&f, 0, 3, c, s, NULL, NULL, 4, 0);
    const double e = exp(1.0);
    EXPECT(&f, 0, METRIC_F1, 0.5);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 2.0 * e / (1.0 + 3.0 * e));
    EXPECT(&f, 0, METRIC_MASS_KEPT, (1.0 + e) / (1.0 + 3.0 * e));
    metrics_free(&f.m);
}

static void test_soft_mask(void)
{
    printf("# soft mask: n=4, k=2, m = {1/2, 1/4, 3/4, 1}\n");
    /* density = (1/2 + 1/4 + 3/4 + 1)/4 = 0.625; entropy bits: H(1/2) = 1,
     * H(1/4) = H(3/4) = 2 - (3/4) log2 3 = 0.811278124, H(1) = 0; mean
     * (1 + 2 (2 - 0.75 log2 3)) / 4. G from s = {1,4,0,3}: {1,3}; c=ln{1..4}:
     * O = {3,2}; G∩O = {3}: F1 1/2, mass kept (2+4)/10 = 0.6. */
    fixture f;
    fx_init(&f, 1, 2);
    float c[4], s[4] = {1, 4, 0, 3};
    const float logm[4] = {logf(0.5f), logf(0.25f), logf(0.75f), 0.0f};
    ln_ints(c, 4);
    row(&f, 0, 3, c, s, NULL, logm, 4, 0);
    EXPECT(&f, 0, METRIC_DENSITY, 0.625);
    EXPECT(&f, 0, METRIC_ENTROPY, (1.0 + 2.0 * (2.0 - 0.75 * log2(3.0))) / 4.0);
    EXPECT(&f, 0, METRIC_F1, 0.5);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 0.6);
    metrics_free(&f.m);
}

static void test_few_keys_and_dense(void)
{
    printf("# rows with n <= k are not counted; dense has no G\n");
    /* causal rows 0..2 with k=3 see 1, 2, 3 keys: none has more than k, so
     * no row counts and every metric is absent (NaN, exists 0) */
    fixture f;
    fx_init(&f, 1, 3);
    float c[4], s[4] = {3, 2, 1, 0};
    ln_ints(c, 4);
    for (size_t i = 0; i < 3; i++)
        row(&f, 0, i, c, s, NULL, NULL, i + 1, 1);
    CHECK(f.m.heads[0].rows == 0.0, "rows with 1..3 keys at k=3: none counted");
    CHECK(isnan(val(&f, 0, METRIC_F1)) && !metrics_exists(&f.m, 0, 0, METRIC_F1),
          "f1 absent (NaN, exists 0)");
    CHECK(isnan(val(&f, 0, METRIC_CHANCE)) && !metrics_exists(&f.m, 0, 0, METRIC_CHANCE),
          "chance absent (NaN, exists 0)");
    /* row 3 sees 4 > 3 keys: counted. O = {3,2,1}, G (s) = {0,1,2}:
     * G∩O = 2, F1 2/3; chance 3/4; mass kept (1+2+3)/10, oracle 9/10. */
    row(&f, 0, 3, c, s, NULL, NULL, 4, 0);
    CHECK(f.m.heads[0].rows == 1.0, "the row with 4 keys counts");
    EXPECT(&f, 0, METRIC_F1, 2.0 / 3.0);
    EXPECT(&f, 0, METRIC_CHANCE, 0.75);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 0.6);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 0.9);
    metrics_free(&f.m);

    /* dense (no scores, no mask): O and its mass, chance and density 1
     * exist; the gate metrics do not. n=5, k=2: oracle mass 9/15, chance
     * 2/5. Two heads: head 1 never sees a row, so the layer mean of oracle
     * mass is head 0's alone. */
    fx_init(&f, 2, 2);
    ln_ints(c, 4);
    float c5[5];
    ln_ints(c5, 5);
    row(&f, 0, 4, c5, NULL, NULL, NULL, 5, 1);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 0.6);
    EXPECT(&f, 0, METRIC_CHANCE, 0.4);
    EXPECT(&f, 0, METRIC_DENSITY, 1.0);
    CHECK(!metrics_exists(&f.m, 0, 0, METRIC_F1) && isnan(val(&f, 0, METRIC_F1)),
          "dense: f1 absent");
    CHECK(!metrics_exists(&f.m, 0, 0, METRIC_MASS_KEPT), "dense: mass kept absent");
    CHECK(!metrics_exists(&f.m, 0, 1, METRIC_ORACLE_MASS), "head 1: no rows, absent");
    CHECK(near(metrics_layer_value(&f.m, 0, METRIC_ORACLE_MASS), 0.6),
          "layer mean skips the absent head: %.9f", metrics_layer_value(&f.m, 0,
                                                                        METRIC_ORACLE_MASS));
    metrics_free(&f.m);
}

static void test_means_over_rows(void)
{
    printf("# values are means over the counted rows\n");
    /* k=2. Row 3 (n=4) from test_gate_scores: F1 1/2, chance 1/2, oracle
     * mass 7/10. Row 4 (n=5), c=ln{1..5}, s = {0,0,0,2,1}: G = {3,4} = O:
     * F1 1, mass kept = oracle = 9/15, chance 2/5. Means: F1 3/4, chance
     * 9/20, oracle mass (0.7 + 0.6)/2 = 0.65, mass kept (0.4 + 0.6)/2. */
    fixture f;
    fx_init(&f, 1, 2);
    float c[5], s4[4] = {5, 1, 4, 0}, s5[5] = {0, 0, 0, 2, 1};
    ln_ints(c, 5);
    row(&f, 0, 3, c, s4, NULL, NULL, 4, 0);
    row(&f, 0, 4, c, s5, NULL, NULL, 5, 0);
    EXPECT(&f, 0, METRIC_F1, 0.75);
    EXPECT(&f, 0, METRIC_CHANCE, 0.45);
    EXPECT(&f, 0, METRIC_ORACLE_MASS, 0.65);
    EXPECT(&f, 0, METRIC_MASS_KEPT, 0.5);
    metrics_free(&f.m);
}

static void test_flip_rate(void)
{
    printf("# flip rate between evaluations (sequence 0 only)\n");
    /* k=2. Evaluation 1: row 4 (n=5) G = {0,1}, row 5 (n=6) G = {2,3}; no
     * earlier masks, so no flip rate yet (absent). Evaluation 2: row 4 G =
     * {0,4}: 1 of 2 new, 1/2; row 5 G = {2,3}: 0. Rate (1/2 + 0)/2 = 1/4.
     * Evaluation 3 with record_flips = 0 (not sequence 0): absent again. */
    fixture f;
    fx_init(&f, 1, 2);
    float c[6];
    ln_ints(c, 6);
    const float a4[5] = {5, 4, 1, 2, 3}, a5[6] = {0, 1, 5, 4, 2, 3};
    const float b4[5] = {5, 1, 2, 3, 4};
    row(&f, 0, 4, c, a4, NULL, NULL, 5, 1);
    row(&f, 0, 5, c, a5, NULL, NULL, 6, 1);
    CHECK(!metrics_exists(&f.m, 0, 0, METRIC_FLIP_RATE) && isnan(val(&f, 0, METRIC_FLIP_RATE)),
          "first evaluation: flip rate absent");
    metrics_finish(&f.m);
    metrics_reset(&f.m, 2);
    row(&f, 0, 4, c, b4, NULL, NULL, 5, 1);
    row(&f, 0, 5, c, a5, NULL, NULL, 6, 1);
    EXPECT(&f, 0, METRIC_FLIP_RATE, 0.25);
    CHECK(metrics_exists(&f.m, 0, 0, METRIC_FLIP_RATE), "second evaluation: flip rate exists");
    metrics_finish(&f.m);
    metrics_reset(&f.m, 2);
    row(&f, 0, 4, c, a4, NULL, NULL, 5, 0);
    CHECK(!metrics_exists(&f.m, 0, 0, METRIC_FLIP_RATE),
          "rows of other sequences (record_flips 0) give no flip rate");
    metrics_free(&f.m);
}

/* Regression: metrics_finish used to mark the masks as a reference
 * (have_prev = 1) even when the evaluation recorded none, as under dense, so
 * the first gated evaluation after a dense one compared with a zeroed (or
 * two-evaluations-old) buffer and reported a flip rate of 1. Through the
 * binary: `gatelab run --ctx 32 --dim 32 --layers 1 --heads 2 --batch 4
 * --eval-windows 4 --arms dense --steps 200 --eval-every 50
 * --at 100:swap:soft --threads 1` stored flip_rate 1.0 at step 150 (the first
 * evaluation after the swap) for both heads in layer_metrics. */
static void test_flip_after_dense(void)
{
    printf("# flip rate after an evaluation without a gate (dense)\n");
    /* k=2, row 4 (n=5). Evaluation 1 dense (no scores, no mask): no G is
     * recorded. Evaluation 2 with scores, G = {0,1}: there is no earlier
     * mask, so the flip rate must be absent, as after the first evaluation. */
    fixture f;
    fx_init(&f, 1, 2);
    float c[5];
    ln_ints(c, 5);
    const float a4[5] = {5, 4, 1, 2, 3};
    row(&f, 0, 4, c, NULL, NULL, NULL, 5, 1);
    metrics_finish(&f.m);
    metrics_reset(&f.m, 2);
    row(&f, 0, 4, c, a4, NULL, NULL, 5, 1);
    CHECK(!metrics_exists(&f.m, 0, 0, METRIC_FLIP_RATE),
          "dense then gated: flip rate absent (got %g, exists %d)",
          val(&f, 0, METRIC_FLIP_RATE), metrics_exists(&f.m, 0, 0, METRIC_FLIP_RATE));
    metrics_free(&f.m);

    /* gated G = {0,1}, then dense, then gated G = {0,1} again: the last
     * evaluation had no mask, so again no flip rate */
    fx_init(&f, 1, 2);
    row(&f, 0, 4, c, a4, NULL, NULL, 5, 1);
    metrics_finish(&f.m);
    metrics_reset(&f.m, 2);
    row(&f, 0, 4, c, NULL, NULL, NULL, 5, 1);
    metrics_finish(&f.m);
    metrics_reset(&f.m, 2);
    row(&f, 0, 4, c, a4, NULL, NULL, 5, 1);
    CHECK(!metrics_exists(&f.m, 0, 0, METRIC_FLIP_RATE),
          "gated, dense, gated: flip rate absent (got %g, exists %d)",
          val(&f, 0, METRIC_FLIP_RATE), metrics_exists(&f.m, 0, 0, METRIC_FLIP_RATE));
    metrics_free(&f.m);
}

int main(void)
{
    test_gate_scores();
    test_hard_masks();
    test_ties();
    test_soft_mask();
    test_few_keys_and_dense();
    test_means_over_rows();
    test_flip_rate();
    test_flip_after_dense();
    return check_finish();
}
