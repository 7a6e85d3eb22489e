/* bench_pick: how long one pick and one update take for each strategy, at
 * 10, 1,000 and 10,000 backends (`make bench-pick`; not part of make test).
 * Each pool gets a fixed pseudo-random mix: weights 1..10, one backend in
 * ten down. Times come from clock_gettime(CLOCK_MONOTONIC): a figure is the
 * median of RUNS runs, each timing a batch that lasts at least RUN_NS, so
 * slow cases run few iterations and the whole program stays well under a
 * minute. Prints a markdown table. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lb/balance/balance.h"
#include "lb/pool.h"

#define RUNS 5
#define RUN_NS 20000000ULL     /* 20 ms per run */
#define NKEYS 4096             /* client addresses the picks cycle through */
#define NSINGLE 20000          /* individually timed picks, for the p99 */
#define SINGLE_NS 200000000ULL /* ... timed for at most 200 ms */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* xorshift64*: the same mix on every run. */
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* ns as "45 ns", "3.2 µs" or "12.5 ms". */
static const char *fmt_ns(double ns, char *buf, size_t len)
{
    if (ns < 1000)
        snprintf(buf, len, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, len, "%.1f µs", ns / 1e3);
    else
        snprintf(buf, len, "%.1f ms", ns / 1e6);
    return buf;
}

static struct pick_ctx keys[NKEYS];

static void keys_init(void)
{
    for (unsigned i = 0; i < NKEYS; i++) {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        sin.sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)(rng() & 0xffffff));
        memset(&keys[i], 0, sizeof(keys[i]));
        pick_key_ip(&keys[i], (struct sockaddr *)&sin, sizeof(sin));
    }
}

/* How make_pool() takes backends down. */
enum down { DOWN_TENTH, DOWN_FIRST_HALF };

/* A pool of n backends for s, weights 1..max_weight, one in ten down (or
 * the first half); *build_ns is what pool_build() took. */
static struct pool *make_pool(enum lb_strategy s, size_t n, unsigned max_weight, enum down down,
                              double *build_ns)
{
    struct pool *pool = pool_new("bench", s);
    if (pool == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        char id[32], address[32];
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(8000 + i % 50000)};
        sin.sin_addr.s_addr = htonl(0x0a010000u + (uint32_t)i);
        snprintf(id, sizeof(id), "backend-%zu", i);
        snprintf(address, sizeof(address), "10.1.%zu.%zu:%u", (i >> 8) & 0xff, i & 0xff,
                 8000 + (unsigned)(i % 50000));
        if (pool_add_backend(pool, id, id, address, (struct sockaddr *)&sin, sizeof(sin),
                             1 + (unsigned)(rng() % max_weight)) == NULL)
            abort();
    }
    uint64_t t0 = now_ns();
    if (pool_build(pool) < 0)
        abort();
    *build_ns = (double)(now_ns() - t0);
    for (size_t i = 0; i < n; i++)
        if (down == DOWN_TENTH ? rng() % 10 == 0 : i < n / 2)
            pool_set_backend_up(pool, pool->backends[i], false);
    return pool;
}

/* Fills every key's tried list with ntried backends: the first ntried
 * available ones when all is set, else random ones. */
static void keys_tried(struct pool *pool, unsigned ntried, bool all)
{
    for (unsigned k = 0; k < NKEYS; k++) {
        keys[k].ntried = 0;
        for (size_t i = 0; keys[k].ntried < ntried && i < pool->nbackends; i++) {
            struct backend *b = pool->backends[all ? i : rng() % pool->nbackends];
            if (!all || backend_available(b))
                keys[k].tried[keys[k].ntried++] = b;
        }
    }
}

/* Median ns per pick. PICK_RETRY: per first pick plus a retry (ctx->tried
 * holding the first pick's backend); PICK_TRIED: with the keys' tried lists
 * as keys_tried() left them. */
enum pick_mode { PICK_PLAIN, PICK_RETRY, PICK_TRIED };

static double time_picks(struct pool *pool, enum pick_mode mode)
{
    double runs[RUNS];
    unsigned k = 0;
    for (int r = 0; r < RUNS; r++) {
        uint64_t count = 0, t0 = now_ns(), t1;
        do {
            for (int i = 0; i < 64; i++) {
                struct pick_ctx *ctx = &keys[k++ % NKEYS];
                if (mode == PICK_PLAIN)
                    ctx->ntried = 0;
                if (mode == PICK_RETRY) {
                    ctx->ntried = 0;
                    ctx->tried[0] = pool_pick(pool, ctx);
                    ctx->ntried = 1;
                }
                if (pool_pick(pool, ctx) == NULL)
                    abort();
            }
            count += 64;
            t1 = now_ns();
        } while (t1 - t0 < RUN_NS);
        runs[r] = (double)(t1 - t0) / (double)count;
    }
    return median(runs, RUNS);
}

/* The 99th percentile of up to NSINGLE individually timed picks (fewer when
 * picks are slow: at most SINGLE_NS in all; the clock's own cost, ~25 ns,
 * included). On a busy machine this is where preemption shows. */
static double time_p99(struct pool *pool)
{
    static double single[NSINGLE];
    unsigned n = 0;
    uint64_t start = now_ns();
    while (n < NSINGLE && (n < 100 || now_ns() - start < SINGLE_NS)) {
        struct pick_ctx *ctx = &keys[n % NKEYS];
        ctx->ntried = 0;
        uint64_t t0 = now_ns();
        struct backend *b = pool_pick(pool, ctx);
        single[n++] = (double)(now_ns() - t0);
        if (b == NULL)
            abort();
    }
    qsort(single, n, sizeof(*single), cmp_double);
    return single[n - 1 - n / 100];
}

/* A round-robin pool whose first half is down: the median of 21 timings of
 * the one pick a cycle that crosses that run (the pick after the last
 * backend), which the median of all picks hides. */
static double time_rr_crossing(struct pool *pool)
{
    double runs[21];
    bool after_last = false;
    for (int r = 0; r < 21;) {
        uint64_t t0 = now_ns();
        struct backend *b = pool_pick(pool, NULL);
        uint64_t t1 = now_ns();
        if (b == NULL)
            abort();
        if (after_last)
            runs[r++] = (double)(t1 - t0);
        after_last = b->index == pool->nbackends - 1;
    }
    return median(runs, 21);
}

/* Median ns per update: a backend down then up again (two updates), or a
 * weight change, on random backends. */
static double time_updates(struct pool *pool, int weight)
{
    double runs[RUNS];
    for (int r = 0; r < RUNS; r++) {
        uint64_t count = 0, t0 = now_ns(), t1;
        do {
            struct backend *b = pool->backends[rng() % pool->nbackends];
            if (weight) {
                unsigned w = 1 + (unsigned)(rng() % 10);
                if (w == b->weight)
                    w = w % 10 + 1;
                pool_set_backend_weight(pool, b, w);
                count += 1;
            } else {
                bool up = b->up;
                pool_set_backend_up(pool, b, !up);
                pool_set_backend_up(pool, b, up);
                count += 2;
            }
            t1 = now_ns();
        } while (t1 - t0 < RUN_NS);
        runs[r] = (double)(t1 - t0) / (double)count;
    }
    return median(runs, RUNS);
}

int main(void)
{
    static const enum lb_strategy strategies[] = {LB_STRATEGY_ROUNDROBIN, LB_STRATEGY_WEIGHTED,
                                                  LB_STRATEGY_LEASTCONN, LB_STRATEGY_IPHASH};
    static const size_t sizes[] = {10, 1000, 10000};
    uint64_t start = now_ns();
    keys_init();
    printf("| strategy | backends | pick | pick + retry | p99 pick | down or up | "
           "weight change | build |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof(strategies) / sizeof(strategies[0]); s++) {
        for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
            double builds[RUNS];
            struct pool *pool = NULL;
            for (int r = 0; r < RUNS; r++) {
                if (pool)
                    pool_release(pool);
                pool = make_pool(strategies[s], sizes[z], 10, DOWN_TENTH, &builds[r]);
            }
            double pick = time_picks(pool, PICK_PLAIN);
            double retry = time_picks(pool, PICK_RETRY);
            double p99 = time_p99(pool);
            double updown = time_updates(pool, 0);
            double weight = time_updates(pool, 1);
            char b[6][32];
            printf("| %s | %zu | %s | %s | %s | %s | %s | %s |\n", pool->ops->name, sizes[z],
                   fmt_ns(pick, b[0], sizeof(b[0])), fmt_ns(retry, b[1], sizeof(b[1])),
                   fmt_ns(p99, b[2], sizeof(b[2])), fmt_ns(updown, b[3], sizeof(b[3])),
                   fmt_ns(weight, b[4], sizeof(b[4])),
                   fmt_ns(median(builds, RUNS), b[5], sizeof(b[5])));
            fflush(stdout);
            pool_release(pool);
        }
    }
    printf("\n| hard case | pick |\n|---|---:|\n");
    static const struct {
        const char *what;
        enum lb_strategy s;
        size_t n;
        unsigned max_weight, ntried;
        enum down down;
        bool all;
    } hard[] = {
        {"roundrobin, 10,000, the first 5,000 down", LB_STRATEGY_ROUNDROBIN, 10000, 10, 0,
         DOWN_FIRST_HALF, false},
        {"roundrobin, 10,000, 15 tried", LB_STRATEGY_ROUNDROBIN, 10000, 10, 15, DOWN_TENTH, false},
        {"weighted, 10,000, weights 1..256", LB_STRATEGY_WEIGHTED, 10000, 256, 0, DOWN_TENTH,
         false},
        {"weighted, 10,000, 15 tried", LB_STRATEGY_WEIGHTED, 10000, 10, 15, DOWN_TENTH, false},
        {"leastconn, 10,000, 15 tried", LB_STRATEGY_LEASTCONN, 10000, 10, 15, DOWN_TENTH, false},
        {"iphash, 10,000, 15 tried", LB_STRATEGY_IPHASH, 10000, 10, 15, DOWN_TENTH, false},
        {"iphash, 10, every available one tried", LB_STRATEGY_IPHASH, 10, 10, 10, DOWN_TENTH, true},
    };
    for (size_t h = 0; h < sizeof(hard) / sizeof(hard[0]); h++) {
        double build;
        struct pool *pool =
            make_pool(hard[h].s, hard[h].n, hard[h].max_weight, hard[h].down, &build);
        keys_tried(pool, hard[h].ntried, hard[h].all);
        char b[32];
        printf("| %s | %s |\n", hard[h].what, fmt_ns(time_picks(pool, PICK_TRIED), b, sizeof(b)));
        if (hard[h].down == DOWN_FIRST_HALF)
            printf("| roundrobin, 10,000, the pick that crosses the 5,000 down | %s |\n",
                   fmt_ns(time_rr_crossing(pool), b, sizeof(b)));
        fflush(stdout);
        pool_release(pool);
    }
    printf("\npick: pool_pick() alone (no session accounting), median of %d runs; "
           "pick + retry: a first pick, then a retry that must avoid it; p99 pick: of up to %d "
           "picks timed one by one (the clock's ~25 ns included); "
           "down or up: per update, a random backend down then up; build: pool_build() "
           "(iphash: the %u-entry Maglev table). Ran in %.1f s.\n",
           RUNS, NSINGLE, LB_MAGLEV_DEFAULT_SIZE, (double)(now_ns() - start) / 1e9);
    return 0;
}
