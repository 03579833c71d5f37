/* model: the gated GPT of DESIGN §2-3. One flat buffer per kind (parameters,
 * gradients, activations, activation-gradient scratch); a parameter table
 * drives the sizes, pointers, initialisation and checkpoint names, and an
 * activation table the activation layout (model_tensors.c). Everything is
 * allocated in model_init (model.c); forward and backward (model_net.c)
 * never allocate. */
#ifndef GATELAB_MODEL_H
#define GATELAB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "gate.h"
#include "attention.h"
#include "metrics.h"
#include "moe.h"
#include "pool.h"

typedef struct {
    char preset[16];
    size_t V, T, d, layers, heads, mlp, r, batch;
    gate_mode mode;
    size_t k;          /* keys kept per query */
    float gate_temp;   /* soft top-k temperature t */
    int gate_frozen;   /* the optimiser leaves the gate alone even in a learned mode */
    size_t experts;    /* 0: dense FFN; E >= 2: mixture of E experts, top-1 */
    int router_frozen; /* the router keeps its initial (random) weights */
    float moe_aux;     /* load-balancing loss coefficient */
    uint64_t seed;
} model_config;

/* Fills cfg from a preset name (tiny, small, paper); -1 if unknown. */
int model_preset(const char *name, model_config *cfg);
/* Checks shapes and ranges; one-line message naming the field. */
int model_config_check(const model_config *cfg, gl_error *err);

#define MODEL_MAX_NAME 48

typedef struct {
    char name[MODEL_MAX_NAME];
    int ndim;
    size_t shape[2];
    size_t offset, numel;
    int decay;       /* 2-D: matrices and embeddings */
    int is_gate;     /* gate.q / gate.k / gate.bias */
    int is_router;   /* mlp.router.weight */
    int layer;       /* -1 for global tensors */
    int expert;      /* mlp.experts.E.*: E; -1 for every other tensor */
    int row;         /* its row in the parameter table (model_tensors.c) */
} model_tensor;

/* Pointers into the flat parameter (or gradient) buffer, set from the
 * parameter table (model_tensors.c), which gives their names and shapes. With
 * experts the four MLP pointers are expert 0's; expert e's follow at e times
 * their size. */
typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b;
    float *fcw, *fcb, *fcprojw, *fcprojb, *gqw, *gkw, *gb;
    float *routerw;               /* [E,d], NULL for a dense FFN */
} model_layer_params;

typedef struct {
    float *wte, *wpe, *lnfw, *lnfb;
    model_layer_params *layer;   /* [L] */
} model_params;

/* One layer's activations, pointers into the activation buffer set from the
 * activation table (model_tensors.c), which gives their shapes. */
typedef struct {
    float *ln1_mean, *ln1_rstd, *qkv, *gq, *gk, *lse, *atty;
    gate_row_stats *stats;        /* [B,H,T] soft top-k rows */
    uint8_t *keep;                /* [B,H,T,attn_keep_bytes(T)] hard masks as bits */
    float *res2, *ln2_mean, *ln2_rstd, *fch, *res3;
    /* experts only: router probabilities [BT,E], the routing, and the FFN's
     * input and output in gathered (expert-grouped) row order [BT,d];
     * fch is in gathered order too */
    float *router, *xg, *yg;
    moe_route route;
} model_layer_acts;

typedef struct model {
    model_config cfg;
    size_t num_params;
    model_tensor *tensors;
    size_t ntensors;
    float *params, *grads;        /* [num_params] */
    model_params p, g;
    /* activations */
    float *acts;
    gate_row_stats *row_stats;    /* [L*B*H*T] */
    uint8_t *keep_bits;           /* [L*B*H*T*attn_keep_bytes(T)] */
    size_t num_acts;
    model_layer_acts *la;         /* [L] */
    float *lnf_mean, *lnf_rstd;   /* [B,T] */
    /* logits [BT,V]; the loss turns them into the probabilities in place
     * (probs is the same pointer), the backward those into their gradient */
    float *logits, *probs;
    /* scratch: what only one layer at a time needs, in the forward or the
     * backward (model_tensors.c), and what is recomputed there */
    float *scratch;
    size_t num_scratch;
    float *d_res, *d_tmp, *d_ln, *d_qkv, *d_gq, *d_gk, *d_atty, *d_fch;
    float *d_router;              /* [BT,E] experts only */
    /* a LayerNorm's output [BT,d] (ln1, ln2, lnf) of the layer at hand, and
     * its mean, rstd [BT] when recomputed: the forward writes it for the
     * linears that read it, the backward recomputes it from the layer's
     * input (the same call on the same rows: the same bits) */
    float *ln, *ln_mean, *ln_rstd;
    /* gelu(fch) [BT,F] of the layer at hand: written by its forward for the
     * FFN's second linear, recomputed from fch by its backward (cheaper than
     * keeping one per layer); it shares its floats with d_fch, which the
     * backward writes once the weight gradient has read them */
    float *fch_gelu;
    /* encoded [B,T,d] = wte[tokens] + wpe, layer 0's input: it shares d_tmp's
     * floats, and the backward recomputes it before layer 0 */
    float *encoded;
    int32_t *routes;              /* [L*(3BT+E+1)] the moe_route arrays */
    double aux_loss;              /* load-balancing loss of the last forward */
    uint64_t *expert_tokens;      /* [L*E] tokens routed per expert since the last reset */
    int32_t *inputs, *targets;    /* [B,T] */
    size_t cur_B;                 /* batch rows of the last forward */
    size_t cur_targets;           /* positions with a target (>= 0) in it */
    uint64_t step_salt;           /* varies the stochastic masks per step */
    /* the thread pool and one attention scratch set per thread */
    pool *pool;
    attn_scratch *scratch_w;
    /* per-item results summed afterwards in index order, so that the sums
     * do not depend on how the pool cut the work (pool.h) */
    double *row_loss;             /* [B*T] cross-entropy of each position */
    float *gb_pair;               /* [B*H] gate-bias gradient of each (b, h), one layer */
    metrics_state *metrics;       /* when set, forward accumulates gate metrics */
    /* Data parallel (dp.h, trainer.c): this forward's rows are rows
     * row_base.. of the global batch (the stochastic masks are seeded by the
     * global row); the backward divides the cross-entropy by grad_targets
     * (0: cur_targets) and the load-balancing term by grad_replicas (0 or 1:
     * alone), so the replicas' gradients sum to the global batch's; and
     * on_layer_grads(on_layer_ctx, m, l), when set, is called as soon as
     * layer l's parameter gradients are final (the head's are by then too). */
    size_t row_base, grad_targets, grad_replicas;
    void (*on_layer_grads)(void *ctx, struct model *m, size_t layer);
    void *on_layer_ctx;
} model;

/* Grains of the model's pool_run calls (model_par.c, pool.h): how many items each block
 * holds at least, so how every range is cut, whatever the thread count. They
 * are about the smallest blocks that keep OpenBLAS efficient, since a row
 * block repacks the whole weight and a weight-gradient block the whole input
 * [B*T, C]. Measured single-threaded on the tiny preset's GEMMs (OpenBLAS
 * 0.3.21, Haswell kernels): 128-row blocks cost 0-3% over one whole call,
 * 64-row ones 5-10%; weight-gradient blocks of 64 output rows 0-6%, of 32
 * rows up to 20%. Smaller grains balance many threads better, larger ones
 * waste less at one. They fix the rounding of every result: changing one
 * changes the bits (for all thread counts alike). distill.c runs its gate
 * projections through model_par.c and its pairs with the same grains. */
#define MODEL_GRAIN_ROWS 128      /* rows of a linear's forward and input gradient, LayerNorm */
#define MODEL_GRAIN_OUT_ROWS 64   /* output rows of a weight gradient */
#define MODEL_GRAIN_ELEMS 4096    /* GELU elements */
#define MODEL_GRAIN_PAIRS 1       /* attention (sequence, head) pairs */
#define MODEL_GRAIN_CE_ROWS 16    /* cross-entropy rows (V exponentials each) */

/* Allocates everything for batch cfg->batch and initialises weights from
 * cfg->seed (gate weights from their own stream). threads = attention workers. */
int model_init(model *m, const model_config *cfg, size_t threads, gl_error *err);
void model_free(model *m);

/* Re-draws the gate weights from the seeded random-gate stream (used when the
 * mode becomes random or topk-random). */
void model_draw_random_gate(model *m, uint64_t seed);
void model_set_mode(model *m, gate_mode mode);
/* A mid-run swap: sets the mode and, when the new mode is a frozen random
 * gate and the old one was not, re-draws the gate from the seeded random
 * stream (the same draw a run started in that mode gets). */
void model_swap_mode(model *m, gate_mode mode);
/* The optimiser updates the gate at this step. */
int model_gate_trains(const model *m);

/* The router trains at this step (experts, router not frozen). */
int model_router_trains(const model *m);
/* Zeroes the per-expert token counts. */
void model_reset_expert_load(model *m);
/* Mean over layers of E * sum_e share_e^2 of the tokens routed since the last
 * reset: 1 when every expert gets the same share, E when one gets them all.
 * NaN for a dense FFN or before any token. */
double model_expert_balance(const model *m);

/* tokens [B,T] inputs and targets; B <= cfg.batch. Returns the mean
 * cross-entropy; with experts, m->aux_loss holds the load-balancing term that
 * backward adds to it. */
double model_forward(model *m, const int32_t *inputs, const int32_t *targets, size_t B);
/* Zeroes grads then backpropagates the last forward's mean loss (plus
 * aux_loss with experts). */
void model_backward(model *m);
/* After a forward: recomputes layer l's ln1 output into m->ln (the bits the
 * forward's linears read) and returns it. */
const float *model_layer_ln1(model *m, size_t l);

const model_tensor *model_find_tensor(const model *m, const char *name);
/* Parameter count of a config without allocating. */
size_t model_count_params(const model_config *cfg);
/* About the bytes one model of this shape allocates with its optimiser
 * (weights, gradients, Adam moments, activations, scratch): what `run`
 * checks against the memory there is before anything is written. */
double model_memory_bytes(const model_config *cfg, size_t threads);
/* Forward FLOPs per token: 2N (matmul weights, excluding embeddings lookup)
 * plus attention (QK^T, PV and the gate scores over the causal average of
 * (T + 1) / 2 keys per query; the masked pairs the row blocks also compute
 * are not charged). Every gate mode is charged the same. */
double model_flops_per_token(const model_config *cfg);

#endif
