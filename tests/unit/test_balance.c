/* test_balance: the pool runtime and the four strategies, asserted exactly:
 * round-robin and smooth weighted sequences, least-conn order and tie
 * rotation, Maglev stability, spread and movement, retries and frees. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lb/balance/balance.h"
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

/* ---- weighted ---- */

START_TEST(test_wrr_511)
{
    unsigned w[] = {5, 1, 1};
    char s[64];
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 3, w, NULL, 0);
    for (int cycle = 0; cycle < 4; cycle++)
        ck_assert_str_eq(pick_seq(pool, 7, s), "aabacaa");
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
    ck_assert_int_eq(pool_set_backend_up(pool, pool->backends[1], true), 0);
    ck_assert_str_eq(pick_seq(pool, 6, s), "abacba");
    ck_assert_int_eq(pool_set_backend_weight(pool, pool->backends[2], 5), 0);
    ck_assert_str_eq(pick_seq(pool, 10, s), "cabcaccbac");
    for (int cycle = 0; cycle < 3; cycle++) {
        pick_count(pool, 10, c);
        ck_assert_uint_eq(c[0], 3);
        ck_assert_uint_eq(c[1], 2);
        ck_assert_uint_eq(c[2], 5);
    }
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

Suite *balance_suite(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("roundrobin");
    tcase_add_test(tc, test_rr_sequence);
    tcase_add_test(tc, test_rr_skip_down);
    tcase_add_test(tc, test_rr_skip_weight0);
    suite_add_tcase(s, tc);

    tc = tcase_create("weighted");
    tcase_add_test(tc, test_wrr_511);
    tcase_add_test(tc, test_wrr_proportions);
    tcase_add_test(tc, test_wrr_down_and_weight);
    suite_add_tcase(s, tc);

    tc = tcase_create("leastconn");
    tcase_add_test(tc, test_lc_fewest);
    tcase_add_test(tc, test_lc_ties_rotate);
    tcase_add_test(tc, test_lc_weights);
    tcase_add_test(tc, test_lc_down);
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
    suite_add_tcase(s, tc);

    tc = tcase_create("all");
    tcase_add_loop_test(tc, test_all_retry_avoids_tried, 0, 4);
    tcase_add_loop_test(tc, test_all_none_available, 0, 4);
    tcase_add_loop_test(tc, test_pool_create_and_free, 0, 4);
    tcase_add_test(tc, test_ops_names);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(balance_suite)
