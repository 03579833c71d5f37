/* cli_plot: stored metrics turned into pictures and tables — `gatelab plot`
 * (a metric of some runs as a chart, or one run's heatmaps at a step) and
 * `gatelab export --csv` (every metric of some runs, one row per run and
 * step). Reads through store/, draws through plot.c; like the other cli
 * files it prints, and every bad input gets one line and writes nothing. */
#include "cli_plot.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "cli.h"
#include "common.h"
#include "outfile.h"
#include "plot.h"
#include "record.h"
#include "runspec_read.h"
#include "store.h"

/* The keys gatelab writes to `metrics` (store_write: REC_STEP and REC_EVAL),
 * with the unit an axis shows. Another key a run has (a distillation's
 * figures) can be plotted too; one that no run has and that is not here is
 * "unknown". */
static const struct {
    const char *key, *unit;
} known_metrics[] = {
    {"val_loss", "nats"},        {"train_loss", "nats"},   {"val_ppl", "perplexity"},
    {"val_bpb", "bits per byte"}, {"f1", "0..1, vs the oracle"}, {"mass_kept", "fraction of attention mass"},
    {"oracle_mass", "fraction of attention mass"},  {"gate_grad_norm", "L2"}, {"grad_norm", "L2"},
    {"lr", "learning rate"},      {"tokens_per_s", "tokens/s"},
    {"expert_balance", "balance"},
    {"absorption_index", "(F1 - F1 at step 0) / (1 - F1 at step 0)"},
};
#define NKNOWN (sizeof known_metrics / sizeof known_metrics[0])

static int known_index(const char *key)
{
    for (size_t i = 0; i < NKNOWN; i++)
        if (strcmp(known_metrics[i].key, key) == 0)
            return (int)i;
    return -1;
}

static const char *known_list(void)
{
    static char buf[256];
    if (!buf[0]) {
        size_t n = 0;
        for (size_t i = 0; i < NKNOWN; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? " " : "",
                                  known_metrics[i].key);
    }
    return buf;
}

/* ---- which runs: RUN[,RUN...] or --session S ---- */

typedef struct {
    int64_t id;
    char name[64], status[16], gates[96];
    char keys[32][32];          /* its metric keys (summaries) */
    size_t nkeys;
} run_info;

typedef struct {
    run_info *runs;
    size_t n, cap;
} run_set;

static void run_set_free(run_set *rs)
{
    free(rs->runs);
    memset(rs, 0, sizeof *rs);
}

static run_info *run_set_add(run_set *rs, int64_t id)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->runs[i].id == id)
            return NULL;   /* named twice: drawn once */
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 8;
        rs->runs = gl_grow(rs->runs, rs->n, rs->cap, sizeof *rs->runs);
    }
    run_info *r = &rs->runs[rs->n++];
    memset(r, 0, sizeof *r);
    r->id = id;
    return r;
}

static int parse_run_list(const char *cmd, const char *v, run_set *rs)
{
    if (!*v || v[0] == ',' || v[strlen(v) - 1] == ',' || strstr(v, ",,"))
        return cli_usage_error("%s %s: empty run id in the list", cmd, v);
    char *buf = xstrdup(v);
    int rc = 0;
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w && !rc;
         w = strtok_r(NULL, ",", &save)) {
        int64_t id;
        rc = cli_parse_run_id(cmd, w, &id);
        if (!rc)
            run_set_add(rs, id);
    }
    free(buf);
    return rc;
}

static int collect_ls(void *ctx, const store_ls_row *row)
{
    run_set_add(ctx, row->id);
    return 0;
}

static int cmp_run(const void *a, const void *b)
{
    const run_info *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int collect_key(void *ctx, const store_summary_row *row)
{
    run_info *r = ctx;
    if (r->nkeys < sizeof r->keys / sizeof r->keys[0])
        snprintf(r->keys[r->nkeys++], sizeof r->keys[0], "%s", row->key);
    return 0;
}

static int collect_gate(void *ctx, const store_segment_row *row)
{
    run_info *r = ctx;
    size_t len = strlen(r->gates);
    const char *last = strrchr(r->gates, '>');
    last = last ? last + 1 : r->gates;
    if (len && strcmp(last, row->mode) == 0)
        return 0;   /* a k change or a freeze: the same gate */
    snprintf(r->gates + len, sizeof r->gates - len, "%s%s", len ? ">" : "", row->mode);
    return 0;
}

/* Fills the runs named on the command line, or those of session `session`
 * (an id or a --name), with their names, gates and metric keys. */
static int load_runs(store *st, const char *db, const char *session, run_set *rs, gl_error *e)
{
    if (session) {
        store_ls_filter f = {0};
        size_t id;
        gl_error ignore;
        if (session[strspn(session, "0123456789")] == '\0' &&
            !args_size("--session", session, 1, INT64_MAX, &id, &ignore))
            f.session = (int64_t)id;
        else
            f.session_name = session;
        if (store_list_runs_filtered(st, &f, collect_ls, rs, e))
            return -1;
        if (!rs->n)
            return gl_fail(e, "no session %s with runs in %s", session, db);
        qsort(rs->runs, rs->n, sizeof *rs->runs, cmp_run);
    }
    for (size_t i = 0; i < rs->n; i++) {
        run_info *r = &rs->runs[i];
        store_run_row row;
        if (store_get_run(st, r->id, &row, e))
            return -1;
        snprintf(r->name, sizeof r->name, "%s", row.name);
        snprintf(r->status, sizeof r->status, "%s", row.status);
        snprintf(r->gates, sizeof r->gates, "%s", "");
        store_run_row_free(&row);
        if (store_list_segments(st, r->id, collect_gate, r, e) ||
            store_list_summaries(st, r->id, collect_key, r, e))
            return -1;
        if (!r->gates[0])
            snprintf(r->gates, sizeof r->gates, "%s", "?");
    }
    return 0;
}

static int run_has(const run_info *r, const char *key)
{
    for (size_t k = 0; k < r->nkeys; k++)
        if (strcmp(r->keys[k], key) == 0)
            return 1;
    return 0;
}

static void run_keys_text(const run_info *r, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t k = 0; k < r->nkeys && len + 1 < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", k ? " " : "", r->keys[k]);
    if (!r->nkeys)
        snprintf(buf, n, "none");
}

/* ---- reading series and events ---- */

typedef struct {
    uint64_t *step;
    double *value;
    size_t n, cap;
} series_buf;

static int collect_metric(void *ctx, const store_metric_row *row)
{
    series_buf *b = ctx;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        b->step = gl_grow(b->step, b->n, cap, sizeof *b->step);
        b->value = gl_grow(b->value, b->n, cap, sizeof *b->value);
        b->cap = cap;
    }
    b->step[b->n] = row->step;
    b->value[b->n] = row->value;
    b->n++;
    return 0;
}

typedef struct {
    plot_mark *marks;
    size_t n, cap;
    size_t series;
} mark_buf;

static int collect_event(void *ctx, const store_event_row *row)
{
    mark_buf *m = ctx;
    for (uint32_t k = 0; k < EV_KIND_COUNT; k++)
        if (strcmp(event_kind_name((event_kind)k), row->kind) == 0) {
            char g = event_kind_glyph((event_kind)k);
            if (!g)
                return 0;
            if (m->n == m->cap) {
                m->cap = m->cap ? 2 * m->cap : 16;
                m->marks = gl_grow(m->marks, m->n, m->cap, sizeof *m->marks);
            }
            m->marks[m->n++] = (plot_mark){.series = m->series, .step = row->step, .glyph = g};
            return 0;
        }
    return 0;
}

/* ---- plot ---- */

typedef struct {
    const char *runs_word, *session, *out, *metric, *format, *db;
    const char *smooth_word, *width_word, *height_word, *step_word, *layer_word, *head_word;
    int log_y, heatmap;
} plot_args;

static int parse_plot(int argc, char **argv, plot_args *a)
{
    memset(a, 0, sizeof *a);
    a->db = "sessions/gatelab.db";
    a->metric = "val_loss";
    static const struct {
        const char *flag;
        size_t off;
    } valued[] = {
        {"--session", offsetof(plot_args, session)}, {"--out", offsetof(plot_args, out)},
        {"--metric", offsetof(plot_args, metric)},   {"--format", offsetof(plot_args, format)},
        {"--db", offsetof(plot_args, db)},           {"--smooth", offsetof(plot_args, smooth_word)},
        {"--width", offsetof(plot_args, width_word)},
        {"--height", offsetof(plot_args, height_word)},
        {"--step", offsetof(plot_args, step_word)},  {"--layer", offsetof(plot_args, layer_word)},
        {"--head", offsetof(plot_args, head_word)},
    };
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        size_t v;
        for (v = 0; v < sizeof valued / sizeof valued[0]; v++)
            if (strcmp(f, valued[v].flag) == 0)
                break;
        if (v < sizeof valued / sizeof valued[0]) {
            if (i + 1 >= argc || !*argv[i + 1])
                return cli_usage_error("%s: missing value", f);
            *(const char **)(void *)((char *)a + valued[v].off) = argv[++i];
        } else if (strcmp(f, "--log") == 0) {
            a->log_y = 1;
        } else if (strcmp(f, "--heatmap") == 0) {
            a->heatmap = 1;
        } else if (f[0] == '-') {
            return cli_usage_error("%s: unknown option for plot", f);
        } else if (!a->runs_word) {
            a->runs_word = f;
        } else {
            return cli_usage_error("plot: unexpected argument '%s'", f);
        }
    }
    if (!a->runs_word && !a->session)
        return cli_usage_error("plot: missing RUN[,RUN...] or --session S (run ids from "
                               "gatelab ls)");
    if (a->runs_word && a->session)
        return cli_usage_error("plot: give RUN[,RUN...] or --session S, not both");
    if (!a->out)
        return cli_usage_error("plot: missing --out FILE (.svg, .png or .pdf)");
    if (a->heatmap) {
        if (a->session || strchr(a->runs_word, ','))
            return cli_usage_error("plot --heatmap: one RUN");
        if (a->smooth_word || a->log_y || a->width_word || a->height_word)
            return cli_usage_error("plot --heatmap: --smooth, --log, --width and --height are "
                                   "for charts");
    } else if (a->step_word || a->layer_word || a->head_word) {
        return cli_usage_error("plot: --step, --layer and --head go with --heatmap");
    }
    return 0;
}

/* The format: --format, else the extension of --out, else svg; both given
 * must agree. */
static int plot_format_pick(const plot_args *a, plot_format *f)
{
    gl_error e;
    plot_format ext;
    int has_ext = plot_format_of_path(a->out, &ext) == 0;
    if (a->format) {
        if (plot_format_parse(a->format, f, &e))
            return cli_usage_error("%s", e.msg);
        if (has_ext && ext != *f)
            return cli_usage_error("--format %s: --out %s names %s", a->format, a->out,
                                   plot_format_name(ext));
        return 0;
    }
    *f = has_ext ? ext : PLOT_SVG;
    return 0;
}

static int plot_chart_cmd(store *st, const plot_args *a, run_set *rs, plot_format fmt)
{
    gl_error e;
    double beta = 0.0;
    size_t width = 0, height = 0;
    if (a->smooth_word) {
        char *end;
        errno = 0;
        beta = strtod(a->smooth_word, &end);
        if (errno || end == a->smooth_word || *end || !(beta >= 0.0 && beta < 1.0))
            return cli_usage_error("--smooth %s: an EMA factor B with 0 <= B < 1 (0.98 is the "
                                   "screen's default; 0: raw)", a->smooth_word);
    }
    if (a->width_word && args_size("--width", a->width_word, 320, 20000, &width, &e))
        return cli_usage_error("%s", e.msg);
    if (a->height_word && args_size("--height", a->height_word, 240, 20000, &height, &e))
        return cli_usage_error("%s", e.msg);
    if (load_runs(st, a->db, a->session, rs, &e))
        return cli_runtime_error(&e);
    /* which runs have the metric: a run named on the command line must;
     * a session's runs without it are left out and said so */
    size_t have = 0;
    for (size_t i = 0; i < rs->n; i++)
        have += run_has(&rs->runs[i], a->metric);
    int known = known_index(a->metric);
    if (known < 0 && !have)
        return cli_usage_error("--metric %s: unknown metric (gatelab writes: %s)", a->metric,
                               known_list());
    for (size_t i = 0; i < rs->n; i++) {
        const run_info *r = &rs->runs[i];
        if (run_has(r, a->metric) || (a->session && have))
            continue;
        char keys[512];
        run_keys_text(r, keys, sizeof keys);
        gl_fail(&e, "run %lld (%s) has no metric %s (it has: %s)", (long long)r->id, r->name,
                a->metric, keys);
        return cli_runtime_error(&e);
    }

    size_t n = 0;
    plot_series *series = xcalloc(rs->n, sizeof *series);
    series_buf *bufs = xcalloc(rs->n, sizeof *bufs);
    char (*labels)[256] = xcalloc(rs->n, sizeof *labels);
    mark_buf marks = {0};
    int rc = 0;
    char skipped[256] = "";
    for (size_t i = 0; i < rs->n && !rc; i++) {
        const run_info *r = &rs->runs[i];
        if (!run_has(r, a->metric)) {
            size_t len = strlen(skipped);
            snprintf(skipped + len, sizeof skipped - len, "%s%lld (%s)", len ? ", " : "",
                     (long long)r->id, r->name);
            continue;
        }
        marks.series = n;
        if (store_list_metrics(st, r->id, a->metric, collect_metric, &bufs[n], &e) ||
            store_list_events(st, r->id, collect_event, &marks, &e)) {
            rc = cli_runtime_error(&e);
            break;
        }
        snprintf(labels[n], sizeof labels[n], "#%lld %s (gate %s%s%s)", (long long)r->id,
                 r->name, r->gates, strcmp(r->status, "finished") ? ", " : "",
                 strcmp(r->status, "finished") ? r->status : "");
        series[n] = (plot_series){.label = labels[n], .step = bufs[n].step,
                                  .value = bufs[n].value, .n = bufs[n].n, .color = i};
        n++;
    }
    if (!rc) {
        char title[256];
        if (a->session)
            snprintf(title, sizeof title, "%s of session %s", a->metric, a->session);
        else
            snprintf(title, sizeof title, "%s of run%s %s", a->metric,
                     strchr(a->runs_word, ',') ? "s" : "", a->runs_word);
        plot_chart c = {.title = title,
                        .y_name = a->metric,
                        .y_unit = known >= 0 ? known_metrics[known].unit : "",
                        .log_y = a->log_y,
                        .smooth = beta,
                        .series = series,
                        .nseries = n,
                        .marks = marks.marks,
                        .nmarks = marks.n,
                        .width = (int)width,
                        .height = (int)height};
        plot_chart_info info;
        if (plot_chart_write(&c, a->out, fmt, &info, &e)) {
            rc = cli_runtime_error(&e);
        } else {
            /* the figures of the chart's own note */
            char res[192];
            int len;
            if (info.merged)
                len = snprintf(res, sizeof res, "%zu points merged to %zu (one mean per pixel "
                               "column of %zu)", info.points, info.drawn, info.columns);
            else
                len = snprintf(res, sizeof res, "%zu points, all drawn", info.points);
            if (info.left_out && len > 0 && (size_t)len < sizeof res)
                snprintf(res + len, sizeof res - (size_t)len, ", %zu values left out (%s)",
                         info.left_out, a->log_y ? "<= 0 on the log axis, or not finite"
                                                 : "not finite");
            printf("wrote %s (%s: %s of %zu run%s, %s, %zu event markers)\n", a->out,
                   plot_format_name(fmt), a->metric, n, n == 1 ? "" : "s", res, marks.n);
            if (skipped[0])
                printf("left out (no %s): %s\n", a->metric, skipped);
        }
    }
    for (size_t i = 0; i < rs->n; i++) {
        free(bufs[i].step);
        free(bufs[i].value);
    }
    free(bufs);
    free(series);
    free(labels);
    free(marks.marks);
    return rc;
}

typedef struct {
    uint64_t *steps;
    size_t n, cap;
} step_list;

static int collect_step(void *ctx, uint64_t step)
{
    step_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->steps = gl_grow(l->steps, l->n, l->cap, sizeof *l->steps);
    }
    l->steps[l->n++] = step;
    return 0;
}

/* "100 200 ... 900 1000": the first and last few of a long list */
static void steps_text(const step_list *l, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < l->n && len + 1 < n; i++) {
        if (l->n > 12 && i == 6) {
            len += (size_t)snprintf(buf + len, n - len, " ...");
            i = l->n - 6;
        }
        len += (size_t)snprintf(buf + len, n - len, "%s%llu", i ? " " : "",
                                (unsigned long long)l->steps[i]);
    }
}

static int plot_heatmap_cmd(store *st, const plot_args *a, run_set *rs, plot_format fmt)
{
    gl_error e;
    if (load_runs(st, a->db, NULL, rs, &e))
        return cli_runtime_error(&e);
    const run_info *r = &rs->runs[0];
    store_run_row row;
    if (store_get_run(st, r->id, &row, &e))
        return cli_runtime_error(&e);
    const char *cfg = row.config_json ? row.config_json : "{}";
    size_t L = runspec_json_size(cfg, "layers", 1), H = runspec_json_size(cfg, "heads", 1),
           T = runspec_json_size(cfg, "T", 1);
    store_run_row_free(&row);
    size_t layer = 0, head = 0, step = 0;
    if (a->layer_word && args_size("--layer", a->layer_word, 0, L - 1, &layer, &e))
        return cli_usage_error("%s (run %lld has %zu layer%s)", e.msg, (long long)r->id, L,
                               L == 1 ? "" : "s");
    if (a->head_word && args_size("--head", a->head_word, 0, H - 1, &head, &e))
        return cli_usage_error("%s (run %lld has %zu head%s)", e.msg, (long long)r->id, H,
                               H == 1 ? "" : "s");
    if (a->step_word && args_size("--step", a->step_word, 0, SIZE_MAX - 1, &step, &e))
        return cli_usage_error("%s", e.msg);
    step_list sl = {0};
    int rc = 0;
    if (store_list_heatmap_steps(st, r->id, collect_step, &sl, &e)) {
        rc = cli_runtime_error(&e);
        goto out;
    }
    if (!sl.n) {
        gl_fail(&e, "run %lld (%s) has no heatmaps stored", (long long)r->id, r->name);
        rc = cli_runtime_error(&e);
        goto out;
    }
    /* the step asked for exactly (a heatmap of another step is another
     * picture), or the newest */
    if (!a->step_word) {
        step = (size_t)sl.steps[sl.n - 1];
    } else {
        size_t i = 0;
        while (i < sl.n && sl.steps[i] != step)
            i++;
        if (i == sl.n) {
            char list[256];
            steps_text(&sl, list, sizeof list);
            gl_fail(&e, "run %lld has no heatmap at step %zu (stored at steps: %s)",
                    (long long)r->id, step, list);
            rc = cli_runtime_error(&e);
            goto out;
        }
    }
    heatmap_snapshot *h = heatmap_snapshot_new((uint32_t)L, (uint32_t)H, (uint32_t)T);
    int found;
    if (store_get_heatmaps(st, r->id, step, h, &found, &e)) {
        rc = cli_runtime_error(&e);
    } else if (!found) {
        gl_fail(&e, "run %lld: the heatmaps at step %zu are not of the run's shape (%zu x %zu)",
                (long long)r->id, step, T, T);
        rc = cli_runtime_error(&e);
    } else {
        size_t at = (layer * H + head) * T * T;
        char title[400];
        snprintf(title, sizeof title, "run %lld %s (gate %s): step %zu, layer %zu, head %zu",
                 (long long)r->id, r->name, r->gates, step, layer, head);
        plot_heatmap p = {.title = title, .T = T, .gate = h->gate + at,
                          .oracle = h->oracle + at, .attn = h->attn + at};
        if (plot_heatmap_write(&p, a->out, fmt, &e))
            rc = cli_runtime_error(&e);
        else
            printf("wrote %s (%s: heatmaps of run %lld at step %zu, layer %zu, head %zu)\n",
                   a->out, plot_format_name(fmt), (long long)r->id, step, layer, head);
    }
    heatmap_snapshot_free(h);
out:
    free(sl.steps);
    return rc;
}

int cli_plot(int argc, char **argv)
{
    plot_args a;
    int rc = parse_plot(argc, argv, &a);
    if (rc)
        return rc;
    plot_format fmt;
    if ((rc = plot_format_pick(&a, &fmt)))
        return rc;
    if (plot_unavailable()) {
        fprintf(stderr, "gatelab: plot: %s\n", plot_unavailable());
        return 1;
    }
    run_set rs = {0};
    if (a.runs_word && (rc = parse_run_list("plot", a.runs_word, &rs))) {
        run_set_free(&rs);
        return rc;
    }
    gl_error e;
    store *st = store_open(a.db, STORE_BROWSE, &e);
    if (!st) {
        run_set_free(&rs);
        return cli_runtime_error(&e);
    }
    rc = a.heatmap ? plot_heatmap_cmd(st, &a, &rs, fmt) : plot_chart_cmd(st, &a, &rs, fmt);
    store_close(st);
    run_set_free(&rs);
    return rc;
}

/* ---- export --csv ---- */

typedef struct {
    uint64_t step;
    uint32_t col;
    double value;
} cell;

typedef struct {
    cell *cells;
    size_t n, cap;
    uint32_t col;
} cell_buf;

static int collect_cell(void *ctx, const store_metric_row *row)
{
    cell_buf *b = ctx;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->cells = gl_grow(b->cells, b->n, b->cap, sizeof *b->cells);
    }
    b->cells[b->n++] = (cell){row->step, b->col, row->value};
    return 0;
}

static int cmp_cell(const void *a, const void *b)
{
    const cell *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x->col < y->col ? -1 : x->col > y->col;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The columns: the known keys in their table's order, then any other key
 * the runs have, by name. */
static size_t csv_columns(const run_set *rs, char (*cols)[32], size_t max)
{
    size_t n = 0;
    for (size_t k = 0; k < NKNOWN; k++)
        for (size_t i = 0; i < rs->n; i++)
            if (run_has(&rs->runs[i], known_metrics[k].key)) {
                snprintf(cols[n++], sizeof cols[0], "%s", known_metrics[k].key);
                break;
            }
    size_t first_other = n;
    for (size_t i = 0; i < rs->n; i++)
        for (size_t k = 0; k < rs->runs[i].nkeys && n < max; k++) {
            const char *key = rs->runs[i].keys[k];
            int seen = 0;
            for (size_t c = 0; c < n && !seen; c++)
                seen = strcmp(cols[c], key) == 0;
            if (!seen)
                snprintf(cols[n++], sizeof cols[0], "%s", key);
        }
    qsort(cols + first_other, n - first_other, sizeof cols[0], cmp_name);
    return n;
}

int cli_export_csv(const char *db, const char *runs_word, const char *session, const char *path)
{
    if (runs_word && session)
        return cli_usage_error("export: give RUN[,RUN...] or --session S, not both");
    run_set rs = {0};
    int rc = 0;
    if (runs_word && (rc = parse_run_list("export", runs_word, &rs))) {
        run_set_free(&rs);
        return rc;
    }
    gl_error e;
    store *st = store_open(db, STORE_BROWSE, &e);
    if (!st) {
        run_set_free(&rs);
        return cli_runtime_error(&e);
    }
    char cols[64][32];
    size_t ncols = 0, rows = 0;
    cell_buf cb = {0};
    outfile of;
    int open = 0;
    double *row = NULL;
    if (load_runs(st, db, session, &rs, &e))
        goto fail;
    ncols = csv_columns(&rs, cols, sizeof cols / sizeof cols[0]);
    if (outfile_open(&of, path, &e))
        goto fail;
    open = 1;
    fprintf(of.fp, "run,step");
    for (size_t c = 0; c < ncols; c++)
        fprintf(of.fp, ",%s", cols[c]);
    fputc('\n', of.fp);
    row = xmalloc((ncols ? ncols : 1) * sizeof *row);
    for (size_t i = 0; i < rs.n; i++) {
        cb.n = 0;
        for (size_t c = 0; c < ncols; c++) {
            cb.col = (uint32_t)c;
            if (store_list_metrics(st, rs.runs[i].id, cols[c], collect_cell, &cb, &e))
                goto fail;
        }
        qsort(cb.cells, cb.n, sizeof *cb.cells, cmp_cell);
        for (size_t j = 0; j < cb.n;) {
            uint64_t step = cb.cells[j].step;
            for (size_t c = 0; c < ncols; c++)
                row[c] = NAN;
            for (; j < cb.n && cb.cells[j].step == step; j++)
                row[cb.cells[j].col] = cb.cells[j].value;
            fprintf(of.fp, "%lld,%llu", (long long)rs.runs[i].id, (unsigned long long)step);
            /* %.17g: the stored double, exactly */
            for (size_t c = 0; c < ncols; c++)
                if (isnan(row[c]))
                    fputc(',', of.fp);
                else
                    fprintf(of.fp, ",%.17g", row[c]);
            fputc('\n', of.fp);
            rows++;
        }
    }
    open = 0;
    if (outfile_close(&of, 1, &e))
        goto fail;
    printf("exported %zu rows (%zu run%s, %zu metrics) to %s\n", rows, rs.n,
           rs.n == 1 ? "" : "s", ncols, path);
    goto done;
fail:
    if (open)
        outfile_close(&of, 0, &e);
    rc = cli_runtime_error(&e);
done:
    free(row);
    free(cb.cells);
    store_close(st);
    run_set_free(&rs);
    return rc;
}
