/* pool: the runtime pool and its backends. Builds them from config, keeps
 * live state (up, weight, active) and hands every state change to the
 * pool's strategy through its balance_ops, so the strategy's structures stay
 * consistent. Reference counts let a backend outlive its pool while a
 * session still uses it. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lb/balance/balance.h"
#include "lb/io/tls_ctx.h"
#include "lb/pool.h"

const double lb_req_bucket_s[LB_REQ_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                0.25,  0.5,    1,     2.5,  5,     10,   30};

/* Frees a backend's memory; the caller has dropped the last reference. Its
 * health checks and timers were stopped by whoever started them (the
 * runtime, a reload): none may fire on freed memory. */
static void backend_free(struct backend *b)
{
    assert(!b->check && !b->eject_timer && !b->ramp_timer);
    free(b->id);
    free(b->name);
    free(b->address);
    free(b->dns);
    free(b);
}

/* What a backend that becomes available calls when sessions are queued. */
static void (*room_hook)(struct pool *pool);

/* Drops one reference to b (taken by a session, or the pool's own); the last
 * one frees it. Works whether or not the caller already decremented refs to
 * 0 itself. */
void backend_release(struct backend *b)
{
    if (b == NULL)
        return;
    if (b->refs > 1) {
        b->refs--;
        return;
    }
    backend_free(b);
}

/* An empty pool for STRATEGY; add backends, then pool_build(). NULL on
 * ENOMEM. */
struct pool *pool_new(const char *name, enum lb_strategy strategy)
{
    const struct balance_ops *ops = balance_ops_for(strategy);
    if (ops == NULL)
        return NULL;
    struct pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->name = strdup(name ? name : "");
    if (pool->name == NULL) {
        free(pool);
        return NULL;
    }
    pool->strategy = strategy;
    pool->ops = ops;
    pool->hash_table_size = LB_MAGLEV_DEFAULT_SIZE;
    pool->refs = 1;
    TAILQ_INIT(&pool->queue);
    return pool;
}

/* Appends a backend in config order, up, holding the pool's reference.
 * id may be NULL (then name, else address). Call before pool_build().
 * NULL on ENOMEM (the pool is unchanged). */
struct backend *pool_add_backend(struct pool *pool, const char *id, const char *name,
                                 const char *address, const struct sockaddr *addr,
                                 socklen_t addrlen, unsigned weight)
{
    if (addrlen > sizeof(struct sockaddr_storage) || (addrlen > 0 && addr == NULL)) {
        errno = EINVAL;
        return NULL;
    }
    if (id == NULL)
        id = name ? name : address;
    struct backend **grown =
        realloc(pool->backends, (pool->nbackends + 1) * sizeof(*pool->backends));
    if (grown == NULL)
        return NULL;
    pool->backends = grown;

    struct backend *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->id = strdup(id ? id : "");
    b->name = name ? strdup(name) : NULL;
    b->address = strdup(address ? address : "");
    if (b->id == NULL || (name && b->name == NULL) || b->address == NULL) {
        backend_free(b);
        return NULL;
    }
    if (addrlen > 0)
        memcpy(&b->addr, addr, addrlen);
    b->addrlen = addrlen;
    b->pool = pool;
    b->index = (unsigned)pool->nbackends;
    b->weight = weight > LB_WEIGHT_MAX ? LB_WEIGHT_MAX : weight;
    b->eff_weight = b->weight;
    b->up = true;
    b->refs = 1;
    TAILQ_INIT(&b->idle);
    pool->backends[pool->nbackends++] = b;
    if (backend_available(b))
        pool->navailable++;
    return b;
}

/* SRV priorities: the lowest priority that has a backend up (with a
 * weight) is the active tier, every backend of a higher one stands by.
 * With none up, none stands by (none is available anyway). O(backends),
 * run only in pools with several priorities, on each change of a
 * backend's state (health, admin, slow start: never per session). With
 * NOTIFY the strategy hears of each backend whose availability changed. */
static void pool_tiers_apply(struct pool *pool, bool notify)
{
    unsigned best = UINT_MAX;
    for (size_t i = 0; i < pool->nbackends; i++) {
        const struct backend *b = pool->backends[i];
        if (b && b->up && b->eff_weight > 0 && b->priority < best)
            best = b->priority;
    }
    for (size_t i = 0; i < pool->nbackends; i++) {
        struct backend *b = pool->backends[i];
        bool standby = b && best != UINT_MAX && b->priority > best;
        if (!b || standby == b->standby)
            continue;
        bool was = backend_available(b);
        b->standby = standby;
        bool now = backend_available(b);
        if (now && !was)
            pool->navailable++;
        if (!now && was)
            pool->navailable--;
        if (!notify || pool->retired || pool->state == NULL || pool->ops->update == NULL)
            continue;
        pool->ops->update(pool, b); /* ENOMEM: its old structures stay */
        if (now && !was && pool->nqueued > 0 && room_hook)
            room_hook(pool);
    }
}

/* Builds the strategy state once all backends are added (again: rebuilds
 * it). 0, or -1 on ENOMEM with the old state, if any, kept. */
int pool_build(struct pool *pool)
{
    pool->tiers = false;
    for (size_t i = 1; i < pool->nbackends && !pool->tiers; i++)
        pool->tiers = pool->backends[i]->priority != pool->backends[0]->priority;
    pool_tiers_apply(pool, false);
    void *old = pool->state;
    pool->state = NULL;
    if (pool->ops->init(pool) < 0) {
        pool->state = old;
        return -1;
    }
    if (old != NULL) {
        void *fresh = pool->state;
        pool->state = old;
        pool->ops->destroy(pool);
        pool->state = fresh;
    }
    return 0;
}

/* Builds a pool (with its strategy state) from its config; NULL on ENOMEM. */
struct pool *pool_create(const struct lb_pool_conf *conf)
{
    struct pool *pool = pool_prepare(conf);
    if (pool && pool_build(pool) < 0) {
        pool_release(pool);
        return NULL;
    }
    return pool;
}

/* A pool with fresh backends from its config, without strategy state yet
 * (a reload adopts backends first, then builds). NULL on ENOMEM. */
struct pool *pool_prepare(const struct lb_pool_conf *conf)
{
    struct pool *pool = pool_new(conf->name, conf->strategy);
    if (pool == NULL)
        return NULL;
    pool->connect_timeout_ms = conf->connect_timeout_ms;
    pool->retries = conf->retries;
    pool->keepalive = conf->keepalive;
    pool->send_proxy = conf->send_proxy;
    pool->reuse_max_idle = conf->reuse_max_idle;
    pool->reuse_idle_timeout_ms = conf->reuse_idle_timeout_ms;
    pool->response_timeout_ms = conf->response_timeout_ms;
    pool->queue_max = conf->queue_max;
    pool->queue_timeout_ms = conf->queue_timeout_ms;
    if (conf->hash_table_size > 0)
        pool->hash_table_size = conf->hash_table_size;
    for (size_t i = 0; i < conf->nbackends; i++) {
        const struct lb_backend_conf *bc = &conf->backends[i];
        struct backend *b =
            pool_add_backend(pool, bc->id, bc->name, bc->address,
                             (const struct sockaddr *)&bc->addr, bc->addrlen, bc->weight);
        if (b == NULL)
            goto fail;
        b->max_conns = bc->max_connections;
    }
    return pool;
fail:
    pool_release(pool);
    return NULL;
}

/* Drops one reference to the pool (its own from pool_new, a listener's or a
 * session's); the last one frees the strategy state and drops the pool's
 * reference to each backend, whose health checks are stopped already
 * (pool_health_stop(), or a reload that removed it). A backend a session
 * still holds survives with b->pool NULL until its last backend_release(). */
void pool_release(struct pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->refs > 1) {
        pool->refs--;
        return;
    }
    if (pool->state != NULL)
        pool->ops->destroy(pool);
    for (size_t i = 0; i < pool->nbackends; i++) {
        struct backend *b = pool->backends[i];
        if (b == NULL) /* adopted by a newer pool (reload) */
            continue;
        b->pool = NULL;
        backend_release(b);
    }
    free(pool->backends);
    free(pool->name);
    tls_ctx_unref(pool->tls);
    tls_ctx_unref(pool->check_tls);
    free(pool);
}

void pool_retire(struct pool *pool)
{
    pool->retired = true;
    if (pool->state != NULL)
        pool->ops->destroy(pool);
    pool->state = NULL;
}

/* False for a retired pool, one whose strategy state could not be built,
 * or one with no available backend. */
bool pool_has_available(const struct pool *pool)
{
    return !pool->retired && pool->navailable > 0 && pool->state != NULL;
}

/* An available backend with room (see pool.h), or NULL. O(1) strategy
 * picks while backends have room; each full one costs one more. */
struct backend *pool_pick(struct pool *pool, const struct pick_ctx *ctx)
{
    if (!pool_has_available(pool))
        return NULL;
    struct backend *b = pool->ops->pick(pool, ctx);
    if (b == NULL || !backend_full(b))
        return b;
    /* Full: offer the strategy its next choice, with what it offered so
     * far counted as tried. It answers an untried backend while one is
     * left, then a tried one (the fallback): a full one seen again means
     * none has room; past LB_MAX_TRIES, a scan decides. */
    struct pick_ctx skip;
    skip.key = ctx ? ctx->key : NULL;
    skip.key_len = ctx ? ctx->key_len : 0;
    skip.ntried = 0;
    if (ctx) {
        memcpy(skip.tried, ctx->tried, ctx->ntried * sizeof(ctx->tried[0]));
        skip.ntried = ctx->ntried;
    }
    while (b != NULL && backend_full(b)) {
        if (pick_tried(&skip, b) || skip.ntried == LB_MAX_TRIES) {
            b = NULL;
            break;
        }
        skip.tried[skip.ntried++] = b;
        b = pool->ops->pick(pool, &skip);
    }
    if (b == NULL) /* the first with room, if the strategy missed one */
        for (size_t i = 0; i < pool->nbackends && b == NULL; i++) {
            struct backend *c = pool->backends[i];
            if (c && backend_available(c) && !backend_full(c))
                b = c;
        }
    return b;
}

/* A session starts using b, right after pool_pick() chose it. */
void pool_conn_start(struct pool *pool, struct backend *b)
{
    b->active++;
    if (pool == NULL || b->pool != pool || pool->retired || pool->state == NULL)
        return;
    if (pool->ops->conn_start)
        pool->ops->conn_start(pool, b);
}

/* A session on b ends. Safe after the pool was freed (b->pool is NULL
 * then), and after a reload moved b to a new pool. */
void pool_conn_end(struct pool *pool, struct backend *b)
{
    (void)pool;
    if (b->active > 0)
        b->active--;
    /* The session's pool may be an older generation: the backend's own
     * (current) pool is the one whose strategy counts it. A removed
     * backend's own pool is retired: no strategy counts it any more. */
    struct pool *cur = b->pool;
    if (cur == NULL || cur->retired || cur->state == NULL)
        return;
    if (cur->ops->conn_end)
        cur->ops->conn_end(cur, b);
}

void pool_set_room_hook(void (*fn)(struct pool *pool))
{
    room_hook = fn;
}

/* Tells the strategy that b changed; keeps navailable right. A backend
 * that became available may have room for the sessions queued. */
static int pool_update(struct pool *pool, struct backend *b, bool was_available)
{
    bool now = backend_available(b);
    if (now && !was_available)
        pool->navailable++;
    if (!now && was_available)
        pool->navailable--;
    if (pool->retired || pool->state == NULL || pool->ops->update == NULL)
        return 0;
    int r = pool->ops->update(pool, b);
    if (r == 0 && now && !was_available && pool->nqueued > 0 && room_hook)
        room_hook(pool);
    if (r == 0 && pool->tiers)
        pool_tiers_apply(pool, true);
    return r;
}

/* Sets b's up, weight and eff_weight at once and tells the strategy. 0, or
 * -1 with b unchanged when the strategy could not rebuild (it kept its old
 * structures, so restoring the old values cannot fail). */
static int pool_change(struct pool *pool, struct backend *b, bool up, unsigned weight,
                       unsigned eff_weight)
{
    if (b->up == up && b->weight == weight && b->eff_weight == eff_weight)
        return 0;
    struct backend old = *b;
    bool was = backend_available(b);
    b->up = up;
    b->weight = weight;
    b->eff_weight = eff_weight;
    if (pool_update(pool, b, was) == 0)
        return 0;
    was = backend_available(b);
    b->up = old.up;
    b->weight = old.weight;
    b->eff_weight = old.eff_weight;
    pool_update(pool, b, was);
    return -1;
}

/* Marks b up or down (health, admin). 0, or -1 with b unchanged. */
int pool_set_backend_up(struct pool *pool, struct backend *b, bool up)
{
    return pool_change(pool, b, up, b->weight, b->eff_weight);
}

/* Sets b's weight (clamped to LB_WEIGHT_MAX), in full at once. 0, or -1
 * with b unchanged. */
int pool_set_backend_weight(struct pool *pool, struct backend *b, unsigned weight)
{
    if (weight > LB_WEIGHT_MAX)
        weight = LB_WEIGHT_MAX;
    return pool_change(pool, b, b->up, weight, weight);
}

/* Sets b's effective weight alone (slow start): clamped to 1..weight, 0
 * only when weight is 0. 0, or -1 with b unchanged. */
int pool_set_backend_eff_weight(struct pool *pool, struct backend *b, unsigned eff_weight)
{
    if (eff_weight > b->weight)
        eff_weight = b->weight;
    if (eff_weight == 0 && b->weight > 0)
        eff_weight = 1;
    return pool_change(pool, b, b->up, b->weight, eff_weight);
}

/* Puts old -- the backend with the same id in the previous generation of
 * this pool -- in place of the fresh backend at index i, before
 * pool_build(): old keeps its runtime state (health, counters, sessions,
 * admin overrides) and takes the new address and weight (an admin weight
 * wins). Its slot in the old pool becomes NULL; the fresh one is freed. */
void pool_adopt_backend(struct pool *pool, size_t i, struct backend *old)
{
    struct backend *fresh = pool->backends[i];
    if (old->pool && old->pool->backends[old->index] == old)
        old->pool->backends[old->index] = NULL;
    if (strcmp(old->address, fresh->address) != 0 || old->addrlen != fresh->addrlen ||
        memcmp(&old->addr, &fresh->addr, fresh->addrlen) != 0) {
        char *swap = old->address;
        old->address = fresh->address;
        fresh->address = swap;
        old->addr = fresh->addr;
        old->addrlen = fresh->addrlen;
    }
    if (!old->weight_overridden && old->weight != fresh->weight) {
        /* Mid slow start, the ramp goes on towards the new weight. */
        if (old->eff_weight >= old->weight || old->eff_weight > fresh->weight)
            old->eff_weight = fresh->weight;
        old->weight = fresh->weight;
    }
    old->max_conns = fresh->max_conns; /* the new limit; slots held stay held */
    old->priority = fresh->priority;   /* pool_build() puts standby right */
    char *dns = old->dns;
    old->dns = fresh->dns;
    fresh->dns = dns;
    old->pool = pool;
    old->index = (unsigned)i;
    pool->backends[i] = old;
    /* O(1), not a recount: a reload adopts every backend of a pool. */
    pool->navailable -= backend_available(fresh);
    pool->navailable += backend_available(old);
    backend_release(fresh);
}
