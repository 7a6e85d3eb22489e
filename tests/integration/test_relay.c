/* Integration: the TCP relay through a real lb. Half-close both ways, a
 * 64 MiB byte-exact transfer in both directions at once (spliced, and copied
 * with "splice": false), retries past a dead
 * backend, all backends dead, idle timeout, max_connections, HTTP
 * keep-alive to the demo backend, and IPv6. Echo and name backends are
 * harness_server functions; sink, http and the descriptor test's echo are
 * the demo backend. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define BIG_TOTAL (64ull * 1024 * 1024)
#define BIG_CHUNK (256 * 1024)
#define BIG_DEADLINE_MS 50000

/* Starts one backend in mode (echo and name: harness_server with the
 * harness's function; sink and http: the demo backend) and lb in front of
 * it with the given listener settings; returns lb's port. */
static int start_one(struct harness_lb *lb, const char *mode, const char *name,
                     struct harness_conf conf)
{
    int bport = harness_free_port();
    if (strcmp(mode, "echo") == 0)
        harness_server("127.0.0.1", bport, harness_fn_echo, NULL);
    else if (strcmp(mode, "name") == 0)
        harness_server("127.0.0.1", bport, harness_fn_name, (void *)name);
    else
        harness_backend("127.0.0.1", bport, name, mode);
    int lport = harness_free_port();
    conf.listen = harness_lo(lport);
    json_t *cfg = harness_cfg(&conf);
    harness_jappend(cfg, "pools.0.backends", harness_backend_json(harness_lo(bport), name));
    harness_lb_start_json(lb, cfg, lport);
    return lport;
}

/* Client sends, shuts its write side, and still gets the whole echo + EOF. */
START_TEST(halfclose_client_first)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "echo", "e1", (struct harness_conf){0});
    size_t len = 200000;
    char *data = malloc(len);
    char *back = malloc(len + 1);
    ck_assert(data && back);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 31 + 7);
    int fd = harness_connect_ok("127.0.0.1", lport);
    ck_assert(harness_send_all(fd, data, len, HARNESS_WAIT_MS));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ssize_t n = harness_read_eof(fd, back, len + 1, HARNESS_WAIT_MS);
    ck_assert_msg(n == (ssize_t)len, "read %zd bytes before EOF, want %zu", n, len);
    ck_assert(memcmp(data, back, len) == 0);
    close(fd);
    free(data);
    free(back);
    ck_assert(harness_log_wait(lb.log, "bytes_from_client=200000 bytes_from_backend=200000", 1,
                               HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The sink backend reads until our EOF, then answers the count: lb must
 * carry client data and the client's FIN, and the answer after it. */
START_TEST(halfclose_sink_count)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "sink", "s1", (struct harness_conf){0});
    size_t len = 1 << 20;
    char *data = calloc(1, len);
    ck_assert(data);
    int fd = harness_connect_ok("127.0.0.1", lport);
    ck_assert(harness_send_all(fd, data, len, HARNESS_WAIT_MS));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    char buf[64];
    ssize_t n = harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS);
    ck_assert_msg(n > 0, "no answer from sink through lb");
    ck_assert_str_eq(buf, "1048576\n");
    close(fd);
    free(data);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The backend closes its write side first (name mode); the client sees the
 * name and EOF, then keeps sending: lb must keep reading the client. */
START_TEST(halfclose_backend_first)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "name", "nm", (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    char buf[16];
    ssize_t n = harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS);
    ck_assert_msg(n == 3, "read %zd bytes before EOF", n);
    ck_assert_str_eq(buf, "nm\n");
    char data[1000];
    memset(data, 'x', sizeof(data));
    ck_assert_msg(harness_send_all(fd, data, sizeof(data), HARNESS_WAIT_MS),
                  "lb stopped taking client data after the backend's FIN");
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_msg(harness_log_wait(lb.log, "bytes_from_client=1000 bytes_from_backend=3 ", 1,
                                   HARNESS_WAIT_MS),
                  "no session end with bytes_from_client=1000 bytes_from_backend=3 in %s", lb.log);
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* 64 MiB both ways at once through lb to an echo backend, byte-exact, then
 * a clean EOF and the session's byte counts. */
static void echo_64mib(struct harness_lb *lb, int lport)
{
    int fd = harness_connect_ok("127.0.0.1", lport);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    unsigned char *out = malloc(BIG_CHUNK), *in = malloc(BIG_CHUNK), *want = malloc(BIG_CHUNK);
    ck_assert(out && in && want);
    uint64_t sent = 0, received = 0, out_off = 0;
    size_t out_len = 0, out_pos = 0;
    long deadline = harness_now_ms() + BIG_DEADLINE_MS;
    while (received < BIG_TOTAL) {
        ck_assert_msg(harness_now_ms() < deadline, "64 MiB echo stalled: sent %llu received %llu",
                      (unsigned long long)sent, (unsigned long long)received);
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < BIG_TOTAL ? POLLOUT : 0)};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        if (p.revents & POLLOUT && sent < BIG_TOTAL) {
            if (out_pos == out_len) {
                out_off = sent;
                out_len = BIG_TOTAL - sent < BIG_CHUNK ? BIG_TOTAL - sent : BIG_CHUNK;
                out_pos = 0;
                harness_stream_fill(out, out_off, out_len);
            }
            ssize_t n = send(fd, out + out_pos, out_len - out_pos, MSG_NOSIGNAL);
            if (n > 0) {
                out_pos += (size_t)n;
                sent += (uint64_t)n;
                if (sent == BIG_TOTAL)
                    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
            } else {
                ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, in, BIG_CHUNK, 0);
            ck_assert_msg(n != 0, "EOF after %llu of %llu bytes", (unsigned long long)received,
                          (unsigned long long)BIG_TOTAL);
            if (n < 0) {
                ck_assert_msg(errno == EAGAIN, "recv: %s", strerror(errno));
                continue;
            }
            harness_stream_fill(want, received, (size_t)n);
            if (memcmp(in, want, (size_t)n) != 0) {
                size_t i = 0;
                while (in[i] == want[i])
                    i++;
                ck_abort_msg("byte %llu differs", (unsigned long long)(received + i));
            }
            received += (uint64_t)n;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    char extra[16];
    ck_assert_msg(harness_read_eof(fd, extra, sizeof(extra), HARNESS_WAIT_MS) == 0,
                  "no clean EOF after the echo");
    close(fd);
    free(out);
    free(in);
    free(want);
    ck_assert_msg(harness_log_wait(lb->log,
                                   "bytes_from_client=67108864 bytes_from_backend=67108864 ", 1,
                                   HARNESS_WAIT_MS),
                  "no session end with 67108864 bytes each way in %s", lb->log);
}

/* lb with an admin API in front of an echo backend, splice as given. */
static int start_echo_admin(struct harness_lb *lb, bool splice, int *aport)
{
    int bport = harness_free_port(), lport = harness_free_port();
    *aport = harness_free_port();
    harness_server("127.0.0.1", bport, harness_fn_echo, NULL);
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport)});
    harness_jappend(cfg, "pools.0.backends", harness_backend_json(harness_lo(bport), "e1"));
    harness_jset(cfg, "listeners.0.splice", json_boolean(splice));
    harness_jset(cfg, "admin.listen", json_string(harness_lo(*aport)));
    harness_lb_start_json(lb, cfg, lport);
    return lport;
}

START_TEST(big_transfer)
{
    struct harness_lb lb;
    int aport, lport = start_echo_admin(&lb, true, &aport);
    echo_64mib(&lb, lport);
    /* Both directions carried bulk: they moved to pipes, which went back
     * (empty) to the pool when the session ended. */
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    long long spliced = harness_jint(r.json, "splice.bytes");
    ck_assert_msg(spliced > 0 && spliced <= 2 * 67108864LL, "spliced %lld bytes", spliced);
    ck_assert_int_eq(harness_jint(r.json, "splice.pipes"), 2);
    ck_assert_int_gt(harness_jint(r.json, "splice.pipes_max"), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* "splice": false: the same transfer, copied all the way. */
START_TEST(big_transfer_no_splice)
{
    struct harness_lb lb;
    int aport, lport = start_echo_admin(&lb, false, &aport);
    echo_64mib(&lb, lport);
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(harness_jint(r.json, "splice.bytes"), 0);
    ck_assert_int_eq(harness_jint(r.json, "splice.pipes"), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(retry_dead_backend)
{
    int dead = harness_free_port();
    int live = harness_free_port();
    harness_server("127.0.0.1", live, harness_fn_name, "live");
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport),
        .strategy = "roundrobin",
        .retries = 2,
    });
    harness_jset(cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(dead), "dead"),
                                harness_backend_json(harness_lo(live), "live"), NULL));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    for (int i = 0; i < 6; i++) {
        const char *got = harness_fetch_name(NULL, "127.0.0.1", lport);
        ck_assert_msg(got && strcmp(got, "live") == 0, "connection %d got %s; log %s", i,
                      got ? got : "(nothing)", lb.log);
    }
    const char *warn = "warn: pool app backend dead connect failed: Connection refused";
    ck_assert_msg(harness_log_wait(lb.log, warn, 1, HARNESS_WAIT_MS), "no '%s' in %s", warn,
                  lb.log);
    ck_assert(harness_log_wait(lb.log, "session end", 6, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, "backend=live "), 6);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(all_backends_dead)
{
    int d1 = harness_free_port();
    int d2 = harness_free_port();
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport), .retries = 2});
    harness_jset(cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(d1), "d1"),
                                harness_backend_json(harness_lo(d2), "d2"), NULL));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    int fd = harness_connect_ok("127.0.0.1", lport);
    long waited = harness_wait_closed(fd, 3000);
    ck_assert_msg(waited >= 0, "lb did not close the client within 3 s with every backend dead");
    close(fd);
    ck_assert_msg(harness_log_wait(lb.log, "reason=\"connect failed\"", 1, HARNESS_WAIT_MS),
                  "no reason=\"connect failed\" in %s", lb.log);
    ck_assert(
        harness_log_contains(lb.log, "pool app backend d1 connect failed: Connection refused"));
    ck_assert(
        harness_log_contains(lb.log, "pool app backend d2 connect failed: Connection refused"));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(idle_timeout_closes)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "echo", "e1", (struct harness_conf){.idle_timeout_ms = 300});
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "ping");
    long waited = harness_wait_closed(fd, 5000);
    ck_assert_msg(waited >= 0, "idle connection still open after 5 s (idle_timeout_ms 300)");
    ck_assert_msg(waited >= 250, "idle connection closed after %ld ms, before 300", waited);
    close(fd);
    ck_assert_msg(harness_log_wait(lb.log, "reason=\"idle timeout\"", 1, HARNESS_WAIT_MS),
                  "no reason=\"idle timeout\" in %s", lb.log);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(idle_timeout_spares_active)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "echo", "e1", (struct harness_conf){.idle_timeout_ms = 300});
    int fd = harness_connect_ok("127.0.0.1", lport);
    for (int i = 0; i < 11; i++) {
        harness_echo_roundtrip(fd, "x");
        harness_sleep_ms(100);
    }
    harness_echo_roundtrip(fd, "still here");
    close(fd);
    ck_assert(harness_log_wait(lb.log, "session end", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, "reason=\"idle timeout\""), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(max_connections_waits)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "echo", "e1", (struct harness_conf){.max_connections = 2});
    int c1 = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(c1, "one");
    int c2 = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(c2, "two");
    int c3 = harness_connect_ok("127.0.0.1", lport);
    ck_assert(harness_send_all(c3, "3", 1, HARNESS_WAIT_MS));
    ck_assert_msg(!harness_readable(c3, 500),
                  "3rd connection got data or EOF with max_connections 2");
    close(c1);
    char buf[2] = {0};
    ck_assert_msg(harness_recv_n(c3, buf, 1, HARNESS_WAIT_MS) == 1 && buf[0] == '3',
                  "3rd connection got no echo after the 1st closed");
    harness_echo_roundtrip(c2, "two again");
    close(c2);
    close(c3);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The demo path: two keep-alive requests on one connection to an http-mode
 * backend through lb, then one with Connection: close, answered and closed. */
START_TEST(http_keepalive)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "http", "app1", (struct harness_conf){0});
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 16\r\n\r\nhello from app1\n";
    size_t len = sizeof(resp) - 1;
    int fd = harness_connect_ok("127.0.0.1", lport);
    char buf[512];
    for (int i = 0; i < 2; i++) {
        const char *req = "GET / HTTP/1.1\r\nHost: lb\r\n\r\n";
        ck_assert(harness_send_all(fd, req, strlen(req), HARNESS_WAIT_MS));
        memset(buf, 0, sizeof(buf));
        ck_assert_int_eq(harness_recv_n(fd, buf, len, HARNESS_WAIT_MS), (ssize_t)len);
        ck_assert_str_eq(buf, resp);
    }
    const char *last = "GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n";
    ck_assert(harness_send_all(fd, last, strlen(last), HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), (ssize_t)len);
    ck_assert_str_eq(buf, resp);
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(ipv6_end_to_end)
{
    if (!harness_have_ipv6()) {
        fprintf(stderr, "relay ipv6: skipped, this machine has no ::1\n");
        return;
    }
    int bport = harness_free_port6();
    int lport = harness_free_port6();
    ck_assert(bport > 0 && lport > 0);
    harness_server("::1", bport, harness_fn_echo, NULL);
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_hostport("::1", lport)});
    harness_jappend(cfg, "pools.0.backends",
                    harness_backend_json(harness_hostport("::1", bport), NULL));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    int fd = harness_connect_ok("::1", lport);
    harness_echo_roundtrip(fd, "hello over v6");
    close(fd);
    const char *backend = harness_strf("backend=[::1]:%d ", bport);
    ck_assert_msg(harness_log_wait(lb.log, backend, 1, HARNESS_WAIT_MS), "no '%s' in %s", backend,
                  lb.log);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* Backpressure: a client that sends without reading, through lb to an echo
 * backend, must stall once the socket buffers and lb's bounded buffers are
 * full (lb stops reading it) instead of lb buffering without limit; every
 * byte still arrives in order once the client reads. */
#define PRESSURE_LIMIT (128ull * 1024 * 1024)
START_TEST(backpressure_bounded)
{
    struct harness_lb lb;
    int lport = start_one(&lb, "echo", "e1", (struct harness_conf){0});
    int fd = harness_connect_ok("127.0.0.1", lport);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    unsigned char *buf = malloc(BIG_CHUNK), *want = malloc(BIG_CHUNK);
    ck_assert(buf && want);

    /* Send until no progress for a whole second. */
    uint64_t sent = 0;
    for (;;) {
        ck_assert_msg(sent < PRESSURE_LIMIT,
                      "lb accepted %llu bytes from a client whose peer does not read",
                      (unsigned long long)sent);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 1000) == 0)
            break;
        harness_stream_fill(buf, sent, BIG_CHUNK);
        ssize_t n = send(fd, buf, BIG_CHUNK, MSG_NOSIGNAL);
        if (n < 0) {
            ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
            continue;
        }
        sent += (uint64_t)n;
    }
    ck_assert_msg(sent > 0, "nothing could be sent");
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);

    /* Now read: the whole stream comes back, byte-exact, then EOF. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    uint64_t received = 0;
    while (received < sent) {
        size_t want_n = sent - received < BIG_CHUNK ? (size_t)(sent - received) : BIG_CHUNK;
        ssize_t n = harness_recv_n(fd, buf, want_n, HARNESS_WAIT_MS);
        ck_assert_msg(n > 0, "echo stopped after %llu of %llu bytes", (unsigned long long)received,
                      (unsigned long long)sent);
        harness_stream_fill(want, received, (size_t)n);
        ck_assert_msg(memcmp(buf, want, (size_t)n) == 0, "echo differs near byte %llu",
                      (unsigned long long)received);
        received += (uint64_t)n;
    }
    char extra[16];
    ck_assert_msg(harness_read_eof(fd, extra, sizeof(extra), HARNESS_WAIT_MS) == 0,
                  "no clean EOF after the echo");
    close(fd);
    free(buf);
    free(want);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A backend whose accept queue is full never completes the handshake: lb
 * gives up after connect_timeout_ms and retries the next backend. */
START_TEST(retry_connect_timeout)
{
    /* Listen with backlog 0 and fill the queue with one connection: further
     * SYNs are dropped, so connects to it hang. */
    int bfd = harness_listen_held("127.0.0.1", 0);
    int hung = harness_sock_port(bfd);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)hung),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int filler = harness_connect("127.0.0.1", hung, HARNESS_WAIT_MS);
    ck_assert_msg(filler >= 0, "cannot fill the accept queue");
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
    ck_assert(rc < 0 && errno == EINPROGRESS);
    struct pollfd p = {.fd = probe, .events = POLLOUT};
    ck_assert_msg(poll(&p, 1, 300) == 0, "the full accept queue still completes handshakes");
    close(probe);

    int live = harness_free_port();
    harness_server("127.0.0.1", live, harness_fn_name, "live");
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport),
        .retries = 1,
        .connect_timeout_ms = 200,
    });
    harness_jset(cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(hung), "hung"),
                                harness_backend_json(harness_lo(live), "live"), NULL));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    const char *name = harness_fetch_name(NULL, "127.0.0.1", lport);
    ck_assert_msg(name && strcmp(name, "live") == 0, "got %s instead of live",
                  name ? name : "(nothing)");
    ck_assert_msg(harness_log_wait(lb.log,
                                   "pool app backend hung connect failed: timed out after 200 ms",
                                   1, HARNESS_WAIT_MS),
                  "no connect timeout logged in %s", lb.log);
    ck_assert(harness_log_wait(lb.log, "backend=live ", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(filler);
}
END_TEST

/* Out of file descriptors (lb run with `ulimit -n 14`, less than the
 * descriptors lb keeps back for itself, so sessions get two: one at a
 * time): clients beyond what lb can serve wait in the listen backlog
 * instead of being dropped, lb logs the shortage, and every waiting client
 * is served once earlier sessions end. */
#define FD_CLIENTS 8
START_TEST(fd_exhaustion_waits)
{
    HARNESS_SKIP_WRAPPED("a descriptor limit of 14: valgrind takes descriptors of its own");
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "e1", "echo");
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(
        &(struct harness_conf){.listen = harness_lo(lport), .connect_timeout_ms = 10000});
    harness_jappend(cfg, "pools.0.backends", harness_backend_json(harness_lo(bport), "e1"));
    struct harness_lb lb;
    harness_lb_start_limited(&lb, harness_jtext(cfg), lport, 14);

    int fds[FD_CLIENTS];
    bool served[FD_CLIENTS] = {false};
    int nserved = 0;
    for (int i = 0; i < FD_CLIENTS; i++) {
        fds[i] = harness_connect_ok("127.0.0.1", lport);
        char c = (char)('a' + i);
        ck_assert(harness_send_all(fds[i], &c, 1, HARNESS_WAIT_MS));
    }
    for (int i = 0; i < FD_CLIENTS; i++) {
        char c = 0;
        if (!harness_readable(fds[i], 300))
            continue;
        ck_assert_msg(harness_recv_n(fds[i], &c, 1, HARNESS_WAIT_MS) == 1 && c == 'a' + i,
                      "client %d: no echo, lb closed it", i);
        served[i] = true;
        nserved++;
    }
    ck_assert_msg(nserved > 0 && nserved < FD_CLIENTS, "%d of %d clients served with 14 fds",
                  nserved, FD_CLIENTS);
    ck_assert_msg(harness_log_contains(lb.log, "warn: file descriptor limit 14 leaves no room "
                                               "beside the 17 kept for the admin API, health "
                                               "checks and lb itself; sessions may use 2 (1 "
                                               "session at a time)"),
                  "no descriptor budget logged in %s", lb.log);
    ck_assert_msg(harness_log_wait(lb.log,
                                   "warn: 1 sessions hold the 2 descriptors sessions may use; "
                                   "accepts pause until one ends",
                                   1, HARNESS_WAIT_MS),
                  "no descriptor shortage logged in %s", lb.log);

    /* Free the served ones: every waiting client gets its echo, in turn. */
    for (int i = 0; i < FD_CLIENTS; i++)
        if (served[i])
            close(fds[i]);
    for (int i = 0; i < FD_CLIENTS; i++) {
        if (served[i])
            continue;
        char c = 0;
        ck_assert_msg(harness_recv_n(fds[i], &c, 1, HARNESS_WAIT_MS) == 1 && c == 'a' + i,
                      "waiting client %d was not served after others closed", i);
        close(fds[i]);
    }
    ck_assert_int_eq(harness_log_count(lb.log, "reason=\"connect failed\""), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc;
#define ADD_TCASE(name)                                                                            \
    tc = harness_tcase(name);                                                                      \
    suite_add_tcase(s, tc)
    ADD_TCASE("halfclose");
    tcase_add_test(tc, halfclose_client_first);
    tcase_add_test(tc, halfclose_sink_count);
    tcase_add_test(tc, halfclose_backend_first);
    ADD_TCASE("bigtransfer");
    tcase_add_test(tc, big_transfer);
    tcase_add_test(tc, big_transfer_no_splice);
    ADD_TCASE("backpressure");
    tcase_add_test(tc, backpressure_bounded);
    ADD_TCASE("retry");
    tcase_add_test(tc, retry_dead_backend);
    tcase_add_test(tc, retry_connect_timeout);
    tcase_add_test(tc, all_backends_dead);
    ADD_TCASE("idle");
    tcase_add_test(tc, idle_timeout_closes);
    tcase_add_test(tc, idle_timeout_spares_active);
    ADD_TCASE("maxconn");
    tcase_add_test(tc, max_connections_waits);
    ADD_TCASE("fds");
    tcase_add_test(tc, fd_exhaustion_waits);
    ADD_TCASE("http");
    tcase_add_test(tc, http_keepalive);
    ADD_TCASE("ipv6");
    tcase_add_test(tc, ipv6_end_to_end);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(relay_suite)
