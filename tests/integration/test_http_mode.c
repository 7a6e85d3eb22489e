/* Integration: http mode through a real lb. Backends are C functions of
 * the test (harness_server) that answer each request with what they
 * received — the request head as it came, the body's length and hash —
 * so the tests see exactly what lb sent on; Node's own HTTP server (Debian's
 * nodejs, llhttp in strict mode) stands behind lb for the smuggling shapes.
 * The client is the test's own, on one keep-alive connection. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tests/harness.h"
#include "tests/test.h"

/* --- A small HTTP/1.1 client over one connection ------------------------ */

struct hc {
    int fd;
    char buf[256 * 1024];
    size_t len;
    bool eof;
};

struct resp {
    int status;
    char head[16384]; /* status line and headers, NUL-terminated */
    char *body;       /* decoded, NUL-terminated (freed by resp_free) */
    size_t body_len;
    uint64_t hash; /* FNV-1a 64 of the decoded body */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}
#define FNV_INIT 14695981039346656037ULL

static struct hc *hc_open(int port)
{
    struct hc *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->fd = harness_connect_ok("127.0.0.1", port);
    return c;
}

static void hc_close(struct hc *c)
{
    close(c->fd);
    free(c);
}

static void hc_send(struct hc *c, const char *text)
{
    ck_assert(harness_send_all(c->fd, text, strlen(text), HARNESS_WAIT_MS));
}

/* Reads more bytes into c->buf: false at EOF, a reset or the deadline. */
static bool hc_more(struct hc *c, long deadline)
{
    if (c->eof || c->len == sizeof(c->buf))
        return false;
    long left = deadline - harness_now_ms();
    if (left <= 0 || !harness_readable(c->fd, left))
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0) {
        c->eof = true;
        return false;
    }
    c->len += (size_t)n;
    return true;
}

static void hc_consume(struct hc *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The value of header name in head (case-insensitive), or NULL. */
static const char *head_value(const char *head, const char *name)
{
    return harness_http_header(strchr(head, '\n') ? strchr(head, '\n') + 1 : head, name);
}

static void body_add(struct resp *r, const char *p, size_t n, bool keep)
{
    r->hash = fnv(r->hash, p, n);
    if (keep) {
        r->body = realloc(r->body, r->body_len + n + 1);
        ck_assert_ptr_nonnull(r->body);
        memcpy(r->body + r->body_len, p, n);
        r->body[r->body_len + n] = '\0';
    }
    r->body_len += n;
}

/* Reads one response (interim 1xx ones too, as their own response). keep:
 * store the body (else only length and hash). false when none came. */
static bool hc_response(struct hc *c, struct resp *r, bool head_request, bool keep)
{
    memset(r, 0, sizeof(*r));
    r->hash = FNV_INIT;
    r->body = calloc(1, 1);
    long deadline = harness_now_ms() + 20000;
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!hc_more(c, deadline))
            return false;
    size_t hl = (size_t)(end - c->buf) + 4;
    ck_assert_uint_lt(hl, sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    hc_consume(c, hl);
    ck_assert_int_eq(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    if (head_request || r->status < 200 || r->status == 204 || r->status == 304)
        return true;
    const char *te = head_value(r->head, "Transfer-Encoding");
    const char *cl = head_value(r->head, "Content-Length");
    if (te && strcasecmp(te, "chunked") == 0) {
        for (;;) {
            char *eol;
            while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
                ck_assert(hc_more(c, deadline));
            unsigned long long size = strtoull(c->buf, NULL, 16);
            hc_consume(c, (size_t)(eol - c->buf) + 2);
            if (size == 0) {
                while (!memmem(c->buf, c->len, "\r\n", 2))
                    ck_assert(hc_more(c, deadline));
                char *t = memmem(c->buf, c->len, "\r\n", 2);
                hc_consume(c, (size_t)(t - c->buf) + 2); /* no trailers in these tests */
                return true;
            }
            while (size > 0) {
                if (c->len == 0)
                    ck_assert(hc_more(c, deadline));
                size_t take = c->len < size ? c->len : (size_t)size;
                body_add(r, c->buf, take, keep);
                hc_consume(c, take);
                size -= take;
            }
            while (c->len < 2)
                ck_assert(hc_more(c, deadline));
            ck_assert(memcmp(c->buf, "\r\n", 2) == 0);
            hc_consume(c, 2);
        }
    }
    if (cl) {
        unsigned long long left = strtoull(cl, NULL, 10);
        while (left > 0) {
            if (c->len == 0)
                ck_assert_msg(hc_more(c, deadline), "body cut with %llu bytes left", left);
            size_t take = c->len < left ? c->len : (size_t)left;
            body_add(r, c->buf, take, keep);
            hc_consume(c, take);
            left -= take;
        }
        return true;
    }
    for (;;) { /* until close */
        if (c->len) {
            body_add(r, c->buf, c->len, keep);
            c->len = 0;
        }
        if (!hc_more(c, deadline))
            return true;
    }
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Whether lb closes the connection within ms, with nothing more sent. */
static bool hc_closed(struct hc *c, long ms)
{
    long deadline = harness_now_ms() + ms;
    while (hc_more(c, deadline))
        ;
    return c->eof && c->len == 0;
}

/* --- Backends ------------------------------------------------------------ */

/* Reads one request from fd into buf (cap), framing its body: returns the
 * head length, sets *body_len and *hash of the (decoded) body, and moves
 * what follows to the start of buf (*have). 0 at EOF. */
static size_t srv_request(int fd, char *buf, size_t cap, size_t *have, size_t *head_copy,
                          char *head, size_t head_cap, uint64_t *body_len, uint64_t *hash)
{
    char *end;
    while (!(end = memmem(buf, *have, "\r\n\r\n", 4))) {
        if (*have == cap)
            return 0;
        ssize_t n = recv(fd, buf + *have, cap - *have, 0);
        if (n <= 0)
            return 0;
        *have += (size_t)n;
    }
    size_t hl = (size_t)(end - buf) + 4;
    *head_copy = hl < head_cap ? hl : head_cap - 1;
    memcpy(head, buf, *head_copy);
    head[*head_copy] = '\0';
    memmove(buf, buf + hl, *have - hl);
    *have -= hl;
    *body_len = 0;
    *hash = FNV_INIT;
    const char *cl = strcasestr(head, "\r\ncontent-length:");
    bool chunked = strcasestr(head, "\r\ntransfer-encoding: chunked") != NULL;
    uint64_t left = cl ? strtoull(cl + 17, NULL, 10) : 0;
    if (chunked) {
        for (;;) {
            char *eol;
            while (!(eol = memmem(buf, *have, "\r\n", 2))) {
                ssize_t n = recv(fd, buf + *have, cap - *have, 0);
                if (n <= 0)
                    return 0;
                *have += (size_t)n;
            }
            uint64_t size = strtoull(buf, NULL, 16);
            size_t line = (size_t)(eol - buf) + 2;
            memmove(buf, buf + line, *have - line);
            *have -= line;
            uint64_t want = size + 2; /* data and its CRLF (or the last CRLF) */
            while (want > 0) {
                if (*have == 0) {
                    ssize_t n = recv(fd, buf, cap, 0);
                    if (n <= 0)
                        return 0;
                    *have = (size_t)n;
                }
                size_t take = *have < want ? *have : (size_t)want;
                size_t data = want > 2 ? (size_t)(want - 2 < take ? want - 2 : take) : 0;
                *hash = fnv(*hash, buf, data);
                *body_len += data;
                memmove(buf, buf + take, *have - take);
                *have -= take;
                want -= take;
            }
            if (size == 0)
                return hl;
        }
    }
    while (left > 0) {
        if (*have == 0) {
            ssize_t n = recv(fd, buf, cap, 0);
            if (n <= 0)
                return 0;
            *have = (size_t)n;
        }
        size_t take = *have < left ? *have : (size_t)left;
        *hash = fnv(*hash, buf, take);
        *body_len += take;
        memmove(buf, buf + take, *have - take);
        *have -= take;
        left -= take;
    }
    return hl;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            _exit(0);
        b += w;
        n -= (size_t)w;
    }
}

/* Sends n bytes of the harness stream, as one body (chunked: in chunks of
 * varying size). */
static void send_stream(int fd, uint64_t n, bool chunked)
{
    static unsigned char chunk[65536];
    uint64_t off = 0;
    unsigned k = 1;
    while (off < n) {
        size_t take = chunked ? 1 + (k * 7919) % 40000 : sizeof(chunk);
        if (take > n - off)
            take = (size_t)(n - off);
        harness_stream_fill(chunk, off, take);
        if (chunked) {
            char line[32];
            int ll = snprintf(line, sizeof(line), "%zx\r\n", take);
            send_all(fd, line, (size_t)ll);
        }
        send_all(fd, chunk, take);
        if (chunked)
            send_all(fd, "\r\n", 2);
        off += take;
        k++;
    }
    if (chunked)
        send_all(fd, "0\r\n\r\n", 5);
}

/* The echo backend (arg: its name). Every request is answered 200 with
 * X-Backend, X-Peer-Port (lb's side of this connection) and a body of the
 * request head as received, then "body-bytes: N" and "body-hash: H".
 * GET /big/N answers N stream bytes, /chunked/N the same chunked; /hold
 * never answers; /close answers and closes; an Upgrade request gets a 101
 * and then an echo of every byte. */
static void fn_echo_req(int fd, void *arg)
{
    const char *name = arg;
    static char buf[1 << 20];
    size_t have = 0;
    struct sockaddr_in6 peer;
    socklen_t plen = sizeof(peer);
    getpeername(fd, (struct sockaddr *)&peer, &plen);
    int pport = ntohs(peer.sin6_port); /* sin_port is at the same offset */
    for (;;) {
        char head[16384];
        size_t hcopy;
        uint64_t blen, hash;
        if (srv_request(fd, buf, sizeof(buf), &have, &hcopy, head, sizeof(head), &blen, &hash) == 0)
            return;
        char path[256] = "";
        sscanf(head, "%*s %255s", path);
        if (strcasestr(head, "\r\nupgrade:")) {
            const char *r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                            "Connection: Upgrade\r\n\r\n";
            send_all(fd, r, strlen(r));
            if (have)
                send_all(fd, buf, have);
            for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0) {
                    shutdown(fd, SHUT_WR);
                    return;
                }
                send_all(fd, buf, (size_t)n);
            }
        }
        if (strcmp(path, "/hold") == 0) {
            while (recv(fd, buf, sizeof(buf), 0) > 0)
                ;
            return;
        }
        if (strncmp(path, "/big/", 5) == 0 || strncmp(path, "/chunked/", 9) == 0) {
            bool chunked = path[1] == 'c';
            uint64_t n = strtoull(strchr(path + 1, '/') + 1, NULL, 10);
            char h[256];
            int hl = chunked ? snprintf(h, sizeof(h),
                                        "HTTP/1.1 200 OK\r\nX-Backend: %s\r\n"
                                        "Transfer-Encoding: chunked\r\n\r\n",
                                        name)
                             : snprintf(h, sizeof(h),
                                        "HTTP/1.1 200 OK\r\nX-Backend: %s\r\n"
                                        "Content-Length: %llu\r\n\r\n",
                                        name, (unsigned long long)n);
            send_all(fd, h, (size_t)hl);
            send_stream(fd, n, chunked);
            continue;
        }
        char *body = harness_strf("%sbody-bytes: %llu\nbody-hash: %016llx\n", head,
                                  (unsigned long long)blen, (unsigned long long)hash);
        char *h = harness_strf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: %s\r\n"
                               "X-Peer-Port: %d\r\nKeep-Alive: timeout=5\r\nContent-Length: %zu\r\n"
                               "\r\n",
                               name, pport, strlen(body));
        send_all(fd, h, strlen(h));
        send_all(fd, body, strlen(body));
        if (strcmp(path, "/close") == 0)
            return;
    }
}

/* Answers the first request of each connection (keep-alive), then closes
 * on the second without a word: a backend whose keep-alive timeout crossed
 * lb's reuse of the connection. */
static void fn_close_second(int fd, void *arg)
{
    (void)arg;
    static char buf[1 << 16];
    size_t have = 0;
    char head[4096];
    size_t hcopy;
    uint64_t blen, hash;
    if (srv_request(fd, buf, sizeof(buf), &have, &hcopy, head, sizeof(head), &blen, &hash) == 0)
        return;
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst\n";
    send_all(fd, r, strlen(r));
    srv_request(fd, buf, sizeof(buf), &have, &hcopy, head, sizeof(head), &blen, &hash);
}

/* Answers garbage to anything. */
static void fn_garbage(int fd, void *arg)
{
    (void)arg;
    char buf[4096];
    if (recv(fd, buf, sizeof(buf), 0) > 0)
        send_all(fd, "HELLO\r\n\r\n", 9);
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
}

/* Reads a request and closes without a word. */
static void fn_close_at_once(int fd, void *arg)
{
    (void)arg;
    char buf[4096];
    recv(fd, buf, sizeof(buf), 0);
}

/* Sends 100 Continue, reads the body (Content-Length), answers 200 with its
 * length. */
static void fn_continue(int fd, void *arg)
{
    (void)arg;
    static char buf[1 << 16];
    size_t have = 0;
    char *end;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);
        if (n <= 0)
            return;
        have += (size_t)n;
    }
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
    size_t got = have - (size_t)(end + 4 - buf);
    send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    while (got < want) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            return;
        got += (size_t)n;
    }
    char *r = harness_strf("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%zu",
                           strlen(harness_strf("%zu", got)), got);
    send_all(fd, r, strlen(r));
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
}

/* --- lb ------------------------------------------------------------------ */

struct rig {
    struct harness_lb lb;
    int port, aport;
    json_t *cfg;
};

/* lb in http mode on a free port (admin API too) in front of the backends
 * (JSON text); listener and pool keys as JSON text ("" for none). */
static void rig_start(struct rig *r, const char *backends, const char *listener_keys,
                      const char *pool_keys)
{
    r->port = harness_free_port();
    r->aport = harness_free_port();
    r->cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(r->port), .backends = backends, .pool_extra = pool_keys});
    harness_jset(r->cfg, "listeners.0.mode", json_string("http"));
    json_t *extra = harness_jparse(harness_strf("{%s}", listener_keys));
    const char *key;
    json_t *v;
    json_object_foreach(extra, key, v)
    {
        harness_jset(r->cfg, harness_strf("listeners.0.%s", key), json_incref(v));
    }
    json_decref(extra);
    harness_jset(r->cfg, "admin.listen", json_string(harness_lo(r->aport)));
    harness_lb_start_json(&r->lb, r->cfg, r->port);
}

/* n echo backends b1..bn; their JSON. */
static const char *echo_backends(int n)
{
    char *json = harness_strf("%s", "");
    for (int i = 1; i <= n; i++) {
        int p = harness_free_port();
        harness_server("127.0.0.1", p, fn_echo_req, harness_strf("b%d", i));
        json = harness_strf("%s%s{\"name\": \"b%d\", \"address\": \"%s\"}", json, i > 1 ? ", " : "",
                            i, harness_lo(p));
    }
    return json;
}

static const char *get_req(const char *path)
{
    return harness_strf("GET %s HTTP/1.1\r\nHost: example.test\r\n\r\n", path);
}

/* The exact page lb answers with for status. */
static const char *lb_page(int status, const char *reason, const char *message)
{
    const char *body = harness_strf("<html><body><h1>%d %s</h1>\n<p>%s</p>\n</body></html>\n",
                                    status, reason, message);
    return harness_strf("HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s",
                        status, reason, strlen(body), body);
}

/* Sends raw on a new connection and reads everything lb sends until it
 * closes; the text (freed at teardown). */
static const char *exchange(int port, const char *raw)
{
    int fd = harness_connect_ok("127.0.0.1", port);
    ck_assert(harness_send_all(fd, raw, strlen(raw), HARNESS_WAIT_MS));
    char *buf = harness_strf("%*s", 65536, "");
    ssize_t n = harness_read_eof(fd, buf, 65535, HARNESS_WAIT_MS);
    close(fd);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    return buf;
}

static long long api_int(int aport, const char *path, const char *field)
{
    struct harness_reply rep = harness_call(aport, "GET", path, NULL, NULL);
    ck_assert_int_eq(rep.status, 200);
    return harness_jint(rep.json, field);
}

/* --- Tests ---------------------------------------------------------------- */

/* 30 requests on one keep-alive connection go round-robin over three
 * backends, 10 each in rotation, over at most 3 backend connections. */
START_TEST(thirty_requests_one_connection_three_backends)
{
    struct rig r;
    rig_start(&r, echo_backends(3), "", "");
    struct hc *c = hc_open(r.port);
    int seen[3] = {0};
    int ports[30], nports = 0;
    const char *first = NULL;
    for (int i = 0; i < 30; i++) {
        hc_send(c, get_req(harness_strf("/r%d", i)));
        struct resp res;
        ck_assert(hc_response(c, &res, false, true));
        ck_assert_int_eq(res.status, 200);
        const char *b = head_value(res.head, "X-Backend");
        ck_assert_ptr_nonnull(b);
        if (i == 0)
            first = harness_strf("%s", b);
        int k = b[1] - '1';
        ck_assert_int_eq(k, (first[1] - '1' + i) % 3); /* strict rotation */
        seen[k]++;
        int p = atoi(head_value(res.head, "X-Peer-Port"));
        bool known = false;
        for (int j = 0; j < nports; j++)
            known = known || ports[j] == p;
        if (!known)
            ports[nports++] = p;
        ck_assert(strstr(res.body, harness_strf("GET /r%d HTTP/1.1\r\n", i)) == res.body);
        resp_free(&res);
    }
    ck_assert_int_eq(seen[0], 10);
    ck_assert_int_eq(seen[1], 10);
    ck_assert_int_eq(seen[2], 10);
    ck_assert_int_eq(nports, 3); /* one backend connection each, reused */
    hc_close(c);
    long long reused = api_int(r.aport, "/api/v1/pools", "pools.0.backends.0.reused") +
                       api_int(r.aport, "/api/v1/pools", "pools.0.backends.1.reused") +
                       api_int(r.aport, "/api/v1/pools", "pools.0.backends.2.reused");
    ck_assert_int_eq(reused, 27);
    ck_assert_int_eq(api_int(r.aport, "/api/v1/listeners", "listeners.0.http_responses.2xx"), 30);
    harness_lb_stop(&r.lb);
}
END_TEST

/* With "keepalive": {"max_idle": 0} every request gets a fresh backend
 * connection. */
START_TEST(no_reuse_gives_a_connection_per_request)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "", "\"keepalive\": {\"max_idle\": 0}, ");
    struct hc *c = hc_open(r.port);
    int last = -1;
    for (int i = 0; i < 5; i++) {
        hc_send(c, get_req("/"));
        struct resp res;
        ck_assert(hc_response(c, &res, false, true));
        int p = atoi(head_value(res.head, "X-Peer-Port"));
        ck_assert_int_ne(p, last);
        last = p;
        ck_assert(strstr(res.body, "\r\nConnection: close\r\n") != NULL);
        resp_free(&res);
    }
    hc_close(c);
    ck_assert_int_eq(api_int(r.aport, "/api/v1/pools", "pools.0.backends.0.reused"), 0);
    harness_lb_stop(&r.lb);
}
END_TEST

/* What the backend sees: the client's Host, X-Forwarded-* set, hop-by-hop
 * and '_' headers gone; X-Real-IP and Forwarded only when switched on. What
 * the client sees: the backend's headers without its hop-by-hop ones. */
START_TEST(forwarded_and_hop_by_hop_headers)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "", "");
    struct hc *c = hc_open(r.port);
    hc_send(c, "GET /h HTTP/1.1\r\nHost: Example.Test:8080\r\nX-Forwarded-For: 10.0.0.1\r\n"
               "Connection: keep-alive, X-Foo\r\nX-Foo: secret\r\nKeep-Alive: timeout=9\r\n"
               "TE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\nProxy-Connection: "
               "keep-alive\r\nX_Forwarded_For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"
               "X-Forwarded-Proto: gopher\r\nAccept: */*\r\n\r\n");
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_int_eq(res.status, 200);
    const char *want = harness_strf("GET /h HTTP/1.1\r\nHost: Example.Test:8080\r\nAccept: */*\r\n"
                                    "Connection: keep-alive\r\nX-Forwarded-For: 10.0.0.1, "
                                    "127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: "
                                    "%d\r\n\r\nbody-bytes: 0\n",
                                    r.port);
    ck_assert_msg(strncmp(res.body, want, strlen(want)) == 0, "backend saw:\n%s\nwant:\n%s",
                  res.body, want);
    /* The backend's Keep-Alive is hop-by-hop: the client does not get it. */
    ck_assert_ptr_null(head_value(res.head, "Keep-Alive"));
    ck_assert_str_eq(head_value(res.head, "X-Backend"), "b1");
    resp_free(&res);
    hc_close(c);
    harness_lb_stop(&r.lb);

    rig_start(&r, echo_backends(1), "\"x_real_ip\": true, \"forwarded\": true", "");
    c = hc_open(r.port);
    hc_send(c, "GET /f HTTP/1.1\r\nHost: a.test\r\nForwarded: for=10.0.0.1\r\n\r\n");
    ck_assert(hc_response(c, &res, false, true));
    want = harness_strf("GET /f HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive\r\n"
                        "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
                        "X-Forwarded-Port: %d\r\nX-Real-IP: 127.0.0.1\r\nForwarded: "
                        "for=10.0.0.1, for=127.0.0.1;proto=http;host=a.test\r\n\r\n",
                        r.port);
    ck_assert_msg(strncmp(res.body, want, strlen(want)) == 0, "backend saw:\n%s\nwant:\n%s",
                  res.body, want);
    resp_free(&res);
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* Bodies pass byte-exact both ways, Content-Length and chunked, and the
 * connection carries the next request afterwards. */
#define BIG_BODY (1024ull * 1024 * 1024) /* 1 GiB each way, both framings */
START_TEST(large_bodies_byte_exact)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "", "");
    struct hc *c = hc_open(r.port);
    static unsigned char chunk[65536];
    uint64_t want = FNV_INIT;
    for (uint64_t off = 0; off < BIG_BODY; off += sizeof(chunk)) {
        harness_stream_fill(chunk, off, sizeof(chunk));
        want = fnv(want, chunk, sizeof(chunk));
    }
    const char *whash = harness_strf("body-hash: %016llx\n", (unsigned long long)want);
    const char *wlen = harness_strf("body-bytes: %llu\n", (unsigned long long)BIG_BODY);
    for (int chunked = 0; chunked < 2; chunked++) {
        hc_send(c, chunked ? "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           : harness_strf("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: "
                                          "%llu\r\n\r\n",
                                          (unsigned long long)BIG_BODY));
        for (uint64_t off = 0; off < BIG_BODY; off += sizeof(chunk)) {
            harness_stream_fill(chunk, off, sizeof(chunk));
            if (chunked)
                hc_send(c, harness_strf("%zx\r\n", sizeof(chunk)));
            ck_assert(harness_send_all(c->fd, chunk, sizeof(chunk), 20000));
            if (chunked)
                hc_send(c, "\r\n");
        }
        if (chunked)
            hc_send(c, "0\r\n\r\n");
        struct resp res;
        ck_assert(hc_response(c, &res, false, true));
        ck_assert_int_eq(res.status, 200);
        ck_assert_ptr_nonnull(strstr(res.body, wlen));
        ck_assert_ptr_nonnull(strstr(res.body, whash));
        resp_free(&res);
    }
    for (int chunked = 0; chunked < 2; chunked++) {
        hc_send(c, get_req(harness_strf("/%s/%llu", chunked ? "chunked" : "big",
                                        (unsigned long long)BIG_BODY)));
        struct resp res;
        ck_assert(hc_response(c, &res, false, false));
        ck_assert_int_eq(res.status, 200);
        ck_assert_uint_eq(res.body_len, BIG_BODY);
        ck_assert_uint_eq(res.hash, want);
        resp_free(&res);
    }
    /* Tiny pieces: a request dribbled a byte at a time. */
    const char *req = "POST /tiny HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    for (size_t i = 0; req[i]; i++)
        ck_assert(harness_send_all(c->fd, req + i, 1, HARNESS_WAIT_MS));
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_ptr_nonnull(strstr(res.body, "body-bytes: 5\n"));
    resp_free(&res);
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* Pipelined requests are answered in order. */
START_TEST(pipelined_requests_in_order)
{
    struct rig r;
    rig_start(&r, echo_backends(2), "", "");
    struct hc *c = hc_open(r.port);
    char *all = harness_strf("%s", "");
    for (int i = 0; i < 5; i++)
        all = harness_strf("%s%s", all, get_req(harness_strf("/p%d", i)));
    hc_send(c, all);
    for (int i = 0; i < 5; i++) {
        struct resp res;
        ck_assert(hc_response(c, &res, false, true));
        ck_assert_int_eq(res.status, 200);
        ck_assert_msg(strstr(res.body, harness_strf("GET /p%d HTTP/1.1\r\n", i)) == res.body,
                      "response %d: %s", i, res.body);
        resp_free(&res);
    }
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* Every answer lb writes itself, from a scenario that causes it, byte for
 * byte; then lb closes; the listener counts them by class. */
START_TEST(lb_error_answers)
{
    int hold = harness_free_port(), garbage = harness_free_port(), shut = harness_free_port();
    int dead = harness_free_port();
    harness_server("127.0.0.1", hold, fn_echo_req, "hold");
    harness_server("127.0.0.1", garbage, fn_garbage, NULL);
    harness_server("127.0.0.1", shut, fn_close_at_once, NULL);
    struct rig r;
    rig_start(&r, harness_strf("{\"address\": \"%s\"}", harness_lo(hold)),
              "\"request_timeout_ms\": 300, \"max_header_bytes\": 2048",
              "\"response_timeout_ms\": 300, ");
    const char *p400 = lb_page(400, "Bad Request", "Your request is malformed or ambiguous.");
    ck_assert_str_eq(exchange(r.port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), p400);
    ck_assert_str_eq(exchange(r.port, "GET / HTTP/1.1\r\nHost: a\r\n"),
                     lb_page(408, "Request Timeout", "Your request did not arrive in time."));
    ck_assert_str_eq(
        exchange(r.port, harness_strf("GET / HTTP/1.1\r\nHost: a\r\nX-Big: %0*d\r\n\r\n", 4000, 0)),
        lb_page(431, "Request Header Fields Too Large", "Your request head is too large."));
    const char *p501 = lb_page(501, "Not Implemented", "The request method is not supported.");
    ck_assert_str_eq(exchange(r.port, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), p501);
    ck_assert_str_eq(exchange(r.port, "BREW / HTTP/1.1\r\nHost: a\r\n\r\n"), p501);
    ck_assert_str_eq(
        exchange(r.port, "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        lb_page(505, "HTTP Version Not Supported", "Only HTTP/1.0 and HTTP/1.1 are supported."));
    ck_assert_str_eq(exchange(r.port, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"),
                     lb_page(504, "Gateway Timeout", "The backend did not answer in time."));
    /* A keep-alive connection with nothing of a next request is closed
     * without a word at the idle timeout. */
    harness_jset(r.cfg, "listeners.0.idle_timeout_ms", json_integer(300));
    const char *p502 = lb_page(502, "Bad Gateway",
                               "The backend could not be reached or sent an invalid response.");
    for (int k = 0; k < 3; k++) {
        int bp = k == 0 ? garbage : k == 1 ? shut : dead;
        harness_jset(r.cfg, "pools.0.backends",
                     harness_jparse(harness_strf("[{\"address\": \"%s\"}]", harness_lo(bp))));
        harness_jset(r.cfg, "pools.0.retries", json_integer(0));
        harness_lb_rewrite_json(&r.lb, r.cfg);
        harness_lb_signal(&r.lb, SIGHUP);
        ck_assert(harness_lb_log_wait(&r.lb, "reload", k + 1, HARNESS_WAIT_MS));
        ck_assert_str_eq(exchange(r.port, get_req("/")), p502);
    }
    /* No backend available: its weight is 0. */
    harness_jset(
        r.cfg, "pools.0.backends",
        harness_jparse(harness_strf("[{\"address\": \"%s\", \"weight\": 0}]", harness_lo(hold))));
    harness_lb_rewrite_json(&r.lb, r.cfg);
    harness_lb_signal(&r.lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&r.lb, "reload", 4, HARNESS_WAIT_MS));
    ck_assert_str_eq(
        exchange(r.port, get_req("/")),
        lb_page(503, "Service Unavailable", "No backend is available to handle your request."));
    ck_assert_int_eq(api_int(r.aport, "/api/v1/listeners", "listeners.0.http_responses.4xx"), 3);
    ck_assert_int_eq(api_int(r.aport, "/api/v1/listeners", "listeners.0.http_responses.5xx"), 8);
    ck_assert(harness_lb_log_wait(&r.lb, "method=GET path=\"/\" status=503", 1, HARNESS_WAIT_MS));
    harness_lb_stop(&r.lb);
}
END_TEST

/* A keep-alive connection idle longer than idle_timeout_ms is closed
 * without a word; one that sent half a head gets 408. */
START_TEST(idle_keep_alive_closes_silently)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "\"idle_timeout_ms\": 300", "");
    struct hc *c = hc_open(r.port);
    hc_send(c, get_req("/"));
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    resp_free(&res);
    ck_assert(hc_closed(c, 3000));
    hc_close(c);
    ck_assert(harness_lb_log_wait(&r.lb, "reason=\"idle timeout\"", 1, HARNESS_WAIT_MS));
    harness_lb_stop(&r.lb);
}
END_TEST

/* The Node strict server behind lb sees no smuggled request: each shape is
 * refused with 400 before anything reaches it (or, for a bad chunked body,
 * at most the one request whose body it is). */
static const char node_backend[] =
    "const http = require('http'); const fs = require('fs');\n"
    "const log = process.argv[3];\n"
    "http.createServer((req, res) => { let n = 0;\n"
    "  req.on('data', d => n += d.length);\n"
    "  req.on('end', () => { fs.appendFileSync(log, req.method + ' ' + req.url + '\\n');\n"
    "    res.end('ok'); });\n"
    "}).listen(+process.argv[2], '127.0.0.1', () => fs.appendFileSync(log, ''));\n";

START_TEST(smuggling_shapes_refused)
{
    int np = harness_free_port();
    const char *script = harness_write_file("backend.js", node_backend);
    const char *nlog = harness_strf("%s/node.log", harness_dir());
    char *argv[] = {"/usr/bin/node", (char *)script, harness_strf("%d", np), (char *)nlog, NULL};
    harness_spawn(argv, harness_strf("%s/node.out", harness_dir()), NULL);
    ck_assert(harness_wait_port("127.0.0.1", np, 10000));
    struct rig r;
    rig_start(&r, harness_strf("{\"address\": \"%s\"}", harness_lo(np)), "", "");
    const char *p400 = lb_page(400, "Bad Request", "Your request is malformed or ambiguous.");
    const char *smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *head_shapes[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: "
        "chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\n\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /\r\n\r\n",
    };
    size_t lens[sizeof(head_shapes) / sizeof(head_shapes[0])];
    for (size_t i = 0; i < sizeof(head_shapes) / sizeof(head_shapes[0]); i++)
        lens[i] = strlen(head_shapes[i]);
    lens[6] = strlen("GET / HTTP/1.1\r\nHost: a\r\nX-A: b") + 1 + strlen("c\r\n\r\n");
    for (size_t i = 0; i < sizeof(head_shapes) / sizeof(head_shapes[0]); i++) {
        int fd = harness_connect_ok("127.0.0.1", r.port);
        ck_assert(harness_send_all(fd, head_shapes[i], lens[i], HARNESS_WAIT_MS));
        ck_assert(harness_send_all(fd, smuggled, strlen(smuggled), HARNESS_WAIT_MS));
        char buf[4096];
        ssize_t n = harness_read_eof(fd, buf, sizeof(buf) - 1, HARNESS_WAIT_MS);
        close(fd);
        ck_assert_int_ge(n, 0);
        buf[n] = '\0';
        ck_assert_msg(strcmp(buf, p400) == 0, "shape %zu: got '%s'", i, buf);
    }
    /* Bodies: the head is fine and goes on; the body is not. */
    const char *body_shapes[] = {
        "POST /b1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST /b2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        const char *got = exchange(r.port, harness_strf("%s%s", body_shapes[i], smuggled));
        ck_assert_msg(strcmp(got, p400) == 0, "body shape %zu: got '%s'", i, got);
    }
    /* A good request after them all still works, and is the only one Node
     * answered. */
    const char *ok = exchange(r.port, "GET /good HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    ck_assert_msg(strstr(ok, "HTTP/1.1 200 OK\r\n") == ok, "got '%s'", ok);
    const char *seen = harness_read_file(nlog);
    ck_assert_ptr_null(strstr(seen, "/smuggled"));
    ck_assert_ptr_nonnull(strstr(seen, "GET /good\n"));
    harness_lb_stop(&r.lb);
}
END_TEST

/* After the backend's 101 the connection is a tunnel: bytes both ways,
 * byte for byte. */
START_TEST(upgrade_tunnel_echoes)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "", "");
    struct hc *c = hc_open(r.port);
    hc_send(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_int_eq(res.status, 101);
    ck_assert_str_eq(head_value(res.head, "Upgrade"), "echo");
    ck_assert_str_eq(head_value(res.head, "Connection"), "upgrade");
    resp_free(&res);
    static unsigned char out[1 << 20], back[1 << 20];
    harness_stream_fill(out, 0, sizeof(out));
    size_t have = c->len;
    memcpy(back, c->buf, have);
    ck_assert(harness_send_all(c->fd, out, sizeof(out), HARNESS_WAIT_MS));
    ssize_t n = harness_recv_n(c->fd, back + have, sizeof(back) - have, HARNESS_WAIT_MS);
    ck_assert_int_eq(n + (ssize_t)have, (ssize_t)sizeof(back));
    ck_assert(memcmp(out, back, sizeof(out)) == 0);
    shutdown(c->fd, SHUT_WR);
    ck_assert(hc_closed(c, HARNESS_WAIT_MS));
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* Expect: 100-continue: the backend's 100 reaches the client, which then
 * sends its body. */
START_TEST(expect_continue)
{
    int p = harness_free_port();
    harness_server("127.0.0.1", p, fn_continue, NULL);
    struct rig r;
    rig_start(&r, harness_strf("{\"address\": \"%s\"}", harness_lo(p)), "", "");
    struct hc *c = hc_open(r.port);
    hc_send(c, "POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_int_eq(res.status, 100);
    resp_free(&res);
    hc_send(c, "hello world");
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body, "11");
    resp_free(&res);
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* A keep-alive client idle across 5 reloads keeps its connection, and its
 * next request follows the new config. */
START_TEST(keep_alive_survives_reloads)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "", "");
    struct hc *c = hc_open(r.port);
    hc_send(c, get_req("/1"));
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_str_eq(head_value(res.head, "X-Backend"), "b1");
    resp_free(&res);
    int p2 = harness_free_port();
    harness_server("127.0.0.1", p2, fn_echo_req, "new");
    for (int i = 1; i <= 5; i++) {
        if (i == 5)
            harness_jset(r.cfg, "pools.0.backends",
                         harness_jparse(harness_strf("[{\"name\": \"new\", \"address\": \"%s\"}]",
                                                     harness_lo(p2))));
        harness_lb_rewrite_json(&r.lb, r.cfg);
        harness_lb_signal(&r.lb, SIGHUP);
        ck_assert(harness_lb_log_wait(&r.lb, "reload", i, HARNESS_WAIT_MS));
    }
    hc_send(c, get_req("/2"));
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_str_eq(head_value(res.head, "X-Backend"), "new");
    resp_free(&res);
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* The access log: one line per request, the target escaped. */
START_TEST(access_log_line)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "", "");
    struct hc *c = hc_open(r.port);
    int cport = harness_sock_port(c->fd);
    hc_send(c, "GET /a%22b/\xc3\xa9?q=\"x\" HTTP/1.1\r\nHost: a\r\n\r\n");
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_int_eq(res.status, 400); /* a raw '"' and non-ASCII are not a valid target */
    resp_free(&res);
    hc_close(c);
    c = hc_open(r.port);
    cport = harness_sock_port(c->fd);
    hc_send(c, get_req("/a%22b?q=1"));
    ck_assert(hc_response(c, &res, false, true));
    resp_free(&res);
    hc_close(c);
    const char *want = harness_strf("request client=127.0.0.1:%d listener=web pool=app backend=b1 "
                                    "method=GET path=\"/a%%22b?q=1\" status=200 bytes_from_client=",
                                    cport);
    ck_assert(harness_lb_log_wait(&r.lb, want, 1, HARNESS_WAIT_MS));
    harness_lb_stop(&r.lb);
}
END_TEST

/* A reused connection the backend closed as the request came: an
 * idempotent request without a body goes again on a fresh connection (the
 * client sees nothing); a POST does not (502). */
START_TEST(reused_connection_closed_is_retried_once)
{
    int p = harness_free_port();
    harness_server("127.0.0.1", p, fn_close_second, NULL);
    struct rig r;
    rig_start(&r, harness_strf("{\"address\": \"%s\"}", harness_lo(p)), "", "");
    struct hc *c = hc_open(r.port);
    for (int i = 0; i < 3; i++) {
        hc_send(c, get_req("/"));
        struct resp res;
        ck_assert(hc_response(c, &res, false, true));
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, "first\n");
        resp_free(&res);
    }
    ck_assert_int_eq(api_int(r.aport, "/api/v1/pools", "pools.0.backends.0.reused"), 2);
    hc_send(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx");
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_int_eq(res.status, 502);
    resp_free(&res);
    ck_assert(hc_closed(c, HARNESS_WAIT_MS));
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

/* PROXY protocol in http mode: the address a PROXY header names is the
 * client in X-Forwarded-For. */
START_TEST(accept_proxy_in_http_mode)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "\"accept_proxy\": true", "");
    struct hc *c = hc_open(r.port);
    hc_send(c, "PROXY TCP4 192.0.2.7 192.0.2.1 5555 80\r\n");
    hc_send(c, get_req("/"));
    struct resp res;
    ck_assert(hc_response(c, &res, false, true));
    ck_assert_ptr_nonnull(strstr(res.body, "\r\nX-Forwarded-For: 192.0.2.7\r\n"));
    resp_free(&res);
    hc_close(c);
    ck_assert(harness_lb_log_wait(&r.lb, "request client=192.0.2.7:5555 ", 1, HARNESS_WAIT_MS));
    harness_lb_stop(&r.lb);
}
END_TEST

/* send_proxy in http mode: each backend connection starts with the
 * client's PROXY header, so none is shared: every request gets its own. */
START_TEST(send_proxy_in_http_mode)
{
    struct rig r;
    rig_start(&r, echo_backends(1), "", "\"send_proxy\": \"v1\", ");
    struct hc *c = hc_open(r.port);
    int cport = harness_sock_port(c->fd);
    int last = -1;
    for (int i = 0; i < 2; i++) {
        hc_send(c, get_req("/x"));
        struct resp res;
        ck_assert(hc_response(c, &res, false, true));
        const char *want = harness_strf(
            "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nGET /x HTTP/1.1\r\n", cport, r.port);
        ck_assert_msg(strncmp(res.body, want, strlen(want)) == 0, "backend saw: %s", res.body);
        int p = atoi(head_value(res.head, "X-Peer-Port"));
        ck_assert_int_ne(p, last);
        last = p;
        resp_free(&res);
    }
    hc_close(c);
    harness_lb_stop(&r.lb);
}
END_TEST

static Suite *http_mode_suite(void)
{
    Suite *s = suite_create("http_mode");
    TCase *tc = harness_tcase("http_mode");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, thirty_requests_one_connection_three_backends);
    tcase_add_test(tc, no_reuse_gives_a_connection_per_request);
    tcase_add_test(tc, forwarded_and_hop_by_hop_headers);
    tcase_add_test(tc, large_bodies_byte_exact);
    tcase_add_test(tc, pipelined_requests_in_order);
    tcase_add_test(tc, lb_error_answers);
    tcase_add_test(tc, idle_keep_alive_closes_silently);
    tcase_add_test(tc, smuggling_shapes_refused);
    tcase_add_test(tc, upgrade_tunnel_echoes);
    tcase_add_test(tc, expect_continue);
    tcase_add_test(tc, keep_alive_survives_reloads);
    tcase_add_test(tc, access_log_line);
    tcase_add_test(tc, reused_connection_closed_is_retried_once);
    tcase_add_test(tc, accept_proxy_in_http_mode);
    tcase_add_test(tc, send_proxy_in_http_mode);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(http_mode_suite)
