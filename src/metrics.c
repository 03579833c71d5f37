/* metrics: per-(layer, head) agreement between the gate's choice G and the
 * oracle's choice O (the k largest content logits), the dense attention mass
 * each keeps, and mask statistics. Only rows with more than k visible keys
 * count: the others keep everything and would score 1 trivially. */
#include "metrics.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gate.h"

static const char *metric_names[METRIC_COUNT] = {
    [METRIC_F1] = "f1",
    [METRIC_PRECISION] = "precision",
    [METRIC_RECALL] = "recall",
    [METRIC_MASS_KEPT] = "mass_kept",
    [METRIC_ORACLE_MASS] = "oracle_mass",
    [METRIC_CHANCE] = "chance_f1",
    [METRIC_DENSITY] = "density",
    [METRIC_ENTROPY] = "gate_entropy",
    [METRIC_FLIP_RATE] = "flip_rate",
    [METRIC_GATE_GRAD_NORM] = "gate_grad_norm",
    [METRIC_ORACLE_DRIFT] = "oracle_drift",
};

const char *metric_name(metric_key k)
{
    return (unsigned)k < METRIC_COUNT ? metric_names[k] : "?";
}

void metrics_init(metrics_state *m, size_t L, size_t H, size_t T)
{
    memset(m, 0, sizeof *m);
    m->L = L;
    m->H = H;
    m->T = T;
    m->heads = xcalloc(L * H, sizeof *m->heads);
    m->prev_mask = xcalloc(L * H * T * T, 1);
    m->cur_mask = xcalloc(L * H * T * T, 1);
    m->prev_oracle = xcalloc(L * H * T * T, 1);
    m->cur_oracle = xcalloc(L * H * T * T, 1);
    m->grad_norm = xcalloc(L * H, sizeof *m->grad_norm);
}

void metrics_free(metrics_state *m)
{
    free(m->heads);
    free(m->prev_mask);
    free(m->cur_mask);
    free(m->prev_oracle);
    free(m->cur_oracle);
    free(m->grad_norm);
    memset(m, 0, sizeof *m);
}

void metrics_reset(metrics_state *m, size_t k)
{
    m->k = k;
    memset(m->heads, 0, m->L * m->H * sizeof *m->heads);
}

void metrics_finish(metrics_state *m)
{
    unsigned char *t = m->prev_mask;
    m->prev_mask = m->cur_mask;
    m->cur_mask = t;
    /* an evaluation without a gate (dense) recorded no mask: the next one
     * has nothing to compare with, as after the first */
    m->have_prev = 0;
    for (size_t i = 0; i < m->L * m->H; i++)
        m->have_prev |= m->heads[i].has_gate;
    t = m->prev_oracle;
    m->prev_oracle = m->cur_oracle;
    m->cur_oracle = t;
    m->have_prev_oracle = 0;
    for (size_t i = 0; i < m->L * m->H; i++)
        m->have_prev_oracle |= m->heads[i].rows > 0.0;
}

static double binary_entropy_bits(double p)
{
    if (p <= 0.0 || p >= 1.0)
        return 0.0;
    return -(p * log2(p) + (1.0 - p) * log2(1.0 - p));
}

/* Heatmap row of sequence 0: what the mask in force lets through (soft
 * weight, 1/0, or 1 for dense) beside the oracle's top-k, as bytes. */
static void draw_heat_row(metrics_state *m, size_t layer, size_t head, size_t row,
                          const float *c, const unsigned char *used_keep, const float *logm,
                          size_t n, uint32_t *idx, unsigned char *oracle_keep)
{
    const size_t T = m->T, at = ((layer * m->H + head) * T + row) * T;
    uint8_t *gate = m->heat_gate + at, *oracle = m->heat_oracle + at;
    gate_topk_select(oracle_keep, c, n, m->k < n ? m->k : n, idx);
    for (size_t j = 0; j < n; j++) {
        double v = logm ? exp((double)logm[j]) : used_keep ? used_keep[j] : 1.0;
        gate[j] = (uint8_t)lrint(255.0 * v);
        oracle[j] = oracle_keep[j] ? 255 : 0;
    }
    memset(gate + n, 0, T - n);
    memset(oracle + n, 0, T - n);
}

void metrics_row(metrics_state *m, size_t layer, size_t head, size_t row,
                 const float *c, const float *gate_scores, const unsigned char *used_keep,
                 const float *logm, size_t n, int record_flips,
                 uint32_t *idx, unsigned char *gate_keep, unsigned char *oracle_keep)
{
    const size_t k = m->k;
    if (record_flips && m->heat_gate)
        draw_heat_row(m, layer, head, row, c, used_keep, logm, n, idx, oracle_keep);
    if (n <= k)
        return;
    metrics_head *mh = &m->heads[layer * m->H + head];

    gate_topk_select(oracle_keep, c, n, k, idx);
    /* G: the gate's top-k scores, else the hard mask in force */
    const unsigned char *g = NULL;
    if (gate_scores) {
        gate_topk_select(gate_keep, gate_scores, n, k, idx);
        g = gate_keep;
    } else if (used_keep) {
        g = used_keep;
    }

    float maxc = c[0];
    for (size_t j = 1; j < n; j++)
        if (c[j] > maxc)
            maxc = c[j];
    double total = 0.0, in_g = 0.0, in_o = 0.0;
    size_t both = 0, ng = 0, no = 0;
    for (size_t j = 0; j < n; j++) {
        double e = exp((double)c[j] - maxc);
        total += e;
        if (oracle_keep[j]) {
            in_o += e;
            no++;
        }
        if (g && g[j]) {
            in_g += e;
            ng++;
            both += oracle_keep[j];
        }
    }
    mh->rows += 1.0;
    mh->oracle_mass += in_o / total;
    if (record_flips) {
        /* the oracle's drift: the model's own top-k moving between evaluations */
        const size_t T = m->T, at = ((layer * m->H + head) * T + row) * T;
        unsigned char *cur = m->cur_oracle + at;
        const unsigned char *prev = m->prev_oracle + at;
        size_t changed = 0;
        for (size_t j = 0; j < n; j++) {
            cur[j] = oracle_keep[j];
            changed += oracle_keep[j] && !prev[j];
        }
        if (m->have_prev_oracle && no) {
            mh->oracle_flips += (double)changed / (double)no;
            mh->oracle_rows += 1.0;
        }
    }
    mh->chance += (double)k / (double)n;

    double density, entropy = 0.0;
    if (logm) {
        double kept = 0.0;
        for (size_t j = 0; j < n; j++) {
            double p = exp((double)logm[j]);
            kept += p;
            entropy += binary_entropy_bits(p);
        }
        density = kept / (double)n;
        entropy /= (double)n;
    } else if (used_keep) {
        size_t kept = 0;
        for (size_t j = 0; j < n; j++)
            kept += used_keep[j];
        density = (double)kept / (double)n;
    } else {
        density = 1.0;
    }
    mh->density += density;
    mh->entropy += entropy;

    if (!g)
        return;
    mh->has_gate = 1;
    double precision = ng ? (double)both / (double)ng : 0.0;
    double recall = no ? (double)both / (double)no : 0.0;
    mh->precision += precision;
    mh->recall += recall;
    mh->f1 += precision + recall > 0.0 ? 2.0 * precision * recall / (precision + recall) : 0.0;
    mh->mass_kept += in_g / total;

    if (record_flips) {
        const size_t T = m->T;
        unsigned char *cur = m->cur_mask + ((layer * m->H + head) * T + row) * T;
        const unsigned char *prev = m->prev_mask + ((layer * m->H + head) * T + row) * T;
        size_t changed = 0;
        for (size_t j = 0; j < n; j++) {
            cur[j] = g[j];
            changed += g[j] && !prev[j];
        }
        if (m->have_prev && ng) {
            mh->flips += (double)changed / (double)ng;
            mh->flip_rows += 1.0;
        }
    }
}

void metrics_attn_row(metrics_state *m, size_t layer, size_t head, size_t row, const float *p,
                      size_t n)
{
    if (!m->heat_attn)
        return;
    const size_t T = m->T;
    uint8_t *dst = m->heat_attn + ((layer * m->H + head) * T + row) * T;
    for (size_t j = 0; j < n; j++)
        dst[j] = (uint8_t)lrintf(255.0f * p[j]);
    memset(dst + n, 0, T - n);
}

double metrics_value(const metrics_state *m, size_t layer, size_t head, metric_key key)
{
    const metrics_head *mh = &m->heads[layer * m->H + head];
    if (key == METRIC_GATE_GRAD_NORM)
        return m->grad_norm[layer * m->H + head];
    if (mh->rows == 0.0)
        return NAN;
    switch (key) {
    case METRIC_ORACLE_MASS: return mh->oracle_mass / mh->rows;
    case METRIC_CHANCE: return mh->chance / mh->rows;
    case METRIC_DENSITY: return mh->density / mh->rows;
    case METRIC_ENTROPY: return mh->entropy / mh->rows;
    case METRIC_ORACLE_DRIFT:
        return mh->oracle_rows > 0.0 ? mh->oracle_flips / mh->oracle_rows : NAN;
    default: break;
    }
    if (!mh->has_gate)
        return NAN;
    switch (key) {
    case METRIC_F1: return mh->f1 / mh->rows;
    case METRIC_PRECISION: return mh->precision / mh->rows;
    case METRIC_RECALL: return mh->recall / mh->rows;
    case METRIC_MASS_KEPT: return mh->mass_kept / mh->rows;
    case METRIC_FLIP_RATE: return mh->flip_rows > 0.0 ? mh->flips / mh->flip_rows : NAN;
    default: return NAN;
    }
}

int metrics_exists(const metrics_state *m, size_t layer, size_t head, metric_key key)
{
    const metrics_head *mh = &m->heads[layer * m->H + head];
    if (key == METRIC_GATE_GRAD_NORM)
        return 1;
    if (mh->rows == 0.0)
        return 0;
    switch (key) {
    case METRIC_ORACLE_MASS:
    case METRIC_CHANCE:
    case METRIC_DENSITY:
    case METRIC_ENTROPY:
        return 1;
    case METRIC_F1:
    case METRIC_PRECISION:
    case METRIC_RECALL:
    case METRIC_MASS_KEPT:
        return mh->has_gate;
    case METRIC_FLIP_RATE:
        return mh->has_gate && mh->flip_rows > 0.0;
    case METRIC_ORACLE_DRIFT:
        return mh->oracle_rows > 0.0;
    default:
        return 0;
    }
}

int metrics_model_exists(const metrics_state *m, size_t L, metric_key key)
{
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < m->H; h++)
            if (metrics_exists(m, l, h, key))
                return 1;
    return 0;
}

void metrics_mean_add(metrics_mean *m, double v)
{
    if (!isnan(v)) {
        m->sum += v;
        m->n++;
    }
}

double metrics_mean_get(const metrics_mean *m)
{
    return m->n ? m->sum / (double)m->n : NAN;
}

double metrics_layer_value(const metrics_state *m, size_t layer, metric_key key)
{
    metrics_mean mean = {0};
    for (size_t h = 0; h < m->H; h++)
        metrics_mean_add(&mean, metrics_value(m, layer, h, key));
    return metrics_mean_get(&mean);
}

double metrics_model_value(const metrics_state *m, size_t L, metric_key key)
{
    metrics_mean mean = {0};
    for (size_t l = 0; l < L; l++)
        metrics_mean_add(&mean, metrics_layer_value(m, l, key));
    return metrics_mean_get(&mean);
}

/* ---- a measured state as doubles ---- */

/* the sums of a head, in packed order */
static const size_t head_sums[] = {
    offsetof(metrics_head, rows),        offsetof(metrics_head, precision),
    offsetof(metrics_head, recall),      offsetof(metrics_head, f1),
    offsetof(metrics_head, mass_kept),   offsetof(metrics_head, oracle_mass),
    offsetof(metrics_head, chance),      offsetof(metrics_head, density),
    offsetof(metrics_head, entropy),     offsetof(metrics_head, flips),
    offsetof(metrics_head, flip_rows),   offsetof(metrics_head, oracle_flips),
    offsetof(metrics_head, oracle_rows),
};
#define NSUMS (sizeof head_sums / sizeof head_sums[0])
_Static_assert(offsetof(metrics_head, has_gate) == NSUMS * sizeof(double),
               "every sum of a head is packed (the doubles before has_gate)");
/* per head: the sums, has_gate, the grad norm */
#define PACKED_HEAD (NSUMS + 2)
#define PACKED_TOP 4

size_t metrics_pack(const metrics_state *m, double *v)
{
    const size_t n = PACKED_TOP + m->L * m->H * PACKED_HEAD;
    if (!v)
        return n;
    v[0] = (double)m->L;
    v[1] = (double)m->H;
    v[2] = (double)m->T;
    v[3] = (double)m->k;
    double *o = v + PACKED_TOP;
    for (size_t i = 0; i < m->L * m->H; i++, o += PACKED_HEAD) {
        const char *h = (const char *)&m->heads[i];
        for (size_t s = 0; s < NSUMS; s++)
            memcpy(&o[s], h + head_sums[s], sizeof o[s]);
        o[NSUMS] = m->heads[i].has_gate;
        o[NSUMS + 1] = m->grad_norm[i];
    }
    return n;
}

/* a count a packed state can hold: whole, not above the limit */
static int packed_count(double x, double limit)
{
    return x >= 0 && x <= limit && x == floor(x);
}

int metrics_unpack(metrics_state *m, const double *v, size_t n, gl_error *e)
{
    memset(m, 0, sizeof *m);
    /* 2^20: no model this program trains has more layers, heads or positions */
    if (n < PACKED_TOP || !packed_count(v[0], 1 << 20) || !packed_count(v[1], 1 << 20) ||
        !packed_count(v[2], 1 << 20) || !packed_count(v[3], 1 << 20) ||
        n != PACKED_TOP + (size_t)v[0] * (size_t)v[1] * PACKED_HEAD)
        return gl_fail(e, "metrics: %zu values are not a packed state", n);
    m->L = (size_t)v[0];
    m->H = (size_t)v[1];
    m->T = (size_t)v[2];
    m->k = (size_t)v[3];
    const size_t nh = m->L * m->H;
    m->heads = xcalloc(nh ? nh : 1, sizeof *m->heads);
    m->grad_norm = xcalloc(nh ? nh : 1, sizeof *m->grad_norm);
    const double *o = v + PACKED_TOP;
    for (size_t i = 0; i < m->L * m->H; i++, o += PACKED_HEAD) {
        char *h = (char *)&m->heads[i];
        for (size_t s = 0; s < NSUMS; s++)
            memcpy(h + head_sums[s], &o[s], sizeof o[s]);
        m->heads[i].has_gate = o[NSUMS] != 0;
        m->grad_norm[i] = o[NSUMS + 1];
    }
    return 0;
}
