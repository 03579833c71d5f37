/* model_tensors: the model's two tables (src/model_tensors.c). The parameter
 * table gives each tensor its checkpoint name, shape, initialisation and the
 * model_params pointer it fills; the activation table gives each activation
 * its name, shape, the layers that have it and the buffer it lives in. Every
 * size, offset and pointer is derived from them: nothing is carved by hand.
 * Used by model.c (model_init, model_memory_bytes); the public lookups
 * (model_find_tensor, model_count_params, model_draw_random_gate) are in
 * model.h. */
#ifndef GATELAB_MODEL_TENSORS_H
#define GATELAB_MODEL_TENSORS_H

#include <stddef.h>

#include "model.h"

/* The random streams weights are drawn from, each derived from cfg.seed:
 * the learned gate's init, and the frozen random gate (drawn at init for a
 * random mode, or by a swap to one). */
#define MODEL_GATE_STREAM 0x67617465ULL          /* "gate" */
#define MODEL_RANDOM_GATE_STREAM 0x72616e64ULL   /* "rand" */

/* Builds m->tensors from m->cfg, allocates params and grads, points m->p and
 * m->g into them and draws every weight from m->cfg.seed. */
void model_tensors_init(model *m);

/* Allocates the activation buffer and the backward scratch, the soft top-k
 * row statistics and the routing arrays, and points every activation
 * pointer of m (and of each m->la[l]) into them. m->tensors is not needed. */
void model_acts_init(model *m);

/* Floats of the activation buffer and of the backward scratch of a config,
 * from the same table model_acts_init lays out. */
size_t model_acts_floats(const model_config *c);
size_t model_scratch_floats(const model_config *c);

#endif
