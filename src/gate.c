/* gate: mode table and the per-row gate math. The soft top-k is the
 * density-matched gate: learned and random gates keep the same expected number
 * of keys and differ only in which ones. */
#include "gate.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "lanes.h"

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

/* mean and population std of x[n], in double per lane */
static void row_moments(const float *x, size_t n, double *mean, double *std)
{
    double acc[LANES] = {0};
    LANES_FOR(j, u, n, acc[u] += x[j];);
    double m = 0.0;
    for (size_t u = 0; u < LANES; u++)
        m += acc[u];
    m /= (double)n;
    memset(acc, 0, sizeof acc);
    LANES_FOR(j, u, n, acc[u] += ((double)x[j] - m) * ((double)x[j] - m););
    double var = 0.0;
    for (size_t u = 0; u < LANES; u++)
        var += acc[u];
    *mean = m;
    *std = sqrt(var / (double)n);
}

/* The pivot's margin, in stds: from half a std, doubled after a miss, cut
 * by a fifth when more than 3k keys got through. */
#define PIVOT_MARGIN0 0.5f
#define PIVOT_MARGIN_MIN 0.05f
#define PIVOT_MARGIN_MAX 4.0f

/* Candidate sets up to this size are ranked by counting instead of
 * quickselect: c * c comparisons, but in vector blocks and without a
 * branch, where quickselect's data-dependent branches mispredict. */
#define RANK_MAX 128

/* idx[0..c) in rank order (larger x first, lower index on ties), c <=
 * RANK_MAX: the rank of each is the count of those ranking before it */
static void rank_sort(uint32_t *idx, const float *x, size_t c)
{
    float cv[RANK_MAX];
    uint32_t ci[RANK_MAX], out[RANK_MAX];
    const size_t cp = lanes_round_up(c);
    for (size_t j = 0; j < c; j++) {
        ci[j] = idx[j];
        cv[j] = x[idx[j]];
    }
    /* padding ranks after every real key */
    for (size_t j = c; j < cp; j++) {
        ci[j] = UINT32_MAX;
        cv[j] = -INFINITY;
    }
    /* rank[a] = how many rank before a: a vector of candidates a at a time
     * against one b, so no sum across lanes is needed */
    uint32_t rank[RANK_MAX] = {0};
    for (size_t b = 0; b < c; b++) {
        const float vb = cv[b];
        const uint32_t ib = ci[b];
        LANES_FOR(a, u, cp, {
            (void)u;
            const uint32_t gt = vb > cv[a], eq = vb == cv[a], lower = ib < ci[a];
            rank[a] += gt | (eq & lower);
        });
    }
    /* NaN scores (a diverging run) would give equal ranks: every slot
     * starts with a valid index all the same */
    memcpy(out, ci, c * sizeof *out);
    for (size_t a = 0; a < c; a++)
        if (rank[a] < c)
            out[rank[a]] = ci[a];
    memcpy(idx, out, c * sizeof *out);
}

/* gate_select_top with the row's moments known (pv: NULL or the pivot) */
static size_t select_top(uint32_t *idx, const float *x, size_t n, size_t k, gate_pivot *pv,
                         double mean, double std)
{
    GL_ASSERT(k >= 1 && k < n);
    size_t c = 0;
    const int guess = pv && pv->set && std > 0.0;
    if (guess) {
        /* the keys above the pivot, in index order, without a branch */
        const float p = (float)(mean + (double)(pv->z - pv->margin) * std);
        for (size_t j = 0; j < n; j++) {
            idx[c] = (uint32_t)j;
            c += x[j] > p;
        }
        if (c < k + 1)
            pv->margin = fminf(2.0f * pv->margin, PIVOT_MARGIN_MAX);
        else if (c > 3 * k)
            pv->margin = fmaxf(0.8f * pv->margin, PIVOT_MARGIN_MIN);
    }
    if (c < k + 1) {
        identity(idx, n);
        c = n;
    }
    if (c <= RANK_MAX)
        rank_sort(idx, x, c);
    else
        gate_select_rank(idx, x, c, k - 1);
    if (pv) {
        uint32_t next = idx[k];
        for (size_t j = k + 1; j < c; j++)
            if (ranks_before(x, idx[j], next))
                next = idx[j];
        if (std > 0.0) {
            pv->z = (float)(((double)x[next] - mean) / std);
            if (!pv->set)
                pv->margin = PIVOT_MARGIN0;
            pv->set = 1;
        }
    }
    return c;
}

size_t gate_select_top(uint32_t *idx, const float *x, size_t n, size_t k, gate_pivot *pv)
{
    double mean = 0.0, std = 0.0;
    if (pv)
        row_moments(x, n, &mean, &std);
    return select_top(idx, x, n, k, pv, mean, std);
}

/* the row statistics of n > k scores, with the boundary from select_top */
void gate_soft_topk_stats(gate_row_stats *st, const float *s, size_t n, size_t k,
                          uint32_t *idx, gate_pivot *pv)
{
    double mean, std;
    row_moments(s, n, &mean, &std);
    const size_t c = select_top(idx, s, n, k, pv, mean, std);
    const uint32_t kth = idx[k - 1];
    uint32_t next = idx[k];
    for (size_t j = k + 1; j < c; j++)
        if (ranks_before(s, idx[j], next))
            next = idx[j];
    const float sg = (float)std + 1e-6f;
    *st = (gate_row_stats){.tau = 0.5f * (s[kth] + s[next]), .sigma = sg, .mean = (float)mean,
                           .kth = kth, .next = next};
}

float gate_soft_topk_scale(float temp, const gate_row_stats *st)
{
    return 1.0f / (temp * st->sigma);
}

/* s[0..end) -> logm (and sgn) of u = (s - tau) * scale; 0 from n on */
static void log_mask(float *restrict logm, float *restrict sgn, const float *restrict s,
                     size_t n, size_t end, float tau, float scale)
{
    if (sgn)
        LANES_FOR(j, u, end, {
            (void)u;
            const float x = (s[j] - tau) * scale;
            const float e = lanes_exp(-lanes_abs(x));
            logm[j] = j < n ? lanes_log_sigmoid_e(x, e) : 0.0f;
            sgn[j] = j < n ? lanes_sigmoid_neg_e(x, e) : 0.0f;
        });
    else
        LANES_FOR(j, u, end, {
            (void)u;
            const float x = (s[j] - tau) * scale;
            logm[j] = j < n ? lanes_log_sigmoid(x) : 0.0f;
        });
}

void gate_log_mask_row(float *logm, float *sgn, const float *s, size_t n, float tau,
                       float scale)
{
    log_mask(logm, sgn, s, n, lanes_round_up(n), tau, scale);
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
    gate_soft_topk_stats(st, s, n, k, idx, NULL);
    log_mask(logm, NULL, s, n, n, st->tau, gate_soft_topk_scale(temp, st));
}

/* g, s [0..end) -> ds [0..end), 0 from n on; sgn = sigmoid(-u), or NULL to
 * recompute it from s. n > k. */
static void soft_topk_backward(float *restrict ds, const float *restrict g,
                               const float *restrict sgn, const float *restrict s, size_t n,
                               size_t end, float temp, const gate_row_stats *st)
{
    const float tau = st->tau, sigma = st->sigma, scale = gate_soft_topk_scale(temp, st);
    /* du_j = g_j * dlogsigmoid/du = g_j * sigmoid(-u_j); ds_j = du_j * scale
     * directly, and through tau (dtau = -sum du * scale) and sigma (dsigma =
     * -sum du u / sigma) */
    float sdu[LANES] = {0}, sduu[LANES] = {0};
    if (sgn)
        LANES_FOR(j, u, end, {
            const float xj = (s[j] - tau) * scale, duj = g[j] * sgn[j];
            const float x = j < n ? xj : 0.0f, du = j < n ? duj : 0.0f;
            ds[j] = du * scale;
            sdu[u] += du;
            sduu[u] += du * x;
        });
    else
        LANES_FOR(j, u, end, {
            const float xj = (s[j] - tau) * scale;
            const float x = j < n ? xj : 0.0f;
            const float du = g[j] * lanes_sigmoid_neg(x);
            ds[j] = du * scale;
            sdu[u] += du;
            sduu[u] += du * x;
        });
    float dtau = 0.0f, dsigma = 0.0f;
    for (size_t u = 0; u < LANES; u++) {
        dtau -= sdu[u];
        dsigma -= sduu[u];
    }
    dtau *= scale;
    dsigma /= sigma;
    /* sigma = std(s) + 1e-6, d std / d s_j = (s_j - mean) / (n std) */
    const float std = sigma - 1e-6f, mean = st->mean;
    if (std > 0.0f) {
        const float c = dsigma / ((float)n * std);
        LANES_FOR(j, u, end, {
            (void)u;
            const float d = c * (s[j] - mean);
            ds[j] += j < n ? d : 0.0f;
        });
    }
    /* tau = (s_kth + s_next)/2 */
    ds[st->kth] += 0.5f * dtau;
    ds[st->next] += 0.5f * dtau;
}

void gate_soft_topk_backward_row(float *ds, const float *g, const float *sgn, const float *s,
                                 size_t n, float temp, const gate_row_stats *st)
{
    soft_topk_backward(ds, g, sgn, s, n, lanes_round_up(n), temp, st);
}

/* g[n] = dL/dlogm -> ds[n] */
void gate_soft_topk_backward(float *ds, const float *g, const float *s, size_t n, size_t k,
                             float temp, const gate_row_stats *st)
{
    if (n <= k) {
        memset(ds, 0, n * sizeof(float));
        return;
    }
    soft_topk_backward(ds, g, NULL, s, n, n, temp, st);
}

void gate_sigmoid_backward_row(float *restrict ds, const float *restrict g,
                               const float *restrict sgn, size_t n)
{
    LANES_FOR(j, u, lanes_round_up(n), {
        (void)u;
        const float d = g[j] * sgn[j];
        ds[j] = j < n ? d : 0.0f;
    });
}

void gate_topk_select_pivot(unsigned char *keep, const float *x, size_t n, size_t k,
                            uint32_t *idx, gate_pivot *pv)
{
    if (n <= k) {
        memset(keep, 1, n);
        return;
    }
    gate_select_top(idx, x, n, k, pv);
    memset(keep, 0, n);
    /* the k largest are in idx[0..k) */
    for (size_t j = 0; j < k; j++)
        keep[idx[j]] = 1;
}

void gate_topk_select(unsigned char *keep, const float *x, size_t n, size_t k, uint32_t *idx)
{
    gate_topk_select_pivot(keep, x, n, k, idx, NULL);
}
