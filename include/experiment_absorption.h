/* experiment_absorption: `gatelab experiment absorption` (DESIGN §7): the
 * routing-absorption experiment of the paper, as a plan for experiment_run
 * (experiment.h). */
#ifndef GATELAB_EXPERIMENT_ABSORPTION_H
#define GATELAB_EXPERIMENT_ABSORPTION_H

#include "experiment_args.h"
#include "world.h"

/* Trains and measures every seed, prints and stores the table; the exit
 * status of experiment_main. */
int experiment_absorption_run(experiment_args *a, int argc, char **argv, const world *w);

#endif
