/* args: command-line numbers, checked whole: the word must be a number in
 * range, or the caller gets a one-line message naming the flag. */
#ifndef GATELAB_ARGS_H
#define GATELAB_ARGS_H

#include <stddef.h>

#include "common.h"

int args_size(const char *flag, const char *s, size_t lo, size_t hi, size_t *out, gl_error *e);
int args_float(const char *flag, const char *s, double lo, double hi, float *out, gl_error *e);
/* Online cores, at least 1: the default --threads. */
size_t args_default_threads(void);

#endif
