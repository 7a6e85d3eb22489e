/* Integration: GET /metrics on a real lb's admin listener after known
 * traffic through real backends. The text passes the exposition validator
 * (tests/prom_check.c) and every counter equals what the test did: sessions,
 * bytes each way, a failed connect, listener totals, open sessions, health
 * check durations. */
#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/prom_check.h"
#include "tests/test.h"

#define SESSIONS 5
#define SESSION_BYTES 3000

/* Two listeners: web -> pool app (echo backend e1, tcp checks every
 * 100 ms), void -> pool gone (backend "dead" where nothing listens, no
 * checks, no retries, ejected after one failed connect). */
static json_t *metrics_config(int lport, int vport, int aport, int eport, int dport)
{
    json_t *app = harness_pool_json(
        "app", NULL, harness_jarray(harness_backend_json(harness_lo(eport), "e1"), NULL));
    harness_jset(app, "health_check",
                 json_pack("{s:s, s:i, s:i, s:i, s:i}", "type", "tcp", "interval_ms", 100,
                           "timeout_ms", 500, "rise", 1, "fall", 3));
    json_t *gone = harness_pool_json(
        "gone", NULL, harness_jarray(harness_backend_json(harness_lo(dport), "dead"), NULL));
    harness_jset(gone, "retries", json_integer(0));
    harness_jset(gone, "passive.max_failures", json_integer(1));
    json_t *cfg =
        json_pack("{s:{s:s}, s:[o, o], s:[o, o]}", "admin", "listen", harness_lo(aport),
                  "listeners", harness_listener_json("web", harness_lo(lport), "app"),
                  harness_listener_json("void", harness_lo(vport), "gone"), "pools", app, gone);
    return harness_jkeep(cfg);
}

/* GET /metrics: asserts status 200 and the content type, validates the
 * body line by line and returns it (freed at teardown). */
static const char *fetch_metrics(int aport)
{
    int status = 0;
    const char *headers = NULL, *body = NULL;
    ck_assert_int_eq(harness_http(aport, "GET", "/metrics", NULL, NULL, &status, &headers, &body),
                     0);
    ck_assert_int_eq(status, 200);
    const char *type = harness_http_header(headers, "Content-Type");
    ck_assert_ptr_nonnull(type);
    ck_assert_str_eq(type, "text/plain; version=0.0.4; charset=utf-8");
    char err[512];
    ck_assert_msg(prom_check(body, err, sizeof(err)), "invalid /metrics: %s\n%s", err, body);
    return body;
}

static double value(const char *text, const char *series)
{
    double v = -1;
    ck_assert_msg(prom_value(text, series, &v), "no sample %s in\n%s", series, text);
    return v;
}

#define ASSERT_VALUE(text, series, want)                                                           \
    do {                                                                                           \
        double got_ = value(text, series);                                                         \
        ck_assert_msg(got_ == (double)(want), "%s is %.17g, want %.17g", series, got_,             \
                      (double)(want));                                                             \
    } while (0)

/* One session through lb: sends len bytes, reads the echo back, closes. */
static void echo_session(int lport, size_t len)
{
    static char out[SESSION_BYTES], in[SESSION_BYTES];
    for (size_t i = 0; i < len; i++)
        out[i] = (char)('a' + i % 26);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert(harness_send_all(fd, out, len, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_recv_n(fd, in, len, HARNESS_WAIT_MS), (ssize_t)len);
    ck_assert(memcmp(in, out, len) == 0);
    close(fd);
}

static long long unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

struct setup {
    struct harness_lb lb;
    int lport, vport, aport;
    long long started_ms;
};

static void start(struct setup *st)
{
    int eport = harness_free_port(), dport = harness_free_port();
    st->lport = harness_free_port();
    st->vport = harness_free_port();
    st->aport = harness_free_port();
    harness_backend("127.0.0.1", eport, "e1", "echo");
    st->started_ms = unix_ms();
    harness_lb_start_json(&st->lb, metrics_config(st->lport, st->vport, st->aport, eport, dport),
                          st->lport);
    ck_assert_msg(harness_wait_listening(st->aport, HARNESS_WAIT_MS), "no admin listener; log %s",
                  st->lb.log);
}

START_TEST(counters_match_traffic)
{
    struct setup st;
    start(&st);
    for (int i = 0; i < SESSIONS; i++)
        echo_session(st.lport, SESSION_BYTES);
    int fd = harness_connect("127.0.0.1", st.vport, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert_msg(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0, "void client not closed");
    close(fd);
    ck_assert_msg(harness_log_wait(st.lb.log, "session end", SESSIONS + 1, HARNESS_WAIT_MS),
                  "sessions did not end; log %s", st.lb.log);
    ck_assert_int_eq(harness_log_count(st.lb.log, "backend dead connect failed"), 1);

    /* Checks run every 100 ms from the start; wait for a few. */
    const char *text = fetch_metrics(st.aport);
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    const char *checks =
        "lb_backend_health_check_duration_seconds_count{pool=\"app\",backend=\"e1\"}";
    while (value(text, checks) < 3 && harness_now_ms() < deadline) {
        harness_sleep_ms(50);
        text = fetch_metrics(st.aport);
    }
    ck_assert_msg(value(text, checks) >= 3, "no health checks counted:\n%s", text);

    ASSERT_VALUE(text, "lb_up", 1);
    double start_s = value(text, "lb_start_time_seconds");
    ck_assert_msg(start_s >= st.started_ms / 1000.0 - 1 && start_s <= unix_ms() / 1000.0 + 1,
                  "lb_start_time_seconds %.3f, lb started at %lld ms", start_s, st.started_ms);
    ASSERT_VALUE(text, "lb_reloads_total{result=\"ok\"}", 0);
    ASSERT_VALUE(text, "lb_reloads_total{result=\"failed\"}", 0);
    ASSERT_VALUE(text, "lb_log_lines_dropped_total", 0);

    ASSERT_VALUE(text, "lb_listener_connections_total{listener=\"web\"}", SESSIONS);
    ASSERT_VALUE(text, "lb_listener_connections_total{listener=\"void\"}", 1);
    ASSERT_VALUE(text, "lb_listener_active_connections{listener=\"web\"}", 0);
    ASSERT_VALUE(text, "lb_listener_active_connections{listener=\"void\"}", 0);

    ASSERT_VALUE(text, "lb_backend_up{pool=\"app\",backend=\"e1\"}", 1);
    ASSERT_VALUE(text, "lb_backend_up{pool=\"gone\",backend=\"dead\"}", 0);
    ASSERT_VALUE(text, "lb_backend_active_connections{pool=\"app\",backend=\"e1\"}", 0);
    ASSERT_VALUE(text, "lb_backend_connections_total{pool=\"app\",backend=\"e1\"}", SESSIONS);
    ASSERT_VALUE(text, "lb_backend_connections_total{pool=\"gone\",backend=\"dead\"}", 0);
    ASSERT_VALUE(text, "lb_backend_connect_failures_total{pool=\"app\",backend=\"e1\"}", 0);
    ASSERT_VALUE(text, "lb_backend_connect_failures_total{pool=\"gone\",backend=\"dead\"}", 1);
    ASSERT_VALUE(text, "lb_backend_bytes_total{pool=\"app\",backend=\"e1\",direction=\"in\"}",
                 SESSIONS * SESSION_BYTES);
    ASSERT_VALUE(text, "lb_backend_bytes_total{pool=\"app\",backend=\"e1\",direction=\"out\"}",
                 SESSIONS * SESSION_BYTES);
    ASSERT_VALUE(text, "lb_backend_bytes_total{pool=\"gone\",backend=\"dead\",direction=\"in\"}",
                 0);
    ASSERT_VALUE(text, "lb_backend_bytes_total{pool=\"gone\",backend=\"dead\",direction=\"out\"}",
                 0);

    /* Loopback connects take well under 5 s: every check is in the last
     * finite bucket; the pool without checks has no check histogram. */
    double count = value(text, checks);
    ASSERT_VALUE(text,
                 "lb_backend_health_check_duration_seconds_bucket{pool=\"app\",backend=\"e1\","
                 "le=\"5\"}",
                 count);
    double sum = value(text, "lb_backend_health_check_duration_seconds_sum{pool=\"app\","
                             "backend=\"e1\"}");
    ck_assert_msg(sum > 0 && sum < count * 5, "check duration sum %g for %g checks", sum, count);
    ck_assert_ptr_null(strstr(text, "health_check_duration_seconds_count{pool=\"gone\""));

    /* tcp mode: the HTTP families are there, all 0. */
    ASSERT_VALUE(text, "lb_listener_http_responses_total{listener=\"web\",class=\"2xx\"}", 0);
    ASSERT_VALUE(text, "lb_backend_http_responses_total{pool=\"app\",backend=\"e1\",class=\"5xx\"}",
                 0);
    ASSERT_VALUE(text, "lb_backend_http_reused_total{pool=\"app\",backend=\"e1\"}", 0);
    ASSERT_VALUE(text, "lb_backend_idle_connections{pool=\"gone\",backend=\"dead\"}", 0);
    ASSERT_VALUE(text, "lb_pool_http_request_duration_seconds_count{pool=\"app\"}", 0);
    ck_assert_int_eq(harness_lb_stop(&st.lb), 0);
}
END_TEST

/* While a session is open it shows as active on its listener and backend;
 * once it ends, both are back to 0 and the totals stay. */
START_TEST(active_sessions)
{
    struct setup st;
    start(&st);
    int fd = harness_connect("127.0.0.1", st.lport, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert(harness_send_all(fd, "ping", 4, HARNESS_WAIT_MS));
    char buf[4];
    ck_assert_int_eq(harness_recv_n(fd, buf, 4, HARNESS_WAIT_MS), 4);

    const char *text = fetch_metrics(st.aport);
    ASSERT_VALUE(text, "lb_listener_active_connections{listener=\"web\"}", 1);
    ASSERT_VALUE(text, "lb_backend_active_connections{pool=\"app\",backend=\"e1\"}", 1);
    ASSERT_VALUE(text, "lb_backend_connections_total{pool=\"app\",backend=\"e1\"}", 1);
    ASSERT_VALUE(text, "lb_backend_bytes_total{pool=\"app\",backend=\"e1\",direction=\"out\"}", 4);
    ASSERT_VALUE(text, "lb_backend_bytes_total{pool=\"app\",backend=\"e1\",direction=\"in\"}", 4);

    close(fd);
    ck_assert_msg(harness_log_wait(st.lb.log, "session end", 1, HARNESS_WAIT_MS),
                  "session did not end; log %s", st.lb.log);
    text = fetch_metrics(st.aport);
    ASSERT_VALUE(text, "lb_listener_active_connections{listener=\"web\"}", 0);
    ASSERT_VALUE(text, "lb_listener_connections_total{listener=\"web\"}", 1);
    ASSERT_VALUE(text, "lb_backend_active_connections{pool=\"app\",backend=\"e1\"}", 0);
    ASSERT_VALUE(text, "lb_backend_connections_total{pool=\"app\",backend=\"e1\"}", 1);
    ck_assert_int_eq(harness_lb_stop(&st.lb), 0);
}
END_TEST

static Suite *metrics_it_suite(void)
{
    Suite *s = suite_create("metrics_it");
    TCase *tc = harness_tcase("metrics");
    tcase_add_test(tc, counters_match_traffic);
    tcase_add_test(tc, active_sessions);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(metrics_it_suite)
