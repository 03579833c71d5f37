/* common: error formatting, allocation wrappers and the fatal path. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static gl_fatal_hook fatal_hook;

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
