/* Integration: health through a real lb and real backends. A killed
 * backend goes down and gets no more clients; a backend answering 500 goes
 * down and comes back after answering 200 `rise` times; a backend that
 * accepts and never answers fails by timeout; passive ejection without
 * active checks; all backends down closes clients at once, then recovers;
 * iphash clients of healthy backends stay put; slow start ramps. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

/* A "health_check" of type tcp. */
static json_t *tcp_check(int interval_ms, int timeout_ms, int rise, int fall)
{
    return json_pack("{s:s, s:i, s:i, s:i, s:i}", "type", "tcp", "interval_ms", interval_ms,
                     "timeout_ms", timeout_ms, "rise", rise, "fall", fall);
}

static json_t *backend_json(const char *name, int port)
{
    return harness_backend_json(harness_lo(port), name);
}

/* The usual config on lport with retries, pool key pool_key set to
 * pool_value (NULL: none) and the backends (a NULL-terminated list, each
 * stolen). */
static json_t *health_cfg(int lport, unsigned retries, const char *strategy, const char *pool_key,
                          json_t *pool_value, json_t *first, ...)
{
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport), .strategy = strategy, .retries = retries});
    if (pool_key)
        harness_jset(cfg, harness_strf("pools.0.%s", pool_key), pool_value);
    va_list ap;
    va_start(ap, first);
    for (json_t *b = first; b; b = va_arg(ap, json_t *))
        harness_jappend(cfg, "pools.0.backends", b);
    va_end(ap);
    return cfg;
}

static const char *fetch(int lport)
{
    const char *name = harness_fetch_name(NULL, "127.0.0.1", lport);
    ck_assert_msg(name != NULL, "no answer through lb");
    return name;
}

/* GET / through lb to an http-mode backend; returns "hello from NAME". */
static const char *http_get(int lport)
{
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    ck_assert(harness_send_all(fd, req, sizeof(req) - 1, HARNESS_WAIT_MS));
    char buf[1024];
    ssize_t n = harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS);
    close(fd);
    ck_assert_msg(n > 0, "no HTTP answer through lb");
    char *body = strstr(buf, "\r\n\r\n");
    ck_assert_msg(body != NULL, "no HTTP body in '%s'", buf);
    body += 4;
    body[strcspn(body, "\n")] = '\0';
    return harness_strf("%s", body);
}

static void kill_backend(pid_t pid)
{
    kill(pid, SIGKILL);
    ck_assert_int_eq(harness_wait_exit(pid, HARNESS_WAIT_MS), -1);
}

START_TEST(killed_backend_goes_down)
{
    int p1 = harness_free_port(), p2 = harness_free_port(), p3 = harness_free_port();
    harness_backend("127.0.0.1", p1, "b1", "name");
    pid_t pid2 = harness_backend("127.0.0.1", p2, "b2", "name");
    harness_backend("127.0.0.1", p3, "b3", "name");
    int lport = harness_free_port();
    struct harness_lb lb;
    harness_lb_start_json(&lb,
                          health_cfg(lport, 2, NULL, "health_check", tcp_check(200, 100, 2, 2),
                                     backend_json("b1", p1), backend_json("b2", p2),
                                     backend_json("b3", p3), NULL),
                          lport);
    ck_assert_str_eq(fetch(lport), "b1");
    ck_assert_str_eq(fetch(lport), "b2");
    ck_assert_str_eq(fetch(lport), "b3");

    kill_backend(pid2);
    long t0 = harness_now_ms();
    ck_assert_msg(harness_log_wait(lb.log,
                                   "warn: pool app backend b2 DOWN: connection refused (2/2 "
                                   "failures)",
                                   1, HARNESS_WAIT_MS),
                  "b2 never went down; log %s", lb.log);
    /* fall × interval + timeout = 500 ms; the bound only guards against a
     * check that never runs, with room for a loaded machine. */
    long took = harness_now_ms() - t0;
    ck_assert_msg(took < 3000, "b2 went down after %ld ms", took);

    int n1 = 0, n3 = 0;
    const char *prev = "";
    for (int i = 0; i < 12; i++) {
        const char *name = fetch(lport);
        ck_assert_msg(strcmp(name, "b2") != 0, "client %d sent to the dead b2", i);
        ck_assert_msg(strcmp(name, prev) != 0, "b1/b3 not alternating at client %d", i);
        n1 += strcmp(name, "b1") == 0;
        n3 += strcmp(name, "b3") == 0;
        prev = name;
    }
    ck_assert_int_eq(n1, 6);
    ck_assert_int_eq(n3, 6);
    ck_assert_int_eq(harness_log_count(lb.log, "connect failed"), 0);
    ck_assert_int_eq(harness_log_count(lb.log, " DOWN: "), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(http_500_down_then_up)
{
    const char *status = harness_write_file("h1.status", "200\n");
    int p1 = harness_free_port(), p2 = harness_free_port();
    harness_backend_status("127.0.0.1", p1, "h1", "http", status);
    harness_backend("127.0.0.1", p2, "h2", "http");
    int lport = harness_free_port();
    struct harness_lb lb;
    json_t *check = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:s, s:s}", "type", "http", "path",
                              "/healthz", "interval_ms", 100, "timeout_ms", 500, "rise", 3, "fall",
                              2, "expect_status", "200-399", "expect_body", "hello");
    harness_lb_start_json(&lb,
                          health_cfg(lport, 0, NULL, "health_check", check, backend_json("h1", p1),
                                     backend_json("h2", p2), NULL),
                          lport);
    ck_assert_str_eq(http_get(lport), "hello from h1");
    ck_assert_str_eq(http_get(lport), "hello from h2");

    harness_write_file("h1.status", "500\n");
    ck_assert_msg(harness_log_wait(lb.log,
                                   "warn: pool app backend h1 DOWN: http status 500 (2/2 "
                                   "failures)",
                                   1, HARNESS_WAIT_MS),
                  "h1 did not go down on 500; log %s", lb.log);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(http_get(lport), "hello from h2");

    harness_write_file("h1.status", "200\n");
    ck_assert_msg(harness_log_wait(lb.log,
                                   "info: pool app backend h1 UP: http status 200 (3/3 successes)",
                                   1, HARNESS_WAIT_MS),
                  "h1 did not come back on 200; log %s", lb.log);
    int h1 = 0;
    for (int i = 0; i < 4; i++)
        h1 += strcmp(http_get(lport), "hello from h1") == 0;
    ck_assert_int_eq(h1, 2);
    ck_assert_int_eq(harness_log_count(lb.log, " DOWN: "), 1);
    ck_assert_int_eq(harness_log_count(lb.log, " UP: "), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(silent_backend_times_out)
{
    int p1 = harness_free_port(), p2 = harness_free_port();
    harness_backend("127.0.0.1", p1, "s1", "silent");
    harness_backend("127.0.0.1", p2, "h2", "http");
    int lport = harness_free_port();
    struct harness_lb lb;
    json_t *check = json_pack("{s:s, s:i, s:i, s:i, s:i}", "type", "http", "interval_ms", 300,
                              "timeout_ms", 200, "rise", 1, "fall", 1);
    harness_lb_start_json(&lb,
                          health_cfg(lport, 0, NULL, "health_check", check, backend_json("s1", p1),
                                     backend_json("h2", p2), NULL),
                          lport);
    ck_assert_msg(harness_log_wait(lb.log,
                                   "warn: pool app backend s1 DOWN: timeout after 200 ms (1/1 "
                                   "failures)",
                                   1, HARNESS_WAIT_MS),
                  "the silent backend did not fail by timeout; log %s", lb.log);
    /* Clients go to h2 only; the silent one never sees another client. */
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(http_get(lport), "hello from h2");
    ck_assert_int_eq(harness_log_count(lb.log, " DOWN: "), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(passive_ejection)
{
    int dead = harness_free_port(), live = harness_free_port();
    harness_backend("127.0.0.1", live, "l1", "name");
    int lport = harness_free_port();
    struct harness_lb lb;
    json_t *passive = json_pack("{s:i, s:i}", "max_failures", 2, "ejection_ms", 800);
    harness_lb_start_json(&lb,
                          health_cfg(lport, 1, NULL, "passive", passive, backend_json("d1", dead),
                                     backend_json("l1", live), NULL),
                          lport);
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(fetch(lport), "l1");
    ck_assert_int_eq(harness_log_count(lb.log, "pool app backend d1 connect failed"), 2);
    ck_assert(harness_log_contains(lb.log, "warn: pool app backend d1 DOWN: ejected after 2 "
                                           "consecutive failed connects (for 800 ms)"));
    ck_assert_msg(harness_log_wait(lb.log,
                                   "info: pool app backend d1 UP: passive ejection of 800 ms over",
                                   1, HARNESS_WAIT_MS),
                  "the ejection never ended; log %s", lb.log);
    /* Back in rotation: it is tried (and fails) again, counting from zero,
     * so one failure does not eject it yet. */
    ck_assert_str_eq(fetch(lport), "l1");
    ck_assert_int_eq(harness_log_count(lb.log, "pool app backend d1 connect failed"), 3);
    ck_assert_int_eq(harness_log_count(lb.log, " DOWN: "), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(all_down_then_recover)
{
    int p1 = harness_free_port();
    pid_t pid = harness_backend("127.0.0.1", p1, "n1", "name");
    int lport = harness_free_port();
    struct harness_lb lb;
    harness_lb_start_json(&lb,
                          health_cfg(lport, 0, NULL, "health_check", tcp_check(100, 100, 1, 1),
                                     backend_json("n1", p1), NULL),
                          lport);
    ck_assert_str_eq(fetch(lport), "n1");
    kill_backend(pid);
    ck_assert(
        harness_log_wait(lb.log, "error: pool app has no available backend", 1, HARNESS_WAIT_MS));
    for (int i = 0; i < 3; i++) {
        int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
        ck_assert(fd >= 0);
        char buf[16];
        ck_assert_msg(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS) == 0,
                      "client not closed at once with no backend available");
        close(fd);
    }
    ck_assert(harness_log_wait(lb.log, "reason=\"no backend\"", 3, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, "connect failed"), 0);
    ck_assert_int_eq(harness_log_count(lb.log, "has no available backend"), 1);

    harness_backend("127.0.0.1", p1, "n1", "name");
    ck_assert(harness_log_wait(lb.log,
                               "info: pool app backend n1 UP: tcp connect ok (1/1 "
                               "successes)",
                               1, HARNESS_WAIT_MS));
    ck_assert(
        harness_log_contains(lb.log, "info: pool app has an available backend again (1 of 1)"));
    ck_assert_str_eq(fetch(lport), "n1");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

#define IPHASH_CLIENTS 30

static void map_clients(int lport, const char *out[IPHASH_CLIENTS])
{
    for (int i = 0; i < IPHASH_CLIENTS; i++) {
        const char *src = harness_strf("127.0.0.%d", 10 + i);
        out[i] = harness_fetch_name(src, "127.0.0.1", lport);
        ck_assert_msg(out[i] != NULL, "no answer for client %s", src);
    }
}

START_TEST(iphash_healthy_clients_stay)
{
    int p[3] = {harness_free_port(), harness_free_port(), harness_free_port()};
    harness_backend("127.0.0.1", p[0], "b1", "name");
    pid_t pid2 = harness_backend("127.0.0.1", p[1], "b2", "name");
    harness_backend("127.0.0.1", p[2], "b3", "name");
    int lport = harness_free_port();
    struct harness_lb lb;
    harness_lb_start_json(&lb,
                          health_cfg(lport, 0, "iphash", "health_check", tcp_check(100, 100, 1, 1),
                                     backend_json("b1", p[0]), backend_json("b2", p[1]),
                                     backend_json("b3", p[2]), NULL),
                          lport);
    const char *before[IPHASH_CLIENTS], *during[IPHASH_CLIENTS], *after[IPHASH_CLIENTS];
    map_clients(lport, before);
    int on_b2 = 0;
    for (int i = 0; i < IPHASH_CLIENTS; i++)
        on_b2 += strcmp(before[i], "b2") == 0;
    ck_assert_msg(on_b2 > 0 && on_b2 < IPHASH_CLIENTS, "%d of %d clients on b2", on_b2,
                  IPHASH_CLIENTS);

    kill_backend(pid2);
    ck_assert(harness_log_wait(lb.log, "pool app backend b2 DOWN", 1, HARNESS_WAIT_MS));
    map_clients(lport, during);
    for (int i = 0; i < IPHASH_CLIENTS; i++) {
        if (strcmp(before[i], "b2") == 0)
            ck_assert_msg(strcmp(during[i], "b2") != 0, "client %d still on the dead b2", i);
        else
            ck_assert_msg(strcmp(during[i], before[i]) == 0,
                          "client %d moved from %s to %s while only b2 was down", i, before[i],
                          during[i]);
    }

    harness_backend("127.0.0.1", p[1], "b2", "name");
    ck_assert(harness_log_wait(lb.log, "pool app backend b2 UP", 1, HARNESS_WAIT_MS));
    map_clients(lport, after);
    for (int i = 0; i < IPHASH_CLIENTS; i++)
        ck_assert_msg(strcmp(after[i], before[i]) == 0, "client %d did not return to %s (got %s)",
                      i, before[i], after[i]);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(slow_start_ramps)
{
    int p1 = harness_free_port(), p2 = harness_free_port();
    harness_backend("127.0.0.1", p1, "b1", "name");
    pid_t pid2 = harness_backend("127.0.0.1", p2, "b2", "name");
    int lport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = health_cfg(lport, 0, "weighted", "health_check", tcp_check(100, 100, 1, 1),
                             harness_backend_weighted(harness_lo(p1), "b1", 20),
                             harness_backend_weighted(harness_lo(p2), "b2", 20), NULL);
    harness_jset(cfg, "pools.0.slow_start_ms", json_integer(3000));
    harness_lb_start_json(&lb, cfg, lport);
    kill_backend(pid2);
    ck_assert(harness_log_wait(lb.log, "pool app backend b2 DOWN", 1, HARNESS_WAIT_MS));
    harness_backend("127.0.0.1", p2, "b2", "name");
    ck_assert(harness_log_wait(lb.log, "pool app backend b2 UP", 1, HARNESS_WAIT_MS));

    /* Just back: weight 1 of 20 (at most a few ramp steps later), so b2 gets
     * a small share, not half. */
    int b2 = 0;
    for (int i = 0; i < 21; i++)
        b2 += strcmp(fetch(lport), "b2") == 0;
    ck_assert_msg(b2 >= 1 && b2 <= 5, "b2 got %d of 21 clients right after coming back", b2);

    /* After the ramp: equal weights, strict alternation. */
    harness_sleep_ms(3300);
    b2 = 0;
    for (int i = 0; i < 20; i++)
        b2 += strcmp(fetch(lport), "b2") == 0;
    ck_assert_int_eq(b2, 10);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *health_it_suite(void)
{
    Suite *s = suite_create("health_it");
    TCase *tc = harness_tcase("health");
    tcase_add_test(tc, killed_backend_goes_down);
    tcase_add_test(tc, http_500_down_then_up);
    tcase_add_test(tc, silent_backend_times_out);
    tcase_add_test(tc, passive_ejection);
    tcase_add_test(tc, all_down_then_recover);
    tcase_add_test(tc, iphash_healthy_clients_stay);
    tcase_add_test(tc, slow_start_ramps);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(health_it_suite)
