/* balance_weighted: smooth weighted round-robin in O(log n) per pick.
 *
 * A cycle is W = sum of the available backends' weights picks, and backend
 * i, of weight w, gets exactly w of them. Its k-th pick of the cycle (k =
 * 1..w) has a start k-1 and a deadline k, in units of W/w picks: it may come
 * only after pick (k-1)*W/w and must come by pick k*W/w. Each pick takes,
 * among the backends whose next pick has started (is eligible), the one
 * whose deadline is earliest; on equal deadlines the lighter one (whose
 * start was earlier), then config order. That is earliest-deadline-first
 * scheduling of unit jobs with release times, which meets every deadline
 * whenever a schedule meeting them exists, and one does here (in any run
 * of picks, the jobs that must fall inside it are at most its length).
 * So after p picks of a cycle every backend has within one pick of its
 * exact share: |count_i - p*w_i/W| < 1. Weights 5,1,1 give a a a b a c a;
 * 3,2,1 give a b a c b a.
 *
 * The available backends sit in an AVL tree ordered by deadline, each node
 * also keeping the earliest start in its subtree, so "the earliest deadline
 * among the eligible" is one walk down the tree: O(log n) per pick, and a
 * pick moves one node (O(log n)). Deadline and start are exact fractions
 * (cycle + done/weight), compared by cross-multiplying, never rounded. A
 * retry walks the same way past the tried backends (O(t log n) for t).
 *
 * Changes never restart the cycle, so they cost O(log n) and the others
 * keep their place. A backend that goes down leaves with the picks it had
 * left in this cycle; one that comes up joins the current cycle with the
 * share of it that is left (weight * picks left / cycle length, rounded
 * up); a new weight keeps the fraction of its cycle already done. The
 * cycle under way ends when its remaining picks are made (meanwhile a pick
 * with nothing eligible takes the earliest deadline); from the next cycle
 * on every cycle is exact again, with the new weights. */
#include <stdlib.h>

#include "lb/balance/balance.h"

#define WRR_NIL UINT32_MAX

struct wrr_node {
    uint64_t cycle;     /* the cycle its next pick belongs to: the current one or the next */
    uint32_t done;      /* picks it had in that cycle, < weight */
    uint32_t weight;    /* what it is scheduled with: its eff_weight */
    uint32_t left;      /* AVL children, by backend index (WRR_NIL: none) */
    uint32_t right;     /* ... */
    uint32_t min_start; /* the node of this subtree whose next pick starts first */
    uint8_t height;     /* 0: not in the tree */
    bool tried;         /* in the pick_ctx of the pick under way (wrr_mark()) */
};

struct wrr_state {
    struct wrr_node *node; /* by backend index */
    uint32_t root;
    uint64_t cycle; /* the current cycle */
    uint64_t made;  /* picks made in it */
    uint64_t left;  /* picks left in it: sum over its nodes of weight - done */
    uint64_t total; /* sum of the weights in the tree: the next cycle's length */
};

/* -1, 0 or 1 as node a's next pick is due before, with or after b's:
 * deadline (cycle + (done+1)/weight), then the lighter one, then index. */
static int wrr_cmp(const struct wrr_state *st, uint32_t a, uint32_t b)
{
    const struct wrr_node *x = &st->node[a], *y = &st->node[b];
    if (x->cycle != y->cycle)
        return x->cycle < y->cycle ? -1 : 1;
    uint64_t dx = (uint64_t)(x->done + 1) * y->weight, dy = (uint64_t)(y->done + 1) * x->weight;
    if (dx != dy)
        return dx < dy ? -1 : 1;
    if (x->weight != y->weight)
        return x->weight < y->weight ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Whether node a's next pick starts (cycle + done/weight) before b's. */
static bool wrr_starts_before(const struct wrr_state *st, uint32_t a, uint32_t b)
{
    const struct wrr_node *x = &st->node[a], *y = &st->node[b];
    if (x->cycle != y->cycle)
        return x->cycle < y->cycle;
    return (uint64_t)x->done * y->weight < (uint64_t)y->done * x->weight;
}

/* Whether node a's next pick has started when the pick after the `made`
 * first of the current cycle is made: it belongs to the current cycle and
 * done/weight < (made+1)/length, the cycle's length being made + left. */
static bool wrr_eligible(const struct wrr_state *st, uint32_t a)
{
    const struct wrr_node *x = &st->node[a];
    return x->cycle == st->cycle &&
           (uint64_t)x->done * (st->made + st->left) < (st->made + 1) * (uint64_t)x->weight;
}

/* ---- the AVL tree: by wrr_cmp, each node keeping its subtree's min_start ---- */

static unsigned wrr_height(const struct wrr_state *st, uint32_t x)
{
    return x == WRR_NIL ? 0 : st->node[x].height;
}

/* Recomputes x's height and min_start from its children. */
static void wrr_fix(struct wrr_state *st, uint32_t x)
{
    struct wrr_node *n = &st->node[x];
    unsigned hl = wrr_height(st, n->left), hr = wrr_height(st, n->right);
    n->height = (uint8_t)(1 + (hl > hr ? hl : hr));
    n->min_start = x;
    if (n->left != WRR_NIL && wrr_starts_before(st, st->node[n->left].min_start, n->min_start))
        n->min_start = st->node[n->left].min_start;
    if (n->right != WRR_NIL && wrr_starts_before(st, st->node[n->right].min_start, n->min_start))
        n->min_start = st->node[n->right].min_start;
}

static uint32_t wrr_rotate_right(struct wrr_state *st, uint32_t x)
{
    uint32_t y = st->node[x].left;
    st->node[x].left = st->node[y].right;
    st->node[y].right = x;
    wrr_fix(st, x);
    wrr_fix(st, y);
    return y;
}

static uint32_t wrr_rotate_left(struct wrr_state *st, uint32_t x)
{
    uint32_t y = st->node[x].right;
    st->node[x].right = st->node[y].left;
    st->node[y].left = x;
    wrr_fix(st, x);
    wrr_fix(st, y);
    return y;
}

/* Restores the AVL balance at x (its subtrees are balanced and differ in
 * height by at most 2); returns the subtree's new root. */
static uint32_t wrr_balance(struct wrr_state *st, uint32_t x)
{
    struct wrr_node *n = &st->node[x];
    int bf = (int)wrr_height(st, n->left) - (int)wrr_height(st, n->right);
    if (bf > 1) {
        uint32_t l = n->left;
        if (wrr_height(st, st->node[l].left) < wrr_height(st, st->node[l].right))
            n->left = wrr_rotate_left(st, l);
        return wrr_rotate_right(st, x);
    }
    if (bf < -1) {
        uint32_t r = n->right;
        if (wrr_height(st, st->node[r].right) < wrr_height(st, st->node[r].left))
            n->right = wrr_rotate_right(st, r);
        return wrr_rotate_left(st, x);
    }
    wrr_fix(st, x);
    return x;
}

static uint32_t wrr_insert_at(struct wrr_state *st, uint32_t root, uint32_t x)
{
    if (root == WRR_NIL) {
        struct wrr_node *n = &st->node[x];
        n->left = n->right = WRR_NIL;
        n->height = 1;
        n->min_start = x;
        return x;
    }
    if (wrr_cmp(st, x, root) < 0)
        st->node[root].left = wrr_insert_at(st, st->node[root].left, x);
    else
        st->node[root].right = wrr_insert_at(st, st->node[root].right, x);
    return wrr_balance(st, root);
}

/* Takes the leftmost node out of the subtree root (not NIL) into *min. */
static uint32_t wrr_remove_min(struct wrr_state *st, uint32_t root, uint32_t *min)
{
    if (st->node[root].left == WRR_NIL) {
        *min = root;
        return st->node[root].right;
    }
    st->node[root].left = wrr_remove_min(st, st->node[root].left, min);
    return wrr_balance(st, root);
}

/* Takes x, which is in the subtree root with its current key, out of it. */
static uint32_t wrr_remove_at(struct wrr_state *st, uint32_t root, uint32_t x)
{
    int c = wrr_cmp(st, x, root);
    if (c < 0) {
        st->node[root].left = wrr_remove_at(st, st->node[root].left, x);
    } else if (c > 0) {
        st->node[root].right = wrr_remove_at(st, st->node[root].right, x);
    } else {
        uint32_t l = st->node[root].left, r = st->node[root].right, m;
        if (r == WRR_NIL)
            return l;
        r = wrr_remove_min(st, r, &m);
        st->node[m].left = l;
        st->node[m].right = r;
        return wrr_balance(st, m);
    }
    return wrr_balance(st, root);
}

static void wrr_insert(struct wrr_state *st, uint32_t x)
{
    st->root = wrr_insert_at(st, st->root, x);
}

static void wrr_remove(struct wrr_state *st, uint32_t x)
{
    st->root = wrr_remove_at(st, st->root, x);
    st->node[x].height = 0;
}

/* The node with the earliest deadline among the eligible ones, or NIL:
 * down the tree, left whenever the left subtree's earliest start is
 * eligible (eligibility is "start early enough", so min_start tells whether
 * a subtree holds an eligible node). */
static uint32_t wrr_first_eligible(const struct wrr_state *st)
{
    uint32_t x = st->root;
    if (x == WRR_NIL || !wrr_eligible(st, st->node[x].min_start))
        return WRR_NIL;
    for (;;) {
        const struct wrr_node *n = &st->node[x];
        if (n->left != WRR_NIL && wrr_eligible(st, st->node[n->left].min_start))
            x = n->left;
        else if (wrr_eligible(st, x))
            return x;
        else
            x = n->right; /* holds the eligible node min_start promised */
    }
}

static uint32_t wrr_first(const struct wrr_state *st)
{
    uint32_t x = st->root;
    while (x != WRR_NIL && st->node[x].left != WRR_NIL)
        x = st->node[x].left;
    return x;
}

/* For a retry: wrr_first_eligible() of subtree x among the nodes not
 * marked tried. It descends only into subtrees holding an eligible node, so
 * it visits the paths to the tried ones before the answer: O(t log n) for t
 * tried. */
static uint32_t wrr_first_eligible_untried(const struct wrr_state *st, uint32_t x)
{
    if (x == WRR_NIL || !wrr_eligible(st, st->node[x].min_start))
        return WRR_NIL;
    uint32_t found = wrr_first_eligible_untried(st, st->node[x].left);
    if (found != WRR_NIL)
        return found;
    if (!st->node[x].tried && wrr_eligible(st, x))
        return x;
    return wrr_first_eligible_untried(st, st->node[x].right);
}

/* For a retry: the leftmost node of subtree x not marked tried (the nodes
 * before it are tried: O(t + log n)). */
static uint32_t wrr_first_untried(const struct wrr_state *st, uint32_t x)
{
    if (x == WRR_NIL)
        return WRR_NIL;
    uint32_t found = wrr_first_untried(st, st->node[x].left);
    if (found != WRR_NIL)
        return found;
    if (!st->node[x].tried)
        return x;
    return wrr_first_untried(st, st->node[x].right);
}

/* ---- the strategy ---- */

/* Puts b, not in the tree, in it with its eff_weight: in the
 * current cycle with the share of it that is left, or in the next cycle
 * when the current one has no pick left. */
static void wrr_join(struct wrr_state *st, struct backend *b)
{
    struct wrr_node *n = &st->node[b->index];
    n->weight = b->eff_weight;
    if (st->left == 0) {
        n->cycle = st->cycle + 1;
        n->done = 0;
    } else {
        n->cycle = st->cycle;
        n->done = (uint32_t)(st->made * n->weight / (st->made + st->left));
        st->left += n->weight - n->done;
    }
    st->total += n->weight;
    wrr_insert(st, b->index);
}

static void wrr_destroy(struct pool *pool)
{
    struct wrr_state *st = pool->state;
    free(st->node);
    free(st);
    pool->state = NULL;
}

/* A perfectly balanced tree (so an AVL tree) of the sorted nodes
 * order[lo, hi); returns its root. */
static uint32_t wrr_build(struct wrr_state *st, const uint32_t *order, size_t lo, size_t hi)
{
    if (lo >= hi)
        return WRR_NIL;
    size_t mid = lo + (hi - lo) / 2;
    uint32_t x = order[mid];
    st->node[x].left = wrr_build(st, order, lo, mid);
    st->node[x].right = wrr_build(st, order, mid + 1, hi);
    wrr_fix(st, x);
    return x;
}

/* Every available backend joins the first cycle (wrr_join() one by one
 * would do the same in O(n log n) tree steps). They all start at 0, so the
 * tree's order is heaviest first, then config order: a counting sort by
 * weight (at most LB_WEIGHT_MAX), and a balanced tree built from it. 0 or
 * -1 (ENOMEM). */
static int wrr_init(struct pool *pool)
{
    size_t n = pool->nbackends;
    if (n >= WRR_NIL)
        return -1;
    struct wrr_state *st = calloc(1, sizeof(*st));
    uint32_t *order = malloc((n ? n : 1) * sizeof(*order));
    if (st == NULL || order == NULL || (st->node = calloc(n ? n : 1, sizeof(*st->node))) == NULL) {
        free(st);
        free(order);
        return -1;
    }
    size_t first[LB_WEIGHT_MAX + 2] = {0}; /* by weight: where its backends go */
    for (size_t i = 0; i < n; i++) {
        struct backend *b = pool->backends[i];
        if (!backend_available(b))
            continue;
        struct wrr_node *nd = &st->node[i];
        nd->cycle = 1;
        nd->weight = b->eff_weight > LB_WEIGHT_MAX ? LB_WEIGHT_MAX : b->eff_weight;
        st->total += nd->weight;
        first[nd->weight]++;
    }
    size_t count = 0;
    for (unsigned w = LB_WEIGHT_MAX; w > 0; w--) {
        size_t k = first[w];
        first[w] = count;
        count += k;
    }
    for (size_t i = 0; i < n; i++)
        if (backend_available(pool->backends[i]))
            order[first[st->node[i].weight]++] = (uint32_t)i;
    st->root = wrr_build(st, order, 0, count);
    free(order);
    pool->state = st;
    return 0;
}

/* Charges node x with one pick of the current cycle. */
static void wrr_charge(struct wrr_state *st, uint32_t x)
{
    struct wrr_node *n = &st->node[x];
    wrr_remove(st, x);
    if (++n->done == n->weight) {
        n->cycle++;
        n->done = 0;
    }
    wrr_insert(st, x);
    st->made++;
    st->left--;
}

/* Sets the tried mark of ctx's backends that are this pool's and in the
 * tree to on; returns how many marks changed. */
static unsigned wrr_mark(struct pool *pool, const struct pick_ctx *ctx, bool on)
{
    struct wrr_state *st = pool->state;
    unsigned changed = 0;
    for (unsigned i = 0; i < ctx->ntried && i < LB_MAX_TRIES; i++) {
        const struct backend *b = ctx->tried[i];
        if (b == NULL || b->index >= pool->nbackends || pool->backends[b->index] != b)
            continue;
        struct wrr_node *n = &st->node[b->index];
        if (n->height != 0 && n->tried != on) {
            n->tried = on;
            changed++;
        }
    }
    return changed;
}

/* The eligible backend with the earliest deadline; else (a cycle changed
 * under way) the earliest deadline. A retry looks among the backends not
 * tried, the same way (all of them tried: among all); when every untried
 * one is done with this cycle, the earliest of them is returned without
 * being charged (the schedule stays as it is). */
static struct backend *wrr_pick(struct pool *pool, const struct pick_ctx *ctx)
{
    struct wrr_state *st = pool->state;
    if (st->root == WRR_NIL)
        return NULL;
    if (st->left == 0) {
        st->cycle++;
        st->made = 0;
        st->left = st->total;
    }
    uint32_t x = WRR_NIL;
    if (ctx != NULL && ctx->ntried > 0 && wrr_mark(pool, ctx, true) > 0) {
        x = wrr_first_eligible_untried(st, st->root);
        if (x == WRR_NIL)
            x = wrr_first_untried(st, st->root);
        wrr_mark(pool, ctx, false);
    }
    if (x == WRR_NIL)
        x = wrr_first_eligible(st);
    if (x == WRR_NIL)
        x = wrr_first(st);
    if (st->node[x].cycle == st->cycle)
        wrr_charge(st, x);
    return pool->backends[x];
}

/* b went up or down or changed eff_weight. Down: it leaves, with the picks
 * it had left in this cycle. Up: it joins (wrr_join). New weight: it keeps
 * the fraction of its cycle already done (rounded down). O(log n); never
 * fails. */
static int wrr_update(struct pool *pool, struct backend *b)
{
    struct wrr_state *st = pool->state;
    struct wrr_node *n = &st->node[b->index];
    bool avail = backend_available(b);
    if (n->height == 0) {
        if (avail)
            wrr_join(st, b);
        return 0;
    }
    wrr_remove(st, b->index);
    st->total -= n->weight;
    bool current = n->cycle == st->cycle;
    if (current)
        st->left -= n->weight - n->done;
    if (!avail)
        return 0;
    unsigned w = b->eff_weight;
    if (current) {
        n->done = (uint32_t)((uint64_t)n->done * w / n->weight);
        st->left += w - n->done;
    }
    n->weight = w;
    st->total += w;
    wrr_insert(st, b->index);
    return 0;
}

uint64_t balance_weighted_cycle_left(const struct pool *pool)
{
    const struct wrr_state *st = pool->state;
    return st->left;
}

const struct balance_ops balance_weighted_ops = {
    .name = "weighted",
    .init = wrr_init,
    .destroy = wrr_destroy,
    .pick = wrr_pick,
    .update = wrr_update,
};
