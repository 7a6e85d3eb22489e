/* balance_roundrobin: backends in config order, one after the other, in a
 * fixed cycle. Weights are ignored except that weight 0 (like down) means
 * "skip". Skipping never moves the cursor past the others, so the remaining
 * backends keep their order. A bitmap of the available backends makes the
 * skip a word at a time: O(1) when the next backend is available, at worst
 * n/64 words when a long run of them is not. */
#include <stdlib.h>

#include "lb/balance/balance.h"

#define RR_NONE SIZE_MAX

struct rr_state {
    size_t next;     /* index of the backend the cycle offers next */
    uint64_t *avail; /* bit i of word i/64: backend i is available */
};

static void rr_set(struct rr_state *st, size_t i, bool avail)
{
    uint64_t bit = 1ULL << (i % 64);
    if (avail)
        st->avail[i / 64] |= bit;
    else
        st->avail[i / 64] &= ~bit;
}

/* Starts the cycle at the first backend. 0 or -1 (ENOMEM). */
static int rr_init(struct pool *pool)
{
    struct rr_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -1;
    st->avail = calloc(pool->nbackends / 64 + 1, sizeof(*st->avail));
    if (st->avail == NULL) {
        free(st);
        return -1;
    }
    for (size_t i = 0; i < pool->nbackends; i++)
        rr_set(st, i, backend_available(pool->backends[i]));
    pool->state = st;
    return 0;
}

static void rr_destroy(struct pool *pool)
{
    struct rr_state *st = pool->state;
    free(st->avail);
    free(st);
    pool->state = NULL;
}

/* The first available backend in [from, to), or RR_NONE. */
static size_t rr_find(const struct rr_state *st, size_t from, size_t to)
{
    while (from < to) {
        uint64_t bits = st->avail[from / 64] >> (from % 64);
        if (bits != 0) {
            size_t i = from + (size_t)__builtin_ctzll(bits);
            return i < to ? i : RR_NONE;
        }
        from = (from / 64 + 1) * 64;
    }
    return RR_NONE;
}

/* The first available backend in [from, to) not tried; the first tried one
 * met goes to *fallback. */
static struct backend *rr_scan(struct pool *pool, const struct pick_ctx *ctx, size_t from,
                               size_t to, struct backend **fallback)
{
    const struct rr_state *st = pool->state;
    for (size_t i = rr_find(st, from, to); i != RR_NONE; i = rr_find(st, i + 1, to))
        if (pick_candidate(pool->backends[i], ctx, fallback))
            return pool->backends[i];
    return NULL;
}

/* The next available backend in the cycle, not tried when one is left
 * (else the first tried one after the cursor), as balance_scan() would
 * find it. */
static struct backend *rr_pick(struct pool *pool, const struct pick_ctx *ctx)
{
    struct rr_state *st = pool->state;
    size_t n = pool->nbackends;
    if (n == 0)
        return NULL;
    if (st->next >= n)
        st->next = 0;
    struct backend *fallback = NULL;
    struct backend *b = rr_scan(pool, ctx, st->next, n, &fallback);
    if (b == NULL)
        b = rr_scan(pool, ctx, 0, st->next, &fallback);
    if (b == NULL)
        b = fallback;
    if (b != NULL)
        st->next = (b->index + 1) % n;
    return b;
}

/* b went up or down or changed weight: its bit follows. Never fails. */
static int rr_update(struct pool *pool, struct backend *b)
{
    rr_set(pool->state, b->index, backend_available(b));
    return 0;
}

const struct balance_ops balance_roundrobin_ops = {
    .name = "roundrobin",
    .init = rr_init,
    .destroy = rr_destroy,
    .pick = rr_pick,
    .update = rr_update,
};
