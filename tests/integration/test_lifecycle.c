/* Integration: how lb stops. SIGTERM closes the listeners at once, lets open
 * sessions finish within shutdown_grace_ms, closes what is left when the
 * grace ends, and exits 0 either way. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

static int start_echo(struct harness_lb *lb, unsigned grace_ms)
{
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    int lport = harness_free_port();
    const char *cfg = harness_config(&(struct harness_conf){
        .listen = harness_strf("127.0.0.1:%d", lport),
        .grace_ms = grace_ms,
        .backends = harness_strf("{\"address\": \"127.0.0.1:%d\", \"name\": \"e1\"}", bport),
    });
    harness_lb_start(lb, cfg, lport);
    return lport;
}

static void echo_roundtrip(int fd, const char *msg)
{
    size_t len = strlen(msg);
    char buf[64] = {0};
    ck_assert(len < sizeof(buf));
    ck_assert_msg(harness_send_all(fd, msg, len, HARNESS_WAIT_MS), "send failed");
    ssize_t n = harness_recv_n(fd, buf, len, HARNESS_WAIT_MS);
    ck_assert_msg(n == (ssize_t)len && memcmp(buf, msg, len) == 0, "echo of '%s' came back as '%s'",
                  msg, buf);
}

START_TEST(sigterm_idle_exits_at_once)
{
    struct harness_lb lb;
    start_echo(&lb, 5000);
    long t0 = harness_now_ms();
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    long took = harness_now_ms() - t0;
    ck_assert_msg(took < 1000, "lb with no sessions took %ld ms to exit on SIGTERM", took);
}
END_TEST

/* grace 5000: the listener closes at once, the open session keeps working,
 * and lb exits as soon as that session ends. */
START_TEST(sigterm_drains_session)
{
    struct harness_lb lb;
    int lport = start_echo(&lb, 5000);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert(fd >= 0);
    echo_roundtrip(fd, "before");

    long t0 = harness_now_ms();
    kill(lb.pid, SIGTERM);
    ck_assert_msg(harness_wait_not_listening(lport, 1000), "listener still open 1 s after SIGTERM");
    int late = harness_connect("127.0.0.1", lport, 1000);
    int late_errno = errno;
    if (late >= 0)
        close(late);
    ck_assert_msg(late < 0 && late_errno == ECONNREFUSED,
                  "a new connect after SIGTERM was not refused (%s)",
                  late >= 0 ? "accepted" : strerror(late_errno));

    echo_roundtrip(fd, "during grace");
    long t_close = harness_now_ms();
    close(fd);
    int status = harness_lb_wait_exit(&lb, 5000);
    long now = harness_now_ms();
    ck_assert_int_eq(status, 0);
    ck_assert_msg(now - t_close < 2000, "lb exited %ld ms after its last session ended",
                  now - t_close);
    ck_assert_msg(now - t0 < 4500, "lb waited for the grace to run out (%ld ms)", now - t0);
    ck_assert(harness_log_contains(lb.log, "reason=\"client closed\""));
    ck_assert(!harness_log_contains(lb.log, "reason=\"shutdown\""));
}
END_TEST

/* grace 300: a session still open when it runs out is closed by lb. */
START_TEST(sigterm_grace_expires)
{
    struct harness_lb lb;
    int lport = start_echo(&lb, 300);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert(fd >= 0);
    echo_roundtrip(fd, "hold me");

    long t0 = harness_now_ms();
    kill(lb.pid, SIGTERM);
    long waited = harness_wait_closed(fd, 5000);
    ck_assert_msg(waited >= 0, "session still open 5 s after SIGTERM with grace 300 ms");
    ck_assert_msg(waited >= 250, "session closed %ld ms after SIGTERM, before the 300 ms grace",
                  waited);
    close(fd);
    int status = harness_lb_wait_exit(&lb, 5000);
    long took = harness_now_ms() - t0;
    ck_assert_int_eq(status, 0);
    ck_assert_msg(took >= 250 && took < 3000, "lb exited %ld ms after SIGTERM (grace 300)", took);
    ck_assert_msg(harness_log_contains(lb.log, "reason=\"shutdown\""),
                  "no reason=\"shutdown\" in %s", lb.log);
}
END_TEST

static Suite *lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("sigterm");
    tcase_add_checked_fixture(tc, harness_setup, harness_teardown);
    tcase_set_timeout(tc, HARNESS_TCASE_TIMEOUT);
    tcase_add_test(tc, sigterm_idle_exits_at_once);
    tcase_add_test(tc, sigterm_drains_session);
    tcase_add_test(tc, sigterm_grace_expires);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(lifecycle_suite)
