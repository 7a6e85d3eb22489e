/* conn_tls: the connection ops over an OpenSSL session. Reads drain what
 * OpenSSL holds (read-ahead on: one recv takes as many records as the
 * socket has), writes gather a short iovec into one record. SIGPIPE is
 * ignored process-wide (lb/main.c), so OpenSSL's write(2) cannot kill lb. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "lb/io/conn_tls.h"

/* The most a write gathers from several iovecs into one record: the
 * plaintext of one TLS record. */
#define GATHER_MAX 16384

struct tls_layer {
    SSL *ssl;
    enum conn_want want;
    bool shut;   /* close_notify sent */
    bool broken; /* reset, or a TLS protocol error: the session is not to be resumed */
    /* A read's outcome that came after bytes it returned (an error, an end,
     * a wait for writability): the next readv returns it. */
    bool held;
    bool write_held; /* a record of bytes offered waits for the socket (WANT_WRITE) */
    ssize_t held_rc;
    int held_errno;
    char why[120];
};

static struct tls_layer *layer(const struct conn *c)
{
    return c->layer;
}

/* Maps the outcome of an SSL call that returned ret to errno and want: -1
 * always. A clean close_notify is not an error: callers test for it
 * first. */
static ssize_t fail(struct conn *c, int ret)
{
    struct tls_layer *t = layer(c);
    int err = SSL_get_error(t->ssl, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        t->want = CONN_WANT_READ;
        errno = EAGAIN;
        break;
    case SSL_ERROR_WANT_WRITE:
        t->want = CONN_WANT_WRITE;
        errno = EAGAIN;
        break;
    case SSL_ERROR_SYSCALL:
        if (errno == 0) /* no socket error: OpenSSL saw a cut we take as a reset */
            errno = ECONNRESET;
        break;
    default: {
        const char *r = ERR_reason_error_string(ERR_peek_last_error());
        snprintf(t->why, sizeof(t->why), "%s", r ? r : "tls error");
        t->broken = true;
        errno = EPROTO;
        break;
    }
    }
    ERR_clear_error();
    return -1;
}

static ssize_t tls_readv(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct tls_layer *t = layer(c);
    if (t->held) {
        t->held = false;
        errno = t->held_errno;
        return t->held_rc;
    }
    ssize_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            /* After the first bytes, read on only from what OpenSSL holds:
             * the socket's readiness tells about the rest. */
            if (total > 0 && !SSL_has_pending(t->ssl))
                return total;
            size_t got = 0;
            int ret = SSL_read_ex(t->ssl, p, left, &got);
            if (ret <= 0) {
                ssize_t rc;
                if (SSL_get_error(t->ssl, ret) == SSL_ERROR_ZERO_RETURN) {
                    ERR_clear_error();
                    rc = 0; /* close_notify, or a plain close (IGNORE_UNEXPECTED_EOF) */
                } else {
                    rc = fail(c, ret);
                }
                if (total == 0)
                    return rc;
                /* What came first goes first. A wait for readability needs
                 * nothing kept (the socket will say); the rest is the next
                 * read's answer, which pending() announces. */
                if (!(rc < 0 && errno == EAGAIN && t->want == CONN_WANT_READ)) {
                    t->held = true;
                    t->held_rc = rc;
                    t->held_errno = errno;
                }
                return total;
            }
            t->want = CONN_WANT_NONE;
            p += got;
            left -= got;
            total += (ssize_t)got;
        }
    }
    return total;
}

/* Writes p[0..n) record after record until all is taken or the socket is
 * full (with partial writes on, SSL_write_ex stops after each record that
 * went out): the bytes taken, or -1 when none were. Each new record starts
 * at the next byte offered, so a record held back after WANT_WRITE is the
 * first of what the caller offers next. */
static ssize_t write_one(struct conn *c, const void *p, size_t n)
{
    struct tls_layer *t = layer(c);
    size_t total = 0;
    while (total < n) {
        size_t put = 0;
        int ret = SSL_write_ex(t->ssl, (const char *)p + total, n - total, &put);
        if (ret <= 0) {
            t->write_held = SSL_get_error(t->ssl, ret) == SSL_ERROR_WANT_WRITE;
            if (total == 0)
                return fail(c, ret);
            fail(c, ret); /* keeps what the held record waits for */
            break;
        }
        t->write_held = false;
        t->want = CONN_WANT_NONE;
        total += put;
    }
    return (ssize_t)total;
}

/* A write OpenSSL answered WANT_WRITE holds one record it could not send,
 * made of the first min(n, 16384) bytes offered; the retry must offer at
 * least that many, starting with the same bytes (from anywhere in memory:
 * ACCEPT_MOVING_WRITE_BUFFER), or it fails with "bad length". Callers offer
 * what they hold, which only grows until written, however they cut it into
 * pieces; so a first piece shorter than a record is gathered with the
 * next ones up to GATHER_MAX (one record, and never fewer bytes than the
 * record held back), and a longer one is written as it is. */
static ssize_t tls_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    static char gather[GATHER_MAX];
    if (iovcnt > 1 && iov[0].iov_len < GATHER_MAX) {
        size_t g = 0;
        for (int k = 0; k < iovcnt && g < GATHER_MAX; k++) {
            size_t m = iov[k].iov_len < GATHER_MAX - g ? iov[k].iov_len : GATHER_MAX - g;
            memcpy(gather + g, iov[k].iov_base, m);
            g += m;
        }
        return write_one(c, gather, g); /* one record, not one per piece */
    }
    ssize_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        ssize_t w = write_one(c, iov[i].iov_base, iov[i].iov_len);
        if (w < 0)
            return total > 0 ? total : -1;
        total += w;
        if ((size_t)w < iov[i].iov_len)
            break; /* the socket is full */
    }
    return total;
}

static void tls_shutdown_write(struct conn *c)
{
    struct tls_layer *t = layer(c);
    if (!t->shut) {
        t->shut = true;
        /* close_notify, best effort: a full socket drops it, and the FIN
         * still ends the stream (the peer sees a plain close). Callers shut
         * a write side once what they wrote has gone (the relay after its
         * flow drained, http mode after its page), so the socket has room
         * for the alert's few bytes but in a corner case. */
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    shutdown(c->fd, SHUT_WR);
}

static void tls_reset(struct conn *c)
{
    if (c->layer)
        layer(c)->broken = true;
    conn_tcp_reset(c);
}

static void tls_close(struct conn *c)
{
    struct tls_layer *t = layer(c);
    if (t) {
        /* A close that is no abort ends the TLS stream (the peer can tell
         * it from a cut), and marks the shutdown sent even when the socket
         * had no room for it: OpenSSL forgets the session of an SSL freed
         * without, and a client could not resume it. */
        if (!t->broken && SSL_is_init_finished(t->ssl)) {
            if (!t->shut)
                SSL_shutdown(t->ssl); /* close_notify, best effort */
            SSL_set_shutdown(t->ssl, SSL_get_shutdown(t->ssl) | SSL_SENT_SHUTDOWN);
            ERR_clear_error();
        }
        SSL_free(t->ssl);
        free(t);
        c->layer = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static size_t tls_pending(const struct conn *c)
{
    struct tls_layer *t = layer(c);
    if (t && t->held)
        return 1; /* a read's outcome is waiting to be told */
    if (!t || !SSL_has_pending(t->ssl))
        return 0;
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 1; /* records not yet decrypted count too */
}

static enum conn_want tls_wants(const struct conn *c)
{
    return layer(c)->want;
}

static bool tls_write_held(const struct conn *c)
{
    return c->layer && layer(c)->write_held;
}

const struct conn_ops conn_tls_ops = {
    .name = "tls",
    .readv = tls_readv,
    .writev = tls_writev,
    .shutdown_write = tls_shutdown_write,
    .reset = tls_reset,
    .close = tls_close,
    .pending = tls_pending,
    .error = conn_tcp_error,
    .wants = tls_wants,
    .write_held = tls_write_held,
};

int conn_tls_init(struct conn *c, int fd, SSL *ssl)
{
    conn_tcp_init(c, fd);
    struct tls_layer *t = calloc(1, sizeof(*t));
    if (!t || !SSL_set_fd(ssl, fd)) {
        free(t);
        SSL_free(ssl);
        ERR_clear_error();
        errno = ENOMEM;
        return -1;
    }
    SSL_set_read_ahead(ssl, 1);
    t->ssl = ssl;
    c->ops = &conn_tls_ops;
    c->layer = t;
    return 0;
}

int conn_tls_handshake(struct conn *c, const char **why)
{
    struct tls_layer *t = layer(c);
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        t->want = CONN_WANT_NONE;
        return 1;
    }
    int err = SSL_get_error(t->ssl, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        t->want = err == SSL_ERROR_WANT_READ ? CONN_WANT_READ : CONN_WANT_WRITE;
        ERR_clear_error();
        return 0;
    }
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(t->why, sizeof(t->why), "%s", r);
    else if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0))
        snprintf(t->why, sizeof(t->why), "closed by the peer");
    else if (err == SSL_ERROR_SYSCALL)
        snprintf(t->why, sizeof(t->why), "%s", strerror(errno));
    else
        snprintf(t->why, sizeof(t->why), "tls error");
    ERR_clear_error();
    if (why)
        *why = t->why;
    return -1;
}

enum conn_want conn_tls_wants(const struct conn *c)
{
    return layer(c)->want;
}

SSL *conn_tls_ssl(const struct conn *c)
{
    return layer(c)->ssl;
}

const char *conn_tls_last_error(const struct conn *c)
{
    return layer(c)->why[0] ? layer(c)->why : "tls error";
}
