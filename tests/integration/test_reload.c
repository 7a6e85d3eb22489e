/* Integration: hot reload (SIGHUP and POST /api/v1/reload) of a real lb in
 * front of real demo backends. Connections keep flowing through thousands of
 * connects and 20 reloads; a long stream survives the removal of its
 * backend byte-exact; a bad file or a busy port changes nothing and says
 * why; health, drain, weight overrides and counters carry over by identity;
 * 200 reloads leak no descriptor; a burst of SIGHUPs coalesces safely. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"
#include "tests/prom_check.h"

#define RELOAD_TCASE_TIMEOUT 120
#define JSON_TYPE "Content-Type: application/json\r\n"
#define RESULT_KEYS                                                                                \
    "status generation listeners_added listeners_removed backends_added backends_removed"

/* --- config documents ---
 * Every piece is kept until teardown and may go into several documents:
 * list(), pool_json() and conf() put copies in what they build. */

static json_t *backend_json(const char *name, int port, unsigned weight)
{
    return harness_jkeep(harness_backend_weighted(harness_lo(port), name, (int)weight));
}

static json_t *listener_json(const char *name, int port, const char *pool)
{
    return harness_jkeep(harness_listener_json(name, harness_lo(port), pool));
}

/* An array of copies of the values up to NULL. */
static json_t *list(json_t *first, ...)
{
    json_t *a = harness_jkeep(json_array());
    va_list ap;
    va_start(ap, first);
    for (json_t *v = first; v; v = va_arg(ap, json_t *))
        json_array_append_new(a, json_deep_copy(v));
    va_end(ap);
    return a;
}

/* A copy of v in an array: v itself when it is one. */
static json_t *array_copy(json_t *v)
{
    return json_is_array(v) ? json_deep_copy(v) : harness_jarray(json_deep_copy(v), NULL);
}

/* extra: an object of more pool keys (NULL: none); backends: one backend
 * or an array of them. */
static json_t *pool_json(const char *name, const char *strategy, json_t *extra, json_t *backends)
{
    json_t *p = harness_jkeep(
        json_pack("{s:s, s:s, s:i}", "name", name, "strategy", strategy, "retries", 1));
    if (extra) {
        json_t *copy = json_deep_copy(extra);
        json_object_update(p, copy);
        json_decref(copy);
    }
    json_object_set_new(p, "backends", array_copy(backends));
    return p;
}

/* A whole file: the admin API on aport, then listeners and pools (each one
 * object or an array of them). */
static json_t *conf(int aport, json_t *listeners, json_t *pools)
{
    json_t *c = json_pack("{s:{s:s}, s:{s:s}, s:i, s:o, s:o}", "admin", "listen", harness_lo(aport),
                          "log", "level", "info", "shutdown_grace_ms", 2000, "listeners",
                          array_copy(listeners), "pools", array_copy(pools));
    ck_assert(c != NULL);
    return harness_jkeep(c);
}

/* --- lb --- */

/* Starts lb and waits until it has logged its start, i.e. its SIGHUP
 * handler is in place (a SIGHUP before that would kill it). */
static void lb_start(struct harness_lb *lb, json_t *config, int lport, int aport)
{
    harness_lb_start_json(lb, config, lport);
    ck_assert_msg(harness_log_wait(lb->log, "started (pid", 1, HARNESS_WAIT_MS),
                  "lb never logged its start; log %s", lb->log);
    ck_assert(harness_wait_listening(aport, HARNESS_WAIT_MS));
}

static const char *ok_line(int generation, int la, int lr, int ba, int br)
{
    return harness_strf("info: reload ok: generation %d (listeners +%d -%d, backends +%d -%d)",
                        generation, la, lr, ba, br);
}

/* SIGHUP, then waits for the (ok_before + 1)th "reload ok" line and checks
 * it is exactly this one. */
static void hup_ok(struct harness_lb *lb, int generation, int la, int lr, int ba, int br)
{
    int before = harness_log_count(lb->log, "reload ok");
    harness_lb_signal(lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb->log, "reload ok", before + 1, HARNESS_WAIT_MS),
                  "no reload ok line %d after SIGHUP; log %s", before + 1, lb->log);
    const char *want = ok_line(generation, la, lr, ba, br);
    ck_assert_msg(harness_log_count(lb->log, want) == 1, "no line '%s' in %s", want, lb->log);
}

static json_t *get_json(int port, const char *path)
{
    struct harness_reply r = harness_call(port, "GET", path, NULL, NULL);
    ck_assert_msg(r.status == 200, "GET %s: status %d: %s", path, r.status, r.body);
    ck_assert_msg(r.json != NULL, "GET %s: not JSON: %s", path, r.body);
    return r.json;
}

static struct harness_reply patch(int port, const char *backend, const char *body)
{
    return harness_call(port, "PATCH", harness_strf("/api/v1/pools/app/backends/%s", backend),
                        JSON_TYPE, body);
}

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

/* The backend with this id in a pool object; fails when absent. */
static json_t *find_backend(json_t *pool, const char *id)
{
    json_t *list = harness_jget(pool, "backends");
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b)
    {
        if (strcmp(harness_jstr(b, "id"), id) == 0)
            return b;
    }
    ck_abort_msg("pool has no backend %s", id);
    return NULL;
}

static bool pool_has_backend(json_t *pool, const char *id)
{
    json_t *list = harness_jget(pool, "backends");
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b)
    {
        if (strcmp(harness_jstr(b, "id"), id) == 0)
            return true;
    }
    return false;
}

/* POST /api/v1/reload, expecting success with exactly these numbers. */
static void post_ok(int aport, int generation, int la, int lr, int ba, int br)
{
    struct harness_reply r = harness_call(aport, "POST", "/api/v1/reload", NULL, NULL);
    ck_assert_msg(r.status == 200, "POST /api/v1/reload: status %d: %s", r.status, r.body);
    ck_assert_msg(r.json != NULL, "reload answer is not JSON: %s", r.body);
    ck_assert_str_eq(keys_of(r.json), RESULT_KEYS);
    ck_assert_str_eq(harness_jstr(r.json, "status"), "ok");
    ck_assert_int_eq(harness_jint(r.json, "generation"), generation);
    ck_assert_int_eq(harness_jint(r.json, "listeners_added"), la);
    ck_assert_int_eq(harness_jint(r.json, "listeners_removed"), lr);
    ck_assert_int_eq(harness_jint(r.json, "backends_added"), ba);
    ck_assert_int_eq(harness_jint(r.json, "backends_removed"), br);
}

/* POST /api/v1/reload, expecting 400 {"error": message}. */
static void post_fails(int aport, const char *message)
{
    struct harness_reply r = harness_call(aport, "POST", "/api/v1/reload", NULL, NULL);
    ck_assert_msg(r.status == 400, "POST /api/v1/reload: status %d, expected 400: %s", r.status,
                  r.body);
    ck_assert_msg(r.json != NULL, "reload error is not JSON: %s", r.body);
    ck_assert_str_eq(keys_of(r.json), "error");
    ck_assert_str_eq(harness_jstr(r.json, "error"), message);
}

static double metric(int aport, const char *series)
{
    struct harness_reply r = harness_call(aport, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    char err[512];
    ck_assert_msg(prom_check(r.body, err, sizeof(err)), "bad /metrics: %s", err);
    double v;
    ck_assert_msg(prom_value(r.body, series, &v), "no %s in /metrics", series);
    return v;
}

/* --- traffic --- */

static const char *fetch(int port)
{
    const char *name = harness_fetch_name(NULL, "127.0.0.1", port);
    ck_assert_msg(name != NULL, "no answer through lb on port %d", port);
    return name;
}

/* How often each of names (space separated) answers count connections;
 * fails on any other answer. Returns "name=N ..." in the order of names. */
static const char *tally(int port, int count, const char *names)
{
    char list[256];
    snprintf(list, sizeof(list), "%s", names);
    const char *seen[16];
    int hits[16] = {0}, n = 0;
    char *save = NULL;
    for (char *w = strtok_r(list, " ", &save); w && n < 16; w = strtok_r(NULL, " ", &save))
        seen[n++] = harness_strf("%s", w);
    for (int i = 0; i < count; i++) {
        const char *name = fetch(port);
        int k = 0;
        while (k < n && strcmp(seen[k], name) != 0)
            k++;
        ck_assert_msg(k < n, "connection %d answered by %s, expected one of %s", i, name, names);
        hits[k]++;
    }
    const char *out = "";
    for (int k = 0; k < n; k++)
        out = harness_strf("%s%s%s=%d", out, k ? " " : "", seen[k], hits[k]);
    return out;
}

static void assert_refused(int port)
{
    int fd = harness_connect("127.0.0.1", port, 1000);
    int err = errno;
    if (fd >= 0)
        close(fd);
    ck_assert_msg(fd < 0 && err == ECONNREFUSED, "port %d: connect %s", port,
                  fd >= 0 ? "succeeded" : strerror(err));
    ck_assert(!harness_port_listening(port));
}

/* Sends text on fd and expects it echoed back. */
static void assert_echo(int fd, const char *text)
{
    size_t len = strlen(text);
    char buf[256];
    ck_assert(len <= sizeof(buf));
    ck_assert(harness_send_all(fd, text, len, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_recv_n(fd, buf, len, HARNESS_WAIT_MS), (ssize_t)len);
    ck_assert(memcmp(buf, text, len) == 0);
}

static int start_backend(const char *name, const char *mode)
{
    int port = harness_free_port();
    harness_backend("127.0.0.1", port, name, mode);
    return port;
}

/* ===== 1. thousands of connects through 20 SIGHUPs ===== */

#define FLIP_RELOADS 20
#define FLIP_STEP 100 /* connections between two reloads */

START_TEST(connects_through_sighups)
{
    int x[3], y[3];
    for (int i = 0; i < 3; i++) {
        x[i] = start_backend(harness_strf("x%d", i + 1), "name");
        y[i] = start_backend(harness_strf("y%d", i + 1), "name");
    }
    int lport = harness_free_port(), aport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    json_t *cx = conf(aport, web,
                      pool_json("app", "roundrobin", NULL,
                                list(backend_json("x1", x[0], 1), backend_json("x2", x[1], 1),
                                     backend_json("x3", x[2], 1), NULL)));
    json_t *cy = conf(aport, web,
                      pool_json("app", "roundrobin", NULL,
                                list(backend_json("y1", y[0], 1), backend_json("y2", y[1], 1),
                                     backend_json("y3", y[2], 1), NULL)));
    struct harness_lb lb;
    lb_start(&lb, cy, lport, aport);
    ck_assert_str_eq(tally(lport, 3, "y1 y2 y3"), "y1=1 y2=1 y3=1");

    /* Every connection answered by x1..x3 or y1..y3, then closed. */
    static const char *const names[] = {"x1\n", "x2\n", "x3\n", "y1\n", "y2\n", "y3\n", NULL};
    struct harness_loop *st = harness_loop_start(lport, names);

    /* Odd reloads switch to x, even ones back to y: the last is y. */
    for (int i = 1; i <= FLIP_RELOADS; i++) {
        harness_loop_progress(st, FLIP_STEP);
        harness_lb_rewrite_json(&lb, i % 2 ? cx : cy);
        harness_lb_signal(&lb, SIGHUP);
        ck_assert_msg(harness_log_wait(lb.log, "reload ok", i, HARNESS_WAIT_MS),
                      "reload %d: no reload ok line; log %s", i, lb.log);
    }
    harness_loop_progress(st, FLIP_STEP);
    struct harness_loop done = harness_loop_stop(st);
    long from_x = done.answered[0] + done.answered[1] + done.answered[2];
    long from_y = done.answered[3] + done.answered[4] + done.answered[5];

    ck_assert_msg(done.failed == 0, "%ld of %ld connections failed; first: %s", done.failed,
                  done.ok + done.failed, done.first_error);
    ck_assert_int_ge(done.ok, (FLIP_RELOADS + 1) * FLIP_STEP);
    ck_assert_int_eq(done.ok, from_x + from_y);
    ck_assert_msg(from_x > 0 && from_y > 0, "x answered %ld, y %ld", from_x, from_y);

    /* The last reload went to y: only y answers now. */
    ck_assert_str_eq(tally(lport, 30, "y1 y2 y3"), "y1=10 y2=10 y3=10");
    ck_assert_int_eq(harness_log_count(lb.log, "reload ok"), FLIP_RELOADS);
    for (int g = 2; g <= FLIP_RELOADS + 1; g++)
        ck_assert_msg(harness_log_count(lb.log, ok_line(g, 0, 0, 3, 3)) == 1, "no line '%s' in %s",
                      ok_line(g, 0, 0, 3, 3), lb.log);
    ck_assert_int_eq(harness_log_count(lb.log, "reload failed"), 0);
    ck_assert_int_eq(harness_log_count(lb.log, "connect failed"), 0);
    json_t *stj = get_json(aport, "/api/v1/status");
    ck_assert_int_eq(harness_jint(stj, "reloads.ok"), FLIP_RELOADS);
    ck_assert_int_eq(harness_jint(stj, "reloads.failed"), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 2. a long stream through 10 reloads, one removing its backend ===== */

#define STREAM_TOTAL (32ull * 1024 * 1024)
#define STREAM_RELOADS 10
#define STREAM_DEADLINE_MS 60000

struct stream_env {
    struct harness_lb lb;
    int aport, lport, sport;
    int echo, n1, n2, n3;
    int step; /* the next reload */
};

/* The file for each step: 0 is the start; step i is what reload i loads. */
static json_t *stream_conf(const struct stream_env *e, int step)
{
    json_t *echo = backend_json("echo", e->echo, step == 3 ? 2 : 1);
    json_t *n1 = backend_json("n1", e->n1, step >= 3 ? 3 : 1);
    json_t *n2 = backend_json("n2", e->n2, 1);
    json_t *n3 = backend_json("n3", e->n3, 1);
    json_t *web = listener_json("web", e->lport, "app");
    if (step >= 7) {
        harness_jset(web, "idle_timeout_ms", json_integer(60000));
        harness_jset(web, "max_connections", json_integer(100));
    }
    json_t *listeners =
        step >= 6 && step <= 7 ? list(web, listener_json("side", e->sport, "app"), NULL) : web;
    json_t *extra =
        step >= 7 ? harness_jkeep(json_pack("{s:i}", "connect_timeout_ms", 1000)) : NULL;
    const char *strategy;
    json_t *backends;
    switch (step) {
    case 0:
    case 1:
        strategy = "roundrobin";
        backends = list(echo, n1, n2, NULL);
        break;
    case 2:
        strategy = "leastconn";
        backends = list(echo, n1, n2, NULL);
        break;
    case 3:
        strategy = "weighted";
        backends = list(echo, n1, n2, NULL);
        break;
    case 4:
        strategy = "weighted";
        backends = list(n1, n2, NULL);
        break;
    case 5:
    case 6:
    case 7:
    case 8:
        strategy = "iphash";
        backends = list(n1, n2, NULL);
        break;
    case 9:
        strategy = "iphash";
        backends = list(n1, n2, n3, NULL);
        break;
    default:
        strategy = "roundrobin";
        backends = list(n1, n2, n3, NULL);
        break;
    }
    return conf(e->aport, listeners, pool_json("app", strategy, extra, backends));
}

/* Reload step (1..10), odd ones by SIGHUP and even ones by the API, and
 * what each must have changed; then checks made while the stream runs. */
static void stream_reload(struct stream_env *e, int step)
{
    static const int delta[STREAM_RELOADS + 1][4] = {
        {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 0},
        {1, 0, 0, 0}, {0, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 0},
    };
    const int *d = delta[step];
    harness_lb_rewrite_json(&e->lb, stream_conf(e, step));
    if (step % 2)
        hup_ok(&e->lb, step + 1, d[0], d[1], d[2], d[3]);
    else {
        post_ok(e->aport, step + 1, d[0], d[1], d[2], d[3]);
        const char *want = ok_line(step + 1, d[0], d[1], d[2], d[3]);
        ck_assert_msg(harness_log_count(e->lb.log, want) == 1, "no line '%s'", want);
    }
    json_t *pool = get_json(e->aport, "/api/v1/pools/app");
    switch (step) {
    case 3: {
        /* Still the same backend: the stream is its one connection. */
        json_t *b = find_backend(pool, "echo");
        ck_assert_int_eq(harness_jint(b, "active_connections"), 1);
        ck_assert_int_eq(harness_jint(b, "total_connections"), 1);
        ck_assert_int_eq(harness_jint(b, "weight"), 2);
        ck_assert_str_eq(harness_jstr(pool, "strategy"), "weighted");
        break;
    }
    case 4:
        /* Removed: gone from the API, no new connection reaches it. */
        ck_assert(!pool_has_backend(pool, "echo"));
        ck_assert_str_eq(tally(e->lport, 8, "n1 n2"), "n1=6 n2=2");
        break;
    case 6:
        tally(e->sport, 2, "n1 n2");
        break;
    case 8:
        assert_refused(e->sport);
        break;
    case 10:
        ck_assert_str_eq(harness_jstr(pool, "strategy"), "roundrobin");
        ck_assert_str_eq(tally(e->lport, 6, "n1 n2 n3"), "n1=2 n2=2 n3=2");
        break;
    default:
        break;
    }
}

/* Reload i once i elevenths of the stream came back. */
static void reload_step(void *arg, uint64_t received)
{
    struct stream_env *e = arg;
    if (e->step <= STREAM_RELOADS && received >= e->step * (STREAM_TOTAL / (STREAM_RELOADS + 1)))
        stream_reload(e, e->step++);
}

START_TEST(stream_survives_reloads)
{
    struct stream_env e;
    e.echo = start_backend("echo", "echo");
    e.n1 = start_backend("n1", "name");
    e.n2 = start_backend("n2", "name");
    e.n3 = start_backend("n3", "name");
    e.lport = harness_free_port();
    e.sport = harness_free_port();
    e.aport = harness_free_port();
    lb_start(&e.lb, stream_conf(&e, 0), e.lport, e.aport);

    int fd = harness_connect_ok("127.0.0.1", e.lport);
    e.step = 1;
    harness_stream_echo(fd, STREAM_TOTAL, STREAM_DEADLINE_MS, reload_step, &e);
    close(fd);
    ck_assert_int_eq(e.step, STREAM_RELOADS + 1);

    const char *end = harness_strf("listener=web pool=app backend=echo bytes_from_client=%llu "
                                   "bytes_from_backend=%llu ",
                                   STREAM_TOTAL, STREAM_TOTAL);
    ck_assert_msg(harness_log_wait(e.lb.log, end, 1, HARNESS_WAIT_MS),
                  "no session end line with '%s' in %s", end, e.lb.log);
    ck_assert_msg(strstr(harness_log_line(e.lb.log, end), "reason=\"client closed\"") != NULL, "%s",
                  harness_log_line(e.lb.log, end));
    /* The stream was the removed backend's one and only session. */
    ck_assert_int_eq(harness_log_count(e.lb.log, "backend=echo "), 1);
    ck_assert_int_eq(harness_log_count(e.lb.log, "reload ok"), STREAM_RELOADS);
    ck_assert_int_eq(harness_log_count(e.lb.log, "reload failed"), 0);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* ===== 3. an invalid file changes nothing and says where ===== */

/* file:line:col of the first occurrence of needle in text (1-based, bytes). */
static const char *position_of(const char *file, const char *text, const char *needle)
{
    const char *hit = strstr(text, needle);
    ck_assert_msg(hit != NULL, "'%s' not in the config", needle);
    int line = 1;
    const char *line_start = text;
    for (const char *p = text; p < hit; p++)
        if (*p == '\n') {
            line++;
            line_start = p + 1;
        }
    return harness_strf("%s:%d:%d", file, line, (int)(hit - line_start) + 1);
}

START_TEST(invalid_file_changes_nothing)
{
    int pa = start_backend("a", "name"), pb = start_backend("b", "name"),
        pc = start_backend("c", "name");
    int lport = harness_free_port(), aport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    json_t *good = conf(aport, web,
                        pool_json("app", "roundrobin", NULL,
                                  list(backend_json("a", pa, 1), backend_json("b", pb, 1), NULL)));
    struct harness_lb lb;
    lb_start(&lb, good, lport, aport);
    ck_assert_str_eq(tally(lport, 4, "a b"), "a=2 b=2");

    /* A bad weight on b; the file also adds c, which must not appear. The
     * text is literal: the error names its line and column. */
    const char *bad = harness_strf(
        "{\n"
        "  \"admin\": {\"listen\": \"127.0.0.1:%d\"},\n"
        "  \"log\": {\"level\": \"info\"},\n"
        "  \"shutdown_grace_ms\": 2000,\n"
        "  \"listeners\": [\n"
        "    {\"name\": \"web\", \"listen\": \"127.0.0.1:%d\", \"pool\": \"app\"}\n"
        "  ],\n"
        "  \"pools\": [\n"
        "    {\"name\": \"app\", \"strategy\": \"weighted\", \"retries\": 1, \"backends\": "
        "[{\"address\": \"127.0.0.1:%d\", \"name\": \"a\", \"weight\": 1},\n"
        "      {\"address\": \"127.0.0.1:%d\", \"name\": \"b\", \"weight\": -4}, "
        "{\"address\": \"127.0.0.1:%d\", \"name\": \"c\", \"weight\": 1}]}\n"
        "  ]\n"
        "}\n",
        aport, lport, pa, pb, pc);
    const char *error = harness_strf("%s: pools[0].backends[1].weight: must be an integer from 0 "
                                     "to 256 (got -4)",
                                     position_of(lb.config, bad, "-4}"));
    harness_lb_rewrite(&lb, bad);
    harness_lb_signal(&lb, SIGHUP);
    const char *logged = harness_strf("error: reload failed: %s", error);
    ck_assert_msg(harness_log_wait(lb.log, logged, 1, HARNESS_WAIT_MS), "no line '%s' in %s",
                  logged, lb.log);
    ck_assert_str_eq(tally(lport, 4, "a b"), "a=2 b=2");
    json_t *st = get_json(aport, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "reloads.ok"), 0);
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 1);
    ck_assert_str_eq(harness_jstr(st, "reloads.last_error"), error);
    json_t *pool = get_json(aport, "/api/v1/pools/app");
    ck_assert_str_eq(harness_jstr(pool, "strategy"), "roundrobin");
    ck_assert_int_eq(json_array_size(harness_jget(pool, "backends")), 2);
    ck_assert(!pool_has_backend(pool, "c"));

    /* The same through the API: 400 with the same text. */
    post_fails(aport, error);
    ck_assert_int_eq(harness_log_count(lb.log, logged), 2);
    st = get_json(aport, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 2);
    ck_assert_str_eq(harness_jstr(st, "reloads.last_error"), error);
    ck_assert(metric(aport, "lb_reloads_total{result=\"failed\"}") == 2);
    ck_assert(metric(aport, "lb_reloads_total{result=\"ok\"}") == 0);
    ck_assert_str_eq(tally(lport, 2, "a b"), "a=1 b=1");
    ck_assert_int_eq(harness_log_count(lb.log, "reload ok"), 0);

    /* Fixed: c with weight 2, weighted: exact shares from now on. */
    harness_lb_rewrite_json(&lb,
                            conf(aport, web,
                                 pool_json("app", "weighted", NULL,
                                           list(backend_json("a", pa, 1), backend_json("b", pb, 1),
                                                backend_json("c", pc, 2), NULL))));
    post_ok(aport, 2, 0, 0, 1, 0);
    ck_assert_int_eq(harness_log_count(lb.log, ok_line(2, 0, 0, 1, 0)), 1);
    st = get_json(aport, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "reloads.ok"), 1);
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 2);
    ck_assert_msg(json_is_null(harness_jget(st, "reloads.last_error")),
                  "last_error not null after a good "
                  "reload");
    ck_assert(metric(aport, "lb_reloads_total{result=\"ok\"}") == 1);
    ck_assert(metric(aport, "lb_reloads_total{result=\"failed\"}") == 2);
    ck_assert_str_eq(harness_jstr(get_json(aport, "/api/v1/pools/app"), "strategy"), "weighted");
    ck_assert_str_eq(tally(lport, 8, "a b c"), "a=2 b=2 c=4");

    /* A missing file fails without a position, and changes nothing. */
    ck_assert_int_eq(unlink(lb.config), 0);
    const char *missing = harness_strf("%s: cannot read: No such file or directory", lb.config);
    post_fails(aport, missing);
    ck_assert(harness_log_contains(lb.log, harness_strf("error: reload failed: %s", missing)));
    ck_assert_str_eq(harness_jstr(get_json(aport, "/api/v1/status"), "reloads.last_error"),
                     missing);
    ck_assert_str_eq(tally(lport, 4, "a b c"), "a=1 b=1 c=2");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 3b. a FIFO in the config's place fails the reload at once ===== */

/* A reload runs on the loop: opening a FIFO with no writer must not block
 * it. The reload fails with the reason, lb keeps serving, and a good file
 * reloads again afterwards. */
START_TEST(fifo_fails_reload)
{
    int pa = start_backend("a", "name"), pb = start_backend("b", "name");
    int lport = harness_free_port(), aport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    struct harness_lb lb;
    lb_start(&lb, conf(aport, web, pool_json("app", "roundrobin", NULL, backend_json("a", pa, 1))),
             lport, aport);
    ck_assert_str_eq(tally(lport, 2, "a"), "a=2");

    ck_assert_int_eq(unlink(lb.config), 0);
    ck_assert_int_eq(mkfifo(lb.config, 0600), 0);
    const char *error = harness_strf("%s: not a regular file (a FIFO)", lb.config);
    const char *logged =
        harness_strf("error: reload failed: %s (generation 1 stays in force)", error);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb.log, logged, 1, 1000), "no line '%s' within 1 s in %s",
                  logged, lb.log);
    ck_assert_str_eq(tally(lport, 3, "a"), "a=3");
    json_t *st = get_json(aport, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 1);
    ck_assert_str_eq(harness_jstr(st, "reloads.last_error"), error);

    ck_assert_int_eq(unlink(lb.config), 0);
    harness_lb_rewrite_json(
        &lb, conf(aport, web,
                  pool_json("app", "roundrobin", NULL,
                            list(backend_json("a", pa, 1), backend_json("b", pb, 1), NULL))));
    hup_ok(&lb, 2, 0, 0, 1, 0);
    ck_assert_str_eq(tally(lport, 4, "a b"), "a=2 b=2");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 4. a busy port rejects the whole reload ===== */

static int bind_busy(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    return fd;
}

START_TEST(busy_port_rejects_reload)
{
    int pa = start_backend("a", "name"), pb = start_backend("b", "name");
    int lport = harness_free_port(), aport = harness_free_port();
    int eport = harness_free_port(), bport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    struct harness_lb lb;
    lb_start(&lb, conf(aport, web, pool_json("app", "roundrobin", NULL, backend_json("a", pa, 1))),
             lport, aport);
    ck_assert_str_eq(fetch(lport), "a");

    /* "extra" comes first, so it is bound before "busy" fails. */
    int busy = bind_busy(bport);
    harness_lb_rewrite_json(
        &lb, conf(aport,
                  list(web, listener_json("extra", eport, "app"),
                       listener_json("busy", bport, "app"), NULL),
                  pool_json("app", "roundrobin", NULL,
                            list(backend_json("a", pa, 1), backend_json("b", pb, 1), NULL))));
    const char *error =
        harness_strf("listener busy: cannot listen on 127.0.0.1:%d: Address already in use", bport);
    const char *logged = harness_strf("error: reload failed: %s", error);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb.log, logged, 1, HARNESS_WAIT_MS), "no line '%s' in %s",
                  logged, lb.log);
    /* The old config is whole: web serves a only, extra was never opened. */
    ck_assert_str_eq(tally(lport, 4, "a b"), "a=4 b=0");
    assert_refused(eport);
    json_t *st = get_json(aport, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 1);
    ck_assert_int_eq(harness_jint(st, "reloads.ok"), 0);
    ck_assert_str_eq(harness_jstr(st, "reloads.last_error"), error);
    ck_assert_int_eq(
        json_array_size(harness_jget(get_json(aport, "/api/v1/listeners"), "listeners")), 1);

    post_fails(aport, error);
    ck_assert_int_eq(harness_jint(get_json(aport, "/api/v1/status"), "reloads.failed"), 2);
    assert_refused(eport);
    ck_assert_str_eq(fetch(lport), "a");

    /* Once the port is free the same file loads. */
    close(busy);
    post_ok(aport, 2, 2, 0, 1, 0);
    ck_assert_str_eq(tally(lport, 2, "a b"), "a=1 b=1");
    ck_assert_str_eq(tally(eport, 2, "a b"), "a=1 b=1");
    ck_assert_str_eq(tally(bport, 2, "a b"), "a=1 b=1");
    ck_assert_int_eq(
        json_array_size(harness_jget(get_json(aport, "/api/v1/listeners"), "listeners")), 3);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 5. health, drain and weight overrides carry over ===== */

START_TEST(health_and_overrides_survive)
{
    int pa = start_backend("a", "name"), pc = start_backend("c", "name"),
        pd = start_backend("d", "name");
    int pb = harness_free_port();
    pid_t bpid = harness_backend("127.0.0.1", pb, "b", "name");
    int lport = harness_free_port(), aport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    json_t *check =
        harness_jkeep(json_pack("{s:{s:s, s:i, s:i, s:i, s:i}}", "health_check", "type", "tcp",
                                "interval_ms", 100, "timeout_ms", 1000, "rise", 2, "fall", 2));
    struct harness_lb lb;
    lb_start(&lb,
             conf(aport, web,
                  pool_json("app", "weighted", check,
                            list(backend_json("a", pa, 1), backend_json("b", pb, 1),
                                 backend_json("c", pc, 1), NULL))),
             lport, aport);
    ck_assert_str_eq(tally(lport, 3, "a b c"), "a=1 b=1 c=1");

    kill(bpid, SIGKILL);
    ck_assert_int_eq(harness_wait_exit(bpid, HARNESS_WAIT_MS), -1);
    ck_assert_msg(harness_log_wait(lb.log, "warn: pool app backend b DOWN: ", 1, HARNESS_WAIT_MS),
                  "b never went down; log %s", lb.log);
    struct harness_reply r = patch(aport, "c", "{\"state\": \"drain\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "draining");
    r = patch(aport, "a", "{\"weight\": 5}");
    ck_assert_int_eq(r.status, 200);
    json_t *before = get_json(aport, "/api/v1/pools/app");
    long long b_transitions = harness_jint(find_backend(before, "b"), "health.transitions");
    long long c_total = harness_jint(find_backend(before, "c"), "total_connections");

    /* Same pool, a's file weight changed (the override wins), d added. */
    harness_lb_rewrite_json(
        &lb, conf(aport, web,
                  pool_json("app", "weighted", check,
                            list(backend_json("a", pa, 3), backend_json("b", pb, 1),
                                 backend_json("c", pc, 1), backend_json("d", pd, 1), NULL))));
    post_ok(aport, 2, 0, 0, 1, 0);
    harness_sleep_ms(600); /* several check intervals */

    json_t *after = get_json(aport, "/api/v1/pools/app");
    json_t *a = find_backend(after, "a"), *b = find_backend(after, "b"),
           *c = find_backend(after, "c"), *d = find_backend(after, "d");
    ck_assert_str_eq(harness_jstr(b, "state"), "down");
    ck_assert_str_eq(harness_jstr(b, "health.status"), "down");
    ck_assert_int_eq(harness_jint(b, "health.transitions"), b_transitions);
    ck_assert_str_eq(harness_jstr(c, "state"), "draining");
    ck_assert_str_eq(harness_jstr(c, "health.status"), "up");
    ck_assert_int_eq(harness_jint(a, "weight"), 5);
    ck_assert_int_eq(harness_jint(a, "effective_weight"), 5);
    ck_assert_str_eq(harness_jstr(d, "state"), "up");
    ck_assert_int_eq(harness_jint(d, "weight"), 1);
    ck_assert_int_eq(harness_jint(d, "total_connections"), 0);
    ck_assert_int_eq(harness_jint(after, "available_backends"), 2);
    ck_assert_int_eq(harness_log_count(lb.log, "pool app backend b DOWN"), 1);
    ck_assert_int_eq(harness_log_count(lb.log, "pool app backend b UP"), 0);
    ck_assert_int_eq(harness_log_count(lb.log, "pool app backend d DOWN"), 0);

    /* a (5) and d (1) share the traffic; b and c get nothing. */
    ck_assert_str_eq(tally(lport, 12, "a d"), "a=10 d=2");
    ck_assert_int_eq(
        harness_jint(get_json(aport, "/api/v1/pools/app/backends/c"), "total_connections"),
        c_total);
    ck_assert_int_eq(harness_log_count(lb.log, "connect failed"), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 6. counters are not reset ===== */

static const char *counter_fields[] = {"total_connections", "failed_connections", "bytes_in",
                                       "bytes_out", "active_connections"};

static const char *metric_series(const char *family, const char *backend, const char *extra)
{
    return harness_strf("%s{pool=\"app\",backend=\"%s\"%s}", family, backend, extra);
}

static const char *metrics_of(int aport, const char *backend)
{
    struct harness_reply r = harness_call(aport, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    static const char *series[][2] = {
        {"lb_backend_connections_total", ""},
        {"lb_backend_connect_failures_total", ""},
        {"lb_backend_active_connections", ""},
        {"lb_backend_bytes_total", ",direction=\"in\""},
        {"lb_backend_bytes_total", ",direction=\"out\""},
    };
    const char *out = "";
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        const char *s = metric_series(series[i][0], backend, series[i][1]);
        double v;
        ck_assert_msg(prom_value(r.body, s, &v), "no %s in /metrics", s);
        out = harness_strf("%s%s=%.0f\n", out, s, v);
    }
    return out;
}

START_TEST(counters_not_reset)
{
    int psink = start_backend("sink", "sink"), pecho = start_backend("echo", "echo"),
        pnew = start_backend("fresh", "name");
    int pdead = harness_free_port(); /* nothing listens there */
    int lport = harness_free_port(), aport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    json_t *three = list(backend_json("sink", psink, 1), backend_json("echo", pecho, 1),
                         backend_json("dead", pdead, 1), NULL);
    struct harness_lb lb;
    lb_start(&lb, conf(aport, web, pool_json("app", "roundrobin", NULL, three)), lport, aport);

    char buf[2000];
    memset(buf, 'x', sizeof(buf));
    /* 1: sink, 1234 bytes out, "1234\n" back. */
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_send_all(fd, buf, 1234, HARNESS_WAIT_MS));
    shutdown(fd, SHUT_WR);
    char answer[64];
    ck_assert_int_eq(harness_read_eof(fd, answer, sizeof(answer), HARNESS_WAIT_MS), 5);
    ck_assert_str_eq(answer, "1234\n");
    close(fd);
    ck_assert(harness_log_wait(lb.log, "session end", 1, HARNESS_WAIT_MS));
    /* 2: echo, held open across the reload. */
    int held = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(held, 0);
    ck_assert(harness_send_all(held, buf, 1000, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_recv_n(held, buf, 1000, HARNESS_WAIT_MS), 1000);
    /* 3: dead fails, the retry lands on sink or echo. */
    fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_send_all(fd, "abc", 3, HARNESS_WAIT_MS));
    shutdown(fd, SHUT_WR);
    ssize_t n = harness_read_eof(fd, answer, sizeof(answer), HARNESS_WAIT_MS);
    close(fd);
    bool third_echo = n == 3 && strcmp(answer, "abc") == 0;
    ck_assert_msg(third_echo || (n == 2 && strcmp(answer, "3\n") == 0), "third answer '%s'",
                  n > 0 ? answer : "");
    ck_assert(harness_log_wait(lb.log, "session end", 2, HARNESS_WAIT_MS));

    json_t *before = get_json(aport, "/api/v1/pools/app");
    ck_assert_int_eq(harness_jint(find_backend(before, "dead"), "failed_connections"), 1);
    ck_assert_int_eq(harness_jint(find_backend(before, "echo"), "active_connections"), 1);
    ck_assert_int_eq(harness_jint(find_backend(before, "sink"), "bytes_out"),
                     1234 + (third_echo ? 0 : 3));
    const char *ids[] = {"sink", "echo", "dead"};
    const char *metrics_before[3];
    for (int i = 0; i < 3; i++)
        metrics_before[i] = metrics_of(aport, ids[i]);

    json_t *four = harness_jkeep(json_deep_copy(three));
    json_array_append(four, backend_json("fresh", pnew, 1));
    harness_lb_rewrite_json(&lb, conf(aport, web, pool_json("app", "weighted", NULL, four)));
    post_ok(aport, 2, 0, 0, 1, 0);

    json_t *after = get_json(aport, "/api/v1/pools/app");
    for (int i = 0; i < 3; i++) {
        json_t *b0 = find_backend(before, ids[i]), *b1 = find_backend(after, ids[i]);
        for (size_t k = 0; k < sizeof(counter_fields) / sizeof(counter_fields[0]); k++)
            ck_assert_msg(harness_jint(b1, counter_fields[k]) ==
                              harness_jint(b0, counter_fields[k]),
                          "%s.%s was %lld before the reload, %lld after", ids[i], counter_fields[k],
                          harness_jint(b0, counter_fields[k]), harness_jint(b1, counter_fields[k]));
        ck_assert_str_eq(metrics_of(aport, ids[i]), metrics_before[i]);
    }
    json_t *fresh = find_backend(after, "fresh");
    for (size_t k = 0; k < sizeof(counter_fields) / sizeof(counter_fields[0]); k++)
        ck_assert_int_eq(harness_jint(fresh, counter_fields[k]), 0);
    ck_assert_str_eq(harness_jstr(fresh, "state"), "up");
    ck_assert(metric(aport, metric_series("lb_backend_connections_total", "fresh", "")) == 0);

    /* The held session goes on counting into the same backend. */
    assert_echo(held, "after the reload");
    close(held);
    ck_assert(harness_log_wait(lb.log, "backend=echo bytes_from_client=1016 ", 1, HARNESS_WAIT_MS));
    json_t *echo = get_json(aport, "/api/v1/pools/app/backends/echo");
    long long echoed = 1016 + (third_echo ? 3 : 0);
    ck_assert_int_eq(harness_jint(echo, "bytes_out"), echoed);
    ck_assert_int_eq(harness_jint(echo, "bytes_in"), echoed);
    ck_assert_int_eq(harness_jint(echo, "active_connections"), 0);
    ck_assert_int_eq(harness_jint(echo, "total_connections"), 1 + (third_echo ? 1 : 0));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 7. 200 reloads leak no descriptor ===== */

#define LEAK_RELOADS 200
#define RSS_GROWTH_MAX_KB (8 * 1024)

/* lb's descriptor count once it is quiet: the least seen over 300 ms, so a
 * connection lb is still closing does not count. */
static int fd_count_quiet(pid_t pid)
{
    int least = harness_fd_count(pid);
    for (long t0 = harness_now_ms(); harness_now_ms() - t0 < 300;) {
        harness_sleep_ms(20);
        int n = harness_fd_count(pid);
        if (n < least)
            least = n;
    }
    return least;
}

/* What lb's descriptors point at, for a failure message. */
static const char *fd_list(pid_t pid)
{
    const char *dirpath = harness_strf("/proc/%ld/fd", (long)pid);
    const char *out = "";
    for (int fd = 0; fd < 1024; fd++) {
        char target[256];
        ssize_t n = readlink(harness_strf("%s/%d", dirpath, fd), target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        out = harness_strf("%s %d=%s", out, fd, target);
    }
    return out;
}

/* Waits (bounded) for lb's descriptor count to come back to want; returns
 * the last count seen. */
static int fd_count_settle(pid_t pid, int want)
{
    long deadline = harness_now_ms() + 3000;
    int n;
    while ((n = harness_fd_count(pid)) != want && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    return n;
}

START_TEST(no_leak_over_200_reloads)
{
    int pa = start_backend("a", "name"), pb = start_backend("b", "name"),
        pc = start_backend("c", "name"), pd = start_backend("d", "name");
    int lport = harness_free_port(), aport = harness_free_port(), eport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    /* p: one listener, app = a b, no checks. q: a second listener, app = a c,
     * and a pool with tcp checks. */
    json_t *p = conf(aport, web,
                     pool_json("app", "roundrobin", NULL,
                               list(backend_json("a", pa, 1), backend_json("b", pb, 1), NULL)));
    json_t *check = harness_jkeep(json_pack("{s:{s:s, s:i, s:i}}", "health_check", "type", "tcp",
                                            "interval_ms", 20, "timeout_ms", 1000));
    json_t *q = conf(aport, list(web, listener_json("extra", eport, "other"), NULL),
                     list(pool_json("app", "weighted", NULL,
                                    list(backend_json("a", pa, 1), backend_json("c", pc, 1), NULL)),
                          pool_json("other", "leastconn", check, backend_json("d", pd, 1)), NULL));
    struct harness_lb lb;
    lb_start(&lb, p, lport, aport);
    ck_assert_str_eq(fetch(lport), "a");
    get_json(aport, "/api/v1/status");
    int fds0 = fd_count_quiet(lb.pid);
    const char *list0 = fd_list(lb.pid);
    long rss0 = harness_rss_kb(lb.pid);
    ck_assert_int_gt(fds0, 0);
    ck_assert_int_gt(rss0, 0);

    for (int i = 1; i <= LEAK_RELOADS; i++) {
        harness_lb_rewrite_json(&lb, i % 2 ? q : p);
        if (i % 2)
            post_ok(aport, i + 1, 1, 0, 2, 1);
        else
            post_ok(aport, i + 1, 0, 1, 1, 2);
        if (i == 1) {
            ck_assert_str_eq(fetch(eport), "d");
            ck_assert_str_eq(tally(lport, 2, "a c"), "a=1 c=1");
        }
    }
    ck_assert_int_eq(harness_log_count(lb.log, "reload ok"), LEAK_RELOADS);
    ck_assert_str_eq(tally(lport, 2, "a b"), "a=1 b=1");
    assert_refused(eport);
    get_json(aport, "/api/v1/status");
    int fds1 = fd_count_settle(lb.pid, fds0);
    ck_assert_msg(fds1 == fds0,
                  "lb had %d descriptors before %d reloads and %d after;\nbefore:%s\nafter:%s",
                  fds0, LEAK_RELOADS, fds1, list0, fd_list(lb.pid));
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory resident */
    long rss1 = harness_rss_kb(lb.pid);
    if (!HARNESS_WRAPPED_SKIPS_CHECK("lb's RSS under valgrind is valgrind's; its leak check runs"))
        ck_assert_msg(rss1 - rss0 <= RSS_GROWTH_MAX_KB,
                      "lb's RSS grew from %ld KiB to %ld KiB over %d reloads", rss0, rss1,
                      LEAK_RELOADS);
#endif
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 8. a burst of SIGHUPs ===== */

START_TEST(sighup_burst)
{
    int pa = start_backend("a", "name"), pb = start_backend("b", "name");
    int lport = harness_free_port(), aport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    struct harness_lb lb;
    lb_start(&lb, conf(aport, web, pool_json("app", "roundrobin", NULL, backend_json("a", pa, 1))),
             lport, aport);
    harness_lb_rewrite_json(
        &lb, conf(aport, web,
                  pool_json("app", "roundrobin", NULL,
                            list(backend_json("a", pa, 1), backend_json("b", pb, 1), NULL))));
    for (int i = 0; i < 5; i++)
        harness_lb_signal(&lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb.log, "reload ok", 1, HARNESS_WAIT_MS),
                  "no reload after 5 SIGHUPs; log %s", lb.log);
    /* Settled: no new reload line for 500 ms. */
    int n = harness_log_count(lb.log, "reload ok");
    for (long quiet_since = harness_now_ms(); harness_now_ms() - quiet_since < 500;) {
        harness_sleep_ms(20);
        int now = harness_log_count(lb.log, "reload ok");
        if (now != n) {
            n = now;
            quiet_since = harness_now_ms();
        }
    }
    ck_assert_msg(n >= 1 && n <= 5, "%d reload ok lines after 5 SIGHUPs", n);
    ck_assert_int_eq(harness_log_count(lb.log, ok_line(2, 0, 0, 1, 0)), 1);
    for (int g = 3; g <= n + 1; g++)
        ck_assert_int_eq(harness_log_count(lb.log, ok_line(g, 0, 0, 0, 0)), 1);
    ck_assert_int_eq(harness_log_count(lb.log, "reload failed"), 0);
    json_t *st = get_json(aport, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "reloads.ok"), n);
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 0);
    ck_assert_str_eq(tally(lport, 4, "a b"), "a=2 b=2");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* ===== 9. a removed listener refuses, its sessions go on ===== */

START_TEST(removed_listener_sessions_continue)
{
    int pecho = start_backend("echo", "echo");
    int lport = harness_free_port(), sport = harness_free_port(), aport = harness_free_port();
    json_t *web = listener_json("web", lport, "app");
    json_t *pools = pool_json("app", "roundrobin", NULL, backend_json("echo", pecho, 1));
    struct harness_lb lb;
    lb_start(&lb, conf(aport, list(web, listener_json("side", sport, "app"), NULL), pools), lport,
             aport);
    ck_assert(harness_wait_listening(sport, HARNESS_WAIT_MS));
    int fd = harness_connect("127.0.0.1", sport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    assert_echo(fd, "before");

    harness_lb_rewrite_json(&lb, conf(aport, web, pools));
    post_ok(aport, 2, 0, 1, 0, 0);
    assert_refused(sport);
    /* Still shown, retired, with its open session. */
    json_t *ls = get_json(aport, "/api/v1/listeners");
    ck_assert_int_eq(json_array_size(harness_jget(ls, "listeners")), 2);
    ck_assert_str_eq(harness_jstr(ls, "listeners.0.name"), "web");
    ck_assert(json_is_false(harness_jget(ls, "listeners.0.retired")));
    ck_assert_str_eq(harness_jstr(ls, "listeners.1.name"), "side");
    ck_assert(json_is_true(harness_jget(ls, "listeners.1.retired")));
    ck_assert_int_eq(harness_jint(ls, "listeners.1.active_connections"), 1);

    /* The session on the removed listener goes on, byte-exact. */
    size_t total = 6;
    for (int i = 0; i < 50; i++) {
        const char *text = harness_strf("after the reload, chunk %d", i);
        assert_echo(fd, text);
        total += strlen(text);
    }
    int other = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(other, 0);
    assert_echo(other, "web still serves");
    close(other);
    shutdown(fd, SHUT_WR);
    char extra[16];
    ck_assert_int_eq(harness_read_eof(fd, extra, sizeof(extra), HARNESS_WAIT_MS), 0);
    close(fd);
    const char *end = harness_strf("listener=side pool=app backend=echo bytes_from_client=%zu "
                                   "bytes_from_backend=%zu ",
                                   total, total);
    ck_assert_msg(harness_log_wait(lb.log, end, 1, HARNESS_WAIT_MS), "no line with '%s' in %s", end,
                  lb.log);
    /* Its last session over, the retired listener is gone. */
    ls = get_json(aport, "/api/v1/listeners");
    ck_assert_int_eq(json_array_size(harness_jget(ls, "listeners")), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc;
#define ADD_TCASE(name, fn)                                                                        \
    tc = tcase_create(name);                                                                       \
    tcase_add_checked_fixture(tc, harness_setup, harness_teardown);                                \
    tcase_set_timeout(tc, RELOAD_TCASE_TIMEOUT);                                                   \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    ADD_TCASE("flip", connects_through_sighups);
    ADD_TCASE("stream", stream_survives_reloads);
    ADD_TCASE("invalid", invalid_file_changes_nothing);
    ADD_TCASE("fifo", fifo_fails_reload);
    ADD_TCASE("busy", busy_port_rejects_reload);
    ADD_TCASE("health", health_and_overrides_survive);
    ADD_TCASE("counters", counters_not_reset);
    ADD_TCASE("leak", no_leak_over_200_reloads);
    ADD_TCASE("burst", sighup_burst);
    ADD_TCASE("listener", removed_listener_sessions_continue);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(reload_suite)
