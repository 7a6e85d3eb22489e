/* admin_json: the admin API's JSON views of the runtime — status,
 * listeners, pools and backends — built with jansson. They read the
 * runtime and change nothing; each view is built in one pass, so a pool of
 * n backends costs O(n). */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lb/access_log.h"
#include "lb/admin/admin_http.h"
#include "lb/admin/admin_internal.h"
#include "lb/control.h"
#include "lb/discovery.h"
#include "lb/fleet.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/io/sock.h"
#include "lb/listener.h"
#include "lb/pool_health.h"
#include "lb/runtime.h"

#ifndef LB_VERSION
#define LB_VERSION "0.0.0"
#endif

#define RFC3339_SIZE 32

/* "2026-11-27T23:40:01Z" (with_ms: "2026-11-27T23:40:01.123Z") into buf. */
static const char *rfc3339(char *buf, size_t len, int64_t unix_ms, bool with_ms)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms)
        snprintf(buf + n, len - n, ".%03dZ", (int)(unix_ms % 1000));
    else
        snprintf(buf + n, len - n, "Z");
    return buf;
}

static int64_t now_unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* {"connections": open, "rejected": n, "timeouts": n, "tls_handshake_failures": n}
 * of the admin server. */
static json_t *admin_counters(const struct admin_http_stats *st)
{
    if (!st)
        return json_null();
    return json_pack("{s:I, s:I, s:I, s:I}", "connections", (json_int_t)st->open, "rejected",
                     (json_int_t)st->rejected, "timeouts", (json_int_t)st->timeouts,
                     "tls_handshake_failures", (json_int_t)st->tls_handshake_failures);
}

/* The fleet's state: null without "fleet". */
static json_t *fleet_json(const struct runtime *rt)
{
    const struct fleet *f = rt->fleet;
    char ok[RFC3339_SIZE];
    if (!f)
        return json_null();
    json_t *pools = json_array(), *rejected = json_array();
    for (size_t i = 0; pools && i < f->ndocs; i++)
        json_array_append_new(pools, json_string(f->docs[i].name));
    json_t *states = json_array();
    for (size_t i = 0; states && i < f->nstates; i++) {
        const struct fleet_state *st = &f->states[i];
        json_array_append_new(
            states,
            json_pack("{s:s, s:s, s:s?, s:o}", "pool", st->pool, "backend", st->backend, "state",
                      st->state >= 0 ? backend_admin_verb((enum backend_admin)st->state) : NULL,
                      "weight", st->weight >= 0 ? json_integer(st->weight) : json_null()));
    }
    for (size_t i = 0; rejected && i < f->nrejects; i++)
        json_array_append_new(rejected, json_pack("{s:s, s:s?}", "key", f->rejects[i].key, "error",
                                                  f->rejects[i].error));
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:s?, s:s?, s:s?, s:I, s:I, s:I, s:I}", "state",
        fleet_state_name(f), "endpoint", f->conf.endpoints[f->ep].url, "prefix", f->conf.prefix,
        "revision", (json_int_t)f->revision, "pools", pools ? pools : json_null(), "states",
        states ? states : json_null(), "rejected", rejected ? rejected : json_null(), "last_ok_at",
        f->last_ok_unix_ms ? rfc3339(ok, sizeof(ok), f->last_ok_unix_ms, true) : NULL, "error",
        f->error[0] ? f->error : NULL, "apply_error", f->apply_error[0] ? f->apply_error : NULL,
        "changes", (json_int_t)f->changes, "applied", (json_int_t)rt->fleet_applied, "apply_failed",
        (json_int_t)rt->fleet_apply_failed, "reconnects", (json_int_t)f->reconnects);
}

json_t *admin_json_status(const struct runtime *rt, const struct admin_http_stats *admin)
{
    char loaded[RFC3339_SIZE];
    int64_t uptime_ms = now_unix_ms() - rt->started_unix_ms;
    json_t *st = json_pack(
        "{s:s, s:I, s:I, s:s, s:s, s:{s:I, s:I, s:s?}, s:{s:I, s:I, s:o, s:b, s:I}, s:{s:I, s:s, "
        "s:o}}",
        "version", LB_VERSION, "pid", (json_int_t)getpid(), "uptime_s",
        (json_int_t)(uptime_ms > 0 ? uptime_ms / 1000 : 0), "config_file", rt->cfg->path,
        "config_loaded_at", rfc3339(loaded, sizeof(loaded), rt->config_loaded_unix_ms, false),
        "reloads", "ok", (json_int_t)rt->reloads_ok, "failed", (json_int_t)rt->reloads_failed,
        "last_error", rt->reload_last_error[0] ? rt->reload_last_error : NULL, "connections",
        "active", (json_int_t)rt->active, "total", (json_int_t)rt->total, "max_connections",
        rt->cfg->max_connections ? json_integer(rt->cfg->max_connections) : json_null(),
        "accepts_paused", rt->conn_full, "limit_reached", (json_int_t)rt->conn_full_count, "log",
        "dropped", (json_int_t)log_lines_dropped(), "format",
        rt->cfg->log_format == LB_LOG_JSON ? "json" : "text", "access_log",
        access_log_path() ? json_pack("{s:s, s:I}", "path", access_log_path(), "dropped",
                                      (json_int_t)log_access_lines_dropped())
                          : json_null());
    json_t *fds = json_pack("{s:I, s:I, s:I, s:b}", "limit", (json_int_t)rt->fd_limit, "reserved",
                            (json_int_t)rt->fd_reserve, "sessions_max",
                            (json_int_t)(rt->fd_data_max / 2), "accepts_paused", rt->fd_full);
    json_t *splice = json_pack("{s:I, s:I, s:I}", "pipes", (json_int_t)rt->pipes.open, "pipes_max",
                               (json_int_t)rt->pipes.max, "bytes", (json_int_t)rt->spliced_bytes);
    if (st && (json_object_set_new(st, "descriptors", fds) < 0 ||
               json_object_set_new(st, "splice", splice) < 0 ||
               json_object_set_new(st, "fleet", fleet_json(rt)) < 0 ||
               json_object_set_new(st, "admin", admin_counters(admin)) < 0)) {
        json_decref(st);
        return NULL;
    }
    return st;
}

/* {"1xx": n, ..., "5xx": n}: HTTP responses by status class (all 0 in tcp
 * mode). */
static json_t *http_responses_json(const uint64_t status[LB_HTTP_CLASSES])
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "1xx", (json_int_t)status[0], "2xx",
                     (json_int_t)status[1], "3xx", (json_int_t)status[2], "4xx",
                     (json_int_t)status[3], "5xx", (json_int_t)status[4]);
}

/* TLS termination: null for a plain listener. */
static json_t *listener_tls_json(const struct listener *l)
{
    if (!l->tls)
        return json_null();
    return json_pack("{s:I, s:I, s:I}", "handshakes", (json_int_t)l->tls_handshakes, "resumed",
                     (json_int_t)l->tls_resumed, "handshake_failures",
                     (json_int_t)l->tls_handshake_failures);
}

static json_t *listener_json(const struct listener *l)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:b, s:I, s:I, s:I, s:o, s:o}",
                     "name", l->name, "listen", l->listen, "mode", config_mode_name(l->mode),
                     "pool", l->pool->name, "retired", l->retired, "reuse_port", l->reuse_port,
                     "active_connections", (json_int_t)l->active, "total_connections",
                     (json_int_t)l->total, "accept_proxy", l->accept_proxy, "proxy_rejected",
                     (json_int_t)l->proxy_rejected, "sni_routed", (json_int_t)l->sni_routed,
                     "sni_default", (json_int_t)l->sni_default, "http_responses",
                     http_responses_json(l->http_status), "tls", listener_tls_json(l));
}

json_t *admin_json_listeners(const struct runtime *rt)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    for (size_t i = 0; i < rt->nlisteners; i++)
        if (json_array_append_new(list, listener_json(rt->listeners[i])) < 0)
            goto fail;
    /* Removed by a reload, with sessions still open (newest first). */
    const struct listener *l;
    LIST_FOREACH(l, &rt->retired, retired_link)
    {
        if (json_array_append_new(list, listener_json(l)) < 0)
            goto fail;
    }
    return json_pack("{s:o}", "listeners", list);
fail:
    json_decref(list);
    return NULL;
}

/* The active check type of pool's backends (LB_CHECK_NONE without). */
static enum lb_check_type pool_check_type(const struct runtime *rt, const struct pool *pool)
{
    for (size_t i = 0; i < rt->npools && i < rt->cfg->npools; i++)
        if (rt->pools[i] == pool)
            return rt->cfg->pools[i].health.type;
    return LB_CHECK_NONE;
}

/* The "health" object of b: its last check when checks run, and whether
 * passive ejection holds it out. */
static json_t *backend_health_json(const struct backend *b, enum lb_check_type type)
{
    const char *status = b->health_down || b->ejected ? "down" : "up";
    if (!b->check || type == LB_CHECK_NONE)
        return json_pack("{s:n, s:s, s:b}", "checks", "status", status, "ejected", b->ejected);

    const struct health_sm *sm = health_check_sm(b->check);
    const struct health_info *info = health_check_info(b->check);
    char last[RFC3339_SIZE];
    bool checked = info->last_check_unix_ms != 0;
    json_t *duration = checked ? json_real((double)info->last_duration_us / 1000.0) : json_null();
    return json_pack("{s:s, s:s, s:s?, s:o, s:s?, s:i, s:i, s:I, s:b}", "checks",
                     type == LB_CHECK_HTTPS  ? "https"
                     : type == LB_CHECK_HTTP ? "http"
                                             : "tcp",
                     "status", status, "last_check",
                     checked ? rfc3339(last, sizeof(last), info->last_check_unix_ms, true) : NULL,
                     "last_check_duration_ms", duration, "last_error",
                     info->last_error[0] ? info->last_error : NULL, "consecutive_successes",
                     (int)sm->successes, "consecutive_failures", (int)sm->failures, "transitions",
                     (json_int_t)sm->transitions, "ejected", b->ejected);
}

static json_t *backend_json(const struct backend *b, enum lb_check_type type)
{
    return json_pack(
        "{s:s, s:s?, s:s, s:s?, s:i, s:i, s:i, s:s, s:o, s:I, s:o, s:I, s:I, s:I, s:I, "
        "s:o, s:I, s:I}",
        "id", b->id, "name", b->name, "address", b->address, "dns", b->dns, "priority",
        (int)b->priority, "weight", (int)b->weight, "effective_weight", (int)b->eff_weight, "state",
        backend_state_name(b), "health", backend_health_json(b, type), "active_connections",
        (json_int_t)b->active, "max_connections",
        b->max_conns ? json_integer(b->max_conns) : json_null(), "total_connections",
        (json_int_t)b->total, "failed_connections", (json_int_t)b->failed, "bytes_in",
        (json_int_t)b->bytes_in, "bytes_out", (json_int_t)b->bytes_out, "http_responses",
        http_responses_json(b->http_status), "reused", (json_int_t)b->reused, "idle_connections",
        (json_int_t)b->nidle);
}

json_t *admin_json_backend(const struct runtime *rt, const struct backend *b)
{
    return backend_json(b, pool_check_type(rt, b->pool));
}

/* Unix milliseconds, or null for 0 (never). */
static json_t *unix_ms_json(int64_t ms)
{
    return ms ? json_integer(ms) : json_null();
}

/* One "dns" entry of a pool: what it asks, its last answer, its error. */
static json_t *discovery_json(const struct discovery *d)
{
    json_t *answer = json_array();
    if (!answer)
        return NULL;
    for (size_t i = 0; i < d->nbackends; i++) {
        const struct discovery_backend *db = &d->backends[i];
        if (json_array_append_new(answer,
                                  json_pack("{s:s, s:i, s:i}", "address", db->id, "weight",
                                            (int)db->weight, "priority", (int)db->priority)) < 0) {
            json_decref(answer);
            return NULL;
        }
    }
    return json_pack("{s:s, s:s, s:o, s:s, s:i, s:i, s:o, s:o, s:o, s:s?, s:I, s:I, s:I}", "dns",
                     d->conf.name, "type", discovery_type_name(d->conf.type), "port",
                     d->conf.port ? json_integer(d->conf.port) : json_null(), "resolvers",
                     d->conf.resolvers ? d->conf.resolvers : "system", "refresh_ms",
                     (int)d->conf.refresh_ms, "ttl_s", (int)d->ttl_s, "answer", answer,
                     "last_resolution_unix_ms", unix_ms_json(d->last_unix_ms),
                     "last_success_unix_ms", unix_ms_json(d->last_ok_unix_ms), "error",
                     d->error[0] ? d->error : NULL, "resolutions", (json_int_t)d->resolutions,
                     "failures", (json_int_t)d->failures, "changes", (json_int_t)d->changes);
}

/* The pool's "dns" entries, in file order (none: an empty array). */
static json_t *pool_discovery_json(const struct runtime *rt, const struct pool *pool)
{
    json_t *list = json_array();
    const struct lb_pool_conf *pc = NULL;
    for (size_t i = 0; list && rt->cfg && i < rt->cfg->npools && !pc; i++)
        if (strcmp(rt->cfg->pools[i].name, pool->name) == 0)
            pc = &rt->cfg->pools[i];
    for (size_t k = 0; list && pc && rt->dns && k < pc->ndns; k++) {
        const struct discovery *d = discovery_find(rt->dns, pc->name, pc->dns[k].key);
        if (d && json_array_append_new(list, discovery_json(d)) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

json_t *admin_json_pool(const struct runtime *rt, const struct pool *pool)
{
    enum lb_check_type type = pool_check_type(rt, pool);
    json_t *backends = json_array();
    if (!backends)
        return NULL;
    for (size_t i = 0; i < pool->nbackends; i++)
        if (json_array_append_new(backends, backend_json(pool->backends[i], type)) < 0)
            goto fail;
    const char *source = "file";
    for (size_t i = 0; i < rt->cfg->npools; i++)
        if (strcmp(rt->cfg->pools[i].name, pool->name) == 0 && rt->cfg->pools[i].from_doc)
            source = "etcd";
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "name",
        pool->name, "source", source, "strategy", config_strategy_name(pool->strategy), "backends",
        backends, "discovery", pool_discovery_json(rt, pool), "available_backends",
        (json_int_t)pool->navailable, "rejected_connections", (json_int_t)pool->rejected,
        "http_requests", (json_int_t)pool->req_count, "queue", "queued", (json_int_t)pool->nqueued,
        "max", (json_int_t)pool->queue_max, "timeout_ms", (json_int_t)pool->queue_timeout_ms,
        "max_seen", (json_int_t)pool->queue_max_seen, "timeouts", (json_int_t)pool->queue_timeouts,
        "full", (json_int_t)pool->queue_full);
fail:
    json_decref(backends);
    return NULL;
}

json_t *admin_json_pools(const struct runtime *rt)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    for (size_t i = 0; i < rt->npools; i++)
        if (json_array_append_new(list, admin_json_pool(rt, rt->pools[i])) < 0)
            goto fail;
    return json_pack("{s:o}", "pools", list);
fail:
    json_decref(list);
    return NULL;
}
