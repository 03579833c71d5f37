/* evaluate: the one loop over val windows that every evaluation runs — the
 * trainer's, distill's, the experiments' measurements and `gatelab eval`.
 * Windows are taken in order, in batches of the model's batch size B; each
 * batch's mean loss is weighted by its size and added in window order, so a
 * number does not depend on which command computed it.
 *
 * Stochastic masks are drawn from one fixed salt (EVALUATE_SALT), so val
 * losses are comparable between evaluations and between commands. */
#ifndef GATELAB_EVALUATE_H
#define GATELAB_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "metrics.h"
#include "model.h"

/* The stochastic-mask salt of every evaluation: the same masks each time. */
#define EVALUATE_SALT 0xe7a1e7a1e7a1ULL

/* How the batches' losses are added up. Both give the mean loss per token
 * (every window holds T tokens); they round differently in the last bit
 * when T is not a power of two, and each is kept so that the numbers stored
 * by earlier versions come out the same:
 *   EVALUATE_PER_TOKEN   sum(loss_b * nb*T) / (windows*T): the trainer, `gatelab eval`
 *   EVALUATE_PER_WINDOW  sum(loss_b * nb) / windows: distill, the experiments */
typedef enum { EVALUATE_PER_TOKEN, EVALUATE_PER_WINDOW } evaluate_weight;

/* One batch of nb windows, inputs/targets [nb,T], the first being window
 * w0: returns the batch's mean loss per token. */
typedef double (*evaluate_batch_fn)(void *ctx, model *m, const int32_t *inputs,
                                    const int32_t *targets, size_t nb, size_t w0);

typedef struct {
    const data_source *data;   /* the windows of its val split, or, when NULL, */
    const int32_t *tokens;     /* window w = tokens[w*T .. w*T+T] (a token file) */
    size_t windows;            /* how many, from window 0 */
    evaluate_weight weight;
    metrics_state *metrics;    /* NULL, or reset (m's k), fed the first batch, finished */
    evaluate_batch_fn batch;   /* NULL: model_forward */
    void *ctx;                 /* for batch */
    /* scratch of the model's batch B: windows [B*(T+1)], inputs and targets
     * [B*T]; NULL: allocated and freed here (a trainer passes its own, so an
     * evaluation on its thread allocates nothing) */
    int32_t *buf, *inputs, *targets;
} evaluate_spec;

/* The mean loss per token of m in its current mode over s's windows (NaN
 * when there are none). m->step_salt is EVALUATE_SALT during the loop and
 * restored after; m->metrics is s->metrics for the first batch only and
 * NULL after. */
double evaluate_windows(model *m, const evaluate_spec *s);

/* Windows w0 .. w0+nb-1 of s's source -> buf [nb*(T+1)], then inputs and
 * targets [nb,T] (a window's first T tokens, and its last T). */
void evaluate_load(const evaluate_spec *s, size_t T, size_t w0, size_t nb, int32_t *buf,
                   int32_t *inputs, int32_t *targets);

/* The val windows an evaluation of d uses: all of them, or the first
 * `limit` when 0 < limit < all. */
size_t evaluate_window_count(const data_source *d, size_t limit);

#endif
