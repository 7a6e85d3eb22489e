/* Integration: a binary upgrade (SIGUSR2, lb/upgrade.h). lb runs from a
 * copy of the binary in the test's folder, which is replaced the way a
 * package upgrade replaces it (a new file renamed over the old one); the
 * test is a subreaper, so the new lb becomes its child once the old one
 * exits.
 *   - under a stream of short connections and across a 64 MiB echo
 *     transfer, the new process takes the listening sockets: no connection
 *     fails, the transfer arrives byte-exact, the old process exits 0 once
 *     it ends, and the new one runs the new file;
 *   - an upgrade whose config does not load changes nothing (the old
 *     process keeps serving, no connection fails), and the next one, with a
 *     listener added and one removed, binds the new and lets the removed
 *     one close with the old process. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define STREAM_TOTAL (64ull * 1024 * 1024)
#define STREAM_DEADLINE_MS 90000
#define UPGRADE_TCASE_TIMEOUT 180

static const char *const N1[] = {"n1\n", NULL};

/* Stops the loop: not one connection failed. */
static void loop_stop(struct harness_loop *l)
{
    struct harness_loop done = harness_loop_stop(l);
    ck_assert_msg(done.failed == 0, "%ld connections failed; the first: %s", done.failed,
                  done.first_error);
}

static const char *exe_of(pid_t pid)
{
    char buf[1024];
    ssize_t n = readlink(harness_strf("/proc/%d/exe", pid), buf, sizeof(buf) - 1);
    ck_assert_int_gt(n, 0);
    return harness_strf("%.*s", (int)n, buf);
}

static long long status_pid(int aport)
{
    return harness_jint(harness_call(aport, "GET", "/api/v1/status", NULL, NULL).json, "pid");
}

struct env {
    struct harness_lb lb;
    int lport, sport, aport, nport, eport;
    json_t *cfg;
    bool upgraded;
};

static void env_start(struct env *e)
{
    e->upgraded = false;
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    e->nport = harness_free_port();
    e->eport = harness_free_port();
    harness_backend("127.0.0.1", e->nport, "n1", "name");
    harness_backend("127.0.0.1", e->eport, "echo", "echo");
    e->lport = harness_free_port();
    e->sport = harness_free_port();
    e->aport = harness_free_port();
    e->cfg = harness_jkeep(json_pack(
        "{s:{s:s}, s:i, s:{s:s}, s:[o, o], s:[o, o]}", "log", "level", "info", "shutdown_grace_ms",
        60000, "admin", "listen", harness_lo(e->aport), "listeners",
        harness_listener_json("web", harness_lo(e->lport), "names"),
        harness_listener_json("stream", harness_lo(e->sport), "echoes"), "pools",
        harness_pool_json("names", NULL,
                          harness_jarray(harness_backend_json(harness_lo(e->nport), "n1"), NULL)),
        harness_pool_json(
            "echoes", NULL,
            harness_jarray(harness_backend_json(harness_lo(e->eport), "echo"), NULL))));
    /* reuse_port on one: a hand-off must not leave its SYN filter on it. */
    harness_jset(e->cfg, "listeners.0.reuse_port", json_true());
    harness_lb_install_copy();
    harness_lb_start_json(&e->lb, e->cfg, e->aport);
}

/* At a third of the stream: the binary is replaced and SIGUSR2 sent, and
 * the rest flows only once the new process serves. */
static void upgrade_step(void *arg, uint64_t received)
{
    struct env *e = arg;
    if (e->upgraded || received < STREAM_TOTAL / 3)
        return;
    harness_lb_install_copy(); /* the new version, as a package puts it */
    harness_lb_signal(&e->lb, SIGUSR2);
    ck_assert_msg(harness_lb_log_wait(&e->lb, "serves the listening sockets", 1, HARNESS_WAIT_MS),
                  "no hand-off in %s", e->lb.log);
    e->upgraded = true;
}

/* 64 MiB through the stream listener, checked byte by byte, with the
 * upgrade a third of the way. */
static void stream_across_upgrade(struct env *e)
{
    int fd = harness_connect_ok("127.0.0.1", e->sport);
    harness_stream_echo(fd, STREAM_TOTAL, STREAM_DEADLINE_MS, upgrade_step, e);
    close(fd);
    ck_assert(e->upgraded);
}

START_TEST(upgrade_under_load)
{
    struct env e;
    env_start(&e);
    pid_t old = e.lb.pid;
    struct harness_loop *st = harness_loop_start(e.lport, N1);
    harness_loop_progress(st, 200);

    stream_across_upgrade(&e);
    pid_t pid = harness_lb_upgrade_pid(&e.lb, 1);
    ck_assert(harness_lb_log_wait(&e.lb, "binary upgrade: 3 listening sockets from the old process",
                                  1, HARNESS_WAIT_MS));
    /* The old process served the stream to its end, then exits 0. */
    ck_assert_int_eq(harness_lb_wait_exit(&e.lb, HARNESS_WAIT_MS), 0);
    const char *end =
        harness_strf("listener=stream pool=echoes backend=echo bytes_from_client=%llu "
                     "bytes_from_backend=%llu ",
                     STREAM_TOTAL, STREAM_TOTAL);
    ck_assert_msg(harness_log_count(e.lb.log, end) == 1, "no '%s' in %s", end, e.lb.log);
    ck_assert(harness_log_contains(
        e.lb.log, harness_strf("info: binary upgrade to pid %d: stopped accepting; waiting up to "
                               "60000 ms for ",
                               pid)));
    harness_loop_progress(st, 300); /* the new process alone now */
    ck_assert_int_eq(status_pid(e.aport), pid);
    ck_assert_str_eq(exe_of(pid), harness_strf("%s/lb", harness_dir()));
    (void)old;
    loop_stop(st);
    ck_assert_int_eq(harness_log_count(e.lb.log, "connect failed"), 0);

    kill(pid, SIGTERM);
    ck_assert_int_eq(harness_wait_exit(pid, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(harness_log_count(e.lb.log, "info: exiting"), 2);
}
END_TEST

START_TEST(bad_config_changes_nothing)
{
    struct env e;
    env_start(&e);
    pid_t old = e.lb.pid;
    struct harness_loop *st = harness_loop_start(e.lport, N1);
    harness_loop_progress(st, 100);

    /* A config that does not load: the new process says why and exits. */
    harness_lb_rewrite(&e.lb, "{\"listeners\": [}\n");
    harness_lb_signal(&e.lb, SIGUSR2);
    pid_t bad = harness_lb_upgrade_pid(&e.lb, 1);
    const char *failed =
        harness_strf("error: binary upgrade failed: the new process (pid %d) exited with status 1 "
                     "before it was ready (its reason is logged above); this one keeps serving",
                     bad);
    ck_assert_msg(harness_lb_log_wait(&e.lb, failed, 1, HARNESS_WAIT_MS), "no '%s' in %s", failed,
                  e.lb.log);
    ck_assert(harness_log_contains(e.lb.log, ".json:1:16: syntax error: unexpected token"));
    harness_loop_progress(st, 200);
    ck_assert_int_eq(status_pid(e.aport), old);
    ck_assert_int_eq(kill(old, 0), 0);

    /* Then one that does, with a listener more and "stream" gone. */
    int added = harness_free_port();
    json_t *cfg = json_deep_copy(e.cfg);
    harness_jdel(cfg, "listeners.1");
    harness_jappend(cfg, "listeners", harness_listener_json("more", harness_lo(added), "names"));
    harness_lb_rewrite_json(&e.lb, harness_jkeep(cfg));
    harness_lb_signal(&e.lb, SIGUSR2);
    pid_t pid = harness_lb_upgrade_pid(&e.lb, 2);
    ck_assert(harness_lb_log_wait(&e.lb, "serves the listening sockets", 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&e.lb,
                                  "binary upgrade: 1 socket of the old process has no listener in "
                                  "this config: it drains and closes it",
                                  1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_wait_exit(&e.lb, HARNESS_WAIT_MS), 0); /* no sessions: at once */
    harness_loop_progress(st, 200);
    ck_assert_int_eq(status_pid(e.aport), pid);
    int fd = harness_connect("127.0.0.1", added, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), 3);
    ck_assert_str_eq(buf, "n1\n");
    close(fd);
    ck_assert_int_lt(harness_connect("127.0.0.1", e.sport, 500), 0); /* closed with the old */
    loop_stop(st);

    /* A third: the new process upgrades as well as the first did. */
    harness_lb_rewrite_json(&e.lb, harness_jkeep(json_deep_copy(e.cfg)));
    ck_assert_int_eq(kill(pid, SIGUSR2), 0);
    ck_assert(harness_lb_log_wait(&e.lb, "serves the listening sockets", 2, HARNESS_WAIT_MS));
    pid_t third = harness_lb_upgrade_pid(&e.lb, 3);
    ck_assert_int_eq(harness_wait_exit(pid, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(status_pid(e.aport), third);
    kill(third, SIGTERM);
    ck_assert_int_eq(harness_wait_exit(third, HARNESS_WAIT_MS), 0);
}
END_TEST

/* Waits (bounded) until pid is gone: reaped by the old process, or by
 * this one once it was adopted. */
static void gone_soon(pid_t pid)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    for (;;) {
        waitpid(pid, NULL, WNOHANG);
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return;
        ck_assert_msg(harness_now_ms() < deadline, "pid %d is still there", pid);
        harness_sleep_ms(10);
    }
}

/* Waits (bounded) until port refuses connections. */
static void refused_soon(int port)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    int fd;
    while ((fd = harness_connect("127.0.0.1", port, 200)) >= 0) {
        close(fd);
        ck_assert_msg(harness_now_ms() < deadline, "port %d still takes connections", port);
        harness_sleep_ms(10);
    }
}

/* TEMPDIR/lb becomes a script: what SIGUSR2 starts from now on. */
static void replace_binary(const char *script)
{
    const char *path = harness_strf("%s/lb", harness_dir());
    const char *tmp = harness_write_file("lb.script", script);
    ck_assert_int_eq(chmod(tmp, 0755), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
}

/* A new process that takes a while to start, and the old one stopped
 * meanwhile: the upgrade is abandoned, the new process stopped, and
 * nothing serves after the old one (no orphan). */
START_TEST(stop_during_upgrade)
{
    struct env e;
    env_start(&e);
    replace_binary(harness_strf("#!/bin/sh\nsleep 2\nexec %s/lb \"$@\"\n", LB_BUILD_DIR));
    harness_lb_signal(&e.lb, SIGUSR2);
    pid_t pid = harness_lb_upgrade_pid(&e.lb, 1);
    harness_lb_signal(&e.lb, SIGTERM);
    const char *abandoned = harness_strf("warn: binary upgrade: abandoned, as lb stops; the new "
                                         "process (pid %d) is stopped",
                                         pid);
    ck_assert_msg(harness_lb_log_wait(&e.lb, abandoned, 1, HARNESS_WAIT_MS), "no '%s' in %s",
                  abandoned, e.lb.log);
    ck_assert_int_eq(harness_lb_wait_exit(&e.lb, HARNESS_WAIT_MS), 0);
    gone_soon(pid);
    /* The sockets still in the pair's queue live until the script's sleep
     * lets go of its end; then nothing holds them. */
    refused_soon(e.lport);
    ck_assert_int_eq(harness_log_count(e.lb.log, "serves the listening sockets"), 0);
    ck_assert_int_eq(harness_log_count(e.lb.log, harness_strf("started (pid %d", pid)), 0);
}
END_TEST

/* A binary that does not run: the old process says so and serves on. */
START_TEST(binary_that_does_not_run)
{
    struct env e;
    env_start(&e);
    replace_binary("not a program\n");
    const char *path = harness_strf("%s/lb", harness_dir());
    ck_assert_int_eq(chmod(path, 0644), 0);
    harness_lb_signal(&e.lb, SIGUSR2);
    pid_t pid = harness_lb_upgrade_pid(&e.lb, 1);
    ck_assert(harness_lb_log_wait(
        &e.lb, harness_strf("error: binary upgrade: cannot run %s: Permission denied", path), 1,
        HARNESS_WAIT_MS));
    /* 127 from lb; under valgrind the forked child is still valgrind's,
     * which exits with its own status (--error-exitcode). */
    const char *failed = harness_strf("error: binary upgrade failed: the new process (pid %d) "
                                      "exited with status %s",
                                      pid, harness_wrapper() ? "" : "127 before it was ready");
    ck_assert_msg(harness_lb_log_wait(&e.lb, failed, 1, HARNESS_WAIT_MS), "no '%s' in %s", failed,
                  e.lb.log);
    int fd = harness_connect_ok("127.0.0.1", e.lport);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), 3);
    close(fd);
    ck_assert_int_eq(status_pid(e.aport), e.lb.pid);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* The new process reloads away a listener it took while the old one
 * still drains a session: the socket closes for good (the old process
 * closed its copy at the hand-off), so a client is refused, not left in a
 * queue nobody reads; the old one's session goes on. */
START_TEST(reload_after_upgrade_closes_taken_socket)
{
    struct env e;
    env_start(&e);
    int held = harness_connect_ok("127.0.0.1", e.sport);
    harness_echo_roundtrip(held, "before");
    harness_lb_install_copy();
    harness_lb_signal(&e.lb, SIGUSR2);
    pid_t pid = harness_lb_upgrade_pid(&e.lb, 1);
    ck_assert(harness_lb_log_wait(&e.lb, "serves the listening sockets", 1, HARNESS_WAIT_MS));
    json_t *cfg = json_deep_copy(e.cfg);
    harness_jdel(cfg, "listeners.1");
    harness_lb_rewrite_json(&e.lb, harness_jkeep(cfg));
    ck_assert_int_eq(kill(pid, SIGHUP), 0);
    ck_assert(
        harness_lb_log_wait(&e.lb, "reload ok: generation 2 (listeners +0 -1", 1, HARNESS_WAIT_MS));
    refused_soon(e.sport);
    harness_echo_roundtrip(held, "the old process still serves me");
    close(held);
    ck_assert_int_eq(harness_lb_wait_exit(&e.lb, HARNESS_WAIT_MS), 0);
    kill(pid, SIGTERM);
    ck_assert_int_eq(harness_wait_exit(pid, HARNESS_WAIT_MS), 0);
}
END_TEST

static Suite *upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = harness_tcase("load");
    tcase_set_timeout(tc, UPGRADE_TCASE_TIMEOUT);
    tcase_add_test(tc, upgrade_under_load);
    suite_add_tcase(s, tc);
    tc = harness_tcase("bad_config");
    tcase_add_test(tc, bad_config_changes_nothing);
    suite_add_tcase(s, tc);
    tc = harness_tcase("faults");
    tcase_add_test(tc, stop_during_upgrade);
    tcase_add_test(tc, binary_that_does_not_run);
    tcase_add_test(tc, reload_after_upgrade_closes_taken_socket);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(upgrade_suite)
