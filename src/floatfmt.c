/* floatfmt: the shortest round-tripping decimal of a float (floatfmt.h). */
#include "floatfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* %g writes a whole number of four or more digits that it can shorten with
 * an exponent (86400 -> 8.64e+04, 100 -> 1e+02); a person types the digits.
 * Whole numbers below 1e15 (every digit exact in a double) are written
 * plainly; small numbers keep their exponent (1e-05 is how one types it). */
static void plain_whole(double v, char *out, size_t size)
{
    if (strstr(out, "e+") && fabs(v) < 1e15 && v == floor(v))
        snprintf(out, size, "%.0f", v);
}

const char *floatfmt_shortest(float v, char *out, size_t size)
{
    /* a NaN never compares equal to itself: written once, as %g has it */
    if (isnan(v)) {
        snprintf(out, size, "%g", (double)v);
        return out;
    }
    /* nine significant digits identify every float (FLT_DECIMAL_DIG) */
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(out, size, "%.*g", digits, (double)v);
        if (strtof(out, NULL) == v) {
            plain_whole(v, out, size);
            return out;
        }
    }
    return out;
}

const char *floatfmt_shortest_double(double v, char *out, size_t size)
{
    if (isnan(v)) {
        snprintf(out, size, "%g", v);
        return out;
    }
    /* seventeen significant digits identify every double (DBL_DECIMAL_DIG) */
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, size, "%.*g", digits, v);
        if (strtod(out, NULL) == v) {
            plain_whole(v, out, size);
            return out;
        }
    }
    return out;
}
