/* test_conn_tls: the TLS connection ops over a socketpair, against a real
 * OpenSSL peer on the other end: the handshake and its failure reason,
 * bytes both ways (short pieces gathered into one record), 8 MiB byte
 * for byte through full socket buffers (partial writes and their
 * retries), what OpenSSL holds announced by pending, a key update asked
 * for while the socket is full, and the two ends of
 * a stream (close_notify, and a close without it: both an EOF). The
 * certificate is made at run time with the openssl command line. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "lb/io/conn_tls.h"
#include "tests/test.h"

#define CHECK(expr, ...)                                                                           \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static char dir[64];
static SSL_CTX *sctx, *cctx;
static struct conn srv, cli;

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/lb-conn-tls.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/k.pem -out %s/c.pem -subj /CN=conn.test -days 2 >%s/log 2>&1",
             dir, dir, dir);
    ck_assert_msg(system(cmd) == 0, "openssl req failed (%s/log)", dir);
    char path[128];
    sctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(sctx);
    snprintf(path, sizeof(path), "%s/c.pem", dir);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(sctx, path), 1);
    snprintf(path, sizeof(path), "%s/k.pem", dir);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(sctx, path, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_options(sctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(sctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    cctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(cctx);
    SSL_CTX_set_options(cctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(cctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    srv.fd = cli.fd = -1;
}

static void teardown(void)
{
    if (srv.fd >= 0)
        srv.ops->close(&srv);
    if (cli.fd >= 0)
        cli.ops->close(&cli);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* A socketpair, both ends non-blocking, with small buffers when small. */
static void pair(int fds[2], bool small)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(fcntl(fds[i], F_SETFL, O_NONBLOCK), 0);
        if (small) {
            int sz = 4096;
            setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
            setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
    }
}

/* srv and cli as TLS connections over a socketpair, handshake done. */
static void connect_pair(bool small)
{
    int fds[2];
    pair(fds, small);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    ck_assert_int_eq(conn_tls_init(&srv, fds[0], s), 0);
    ck_assert_int_eq(conn_tls_init(&cli, fds[1], c), 0);
    int sd = 0, cd = 0;
    for (int i = 0; i < 1000 && !(sd == 1 && cd == 1); i++) {
        const char *why = NULL;
        if (cd != 1)
            cd = conn_tls_handshake(&cli, &why);
        CHECK(cd >= 0, "client handshake failed: %s", why);
        if (sd != 1)
            sd = conn_tls_handshake(&srv, &why);
        CHECK(sd >= 0, "server handshake failed: %s", why);
    }
    ck_assert_int_eq(sd, 1);
    ck_assert_int_eq(cd, 1);
}

static ssize_t rd(struct conn *c, void *buf, size_t n)
{
    struct iovec iov = {buf, n};
    return conn_readv(c, &iov, 1);
}

START_TEST(bytes_both_ways_short_pieces_in_one_record)
{
    connect_pair(false);
    struct iovec iov[3] = {{"hel", 3}, {"lo, ", 4}, {"tls", 3}};
    ck_assert_int_eq(conn_writev(&cli, iov, 3), 10);
    char buf[64];
    /* One record: the first read takes all ten bytes. */
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 10);
    ck_assert(memcmp(buf, "hello, tls", 10) == 0);
    /* Nothing more: EAGAIN, waiting to read. */
    errno = 0;
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(conn_tls_wants(&srv), CONN_WANT_READ);
    ck_assert_uint_eq(conn_pending(&srv), 0);
    struct iovec back = {"answer", 6};
    ck_assert_int_eq(conn_writev(&srv, &back, 1), 6);
    ck_assert_int_eq(rd(&cli, buf, sizeof(buf)), 6);
    ck_assert(memcmp(buf, "answer", 6) == 0);
}
END_TEST

static unsigned char pat(uint64_t i)
{
    return (unsigned char)(i * 2654435761u >> 13);
}

START_TEST(eight_mib_byte_exact_through_full_buffers)
{
    connect_pair(true);
    const uint64_t total = 8u << 20;
    static unsigned char out[40000], in[7000];
    uint64_t sent = 0, got = 0;
    size_t held = 0; /* bytes of out offered and not yet taken (a retry offers them again) */
    int wants_write = 0;
    for (int spins = 0; got < total && spins < 10000000; spins++) {
        /* Offer what is held plus more, in two pieces of uneven size. */
        while (held < sizeof(out) && sent + held < total) {
            out[held] = pat(sent + held);
            held++;
        }
        if (held > 0) {
            size_t a = held > 3000 ? 3000 : held / 2 + 1;
            if (a > held)
                a = held;
            struct iovec iov[2] = {{out, a}, {out + a, held - a}};
            ssize_t w = conn_writev(&cli, iov, held - a > 0 ? 2 : 1);
            if (w < 0) {
                CHECK(errno == EAGAIN, "write: %s (%s)", strerror(errno),
                      conn_tls_last_error(&cli));
                CHECK(conn_tls_wants(&cli) == CONN_WANT_WRITE, "write waits for %d",
                      conn_tls_wants(&cli));
                wants_write++;
            } else {
                memmove(out, out + w, held - (size_t)w);
                held -= (size_t)w;
                sent += (uint64_t)w;
            }
        }
        struct iovec riov[2] = {{in, 1000}, {in + 1000, sizeof(in) - 1000}};
        ssize_t n = conn_readv(&srv, riov, 2);
        if (n < 0) {
            CHECK(errno == EAGAIN, "read: %s (%s)", strerror(errno), conn_tls_last_error(&srv));
            continue;
        }
        CHECK(n > 0, "EOF after %llu bytes", (unsigned long long)got);
        for (ssize_t k = 0; k < n; k++)
            CHECK(in[k] == pat(got + (uint64_t)k), "byte %llu differs",
                  (unsigned long long)(got + (uint64_t)k));
        got += (uint64_t)n;
    }
    ck_assert_uint_eq(got, total);
    ck_assert_uint_eq(sent, total);
    ck_assert_int_gt(wants_write, 0); /* the buffers did fill */
}
END_TEST

START_TEST(write_held_after_a_record_waits_for_the_socket)
{
    connect_pair(true);
    static char fill[8192];
    memset(fill, 'f', sizeof(fill));
    ck_assert(!conn_write_held(&cli));
    ck_assert(!conn_write_held(&srv));
    /* Fill the socket until OpenSSL holds a record it could not send. */
    ssize_t w = 0;
    for (int i = 0; i < 1000; i++) {
        struct iovec iov = {fill, sizeof(fill)};
        w = conn_writev(&cli, &iov, 1);
        if (w < 0 || (size_t)w < sizeof(fill))
            break;
    }
    ck_assert(w < 0 || (size_t)w < sizeof(fill));
    ck_assert(conn_write_held(&cli)); /* the next write must offer those bytes first */
    /* The reader drains; the same bytes offered again go, and nothing is held. */
    char buf[16384];
    bool held = true;
    for (int i = 0; i < 100000 && held; i++) {
        while (rd(&srv, buf, sizeof(buf)) > 0)
            ;
        struct iovec iov = {fill, sizeof(fill)};
        ssize_t r = conn_writev(&cli, &iov, 1);
        held = r < 0 || conn_write_held(&cli);
    }
    ck_assert(!held);
    ck_assert(!conn_write_held(&cli));
    /* Plain TCP never holds. */
    struct conn plain;
    conn_tcp_init(&plain, -1);
    ck_assert(!conn_write_held(&plain));
}
END_TEST

START_TEST(pending_announces_what_openssl_holds)
{
    connect_pair(false);
    char rec[100];
    for (int i = 0; i < 3; i++) {
        memset(rec, 'a' + i, sizeof(rec));
        struct iovec iov = {rec, sizeof(rec)};
        ck_assert_int_eq(conn_writev(&cli, &iov, 1), 100);
    }
    char buf[1000];
    ck_assert_int_eq(rd(&srv, buf, 50), 50);
    /* The rest came off the socket with the first read (read-ahead): no
     * socket event will say so, pending must. */
    ck_assert_uint_gt(conn_pending(&srv), 0);
    char peek;
    ck_assert_int_eq(recv(srv.fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT), -1);
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 250);
    for (int i = 0; i < 250; i++)
        CHECK(buf[i] == (i < 50 ? 'a' : i < 150 ? 'b' : 'c'), "byte %d is %c", i, buf[i]);
    ck_assert_uint_eq(conn_pending(&srv), 0);
}
END_TEST

/* A key update asked for while the server's socket towards the client is
 * full: OpenSSL 3.0 reads on (its own KeyUpdate waits for its next write,
 * it does not make the read wait for writability), and once the client
 * drains its socket both ways go on with the new keys. */
START_TEST(key_update_into_a_full_socket_does_not_stall_reads)
{
    connect_pair(true);
    static char fill[4096];
    memset(fill, 'f', sizeof(fill));
    uint64_t queued = 0;
    for (;;) {
        struct iovec iov = {fill, sizeof(fill)};
        ssize_t w = conn_writev(&srv, &iov, 1);
        if (w < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            ck_assert_int_eq(conn_tls_wants(&srv), CONN_WANT_WRITE);
            break;
        }
        queued += (uint64_t)w;
    }
    ck_assert_int_eq(SSL_key_update(conn_tls_ssl(&cli), SSL_KEY_UPDATE_REQUESTED), 1);
    struct iovec x = {"x", 1};
    ck_assert_int_eq(conn_writev(&cli, &x, 1), 1);
    char buf[64];
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 1);
    ck_assert_int_eq(buf[0], 'x');
    ck_assert(!conn_read_wants_write(&srv));
    /* The client drains what was queued; then the server's next bytes
     * (after its KeyUpdate) reach it. */
    static char sink[65536];
    uint64_t drained = 0;
    bool sent_y = false, got_y = false, fill_held = true;
    for (int i = 0; i < 100000 && !got_y; i++) {
        ssize_t n = rd(&cli, sink, sizeof(sink));
        if (n > 0) {
            for (ssize_t k = 0; k < n; k++) {
                if (drained + (uint64_t)k < queued)
                    CHECK(sink[k] == 'f', "byte %llu", (unsigned long long)(drained + k));
                else
                    got_y = sink[k] == 'y';
            }
            drained += (uint64_t)n;
        } else {
            ck_assert_int_eq(errno, EAGAIN);
        }
        if (fill_held) { /* the write that was told to wait goes first, the same bytes */
            struct iovec iov = {fill, sizeof(fill)};
            ssize_t w = conn_writev(&srv, &iov, 1);
            CHECK(w > 0 || errno == EAGAIN, "retried write: %s (%s)", strerror(errno),
                  conn_tls_last_error(&srv));
            if (w > 0) {
                queued += (uint64_t)w;
                fill_held = (size_t)w < sizeof(fill);
            }
        } else if (!sent_y) {
            struct iovec y = {"y", 1};
            sent_y = conn_writev(&srv, &y, 1) == 1;
        }
    }
    ck_assert_msg(got_y, "drained %llu queued %llu sent_y %d", (unsigned long long)drained,
                  (unsigned long long)queued, sent_y);
    ck_assert_uint_eq(drained, queued + 1);
}
END_TEST

/* A client connection closed without a close_notify (an idle backend
 * connection dropped, say) leaves its session resumable; a reset one does
 * not. */
static bool resumes_after(bool reset)
{
    connect_pair(false);
    char buf[8];
    ck_assert_int_eq(rd(&cli, buf, sizeof(buf)), -1); /* takes the TLS 1.3 tickets */
    SSL_SESSION *sess = SSL_get1_session(conn_tls_ssl(&cli));
    ck_assert_ptr_nonnull(sess);
    if (reset)
        cli.ops->reset(&cli);
    cli.ops->close(&cli);
    srv.ops->close(&srv);
    int fds[2];
    pair(fds, false);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    ck_assert_int_eq(SSL_set_session(c, sess), 1);
    SSL_SESSION_free(sess);
    ck_assert_int_eq(conn_tls_init(&srv, fds[0], s), 0);
    ck_assert_int_eq(conn_tls_init(&cli, fds[1], c), 0);
    int sd = 0, cd = 0;
    for (int i = 0; i < 1000 && !(sd == 1 && cd == 1); i++) {
        if (cd != 1)
            cd = conn_tls_handshake(&cli, NULL);
        if (sd != 1)
            sd = conn_tls_handshake(&srv, NULL);
        ck_assert(cd >= 0 && sd >= 0);
    }
    ck_assert(sd == 1 && cd == 1);
    return SSL_session_reused(conn_tls_ssl(&cli)) == 1;
}

START_TEST(closed_without_shutdown_still_resumes)
{
    ck_assert(resumes_after(false));
}
END_TEST

START_TEST(reset_connection_does_not_resume)
{
    ck_assert(!resumes_after(true));
}
END_TEST

/* Closing an established connection sends close_notify: a peer that does
 * not take a plain close for an end of stream reads an end, not an error;
 * after a reset it reads an error. */
static ssize_t peer_read_after_close(bool reset)
{
    connect_pair(false);
    SSL_clear_options(conn_tls_ssl(&cli), SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (reset)
        srv.ops->reset(&srv);
    srv.ops->close(&srv);
    char buf[16];
    ssize_t n;
    for (int i = 0; i < 100 && (n = rd(&cli, buf, sizeof(buf))) < 0 && errno == EAGAIN; i++)
        ;
    return n;
}

START_TEST(close_sends_close_notify)
{
    ck_assert_int_eq(peer_read_after_close(false), 0);
}
END_TEST

START_TEST(close_after_reset_sends_none)
{
    ck_assert_int_eq(peer_read_after_close(true), -1);
    ck_assert_int_eq(errno, EPROTO);
}
END_TEST

/* Moves what is waiting on from[] to to[], both ways between two raw
 * ends, flipping the last byte moved client to server when flip is set. */
static void shuttle(int c2s_from, int c2s_to, int s2c_from, int s2c_to, bool flip)
{
    char buf[65536];
    ssize_t n = read(c2s_from, buf, sizeof(buf));
    if (n > 0) {
        if (flip)
            buf[n - 1] ^= 1;
        ck_assert_int_eq(write(c2s_to, buf, (size_t)n), n);
    }
    n = read(s2c_from, buf, sizeof(buf));
    if (n > 0)
        ck_assert_int_eq(write(s2c_to, buf, (size_t)n), n);
}

/* A record that fails to decrypt after a good one: the read returns the
 * good bytes, says more is pending, and the next read is the error with
 * its reason. */
START_TEST(error_after_good_bytes_is_the_next_read)
{
    int a[2], b[2]; /* cli a[0] <-> a[1] test b[0] <-> b[1] srv */
    pair(a, false);
    pair(b, false);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    ck_assert_int_eq(conn_tls_init(&srv, b[1], s), 0);
    ck_assert_int_eq(conn_tls_init(&cli, a[0], c), 0);
    int sd = 0, cd = 0;
    for (int i = 0; i < 1000 && !(sd == 1 && cd == 1); i++) {
        if (cd != 1)
            cd = conn_tls_handshake(&cli, NULL);
        shuttle(a[1], b[0], b[0], a[1], false);
        if (sd != 1)
            sd = conn_tls_handshake(&srv, NULL);
        shuttle(a[1], b[0], b[0], a[1], false);
        ck_assert(cd >= 0 && sd >= 0);
    }
    ck_assert(sd == 1 && cd == 1);
    struct iovec one = {"hello", 5}, two = {"world", 5};
    ck_assert_int_eq(conn_writev(&cli, &one, 1), 5);
    shuttle(a[1], b[0], b[0], a[1], false);
    ck_assert_int_eq(conn_writev(&cli, &two, 1), 5);
    shuttle(a[1], b[0], b[0], a[1], true); /* the second record's tag */
    char buf[64];
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    ck_assert_uint_gt(conn_pending(&srv), 0);
    errno = 0;
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_str_eq(conn_tls_last_error(&srv), "decryption failed or bad record mac");
    close(a[1]);
    close(b[0]);
}
END_TEST

START_TEST(close_notify_is_an_eof)
{
    connect_pair(false);
    struct iovec iov = {"last", 4};
    ck_assert_int_eq(conn_writev(&cli, &iov, 1), 4);
    cli.ops->shutdown_write(&cli);
    char buf[16];
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 4);
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 0);
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(close_without_close_notify_is_an_eof)
{
    connect_pair(false);
    struct iovec iov = {"cut", 3};
    ck_assert_int_eq(conn_writev(&cli, &iov, 1), 3);
    shutdown(cli.fd, SHUT_WR); /* a FIN with no close_notify before it */
    char buf[16];
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 3);
    ck_assert_int_eq(rd(&srv, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(plain_http_to_tls_fails_the_handshake_with_a_reason)
{
    int fds[2];
    pair(fds, false);
    SSL *s = SSL_new(sctx);
    SSL_set_accept_state(s);
    ck_assert_int_eq(conn_tls_init(&srv, fds[0], s), 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(write(fds[1], req, strlen(req)), (ssize_t)strlen(req));
    const char *why = NULL;
    ck_assert_int_eq(conn_tls_handshake(&srv, &why), -1);
    ck_assert_str_eq(why, "http request");
    close(fds[1]);
}
END_TEST

START_TEST(handshake_waits_for_the_peer)
{
    int fds[2];
    pair(fds, false);
    SSL *s = SSL_new(sctx);
    SSL_set_accept_state(s);
    ck_assert_int_eq(conn_tls_init(&srv, fds[0], s), 0);
    const char *why = NULL;
    ck_assert_int_eq(conn_tls_handshake(&srv, &why), 0);
    ck_assert_int_eq(conn_tls_wants(&srv), CONN_WANT_READ);
    close(fds[1]); /* the client goes away before its hello */
    ck_assert_int_eq(conn_tls_handshake(&srv, &why), -1);
    ck_assert_str_eq(why, "closed by the peer");
}
END_TEST

static Suite *conn_tls_suite(void)
{
    Suite *s = suite_create("conn_tls");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bytes_both_ways_short_pieces_in_one_record);
    tcase_add_test(tc, eight_mib_byte_exact_through_full_buffers);
    tcase_add_test(tc, pending_announces_what_openssl_holds);
    tcase_add_test(tc, write_held_after_a_record_waits_for_the_socket);
    tcase_add_test(tc, key_update_into_a_full_socket_does_not_stall_reads);
    tcase_add_test(tc, closed_without_shutdown_still_resumes);
    tcase_add_test(tc, reset_connection_does_not_resume);
    tcase_add_test(tc, close_sends_close_notify);
    tcase_add_test(tc, close_after_reset_sends_none);
    tcase_add_test(tc, error_after_good_bytes_is_the_next_read);
    tcase_add_test(tc, close_notify_is_an_eof);
    tcase_add_test(tc, close_without_close_notify_is_an_eof);
    tcase_add_test(tc, plain_http_to_tls_fails_the_handshake_with_a_reason);
    tcase_add_test(tc, handshake_waits_for_the_peer);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(conn_tls_suite)
