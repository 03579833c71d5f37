/* store: the handle on the SQLite database of DESIGN §8 — opening (a
 * foreign, newer or read-only file is refused before anything is written),
 * pragmas, migrations (store_schema.c holds their SQL), the statements
 * prepared once here and finalized in store_close, and the bind/step helpers
 * every store file uses. Writes, transactions and crash detection are in
 * store_write.c, reads in store_read.c. Times are ISO-8601 UTC text
 * ("2024-05-01T12:00:00.123Z"); a NaN or infinity is never stored. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers shared with store_write.c and store_read.c ---- */

void store_bind_i64(sqlite3_stmt *st, int i, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(st, i, v);
}

int store_step_i64(sqlite3_stmt *st, int64_t v)
{
    int rc = sqlite3_bind_int64(st, 1, v);
    return rc == SQLITE_OK ? sqlite3_step(st) : rc;
}

void store_bind_u64(sqlite3_stmt *st, int i, uint64_t v, int *rc)
{
    store_bind_i64(st, i, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v, rc);
}

void store_bind_f64(sqlite3_stmt *st, int i, double v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_double(st, i, v);
}

void store_bind_text(sqlite3_stmt *st, int i, const char *v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

void store_bind_blob(sqlite3_stmt *st, int i, const void *v, size_t n, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_blob64(st, i, v, n, SQLITE_TRANSIENT);
}

int store_fail(store *s, gl_error *err, int rc, const char *what)
{
    s->last_rc = rc;
    /* the connection's message belongs to the last call that failed; a code
     * it does not match (a bind) gets the generic text of its own code */
    const char *msg = (sqlite3_errcode(s->db) & 0xff) == (rc & 0xff) ? sqlite3_errmsg(s->db)
                                                                     : sqlite3_errstr(rc);
    return gl_fail(err, "%s: %s: %s", s->path, what, msg);
}

int store_prepare(store *s, const char *sql, sqlite3_stmt **st, gl_error *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return store_fail(s, err, rc, "prepare");
    }
    return 0;
}

int store_end(store *s, sqlite3_stmt *st, int rc, gl_error *err, const char *what)
{
    int ok = rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW;
    int out = ok ? 0 : store_fail(s, err, rc, what);
    /* reset repeats the last step's error code, already handled above;
     * clear_bindings cannot fail */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return out;
}

int store_exec(store *s, sqlite3_stmt *st, int rc, gl_error *err, const char *what)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = SQLITE_MISUSE;   /* a statement run for effect returned rows */
    return store_end(s, st, rc, err, what);
}

void store_col_text(sqlite3_stmt *st, int i, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, size, "%s", t ? (const char *)t : "");
}

uint64_t store_col_u64(sqlite3_stmt *st, int i)
{
    int64_t v = sqlite3_column_int64(st, i);
    return v < 0 ? 0 : (uint64_t)v;
}

double store_col_f64(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* ---- time ---- */

/* wall_ms (Unix ms; <= 0 or non-finite: now) -> "YYYY-MM-DDTHH:MM:SS.mmmZ" */
void store_iso_time(double wall_ms, char out[32])
{
    if (!isfinite(wall_ms) || wall_ms <= 0)
        wall_ms = gl_wall_ms();
    long long ms = llround(wall_ms);
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", day, (int)(ms % 1000));
}

/* ---- opening: checks that write nothing ---- */

static const char *parent_dir(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
    return out;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int newer_fail(gl_error *err, const char *path, int64_t version)
{
    return gl_fail(err, "%s: schema version %lld is newer than this gatelab (%d); upgrade gatelab",
                   path, (long long)version, STORE_SCHEMA_VERSION);
}

/* The 100-byte SQLite header, read with plain I/O before SQLite touches the
 * file: magic, application_id (offset 68), user_version (offset 60). An
 * empty file is an empty database. A header not yet checkpointed from the
 * WAL can lag; the same checks run again through SQLite. */
static int check_header(const char *path, off_t size, gl_error *err)
{
    if (size == 0)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gl_fail(err, "%s: cannot read: %s", path, strerror(errno));
    unsigned char h[100];
    ssize_t n = read(fd, h, sizeof h);
    int e = errno;
    close(fd);
    if (n < 0)
        return gl_fail(err, "%s: cannot read: %s", path, strerror(e));
    if (n < (ssize_t)sizeof h || memcmp(h, "SQLite format 3", 16) != 0)
        return gl_fail(err, "%s: not a SQLite database", path);
    uint32_t app = be32(h + 68), version = be32(h + 60);
    if (app != 0 && app != STORE_APPLICATION_ID)
        return gl_fail(err, "%s: not a gatelab database (application_id 0x%08x)", path, app);
    if (app == STORE_APPLICATION_ID && version > STORE_SCHEMA_VERSION)
        return newer_fail(err, path, version);
    return 0;
}

/* The file (when it exists) and its directory (for the -wal and -shm files)
 * must be writable. */
static int check_writable(const char *path, const char *dir, int exists, gl_error *err)
{
    if (exists && access(path, W_OK) != 0) {
        if (errno == EROFS)
            return gl_fail(err, "%s: cannot write: read-only file system", path);
        return gl_fail(err, "%s: cannot write the database: read-only file (%s)", path,
                       strerror(errno));
    }
    if (access(dir, W_OK) != 0) {
        if (errno == EROFS)
            return gl_fail(err, "%s: cannot write in %s: read-only file system", path, dir);
        return gl_fail(err, "%s: cannot write in %s: read-only directory (%s)", path, dir,
                       strerror(errno));
    }
    return 0;
}

/* One integer from a query with no parameters. */
static int query_int(store *s, const char *sql, int64_t *out, gl_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    int out_rc = 0;
    if (rc == SQLITE_NOTADB)
        out_rc = gl_fail(err, "%s: not a SQLite database", s->path);
    else if (rc != SQLITE_OK)
        out_rc = store_fail(s, err, rc, "cannot read");
    sqlite3_finalize(st);
    return out_rc;
}

typedef struct {
    int64_t app, version, tables;
} db_identity;

static int read_identity(store *s, db_identity *id, gl_error *err)
{
    if (query_int(s, "PRAGMA application_id", &id->app, err) ||
        query_int(s, "PRAGMA user_version", &id->version, err) ||
        query_int(s, "SELECT count(*) FROM sqlite_master", &id->tables, err))
        return -1;
    return 0;
}

static int check_identity(store *s, const db_identity *id, gl_error *err)
{
    if (id->app != STORE_APPLICATION_ID && (id->app != 0 || id->tables > 0))
        return gl_fail(err, "%s: not a gatelab database", s->path);
    if (id->app == STORE_APPLICATION_ID && id->version > STORE_SCHEMA_VERSION)
        return newer_fail(err, s->path, id->version);
    return 0;
}

/* ---- opening: what writes ---- */

static int exec_script(store *s, const char *sql, gl_error *err, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return 0;
    s->last_rc = rc;
    gl_fail(err, "%s: %s: %s", s->path, what, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return -1;
}

static int set_pragmas(store *s, gl_error *err)
{
    if (exec_script(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", err,
                    "set pragmas"))
        return -1;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    char mode[16] = "";
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            store_col_text(st, 0, mode, sizeof mode);
            rc = SQLITE_OK;
        }
    }
    int out = rc != SQLITE_OK ? store_fail(s, err, rc, "set WAL journal mode") : 0;
    sqlite3_finalize(st);
    if (!out && strcmp(mode, "wal") != 0)
        out = gl_fail(err, "%s: cannot use WAL journal mode (journal_mode is %s)", s->path, mode);
    return out;
}

/* 32 lowercase hex digits from /dev/urandom: the database's id. */
static int random_id(const store *s, char out[33], gl_error *err)
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b);
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)sizeof b)
        return gl_fail(err, "%s: cannot make the database id: /dev/urandom: %s", s->path,
                       n < 0 ? strerror(e) : "short read");
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

/* Gives the database an id unless it has one (schema 4 and later). */
static int stamp_id(store *s, gl_error *err)
{
    char id[33];
    if (random_id(s, id, err))
        return -1;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO db_info (key, value) VALUES ('id', ?1)"
                                " ON CONFLICT (key) DO NOTHING",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_fail(s, err, rc, "set the database id");
    store_bind_text(st, 1, id, &rc);
    int out = store_exec(s, st, rc, err, "set the database id");
    sqlite3_finalize(st);
    return out;
}

static int read_id(store *s, gl_error *err)
{
    sqlite3_stmt *st;
    s->db_id[0] = '\0';
    int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM db_info WHERE key = 'id'", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return store_fail(s, err, rc, "read the database id");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        store_col_text(st, 0, s->db_id, sizeof s->db_id);
    int out = store_end(s, st, rc, err, "read the database id");
    sqlite3_finalize(st);
    return out;
}

/* Applies migrations[version..], stamps the ids and gives the database its
 * id, all in one transaction; the version is read again under the write
 * lock in case another process migrated first. Foreign keys are off around
 * it (the pragma is a no-op inside a transaction): rebuilding runs (version
 * 4) drops the old table, which would otherwise delete every child row. The
 * rebuild must not break a reference: foreign_key_check finds no more
 * violations after than before (a file edited with foreign keys off may
 * already hold some; they are kept as they are). */
static int migrate(store *s, gl_error *err)
{
    if (exec_script(s, "PRAGMA foreign_keys = OFF", err, "begin migration") ||
        exec_script(s, "BEGIN IMMEDIATE", err, "begin migration"))
        goto fail;
    db_identity id;
    int64_t broken_before, broken_after;
    static const char count_broken[] = "SELECT count(*) FROM pragma_foreign_key_check";
    if (read_identity(s, &id, err) || check_identity(s, &id, err) ||
        query_int(s, count_broken, &broken_before, err))
        goto fail;
    int64_t from = id.app == STORE_APPLICATION_ID ? id.version : 0;
    for (int64_t v = from; v < STORE_SCHEMA_VERSION; v++) {
        char what[64];
        snprintf(what, sizeof what, "migration to schema version %lld", (long long)v + 1);
        if (exec_script(s, store_migrations[v], err, what))
            goto fail;
    }
    if (query_int(s, count_broken, &broken_after, err))
        goto fail;
    if (broken_after > broken_before) {
        gl_fail(err, "%s: migration to schema version %d would break %lld foreign key references",
                s->path, STORE_SCHEMA_VERSION, (long long)(broken_after - broken_before));
        goto fail;
    }
    char stamp[128];
    snprintf(stamp, sizeof stamp, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
             STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
    if (stamp_id(s, err) || exec_script(s, stamp, err, "set schema version") ||
        exec_script(s, "COMMIT", err, "commit migration"))
        goto fail;
    return exec_script(s, "PRAGMA foreign_keys = ON", err, "set pragmas");
fail:
    if (store_in_transaction(s))
        exec_script(s, "ROLLBACK", NULL, "rollback migration");
    exec_script(s, "PRAGMA foreign_keys = ON", NULL, "set pragmas");
    return -1;
}

static int prepare_all(store *s, gl_error *err)
{
    for (int i = 0; i < SW_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, store_write_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->sw[i], NULL);
        if (rc != SQLITE_OK)
            return store_fail(s, err, rc, "prepare");
    }
    for (int i = 0; i < SR_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, store_read_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->sr[i], NULL);
        if (rc != SQLITE_OK)
            return store_fail(s, err, rc, "prepare");
    }
    return 0;
}

/* ---- opening read-only ---- */

/* path as a "file:" URI with the query appended: '%', '?' and '#' escaped,
 * an absolute path behind an empty authority ("file:///..."). */
static char *path_uri(const char *path, const char *query)
{
    size_t n = strlen(path), cap = 3 * n + strlen(query) + 16;
    char *u = xmalloc(cap), *p = u;
    p += snprintf(p, cap, "file:%s", path[0] == '/' ? "//" : "");
    for (const char *c = path; *c; c++) {
        if (*c == '%' || *c == '?' || *c == '#')
            p += sprintf(p, "%%%02X", (unsigned char)*c);
        else
            *p++ = *c;
    }
    snprintf(p, cap - (size_t)(p - u), "?%s", query);
    return u;
}

/* A reader that may not write must not create the -wal and -shm files
 * either: they would be left behind, owned by the reader (or it could not
 * open at all in a read-only directory). See "Read-Only Databases" in
 * https://www.sqlite.org/wal.html. With no -wal file (or an empty one and no
 * -shm), every commit is in the database file and no connection has it
 * open: it is read as immutable (no locks, no WAL) — a writer that starts
 * meanwhile writes to a new WAL, which this short read ignores. With both
 * files there, SQLite reads through them (a -shm it cannot write is copied
 * to private memory). A -wal without its -shm cannot be read without
 * creating one: refused. */
static int open_readonly(store *s, const char *path, gl_error *err)
{
    char wal[PATH_MAX + 8], shm[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    struct stat ws, ss;
    int has_wal = stat(wal, &ws) == 0, has_shm = stat(shm, &ss) == 0;
    const char *query;
    if (!has_wal || (ws.st_size == 0 && !has_shm))
        query = "mode=ro&immutable=1";
    else if (has_shm)
        query = "mode=ro";
    else
        return gl_fail(err, "%s: cannot read it without write access: its -wal file is there "
                            "without its -shm (a writer stopped without closing it); open it "
                            "once with write access", path);
    char *uri = path_uri(path, query);
    int rc = sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    free(uri);
    if (rc == SQLITE_OK)
        return 0;
    if (s->db)
        return store_fail(s, err, rc, "cannot open read-only");
    return gl_fail(err, "%s: cannot open read-only: %s", path, sqlite3_errstr(rc));
}

/* ---- open / close ---- */

store *store_open(const char *path, store_open_mode mode, gl_error *err)
{
    if (!path || !*path) {
        gl_fail(err, "no database path given");
        return NULL;
    }
    char dir[PATH_MAX];
    parent_dir(path, dir, sizeof dir);
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT) {
        gl_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (!exists && mode != STORE_CREATE) {
        gl_fail(err, "no database at %s", path);
        return NULL;
    }
    if (exists && !S_ISREG(st.st_mode)) {
        gl_fail(err, "%s: not a database file (%s)", path,
                S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
        return NULL;
    }
    gl_error mk;
    if (!exists && gl_mkdir_p(dir, &mk)) {
        gl_fail(err, "%s: %s", path, mk.msg);
        return NULL;
    }
    if (exists && check_header(path, st.st_size, err))
        return NULL;
    int readonly = 0;
    if (check_writable(path, dir, exists, mode == STORE_BROWSE ? NULL : err)) {
        if (mode != STORE_BROWSE)
            return NULL;
        readonly = 1;
    }

    store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->pid = (int64_t)getpid();
    if (gethostname(s->host, sizeof s->host) != 0)
        snprintf(s->host, sizeof s->host, "?");
    s->host[sizeof s->host - 1] = '\0';

    s->readonly = readonly;
    int rc;
    if (readonly) {
        if (open_readonly(s, path, err))
            goto fail;
    } else {
        rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE), NULL);
        if (rc != SQLITE_OK) {
            if (s->db)
                store_fail(s, err, rc, "cannot open");
            else
                gl_fail(err, "%s: cannot open: %s", path, sqlite3_errstr(rc));
            goto fail;
        }
    }
    if (store_set_busy_timeout(s, STORE_BUSY_TIMEOUT_MS, err))
        goto fail;
    db_identity id;
    if (read_identity(s, &id, err) || check_identity(s, &id, err))
        goto fail;
    if (readonly) {
        /* every schema version reads the same tables; only the views and
         * db_info came later, and a reader asking for them gets "no such" */
        if (id.app != STORE_APPLICATION_ID || id.version < 1) {
            gl_fail(err, "%s: read-only, and not yet a gatelab database (an empty file)", path);
            goto fail;
        }
        if (prepare_all(s, err) || (id.version >= 4 && read_id(s, err)))
            goto fail;
        s->version = id.version;
        return s;
    }
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        gl_fail(err, "%s: cannot write the database: read-only", path);
        goto fail;
    }
    /* from here on the file is ours to write */
    if (set_pragmas(s, err))
        goto fail;
    if ((id.app != STORE_APPLICATION_ID || id.version < STORE_SCHEMA_VERSION) && migrate(s, err))
        goto fail;
    if (read_id(s, err))
        goto fail;
    if (!s->db_id[0] && (stamp_id(s, err) || read_id(s, err)))
        goto fail;   /* someone deleted the row: a new id, as for a new file */
    if (prepare_all(s, err) || store_recheck_owners(s, err))
        goto fail;
    s->version = STORE_SCHEMA_VERSION;
    return s;
fail:
    store_close(s);
    return NULL;
}

int store_recheck_owners(store *s, gl_error *err)
{
    if (s->readonly)
        return 0;
    return store_detect_crashes(s, err) || store_command_reject_orphans(s, err) ? -1 : 0;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->db) {
        store_rollback(s);   /* what was not committed is dropped, as on a crash */
        /* Copy the WAL into the file without blocking anyone, and skip the
         * exclusive checkpoint SQLite would take on close: a sqlite3 shell
         * reading at that moment would get "database is locked". A reader
         * opened read-only has no WAL of its own to copy. */
        if (!s->readonly)
            sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        for (int i = 0; i < SW_COUNT; i++)
            sqlite3_finalize(s->sw[i]);
        for (int i = 0; i < SR_COUNT; i++)
            sqlite3_finalize(s->sr[i]);
        store_command_finalize(s);
        int rc = sqlite3_close(s->db);
        GL_ASSERT(rc == SQLITE_OK);   /* every statement is finalized above */
    }
    free(s->live);
    free(s->live_tx);
    free(s->path);
    free(s);
}

size_t store_crashed_on_open(const store *s)
{
    return s->crashed_on_open;
}

const char *store_db_id(const store *s)
{
    return s->db_id;
}

int store_set_busy_timeout(store *s, int ms, gl_error *err)
{
    int rc = sqlite3_busy_timeout(s->db, ms);
    return rc == SQLITE_OK ? 0 : store_fail(s, err, rc, "set busy timeout");
}

int store_busy(const store *s)
{
    int primary = s->last_rc & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}
