/* test_train: the training loop end to end on the embedded corpus —
 * learning below the unigram entropy, bit-identical determinism (also across
 * thread counts, for training, evaluation and distillation), a resumed run
 * continuing exactly, no heap allocation inside a step, the one val loop
 * (evaluate.c) and the gate-only AdamW that distill uses. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "check.h"
#include "distill.h"
#include "evaluate.h"
#include "rng.h"
#include "trainer.h"

static train_config small_config(gate_mode mode, size_t steps)
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

static void test_learning(void)
{
    /* the tiny preset's shape, with batch 4 so the test stays short */
    train_config tc;
    memset(&tc, 0, sizeof tc);
    model_preset("tiny", &tc.model);
    tc.model.batch = 4;
    optim_default_config(&tc.optim);
    tc.optim.warmup = 20;
    tc.steps = getenv("GATELAB_QUICK") ? 60 : 250;
    tc.eval_windows = 16;
    tc.threads = 2;
    trainer t;
    gl_error e;
    if (trainer_init(&t, &tc, &e)) {
        CHECK(0, "trainer_init: %s", e.msg);
        return;
    }
    double unigram = data_unigram_entropy(t.data);
    eval_result before, after;
    trainer_eval(&t, &before);
    int ok = 1;
    for (size_t s = 0; s < tc.steps && ok; s++)
        ok = trainer_step(&t) == 0;
    trainer_eval(&t, &after);
    printf("    tiny preset (batch 4), soft gate, %zu steps: val loss %.4f -> %.4f nats/byte; "
           "unigram entropy of the data %.4f\n", tc.steps, before.loss, after.loss, unigram);
    CHECK(ok, "no divergence in %zu steps", tc.steps);
    double margin = getenv("GATELAB_QUICK") ? 0.2 : 0.6;
    CHECK(after.loss < unigram - margin,
          "val loss %.4f is below the unigram entropy %.4f by more than %.1f nats", after.loss,
          unigram, margin);
    trainer_free(&t);
}

static int run_losses(const train_config *tc, double *losses, size_t n)
{
    trainer t;
    gl_error e;
    if (trainer_init(&t, tc, &e))
        return -1;
    for (size_t s = 0; s < n; s++) {
        trainer_step(&t);
        losses[s] = t.last_loss;
    }
    trainer_free(&t);
    return 0;
}

static void test_determinism(void)
{
    gate_mode modes[] = {GATE_SOFT, GATE_STOCHASTIC, GATE_TOPK};
    for (size_t i = 0; i < 3; i++) {
        train_config tc = small_config(modes[i], 12);
        double a[12], b[12];
        GL_ASSERT(run_losses(&tc, a, 12) == 0 && run_losses(&tc, b, 12) == 0);
        CHECK(memcmp(a, b, sizeof a) == 0,
              "%s: two runs with seed 1 give bit-identical losses (step 12: %.9f, %.9f)",
              gate_mode_name(modes[i]), a[11], b[11]);
        tc.model.seed = 2;
        GL_ASSERT(run_losses(&tc, b, 12) == 0);
        CHECK(memcmp(a, b, sizeof a) != 0, "%s: seed 2 gives different losses",
              gate_mode_name(modes[i]));
    }
}

#define THREADS_STEPS 6

/* What a few steps of one trainer leave behind, to compare bit for bit. */
typedef struct {
    double loss[THREADS_STEPS];
    double eval_loss, gate_grad_norm, precision, balance;
    float *params;   /* [num_params], malloc'd */
} threads_outcome;

static int threads_run(const train_config *tc, threads_outcome *o)
{
    trainer t;
    gl_error e;
    if (trainer_init(&t, tc, &e))
        return -1;
    for (size_t s = 0; s < THREADS_STEPS; s++) {
        trainer_step(&t);
        o->loss[s] = t.last_loss;
    }
    eval_result ev;
    trainer_eval(&t, &ev);
    o->eval_loss = ev.loss;
    o->balance = ev.expert_balance;
    o->gate_grad_norm = t.gate_grad_norm;
    o->precision = metrics_model_value(&t.metrics, t.m.cfg.layers, METRIC_PRECISION);
    o->params = malloc(t.m.num_params * sizeof(float));
    memcpy(o->params, t.m.params, t.m.num_params * sizeof(float));
    trainer_free(&t);
    return 0;
}

/* pool.h: the same bits for any thread count. The shapes are chosen so that
 * most pool_runs are cut into several blocks (B*T = 512 rows: 4 row blocks
 * of the linears, 32 cross-entropy blocks, 32 attention pairs, 4 blocks of
 * the tied head's weight gradient), which 2 and 3 threads share out
 * differently. Under the old per-thread chunking the GEMM shapes and the
 * partial sums followed the thread count, which changed the 9th digit of the
 * first loss already. */
static void test_thread_count_invariance(void)
{
    static const struct {
        const char *name;
        gate_mode mode;
        size_t experts;
    } cases[] = {
        {"dense", GATE_DENSE, 0},      {"soft", GATE_SOFT, 0},
        {"topk", GATE_TOPK, 0},        {"stochastic", GATE_STOCHASTIC, 0},
        {"soft, 4 experts", GATE_SOFT, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        train_config tc = small_config(cases[c].mode, THREADS_STEPS);
        tc.model.batch = 16;
        tc.model.experts = cases[c].experts;
        tc.eval_windows = 20;   /* a full val batch and a partial one */
        threads_outcome ref, o;
        GL_ASSERT(threads_run(&tc, &ref) == 0);
        for (size_t threads = 2; threads <= 3; threads++) {
            tc.threads = threads;
            GL_ASSERT(threads_run(&tc, &o) == 0);
            const size_t n = model_count_params(&tc.model);
            int same_loss = memcmp(o.loss, ref.loss, sizeof ref.loss) == 0;
            int same_params = memcmp(o.params, ref.params, n * sizeof(float)) == 0;
            int same_eval = memcmp(&o.eval_loss, &ref.eval_loss, sizeof(double)) == 0 &&
                            memcmp(&o.gate_grad_norm, &ref.gate_grad_norm, sizeof(double)) == 0 &&
                            memcmp(&o.precision, &ref.precision, sizeof(double)) == 0 &&
                            memcmp(&o.balance, &ref.balance, sizeof(double)) == 0;
            CHECK(same_loss && same_params && same_eval,
                  "%s: %zu threads give the bits of 1 thread: losses (step 1 %.17g vs %.17g), "
                  "%zu params after %d steps (%s), eval loss, gate grad norm, precision, "
                  "expert balance (%s)",
                  cases[c].name, threads, o.loss[0], ref.loss[0], n, THREADS_STEPS,
                  same_params ? "same" : "differ", same_eval ? "same" : "differ");
            free(o.params);
        }
        free(ref.params);
    }
}

/* Distillation of a fresh gate on a frozen micro model with 1, 2, 3 threads:
 * losses, the distilled gate and the held-out agreement bit for bit. */
static void test_distill_thread_count_invariance(void)
{
    train_config tc = small_config(GATE_DENSE, 1);
    tc.model.batch = 16;
    const size_t B = tc.model.batch, T = tc.model.T;
    int32_t *in = malloc(B * T * sizeof *in);
    rng_state r;
    rng_seed(&r, 11);
    double ref_loss[THREADS_STEPS], loss[THREADS_STEPS];
    distill_agree ref_agree, agree;
    float *ref = NULL;
    for (size_t threads = 1; threads <= 3; threads++) {
        model m;
        gl_error e;
        GL_ASSERT(model_init(&m, &tc.model, threads, &e) == 0);
        distill_config dc;
        distill_default_config(&dc);
        dc.batch = B;
        dc.steps = THREADS_STEPS;
        distill d;
        GL_ASSERT(distill_init(&d, &m, &dc, &e) == 0);
        rng_seed(&r, 11);
        for (size_t s = 0; s < THREADS_STEPS; s++) {
            for (size_t i = 0; i < B * T; i++)
                in[i] = (int32_t)rng_below(&r, tc.model.V);
            loss[s] = distill_forward(&d, in, B);
            distill_backward(&d);
            distill_update(&d);
        }
        d.agree_on = 1;
        distill_forward(&d, in, B - 3);   /* a partial batch too */
        distill_agree_mean(&d, 0, tc.model.layers, &agree);
        if (threads == 1) {
            memcpy(ref_loss, loss, sizeof loss);
            ref_agree = agree;
            ref = malloc(m.num_params * sizeof(float));
            memcpy(ref, m.params, m.num_params * sizeof(float));
        } else {
            int same_params = memcmp(ref, m.params, m.num_params * sizeof(float)) == 0;
            int same_agree = memcmp(&ref_agree, &agree, sizeof agree) == 0;
            CHECK(memcmp(ref_loss, loss, sizeof loss) == 0 && same_params && same_agree,
                  "distill: %zu threads give the bits of 1 thread: losses (update %d: %.17g vs "
                  "%.17g), gate after %d updates (%s), held-out agreement (%s)",
                  threads, THREADS_STEPS, loss[THREADS_STEPS - 1], ref_loss[THREADS_STEPS - 1],
                  THREADS_STEPS, same_params ? "same" : "differ", same_agree ? "same" : "differ");
        }
        distill_free(&d);
        model_free(&m);
    }
    free(ref);
    free(in);
}

static void test_resume(void)
{
    char dir[] = "/tmp/gatelab_train_XXXXXX";
    GL_ASSERT(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    train_config tc = small_config(GATE_SOFT, 12);
    double straight[12];
    GL_ASSERT(run_losses(&tc, straight, 12) == 0);

    trainer t;
    gl_error e;
    GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
    for (int s = 0; s < 6; s++)
        trainer_step(&t);
    int saved = trainer_save(&t, path, &e) == 0;
    CHECK(saved, "resumable checkpoint written at step 6%s%s", saved ? "" : ": ",
          saved ? "" : e.msg);
    trainer_free(&t);

    GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
    int restored = trainer_restore(&t, path, &e) == 0;
    CHECK(restored, "restored from the checkpoint%s%s", restored ? "" : ": ",
          restored ? "" : e.msg);
    double resumed[6];
    for (int s = 0; s < 6; s++) {
        trainer_step(&t);
        resumed[s] = t.last_loss;
    }
    CHECK(t.step == 12, "resumed trainer counts steps from 6 to %zu", t.step);
    CHECK(memcmp(resumed, straight + 6, sizeof resumed) == 0,
          "steps 7-12 after resume equal the uninterrupted run bit for bit (%.9f vs %.9f)",
          resumed[5], straight[11]);
    trainer_free(&t);
    unlink(path);
    rmdir(dir);
}

static void test_no_allocation_in_step(void)
{
    /* a soft gate, and a soft gate with a mixture-of-experts FFN */
    for (size_t experts = 0; experts <= 4; experts += 4) {
        train_config tc = small_config(GATE_SOFT, 20);
        tc.threads = 2;
        tc.model.experts = experts;
        trainer t;
        gl_error e;
        GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
        trainer_step(&t); /* first step may fault in library buffers */
        struct mallinfo2 before = mallinfo2();
        for (int s = 0; s < 5; s++)
            trainer_step(&t);
        struct mallinfo2 after = mallinfo2();
        CHECK(before.uordblks == after.uordblks && before.hblkhd == after.hblkhd,
              "%s: 5 training steps leave the heap unchanged (%zu -> %zu bytes in use)",
              experts ? "soft, 4 experts" : "soft", before.uordblks, after.uordblks);
        trainer_free(&t);
    }
}

static void test_nonfinite_gradient_keeps_weights(void)
{
    train_config tc = small_config(GATE_SOFT, 5);
    trainer t;
    gl_error e;
    GL_ASSERT(trainer_init(&t, &tc, &e) == 0);
    trainer_step(&t);
    model_forward(&t.m, t.inputs, t.targets, t.m.cfg.batch);
    model_backward(&t.m);
    t.m.grads[t.m.num_params / 2] = NAN;
    float *before = malloc(t.m.num_params * sizeof(float));
    memcpy(before, t.m.params, t.m.num_params * sizeof(float));
    double norm = optim_step(&t.o, &t.m, 1);
    CHECK(isnan(norm) && memcmp(before, t.m.params, t.m.num_params * sizeof(float)) == 0,
          "a NaN gradient is reported (norm %g) and leaves every weight untouched", norm);
    free(before);
    trainer_free(&t);
}

/* evaluate.c, the loop every evaluation shares: the trainer's eval is a
 * plain evaluate_windows of its model, a token array laid out as the val
 * split gives the split's loss, the two summations agree to the bit when T
 * is a power of two, and the model's salt and metrics come back as they
 * were. */
static void test_evaluate(void)
{
    train_config tc = small_config(GATE_STOCHASTIC, 3);
    tc.eval_windows = 10;   /* batches of 4, 4 and 2 */
    trainer t;
    gl_error e;
    if (trainer_init(&t, &tc, &e)) {
        CHECK(0, "trainer_init: %s", e.msg);
        return;
    }
    for (size_t i = 0; i < tc.steps; i++)
        trainer_step(&t);
    const size_t all = data_val_windows(t.data), T = t.m.cfg.T;
    const size_t W = evaluate_window_count(t.data, tc.eval_windows);
    CHECK(W == 10 && evaluate_window_count(t.data, 0) == all &&
              evaluate_window_count(t.data, all + 1) == all,
          "window count: the limit when below the split (%zu), else all %zu", W, all);
    t.m.step_salt = 12345;
    eval_result r;
    trainer_eval(&t, &r);
    CHECK(t.m.step_salt == 12345 && t.m.metrics == NULL && r.tokens == W * T,
          "trainer_eval leaves the salt and metrics pointer as they were, counts %zu tokens",
          r.tokens);
    evaluate_spec s = {.data = t.data, .windows = W, .weight = EVALUATE_PER_TOKEN};
    const double tok = evaluate_windows(&t.m, &s);
    CHECK(tok == r.loss, "trainer_eval is evaluate_windows per token (%.17g vs %.17g)", r.loss,
          tok);
    s.weight = EVALUATE_PER_WINDOW;
    const double win = evaluate_windows(&t.m, &s);
    CHECK(win == tok, "T = 32: the per-window sum is the per-token one to the bit (%.17g)", win);
    /* the split as a token file: window w = tokens[w*T .. w*T+T] */
    int32_t *tokens = xcalloc(W * T + 1, sizeof *tokens);
    for (size_t w = 0; w < W; w++)
        data_val_window(t.data, w, tokens + w * T);
    evaluate_spec f = {.tokens = tokens, .windows = W, .weight = EVALUATE_PER_TOKEN};
    const double file = evaluate_windows(&t.m, &f);
    CHECK(file == tok, "a token array holding the split evaluates the same (%.17g)", file);
    f.windows = 0;
    CHECK(isnan(evaluate_windows(&t.m, &f)), "no windows: NaN");
    free(tokens);
    trainer_free(&t);
}

/* The attention heatmap (sequence 0 of the first val batch, every layer and
 * head): the forward keeps no T x T probabilities, so the evaluation's
 * forward draws them as it computes them. T = 72 spans two row blocks.
 * Dense: every byte within 1 of round(255 p) from softmax(q.k/sqrt(hd)) in
 * double, computed here from the batch's q and k; topk: rows past k show k
 * keys, and every row's bytes add up to about 255. */
static void test_attention_heatmap(void)
{
    const gate_mode modes[] = {GATE_DENSE, GATE_TOPK};
    for (size_t mi = 0; mi < 2; mi++) {
        train_config tc = small_config(modes[mi], 2);
        tc.model.T = 72;
        tc.eval_windows = tc.model.batch;   /* one batch: its q, k stay in place */
        tc.heatmaps = 1;
        trainer t;
        gl_error e;
        if (trainer_init(&t, &tc, &e)) {
            CHECK(0, "trainer_init: %s", e.msg);
            return;
        }
        for (size_t i = 0; i < tc.steps; i++)
            trainer_step(&t);
        eval_result r;
        trainer_eval(&t, &r);
        const size_t L = t.m.cfg.layers, H = t.m.cfg.heads, T = t.m.cfg.T, C = t.m.cfg.d;
        const size_t hd = C / H, k = t.m.cfg.k;
        size_t bad_ref = 0, bad_past = 0, bad_sum = 0, bad_k = 0;
        double p[72];
        for (size_t l = 0; l < L; l++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < T; i++) {
                    const uint8_t *row = t.heat->attn + ((l * H + h) * T + i) * T;
                    const float *q = t.m.la[l].qkv + i * 3 * C + h * hd;
                    double mx = -INFINITY, sum = 0.0;
                    for (size_t j = 0; j <= i; j++) {
                        const float *kj = t.m.la[l].qkv + j * 3 * C + C + h * hd;
                        double c = 0.0;
                        for (size_t x = 0; x < hd; x++)
                            c += (double)q[x] * kj[x];
                        p[j] = c / sqrt((double)hd);
                        mx = fmax(mx, p[j]);
                    }
                    for (size_t j = 0; j <= i; j++)
                        sum += (p[j] = exp(p[j] - mx));
                    unsigned total = 0, nonzero = 0;
                    for (size_t j = 0; j < T; j++) {
                        total += row[j];
                        nonzero += row[j] != 0;
                        if (j > i)
                            bad_past += row[j] != 0;
                        else if (modes[mi] == GATE_DENSE)
                            bad_ref += fabs(row[j] - 255.0 * p[j] / sum) > 1.0;
                    }
                    bad_sum += fabs((double)total - 255.0) > 0.5 * (double)(i + 1);
                    bad_k += modes[mi] == GATE_TOPK && i + 1 > k && nonzero > k;
                }
        CHECK(bad_past == 0 && bad_sum == 0 && bad_ref == 0 && bad_k == 0,
              "%s T=72: attention heatmap rows are sequence 0's probabilities (off the "
              "reference %zu, past the diagonal %zu, sum off 255 %zu, more than k keys %zu)",
              gate_mode_name(modes[mi]), bad_ref, bad_past, bad_sum, bad_k);
        trainer_free(&t);
    }
}

/* optim's OPTIM_GATE (distill's AdamW): the gate tensors move, every other
 * parameter stays to the bit even with a gradient in place, and the moments
 * are the gate's size. */
static void test_optim_gate_scope(void)
{
    train_config tc = small_config(GATE_DENSE, 1);
    model m;
    gl_error e;
    if (model_init(&m, &tc.model, 1, &e)) {
        CHECK(0, "model_init: %s", e.msg);
        return;
    }
    size_t gate = 0;
    for (size_t i = 0; i < m.ntensors; i++)
        gate += m.tensors[i].is_gate ? m.tensors[i].numel : 0;
    for (size_t i = 0; i < m.num_params; i++)
        m.grads[i] = 0.01f * (float)((i % 7) + 1);
    float *before = xmalloc(m.num_params * sizeof *before);
    memcpy(before, m.params, m.num_params * sizeof *before);
    optim o;
    optim_init_gate(&o, &tc.optim, &m);
    double norm = optim_step(&o, &m, 0);
    size_t moved = 0, other = 0;
    for (size_t i = 0; i < m.ntensors; i++) {
        const model_tensor *tt = &m.tensors[i];
        for (size_t j = 0; j < tt->numel; j++) {
            int same = m.params[tt->offset + j] == before[tt->offset + j];
            if (tt->is_gate)
                moved += !same;
            else
                other += !same;
        }
    }
    CHECK(o.num_params == gate && o.t == 1 && isfinite(norm) && moved > 0 && other == 0,
          "OPTIM_GATE: %zu moments, %zu gate weights moved, %zu others moved (0)",
          o.num_params, moved, other);
    optim_reset(&o);
    size_t nonzero = 0;
    for (size_t i = 0; i < o.num_params; i++)
        nonzero += o.m[i] != 0.0f || o.v[i] != 0.0f;
    CHECK(o.t == 0 && nonzero == 0, "optim_reset zeroes the moments and the update count");
    optim_free(&o);
    free(before);
    model_free(&m);
}

int main(void)
{
    openblas_set_num_threads(1);
    test_determinism();
    test_thread_count_invariance();
    test_distill_thread_count_invariance();
    test_resume();
    test_no_allocation_in_step();
    test_nonfinite_gradient_keeps_weights();
    test_evaluate();
    test_attention_heatmap();
    test_optim_gate_scope();
    test_learning();
    return check_finish();
}
