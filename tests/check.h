/* check: the tiny test harness. Each CHECK prints one line; a test binary
 * exits non-zero if any failed and prints "N passed, N failed" at the end
 * (", N skipped" when a SKIP was reported), which tests/run.sh adds up. */
#ifndef GATELAB_CHECK_H
#define GATELAB_CHECK_H

#include <stdio.h>

static int check_passed, check_failed, check_skipped;

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

/* A check that cannot run here (root ignores permissions, privileges
 * cannot be dropped): counted as skipped, never as passed. */
#define SKIP(...)                                                          \
    do {                                                                   \
        check_skipped++;                                                   \
        printf("  skip ");                                                 \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        fflush(stdout);                                                    \
    } while (0)

static inline int check_finish(void)
{
    if (check_skipped)
        printf("%d passed, %d failed, %d skipped\n", check_passed, check_failed, check_skipped);
    else
        printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
