/* args: whole-word number parsing for the command lines of cli and
 * experiment, and the run options both of them take (parsed and checked
 * through the run-spec table, runspec.c). */
#include "args.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runspec.h"

int args_size(const char *flag, const char *s, size_t lo, size_t hi, size_t *out, gl_error *e)
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

size_t args_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

double args_memory_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double have = pages > 0 && page > 0 ? (double)pages * (double)page : INFINITY;
    const int limits[] = {RLIMIT_AS, RLIMIT_DATA};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit rl;
        if (getrlimit(limits[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            (double)rl.rlim_cur < have)
            have = (double)rl.rlim_cur;
    }
    return have;
}

int args_is_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2
                 : (*p & 0xf8) == 0xf0 ? 3 : 9;
        if (n == 9 || (n == 1 && *p < 0xc2))
            return 0;
        for (size_t i = 1; i <= n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return 0;
        p += n + 1;
    }
    return 1;
}

int args_check_out_dir(const char *dir, gl_error *e)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return gl_fail(e, "--out %s: path too long", dir);
    /* the nearest part of the path that exists decides */
    struct stat sb;
    while (stat(path, &sb) != 0) {
        if (errno != ENOENT)
            return gl_fail(e, "--out %s: %s", dir, strerror(errno));
        char *slash = strrchr(path, '/');
        if (!slash) {
            snprintf(path, sizeof path, ".");
            continue;
        }
        if (slash == path)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    if (!S_ISDIR(sb.st_mode))
        return gl_fail(e, "--out %s: %s is not a directory", dir, path);
    /* a probe file, not access(2): root passes access() on a read-only mount */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.gatelab-probe.%ld", path, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return gl_fail(e, "--out %s: cannot write in %s: %s", dir, path, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

int args_split_equals(int argc, char **argv, args_takes_value_fn takes_value, const void *ctx,
                      int *out_argc, char ***out, gl_error *e)
{
    /* the pointers, then room for every option name cut off at its '=' */
    size_t names = 0;
    for (int i = 0; i < argc; i++)
        names += strlen(argv[i]) + 1;
    const size_t ptrs = (2 * (size_t)argc + 1) * sizeof(char *);
    char **w = xmalloc(ptrs + names);
    char *text = (char *)w + ptrs;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        int takes = takes_value(ctx, a, eq ? (size_t)(eq - a) : strlen(a));
        if (i == 0 || !eq || takes < 0) {
            w[n++] = argv[i];
            /* a plain option's value is the next word, whatever it looks like */
            if (i > 0 && !eq && takes == 1 && i + 1 < argc)
                w[n++] = argv[++i];
            continue;
        }
        const int len = (int)(eq - a);
        if (!takes) {
            free(w);
            return gl_fail(e, "%.*s: takes no value (got '%s')", len, a, a);
        }
        if (!eq[1]) {
            free(w);
            return gl_fail(e, "%.*s: missing value (nothing after '=')", len, a);
        }
        memcpy(text, a, (size_t)len);
        text[len] = '\0';
        w[n++] = text;
        text += len + 1;
        w[n++] = (char *)eq + 1;
    }
    w[n] = NULL;
    *out_argc = n;
    *out = w;
    return 0;
}

int args_preset_defaults(int argc, char **argv, const char **preset, train_config *tc,
                         gl_error *e)
{
    *preset = "tiny";
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--preset") == 0) {
            if (i + 1 >= argc)
                return gl_fail(e, "--preset: missing value");
            *preset = argv[i + 1];
        }
    if (runspec_defaults(*preset, tc) == 0)
        return 0;
    char names[64] = "";
    for (size_t p = 0; p < RUNSPEC_NPRESETS; p++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", p ? ", " : "",
                 runspec_preset_names[p]);
    return gl_fail(e, "--preset %s: unknown preset (%s)", *preset, names);
}

int args_model_option(const char *flag, const char *value, train_config *tc, args_set *set,
                      gl_error *e)
{
    const runspec_row *r = runspec_find_flag(flag);
    if (!r || !(r->where & RUNSPEC_SHARED))
        return 0;
    if (r->type == RUNSPEC_PATH && (!value || (set->data_nonempty && !*value)))
        return gl_fail(e, "%s: missing value", flag);
    if (strcmp(r->name, "V") == 0) {
        /* kept aside: a .bin file sets V unless --vocab is given */
        if (runspec_parse_into(r, value, &set->vocab, e))
            return -1;
        return 1;
    }
    if (runspec_parse(r, value, tc, e))
        return -1;
    /* the defaults that follow from other options give way to these */
    if (strcmp(r->name, "k") == 0)
        set->k = 1;
    else if (strcmp(r->name, "gate_lr") == 0)
        set->gate_lr = 1;
    else if (strcmp(r->name, "mlp") == 0)
        set->mlp = 1;
    else if (strcmp(r->name, "warmup") == 0)
        set->warmup = 1;
    else if (strcmp(r->name, "eval_every") == 0) {
        set->eval_every = 1;
        if (tc->eval_every < set->eval_every_min)
            return gl_fail(e, "%s %s: must be between %zu and %.0f", flag, value,
                           set->eval_every_min, r->max);
    }
    return 1;
}

void args_finish_defaults(train_config *tc, const args_set *set)
{
    model_config *mc = &tc->model;
    if (!set->gate_lr)
        tc->optim.gate_lr = tc->optim.lr;
    if (!set->k)
        mc->k = mc->T / 8 ? mc->T / 8 : 1;
    if (!set->mlp)
        mc->mlp = 4 * mc->d;
    if (set->vocab)
        mc->V = set->vocab;
    tc->vocab_from_data = set->vocab == 0;
    /* the default warm-up would swallow a short run; an explicit one is kept */
    if (!set->warmup && tc->optim.warmup >= tc->steps)
        tc->optim.warmup = tc->steps / 10;
}
