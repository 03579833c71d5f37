/* runspec: the run-spec table and everything it drives (runspec.h). */
#include "runspec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floatfmt.h"
#include "gate.h"

const char *const runspec_preset_names[RUNSPEC_NPRESETS] = {"tiny", "small", "paper"};

#define M(f) RUNSPEC_MODEL, offsetof(model_config, f), sizeof(((model_config *)0)->f)
#define O(f) RUNSPEC_OPTIM, offsetof(optim_config, f), sizeof(((optim_config *)0)->f)
#define R(f) RUNSPEC_TRAIN, offsetof(train_config, f), sizeof(((train_config *)0)->f)
#define NONE {NULL, NULL, NULL}
#define ANY_SEED 18446744073709551615.0   /* SIZE_MAX, as the range bound */

enum {
    J = RUNSPEC_JSON, META = RUNSPEC_META, RES = RUNSPEC_META_RESUME, MOE = RUNSPEC_MOE,
    OPT = RUNSPEC_OPTIONAL, SH = RUNSPEC_SHARED, EXP = RUNSPEC_EXPERIMENT,
    OFF = RUNSPEC_ZERO_OFF, H = RUNSPEC_HASH,
};

/* In the order of the run's config JSON (the params view lists it so).
 * Presets tiny, small, paper: README's preset table. */
const runspec_row runspec_rows[] = {
    /* name, meta key, type, member, flag, min, max, default, presets, where */
    {"mode", "gate_mode", RUNSPEC_MODE, M(mode), NULL, 0, 0, "soft", NONE, J | META},
    {"preset", NULL, RUNSPEC_TEXT, M(preset), "--preset", 0, 0, "tiny", {"tiny", "small", "paper"},
     J | META | OPT | EXP},
    {"V", NULL, RUNSPEC_SIZE, M(V), "--vocab", 2, 1 << 20, "256", NONE,
     J | META | SH | EXP | H},
    {"T", NULL, RUNSPEC_SIZE, M(T), "--ctx", 2, 4096, "128", {"128", "256", "512"},
     J | META | SH | EXP | H},
    {"d", NULL, RUNSPEC_SIZE, M(d), "--dim", 1, 8192, "128", {"128", "256", "384"},
     J | META | SH | EXP | H},
    {"layers", NULL, RUNSPEC_SIZE, M(layers), "--layers", 1, 64, "4", {"4", "6", "6"},
     J | META | SH | EXP | H},
    {"heads", NULL, RUNSPEC_SIZE, M(heads), "--heads", 1, 64, "4", {"4", "8", "6"},
     J | META | SH | EXP | H},
    /* 4 d unless given (args_finish_defaults) */
    {"mlp", NULL, RUNSPEC_SIZE, M(mlp), "--mlp", 1, 65536, "512", {"512", "1024", "1536"},
     J | META | SH | EXP | H},
    {"r", NULL, RUNSPEC_SIZE, M(r), "--gate-rank", 1, 1024, "8", {"8", "8", "16"},
     J | META | SH | EXP | H},
    {"batch", NULL, RUNSPEC_SIZE, M(batch), "--batch", 1, 4096, "16", NONE,
     J | META | SH | EXP | H},
    /* T/8 unless given (args_finish_defaults) */
    {"k", NULL, RUNSPEC_SIZE, M(k), "--k", 1, 4096, "16", {"16", "32", "64"},
     J | META | SH | EXP},
    {"gate_temp", NULL, RUNSPEC_FLOAT, M(gate_temp), "--gate-temp", 1e-4, 100, "0.25", NONE,
     J | META | SH | EXP | H},
    {"gate_frozen", NULL, RUNSPEC_BOOL, M(gate_frozen), NULL, 0, 1, "0", NONE, META | OPT},
    {"seed", NULL, RUNSPEC_U64, M(seed), "--seed", 0, ANY_SEED, "1", NONE, J | META | H},
    {"steps", NULL, RUNSPEC_SIZE, R(steps), "--steps", 1, 1e8, "2000", NONE, J | SH | EXP},
    {"lr", NULL, RUNSPEC_FLOAT, O(lr), "--lr", 0, 10, "0.003", NONE, J | RES | SH | EXP},
    /* lr unless given (args_finish_defaults) */
    {"gate_lr", NULL, RUNSPEC_FLOAT, O(gate_lr), "--gate-lr", 0, 10, "0.003", NONE,
     J | RES | SH | EXP},
    {"min_lr_frac", NULL, RUNSPEC_FLOAT, O(min_lr_frac), NULL, 0, 1, "0.1", NONE, RES},
    {"beta1", NULL, RUNSPEC_FLOAT, O(beta1), NULL, 0, 1, "0.9", NONE, 0},
    {"beta2", NULL, RUNSPEC_FLOAT, O(beta2), NULL, 0, 1, "0.95", NONE, 0},
    {"eps", NULL, RUNSPEC_FLOAT, O(eps), NULL, 0, 1, "1e-08", NONE, 0},
    /* a tenth of a run it would swallow unless given (args_finish_defaults) */
    {"warmup", NULL, RUNSPEC_SIZE, O(warmup), "--warmup", 0, 1e8, "100", NONE,
     J | RES | SH | EXP},
    /* the trainer sets it to steps */
    {"total_steps", NULL, RUNSPEC_SIZE, O(total_steps), NULL, 0, 1e8, "1000", NONE, RES},
    {"weight_decay", NULL, RUNSPEC_FLOAT, O(weight_decay), "--weight-decay", 0, 10, "0.1", NONE,
     J | RES | SH | EXP},
    {"clip", NULL, RUNSPEC_FLOAT, O(clip), "--clip", 0, 1e6, "1", NONE, J | RES | SH | EXP},
    /* experiments: at least 1, steps/10 unless given (experiment_args.c) */
    {"eval_every", NULL, RUNSPEC_SIZE, R(eval_every), "--eval-every", 0, 1e8, "100", NONE,
     J | SH | EXP},
    {"eval_windows", NULL, RUNSPEC_SIZE, R(eval_windows), "--eval-windows", 0, 1e6, "64", NONE,
     J | SH | EXP},
    {"save_every", NULL, RUNSPEC_SIZE, R(save_every), "--save-every", 0, 1e8, "1000", NONE, J},
    /* the online cores (args_default_threads) */
    {"threads", NULL, RUNSPEC_SIZE, R(threads), "--threads", 1, 256, NULL, NONE, J | SH | EXP},
    /* NULL: the embedded generator */
    {"data", NULL, RUNSPEC_PATH, R(data_path), "--data", 0, 0, NULL, NONE, J | SH | EXP},
    /* set by the commands, stored nowhere: run's --out (checked there),
     * whether a .bin file sets V (no --vocab), whether evaluations draw
     * heatmaps (the screen or --heatmap-every) */
    {"out_dir", NULL, RUNSPEC_PATH, R(out_dir), NULL, 0, 0, NULL, NONE, 0},
    {"vocab_from_data", NULL, RUNSPEC_BOOL, R(vocab_from_data), NULL, 0, 1, "0", NONE, 0},
    {"heatmaps", NULL, RUNSPEC_BOOL, R(heatmaps), NULL, 0, 1, "0", NONE, 0},
    /* per arm: 0 (dense FFN) unless the arm is +moe; run's --experts (default 4) */
    {"experts", NULL, RUNSPEC_SIZE, M(experts), "--experts", 2, 64, "0", NONE,
     J | META | MOE | OFF | H},
    {"router", NULL, RUNSPEC_ROUTER, M(router_frozen), NULL, 0, 1, "learned", NONE,
     J | META | MOE | H},
    {"moe_aux", NULL, RUNSPEC_FLOAT, M(moe_aux), "--moe-aux", 0, 10, "0.01", NONE,
     J | META | MOE | H},
};
const size_t runspec_nrows = sizeof runspec_rows / sizeof runspec_rows[0];

static const char *const router_names[] = {"learned", "random"};

const runspec_row *runspec_find(const char *name)
{
    for (size_t i = 0; i < runspec_nrows; i++)
        if (strcmp(runspec_rows[i].name, name) == 0)
            return &runspec_rows[i];
    return NULL;
}

const runspec_row *runspec_find_flag(const char *flag)
{
    for (size_t i = 0; i < runspec_nrows; i++)
        if (runspec_rows[i].flag && strcmp(runspec_rows[i].flag, flag) == 0)
            return &runspec_rows[i];
    return NULL;
}

const char *runspec_meta_key(const runspec_row *r)
{
    return r->meta ? r->meta : r->name;
}

static void *member(const runspec_row *r, train_config *tc)
{
    char *base = r->in == RUNSPEC_MODEL ? (char *)&tc->model
                 : r->in == RUNSPEC_OPTIM ? (char *)&tc->optim : (char *)tc;
    return base + r->offset;
}

static const void *cmember(const runspec_row *r, const train_config *tc)
{
    return member(r, (train_config *)tc);
}

/* ---- text -> value ---- */

typedef enum { PARSE_OK, PARSE_BAD, PARSE_RANGE } parse_status;

/* s into dst for row r; `ranged` checks [min, max] (0 passes a ZERO_OFF
 * row only when unranged). */
static parse_status parse_text(const runspec_row *r, const char *s, void *dst, int ranged)
{
    switch (r->type) {
    case RUNSPEC_SIZE:
    case RUNSPEC_U64:
    case RUNSPEC_BOOL: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (*s == '-' || *s == '+' || end == s || *end)
            return PARSE_BAD;
        if (errno == ERANGE || (r->type == RUNSPEC_BOOL && v > 1))
            return PARSE_RANGE;
        if (ranged && ((double)v < r->min || (double)v > r->max))
            return PARSE_RANGE;
        if (r->type == RUNSPEC_SIZE)
            *(size_t *)dst = (size_t)v;
        else if (r->type == RUNSPEC_U64)
            *(uint64_t *)dst = v;
        else
            *(int *)dst = (int)v;
        return PARSE_OK;
    }
    case RUNSPEC_FLOAT: {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || *end || errno || !isfinite(v))
            return PARSE_BAD;
        if (ranged && (v < r->min || v > r->max))
            return PARSE_RANGE;
        *(float *)dst = (float)v;
        return PARSE_OK;
    }
    case RUNSPEC_MODE:
        return gate_mode_parse(s, (gate_mode *)dst) ? PARSE_BAD : PARSE_OK;
    case RUNSPEC_ROUTER:
        for (int i = 0; i < 2; i++)
            if (strcmp(s, router_names[i]) == 0) {
                *(int *)dst = i;
                return PARSE_OK;
            }
        return PARSE_BAD;
    case RUNSPEC_TEXT:
        if (strlen(s) >= r->size)
            return PARSE_RANGE;
        memcpy(dst, s, strlen(s) + 1);
        return PARSE_OK;
    case RUNSPEC_PATH:
        /* borrowed: the text must outlive the config (argv does) */
        *(const char **)dst = s;
        return PARSE_OK;
    }
    return PARSE_BAD;
}

/* "0 and 10", "2 and 4096", "1e-04 and 100": the range as a message has it */
static void range_text(const runspec_row *r, char *out, size_t n)
{
    if (r->type == RUNSPEC_FLOAT)
        snprintf(out, n, "%g and %g", r->min, r->max);
    else
        snprintf(out, n, "%" PRIu64 " and %" PRIu64, (uint64_t)r->min,
                 r->max >= ANY_SEED ? UINT64_MAX : (uint64_t)r->max);
}

int runspec_parse_into(const runspec_row *r, const char *s, void *dst, gl_error *e)
{
    const char *flag = r->flag ? r->flag : r->name;
    if (!s)
        return gl_fail(e, "%s: missing value", flag);
    parse_status st = parse_text(r, s, dst, 1);
    char range[96];
    range_text(r, range, sizeof range);
    if (st == PARSE_BAD && r->type == RUNSPEC_FLOAT)
        return gl_fail(e, "%s %s: not a number", flag, s);
    if (st == PARSE_BAD && r->type == RUNSPEC_MODE)
        return gl_fail(e, "%s %s: not one of %s", flag, s, gate_mode_list());
    if (st == PARSE_BAD && r->type == RUNSPEC_ROUTER)
        return gl_fail(e, "%s %s: not learned or random", flag, s);
    if (st == PARSE_BAD)
        return gl_fail(e, "%s %s: not a whole number", flag, s);
    if (st == PARSE_RANGE && r->type == RUNSPEC_TEXT)
        return gl_fail(e, "%s %s: longer than %zu bytes", flag, s, r->size - 1);
    if (st == PARSE_RANGE)
        return gl_fail(e, "%s %s: must be between %s", flag, s, range);
    return 0;
}

int runspec_parse(const runspec_row *r, const char *s, train_config *tc, gl_error *e)
{
    return runspec_parse_into(r, s, member(r, tc), e);
}

/* ---- value -> text ---- */

const char *runspec_format(const runspec_row *r, const train_config *tc, char *out, size_t n)
{
    const void *p = cmember(r, tc);
    switch (r->type) {
    case RUNSPEC_SIZE: snprintf(out, n, "%zu", *(const size_t *)p); break;
    case RUNSPEC_U64: snprintf(out, n, "%" PRIu64, *(const uint64_t *)p); break;
    case RUNSPEC_BOOL: snprintf(out, n, "%d", *(const int *)p ? 1 : 0); break;
    case RUNSPEC_FLOAT: {
        char num[FLOATFMT_SIZE];
        snprintf(out, n, "%s", floatfmt_shortest(*(const float *)p, num, sizeof num));
        break;
    }
    case RUNSPEC_MODE: snprintf(out, n, "%s", gate_mode_name(*(const gate_mode *)p)); break;
    case RUNSPEC_ROUTER: snprintf(out, n, "%s", router_names[*(const int *)p ? 1 : 0]); break;
    case RUNSPEC_TEXT: snprintf(out, n, "%s", (const char *)p); break;
    case RUNSPEC_PATH: snprintf(out, n, "%s", *(const char *const *)p ? *(const char *const *)p : "");
        break;
    }
    return out;
}

/* ---- defaults and presets ---- */

static int preset_index(const char *name)
{
    for (int i = 0; i < RUNSPEC_NPRESETS; i++)
        if (strcmp(name, runspec_preset_names[i]) == 0)
            return i;
    return -1;
}

/* The row's text for preset p (-1: its default); the table's values are
 * checked by tests/test_runspec.c, so a failure here is a broken table. */
static void set_default(const runspec_row *r, int p, train_config *tc)
{
    const char *s = p >= 0 && r->preset[p] ? r->preset[p] : r->def;
    if (s)
        GL_ASSERT(parse_text(r, s, member(r, tc), 0) == PARSE_OK);
}

int runspec_preset(const char *name, model_config *cfg)
{
    int p = preset_index(name);
    memset(cfg, 0, sizeof *cfg);
    if (p < 0)
        return -1;
    train_config tc = {0};
    for (size_t i = 0; i < runspec_nrows; i++)
        if (runspec_rows[i].in == RUNSPEC_MODEL)
            set_default(&runspec_rows[i], p, &tc);
    *cfg = tc.model;
    return 0;
}

int runspec_defaults(const char *preset, train_config *tc)
{
    memset(tc, 0, sizeof *tc);
    if (runspec_preset(preset, &tc->model))
        return -1;
    for (size_t i = 0; i < runspec_nrows; i++)
        if (runspec_rows[i].in != RUNSPEC_MODEL)
            set_default(&runspec_rows[i], -1, tc);
    return 0;
}

/* Every row of the structs in `which` (bits 1 << runspec_struct) within its
 * flag's range, by formatting the value and parsing it back as the flag
 * would. */
static int check_rows(const train_config *tc, unsigned which, gl_error *e)
{
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        if (!(which & 1u << r->in) || r->type == RUNSPEC_MODE || r->type == RUNSPEC_ROUTER ||
            r->type == RUNSPEC_TEXT || r->type == RUNSPEC_PATH)
            continue;
        char text[RUNSPEC_META_VALUE], scratch[16];
        runspec_format(r, tc, text, sizeof text);
        if ((r->where & RUNSPEC_ZERO_OFF) && strcmp(text, "0") == 0)
            continue;
        if (runspec_parse_into(r, text, scratch, e))
            return -1;
    }
    return 0;
}

int runspec_check(const train_config *tc, gl_error *e)
{
    return check_rows(tc, 1u << RUNSPEC_MODEL | 1u << RUNSPEC_OPTIM | 1u << RUNSPEC_TRAIN, e);
}

int runspec_check_model(const model_config *m, gl_error *e)
{
    train_config tc = {.model = *m};
    return check_rows(&tc, 1u << RUNSPEC_MODEL, e);
}

/* ---- config JSON ---- */

void runspec_write_field(json_buf *b, const runspec_row *r, const train_config *tc)
{
    const void *p = cmember(r, tc);
    json_key(b, r->name);
    switch (r->type) {
    case RUNSPEC_SIZE: json_uint(b, *(const size_t *)p); break;
    case RUNSPEC_U64: json_uint(b, *(const uint64_t *)p); break;
    case RUNSPEC_BOOL: json_uint(b, *(const int *)p ? 1 : 0); break;
    case RUNSPEC_FLOAT: json_float(b, *(const float *)p); break;
    case RUNSPEC_PATH: json_string(b, *(const char *const *)p); break;
    case RUNSPEC_MODE:
    case RUNSPEC_ROUTER:
    case RUNSPEC_TEXT: {
        char text[RUNSPEC_META_VALUE];
        json_string(b, runspec_format(r, tc, text, sizeof text));
        break;
    }
    }
}

void runspec_write_json(json_buf *b, const train_config *tc, unsigned where)
{
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        if ((r->where & where) && (!(r->where & RUNSPEC_MOE) || tc->model.experts))
            runspec_write_field(b, r, tc);
    }
}

/* The text of member `key`: a string unescaped, a number as written;
 * 1 when it is null, -1 when absent or neither. */
static int json_text(const char *json, const char *key, char *out, size_t n)
{
    int rc = json_get_string(json, key, out, n);
    if (rc >= 0)
        return rc;
    const char *v = json_member(json, key);
    if (!v || !(*v == '-' || (*v >= '0' && *v <= '9')))
        return -1;
    size_t len = strspn(v, "0123456789+-.eE");
    if (len >= n)
        return -1;
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

int runspec_read_json(const char *json, train_config *tc, gl_error *e)
{
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        char text[RUNSPEC_META_VALUE];
        /* a path borrows its text, which a JSON reader cannot lend */
        if (!(r->where & RUNSPEC_JSON) || r->type == RUNSPEC_PATH ||
            json_text(json, r->name, text, sizeof text) != 0)
            continue;
        if (parse_text(r, text, member(r, tc), 0) != PARSE_OK)
            return gl_fail(e, "config JSON: \"%s\" = %s is not a value of its kind", r->name,
                           text);
    }
    return 0;
}

size_t runspec_json_size(const char *json, const char *name, size_t dflt)
{
    const runspec_row *r = runspec_find(name);
    char text[RUNSPEC_META_VALUE];
    size_t v;
    if (!r || r->type != RUNSPEC_SIZE || json_text(json, name, text, sizeof text) != 0 ||
        parse_text(r, text, &v, 1) != PARSE_OK)
        return dflt;
    return v;
}

/* ---- checkpoint metadata ---- */

static int in_meta(const runspec_row *r, int resumable)
{
    return (r->where & RUNSPEC_META) || (resumable && (r->where & RUNSPEC_META_RESUME));
}

void runspec_meta_write(const train_config *tc, int resumable, st_meta *meta,
                        char (*vals)[RUNSPEC_META_VALUE], size_t *n, size_t max)
{
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        if (!in_meta(r, resumable) || ((r->where & RUNSPEC_MOE) && !tc->model.experts))
            continue;
        GL_ASSERT(*n < max);
        meta[*n].key = runspec_meta_key(r);
        meta[*n].value = runspec_format(r, tc, vals[*n], RUNSPEC_META_VALUE);
        (*n)++;
    }
}

int runspec_meta_read(const st_file *f, const char *path, int resumable, train_config *tc,
                      gl_error *e)
{
    /* experts, router and moe_aux arrived with the MoE FFN: absent means dense */
    const int moe = st_meta_get(f, "experts") != NULL;
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        if (!in_meta(r, resumable) || ((r->where & RUNSPEC_MOE) && !moe))
            continue;
        const char *key = runspec_meta_key(r);
        const char *v = st_meta_get(f, key);
        if (!v && (r->where & RUNSPEC_OPTIONAL))
            continue;
        if (r->type == RUNSPEC_MODE && (!v || parse_text(r, v, member(r, tc), 0)))
            return gl_fail(e, "%s: metadata %s \"%s\" is not one of %s", path, key,
                           v ? v : "(missing)", gate_mode_list());
        if (r->type == RUNSPEC_ROUTER && (!v || parse_text(r, v, member(r, tc), 0)))
            return gl_fail(e, "%s: metadata %s \"%s\" is not learned or random", path, key,
                           v ? v : "(missing)");
        if (!v)
            return gl_fail(e, "%s: metadata has no \"%s\"", path, key);
        if (parse_text(r, v, member(r, tc), 0) != PARSE_OK)
            return gl_fail(e, "%s: metadata \"%s\" = \"%s\" is not %s", path, key, v,
                           r->type == RUNSPEC_FLOAT ? "a number"
                           : r->type == RUNSPEC_TEXT ? "a short text" : "a count");
    }
    return 0;
}
