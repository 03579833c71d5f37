/* mpi_link: the messages of a session's ranks (include/mpi_link.h). */
#include "mpi_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef GATELAB_HAVE_MPI
#include <mpi.h>

enum { TAG_SETUP = 1, TAG_RUN = 2 };

typedef struct {
    uint8_t *next;          /* what append adds to */
    size_t n, cap;
    uint8_t *flying;        /* what an Isend still reads */
    size_t flying_cap;
    MPI_Request req;
    int busy;
    uint8_t *in;            /* the last message taken from this peer */
    size_t in_cap;
    MPI_Request rreq;       /* take's receive into `in`, while receiving */
    int receiving;
    size_t rn;              /* its size */
} peer;

struct mpi_link {
    MPI_Comm comm;
    int rank, size;
    peer *peers;
};

static int mpi_fail(gl_error *e, const char *what, int rc)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "error %d", rc);
    return gl_fail(e, "mpi: %s: %s", what, s);
}

mpi_link *mpi_link_open(const world *w, gl_error *e)
{
    if (!w->mpi) {
        gl_fail(e, "mpi: not started by mpirun");
        return NULL;
    }
    mpi_link *l = xcalloc(1, sizeof *l);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &l->comm);
    if (rc != MPI_SUCCESS) {
        mpi_fail(e, "MPI_Comm_dup", rc);
        free(l);
        return NULL;
    }
    MPI_Comm_set_errhandler(l->comm, MPI_ERRORS_RETURN);
    l->rank = w->rank;
    l->size = w->size;
    l->peers = xcalloc((size_t)w->size, sizeof *l->peers);
    return l;
}

void mpi_link_close(mpi_link *l, int lost)
{
    if (!l)
        return;
    for (int i = 0; i < l->size; i++) {
        peer *p = &l->peers[i];
        if (p->busy && !lost)
            MPI_Wait(&p->req, MPI_STATUS_IGNORE);
        /* a send to a dead peer may never end: its buffer stays (the
         * process is about to go) */
        if (!p->busy || !lost)
            free(p->flying);
        /* the same for a message being received from a dead peer */
        if (p->receiving && !lost)
            MPI_Wait(&p->rreq, MPI_STATUS_IGNORE);
        if (!p->receiving || !lost)
            free(p->in);
        free(p->next);
    }
    if (!lost)
        MPI_Comm_free(&l->comm);
    free(l->peers);
    free(l);
}

int mpi_link_bcast(mpi_link *l, void *buf, size_t n, gl_error *e)
{
    GL_ASSERT(n <= INT32_MAX);
    int rc = MPI_Bcast(buf, (int)n, MPI_BYTE, 0, l->comm);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(e, "MPI_Bcast", rc);
}

int mpi_link_send(mpi_link *l, int to, const void *buf, size_t n, gl_error *e)
{
    GL_ASSERT(n <= INT32_MAX);
    int rc = MPI_Send(buf, (int)n, MPI_BYTE, to, TAG_SETUP, l->comm);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(e, "MPI_Send", rc);
}

/* The size of the message a probe found; *buf grown to hold it. */
static int fit_probed(MPI_Status *st, uint8_t **buf, size_t *cap, size_t *n)
{
    int count = 0;
    MPI_Get_count(st, MPI_BYTE, &count);
    if ((size_t)count > *cap || !*buf) {
        free(*buf);
        *cap = count ? (size_t)count : 1;
        *buf = xmalloc(*cap);
    }
    *n = (size_t)count;
    return count;
}

/* A message whose size a probe gave: into *buf, grown to fit. */
static int recv_sized(mpi_link *l, int from, int tag, MPI_Status *st, uint8_t **buf,
                      size_t *cap, size_t *n)
{
    int count = fit_probed(st, buf, cap, n);
    return MPI_Recv(*buf, count, MPI_BYTE, from, tag, l->comm, MPI_STATUS_IGNORE);
}

int mpi_link_recv(mpi_link *l, int from, uint8_t **buf, size_t *cap, size_t *n, gl_error *e)
{
    MPI_Status st;
    int rc = MPI_Probe(from, TAG_SETUP, l->comm, &st);
    if (rc == MPI_SUCCESS)
        rc = recv_sized(l, from, TAG_SETUP, &st, buf, cap, n);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(e, "MPI_Recv", rc);
}

void mpi_link_append(mpi_link *l, int to, const void *src, size_t n)
{
    peer *p = &l->peers[to];
    if (p->cap - p->n < n) {
        size_t cap = p->cap ? p->cap : 65536;
        while (cap - p->n < n)
            cap *= 2;
        p->next = gl_grow(p->next, p->n, cap, 1);
        p->cap = cap;
    }
    memcpy(p->next + p->n, src, n);
    p->n += n;
}

size_t mpi_link_pending(const mpi_link *l, int to) { return l->peers[to].n; }

/* Whether the send in flight to the peer has gone (MPI_Test). */
static int settle(mpi_link *l, peer *p)
{
    if (p->busy) {
        int done = 0;
        if (MPI_Test(&p->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (done)
            p->busy = 0;
    }
    (void)l;
    return 0;
}

int mpi_link_flush(mpi_link *l, int to, int force)
{
    peer *p = &l->peers[to];
    if (settle(l, p))
        return -1;
    if (p->busy || (!p->n && !force))
        return 0;
    /* the bytes swap places: what was filled flies, the old flying buffer
     * is filled next */
    uint8_t *b = p->flying;
    size_t bcap = p->flying_cap;
    p->flying = p->next;
    p->flying_cap = p->cap;
    size_t n = p->n;
    p->next = b;
    p->cap = bcap;
    p->n = 0;
    GL_ASSERT(n <= INT32_MAX);
    if (MPI_Isend(p->flying, (int)n, MPI_BYTE, to, TAG_RUN, l->comm, &p->req) != MPI_SUCCESS)
        return -1;
    p->busy = 1;
    return 1;
}

int mpi_link_idle(mpi_link *l, int to)
{
    peer *p = &l->peers[to];
    settle(l, p);
    return !p->busy && !p->n;
}

/* Never blocks, not even once a message is found: a message above the
 * shared-memory transport's eager size is read from the sender's memory
 * (Open MPI's vader, CMA), and when the sender is killed meanwhile the read
 * fails and the transport waits for it to resend: a blocking MPI_Recv would
 * wait for ever, on rank 0's main thread with the stop signals blocked, and
 * the session would never mark the dead rank's runs. The receive is posted
 * and tested; the caller polls on and sees the peer gone. */
int mpi_link_take(mpi_link *l, int from, const uint8_t **msg, size_t *n)
{
    peer *p = &l->peers[from];
    if (!p->receiving) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(from, TAG_RUN, l->comm, &flag, &st) != MPI_SUCCESS)
            return -1;
        if (!flag)
            return 0;
        int count = fit_probed(&st, &p->in, &p->in_cap, &p->rn);
        if (MPI_Irecv(p->in, count, MPI_BYTE, from, TAG_RUN, l->comm, &p->rreq) != MPI_SUCCESS)
            return -1;
        p->receiving = 1;
    }
    int done = 0;
    if (MPI_Test(&p->rreq, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return -1;
    if (!done)
        return 0;
    p->receiving = 0;
    *msg = p->in;
    *n = p->rn;
    return 1;
}

#else /* built without MPI: never opened (world_init refuses several ranks) */

mpi_link *mpi_link_open(const world *w, gl_error *e)
{
    (void)w;
    gl_fail(e, "mpi: this gatelab was built without MPI");
    return NULL;
}

void mpi_link_close(mpi_link *l, int lost)
{
    (void)l;
    (void)lost;
}

int mpi_link_bcast(mpi_link *l, void *buf, size_t n, gl_error *e)
{
    (void)l, (void)buf, (void)n;
    return gl_fail(e, "mpi: built without MPI");
}

int mpi_link_send(mpi_link *l, int to, const void *buf, size_t n, gl_error *e)
{
    (void)l, (void)to, (void)buf, (void)n;
    return gl_fail(e, "mpi: built without MPI");
}

int mpi_link_recv(mpi_link *l, int from, uint8_t **buf, size_t *cap, size_t *n, gl_error *e)
{
    (void)l, (void)from, (void)buf, (void)cap, (void)n;
    return gl_fail(e, "mpi: built without MPI");
}

void mpi_link_append(mpi_link *l, int to, const void *p, size_t n) { (void)l, (void)to, (void)p, (void)n; }
size_t mpi_link_pending(const mpi_link *l, int to) { (void)l, (void)to; return 0; }
int mpi_link_flush(mpi_link *l, int to, int force) { (void)l, (void)to, (void)force; return -1; }
int mpi_link_idle(mpi_link *l, int to) { (void)l, (void)to; return 1; }

int mpi_link_take(mpi_link *l, int from, const uint8_t **msg, size_t *n)
{
    (void)l, (void)from, (void)msg, (void)n;
    return -1;
}

#endif
