/* clock: the two time helpers every timer in lb/ needs. */
#ifndef LB_CLOCK_H
#define LB_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Milliseconds on CLOCK (CLOCK_MONOTONIC, or CLOCK_MONOTONIC_COARSE where a
 * few ms of error is fine and the call must be cheap: the relay's hot path). */
static inline uint64_t clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ms as a struct timeval, for event_add(). */
static inline struct timeval clock_timeval(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    return tv;
}

#endif
