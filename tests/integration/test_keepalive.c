/* Integration: "tcp_keepalive" on a listener and a pool. lb's two sockets of
 * a session are found in /proc/net/tcp{,6} (by port, and by inode among
 * lb's descriptors) and the kernel's keepalive timer is checked there (the
 * "tr" and "tm->when" fields), and the options themselves with getsockopt
 * on a copy of lb's descriptor (pidfd_getfd). Off by default, new sessions
 * only after a reload, and, as root, a peer that vanishes silently inside
 * a network namespace of the test's own. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

/* /proc/net/tcp's "tr" field: which timer of the socket is pending. */
#define TIMER_NONE 0
#define TIMER_RETRANSMIT 1
#define TIMER_KEEPALIVE 2
#define TCP_ESTABLISHED_STATE 0x01

/* One of lb's established TCP sockets, as /proc/net/tcp shows it. */
struct lb_sock {
    unsigned local_port, remote_port;
    unsigned timer; /* tr */
    long timer_ms;  /* tm->when: time left on that timer */
    int fd;         /* lb's descriptor number */
};

/* The config of these tests: listener "web" on lport to pool "app" with
 * one echo backend on bport; listener_ka and pool_ka are "tcp_keepalive"
 * values (stolen), NULL for none. A short grace: a session whose peer
 * vanished would otherwise hold up the stop. */
static json_t *ka_config(int lport, int bport, json_t *listener_ka, json_t *pool_ka,
                         unsigned idle_timeout_ms, const char *level)
{
    json_t *listener = harness_listener_json("web", harness_lo(lport), "app");
    harness_jset(listener, "idle_timeout_ms", json_integer(idle_timeout_ms));
    if (listener_ka)
        harness_jset(listener, "tcp_keepalive", listener_ka);
    json_t *pool = json_pack("{s:s}", "name", "app");
    if (pool_ka)
        harness_jset(pool, "tcp_keepalive", pool_ka);
    harness_jset(pool, "backends",
                 harness_jarray(harness_backend_json(harness_lo(bport), "e1"), NULL));
    json_t *cfg = json_pack("{s:{s:s}, s:i, s:[o], s:[o]}", "log", "level", level,
                            "shutdown_grace_ms", 200, "listeners", listener, "pools", pool);
    ck_assert(cfg != NULL);
    return harness_jkeep(cfg);
}

/* A "tcp_keepalive" object; a 0 leaves its key out ({} for all 0). */
static json_t *ka(int idle, int interval, int count)
{
    json_t *k = json_object();
    if (idle)
        harness_jset(k, "idle", json_integer(idle));
    if (interval)
        harness_jset(k, "interval", json_integer(interval));
    if (count)
        harness_jset(k, "count", json_integer(count));
    return k;
}

/* The descriptor of lb (pid) that is socket inode, or -1. */
static int lb_fd_of_inode(pid_t pid, unsigned long inode)
{
    char dir[64], want[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot read %s: %s", dir, strerror(errno));
    struct dirent *e;
    int found = -1;
    while (found < 0 && (e = readdir(d)) != NULL) {
        char path[512], link[64];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, want) == 0)
            found = atoi(e->d_name);
    }
    closedir(d);
    return found;
}

/* Adds to *out (up to cap) lb's established sockets in one /proc/net file
 * whose ports match (0: any) and whose local port is not not_local. */
static size_t scan_proc(const char *file, pid_t pid, unsigned local, unsigned remote,
                        unsigned not_local, struct lb_sock *out, size_t n, size_t cap)
{
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f = fopen(file, "r");
    if (!f)
        return n;
    char line[512];
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return n;
    }
    while (fgets(line, sizeof(line), f)) {
        unsigned lport, rport, state, tr;
        unsigned long when, inode;
        if (sscanf(line,
                   " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x %*x:%*x %x:%lx %*x %*u %*d %lu",
                   &lport, &rport, &state, &tr, &when, &inode) != 6)
            continue;
        if (state != TCP_ESTABLISHED_STATE || (local && lport != local) ||
            (remote && rport != remote) || (not_local && lport == not_local))
            continue;
        int fd = lb_fd_of_inode(pid, inode);
        if (fd < 0)
            continue; /* the peer's end, or another process's */
        if (n < cap)
            out[n] =
                (struct lb_sock){lport, rport, tr, (long)(when * 1000 / (unsigned long)hz), fd};
        n++;
    }
    fclose(f);
    return n;
}

/* lb's one established socket with these ports (see scan_proc); fails the
 * test unless there is exactly one. */
static struct lb_sock lb_socket(pid_t pid, unsigned local, unsigned remote, unsigned not_local)
{
    struct lb_sock found[4];
    size_t n = scan_proc("/proc/net/tcp", pid, local, remote, not_local, found, 0, 4);
    n = scan_proc("/proc/net/tcp6", pid, local, remote, not_local, found, n, 4);
    ck_assert_msg(n == 1, "%zu sockets of lb with local port %u, remote port %u (not local %u)", n,
                  local, remote, not_local);
    return found[0];
}

/* The same, once its timer is `want` (a retransmit timer may be pending
 * for a moment after traffic); returns it as last seen after 2 s. */
static struct lb_sock lb_socket_timer(pid_t pid, unsigned local, unsigned remote,
                                      unsigned not_local, unsigned want)
{
    long deadline = harness_now_ms() + 2000;
    struct lb_sock s = lb_socket(pid, local, remote, not_local);
    while (s.timer != want && harness_now_ms() < deadline) {
        harness_sleep_ms(20);
        s = lb_socket(pid, local, remote, not_local);
    }
    return s;
}

/* Asserts the keepalive timer of lb's socket is armed, within idle_s. */
static void ck_timer_armed(pid_t pid, unsigned local, unsigned remote, unsigned not_local,
                           unsigned idle_s, const char *which)
{
    struct lb_sock s = lb_socket_timer(pid, local, remote, not_local, TIMER_KEEPALIVE);
    ck_assert_msg(s.timer == TIMER_KEEPALIVE, "%s socket: timer %u, want keepalive (2)", which,
                  s.timer);
    /* Armed when the socket was accepted or connected, a moment ago. */
    ck_assert_msg(s.timer_ms > (long)idle_s * 1000 - 2000 && s.timer_ms <= (long)idle_s * 1000,
                  "%s socket: keepalive timer %ld ms, want within %u s", which, s.timer_ms, idle_s);
}

static void ck_timer_off(pid_t pid, unsigned local, unsigned remote, unsigned not_local,
                         const char *which)
{
    struct lb_sock s = lb_socket_timer(pid, local, remote, not_local, TIMER_NONE);
    ck_assert_msg(s.timer == TIMER_NONE, "%s socket: timer %u (%ld ms), want none (0)", which,
                  s.timer, s.timer_ms);
}

static int getsockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* Checks SO_KEEPALIVE (and, when on, TCP_KEEPIDLE/INTVL/CNT) of lb's
 * descriptor fd through a copy of it. Without pidfd_getfd (old kernel, no
 * ptrace right on lb) only the /proc checks above run. */
static void ck_keepalive_opts(pid_t pid, int fd, int on, int idle, int interval, int count)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int copy = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    if (copy < 0) {
        fprintf(stderr, "test_keepalive: pidfd_getfd: %s; socket options not checked\n",
                strerror(errno));
        if (pidfd >= 0)
            close(pidfd);
        return;
    }
    ck_assert_int_eq(getsockopt_int(copy, SOL_SOCKET, SO_KEEPALIVE) != 0, on);
    if (on) {
        ck_assert_int_eq(getsockopt_int(copy, IPPROTO_TCP, TCP_KEEPIDLE), idle);
        ck_assert_int_eq(getsockopt_int(copy, IPPROTO_TCP, TCP_KEEPINTVL), interval);
        ck_assert_int_eq(getsockopt_int(copy, IPPROTO_TCP, TCP_KEEPCNT), count);
    }
    close(copy);
    close(pidfd);
#else
    (void)pid, (void)fd, (void)on, (void)idle, (void)interval, (void)count;
#endif
}

static unsigned local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A client through lb whose echo came back: both of lb's sockets exist. */
static int client_echo(int lport)
{
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "connect to lb: %s", strerror(errno));
    char buf[5] = {0};
    ck_assert(harness_send_all(fd, "ping", 4, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_recv_n(fd, buf, 4, HARNESS_WAIT_MS), 4);
    ck_assert_str_eq(buf, "ping");
    return fd;
}

/* Different settings on the two sides: each socket gets its owner's. */
START_TEST(keepalive_listener_and_pool)
{
    struct harness_lb lb;
    int bport = harness_free_port(), lport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    harness_lb_start_json(&lb, ka_config(lport, bport, ka(7, 3, 2), ka(9, 2, 5), 0, "info"), lport);
    int fd = client_echo(lport);
    unsigned cport = local_port(fd);

    ck_timer_armed(lb.pid, lport, cport, 0, 7, "client");
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, lport, cport, 0).fd, 1, 7, 3, 2);
    ck_timer_armed(lb.pid, 0, bport, 0, 9, "backend");
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, 0, bport, 0).fd, 1, 9, 2, 5);
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* {} on the listener only: the defaults there, the backend side stays off. */
START_TEST(keepalive_defaults_listener_only)
{
    struct harness_lb lb;
    int bport = harness_free_port(), lport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    harness_lb_start_json(&lb, ka_config(lport, bport, ka(0, 0, 0), NULL, 0, "info"), lport);
    int fd = client_echo(lport);
    unsigned cport = local_port(fd);

    ck_timer_armed(lb.pid, lport, cport, 0, 60, "client");
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, lport, cport, 0).fd, 1, 60, 10, 6);
    ck_timer_off(lb.pid, 0, bport, 0, "backend");
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, 0, bport, 0).fd, 0, 0, 0, 0);
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* Without the key neither socket has keepalive (the OS default). */
START_TEST(keepalive_off_by_default)
{
    struct harness_lb lb;
    int bport = harness_free_port(), lport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    harness_lb_start_json(&lb, ka_config(lport, bport, NULL, NULL, 0, "info"), lport);
    int fd = client_echo(lport);
    unsigned cport = local_port(fd);

    ck_timer_off(lb.pid, lport, cport, 0, "client");
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, lport, cport, 0).fd, 0, 0, 0, 0);
    ck_timer_off(lb.pid, 0, bport, 0, "backend");
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, 0, bport, 0).fd, 0, 0, 0, 0);
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A reload that adds keepalive to the (reused) listener and the pool
 * applies to a session opened after it, not to the one already open. */
START_TEST(keepalive_reload_new_sessions_only)
{
    struct harness_lb lb;
    int bport = harness_free_port(), lport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    harness_lb_start_json(&lb, ka_config(lport, bport, NULL, NULL, 0, "info"), lport);
    int before = client_echo(lport);
    unsigned before_cport = local_port(before);
    unsigned before_bport = lb_socket(lb.pid, 0, bport, 0).local_port;

    harness_lb_rewrite_json(&lb, ka_config(lport, bport, ka(7, 0, 0), ka(9, 0, 0), 0, "info"));
    harness_lb_signal(&lb, SIGHUP);
    ck_assert_msg(
        harness_log_wait(lb.log, "info: reload ok: generation 2 (listeners +0 -0, backends +0 -0)",
                         1, HARNESS_WAIT_MS),
        "no reload ok line; log %s", lb.log);
    int after = client_echo(lport);
    unsigned after_cport = local_port(after);

    ck_timer_off(lb.pid, lport, before_cport, 0, "client (before the reload)");
    ck_timer_off(lb.pid, before_bport, bport, 0, "backend (before the reload)");
    ck_timer_armed(lb.pid, lport, after_cport, 0, 7, "client (after the reload)");
    ck_timer_armed(lb.pid, 0, bport, before_bport, 9, "backend (after the reload)");
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, lport, after_cport, 0).fd, 1, 7, 10, 6);
    ck_keepalive_opts(lb.pid, lb_socket(lb.pid, 0, bport, before_bport).fd, 1, 9, 10, 6);
    close(before);
    close(after);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A client that vanishes without a reset, as after a power loss: the
 * loopback of the test's own network namespace goes down, so nothing
 * answers lb any more. With keepalive idle 1 s, 2 probes 1 s apart, lb
 * ends the session (ETIMEDOUT) in about 3 s although idle_timeout_ms is 0;
 * a second lb without keepalive keeps its session. Root only; the
 * namespace goes away with the forked test process. */
START_TEST(keepalive_finds_vanished_peer)
{
    if (!harness_netns_enter("keepalive_finds_vanished_peer"))
        return;
    struct harness_lb on, off;
    int bport = harness_free_port(), lport_on = harness_free_port(),
        lport_off = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    harness_lb_start_json(&on, ka_config(lport_on, bport, ka(1, 1, 2), NULL, 0, "debug"), lport_on);
    harness_lb_start_json(&off, ka_config(lport_off, bport, NULL, NULL, 0, "debug"), lport_off);
    int fd_on = client_echo(lport_on), fd_off = client_echo(lport_off);

    harness_loopback_set(false);
    long gone = harness_now_ms();
    ck_assert_msg(harness_log_wait(on.log, "session end", 1, 6000),
                  "the session with keepalive did not end; log %s", on.log);
    long took = harness_now_ms() - gone;
    /* 1 s idle, then 2 unanswered probes 1 s apart: about 3 s. */
    ck_assert_msg(took >= 2000 && took <= 4500, "ended %ld ms after the peer vanished", took);
    ck_assert(harness_log_contains(on.log, "client error: recv: Connection timed out"));
    ck_assert(harness_log_contains(on.log, "reason=\"client error\""));
    harness_sleep_ms(1000);
    ck_assert_int_eq(harness_log_count(off.log, "session end"), 0);

    close(fd_on);
    close(fd_off);
    ck_assert_int_eq(harness_lb_stop(&on), 0);
    ck_assert_int_eq(harness_lb_stop(&off), 0);
    ck_assert(harness_log_contains(off.log, "reason=\"shutdown\""));
}
END_TEST

static Suite *keepalive_suite(void)
{
    Suite *s = suite_create("keepalive");
    TCase *tc;
#define ADD_TCASE(name)                                                                            \
    tc = harness_tcase(name);                                                                      \
    suite_add_tcase(s, tc)
    ADD_TCASE("sockets");
    tcase_add_test(tc, keepalive_listener_and_pool);
    tcase_add_test(tc, keepalive_defaults_listener_only);
    tcase_add_test(tc, keepalive_off_by_default);
    ADD_TCASE("reload");
    tcase_add_test(tc, keepalive_reload_new_sessions_only);
    ADD_TCASE("vanished");
    tcase_add_test(tc, keepalive_finds_vanished_peer);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(keepalive_suite)
