/* store_json: reads the "argv" array of a run's config JSON with SQLite's own
 * JSON functions (an in-memory connection), so `resume` needs no JSON parser
 * of its own. */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

int store_json_argv(const char *json, char ***argv_out, int *argc_out, gl_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char **argv = NULL;
    int argc = 0, cap = 0, rc = -1;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        gl_fail(err, "sqlite3: cannot open an in-memory database");
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT value FROM json_each(?1, '$.argv') ORDER BY key", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC) != SQLITE_OK) {
        gl_fail(err, "run config: %s", sqlite3_errmsg(db));
        goto out;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (!v) {
            gl_fail(err, "run config: argv holds a non-string");
            goto out;
        }
        if (argc + 1 >= cap) {
            cap = cap ? 2 * cap : 32;
            argv = gl_grow(argv, (size_t)argc, (size_t)cap, sizeof *argv);
        }
        argv[argc++] = xstrdup(v);
    }
    if (step != SQLITE_DONE) {
        gl_fail(err, "run config: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (!argc) {
        gl_fail(err, "run config has no argv; this run cannot be resumed");
        goto out;
    }
    argv[argc] = NULL;
    *argv_out = argv;
    *argc_out = argc;
    argv = NULL;
    rc = 0;
out:
    if (argv) {
        for (int i = 0; i < argc; i++)
            free(argv[i]);
        free(argv);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
