/* experiment_farm: measurements over the ranks (include/experiment_farm.h).
 * The messages go over a private link (mpi_link.c, a duplicate of the job's
 * communicator whose errors return):
 *   open   every other rank -> 0: hello (ready, pid, host, why not);
 *          0 -> all: bcast whether every rank is ready
 *   batch  0 -> rank r: a head (TASKS, n) and r's share of the tasks, in
 *          task order (blocking sends: small, and r is waiting for them);
 *          r -> 0: a verdict (ok, or the first failure) and n results,
 *          each v, the length of its tail, the tail
 *   next   0 -> rank r: a head GO or STOP with rank 0's exit status
 * Every struct is plain data of fixed size, the same binary on every rank. */
#include "experiment_farm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_link.h"

enum { FARM_TASKS = 1, FARM_GO, FARM_STOP };

typedef struct {
    int32_t ok, pid;
    char host[64];
    char err[sizeof(gl_error)];
} farm_hello;

typedef struct {
    int32_t ok;
    char err[sizeof(gl_error)];
} farm_ready;

typedef struct {
    int32_t what;            /* FARM_TASKS, FARM_GO, FARM_STOP */
    int32_t status;          /* STOP: rank 0's exit status */
    uint32_t n;              /* TASKS: tasks that follow */
    uint32_t pad;
} farm_head;

typedef struct {
    int32_t ok;              /* 0: err says why, out is not to be read */
    uint32_t n;
    char err[sizeof(gl_error)];
} farm_verdict;

typedef struct {
    int pid;
    int local;               /* on rank 0's host: kill(pid, 0) sees it gone */
    char host[64];
    char gone[200];          /* "gatelab: rank R (pid P on H) died ...; ", for say_gone */
} farm_peer;

struct experiment_farm {
    mpi_link *link;          /* NULL: a job of one */
    int rank, size;
    char host[64];
    farm_peer *peers;        /* rank 0: who the others are, to see one die */
    experiment_task_fn fn;
    void *ctx;
    uint8_t *buf;            /* what a rank received last */
    size_t cap;
};

double *experiment_task_out_more(experiment_task_out *out, size_t n)
{
    GL_ASSERT(!out->more);   /* one tail per result */
    out->more = xcalloc(n ? n : 1, sizeof *out->more);
    out->nmore = n;
    return out->more;
}

void experiment_task_outs_free(experiment_task_out *out, size_t n)
{
    for (size_t i = 0; out && i < n; i++) {
        free(out[i].more);
        out[i].more = NULL;
        out[i].nmore = 0;
    }
}

static int compute(experiment_farm *f, const experiment_task *t, experiment_task_out *out,
                   gl_error *e)
{
    memset(out, 0, sizeof *out);
    int rc = f->fn(f->ctx, t, out, e);
    if (rc)
        experiment_task_outs_free(out, 1);
    return rc;
}

/* ---- a result on the wire: v, the tail's length, the tail ---- */

static void result_append(mpi_link *l, const experiment_task_out *o)
{
    const uint64_t nmore = o->nmore;
    mpi_link_append(l, 0, o->v, sizeof o->v);
    mpi_link_append(l, 0, &nmore, sizeof nmore);
    if (nmore)
        mpi_link_append(l, 0, o->more, nmore * sizeof *o->more);
}

/* One result from m[*at..len) into o (its tail allocated); -1 when the
 * bytes end before it does. */
static int result_take(const uint8_t *m, size_t len, size_t *at, experiment_task_out *o)
{
    uint64_t nmore;
    o->more = NULL;
    o->nmore = 0;
    if (len - *at < sizeof o->v + sizeof nmore)
        return -1;
    memcpy(o->v, m + *at, sizeof o->v);
    memcpy(&nmore, m + *at + sizeof o->v, sizeof nmore);
    *at += sizeof o->v + sizeof nmore;
    if (nmore > (len - *at) / sizeof *o->more)
        return -1;
    if (nmore) {
        memcpy(experiment_task_out_more(o, (size_t)nmore), m + *at,
               (size_t)nmore * sizeof *o->more);
        *at += (size_t)nmore * sizeof *o->more;
    }
    return 0;
}

/* Whether rank r's process is gone (only seen on this host: kill 0).
 * Async-signal-safe (say_gone calls it). */
static int peer_gone(const experiment_farm *f, int r)
{
    const farm_peer *p = &f->peers[r];
    return p->local && kill(p->pid, 0) && errno == ESRCH;
}

static void gone_text(const experiment_farm *f, int r, char *buf, size_t n)
{
    snprintf(buf, n, "rank %d (pid %d on %s) died during the measurements", r, f->peers[r].pid,
             f->peers[r].host);
}

/* Rank r is gone: MPI cannot end in order now (world_finalize leaves it,
 * links close without waiting), and rank 0 fails naming it. */
static int fail_gone(const experiment_farm *f, int r, gl_error *e)
{
    world_mark_lost();
    char what[160];
    gone_text(f, r, what, sizeof what);
    return gl_fail(e, "%s", what);
}

/* Rank 0, while its farm is open with other ranks: what say_gone reads. */
static experiment_farm *volatile hooked;

/* The stop hook (gl_set_stop_hook) of rank 0 while its farm is open. When a
 * rank dies, mpirun sends the others SIGCONT, then SIGTERM and SIGKILL
 * odls_base_sigkill_timeout seconds apart (1 s by default). Rank 0 sees the
 * death where it waits (collect, experiment_farm_next); computing its own
 * share (a distillation, an evaluation) it cannot, and the SIGTERM ends it
 * there, in the middle of a computation it cannot leave: its last words name
 * the rank, as the farm would have (the experiment row stays `running`, as
 * after any interruption of the measurements). A rank on another host is
 * not seen: mpirun's own lines name it. Async-signal-safe: kill, write,
 * strlen. */
static void say_gone(int sig)
{
    const experiment_farm *f = hooked;
    if (!f || world_is_lost())   /* lost: the death was already said */
        return;
    int saved = errno;
    const char *name = gl_signal_name(sig);
    const char *tail = " ends rank 0; the experiment is left running\n";
    for (int r = 1; r < f->size; r++)
        if (peer_gone(f, r)) {
            ssize_t w = write(STDERR_FILENO, f->peers[r].gone, strlen(f->peers[r].gone));
            w = write(STDERR_FILENO, name, strlen(name));
            w = write(STDERR_FILENO, tail, strlen(tail));
            (void)w;
        }
    errno = saved;
}

experiment_farm *experiment_farm_open(const world *w, int ready, const gl_error *why_not,
                                      experiment_task_fn fn, void *ctx, gl_error *e)
{
    if (!ready && (!w || w->size < 2)) {
        gl_fail(e, "%s", why_not->msg);
        return NULL;
    }
    experiment_farm *f = xcalloc(1, sizeof *f);
    f->fn = fn;
    f->ctx = ctx;
    f->size = 1;
    if (!w || w->size < 2)
        return f;
    f->rank = w->rank;
    f->size = w->size;
    if (gethostname(f->host, sizeof f->host))
        f->host[0] = 0;
    f->host[sizeof f->host - 1] = 0;
    /* collective: every rank opens its link here */
    if (!(f->link = mpi_link_open(w, e))) {
        free(f);
        return NULL;
    }
    farm_ready go = {.ok = 1};
    int rc = 0;
    if (f->rank) {
        farm_hello h = {.ok = ready, .pid = (int32_t)getpid()};
        snprintf(h.host, sizeof h.host, "%s", f->host);
        snprintf(h.err, sizeof h.err, "%s", ready ? "" : why_not->msg);
        rc = mpi_link_send(f->link, 0, &h, sizeof h, e);
    } else {
        f->peers = xcalloc((size_t)f->size, sizeof *f->peers);
        if (!ready) {
            go.ok = 0;
            snprintf(go.err, sizeof go.err, "%s", why_not->msg);
        }
        for (int r = 1; r < f->size && !rc; r++) {
            size_t n = 0;
            farm_hello h;
            if (mpi_link_recv(f->link, r, &f->buf, &f->cap, &n, e)) {
                rc = -1;
                break;
            }
            if (n != sizeof h) {
                rc = gl_fail(e, "rank %d: a hello of %zu bytes", r, n);
                break;
            }
            memcpy(&h, f->buf, sizeof h);
            h.host[sizeof h.host - 1] = 0;
            h.err[sizeof h.err - 1] = 0;
            farm_peer *p = &f->peers[r];
            p->pid = h.pid;
            p->local = h.pid > 0 && strcmp(h.host, f->host) == 0;
            snprintf(p->host, sizeof p->host, "%s", h.host);
            if (!h.ok && go.ok) {
                go.ok = 0;
                snprintf(go.err, sizeof go.err, "rank %d: %.480s", r, h.err);
            }
        }
    }
    if (!rc)
        rc = mpi_link_bcast(f->link, &go, sizeof go, e);
    if (!rc && !go.ok) {
        go.err[sizeof go.err - 1] = 0;
        rc = gl_fail(e, "%s", go.err);
    }
    if (rc) {
        experiment_farm_close(f);
        return NULL;
    }
    if (f->rank == 0) {
        for (int r = 1; r < f->size; r++) {
            char what[160];
            gone_text(f, r, what, sizeof what);
            snprintf(f->peers[r].gone, sizeof f->peers[r].gone, "gatelab: %s; ", what);
        }
        hooked = f;
        gl_set_stop_hook(say_gone);
    }
    return f;
}

void experiment_farm_close(experiment_farm *f)
{
    if (!f)
        return;
    if (hooked == f) {
        gl_set_stop_hook(NULL);
        hooked = NULL;
    }
    /* a rank lost (a session or the farm found it): nothing collective can end */
    mpi_link_close(f->link, world_is_lost());
    free(f->peers);
    free(f->buf);
    free(f);
}

int experiment_farm_bcast(experiment_farm *f, void *buf, size_t n, gl_error *e)
{
    return f->link ? mpi_link_bcast(f->link, buf, n, e) : 0;
}

/* Rank 0: rank r's verdict and results for its `n` tasks, polled so that a
 * rank that died is noticed instead of waited for. */
static int collect(experiment_farm *f, int r, const size_t *mine, size_t n,
                   experiment_task_out *out, gl_error *e)
{
    const uint8_t *m = NULL;
    size_t len = 0;
    int got;
    while ((got = mpi_link_take(f->link, r, &m, &len)) == 0) {
        if (peer_gone(f, r))
            return fail_gone(f, r, e);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    if (got < 0)
        return gl_fail(e, "rank %d: its results did not arrive", r);
    farm_verdict v;
    if (len < sizeof v)
        return gl_fail(e, "rank %d: a result message of %zu bytes", r, len);
    memcpy(&v, m, sizeof v);
    v.err[sizeof v.err - 1] = 0;
    if (!v.ok)
        return gl_fail(e, "rank %d: %.480s", r, v.err);
    if (v.n != n)
        return gl_fail(e, "rank %d: %u results for %zu tasks", r, v.n, n);
    size_t at = sizeof v;
    for (size_t i = 0; i < n; i++)
        if (result_take(m, len, &at, &out[mine[i]]))
            return gl_fail(e, "rank %d: result %zu of %zu is cut short", r, i + 1, n);
    if (at != len)
        return gl_fail(e, "rank %d: %zu bytes after its %zu results", r, len - at, n);
    return 0;
}

int experiment_farm_run(experiment_farm *f, const experiment_task *tasks, size_t n,
                        experiment_task_out *out, gl_error *e)
{
    GL_ASSERT(f->rank == 0);
    if (!f->link) {
        for (size_t i = 0; i < n; i++)
            if (compute(f, &tasks[i], &out[i], e))
                return -1;
        return 0;
    }
    /* task i on rank i % size: each rank's share, in task order */
    size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
    experiment_task *share = xcalloc(n ? n : 1, sizeof *share);
    int rc = 0;
    for (int r = 1; r < f->size && !rc; r++) {
        size_t k = 0;
        for (size_t i = (size_t)r; i < n; i += (size_t)f->size)
            share[k++] = tasks[i];
        farm_head h = {.what = FARM_TASKS, .n = (uint32_t)k};
        size_t bytes = sizeof h + k * sizeof *share;
        uint8_t *msg = xmalloc(bytes);
        memcpy(msg, &h, sizeof h);
        if (k)
            memcpy(msg + sizeof h, share, k * sizeof *share);
        rc = mpi_link_send(f->link, r, msg, bytes, e);
        free(msg);
    }
    /* ours while the others compute theirs */
    for (size_t i = 0; i < n && !rc; i += (size_t)f->size)
        rc = compute(f, &tasks[i], &out[i], e);
    /* every rank's results are taken, even after a failure here: the next
     * batch must not read this one's */
    gl_error first;
    int failed = rc;
    if (rc)
        first = *e;
    for (int r = 1; r < f->size; r++) {
        size_t k = 0;
        for (size_t i = (size_t)r; i < n; i += (size_t)f->size)
            idx[k++] = i;
        gl_error pe;
        if (collect(f, r, idx, k, out, &pe) && !failed) {
            failed = -1;
            first = pe;
        }
    }
    free(idx);
    free(share);
    if (failed)
        return gl_fail(e, "%s", first.msg);
    return 0;
}

int experiment_farm_next(experiment_farm *f, int status, gl_error *e)
{
    GL_ASSERT(f->rank == 0);
    /* a rank that died while this one computed its own share (its pid gone
     * before mpirun's SIGTERM came): the next session's setup would wait
     * for it with the stop signals blocked, so the others stop instead */
    int rc = 0;
    for (int r = 1; f->link && r < f->size; r++) {
        if (!peer_gone(f, r))
            continue;
        world_mark_lost();
        if (!status) {
            rc = fail_gone(f, r, e);
            status = 1;
        }
    }
    farm_head h = {.what = status ? FARM_STOP : FARM_GO, .status = status};
    for (int r = 1; f->link && r < f->size; r++)
        if (!peer_gone(f, r) && mpi_link_send(f->link, r, &h, sizeof h, e))
            return -1;
    return rc;
}

/* One batch of n tasks (after the head in f->buf) computed and answered. */
static int serve_batch(experiment_farm *f, size_t n, gl_error *e)
{
    experiment_task *t = xcalloc(n ? n : 1, sizeof *t);
    if (n)
        memcpy(t, f->buf + sizeof(farm_head), n * sizeof *t);
    experiment_task_out *out = xcalloc(n ? n : 1, sizeof *out);
    farm_verdict v = {.ok = 1, .n = (uint32_t)n};
    for (size_t i = 0; i < n; i++) {
        gl_error te;
        if (compute(f, &t[i], &out[i], &te)) {
            v.ok = 0;
            snprintf(v.err, sizeof v.err, "%s", te.msg);
            break;
        }
    }
    mpi_link_append(f->link, 0, &v, sizeof v);
    for (size_t i = 0; v.ok && i < n; i++)
        result_append(f->link, &out[i]);
    experiment_task_outs_free(out, n);
    free(t);
    free(out);
    int posted;
    while ((posted = mpi_link_flush(f->link, 0, 0)) == 0)
        nanosleep(&(struct timespec){0, 200000}, NULL);
    if (posted < 0)
        return gl_fail(e, "rank %d: its results could not be sent", f->rank);
    while (!mpi_link_idle(f->link, 0))
        nanosleep(&(struct timespec){0, 200000}, NULL);
    return 0;
}

int experiment_farm_serve(experiment_farm *f, gl_error *e)
{
    if (!f->link)
        return 0;
    GL_ASSERT(f->rank > 0);
    for (;;) {
        size_t len = 0;
        farm_head h;
        if (mpi_link_recv(f->link, 0, &f->buf, &f->cap, &len, e))
            return -1;
        if (len < sizeof h)
            return gl_fail(e, "rank %d: a message of %zu bytes from rank 0", f->rank, len);
        memcpy(&h, f->buf, sizeof h);
        if (h.what == FARM_GO)
            return 0;
        if (h.what == FARM_STOP)
            return h.status > 0 ? h.status : 1;
        if (h.what != FARM_TASKS || len != sizeof h + (size_t)h.n * sizeof(experiment_task))
            return gl_fail(e, "rank %d: a malformed batch from rank 0", f->rank);
        if (serve_batch(f, h.n, e))
            return -1;
    }
}
