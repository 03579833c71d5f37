/* layers: the dense building blocks of the GPT (embedding, LayerNorm, linear,
 * GELU, residual add, tied LM head with cross-entropy). Each op has its
 * forward and backward side by side; backward accumulates (+=) into parameter
 * and input gradients. N is the number of token positions (B*T). */
#ifndef GATELAB_LAYERS_H
#define GATELAB_LAYERS_H

#include <stddef.h>
#include <stdint.h>

void encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                     size_t B, size_t T, size_t C);
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                      size_t B, size_t T, size_t C);

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, size_t N, size_t C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, size_t N, size_t C);

/* bias may be NULL (the gate projections have none). Rows are independent, so
 * callers split N across threads by offsetting out and inp. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    size_t N, size_t C, size_t OC);
/* The backward pass in two halves that split differently across threads:
 * input gradient by rows n, weight gradient by output rows o0..o1. */
void linear_backward_input(float *dinp, const float *dout, const float *weight,
                           size_t N, size_t C, size_t OC);
void linear_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                            size_t N, size_t C, size_t OC, size_t o0, size_t o1);

void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

void residual_forward(float *out, const float *a, const float *b, size_t n);

/* Softmax cross-entropy over rows of logits[N,V] (the tied head's output):
 * writes probs[N,V] and returns the summed NLL (double) over targets >= 0. */
double crossentropy_forward(float *probs, const float *logits, const int32_t *targets,
                            size_t N, size_t V);
/* dlogits[N,V] = (probs - onehot(target)) * scale; zero rows for target -1. */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                           size_t N, size_t V, float scale);

#endif
