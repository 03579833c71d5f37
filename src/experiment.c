/* experiment: `gatelab experiment absorption` and `gatelab distill`. The
 * training is ordinary live sessions (live.c) stored like any `run`; what
 * this file adds is the measurement on their checkpoints, the table beside
 * the paper's figures, and its storage (store_experiment.c). Every number in
 * the table comes from a run, a checkpoint or the metrics table: nothing is
 * adjusted to agree with the paper. */
#include "experiment.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "data.h"
#include "distill.h"
#include "gate.h"
#include "live.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "store.h"
#include "trainer.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define MAX_SEEDS 16
#define DEFAULT_DB "sessions/gatelab.db"

/* the arms of every seed, in session order */
enum { A_DENSE, A_SOFT, A_RANDOM, A_SIGMOID, A_TOPK, A_STOCH, NARMS };
static const gate_mode arm_mode[NARMS] = {GATE_DENSE,   GATE_SOFT, GATE_RANDOM,
                                          GATE_SIGMOID, GATE_TOPK, GATE_STOCHASTIC};
/* line 3 distils onto these (mask-agnostic first, then the co-adapted) */
enum { D_DENSE, D_RANDOM, D_SOFT, NDIST };
static const int dist_arm[NDIST] = {A_DENSE, A_RANDOM, A_SOFT};

/* the finite-difference probe of line 2: a random sign vector u over every
 * gate.q/gate.k weight, the loss at w +- eps u for each eps, then one large
 * random move as the control that the gate does change the loss */
#define PROBE_NEPS 2
static const float probe_eps[PROBE_NEPS] = {1e-3f, 1e-6f};
#define PROBE_LARGE 0.1f
#define PROBE_WINDOWS 8

static const char experiment_usage[] =
    "usage: gatelab experiment absorption [--preset tiny|small|paper] [--seeds N] [--steps N]\n"
    "                                     [--distill-steps N] [--data PATH] [--db PATH]\n"
    "                                     [--threads N] [run options: --ctx --dim --layers\n"
    "                                     --heads --batch --k --lr ... --eval-windows N]\n"
    "       gatelab experiment absorption --from ID [--db PATH]\n"
    "       gatelab distill RUN [--db PATH] [--steps N] [--data PATH] [--threads N]\n"
    "                           [--eval-windows N] [--lr X] [--seed S] [--forward oracle|dense]\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gatelab: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static int runtime_error(const gl_error *e)
{
    fprintf(stderr, "gatelab: %s\n", e->msg);
    return EXIT_RUNTIME;
}


static char *join_words(const char *head, int argc, char **argv)
{
    size_t n = strlen(head) + 1;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = xmalloc(n);
    strcpy(s, head);
    for (int i = 0; i < argc; i++) {
        strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

/* JSON string body: quotes and backslashes escaped, control bytes dropped */
static void json_str(char *out, size_t n, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 3 < n; s++) {
        if (*s == '"' || *s == '\\')
            out[o++] = '\\';
        if ((unsigned char)*s >= 0x20)
            out[o++] = *s;
    }
    out[o] = 0;
}

/* ---- checkpoints: evaluation and the top-k probe ---- */

/* The checkpoint evaluated in `mode` (-1: its own) over the val windows;
 * ms, when not NULL, is initialised here and gets the first batch's
 * agreement (the caller frees it). */
static int eval_ckpt(const char *path, int mode, const data_source *data, size_t windows,
                     size_t threads, double *ppl, metrics_state *ms, gl_error *err)
{
    st_file f;
    checkpoint_info info;
    if (st_read(path, &f, err))
        return -1;
    model m;
    int rc = checkpoint_info_read(&f, path, &info, err);
    if (!rc) {
        if (mode >= 0)
            info.model.mode = (gate_mode)mode;
        rc = model_init(&m, &info.model, threads, err);
        if (!rc) {
            rc = checkpoint_load_weights(&f, path, &m, err);
            if (!rc) {
                if (ms)
                    metrics_init(ms, info.model.layers, info.model.heads, info.model.T);
                *ppl = exp(distill_eval(&m, data, windows, ms));
            }
            model_free(&m);
        }
    }
    st_free(&f);
    return rc;
}

typedef struct {
    size_t grad_nonzero;            /* backprop gate-gradient entries != 0 on the probe batch */
    double change[PROBE_NEPS];      /* max |L(w +- eps u) - L(w)| */
    double slope[PROBE_NEPS];       /* (L(w + eps u) - L(w - eps u)) / (2 eps) */
    double large_change;            /* L(w + 0.1 N(0,1)) - L(w) */
} gate_probe;

/* Loads a checkpoint (in its own mode) and probes its loss on the first val
 * windows in the gate weights: the backprop gradient, the loss along +-eps u
 * for every probe_eps, and one large random move. */
static int probe_gate(const char *path, const data_source *data, size_t threads, uint64_t seed,
                      gate_probe *p, gl_error *err)
{
    memset(p, 0, sizeof *p);
    st_file f;
    checkpoint_info info;
    if (st_read(path, &f, err))
        return -1;
    model m;
    int rc = checkpoint_info_read(&f, path, &info, err);
    if (!rc)
        rc = model_init(&m, &info.model, threads, err);
    if (rc) {
        st_free(&f);
        return -1;
    }
    rc = checkpoint_load_weights(&f, path, &m, err);
    st_free(&f);
    if (rc) {
        model_free(&m);
        return -1;
    }
    const size_t T = m.cfg.T;
    size_t nb = data_val_windows(data);
    if (nb > PROBE_WINDOWS)
        nb = PROBE_WINDOWS;
    if (nb > m.cfg.batch)
        nb = m.cfg.batch;
    int32_t *win = xcalloc(T + 1, sizeof *win);
    int32_t *in = xcalloc(nb * T, sizeof *in), *tg = xcalloc(nb * T, sizeof *tg);
    for (size_t b = 0; b < nb; b++) {
        data_val_window(data, b, win);
        memcpy(in + b * T, win, T * sizeof(int32_t));
        memcpy(tg + b * T, win + 1, T * sizeof(int32_t));
    }
    /* stochastic masks (none here) would need a fixed salt to compare losses */
    m.step_salt = 0;
    double base = model_forward(&m, in, tg, nb);
    model_backward(&m);
    size_t ng = 0;
    for (size_t i = 0; i < m.ntensors; i++)
        if (m.tensors[i].is_gate) {
            for (size_t j = 0; j < m.tensors[i].numel; j++)
                p->grad_nonzero += m.grads[m.tensors[i].offset + j] != 0.0f;
            if (m.tensors[i].ndim == 2)
                ng += m.tensors[i].numel;
        }
    /* the gate's q/k weights, flattened in tensor-table order */
    float **w = xcalloc(ng, sizeof *w);
    size_t at = 0;
    for (size_t i = 0; i < m.ntensors; i++)
        if (m.tensors[i].is_gate && m.tensors[i].ndim == 2)
            for (size_t j = 0; j < m.tensors[i].numel; j++)
                w[at++] = &m.params[m.tensors[i].offset + j];
    float *keep = xcalloc(ng, sizeof *keep), *u = xcalloc(ng, sizeof *u);
    rng_state r;
    rng_seed(&r, rng_derive(seed, 0x70726f6265ULL));
    for (size_t i = 0; i < ng; i++) {
        keep[i] = *w[i];
        u[i] = rng_below(&r, 2) ? 1.0f : -1.0f;
    }
    for (size_t e = 0; e < PROBE_NEPS; e++) {
        double l[2];
        for (int side = 0; side < 2; side++) {
            for (size_t i = 0; i < ng; i++)
                *w[i] = keep[i] + (side ? -probe_eps[e] : probe_eps[e]) * u[i];
            l[side] = model_forward(&m, in, tg, nb);
            p->change[e] = fmax(p->change[e], fabs(l[side] - base));
        }
        p->slope[e] = (l[0] - l[1]) / (2.0 * (double)probe_eps[e]);
    }
    for (size_t i = 0; i < ng; i++)
        *w[i] = keep[i] + PROBE_LARGE * rng_normal(&r);
    p->large_change = model_forward(&m, in, tg, nb) - base;
    free(w);
    free(keep);
    free(u);
    free(win);
    free(in);
    free(tg);
    model_free(&m);
    return 0;
}

/* ---- storing a distillation as a run ---- */

typedef struct {
    int64_t source_run;
    const char *source_name, *source_ckpt, *out_ckpt, *data_path;
    size_t eval_windows;
    const distill_config *cfg;
    const distill_result *res;
} distill_record;

static double layer_mean_key(const metrics_state *ms, metric_key key)
{
    double sum = 0.0;
    size_t n = 0;
    for (size_t l = 0; l < ms->L; l++) {
        double v = metrics_layer_value(ms, l, key);
        if (!isnan(v)) {
            sum += v;
            n++;
        }
    }
    return n ? sum / (double)n : NAN;
}

/* A new run in `session` (arm index `arm`), parent the source run, mode
 * distilled, finished at the source step: its metrics are the deployed
 * evaluation (val_loss, val_ppl, f1, mass_kept, oracle_mass, per-layer
 * layer_metrics) plus the distillation's own figures (distill_loss_first /
 * _last, precision, recall, chance_f1, heldout_topk_f1, heldout_thr_*,
 * source_val_ppl); the distilled file is its checkpoint. */
static int64_t store_distillation(store *st, int64_t session, int64_t arm,
                                  const distill_record *d, gl_error *err)
{
    const distill_result *r = d->res;
    const distill_config *c = d->cfg;
    char name[64], src[512], out[512], data[512], cfgjson[2560];
    snprintf(name, sizeof name, "%.40s>distilled", d->source_name);
    json_str(src, sizeof src, d->source_ckpt);
    json_str(out, sizeof out, d->out_ckpt);
    json_str(data, sizeof data, d->data_path ? d->data_path : "");
    snprintf(cfgjson, sizeof cfgjson,
             "{\"name\":\"%s\",\"mode\":\"distilled\",\"source_run\":%lld,"
             "\"source_mode\":\"%s\",\"source_step\":%zu,\"source_checkpoint\":\"%s\","
             "\"steps\":%zu,\"batch\":%zu,\"lr\":%.9g,\"warmup\":%zu,\"weight_decay\":%.9g,"
             "\"clip\":%.9g,\"forward\":\"%s\",\"seed\":%llu,\"data\":%s%s%s,"
             "\"eval_windows\":%zu,\"checkpoint\":\"%s\"}",
             name, (long long)d->source_run, r->source_mode, r->source_step, src, c->steps,
             c->batch, (double)c->lr, c->warmup, (double)c->weight_decay, (double)c->clip,
             gate_mode_name(c->forward), (unsigned long long)c->seed, d->data_path ? "\"" : "",
             d->data_path ? data : "null", d->data_path ? "\"" : "", d->eval_windows, out);
    const metrics_state *ms = &r->deployed;
    store_run_desc desc = {.arm = (uint32_t)arm,
                           .name = name,
                           .mode = gate_mode_name(GATE_DISTILLED),
                           .k = (uint32_t)ms->k,
                           .seed = c->seed,
                           .config_json = cfgjson,
                           .parent_run = d->source_run,
                           .start_step = r->source_step};
    if (store_begin(st, err))
        return -1;
    int64_t run = store_run_begin(st, session, &desc, err);
    if (run < 0) {
        store_abort(st);
        return -1;
    }
    const uint64_t step = r->source_step;
    tel_record ev = {.kind = REC_EVENT, .step = step, .wall_ms = gl_wall_ms()};
    ev.u.event.kind = EV_START;
    ev.u.event.mode = GATE_DISTILLED;
    ev.u.event.k = (uint32_t)ms->k;
    snprintf(ev.u.event.detail, sizeof ev.u.event.detail,
             "distil a fresh gate onto run %lld (%s, step %zu): %zu updates, %s forward",
             (long long)d->source_run, r->source_mode, r->source_step, c->steps,
             gate_mode_name(c->forward));
    int rc = store_write(st, run, &ev, err);
    for (size_t l = 0; !rc && l < ms->L; l++)
        for (size_t h = 0; !rc && h < ms->H; h++) {
            tel_record lr = {.kind = REC_LAYER, .step = step, .wall_ms = gl_wall_ms()};
            lr.u.layer.layer = (uint32_t)l;
            lr.u.layer.head = (uint32_t)h;
            for (int k = 0; k < METRIC_COUNT; k++)
                lr.u.layer.value[k] = k == METRIC_GATE_GRAD_NORM
                                          ? NAN
                                          : metrics_value(ms, l, h, (metric_key)k);
            rc = store_write(st, run, &lr, err);
        }
    if (!rc) {
        tel_record e = {.kind = REC_EVAL, .step = step, .wall_ms = gl_wall_ms()};
        e.u.eval.val_loss = r->val_loss;
        e.u.eval.val_ppl = r->val_ppl;
        e.u.eval.bits_per_byte = NAN;
        e.u.eval.f1 = r->f1;
        e.u.eval.mass_kept = r->mass_kept;
        e.u.eval.oracle_mass = layer_mean_key(ms, METRIC_ORACLE_MASS);
        e.u.eval.gate_grad_norm = NAN;
        e.u.eval.tokens_per_s = NAN;
        e.u.eval.train_loss = NAN;
        rc = store_write(st, run, &e, err);
    }
    const struct {
        const char *key;
        double v;
    } extra[] = {
        {"distill_loss_first", r->loss_first},   {"distill_loss_last", r->loss_last},
        {"precision", r->precision},             {"recall", r->recall},
        {"chance_f1", r->chance},                {"heldout_topk_f1", r->held_out.topk_f1},
        {"heldout_thr_precision", r->held_out.thr_p},
        {"heldout_thr_recall", r->held_out.thr_r},
        {"heldout_thr_f1", r->held_out.thr_f1},  {"source_val_ppl", r->source_val_ppl},
        {"distill_seconds", r->seconds},
    };
    for (size_t i = 0; !rc && i < sizeof extra / sizeof extra[0]; i++)
        rc = store_put_metric(st, run, extra[i].key, step, extra[i].v, err);
    if (!rc) {
        tel_record ck = {.kind = REC_CHECKPOINT, .step = step, .wall_ms = gl_wall_ms()};
        snprintf(ck.u.checkpoint.path, sizeof ck.u.checkpoint.path, "%s", d->out_ckpt);
        rc = store_write(st, run, &ck, err);
    }
    if (!rc) {
        tel_record fin = {.kind = REC_EVENT, .step = step, .wall_ms = gl_wall_ms()};
        fin.u.event.kind = EV_FINISH;
        fin.u.event.mode = GATE_DISTILLED;
        fin.u.event.k = (uint32_t)ms->k;
        snprintf(fin.u.event.detail, sizeof fin.u.event.detail,
                 "BCE %.4f -> %.4f; deployed F1 %.3f, val ppl %.3f", r->loss_first, r->loss_last,
                 r->f1, r->val_ppl);
        rc = store_write(st, run, &fin, err);
    }
    if (!rc) {
        tel_record s = {.kind = REC_STATUS, .step = step, .wall_ms = gl_wall_ms()};
        s.u.status.status = RUN_FINISHED;
        rc = store_write(st, run, &s, err);
    }
    if (rc) {
        store_abort(st);   /* all or nothing: no half-stored distillation */
        return -1;
    }
    if (store_commit(st, err))
        return -1;
    return run;
}

static void print_distill(const char *indent, const distill_result *r)
{
    printf("%sdistillation BCE %.4f -> %.4f over %zu updates (%.1f s)\n", indent, r->loss_first,
           r->loss_last, r->steps, r->seconds);
    printf("%sheld out, distillation forward: top-k F1 %.3f | thresholded (sigmoid > 1/2) "
           "P %.3f R %.3f F1 %.3f | chance %.3f\n",
           indent, r->held_out.topk_f1, r->held_out.thr_p, r->held_out.thr_r, r->held_out.thr_f1,
           r->held_out.chance);
    printf("%sdeployed (mode distilled, top-k of the gate): P %.3f R %.3f F1 %.3f vs oracle "
           "(chance %.3f) | mass kept %.3f of oracle %.3f\n",
           indent, r->precision, r->recall, r->f1, r->chance, r->mass_kept, r->oracle_mass);
    printf("%sdeployed val ppl %.4f (the checkpoint as trained, %s: %.4f)\n", indent, r->val_ppl,
           r->source_mode, r->source_val_ppl);
    fflush(stdout);
}

typedef struct {
    const char *prefix;
} distill_progress;

static void on_distill_progress(void *ctx, size_t step, size_t steps, double loss)
{
    const distill_progress *p = ctx;
    printf("%sdistill update %zu/%zu | BCE %.4f\n", p->prefix, step, steps, loss);
    fflush(stdout);
}

/* dirname(ckpt)/distilled-stepNNNNNN-seedS-uU[-dense].safetensors: the
 * settings that decide the distilled gate are in the name, so another
 * distillation of the same checkpoint never overwrites this one */
static int distilled_path(const char *ckpt, size_t step, const distill_config *dc, char *out,
                          size_t n, gl_error *err)
{
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s", ckpt) >= (int)sizeof dir)
        return gl_fail(err, "%s: path too long", ckpt);
    if (snprintf(out, n, "%s/distilled-step%06zu-seed%llu-u%zu%s.safetensors", dirname(dir), step,
                 (unsigned long long)dc->seed, dc->steps,
                 dc->forward == GATE_DENSE ? "-dense" : "") >= (int)n)
        return gl_fail(err, "%s: path too long", ckpt);
    /* the checkpoints table keeps paths of a telemetry record's size */
    if (strlen(out) >= REC_TEXT)
        return gl_fail(err, "%s: path of %zu bytes is too long to store (at most %d)", out,
                       strlen(out), REC_TEXT - 1);
    return 0;
}

/* ---- gatelab distill RUN ---- */

int distill_main(int argc, char **argv)
{
    const char *db = DEFAULT_DB, *run_word = NULL, *data = NULL;
    size_t threads = args_default_threads(), windows = 0;
    int windows_set = 0, data_set = 0;
    distill_config dc;
    distill_default_config(&dc);
    int warmup_set = 0, seed_set = 0;
    gl_error e;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            fputs(experiment_usage, stdout);
            return 0;
        } else if (strcmp(f, "--db") == 0) {
            if (!v || !*v)
                return usage_error("--db: missing value");
            db = v;
        } else if (strcmp(f, "--data") == 0) {
            if (!v || !*v)
                return usage_error("--data: missing value");
            data = v;
            data_set = 1;
        } else if (strcmp(f, "--steps") == 0) {
            rc = args_size(f, v, 1, 10000000, &dc.steps, &e);
        } else if (strcmp(f, "--threads") == 0) {
            rc = args_size(f, v, 1, 256, &threads, &e);
        } else if (strcmp(f, "--eval-windows") == 0) {
            rc = args_size(f, v, 0, 1000000, &windows, &e);
            windows_set = 1;
        } else if (strcmp(f, "--lr") == 0) {
            rc = args_float(f, v, 0.0, 10.0, &dc.lr, &e);
        } else if (strcmp(f, "--warmup") == 0) {
            rc = args_size(f, v, 0, 10000000, &dc.warmup, &e);
            warmup_set = 1;
        } else if (strcmp(f, "--seed") == 0) {
            size_t s;
            rc = args_size(f, v, 0, SIZE_MAX, &s, &e);
            dc.seed = s;
            seed_set = 1;
        } else if (strcmp(f, "--forward") == 0) {
            gate_mode m;
            if (!v || gate_mode_parse(v, &m) || (m != GATE_ORACLE && m != GATE_DENSE))
                return usage_error("--forward %s: must be oracle or dense", v ? v : "");
            dc.forward = m;
        } else if (f[0] == '-') {
            return usage_error("%s: unknown option for distill", f);
        } else if (!run_word) {
            run_word = f;
            continue;
        } else {
            return usage_error("distill: unexpected argument '%s'", f);
        }
        if (rc)
            return usage_error("%s", e.msg);
        i++;
    }
    if (!run_word)
        return usage_error("distill: missing RUN (a run id from gatelab ls)");
    size_t run_id;
    if (args_size("RUN", run_word, 1, INT64_MAX, &run_id, &e))
        return usage_error("distill: %s", e.msg);
    if (!warmup_set)
        dc.warmup = dc.steps / 10;

    store *st = store_open(db, STORE_EXISTING, &e);
    if (!st)
        return runtime_error(&e);
    store_run_row row;
    store_checkpoint_row ck;
    if (store_get_run(st, (int64_t)run_id, &row, &e)) {
        store_close(st);
        return runtime_error(&e);
    }
    int rc = store_find_checkpoint(st, (int64_t)run_id, UINT64_MAX, 0, &ck, &e);
    /* the run's own data and eval windows, unless given here */
    char **rargv = NULL;
    int rargc = 0;
    gl_error ignore;
    if (!rc && store_json_argv(row.config_json, &rargv, &rargc, &ignore) == 0) {
        for (int i = 0; i + 1 < rargc; i++) {
            if (!data_set && strcmp(rargv[i], "--data") == 0)
                data = rargv[i + 1];
            if (!windows_set && strcmp(rargv[i], "--eval-windows") == 0)
                args_size("--eval-windows", rargv[i + 1], 0, 1000000, &windows, &ignore);
        }
    }
    if (!windows_set && !windows)
        windows = 64;
    if (!seed_set)
        dc.seed = row.seed;
    char out[1024];
    if (!rc)
        rc = distilled_path(ck.path, ck.step, &dc, out, sizeof out, &e);
    int status = 0;
    distill_result res;
    memset(&res, 0, sizeof res);
    if (!rc) {
        printf("distill run %lld (%s, %s) from %s (step %llu) | %zu updates of batch %zu, lr %g, "
               "%s forward | data %s | %zu val windows\n",
               (long long)row.id, row.name, row.mode, ck.path, (unsigned long long)ck.step,
               dc.steps, dc.batch, (double)dc.lr, gate_mode_name(dc.forward),
               data ? data : "generator", windows);
        fflush(stdout);
        distill_progress pr = {.prefix = ""};
        /* the model's own batch caps the distillation batch */
        st_file f;
        checkpoint_info info;
        rc = st_read(ck.path, &f, &e);
        if (!rc) {
            rc = checkpoint_info_read(&f, ck.path, &info, &e);
            st_free(&f);
        }
        if (!rc && dc.batch > info.model.batch)
            dc.batch = info.model.batch;
        if (!rc)
            rc = distill_checkpoint(ck.path, data, &dc, windows, threads, out,
                                    on_distill_progress, &pr,
                                    dc.steps >= 10 ? dc.steps / 10 : 1, &res, &e);
    }
    if (!rc) {
        print_distill("", &res);
        printf("checkpoint %s (gate mode distilled; gatelab eval %s --data FILE)\n", out, out);
        char *cmd = join_words("gatelab distill", argc, argv);
        int64_t session = store_session_begin(st, cmd, &e);
        free(cmd);
        distill_record d = {.source_run = row.id, .source_name = row.name,
                            .source_ckpt = ck.path, .out_ckpt = out, .data_path = data,
                            .eval_windows = windows, .cfg = &dc, .res = &res};
        int64_t run = session < 0 ? -1 : store_distillation(st, session, 0, &d, &e);
        if (run < 0 || store_session_end(st, session, &e))
            rc = -1;
        else
            printf("stored as run %lld (session %lld) in %s\n", (long long)run,
                   (long long)session, db);
    }
    if (rc)
        status = runtime_error(&e);
    distill_result_free(&res);
    for (int i = 0; i < rargc; i++)
        free(rargv[i]);
    free(rargv);
    store_run_row_free(&row);
    store_close(st);
    return status;
}

/* ---- gatelab experiment absorption ---- */

typedef struct {
    train_config tc;             /* shared by the arms; the model seed is set per seed */
    const char *preset, *db, *from;
    size_t seeds, distill_steps;
    char *pass[96];              /* the run options as given, for the arms' `resume` */
    int npass;
} absorption_args;

static int parse_absorption(int argc, char **argv, absorption_args *a, gl_error *e)
{
    memset(a, 0, sizeof *a);
    a->preset = "tiny";
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--preset") == 0) {
            if (i + 1 >= argc)
                return gl_fail(e, "--preset: missing value");
            a->preset = argv[i + 1];
        }
    train_config *tc = &a->tc;
    model_config *mc = &tc->model;
    if (model_preset(a->preset, mc))
        return gl_fail(e, "--preset %s: unknown preset (tiny, small, paper)", a->preset);
    optim_default_config(&tc->optim);
    tc->steps = 1000;
    tc->eval_windows = 64;
    tc->threads = args_default_threads();
    a->db = DEFAULT_DB;
    a->seeds = 3;
    a->distill_steps = 300;
    int k_set = 0, gate_lr_set = 0, mlp_set = 0, warmup_set = 0, every_set = 0;
    size_t vocab = 0;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, pass = 1;
        if (strcmp(f, "--preset") == 0) {
            if (!v)
                return gl_fail(e, "--preset: missing value");
        } else if (strcmp(f, "--seeds") == 0) {
            rc = args_size(f, v, 1, MAX_SEEDS, &a->seeds, e);
            pass = 0;
        } else if (strcmp(f, "--distill-steps") == 0) {
            rc = args_size(f, v, 1, 10000000, &a->distill_steps, e);
            pass = 0;
        } else if (strcmp(f, "--db") == 0) {
            if (!v || !*v)
                return gl_fail(e, "--db: missing value");
            a->db = v;
            pass = 0;
        } else if (strcmp(f, "--from") == 0) {
            if (!v || !*v)
                return gl_fail(e, "--from: missing value (a session or experiment id)");
            a->from = v;
            pass = 0;
        } else if (strcmp(f, "--data") == 0) {
            if (!v || !*v)
                return gl_fail(e, "--data: missing value");
            tc->data_path = v;
        } else if (strcmp(f, "--steps") == 0) {
            rc = args_size(f, v, 1, 100000000, &tc->steps, e);
        } else if (strcmp(f, "--k") == 0) {
            rc = args_size(f, v, 1, 4096, &mc->k, e);
            k_set = 1;
        } else if (strcmp(f, "--gate-temp") == 0) {
            rc = args_float(f, v, 1e-4, 100.0, &mc->gate_temp, e);
        } else if (strcmp(f, "--lr") == 0) {
            rc = args_float(f, v, 0.0, 10.0, &tc->optim.lr, e);
        } else if (strcmp(f, "--gate-lr") == 0) {
            rc = args_float(f, v, 0.0, 10.0, &tc->optim.gate_lr, e);
            gate_lr_set = 1;
        } else if (strcmp(f, "--warmup") == 0) {
            rc = args_size(f, v, 0, 100000000, &tc->optim.warmup, e);
            warmup_set = 1;
        } else if (strcmp(f, "--weight-decay") == 0) {
            rc = args_float(f, v, 0.0, 10.0, &tc->optim.weight_decay, e);
        } else if (strcmp(f, "--clip") == 0) {
            rc = args_float(f, v, 0.0, 1e6, &tc->optim.clip, e);
        } else if (strcmp(f, "--batch") == 0) {
            rc = args_size(f, v, 1, 4096, &mc->batch, e);
        } else if (strcmp(f, "--ctx") == 0) {
            rc = args_size(f, v, 2, 4096, &mc->T, e);
        } else if (strcmp(f, "--dim") == 0) {
            rc = args_size(f, v, 1, 8192, &mc->d, e);
        } else if (strcmp(f, "--layers") == 0) {
            rc = args_size(f, v, 1, 64, &mc->layers, e);
        } else if (strcmp(f, "--heads") == 0) {
            rc = args_size(f, v, 1, 64, &mc->heads, e);
        } else if (strcmp(f, "--mlp") == 0) {
            rc = args_size(f, v, 1, 65536, &mc->mlp, e);
            mlp_set = 1;
        } else if (strcmp(f, "--gate-rank") == 0) {
            rc = args_size(f, v, 1, 1024, &mc->r, e);
        } else if (strcmp(f, "--vocab") == 0) {
            rc = args_size(f, v, 2, 1u << 20, &vocab, e);
        } else if (strcmp(f, "--eval-every") == 0) {
            rc = args_size(f, v, 1, 100000000, &tc->eval_every, e);
            every_set = 1;
        } else if (strcmp(f, "--eval-windows") == 0) {
            rc = args_size(f, v, 0, 1000000, &tc->eval_windows, e);
        } else if (strcmp(f, "--threads") == 0) {
            rc = args_size(f, v, 1, 256, &tc->threads, e);
        } else if (f[0] == '-') {
            return gl_fail(e, "%s: unknown option for experiment absorption", f);
        } else {
            return gl_fail(e, "experiment absorption: unexpected argument '%s'", f);
        }
        if (rc)
            return -1;
        if (pass && a->npass + 2 <= (int)(sizeof a->pass / sizeof a->pass[0]) - 12) {
            a->pass[a->npass++] = argv[i];
            a->pass[a->npass++] = argv[i + 1];
        }
        i++;
    }
    if (!gate_lr_set)
        tc->optim.gate_lr = tc->optim.lr;
    if (!k_set)
        mc->k = mc->T / 8 ? mc->T / 8 : 1;
    if (!mlp_set)
        mc->mlp = 4 * mc->d;
    if (vocab)
        mc->V = vocab;
    tc->vocab_from_data = vocab == 0;
    if (!warmup_set && tc->optim.warmup >= tc->steps)
        tc->optim.warmup = tc->steps / 10;
    if (!every_set)
        tc->eval_every = tc->steps >= 10 ? tc->steps / 10 : 1;
    tc->save_every = 0;   /* one checkpoint per arm, at the end */
    if (mc->k >= mc->T)
        return gl_fail(e, "--k %zu: must be below the context length %zu (the gates must drop "
                          "keys)", mc->k, mc->T);
    return model_config_check(mc, e);
}

/* ---- progress: one line per evaluation step, once every arm has it ---- */

typedef struct {
    size_t seed, nseeds, cap;
    uint64_t *step;          /* [NARMS][cap] */
    double *ppl, *tok;
    size_t got[NARMS], printed;
    int done[NARMS];
} progress;

static void progress_flush(progress *p)
{
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t a = 0; a < NARMS; a++) {
        if (!p->done[a] && p->got[a] < lo)
            lo = p->got[a];
        if (p->got[a] > hi)
            hi = p->got[a];
    }
    for (; p->printed < lo && p->printed < hi; p->printed++) {
        size_t e = p->printed;
        double tok = 0.0;
        uint64_t step = 0;
        printf("seed %zu/%zu", p->seed, p->nseeds);
        char body[512];
        size_t o = 0;
        for (size_t a = 0; a < NARMS; a++) {
            if (e < p->got[a]) {
                step = p->step[a * p->cap + e];
                tok += p->tok[a * p->cap + e];
                o += (size_t)snprintf(body + o, sizeof body - o, " %s %.3f",
                                      gate_mode_name(arm_mode[a]), p->ppl[a * p->cap + e]);
            } else {
                o += (size_t)snprintf(body + o, sizeof body - o, " %s -",
                                      gate_mode_name(arm_mode[a]));
            }
        }
        printf(" | step %6llu | val ppl%s | %.0f tok/s\n", (unsigned long long)step, body, tok);
    }
    fflush(stdout);
}

static void on_record(void *ctx, live *lv, const tel_record *r)
{
    (void)lv;
    progress *p = ctx;
    if (r->arm >= NARMS)
        return;
    if (r->kind == REC_EVAL && p->got[r->arm] < p->cap) {
        size_t at = r->arm * p->cap + p->got[r->arm]++;
        p->step[at] = r->step;
        p->ppl[at] = r->u.eval.val_ppl;
        p->tok[at] = r->u.eval.tokens_per_s;
    } else if (r->kind == REC_STATUS && r->u.status.status != RUN_RUNNING &&
               r->u.status.status != RUN_PAUSED) {
        p->done[r->arm] = 1;
    } else if (r->kind == REC_EVENT &&
               (r->u.event.kind == EV_ERROR || r->u.event.kind == EV_DIVERGED)) {
        fprintf(stderr, "gatelab: seed %zu arm %s: %s at step %llu: %s\n", p->seed,
                gate_mode_name(arm_mode[r->arm]), event_kind_name((event_kind)r->u.event.kind),
                (unsigned long long)r->step, r->u.event.detail);
    }
    progress_flush(p);
}

/* ---- one seed: its session, runs, checkpoints and measurements ---- */

typedef struct {
    uint64_t seed;
    int64_t session;
    int64_t run[NARMS];
    char ckpt[NARMS][REC_TEXT];
    double ppl[NARMS];                  /* final val ppl, from the store */
    double dense_ppl[NARMS];            /* each checkpoint evaluated dense */
    size_t grad_evals;
    double grad_max;                    /* max |gate_grad_norm| of the topk run */
    gate_probe probe, soft_probe;    /* the topk arm, and the soft arm as the smooth control */
    double dist_f1[NDIST], dist_chance[NDIST], dist_ppl[NDIST], dist_source_ppl[NDIST];
    double dist_thr_f1[NDIST];
    int64_t dist_run[NDIST];
    double sigmoid_density;
    double oracle_mass[DISTILL_MAX_LAYERS];
    size_t layers;
} seed_result;

typedef struct {
    seed_result *s;
} runs_ctx;

static int collect_run(void *ctx, const store_run_row *row)
{
    runs_ctx *c = ctx;
    for (size_t a = 0; a < NARMS; a++)
        if (row->parent_run == 0 && row->arm == a &&
            strcmp(row->mode, gate_mode_name(arm_mode[a])) == 0) {
            c->s->run[a] = row->id;
            c->s->ppl[a] = row->final_val_ppl;
        }
    return 0;
}

typedef struct {
    const absorption_args *a;
    store *st;
    int64_t experiment;         /* 0 until the first seed's session exists */
    const data_source *data;    /* val windows for every evaluation */
    size_t windows;
    char *command;
} absorption;

static int measure_seed(absorption *x, seed_result *s, gl_error *e)
{
    const absorption_args *a = x->a;
    const size_t threads = a->tc.threads;
    runs_ctx rc_ctx = {.s = s};
    if (store_list_runs(x->st, s->session, collect_run, &rc_ctx, e))
        return -1;
    for (size_t i = 0; i < NARMS; i++) {
        if (!s->run[i])
            return gl_fail(e, "session %lld has no %s run", (long long)s->session,
                           gate_mode_name(arm_mode[i]));
        store_checkpoint_row ck;
        if (store_find_checkpoint(x->st, s->run[i], UINT64_MAX, 0, &ck, e))
            return -1;
        snprintf(s->ckpt[i], sizeof s->ckpt[i], "%s", ck.path);
        if (x->experiment &&
            store_experiment_link(x->st, x->experiment, s->run[i], s->seed, "arm",
                                  gate_mode_name(arm_mode[i]), e))
            return -1;
    }
    const char *pre = "  ";
    /* line 2: the topk arm's gate gradient at every evaluation, then the probe */
    if (store_metric_extent(x->st, s->run[A_TOPK], "gate_grad_norm", &s->grad_evals, &s->grad_max,
                            e))
        return -1;
    if (probe_gate(s->ckpt[A_TOPK], x->data, threads, s->seed, &s->probe, e) ||
        probe_gate(s->ckpt[A_SOFT], x->data, threads, s->seed, &s->soft_probe, e))
        return -1;
    printf("%stopk: gate grad norm max %g over %zu evaluations, %zu backprop gate-gradient "
           "entries != 0 | |loss change| along random signs: +-1e-3 %g, +-1e-6 %g "
           "(soft, the smooth control: %g, %g; slope %.4g) | %+.6f after a %g random move\n",
           pre, s->grad_max, s->grad_evals, s->probe.grad_nonzero, s->probe.change[0],
           s->probe.change[1], s->soft_probe.change[0], s->soft_probe.change[1],
           s->soft_probe.slope[1], s->probe.large_change, (double)PROBE_LARGE);
    /* line 4 and alongside: every checkpoint evaluated dense */
    for (size_t i = 0; i < NARMS; i++) {
        metrics_state ms;
        int own = i == A_DENSE || i == A_SIGMOID;
        double ppl;
        if (eval_ckpt(s->ckpt[i], own ? -1 : GATE_DENSE, x->data, x->windows, threads, &ppl,
                      own ? &ms : NULL, e))
            return -1;
        s->dense_ppl[i] = i == A_SIGMOID ? NAN : ppl;
        if (i == A_DENSE) {
            s->layers = ms.L < DISTILL_MAX_LAYERS ? ms.L : DISTILL_MAX_LAYERS;
            for (size_t l = 0; l < s->layers; l++)
                s->oracle_mass[l] = metrics_layer_value(&ms, l, METRIC_ORACLE_MASS);
        }
        if (i == A_SIGMOID) {
            s->sigmoid_density = layer_mean_key(&ms, METRIC_DENSITY);
            /* and the sigmoid model without its gate */
            if (eval_ckpt(s->ckpt[i], GATE_DENSE, x->data, x->windows, threads,
                          &s->dense_ppl[i], NULL, e)) {
                metrics_free(&ms);
                return -1;
            }
        }
        if (own)
            metrics_free(&ms);
    }
    printf("%sevaluated dense:", pre);
    for (size_t i = 0; i < NARMS; i++)
        printf(" %s %.3f (as trained %.3f)%s", gate_mode_name(arm_mode[i]), s->dense_ppl[i],
               s->ppl[i], i + 1 < NARMS ? "," : "\n");
    /* line 3: distil a fresh gate onto the frozen dense, random and soft models */
    for (size_t di = 0; di < NDIST; di++) {
        const int ai = dist_arm[di];
        char out[1024], prefix[96];
        store_checkpoint_row ck;
        distill_config dc;
        distill_default_config(&dc);
        dc.steps = a->distill_steps;
        dc.warmup = dc.steps / 10;
        dc.batch = a->tc.model.batch;
        dc.seed = s->seed;
        if (store_find_checkpoint(x->st, s->run[ai], UINT64_MAX, 0, &ck, e) ||
            distilled_path(ck.path, ck.step, &dc, out, sizeof out, e))
            return -1;
        snprintf(prefix, sizeof prefix, "%sonto %s: ", pre, gate_mode_name(arm_mode[ai]));
        distill_progress pr = {.prefix = prefix};
        distill_result r;
        if (distill_checkpoint(ck.path, a->tc.data_path, &dc, x->windows, threads, out,
                               on_distill_progress, &pr, dc.steps >= 3 ? dc.steps / 3 : 1, &r, e))
            return -1;
        print_distill(prefix, &r);
        int64_t arm = store_next_arm(x->st, s->session, e);
        distill_record d = {.source_run = s->run[ai], .source_name = gate_mode_name(arm_mode[ai]),
                            .source_ckpt = ck.path, .out_ckpt = out,
                            .data_path = a->tc.data_path, .eval_windows = x->windows,
                            .cfg = &dc, .res = &r};
        int64_t run = arm < 0 ? -1 : store_distillation(x->st, s->session, arm, &d, e);
        char label[40];
        snprintf(label, sizeof label, "distill:%s", gate_mode_name(arm_mode[ai]));
        if (run < 0 || (x->experiment && store_experiment_link(x->st, x->experiment, run,
                                                               s->seed, "distill", label, e))) {
            distill_result_free(&r);
            return -1;
        }
        s->dist_run[di] = run;
        s->dist_f1[di] = r.f1;
        s->dist_chance[di] = r.chance;
        s->dist_ppl[di] = r.val_ppl;
        s->dist_source_ppl[di] = r.source_val_ppl;
        s->dist_thr_f1[di] = r.held_out.thr_f1;
        distill_result_free(&r);
    }
    return 0;
}

/* ---- the table ---- */

#define MAX_ROWS 64

typedef struct {
    store_result_row row[MAX_ROWS];
    size_t n;
} table;

static void stats(const double *v, size_t n, double *mean, double *sd)
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

static store_result_row *add_row(table *t, const char *line, const char *quantity,
                                 const char *paper, const char *direction)
{
    GL_ASSERT(t->n < MAX_ROWS);
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

/* a value over seeds: "mean +- sd" (just the mean for one seed) */
static store_result_row *add_stat(table *t, const char *line, const char *quantity,
                                  const double *v, size_t n, int decimals, const char *paper,
                                  const char *direction)
{
    store_result_row *r = add_row(t, line, quantity, paper, direction);
    stats(v, n, &r->value, &r->spread);
    if (isnan(r->spread))
        snprintf(r->gatelab, sizeof r->gatelab, "%.*f", decimals, r->value);
    else
        snprintf(r->gatelab, sizeof r->gatelab, "%.*f +- %.*f", decimals, r->value, decimals,
                 r->spread);
    return r;
}

static const char *yes_no(int cond) { return cond ? "yes" : "no"; }

static void build_table(table *t, const seed_result *s, size_t n)
{
    double v[NARMS][MAX_SEEDS], w[MAX_SEEDS];
    for (size_t a = 0; a < NARMS; a++)
        for (size_t i = 0; i < n; i++)
            v[a][i] = s[i].ppl[a];
    double md, sd_, ms_, mr_;
    stats(v[A_DENSE], n, &md, &sd_);
    stats(v[A_SOFT], n, &ms_, &sd_);
    stats(v[A_RANDOM], n, &mr_, &sd_);

    /* line 1 */
    add_stat(t, "1", "dense: final val ppl", v[A_DENSE], n, 3, "37.3 (line 4)", "n/a");
    add_stat(t, "1", "soft (learned gate): final val ppl", v[A_SOFT], n, 3, "48.73 +- 0.60",
             "n/a");
    add_stat(t, "1", "random (frozen gate): final val ppl", v[A_RANDOM], n, 3, "49.83 +- 0.04",
             "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].ppl[A_RANDOM] - s[i].ppl[A_SOFT];
    store_result_row *r = add_stat(t, "1", "random - soft ppl (> 0: the learned gate helps)", w, n,
                                   3, "1.10", "");
    snprintf(r->same_direction, sizeof r->same_direction, "%s", yes_no(r->value > 0.0));
    r = add_row(t, "1", "routing benefit (R - L) / (R - D) of the means", "0.09", "");
    r->value = (mr_ - ms_) / (mr_ - md);
    snprintf(r->gatelab, sizeof r->gatelab, "%.3f", r->value);
    snprintf(r->same_direction, sizeof r->same_direction, "%s",
             isnan(r->value) ? "n/a" : yes_no(fabs(r->value) < 0.5));
    add_stat(t, "1", "sigmoid (naive gate): final val ppl", v[A_SIGMOID], n, 3, "-", "n/a");

    /* line 2 */
    size_t evals = 0, zero = 1, nonzero = 0;
    double gmax = 0.0, dmax[PROBE_NEPS] = {0.0, 0.0};
    for (size_t i = 0; i < n; i++) {
        evals += s[i].grad_evals;
        zero &= s[i].grad_evals > 0 && s[i].grad_max == 0.0;
        gmax = fmax(gmax, s[i].grad_max);
        nonzero += s[i].probe.grad_nonzero;
        for (size_t k = 0; k < PROBE_NEPS; k++)
            dmax[k] = fmax(dmax[k], s[i].probe.change[k]);
    }
    r = add_row(t, "2", "topk: gate grad norm at every evaluation (max)", "0 (exact)",
                yes_no(zero));
    r->value = gmax;
    snprintf(r->gatelab, sizeof r->gatelab, "%s%g (%zu evals)", zero ? "exactly " : "", gmax,
             evals);
    r = add_row(t, "2", "topk: backprop gate-gradient entries != 0 (probe)", "0",
                yes_no(nonzero == 0));
    r->value = (double)nonzero;
    snprintf(r->gatelab, sizeof r->gatelab, "%zu", nonzero);
    for (size_t k = 0; k < PROBE_NEPS; k++) {
        char q[96];
        snprintf(q, sizeof q, "topk: max abs loss change, gate weights +-%g u",
                 (double)probe_eps[k]);
        r = add_row(t, "2", q, "0 (flat)", yes_no(dmax[k] == 0.0));
        r->value = dmax[k];
        snprintf(r->gatelab, sizeof r->gatelab, "%s%.3g", dmax[k] == 0.0 ? "bit-identical, " : "",
                 dmax[k]);
    }
    for (size_t i = 0; i < n; i++)
        w[i] = fabs(s[i].soft_probe.slope[PROBE_NEPS - 1]);
    char q2[96];
    snprintf(q2, sizeof q2, "soft (control): abs FD slope along u at +-%g",
             (double)probe_eps[PROBE_NEPS - 1]);
    add_stat(t, "2", q2, w, n, 4, "-", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].probe.large_change;
    add_stat(t, "2", "topk: loss change, gate + 0.1 N(0,1) (control)", w, n, 4, "-", "n/a");

    /* line 3 */
    static const char *paper_ppl[NDIST] = {"48.6", "601.6 (co-adapted)", "601.6 (co-adapted)"};
    static const char *paper_ratio[NDIST] = {"1.30 (48.6/37.3)", "12.1 (601.6/49.83)",
                                             "12.3 (601.6/48.73)"};
    double ratio[NDIST][MAX_SEEDS], rmean[NDIST], sd;
    for (size_t di = 0; di < NDIST; di++) {
        for (size_t i = 0; i < n; i++)
            ratio[di][i] = s[i].dist_ppl[di] / s[i].ppl[dist_arm[di]];
        stats(ratio[di], n, &rmean[di], &sd);
    }
    for (size_t di = 0; di < NDIST; di++) {
        const char *m = gate_mode_name(arm_mode[dist_arm[di]]);
        char q[96];
        double c[MAX_SEEDS], cm;
        for (size_t i = 0; i < n; i++) {
            w[i] = s[i].dist_f1[di];
            c[i] = s[i].dist_chance[di];
        }
        stats(c, n, &cm, &sd);
        snprintf(q, sizeof q, "distilled onto %s: F1 vs oracle (chance %.3f)", m, cm);
        r = add_stat(t, "3", q, w, n, 3, di == D_DENSE ? "-" : "high", "n/a");
        if (di != D_DENSE)
            snprintf(r->same_direction, sizeof r->same_direction, "%s",
                     yes_no(r->value >= 2.0 * cm));
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].dist_ppl[di];
        snprintf(q, sizeof q, "distilled onto %s: deployed val ppl", m);
        add_stat(t, "3", q, w, n, 3, paper_ppl[di], "n/a");
        snprintf(q, sizeof q, "distilled onto %s: deployed / trained ppl", m);
        r = add_stat(t, "3", q, ratio[di], n, 3, paper_ratio[di], "n/a");
        if (di != D_DENSE)
            snprintf(r->same_direction, sizeof r->same_direction, "%s",
                     yes_no(r->value > rmean[D_DENSE]));
    }

    /* line 4 */
    add_stat(t, "4", "dense baseline: val ppl", v[A_DENSE], n, 3, "37.3", "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].dense_ppl[A_STOCH];
    add_stat(t, "4", "stochastic arm evaluated dense", w, n, 3, "78.2", "n/a");
    add_stat(t, "4", "stochastic arm with its own stochastic masks", v[A_STOCH], n, 3, "-",
             "n/a");
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].dense_ppl[A_STOCH] / s[i].ppl[A_DENSE];
    r = add_stat(t, "4", "stochastic-evaluated-dense / dense ppl", w, n, 3, "2.10 (78.2/37.3)",
                 "");
    snprintf(r->same_direction, sizeof r->same_direction, "%s", yes_no(r->value > 1.0));

    /* alongside: every gated model without its gate, the sigmoid gate's
     * density, and the oracle's own mass per layer of the dense model */
    static const int gated[] = {A_SOFT, A_RANDOM, A_SIGMOID, A_TOPK};
    for (size_t g = 0; g < sizeof gated / sizeof gated[0]; g++) {
        char q[96];
        double own, sdo;
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].ppl[gated[g]];
        stats(w, n, &own, &sdo);
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].dense_ppl[gated[g]];
        snprintf(q, sizeof q, "%s evaluated dense (as trained %.3f)",
                 gate_mode_name(arm_mode[gated[g]]), own);
        add_stat(t, "+", q, w, n, 3, "-", "n/a");
    }
    for (size_t i = 0; i < n; i++)
        w[i] = s[i].sigmoid_density;
    add_stat(t, "+", "sigmoid gate density (kept / visible)", w, n, 3, "-", "n/a");
    for (size_t l = 0; l < s[0].layers; l++) {
        char q[96];
        for (size_t i = 0; i < n; i++)
            w[i] = s[i].oracle_mass[l];
        snprintf(q, sizeof q, "oracle attention mass kept, layer %zu (dense)", l);
        add_stat(t, "+", q, w, n, 3, l == 0 ? "~0.90 (k=64 of 512)" : "~0.90", "n/a");
    }
}

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

/* `--from N`: reprints a stored experiment (N an experiment or session id) */
static int absorption_from(const absorption_args *a)
{
    gl_error e;
    size_t n;
    if (args_size("--from", a->from, 1, INT64_MAX, &n, &e))
        return usage_error("%s", e.msg);
    store *st = store_open(a->db, STORE_BROWSE, &e);
    if (!st)
        return runtime_error(&e);
    int64_t id = store_experiment_find(st, (int64_t)n, &e);
    store_experiment_row x;
    int rc = id < 0 ? -1 : store_get_experiment(st, id, &x, &e);
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
    return rc ? runtime_error(&e) : 0;
}

static char *config_json_of(const absorption_args *a)
{
    const model_config *m = &a->tc.model;
    const train_config *tc = &a->tc;
    char data[512];
    json_str(data, sizeof data, tc->data_path);
    char *s = xmalloc(2048);
    snprintf(s, 2048,
             "{\"kind\":\"absorption\",\"preset\":\"%s\",\"seeds\":%zu,\"steps\":%zu,"
             "\"distill_steps\":%zu,\"arms\":[\"dense\",\"soft\",\"random\",\"sigmoid\",\"topk\","
             "\"stochastic\"],\"V\":%zu,\"T\":%zu,\"d\":%zu,\"layers\":%zu,\"heads\":%zu,"
             "\"mlp\":%zu,\"r\":%zu,\"batch\":%zu,\"k\":%zu,\"gate_temp\":%.9g,\"lr\":%.9g,"
             "\"gate_lr\":%.9g,\"warmup\":%zu,\"eval_every\":%zu,\"eval_windows\":%zu,"
             "\"threads\":%zu,\"data\":%s%s%s}",
             a->preset, a->seeds, tc->steps, a->distill_steps, m->V, m->T, m->d, m->layers,
             m->heads, m->mlp, m->r, m->batch, m->k, (double)m->gate_temp, (double)tc->optim.lr,
             (double)tc->optim.gate_lr, tc->optim.warmup, tc->eval_every, tc->eval_windows,
             tc->threads, tc->data_path ? "\"" : "", tc->data_path ? data : "null",
             tc->data_path ? "\"" : "");
    return s;
}

static int absorption_run(absorption_args *a, int argc, char **argv)
{
    gl_error e;
    double start = gl_now(), started_ms = gl_wall_ms();
    train_config *tc = &a->tc;
    /* the data is checked before anything is written */
    data_source *data = data_open(tc->data_path, tc->model.T, 1, &e);
    if (!data)
        return runtime_error(&e);
    if (tc->vocab_from_data && data_kind_of(data) == DATA_BIN)
        tc->model.V = data_vocab(data);
    if (data_max_token(data) >= tc->model.V) {
        gl_fail(&e, "%s: token id %u >= vocabulary size V=%zu (use --vocab %u or more)",
                tc->data_path, data_max_token(data), tc->model.V, data_max_token(data) + 1);
        data_close(data);
        return runtime_error(&e);
    }
    store *st = store_open(a->db, STORE_CREATE, &e);
    if (!st) {
        data_close(data);
        return runtime_error(&e);
    }
    const model_config *c = &tc->model;
    size_t windows = data_val_windows(data);
    if (tc->eval_windows && tc->eval_windows < windows)
        windows = tc->eval_windows;
    printf("experiment absorption | preset %s | %zu params | V=%zu T=%zu d=%zu L=%zu H=%zu r=%zu "
           "k=%zu batch %zu | %zu seeds x %zu steps, arms dense soft random sigmoid topk "
           "stochastic | distill %zu updates | %zu threads | data %s | db %s\n",
           c->preset, model_count_params(c), c->V, c->T, c->d, c->layers, c->heads, c->r, c->k,
           c->batch, a->seeds, tc->steps, a->distill_steps, tc->threads, data_describe(data),
           a->db);
    fflush(stdout);
    char *command = join_words("gatelab experiment", argc, argv);
    char *config = config_json_of(a);
    absorption x = {.a = a, .st = st, .data = data, .windows = windows, .command = command};
    seed_result *seeds = xcalloc(a->seeds, sizeof *seeds);
    progress p = {.nseeds = a->seeds, .cap = tc->steps / tc->eval_every + 2};
    p.step = xcalloc(NARMS * p.cap, sizeof *p.step);
    p.ppl = xcalloc(NARMS * p.cap, sizeof *p.ppl);
    p.tok = xcalloc(NARMS * p.cap, sizeof *p.tok);
    int status = 0, rc = 0;
    for (size_t si = 0; si < a->seeds && !rc; si++) {
        seed_result *s = &seeds[si];
        s->seed = si + 1;
        /* the arms' own arguments, so `gatelab resume RUN` can rebuild each */
        char seed_word[24], every_word[24], steps_word[24];
        snprintf(seed_word, sizeof seed_word, "%llu", (unsigned long long)s->seed);
        snprintf(every_word, sizeof every_word, "%zu", tc->eval_every);
        snprintf(steps_word, sizeof steps_word, "%zu", tc->steps);
        char *run_argv[sizeof a->pass / sizeof a->pass[0]];
        int run_argc = 0;
        for (int i = 0; i < a->npass; i++)
            run_argv[run_argc++] = a->pass[i];
        char *tail[] = {"--seed", seed_word, "--eval-every", every_word, "--save-every", "0",
                        "--steps", steps_word};
        for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
            run_argv[run_argc++] = tail[i];
        char session_cmd[1024];
        snprintf(session_cmd, sizeof session_cmd, "%.900s (seed %llu of %zu)", command,
                 (unsigned long long)s->seed, a->seeds);
        live_config lc = {.tc = *tc, .narms = NARMS, .db_path = a->db, .telemetry = 1,
                          .command_line = session_cmd, .run_argv = run_argv,
                          .run_argc = run_argc};
        lc.tc.model.seed = s->seed;
        memcpy(lc.modes, arm_mode, sizeof arm_mode);
        memset(p.got, 0, sizeof p.got);
        memset(p.done, 0, sizeof p.done);
        p.printed = 0;
        p.seed = si + 1;
        live_observer obs = {.on_record = on_record, .ctx = &p};
        live_result res;
        printf("seed %zu/%zu: training %d arms for %zu steps\n", si + 1, a->seeds, NARMS,
               tc->steps);
        fflush(stdout);
        if (live_run(&lc, &obs, &res, &e)) {
            rc = -1;
            break;
        }
        s->session = res.session;
        if (res.signal) {
            status = 128 + res.signal;
            gl_fail(&e, "%s: training stopped; the runs are stored as stopped",
                    res.signal == SIGINT ? "SIGINT" : "SIGTERM");
            rc = -1;
            break;
        }
        if (si == 0) {
            /* the experiment takes the id of its first session */
            if (store_experiment_begin(st, s->session, "absorption", command, config,
                                       started_ms, &e)) {
                rc = -1;
                break;
            }
            x.experiment = s->session;
        }
        printf("seed %zu/%zu: session %lld trained; measuring\n", si + 1, a->seeds,
               (long long)s->session);
        fflush(stdout);
        if (measure_seed(&x, s, &e))
            rc = -1;
    }
    if (!rc) {
        table t = {.n = 0};
        build_table(&t, seeds, a->seeds);
        double wall = gl_now() - start;
        printf("\nexperiment %lld: routing absorption, %zu seed%s, %zu steps, preset %s "
               "(wall %.0f s)\n\n",
               (long long)x.experiment, a->seeds, a->seeds > 1 ? "s" : "", tc->steps, a->preset,
               wall);
        print_header();
        for (size_t i = 0; i < t.n; i++)
            print_row(&t.row[i]);
        for (size_t i = 0; i < t.n && !rc; i++)
            rc = store_experiment_result(st, x.experiment, &t.row[i], &e);
        if (!rc)
            rc = store_experiment_end(st, x.experiment, "finished", wall, &e);
        if (!rc)
            printf("\nstored as experiment %lld in %s; reprint: gatelab experiment absorption "
                   "--from %lld --db %s\n",
                   (long long)x.experiment, a->db, (long long)x.experiment, a->db);
    } else if (x.experiment) {
        gl_error ignore;
        store_experiment_end(st, x.experiment, "failed", gl_now() - start, &ignore);
    }
    if (rc && !status)
        status = EXIT_RUNTIME;
    if (rc)
        fprintf(stderr, "gatelab: %s\n", e.msg);
    free(p.step);
    free(p.ppl);
    free(p.tok);
    free(seeds);
    free(command);
    free(config);
    store_close(st);
    data_close(data);
    return status;
}

int experiment_main(int argc, char **argv)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(experiment_usage, stdout);
        return 0;
    }
    if (argc < 1)
        return usage_error("experiment: missing kind (gatelab experiment absorption [OPTIONS])");
    if (strcmp(argv[0], "moe") == 0)
        return usage_error("experiment moe: not built (the MoE FFN of DESIGN §7.5 does not exist "
                           "yet); available: absorption");
    if (strcmp(argv[0], "absorption") != 0)
        return usage_error("experiment %s: unknown experiment (absorption)", argv[0]);
    static absorption_args a;
    gl_error e;
    if (parse_absorption(argc - 1, argv + 1, &a, &e))
        return usage_error("%s", e.msg);
    if (a.from)
        return absorption_from(&a);
    return absorption_run(&a, argc, argv);
}
