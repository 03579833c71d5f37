/* evaluate: the loop over val windows (evaluate.h). It owns the batching,
 * the pinned mask salt, the first batch's gate metrics and the order in
 * which batch losses are added; what a batch runs is the caller's. */
#include "evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

size_t evaluate_window_count(const data_source *d, size_t limit)
{
    size_t windows = data_val_windows(d);
    return limit && limit < windows ? limit : windows;
}

void evaluate_load(const evaluate_spec *s, size_t T, size_t w0, size_t nb, int32_t *buf,
                   int32_t *inputs, int32_t *targets)
{
    for (size_t b = 0; b < nb; b++) {
        int32_t *w = buf + b * (T + 1);
        if (s->data)
            data_val_window(s->data, w0 + b, w);
        else
            memcpy(w, s->tokens + (w0 + b) * T, (T + 1) * sizeof(int32_t));
    }
    data_split_windows(buf, inputs, targets, nb, T);
}

double evaluate_windows(model *m, const evaluate_spec *s)
{
    const size_t B = m->cfg.batch, T = m->cfg.T;
    int32_t *buf = s->buf, *in = s->inputs, *tg = s->targets;
    const int own = !buf;
    if (own) {
        buf = xcalloc(B * (T + 1), sizeof *buf);
        in = xcalloc(B * T, sizeof *in);
        tg = xcalloc(B * T, sizeof *tg);
    }
    const uint64_t salt = m->step_salt;
    m->step_salt = EVALUATE_SALT;
    if (s->metrics)
        metrics_reset(s->metrics, m->cfg.k);
    double total = 0.0;
    for (size_t w0 = 0; w0 < s->windows; w0 += B) {
        const size_t nb = s->windows - w0 < B ? s->windows - w0 : B;
        evaluate_load(s, T, w0, nb, buf, in, tg);
        /* agreement from the first val batch: enough rows, bounded cost */
        m->metrics = w0 == 0 ? s->metrics : NULL;
        const double loss =
            s->batch ? s->batch(s->ctx, m, in, tg, nb, w0) : model_forward(m, in, tg, nb);
        total += loss * (double)(s->weight == EVALUATE_PER_TOKEN ? nb * T : nb);
    }
    m->metrics = NULL;
    if (s->metrics)
        metrics_finish(s->metrics);
    m->step_salt = salt;
    if (own) {
        free(buf);
        free(in);
        free(tg);
    }
    if (!s->windows)
        return NAN;
    return total / (double)(s->weight == EVALUATE_PER_TOKEN ? s->windows * T : s->windows);
}
