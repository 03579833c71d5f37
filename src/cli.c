/* cli: argument parsing and the headless commands: run, eval, export.
 * Every bad input gets one line on stderr naming the input and the problem,
 * and a non-zero exit. */
#include "cli.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "data.h"
#include "gate.h"
#include "model.h"
#include "safetensors.h"
#include "trainer.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: gatelab [COMMAND] [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  run      train one arm headless, print progress and a summary (default)\n"
    "  eval     gatelab eval CKPT --data FILE [--gate MODE] [--k K]\n"
    "  export   gatelab export CKPT --out FILE.safetensors   (weights only)\n"
    "\n"
    "run options:\n"
    "  --arms MODE          gate mode: dense soft random sigmoid topk topk-random\n"
    "                       stochastic oracle (default soft)\n"
    "  --preset NAME        tiny | small | paper (default tiny)\n"
    "  --data PATH          text file, directory of text files, or llm.c .bin tokens\n"
    "                       (default: the embedded generator)\n"
    "  --steps N            training steps (default 2000)\n"
    "  --seed S             seed for weights, data order and gates (default 1)\n"
    "  --k K                keys kept per query (default T/8)\n"
    "  --gate-temp T        soft top-k temperature (default 0.25)\n"
    "  --lr X  --gate-lr X  learning rates (default 3e-3; gate lr defaults to lr)\n"
    "  --warmup N           warm-up steps (default 100)\n"
    "  --weight-decay X     AdamW decay on matrices and embeddings (default 0.1)\n"
    "  --clip X             global grad-norm clip, 0 to disable (default 1.0)\n"
    "  --batch N --ctx T --dim D --layers L --heads H --mlp M --gate-rank R --vocab V\n"
    "                       override preset fields (a .bin file sets V unless --vocab)\n"
    "  --eval-every N       steps between val evaluations (default 100)\n"
    "  --eval-windows N     val windows per evaluation, 0 = all (default 64)\n"
    "  --save-every N       steps between checkpoints (default 0: at the end)\n"
    "  --out DIR            write checkpoints to DIR (default: none)\n"
    "  --threads N          worker threads (default: cores)\n"
    "  --headless           print progress lines (the only mode so far)\n"
    "\n"
    "  gatelab --help | --version\n";

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

/* ---- number parsing: the whole word must be a number in range ---- */

static int parse_size(const char *flag, const char *s, size_t lo, size_t hi, size_t *out,
                      gl_error *e)
{
    if (!s)
        return gl_fail(e, "%s: missing value", flag);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '-' || *s == '+' || end == s || *end)
        return gl_fail(e, "%s %s: not a whole number", flag, s);
    if (errno == ERANGE)
        return gl_fail(e, "%s %s: out of range (at most %zu)", flag, s, hi);
    if (v < lo || v > hi)
        return gl_fail(e, "%s %s: must be between %zu and %zu", flag, s, lo, hi);
    *out = (size_t)v;
    return 0;
}

static int parse_float(const char *flag, const char *s, double lo, double hi, float *out,
                       gl_error *e)
{
    if (!s)
        return gl_fail(e, "%s: missing value", flag);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return gl_fail(e, "%s %s: not a number", flag, s);
    if (v < lo || v > hi)
        return gl_fail(e, "%s %s: must be between %g and %g", flag, s, lo, hi);
    *out = (float)v;
    return 0;
}

static size_t default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* ---- run ---- */

typedef struct {
    train_config tc;
    const char *preset;
    int k_set, gate_lr_set, mlp_set, warmup_set;
} run_args;

static int parse_run(int argc, char **argv, run_args *ra, gl_error *e)
{
    /* the preset decides defaults, so find it first */
    ra->preset = "tiny";
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--preset") == 0) {
            if (i + 1 >= argc)
                return gl_fail(e, "--preset: missing value");
            ra->preset = argv[i + 1];
        }
    train_config *tc = &ra->tc;
    memset(tc, 0, sizeof *tc);
    if (model_preset(ra->preset, &tc->model))
        return gl_fail(e, "--preset %s: unknown preset (tiny, small, paper)", ra->preset);
    optim_default_config(&tc->optim);
    tc->steps = 2000;
    tc->eval_every = 100;
    tc->eval_windows = 64;
    tc->threads = default_threads();
    model_config *mc = &tc->model;
    size_t vocab = 0;

    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, takes = 1;
        if (strcmp(f, "--preset") == 0) {
            /* handled above */
        } else if (strcmp(f, "--arms") == 0) {
            if (!v)
                return gl_fail(e, "--arms: missing value");
            if (strchr(v, ','))
                return gl_fail(e, "--arms %s: several arms side by side are not built yet; "
                                  "give one mode", v);
            if (gate_mode_parse(v, &mc->mode) || mc->mode == GATE_DISTILLED)
                return gl_fail(e, "--arms %s: unknown gate mode (dense, soft, random, sigmoid, "
                                  "topk, topk-random, stochastic, oracle)", v);
        } else if (strcmp(f, "--data") == 0) {
            if (!v)
                return gl_fail(e, "--data: missing value");
            tc->data_path = v;
        } else if (strcmp(f, "--out") == 0) {
            if (!v)
                return gl_fail(e, "--out: missing value");
            tc->out_dir = v;
        } else if (strcmp(f, "--steps") == 0) {
            rc = parse_size(f, v, 1, 100000000, &tc->steps, e);
        } else if (strcmp(f, "--seed") == 0) {
            size_t s;
            rc = parse_size(f, v, 0, SIZE_MAX, &s, e);
            mc->seed = s;
        } else if (strcmp(f, "--k") == 0) {
            rc = parse_size(f, v, 1, 4096, &mc->k, e);
            ra->k_set = 1;
        } else if (strcmp(f, "--gate-temp") == 0) {
            rc = parse_float(f, v, 1e-4, 100.0, &mc->gate_temp, e);
        } else if (strcmp(f, "--lr") == 0) {
            rc = parse_float(f, v, 0.0, 10.0, &tc->optim.lr, e);
        } else if (strcmp(f, "--gate-lr") == 0) {
            rc = parse_float(f, v, 0.0, 10.0, &tc->optim.gate_lr, e);
            ra->gate_lr_set = 1;
        } else if (strcmp(f, "--warmup") == 0) {
            rc = parse_size(f, v, 0, 100000000, &tc->optim.warmup, e);
            ra->warmup_set = 1;
        } else if (strcmp(f, "--weight-decay") == 0) {
            rc = parse_float(f, v, 0.0, 10.0, &tc->optim.weight_decay, e);
        } else if (strcmp(f, "--clip") == 0) {
            rc = parse_float(f, v, 0.0, 1e6, &tc->optim.clip, e);
        } else if (strcmp(f, "--batch") == 0) {
            rc = parse_size(f, v, 1, 4096, &mc->batch, e);
        } else if (strcmp(f, "--ctx") == 0) {
            rc = parse_size(f, v, 2, 4096, &mc->T, e);
        } else if (strcmp(f, "--dim") == 0) {
            rc = parse_size(f, v, 1, 8192, &mc->d, e);
        } else if (strcmp(f, "--layers") == 0) {
            rc = parse_size(f, v, 1, 64, &mc->layers, e);
        } else if (strcmp(f, "--heads") == 0) {
            rc = parse_size(f, v, 1, 64, &mc->heads, e);
        } else if (strcmp(f, "--mlp") == 0) {
            rc = parse_size(f, v, 1, 65536, &mc->mlp, e);
            ra->mlp_set = 1;
        } else if (strcmp(f, "--gate-rank") == 0) {
            rc = parse_size(f, v, 1, 1024, &mc->r, e);
        } else if (strcmp(f, "--vocab") == 0) {
            rc = parse_size(f, v, 2, 1u << 20, &vocab, e);
        } else if (strcmp(f, "--eval-every") == 0) {
            rc = parse_size(f, v, 0, 100000000, &tc->eval_every, e);
        } else if (strcmp(f, "--eval-windows") == 0) {
            rc = parse_size(f, v, 0, 1000000, &tc->eval_windows, e);
        } else if (strcmp(f, "--save-every") == 0) {
            rc = parse_size(f, v, 0, 100000000, &tc->save_every, e);
        } else if (strcmp(f, "--threads") == 0) {
            rc = parse_size(f, v, 1, 256, &tc->threads, e);
        } else if (strcmp(f, "--headless") == 0) {
            takes = 0;
        } else if (f[0] == '-') {
            return gl_fail(e, "%s: unknown option (see gatelab --help)", f);
        } else {
            return gl_fail(e, "run: unexpected argument '%s' (see gatelab --help)", f);
        }
        if (rc)
            return -1;
        i += takes;
    }
    if (!ra->gate_lr_set)
        tc->optim.gate_lr = tc->optim.lr;
    if (!ra->k_set)
        mc->k = mc->T / 8 ? mc->T / 8 : 1;
    if (!ra->mlp_set)
        mc->mlp = 4 * mc->d;
    if (vocab)
        mc->V = vocab;
    tc->vocab_from_data = vocab == 0;
    /* the default warm-up would swallow a short run; an explicit one is kept */
    if (!ra->warmup_set && tc->optim.warmup >= tc->steps)
        tc->optim.warmup = tc->steps / 10;
    return model_config_check(mc, e);
}

static int ensure_dir(const char *dir, gl_error *e)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : gl_fail(e, "--out %s: not a directory", dir);
    if (mkdir(dir, 0777) != 0)
        return gl_fail(e, "--out %s: cannot create: %s", dir, strerror(errno));
    return 0;
}

static void print_eval_line(const trainer *t, double tok_s)
{
    const eval_result *ev = &t->last_eval;
    const model_config *c = &t->m.cfg;
    double f1 = 0.0, mass = 0.0, omass = 0.0;
    size_t nf = 0;
    for (size_t l = 0; l < c->layers; l++) {
        double v = metrics_layer_value(&t->metrics, l, METRIC_F1);
        if (!isnan(v)) {
            f1 += v;
            mass += metrics_layer_value(&t->metrics, l, METRIC_MASS_KEPT);
            nf++;
        }
        omass += metrics_layer_value(&t->metrics, l, METRIC_ORACLE_MASS);
    }
    printf("step %6zu | train %.4f | val %.4f ppl %8.3f", t->step, t->last_loss, ev->loss,
           ev->ppl);
    if (!isnan(ev->bits_per_byte))
        printf(" bpb %.3f", ev->bits_per_byte);
    if (nf)
        printf(" | f1 %.3f mass %.3f", f1 / (double)nf, mass / (double)nf);
    printf(" | oracle mass %.3f | gate grad %.3g | %.0f tok/s\n", omass / (double)c->layers,
           t->gate_grad_norm, tok_s);
    fflush(stdout);
}

static void print_layer_table(const trainer *t)
{
    const model_config *c = &t->m.cfg;
    printf("per layer (mean over heads, first val batch):\n");
    printf("  layer      f1  chance  mass_kept  oracle_mass  density  entropy  flip  gate_grad\n");
    for (size_t l = 0; l < c->layers; l++) {
        double gg = 0.0;
        for (size_t h = 0; h < c->heads; h++)
            gg += t->metrics.grad_norm[l * c->heads + h] * t->metrics.grad_norm[l * c->heads + h];
        printf("  %5zu  %6.3f  %6.3f  %9.3f  %11.3f  %7.3f  %7.3f  %5.3f  %9.3g\n", l,
               metrics_layer_value(&t->metrics, l, METRIC_F1),
               metrics_layer_value(&t->metrics, l, METRIC_CHANCE),
               metrics_layer_value(&t->metrics, l, METRIC_MASS_KEPT),
               metrics_layer_value(&t->metrics, l, METRIC_ORACLE_MASS),
               metrics_layer_value(&t->metrics, l, METRIC_DENSITY),
               metrics_layer_value(&t->metrics, l, METRIC_ENTROPY),
               metrics_layer_value(&t->metrics, l, METRIC_FLIP_RATE), sqrt(gg));
    }
}

static int save_checkpoint(trainer *t, const char *dir, gl_error *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/step%06zu.safetensors", dir, t->step);
    if (trainer_save(t, path, e))
        return -1;
    printf("checkpoint %s\n", path);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    run_args ra;
    gl_error e;
    if (parse_run(argc, argv, &ra, &e))
        return usage_error("%s", e.msg);
    train_config *tc = &ra.tc;
    if (tc->out_dir && ensure_dir(tc->out_dir, &e))
        return runtime_error(&e);
    trainer t;
    if (trainer_init(&t, tc, &e))
        return runtime_error(&e);
    const model_config *c = &t.m.cfg;
    printf("gatelab %s | arm %s | preset %s | %zu params | V=%zu T=%zu d=%zu L=%zu H=%zu r=%zu "
           "k=%zu | batch %zu | %zu threads\n",
           GL_VERSION, gate_mode_name(c->mode), c->preset, t.m.num_params, c->V, c->T, c->d,
           c->layers, c->heads, c->r, c->k, c->batch, pool_threads(t.m.pool));
    printf("data %s | unigram entropy %.4f nats/token | val %zu windows\n",
           data_describe(t.data), data_unigram_entropy(t.data), data_val_windows(t.data));
    fflush(stdout);

    int status = 0;
    double best = INFINITY;
    size_t best_step = 0, tokens_at_last = 0;
    double time_at_last = 0.0;
    eval_result ev;
    for (size_t s = 0; s < tc->steps; s++) {
        if (trainer_step(&t)) {
            fprintf(stderr, "gatelab: arm %s diverged at step %zu (loss %g)\n",
                    gate_mode_name(c->mode), t.step + 1, t.last_loss);
            status = EXIT_RUNTIME;
            break;
        }
        int last = t.step == tc->steps;
        if ((tc->eval_every && t.step % tc->eval_every == 0) || last) {
            trainer_eval(&t, &ev);
            if (ev.loss < best) {
                best = ev.loss;
                best_step = t.step;
            }
            double dt = t.train_seconds - time_at_last;
            double tok_s = dt > 0 ? (double)(t.tokens_trained - tokens_at_last) / dt : 0.0;
            tokens_at_last = t.tokens_trained;
            time_at_last = t.train_seconds;
            print_eval_line(&t, tok_s);
        }
        if (tc->out_dir && ((tc->save_every && t.step % tc->save_every == 0) || last) &&
            save_checkpoint(&t, tc->out_dir, &e)) {
            status = runtime_error(&e);
            break;
        }
    }
    if (t.step > 0 && !t.diverged) {
        print_layer_table(&t);
        printf("summary: arm %s | %zu steps | final val %.4f ppl %.3f | best val %.4f at step "
               "%zu | %.0f tok/s | %.1f s training\n",
               gate_mode_name(c->mode), t.step, t.last_eval.loss, t.last_eval.ppl, best,
               best_step, t.train_seconds > 0 ? (double)t.tokens_trained / t.train_seconds : 0.0,
               t.train_seconds);
    }
    trainer_free(&t);
    return status;
}

/* ---- eval ---- */

static int open_checkpoint(const char *path, st_file *f, checkpoint_info *info, gl_error *e)
{
    if (st_read(path, f, e))
        return -1;
    if (checkpoint_info_read(f, path, info, e)) {
        st_free(f);
        return -1;
    }
    return 0;
}

static int cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *data = NULL, *gate = NULL;
    size_t k = 0, threads = default_threads();
    gl_error e;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(f, "--data") == 0 || strcmp(f, "--gate") == 0) {
            if (!v)
                return usage_error("%s: missing value", f);
            *(f[2] == 'd' ? &data : &gate) = v;
            i++;
        } else if (strcmp(f, "--k") == 0 || strcmp(f, "--threads") == 0) {
            if (parse_size(f, v, 1, f[2] == 'k' ? 4096 : 256, f[2] == 'k' ? &k : &threads, &e))
                return usage_error("%s", e.msg);
            i++;
        } else if (f[0] == '-') {
            return usage_error("%s: unknown option for eval", f);
        } else if (!ckpt) {
            ckpt = f;
        } else {
            return usage_error("eval: unexpected argument '%s'", f);
        }
    }
    if (!ckpt)
        return usage_error("eval: missing checkpoint (gatelab eval CKPT --data FILE)");
    if (!data)
        return usage_error("eval: missing --data FILE");
    gate_mode mode = GATE_DENSE;
    if (gate && gate_mode_parse(gate, &mode))
        return usage_error("--gate %s: unknown gate mode (%s)", gate, gate_mode_list());

    st_file f;
    checkpoint_info info;
    if (open_checkpoint(ckpt, &f, &info, &e))
        return runtime_error(&e);
    model_config mc = info.model;
    if (gate)
        mc.mode = mode;
    if (k)
        mc.k = k;
    int32_t *tokens = NULL;
    size_t count = 0;
    model m;
    if (data_load_tokens(data, &tokens, &count, &e)) {
        st_free(&f);
        return runtime_error(&e);
    }
    for (size_t i = 0; i < count; i++)
        if ((size_t)tokens[i] >= mc.V) {
            gl_fail(&e, "%s: token id %d at position %zu >= vocabulary size V=%zu of %s", data,
                    tokens[i], i, mc.V, ckpt);
            goto fail;
        }
    if (count < mc.T + 1) {
        gl_fail(&e, "%s: %zu tokens, need at least T+1 = %zu for one window", data, count,
                mc.T + 1);
        goto fail;
    }
    if (k && k > mc.T) {
        gl_fail(&e, "--k %zu: must be at most the context length %zu", k, mc.T);
        goto fail;
    }
    if (model_init(&m, &mc, threads, &e))
        goto fail;
    if (checkpoint_load_weights(&f, ckpt, &m, &e)) {
        model_free(&m);
        goto fail;
    }
    /* window w = tokens w*T .. w*T+T: inputs its first T, targets its last T */
    const size_t T = mc.T, B = mc.batch, windows = (count - 1) / T;
    int32_t *in = xmalloc(B * T * sizeof *in), *tg = xmalloc(B * T * sizeof *tg);
    double total = 0.0;
    m.step_salt = 0xe7a1e7a1e7a1ULL;
    for (size_t w0 = 0; w0 < windows; w0 += B) {
        size_t nb = windows - w0 < B ? windows - w0 : B;
        for (size_t b = 0; b < nb; b++) {
            memcpy(in + b * T, tokens + (w0 + b) * T, T * sizeof(int32_t));
            memcpy(tg + b * T, tokens + (w0 + b) * T + 1, T * sizeof(int32_t));
        }
        total += model_forward(&m, in, tg, nb) * (double)(nb * T);
    }
    double loss = total / (double)(windows * T);
    printf("loss %.6f ppl %.4f tokens %zu\n", loss, exp(loss), windows * T);
    free(in);
    free(tg);
    model_free(&m);
    free(tokens);
    st_free(&f);
    return 0;
fail:
    free(tokens);
    st_free(&f);
    return runtime_error(&e);
}

/* ---- export ---- */

static int cmd_export(int argc, char **argv)
{
    const char *src = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc)
                return usage_error("--out: missing value");
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            return usage_error("%s: unknown option for export", argv[i]);
        } else if (!src) {
            src = argv[i];
        } else {
            return usage_error("export: unexpected argument '%s'", argv[i]);
        }
    }
    if (!src)
        return usage_error("export: missing checkpoint (gatelab export CKPT --out FILE)");
    if (!out)
        return usage_error("export: missing --out FILE.safetensors");
    gl_error e;
    st_file f;
    checkpoint_info info;
    if (open_checkpoint(src, &f, &info, &e))
        return runtime_error(&e);
    model m;
    model_config mc = info.model;
    size_t ntensors = 0;
    int rc = model_init(&m, &mc, 1, &e);
    if (!rc) {
        rc = checkpoint_load_weights(&f, src, &m, &e);
        if (!rc)
            rc = checkpoint_save(out, &m, NULL, info.step, info.data, NULL, &e);
        ntensors = m.ntensors;
        model_free(&m);
    }
    st_free(&f);
    if (rc)
        return runtime_error(&e);
    printf("exported %s step %zu (%s, %zu tensors) to %s\n", src, info.step,
           gate_mode_name(mc.mode), ntensors, out);
    return 0;
}

int cli_main(int argc, char **argv)
{
    /* parallelism comes from each model's pool; OpenBLAS threads would
     * compete with it for the same cores */
    openblas_set_num_threads(1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("gatelab %s\n", GL_VERSION);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-')
        return cmd_run(argc - 1, argv + 1);
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0)
        return cmd_export(argc - 2, argv + 2);
    return usage_error("%s: unknown command (run, eval, export; see gatelab --help)", cmd);
}
