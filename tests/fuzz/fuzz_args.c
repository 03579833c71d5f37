/* fuzz_args: libFuzzer target for the command line of `gatelab run`:
 * cli_check_run_args (every option of run, --arms and --at included, parsed
 * and checked without running anything; src/cli.c) and command_parse (the
 * --at STEP:CMD[:ARG][@ARM] words; src/command.c). Run it with
 *   make fuzz FUZZ_TARGETS=fuzz_args FUZZ_SECONDS=60
 * or reproduce one input from the repo root with
 *   build/fuzz/bin/fuzz_args CRASH_FILE
 *
 * Input: words separated by NUL or newline bytes, given as argv (after
 * "run", NULL-terminated as main's is). Each word is also parsed alone as
 * an --at spec. A failure must leave one non-empty line in the error (the
 * command line prints it as the only line on stderr); a success of
 * command_parse must describe the command in one non-empty line. The same
 * words checked twice must give the same answer. Never a crash or a leak;
 * nothing is opened or run. */
#include "cli.h"
#include "command.h"

#include "fuzz_util.h"

#define MAX_WORDS 256

static void check_command(const char *word)
{
    scripted_command sc;
    gl_error e = {{0}};
    if (command_parse(word, &sc, &e)) {
        fuzz_check_error(&e, NULL);
        return;
    }
    FUZZ_CHECK(memchr(sc.arm, '\0', sizeof sc.arm) != NULL, "arm not terminated");
    char what[128];
    memset(what, 0x55, sizeof what);
    command_describe(&sc.cmd, what, sizeof what);
    FUZZ_CHECK(memchr(what, '\0', sizeof what) != NULL, "description not terminated");
    FUZZ_CHECK(what[0] && !strchr(what, '\n'), "description of %s: '%s'", word, what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* one copy of the bytes, each separator turned into the end of a word */
    char *buf = xmalloc(size + 1);
    if (size)
        memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_WORDS + 1];
    int argc = 0;
    for (size_t i = 0, start = 0; i <= size && argc < MAX_WORDS; i++)
        if (i == size || buf[i] == '\0' || buf[i] == '\n') {
            buf[i] = '\0';
            if (i > start || i < size)   /* an empty word in the middle is a word */
                argv[argc++] = buf + start;
            start = i + 1;
        }
    argv[argc] = NULL;

    for (int i = 0; i < argc; i++)
        check_command(argv[i]);

    gl_error e = {{0}}, e2 = {{0}};
    int rc = cli_check_run_args(argc, argv, &e);
    FUZZ_CHECK(rc == 0 || rc == -1, "cli_check_run_args returned %d", rc);
    if (rc)
        fuzz_check_error(&e, NULL);
    int rc2 = cli_check_run_args(argc, argv, &e2);
    FUZZ_CHECK(rc == rc2 && (rc == 0 || strcmp(e.msg, e2.msg) == 0),
               "a second check answered otherwise: %d '%s' then %d '%s'", rc, e.msg, rc2, e2.msg);
    free(buf);
    return 0;
}
