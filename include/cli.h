/* cli: the gatelab command line (DESIGN §9): parses arguments, runs the
 * command, prints results and errors. The only module that prints.
 * cli.c owns run, resume, eval and the dispatch; cli_store.c the commands
 * that read or tidy stored sessions (ls, show, replay, export, tag, note,
 * rm). The second half of
 * this header is what the two files share. */
#ifndef GATELAB_CLI_H
#define GATELAB_CLI_H

#include <stdint.h>

#include "checkpoint.h"
#include "common.h"
#include "safetensors.h"
#include "store.h"
#include "ui.h"
#include "world.h"

/* Returns the process exit status: 0 success, 1 runtime failure (bad data,
 * I/O, diverged run), 2 usage error. w: the MPI job this process is a rank
 * of (a job of one without mpirun). */
int cli_main(int argc, char **argv, const world *w);
/* Parses and checks run's options (argv after "run") without running
 * anything: 0, or -1 with the usage message in e. */
int cli_check_run_args(int argc, char **argv, gl_error *e);

/* ---- shared by cli.c, cli_store.c and the experiment commands ---- */

/* "gatelab: MESSAGE" on stderr; return the exit status 2 (usage) or 1
 * (runtime) for the caller to return */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_runtime_error(const gl_error *e);
/* head followed by the words, space-separated (the caller frees) */
char *cli_join_words(const char *head, int argc, char **argv);

/* --db PATH among the words (default sessions/gatelab.db); everything else
 * is left in rest[]. 0, or the usage exit status after printing. */
int cli_take_db(int argc, char **argv, const char **db, char **rest, int *nrest,
                const char *cmd);
/* watch and replay: "CMD [SESSION] [--db PATH]" shown by screen on a
 * terminal, else (or when screen finds no usable terminal, after "gatelab:
 * WHY: printing INSTEAD instead") by text. The exit status. */
typedef int (*cli_screen_fn)(const char *db, int64_t session, const ui_options *o,
                             int *fallback, int *signal, gl_error *err);
int cli_session_view(int argc, char **argv, const char *cmd, cli_screen_fn screen,
                     const char *instead, int (*text)(const char *db, int64_t session));
/* The start of an evaluation's line, shared by the headless printer and
 * watch's lines: "step N | ARM | train | val ppl[ bpb][ | f1 mass][ |
 * experts balance]" (what follows differs; no newline). */
void cli_print_eval_head(const tel_record *r, const char *name);
/* SESSION as an id (one that exists in st) or a session name (the newest
 * session of that name): send, watch, replay. 0, or the exit status after
 * printing "CMD: ..." */
int cli_find_session(store *st, const char *cmd, const char *word, const char *db, int64_t *out);
/* RUN as a run id; 0, or the usage exit status after printing */
int cli_parse_run_id(const char *cmd, const char *word, int64_t *out);
/* src as a run id (digits, and no file of that name) or a checkpoint file:
 * a run's newest checkpoint in db, or with step_word the one at exactly
 * that step, into path[n]; *run_out (when not NULL) gets the run id or 0.
 * 0, or the exit status after printing. */
int cli_resolve_checkpoint(const char *cmd, const char *src, const char *step_word,
                           const char *db, char *path, size_t n, int64_t *run_out);
/* reads a checkpoint file and its metadata (f is freed on failure) */
int cli_open_checkpoint(const char *path, st_file *f, checkpoint_info *info, gl_error *e);

/* the commands of cli_store.c: argv after the command word; exit status */
int cli_ls(int argc, char **argv);
int cli_show(int argc, char **argv);
int cli_replay(int argc, char **argv);
/* cli_watch.c: follow a session another process writes */
int cli_watch(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_eval(int argc, char **argv);
/* names, tags, notes and housekeeping (cli_store.c) */
int cli_tag(int argc, char **argv);
int cli_note(int argc, char **argv);
int cli_rm(int argc, char **argv);
/* steering a session another process trains (cli_send.c) */
int cli_send(int argc, char **argv);

#endif
