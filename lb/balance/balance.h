/* balance: the strategy interface (HAProxy's lb_ops idea) and what the
 * strategies share. One file per strategy in lb/balance/; a pool reaches
 * its strategy only through its balance_ops, so the session code never
 * knows which one answers. */
#ifndef LB_BALANCE_BALANCE_H
#define LB_BALANCE_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lb/pool.h"

/* Passed to pick(): the key a hashing strategy hashes, and the backends
 * this session has already tried (a retry must go elsewhere when anything
 * else is left). The key is bytes the session chooses: the client's IP by
 * default (pick_key_ip()), later a PROXY-protocol address, a header or a
 * cookie. Strategies never look at sockaddrs. */
struct pick_ctx {
    const void *key; /* NULL (len 0): no key, hashing strategies use entry 0 */
    size_t key_len;
    unsigned char key_ip[16]; /* pick_key_ip()'s storage */
    const struct backend *tried[LB_MAX_TRIES];
    unsigned ntried;
};

/* The strategy interface (one file per strategy in lb/balance/). */
struct balance_ops {
    const char *name;
    /* Builds the strategy's state for the pool's backends; 0 or -1 (ENOMEM). */
    int (*init)(struct pool *pool);
    void (*destroy)(struct pool *pool);
    /* Returns an available backend not in ctx->tried, or, when every
     * available backend was tried, any available one; NULL when none is
     * available. Called on the hot path. */
    struct backend *(*pick)(struct pool *pool, const struct pick_ctx *ctx);
    /* A session starts / ends on b (b->active already updated). May be NULL. */
    void (*conn_start)(struct pool *pool, struct backend *b);
    void (*conn_end)(struct pool *pool, struct backend *b);
    /* b's availability (up) or weight changed; the strategy brings its
     * structures up to date. 0 or -1 (ENOMEM: old structures kept). */
    int (*update)(struct pool *pool, struct backend *b);
};

const struct balance_ops *balance_ops_for(enum lb_strategy s);
extern const struct balance_ops balance_roundrobin_ops;
extern const struct balance_ops balance_weighted_ops;
extern const struct balance_ops balance_leastconn_ops;
extern const struct balance_ops balance_maglev_ops;

static inline bool pick_tried(const struct pick_ctx *ctx, const struct backend *b)
{
    for (unsigned i = 0; i < ctx->ntried; i++)
        if (ctx->tried[i] == b)
            return true;
    return false;
}

/* The rule every strategy's scan applies to a candidate b: true when b is
 * the answer (available and not tried); an available but tried b is kept in
 * *fallback (the first one only), for when nothing untried is left. */
static inline bool pick_candidate(struct backend *b, const struct pick_ctx *ctx,
                                  struct backend **fallback)
{
    if (!backend_available(b))
        return false;
    if (ctx == NULL || !pick_tried(ctx, b))
        return true;
    if (*fallback == NULL)
        *fallback = b;
    return false;
}

/* Sets ctx's key to the IP address of sa: 4 bytes for IPv4 and
 * IPv4-mapped IPv6, 16 for IPv6; the port never counts. No key for any
 * other family (or sa NULL). */
void pick_key_ip(struct pick_ctx *ctx, const struct sockaddr *sa, socklen_t len);

/* Maglev helpers, exposed for tests. */
uint64_t balance_hash(const void *data, size_t len, uint64_t seed);

/* For tests: the picks left in a weighted pool's current cycle (0: the next
 * pick starts a cycle of sum(eff_weight) picks). */
uint64_t balance_weighted_cycle_left(const struct pool *pool);

/* Shared by the balance_*.c strategies: the first available backend at or
 * cyclically after index start not in ctx->tried (ctx may be NULL), else the
 * first available one from start, else NULL. O(n). */
struct backend *balance_scan(struct pool *pool, const struct pick_ctx *ctx, size_t start);

#endif
