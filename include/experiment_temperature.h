/* experiment_temperature: `gatelab experiment temperature` (issue 16 item 1)
 * — the bridge between line 1 (soft gates: a small benefit) and line 2
 * (hard gates: zero gradient). Per seed and soft top-k temperature t one
 * session of a learned (`soft`) and a frozen-random (`random`) arm with
 * --gate-temp t, plus one session of `topk`, `topk-random` (t -> 0) and
 * `dense`; a table per t of the final val ppl, the gap and the routing
 * benefit, the learned gate's gradient norm over training (mean and last)
 * and its soft mask's entropy. */
#ifndef GATELAB_EXPERIMENT_TEMPERATURE_H
#define GATELAB_EXPERIMENT_TEMPERATURE_H

#include "experiment_args.h"
#include "world.h"

/* Trains and measures every seed and temperature, prints and stores the
 * table; the exit status of experiment_main. */
int experiment_temperature_run(experiment_args *a, int argc, char **argv, const world *w);

#endif
