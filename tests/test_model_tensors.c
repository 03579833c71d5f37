/* test_model_tensors: the layout model_tensors.c derives from its tables,
 * against answers written out here independently. The parameter tensors tile
 * the flat buffer in checkpoint order, under the names and shapes
 * checkpoints carry, and every model_params pointer (of the weights and of
 * the gradients) points at its own tensor; the weights start as GPT-2's
 * init. The activations and the backward scratch tile their buffers with
 * neither gap nor overlap, each at the size its shape gives, for a dense and
 * an expert model; model_memory_bytes counts what they hold. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "model_tensors.h"

static model_config micro(size_t experts)
{
    model_config c;
    model_preset("tiny", &c);
    c.V = 16;
    c.T = 8;
    c.d = 16;
    c.layers = 3;
    c.heads = 2;
    c.mlp = 24;
    c.r = 4;
    c.batch = 2;
    c.k = 3;
    c.experts = experts;
    return c;
}

/* ---- parameters ---- */

static const float *at(const model *m, const float *base, const char *name)
{
    const model_tensor *t = model_find_tensor(m, name);
    return t ? base + t->offset : NULL;
}

/* Every pointer of p (into base) at the tensor of its checkpoint name. */
static int pointers_ok(const model *m, const model_params *p, const float *base, char *bad,
                       size_t badlen)
{
    const size_t E = m->cfg.experts;
#define EXPECT(ptr, ...)                                                        \
    do {                                                                        \
        char nm[128];                                                           \
        snprintf(nm, sizeof nm, __VA_ARGS__);                                   \
        if ((ptr) == NULL || (ptr) != at(m, base, nm)) {                        \
            snprintf(bad, badlen, "%s", nm);                                    \
            return 0;                                                           \
        }                                                                       \
    } while (0)
    EXPECT(p->wte, "wte");
    EXPECT(p->wpe, "wpe");
    EXPECT(p->lnfw, "lnf.weight");
    EXPECT(p->lnfb, "lnf.bias");
    for (size_t l = 0; l < m->cfg.layers; l++) {
        const model_layer_params *q = &p->layer[l];
        EXPECT(q->ln1w, "h.%zu.ln1.weight", l);
        EXPECT(q->ln1b, "h.%zu.ln1.bias", l);
        EXPECT(q->qkvw, "h.%zu.attn.qkv.weight", l);
        EXPECT(q->qkvb, "h.%zu.attn.qkv.bias", l);
        EXPECT(q->projw, "h.%zu.attn.proj.weight", l);
        EXPECT(q->projb, "h.%zu.attn.proj.bias", l);
        EXPECT(q->ln2w, "h.%zu.ln2.weight", l);
        EXPECT(q->ln2b, "h.%zu.ln2.bias", l);
        EXPECT(q->gqw, "h.%zu.gate.q.weight", l);
        EXPECT(q->gkw, "h.%zu.gate.k.weight", l);
        EXPECT(q->gb, "h.%zu.gate.bias", l);
        if (E) {
            EXPECT(q->routerw, "h.%zu.mlp.router.weight", l);
            EXPECT(q->fcw, "h.%zu.mlp.experts.0.fc.weight", l);
            EXPECT(q->fcb, "h.%zu.mlp.experts.0.fc.bias", l);
            EXPECT(q->fcprojw, "h.%zu.mlp.experts.0.proj.weight", l);
            EXPECT(q->fcprojb, "h.%zu.mlp.experts.0.proj.bias", l);
            /* expert e's tensor at e times expert 0's size (model.h) */
            const size_t F = m->cfg.mlp, d = m->cfg.d;
            EXPECT(q->fcw + (E - 1) * F * d, "h.%zu.mlp.experts.%zu.fc.weight", l, E - 1);
            EXPECT(q->fcprojb + (E - 1) * d, "h.%zu.mlp.experts.%zu.proj.bias", l, E - 1);
        } else {
            if (q->routerw) {
                snprintf(bad, badlen, "h.%zu router of a dense FFN", l);
                return 0;
            }
            EXPECT(q->fcw, "h.%zu.mlp.fc.weight", l);
            EXPECT(q->fcb, "h.%zu.mlp.fc.bias", l);
            EXPECT(q->fcprojw, "h.%zu.mlp.proj.weight", l);
            EXPECT(q->fcprojb, "h.%zu.mlp.proj.bias", l);
        }
    }
#undef EXPECT
    return 1;
}

static double std_of(const float *w, size_t n)
{
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
    }
    return sqrt(s2 / (double)n - (s / (double)n) * (s / (double)n));
}

static int all_equal(const float *w, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        if (w[i] != v)
            return 0;
    return 1;
}

static void test_params(size_t E)
{
    model_config c = micro(E);
    model m;
    gl_error err;
    if (model_init(&m, &c, 1, &err)) {
        CHECK(0, "model_init: %s", err.msg);
        return;
    }
    const char *kind = E ? "experts" : "dense";
    const size_t d = c.d, F = c.mlp, Hr = c.heads * c.r, L = c.layers;
    /* written out: embeddings, per layer ln1, attn, ln2, gate, the FFN (once,
     * or E times with an E x d router), lnf */
    const size_t ffn = F * d + F + d * F + d;
    const size_t per_layer = 4 * d + 3 * d * d + 3 * d + d * d + d + 2 * Hr * d + c.heads +
                             (E ? E * d + E * ffn : ffn);
    const size_t want = c.V * d + c.T * d + L * per_layer + 2 * d;
    const size_t want_tensors = 2 + L * (E ? 11 + 1 + 4 * E : 15) + 2;
    CHECK(m.num_params == want && model_count_params(&c) == want && m.ntensors == want_tensors,
          "%s: %zu params in %zu tensors (written out: %zu in %zu)", kind, m.num_params,
          m.ntensors, want, want_tensors);

    size_t next = 0, gaps = 0;
    for (size_t i = 0; i < m.ntensors; i++) {
        const model_tensor *t = &m.tensors[i];
        gaps += t->offset != next ||
                t->numel != (t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0]) ||
                t->decay != (t->ndim == 2);
        next = t->offset + t->numel;
    }
    CHECK(gaps == 0 && next == m.num_params,
          "%s: the tensors tile the buffer in table order, numel = the shape's product", kind);

    /* checkpoint order: names as the safetensors files have them */
    const char *first = m.tensors[2].name, *last = m.tensors[m.ntensors - 1].name;
    const model_tensor *r = model_find_tensor(&m, "h.1.mlp.router.weight");
    const model_tensor *e0 = model_find_tensor(&m, "h.1.mlp.experts.0.fc.weight");
    const model_tensor *e1 = model_find_tensor(&m, "h.1.mlp.experts.1.fc.weight");
    const model_tensor *b0 = model_find_tensor(&m, "h.1.mlp.experts.0.fc.bias");
    int order = strcmp(m.tensors[0].name, "wte") == 0 && strcmp(m.tensors[1].name, "wpe") == 0 &&
                strcmp(first, "h.0.ln1.weight") == 0 && strcmp(last, "lnf.bias") == 0;
    if (E)
        order = order && r && e0 && e1 && b0 && r->is_router && r->shape[0] == E &&
                e0 == r + 1 && e1 == e0 + 1 && b0 == e0 + E && e0->expert == 0 &&
                e1->expert == 1;
    else
        order = order && !r && model_find_tensor(&m, "h.1.mlp.fc.weight") &&
                model_find_tensor(&m, "h.1.mlp.fc.weight")->expert == -1;
    CHECK(order, "%s: checkpoint order wte, wpe, h.0.ln1.weight ... lnf.bias%s", kind,
          E ? "; router, then each FFN tensor once per expert" : "");

    const model_tensor *g = model_find_tensor(&m, "h.2.gate.q.weight");
    const model_tensor *gbias = model_find_tensor(&m, "h.0.gate.bias");
    const model_tensor *qkv = model_find_tensor(&m, "h.0.attn.qkv.weight");
    CHECK(g && g->is_gate && g->layer == 2 && g->shape[0] == Hr && g->shape[1] == d && gbias &&
              gbias->is_gate && gbias->ndim == 1 && !gbias->decay && qkv && !qkv->is_gate &&
              qkv->shape[0] == 3 * d && qkv->decay,
          "%s: shapes and flags of the gate and attention tensors", kind);

    char bad[128] = "";
    int ok = pointers_ok(&m, &m.p, m.params, bad, sizeof bad);
    CHECK(ok, "%s: every weight pointer at its tensor%s%s", kind, ok ? "" : ": wrong at ", bad);
    ok = pointers_ok(&m, &m.g, m.grads, bad, sizeof bad);
    CHECK(ok, "%s: every gradient pointer at its tensor%s%s", kind, ok ? "" : ": wrong at ",
          bad);

    /* GPT-2's init */
    const model_tensor *ln = model_find_tensor(&m, "h.1.ln2.weight");
    const model_tensor *bias = model_find_tensor(&m, "h.1.attn.qkv.bias");
    const model_tensor *wte = model_find_tensor(&m, "wte");
    const model_tensor *proj = model_find_tensor(&m, "h.1.attn.proj.weight");
    const double s_wte = std_of(m.params + wte->offset, wte->numel);
    const double s_proj = std_of(m.params + proj->offset, proj->numel) * sqrt(2.0 * (double)L);
    CHECK(all_equal(m.params + ln->offset, ln->numel, 1.0f) &&
              all_equal(m.params + bias->offset, bias->numel, 0.0f) &&
              all_equal(m.p.lnfw, d, 1.0f) && all_equal(m.p.layer[2].gb, c.heads, 0.0f) &&
              fabs(s_wte - 0.02) < 0.004 && fabs(s_proj - 0.02) < 0.004,
          "%s: norms 1, biases 0, std 0.02 (wte %.4f), residual projections 0.02/sqrt(2L) "
          "(%.4f after scaling back)",
          kind, s_wte, s_proj);
    model_free(&m);
}

/* ---- activations ---- */

typedef struct {
    const float *p;
    size_t n;
    const char *name;
} span;

static int by_address(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

/* The spans, sorted, cover [base, base + total) once each; zero-size spans
 * (d_router of a dense model) are left out. */
static int tiles(span *s, size_t n, const float *base, size_t total, const char **bad)
{
    qsort(s, n, sizeof *s, by_address);
    const float *next = base;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].n)
            continue;
        if (s[i].p != next) {
            *bad = s[i].name;
            return 0;
        }
        next += s[i].n;
    }
    *bad = "the end";
    return next == base + total;
}

static void test_acts(size_t E)
{
    model_config c = micro(E);
    model m;
    gl_error err;
    if (model_init(&m, &c, 2, &err)) {
        CHECK(0, "model_init: %s", err.msg);
        return;
    }
    const char *kind = E ? "experts" : "dense";
    const size_t B = c.batch, T = c.T, d = c.d, H = c.heads, Hr = H * c.r, F = c.mlp, V = c.V;
    const size_t BT = B * T, L = c.layers;
    span s[64 * 24];
    size_t n = 0;
#define SPAN(ptr, size) (s[n++] = (span){(ptr), (size), #ptr})
    for (size_t l = 0; l < L; l++) {
        const model_layer_acts *x = &m.la[l];
        SPAN(x->ln1_mean, BT);
        SPAN(x->ln1_rstd, BT);
        SPAN(x->qkv, BT * 3 * d);
        SPAN(x->gq, BT * Hr);
        SPAN(x->gk, BT * Hr);
        SPAN(x->lse, B * H * T);
        SPAN(x->atty, BT * d);
        SPAN(x->res2, BT * d);
        SPAN(x->ln2_mean, BT);
        SPAN(x->ln2_rstd, BT);
        SPAN(x->fch, BT * F);
        SPAN(x->res3, BT * d);
        if (E) {
            SPAN(x->router, BT * E);
            SPAN(x->xg, BT * d);
            SPAN(x->yg, BT * d);
        }
    }
    SPAN(m.lnf_mean, BT);
    SPAN(m.lnf_rstd, BT);
    SPAN(m.logits, BT * V);
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += s[i].n;
    int nulls = 0;
    for (size_t l = 0; l < L; l++)
        nulls += !E && (m.la[l].router || m.la[l].xg || m.la[l].yg);
    const char *bad;
    int ok = tiles(s, n, m.acts, m.num_acts, &bad);
    CHECK(ok && m.num_acts == want && !nulls,
          "%s: %zu activations tile the buffer of %zu floats (written out: %zu)%s%s", kind, n,
          m.num_acts, want, ok ? "" : "; first wrong: ", ok ? "" : bad);
    CHECK(m.probs == m.logits, "%s: the probabilities are the logits' floats", kind);

    /* the scratch: its own buffers, then a region the FFN's and the
     * attention backward's share (each group tiles it from its start) */
    n = 0;
    SPAN(m.d_res, BT * d);
    SPAN(m.d_tmp, BT * d);
    SPAN(m.d_ln, BT * d);
    SPAN(m.ln, BT * d);
    SPAN(m.ln_mean, BT);
    SPAN(m.ln_rstd, BT);
    SPAN(m.d_router, BT * E);
    size_t own = 0;
    for (size_t i = 0; i < n; i++)
        own += s[i].n;
    const size_t shared = BT * F > BT * (4 * d + 2 * Hr) ? BT * F : BT * (4 * d + 2 * Hr);
    const size_t want_scratch = own + shared;
    SPAN(m.fch_gelu, BT * F);
    const size_t ffn_end = n;
    ok = tiles(s, n, m.scratch, own + BT * F, &bad);
    n = ffn_end - 1;
    SPAN(m.d_qkv, BT * 3 * d);
    SPAN(m.d_gq, BT * Hr);
    SPAN(m.d_gk, BT * Hr);
    SPAN(m.d_atty, BT * d);
#undef SPAN
    int ok_attn = tiles(s, n, m.scratch, own + BT * (4 * d + 2 * Hr), &bad);
    CHECK(ok && ok_attn && m.num_scratch == want_scratch && m.d_fch == m.fch_gelu &&
              m.encoded == m.d_tmp,
          "%s: the scratch is its own %zu floats then a shared region of %zu floats that "
          "fch_gelu (= d_fch) and d_qkv, d_gq, d_gk, d_atty each tile; encoded is d_tmp%s%s",
          kind, own, shared, ok && ok_attn ? "" : "; first wrong: ", ok && ok_attn ? "" : bad);

    int typed = 1;
    for (size_t l = 0; l < L; l++) {
        typed &= m.la[l].stats == m.row_stats + l * B * H * T;
        typed &= m.la[l].keep == m.keep_bits + l * B * H * T * attn_keep_bytes(T);
        if (E) {
            const moe_route *r = &m.la[l].route;
            typed &= r->expert == m.routes + l * (3 * BT + E + 1) && r->perm == r->expert + BT &&
                     r->pos == r->perm + BT && r->offset == r->pos + BT;
        }
    }
    CHECK(typed, "%s: each layer's row statistics, hard-mask bits%s at its own slice", kind,
          E ? " and routing" : "");

    /* row statistics: tau, sigma, mean, kth, next; hard masks: a bit per
     * key; each of 3 workers' attention scratch: four row blocks, two rows,
     * the index and three byte rows */
    const size_t ld = (T + 15) / 16 * 16;
    const double bytes =
        4.0 * (4.0 * (double)m.num_params + (double)want + (double)want_scratch +
               5.0 * (double)(L * B * H * T)) +
        (double)(L * B * H * T * ((T + 7) / 8)) +
        4.0 * 3.0 * (double)(4 * ATTN_ROWS * ld + 2 * ld + T + 3 * (ld + 3) / 4);
    CHECK(model_memory_bytes(&c, 3) == bytes,
          "%s: model_memory_bytes counts weights, grads, Adam, activations, scratch: %.0f",
          kind, bytes);
    model_free(&m);
}

/* Issue 13: attention keeps no T x T tensor (attention.h), so the
 * activations grow linearly with T (each worker's attention scratch too:
 * ATTN_ROWS rows of T), where the probabilities and gate scores of every
 * layer made them grow with T * T: 1.2 GB of them at the paper preset. */
static void test_acts_linear_in_T(void)
{
    model_config c;
    model_preset("paper", &c);
    const size_t a = model_acts_floats(&c), sa = attn_scratch_floats(c.T);
    c.T *= 2;
    const size_t b = model_acts_floats(&c), sb = attn_scratch_floats(c.T);
    CHECK(b == 2 * a && sb <= 2 * sa + 64,
          "paper preset: doubling T doubles the activations (%zu -> %zu floats) and the "
          "attention scratch (%zu -> %zu)", a, b, sa, sb);
}

/* Issue 13: the attention computes the causal triangle only, so the FLOPs
 * the bench divides by time charge (T + 1) / 2 keys per query, not T (the
 * old count charged the full T x T products: 1998848 for tiny). Tiny:
 * d 128, L 4, T 128, mlp 512, H*r 32, V 256. */
static void test_flops_causal(void)
{
    model_config c;
    model_preset("tiny", &c);
    const double matmul = 4.0 * (4 * 128 * 128 + 2 * 128 * 512 + 2 * 128 * 32) + 256.0 * 128;
    const double attn = 4.0 * (4 * 128 + 2 * 32) * (128 + 1) / 2.0;
    const double want = 2.0 * matmul + attn;
    CHECK(model_flops_per_token(&c) == want && want == 1852544.0,
          "tiny: forward FLOPs per token %.0f = 2 x %.0f matmul + %.0f attention over the "
          "causal (T+1)/2 keys (want %.0f)", model_flops_per_token(&c), matmul, attn, want);
}

int main(void)
{
    test_flops_causal();
    test_params(0);
    test_params(4);
    test_acts(0);
    test_acts(3);
    test_acts_linear_in_T();
    return check_finish();
}
