/* Integration: the admin API through real HTTP against a real lb and real
 * demo backends — every endpoint, every error status, the bearer token,
 * and what drain, disable, enable and weight changes do to live traffic.
 * Answers are parsed with jansson and compared value by value. */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define TOKEN "s3cret-token"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define JSON_TYPE "Content-Type: application/json\r\n"

/* The usual test config with an "admin" object on 127.0.0.1:admin_port
 * (token: NULL for none). */
static json_t *admin_config(const struct harness_conf *c, int admin_port, const char *token)
{
    json_t *cfg = harness_cfg(c);
    harness_jset(cfg, "admin.listen", json_string(harness_lo(admin_port)));
    if (token)
        harness_jset(cfg, "admin.token", json_string(token));
    return cfg;
}

/* GET path (with the token when auth), asserting 200 and JSON. */
static json_t *get_json(int port, const char *path, bool auth)
{
    struct harness_reply r = harness_call(port, "GET", path, auth ? AUTH : NULL, NULL);
    ck_assert_msg(r.status == 200, "GET %s: status %d: %s", path, r.status, r.body);
    ck_assert_msg(r.json != NULL, "GET %s: not JSON: %s", path, r.body);
    return r.json;
}

static struct harness_reply patch(int port, const char *pool, const char *backend, const char *body)
{
    return harness_call(port, "PATCH", harness_strf("/api/v1/pools/%s/backends/%s", pool, backend),
                        JSON_TYPE, body);
}

static void assert_error(struct harness_reply r, int status, const char *message)
{
    ck_assert_msg(r.status == status, "status %d, expected %d: %s", r.status, status, r.body);
    ck_assert_msg(r.json != NULL, "error answer is not JSON: %s", r.body);
    ck_assert_int_eq(json_object_size(r.json), 1);
    json_t *e = json_object_get(r.json, "error");
    ck_assert_msg(json_is_string(e), "no \"error\" string: %s", r.body);
    ck_assert_str_eq(json_string_value(e), message);
}

static void assert_null(json_t *j, const char *path)
{
    ck_assert_msg(json_is_null(harness_jget(j, path)), "%s is not null", path);
}

/* The keys of object j, in order, space separated. */
static const char *keys_of(json_t *j)
{
    const char *keys = "";
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        keys = harness_strf("%s%s%s", keys, keys[0] ? " " : "", k);
    }
    return keys;
}

#define BACKEND_KEYS                                                                               \
    "id name address dns priority weight effective_weight state health active_connections "        \
    "max_connections "                                                                             \
    "total_connections failed_connections bytes_in bytes_out http_responses reused "               \
    "idle_connections"

/* The names of count successive connections through lb, space separated. */
static const char *fetch_sequence(int port, int count)
{
    const char *seq = "";
    for (int i = 0; i < count; i++) {
        const char *name = harness_fetch_name(NULL, "127.0.0.1", port);
        ck_assert_msg(name != NULL, "connection %d through lb got no name", i);
        seq = harness_strf("%s%s%s", seq, i ? " " : "", name);
    }
    return seq;
}

/* Sends text on fd and expects it echoed back. */
static void assert_echo(int fd, const char *text)
{
    size_t len = strlen(text);
    char buf[256];
    ck_assert(harness_send_all(fd, text, len, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_recv_n(fd, buf, len, HARNESS_WAIT_MS), (ssize_t)len);
    ck_assert(memcmp(buf, text, len) == 0);
}

struct setup {
    struct harness_lb lb;
    int lport; /* lb's listener */
    int aport; /* the admin API */
};

/* Starts lb with the given backends (one backend or an array of them,
 * stolen) and admin; health_check: the pool's check (stolen), NULL for
 * none. */
static void start(struct setup *s, const char *strategy, json_t *backends, json_t *health_check,
                  const char *token)
{
    s->lport = harness_free_port();
    s->aport = harness_free_port();
    json_t *cfg = admin_config(
        &(struct harness_conf){.listen = harness_lo(s->lport), .strategy = strategy, .retries = 1},
        s->aport, token);
    if (health_check)
        harness_jset(cfg, "pools.0.health_check", health_check);
    harness_jset(cfg, "pools.0.backends",
                 json_is_array(backends) ? backends : harness_jarray(backends, NULL));
    harness_lb_start_json(&s->lb, cfg, s->lport);
    ck_assert(harness_wait_listening(s->aport, HARNESS_WAIT_MS));
}

/* A backend of the given mode on a free port: its config entry (a new
 * reference). */
static json_t *backend(const char *name, const char *mode, unsigned weight)
{
    int port = harness_free_port();
    harness_backend("127.0.0.1", port, name, mode);
    return harness_backend_weighted(harness_lo(port), name, (int)weight);
}

static void stop(struct setup *s)
{
    ck_assert_int_eq(harness_lb_stop(&s->lb), 0);
}

START_TEST(read_endpoints)
{
    struct setup s;
    start(&s, "roundrobin",
          harness_jarray(backend("app1", "name", 1), backend("app2", "name", 2), NULL), NULL, NULL);
    /* The port listens before the log line is out (the log is written by the
     * loop when stderr takes it): wait for the line. */
    ck_assert(harness_log_wait(s.lb.log,
                               harness_strf("info: admin API listening on 127.0.0.1:%d", s.aport),
                               1, HARNESS_WAIT_MS));

    struct harness_reply r = harness_call(s.aport, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_http_header(r.headers, "Content-Type"), "application/json");
    ck_assert_str_eq(r.body, "{\n  \"status\": \"ok\"\n}\n");

    json_t *st = get_json(s.aport, "/api/v1/status", false);
    ck_assert_str_eq(keys_of(st), "version pid uptime_s config_file config_loaded_at reloads "
                                  "connections log descriptors splice fleet admin");
    ck_assert(json_is_null(harness_jget(st, "fleet"))); /* no "fleet" in the file */
    ck_assert_str_eq(harness_jstr(st, "version"), LB_VERSION);
    ck_assert_int_eq(harness_jint(st, "pid"), s.lb.pid);
    ck_assert_int_ge(harness_jint(st, "uptime_s"), 0);
    ck_assert_int_le(harness_jint(st, "uptime_s"), 5);
    ck_assert_str_eq(harness_jstr(st, "config_file"), s.lb.config);
    const char *at = harness_jstr(st, "config_loaded_at");
    int y, mo, d, h, mi, sec;
    char z;
    ck_assert_int_eq(strlen(at), 20);
    ck_assert_int_eq(sscanf(at, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z), 7);
    ck_assert_int_eq(z, 'Z');
    ck_assert_int_eq(harness_jint(st, "reloads.ok"), 0);
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 0);
    assert_null(st, "reloads.last_error");
    ck_assert_int_eq(harness_jint(st, "connections.active"), 0);
    ck_assert_int_eq(harness_jint(st, "connections.total"), 0);
    ck_assert_str_eq(keys_of(harness_jget(st, "connections")),
                     "active total max_connections accepts_paused limit_reached");
    assert_null(st, "connections.max_connections");
    ck_assert(json_is_false(harness_jget(st, "connections.accepts_paused")));
    ck_assert_int_eq(harness_jint(st, "connections.limit_reached"), 0);
    ck_assert_str_eq(keys_of(harness_jget(st, "log")), "dropped format access_log");
    ck_assert_int_eq(harness_jint(st, "log.dropped"), 0);

    json_t *ls = get_json(s.aport, "/api/v1/listeners", false);
    ck_assert_int_eq(json_array_size(harness_jget(ls, "listeners")), 1);
    json_t *l = harness_jget(ls, "listeners.0");
    ck_assert_str_eq(
        keys_of(l), "name listen mode pool retired reuse_port active_connections total_connections "
                    "accept_proxy proxy_rejected sni_routed sni_default http_responses tls");
    ck_assert_str_eq(keys_of(harness_jget(l, "http_responses")), "1xx 2xx 3xx 4xx 5xx");
    ck_assert(json_is_null(harness_jget(l, "tls"))); /* a plain listener */
    ck_assert(json_is_false(harness_jget(l, "retired")));
    ck_assert_str_eq(harness_jstr(l, "name"), "web");
    ck_assert_str_eq(harness_jstr(l, "listen"), harness_strf("127.0.0.1:%d", s.lport));
    ck_assert_str_eq(harness_jstr(l, "mode"), "tcp");
    ck_assert_str_eq(harness_jstr(l, "pool"), "app");
    ck_assert_int_eq(harness_jint(l, "active_connections"), 0);
    ck_assert_int_eq(harness_jint(l, "total_connections"), 0);
    ck_assert_int_eq(harness_jint(l, "http_responses.2xx"), 0);

    json_t *pools = get_json(s.aport, "/api/v1/pools", false);
    ck_assert_int_eq(json_array_size(harness_jget(pools, "pools")), 1);
    json_t *p = harness_jget(pools, "pools.0");
    ck_assert_str_eq(
        keys_of(p),
        "name source strategy backends discovery available_backends rejected_connections "
        "http_requests queue");
    ck_assert_str_eq(harness_jstr(p, "source"), "file");
    ck_assert_str_eq(keys_of(harness_jget(p, "queue")),
                     "queued max timeout_ms max_seen timeouts full");
    ck_assert_int_eq(harness_jint(p, "queue.max"), 0);
    ck_assert_int_eq(harness_jint(p, "queue.timeout_ms"), 5000);
    ck_assert_int_eq(harness_jint(p, "http_requests"), 0);
    ck_assert_str_eq(harness_jstr(p, "name"), "app");
    ck_assert_str_eq(harness_jstr(p, "strategy"), "roundrobin");
    ck_assert_int_eq(harness_jint(p, "available_backends"), 2);
    ck_assert_int_eq(harness_jint(p, "rejected_connections"), 0);
    ck_assert_int_eq(json_array_size(harness_jget(p, "backends")), 2);
    json_t *b = harness_jget(p, "backends.1");
    ck_assert_str_eq(keys_of(b), BACKEND_KEYS);
    ck_assert_str_eq(harness_jstr(b, "id"), "app2");
    ck_assert_str_eq(harness_jstr(b, "name"), "app2");
    ck_assert_int_eq(harness_jint(b, "weight"), 2);
    ck_assert_int_eq(harness_jint(b, "effective_weight"), 2);
    ck_assert_str_eq(harness_jstr(b, "state"), "up");
    ck_assert_str_eq(keys_of(harness_jget(b, "health")), "checks status ejected");
    assert_null(b, "health.checks");
    ck_assert_str_eq(harness_jstr(b, "health.status"), "up");
    ck_assert(json_is_false(harness_jget(b, "health.ejected")));
    ck_assert_str_eq(keys_of(harness_jget(b, "http_responses")), "1xx 2xx 3xx 4xx 5xx");
    static const char *const zero[] = {
        "active_connections", "total_connections",  "failed_connections", "bytes_in",
        "bytes_out",          "http_responses.1xx", "http_responses.5xx", "reused",
        "idle_connections"};
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
        ck_assert_int_eq(harness_jint(b, zero[i]), 0);

    /* The single views are the same objects as in the list. */
    ck_assert(json_equal(get_json(s.aport, "/api/v1/pools/app", false), p));
    ck_assert(json_equal(get_json(s.aport, "/api/v1/pools/app/backends/app2", false), b));

    r = harness_call(s.aport, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_http_header(r.headers, "Content-Type"),
                     "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_msg(strstr(r.body, "# TYPE ") != NULL, "no metrics: %s", r.body);

    /* The file is unchanged: a reload keeps everything. */
    r = harness_call(s.aport, "POST", "/api/v1/reload", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    json_t *rl = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(rl);
    json_t *want = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "status", "ok", "generation", 2,
                             "listeners_added", 0, "listeners_removed", 0, "backends_added", 0,
                             "backends_removed", 0);
    ck_assert_msg(json_equal(rl, want), "reload answered %s", r.body);
    json_decref(rl);
    json_decref(want);
    stop(&s);
}
END_TEST

START_TEST(error_statuses)
{
    struct setup s;
    start(&s, "roundrobin", backend("app1", "name", 1), NULL, NULL);
    int a = s.aport;

    /* 404 */
    assert_error(harness_call(a, "GET", "/nope", NULL, NULL), 404, "no such path");
    assert_error(harness_call(a, "GET", "//", NULL, NULL), 404, "no such path");
    assert_error(harness_call(a, "GET", "/index.html", NULL, NULL), 404, "no such path");
    assert_error(harness_call(a, "GET", "/api/v1/pools/", NULL, NULL), 404, "no such path");
    assert_error(harness_call(a, "GET", "/api/v1/pools/app/backends", NULL, NULL), 404,
                 "no such path");
    assert_error(harness_call(a, "GET", "/api/v1/pools/nosuch", NULL, NULL), 404,
                 "no pool named \"nosuch\"");
    assert_error(harness_call(a, "GET", "/api/v1/pools/nosuch/backends/app1", NULL, NULL), 404,
                 "no pool named \"nosuch\"");
    assert_error(harness_call(a, "GET", "/api/v1/pools/app/backends/nosuch", NULL, NULL), 404,
                 "pool \"app\" has no backend \"nosuch\"");
    /* Client text comes back escaped and cut. */
    assert_error(harness_call(a, "GET", "/api/v1/pools/a%0A%01%22b", NULL, NULL), 404,
                 "no pool named \"a\\n\\x01\\\"b\"");
    char longname[101];
    memset(longname, 'x', 100);
    longname[100] = '\0';
    assert_error(harness_call(a, "GET", harness_strf("/api/v1/pools/%s", longname), NULL, NULL),
                 404, harness_strf("no pool named \"%.64s...\"", longname));

    /* 405 with Allow */
    struct harness_reply r = harness_call(a, "PUT", "/api/v1/status", NULL, NULL);
    assert_error(r, 405, "method PUT not allowed");
    ck_assert_str_eq(harness_http_header(r.headers, "Allow"), "GET");
    r = harness_call(a, "DELETE", "/api/v1/pools/app/backends/app1", NULL, NULL);
    assert_error(r, 405, "method DELETE not allowed");
    ck_assert_str_eq(harness_http_header(r.headers, "Allow"), "GET, PATCH");
    r = harness_call(a, "GET", "/api/v1/reload", NULL, NULL);
    assert_error(r, 405, "method GET not allowed");
    ck_assert_str_eq(harness_http_header(r.headers, "Allow"), "POST");
    r = harness_call(a, "PATCH", "/api/v1/pools/app", JSON_TYPE, "{}");
    assert_error(r, 405, "method PATCH not allowed");
    ck_assert_str_eq(harness_http_header(r.headers, "Allow"), "GET");

    /* 400 */
    assert_error(patch(a, "app", "app1", "{\"state\": drain}"), 400,
                 "invalid JSON at line 1, column 15: invalid token near 'drain'");
    assert_error(patch(a, "app", "app1", "{\n  \"weight\": 2,\n}"), 400,
                 "invalid JSON at line 3, column 1: string or '}' expected near '}'");
    assert_error(patch(a, "app", "app1", ""), 400,
                 "invalid JSON at line 1, column 0: '[' or '{' expected near end of file");
    assert_error(patch(a, "app", "app1", "{\"state\": \"drain\", \"state\": \"enable\"}"), 400,
                 "invalid JSON at line 1, column 26: duplicate object key near '\"state\"'");
    assert_error(patch(a, "app", "app1", "{\"\x01\": 1}"), 400,
                 "invalid JSON at line 1, column 2: control character 0x1 near '\"'");
    /* jansson quotes the bytes near the error: only printable ASCII comes back. */
    assert_error(patch(a, "app", "app1", "{\"a\": \xc3\xa9}"), 400,
                 "invalid JSON at line 1, column 7: invalid token near '?"
                 "?'");
    assert_error(patch(a, "app", "app1", "[1]"), 400, "the body must be a JSON object");
    assert_error(patch(a, "app", "app1", "{}"), 400, "the body must set \"state\" or \"weight\"");
    const char *bad_state = "\"state\" must be \"drain\", \"disable\" or \"enable\"";
    assert_error(patch(a, "app", "app1", "{\"state\": \"draining\"}"), 400, bad_state);
    assert_error(patch(a, "app", "app1", "{\"state\": 1}"), 400, bad_state);
    const char *bad_weight = "\"weight\" must be an integer from 0 to 256";
    assert_error(patch(a, "app", "app1", "{\"weight\": 257}"), 400, bad_weight);
    assert_error(patch(a, "app", "app1", "{\"weight\": -1}"), 400, bad_weight);
    assert_error(patch(a, "app", "app1", "{\"weight\": 2.0}"), 400, bad_weight);
    assert_error(patch(a, "app", "app1", "{\"weight\": \"2\"}"), 400, bad_weight);
    assert_error(patch(a, "app", "app1", "{\"state\": \"drain\", \"wieght\": 2}"), 400,
                 "unknown key \"wieght\" (expected \"state\" or \"weight\")");
    /* All or nothing: a valid state next to a bad weight changes nothing. */
    assert_error(patch(a, "app", "app1", "{\"state\": \"disable\", \"weight\": 999}"), 400,
                 bad_weight);

    /* 413: over 64 KiB */
    size_t big = 70 * 1024;
    char *body = malloc(big + 1);
    ck_assert(body != NULL);
    memset(body, ' ', big);
    memcpy(body, "{\"weight\": 2}", 13);
    body[big] = '\0';
    r = patch(a, "app", "app1", body);
    free(body);
    assert_error(r, 413, "request body over 65536 bytes");

    /* 415 */
    const char *path = "/api/v1/pools/app/backends/app1";
    const char *bad_type = "Content-Type must be application/json";
    assert_error(harness_call(a, "PATCH", path, NULL, "{\"weight\": 2}"), 415, bad_type);
    assert_error(harness_call(a, "PATCH", path, "Content-Type: text/plain\r\n", "{\"weight\": 2}"),
                 415, bad_type);
    assert_error(
        harness_call(a, "PATCH", path, "Content-Type: application/jsonx\r\n", "{\"weight\": 2}"),
        415, bad_type);

    json_t *b = get_json(a, path, false);
    ck_assert_str_eq(harness_jstr(b, "state"), "up");
    ck_assert_int_eq(harness_jint(b, "weight"), 1);
    ck_assert_int_eq(harness_log_count(s.lb.log, "admin: pool"), 0);

    /* Parameters after the media type are fine. */
    r = harness_call(a, "PATCH", path, "Content-Type: Application/JSON; charset=utf-8\r\n",
                     "{\"weight\": 2}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "weight"), 2);
    stop(&s);
}
END_TEST

START_TEST(bearer_token)
{
    struct setup s;
    start(&s, "roundrobin", backend("app1", "name", 1), NULL, TOKEN);
    int a = s.aport;

    struct harness_reply r = harness_call(a, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_jstr(r.json, "status"), "ok");

    static const char *const wrong[] = {
        NULL,
        "Authorization: Bearer s3cret-tokem\r\n", /* same length */
        "Authorization: Bearer s3cret\r\n",       /* a prefix */
        "Authorization: Bearer s3cret-token2\r\n",
        "Authorization: Basic czNjcmV0LXRva2Vu\r\n",
        "Authorization: " TOKEN "\r\n",
        "Authorization: Bearer\r\n",
    };
    static const char *const paths[] = {"/api/v1/status", "/metrics", "/nope",
                                        "/api/v1/pools/app/backends/app1"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
            r = harness_call(a, "GET", paths[k], wrong[i], NULL);
            assert_error(r, 401, "missing or invalid bearer token");
            ck_assert_str_eq(harness_http_header(r.headers, "WWW-Authenticate"), "Bearer");
        }
    }
    r = harness_call(a, "PATCH", "/api/v1/pools/app/backends/app1", JSON_TYPE,
                     "{\"state\": \"drain\"}");
    assert_error(r, 401, "missing or invalid bearer token");

    ck_assert_int_eq(harness_jint(get_json(a, "/api/v1/status", true), "pid"), s.lb.pid);
    r = harness_call(a, "GET", "/api/v1/status", "Authorization: bearer " TOKEN "\r\n", NULL);
    ck_assert_int_eq(r.status, 200);
    r = harness_call(a, "GET", "/metrics", AUTH, NULL);
    ck_assert_int_eq(r.status, 200);
    assert_error(harness_call(a, "GET", "/nope", AUTH, NULL), 404, "no such path");
    r = harness_call(a, "PATCH", "/api/v1/pools/app/backends/app1", AUTH JSON_TYPE,
                     "{\"state\": \"drain\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "draining");
    stop(&s);
}
END_TEST

START_TEST(backend_lookup)
{
    int p1 = harness_free_port(), p2 = harness_free_port();
    harness_backend("127.0.0.1", p1, "app1", "name");
    harness_backend("127.0.0.1", p2, "anon", "name");
    json_t *backends = harness_jarray(harness_backend_json(harness_lo(p1), "app1"),
                                      harness_backend_json(harness_lo(p2), NULL), NULL);
    int p3 = harness_have_ipv6() ? harness_free_port6() : -1;
    if (p3 > 0) {
        harness_backend("::1", p3, "v6", "name");
        json_array_append_new(backends, harness_backend_json(harness_hostport("::1", p3), NULL));
    }
    struct setup s;
    start(&s, "roundrobin", backends, NULL, NULL);
    int a = s.aport;

    json_t *b = get_json(a, "/api/v1/pools/app/backends/app1", false);
    ck_assert_str_eq(harness_jstr(b, "id"), "app1");
    ck_assert_str_eq(harness_jstr(b, "address"), harness_strf("127.0.0.1:%d", p1));
    /* A named backend is found by its address too. */
    b = get_json(a, harness_strf("/api/v1/pools/app/backends/127.0.0.1:%d", p1), false);
    ck_assert_str_eq(harness_jstr(b, "id"), "app1");
    b = get_json(a, harness_strf("/api/v1/pools/app/backends/127.0.0.1%%3A%d", p1), false);
    ck_assert_str_eq(harness_jstr(b, "id"), "app1");
    /* An unnamed one by its address, its id. */
    b = get_json(a, harness_strf("/api/v1/pools/app/backends/127.0.0.1:%d", p2), false);
    ck_assert_str_eq(harness_jstr(b, "id"), harness_strf("127.0.0.1:%d", p2));
    assert_null(b, "name");
    if (p3 > 0) {
        const char *id = harness_strf("[::1]:%d", p3);
        b = get_json(a, harness_strf("/api/v1/pools/app/backends/%%5B%%3A%%3A1%%5D%%3A%d", p3),
                     false);
        ck_assert_str_eq(harness_jstr(b, "id"), id);
        ck_assert_str_eq(harness_jstr(b, "address"), id);
        b = get_json(a, harness_strf("/api/v1/pools/app/backends/[::1]:%d", p3), false);
        ck_assert_str_eq(harness_jstr(b, "id"), id);
        struct harness_reply r =
            patch(a, "app", harness_strf("%%5b%%3a%%3a1%%5d%%3a%d", p3), "{\"state\": \"drain\"}");
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(harness_jstr(r.json, "state"), "draining");
        ck_assert(harness_log_contains(
            s.lb.log, harness_strf("admin: pool app backend [::1]:%d state drain (was up)", p3)));
    }
    stop(&s);
}
END_TEST

START_TEST(drain_and_enable)
{
    struct setup s;
    start(&s, "roundrobin",
          harness_jarray(backend("echo", "echo", 1), backend("n2", "name", 1),
                         backend("n3", "name", 1), NULL),
          NULL, NULL);
    int client = harness_connect("127.0.0.1", s.lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(client, 0);
    assert_echo(client, "before drain"); /* the first pick is echo */

    struct harness_reply r = patch(s.aport, "app", "echo", "{\"state\": \"drain\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(keys_of(r.json), BACKEND_KEYS);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "draining");
    ck_assert_int_eq(harness_jint(r.json, "active_connections"), 1);
    ck_assert(harness_log_contains(s.lb.log, "info: admin: pool app backend echo state drain "
                                             "(was up)"));
    ck_assert_int_eq(
        harness_jint(get_json(s.aport, "/api/v1/pools/app", false), "available_backends"), 2);

    ck_assert_str_eq(fetch_sequence(s.lport, 4), "n2 n3 n2 n3");
    assert_echo(client, "still open while draining");
    json_t *b = get_json(s.aport, "/api/v1/pools/app/backends/echo", false);
    ck_assert_int_eq(harness_jint(b, "active_connections"), 1);
    ck_assert_int_eq(harness_jint(b, "total_connections"), 1);

    /* Draining again changes (and logs) nothing. */
    ck_assert_int_eq(patch(s.aport, "app", "echo", "{\"state\": \"drain\"}").status, 200);
    ck_assert_int_eq(harness_log_count(s.lb.log, "admin: pool app backend echo state"), 1);

    r = patch(s.aport, "app", "echo", "{\"state\": \"enable\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "up");
    ck_assert(harness_log_contains(s.lb.log, "info: admin: pool app backend echo state enable "
                                             "(was draining)"));
    /* The cycle goes on where it was: echo is next again. */
    int second = harness_connect("127.0.0.1", s.lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(second, 0);
    assert_echo(second, "back in rotation");
    close(second);
    ck_assert_str_eq(fetch_sequence(s.lport, 2), "n2 n3");
    assert_echo(client, "the first session never noticed");
    close(client);
    stop(&s);
}
END_TEST

START_TEST(disable_closes_sessions)
{
    struct setup s;
    start(&s, "roundrobin",
          harness_jarray(backend("echo", "echo", 1), backend("n2", "name", 1), NULL), NULL, NULL);
    int client = harness_connect("127.0.0.1", s.lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(client, 0);
    assert_echo(client, "hello");

    struct harness_reply r = patch(s.aport, "app", "echo", "{\"state\": \"disable\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "disabled");
    ck_assert_int_eq(harness_jint(r.json, "active_connections"), 0);
    ck_assert_msg(harness_wait_closed(client, 2000) >= 0, "the disabled backend's session is open");
    close(client);
    const char *line = harness_log_line(s.lb.log, "reason=\"backend disabled\"");
    ck_assert_msg(line != NULL, "no session end with reason backend disabled in %s", s.lb.log);
    ck_assert_msg(strstr(line, "backend=echo ") != NULL, "%s", line);
    ck_assert(harness_log_contains(s.lb.log,
                                   "info: admin: pool app backend echo state disable (was up)"));

    ck_assert_str_eq(fetch_sequence(s.lport, 3), "n2 n2 n2");
    ck_assert_int_eq(
        harness_jint(get_json(s.aport, "/api/v1/pools/app", false), "available_backends"), 1);

    r = patch(s.aport, "app", "echo", "{\"state\": \"enable\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "up");
    client = harness_connect("127.0.0.1", s.lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(client, 0);
    assert_echo(client, "back"); /* n2 was last, echo is next */
    close(client);
    stop(&s);
}
END_TEST

START_TEST(weight_change)
{
    struct setup s;
    start(&s, "weighted", harness_jarray(backend("a", "name", 1), backend("b", "name", 1), NULL),
          NULL, NULL);
    ck_assert_str_eq(fetch_sequence(s.lport, 4), "a b a b");

    struct harness_reply r = patch(s.aport, "app", "a", "{\"weight\": 3}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "weight"), 3);
    ck_assert_int_eq(harness_jint(r.json, "effective_weight"), 3);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "up");
    ck_assert(harness_log_contains(s.lb.log, "info: admin: pool app backend a weight 3 (was 1)"));
    ck_assert_str_eq(fetch_sequence(s.lport, 8), "a a b a a a b a");

    /* Weight 0: no new connections, like down. */
    r = patch(s.aport, "app", "a", "{\"weight\": 0, \"state\": \"enable\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "weight"), 0);
    ck_assert_int_eq(
        harness_jint(get_json(s.aport, "/api/v1/pools/app", false), "available_backends"), 1);
    ck_assert_str_eq(fetch_sequence(s.lport, 3), "b b b");

    /* Both at once: weight 2 and drain b. */
    r = patch(s.aport, "app", "b", "{\"state\": \"drain\", \"weight\": 2}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "weight"), 2);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "draining");
    ck_assert(harness_log_contains(s.lb.log, "admin: pool app backend b weight 2 (was 1)"));
    ck_assert(harness_log_contains(s.lb.log, "admin: pool app backend b state drain (was up)"));
    ck_assert(harness_log_contains(s.lb.log, "error: pool app has no available backend"));
    stop(&s);
}
END_TEST

START_TEST(counters)
{
    struct setup s;
    start(&s, "roundrobin",
          harness_jarray(backend("sink", "sink", 1), backend("echo", "echo", 1), NULL), NULL, NULL);
    char buf[2000];
    memset(buf, 'x', sizeof(buf));

    /* Session 1 to sink: 1234 bytes out, "1234\n" back. */
    int fd = harness_connect("127.0.0.1", s.lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_send_all(fd, buf, 1234, HARNESS_WAIT_MS));
    shutdown(fd, SHUT_WR);
    char answer[64];
    ck_assert_int_eq(harness_read_eof(fd, answer, sizeof(answer), HARNESS_WAIT_MS), 5);
    ck_assert_str_eq(answer, "1234\n");
    close(fd);
    ck_assert(harness_log_wait(s.lb.log, "session end", 1, HARNESS_WAIT_MS));

    /* Session 2 to echo, still open while we look. */
    fd = harness_connect("127.0.0.1", s.lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_send_all(fd, buf, 1000, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_recv_n(fd, buf, 1000, HARNESS_WAIT_MS), 1000);
    json_t *st = get_json(s.aport, "/api/v1/status", false);
    ck_assert_int_eq(harness_jint(st, "connections.active"), 1);
    ck_assert_int_eq(harness_jint(st, "connections.total"), 2);
    json_t *l = get_json(s.aport, "/api/v1/listeners", false);
    ck_assert_int_eq(harness_jint(l, "listeners.0.active_connections"), 1);
    ck_assert_int_eq(harness_jint(l, "listeners.0.total_connections"), 2);
    json_t *b = get_json(s.aport, "/api/v1/pools/app/backends/echo", false);
    ck_assert_int_eq(harness_jint(b, "active_connections"), 1);
    close(fd);
    ck_assert(harness_log_wait(s.lb.log, "session end", 2, HARNESS_WAIT_MS));

    st = get_json(s.aport, "/api/v1/status", false);
    ck_assert_int_eq(harness_jint(st, "connections.active"), 0);
    ck_assert_int_eq(harness_jint(st, "connections.total"), 2);
    json_t *p = get_json(s.aport, "/api/v1/pools/app", false);
    ck_assert_str_eq(harness_jstr(p, "backends.0.id"), "sink");
    ck_assert_int_eq(harness_jint(p, "backends.0.total_connections"), 1);
    ck_assert_int_eq(harness_jint(p, "backends.0.active_connections"), 0);
    ck_assert_int_eq(harness_jint(p, "backends.0.failed_connections"), 0);
    ck_assert_int_eq(harness_jint(p, "backends.0.bytes_out"), 1234);
    ck_assert_int_eq(harness_jint(p, "backends.0.bytes_in"), 5);
    ck_assert_int_eq(harness_jint(p, "backends.1.total_connections"), 1);
    ck_assert_int_eq(harness_jint(p, "backends.1.active_connections"), 0);
    ck_assert_int_eq(harness_jint(p, "backends.1.bytes_out"), 1000);
    ck_assert_int_eq(harness_jint(p, "backends.1.bytes_in"), 1000);
    ck_assert_int_eq(harness_jint(p, "rejected_connections"), 0);
    stop(&s);
}
END_TEST

START_TEST(health_fields)
{
    int dead = harness_free_port(); /* nothing listens there */
    struct setup s;
    start(&s, "roundrobin",
          harness_jarray(backend("live", "name", 1), harness_backend_json(harness_lo(dead), "dead"),
                         NULL),
          json_pack("{s:s, s:i, s:i, s:i, s:i}", "type", "tcp", "interval_ms", 100, "timeout_ms",
                    500, "rise", 2, "fall", 2),
          NULL);
    ck_assert(harness_log_wait(s.lb.log, "backend dead DOWN", 1, HARNESS_WAIT_MS));

    json_t *p = get_json(s.aport, "/api/v1/pools/app", false);
    json_t *live = harness_jget(p, "backends.0");
    json_t *h = harness_jget(live, "health");
    ck_assert_str_eq(keys_of(h), "checks status last_check last_check_duration_ms last_error "
                                 "consecutive_successes consecutive_failures transitions ejected");
    ck_assert_str_eq(harness_jstr(h, "checks"), "tcp");
    ck_assert_str_eq(harness_jstr(h, "status"), "up");
    const char *at = harness_jstr(h, "last_check");
    int y, mo, d, hh, mi, sec, ms;
    char z;
    ck_assert_int_eq(strlen(at), 24);
    ck_assert_int_eq(
        sscanf(at, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &hh, &mi, &sec, &ms, &z), 8);
    ck_assert_int_eq(z, 'Z');
    ck_assert(json_is_real(harness_jget(h, "last_check_duration_ms")));
    ck_assert(json_real_value(harness_jget(h, "last_check_duration_ms")) >= 0);
    assert_null(h, "last_error");
    ck_assert_int_ge(harness_jint(h, "consecutive_successes"), 1);
    ck_assert_int_eq(harness_jint(h, "consecutive_failures"), 0);
    ck_assert_int_eq(harness_jint(h, "transitions"), 0);
    ck_assert(json_is_false(harness_jget(h, "ejected")));
    ck_assert_str_eq(harness_jstr(live, "state"), "up");

    json_t *dh = harness_jget(p, "backends.1.health");
    ck_assert_str_eq(harness_jstr(p, "backends.1.state"), "down");
    ck_assert_str_eq(harness_jstr(dh, "status"), "down");
    ck_assert_str_eq(harness_jstr(dh, "last_error"), "connection refused");
    ck_assert_int_ge(harness_jint(dh, "consecutive_failures"), 2);
    ck_assert_int_eq(harness_jint(dh, "consecutive_successes"), 0);
    ck_assert_int_eq(harness_jint(dh, "transitions"), 1);
    ck_assert_int_eq(harness_jint(p, "available_backends"), 1);

    /* An operator's state shows over health; enable hands back to health. */
    struct harness_reply r = patch(s.aport, "app", "dead", "{\"state\": \"disable\"}");
    ck_assert_str_eq(harness_jstr(r.json, "state"), "disabled");
    ck_assert(harness_log_contains(s.lb.log, "admin: pool app backend dead state disable (was "
                                             "down)"));
    r = patch(s.aport, "app", "dead", "{\"state\": \"enable\"}");
    ck_assert_str_eq(harness_jstr(r.json, "state"), "down");
    ck_assert_int_eq(
        harness_jint(get_json(s.aport, "/api/v1/pools/app", false), "available_backends"), 1);
    stop(&s);
}
END_TEST

START_TEST(bind_failure)
{
    int lport = harness_free_port();
    int aport = harness_free_port();
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)aport)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(busy, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(busy, 1), 0);
    json_t *cfg = admin_config(&(struct harness_conf){.listen = harness_lo(lport)}, aport, NULL);
    harness_jappend(cfg, "pools.0.backends", harness_backend_json("127.0.0.1:1", NULL));
    const char *path = harness_write_file("busy.json", harness_jtext(cfg));
    const char *out, *err;
    char *argv[] = {LB_BUILD_DIR "/lb", "-c", (char *)path, NULL};
    int status = harness_run(argv, &out, &err, HARNESS_WAIT_MS);
    close(busy);
    ck_assert_int_eq(status, 1);
    ck_assert_msg(
        strstr(err, harness_strf("admin: cannot listen on 127.0.0.1:%d: Address already in use",
                                 aport)) != NULL,
        "stderr: %s", err);
    harness_assert_no_sanitizer_report(err, "lb stderr");
    ck_assert(!harness_port_listening(lport));
}
END_TEST

START_TEST(large_pool)
{
    enum { N = 10000 };
    /* Nobody listens on these: no checks and no traffic, only the API. */
    json_t *backends = json_array();
    for (int i = 0; i < N; i++) {
        char address[32];
        snprintf(address, sizeof(address), "127.0.0.%d:%d", 2 + i / 5000, 20000 + i % 5000);
        json_array_append_new(backends, harness_backend_json(address, NULL));
    }
    struct setup s;
    start(&s, "weighted", backends, NULL, NULL);

    long t0 = harness_now_ms();
    json_t *pools = get_json(s.aport, "/api/v1/pools", false);
    long took = harness_now_ms() - t0;
    ck_assert_int_eq(json_array_size(harness_jget(pools, "pools.0.backends")), N);
    ck_assert_str_eq(harness_jstr(pools, "pools.0.backends.9999.id"), "127.0.0.3:24999");
    bool timed = !HARNESS_WRAPPED_SKIPS_CHECK("the times of GET and PATCH on 10000 backends");
    if (timed)
        ck_assert_msg(took < 3000, "GET /api/v1/pools of %d backends took %ld ms", N, took);

    t0 = harness_now_ms();
    struct harness_reply r = patch(s.aport, "app", "127.0.0.3:24999", "{\"weight\": 7}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "weight"), 7);
    if (timed)
        ck_assert_int_lt(harness_now_ms() - t0, 1000);
    r = harness_call(s.aport, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    stop(&s);
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc;
#define ADD_TCASE(name, fn)                                                                        \
    tc = harness_tcase(name);                                                                      \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    ADD_TCASE("read", read_endpoints);
    ADD_TCASE("errors", error_statuses);
    ADD_TCASE("token", bearer_token);
    ADD_TCASE("lookup", backend_lookup);
    ADD_TCASE("drain", drain_and_enable);
    ADD_TCASE("disable", disable_closes_sessions);
    ADD_TCASE("weight", weight_change);
    ADD_TCASE("counters", counters);
    ADD_TCASE("health", health_fields);
    ADD_TCASE("bind", bind_failure);
    ADD_TCASE("large", large_pool);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(admin_suite)
