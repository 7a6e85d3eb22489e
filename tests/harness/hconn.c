/* harness/hconn: the keep-alive client. Input is buffered in the struct;
 * a response is parsed from the buffer, refilled with deadline-bounded
 * receives; a streamed body is consumed as it comes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness/internal.h"

#define HCONN_HEAD_MAX (256 * 1024)
#define HCONN_KEEP_MAX (128 * 1024 * 1024)

uint64_t harness_fnv1a(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void harness_hconn_open(struct harness_hconn *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->fd = harness_connect_ok("127.0.0.1", port);
    c->cap = 65536;
    c->buf = harness_keep(c->cap);
}

bool harness_hconn_send(struct harness_hconn *c, const void *buf, size_t len)
{
    return harness_send_all(c->fd, buf, len, HARNESS_WAIT_MS);
}

bool harness_hconn_sends(struct harness_hconn *c, const char *text)
{
    return harness_hconn_send(c, text, strlen(text));
}

/* Receives more into the buffer; false on EOF, error or the deadline. */
static bool fill(struct harness_hconn *c, long deadline)
{
    if (c->eof)
        return false;
    if (c->len == c->cap) {
        ck_assert_msg(c->cap < HCONN_KEEP_MAX, "hconn: buffer over %d bytes", HCONN_KEEP_MAX);
        char *nb = harness_keep(c->cap * 2);
        memcpy(nb, c->buf, c->len);
        c->buf = nb;
        c->cap *= 2;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t)n;
            return true;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = true;
            return false;
        }
        if (errno == EAGAIN && !harness_wait_fd(c->fd, POLLIN, deadline))
            return false;
    }
}

static void consume(struct harness_hconn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The body in progress: kept, or counted and checked. */
struct sink {
    struct harness_hresp *r;
    bool keep;
    char *data;
    size_t len, cap;
    char *raw;
    size_t raw_len, raw_cap;
};

static void grow_put(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (*len + n + 1 > nc)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        ck_assert_msg(nb != NULL, "hconn: out of memory");
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void sink_data(struct sink *s, const char *p, size_t n)
{
    struct harness_hresp *r = s->r;
    if (r->pattern) {
        unsigned char want[65536];
        for (size_t done = 0; done < n && r->pattern;) {
            size_t k = n - done < sizeof(want) ? n - done : sizeof(want);
            harness_stream_fill(want, r->body_len + done, k);
            r->pattern = memcmp(want, p + done, k) == 0;
            done += k;
        }
    }
    r->hash = harness_fnv1a(r->hash, p, n);
    r->body_len += n;
    if (s->keep)
        grow_put(&s->data, &s->len, &s->cap, p, n);
}

static void sink_raw(struct sink *s, const char *p, size_t n)
{
    if (!s->keep) {
        s->r->raw_len += n;
        return;
    }
    grow_put(&s->raw, &s->raw_len, &s->raw_cap, p, n);
    s->r->raw_len = s->raw_len;
}

/* Moves n body bytes (framed by Content-Length) from the connection. */
static bool body_fixed(struct harness_hconn *c, struct sink *s, uint64_t n, long deadline)
{
    while (n > 0) {
        if (c->len == 0 && !fill(c, deadline))
            return false;
        size_t k = c->len < n ? c->len : (size_t)n;
        sink_raw(s, c->buf, k);
        sink_data(s, c->buf, k);
        consume(c, k);
        n -= k;
    }
    return true;
}

/* A line (CRLF) at the buffer's start: its length without the CRLF. */
static bool line(struct harness_hconn *c, size_t *n, long deadline)
{
    for (;;) {
        char *eol = memmem(c->buf, c->len, "\r\n", 2);
        if (eol) {
            *n = (size_t)(eol - c->buf);
            return true;
        }
        if (c->len > 4096 || !fill(c, deadline))
            return false;
    }
}

static bool body_chunked(struct harness_hconn *c, struct sink *s, long deadline)
{
    for (;;) {
        size_t n;
        if (!line(c, &n, deadline))
            return false;
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(n < 63 ? n : 63), c->buf);
        char *end;
        unsigned long long size = strtoull(tmp, &end, 16);
        if (end == tmp)
            return false;
        sink_raw(s, c->buf, n + 2);
        consume(c, n + 2);
        if (size == 0) {
            for (;;) { /* trailers, then the empty line */
                if (!line(c, &n, deadline))
                    return false;
                sink_raw(s, c->buf, n + 2);
                consume(c, n + 2);
                if (n == 0)
                    return true;
            }
        }
        while (size > 0) {
            if (c->len == 0 && !fill(c, deadline))
                return false;
            size_t k = c->len < size ? c->len : (size_t)size;
            sink_raw(s, c->buf, k);
            sink_data(s, c->buf, k);
            consume(c, k);
            size -= k;
        }
        if (!line(c, &n, deadline) || n != 0)
            return false;
        sink_raw(s, c->buf, 2);
        consume(c, 2);
    }
}

static int read_one(struct harness_hconn *c, struct harness_hresp *r, int flags, long deadline)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        if (c->len > HCONN_HEAD_MAX || !fill(c, deadline))
            return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 2;
    char *head = harness_keep(hlen + 1);
    memcpy(head, c->buf, hlen);
    head[hlen] = '\0';
    consume(c, hlen + 2);
    int code;
    if (sscanf(head, "HTTP/1.%*[01] %3d", &code) != 1)
        return -1;
    r->status = code;
    r->head = head;
    r->headers = strstr(head, "\r\n") + 2;
    r->hash = HARNESS_FNV_INIT;
    r->pattern = true;
    struct sink s = {.r = r, .keep = !(flags & HCONN_STREAM)};
    const char *te = harness_http_header(r->headers, "Transfer-Encoding");
    const char *cl = harness_http_header(r->headers, "Content-Length");
    bool ok = true;
    if ((flags & HCONN_HEAD) || code / 100 == 1 || code == 204 || code == 304) {
        /* no body */
    } else if (te && strcasecmp(te, "chunked") == 0) {
        r->chunked = true;
        ok = body_chunked(c, &s, deadline);
    } else if (cl) {
        ok = body_fixed(c, &s, strtoull(cl, NULL, 10), deadline);
    } else {
        r->until_close = true;
        for (;;) {
            if (c->len) {
                sink_raw(&s, c->buf, c->len);
                sink_data(&s, c->buf, c->len);
                c->len = 0;
            }
            if (!fill(c, deadline)) {
                ok = c->eof;
                break;
            }
        }
    }
    if (s.keep) {
        char *b = harness_keep(s.len + 1), *w = harness_keep(s.raw_len + 1);
        if (s.len)
            memcpy(b, s.data, s.len);
        if (s.raw_len)
            memcpy(w, s.raw, s.raw_len);
        b[s.len] = w[s.raw_len] = '\0';
        r->body = b;
        r->raw = w;
    }
    free(s.data);
    free(s.raw);
    return ok ? 0 : -1;
}

int harness_hconn_read(struct harness_hconn *c, struct harness_hresp *r, int flags, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int rc = read_one(c, r, flags, deadline);
        if (rc < 0 || r->status / 100 != 1 || r->status == 101 || (flags & HCONN_INTERIM))
            return rc;
    }
}

const char *harness_hconn_read_all(struct harness_hconn *c, size_t *len, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (fill(c, deadline))
        ;
    if (!c->eof)
        return NULL;
    char *out = harness_keep(c->len + 1);
    memcpy(out, c->buf, c->len);
    out[c->len] = '\0';
    if (len)
        *len = c->len;
    c->len = 0;
    return out;
}

bool harness_hconn_expect_closed(struct harness_hconn *c, long ms)
{
    if (c->len)
        return false;
    long deadline = harness_now_ms() + ms;
    while (fill(c, deadline))
        ;
    return c->eof && c->len == 0;
}

bool harness_hconn_quiet(struct harness_hconn *c, long ms)
{
    if (c->len)
        return false;
    fill(c, harness_now_ms() + ms);
    return !c->eof && c->len == 0;
}

void harness_hconn_close(struct harness_hconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}
