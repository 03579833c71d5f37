/* common: error formatting, allocation wrappers, the fatal path, where the
 * signals that stop a session (SIGINT, SIGTERM, SIGHUP) are delivered, and
 * mkdir -p. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef GL_GIT_REV
#define GL_GIT_REV "unknown"
#endif

const char *gl_git_rev(void)
{
    return GL_GIT_REV;
}

static gl_fatal_hook fatal_hook;
static pthread_t main_thread;   /* set once, before any thread of ours starts */

/* The screen must give the terminal back before the last line is printed. */
static void run_fatal_hook(void)
{
    if (fatal_hook)
        fatal_hook();
}

int gl_fail(gl_error *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        /* one line, whatever was quoted into it (SQLite quotes a damaged
         * schema's text; a path may hold a newline or an escape sequence) */
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = ' ';
    }
    return -1;
}

/* gl_fail keeping errno as the failure left it (for callers that print it) */
static int mkdir_fail(gl_error *err, int e, const char *dir, const char *why)
{
    gl_fail(err, "cannot create directory %s: %s", dir, why);
    errno = e;
    return -1;
}

int gl_mkdir_p(const char *dir, gl_error *err)
{
    char buf[PATH_MAX];
    if (!*dir)
        return mkdir_fail(err, ENOENT, "''", "empty path");
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return mkdir_fail(err, ENAMETOOLONG, dir, "path too long");
    /* each prefix that ends at a '/' (the leading one of an absolute path
     * aside), then the whole path */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        const char c = *p;
        *p = '\0';
        struct stat st;
        if (stat(buf, &st) != 0) {
            if (errno != ENOENT || (mkdir(buf, 0777) != 0 && errno != EEXIST))
                return mkdir_fail(err, errno, buf, strerror(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            return mkdir_fail(err, ENOTDIR, buf, "not a directory");
        }
        *p = c;
        if (c == '\0')
            return 0;
    }
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        run_fatal_hook();
        fprintf(stderr, "gatelab: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        run_fatal_hook();
        fprintf(stderr, "gatelab: out of memory (%zu x %zu bytes)\n", count, size);
        abort();
    }
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

void *gl_grow(void *old, size_t n, size_t newcap, size_t elem)
{
    GL_ASSERT(newcap >= n && newcap > 0 && newcap <= SIZE_MAX / elem);
    (void)n;   /* realloc keeps every old byte, so the first n elements too */
    void *p = realloc(old, newcap * elem);
    if (!p) {
        run_fatal_hook();
        fprintf(stderr, "gatelab: out of memory (%zu bytes)\n", newcap * elem);
        abort();
    }
    return p;
}

void gl_strbuf_put(gl_strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = gl_grow(b->p, b->len, cap, 1);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void gl_set_fatal_hook(gl_fatal_hook hook)
{
    fatal_hook = hook;
}

void gl_fatal(const char *file, int line, const char *what)
{
    run_fatal_hook();
    fprintf(stderr, "gatelab: internal error at %s:%d: %s\n", file, line, what);
    abort();
}

double gl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double gl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* The signals that stop a session, and which of them the shell had us
 * ignore at start (a background job's SIGINT, nohup's SIGHUP). */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSTOP (sizeof stop_signals / sizeof stop_signals[0])
static volatile sig_atomic_t stop_ignored[NSTOP];
static gl_stop_hook volatile stop_hook;   /* gl_set_stop_hook, main thread */

static size_t stop_index(int sig)
{
    size_t i = 0;
    while (i + 1 < NSTOP && stop_signals[i] != sig)
        i++;
    return i;
}

/* A thread that exists before main runs (OpenBLAS starts its pool in a library
 * constructor) has the stop signals unblocked, so the kernel may hand it a
 * Ctrl-C meant for the session loop, which takes them with sigtimedwait on the
 * main thread while every thread of ours blocks them. Sent on to the main
 * thread, the signal waits there until taken; on the main thread itself (no
 * session is waiting) what was in force at start applies: the default action,
 * or nothing for a signal the shell had us ignore (a background job). */
static void route_to_main(int sig)
{
    if (!pthread_equal(pthread_self(), main_thread)) {
        pthread_kill(main_thread, sig);
        return;
    }
    if (stop_ignored[stop_index(sig)])
        return;
    gl_stop_hook hook = stop_hook;
    if (hook)
        hook(sig);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

void gl_route_stop_signals(void)
{
    main_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = route_to_main;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < NSTOP; i++) {
        struct sigaction old;
        if (sigaction(stop_signals[i], NULL, &old))
            continue;
        stop_ignored[i] = !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN;
        /* nohup asked for a process that outlives its terminal: SIGHUP stays
         * ignored, and no session waits for it (a blocked signal is queued
         * even when ignored, so sigtimedwait would still see it) */
        if (stop_signals[i] == SIGHUP && stop_ignored[i])
            continue;
        sigaction(stop_signals[i], &sa, NULL);
    }
}

void gl_set_stop_hook(gl_stop_hook hook)
{
    stop_hook = hook;
}

void gl_ignore_hangup(void)
{
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGHUP, &ign, NULL);
    stop_ignored[stop_index(SIGHUP)] = 1;   /* as under nohup from here on */
}

void gl_stop_signal_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < NSTOP; i++)
        if (stop_signals[i] != SIGHUP || !stop_ignored[i])
            sigaddset(set, stop_signals[i]);
}

const char *gl_signal_name(int sig)
{
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    case SIGXFSZ: return "SIGXFSZ";
    default: return "a signal";
    }
}
