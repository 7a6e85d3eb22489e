/* Integration: SNI passthrough through a real lb. A tcp listener with
 * "sni_routes" reads the client's TLS ClientHello without decrypting it
 * and sends the untouched bytes to a backend of the pool its server name
 * routes to: openssl s_client sees the certificate of the right openssl
 * s_server. Behind routes whose backends answer with their pool's tag and
 * then echo, the test sees which pool got a client and every byte it sent:
 * exact names beat wildcards, a wildcard takes one more label, a hello in
 * 1-byte pieces (a real one, captured from s_client) or after a PROXY
 * header routes alike, and what is no ClientHello (plain bytes, a hello
 * longer than TLS_HELLO_MAX) goes to the listener's own pool byte for
 * byte. A stalled hello is cut at request_timeout_ms while others are
 * served, and a reload's new routes apply to the hellos read after it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "lb/proto/tls_hello.h"
#include "tests/harness.h"
#include "tests/test.h"

/* Debian's openssl (harness_spawn execs a path, not a name). */
#define OPENSSL "/usr/bin/openssl"

/* --- ClientHellos --- */

static uint8_t *put16(uint8_t *p, size_t v)
{
    *p++ = (uint8_t)(v >> 8);
    *p++ = (uint8_t)v;
    return p;
}

/* A ClientHello message (its 4-byte header included) at m: one cipher
 * suite, the null compression, and a server_name extension for name
 * (NULL: no extensions at all); pad > 0 adds a padding extension of that
 * many bytes. Its length. */
static size_t hello_msg(uint8_t *m, const char *name, size_t pad)
{
    uint8_t *p = m + 4;
    p = put16(p, 0x0303);
    memset(p, 0x5a, 32);
    p += 32;
    *p++ = 0; /* no session id */
    p = put16(p, 2);
    p = put16(p, 0x1301);
    *p++ = 1;
    *p++ = 0;
    if (name || pad) {
        size_t n = name ? strlen(name) : 0;
        p = put16(p, (name ? n + 9 : 0) + (pad ? pad + 4 : 0));
        if (name) {
            p = put16(p, 0); /* server_name */
            p = put16(p, n + 5);
            p = put16(p, n + 3);
            *p++ = 0; /* host_name */
            p = put16(p, n);
            memcpy(p, name, n);
            p += n;
        }
        if (pad) {
            p = put16(p, 21); /* padding */
            p = put16(p, pad);
            memset(p, 0, pad);
            p += pad;
        }
    }
    size_t body = (size_t)(p - m) - 4;
    m[0] = 1;
    m[1] = (uint8_t)(body >> 16);
    m[2] = (uint8_t)(body >> 8);
    m[3] = (uint8_t)body;
    return (size_t)(p - m);
}

/* The message m[0..n) in handshake records of at most frag bytes each, at
 * out; their length. */
static size_t records(uint8_t *out, const uint8_t *m, size_t n, size_t frag)
{
    uint8_t *p = out;
    for (size_t off = 0; off < n; off += frag) {
        size_t k = n - off < frag ? n - off : frag;
        *p++ = 22;
        p = put16(p, 0x0301);
        p = put16(p, k);
        memcpy(p, m + off, k);
        p += k;
    }
    return (size_t)(p - out);
}

/* A ClientHello naming name (NULL: none) in one record, at out (512
 * bytes); its length. */
static size_t hello(uint8_t *out, const char *name)
{
    uint8_t m[512];
    return records(out, m, hello_msg(m, name, 0), sizeof(m));
}

/* A real ClientHello: what `openssl s_client -servername name` sends to a
 * socket of the test, read until tls_hello_parse() calls it complete.
 * Its length; the bytes at out (TLS_HELLO_MAX). */
static size_t capture_hello(uint8_t *out, const char *name)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(ls, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(ls, 1), 0);
    int port = harness_sock_port(ls);
    char *const argv[] = {OPENSSL,       "s_client",   "-connect", (char *)harness_lo(port),
                          "-servername", (char *)name, NULL};
    pid_t pid = harness_spawn(argv, harness_strf("%s/capture.log", harness_dir()), NULL);
    struct pollfd pfd = {.fd = ls, .events = POLLIN};
    ck_assert_msg(poll(&pfd, 1, HARNESS_WAIT_MS) == 1, "s_client did not connect");
    int fd = accept(ls, NULL, NULL);
    ck_assert_int_ge(fd, 0);
    close(ls);
    size_t len = 0;
    struct tls_hello h;
    enum tls_hello_result r = TLS_HELLO_NEED_MORE;
    while (r == TLS_HELLO_NEED_MORE) {
        ck_assert_uint_lt(len, TLS_HELLO_MAX);
        ssize_t n = harness_recv_n(fd, out + len, 1, HARNESS_WAIT_MS);
        ck_assert_int_eq(n, 1);
        len++;
        r = tls_hello_parse(out, len, &h, NULL);
    }
    ck_assert_int_eq(r, TLS_HELLO_OK);
    ck_assert_str_eq(h.server_name, name);
    close(fd);
    kill(pid, SIGTERM);
    harness_wait_exit(pid, HARNESS_WAIT_MS);
    return len;
}

/* --- backends and lb --- */

/* Writes its tag (arg) and a newline, then echoes until EOF: the client
 * sees which pool served it, then every byte it sent. */
static void fn_tag_echo(int fd, void *arg)
{
    const char *line = harness_strf("%s\n", (const char *)arg);
    if (!harness_write_full(fd, line, strlen(line)))
        return;
    char buf[16384];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (!harness_write_full(fd, buf, (size_t)n))
            return;
    shutdown(fd, SHUT_WR);
}

/* lb with listener "web" on a free port (and the admin API), its pool
 * "app" and pools "pa", "pb", "pw", each with one fn_tag_echo backend
 * tagged "d", "a", "b", "w"; listener_keys is the listener's extra keys as
 * JSON text ("\"sni_routes\": [...]"). Logs at debug. */
struct rig {
    struct harness_lb lb;
    json_t *cfg;
    int port, aport;
};

static json_t *tag_pool(const char *name, const char *tag)
{
    int port = harness_free_port();
    harness_server("127.0.0.1", port, fn_tag_echo, (void *)tag);
    return harness_pool_json(name, NULL,
                             harness_jarray(harness_backend_json(harness_lo(port), tag), NULL));
}

static void set_listener_keys(json_t *cfg, const char *listener_keys)
{
    json_t *extra = harness_jparse(harness_strf("{%s}", listener_keys));
    const char *key;
    json_t *v;
    json_object_foreach(extra, key, v)
    {
        harness_jset(cfg, harness_strf("listeners.0.%s", key), json_incref(v));
    }
    json_decref(extra);
}

static void rig_start(struct rig *r, const char *listener_keys)
{
    int dport = harness_free_port();
    harness_server("127.0.0.1", dport, fn_tag_echo, "d");
    r->port = harness_free_port();
    r->aport = harness_free_port();
    r->cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(r->port),
        .backends = harness_strf("{\"address\": \"%s\"}", harness_lo(dport))});
    harness_jset(r->cfg, "pools.1", tag_pool("pa", "a"));
    harness_jset(r->cfg, "pools.2", tag_pool("pb", "b"));
    harness_jset(r->cfg, "pools.3", tag_pool("pw", "w"));
    set_listener_keys(r->cfg, listener_keys);
    harness_jset(r->cfg, "admin.listen", json_string(harness_lo(r->aport)));
    harness_jset(r->cfg, "log.level", json_string("debug")); /* each decision's line */
    harness_lb_start_json(&r->lb, r->cfg, r->port);
}

/* Sends what[0..len) on fd, in one piece or one byte at a time with a
 * millisecond between. */
static void send_bytes(int fd, const void *what, size_t len, bool bytewise)
{
    if (!bytewise) {
        ck_assert(harness_send_all(fd, what, len, HARNESS_WAIT_MS));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (size_t i = 0; i < len; i++) {
        ck_assert(harness_send_all(fd, (const char *)what + i, 1, HARNESS_WAIT_MS));
        harness_sleep_ms(1);
    }
}

/* Half-closes fd, reads everything back until EOF and closes it; fails
 * unless it is tag, a newline and what[0..len), byte for byte. */
static void expect_back(int fd, const void *what, size_t len, const char *tag)
{
    shutdown(fd, SHUT_WR);
    size_t tlen = strlen(tag) + 1, cap = tlen + len + 2;
    char *got = malloc(cap);
    ck_assert_ptr_nonnull(got);
    ssize_t n = harness_read_eof(fd, got, cap, HARNESS_WAIT_MS);
    close(fd);
    bool ok = n == (ssize_t)(tlen + len) && memcmp(got, tag, tlen - 1) == 0 &&
              got[tlen - 1] == '\n' && memcmp(got + tlen, what, len) == 0;
    ck_assert_msg(ok, "want tag %s and %zu bytes back, got %zd bytes starting '%.*s'", tag, len, n,
                  n > 0 ? (int)(n < 16 ? n : 16) : 0, got);
    free(got);
}

/* A new client that sends what and, before it ends its stream, gets it
 * back after tag: lb decided without waiting for more. */
static void expect_tag_open(int port, const void *what, size_t len, const char *tag)
{
    int fd = harness_connect_ok("127.0.0.1", port);
    send_bytes(fd, what, len, false);
    size_t tlen = strlen(tag) + 1;
    char got[128];
    ck_assert_uint_le(tlen + len, sizeof(got));
    ck_assert_int_eq(harness_recv_n(fd, got, tlen + len, HARNESS_WAIT_MS), (ssize_t)(tlen + len));
    ck_assert(memcmp(got, tag, tlen - 1) == 0 && got[tlen - 1] == '\n');
    ck_assert(memcmp(got + tlen, what, len) == 0);
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(harness_read_eof(fd, got, sizeof(got), HARNESS_WAIT_MS), 0);
    close(fd);
}

/* A new client that sends what and expects it back after tag. */
static void expect_tag(int port, const void *what, size_t len, bool bytewise, const char *tag)
{
    int fd = harness_connect_ok("127.0.0.1", port);
    send_bytes(fd, what, len, bytewise);
    expect_back(fd, what, len, tag);
}

/* The listener's sni_routed and sni_default in the admin API. */
static void expect_counts(const struct rig *r, long long routed, long long dflt)
{
    struct harness_reply rep = harness_call(r->aport, "GET", "/api/v1/listeners", NULL, NULL);
    ck_assert_int_eq(rep.status, 200);
    ck_assert_int_eq(harness_jint(rep.json, "listeners.0.sni_routed"), routed);
    ck_assert_int_eq(harness_jint(rep.json, "listeners.0.sni_default"), dflt);
}

/* --- real TLS peers --- */

/* openssl s_server with certificate NAME (subject CN cn) on a free port;
 * the port. */
static int tls_backend(struct harness_pki *pki, const char *name, const char *cn)
{
    const char *pem =
        harness_pki_issue(pki, name, &(struct harness_cert_opts){.cn = cn, .sans = cn});
    int port = harness_free_port();
    char *const argv[] = {OPENSSL,   "s_server",
                          "-cert",   (char *)pem,
                          "-key",    (char *)harness_pki_key(pem),
                          "-accept", (char *)harness_lo(port),
                          "-www",    NULL};
    harness_spawn(argv, harness_strf("%s/s_server-%s.log", harness_dir(), name), NULL);
    ck_assert_msg(harness_wait_listening(port, HARNESS_WAIT_MS), "s_server %s did not listen",
                  name);
    return port;
}

/* The subject of the certificate `openssl s_client` gets through port
 * with server name sni (NULL: none), as it prints it ("CN = a.example"). */
static const char *subject_via(int port, const char *sni)
{
    char *const argv[] = {OPENSSL,
                          "s_client",
                          "-connect",
                          (char *)harness_lo(port),
                          sni ? "-servername" : "-noservername",
                          (char *)sni,
                          NULL};
    const char *out, *err;
    int rc = harness_run(argv, &out, &err, HARNESS_WAIT_MS);
    const char *at = strstr(out, "\nsubject=");
    ck_assert_msg(rc == 0 && at, "s_client (sni %s) exited %d:\n%s\n%s", sni ? sni : "none", rc,
                  out, err);
    at += strlen("\nsubject=");
    return harness_strf("%.*s", (int)strcspn(at, "\n"), at);
}

/* s_client with server name a.example and b.example gets the certificate
 * of that pool's s_server; an unknown name and no name at all get the
 * default pool's. Counted, named in the session log, and in /metrics. */
START_TEST(openssl_sees_the_routed_certificate)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    int pa = tls_backend(&pki, "a", "a.example");
    int pb = tls_backend(&pki, "b", "b.example");
    int pd = tls_backend(&pki, "d", "default.example");
    int port = harness_free_port(), aport = harness_free_port();
    json_t *cfg = harness_cfg(
        &(struct harness_conf){.listen = harness_lo(port),
                               .backends = harness_strf("{\"address\": \"%s\"}", harness_lo(pd))});
    harness_jset(cfg, "pools.1",
                 harness_pool_json(
                     "pa", NULL, harness_jarray(harness_backend_json(harness_lo(pa), "a"), NULL)));
    harness_jset(cfg, "pools.2",
                 harness_pool_json(
                     "pb", NULL, harness_jarray(harness_backend_json(harness_lo(pb), "b"), NULL)));
    set_listener_keys(cfg, "\"sni_routes\": [{\"server_name\": \"a.example\", \"pool\": \"pa\"}, "
                           "{\"server_name\": \"B.Example\", \"pool\": \"pb\"}]");
    harness_jset(cfg, "admin.listen", json_string(harness_lo(aport)));
    struct rig r = {.cfg = cfg, .port = port, .aport = aport};
    harness_lb_start_json(&r.lb, cfg, port);

    ck_assert_str_eq(subject_via(port, "a.example"), "CN = a.example");
    ck_assert_str_eq(subject_via(port, "b.example"), "CN = b.example");
    ck_assert_str_eq(subject_via(port, "c.example"), "CN = default.example");
    ck_assert_str_eq(subject_via(port, NULL), "CN = default.example");
    ck_assert_str_eq(subject_via(port, "a.example"), "CN = a.example");
    expect_counts(&r, 3, 2);
    ck_assert(harness_log_wait(r.lb.log, "session end ", 5, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(r.lb.log, "listener=web pool=pa backend=a "), 2);
    ck_assert_int_eq(harness_log_count(r.lb.log, "listener=web pool=pb backend=b "), 1);
    ck_assert_int_eq(harness_log_count(r.lb.log, "listener=web pool=app "), 2);
    struct harness_reply m = harness_call(aport, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(m.status, 200);
    ck_assert(strstr(m.body, "\nlb_listener_sni_routed_total{listener=\"web\"} 3\n"));
    ck_assert(strstr(m.body, "\nlb_listener_sni_default_total{listener=\"web\"} 2\n"));
    harness_lb_stop(&r.lb);
}
END_TEST

/* --- routing by name --- */

#define ROUTES_AW                                                                                  \
    "\"sni_routes\": [{\"server_name\": \"*.w.example\", \"pool\": \"pw\"}, "                      \
    "{\"server_name\": \"x.w.example\", \"pool\": \"pa\"}, "                                       \
    "{\"server_name\": \"b.example\", \"pool\": \"pb\"}]"

/* An exact name beats the wildcard that also matches it; the wildcard
 * takes exactly one more label, whatever the case the client wrote; the
 * rest, and a hello without a name, go to the default pool — each with
 * its bytes back exactly. */
START_TEST(exact_wildcard_and_default)
{
    struct rig r;
    rig_start(&r, ROUTES_AW);
    static const struct {
        const char *name, *tag;
    } cases[] = {
        {"x.w.example", "a"},  {"y.w.example", "w"}, {"Y.W.Example", "w"},
        {"b.example", "b"},    {"w.example", "d"},   {"a.b.w.example", "d"},
        {"x.w.example.", "d"}, {"c.example", "d"},   {NULL, "d"},
    };
    uint8_t buf[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_tag(r.port, buf, hello(buf, cases[i].name), false, cases[i].tag);
    expect_counts(&r, 4, 5);
    ck_assert_int_eq(harness_log_count(r.lb.log, "pool=pw backend=w "), 2);
    ck_assert_int_eq(
        harness_log_count(r.lb.log, ": sni: server name \"x.w.example\", route to pool pa"), 1);
    ck_assert_int_eq(
        harness_log_count(r.lb.log, ": sni: server name \"y.w.example\", route to pool pw"), 2);
    ck_assert_int_eq(harness_log_count(r.lb.log,
                                       ": sni: server name \"a.b.w.example\", no route, default "
                                       "pool app"),
                     1);
    ck_assert_int_eq(harness_log_count(r.lb.log, ": sni: no server name, default pool app"), 1);
    harness_lb_stop(&r.lb);
}
END_TEST

/* A real ClientHello (s_client's) sent one byte at a time: lb connects no
 * backend before it is complete (nothing comes back for half of it), then
 * routes it by its name; its bytes arrive whole. */
START_TEST(hello_in_one_byte_pieces)
{
    uint8_t h[TLS_HELLO_MAX];
    size_t len = capture_hello(h, "x.w.example");
    struct rig r;
    rig_start(&r, ROUTES_AW);
    int fd = harness_connect_ok("127.0.0.1", r.port);
    send_bytes(fd, h, len / 2, true);
    ck_assert_msg(!harness_readable(fd, 200), "lb connected before the hello was complete");
    send_bytes(fd, h + len / 2, len - len / 2, true);
    expect_back(fd, h, len, "a");
    ck_assert(harness_log_wait(r.lb.log, "pool=pa backend=a ", 1, HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(r.lb.log, harness_strf("bytes_from_client=%zu ", len)));
    expect_counts(&r, 1, 0);
    harness_lb_stop(&r.lb);
}
END_TEST

/* With accept_proxy the PROXY header comes first (taken off, its client
 * logged), then the ClientHello, which routes as without; the two may
 * share a packet or come in pieces. */
START_TEST(proxy_header_then_hello)
{
    struct rig r;
    rig_start(&r, "\"accept_proxy\": true, " ROUTES_AW);
    const char *hdr = "PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\n";
    uint8_t h[512], both[600];
    size_t hl = hello(h, "b.example");
    size_t pl = strlen(hdr);
    memcpy(both, hdr, pl);
    memcpy(both + pl, h, hl);
    int fd = harness_connect_ok("127.0.0.1", r.port);
    send_bytes(fd, both, pl + hl, false);
    expect_back(fd, h, hl, "b");
    ck_assert(harness_log_wait(r.lb.log, "client=192.0.2.7:5555 listener=web pool=pb ", 1,
                               HARNESS_WAIT_MS));

    fd = harness_connect_ok("127.0.0.1", r.port);
    send_bytes(fd, both, pl - 3, false);
    harness_sleep_ms(50);
    send_bytes(fd, both + pl - 3, 10, false);
    harness_sleep_ms(50);
    send_bytes(fd, both + pl + 7, hl - 7, false);
    expect_back(fd, h, hl, "b");
    expect_counts(&r, 2, 0);
    harness_lb_stop(&r.lb);
}
END_TEST

/* What is no ClientHello goes to the default pool, every byte: plain
 * text, 100 kB of binary, a TLS record that is no handshake, and a
 * ClientHello longer than TLS_HELLO_MAX (its name, which would route, is
 * never looked at), followed by more bytes. */
START_TEST(no_hello_goes_to_the_default_pool)
{
    struct rig r;
    rig_start(&r, ROUTES_AW);
    const char *text = "GET / HTTP/1.1\r\nHost: b.example\r\n\r\n";
    expect_tag_open(r.port, text, strlen(text), "d");

    size_t big = 100 * 1000;
    unsigned char *stream = malloc(big);
    ck_assert_ptr_nonnull(stream);
    harness_stream_fill(stream, 0, big);
    stream[0] = 0x42; /* no handshake record */
    expect_tag(r.port, stream, big, false, "d");

    static const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 40};
    expect_tag_open(r.port, alert, sizeof(alert), "d");

    /* 16370 bytes of message (whose name would route to pb) in three
     * records: 16389 bytes in all, so it cannot end within TLS_HELLO_MAX. */
    uint8_t *m = malloc(20000), *recs = malloc(20100);
    ck_assert(m && recs);
    size_t ml = hello_msg(m, "b.example", 16370 - 65); /* 65: the rest of the body */
    ck_assert_uint_eq(ml, 16374);
    size_t rl = records(recs, m, ml, 6000);
    ck_assert_uint_eq(rl, 16389);
    ck_assert_int_eq(tls_hello_parse(recs, rl, &(struct tls_hello){0}, NULL), TLS_HELLO_INVALID);
    memcpy(stream, recs, rl); /* then the rest of the stream */
    expect_tag(r.port, stream, 40000, false, "d");
    expect_counts(&r, 0, 4);
    ck_assert_int_eq(
        harness_log_count(r.lb.log, ": sni: not a TLS handshake record, default pool app"), 3);
    ck_assert_int_eq(harness_log_count(r.lb.log, ": sni: client hello too long, default pool app"),
                     1);
    free(m);
    free(recs);
    free(stream);
    harness_lb_stop(&r.lb);
}
END_TEST

/* A client that sends half a ClientHello and stalls is closed at
 * request_timeout_ms ("request timeout", counted neither way), and no
 * backend hears of it; meanwhile another client is served. */
START_TEST(stalled_hello_times_out)
{
    struct rig r;
    rig_start(&r, "\"request_timeout_ms\": 1000, " ROUTES_AW);
    uint8_t h[512];
    size_t hl = hello(h, "b.example");
    int stalled = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(stalled, h, hl / 2, HARNESS_WAIT_MS));
    expect_tag(r.port, h, hl, false, "b");
    ck_assert_msg(!harness_readable(stalled, 0), "the stalled client was answered or closed early");
    ck_assert(harness_wait_closed(stalled, HARNESS_WAIT_MS) >= 0);
    close(stalled);
    ck_assert(harness_log_wait(r.lb.log, "reason=\"request timeout\"", 1, HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(
        r.lb.log,
        harness_strf("pool=app backend=- bytes_from_client=%zu bytes_from_backend=0 ", hl / 2)));
    ck_assert(
        harness_log_contains(r.lb.log, ": sni: no complete ClientHello within request_timeout_ms"));
    ck_assert_int_eq(harness_log_count(r.lb.log, "session end "), 2);
    expect_counts(&r, 1, 0);
    /* lb stops cleanly with a hello still half in (no leak under ASan). */
    stalled = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(stalled, h, hl / 2, HARNESS_WAIT_MS));
    ck_assert(harness_log_wait(r.lb.log, "reason=\"request timeout\"", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
    close(stalled);
}
END_TEST

/* A reload that points b.example at another pool: a session routed before
 * goes on where it is, a new client goes to the new pool, and so does one
 * whose hello was half in at the reload (routes apply when a hello is
 * complete). */
START_TEST(reload_changes_a_route)
{
    struct rig r;
    rig_start(&r, ROUTES_AW);
    uint8_t h[512];
    size_t hl = hello(h, "b.example");
    expect_tag(r.port, h, hl, false, "b");

    int kept = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(kept, h, hl, HARNESS_WAIT_MS));
    char got[600];
    ck_assert_int_eq(harness_recv_n(kept, got, 2 + hl, HARNESS_WAIT_MS), (ssize_t)(2 + hl));
    ck_assert(memcmp(got, "b\n", 2) == 0);
    int half = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(half, h, hl / 2, HARNESS_WAIT_MS));
    ck_assert(harness_log_wait(r.lb.log, "session end ", 1, HARNESS_WAIT_MS));

    harness_jset(r.cfg, "listeners.0.sni_routes.2.pool", json_string("pw"));
    harness_lb_rewrite_json(&r.lb, r.cfg);
    harness_lb_signal(&r.lb, SIGHUP);
    ck_assert(harness_log_wait(r.lb.log, "reload ok", 1, HARNESS_WAIT_MS));

    expect_tag(r.port, h, hl, false, "w");
    ck_assert(harness_send_all(half, h + hl / 2, hl - hl / 2, HARNESS_WAIT_MS));
    shutdown(half, SHUT_WR);
    ssize_t n = harness_read_eof(half, got, sizeof(got), HARNESS_WAIT_MS);
    close(half);
    ck_assert_int_eq(n, (ssize_t)(2 + hl));
    ck_assert(memcmp(got, "w\n", 2) == 0 && memcmp(got + 2, h, hl) == 0);
    harness_echo_roundtrip(kept, "still on pb");
    close(kept);
    ck_assert(harness_log_wait(r.lb.log, "session end ", 4, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(r.lb.log, "pool=pb backend=b "), 2);
    ck_assert_int_eq(harness_log_count(r.lb.log, "pool=pw backend=w "), 2);
    expect_counts(&r, 4, 0);
    harness_lb_stop(&r.lb);
}
END_TEST

/* A routed session whose connect is under way when a reload replaces its
 * pool retries in the new generation of that pool (by name), not in the
 * listener's: b.example's only backend holds its accept queue, so lb's
 * connect hangs; the reload gives pb a tag-echo backend, and after the
 * connect timeout the client lands there. */
START_TEST(reload_while_connecting_follows_the_routed_pool)
{
    struct rig r;
    rig_start(&r, ROUTES_AW);
    int held = harness_listen_held("127.0.0.1", 0), hport = harness_sock_port(held);
    int first = harness_connect("127.0.0.1", hport, HARNESS_WAIT_MS); /* fills the queue */
    ck_assert_int_ge(first, 0);
    harness_jset(r.cfg, "pools.2.connect_timeout_ms", json_integer(2000));
    harness_jset(r.cfg, "pools.2.retries", json_integer(1));
    harness_jset(r.cfg, "pools.2.backends.0", harness_backend_json(harness_lo(hport), "held"));
    harness_lb_rewrite_json(&r.lb, r.cfg);
    harness_lb_signal(&r.lb, SIGHUP);
    ck_assert(harness_log_wait(r.lb.log, "reload ok", 1, HARNESS_WAIT_MS));

    uint8_t h[512];
    size_t hl = hello(h, "b.example");
    int fd = harness_connect_ok("127.0.0.1", r.port);
    send_bytes(fd, h, hl, false);
    ck_assert(harness_log_wait(r.lb.log, "sni: server name \"b.example\", route to pool pb", 1,
                               HARNESS_WAIT_MS));
    int b2 = harness_free_port();
    harness_server("127.0.0.1", b2, fn_tag_echo, "b2");
    harness_jset(r.cfg, "pools.2.backends.0", harness_backend_json(harness_lo(b2), "b2"));
    harness_lb_rewrite_json(&r.lb, r.cfg);
    harness_lb_signal(&r.lb, SIGHUP);
    ck_assert(harness_log_wait(r.lb.log, "reload ok", 2, HARNESS_WAIT_MS));
    expect_back(fd, h, hl, "b2");
    ck_assert(harness_log_contains(r.lb.log,
                                   "pool pb backend held connect failed: timed out after 2000 ms"));
    ck_assert(harness_log_wait(r.lb.log, "pool=pb backend=b2 ", 1, HARNESS_WAIT_MS));
    expect_counts(&r, 1, 0);
    close(first);
    harness_lb_stop(&r.lb);
}
END_TEST

static Suite *sni_route_suite(void)
{
    Suite *s = suite_create("sni_route");
    TCase *tc = harness_tcase("sni_route");
    tcase_add_test(tc, openssl_sees_the_routed_certificate);
    tcase_add_test(tc, exact_wildcard_and_default);
    tcase_add_test(tc, hello_in_one_byte_pieces);
    tcase_add_test(tc, proxy_header_then_hello);
    tcase_add_test(tc, no_hello_goes_to_the_default_pool);
    tcase_add_test(tc, stalled_hello_times_out);
    tcase_add_test(tc, reload_changes_a_route);
    tcase_add_test(tc, reload_while_connecting_follows_the_routed_pool);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(sni_route_suite)
