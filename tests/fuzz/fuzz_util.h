/* fuzz_util: what the libFuzzer targets of tests/fuzz/ share — a scratch
 * directory of their own per process (under $TMPDIR, else /tmp; removed at
 * exit), whole-file writes, and the check every failure message must pass.
 * Static inline functions: each target is one translation unit. Anything
 * unexpected (a write that fails, a broken invariant) prints one line and
 * aborts, which libFuzzer reports as a crash with its input saved. */
#ifndef GATELAB_FUZZ_UTIL_H
#define GATELAB_FUZZ_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_scratch[256];

/* prints what broke and aborts (the fuzzer saves the input) */
#define FUZZ_CHECK(cond, ...)                                                          \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static inline int fuzz_rm_entry(const char *path, const struct stat *st, int flag,
                                struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)   /* the scratch directory itself stays */
        remove(path);
    return 0;
}

/* Empties the scratch directory (files, links, subdirectories). */
static inline void fuzz_scratch_clear(void)
{
    if (fuzz_scratch[0])
        nftw(fuzz_scratch, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fuzz_scratch_remove(void)
{
    fuzz_scratch_clear();
    if (fuzz_scratch[0])
        remove(fuzz_scratch);
}

/* Creates $TMPDIR/gatelab-NAME.XXXXXX once per process; removed at exit. */
static inline const char *fuzz_scratch_init(const char *name)
{
    if (fuzz_scratch[0])
        return fuzz_scratch;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(fuzz_scratch, sizeof fuzz_scratch, "%s/gatelab-%s.XXXXXX", tmp, name);
    if (!mkdtemp(fuzz_scratch)) {
        perror(fuzz_scratch);
        abort();
    }
    atexit(fuzz_scratch_remove);
    return fuzz_scratch;
}

/* path = scratch/name, into buf[size] */
static inline const char *fuzz_path(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", fuzz_scratch, name);
    FUZZ_CHECK(n > 0 && (size_t)n < size, "path %s/%s too long", fuzz_scratch, name);
    return buf;
}

static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL, "cannot create %s", path);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size, "cannot write %s", path);
    FUZZ_CHECK(fclose(f) == 0, "cannot write %s", path);
}

/* A failure's message: one non-empty line that names `name` (when not NULL). */
static inline void fuzz_check_error(const gl_error *e, const char *name)
{
    FUZZ_CHECK(memchr(e->msg, '\0', sizeof e->msg) != NULL, "message not terminated");
    FUZZ_CHECK(e->msg[0] != '\0', "failure with an empty message");
    FUZZ_CHECK(strchr(e->msg, '\n') == NULL, "message of several lines: %s", e->msg);
    FUZZ_CHECK(!name || strstr(e->msg, name), "message does not name %s: %s", name, e->msg);
}

#endif
