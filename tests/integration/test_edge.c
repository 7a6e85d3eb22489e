/* Integration: session edge cases through a real lb. Backends that reset or
 * close at once, a backend that answers and closes before the client speaks,
 * resets in the middle of a transfer from either side, a client that
 * half-closes before the backend connect completes, idle timeout with one
 * direction half-closed and with idle_timeout_ms 0, SIGHUP, a second
 * SIGTERM, a burst past max_connections (no descriptor leaks), and a
 * backend streaming to a client that does not read (bounded memory, exact
 * byte counters). The "backend" here is often a raw socket of the test
 * itself, so it can reset, stall or hold exactly when the test says. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

/* A listening socket of the test on 127.0.0.1; its port in *port. */
static int raw_listen(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, backlog), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Accepts one connection within timeout_ms; fails the test otherwise. */
static int raw_accept(int lfd, long timeout_ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    ck_assert_msg(poll(&p, 1, (int)timeout_ms) == 1, "lb did not connect to the test backend");
    int fd = accept(lfd, NULL, NULL);
    ck_assert(fd >= 0);
    return fd;
}

/* Closes fd with a RST instead of a FIN. */
static void close_rst(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* Sends without blocking until no byte goes out for quiet_ms; returns the
 * bytes sent (bounded by cap so a broken lb fails instead of looping). */
static uint64_t send_until_stalled(int fd, long quiet_ms, uint64_t cap)
{
    static char chunk[64 * 1024];
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    uint64_t sent = 0;
    while (sent < cap) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, (int)quiet_ms) == 0)
            break;
        ssize_t n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (n < 0) {
            ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
            continue;
        }
        sent += (uint64_t)n;
    }
    fcntl(fd, F_SETFL, fl);
    ck_assert_msg(sent < cap, "lb kept taking bytes past %llu", (unsigned long long)cap);
    return sent;
}

static json_t *backend_json(int port, const char *name)
{
    return harness_backend_json(harness_lo(port), name);
}

/* lb in front of one backend at bport; returns lb's port. */
static int start_lb(struct harness_lb *lb, int bport, struct harness_conf conf)
{
    int lport = harness_free_port();
    conf.listen = harness_lo(lport);
    json_t *cfg = harness_cfg(&conf);
    harness_jappend(cfg, "pools.0.backends", backend_json(bport, "b"));
    harness_lb_start_json(lb, cfg, lport);
    return lport;
}

static void assert_log(const struct harness_lb *lb, const char *needle)
{
    ck_assert_msg(harness_log_wait(lb->log, needle, 1, HARNESS_WAIT_MS), "no '%s' in %s", needle,
                  lb->log);
}

static int proc_fd_count(pid_t pid)
{
    DIR *d = opendir(harness_strf("/proc/%ld/fd", (long)pid));
    ck_assert(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static long proc_rss_kb(pid_t pid)
{
    const char *status = harness_read_file(harness_strf("/proc/%ld/status", (long)pid));
    const char *p = strstr(status, "VmRSS:");
    ck_assert(p != NULL);
    return strtol(p + 6, NULL, 10);
}

/* --- backend misbehaviour --- */

/* The backend resets as soon as it accepts: the client is closed, the
 * session ends as "backend error" (or "connect failed" when the reset
 * beats the connect's completion) with nothing counted. */
START_TEST(backend_rst_at_accept)
{
    int bport;
    int bl = raw_listen(16, &bport);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    close_rst(raw_accept(bl, HARNESS_WAIT_MS));
    ck_assert_msg(harness_wait_closed(fd, 3000) >= 0, "client still open after the backend reset");
    close(fd);
    assert_log(&lb, "bytes_from_client=0 bytes_from_backend=0 ");
    /* The reset may reach lb before it sees the connect complete. */
    ck_assert_msg(harness_log_contains(lb.log, "reason=\"backend error\"") ||
                      harness_log_contains(lb.log, "reason=\"connect failed\""),
                  "neither backend error nor connect failed in %s", lb.log);
    ck_assert_int_eq(harness_log_count(lb.log, "session end"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(bl);
}
END_TEST

/* The backend answers and closes before the client sends a byte: the client
 * gets every byte, then EOF; the session ends as "backend closed" once the
 * client closes too. */
START_TEST(backend_answers_and_closes_first)
{
    int bport;
    int bl = raw_listen(16, &bport);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    int b = raw_accept(bl, HARNESS_WAIT_MS);
    char out[5000];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (char)(i * 7 + 3);
    ck_assert(harness_send_all(b, out, sizeof(out), HARNESS_WAIT_MS));
    close(b);
    harness_sleep_ms(200);
    char in[sizeof(out) + 1];
    ssize_t n = harness_read_eof(fd, in, sizeof(in), HARNESS_WAIT_MS);
    ck_assert_msg(n == (ssize_t)sizeof(out), "client read %zd bytes before EOF", n);
    ck_assert(memcmp(in, out, sizeof(out)) == 0);
    close(fd);
    assert_log(&lb, "bytes_from_client=0 bytes_from_backend=5000 ");
    assert_log(&lb, "reason=\"backend closed\"");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(bl);
}
END_TEST

/* The backend reads the request, answers part, then resets: the client gets
 * a reset too and the session ends as "backend error" with the request
 * counted. */
START_TEST(backend_rst_mid_transfer)
{
    int bport;
    int bl = raw_listen(16, &bport);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    int b = raw_accept(bl, HARNESS_WAIT_MS);
    char req[1000];
    memset(req, 'q', sizeof(req));
    ck_assert(harness_send_all(fd, req, sizeof(req), HARNESS_WAIT_MS));
    char got[sizeof(req)];
    ck_assert_int_eq(harness_recv_n(b, got, sizeof(got), HARNESS_WAIT_MS), (ssize_t)sizeof(got));
    char part[3000];
    memset(part, 'p', sizeof(part));
    ck_assert(harness_send_all(b, part, sizeof(part), HARNESS_WAIT_MS));
    close_rst(b);
    /* lb passes the reset on: the client sees ECONNRESET, not a clean EOF
     * that would pass the truncated answer off as complete. */
    ck_assert_msg(harness_readable(fd, 3000), "client still open after the backend reset");
    char buf[4096];
    ssize_t n;
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0 || (n < 0 && errno == EAGAIN)) {
        ck_assert_msg(harness_now_ms() < deadline, "no reset or EOF after the backend reset");
        if (n < 0)
            harness_readable(fd, 100);
    }
    ck_assert_msg(n < 0 && errno == ECONNRESET, "client got %s instead of a reset",
                  n == 0 ? "a clean EOF" : strerror(errno));
    close(fd);
    assert_log(&lb, "bytes_from_client=1000 ");
    assert_log(&lb, "reason=\"backend error\"");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(bl);
}
END_TEST

/* --- client misbehaviour --- */

/* The client sends to an echo backend without reading, so lb holds bytes for
 * it, then resets: the session ends as "client error" at once. */
START_TEST(client_rst_while_lb_writes)
{
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    static char data[256 * 1024];
    ck_assert(harness_send_all(fd, data, sizeof(data), HARNESS_WAIT_MS));
    harness_sleep_ms(300);
    close_rst(fd);
    assert_log(&lb, "reason=\"client error\"");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The client sends its request and FIN while lb is still connecting (the
 * backend's accept queue is full; it frees up after 300 ms and the SYN is
 * retried): the backend gets all of it and the FIN, its answer reaches the
 * client. */
START_TEST(client_halfclose_before_connect)
{
    int bport;
    int bl = raw_listen(0, &bport);
    int filler = harness_connect("127.0.0.1", bport, HARNESS_WAIT_MS);
    ck_assert(filler >= 0);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){.connect_timeout_ms = 5000});
    int fd = harness_connect_ok("127.0.0.1", lport);
    static char req[50000];
    memset(req, 'r', sizeof(req));
    ck_assert(harness_send_all(fd, req, sizeof(req), HARNESS_WAIT_MS));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    harness_sleep_ms(300);
    close(raw_accept(bl, HARNESS_WAIT_MS));  /* the filler: frees the queue */
    int b = raw_accept(bl, HARNESS_WAIT_MS); /* lb, after its SYN retry */
    static char got[sizeof(req) + 1];
    ssize_t n = harness_read_eof(b, got, sizeof(got), HARNESS_WAIT_MS);
    ck_assert_msg(n == (ssize_t)sizeof(req), "backend read %zd bytes before EOF", n);
    ck_assert(harness_send_all(b, "ok\n", 3, HARNESS_WAIT_MS));
    close(b);
    char ans[16];
    ck_assert_int_eq(harness_read_eof(fd, ans, sizeof(ans), HARNESS_WAIT_MS), 3);
    ck_assert_str_eq(ans, "ok\n");
    close(fd);
    assert_log(&lb, "bytes_from_client=50000 bytes_from_backend=3 ");
    assert_log(&lb, "reason=\"client closed\"");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(filler);
    close(bl);
}
END_TEST

/* BUG: the backend never reads, so lb stops reading the client
 * (backpressure); the client then resets. lb must notice and end the
 * session as "client error"; it does not: with no read or write interest
 * on the client socket the reset goes unseen until idle_timeout_ms. */
START_TEST(client_rst_while_backpressured)
{
    int bport;
    int bl = raw_listen(16, &bport);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    int b = raw_accept(bl, HARNESS_WAIT_MS);
    send_until_stalled(fd, 500, 256ull * 1024 * 1024);
    close_rst(fd);
    ck_assert_msg(harness_log_wait(lb.log, "session end", 1, 3000),
                  "session still open 3 s after its client reset (backpressured); log %s", lb.log);
    assert_log(&lb, "reason=\"client error\"");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(b);
    close(bl);
}
END_TEST

/* BUG: the client sends its request and FIN, the backend is slow to answer,
 * the client gives up with a reset. lb must end the session (and close the
 * backend connection); it keeps both until idle_timeout_ms (the client's
 * read side is finished, so no event watches that socket any more). */
START_TEST(client_rst_after_halfclose)
{
    int bport;
    int bl = raw_listen(16, &bport);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    int b = raw_accept(bl, HARNESS_WAIT_MS);
    ck_assert(harness_send_all(fd, "req", 3, HARNESS_WAIT_MS));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    char got[4];
    ck_assert_int_eq(harness_read_eof(b, got, sizeof(got), HARNESS_WAIT_MS), 3);
    close_rst(fd);
    ck_assert_msg(harness_log_wait(lb.log, "session end", 1, 3000),
                  "session still open 3 s after its half-closed client reset; log %s", lb.log);
    assert_log(&lb, "reason=\"client error\"");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(b);
    close(bl);
}
END_TEST

/* --- idle timeout --- */

/* The client half-closed, the backend holds its side silently: no byte
 * either way for idle_timeout_ms still ends the session. */
START_TEST(idle_timeout_halfclosed)
{
    int bport;
    int bl = raw_listen(16, &bport);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){.idle_timeout_ms = 300});
    int fd = harness_connect_ok("127.0.0.1", lport);
    int b = raw_accept(bl, HARNESS_WAIT_MS);
    ck_assert(harness_send_all(fd, "x", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    long waited = harness_wait_closed(fd, 3000);
    ck_assert_msg(waited >= 250, "closed after %ld ms with idle_timeout_ms 300", waited);
    ck_assert_msg(harness_wait_closed(b, 1000) >= 0, "backend side still open after idle timeout");
    close(fd);
    assert_log(&lb, "bytes_from_client=1 bytes_from_backend=0 ");
    assert_log(&lb, "reason=\"idle timeout\"");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(b);
    close(bl);
}
END_TEST

/* idle_timeout_ms 0 disables the timeout (harness_conf cannot say 0). */
START_TEST(idle_timeout_zero_disabled)
{
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    int lport = harness_free_port();
    json_t *listener = harness_listener_json("web", harness_lo(lport), "app");
    harness_jset(listener, "idle_timeout_ms", json_integer(0));
    json_t *cfg = harness_jkeep(
        json_pack("{s:[o], s:[o]}", "listeners", listener, "pools",
                  harness_pool_json("app", NULL, harness_jarray(backend_json(bport, "e1"), NULL))));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "before");
    ck_assert_msg(!harness_readable(fd, 1500), "closed or data while idle with idle_timeout_ms 0");
    harness_echo_roundtrip(fd, "after 1.5 s idle");
    close(fd);
    assert_log(&lb, "reason=\"client closed\"");
    ck_assert_int_eq(harness_log_count(lb.log, "idle timeout"), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* --- signals --- */

/* SIGHUP with an unchanged file: a reload that changes nothing, and the
 * open session goes on. */
START_TEST(sighup_reload_keeps_session)
{
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "before");
    kill(lb.pid, SIGHUP);
    assert_log(&lb, "info: reload ok: generation 2 (listeners +0 -0, backends +0 -0)");
    harness_echo_roundtrip(fd, "after");
    int fd2 = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd2, "new");
    close(fd2);
    close(fd);
    ck_assert(harness_log_wait(lb.log, "session end", 2, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A second SIGTERM during the grace period closes the open sessions and
 * exits at once. */
START_TEST(second_sigterm_exits_now)
{
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){.grace_ms = 60000});
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "hold");
    kill(lb.pid, SIGTERM);
    assert_log(&lb, "SIGTERM: stopped accepting; waiting up to 60000 ms for 1 open sessions");
    long t0 = harness_now_ms();
    kill(lb.pid, SIGTERM);
    ck_assert_int_eq(harness_lb_wait_exit(&lb, 3000), 0);
    ck_assert_msg(harness_now_ms() - t0 < 2000, "lb took %ld ms after the second SIGTERM",
                  harness_now_ms() - t0);
    ck_assert(harness_wait_closed(fd, 1000) >= 0);
    close(fd);
    ck_assert(harness_log_contains(lb.log, "SIGTERM again: closing 1 open sessions now"));
    ck_assert(harness_log_contains(lb.log, "reason=\"shutdown\""));
}
END_TEST

/* --- load and memory --- */

/* 400 short sessions through max_connections 20, 100 clients at a time (the
 * rest wait in the backlog): all served, and lb's descriptors come back to
 * where they were. */
#define BURST_BATCH 100
#define BURST_BATCHES 4
START_TEST(burst_no_fd_leak)
{
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){.max_connections = 20});
    int base = proc_fd_count(lb.pid);
    for (int batch = 0; batch < BURST_BATCHES; batch++) {
        int fds[BURST_BATCH];
        for (int i = 0; i < BURST_BATCH; i++) {
            fds[i] = harness_connect_ok("127.0.0.1", lport);
            char c = (char)('A' + i % 26);
            ck_assert(harness_send_all(fds[i], &c, 1, HARNESS_WAIT_MS));
        }
        for (int i = 0; i < BURST_BATCH; i++) {
            char c = 0;
            ck_assert_msg(harness_recv_n(fds[i], &c, 1, HARNESS_WAIT_MS) == 1 && c == 'A' + i % 26,
                          "batch %d client %d not served", batch, i);
            close(fds[i]);
        }
    }
    int total = BURST_BATCH * BURST_BATCHES;
    ck_assert_msg(harness_log_wait(lb.log, "reason=\"client closed\"", total, 10000),
                  "fewer than %d sessions ended as client closed", total);
    harness_sleep_ms(100);
    ck_assert_int_eq(proc_fd_count(lb.pid), base);
    ck_assert_int_eq(harness_log_count(lb.log, "session end"), total);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The backend streams to a client that does not read: the backend stalls,
 * lb's memory stays put, and once the client reads, every byte arrives and
 * the session end counts exactly that many. */
START_TEST(backend_stream_to_stalled_client)
{
    int bport;
    int bl = raw_listen(16, &bport);
    struct harness_lb lb;
    int lport = start_lb(&lb, bport, (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    int b = raw_accept(bl, HARNESS_WAIT_MS);
    long rss0 = proc_rss_kb(lb.pid);
    uint64_t sent = send_until_stalled(b, 500, 256ull * 1024 * 1024);
    long rss1 = proc_rss_kb(lb.pid);
    ck_assert_msg(rss1 - rss0 < 4096, "lb grew from %ld to %ld kB holding a stalled stream", rss0,
                  rss1);
    ck_assert_int_eq(shutdown(b, SHUT_WR), 0);
    uint64_t got = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = harness_recv_n(fd, buf, sizeof(buf), HARNESS_WAIT_MS);
        ck_assert_msg(n >= 0, "client read failed after %llu bytes", (unsigned long long)got);
        if (n == 0)
            break;
        got += (uint64_t)n;
        ck_assert(got <= sent);
        if ((size_t)n < sizeof(buf) && got == sent)
            break;
    }
    ck_assert_msg(got == sent, "client got %llu of %llu bytes", (unsigned long long)got,
                  (unsigned long long)sent);
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), 0);
    close(fd);
    close(b);
    assert_log(&lb, harness_strf("bytes_from_client=0 bytes_from_backend=%llu ",
                                 (unsigned long long)sent));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(bl);
}
END_TEST

static Suite *edge_suite(void)
{
    Suite *s = suite_create("edge");
    TCase *tc;
#define ADD_TCASE(name)                                                                            \
    tc = harness_tcase(name);                                                                      \
    suite_add_tcase(s, tc)
    ADD_TCASE("backend");
    tcase_add_test(tc, backend_rst_at_accept);
    tcase_add_test(tc, backend_answers_and_closes_first);
    tcase_add_test(tc, backend_rst_mid_transfer);
    ADD_TCASE("client");
    tcase_add_test(tc, client_rst_while_lb_writes);
    tcase_add_test(tc, client_halfclose_before_connect);
    ADD_TCASE("deadpeer"); /* known bugs: these fail */
    tcase_add_test(tc, client_rst_while_backpressured);
    tcase_add_test(tc, client_rst_after_halfclose);
    ADD_TCASE("idle");
    tcase_add_test(tc, idle_timeout_halfclosed);
    tcase_add_test(tc, idle_timeout_zero_disabled);
    ADD_TCASE("signals");
    tcase_add_test(tc, sighup_reload_keeps_session);
    tcase_add_test(tc, second_sigterm_exits_now);
    ADD_TCASE("load");
    tcase_add_test(tc, burst_no_fd_leak);
    tcase_add_test(tc, backend_stream_to_stalled_client);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(edge_suite)
