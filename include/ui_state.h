/* ui_state: what the screen knows about a session — per arm its gate state
 * (from event records), status, loss series, latest per-layer metrics and
 * heatmaps — fed record by record by the live observer or row by row by a
 * replay from the database. No curses here, so the bench and the replay can
 * fill it the same way the live session does. */
#ifndef GATELAB_UI_STATE_H
#define GATELAB_UI_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "record.h"
#include "session_view.h"

/* A curve: a loss, or another metric of an arm. Points are kept at full
 * resolution up to UI_SERIES_CAP; past that, neighbours are merged pairwise
 * (stride doubles) so memory stays bounded on long runs while the curve
 * keeps its shape. Each point of a loss series keeps the mean of its raw
 * values in linear and in log space, so log-axis smoothing and downsampling
 * happen in log space without recomputing logs. A linear series
 * (ui_series_init_linear: F1, lr, a gradient norm...) takes any finite value,
 * zero and negative ones included, and has no log space (lv is 0). */
#define UI_SERIES_CAP 32768

typedef struct {
    uint64_t *step;      /* last step of the point */
    double *v, *lv;      /* mean value, mean log value */
    uint32_t *n;         /* raw values merged into the point */
    size_t len, cap;
    uint32_t stride;     /* raw values per point for new points */
    double acc_v, acc_lv;    /* the point being filled (acc_n < stride) */
    uint32_t acc_n;
    uint64_t acc_step;
    /* over the raw values, exact */
    double last, min, max;
    uint64_t last_step, min_step, max_step;
    size_t count;
    int linear;          /* any finite value; no log space */
} ui_series;

void ui_series_init(ui_series *s);
void ui_series_init_linear(ui_series *s);
/* Frees the points; the series stays usable, of the same kind. */
void ui_series_free(ui_series *s);
/* Non-finite values are skipped, and so are non-positive ones in a loss
 * series (log space needs v > 0). */
void ui_series_add(ui_series *s, uint64_t step, double v);
/* Number of points including the one being filled, and point i of them. */
size_t ui_series_points(const ui_series *s);
void ui_series_point(const ui_series *s, size_t i, uint64_t *step, double *v, double *lv,
                     uint32_t *n);
/* Value at exactly this step (val series), 0 when there is none. */
int ui_series_at(const ui_series *s, uint64_t step, double *v);

/* The series an arm keeps besides train and val loss, for the chart's
 * metric views (`m`). Each is a linear series; a metric the arm does not
 * have (F1 under dense, a gate gradient without a gate, expert balance
 * without experts) stays empty, as the records leave it NaN. */
typedef enum {
    UI_SER_GRAD_NORM,        /* REC_STEP, every step: the whole model's gradient norm */
    UI_SER_LR,               /* REC_STEP: the learning rate of the step */
    UI_SER_F1,               /* REC_EVAL, every evaluation (means over layers) */
    UI_SER_MASS_KEPT,
    UI_SER_GATE_GRAD_NORM,
    UI_SER_TOKENS_PER_S,
    UI_SER_EXPERT_BALANCE,
    UI_SER_DENSITY,          /* the evaluation's REC_LAYER records: the mean over layers
                                of the mean over heads, as the REC_EVAL means are made;
                                taken when the REC_EVAL of the same step arrives, so a
                                feeder sends an evaluation's layer records before it
                                (as an arm does) */
    UI_SER_FLIP_RATE,
    UI_SER_ORACLE_DRIFT,     /* as density: the oracle top-k's share changed since the last
                                evaluation (issue 16) */
    UI_SER_ABSORPTION,       /* REC_EVAL: (f1 - f1 at step 0) / (1 - f1 at step 0), from the
                                arm's own step-0 evaluation (none without one) */
    UI_SER_COUNT
} ui_series_key;

/* The key the store keeps a series under: a `metrics` key ("grad_norm",
 * "f1", "absorption_index"...) or, for UI_SER_DENSITY, UI_SER_FLIP_RATE and
 * UI_SER_ORACLE_DRIFT, a `layer_metrics` key (*per_layer = 1). */
const char *ui_series_key_name(ui_series_key k, int *per_layer);

typedef struct {
    char name[64];
    int64_t run;                 /* database id, 0 when not stored */
    uint32_t mode, k, frozen;    /* gate in force, from the latest event */
    int have_gate;
    uint32_t start_mode;         /* the gate of its first event: what it is listed under */
    int forked;                  /* a fork: never listed in a comparison */
    uint64_t changed_at;         /* first swap, k change or (un)freeze; UINT64_MAX: none.
                                    Comparisons stop there, as the database's do */
    run_status status;
    int done;                    /* a final status arrived */
    uint64_t step, start_step;
    double tok_s;                /* measured by the observer */
    double eval_tok_s;           /* the arm's own figure at its last evaluation */
    double expert_balance;       /* last evaluation's, NaN for a dense FFN */
    double f1_0;                 /* F1 of its step-0 evaluation, NaN when none came */
    ui_series train, val;        /* train_loss per step, val_loss per evaluation */
    ui_series metric[UI_SER_COUNT];   /* the other curves, by ui_series_key */
    double *layer;               /* [L*H*METRIC_COUNT], NaN = none */
    uint64_t layer_step;
    int have_layer;
    heatmap_snapshot *heat;      /* the session's shape; NULL until first used */
    uint64_t heat_version, heat_step;
    int have_heat;
    size_t color;                /* palette index */
} ui_arm;

/* A past run drawn behind the live arms (--compare). */
typedef struct {
    char name[64];
    int64_t run;
    size_t color;
    ui_series train, val;
} ui_ghost;

#define UI_MAX_GHOSTS 8
#define UI_EVENTS 64           /* the events line keeps the newest of these */
#define UI_MARKS_MAX 4096      /* swap/pause/k/fork/freeze markers on the curves */

/* Lines of the events line that are no event of a run: the fate of a
 * command `gatelab watch` sent (its arm UINT32_MAX: every arm). */
#define UI_EV_COMMAND_APPLIED 1000u
#define UI_EV_COMMAND_REJECTED 1001u

typedef struct {
    uint64_t step;
    uint32_t arm;
    uint32_t kind;               /* event_kind, or UI_EV_COMMAND_* */
    char detail[REC_TEXT];
} ui_event;

typedef struct {
    uint64_t step;
    uint32_t arm;
    char glyph;
} ui_mark;

typedef struct {
    int64_t session;
    const char *db_path;
    size_t L, H, T, B;           /* model shape: never changes within a session */
    size_t steps;                /* --steps */
    ui_arm arms[LIVE_MAX_ARMS];
    size_t narms;
    ui_ghost ghosts[UI_MAX_GHOSTS];
    size_t nghosts;
    ui_event events[UI_EVENTS];  /* ring: newest at (nevents - 1) % UI_EVENTS */
    size_t nevents;
    ui_mark *marks;
    size_t nmarks;
    uint64_t dropped_marks;
} ui_state;

void ui_state_init(ui_state *st, size_t L, size_t H, size_t T, size_t B, size_t steps);
void ui_state_free(ui_state *st);
/* Adds arm i (and every arm before it) if missing; returns it. */
ui_arm *ui_state_arm(ui_state *st, size_t i, const char *name);
ui_ghost *ui_state_add_ghost(ui_state *st, const char *name, int64_t run);

/* What must be redrawn after a change (OR of these). */
enum {
    UI_DIRTY_HEADER = 1 << 0,
    UI_DIRTY_LOSS = 1 << 1,
    UI_DIRTY_HEAT = 1 << 2,
    UI_DIRTY_AGREE = 1 << 3,
    UI_DIRTY_EVENTS = 1 << 4,
    UI_DIRTY_KEYS = 1 << 5,
    UI_DIRTY_ALL = (1 << 6) - 1,
};

/* Folds one telemetry record in; returns the UI_DIRTY_* bits it touched. */
unsigned ui_state_record(ui_state *st, const tel_record *r);
/* Records an event (also used by replay); updates the arm's gate state when
 * has_gate. */
unsigned ui_state_event(ui_state *st, uint32_t arm, uint64_t step, uint32_t kind,
                        const char *detail, int has_gate, uint32_t mode, uint32_t k,
                        uint32_t frozen);
/* Only the events line's ring (a replay rebuilds it as the cursor moves). */
void ui_state_log_event(ui_state *st, uint32_t arm, uint64_t step, uint32_t kind,
                        const char *detail);
/* Event i counted back from the newest (0 = newest); NULL past the end. */
const ui_event *ui_state_event_back(const ui_state *st, size_t i);

/* Arm a's heatmaps, of the session's shape (allocated on first use); NULL
 * past the arms. */
heatmap_snapshot *ui_state_heat(ui_state *st, size_t a);
/* Pointers to the (layer, head) maps of arm a's heat, T*T bytes each; 0 when
 * the arm has no heatmap yet. */
int ui_state_heat_maps(const ui_state *st, size_t a, size_t layer, size_t head,
                       const uint8_t **gate, const uint8_t **oracle, const uint8_t **attn);

/* Mean over heads of a per-(layer, head) metric of arm a, NaN when none. */
double ui_state_layer_mean(const ui_state *st, size_t a, size_t layer, metric_key key);

/* Routing benefit (DESIGN §4) between the first learned, random and dense
 * arms by their current gates, at the newest step where all three have a val
 * evaluation. 0 when such arms are missing. */
typedef struct {
    size_t learned, random, dense;
    uint64_t step;
    double ppl_l, ppl_r, ppl_d;
    double benefit, relative;    /* ppl_R - ppl_L; / (ppl_R - ppl_D) (NaN: |R - D| under
                                    1% of D, the database's floor) */
    uint64_t clean;              /* the first gate change of the three; UINT64_MAX: none */
} ui_routing;
int ui_state_routing(const ui_state *st, ui_routing *out);

/* Mean over layers of ui_state_layer_mean (the layers that have the metric;
 * NaN when none has): what REC_EVAL's means are. */
double ui_state_model_mean(const ui_state *st, size_t a, metric_key key);
/* Some arm has an expert balance: a session with mixture-of-experts arms. */
int ui_state_has_experts(const ui_state *st);

/* All arms have a final status (and there is at least one). */
int ui_state_all_done(const ui_state *st);
/* Every arm still running is paused (and at least one is). */
int ui_state_all_paused(const ui_state *st);
uint64_t ui_state_max_step(const ui_state *st);

#endif
