/* test_store_files: the files the store must refuse without changing a
 * byte — text, a truncated file, another application's SQLite file, a newer
 * schema, a directory — and the read-only file or directory it opens for
 * reading only (as another user when the test runs as root). */
#include "store_fixture.h"

/* ---- files it must refuse ----------------------------------------------- */

static void expect_refused(const char *label, const char *path, store_open_mode mode,
                           const char *want)
{
    gl_error err = {{0}};
    store *s = store_open(path, mode, &err);
    CHECK(!s && strcmp(err.msg, want) == 0, "%s: \"%s\"", label, err.msg);
    store_close(s);
}

/* store_open run as user `nobody` in a child: the only way for root to meet
 * the permissions it ignores. Returns 1 when refused with `want` in the
 * message, 0 when not, -1 when privileges could not be dropped. */
static int refused_as_nobody(const char *path, store_open_mode mode, const char *want, char *msg,
                             size_t size)
{
    int fd[2];
    GL_ASSERT(pipe(fd) == 0);
    pid_t pid = fork();
    GL_ASSERT(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(3);
        gl_error err = {{0}};
        store *s = store_open(path, mode, &err);
        ssize_t w = write(fd[1], err.msg, strlen(err.msg));
        (void)w;
        store_close(s);
        _exit(s ? 1 : 0);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], msg, size - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(fd[0]);
    int status;
    GL_ASSERT(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 3)
        return -1;
    return WEXITSTATUS(status) == 0 && strstr(msg, want) != NULL;
}

/* A read-only case: in this process when permissions bind it; as root, a
 * note (after checking that access(W_OK) indeed succeeds) and the same
 * open again as `nobody` in a child. */
static void check_read_only(const char *label, const char *path, const char *check_path,
                            store_open_mode mode, const char *want, file_snap *snap)
{
    if (access(check_path, W_OK) != 0) {
        gl_error err = {{0}};
        store *s = store_open(path, mode, &err);
        CHECK(!s && strstr(err.msg, want), "%s: \"%s\"", label, err.msg);
        store_close(s);
    } else if (geteuid() != 0) {
        /* not root and yet writable: the fixture did not make the case */
        CHECK(0, "%s: access(%s, W_OK) succeeds although this is not root", label, check_path);
    } else {
        printf("  note: root ignores permissions; running the %s case as uid %d\n", label, NOBODY);
        char msg[512];
        int got = refused_as_nobody(path, mode, want, msg, sizeof msg);
        if (got < 0)
            SKIP("%s: running as root, and privileges cannot be dropped here", label);
        else
            CHECK(got == 1, "%s as uid %d: \"%s\"", label, NOBODY, msg);
    }
    if (snap)
        CHECK(snap_same(snap), "%s: file and directory unchanged", label);
}

static void test_bad_files(void)
{
    char *dir = tmp_path("bad");
    GL_ASSERT(mkdir(dir, 0755) == 0);
    char want[512];

    /* not SQLite: text, and a file shorter than a header */
    char *text = tmp_path("bad/notes.db");
    char junk[300];
    memset(junk, 'x', sizeof junk);
    write_bytes(text, junk, sizeof junk);
    file_snap snap = snap_take(text, dir);
    snprintf(want, sizeof want, "%s: not a SQLite database", text);
    expect_refused("a text file", text, STORE_EXISTING, want);
    CHECK(snap_same(&snap), "text file: bytes and directory unchanged");
    char *tiny = tmp_path("bad/tiny.db");
    write_bytes(tiny, "SQLite format 3", 16);
    snap = snap_take(tiny, dir);
    snprintf(want, sizeof want, "%s: not a SQLite database", tiny);
    expect_refused("a 16-byte file", tiny, STORE_CREATE, want);
    CHECK(snap_same(&snap), "short file: bytes and directory unchanged");

    /* SQLite, but someone else's */
    char *other = tmp_path("bad/other.db");
    sqlite3 *db = raw_open(other);
    raw_exec(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                 "INSERT INTO notes (body) VALUES ('keep me');");
    sqlite3_close(db);
    snap = snap_take(other, dir);
    snprintf(want, sizeof want, "%s: not a gatelab database", other);
    expect_refused("an SQLite file with tables and no application_id", other, STORE_CREATE, want);
    CHECK(snap_same(&snap), "foreign SQLite file: bytes and directory unchanged");
    char *app = tmp_path("bad/app.db");
    db = raw_open(app);
    raw_exec(db, "PRAGMA application_id = 1234; CREATE TABLE t (x);");
    sqlite3_close(db);
    snap = snap_take(app, dir);
    snprintf(want, sizeof want, "%s: not a gatelab database (application_id 0x000004d2)", app);
    expect_refused("an SQLite file of another application", app, STORE_CREATE, want);
    CHECK(snap_same(&snap), "other application's file: bytes and directory unchanged");

    /* an empty file and an empty SQLite database are adopted */
    char *empty = tmp_path("bad/empty.db");
    write_bytes(empty, "", 0);
    gl_error err = {{0}};
    store *s = store_open(empty, STORE_EXISTING, &err);
    CHECK(s != NULL, "an empty file becomes a gatelab database (%s)", s ? "" : err.msg);
    store_close(s);

    /* newer schema */
    char *newer = tmp_path("bad/newer.db");
    s = store_open(newer, STORE_CREATE, &err);
    GL_ASSERT(s);
    store_close(s);
    db = raw_open(newer);
    raw_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    snap = snap_take(newer, dir);
    snprintf(want, sizeof want,
             "%s: schema version 99 is newer than this gatelab (%d); upgrade gatelab", newer,
             STORE_SCHEMA_VERSION);
    expect_refused("a newer schema", newer, STORE_EXISTING, want);
    CHECK(snap_same(&snap), "newer database: bytes and directory unchanged");

    snprintf(want, sizeof want, "%s: not a database file (a directory)", dir);
    expect_refused("a directory", dir, STORE_CREATE, want);

    /* read-only file in a writable directory */
    char *rofile = tmp_path("bad/ro-file.db");
    s = store_open(rofile, STORE_CREATE, &err);
    GL_ASSERT(s);
    store_close(s);
    GL_ASSERT(chmod(dir, 0777) == 0 && chmod(tmpdir, 0755) == 0 && chmod(rofile, 0444) == 0);
    snap = snap_take(rofile, dir);
    check_read_only("read-only file", rofile, rofile, STORE_EXISTING,
                    "cannot write the database: read-only file", &snap);
    GL_ASSERT(chmod(rofile, 0644) == 0);

    /* writable file in a read-only directory, and creating in one */
    char *rodir = tmp_path("bad/ro-dir");
    GL_ASSERT(mkdir(rodir, 0755) == 0);
    char *indir = tmp_path("bad/ro-dir/gatelab.db");
    s = store_open(indir, STORE_CREATE, &err);
    GL_ASSERT(s);
    store_close(s);
    GL_ASSERT(chmod(indir, 0666) == 0 && chmod(rodir, 0555) == 0);
    snap = snap_take(indir, rodir);
    check_read_only("database in a read-only directory", indir, rodir, STORE_EXISTING,
                    "read-only directory", &snap);
    char *fresh = tmp_path("bad/ro-dir/fresh.db");
    check_read_only("new database in a read-only directory", fresh, rodir, STORE_CREATE,
                    "read-only directory", NULL);
    CHECK(access(fresh, F_OK) != 0, "no file created in the read-only directory");
    GL_ASSERT(chmod(rodir, 0755) == 0 && chmod(dir, 0755) == 0 && chmod(tmpdir, 0700) == 0);

    free(fresh);
    free(indir);
    free(rodir);
    free(rofile);
    free(newer);
    free(empty);
    free(app);
    free(other);
    free(tiny);
    free(text);
    free(dir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_test_files_XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));

    test_bad_files();

    rm_tree(tmpdir);
    return check_finish();
}
