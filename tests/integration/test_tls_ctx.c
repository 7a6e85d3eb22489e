/* test_tls_ctx: lb/io/tls_ctx.c with certificates from the harness's PKI
 * (made by the openssl tool, hence here and not in tests/unit/, which does
 * not use the harness) and real handshakes in process: a server SSL and a
 * client SSL over a non-blocking socketpair (loopback TCP for the end of
 * stream), driven in turn until both are done. SNI picks the certificate, versions are refused,
 * ALPN follows the server's list, sessions resume, chains are sent, clients verify, an EOF without
 * close_notify reads as an end of stream, and each error and warning has its exact words. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lb/io/tls_ctx.h"
#include "tests/harness.h"
#include "tests/test.h"

#define CHECK(expr, ...)                                                                           \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* ---- helpers ---- */

/* A server SSL and a client SSL over a socketpair. done: 1 when the
 * side's handshake finished, -1 when it failed (reason: OpenSSL's reason
 * code of the failure, 0 for none). */
struct pair {
    int sfd, cfd;
    SSL *s, *c;
    int sdone, cdone;
    int sreason, creason;
    bool tcp; /* loopback TCP: bytes may take a moment to arrive */
};

/* A connected loopback TCP pair in fds (server side first), blocking. */
static void tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fds[1], 0);
    ck_assert_int_eq(connect(fds[1], (struct sockaddr *)&a, sizeof(a)), 0);
    fds[0] = accept(l, NULL, NULL);
    ck_assert_int_ge(fds[0], 0);
    close(l);
}

/* The server side of a new pair: over a socketpair, or loopback TCP. */
static void pair_open_on(struct pair *p, SSL_CTX *server, bool tcp)
{
    memset(p, 0, sizeof(*p));
    int fds[2];
    if (tcp)
        tcp_pair(fds);
    else
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(fcntl(fds[i], F_SETFL, O_NONBLOCK), 0);
    p->sfd = fds[0];
    p->cfd = fds[1];
    p->tcp = tcp;
    p->s = SSL_new(server);
    ck_assert_ptr_nonnull(p->s);
    ck_assert_int_eq(SSL_set_fd(p->s, p->sfd), 1);
    SSL_set_accept_state(p->s);
}

static void pair_open(struct pair *p, SSL_CTX *server)
{
    pair_open_on(p, server, false);
}

/* The client side from a client tls_ctx (SNI and names as it sets them). */
static void pair_client(struct pair *p, struct tls_ctx *client)
{
    p->c = tls_client_ssl_new(client, p->cfd);
    ck_assert_ptr_nonnull(p->c);
}

/* The client side from a plain SSL_CTX (versions lb would not allow). */
static void pair_client_raw(struct pair *p, SSL_CTX *client)
{
    p->c = SSL_new(client);
    ck_assert_ptr_nonnull(p->c);
    ck_assert_int_eq(SSL_set_fd(p->c, p->cfd), 1);
    SSL_set_connect_state(p->c);
}

static void step(SSL *ssl, int *done, int *reason)
{
    if (*done)
        return;
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        *done = 1;
        return;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    *done = -1;
    *reason = ERR_GET_REASON(ERR_peek_error());
    ERR_clear_error();
}

/* Both handshakes in turn until both are done or failed (bounded: a side
 * left waiting for a peer that failed stops after the rounds). */
static void pair_drive(struct pair *p)
{
    for (int i = 0; i < 200 && !(p->sdone && p->cdone); i++) {
        step(p->c, &p->cdone, &p->creason);
        step(p->s, &p->sdone, &p->sreason);
        if (p->tcp) {
            struct pollfd pfd[2] = {{.fd = p->sfd, .events = POLLIN},
                                    {.fd = p->cfd, .events = POLLIN}};
            poll(pfd, 2, 5);
        }
    }
}

static void pair_free(struct pair *p)
{
    SSL_free(p->s);
    SSL_free(p->c);
    if (p->sfd >= 0)
        close(p->sfd);
    if (p->cfd >= 0)
        close(p->cfd);
    ERR_clear_error();
}

/* A clean close both ways (close_notify), so OpenSSL keeps the sessions. */
static void pair_shutdown(struct pair *p)
{
    SSL_shutdown(p->c);
    SSL_shutdown(p->s);
    SSL_shutdown(p->c);
    ERR_clear_error();
}

/* Server writes one byte and the client reads it: the client has then
 * read what came after the handshake (TLS 1.3 tickets). */
static void pair_byte(struct pair *p)
{
    char b = 'x', got = 0;
    ck_assert_int_eq(SSL_write(p->s, &b, 1), 1);
    int r;
    for (int i = 0; (r = SSL_read(p->c, &got, 1)) < 0 && i < 100; i++) {
        ck_assert_int_eq(SSL_get_error(p->c, r), SSL_ERROR_WANT_READ);
        struct pollfd pfd = {.fd = p->cfd, .events = POLLIN};
        ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
    }
    ck_assert_int_eq(r, 1);
    ck_assert_int_eq(got, 'x');
}

/* The subject CN of the certificate the client got. */
static const char *peer_cn(SSL *c)
{
    X509 *x = SSL_get0_peer_certificate(c);
    if (!x)
        return "(none)";
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) < 0)
        return "(no CN)";
    return harness_strf("%s", cn);
}

static struct tls_ctx *server_new(const struct tls_server_opts *o)
{
    char err[512], warn[512];
    struct tls_ctx *t = tls_server_ctx_new(o, err, sizeof(err), warn, sizeof(warn));
    ck_assert_msg(t != NULL, "tls_server_ctx_new: %s", err);
    ck_assert_str_eq(warn, "");
    return t;
}

static struct tls_ctx *client_new(const struct tls_client_opts *o)
{
    char err[512];
    struct tls_ctx *t = tls_client_ctx_new(o, err, sizeof(err));
    ck_assert_msg(t != NULL, "tls_client_ctx_new: %s", err);
    return t;
}

/* One certificate as a server's certificate list entry. */
static struct tls_cert_files files(const char *pem)
{
    return (struct tls_cert_files){pem, harness_pki_key(pem)};
}

/* The server's error for o, which must fail; checks err and that
 * OpenSSL's queue is empty. */
static const char *server_error(const struct tls_server_opts *o)
{
    char err[512], warn[512];
    strcpy(warn, "junk");
    struct tls_ctx *t = tls_server_ctx_new(o, err, sizeof(err), warn, sizeof(warn));
    CHECK(t == NULL, "tls_server_ctx_new succeeded");
    CHECK(ERR_peek_error() == 0, "OpenSSL's error queue is not empty");
    ck_assert_str_eq(warn, "");
    return harness_strf("%s", err);
}

static const char *client_error(const struct tls_client_opts *o)
{
    char err[512];
    struct tls_ctx *t = tls_client_ctx_new(o, err, sizeof(err));
    CHECK(t == NULL, "tls_client_ctx_new succeeded");
    CHECK(ERR_peek_error() == 0, "OpenSSL's error queue is not empty");
    return harness_strf("%s", err);
}

/* A handshake of server t with a non-verifying client sending sni (NULL:
 * none): the CN of the certificate the client got. */
static const char *cn_for_sni(struct tls_ctx *t, const char *sni)
{
    struct tls_ctx *c = client_new(&(struct tls_client_opts){.server_name = sni});
    struct pair p;
    pair_open(&p, tls_ctx_ssl(t));
    pair_client(&p, c);
    pair_drive(&p);
    CHECK(p.sdone == 1 && p.cdone == 1, "sni %s: handshake: server %d (%d), client %d (%d)",
          sni ? sni : "(none)", p.sdone, p.sreason, p.cdone, p.creason);
    const char *got = SSL_get_servername(p.s, TLSEXT_NAMETYPE_host_name);
    if (sni)
        CHECK(got && strcmp(got, sni) == 0, "server saw SNI %s, want %s", got ? got : "(none)",
              sni);
    else
        CHECK(got == NULL, "server saw SNI %s, want none", got);
    const char *cn = peer_cn(p.c);
    pair_free(&p);
    tls_ctx_unref(c);
    return cn;
}

/* now + days days + secs seconds as tls_ctx writes dates. */
static const char *date_at(time_t t0, int days, long secs)
{
    time_t t = t0 + (time_t)days * 86400 + secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
    return harness_strf("%s", buf);
}

/* got is want with one of the dates t0..t1 (+ days, secs) in place of
 * "%D" (the clock may tick between the issue and the check). */
static void check_dated(const char *got, const char *want, time_t t0, time_t t1, int days,
                        long secs)
{
    const char *at = strstr(want, "%D");
    ck_assert_ptr_nonnull(at);
    for (time_t t = t0; t <= t1; t++) {
        const char *w =
            harness_strf("%.*s%s%s", (int)(at - want), want, date_at(t, days, secs), at + 2);
        if (strcmp(got, w) == 0)
            return;
    }
    ck_abort_msg("got \"%s\", want \"%s\" with %%D = %s", got, want, date_at(t0, days, secs));
}

/* ---- SNI ---- */

/* The default first, then exact names, a wildcard, a CN-only certificate
 * and an RSA one: each name gets its certificate, anything else the
 * default. */
START_TEST(sni_picks_the_certificate)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files certs[] = {
        files(harness_pki_issue(&pki, "default", &(struct harness_cert_opts){.sans = "d.test"})),
        files(harness_pki_issue(&pki, "a", &(struct harness_cert_opts){.sans = "a.test"})),
        files(harness_pki_issue(&pki, "wild", &(struct harness_cert_opts){.sans = "*.b.test"})),
        files(
            harness_pki_issue(&pki, "exact", &(struct harness_cert_opts){.sans = "exact.b.test"})),
        files(harness_pki_issue(&pki, "cnonly", &(struct harness_cert_opts){.cn = "cn.test"})),
        files(harness_pki_issue(
            &pki, "rsa", &(struct harness_cert_opts){.sans = "r.test,IP:127.0.0.1", .rsa = true})),
    };
    struct tls_ctx *t = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 6});
    static const struct {
        const char *sni, *cn;
    } cases[] = {
        {"a.test", "a"},           {"A.TEST", "a"},           {"x.b.test", "wild"},
        {"X.B.Test", "wild"},      {"exact.b.test", "exact"}, {"cn.test", "cn.test"},
        {"r.test", "rsa"},         {"d.test", "default"},     {"b.test", "default"},
        {"y.x.b.test", "default"}, {".b.test", "default"},    {"other.test", "default"},
        {NULL, "default"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *cn = cn_for_sni(t, cases[i].sni);
        CHECK(strcmp(cn, cases[i].cn) == 0, "sni %s: got the certificate %s, want %s",
              cases[i].sni ? cases[i].sni : "(none)", cn, cases[i].cn);
    }
    tls_ctx_unref(t);
    harness_pki_free(&pki);
}
END_TEST

/* A reload drops its reference while a session holds its own: the SSL
 * made before still handshakes (SNI reads the context) after the owner's
 * unref, and the session's unref frees it (ASan: no leak, no use after
 * free). */
START_TEST(reference_outlives_the_owner)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files certs[] = {
        files(harness_pki_issue(&pki, "default", &(struct harness_cert_opts){.sans = "d.test"})),
        files(harness_pki_issue(&pki, "a", &(struct harness_cert_opts){.sans = "a.test"})),
    };
    struct tls_ctx *t = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 2});
    ck_assert_ptr_null(tls_client_server_name(t));
    struct tls_ctx *session_ref = tls_ctx_ref(t);
    ck_assert_ptr_eq(session_ref, t);
    struct tls_ctx *c = client_new(&(struct tls_client_opts){.server_name = "a.test"});
    struct pair p;
    pair_open(&p, tls_ctx_ssl(t));
    tls_ctx_unref(t); /* the reload's */
    pair_client(&p, c);
    pair_drive(&p);
    ck_assert_int_eq(p.sdone, 1);
    ck_assert_int_eq(p.cdone, 1);
    ck_assert_str_eq(peer_cn(p.c), "a");
    pair_free(&p);
    tls_ctx_unref(session_ref);
    tls_ctx_unref(c);
    c = client_new(&(struct tls_client_opts){.server_name = NULL});
    ck_assert_ptr_null(tls_client_server_name(c));
    tls_ctx_unref(c);
    tls_ctx_unref(NULL);
    harness_pki_free(&pki);
}
END_TEST

/* ---- versions ---- */

/* A plain client context limited to [min, max], any cipher allowed (so a
 * refusal is the server's). */
static SSL_CTX *raw_client(int min, int max)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c);
    SSL_CTX_set_security_level(c, 0);
    ck_assert_int_eq(SSL_CTX_set_cipher_list(c, "ALL:@SECLEVEL=0"), 1);
    ck_assert_int_eq(SSL_CTX_set_min_proto_version(c, min), 1);
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(c, max), 1);
    return c;
}

/* The outcome of server t against a raw client of [min, max]: the
 * version agreed, or -(the server's failure reason). */
static int version_with(struct tls_ctx *t, int min, int max)
{
    SSL_CTX *cc = raw_client(min, max);
    struct pair p;
    pair_open(&p, tls_ctx_ssl(t));
    pair_client_raw(&p, cc);
    pair_drive(&p);
    int v;
    if (p.sdone == 1 && p.cdone == 1)
        v = SSL_version(p.s);
    else {
        CHECK(p.sdone == -1 && p.cdone == -1, "server %d, client %d", p.sdone, p.cdone);
        v = -p.sreason;
    }
    pair_free(&p);
    SSL_CTX_free(cc);
    return v;
}

START_TEST(versions)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files certs[] = {files(harness_pki_issue(&pki, "s", NULL))};
    struct tls_ctx *dflt = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 1});
    ck_assert_int_eq(version_with(dflt, TLS1_VERSION, TLS1_1_VERSION), -SSL_R_UNSUPPORTED_PROTOCOL);
    ck_assert_int_eq(version_with(dflt, TLS1_VERSION, TLS1_2_VERSION), TLS1_2_VERSION);
    ck_assert_int_eq(version_with(dflt, TLS1_VERSION, TLS1_3_VERSION), TLS1_3_VERSION);
    struct tls_ctx *v12 = server_new(
        &(struct tls_server_opts){.certs = certs, .ncerts = 1, .min_version = "TLSv1.2"});
    ck_assert_int_eq(version_with(v12, TLS1_VERSION, TLS1_1_VERSION), -SSL_R_UNSUPPORTED_PROTOCOL);
    ck_assert_int_eq(version_with(v12, TLS1_2_VERSION, TLS1_2_VERSION), TLS1_2_VERSION);
    struct tls_ctx *v13 = server_new(
        &(struct tls_server_opts){.certs = certs, .ncerts = 1, .min_version = "TLSv1.3"});
    ck_assert_int_eq(version_with(v13, TLS1_VERSION, TLS1_2_VERSION), -SSL_R_UNSUPPORTED_PROTOCOL);
    ck_assert_int_eq(version_with(v13, TLS1_2_VERSION, TLS1_3_VERSION), TLS1_3_VERSION);
    tls_ctx_unref(dflt);
    tls_ctx_unref(v12);
    tls_ctx_unref(v13);
    harness_pki_free(&pki);
}
END_TEST

/* ---- ALPN ---- */

/* What server t selects for a client offering wire (ALPN wire format, NULL:
 * no ALPN): the name both sides see, "" for none. */
static const char *alpn_with(struct tls_ctx *t, const char *wire, size_t len)
{
    struct tls_ctx *c = client_new(&(struct tls_client_opts){.server_name = "s.test"});
    struct pair p;
    pair_open(&p, tls_ctx_ssl(t));
    pair_client(&p, c);
    if (wire)
        ck_assert_int_eq(SSL_set_alpn_protos(p.c, (const unsigned char *)wire, (unsigned)len), 0);
    pair_drive(&p);
    CHECK(p.sdone == 1 && p.cdone == 1, "handshake: server %d (%d), client %d (%d)", p.sdone,
          p.sreason, p.cdone, p.creason);
    const unsigned char *sel, *csel;
    unsigned slen, clen;
    SSL_get0_alpn_selected(p.s, &sel, &slen);
    SSL_get0_alpn_selected(p.c, &csel, &clen);
    CHECK(slen == clen && (slen == 0 || memcmp(sel, csel, slen) == 0),
          "server and client disagree");
    const char *out = slen ? harness_strf("%.*s", (int)slen, (const char *)sel) : "";
    pair_free(&p);
    tls_ctx_unref(c);
    return out;
}

#define WIRE(s) s, sizeof(s) - 1

START_TEST(alpn)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files certs[] = {files(harness_pki_issue(&pki, "s", NULL))};
    const char *h1[] = {"http/1.1"};
    struct tls_ctx *t =
        server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 1, .alpn = h1, .nalpn = 1});
    ck_assert_str_eq(alpn_with(t, WIRE("\x02h2\x08http/1.1")), "http/1.1");
    ck_assert_str_eq(alpn_with(t, WIRE("\x02h2")), "");
    ck_assert_str_eq(alpn_with(t, NULL, 0), "");
    /* The server's order wins over the client's. */
    const char *both[] = {"http/1.1", "h2"};
    struct tls_ctx *t2 = server_new(
        &(struct tls_server_opts){.certs = certs, .ncerts = 1, .alpn = both, .nalpn = 2});
    ck_assert_str_eq(alpn_with(t2, WIRE("\x02h2\x08http/1.1")), "http/1.1");
    ck_assert_str_eq(alpn_with(t2, WIRE("\x02h2")), "h2");
    /* No list: never ALPN. */
    struct tls_ctx *t3 = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 1});
    ck_assert_str_eq(alpn_with(t3, WIRE("\x02h2\x08http/1.1")), "");
    tls_ctx_unref(t);
    tls_ctx_unref(t2);
    tls_ctx_unref(t3);
    harness_pki_free(&pki);
}
END_TEST

/* ---- resumption ---- */

/* How the first connection of resume() ends. */
enum ending { BOTH_SHUT, CLIENT_FREES_UNSHUT, SERVER_FREES_UNSHUT };

/* Two handshakes of client c (at most max, tickets or not) with server t,
 * the second offering the first's session, the first ended as end says:
 * whether the second resumed (SSL_session_reused, the same on both sides
 * or the test fails), checking the CN the client saw each time. */
static int resume_ended(struct tls_ctx *t, struct tls_ctx *c, int max, bool tickets, const char *cn,
                        enum ending end)
{
    SSL_SESSION *sess = NULL;
    int reused = -1;
    for (int round = 0; round < 2; round++) {
        struct pair p;
        pair_open(&p, tls_ctx_ssl(t));
        pair_client(&p, c);
        ck_assert_int_eq(SSL_set_max_proto_version(p.c, max), 1);
        if (!tickets)
            SSL_set_options(p.c, SSL_OP_NO_TICKET);
        if (sess)
            ck_assert_int_eq(SSL_set_session(p.c, sess), 1);
        pair_drive(&p);
        CHECK(p.sdone == 1 && p.cdone == 1, "round %d: server %d (%d), client %d (%d)", round,
              p.sdone, p.sreason, p.cdone, p.creason);
        ck_assert_int_eq(SSL_version(p.c), max);
        CHECK(SSL_session_reused(p.c) == SSL_session_reused(p.s),
              "round %d: reused client %d server %d", round, SSL_session_reused(p.c),
              SSL_session_reused(p.s));
        if (round == 0)
            ck_assert_int_eq(SSL_session_reused(p.c), 0);
        else
            reused = SSL_session_reused(p.c);
        ck_assert_str_eq(peer_cn(p.c), cn);
        pair_byte(&p);
        if (!sess)
            sess = SSL_get1_session(p.c);
        ck_assert_ptr_nonnull(sess);
        if (round == 1 || end == BOTH_SHUT)
            pair_shutdown(&p);
        else if (end == CLIENT_FREES_UNSHUT)
            SSL_shutdown(p.s);
        else
            SSL_shutdown(p.c);
        ERR_clear_error();
        pair_free(&p);
    }
    SSL_SESSION_free(sess);
    return reused;
}

static void resume(struct tls_ctx *t, struct tls_ctx *c, int max, bool tickets, const char *cn)
{
    CHECK(resume_ended(t, c, max, tickets, cn, BOTH_SHUT) == 1,
          "version %x, tickets %d, sni cert %s: not resumed", max, tickets, cn);
}

START_TEST(session_resumption)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files certs[] = {
        files(harness_pki_issue(&pki, "default", &(struct harness_cert_opts){.sans = "d.test"})),
        files(harness_pki_issue(&pki, "a", &(struct harness_cert_opts){.sans = "a.test"})),
    };
    struct tls_ctx *t = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 2});
    struct tls_ctx *cd = client_new(&(struct tls_client_opts){.server_name = "d.test"});
    struct tls_ctx *ca = client_new(&(struct tls_client_opts){.server_name = "a.test"});
    resume(t, cd, TLS1_3_VERSION, true, "default");
    resume(t, ca, TLS1_3_VERSION, true, "a"); /* the SNI-chosen SSL_CTX: tickets still work */
    resume(t, cd, TLS1_2_VERSION, true, "default");
    resume(t, ca, TLS1_2_VERSION, true, "a");
    resume(t, cd, TLS1_2_VERSION, false, "default"); /* session ids: the server cache */
    resume(t, ca, TLS1_2_VERSION, false, "a");
    /* OpenSSL forgets the session of an SSL freed without SSL_shutdown
     * (ssl_clear_bad_session): the client's is no longer resumable, and
     * the server's leaves its cache (session ids; tickets need none). */
    ck_assert_int_eq(resume_ended(t, cd, TLS1_3_VERSION, true, "default", CLIENT_FREES_UNSHUT), 0);
    ck_assert_int_eq(resume_ended(t, cd, TLS1_2_VERSION, true, "default", CLIENT_FREES_UNSHUT), 0);
    ck_assert_int_eq(resume_ended(t, cd, TLS1_3_VERSION, true, "default", SERVER_FREES_UNSHUT), 1);
    ck_assert_int_eq(resume_ended(t, cd, TLS1_2_VERSION, true, "default", SERVER_FREES_UNSHUT), 1);
    ck_assert_int_eq(resume_ended(t, cd, TLS1_2_VERSION, false, "default", SERVER_FREES_UNSHUT), 0);
    tls_ctx_unref(cd);
    tls_ctx_unref(ca);
    tls_ctx_unref(t);
    harness_pki_free(&pki);
}
END_TEST

/* ---- verification by a client ---- */

/* A handshake of server t with client c: NULL when the client accepted
 * the server, else tls_verify_error's reason (or the client's failure). */
static const char *verify_with(struct tls_ctx *t, struct tls_ctx *c, int *chain_len)
{
    struct pair p;
    pair_open(&p, tls_ctx_ssl(t));
    pair_client(&p, c);
    pair_drive(&p);
    char buf[256];
    const char *why = tls_verify_error(p.c, buf, sizeof(buf));
    const char *out = NULL;
    if (p.cdone == 1) {
        CHECK(why == NULL, "handshake done, yet %s", why);
        CHECK(p.sdone == 1, "server %d (%d)", p.sdone, p.sreason);
    } else {
        CHECK(p.cdone == -1, "client %d", p.cdone);
        CHECK(why != NULL, "client failed (reason %d) without a verify error", p.creason);
        ck_assert_int_eq(p.creason, SSL_R_CERTIFICATE_VERIFY_FAILED);
        out = harness_strf("%s", why);
    }
    if (chain_len) {
        STACK_OF(X509) *chain = SSL_get_peer_cert_chain(p.c);
        *chain_len = chain ? sk_X509_num(chain) : 0;
    }
    pair_free(&p);
    return out;
}

START_TEST(client_verifies)
{
    struct harness_pki pki, other;
    harness_pki_init(&pki);
    harness_pki_init(&other);
    struct tls_cert_files certs[] = {files(harness_pki_issue(
        &pki, "a", &(struct harness_cert_opts){.sans = "a.test,*.w.test,IP:127.0.0.1"}))};
    struct tls_ctx *t = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 1});
    static const struct {
        const char *name, *why;
    } cases[] = {
        {"a.test", NULL},
        {"A.Test", NULL},
        {"x.w.test", NULL},
        {"127.0.0.1", NULL},
        {"other.test", "certificate verify failed: hostname mismatch"},
        {"x.y.w.test", "certificate verify failed: hostname mismatch"},
        {"127.0.0.2", "certificate verify failed: IP address mismatch"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tls_ctx *c = client_new(&(struct tls_client_opts){
            .verify = true, .ca = pki.ca_cert, .server_name = cases[i].name});
        ck_assert_str_eq(tls_client_server_name(c), cases[i].name);
        const char *why = verify_with(t, c, NULL);
        if (cases[i].why)
            CHECK(why && strcmp(why, cases[i].why) == 0, "%s: got \"%s\", want \"%s\"",
                  cases[i].name, why ? why : "(accepted)", cases[i].why);
        else
            CHECK(why == NULL, "%s: refused: %s", cases[i].name, why);
        tls_ctx_unref(c);
    }
    /* An IP literal is not sent as SNI. */
    struct tls_ctx *cip = client_new(
        &(struct tls_client_opts){.verify = true, .ca = pki.ca_cert, .server_name = "127.0.0.1"});
    struct pair p;
    pair_open(&p, tls_ctx_ssl(t));
    pair_client(&p, cip);
    pair_drive(&p);
    ck_assert_int_eq(p.cdone, 1);
    ck_assert_ptr_null(SSL_get_servername(p.s, TLSEXT_NAMETYPE_host_name));
    pair_free(&p);
    tls_ctx_unref(cip);
    /* Another CA's client refuses; without verify it accepts. */
    struct tls_ctx *cother = client_new(
        &(struct tls_client_opts){.verify = true, .ca = other.ca_cert, .server_name = "a.test"});
    const char *why = verify_with(t, cother, NULL);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(why, "certificate verify failed: unable to get local issuer certificate");
    struct tls_ctx *cnone = client_new(
        &(struct tls_client_opts){.verify = false, .ca = other.ca_cert, .server_name = "x.test"});
    ck_assert_ptr_null(verify_with(t, cnone, NULL));
    tls_ctx_unref(cother);
    tls_ctx_unref(cnone);
    tls_ctx_unref(t);
    harness_pki_free(&pki);
    harness_pki_free(&other);
}
END_TEST

/* The chain in the PEM is sent: a client trusting only the root accepts
 * the intermediate's certificate, and refuses the same leaf served
 * without its intermediate. */
START_TEST(chain_is_sent)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *pem = harness_pki_issue(
        &pki, "leaf", &(struct harness_cert_opts){.sans = "leaf.test", .intermediate = true});
    struct tls_cert_files certs[] = {files(pem)};
    struct tls_ctx *t = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 1});
    struct tls_ctx *c = client_new(
        &(struct tls_client_opts){.verify = true, .ca = pki.ca_cert, .server_name = "leaf.test"});
    int chain_len = 0;
    ck_assert_ptr_null(verify_with(t, c, &chain_len));
    ck_assert_int_eq(chain_len, 2);

    const char *text = harness_read_file(pem);
    const char *end = strstr(text, "-----END CERTIFICATE-----\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_ptr_nonnull(strstr(end + 1, "-----BEGIN CERTIFICATE-----")); /* the intermediate */
    const char *alone = harness_write_file(
        "leaf-alone.pem",
        harness_strf("%.*s", (int)(end - text + strlen("-----END CERTIFICATE-----\n")), text));
    struct tls_cert_files certs2[] = {{alone, certs[0].key}};
    struct tls_ctx *t2 = server_new(&(struct tls_server_opts){.certs = certs2, .ncerts = 1});
    const char *why = verify_with(t2, c, &chain_len);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(why, "certificate verify failed: unable to get local issuer certificate");
    tls_ctx_unref(t);
    tls_ctx_unref(t2);
    tls_ctx_unref(c);
    harness_pki_free(&pki);
}
END_TEST

/* A client certificate is checked like a server's, and sent. */
START_TEST(client_certificate)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files certs[] = {files(harness_pki_issue(&pki, "s", NULL))};
    const char *cpem = harness_pki_issue(&pki, "client", NULL);
    struct tls_ctx *t = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 1});
    SSL_CTX_set_verify(tls_ctx_ssl(t), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(tls_ctx_ssl(t), pki.ca_cert, NULL), 1);
    struct tls_ctx *c =
        client_new(&(struct tls_client_opts){.cert = cpem, .key = harness_pki_key(cpem)});
    struct pair p;
    pair_open(&p, tls_ctx_ssl(t));
    pair_client(&p, c);
    pair_drive(&p);
    ck_assert_int_eq(p.cdone, 1);
    ck_assert_int_eq(p.sdone, 1);
    ck_assert_str_eq(peer_cn(p.s), "client");
    pair_free(&p);
    tls_ctx_unref(c);
    ck_assert_str_eq(client_error(&(struct tls_client_opts){.cert = cpem}),
                     "a client certificate needs both cert and key");
    ck_assert_str_eq(client_error(&(struct tls_client_opts){.cert = cpem,
                                                            .key = harness_pki_key(certs[0].cert)}),
                     harness_strf("%s does not match the certificate in %s", certs[0].key, cpem));
    tls_ctx_unref(t);
    harness_pki_free(&pki);
}
END_TEST

/* ---- end of stream ---- */

/* A client that closes its socket without close_notify: the server's
 * SSL_read returns 0 with SSL_ERROR_ZERO_RETURN, as for a close_notify;
 * without SSL_OP_IGNORE_UNEXPECTED_EOF OpenSSL 3 would make it an error. */
static int eof_read(struct tls_ctx *t, bool tcp, bool notify, bool ignore_eof, int *reason)
{
    struct tls_ctx *c = client_new(&(struct tls_client_opts){.server_name = "s.test"});
    struct pair p;
    pair_open_on(&p, tls_ctx_ssl(t), tcp);
    pair_client(&p, c);
    if (!ignore_eof)
        SSL_clear_options(p.s, SSL_OP_IGNORE_UNEXPECTED_EOF);
    pair_drive(&p);
    ck_assert_int_eq(p.sdone, 1);
    ck_assert_int_eq(p.cdone, 1);
    pair_byte(&p); /* the client has read the tickets: its close is no reset */
    if (notify)
        ck_assert_int_eq(SSL_shutdown(p.c), 0);
    close(p.cfd);
    p.cfd = -1;
    struct pollfd pfd = {.fd = p.sfd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
    char buf[16];
    ERR_clear_error();
    int r = SSL_read(p.s, buf, sizeof(buf));
    ck_assert_int_le(r, 0);
    int e = SSL_get_error(p.s, r);
    *reason = ERR_GET_REASON(ERR_peek_error());
    ck_assert_int_eq(SSL_get_shutdown(p.s), e == SSL_ERROR_ZERO_RETURN ? SSL_RECEIVED_SHUTDOWN : 0);
    if (e == SSL_ERROR_ZERO_RETURN)
        ck_assert_int_eq(r, 0);
    pair_free(&p);
    tls_ctx_unref(c);
    return e;
}

START_TEST(eof_without_close_notify)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files certs[] = {files(harness_pki_issue(&pki, "s", NULL))};
    struct tls_ctx *t = server_new(&(struct tls_server_opts){.certs = certs, .ncerts = 1});
    int reason;
    for (int tcp = 0; tcp < 2; tcp++) {
        ck_assert_int_eq(eof_read(t, tcp, false, true, &reason), SSL_ERROR_ZERO_RETURN);
        ck_assert_int_eq(reason, 0);
        ck_assert_int_eq(eof_read(t, tcp, true, true, &reason), SSL_ERROR_ZERO_RETURN);
        ck_assert_int_eq(reason, 0);
        /* What the option saves lb from. */
        ck_assert_int_eq(eof_read(t, tcp, false, false, &reason), SSL_ERROR_SSL);
        ck_assert_int_eq(reason, SSL_R_UNEXPECTED_EOF_WHILE_READING);
    }
    tls_ctx_unref(t);
    harness_pki_free(&pki);
}
END_TEST

/* ---- errors and warnings ---- */

START_TEST(file_errors)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *site = harness_pki_issue(&pki, "site", NULL);
    const char *site_key = harness_pki_key(site);
    const char *other = harness_pki_issue(&pki, "other", NULL);
    const char *missing = harness_strf("%s/missing.pem", harness_dir());
    const char *garbage = harness_write_file("garbage.pem", "hello\n");
    struct tls_cert_files c[1];

    c[0] = (struct tls_cert_files){missing, site_key};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                     harness_strf("%s: cannot read: No such file or directory", missing));
    c[0] = (struct tls_cert_files){site, missing};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                     harness_strf("%s: cannot read: No such file or directory", missing));
    /* A FIFO is refused at once, not opened and waited on (a reload runs on
     * the loop); a directory too. */
    const char *fifo = harness_strf("%s/fifo.pem", harness_dir());
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    c[0] = (struct tls_cert_files){fifo, site_key};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                     harness_strf("%s: not a regular file", fifo));
    c[0] = (struct tls_cert_files){site, harness_dir()};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                     harness_strf("%s: not a regular file", harness_dir()));
    c[0] = (struct tls_cert_files){site_key, site_key};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                     harness_strf("%s: not a PEM certificate", site_key));
    c[0] = (struct tls_cert_files){garbage, site_key};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                     harness_strf("%s: not a PEM certificate", garbage));
    c[0] = (struct tls_cert_files){site, site};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                     harness_strf("%s: not a PEM private key (or an encrypted one)", site));
    c[0] = (struct tls_cert_files){site, harness_pki_key(other)};
    ck_assert_str_eq(
        server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
        harness_strf("%s does not match the certificate in %s", harness_pki_key(other), site));
    /* The second certificate's error names it. */
    struct tls_cert_files two[] = {{site, site_key}, {other, site_key}};
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = two, .ncerts = 2}),
                     harness_strf("%s does not match the certificate in %s", site_key, other));
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 0}),
                     "no certificate: a TLS server needs at least one");
    ck_assert_str_eq(server_error(&(struct tls_server_opts){.certs = NULL, .ncerts = 0}),
                     "no certificate: a TLS server needs at least one");

    /* A client's CA file. */
    ck_assert_str_eq(client_error(&(struct tls_client_opts){.verify = true, .ca = missing}),
                     harness_strf("%s: cannot read: No such file or directory", missing));
    ck_assert_str_eq(client_error(&(struct tls_client_opts){.verify = true, .ca = site_key}),
                     harness_strf("%s: no certificate in it", site_key));
    harness_pki_free(&pki);
}
END_TEST

START_TEST(setting_errors)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    struct tls_cert_files c[] = {files(harness_pki_issue(&pki, "s", NULL))};
    ck_assert_str_eq(
        server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1, .min_version = "TLSv1.1"}),
        "unknown min_version \"TLSv1.1\" (accepted: \"TLSv1.2\", \"TLSv1.3\")");
    ck_assert_str_eq(
        server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1, .min_version = "tlsv1.2"}),
        "unknown min_version \"tlsv1.2\" (accepted: \"TLSv1.2\", \"TLSv1.3\")");
    ck_assert_str_eq(client_error(&(struct tls_client_opts){.min_version = "1.3"}),
                     "unknown min_version \"1.3\" (accepted: \"TLSv1.2\", \"TLSv1.3\")");

    static const char *const prefixes[][2] = {
        {"ciphers", "ciphers \"NOPE\" rejected by OpenSSL: "},
        {"ciphersuites", "ciphersuites \"NOPE\" rejected by OpenSSL: "},
    };
    for (int i = 0; i < 2; i++) {
        struct tls_server_opts so = {.certs = c, .ncerts = 1};
        struct tls_client_opts co = {0};
        if (i == 0)
            so.ciphers = co.ciphers = "NOPE";
        else
            so.ciphersuites = co.ciphersuites = "NOPE";
        const char *errs[] = {server_error(&so), client_error(&co)};
        for (int j = 0; j < 2; j++) {
            size_t n = strlen(prefixes[i][1]);
            CHECK(strncmp(errs[j], prefixes[i][1], n) == 0 && strlen(errs[j]) > n, "%s: got \"%s\"",
                  prefixes[i][0], errs[j]);
        }
        ck_assert_str_eq(errs[0], errs[1]);
    }
    /* Valid lists are taken. */
    struct tls_ctx *t = server_new(&(struct tls_server_opts){
        .certs = c,
        .ncerts = 1,
        .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256",
        .ciphersuites = "TLS_AES_256_GCM_SHA384",
    });
    tls_ctx_unref(t);

    const char *bad[] = {"http/1.1", ""};
    ck_assert_str_eq(
        server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1, .alpn = bad, .nalpn = 2}),
        "alpn name 1 is empty or longer than 255 bytes");
    harness_pki_free(&pki);
}
END_TEST

START_TEST(dates)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    time_t t0 = time(NULL);
    const char *expired = harness_pki_issue(
        &pki, "expired", &(struct harness_cert_opts){.not_before_days = -10, .not_after_days = -1});
    const char *future = harness_pki_issue(
        &pki, "future", &(struct harness_cert_opts){.not_before_days = 2, .not_after_days = 30});
    const char *soon =
        harness_pki_issue(&pki, "soon", &(struct harness_cert_opts){.not_after_days = 3});
    const char *tomorrow =
        harness_pki_issue(&pki, "tomorrow", &(struct harness_cert_opts){.not_after_days = 1});
    const char *fine =
        harness_pki_issue(&pki, "fine", &(struct harness_cert_opts){.not_after_days = 15});
    time_t t1 = time(NULL);

    struct tls_cert_files c[1] = {files(expired)};
    check_dated(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                harness_strf("%s: expired on %%D", expired), t0, t1, -1, 0);
    c[0] = files(future);
    check_dated(server_error(&(struct tls_server_opts){.certs = c, .ncerts = 1}),
                harness_strf("%s: not valid before %%D", future), t0, t1, 2, -60);
    /* A client certificate too. */
    check_dated(
        client_error(&(struct tls_client_opts){.cert = expired, .key = harness_pki_key(expired)}),
        harness_strf("%s: expired on %%D", expired), t0, t1, -1, 0);

    char err[512], warn[1024];
    struct tls_cert_files ok[] = {files(fine), files(soon), files(tomorrow)};
    struct tls_ctx *t = tls_server_ctx_new(&(struct tls_server_opts){.certs = ok, .ncerts = 1}, err,
                                           sizeof(err), warn, sizeof(warn));
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(warn, ""); /* 15 days: no warning */
    tls_ctx_unref(t);
    t = tls_server_ctx_new(&(struct tls_server_opts){.certs = ok + 1, .ncerts = 1}, err,
                           sizeof(err), warn, sizeof(warn));
    ck_assert_ptr_nonnull(t);
    check_dated(warn, harness_strf("%s expires on %%D (in 3 days)", soon), t0, t1, 3, 0);
    tls_ctx_unref(t);
    t = tls_server_ctx_new(&(struct tls_server_opts){.certs = ok, .ncerts = 3}, err, sizeof(err),
                           warn, sizeof(warn));
    ck_assert_ptr_nonnull(t);
    const char *sep = strstr(warn, "; ");
    ck_assert_ptr_nonnull(sep);
    check_dated(harness_strf("%.*s", (int)(sep - warn), warn),
                harness_strf("%s expires on %%D (in 3 days)", soon), t0, t1, 3, 0);
    check_dated(sep + 2, harness_strf("%s expires on %%D (in 1 day)", tomorrow), t0, t1, 1, 0);
    tls_ctx_unref(t);
    /* warn may be NULL. */
    t = tls_server_ctx_new(&(struct tls_server_opts){.certs = ok + 1, .ncerts = 1}, err,
                           sizeof(err), NULL, 0);
    ck_assert_ptr_nonnull(t);
    tls_ctx_unref(t);
    harness_pki_free(&pki);
}
END_TEST

/* The PKI itself: the files are where it says, the .pem of an
 * intermediate-signed certificate holds two certificates and its key is
 * beside it, and harness_pki_free removes the directory (twice is
 * harmless). */
START_TEST(pki_files)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    ck_assert_str_eq(pki.ca_cert, harness_strf("%s/ca.pem", pki.dir));
    ck_assert_str_eq(pki.ca_key, harness_strf("%s/ca.key", pki.dir));
    ck_assert_int_eq(strncmp(pki.dir, harness_dir(), strlen(harness_dir())), 0);
    const char *pem =
        harness_pki_issue(&pki, "x", &(struct harness_cert_opts){.intermediate = true});
    ck_assert_str_eq(pem, harness_strf("%s/x.pem", pki.dir));
    ck_assert_str_eq(harness_pki_key(pem), harness_strf("%s/x.key", pki.dir));
    const char *text = harness_read_file(pem);
    int n = 0;
    for (const char *s = text; (s = strstr(s, "-----BEGIN CERTIFICATE-----")); s++)
        n++;
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_nonnull(strstr(harness_read_file(harness_pki_key(pem)), "PRIVATE KEY-----"));
    char dir[sizeof(pki.dir)];
    strcpy(dir, pki.dir);
    harness_pki_free(&pki);
    ck_assert_str_eq(pki.dir, "");
    ck_assert_int_eq(access(dir, F_OK), -1);
    harness_pki_free(&pki);
}
END_TEST

static Suite *tls_ctx_suite(void)
{
    Suite *s = suite_create("tls_ctx");
    TCase *tc = harness_tcase("tls_ctx");
    tcase_add_test(tc, sni_picks_the_certificate);
    tcase_add_test(tc, reference_outlives_the_owner);
    tcase_add_test(tc, versions);
    tcase_add_test(tc, alpn);
    tcase_add_test(tc, session_resumption);
    tcase_add_test(tc, client_verifies);
    tcase_add_test(tc, chain_is_sent);
    tcase_add_test(tc, client_certificate);
    tcase_add_test(tc, eof_without_close_notify);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, setting_errors);
    tcase_add_test(tc, dates);
    tcase_add_test(tc, pki_files);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(tls_ctx_suite)
