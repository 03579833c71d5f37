/* dp: the data-parallel replicas of one arm (include/dp.h) — their
 * communicator, the bucketed gradient sums, the weight hash and the
 * step-boundary hand-over of commands. With world.c the only file that
 * includes <mpi.h> for the trainer; without GATELAB_HAVE_MPI a group is
 * always of one and every call is the identity. */
#include "dp.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef GATELAB_HAVE_MPI
#include <mpi.h>
#endif

/* one bucket: floats [off, off + n) of the gradient buffer, ready once the
 * backward has finished layer `ready` (DP_READY_END: after the whole
 * backward, since the embeddings get their last gradient there) */
#define DP_READY_END SIZE_MAX
typedef struct {
    size_t off, n, ready;
} dp_bucket;

struct dp_comm {
#ifdef GATELAB_HAVE_MPI
    MPI_Comm comm;
    MPI_Request *req;      /* [nbuckets] */
#endif
    int rank, size;
    dp_bucket *bucket;     /* in posting order: highest layers first */
    size_t nbuckets, posted;
    int overlap;
    dp_stats stats;
};

int dp_slice(size_t B, int n, int j, size_t *row0, size_t *rows, gl_error *err)
{
    if (n < 1 || j < 0 || j >= n)
        return gl_fail(err, "--dp %d: replica %d out of range", n, j);
    if (B % (size_t)n)
        return gl_fail(err, "--dp %d: the batch of %zu sequences does not split into %d equal "
                            "slices (give --batch a multiple of %d)", n, B, n, n);
    *rows = B / (size_t)n;
    *row0 = (size_t)j * *rows;
    return 0;
}

int dp_replica(const dp_comm *c)
{
    return c ? c->rank : 0;
}

int dp_size(const dp_comm *c)
{
    return c ? c->size : 1;
}

uint64_t dp_hash(const float *x, size_t n)
{
    /* FNV-1a over 64-bit words: each step is a bijection of the running
     * value for a given word, so a replica whose bytes differ in one word
     * always hashes differently */
    const unsigned char *p = (const unsigned char *)x;
    size_t bytes = n * sizeof(float);
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    for (; i < bytes; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

size_t dp_boundary_encode(const dp_boundary *b, uint8_t *buf, size_t cap)
{
    if (cap < DP_BOUNDARY_WIRE || b->count > DP_BOUNDARY_CMDS)
        return 0;
    memset(buf, 0, DP_BOUNDARY_WIRE);
    for (int i = 0; i < 4; i++) {
        buf[i] = (uint8_t)(b->flags >> (8 * i));
        buf[4 + i] = (uint8_t)(b->count >> (8 * i));
    }
    for (uint32_t i = 0; i < b->count; i++)
        if (command_encode(&b->cmd[i], buf + 8 + i * COMMAND_WIRE_SIZE, COMMAND_WIRE_SIZE) !=
            COMMAND_WIRE_SIZE)
            return 0;
    return DP_BOUNDARY_WIRE;
}

int dp_boundary_decode(const uint8_t *buf, size_t n, dp_boundary *b)
{
    if (n < DP_BOUNDARY_WIRE)
        return -1;
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 4; i++) {
        b->flags |= (uint32_t)buf[i] << (8 * i);
        b->count |= (uint32_t)buf[4 + i] << (8 * i);
    }
    if (b->count > DP_BOUNDARY_CMDS || b->flags & ~(DP_BOUNDARY_FAILED | DP_BOUNDARY_MORE))
        return -1;
    for (uint32_t i = 0; i < b->count; i++)
        if (command_decode(buf + 8 + i * COMMAND_WIRE_SIZE, COMMAND_WIRE_SIZE, &b->cmd[i]) <= 0)
            return -1;
    return 0;
}

int dp_attach(dp_comm *c, const model *m, size_t bucket_bytes, int overlap, gl_error *err)
{
    if (!c)
        return 0;
    const size_t L = m->cfg.layers, P = m->num_params;
    /* the tensor table lays the globals before layer 0 (wte, wpe), then each
     * layer's rows together, then lnf: layer l is [lo[l], lo[l + 1]) */
    size_t *lo = xcalloc(L + 1, sizeof *lo);
    for (size_t l = 0; l <= L; l++)
        lo[l] = SIZE_MAX;
    size_t last_end = 0;
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (t->layer < 0)
            continue;
        size_t l = (size_t)t->layer;
        if (t->offset < lo[l])
            lo[l] = t->offset;
        if (t->offset + t->numel > last_end && l == L - 1)
            last_end = t->offset + t->numel;
    }
    lo[L] = last_end;
    for (size_t l = 0; l < L; l++)
        GL_ASSERT(lo[l] < lo[l + 1]);   /* layer ranges contiguous and in order */
    free(c->bucket);
    c->bucket = xcalloc(L + 2, sizeof *c->bucket);
    c->nbuckets = 0;
    /* lnf [lo[L], P) is final after the head's backward, layer l's rows after
     * its own: the pending range grows downwards from P until it holds
     * bucket_bytes, then goes out as one bucket */
    size_t end = P;
    for (size_t l = L; l-- > 0;)
        if ((end - lo[l]) * sizeof(float) >= bucket_bytes) {
            c->bucket[c->nbuckets++] = (dp_bucket){.off = lo[l], .n = end - lo[l], .ready = l};
            end = lo[l];
        }
    if (end > 0)
        c->bucket[c->nbuckets++] = (dp_bucket){.off = 0, .n = end, .ready = DP_READY_END};
    free(lo);
    for (size_t i = 0; i < c->nbuckets; i++)
        if (c->bucket[i].n > (size_t)INT_MAX)
            return gl_fail(err, "--dp: a gradient bucket of %zu floats is more than one MPI "
                                "message holds", c->bucket[i].n);
#ifdef GATELAB_HAVE_MPI
    free(c->req);
    c->req = xcalloc(c->nbuckets, sizeof *c->req);
    for (size_t i = 0; i < c->nbuckets; i++)
        c->req[i] = MPI_REQUEST_NULL;
#endif
    c->overlap = overlap;
    memset(&c->stats, 0, sizeof c->stats);
    c->stats.buckets = c->nbuckets;
    for (size_t i = 0; i < c->nbuckets && i < 64; i++)
        c->stats.bucket_floats[i] = c->bucket[i].n;
    c->posted = 0;
    return 0;
}

void dp_get_stats(const dp_comm *c, dp_stats *out)
{
    if (c)
        *out = c->stats;
    else
        memset(out, 0, sizeof *out);
}

#ifdef GATELAB_HAVE_MPI

int dp_open(dp_comm **out, const world *w, const placement *p, gl_error *err)
{
    *out = NULL;
    if (p->dp == 1)
        return 0;
    if (!w->mpi)
        return gl_fail(err, "--dp %d: needs an MPI job (mpirun -np N)", p->dp);
    dp_comm *c = xcalloc(1, sizeof *c);
    if (MPI_Comm_split(MPI_COMM_WORLD, placement_group_of_rank(p, w->rank),
                       placement_replica_of_rank(p, w->rank), &c->comm) != MPI_SUCCESS) {
        free(c);
        return gl_fail(err, "--dp %d: MPI_Comm_split failed", p->dp);
    }
    MPI_Comm_rank(c->comm, &c->rank);
    MPI_Comm_size(c->comm, &c->size);
    *out = c;
    return 0;
}

int dp_dup(dp_comm **out, const dp_comm *group, gl_error *err)
{
    *out = NULL;
    if (!group)
        return 0;
    dp_comm *c = xcalloc(1, sizeof *c);
    if (MPI_Comm_dup(group->comm, &c->comm) != MPI_SUCCESS) {
        free(c);
        return gl_fail(err, "--dp: MPI_Comm_dup failed");
    }
    c->rank = group->rank;
    c->size = group->size;
    *out = c;
    return 0;
}

void dp_close(dp_comm *c)
{
    if (!c)
        return;
    int done = 0;
    MPI_Finalized(&done);
    if (!done)
        MPI_Comm_free(&c->comm);
    free(c->req);
    free(c->bucket);
    free(c);
}

static void post(dp_comm *c, model *m, size_t i)
{
    const dp_bucket *b = &c->bucket[i];
    MPI_Iallreduce(MPI_IN_PLACE, m->grads + b->off, (int)b->n, MPI_FLOAT, MPI_SUM, c->comm,
                   &c->req[i]);
    c->stats.allreduces++;
    c->stats.bytes += b->n * sizeof(float);
}

void dp_grads_layer(void *ctx, model *m, size_t layer)
{
    dp_comm *c = ctx;
    if (!c || !c->overlap)
        return;
    double t0 = gl_now();
    while (c->posted < c->nbuckets && c->bucket[c->posted].ready == layer)
        post(c, m, c->posted++);
    /* Open MPI moves a non-blocking collective on only inside MPI calls:
     * testing at each layer is what lets the buckets travel while the
     * lower layers' backward runs */
    if (c->posted) {
        int flag;
        MPI_Testall((int)c->posted, c->req, &flag, MPI_STATUSES_IGNORE);
    }
    c->stats.wait_seconds += gl_now() - t0;
}

void dp_grads_finish(dp_comm *c, model *m)
{
    if (!c)
        return;
    double t0 = gl_now();
    if (c->overlap) {
        while (c->posted < c->nbuckets)
            post(c, m, c->posted++);
        MPI_Waitall((int)c->nbuckets, c->req, MPI_STATUSES_IGNORE);
    } else {
        for (size_t i = 0; i < c->nbuckets; i++) {
            const dp_bucket *b = &c->bucket[i];
            MPI_Allreduce(MPI_IN_PLACE, m->grads + b->off, (int)b->n, MPI_FLOAT, MPI_SUM,
                          c->comm);
            c->stats.allreduces++;
            c->stats.bytes += b->n * sizeof(float);
        }
    }
    c->posted = 0;
    c->stats.steps++;
    c->stats.wait_seconds += gl_now() - t0;
}

double dp_sum(dp_comm *c, double x)
{
    if (!c)
        return x;
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, c->comm);
    return x;
}

int dp_check_weights(dp_comm *c, const model *m, size_t step, gl_error *err)
{
    if (!c)
        return 0;
    uint64_t mine = dp_hash(m->params, m->num_params);
    uint64_t all[256], *h = c->size <= 256 ? all : xcalloc((size_t)c->size, sizeof *h);
    MPI_Allgather(&mine, 1, MPI_UINT64_T, h, 1, MPI_UINT64_T, c->comm);
    char who[160] = "";
    size_t len = 0;
    int bad = 0;
    for (int r = 1; r < c->size; r++)
        if (h[r] != h[0]) {
            if (len + 16 < sizeof who)
                len += (size_t)snprintf(who + len, sizeof who - len, "%s%d", bad ? ", " : "", r);
            bad++;
        }
    int rc = 0, first = 0;
    for (int r = c->size - 1; r >= 1; r--)
        if (h[r] != h[0])
            first = r;
    if (bad)
        rc = gl_fail(err, "--dp: the replicas' weights differ at step %zu: replica%s %s of %d "
                          "differ%s from replica 0 (weight hash %016llx vs %016llx)",
                     step, bad > 1 ? "s" : "", who, c->size, bad > 1 ? "" : "s",
                     (unsigned long long)h[first], (unsigned long long)h[0]);
    if (h != all)
        free(h);
    return rc;
}

void dp_bcast_bytes(dp_comm *c, void *buf, size_t n)
{
    if (!c)
        return;
    unsigned char *p = buf;
    while (n) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        MPI_Bcast(p, chunk, MPI_BYTE, 0, c->comm);
        p += chunk;
        n -= (size_t)chunk;
    }
}

int dp_boundary_sync(dp_comm *c, dp_boundary *b)
{
    if (!c)
        return 0;
    uint8_t wire[DP_BOUNDARY_WIRE];
    if (c->rank == 0) {
        size_t n = dp_boundary_encode(b, wire, sizeof wire);
        GL_ASSERT(n == sizeof wire);
    }
    MPI_Request req;
    MPI_Ibcast(wire, (int)sizeof wire, MPI_BYTE, 0, c->comm, &req);
    if (c->rank == 0) {
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        return 0;
    }
    /* A follower waits here while the leader is paused, possibly for hours:
     * MPI_Wait would spin a core the whole time. Spin for the first
     * millisecond (a step boundary is reached within microseconds of the
     * leader's), then test every millisecond. */
    double t0 = gl_now();
    for (int flag = 0;;) {
        MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
        if (flag)
            break;
        if (gl_now() - t0 > 1e-3)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return dp_boundary_decode(wire, sizeof wire, b);
}

#else /* no MPI: every group is of one */

int dp_open(dp_comm **out, const world *w, const placement *p, gl_error *err)
{
    (void)w;
    *out = NULL;
    if (p->dp != 1)
        return gl_fail(err, "--dp %d: this gatelab was built without MPI (install "
                            "libopenmpi-dev and rebuild: make deps all)", p->dp);
    return 0;
}

int dp_dup(dp_comm **out, const dp_comm *group, gl_error *err)
{
    (void)group;
    (void)err;
    *out = NULL;
    return 0;
}

void dp_close(dp_comm *c)
{
    if (c) {
        free(c->bucket);
        free(c);
    }
}

void dp_grads_layer(void *ctx, model *m, size_t layer)
{
    (void)ctx;
    (void)m;
    (void)layer;
}

void dp_grads_finish(dp_comm *c, model *m)
{
    (void)c;
    (void)m;
}

double dp_sum(dp_comm *c, double x)
{
    (void)c;
    return x;
}

int dp_check_weights(dp_comm *c, const model *m, size_t step, gl_error *err)
{
    (void)c;
    (void)m;
    (void)step;
    (void)err;
    return 0;
}

void dp_bcast_bytes(dp_comm *c, void *buf, size_t n)
{
    (void)c;
    (void)buf;
    (void)n;
}

int dp_boundary_sync(dp_comm *c, dp_boundary *b)
{
    (void)c;
    (void)b;
    return 0;
}

#endif
