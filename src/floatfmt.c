/* floatfmt: the shortest round-tripping decimal of a float (floatfmt.h). */
#include "floatfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
        if (strtof(out, NULL) == v)
            return out;
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
        if (strtod(out, NULL) == v)
            return out;
    }
    return out;
}
