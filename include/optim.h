/* optim: AdamW with decoupled weight decay on 2-D tensors only, linear
 * warm-up then cosine decay, global gradient-norm clipping, and a learning
 * rate of its own for the gate. The moments live in flat buffers parallel to
 * the model's parameters so checkpoints can save them by tensor name. */
#ifndef GATELAB_OPTIM_H
#define GATELAB_OPTIM_H

#include <stddef.h>

#include "model.h"

typedef struct {
    float lr, gate_lr, min_lr_frac, beta1, beta2, eps, weight_decay, clip;
    size_t warmup, total_steps;
} optim_config;

typedef struct {
    optim_config cfg;
    float *m, *v;          /* [num_params] */
    size_t num_params;
    size_t t;              /* updates done */
} optim;

void optim_default_config(optim_config *c);
void optim_init(optim *o, const optim_config *cfg, size_t num_params);
void optim_free(optim *o);

/* Learning-rate multiplier for step (0-based): linear warm-up over `warmup`
 * steps to 1, then cosine down to min_lr_frac at total_steps. */
float optim_schedule(const optim_config *c, size_t step);

/* Global L2 norm of the gradients of the tensors that will be updated. */
double optim_grad_norm(const model *mdl);

/* Clips, then updates every parameter; gate tensors only when the model's
 * current mode trains the gate (frozen and gateless modes leave them alone).
 * Returns the pre-clip gradient norm; when it is not finite nothing is
 * updated. */
double optim_step(optim *o, model *mdl, size_t step);

#endif
