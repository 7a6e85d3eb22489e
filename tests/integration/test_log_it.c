/* Integration: a stderr that stops draining (a stalled journald, a full
 * `| logger`) costs log lines, never traffic. lb runs with its output on a
 * pipe the test does not read: 10,000 sessions pass byte-exact, the
 * dropped lines are counted in /api/v1/status and /metrics alike, and once
 * the pipe is read every line is whole and the drop notice gives the same
 * count; lb still stops cleanly. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"
#include "tests/prom_check.h"

#define SESSIONS 10000
#define LOG_TCASE_TIMEOUT 120
#define NOTICE "log lines dropped: stderr was not draining"

static json_t *config(int lport, int aport, int bport)
{
    json_t *pool = harness_pool_json(
        "app", NULL, harness_jarray(harness_backend_json(harness_lo(bport), "echo"), NULL));
    json_t *cfg = json_pack("{s:{s:s}, s:{s:s}, s:[o], s:[o]}", "admin", "listen",
                            harness_lo(aport), "log", "level", "info", "listeners",
                            harness_listener_json("web", harness_lo(lport), "app"), "pools", pool);
    return harness_jkeep(cfg);
}

/* One short session through lb: text out, the same text back, close. */
static void session(int lport, int i)
{
    char msg[32], back[32];
    int len = snprintf(msg, sizeof(msg), "session %05d\n", i);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "session %d: no connect", i);
    ck_assert_msg(harness_send_all(fd, msg, (size_t)len, HARNESS_WAIT_MS), "session %d: send", i);
    ssize_t n = harness_recv_n(fd, back, (size_t)len, HARNESS_WAIT_MS);
    close(fd);
    ck_assert_msg(n == len && memcmp(back, msg, (size_t)len) == 0,
                  "session %d: %zd bytes back (want %d): lb stalled on its log?", i, n, len);
}

static long long status_dropped(int aport)
{
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    return harness_jint(r.json, "log.dropped");
}

/* Every line of the log is whole: a timestamp, a level, a newline. The sum
 * of the counts the drop notices give. */
static long long check_lines(const char *path)
{
    const char *text = harness_read_file(path);
    long long notices = 0;
    int lines = 0;
    for (const char *p = text; *p; lines++) {
        const char *eol = strchr(p, '\n');
        ck_assert_msg(eol != NULL, "line %d has no newline: %s", lines, p);
        ck_assert_msg(eol - p > 25 && p[4] == '-' && p[10] == 'T' && p[23] == 'Z' && p[24] == ' ',
                      "line %d is not a whole log line: %.*s", lines, (int)(eol - p), p);
        unsigned long long n;
        char tail[64];
        if (sscanf(p + 25, "warn: %llu log lines dropped: %63[^\n]", &n, tail) == 2) {
            ck_assert_str_eq(tail, "stderr was not draining");
            notices += (long long)n;
        }
        p = eol + 1;
    }
    return notices;
}

START_TEST(stalled_stderr_keeps_serving)
{
    int bport = harness_free_port(), lport = harness_free_port(), aport = harness_free_port();
    harness_backend("127.0.0.1", bport, "echo", "echo");
    struct harness_lb lb;
    harness_lb_start_pipe(&lb, harness_jtext(config(lport, aport, bport)), lport);
    ck_assert(harness_wait_listening(aport, HARNESS_WAIT_MS));

    /* ~200 bytes of "session end" each: far more than the pipe and the
     * 1 MiB buffer hold. */
    for (int i = 0; i < SESSIONS; i++)
        session(lport, i);
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    for (;;) {
        struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
        if (harness_jint(r.json, "connections.active") == 0)
            break;
        ck_assert_msg(harness_now_ms() < deadline, "sessions still open");
        harness_sleep_ms(10);
    }
    ck_assert_int_eq(harness_jint(harness_call(aport, "GET", "/api/v1/status", NULL, NULL).json,
                                  "connections.total"),
                     SESSIONS);

    long long dropped = status_dropped(aport);
    ck_assert_msg(dropped > 0 && dropped < SESSIONS, "log.dropped %lld", dropped);
    struct harness_reply m = harness_call(aport, "GET", "/metrics", NULL, NULL);
    char err[256];
    ck_assert_msg(prom_check(m.body, err, sizeof(err)), "bad /metrics: %s", err);
    double v;
    ck_assert(prom_value(m.body, "lb_log_lines_dropped_total", &v));
    ck_assert_msg(v == (double)dropped, "lb_log_lines_dropped_total %.0f, status %lld", v, dropped);
    ck_assert(harness_log_count(lb.log, "session end") == 0); /* nothing read yet */

    /* The reader wakes up: the buffer drains, then the notice. */
    ck_assert_msg(harness_lb_log_wait(&lb, NOTICE, 1, 10000), "no '%s' in %s", NOTICE, lb.log);
    ck_assert_int_eq(check_lines(lb.log), dropped);
    int ends = harness_log_count(lb.log, "info: session end client=127.0.0.1:");
    ck_assert_msg(ends + dropped == SESSIONS, "%d session lines read + %lld dropped != %d", ends,
                  dropped, SESSIONS);
    ck_assert_int_eq(status_dropped(aport), dropped);

    /* And it flows on: a session now is logged at once. */
    session(lport, SESSIONS);
    ck_assert(harness_lb_log_wait(&lb, "info: session end", ends + 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    ck_assert(harness_log_contains(lb.log, "info: exiting"));
    ck_assert_int_eq(check_lines(lb.log), dropped);
}
END_TEST

static Suite *log_it_suite(void)
{
    Suite *s = suite_create("log_it");
    TCase *tc = tcase_create("stalled");
    tcase_add_checked_fixture(tc, harness_setup, harness_teardown);
    tcase_set_timeout(tc, LOG_TCASE_TIMEOUT);
    tcase_add_test(tc, stalled_stderr_keeps_serving);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(log_it_suite)
