/* Integration: TLS termination on lb's listeners ("tls") through a real lb,
 * with certificates made at run time by the harness's PKI and real clients:
 * curl and openssl s_client, and an OpenSSL client in the test for what
 * they cannot show (64 MiB byte-exact, a close without close_notify, a
 * stalled handshake, resumption, a PROXY header before the handshake). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/harness.h"
#include "tests/test.h"

#define SHORT_MS 300

struct rig {
    struct harness_lb lb;
    struct harness_pki pki;
    json_t *cfg;
    int port, aport, bport;
    const char *cert, *key; /* localhost's */
};

/* lb with a TLS listener (mode) whose certificate is "localhost" (SANs
 * localhost and 127.0.0.1), in front of one backend running fn. */
static void rig_cfg(struct rig *r, const char *mode, harness_conn_fn fn, void *arg)
{
    harness_pki_init(&r->pki);
    r->cert = harness_pki_issue(&r->pki, "localhost",
                                &(struct harness_cert_opts){.sans = "localhost,IP:127.0.0.1"});
    r->key = harness_pki_key(r->cert);
    r->port = harness_free_port();
    r->aport = harness_free_port();
    r->bport = harness_free_port();
    harness_server("127.0.0.1", r->bport, fn, arg);
    r->cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(r->port)});
    harness_jset(r->cfg, "listeners.0.mode", json_string(mode));
    harness_jset(r->cfg, "admin.listen", json_string(harness_lo(r->aport)));
    harness_jset(r->cfg, "listeners.0.tls",
                 harness_jparse(harness_strf("{\"certificates\": [{\"cert\": \"%s\", \"key\": "
                                             "\"%s\"}]}",
                                             r->cert, r->key)));
    harness_jappend(r->cfg, "pools.0.backends", harness_backend_json(harness_lo(r->bport), "b1"));
}

static void rig_go(struct rig *r)
{
    harness_lb_start_json(&r->lb, r->cfg, r->port);
    ck_assert(harness_wait_listening(r->aport, HARNESS_WAIT_MS));
}

/* The listener's "tls" object from the admin API. */
static json_t *listener_tls(struct rig *r)
{
    struct harness_reply rep = harness_call(r->aport, "GET", "/api/v1/listeners", NULL, NULL);
    ck_assert_int_eq(rep.status, 200);
    return harness_jget(rep.json, "listeners.0.tls");
}

/* Runs argv (NULL-terminated), stdout and stderr into *out; its exit
 * status. */
static int run(const char **out, char *const argv[])
{
    const char *err = NULL;
    int rc = harness_run(argv, out, &err, HARNESS_WAIT_MS * 2);
    *out = harness_strf("%s%s", *out ? *out : "", err ? err : "");
    return rc;
}

/* openssl s_client to the listener with SNI name (NULL: none) and extra
 * options; what it printed. */
static const char *s_client(struct rig *r, const char *name, const char *opt, int *rc)
{
    const char *out;
    char *argv[16];
    int n = 0;
    argv[n++] = "/usr/bin/openssl";
    argv[n++] = "s_client";
    argv[n++] = "-connect";
    argv[n++] = (char *)harness_lo(r->port);
    argv[n++] = "-CAfile";
    argv[n++] = r->pki.ca_cert;
    if (name) {
        argv[n++] = "-servername";
        argv[n++] = (char *)name;
    } else {
        argv[n++] = "-noservername";
    }
    if (opt)
        argv[n++] = (char *)opt;
    argv[n] = NULL;
    *rc = run(&out, argv);
    return out;
}

/* ---- an OpenSSL client in the test ---- */

/* Waits until fd has events or the deadline (harness_now_ms()) passes. */
static bool wait_fd(int fd, short events, long deadline)
{
    long left = deadline - harness_now_ms();
    struct pollfd p = {.fd = fd, .events = events};
    return left > 0 && poll(&p, 1, (int)left) > 0;
}

struct tcli {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

static SSL_CTX *client_ctx(struct rig *r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, r->pki.ca_cert, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

/* Drives one SSL call to completion on a non-blocking socket, within the
 * deadline: its return value. */
#define TLS_DRIVE(c, call, deadline)                                                               \
    ({                                                                                             \
        int ret_;                                                                                  \
        for (;;) {                                                                                 \
            ret_ = (call);                                                                         \
            if (ret_ > 0)                                                                          \
                break;                                                                             \
            int e_ = SSL_get_error((c)->ssl, ret_);                                                \
            short ev_ = e_ == SSL_ERROR_WANT_READ    ? POLLIN                                      \
                        : e_ == SSL_ERROR_WANT_WRITE ? POLLOUT                                     \
                                                     : 0;                                          \
            if (!ev_ || !wait_fd((c)->fd, ev_, deadline))                                          \
                break;                                                                             \
        }                                                                                          \
        ret_;                                                                                      \
    })

/* A TLS connection to the listener (SNI "localhost"), handshake done; the
 * socket non-blocking. prefix (len bytes, may be NULL) goes first in plain
 * text (a PROXY header). */
static void tcli_open(struct tcli *c, struct rig *r, const void *prefix, size_t len,
                      SSL_SESSION *resume)
{
    c->ctx = client_ctx(r);
    c->fd = harness_connect("127.0.0.1", r->port, HARNESS_WAIT_MS);
    ck_assert_int_ge(c->fd, 0);
    if (prefix)
        ck_assert(harness_send_all(c->fd, prefix, len, HARNESS_WAIT_MS));
    ck_assert_int_eq(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
    c->ssl = SSL_new(c->ctx);
    ck_assert_ptr_nonnull(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set1_host(c->ssl, "localhost");
    if (resume)
        SSL_set_session(c->ssl, resume);
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    int ret = TLS_DRIVE(c, SSL_connect(c->ssl), deadline);
    ck_assert_msg(ret == 1, "handshake with lb failed: %s",
                  ERR_reason_error_string(ERR_peek_last_error()));
}

/* Closes the connection: with close_notify, or a plain close (a client
 * that leaves without one). */
static void tcli_close(struct tcli *c, bool notify)
{
    if (notify)
        SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    ERR_clear_error();
}

/* Sends msg and reads back exactly as many bytes (an echo): what came. */
static const char *tcli_echo(struct tcli *c, const char *msg)
{
    size_t n = strlen(msg), got = 0;
    char buf[4096];
    ck_assert_uint_lt(n, sizeof(buf));
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    ck_assert_int_eq(TLS_DRIVE(c, SSL_write(c->ssl, msg, (int)n), deadline), (int)n);
    while (got < n) {
        int k = TLS_DRIVE(c, SSL_read(c->ssl, buf + got, (int)(n - got)), deadline);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    return harness_strf("%s", buf);
}

/* The CN of the certificate lb sent. */
static const char *tcli_peer_cn(struct tcli *c)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    ck_assert_ptr_nonnull(x);
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    X509_free(x);
    return harness_strf("%s", cn);
}

/* ---- tests ---- */

/* tcp mode: lb decrypts and relays plain bytes to an HTTP backend; curl
 * verifies lb's certificate against the test CA. */
START_TEST(curl_through_a_tcp_listener)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_http, "hello over tls\n");
    rig_go(&r);
    const char *out;
    int rc = run(&out, (char *[]){"/usr/bin/curl", "-sS", "--cacert", r.pki.ca_cert, "--resolve",
                                  (char *)harness_strf("localhost:%d:127.0.0.1", r.port),
                                  (char *)harness_strf("https://localhost:%d/", r.port), NULL});
    ck_assert_msg(rc == 0, "curl failed: %s", out);
    ck_assert_str_eq(out, "hello over tls\n");
    ck_assert(harness_lb_log_wait(&r.lb, "reason=\"client closed\"", 1, HARNESS_WAIT_MS) ||
              harness_lb_log_wait(&r.lb, "reason=\"backend closed\"", 1, HARNESS_WAIT_MS));
    json_t *t = listener_tls(&r);
    ck_assert_int_eq(harness_jint(t, "handshakes"), 1);
    ck_assert_int_eq(harness_jint(t, "handshake_failures"), 0);
    /* Without the CA, curl refuses lb's certificate. */
    rc = run(&out, (char *[]){"/usr/bin/curl", "-sS", "--resolve",
                              (char *)harness_strf("localhost:%d:127.0.0.1", r.port),
                              (char *)harness_strf("https://localhost:%d/", r.port), NULL});
    ck_assert_int_eq(rc, 60); /* CURLE_PEER_FAILED_VERIFICATION */
}
END_TEST

/* http mode: two requests on one TLS connection, each forwarded with
 * X-Forwarded-Proto: https; one handshake in all. */
START_TEST(curl_keep_alive_through_an_http_listener)
{
    struct rig r;
    rig_cfg(&r, "http", harness_fn_http_echo, "b1");
    rig_go(&r);
    const char *out;
    const char *base = harness_strf("https://localhost:%d", r.port);
    int rc = run(&out, (char *[]){"/usr/bin/curl", "-sS", "--cacert", r.pki.ca_cert, "--resolve",
                                  (char *)harness_strf("localhost:%d:127.0.0.1", r.port),
                                  (char *)harness_strf("%s/one", base),
                                  (char *)harness_strf("%s/two", base), NULL});
    ck_assert_msg(rc == 0, "curl failed: %s", out);
    ck_assert_msg(strstr(out, "GET /one HTTP/1.1\r\n") && strstr(out, "GET /two HTTP/1.1\r\n"),
                  "%s", out);
    const char *proto = harness_strf("X-Forwarded-Proto: https\r\n");
    const char *p = strstr(out, proto);
    ck_assert_msg(p && strstr(p + 1, proto), "two requests with %s in: %s", proto, out);
    ck_assert(strstr(out, harness_strf("X-Forwarded-Port: %d\r\n", r.port)));
    json_t *t = listener_tls(&r);
    ck_assert_int_eq(harness_jint(t, "handshakes"), 1);
    ck_assert(
        harness_lb_log_wait(&r.lb, "method=GET path=\"/two\" status=200 ", 1, HARNESS_WAIT_MS));
}
END_TEST

static unsigned char pat(uint64_t i)
{
    return (unsigned char)(i * 2654435761u >> 11);
}

/* http mode: 16 MiB up and 32 MiB down through TLS, byte-exact (curl on the
 * client side, lb's reads of what OpenSSL holds in http mode). */
START_TEST(big_bodies_through_an_http_listener)
{
    struct rig r;
    rig_cfg(&r, "http", harness_fn_http_echo, "b1");
    rig_go(&r);
    const size_t up = 16u << 20, down = 32u << 20;
    const char *file = harness_strf("%s/up.bin", harness_dir());
    FILE *f = fopen(file, "wb");
    ck_assert_ptr_nonnull(f);
    static unsigned char buf[1 << 16];
    uint64_t h = HARNESS_FNV_INIT;
    for (size_t off = 0; off < up; off += sizeof(buf)) {
        harness_stream_fill(buf, off, sizeof(buf));
        h = harness_fnv1a(h, buf, sizeof(buf));
        ck_assert_uint_eq(fwrite(buf, 1, sizeof(buf), f), sizeof(buf));
    }
    ck_assert_int_eq(fclose(f), 0);
    const char *resolve = harness_strf("localhost:%d:127.0.0.1", r.port);
    const char *out;
    int rc =
        run(&out, (char *[]){"/usr/bin/curl", "-sS", "--cacert", r.pki.ca_cert, "--resolve",
                             (char *)resolve, "--data-binary", (char *)harness_strf("@%s", file),
                             (char *)harness_strf("https://localhost:%d/upload", r.port), NULL});
    ck_assert_msg(rc == 0, "curl failed: %s", out);
    ck_assert_msg(strstr(out, harness_strf("body-bytes: %zu\nbody-fnv: %016llx\n", up,
                                           (unsigned long long)h)),
                  "%s", out);
    const char *got = harness_strf("%s/down.bin", harness_dir());
    rc = run(&out,
             (char *[]){"/usr/bin/curl", "-sS", "--cacert", r.pki.ca_cert, "--resolve",
                        (char *)resolve, "-o", (char *)got,
                        (char *)harness_strf("https://localhost:%d/big/%zu", r.port, down), NULL});
    ck_assert_msg(rc == 0, "curl failed: %s", out);
    f = fopen(got, "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char want[sizeof(buf)];
    size_t total = 0, n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        harness_stream_fill(want, total, n);
        if (memcmp(buf, want, n) != 0)
            ck_abort_msg("the download differs within bytes %zu..%zu", total, total + n);
        total += n;
    }
    fclose(f);
    ck_assert_uint_eq(total, down);
}
END_TEST

/* 64 MiB each way through TLS to an echo backend, byte-exact, with the
 * socket buffers full most of the time. */
START_TEST(sixty_four_mib_byte_exact)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    rig_go(&r);
    struct tcli c;
    tcli_open(&c, &r, NULL, 0, NULL);
    const uint64_t total = 64u << 20;
    static unsigned char out[65536], in[65536];
    uint64_t sent = 0, got = 0;
    size_t held = 0;
    long deadline = harness_now_ms() + 50000;
    while (got < total && harness_now_ms() < deadline) {
        while (held < sizeof(out) && sent + held < total) {
            out[held] = pat(sent + held);
            held++;
        }
        short ev = POLLIN;
        if (held > 0) {
            int w = SSL_write(c.ssl, out, (int)held);
            if (w > 0) {
                memmove(out, out + w, held - (size_t)w);
                held -= (size_t)w;
                sent += (uint64_t)w;
            } else {
                int e = SSL_get_error(c.ssl, w);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                    ck_abort_msg("write failed after %llu bytes", (unsigned long long)sent);
                ev |= POLLOUT;
            }
        }
        int n = SSL_read(c.ssl, in, sizeof(in));
        if (n > 0) {
            for (int k = 0; k < n; k++) /* no ck_assert per byte: each one costs a mark point */
                if (in[k] != pat(got + (uint64_t)k))
                    ck_abort_msg("byte %llu differs", (unsigned long long)(got + (uint64_t)k));
            got += (uint64_t)n;
            continue;
        }
        int e = SSL_get_error(c.ssl, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            ck_abort_msg("read failed after %llu bytes", (unsigned long long)got);
        if (held > 0 && !(ev & POLLOUT))
            continue;
        wait_fd(c.fd, ev, harness_now_ms() + 1000);
    }
    ck_assert_msg(sent == total && got == total, "sent %llu got %llu of %llu",
                  (unsigned long long)sent, (unsigned long long)got, (unsigned long long)total);
    tcli_close(&c, true);
    ck_assert(harness_lb_log_wait(&r.lb, "bytes_from_client=67108864 bytes_from_backend=67108864",
                                  1, HARNESS_WAIT_MS));
}
END_TEST

/* SNI: each name gets its certificate, wildcards included; an unknown
 * name and no name get the first one. */
START_TEST(sni_picks_the_certificate)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    const char *a = harness_pki_issue(&r.pki, "a", &(struct harness_cert_opts){.sans = "a.test"});
    const char *b = harness_pki_issue(&r.pki, "b", &(struct harness_cert_opts){.sans = "*.b.test"});
    harness_jset(
        r.cfg, "listeners.0.tls.certificates",
        harness_jparse(harness_strf("[{\"cert\": \"%s\", \"key\": \"%s\"}, {\"cert\": "
                                    "\"%s\", \"key\": \"%s\"}, {\"cert\": \"%s\", "
                                    "\"key\": \"%s\"}]",
                                    r.cert, r.key, a, harness_pki_key(a), b, harness_pki_key(b))));
    rig_go(&r);
    const struct {
        const char *name, *cn;
    } cases[] = {{"a.test", "a"},
                 {"A.Test", "a"},
                 {"x.b.test", "b"},
                 {"b.test", "localhost"},
                 {"other.test", "localhost"},
                 {NULL, "localhost"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;
        const char *out = s_client(&r, cases[i].name, NULL, &rc);
        ck_assert_msg(rc == 0, "s_client %s: %s", cases[i].name, out);
        ck_assert_msg(strstr(out, harness_strf("subject=CN = %s\n", cases[i].cn)),
                      "%s: want CN %s in: %s", cases[i].name ? cases[i].name : "(no SNI)",
                      cases[i].cn, out);
        ck_assert_msg(strstr(out, "Verify return code: 0 (ok)"), "%s", out);
    }
}
END_TEST

/* A TLS 1.1 client is refused; the failure is counted, and its session end
 * is no info line. A client that connects and leaves without a byte is no
 * failure. */
START_TEST(old_versions_are_refused_and_counted)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    rig_go(&r);
    int rc;
    const char *out = s_client(&r, "localhost", "-tls1_1", &rc);
    ck_assert_msg(rc != 0, "a TLS 1.1 handshake succeeded: %s", out);
    int fd = harness_connect("127.0.0.1", r.port, HARNESS_WAIT_MS);
    close(fd);
    ck_assert(harness_lb_log_wait(&r.lb, "reason=\"client closed\"", 1, HARNESS_WAIT_MS));
    json_t *t = listener_tls(&r);
    ck_assert_int_eq(harness_jint(t, "handshake_failures"), 1);
    ck_assert_int_eq(harness_jint(t, "handshakes"), 0);
    ck_assert(!harness_log_contains(r.lb.log, "tls handshake failed"));
    /* TLS 1.2 and 1.3 work. */
    out = s_client(&r, "localhost", "-tls1_2", &rc);
    ck_assert_msg(rc == 0 && strstr(out, "Protocol  : TLSv1.2"), "%s", out);
    out = s_client(&r, "localhost", "-tls1_3", &rc);
    ck_assert_msg(rc == 0 && strstr(out, "TLSv1.3"), "%s", out);
    struct harness_reply m = harness_call(r.aport, "GET", "/metrics", NULL, NULL);
    ck_assert(strstr(m.body, "lb_listener_tls_handshake_failures_total{listener=\"web\"} 1\n"));
    ck_assert(strstr(m.body, "lb_listener_tls_handshakes_total{listener=\"web\"} 2\n"));
}
END_TEST

/* At debug level the failure's reason is logged, once per client. */
START_TEST(handshake_failure_reason_at_debug)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    harness_jset(r.cfg, "log.level", json_string("debug"));
    rig_go(&r);
    int fd = harness_connect("127.0.0.1", r.port, HARNESS_WAIT_MS);
    ck_assert(harness_send_all(fd, "GET / HTTP/1.1\r\n\r\n", 18, HARNESS_WAIT_MS));
    ck_assert_int_ge(harness_wait_closed(fd, HARNESS_WAIT_MS), 0);
    close(fd);
    ck_assert(harness_lb_log_wait(&r.lb, "tls handshake failed: ", 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&r.lb, "reason=\"tls handshake failed\"", 1, HARNESS_WAIT_MS));
    ck_assert_msg(harness_log_contains(r.lb.log, "debug: listener web: client 127.0.0.1:"), "%s",
                  harness_read_file(r.lb.log));
    ck_assert_int_eq(harness_jint(listener_tls(&r), "handshake_failures"), 1);
}
END_TEST

/* A client that starts a handshake and stalls is cut at
 * handshake_timeout_ms while another is served. */
START_TEST(stalled_handshake_times_out)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    harness_jset(r.cfg, "listeners.0.tls.handshake_timeout_ms", json_integer(SHORT_MS));
    rig_go(&r);
    int fd = harness_connect("127.0.0.1", r.port, HARNESS_WAIT_MS);
    ck_assert(harness_send_all(fd, "\x16\x03\x01", 3, HARNESS_WAIT_MS)); /* a record begins */
    long t0 = harness_now_ms();
    struct tcli c;
    tcli_open(&c, &r, NULL, 0, NULL);
    ck_assert_str_eq(tcli_echo(&c, "still served"), "still served");
    ck_assert_int_ge(harness_wait_closed(fd, HARNESS_WAIT_MS), 0);
    ck_assert_int_ge(harness_now_ms() - t0, SHORT_MS - 50);
    close(fd);
    ck_assert(!harness_log_contains(r.lb.log, "tls handshake timeout")); /* debug only */
    ck_assert_int_eq(harness_jint(listener_tls(&r), "handshake_failures"), 1);
    tcli_close(&c, true);
}
END_TEST

/* A client that closes its socket without close_notify ends the session
 * as "client closed", like a plain TCP client's FIN. */
START_TEST(close_without_close_notify_is_client_closed)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    rig_go(&r);
    struct tcli c;
    tcli_open(&c, &r, NULL, 0, NULL);
    ck_assert_str_eq(tcli_echo(&c, "ping"), "ping");
    tcli_close(&c, false);
    ck_assert(harness_lb_log_wait(&r.lb, "reason=\"client closed\"", 1, HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(r.lb.log, "bytes_from_client=4 bytes_from_backend=4"));
}
END_TEST

/* A session resumes (TLS 1.3 ticket) and is counted as resumed. */
START_TEST(sessions_resume)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    rig_go(&r);
    struct tcli c;
    tcli_open(&c, &r, NULL, 0, NULL);
    ck_assert_str_eq(tcli_echo(&c, "one"), "one"); /* the tickets came before the echo */
    SSL_SESSION *sess = SSL_get1_session(c.ssl);
    ck_assert_ptr_nonnull(sess);
    ck_assert(SSL_SESSION_is_resumable(sess));
    tcli_close(&c, true);
    tcli_open(&c, &r, NULL, 0, sess);
    ck_assert_int_eq(SSL_session_reused(c.ssl), 1);
    ck_assert_str_eq(tcli_echo(&c, "two"), "two");
    tcli_close(&c, true);
    SSL_SESSION_free(sess);
    json_t *t = listener_tls(&r);
    ck_assert_int_eq(harness_jint(t, "handshakes"), 2);
    ck_assert_int_eq(harness_jint(t, "resumed"), 1);
}
END_TEST

/* A reload builds new contexts, but the ticket keys stay: a session made
 * before it resumes after it. */
START_TEST(sessions_resume_across_a_reload)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    rig_go(&r);
    struct tcli c;
    tcli_open(&c, &r, NULL, 0, NULL);
    ck_assert_str_eq(tcli_echo(&c, "before"), "before");
    SSL_SESSION *sess = SSL_get1_session(c.ssl);
    ck_assert_ptr_nonnull(sess);
    tcli_close(&c, true);
    harness_lb_signal(&r.lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&r.lb, "reload ok", 1, HARNESS_WAIT_MS));
    tcli_open(&c, &r, NULL, 0, sess);
    ck_assert_int_eq(SSL_session_reused(c.ssl), 1);
    ck_assert_str_eq(tcli_echo(&c, "after"), "after");
    tcli_close(&c, true);
    SSL_SESSION_free(sess);
    ck_assert_int_eq(harness_jint(listener_tls(&r), "resumed"), 1);
}
END_TEST

/* 3000 pipelined requests in TLS records of 16 KiB, sent at once by
 * Python's ssl module: every one answered, in order (lb reads what OpenSSL
 * holds only once the heads before it are taken, never calling a full
 * buffer of complete heads a head too large: a 431 after about 1000 before
 * that was fixed). */
static const char pipeline_py[] =
    "import socket, ssl, sys\n"
    "ca, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "s = ssl.create_default_context(cafile=ca).wrap_socket(\n"
    "    socket.create_connection(('127.0.0.1', port)), server_hostname='localhost')\n"
    "s.settimeout(20)\n"
    "s.sendall(b''.join(b'GET /p%d HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' % i for i in range(n)))\n"
    "got = b''\n"
    "while got.count(b'HTTP/1.1 200 OK\\r\\n') < n:\n"
    "    d = s.recv(65536)\n"
    "    if not d:\n"
    "        break\n"
    "    got += d\n"
    "print('answers', got.count(b'HTTP/1.1 200 OK\\r\\n'), 'status 431', got.count(b' 431 '))\n";

START_TEST(pipelined_requests_over_tls)
{
    struct rig r;
    rig_cfg(&r, "http", harness_fn_http, NULL);
    /* The demo backend answers at once (the harness's function backends
     * wait for delayed ACKs between pipelined answers). */
    int port = harness_free_port();
    harness_backend("127.0.0.1", port, "b1", "http");
    harness_jset(r.cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(port), "b1"), NULL));
    rig_go(&r);
    const char *script = harness_write_file("pipeline.py", pipeline_py);
    const char *out;
    int rc = run(&out, (char *[]){"/usr/bin/python3", (char *)script, r.pki.ca_cert,
                                  (char *)harness_strf("%d", r.port), "3000", NULL});
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_str_eq(out, "answers 3000 status 431 0\n");
    ck_assert(harness_lb_log_wait(&r.lb, "path=\"/p2999\" status=200 ", 1, HARNESS_WAIT_MS));
}
END_TEST

/* In http mode the first request's deadline counts from the end of the
 * handshake, which has its own timeout. */
START_TEST(slow_handshake_then_request)
{
    struct rig r;
    rig_cfg(&r, "http", harness_fn_http_echo, "b1");
    harness_jset(r.cfg, "listeners.0.request_timeout_ms", json_integer(SHORT_MS));
    harness_jset(r.cfg, "listeners.0.tls.handshake_timeout_ms", json_integer(5000));
    rig_go(&r);
    struct tcli c;
    c.ctx = client_ctx(&r);
    c.fd = harness_connect("127.0.0.1", r.port, HARNESS_WAIT_MS);
    ck_assert_int_ge(c.fd, 0);
    harness_sleep_ms(SHORT_MS * 2); /* a slow client: the handshake starts late */
    ck_assert_int_eq(fcntl(c.fd, F_SETFL, O_NONBLOCK), 0);
    c.ssl = SSL_new(c.ctx);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set_tlsext_host_name(c.ssl, "localhost");
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    ck_assert_int_eq(TLS_DRIVE(&c, SSL_connect(c.ssl), deadline), 1);
    harness_sleep_ms(SHORT_MS / 3); /* well within request_timeout_ms of the handshake */
    const char *req = "GET /late HTTP/1.1\r\nHost: lb.test\r\n\r\n";
    ck_assert_int_eq(TLS_DRIVE(&c, SSL_write(c.ssl, req, (int)strlen(req)), deadline),
                     (int)strlen(req));
    char buf[4096];
    int k = TLS_DRIVE(&c, SSL_read(c.ssl, buf, sizeof(buf) - 1), deadline);
    ck_assert_int_gt(k, 0);
    buf[k] = '\0';
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    tcli_close(&c, true);
}
END_TEST

/* With accept_proxy, the PROXY header comes in plain text, then the
 * handshake; the session is the header's client. */
START_TEST(proxy_header_before_the_handshake)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    harness_jset(r.cfg, "listeners.0.accept_proxy", json_true());
    rig_go(&r);
    const char *hdr = "PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n";
    struct tcli c;
    tcli_open(&c, &r, hdr, strlen(hdr), NULL);
    ck_assert_str_eq(tcli_echo(&c, "proxied"), "proxied");
    tcli_close(&c, true);
    ck_assert(
        harness_lb_log_wait(&r.lb, "session end client=203.0.113.7:40000", 1, HARNESS_WAIT_MS));
}
END_TEST

/* SIGHUP with a new certificate: new handshakes get it, a session opened
 * before goes on with the old one. */
START_TEST(reload_swaps_the_certificate)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    rig_go(&r);
    struct tcli old;
    tcli_open(&old, &r, NULL, 0, NULL);
    ck_assert_str_eq(tcli_peer_cn(&old), "localhost");
    const char *v2 = harness_pki_issue(
        &r.pki, "v2", &(struct harness_cert_opts){.cn = "localhost v2", .sans = "localhost"});
    harness_jset(r.cfg, "listeners.0.tls.certificates.0.cert", json_string(v2));
    harness_jset(r.cfg, "listeners.0.tls.certificates.0.key", json_string(harness_pki_key(v2)));
    harness_lb_rewrite_json(&r.lb, r.cfg);
    harness_lb_signal(&r.lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&r.lb, "reload ok", 1, HARNESS_WAIT_MS));
    struct tcli c;
    tcli_open(&c, &r, NULL, 0, NULL);
    ck_assert_str_eq(tcli_peer_cn(&c), "localhost v2");
    ck_assert_str_eq(tcli_echo(&c, "new"), "new");
    ck_assert_str_eq(tcli_echo(&old, "old goes on"), "old goes on");
    tcli_close(&c, true);
    tcli_close(&old, true);
}
END_TEST

/* A key that does not match its certificate: lb -t refuses the file, and a
 * reload to it fails whole (the old certificate is still served). */
START_TEST(key_mismatch_is_refused)
{
    struct rig r;
    rig_cfg(&r, "tcp", harness_fn_echo, NULL);
    rig_go(&r);
    const char *other = harness_pki_issue(&r.pki, "other", NULL);
    harness_jset(r.cfg, "listeners.0.tls.certificates.0.key", json_string(harness_pki_key(other)));
    harness_lb_rewrite_json(&r.lb, r.cfg);
    const char *out;
    int rc = run(&out, (char *[]){"build/lb", "-t", "-c", r.lb.config, NULL});
    const char *want = harness_strf("listeners[0].tls: %s does not match the certificate in %s\n",
                                    harness_pki_key(other), r.cert);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, want) && strncmp(out, r.lb.config, strlen(r.lb.config)) == 0,
                  "want %s in: %s", want, out);
    harness_lb_signal(&r.lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&r.lb, "reload failed: ", 1, HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(r.lb.log, "does not match the certificate in"));
    struct tcli c;
    tcli_open(&c, &r, NULL, 0, NULL);
    ck_assert_str_eq(tcli_peer_cn(&c), "localhost");
    ck_assert_str_eq(tcli_echo(&c, "still"), "still");
    tcli_close(&c, true);
}
END_TEST

static Suite *tls_listen_suite(void)
{
    Suite *s = suite_create("tls_listen");
    TCase *tc = harness_tcase("tls_listen");
    tcase_add_test(tc, curl_through_a_tcp_listener);
    tcase_add_test(tc, curl_keep_alive_through_an_http_listener);
    tcase_add_test(tc, sixty_four_mib_byte_exact);
    tcase_add_test(tc, big_bodies_through_an_http_listener);
    tcase_add_test(tc, sni_picks_the_certificate);
    tcase_add_test(tc, old_versions_are_refused_and_counted);
    tcase_add_test(tc, handshake_failure_reason_at_debug);
    tcase_add_test(tc, stalled_handshake_times_out);
    tcase_add_test(tc, close_without_close_notify_is_client_closed);
    tcase_add_test(tc, sessions_resume);
    tcase_add_test(tc, sessions_resume_across_a_reload);
    tcase_add_test(tc, pipelined_requests_over_tls);
    tcase_add_test(tc, slow_handshake_then_request);
    tcase_add_test(tc, proxy_header_before_the_handshake);
    tcase_add_test(tc, reload_swaps_the_certificate);
    tcase_add_test(tc, key_mismatch_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(tls_listen_suite)
