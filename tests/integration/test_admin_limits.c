/* Integration: the admin API against hostile clients and hostile reloads —
 * the token checked on the head before any body is read, bodies and heads
 * bounded, admin connections limited, a whole request within a deadline
 * that trickled bytes do not extend, strict HTTP/1.1 framing, and reloads
 * that move, close or try to weaken the admin listener. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/test.h"

#define TOKEN "s3cret"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

/* A config: listener on lport to one echo backend, and the admin object
 * (stolen; NULL for none). */
static json_t *config(int lport, int bport, json_t *admin)
{
    json_t *cfg = harness_jkeep(json_object());
    if (admin)
        harness_jset(cfg, "admin", admin);
    harness_jset(cfg, "listeners.0", harness_listener_json("web", harness_lo(lport), "app"));
    harness_jset(
        cfg, "pools.0",
        harness_pool_json("app", NULL,
                          harness_jarray(harness_backend_json(harness_lo(bport), "echo"), NULL)));
    return cfg;
}

/* An admin object listening on host:port, with token (NULL: none) and one
 * more integer key (NULL: none). */
static json_t *admin_json(const char *host, int port, const char *token, const char *key, int value)
{
    json_t *admin = json_pack("{s:s}", "listen", harness_hostport(host, port));
    if (token)
        harness_jset(admin, "token", json_string(token));
    if (key)
        harness_jset(admin, key, json_integer(value));
    return admin;
}

struct env {
    struct harness_lb lb;
    int lport, bport, aport;
};

/* lb with one echo backend and the admin API on host:(a free port), with
 * token and key as admin_json has them. */
static void env_start(struct env *e, const char *host, const char *token, const char *key,
                      int value)
{
    e->lport = harness_free_port();
    e->bport = harness_free_port();
    e->aport = harness_free_port();
    harness_backend("127.0.0.1", e->bport, "echo", "echo");
    json_t *admin = admin_json(host, e->aport, token, key, value);
    harness_lb_start_json(&e->lb, config(e->lport, e->bport, admin), e->lport);
    ck_assert_msg(harness_log_wait(e->lb.log, "started (pid", 1, HARNESS_WAIT_MS), "log %s",
                  e->lb.log);
}

/* Replaces lb's config with text and reloads; waits for the outcome
 * line (the count-th "reload ok" or "reload failed"). */
static void reload_text(struct env *e, const char *text, const char *outcome, int count)
{
    harness_lb_rewrite(&e->lb, text);
    harness_lb_signal(&e->lb, SIGHUP);
    ck_assert_msg(harness_log_wait(e->lb.log, outcome, count, HARNESS_WAIT_MS), "no %d× '%s' in %s",
                  count, outcome, e->lb.log);
}

/* The same with the document cfg. */
static void reload(struct env *e, json_t *cfg, const char *outcome, int count)
{
    reload_text(e, harness_jtext(cfg), outcome, count);
}

/* One echo session through lb, byte-exact. */
static void assert_data_path(int lport)
{
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_send_all(fd, "ping", 4, HARNESS_WAIT_MS));
    char buf[5] = {0};
    ck_assert_int_eq(harness_recv_n(fd, buf, 4, HARNESS_WAIT_MS), 4);
    ck_assert_str_eq(buf, "ping");
    close(fd);
}

/* Sends text on a new connection to the admin port and reads until EOF:
 * the whole answer (freed at teardown), or NULL on timeout. */
static const char *exchange_n(int port, const char *text, size_t len)
{
    int fd = harness_connect("127.0.0.1", port, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_send_all(fd, text, len, HARNESS_WAIT_MS));
    char *buf = malloc(65536);
    ssize_t n = harness_read_eof(fd, buf, 65536, HARNESS_WAIT_MS);
    close(fd);
    const char *out = n < 0 ? NULL : harness_strf("%s", buf);
    free(buf);
    return out;
}

static const char *exchange(int port, const char *text)
{
    return exchange_n(port, text, strlen(text));
}

static bool starts_with(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The body after the blank line of an answer. */
static const char *body_of(const char *answer)
{
    const char *b = answer ? strstr(answer, "\r\n\r\n") : NULL;
    return b ? b + 4 : "";
}

/* --- the head before the body --- */

/* With a token, a request without it is refused on its head: 401, the
 * body is never read (no 100 Continue is sent for it), the connection
 * closes. 500 clients each announcing 1 MiB leave lb's memory flat. */
START_TEST(token_before_body)
{
    struct env e;
    env_start(&e, "127.0.0.1", TOKEN, NULL, 0);
    const char *head = "PATCH /api/v1/pools/app/backends/echo HTTP/1.1\r\nHost: lb\r\n"
                       "Content-Type: application/json\r\nContent-Length: 1048576\r\n"
                       "Expect: 100-continue\r\n\r\n";
    const char *a = exchange(e.aport, head);
    ck_assert_msg(starts_with(a, "HTTP/1.1 401 Unauthorized\r\n"), "answer: %s", a);
    ck_assert(strstr(a, "100 Continue") == NULL);
    ck_assert(strstr(a, "\r\nWWW-Authenticate: Bearer\r\n") != NULL);
    ck_assert(strstr(a, "\r\nConnection: close\r\n") != NULL);
    ck_assert_str_eq(body_of(a), "{\n  \"error\": \"missing or invalid bearer token\"\n}\n");

    /* With the token, 100 Continue, then the answer once the body is in. */
    const char *body = "{\"weight\": 3}";
    int fd = harness_connect("127.0.0.1", e.aport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    const char *h2 = harness_strf("PATCH /api/v1/pools/app/backends/echo HTTP/1.1\r\n" AUTH
                                  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                                  "Expect: 100-continue\r\nConnection: close\r\n\r\n",
                                  strlen(body));
    ck_assert(harness_send_all(fd, h2, strlen(h2), HARNESS_WAIT_MS));
    char cont[26] = {0};
    ck_assert_int_eq(harness_recv_n(fd, cont, 25, HARNESS_WAIT_MS), 25);
    ck_assert_str_eq(cont, "HTTP/1.1 100 Continue\r\n\r\n");
    ck_assert(harness_send_all(fd, body, strlen(body), HARNESS_WAIT_MS));
    char *buf = malloc(65536);
    ck_assert_int_gt(harness_read_eof(fd, buf, 65536, HARNESS_WAIT_MS), 0);
    close(fd);
    ck_assert_msg(starts_with(buf, "HTTP/1.1 200 OK\r\n"), "answer: %s", buf);
    ck_assert(strstr(buf, "\"weight\": 3") != NULL);
    free(buf);

    /* 500 unauthenticated clients, each sending the head and 64 KiB of a
     * 1 MiB body, 25 at a time (a round's connections may still be closing
     * in lb when the next comes: 50 stay under max_connections): every one gets its 401 and lb's
     * memory stays flat (it buffered up to 1 MiB each before). */
    long rss0 = harness_rss_kb(e.lb.pid);
    char *chunk = calloc(1, 64 * 1024);
    memset(chunk, ' ', 64 * 1024);
    const char *h3 = "PATCH /api/v1/pools/app/backends/echo HTTP/1.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
    int got401 = 0;
    for (int round = 0; round < 20; round++) {
        int fds[25];
        for (int i = 0; i < 25; i++) {
            fds[i] = harness_connect("127.0.0.1", e.aport, HARNESS_WAIT_MS);
            ck_assert_int_ge(fds[i], 0);
            ck_assert(harness_send_all(fds[i], h3, strlen(h3), HARNESS_WAIT_MS));
            fcntl(fds[i], F_SETFL, O_NONBLOCK);
            ssize_t w = send(fds[i], chunk, 64 * 1024, MSG_NOSIGNAL); /* may be refused */
            (void)w;
            fcntl(fds[i], F_SETFL, 0);
        }
        for (int i = 0; i < 25; i++) {
            char ans[32] = {0};
            ssize_t n = harness_recv_n(fds[i], ans, 26, HARNESS_WAIT_MS);
            if (n == 26 && strcmp(ans, "HTTP/1.1 401 Unauthorized\r") == 0)
                got401++;
            close(fds[i]);
        }
    }
    free(chunk);
    ck_assert_int_eq(got401, 500);
    long rss1 = harness_rss_kb(e.lb.pid);
    if (!HARNESS_WRAPPED_SKIPS_CHECK("lb's RSS under valgrind is valgrind's"))
        ck_assert_msg(rss1 - rss0 < 16 * 1024, "lb grew from %ld to %ld KiB", rss0, rss1);
    assert_data_path(e.lport);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* --- limits --- */

/* Beyond admin.max_connections a connection gets a 503 and is closed at
 * once; the data path serves meanwhile; a freed slot is usable again. */
START_TEST(connection_limit)
{
    struct env e;
    env_start(&e, "127.0.0.1", NULL, "max_connections", 3);
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = harness_connect("127.0.0.1", e.aport, HARNESS_WAIT_MS);
        ck_assert_int_ge(held[i], 0);
    }
    /* The three are accepted before the fourth comes. */
    ck_assert(harness_send_all(held[0], "GET /healthz HTTP/1.1\r\n\r\n", 25, HARNESS_WAIT_MS));
    char buf[4096];
    ck_assert_int_gt(harness_recv_n(held[0], buf, 17, HARNESS_WAIT_MS), 0);
    harness_sleep_ms(100);
    const char *a = exchange(e.aport, "GET /healthz HTTP/1.1\r\n\r\n");
    ck_assert_msg(starts_with(a, "HTTP/1.1 503 Service Unavailable\r\n"), "answer: %s", a);
    ck_assert_str_eq(body_of(a), "{\n  \"error\": \"too many admin connections (3)\"\n}\n");
    assert_data_path(e.lport);

    close(held[2]);
    harness_sleep_ms(100);
    struct harness_reply r = harness_call(e.aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "admin.rejected"), 1);
    ck_assert_int_eq(harness_jint(r.json, "admin.connections"), 3);
    r = harness_call(e.aport, "GET", "/metrics", NULL, NULL);
    ck_assert(strstr(r.body, "\nlb_admin_connections_rejected_total 1\n") != NULL);
    close(held[0]);
    close(held[1]);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* A whole request must arrive within request_timeout_ms: a client that
 * trickles a header byte every 150 ms gets a 408 at the deadline; an idle
 * connection is closed silently at it; the data path never notices. */
START_TEST(request_deadline)
{
    struct env e;
    env_start(&e, "127.0.0.1", NULL, "request_timeout_ms", 1000);
    int fd = harness_connect("127.0.0.1", e.aport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    long t0 = harness_now_ms();
    ck_assert(harness_send_all(fd, "GET /healthz HTTP/1.1\r\nX-Slow: ", 31, HARNESS_WAIT_MS));
    bool closed = false;
    for (int i = 0; i < 40 && !closed; i++) {
        harness_sleep_ms(150);
        closed = send(fd, "a", 1, MSG_NOSIGNAL) < 0 || harness_readable(fd, 0);
    }
    char *buf = calloc(1, 4096);
    harness_read_eof(fd, buf, 4096, HARNESS_WAIT_MS);
    long took = harness_now_ms() - t0;
    close(fd);
    ck_assert_msg(starts_with(buf, "HTTP/1.1 408 Request Timeout\r\n"), "answer: %s", buf);
    ck_assert_str_eq(body_of(buf), "{\n  \"error\": \"request not complete within 1000 ms\"\n}\n");
    ck_assert_msg(took >= 900 && took < 2500, "cut after %ld ms", took);
    free(buf);

    fd = harness_connect("127.0.0.1", e.aport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    t0 = harness_now_ms();
    char one;
    ck_assert_int_eq(harness_read_eof(fd, &one, 1, 3000), 0); /* EOF, no answer */
    took = harness_now_ms() - t0;
    ck_assert_msg(took >= 900 && took < 2500, "idle connection closed after %ld ms", took);
    close(fd);
    struct harness_reply r = harness_call(e.aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(harness_jint(r.json, "admin.timeouts"), 1);
    assert_data_path(e.lport);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* A head that arrives in the same pass of the loop as its deadline (here:
 * lb is stopped meanwhile) still gets its 408 when its body does not come,
 * instead of waiting for it forever. */
START_TEST(deadline_while_queued)
{
    struct env e;
    env_start(&e, "127.0.0.1", NULL, "request_timeout_ms", 1000);
    int fd = harness_connect("127.0.0.1", e.aport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    harness_sleep_ms(100); /* accepted */
    kill(e.lb.pid, SIGSTOP);
    const char *head = "POST /api/v1/reload HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
    ck_assert(harness_send_all(fd, head, strlen(head), HARNESS_WAIT_MS));
    harness_sleep_ms(1300);
    kill(e.lb.pid, SIGCONT);
    char *buf = calloc(1, 4096);
    ck_assert_int_gt(harness_read_eof(fd, buf, 4096, 3000), 0);
    close(fd);
    ck_assert_msg(starts_with(buf, "HTTP/1.1 408 Request Timeout\r\n"), "answer: %s", buf);
    free(buf);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* Strict framing: each malformed head gets its status and a close. */
START_TEST(strict_framing)
{
    struct env e;
    env_start(&e, "127.0.0.1", NULL, NULL, 0);
    static const struct {
        const char *request;
        const char *status_line;
        const char *error;
    } cases[] = {
        {"GET /healthz HTTP/1.1\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request",
         "malformed request head"},
        /* LF alone everywhere: refused at once, not at the deadline. */
        {"GET /healthz HTTP/1.1\nHost: x\n\n", "HTTP/1.1 400 Bad Request",
         "malformed request head"},
        {"GET /healthz HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n", "HTTP/1.1 400 Bad Request",
         "obsolete line folding in a header"},
        {"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", "HTTP/1.1 400 Bad Request",
         "malformed header line"},
        {"GET /healthz\r\n\r\n", "HTTP/1.1 400 Bad Request", "malformed request line"},
        {"GET /healthz HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported",
         "only HTTP/1.0 and HTTP/1.1 are supported"},
        {"POST /api/v1/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "HTTP/1.1 501 Not Implemented", "Transfer-Encoding is not supported: send Content-Length"},
        {"POST /api/v1/reload HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
         "HTTP/1.1 400 Bad Request", "conflicting Content-Length headers"},
        {"POST /api/v1/reload HTTP/1.1\r\nContent-Length: 9999999999\r\n\r\n",
         "HTTP/1.1 413 Content Too Large", "request body too large"},
        {"GET /healthz HTTP/1.1\r\nExpect: magic\r\n\r\n", "HTTP/1.1 417 Expectation Failed",
         "only Expect: 100-continue is supported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *a = exchange(e.aport, cases[i].request);
        ck_assert_msg(starts_with(a, cases[i].status_line), "case %zu: %s", i, a);
        ck_assert(strstr(a, "\r\nConnection: close\r\n") != NULL);
        ck_assert_str_eq(body_of(a), harness_strf("{\n  \"error\": \"%s\"\n}\n", cases[i].error));
    }
    /* A NUL in the head (it used to end the parser's scans early). */
    static const char nul[] = "GET /healthz HTTP/1.1\r\nX: a\0?Y: b\r\n\r\n";
    const char *na = exchange_n(e.aport, nul, sizeof(nul) - 1);
    ck_assert_msg(starts_with(na, "HTTP/1.1 400 Bad Request\r\n"), "%s", na);
    ck_assert_str_eq(body_of(na), "{\n  \"error\": \"malformed request head\"\n}\n");
    /* A head over 16 KiB: 431. */
    char *big = malloc(20000);
    strcpy(big, "GET /healthz HTTP/1.1\r\nX-Big: ");
    memset(big + strlen(big), 'x', 18000);
    strcpy(big + 18030, "\r\n\r\n");
    const char *a = exchange(e.aport, big);
    free(big);
    ck_assert_msg(starts_with(a, "HTTP/1.1 431 Request Header Fields Too Large\r\n"), "%s", a);
    ck_assert_str_eq(body_of(a), "{\n  \"error\": \"request head over 16384 bytes\"\n}\n");

    /* Pipelined requests are answered in order on one connection; HTTP/1.0
     * is kept alive only when it asks, and is told so; else it closes. */
    a = exchange(e.aport, "GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                          "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                          "GET /healthz HTTP/1.0\r\n\r\n");
    ck_assert_msg(a != NULL, "no answer");
    const char *second = strstr(a + 1, "HTTP/1.1 404 Not Found\r\n");
    const char *third = second ? strstr(second + 1, "HTTP/1.1 200 OK\r\n") : NULL;
    const char *fourth = third ? strstr(third + 1, "HTTP/1.1 200 OK\r\n") : NULL;
    ck_assert_msg(starts_with(a, "HTTP/1.1 200 OK\r\n") && second && third && fourth, "answers: %s",
                  a);
    ck_assert(strstr(third, "\r\nConnection: keep-alive\r\n") < fourth);
    ck_assert(strstr(third, "\r\nConnection: keep-alive\r\n") != NULL);
    ck_assert(strstr(fourth, "\r\nConnection: close\r\n") != NULL);
    assert_data_path(e.lport);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* --- reloads --- */

/* A reload that would leave a wildcard admin without its token is refused
 * whole, with the file's position; the token keeps applying. */
START_TEST(reload_keeps_token)
{
    struct env e;
    env_start(&e, "*", TOKEN, NULL, 0);
    ck_assert_int_eq(harness_call(e.aport, "GET", "/api/v1/status", NULL, NULL).status, 401);
    /* Literal text: the error names its line and column. */
    reload_text(&e,
                harness_strf("{\n"
                             "  \"admin\": {\"listen\": \"*:%d\"},\n"
                             "  \"listeners\": [{\"name\": \"web\", \"listen\": \"127.0.0.1:%d\", "
                             "\"pool\": \"app\"}],\n"
                             "  \"pools\": [{\"name\": \"app\", \"backends\": [{\"address\": "
                             "\"127.0.0.1:%d\", \"name\": \"echo\"}]}]\n"
                             "}\n",
                             e.aport, e.lport, e.bport),
                "reload failed", 1);
    const char *want =
        harness_strf("error: reload failed: %s:2:23: admin.listen: a non-loopback admin address "
                     "needs a \"token\" (got \"*:%d\") (generation 1 stays in force)",
                     e.lb.config, e.aport);
    ck_assert_msg(harness_log_contains(e.lb.log, want), "no line '%s' in %s", want, e.lb.log);
    struct harness_reply r = harness_call(e.aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 401);
    r = harness_call(e.aport, "GET", "/api/v1/status", AUTH, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "reloads.failed"), 1);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* The admin listener follows the file: moved to a new port (the old one
 * refuses, a keep-alive connection from before goes on), moved between
 * 127.0.0.1:P and *:P on the same port, and closed when "admin" is gone. */
START_TEST(reload_moves_admin)
{
    struct env e;
    env_start(&e, "127.0.0.1", NULL, NULL, 0);
    int kept = harness_connect("127.0.0.1", e.aport, HARNESS_WAIT_MS);
    ck_assert_int_ge(kept, 0);
    int a2 = harness_free_port();
    reload(&e, config(e.lport, e.bport, admin_json("127.0.0.1", a2, NULL, NULL, 0)), "reload ok",
           1);
    ck_assert(harness_log_contains(
        e.lb.log, harness_strf("info: admin API moved: listening on 127.0.0.1:%d", a2)));
    ck_assert_int_eq(harness_call(a2, "GET", "/healthz", NULL, NULL).status, 200);
    errno = 0;
    int fd = harness_connect("127.0.0.1", e.aport, 1000);
    ck_assert_msg(fd < 0 && errno == ECONNREFUSED, "old admin port still open");
    const char *req = "GET /api/v1/status HTTP/1.1\r\nConnection: close\r\n\r\n";
    ck_assert(harness_send_all(kept, req, strlen(req), HARNESS_WAIT_MS));
    char *buf = calloc(1, 65536);
    ck_assert_int_gt(harness_read_eof(kept, buf, 65536, HARNESS_WAIT_MS), 0);
    ck_assert_msg(starts_with(buf, "HTTP/1.1 200 OK\r\n"), "%s", buf);
    close(kept);

    /* 127.0.0.1:P to *:P (with a token) and back, on the same port. */
    reload(&e, config(e.lport, e.bport, admin_json("*", a2, TOKEN, NULL, 0)), "reload ok", 2);
    ck_assert(harness_listening_on("00000000", a2));
    ck_assert(!harness_listening_on("0100007F", a2));
    ck_assert_int_eq(harness_call(a2, "GET", "/api/v1/status", NULL, NULL).status, 401);
    ck_assert_int_eq(harness_call(a2, "GET", "/api/v1/status", AUTH, NULL).status, 200);
    reload(&e, config(e.lport, e.bport, admin_json("127.0.0.1", a2, NULL, NULL, 0)), "reload ok",
           3);
    ck_assert(!harness_listening_on("00000000", a2));
    ck_assert(harness_listening_on("0100007F", a2));
    ck_assert_int_eq(harness_call(a2, "GET", "/api/v1/status", NULL, NULL).status, 200);

    /* No "admin" any more: closed, connections too. */
    kept = harness_connect("127.0.0.1", a2, HARNESS_WAIT_MS);
    ck_assert_int_ge(kept, 0);
    harness_sleep_ms(50);
    reload(&e, config(e.lport, e.bport, NULL), "reload ok", 4);
    ck_assert(harness_log_contains(
        e.lb.log, "info: admin API closed (no \"admin\" in the configuration any more)"));
    ck_assert_msg(harness_wait_closed(kept, 2000) >= 0,
                  "an admin connection outlived the admin API");
    close(kept);
    errno = 0;
    fd = harness_connect("127.0.0.1", a2, 1000);
    ck_assert_msg(fd < 0 && errno == ECONNREFUSED, "admin port still open");
    /* ...and back. */
    reload(&e, config(e.lport, e.bport, admin_json("127.0.0.1", a2, NULL, NULL, 0)), "reload ok",
           5);
    ck_assert_int_eq(harness_call(a2, "GET", "/healthz", NULL, NULL).status, 200);
    free(buf);
    assert_data_path(e.lport);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* A reload through the API that closes the API answers, then closes. */
START_TEST(reload_closes_admin_from_inside)
{
    struct env e;
    env_start(&e, "127.0.0.1", NULL, NULL, 0);
    harness_lb_rewrite_json(&e.lb, config(e.lport, e.bport, NULL));
    struct harness_reply r = harness_call(e.aport, "POST", "/api/v1/reload", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "generation"), 2);
    ck_assert(harness_wait_not_listening(e.aport, HARNESS_WAIT_MS));
    assert_data_path(e.lport);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* Without a token the API serves loopback clients only: a keep-alive
 * connection a client on another address opened while the API listened on
 * *:P with a token is refused (403) once a reload moved the API to
 * 127.0.0.1:P without one. Runs in a network namespace of its own, whose
 * loopback gets 192.0.2.1 besides 127.0.0.1 (root only). */
START_TEST(no_token_loopback_only)
{
    if (!harness_netns_enter("no_token_loopback_only"))
        return;
    harness_loopback_add("192.0.2.1");
    struct env e;
    env_start(&e, "*", TOKEN, NULL, 0);
    int fd = harness_connect_from("192.0.2.1", "192.0.2.1", e.aport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    const char *req = "GET /api/v1/status HTTP/1.1\r\n" AUTH "\r\n";
    ck_assert(harness_send_all(fd, req, strlen(req), HARNESS_WAIT_MS));
    char buf[4096] = {0};
    ck_assert_int_gt(harness_recv_n(fd, buf, 17, HARNESS_WAIT_MS), 0);
    ck_assert_msg(starts_with(buf, "HTTP/1.1 200 OK\r\n"), "%s", buf);
    harness_sleep_ms(200); /* the rest of the answer */
    while (harness_readable(fd, 0) && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;

    reload(&e, config(e.lport, e.bport, admin_json("127.0.0.1", e.aport, NULL, NULL, 0)),
           "reload ok", 1);
    req = "GET /api/v1/status HTTP/1.1\r\n\r\n";
    ck_assert(harness_send_all(fd, req, strlen(req), HARNESS_WAIT_MS));
    char *all = calloc(1, 65536);
    ck_assert_int_gt(harness_read_eof(fd, all, 65536, HARNESS_WAIT_MS), 0);
    close(fd);
    ck_assert_msg(starts_with(all, "HTTP/1.1 403 Forbidden\r\n"), "%s", all);
    ck_assert_str_eq(body_of(all), "{\n  \"error\": \"the admin API has no token: it serves "
                                   "loopback clients only\"\n}\n");
    free(all);
    ck_assert_int_eq(harness_call(e.aport, "GET", "/api/v1/status", NULL, NULL).status, 200);
    ck_assert_int_eq(harness_lb_stop(&e.lb), 0);
}
END_TEST

/* --- the descriptor reserve --- */

/* The reserve test's config: a second listener on l2 when l2 > 0. */
static json_t *cfg_with(int aport, int lport, int l2, int eport, int fport)
{
    json_t *cfg = config(lport, eport, admin_json("127.0.0.1", aport, NULL, "max_connections", 4));
    if (l2 > 0)
        harness_jappend(cfg, "listeners", harness_listener_json("web2", harness_lo(l2), "app"));
    harness_jset(cfg, "pools.0.health_check",
                 json_pack("{s:s, s:i, s:i}", "type", "tcp", "interval_ms", 100, "fall", 1));
    harness_jappend(cfg, "pools.0.backends",
                    harness_backend_weighted(harness_lo(fport), "flip", 0));
    return cfg;
}

/* With the data path at its descriptor limit, the admin API still answers
 * and health checks still run; a client beyond the limit waits in the
 * backlog and is served when a session ends. */
START_TEST(reserve_keeps_admin)
{
    HARNESS_SKIP_WRAPPED("a descriptor limit of 60: valgrind takes descriptors of its own");
    int lport = harness_free_port(), aport = harness_free_port();
    int eport = harness_free_port(), fport = harness_free_port();
    harness_backend("127.0.0.1", eport, "echo", "echo");
    pid_t flip = harness_backend("127.0.0.1", fport, "flip", "echo");
    json_t *cfg = cfg_with(aport, lport, 0, eport, fport);
    struct harness_lb lb;
    harness_lb_start_limited(&lb, harness_jtext(cfg), lport, 60);
    /* 16 for lb itself, 1 listener, 4 + 1 admin, 2 checked backends. */
    const char *budget = "warn: file descriptors: limit 60, 24 kept for the admin API, health "
                         "checks and lb itself; sessions may use 36 (18 sessions), fewer than "
                         "the listeners' max_connections allow (10000): accepts pause at that "
                         "limit";
    ck_assert_msg(harness_log_wait(lb.log, budget, 1, HARNESS_WAIT_MS), "no '%s' in %s", budget,
                  lb.log);
    int fds[18];
    for (int i = 0; i < 18; i++) {
        fds[i] = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
        ck_assert_int_ge(fds[i], 0);
        ck_assert(harness_send_all(fds[i], "x", 1, HARNESS_WAIT_MS));
        char c = 0;
        ck_assert_msg(harness_recv_n(fds[i], &c, 1, HARNESS_WAIT_MS) == 1 && c == 'x',
                      "session %d not served", i);
    }
    int waiting = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS); /* in the backlog */
    ck_assert_int_ge(waiting, 0);
    ck_assert(harness_send_all(waiting, "w", 1, HARNESS_WAIT_MS));
    ck_assert(!harness_readable(waiting, 300));
    ck_assert(harness_log_contains(lb.log, "warn: 18 sessions hold the 36 descriptors sessions "
                                           "may use; accepts pause until one ends"));

    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "connections.active"), 18);
    ck_assert_int_eq(harness_jint(r.json, "descriptors.limit"), 60);
    ck_assert_int_eq(harness_jint(r.json, "descriptors.reserved"), 24);
    ck_assert_int_eq(harness_jint(r.json, "descriptors.sessions_max"), 18);
    ck_assert(json_is_true(harness_jget(r.json, "descriptors.accepts_paused")));
    /* Sessions hold every descriptor of the data path: no pipe may open
     * into the reserve. */
    ck_assert_int_eq(harness_jint(r.json, "splice.pipes_max"), 0);
    ck_assert_int_eq(harness_call(aport, "GET", "/metrics", NULL, NULL).status, 200);
    kill(flip, SIGKILL);
    ck_assert_msg(harness_log_wait(lb.log, "warn: pool app backend flip DOWN: connection refused",
                                   1, HARNESS_WAIT_MS),
                  "no health check ran at the limit: %s", lb.log);

    /* A listener a reload adds at the limit waits too (it would otherwise
     * take the admin API's descriptors). */
    int l2 = harness_free_port();
    harness_lb_rewrite_json(&lb, cfg_with(aport, lport, l2, eport, fport));
    harness_lb_signal(&lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb.log, "reload ok", 1, HARNESS_WAIT_MS), "log %s", lb.log);
    int extra[4];
    for (int i = 0; i < 4; i++) {
        extra[i] = harness_connect("127.0.0.1", l2, HARNESS_WAIT_MS);
        ck_assert_int_ge(extra[i], 0);
        ck_assert(harness_send_all(extra[i], "e", 1, HARNESS_WAIT_MS));
    }
    for (int i = 0; i < 4; i++)
        ck_assert_msg(!harness_readable(extra[i], i == 0 ? 300 : 0), "web2 served client %d", i);
    r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_jint(r.json, "connections.active"), 18);

    /* Room again (the new listener took one more descriptor from the
     * reserve: 17 sessions now): every waiting client is served. */
    for (int i = 0; i < 18; i++)
        close(fds[i]);
    char c = 0;
    ck_assert_int_eq(harness_recv_n(waiting, &c, 1, HARNESS_WAIT_MS), 1);
    ck_assert_int_eq(c, 'w');
    close(waiting);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(harness_recv_n(extra[i], &c, 1, HARNESS_WAIT_MS), 1);
        ck_assert_int_eq(c, 'e');
        close(extra[i]);
    }
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *admin_limits_suite(void)
{
    Suite *s = suite_create("admin_limits");
    TCase *tc;
#define ADD_TCASE(name, fn)                                                                        \
    tc = harness_tcase(name);                                                                      \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    ADD_TCASE("token_before_body", token_before_body);
    ADD_TCASE("connection_limit", connection_limit);
    ADD_TCASE("request_deadline", request_deadline);
    ADD_TCASE("strict_framing", strict_framing);
    ADD_TCASE("deadline_while_queued", deadline_while_queued);
    ADD_TCASE("reload_keeps_token", reload_keeps_token);
    ADD_TCASE("reload_moves_admin", reload_moves_admin);
    ADD_TCASE("reload_closes_admin_from_inside", reload_closes_admin_from_inside);
    ADD_TCASE("no_token_loopback_only", no_token_loopback_only);
    ADD_TCASE("reserve_keeps_admin", reserve_keeps_admin);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(admin_limits_suite)
