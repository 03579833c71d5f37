/* experiment: the headless experiments of DESIGN §7 and `gatelab distill`.
 * `experiment absorption` trains, for each seed, one live session of the
 * arms dense, soft, random, sigmoid, topk and stochastic (ordinary stored
 * runs), then measures the paper's four lines of evidence on their
 * checkpoints (gate gradient of topk, finite-difference probe, distillation
 * onto the frozen dense/random/soft models, dense evaluation of every gated
 * model) and prints and stores a table beside the paper's figures.
 * Like cli.c these entry points print: progress to stdout, one line
 * "gatelab: ..." per error to stderr.
 *
 * Files: experiment.c (the absorption run, the shared helpers, the seed
 * loop and experiment_run, which every kind runs through), experiment_moe.c
 * (`experiment moe`), experiment_args.c (the command line),
 * experiment_table.c (result tables, their printing and storage, `--from`
 * reprints), distill_cli.c (`gatelab distill` and storing a
 * distillation as a run). The second half of this header is what those
 * files, and any further experiment, share. */
#ifndef GATELAB_EXPERIMENT_H
#define GATELAB_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "data.h"
#include "distill.h"
#include "gate.h"
#include "json.h"
#include "live.h"
#include "metrics.h"
#include "progress.h"
#include "store.h"
#include "trainer.h"

/* `gatelab experiment KIND [OPTIONS]`: argv[0] is KIND (absorption or
 * moe).
 * Returns the exit status: 0 done, 1 runtime failure, 2 usage error,
 * 128 + signal when SIGINT/SIGTERM stopped the training. */
int experiment_main(int argc, char **argv);

/* `gatelab distill RUN [--db PATH] [--steps N] ...`: argv[0] is RUN.
 * Distils a fresh gate onto the run's last checkpoint, saves it next to that
 * checkpoint as distilled-stepNNNNNN.safetensors (gate mode distilled) and
 * stores the result as a new run. Same exit statuses. */
int distill_main(int argc, char **argv);

/* ---- shared by the experiment files ---- */

#define EXPERIMENT_DEFAULT_DB "sessions/gatelab.db"
#define EXPERIMENT_MAX_SEEDS 16
#define EXPERIMENT_MAX_ROWS 64
#define EXPERIMENT_MAX_PASS 96     /* run options handed on to every seed's arms */

/* Errors are printed with cli_usage_error / cli_runtime_error (cli.h), which
 * return the exit status. */

/* The checkpoint evaluated in `mode` (-1: its own) over the val windows;
 * ms, when not NULL, is initialised here and gets the first batch's
 * agreement (the caller frees it). */
int experiment_eval_ckpt(const char *path, int mode, const data_source *data, size_t windows,
                         size_t threads, double *ppl, metrics_state *ms, gl_error *err);

/* -- the command line (experiment_args.c) -- */

typedef struct {
    const char *kind;            /* absorption | moe */
    train_config tc;             /* shared by the arms; the model seed is set per seed */
    const char *preset, *db, *from;
    size_t seeds;
    size_t distill_steps;        /* absorption */
    size_t experts;              /* moe: experts of the MoE arms */
    char *pass[EXPERIMENT_MAX_PASS];   /* the run options as given, for the arms' `resume` */
    int npass;
    /* --name and --note of every seed's session, --tag of every run (the
     * distillations' too), as for `run` */
    const char *name, *note;
    live_tag tags[LIVE_MAX_TAGS];
    size_t ntags;
    size_t heatmap_every;        /* --heatmap-every (0: every evaluation) */
} experiment_args;

/* argv holds the options after KIND; -1 with a one-line message naming the
 * option on bad input. */
int experiment_parse(const char *kind, int argc, char **argv, experiment_args *a, gl_error *e);

/* Opens the data (checking its tokens against V, which a .bin file sets)
 * and the database, and counts the val windows an evaluation uses. */
int experiment_open(experiment_args *a, data_source **data, store **st, size_t *windows,
                    gl_error *e);

/* `gatelab experiment moe` (experiment_moe.c): same exit statuses. */
int experiment_moe_run(experiment_args *a, int argc, char **argv);

/* -- the seed loop: one live session per seed, progress lines as they train -- */

/* One line per evaluation step, once every arm has it. */
typedef struct {
    size_t seed, nseeds, cap;
    size_t narms;
    const char *const *names; /* [narms], the arms' names in session order */
    uint64_t *step;           /* [narms][cap] */
    double *ppl, *tok;
    size_t got[LIVE_MAX_ARMS], printed;
    int done[LIVE_MAX_ARMS];
    /* percent and time left of the training (every seed's --steps; the
     * measurements between seeds are not counted in the steps) */
    uint64_t steps;           /* --steps of one seed */
    uint64_t at[LIVE_MAX_ARMS];   /* steps done by each arm of this seed */
    progress_pace pace;       /* over the steps of all seeds so far */
    progress_bar bar;         /* stderr, on a terminal only */
} experiment_progress;

/* room for `cap` evaluations per arm */
void experiment_progress_init(experiment_progress *p, size_t nseeds, size_t narms,
                              const char *const *names, size_t cap);
void experiment_progress_free(experiment_progress *p);

/* What every seed's session shares. */
typedef struct {
    const train_config *tc;   /* the model seed is replaced by each seed's */
    const char *db;
    const gate_mode *modes;
    const live_ffn *ffn;      /* [narms] or NULL: every arm has the dense FFN */
    size_t experts;           /* experts of the MoE arms */
    size_t narms, nseeds;
    char *const *pass;        /* the run options as given, for the arms' `resume` */
    int npass;                /* at most EXPERIMENT_MAX_PASS - 12 */
    const char *command;      /* the experiment's command line */
    const experiment_args *args;   /* --name, --note, --tag, --heatmap-every */
} experiment_seeds;

/* Trains seed `seed` (1 .. nseeds) as one live session, printing progress
 * through p; res gets the session and any signal that stopped it. -1 with
 * a message when live_run fails. */
int experiment_train_seed(const experiment_seeds *x, uint64_t seed, experiment_progress *p,
                          live_result *res, gl_error *e);

/* -- result tables (experiment_table.c) -- */

typedef struct {
    store_result_row row[EXPERIMENT_MAX_ROWS];
    size_t n;
} experiment_table;

/* mean and sample standard deviation over seeds (sd NAN for one seed) */
void experiment_stats(const double *v, size_t n, double *mean, double *sd);
/* a new row with value and spread NAN; the caller fills in the value */
store_result_row *experiment_add_row(experiment_table *t, const char *line,
                                     const char *quantity, const char *paper,
                                     const char *direction);
/* a value over seeds: "mean +- sd" (just the mean for one seed) */
store_result_row *experiment_add_stat(experiment_table *t, const char *line,
                                      const char *quantity, const double *v, size_t n,
                                      int decimals, const char *paper, const char *direction);
const char *experiment_yes_no(int cond);
/* the column header and every row */
void experiment_print_table(const experiment_table *t);
/* every row as the experiment's results */
int experiment_store_table(store *st, int64_t experiment, const experiment_table *t,
                           gl_error *e);
/* `--from ID`: reprints a stored experiment (ID an experiment or session id)
 * of this kind; another kind's is a usage error naming both */
int experiment_from(const char *db, const char *from, const char *kind);

/* -- one experiment from start to end (experiment.c) -- */

/* What experiment_run has opened, for the plan's callbacks. */
typedef struct {
    experiment_args *a;
    store *st;
    const data_source *data;  /* its val windows serve every evaluation */
    size_t windows;           /* val windows an evaluation uses */
    int64_t experiment;       /* 0 until the first seed's session exists */
} experiment_env;

/* What one experiment kind brings to the shared run. */
typedef struct {
    const char *kind;         /* absorption | moe: stored, and in the reprint hint */
    const char *title;        /* the table's heading: "routing absorption", ... */
    const char *const *names; /* [narms] the arms' names in session order */
    const gate_mode *modes;   /* [narms] */
    const live_ffn *ffn;      /* [narms] or NULL: every arm has the dense FFN */
    size_t narms, experts;    /* experts of the MoE arms */
    /* the first line, once the data is open (a .bin file sets V) */
    void (*print_header)(const experiment_env *env);
    /* the kind's own settings in the experiment's config JSON (members of
     * the open object; the run writes kind, seeds, arms and the run-spec
     * table's rows) */
    void (*config_json)(const experiment_args *a, json_buf *b);
    void *ctx;                /* handed to measure and build_table */
    /* after seed seed_index + 1 trained as `session`: measures, prints and
     * stores what the kind adds; -1 with a message stops the experiment */
    int (*measure)(void *ctx, const experiment_env *env, size_t seed_index, int64_t session,
                   gl_error *e);
    /* the table over every seed, once all are measured */
    void (*build_table)(void *ctx, const experiment_env *env, experiment_table *t);
} experiment_plan;

/* Opens the data and the database, trains and measures every seed, then
 * prints and stores the table; the experiment takes the id of its first
 * session and is marked finished or failed. Returns the exit status of
 * experiment_main. */
int experiment_run(experiment_args *a, const experiment_plan *plan, int argc, char **argv);

/* -- distillations (distill_cli.c) -- */

typedef struct {
    int64_t source_run;
    const char *source_name, *source_ckpt, *out_ckpt, *data_path;
    size_t eval_windows;
    const distill_config *cfg;
    const distill_result *res;
} experiment_distill_record;

/* Stores a distillation as a new run in `session` (arm index `arm`);
 * returns its id, or -1 (nothing stored). */
int64_t experiment_store_distillation(store *st, int64_t session, int64_t arm,
                                      const experiment_distill_record *d, gl_error *err);
void experiment_print_distill(const char *indent, const distill_result *r);

/* progress callback of distill_checkpoint, called after every update: ctx
 * is an experiment_distill_progress; a line every `every` updates (and at
 * the last) with percent and time left, the stderr bar in between */
typedef struct {
    const char *prefix;
    size_t every;             /* 0 counts as 1 */
    double t0;                /* gl_now() when the distillation started */
    progress_bar bar;         /* set up on the first call */
    int bar_ready;
} experiment_distill_progress;
void experiment_on_distill_progress(void *ctx, size_t step, size_t steps, double loss);

/* where the distilled gate of ckpt is saved (the settings are in the name) */
int experiment_distilled_path(const char *ckpt, size_t step, const distill_config *dc,
                              char *out, size_t n, gl_error *err);

#endif
