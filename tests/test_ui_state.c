/* test_ui_state: the screen's model of a session (include/ui_state.h) behind
 * the main chart's metric views — linear series that keep zeros and
 * negative values while loss series keep only what a log axis can show,
 * both bounded by pairwise merging past UI_SERIES_CAP with the mean kept;
 * the per-arm series folded from REC_STEP, REC_EVAL and REC_LAYER records
 * (a metric an arm does not have stays empty; density and flip rate are the
 * mean over layers of the mean over heads, as the evaluation record's means
 * are); the same series read back from a database the way `replay` reads
 * them (every key ui_series_key_name names is one the store writes); and
 * the view keys m / v / p / z (cycle, hide, pin, zoom) on a ui_view. */
#include "store_fixture.h"

#include "ui_screen.h"
#include "ui_state.h"

/* ---- series ---- */

static double series_mean(const ui_series *s, size_t *raw)
{
    double sum = 0.0;
    *raw = 0;
    for (size_t i = 0; i < ui_series_points(s); i++) {
        uint64_t step;
        double v, lv;
        uint32_t n;
        ui_series_point(s, i, &step, &v, &lv, &n);
        sum += v * n;
        *raw += n;
    }
    return *raw ? sum / (double)*raw : NAN;
}

static void test_series(void)
{
    printf("# ui_series: loss and linear series\n");
    ui_series loss, lin;
    ui_series_init(&loss);
    ui_series_init_linear(&lin);
    const double vals[] = {2.0, 0.0, -1.5, NAN, INFINITY, 0.5};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        ui_series_add(&loss, 10 * (i + 1), vals[i]);
        ui_series_add(&lin, 10 * (i + 1), vals[i]);
    }
    CHECK(loss.count == 2 && ui_series_points(&loss) == 2,
          "a loss series keeps only the positive finite values (%zu kept)", loss.count);
    CHECK(lin.count == 4 && ui_series_points(&lin) == 4,
          "a linear series keeps 0 and negative values, skips NaN and inf (%zu kept)",
          lin.count);
    CHECK(lin.min == -1.5 && lin.min_step == 30 && lin.max == 2.0 && lin.max_step == 10 &&
              lin.last == 0.5 && lin.last_step == 60,
          "linear min %g @%llu, max %g @%llu, last %g @%llu", lin.min,
          (unsigned long long)lin.min_step, lin.max, (unsigned long long)lin.max_step, lin.last,
          (unsigned long long)lin.last_step);
    double v;
    CHECK(ui_series_at(&lin, 20, &v) && v == 0.0, "the zero is there at its step (%g)", v);
    ui_series_free(&lin);
    CHECK(lin.linear == 1 && lin.count == 0, "a freed linear series stays linear and empty");
    ui_series_add(&lin, 1, -3.0);
    CHECK(lin.count == 1, "and still takes a negative value");
    ui_series_free(&lin);
    ui_series_free(&loss);

    printf("# ui_series: bounded by pairwise merging, the mean kept\n");
    ui_series_init_linear(&lin);
    size_t total = 3 * UI_SERIES_CAP + 5;
    double exact = 0.0;
    for (size_t i = 0; i < total; i++) {
        double x = (i % 3 == 0) ? 0.0 : sin((double)i) - 0.5;
        ui_series_add(&lin, i + 1, x);
        exact += x;
    }
    exact /= (double)total;
    size_t raw;
    double mean = series_mean(&lin, &raw);
    CHECK(ui_series_points(&lin) <= UI_SERIES_CAP + 1 && lin.cap <= UI_SERIES_CAP,
          "%zu values in %zu points (cap %d)", total, ui_series_points(&lin), UI_SERIES_CAP);
    CHECK(raw == total && fabs(mean - exact) < 1e-9,
          "every raw value is in a point (%zu of %zu) and the mean is kept (%.12f vs %.12f)", raw,
          total, mean, exact);
    uint64_t first, last;
    uint32_t n;
    double lv;
    ui_series_point(&lin, 0, &first, &v, &lv, &n);
    ui_series_point(&lin, ui_series_points(&lin) - 1, &last, &v, &lv, &n);
    CHECK(first <= 8 && last == total, "the points still span the run (steps %llu..%llu)",
          (unsigned long long)first, (unsigned long long)last);
    ui_series_free(&lin);
}

/* ---- records ---- */

#define L_ 2
#define H_ 2

static tel_record step_rec(uint32_t arm, uint64_t step, double loss, double gn, double lr)
{
    tel_record r = rec(REC_STEP, step);
    r.arm = arm;
    r.u.step.loss = loss;
    r.u.step.grad_norm = gn;
    r.u.step.lr = lr;
    return r;
}

/* Density of (layer, head) at a step: distinct per head so the means show. */
static double density_of(uint64_t step, uint32_t l, uint32_t h)
{
    return 0.1 * (l + 1) + 0.01 * h + 0.0001 * (double)step;
}

static tel_record layer_rec(uint32_t arm, uint64_t step, uint32_t l, uint32_t h, int gate)
{
    tel_record r = rec(REC_LAYER, step);
    r.arm = arm;
    r.u.layer.layer = l;
    r.u.layer.head = h;
    for (int k = 0; k < METRIC_COUNT; k++)
        r.u.layer.value[k] = NAN;
    r.u.layer.value[METRIC_DENSITY] = density_of(step, l, h);
    /* a gate: F1 and flips (not on head 1 of layer 1: an undefined head is
     * left out of its layer's mean, not counted as 0) */
    if (gate) {
        r.u.layer.value[METRIC_F1] = 0.5;
        if (!(l == 1 && h == 1))
            r.u.layer.value[METRIC_FLIP_RATE] = l == 0 ? 0.0 : 0.2 + 0.1 * h;
    }
    return r;
}

static tel_record eval_rec(uint32_t arm, uint64_t step, int gate, int experts)
{
    tel_record r = rec(REC_EVAL, step);
    r.arm = arm;
    r.u.eval.val_loss = 2.0 - 0.001 * (double)step;
    r.u.eval.val_ppl = exp(r.u.eval.val_loss);
    r.u.eval.bits_per_byte = NAN;
    r.u.eval.f1 = gate ? 0.5 : NAN;
    r.u.eval.mass_kept = gate ? 0.6 : NAN;
    r.u.eval.oracle_mass = 0.9;
    r.u.eval.gate_grad_norm = gate ? (step == 20 ? 0.0 : 0.25) : NAN;  /* 0: a hard gate */
    r.u.eval.tokens_per_s = 1000.0 + (double)step;
    r.u.eval.train_loss = 2.5;
    r.u.eval.expert_balance = experts ? 1.0 + 0.001 * (double)step : NAN;
    return r;
}

/* The session both tests use: arm 0 soft (a gate), arm 1 dense (none),
 * steps 1..40 with an evaluation (and its layer records first, as an arm
 * sends them) every 10 steps. feed: into a ui_state, or into a store run. */
typedef int (*feed_fn)(void *ctx, uint32_t arm, const tel_record *r);

static int feed_session(feed_fn fn, void *ctx, int experts)
{
    for (uint64_t step = 1; step <= 40; step++)
        for (uint32_t a = 0; a < 2; a++) {
            /* lr 0 at step 40: min_lr_frac 0 ends the cosine there */
            tel_record s = step_rec(a, step, 3.0 - 0.01 * (double)step, 1.0 + a,
                                    step == 40 ? 0.0 : 3e-3);
            if (fn(ctx, a, &s))
                return -1;
            if (step % 10)
                continue;
            for (uint32_t l = 0; l < L_; l++)
                for (uint32_t h = 0; h < H_; h++) {
                    tel_record lr = layer_rec(a, step, l, h, a == 0);
                    if (fn(ctx, a, &lr))
                        return -1;
                }
            tel_record e = eval_rec(a, step, a == 0, experts);
            if (fn(ctx, a, &e))
                return -1;
        }
    return 0;
}

static int into_state(void *ctx, uint32_t arm, const tel_record *r)
{
    (void)arm;
    ui_state_record(ctx, r);
    return 0;
}

static void check_series(const char *who, const ui_arm *soft, const ui_arm *dense)
{
    const ui_series *m = soft->metric;
    CHECK(m[UI_SER_GRAD_NORM].count == 40 && m[UI_SER_LR].count == 40 &&
              dense->metric[UI_SER_GRAD_NORM].count == 40,
          "%s: grad norm and lr every step, lr 0 kept (%zu, %zu)", who,
          m[UI_SER_GRAD_NORM].count, m[UI_SER_LR].count);
    double v = -1;
    CHECK(ui_series_at(&m[UI_SER_LR], 40, &v) && v == 0.0, "%s: the lr at step 40 is 0 (%g)",
          who, v);
    CHECK(m[UI_SER_F1].count == 4 && m[UI_SER_MASS_KEPT].count == 4 &&
              m[UI_SER_GATE_GRAD_NORM].count == 4 && m[UI_SER_TOKENS_PER_S].count == 4,
          "%s: the gated arm has F1, mass kept, gate grad norm and tokens/s at each of 4 "
          "evaluations", who);
    CHECK(ui_series_at(&m[UI_SER_GATE_GRAD_NORM], 20, &v) && v == 0.0,
          "%s: a gate gradient norm of 0 is a value, not an absence (%g)", who, v);
    CHECK(dense->metric[UI_SER_F1].count == 0 && dense->metric[UI_SER_MASS_KEPT].count == 0 &&
              dense->metric[UI_SER_GATE_GRAD_NORM].count == 0 &&
              dense->metric[UI_SER_FLIP_RATE].count == 0 &&
              dense->metric[UI_SER_TOKENS_PER_S].count == 4,
          "%s: the dense arm has no F1, mass kept, gate grad norm or flip rate; it has "
          "tokens/s", who);
    /* density at step 30: layer means (0.1 + 0.005 + 0.003, 0.2 + 0.005 +
     * 0.003), their mean 0.158 */
    double want = ((0.1 + 0.005 + 0.003) + (0.2 + 0.005 + 0.003)) / 2;
    CHECK(ui_series_at(&m[UI_SER_DENSITY], 30, &v) && fabs(v - want) < 1e-12 &&
              dense->metric[UI_SER_DENSITY].count == 4,
          "%s: density = the mean over layers of the mean over heads (%.6f, want %.6f)", who,
          v, want);
    /* flip rate: layer 0 heads 0, 0 -> 0; layer 1 only head 0 -> 0.2 */
    CHECK(ui_series_at(&m[UI_SER_FLIP_RATE], 30, &v) && fabs(v - 0.1) < 1e-12,
          "%s: flip rate 0.1 (layer 0: 0; layer 1: its one defined head, 0.2), got %g", who,
          v);
}

static void test_records(void)
{
    printf("# ui_state_record: the metric series of every arm\n");
    ui_state st;
    ui_state_init(&st, L_, H_, 8, 2, 40);
    feed_session(into_state, &st, 0);
    CHECK(st.narms == 2, "two arms (%zu)", st.narms);
    check_series("live", &st.arms[0], &st.arms[1]);
    CHECK(!ui_state_has_experts(&st), "no expert balance: not an MoE session");
    ui_state_free(&st);

    ui_state_init(&st, L_, H_, 8, 2, 40);
    feed_session(into_state, &st, 1);
    CHECK(ui_state_has_experts(&st) && st.arms[0].metric[UI_SER_EXPERT_BALANCE].count == 4,
          "with experts: an expert-balance series (%zu points)",
          st.arms[0].metric[UI_SER_EXPERT_BALANCE].count);

    /* layer records of another evaluation than the record's: no mean */
    tel_record l = layer_rec(0, 45, 0, 0, 1);
    ui_state_record(&st, &l);
    tel_record e = eval_rec(0, 50, 1, 1);
    ui_state_record(&st, &e);
    CHECK(st.arms[0].metric[UI_SER_DENSITY].count == 4,
          "layer records of step 45 give step 50's evaluation no density");
    ui_state_free(&st);
}

/* ---- the store: what replay reads ---- */

typedef struct {
    store *s;
    int64_t run[2];
} store_feed;

static int into_store(void *ctx, uint32_t arm, const tel_record *r)
{
    store_feed *f = ctx;
    return write_or_die(f->s, f->run[arm], r);
}

static int to_series(void *ctx, const store_metric_row *row)
{
    ui_series_add(ctx, row->step, row->value);
    return 0;
}

static void test_store_keys(void)
{
    printf("# the same series from the database (replay's reading)\n");
    char *path = tmp_path("chart.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "gatelab run --arms soft,dense", &err);
    GL_ASSERT(session > 0);
    store_feed f = {s, {0, 0}};
    const char *modes[2] = {"soft", "dense"};
    for (uint32_t a = 0; a < 2; a++) {
        store_run_desc d = {.arm = a, .name = modes[a], .mode = modes[a], .k = 4, .seed = 1,
                            .config_json = "{\"layers\":2,\"heads\":2}"};
        f.run[a] = store_run_begin(s, session, &d, &err);
        GL_ASSERT(f.run[a] > 0);
    }
    GL_ASSERT(store_begin(s, &err) == 0);
    CHECK(feed_session(into_store, &f, 0) == 0, "the session written through store_write");
    GL_ASSERT(store_commit(s, &err) == 0);

    ui_state st;
    ui_state_init(&st, L_, H_, 8, 2, 40);
    int rc = 0;
    for (uint32_t a = 0; a < 2 && !rc; a++) {
        ui_arm *arm = ui_state_arm(&st, a, modes[a]);
        for (int k = 0; k < UI_SER_COUNT && !rc; k++) {
            int per_layer;
            const char *key = ui_series_key_name((ui_series_key)k, &per_layer);
            rc = per_layer ? store_list_layer_means(s, f.run[a], key, to_series,
                                                    &arm->metric[k], &err)
                           : store_list_metrics(s, f.run[a], key, to_series, &arm->metric[k],
                                                &err);
        }
    }
    CHECK(rc == 0, "every series key read back (%s)", rc ? err.msg : "ok");
    check_series("database", &st.arms[0], &st.arms[1]);
    int per_layer = -1;
    CHECK(strcmp(ui_series_key_name(UI_SER_DENSITY, &per_layer),
                 metric_name(METRIC_DENSITY)) == 0 && per_layer == 1 &&
              strcmp(ui_series_key_name(UI_SER_FLIP_RATE, NULL),
                     metric_name(METRIC_FLIP_RATE)) == 0,
          "density and flip rate are layer_metrics keys");
    ui_state_free(&st);
    store_close(s);
    free(path);
}

/* ---- the view keys ---- */

static void test_view(void)
{
    printf("# m / v / p / z on the view\n");
    ui_state st;
    ui_state_init(&st, L_, H_, 8, 2, 40);
    feed_session(into_state, &st, 0);
    ui_view v;
    ui_view_init(&v, UI_LIVE);
    CHECK(v.chart == UI_CHART_LOSS && v.zoom == 0 && !v.pinned && !v.hidden,
          "a new view: the loss chart, every step, every arm");
    int seen[UI_CHART_COUNT] = {0}, steps = 0;
    do {
        unsigned d = ui_screen_view_action(NULL, &v, &st, UI_ACT_CHART);
        seen[v.chart]++;
        steps++;
        if (!(d & UI_DIRTY_LOSS))
            break;
    } while (v.chart != UI_CHART_LOSS && steps < 3 * UI_CHART_COUNT);
    CHECK(steps == UI_CHART_COUNT - 1 && !seen[UI_CHART_EXPERT_BALANCE],
          "m cycles back to loss in %d presses, skipping expert balance without experts",
          steps);
    tel_record e = eval_rec(1, 50, 0, 1);
    ui_state_record(&st, &e);
    steps = 0;
    int balance = 0;
    do {
        ui_screen_view_action(NULL, &v, &st, UI_ACT_CHART);
        balance |= v.chart == UI_CHART_EXPERT_BALANCE;
        steps++;
    } while (v.chart != UI_CHART_LOSS && steps < 3 * UI_CHART_COUNT);
    CHECK(steps == UI_CHART_COUNT && balance, "with experts the cycle has all %d charts",
          UI_CHART_COUNT);

    CHECK(ui_view_shows_arm(&v, 0) && ui_view_shows_arm(&v, 1), "every arm shown at first");
    v.sel = 1;
    ui_screen_view_action(NULL, &v, &st, UI_ACT_HIDE);
    CHECK(ui_view_shows_arm(&v, 0) && !ui_view_shows_arm(&v, 1) && strstr(v.msg, "hidden"),
          "v hides the selected arm (%s)", v.msg);
    v.sel = 0;
    ui_screen_view_action(NULL, &v, &st, UI_ACT_PIN);
    CHECK(v.pinned == 1 && ui_view_shows_arm(&v, 0) && !ui_view_shows_arm(&v, 1),
          "p pins the selected arm: only it is shown");
    v.sel = 1;
    ui_screen_view_action(NULL, &v, &st, UI_ACT_PIN);
    CHECK(v.pinned == 2 && !ui_view_shows_arm(&v, 0) && ui_view_shows_arm(&v, 1),
          "p on another arm moves the pin (a hidden arm pinned is shown)");
    ui_screen_view_action(NULL, &v, &st, UI_ACT_PIN);
    CHECK(v.pinned == 0 && ui_view_shows_arm(&v, 0) && !ui_view_shows_arm(&v, 1),
          "p again unpins; the hidden arm stays hidden");
    ui_screen_view_action(NULL, &v, &st, UI_ACT_HIDE);
    CHECK(ui_view_shows_arm(&v, 1), "v again shows it");
    v.sel = 0;
    ui_screen_view_action(NULL, &v, &st, UI_ACT_PIN);
    ui_screen_view_action(NULL, &v, &st, UI_ACT_HIDE);
    CHECK(!v.pinned && !ui_view_shows_arm(&v, 0) && ui_view_shows_arm(&v, 1),
          "v on the pinned arm hides it and releases the pin");

    uint64_t windows[UI_ZOOM_LEVELS + 1];
    for (int i = 0; i <= UI_ZOOM_LEVELS; i++) {
        windows[i] = ui_zoom_steps[v.zoom];
        ui_screen_view_action(NULL, &v, &st, UI_ACT_ZOOM);
    }
    CHECK(windows[0] == 0 && windows[1] > windows[2] && windows[2] > windows[3] &&
              windows[3] > 0 && windows[UI_ZOOM_LEVELS] == 0,
          "z: every step, then narrower windows (%llu, %llu, %llu), then every step again",
          (unsigned long long)windows[1], (unsigned long long)windows[2],
          (unsigned long long)windows[3]);
    ui_state_free(&st);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_test_ui_state_XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));
    test_series();
    test_records();
    test_store_keys();
    test_view();
    rm_tree(tmpdir);
    return check_finish();
}
