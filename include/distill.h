/* distill: post-hoc gate distillation (DESIGN §7, line 3 of the absorption
 * experiment). The model's weights are frozen; a fresh gate (gate.q, gate.k,
 * gate.bias of every layer) is trained with AdamW to predict the oracle
 * top-k mask of that frozen model, then deployed as hard top-k on its own
 * scores (gate mode `distilled`).
 *
 * Loss, per layer l, sequence b, head h and query row i with n_i = i+1
 * visible keys and n_i > k:
 *   s_ij = (xn_i Gq_h^T).(xn_j Gk_h^T)/sqrt(r) + b_h   (xn = la[l].ln1)
 *   y_ij = 1 if j is among the k largest c_ij = q_i.k_j/sqrt(head_dim), else 0
 *   L = mean over those (l, b, h, i, j <= i) of BCE(sigmoid(s_ij), y_ij)
 * Rows with n_i <= k keep every key whatever the gate says: they carry no
 * routing signal and are left out of the loss (and of the agreement counts,
 * as in metrics.h).
 *
 * The layer inputs come from the frozen model run in mode cfg.forward. The
 * default is GATE_ORACLE: every layer attends over its own oracle top-k, which
 * is exactly the forward the deployed `distilled` model runs when its gate
 * is right, so the gate is trained on the inputs it will see at its target.
 * GATE_DENSE (the mask-agnostic forward) is offered for comparison.
 *
 * Everything is allocated by distill_init; a step allocates nothing. */
#ifndef GATELAB_DISTILL_H
#define GATELAB_DISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "data.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"

#define DISTILL_MAX_LAYERS 64

typedef struct {
    size_t steps;          /* gate updates */
    size_t batch;          /* sequences per update, at most the model's batch */
    float lr;              /* peak learning rate, warm-up then cosine to 10% */
    size_t warmup;         /* warm-up updates */
    float weight_decay;    /* decoupled, on gate.q and gate.k (not the bias) */
    float clip;            /* global grad-norm clip of the gate gradient; 0 disables */
    uint64_t seed;         /* the fresh gate's draw and the distillation data order */
    gate_mode forward;     /* GATE_ORACLE (default) or GATE_DENSE */
} distill_config;

void distill_default_config(distill_config *c);

/* Agreement of the gate with the oracle, summed over rows with n > k. */
typedef struct {
    double rows;
    double topk_f1;                  /* gate's k largest s vs the oracle's k */
    double thr_p, thr_r, thr_f1;     /* sigmoid(s) > 1/2 vs the oracle */
    double chance;                   /* k / n */
} distill_agree;

typedef struct {
    model *m;                  /* borrowed; only its gate tensors change */
    distill_config cfg;
    size_t B;                  /* rows of the last forward */
    double count;              /* loss entries per forward of B sequences */
    float *gq, *gk;            /* [L,B,T,H*r] gate projections of every layer */
    float *dgq, *dgk;          /* [B,T,H*r] one layer's, reused */
    /* per worker thread: scratch only, overwritten by every pair */
    float *sc, *cc;            /* [nw][T*T] gate scores (then dS), content logits */
    uint32_t *idx;             /* [nw][T] */
    unsigned char *keep;       /* [nw][T] */
    /* per (sequence, head) pair of the current layer, added up in pair order
     * so that no sum depends on the thread count (pool.h) */
    double *loss_part;         /* [batch*H] */
    float *dbias;              /* [batch*H] */
    distill_agree *agree_part; /* [batch*H] */
    int agree_on;              /* distill_forward accumulates agreement */
    distill_agree agree[DISTILL_MAX_LAYERS];
    optim o;                   /* OPTIM_GATE: AdamW over the gate tensors */
} distill;

/* Allocates for the model's batch; draws a fresh gate (distill_reset_gate). */
int distill_init(distill *d, model *m, const distill_config *cfg, gl_error *err);
void distill_free(distill *d);
/* gate.q, gate.k ~ N(0, 0.02) and gate.bias = 0 from cfg.seed's stream;
 * Adam moments zeroed. */
void distill_reset_gate(distill *d);

/* inputs[B,T] -> mean BCE of the gate against the oracle labels. Runs the
 * frozen model forward in mode cfg.forward (targets are not needed; the LM
 * loss is computed against the inputs and ignored), then the gate of every
 * layer. Accumulates agreement into d->agree when d->agree_on. */
double distill_forward(distill *d, const int32_t *inputs, size_t B);
/* Gradient of the last forward's loss with respect to the gate tensors only,
 * written into m->grads at their offsets (zeroed first); every other
 * gradient is left untouched. */
void distill_backward(distill *d);
/* Clip + AdamW on the gate tensors (optim_step) with the schedule at update
 * d->o.t.
 * Returns the pre-clip gate gradient norm; nothing moves when it is not
 * finite. */
double distill_update(distill *d);

void distill_agree_reset(distill *d);
/* Means of the accumulated agreement over layers l0..l1-1 (NaN if no rows). */
void distill_agree_mean(const distill *d, size_t l0, size_t l1, distill_agree *out);

/* ---- a whole distillation from a checkpoint ---- */

typedef struct {
    size_t steps, layers;
    double loss_first, loss_last;     /* mean BCE of the first and last update batch */
    distill_agree held_out;           /* val windows, distillation forward (means) */
    /* the gate deployed: mode distilled, the whole eval, metrics.h means over layers */
    double precision, recall, f1, chance, mass_kept, oracle_mass;
    double val_loss, val_ppl;
    double source_val_ppl;            /* the same windows in the checkpoint's own mode */
    metrics_state deployed;           /* per layer and head; distill_result_free */
    char source_mode[24];
    size_t source_step;
    double seconds;
} distill_result;

void distill_result_free(distill_result *r);

/* A result as plain doubles, to carry it to another process
 * (experiment_farm.h): every field, the deployed state by metrics_pack.
 * pack writes distill_result_pack(r, NULL) values; unpack rebuilds r
 * (distill_result_free) or fails with a message when v is not a packed
 * result. */
size_t distill_result_pack(const distill_result *r, double *v);
int distill_result_unpack(distill_result *r, const double *v, size_t n, gl_error *e);

typedef void (*distill_progress_fn)(void *ctx, size_t step, size_t steps, double loss);

/* Loads ckpt (any gate mode), distils a fresh gate on the train stream of
 * data_path (NULL: the embedded generator), measures agreement and the
 * deployed val loss on eval_windows val windows (0: all), and when out_path
 * is set writes a weights-only checkpoint with gate_mode distilled there.
 * progress (may be NULL) is called every progress_every updates and at the
 * end. */
int distill_checkpoint(const char *ckpt, const char *data_path, const distill_config *cfg,
                       size_t eval_windows, size_t threads, const char *out_path,
                       distill_progress_fn progress, void *ctx, size_t progress_every,
                       distill_result *res, gl_error *err);

#endif
