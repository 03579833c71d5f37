/* test_distill: the gate distillation of distill.h — central-difference
 * check of its gradient in gate.q, gate.k and gate.bias, the frozen model
 * untouched, no allocation per update, the loss going down on a trained
 * micro model, the distilled gate beating chance against the oracle when
 * deployed, and the checkpoint round trip through mode `distilled`. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "distill.h"
#include "model.h"
#include "rng.h"
#include "trainer.h"

static model_config micro(void)
{
    model_config c;
    model_preset("tiny", &c);
    c.V = 16;
    c.T = 8;
    c.d = 16;
    c.layers = 2;
    c.heads = 2;
    c.mlp = 32;
    c.r = 4;
    c.batch = 2;
    c.k = 3;
    c.mode = GATE_DENSE;
    c.seed = 7;
    return c;
}

static void random_tokens(int32_t *x, size_t n, size_t V, uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (int32_t)rng_below(&r, V);
}

/* Tolerance. The loss is smooth in the gate (the labels depend only on the
 * frozen model), so unlike the LM-loss check of test_model no element has to
 * be skipped. Scores are fp32 (relative rounding ~6e-8) and the BCE sum is
 * accumulated in double, so with eps = 1e-3 the rounding noise of a central
 * difference is about |dBCE/ds| * 6e-8 * |s| / eps ~ 1e-5 per entry and
 * averages down over the entries, while the O(eps^2) truncation term is
 * ~1e-6 * |f'''|. The error of a tensor is the norm of (fd - analytic) over
 * its elements divided by the larger norm floored at 1e-4 (the noise level
 * above times sqrt(#elements)). A correct backward stays near 1e-3; a
 * missing 1/sqrt(r), a dropped bias term, a transposed product or a wrong
 * normaliser gives errors of order 1. Tolerance 1e-2. */
#define FD_EPS 1e-3f
#define FD_TOL 1e-2
#define FD_FLOOR 1e-4

static void test_gradcheck(void)
{
    model_config c = micro();
    model m;
    gl_error err;
    GL_ASSERT(model_init(&m, &c, 1, &err) == 0);
    distill_config dc;
    distill_default_config(&dc);
    dc.batch = c.batch;
    dc.seed = 3;
    distill d;
    GL_ASSERT(distill_init(&d, &m, &dc, &err) == 0);
    /* a fresh gate's scores are all near 0, where sigmoid is nearly linear;
     * spread them and give the bias a value so every path is exercised */
    for (size_t i = 0; i < m.ntensors; i++) {
        const model_tensor *t = &m.tensors[i];
        if (!t->is_gate)
            continue;
        for (size_t j = 0; j < t->numel; j++)
            m.params[t->offset + j] = t->ndim == 2 ? m.params[t->offset + j] * 40.0f
                                                   : 0.4f * (float)j - 0.3f;
    }
    int32_t in[16];
    random_tokens(in, c.batch * c.T, c.V, 11);
    double base = distill_forward(&d, in, c.batch);
    /* sentinel: the backward must not touch any other gradient */
    for (size_t i = 0; i < m.num_params; i++)
        m.grads[i] = 123.0f;
    distill_backward(&d);
    size_t touched = 0;
    for (size_t i = 0; i < m.ntensors; i++)
        if (!m.tensors[i].is_gate)
            for (size_t j = 0; j < m.tensors[i].numel; j++)
                touched += m.grads[m.tensors[i].offset + j] != 123.0f;
    CHECK(touched == 0, "distill_backward writes only the gate's gradients (%zu others changed)",
          touched);
    float *an = malloc(m.num_params * sizeof *an);
    memcpy(an, m.grads, m.num_params * sizeof *an);
    double worst = 0.0;
    for (size_t i = 0; i < m.ntensors; i++) {
        const model_tensor *t = &m.tensors[i];
        if (!t->is_gate)
            continue;
        double diff2 = 0.0, an2 = 0.0, fd2 = 0.0;
        for (size_t j = 0; j < t->numel; j++) {
            float *w = &m.params[t->offset + j];
            float keep = *w;
            *w = keep + FD_EPS;
            double lp = distill_forward(&d, in, c.batch);
            *w = keep - FD_EPS;
            double lm = distill_forward(&d, in, c.batch);
            *w = keep;
            double fd = (lp - lm) / (2.0 * FD_EPS), a = an[t->offset + j];
            diff2 += (fd - a) * (fd - a);
            an2 += a * a;
            fd2 += fd * fd;
        }
        double rel = sqrt(diff2) / fmax(fmax(sqrt(an2), sqrt(fd2)), FD_FLOOR);
        worst = fmax(worst, rel);
        CHECK(rel < FD_TOL && sqrt(an2) > 10 * FD_FLOOR,
              "distill gradient of %-18s vs central differences: rel err %.2e (|g| %.3g, %zu "
              "elements)", t->name, rel, sqrt(an2), t->numel);
    }
    printf("    base loss %.6f, worst relative error %.2e\n", base, worst);
    free(an);
    distill_free(&d);
    model_free(&m);
}

/* A micro model trained briefly on the embedded generator (dense), so its
 * attention has real structure for the gate to learn. */
static int train_micro(trainer *t, const char *ckpt)
{
    train_config tc = {0};
    model_preset("tiny", &tc.model);
    tc.model.T = 32;
    tc.model.d = 32;
    tc.model.layers = 2;
    tc.model.heads = 2;
    tc.model.mlp = 128;
    tc.model.r = 8;
    tc.model.batch = 8;
    tc.model.k = 4;
    tc.model.mode = GATE_DENSE;
    tc.model.seed = 5;
    optim_default_config(&tc.optim);
    tc.optim.warmup = 20;
    tc.steps = 200;
    tc.eval_windows = 16;
    tc.threads = 1;
    gl_error err;
    if (trainer_init(t, &tc, &err)) {
        CHECK(0, "trainer_init: %s", err.msg);
        return -1;
    }
    for (size_t s = 0; s < tc.steps; s++)
        if (trainer_step(t)) {
            CHECK(0, "micro training diverged at step %zu", s);
            return -1;
        }
    if (trainer_save(t, ckpt, &err)) {
        CHECK(0, "trainer_save: %s", err.msg);
        return -1;
    }
    return 0;
}

static void test_learns(const char *ckpt)
{
    trainer t;
    if (train_micro(&t, ckpt))
        return;
    model *m = &t.m;
    const size_t T = m->cfg.T, B = m->cfg.batch;
    float *frozen = malloc(m->num_params * sizeof *frozen);
    memcpy(frozen, m->params, m->num_params * sizeof *frozen);

    distill_config dc;
    distill_default_config(&dc);
    dc.steps = 150;
    dc.warmup = 15;
    dc.batch = B;
    dc.seed = 9;
    distill d;
    gl_error err;
    GL_ASSERT(distill_init(&d, m, &dc, &err) == 0);
    /* held out: the val windows, in the distillation forward */
    int32_t *val = malloc(B * T * sizeof *val), *win = malloc((T + 1) * sizeof *win);
    for (size_t b = 0; b < B; b++) {
        data_val_window(t.data, b, win);
        memcpy(val + b * T, win, T * sizeof(int32_t));
    }
    double before = distill_forward(&d, val, B);
    int32_t *batch = malloc(B * (T + 1) * sizeof *batch), *in = malloc(B * T * sizeof *in);
    struct mallinfo2 heap0 = mallinfo2();
    for (size_t s = 0; s < dc.steps; s++) {
        data_next_batch(t.data, batch, B);
        for (size_t b = 0; b < B; b++)
            memcpy(in + b * T, batch + b * (T + 1), T * sizeof(int32_t));
        distill_forward(&d, in, B);
        distill_backward(&d);
        distill_update(&d);
    }
    struct mallinfo2 heap1 = mallinfo2();
    CHECK(heap1.uordblks == heap0.uordblks,
          "%zu distillation updates leave the heap unchanged (%zu -> %zu bytes in use)",
          dc.steps, heap0.uordblks, heap1.uordblks);
    distill_agree_reset(&d);
    d.agree_on = 1;
    double after = distill_forward(&d, val, B);
    d.agree_on = 0;
    distill_agree a;
    distill_agree_mean(&d, 0, m->cfg.layers, &a);
    CHECK(after < 0.8 * before, "held-out distillation loss goes down: %.4f -> %.4f", before,
          after);
    CHECK(a.topk_f1 > a.chance + 0.1,
          "held-out top-k F1 vs oracle %.3f beats chance %.3f (thresholded P/R/F1 %.3f/%.3f/%.3f)",
          a.topk_f1, a.chance, a.thr_p, a.thr_r, a.thr_f1);
    size_t moved = 0;
    for (size_t i = 0; i < m->ntensors; i++)
        if (!m->tensors[i].is_gate)
            moved += memcmp(frozen + m->tensors[i].offset, m->params + m->tensors[i].offset,
                            m->tensors[i].numel * sizeof(float)) != 0;
    CHECK(moved == 0, "every non-gate tensor is bit-identical after distillation (%zu moved)",
          moved);

    /* deployed through the ordinary eval: mode distilled, METRIC_F1 */
    model_set_mode(m, GATE_DISTILLED);
    eval_result ev;
    trainer_eval(&t, &ev);
    double f1 = 0.0, chance = 0.0;
    for (size_t l = 0; l < m->cfg.layers; l++) {
        f1 += metrics_layer_value(&t.metrics, l, METRIC_F1) / (double)m->cfg.layers;
        chance += metrics_layer_value(&t.metrics, l, METRIC_CHANCE) / (double)m->cfg.layers;
    }
    CHECK(isfinite(ev.ppl) && f1 > chance + 0.1,
          "deployed as mode distilled: F1 %.3f vs chance %.3f, val ppl %.3f", f1, chance, ev.ppl);
    free(batch);
    free(in);
    free(val);
    free(win);
    free(frozen);
    distill_free(&d);
    trainer_free(&t);
}

/* same bits (NaN included: an absent metric must stay absent) */
static int same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* A result carried to another rank (experiment_farm.h) as doubles: every
 * figure the store and the tables read comes back bit for bit, and a cut or
 * corrupted array is refused. */
static void test_pack(const distill_result *r)
{
    printf("# a distillation's result packed into doubles and back\n");
    size_t n = distill_result_pack(r, NULL);
    double *v = xcalloc(n, sizeof *v);
    CHECK(distill_result_pack(r, v) == n && n > 22 + r->deployed.L * r->deployed.H,
          "packed into %zu doubles", n);
    distill_result u;
    gl_error err;
    int rc = distill_result_unpack(&u, v, n, &err);
    CHECK(rc == 0, "unpacked (%s)", rc ? err.msg : "ok");
    if (rc == 0) {
        CHECK(same_bits(u.loss_first, r->loss_first) && same_bits(u.loss_last, r->loss_last) &&
                  same_bits(u.held_out.thr_f1, r->held_out.thr_f1) &&
                  same_bits(u.held_out.rows, r->held_out.rows) && same_bits(u.f1, r->f1) &&
                  same_bits(u.val_ppl, r->val_ppl) && same_bits(u.val_loss, r->val_loss) &&
                  same_bits(u.source_val_ppl, r->source_val_ppl) &&
                  same_bits(u.seconds, r->seconds) && u.steps == r->steps &&
                  u.layers == r->layers && u.source_step == r->source_step &&
                  strcmp(u.source_mode, r->source_mode) == 0,
              "the scalars, steps and source mode (%s) come back bit for bit", u.source_mode);
        const metrics_state *a = &r->deployed, *b = &u.deployed;
        size_t same = 0, total = 0;
        for (size_t l = 0; l < a->L; l++)
            for (size_t h = 0; h < a->H; h++)
                for (int k = 0; k < METRIC_COUNT; k++, total++)
                    same += same_bits(metrics_value(a, l, h, (metric_key)k),
                                      metrics_value(b, l, h, (metric_key)k)) &&
                            metrics_exists(a, l, h, (metric_key)k) ==
                                metrics_exists(b, l, h, (metric_key)k);
        CHECK(b->L == a->L && b->H == a->H && b->k == a->k && same == total &&
                  same_bits(metrics_model_value(b, b->L, METRIC_ORACLE_MASS),
                            metrics_model_value(a, a->L, METRIC_ORACLE_MASS)),
              "every deployed metric of %zu layers x %zu heads the same (%zu of %zu values)",
              b->L, b->H, same, total);
        distill_result_free(&u);
    }
    CHECK(distill_result_unpack(&u, v, n - 1, &err) != 0, "one value short: refused (%s)",
          err.msg);
    distill_result_free(&u);
    v[22 - 1] = 99.0;   /* the source mode */
    CHECK(distill_result_unpack(&u, v, n, &err) != 0, "an unknown gate mode: refused (%s)",
          err.msg);
    distill_result_free(&u);
    free(v);
}

static void test_checkpoint(const char *ckpt, const char *out)
{
    distill_config dc;
    distill_default_config(&dc);
    dc.steps = 40;
    dc.warmup = 4;
    dc.batch = 8;
    distill_result r;
    gl_error err;
    int rc = distill_checkpoint(ckpt, NULL, &dc, 16, 1, out, NULL, NULL, 0, &r, &err);
    CHECK(rc == 0, "distill_checkpoint runs (%s)", rc ? err.msg : "ok");
    if (rc)
        return;
    CHECK(isfinite(r.val_ppl) && isfinite(r.f1) && isfinite(r.held_out.thr_f1) &&
              r.f1 == r.precision && r.f1 == r.recall && r.loss_last < r.loss_first,
          "result: loss %.4f -> %.4f, deployed F1 %.3f (= P = R), ppl %.3f (as trained %.3f)",
          r.loss_first, r.loss_last, r.f1, r.val_ppl, r.source_val_ppl);
    st_file f;
    checkpoint_info info;
    rc = st_read(out, &f, &err) || checkpoint_info_read(&f, out, &info, &err);
    CHECK(rc == 0 && info.model.mode == GATE_DISTILLED && !info.resumable,
          "the saved checkpoint is weights-only with gate_mode distilled");
    if (rc == 0) {
        model m;
        GL_ASSERT(model_init(&m, &info.model, 1, &err) == 0);
        GL_ASSERT(checkpoint_load_weights(&f, out, &m, &err) == 0);
        const model_tensor *g = model_find_tensor(&m, "h.0.gate.q.weight");
        double norm = 0.0;
        for (size_t i = 0; i < g->numel; i++)
            norm += (double)m.params[g->offset + i] * m.params[g->offset + i];
        CHECK(norm > 0.0, "it holds the distilled gate (|h.0.gate.q| = %.3f)", sqrt(norm));
        model_free(&m);
        st_free(&f);
    }
    test_pack(&r);
    distill_result_free(&r);
}

int main(void)
{
    char dir[] = "/tmp/test_distill.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return check_finish();
    }
    char ckpt[128], out[128];
    snprintf(ckpt, sizeof ckpt, "%s/micro.safetensors", dir);
    snprintf(out, sizeof out, "%s/distilled.safetensors", dir);
    test_gradcheck();
    test_learns(ckpt);
    test_checkpoint(ckpt, out);
    unlink(ckpt);
    unlink(out);
    rmdir(dir);
    return check_finish();
}
