/* experiment_args: the command line shared by every `gatelab experiment`
 * kind (experiment_args.c). */
#ifndef GATELAB_EXPERIMENT_ARGS_H
#define GATELAB_EXPERIMENT_ARGS_H

#include <stddef.h>

#include "common.h"
#include "live.h"
#include "trainer.h"

#define EXPERIMENT_DEFAULT_DB "sessions/gatelab.db"
#define EXPERIMENT_MAX_SEEDS 16
#define EXPERIMENT_MAX_PASS 96     /* run options handed on to every seed's arms */
#define EXPERIMENT_MAX_TEMPS 16

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
    /* temperature: the soft top-k temperatures (--temps) */
    float temps[EXPERIMENT_MAX_TEMPS];
    size_t ntemps;
} experiment_args;

/* argv holds the options after KIND; -1 with a one-line message naming the
 * option on bad input. */
int experiment_args_parse(const char *kind, int argc, char **argv, experiment_args *a,
                          gl_error *e);

#endif
