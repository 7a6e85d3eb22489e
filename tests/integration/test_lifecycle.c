/* Integration: how lb stops. SIGTERM closes the listeners at once, lets open
 * sessions finish within shutdown_grace_ms, closes what is left when the
 * grace ends, and exits 0 either way. SIGUSR1 stops nothing. */
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
    json_t *cfg =
        harness_cfg(&(struct harness_conf){.listen = harness_lo(lport), .grace_ms = grace_ms});
    harness_jappend(cfg, "pools.0.backends", harness_backend_json(harness_lo(bport), "e1"));
    harness_lb_start_json(lb, cfg, lport);
    return lport;
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
    harness_echo_roundtrip(fd, "before");

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

    harness_echo_roundtrip(fd, "during grace");
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
    harness_echo_roundtrip(fd, "hold me");

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

/* The log line after its "TIMESTAMP " prefix must be exactly want, n times. */
static void assert_lines(const struct harness_lb *lb, const char *want, int n)
{
    int exact = 0;
    const char *text = harness_read_file(lb->log);
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 25 && p[23] == 'Z' && p[24] == ' ' && len - 25 == strlen(want) &&
            memcmp(p + 25, want, len - 25) == 0)
            exact++;
        p += len + (eol ? 1 : 0);
    }
    ck_assert_msg(exact == n, "%d lines '%s' in %s, want %d", exact, want, lb->log, n);
}

/* SIGUSR1 without an access log means nothing: each is logged once and
 * ignored; sessions, open or new, go on, and SIGTERM still stops lb with
 * 0. (SIGUSR2 is a binary upgrade: tests/integration/test_upgrade.c.) */
START_TEST(sigusr_ignored)
{
    struct harness_lb lb;
    int lport = start_echo(&lb, 5000);
    ck_assert(harness_log_wait(lb.log, "started (pid", 1, HARNESS_WAIT_MS));
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert(fd >= 0);
    harness_echo_roundtrip(fd, "before");

    static const char usr1[] = "info: SIGUSR1 received: no access log to reopen (\"log\": "
                               "{\"access_log\"} is not set)";
    harness_lb_signal(&lb, SIGUSR1);
    ck_assert_msg(harness_log_wait(lb.log, usr1, 1, HARNESS_WAIT_MS), "no '%s' in %s", usr1,
                  lb.log);
    harness_lb_signal(&lb, SIGUSR1);
    ck_assert_msg(harness_log_wait(lb.log, usr1, 2, HARNESS_WAIT_MS), "no second '%s' in %s", usr1,
                  lb.log);
    assert_lines(&lb, usr1, 2);

    harness_echo_roundtrip(fd, "after the signals");
    int fd2 = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert(fd2 >= 0);
    harness_echo_roundtrip(fd2, "a new session");
    close(fd2);
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    ck_assert_int_eq(harness_log_count(lb.log, " received: "), 2);
}
END_TEST

static Suite *lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = harness_tcase("sigterm");
    tcase_add_test(tc, sigterm_idle_exits_at_once);
    tcase_add_test(tc, sigterm_drains_session);
    tcase_add_test(tc, sigterm_grace_expires);
    suite_add_tcase(s, tc);
    tc = harness_tcase("sigusr");
    tcase_add_test(tc, sigusr_ignored);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(lifecycle_suite)
