/* Integration: limits at every level on a real lb — the global
 * max_connections pausing every listener until a session ends, a backend's
 * max_connections sending the next client to another backend, the pool's
 * queue served first come first served as slots free, its timeout and its
 * bound, in tcp and http mode, with the API's counters exact. Backends
 * hold each session until its client lets go (tcp: the client closes;
 * http: the request's body byte arrives), so every slot frees when the
 * test says. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/test.h"

/* A bound for waits that must not end (a client that must still wait). */
#define QUIET_MS 300

/* http backend: answers each request (a head with "Content-Length: 1" and
 * its one body byte) only once the body byte came, with 200 and the body
 * arg ("A\n"); keeps the connection for the next. */
static void fn_http_hold(int fd, void *arg)
{
    const char *name = arg;
    char buf[4096];
    size_t len = 0;
    for (;;) {
        char *end = NULL;
        while (!(end = memmem(buf, len, "\r\n\r\n", 4)) || (size_t)(end + 5 - buf) > len) {
            if (len == sizeof(buf))
                return;
            ssize_t n = read(fd, buf + len, sizeof(buf) - len);
            if (n <= 0)
                return;
            len += (size_t)n;
        }
        size_t used = (size_t)(end + 5 - buf);
        memmove(buf, buf + used, len - used);
        len -= used;
        char resp[128];
        int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(name), name);
        if (!harness_write_full(fd, resp, (size_t)n))
            return;
    }
}

struct env {
    struct harness_lb lb;
    int lport, aport, bport[2];
    json_t *cfg;
};

/* lb in mode ("tcp"/"http") with backends A and B (max_connections
 * maxa and maxb; 0: none), roundrobin, the pool's queue (qmax, qtimeout),
 * the global max_connections gmax (0: none), and the admin API. */
static void env_start(struct env *e, const char *mode, unsigned maxa, unsigned maxb, unsigned qmax,
                      unsigned qtimeout, unsigned gmax)
{
    e->lport = harness_free_port();
    e->aport = harness_free_port();
    bool http = strcmp(mode, "http") == 0;
    const char *names[2] = {http ? "A\n" : "A", http ? "B\n" : "B"};
    unsigned max[2] = {maxa, maxb};
    json_t *backends = json_array();
    for (int i = 0; i < 2; i++) {
        e->bport[i] = harness_free_port();
        harness_server("127.0.0.1", e->bport[i], http ? fn_http_hold : harness_fn_name,
                       (void *)names[i]);
        char nm[2] = {(char)('A' + i), '\0'};
        json_t *b = harness_backend_json(harness_lo(e->bport[i]), nm);
        if (max[i])
            harness_jset(b, "max_connections", json_integer(max[i]));
        json_array_append_new(backends, b);
    }
    json_t *cfg = harness_jkeep(json_object());
    if (gmax)
        harness_jset(cfg, "max_connections", json_integer(gmax));
    harness_jset(cfg, "admin", json_pack("{s:s}", "listen", harness_lo(e->aport)));
    harness_jset(cfg, "listeners.0", harness_listener_json("web", harness_lo(e->lport), "app"));
    harness_jset(cfg, "listeners.0.mode", json_string(mode));
    harness_jset(cfg, "pools.0", harness_pool_json("app", "roundrobin", backends));
    harness_jset(cfg, "pools.0.queue",
                 json_pack("{s:i, s:i}", "max", (int)qmax, "timeout_ms", (int)qtimeout));
    e->cfg = cfg;
    harness_lb_start_json(&e->lb, cfg, e->lport);
    ck_assert_msg(harness_wait_listening(e->aport, HARNESS_WAIT_MS), "no admin; log %s", e->lb.log);
}

static json_t *api(struct env *e, const char *path)
{
    struct harness_reply r = harness_call(e->aport, "GET", path, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(r.json);
    return r.json;
}

/* The pool's queue counters, and each backend's active count, as the API
 * has them: "queued max_seen timeouts full A-active B-active". */
static const char *pool_counters(struct env *e)
{
    json_t *j = api(e, "/api/v1/pools");
    return harness_strf("%lld %lld %lld %lld %lld %lld", harness_jint(j, "pools.0.queue.queued"),
                        harness_jint(j, "pools.0.queue.max_seen"),
                        harness_jint(j, "pools.0.queue.timeouts"),
                        harness_jint(j, "pools.0.queue.full"),
                        harness_jint(j, "pools.0.backends.0.active_connections"),
                        harness_jint(j, "pools.0.backends.1.active_connections"));
}

/* Waits (bounded) until the API says want. */
static void wait_counters(struct env *e, const char *want)
{
    const char *got = NULL;
    for (long t = 0; t < HARNESS_WAIT_MS; t += 20) {
        got = pool_counters(e);
        if (strcmp(got, want) == 0)
            return;
        usleep(20 * 1000);
    }
    ck_abort_msg("counters \"%s\", want \"%s\"; log %s", got, want, e->lb.log);
}

/* tcp: a client connected through lb, and the name of the backend that
 * took it ("A\n" read, then the backend's EOF). */
static int tcp_client(struct env *e, char *name)
{
    int fd = harness_connect_ok("127.0.0.1", e->lport);
    ck_assert_int_eq(harness_recv_n(fd, name, 2, HARNESS_WAIT_MS), 2);
    name[2] = '\0';
    return fd;
}

static void expect_name(int fd, const char *want)
{
    char got[3] = {0};
    ck_assert_int_eq(harness_recv_n(fd, got, 2, HARNESS_WAIT_MS), 2);
    ck_assert_str_eq(got, want);
}

START_TEST(tcp_backend_max_and_queue)
{
    struct env e;
    env_start(&e, "tcp", 1, 2, 2, 60000, 0);
    char n[3];
    int c1 = tcp_client(&e, n);
    ck_assert_str_eq(n, "A\n");
    int c2 = tcp_client(&e, n);
    ck_assert_str_eq(n, "B\n");
    /* Round-robin offers A, which is full: B takes it. */
    int c3 = tcp_client(&e, n);
    ck_assert_str_eq(n, "B\n");
    wait_counters(&e, "0 0 0 0 1 2");
    /* Both full: two wait, the third is refused at once. */
    int c4 = harness_connect_ok("127.0.0.1", e.lport);
    wait_counters(&e, "1 1 0 0 1 2");
    int c5 = harness_connect_ok("127.0.0.1", e.lport);
    wait_counters(&e, "2 2 0 0 1 2");
    int c6 = harness_connect_ok("127.0.0.1", e.lport);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(c6, buf, sizeof(buf), HARNESS_WAIT_MS), 0);
    close(c6);
    ck_assert(harness_log_wait(e.lb.log, "queue full", 1, HARNESS_WAIT_MS));
    wait_counters(&e, "2 2 0 1 1 2");
    ck_assert(!harness_readable(c4, QUIET_MS));
    /* A slot frees on B: the oldest waiter (c4) gets it, c5 waits on. */
    close(c2);
    expect_name(c4, "B\n");
    wait_counters(&e, "1 2 0 1 1 2");
    ck_assert(!harness_readable(c5, QUIET_MS));
    close(c1);
    expect_name(c5, "A\n");
    wait_counters(&e, "0 2 0 1 1 2");
    close(c3);
    close(c4);
    close(c5);
    wait_counters(&e, "0 2 0 1 0 0");
    json_t *m = api(&e, "/api/v1/pools");
    ck_assert_int_eq(harness_jint(m, "pools.0.backends.0.max_connections"), 1);
    ck_assert_int_eq(harness_jint(m, "pools.0.queue.max"), 2);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

START_TEST(tcp_queue_timeout)
{
    struct env e;
    env_start(&e, "tcp", 1, 1, 4, 300, 0);
    char n[3];
    int c1 = tcp_client(&e, n);
    int c2 = tcp_client(&e, n);
    int c3 = harness_connect_ok("127.0.0.1", e.lport);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(c3, buf, sizeof(buf), HARNESS_WAIT_MS), 0);
    ck_assert(harness_log_wait(e.lb.log, "queue timeout", 1, HARNESS_WAIT_MS));
    wait_counters(&e, "0 1 1 0 1 1");
    close(c3);
    close(c1);
    close(c2);
    wait_counters(&e, "0 1 1 0 0 0");
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

START_TEST(tcp_no_queue_refuses)
{
    struct env e;
    env_start(&e, "tcp", 1, 1, 0, 60000, 0);
    char n[3];
    int c1 = tcp_client(&e, n);
    int c2 = tcp_client(&e, n);
    int c3 = harness_connect_ok("127.0.0.1", e.lport);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(c3, buf, sizeof(buf), HARNESS_WAIT_MS), 0);
    wait_counters(&e, "0 0 0 1 1 1");
    close(c3);
    close(c1);
    close(c2);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* Clients that leave while queued: one that closes having sent nothing
 * has given up and leaves the queue at once ("client closed"), as does
 * one that resets; one that sent bytes and half-closed keeps its place
 * (its request is still to be served, like HAProxy without abortonclose)
 * and gets the next slot. */
START_TEST(tcp_queued_clients_leave)
{
    struct env e;
    env_start(&e, "tcp", 1, 1, 4, 60000, 0);
    char n[3];
    int c1 = tcp_client(&e, n);
    int c2 = tcp_client(&e, n);
    int quiet = harness_connect_ok("127.0.0.1", e.lport);
    wait_counters(&e, "1 1 0 0 1 1");
    close(quiet);
    wait_counters(&e, "0 1 0 0 1 1");
    ck_assert(harness_log_wait(e.lb.log, "client closed", 1, HARNESS_WAIT_MS));
    int rst = harness_connect_ok("127.0.0.1", e.lport);
    ck_assert(harness_write_full(rst, "x", 1));
    wait_counters(&e, "1 1 0 0 1 1");
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(rst, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(rst);
    wait_counters(&e, "0 1 0 0 1 1");
    int half = harness_connect_ok("127.0.0.1", e.lport);
    ck_assert(harness_write_full(half, "hello", 5));
    ck_assert_int_eq(shutdown(half, SHUT_WR), 0);
    wait_counters(&e, "1 1 0 0 1 1");
    ck_assert(!harness_readable(half, QUIET_MS));
    wait_counters(&e, "1 1 0 0 1 1");
    close(c1);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(half, buf, sizeof(buf), HARNESS_WAIT_MS), 2);
    ck_assert(memcmp(buf, "A\n", 2) == 0);
    close(half);
    close(c2);
    wait_counters(&e, "0 1 0 0 0 0");
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* A reload retires the pool generation a session waits in: it waits on in
 * the new one's queue (with the time it had left) and gets the next slot;
 * a reload that gives a backend room serves it at once. */
START_TEST(reload_moves_queue)
{
    struct env e;
    env_start(&e, "tcp", 1, 1, 4, 60000, 0);
    char n[3];
    int c1 = tcp_client(&e, n);
    int c2 = tcp_client(&e, n);
    int c3 = harness_connect_ok("127.0.0.1", e.lport);
    int c4 = harness_connect_ok("127.0.0.1", e.lport);
    wait_counters(&e, "2 2 0 0 1 1");
    harness_lb_rewrite_json(&e.lb, e.cfg);
    harness_lb_signal(&e.lb, SIGHUP);
    ck_assert(harness_log_wait(e.lb.log, "reload ok", 1, HARNESS_WAIT_MS));
    wait_counters(&e, "2 2 0 0 1 1"); /* the new generation's queue, counters kept */
    close(c1);
    expect_name(c3, "A\n");
    wait_counters(&e, "1 2 0 0 1 1");
    /* B gets room for one more: the waiter is served without a slot freeing. */
    harness_jset(e.cfg, "pools.0.backends.1.max_connections", json_integer(2));
    harness_lb_rewrite_json(&e.lb, e.cfg);
    harness_lb_signal(&e.lb, SIGHUP);
    ck_assert(harness_log_wait(e.lb.log, "reload ok", 2, HARNESS_WAIT_MS));
    expect_name(c4, "B\n");
    wait_counters(&e, "0 2 0 0 1 2");
    close(c2);
    close(c3);
    close(c4);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* Waiters are served when a backend becomes available, not only when a
 * slot frees: with B drained, the second client waits for A; B enabled
 * again takes it at once. */
START_TEST(tcp_backend_back_serves_queue)
{
    struct env e;
    env_start(&e, "tcp", 1, 1, 4, 60000, 0);
    const char *b_path = "/api/v1/pools/app/backends/B";
    ck_assert_int_eq(harness_call(e.aport, "PATCH", b_path, "Content-Type: application/json\r\n",
                                  "{\"state\": \"drain\"}")
                         .status,
                     200);
    char n[3];
    int c1 = tcp_client(&e, n);
    ck_assert_str_eq(n, "A\n");
    int c2 = harness_connect_ok("127.0.0.1", e.lport);
    wait_counters(&e, "1 1 0 0 1 0");
    ck_assert_int_eq(harness_call(e.aport, "PATCH", b_path, "Content-Type: application/json\r\n",
                                  "{\"state\": \"enable\"}")
                         .status,
                     200);
    expect_name(c2, "B\n");
    wait_counters(&e, "0 1 0 0 1 1");
    close(c1);
    close(c2);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

#define POST_HEAD "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n"

START_TEST(http_backend_max_and_queue)
{
    struct env e;
    env_start(&e, "http", 1, 1, 1, 60000, 0);
    struct harness_hconn c[4];
    struct harness_hresp r;
    for (int i = 0; i < 4; i++) {
        harness_hconn_open(&c[i], e.lport);
        ck_assert(harness_hconn_sends(&c[i], POST_HEAD));
        if (i < 2)
            wait_counters(&e, i == 0 ? "0 0 0 0 1 0" : "0 0 0 0 1 1");
        if (i == 2)
            wait_counters(&e, "1 1 0 0 1 1");
    }
    /* The fourth: every backend full, the queue full: lb's 503. */
    ck_assert_int_eq(harness_hconn_read(&c[3], &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert(harness_log_wait(e.lb.log, "status=503", 1, HARNESS_WAIT_MS));
    ck_assert_ptr_nonnull(
        strstr(harness_log_line(e.lb.log, "status=503"), " reason=\"queue full\""));
    wait_counters(&e, "1 1 0 1 1 1");
    /* c0's exchange ends; its connection stays open (kept alive), its
     * backend connection idle: that holds no slot, the queued c2 gets A. */
    ck_assert(harness_hconn_sends(&c[0], "x"));
    ck_assert_int_eq(harness_hconn_read(&c[0], &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "A\n");
    wait_counters(&e, "0 1 0 1 1 1");
    ck_assert(harness_hconn_sends(&c[2], "x"));
    ck_assert_int_eq(harness_hconn_read(&c[2], &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "A\n");
    ck_assert(harness_hconn_sends(&c[1], "x"));
    ck_assert_int_eq(harness_hconn_read(&c[1], &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_str_eq(r.body, "B\n");
    wait_counters(&e, "0 1 0 1 0 0");
    for (int i = 0; i < 4; i++)
        harness_hconn_close(&c[i]);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

START_TEST(http_queue_timeout)
{
    struct env e;
    env_start(&e, "http", 1, 1, 4, 300, 0);
    struct harness_hconn c[3];
    struct harness_hresp r;
    for (int i = 0; i < 3; i++) {
        harness_hconn_open(&c[i], e.lport);
        ck_assert(harness_hconn_sends(&c[i], POST_HEAD));
        if (i < 2)
            wait_counters(&e, i == 0 ? "0 0 0 0 1 0" : "0 0 0 0 1 1");
    }
    ck_assert_int_eq(harness_hconn_read(&c[2], &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert(harness_log_wait(e.lb.log, "status=503", 1, HARNESS_WAIT_MS));
    ck_assert_ptr_nonnull(
        strstr(harness_log_line(e.lb.log, "status=503"), " reason=\"queue timeout\""));
    wait_counters(&e, "0 1 1 0 1 1");
    for (int i = 0; i < 3; i++)
        harness_hconn_close(&c[i]);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

START_TEST(global_max_connections)
{
    struct env e;
    env_start(&e, "tcp", 0, 0, 0, 60000, 2);
    char n[3];
    int c1 = tcp_client(&e, n);
    int c2 = tcp_client(&e, n);
    /* The third completes its handshake in the kernel's backlog; lb does
     * not accept it while two sessions are open. */
    int c3 = harness_connect_ok("127.0.0.1", e.lport);
    json_t *st = api(&e, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "connections.active"), 2);
    ck_assert_int_eq(harness_jint(st, "connections.max_connections"), 2);
    ck_assert(json_is_true(harness_jget(st, "connections.accepts_paused")));
    ck_assert_int_eq(harness_jint(st, "connections.limit_reached"), 1);
    ck_assert(!harness_readable(c3, QUIET_MS));
    close(c1);
    expect_name(c3, "A\n");
    st = api(&e, "/api/v1/status");
    ck_assert_int_eq(harness_jint(st, "connections.active"), 2);
    ck_assert_int_eq(harness_jint(st, "connections.limit_reached"), 2);
    close(c2);
    close(c3);
    for (long t = 0; t < HARNESS_WAIT_MS; t += 20) {
        st = api(&e, "/api/v1/status");
        if (harness_jint(st, "connections.active") == 0)
            break;
        usleep(20 * 1000);
    }
    ck_assert_int_eq(harness_jint(st, "connections.active"), 0);
    ck_assert(json_is_false(harness_jget(st, "connections.accepts_paused")));
    struct harness_reply m = harness_call(e.aport, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(m.body, "\nlb_sessions_limit_reached_total 2\n"));
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

static Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc;
#define ADD_TCASE(name, fn)                                                                        \
    tc = harness_tcase(name);                                                                      \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    ADD_TCASE("tcp_backend_max_and_queue", tcp_backend_max_and_queue);
    ADD_TCASE("tcp_queue_timeout", tcp_queue_timeout);
    ADD_TCASE("tcp_no_queue_refuses", tcp_no_queue_refuses);
    ADD_TCASE("tcp_queued_clients_leave", tcp_queued_clients_leave);
    ADD_TCASE("reload_moves_queue", reload_moves_queue);
    ADD_TCASE("tcp_backend_back_serves_queue", tcp_backend_back_serves_queue);
    ADD_TCASE("http_backend_max_and_queue", http_backend_max_and_queue);
    ADD_TCASE("http_queue_timeout", http_queue_timeout);
    ADD_TCASE("global_max_connections", global_max_connections);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(limits_suite)
