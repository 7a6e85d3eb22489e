/* metrics: renders the runtime's counters (and the log's dropped lines) as
 * the Prometheus text exposition format 0.0.4 for GET /metrics. Reads
 * struct runtime and changes nothing;
 * one pass over the backends per metric family, so the cost is O(backends).
 * The text is built in one growing scratch buffer (numbers formatted by
 * hand on the per-backend lines: printf was most of the cost) and handed
 * to the caller's evbuffer without a copy, so a failed render leaves the
 * caller's buffer as it was. */
#include <inttypes.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lb/admin/admin_http.h"
#include "lb/discovery.h"
#include "lb/fleet.h"
#include "lb/log.h"
#include "lb/admin/metrics.h"
#include "lb/pool.h"
#include "lb/listener.h"
#include "lb/pool_health.h"
#include "lb/runtime.h"

/* A render in progress: the first failed write sets failed and every later
 * write is skipped, so the family functions need no error paths. */
struct render {
    char *p;
    size_t len, cap;
    bool failed;
    char le[LB_CHECK_BUCKETS][32];   /* lb_check_bucket_s as le label values */
    char req_le[LB_REQ_BUCKETS][32]; /* lb_req_bucket_s as le label values */
};

/* The class label values of http_status[0..LB_HTTP_CLASSES - 1]. */
static const char *const HTTP_CLASS_LABELS[LB_HTTP_CLASSES] = {
    ",class=\"1xx\"} ", ",class=\"2xx\"} ", ",class=\"3xx\"} ", ",class=\"4xx\"} ",
    ",class=\"5xx\"} "};

#define RENDER_FIRST_CAP (16 * 1024)

static void render_str(struct render *r, const char *s);

/* Room for n more bytes (and a NUL); false (failed) when out of memory. */
static bool render_room(struct render *r, size_t n)
{
    if (r->failed)
        return false;
    if (r->len + n + 1 <= r->cap)
        return true;
    size_t cap = r->cap ? r->cap : RENDER_FIRST_CAP;
    while (cap < r->len + n + 1)
        cap *= 2;
    char *p = realloc(r->p, cap);
    if (!p) {
        r->failed = true;
        return false;
    }
    r->p = p;
    r->cap = cap;
    return true;
}

static void render_add(struct render *r, const char *s, size_t len)
{
    if (len == 0 || !render_room(r, len))
        return;
    memcpy(r->p + r->len, s, len);
    r->len += len;
}

/* v in decimal, without printf. */
static void render_u64(struct render *r, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    render_add(r, digits + sizeof(digits) - n, n);
}

/* "} V\n", the end of a sample line whose labels are open. */
static void render_value(struct render *r, const char *close, uint64_t v)
{
    render_str(r, close);
    render_u64(r, v);
    render_add(r, "\n", 1);
}

static void render_str(struct render *r, const char *s)
{
    render_add(r, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
render_printf(struct render *r, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = r->failed ? -1 : vsnprintf(r->p ? r->p + r->len : NULL, r->cap - r->len, fmt, ap);
    if (n >= 0 && r->len + (size_t)n >= r->cap && render_room(r, (size_t)n))
        n = vsnprintf(r->p + r->len, r->cap - r->len, fmt, again);
    if (n < 0)
        r->failed = true;
    else if (!r->failed)
        r->len += (size_t)n;
    va_end(again);
    va_end(ap);
}

/* A label value with the format's escapes: \ as \\, " as \", newline as \n.
 * Runs of ordinary bytes are copied in one piece. */
static void render_escaped(struct render *r, const char *s)
{
    for (;;) {
        size_t n = strcspn(s, "\\\"\n");
        render_add(r, s, n);
        s += n;
        if (*s == '\0')
            return;
        render_str(r, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n");
        s++;
    }
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v (any decimal of
 * at most 15 digits survives a round trip, so "0.0025" stays "0.0025"), or
 * the format's spelling of the special values. Returns buf or a literal. */
static const char *format_double(char *buf, size_t len, double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* The # HELP and # TYPE lines that open a family. help holds no \ or
 * newline (they would need escaping). */
static void render_family(struct render *r, const char *name, const char *type, const char *help)
{
    render_printf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Opens a backend sample: `sample{pool="...",backend="..."`; the caller
 * adds any further labels, the closing brace and the value. */
static void render_backend_labels(struct render *r, const char *sample, const struct pool *pool,
                                  const struct backend *b)
{
    render_str(r, sample);
    render_str(r, "{pool=\"");
    render_escaped(r, pool->name);
    render_str(r, "\",backend=\"");
    render_escaped(r, b->id);
    render_str(r, "\"");
}

/* What one backend-family function shows for one backend. */
typedef void backend_render_fn(struct render *r, const struct pool *pool, const struct backend *b);

/* Calls fn for every backend of every pool, in config order. */
static void render_backends(struct render *r, const struct runtime *rt, backend_render_fn *fn)
{
    for (size_t i = 0; i < rt->npools && !r->failed; i++) {
        const struct pool *pool = rt->pools[i];
        for (size_t j = 0; j < pool->nbackends; j++)
            fn(r, pool, pool->backends[j]);
    }
}

static void render_backend_up(struct render *r, const struct pool *pool, const struct backend *b)
{
    render_backend_labels(r, "lb_backend_up", pool, b);
    render_value(r, "} ", b->up ? 1 : 0);
}

static void render_backend_active(struct render *r, const struct pool *pool,
                                  const struct backend *b)
{
    render_backend_labels(r, "lb_backend_active_connections", pool, b);
    render_value(r, "} ", b->active);
}

static void render_backend_total(struct render *r, const struct pool *pool, const struct backend *b)
{
    render_backend_labels(r, "lb_backend_connections_total", pool, b);
    render_value(r, "} ", b->total);
}

static void render_backend_failed(struct render *r, const struct pool *pool,
                                  const struct backend *b)
{
    render_backend_labels(r, "lb_backend_connect_failures_total", pool, b);
    render_value(r, "} ", b->failed);
}

/* in: bytes received from the backend; out: bytes sent to it. */
static void render_backend_bytes(struct render *r, const struct pool *pool, const struct backend *b)
{
    render_backend_labels(r, "lb_backend_bytes_total", pool, b);
    render_value(r, ",direction=\"in\"} ", b->bytes_in);
    render_backend_labels(r, "lb_backend_bytes_total", pool, b);
    render_value(r, ",direction=\"out\"} ", b->bytes_out);
}

/* The check-duration histogram of a backend whose pool runs active checks
 * (nothing otherwise). check_buckets are already cumulative; +Inf is every
 * check. */
static void render_backend_checks(struct render *r, const struct pool *pool,
                                  const struct backend *b)
{
    char num[32];

    if (!pool->has_checks)
        return;
    for (int i = 0; i < LB_CHECK_BUCKETS; i++) {
        render_backend_labels(r, "lb_backend_health_check_duration_seconds_bucket", pool, b);
        render_str(r, ",le=\"");
        render_str(r, r->le[i]);
        render_value(r, "\"} ", b->check_buckets[i]);
    }
    render_backend_labels(r, "lb_backend_health_check_duration_seconds_bucket", pool, b);
    render_value(r, ",le=\"+Inf\"} ", b->check_count);
    render_backend_labels(r, "lb_backend_health_check_duration_seconds_sum", pool, b);
    render_printf(r, "} %s\n", format_double(num, sizeof(num), b->check_sum_s));
    render_backend_labels(r, "lb_backend_health_check_duration_seconds_count", pool, b);
    render_value(r, "} ", b->check_count);
}

/* http mode: responses to requests sent to the backend, by status class. */
static void render_backend_http(struct render *r, const struct pool *pool, const struct backend *b)
{
    for (int i = 0; i < LB_HTTP_CLASSES; i++) {
        render_backend_labels(r, "lb_backend_http_responses_total", pool, b);
        render_value(r, HTTP_CLASS_LABELS[i], b->http_status[i]);
    }
}

static void render_backend_reused(struct render *r, const struct pool *pool,
                                  const struct backend *b)
{
    render_backend_labels(r, "lb_backend_http_reused_total", pool, b);
    render_value(r, "} ", b->reused);
}

static void render_backend_idle(struct render *r, const struct pool *pool, const struct backend *b)
{
    render_backend_labels(r, "lb_backend_idle_connections", pool, b);
    render_value(r, "} ", b->nidle);
}

/* Opens a pool sample: `sample{pool="..."`. */
static void render_pool_labels(struct render *r, const char *sample, const struct pool *pool)
{
    render_str(r, sample);
    render_str(r, "{pool=\"");
    render_escaped(r, pool->name);
    render_str(r, "\"");
}

/* The HTTP request-duration histogram of every pool (all 0 for a pool no
 * http listener uses). req_buckets are already cumulative; +Inf is every
 * request. */
static void render_backend_max(struct render *r, const struct pool *pool, const struct backend *b)
{
    if (b->max_conns == 0)
        return;
    render_backend_labels(r, "lb_backend_max_connections", pool, b);
    render_value(r, "} ", b->max_conns);
}

/* One family with a sample per pool: the value get() reads. */
static void render_pool_family(struct render *r, const struct runtime *rt, const char *name,
                               const char *type, const char *help,
                               uint64_t (*get)(const struct pool *))
{
    render_family(r, name, type, help);
    for (size_t p = 0; p < rt->npools && !r->failed; p++) {
        render_pool_labels(r, name, rt->pools[p]);
        render_value(r, "} ", get(rt->pools[p]));
    }
}

static uint64_t pool_queued(const struct pool *p)
{
    return p->nqueued;
}

static uint64_t pool_queue_max_seen(const struct pool *p)
{
    return p->queue_max_seen;
}

static uint64_t pool_queue_timeouts(const struct pool *p)
{
    return p->queue_timeouts;
}

static uint64_t pool_queue_full(const struct pool *p)
{
    return p->queue_full;
}

static void render_pool_queues(struct render *r, const struct runtime *rt)
{
    render_pool_family(r, rt, "lb_pool_queued", "gauge",
                       "Sessions waiting in the pool's queue: every available backend is at its "
                       "max_connections.",
                       pool_queued);
    render_pool_family(r, rt, "lb_pool_queue_max_seen", "gauge",
                       "The longest the pool's queue has been.", pool_queue_max_seen);
    render_pool_family(r, rt, "lb_pool_queue_timeouts_total", "counter",
                       "Queued sessions refused after the queue's timeout_ms.",
                       pool_queue_timeouts);
    render_pool_family(r, rt, "lb_pool_queue_full_total", "counter",
                       "Sessions refused at once: every available backend full and the queue full.",
                       pool_queue_full);
}

/* Opens a DNS discovery sample: `sample{pool="...",dns="...",type="SRV"`. */
static void render_dns_labels(struct render *r, const char *sample, const struct discovery *d)
{
    render_str(r, sample);
    render_str(r, "{pool=\"");
    render_escaped(r, d->pool);
    render_str(r, "\",dns=\"");
    render_escaped(r, d->conf.name);
    render_str(r, "\",type=\"");
    render_str(r, discovery_type_name(d->conf.type));
    render_str(r, "\"");
}

/* DNS discovery: one sample per "dns" entry of each pool. */
static void render_dns(struct render *r, const struct runtime *rt)
{
    size_t n = rt->dns ? rt->dns->n : 0;
    render_family(r, "lb_dns_backends", "gauge",
                  "Backends in the last good answer of a pool's \"dns\" entry.");
    for (size_t i = 0; i < n && !r->failed; i++) {
        render_dns_labels(r, "lb_dns_backends", rt->dns->v[i]);
        render_value(r, "} ", rt->dns->v[i]->nbackends);
    }
    render_family(r, "lb_dns_resolutions_total", "counter",
                  "Questions of a pool's \"dns\" entry, by result (an error or an empty answer "
                  "keeps the last good answer).");
    for (size_t i = 0; i < n && !r->failed; i++) {
        render_dns_labels(r, "lb_dns_resolutions_total", rt->dns->v[i]);
        render_value(r, ",result=\"ok\"} ", rt->dns->v[i]->resolutions);
        render_dns_labels(r, "lb_dns_resolutions_total", rt->dns->v[i]);
        render_value(r, ",result=\"error\"} ", rt->dns->v[i]->failures);
    }
    render_family(r, "lb_dns_last_success_timestamp_seconds", "gauge",
                  "When a pool's \"dns\" entry last had a good answer (Unix time; 0: never).");
    for (size_t i = 0; i < n && !r->failed; i++) {
        const struct discovery *d = rt->dns->v[i];
        render_dns_labels(r, "lb_dns_last_success_timestamp_seconds", d);
        render_printf(r, "} %.3f\n", (double)d->last_ok_unix_ms / 1000.0);
    }
}

/* The fleet (etcd): only with "fleet". */
static void render_fleet(struct render *r, const struct runtime *rt)
{
    const struct fleet *f = rt->fleet;
    if (!f)
        return;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"lb_fleet_up", "gauge", "1 while an etcd endpoint answers the fleet's watch and probes."},
        {"lb_fleet_revision", "gauge",
         "The etcd revision the fleet's documents are taken through."},
        {"lb_fleet_documents", "gauge", "Pool documents from etcd in force."},
        {"lb_fleet_rejected_documents", "gauge",
         "Documents in etcd the config loader refuses now (their last good version stays)."},
        {"lb_fleet_changes_total", "counter", "Document changes taken from etcd."},
        {"lb_fleet_reconnects_total", "counter",
         "Times the fleet left an etcd endpoint for the next."},
        {"lb_fleet_apply_failures_total", "counter",
         "Times etcd's documents could not be applied (the generation in force stayed)."},
    };
    const uint64_t v[] = {f->up ? 1 : 0,
                          f->revision > 0 ? (uint64_t)f->revision : 0,
                          f->ndocs,
                          f->nrejects,
                          f->changes,
                          f->reconnects,
                          rt->fleet_apply_failed};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]) && !r->failed; i++) {
        render_family(r, fam[i].name, fam[i].type, fam[i].help);
        render_str(r, fam[i].name);
        render_value(r, " ", v[i]);
    }
}

static void render_pool_requests(struct render *r, const struct runtime *rt)
{
    char num[32];

    for (size_t p = 0; p < rt->npools && !r->failed; p++) {
        const struct pool *pool = rt->pools[p];
        for (int i = 0; i < LB_REQ_BUCKETS; i++) {
            render_pool_labels(r, "lb_pool_http_request_duration_seconds_bucket", pool);
            render_str(r, ",le=\"");
            render_str(r, r->req_le[i]);
            render_value(r, "\"} ", pool->req_buckets[i]);
        }
        render_pool_labels(r, "lb_pool_http_request_duration_seconds_bucket", pool);
        render_value(r, ",le=\"+Inf\"} ", pool->req_count);
        render_pool_labels(r, "lb_pool_http_request_duration_seconds_sum", pool);
        render_printf(r, "} %s\n", format_double(num, sizeof(num), pool->req_sum_s));
        render_pool_labels(r, "lb_pool_http_request_duration_seconds_count", pool);
        render_value(r, "} ", pool->req_count);
    }
}

/* One family with a sample per listener: the uint64_t at offset in
 * struct listener. */
static void render_listener_family(struct render *r, const struct runtime *rt, const char *name,
                                   const char *type, const char *help, size_t offset)
{
    render_family(r, name, type, help);
    for (size_t i = 0; i < rt->nlisteners; i++) {
        const struct listener *l = rt->listeners[i];
        render_str(r, name);
        render_str(r, "{listener=\"");
        render_escaped(r, l->name);
        render_printf(r, "\"} %" PRIu64 "\n", *(const uint64_t *)((const char *)l + offset));
    }
}

static void render_listeners(struct render *r, const struct runtime *rt)
{
    render_listener_family(r, rt, "lb_listener_connections_total", "counter",
                           "Client connections accepted by the listener.",
                           offsetof(struct listener, total));
    render_listener_family(r, rt, "lb_listener_active_connections", "gauge",
                           "Open client sessions on the listener.",
                           offsetof(struct listener, active));
    render_listener_family(
        r, rt, "lb_listener_proxy_rejected_total", "counter",
        "Clients closed for a missing, malformed or late PROXY header (accept_proxy).",
        offsetof(struct listener, proxy_rejected));
    render_listener_family(r, rt, "lb_listener_tls_handshakes_total", "counter",
                           "TLS handshakes completed by the listener's clients (0 without tls).",
                           offsetof(struct listener, tls_handshakes));
    render_listener_family(r, rt, "lb_listener_tls_resumed_total", "counter",
                           "Of those, handshakes that resumed a session (ticket or cache).",
                           offsetof(struct listener, tls_resumed));
    render_listener_family(r, rt, "lb_listener_tls_handshake_failures_total", "counter",
                           "TLS handshakes that failed or timed out (a client leaving before "
                           "sending a byte is none).",
                           offsetof(struct listener, tls_handshake_failures));
    render_listener_family(r, rt, "lb_listener_sni_routed_total", "counter",
                           "Clients sent to a pool by their TLS server name (sni_routes).",
                           offsetof(struct listener, sni_routed));
    render_listener_family(r, rt, "lb_listener_sni_default_total", "counter",
                           "Clients of a listener with sni_routes sent to its own pool: no TLS "
                           "ClientHello, no server name or no matching route.",
                           offsetof(struct listener, sni_default));
    render_family(r, "lb_listener_http_responses_total", "counter",
                  "HTTP responses sent to the listener's clients, by status class (http mode).");
    for (size_t i = 0; i < rt->nlisteners; i++) {
        const struct listener *l = rt->listeners[i];
        for (int c = 0; c < LB_HTTP_CLASSES; c++) {
            render_str(r, "lb_listener_http_responses_total{listener=\"");
            render_escaped(r, l->name);
            render_str(r, "\"");
            render_value(r, HTTP_CLASS_LABELS[c], l->http_status[c]);
        }
    }
}

static void render_process(struct render *r, const struct runtime *rt)
{
    char num[32];

    render_family(r, "lb_up", "gauge", "1 while lb is running.");
    render_str(r, "lb_up 1\n");
    render_family(r, "lb_start_time_seconds", "gauge",
                  "When lb started, in seconds since the Unix epoch.");
    render_printf(r, "lb_start_time_seconds %s\n",
                  format_double(num, sizeof(num), (double)rt->started_unix_ms / 1000.0));
    render_family(r, "lb_reloads_total", "counter", "Configuration reloads, by result.");
    render_printf(r, "lb_reloads_total{result=\"ok\"} %" PRIu64 "\n", rt->reloads_ok);
    render_printf(r, "lb_reloads_total{result=\"failed\"} %" PRIu64 "\n", rt->reloads_failed);
    render_family(r, "lb_log_lines_dropped_total", "counter",
                  "Log lines dropped because stderr did not take them (not draining, or failed).");
    render_printf(r, "lb_log_lines_dropped_total %" PRIu64 "\n", log_lines_dropped());
    render_family(r, "lb_access_log_lines_dropped_total", "counter",
                  "Access log lines dropped because its writer did not take them (a slow disk, "
                  "or the writer gone).");
    render_printf(r, "lb_access_log_lines_dropped_total %" PRIu64 "\n", log_access_lines_dropped());
    render_family(r, "lb_sessions", "gauge", "Open sessions, all listeners.");
    render_printf(r, "lb_sessions %" PRIu64 "\n", rt->active);
    render_family(r, "lb_sessions_limit_reached_total", "counter",
                  "Times the sessions of all listeners reached the global max_connections and "
                  "every listener paused accepting.");
    render_printf(r, "lb_sessions_limit_reached_total %" PRIu64 "\n", rt->conn_full_count);
}

static void render_admin(struct render *r, const struct admin_http_stats *st)
{
    if (!st)
        return;
    render_family(r, "lb_admin_connections", "gauge", "Open connections to the admin API.");
    render_printf(r, "lb_admin_connections %u\n", st->open);
    render_family(r, "lb_admin_connections_rejected_total", "counter",
                  "Admin connections closed at once: admin.max_connections were open.");
    render_printf(r, "lb_admin_connections_rejected_total %" PRIu64 "\n", st->rejected);
    render_family(r, "lb_admin_request_timeouts_total", "counter",
                  "Admin connections closed because a request or answer missed its deadline.");
    render_printf(r, "lb_admin_request_timeouts_total %" PRIu64 "\n", st->timeouts);
    render_family(r, "lb_admin_tls_handshake_failures_total", "counter",
                  "Admin connections closed because their TLS handshake failed.");
    render_printf(r, "lb_admin_tls_handshake_failures_total %" PRIu64 "\n",
                  st->tls_handshake_failures);
}

static void render_free(const void *data, size_t len, void *extra)
{
    (void)len;
    (void)extra;
    free((void *)data);
}

int metrics_render_with_admin(const struct runtime *rt, const struct admin_http_stats *admin,
                              struct evbuffer *out)
{
    struct render r = {0};
    if (!render_room(&r, 0))
        return -1;
    for (int i = 0; i < LB_CHECK_BUCKETS; i++)
        format_double(r.le[i], sizeof(r.le[i]), lb_check_bucket_s[i]);
    for (int i = 0; i < LB_REQ_BUCKETS; i++)
        format_double(r.req_le[i], sizeof(r.req_le[i]), lb_req_bucket_s[i]);

    render_process(&r, rt);
    render_admin(&r, admin);
    render_listeners(&r, rt);
    render_family(&r, "lb_backend_up", "gauge",
                  "1 when the backend is available for new connections, else 0.");
    render_backends(&r, rt, render_backend_up);
    render_family(&r, "lb_backend_active_connections", "gauge", "Open sessions using the backend.");
    render_backends(&r, rt, render_backend_active);
    render_family(&r, "lb_backend_max_connections", "gauge",
                  "The backend's max_connections (only backends with one).");
    render_backends(&r, rt, render_backend_max);
    render_family(&r, "lb_backend_connections_total", "counter",
                  "Sessions connected to the backend.");
    render_backends(&r, rt, render_backend_total);
    render_family(&r, "lb_backend_connect_failures_total", "counter",
                  "Failed connect attempts to the backend.");
    render_backends(&r, rt, render_backend_failed);
    render_family(&r, "lb_backend_bytes_total", "counter",
                  "Bytes relayed with the backend: in = received from it, out = sent to it.");
    render_backends(&r, rt, render_backend_bytes);
    render_family(&r, "lb_backend_health_check_duration_seconds", "histogram",
                  "Duration of the backend's active health checks.");
    render_backends(&r, rt, render_backend_checks);
    render_family(&r, "lb_backend_http_responses_total", "counter",
                  "HTTP responses to requests sent to the backend, by status class (lb's own 502 "
                  "and 504 for it included).");
    render_backends(&r, rt, render_backend_http);
    render_family(&r, "lb_backend_http_reused_total", "counter",
                  "HTTP requests sent to the backend on an idle connection kept from an earlier "
                  "one.");
    render_backends(&r, rt, render_backend_reused);
    render_family(&r, "lb_backend_idle_connections", "gauge",
                  "Idle connections to the backend kept for reuse by later HTTP requests.");
    render_backends(&r, rt, render_backend_idle);
    render_family(&r, "lb_pool_http_request_duration_seconds", "histogram",
                  "Duration of the pool's HTTP requests, from the complete request head to the "
                  "end of the response.");
    render_pool_requests(&r, rt);
    render_pool_queues(&r, rt);
    render_dns(&r, rt);
    render_fleet(&r, rt);

    int rc = r.failed ? -1 : evbuffer_add_reference(out, r.p, r.len, render_free, NULL);
    if (rc < 0)
        free(r.p);
    return rc < 0 ? -1 : 0;
}

int metrics_render(const struct runtime *rt, struct evbuffer *out)
{
    return metrics_render_with_admin(rt, NULL, out);
}
