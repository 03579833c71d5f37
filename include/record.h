/* record: the fixed-size messages that cross threads. Telemetry records go
 * trainer -> main thread (one SPSC ring per arm) and main -> store thread (one
 * SPSC ring); commands go main thread -> trainer (one SPSC ring per arm).
 * The trainer, the screen and the store know each other only through these. */
#ifndef GATELAB_RECORD_H
#define GATELAB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* Run status lifecycle of DESIGN §8; the numeric values are not stored
 * (the database keeps the names). */
typedef enum {
    RUN_RUNNING,
    RUN_PAUSED,
    RUN_FINISHED,
    RUN_STOPPED,
    RUN_DIVERGED,
    RUN_CRASHED,
    RUN_FAILED,      /* a checkpoint could not be written: the run stopped there */
    RUN_STATUS_COUNT
} run_status;

const char *run_status_name(run_status s);
/* -1 for an unknown name */
int run_status_parse(const char *name, run_status *out);

typedef enum {
    EV_START,        /* the arm's first step is about to run */
    EV_PAUSE,
    EV_RESUME,
    EV_SWAP,         /* gate mode changed */
    EV_FREEZE,
    EV_UNFREEZE,
    EV_SET_K,
    EV_CHECKPOINT,
    EV_FORK,         /* on the parent: a child arm was forked from it */
    EV_STOP,
    EV_DIVERGED,
    EV_FINISH,
    EV_ERROR,
    EV_RESUMED,      /* `gatelab resume` continued the run from a checkpoint */
    EV_KIND_COUNT
} event_kind;

const char *event_kind_name(event_kind k);

typedef enum {
    REC_RUN_BEGIN,   /* a new arm (initial, forked or resumed) */
    REC_STEP,        /* one optimisation step */
    REC_EVAL,        /* one evaluation: val loss and the gate metrics averaged */
    REC_LAYER,       /* one evaluation: every metric of one (layer, head) */
    REC_EVENT,
    REC_STATUS,
    REC_CHECKPOINT,
    REC_HEATMAP,     /* carries a heatmap_snapshot the receiver then owns */
    REC_FORKED,      /* trainer -> main only: carries the new arm's trainer */
    REC_KIND_COUNT
} rec_kind;

/* Heatmaps of sequence 0 of the first val batch at one evaluation, for every
 * layer and head. Values in [0,1] quantised as round(255 * v), row-major
 * [L][H][T][T], zero above the diagonal:
 *   gate   the mask in force (soft weight exp(logm), 1/0 for hard masks,
 *          1 for dense), oracle  the oracle top-k mask (1/0),
 *   attn   the attention probabilities actually used. */
typedef struct {
    uint64_t step;
    uint32_t layers, heads, T;
    uint8_t *gate, *oracle, *attn;
} heatmap_snapshot;

heatmap_snapshot *heatmap_snapshot_new(uint32_t layers, uint32_t heads, uint32_t T);
void heatmap_snapshot_free(heatmap_snapshot *h);

#define REC_TEXT 160

/* Absent or diverged: in an evaluation (and a layer record) a NaN means the
 * metric does not exist for this run at this step (F1 under dense, a gate
 * gradient where the mode has no gate, bits per byte for .bin data) and is
 * not stored. A metric that exists but came out non-finite sets its bit in
 * `diverged`; the store then writes a `diverged` event naming the metric and
 * step instead of a value. An infinity is never absent; val_loss and val_ppl
 * always exist. Bits of eval.diverged: */
enum {
    REC_EVAL_BPB = 1u << 0,
    REC_EVAL_F1 = 1u << 1,
    REC_EVAL_MASS_KEPT = 1u << 2,
    REC_EVAL_ORACLE_MASS = 1u << 3,
    REC_EVAL_GATE_GRAD_NORM = 1u << 4,
    REC_EVAL_TOKENS_PER_S = 1u << 5,
    REC_EVAL_EXPERT_BALANCE = 1u << 6,
};

typedef struct {
    uint32_t kind;        /* rec_kind */
    uint32_t arm;         /* arm index in the session, 0.. */
    uint64_t step;        /* steps done when the record was made */
    double wall_ms;       /* Unix time in milliseconds */
    union {
        struct {
            uint32_t mode, k, frozen;
            uint32_t parent_arm;        /* UINT32_MAX: none */
            uint64_t seed;
        } run;
        struct {
            double loss, grad_norm, lr;
        } step;
        struct {
            double val_loss, val_ppl, bits_per_byte;  /* bpb NaN for .bin data */
            double f1, mass_kept, oracle_mass;         /* means over layers; f1/mass NaN for dense */
            double gate_grad_norm, tokens_per_s, train_loss;
            double expert_balance;                     /* NaN for a dense FFN */
            uint32_t diverged;                         /* REC_EVAL_* bits, above */
        } eval;
        struct {
            uint32_t layer, head;
            double value[METRIC_COUNT];                /* indexed by metric_key */
            uint32_t diverged;                         /* bit 1u << metric_key: exists,
                                                          non-finite (see above) */
        } layer;
        struct {
            uint32_t kind;                 /* event_kind */
            uint32_t mode, k, frozen;      /* gate state in force after the event */
            char detail[REC_TEXT];
        } event;
        struct {
            uint32_t status;               /* run_status */
        } status;
        struct {
            uint32_t resumable;
            uint32_t dropped;              /* 1: the file was deleted (--keep-checkpoints):
                                              the store deletes its row */
            char path[REC_TEXT];
        } checkpoint;
        struct {
            heatmap_snapshot *snap;
        } heatmap;
        struct {
            void *trainer;                 /* trainer *, handed over to main */
            uint32_t mode;
        } forked;
    } u;
} tel_record;

typedef enum {
    CMD_PAUSE,        /* seconds > 0: resume by itself after that long */
    CMD_RESUME,
    CMD_SWAP,         /* arg: gate_mode */
    CMD_FREEZE,
    CMD_UNFREEZE,
    CMD_SET_K,        /* arg: k */
    CMD_CHECKPOINT,
    CMD_FORK,         /* arg: gate_mode of the new arm, arg2: its arm index */
    CMD_STOP,
    CMD_KIND_COUNT
} cmd_kind;

const char *cmd_kind_name(cmd_kind k);

typedef struct {
    uint32_t kind;        /* cmd_kind */
    uint32_t arg, arg2;
    uint32_t scripted;    /* from --at rather than a key */
    double seconds;
} cmd_record;

#endif
