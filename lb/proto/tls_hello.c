/* tls_hello: a ClientHello's server name, read across the TLS records it
 * may be split over, without copying it together. */
#include <stdint.h>
#include <string.h>

#include "lb/proto/tls_hello.h"

#define TLS_RECORD_HANDSHAKE 22
#define TLS_RECORD_MAX 16384 /* a record's plaintext fragment (RFC 8446 5.1) */
#define TLS_CLIENT_HELLO 1
#define TLS_EXT_SERVER_NAME 0
#define SNI_HOST_NAME 0

/* A reader of the handshake message's bytes: pos walks buf across record
 * headers; msg counts the message bytes taken, end is where the message
 * ends (once its header is read). A get that cannot be answered yet or at
 * all sets rc and returns false. */
struct rd {
    const uint8_t *b;
    size_t len;     /* the bytes buf holds */
    size_t pos;     /* the next byte of buf */
    size_t rec_end; /* where the current record's fragment ends in buf */
    size_t msg;     /* message bytes taken */
    size_t end;     /* the message's length, SIZE_MAX until its header is read */
    enum tls_hello_result rc;
    const char *why;
};

static bool bad(struct rd *r, const char *why)
{
    r->rc = TLS_HELLO_INVALID;
    r->why = why;
    return false;
}

static bool more(struct rd *r)
{
    r->rc = TLS_HELLO_NEED_MORE;
    return false;
}

/* Opens the record whose header starts at pos, checking each of its bytes
 * as soon as it is in. */
static bool record(struct rd *r)
{
    size_t h = r->pos;
    if (h + 5 > TLS_HELLO_MAX)
        return bad(r, "client hello too long");
    if (h < r->len && r->b[h] != TLS_RECORD_HANDSHAKE)
        return bad(r, h == 0 ? "not a TLS handshake record"
                             : "client hello continued in a record that is not a handshake");
    if (h + 1 < r->len && r->b[h + 1] != 3)
        return bad(r, "bad record version");
    if (h + 4 < r->len) {
        size_t n = (size_t)r->b[h + 3] << 8 | r->b[h + 4];
        if (n == 0)
            return bad(r, "empty handshake record");
        if (n > TLS_RECORD_MAX)
            return bad(r, "record too long");
        r->rec_end = h + 5 + n;
        r->pos = h + 5;
        return true;
    }
    return more(r);
}

/* Makes pos point at a message byte that is in buf. */
static bool at_byte(struct rd *r)
{
    while (r->pos == r->rec_end)
        if (!record(r))
            return false;
    if (r->pos >= TLS_HELLO_MAX)
        return bad(r, "client hello too long");
    return r->pos < r->len || more(r);
}

/* The next n bytes must lie within the message. */
static bool within(struct rd *r, size_t n)
{
    return r->msg + n <= r->end || bad(r, "truncated client hello");
}

static bool get(struct rd *r, size_t n, unsigned *out)
{
    if (!within(r, n))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!at_byte(r))
            return false;
        v = v << 8 | r->b[r->pos++];
        r->msg++;
    }
    *out = v;
    return true;
}

static bool skip(struct rd *r, size_t n)
{
    if (!within(r, n))
        return false;
    while (n > 0) {
        if (!at_byte(r))
            return false;
        size_t k = r->rec_end - r->pos;
        if (k > r->len - r->pos)
            k = r->len - r->pos;
        if (k > TLS_HELLO_MAX - r->pos)
            k = TLS_HELLO_MAX - r->pos;
        if (k > n)
            k = n;
        r->pos += k;
        r->msg += k;
        n -= k;
    }
    return true;
}

static bool host_byte(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* The server_name extension's n bytes (RFC 6066 3). */
static bool server_name(struct rd *r, size_t n, struct tls_hello *h)
{
    unsigned list;
    if (n < 2)
        return bad(r, "bad server_name extension");
    if (!get(r, 2, &list))
        return false;
    if (list + 2 != n)
        return bad(r, "bad server_name extension");
    size_t left = list;
    while (left > 0) {
        unsigned type, len;
        if (left < 3)
            return bad(r, "bad server_name extension");
        if (!get(r, 1, &type) || !get(r, 2, &len))
            return false;
        left -= 3;
        if (len > left)
            return bad(r, "bad server_name extension");
        left -= len;
        if (type != SNI_HOST_NAME) {
            if (!skip(r, len))
                return false;
            continue;
        }
        if (h->has_server_name)
            return bad(r, "two host names in server_name");
        if (len == 0 || len > TLS_SERVER_NAME_MAX)
            return bad(r, "bad server name");
        for (unsigned i = 0; i < len; i++) {
            unsigned c;
            if (!get(r, 1, &c))
                return false;
            if (!host_byte(c))
                return bad(r, "bad server name");
            h->server_name[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
        h->server_name[len] = '\0';
        h->has_server_name = true;
    }
    return true;
}

static bool client_hello(struct rd *r, struct tls_hello *h)
{
    unsigned type, len, v;
    if (!get(r, 1, &type))
        return false;
    if (type != TLS_CLIENT_HELLO)
        return bad(r, "not a client hello");
    if (!get(r, 3, &len))
        return false;
    if (len + 9 > TLS_HELLO_MAX) /* its bytes and two headers at least */
        return bad(r, "client hello too long");
    r->end = r->msg + len;
    if (!get(r, 2, &h->version))
        return false;
    if (h->version >> 8 != 3)
        return bad(r, "bad client version");
    if (!skip(r, 32) || !get(r, 1, &v)) /* the random, the session id's length */
        return false;
    if (v > 32)
        return bad(r, "session id too long");
    if (!skip(r, v) || !get(r, 2, &v))
        return false;
    if (v == 0 || v % 2)
        return bad(r, "bad cipher suites length");
    if (!skip(r, v) || !get(r, 1, &v))
        return false;
    if (v == 0)
        return bad(r, "no compression method");
    if (!skip(r, v))
        return false;
    if (r->msg == r->end)
        return true; /* no extensions */
    if (!get(r, 2, &v))
        return false;
    if (r->msg + v != r->end)
        return bad(r, "extensions do not fill the client hello");
    bool seen = false;
    while (r->msg < r->end) {
        unsigned et, el;
        if (!get(r, 2, &et) || !get(r, 2, &el))
            return false;
        if (r->msg + el > r->end)
            return bad(r, "extension beyond the client hello");
        if (et != TLS_EXT_SERVER_NAME) {
            if (!skip(r, el))
                return false;
            continue;
        }
        if (seen)
            return bad(r, "server_name twice");
        seen = true;
        if (!server_name(r, el, h))
            return false;
    }
    return true;
}

enum tls_hello_result tls_hello_parse(const void *buf, size_t len, struct tls_hello *out,
                                      const char **why)
{
    struct rd r = {.b = buf, .len = len, .end = SIZE_MAX, .rc = TLS_HELLO_OK};
    struct tls_hello h;
    memset(&h, 0, sizeof(h));
    if (!client_hello(&r, &h)) {
        if (r.rc == TLS_HELLO_INVALID && why)
            *why = r.why;
        return r.rc;
    }
    h.hello_len = r.pos;
    *out = h;
    return TLS_HELLO_OK;
}
