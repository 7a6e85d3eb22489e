/* balance_maglev ("iphash"): Maglev consistent hashing of the client IP.
 * A lookup table of M (prime) entries maps hash(client IP) to a backend;
 * each backend fills it along its own permutation of the entries, so the
 * table depends only on the backends' ids and weights, never their order,
 * and a change moves few clients. A down backend keeps its entries: its
 * clients walk forward to the next usable entry and come back when it does. */
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "lb/balance/balance.h"

#define MAGLEV_EMPTY UINT32_MAX

/* Fixed seeds: part of the on-the-wire contract between lb instances
 * (change them and every client moves). */
#define MAGLEV_SEED_OFFSET 0x6d61676c65763031ULL /* "maglev01" */
#define MAGLEV_SEED_SKIP 0x6d61676c65763032ULL   /* "maglev02" */
#define MAGLEV_SEED_CLIENT 0x636c69656e743031ULL /* "client01" */

struct maglev_state {
    uint32_t *table; /* size entries, each a backend index (or MAGLEV_EMPTY) */
    size_t size;
    unsigned *built_weight; /* by backend index: the weights table reflects */
};

/* One backend's walk through the table while filling it. */
struct maglev_perm {
    uint32_t index;  /* backend index */
    uint64_t pos;    /* next entry of its permutation to try */
    uint64_t skip;   /* step, in 1..M-1: a full cycle when M is prime */
    uint64_t tries;  /* entries of the permutation used so far */
    uint64_t credit; /* accumulated weight not yet turned into entries */
    const char *id;
};

/* Orders backends by id (index on equal ids), so the fill, and thus the
 * table, does not depend on the order backends appear in the config. */
static int maglev_perm_cmp(const void *pa, const void *pb)
{
    const struct maglev_perm *a = pa, *b = pb;
    int c = strcmp(a->id, b->id);
    if (c != 0)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Takes p's next free entry: the next empty one along its permutation, or,
 * once the permutation is used up (only when M is not prime), the next
 * empty one after its position. Called with at least one entry empty. */
static void maglev_fill_one(uint32_t *table, uint64_t m, struct maglev_perm *p)
{
    while (p->tries < m) {
        uint64_t c = p->pos;
        p->pos += p->skip; /* (pos + skip) % m: both are below m */
        if (p->pos >= m)
            p->pos -= m;
        p->tries++;
        if (table[c] == MAGLEV_EMPTY) {
            table[c] = p->index;
            return;
        }
    }
    for (uint64_t c = p->pos;; c = c + 1 == m ? 0 : c + 1) {
        if (table[c] == MAGLEV_EMPTY) {
            table[c] = p->index;
            return;
        }
    }
}

/* Builds a table of m entries from the backends with weight > 0 in id
 * order. Each round every backend adds its weight to its credit and takes
 * one entry per max_weight of credit, so entries follow the weights (equal
 * weights: one entry each per round, plain Maglev). A backend with a tiny
 * weight relative to the others may get no entry at all in a small table.
 * NULL on ENOMEM. */
static uint32_t *maglev_build(struct pool *pool, uint64_t m)
{
    uint32_t *table = malloc(m * sizeof(*table));
    struct maglev_perm *perm = calloc(pool->nbackends ? pool->nbackends : 1, sizeof(*perm));
    if (table == NULL || perm == NULL) {
        free(table);
        free(perm);
        return NULL;
    }
    for (uint64_t i = 0; i < m; i++)
        table[i] = MAGLEV_EMPTY;

    size_t n = 0;
    unsigned max_weight = 0;
    for (size_t i = 0; i < pool->nbackends; i++) {
        struct backend *b = pool->backends[i];
        if (b->eff_weight == 0)
            continue;
        size_t len = strlen(b->id);
        struct maglev_perm *p = &perm[n++];
        p->index = b->index;
        p->id = b->id;
        p->pos = balance_hash(b->id, len, MAGLEV_SEED_OFFSET) % m;
        p->skip = m > 1 ? balance_hash(b->id, len, MAGLEV_SEED_SKIP) % (m - 1) + 1 : 1;
        if (b->eff_weight > max_weight)
            max_weight = b->eff_weight;
    }
    qsort(perm, n, sizeof(*perm), maglev_perm_cmp);

    uint64_t filled = 0;
    while (n > 0 && filled < m) {
        for (size_t k = 0; k < n && filled < m; k++) {
            struct maglev_perm *p = &perm[k];
            p->credit += pool->backends[p->index]->eff_weight;
            for (; p->credit >= max_weight && filled < m; p->credit -= max_weight) {
                maglev_fill_one(table, m, p);
                filled++;
            }
        }
    }
    free(perm);
    return table;
}

static void maglev_destroy(struct pool *pool)
{
    struct maglev_state *st = pool->state;
    free(st->table);
    free(st->built_weight);
    free(st);
    pool->state = NULL;
}

/* Builds the table for the pool's backends and weights. 0 or -1 (ENOMEM). */
static int maglev_init(struct pool *pool)
{
    struct maglev_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -1;
    pool->state = st;
    st->size = pool->hash_table_size ? pool->hash_table_size : LB_MAGLEV_DEFAULT_SIZE;
    st->built_weight = calloc(pool->nbackends ? pool->nbackends : 1, sizeof(*st->built_weight));
    st->table = maglev_build(pool, st->size);
    if (st->built_weight == NULL || st->table == NULL) {
        maglev_destroy(pool);
        return -1;
    }
    for (size_t i = 0; i < pool->nbackends; i++)
        st->built_weight[i] = pool->backends[i]->eff_weight;
    return 0;
}

/* The table entry a client starts from: the hash of the session's key
 * (pick_key_ip(): its IP), or entry 0 without a key. */
static uint64_t maglev_start(const struct pick_ctx *ctx, uint64_t m)
{
    if (ctx == NULL || ctx->key == NULL || ctx->key_len == 0)
        return 0;
    return balance_hash(ctx->key, ctx->key_len, MAGLEV_SEED_CLIENT) % m;
}

/* Whether every available backend of the pool is in ctx->tried. */
static bool maglev_all_tried(const struct pool *pool, const struct pick_ctx *ctx)
{
    size_t n = 0;
    for (unsigned i = 0; i < ctx->ntried && i < LB_MAX_TRIES; i++) {
        const struct backend *b = ctx->tried[i];
        if (b == NULL || !backend_available(b) || b->index >= pool->nbackends ||
            pool->backends[b->index] != b)
            continue;
        unsigned j = 0;
        while (j < i && ctx->tried[j] != b)
            j++;
        n += j == i; /* counted once */
    }
    return n >= pool->navailable;
}

/* Walks from the client's entry forward (at most M entries) to the first
 * available backend not tried; else the first available one met; else any
 * available backend (one whose weight won it no entry). When every
 * available backend was tried, the walk ignores ctx->tried (the same
 * answer, without a walk over the whole table). */
static struct backend *maglev_pick(struct pool *pool, const struct pick_ctx *ctx)
{
    struct maglev_state *st = pool->state;
    uint64_t m = st->size;
    uint64_t c = maglev_start(ctx, m);
    const struct pick_ctx *avoid = ctx;
    if (ctx != NULL && ctx->ntried >= pool->navailable && maglev_all_tried(pool, ctx))
        avoid = NULL;
    struct backend *fallback = NULL;
    for (uint64_t i = 0; i < m; i++, c = c + 1 == m ? 0 : c + 1) {
        if (st->table[c] == MAGLEV_EMPTY)
            continue;
        struct backend *b = pool->backends[st->table[c]];
        if (pick_candidate(b, avoid, &fallback))
            return b;
    }
    if (fallback != NULL)
        return fallback;
    return balance_scan(pool, avoid, 0);
}

/* Up/down needs nothing (pick skips unavailable entries); a weight change
 * rebuilds the table. -1 (ENOMEM) keeps the old table. */
static int maglev_update(struct pool *pool, struct backend *b)
{
    struct maglev_state *st = pool->state;
    if (st->built_weight[b->index] == b->eff_weight)
        return 0;
    uint32_t *table = maglev_build(pool, st->size);
    if (table == NULL)
        return -1;
    free(st->table);
    st->table = table;
    for (size_t i = 0; i < pool->nbackends; i++)
        st->built_weight[i] = pool->backends[i]->eff_weight;
    return 0;
}

const struct balance_ops balance_maglev_ops = {
    .name = "iphash",
    .init = maglev_init,
    .destroy = maglev_destroy,
    .pick = maglev_pick,
    .update = maglev_update,
};
