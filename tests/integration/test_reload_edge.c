/* Integration: reload edge cases found in review. A connect in flight
 * across a reload (to a removed backend with passive ejection on; to a
 * kept one, whose retry must still find the other backend), an idle
 * timeout turned off by a reload, a pool counter across a no-op reload,
 * and max_connections lowered below the open sessions then raised. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define EDGE_TCASE_TIMEOUT 60

static int fill_fd = -1;

static void setup(void)
{
    harness_setup();
    fill_fd = -1;
}

static void teardown(void)
{
    if (fill_fd >= 0)
        close(fill_fd);
    harness_teardown();
}

/* A backend whose connects hang: harness_listen_held's socket (backlog 0,
 * never accepted) with its queue filled by one connection, so further SYNs
 * are dropped until the connecting side gives up (lb's
 * connect_timeout_ms). */
static void hang_backend(int port)
{
    harness_listen_held("127.0.0.1", port);
    fill_fd = harness_connect("127.0.0.1", port, HARNESS_WAIT_MS);
    ck_assert_msg(fill_fd >= 0, "cannot fill the accept queue: %s", strerror(errno));
}

static void lb_start(struct harness_lb *lb, json_t *config, int lport, int aport)
{
    harness_lb_start_json(lb, config, lport);
    ck_assert_msg(harness_log_wait(lb->log, "started (pid", 1, HARNESS_WAIT_MS),
                  "lb never logged its start; log %s", lb->log);
    if (aport > 0)
        ck_assert(harness_wait_listening(aport, HARNESS_WAIT_MS));
}

static void hup_ok(struct harness_lb *lb)
{
    int before = harness_log_count(lb->log, "reload ok");
    harness_lb_signal(lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb->log, "reload ok", before + 1, HARNESS_WAIT_MS),
                  "no reload ok line %d after SIGHUP; log %s", before + 1, lb->log);
}

/* One listener "web" on lport to pool "app" (roundrobin, retries 1,
 * connect timeout 1500 ms), the admin API on aport when aport > 0;
 * pool_extra: an object of more pool keys (NULL: none); backends: one
 * backend or an array of them. Both are copied: the same pieces serve
 * several files. */
static json_t *conf(int aport, int lport, unsigned idle_ms, unsigned maxc, json_t *pool_extra,
                    json_t *backends)
{
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport), .retries = 1, .connect_timeout_ms = 1500, .grace_ms = 1000});
    if (aport > 0)
        harness_jset(cfg, "admin.listen", json_string(harness_lo(aport)));
    harness_jset(cfg, "listeners.0.idle_timeout_ms", json_integer(idle_ms));
    harness_jset(cfg, "listeners.0.max_connections", json_integer(maxc));
    if (pool_extra) {
        json_t *copy = json_deep_copy(pool_extra);
        json_object_update(harness_jget(cfg, "pools.0"), copy);
        json_decref(copy);
    }
    harness_jset(cfg, "pools.0.backends",
                 json_is_array(backends) ? json_deep_copy(backends)
                                         : harness_jarray(json_deep_copy(backends), NULL));
    return cfg;
}

/* A backend, kept until teardown. */
static json_t *named(const char *name, int port)
{
    return harness_jkeep(harness_backend_json(harness_lo(port), name));
}

/* Copies of a and b in an array kept until teardown. */
static json_t *both(json_t *a, json_t *b)
{
    return harness_jkeep(harness_jarray(json_deep_copy(a), json_deep_copy(b), NULL));
}

static const char *recv_text(int fd, long timeout_ms)
{
    char buf[64];
    ssize_t n = harness_recv_n(fd, buf, sizeof(buf) - 1, timeout_ms);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    return harness_strf("%s", buf);
}

static void assert_echo(int fd, const char *what)
{
    ck_assert_msg(harness_send_all(fd, "ping", 4, HARNESS_WAIT_MS), "%s: send", what);
    char buf[4];
    ck_assert_msg(harness_recv_n(fd, buf, 4, HARNESS_WAIT_MS) == 4 && memcmp(buf, "ping", 4) == 0,
                  "%s: no echo", what);
}

/* A session is connecting to backend "hang" when a reload removes it; the
 * connect then times out, which (passive, max_failures 1) ejects "hang".
 * lb must not crash (it did: evtimer_add on the removed backend's freed
 * eject timer, lb/pool_health.c backend_connect_result). */
START_TEST(removed_backend_failed_connect_with_passive)
{
    int hport = harness_free_port(), gport = harness_free_port();
    int lport = harness_free_port();
    hang_backend(hport);
    harness_backend("127.0.0.1", gport, "good", "name");
    json_t *passive = harness_jkeep(
        json_pack("{s:{s:i, s:i}}", "passive", "max_failures", 1, "ejection_ms", 5000));
    json_t *two = both(named("hang", hport), named("good", gport));
    struct harness_lb lb;
    lb_start(&lb, conf(0, lport, 300000, 10000, passive, two), lport, 0);

    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS); /* roundrobin: "hang" */
    ck_assert_int_ge(fd, 0);
    harness_sleep_ms(300);
    harness_lb_rewrite_json(&lb, conf(0, lport, 300000, 10000, passive, named("good", gport)));
    hup_ok(&lb);
    ck_assert(harness_log_wait(lb.log, "backend hang connect failed", 1, 4000));
    harness_sleep_ms(300);
    close(fd);
    harness_lb_check_clean(&lb);
    const char *name = harness_fetch_name(NULL, "127.0.0.1", lport);
    ck_assert_msg(name && strcmp(name, "good") == 0, "lb no longer serves (crashed?); log %s",
                  lb.log);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A session is connecting to "hang" during a reload that changes nothing;
 * its connect times out and the retry (retries 1) must reach "good", as it
 * does without the reload. It did not: the retry picks from the session's
 * pool, the previous generation, whose strategy state the reload freed, so
 * the client got "connect failed". */
START_TEST(retry_after_noop_reload_reaches_other_backend)
{
    int hport = harness_free_port(), gport = harness_free_port();
    int lport = harness_free_port();
    hang_backend(hport);
    harness_backend("127.0.0.1", gport, "good", "name");
    json_t *two = both(named("hang", hport), named("good", gport));
    struct harness_lb lb;
    lb_start(&lb, conf(0, lport, 300000, 10000, NULL, two), lport, 0);

    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS); /* roundrobin: "hang" */
    ck_assert_int_ge(fd, 0);
    harness_sleep_ms(300);
    hup_ok(&lb); /* same file */
    const char *got = recv_text(fd, 5000);
    close(fd);
    ck_assert_msg(strcmp(got, "good\n") == 0,
                  "the retry after the reload did not reach good (got \"%s\"); log %s", got,
                  lb.log);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* idle_timeout_ms 1000 -> 0 ("0 disables the timeout"): an open session
 * must stay open. It was closed with reason "idle timeout" when the timer
 * armed under the old setting fired (lb/session.c on_idle_timer: quiet >=
 * 0 always holds). */
START_TEST(idle_timeout_turned_off_keeps_session)
{
    int eport = harness_free_port(), lport = harness_free_port();
    harness_backend("127.0.0.1", eport, "echo", "echo");
    json_t *b = named("echo", eport);
    struct harness_lb lb;
    lb_start(&lb, conf(0, lport, 1000, 10000, NULL, b), lport, 0);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    assert_echo(fd, "before");
    harness_lb_rewrite_json(&lb, conf(0, lport, 0, 10000, NULL, b));
    hup_ok(&lb);
    harness_sleep_ms(1600);
    ck_assert_msg(!harness_log_contains(lb.log, "reason=\"idle timeout\""),
                  "session closed by the old idle timeout; log %s", lb.log);
    assert_echo(fd, "after");
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static long long pool_rejected(int aport)
{
    int status = 0;
    const char *body = NULL;
    ck_assert_int_eq(
        harness_http(aport, "GET", "/api/v1/pools/app", NULL, NULL, &status, NULL, &body), 0);
    ck_assert_int_eq(status, 200);
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    ck_assert_ptr_nonnull(j);
    json_t *v = json_object_get(j, "rejected_connections");
    ck_assert(json_is_integer(v));
    long long n = json_integer_value(v);
    json_decref(j);
    return n;
}

/* Pool counters are runtime state: a reload that changes nothing must not
 * reset rejected_connections (it did: every reload builds a fresh pool). */
START_TEST(pool_rejected_survives_reload)
{
    int eport = harness_free_port(), lport = harness_free_port(), aport = harness_free_port();
    harness_backend("127.0.0.1", eport, "e", "name");
    struct harness_lb lb;
    lb_start(&lb, conf(aport, lport, 300000, 10000, NULL, named("e", eport)), lport, aport);
    int status = 0;
    harness_http(aport, "PATCH", "/api/v1/pools/app/backends/e",
                 "Content-Type: application/json\r\n", "{\"state\": \"drain\"}", &status, NULL,
                 NULL);
    ck_assert_int_eq(status, 200);
    for (int i = 0; i < 3; i++) {
        int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_ge(harness_wait_closed(fd, HARNESS_WAIT_MS), 0);
        close(fd);
    }
    ck_assert_int_eq(pool_rejected(aport), 3);
    hup_ok(&lb);
    ck_assert_msg(pool_rejected(aport) == 3, "rejected_connections %lld after a no-op reload",
                  pool_rejected(aport));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* max_connections 100 -> 2 with 4 sessions open: a new client waits until
 * fewer than 2 are open; 2 -> 100 lets the next one in at once. (Passes.) */
START_TEST(max_connections_lowered_then_raised)
{
    int eport = harness_free_port(), lport = harness_free_port();
    harness_backend("127.0.0.1", eport, "echo", "echo");
    json_t *b = named("echo", eport);
    struct harness_lb lb;
    lb_start(&lb, conf(0, lport, 300000, 100, NULL, b), lport, 0);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
        ck_assert_int_ge(fds[i], 0);
        assert_echo(fds[i], "open");
    }
    harness_lb_rewrite_json(&lb, conf(0, lport, 300000, 2, NULL, b));
    hup_ok(&lb);
    int w = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(w, 0);
    ck_assert(harness_send_all(w, "ping", 4, HARNESS_WAIT_MS));
    ck_assert_msg(!harness_readable(w, 400), "served above the lowered max_connections");
    close(fds[0]);
    close(fds[1]);
    ck_assert_msg(!harness_readable(w, 400), "served at 2 open with max_connections 2");
    close(fds[2]);
    char buf[4];
    ck_assert_int_eq(harness_recv_n(w, buf, 4, HARNESS_WAIT_MS), 4);
    harness_lb_rewrite_json(&lb, conf(0, lport, 300000, 100, NULL, b));
    hup_ok(&lb);
    int x = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(x, 0);
    assert_echo(x, "after raising");
    close(x);
    close(w);
    close(fds[3]);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *reload_edge_suite(void)
{
    Suite *s = suite_create("reload_edge");
    TCase *tc;
#define ADD_TCASE(name, fn)                                                                        \
    tc = tcase_create(name);                                                                       \
    tcase_add_checked_fixture(tc, setup, teardown);                                                \
    tcase_set_timeout(tc, EDGE_TCASE_TIMEOUT);                                                     \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    ADD_TCASE("removed_passive", removed_backend_failed_connect_with_passive);
    ADD_TCASE("retry", retry_after_noop_reload_reaches_other_backend);
    ADD_TCASE("idle_off", idle_timeout_turned_off_keeps_session);
    ADD_TCASE("rejected", pool_rejected_survives_reload);
    ADD_TCASE("maxconn", max_connections_lowered_then_raised);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(reload_edge_suite)
