/* rng: small deterministic random streams (xoshiro256**, seeded by splitmix64).
 * The state is plain data so checkpoints can store and restore it. */
#ifndef GATELAB_RNG_H
#define GATELAB_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_state;

void rng_seed(rng_state *r, uint64_t seed);
uint64_t rng_next(rng_state *r);
/* Uniform in [0, n). n > 0. */
uint64_t rng_below(rng_state *r, uint64_t n);
/* Standard normal (Box-Muller, one value per call). */
float rng_normal(rng_state *r);
/* Derive an independent stream seed from a base seed and a stream tag. */
uint64_t rng_derive(uint64_t seed, uint64_t tag);

#endif
