/* moe: the routing half of the mixture-of-experts FFN (top-1, Switch style).
 * A router picks one expert per token; the tokens of each expert are gathered
 * into one contiguous block so that the expert's two linears run as plain
 * GEMMs (model_net.c drives those); the expert's output comes back scaled by the
 * router probability of the chosen expert, which is what gives the router a
 * gradient. An auxiliary load-balancing loss (coef * E * sum_e f_e P_e) keeps
 * a learned router from sending every token to one expert. Each op has its
 * forward and backward side by side; N is the number of token positions. */
#ifndef GATELAB_MOE_H
#define GATELAB_MOE_H

#include <stddef.h>
#include <stdint.h>

/* One layer's routing decision, kept from forward for backward. */
typedef struct {
    int32_t *expert;    /* [N] chosen expert of token n */
    int32_t *perm;      /* [N] gathered row i holds token perm[i] */
    int32_t *pos;       /* [N] token n sits at gathered row pos[n] */
    int32_t *offset;    /* [E+1] expert e owns gathered rows offset[e]..offset[e+1]-1 */
} moe_route;

/* probs[N,E] holds the router logits on entry and their softmax on return;
 * the chosen expert is the argmax (lowest index on a tie). Tokens are grouped
 * by expert in token order, so the layout is deterministic. */
void moe_route_forward(moe_route *r, float *probs, size_t N, size_t E);
/* dlogits[N,E] from dprobs[N,E] through the softmax; may be the same buffer. */
void moe_softmax_backward(float *dlogits, const float *dprobs, const float *probs, size_t N,
                          size_t E);

/* xg[i,:] = x[perm[i],:]    x [N,C] -> xg [N,C] */
void moe_gather_forward(float *xg, const float *x, const moe_route *r, size_t N, size_t C);
/* dx[perm[i],:] += dxg[i,:] */
void moe_gather_backward(float *dx, const float *dxg, const moe_route *r, size_t N, size_t C);

/* out[n,:] = probs[n, e_n] * yg[pos[n],:]    yg [N,C] (gathered) -> out [N,C] */
void moe_combine_forward(float *out, const float *yg, const float *probs, const moe_route *r,
                         size_t N, size_t C, size_t E);
/* dyg[pos[n],:] = probs[n,e_n] dout[n,:];  dprobs[n,e] = dout[n,:].yg[pos[n],:] for e = e_n,
 * 0 otherwise (both overwritten). */
void moe_combine_backward(float *dyg, float *dprobs, const float *dout, const float *yg,
                          const float *probs, const moe_route *r, size_t N, size_t C, size_t E);

/* coef * E * sum_e f_e P_e with f_e the share of tokens routed to e and P_e
 * the mean router probability of e: 1 * coef when the load is even. */
double moe_aux_forward(const float *probs, const moe_route *r, size_t N, size_t E, float coef);
/* dprobs[n,e] += coef * E * f_e / N (f_e is a count: its derivative is zero
 * wherever it is defined). */
void moe_aux_backward(float *dprobs, const moe_route *r, size_t N, size_t E, float coef);

#endif
