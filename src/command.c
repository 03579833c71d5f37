/* command: `--at STEP:COMMAND[:ARG][@ARM]` words to command records, and
 * command records back to words for events and the screen. */
#include "command.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floatfmt.h"
#include "gate.h"

/* Whole numbers and seconds as a person writes them: strtoull and strtod
 * alone would also take " 5", "+5", "0x10" (16) and "1e2" for a step. */
static int all_digits(const char *s)
{
    return *s && s[strspn(s, "0123456789")] == '\0';
}

/* digits with at most one '.', then an optional exponent (1.5, .5, 2e-3) */
static int decimal_number(const char *s)
{
    size_t i = strspn(s, "0123456789"), digits = i;
    if (s[i] == '.') {
        size_t f = strspn(s + i + 1, "0123456789");
        digits += f;
        i += 1 + f;
    }
    if (!digits)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        size_t x = strspn(s + i, "0123456789");
        if (!x)
            return 0;
        i += x;
    }
    return s[i] == '\0';
}

static int parse_mode(const char *spec, const char *word, uint32_t *out, gl_error *err)
{
    gate_mode m;
    if (!word || !*word)
        return gl_fail(err, "--at %s: missing gate mode (%s)", spec, gate_mode_list());
    if (gate_mode_parse(word, &m) || m == GATE_DISTILLED)
        return gl_fail(err, "--at %s: unknown gate mode '%s'", spec, word);
    *out = (uint32_t)m;
    return 0;
}

int command_parse(const char *spec, scripted_command *out, gl_error *err)
{
    memset(out, 0, sizeof *out);
    char buf[128];
    if (strlen(spec) >= sizeof buf)
        return gl_fail(err, "--at %.40s...: too long", spec);
    strcpy(buf, spec);
    char *at = strchr(buf, '@');
    if (at) {
        *at++ = 0;
        if (!*at || strlen(at) >= sizeof out->arm)
            return gl_fail(err, "--at %s: bad arm after '@'", spec);
        strcpy(out->arm, at);
    }
    char *step = buf, *name = strchr(buf, ':');
    if (!name)
        return gl_fail(err, "--at %s: expected STEP:COMMAND[:ARG][@ARM]", spec);
    *name++ = 0;
    char *arg = strchr(name, ':');
    if (arg)
        *arg++ = 0;
    char *end;
    errno = 0;
    unsigned long long s = strtoull(step, &end, 10);
    if (!all_digits(step) || *end || errno)
        return gl_fail(err, "--at %s: step '%s' is not a whole number", spec, step);
    out->step = s;
    out->cmd.scripted = 1;
    cmd_record *c = &out->cmd;
    int needs_arg = 0, takes_arg = 0;
    if (strcmp(name, "pause") == 0) {
        c->kind = CMD_PAUSE;
        takes_arg = 1;
        if (arg) {
            errno = 0;
            c->seconds = strtod(arg, &end);
            if (!decimal_number(arg) || *end || errno || !isfinite(c->seconds) || c->seconds <= 0.0 ||
                c->seconds > 86400.0)
                return gl_fail(err, "--at %s: pause length '%s' must be seconds in (0, 86400]",
                               spec, arg);
        }
    } else if (strcmp(name, "resume") == 0) {
        c->kind = CMD_RESUME;
    } else if (strcmp(name, "swap") == 0) {
        c->kind = CMD_SWAP;
        needs_arg = 1;
        if (parse_mode(spec, arg, &c->arg, err))
            return -1;
    } else if (strcmp(name, "fork") == 0) {
        c->kind = CMD_FORK;
        needs_arg = 1;
        if (parse_mode(spec, arg, &c->arg, err))
            return -1;
    } else if (strcmp(name, "freeze") == 0) {
        c->kind = CMD_FREEZE;
    } else if (strcmp(name, "unfreeze") == 0) {
        c->kind = CMD_UNFREEZE;
    } else if (strcmp(name, "k") == 0) {
        c->kind = CMD_SET_K;
        needs_arg = 1;
        errno = 0;
        unsigned long v = arg ? strtoul(arg, &end, 10) : 0;
        if (!arg || !all_digits(arg) || *end || errno || v < 1 || v > 4096)
            return gl_fail(err, "--at %s: k '%s' must be a whole number from 1 to 4096", spec,
                           arg ? arg : "");
        c->arg = (uint32_t)v;
    } else if (strcmp(name, "checkpoint") == 0) {
        c->kind = CMD_CHECKPOINT;
    } else if (strcmp(name, "stop") == 0) {
        c->kind = CMD_STOP;
    } else {
        return gl_fail(err, "--at %s: unknown command '%s' (pause, resume, swap, freeze, "
                            "unfreeze, k, checkpoint, fork, stop)", spec, name);
    }
    if (arg && !needs_arg && !takes_arg)
        return gl_fail(err, "--at %s: %s takes no argument", spec, name);
    return 0;
}

int command_parse_word(const char *word, scripted_command *out, gl_error *err)
{
    char spec[160];
    if (snprintf(spec, sizeof spec, "0:%s", word) >= (int)sizeof spec)
        return gl_fail(err, "%.40s...: too long", word);
    if (command_parse(spec, out, err) == 0) {
        out->cmd.scripted = 0;
        return 0;
    }
    /* one parser: its messages say "--at 0:WORD"; the word alone is what
     * was typed */
    static const char prefix[] = "--at 0:";
    size_t n = sizeof prefix - 1;
    if (strncmp(err->msg, prefix, n) == 0)
        memmove(err->msg, err->msg + n, strlen(err->msg + n) + 1);
    return -1;
}

void command_format(uint64_t step, const cmd_record *c, char *buf, size_t size)
{
    char arg[FLOATFMT_DOUBLE_SIZE + 1] = "";
    if (c->kind == CMD_SWAP || c->kind == CMD_FORK)
        snprintf(arg, sizeof arg, ":%s", gate_mode_name((gate_mode)c->arg));
    else if (c->kind == CMD_SET_K)
        snprintf(arg, sizeof arg, ":%u", c->arg);
    else if (c->kind == CMD_PAUSE && c->seconds > 0.0) {
        char secs[FLOATFMT_DOUBLE_SIZE];
        snprintf(arg, sizeof arg, ":%s", floatfmt_shortest_double(c->seconds, secs, sizeof secs));
    }
    snprintf(buf, size, "%llu:%s%s", (unsigned long long)step, cmd_kind_name((cmd_kind)c->kind),
             arg);
}

void command_describe(const cmd_record *c, char *buf, size_t size)
{
    switch ((cmd_kind)c->kind) {
    case CMD_SWAP:
    case CMD_FORK:
        snprintf(buf, size, "%s %s", cmd_kind_name(c->kind), gate_mode_name(c->arg));
        break;
    case CMD_SET_K:
        snprintf(buf, size, "k %u", c->arg);
        break;
    case CMD_PAUSE:
        if (c->seconds > 0.0) {
            snprintf(buf, size, "pause %gs", c->seconds);
            break;
        }
        /* fall through */
    default:
        snprintf(buf, size, "%s", cmd_kind_name(c->kind));
        break;
    }
}
