/* bench_live: what telemetry and the store cost the trainer. Not a test: one
 * run prints a table and exits 0 (1 when a session cannot run).
 *
 * The same headless session (tiny preset at batch 8, one soft arm, 1 worker
 * thread, 120 steps, eval every 40) runs with telemetry and a fresh database under
 * /tmp, and with --no-telemetry (no records but evaluations, no database),
 * alternating ABAB so drift on a noisy machine hits both. tokens/s is the
 * tokens trained over the arm's own clock from its start event to its finish
 * event (steps, telemetry pushes and evaluations included); wall s is the
 * whole session including start-up, the final checkpoint and the store's
 * last commit. cpu s is the process's user + system time over the session
 * (every thread: trainer, main, store): on a busy machine wall-clock rates
 * swing with the neighbours, the CPU spent does much less.
 * Run: make bench (or build $(BUILD)/release/bench/bench_live and run it). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "live.h"
#include "model.h"
#include "optim.h"

#define STEPS 120
#define REPEATS 2

typedef struct {
    double start_ms, finish_ms;
    size_t records;
} tally;

static void count(void *ctx, live *lv, const tel_record *r)
{
    (void)lv;
    tally *t = ctx;
    t->records++;
    if (r->kind == REC_EVENT && r->u.event.kind == EV_START)
        t->start_ms = r->wall_ms;
    if (r->kind == REC_EVENT && r->u.event.kind == EV_FINISH)
        t->finish_ms = r->wall_ms;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static int session(int telemetry, const char *db, double *tok_s, double *wall, double *cpu,
                   size_t *records)
{
    live_config lc = {.narms = 1, .telemetry = telemetry, .db_path = telemetry ? db : NULL};
    model_preset("tiny", &lc.tc.model);
    optim_default_config(&lc.tc.optim);
    lc.tc.optim.warmup = 12;
    lc.tc.model.batch = 8;
    lc.tc.steps = STEPS;
    lc.tc.eval_every = 40;
    lc.tc.eval_windows = 16;
    lc.tc.threads = 1;
    lc.modes[0] = GATE_SOFT;
    tally t = {0};
    live_observer obs = {.on_record = count, .ctx = &t};
    live_result res;
    gl_error e;
    double t0 = gl_now(), c0 = cpu_seconds();
    if (live_run(&lc, &obs, &res, &e)) {
        fprintf(stderr, "bench_live: %s\n", e.msg);
        return -1;
    }
    *wall = gl_now() - t0;
    *cpu = cpu_seconds() - c0;
    double secs = (t.finish_ms - t.start_ms) / 1e3;
    *tok_s = secs > 0 ? (double)(STEPS * lc.tc.model.batch * lc.tc.model.T) / secs : 0.0;
    *records = t.records;
    return 0;
}

int main(void)
{
    openblas_set_num_threads(1);
    char dir[] = "/tmp/gatelab_bench_live_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("bench_live: tiny preset (batch 8), 1 soft arm, 1 thread, %d steps per session, ABAB\n\n", STEPS);
    printf("%-24s %10s %9s %9s %9s\n", "session", "tok/s", "wall s", "cpu s", "records");
    double sum[2] = {0, 0}, cpu_sum[2] = {0, 0};
    for (int rep = 0; rep < REPEATS; rep++)
        for (int telemetry = 1; telemetry >= 0; telemetry--) {
            char db[256];
            snprintf(db, sizeof db, "%s/s%d.db", dir, rep);
            double tok, wall, cpu;
            size_t records;
            if (session(telemetry, db, &tok, &wall, &cpu, &records))
                return 1;
            sum[telemetry] += tok;
            cpu_sum[telemetry] += cpu;
            printf("%-24s %10.0f %9.2f %9.2f %9zu\n",
                   telemetry ? "telemetry + store" : "--no-telemetry", tok, wall, cpu, records);
        }
    double on = sum[1] / REPEATS, off = sum[0] / REPEATS;
    printf("\nmean tok/s: telemetry + store %.0f, --no-telemetry %.0f; slowdown %.2f%%\n", on, off,
           100.0 * (off - on) / off);
    printf("cpu s per session: telemetry + store %.2f, --no-telemetry %.2f; extra cpu %.2f%%\n",
           cpu_sum[1] / REPEATS, cpu_sum[0] / REPEATS,
           100.0 * (cpu_sum[1] - cpu_sum[0]) / cpu_sum[0]);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
