/* outfile: an output file written whole or not at all (charts, CSV tables):
 * the bytes go to a temporary beside the target (PATH.tmp.PID, made with the
 * permissions any new file gets), which replaces the target by rename only
 * once everything was written and synced. A failure leaves the target as it
 * was and no temporary behind. */
#ifndef GATELAB_OUTFILE_H
#define GATELAB_OUTFILE_H

#include <stdio.h>

#include "common.h"

typedef struct {
    FILE *fp;              /* write here between open and close */
    const char *path;      /* the target (the caller's string) */
    char tmp[4200];
} outfile;

/* Refuses a target that exists and is not a regular file (a directory, a
 * device). -1 with "cannot write PATH: reason". */
int outfile_open(outfile *o, const char *path, gl_error *err);
/* ok = 0 (the caller failed meanwhile): drops the temporary, returns -1
 * leaving err as it is. ok = 1: flushes, syncs, renames; -1 with a message
 * when any of it fails. */
int outfile_close(outfile *o, int ok, gl_error *err);

#endif
