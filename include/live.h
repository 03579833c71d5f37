/* live: a session of arms training side by side. The main thread drains
 * every arm's telemetry ring, hands each record to an observer (headless
 * printer or screen) and forwards it to the store thread, which batches it
 * into SQLite. SIGINT, SIGTERM and SIGHUP stop every arm cleanly. Observers
 * see the session through session_view.h alone; this header is for whoever
 * configures and runs one (cli, experiments). Files: live.c the session
 * loop, live_store.c the store thread, live_arms.c the arm registry. */
#ifndef GATELAB_LIVE_H
#define GATELAB_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "args_arms.h"
#include "arm.h"
#include "command.h"
#include "common.h"
#include "record.h"
#include "session_view.h"
#include "trainer.h"
#include "world.h"

typedef struct live_config {
    train_config tc;               /* shared by every arm; tc.model.mode and .experts
                                      are set per arm */
    gate_mode modes[LIVE_MAX_ARMS];
    live_ffn ffn[LIVE_MAX_ARMS];   /* zero: dense FFN */
    size_t experts;                /* experts of the MoE arms (>= 2) */
    size_t narms;
    const char *db_path;           /* NULL: nothing stored */
    const char *out_dir;           /* checkpoint base; NULL: <db dir>/ckpt. Runs write
                                      BASE/<db name>-<db id>/session-N/armI-NAME/ */
    int telemetry;                 /* 0: --no-telemetry (only evaluations reach the main thread) */
    const scripted_command *script;
    size_t nscript;
    const char *command_line;      /* recorded with the session */
    /* the run's own arguments (without --arms, --at, --db, --out) so that
     * `gatelab resume` can rebuild its configuration */
    char *const *run_argv;
    int run_argc;
    /* resume: continue this stored run from this resumable checkpoint */
    int64_t resume_run;
    const char *resume_ckpt;
    const char *resume_name;
    uint32_t resume_arm;           /* the run's arm index in its session (checkpoint owner) */
    size_t resume_old_steps;       /* resume: the --steps the run had, for the event that
                                      records an extension (or an earlier end) */
    /* --name and --note of the session (NULL: none), --tag of every run */
    const char *name, *note;
    const live_tag *tags;
    size_t ntags;
    size_t keep_checkpoints;       /* --keep-checkpoints N (0: keep every file) */
    size_t heatmap_every;          /* --heatmap-every N (0 or 1: every evaluation) */
    const world *world;            /* the MPI job (NULL or one rank: every arm here);
                                      several ranks: live_remote.c */
    size_t dp;                     /* --dp N: each arm on N ranks (0 or 1: one) */
} live_config;

/* Runs the session to the end. -1 with a message when it cannot start or the
 * database fails mid-run (the arms are then stopped). */
int live_run(const live_config *cfg, const live_observer *obs, live_result *res,
             gl_error *err);

/* What an observer needs to know of a session before it runs. */
void live_shape(const live_config *cfg, session_shape *out);

#endif
