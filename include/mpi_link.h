/* mpi_link: the messages of a session's ranks (DESIGN §13) — the only file
 * besides world.c that includes <mpi.h>. A link is a private duplicate of
 * the job's communicator whose errors return instead of aborting (a dead
 * peer must not take rank 0 down before it has marked the runs). Every call
 * is made from one thread per rank (the main thread). Built without MPI it
 * still compiles: mpi_link_open fails, so nothing else is ever reached.
 *
 * Setup is blocking (bcast from rank 0, send, recv). The run is not: each
 * peer has an outbox; append adds bytes to its next message, flush posts it
 * (MPI_Isend) when the previous one has gone, and take returns the next
 * message a peer sent, if any. Messages of one peer arrive in the order it
 * sent them. */
#ifndef GATELAB_MPI_LINK_H
#define GATELAB_MPI_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "world.h"

typedef struct mpi_link mpi_link;

mpi_link *mpi_link_open(const world *w, gl_error *e);
/* Waits for the posted sends (unless lost) and frees the link. lost: a peer
 * died, so nothing collective or waiting is attempted. */
void mpi_link_close(mpi_link *l, int lost);

/* Setup, blocking: bcast n bytes from rank 0; a message to / from a peer
 * (recv: *buf grown to fit, *n its size). -1 with a message. */
int mpi_link_bcast(mpi_link *l, void *buf, size_t n, gl_error *e);
int mpi_link_send(mpi_link *l, int to, const void *buf, size_t n, gl_error *e);
int mpi_link_recv(mpi_link *l, int from, uint8_t **buf, size_t *cap, size_t *n, gl_error *e);

/* The run: the outbox to peer `to`. append copies n bytes; pending is what
 * waits to be posted; flush posts it when no send to that peer is in flight
 * (force: post even an empty message, a heartbeat): 1 posted, 0 not now,
 * -1 on an MPI error. idle: nothing in flight and nothing pending. */
void mpi_link_append(mpi_link *l, int to, const void *p, size_t n);
size_t mpi_link_pending(const mpi_link *l, int to);
int mpi_link_flush(mpi_link *l, int to, int force);
int mpi_link_idle(mpi_link *l, int to);

/* The next message from peer `from`, if one has arrived: 1 and *msg, *n
 * (valid until the next take from that peer), 0 none yet (one may be on
 * its way: take again), -1 an MPI error. Never blocks. */
int mpi_link_take(mpi_link *l, int from, const uint8_t **msg, size_t *n);

#endif
