/* optim: AdamW (betas 0.9/0.95, eps 1e-8, decay 0.1 on matrices and
 * embeddings only), warm-up + cosine schedule, global-norm clipping. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vec.h"

void optim_default_config(optim_config *c)
{
    *c = (optim_config){.lr = 3e-3f, .gate_lr = 3e-3f, .min_lr_frac = 0.1f, .beta1 = 0.9f,
                        .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .clip = 1.0f,
                        .warmup = 100, .total_steps = 1000};
}

void optim_init(optim *o, const optim_config *cfg, size_t num_params)
{
    o->cfg = *cfg;
    o->scope = OPTIM_MODEL;
    o->num_params = num_params;
    o->m = xcalloc(num_params, sizeof(float));
    o->v = xcalloc(num_params, sizeof(float));
    o->t = 0;
}

void optim_init_gate(optim *o, const optim_config *cfg, const model *mdl)
{
    size_t n = 0;
    for (size_t t = 0; t < mdl->ntensors; t++)
        if (mdl->tensors[t].is_gate)
            n += mdl->tensors[t].numel;
    optim_init(o, cfg, n);
    o->scope = OPTIM_GATE;
}

void optim_reset(optim *o)
{
    memset(o->m, 0, o->num_params * sizeof(float));
    memset(o->v, 0, o->num_params * sizeof(float));
    o->t = 0;
}

void optim_free(optim *o)
{
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

float optim_schedule(const optim_config *c, size_t step)
{
    if (c->warmup && step < c->warmup)
        return (float)(step + 1) / (float)c->warmup;
    if (c->total_steps <= c->warmup)
        return 1.0f;
    double progress = (double)(step - c->warmup) / (double)(c->total_steps - c->warmup);
    if (progress > 1.0)
        progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(3.141592653589793 * progress));
    return (float)(c->min_lr_frac + (1.0 - c->min_lr_frac) * cosine);
}

/* A frozen gate or router is neither updated nor counted in the clip norm;
 * OPTIM_GATE takes the gate tensors alone. */
static int tensor_trains(const optim *o, const model *mdl, const model_tensor *tt)
{
    if (o->scope == OPTIM_GATE)
        return tt->is_gate;
    if (tt->is_gate)
        return model_gate_trains(mdl);
    if (tt->is_router)
        return model_router_trains(mdl);
    return 1;
}

/* the tensors' sums of squares (each in its path's lane order) added in
 * table order */
static double grad_norm(const optim *o, const model *mdl)
{
    const vec_ops *v = vec_active();
    double sum = 0.0;
    for (size_t t = 0; t < mdl->ntensors; t++) {
        const model_tensor *tt = &mdl->tensors[t];
        if (!tensor_trains(o, mdl, tt))
            continue;
        sum += v->sumsq(mdl->grads + tt->offset, tt->numel);
    }
    return sqrt(sum);
}

double optim_step(optim *o, model *mdl, size_t step)
{
    const optim_config *c = &o->cfg;
    double norm = grad_norm(o, mdl);
    if (!isfinite(norm))
        return norm; /* a non-finite gradient would poison every weight: no update */
    float clip = (c->clip > 0.0f && norm > c->clip) ? (float)(c->clip / norm) : 1.0f;
    float mult = optim_schedule(c, step);
    o->t++;
    const float b1c = 1.0f - powf(c->beta1, (float)o->t);
    const float b2c = 1.0f - powf(c->beta2, (float)o->t);
    const vec_ops *vk = vec_active();   /* the same bits on every path (vec.h) */
    size_t packed = 0;   /* OPTIM_GATE's moments: the tensors in scope back to back */
    for (size_t t = 0; t < mdl->ntensors; t++) {
        const model_tensor *tt = &mdl->tensors[t];
        if (!tensor_trains(o, mdl, tt))
            continue;
        const size_t at = o->scope == OPTIM_MODEL ? tt->offset : packed;
        packed += tt->numel;
        GL_ASSERT(at + tt->numel <= o->num_params);
        const vec_adamw_args a = {.clip = clip, .beta1 = c->beta1, .beta2 = c->beta2,
                                  .b1c = b1c, .b2c = b2c,
                                  .lr = (tt->is_gate ? c->gate_lr : c->lr) * mult,
                                  .wd = tt->decay ? c->weight_decay : 0.0f, .eps = c->eps};
        vk->adamw(mdl->params + tt->offset, mdl->grads + tt->offset, o->m + at, o->v + at,
                  tt->numel, &a);
    }
    return norm;
}
