/* test_dp: data-parallel arms (dp.h, issue 15 item 3).
 *
 * Alone (one process, how tests/run.sh runs it; also built without MPI):
 * the slicing and its one-line error, the step-boundary codec, the weight
 * hash, dp_open giving no communicator for --dp 1, a trainer with no dp
 * giving the unchanged losses bit for bit, the backward's per-layer hook,
 * and two replicas simulated in one process at the model level: the
 * gradients of the two half batches (rows placed by row_base, divided by
 * the global target count) add up to the whole batch's.
 *
 * Under `mpirun -np 2` (tests/test_dp.sh), on top: a --dp 2 trainer matches
 * the single-process run of the same global batch (30 steps; tolerance
 * below), its replicas' weights hash equal at every evaluation, overlapped
 * and blocking bucket sums agree, a corrupted weight on replica 1 is named
 * by the check, and at the arm level a scripted swap given to the leader
 * alone is applied by both replicas at its step (the arm's losses match a
 * single-process run with the same swap, which they could not if the
 * follower had trained its half under the old gate), a stop sent to the
 * leader ends both, and a corrupted replica ends the arm failed with an
 * error event naming it. Rank 0 prints the totals of both ranks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arm.h"
#include "check.h"
#include "command.h"
#include "dp.h"
#include "placement.h"
#include "trainer.h"
#include "world.h"

static int rank_of_process;

/* the micro model: steps take milliseconds */
static train_config micro(gate_mode mode, size_t steps)
{
    train_config tc;
    memset(&tc, 0, sizeof tc);
    model_preset("tiny", &tc.model);
    tc.model.T = 32;
    tc.model.d = 32;
    tc.model.layers = 2;
    tc.model.heads = 2;
    tc.model.mlp = 128;
    tc.model.r = 4;
    tc.model.batch = 4;
    tc.model.k = 4;
    tc.model.mode = mode;
    optim_default_config(&tc.optim);
    tc.optim.warmup = 5;
    tc.steps = steps;
    tc.eval_windows = 4;
    tc.threads = 1;
    return tc;
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *scale)
{
    double m = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m)
            m = d;
        if (fabs((double)a[i]) > s)
            s = fabs((double)a[i]);
    }
    if (scale)
        *scale = s;
    return m;
}

/* ---- alone ---- */

static void test_slice(void)
{
    size_t r0 = 99, rows = 99;
    gl_error e;
    CHECK(dp_slice(8, 2, 1, &r0, &rows, &e) == 0 && r0 == 4 && rows == 4,
          "batch 8 over 2 replicas: replica 1 has rows 4..7 (got %zu + %zu)", r0, rows);
    CHECK(dp_slice(8, 1, 0, &r0, &rows, &e) == 0 && r0 == 0 && rows == 8,
          "--dp 1: the whole batch");
    int rc = dp_slice(6, 4, 0, &r0, &rows, &e);
    CHECK(rc == -1 && strstr(e.msg, "--dp 4") && strstr(e.msg, "--batch") && !strchr(e.msg, '\n'),
          "batch 6 over 4 replicas is refused in one line: %s", rc ? e.msg : "(accepted)");
}

static void test_boundary_codec(void)
{
    dp_boundary b = {.flags = DP_BOUNDARY_MORE, .count = 3}, back;
    b.cmd[0] = (cmd_record){.kind = CMD_SWAP, .arg = GATE_TOPK, .scripted = 1};
    b.cmd[1] = (cmd_record){.kind = CMD_SET_K, .arg = 7, .id = 42, .scripted = CMD_SOURCE_SENT};
    b.cmd[2] = (cmd_record){.kind = CMD_STOP};
    uint8_t wire[DP_BOUNDARY_WIRE];
    size_t n = dp_boundary_encode(&b, wire, sizeof wire);
    int ok = n == DP_BOUNDARY_WIRE && dp_boundary_decode(wire, n, &back) == 0 &&
             back.flags == b.flags && back.count == 3;
    for (int i = 0; ok && i < 3; i++)
        ok = back.cmd[i].kind == b.cmd[i].kind && back.cmd[i].arg == b.cmd[i].arg &&
             back.cmd[i].id == b.cmd[i].id && back.cmd[i].scripted == b.cmd[i].scripted;
    CHECK(ok, "a boundary block of 3 commands reads back as written (%zu bytes)", n);
    wire[0] = 0x80;
    CHECK(dp_boundary_decode(wire, n, &back) == -1, "unknown flags are refused");
    wire[0] = 0;
    wire[4] = DP_BOUNDARY_CMDS + 1;
    CHECK(dp_boundary_decode(wire, n, &back) == -1, "a count past the block is refused");
    CHECK(dp_boundary_decode(wire, n - 1, &back) == -1, "a short block is refused");
}

static void test_hash(void)
{
    float x[1001];
    for (size_t i = 0; i < 1001; i++)
        x[i] = (float)i * 0.25f;
    uint64_t h = dp_hash(x, 1001);
    CHECK(h == dp_hash(x, 1001), "the weight hash is a function of the bytes");
    int all_differ = 1;
    for (size_t i = 0; i < 1001; i += 97) {
        float keep = x[i];
        x[i] = nextafterf(x[i], INFINITY);   /* one ulp of one weight */
        all_differ &= dp_hash(x, 1001) != h;
        x[i] = keep;
    }
    CHECK(all_differ, "one weight one ulp off changes the hash, wherever it is");
    CHECK(dp_hash(x, 1000) != h, "so does the length");
}

static void test_open_one(void)
{
    world w = {.rank = 0, .size = 1};
    placement p;
    gl_error e;
    GL_ASSERT(placement_init(&p, 1, 1, &e) == 0);
    dp_comm *c = (dp_comm *)1;
    CHECK(dp_open(&c, &w, &p, &e) == 0 && c == NULL && dp_size(c) == 1 && dp_replica(c) == 0,
          "--dp 1: no communicator, a group of one");
    CHECK(dp_sum(NULL, 2.5) == 2.5, "the sum over a group of one is the value");
}

static int run_losses(const train_config *tc, dp_comm *c, int overlap, double *loss, size_t n,
                      trainer *keep)
{
    trainer t;
    gl_error e;
    if (trainer_init(&t, tc, &e) || trainer_set_dp(&t, c, 4096, overlap, &e)) {
        CHECK(0, "trainer: %s", e.msg);
        return -1;
    }
    for (size_t s = 0; s < n; s++) {
        if (trainer_step(&t))
            return -1;
        loss[s] = t.last_loss;
    }
    if (keep)
        *keep = t;
    else
        trainer_free(&t);
    return 0;
}

static void test_alone_unchanged(void)
{
    train_config tc = micro(GATE_SOFT, 10);
    double a[10], b[10];
    trainer plain;
    gl_error e;
    GL_ASSERT(trainer_init(&plain, &tc, &e) == 0);
    for (size_t s = 0; s < 10; s++) {
        trainer_step(&plain);
        a[s] = plain.last_loss;
    }
    trainer_free(&plain);
    run_losses(&tc, NULL, 1, b, 10, NULL);
    CHECK(memcmp(a, b, sizeof a) == 0, "trainer_set_dp(NULL): 10 losses the same bits as a "
                                       "trainer never set (%.6f .. %.6f)", a[0], a[9]);
}

static size_t hook_calls, hook_order_ok;
static void count_hook(void *ctx, model *m, size_t layer)
{
    (void)ctx;
    hook_order_ok += layer == m->cfg.layers - 1 - hook_calls;
    hook_calls++;
}

static void test_layer_hook(void)
{
    train_config tc = micro(GATE_SOFT, 1);
    tc.model.layers = 3;
    trainer t;
    gl_error e;
    GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
    t.m.on_layer_grads = count_hook;
    trainer_step(&t);
    CHECK(hook_calls == 3 && hook_order_ok == 3,
          "the backward calls the layer hook once per layer, top layer first (%zu calls)",
          hook_calls);
    trainer_free(&t);
}

/* Two replicas in one process: grads of rows [0,2) and [2,4), each divided
 * by the whole batch's target count, summed, against the whole batch's. */
static double simulated_gap(gate_mode mode, size_t experts, int with_row_base, double *scale)
{
    train_config tc = micro(mode, 1);
    tc.model.experts = experts;
    if (experts)
        tc.model.moe_aux = 0.0f;   /* the load-balancing term is per replica (README) */
    trainer t;
    gl_error e;
    GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
    model *m = &t.m;
    const size_t B = 4, T = tc.model.T, P = m->num_params;
    data_next_batch(t.data, t.batch, B);
    data_split_windows(t.batch, t.inputs, t.targets, B, T);
    m->step_salt = 3;
    model_forward(m, t.inputs, t.targets, B);
    model_backward(m);
    float *whole = xmalloc(P * sizeof(float)), *sum = xcalloc(P, sizeof(float));
    memcpy(whole, m->grads, P * sizeof(float));
    for (size_t j = 0; j < 2; j++) {
        m->row_base = with_row_base ? j * 2 : 0;
        m->grad_targets = B * T;
        model_forward(m, t.inputs + j * 2 * T, t.targets + j * 2 * T, 2);
        model_backward(m);
        for (size_t i = 0; i < P; i++)
            sum[i] += m->grads[i];
    }
    m->row_base = 0;
    m->grad_targets = 0;
    double gap = max_abs_diff(whole, sum, P, scale);
    free(whole);
    free(sum);
    trainer_free(&t);
    return gap;
}

static void test_simulated_replicas(void)
{
    /* fp32: each gradient entry is a sum over B*T = 128 positions (GEMMs of
     * 128 or 64 rows); cut in two and added, it rounds differently by a few
     * ulps of the largest terms: 1e-5 of the largest gradient is ~100 ulps */
    const struct {
        gate_mode mode;
        size_t experts;
        const char *name;
    } cases[] = {{GATE_SOFT, 0, "soft"}, {GATE_STOCHASTIC, 0, "stochastic"},
                 {GATE_TOPK, 0, "topk"}, {GATE_SOFT, 4, "soft + 4 experts"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double scale, gap = simulated_gap(cases[i].mode, cases[i].experts, 1, &scale);
        CHECK(gap <= 1e-5 * scale, "%s: two half batches' gradients add up to the whole "
                                   "batch's (max gap %.3g, largest gradient %.3g)",
              cases[i].name, gap, scale);
    }
    double scale, gap = simulated_gap(GATE_STOCHASTIC, 0, 0, &scale);
    CHECK(gap > 1e-3 * scale, "stochastic without row_base: the second half draws other masks "
                              "(gap %.3g): the masks must be seeded by the global row", gap);
}

static void test_aux_scaling(void)
{
    /* grad_replicas N divides the load-balancing term: coefficient c over N
     * replicas is the same bits as coefficient c/N alone */
    float *g[2];
    for (int v = 0; v < 2; v++) {
        train_config tc = micro(GATE_SOFT, 1);
        tc.model.experts = 4;
        tc.model.moe_aux = v ? 0.05f : 0.1f;
        trainer t;
        gl_error e;
        GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
        data_next_batch(t.data, t.batch, 4);
        data_split_windows(t.batch, t.inputs, t.targets, 4, tc.model.T);
        t.m.grad_replicas = v ? 1 : 2;
        model_forward(&t.m, t.inputs, t.targets, 2);
        model_backward(&t.m);
        g[v] = xmalloc(t.m.num_params * sizeof(float));
        memcpy(g[v], t.m.grads, t.m.num_params * sizeof(float));
        size_t P = t.m.num_params;
        trainer_free(&t);
        if (v)
            CHECK(memcmp(g[0], g[1], P * sizeof(float)) == 0,
                  "moe: the aux term over 2 replicas at 0.1 is the bits of one at 0.05");
    }
    free(g[0]);
    free(g[1]);
}

/* ---- two ranks ---- */

#define PARITY_STEPS 30
/* The tolerance of --dp 2 against one process, on the loss of each of 30
 * steps: the replicas' gradient differs from the single process's only in
 * fp32 summation order (test_simulated_replicas: <= 1e-5 of the largest
 * entry, measured ~1e-7), the forward's loss is the same sum in another
 * order (~1e-7). AdamW divides by sqrt(v): in the first steps, entries with
 * v ~ 0 turn a relative gap of 1e-7 into updates that differ by up to a
 * few 1e-7 of lr, and 30 steps of that move the loss by ~1e-6. 1e-4 (nats,
 * on losses ~3-5.5) leaves a factor ~100 of margin, yet any real mistake —
 * a wrong slice, a missing 1/N, one replica's gradient alone, different
 * masks — moves it by 1e-2 or more from the first steps on (measured:
 * printed below). */
#define PARITY_TOL 1e-4

static void test_parity(dp_comm *c)
{
    train_config tc = micro(GATE_SOFT, PARITY_STEPS);
    double ref[PARITY_STEPS], dp[PARITY_STEPS], dp_blocking[PARITY_STEPS];
    trainer tr, td;
    if (run_losses(&tc, NULL, 0, ref, PARITY_STEPS, &tr) ||
        run_losses(&tc, c, 1, dp, PARITY_STEPS, &td)) {
        CHECK(0, "parity runs diverged");
        return;
    }
    double worst = 0.0;
    for (size_t s = 0; s < PARITY_STEPS; s++)
        if (fabs(dp[s] - ref[s]) > worst)
            worst = fabs(dp[s] - ref[s]);
    CHECK(worst <= PARITY_TOL, "--dp 2 vs one process, %d steps of the same global batch: "
                               "losses within %.0e (worst %.3g; step 1 %.7f vs %.7f, step %d "
                               "%.7f vs %.7f)", PARITY_STEPS, PARITY_TOL, worst, dp[0], ref[0],
          PARITY_STEPS, dp[PARITY_STEPS - 1], ref[PARITY_STEPS - 1]);
    /* AdamW moves a weight whose gradient is ~0 by about +-lr whatever the
     * gradient's size, so a summation-order flip of such a gradient's sign
     * moves that one weight by up to ~2 lr (6e-3): the largest gap says
     * little; the root mean square over all weights is the measure. 3e-4 is
     * a tenth of lr, one step's update of a weight (measured: ~4e-5; a
     * replica's half alone, below, is ~3e-3 off after 5 steps) */
    double scale, wgap = max_abs_diff(tr.m.params, td.m.params, tr.m.num_params, &scale);
    double sq = 0.0;
    for (size_t i = 0; i < tr.m.num_params; i++)
        sq += ((double)tr.m.params[i] - td.m.params[i]) * ((double)tr.m.params[i] - td.m.params[i]);
    double rms = sqrt(sq / (double)tr.m.num_params);
    CHECK(rms < 3e-4, "weights after %d steps: root mean square gap to one process's %.3g "
                      "(< 3e-4; largest single gap %.3g)", PARITY_STEPS, rms, wgap);
    gl_error e;
    CHECK(trainer_dp_check(&td, &e) == 0, "the replicas' weights hash equal after %d steps",
          PARITY_STEPS);
    dp_stats st;
    dp_get_stats(c, &st);
    CHECK(st.steps == PARITY_STEPS && st.allreduces == PARITY_STEPS * st.buckets,
          "%zu buckets per step, %llu sums, %.1f KiB per step", st.buckets,
          (unsigned long long)st.allreduces, (double)st.bytes / PARITY_STEPS / 1024.0);
    trainer_free(&td);
    trainer_free(&tr);
    run_losses(&tc, c, 0, dp_blocking, PARITY_STEPS, NULL);
    CHECK(memcmp(dp, dp_blocking, sizeof dp) == 0,
          "2 replicas: overlapped and blocking bucket sums give the same bits");
    /* a mistake the tolerance must catch: one replica's gradient alone
     * (no sum) — the same run with the hook and the sum left out */
    {
        trainer t;
        GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
        size_t r0, rows;
        GL_ASSERT(dp_slice(4, 2, dp_replica(c), &r0, &rows, &e) == 0);
        double worst_wrong = 0.0;
        for (size_t s = 0; s < 5; s++) {
            data_next_batch(t.data, t.batch, 4);
            data_split_windows(t.batch, t.inputs, t.targets, 4, tc.model.T);
            t.m.step_salt = s;
            double l = model_forward(&t.m, t.inputs + r0 * tc.model.T,
                                     t.targets + r0 * tc.model.T, rows);
            model_backward(&t.m);
            optim_step(&t.o, &t.m, s);
            double d = fabs(dp_sum(c, l) / 2.0 - ref[s]);
            if (d > worst_wrong)
                worst_wrong = d;
        }
        trainer r5;
        double l5[5];
        run_losses(&tc, NULL, 0, l5, 5, &r5);
        double sq5 = 0.0;
        for (size_t i = 0; i < t.m.num_params; i++)
            sq5 += ((double)t.m.params[i] - r5.m.params[i]) *
                   ((double)t.m.params[i] - r5.m.params[i]);
        double rms5 = sqrt(sq5 / (double)t.m.num_params);
        CHECK(worst_wrong > 100 * PARITY_TOL && rms5 > 3e-4,
              "each replica on its own half (no gradient sum) is off by %.3g in loss and %.3g "
              "root mean square in weights after 5 steps: the tolerances tell", worst_wrong, rms5);
        trainer_free(&r5);
        trainer_free(&t);
    }
}

static void test_corruption(dp_comm *c)
{
    train_config tc = micro(GATE_SOFT, 10);
    trainer t;
    gl_error e;
    GL_ASSERT(trainer_init(&t, &tc, &e) == 0 && trainer_set_dp(&t, c, 1 << 20, 1, &e) == 0);
    for (int s = 0; s < 5; s++)
        trainer_step(&t);
    CHECK(trainer_dp_check(&t, &e) == 0, "5 steps: weights agree");
    if (dp_replica(c) == 1)
        t.m.params[t.m.num_params / 3] += 1e-3f;
    int rc = trainer_dp_check(&t, &e);
    CHECK(rc == -1 && strstr(e.msg, "replica 1 of 2") && strstr(e.msg, "step 5"),
          "one weight changed on replica 1: the check fails on every replica: %s",
          rc ? e.msg : "(passed)");
    trainer_free(&t);
}

typedef struct {
    double step_loss[64];
    size_t nsteps, swap_step, swaps, errors;
    int status;
    char error[REC_TEXT];
    double final_val;
} arm_seen;

static void run_arm(dp_comm *c, const train_config *tc, const scripted_command *script,
                    size_t nscript, int corrupt, int stop_at, arm_seen *seen)
{
    memset(seen, 0, sizeof *seen);
    seen->swap_step = SIZE_MAX;
    seen->status = -1;
    trainer t;
    gl_error e;
    GL_ASSERT(trainer_init(&t, tc, &e) == 0);
    if (c)
        GL_ASSERT(trainer_set_dp(&t, c, 4096, 1, &e) == 0);
    if (corrupt && dp_replica(c) == 1)
        t.m.params[7] *= 1.5f;
    arm_config ac = {.steps = tc->steps, .eval_every = 10, .telemetry = 1};
    arm *a = arm_create(0, "dp", &t, &ac, script, nscript);
    GL_ASSERT(arm_start(a, &e) == 0);
    int stopped = 0;
    for (;;) {
        int done = arm_done(a);
        tel_record r;
        while (arm_poll(a, &r) == 0) {
            if (r.kind == REC_STEP && r.step >= 1 && r.step <= 64) {
                seen->step_loss[r.step - 1] = r.u.step.loss;
                seen->nsteps = r.step;
            } else if (r.kind == REC_EVENT && r.u.event.kind == EV_SWAP) {
                seen->swaps++;
                seen->swap_step = r.step;
            } else if (r.kind == REC_EVENT && r.u.event.kind == EV_ERROR) {
                seen->errors++;
                snprintf(seen->error, sizeof seen->error, "%s", r.u.event.detail);
            } else if (r.kind == REC_STATUS) {
                seen->status = (int)r.u.status.status;
            } else if (r.kind == REC_EVAL) {
                seen->final_val = r.u.eval.val_loss;
            }
        }
        if (done)
            break;
        if (stop_at && !stopped && arm_step(a) >= (uint64_t)stop_at) {
            /* every rank sends it: the follower must ignore its own */
            cmd_record stop = {.kind = CMD_STOP};
            arm_send(a, &stop);
            stopped = 1;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    arm_join(a);
    seen->nsteps = arm_step(a);
    if (c && arm_dp_mismatch(a))
        seen->errors += 1000;   /* marks the mismatch for the follower's check */
    arm_destroy(a);
}

static void test_arm(dp_comm *c)
{
    const int leader = dp_replica(c) == 0;
    /* a swap at step 12 and a short pause at 5, given to the leader alone */
    scripted_command script[2];
    gl_error e;
    GL_ASSERT(command_parse("5:pause:0.2", &script[0], &e) == 0);
    GL_ASSERT(command_parse("12:swap:topk", &script[1], &e) == 0);
    train_config tc = micro(GATE_SOFT, 30);
    arm_seen one, two;
    if (leader)
        run_arm(NULL, &tc, script, 2, 0, 0, &one);   /* the single-process reference */
    run_arm(c, &tc, leader ? script : NULL, leader ? 2 : 0, 0, 0, &two);
    double steps_all = dp_sum(c, (double)two.nsteps);
    CHECK(steps_all == 60.0, "both replicas' arms ran 30 steps (%g in all)", steps_all);
    if (leader) {
        double worst = 0.0;
        for (size_t s = 0; s < 30; s++)
            if (fabs(one.step_loss[s] - two.step_loss[s]) > worst)
                worst = fabs(one.step_loss[s] - two.step_loss[s]);
        CHECK(two.swaps == 1 && two.swap_step == 12 && one.swap_step == 12,
              "the scripted swap lands once, at step 12 (%zu swaps, at %zu)", two.swaps,
              two.swap_step);
        CHECK(worst <= PARITY_TOL && fabs(one.final_val - two.final_val) <= PARITY_TOL,
              "--dp 2 arm with the swap vs one process: step losses within %.0e (worst "
              "%.3g), final val %.6f vs %.6f: the follower swapped at 12 too", PARITY_TOL,
              worst, two.final_val, one.final_val);
        CHECK(two.status == RUN_FINISHED && two.errors == 0,
              "the arm finished, every evaluation's weight hashes equal (status %d, %zu errors)",
              two.status, two.errors);
    }
    /* the leader pauses at step 8 (its script), and a stop goes to both
     * ranks' arms: the follower ignores its own and takes the leader's at
     * the same boundary */
    GL_ASSERT(command_parse("8:pause", &script[0], &e) == 0);
    run_arm(c, &tc, leader ? script : NULL, leader ? 1 : 0, 0, 8, &two);
    double mine = (double)two.nsteps, total = dp_sum(c, mine);
    CHECK(total == 2.0 * mine && mine == 8,
          "a stop ends both replicas at the same step (%g here, %g in all)", mine, total);
    if (leader)
        CHECK(two.status == RUN_STOPPED, "the leader's arm reports stopped (status %d)",
              two.status);
    /* replica 1's weights corrupted before the start: the first evaluation
     * (step 0, the co-adaptation trace's untrained one) finds it, before a
     * step is trained on diverged replicas; the arm fails on both */
    run_arm(c, &tc, NULL, 0, 1, 0, &two);
    CHECK(two.errors >= 1000 && two.nsteps == 0,
          "a corrupted replica: arm_dp_mismatch on this replica, stopped at step %zu",
          two.nsteps);
    if (leader)
        CHECK(two.status == RUN_FAILED && strstr(two.error, "replica 1 of 2") &&
                  strstr(two.error, "step 0"),
              "the leader's arm ends failed with an error event naming the replica: %s",
              two.error);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--built-with-mpi") == 0) {
        printf("%d\n", world_built_with_mpi());   /* for tests/test_dp.sh */
        return 0;
    }
    world w;
    gl_error e;
    if (world_init(&w, &argc, &argv, &e)) {
        fprintf(stderr, "test_dp: %s\n", e.msg);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    rank_of_process = w.rank;
    if (w.size == 1) {
        test_slice();
        test_boundary_codec();
        test_hash();
        test_open_one();
        test_alone_unchanged();
        test_layer_hook();
        test_simulated_replicas();
        test_aux_scaling();
        printf("(alone: the two-rank checks run under mpirun -np 2, tests/test_dp.sh)\n");
        world_finalize(&w);
        return check_finish();
    }
    if (w.size != 2) {
        if (w.rank == 0)
            printf("test_dp: run with mpirun -np 2 (got %d ranks)\n0 passed, 1 failed\n", w.size);
        world_finalize(&w);
        return 1;
    }
    placement p;
    dp_comm *group = NULL, *c = NULL;
    if (placement_init(&p, w.size, 2, &e) || dp_open(&group, &w, &p, &e) ||
        dp_dup(&c, group, &e)) {
        fprintf(stderr, "test_dp: %s\n", e.msg);
        printf("0 passed, 1 failed\n");
        world_finalize(&w);
        return 1;
    }
    if (w.rank != 0)
        printf("[rank 1]\n");
    CHECK(dp_size(c) == 2 && dp_replica(c) == w.rank, "rank %d is replica %d of %d", w.rank,
          dp_replica(c), dp_size(c));
    test_parity(c);
    test_corruption(c);
    test_arm(c);
    fflush(stdout);
    double passed = dp_sum(group, check_passed), failed = dp_sum(group, check_failed);
    dp_close(c);
    dp_close(group);
    world_finalize(&w);
    if (w.rank == 0) {
        printf("(2 ranks: totals of both)\n%.0f passed, %.0f failed\n", passed, failed);
        return failed > 0;
    }
    return check_failed > 0;
}
