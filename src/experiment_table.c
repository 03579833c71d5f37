/* experiment_table: the result tables of the experiments: rows of a value
 * over seeds beside the paper's figure, their printing and storage, the
 * `--from` reprint of a stored experiment, and the absorption experiment's
 * table of the paper's four lines of evidence. */
#include "experiment.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "common.h"
#include "experiment_absorption.h"
#include "gate.h"
#include "store.h"

/* ---- rows ---- */

void experiment_stats(const double *v, size_t n, double *mean, double *sd)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m += v[i];
    m /= (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    /* sample standard deviation over seeds, as "48.73 +- 0.60 over 3 seeds" */
    *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
}

store_result_row *experiment_add_row(experiment_table *t, const char *line, const char *quantity,
                                     const char *paper, const char *direction)
{
    GL_ASSERT(t->n < EXPERIMENT_MAX_ROWS);
    store_result_row *r = &t->row[t->n];
    memset(r, 0, sizeof *r);
    r->position = (uint32_t)t->n++;
    snprintf(r->line, sizeof r->line, "%s", line);
    snprintf(r->quantity, sizeof r->quantity, "%s", quantity);
    snprintf(r->paper, sizeof r->paper, "%s", paper);
    snprintf(r->same_direction, sizeof r->same_direction, "%s", direction);
    r->value = r->spread = NAN;
    return r;
}

store_result_row *experiment_add_stat(experiment_table *t, const char *line, const char *quantity,
                                      const double *v, size_t n, int decimals, const char *paper,
                                      const char *direction)
{
    store_result_row *r = experiment_add_row(t, line, quantity, paper, direction);
    experiment_stats(v, n, &r->value, &r->spread);
    if (isnan(r->spread))
        snprintf(r->gatelab, sizeof r->gatelab, "%.*f", decimals, r->value);
    else
        snprintf(r->gatelab, sizeof r->gatelab, "%.*f +- %.*f", decimals, r->value, decimals,
                 r->spread);
    return r;
}

const char *experiment_yes_no(int cond) { return cond ? "yes" : "no"; }

/* ---- printing, storing, reprinting ---- */

static void print_row(const store_result_row *r)
{
    printf("%-4s | %-52s | %-26s | %-20s | %s\n", r->line, r->quantity, r->gatelab, r->paper,
           r->same_direction);
}

static void print_header(void)
{
    printf("%-4s | %-52s | %-26s | %-20s | %s\n", "line", "quantity", "gatelab value",
           "paper value", "same direction");
    printf("-----+-%.52s-+-%.26s-+-%.20s-+---------------\n",
           "----------------------------------------------------------------",
           "----------------------------------------------------------------",
           "----------------------------------------------------------------");
}

void experiment_print_table(const experiment_table *t)
{
    print_header();
    for (size_t i = 0; i < t->n; i++)
        print_row(&t->row[i]);
}

int experiment_store_table(store *st, int64_t experiment, const experiment_table *t, gl_error *e)
{
    int rc = 0;
    for (size_t i = 0; i < t->n && !rc; i++)
        rc = store_experiment_result(st, experiment, &t->row[i], e);
    return rc;
}

static int print_stored_row(void *ctx, const store_result_row *r)
{
    (*(size_t *)ctx)++;
    print_row(r);
    return 0;
}

static int print_stored_run(void *ctx, const store_experiment_run_row *r)
{
    (void)ctx;
    printf("  seed %llu | session %lld | run %lld | %-7s | %-16s | %s\n",
           (unsigned long long)r->seed, (long long)r->session, (long long)r->run, r->role,
           r->label, r->status);
    return 0;
}

int experiment_from(const char *db, const char *from, const char *kind)
{
    gl_error e;
    size_t n;
    if (args_size("--from", from, 1, INT64_MAX, &n, &e))
        return cli_usage_error("%s", e.msg);
    store *st = store_open(db, STORE_BROWSE, &e);
    if (!st)
        return cli_runtime_error(&e);
    int64_t id = store_experiment_find(st, (int64_t)n, &e);
    store_experiment_row x;
    int rc = id < 0 ? -1 : store_get_experiment(st, id, &x, &e);
    if (!rc && strcmp(x.kind, kind) != 0) {
        /* a moe table reprinted as absorption's would mislabel every row */
        int status = cli_usage_error("--from %s: experiment %lld is of kind %s, not %s "
                                     "(gatelab experiment %s --from %s reprints it)", from,
                                     (long long)x.id, x.kind, kind, x.kind, from);
        store_experiment_row_free(&x);
        store_close(st);
        return status;
    }
    if (!rc) {
        printf("experiment %lld | %s | %s | started %s | ended %s", (long long)x.id, x.kind,
               x.status, x.started, x.ended[0] ? x.ended : "-");
        if (!isnan(x.wall_seconds))
            printf(" | wall %.0f s", x.wall_seconds);
        printf(" | gatelab %s\n", x.version);
        printf("command %s\nconfig %s\n\n", x.command, x.config_json);
        store_experiment_row_free(&x);
        print_header();
        size_t rows = 0;
        rc = store_list_experiment_results(st, id, print_stored_row, &rows, &e);
        if (!rc && rows == 0)
            printf("(no result rows: the experiment did not finish)\n");
        if (!rc) {
            printf("\nruns:\n");
            rc = store_list_experiment_runs(st, id, print_stored_run, NULL, &e);
        }
    }
    store_close(st);
    return rc ? cli_runtime_error(&e) : 0;
}

/* ---- the absorption table ---- */

void absorb_build_table(experiment_table *t, const absorb_seed *s, size_t n)
{
    double v[ABSORB_NARMS][EXPERIMENT_MAX_SEEDS], w[EXPERIMENT_MAX_SEEDS];
    for (size_t a = 0; a < ABSORB_NARMS; a++)
        for (size_t i = 0; i < n; i++)
            v[a][i] = s[i].ppl[a];
    double md, sd_, ms_, mr_;
    experiment_stats(v[ABSORB_DENSE], n, &md, &sd_);
    experiment_stats(v[ABSORB_SOFT], n, &ms_, &sd_);
    experiment_stats(v[ABSORB_RANDOM], n, &mr_, &sd_);

    /* line 1 */
    experiment_add_stat(t, "1", "dense: final val ppl", v[ABSORB_DENSE], n, 3, "37.3 (line 4)",
                        "n/a");
    experiment_add_stat(t, "1", "soft (learned gate): final val ppl", v[ABSORB_SOFT], n, 3,
                        "48.73 +- 0.60", "n/a");
    experiment_add_stat(t, "1", "random (frozen gate): final val ppl", v[ABSORB_RANDOM], n, 3,
                        "49.83 +- 0.04", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].ppl[ABSORB_RANDOM] - s[i].ppl[ABSORB_SOFT];
    store_result_row *r = experiment_add_stat(
        t, "1", "random - soft ppl (> 0: the learned gate helps)", w, n, 3, "1.10", "");
    snprintf(r->same_direction, sizeof r->same_direction, "%s", experiment_yes_no(r->value > 0.0));
    r = experiment_add_row(t, "1", "routing benefit (R - L) / (R - D) of the means", "0.09", "");
    r->value = (mr_ - ms_) / (mr_ - md);
    snprintf(r->gatelab, sizeof r->gatelab, "%.3f", r->value);
    snprintf(r->same_direction, sizeof r->same_direction, "%s",
             isnan(r->value) ? "n/a" : experiment_yes_no(fabs(r->value) < 0.5));
    experiment_add_stat(t, "1", "sigmoid (naive gate): final val ppl", v[ABSORB_SIGMOID], n, 3, "-",
                        "n/a");

    /* line 2 */
    size_t evals = 0, zero = 1, nonzero = 0;
    double gmax = 0.0, dmax[ABSORB_PROBE_NEPS] = {0.0, 0.0};
    for (size_t i = 0; i < n; i++) {
        evals += s[i].grad_evals;
        zero &= s[i].grad_evals > 0 && s[i].grad_max == 0.0;
        gmax = fmax(gmax, s[i].grad_max);
        nonzero += s[i].probe.grad_nonzero;
        for (size_t k = 0; k < ABSORB_PROBE_NEPS; k++)
            dmax[k] = fmax(dmax[k], s[i].probe.change[k]);
    }
    r = experiment_add_row(t, "2", "topk: gate grad norm at every evaluation (max)", "0 (exact)",
                           experiment_yes_no(zero));
    r->value = gmax;
    snprintf(r->gatelab, sizeof r->gatelab, "%s%g (%zu evals)", zero ? "exactly " : "", gmax,
             evals);
    r = experiment_add_row(t, "2", "topk: backprop gate-gradient entries != 0 (probe)", "0",
                           experiment_yes_no(nonzero == 0));
    r->value = (double)nonzero;
    snprintf(r->gatelab, sizeof r->gatelab, "%zu", nonzero);
    for (size_t k = 0; k < ABSORB_PROBE_NEPS; k++) {
        char q[96];
        snprintf(q, sizeof q, "topk: max abs loss change, gate weights +-%g u",
                 (double)absorb_probe_eps[k]);
        r = experiment_add_row(t, "2", q, "0 (flat)", experiment_yes_no(dmax[k] == 0.0));
        r->value = dmax[k];
        snprintf(r->gatelab, sizeof r->gatelab, "%s%.3g", dmax[k] == 0.0 ? "bit-identical, " : "",
                 dmax[k]);
    }
    for (size_t i = 0; i < n; i++)
        w[i] = fabs(s[i].soft_probe.slope[ABSORB_PROBE_NEPS - 1]);
    char q2[96];
    snprintf(q2, sizeof q2, "soft (control): abs FD slope along u at +-%g",
             (double)absorb_probe_eps[ABSORB_PROBE_NEPS - 1]);
    experiment_add_stat(t, "2", q2, w, n, 4, "-", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].probe.large_change;
    experiment_add_stat(t, "2", "topk: loss change, gate + 0.1 N(0,1) (control)", w, n, 4, "-",
                        "n/a");

    /* line 3 */
    static const char *paper_ppl[ABSORB_NDIST] = {"48.6", "601.6 (co-adapted)",
                                                  "601.6 (co-adapted)"};
    static const char *paper_ratio[ABSORB_NDIST] = {"1.30 (48.6/37.3)", "12.1 (601.6/49.83)",
                                                    "12.3 (601.6/48.73)"};
    double ratio[ABSORB_NDIST][EXPERIMENT_MAX_SEEDS], rmean[ABSORB_NDIST], sd;
    for (size_t di = 0; di < ABSORB_NDIST; di++) {
        for (size_t i = 0; i < n; i++)
            ratio[di][i] = s[i].dist_ppl[di] / s[i].ppl[absorb_dist_arm[di]];
        experiment_stats(ratio[di], n, &rmean[di], &sd);
    }
    for (size_t di = 0; di < ABSORB_NDIST; di++) {
        const char *m = gate_mode_name(absorb_mode[absorb_dist_arm[di]]);
        char q[96];
        double c[EXPERIMENT_MAX_SEEDS], cm;
        for (size_t i = 0; i < n; i++) {
            w[i] = s[i].dist_f1[di];
            c[i] = s[i].dist_chance[di];
        }
        experiment_stats(c, n, &cm, &sd);
        snprintf(q, sizeof q, "distilled onto %s: F1 vs oracle (chance %.3f)", m, cm);
        r = experiment_add_stat(t, "3", q, w, n, 3, di == ABSORB_D_DENSE ? "-" : "high", "n/a");
        if (di != ABSORB_D_DENSE)
            snprintf(r->same_direction, sizeof r->same_direction, "%s",
                     experiment_yes_no(r->value >= 2.0 * cm));
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].dist_ppl[di];
        snprintf(q, sizeof q, "distilled onto %s: deployed val ppl", m);
        experiment_add_stat(t, "3", q, w, n, 3, paper_ppl[di], "n/a");
        snprintf(q, sizeof q, "distilled onto %s: deployed / trained ppl", m);
        r = experiment_add_stat(t, "3", q, ratio[di], n, 3, paper_ratio[di], "n/a");
        if (di != ABSORB_D_DENSE)
            snprintf(r->same_direction, sizeof r->same_direction, "%s",
                     experiment_yes_no(r->value > rmean[ABSORB_D_DENSE]));
    }

    /* line 4 */
    experiment_add_stat(t, "4", "dense baseline: val ppl", v[ABSORB_DENSE], n, 3, "37.3", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].dense_ppl[ABSORB_STOCH];
    experiment_add_stat(t, "4", "stochastic arm evaluated dense", w, n, 3, "78.2", "n/a");
    experiment_add_stat(t, "4", "stochastic arm with its own stochastic masks", v[ABSORB_STOCH], n,
                        3, "-", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].dense_ppl[ABSORB_STOCH] / s[i].ppl[ABSORB_DENSE];
    r = experiment_add_stat(t, "4", "stochastic-evaluated-dense / dense ppl", w, n, 3,
                            "2.10 (78.2/37.3)", "");
    snprintf(r->same_direction, sizeof r->same_direction, "%s", experiment_yes_no(r->value > 1.0));

    /* alongside: every gated model without its gate, the sigmoid gate's
     * density, and the oracle's own mass per layer of the dense model */
    static const int gated[] = {ABSORB_SOFT, ABSORB_RANDOM, ABSORB_SIGMOID, ABSORB_TOPK};
    for (size_t g = 0; g < sizeof gated / sizeof gated[0]; g++) {
        char q[96];
        double own, sdo;
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].ppl[gated[g]];
        experiment_stats(w, n, &own, &sdo);
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].dense_ppl[gated[g]];
        snprintf(q, sizeof q, "%s evaluated dense (as trained %.3f)",
                 gate_mode_name(absorb_mode[gated[g]]), own);
        experiment_add_stat(t, "+", q, w, n, 3, "-", "n/a");
    }
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].sigmoid_density;
    experiment_add_stat(t, "+", "sigmoid gate density (kept / visible)", w, n, 3, "-", "n/a");
    for (size_t l = 0; l < s[0].layers; l++) {
        char q[96];
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].oracle_mass[l];
        snprintf(q, sizeof q, "oracle attention mass kept, layer %zu (dense)", l);
        experiment_add_stat(t, "+", q, w, n, 3, l == 0 ? "~0.90 (k=64 of 512)" : "~0.90", "n/a");
    }
}
