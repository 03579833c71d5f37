/* live: a session of arms training side by side. The main thread drains
 * every arm's telemetry ring, hands each record to an observer (headless
 * printer or screen) and forwards it to the store thread, which batches it
 * into SQLite. SIGINT, SIGTERM and SIGHUP stop every arm cleanly. */
#ifndef GATELAB_LIVE_H
#define GATELAB_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "arm.h"
#include "command.h"
#include "common.h"
#include "record.h"
#include "trainer.h"

#define LIVE_MAX_ARMS 16

/* The FFN of an arm: the dense one, or a mixture of experts (top-1) whose
 * router learns or keeps its initial random weights. */
typedef enum { LIVE_FFN_DENSE, LIVE_FFN_MOE, LIVE_FFN_MOE_RANDOM } live_ffn;

/* --tag KEY=VALUE: written on every run of the session (forks included) */
#define LIVE_MAX_TAGS 16
typedef struct {
    char key[64];
    char value[160];
} live_tag;

typedef struct {
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
} live_config;

typedef struct live live;

typedef struct {
    /* every record, on the main thread, before it is stored */
    void (*on_record)(void *ctx, live *lv, const tel_record *r);
    /* about every 10 ms; nonzero asks every arm to stop, and says why in the
     * observer's own terms (the person quit, its output is gone): the loop
     * keeps it in live_result.stop_asked */
    int (*on_tick)(void *ctx, live *lv);
    void *ctx;
} live_observer;

typedef struct {
    int signal;                    /* SIGINT/SIGTERM/SIGHUP that stopped the session, or 0 */
    int stop_asked;                /* what on_tick returned when it stopped the session, or 0 */
    size_t diverged;               /* arms that ended diverged */
    size_t failed;                 /* arms that ended failed (a checkpoint not written) */
    int64_t session;               /* 0 without a database */
    uint64_t backpressure;         /* times a ring was full and a producer waited */
} live_result;

/* Runs the session to the end. -1 with a message when it cannot start or the
 * database fails mid-run (the arms are then stopped). */
int live_run(const live_config *cfg, const live_observer *obs, live_result *res,
             gl_error *err);

/* An arm as --arms spells it: MODE, MODE+moe or MODE+moe-random. -1: not a
 * gate mode, -2: an unknown +suffix. */
int live_parse_arm(const char *word, gate_mode *mode, live_ffn *ffn);
/* The --arms word of a model: its mode and, with experts, its router. */
void live_arm_spec(const model_config *m, char *buf, size_t n);
/* The name of arm i: its --arms word, numbered when one repeats (soft, soft2). */
void live_arm_name(const live_config *cfg, size_t i, char *buf, size_t n);
/* --tag KEY=VALUE into *out: a key of 1..63 bytes without '=' or control
 * bytes, a value of 0..159 bytes without control bytes. -1 with a message
 * naming the word otherwise. */
int live_parse_tag(const char *word, live_tag *out, gl_error *err);
/* --name / --note text (what: "--name" or "--note"): non-empty, valid UTF-8,
 * no control bytes, at most max bytes. */
int live_check_label(const char *what, const char *text, size_t max, gl_error *err);
/* --name NAME, --note TEXT and --tag KEY=VALUE as run, experiment and distill
 * take them: 1 when flag is one of them (value checked and kept in *name,
 * *note or tags[*ntags]), 0 when it is another flag, -1 with a message. */
int live_label_option(const char *flag, const char *value, const char **name,
                      const char **note, live_tag tags[LIVE_MAX_TAGS], size_t *ntags,
                      gl_error *err);

/* Scripted commands within --steps, k within T, @ARM naming an arm. */
int live_check_script(const live_config *cfg, gl_error *err);

/* For observers, on the main thread. */
size_t live_arm_count(const live *lv);
arm *live_arm(live *lv, size_t i);
int64_t live_run_id(const live *lv, size_t i);   /* 0 when not stored (yet) */
int64_t live_session(const live *lv);            /* 0 without a database */
int live_send(live *lv, size_t arm, const cmd_record *c);

#endif
