/* world: the MPI job this process belongs to (DESIGN §13), or a job of one.
 *
 * Built with MPI (GATELAB_HAVE_MPI, the Makefile's HAVE_MPI) and started by
 * mpirun, world_init initialises MPI with MPI_THREAD_MULTIPLE: the session
 * loop talks to other ranks while the arms' threads sum data-parallel
 * gradients on their own communicators. Started any other way (or built
 * without MPI) it is a job of one rank and MPI is never initialised, so the
 * plain binary runs without mpirun and without an MPI library at run time
 * beyond the one it links. */
#ifndef GATELAB_WORLD_H
#define GATELAB_WORLD_H

#include "common.h"

typedef struct {
    int rank, size;     /* 0 and 1 for a job of one */
    int mpi;            /* MPI was initialised (world_finalize ends it) */
} world;

/* Whether this binary was built with MPI. */
int world_built_with_mpi(void);

/* Whether the environment says mpirun (Open MPI, PMIx or Hydra) started this
 * process as one of several ranks. */
int world_launched(void);

/* Joins the job. Fails (a message in err) when mpirun started several ranks
 * of a binary built without MPI, or MPI cannot give the thread level the
 * session needs. */
int world_init(world *w, int *argc, char ***argv, gl_error *err);

/* A rank of the job died (a session found it, live_remote.c, or an
 * experiment's measurements, experiment_farm.c): MPI cannot be ended in
 * order any more, so world_finalize leaves it (the process is about to exit
 * and mpirun ends the job). */
void world_mark_lost(void);
/* Whether world_mark_lost was called: a rank is gone, nothing collective
 * can follow. */
int world_is_lost(void);

/* Ends MPI if world_init began it; once, from the thread that began it. */
void world_finalize(world *w);

/* Ends every rank of the job at once (MPI_Abort) with `status`; for a rank
 * that cannot go on and cannot tell the others in order. Returns only in a
 * job of one. */
void world_abort(const world *w, int status);

#endif
