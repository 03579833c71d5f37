/* common: error formatting, allocation wrappers, the fatal path, and where
 * SIGINT/SIGTERM are delivered. */
#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static gl_fatal_hook fatal_hook;
static pthread_t main_thread;   /* set once, before any thread of ours starts */
static volatile sig_atomic_t stop_ignored[2];   /* SIGINT, SIGTERM were SIG_IGN at start */

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
    }
    return -1;
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

/* A thread that exists before main runs (OpenBLAS starts its pool in a library
 * constructor) has SIGINT and SIGTERM unblocked, so the kernel may hand it a
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
    if (stop_ignored[sig == SIGTERM])
        return;
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
    struct sigaction old;
    if (sigaction(SIGINT, &sa, &old) == 0)
        stop_ignored[0] = old.sa_handler == SIG_IGN;
    if (sigaction(SIGTERM, &sa, &old) == 0)
        stop_ignored[1] = old.sa_handler == SIG_IGN;
}
