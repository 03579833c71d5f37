/* placement: which ranks of an MPI job train which arm (DESIGN §13).
 *
 * The job's `size` ranks form size / dp groups of dp consecutive ranks
 * (dp: the --dp replicas of every arm); arm i is trained by group i % groups,
 * so arms spread round-robin and rank 0 (which also owns the session, the
 * screen and the database) trains arm 0. Within a group, the replica of
 * rank r is r % dp; replica 0 leads: it sends the arm's telemetry to rank 0,
 * writes its checkpoints and hands the steering commands to the others. A
 * job of one rank is one group of one: every arm local. */
#ifndef GATELAB_PLACEMENT_H
#define GATELAB_PLACEMENT_H

#include <stddef.h>

#include "common.h"

typedef struct {
    int size, dp, groups;
} placement;

/* Checks the shape: dp >= 1 and dividing size. 0, or -1 with a message
 * naming --dp and the rank count. */
int placement_init(placement *p, int size, int dp, gl_error *err);

/* The group that trains arm i, and the ranks of that group. */
int placement_group_of_arm(const placement *p, size_t arm);
int placement_leader_of_arm(const placement *p, size_t arm);

/* The group and replica index of a rank. */
int placement_group_of_rank(const placement *p, int rank);
int placement_replica_of_rank(const placement *p, int rank);

/* Whether rank trains arm i (as any replica). */
int placement_trains(const placement *p, int rank, size_t arm);

#endif
