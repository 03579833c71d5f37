/* live_detach: a session leaves its terminal and trains on (DESIGN §12).
 *
 * The `d` key forks. Only the calling thread survives fork() and SQLite
 * forbids carrying a connection across one, so every thread is first brought
 * to a safe point and joined: each arm's at a step boundary with its trainer,
 * pause and schedule in memory (arm_park), its pool's workers with it
 * (pool_park), and the store thread once it has committed every record put
 * so far (live_store_park, which closes the connection). Then the process
 * forks. The parent waits until the child has taken the runs over — so that
 * nobody opening the database meanwhile finds their owner gone and marks
 * them crashed — and ends without touching them. The child, in a session of
 * its own (setsid) with stdin on /dev/null and stdout and stderr in the log
 * file, reopens the store, adopts the runs (owner pid and heartbeat) and
 * starts every thread again from exactly the step it reached, so the results
 * are the same bits as a run that never detached. OpenBLAS (pthreads build)
 * shuts its own workers down through pthread_atfork before the fork and
 * starts them again when next needed; gatelab runs it single-threaded
 * anyway (pool.h).
 *
 * A hangup (SIGHUP: the terminal closed, ssh dropped) needs no fork: nobody
 * waits for the prompt, so the same process closes the screen, moves its
 * output to the log file and ignores hangups from then on. */
#include "live_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int live_log_path(const live *lv, char *out, size_t n)
{
    char cwd[1024] = "";
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    const char *db = lv->cfg->db_path;
    int w;
    if (!db || lv->session <= 0) {
        w = snprintf(out, n, "%s/gatelab-%ld.log", cwd, (long)getpid());
    } else {
        char d[1024], b[1024];
        snprintf(d, sizeof d, "%s", db);
        snprintf(b, sizeof b, "%s", db);
        const char *dir = dirname(d);
        char *name = basename(b), *dot = strrchr(name, '.');
        if (dot && dot != name)
            *dot = '\0';
        long long s = (long long)lv->session;
        if (dir[0] == '/')
            w = snprintf(out, n, "%s/%s-session-%lld.log", dir, name, s);
        else if (strcmp(dir, ".") == 0)
            w = snprintf(out, n, "%s/%s-session-%lld.log", cwd, name, s);
        else
            w = snprintf(out, n, "%s/%s/%s-session-%lld.log", cwd, dir, name, s);
    }
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int open_log(const live *lv, char *path, size_t n, gl_error *e)
{
    if (live_log_path(lv, path, n))
        return gl_fail(e, "detach: the log file's path is too long");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return gl_fail(e, "detach: log file %s: %s", path, strerror(errno));
    return fd;
}

/* stdin from /dev/null, stdout and stderr into the log (fd, consumed). A
 * terminal still open on another descriptor (the screen's) is closed too: a
 * process holding it would keep an ssh connection from closing. */
static void redirect_output(int fd)
{
    fflush(stdout);
    fflush(stderr);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        close(null);
    }
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    /* what failed on the old terminal (EIO after a hangup) is forgotten */
    clearerr(stdout);
    clearerr(stderr);
    clearerr(stdin);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int ttys[64], nttys = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        int f = atoi(de->d_name);
        if (f > STDERR_FILENO && f != dirfd(d) && isatty(f) && nttys < 64)
            ttys[nttys++] = f;
    }
    closedir(d);
    for (int i = 0; i < nttys; i++)
        close(ttys[i]);
}

/* Every arm at a step boundary (or ended), its records drained to the
 * observer and the store, its thread joined. A fork adopted while draining
 * is parked in the next round. */
static void park_arms(live *lv, const live_observer *obs, live_result *res)
{
    for (;;) {
        int settled = 1;
        size_t n = lv->narms;
        for (size_t i = 0; i < n; i++) {
            arm *a = lv->arms[i];
            if (arm_done(a) || arm_parked(a))
                continue;
            arm_park(a);
            settled = 0;
        }
        /* when settled, every record was pushed before done or parked
         * (acquire): this drain takes the last of them */
        live_drain(lv, obs, res, 0);
        if (settled && lv->narms == n)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    for (size_t i = 0; i < lv->narms; i++) {
        arm_join(lv->arms[i]);
        if (arm_done(lv->arms[i]))
            arm_park_ended(lv->arms[i]);
    }
}

/* The parked arms' threads again. One that cannot start is marked done (its
 * run stays running in the database until this process ends, then is found
 * crashed); the first failure is returned. */
static int restart_arms(live *lv, gl_error *e)
{
    int rc = 0;
    for (size_t i = 0; i < lv->narms; i++) {
        arm *a = lv->arms[i];
        gl_error ae;
        if (!arm_parked(a) || !arm_start(a, &ae))
            continue;
        arm_mark_done(a);
        if (!rc)
            rc = gl_fail(e, "detach: %s", ae.msg);
    }
    return rc;
}

/* The store again after a park. On failure nothing more is stored (the
 * rings go, so puts are no-ops) and the store counts as failed, which stops
 * the session with the message. */
static int reopen_store(live *lv, gl_error *e)
{
    if (!lv->cfg->db_path || live_store_reopen(lv, e) == 0)
        return 0;
    ring_destroy(lv->store_ring);
    byte_ring_destroy(lv->store_bytes);
    lv->store_ring = NULL;
    lv->store_bytes = NULL;
    store_close(lv->st);
    lv->st = NULL;
    snprintf(lv->store_error, sizeof lv->store_error, "%s", e->msg);
    /* partner: the acquire load in live_run */
    atomic_store_explicit(&lv->store_failed, 1, memory_order_release);
    return -1;
}

/* Back as before the park, in this process: a fork that failed. */
static int resume_here(live *lv, gl_error *e)
{
    gl_error se;
    int rc = reopen_store(lv, &se);
    if (rc)
        gl_fail(e, "%s", se.msg);
    if (restart_arms(lv, rc ? &se : e))
        rc = -1;
    return rc;
}

int live_detach(live *lv, const live_observer *obs, live_result *res, sigset_t *sigs,
                gl_error *e)
{
    char log[sizeof res->log_path];
    if (!lv->st)
        return gl_fail(e, "detach: nothing is stored (no database), so nothing could "
                          "re-attach");
    int fd = open_log(lv, log, sizeof log, e);
    if (fd < 0)
        return -1;
    int hand[2];
    if (pipe2(hand, O_CLOEXEC)) {
        close(fd);
        return gl_fail(e, "detach: pipe: %s", strerror(errno));
    }
    park_arms(lv, obs, res);
    live_store_park(lv);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(fd);
        close(hand[0]);
        close(hand[1]);
        resume_here(lv, e);
        return gl_fail(e, "detach: fork: %s", strerror(err));
    }
    if (pid > 0) {
        close(fd);
        close(hand[1]);
        char c = 0;
        ssize_t got;
        do
            got = read(hand[0], &c, 1);
        while (got < 0 && errno == EINTR);
        close(hand[0]);
        if (got == 1 && c == 'k') {
            res->detached = LIVE_DETACH_PARENT;
            res->detached_pid = (long)pid;
            snprintf(res->log_path, sizeof res->log_path, "%s", log);
            return LIVE_DETACH_PARENT;
        }
        /* the child could not take the session over and ended: this
         * process goes on with it, and says so */
        waitpid(pid, NULL, 0);
        resume_here(lv, e);
        return gl_fail(e, "detach: the background process could not take the session over "
                          "(its reason is in %s)", log);
    }
    /* the child: a session of its own, no terminal */
    close(hand[0]);
    setsid();
    redirect_output(fd);
    gl_ignore_hangup();
    sigdelset(sigs, SIGHUP);
    fprintf(stderr, "gatelab: session %lld detached from its terminal; training goes on in "
                    "process %ld\n", (long long)lv->session, (long)getpid());
    if (reopen_store(lv, e)) {
        fprintf(stderr, "gatelab: %s\n", e->msg);
        fflush(stderr);
        _exit(1);   /* the parent takes the session back */
    }
    ssize_t w;
    do
        w = write(hand[1], "k", 1);
    while (w < 0 && errno == EINTR);
    close(hand[1]);
    res->detached = LIVE_DETACH_CHILD;
    snprintf(res->log_path, sizeof res->log_path, "%s", log);
    if (obs->on_detach)
        obs->on_detach(obs->ctx, lv, LIVE_DETACH_CHILD, log);
    if (restart_arms(lv, e))
        fprintf(stderr, "gatelab: %s\n", e->msg);
    return LIVE_DETACH_CHILD;
}

int live_hangup(live *lv, const live_observer *obs, live_result *res, sigset_t *sigs,
                gl_error *e)
{
    char log[sizeof res->log_path];
    int fd = open_log(lv, log, sizeof log, e);
    if (fd < 0)
        return -1;
    gl_ignore_hangup();
    sigdelset(sigs, SIGHUP);
    if (obs->on_detach)
        obs->on_detach(obs->ctx, lv, LIVE_DETACH_HANGUP, log);
    redirect_output(fd);
    fprintf(stderr, "gatelab: SIGHUP: the terminal is gone; session %lld trains on in process "
                    "%ld with its output here\n", (long long)lv->session, (long)getpid());
    res->detached = LIVE_DETACH_HANGUP;
    snprintf(res->log_path, sizeof res->log_path, "%s", log);
    return 0;
}
