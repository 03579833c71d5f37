/* bench_live: what telemetry and the store cost the trainer. Not a test: one
 * run prints a table and exits 0 (1 when a session cannot run).
 *
 * The same headless session (tiny preset, one soft arm, 1 worker thread,
 * 300 steps, eval every 100) runs with telemetry and a fresh database under
 * /tmp, and with --no-telemetry (no records but evaluations, no database),
 * alternating ABAB so drift on a noisy machine hits both. tokens/s is the
 * trainer's own measure (tokens over time inside trainer_step) averaged over
 * its evaluations; wall s is the whole session including start-up, the final
 * checkpoint and the store's last commit.
 * Run: make bench (or build $(BUILD)/release/bench/bench_live and run it). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "live.h"
#include "model.h"
#include "optim.h"

#define STEPS 300
#define REPEATS 2

typedef struct {
    double tok_sum;
    size_t tok_n;
    size_t records;
} tally;

static void count(void *ctx, live *lv, const tel_record *r)
{
    (void)lv;
    tally *t = ctx;
    t->records++;
    if (r->kind == REC_EVAL && r->u.eval.tokens_per_s > 0) {
        t->tok_sum += r->u.eval.tokens_per_s;
        t->tok_n++;
    }
}

static int session(int telemetry, const char *db, double *tok_s, double *wall, size_t *records)
{
    live_config lc = {.narms = 1, .telemetry = telemetry, .db_path = telemetry ? db : NULL};
    model_preset("tiny", &lc.tc.model);
    optim_default_config(&lc.tc.optim);
    lc.tc.optim.warmup = 30;
    lc.tc.steps = STEPS;
    lc.tc.eval_every = 100;
    lc.tc.eval_windows = 16;
    lc.tc.threads = 1;
    lc.modes[0] = GATE_SOFT;
    tally t = {0};
    live_observer obs = {.on_record = count, .ctx = &t};
    live_result res;
    gl_error e;
    double t0 = gl_now();
    if (live_run(&lc, &obs, &res, &e)) {
        fprintf(stderr, "bench_live: %s\n", e.msg);
        return -1;
    }
    *wall = gl_now() - t0;
    *tok_s = t.tok_n ? t.tok_sum / (double)t.tok_n : 0.0;
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
    printf("bench_live: tiny preset, 1 soft arm, 1 thread, %d steps per session, ABAB\n\n", STEPS);
    printf("%-24s %10s %9s %9s\n", "session", "tok/s", "wall s", "records");
    double sum[2] = {0, 0};
    for (int rep = 0; rep < REPEATS; rep++)
        for (int telemetry = 1; telemetry >= 0; telemetry--) {
            char db[256];
            snprintf(db, sizeof db, "%s/s%d.db", dir, rep);
            double tok, wall;
            size_t records;
            if (session(telemetry, db, &tok, &wall, &records))
                return 1;
            sum[telemetry] += tok;
            printf("%-24s %10.0f %9.2f %9zu\n",
                   telemetry ? "telemetry + store" : "--no-telemetry", tok, wall, records);
        }
    double on = sum[1] / REPEATS, off = sum[0] / REPEATS;
    printf("\nmean tok/s: telemetry + store %.0f, --no-telemetry %.0f; slowdown %.2f%%\n", on, off,
           100.0 * (off - on) / off);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
