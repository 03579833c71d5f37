/* cli_plot: `gatelab plot` (charts and heatmaps of stored runs, drawn by
 * plot.c) and `gatelab export --csv` (every metric of stored runs as a wide
 * CSV table). Each returns the process exit status (cli.h). */
#ifndef GATELAB_CLI_PLOT_H
#define GATELAB_CLI_PLOT_H

/* argv after "plot" */
int cli_plot(int argc, char **argv);
/* `export RUN[,RUN...]|--session S --csv PATH`: runs_word or session (one
 * of them) from the database db, one row per (run, step) into path. */
int cli_export_csv(const char *db, const char *runs_word, const char *session, const char *path);

#endif
