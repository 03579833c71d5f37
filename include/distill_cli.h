/* distill_cli: `gatelab distill RUN`, and a distillation (distill.h) stored
 * as an ordinary run — its metrics, checkpoint and events — for it and for
 * line 3 of `experiment absorption`. Like cli.c it prints: progress to
 * stdout, one line "gatelab: ..." per error to stderr. */
#ifndef GATELAB_DISTILL_CLI_H
#define GATELAB_DISTILL_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "distill.h"
#include "progress.h"
#include "store.h"

/* `gatelab distill RUN [--db PATH] [--steps N] ...`: argv[0] is RUN.
 * Distils a fresh gate onto the run's last checkpoint, saves it next to that
 * checkpoint as distilled-stepNNNNNN.safetensors (gate mode distilled) and
 * stores the result as a new run. Returns the exit status: 0 done, 1
 * runtime failure, 2 usage error. */
int distill_cli_main(int argc, char **argv);

typedef struct {
    int64_t source_run;
    const char *source_name, *source_ckpt, *out_ckpt, *data_path;
    size_t eval_windows;
    const distill_config *cfg;
    const distill_result *res;
} distill_cli_record;

/* Stores a distillation as a new run in `session` (arm index `arm`);
 * returns its id, or -1 (nothing stored). */
int64_t distill_cli_store(store *st, int64_t session, int64_t arm, const distill_cli_record *d,
                          gl_error *err);
/* the result's lines: BCE, held-out agreement, deployed P/R/F1 and ppl */
void distill_cli_print(const char *indent, const distill_result *r);

/* progress callback of distill_checkpoint, called after every update: ctx
 * is a distill_cli_progress; a line every `every` updates (and at the
 * last) with percent and time left, the stderr bar in between */
typedef struct {
    const char *prefix;
    size_t every;             /* 0 counts as 1 */
    double t0;                /* gl_now() when the distillation started */
    progress_bar bar;         /* set up on the first call */
    int bar_ready;
} distill_cli_progress;
void distill_cli_on_progress(void *ctx, size_t step, size_t steps, double loss);

/* where the distilled gate of ckpt is saved (the settings are in the name) */
int distill_cli_out_path(const char *ckpt, size_t step, const distill_config *dc, char *out,
                         size_t n, gl_error *err);

#endif
