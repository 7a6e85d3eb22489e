/* reload: applies a new config file to the running process, all or
 * nothing. Everything that can fail (reading and validating the file,
 * binding new listeners, allocating pools, then the hook's prepare: the
 * admin API's new socket) happens first, on new objects; only then, in the same loop callback so no
 * event runs in between, does the commit swap them in: listeners on unchanged addresses keep their
 * sockets, backends with the same pool name and id keep their runtime
 * state, and what was removed lives until its last session ends. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/time.h>

#include <event2/event.h>

#include "lb/access_log.h"
#include "lb/io/listen_socket.h"
#include "lb/discovery.h"
#include "lb/fleet.h"
#include "lb/log.h"
#include "lb/names.h"
#include "lb/notify.h"
#include "lb/http_reuse.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/pool_health.h"
#include "lb/privileges.h"
#include "lb/reload.h"
#include "lb/session.h"
#include "lb/runtime.h"
#include "lb/upstream.h"

/* The new generation, built but not yet in force. */
struct reload_plan {
    struct lb_config *cfg;
    struct access_log_next access; /* a new access log, opened before the commit */
    struct pool **pools;           /* cfg->npools, fresh backends */
    struct listener **listeners;   /* cfg->nlisteners: reused old or new and open */
    bool *reused;                  /* per new listener: an old one carried over */
    bool *kept_old;                /* per old listener: carried over */
    bool *shared_old;              /* per old listener: let share its port (a move) */
    long *moved_from;              /* per new listener: the old one it moves, or -1 */
    struct listener **removed;     /* old listeners not carried over, to drain */
    size_t nremoved;
    /* per new listener carried over: its SNI routes over the new pools,
     * built here since the commit cannot fail (new ones build their own) */
    struct listener_routes *routes;
    struct tls_set tls; /* cfg's TLS contexts */
};

static int backend_id_cmp(const void *a, const void *b)
{
    const struct backend *x = *(struct backend *const *)a, *y = *(struct backend *const *)b;
    return strcmp(x->id, y->id);
}

/* The old pool's backends sorted by id, so that finding each new backend's
 * old self costs O(log n), not O(n): a reload of n backends is O(n log n).
 * NULL when there is no old pool, or no memory (then: a linear search). */
static struct backend **old_backends_sorted(const struct pool *pool, size_t *count)
{
    if (!pool || pool->nbackends == 0)
        return NULL;
    struct backend **v = malloc(pool->nbackends * sizeof(*v));
    if (!v)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < pool->nbackends; i++)
        if (pool->backends[i])
            v[n++] = pool->backends[i];
    qsort(v, n, sizeof(*v), backend_id_cmp);
    *count = n;
    return v;
}

static struct backend *old_backend_with_id(const struct pool *pool, struct backend **sorted,
                                           size_t nsorted, const char *id)
{
    if (!pool)
        return NULL;
    if (sorted) {
        struct backend key = {.id = (char *)id}, *kp = &key;
        struct backend **hit = bsearch(&kp, sorted, nsorted, sizeof(*sorted), backend_id_cmp);
        return hit ? *hit : NULL;
    }
    for (size_t i = 0; i < pool->nbackends; i++)
        if (pool->backends[i] && strcmp(pool->backends[i]->id, id) == 0)
            return pool->backends[i];
    return NULL;
}

/* Frees a plan that was not committed: new listeners are closed, reused
 * ones are left alone, fresh pools are freed. */
static void plan_discard(struct runtime *rt, struct reload_plan *p)
{
    for (size_t j = 0; p->shared_old && j < rt->nlisteners; j++)
        if (p->shared_old[j] && !rt->listeners[j]->reuse_port)
            listen_socket_share(listener_fd(rt->listeners[j]), false);
    if (p->listeners)
        for (size_t i = 0; i < p->cfg->nlisteners; i++)
            if (p->listeners[i] && !p->reused[i])
                listener_destroy(p->listeners[i]);
    if (p->pools)
        for (size_t i = 0; i < p->cfg->npools; i++)
            pool_release(p->pools[i]);
    free(p->pools);
    free(p->listeners);
    free(p->reused);
    free(p->kept_old);
    free(p->shared_old);
    free(p->moved_from);
    free(p->removed);
    if (p->routes)
        for (size_t i = 0; i < p->cfg->nlisteners; i++)
            listener_routes_free(&p->routes[i]);
    free(p->routes);
    tls_set_free(&p->tls);
    config_free(p->cfg);
}

/* The old listener that new listener c overlaps (`*:80` and `127.0.0.1:80`),
 * when it is not carried over; -1 when none. */
static long plan_overlap(struct runtime *rt, struct reload_plan *p,
                         const struct lb_listener_conf *c)
{
    for (size_t j = 0; j < rt->nlisteners; j++)
        if (!p->kept_old[j] && listen_socket_overlap(&rt->listeners[j]->addr, &c->addr))
            return (long)j;
    return -1;
}

/* Builds every new object; binds new listeners. 0, or -1 with err. */
static int plan_build(struct runtime *rt, struct reload_plan *p, char *err, size_t errlen)
{
    struct lb_config *cfg = p->cfg;
    p->pools = calloc(cfg->npools, sizeof(*p->pools));
    p->listeners = calloc(cfg->nlisteners, sizeof(*p->listeners));
    p->reused = calloc(cfg->nlisteners, sizeof(*p->reused));
    size_t nold = rt->nlisteners ? rt->nlisteners : 1;
    p->kept_old = calloc(nold, sizeof(*p->kept_old));
    p->shared_old = calloc(nold, sizeof(*p->shared_old));
    p->removed = calloc(nold, sizeof(*p->removed));
    p->moved_from = calloc(cfg->nlisteners, sizeof(*p->moved_from));
    p->routes = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*p->routes));
    if (!p->pools || !p->listeners || !p->reused || !p->kept_old || !p->shared_old || !p->removed ||
        !p->moved_from || !p->routes)
        goto nomem;
    if (tls_set_build(cfg, &p->tls, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < cfg->npools; i++) {
        if (!(p->pools[i] = pool_prepare(&cfg->pools[i])) ||
            discovery_fill_pool(rt->dns, p->pools[i], &cfg->pools[i]) < 0)
            goto nomem;
        runtime_pool_tls(p->pools[i], &p->tls, i);
    }
    /* Same address: the socket is kept. */
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct lb_listener_conf *c = &cfg->listeners[i];
        for (size_t j = 0; j < rt->nlisteners; j++) {
            if (!p->kept_old[j] && listen_socket_same(&rt->listeners[j]->addr, &c->addr)) {
                p->kept_old[j] = true;
                p->reused[i] = true;
                p->listeners[i] = rt->listeners[j];
                break;
            }
        }
        if (p->reused[i] && listener_routes_build(&p->routes[i], c, p->pools) < 0)
            goto nomem;
    }
    /* Any other is bound now. One that overlaps an old listener's address
     * (a move between `*:P` and `127.0.0.1:P`) binds beside it with
     * SO_REUSEPORT, which the old socket is given too. */
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct lb_listener_conf *c = &cfg->listeners[i];
        p->moved_from[i] = -1;
        if (p->reused[i])
            continue;
        long j = plan_overlap(rt, p, c);
        if (j >= 0 && !p->shared_old[j] &&
            listen_socket_share(listener_fd(rt->listeners[j]), true) == 0) {
            p->shared_old[j] = true;
            p->moved_from[i] = j;
        }
        if (!(p->listeners[i] = listener_create(rt, c, p->pools, session_start)))
            goto nomem;
        listener_set_tls(p->listeners[i], p->tls.listeners[i], c);
        if (listener_open(p->listeners[i], p->moved_from[i] >= 0, err, errlen) < 0)
            return -1;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Makes np the next generation of op (NULL: a new pool): the pool's own
 * counters go on, the backends that stay (by id) move into np with their
 * state, then np's strategy is built and its health checks start. Returns
 * the number of backends np added. */
static size_t pool_succeed(struct runtime *rt, struct pool *np, struct pool *op,
                           const struct lb_pool_conf *pc)
{
    size_t added = 0;
    if (op) { /* the pool's own counters and log state go on */
        np->rejected = op->rejected;
        memcpy(np->req_buckets, op->req_buckets, sizeof(np->req_buckets));
        np->req_count = op->req_count;
        np->req_sum_s = op->req_sum_s;
        np->empty_logged = op->empty_logged;
        np->queue_max_seen = op->queue_max_seen;
        np->queue_timeouts = op->queue_timeouts;
        np->queue_full = op->queue_full;
    }
    /* Ids are unique in a pool: each old backend is found once at most,
     * so the index stays right as adopted ones leave op->backends. */
    size_t nsorted = 0;
    struct backend **sorted = old_backends_sorted(op, &nsorted);
    for (size_t k = 0; k < np->nbackends; k++) {
        struct backend *ob = old_backend_with_id(op, sorted, nsorted, np->backends[k]->id);
        if (ob)
            pool_adopt_backend(np, k, ob);
        else
            added++;
    }
    free(sorted);
    if (pool_build(np) < 0)
        log_error("reload: pool %s: out of memory building its strategy; it has no "
                  "available backend",
                  np->name);
    if (pool_health_start(np, pc, rt->base) < 0)
        log_error("reload: pool %s: out of memory starting its health checks", np->name);
    pool_note_available(np);
    return added;
}

/* What is left in op once its successor adopted what stays was removed:
 * no checks, no new sessions; each is freed with its last session. What
 * waits in op's queue goes on in the new generation. Returns the number
 * removed. */
static size_t pool_retire_rest(struct pool *op)
{
    size_t removed = 0;
    for (size_t k = 0; k < op->nbackends; k++) {
        if (!op->backends[k])
            continue;
        backend_health_stop(op->backends[k]);
        op->backends[k]->removed = true;
        http_reuse_flush(op->backends[k]);
        removed++;
    }
    upstream_queue_move(op);
    pool_retire(op);
    return removed;
}

/* Moves the backends that stay into the new pools, builds their strategy
 * state, and (re)starts health checks; counts what was added and removed. */
static void plan_commit_pools(struct runtime *rt, struct reload_plan *p, struct reload_result *res)
{
    for (size_t i = 0; i < p->cfg->npools; i++)
        res->backends_added += pool_succeed(
            rt, p->pools[i], runtime_find_pool(rt, p->pools[i]->name), &p->cfg->pools[i]);
    for (size_t i = 0; i < rt->npools; i++)
        res->backends_removed += pool_retire_rest(rt->pools[i]);
}

/* Swaps ref for a reference to np where a holder has op. */
static void pool_ref_swap(struct pool **ref, struct pool *op, struct pool *np)
{
    if (*ref != op)
        return;
    np->refs++;
    pool_release(op);
    *ref = np;
}

int reload_pool(struct runtime *rt, const char *name, size_t *added, size_t *removed)
{
    size_t i;
    for (i = 0; i < rt->npools && strcmp(rt->pools[i]->name, name) != 0; i++)
        ;
    if (i == rt->npools || rt->stopping)
        return -1;
    const struct lb_pool_conf *pc = &rt->cfg->pools[i];
    struct pool *op = rt->pools[i];
    struct pool *np = pool_prepare(pc);
    if (!np || discovery_fill_pool(rt->dns, np, pc) < 0) {
        pool_release(np);
        log_error("dns: pool %s: out of memory applying its new backends; the old ones stay", name);
        return -1;
    }
    runtime_pool_tls(np, &rt->tls, i);
    *added = pool_succeed(rt, np, op, pc);
    *removed = pool_retire_rest(op);
    rt->pools[i] = np; /* the runtime's reference moves with it */
    for (size_t j = 0; j < rt->nlisteners; j++) {
        struct listener *l = rt->listeners[j];
        pool_ref_swap(&l->pool, op, np);
        for (size_t k = 0; k < l->routes.nexact; k++)
            pool_ref_swap(&l->routes.exact[k].pool, op, np);
        for (size_t k = 0; k < l->routes.nwild; k++)
            pool_ref_swap(&l->routes.wild[k].pool, op, np);
    }
    pool_release(op);
    return 0;
}

/* Points carried-over listeners at the new settings and pools, retires the
 * removed ones. */
static void plan_commit_listeners(struct runtime *rt, struct reload_plan *p,
                                  struct reload_result *res)
{
    for (size_t i = 0; i < p->cfg->nlisteners; i++) {
        const struct lb_listener_conf *c = &p->cfg->listeners[i];
        struct listener *l = p->listeners[i];
        if (!p->reused[i]) {
            res->listeners_added++;
            log_info("listener %s listening on %s (pool %s)", l->name, l->listen, l->pool->name);
            if (p->moved_from[i] >= 0) {
                struct listener *old = rt->listeners[p->moved_from[i]];
                log_info("listener %s on %s hands over to listener %s on %s (%llu open sessions "
                         "go on)",
                         old->name, old->listen, l->name, l->listen,
                         (unsigned long long)old->active);
                listener_adopt(l, old);
            }
            continue;
        }
        listener_rename(l, c->name); /* out of memory: the old name stays */
        struct pool *np = p->pools[c->pool_index];
        np->refs++;
        pool_release(l->pool);
        l->pool = np;
        l->mode = c->mode;
        l->max_connections = c->max_connections;
        l->idle_timeout_ms = c->idle_timeout_ms;
        l->keepalive = c->keepalive; /* for sessions accepted from now on */
        l->splice = c->splice;
        /* On: the kept socket joins the port's group now. Off: a bound
         * socket cannot leave its group (another process binding the port
         * later would take all of its clients), so it stays on until the
         * listener's socket is new. */
        if (c->reuse_port && !l->reuse_port) {
            if (listen_socket_share(listener_fd(l), true) < 0)
                log_warn("reload: listener %s: cannot turn reuse_port on: %s", c->name,
                         strerror(errno));
            else
                l->reuse_port = true;
        } else if (!c->reuse_port && l->reuse_port) {
            log_warn("reload: listener %s: reuse_port stays on until lb restarts (a bound "
                     "socket keeps its port shared)",
                     c->name);
        }
        l->accept_proxy = c->accept_proxy; /* for sessions accepted from now on */
        l->request_timeout_ms = c->request_timeout_ms;
        l->max_header_bytes = c->max_header_bytes; /* for requests from now on */
        l->x_real_ip = c->x_real_ip;
        l->forwarded = c->forwarded;
        listener_set_tls(l, p->tls.listeners[i], c); /* new handshakes; sessions keep theirs */
        listener_set_routes(l, &p->routes[i]);       /* for ClientHellos read from now on */
        l->full = l->active >= l->max_connections;
        listener_refresh(l);
    }
    for (size_t j = 0; j < rt->nlisteners; j++) {
        struct listener *l = rt->listeners[j];
        if (p->kept_old[j])
            continue;
        res->listeners_removed++;
        l->retired = true;
        LIST_INSERT_HEAD(&rt->retired, l, retired_link);
        p->removed[p->nremoved++] = l;
    }
}

/* After the swap, so that sessions follow the new generation: each removed
 * listener takes what is queued on its socket and closes it (connects are
 * refused from now on); it lives on, retired, until its last session ends. */
static void plan_drain_removed(struct reload_plan *p)
{
    for (size_t k = 0; k < p->nremoved; k++) {
        struct listener *l = p->removed[k];
        bool had_socket = l->acc != NULL; /* else a moved one: its socket was handed over */
        l->draining = true;               /* a session ending in there must not free l */
        listener_drain(l, l);
        l->draining = false;
        if (had_socket)
            log_info("listener %s on %s closed (%llu open sessions go on)", l->name, l->listen,
                     (unsigned long long)l->active);
        if (l->active == 0) {
            LIST_REMOVE(l, retired_link);
            listener_destroy(l);
        }
    }
}

static void reload_failed(struct runtime *rt, const char *err)
{
    /* A document the loader took and a later step refused (its host name,
     * its certificate) is refused now; the change is tried again without
     * it, from the loop. */
    bool blamed = rt->fleet && fleet_blame(rt->fleet, err);
    runtime_fleet_merged_drop(rt);
    if (rt->applying_fleet) {
        rt->fleet_apply_failed++;
        if (rt->fleet)
            snprintf(rt->fleet->apply_error, sizeof(rt->fleet->apply_error), "%s", err);
        log_error("fleet: etcd's pools cannot be applied: %s (generation %u stays in force%s)", err,
                  rt->generation, blamed ? "; trying again without that document" : "");
        if (blamed)
            runtime_fleet_changed(rt);
        return;
    }
    if (blamed)
        reload_request(rt);
    if (rt->notify_reload) { /* systemd: the reload is over, the old config in force */
        char status[300];
        snprintf(status, sizeof(status), "reload failed (generation %u in force): %.200s",
                 rt->generation, err);
        notify_ready(status);
        rt->notify_reload = false;
    }
    rt->reloads_failed++;
    snprintf(rt->reload_last_error, sizeof(rt->reload_last_error), "%s", err);
    log_error("reload failed: %s (generation %u stays in force)", err, rt->generation);
}

/* After a reload: the fleet follows the file's "fleet" block as it is now
 * (started, set anew, or stopped). */
static void reload_fleet_follow(struct runtime *rt)
{
    const struct lb_config *cfg = rt->cfg;
    if (!cfg->fleet.enabled) {
        if (rt->fleet) {
            fleet_free(rt->fleet);
            free(rt->fleet);
            rt->fleet = NULL;
            log_info("fleet: off; etcd is no longer followed, and its pools left with this reload");
        }
        return;
    }
    if (rt->fleet) {
        rt->fleet->base_cfg = cfg;
        char err[1024];
        if (fleet_configure(rt->fleet, cfg, err, sizeof(err)) < 0)
            log_error("fleet: %s; the old settings stay", err);
        /* A refused delete may go now that the file no longer needs it. */
        if (fleet_recheck_gone(rt->fleet))
            runtime_fleet_changed(rt);
    } else {
        char err[1024];
        if (runtime_fleet_init(rt, cfg, err, sizeof(err)) < 0)
            log_error("fleet: %s; etcd is not followed", err);
    }
}

/* Applies cfg (its names resolved; owned from now on), all or nothing. */
static int reload_apply(struct runtime *rt, struct lb_config *cfg, struct reload_result *res,
                        char *err, size_t errlen)
{
    struct reload_plan p = {0};
    const struct reload_hook *hook = rt->reload_hook;
    memset(res, 0, sizeof(*res));
    p.cfg = cfg;
    p.access.fd = -1;
    int rc = privileges_check_reload(p.cfg, err, errlen);
    if (rc == 0)
        rc = plan_build(rt, &p, err, errlen);
    if (rc == 0 && hook) {
        rc = hook->prepare(hook->arg, p.cfg, &p.tls, err, errlen);
        if (rc < 0)
            hook->abort(hook->arg);
    }
    if (rc == 0) {
        rc = access_log_prepare(p.cfg->access_log, &p.access, err, errlen);
        if (rc < 0 && hook)
            hook->abort(hook->arg);
    }
    if (rc < 0) {
        access_log_abort(&p.access);
        privileges_explain(err, errlen);
        plan_discard(rt, &p);
        discovery_abort(rt->dns);
        reload_failed(rt, err);
        return -1;
    }

    /* Commit: nothing below can fail the reload. */
    plan_commit_pools(rt, &p, res);
    plan_commit_listeners(rt, &p, res);
    for (size_t i = 0; i < rt->npools; i++)
        pool_release(rt->pools[i]);
    free(rt->pools);
    free(rt->listeners);
    rt->pools = p.pools;
    rt->npools = p.cfg->npools;
    rt->listeners = p.listeners;
    rt->nlisteners = p.cfg->nlisteners;
    config_free(rt->cfg);
    rt->cfg = p.cfg;
    tls_set_free(&rt->tls);
    rt->tls = p.tls;
    discovery_commit(rt->dns, rt->cfg); /* last: it frees entries (their lookups end) */
    log_set_level(rt->cfg->log_level);
    log_set_format(rt->cfg->log_format);
    access_log_commit(&p.access);
    if (hook)
        hook->commit(hook->arg);
    runtime_fd_budget(rt);
    session_idle_rearm_all(rt); /* a listener may have gained an idle timeout */
    plan_drain_removed(&p);
    free(p.reused);
    free(p.kept_old);
    free(p.shared_old);
    free(p.moved_from);
    free(p.removed);
    free(p.routes); /* each moved into its listener */

    struct timeval now;
    gettimeofday(&now, NULL);
    rt->config_loaded_unix_ms = (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
    res->generation = ++rt->generation;
    if (rt->applying_fleet) {
        rt->fleet_applied++;
        rt->fleet->apply_error[0] = '\0';
        log_info("fleet: generation %u in force, etcd revision %" PRId64 " (backends +%zu -%zu)",
                 res->generation, rt->fleet->revision, res->backends_added, res->backends_removed);
    } else {
        rt->reloads_ok++;
        rt->reload_last_error[0] = '\0';
        log_info("reload ok: generation %u (listeners +%zu -%zu, backends +%zu -%zu)",
                 res->generation, res->listeners_added, res->listeners_removed, res->backends_added,
                 res->backends_removed);
        reload_fleet_follow(rt);
        if (rt->notify_reload) {
            char status[200];
            runtime_status_line(rt, status, sizeof(status));
            notify_ready(status);
            rt->notify_reload = false;
        }
    }
    runtime_fleet_merged(rt, true); /* the documents this config was made of are in force */
    if (rt->fleet) {
        rt->fleet->base_cfg = rt->cfg;
        runtime_fleet_states_apply(rt);
    }
    return 0;
}

/* The reload that waited (for names or first answers) is over: one asked
 * for meanwhile runs now. */
static void reload_waited(struct runtime *rt)
{
    rt->reload_waiting = false;
    rt->applying_fleet = false;
    if (rt->fleet_again) {
        rt->fleet_again = false;
        reload_fleet(rt);
    }
    if (rt->reload_again) {
        rt->reload_again = false;
        reload_request(rt);
    }
}

/* The new "dns" entries have their first answers (or failures). */
static void on_dns_ready(void *arg)
{
    struct runtime *rt = arg;
    struct lb_config *cfg = rt->next_cfg;
    struct reload_result res;
    char e[1024];
    rt->next_cfg = NULL;
    reload_apply(rt, cfg, &res, e, sizeof(e)); /* logs and counts either way */
    reload_waited(rt);
}

/* cfg's names are resolved: its new "dns" entries are asked, then it is
 * applied. 1 while waiting for them, else reload_apply()'s result. */
static int reload_stage_dns(struct runtime *rt, struct lb_config *cfg, struct reload_result *res,
                            char *err, size_t errlen)
{
    long fresh = discovery_prepare(rt->dns, cfg, on_dns_ready, rt, err, errlen);
    if (fresh < 0) {
        config_free(cfg);
        reload_failed(rt, err);
        return -1;
    }
    if (fresh == 0)
        return reload_apply(rt, cfg, res, err, errlen);
    rt->next_cfg = cfg;
    rt->reload_waiting = true;
    snprintf(err, errlen, "asking %ld new \"dns\" entries", fresh);
    log_info("reload: %s", err);
    return 1;
}

/* The new config's host names are resolved (or one is not). */
static void on_names_done(void *arg, const char *err)
{
    struct runtime *rt = arg;
    struct lb_config *cfg = rt->next_cfg;
    struct reload_result res;
    char e[1024];
    rt->names_job = NULL;
    rt->next_cfg = NULL;
    if (err) {
        config_free(cfg);
        reload_failed(rt, err);
    } else if (reload_stage_dns(rt, cfg, &res, e, sizeof(e)) == 1) {
        return; /* on_dns_ready() goes on */
    }
    reload_waited(rt);
}

/* A file read for a reload with "fleet": etcd's documents go in. Before
 * the first read of etcd the file must have every pool it names. */
static int fleet_merge(struct runtime *rt, struct lb_config **cfg, char *err, size_t errlen)
{
    struct config_doc *docs;
    size_t ndocs;
    struct lb_config *merged;
    if (!(*cfg)->fleet.enabled)
        return 0;
    if (!rt->fleet || !rt->fleet->synced) {
        if ((*cfg)->unlinked == 0)
            return 0;
        snprintf(err, errlen,
                 "%s: pool \"%s\" that a listener names is not in the file, and etcd has not "
                 "been read yet",
                 (*cfg)->path, (*cfg)->unlinked_pool);
        config_free(*cfg);
        *cfg = NULL;
        return -1;
    }
    if (fleet_docs(rt->fleet, &docs, &ndocs) < 0) {
        snprintf(err, errlen, "out of memory");
        config_free(*cfg);
        *cfg = NULL;
        return -1;
    }
    int rc = config_merge(*cfg, docs, ndocs, &merged, err, errlen);
    free(docs);
    /* A document the loader now refuses (a file change it depends on):
     * refused, and the file merged without it. */
    while (rc < 0 && fleet_blame(rt->fleet, err)) {
        if (fleet_docs(rt->fleet, &docs, &ndocs) < 0)
            break;
        rc = config_merge(*cfg, docs, ndocs, &merged, err, errlen);
        free(docs);
    }
    if (rc == 0)
        runtime_fleet_merged(rt, false);
    config_free(*cfg);
    *cfg = merged;
    return rc;
}

static int reload_stage_names(struct runtime *rt, struct lb_config *cfg, struct reload_result *res,
                              char *err, size_t errlen);

int reload_run(struct runtime *rt, struct reload_result *res, char *err, size_t errlen)
{
    struct lb_config *cfg;
    memset(res, 0, sizeof(*res));
    if (rt->stopping) {
        snprintf(err, errlen, "lb is stopping");
        reload_failed(rt, err);
        return -1;
    }
    if (rt->starting) { /* the loop runs while the start waits for DNS answers */
        rt->reload_again = true;
        log_info("reload: lb is still starting; the reload runs once it has started");
        snprintf(err, errlen, "lb is starting; the reload follows");
        return 1;
    }
    if (rt->reload_waiting) {
        rt->reload_again = true; /* once this one is done, the file is read again */
        snprintf(err, errlen, "a reload is waiting for DNS; another follows it");
        return 1;
    }
    notify_reloading();
    rt->notify_reload = true;
    if (config_load(rt->cfg->path, &cfg, err, errlen) < 0 ||
        fleet_merge(rt, &cfg, err, errlen) < 0) {
        reload_failed(rt, err);
        return -1;
    }
    return reload_stage_names(rt, cfg, res, err, errlen);
}

int reload_fleet(struct runtime *rt)
{
    struct reload_result res;
    struct lb_config *cfg;
    struct config_doc *docs;
    size_t ndocs;
    char err[1024];
    if (rt->stopping || !rt->fleet)
        return -1;
    if (rt->reload_waiting) {
        rt->fleet_again = true; /* applied once the waiting one is done */
        return 1;
    }
    rt->applying_fleet = true;
    if (fleet_docs(rt->fleet, &docs, &ndocs) < 0) {
        reload_failed(rt, "out of memory");
        rt->applying_fleet = false;
        return -1;
    }
    int rc = config_merge(rt->cfg, docs, ndocs, &cfg, err, sizeof(err));
    free(docs);
    if (rc < 0) {
        reload_failed(rt, err); /* a document to blame: tried again from the loop */
        rt->applying_fleet = false;
        return -1;
    }
    runtime_fleet_merged(rt, false);
    rc = reload_stage_names(rt, cfg, &res, err, sizeof(err));
    if (rc != 1)
        rt->applying_fleet = false;
    return rc;
}

/* cfg, as read: its host names are resolved, then it goes on. */
static int reload_stage_names(struct runtime *rt, struct lb_config *cfg, struct reload_result *res,
                              char *err, size_t errlen)
{
    int rc = names_start(rt->base, cfg, on_names_done, rt, &rt->names_job, err, errlen);
    if (rc < 0) {
        config_free(cfg);
        reload_failed(rt, err);
        return -1;
    }
    if (rc == 0)
        return reload_stage_dns(rt, cfg, res, err, errlen);
    rt->next_cfg = cfg;
    rt->reload_waiting = true;
    log_info("reload: resolving %zu host names", names_count(cfg));
    snprintf(err, errlen, "resolving %zu host names", names_count(cfg));
    return 1;
}

void reload_cancel(struct runtime *rt)
{
    names_cancel(rt->names_job);
    rt->names_job = NULL;
    if (rt->dns)
        discovery_abort(rt->dns);
    config_free(rt->next_cfg);
    rt->next_cfg = NULL;
    rt->reload_waiting = false;
    rt->reload_again = false;
    rt->fleet_again = false;
    rt->applying_fleet = false;
    runtime_fleet_merged_drop(rt);
}

static void on_reload_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct reload_result res;
    char err[1024];
    reload_run(arg, &res, err, sizeof(err)); /* logs and counts either way */
}

int reload_init(struct runtime *rt)
{
    rt->reload_ev = event_new(rt->base, -1, 0, on_reload_event, rt);
    return rt->reload_ev ? 0 : -1;
}

void reload_set_hook(struct runtime *rt, const struct reload_hook *hook)
{
    rt->reload_hook = hook;
}

void reload_request(struct runtime *rt)
{
    /* Activating an event that is already active does nothing: however
     * many SIGHUPs arrive before the loop gets to it, one reload runs. */
    event_active(rt->reload_ev, EV_TIMEOUT, 0);
}
