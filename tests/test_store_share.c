/* test_store_share: one database shared with other connections (DESIGN
 * §11) — another connection holding the write lock while a batch waits and
 * retries, and readers that may not write (a read-only file or directory,
 * another user) reading without leaving a file behind. */
#include "store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* ---- another connection holding the write lock ------------------------- */

typedef struct {
    const char *path;
    long hold_ms;
    atomic_int held;        /* release: the lock is held (the main thread waits for it) */
    atomic_int released;    /* release: released_at is written */
    double released_at;
} lock_holder;

static void *hold_lock(void *arg)
{
    lock_holder *h = arg;
    sqlite3 *db = raw_open(h->path);
    raw_exec(db, "BEGIN IMMEDIATE");
    atomic_store_explicit(&h->held, 1, memory_order_release);
    nanosleep(&(struct timespec){h->hold_ms / 1000, (h->hold_ms % 1000) * 1000000L}, NULL);
    raw_exec(db, "COMMIT");
    h->released_at = gl_now();
    atomic_store_explicit(&h->released, 1, memory_order_release);
    sqlite3_close(db);
    return NULL;
}

static void start_holder(pthread_t *t, lock_holder *h, const char *path, long hold_ms)
{
    h->path = path;
    h->hold_ms = hold_ms;
    atomic_init(&h->held, 0);
    atomic_init(&h->released, 0);
    GL_ASSERT(pthread_create(t, NULL, hold_lock, h) == 0);
    while (!atomic_load_explicit(&h->held, memory_order_acquire))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
}

#define BATCH 2000

/* What the store thread does: the whole batch in one transaction; busy,
 * roll back and try again after a backoff. Returns the attempts that were
 * busy, or -1 (and the message) on any other failure. */
static int write_batch_retrying(store *s, int64_t run, const tel_record *recs, size_t n,
                                gl_error *err)
{
    int busy = 0;
    long backoff_ms = 5;
    for (;;) {
        int rc = store_begin(s, err);
        for (size_t i = 0; !rc && i < n; i++)
            rc = store_write(s, run, &recs[i], err);
        if (!rc)
            rc = store_commit(s, err);
        if (!rc)
            return busy;
        if (!store_busy(s))
            return -1;
        store_abort(s);
        busy++;
        nanosleep(&(struct timespec){0, backoff_ms * 1000000L}, NULL);
        backoff_ms = backoff_ms * 2 > 200 ? 200 : backoff_ms * 2;
    }
}

static void test_busy(void)
{
    char *path = tmp_path("busy.db");
    gl_error err = {{0}};
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "busy", &err);
    store_run_desc d = {.name = "soft", .mode = "soft", .k = 16, .seed = 1};
    int64_t run = store_run_begin(s, session, &d, &err);
    GL_ASSERT(run > 0);
    CHECK(store_set_busy_timeout(s, 20, &err) == 0, "a short busy timeout for the writer");

    tel_record *recs = xmalloc(BATCH * sizeof *recs);
    for (size_t i = 0; i < BATCH; i++)
        recs[i] = rec_step(i + 1, 3.0 - 0.001 * (double)i);
    pthread_t t;
    lock_holder h;
    start_holder(&t, &h, path, 800);
    double t0 = gl_now();
    CHECK(store_begin(s, &err) == -1 && store_busy(s) && strstr(err.msg, "locked"),
          "BEGIN while another connection holds the write lock: busy, after the short timeout "
          "(%.0f ms): %s", 1e3 * (gl_now() - t0), err.msg);
    CHECK(!store_in_transaction(s), "... and no transaction is left open");
    int busy = write_batch_retrying(s, run, recs, BATCH, &err);
    double t1 = gl_now();
    pthread_join(t, NULL);
    CHECK(busy > 0 && atomic_load_explicit(&h.released, memory_order_acquire) &&
              t1 >= h.released_at,
          "the batch waited (%d busy attempts) and was written after the lock was released "
          "(%.0f ms after)", busy, 1e3 * (t1 - h.released_at));
    sqlite3 *db = raw_open(path);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM metrics WHERE run = %lld AND key = 'train_loss'",
             (long long)run);
    CHECK(raw_int(db, sql) == BATCH, "no row lost: %lld of %d train_loss rows",
          (long long)raw_int(db, sql), BATCH);

    /* a failure that is not a lock is not busy */
    tel_record r = rec_step(1, 2.0);
    CHECK(store_write(s, run + 100, &r, &err) == -1 && !store_busy(s),
          "a foreign key failure is not 'busy': %s", err.msg);

    /* a rolled-back batch is replayed whole: the final status it rolled back
     * leaves the run live (its heartbeat is still refreshed) */
    snprintf(sql, sizeof sql, "UPDATE runs SET heartbeat = '2000-01-01T00:00:00.000Z'"
                              " WHERE id = %lld", (long long)run);
    raw_exec(db, sql);
    GL_ASSERT(store_begin(s, &err) == 0);
    r = rec_status(BATCH, RUN_FINISHED);
    GL_ASSERT(store_write(s, run, &r, &err) == 0);
    store_abort(s);
    GL_ASSERT(store_begin(s, &err) == 0 && store_commit(s, &err) == 0);
    snprintf(sql, sizeof sql, "SELECT status = 'running' AND heartbeat > '2001' FROM runs"
                              " WHERE id = %lld", (long long)run);
    CHECK(raw_int(db, sql) == 1, "a rolled-back final status leaves the run live, heartbeat "
                                 "refreshed");
    sqlite3_close(db);

    /* a second session opens and begins while the lock is held (up to the
     * open's busy timeout) */
    start_holder(&t, &h, path, 600);
    t0 = gl_now();
    store *s2 = store_open(path, STORE_EXISTING, &err);
    int64_t session2 = s2 ? store_session_begin(s2, "second", &err) : -1;
    double waited = gl_now() - t0;
    pthread_join(t, NULL);
    CHECK(s2 && session2 > session, "another session opens and begins while the write lock is "
                                    "held for 600 ms (after %.0f ms; %s)", 1e3 * waited,
          s2 ? "ok" : err.msg);
    store_close(s2);
    store_close(s);
    free(recs);
    free(path);
}

/* ---- readers that may not write ----------------------------------------- */

/* Opens with STORE_BROWSE and counts the runs: as uid NOBODY in a child
 * when running as root (root ignores permissions), in this process
 * otherwise. Returns the count, -1 with the message, -2 when privileges
 * could not be dropped. */
static int browse_runs(const char *path, char *msg, size_t size)
{
    msg[0] = '\0';
    int root = geteuid() == 0;
    int fd[2];
    GL_ASSERT(pipe(fd) == 0);
    fflush(stdout);   /* the child must not print this process's buffer again */
    pid_t pid = root ? fork() : 0;
    GL_ASSERT(pid >= 0);
    if (pid == 0) {
        if (root && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(3);
        gl_error err = {{0}};
        store *s = store_open(path, STORE_BROWSE, &err);
        size_t n = 0;
        char line[600];
        if (s && store_list_runs(s, 0, run_count, &n, &err) == 0)
            snprintf(line, sizeof line, "runs %zu", n);
        else
            snprintf(line, sizeof line, "error %s", err.msg);
        store_close(s);
        ssize_t w = write(fd[1], line, strlen(line));
        (void)w;
        if (root)
            _exit(0);
    }
    close(fd[1]);
    char line[600];
    ssize_t n = read(fd[0], line, sizeof line - 1);
    line[n > 0 ? n : 0] = '\0';
    close(fd[0]);
    if (root) {
        int status;
        GL_ASSERT(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) == 3)
            return -2;
    }
    if (strncmp(line, "runs ", 5) == 0)
        return atoi(line + 5);
    snprintf(msg, size, "%s", strncmp(line, "error ", 6) == 0 ? line + 6 : line);
    return -1;
}

static int owned_by_nobody(const char *dir)
{
    DIR *d = opendir(dir);
    GL_ASSERT(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        n += lstat(p, &st) == 0 && st.st_uid == NOBODY;
    }
    closedir(d);
    return n;
}

static void test_readers(void)
{
    GL_ASSERT(chmod(tmpdir, 0755) == 0);
    char msg[600];
    gl_error err = {{0}};

    /* a database in a read-only directory, closed (no -wal, no -shm) */
    char *dir = tmp_path("rodir");
    GL_ASSERT(mkdir(dir, 0755) == 0);
    char *path = tmp_path("rodir/r.db");
    store *s = store_open(path, STORE_CREATE, &err);
    GL_ASSERT(s);
    int64_t session = store_session_begin(s, "r", &err);
    GL_ASSERT(fill_arm(s, session, 0, GATE_SOFT, 1, RUN_FINISHED) > 0);
    store_close(s);
    GL_ASSERT(chmod(path, 0444) == 0 && chmod(dir, 0555) == 0);
    file_snap snap = snap_take(path, dir);
    int n = browse_runs(path, msg, sizeof msg);
    if (n == -2) {
        SKIP("a reader of a database in a read-only directory: cannot drop privileges here");
        snap_same(&snap);
        GL_ASSERT(chmod(dir, 0755) == 0 && chmod(tmpdir, 0700) == 0);
        free(path);
        free(dir);
        return;
    }
    CHECK(n == 1, "a reader reads a database in a read-only directory (%d runs%s%s)", n,
          msg[0] ? ": " : "", msg);
    CHECK(snap_same(&snap), "... and creates nothing there");

    /* a file it may not write in a directory it may write */
    GL_ASSERT(chmod(dir, 0777) == 0);
    snap = snap_take(path, dir);
    n = browse_runs(path, msg, sizeof msg);
    CHECK(n == 1 && snap_same(&snap) && owned_by_nobody(dir) == 0,
          "a reader of a file it may not write, in a writable directory: reads it, leaves no "
          "-wal/-shm (%d runs%s%s)", n, msg[0] ? ": " : "", msg);

    /* a live writer: its -wal holds a run not yet in the file */
    if (geteuid() == 0) {
        sqlite3 *db = raw_open(path);
        raw_exec(db, "PRAGMA wal_autocheckpoint = 0");
        raw_session(db, 2);
        raw_run(db, 2, 2, 0, "random", "random", "{}", "running", 0, 1.5);
        snap = snap_take(path, dir);
        n = browse_runs(path, msg, sizeof msg);
        CHECK(n == 2 && snap_same(&snap) && owned_by_nobody(dir) == 0,
              "while a writer has it open, a reader sees the rows in its WAL and creates nothing "
              "(%d runs%s%s)", n, msg[0] ? ": " : "", msg);

        /* a -wal without its -shm cannot be read without making one */
        char *dir2 = tmp_path("walonly");
        GL_ASSERT(mkdir(dir2, 0777) == 0);
        char *copy = tmp_path("walonly/r.db");
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s-wal' '%s-wal' && chmod 444 '%s'", path,
                 copy, path, copy, copy);
        GL_ASSERT(system(cmd) == 0);
        sqlite3_close(db);
        snap = snap_take(copy, dir2);
        n = browse_runs(copy, msg, sizeof msg);
        CHECK(n == -1 && strstr(msg, "-wal file is there without") && snap_same(&snap),
              "a -wal left without its -shm: refused, nothing created: %s", msg);
        free(copy);
        free(dir2);
    }
    GL_ASSERT(chmod(dir, 0755) == 0 && chmod(path, 0644) == 0 && chmod(tmpdir, 0700) == 0);
    free(path);
    free(dir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_test_share_XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));

    test_busy();
    test_readers();

    rm_tree(tmpdir);
    return check_finish();
}
