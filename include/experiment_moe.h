/* experiment_moe: `gatelab experiment moe` (DESIGN §7.5): the FFN's router
 * in place of the attention gate, as a plan for experiment_run. */
#ifndef GATELAB_EXPERIMENT_MOE_H
#define GATELAB_EXPERIMENT_MOE_H

#include "experiment_args.h"
#include "world.h"

/* Trains and measures every seed, prints and stores the table; the exit
 * status of experiment_main. */
int experiment_moe_run(experiment_args *a, int argc, char **argv, const world *w);

#endif
