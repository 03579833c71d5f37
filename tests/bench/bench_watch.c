/* bench_watch: what `gatelab watch` costs the run it watches. Not a test:
 * one run prints a table and exits 0 (1 when a session cannot run).
 *
 * The same headless session as bench_live (tiny preset at batch 8, one soft
 * arm, 1 worker thread, eval every 20) runs with no watcher and with
 * WATCHERS watcher processes, alternating ABAB so drift on a noisy machine
 * hits both. Each watcher is a process of its own (forked before the
 * session starts, so it shares nothing with it but the file) that follows
 * the newest session the way `gatelab watch` does: a store_tail poll four
 * times a second, each a read transaction over the new rows, until the
 * session ends. tokens/s is the tokens trained over the arm's own clock
 * from its start event to its finish event; the figure is the ratio of the
 * means (with watchers / without). Polls and records per watcher are
 * printed too, so a watcher that read nothing would show, and the CPU one
 * watcher used as a share of one core over the session (the steadier figure
 * on a busy machine: what a watcher can take from the run at most).
 * Run: make bench (or build $(BUILD)/release/bench/bench_watch and run it). */
#include <cblas.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "model.h"
#include "optim.h"
#include "store.h"
#include "store_tail.h"

#define STEPS 120
#define REPEATS 2
#define WATCHERS 3
#define POLL_NS (1000000000L / 4)

typedef struct {
    double start_ms, finish_ms;
} tally;

static void count(void *ctx, live *lv, const tel_record *r)
{
    (void)lv;
    tally *t = ctx;
    if (r->kind == REC_EVENT && r->u.event.kind == EV_START)
        t->start_ms = r->wall_ms;
    if (r->kind == REC_EVENT && r->u.event.kind == EV_FINISH)
        t->finish_ms = r->wall_ms;
}

static int count_record(void *ctx, int64_t run, const tel_record *r)
{
    (void)run;
    (void)r;
    (*(size_t *)ctx)++;
    return 0;
}

/* A watcher process: waits for the session, follows it to its end, and
 * reports its polls and records through the pipe. */
static void watcher(const char *db, int fd)
{
    store *s = NULL;
    store_tail *t = NULL;
    size_t polls = 0, records = 0;
    gl_error e;
    struct timespec wait = {0, POLL_NS};
    double give_up = gl_now() + 600.0;
    while (gl_now() < give_up) {
        if (!s)
            s = store_open(db, STORE_BROWSE, &e);
        if (s && !t)
            t = store_tail_open(s, 0, &e);   /* the session begins after the fork */
        if (t) {
            if (store_tail_poll(t, count_record, &records, &e) < 0)
                break;
            polls++;
            if (store_tail_ended(t))
                break;
        }
        nanosleep(&wait, NULL);
    }
    char line[64];
    int n = snprintf(line, sizeof line, "%zu %zu\n", polls, records);
    if (write(fd, line, (size_t)n) != n)
        _exit(1);
    store_tail_close(t);
    store_close(s);
    _exit(t && store_tail_ended(t) ? 0 : 1);
}

static double children_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* *cpu: the CPU seconds the watchers used, all of them; *wall: the session's */
static int session(const char *db, int watchers, double *tok_s, size_t *polls, size_t *records,
                   double *cpu, double *wall)
{
    double c0 = children_cpu(), t0 = gl_now();
    gl_error e;
    /* the file exists before any watcher looks, so none of them creates it */
    store *s = store_open(db, STORE_CREATE, &e);
    if (!s) {
        fprintf(stderr, "bench_watch: %s\n", e.msg);
        return -1;
    }
    store_close(s);
    int fds[2];
    if (pipe(fds)) {
        perror("pipe");
        return -1;
    }
    pid_t pids[WATCHERS];
    for (int i = 0; i < watchers; i++) {
        fflush(stdout);
        pids[i] = fork();
        if (pids[i] == 0) {
            close(fds[0]);
            watcher(db, fds[1]);
        }
    }
    close(fds[1]);
    live_config lc = {.narms = 1, .telemetry = 1, .db_path = db};
    model_preset("tiny", &lc.tc.model);
    optim_default_config(&lc.tc.optim);
    lc.tc.optim.warmup = 12;
    lc.tc.model.batch = 8;
    lc.tc.steps = STEPS;
    lc.tc.eval_every = 20;
    lc.tc.eval_windows = 16;
    lc.tc.threads = 1;
    lc.modes[0] = GATE_SOFT;
    tally t = {0};
    live_observer obs = {.on_record = count, .ctx = &t};
    live_result res;
    int rc = live_run(&lc, &obs, &res, &e);
    if (rc)
        fprintf(stderr, "bench_watch: %s\n", e.msg);
    double secs = (t.finish_ms - t.start_ms) / 1e3;
    *tok_s = secs > 0 ? (double)(STEPS * lc.tc.model.batch * lc.tc.model.T) / secs : 0.0;
    *polls = *records = 0;
    FILE *in = fdopen(fds[0], "r");
    for (int i = 0; i < watchers; i++) {
        size_t p = 0, r = 0;
        if (in && fscanf(in, "%zu %zu", &p, &r) == 2) {
            *polls += p;
            *records += r;
        }
        int status;
        if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "bench_watch: watcher %d did not follow the session to its end\n", i);
            rc = -1;
        }
    }
    if (in)
        fclose(in);
    *cpu = children_cpu() - c0;
    *wall = gl_now() - t0;
    return rc;
}

int main(void)
{
    openblas_set_num_threads(1);
    gl_route_stop_signals();
    char dir[] = "/tmp/gatelab_bench_watch_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("bench_watch: tiny preset (batch 8), 1 soft arm, 1 thread, %d steps per session, "
           "0 and %d watcher processes (4 polls/s each), ABAB\n\n", STEPS, WATCHERS);
    printf("%-10s %8s %8s %14s %16s %18s\n", "watchers", "tok/s", "wall s", "polls/watcher",
           "records/watcher", "watcher cpu % core");
    double sum[2] = {0, 0}, cpu_sum = 0.0, wall_sum = 0.0;
    int rc = 0;
    for (int rep = 0; rep < REPEATS && !rc; rep++)
        for (int with = 0; with <= 1 && !rc; with++) {
            char db[256];
            snprintf(db, sizeof db, "%s/s%d%d.db", dir, rep, with);
            int n = with ? WATCHERS : 0;
            double tok, cpu, wall;
            size_t polls, records;
            if (session(db, n, &tok, &polls, &records, &cpu, &wall)) {
                rc = 1;
                break;
            }
            sum[with] += tok;
            if (n) {
                cpu_sum += cpu / n;
                wall_sum += wall;
            }
            printf("%-10d %8.0f %8.1f %14.0f %16.0f %18.3f\n", n, tok, wall,
                   n ? (double)polls / n : 0.0, n ? (double)records / n : 0.0,
                   n && wall > 0 ? 100.0 * cpu / n / wall : 0.0);
        }
    if (!rc) {
        double off = sum[0] / REPEATS, on = sum[1] / REPEATS;
        printf("\nmean tok/s: no watcher %.0f, %d watchers %.0f; ratio %.3f (1.000: no cost)\n",
               off, WATCHERS, on, on / off);
        printf("one watcher's CPU: %.3f%% of one core while it follows the session\n",
               wall_sum > 0 ? 100.0 * cpu_sum / wall_sum : 0.0);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 && !rc ? 0 : 1;
}
