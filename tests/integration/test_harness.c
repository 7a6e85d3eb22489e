/* Integration: the harness's own pieces that other suites lean on.
 * harness_server with the echo, name and http functions behind a real lb,
 * connections served side by side, a crash that ends one connection only,
 * teardown ending the server and its connection processes; the hold and
 * http functions alone; harness_listen_held's unanswered connect; and the
 * JSON config builder (harness_jset paths, harness_cfg's document). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

/* lb (the usual config) in front of the backends on ports[0..n-1], named
 * names[i]; returns lb's port. */
static int start_lb(struct harness_lb *lb, int n, const int ports[], const char *const names[])
{
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport)});
    for (int i = 0; i < n; i++)
        harness_jappend(cfg, "pools.0.backends",
                        harness_backend_json(harness_lo(ports[i]), names[i]));
    harness_lb_start_json(lb, cfg, lport);
    return lport;
}

/* --- harness_server behind lb --- */

/* 100000 bytes through lb to an echo function: all of them back, then EOF
 * once the client shuts its side. */
START_TEST(server_echo_through_lb)
{
    int bport = harness_free_port();
    harness_server("127.0.0.1", bport, harness_fn_echo, NULL);
    struct harness_lb lb;
    int lport = start_lb(&lb, 1, &bport, (const char *const[]){"e1"});
    size_t len = 100000;
    unsigned char *data = malloc(len), *back = malloc(len + 1);
    ck_assert(data && back);
    harness_stream_fill(data, 0, len);
    int fd = harness_connect_ok("127.0.0.1", lport);
    ck_assert(harness_send_all(fd, data, len, HARNESS_WAIT_MS));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ssize_t n = harness_read_eof(fd, back, len + 1, HARNESS_WAIT_MS);
    ck_assert_msg(n == (ssize_t)len, "read %zd bytes before EOF, want %zu", n, len);
    ck_assert(memcmp(data, back, len) == 0);
    close(fd);
    free(data);
    free(back);
    ck_assert_msg(harness_log_wait(lb.log,
                                   "backend=e1 bytes_from_client=100000 "
                                   "bytes_from_backend=100000 ",
                                   1, HARNESS_WAIT_MS),
                  "no session end with 100000 bytes each way in %s", lb.log);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* Two name functions in round robin: each connection reads one name and
 * EOF; what the client sends after that draws no reset. */
START_TEST(server_name_through_lb)
{
    int ports[2] = {harness_free_port(), harness_free_port()};
    harness_server("127.0.0.1", ports[0], harness_fn_name, "n1");
    harness_server("127.0.0.1", ports[1], harness_fn_name, "n2");
    struct harness_lb lb;
    int lport = start_lb(&lb, 2, ports, (const char *const[]){"n1", "n2"});
    const char *seq = "";
    for (int i = 0; i < 4; i++) {
        const char *name = harness_fetch_name(NULL, "127.0.0.1", lport);
        ck_assert_msg(name != NULL, "connection %d got no name; log %s", i, lb.log);
        seq = harness_strf("%s%s%s", seq, i ? " " : "", name);
    }
    ck_assert_str_eq(seq, "n1 n2 n1 n2");

    int fd = harness_connect_ok("127.0.0.1", lport);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), 3);
    ck_assert_str_eq(buf, "n1\n");
    ck_assert(harness_send_all(fd, "after", 5, HARNESS_WAIT_MS));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    close(fd);
    ck_assert_msg(harness_log_wait(lb.log, "backend=n1 bytes_from_client=5 bytes_from_backend=3 ",
                                   1, HARNESS_WAIT_MS),
                  "no session end with 5 bytes from the client in %s", lb.log);
    ck_assert_int_eq(harness_log_count(lb.log, "error"), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The http function behind lb: harness_http's request (Connection: close)
 * gets 200 and the body. */
START_TEST(server_http_through_lb)
{
    int bport = harness_free_port();
    harness_server("127.0.0.1", bport, harness_fn_http, "hello from h1\n");
    struct harness_lb lb;
    int lport = start_lb(&lb, 1, &bport, (const char *const[]){"h1"});
    int status = 0;
    const char *headers = NULL, *body = NULL;
    ck_assert_int_eq(harness_http(lport, "GET", "/", NULL, NULL, &status, &headers, &body), 0);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(body, "hello from h1\n");
    ck_assert_str_eq(harness_http_header(headers, "Content-Length"), "14");
    ck_assert_str_eq(harness_http_header(headers, "Connection"), "close");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* An IPv6 literal, directly. */
START_TEST(server_ipv6)
{
    if (!harness_have_ipv6()) {
        fprintf(stderr, "harness server_ipv6: skipped, this machine has no ::1\n");
        return;
    }
    int port = harness_free_port6();
    ck_assert_int_gt(port, 0);
    harness_server("::1", port, harness_fn_name, "v6");
    ck_assert_str_eq(harness_fetch_name(NULL, "::1", port), "v6");
}
END_TEST

/* --- harness_server's processes --- */

/* Echoes, except that a connection whose first byte is 'k' kills its own
 * process. */
static void echo_or_die(int fd, void *arg)
{
    char c;
    if (recv(fd, &c, 1, MSG_PEEK) == 1 && c == 'k')
        raise(SIGKILL);
    harness_fn_echo(fd, arg);
}

START_TEST(server_concurrent_and_crash)
{
    int port = harness_free_port();
    harness_server("127.0.0.1", port, echo_or_die, NULL);
    int a = harness_connect_ok("127.0.0.1", port), b = harness_connect_ok("127.0.0.1", port);
    harness_echo_roundtrip(a, "first, still open");
    harness_echo_roundtrip(b, "second, at the same time");
    int k = harness_connect_ok("127.0.0.1", port);
    ck_assert(harness_send_all(k, "k", 1, HARNESS_WAIT_MS));
    ck_assert_msg(harness_wait_closed(k, HARNESS_WAIT_MS) >= 0,
                  "the connection whose process died stayed open");
    close(k);
    harness_echo_roundtrip(a, "first goes on");
    harness_echo_roundtrip(b, "second goes on");
    int c = harness_connect_ok("127.0.0.1", port);
    harness_echo_roundtrip(c, "a new one after the crash");
    close(a);
    close(b);
    close(c);
}
END_TEST

/* Writes the connection process's PID as text, then holds. */
static void tell_pid(int fd, void *arg)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (send(fd, text, (size_t)n, MSG_NOSIGNAL) == n)
        harness_fn_hold(fd, arg);
}

/* Gone: no such process, or a zombie nobody has reaped yet. */
static bool gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    char state = '?';
    int rc = fscanf(f, "%*d (%*[^)]) %c", &state);
    fclose(f);
    return rc == 1 && (state == 'Z' || state == 'X');
}

static bool wait_gone(pid_t pid, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (!gone(pid)) {
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
    return true;
}

/* Teardown kills the server; its connection process dies with it. */
START_TEST(server_gone_after_teardown)
{
    int port = harness_free_port();
    pid_t server = harness_server("127.0.0.1", port, tell_pid, NULL);
    int fd = harness_connect_ok("127.0.0.1", port);
    char text[32] = {0};
    ck_assert_msg(harness_recv_n(fd, text, sizeof(text) - 1, 500) > 0, "no PID from the server");
    pid_t conn = (pid_t)strtol(text, NULL, 10);
    ck_assert_int_gt(conn, 0);
    ck_assert_int_ne(conn, server);
    ck_assert(!gone(server) && !gone(conn));

    harness_teardown();
    ck_assert_msg(wait_gone(server, HARNESS_WAIT_MS), "server %ld outlived teardown", (long)server);
    ck_assert_msg(wait_gone(conn, HARNESS_WAIT_MS), "connection process %ld outlived teardown",
                  (long)conn);
    ck_assert_msg(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0, "the connection is still open");
    close(fd);
    harness_setup(); /* for the fixture's own teardown */
}
END_TEST

/* --- the functions alone --- */

START_TEST(fn_hold_never_answers)
{
    int port = harness_free_port();
    harness_server("127.0.0.1", port, harness_fn_hold, NULL);
    int fd = harness_connect_ok("127.0.0.1", port);
    ck_assert(harness_send_all(fd, "hello?", 6, HARNESS_WAIT_MS));
    ck_assert_msg(!harness_readable(fd, 300), "the hold function answered or closed");
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_msg(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0,
                  "the hold function did not close after the peer did");
    close(fd);
}
END_TEST

/* Reads one whole answer (head and Content-Length body) into buf. */
static const char *read_answer(int fd)
{
    char buf[1024];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        ck_assert(len < sizeof(buf) - 1);
        ssize_t n = harness_recv_n(fd, buf + len, 1, HARNESS_WAIT_MS);
        ck_assert_msg(n == 1, "answer cut after %zu bytes", len);
        len++;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strstr(buf, "Content-Length: ");
    ck_assert(cl != NULL);
    size_t body = strtoul(cl + 16, NULL, 10);
    ck_assert(len + body < sizeof(buf));
    ck_assert_int_eq(harness_recv_n(fd, buf + len, body, HARNESS_WAIT_MS), (ssize_t)body);
    buf[len + body] = '\0';
    return harness_strf("%s", buf);
}

#define OK_ANSWER "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
#define CLOSE_ANSWER                                                                               \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"                         \
    "Connection: close\r\n\r\nok\n"

START_TEST(fn_http_keepalive)
{
    int port = harness_free_port();
    harness_server("127.0.0.1", port, harness_fn_http, NULL);
    int fd = harness_connect_ok("127.0.0.1", port);
    /* Two requests in one write (pipelined), the second with a body. */
    const char *two = "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
                      "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
    ck_assert(harness_send_all(fd, two, strlen(two), HARNESS_WAIT_MS));
    ck_assert_str_eq(read_answer(fd), OK_ANSWER);
    ck_assert_str_eq(read_answer(fd), OK_ANSWER);
    ck_assert_msg(!harness_readable(fd, 200), "more than two answers, or a close");
    const char *last = "GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    ck_assert(harness_send_all(fd, last, strlen(last), HARNESS_WAIT_MS));
    char buf[512];
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS),
                     (ssize_t)strlen(CLOSE_ANSWER));
    ck_assert_str_eq(buf, CLOSE_ANSWER);
    close(fd);

    /* HTTP/1.0 closes unless it asks for keep-alive. */
    fd = harness_connect_ok("127.0.0.1", port);
    const char *old = "GET / HTTP/1.0\r\n\r\n";
    ck_assert(harness_send_all(fd, old, strlen(old), HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS),
                     (ssize_t)strlen(CLOSE_ANSWER));
    close(fd);
    fd = harness_connect_ok("127.0.0.1", port);
    const char *old_keep = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    ck_assert(harness_send_all(fd, old_keep, strlen(old_keep), HARNESS_WAIT_MS));
    ck_assert_str_eq(read_answer(fd), OK_ANSWER);
    ck_assert_msg(!harness_readable(fd, 200), "HTTP/1.0 keep-alive closed");
    close(fd);
}
END_TEST

/* --- harness_listen_held --- */

START_TEST(held_queue_stays_unanswered)
{
    int lfd = harness_listen_held("127.0.0.1", 0);
    int port = harness_sock_port(lfd);
    int filler = harness_connect("127.0.0.1", port, HARNESS_WAIT_MS);
    ck_assert_msg(filler >= 0, "the first connect did not complete: %s", strerror(errno));
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(probe, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
    int rc = connect(probe, (struct sockaddr *)&ss, len);
    ck_assert_msg(rc < 0 && errno == EINPROGRESS, "the second connect did not wait (rc %d: %s)", rc,
                  strerror(errno));
    struct pollfd p = {.fd = probe, .events = POLLOUT};
    ck_assert_msg(poll(&p, 1, 300) == 0, "the second connect completed within 300 ms");
    close(probe);
    close(filler);
}
END_TEST

/* --- the config builder --- */

static const char *compact(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert(text != NULL);
    const char *kept = harness_strf("%s", text);
    free(text);
    return kept;
}

START_TEST(jset_paths)
{
    json_t *root = harness_jkeep(json_object());
    harness_jset(root, "a.b.c", json_integer(1));
    harness_jset(root, "list.0.name", json_string("x"));
    harness_jset(root, "list.1", json_integer(2));
    ck_assert_str_eq(compact(root), "{\"a\":{\"b\":{\"c\":1}},\"list\":[{\"name\":\"x\"},2]}");
    /* Replacing keeps each key's place. */
    harness_jset(root, "a.b.c", json_integer(5));
    harness_jset(root, "list.0.name", json_string("y"));
    harness_jset(root, "a.d", json_true());
    ck_assert_str_eq(compact(root),
                     "{\"a\":{\"b\":{\"c\":5},\"d\":true},\"list\":[{\"name\":\"y\"},2]}");
    harness_jappend(root, "list", harness_jparse("[3, {\"k\": null}]"));
    harness_jdel(root, "list.1");
    harness_jdel(root, "a.b");
    ck_assert_str_eq(compact(root),
                     "{\"a\":{\"d\":true},\"list\":[{\"name\":\"y\"},[3,{\"k\":null}]]}");
    ck_assert_str_eq(
        compact(harness_jkeep(harness_jarray(json_integer(1), json_string("two"), NULL))),
        "[1,\"two\"]");
    ck_assert_str_eq(harness_jtext(harness_jkeep(harness_jparse("{\"a\": [1]}"))),
                     "{\n  \"a\": [\n    1\n  ]\n}\n");
}
END_TEST

START_TEST(cfg_document)
{
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = "127.0.0.1:1"});
    ck_assert_str_eq(compact(cfg),
                     "{\"log\":{\"level\":\"info\"},\"shutdown_grace_ms\":10000,"
                     "\"listeners\":[{\"name\":\"web\",\"listen\":\"127.0.0.1:1\",\"mode\":\"tcp\","
                     "\"pool\":\"app\",\"max_connections\":10000,\"idle_timeout_ms\":300000}],"
                     "\"pools\":[{\"name\":\"app\",\"strategy\":\"roundrobin\","
                     "\"connect_timeout_ms\":3000,\"retries\":0,\"backends\":[]}]}");
    /* The text fields still work, and harness_config is the same document. */
    struct harness_conf c = {
        .listen = "[::1]:2",
        .strategy = "weighted",
        .retries = 2,
        .grace_ms = 500,
        .backends = "{\"address\": \"127.0.0.1:3\", \"weight\": 4}, {\"address\": \"[::1]:4\"}",
        .pool_extra = "\"passive\": {\"max_failures\": 1}, ",
    };
    json_t *doc = harness_cfg(&c);
    ck_assert_int_eq(harness_jint(doc, "shutdown_grace_ms"), 500);
    ck_assert_str_eq(harness_jstr(doc, "pools.0.strategy"), "weighted");
    ck_assert_int_eq(harness_jint(doc, "pools.0.retries"), 2);
    ck_assert_int_eq(harness_jint(doc, "pools.0.passive.max_failures"), 1);
    ck_assert_int_eq(harness_jint(doc, "pools.0.backends.0.weight"), 4);
    ck_assert_str_eq(harness_jstr(doc, "pools.0.backends.1.address"), "[::1]:4");
    json_t *back = harness_jkeep(harness_jparse(harness_config(&c)));
    ck_assert(json_equal(back, doc));
    /* Pieces. */
    ck_assert_str_eq(compact(harness_jkeep(harness_backend_weighted("h:1", "b", 3))),
                     "{\"address\":\"h:1\",\"name\":\"b\",\"weight\":3}");
    ck_assert_str_eq(compact(harness_jkeep(harness_backend_json("h:1", NULL))),
                     "{\"address\":\"h:1\"}");
    ck_assert_str_eq(compact(harness_jkeep(harness_listener_json("l", "h:2", "p"))),
                     "{\"name\":\"l\",\"listen\":\"h:2\",\"pool\":\"p\"}");
    ck_assert_str_eq(compact(harness_jkeep(harness_pool_json("p", NULL, NULL))),
                     "{\"name\":\"p\",\"backends\":[]}");
    ck_assert_str_eq(harness_hostport("::1", 5), "[::1]:5");
    ck_assert_str_eq(harness_lo(6), "127.0.0.1:6");
}
END_TEST

static Suite *harness_suite(void)
{
    Suite *s = suite_create("harness");
    TCase *tc;
#define ADD_TCASE(name)                                                                            \
    tc = harness_tcase(name);                                                                      \
    suite_add_tcase(s, tc)
    ADD_TCASE("server");
    tcase_add_test(tc, server_echo_through_lb);
    tcase_add_test(tc, server_name_through_lb);
    tcase_add_test(tc, server_http_through_lb);
    tcase_add_test(tc, server_ipv6);
    tcase_add_test(tc, server_concurrent_and_crash);
    tcase_add_test(tc, server_gone_after_teardown);
    ADD_TCASE("fns");
    tcase_add_test(tc, fn_hold_never_answers);
    tcase_add_test(tc, fn_http_keepalive);
    ADD_TCASE("held");
    tcase_add_test(tc, held_queue_stays_unanswered);
    ADD_TCASE("builder");
    tcase_add_test(tc, jset_paths);
    tcase_add_test(tc, cfg_document);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(harness_suite)
