/* Integration: TLS from lb to its backends (a pool's "tls"), through a
 * real lb against real TLS servers on loopback, with certificates made at
 * run time (tests/harness/pki.h). tcp mode: re-encryption with the
 * certificate and server_name verified, 1 MiB byte-exact both ways (with
 * splice on: no byte may be spliced); a backend whose certificate names
 * another host, one that speaks no TLS and one that never answers the
 * ClientHello are failed tries (logged with the reason, counted, the next
 * backend serves the client; alone, the client's session ends "connect
 * failed"); verify false accepts a self-signed backend that verify true
 * refuses; a client certificate for a backend that requires one; a
 * send_proxy pool's PROXY header in plain text before the ClientHello.
 * http mode: keep-alive requests over one reused TLS backend connection,
 * and an idle one the backend closes is dropped for a fresh one. The tcp
 * backends are harness_server functions over OpenSSL (blocking); the http
 * one is Node's https module (tests/http/https-backend.js). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/test.h"
#include "tests/harness.h"

#define ECHO_TOTAL (1u << 20)
#define ECHO_CHUNK (64 * 1024)

/* What fn_tls_echo serves with (copied into its process). */
struct tls_backend {
    char cert[HARNESS_PKI_PATH], key[HARNESS_PKI_PATH];
    char client_ca[HARNESS_PKI_PATH]; /* "": no client certificate asked for */
    bool proxy;                       /* a PROXY v1 line comes first, in plain text */
};

/* A TLS echo server on one connection: with proxy, reads the PROXY line
 * byte by byte first (so the ClientHello stays in the socket) and sends it
 * back as "proxy: LINE\n" once the handshake is done; with client_ca,
 * requires a client certificate from that CA and sends "client cn=CN\n".
 * Then echoes until the peer's close_notify or FIN, and ends with its own. */
static void fn_tls_echo(int fd, void *arg)
{
    const struct tls_backend *tb = arg;
    char line[256];
    size_t n = 0;
    if (tb->proxy) {
        while (n + 1 < sizeof(line)) {
            if (recv(fd, line + n, 1, 0) != 1)
                return;
            n++;
            if (n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n')
                break;
        }
        line[n >= 2 ? n - 2 : 0] = '\0';
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, tb->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, tb->key, SSL_FILETYPE_PEM) != 1)
        return;
    if (tb->client_ca[0]) {
        if (SSL_CTX_load_verify_locations(ctx, tb->client_ca, NULL) != 1)
            return;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1)
        return;
    char hello[512];
    int hlen = 0;
    if (tb->proxy)
        hlen += snprintf(hello + hlen, sizeof(hello) - (size_t)hlen, "proxy: %s\n", line);
    if (tb->client_ca[0]) {
        X509 *peer = SSL_get1_peer_certificate(ssl);
        char cn[128] = "-";
        if (peer)
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
        X509_free(peer);
        hlen += snprintf(hello + hlen, sizeof(hello) - (size_t)hlen, "client cn=%s\n", cn);
    }
    if (hlen > 0 && SSL_write(ssl, hello, hlen) != hlen)
        return;
    static char buf[ECHO_CHUNK];
    for (;;) {
        int r = SSL_read(ssl, buf, sizeof(buf));
        if (r <= 0)
            break;
        if (SSL_write(ssl, buf, r) != r)
            return;
    }
    SSL_shutdown(ssl);
    shutdown(fd, SHUT_WR);
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
}

static struct tls_backend backend_files(const char *pem)
{
    struct tls_backend tb = {0};
    snprintf(tb.cert, sizeof(tb.cert), "%s", pem);
    snprintf(tb.key, sizeof(tb.key), "%s", harness_pki_key(pem));
    return tb;
}

/* A TLS echo backend with the certificate pem on a fresh port: its port. */
static int tls_echo_start(const struct tls_backend *tb)
{
    int port = harness_free_port();
    harness_server("127.0.0.1", port, fn_tls_echo, (void *)tb);
    return port;
}

/* The pool "tls" object: verify on, the pki's CA, server_name. */
static json_t *pool_tls(const struct harness_pki *pki, const char *server_name)
{
    json_t *t = json_object();
    json_object_set_new(t, "verify", json_true());
    json_object_set_new(t, "ca", json_string(pki->ca_cert));
    if (server_name)
        json_object_set_new(t, "server_name", json_string(server_name));
    return t;
}

/* lb in tcp mode to the backends (name, port pairs, name NULL ends them)
 * with pool "tls" tls (stolen), an admin API on *aport; lb's port. */
static int lb_start_tls(struct harness_lb *lb, json_t *tls, unsigned retries, int *aport, ...)
{
    int lport = harness_free_port();
    *aport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport), .retries = retries, .connect_timeout_ms = 1000});
    harness_jset(cfg, "pools.0.tls", tls);
    harness_jset(cfg, "admin.listen", json_string(harness_lo(*aport)));
    va_list ap;
    va_start(ap, aport);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        int port = va_arg(ap, int);
        harness_jappend(cfg, "pools.0.backends", harness_backend_json(harness_lo(port), name));
    }
    va_end(ap);
    harness_lb_start_json(lb, cfg, lport);
    return lport;
}

static long long backend_stat(int aport, const char *backend, const char *field)
{
    struct harness_reply r = harness_call(
        aport, "GET", harness_strf("/api/v1/pools/app/backends/%s", backend), NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    return harness_jint(r.json, field);
}

/* total bytes both ways at once through lb's port, byte-exact
 * (harness_stream_fill), then the backend's clean end. */
static void echo_both_ways(int lport, size_t total)
{
    int fd = harness_connect_ok("127.0.0.1", lport);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    unsigned char *out = malloc(ECHO_CHUNK), *in = malloc(ECHO_CHUNK), *want = malloc(ECHO_CHUNK);
    ck_assert(out && in && want);
    size_t sent = 0, received = 0, out_len = 0, out_pos = 0;
    long deadline = harness_now_ms() + 20000;
    while (received < total) {
        ck_assert_msg(harness_now_ms() < deadline, "echo stalled: sent %zu received %zu", sent,
                      received);
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0)};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        if (p.revents & POLLOUT && sent < total) {
            if (out_pos == out_len) {
                out_len = total - sent < ECHO_CHUNK ? total - sent : ECHO_CHUNK;
                out_pos = 0;
                harness_stream_fill(out, sent, out_len);
            }
            ssize_t n = send(fd, out + out_pos, out_len - out_pos, MSG_NOSIGNAL);
            if (n > 0) {
                out_pos += (size_t)n;
                sent += (size_t)n;
                if (sent == total)
                    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
            } else {
                ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, in, ECHO_CHUNK, 0);
            ck_assert_msg(n != 0, "EOF after %zu of %zu bytes", received, total);
            if (n < 0) {
                ck_assert_msg(errno == EAGAIN, "recv: %s", strerror(errno));
                continue;
            }
            harness_stream_fill(want, received, (size_t)n);
            if (memcmp(in, want, (size_t)n) != 0) {
                size_t i = 0;
                while (in[i] == want[i])
                    i++;
                ck_abort_msg("byte %zu differs", received + i);
            }
            received += (size_t)n;
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
}

/* tcp mode re-encrypts: the backend's certificate verified against the
 * pool's CA and server_name, 1 MiB byte-exact both ways with the
 * listener's splice on (not a byte spliced: a TLS side always copies). */
START_TEST(tcp_reencrypts_1mib)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_backend tb = backend_files(
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"}));
    int bport = tls_echo_start(&tb);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_tls(&lb, pool_tls(&pki, "app.internal"), 0, &aport, "app-1", bport, NULL);
    echo_both_ways(lport, ECHO_TOTAL);
    ck_assert_msg(harness_log_wait(lb.log, "bytes_from_client=1048576 bytes_from_backend=1048576 ",
                                   1, HARNESS_WAIT_MS),
                  "no session end with 1048576 bytes each way in %s", lb.log);
    ck_assert(harness_log_contains(lb.log, "reason=\"client closed\""));
    struct harness_reply st = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(harness_jint(st.json, "splice.bytes"), 0);
    ck_assert_int_eq(backend_stat(aport, "app-1", "failed_connections"), 0);
    ck_assert_int_eq(backend_stat(aport, "app-1", "total_connections"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A backend whose certificate names another host: that try fails with the
 * reason in lb's log, counted on the backend, and the client is served by
 * the next backend (retries). */
START_TEST(hostname_mismatch_retries)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_backend bad = backend_files(
        harness_pki_issue(&pki, "other", &(struct harness_cert_opts){.sans = "other.internal"}));
    struct tls_backend good = backend_files(
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"}));
    int bad_port = tls_echo_start(&bad), good_port = tls_echo_start(&good);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_tls(&lb, pool_tls(&pki, "app.internal"), 1, &aport, "bad", bad_port,
                             "good", good_port, NULL);
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "hello over TLS\n");
    close(fd);
    ck_assert_msg(harness_log_wait(lb.log,
                                   "pool app backend bad TLS handshake failed: certificate verify "
                                   "failed: hostname mismatch",
                                   1, HARNESS_WAIT_MS),
                  "no hostname mismatch in %s", lb.log);
    ck_assert(harness_log_wait(lb.log, "backend=good bytes_from_client=15 bytes_from_backend=15 ",
                               1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, "TLS handshake failed"), 1);
    ck_assert_int_eq(backend_stat(aport, "bad", "failed_connections"), 1);
    ck_assert_int_eq(backend_stat(aport, "bad", "total_connections"), 0);
    ck_assert_int_eq(backend_stat(aport, "good", "failed_connections"), 0);
    ck_assert_int_eq(backend_stat(aport, "good", "total_connections"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The only backend's certificate names another host: the client's session
 * ends "connect failed" (closed, no byte), the backend's failed counter
 * rises. */
START_TEST(hostname_mismatch_alone)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_backend bad = backend_files(
        harness_pki_issue(&pki, "other", &(struct harness_cert_opts){.sans = "other.internal"}));
    int bad_port = tls_echo_start(&bad);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_tls(&lb, pool_tls(&pki, "app.internal"), 0, &aport, "bad", bad_port, NULL);
    int fd = harness_connect_ok("127.0.0.1", lport);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), 0);
    close(fd);
    ck_assert(harness_log_wait(lb.log, "reason=\"connect failed\"", 1, HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(
        lb.log, "backend bad TLS handshake failed: certificate verify failed: hostname mismatch"));
    ck_assert_int_eq(backend_stat(aport, "bad", "failed_connections"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A backend that speaks no TLS, and one that never answers the
 * ClientHello (within connect_timeout_ms, which bounds connect and
 * handshake): both failed tries with their reason, the client served by
 * the third. */
START_TEST(no_tls_and_silent_backends_fail)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_backend good = backend_files(
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"}));
    int plain = harness_free_port(), silent = harness_free_port();
    harness_server("127.0.0.1", plain, harness_fn_name, "plain-text-backend");
    harness_server("127.0.0.1", silent, harness_fn_hold, NULL);
    int good_port = tls_echo_start(&good);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_tls(&lb, pool_tls(&pki, "app.internal"), 2, &aport, "plain", plain,
                             "silent", silent, "good", good_port, NULL);
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "ping\n");
    close(fd);
    ck_assert(harness_log_wait(lb.log, "backend=good bytes_from_client=5 bytes_from_backend=5 ", 1,
                               HARNESS_WAIT_MS));
    ck_assert_msg(harness_log_contains(lb.log, "pool app backend plain TLS handshake failed: "),
                  "no failed handshake of plain in %s", lb.log);
    ck_assert_msg(
        harness_log_contains(
            lb.log, "pool app backend silent TLS handshake failed: timed out after 1000 ms"),
        "no handshake timeout of silent in %s", lb.log);
    ck_assert_int_eq(backend_stat(aport, "plain", "failed_connections"), 1);
    ck_assert_int_eq(backend_stat(aport, "silent", "failed_connections"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A self-signed certificate (openssl req -x509) in the temp dir: its path;
 * the key is beside it (harness_pki_key). */
static const char *self_signed(void)
{
    const char *pem = harness_strf("%s/self.pem", harness_dir());
    char *argv[] = {"/usr/bin/openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    "/CN=self.internal",
                    "-days",
                    "2",
                    "-keyout",
                    (char *)harness_pki_key(pem),
                    "-out",
                    (char *)pem,
                    NULL};
    const char *out, *err;
    ck_assert_msg(harness_run(argv, &out, &err, HARNESS_WAIT_MS) == 0, "openssl req: %s", err);
    return pem;
}

/* verify false accepts a self-signed backend, which verify true (the pool's
 * CA) refuses with the reason. */
START_TEST(verify_false_accepts_self_signed)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_backend tb = backend_files(self_signed());
    int bport = tls_echo_start(&tb);
    struct harness_lb lb;
    int aport;
    json_t *tls = json_object();
    json_object_set_new(tls, "verify", json_false());
    int lport = lb_start_tls(&lb, tls, 0, &aport, "self", bport, NULL);
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "unverified\n");
    close(fd);
    ck_assert(harness_log_wait(lb.log, "backend=self bytes_from_client=11 bytes_from_backend=11 ",
                               1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);

    struct harness_lb lb2;
    lport = lb_start_tls(&lb2, pool_tls(&pki, "self.internal"), 0, &aport, "self", bport, NULL);
    fd = harness_connect_ok("127.0.0.1", lport);
    char buf[16];
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), 0);
    close(fd);
    ck_assert(harness_log_wait(lb2.log, "reason=\"connect failed\"", 1, HARNESS_WAIT_MS));
    ck_assert_msg(harness_log_contains(lb2.log, "backend self TLS handshake failed: certificate "
                                                "verify failed: self-signed certificate"),
                  "no self-signed refusal in %s", lb2.log);
    ck_assert_int_eq(harness_lb_stop(&lb2), 0);
}
END_TEST

/* A backend that requires a client certificate gets the pool's. */
START_TEST(client_certificate_sent)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_backend tb = backend_files(
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"}));
    snprintf(tb.client_ca, sizeof(tb.client_ca), "%s", pki.ca_cert);
    int bport = tls_echo_start(&tb);
    const char *client = harness_pki_issue(&pki, "lb-client", NULL);
    json_t *tls = pool_tls(&pki, "app.internal");
    json_object_set_new(tls, "cert", json_string(client));
    json_object_set_new(tls, "key", json_string(harness_pki_key(client)));
    struct harness_lb lb;
    int aport;
    int lport = lb_start_tls(&lb, tls, 0, &aport, "app-1", bport, NULL);
    int fd = harness_connect_ok("127.0.0.1", lport);
    char buf[64];
    const char *want = "client cn=lb-client\n";
    ck_assert_int_eq(harness_recv_n(fd, buf, strlen(want), HARNESS_WAIT_MS), (ssize_t)strlen(want));
    ck_assert(memcmp(buf, want, strlen(want)) == 0);
    harness_echo_roundtrip(fd, "with a client certificate\n");
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* send_proxy with tls: the PROXY header goes first in plain text, then the
 * ClientHello (the backend reads the header byte by byte, then does the
 * handshake, and sends the header back over TLS). */
START_TEST(send_proxy_before_handshake)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_backend tb = backend_files(
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"}));
    tb.proxy = true;
    int bport = tls_echo_start(&tb);
    int lport = harness_free_port(), aport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport)});
    harness_jset(cfg, "pools.0.tls", pool_tls(&pki, "app.internal"));
    harness_jset(cfg, "pools.0.send_proxy", json_string("v1"));
    harness_jset(cfg, "admin.listen", json_string(harness_lo(aport)));
    harness_jappend(cfg, "pools.0.backends", harness_backend_json(harness_lo(bport), "app-1"));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    int fd = harness_connect_ok("127.0.0.1", lport);
    int cport = harness_sock_port(fd);
    const char *want = harness_strf("proxy: PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\n", cport, lport);
    char buf[128] = {0};
    ck_assert_int_eq(harness_recv_n(fd, buf, strlen(want), HARNESS_WAIT_MS), (ssize_t)strlen(want));
    ck_assert_str_eq(buf, want);
    harness_echo_roundtrip(fd, "after the header\n");
    close(fd);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* Node's https backend (tests/http/https-backend.js) on a fresh port, idle
 * connections kept idle_ms; its log's path in *log. */
static int https_start(const char *pem, int idle_ms, const char **log)
{
    int port = harness_free_port();
    *log = harness_strf("%s/https-%d.log", harness_dir(), port);
    harness_write_file(harness_strf("https-%d.log", port), "");
    char *argv[] = {"/usr/bin/node",
                    (char *)harness_strf("%s/../tests/http/https-backend.js", LB_BUILD_DIR),
                    (char *)harness_strf("%d", port),
                    (char *)pem,
                    (char *)harness_pki_key(pem),
                    (char *)*log,
                    (char *)harness_strf("%d", idle_ms),
                    NULL};
    harness_spawn(argv, harness_strf("%s/https-%d.out", harness_dir(), port), NULL);
    ck_assert_msg(harness_wait_listening(port, HARNESS_WAIT_MS), "https backend not listening");
    return port;
}

/* lb in http mode in front of the https backend on bport. */
static int lb_start_http(struct harness_lb *lb, const struct harness_pki *pki, int bport,
                         int *aport)
{
    int lport = harness_free_port();
    *aport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport)});
    harness_jset(cfg, "listeners.0.mode", json_string("http"));
    harness_jset(cfg, "pools.0.tls", pool_tls(pki, "app.internal"));
    harness_jset(cfg, "admin.listen", json_string(harness_lo(*aport)));
    harness_jappend(cfg, "pools.0.backends", harness_backend_json(harness_lo(bport), "app-1"));
    harness_lb_start_json(lb, cfg, lport);
    return lport;
}

static void get_expect(struct harness_hconn *c, const char *path, const char *body)
{
    ck_assert(harness_hconn_sends(c, harness_strf("GET %s HTTP/1.1\r\nHost: app\r\n\r\n", path)));
    struct harness_hresp r;
    ck_assert_int_eq(harness_hconn_read(c, &r, 0, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, body);
}

/* Two keep-alive requests, each on a connection of its own to lb, go over
 * one TLS backend connection, kept idle with its SSL between them and
 * reused; at lb's stop it ends with close_notify. */
START_TEST(http_reuses_tls_connection)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *pem =
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"});
    const char *blog;
    int bport = https_start(pem, 60000, &blog);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_http(&lb, &pki, bport, &aport);
    struct harness_hconn c;
    harness_hconn_open(&c, lport);
    get_expect(&c, "/a", "resp 1.1 /a\n");
    get_expect(&c, "/b", "resp 1.2 /b\n");
    harness_hconn_close(&c);
    harness_hconn_open(&c, lport);
    get_expect(&c, "/c", "resp 1.3 /c\n");
    harness_hconn_close(&c);
    ck_assert_int_eq(harness_log_count(blog, "conn "), 1);
    ck_assert_int_eq(backend_stat(aport, "app-1", "reused"), 2);
    ck_assert_int_eq(backend_stat(aport, "app-1", "idle_connections"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    ck_assert(harness_log_wait(blog, "closed 1", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(blog, "tlsClientError"), 0);
}
END_TEST

/* An idle TLS connection the backend closes (Node's keepAliveTimeout:
 * close_notify and FIN) is dropped; the next request gets a fresh one. */
START_TEST(http_idle_closed_by_backend)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *pem =
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"});
    const char *blog;
    int bport = https_start(pem, 200, &blog);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_http(&lb, &pki, bport, &aport);
    struct harness_hconn c;
    harness_hconn_open(&c, lport);
    get_expect(&c, "/a", "resp 1.1 /a\n");
    ck_assert(harness_log_wait(blog, "closed 1", 1, HARNESS_WAIT_MS));
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    while (backend_stat(aport, "app-1", "idle_connections") != 0 && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert_int_eq(backend_stat(aport, "app-1", "idle_connections"), 0);
    get_expect(&c, "/b", "resp 2.1 /b\n");
    harness_hconn_close(&c);
    ck_assert_int_eq(backend_stat(aport, "app-1", "reused"), 0);
    ck_assert_int_eq(backend_stat(aport, "app-1", "failed_connections"), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* http mode: a backend whose certificate names another host is a failed
 * connect: the request gets a 502, the try is logged and counted. */
START_TEST(http_mismatch_is_502)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *pem =
        harness_pki_issue(&pki, "other", &(struct harness_cert_opts){.sans = "other.internal"});
    const char *blog;
    int bport = https_start(pem, 60000, &blog);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_http(&lb, &pki, bport, &aport);
    int status = 0;
    ck_assert_int_eq(harness_http(lport, "GET", "/a", NULL, NULL, &status, NULL, NULL), 0);
    ck_assert_int_eq(status, 502);
    ck_assert(harness_log_contains(
        lb.log,
        "backend app-1 TLS handshake failed: certificate verify failed: hostname mismatch"));
    ck_assert_int_eq(backend_stat(aport, "app-1", "failed_connections"), 1);
    ck_assert_int_eq(harness_log_count(blog, "req "), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A reload builds the pool's TLS context anew: an idle connection made
 * before it (with the old one) is not reused but closed, and the next
 * request gets a fresh handshake; the one after that reuses the new one. */
START_TEST(http_reload_drops_old_tls_idle)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *pem =
        harness_pki_issue(&pki, "app", &(struct harness_cert_opts){.sans = "app.internal"});
    const char *blog;
    int bport = https_start(pem, 60000, &blog);
    struct harness_lb lb;
    int aport;
    int lport = lb_start_http(&lb, &pki, bport, &aport);
    struct harness_hconn c;
    harness_hconn_open(&c, lport);
    get_expect(&c, "/a", "resp 1.1 /a\n");
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "reload ok: generation 2", 1, HARNESS_WAIT_MS));
    get_expect(&c, "/b", "resp 2.1 /b\n");
    get_expect(&c, "/c", "resp 2.2 /c\n");
    harness_hconn_close(&c);
    ck_assert(harness_log_wait(blog, "closed 1", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(backend_stat(aport, "app-1", "reused"), 1);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *tls_backend_suite(void)
{
    Suite *s = suite_create("tls_backend");
    TCase *tc = harness_tcase("tls_backend");
    tcase_add_test(tc, tcp_reencrypts_1mib);
    tcase_add_test(tc, hostname_mismatch_retries);
    tcase_add_test(tc, hostname_mismatch_alone);
    tcase_add_test(tc, no_tls_and_silent_backends_fail);
    tcase_add_test(tc, verify_false_accepts_self_signed);
    tcase_add_test(tc, client_certificate_sent);
    tcase_add_test(tc, send_proxy_before_handshake);
    tcase_add_test(tc, http_reuses_tls_connection);
    tcase_add_test(tc, http_idle_closed_by_backend);
    tcase_add_test(tc, http_reload_drops_old_tls_idle);
    tcase_add_test(tc, http_mismatch_is_502);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(tls_backend_suite)
