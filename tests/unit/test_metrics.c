/* test_metrics: metrics_render on a runtime built by hand — the exact text
 * of a small case (escapes, floats, a histogram, a down backend), an empty
 * runtime, 10,000 backends checked by the validator — and the validator
 * (tests/prom_check.c) itself, on text it must accept and text it must
 * refuse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lb/admin/metrics.h"
#include "lb/pool.h"
#include "lb/listener.h"
#include "lb/pool_health.h"
#include "lb/runtime.h"
#include "tests/prom_check.h"
#include "tests/test.h"

/* The runtime is built by hand: pools and listeners only, as
 * metrics_render reads them. */
static struct listener *listener_make(const char *name, uint64_t total, uint64_t active)
{
    struct listener *l = calloc(1, sizeof(*l));
    ck_assert_ptr_nonnull(l);
    l->name = strdup(name);
    l->total = total;
    l->active = active;
    return l;
}

static void runtime_add_listener(struct runtime *rt, struct listener *l)
{
    rt->listeners = realloc(rt->listeners, (rt->nlisteners + 1) * sizeof(*rt->listeners));
    ck_assert_ptr_nonnull(rt->listeners);
    rt->listeners[rt->nlisteners++] = l;
}

/* Adds a built pool of n backends named PREFIXi (i from 1). */
static struct pool *runtime_add_pool(struct runtime *rt, const char *name, size_t n,
                                     const char *prefix, bool checks)
{
    struct pool *pool = pool_new(name, LB_STRATEGY_ROUNDROBIN);
    ck_assert_ptr_nonnull(pool);
    for (size_t i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof(id), "%s%zu", prefix, i + 1);
        ck_assert_ptr_nonnull(pool_add_backend(pool, NULL, id, "127.0.0.1:9", NULL, 0, 1));
    }
    ck_assert_int_eq(pool_build(pool), 0);
    pool->has_checks = checks;
    rt->pools = realloc(rt->pools, (rt->npools + 1) * sizeof(*rt->pools));
    ck_assert_ptr_nonnull(rt->pools);
    rt->pools[rt->npools++] = pool;
    return pool;
}

static void runtime_drop(struct runtime *rt)
{
    for (size_t i = 0; i < rt->npools; i++)
        pool_release(rt->pools[i]);
    free(rt->pools);
    for (size_t i = 0; i < rt->nlisteners; i++) {
        free(rt->listeners[i]->name);
        free(rt->listeners[i]);
    }
    free(rt->listeners);
}

/* metrics_render's whole output as a NUL-terminated string (caller frees). */
static char *render(const struct runtime *rt)
{
    struct evbuffer *buf = evbuffer_new();
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(metrics_render(rt, buf), 0);
    size_t len = evbuffer_get_length(buf);
    char *text = malloc(len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(evbuffer_remove(buf, text, len), (int)len);
    text[len] = '\0';
    evbuffer_free(buf);
    return text;
}

static void assert_valid(const char *text)
{
    char err[512];
    ck_assert_msg(prom_check(text, err, sizeof(err)), "invalid exposition: %s", err);
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static const char small_expected[] =
    "# HELP lb_up 1 while lb is running.\n"
    "# TYPE lb_up gauge\n"
    "lb_up 1\n"
    "# HELP lb_start_time_seconds When lb started, in seconds since the Unix epoch.\n"
    "# TYPE lb_start_time_seconds gauge\n"
    "lb_start_time_seconds 1764286801.123\n"
    "# HELP lb_reloads_total Configuration reloads, by result.\n"
    "# TYPE lb_reloads_total counter\n"
    "lb_reloads_total{result=\"ok\"} 3\n"
    "lb_reloads_total{result=\"failed\"} 1\n"
    "# HELP lb_log_lines_dropped_total Log lines dropped because stderr did not take them (not "
    "draining, or failed).\n"
    "# TYPE lb_log_lines_dropped_total counter\n"
    "lb_log_lines_dropped_total 0\n"
    "# HELP lb_access_log_lines_dropped_total Access log lines dropped because its writer did not "
    "take them (a slow disk, or the writer gone).\n"
    "# TYPE lb_access_log_lines_dropped_total counter\n"
    "lb_access_log_lines_dropped_total 0\n"
    "# HELP lb_sessions Open sessions, all listeners.\n"
    "# TYPE lb_sessions gauge\n"
    "lb_sessions 0\n"
    "# HELP lb_sessions_limit_reached_total Times the sessions of all listeners reached the global "
    "max_connections and every listener paused accepting.\n"
    "# TYPE lb_sessions_limit_reached_total counter\n"
    "lb_sessions_limit_reached_total 0\n"
    "# HELP lb_listener_connections_total Client connections accepted by the listener.\n"
    "# TYPE lb_listener_connections_total counter\n"
    "lb_listener_connections_total{listener=\"web\"} 12\n"
    "# HELP lb_listener_active_connections Open client sessions on the listener.\n"
    "# TYPE lb_listener_active_connections gauge\n"
    "lb_listener_active_connections{listener=\"web\"} 2\n"
    "# HELP lb_listener_proxy_rejected_total Clients closed for a missing, malformed or late PROXY "
    "header (accept_proxy).\n"
    "# TYPE lb_listener_proxy_rejected_total counter\n"
    "lb_listener_proxy_rejected_total{listener=\"web\"} 3\n"
    "# HELP lb_listener_tls_handshakes_total TLS handshakes completed by the listener's clients "
    "(0 without tls).\n"
    "# TYPE lb_listener_tls_handshakes_total counter\n"
    "lb_listener_tls_handshakes_total{listener=\"web\"} 21\n"
    "# HELP lb_listener_tls_resumed_total Of those, handshakes that resumed a session (ticket or "
    "cache).\n"
    "# TYPE lb_listener_tls_resumed_total counter\n"
    "lb_listener_tls_resumed_total{listener=\"web\"} 8\n"
    "# HELP lb_listener_tls_handshake_failures_total TLS handshakes that failed or timed out (a "
    "client leaving before sending a byte is none).\n"
    "# TYPE lb_listener_tls_handshake_failures_total counter\n"
    "lb_listener_tls_handshake_failures_total{listener=\"web\"} 5\n"
    "# HELP lb_listener_sni_routed_total Clients sent to a pool by their TLS server name "
    "(sni_routes).\n"
    "# TYPE lb_listener_sni_routed_total counter\n"
    "lb_listener_sni_routed_total{listener=\"web\"} 4\n"
    "# HELP lb_listener_sni_default_total Clients of a listener with sni_routes sent to its own "
    "pool: no TLS ClientHello, no server name or no matching route.\n"
    "# TYPE lb_listener_sni_default_total counter\n"
    "lb_listener_sni_default_total{listener=\"web\"} 6\n"
    "# HELP lb_listener_http_responses_total HTTP responses sent to the listener's clients, by "
    "status class (http mode).\n"
    "# TYPE lb_listener_http_responses_total counter\n"
    "lb_listener_http_responses_total{listener=\"web\",class=\"1xx\"} 1\n"
    "lb_listener_http_responses_total{listener=\"web\",class=\"2xx\"} 2\n"
    "lb_listener_http_responses_total{listener=\"web\",class=\"3xx\"} 3\n"
    "lb_listener_http_responses_total{listener=\"web\",class=\"4xx\"} 4\n"
    "lb_listener_http_responses_total{listener=\"web\",class=\"5xx\"} 5\n"
    "# HELP lb_backend_up 1 when the backend is available for new connections, else 0.\n"
    "# TYPE lb_backend_up gauge\n"
    "lb_backend_up{pool=\"app\",backend=\"web1\"} 1\n"
    "lb_backend_up{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 0\n"
    "# HELP lb_backend_active_connections Open sessions using the backend.\n"
    "# TYPE lb_backend_active_connections gauge\n"
    "lb_backend_active_connections{pool=\"app\",backend=\"web1\"} 2\n"
    "lb_backend_active_connections{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 0\n"
    "# HELP lb_backend_max_connections The backend's max_connections (only backends with one).\n"
    "# TYPE lb_backend_max_connections gauge\n"
    "lb_backend_max_connections{pool=\"app\",backend=\"web1\"} 4\n"
    "# HELP lb_backend_connections_total Sessions connected to the backend.\n"
    "# TYPE lb_backend_connections_total counter\n"
    "lb_backend_connections_total{pool=\"app\",backend=\"web1\"} 10\n"
    "lb_backend_connections_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 18446744073709551615\n"
    "# HELP lb_backend_connect_failures_total Failed connect attempts to the backend.\n"
    "# TYPE lb_backend_connect_failures_total counter\n"
    "lb_backend_connect_failures_total{pool=\"app\",backend=\"web1\"} 1\n"
    "lb_backend_connect_failures_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 7\n"
    "# HELP lb_backend_bytes_total Bytes relayed with the backend: in = received from it, out "
    "= sent to it.\n"
    "# TYPE lb_backend_bytes_total counter\n"
    "lb_backend_bytes_total{pool=\"app\",backend=\"web1\",direction=\"in\"} 1000\n"
    "lb_backend_bytes_total{pool=\"app\",backend=\"web1\",direction=\"out\"} 200\n"
    "lb_backend_bytes_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\",direction=\"in\"} "
    "1099511627776\n"
    "lb_backend_bytes_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\",direction=\"out\"} 0\n"
    "# HELP lb_backend_health_check_duration_seconds Duration of the backend's active health "
    "checks.\n"
    "# TYPE lb_backend_health_check_duration_seconds histogram\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.001\"} "
    "0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.0025\"} "
    "1\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.005\"} "
    "2\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.01\"} "
    "3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.025\"} "
    "3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.05\"} "
    "3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.1\"} "
    "3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.25\"} "
    "3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"0.5\"} "
    "3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"1\"} 3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"2.5\"} "
    "3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"5\"} 3\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"web1\",le=\"+Inf\"} "
    "4\n"
    "lb_backend_health_check_duration_seconds_sum{pool=\"app\",backend=\"web1\"} "
    "0.30000000000000004\n"
    "lb_backend_health_check_duration_seconds_count{pool=\"app\",backend=\"web1\"} 4\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.001\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.0025\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.005\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.01\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.025\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.05\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.1\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.25\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"0.5\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"1\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"2.5\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"5\"} 0\n"
    "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"we\\\"b\\\\2\\n\","
    "le=\"+Inf\"} 0\n"
    "lb_backend_health_check_duration_seconds_sum{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 0\n"
    "lb_backend_health_check_duration_seconds_count{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 0\n"
    "# HELP lb_backend_http_responses_total HTTP responses to requests sent to the backend, by "
    "status class (lb's own 502 and 504 for it included).\n"
    "# TYPE lb_backend_http_responses_total counter\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"web1\",class=\"1xx\"} 0\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"web1\",class=\"2xx\"} 8\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"web1\",class=\"3xx\"} 1\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"web1\",class=\"4xx\"} 0\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"web1\",class=\"5xx\"} 2\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\",class=\"1xx\"} 0\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\",class=\"2xx\"} 0\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\",class=\"3xx\"} 0\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\",class=\"4xx\"} 0\n"
    "lb_backend_http_responses_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\",class=\"5xx\"} 4\n"
    "# HELP lb_backend_http_reused_total HTTP requests sent to the backend on an idle connection "
    "kept from an earlier one.\n"
    "# TYPE lb_backend_http_reused_total counter\n"
    "lb_backend_http_reused_total{pool=\"app\",backend=\"web1\"} 6\n"
    "lb_backend_http_reused_total{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 0\n"
    "# HELP lb_backend_idle_connections Idle connections to the backend kept for reuse by later "
    "HTTP requests.\n"
    "# TYPE lb_backend_idle_connections gauge\n"
    "lb_backend_idle_connections{pool=\"app\",backend=\"web1\"} 3\n"
    "lb_backend_idle_connections{pool=\"app\",backend=\"we\\\"b\\\\2\\n\"} 0\n"
    "# HELP lb_pool_http_request_duration_seconds Duration of the pool's HTTP requests, from the "
    "complete request head to the end of the response.\n"
    "# TYPE lb_pool_http_request_duration_seconds histogram\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.001\"} 0\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.0025\"} 0\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.005\"} 1\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.01\"} 3\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.025\"} 5\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.05\"} 6\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.1\"} 8\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.25\"} 8\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"0.5\"} 9\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"1\"} 9\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"2.5\"} 10\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"5\"} 10\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"10\"} 10\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"30\"} 10\n"
    "lb_pool_http_request_duration_seconds_bucket{pool=\"app\",le=\"+Inf\"} 11\n"
    "lb_pool_http_request_duration_seconds_sum{pool=\"app\"} 31.25\n"
    "lb_pool_http_request_duration_seconds_count{pool=\"app\"} 11\n"
    "# HELP lb_pool_queued Sessions waiting in the pool's queue: every available backend is at its "
    "max_connections.\n"
    "# TYPE lb_pool_queued gauge\n"
    "lb_pool_queued{pool=\"app\"} 1\n"
    "# HELP lb_pool_queue_max_seen The longest the pool's queue has been.\n"
    "# TYPE lb_pool_queue_max_seen gauge\n"
    "lb_pool_queue_max_seen{pool=\"app\"} 3\n"
    "# HELP lb_pool_queue_timeouts_total Queued sessions refused after the queue's timeout_ms.\n"
    "# TYPE lb_pool_queue_timeouts_total counter\n"
    "lb_pool_queue_timeouts_total{pool=\"app\"} 5\n"
    "# HELP lb_pool_queue_full_total Sessions refused at once: every available backend full and "
    "the queue full.\n"
    "# TYPE lb_pool_queue_full_total counter\n"
    "lb_pool_queue_full_total{pool=\"app\"} 7\n"
    "# HELP lb_dns_backends Backends in the last good answer of a pool's \"dns\" entry.\n"
    "# TYPE lb_dns_backends gauge\n"
    "# HELP lb_dns_resolutions_total Questions of a pool's \"dns\" entry, by result (an error or "
    "an empty answer keeps the last good answer).\n"
    "# TYPE lb_dns_resolutions_total counter\n"
    "# HELP lb_dns_last_success_timestamp_seconds When a pool's \"dns\" entry last had a good "
    "answer (Unix time; 0: never).\n"
    "# TYPE lb_dns_last_success_timestamp_seconds gauge\n";

/* One pool "app" with checks: web1 (up, busy, 4 checks: 1.5 ms, 3 ms, 8 ms
 * and one slower than 5 s... in count only; the sum is set to 0.1 + 0.2 to
 * show a float that needs 17 digits), and a down backend whose id holds a
 * quote, a backslash and a newline; one listener "web". The HTTP counters
 * are distinct per class, and the pool has 11 requests (one over 30 s). */
START_TEST(small_exact)
{
    struct runtime rt = {0};
    rt.started_unix_ms = 1764286801123;
    rt.reloads_ok = 3;
    rt.reloads_failed = 1;
    runtime_add_listener(&rt, listener_make("web", 12, 2));
    rt.listeners[0]->proxy_rejected = 3;
    rt.listeners[0]->tls_handshakes = 21;
    rt.listeners[0]->tls_resumed = 8;
    rt.listeners[0]->tls_handshake_failures = 5;
    rt.listeners[0]->sni_routed = 4;
    rt.listeners[0]->sni_default = 6;
    const uint64_t listener_http[LB_HTTP_CLASSES] = {1, 2, 3, 4, 5};
    memcpy(rt.listeners[0]->http_status, listener_http, sizeof(listener_http));
    struct pool *pool = runtime_add_pool(&rt, "app", 2, "web", true);
    const uint64_t req_buckets[LB_REQ_BUCKETS] = {0, 0, 1, 3, 5, 6, 8, 8, 9, 9, 10, 10, 10, 10};
    memcpy(pool->req_buckets, req_buckets, sizeof(req_buckets));
    pool->req_count = 11;
    pool->req_sum_s = 31.25;
    pool->nqueued = 1; /* counted only: nothing is in the queue's list */
    pool->queue_max_seen = 3;
    pool->queue_timeouts = 5;
    pool->queue_full = 7;

    struct backend *b1 = pool->backends[0];
    b1->active = 2;
    b1->total = 10;
    b1->failed = 1;
    b1->bytes_in = 1000;
    b1->bytes_out = 200;
    const uint64_t buckets[LB_CHECK_BUCKETS] = {0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3};
    memcpy(b1->check_buckets, buckets, sizeof(buckets));
    b1->check_count = 4;
    b1->check_sum_s = 0.1 + 0.2;
    const uint64_t b1_http[LB_HTTP_CLASSES] = {0, 8, 1, 0, 2};
    memcpy(b1->http_status, b1_http, sizeof(b1_http));
    b1->reused = 6;
    b1->nidle = 3;
    b1->max_conns = 4;

    struct backend *b2 = pool->backends[1];
    free(b2->id);
    b2->id = strdup("we\"b\\2\n");
    ck_assert_int_eq(pool_set_backend_up(pool, b2, false), 0);
    b2->total = UINT64_MAX;
    b2->failed = 7;
    b2->bytes_in = (uint64_t)1 << 40;
    b2->http_status[4] = 4;

    char *text = render(&rt);
    ck_assert_str_eq(text, small_expected);
    assert_valid(text);
    free(text);
    runtime_drop(&rt);
}
END_TEST

/* Rendering appends: what the buffer held stays in front. */
START_TEST(appends_to_buffer)
{
    struct runtime rt = {0};
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, "x", 1);
    ck_assert_int_eq(metrics_render(&rt, buf), 0);
    ck_assert_int_eq(*(char *)evbuffer_pullup(buf, 1), 'x');
    evbuffer_drain(buf, 1);
    size_t len = evbuffer_get_length(buf);
    char *text = calloc(1, len + 1);
    evbuffer_remove(buf, text, len);
    assert_valid(text);
    evbuffer_free(buf);
    free(text);
}
END_TEST

/* No listeners, no pools: every family still has its HELP and TYPE, the
 * process samples are there, and the text is valid. */
START_TEST(empty_runtime)
{
    struct runtime rt = {0};
    char *text = render(&rt);
    assert_valid(text);
    /* + lb_sessions and its limit, lb_backend_max_connections, the pool
     * queue families, the DNS discovery families, the access log's drops. */
    ck_assert_int_eq(count_lines(text),
                     6 + 3 + 2 + 2 + 9 * 2 + 9 * 2 + 2 + 6 + 2 + 4 * 2 + 3 * 2 + 3);
    double v;
    ck_assert(prom_value(text, "lb_up", &v));
    ck_assert(v == 1);
    ck_assert(prom_value(text, "lb_start_time_seconds", &v));
    ck_assert(v == 0);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE lb_backend_health_check_duration_seconds "
                                       "histogram\n"));
    free(text);
    runtime_drop(&rt);
}
END_TEST

/* A pool without active checks has no check-duration series at all; the
 * HTTP request histogram is there for every pool, all 0 without requests. */
START_TEST(no_checks_no_histogram)
{
    struct runtime rt = {0};
    runtime_add_pool(&rt, "plain", 1, "p", false);
    runtime_add_pool(&rt, "checked", 1, "c", true);
    char *text = render(&rt);
    assert_valid(text);
    ck_assert_ptr_null(strstr(text, "health_check_duration_seconds_bucket{pool=\"plain\""));
    ck_assert_ptr_null(strstr(text, "health_check_duration_seconds_count{pool=\"plain\""));
    double v;
    ck_assert(prom_value(text, "lb_pool_http_request_duration_seconds_count{pool=\"plain\"}", &v));
    ck_assert(v == 0);
    ck_assert(prom_value(
        text, "lb_pool_http_request_duration_seconds_bucket{pool=\"checked\",le=\"+Inf\"}", &v));
    ck_assert(v == 0);
    ck_assert(prom_value(text,
                         "lb_backend_health_check_duration_seconds_count{pool=\"checked\","
                         "backend=\"c1\"}",
                         &v));
    ck_assert(prom_value(text, "lb_backend_up{pool=\"plain\",backend=\"p1\"}", &v));
    ck_assert(v == 1);
    free(text);
    runtime_drop(&rt);
}
END_TEST

/* 10,000 backends over 4 pools (two with checks, with cumulative bucket
 * counts) and 100 listeners: valid, and exactly the expected lines. */
START_TEST(ten_thousand_backends)
{
    struct runtime rt = {0};
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof(name), "l%d", i);
        runtime_add_listener(&rt, listener_make(name, (uint64_t)i * 3, (uint64_t)i));
    }
    for (int p = 0; p < 4; p++) {
        char name[32];
        snprintf(name, sizeof(name), "pool%d", p);
        struct pool *pool = runtime_add_pool(&rt, name, 2500, "backend-", p % 2 == 0);
        for (size_t j = 0; j < pool->nbackends; j++) {
            struct backend *b = pool->backends[j];
            b->total = j * 7;
            b->bytes_in = j * 1000;
            for (int k = 0; k < LB_CHECK_BUCKETS; k++)
                b->check_buckets[k] = j + (uint64_t)k;
            b->check_count = j + LB_CHECK_BUCKETS + 1;
            b->check_sum_s = (double)j * 0.0137;
        }
    }
    char *text = render(&rt);
    assert_valid(text);
    int per_backend = 6 + LB_HTTP_CLASSES + 2, per_checked = LB_CHECK_BUCKETS + 3;
    int per_pool = LB_REQ_BUCKETS + 3;
    ck_assert_int_eq(count_lines(text), 6 + 3 + 2 + 2 + 8 * (2 + 100) + 2 + 100 * LB_HTTP_CLASSES +
                                            9 * 2 + 10000 * per_backend + 5000 * per_checked + 2 +
                                            3 + 4 * per_pool + 6 + 2 + 4 * (2 + 4) + 3 * 2);
    double v;
    ck_assert(prom_value(
        text, "lb_backend_connections_total{pool=\"pool3\",backend=\"backend-2500\"}", &v));
    ck_assert(v == 2499 * 7);
    free(text);
    runtime_drop(&rt);
}
END_TEST

/* The validator accepts a minimal valid text... */
START_TEST(validator_accepts)
{
    static const char ok[] = "# HELP a_total A.\n"
                             "# TYPE a_total counter\n"
                             "a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 1.5e3\n"
                             "a_total{x=\"2\"} 0 1700000000000\n"
                             "# TYPE g gauge\n"
                             "# HELP g G with \\\\ and \\n.\n"
                             "g -Inf\n"
                             "# HELP h H.\n"
                             "# TYPE h histogram\n"
                             "h_bucket{le=\"0.5\"} 1\n"
                             "h_bucket{le=\"+Inf\"} 2\n"
                             "h_sum 0.7\n"
                             "h_count 2\n";
    assert_valid(ok);
}
END_TEST

/* ...and refuses each of these, naming the reason. */
static const struct {
    const char *text;
    const char *why;
} bad_cases[] = {
    {"# HELP a A.\n# TYPE a gauge\na 1", "newline"},
    {"", "newline"},
    {"# HELP a A.\n# TYPE a gauge\n\na 1\n", "empty line"},
    {"# some comment\n", "comment other than"},
    {"# HELP 1a A.\n", "bad metric name"},
    {"# HELP a A.\n# TYPE a summary\n", "unknown type"},
    {"# HELP a A.\n# HELP a B.\n", "second HELP"},
    {"# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\n", "second TYPE"},
    {"# HELP a bad \\t escape.\n", "bad escape in HELP"},
    {"a 1\n", "outside its family"},
    {"# HELP a A.\na 1\n", "before the family's TYPE"},
    {"# TYPE a gauge\na 1\n", "before the family's HELP"},
    {"# HELP a A.\n# TYPE a gauge\na 1\n# HELP a A.\n", "HELP after the family's samples"},
    {"# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\nb 1\n# HELP a A.\n",
     "appears again"},
    {"# HELP a A.\n# TYPE a gauge\na{1x=\"v\"} 1\n", "bad label name"},
    {"# HELP a A.\n# TYPE a gauge\na{__x=\"v\"} 1\n", "reserved label"},
    {"# HELP a A.\n# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n", "label x twice"},
    {"# HELP a A.\n# TYPE a gauge\na{x=\"a\"b\"} 1\n", "expected , or }"},
    {"# HELP a A.\n# TYPE a gauge\na{x=\"a\\tb\"} 1\n", "bad value (escape"},
    {"# HELP a A.\n# TYPE a gauge\na{x=\"v\",} 1\n", "bad label name"},
    {"# HELP a A.\n# TYPE a gauge\na{x=v} 1\n", "expected =\""},
    {"# HELP a A.\n# TYPE a gauge\na  1\n", "bad value ''"},
    {"# HELP a A.\n# TYPE a gauge\na abc\n", "bad value 'abc'"},
    {"# HELP a A.\n# TYPE a gauge\na inf\n", "bad value 'inf'"},
    {"# HELP a A.\n# TYPE a gauge\na 1 x\n", "bad timestamp"},
    {"# HELP a A.\n# TYPE a counter\na -1\n", "negative or NaN"},
    {"# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", "also on line 3"},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"0.5\"} 2\n",
     "le not above"},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 2\nh_bucket{le=\"1\"} 1\n",
     "count below"},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
     "_sum before the series' le=\"+Inf\""},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
     "_count 3 differs"},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", "_count before _sum"},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n", "without _sum and"},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{x=\"1\"} 2\n", "bucket without le"},
    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"x\"} 2\n", "is not a number"},
    {"# HELP h H.\n# TYPE h histogram\nh 2\n", "outside its family"},
};

START_TEST(validator_refuses)
{
    char err[512];
    const char *text = bad_cases[_i].text;
    ck_assert_msg(!prom_check(text, err, sizeof(err)), "accepted: %s", text);
    ck_assert_msg(strstr(err, bad_cases[_i].why) != NULL, "case %d: '%s' lacks '%s'", _i, err,
                  bad_cases[_i].why);
}
END_TEST

START_TEST(value_lookup)
{
    static const char text[] = "a 1\na_total 2\na{x=\"y\"} +Inf\n";
    double v;
    ck_assert(prom_value(text, "a", &v));
    ck_assert(v == 1);
    ck_assert(prom_value(text, "a_total", &v));
    ck_assert(v == 2);
    ck_assert(prom_value(text, "a{x=\"y\"}", &v));
    ck_assert(v > 1e308);
    ck_assert(!prom_value(text, "a{x=\"z\"}", &v));
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, small_exact);
    tcase_add_test(tc, appends_to_buffer);
    tcase_add_test(tc, empty_runtime);
    tcase_add_test(tc, no_checks_no_histogram);
    tcase_add_test(tc, ten_thousand_backends);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    tc = tcase_create("validator");
    tcase_add_test(tc, validator_accepts);
    tcase_add_loop_test(tc, validator_refuses, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, value_lookup);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(metrics_suite)
