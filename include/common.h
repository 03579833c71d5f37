/* common: error messages carried back to the caller, out-of-memory policy,
 * always-on invariants. Every module includes this and nothing else shared. */
#ifndef GATELAB_COMMON_H
#define GATELAB_COMMON_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define GL_VERSION "0.1.0"
/* The git revision of the source the binary was built from, stamped into
 * common.o by the Makefile (-DGL_GIT_REV=...), "unknown" without one;
 * recorded with every session. */
const char *gl_git_rev(void);

/* Expected failures (bad input, I/O) return -1 and leave one line here; only
 * main prints it. */
typedef struct {
    char msg[512];
} gl_error;

/* Formats into e (if not NULL) and returns -1, so callers can `return gl_fail(...)`.
 * Control characters become spaces: a message is always one line. */
int gl_fail(gl_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Out of memory is not an expected failure: abort with a message. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
char *xstrdup(const char *s);

/* Growing an array: a new allocation of newcap elements of elem bytes
 * holding the first n elements of old, which is freed. The caller picks
 * newcap (doubling, from a first size of its own). */
void *gl_grow(void *old, size_t n, size_t newcap, size_t elem);

/* A growable byte buffer, NUL-terminated once anything was put ({0} is
 * empty; the caller frees p). The JSON writer and the safetensors header
 * parser build on it. */
typedef struct {
    char *p;
    size_t len, cap;
} gl_strbuf;

/* Appends s[0..n) (doubling the room from 256 bytes). */
void gl_strbuf_put(gl_strbuf *b, const char *s, size_t n);

/* Called before a fatal exit so a curses screen can restore the terminal. */
typedef void (*gl_fatal_hook)(void);
void gl_set_fatal_hook(gl_fatal_hook hook);
_Noreturn void gl_fatal(const char *file, int line, const char *what);

#define GL_ASSERT(cond) \
    do { if (!(cond)) gl_fatal(__FILE__, __LINE__, #cond); } while (0)

/* Called once by main: SIGINT, SIGTERM and SIGHUP landing on a thread that
 * does not block them (a library's) are sent on to the main thread. A SIGHUP
 * ignored at start (nohup) stays ignored. */
void gl_route_stop_signals(void);
/* Called in the signal handler on the main thread, just before a stop signal
 * that no session takes ends the process (its default action): the last
 * words of whatever cannot stop cleanly then. Async-signal-safe only
 * (write, kill); NULL: none. */
typedef void (*gl_stop_hook)(int sig);
void gl_set_stop_hook(gl_stop_hook hook);
/* The signals a session loop takes with sigtimedwait to stop cleanly:
 * SIGINT, SIGTERM, and SIGHUP unless it was ignored at start. */
void gl_stop_signal_set(sigset_t *set);
/* A detached session (no terminal left to hang up): SIGHUP is ignored from
 * now on, as under nohup, and leaves gl_stop_signal_set. */
void gl_ignore_hangup(void);
/* "SIGINT", "SIGHUP", ...: for the one line that says what stopped us. */
const char *gl_signal_name(int sig);

/* mkdir -p dir: every missing directory of the path is created (mode 0777
 * less the umask). -1 with errno set and a message naming the directory
 * that could not be made (ENOTDIR when a part is not a directory,
 * ENAMETOOLONG past PATH_MAX). */
int gl_mkdir_p(const char *dir, gl_error *err);

/* Monotonic wall clock in seconds. */
double gl_now(void);
/* Unix time in milliseconds, for records people read later. */
double gl_wall_ms(void);

#endif
