/* harness/hserver: the HTTP backends. Each runs in a connection process
 * of harness_server (no Check calls): a small buffered reader, a request
 * head parser just good enough for what lb sends, and the answers. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness/internal.h"

#define HS_HEAD_MAX (64 * 1024)

struct rd {
    int fd;
    char buf[HS_HEAD_MAX + 1];
    size_t len;
};

static bool more(struct rd *r)
{
    if (r->len == HS_HEAD_MAX)
        return false;
    for (;;) {
        ssize_t n = recv(r->fd, r->buf + r->len, HS_HEAD_MAX - r->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        r->len += (size_t)n;
        r->buf[r->len] = '\0';
        return true;
    }
}

static void take(struct rd *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
    r->buf[r->len] = '\0';
}

/* The next head (request line and headers, CRLFs kept, no empty line)
 * into head (HS_HEAD_MAX + 1); false on EOF or an oversized head. */
static bool next_head(struct rd *r, char *head)
{
    char *end;
    r->buf[r->len] = '\0';
    while ((end = memmem(r->buf, r->len, "\r\n\r\n", 4)) == NULL)
        if (!more(r))
            return false;
    size_t n = (size_t)(end - r->buf) + 2;
    memcpy(head, r->buf, n);
    head[n] = '\0';
    take(r, n + 2);
    return true;
}

/* Reads n body bytes, hashing them. */
static bool body_n(struct rd *r, unsigned long long n, uint64_t *h, unsigned long long *count)
{
    while (n > 0) {
        if (r->len == 0 && !more(r))
            return false;
        size_t k = r->len < n ? r->len : (size_t)n;
        *h = harness_fnv1a(*h, r->buf, k);
        *count += k;
        take(r, k);
        n -= k;
    }
    return true;
}

static bool crlf_line(struct rd *r, char *out, size_t cap)
{
    char *eol;
    while ((eol = memmem(r->buf, r->len, "\r\n", 2)) == NULL)
        if (!more(r))
            return false;
    size_t n = (size_t)(eol - r->buf);
    snprintf(out, cap, "%.*s", (int)n, r->buf);
    take(r, n + 2);
    return true;
}

static bool body_chunked(struct rd *r, uint64_t *h, unsigned long long *count)
{
    char ln[256];
    for (;;) {
        if (!crlf_line(r, ln, sizeof(ln)))
            return false;
        char *end;
        unsigned long long size = strtoull(ln, &end, 16);
        if (end == ln)
            return false;
        if (size == 0) {
            do
                if (!crlf_line(r, ln, sizeof(ln)))
                    return false;
            while (ln[0]);
            return true;
        }
        if (!body_n(r, size, h, count) || !crlf_line(r, ln, sizeof(ln)) || ln[0])
            return false;
    }
}

static int peer_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

static bool send_pattern(int fd, unsigned long long off, unsigned long long n)
{
    unsigned char buf[65536];
    while (n > 0) {
        size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
        harness_stream_fill(buf, off, k);
        if (!harness_write_full(fd, buf, k))
            return false;
        off += k;
        n -= k;
    }
    return true;
}

static bool answer_chunked(int fd, unsigned long long n)
{
    static const unsigned long long sizes[] = {1, 7, 100, 4096, 65536};
    unsigned long long off = 0;
    for (unsigned i = 0; off < n; i++) {
        unsigned long long k = i < 5 ? sizes[i] : 65521;
        if (k > n - off)
            k = n - off;
        char ln[32];
        int l = snprintf(ln, sizeof(ln), "%llx\r\n", k);
        if (!harness_write_full(fd, ln, (size_t)l) || !send_pattern(fd, off, k) ||
            !harness_write_full(fd, "\r\n", 2))
            return false;
        off += k;
    }
    return harness_write_full(fd, "0\r\n\r\n", 5);
}

/* Serves requests from r until EOF or close; name goes into X-Backend. */
static void echo_loop(struct rd *r, const char *name)
{
    static char head[HS_HEAD_MAX + 1];
    int port = peer_port(r->fd);
    unsigned seq = 0; /* requests on this connection */
    while (next_head(r, head)) {
        seq++;
        char v[64];
        uint64_t h = HARNESS_FNV_INIT;
        unsigned long long count = 0;
        bool ok;
        if (harness_head_value(head, "Transfer-Encoding", v, sizeof(v)))
            ok = strcasecmp(v, "chunked") == 0 && body_chunked(r, &h, &count);
        else if (harness_head_value(head, "Content-Length", v, sizeof(v)))
            ok = body_n(r, strtoull(v, NULL, 10), &h, &count);
        else
            ok = true;
        if (!ok)
            return;
        bool keep = harness_head_keep_alive(head);
        bool is_head = strncmp(head, "HEAD ", 5) == 0;
        unsigned long long n = 0;
        int kind = 0; /* 0 echo, 1 big, 2 chunked */
        if (sscanf(head, "GET /big/%llu ", &n) == 1)
            kind = 1;
        else if (sscanf(head, "GET /chunked/%llu ", &n) == 1)
            kind = 2;
        char *text = NULL;
        size_t tlen = 0;
        if (kind == 0) {
            FILE *m = open_memstream(&text, &tlen);
            fprintf(m, "%sbody-bytes: %llu\nbody-fnv: %016llx\n", head, count,
                    (unsigned long long)h);
            fclose(m);
            n = tlen;
        }
        char top[512];
        int l = snprintf(top, sizeof(top),
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: %s\r\n"
                         "X-Peer-Port: %d\r\nX-Conn-Request: %u\r\n%s",
                         name, port, seq, keep ? "" : "Connection: close\r\n");
        if (kind == 2)
            l += snprintf(top + l, sizeof(top) - (size_t)l, "Transfer-Encoding: chunked\r\n\r\n");
        else
            l += snprintf(top + l, sizeof(top) - (size_t)l, "Content-Length: %llu\r\n\r\n", n);
        ok = harness_write_full(r->fd, top, (size_t)l);
        if (ok && !is_head)
            ok = kind == 0   ? harness_write_full(r->fd, text, tlen)
                 : kind == 1 ? send_pattern(r->fd, 0, n)
                             : answer_chunked(r->fd, n);
        free(text);
        if (!ok)
            return;
        if (!keep) {
            shutdown(r->fd, SHUT_WR);
            return;
        }
    }
}

void harness_fn_http_echo(int fd, void *arg)
{
    static struct rd r;
    r.fd = fd;
    r.len = 0;
    echo_loop(&r, arg ? arg : "echo");
}

static void drain_all(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
}

void harness_fn_http_garbage(int fd, void *arg)
{
    (void)arg;
    static struct rd r;
    static char head[HS_HEAD_MAX + 1];
    r.fd = fd;
    if (next_head(&r, head) && harness_write_full(fd, "HELLO\r\n\r\n", 9))
        drain_all(fd);
}

void harness_fn_http_close(int fd, void *arg)
{
    (void)arg;
    static struct rd r;
    static char head[HS_HEAD_MAX + 1];
    r.fd = fd;
    next_head(&r, head);
}

void harness_fn_http_upgrade(int fd, void *arg)
{
    (void)arg;
    static struct rd r;
    static char head[HS_HEAD_MAX + 1];
    r.fd = fd;
    if (!next_head(&r, head))
        return;
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n\r\n";
    if (!harness_write_full(fd, ok, sizeof(ok) - 1) ||
        (r.len && !harness_write_full(fd, r.buf, r.len)))
        return;
    harness_fn_echo(fd, NULL);
}

void harness_fn_http_continue(int fd, void *arg)
{
    (void)arg;
    static struct rd r;
    static char head[HS_HEAD_MAX + 1];
    r.fd = fd;
    if (!next_head(&r, head))
        return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char v[64];
    unsigned long long n =
        harness_head_value(head, "Content-Length", v, sizeof(v)) ? strtoull(v, NULL, 10) : 0;
    uint64_t h = HARNESS_FNV_INIT;
    unsigned long long count = 0;
    if (!harness_write_full(fd, cont, sizeof(cont) - 1) || !body_n(&r, n, &h, &count))
        return;
    char body[64], top[256];
    int bl = snprintf(body, sizeof(body), "got %llu\n", count);
    int l =
        snprintf(top, sizeof(top),
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", bl);
    if (harness_write_full(fd, top, (size_t)l) && harness_write_full(fd, body, (size_t)bl))
        drain_all(fd);
}

void harness_fn_http_record(int fd, void *arg)
{
    static struct rd r;
    r.fd = fd;
    r.len = 0;
    while (r.len < 16)
        if (!more(&r))
            return;
    char hex[64] = "";
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, sizeof(hex) - 2 * (size_t)i, "%02x", (unsigned char)r.buf[i]);
    FILE *f = fopen(arg, "a");
    if (f) {
        fprintf(f, "conn: %s\n", hex);
        fclose(f);
    }
    /* A v2 header: 16 bytes and the length at 14; a v1 one: a line. */
    static const char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    if (memcmp(r.buf, sig, 12) == 0) {
        size_t n = 16 + ((size_t)(unsigned char)r.buf[14] << 8) + (unsigned char)r.buf[15];
        while (r.len < n)
            if (!more(&r))
                return;
        take(&r, n);
    } else if (strncmp(r.buf, "PROXY ", 6) == 0) {
        char ln[128];
        if (!crlf_line(&r, ln, sizeof(ln)))
            return;
    }
    echo_loop(&r, "raw");
}
