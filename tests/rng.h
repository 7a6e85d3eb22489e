/* rng: a fixed xorshift64 for unit tests that want varied inputs yet the
 * same ones every run (each test file has its own state). */
#ifndef LB_TESTS_RNG_H
#define LB_TESTS_RNG_H

#include <stdint.h>

static uint64_t rng_state;

static inline void rng_seed(uint64_t seed)
{
    rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
}

static inline uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

#endif
