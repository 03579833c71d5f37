/* experiment: the headless experiments of DESIGN §7 and `gatelab distill`.
 * `experiment absorption` trains, for each seed, one live session of the
 * arms dense, soft, random, sigmoid, topk and stochastic (ordinary stored
 * runs), then measures the paper's four lines of evidence on their
 * checkpoints (gate gradient of topk, finite-difference probe, distillation
 * onto the frozen dense/random/soft models, dense evaluation of every gated
 * model) and prints and stores a table beside the paper's figures.
 * Like cli.c these entry points print: progress to stdout, one line
 * "gatelab: ..." per error to stderr. */
#ifndef GATELAB_EXPERIMENT_H
#define GATELAB_EXPERIMENT_H

/* `gatelab experiment KIND [OPTIONS]`: argv[0] is KIND (absorption).
 * Returns the exit status: 0 done, 1 runtime failure, 2 usage error,
 * 128 + signal when SIGINT/SIGTERM stopped the training. */
int experiment_main(int argc, char **argv);

/* `gatelab distill RUN [--db PATH] [--steps N] ...`: argv[0] is RUN.
 * Distils a fresh gate onto the run's last checkpoint, saves it next to that
 * checkpoint as distilled-stepNNNNNN.safetensors (gate mode distilled) and
 * stores the result as a new run. Same exit statuses. */
int distill_main(int argc, char **argv);

#endif
