/* args: whole-word number parsing for the command lines of cli and
 * experiment. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

int args_size(const char *flag, const char *s, size_t lo, size_t hi, size_t *out, gl_error *e)
{
    if (!s)
        return gl_fail(e, "%s: missing value", flag);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '-' || *s == '+' || end == s || *end)
        return gl_fail(e, "%s %s: not a whole number", flag, s);
    if (errno == ERANGE)
        return gl_fail(e, "%s %s: out of range (at most %zu)", flag, s, hi);
    if (v < lo || v > hi)
        return gl_fail(e, "%s %s: must be between %zu and %zu", flag, s, lo, hi);
    *out = (size_t)v;
    return 0;
}

int args_float(const char *flag, const char *s, double lo, double hi, float *out, gl_error *e)
{
    if (!s)
        return gl_fail(e, "%s: missing value", flag);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return gl_fail(e, "%s %s: not a number", flag, s);
    if (v < lo || v > hi)
        return gl_fail(e, "%s %s: must be between %g and %g", flag, s, lo, hi);
    *out = (float)v;
    return 0;
}

size_t args_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}
