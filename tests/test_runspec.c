/* test_runspec: the run-spec table (every default and preset value within
 * its row's range, the presets as README's table has them, the defaults the
 * optimiser had), the round trips it drives (config JSON and checkpoint
 * metadata back to the same struct), floats written as typed, a value out
 * of range refused naming the flag, and the JSON writer's escaping read back
 * by the reader. */
#include "runspec.h"

#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "cli_help.h"
#include "json.h"
#include "model.h"
#include "optim.h"

static void test_rows(void)
{
    int bad = 0;
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        for (int p = -1; p < RUNSPEC_NPRESETS; p++) {
            const char *s = p < 0 ? r->def : r->preset[p];
            if (!s || ((r->where & RUNSPEC_ZERO_OFF) && strcmp(s, "0") == 0))
                continue;
            char dst[64];
            gl_error e;
            if (runspec_parse_into(r, s, dst, &e)) {
                printf("    row %s value %s: %s\n", r->name, s, e.msg);
                bad++;
            }
        }
        if (runspec_find(r->name) != r || (r->flag && runspec_find_flag(r->flag) != r))
            bad++;
    }
    CHECK(bad == 0, "every row's default and preset values parse within its range (%zu rows)",
          runspec_nrows);
    for (int p = 0; p < RUNSPEC_NPRESETS; p++) {
        train_config tc;
        gl_error e;
        int rc = runspec_defaults(runspec_preset_names[p], &tc);
        tc.threads = 1;   /* the command's: the online cores */
        CHECK(rc == 0 && runspec_check(&tc, &e) == 0,
              "preset %s: every field within its range", runspec_preset_names[p]);
    }
    model_config c;
    CHECK(runspec_preset("huge", &c) == -1, "an unknown preset is refused");
}

/* Bytes of a struct that no row covers: padding, or a member someone added
 * without its row. */
static size_t uncovered(runspec_struct in, size_t size, size_t *longest)
{
    unsigned char covered[1024] = {0};
    GL_ASSERT(size <= sizeof covered);
    for (size_t i = 0; i < runspec_nrows; i++)
        if (runspec_rows[i].in == in)
            memset(covered + runspec_rows[i].offset, 1, runspec_rows[i].size);
    if (in == RUNSPEC_TRAIN) {   /* the two configs inside, covered by their own rows */
        memset(covered + offsetof(train_config, model), 1, sizeof(model_config));
        memset(covered + offsetof(train_config, optim), 1, sizeof(optim_config));
    }
    size_t n = 0, run = 0;
    *longest = 0;
    for (size_t b = 0; b < size; b++) {
        run = covered[b] ? 0 : run + 1;
        n += !covered[b];
        if (run > *longest)
            *longest = run;
    }
    return n;
}

static void test_coverage(void)
{
    size_t lm, lo, lt;
    size_t um = uncovered(RUNSPEC_MODEL, sizeof(model_config), &lm);
    size_t uo = uncovered(RUNSPEC_OPTIM, sizeof(optim_config), &lo);
    size_t ut = uncovered(RUNSPEC_TRAIN, sizeof(train_config), &lt);
    /* the only padding today: 4 bytes after model_config.mode (before k);
     * a member added without its row changes one of these counts */
    CHECK(um == 4 && lm == 4 && uo == 0 && ut == 0 && lo == 0 && lt == 0,
          "every member of model_config, optim_config and train_config is a row (uncovered "
          "bytes %zu, %zu, %zu: the padding after mode)", um, uo, ut);
}

/* The usage table (cli_help.c) lists every shared option for run and
 * experiment, so --opt=value splits and the help shows it. */
static void test_help(void)
{
    const char *cmds[] = {"run", "experiment absorption", "experiment moe"};
    int bad = 0;
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        const void *cmd = cli_help_named(cmds[c]);
        for (size_t i = 0; cmd && i < runspec_nrows; i++) {
            const runspec_row *r = &runspec_rows[i];
            if ((r->where & RUNSPEC_SHARED) &&
                cli_help_takes_value(cmd, r->flag, strlen(r->flag)) != 1) {
                printf("    %s: %s is not in the usage table\n", cmds[c], r->flag);
                bad++;
            }
        }
        bad += !cmd;
    }
    CHECK(bad == 0, "every shared row's flag is in the usage table of run and experiment");
}

static void test_presets(void)
{
    /* README, "The model": V T d layers heads MLP r batch k */
    static const size_t want[RUNSPEC_NPRESETS][9] = {
        {256, 128, 128, 4, 4, 512, 8, 16, 16},
        {256, 256, 256, 6, 8, 1024, 8, 16, 32},
        {256, 512, 384, 6, 6, 1536, 16, 16, 64},
    };
    for (int p = 0; p < RUNSPEC_NPRESETS; p++) {
        model_config c;
        GL_ASSERT(model_preset(runspec_preset_names[p], &c) == 0);
        const size_t got[9] = {c.V, c.T, c.d, c.layers, c.heads, c.mlp, c.r, c.batch, c.k};
        CHECK(memcmp(got, want[p], sizeof got) == 0 && strcmp(c.preset, runspec_preset_names[p]) == 0 &&
                  c.mode == GATE_SOFT && c.gate_temp == 0.25f && c.moe_aux == 0.01f &&
                  c.seed == 1 && c.experts == 0 && !c.router_frozen && !c.gate_frozen,
              "preset %s as README's table: V=%zu T=%zu d=%zu L=%zu H=%zu mlp=%zu r=%zu B=%zu k=%zu",
              runspec_preset_names[p], c.V, c.T, c.d, c.layers, c.heads, c.mlp, c.r, c.batch,
              c.k);
    }
    train_config tc;
    runspec_defaults("tiny", &tc);
    optim_config o;
    optim_default_config(&o);
    CHECK(memcmp(&o, &tc.optim, sizeof o) == 0, "the table's optimiser defaults are optim.c's");
    CHECK(tc.steps == 2000 && tc.eval_every == 100 && tc.eval_windows == 64 &&
              tc.save_every == 1000 && tc.threads == 0 && !tc.data_path,
          "run's defaults: 2000 steps, eval every 100 over 64 windows, save every 1000");
}

/* Every field a value unlike its default, so a row read into the wrong
 * member or not at all shows. */
static void odd_config(train_config *tc)
{
    runspec_defaults("small", tc);
    model_config *m = &tc->model;
    m->mode = GATE_TOPK_RANDOM;
    m->V = 300, m->T = 96, m->d = 72, m->layers = 3, m->heads = 6, m->mlp = 100, m->r = 5;
    m->batch = 7, m->k = 11, m->gate_temp = 0.3f, m->gate_frozen = 1, m->seed = 1ULL << 60;
    m->experts = 5, m->router_frozen = 1, m->moe_aux = 0.002f;
    tc->steps = 1234, tc->eval_every = 17, tc->eval_windows = 9, tc->save_every = 99;
    tc->threads = 3, tc->data_path = "dir/with \"quotes\"\n and \\ backslash";
    optim_config *o = &tc->optim;
    o->lr = 0.003f, o->gate_lr = 1e-5f, o->min_lr_frac = 0.05f, o->warmup = 33;
    o->total_steps = 1234, o->weight_decay = 0.01f, o->clip = 0.7f;
}

static int same_row(const runspec_row *r, const train_config *a, const train_config *b)
{
    char x[RUNSPEC_META_VALUE], y[RUNSPEC_META_VALUE];
    return strcmp(runspec_format(r, a, x, sizeof x), runspec_format(r, b, y, sizeof y)) == 0;
}

static void test_json(void)
{
    train_config tc;
    odd_config(&tc);
    json_buf b;
    json_init(&b);
    json_object_begin(&b);
    runspec_write_json(&b, &tc, RUNSPEC_JSON);
    json_object_end(&b);
    char *json = json_take(&b);
    train_config back;
    runspec_defaults("tiny", &back);
    gl_error e;
    int rc = runspec_read_json(json, &back, &e);
    int bad = 0, n = 0;
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        if (!(r->where & RUNSPEC_JSON) || r->type == RUNSPEC_PATH)
            continue;
        n++;
        if (!same_row(r, &tc, &back)) {
            printf("    %s differs after the round trip\n", r->name);
            bad++;
        }
    }
    char data[128];
    CHECK(rc == 0 && bad == 0 && json_get_string(json, "data", data, sizeof data) == 0 &&
              strcmp(data, tc.data_path) == 0,
          "config JSON -> struct: all %d JSON rows and the data path come back equal", n + 1);
    CHECK(strstr(json, "\"lr\":0.003,") && strstr(json, "\"gate_lr\":1e-05,") &&
              strstr(json, "\"moe_aux\":0.002"),
          "floats written as typed: lr 0.003, gate_lr 1e-05, moe_aux 0.002");
    CHECK(strncmp(json, "{\"mode\":\"topk-random\",\"preset\":\"small\",\"V\":300,", 46) == 0,
          "keys in the order the params view lists them: %.60s...", json);
    CHECK(runspec_json_size(json, "layers", 1) == 3 && runspec_json_size(json, "steps", 0) == 1234 &&
              runspec_json_size(json, "gate_temp", 7) == 7 &&
              runspec_json_size("{\"layers\":0}", "layers", 1) == 1 &&
              runspec_json_size("{\"layers\":\"4\"}", "layers", 1) == 4 &&
              runspec_json_size("not json", "layers", 2) == 2,
          "runspec_json_size: a count row's value, the default for a float row, out of range "
          "or no JSON");
    free(json);

    /* a dense model leaves the MoE rows out; the experiment's JSON the
     * run-only ones */
    tc.model.experts = 0;
    json_init(&b);
    json_object_begin(&b);
    runspec_write_json(&b, &tc, RUNSPEC_EXPERIMENT);
    json_object_end(&b);
    json = json_take(&b);
    CHECK(!strstr(json, "experts") && !strstr(json, "router") && !strstr(json, "\"seed\"") &&
              !strstr(json, "\"mode\"") && strstr(json, "\"r\":5") && strstr(json, "\"k\":11") &&
              strstr(json, "\"gate_temp\":0.3"),
          "experiment JSON: r, k and gate_temp, no seed, mode or MoE rows of a dense model");
    free(json);
}

static void test_meta(void)
{
    train_config tc;
    odd_config(&tc);
    st_meta meta[64];
    char vals[64][RUNSPEC_META_VALUE];
    size_t n = 0;
    meta[n++] = (st_meta){"format", CHECKPOINT_FORMAT};
    runspec_meta_write(&tc, 1, meta, vals, &n, 64);
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_runspec.%d.safetensors", (int)getpid());
    float w = 1.0f;
    st_tensor_out t = {.name = "w", .data = &w, .ndim = 1, .shape = {1, 0}};
    gl_error e;
    st_file f;
    int rc = st_write(path, &t, 1, meta, n, &e) || st_read(path, &f, &e);
    CHECK(rc == 0, "metadata written and read (%zu keys)", n);
    if (rc)
        return;
    train_config back;
    runspec_defaults("tiny", &back);
    rc = runspec_meta_read(&f, path, 1, &back, &e);
    int bad = 0, count = 0;
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        if (!(r->where & (RUNSPEC_META | RUNSPEC_META_RESUME)))
            continue;
        count++;
        if (!same_row(r, &tc, &back)) {
            printf("    %s differs after the round trip\n", r->name);
            bad++;
        }
    }
    CHECK(rc == 0 && bad == 0, "metadata -> struct: all %d metadata rows come back equal", count);
    CHECK(strcmp(st_meta_get(&f, "gate_mode"), "topk-random") == 0 &&
              strcmp(st_meta_get(&f, "lr"), "0.003") == 0 &&
              strcmp(st_meta_get(&f, "router"), "random") == 0,
          "metadata keys as before: gate_mode, lr \"0.003\", router \"random\"");
    st_free(&f);
    unlink(path);
}

static void test_ranges(void)
{
    train_config tc;
    runspec_defaults("tiny", &tc);
    args_set set = {.eval_every_min = 1};
    gl_error e;
    int rc = args_model_option("--ctx", "5000", &tc, &set, &e);
    CHECK(rc == -1 && strcmp(e.msg, "--ctx 5000: must be between 2 and 4096") == 0,
          "--ctx 5000 refused: %s", e.msg);
    rc = args_model_option("--lr", "11", &tc, &set, &e);
    CHECK(rc == -1 && strcmp(e.msg, "--lr 11: must be between 0 and 10") == 0,
          "--lr 11 refused: %s", e.msg);
    rc = args_model_option("--gate-temp", "abc", &tc, &set, &e);
    CHECK(rc == -1 && strcmp(e.msg, "--gate-temp abc: not a number") == 0,
          "--gate-temp abc refused: %s", e.msg);
    rc = args_model_option("--eval-every", "0", &tc, &set, &e);
    CHECK(rc == -1 && strcmp(e.msg, "--eval-every 0: must be between 1 and 100000000") == 0,
          "an experiment's --eval-every 0 refused: %s", e.msg);
    rc = args_model_option("--steps", "-3", &tc, &set, &e);
    CHECK(rc == -1 && strcmp(e.msg, "--steps -3: not a whole number") == 0,
          "--steps -3 refused: %s", e.msg);
    rc = args_model_option("--lr", "0.004", &tc, &set, &e);
    CHECK(rc == 1 && tc.optim.lr == 0.004f, "--lr 0.004 taken");
    CHECK(args_model_option("--seed", "3", &tc, &set, &e) == 0,
          "--seed is run's own, not a shared option");
    rc = runspec_parse(runspec_find_flag("--seed"), "18446744073709551615", &tc, &e);
    CHECK(rc == 0 && tc.model.seed == UINT64_MAX, "--seed takes any 64-bit value");
    tc.model.heads = 65;
    CHECK(runspec_check(&tc, &e) == -1 && strcmp(e.msg, "--heads 65: must be between 1 and 64") == 0,
          "runspec_check names the flag: %s", e.msg);

    /* the preset first, as run and experiment find it; the last one counts */
    const char *preset;
    char *words[] = {"--steps", "5", "--preset", "paper", "--preset", "small"};
    rc = args_preset_defaults(6, words, &preset, &tc, &e);
    CHECK(rc == 0 && strcmp(preset, "small") == 0 && tc.model.d == 256 && tc.optim.lr == 0.003f,
          "args_preset_defaults: the last --preset's defaults (%s)", rc ? e.msg : preset);
    char *huge[] = {"--preset", "huge"};
    rc = args_preset_defaults(2, huge, &preset, &tc, &e);
    CHECK(rc == -1 && strcmp(e.msg, "--preset huge: unknown preset (tiny, small, paper)") == 0,
          "an unknown preset refused, naming runspec_preset_names: %s", e.msg);
    char *none[] = {"--preset"};
    rc = args_preset_defaults(1, none, &preset, &tc, &e);
    CHECK(rc == -1 && strcmp(e.msg, "--preset: missing value") == 0, "--preset at the end: %s",
          e.msg);
    rc = args_preset_defaults(0, NULL, &preset, &tc, &e);
    CHECK(rc == 0 && strcmp(preset, "tiny") == 0 && tc.model.d == 128, "no --preset: tiny");
}

static void test_writer(void)
{
    json_buf b;
    json_init(&b);
    json_object_begin(&b);
    json_key(&b, "s");
    json_string(&b, "a\"b\\c\nd\te\x01" "f");
    json_key(&b, "n");
    json_null(&b);
    json_key(&b, "a");
    json_array_begin(&b);
    json_int(&b, -3);
    json_uint(&b, 18446744073709551615ULL);
    json_float(&b, NAN);
    json_object_begin(&b);
    json_object_end(&b);
    json_array_end(&b);
    json_key(&b, "after");
    json_float(&b, 1e-8f);
    json_object_end(&b);
    char *j = json_take(&b);
    CHECK(strcmp(j, "{\"s\":\"a\\\"b\\\\c\\nd\\te\\u0001f\",\"n\":null,"
                    "\"a\":[-3,18446744073709551615,null,{}],\"after\":1e-08}") == 0,
          "writer: commas, escapes, null for NaN: %s", j);
    char s[64];
    double x;
    CHECK(json_get_string(j, "s", s, sizeof s) == 0 && strcmp(s, "a\"b\\c\nd\te\x01" "f") == 0 &&
              json_get_string(j, "n", s, sizeof s) == 1 && json_get_number(j, "after", &x) == 0 &&
              x == (double)strtod("1e-08", NULL) && !json_member(j, "missing") &&
              json_get_string(j, "s", s, 4) == -1,
          "reader: the escaped string back, null, a member after a nested array, a short buffer");
    free(j);
}

/* Stored config JSON is a database's text, which anyone can edit: the
 * reader must stop at every cut and never read past the end (run under
 * MODE=asan). */
static void test_hostile(void)
{
    train_config tc;
    odd_config(&tc);
    json_buf b;
    json_init(&b);
    json_object_begin(&b);
    runspec_write_json(&b, &tc, RUNSPEC_JSON);
    json_key(&b, "argv");
    json_array_begin(&b);
    json_string(&b, "--lr");
    json_string(&b, "{[\"");
    json_array_end(&b);
    json_object_end(&b);
    char *json = json_take(&b);
    const size_t n = strlen(json);
    char *buf = xmalloc(n + 1);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    static const char alphabet[] = "{}[]\",:\\u0 e-.9";
    size_t runs = 0, odd = 0;
    /* what a reader may answer: 0, or -1 with a message; a size is the
     * default or a value inside its row's range */
    const runspec_row *rl = runspec_find("layers"), *rt = runspec_find("T");
    GL_ASSERT(rl && rt);
#define READ_OK(rc, e) ((rc) == 0 || ((rc) == -1 && (e).msg[0]))
#define SIZE_OK(v, row) ((v) == 1 || ((double)(v) >= (row)->min && (double)(v) <= (row)->max))
    for (size_t cut = 0; cut <= n; cut++, runs++) {
        /* every prefix, in an allocation of its own length */
        char *p = xmalloc(cut + 1);
        memcpy(p, json, cut);
        p[cut] = '\0';
        train_config t = tc;
        gl_error e = {{0}};
        int rc = runspec_read_json(p, &t, &e);
        size_t v = runspec_json_size(p, "layers", 1);
        odd += !READ_OK(rc, e) || !SIZE_OK(v, rl);
        free(p);
    }
    for (int i = 0; i < 3000; i++, runs++) {
        memcpy(buf, json, n + 1);
        for (int k = 0; k < 4; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[x % n] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
        }
        train_config t = tc;
        gl_error e = {{0}};
        int rc = runspec_read_json(buf, &t, &e);
        size_t v = runspec_json_size(buf, "T", 1);
        odd += !READ_OK(rc, e) || !SIZE_OK(v, rt);
    }
#undef READ_OK
#undef SIZE_OK
    train_config whole = tc;
    gl_error e = {{0}};
    CHECK(runspec_read_json(json, &whole, &e) == 0 &&
              runspec_json_size(json, "layers", 1) == tc.model.layers,
          "the uncut config JSON reads back (layers %zu)", tc.model.layers);
    CHECK(odd == 0,
          "%zu cut or mutated config JSONs: every read is 0 or -1 with a message, every "
          "size the default or within its row's range (%zu not)",
          runs, odd);
    free(buf);
    free(json);
}

/* The config hash stored checkpoints carry: the values the hand-listed
 * hash gave before the table drove it (computed with that code), so files
 * written then still resume. Every row that changes the parameter tensors
 * is in the hash, and the frozen order names exactly the RUNSPEC_HASH rows. */
static void test_config_hash(void)
{
    char h[17];
    model_config c;
    runspec_preset("tiny", &c);
    checkpoint_config_hash(&c, h);
    CHECK(strcmp(h, "c6602b9257b0c613") == 0, "tiny's config hash is the old one (%s)", h);
    model_config m;
    runspec_preset("small", &m);
    m.experts = 4;
    m.router_frozen = 1;
    m.moe_aux = 0.02f;
    m.gate_temp = 0.5f;
    m.seed = 12345678901ULL;
    m.batch = 8;
    m.V = 300;
    checkpoint_config_hash(&m, h);
    CHECK(strcmp(h, "d6df2a6bb0dab592") == 0, "a MoE config's hash is the old one (%s)", h);
    m.experts = 0;
    m.router_frozen = 0;
    checkpoint_config_hash(&m, h);
    CHECK(strcmp(h, "56af1e076c8340af") == 0, "its dense twin's hash is the old one (%s)", h);

    size_t nhash = 0, missing = 0;
    for (size_t i = 0; i < runspec_nrows; i++) {
        if (!(runspec_rows[i].where & RUNSPEC_HASH))
            continue;
        nhash++;
        size_t j = 0;
        while (j < checkpoint_hash_nrows && strcmp(checkpoint_hash_rows[j], runspec_rows[i].name))
            j++;
        if (j == checkpoint_hash_nrows) {
            missing++;
            printf("  row %s has RUNSPEC_HASH but is not in checkpoint_hash_rows\n",
                   runspec_rows[i].name);
        }
    }
    CHECK(!missing && nhash == checkpoint_hash_nrows,
          "checkpoint_hash_rows names exactly the %zu RUNSPEC_HASH rows", nhash);

    /* each numeric model row moved to another value in its range: if the
     * parameter count moves, the row must be hashed */
    size_t uncovered = 0, shaped = 0;
    model_config base;
    runspec_preset("tiny", &base);
    base.experts = 4;
    for (size_t i = 0; i < runspec_nrows; i++) {
        const runspec_row *r = &runspec_rows[i];
        if (r->in != RUNSPEC_MODEL)
            continue;
        model_config x = base;
        void *p = (char *)&x + r->offset;
        if (r->type == RUNSPEC_SIZE)
            *(size_t *)p = *(size_t *)p == (size_t)r->min ? (size_t)r->min + 1 : (size_t)r->min;
        else if (r->type == RUNSPEC_U64)
            *(uint64_t *)p += 1;
        else if (r->type == RUNSPEC_BOOL || r->type == RUNSPEC_ROUTER || r->type == RUNSPEC_MODE)
            *(int *)p = !*(int *)p;
        else if (r->type == RUNSPEC_FLOAT)
            *(float *)p *= 2;
        else
            continue;
        if (model_count_params(&x) == model_count_params(&base))
            continue;
        shaped++;
        if (!(r->where & RUNSPEC_HASH)) {
            uncovered++;
            printf("  row %s changes the parameters but is not hashed\n", r->name);
        }
    }
    CHECK(!uncovered && shaped >= 7, "the %zu model rows that change the parameters are hashed",
          shaped);
}

int main(void)
{
    test_rows();
    test_coverage();
    test_help();
    test_presets();
    test_json();
    test_meta();
    test_ranges();
    test_writer();
    test_hostile();
    test_config_hash();
    return check_finish();
}
