/* pool_health: what health means for lb. Wires every backend to its active
 * check (health/) and passive failure counter, turns their verdicts into
 * pool_set_backend_up() so the strategy skips the backend, ends passive
 * ejections, ramps a returning backend's weight (slow start), and logs each
 * transition once. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "lb/proto/proxy_proto.h"
#include "lb/clock.h"
#include "lb/io/tls_ctx.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/pool_health.h"

/* Slow start moves a backend's weight in this many steps. */
#define RAMP_STEPS 20
#define RAMP_STEP_MIN_MS 50

void pool_note_available(struct pool *pool)
{
    if (pool->navailable == 0 && !pool->empty_logged) {
        pool->empty_logged = true;
        log_error("pool %s has no available backend", pool->name);
    } else if (pool->navailable > 0 && pool->empty_logged) {
        pool->empty_logged = false;
        log_info("pool %s has an available backend again (%zu of %zu)", pool->name,
                 pool->navailable, pool->nbackends);
    }
}

static void on_ramp_timer(evutil_socket_t fd, short what, void *arg);

/* Slow start: the weight b should have now; re-arms the ramp timer until
 * the full weight is reached. */
static void backend_ramp(struct backend *b)
{
    struct pool *pool = b->pool;
    uint64_t elapsed = clock_ms(CLOCK_MONOTONIC) - b->up_since_ms;
    unsigned eff = health_slow_start_weight(b->weight, elapsed, pool->slow_start_ms);
    if (pool_set_backend_eff_weight(pool, b, eff) < 0)
        log_warn("pool %s backend %s: out of memory while ramping its weight", pool->name, b->id);
    if (eff >= b->weight || !b->up || !b->ramp_timer)
        return;
    unsigned step = pool->slow_start_ms / RAMP_STEPS;
    struct timeval tv = clock_timeval(step < RAMP_STEP_MIN_MS ? RAMP_STEP_MIN_MS : step);
    evtimer_add(b->ramp_timer, &tv);
}

static void on_ramp_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct backend *b = arg;
    if (b->pool)
        backend_ramp(b);
}

const double lb_check_bucket_s[LB_CHECK_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1,    2.5,   5};

const char *backend_state_name(const struct backend *b)
{
    if (b->admin == BACKEND_DISABLED)
        return "disabled";
    if (b->admin == BACKEND_DRAINING)
        return "draining";
    if (b->health_down || b->ejected)
        return "down";
    return b->standby ? "standby" : "up";
}

/* Applies health_down / ejected / admin to b->up; starts slow start when b
 * comes back. Logs nothing itself: the callers say why. */
void backend_refresh(struct backend *b)
{
    struct pool *pool = b->pool;
    if (!pool || b->removed) /* a removed backend's timers are gone */
        return;
    bool up = !b->health_down && !b->ejected && b->admin == BACKEND_ENABLED;
    if (up == b->up)
        return;
    if (up && pool->slow_start_ms > 0 && b->weight > 0) {
        b->up_since_ms = clock_ms(CLOCK_MONOTONIC);
        /* Comes back at the bottom of the ramp, not at full weight. */
        pool_set_backend_eff_weight(pool, b,
                                    health_slow_start_weight(b->weight, 0, pool->slow_start_ms));
    }
    if (pool_set_backend_up(pool, b, up) < 0) {
        log_error("pool %s backend %s: out of memory, state unchanged", pool->name, b->id);
        return;
    }
    if (up && pool->slow_start_ms > 0 && b->weight > 0)
        backend_ramp(b);
    else if (!up && b->ramp_timer) /* none without health (a pool of unit tests) */
        evtimer_del(b->ramp_timer);
    pool_note_available(pool);
}

static void on_check(void *arg, const struct health_report *r)
{
    struct backend *b = arg;
    struct pool *pool = b->pool;
    double seconds = (double)r->duration_us / 1e6;
    for (int i = 0; i < LB_CHECK_BUCKETS; i++)
        if (seconds <= lb_check_bucket_s[i])
            b->check_buckets[i]++;
    b->check_count++;
    b->check_sum_s += seconds;
    if (!pool || !r->transition)
        return;
    const struct health_sm *sm = r->sm;
    if (sm->up) {
        log_info("pool %s backend %s UP: %s (%u/%u successes)", pool->name, b->id, r->detail,
                 sm->successes, sm->rise);
    } else {
        log_warn("pool %s backend %s DOWN: %s (%u/%u failures)", pool->name, b->id, r->error,
                 sm->failures, sm->fall);
    }
    b->health_down = !sm->up;
    backend_refresh(b);
}

static void on_eject_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct backend *b = arg;
    if (!b->pool || !b->ejected)
        return;
    b->ejected = false;
    log_info("pool %s backend %s UP: passive ejection of %u ms over", b->pool->name, b->id,
             b->pool->passive.ejection_ms);
    backend_refresh(b);
}

void backend_connect_result(struct backend *b, bool ok)
{
    struct pool *pool = b->pool;
    if (!pool || b->removed || !health_passive_record(&b->passive, ok) || !b->up)
        return;
    unsigned n = pool->passive.max_failures;
    if (b->check) {
        /* Active checks decide when it returns: after `rise` passes. */
        health_check_force_down(b->check);
        b->health_down = true;
        log_warn("pool %s backend %s DOWN: ejected after %u consecutive failed connects (back "
                 "after %u passing checks)",
                 pool->name, b->id, n, health_check_sm(b->check)->rise);
    } else {
        if (!b->eject_timer) /* its health could not be started (out of memory) */
            return;
        b->ejected = true;
        struct timeval tv = clock_timeval(pool->passive.ejection_ms);
        evtimer_add(b->eject_timer, &tv);
        log_warn("pool %s backend %s DOWN: ejected after %u consecutive failed connects (for "
                 "%u ms)",
                 pool->name, b->id, n, pool->passive.ejection_ms);
    }
    backend_refresh(b);
}

void backend_health_stop(struct backend *b)
{
    if (b->check) {
        health_check_free(b->check);
        b->check = NULL;
    }
    if (b->eject_timer) {
        event_free(b->eject_timer);
        b->eject_timer = NULL;
    }
    if (b->ramp_timer) {
        event_free(b->ramp_timer);
        b->ramp_timer = NULL;
    }
}

void pool_health_stop(struct pool *pool)
{
    for (size_t i = 0; i < pool->nbackends; i++)
        if (pool->backends[i])
            backend_health_stop(pool->backends[i]);
}

/* An https check's SSL (struct health_tls): from the context the backend's
 * pool has now (pool->check_tls, which a reload replaces), so a check kept
 * by a reload connects with the reloaded certificates from its next check
 * on. The check holds a reference to that context until it frees the SSL,
 * so one in flight across a reload keeps the old context alive. */
static SSL *check_ssl_new(void *arg, int fd, void **hold)
{
    struct backend *b = arg;
    struct tls_ctx *t = b->pool ? b->pool->check_tls : NULL;
    SSL *ssl = t ? tls_client_ssl_new(t, fd) : NULL;

    if (!ssl)
        return NULL;
    *hold = tls_ctx_ref(t);
    return ssl;
}

static void check_ssl_done(void *arg, void *hold)
{
    (void)arg;
    tls_ctx_unref(hold);
}

/* Sets up b's timers and, with active checks, its check (started later).
 * A backend carried over by a reload keeps its timers, its passive count
 * and, when the settings and address are unchanged, its running check and
 * state; a changed check starts over (up, first check at once). */
static int backend_health_init(struct backend *b, const struct lb_pool_conf *conf,
                               struct event_base *base)
{
    const struct sockaddr *addr = (const struct sockaddr *)&b->addr;
    b->passive.max_failures = conf->passive.max_failures;
    if (!b->eject_timer)
        b->eject_timer = evtimer_new(base, on_eject_timer, b);
    if (!b->ramp_timer)
        b->ramp_timer = evtimer_new(base, on_ramp_timer, b);
    if (!b->eject_timer || !b->ramp_timer)
        return -1;
    if (b->check && (conf->health.type == LB_CHECK_NONE ||
                     !health_check_matches(b->check, &conf->health, addr, b->addrlen, b->address,
                                           &conf->tls))) {
        health_check_free(b->check);
        b->check = NULL;
        b->health_down = false;
    }
    if (conf->health.type == LB_CHECK_NONE || b->check)
        return 0;
    b->check = health_check_new(base, &conf->health, addr, b->addrlen, b->address, on_check, b);
    if (!b->check)
        return -1;
    struct health_tls tls = {check_ssl_new, check_ssl_done, b, &conf->tls};
    if (conf->health.type == LB_CHECK_HTTPS && health_check_set_tls(b->check, &tls) < 0) {
        health_check_free(b->check);
        b->check = NULL;
        return -1;
    }
    if (conf->health.send_proxy != LB_PROXY_OFF) { /* a LOCAL header: no client to name */
        unsigned char hdr[PROXY_V1_MAX];
        size_t n =
            proxy_write_local(conf->health.send_proxy == LB_PROXY_V1 ? 1 : 2, hdr, sizeof(hdr));
        if (health_check_set_prefix(b->check, hdr, n) < 0) {
            health_check_free(b->check);
            b->check = NULL;
            return -1;
        }
    }
    return 0;
}

int pool_health_start(struct pool *pool, const struct lb_pool_conf *conf, struct event_base *base)
{
    pool->base = base;
    pool->has_checks = conf->health.type != LB_CHECK_NONE;
    pool->passive = conf->passive;
    pool->slow_start_ms = conf->slow_start_ms;
    for (size_t i = 0; i < pool->nbackends; i++)
        if (backend_health_init(pool->backends[i], conf, base) < 0)
            goto fail;
    for (size_t i = 0; i < pool->nbackends; i++)
        if (pool->backends[i]->check && health_check_start(pool->backends[i]->check) < 0)
            goto fail;
    for (size_t i = 0; i < pool->nbackends; i++)
        backend_refresh(pool->backends[i]); /* a restarted check starts up */
    return 0;
fail:
    pool_health_stop(pool);
    return -1;
}
