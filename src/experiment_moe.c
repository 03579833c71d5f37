/* experiment_moe: `gatelab experiment moe` (DESIGN §7.5, beyond the paper).
 * The protocol of line 1 moved from attention to the FFN: per seed one live
 * session of three arms with dense attention and the same data order — a
 * dense FFN, a mixture of experts with a learned router, and the same MoE
 * whose router stays at its random initialisation (the learned router starts
 * from the very same weights). Then, as line 3 does for gates, the learned
 * router is put back to its initial weights after training: how many tokens
 * change expert, and what that costs the experts that co-adapted to it.
 * Every number comes from a stored run or a checkpoint. */
#include "experiment_moe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "data.h"
#include "evaluate.h"
#include "experiment.h"
#include "gate.h"
#include "live.h"
#include "model.h"
#include "runspec.h"
#include "store.h"
#include "trainer.h"

typedef enum { MOE_DENSE, MOE_LEARNED, MOE_RANDOM, MOE_NARMS } moe_arm;
static const gate_mode moe_modes[MOE_NARMS] = {GATE_DENSE, GATE_DENSE, GATE_DENSE};
static const live_ffn moe_ffn[MOE_NARMS] = {LIVE_FFN_DENSE, LIVE_FFN_MOE, LIVE_FFN_MOE_RANDOM};
static const char *const moe_names[MOE_NARMS] = {"dense", "dense+moe", "dense+moe-random"};

/* the relative gap under which a random router "matches" a learned one;
 * fixed before any run (README) */
#define MOE_MATCH 0.02

typedef struct {
    uint64_t seed;
    int64_t session, run[MOE_NARMS];
    double ppl[MOE_NARMS];
    double balance[MOE_NARMS];      /* last expert_balance of the run, NaN for the dense FFN */
    double reset_ppl;               /* the learned MoE with its router at its initial weights */
    double rerouted;                /* share of token-layer routings the reset changes */
} moe_seed;

typedef struct {
    double *value;
} summary_ctx;

static int collect_balance(void *ctx, const store_summary_row *row)
{
    summary_ctx *c = ctx;
    if (strcmp(row->key, "expert_balance") == 0)
        *c->value = row->last;
    return 0;
}

/* Copies every layer's router between two models of one shape. */
static void copy_routers(model *dst, const model *src)
{
    for (size_t l = 0; l < dst->cfg.layers; l++)
        memcpy(dst->p.layer[l].routerw, src->p.layer[l].routerw,
               dst->cfg.experts * dst->cfg.d * sizeof(float));
}

/* router_reset's batch: the trained router's choices, then the loss and
 * the choices with the initial router */
typedef struct {
    const model *init;
    const float *trained;     /* [L,E,d] the trained routers */
    int32_t *chosen;          /* [L,B*T] the trained router's experts */
    double changed, routed;
} reset_job;

static double reset_batch(void *ctx, model *m, const int32_t *inputs, const int32_t *targets,
                          size_t nb, size_t w0)
{
    (void)w0;
    reset_job *j = ctx;
    const size_t T = m->cfg.T, B = m->cfg.batch, L = m->cfg.layers;
    const size_t rsize = m->cfg.experts * m->cfg.d;
    for (size_t l = 0; l < L; l++)
        memcpy(m->p.layer[l].routerw, j->trained + l * rsize, rsize * sizeof(float));
    model_forward(m, inputs, targets, nb);
    for (size_t l = 0; l < L; l++)
        memcpy(j->chosen + l * B * T, m->la[l].route.expert, nb * T * sizeof(int32_t));
    copy_routers(m, j->init);
    double loss = model_forward(m, inputs, targets, nb);
    for (size_t l = 0; l < L; l++)
        for (size_t n = 0; n < nb * T; n++)
            j->changed += m->la[l].route.expert[n] != j->chosen[l * B * T + n];
    j->routed += (double)(L * nb * T);
    return loss;
}

/* The learned MoE of `path` evaluated with its router put back to its
 * initial weights (a fresh model of the same config and seed); rerouted is
 * the share of (token, layer) routings that differ from the trained router's. */
static int router_reset(const char *path, const data_source *data, size_t windows,
                        size_t threads, double *ppl, double *rerouted, gl_error *err)
{
    checkpoint_info info;
    model m, init;
    if (checkpoint_load_model(path, -1, threads, &m, &info, err))
        return -1;
    int rc = !info.model.experts ? gl_fail(err, "%s: not a mixture-of-experts checkpoint", path)
                                 : model_init(&init, &info.model, 1, err);
    if (rc) {
        model_free(&m);
        return -1;
    }
    const size_t T = m.cfg.T, B = m.cfg.batch, L = m.cfg.layers, E = m.cfg.experts;
    const size_t rsize = L * E * m.cfg.d;
    float *trained = xmalloc(rsize * sizeof *trained);
    for (size_t l = 0; l < L; l++)
        memcpy(trained + l * E * m.cfg.d, m.p.layer[l].routerw, E * m.cfg.d * sizeof(float));
    reset_job job = {.init = &init, .trained = trained,
                     .chosen = xcalloc(L * B * T, sizeof *job.chosen)};
    const evaluate_spec spec = {.data = data, .windows = windows, .weight = EVALUATE_PER_WINDOW,
                                .batch = reset_batch, .ctx = &job};
    *ppl = exp(evaluate_windows(&m, &spec));
    *rerouted = job.routed > 0.0 ? job.changed / job.routed : NAN;
    free(trained);
    free(job.chosen);
    model_free(&init);
    model_free(&m);
    return 0;
}

/* the router reset as a task (experiment_farm.h): v[0] ppl, v[1] rerouted */
enum { MOE_TASK_RESET = EXPERIMENT_TASK_KIND };

static int moe_compute(void *ctx, const experiment_task *t, experiment_task_out *out,
                       gl_error *e)
{
    const experiment_env *env = ctx;
    if (t->op != MOE_TASK_RESET)
        return gl_fail(e, "experiment moe: a task of unknown kind %d", (int)t->op);
    return router_reset(t->path, env->data, env->windows, env->a->tc.threads, &out->v[0],
                        &out->v[1], e);
}

/* the plan's measure: ctx is the moe_seed array */
static int measure_seed(void *ctx, const experiment_env *x, size_t seed_index, int64_t session,
                        gl_error *e)
{
    moe_seed *s = (moe_seed *)ctx + seed_index;
    s->seed = seed_index + 1;
    s->session = session;
    if (experiment_session_runs(x->st, s->session, moe_names, MOE_NARMS, EXPERIMENT_BY_NAME,
                                s->run, s->ppl, e))
        return -1;
    char ckpt[REC_TEXT] = "";
    for (size_t i = 0; i < MOE_NARMS; i++) {
        s->balance[i] = NAN;
        summary_ctx sc = {.value = &s->balance[i]};
        if (store_list_summaries(x->st, s->run[i], collect_balance, &sc, e))
            return -1;
        if (x->experiment && store_experiment_link(x->st, x->experiment, s->run[i], s->seed,
                                                   "arm", moe_names[i], e))
            return -1;
    }
    store_checkpoint_row ck;
    if (store_find_checkpoint(x->st, s->run[MOE_LEARNED], UINT64_MAX, 0, &ck, e))
        return -1;
    snprintf(ckpt, sizeof ckpt, "%s", ck.path);
    /* one task: the farm runs it here (the other ranks wait for the next
     * session) */
    experiment_task t = experiment_task_make(MOE_TASK_RESET, ckpt, -1, s->seed);
    experiment_task_out out;
    if (experiment_farm_run(x->farm, &t, 1, &out, e))
        return -1;
    s->reset_ppl = out.v[0];
    s->rerouted = out.v[1];
    printf("  final val ppl: dense %.3f, learned router %.3f, random router %.3f | expert "
           "balance learned %.3f random %.3f | learned router reset to its init: ppl %.3f, "
           "%.1f%% of routings change\n",
           s->ppl[MOE_DENSE], s->ppl[MOE_LEARNED], s->ppl[MOE_RANDOM], s->balance[MOE_LEARNED],
           s->balance[MOE_RANDOM], s->reset_ppl, 100.0 * s->rerouted);
    fflush(stdout);
    return 0;
}

/* the plan's build_table: ctx is the moe_seed array */
static void build_table(void *ctx, const experiment_env *env, experiment_table *t)
{
    const moe_seed *s = ctx;
    const size_t n = env->a->seeds, experts = env->a->experts;
    double v[MOE_NARMS][EXPERIMENT_MAX_SEEDS], w[EXPERIMENT_MAX_SEEDS];
    double mean[MOE_NARMS], sd;
    for (size_t a = 0; a < MOE_NARMS; a++) {
        for (size_t i = 0; i < n; i++)
            v[a][i] = s[i].ppl[a];
        experiment_table_stats(v[a], n, &mean[a], &sd);
    }
    experiment_table_add_stat(t, "5", "dense FFN: final val ppl", v[MOE_DENSE], n, 3, "-", "n/a");
    char q[96];
    snprintf(q, sizeof q, "MoE %zu experts top-1, learned router: final val ppl", experts);
    experiment_table_add_stat(t, "5", q, v[MOE_LEARNED], n, 3, "-", "n/a");
    snprintf(q, sizeof q, "MoE %zu experts top-1, frozen random router: ppl", experts);
    experiment_table_add_stat(t, "5", q, v[MOE_RANDOM], n, 3, "-", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].ppl[MOE_RANDOM] - s[i].ppl[MOE_LEARNED];
    store_result_row *r = experiment_table_add_stat(
        t, "5", "random - learned ppl (within 2% of learned: match)", w, n, 3, "~0 (match)", "");
    snprintf(r->same_direction, sizeof r->same_direction, "%s",
             experiment_table_yes_no(fabs(r->value) < MOE_MATCH * mean[MOE_LEARNED]));
    r = experiment_table_add_row(t, "5", "routing benefit (R - L) / (R - D) of the means", "-",
                                 "n/a");
    r->value = (mean[MOE_RANDOM] - mean[MOE_LEARNED]) / (mean[MOE_RANDOM] - mean[MOE_DENSE]);
    snprintf(r->gatelab, sizeof r->gatelab, "%.3f", r->value);
    for (size_t a = MOE_LEARNED; a <= MOE_RANDOM; a++) {
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].balance[a];
        snprintf(q, sizeof q, "expert balance E sum f^2 (1 = even), %s router",
                 a == MOE_LEARNED ? "learned" : "random");
        experiment_table_add_stat(t, "5", q, w, n, 3, "-", "n/a");
    }
    for (size_t i = 0; i < n; i++)
        w[i] = 100.0 * s[i].rerouted;
    experiment_table_add_stat(t, "5", "learned router reset to its init: % routings changed", w, n,
                              1, "-", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].reset_ppl;
    r = experiment_table_add_stat(t, "5", "learned router reset to its init: val ppl", w, n, 3,
                                  "> random (line 3)", "");
    /* like line 3: routing changed after training hurts more than a random
     * router the experts trained with */
    snprintf(r->same_direction, sizeof r->same_direction, "%s",
             experiment_table_yes_no(r->value > mean[MOE_RANDOM]));
}

/* the plan's config_json */
static void config_json_of(const experiment_args *a, json_buf *b)
{
    json_key(b, "experts");
    json_uint(b, a->experts);
    runspec_write_field(b, runspec_find("moe_aux"), &a->tc);
}

static void moe_header(const experiment_env *env)
{
    const experiment_args *a = env->a;
    const train_config *tc = &a->tc;
    model_config moe = tc->model;
    moe.experts = a->experts;
    printf("experiment moe | preset %s | %zu params dense FFN, %zu with %zu experts | V=%zu "
           "T=%zu d=%zu L=%zu batch %zu | %zu seeds x %zu steps, arms %s %s %s | moe-aux %g | "
           "%zu threads | data %s | db %s\n",
           tc->model.preset, model_count_params(&tc->model), model_count_params(&moe),
           a->experts, tc->model.V, tc->model.T, tc->model.d, tc->model.layers, tc->model.batch,
           a->seeds, tc->steps, moe_names[0], moe_names[1], moe_names[2],
           (double)tc->model.moe_aux, tc->threads, data_describe(env->data), a->db);
}

int experiment_moe_run(experiment_args *a, int argc, char **argv, const world *w)
{
    moe_seed *seeds = xcalloc(a->seeds, sizeof *seeds);
    const experiment_plan plan = {.kind = "moe", .title = "learned vs frozen random MoE router",
                                  .names = moe_names, .modes = moe_modes, .ffn = moe_ffn,
                                  .narms = MOE_NARMS, .experts = a->experts,
                                  .print_header = moe_header, .config_json = config_json_of,
                                  .ctx = seeds, .measure = measure_seed,
                                  .build_table = build_table, .compute = moe_compute};
    int status = experiment_run(a, &plan, argc, argv, w);
    free(seeds);
    return status;
}
