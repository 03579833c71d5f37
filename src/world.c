/* world: joining and leaving the MPI job (include/world.h). The only file
 * besides the transport that includes <mpi.h>; everything else asks it for
 * the rank and the size. */
#include "world.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#ifdef GATELAB_HAVE_MPI
#include <mpi.h>
#endif

int world_built_with_mpi(void)
{
#ifdef GATELAB_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* The size mpirun gives each rank in its environment: Open MPI's own
 * variable, PMIx's (Open MPI 4+, Slurm's srun) and MPICH's Hydra PMI. */
static long launched_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end == '\0' && n > 0)
                return n;
        }
    }
    return 0;
}

int world_launched(void)
{
    return launched_size() > 0;
}

int world_init(world *w, int *argc, char ***argv, gl_error *err)
{
    memset(w, 0, sizeof *w);
    w->size = 1;
    long n = launched_size();
    if (!n)
        return 0;
#ifdef GATELAB_HAVE_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
        return gl_fail(err, "mpirun: MPI_Init_thread failed");
    w->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    if (provided < MPI_THREAD_MULTIPLE && w->size > 1) {
        world_finalize(w);
        return gl_fail(err, "mpirun: this MPI library gives thread level %d; gatelab needs "
                            "MPI_THREAD_MULTIPLE (%d)", provided, MPI_THREAD_MULTIPLE);
    }
    return 0;
#else
    (void)argc;
    (void)argv;
    if (n > 1)
        return gl_fail(err, "mpirun: started as one of %ld ranks, but this gatelab was built "
                            "without MPI (install libopenmpi-dev and rebuild: make deps all)", n);
    return 0;
#endif
}

/* world_mark_lost: main thread only; read by the farm's stop hook too
 * (experiment_farm.c), in a signal handler on that thread */
static volatile sig_atomic_t lost;

void world_mark_lost(void) { lost = 1; }

int world_is_lost(void) { return lost; }

void world_finalize(world *w)
{
#ifdef GATELAB_HAVE_MPI
    if (w->mpi && !lost) {
        int done = 0;
        MPI_Finalized(&done);
        if (!done)
            MPI_Finalize();
    }
#endif
    w->mpi = 0;
}

void world_abort(const world *w, int status)
{
#ifdef GATELAB_HAVE_MPI
    if (w->mpi && w->size > 1)
        MPI_Abort(MPI_COMM_WORLD, status);
#else
    (void)w;
    (void)status;
#endif
}
