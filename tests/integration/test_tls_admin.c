/* Integration: the admin API over TLS ("admin": {"tls": {"cert", "key"}})
 * against a real lb, with curl and the openssl tool as clients, and a small
 * OpenSSL client of the test's own where a connection must stay open across
 * a reload or its certificate must be read: the same answers as over plain
 * HTTP, the token still asked for, a plain HTTP client closed without an
 * answer, a reload that changes the certificate (new connections get the
 * new one, open ones go on), turns TLS on or off, or is refused for a key
 * that does not match; and `lb -t` refusing that key. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tests/test.h"
#include "tests/harness.h"

#define LB LB_BUILD_DIR "/lb"
#define CURL "/usr/bin/curl" /* harness_run execs a path (scripts/install-deps installs it) */
#define OPENSSL "/usr/bin/openssl"
#define TOKEN "tls-admin-token"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define SHORT_MS 400 /* the request_timeout_ms of the tests that wait for it */

/* JSON text as a document kept until teardown. */
static json_t *jdoc(const char *text)
{
    return harness_jkeep(harness_jparse(text));
}

/* --- a keep-alive HTTPS client of the test's own --- */

#define TC_BUF (16 << 20) /* the largest answer tc_read takes, and more */

struct tclient {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char cn[128];     /* the subject CN of the server's certificate */
    char serial[128]; /* its serial number, in hex */
    char *buf;        /* TC_BUF bytes: answer bytes read and not yet consumed */
    size_t len;
};

/* Connects to 127.0.0.1:port and handshakes, verifying lb's certificate
 * against ca for the address 127.0.0.1. Blocking, every call bounded by
 * HARNESS_WAIT_MS. Fails the test when the handshake does. */
static void tc_open_rcvbuf(struct tclient *t, int port, const char *ca, int rcvbuf)
{
    memset(t, 0, sizeof(*t));
    if (rcvbuf > 0) { /* before the connect, so the window is small from the start */
        t->fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(t->fd, 0);
        setsockopt(t->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_eq(connect(t->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    } else {
        t->fd = harness_connect_ok("127.0.0.1", port);
    }
    int fl = fcntl(t->fd, F_GETFL);
    ck_assert_int_eq(fcntl(t->fd, F_SETFL, fl & ~O_NONBLOCK), 0);
    struct timeval tv = {HARNESS_WAIT_MS / 1000, 0};
    setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    t->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(t->ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(t->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    t->ssl = SSL_new(t->ctx);
    ck_assert_ptr_nonnull(t->ssl);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), "127.0.0.1");
    SSL_set_fd(t->ssl, t->fd);
    t->buf = malloc(TC_BUF);
    ck_assert_ptr_nonnull(t->buf);
    int rc = SSL_connect(t->ssl);
    ck_assert_msg(rc == 1, "TLS handshake with lb's admin port failed: %s",
                  ERR_reason_error_string(ERR_peek_last_error()));
    X509 *cert = SSL_get1_peer_certificate(t->ssl);
    ck_assert_ptr_nonnull(cert);
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, t->cn, sizeof(t->cn));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = BN_bn2hex(bn);
    snprintf(t->serial, sizeof(t->serial), "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(cert);
}

static void tc_open(struct tclient *t, int port, const char *ca)
{
    tc_open_rcvbuf(t, port, ca, 0);
}

static void tc_close(struct tclient *t)
{
    if (t->ssl) {
        SSL_shutdown(t->ssl);
        SSL_free(t->ssl);
    }
    SSL_CTX_free(t->ctx);
    free(t->buf);
    if (t->fd >= 0)
        close(t->fd);
    memset(t, 0, sizeof(*t));
    t->fd = -1;
}

/* Sends text on t in one SSL_write (one TLS record up to 16 KiB). */
static void tc_send(struct tclient *t, const char *text)
{
    ck_assert_int_eq(SSL_write(t->ssl, text, (int)strlen(text)), (int)strlen(text));
}

/* Reads one answer on t: its status, and its body in *body (freed at
 * teardown). The answer must carry a Content-Length and keep the
 * connection open. Bytes of a next answer read with it are kept in t. */
static int tc_read(struct tclient *t, const char **body)
{
    char *buf = t->buf;
    size_t len = t->len;
    char *end = NULL;
    buf[len] = '\0';
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        ck_assert_msg(len < TC_BUF - 1, "answer head too long");
        int n = SSL_read(t->ssl, buf + len, (int)(TC_BUF - 1 - len));
        ck_assert_msg(n > 0, "no answer over TLS (SSL_read %d)", n);
        len += (size_t)n;
        buf[len] = '\0';
    }
    *end = '\0';
    int status = atoi(buf + 9);
    const char *cl = strcasestr(buf, "\r\nContent-Length: ");
    ck_assert_msg(cl != NULL, "no Content-Length: %s", buf);
    ck_assert_msg(strstr(buf, "Connection: close") == NULL, "lb closes the TLS connection: %s",
                  buf);
    size_t head = (size_t)(end + 4 - buf);
    size_t want = head + strtoul(cl + 18, NULL, 10);
    ck_assert(want < TC_BUF);
    while (len < want) {
        int n = SSL_read(t->ssl, buf + len, (int)(TC_BUF - 1 - len));
        ck_assert_msg(n > 0, "answer cut over TLS (SSL_read %d)", n);
        len += (size_t)n;
    }
    *body = harness_strf("%.*s", (int)(want - head), buf + head);
    memmove(buf, buf + want, len - want);
    t->len = len - want;
    return status;
}

/* GET path on t (headers: more lines, each ending in CRLF, or NULL): the
 * answer's status, its body in *body. */
static int tc_get(struct tclient *t, const char *path, const char *headers, const char **body)
{
    tc_send(t, harness_strf("GET %s HTTP/1.1\r\nHost: lb\r\n%s\r\n", path, headers ? headers : ""));
    return tc_read(t, body);
}

/* --- curl and the openssl tool --- */

struct curl_out {
    int exit;        /* curl's exit status */
    int code;        /* the HTTP status, 0 without an answer */
    char *body;      /* freed at teardown */
    const char *err; /* curl's stderr (-v: the TLS details) */
};

/* curl -X method URL (https with --cacert ca when ca is not NULL), header
 * an extra request header line without CRLF (or NULL), data the file sent
 * as the body (or NULL); bounded. */
static struct curl_out curl_req(const char *method, const char *url, const char *ca,
                                const char *header, const char *data)
{
    const char *body_path = harness_strf("%s/curl-body-%ld", harness_dir(), harness_now_ms());
    char *argv[24];
    int n = 0;
    argv[n++] = CURL;
    argv[n++] = "-X";
    argv[n++] = (char *)method;
    argv[n++] = "-sS";
    argv[n++] = "-v";
    argv[n++] = "--max-time";
    argv[n++] = harness_strf("%d", 5 * harness_slow()); /* lb under valgrind is slower */
    argv[n++] = "-o";
    argv[n++] = (char *)body_path;
    argv[n++] = "-w";
    argv[n++] = "%{http_code}";
    if (ca) {
        argv[n++] = "--cacert";
        argv[n++] = (char *)ca;
    }
    if (header) {
        argv[n++] = "-H";
        argv[n++] = (char *)header;
    }
    if (data) {
        argv[n++] = "-H";
        argv[n++] = "Expect:"; /* the body follows the head at once */
        argv[n++] = "--data-binary";
        argv[n++] = (char *)harness_strf("@%s", data);
    }
    argv[n++] = (char *)url;
    argv[n] = NULL;
    const char *out = NULL, *err = NULL;
    struct curl_out r = {0};
    r.exit = harness_run(argv, &out, &err, 10000 * harness_slow());
    r.code = atoi(out ? out : "0");
    r.err = err ? err : "";
    const char *b = access(body_path, F_OK) == 0 ? harness_read_file(body_path) : "";
    r.body = harness_strf("%s", b ? b : "");
    return r;
}

static struct curl_out curl_get(const char *url, const char *ca, const char *header)
{
    return curl_req("GET", url, ca, header, NULL);
}

static const char *https_url(int port, const char *path)
{
    return harness_strf("https://127.0.0.1:%d%s", port, path);
}

/* --- configs --- */

struct pki_certs {
    struct harness_pki pki;
    const char *one, *two; /* admin-1.pem and admin-2.pem, both for IP 127.0.0.1 */
};

static void certs_make(struct pki_certs *c)
{
    harness_pki_init(&c->pki);
    struct harness_cert_opts o = {.sans = "IP:127.0.0.1"};
    c->one = harness_pki_issue(&c->pki, "admin-1", &o);
    c->two = harness_pki_issue(&c->pki, "admin-2", &o);
}

/* The usual config (a backend on a port nobody serves: the admin API is
 * what is tested) with "admin" on admin_port, TLS with cert and key when
 * cert is not NULL, the token when token is not NULL. */
static json_t *tls_config(int admin_port, const char *cert, const char *key, const char *token)
{
    int port = harness_free_port();
    const char *backends = harness_strf("{\"address\": \"%s\"}", harness_lo(harness_free_port()));
    json_t *cfg =
        harness_cfg(&(struct harness_conf){.listen = harness_lo(port), .backends = backends});
    harness_jset(cfg, "log.level", json_string("debug"));
    harness_jset(cfg, "admin.listen", json_string(harness_lo(admin_port)));
    if (token)
        harness_jset(cfg, "admin.token", json_string(token));
    if (cert) {
        harness_jset(cfg, "admin.tls.cert", json_string(cert));
        harness_jset(cfg, "admin.tls.key", json_string(key));
    }
    return cfg;
}

/* SIGHUP, then waits for the next line holding needle ("reload ok",
 * "reload failed"). */
static void reload_expect(struct harness_lb *lb, const char *needle)
{
    int before = harness_log_count(lb->log, needle);
    harness_lb_signal(lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb->log, needle, before + 1, HARNESS_WAIT_MS),
                  "no \"%s\" line after SIGHUP; log %s", needle, harness_read_file(lb->log));
}

/* --- tests --- */

/* The status JSON over TLS is the one over plain HTTP, byte for byte: a
 * plain keep-alive connection opened before a reload turned TLS on goes on
 * in plain HTTP beside a TLS one, and both ask at once (again when a second
 * ticked between the two plain answers: uptime_s). /api/v1/pools through
 * curl is the same too. */
START_TEST(same_answers_as_plain)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = tls_config(aport, NULL, NULL, NULL);
    harness_lb_start_json(&lb, cfg, aport);
    struct harness_hconn plain;
    harness_hconn_open(&plain, aport);
    struct harness_hresp r;
    ck_assert(harness_hconn_sends(&plain, "GET /api/v1/pools HTTP/1.1\r\nHost: lb\r\n\r\n"));
    ck_assert_int_eq(harness_hconn_read(&plain, &r, 0, HARNESS_WAIT_MS), 0);
    const char *pools_plain = harness_strf("%s", r.body);

    harness_jset(cfg, "admin.tls.cert", json_string(c.one));
    harness_jset(cfg, "admin.tls.key", json_string(harness_pki_key(c.one)));
    harness_lb_rewrite_json(&lb, cfg);
    reload_expect(&lb, "reload ok");
    ck_assert(harness_log_contains(lb.log, harness_strf("info: admin API on 127.0.0.1:%d: new "
                                                        "connections use HTTPS",
                                                        aport)));

    struct curl_out cu = curl_get(https_url(aport, "/api/v1/pools"), c.pki.ca_cert, NULL);
    ck_assert_msg(cu.exit == 0 && cu.code == 200, "curl: exit %d, code %d: %s", cu.exit, cu.code,
                  cu.err);
    ck_assert_str_eq(cu.body, pools_plain);

    struct tclient t;
    tc_open(&t, aport, c.pki.ca_cert);
    ck_assert_str_eq(t.cn, "admin-1");
    bool compared = false;
    for (int i = 0; i < 3 && !compared; i++) {
        ck_assert(harness_hconn_sends(&plain, "GET /api/v1/status HTTP/1.1\r\nHost: lb\r\n\r\n"));
        ck_assert_int_eq(harness_hconn_read(&plain, &r, 0, HARNESS_WAIT_MS), 0);
        const char *before = harness_strf("%s", r.body);
        const char *tls_body;
        ck_assert_int_eq(tc_get(&t, "/api/v1/status", NULL, &tls_body), 200);
        ck_assert(harness_hconn_sends(&plain, "GET /api/v1/status HTTP/1.1\r\nHost: lb\r\n\r\n"));
        ck_assert_int_eq(harness_hconn_read(&plain, &r, 0, HARNESS_WAIT_MS), 0);
        if (strcmp(before, r.body) != 0)
            continue; /* a second ticked */
        ck_assert_str_eq(tls_body, before);
        compared = true;
    }
    ck_assert_msg(compared, "the plain status never stayed the same across one TLS request");
    ck_assert_int_eq(harness_jint(jdoc(r.body), "admin.connections"), 2);
    tc_close(&t);
    harness_hconn_close(&plain);
    harness_lb_stop(&lb);
}
END_TEST

/* A request head longer than admin_http's read (4 KiB) in one TLS record,
 * and a second request behind it in the same record: what OpenSSL holds
 * after the first read is no socket event, and is read on all the same. */
START_TEST(requests_held_by_openssl)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    harness_lb_start_json(&lb, tls_config(aport, c.one, harness_pki_key(c.one), NULL), aport);
    struct tclient t;
    tc_open(&t, aport, c.pki.ca_cert);
    char pad[9001];
    memset(pad, 'a', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    tc_send(&t, harness_strf("GET /api/v1/status HTTP/1.1\r\nHost: lb\r\nX-Pad: %s\r\n\r\n"
                             "GET /api/v1/pools/app HTTP/1.1\r\nHost: lb\r\n\r\n",
                             pad));
    const char *body;
    ck_assert_int_eq(tc_read(&t, &body), 200);
    ck_assert_int_eq(harness_jint(jdoc(body), "pid"), lb.pid);
    ck_assert_int_eq(tc_read(&t, &body), 200);
    ck_assert_str_eq(harness_jstr(jdoc(body), "name"), "app");
    /* And a third, sent after both answers, on the same connection. */
    ck_assert_int_eq(tc_get(&t, "/api/v1/pools/app", NULL, &body), 200);
    tc_close(&t);
    harness_lb_stop(&lb);
}
END_TEST

/* Bodies over TLS: a PATCH with Expect: 100-continue gets its 100 once
 * the head passed, then its answer after the body; a refusal on the head
 * (401) with the body unread closes after the answer (the lingering close,
 * close_notify first), and curl reads the answer whole. */
START_TEST(bodies_over_tls)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    harness_lb_start_json(&lb, tls_config(aport, c.one, harness_pki_key(c.one), TOKEN), aport);
    struct tclient t;
    tc_open(&t, aport, c.pki.ca_cert);
    const char *body;
    ck_assert_int_eq(tc_get(&t, "/api/v1/pools/app", AUTH, &body), 200);
    const char *id = harness_jstr(jdoc(body), "backends.0.id");
    const char *patch = "{\"weight\": 3}";
    tc_send(&t, harness_strf("PATCH /api/v1/pools/app/backends/%s HTTP/1.1\r\nHost: lb\r\n" AUTH
                             "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                             "Expect: 100-continue\r\n\r\n",
                             id, strlen(patch)));
    char cont[26] = {0};
    int got = 0;
    while (got < 25) {
        int n = SSL_read(t.ssl, cont + got, 25 - got);
        ck_assert_msg(n > 0, "no 100 Continue over TLS");
        got += n;
    }
    ck_assert_str_eq(cont, "HTTP/1.1 100 Continue\r\n\r\n");
    tc_send(&t, patch);
    ck_assert_int_eq(tc_read(&t, &body), 200);
    ck_assert_int_eq(harness_jint(jdoc(body), "weight"), 3);
    tc_close(&t);

    char big[1001];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *data = harness_write_file("body.json", big);
    struct curl_out cu = curl_req("POST", https_url(aport, "/api/v1/reload"), c.pki.ca_cert,
                                  "Content-Type: application/json", data);
    ck_assert_msg(cu.exit == 0, "curl: exit %d: %s", cu.exit, cu.err);
    ck_assert_int_eq(cu.code, 401);
    ck_assert_str_eq(harness_jstr(jdoc(cu.body), "error"), "missing or invalid bearer token");
    ck_assert(strstr(cu.err, "Connection: close") != NULL);
    tc_open(&t, aport, c.pki.ca_cert);
    ck_assert_int_eq(tc_get(&t, "/api/v1/status", AUTH, &body), 200);
    ck_assert_int_eq(harness_jint(jdoc(body), "admin.tls_handshake_failures"), 0);
    tc_close(&t);
    harness_lb_stop(&lb);
}
END_TEST

/* An answer far larger than the sockets hold, to a client with a small
 * receive buffer that reads only once the answer is on its way: lb's TLS
 * writes wait for writability and go on, and the bytes are curl's. */
START_TEST(large_answer_over_tls)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = tls_config(aport, c.one, harness_pki_key(c.one), NULL);
    int base = harness_free_port();
    harness_jset(cfg, "pools.0.backends", json_array());
    for (int i = 0; i < 10000; i++)
        harness_jappend(
            cfg, "pools.0.backends",
            harness_backend_json(harness_strf("127.0.1.%d:%d", 2 + i / 200, base + i % 200), NULL));
    harness_lb_start_json(&lb, cfg, aport);
    struct curl_out cu = curl_get(https_url(aport, "/api/v1/pools"), c.pki.ca_cert, NULL);
    ck_assert_msg(cu.exit == 0 && cu.code == 200, "curl: exit %d, code %d", cu.exit, cu.code);
    ck_assert_uint_gt(strlen(cu.body), 5000000); /* more than the 4 MiB tcp_wmem allows */

    struct tclient *t = calloc(1, sizeof(*t));
    tc_open_rcvbuf(t, aport, c.pki.ca_cert, 4096);
    tc_send(t, "GET /api/v1/pools HTTP/1.1\r\nHost: lb\r\n\r\n");
    harness_sleep_ms(200); /* lb fills the socket meanwhile; no outcome depends on it */
    const char *body;
    ck_assert_int_eq(tc_read(t, &body), 200);
    ck_assert(strcmp(body, cu.body) == 0);
    ck_assert_int_eq(tc_get(t, "/api/v1/status", NULL, &body), 200); /* and it goes on */
    tc_close(t);
    free(t);
    harness_lb_stop(&lb);
}
END_TEST

/* With a token, TLS changes nothing about it: 401 without, 200 with. */
START_TEST(token_still_required)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    harness_lb_start_json(&lb, tls_config(aport, c.one, harness_pki_key(c.one), TOKEN), aport);
    struct curl_out cu = curl_get(https_url(aport, "/api/v1/status"), c.pki.ca_cert, NULL);
    ck_assert_msg(cu.exit == 0, "curl: exit %d: %s", cu.exit, cu.err);
    ck_assert_int_eq(cu.code, 401);
    ck_assert_str_eq(harness_jstr(jdoc(cu.body), "error"), "missing or invalid bearer token");
    cu =
        curl_get(https_url(aport, "/api/v1/status"), c.pki.ca_cert, "Authorization: Bearer " TOKEN);
    ck_assert_msg(cu.exit == 0, "curl: exit %d: %s", cu.exit, cu.err);
    ck_assert_int_eq(cu.code, 200);
    ck_assert_int_eq(harness_jint(jdoc(cu.body), "pid"), lb.pid);
    harness_lb_stop(&lb);
}
END_TEST

/* Plain HTTP to the TLS port: no HTTP answer, the connection closed, a
 * debug line with OpenSSL's reason; a client that sends nothing is closed
 * at the request deadline (a timeout). lb serves on. */
START_TEST(plain_http_to_tls_port)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = tls_config(aport, c.one, harness_pki_key(c.one), NULL);
    harness_jset(cfg, "admin.request_timeout_ms", json_integer(SHORT_MS));
    harness_lb_start_json(&lb, cfg, aport);

    int fd = harness_connect_ok("127.0.0.1", aport);
    const char *req = "GET /api/v1/status HTTP/1.1\r\nHost: lb\r\n\r\n";
    ck_assert(harness_send_all(fd, req, strlen(req), HARNESS_WAIT_MS));
    unsigned char got[4096];
    ssize_t n = harness_read_eof(fd, got, sizeof(got), HARNESS_WAIT_MS);
    ck_assert_msg(n >= 0, "lb did not close a plain HTTP connection to its TLS port");
    /* Nothing, or one TLS alert record: never an HTTP answer. */
    ck_assert_msg(n == 0 || (n == 7 && got[0] == 0x15), "%zd bytes, first 0x%02x", n, got[0]);
    close(fd);
    ck_assert(harness_lb_log_wait(&lb, "debug: admin: TLS handshake with 127.0.0.1:", 1,
                                  HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(lb.log, "failed: http request; closing the connection"));

    struct curl_out cu =
        curl_get(harness_strf("http://127.0.0.1:%d/api/v1/status", aport), NULL, NULL);
    ck_assert_int_eq(cu.code, 0);
    ck_assert_int_eq(cu.exit, 52); /* "Empty reply from server" */

    /* Connected, silent: closed once the handshake's deadline is past. */
    fd = harness_connect_ok("127.0.0.1", aport);
    ck_assert_msg(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0, "a silent client was not closed");
    close(fd);
    ck_assert(harness_lb_log_wait(&lb,
                                  harness_strf("debug: admin: closing a connection whose TLS "
                                               "handshake did not end within %d ms",
                                               SHORT_MS),
                                  1, HARNESS_WAIT_MS));

    struct tclient t;
    tc_open(&t, aport, c.pki.ca_cert);
    const char *body;
    ck_assert_int_eq(tc_get(&t, "/api/v1/status", NULL, &body), 200);
    json_t *st = jdoc(body);
    ck_assert_int_eq(harness_jint(st, "admin.connections"), 1);
    ck_assert_int_eq(harness_jint(st, "admin.timeouts"), 1);
    ck_assert_int_eq(harness_jint(st, "admin.rejected"), 0);
    ck_assert_int_eq(harness_jint(st, "admin.tls_handshake_failures"), 2); /* ours and curl's */
    ck_assert_int_eq(tc_get(&t, "/metrics", NULL, &body), 200);
    ck_assert(strstr(body, "\nlb_admin_tls_handshake_failures_total 2\n") != NULL);
    tc_close(&t);
    harness_lb_stop(&lb);
}
END_TEST

/* At max_connections a new TLS connection is closed at once, before any
 * handshake (no 503 in plain text on a TLS port); the open one is served. */
START_TEST(max_connections_over_tls)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = tls_config(aport, c.one, harness_pki_key(c.one), NULL);
    harness_jset(cfg, "admin.max_connections", json_integer(1));
    harness_lb_start_json(&lb, cfg, aport);
    struct tclient t;
    tc_open(&t, aport, c.pki.ca_cert);
    struct curl_out cu = curl_get(https_url(aport, "/api/v1/status"), c.pki.ca_cert, NULL);
    ck_assert_int_eq(cu.code, 0);
    ck_assert_msg(cu.exit == 35 || cu.exit == 56, "curl: exit %d: %s", cu.exit, cu.err);
    ck_assert(harness_lb_log_wait(&lb,
                                  "debug: admin: 1 connections open; closing a new TLS "
                                  "connection",
                                  1, HARNESS_WAIT_MS));
    const char *body;
    ck_assert_int_eq(tc_get(&t, "/api/v1/status", NULL, &body), 200);
    json_t *st = jdoc(body);
    ck_assert_int_eq(harness_jint(st, "admin.rejected"), 1);
    ck_assert_int_eq(harness_jint(st, "admin.connections"), 1);
    ck_assert_int_eq(harness_jint(st, "admin.tls_handshake_failures"), 0);
    tc_close(&t);
    harness_lb_stop(&lb);
}
END_TEST

/* A reload with a new certificate: a new connection gets it (curl -v and
 * the openssl tool say so), one opened before goes on with the old one. */
START_TEST(reload_new_certificate)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = tls_config(aport, c.one, harness_pki_key(c.one), NULL);
    harness_lb_start_json(&lb, cfg, aport);
    ck_assert(harness_log_contains(
        lb.log, harness_strf("info: admin API listening on 127.0.0.1:%d (HTTPS)", aport)));
    struct tclient old;
    tc_open(&old, aport, c.pki.ca_cert);
    ck_assert_str_eq(old.cn, "admin-1");
    const char *body;
    ck_assert_int_eq(tc_get(&old, "/api/v1/status", NULL, &body), 200);

    harness_jset(cfg, "admin.tls.cert", json_string(c.two));
    harness_jset(cfg, "admin.tls.key", json_string(harness_pki_key(c.two)));
    harness_lb_rewrite_json(&lb, cfg);
    reload_expect(&lb, "reload ok");

    struct curl_out cu = curl_get(https_url(aport, "/api/v1/status"), c.pki.ca_cert, NULL);
    ck_assert_msg(cu.exit == 0 && cu.code == 200, "curl: exit %d, code %d: %s", cu.exit, cu.code,
                  cu.err);
    ck_assert_msg(strstr(cu.err, "subject: CN=admin-2") != NULL, "curl -v: %s", cu.err);

    char *argv[] = {OPENSSL,   "s_client",    "-connect",   harness_strf("127.0.0.1:%d", aport),
                    "-CAfile", c.pki.ca_cert, "-showcerts", NULL};
    const char *out = NULL, *err = NULL;
    int rc = harness_run(argv, &out, &err, 10000); /* stdin is /dev/null: it ends at once */
    ck_assert_msg(rc == 0, "openssl s_client: %d: %s", rc, err);
    ck_assert_msg(strstr(out, "subject=CN = admin-2") != NULL, "s_client: %s", out);
    ck_assert_msg(strstr(out, "Verify return code: 0 (ok)") != NULL, "s_client: %s", out);

    struct tclient fresh;
    tc_open(&fresh, aport, c.pki.ca_cert);
    ck_assert_str_eq(fresh.cn, "admin-2");
    ck_assert_str_ne(fresh.serial, old.serial);
    ck_assert_int_eq(tc_get(&fresh, "/api/v1/status", NULL, &body), 200);

    /* The connection from before the reload: still TLS, still answered. */
    ck_assert_int_eq(tc_get(&old, "/api/v1/status", NULL, &body), 200);
    ck_assert_int_eq(harness_jint(jdoc(body), "reloads.ok"), 1);
    ck_assert_int_eq(harness_jint(jdoc(body), "admin.connections"), 2);
    tc_close(&old);
    tc_close(&fresh);
    harness_lb_stop(&lb);
}
END_TEST

/* A reload that turns TLS off on the same address: new connections are
 * plain HTTP, one opened over TLS before goes on over TLS; on again, and
 * new ones are TLS. */
START_TEST(reload_turns_tls_off_and_on)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = tls_config(aport, c.one, harness_pki_key(c.one), NULL);
    harness_lb_start_json(&lb, cfg, aport);
    struct tclient t;
    tc_open(&t, aport, c.pki.ca_cert);

    harness_jdel(cfg, "admin.tls");
    harness_lb_rewrite_json(&lb, cfg);
    reload_expect(&lb, "reload ok");
    ck_assert(harness_log_contains(lb.log, harness_strf("info: admin API on 127.0.0.1:%d: new "
                                                        "connections use plain HTTP",
                                                        aport)));
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    struct curl_out cu = curl_get(https_url(aport, "/api/v1/status"), c.pki.ca_cert, NULL);
    ck_assert_int_eq(cu.code, 0);
    ck_assert_int_eq(cu.exit, 35); /* the TLS handshake failed */
    const char *body;
    ck_assert_int_eq(tc_get(&t, "/api/v1/status", NULL, &body), 200);
    tc_close(&t);

    harness_jset(cfg, "admin.tls.cert", json_string(c.two));
    harness_jset(cfg, "admin.tls.key", json_string(harness_pki_key(c.two)));
    harness_lb_rewrite_json(&lb, cfg);
    reload_expect(&lb, "reload ok");
    tc_open(&t, aport, c.pki.ca_cert);
    ck_assert_str_eq(t.cn, "admin-2");
    ck_assert_int_eq(tc_get(&t, "/api/v1/status", NULL, &body), 200);
    ck_assert_int_eq(harness_jint(jdoc(body), "reloads.ok"), 2);
    tc_close(&t);
    harness_lb_stop(&lb);
}
END_TEST

/* A key that does not match the certificate: the reload fails whole, the
 * status says why, and the old certificate is still served. */
START_TEST(reload_mismatched_key_refused)
{
    struct pki_certs c;
    certs_make(&c);
    int aport = harness_free_port();
    struct harness_lb lb;
    json_t *cfg = tls_config(aport, c.one, harness_pki_key(c.one), NULL);
    harness_lb_start_json(&lb, cfg, aport);

    harness_jset(cfg, "admin.tls.cert", json_string(c.two));
    harness_jset(cfg, "admin.tls.key", json_string(harness_pki_key(c.one)));
    harness_lb_rewrite_json(&lb, cfg);
    reload_expect(&lb, "reload failed");
    const char *why =
        harness_strf("%s does not match the certificate in %s", harness_pki_key(c.one), c.two);

    struct tclient t;
    tc_open(&t, aport, c.pki.ca_cert);
    ck_assert_str_eq(t.cn, "admin-1");
    const char *body;
    ck_assert_int_eq(tc_get(&t, "/api/v1/status", NULL, &body), 200);
    json_t *st = jdoc(body);
    ck_assert_int_eq(harness_jint(st, "reloads.ok"), 0);
    ck_assert_int_eq(harness_jint(st, "reloads.failed"), 1);
    const char *last = harness_jstr(st, "reloads.last_error");
    ck_assert_msg(strstr(last, ": admin.tls: ") != NULL && strstr(last, why) != NULL,
                  "last_error: %s", last);
    tc_close(&t);
    harness_lb_stop(&lb);
}
END_TEST

/* lb -t refuses the same file, naming both files. */
START_TEST(check_mismatched_key)
{
    struct pki_certs c;
    certs_make(&c);
    const char *path = harness_write_file(
        "mismatch.json",
        harness_jtext(tls_config(harness_free_port(), c.two, harness_pki_key(c.one), NULL)));
    char *argv[] = {LB, "-t", "-c", (char *)path, NULL};
    const char *out = NULL, *err = NULL;
    int status = harness_run(argv, &out, &err, 10000);
    harness_assert_no_sanitizer_report(err, "lb -t stderr");
    ck_assert_msg(status == 1, "lb -t: status %d, stderr %s", status, err);
    ck_assert_str_eq(out, "");
    const char *why =
        harness_strf("%s does not match the certificate in %s", harness_pki_key(c.one), c.two);
    ck_assert_msg(strstr(err, path) != NULL && strstr(err, ": admin.tls: ") != NULL &&
                      strstr(err, why) != NULL,
                  "lb -t stderr: %s", err);

    /* The matching key passes. */
    path = harness_write_file(
        "match.json",
        harness_jtext(tls_config(harness_free_port(), c.two, harness_pki_key(c.two), NULL)));
    argv[3] = (char *)path;
    status = harness_run(argv, &out, &err, 10000);
    ck_assert_msg(status == 0, "lb -t: status %d, stderr %s", status, err);
    ck_assert_str_eq(out, "configuration ok\n");
}
END_TEST

static Suite *tls_admin_suite(void)
{
    Suite *s = suite_create("tls_admin");
    TCase *tc = harness_tcase("tls_admin");
    tcase_add_test(tc, same_answers_as_plain);
    tcase_add_test(tc, requests_held_by_openssl);
    tcase_add_test(tc, bodies_over_tls);
    tcase_add_test(tc, large_answer_over_tls);
    tcase_add_test(tc, token_still_required);
    tcase_add_test(tc, plain_http_to_tls_port);
    tcase_add_test(tc, max_connections_over_tls);
    tcase_add_test(tc, reload_new_certificate);
    tcase_add_test(tc, reload_turns_tls_off_and_on);
    tcase_add_test(tc, reload_mismatched_key_refused);
    tcase_add_test(tc, check_mismatched_key);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(tls_admin_suite)
