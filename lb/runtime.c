/* runtime: builds the live listeners and pools from a validated config,
 * tracks open sessions, and runs the stop sequence (stop accepting, grace
 * period, close what is left, leave the loop). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "lb/clock.h"
#include "lb/control.h"
#include "lb/discovery.h"
#include "lb/fleet.h"
#include "lb/names.h"
#include "lb/notify.h"
#include "lb/http_reuse.h"
#include "lb/log.h"
#include "lb/io/tls_ctx.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/pool_health.h"
#include "lb/reload.h"
#include "lb/session.h"
#include "lb/runtime.h"
#include "lb/upstream.h"

void runtime_pool_tls(struct pool *pool, const struct tls_set *set, size_t i)
{
    pool->tls = set->pools[i] ? tls_ctx_ref(set->pools[i]) : NULL;
    pool->check_tls = set->checks[i] ? tls_ctx_ref(set->checks[i]) : NULL;
}

struct pool *runtime_find_pool(const struct runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->npools; i++)
        if (strcmp(rt->pools[i]->name, name) == 0)
            return rt->pools[i];
    return NULL;
}

/* Once a second: look for resets on the sides no event watches. */
static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct runtime *rt = arg;
    session_probe_parked(rt);
}

/* Frees everything runtime_start() built. The runtime started the current
 * pools' health checks, so it stops them (a reload stopped those of the
 * backends it removed): no timer fires on a backend a session still holds
 * after its pool went. */
static void runtime_release(struct runtime *rt)
{
    reload_cancel(rt);
    for (size_t i = 0; i < rt->npools; i++)
        pool_health_stop(rt->pools[i]);
    for (size_t i = 0; i < rt->nlisteners; i++)
        listener_destroy(rt->listeners[i]);
    free(rt->listeners);
    rt->listeners = NULL;
    rt->nlisteners = 0;
    for (size_t i = 0; i < rt->npools; i++)
        pool_release(rt->pools[i]);
    free(rt->pools);
    rt->pools = NULL;
    rt->npools = 0;
    if (rt->grace_timer)
        event_free(rt->grace_timer);
    rt->grace_timer = NULL;
    if (rt->probe_timer)
        event_free(rt->probe_timer);
    rt->probe_timer = NULL;
    if (rt->reload_ev)
        event_free(rt->reload_ev);
    rt->reload_ev = NULL;
    relay_shared_free(&rt->relays);
    if (rt->fleet) {
        fleet_free(rt->fleet);
        free(rt->fleet);
        rt->fleet = NULL;
    }
    if (rt->fleet_ev)
        event_free(rt->fleet_ev);
    rt->fleet_ev = NULL;
    runtime_fleet_merged_drop(rt);
    if (rt->dns) {
        discovery_set_free(rt->dns);
        free(rt->dns);
        rt->dns = NULL;
    }
    tls_set_free(&rt->tls);
    config_free(rt->cfg);
    bufpool_drain(&rt->bufs);
    pipepool_drain(&rt->pipes);
    rt->cfg = NULL;
}

/* A "dns" entry's answer changed: its pool takes it. */
static int on_dns_changed(void *arg, const struct discovery *d)
{
    struct runtime *rt = arg;
    size_t added = 0, removed = 0;
    if (reload_pool(rt, d->pool, &added, &removed) < 0)
        return -1;
    log_info("dns: pool %s: %s %s: %zu backends (+%zu -%zu)", d->pool, d->conf.name,
             discovery_type_name(d->conf.type), d->nbackends, added, removed);
    return 0;
}

/* etcd's documents changed: applied like a reload, once lb has started
 * (the start takes them as they are when its wait ends). */
static void on_fleet_changed(void *arg)
{
    runtime_fleet_changed(arg);
}

static void on_fleet_apply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reload_fleet(arg);
}

void runtime_fleet_changed(struct runtime *rt)
{
    if (rt->starting) {
        rt->fleet_again = true; /* runtime_ready() applies what came after the start's merge */
        return;
    }
    /* From the loop: the changes one read brings (or several reads in one
     * turn) make one reload, never one inside the watch's callback. */
    if (!rt->fleet_ev && !(rt->fleet_ev = event_new(rt->base, -1, 0, on_fleet_apply, rt))) {
        reload_fleet(rt);
        return;
    }
    event_active(rt->fleet_ev, EV_TIMEOUT, 0);
}

/* A listener (or SNI route) of the file names pool NAME, which the file
 * itself does not have: etcd's document may not go. */
static bool fleet_needed(void *arg, const char *name, char *who, size_t cap)
{
    const struct lb_config *cfg = ((struct runtime *)arg)->cfg;
    bool in_file = false;
    for (size_t i = 0; i < cfg->npools; i++)
        if (strcmp(cfg->pools[i].name, name) == 0)
            in_file = !cfg->pools[i].from_doc || cfg->pools[i].replaces_file;
    bool named = false;
    for (size_t i = 0; i < cfg->nlisteners && !named && !in_file; i++) {
        const struct lb_listener_conf *l = &cfg->listeners[i];
        named = strcmp(l->pool, name) == 0;
        for (size_t k = 0; k < l->nsni_routes && !named; k++)
            named = strcmp(l->sni_routes[k].pool, name) == 0;
        if (named)
            snprintf(who, cap, "listener %s", l->name);
    }
    return named;
}

/* The config's weight of backend b (its file entry's; b's own when it
 * has none there, e.g. one from DNS). */
static unsigned conf_weight(const struct runtime *rt, const struct pool *pool,
                            const struct backend *b)
{
    for (size_t i = 0; i < rt->cfg->npools; i++) {
        const struct lb_pool_conf *pc = &rt->cfg->pools[i];
        if (strcmp(pc->name, pool->name) != 0)
            continue;
        for (size_t j = 0; j < pc->nbackends; j++)
            if (strcmp(pc->backends[j].id, b->id) == 0)
                return pc->backends[j].weight;
    }
    return b->weight;
}

/* etcd's state of a backend (st NULL: none, its key deleted), through the
 * control verbs; a backend not there now gets it when it appears. */
static void fleet_state_apply(void *arg, const char *pool, const char *backend,
                              const struct fleet_state *st)
{
    struct runtime *rt = arg;
    struct pool *p = runtime_find_pool(rt, pool);
    struct backend *b = NULL;
    for (size_t i = 0; p && i < p->nbackends && !b; i++)
        if (p->backends[i] && strcmp(p->backends[i]->id, backend) == 0)
            b = p->backends[i];
    if (!b)
        return;
    if (st && st->weight >= 0)
        backend_set_weight_override(b, (unsigned)st->weight);
    else
        backend_clear_weight_override(b, conf_weight(rt, p, b));
    backend_set_admin_state(b,
                            st && st->state >= 0 ? (enum backend_admin)st->state : BACKEND_ENABLED);
}

void runtime_fleet_merged(struct runtime *rt, bool commit)
{
    if (!rt->fleet) {
        runtime_fleet_merged_drop(rt);
        return;
    }
    if (commit) {
        if (rt->fleet_merged)
            fleet_applied(rt->fleet, rt->fleet_merged);
        runtime_fleet_merged_drop(rt);
        return;
    }
    runtime_fleet_merged_drop(rt);
    struct fleet_docset *set = calloc(1, sizeof(*set));
    if (set && fleet_docset_take(rt->fleet, set) == 0)
        rt->fleet_merged = set; /* out of memory: the last applied set stays */
    else
        free(set);
}

void runtime_fleet_merged_drop(struct runtime *rt)
{
    fleet_docset_free(rt->fleet_merged);
    free(rt->fleet_merged);
    rt->fleet_merged = NULL;
}

void runtime_fleet_states_apply(struct runtime *rt)
{
    for (size_t i = 0; rt->fleet && i < rt->fleet->nstates; i++)
        fleet_state_apply(rt, rt->fleet->states[i].pool, rt->fleet->states[i].backend,
                          &rt->fleet->states[i]);
}

int runtime_fleet_init(struct runtime *rt, const struct lb_config *cfg, char *err, size_t errlen)
{
    struct fleet *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (fleet_init(f, rt->base, cfg, on_fleet_changed, rt, err, errlen) < 0) {
        free(f);
        return -1;
    }
    f->needed = fleet_needed;
    f->state_changed = fleet_state_apply;
    rt->fleet = f;
    fleet_run(f);
    return 0;
}

static void on_fleet_wait_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* With "fleet", etcd's pools are read before anything is built, so the
 * listeners open onto them (bounded by start_timeout_ms). When no
 * endpoint answers in time, lb starts with the file's pools if the file
 * has every pool its listeners name, and fails otherwise. rt->cfg becomes
 * the file merged with etcd's documents. */
static int runtime_fleet_start(struct runtime *rt, char *err, size_t errlen)
{
    struct lb_config *cfg = rt->cfg;
    if (!cfg->fleet.enabled)
        return 0;
    if (runtime_fleet_init(rt, cfg, err, errlen) < 0)
        return -1;
    bool over = false;
    struct event *timer = evtimer_new(rt->base, on_fleet_wait_over, &over);
    unsigned ms = cfg->fleet.start_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!timer || evtimer_add(timer, &tv) < 0) {
        if (timer)
            event_free(timer);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    log_info("fleet: reading pools from etcd %s (prefix %s) before the listeners open",
             cfg->fleet.endpoints[0].url, cfg->fleet.prefix);
    while (!rt->fleet->synced && !over && !rt->stopping)
        event_base_loop(rt->base, EVLOOP_ONCE);
    event_free(timer);
    if (rt->stopping) {
        snprintf(err, errlen, "stopped while reading etcd");
        return -1;
    }
    if (!rt->fleet->synced) {
        if (cfg->unlinked) {
            snprintf(err, errlen,
                     "fleet: no etcd endpoint answered within %u ms (last: %s), and pool \"%s\" "
                     "that a listener names is not in the file",
                     ms, rt->fleet->error, cfg->unlinked_pool);
            return -1;
        }
        log_warn("fleet: no etcd endpoint answered within %u ms (last: %s); starting with the "
                 "file's pools, etcd's apply once it answers",
                 ms, rt->fleet->error);
        return 0;
    }
    struct config_doc *docs;
    size_t ndocs;
    struct lb_config *merged;
    if (fleet_docs(rt->fleet, &docs, &ndocs) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* A document that fails (the loader, a host name) is refused and the
     * merge made again without it. */
    int rc;
    for (;;) {
        rc = config_merge(cfg, docs, ndocs, &merged, err, errlen);
        free(docs);
        if (rc == 0 && names_resolve_now(merged, err, errlen) < 0) {
            config_free(merged);
            merged = NULL;
            rc = -1;
        }
        if (rc == 0 || !fleet_blame(rt->fleet, err))
            break;
        if (fleet_docs(rt->fleet, &docs, &ndocs) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (rc < 0)
        return -1;
    runtime_fleet_merged(rt, false);
    runtime_fleet_merged(rt, true);
    config_free(rt->cfg);
    rt->cfg = merged;
    rt->fleet->base_cfg = merged;
    rt->fleet_again = false;
    return 0;
}

static void on_first_answers(void *arg)
{
    *(bool *)arg = true;
}

/* The "dns" entries of cfg get their first answers (or failures) before
 * any pool is built, so no listener opens onto a pool still empty for
 * lack of waiting. The loop runs for it (each question ends by its
 * timeout at worst); a stop signal meanwhile fails the start. */
static int runtime_first_answers(struct runtime *rt, char *err, size_t errlen)
{
    bool ready = false;
    if (!(rt->dns = calloc(1, sizeof(*rt->dns)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    discovery_set_init(rt->dns, rt->base, on_dns_changed, rt);
    long fresh = discovery_prepare(rt->dns, rt->cfg, on_first_answers, &ready, err, errlen);
    if (fresh < 0)
        return -1;
    if (fresh > 0)
        log_info("asking %ld \"dns\" entries before the listeners open", fresh);
    while (fresh > 0 && !ready && !rt->stopping)
        event_base_loop(rt->base, EVLOOP_ONCE);
    if (rt->stopping) {
        snprintf(err, errlen, "stopped while waiting for DNS");
        return -1;
    }
    discovery_commit(rt->dns, rt->cfg);
    return 0;
}

int runtime_start(struct runtime *rt, struct event_base *base, struct lb_config *cfg, char *err,
                  size_t errlen)
{
    memset(rt, 0, sizeof(*rt));
    rt->starting = true; /* a SIGHUP while DNS answers are awaited runs after the start */
    rt->base = base;
    rt->cfg = cfg;
    struct timeval now;
    gettimeofday(&now, NULL);
    rt->started_unix_ms = (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
    rt->config_loaded_unix_ms = rt->started_unix_ms;
    LIST_INIT(&rt->sessions);
    TAILQ_INIT(&rt->idle);
    relay_shared_init(&rt->relays, base);
    bufpool_init(&rt->bufs, RUNTIME_BUF_SIZE, RUNTIME_BUFS_CACHED);
    pipepool_init(&rt->pipes, 0); /* runtime_fd_budget() sets how many */
    LIST_INIT(&rt->retired);
    LIST_INIT(&rt->http_parked);
    pool_set_room_hook(upstream_queue_serve); /* a backend back up serves the queue */
    rt->generation = 1;

    if (reload_init(rt) < 0)
        goto nomem;
    rt->probe_timer = event_new(base, -1, EV_PERSIST, on_probe_timer, rt);
    struct timeval second = {1, 0};
    if (!rt->probe_timer || evtimer_add(rt->probe_timer, &second) < 0)
        goto nomem;
    if (runtime_fleet_start(rt, err, errlen) < 0)
        goto fail;
    cfg = rt->cfg; /* with etcd's pools */
    if (tls_set_build(cfg, &rt->tls, err, errlen) < 0)
        goto fail;
    if (runtime_first_answers(rt, err, errlen) < 0)
        goto fail;
    rt->pools = calloc(cfg->npools, sizeof(*rt->pools));
    rt->listeners = calloc(cfg->nlisteners, sizeof(*rt->listeners));
    if (!rt->pools || !rt->listeners)
        goto nomem;
    for (size_t i = 0; i < cfg->npools; i++) {
        rt->pools[i] = pool_prepare(&cfg->pools[i]);
        if (!rt->pools[i])
            goto nomem;
        if (discovery_fill_pool(rt->dns, rt->pools[i], &cfg->pools[i]) < 0 ||
            pool_build(rt->pools[i]) < 0) {
            pool_release(rt->pools[i]);
            rt->pools[i] = NULL;
            goto nomem;
        }
        rt->npools++;
        runtime_pool_tls(rt->pools[i], &rt->tls, i);
        if (pool_health_start(rt->pools[i], &cfg->pools[i], base) < 0)
            goto nomem;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        rt->listeners[i] = listener_create(rt, &cfg->listeners[i], rt->pools, session_start);
        if (!rt->listeners[i])
            goto nomem;
        rt->nlisteners++;
        listener_set_tls(rt->listeners[i], rt->tls.listeners[i], &cfg->listeners[i]);
        if (listener_open(rt->listeners[i], false, err, errlen) < 0)
            goto fail;
    }
    runtime_fleet_states_apply(rt);
    return 0;

nomem:
    snprintf(err, errlen, "out of memory");
fail:
    runtime_release(rt);
    return -1;
}

void runtime_ready(struct runtime *rt)
{
    const struct lb_config *cfg = rt->cfg;
    runtime_fd_budget(rt);
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct lb_health_conf *hc = &cfg->pools[i].health;
        if (hc->type != LB_CHECK_NONE)
            log_info("pool %s: %s health checks every %u ms (timeout %u ms, rise %u, fall %u)",
                     cfg->pools[i].name,
                     hc->type == LB_CHECK_HTTPS  ? "https"
                     : hc->type == LB_CHECK_HTTP ? "http"
                                                 : "tcp",
                     hc->interval_ms, hc->timeout_ms, hc->rise, hc->fall);
    }
    for (size_t i = 0; i < rt->nlisteners; i++) {
        struct listener *l = rt->listeners[i];
        log_info("listener %s listening on %s (mode %s, pool %s, strategy %s, %zu backends%s)",
                 l->name, l->listen, config_mode_name(l->mode), l->pool->name,
                 config_strategy_name(l->pool->strategy), l->pool->nbackends,
                 l->reuse_port ? ", reuse_port" : "");
    }
    rt->starting = false;
    if (rt->fleet_again) { /* etcd changed while the start went on */
        rt->fleet_again = false;
        reload_fleet(rt);
    }
    if (rt->reload_again) { /* a SIGHUP came while the start waited for DNS */
        rt->reload_again = false;
        reload_request(rt);
    }
}

static void runtime_close_all(struct runtime *rt)
{
    while (!LIST_EMPTY(&rt->sessions))
        session_abort(LIST_FIRST(&rt->sessions), SESSION_END_SHUTDOWN);
    http_reuse_flush_all(rt);
}

static void on_grace_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct runtime *rt = arg;
    log_info("grace period over: closing %llu open sessions", (unsigned long long)rt->active);
    runtime_close_all(rt);
}

void runtime_status_line(const struct runtime *rt, char *buf, size_t cap)
{
    snprintf(buf, cap, "generation %u: %zu listeners, %zu pools, %llu open sessions",
             rt->generation, rt->nlisteners, rt->npools, (unsigned long long)rt->active);
}

/* Stops accepting and lets the sessions finish within the grace period:
 * lb stops (SIGTERM), or hands its sockets to a new binary (handed_off:
 * they stay open, as they are the new process's too, and systemd hears
 * nothing, as the new process is its main one now). */
static void runtime_wind_down(struct runtime *rt, const char *why, bool handed_off)
{
    if (rt->stopping && rt->handed_off && !handed_off && !rt->stop_asked) {
        rt->stop_asked = true;
        log_info("%s: already stopping after a binary upgrade: %llu open sessions go on (a "
                 "second one closes them now)",
                 why, (unsigned long long)rt->active);
        return;
    }
    if (rt->stopping) {
        log_info("%s again: closing %llu open sessions now", why, (unsigned long long)rt->active);
        runtime_close_all(rt);
        event_base_loopexit(rt->base, NULL);
        return;
    }
    rt->stopping = true;
    if (!handed_off) {
        char status[200];
        snprintf(status, sizeof(status), "stopping (%s): %llu open sessions", why,
                 (unsigned long long)rt->active);
        notify_stopping(status);
    }
    reload_cancel(rt);
    unsigned ms = rt->cfg->shutdown_grace_ms;
    for (size_t i = 0; i < rt->nlisteners && !handed_off; i++)
        rt->leaving += listener_leave(rt->listeners[i], ms);
    http_reuse_flush_all(rt);
    session_stop_idle(rt); /* keep-alive clients between requests go now */
    if (rt->active == 0 && rt->leaving == 0) {
        log_info("%s: stopping, no open sessions", why);
        event_base_loopexit(rt->base, NULL);
        return;
    }
    const char *leave =
        rt->leaving ? " (reuse_port sockets hand new clients to the other processes)" : "";
    if (rt->active == 0)
        log_info("%s: stopped accepting%s; no open sessions", why, leave);
    else
        log_info("%s: stopped accepting%s; waiting up to %u ms for %llu open sessions", why, leave,
                 ms, (unsigned long long)rt->active);
    rt->grace_timer = evtimer_new(rt->base, on_grace_timer, rt);
    struct timeval tv = clock_timeval(ms);
    if (!rt->grace_timer || evtimer_add(rt->grace_timer, &tv) < 0) {
        runtime_close_all(rt);
        event_base_loopexit(rt->base, NULL);
    }
}

void runtime_stop(struct runtime *rt, const char *why)
{
    runtime_wind_down(rt, why, false);
}

void runtime_hand_off(struct runtime *rt, const char *why, const int *unused, size_t n)
{
    for (size_t i = 0; i < rt->nlisteners; i++) {
        struct listener *l = rt->listeners[i];
        int fd = listener_fd(l);
        bool gone = false;
        for (size_t k = 0; k < n && fd >= 0; k++)
            gone |= unused[k] == fd;
        if (gone) /* nobody will accept on it: serve what it queued, then close */
            listener_drain(l, l);
        else
            listener_hand_off(l);
    }
    rt->handed_off = true;
    if (!rt->stopping)
        runtime_wind_down(rt, why, true);
}

/* Descriptors lb keeps for itself whatever the config: stdio, the event
 * loop's, signals, the log, a config file being read, sockets a reload
 * binds before it closes the old ones. */
#define FD_RESERVE_BASE 16

/* Pipes open only into descriptors no session holds: at most pipes_cap,
 * and never so many that sessions and pipes together pass what the data
 * path may use (which would eat the admin API's and health checks'
 * reserve). Called whenever the sessions or the budget change. */
static void pipes_fit(struct runtime *rt)
{
    uint64_t held = 2 * rt->active;
    uint64_t room = rt->fd_data_max > held ? (rt->fd_data_max - held) / 2 : 0;
    rt->pipes.max = room < rt->pipes_cap ? (unsigned)room : rt->pipes_cap;
}

/* One more session (two descriptors) would pass what sessions may use,
 * with the pipes of spliced flows (two each) counted in. */
static bool fds_full(const struct runtime *rt)
{
    return 2 * rt->active + rt->nidle + 2 * (uint64_t)rt->pipes.open + 2 > rt->fd_data_max;
}

/* The global max_connections: true when the sessions of all listeners
 * reached it. */
static bool conns_full(const struct runtime *rt)
{
    unsigned max = rt->cfg->max_connections;
    return max > 0 && rt->active >= max;
}

/* Pauses or resumes every listener when the global limit's state changed
 * (a session started or ended, a reload changed the limit). */
static void conn_limit_update(struct runtime *rt)
{
    bool full = conns_full(rt);
    if (full == rt->conn_full)
        return;
    rt->conn_full = full;
    if (full) {
        rt->conn_full_count++;
        static time_t last_logged;
        if (log_second_passed(&last_logged))
            log_warn("%llu sessions open, the global max_connections: accepts pause until one "
                     "ends",
                     (unsigned long long)rt->active);
    }
    if (!full && rt->stopping)
        return;
    for (size_t i = 0; i < rt->nlisteners; i++)
        listener_refresh(rt->listeners[i]);
}

void runtime_fd_budget(struct runtime *rt)
{
    conn_limit_update(rt); /* a reload may have changed it */
    const struct lb_config *cfg = rt->cfg;
    unsigned reserve = FD_RESERVE_BASE + (unsigned)cfg->nlisteners;
    if (cfg->admin.enabled)
        reserve += cfg->admin.max_connections + 1;
    for (size_t i = 0; i < cfg->npools; i++) /* one check in flight per backend */
        if (cfg->pools[i].health.type != LB_CHECK_NONE)
            reserve += (unsigned)cfg->pools[i].nbackends;

    struct rlimit rl;
    unsigned limit = UINT_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < UINT_MAX)
        limit = (unsigned)rl.rlim_cur;
    unsigned data = limit > reserve ? (limit - reserve) & ~1u : 0;
    if (data < 2)
        data = 2; /* one session at a time rather than none */
    if (limit == rt->fd_limit && reserve == rt->fd_reserve)
        return;
    rt->fd_limit = limit;
    rt->fd_reserve = reserve;
    rt->fd_data_max = data;
    /* Spliced flows may hold up to a quarter of the sessions' descriptors
     * in pipes (HAProxy's maxpipes is maxconn / 4); past that, flows copy. */
    rt->pipes_cap = data / 8 < RUNTIME_PIPES_MAX ? data / 8 : RUNTIME_PIPES_MAX;
    pipes_fit(rt);
    unsigned long long wanted = 0; /* sessions the listeners would allow */
    for (size_t i = 0; i < cfg->nlisteners; i++)
        wanted += cfg->listeners[i].max_connections;
    if (limit - 2 < reserve)
        log_warn("file descriptor limit %u leaves no room beside the %u kept for the admin API, "
                 "health checks and lb itself; sessions may use 2 (1 session at a time)",
                 limit, reserve);
    else if (data / 2 < wanted)
        log_warn("file descriptors: limit %u, %u kept for the admin API, health checks and lb "
                 "itself; sessions may use %u (%u sessions), fewer than the listeners' "
                 "max_connections allow (%llu): accepts pause at that limit",
                 limit, reserve, data, data / 2, wanted);
    else
        log_info("file descriptors: limit %u, %u kept for the admin API, health checks and lb "
                 "itself; sessions may use %u (%u sessions)",
                 limit, reserve, data, data / 2);
    rt->fd_full = fds_full(rt);
    for (size_t i = 0; i < rt->nlisteners; i++)
        listener_refresh(rt->listeners[i]);
}

void runtime_session_started(struct runtime *rt, struct listener *l)
{
    rt->active++;
    rt->total++;
    l->active++;
    l->total++;
    conn_limit_update(rt);
    pipes_fit(rt);
    while (fds_full(rt) && http_reuse_trim(rt)) /* idle backend connections go first */
        ;
    if (!rt->fd_full && fds_full(rt)) {
        rt->fd_full = true;
        /* At the limit this flips with every session: one line a second. */
        static time_t last_logged;
        if (log_second_passed(&last_logged))
            log_warn("%llu sessions hold the %u descriptors sessions may use; accepts pause "
                     "until one ends",
                     (unsigned long long)rt->active, rt->fd_data_max);
        for (size_t i = 0; i < rt->nlisteners; i++)
            listener_refresh(rt->listeners[i]);
    }
}

void runtime_session_ended(struct runtime *rt, struct listener *l)
{
    rt->active--;
    l->active--;
    conn_limit_update(rt);
    pipes_fit(rt);
    if (rt->fd_full && !fds_full(rt)) {
        rt->fd_full = false;
        static time_t last_logged;
        if (log_second_passed(&last_logged))
            log_info("descriptors free again: accepts resume (%llu sessions open)",
                     (unsigned long long)rt->active);
        if (!rt->stopping)
            for (size_t i = 0; i < rt->nlisteners; i++)
                listener_refresh(rt->listeners[i]);
    }
    if (l->retired) { /* removed by a reload: freed with its last session */
        if (l->active == 0 && !l->draining) {
            LIST_REMOVE(l, retired_link);
            listener_destroy(l);
        }
    } else if (!rt->stopping) {
        listener_resume(l);
    }
    if (rt->stopping && rt->active == 0 && rt->leaving == 0)
        event_base_loopexit(rt->base, NULL);
}

void runtime_listener_left(struct runtime *rt)
{
    rt->leaving--;
    if (rt->stopping && rt->active == 0 && rt->leaving == 0)
        event_base_loopexit(rt->base, NULL);
}

void runtime_free(struct runtime *rt)
{
    runtime_close_all(rt);
    runtime_release(rt);
}
