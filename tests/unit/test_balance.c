/* test_balance: the pool runtime and the four strategies, asserted exactly:
 * round-robin and smooth weighted sequences, least-conn order and tie
 * rotation, Maglev stability, spread and movement, retries and frees. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/balance/balance.h"
#include "tests/rng.h"
#include "tests/test.h"

#define NCLIENTS 1000

/* A pool of n backends named "a", "b", ... (or names[i]), addresses
 * 127.0.0.1:9001+i, built for strategy s. */
static struct pool *pool_make(enum lb_strategy s, size_t n, const unsigned *weights,
                              const char *const *names, unsigned table_size)
{
    struct pool *pool = pool_new("p", s);
    ck_assert_ptr_nonnull(pool);
    if (table_size)
        pool->hash_table_size = table_size;
    for (size_t i = 0; i < n; i++) {
        char name[16], address[32];
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9001 + i)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        snprintf(name, sizeof(name), "%c", (char)('a' + i));
        snprintf(address, sizeof(address), "127.0.0.1:%zu", 9001 + i);
        const char *nm = names ? names[i] : name;
        struct backend *b = pool_add_backend(pool, NULL, nm, address, (struct sockaddr *)&sin,
                                             sizeof(sin), weights ? weights[i] : 1);
        ck_assert_ptr_nonnull(b);
    }
    ck_assert_int_eq(pool_build(pool), 0);
    return pool;
}

/* The ids of n successive picks (no conn_start), concatenated into out. */
static const char *pick_seq(struct pool *pool, size_t n, char *out)
{
    struct pick_ctx ctx = {0};
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        struct backend *b = pool_pick(pool, &ctx);
        strcat(out, b ? b->id : "-");
    }
    return out;
}

/* Counts, per backend index, the picks of one cycle of `picks` picks. */
static void pick_count(struct pool *pool, size_t picks, unsigned *count)
{
    struct pick_ctx ctx = {0};
    memset(count, 0, pool->nbackends * sizeof(*count));
    for (size_t i = 0; i < picks; i++) {
        struct backend *b = pool_pick(pool, &ctx);
        ck_assert_ptr_nonnull(b);
        count[b->index]++;
    }
}

/* Client i of NCLIENTS: 10.<i/256>.<i%256>.7, port varies. */
static struct sockaddr_in client4(unsigned i)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40000 + i)};
    sin.sin_addr.s_addr = htonl(0x0a000007u | ((i >> 8) & 0xff) << 16 | (i & 0xff) << 8);
    return sin;
}

/* The backend iphash gives a sockaddr client (ctx->tried empty). */
static struct backend *pick_client(struct pool *pool, const void *sa, socklen_t len)
{
    struct pick_ctx ctx = {0};
    pick_key_ip(&ctx, sa, len);
    return pool_pick(pool, &ctx);
}

static struct backend *pick4(struct pool *pool, unsigned i)
{
    struct sockaddr_in sin = client4(i);
    return pick_client(pool, &sin, sizeof(sin));
}

/* Fills ids[i] with the id of client i's backend, for n clients. */
static void map_clients(struct pool *pool, unsigned n, const char **ids)
{
    for (unsigned i = 0; i < n; i++) {
        struct backend *b = pick4(pool, i);
        ck_assert_ptr_nonnull(b);
        ids[i] = b->id;
    }
}

/* ck_assert for loops: Check's ck_assert sends a message to its parent
 * process even when it holds, this one only when it fails. */
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #expr);                                          \
    } while (0)

/* ---- roundrobin ---- */

START_TEST(test_rr_sequence)
{
    unsigned w[] = {1, 5, 2};
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_ROUNDROBIN, 3, w, NULL, 0);
    ck_assert_str_eq(pick_seq(pool, 9, s), "abcabcabc");
    pool_release(pool);
}
END_TEST

START_TEST(test_rr_skip_down)
{
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_ROUNDROBIN, 3, NULL, NULL, 0);
    ck_assert_str_eq(pick_seq(pool, 4, s), "abca");
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], false), 0);
    ck_assert_uint_eq(pool->navailable, 2);
    ck_assert_str_eq(pick_seq(pool, 4, s), "caca");
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], true), 0);
    ck_assert_uint_eq(pool->navailable, 3);
    ck_assert_str_eq(pick_seq(pool, 6, s), "bcabca");
    pool_release(pool);
}
END_TEST

START_TEST(test_rr_skip_weight0)
{
    unsigned w[] = {1, 1, 0, 1};
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_ROUNDROBIN, 4, w, NULL, 0);
    ck_assert_uint_eq(pool->navailable, 3);
    ck_assert_str_eq(pick_seq(pool, 6, s), "abdabd");
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[0], 0), 0);
    ck_assert_str_eq(pick_seq(pool, 4, s), "bdbd");
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[2], 3), 0);
    ck_assert_str_eq(pick_seq(pool, 6, s), "bcdbcd");
    pool_release(pool);
}
END_TEST

/* 200 backends (more than one bitmap word, runs of downs across words),
 * random ups, downs, weight-0s and tried sets: every pick is the one the
 * plain scan from the cursor finds (balance_scan(), the reference). */
START_TEST(test_rr_matches_scan)
{
    enum { N = 200 };
    struct pool *pool = pool_new("p", LB_STRATEGY_ROUNDROBIN);
    ck_assert_ptr_nonnull(pool);
    for (size_t i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%zu", i);
        CHECK(pool_add_backend(pool, id, id, id, NULL, 0, 1) != NULL);
    }
    ck_assert_int_eq(pool_build(pool), 0);
    rng_seed(9);
    size_t cursor = 0;
    for (int step = 0; step < 4000; step++) {
        struct backend *b = pool->backends[rng() % N];
        if (step % 3 == 0) {
            size_t run = rng() % 100; /* a run of backends going down or up */
            bool up = rng() % 2;
            for (size_t k = 0; k < run; k++)
                CHECK(pool_set_backend_up(pool, pool->backends[(b->index + k) % N], up) == 0);
        } else if (step % 7 == 0) {
            CHECK(pool_set_backend_weight(pool, b, b->weight ? 0 : 1) == 0);
        }
        struct pick_ctx ctx = {0};
        for (uint64_t t = rng() % 4; t > 0; t--)
            ctx.tried[ctx.ntried++] = pool->backends[rng() % N];
        struct backend *want = balance_scan(pool, &ctx, cursor);
        struct backend *got = pool_pick(pool, &ctx);
        if (got != want)
            ck_abort_msg("step %d: got %s, want %s", step, got ? got->id : "none",
                         want ? want->id : "none");
        if (got)
            cursor = (got->index + 1) % N;
    }
    pool_release(pool);
}
END_TEST

/* ---- weighted ---- */

START_TEST(test_wrr_511)
{
    unsigned w[] = {5, 1, 1};
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 3, w, NULL, 0);
    /* a's third pick is due by the fifth (3 * 7/5 = 4.2), b's and c's only
     * by the seventh: earliest deadline first takes a, where nginx's SWRR
     * gave b (a a b a c a a). */
    for (int cycle = 0; cycle < 4; cycle++)
        ck_assert_str_eq(pick_seq(pool, 7, s), "aaabaca");
    pool_release(pool);
}
END_TEST

START_TEST(test_wrr_proportions)
{
    unsigned w1[] = {3, 2, 1};
    unsigned c[3];
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 3, w1, NULL, 0);
    ck_assert_str_eq(pick_seq(pool, 6, s), "abacba");
    for (int cycle = 0; cycle < 5; cycle++) {
        pick_count(pool, 6, c);
        ck_assert_uint_eq(c[0], 3);
        ck_assert_uint_eq(c[1], 2);
        ck_assert_uint_eq(c[2], 1);
    }
    pool_release(pool);

    unsigned w2[] = {10, 0, 5};
    pool = pool_make(LB_STRATEGY_WEIGHTED, 3, w2, NULL, 0);
    for (int cycle = 0; cycle < 5; cycle++) {
        pick_count(pool, 15, c);
        ck_assert_uint_eq(c[0], 10);
        ck_assert_uint_eq(c[1], 0);
        ck_assert_uint_eq(c[2], 5);
    }
    pool_release(pool);
}
END_TEST

START_TEST(test_wrr_down_and_weight)
{
    unsigned w[] = {3, 2, 1};
    unsigned c[3];
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 3, w, NULL, 0);
    ck_assert_str_eq(pick_seq(pool, 2, s), "ab");
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], false), 0);
    for (int cycle = 0; cycle < 5; cycle++) {
        pick_count(pool, 4, c);
        ck_assert_uint_eq(c[0], 3);
        ck_assert_uint_eq(c[1], 0);
        ck_assert_uint_eq(c[2], 1);
    }
    /* b comes back 1 pick into a cycle of 4 (a a a c): it joins it with its
     * share of what is left (2 of the 5 picks left, b a c b a), then the
     * next cycle of 6 starts (a ...). No restart: a and c keep their place. */
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 3);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], true), 0);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 5);
    ck_assert_str_eq(pick_seq(pool, 6, s), "bacbaa");
    /* c goes from 1 to 5 one pick into a cycle: c, which had none of it
     * yet, gets 5 of the 9 left, then a cycle of 10 starts (c ...). */
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[2], 5), 0);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 9);
    ck_assert_str_eq(pick_seq(pool, 10, s), "ccbcacbacc");
    for (int cycle = 0; cycle < 3; cycle++) {
        pick_count(pool, 10, c);
        ck_assert_uint_eq(c[0], 3);
        ck_assert_uint_eq(c[1], 2);
        ck_assert_uint_eq(c[2], 5);
    }
    pool_release(pool);
}
END_TEST

/* What the weighted strategy should be balancing with: backend i's
 * eff_weight when it is available, else 0. */
static void wrr_shares(struct pool *pool, unsigned *w)
{
    for (size_t i = 0; i < pool->nbackends; i++)
        w[i] = backend_available(pool->backends[i]) ? pool->backends[i]->eff_weight : 0;
}

/* Picks one whole cycle of a weighted pool, from its start, and checks it
 * exactly against w (wrr_shares()): each backend is picked w[i] times, and
 * after every prefix of p picks each one is within one pick of its share,
 * |count_i - p * w_i / W| < 1, in integers |W * count_i - p * w_i| < W. A
 * backend is furthest ahead just after one of its picks and furthest behind
 * just before one (or at the end, where the counts are checked), so
 * checking at its picks checks every prefix. The picked indexes go to
 * order (W entries) when it is not NULL. No ck_assert in the loop: each one
 * is a message to Check's parent process. */
static void wrr_check_cycle(struct pool *pool, const unsigned *w, uint32_t *order)
{
    size_t n = pool->nbackends;
    int64_t total = 0;
    unsigned *count = calloc(n ? n : 1, sizeof(*count));
    ck_assert_ptr_nonnull(count);
    for (size_t i = 0; i < n; i++)
        total += w[i];
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 0);
    const char *bad = NULL;
    int64_t p;
    size_t i = 0;
    for (p = 1; p <= total && bad == NULL; p++) {
        struct backend *b = pool_pick(pool, NULL);
        if (b == NULL) {
            bad = "no backend";
            break;
        }
        i = b->index;
        int64_t k = ++count[i], wi = w[i];
        if (order)
            order[p - 1] = (uint32_t)i;
        if (wi == 0)
            bad = "unavailable";
        else if (k * total - p * wi >= total)
            bad = "a pick or more ahead of its share";
        else if ((p - 1) * wi - (k - 1) * total >= total)
            bad = "a pick or more behind its share";
    }
    ck_assert_msg(bad == NULL, "pick %lld of %lld: backend %zu (weight %u, picked %u): %s",
                  (long long)p - 1, (long long)total, i, w[i], count[i], bad);
    for (i = 0; i < n && count[i] == w[i]; i++)
        ;
    ck_assert_msg(i == n, "backend %zu: %u picks in a cycle, weight %u", i, count[i], w[i]);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 0);
    free(count);
}

/* Every weight set of 3 backends with weights 0..6 and of 4 with 0..4, two
 * cycles each, every backend's count checked after every prefix (which
 * also checks wrr_check_cycle's shortcut). */
START_TEST(test_wrr_smooth_exhaustive)
{
    static const struct {
        size_t n;
        unsigned max;
    } sets[] = {{3, 6}, {4, 4}};
    for (size_t s = 0; s < 2; s++) {
        size_t n = sets[s].n;
        unsigned w[4] = {0}, sets_tried = 0;
        for (;;) {
            unsigned total = 0;
            for (size_t i = 0; i < n; i++)
                total += w[i];
            struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, n, w, NULL, 0);
            for (unsigned p = 1; total > 0 && p <= 2 * total; p++) {
                static unsigned count[4];
                unsigned q = (p - 1) % total + 1; /* picks into this cycle */
                if (q == 1)
                    memset(count, 0, sizeof(count));
                count[pool_pick(pool, NULL)->index]++;
                for (size_t i = 0; i < n; i++) {
                    long long dev = (long long)count[i] * total - (long long)q * w[i];
                    if (dev <= -(long long)total || dev >= (long long)total)
                        ck_abort_msg("weights %u,%u,%u,%u: pick %u: backend %zu has %u", w[0], w[1],
                                     w[2], w[3], p, i, count[i]);
                    if (q == total && count[i] != w[i])
                        ck_abort_msg("weights %u,%u,%u,%u: backend %zu: %u a cycle", w[0], w[1],
                                     w[2], w[3], i, count[i]);
                }
            }
            pool_release(pool);
            sets_tried++;
            size_t i = 0;
            while (i < n && w[i] == sets[s].max)
                w[i++] = 0;
            if (i == n)
                break;
            w[i]++;
        }
        ck_assert_uint_eq(sets_tried, s == 0 ? 7 * 7 * 7 : 5 * 5 * 5 * 5);
    }
}
END_TEST

/* The order the README states, computed the slow way: among the backends
 * whose next pick has started (done_i / w_i < p / W for the p-th pick of
 * the cycle), the earliest deadline (done_i + 1) / w_i, then the lighter,
 * then config order. */
static size_t wrr_reference(size_t n, const unsigned *w, const unsigned *done, uint64_t total,
                            uint64_t p)
{
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        if (done[i] >= w[i] || (uint64_t)done[i] * total >= p * w[i])
            continue;
        if (best == n)
            best = i;
        uint64_t di = (uint64_t)(done[i] + 1) * w[best], db = (uint64_t)(done[best] + 1) * w[i];
        if (di < db || (di == db && w[i] < w[best]))
            best = i;
    }
    return best;
}

START_TEST(test_wrr_matches_reference)
{
    rng_seed(7);
    for (int set = 0; set < 120; set++) {
        size_t n = 1 + rng() % 40;
        unsigned w[40], done[40] = {0};
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            w[i] = (unsigned)(set % 6 ? rng() % 13 : rng() % (LB_WEIGHT_MAX + 1));
            total += w[i];
        }
        struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, n, w, NULL, 0);
        for (uint64_t p = 1; p <= (set % 6 ? 2 : 1) * total; p++) {
            uint64_t q = (p - 1) % total + 1;
            if (q == 1)
                memset(done, 0, sizeof(done));
            size_t want = wrr_reference(n, w, done, total, q);
            struct backend *b = pool_pick(pool, NULL);
            if (b == NULL || b->index != want)
                ck_abort_msg("set %d: pick %llu: got %d, want %zu", set, (unsigned long long)p,
                             b ? (int)b->index : -1, want);
            done[want]++;
        }
        pool_release(pool);
    }
}
END_TEST

/* Random weight sets, up to 300 backends with weights 0..LB_WEIGHT_MAX:
 * exact counts and the one-pick bound over every prefix of the cycles, and
 * every cycle the same sequence. */
START_TEST(test_wrr_smooth_random)
{
    rng_seed(1);
    for (int set = 0; set < 24; set++) {
        size_t n = 1 + rng() % 300;
        unsigned *w = calloc(n, sizeof(*w));
        ck_assert_ptr_nonnull(w);
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            switch (set % 6) {
            case 0: /* anything */
                w[i] = (unsigned)(rng() % (LB_WEIGHT_MAX + 1));
                break;
            case 1: /* the usual small weights */
            case 2:
                w[i] = (unsigned)(rng() % 11);
                break;
            default: /* mostly 1, a few heavy ones */
                w[i] = rng() % 16 ? 1 : (unsigned)(1 + rng() % LB_WEIGHT_MAX);
            }
            total += w[i];
        }
        struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, n, w, NULL, 0);
        uint32_t *first = calloc(total + 1, sizeof(*first)), *next = calloc(total + 1, 4);
        ck_assert(first && next);
        wrr_check_cycle(pool, w, first);
        if (set % 6) {
            wrr_check_cycle(pool, w, next);
            ck_assert_int_eq(memcmp(first, next, total * sizeof(*first)), 0);
        }
        free(first);
        free(next);
        free(w);
        pool_release(pool);
    }
}
END_TEST

/* Random downs, ups, weight and slow-start changes and retries between
 * random numbers of picks. No unavailable backend is ever picked; the cycle
 * under way ends after exactly the picks it said it had left; and from then
 * on the cycles are exact (and smooth) for the backends available now. */
START_TEST(test_wrr_changes_random)
{
    rng_seed(3);
    for (int run = 0; run < 100; run++) {
        size_t n = 1 + rng() % 24;
        unsigned w[24];
        for (size_t i = 0; i < n; i++)
            w[i] = (unsigned)(run % 6 ? rng() % 9 : rng() % (LB_WEIGHT_MAX + 1));
        struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, n, w, NULL, 0);
        for (int step = 0; step < 12; step++) {
            struct backend *b = pool->backends[rng() % n];
            switch (rng() % 5) {
            case 0:
                ck_assert_int_eq(pool_set_backend_up(pool, b, !b->up), 0);
                break;
            case 1:
                ck_assert_int_eq(pool_set_backend_weight(pool, b, (unsigned)(rng() % 12)), 0);
                break;
            case 2:
                ck_assert_int_eq(
                    pool_set_backend_eff_weight(pool, b, (unsigned)(rng() % (b->weight + 1))), 0);
                break;
            default: {
                struct pick_ctx ctx = {0};
                ctx.tried[ctx.ntried++] = b;
                if (rng() % 2)
                    ctx.tried[ctx.ntried++] = pool->backends[rng() % n];
                struct backend *got = pool_pick(pool, &ctx);
                ck_assert(got == NULL || backend_available(got));
                /* The retry rule: a tried backend only when all are. */
                if (got && pick_tried(&ctx, got))
                    for (size_t j = 0; j < n; j++)
                        CHECK(!backend_available(pool->backends[j]) ||
                              pick_tried(&ctx, pool->backends[j]));
            }
            }
            for (uint64_t k = rng() % 40; k > 0; k--) {
                struct backend *got = pool_pick(pool, NULL);
                CHECK(got == NULL ? pool->navailable == 0 : backend_available(got));
            }
        }
        if (pool->navailable > 0) {
            for (uint64_t k = balance_weighted_cycle_left(pool); k > 0; k--)
                CHECK(backend_available(pool_pick(pool, NULL)));
            wrr_shares(pool, w);
            wrr_check_cycle(pool, w, NULL);
            wrr_check_cycle(pool, w, NULL);
        }
        pool_release(pool);
    }
}
END_TEST

/* What a change does to the cycle under way, step by step (a b c d, weights
 * 4 3 2 1: a b c a b a d c b a). */
START_TEST(test_wrr_mid_cycle)
{
    unsigned w[] = {4, 3, 2, 1}, c[4];
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 4, w, NULL, 0);
    ck_assert_str_eq(pick_seq(pool, 10, s), "abcabadcba");
    ck_assert_str_eq(pick_seq(pool, 4, s), "abca");
    /* b goes down with 2 of its 3 picks to come: the cycle loses them, the
     * others keep theirs (a 2, c 1, d 1), then cycles of 7 follow. */
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 6);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], false), 0);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 4);
    pick_count(pool, 4, c);
    ck_assert_uint_eq(c[0], 2);
    ck_assert_uint_eq(c[1], 0);
    ck_assert_uint_eq(c[2], 1);
    ck_assert_uint_eq(c[3], 1);
    wrr_shares(pool, w);
    wrr_check_cycle(pool, w, NULL);
    /* Back up 3 picks into a cycle of 7: its share of the rest, 3 * 4/7
     * rounded up = 2 picks, joins the 4 left. */
    pick_count(pool, 3, c);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], true), 0);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 6);
    pick_count(pool, 6, c);
    ck_assert_uint_eq(c[1], 2);
    wrr_shares(pool, w);
    wrr_check_cycle(pool, w, NULL);
    /* a from 4 to 8 after 2 of its picks (a b c a b): it keeps the half it
     * had done, 4 of its 8 are left instead of 2: 5 + 2 = 7 left. */
    ck_assert_str_eq(pick_seq(pool, 5, s), "abcab");
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[0], 8), 0);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 7);
    pick_count(pool, 7, c);
    ck_assert_uint_eq(c[0], 4);
    ck_assert_uint_eq(c[0] + c[1] + c[2] + c[3], 7);
    wrr_shares(pool, w);
    ck_assert_uint_eq(w[0], 8);
    wrr_check_cycle(pool, w, NULL);
    /* A change at a cycle's end waits for the next one. */
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[3], false), 0);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 0);
    wrr_shares(pool, w);
    wrr_check_cycle(pool, w, NULL);
    pool_release(pool);
}
END_TEST

/* Slow start moves eff_weight through update: each step applies at once to
 * the cycle under way, and the cycles after it are exact. */
START_TEST(test_wrr_slow_start)
{
    unsigned w[] = {6, 6, 6}, shares[3];
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 3, w, NULL, 0);
    struct backend *b = pool->backends[2];
    ck_assert_int_eq(pool_set_backend_up(pool, b, false), 0);
    ck_assert_int_eq(pool_set_backend_eff_weight(pool, b, 1), 0);
    ck_assert_int_eq(pool_set_backend_up(pool, b, true), 0);
    for (unsigned eff = 1; eff <= 6; eff++) {
        ck_assert_int_eq(pool_set_backend_eff_weight(pool, b, eff), 0);
        for (uint64_t k = balance_weighted_cycle_left(pool); k > 0; k--)
            pool_pick(pool, NULL);
        wrr_shares(pool, shares);
        ck_assert_uint_eq(shares[2], eff);
        wrr_check_cycle(pool, shares, NULL);
        pick_seq(pool, eff, (char[16]){0}); /* the next step comes mid-cycle */
    }
    pool_release(pool);
}
END_TEST

/* A retry avoids the tried backends and is charged to the schedule like any
 * pick; when every untried one is done with this cycle, one of them still
 * answers, uncharged; when all are tried, any available one answers. */
START_TEST(test_wrr_retry)
{
    unsigned w[] = {2, 1, 1}, shares[3];
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 3, w, NULL, 0);
    struct backend *a = pool->backends[0], *b = pool->backends[1], *c = pool->backends[2];
    struct pick_ctx ctx = {0};
    ck_assert_ptr_eq(pool_pick(pool, &ctx), a); /* a b c a */
    ctx.tried[ctx.ntried++] = b;
    ck_assert_ptr_eq(pool_pick(pool, &ctx), c);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 2);
    /* a's second pick and b's are both due at the end: the lighter first. */
    ck_assert_str_eq(pick_seq(pool, 2, s), "ba");
    /* Every backend tried: a pick as usual. */
    ctx.tried[ctx.ntried++] = a;
    ctx.tried[ctx.ntried++] = c;
    ck_assert_ptr_eq(pool_pick(pool, &ctx), a);
    ck_assert_uint_eq(balance_weighted_cycle_left(pool), 3);
    ck_assert_str_eq(pick_seq(pool, 3, s), "bca");

    /* 1, 1: a is done with the cycle, b (tried) has its pick left. */
    unsigned w11[] = {1, 1};
    struct pool *p2 = pool_make(LB_STRATEGY_WEIGHTED, 2, w11, NULL, 0);
    ck_assert_str_eq(pick_seq(p2, 1, s), "a");
    struct pick_ctx retry = {0};
    retry.tried[retry.ntried++] = p2->backends[1];
    /* A tried backend of another pool (same index) means nothing here. */
    retry.tried[retry.ntried++] = b;
    ck_assert_ptr_eq(pool_pick(p2, &retry), p2->backends[0]);
    ck_assert_uint_eq(balance_weighted_cycle_left(p2), 1);
    ck_assert_str_eq(pick_seq(p2, 5, s), "babab");
    pool_release(p2);

    /* Retries leave the cycles after them exact. */
    for (int i = 0; i < 20; i++) {
        struct pick_ctx r = {0};
        r.tried[r.ntried++] = pool->backends[i % 3];
        struct backend *got = pool_pick(pool, &r);
        ck_assert_ptr_ne(got, pool->backends[i % 3]);
    }
    for (uint64_t k = balance_weighted_cycle_left(pool); k > 0; k--)
        pool_pick(pool, NULL);
    wrr_shares(pool, shares);
    wrr_check_cycle(pool, shares, NULL);
    pool_release(pool);
}
END_TEST

/* 2,000 backends, weights 1..10, one in ten down: an exact cycle; then
 * 2,000 changes among picks and an exact cycle again. */
START_TEST(test_wrr_large)
{
    enum { N = 2000 };
    static unsigned w[N];
    rng_seed(5);
    for (size_t i = 0; i < N; i++)
        w[i] = 1 + (unsigned)(rng() % 10);
    struct pool *pool = pool_new("big", LB_STRATEGY_WEIGHTED);
    ck_assert_ptr_nonnull(pool);
    for (size_t i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%zu", i);
        CHECK(pool_add_backend(pool, id, id, id, NULL, 0, w[i]) != NULL);
    }
    ck_assert_int_eq(pool_build(pool), 0);
    for (size_t i = 0; i < N; i += 10)
        ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[i], false), 0);
    wrr_shares(pool, w);
    wrr_check_cycle(pool, w, NULL);
    for (int k = 0; k < 2000; k++) {
        struct backend *b = pool->backends[rng() % N];
        if (k % 2)
            CHECK(pool_set_backend_up(pool, b, !b->up) == 0);
        else
            CHECK(pool_set_backend_weight(pool, b, 1 + (unsigned)(rng() % 10)) == 0);
        for (int j = 0; j < 10; j++)
            CHECK(backend_available(pool_pick(pool, NULL)));
    }
    for (uint64_t k = balance_weighted_cycle_left(pool); k > 0; k--)
        pool_pick(pool, NULL);
    wrr_shares(pool, w);
    wrr_check_cycle(pool, w, NULL);
    pool_release(pool);
}
END_TEST

/* ---- leastconn ---- */

START_TEST(test_lc_fewest)
{
    struct pick_ctx ctx = {0};
    struct pool *pool = pool_make(LB_STRATEGY_LEASTCONN, 3, NULL, NULL, 0);
    struct backend *a = pool->backends[0], *b = pool->backends[1], *c = pool->backends[2];
    pool_conn_start(pool, a);
    pool_conn_start(pool, a);
    pool_conn_start(pool, b);
    ck_assert_ptr_eq(pool_pick(pool, &ctx), c);
    pool_conn_start(pool, c);
    /* a 2, b 1, c 1: b and c tie, b was picked less recently. */
    ck_assert_ptr_eq(pool_pick(pool, &ctx), b);
    pool_conn_start(pool, b);
    ck_assert_ptr_eq(pool_pick(pool, &ctx), c);
    pool_conn_start(pool, c);
    /* a 2, b 2, c 2 */
    ck_assert_ptr_eq(pool_pick(pool, &ctx), a);
    pool_conn_end(pool, a);
    pool_conn_end(pool, a);
    ck_assert_uint_eq(a->active, 0);
    ck_assert_ptr_eq(pool_pick(pool, &ctx), a);
    for (int i = 0; i < 2; i++) {
        pool_conn_end(pool, b);
        pool_conn_end(pool, c);
    }
    pool_release(pool);
}
END_TEST

START_TEST(test_lc_ties_rotate)
{
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_LEASTCONN, 3, NULL, NULL, 0);
    ck_assert_str_eq(pick_seq(pool, 9, s), "abcabcabc");
    /* Equal but non-zero loads rotate too, in least-recently-picked order. */
    struct pick_ctx ctx = {0};
    for (int i = 0; i < 3; i++)
        pool_conn_start(pool, pool->backends[i]);
    ck_assert_str_eq(pick_seq(pool, 6, s), "abcabc");
    pool_conn_end(pool, pool->backends[1]);
    ck_assert_ptr_eq(pool_pick(pool, &ctx), pool->backends[1]);
    ck_assert_ptr_eq(pool_pick(pool, &ctx), pool->backends[1]);
    for (int i = 0; i < 3; i++)
        if (pool->backends[i]->active)
            pool_conn_end(pool, pool->backends[i]);
    pool_release(pool);
}
END_TEST

START_TEST(test_lc_weights)
{
    unsigned w[] = {2, 1, 1};
    struct pick_ctx ctx = {0};
    struct pool *pool = pool_make(LB_STRATEGY_LEASTCONN, 3, w, NULL, 0);
    for (int i = 0; i < 40; i++)
        pool_conn_start(pool, pool_pick(pool, &ctx));
    ck_assert_uint_eq(pool->backends[0]->active, 20);
    ck_assert_uint_eq(pool->backends[1]->active, 10);
    ck_assert_uint_eq(pool->backends[2]->active, 10);
    /* Steady state: a session ends somewhere, a new one starts. */
    for (int i = 0; i < 300; i++) {
        pool_conn_end(pool, pool->backends[(i * 7) % 3]);
        pool_conn_start(pool, pool_pick(pool, &ctx));
        ck_assert_uint_eq(
            pool->backends[0]->active + pool->backends[1]->active + pool->backends[2]->active, 40);
    }
    ck_assert_uint_eq(pool->backends[0]->active, 20);
    ck_assert_uint_eq(pool->backends[1]->active, 10);
    ck_assert_uint_eq(pool->backends[2]->active, 10);
    /* A weight change moves new sessions at once: b now carries 4x. */
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[1], 8), 0);
    for (int i = 0; i < 20; i++)
        pool_conn_start(pool, pool_pick(pool, &ctx));
    ck_assert_uint_eq(pool->backends[1]->active, 30);
    for (int i = 0; i < 3; i++)
        while (pool->backends[i]->active)
            pool_conn_end(pool, pool->backends[i]);
    pool_release(pool);
}
END_TEST

START_TEST(test_lc_down)
{
    char s[64];
    struct pick_ctx ctx = {0};
    struct pool *pool = pool_make(LB_STRATEGY_LEASTCONN, 3, NULL, NULL, 0);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[0], false), 0);
    ck_assert_str_eq(pick_seq(pool, 4, s), "bcbc");
    /* A down backend's sessions still end cleanly, and it returns idle. */
    pool_conn_start(pool, pool->backends[1]);
    pool_conn_start(pool, pool->backends[2]);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[0], true), 0);
    ck_assert_ptr_eq(pool_pick(pool, &ctx), pool->backends[0]);
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[0], 0), 0);
    ck_assert_ptr_ne(pool_pick(pool, &ctx), pool->backends[0]);
    pool_conn_end(pool, pool->backends[1]);
    pool_conn_end(pool, pool->backends[2]);
    pool_release(pool);
}
END_TEST

/* Whether a goes before b in least-connections order, as the README says:
 * active/weight, then least recently picked (seq), then config order. */
static bool lc_ref_less(const struct backend *a, const struct backend *b, const uint64_t *seq)
{
    uint64_t la = a->active * b->eff_weight, lb = b->active * a->eff_weight;
    if (la != lb)
        return la < lb;
    if (seq[a->index] != seq[b->index])
        return seq[a->index] < seq[b->index];
    return a->index < b->index;
}

/* Random sessions, downs, weights and retries over 60 backends: every pick
 * is the best available backend not tried (the best of all when every one
 * was tried), computed here by a scan. */
START_TEST(test_lc_matches_scan)
{
    enum { N = 60 };
    unsigned w[N];
    uint64_t seq[N] = {0}, clock = 0;
    rng_seed(13);
    for (size_t i = 0; i < N; i++)
        w[i] = 1 + (unsigned)(rng() % 5);
    struct pool *pool = pool_make(LB_STRATEGY_LEASTCONN, N, w, NULL, 0);
    for (int step = 0; step < 5000; step++) {
        struct backend *b = pool->backends[rng() % N];
        switch (rng() % 6) {
        case 0:
            CHECK(pool_set_backend_up(pool, b, !b->up) == 0);
            break;
        case 1:
            CHECK(pool_set_backend_weight(pool, b, (unsigned)(rng() % 6)) == 0);
            break;
        case 2:
            if (b->active > 0)
                pool_conn_end(pool, b);
            break;
        default:
            break;
        }
        struct pick_ctx ctx = {0};
        for (uint64_t t = rng() % 5; t > 0; t--)
            ctx.tried[ctx.ntried++] = pool->backends[rng() % N];
        struct backend *want = NULL, *any = NULL;
        for (size_t i = 0; i < N; i++) {
            struct backend *c = pool->backends[i];
            if (!backend_available(c))
                continue;
            if (any == NULL || lc_ref_less(c, any, seq))
                any = c;
            if (!pick_tried(&ctx, c) && (want == NULL || lc_ref_less(c, want, seq)))
                want = c;
        }
        if (want == NULL)
            want = any;
        struct backend *got = pool_pick(pool, &ctx);
        if (got != want)
            ck_abort_msg("step %d: got %s, want %s", step, got ? got->id : "none",
                         want ? want->id : "none");
        if (got) {
            seq[got->index] = ++clock;
            if (rng() % 2)
                pool_conn_start(pool, got);
        }
    }
    for (size_t i = 0; i < N; i++)
        while (pool->backends[i]->active)
            pool_conn_end(pool, pool->backends[i]);
    pool_release(pool);
}
END_TEST

/* ---- iphash (Maglev) ---- */

static const char *const names5[] = {"be1", "be2", "be3", "be4", "be5"};
static const char *const names4[] = {"be1", "be2", "be4", "be5"};
static const char *const names5rev[] = {"be5", "be4", "be3", "be2", "be1"};

START_TEST(test_hash_fixed)
{
    /* The hash is part of the contract between lb instances: pin it. */
    ck_assert_uint_eq(balance_hash("", 0, 0), 17280346270528514342ULL);
    ck_assert_uint_eq(balance_hash("a", 1, 0), 9413272369427828315ULL);
    ck_assert_uint_eq(balance_hash("10.0.0.1:80", 11, 42), 12787256910781205202ULL);
    ck_assert_uint_ne(balance_hash("a", 1, 0), balance_hash("a", 1, 1));
    ck_assert_uint_ne(balance_hash("a", 1, 0), balance_hash("b", 1, 0));
}
END_TEST

START_TEST(test_maglev_stable_and_spread)
{
    static const char *ids[NCLIENTS];
    struct pool *pool = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5, 0);
    unsigned count[5] = {0};
    map_clients(pool, NCLIENTS, ids);
    for (unsigned i = 0; i < NCLIENTS; i++) {
        struct backend *b = pick4(pool, i);
        count[b->index]++;
        ck_assert_str_eq(b->id, ids[i]);
        struct sockaddr_in other_port = client4(i);
        other_port.sin_port = htons(1);
        ck_assert_ptr_eq(pick_client(pool, &other_port, sizeof(other_port)), b);
    }
    for (int i = 0; i < 5; i++) {
        printf("maglev spread: %s %u\n", names5[i], count[i]);
        ck_assert_uint_ge(count[i], 170);
        ck_assert_uint_le(count[i], 230);
    }
    pool_release(pool);
}
END_TEST

START_TEST(test_maglev_remove_add)
{
    static const char *ids5[NCLIENTS], *ids4[NCLIENTS];
    struct pool *p5 = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5, 0);
    struct pool *p4 = pool_make(LB_STRATEGY_IPHASH, 4, NULL, names4, 0);
    map_clients(p5, NCLIENTS, ids5);
    map_clients(p4, NCLIENTS, ids4);
    unsigned moved = 0, on_removed = 0, others_moved = 0;
    for (unsigned i = 0; i < NCLIENTS; i++) {
        bool was_removed = strcmp(ids5[i], "be3") == 0;
        on_removed += was_removed;
        /* 5 -> 4: every client of the removed backend moves. */
        if (was_removed)
            ck_assert_str_ne(ids4[i], "be3");
        if (strcmp(ids5[i], ids4[i]) == 0)
            continue;
        moved++;
        others_moved += !was_removed;
    }
    printf("maglev remove 1 of 5: moved %u of %u (removed backend had %u, others moved %u)\n",
           moved, NCLIENTS, on_removed, others_moved);
    ck_assert_uint_le(moved, NCLIENTS / 5 + NCLIENTS / 50);
    /* Maglev's disruption is minimal only nearly: a removal re-runs the
     * fill, and a few contested entries change hands between survivors
     * (measured ~0.08% of clients over 100,000; 1 of these 1,000). Read
     * backwards, 4 -> 5 moves the same few between survivors and every
     * other mover lands on the added backend. */
    ck_assert_uint_le(others_moved, NCLIENTS / 100);
    ck_assert_uint_eq(moved, on_removed + others_moved);
    pool_release(p5);
    pool_release(p4);
}
END_TEST

START_TEST(test_maglev_order_independent)
{
    static const char *a[5000], *b[5000];
    unsigned sizes[] = {0, 101};
    for (int s = 0; s < 2; s++) {
        struct pool *p1 = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5, sizes[s]);
        struct pool *p2 = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5rev, sizes[s]);
        map_clients(p1, 5000, a);
        map_clients(p2, 5000, b);
        for (unsigned i = 0; i < 5000; i++)
            ck_assert_str_eq(a[i], b[i]);
        pool_release(p1);
        pool_release(p2);
    }
}
END_TEST

START_TEST(test_maglev_ipv6)
{
    struct pool *pool = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5, 0);
    unsigned count[5] = {0};
    for (unsigned i = 0; i < NCLIENTS; i++) {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(5555)};
        inet_pton(AF_INET6, "2001:db8::", &s6.sin6_addr);
        s6.sin6_addr.s6_addr[14] = (unsigned char)(i >> 8);
        s6.sin6_addr.s6_addr[15] = (unsigned char)i;
        struct backend *b = pick_client(pool, &s6, sizeof(s6));
        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_eq(pick_client(pool, &s6, sizeof(s6)), b);
        count[b->index]++;

        /* ::ffff:a.b.c.d hashes like a.b.c.d. */
        struct sockaddr_in s4 = client4(i);
        struct sockaddr_in6 m6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
        m6.sin6_addr.s6_addr[10] = 0xff;
        m6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&m6.sin6_addr.s6_addr[12], &s4.sin_addr, 4);
        ck_assert_ptr_eq(pick_client(pool, &m6, sizeof(m6)), pick4(pool, i));
    }
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_ge(count[i], 170);
        ck_assert_uint_le(count[i], 230);
    }
    /* No usable client address: a deterministic answer, never NULL. */
    struct backend *none = pick_client(pool, NULL, 0);
    ck_assert_ptr_nonnull(none);
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    ck_assert_ptr_eq(pick_client(pool, &unix_sa, sizeof(unix_sa)), none);
    pool_release(pool);
}
END_TEST

START_TEST(test_maglev_down_up)
{
    static const char *ids[NCLIENTS];
    struct pool *pool = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5, 0);
    map_clients(pool, NCLIENTS, ids);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], false), 0);
    unsigned moved = 0;
    for (unsigned i = 0; i < NCLIENTS; i++) {
        struct backend *b = pick4(pool, i);
        ck_assert_str_ne(b->id, "be2");
        if (strcmp(b->id, ids[i]) != 0) {
            ck_assert_str_eq(ids[i], "be2");
            moved++;
        } else {
            ck_assert_str_ne(ids[i], "be2");
        }
    }
    printf("maglev be2 down: moved %u of %u\n", moved, NCLIENTS);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], true), 0);
    for (unsigned i = 0; i < NCLIENTS; i++)
        ck_assert_str_eq(pick4(pool, i)->id, ids[i]);
    pool_release(pool);
}
END_TEST

START_TEST(test_maglev_weights)
{
    unsigned w[] = {2, 1, 0};
    unsigned count[3] = {0};
    static const char *ids[NCLIENTS];
    struct pool *pool = pool_make(LB_STRATEGY_IPHASH, 3, w, names5, 0);
    map_clients(pool, NCLIENTS, ids);
    for (unsigned i = 0; i < NCLIENTS; i++)
        count[pick4(pool, i)->index]++;
    printf("maglev weights 2:1:0: %u %u %u\n", count[0], count[1], count[2]);
    ck_assert_uint_eq(count[2], 0);
    ck_assert_uint_ge(count[0] * 10, count[1] * 2 * 8);
    ck_assert_uint_le(count[0] * 10, count[1] * 2 * 12);

    /* Weight change rebuilds: equal weights now, be3 gets its share; back
     * to 2:1:0 and every client is where it was. */
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[0], 1), 0);
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[2], 1), 0);
    memset(count, 0, sizeof(count));
    for (unsigned i = 0; i < NCLIENTS; i++)
        count[pick4(pool, i)->index]++;
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_ge(count[i], 333 * 85 / 100);
        ck_assert_uint_le(count[i], 333 * 115 / 100);
    }
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[2], 0), 0);
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[0], 2), 0);
    for (unsigned i = 0; i < NCLIENTS; i++)
        ck_assert_str_eq(pick4(pool, i)->id, ids[i]);
    pool_release(pool);
}
END_TEST

START_TEST(test_maglev_small_table)
{
    struct pool *pool = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5, 101);
    unsigned count[5] = {0};
    for (unsigned i = 0; i < NCLIENTS; i++) {
        struct backend *b = pick4(pool, i);
        ck_assert_ptr_eq(pick4(pool, i), b);
        count[b->index]++;
    }
    for (int i = 0; i < 5; i++)
        ck_assert_uint_gt(count[i], 100);
    pool_release(pool);

    /* A weight too small to win an entry still serves when it is all that
     * is left. */
    unsigned w[] = {LB_WEIGHT_MAX, 1};
    pool = pool_make(LB_STRATEGY_IPHASH, 2, w, names5, 101);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[0], false), 0);
    for (unsigned i = 0; i < 50; i++)
        ck_assert_ptr_eq(pick4(pool, i), pool->backends[1]);
    pool_release(pool);
}
END_TEST

/* Every available backend tried: the client's own backend, as without
 * tried ones (the walk no longer goes round the whole table to learn it);
 * one left untried: that one. */
START_TEST(test_maglev_all_tried)
{
    struct pool *pool = pool_make(LB_STRATEGY_IPHASH, 5, NULL, names5, 0);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], false), 0);
    for (unsigned i = 0; i < 200; i++) {
        struct sockaddr_in sin = client4(i);
        struct pick_ctx ctx = {0};
        pick_key_ip(&ctx, (struct sockaddr *)&sin, sizeof(sin));
        struct backend *own = pool_pick(pool, &ctx);
        for (unsigned k = 0; k < 5; k++)
            if (k != 1 && pool->backends[k] != own)
                ctx.tried[ctx.ntried++] = pool->backends[k];
        ck_assert_ptr_eq(pool_pick(pool, &ctx), own);
        ctx.tried[ctx.ntried++] = own;
        ctx.tried[ctx.ntried++] = own; /* counted once */
        ck_assert_ptr_eq(pool_pick(pool, &ctx), own);
    }
    pool_release(pool);
}
END_TEST

/* ---- every strategy ---- */

static const enum lb_strategy all[] = {LB_STRATEGY_ROUNDROBIN, LB_STRATEGY_WEIGHTED,
                                       LB_STRATEGY_LEASTCONN, LB_STRATEGY_IPHASH};

START_TEST(test_all_retry_avoids_tried)
{
    unsigned w[] = {3, 1, 2};
    struct pool *pool = pool_make(all[_i], 3, w, NULL, 0);
    for (unsigned c = 0; c < 50; c++) {
        struct sockaddr_in sin = client4(c);
        struct pick_ctx ctx = {0};
        pick_key_ip(&ctx, (struct sockaddr *)&sin, sizeof(sin));
        for (unsigned t = 0; t < 3; t++) {
            struct backend *b = pool_pick(pool, &ctx);
            ck_assert_ptr_nonnull(b);
            ck_assert(!pick_tried(&ctx, b));
            ctx.tried[ctx.ntried++] = b;
        }
        /* All tried: still an available backend. */
        ck_assert_ptr_nonnull(pool_pick(pool, &ctx));
        /* With one down, the two others are tried first, then one again. */
        ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[c % 3], false), 0);
        ctx.ntried = 0;
        for (unsigned t = 0; t < 2; t++) {
            struct backend *b = pool_pick(pool, &ctx);
            ck_assert_ptr_ne(b, pool->backends[c % 3]);
            ck_assert(!pick_tried(&ctx, b));
            ctx.tried[ctx.ntried++] = b;
        }
        struct backend *again = pool_pick(pool, &ctx);
        ck_assert_ptr_nonnull(again);
        ck_assert_ptr_ne(again, pool->backends[c % 3]);
        ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[c % 3], true), 0);
    }
    pool_release(pool);
}
END_TEST

START_TEST(test_all_none_available)
{
    struct sockaddr_in sin = client4(1);
    struct pick_ctx ctx = {0};
    pick_key_ip(&ctx, (struct sockaddr *)&sin, sizeof(sin));
    struct pool *pool = pool_make(all[_i], 0, NULL, NULL, 0);
    ck_assert_ptr_null(pool_pick(pool, &ctx));
    pool_release(pool);

    unsigned w[] = {0, 0};
    pool = pool_make(all[_i], 2, w, NULL, 0);
    ck_assert_uint_eq(pool->navailable, 0);
    ck_assert_ptr_null(pool_pick(pool, &ctx));
    pool_release(pool);

    pool = pool_make(all[_i], 2, NULL, NULL, 0);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[0], false), 0);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], false), 0);
    ck_assert_uint_eq(pool->navailable, 0);
    ck_assert_ptr_null(pool_pick(pool, &ctx));
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], true), 0);
    ck_assert_ptr_eq(pool_pick(pool, &ctx), pool->backends[1]);
    pool_release(pool);
}
END_TEST

START_TEST(test_pool_create_and_free)
{
    struct lb_backend_conf bc[2] = {
        {.name = "web1", .address = "127.0.0.1:9001", .id = "web1", .weight = 3},
        {.name = NULL, .address = "[::1]:9002", .id = "[::1]:9002", .weight = 1},
    };
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9001)};
    memcpy(&bc[0].addr, &sin, sizeof(sin));
    bc[0].addrlen = sizeof(sin);
    struct lb_pool_conf conf = {.name = "web",
                                .strategy = all[_i],
                                .connect_timeout_ms = 1500,
                                .retries = 2,
                                .hash_table_size = 101,
                                .backends = bc,
                                .nbackends = 2};
    struct pool *pool = pool_create(&conf);
    ck_assert_ptr_nonnull(pool);
    ck_assert_str_eq(pool->name, "web");
    ck_assert_str_eq(pool->ops->name, balance_ops_for(all[_i])->name);
    ck_assert_uint_eq(pool->connect_timeout_ms, 1500);
    ck_assert_uint_eq(pool->retries, 2);
    ck_assert_uint_eq(pool->hash_table_size, 101);
    ck_assert_uint_eq(pool->nbackends, 2);
    ck_assert_uint_eq(pool->navailable, 2);
    struct backend *b0 = pool->backends[0], *b1 = pool->backends[1];
    ck_assert_str_eq(b0->id, "web1");
    ck_assert_ptr_ne(b0->id, bc[0].id);
    ck_assert_str_eq(b0->name, "web1");
    ck_assert_ptr_null(b1->name);
    ck_assert_str_eq(b1->id, "[::1]:9002");
    ck_assert_str_eq(b1->address, "[::1]:9002");
    ck_assert_uint_eq(b0->addrlen, sizeof(sin));
    ck_assert_int_eq(memcmp(&b0->addr, &sin, sizeof(sin)), 0);
    ck_assert_uint_eq(b0->weight, 3);
    ck_assert(b0->up);
    ck_assert_uint_eq(b0->refs, 1);
    ck_assert_ptr_eq(b0->pool, pool);

    /* A session holds b1 across the pool's end; the last release frees it. */
    struct backend *b = pool_pick(pool, NULL);
    ck_assert_ptr_nonnull(b);
    b->refs++;
    pool_conn_start(pool, b);
    pool_release(pool);
    ck_assert_ptr_null(b->pool);
    ck_assert_uint_eq(b->refs, 1);
    pool_conn_end(b->pool, b);
    ck_assert_uint_eq(b->active, 0);
    backend_release(b);
}
END_TEST

START_TEST(test_ops_names)
{
    ck_assert_str_eq(balance_ops_for(LB_STRATEGY_ROUNDROBIN)->name, "roundrobin");
    ck_assert_str_eq(balance_ops_for(LB_STRATEGY_WEIGHTED)->name, "weighted");
    ck_assert_str_eq(balance_ops_for(LB_STRATEGY_LEASTCONN)->name, "leastconn");
    ck_assert_str_eq(balance_ops_for(LB_STRATEGY_IPHASH)->name, "iphash");
    ck_assert_ptr_null(balance_ops_for((enum lb_strategy)99));
    ck_assert_ptr_null(pool_new("x", (enum lb_strategy)99));
}
END_TEST

/* Backends at their max_connections are skipped by every strategy: the
 * pick goes to one with room (the same key's, when it has room), and none
 * is offered when all are full, though the pool has available ones. */
START_TEST(test_all_skip_full)
{
    struct pool *pool = pool_make(all[_i], 3, NULL, NULL, 0);
    struct backend *a = pool->backends[0], *b = pool->backends[1], *c = pool->backends[2];
    a->max_conns = 1;
    b->max_conns = 2;
    for (unsigned k = 0; k < NCLIENTS; k++) {
        struct sockaddr_in sin = client4(k);
        struct pick_ctx ctx = {0};
        pick_key_ip(&ctx, (struct sockaddr *)&sin, sizeof(sin));
        struct backend *own = pool_pick(pool, &ctx);
        ck_assert_ptr_nonnull(own);
        if (own != a)
            continue;
        pool_conn_start(pool, a); /* a is full now */
        struct backend *other = pool_pick(pool, &ctx);
        ck_assert_ptr_nonnull(other);
        ck_assert_ptr_ne(other, a);
        pool_conn_end(pool, a);
        if (all[_i] == LB_STRATEGY_IPHASH) /* room again: its own */
            ck_assert_ptr_eq(pool_pick(pool, &ctx), a);
    }
    /* Fill everything: a 1, b 2, c (no limit) stays open. */
    pool_conn_start(pool, a);
    pool_conn_start(pool, b);
    pool_conn_start(pool, b);
    for (int k = 0; k < 10; k++)
        ck_assert_ptr_eq(pool_pick(pool, NULL), c);
    c->max_conns = 1;
    pool_conn_start(pool, c);
    ck_assert_ptr_null(pool_pick(pool, NULL));
    ck_assert(pool_has_available(pool));
    /* A slot reserved for a queued session counts as taken. */
    pool_conn_end(pool, b);
    b->reserved = 1;
    ck_assert_ptr_null(pool_pick(pool, NULL));
    b->reserved = 0;
    ck_assert_ptr_eq(pool_pick(pool, NULL), b);
    /* A retry after a failed try on b: b is tried, all else full: b again
     * (the fallback), never a full one. */
    struct pick_ctx retry = {0};
    retry.tried[retry.ntried++] = b;
    ck_assert_ptr_eq(pool_pick(pool, &retry), b);
    pool_conn_end(pool, a);
    ck_assert_ptr_eq(pool_pick(pool, &retry), a);
    pool_conn_end(pool, b);
    pool_conn_end(pool, c);
    pool_release(pool);
}
END_TEST

/* SRV priorities (DNS discovery): the lowest priority with a backend up is
 * served, the others stand by, for every strategy; the tier moves as
 * backends go down and come back, and navailable follows. */
START_TEST(test_all_priority_tiers)
{
    unsigned w[4] = {1, 1, 1, 1};
    struct pool *pool = pool_new("p", all[_i]);
    ck_assert_ptr_nonnull(pool);
    for (size_t i = 0; i < 4; i++) {
        char name[4] = {(char)('a' + i), 0}, address[32];
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9001 + i)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        snprintf(address, sizeof(address), "127.0.0.1:%zu", 9001 + i);
        struct backend *b =
            pool_add_backend(pool, NULL, name, address, (struct sockaddr *)&sin, sizeof(sin), w[i]);
        ck_assert_ptr_nonnull(b);
        b->priority = i < 2 ? 10 : i == 2 ? 20 : 30; /* a b: 10, c: 20, d: 30 */
    }
    ck_assert_int_eq(pool_build(pool), 0);
    struct backend *a = pool->backends[0], *b = pool->backends[1], *c = pool->backends[2],
                   *d = pool->backends[3];
    ck_assert(pool->tiers);
    ck_assert(!a->standby && !b->standby && c->standby && d->standby);
    ck_assert_uint_eq(pool->navailable, 2);
    for (unsigned k = 0; k < 64; k++) {
        struct backend *got = pick4(pool, k);
        CHECK(got == a || got == b);
    }
    ck_assert_int_eq(pool_set_backend_up(pool, a, false), 0);
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert(c->standby);
    ck_assert_int_eq(pool_set_backend_weight(pool, b, 0), 0); /* weight 0: not serving */
    ck_assert(!c->standby && d->standby);
    ck_assert_uint_eq(pool->navailable, 1);
    for (unsigned k = 0; k < 64; k++)
        CHECK(pick4(pool, k) == c);
    ck_assert_int_eq(pool_set_backend_up(pool, c, false), 0);
    ck_assert(!d->standby);
    for (unsigned k = 0; k < 64; k++)
        CHECK(pick4(pool, k) == d);
    ck_assert_int_eq(pool_set_backend_up(pool, a, true), 0); /* priority 10 is back */
    ck_assert(!a->standby && c->standby && d->standby);
    ck_assert_uint_eq(pool->navailable, 1);
    for (unsigned k = 0; k < 64; k++)
        CHECK(pick4(pool, k) == a);
    /* Everything down: none stands by, none is available. */
    ck_assert_int_eq(pool_set_backend_up(pool, a, false), 0);
    ck_assert_int_eq(pool_set_backend_up(pool, d, false), 0);
    ck_assert(!a->standby && !b->standby && !c->standby && !d->standby);
    ck_assert_uint_eq(pool->navailable, 0);
    ck_assert_ptr_null(pool_pick(pool, NULL));
    pool_release(pool);
}
END_TEST

/* One priority: no tiers, nothing stands by. */
START_TEST(test_all_one_priority_no_tiers)
{
    struct pool *pool = pool_make(all[_i], 3, NULL, NULL, 0);
    ck_assert(!pool->tiers);
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[0], false), 0);
    ck_assert(!pool->backends[1]->standby && !pool->backends[2]->standby);
    ck_assert_uint_eq(pool->navailable, 2);
    pool_release(pool);
}
END_TEST

Suite *balance_suite(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("roundrobin");
    tcase_add_test(tc, test_rr_sequence);
    tcase_add_test(tc, test_rr_skip_down);
    tcase_add_test(tc, test_rr_skip_weight0);
    tcase_add_test(tc, test_rr_matches_scan);
    suite_add_tcase(s, tc);

    tc = tcase_create("weighted");
    tcase_add_test(tc, test_wrr_511);
    tcase_add_test(tc, test_wrr_proportions);
    tcase_add_test(tc, test_wrr_down_and_weight);
    tcase_add_test(tc, test_wrr_smooth_exhaustive);
    tcase_add_test(tc, test_wrr_matches_reference);
    tcase_add_test(tc, test_wrr_smooth_random);
    tcase_add_test(tc, test_wrr_changes_random);
    tcase_add_test(tc, test_wrr_mid_cycle);
    tcase_add_test(tc, test_wrr_slow_start);
    tcase_add_test(tc, test_wrr_retry);
    tcase_add_test(tc, test_wrr_large);
    suite_add_tcase(s, tc);

    tc = tcase_create("leastconn");
    tcase_add_test(tc, test_lc_fewest);
    tcase_add_test(tc, test_lc_ties_rotate);
    tcase_add_test(tc, test_lc_weights);
    tcase_add_test(tc, test_lc_down);
    tcase_add_test(tc, test_lc_matches_scan);
    suite_add_tcase(s, tc);

    tc = tcase_create("iphash");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_hash_fixed);
    tcase_add_test(tc, test_maglev_stable_and_spread);
    tcase_add_test(tc, test_maglev_remove_add);
    tcase_add_test(tc, test_maglev_order_independent);
    tcase_add_test(tc, test_maglev_ipv6);
    tcase_add_test(tc, test_maglev_down_up);
    tcase_add_test(tc, test_maglev_weights);
    tcase_add_test(tc, test_maglev_small_table);
    tcase_add_test(tc, test_maglev_all_tried);
    suite_add_tcase(s, tc);

    tc = tcase_create("all");
    tcase_add_loop_test(tc, test_all_retry_avoids_tried, 0, 4);
    tcase_add_loop_test(tc, test_all_none_available, 0, 4);
    tcase_add_loop_test(tc, test_all_skip_full, 0, 4);
    tcase_add_loop_test(tc, test_pool_create_and_free, 0, 4);
    tcase_add_loop_test(tc, test_all_priority_tiers, 0, 4);
    tcase_add_loop_test(tc, test_all_one_priority_no_tiers, 0, 4);
    tcase_add_test(tc, test_ops_names);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(balance_suite)
