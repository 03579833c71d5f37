/* bench_dp: the figures behind the README's data-parallel section (issue 15
 * item 7). Not a test: it prints tables and exits 0 (1 only when a
 * measurement could not run at all).
 *
 * Run by hand:  mpirun --oversubscribe -np 2 build/release/bench/bench_dp
 * (as root add --allow-run-as-root). `make bench` runs it plainly, as one
 * process: then it measures the one-rank side only (sections 1 and 3) and
 * says how to get the rest.
 *
 *  1. one arm at one rank: training tokens/s of the tiny preset (batch 16,
 *     T 128) through the trainer API, --threads 1 (one core), no evaluation:
 *     warm-up steps, then timed steps; tokens/s = steps * B * T / seconds.
 *     Under mpirun rank 0 measures it while rank 1 waits without spinning.
 *  2. the same arm at --dp 2 (one core per rank): tokens/s of the global
 *     batch, with the bucket sums overlapped with the backward and blocking
 *     after it, alternated twice; and the time the step waited on its sums.
 *  3. the paper preset's per-core rate: two timed steps at batch 1 (its
 *     T 512, d 384, 6 layers), as GFLOP/s of 3 * model_flops_per_token.
 *  4. allreduce alone: the tiny and paper gradient buffers summed over the
 *     two ranks in buckets of 256 KiB, 4 MiB (the default) and one bucket,
 *     without the backward: ms per step's sums, per bucket, and GB/s.
 *  5. the scaling model of the README for `experiment absorption --preset
 *     paper --seeds 3` on a cluster, from section 3's rate (formulas in the
 *     README and printed with the inputs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dp.h"
#include "model.h"
#include "placement.h"
#include "trainer.h"
#include "world.h"

#define WARMUP 2
#define TIMED 20

static train_config tiny_config(void)
{
    train_config tc;
    memset(&tc, 0, sizeof tc);
    model_preset("tiny", &tc.model);
    tc.model.batch = 16;
    tc.model.k = tc.model.T / 8;
    tc.model.mode = GATE_SOFT;
    optim_default_config(&tc.optim);
    tc.steps = 1000;
    tc.threads = 1;
    return tc;
}

static train_config paper_config(size_t batch)
{
    train_config tc = tiny_config();
    model_preset("paper", &tc.model);
    tc.model.batch = batch;
    tc.model.k = tc.model.T / 8;
    tc.model.mode = GATE_SOFT;
    return tc;
}

/* tokens/s of the global batch over `timed` steps; *wait: seconds per step
 * the step spent on its sums */
static double measure(const train_config *tc, dp_comm *c, size_t bucket, int overlap,
                      size_t timed, double *wait)
{
    trainer t;
    gl_error e;
    if (trainer_init(&t, tc, &e) || trainer_set_dp(&t, c, bucket, overlap, &e)) {
        fprintf(stderr, "bench_dp: %s\n", e.msg);
        exit(1);
    }
    for (int s = 0; s < WARMUP; s++)
        trainer_step(&t);
    dp_stats a, b;
    dp_get_stats(c, &a);
    double t0 = gl_now();
    for (size_t s = 0; s < timed; s++)
        trainer_step(&t);
    double secs = gl_now() - t0;
    dp_get_stats(c, &b);
    if (wait)
        *wait = (b.wait_seconds - a.wait_seconds) / (double)timed;
    double tps = (double)(timed * tc->model.batch * tc->model.T) / secs;
    trainer_free(&t);
    return tps;
}

/* the sums alone: `reps` steps' worth of buckets of a model's gradients */
static void allreduce_alone(const char *name, const train_config *tc, dp_comm *c, int print)
{
    model m;
    gl_error e;
    if (model_init(&m, &tc->model, 1, &e)) {
        fprintf(stderr, "bench_dp: %s\n", e.msg);
        exit(1);
    }
    const size_t buckets[] = {256 << 10, 4 << 20, SIZE_MAX / 2};
    const char *names[] = {"256 KiB", "4 MiB", "one"};
    for (size_t i = 0; i < 3; i++) {
        dp_attach(c, &m, buckets[i], 0, &e);
        dp_grads_finish(c, &m);   /* warm-up */
        dp_stats a, b;
        dp_get_stats(c, &a);
        const int reps = m.num_params > 4000000 ? 5 : 30;
        double t0 = gl_now();
        for (int r = 0; r < reps; r++)
            dp_grads_finish(c, &m);
        double secs = (gl_now() - t0) / reps;
        dp_get_stats(c, &b);
        double bytes = (double)(b.bytes - a.bytes) / reps;
        size_t nb = b.buckets;
        if (print)
            printf("  %-6s %9.2f MB  %-8s %4zu buckets  %8.3f ms/step  %8.3f ms/bucket  "
                   "%6.2f GB/s\n", name, bytes / 1e6, names[i], nb, secs * 1e3,
                   secs * 1e3 / (double)nb, bytes / secs / 1e9);
    }
    model_free(&m);
}

/* the paper preset's per-core training rate, GFLOP/s */
static double paper_rate(int print)
{
    train_config tc = paper_config(1);
    double tps = measure(&tc, NULL, 0, 0, 2, NULL);
    double fpt = 3.0 * model_flops_per_token(&tc.model);
    if (print)
        printf("  paper preset, batch 1, 1 core: %.0f tokens/s = %.2f GFLOP/s (3 x %.1f MFLOP "
               "per token)\n", tps, tps * fpt / 1e9, fpt / 3e6);
    return tps * fpt / 1e9;
}

/* ---- the scaling model (README: "Data-parallel arms: scaling model") ---- */
static void scaling_model(double rate_gflops)
{
    model_config pc;
    model_preset("paper", &pc);
    pc.batch = 16;
    const double P = (double)model_count_params(&pc);
    const double B = 16, T = (double)pc.T, fpt = model_flops_per_token(&pc);
    const double step_flops = 3.0 * fpt * B * T;
    const double R = rate_gflops * 1e9;
    const double bytes = 4.0 * P;
    /* experiment absorption --preset paper --seeds 3: 3 seeds x 6 arms x
     * 1000 steps; each run evaluates 14 times (every 100 steps, the last,
     * and the early 10/25/50) on 64 val windows of T: forward only, on
     * every replica (not split by --dp); 3 seeds x 3 distillations of 300
     * gate steps (frozen model forward + the gate's backward: counted as a
     * full step's 3x, an upper bound) */
    const double runs = 18, steps = 1000, evals = 14, windows = 64;
    const double train_flops = runs * steps * step_flops;
    const double eval_flops_per_run = evals * windows * T * fpt;
    const double distill_flops = 9 * 300 * step_flops;
    printf("\n5. scaling model: experiment absorption --preset paper --seeds 3\n");
    printf("  inputs: P = %.0f parameters (%.1f MB of fp32 gradient per step), batch 16 x T "
           "%.0f = %.0f tokens per step, %.1f GFLOP per step (3 x %.1f MFLOP/token), per-core "
           "rate R = %.2f GFLOP/s (section 3)\n", P, bytes / 1e6, T, B * T, step_flops / 1e9,
           fpt / 1e6, rate_gflops);
    printf("  step on N ranks: t_c = %.1f GFLOP / (N R); sums: t_a = 2(N-1)/N * %.1f MB / bw + "
           "2(N-1) * buckets * alpha, buckets = %zu (4 MiB)\n", step_flops / 1e9, bytes / 1e6,
           (size_t)ceil(bytes / (4 << 20)));
    printf("  links: 10 Gbit/s (1.25 GB/s, alpha 25 us, TCP), 100 Gbit/s (12.5 GB/s, alpha 2 "
           "us, RDMA)\n");
    printf("  placement: --dp D = min(N, 16) (batch 16: at least one sequence per replica), "
           "G = N / D groups train the 18 runs (6 arms x 3 seeds) in ceil(18 / G) rounds\n");
    printf("  wall = rounds x (1000 x (t_c + t_a) + 14 evaluations x 64 windows x T x %.1f "
           "MFLOP / R, on every replica: not split) + 9 distillations x 300 x %.1f GFLOP / (R "
           "min(N, 9))\n", fpt / 1e6, step_flops / 1e9);
    printf("  efficiency E = (all the job's FLOPs / (N R)) / wall; E_step = t_c / (t_c + t_a), "
           "the sums after the backward (overlapped, at best t_c / max(t_c, t_a))\n\n");
    printf("  %5s  %10s  %7s  %10s  %8s  %8s  %8s  %9s\n", "ranks", "link", "D x G", "t_c/step",
           "t_a", "E_step", "E", "wall");
    const double bw[2] = {1.25e9, 12.5e9}, alpha[2] = {25e-6, 2e-6};
    const char *link[2] = {"10 Gbit/s", "100 Gbit/s"};
    const int ranks[4] = {1, 2, 8, 32};
    const double nbuckets = ceil(bytes / (4 << 20));
    const double eval_s = eval_flops_per_run / R;
    const double all_flops = train_flops + runs * eval_flops_per_run + distill_flops;
    for (int li = 0; li < 2; li++)
        for (int ri = 0; ri < 4; ri++) {
            const double N = ranks[ri], D = N < 16 ? N : 16, G = N / D;
            const double rounds = ceil(runs / G);
            const double tc = step_flops / (D * R);
            const double ta = D > 1 ? 2 * (D - 1) / D * bytes / bw[li] +
                                          2 * (D - 1) * nbuckets * alpha[li]
                                    : 0.0;
            const double wall = rounds * (steps * (tc + ta) + eval_s) +
                                distill_flops / R / (N < 9 ? N : 9);
            const double E = all_flops / (N * R) / wall;
            printf("  %5.0f  %10s  %3.0fx%-3.0f  %8.2f s  %6.3f s  %7.1f%%  %7.1f%%  %7.1f h\n",
                   N, link[li], D, G, tc, ta, 100 * tc / (tc + ta), 100 * E, wall / 3600);
        }
    printf("  (training alone at 1 core: %.0f h; a run's 14 evaluations, %.2f h, are not split "
           "by --dp: they bound the wall time from below)\n", train_flops / R / 3600,
           eval_s / 3600);
}

int main(int argc, char **argv)
{
    world w;
    gl_error e;
    if (world_init(&w, &argc, &argv, &e)) {
        fprintf(stderr, "bench_dp: %s\n", e.msg);
        return 1;
    }
    train_config tc = tiny_config();
    const int lead = w.rank == 0;
    if (lead)
        printf("bench_dp: tiny preset (batch 16, T %zu, d %zu, %zu layers, %zu params), soft "
               "gate, --threads 1 per rank, %d rank%s\n\n", tc.model.T, tc.model.d,
               tc.model.layers, model_count_params(&tc.model), w.size, w.size > 1 ? "s" : "");
    if (w.size == 1) {
        printf("1. one arm, one rank: %.0f tokens/s (%d timed steps)\n",
               measure(&tc, NULL, 0, 0, TIMED, NULL), TIMED);
        printf("\n3. per-core rate\n");
        double r = paper_rate(1);
        scaling_model(r);
        printf("\nbench_dp: the --dp 2 figures (sections 2 and 4) need two ranks: mpirun "
               "--oversubscribe -np 2 %s%s\n", getuid() == 0 ? "--allow-run-as-root " : "",
               argv[0]);
        world_finalize(&w);
        return 0;
    }
    placement p;
    dp_comm *c = NULL;
    if (w.size != 2 || placement_init(&p, w.size, 2, &e) || dp_open(&c, &w, &p, &e)) {
        if (lead)
            fprintf(stderr, "bench_dp: run with mpirun -np 2 (%s)\n",
                    w.size != 2 ? "another rank count" : e.msg);
        world_finalize(&w);
        return 1;
    }
    /* 1 and 3 on rank 0 while rank 1 waits at a boundary (no spinning) */
    dp_boundary b = {0};
    double one = 0.0, rate = 0.0;
    if (lead) {
        one = measure(&tc, NULL, 0, 0, TIMED, NULL);
        printf("1. one arm, one rank: %.0f tokens/s (%d timed steps)\n", one, TIMED);
        printf("\n3. per-core rate (rank 0 alone)\n");
        rate = paper_rate(1);
    }
    dp_boundary_sync(c, &b);
    if (lead)
        printf("\n2. the same arm, --dp 2 (one core per rank; tokens/s of the global batch)\n");
    double over[2], block[2], wo[2], wb[2];
    for (int r = 0; r < 2; r++) {
        over[r] = measure(&tc, c, 4 << 20, 1, TIMED, &wo[r]);
        block[r] = measure(&tc, c, 4 << 20, 0, TIMED, &wb[r]);
    }
    if (lead) {
        for (int r = 0; r < 2; r++)
            printf("  run %d: overlapped %.0f tokens/s (sums %.2f ms/step), blocking %.0f "
                   "tokens/s (sums %.2f ms/step)\n", r + 1, over[r], wo[r] * 1e3, block[r],
                   wb[r] * 1e3);
        double best = fmax(fmax(over[0], over[1]), fmax(block[0], block[1]));
        printf("  speed-up over one rank: %.2fx (best of the four), efficiency %.0f%%\n",
               best / one, 50.0 * best / one);
        printf("\n4. allreduce alone over 2 ranks (blocking, in the trainer's buckets)\n");
    }
    allreduce_alone("tiny", &tc, c, lead);
    train_config pc = paper_config(1);
    allreduce_alone("paper", &pc, c, lead);
    if (lead)
        scaling_model(rate);
    dp_close(c);
    world_finalize(&w);
    return 0;
}
