/* experiment_args: the command line shared by every `gatelab experiment`
 * kind: the preset, seeds and database, the run options handed on to every
 * seed's arms (so that `gatelab resume` can rebuild each arm; args.c parses
 * them, as for `run`), and the few options that belong to one kind
 * (--distill-steps for absorption, --experts and --moe-aux for moe). */
#include "experiment_args.h"

#include <stdint.h>
#include <string.h>

#include "args.h"
#include "model.h"
#include "optim.h"
#include "runspec.h"

/* --temps T,T,...: each in the run-spec row's range of --gate-temp, no
 * repeats (a table row per temperature) */
static int parse_temps(const char *v, experiment_args *a, gl_error *e)
{
    if (!v || !*v)
        return gl_fail(e, "--temps: missing value (e.g. 2,1,0.5,0.25,0.1,0.05)");
    const runspec_row *row = runspec_find_flag("--gate-temp");
    a->ntemps = 0;
    const char *p = v;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char word[32];
        if (len == 0 || len >= sizeof word)
            return gl_fail(e, "--temps %s: an empty or too long temperature", v);
        memcpy(word, p, len);
        word[len] = '\0';
        if (a->ntemps == EXPERIMENT_MAX_TEMPS)
            return gl_fail(e, "--temps %s: at most %d temperatures", v, EXPERIMENT_MAX_TEMPS);
        float t;
        gl_error why;
        if (runspec_parse_into(row, word, &t, &why))
            return gl_fail(e, "--temps %s: %s", v, why.msg);
        for (size_t i = 0; i < a->ntemps; i++)
            if (a->temps[i] == t)
                return gl_fail(e, "--temps %s: %s given twice", v, word);
        a->temps[a->ntemps++] = t;
        if (!end)
            return 0;
        p = end + 1;
    }
}

int experiment_args_parse(const char *kind, int argc, char **argv, experiment_args *a, gl_error *e)
{
    memset(a, 0, sizeof *a);
    a->kind = kind;
    const int moe = strcmp(kind, "moe") == 0;
    const int temperature = strcmp(kind, "temperature") == 0;
    train_config *tc = &a->tc;
    model_config *mc = &tc->model;
    if (args_preset_defaults(argc, argv, &a->preset, tc, e))
        return -1;
    tc->steps = 1000;       /* an experiment trains seeds x arms runs: shorter */
    tc->threads = args_default_threads();
    a->db = EXPERIMENT_DEFAULT_DB;
    a->seeds = 3;
    a->distill_steps = 300;
    a->experts = 4;
    static const float default_temps[] = {2.0f, 1.0f, 0.5f, 0.25f, 0.1f, 0.05f};
    a->ntemps = sizeof default_temps / sizeof default_temps[0];
    memcpy(a->temps, default_temps, sizeof default_temps);
    args_set set = {.eval_every_min = 1, .data_nonempty = 1};
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, pass = 1;
        if (strcmp(f, "--preset") == 0) {
            if (!v)
                return gl_fail(e, "--preset: missing value");
        } else if (strcmp(f, "--seeds") == 0) {
            rc = args_size(f, v, 1, EXPERIMENT_MAX_SEEDS, &a->seeds, e);
            pass = 0;
        } else if (strcmp(f, "--temps") == 0 && temperature) {
            rc = parse_temps(v, a, e);
            pass = 0;
        } else if (strcmp(f, "--gate-temp") == 0 && temperature) {
            return gl_fail(e, "--gate-temp: experiment temperature sets it per arm (use --temps)");
        } else if (strcmp(f, "--distill-steps") == 0 && !moe && !temperature) {
            rc = args_size(f, v, 1, 10000000, &a->distill_steps, e);
            pass = 0;
        } else if (strcmp(f, "--experts") == 0 && moe) {
            rc = runspec_parse_into(runspec_find_flag(f), v, &a->experts, e);
        } else if (strcmp(f, "--moe-aux") == 0 && moe) {
            rc = runspec_parse(runspec_find_flag(f), v, tc, e);
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
        } else if ((rc = args_label_option(f, v, &a->name, &a->note, a->tags, &a->ntags, e)) !=
                   0) {
            rc = rc < 0 ? -1 : 0;
            pass = 0;
        } else if (strcmp(f, "--heatmap-every") == 0) {
            rc = args_size(f, v, 1, 1000000, &a->heatmap_every, e);
        } else if ((rc = args_model_option(f, v, tc, &set, e)) != 0) {
            rc = rc < 0 ? -1 : 0;   /* one of the run options args.c shares */
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
    args_finish_defaults(tc, &set);
    if (!set.eval_every)
        tc->eval_every = tc->steps >= 10 ? tc->steps / 10 : 1;
    tc->save_every = 0;   /* one checkpoint per arm, at the end */
    if (mc->k >= mc->T)
        return gl_fail(e, "--k %zu: must be below the context length %zu (the gates must drop "
                          "keys)", mc->k, mc->T);
    return model_config_check(mc, e);
}

