/* check: the tiny test harness. Each CHECK prints one line; a test binary
 * exits non-zero if any failed and prints "N passed, N failed" at the end,
 * which tests/run.sh adds up. */
#ifndef GATELAB_CHECK_H
#define GATELAB_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed++;                                                \
            printf("  ok   ");                                             \
        } else {                                                           \
            check_failed++;                                                \
            printf("  FAIL (%s:%d) ", __FILE__, __LINE__);                 \
        }                                                                  \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        fflush(stdout);                                                    \
    } while (0)

static inline int check_finish(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
