/* balance_leastconn: the backend with the fewest active sessions relative
 * to its weight (a beats b when a->active * b->weight < b->active *
 * a->weight, as nginx compares), ties going to the one picked least
 * recently so they rotate. The available backends sit in a binary min-heap
 * on that order; each backend's heap position makes every change O(log n). */
#include <stdlib.h>

#include "lb/balance/balance.h"

#define LC_OUT SIZE_MAX /* heap position of a backend not in the heap */

struct lc_state {
    struct backend **heap; /* available backends, best first */
    size_t nheap;
    size_t *pos;   /* by backend index: position in heap, or LC_OUT */
    uint64_t *seq; /* by backend index: when it was last picked (0: never) */
    uint64_t clock;
};

/* Whether a should be picked before b. active stays far below 2^56, so the
 * products (weight <= LB_WEIGHT_MAX) cannot overflow. */
static bool lc_less(const struct lc_state *st, const struct backend *a, const struct backend *b)
{
    uint64_t la = a->active * b->eff_weight;
    uint64_t lb = b->active * a->eff_weight;
    if (la != lb)
        return la < lb;
    if (st->seq[a->index] != st->seq[b->index])
        return st->seq[a->index] < st->seq[b->index];
    return a->index < b->index;
}

static void lc_place(struct lc_state *st, size_t i, struct backend *b)
{
    st->heap[i] = b;
    st->pos[b->index] = i;
}

/* Moves the backend at heap position i up while it beats its parent. */
static void lc_sift_up(struct lc_state *st, size_t i)
{
    struct backend *b = st->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!lc_less(st, b, st->heap[parent]))
            break;
        lc_place(st, i, st->heap[parent]);
        i = parent;
    }
    lc_place(st, i, b);
}

/* Moves the backend at heap position i down while a child beats it. */
static void lc_sift_down(struct lc_state *st, size_t i)
{
    struct backend *b = st->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= st->nheap)
            break;
        if (child + 1 < st->nheap && lc_less(st, st->heap[child + 1], st->heap[child]))
            child++;
        if (!lc_less(st, st->heap[child], b))
            break;
        lc_place(st, i, st->heap[child]);
        i = child;
    }
    lc_place(st, i, b);
}

/* b's key changed (either way) while in the heap: restore heap order. */
static void lc_fix(struct lc_state *st, struct backend *b)
{
    size_t i = st->pos[b->index];
    if (i == LC_OUT)
        return;
    lc_sift_up(st, i);
    lc_sift_down(st, st->pos[b->index]);
}

/* Called with b not in the heap; the heap has room for every backend. */
static void lc_insert(struct lc_state *st, struct backend *b)
{
    lc_place(st, st->nheap++, b);
    lc_sift_up(st, st->nheap - 1);
}

/* Called with b in the heap. */
static void lc_remove(struct lc_state *st, struct backend *b)
{
    size_t i = st->pos[b->index];
    st->pos[b->index] = LC_OUT;
    struct backend *last = st->heap[--st->nheap];
    if (last == b)
        return;
    lc_place(st, i, last);
    lc_fix(st, last);
}

static void lc_destroy(struct pool *pool)
{
    struct lc_state *st = pool->state;
    free(st->heap);
    free(st->pos);
    free(st->seq);
    free(st);
    pool->state = NULL;
}

/* Puts every available backend in the heap. 0 or -1 (ENOMEM). */
static int lc_init(struct pool *pool)
{
    size_t n = pool->nbackends ? pool->nbackends : 1;
    struct lc_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -1;
    pool->state = st;
    st->heap = calloc(n, sizeof(*st->heap));
    st->pos = calloc(n, sizeof(*st->pos));
    st->seq = calloc(n, sizeof(*st->seq));
    if (st->heap == NULL || st->pos == NULL || st->seq == NULL) {
        lc_destroy(pool);
        return -1;
    }
    for (size_t i = 0; i < pool->nbackends; i++) {
        st->pos[i] = LC_OUT;
        if (backend_available(pool->backends[i]))
            lc_insert(st, pool->backends[i]);
    }
    return 0;
}

/* The best backend not in ctx->tried, or NULL when every one in the heap
 * was tried. It is the best of the untried ones whose ancestors in the heap
 * are all tried (any other untried one has an untried ancestor at least as
 * good), so the walk goes down from the top through tried backends only:
 * at most 2t + 1 heap entries for t tried (t <= LB_MAX_TRIES). */
static struct backend *lc_best_untried(const struct lc_state *st, const struct pick_ctx *ctx)
{
    size_t todo[2 * LB_MAX_TRIES + 2]; /* each tried entry adds its 2 children */
    unsigned ntodo = 0;
    struct backend *best = NULL;
    if (st->nheap > 0)
        todo[ntodo++] = 0;
    while (ntodo > 0) {
        size_t i = todo[--ntodo];
        struct backend *b = st->heap[i];
        if (!pick_tried(ctx, b)) {
            if (best == NULL || lc_less(st, b, best))
                best = b;
            continue;
        }
        for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < st->nheap; c++)
            todo[ntodo++] = c;
    }
    return best;
}

/* The heap's top, or for a retry the best untried backend: O(log n).
 * Records the pick so that, among equals, the next pick goes elsewhere even
 * before pool_conn_start() raises b->active. */
static struct backend *lc_pick(struct pool *pool, const struct pick_ctx *ctx)
{
    struct lc_state *st = pool->state;
    if (st->nheap == 0)
        return NULL;
    struct backend *b = NULL;
    if (ctx != NULL && ctx->ntried > 0)
        b = lc_best_untried(st, ctx);
    if (b == NULL)
        b = st->heap[0];
    st->seq[b->index] = ++st->clock;
    lc_fix(st, b);
    return b;
}

/* b->active changed: move b in the heap, if it is there. */
static void lc_conn_changed(struct pool *pool, struct backend *b)
{
    lc_fix(pool->state, b);
}

/* b went up or down or changed weight: enter, leave or move in the heap.
 * Never fails (the heap was sized for every backend). */
static int lc_update(struct pool *pool, struct backend *b)
{
    struct lc_state *st = pool->state;
    bool in = st->pos[b->index] != LC_OUT;
    bool avail = backend_available(b);
    if (avail && !in)
        lc_insert(st, b);
    else if (!avail && in)
        lc_remove(st, b);
    else
        lc_fix(st, b);
    return 0;
}

const struct balance_ops balance_leastconn_ops = {
    .name = "leastconn",
    .init = lc_init,
    .destroy = lc_destroy,
    .pick = lc_pick,
    .conn_start = lc_conn_changed,
    .conn_end = lc_conn_changed,
    .update = lc_update,
};
