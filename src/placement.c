/* placement: arms over the ranks of an MPI job (include/placement.h). One
 * rule, used by every rank alike, so no rank needs to be told where an arm
 * runs. */
#include "placement.h"

int placement_init(placement *p, int size, int dp, gl_error *err)
{
    if (size < 1)
        return gl_fail(err, "mpirun: a job of %d ranks", size);
    if (dp < 1)
        return gl_fail(err, "--dp %d: must be at least 1", dp);
    if (size % dp)
        return gl_fail(err, "--dp %d: the job's %d ranks do not split into groups of %d "
                            "(give mpirun -np a multiple of %d)", dp, size, dp, dp);
    p->size = size;
    p->dp = dp;
    p->groups = size / dp;
    return 0;
}

int placement_group_of_arm(const placement *p, size_t arm)
{
    return (int)(arm % (size_t)p->groups);
}

int placement_leader_of_arm(const placement *p, size_t arm)
{
    return placement_group_of_arm(p, arm) * p->dp;
}

int placement_group_of_rank(const placement *p, int rank)
{
    return rank / p->dp;
}

int placement_replica_of_rank(const placement *p, int rank)
{
    return rank % p->dp;
}

int placement_trains(const placement *p, int rank, size_t arm)
{
    return placement_group_of_rank(p, rank) == placement_group_of_arm(p, arm);
}
