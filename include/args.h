/* args: command-line numbers, checked whole: the word must be a number in
 * range, or the caller gets a one-line message naming the flag; and the
 * run options that `run` and `experiment` share (the model, optimiser,
 * evaluation, data and threads), with the defaults that follow from them. */
#ifndef GATELAB_ARGS_H
#define GATELAB_ARGS_H

#include <stddef.h>

#include "common.h"
#include "trainer.h"

int args_size(const char *flag, const char *s, size_t lo, size_t hi, size_t *out, gl_error *e);
/* Online cores, at least 1: the default --threads. */
size_t args_default_threads(void);
/* Bytes this process may allocate: physical memory, or less under a
 * RLIMIT_AS / RLIMIT_DATA limit. */
double args_memory_limit(void);
/* 1 when s is well-formed UTF-8. */
int args_is_utf8(const char *s);
/* --out DIR: an existing directory this process can write, or a path whose
 * nearest existing ancestor is one (it is created at the first save). */
int args_check_out_dir(const char *dir, gl_error *e);

/* "--opt=value" as "--opt" "value", for every command at once (cli_main
 * runs it before the dispatch, so no parser sees the '=' form). Only a word
 * that starts with "--" and names an option taking a value splits, at its
 * first '=': "--tag=k=v" gives "--tag" "k=v", while the value word after a
 * plain "--note" is left alone whatever it holds. takes_value(ctx, opt, len)
 * says whether the option of len bytes at opt takes a value (1), is a flag
 * (0) or is unknown (-1: left whole, for the parser to name). An empty value
 * ("--steps=") or a value given to a flag ("--headless=1") is -1 with a
 * one-line message naming the option. On success *out is a new argv of
 * *out_argc words (argv[0] kept, NULL-terminated) in one allocation that
 * the caller frees; its words point into argv or into that block. */
typedef int (*args_takes_value_fn)(const void *ctx, const char *opt, size_t len);
int args_split_equals(int argc, char **argv, args_takes_value_fn takes_value, const void *ctx,
                      int *out_argc, char ***out, gl_error *e);

/* The preset decides the defaults, so it is found before the other options:
 * the last --preset NAME of argv (else "tiny") into *preset and its
 * defaults into tc (runspec_defaults). -1 with a message for a --preset
 * without a value or a name that is none of runspec_preset_names. */
int args_preset_defaults(int argc, char **argv, const char **preset, train_config *tc,
                         gl_error *e);

/* Where the commands differ (set by the caller before the first option),
 * and which shared options were given (filled in by args_model_option). */
typedef struct {
    size_t eval_every_min;   /* lowest --eval-every: run 0, experiment 1 */
    int data_nonempty;       /* --data "" is a missing value */
    int k, gate_lr, mlp, warmup, eval_every;   /* given */
    size_t vocab;            /* --vocab, 0 when not given */
} args_set;

/* One shared run option and its value (NULL when it is the last word):
 * 1 handled, 0 not one of the shared options, -1 with a one-line message
 * naming the option on bad input. The options, their ranges and where they
 * go are the run-spec table's rows marked RUNSPEC_SHARED (runspec.h). */
int args_model_option(const char *flag, const char *value, train_config *tc, args_set *set,
                      gl_error *e);

/* After the options: gate lr = lr, k = T/8, mlp = 4 d unless given; V from
 * --vocab (else a .bin file sets it); the default warm-up is shortened to
 * a tenth of a run it would swallow. */
void args_finish_defaults(train_config *tc, const args_set *set);

#endif
