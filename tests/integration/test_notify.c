/* Integration: lb tells systemd its state over $NOTIFY_SOCKET (sd_notify's
 * datagrams, lb/notify.c), read here from a socket the test binds, as
 * systemd would: READY=1 with a STATUS= summary once the listeners are
 * bound; around a SIGHUP RELOADING=1 with MONOTONIC_USEC (a time of the
 * reload's, on the monotonic clock) then READY=1, also when the reload
 * fails (with why); STOPPING=1 at SIGTERM; a binary upgrade's MAINPID=.
 * A socket in the abstract namespace ("@name") works the same. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

/* Binds a datagram socket at path (a leading '@': abstract). */
static int notify_bind(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    ck_assert_uint_lt(n, sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

/* The next datagram (bounded wait), as text. */
static const char *notify_next(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_msg(poll(&p, 1, HARNESS_WAIT_MS) == 1, "no datagram from lb");
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    return harness_strf("%s", buf);
}

static unsigned long long monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

static const char *config(int lport, int bport)
{
    struct harness_conf c = {.listen = harness_lo(lport),
                             .backends = harness_strf("{\"address\": \"127.0.0.1:%d\"}", bport)};
    return harness_config(&c);
}

/* Starts lb with $NOTIFY_SOCKET set to path (for it alone). */
static void start(struct harness_lb *lb, const char *path, int lport, int bport)
{
    setenv("NOTIFY_SOCKET", path, 1);
    harness_lb_start(lb, config(lport, bport), lport);
    unsetenv("NOTIFY_SOCKET");
}

START_TEST(notify_sequence)
{
    const char *path = harness_strf("%s/notify.sock", harness_dir());
    int fd = notify_bind(path);
    int lport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "echo");
    struct harness_lb lb;
    start(&lb, path, lport, bport);
    ck_assert_str_eq(notify_next(fd),
                     "READY=1\nSTATUS=generation 1: 1 listeners, 1 pools, 0 open sessions");

    /* A reload: RELOADING=1 with a time of its own, then READY=1. */
    unsigned long long before = monotonic_us();
    harness_lb_signal(&lb, SIGHUP);
    const char *r = notify_next(fd);
    unsigned long long after = monotonic_us(), at = 0;
    ck_assert_msg(sscanf(r, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading", &at) == 1,
                  "got \"%s\"", r);
    ck_assert_str_eq(strstr(r, "\nSTATUS="), "\nSTATUS=reloading");
    ck_assert(at >= before && at <= after);
    ck_assert_str_eq(notify_next(fd),
                     "READY=1\nSTATUS=generation 2: 1 listeners, 1 pools, 0 open sessions");

    /* A reload that fails says so, the generation in force kept. */
    harness_lb_rewrite(&lb, "{ not json");
    harness_lb_signal(&lb, SIGHUP);
    ck_assert_str_eq(strstr(notify_next(fd), "\nSTATUS="), "\nSTATUS=reloading");
    const char *failed = notify_next(fd);
    const char *want = harness_strf("READY=1\nSTATUS=reload failed (generation 2 in force): "
                                    "%s:1:3: syntax error: ",
                                    lb.config);
    ck_assert_msg(strncmp(failed, want, strlen(want)) == 0, "got \"%s\", want \"%s...\"", failed,
                  want);

    /* Stopped. */
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    ck_assert_str_eq(notify_next(fd), "STOPPING=1\nSTATUS=stopping (SIGTERM): 0 open sessions");
    close(fd);
}
END_TEST

START_TEST(notify_abstract)
{
    const char *path = harness_strf("@lb-test-notify-%ld", (long)getpid());
    int fd = notify_bind(path);
    int lport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "echo");
    struct harness_lb lb;
    start(&lb, path, lport, bport);
    ck_assert_str_eq(notify_next(fd),
                     "READY=1\nSTATUS=generation 1: 1 listeners, 1 pools, 0 open sessions");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    ck_assert_str_eq(notify_next(fd), "STOPPING=1\nSTATUS=stopping (SIGTERM): 0 open sessions");
    close(fd);
}
END_TEST

/* A binary upgrade: the new process says it is the main one now, with its
 * READY=1; the old one, stopping afterwards, sends nothing (a STOPPING=1
 * would make systemd stop the service); only the new one's SIGTERM does. */
START_TEST(notify_upgrade)
{
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    harness_lb_install_copy();
    const char *path = harness_strf("%s/notify.sock", harness_dir());
    int fd = notify_bind(path);
    int lport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "echo");
    struct harness_lb lb;
    start(&lb, path, lport, bport);
    ck_assert_str_eq(notify_next(fd),
                     "READY=1\nSTATUS=generation 1: 1 listeners, 1 pools, 0 open sessions");
    harness_lb_signal(&lb, SIGUSR2);
    pid_t pid = harness_lb_upgrade_pid(&lb, 1);
    ck_assert_str_eq(notify_next(fd),
                     harness_strf("MAINPID=%d\nREADY=1\nSTATUS=generation 1: 1 listeners, 1 "
                                  "pools, 0 open sessions",
                                  pid));
    ck_assert_int_eq(harness_lb_wait_exit(&lb, HARNESS_WAIT_MS), 0);
    kill(pid, SIGTERM);
    ck_assert_int_eq(harness_wait_exit(pid, HARNESS_WAIT_MS), 0);
    ck_assert_str_eq(notify_next(fd), "STOPPING=1\nSTATUS=stopping (SIGTERM): 0 open sessions");
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 200), 0); /* and nothing else */
    close(fd);
}
END_TEST

/* Without $NOTIFY_SOCKET nothing is sent, and a bad value is one warning. */
START_TEST(notify_none_or_bad)
{
    int lport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "echo");
    struct harness_lb lb;
    start(&lb, "relative/path", lport, bport);
    ck_assert(harness_lb_log_wait(&lb,
                                  "warn: NOTIFY_SOCKET \"relative/path\" is not a socket path; "
                                  "systemd is not told lb's state",
                                  1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    /* A socket that vanished: one warning, lb goes on. */
    const char *path = harness_strf("%s/gone.sock", harness_dir());
    close(notify_bind(path));
    unlink(path);
    start(&lb, path, lport, bport);
    ck_assert(
        harness_lb_log_wait(&lb, "warn: NOTIFY_SOCKET: cannot tell systemd: ", 1, HARNESS_WAIT_MS));
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "reload ok: generation 2", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, "NOTIFY_SOCKET"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = harness_tcase("notify");
    tcase_add_test(tc, notify_sequence);
    tcase_add_test(tc, notify_abstract);
    tcase_add_test(tc, notify_none_or_bad);
    tcase_add_test(tc, notify_upgrade);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(notify_suite)
