/* optim: AdamW with decoupled weight decay on 2-D tensors only, linear
 * warm-up then cosine decay, global gradient-norm clipping, and a learning
 * rate of its own for the gate. An optimiser updates the whole model (the
 * trainer; its moments live in flat buffers parallel to the model's
 * parameters so checkpoints can save them by tensor name) or only the gate
 * tensors (distill: a fresh gate on a frozen model; moments packed in
 * tensor-table order). */
#ifndef GATELAB_OPTIM_H
#define GATELAB_OPTIM_H

#include <stddef.h>

#include "model.h"

typedef struct {
    float lr, gate_lr, min_lr_frac, beta1, beta2, eps, weight_decay, clip;
    size_t warmup, total_steps;
} optim_config;

/* the tensors an optimiser updates and clips over */
typedef enum {
    OPTIM_MODEL,   /* every tensor the model's current mode trains */
    OPTIM_GATE,    /* the gate tensors only, whatever the mode, at cfg.gate_lr */
} optim_scope;

typedef struct {
    optim_config cfg;
    optim_scope scope;
    float *m, *v;          /* [num_params] */
    size_t num_params;
    size_t t;              /* updates done */
} optim;

void optim_default_config(optim_config *c);
/* OPTIM_MODEL over num_params parameters */
void optim_init(optim *o, const optim_config *cfg, size_t num_params);
/* OPTIM_GATE over mdl's gate tensors */
void optim_init_gate(optim *o, const optim_config *cfg, const model *mdl);
void optim_free(optim *o);
/* moments zeroed, no update done */
void optim_reset(optim *o);

/* Learning-rate multiplier for step (0-based): linear warm-up over `warmup`
 * steps to 1, then cosine down to min_lr_frac at total_steps. */
float optim_schedule(const optim_config *c, size_t step);

/* Clips by the global L2 norm of the gradients of the tensors in scope,
 * then updates them with the learning rate of the schedule at `step`. In
 * OPTIM_MODEL gate tensors move only when the model's current mode trains
 * the gate (frozen and gateless modes leave them alone). Returns the
 * pre-clip gradient norm; when it is not finite nothing is updated. */
double optim_step(optim *o, model *mdl, size_t step);

#endif
