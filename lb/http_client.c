/* http_client: one HTTP/1.1 exchange on the loop (http_client.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "lb/http_client.h"
#include "lb/io/conn.h"
#include "lb/io/conn_tls.h"
#include "lb/io/sock.h"
#include "lb/io/tls_ctx.h"
#include "lb/proto/http_head.h"

/* A chunk-size line (size, extensions, CRLF) or trailer line longer than
 * this is a bad response. */
#define LINE_MAX_BYTES 4096
#define READ_CHUNK (16 * 1024)

enum body_state {
    BODY_HEAD,       /* reading the head */
    BODY_LENGTH,     /* Content-Length bytes left */
    BODY_UNTIL_EOF,  /* until the server closes */
    BODY_CHUNK_SIZE, /* a chunk-size line */
    BODY_CHUNK_DATA, /* chunk bytes left */
    BODY_CHUNK_CRLF, /* the CRLF after a chunk's data */
    BODY_TRAILER,    /* trailer lines, up to the empty one */
};

enum io_step { STEP_CONNECT, STEP_HANDSHAKE, STEP_SEND, STEP_RECEIVE };

struct http_client {
    struct event_base *base;
    struct conn io;      /* plain TCP, or TLS once connected */
    struct tls_ctx *tls; /* https: the client context (a reference); NULL: plain */
    enum io_step step;
    struct event *ev;    /* the socket: writable while sending, readable after */
    struct event *timer; /* the deadline */
    const struct http_client_ops *ops;
    void *arg;
    bool whole;
    int early_err; /* connect() failed at once with it */
    char *out;     /* the request */
    size_t out_len, out_off;
    char *in; /* bytes read and not yet taken */
    size_t in_len, in_cap;
    size_t scanned; /* http_head_end()'s */
    enum body_state state;
    uint64_t left;
    int status;
};

static void client_free(struct http_client *c)
{
    if (c->ev)
        event_free(c->ev);
    if (c->timer)
        event_free(c->timer);
    if (c->io.fd >= 0)
        c->io.ops->close(&c->io); /* TLS: after its SSL, which the context outlives */
    tls_ctx_unref(c->tls);
    free(c->out);
    free(c->in);
    free(c);
}

void http_client_cancel(struct http_client *c)
{
    if (!c)
        return;
    if (c->io.fd >= 0) /* a reset: the server sees the exchange cut, not complete */
        c->io.ops->reset(&c->io);
    client_free(c);
}

/* Ends the exchange with err (NULL: complete) and frees c. */
static void client_done(struct http_client *c, const char *err)
{
    const struct http_client_ops *ops = c->ops;
    void *arg = c->arg;
    int status = c->status;
    if (err)
        http_client_cancel(c);
    else
        client_free(c);
    ops->on_done(arg, status, err);
}

static void errno_text(char *dst, size_t cap, int err)
{
    snprintf(dst, cap, "%s", strerror(err));
    if (dst[0] >= 'A' && dst[0] <= 'Z')
        dst[0] = (char)(dst[0] - 'A' + 'a');
}

/* Hands n body bytes at p to the owner: 0, or -1 when it ended the
 * exchange (c is freed). */
static int deliver(struct http_client *c, const char *p, size_t n)
{
    if (n == 0 || !c->ops->on_body)
        return 0;
    if (c->ops->on_body(c->arg, p, n) < 0) {
        http_client_cancel(c);
        return -1;
    }
    return 0;
}

/* The line at in[*off..] through its CRLF: its length without the CRLF,
 * -1 when not complete yet, -2 when bad (too long, a bare LF). */
static long line_at(const struct http_client *c, size_t off)
{
    const char *p = c->in + off;
    size_t avail = c->in_len - off;
    const char *lf = memchr(p, '\n', avail < LINE_MAX_BYTES ? avail : LINE_MAX_BYTES);
    if (!lf)
        return avail >= LINE_MAX_BYTES ? -2 : -1;
    size_t n = (size_t)(lf - p);
    if (n == 0 || p[n - 1] != '\r')
        return -2;
    return (long)(n - 1);
}

/* A chunk-size line: hex digits, then optional extensions after ';'. */
static int chunk_size(const char *p, size_t n, uint64_t *size)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n; i++) {
        int d = p[i] >= '0' && p[i] <= '9'   ? p[i] - '0'
                : p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10
                : p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 10
                                             : -1;
        if (d < 0)
            break;
        if (v > (UINT64_MAX >> 4))
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    if (i == 0 || (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
        return -1;
    *size = v;
    return 0;
}

/* Takes what the buffer holds of the body. 1 when the body is complete, 0
 * for more, -1 when c was freed (the owner ended it, or a bad body ended
 * it: then on_done ran). */
static int body_take(struct http_client *c)
{
    size_t off = 0;
    int rc = c->state == BODY_LENGTH && c->left == 0; /* no body */
    while (off < c->in_len && rc == 0) {
        size_t avail = c->in_len - off;
        long n;
        switch (c->state) {
        case BODY_LENGTH:
        case BODY_CHUNK_DATA: {
            size_t take = avail < c->left ? avail : (size_t)c->left;
            if (deliver(c, c->in + off, take) < 0)
                return -1;
            off += take;
            c->left -= take;
            if (c->left == 0) {
                if (c->state == BODY_LENGTH)
                    rc = 1;
                else
                    c->state = BODY_CHUNK_CRLF;
            }
            break;
        }
        case BODY_UNTIL_EOF:
            if (deliver(c, c->in + off, avail) < 0)
                return -1;
            off += avail;
            break;
        case BODY_CHUNK_CRLF:
            if (avail < 2)
                goto more;
            if (c->in[off] != '\r' || c->in[off + 1] != '\n')
                goto bad;
            off += 2;
            c->state = BODY_CHUNK_SIZE;
            break;
        case BODY_CHUNK_SIZE:
            if ((n = line_at(c, off)) == -1)
                goto more;
            if (n < 0 || chunk_size(c->in + off, (size_t)n, &c->left) < 0)
                goto bad;
            off += (size_t)n + 2;
            c->state = c->left ? BODY_CHUNK_DATA : BODY_TRAILER;
            break;
        case BODY_TRAILER:
            if ((n = line_at(c, off)) == -1)
                goto more;
            if (n == -2)
                goto bad;
            off += (size_t)n + 2;
            if (n == 0) /* the empty line ends the trailers and the body */
                rc = 1;
            break;
        case BODY_HEAD:
            goto bad;
        }
    }
more:
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return rc;
bad:
    client_done(c, "bad response body framing");
    return -1;
}

/* The head, once complete: parsed, the body's framing chosen. 1 when the
 * head is in, 0 when more bytes are needed, -1 when c was freed. */
static int head_take(struct http_client *c)
{
    size_t end = http_head_end(c->in, c->in_len, &c->scanned);
    if (end == 0) {
        if (c->in_len >= HTTP_CLIENT_HEAD_MAX) {
            client_done(c, "response head too long");
            return -1;
        }
        return 0;
    }
    struct http_head req, h;
    const char *why;
    memset(&req, 0, sizeof(req));
    req.version_minor = 1;
    req.host = -1;
    if (http_response_parse(c->in, end, &req, &h, &why) != 0 || h.status < 200) {
        client_done(c, "bad response head");
        return -1;
    }
    c->status = h.status;
    if (h.chunked)
        c->state = BODY_CHUNK_SIZE;
    else if (h.content_length >= 0)
        c->state = BODY_LENGTH, c->left = (uint64_t)h.content_length;
    else
        c->state = BODY_UNTIL_EOF;
    memmove(c->in, c->in + end, c->in_len - end);
    c->in_len -= end;
    if (!c->whole)
        evtimer_del(c->timer); /* a stream may be silent from now on */
    if (c->ops->on_head && c->ops->on_head(c->arg, c->status) < 0) {
        http_client_cancel(c);
        return -1;
    }
    return 1;
}

static void on_io(evutil_socket_t fd, short what, void *arg);

static void client_watch(struct http_client *c, short what)
{
    event_del(c->ev);
    event_assign(c->ev, c->base, c->io.fd, what | EV_PERSIST, on_io, c);
    event_add(c->ev, NULL);
}

/* What a step that found the socket not ready waits for. */
static short wait_for(const struct http_client *c, short obvious)
{
    if (c->io.ops->wants) {
        enum conn_want w = c->io.ops->wants(&c->io);
        if (w == CONN_WANT_READ)
            return EV_READ;
        if (w == CONN_WANT_WRITE)
            return EV_WRITE;
    }
    return obvious;
}

static void client_fail_errno(struct http_client *c, int err)
{
    char e[160];
    if (err == EPROTO && c->io.ops == &conn_tls_ops) /* not before the TLS layer is on */
        snprintf(e, sizeof(e), "TLS: %s", conn_tls_last_error(&c->io));
    else
        errno_text(e, sizeof(e), err);
    client_done(c, e);
}

static void client_read(struct http_client *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 512) {
            size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
            if (c->state != BODY_HEAD && c->in_cap >= READ_CHUNK)
                cap = c->in_cap; /* the body is taken as it comes: never more than a line */
            if (cap != c->in_cap) {
                char *p = realloc(c->in, cap);
                if (!p) {
                    client_done(c, "out of memory");
                    return;
                }
                c->in = p;
                c->in_cap = cap;
            }
        }
        struct iovec iov = {c->in + c->in_len, c->in_cap - c->in_len};
        ssize_t r = conn_readv(&c->io, &iov, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            client_watch(c, wait_for(c, EV_READ));
            return;
        }
        if (r < 0) {
            client_fail_errno(c, errno);
            return;
        }
        if (r == 0) {
            if (c->state == BODY_UNTIL_EOF)
                client_done(c, NULL);
            else
                client_done(c, c->state == BODY_HEAD ? "connection closed before the response"
                                                     : "connection closed inside the response");
            return;
        }
        c->in_len += (size_t)r;
        int rc = 1;
        if (c->state == BODY_HEAD && (rc = head_take(c)) <= 0) {
            if (rc == 0)
                continue; /* more of the head */
            return;       /* c is gone */
        }
        if ((rc = body_take(c)) < 0)
            return;
        if (rc == 1) {
            client_done(c, NULL);
            return;
        }
    }
}

static void client_send(struct http_client *c)
{
    while (c->out_off < c->out_len) {
        struct iovec iov = {c->out + c->out_off, c->out_len - c->out_off};
        ssize_t w = conn_writev(&c->io, &iov, 1);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            client_watch(c, wait_for(c, EV_WRITE));
            return;
        }
        if (w < 0) {
            client_fail_errno(c, errno);
            return;
        }
        c->out_off += (size_t)w;
    }
    /* All sent: from now on only the response is awaited. */
    c->step = STEP_RECEIVE;
    client_read(c);
}

static void client_handshake(struct http_client *c)
{
    const char *why = NULL;
    int rc = conn_tls_handshake(&c->io, &why);
    if (rc == 0) {
        client_watch(c, wait_for(c, EV_READ));
        return;
    }
    if (rc < 0) {
        char buf[200], e[260];
        const char *v = tls_verify_error(conn_tls_ssl(&c->io), buf, sizeof(buf));
        snprintf(e, sizeof(e), "TLS handshake: %s", v ? v : why ? why : "failed");
        client_done(c, e);
        return;
    }
    c->step = STEP_SEND;
    client_send(c);
}

/* The TCP connect is done, well or not (SO_ERROR says which). */
static void client_connected(struct http_client *c)
{
    int err = c->early_err;
    socklen_t len = sizeof(err);
    if (!err && getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        client_fail_errno(c, err);
        return;
    }
    if (!c->tls) {
        c->step = STEP_SEND;
        client_send(c);
        return;
    }
    int fd = c->io.fd;
    SSL *ssl = tls_client_ssl_new(c->tls, fd);
    if (!ssl || conn_tls_init(&c->io, fd, ssl) < 0) {
        client_done(c, "out of memory");
        return;
    }
    c->step = STEP_HANDSHAKE;
    client_handshake(c);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_client *c = arg;
    switch (c->step) {
    case STEP_CONNECT:
        client_connected(c);
        break;
    case STEP_HANDSHAKE:
        client_handshake(c);
        break;
    case STEP_SEND:
        client_send(c);
        break;
    case STEP_RECEIVE:
        client_read(c);
        break;
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_client *c = arg;
    client_done(c, c->step == STEP_CONNECT     ? "connect timed out"
                   : c->step == STEP_HANDSHAKE ? "TLS handshake timed out"
                                               : "timed out");
}

struct http_client *http_client_start(struct event_base *base, const struct sockaddr *addr,
                                      socklen_t addrlen, struct tls_ctx *tls, const char *request,
                                      size_t len, unsigned timeout_ms, int whole,
                                      const struct http_client_ops *ops, void *arg, char *err,
                                      size_t errlen)
{
    struct http_client *c = calloc(1, sizeof(*c));
    if (c)
        conn_tcp_init(&c->io, -1);
    if (!c || !(c->out = malloc(len ? len : 1)) || !(c->ev = event_new(base, -1, 0, on_io, c)) ||
        !(c->timer = evtimer_new(base, on_timeout, c))) {
        snprintf(err, errlen, "out of memory");
        if (c)
            client_free(c);
        return NULL;
    }
    c->base = base;
    c->ops = ops;
    c->arg = arg;
    c->whole = whole != 0;
    c->tls = tls ? tls_ctx_ref(tls) : NULL;
    memcpy(c->out, request, len);
    c->out_len = len;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errno_text(err, errlen, errno);
        client_free(c);
        return NULL;
    }
    conn_tcp_init(&c->io, fd);
    sock_set_nodelay(fd);
    if (connect(fd, addr, addrlen) < 0 && errno != EINPROGRESS)
        c->early_err = errno; /* refused at once (loopback): reported from the loop */
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    client_watch(c, EV_WRITE);
    if (timeout_ms)
        evtimer_add(c->timer, &tv);
    return c;
}

void http_client_keepalive(struct http_client *c, unsigned idle_s, unsigned interval_s,
                           unsigned count)
{
    struct lb_keepalive_conf ka = {1, idle_s, interval_s, count};
    sock_set_keepalive(c->io.fd, &ka, "http client", "etcd");
}

char *http_client_post(const char *authority, const char *path, const char *auth, const char *body,
                       size_t *len)
{
    char *text = NULL;
    size_t blen = strlen(body);
    int n = asprintf(&text,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lb\r\n"
                     "Content-Type: application/json\r\n%s%s%sContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     path, authority, auth ? "Authorization: " : "", auth ? auth : "",
                     auth ? "\r\n" : "", blen, body);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return text;
}
