/* cli_eval: `gatelab eval RUN|CKPT` — a stored run's or a file's checkpoint
 * evaluated on a data file or the generator's val split, one line out. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "evaluate.h"
#include "progress.h"
#include "runspec.h"
#include "experiment.h"

/* ---- eval ---- */

int cli_open_checkpoint(const char *path, st_file *f, checkpoint_info *info, gl_error *e)
{
    if (st_read(path, f, e))
        return -1;
    if (checkpoint_info_read(f, path, info, e)) {
        st_free(f);
        return -1;
    }
    return 0;
}

/* The run's own --data from its stored argv (NULL: the generator). */
static int run_data_path(const char *db, int64_t run, char *out, size_t n, int *has,
                         gl_error *e)
{
    *has = 0;
    store *st = store_open(db, STORE_BROWSE, e);
    if (!st)
        return -1;
    store_run_row row;
    char **av = NULL;
    int ac = 0;
    int rc = store_get_run(st, run, &row, e);
    if (!rc) {
        rc = store_json_argv(row.config_json ? row.config_json : "{}", &av, &ac, e);
        store_run_row_free(&row);
    }
    store_close(st);
    for (int i = 0; !rc && i + 1 < ac; i++)
        if (strcmp(av[i], "--data") == 0) {
            snprintf(out, n, "%s", av[i + 1]);
            *has = 1;
        }
    for (int i = 0; i < ac; i++)
        free(av[i]);
    free(av);
    return rc;
}

/* `gatelab eval RUN|CKPT [--step N] [--db PATH] [--data FILE|generator]
 * [--gate MODE] [--k K] [--threads N]`: a file is read whole, in windows of
 * T+1; `generator` (and a run stored without --data, when --data is left
 * out) is the embedded generator's val split, the windows every run's
 * evaluations use. */
int cli_eval(int argc, char **argv)
{
    const char *src = NULL, *data = NULL, *gate = NULL, *db = "sessions/gatelab.db";
    const char *step_word = NULL;
    size_t k = 0, threads = args_default_threads();
    gl_error e;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(f, "--data") == 0 || strcmp(f, "--gate") == 0 || strcmp(f, "--db") == 0 ||
            strcmp(f, "--step") == 0) {
            if (!v || !*v)
                return cli_usage_error("%s: missing value", f);
            *(f[2] == 'd' ? (f[3] == 'a' ? &data : &db) : f[2] == 'g' ? &gate : &step_word) = v;
            i++;
        } else if (strcmp(f, "--k") == 0 || strcmp(f, "--threads") == 0) {
            /* the run-spec rows' ranges, as run takes them */
            if (runspec_parse_into(runspec_find_flag(f), v, f[2] == 'k' ? &k : &threads, &e))
                return cli_usage_error("%s", e.msg);
            i++;
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for eval", f);
        } else if (!src) {
            src = f;
        } else {
            return cli_usage_error("eval: unexpected argument '%s'", f);
        }
    }
    if (!src)
        return cli_usage_error("eval: missing RUN or checkpoint (gatelab eval RUN|CKPT "
                               "[--data FILE|generator])");
    gate_mode mode = GATE_DENSE;
    if (gate && gate_mode_parse(gate, &mode))
        return cli_usage_error("--gate %s: unknown gate mode (%s)", gate, gate_mode_list());
    char ckpt[4096], run_data[4096];
    int64_t run;
    int rc = cli_resolve_checkpoint("eval", src, step_word, db, ckpt, sizeof ckpt, &run);
    if (rc)
        return rc;
    if (!data && !run)
        return cli_usage_error("eval: missing --data FILE (or --data generator: the embedded "
                               "generator's val split)");
    if (!data) {
        int has;
        if (run_data_path(db, run, run_data, sizeof run_data, &has, &e))
            return cli_runtime_error(&e);
        data = has ? run_data : "generator";
    }
    int generator = strcmp(data, "generator") == 0;

    st_file f;
    checkpoint_info info;
    if (cli_open_checkpoint(ckpt, &f, &info, &e))
        return cli_runtime_error(&e);
    model_config mc = info.model;
    if (gate)
        mc.mode = mode;
    if (k > mc.T) {
        st_free(&f);
        return cli_usage_error("--k %zu: must be at most the context length %zu of %s", k, mc.T,
                               ckpt);
    }
    if (k)
        mc.k = k;
    int32_t *tokens = NULL;
    size_t count = 0;
    data_source *gen = NULL;
    model m;
    if (generator) {
        if (!(gen = data_open(NULL, mc.T, mc.seed, &e)))
            goto fail;
        if (data_vocab(gen) > mc.V) {
            gl_fail(&e, "--data generator: its %zu token ids do not fit the vocabulary V=%zu "
                        "of %s", data_vocab(gen), mc.V, ckpt);
            goto fail;
        }
    } else {
        if (data_load_tokens(data, &tokens, &count, &e))
            goto fail;
        for (size_t i = 0; i < count; i++)
            if ((size_t)tokens[i] >= mc.V) {
                gl_fail(&e, "%s: token id %d at position %zu >= vocabulary size V=%zu of %s",
                        data, tokens[i], i, mc.V, ckpt);
                goto fail;
            }
        if (count < mc.T + 1) {
            gl_fail(&e, "%s: %zu tokens, need at least T+1 = %zu for one window", data, count,
                    mc.T + 1);
            goto fail;
        }
    }

    if (model_init(&m, &mc, threads, &e))
        goto fail;
    if (checkpoint_load_weights(&f, ckpt, &m, &e)) {
        model_free(&m);
        goto fail;
    }
    /* the generator's val split (added per window, as distill and the
     * experiments do), or a file's windows w = tokens w*T .. w*T+T */
    const evaluate_spec spec = {
        .data = gen, .tokens = tokens,
        .windows = gen ? data_val_windows(gen) : (count - 1) / mc.T,
        .weight = gen ? EVALUATE_PER_WINDOW : EVALUATE_PER_TOKEN};
    const double loss = evaluate_windows(&m, &spec);
    const size_t ntok = spec.windows * mc.T;
    if (run)
        printf("run %lld step %zu (%s) on %s: ", (long long)run, info.step,
               gate_mode_name(mc.mode), generator ? "generator val split" : data);
    printf("loss %.6f ppl %.4f tokens %zu\n", loss, exp(loss), ntok);
    model_free(&m);
    data_close(gen);
    free(tokens);
    st_free(&f);
    return 0;
fail:
    data_close(gen);
    free(tokens);
    st_free(&f);
    return cli_runtime_error(&e);
}

/* The command of argv[1] (run when it is absent or an option), its words
 * already split by cli_main. */
