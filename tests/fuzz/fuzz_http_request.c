/* fuzz_http_request: the request-head path of lb/http_session.c on any
 * bytes, and a differential check of what it forwards.
 *
 * Input: byte 0 chooses the forwarding settings (the client's address
 * family, http or https, X-Real-IP, Forwarded, the Connection lb writes),
 * byte 1 the size of the reads the head arrives in, the rest is what the
 * client sent. As the session does: http_head_end() on each read (its
 * *scanned kept between them) until it finds the head, then
 * http_request_parse() (lb's checks and llhttp's), then
 * http_request_size() and http_request_write().
 *
 * Checked, trapping otherwise: the head end found read by read is the one
 * found on all the bytes at once; a refusal is one of the documented
 * statuses with a reason; the spans lie within the head; the size is what
 * the writer writes, and a buffer one byte short gets nothing. And the
 * differential check: the head lb forwards, parsed again strictly by
 * http_request_parse(), is one whole head (http_head_end() finds its end at
 * its last byte) and one request with the same method, target, version and
 * framing (chunked, or the same Content-Length, or no body) - unless lb's
 * added forwarding headers push it over HTTP_MAX_HEADERS. */
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lb/proto/http_head.h"

/* The headers http_request_write() may add: Connection, X-Forwarded-For,
 * -Proto, -Port, X-Real-IP, Forwarded. */
#define ADDED_HEADERS 6

static bool span_in(struct http_span s, size_t len)
{
    return s.off <= len && s.len <= len - s.off;
}

static bool span_eq(const char *a, struct http_span sa, const char *b, struct http_span sb)
{
    return sa.len == sb.len && memcmp(a + sa.off, b + sb.off, sa.len) == 0;
}

/* The forwarding settings byte opts chooses. */
static void forward_of(uint8_t opts, struct http_forward *fw, struct sockaddr_storage *ss)
{
    static const char *const connections[] = {NULL, "keep-alive", "close", "upgrade"};
    memset(ss, 0, sizeof(*ss));
    memset(fw, 0, sizeof(*fw));
    switch (opts & 3) {
    case 0: {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
        in->sin_port = htons(40000);
        fw->client = (const struct sockaddr *)ss;
        break;
    }
    case 1: {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr.s6_addr[0] = 0x20;
        in6->sin6_addr.s6_addr[1] = 0x01;
        in6->sin6_addr.s6_addr[15] = 1;
        fw->client = (const struct sockaddr *)ss;
        break;
    }
    case 2:
        ss->ss_family = AF_UNIX; /* not IP: "unknown" */
        fw->client = (const struct sockaddr *)ss;
        break;
    default:
        fw->client = NULL;
    }
    fw->proto = opts & 4 ? "https" : "http";
    fw->port = opts & 4 ? 443 : 8080;
    fw->real_ip = opts & 8;
    fw->forwarded = opts & 16;
    fw->connection = connections[(opts >> 5) & 3];
}

/* The head end found as the session finds it, read by read. */
static size_t head_end_by_reads(const char *buf, size_t len, size_t step)
{
    size_t scanned = 0;
    for (size_t have = step < len ? step : len;; have = have + step < len ? have + step : len) {
        size_t end = http_head_end(buf, have, &scanned);
        if (end != 0 || have == len)
            return end;
    }
}

static void check_parsed(const struct http_head *h, size_t head_len)
{
    if (!span_in(h->method, head_len) || !span_in(h->target, head_len) || h->method.len == 0 ||
        h->target.len == 0 || h->nheaders > HTTP_MAX_HEADERS || h->head_len != head_len ||
        (h->version_minor != 0 && h->version_minor != 1) || h->content_length < -1 ||
        h->host >= (int)h->nheaders)
        __builtin_trap();
    for (unsigned i = 0; i < h->nheaders; i++)
        if (!span_in(h->headers[i].name, head_len) || !span_in(h->headers[i].value, head_len) ||
            h->headers[i].name.len == 0)
            __builtin_trap();
}

/* The differential check: out, the head lb forwards for the request h of
 * buf, read again. */
static void check_forwarded(const char *buf, const struct http_head *h, const char *out, size_t n)
{
    if (http_head_end(out, n, NULL) != n)
        __builtin_trap();
    struct http_head *again = malloc(sizeof(*again));
    if (!again)
        abort();
    const char *why = NULL;
    int status = http_request_parse(out, n, again, &why);
    if (status == 431 && h->nheaders + ADDED_HEADERS > HTTP_MAX_HEADERS) {
        free(again);
        return;
    }
    if (status != 0 || !span_eq(buf, h->method, out, again->method) ||
        !span_eq(buf, h->target, out, again->target) || again->version_minor != h->version_minor ||
        again->chunked != h->chunked ||
        (!h->chunked && again->content_length != h->content_length) ||
        again->method_head != h->method_head || (again->host >= 0) != (h->host >= 0))
        __builtin_trap();
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opts = data[0];
    size_t step = data[1] ? data[1] : 1;
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;

    size_t head_len = http_head_end(buf, len, NULL);
    if (head_end_by_reads(buf, len, step) != head_len || head_len > len)
        __builtin_trap();
    if (head_len == 0)
        return 0;

    struct http_head *h = malloc(sizeof(*h));
    if (!h)
        abort();
    const char *why = NULL;
    int status = http_request_parse(buf, head_len, h, &why);
    if (status != 0) {
        if ((status != 400 && status != 431 && status != 501 && status != 505) || !why || !*why)
            __builtin_trap();
        free(h);
        return 0;
    }
    check_parsed(h, head_len);

    struct sockaddr_storage ss;
    struct http_forward fw;
    forward_of(opts, &fw, &ss);
    size_t need = http_request_size(buf, h, &fw);
    char *out = malloc(need + 1);
    if (!out)
        abort();
    if (need == 0 || http_request_write(buf, h, &fw, out, need - 1) != 0 ||
        http_request_write(buf, h, &fw, out, need + 1) != need ||
        http_request_write(buf, h, &fw, out, need) != need)
        __builtin_trap();
    check_forwarded(buf, h, out, need);
    free(out);
    free(h);
    return 0;
}
