/* Integration: lb's HTTP mode (listener "mode": "http") through a real lb.
 * Each request of a keep-alive client connection is balanced on its own,
 * backend connections are reused, the head the backend sees carries the
 * forwarding headers and none of the client's hop-by-hop ones, bodies pass
 * byte for byte, lb answers its own errors with one exact page and closes,
 * smuggling shapes are refused before a strict backend (Node's llhttp) sees
 * a second request, and pipelining, upgrades, 100-continue, the access log,
 * reloads and the PROXY protocol work per request. Suite "http_harness"
 * checks the HTTP backends and client of the harness on their own, without
 * lb. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tests/harness.h"
#include "tests/test.h"

/* Byte-exact transfer size, each way and in both framings. */
#define BIG_BODY (1024ULL * 1024 * 1024)
#define SHORT_MS 300 /* the timeouts the tests configure */

/* lb in http mode on a free port in front of n echo backends "b1".."bn",
 * round-robin, retries 0, with the admin API. */
struct rig {
    struct harness_lb lb;
    json_t *cfg;
    int port, aport;
    int bport[4];
};

static const char *names[] = {"b1", "b2", "b3", "b4"};

static void rig_cfg(struct rig *r, int n)
{
    r->port = harness_free_port();
    r->aport = harness_free_port();
    r->cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(r->port)});
    harness_jset(r->cfg, "listeners.0.mode", json_string("http"));
    harness_jset(r->cfg, "admin.listen", json_string(harness_lo(r->aport)));
    for (int i = 0; i < n; i++) {
        r->bport[i] = harness_free_port();
        harness_server("127.0.0.1", r->bport[i], harness_fn_http_echo, (void *)names[i]);
        harness_jappend(r->cfg, "pools.0.backends",
                        harness_backend_json(harness_lo(r->bport[i]), names[i]));
    }
}

static void rig_go(struct rig *r)
{
    harness_lb_start_json(&r->lb, r->cfg, r->port);
    ck_assert(harness_wait_listening(r->aport, HARNESS_WAIT_MS));
}

static void rig_start(struct rig *r, int n)
{
    rig_cfg(r, n);
    rig_go(r);
}

/* A backend of the pool replaced by fn on a new port. */
static int rig_backend_fn(struct rig *r, harness_conn_fn fn, void *arg)
{
    int p = harness_free_port();
    harness_server("127.0.0.1", p, fn, arg);
    harness_jset(r->cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(p), "x"), NULL));
    return p;
}

/* GET path on c; the response (fails the test without one). */
static struct harness_hresp get(struct harness_hconn *c, const char *path, const char *headers)
{
    const char *req =
        harness_strf("GET %s HTTP/1.1\r\nHost: lb.test\r\n%s\r\n", path, headers ? headers : "");
    ck_assert(harness_hconn_sends(c, req));
    struct harness_hresp r;
    ck_assert_msg(harness_hconn_read(c, &r, 0, HARNESS_WAIT_MS) == 0, "no response to GET %s",
                  path);
    return r;
}

/* The line of the echoed head that starts with name + ": " (NULL: none). */
static const char *echoed(const struct harness_hresp *r, const char *name)
{
    return harness_http_header(strstr(r->body, "\r\n") + 2, name);
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static const char *page(int code, const char *reason, const char *msg)
{
    const char *body =
        harness_strf("<html><body><h1>%d %s</h1>\n<p>%s</p>\n</body></html>\n", code, reason, msg);
    return harness_strf("HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s",
                        code, reason, strlen(body), body);
}

static const char *page_for(int code)
{
    switch (code) {
    case 400:
        return page(400, "Bad Request", "Your request is malformed or ambiguous.");
    case 408:
        return page(408, "Request Timeout", "Your request did not arrive in time.");
    case 431:
        return page(431, "Request Header Fields Too Large", "Your request head is too large.");
    case 501:
        return page(501, "Not Implemented", "The request method is not supported.");
    case 505:
        return page(505, "HTTP Version Not Supported", "Only HTTP/1.0 and HTTP/1.1 are supported.");
    case 502:
        return page(502, "Bad Gateway",
                    "The backend could not be reached or sent an invalid response.");
    case 503:
        return page(503, "Service Unavailable", "No backend is available to handle your request.");
    case 504:
        return page(504, "Gateway Timeout", "The backend did not answer in time.");
    }
    ck_abort_msg("no page for %d", code);
    return NULL;
}

/* Everything lb sends until it closes is exactly the page for code. */
static void expect_page(struct harness_hconn *c, int code, long timeout_ms)
{
    size_t n;
    const char *got = harness_hconn_read_all(c, &n, timeout_ms);
    ck_assert_msg(got != NULL, "lb did not close after its %d page", code);
    const char *want = page_for(code);
    ck_assert_msg(n == strlen(want) && memcmp(got, want, n) == 0, "got %zu bytes:\n%s\nwant:\n%s",
                  n, got, want);
}

/* Sends raw bytes on a new connection and expects the page for code. */
static void raw_expect(int port, const char *bytes, size_t len, int code)
{
    struct harness_hconn c;
    harness_hconn_open(&c, port);
    ck_assert(harness_hconn_send(&c, bytes, len));
    expect_page(&c, code, HARNESS_WAIT_MS);
    harness_hconn_close(&c);
}

static long long listener_class(int aport, const char *cls)
{
    struct harness_reply rep = harness_call(aport, "GET", "/api/v1/listeners", NULL, NULL);
    ck_assert_int_eq(rep.status, 200);
    return harness_jint(rep.json, harness_strf("listeners.0.http_responses.%s", cls));
}

/* --- 1, 2: balancing and reuse --- */

START_TEST(keepalive_requests_rotate_roundrobin)
{
    struct rig r;
    rig_start(&r, 3);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    int count[3] = {0};
    const char *first = NULL;
    for (int i = 0; i < 30; i++) {
        struct harness_hresp resp = get(&c, harness_strf("/r%d", i), NULL);
        ck_assert_int_eq(resp.status, 200);
        const char *b = harness_http_header(resp.headers, "X-Backend");
        ck_assert_ptr_nonnull(b);
        if (i == 0)
            first = b;
        int k = b[1] - '1';
        ck_assert(k >= 0 && k < 3);
        /* rotation order: b1 b2 b3 b1... from wherever it started */
        ck_assert_int_eq(k, (first[1] - '1' + i) % 3);
        count[k]++;
    }
    ck_assert_int_eq(count[0], 10);
    ck_assert_int_eq(count[1], 10);
    ck_assert_int_eq(count[2], 10);
    ck_assert(harness_hconn_quiet(&c, 100)); /* still open */
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* Backend connections opened for 30 sequential requests: those whose
 * request was the first on its connection (X-Conn-Request: 1; ports are no
 * proof, the kernel may give a closed one's to the next). */
static int distinct_conns(struct rig *r)
{
    struct harness_hconn c;
    harness_hconn_open(&c, r->port);
    int n = 0;
    for (int i = 0; i < 30; i++) {
        struct harness_hresp resp = get(&c, "/reuse", NULL);
        ck_assert_int_eq(resp.status, 200);
        n += atoi(harness_http_header(resp.headers, "X-Conn-Request")) == 1;
    }
    harness_hconn_close(&c);
    return n;
}

static long long reused_total(int aport)
{
    struct harness_reply rep = harness_call(aport, "GET", "/api/v1/pools", NULL, NULL);
    long long sum = 0;
    for (int i = 0; i < 3; i++)
        sum += harness_jint(rep.json, harness_strf("pools.0.backends.%d.reused", i));
    return sum;
}

START_TEST(idle_backend_connections_are_reused)
{
    struct rig r;
    rig_cfg(&r, 3);
    harness_jset(r.cfg, "pools.0.keepalive",
                 harness_jparse("{\"max_idle\": 32, \"idle_timeout_ms\": 60000}"));
    rig_go(&r);
    int n = distinct_conns(&r);
    ck_assert_msg(n <= 3, "%d backend connections for 30 requests", n);
    ck_assert_int_eq(reused_total(r.aport), 30 - n);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(max_idle_zero_opens_a_connection_per_request)
{
    struct rig r;
    rig_cfg(&r, 3);
    harness_jset(r.cfg, "pools.0.keepalive", harness_jparse("{\"max_idle\": 0}"));
    rig_go(&r);
    ck_assert_int_eq(distinct_conns(&r), 30);
    ck_assert_int_eq(reused_total(r.aport), 0);
    harness_lb_stop(&r.lb);
}
END_TEST

/* The bytes of the head the echo backend received for r's request (it
 * echoes the head without its final CRLF, then "body-bytes: ..."). */
static long long echoed_head_bytes(const struct harness_hresp *r)
{
    const char *end = strstr(r->body, "body-bytes: ");
    ck_assert_ptr_nonnull(end);
    return (long long)(end - r->body) + 2;
}

START_TEST(backend_bytes_out_counts_heads_and_bodies)
{
    struct rig r;
    rig_start(&r, 1);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    long long sent = 0;
    for (int i = 0; i < 3; i++) {
        struct harness_hresp resp = get(&c, harness_strf("/count%d", i), NULL);
        ck_assert_int_eq(resp.status, 200);
        sent += echoed_head_bytes(&resp);
    }
    ck_assert(harness_hconn_sends(
        &c, "POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 5\r\n\r\nhello"));
    struct harness_hresp resp;
    ck_assert_int_eq(harness_hconn_read(&c, &resp, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_ptr_nonnull(strstr(resp.body, "body-bytes: 5\n"));
    sent += echoed_head_bytes(&resp) + 5;
    harness_hconn_close(&c);
    struct harness_reply rep = harness_call(r.aport, "GET", "/api/v1/pools", NULL, NULL);
    ck_assert_int_eq(rep.status, 200);
    ck_assert_int_eq(harness_jint(rep.json, "pools.0.backends.0.bytes_out"), sent);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 3: headers --- */

START_TEST(forwarding_headers_added_hop_by_hop_removed)
{
    struct rig r;
    rig_start(&r, 1);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    struct harness_hresp resp =
        get(&c, "/h",
            "X-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n"
            "Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
            "Proxy-Connection: keep-alive\r\nX_Under: 1\r\nX-Real-IP: 6.6.6.6\r\nX-Kept: yes\r\n");
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(echoed(&resp, "X-Forwarded-For"), "10.0.0.1, 127.0.0.1");
    ck_assert_str_eq(echoed(&resp, "X-Forwarded-Proto"), "http");
    ck_assert_str_eq(echoed(&resp, "X-Forwarded-Port"), harness_strf("%d", r.port));
    ck_assert_str_eq(echoed(&resp, "Host"), "lb.test");
    ck_assert_str_eq(echoed(&resp, "X-Kept"), "yes");
    ck_assert_int_eq(count_lines(resp.body, "Host: "), 1);
    static const char *gone[] = {"X-Foo",     "Keep-Alive",       "TE",
                                 "Trailer",   "Upgrade",          "X_Under",
                                 "X-Real-IP", "Proxy-Connection", "Forwarded"};
    for (unsigned i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        ck_assert_msg(echoed(&resp, gone[i]) == NULL, "%s reached the backend:\n%s", gone[i],
                      resp.body);
    /* Connection towards the backend is lb's own matter: at most one, no X-Foo. */
    const char *conn = echoed(&resp, "Connection");
    ck_assert(conn == NULL || strstr(conn, "X-Foo") == NULL);
    ck_assert(strncmp(resp.body, "GET /h HTTP/1.1\r\n", 17) == 0);
    /* End to end: the client sees the backend's own headers. */
    ck_assert_str_eq(harness_http_header(resp.headers, "X-Backend"), "b1");
    ck_assert_str_eq(harness_http_header(resp.headers, "Content-Type"), "text/plain");
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(x_real_ip_and_forwarded_when_switched_on)
{
    struct rig r;
    rig_cfg(&r, 1);
    harness_jset(r.cfg, "listeners.0.x_real_ip", json_true());
    harness_jset(r.cfg, "listeners.0.forwarded", json_true());
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    struct harness_hresp resp = get(&c, "/h", "X-Real-IP: 6.6.6.6\r\n");
    ck_assert_str_eq(echoed(&resp, "X-Real-IP"), "127.0.0.1");
    ck_assert_int_eq(count_lines(resp.body, "X-Real-IP:"), 1);
    /* lb/proto/http_head.c request_emit: for=IP;proto=PROTO;host=HOST */
    ck_assert_str_eq(echoed(&resp, "Forwarded"), "for=127.0.0.1;proto=http;host=lb.test");
    resp = get(&c, "/h2", "Forwarded: for=192.0.2.1\r\n");
    ck_assert_str_eq(echoed(&resp, "Forwarded"),
                     "for=192.0.2.1, for=127.0.0.1;proto=http;host=lb.test");
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 4: bodies --- */

static void send_pattern(struct harness_hconn *c, uint64_t n, bool chunked)
{
    static unsigned char buf[65536];
    uint64_t off = 0;
    while (off < n) {
        size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
        if (chunked && k > 1000 + off % 5000)
            k = 1000 + (size_t)(off % 5000);
        harness_stream_fill(buf, off, k);
        if (chunked)
            ck_assert(harness_hconn_sends(c, harness_strf("%zx\r\n", k)));
        ck_assert(harness_hconn_send(c, buf, k));
        if (chunked)
            ck_assert(harness_hconn_sends(c, "\r\n"));
        off += k;
    }
    if (chunked)
        ck_assert(harness_hconn_sends(c, "0\r\n\r\n"));
}

static uint64_t pattern_hash(uint64_t n)
{
    static unsigned char buf[65536];
    uint64_t h = HARNESS_FNV_INIT;
    for (uint64_t off = 0; off < n;) {
        size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
        harness_stream_fill(buf, off, k);
        h = harness_fnv1a(h, buf, k);
        off += k;
    }
    return h;
}

static void upload(struct harness_hconn *c, uint64_t n, bool chunked)
{
    ck_assert(harness_hconn_sends(
        c, chunked ? "POST /upload HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   : harness_strf("POST /upload HTTP/1.1\r\nHost: lb.test\r\n"
                                  "Content-Length: %llu\r\n\r\n",
                                  (unsigned long long)n)));
    send_pattern(c, n, chunked);
    struct harness_hresp r;
    ck_assert_int_eq(harness_hconn_read(c, &r, 0, 60000), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(
        strstr(r.body, harness_strf("\nbody-bytes: %llu\nbody-fnv: %016llx\n",
                                    (unsigned long long)n, (unsigned long long)pattern_hash(n))));
}

static void download(struct harness_hconn *c, const char *kind, uint64_t n)
{
    ck_assert(harness_hconn_sends(c, harness_strf("GET /%s/%llu HTTP/1.1\r\nHost: lb.test\r\n\r\n",
                                                  kind, (unsigned long long)n)));
    struct harness_hresp r;
    ck_assert_int_eq(harness_hconn_read(c, &r, HCONN_STREAM, 60000), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, n);
    ck_assert(r.pattern);
}

START_TEST(big_bodies_byte_exact_both_ways)
{
    struct rig r;
    rig_start(&r, 1);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    upload(&c, BIG_BODY, false);
    upload(&c, BIG_BODY, true);
    download(&c, "big", BIG_BODY);
    download(&c, "chunked", BIG_BODY);
    struct harness_hresp resp = get(&c, "/after", NULL); /* the connection still works */
    ck_assert_int_eq(resp.status, 200);
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(empty_and_trickled_bodies)
{
    struct rig r;
    rig_start(&r, 1);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    upload(&c, 0, false);
    upload(&c, 0, true);
    download(&c, "big", 0);
    /* 4 KiB of body one byte per write, then the rest at once. */
    uint64_t n = 100000;
    ck_assert(harness_hconn_sends(
        &c, "POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 100000\r\n\r\n"));
    static unsigned char buf[100000];
    harness_stream_fill(buf, 0, n);
    for (int i = 0; i < 4096; i++)
        ck_assert(harness_hconn_send(&c, buf + i, 1));
    ck_assert(harness_hconn_send(&c, buf + 4096, n - 4096));
    struct harness_hresp resp;
    ck_assert_int_eq(harness_hconn_read(&c, &resp, 0, HARNESS_WAIT_MS), 0);
    ck_assert_ptr_nonnull(strstr(
        resp.body, harness_strf("\nbody-bytes: 100000\nbody-fnv: %016llx\n",
                                (unsigned long long)harness_fnv1a(HARNESS_FNV_INIT, buf, n))));
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 7, 8, 9 --- */

START_TEST(pipelined_requests_answered_in_order)
{
    struct rig r;
    rig_start(&r, 2);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    char all[1024] = "";
    for (int i = 0; i < 5; i++)
        strcat(all, harness_strf("GET /p%d HTTP/1.1\r\nHost: lb.test\r\n\r\n", i));
    ck_assert(harness_hconn_sends(&c, all));
    for (int i = 0; i < 5; i++) {
        struct harness_hresp resp;
        ck_assert_int_eq(harness_hconn_read(&c, &resp, 0, HARNESS_WAIT_MS), 0);
        ck_assert_int_eq(resp.status, 200);
        ck_assert_msg(strncmp(resp.body, harness_strf("GET /p%d HTTP/1.1\r\n", i), 17) == 0,
                      "response %d: %s", i, resp.body);
    }
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(upgrade_becomes_a_byte_tunnel)
{
    struct rig r;
    rig_cfg(&r, 0);
    rig_backend_fn(&r, harness_fn_http_upgrade, NULL);
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    struct harness_hresp resp = get(&c, "/ws", "Connection: Upgrade\r\nUpgrade: websocket\r\n");
    ck_assert_int_eq(resp.status, 101);
    ck_assert(strncmp(resp.head, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
    ck_assert_str_eq(harness_http_header(resp.headers, "Upgrade"), "websocket");
    ck_assert_str_eq(harness_http_header(resp.headers, "Connection"), "upgrade");
    size_t n = 1024 * 1024;
    unsigned char *out = malloc(n), *in = malloc(n);
    harness_stream_fill(out, 7, n);
    ck_assert(harness_hconn_send(&c, out, n));
    shutdown(c.fd, SHUT_WR);
    size_t got = c.len;
    memcpy(in, c.buf, got);
    ssize_t k = harness_recv_n(c.fd, in + got, n - got, HARNESS_WAIT_MS);
    ck_assert_int_eq((size_t)k + got, n);
    ck_assert(memcmp(in, out, n) == 0);
    free(out);
    free(in);
    ck_assert_int_ge(harness_wait_closed(c.fd, HARNESS_WAIT_MS), 0);
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(expect_100_continue_then_body)
{
    struct rig r;
    rig_cfg(&r, 0);
    rig_backend_fn(&r, harness_fn_http_continue, NULL);
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    ck_assert(harness_hconn_sends(&c, "POST /up HTTP/1.1\r\nHost: lb.test\r\nExpect: "
                                      "100-continue\r\nContent-Length: 5\r\n\r\n"));
    struct harness_hresp resp;
    ck_assert_int_eq(harness_hconn_read(&c, &resp, HCONN_INTERIM, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(resp.status, 100);
    ck_assert_str_eq(resp.head, "HTTP/1.1 100 Continue\r\n");
    ck_assert(harness_hconn_sends(&c, "hello"));
    ck_assert_int_eq(harness_hconn_read(&c, &resp, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body, "got 5\n");
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 2: a reused connection closed under a request --- */

/* Answers the first request of each connection (keep-alive), then closes
 * on the second without a word: a backend whose keep-alive timeout crossed
 * lb's reuse of the connection. */
static void fn_close_second(int fd, void *arg)
{
    (void)arg;
    char buf[8192];
    size_t have = 0;
    for (int n = 0; n < 2; n++) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            ssize_t k = recv(fd, buf + have, sizeof(buf) - have, 0);
            if (k <= 0)
                return;
            have += (size_t)k;
        }
        if (n == 1)
            return; /* the second request: closed unanswered */
        const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst\n";
        if (send(fd, r, strlen(r), MSG_NOSIGNAL) < 0)
            return;
        have -= (size_t)(end + 4 - buf);
        memmove(buf, end + 4, have);
    }
}

/* An idempotent request without a body goes again on a fresh connection
 * (the client sees nothing of it), even with retries 0; a POST does not
 * (502). */
START_TEST(reused_connection_closed_is_retried_once)
{
    struct rig r;
    rig_cfg(&r, 0);
    rig_backend_fn(&r, fn_close_second, NULL);
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    for (int i = 0; i < 3; i++) {
        struct harness_hresp resp = get(&c, "/", NULL);
        ck_assert_int_eq(resp.status, 200);
        ck_assert_str_eq(resp.body, "first\n");
    }
    struct harness_reply rep = harness_call(r.aport, "GET", "/api/v1/pools", NULL, NULL);
    ck_assert_int_eq(harness_jint(rep.json, "pools.0.backends.0.reused"), 2);
    ck_assert(
        harness_hconn_sends(&c, "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 1\r\n\r\nx"));
    struct harness_hresp resp;
    ck_assert_int_eq(harness_hconn_read(&c, &resp, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(resp.status, 502);
    ck_assert(harness_hconn_expect_closed(&c, HARNESS_WAIT_MS));
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* When lb stops, a keep-alive client between requests is closed at once,
 * not after the grace period, and lb exits. */
START_TEST(stop_closes_idle_keepalive_clients)
{
    struct rig r;
    rig_start(&r, 1);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    ck_assert_int_eq(get(&c, "/", NULL).status, 200);
    long t0 = harness_now_ms();
    harness_lb_signal(&r.lb, SIGTERM);
    ck_assert(harness_hconn_expect_closed(&c, HARNESS_WAIT_MS));
    ck_assert_int_lt(harness_now_ms() - t0, 5000); /* the grace period is 10 s */
    harness_hconn_close(&c);
    ck_assert_int_eq(harness_lb_wait_exit(&r.lb, HARNESS_WAIT_MS), 0);
    ck_assert(harness_log_contains(r.lb.log, "reason=\"shutdown\""));
}
END_TEST

/* --- a slow client: lb's writes to it wait --- */

/* rig_go() with lb's accepted sockets' send buffers at 4 KiB (the
 * tests/shim/small_sndbuf.c shim preloaded into lb), so a client that
 * reads slowly makes what lb writes wait in lb within a few kilobytes. */
static void rig_go_small_sndbuf(struct rig *r)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char *saved = asan ? harness_strf("%s", asan) : NULL;
    /* An ASan lb checks that its runtime comes first; the shim would. */
    setenv("ASAN_OPTIONS",
           harness_strf("%s%sverify_asan_link_order=0", saved ? saved : "", saved ? ":" : ""), 1);
    setenv("LD_PRELOAD", LB_BUILD_DIR "/small-sndbuf.so", 1);
    rig_go(r);
    unsetenv("LD_PRELOAD");
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
}

/* A client socket with a 4 KiB receive buffer, connected to port. */
static int slow_client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int size = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void read_head(int fd)
{
    char buf[8192];
    size_t have = 0;
    while (!memmem(buf, have, "\r\n\r\n", 4) && have < sizeof(buf)) {
        ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);
        if (n <= 0)
            return;
        have += (size_t)n;
    }
}

#define FAT_PAD 20 /* 1 KB lines in a 1xx or 101 head */
#define FAT_BODY 300000

static const char *fat_lines(const char *name)
{
    char *pad = harness_strf("%s", "");
    for (int i = 0; i < FAT_PAD; i++)
        pad = harness_strf("%s%s: <%0*d>\r\n", pad, name, 1000, i);
    return pad;
}

/* A 103 with 20 KB of Link headers, then a 200 with a 300,000-byte body. */
static void fn_fat_103(int fd, void *arg)
{
    (void)arg;
    read_head(fd);
    const char *early = harness_strf("HTTP/1.1 103 Early Hints\r\n%s\r\n", fat_lines("Link"));
    char *body = malloc(FAT_BODY);
    if (!body)
        return;
    memset(body, 'y', FAT_BODY);
    const char *ok = harness_strf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", FAT_BODY);
    if (harness_write_full(fd, early, strlen(early)) && harness_write_full(fd, ok, strlen(ok)))
        harness_write_full(fd, body, FAT_BODY);
    char drop[4096];
    while (recv(fd, drop, sizeof(drop), 0) > 0)
        ;
}

/* A 101 with 20 KB of headers, then (300 ms later) its own first bytes,
 * then an echo. */
static void fn_fat_101(int fd, void *arg)
{
    (void)arg;
    read_head(fd);
    const char *r = harness_strf("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\n"
                                 "Connection: Upgrade\r\n%s\r\n",
                                 fat_lines("X-Pad"));
    if (!harness_write_full(fd, r, strlen(r)))
        return;
    harness_sleep_ms(300);
    if (!harness_write_full(fd, "hello-from-backend", 18))
        return;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        if (!harness_write_full(fd, buf, (size_t)n))
            return;
}

/* A large 1xx that a slow client takes in slowly holds the final response
 * back (and no timeout cuts it): the client gets both, byte for byte. */
START_TEST(slow_client_gets_a_large_1xx_then_the_response)
{
    struct rig r;
    rig_cfg(&r, 0);
    rig_backend_fn(&r, fn_fat_103, NULL);
    harness_jset(r.cfg, "pools.0.response_timeout_ms", json_integer(SHORT_MS));
    rig_go_small_sndbuf(&r);
    int fd = slow_client(r.port);
    const char *req = "GET /fat HTTP/1.1\r\nHost: lb.test\r\n\r\n";
    ck_assert(harness_send_all(fd, req, strlen(req), HARNESS_WAIT_MS));
    harness_sleep_ms(2 * SHORT_MS); /* past the response timeout, not reading */
    const char *early = harness_strf("HTTP/1.1 103 Early Hints\r\n%s\r\n", fat_lines("Link"));
    const char *ok = harness_strf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", FAT_BODY);
    size_t want = strlen(early) + strlen(ok) + FAT_BODY;
    char *got = malloc(want);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(harness_recv_n(fd, got, want, HARNESS_WAIT_MS), (ssize_t)want);
    ck_assert(memcmp(got, early, strlen(early)) == 0);
    ck_assert(memcmp(got + strlen(early), ok, strlen(ok)) == 0);
    for (size_t i = strlen(early) + strlen(ok); i < want; i++)
        ck_assert_int_eq(got[i], 'y');
    free(got);
    close(fd);
    harness_lb_stop(&r.lb);
}
END_TEST

/* The backend's first tunnel bytes, sent while its large 101 still waits
 * for a slow client, reach the client after the 101. */
START_TEST(slow_client_gets_a_tunnels_first_bytes)
{
    struct rig r;
    rig_cfg(&r, 0);
    rig_backend_fn(&r, fn_fat_101, NULL);
    rig_go_small_sndbuf(&r);
    int fd = slow_client(r.port);
    const char *req = "GET /ws HTTP/1.1\r\nHost: lb.test\r\nConnection: Upgrade\r\n"
                      "Upgrade: test\r\n\r\n";
    ck_assert(harness_send_all(fd, req, strlen(req), HARNESS_WAIT_MS));
    harness_sleep_ms(1000); /* the backend's bytes come while the 101 waits */
    static char got[65536];
    size_t have = 0;
    char *end = NULL;
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    while ((!(end = memmem(got, have, "\r\n\r\n", 4)) || have < (size_t)(end - got) + 4 + 18) &&
           harness_now_ms() < deadline) {
        ssize_t n = harness_recv_n(fd, got + have, 1, HARNESS_WAIT_MS);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    ck_assert_ptr_nonnull(end);
    ck_assert(strncmp(got, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
    ck_assert_uint_eq(have, (size_t)(end - got) + 4 + 18);
    ck_assert(memcmp(end + 4, "hello-from-backend", 18) == 0);
    ck_assert(harness_send_all(fd, "ping", 4, HARNESS_WAIT_MS));
    char back[4];
    ck_assert_int_eq(harness_recv_n(fd, back, 4, HARNESS_WAIT_MS), 4);
    ck_assert(memcmp(back, "ping", 4) == 0);
    close(fd);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 10: access log --- */

START_TEST(access_log_line_per_request)
{
    struct rig r;
    rig_start(&r, 1);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    int cport = harness_sock_port(c.fd);
    get(&c, "/x", NULL);
    const char *want = harness_strf("info: request client=127.0.0.1:%d listener=web pool=app "
                                    "backend=b1 method=GET path=\"/x\" status=200 ",
                                    cport);
    ck_assert_msg(harness_log_wait(r.lb.log, want, 1, HARNESS_WAIT_MS), "no '%s' in %s", want,
                  r.lb.log);
    const char *line = harness_log_line(r.lb.log, want);
    ck_assert_ptr_nonnull(strstr(line, " bytes_from_client="));
    ck_assert_ptr_nonnull(strstr(line, " bytes_to_client="));
    ck_assert_ptr_nonnull(strstr(line, " duration_ms="));
    /* A '"' or a non-ASCII byte is no valid target (HAProxy refuses them
     * too): a 400, logged without a method or path. */
    struct harness_hresp resp = get(&c, "/a\"b\xc3\xa9", NULL);
    ck_assert_int_eq(resp.status, 400);
    ck_assert(harness_log_wait(r.lb.log,
                               harness_strf("request client=127.0.0.1:%d listener=web pool=app "
                                            "backend=- method=- path=\"-\" status=400 ",
                                            cport),
                               1, HARNESS_WAIT_MS));
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 11: reload --- */

START_TEST(idle_keepalive_connection_survives_reloads)
{
    struct rig r;
    rig_start(&r, 1);
    ck_assert(harness_log_wait(r.lb.log, "started (pid", 1, HARNESS_WAIT_MS));
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    ck_assert_str_eq(harness_http_header(get(&c, "/a", NULL).headers, "X-Backend"), "b1");
    int nport = harness_free_port();
    harness_server("127.0.0.1", nport, harness_fn_http_echo, "new");
    harness_jset(r.cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(nport), "new"), NULL));
    for (int i = 1; i <= 5; i++) {
        harness_jset(r.cfg, "listeners.0.max_connections", json_integer(1000 + i));
        harness_lb_rewrite_json(&r.lb, r.cfg);
        harness_lb_signal(&r.lb, SIGHUP);
        ck_assert(harness_log_wait(r.lb.log, "reload ok", i, HARNESS_WAIT_MS));
    }
    ck_assert(harness_hconn_quiet(&c, 100));
    ck_assert_str_eq(harness_http_header(get(&c, "/b", NULL).headers, "X-Backend"), "new");
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 12: PROXY --- */

START_TEST(accept_proxy_names_the_forwarded_client)
{
    struct rig r;
    rig_cfg(&r, 1);
    harness_jset(r.cfg, "listeners.0.accept_proxy", json_true());
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    ck_assert(harness_hconn_sends(&c, "PROXY TCP4 192.0.2.7 198.51.100.1 5555 80\r\n"));
    struct harness_hresp resp = get(&c, "/p", NULL);
    ck_assert_str_eq(echoed(&resp, "X-Forwarded-For"), "192.0.2.7");
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* A connection that starts with a client's PROXY header is never shared
 * (lb/http_reuse.h): each request gets its own, with its own header. */
START_TEST(send_proxy_v2_once_per_backend_connection)
{
    struct rig r;
    rig_cfg(&r, 0);
    const char *rec = harness_strf("%s/record", harness_dir());
    rig_backend_fn(&r, harness_fn_http_record, (void *)rec);
    harness_jset(r.cfg, "pools.0.send_proxy", json_string("v2"));
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    for (int i = 0; i < 3; i++) {
        struct harness_hresp resp = get(&c, "/v2", NULL);
        ck_assert_int_eq(resp.status, 200);
        /* the v2 header was taken off: the echoed head starts with the request */
        ck_assert(strncmp(resp.body, "GET /v2 HTTP/1.1\r\n", 18) == 0);
        /* a new connection, with its own header */
        ck_assert_str_eq(harness_http_header(resp.headers, "X-Conn-Request"), "1");
    }
    ck_assert_str_eq(harness_read_file(rec), "conn: 0d0a0d0a000d0a515549540a2111000c\n"
                                             "conn: 0d0a0d0a000d0a515549540a2111000c\n"
                                             "conn: 0d0a0d0a000d0a515549540a2111000c\n");
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 5: lb's own errors --- */

START_TEST(malformed_request_gets_400_and_close)
{
    struct rig r;
    rig_start(&r, 1);
    const char *bad = "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n";
    raw_expect(r.port, bad, strlen(bad), 400);
    ck_assert_int_eq(listener_class(r.aport, "4xx"), 1);
    ck_assert_int_eq(listener_class(r.aport, "2xx"), 0);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(partial_head_times_out_with_408)
{
    struct rig r;
    rig_cfg(&r, 1);
    harness_jset(r.cfg, "listeners.0.request_timeout_ms", json_integer(SHORT_MS));
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    long t0 = harness_now_ms();
    ck_assert(harness_hconn_sends(&c, "GET / HTTP/1.1\r\nHost: a\r\n"));
    expect_page(&c, 408, HARNESS_WAIT_MS);
    ck_assert_int_ge(harness_now_ms() - t0, SHORT_MS - 50);
    harness_hconn_close(&c);
    ck_assert_int_eq(listener_class(r.aport, "4xx"), 1);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(idle_keepalive_connection_closed_silently)
{
    struct rig r;
    rig_cfg(&r, 1);
    harness_jset(r.cfg, "listeners.0.idle_timeout_ms", json_integer(SHORT_MS));
    rig_go(&r);
    struct harness_hconn c;
    harness_hconn_open(&c, r.port);
    ck_assert_int_eq(get(&c, "/", NULL).status, 200);
    ck_assert(harness_hconn_expect_closed(&c, SHORT_MS + HARNESS_WAIT_MS)); /* no 408 bytes */
    harness_hconn_close(&c);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(oversized_head_gets_431)
{
    struct rig r;
    rig_cfg(&r, 1);
    harness_jset(r.cfg, "listeners.0.max_header_bytes", json_integer(2048));
    rig_go(&r);
    char big[4200];
    memset(big, 'a', sizeof(big));
    const char *req = harness_strf("GET / HTTP/1.1\r\nHost: a\r\nX-Big: %.4096s\r\n\r\n", big);
    raw_expect(r.port, req, strlen(req), 431);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(default_limit_refuses_40k_head_with_431)
{
    struct rig r;
    rig_start(&r, 1);
    size_t n = 40 * 1024;
    static char v[40 * 1024 + 1];
    memset(v, 'a', n);
    v[n] = '\0';
    const char *req = harness_strf("GET / HTTP/1.1\r\nHost: a\r\nX-Big: %s\r\n\r\n", v);
    raw_expect(r.port, req, strlen(req), 431);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(unsupported_methods_get_501)
{
    struct rig r;
    rig_start(&r, 1);
    const char *a = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
    const char *b = "FROB / HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_expect(r.port, a, strlen(a), 501);
    raw_expect(r.port, b, strlen(b), 501);
    ck_assert_int_eq(listener_class(r.aport, "5xx"), 2);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(http2_request_line_gets_505)
{
    struct rig r;
    rig_start(&r, 1);
    const char *a = "GET / HTTP/2.0\r\nHost: a\r\n\r\n";
    raw_expect(r.port, a, strlen(a), 505);
    harness_lb_stop(&r.lb);
}
END_TEST

static void expect_502_with(harness_conn_fn fn)
{
    struct rig r;
    rig_cfg(&r, 0);
    if (fn)
        rig_backend_fn(&r, fn, NULL);
    else
        harness_jset(
            r.cfg, "pools.0.backends",
            harness_jarray(harness_backend_json(harness_lo(harness_free_port()), "x"), NULL));
    rig_go(&r);
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_expect(r.port, req, strlen(req), 502);
    ck_assert_int_eq(listener_class(r.aport, "5xx"), 1);
    harness_lb_stop(&r.lb);
}

START_TEST(closed_backend_port_gets_502)
{
    expect_502_with(NULL);
}
END_TEST

START_TEST(garbage_answer_gets_502)
{
    expect_502_with(harness_fn_http_garbage);
}
END_TEST

START_TEST(backend_closing_without_answer_gets_502)
{
    expect_502_with(harness_fn_http_close);
}
END_TEST

START_TEST(drained_pool_gets_503)
{
    struct rig r;
    rig_start(&r, 1);
    struct harness_reply rep =
        harness_call(r.aport, "PATCH", "/api/v1/pools/app/backends/b1",
                     "Content-Type: application/json\r\n", "{\"state\": \"drain\"}");
    ck_assert_int_eq(rep.status, 200);
    const char *req = "GET /d HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_expect(r.port, req, strlen(req), 503);
    ck_assert(harness_log_wait(r.lb.log, "backend=- method=GET path=\"/d\" status=503 ", 1,
                               HARNESS_WAIT_MS));
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(silent_backend_gets_504)
{
    struct rig r;
    rig_cfg(&r, 0);
    rig_backend_fn(&r, harness_fn_hold, NULL);
    harness_jset(r.cfg, "pools.0.response_timeout_ms", json_integer(SHORT_MS));
    rig_go(&r);
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_expect(r.port, req, strlen(req), 504);
    ck_assert_int_eq(listener_class(r.aport, "5xx"), 1);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- 6: smuggling, with Node's strict parser behind lb --- */

static const char *smuggled[] = {
    /* CL and TE */
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* two Content-Length */
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\n"
    "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* chunked not final */
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* space before the colon */
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n"
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* chunked in HTTP/1.0 */
    "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* bare LF */
    "GET / HTTP/1.1\nHost: a\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* obs-fold */
    "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Content-Length: 35\r\n\r\n"
    "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* a space in a name; an empty name */
    "GET / HTTP/1.1\r\nHost: a\r\nContent Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: "
    "a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* duplicate Host */
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    /* HTTP/0.9 */
    "GET /\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
};

static int node_start(const char **log)
{
    int port = harness_free_port();
    *log = harness_strf("%s/node-%d.log", harness_dir(), port);
    harness_write_file(harness_strf("node-%d.log", port), "");
    char *argv[] = {"/usr/bin/node",
                    (char *)harness_strf("%s/../tests/http/node-backend.js", LB_BUILD_DIR),
                    (char *)harness_strf("%d", port), (char *)*log, NULL};
    harness_spawn(argv, harness_strf("%s/node-%d.out", harness_dir(), port), NULL);
    ck_assert_msg(harness_wait_listening(port, HARNESS_WAIT_MS), "node backend not listening");
    return port;
}

static void node_rig(struct rig *r, const char **log)
{
    rig_cfg(r, 0);
    int nport = node_start(log);
    harness_jset(r->cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(nport), "node"), NULL));
    rig_go(r);
}

START_TEST(smuggling_shapes_refused_with_400)
{
    struct rig r;
    const char *log;
    node_rig(&r, &log);
    for (unsigned i = 0; i < sizeof(smuggled) / sizeof(smuggled[0]); i++)
        raw_expect(r.port, smuggled[i], strlen(smuggled[i]), 400);
    /* NUL in a header value (not a C string) */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"
                              "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_expect(r.port, nul, sizeof(nul) - 1, 400);
    const char *seen = harness_read_file(log);
    ck_assert_msg(seen[0] == '\0', "node saw requests:\n%s", seen);
    harness_lb_stop(&r.lb);
}
END_TEST

START_TEST(bad_chunked_body_ends_at_one_request)
{
    struct rig r;
    const char *log;
    node_rig(&r, &log);
    static const char *bodies[] = {
        "POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhelloXX0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (int i = 0; i < 2; i++) {
        /* lb forwarded the head already: no response had started, so 400. */
        raw_expect(r.port, bodies[i], strlen(bodies[i]), 400);
    }
    harness_sleep_ms(200); /* node logs what it got, if anything */
    const char *seen = harness_read_file(log);
    ck_assert_msg(strstr(seen, "/smuggled") == NULL, "smuggled:\n%s", seen);
    ck_assert_int_le(count_lines(seen, "POST /bad"), 2);
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- the harness alone --- */

START_TEST(echo_backend_reports_head_body_and_peer)
{
    int p = harness_free_port();
    harness_server("127.0.0.1", p, harness_fn_http_echo, "e1");
    struct harness_hconn c;
    harness_hconn_open(&c, p);
    struct harness_hresp r = get(&c, "/x", "X-A: 1\r\n");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_http_header(r.headers, "X-Backend"), "e1");
    ck_assert_int_eq(atoi(harness_http_header(r.headers, "X-Peer-Port")), harness_sock_port(c.fd));
    ck_assert_str_eq(r.body, harness_strf("GET /x HTTP/1.1\r\nHost: lb.test\r\nX-A: 1\r\n"
                                          "body-bytes: 0\nbody-fnv: %016llx\n",
                                          (unsigned long long)HARNESS_FNV_INIT));
    upload(&c, 300000, false);
    upload(&c, 300000, true);
    download(&c, "big", 300000);
    download(&c, "chunked", 300000);
    ck_assert(harness_hconn_sends(&c, "GET /chunked/12 HTTP/1.1\r\nHost: a\r\n\r\n"));
    ck_assert_int_eq(harness_hconn_read(&c, &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert(r.chunked);
    ck_assert_uint_eq(r.body_len, 12);
    ck_assert_uint_eq(r.raw_len, strlen("1\r\nX\r\n7\r\nXXXXXXX\r\n4\r\nXXXX\r\n0\r\n\r\n"));
    ck_assert(harness_hconn_sends(&c, "HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    ck_assert_int_eq(harness_hconn_read(&c, &r, HCONN_HEAD, HARNESS_WAIT_MS), 0);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert(harness_hconn_expect_closed(&c, HARNESS_WAIT_MS));
    harness_hconn_close(&c);
}
END_TEST

START_TEST(special_backends_behave)
{
    int p = harness_free_port();
    harness_server("127.0.0.1", p, harness_fn_http_continue, NULL);
    struct harness_hconn c;
    harness_hconn_open(&c, p);
    ck_assert(harness_hconn_sends(&c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"));
    struct harness_hresp r;
    ck_assert_int_eq(harness_hconn_read(&c, &r, HCONN_INTERIM, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(r.status, 100);
    ck_assert(harness_hconn_sends(&c, "hi"));
    ck_assert_int_eq(harness_hconn_read(&c, &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_str_eq(r.body, "got 2\n");
    harness_hconn_close(&c);

    p = harness_free_port();
    harness_server("127.0.0.1", p, harness_fn_http_upgrade, NULL);
    harness_hconn_open(&c, p);
    ck_assert(harness_hconn_sends(&c, "GET /ws HTTP/1.1\r\nHost: a\r\n\r\nabc"));
    ck_assert_int_eq(harness_hconn_read(&c, &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(r.status, 101);
    shutdown(c.fd, SHUT_WR);
    size_t n;
    ck_assert_str_eq(harness_hconn_read_all(&c, &n, HARNESS_WAIT_MS), "abc");
    harness_hconn_close(&c);

    p = harness_free_port();
    harness_server("127.0.0.1", p, harness_fn_http_garbage, NULL);
    harness_hconn_open(&c, p);
    ck_assert(harness_hconn_sends(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    ck_assert_int_eq(harness_hconn_read(&c, &r, 0, 500), -1);
    harness_hconn_close(&c);
}
END_TEST

START_TEST(node_backend_logs_each_request)
{
    const char *log;
    int p = node_start(&log);
    struct harness_hconn c;
    harness_hconn_open(&c, p);
    ck_assert(harness_hconn_sends(&c, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                                      "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"));
    struct harness_hresp r;
    ck_assert_int_eq(harness_hconn_read(&c, &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(harness_hconn_read(&c, &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_str_eq(r.body, "ok\n");
    harness_hconn_close(&c);
    /* The strict parser refuses CL + TE itself: no request logged. */
    harness_hconn_open(&c, p);
    ck_assert(harness_hconn_sends(&c, smuggled[0]));
    ck_assert(harness_hconn_expect_closed(&c, HARNESS_WAIT_MS) || c.len > 0);
    harness_hconn_close(&c);
    ck_assert(harness_log_wait(log, "clientError", 1, HARNESS_WAIT_MS));
    ck_assert_str_eq(harness_read_file(log), "POST /a cl=3 te=- body=3\nGET /b cl=- te=- body=0\n"
                                             "clientError HPE_INVALID_TRANSFER_ENCODING\n");
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = harness_tcase("http");
    tcase_add_test(tc, keepalive_requests_rotate_roundrobin);
    tcase_add_test(tc, idle_backend_connections_are_reused);
    tcase_add_test(tc, backend_bytes_out_counts_heads_and_bodies);
    tcase_add_test(tc, max_idle_zero_opens_a_connection_per_request);
    tcase_add_test(tc, forwarding_headers_added_hop_by_hop_removed);
    tcase_add_test(tc, x_real_ip_and_forwarded_when_switched_on);
    tcase_add_test(tc, big_bodies_byte_exact_both_ways);
    tcase_add_test(tc, empty_and_trickled_bodies);
    tcase_add_test(tc, pipelined_requests_answered_in_order);
    tcase_add_test(tc, upgrade_becomes_a_byte_tunnel);
    tcase_add_test(tc, expect_100_continue_then_body);
    tcase_add_test(tc, access_log_line_per_request);
    tcase_add_test(tc, idle_keepalive_connection_survives_reloads);
    tcase_add_test(tc, accept_proxy_names_the_forwarded_client);
    tcase_add_test(tc, send_proxy_v2_once_per_backend_connection);
    tcase_add_test(tc, reused_connection_closed_is_retried_once);
    tcase_add_test(tc, stop_closes_idle_keepalive_clients);
    tcase_add_test(tc, slow_client_gets_a_large_1xx_then_the_response);
    tcase_add_test(tc, slow_client_gets_a_tunnels_first_bytes);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *http_errors_suite(void)
{
    Suite *s = suite_create("http_errors");
    TCase *tc = harness_tcase("http_errors");
    tcase_add_test(tc, malformed_request_gets_400_and_close);
    tcase_add_test(tc, partial_head_times_out_with_408);
    tcase_add_test(tc, idle_keepalive_connection_closed_silently);
    tcase_add_test(tc, oversized_head_gets_431);
    tcase_add_test(tc, default_limit_refuses_40k_head_with_431);
    tcase_add_test(tc, unsupported_methods_get_501);
    tcase_add_test(tc, http2_request_line_gets_505);
    tcase_add_test(tc, closed_backend_port_gets_502);
    tcase_add_test(tc, garbage_answer_gets_502);
    tcase_add_test(tc, backend_closing_without_answer_gets_502);
    tcase_add_test(tc, drained_pool_gets_503);
    tcase_add_test(tc, silent_backend_gets_504);
    tcase_add_test(tc, smuggling_shapes_refused_with_400);
    tcase_add_test(tc, bad_chunked_body_ends_at_one_request);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *http_harness_suite(void)
{
    Suite *s = suite_create("http_harness");
    TCase *tc = harness_tcase("http_harness");
    tcase_add_test(tc, echo_backend_reports_head_body_and_peer);
    tcase_add_test(tc, special_backends_behave);
    tcase_add_test(tc, node_backend_logs_each_request);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(http_suite)
LB_TEST_SUITE(http_errors_suite)
LB_TEST_SUITE(http_harness_suite)
