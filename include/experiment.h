/* experiment: what every headless experiment of DESIGN §7 runs through —
 * the dispatch of `gatelab experiment KIND`, one live session per seed with
 * its progress lines (ordinary stored runs), the experiment row, and a
 * kind's plan (experiment_plan) of what it measures per seed and the table
 * it builds. Like cli.c these entry points print: progress to stdout, one
 * line "gatelab: ..." per error to stderr.
 *
 * The kinds and their parts, one module each: experiment_absorption
 * (`experiment absorption`: the paper's four lines of evidence),
 * experiment_moe (`experiment moe`), experiment_args (the command line of
 * every kind), experiment_table (result tables, their printing and storage,
 * `--from` reprints), experiment_farm (the measurements as tasks over the
 * ranks of an MPI job); distill_cli (`gatelab distill`, and a distillation
 * stored as a run, which absorption's line 3 uses too). */
#ifndef GATELAB_EXPERIMENT_H
#define GATELAB_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "data.h"
#include "experiment_args.h"
#include "experiment_farm.h"
#include "experiment_table.h"
#include "gate.h"
#include "json.h"
#include "live.h"
#include "metrics.h"
#include "progress.h"
#include "store.h"
#include "trainer.h"
#include "world.h"

/* `gatelab experiment KIND [OPTIONS]`: argv[0] is KIND (absorption or
 * moe). w: the MPI job (a job of one without mpirun). Under several ranks
 * every rank runs this with the same words: the seeds' sessions spread
 * their arms over the ranks as `gatelab run` does, the measurements are
 * farmed over them (experiment_farm.h), and rank 0 alone opens the
 * database and prints. `--from` reprints on rank 0 (the others end at
 * once); `experiment crossdeploy SESSION` is refused (its data is named by
 * the database only rank 0 reads).
 * Returns the exit status: 0 done, 1 runtime failure, 2 usage error,
 * 128 + signal when SIGINT/SIGTERM stopped the training. */
int experiment_main(int argc, char **argv, const world *w);

/* ---- shared by the experiment kinds ---- */

/* Errors are printed with cli_usage_error / cli_runtime_error (cli.h), which
 * return the exit status. */

/* The checkpoint evaluated in `mode` (-1: its own) over the val windows;
 * ms, when not NULL, is initialised here and gets the first batch's
 * agreement (the caller frees it). */
int experiment_eval_ckpt(const char *path, int mode, const data_source *data, size_t windows,
                         size_t threads, double *ppl, metrics_state *ms, gl_error *err);

/* -- measurements as tasks (experiment_farm.h) -- */

/* The shared task codes: EVAL v[0] = the checkpoint's val ppl in t->mode;
 * EVAL_METRICS the same and its metrics: v[1] the model's mask density,
 * v[2] its mask entropy, v[3] the layers L, v[4 + l] layer l's oracle
 * mass (l < DISTILL_MAX_LAYERS). A kind's own codes start at KIND. */
enum { EXPERIMENT_TASK_EVAL = 1, EXPERIMENT_TASK_EVAL_METRICS, EXPERIMENT_TASK_KIND = 16 };

/* A task for the checkpoint at path. */
experiment_task experiment_task_make(int op, const char *path, int mode, uint64_t seed);

/* The shared codes, on any rank; ctx is the experiment_env (its data,
 * windows and --threads). */
int experiment_task_compute(void *ctx, const experiment_task *t, experiment_task_out *out,
                            gl_error *e);

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
    const world *world;       /* the arms over its ranks (NULL: all here) */
} experiment_seeds;

/* Trains seed `seed` (1 .. nseeds) as one live session, printing progress
 * through p (rank 0; the other ranks train their share of the arms
 * quietly); res gets the session (0 on the other ranks) and any signal
 * that stopped it. -1 with a message when live_run fails. */
int experiment_train_seed(const experiment_seeds *x, uint64_t seed, experiment_progress *p,
                          live_result *res, gl_error *e);

/* What experiment_session_runs matches names[arm] against: the run's name
 * (arms named by the kind) or its gate mode's name (arms that are modes,
 * whatever --name the user gave). */
typedef enum { EXPERIMENT_BY_NAME, EXPERIMENT_BY_MODE } experiment_match;

/* The runs a seed's session trained, one per arm: the first-generation run
 * (not a fork) at arm index a whose name or mode is names[a] sets run[a]
 * and ppl[a] (its final val ppl). run[] must start zeroed; -1 with "session
 * S has no NAME run" when an arm has none. */
int experiment_session_runs(store *st, int64_t session, const char *const *names, size_t narms,
                            experiment_match by, int64_t *run, double *ppl, gl_error *e);

/* -- one experiment from start to end (experiment.c) -- */

/* What experiment_run has opened, for the plan's callbacks. */
typedef struct {
    experiment_args *a;
    store *st;                /* rank 0 only (NULL on the others) */
    experiment_farm *farm;    /* the measurements' tasks over the ranks */
    const data_source *data;  /* its val windows serve every evaluation */
    size_t windows;           /* val windows an evaluation uses */
    int64_t experiment;       /* 0 until the first seed's session exists */
    int rank;                 /* this rank (0: the one that prints and stores) */
} experiment_env;

/* Every rank, at the start of an experiment: env's data (every rank's
 * evaluations read it; *data is its owner), rank 0 alone the database, and
 * the farm over the ranks computing with fn(ctx). -1 with a message (rank
 * 0's, naming the rank that could not open) and nothing left open. */
int experiment_env_open(experiment_env *env, const world *w, experiment_task_fn fn, void *ctx,
                        data_source **data, gl_error *e);
/* What experiment_env_open opened, every rank at the same point. */
void experiment_env_close(experiment_env *env, data_source *data);

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
    /* the kind's own task codes (>= EXPERIMENT_TASK_KIND), on any rank
     * (ctx: the experiment_env); NULL: only the shared ones */
    experiment_task_fn compute;
} experiment_plan;

/* Opens the data and the database, trains and measures every seed, then
 * prints and stores the table; the experiment takes the id of its first
 * session and is marked finished or failed. Under several ranks of w,
 * every rank runs it: the others train their share of each session and
 * serve the farm until rank 0 says stop. Returns the exit status of
 * experiment_main. */
int experiment_run(experiment_args *a, const experiment_plan *plan, int argc, char **argv,
                   const world *w);

/* The other ranks after a session (rc: what experiment_train_seed
 * returned there): -1 when rank 0 is gone (the session lost it), else
 * experiment_farm_serve's answer: 0 go on, > 0 stop with that status. */
int experiment_after_session(experiment_farm *f, int rc, gl_error *e);

#endif
