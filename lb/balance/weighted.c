/* balance_weighted: smooth weighted round-robin, as nginx does it. Each pick
 * adds every available backend's weight to its current value, takes the
 * largest current (first in config order on ties) and subtracts the total
 * from it: weights 5,1,1 give a a b a c a a, with exact proportions in every
 * cycle of sum(weights) picks. O(n) per pick, like nginx: fine for the pool
 * sizes we expect, and the spread is smoother than any O(1) schedule. */
#include <stdlib.h>

#include "lb/balance/balance.h"

struct wrr_state {
    int64_t *current; /* by backend index */
};

/* Allocates one current value per backend, all 0. 0 or -1 (ENOMEM). */
static int wrr_init(struct pool *pool)
{
    struct wrr_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -1;
    st->current = calloc(pool->nbackends ? pool->nbackends : 1, sizeof(*st->current));
    if (st->current == NULL) {
        free(st);
        return -1;
    }
    pool->state = st;
    return 0;
}

static void wrr_destroy(struct pool *pool)
{
    struct wrr_state *st = pool->state;
    free(st->current);
    free(st);
    pool->state = NULL;
}

/* One SWRR step over the available backends, skipping those in ctx->tried
 * when skip_tried. Unavailable and skipped backends take no part: their
 * current values do not move. NULL when no backend qualifies. */
static struct backend *wrr_step(struct pool *pool, const struct pick_ctx *ctx, bool skip_tried)
{
    struct wrr_state *st = pool->state;
    struct backend *best = NULL;
    int64_t total = 0;
    for (size_t i = 0; i < pool->nbackends; i++) {
        struct backend *b = pool->backends[i];
        if (!backend_available(b) || (skip_tried && pick_tried(ctx, b)))
            continue;
        st->current[i] += b->eff_weight;
        total += b->eff_weight;
        if (best == NULL || st->current[i] > st->current[best->index])
            best = b;
    }
    if (best != NULL)
        st->current[best->index] -= total;
    return best;
}

/* The next backend of the smooth schedule; a retry runs the schedule over
 * the untried backends only, or over all when every one was tried. */
static struct backend *wrr_pick(struct pool *pool, const struct pick_ctx *ctx)
{
    if (ctx != NULL && ctx->ntried > 0) {
        struct backend *b = wrr_step(pool, ctx, true);
        if (b != NULL)
            return b;
    }
    return wrr_step(pool, ctx, false);
}

/* Availability or weight changed: restart the schedule from zero so the new
 * weights give exact proportions from the next pick on. Never fails. */
static int wrr_update(struct pool *pool, struct backend *b)
{
    struct wrr_state *st = pool->state;
    (void)b;
    for (size_t i = 0; i < pool->nbackends; i++)
        st->current[i] = 0;
    return 0;
}

const struct balance_ops balance_weighted_ops = {
    .name = "weighted",
    .init = wrr_init,
    .destroy = wrr_destroy,
    .pick = wrr_pick,
    .update = wrr_update,
};
