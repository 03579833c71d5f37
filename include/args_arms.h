/* args_arms: the words of a session's arms and labels as run, experiment and
 * distill take them — --arms MODE[+moe|+moe-random], --at's @ARM selector
 * checked against the arms, --name, --note and --tag. */
#ifndef GATELAB_ARGS_ARMS_H
#define GATELAB_ARGS_ARMS_H

#include <stddef.h>

#include "common.h"
#include "gate.h"
#include "model.h"

/* live.h defines it (and includes this header) */
typedef struct live_config live_config;

/* The FFN of an arm: the dense one, or a mixture of experts (top-1) whose
 * router learns or keeps its initial random weights. */
typedef enum { LIVE_FFN_DENSE, LIVE_FFN_MOE, LIVE_FFN_MOE_RANDOM } live_ffn;

/* --tag KEY=VALUE: written on every run of the session (forks included) */
#define LIVE_MAX_TAGS 16
typedef struct {
    char key[64];
    char value[160];
} live_tag;

/* An arm as --arms spells it: MODE, MODE+moe or MODE+moe-random. -1: not a
 * gate mode, -2: an unknown +suffix. */
int args_parse_arm(const char *word, gate_mode *mode, live_ffn *ffn);
/* --arms M1,M2,...: each word as args_parse_arm reads it into modes[i] and
 * ffn[i] (room for LIVE_MAX_ARMS), their count in *narms; -1 with a
 * message naming the list (an unknown mode or FFN, too many arms, an empty
 * arm). */
int args_parse_arms(const char *v, gate_mode *modes, live_ffn *ffn, size_t *narms, gl_error *e);
/* The --arms word of a model: its mode and, with experts, its router. */
void args_arm_spec(const model_config *m, char *buf, size_t n);
/* The name of arm i: its --arms word, numbered when one repeats (soft, soft2). */
void args_arm_name(const live_config *cfg, size_t i, char *buf, size_t n);
/* --tag KEY=VALUE into *out: a key of 1..63 bytes without '=' or control
 * bytes, a value of 0..159 bytes without control bytes. -1 with a message
 * naming the word otherwise. */
int args_parse_tag(const char *word, live_tag *out, gl_error *err);
/* --name / --note text (what: "--name" or "--note"): non-empty, valid UTF-8,
 * no control bytes, at most max bytes. */
int args_check_label(const char *what, const char *text, size_t max, gl_error *err);
/* --name NAME, --note TEXT and --tag KEY=VALUE as run, experiment and distill
 * take them: 1 when flag is one of them (value checked and kept in *name,
 * *note or tags[*ntags]), 0 when it is another flag, -1 with a message. */
int args_label_option(const char *flag, const char *value, const char **name,
                      const char **note, live_tag tags[LIVE_MAX_TAGS], size_t *ntags,
                      gl_error *err);
/* Scripted commands within --steps, k within T, @ARM naming an arm. */
int args_check_script(const live_config *cfg, gl_error *err);

#endif
