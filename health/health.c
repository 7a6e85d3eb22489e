/* health: the pure parts of the module, no sockets and no loop: the rise/fall
 * state machine, the jittered delay between checks and the random source
 * behind it, passive failure counting and the slow-start weight ramp.
 * check.c drives these from real checks; lb/ calls the rest directly. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "health/health.h"
#include "health/health_internal.h"

/* Starts up with both counters at 0. rise or fall 0 would never count to a
 * transition, so they act as 1 (the config loader never gives 0). */
void health_sm_init(struct health_sm *sm, unsigned rise, unsigned fall)
{
    sm->rise = rise ? rise : 1;
    sm->fall = fall ? fall : 1;
    sm->up = true;
    sm->successes = 0;
    sm->failures = 0;
    sm->transitions = 0;
}

/* Counts consecutive results of one kind (a result of the other kind resets
 * the count) and flips up/down when the count reaches fall (while up) or
 * rise (while down). The counters keep counting after a transition: they
 * always mean "consecutive", whatever the state. */
bool health_sm_record(struct health_sm *sm, bool ok)
{
    if (ok) {
        sm->successes++;
        sm->failures = 0;
        if (sm->up || sm->successes < sm->rise)
            return false;
        sm->up = true;
    } else {
        sm->failures++;
        sm->successes = 0;
        if (!sm->up || sm->failures < sm->fall)
            return false;
        sm->up = false;
    }
    sm->transitions++;
    return true;
}

/* Down at once; the successes counted so far no longer count towards rise. */
bool health_sm_force_down(struct health_sm *sm)
{
    sm->successes = 0;
    if (!sm->up)
        return false;
    sm->up = false;
    sm->transitions++;
    return true;
}

/* The low end is ceil(interval * 4/5), so interval 1 gives 1 and the delay
 * never falls below 4/5 of the interval, even after integer rounding. r is
 * clamped so that a caller's r == 1.0 (or a float rounding up) still gives
 * at most interval. */
unsigned health_next_delay_ms(unsigned interval_ms, double r)
{
    unsigned lo = interval_ms - interval_ms / 5;
    uint64_t span = (uint64_t)(interval_ms - lo) + 1;
    uint64_t add;

    if (!(r > 0.0)) /* also NaN */
        return lo;
    add = (uint64_t)(r * (double)span);
    if (add > interval_ms - lo)
        add = interval_ms - lo;
    return lo + (unsigned)add;
}

/* xorshift64* (Vigna): plenty for spreading check times, seeded once from
 * the kernel so that several lb processes do not check in lockstep. */
static uint64_t prng_state;

/* Seeds prng_state from getrandom(), else /dev/urandom, else the clock and
 * pid. Never leaves it 0 (xorshift's one fixed point). */
static void prng_seed(void)
{
    uint64_t seed = 0;
    struct timespec ts;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &seed, sizeof(seed)) != (ssize_t)sizeof(seed)) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
        }
        if (fd >= 0)
            close(fd);
    }
    prng_state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

/* Uniform in [0, 1), 53 random bits. Single-threaded by design (one loop). */
double health_random(void)
{
    uint64_t x;

    if (prng_state == 0)
        prng_seed();
    x = prng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    prng_state = x;
    return (double)((x * 0x2545f4914f6cdd1dULL) >> 11) * 0x1.0p-53;
}

/* Off when max_failures is 0. Otherwise counts consecutive failures and
 * fires once each time the count reaches max_failures, then starts over. */
bool health_passive_record(struct health_passive *p, bool ok)
{
    if (p->max_failures == 0)
        return false;
    if (ok) {
        p->failures = 0;
        return false;
    }
    p->failures++;
    if (p->failures < p->max_failures)
        return false;
    p->failures = 0;
    return true;
}

/* The slow-start ramp: max(1, ceil(weight * max(elapsed, slow/20) / slow)).
 * The floor of slow/20 makes a backend that just came up start with about
 * 1/20 of its weight rather than nothing (it would then get no connection at
 * all, and a strategy could not tell it from a weight-0 backend); the
 * ceiling and the max(1, ...) keep every non-zero weight at least 1. The
 * result grows linearly with elapsed, never decreases and never exceeds
 * weight (elapsed < slow here). */
unsigned health_slow_start_weight(unsigned weight, uint64_t elapsed_ms, unsigned slow_start_ms)
{
    uint64_t floor_ms = slow_start_ms / 20;
    uint64_t t = elapsed_ms > floor_ms ? elapsed_ms : floor_ms;
    uint64_t w;

    if (weight == 0)
        return 0;
    if (slow_start_ms == 0 || elapsed_ms >= slow_start_ms)
        return weight;
    w = ((uint64_t)weight * t + slow_start_ms - 1) / slow_start_ms;
    if (w < 1)
        w = 1;
    return w > weight ? weight : (unsigned)w;
}
