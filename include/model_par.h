/* model_par: the ops of layers.c, attention.c and the loss, spread over the
 * model's pool (pool.h). Each is one pool_run (two for a linear's backward)
 * cut by the grains of model.h alone, never by the thread count, so each
 * block makes the same calls with the same shapes, and the results are the
 * same bits, for any number of threads. Shapes and write-vs-+= are those of
 * the op each wraps (layers.h, attention.h). Used by the network's forward
 * and backward (model_net.c). */
#ifndef GATELAB_MODEL_PAR_H
#define GATELAB_MODEL_PAR_H

#include <stddef.h>
#include <stdint.h>

#include "attention.h"
#include "model.h"
#include "pool.h"

/* inp[N,C] -> out[N,OC] (written), blocks of rows */
void model_par_linear_forward(pool *p, float *out, const float *inp, const float *weight,
                              const float *bias, size_t N, size_t C, size_t OC);
/* dout[N,OC] -> dinp[N,C] (+=; NULL when the input gradient is not needed),
 * blocks of rows; then dweight[OC,C], dbias[OC] (+=; dbias may be NULL),
 * blocks of output rows */
void model_par_linear_backward(pool *p, float *dinp, float *dweight, float *dbias,
                               const float *dout, const float *inp, const float *weight,
                               size_t N, size_t C, size_t OC);
/* dout[N,OC] -> dinp[N,C] (+=) alone, the first half of the above: a caller
 * that reuses inp's floats for dinp runs the weight gradient (dinp NULL)
 * first. The two halves are independent, so the order changes no bit. */
void model_par_linear_backward_input(pool *p, float *dinp, const float *dout,
                                     const float *weight, size_t N, size_t C, size_t OC);

/* inp[N,C] -> out[N,C], mean[N], rstd[N] (written), blocks of rows. There is
 * no pooled backward: layernorm_backward's weight and bias gradients sum over
 * every row, so the caller runs it whole, in row order. */
void model_par_layernorm_forward(pool *p, float *out, float *mean, float *rstd,
                                 const float *inp, const float *weight, const float *bias,
                                 size_t N, size_t C);

/* n elements, written; the backward may run in place (dinp == dout) */
void model_par_gelu_forward(pool *p, float *out, const float *inp, size_t n);
void model_par_gelu_backward(pool *p, float *dinp, const float *inp, const float *dout,
                             size_t n);

/* Layer `layer`'s attention over its B * H (sequence, head) pairs, one pair
 * per block: x->qkv, x->gq, x->gk -> x->atty, x->lse, x->keep, x->stats. With
 * metrics, every pair runs on this thread: the agreement sums are per head
 * and want one writer. w: one scratch per pool worker. */
void model_par_attention_forward(pool *p, const attn_config *ac, size_t B, size_t layer,
                                 model_layer_acts *x, const float *gbias, attn_scratch *w,
                                 metrics_state *metrics);
/* datty[B,T,C] -> dqkv (+=), dgq, dgk (+=); dbias_pair[B*H] the gate-bias
 * gradient of each pair (written), for the caller to add up in pair order.
 * gbias[H]: the gate bias, for the scores the backward recomputes. */
void model_par_attention_backward(pool *p, const attn_config *ac, size_t B,
                                  const model_layer_acts *x, const float *gbias, float *dqkv,
                                  float *dgq, float *dgk, const float *datty, attn_scratch *w,
                                  float *dbias_pair);

/* logits[N,V] -> probs[N,V], row_loss[N] the NLL of each row (0 without a
 * target), for the caller to add up in row order */
void model_par_crossentropy_forward(pool *p, double *row_loss, float *probs,
                                    const float *logits, const int32_t *targets, size_t N,
                                    size_t V);
/* probs[N,V] -> dlogits[N,V] = (probs - onehot) * scale (written) */
void model_par_crossentropy_backward(pool *p, float *dlogits, const float *probs,
                                     const int32_t *targets, size_t N, size_t V, float scale);

#endif
