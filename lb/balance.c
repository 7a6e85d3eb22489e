/* balance: what the strategies share. Maps a configured strategy to its ops
 * table, defines the fixed 64-bit hash every lb instance must agree on
 * (Maglev), and the plain scan the simple strategies and fallbacks use. */
#include "lb/pool.h"

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

/* The ops table for strategy S; NULL for an unknown value. */
const struct balance_ops *balance_ops_for(enum lb_strategy s)
{
    switch (s) {
    case LB_STRATEGY_ROUNDROBIN:
        return &balance_roundrobin_ops;
    case LB_STRATEGY_WEIGHTED:
        return &balance_weighted_ops;
    case LB_STRATEGY_LEASTCONN:
        return &balance_leastconn_ops;
    case LB_STRATEGY_IPHASH:
        return &balance_maglev_ops;
    }
    return NULL;
}

/* MurmurHash3's 64-bit finalizer: every input bit affects every output bit. */
static uint64_t hash_fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* A fixed, platform-independent 64-bit hash: FNV-1a over the bytes, starting
 * from (FNV offset basis XOR seed), then the murmur3 fmix64 finalizer. It
 * reads bytes one at a time and uses only 64-bit unsigned arithmetic, so
 * every lb instance on any machine maps the same input to the same value.
 * Not keyed: it spreads, it does not defend against chosen inputs. */
uint64_t balance_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = FNV64_OFFSET ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return hash_fmix64(h);
}

/* The first available backend at or cyclically after position START that
 * ctx has not tried; when every available one was tried, the first
 * available one from START; NULL when none is available. O(n). */
struct backend *balance_scan(struct pool *pool, const struct pick_ctx *ctx, size_t start)
{
    size_t n = pool->nbackends;
    struct backend *fallback = NULL;
    for (size_t i = 0; i < n; i++) {
        struct backend *b = pool->backends[(start + i) % n];
        if (pick_candidate(b, ctx, &fallback))
            return b;
    }
    return fallback;
}
