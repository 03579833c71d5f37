/* replay: a stored session drawn with the live screen's panels. Curves come
 * from `metrics` (and the density and flip-rate charts from the means of
 * `layer_metrics`), the agreement bars from `layer_metrics` at the cursor step,
 * the heatmaps from `heatmaps`, each arm's gate from its `segments`, the
 * events line from `events`. The cursor walks the evaluation steps; the
 * per-step tables are read again only when it moves (or the arm changes). */
#include "ui.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gate.h"
#include "runspec_read.h"
#include "store.h"
#include "ui_screen.h"

typedef struct {
    uint64_t from;
    uint32_t mode, k, frozen;
} rp_segment;

typedef struct {
    int64_t run;
    uint32_t arm;
    char name[64];
    run_status final;
    uint64_t last_step;
    rp_segment *segs;
    size_t nsegs;
} rp_run;

typedef struct {
    uint64_t step;
    uint32_t arm, kind;
    char detail[REC_TEXT];
} rp_event;

typedef struct {
    store *s;
    ui_screen *scr;
    ui_state st;
    ui_view view;
    rp_run runs[LIVE_MAX_ARMS];
    size_t nruns;
    uint64_t *steps;           /* evaluation steps of every run, sorted, unique */
    size_t nsteps;
    rp_event *events;
    size_t nevents, cap_events;
    size_t heat_arm;           /* whose heatmap is loaded, at which step */
    uint64_t heat_step;
    int heat_loaded;
    gl_error *err;
    int failed;
    const ui_options *opt;     /* `w` writes through it */
} replay;

/* ---- loading ---- */

typedef struct {
    store_run_row rows[LIVE_MAX_ARMS];
    size_t n;
    size_t skipped;
} run_list;

static int collect_run(void *ctx, const store_run_row *row)
{
    run_list *l = ctx;
    if (l->n == LIVE_MAX_ARMS || row->arm >= LIVE_MAX_ARMS) {
        l->skipped++;
        return 0;
    }
    store_run_row *r = &l->rows[l->n++];
    *r = *row;
    r->config_json = xstrdup(row->config_json ? row->config_json : "{}");
    return 0;
}

static int cmp_arm(const void *a, const void *b)
{
    const store_run_row *x = a, *y = b;
    return x->arm < y->arm ? -1 : x->arm > y->arm;
}

typedef struct {
    ui_series *s;
} sink;

static int add_metric(void *ctx, const store_metric_row *row)
{
    ui_series_add(((sink *)ctx)->s, row->step, row->value);
    return 0;
}

typedef struct {
    rp_run *r;
} seg_sink;

static int add_segment(void *ctx, const store_segment_row *row)
{
    rp_run *r = ((seg_sink *)ctx)->r;
    gate_mode m;
    if (gate_mode_parse(row->mode, &m))
        m = GATE_DENSE;
    r->segs = gl_grow(r->segs, r->nsegs, r->nsegs + 1, sizeof *r->segs);
    r->segs[r->nsegs++] = (rp_segment){row->from_step, (uint32_t)m, row->k, (uint32_t)row->frozen};
    return 0;
}

typedef struct {
    replay *rp;
    uint32_t arm;
} ev_sink;

static int add_event(void *ctx, const store_event_row *row)
{
    ev_sink *e = ctx;
    replay *rp = e->rp;
    uint32_t kind = EV_KIND_COUNT;
    for (uint32_t k = 0; k < EV_KIND_COUNT; k++)
        if (strcmp(event_kind_name((event_kind)k), row->kind) == 0)
            kind = k;
    if (kind == EV_KIND_COUNT)
        return 0;
    if (rp->nevents == rp->cap_events) {
        rp->cap_events = rp->cap_events ? 2 * rp->cap_events : 64;
        rp->events = gl_grow(rp->events, rp->nevents, rp->cap_events, sizeof *rp->events);
    }
    rp_event *ev = &rp->events[rp->nevents++];
    ev->step = row->step;
    ev->arm = e->arm;
    ev->kind = kind;
    snprintf(ev->detail, sizeof ev->detail, "%s", row->detail);
    return 0;
}

static int cmp_event(const void *a, const void *b)
{
    const rp_event *x = a, *y = b;
    return x->step < y->step ? -1 : x->step > y->step ? 1 : (int)x->arm - (int)y->arm;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int load(replay *rp, int64_t session, gl_error *err)
{
    run_list *l = xcalloc(1, sizeof *l);
    int rc = store_list_runs(rp->s, session, collect_run, l, err);
    if (!rc && l->n == 0)
        rc = gl_fail(err, "session %lld has no runs", (long long)session);
    if (rc) {
        for (size_t i = 0; i < l->n; i++)
            store_run_row_free(&l->rows[i]);
        free(l);
        return -1;
    }
    qsort(l->rows, l->n, sizeof l->rows[0], cmp_arm);
    const char *cfg = l->rows[0].config_json;
    /* the run's shape from its config JSON, read through the run-spec
     * table's rows (a distilled run's config has none: the defaults) */
    ui_state_init(&rp->st, runspec_json_size(cfg, "layers", 1), runspec_json_size(cfg, "heads", 1),
                  runspec_json_size(cfg, "T", 1), runspec_json_size(cfg, "batch", 1),
                  runspec_json_size(cfg, "steps", 0));
    rp->st.session = session;
    size_t nsteps_cap = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        const store_run_row *row = &l->rows[i];
        ui_arm *a = ui_state_arm(&rp->st, row->arm, row->name);
        rp_run *r = &rp->runs[rp->nruns++];
        r->run = row->id;
        r->arm = row->arm;
        snprintf(r->name, sizeof r->name, "%s", row->name);
        if (run_status_parse(row->status, &r->final))
            r->final = RUN_CRASHED;
        r->last_step = row->steps;
        a->run = row->id;
        a->start_step = 0;
        gate_mode m;
        a->mode = gate_mode_parse(row->mode, &m) ? GATE_DENSE : (uint32_t)m;
        a->k = row->k;
        a->frozen = (uint32_t)row->frozen;
        a->have_gate = 1;
        a->start_mode = a->mode;           /* runs.mode: the gate at its start */
        a->forked = row->parent_run != 0;
        sink tr = {&a->train}, va = {&a->val};
        seg_sink ss = {r};
        ev_sink es = {rp, row->arm};
        rc = store_list_metrics(rp->s, row->id, "train_loss", add_metric, &tr, err);
        if (!rc)
            rc = store_list_metrics(rp->s, row->id, "val_loss", add_metric, &va, err);
        /* the main chart's other metrics (`m`): a key the run never
         * stored (F1 of a dense run) leaves its series empty */
        for (int k = 0; k < UI_SER_COUNT && !rc; k++) {
            int per_layer;
            const char *key = ui_series_key_name((ui_series_key)k, &per_layer);
            sink ms = {&a->metric[k]};
            rc = per_layer ? store_list_layer_means(rp->s, row->id, key, add_metric, &ms, err)
                           : store_list_metrics(rp->s, row->id, key, add_metric, &ms, err);
        }
        if (!rc)
            rc = store_list_segments(rp->s, row->id, add_segment, &ss, err);
        if (!rc)
            rc = store_list_events(rp->s, row->id, add_event, &es, err);
        /* the evaluation steps of this run join the cursor's stops */
        size_t np = ui_series_points(&a->val);
        if (rp->nsteps + np > nsteps_cap) {
            nsteps_cap = 2 * (rp->nsteps + np) + 16;
            rp->steps = gl_grow(rp->steps, rp->nsteps, nsteps_cap, sizeof *rp->steps);
        }
        for (size_t p = 0; p < np; p++) {
            double v, lv;
            uint32_t n;
            ui_series_point(&a->val, p, &rp->steps[rp->nsteps++], &v, &lv, &n);
        }
        if (row->parent_run && r->nsegs)
            a->start_step = r->segs[0].from;
    }
    for (size_t i = 0; i < l->n; i++)
        store_run_row_free(&l->rows[i]);
    free(l);
    if (rc)
        return -1;
    qsort(rp->steps, rp->nsteps, sizeof *rp->steps, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < rp->nsteps; i++)
        if (u == 0 || rp->steps[u - 1] != rp->steps[i])
            rp->steps[u++] = rp->steps[i];
    rp->nsteps = u;
    qsort(rp->events, rp->nevents, sizeof *rp->events, cmp_event);
    /* markers for the whole run; the events line follows the cursor */
    for (size_t i = 0; i < rp->nevents; i++) {
        const rp_event *e = &rp->events[i];
        ui_state_event(&rp->st, e->arm, e->step, e->kind, e->detail, 0, 0, 0, 0);
    }
    return 0;
}

/* ---- the cursor ---- */

typedef struct {
    ui_state *st;
    ui_arm *a;
    int any;
} layer_sink;

static int add_layer(void *ctx, const store_layer_row *row)
{
    layer_sink *ls = ctx;
    if (row->layer >= ls->st->L || row->head >= ls->st->H)
        return 0;
    for (int k = 0; k < METRIC_COUNT; k++)
        if (strcmp(metric_name((metric_key)k), row->key) == 0) {
            ls->a->layer[((size_t)row->layer * ls->st->H + row->head) * METRIC_COUNT + k] =
                row->value;
            ls->any = 1;
        }
    return 0;
}

static int load_heat(replay *rp, size_t arm, uint64_t step)
{
    if (rp->heat_loaded && rp->heat_arm == arm && rp->heat_step == step)
        return 0;
    ui_state *st = &rp->st;
    if (arm >= st->narms)
        return 0;
    heatmap_snapshot *heat = ui_state_heat(st, arm);
    ui_arm *a = &st->arms[arm];
    int any;
    if (store_get_heatmaps(rp->s, a->run, step, heat, &any, rp->err))
        return -1;
    a->have_heat = any;
    a->heat_step = step;
    rp->heat_arm = arm;
    rp->heat_step = step;
    rp->heat_loaded = 1;
    return 0;
}

static int set_cursor(replay *rp, size_t idx)
{
    ui_state *st = &rp->st;
    ui_view *v = &rp->view;
    if (rp->nsteps == 0) {
        v->cursor = ui_state_max_step(st);
        v->cursor_index = 0;
        v->cursor_count = 0;
        return 0;
    }
    if (idx >= rp->nsteps)
        idx = rp->nsteps - 1;
    uint64_t step = rp->steps[idx];
    v->cursor = step;
    v->cursor_index = idx;
    v->cursor_count = rp->nsteps;
    for (size_t i = 0; i < rp->nruns; i++) {
        const rp_run *r = &rp->runs[i];
        ui_arm *a = &st->arms[r->arm];
        size_t n = st->L * st->H * METRIC_COUNT;
        for (size_t j = 0; j < n; j++)
            a->layer[j] = NAN;
        layer_sink ls = {st, a, 0};
        if (store_list_layer_metrics_at(rp->s, r->run, step, add_layer, &ls, rp->err))
            return -1;
        a->have_layer = ls.any;
        a->layer_step = step;
        /* the gate that trained the step ending at the cursor: a segment
         * from step S governs steps S+1.. (a command takes effect once S
         * steps are done, after that step's evaluation) */
        for (size_t s = 0; s < r->nsegs; s++)
            if (r->segs[s].from < step || r->segs[s].from == 0) {
                a->mode = r->segs[s].mode;
                a->k = r->segs[s].k;
                a->frozen = r->segs[s].frozen;
            }
        a->step = step < r->last_step ? step : r->last_step;
        a->status = step < r->last_step ? RUN_RUNNING : r->final;
        a->done = step >= r->last_step;
    }
    st->nevents = 0;
    for (size_t i = 0; i < rp->nevents && rp->events[i].step <= step; i++)
        ui_state_log_event(st, rp->events[i].arm, rp->events[i].step, rp->events[i].kind,
                           rp->events[i].detail);
    return load_heat(rp, v->sel, step);
}

/* ---- the loop ---- */

static int run_loop(replay *rp, int *signal_out)
{
    sigset_t sigs, old;
    gl_stop_signal_set(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    ui_view *v = &rp->view;
    unsigned dirty = UI_DIRTY_ALL;
    int rc = 0;
    for (;;) {
        if (dirty) {
            ui_screen_draw(rp->scr, &rp->st, v, dirty);
            dirty = 0;
        }
        int ch = ui_screen_getch(rp->scr, 100);
        struct timespec zero = {0, 0};
        int s = sigtimedwait(&sigs, NULL, &zero);
        if (s > 0) {
            *signal_out = s;
            break;
        }
        /* the terminal closed and no SIGHUP reached us: the same way out */
        if (ch == ERR && ui_screen_hung_up(rp->scr)) {
            *signal_out = SIGHUP;
            break;
        }
        if (ch == ERR) {
            dirty |= ui_view_settle(v, NULL, gl_now());
            continue;
        }
        dirty |= UI_DIRTY_KEYS;
        if (v->help && ch != KEY_RESIZE) {
            v->help = 0;
            dirty = UI_DIRTY_ALL;
            continue;
        }
        ui_action act = ui_screen_action(v, ch);
        size_t idx = v->cursor_index;
        if (act == UI_ACT_QUIT)
            break;
        switch (act) {
        case UI_ACT_STEP_PREV:
            idx = idx ? idx - 1 : 0;
            break;
        case UI_ACT_STEP_NEXT:
            idx = idx + 1 < rp->nsteps ? idx + 1 : idx;
            break;
        case UI_ACT_STEP_FIRST:
            idx = 0;
            break;
        case UI_ACT_STEP_LAST:
            idx = rp->nsteps ? rp->nsteps - 1 : 0;
            break;
        case UI_ACT_WRITE:
            dirty |= ui_screen_write(v, &rp->st, rp->opt, v->cursor);
            break;
        default:
            dirty |= ui_screen_view_action(rp->scr, v, &rp->st, act);
            if (act == UI_ACT_NEXT_ARM && load_heat(rp, v->sel, v->cursor))
                rc = -1;
            break;
        }
        if (rc)
            break;
        if (idx != v->cursor_index) {
            if (set_cursor(rp, idx)) {
                rc = -1;
                break;
            }
            dirty = UI_DIRTY_ALL;
        }
    }
    /* a signal still pending is taken, not left to kill us with the screen up */
    for (int s; (s = sigtimedwait(&sigs, NULL, &(struct timespec){0, 0})) > 0;)
        if (!*signal_out)
            *signal_out = s;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int ui_replay(const char *db_path, int64_t session, const ui_options *o, int *fallback,
              int *signal_out, gl_error *err)
{
    *fallback = 0;
    *signal_out = 0;
    replay *rp = xcalloc(1, sizeof *rp);
    rp->err = err;
    rp->opt = o;
    int rc = -1;
    rp->s = store_open(db_path, STORE_BROWSE, err);
    if (!rp->s)
        goto out;
    if (session == 0) {
        session = store_last_session(rp->s, err);
        if (session < 0)
            goto out;
        if (session == 0) {
            gl_fail(err, "%s has no sessions to replay", db_path);
            goto out;
        }
    }
    store_session_row srow;
    if (store_get_session(rp->s, session, &srow, err))
        goto out;
    store_session_row_free(&srow);
    if (load(rp, session, err))
        goto out;
    ui_view_init(&rp->view, UI_REPLAY);
    if (set_cursor(rp, rp->nsteps ? rp->nsteps - 1 : 0))
        goto out;
    int open_rc = ui_screen_open(&rp->scr, o->out, o->in, o->term, o->allow_small, err);
    if (open_rc) {
        *fallback = open_rc != UI_SCREEN_TOO_SMALL;
        rc = open_rc;
        goto out;
    }
    rc = run_loop(rp, signal_out);
out:
    ui_screen_close(rp->scr);
    store_close(rp->s);
    for (size_t i = 0; i < rp->nruns; i++)
        free(rp->runs[i].segs);
    free(rp->steps);
    free(rp->events);
    ui_state_free(&rp->st);
    free(rp);
    return rc;
}
