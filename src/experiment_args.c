/* experiment_args: the command line shared by every `gatelab experiment`
 * kind: the preset, seeds and database, the run options handed on to every
 * seed's arms (so that `gatelab resume` can rebuild each arm), and the few
 * options that belong to one kind (--distill-steps for absorption, --experts
 * and --moe-aux for moe). */
#include <stdint.h>
#include <string.h>

#include "args.h"
#include "experiment.h"
#include "model.h"
#include "optim.h"

int experiment_parse(const char *kind, int argc, char **argv, experiment_args *a, gl_error *e)
{
    memset(a, 0, sizeof *a);
    a->kind = kind;
    const int moe = strcmp(kind, "moe") == 0;
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
    a->db = EXPERIMENT_DEFAULT_DB;
    a->seeds = 3;
    a->distill_steps = 300;
    a->experts = 4;
    int k_set = 0, gate_lr_set = 0, mlp_set = 0, warmup_set = 0, every_set = 0;
    size_t vocab = 0;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, pass = 1;
        if (strcmp(f, "--preset") == 0) {
            if (!v)
                return gl_fail(e, "--preset: missing value");
        } else if (strcmp(f, "--seeds") == 0) {
            rc = args_size(f, v, 1, EXPERIMENT_MAX_SEEDS, &a->seeds, e);
            pass = 0;
        } else if (strcmp(f, "--distill-steps") == 0 && !moe) {
            rc = args_size(f, v, 1, 10000000, &a->distill_steps, e);
            pass = 0;
        } else if (strcmp(f, "--experts") == 0 && moe) {
            rc = args_size(f, v, 2, 64, &a->experts, e);
        } else if (strcmp(f, "--moe-aux") == 0 && moe) {
            rc = args_float(f, v, 0.0, 10.0, &mc->moe_aux, e);
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
            return gl_fail(e, "%s: unknown option for experiment %s", f, kind);
        } else {
            return gl_fail(e, "experiment %s: unexpected argument '%s'", kind, f);
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

