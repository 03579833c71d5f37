/* cli_help: the usage of every command, in one table (cli_help.c) that the
 * top-level --help, each `gatelab COMMAND --help` and the --opt=value
 * normaliser (args_split_equals) all read, so that what the help says, the
 * commands it lists and which options take a value cannot drift apart.
 * The parsers themselves stay in cli.c, cli_store.c, experiment_args.c and
 * distill_cli.c; a new option goes into its parser and into this table. */
#ifndef GATELAB_CLI_HELP_H
#define GATELAB_CLI_HELP_H

#include <stddef.h>
#include <stdio.h>

typedef struct cli_command cli_command;

/* The command the whole command line runs: argv[1] (run when it is absent
 * or an option), and for `experiment` its kind when argv[2] names one.
 * *words gets how many words from argv[1] on name it (0, 1 or 2). NULL
 * when argv[1] names no command. */
const cli_command *cli_help_find(int argc, char **argv, int *words);

/* The command named `name` ("ls", "experiment moe"), or NULL. */
const cli_command *cli_help_named(const char *name);

/* For args_split_equals: 1 when the option of len bytes at opt ("--steps")
 * takes a value in command ctx (a const cli_command *), 0 when it is a flag
 * without one, -1 when the command has no such option. */
int cli_help_takes_value(const void *ctx, const char *opt, size_t len);

/* `gatelab COMMAND --help`: its synopsis, what it does, every option. */
void cli_help_print(FILE *f, const cli_command *cmd);
/* `gatelab --help`: every command's synopsis and the run options. */
void cli_help_print_all(FILE *f);

/* The command names for an error message: "run, ls, show, ..." */
const char *cli_help_names(void);

#endif
