/* bench_ui: what the screen costs. One run, figures printed, no assertions.
 *
 * 1. Synthetic: the screen's own code (ui_state folding records, ui_screen_draw
 *    at 10 frames a second) on a pseudo-terminal of 120x40, fed a recorded-
 *    style stream of three arms of the tiny preset's shape (4 layers, 4 heads,
 *    T = 128) with 20k steps of history, 100 steps/s per arm, an evaluation
 *    (16 layer records and a 786 KB heatmap copy, as latest_read does) every
 *    100 steps. Reports the UI thread's CPU time per wall second, the cost of
 *    one full redraw, and the bytes curses wrote to the terminal.
 * 2. Real: live_run of three arms (soft, random, dense) of a small model,
 *    once with a headless observer that prints nothing and once with the
 *    screen (ui_live on a pseudo-terminal), alternating, twice each. Reports
 *    the arms' own tokens/s (from their evaluation records) and the main
 *    thread's CPU per wall second, so the difference is what the screen takes
 *    from the arms and costs the main thread.
 * A thread reads the pseudo-terminal's master side and throws the bytes
 * away, standing in for a terminal emulator (whose own CPU is not counted). */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "live.h"
#include "model.h"
#include "ui.h"
#include "ui_screen.h"
#include "ui_state.h"

/* ---- pseudo-terminal ---- */

typedef struct {
    int master, slave;
    FILE *out, *in;
    pthread_t drain;
    atomic_int stop;
    atomic_ullong bytes;
} pty;

static void *drain_main(void *arg)
{
    pty *p = arg;
    char buf[65536];
    while (!atomic_load(&p->stop)) {
        ssize_t n = read(p->master, buf, sizeof buf);
        if (n > 0)
            atomic_fetch_add(&p->bytes, (unsigned long long)n);
        else if (n < 0 && errno != EINTR && errno != EAGAIN)
            break;
        else if (n <= 0)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return NULL;
}

static int pty_open(pty *p)
{
    memset(p, 0, sizeof *p);
    p->master = posix_openpt(O_RDWR | O_NOCTTY);
    if (p->master < 0 || grantpt(p->master) || unlockpt(p->master))
        return -1;
    const char *name = ptsname(p->master);
    if (!name || (p->slave = open(name, O_RDWR | O_NOCTTY)) < 0)
        return -1;
    struct winsize ws = {.ws_row = 40, .ws_col = 120};
    ioctl(p->slave, TIOCSWINSZ, &ws);
    p->out = fdopen(p->slave, "w");
    p->in = fdopen(dup(p->slave), "r");
    int fl = fcntl(p->master, F_GETFL);
    fcntl(p->master, F_SETFL, fl | O_NONBLOCK);
    atomic_init(&p->stop, 0);
    atomic_init(&p->bytes, 0);
    return pthread_create(&p->drain, NULL, drain_main, p) ? -1 : 0;
}

static void pty_close(pty *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->drain, NULL);
    fclose(p->out);
    fclose(p->in);
    close(p->master);
}

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- 1. synthetic stream ---- */

#define ARMS 3

static double fake_loss(size_t arm, uint64_t step, unsigned *seed)
{
    double noise = ((double)rand_r(seed) / RAND_MAX - 0.5) * 0.2;
    return 1.3 + 0.02 * (double)arm + 4.2 * exp(-(double)step / 300.0) + noise;
}

static unsigned feed_eval(ui_state *st, size_t arm, uint64_t step, unsigned *seed)
{
    unsigned dirty = 0;
    for (uint32_t l = 0; l < st->L; l++)
        for (uint32_t h = 0; h < st->H; h++) {
            tel_record r = {.kind = REC_LAYER, .arm = (uint32_t)arm, .step = step};
            r.u.layer.layer = l;
            r.u.layer.head = h;
            for (int k = 0; k < METRIC_COUNT; k++)
                r.u.layer.value[k] = (double)rand_r(seed) / RAND_MAX;
            dirty |= ui_state_record(st, &r);
        }
    tel_record r = {.kind = REC_EVAL, .arm = (uint32_t)arm, .step = step};
    r.u.eval.val_loss = fake_loss(arm, step, seed) + 0.05;
    r.u.eval.tokens_per_s = 3000;
    r.u.eval.expert_balance = NAN;
    dirty |= ui_state_record(st, &r);
    return dirty;
}

static void synthetic(void)
{
    pty p;
    if (pty_open(&p)) {
        printf("synthetic: cannot open a pseudo-terminal: %s\n", strerror(errno));
        return;
    }
    gl_error e;
    ui_screen *scr;
    if (ui_screen_open(&scr, p.out, p.in, "xterm-256color", 1, &e)) {
        printf("synthetic: %s\n", e.msg);
        pty_close(&p);
        return;
    }
    ui_state st;
    ui_state_init(&st, 4, 4, 128, 16, 100000);
    static const char *names[ARMS] = {"soft", "random", "dense"};
    static const uint32_t modes[ARMS] = {1, 2, 0};
    unsigned seed = 1;
    const uint64_t history = 20000;
    for (size_t a = 0; a < ARMS; a++) {
        ui_state_arm(&st, a, names[a]);
        ui_state_event(&st, (uint32_t)a, 0, EV_START, "start", 1, modes[a], 16, 0);
        for (uint64_t s = 1; s <= history; s++) {
            tel_record r = {.kind = REC_STEP, .arm = (uint32_t)a, .step = s};
            r.u.step.loss = fake_loss(a, s, &seed);
            ui_state_record(&st, &r);
            if (s % 100 == 0)
                feed_eval(&st, a, s, &seed);
        }
        heatmap_snapshot *heat = ui_state_heat(&st, a);
        size_t cells = (size_t)heat->layers * heat->heads * heat->T * heat->T;
        for (size_t i = 0; i < cells; i++) {
            heat->gate[i] = (uint8_t)rand_r(&seed);
            heat->oracle[i] = (uint8_t)rand_r(&seed);
            heat->attn[i] = (uint8_t)rand_r(&seed);
        }
        st.arms[a].have_heat = 1;
    }
    /* what latest_read copies per evaluation, decoded as live_heat_read does */
    size_t heat_bytes = heatmap_payload_size((uint32_t)st.L, (uint32_t)st.H, (uint32_t)st.T);
    uint8_t *slot = xmalloc(heat_bytes);
    GL_ASSERT(heatmap_encode(ui_state_heat(&st, 0), slot, heat_bytes) == heat_bytes);

    ui_view v;
    ui_view_init(&v, UI_LIVE);
    v.tok_s = 9000;
    /* one full frame, timed alone */
    double c0 = thread_cpu();
    const int frames = 20;
    for (int i = 0; i < frames; i++)
        ui_screen_draw(scr, &st, &v, UI_DIRTY_ALL);
    double full_ms = (thread_cpu() - c0) / frames * 1e3;

    const double seconds = 10.0, rate = 100.0;   /* steps per second per arm */
    unsigned long long bytes0 = atomic_load(&p.bytes);
    double t0 = gl_now(), cpu0 = thread_cpu(), last_draw = 0.0;
    uint64_t step = history;
    size_t draws = 0, records = 0;
    unsigned dirty = UI_DIRTY_ALL;
    while (gl_now() - t0 < seconds) {
        double now = gl_now();
        uint64_t target = history + (uint64_t)((now - t0) * rate);
        for (; step < target; step++)
            for (size_t a = 0; a < ARMS; a++) {
                tel_record r = {.kind = REC_STEP, .arm = (uint32_t)a, .step = step + 1};
                r.u.step.loss = fake_loss(a, step + 1, &seed);
                dirty |= ui_state_record(&st, &r);
                records++;
                if ((step + 1) % 100 == 0) {
                    dirty |= feed_eval(&st, a, step + 1, &seed);
                    records += 17;
                    GL_ASSERT(heatmap_decode(slot, heat_bytes, ui_state_heat(&st, a)) == 0);
                    dirty |= UI_DIRTY_HEAT;
                }
            }
        if (dirty && now - last_draw >= 0.1) {
            ui_screen_draw(scr, &st, &v, dirty);
            dirty = 0;
            last_draw = now;
            draws++;
        }
        ui_screen_getch(scr, 0);
        nanosleep(&(struct timespec){0, 10000000}, NULL);   /* the session loop's tick */
    }
    double wall = gl_now() - t0, cpu = thread_cpu() - cpu0;
    unsigned long long bytes = atomic_load(&p.bytes) - bytes0;
    ui_screen_close(scr);
    pty_close(&p);
    printf("synthetic stream: 3 arms, tiny shape (L=4 H=4 T=128), %llu steps of history,\n"
           "  %.0f steps/s per arm, an evaluation every 100 steps, 120x40 UTF-8 pty\n",
           (unsigned long long)history, rate);
    printf("  %.1f s wall, %zu redraws (%.1f/s), %zu records folded\n", wall, draws,
           draws / wall, records);
    printf("  UI thread CPU: %.2f%% of one core (%.1f ms per wall second)\n",
           100.0 * cpu / wall, 1e3 * cpu / wall);
    printf("  one full redraw (every panel): %.2f ms; terminal output %.1f KB/s\n", full_ms,
           (double)bytes / wall / 1024.0);
    free(slot);
    ui_state_free(&st);
}

/* ---- 2. real arms, headless vs screen ---- */

typedef struct {
    live_observer inner;
    double tok_sum[LIVE_MAX_ARMS];
    size_t tok_n[LIVE_MAX_ARMS];
    double cpu_end;
} counting;

static void count_record(void *ctx, live *lv, const tel_record *r)
{
    counting *c = ctx;
    /* the first evaluation's figure includes start-up: skip it */
    if (r->kind == REC_EVAL && r->arm < LIVE_MAX_ARMS && r->step > 50) {
        c->tok_sum[r->arm] += r->u.eval.tokens_per_s;
        c->tok_n[r->arm]++;
    }
    if (c->inner.on_record)
        c->inner.on_record(c->inner.ctx, lv, r);
}

static int count_tick(void *ctx, live *lv)
{
    counting *c = ctx;
    return c->inner.on_tick ? c->inner.on_tick(c->inner.ctx, lv) : 0;
}

static int run_once(int screen, const char *dir, int idx, double *tok, double *cpu_frac,
                    double *wall_s)
{
    live_config lc;
    memset(&lc, 0, sizeof lc);
    if (model_preset("tiny", &lc.tc.model))
        return -1;
    model_config *m = &lc.tc.model;
    m->T = 64;
    m->d = 64;
    m->mlp = 256;
    m->layers = 2;
    m->heads = 2;
    m->batch = 8;
    m->k = 8;
    optim_default_config(&lc.tc.optim);
    lc.tc.optim.gate_lr = lc.tc.optim.lr;
    lc.tc.optim.warmup = 50;
    lc.tc.steps = 300;
    lc.tc.eval_every = 50;
    lc.tc.eval_windows = 8;
    lc.tc.threads = 2;
    lc.tc.vocab_from_data = 1;
    lc.modes[0] = GATE_SOFT;
    lc.modes[1] = GATE_RANDOM;
    lc.modes[2] = GATE_DENSE;
    lc.narms = 3;
    lc.telemetry = 1;
    char db[512];
    snprintf(db, sizeof db, "%s/bench%d.db", dir, idx);
    lc.db_path = db;
    lc.command_line = "bench_ui";

    counting c;
    memset(&c, 0, sizeof c);
    pty p;
    ui_live *u = NULL;
    gl_error e;
    if (screen) {
        if (pty_open(&p))
            return -1;
        ui_options o = {.out = p.out, .in = p.in, .term = "xterm-256color", .allow_small = 1};
        int fallback;
        session_shape shape;
        live_shape(&lc, &shape);
        u = ui_live_create(&shape, &o, &e);
        if (!u || ui_live_start(u, &fallback, &e)) {
            printf("screen: %s\n", e.msg);
            ui_live_free(u);
            pty_close(&p);
            return -1;
        }
        c.inner = ui_live_observer(u);
    }
    live_observer obs = {.on_record = count_record, .on_tick = count_tick, .ctx = &c};
    live_result res;
    double t0 = gl_now(), c0 = thread_cpu();
    int rc = live_run(&lc, &obs, &res, &e);
    *wall_s = gl_now() - t0;
    *cpu_frac = (thread_cpu() - c0) / *wall_s;
    if (u) {
        ui_live_free(u);
        pty_close(&p);
    }
    if (rc) {
        printf("live_run: %s\n", e.msg);
        return -1;
    }
    *tok = 0;
    for (size_t a = 0; a < 3; a++)
        *tok += c.tok_n[a] ? c.tok_sum[a] / (double)c.tok_n[a] : 0.0;
    return 0;
}

static void real_arms(void)
{
    char dir[] = "/tmp/gatelab_bench_ui.XXXXXX";
    if (!mkdtemp(dir)) {
        printf("real arms: mkdtemp: %s\n", strerror(errno));
        return;
    }
    printf("real arms: soft, random, dense; T=64 d=64 L=2 H=2 batch 8, 300 steps, eval every "
           "50,\n  2 threads shared (1 per arm), stored (heatmaps on); headless and screen "
           "alternate\n");
    double tok[2] = {0, 0}, cpu[2] = {0, 0};
    int n[2] = {0, 0};
    for (int rep = 0; rep < 4; rep++) {
        int screen = rep % 2;
        double t, c, w;
        if (run_once(screen, dir, rep, &t, &c, &w) == 0) {
            printf("  %-8s tokens/s (3 arms) %8.0f   main thread CPU %5.2f%% of a core   %.1f s\n",
                   screen ? "screen" : "headless", t, 100.0 * c, w);
            tok[screen] += t;
            cpu[screen] += c;
            n[screen]++;
        }
    }
    if (n[0] && n[1]) {
        double th = tok[0] / n[0], ts = tok[1] / n[1];
        printf("  mean: headless %.0f tok/s, screen %.0f tok/s: the screen costs the arms "
               "%.1f%%;\n  main thread %.2f%% -> %.2f%% of a core (+%.2f points for the screen)\n",
               th, ts, 100.0 * (th - ts) / th, 100.0 * cpu[0] / n[0], 100.0 * cpu[1] / n[1],
               100.0 * (cpu[1] / n[1] - cpu[0] / n[0]));
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("  (could not remove %s)\n", dir);
}

static void print_load(const char *when)
{
    double l[3];
    if (getloadavg(l, 3) == 3)
        printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* as the command line does: parallelism comes from each arm's pool, and
     * idle OpenBLAS threads would spin on the cores the arms need */
    openblas_set_num_threads(1);
    /* the screen's locale comes from the environment: measure the UTF-8 path */
    setenv("LANG", "C.UTF-8", 1);
    setenv("LC_ALL", "C.UTF-8", 1);
    printf("bench_ui: the ncurses screen's cost (%ld cores online)\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    print_load("at start");
    synthetic();
    real_arms();
    print_load("at end");
    return 0;
}
