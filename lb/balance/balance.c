/* balance: what the strategies share. Maps a configured strategy to its ops
 * table, defines the fixed 64-bit hash every lb instance must agree on
 * (Maglev), and the plain scan the simple strategies and fallbacks use. */
#include <string.h>
#include <netinet/in.h>

#include "lb/balance/balance.h"

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

void pick_key_ip(struct pick_ctx *ctx, const struct sockaddr *sa, socklen_t len)
{
    ctx->key = NULL;
    ctx->key_len = 0;
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(ctx->key_ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        ctx->key_len = 4;
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        bool mapped = IN6_IS_ADDR_V4MAPPED(a6);
        ctx->key_len = mapped ? 4 : 16;
        memcpy(ctx->key_ip, a6->s6_addr + (mapped ? 12 : 0), ctx->key_len);
    } else {
        return;
    }
    ctx->key = ctx->key_ip;
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
