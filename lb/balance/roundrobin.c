/* balance_roundrobin: backends in config order, one after the other, in a
 * fixed cycle. Weights are ignored except that weight 0 (like down) means
 * "skip". Skipping never moves the cursor past the others, so the remaining
 * backends keep their order. */
#include <stdlib.h>

#include "lb/balance/balance.h"

struct rr_state {
    size_t next; /* index of the backend the cycle offers next */
};

/* Starts the cycle at the first backend. 0 or -1 (ENOMEM). */
static int rr_init(struct pool *pool)
{
    struct rr_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -1;
    pool->state = st;
    return 0;
}

static void rr_destroy(struct pool *pool)
{
    free(pool->state);
    pool->state = NULL;
}

/* The next available backend in the cycle (not tried, when possible). O(1)
 * when it is available; otherwise a scan past the unavailable ones. */
static struct backend *rr_pick(struct pool *pool, const struct pick_ctx *ctx)
{
    struct rr_state *st = pool->state;
    if (pool->nbackends == 0)
        return NULL;
    if (st->next >= pool->nbackends)
        st->next = 0;
    struct backend *b = balance_scan(pool, ctx, st->next);
    if (b != NULL)
        st->next = (b->index + 1) % pool->nbackends;
    return b;
}

const struct balance_ops balance_roundrobin_ops = {
    .name = "roundrobin",
    .init = rr_init,
    .destroy = rr_destroy,
    .pick = rr_pick,
};
