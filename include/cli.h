/* cli: the gatelab command line (DESIGN §9): parses arguments, runs the
 * command, prints results and errors. The only module that prints. */
#ifndef GATELAB_CLI_H
#define GATELAB_CLI_H

/* Returns the process exit status: 0 success, 1 runtime failure (bad data,
 * I/O, diverged run), 2 usage error. */
int cli_main(int argc, char **argv);

#endif
