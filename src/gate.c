/* gate: mode table and the per-row gate math. The soft top-k is the
 * density-matched gate: learned and random gates keep the same expected number
 * of keys and differ only in which ones. */
#include "gate.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    int uses_gate, trains_gate, is_random;
} mode_table[GATE_MODE_COUNT] = {
    [GATE_DENSE] = {"dense", 0, 0, 0},
    [GATE_SOFT] = {"soft", 1, 1, 0},
    [GATE_RANDOM] = {"random", 1, 0, 1},
    [GATE_SIGMOID] = {"sigmoid", 1, 1, 0},
    [GATE_TOPK] = {"topk", 1, 1, 0},
    [GATE_TOPK_RANDOM] = {"topk-random", 1, 0, 1},
    [GATE_STOCHASTIC] = {"stochastic", 0, 0, 0},
    [GATE_ORACLE] = {"oracle", 0, 0, 0},
    /* trained only by distillation, never by the language-model loss */
    [GATE_DISTILLED] = {"distilled", 1, 0, 0},
};

const char *gate_mode_name(gate_mode m)
{
    return (unsigned)m < GATE_MODE_COUNT ? mode_table[m].name : "?";
}

int gate_mode_parse(const char *name, gate_mode *out)
{
    for (int m = 0; m < GATE_MODE_COUNT; m++)
        if (strcmp(name, mode_table[m].name) == 0) {
            *out = (gate_mode)m;
            return 0;
        }
    return -1;
}

int gate_mode_uses_gate(gate_mode m) { return mode_table[m].uses_gate; }
int gate_mode_trains_gate(gate_mode m) { return mode_table[m].trains_gate; }
int gate_mode_is_random(gate_mode m) { return mode_table[m].is_random; }

const char *gate_mode_list(void)
{
    return "dense, soft, random, sigmoid, topk, topk-random, stochastic, oracle, distilled";
}

/* a ranks before b: larger value first, lower index on ties */
static int ranks_before(const float *x, uint32_t a, uint32_t b)
{
    return x[a] > x[b] || (x[a] == x[b] && a < b);
}

void gate_select_rank(uint32_t *idx, const float *x, size_t n, size_t rank)
{
    /* Lomuto quickselect; ranks_before is a strict total order (indices break
     * ties), so every partition makes progress. */
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t t = idx[mid];
        idx[mid] = idx[hi];
        idx[hi] = t;
        uint32_t pivot = idx[hi];
        size_t store = lo;
        for (size_t i = lo; i < hi; i++)
            if (ranks_before(x, idx[i], pivot)) {
                t = idx[i];
                idx[i] = idx[store];
                idx[store] = t;
                store++;
            }
        idx[hi] = idx[store];
        idx[store] = pivot;
        if (rank == store)
            return;
        if (rank < store)
            hi = store - 1;
        else
            lo = store + 1;
    }
}

static void identity(uint32_t *idx, size_t n)
{
    for (size_t j = 0; j < n; j++)
        idx[j] = (uint32_t)j;
}

/* After this, idx[k-1] and idx[k] are the k-th and (k+1)-th largest. */
static void find_boundary(uint32_t *idx, const float *s, size_t n, size_t k,
                          uint32_t *kth, uint32_t *next)
{
    identity(idx, n);
    gate_select_rank(idx, s, n, k - 1);
    *kth = idx[k - 1];
    /* the (k+1)-th largest is the largest of what ranks after the k-th */
    uint32_t best = idx[k];
    for (size_t j = k + 1; j < n; j++)
        if (ranks_before(s, idx[j], best))
            best = idx[j];
    *next = best;
}

static float log_sigmoid(float u)
{
    return u >= 0.0f ? -log1pf(expf(-u)) : u - log1pf(expf(u));
}

static float sigmoid(float u)
{
    if (u >= 0.0f)
        return 1.0f / (1.0f + expf(-u));
    float e = expf(u);
    return e / (1.0f + e);
}

/* s[n] -> logm[n], row stats */
void gate_soft_topk_forward(float *logm, gate_row_stats *st, const float *s, size_t n,
                            size_t k, float temp, uint32_t *idx)
{
    if (n <= k) {
        memset(logm, 0, n * sizeof(float));
        *st = (gate_row_stats){.tau = 0.0f, .sigma = 1.0f};
        return;
    }
    uint32_t kth, next;
    find_boundary(idx, s, n, k, &kth, &next);
    float t = 0.5f * (s[kth] + s[next]);
    double mean = 0.0, var = 0.0;
    for (size_t j = 0; j < n; j++)
        mean += s[j];
    mean /= (double)n;
    for (size_t j = 0; j < n; j++)
        var += (s[j] - mean) * (s[j] - mean);
    float sg = (float)sqrt(var / (double)n) + 1e-6f;
    float scale = 1.0f / (temp * sg);
    for (size_t j = 0; j < n; j++)
        logm[j] = log_sigmoid((s[j] - t) * scale);
    *st = (gate_row_stats){.tau = t, .sigma = sg, .kth = kth, .next = next};
}

/* g[n] = dL/dlogm -> ds[n] */
void gate_soft_topk_backward(float *ds, const float *g, const float *s, size_t n, size_t k,
                             float temp, const gate_row_stats *st)
{
    const float tau = st->tau, sigma = st->sigma;
    if (n <= k) {
        memset(ds, 0, n * sizeof(float));
        return;
    }
    float scale = 1.0f / (temp * sigma);
    /* du_j = g_j * dlogsigmoid/du = g_j * (1 - sigmoid(u_j)) */
    float dtau = 0.0f, dsigma = 0.0f;
    double mean = 0.0;
    for (size_t j = 0; j < n; j++) {
        float u = (s[j] - tau) * scale;
        float du = g[j] * sigmoid(-u);
        ds[j] = du * scale;
        dtau -= du * scale;
        dsigma -= du * u / sigma;
        mean += s[j];
    }
    mean /= (double)n;
    /* tau = (s_kth + s_next)/2 */
    ds[st->kth] += 0.5f * dtau;
    ds[st->next] += 0.5f * dtau;
    /* sigma = std(s) + 1e-6, d std / d s_j = (s_j - mean) / (n std) */
    float std = sigma - 1e-6f;
    if (std > 0.0f) {
        float c = dsigma / ((float)n * std);
        for (size_t j = 0; j < n; j++)
            ds[j] += c * (float)(s[j] - mean);
    }
}

void gate_sigmoid_forward(float *logm, const float *s, size_t n)
{
    for (size_t j = 0; j < n; j++)
        logm[j] = log_sigmoid(s[j]);
}

void gate_sigmoid_backward(float *ds, const float *g, const float *s, size_t n)
{
    for (size_t j = 0; j < n; j++)
        ds[j] = g[j] * sigmoid(-s[j]);
}

void gate_topk_select(unsigned char *keep, const float *x, size_t n, size_t k, uint32_t *idx)
{
    if (n <= k) {
        memset(keep, 1, n);
        return;
    }
    identity(idx, n);
    gate_select_rank(idx, x, n, k - 1);
    memset(keep, 0, n);
    /* quickselect leaves the k largest in idx[0..k) */
    for (size_t j = 0; j < k; j++)
        keep[idx[j]] = 1;
}

void gate_topk_backward(float *ds, const float *g, size_t n)
{
    /* d mask / d s = 0 wherever it is defined (away from ties): the hard mask
     * does not move under small changes of s, so no g reaches the gate */
    (void)g;
    memset(ds, 0, n * sizeof(float));
}
