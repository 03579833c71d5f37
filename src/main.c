/* main: entry point; everything else lives in cli.c. What belongs to the
 * process as a whole is here: the signals that would kill it on a failed
 * write, joining and leaving an MPI job, and the last check that what went
 * to stdout arrived. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>

#include "cli.h"
#include "world.h"

/* Output lost to a full disk or a closed pipe leaves no trace unless someone
 * looks, so after everything is written a failed stdout turns success into
 * exit status 1 with one line (gnulib's close_stdout does the same). A
 * command that already failed keeps its status and its own message: a
 * session whose reader went away has said so. */
static int close_stdout(int status)
{
    int pending = __fpending(stdout) != 0, had_error = ferror(stdout);
    errno = 0;
    int close_failed = fclose(stdout) != 0;
    int err = errno;
    /* stdout closed before we started (>&-) and never written: nothing lost */
    if (close_failed && err == EBADF && !pending && !had_error)
        close_failed = 0;
    if (!close_failed && !had_error)
        return status;
    if (status != 0)
        return status;
    /* an error seen earlier leaves errno unknown unless the close failed too */
    if (close_failed && err)
        fprintf(stderr, "gatelab: stdout: %s\n", strerror(err));
    else
        fprintf(stderr, "gatelab: stdout: write error\n");
    return 1;
}

int main(int argc, char **argv)
{
    /* A reader that went away (`| head`) and a file-size limit (ulimit -f)
     * must reach us as write errors, EPIPE and EFBIG, that the normal error
     * paths handle (stop the session, fail the run): as signals they would
     * kill the process and leave its runs `crashed` and its temporaries
     * behind. No command runs another program, so nothing inherits this. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    /* under mpirun: the job, joined before anything else runs (include/world.h) */
    world w;
    gl_error e;
    if (world_init(&w, &argc, &argv, &e)) {
        fprintf(stderr, "gatelab: %s\n", e.msg);
        return 1;
    }
    int status = cli_main(argc, argv, &w);
    world_finalize(&w);
    return close_stdout(status);
}
