/* test_http_client: lb/http_client.c against a loopback server the test
 * plays by hand: the request it writes, bodies by Content-Length and
 * chunked (fed byte by byte, with extensions and trailers) handed over
 * exactly, a stream whose head ends the timeout, and every failure
 * named: bad framing, a head too long, a close inside the response, a
 * refused connect, a timeout. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "lb/http_client.h"
#include "tests/test.h"

struct result {
    bool done;
    int status;
    char err[128];
    bool had_err;
    char body[8192];
    size_t body_len;
    int heads;
};

static int on_head(void *arg, int status)
{
    struct result *r = arg;
    r->heads++;
    r->status = status;
    return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
    struct result *r = arg;
    ck_assert_uint_le(r->body_len + n, sizeof(r->body));
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return 0;
}

static void on_done(void *arg, int status, const char *err)
{
    struct result *r = arg;
    r->done = true;
    r->status = status;
    r->had_err = err != NULL;
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

static const struct http_client_ops ops = {on_head, on_body, on_done};

static struct event_base *base;
static int lfd = -1;
static struct sockaddr_in addr;

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);
}

static void teardown(void)
{
    close(lfd);
    event_base_free(base);
}

/* Runs the loop until r is done (bounded: 5 s). */
static void run_until_done(struct result *r)
{
    for (int i = 0; i < 5000 && !r->done; i++) {
        struct timeval ms = {0, 1000};
        event_base_loopexit(base, &ms);
        event_base_dispatch(base);
    }
    ck_assert(r->done);
}

static void run_a_little(void)
{
    for (int i = 0; i < 5; i++) {
        struct timeval ms = {0, 1000};
        event_base_loopexit(base, &ms);
        event_base_dispatch(base);
    }
}

/* Starts a POST, accepts it and reads the request it wrote. */
static struct http_client *start(struct result *r, unsigned timeout_ms, int whole, int *sfd,
                                 char *req, size_t cap)
{
    size_t len;
    char *text = http_client_post("127.0.0.1:2379", "/v3/kv/range", "tok", "{\"k\":1}", &len);
    char err[128];
    struct http_client *c =
        http_client_start(base, (struct sockaddr *)&addr, sizeof(addr), NULL, text, len, timeout_ms,
                          whole, &ops, r, err, sizeof(err));
    free(text);
    ck_assert_ptr_nonnull(c);
    *sfd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(*sfd, 0);
    size_t got = 0;
    while (got < len) {
        run_a_little();
        ssize_t n = recv(*sfd, req + got, cap - 1 - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
    }
    req[got] = '\0';
    return c;
}

/* Sends text one byte at a time, the loop running between the bytes. */
static void send_bytewise(int fd, const char *text)
{
    for (const char *p = text; *p; p++) {
        ck_assert_int_eq(send(fd, p, 1, 0), 1);
        run_a_little();
    }
}

START_TEST(request_and_length_body)
{
    struct result r = {0};
    char req[1024];
    int sfd;
    start(&r, 2000, 1, &sfd, req, sizeof(req));
    ck_assert_str_eq(req, "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nUser-Agent: "
                          "lb\r\nContent-Type: application/json\r\nAuthorization: tok\r\n"
                          "Content-Length: 7\r\nConnection: close\r\n\r\n{\"k\":1}");
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    ck_assert_int_eq(send(sfd, resp, strlen(resp), 0), (ssize_t)strlen(resp));
    run_until_done(&r);
    ck_assert(!r.had_err);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.heads, 1);
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert_int_eq(memcmp(r.body, "hello", 5), 0);
    close(sfd);
}
END_TEST

START_TEST(chunked_bytewise)
{
    struct result r = {0};
    char req[1024];
    int sfd;
    start(&r, 2000, 0, &sfd, req, sizeof(req));
    send_bytewise(sfd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "4;ext=1\r\nabcd\r\n1A\r\n0123456789abcdefghijklmnop\r\n"
                       "0\r\nX-Trailer: yes\r\n\r\n");
    run_until_done(&r);
    ck_assert_msg(!r.had_err, "%s", r.err);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 30);
    ck_assert_int_eq(memcmp(r.body, "abcd0123456789abcdefghijklmnop", 30), 0);
    close(sfd);
}
END_TEST

/* A stream: after its head no timeout applies, its chunks come as they
 * are sent, and its end without the last chunk is a fault. */
START_TEST(stream_without_timeout)
{
    struct result r = {0};
    char req[1024];
    int sfd;
    start(&r, 100, 0, &sfd, req, sizeof(req));
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
    ck_assert_int_eq(send(sfd, head, strlen(head), 0), (ssize_t)strlen(head));
    for (int i = 0; i < 30; i++) /* 300 ms: thrice the timeout */
        run_a_little(), usleep(10000);
    ck_assert(!r.done);
    ck_assert_uint_eq(r.body_len, 5);
    close(sfd);
    run_until_done(&r);
    ck_assert_str_eq(r.err, "connection closed inside the response");
}
END_TEST

static void expect_failure(const char *resp, const char *why)
{
    struct result r = {0};
    char req[1024];
    int sfd;
    start(&r, 2000, 1, &sfd, req, sizeof(req));
    size_t n = strlen(resp);
    for (size_t off = 0; off < n;) {
        ssize_t w = send(sfd, resp + off, n - off, MSG_NOSIGNAL);
        if (w < 0)
            break; /* the client reset it: it has its answer */
        off += (size_t)w;
        run_a_little();
    }
    shutdown(sfd, SHUT_WR);
    run_until_done(&r);
    ck_assert(r.had_err);
    ck_assert_str_eq(r.err, why);
    close(sfd);
}

START_TEST(failures)
{
    expect_failure("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                   "bad response body framing");
    expect_failure("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                   "bad response body framing");
    expect_failure("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                   "connection closed inside the response");
    expect_failure("", "connection closed before the response");
    expect_failure("SMTP ready\r\n\r\n", "bad response head");
    char *big = malloc(HTTP_CLIENT_HEAD_MAX + 64);
    strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
    memset(big + strlen(big), 'a', HTTP_CLIENT_HEAD_MAX);
    big[HTTP_CLIENT_HEAD_MAX + 20] = '\0';
    expect_failure(big, "response head too long");
    free(big);

    /* No answer in time. */
    struct result r = {0};
    char req[1024];
    int sfd;
    start(&r, 100, 1, &sfd, req, sizeof(req));
    run_until_done(&r);
    ck_assert_str_eq(r.err, "timed out");
    close(sfd);

    /* Nobody listening. */
    struct sockaddr_in dead = addr;
    close(lfd);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct result r2 = {0};
    char err[128];
    struct http_client *c = http_client_start(base, (struct sockaddr *)&dead, sizeof(dead), NULL,
                                              "x", 1, 1000, 1, &ops, &r2, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    run_until_done(&r2);
    ck_assert_str_eq(r2.err, "connection refused");
}
END_TEST

/* Cancelled: no callback, nothing leaks. */
START_TEST(cancel)
{
    struct result r = {0};
    char req[1024];
    int sfd;
    struct http_client *c = start(&r, 2000, 1, &sfd, req, sizeof(req));
    http_client_cancel(c);
    run_a_little();
    ck_assert(!r.done);
    char buf[16];
    ck_assert_int_le(recv(sfd, buf, sizeof(buf), 0), 0); /* reset or closed */
    close(sfd);
}
END_TEST

static Suite *http_client_suite(void)
{
    Suite *s = suite_create("http_client");
    TCase *tc = tcase_create("http_client");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, request_and_length_body);
    tcase_add_test(tc, chunked_bytewise);
    tcase_add_test(tc, stream_without_timeout);
    tcase_add_test(tc, failures);
    tcase_add_test(tc, cancel);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(http_client_suite)
