/* floatfmt: a float as the decimal a person would have typed. Settings are
 * floats; printed with %.9g, 3e-3 reads back as 0.00300000003 (the float
 * nearest 0.003, to nine digits). The shortest %g form that strtof reads
 * back to the same float is exact and is what the user wrote. */
#ifndef GATELAB_FLOATFMT_H
#define GATELAB_FLOATFMT_H

#include <stddef.h>

/* Room for any float this way ("-1.17549435e-38" and the NUL). */
#define FLOATFMT_SIZE 24

/* Writes into out[size] (size >= FLOATFMT_SIZE) the first of %.1g .. %.9g
 * that strtof reads back to exactly v (%.9g always does), and returns out.
 * A whole number below 1e15 is written with its digits (86400, not
 * 8.64e+04). A NaN or infinity is written as %g writes it ("nan", "inf"). */
const char *floatfmt_shortest(float v, char *out, size_t size);

/* The same for a double (seconds of a pause): the first of %.1g .. %.17g
 * that strtod reads back to exactly v, into out[size] (size >=
 * FLOATFMT_DOUBLE_SIZE). */
#define FLOATFMT_DOUBLE_SIZE 32
const char *floatfmt_shortest_double(double v, char *out, size_t size);

#endif
