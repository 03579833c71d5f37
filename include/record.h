/* record: the fixed-size messages that cross threads. Telemetry records go
 * trainer -> main thread (one SPSC ring per arm) and main -> store thread (one
 * SPSC ring); commands go main thread -> trainer (one SPSC ring per arm).
 * The trainer, the screen and the store know each other only through these.
 * Records are plain data (no pointers), and every ring carries them as the
 * bytes record_encode / command_encode make (below), so what crosses a
 * thread today can cross a process (MPI, a watcher) with the same codec. */
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
/* The one-letter marker an event leaves on a chart (the screen's curves and
 * `gatelab plot`): S swap, P pause, K k changed, Z (un)freeze, F fork,
 * X diverged, R resumed; 0 for the kinds that leave none. */
char event_kind_glyph(event_kind k);

typedef enum {
    REC_RUN_BEGIN,   /* a new arm (initial, forked or resumed) */
    REC_STEP,        /* one optimisation step */
    REC_EVAL,        /* one evaluation: val loss and the gate metrics averaged */
    REC_LAYER,       /* one evaluation: every metric of one (layer, head) */
    REC_EVENT,
    REC_STATUS,
    REC_CHECKPOINT,
    REC_HEATMAP,     /* the header of one heatmap payload (the planes travel beside it) */
    REC_FORKED,      /* trainer -> main only: a fork's trainer waits in the parent arm's
                        handoff slot (arm_take_fork); the record names only its mode */
    REC_SESSION_END, /* main -> store only: the session is over, nothing follows */
    REC_COMMAND,     /* -> store only: what became of a command of the commands table
                        (DESIGN §12) that did not take effect as an event — refused by the
                        arm or the session loop — or, from the store thread to itself, the
                        decision of its row */
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

/* The heatmap payload, the one codec for heatmaps wherever they travel (the
 * arm's latest-value slot, the store's byte channel, a REC_HEATMAP record
 * encoded with its payload). Little-endian:
 *   u64 step, u32 layers, u32 heads, u32 T, then the gate, oracle and attn
 *   planes, layers * heads * T * T bytes each, laid out as in the snapshot.
 * heatmap_payload_size: its bytes for a shape (0 when that overflows).
 * heatmap_encode: the bytes written, 0 when cap is too small.
 * heatmap_decode_head: the step and shape of a payload, -1 when n is short or
 *   does not match the shape it states.
 * heatmap_decode: into out, whose shape must be the payload's; -1 otherwise
 *   (out untouched). Never reads past buf[n]. */
#define HEATMAP_HEAD_BYTES 20
size_t heatmap_payload_size(uint32_t layers, uint32_t heads, uint32_t T);
size_t heatmap_encode(const heatmap_snapshot *h, uint8_t *buf, size_t cap);
int heatmap_decode_head(const uint8_t *buf, size_t n, uint64_t *step, uint32_t *layers,
                        uint32_t *heads, uint32_t *T);
int heatmap_decode(const uint8_t *buf, size_t n, heatmap_snapshot *out);

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

#define REC_NAME 64
/* Arms in one session: a record's arm (and a run's parent_arm) is below
 * this, and record_decode refuses one that is not, so an index read from
 * another process's bytes cannot run past a per-arm table. */
#define REC_MAX_ARMS 16

typedef struct {
    uint32_t kind;        /* rec_kind */
    uint32_t arm;         /* arm index in the session, 0.. */
    uint64_t step;        /* steps done when the record was made */
    double wall_ms;       /* Unix time in milliseconds */
    uint32_t payload;     /* bytes that travel beside the record: the heatmap payload
                             (REC_HEATMAP), the run's config JSON text without a NUL
                             (REC_RUN_BEGIN); 0 for every other kind */
    union {
        struct {
            uint32_t mode, k, frozen;   /* gate in force when the run begins */
            uint32_t parent_arm;        /* UINT32_MAX: none */
            uint64_t seed;
            char name[REC_NAME];        /* the arm's name */
        } run;                          /* r.step: the step it begins at */
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
            uint64_t command;              /* the commands row this event applies
                                              (cmd_record.id); 0: none */
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
            uint32_t layers, heads, T;     /* r.step: the evaluation's step */
        } heatmap;
        struct {
            uint32_t mode;                 /* gate_mode of the new arm, whose trainer the
                                              main thread takes with arm_take_fork */
        } forked;
        struct {
            uint64_t id;                   /* commands row id */
            uint32_t applied;              /* 1: applied at r.step; 0: rejected */
            char reason[REC_TEXT];         /* why it was rejected (or, applied, which
                                              arms refused it); "" for none */
        } command;
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
    CMD_FORK,         /* arg: gate_mode of the new arm (the arm registry picks its index) */
    CMD_STOP,
    CMD_KIND_COUNT
} cmd_kind;

const char *cmd_kind_name(cmd_kind k);

typedef struct {
    uint32_t kind;        /* cmd_kind */
    uint32_t arg;
    uint32_t scripted;    /* 0 a key, 1 --at, 2 the session's shutdown, 3 the commands
                             table (CMD_SOURCE_SENT) */
    double seconds;
    uint64_t id;          /* the commands row it comes from (source 3); 0: none. The
                             arm puts it on the event it makes (event.command), or
                             answers with a REC_COMMAND when it makes none */
} cmd_record;

#define CMD_SOURCE_SENT 3

/* ---- the codec ----
 * Every record is encoded to a fixed layout per kind, little-endian whatever
 * the host, floats as their IEEE-754 binary64 bits (a NaN keeps its bits):
 *   u8 RECORD_VERSION, u8 kind, u16 zero, u32 arm, u64 step, f64 wall_ms,
 *   u32 payload, then the kind's fields in the order tel_record declares
 *   them (u32 and u64 as declared, double as f64, char arrays as their full
 *   length with the bytes past the NUL zeroed).
 * record_encode writes the fixed part into buf[cap] and, when payload is not
 * NULL, r->payload bytes of it right after; NULL leaves the payload to
 * travel beside the record (the rings do so: DESIGN §5 keeps large payloads
 * out of them). It returns the bytes written, 0 when cap is too small or
 * the kind is unknown.
 * record_decode reads one record from buf[n]: the bytes it used (its fixed
 * part, plus r->payload when payload is not NULL, *payload then pointing at
 * them inside buf), or -1 — wrong version, unknown kind, a short buffer, a
 * text field without its NUL, nonzero padding, an arm (or a run's
 * parent_arm other than UINT32_MAX) >= REC_MAX_ARMS, an event kind, run
 * status or gate mode (run, event, forked) out of its enum — with *r
 * unspecified. It never reads past buf[n]; what it accepts indexes no
 * table out of bounds.
 * RECORD_WIRE_MAX bounds the fixed part of every kind (a ring slot). */
#define RECORD_VERSION 1
#define RECORD_WIRE_MAX 256
size_t record_wire_size(uint32_t kind);     /* fixed part of a kind, 0: unknown */
size_t record_encode(const tel_record *r, const void *payload, uint8_t *buf, size_t cap);
long record_decode(const uint8_t *buf, size_t n, tel_record *r, const uint8_t **payload);

/* Commands alike: u8 RECORD_VERSION, u8 kind, u16 zero, u32 arg,
 * u32 scripted, f64 seconds, u64 id — COMMAND_WIRE_SIZE bytes. */
#define COMMAND_WIRE_SIZE 28
size_t command_encode(const cmd_record *c, uint8_t *buf, size_t cap);
long command_decode(const uint8_t *buf, size_t n, cmd_record *c);
/* A command addressed to one arm of a session: u32 arm (little-endian),
 * then command_encode's bytes — COMMAND_ADDRESSED_WIRE_SIZE bytes. The
 * steering ring from the store thread to the session loop carries these. */
#define COMMAND_ADDRESSED_WIRE_SIZE (4 + COMMAND_WIRE_SIZE)
size_t command_encode_addressed(uint32_t arm, const cmd_record *c, uint8_t *buf, size_t cap);
long command_decode_addressed(const uint8_t *buf, size_t n, uint32_t *arm, cmd_record *c);

#endif
