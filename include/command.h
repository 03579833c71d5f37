/* command: the steering commands of DESIGN §6 as words — parsing
 * `--at STEP:COMMAND[:ARG][@ARM]` and the names the screen shows. */
#ifndef GATELAB_COMMAND_H
#define GATELAB_COMMAND_H

#include <stdint.h>

#include "common.h"
#include "record.h"

#define COMMAND_ARM_ALL UINT32_MAX

typedef struct {
    uint64_t step;        /* applied when exactly this many steps are done */
    cmd_record cmd;
    char arm[32];         /* "" = every arm; else an arm index or name */
} scripted_command;

/* Parses "500:swap:random", "100:pause:2.5", "300:k:8@soft", "0:freeze@1".
 * Commands: pause[:SECONDS] resume swap:MODE freeze unfreeze k:K checkpoint
 * fork:MODE stop. k is checked against T later, by the caller. */
int command_parse(const char *spec, scripted_command *out, gl_error *err);

/* A command without its step, as `gatelab send` and the commands table take
 * it: "pause", "pause:2.5", "swap:random", "k:8@soft" (out->step 0,
 * out->cmd.scripted 0). The same words and checks as command_parse; the
 * message names the word ("swap:foo: unknown gate mode 'foo'"). */
int command_parse_word(const char *word, scripted_command *out, gl_error *err);

/* The --at word command_parse reads back to the same step and command,
 * without an arm selector: "500:swap:random", "300:k:8", "100:pause:2.5"
 * (the seconds as the shortest decimal that reads back to them), into buf
 * (96 bytes hold any). */
void command_format(uint64_t step, const cmd_record *c, char *buf, size_t size);

/* "swap random", "k 8", "pause 2.5s", ... into buf. */
void command_describe(const cmd_record *c, char *buf, size_t size);

#endif
