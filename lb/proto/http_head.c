/* http_head: HTTP/1.x heads, read twice and written anew. The scan below is
 * lb's own strict reading of the bytes (RFC 9110 and 9112, strict wherever the
 * RFCs let a recipient choose), and it fills struct http_head; llhttp then
 * parses the same bytes and must agree, so a head passes only when two
 * independent parsers read it the same way. The writers build the head sent
 * on from the parsed parts. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <llhttp.h>

#include "lb/proto/http_head.h"

_Static_assert(HTTP_MAX_HEADERS < 255, "header indexes are kept in a uint8_t");

/* ---- bytes ---- */

enum {
    C_TCHAR = 1, /* RFC 9110 tchar: header names, methods, tokens */
    C_VCHAR = 2, /* visible ASCII: request targets */
    C_FIELD = 4, /* VCHAR, obs-text, SP, HTAB: header values, reason phrases */
    C_DIGIT = 8, /* 0-9 */
    C_HOST = 16, /* what a Host value may hold: reg-name, IP literal, port */
};

#define T (C_TCHAR | C_VCHAR | C_FIELD)
#define V (C_VCHAR | C_FIELD)
#define H C_HOST
/* clang-format off */
static const uint8_t ctype[256] = {
    ['\t'] = C_FIELD, [' '] = C_FIELD,
    ['!'] = T | H, ['"'] = V,     ['#'] = T,     ['$'] = T | H, ['%'] = T | H, ['&'] = T | H,
    ['\''] = T | H, ['('] = V | H, [')'] = V | H, ['*'] = T | H, ['+'] = T | H, [','] = V | H,
    ['-'] = T | H, ['.'] = T | H, ['/'] = V,     ['0' ... '9'] = T | C_DIGIT | H,
    [':'] = V | H, [';'] = V | H, ['<'] = V,     ['='] = V | H, ['>'] = V,     ['?'] = V,
    ['@'] = V,     ['A' ... 'Z'] = T | H,        ['['] = V | H, ['\\'] = V,    [']'] = V | H,
    ['^'] = T,     ['_'] = T | H, ['`'] = T,     ['a' ... 'z'] = T | H,        ['{'] = V,
    ['|'] = T,     ['}'] = V,     ['~'] = T | H,
    [0x80 ... 0xff] = C_FIELD, /* obs-text */
};
/* clang-format on */
#undef T
#undef V
#undef H

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static uint8_t ascii_lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* p[0, n) equals the lowercase string lower, ignoring ASCII case. */
static bool ieq(const uint8_t *p, size_t n, const char *lower)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(p[i]) != (uint8_t)lower[i] || !lower[i])
            return false;
    return lower[n] == '\0';
}

static bool crlf_at(const uint8_t *b, size_t i, size_t len)
{
    return i + 1 < len && b[i] == '\r' && b[i + 1] == '\n';
}

static int fail(const char **why, int code, const char *reason)
{
    *why = reason;
    return code;
}

/* Why the byte at i may not stand where the scan stopped: a broken line end
 * or a control byte is named as such, anything else (a proper CRLF too) as
 * `otherwise` says. */
static const char *stray(const uint8_t *b, size_t i, size_t len, const char *otherwise)
{
    if (i >= len)
        return "incomplete head";
    if (b[i] == '\n')
        return "bare LF";
    if (b[i] == '\r')
        return crlf_at(b, i, len) ? otherwise : "CR not followed by LF";
    if (b[i] < 0x20 || b[i] == 0x7f)
        return "control byte";
    return otherwise;
}

/* The end of the run of field bytes (VCHAR, obs-text, SP, HTAB) at b[i]:
 * eight bytes at a time while none is a control byte or DEL (most values),
 * then byte by byte to settle the one that stopped it. */
static size_t field_run(const uint8_t *b, size_t i, size_t len)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (len - i >= 8) {
        uint64_t x, del;
        memcpy(&x, b + i, 8);
        del = x ^ (0x7f * ones);
        if (((x - 0x20 * ones) & ~x & highs) || ((del - ones) & ~del & highs))
            break;
        i += 8;
    }
    while (i < len && (ctype[b[i]] & C_FIELD))
        i++;
    return i;
}

static struct http_span span(size_t from, size_t to)
{
    return (struct http_span){(uint32_t)from, (uint32_t)(to - from)};
}

/* ---- http_head_end ---- */

/* Up to HTTP_MAX_EMPTY_LINES CRLFs at the start of b: their length. */
static size_t empty_lines(const uint8_t *b, size_t len)
{
    size_t i = 0;
    while (i < 2 * HTTP_MAX_EMPTY_LINES && crlf_at(b, i, len))
        i += 2;
    return i;
}

size_t http_head_end(const char *buf, size_t len, size_t *scanned)
{
    const uint8_t *b = (const uint8_t *)buf;
    size_t start = empty_lines(b, len);
    size_t i = scanned && *scanned > start ? *scanned : start;

    /* Only an LF can end a line: jump from one to the next and look back. */
    while (i < len) {
        const uint8_t *lf = memchr(b + i, '\n', len - i);
        if (!lf)
            break;
        i = (size_t)(lf - b);
        if (i == 0 || b[i - 1] != '\r')
            return i + 1; /* bare LF: let the parser reject it now */
        if (i >= start + 3 && b[i - 2] == '\n' && b[i - 3] == '\r')
            return i + 1;
        i++;
    }
    if (scanned)
        *scanned = len;
    return 0;
}

/* ---- lb's scan ---- */

/* "HTTP/" DIGIT "." DIGIT at b[*i]; sets the minor version and moves *i past
 * it. 400 when it is not that shape, 505 when it is not 1.0 or 1.1. */
static int scan_version(const uint8_t *b, size_t *i, size_t len, struct http_head *h,
                        const char **why)
{
    const uint8_t *v = b + *i;
    if (len - *i < 8 || memcmp(v, "HTTP/", 5) != 0 || !(ctype[v[5]] & C_DIGIT) || v[6] != '.' ||
        !(ctype[v[7]] & C_DIGIT) || (len - *i > 8 && (ctype[v[8]] & C_DIGIT)))
        return fail(why, 400, "malformed HTTP version");
    if (v[5] != '1' || v[7] > '1')
        return fail(why, 505, "HTTP version not supported");
    h->version_minor = v[7] - '0';
    *i += 8;
    return 0;
}

/* method SP request-target SP HTTP-version CRLF, at b[*i]. */
static int scan_request_line(const uint8_t *b, size_t *pos, size_t len, struct http_head *h,
                             const char **why)
{
    size_t i = *pos, from = i;
    while (i < len && (ctype[b[i]] & C_TCHAR))
        i++;
    if (i == from && crlf_at(b, i, len))
        return fail(why, 400, "too many empty lines before the request line");
    if (i == from || i >= len || b[i] != ' ')
        return fail(
            why, 400,
            stray(b, i, len,
                  crlf_at(b, i, len) ? "incomplete request line" : "method is not a token"));
    h->method = span(from, i);
    h->method_head = i - from == 4 && memcmp(b + from, "HEAD", 4) == 0;

    from = ++i;
    while (i < len && (ctype[b[i]] & C_VCHAR))
        i++;
    if (i == from)
        return fail(why, 400, stray(b, i, len, "empty request target"));
    if (crlf_at(b, i, len))
        return fail(why, 400, "request line without a version (HTTP/0.9)");
    if (i >= len || b[i] != ' ')
        return fail(why, 400, stray(b, i, len, "non-ASCII byte in request target"));
    h->target = span(from, i);

    i++;
    int rc = scan_version(b, &i, len, h, why);
    if (rc)
        return rc;
    if (!crlf_at(b, i, len))
        return fail(why, 400, stray(b, i, len, "malformed request line"));
    *pos = i + 2;
    return 0;
}

/* HTTP-version SP status-code [SP reason-phrase] CRLF, at b[*i]. A missing
 * SP before an empty reason is tolerated: it leaves nothing ambiguous. */
static int scan_status_line(const uint8_t *b, size_t *pos, size_t len, struct http_head *h,
                            const char **why)
{
    size_t i = *pos;
    int rc = scan_version(b, &i, len, h, why);
    if (rc)
        return rc;
    if (i >= len || b[i] != ' ')
        return fail(why, 400, stray(b, i, len, "malformed status line"));
    i++;
    const uint8_t *s = b + i;
    if (len - i < 4 || !(ctype[s[0]] & C_DIGIT) || !(ctype[s[1]] & C_DIGIT) ||
        !(ctype[s[2]] & C_DIGIT) || (s[3] != ' ' && s[3] != '\r'))
        return fail(why, 400, "invalid status code");
    h->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    if (h->status < 100 || h->status > 599)
        return fail(why, 400, "invalid status code");
    i += 3;
    if (b[i] == ' ')
        i++;
    size_t from = i;
    while (i < len && (ctype[b[i]] & C_FIELD))
        i++;
    if (!crlf_at(b, i, len))
        return fail(why, 400, stray(b, i, len, "malformed status line"));
    h->reason = span(from, i);
    *pos = i + 2;
    return 0;
}

/* The field lb acts on that a header name is, else HTTP_FIELD_OTHER. The
 * first letter leaves at most four names to compare, most headers none. */
static uint8_t field_of(const uint8_t *name, size_t len)
{
#define IS(lower, field)                                                                           \
    if (ieq(name, len, lower))                                                                     \
        return field;
    switch (ascii_lower(name[0])) {
    case 'c':
        IS("connection", HTTP_FIELD_CONNECTION);
        IS("content-length", HTTP_FIELD_CONTENT_LENGTH);
        break;
    case 'e':
        IS("expect", HTTP_FIELD_EXPECT);
        break;
    case 'f':
        IS("forwarded", HTTP_FIELD_FORWARDED);
        break;
    case 'h':
        IS("host", HTTP_FIELD_HOST);
        IS("http2-settings", HTTP_FIELD_HTTP2_SETTINGS);
        break;
    case 'k':
        IS("keep-alive", HTTP_FIELD_KEEP_ALIVE);
        break;
    case 'p':
        IS("proxy-connection", HTTP_FIELD_PROXY_CONNECTION);
        break;
    case 't':
        IS("te", HTTP_FIELD_TE);
        IS("trailer", HTTP_FIELD_TRAILER);
        IS("transfer-encoding", HTTP_FIELD_TRANSFER_ENCODING);
        break;
    case 'u':
        IS("upgrade", HTTP_FIELD_UPGRADE);
        break;
    case 'x':
        IS("x-forwarded-for", HTTP_FIELD_X_FORWARDED_FOR);
        IS("x-forwarded-port", HTTP_FIELD_X_FORWARDED_PORT);
        IS("x-forwarded-proto", HTTP_FIELD_X_FORWARDED_PROTO);
        IS("x-real-ip", HTTP_FIELD_X_REAL_IP);
        break;
    }
#undef IS
    return HTTP_FIELD_OTHER;
}

/* field-name ":" OWS field-value OWS CRLF lines up to the empty line, at
 * b[*pos]; *pos ends past the empty line. */
static int scan_headers(const uint8_t *b, size_t *pos, size_t len, struct http_head *h,
                        const char **why)
{
    size_t i = *pos;
    while (!crlf_at(b, i, len)) {
        if (i < len && is_ows(b[i]))
            return fail(why, 400, "obs-fold (a header line starts with whitespace)");
        size_t from = i;
        while (i < len && (ctype[b[i]] & C_TCHAR))
            i++;
        if (i < len && b[i] == ':' && i == from)
            return fail(why, 400, "empty header name");
        if (i < len && is_ows(b[i]))
            return fail(why, 400, "whitespace in or after a header name");
        if (i >= len || b[i] != ':')
            return fail(why, 400,
                        stray(b, i, len,
                              crlf_at(b, i, len) ? "header line without a colon"
                                                 : "header name is not a token"));
        if (h->nheaders == HTTP_MAX_HEADERS)
            return fail(why, 431, "too many headers");
        struct http_header *hd = &h->headers[h->nheaders++];
        hd->name = span(from, i);
        hd->field = field_of(b + from, i - from);
        hd->listed = hd->underscore = false;

        i++;
        while (i < len && is_ows(b[i]))
            i++;
        from = i;
        i = field_run(b, i, len);
        if (!crlf_at(b, i, len))
            return fail(why, 400, stray(b, i, len, "control byte"));
        size_t to = i;
        while (to > from && is_ows(b[to - 1]))
            to--;
        hd->value = span(from, to);
        i += 2;
    }
    *pos = i + 2;
    return 0;
}

/* ---- what the headers mean ---- */

/* What the framing and connection headers said, gathered in one pass. */
struct facts {
    int64_t content_length; /* -1 until a Content-Length */
    unsigned ncl;           /* Content-Length lines */
    bool cl_plain;          /* every Content-Length line is digits alone */
    bool te;                /* Transfer-Encoding present */
    unsigned nchunked;      /* chunked codings named */
    bool final_chunked;     /* the last coding is chunked */
    unsigned nhost;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool conn_names;     /* Connection names some other header */
    bool upgrade_header; /* an Upgrade with a value */
    bool upgrade_h2c;    /* an Upgrade that names h2c */
    bool expect_continue;
};

static bool digits_only(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(ctype[p[i]] & C_DIGIT))
            return false;
    return n > 0;
}

/* A Content-Length value: one length, or a list of one length repeated
 * ("5, 5", RFC 9110 8.6); each must equal f->content_length once set. */
static int content_length_parse(const uint8_t *v, size_t n, struct facts *f, const char **why)
{
    size_t i = 0;
    for (;;) {
        while (i < n && is_ows(v[i]))
            i++;
        if (i == n || !(ctype[v[i]] & C_DIGIT))
            return fail(why, 400, "invalid Content-Length");
        int64_t len = 0;
        for (; i < n && (ctype[v[i]] & C_DIGIT); i++) {
            if (len > (INT64_MAX - (v[i] - '0')) / 10)
                return fail(why, 400, "Content-Length out of range");
            len = len * 10 + (v[i] - '0');
        }
        if (f->content_length >= 0 && f->content_length != len)
            return fail(why, 400, "differing Content-Length values");
        f->content_length = len;
        while (i < n && is_ows(v[i]))
            i++;
        if (i == n)
            return 0;
        if (v[i] != ',')
            return fail(why, 400, "invalid Content-Length");
        i++;
    }
}

/* A Transfer-Encoding value: a list of codings, each a token with optional
 * token=token parameters; chunked takes none. strict (requests): an empty
 * list element or the coding identity is a 400; else empty elements are
 * skipped (RFC 9110 5.6.1). Counts chunked and notes whether it came last. */
static int transfer_encoding_parse(const uint8_t *v, size_t n, bool strict, struct facts *f,
                                   const char **why)
{
    size_t i = 0;
    bool any = false;
    for (;;) {
        while (i < n && is_ows(v[i]))
            i++;
        if (i == n || v[i] == ',') {
            if (strict)
                return fail(why, 400, "empty element in Transfer-Encoding");
            if (i == n)
                break;
            i++;
            continue;
        }
        size_t from = i;
        while (i < n && (ctype[v[i]] & C_TCHAR))
            i++;
        if (i == from)
            return fail(why, 400, "invalid Transfer-Encoding");
        if (strict && ieq(v + from, i - from, "identity"))
            return fail(why, 400, "identity transfer coding");
        bool chunked = ieq(v + from, i - from, "chunked");
        f->nchunked += chunked;
        f->final_chunked = chunked;
        any = true;
        while (i < n && is_ows(v[i]))
            i++;
        while (i < n && v[i] == ';') {
            if (chunked)
                return fail(why, 400, "invalid Transfer-Encoding");
            i++;
            while (i < n && is_ows(v[i]))
                i++;
            from = i;
            while (i < n && (ctype[v[i]] & C_TCHAR))
                i++;
            if (i == from || i == n || v[i] != '=')
                return fail(why, 400, "invalid Transfer-Encoding");
            from = ++i;
            while (i < n && (ctype[v[i]] & C_TCHAR))
                i++;
            if (i == from)
                return fail(why, 400, "invalid Transfer-Encoding");
            while (i < n && is_ows(v[i]))
                i++;
        }
        if (i == n)
            break;
        if (v[i] != ',')
            return fail(why, 400, "invalid Transfer-Encoding");
        i++;
    }
    if (!any)
        return fail(why, 400, "invalid Transfer-Encoding");
    return 0;
}

/* The next element of the comma list v[*pos, n), trimmed, into *el and
 * *el_len; false after the last. Empty elements are skipped (RFC 9110 5.6.1). */
static bool list_next(const uint8_t *v, size_t n, size_t *pos, const uint8_t **el, size_t *el_len)
{
    size_t i = *pos;
    for (;;) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        if (i == n)
            return false;
        size_t from = i;
        while (i < n && v[i] != ',')
            i++;
        size_t to = i;
        while (to > from && is_ows(v[to - 1]))
            to--;
        *pos = i;
        *el = v + from;
        *el_len = to - from;
        return true;
    }
}

/* Connection options: close, keep-alive and upgrade are noted; any other
 * names a header. */
static void connection_parse(const uint8_t *v, size_t n, struct facts *f)
{
    const uint8_t *el;
    size_t el_len, pos = 0;
    while (list_next(v, n, &pos, &el, &el_len)) {
        if (ieq(el, el_len, "close"))
            f->conn_close = true;
        else if (ieq(el, el_len, "keep-alive"))
            f->conn_keep_alive = true;
        else if (ieq(el, el_len, "upgrade"))
            f->conn_upgrade = true;
        else
            f->conn_names = true;
    }
}

/* The protocol list of an Upgrade names h2c (with or without a version). */
static bool names_h2c(const uint8_t *v, size_t n)
{
    const uint8_t *el;
    size_t el_len, pos = 0;
    while (list_next(v, n, &pos, &el, &el_len))
        if (el_len >= 3 && ieq(el, 3, "h2c") && (el_len == 3 || el[3] == '/'))
            return true;
    return false;
}

static bool host_valid(const uint8_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(ctype[v[i]] & C_HOST))
            return false;
    return true;
}

/* One pass over the headers: what each framing and connection header says,
 * Host's index, and the first malformed or conflicting value. */
static int facts_gather(const uint8_t *b, struct http_head *h, bool request, struct facts *f,
                        const char **why)
{
    *f = (struct facts){.content_length = -1, .cl_plain = true};
    h->host = -1;
    for (unsigned i = 0; i < h->nheaders; i++) {
        const struct http_header *hd = &h->headers[i];
        const uint8_t *v = b + hd->value.off;
        size_t n = hd->value.len;
        int rc = 0;
        switch (hd->field) {
        case HTTP_FIELD_CONTENT_LENGTH:
            f->ncl++;
            f->cl_plain = f->cl_plain && f->ncl == 1 && digits_only(v, n);
            rc = content_length_parse(v, n, f, why);
            break;
        case HTTP_FIELD_TRANSFER_ENCODING:
            f->te = true;
            rc = transfer_encoding_parse(v, n, request, f, why);
            break;
        case HTTP_FIELD_HOST:
            if (!request)
                break;
            if (f->nhost++ == 0)
                h->host = (int)i;
            if (!host_valid(v, n))
                rc = fail(why, 400, "invalid Host");
            break;
        case HTTP_FIELD_CONNECTION:
            connection_parse(v, n, f);
            break;
        case HTTP_FIELD_UPGRADE:
            f->upgrade_header = f->upgrade_header || n > 0;
            f->upgrade_h2c = f->upgrade_h2c || names_h2c(v, n);
            break;
        case HTTP_FIELD_EXPECT:
            f->expect_continue = f->expect_continue || ieq(v, n, "100-continue");
            break;
        default:
            break;
        }
        if (rc)
            return rc;
    }
    if (f->te && h->version_minor == 0)
        return fail(why, 400, "Transfer-Encoding in HTTP/1.0");
    if (f->te && f->ncl)
        return fail(why, 400, "both Content-Length and Transfer-Encoding");
    if (f->nchunked > 1)
        return fail(why, 400, "chunked named more than once");
    return 0;
}

/* Headers Connection may not make lb drop: framing and routing (dropping them
 * would let a client make lb and the backend frame the message differently)
 * and the forwarding headers lb writes itself (dropping them would erase what
 * a proxy in front of lb added). */
static bool listing_protected(uint8_t field)
{
    switch (field) {
    case HTTP_FIELD_HOST:
    case HTTP_FIELD_CONTENT_LENGTH:
    case HTTP_FIELD_TRANSFER_ENCODING:
    case HTTP_FIELD_X_FORWARDED_FOR:
    case HTTP_FIELD_X_FORWARDED_PORT:
    case HTTP_FIELD_X_FORWARDED_PROTO:
    case HTTP_FIELD_X_REAL_IP:
    case HTTP_FIELD_FORWARDED:
        return true;
    default:
        return false;
    }
}

#define NAME_BUCKETS 128

static unsigned name_bucket(const uint8_t *p, size_t n)
{
    uint32_t x = 2166136261u; /* FNV-1a over the lowercase name */
    for (size_t i = 0; i < n; i++)
        x = (x ^ ascii_lower(p[i])) * 16777619u;
    return x % NAME_BUCKETS;
}

static bool names_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

/* Marks the headers Connection names. A small hash of the header names keeps
 * this linear however many options a hostile Connection lists. */
static void listed_mark(const uint8_t *b, struct http_head *h)
{
    uint8_t first[NAME_BUCKETS] = {0}; /* 1 + index of a bucket's first header */
    uint8_t next[HTTP_MAX_HEADERS];
    for (unsigned i = 0; i < h->nheaders; i++) {
        const struct http_header *hd = &h->headers[i];
        if (listing_protected(hd->field))
            continue;
        unsigned k = name_bucket(b + hd->name.off, hd->name.len);
        next[i] = first[k];
        first[k] = (uint8_t)(i + 1);
    }
    for (unsigned c = 0; c < h->nheaders; c++) {
        const struct http_header *conn = &h->headers[c];
        if (conn->field != HTTP_FIELD_CONNECTION)
            continue;
        const uint8_t *el;
        size_t el_len, pos = 0;
        while (list_next(b + conn->value.off, conn->value.len, &pos, &el, &el_len)) {
            for (unsigned j = first[name_bucket(el, el_len)]; j; j = next[j - 1]) {
                struct http_header *hd = &h->headers[j - 1];
                if (hd->name.len == el_len && names_eq(b + hd->name.off, el, el_len))
                    hd->listed = true;
            }
        }
    }
}

/* ---- llhttp, the second opinion ---- */

static int ll_on_header_value_complete(llhttp_t *p)
{
    (*(unsigned *)p->data)++;
    return 0;
}

/* The head is all llhttp is given: stop there, before any body logic. */
static int ll_on_headers_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

static const llhttp_settings_t ll_settings = {
    .on_header_value_complete = ll_on_header_value_complete,
    .on_headers_complete = ll_on_headers_complete,
};

/* The end of header hd's line in the head buf[0, head_len), past its LF. */
static size_t line_end(const char *buf, size_t head_len, const struct http_header *hd)
{
    size_t from = hd->value.off + hd->value.len;
    const char *lf = memchr(buf + from, '\n', head_len - from);
    return (size_t)(lf - buf) + 1;
}

/* Feeds llhttp buf[from, to); false when it stopped (error or pause). */
static bool ll_feed(llhttp_t *p, const char *buf, size_t from, size_t to)
{
    return from == to || llhttp_execute(p, buf + from, to - from) == HPE_OK;
}

/* llhttp parses buf[from, h->head_len) and must end where lb's scan did, on
 * the same version, method or status, number of headers and chunked. It
 * refuses repeated or listed Content-Length values that lb accepts as one, so
 * those lines are left out and one canonical line takes the first's place. */
static int ll_agree(const char *buf, size_t from, const struct http_head *h, bool request,
                    const struct facts *f, const char **why)
{
    llhttp_t p;
    unsigned nvalues = 0, expect = h->nheaders;
    llhttp_init(&p, request ? HTTP_REQUEST : HTTP_RESPONSE, &ll_settings);
    p.data = &nvalues;

    size_t pos = from;
    if (f->ncl && !f->cl_plain) {
        char line[48];
        int n =
            snprintf(line, sizeof(line), "Content-Length: %lld\r\n", (long long)f->content_length);
        bool first = true;
        for (unsigned i = 0; i < h->nheaders; i++) {
            const struct http_header *hd = &h->headers[i];
            if (hd->field != HTTP_FIELD_CONTENT_LENGTH)
                continue;
            if (!ll_feed(&p, buf, pos, hd->name.off) || (first && !ll_feed(&p, line, 0, (size_t)n)))
                goto stopped;
            first = false;
            pos = line_end(buf, h->head_len, hd);
        }
        expect = h->nheaders - f->ncl + 1;
    }
    llhttp_errno_t err = llhttp_execute(&p, buf + pos, h->head_len - pos);
    if (err == HPE_OK)
        return fail(why, 400, "llhttp: the head does not end there");
    if (err != HPE_PAUSED)
        goto stopped;
    if (llhttp_get_error_pos(&p) != buf + h->head_len)
        return fail(why, 400, "llhttp: the head ends early");
    if (llhttp_get_http_major(&p) != 1 || llhttp_get_http_minor(&p) != h->version_minor ||
        nvalues != expect || !!(p.flags & F_CHUNKED) != f->final_chunked)
        return fail(why, 400, "llhttp reads the head differently");
    if (request) {
        const char *m = llhttp_method_name((llhttp_method_t)llhttp_get_method(&p));
        if (strlen(m) != h->method.len || memcmp(m, buf + h->method.off, h->method.len) != 0)
            return fail(why, 400, "llhttp reads the method differently");
    } else if (llhttp_get_status_code(&p) != h->status) {
        return fail(why, 400, "llhttp reads the status differently");
    }
    return 0;

stopped:
    if (llhttp_get_errno(&p) == HPE_INVALID_METHOD)
        return fail(why, 501, "unknown method");
    if (llhttp_get_errno(&p) == HPE_PAUSED)
        return fail(why, 400, "llhttp: the head ends early");
    const char *reason = llhttp_get_error_reason(&p);
    return fail(why, 400, reason ? reason : "refused by llhttp");
}

/* ---- parse ---- */

static void head_init(struct http_head *h, size_t head_len)
{
    h->method = h->target = h->reason = (struct http_span){0, 0};
    h->method_head = false;
    h->status = 0;
    h->nheaders = 0;
    h->head_len = (uint32_t)head_len;
    h->chunked = h->body_until_close = h->keep_alive = false;
    h->upgrade = h->expect_continue = false;
}

static bool span_is(const uint8_t *b, struct http_span sp, const char *s)
{
    size_t n = strlen(s);
    return sp.len == n && memcmp(b + sp.off, s, n) == 0;
}

/* uri-host ":" port (RFC 9112 3.2.3): host bytes, then a colon and digits
 * to the end. */
static bool authority_form(const uint8_t *t, size_t n)
{
    size_t colon = n;
    while (colon > 0 && (ctype[t[colon - 1]] & C_DIGIT))
        colon--;
    if (colon == n || colon < 2 || t[colon - 1] != ':')
        return false;
    for (size_t i = 0; i < colon - 1; i++)
        if (!(ctype[t[i]] & C_HOST))
            return false;
    return true;
}

/* The method and the form of the target together (RFC 9112 3.2): lb is a
 * reverse proxy, so CONNECT (a tunnel to anywhere) is a 501; the
 * asterisk-form goes only with OPTIONS, the authority-form only with
 * CONNECT. */
static int target_check(const uint8_t *b, const struct http_head *h, const char **why)
{
    const uint8_t *t = b + h->target.off;
    if (span_is(b, h->method, "CONNECT"))
        return fail(why, 501, "CONNECT is not supported");
    if (span_is(b, h->target, "*"))
        return span_is(b, h->method, "OPTIONS") ? 0
                                                : fail(why, 400, "asterisk-form without OPTIONS");
    if (t[0] != '/' && authority_form(t, h->target.len))
        return fail(why, 400, "authority-form without CONNECT");
    return 0;
}

/* The length of the scheme ALPHA *(ALPHA / DIGIT / "+" / "-" / ".") before a
 * ':' at the start of t, 0 when t does not start with one. */
static size_t scheme_len(const uint8_t *t, size_t n)
{
    size_t i = 0;
    if (n == 0 || !((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z'))
        return 0;
    while (i < n && ((ctype[t[i]] & C_DIGIT) || ((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') ||
                     t[i] == '+' || t[i] == '-' || t[i] == '.'))
        i++;
    return i < n && t[i] == ':' ? i : 0;
}

/* An absolute-form target (RFC 9112 3.2.2) must name the same server as
 * Host, which the backend will route by: scheme http or https, no userinfo,
 * an authority equal to Host ignoring case. Called with h->host set. */
static int absolute_check(const uint8_t *b, const struct http_head *h, const char **why)
{
    const uint8_t *t = b + h->target.off;
    size_t n = h->target.len, k = scheme_len(t, n);
    if (k == 0 || t[0] == '/' || span_is(b, h->target, "*"))
        return 0; /* not absolute-form: llhttp judges the rest */
    if (!(ieq(t, k, "http") || ieq(t, k, "https")))
        return fail(why, 400, "request target scheme is not http or https");
    if (n - k < 3 || t[k + 1] != '/' || t[k + 2] != '/')
        return fail(why, 400, "request target without an authority");
    size_t from = k + 3, to = from;
    while (to < n && t[to] != '/' && t[to] != '?' && t[to] != '#')
        to++;
    if (memchr(t + from, '@', to - from))
        return fail(why, 400, "userinfo in the request target");
    if (to == from)
        return fail(why, 400, "request target without an authority");
    if (h->host < 0)
        return fail(why, 400, "absolute-form without Host");
    const struct http_header *host = &h->headers[h->host];
    if (host->value.len != to - from || !names_eq(t + from, b + host->value.off, to - from))
        return fail(why, 400, "request target and Host differ");
    return 0;
}

/* Marks the request headers whose name holds '_': CGI, PHP and WSGI backends
 * read '_' as '-', so "Content_Length" or "X_Forwarded_For" would stand
 * beside the field lb checked or wrote. They are not sent on (nginx's
 * underscores_in_headers off). */
static void underscores_mark(const uint8_t *b, struct http_head *h)
{
    for (unsigned i = 0; i < h->nheaders; i++) {
        struct http_header *hd = &h->headers[i];
        hd->underscore = memchr(b + hd->name.off, '_', hd->name.len) != NULL;
    }
}

int http_request_parse(const char *buf, size_t head_len, struct http_head *h, const char **why)
{
    const uint8_t *b = (const uint8_t *)buf;
    struct facts f;
    if (head_len > UINT32_MAX)
        return fail(why, 431, "head too large");
    head_init(h, head_len);
    size_t start = empty_lines(b, head_len), pos = start;
    int rc = scan_request_line(b, &pos, head_len, h, why);
    if (!rc)
        rc = scan_headers(b, &pos, head_len, h, why);
    if (!rc && pos != head_len)
        rc = fail(why, 400, "bytes after the head");
    if (!rc)
        rc = target_check(b, h, why);
    if (!rc)
        rc = facts_gather(b, h, true, &f, why);
    if (rc)
        return rc;
    if (f.nhost > 1)
        return fail(why, 400, "duplicate Host");
    if (f.nhost == 0 && h->version_minor == 1)
        return fail(why, 400, "missing Host");
    if (f.te && !f.final_chunked)
        return fail(why, 400, "final transfer coding is not chunked");
    rc = absolute_check(b, h, why);
    if (rc)
        return rc;

    h->content_length = f.content_length;
    h->chunked = f.te;
    h->keep_alive = !f.conn_close && (h->version_minor == 1 || f.conn_keep_alive);
    /* h2c is not an upgrade lb makes: the request goes on as a plain one,
     * without Upgrade and HTTP2-Settings. */
    h->upgrade = h->version_minor == 1 && f.conn_upgrade && f.upgrade_header && !f.upgrade_h2c;
    h->expect_continue = h->version_minor == 1 && f.expect_continue;
    if (f.conn_names)
        listed_mark(b, h);
    underscores_mark(b, h);
    return ll_agree(buf, start, h, true, &f, why);
}

int http_response_parse(const char *buf, size_t head_len, const struct http_head *req,
                        struct http_head *h, const char **why)
{
    const uint8_t *b = (const uint8_t *)buf;
    struct facts f;
    if (head_len > UINT32_MAX)
        return fail(why, 431, "head too large");
    head_init(h, head_len);
    size_t pos = 0;
    int rc = scan_status_line(b, &pos, head_len, h, why);
    if (!rc)
        rc = scan_headers(b, &pos, head_len, h, why);
    if (!rc && pos != head_len)
        rc = fail(why, 400, "bytes after the head");
    if (!rc)
        rc = facts_gather(b, h, false, &f, why);
    if (rc)
        return rc;
    if (h->status == 101 && !(req->upgrade && h->version_minor == 1 && f.upgrade_header))
        return fail(why, 502, "101 without an upgrade");

    /* RFC 9112 6.3, in its order. */
    h->content_length = -1;
    if (req->method_head || h->status < 200 || h->status == 204 || h->status == 304)
        h->content_length = 0;
    else if (f.te && f.final_chunked)
        h->chunked = true;
    else if (f.te)
        h->body_until_close = true; /* a final coding other than chunked */
    else if (f.ncl)
        h->content_length = f.content_length;
    else
        h->body_until_close = true;
    h->upgrade = h->status == 101;
    h->keep_alive = !f.conn_close && (h->version_minor == 1 || f.conn_keep_alive) &&
                    !h->body_until_close && !h->upgrade;
    if (f.conn_names)
        listed_mark(b, h);
    return ll_agree(buf, 0, h, false, &f, why);
}

/* ---- write ---- */

/* Writes into out[0, cap) while it fits and counts regardless, so that one
 * function gives both the size and the bytes. */
struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const void *s, size_t n)
{
    if (n && o->len <= o->cap && n <= o->cap - o->len)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_span(struct out *o, const char *buf, struct http_span sp)
{
    put(o, buf + sp.off, sp.len);
}

static void put_uint(struct out *o, unsigned v)
{
    char d[12];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, d + i, sizeof(d) - i);
}

static size_t out_result(const struct out *o)
{
    return o->len <= o->cap ? o->len : 0;
}

/* The client's address as text: IPv4 (an IPv4-mapped IPv6 address too),
 * IPv6 without brackets, or "unknown". */
struct addr_text {
    char s[INET6_ADDRSTRLEN];
    bool v6;
};

/* Dotted quad, by hand: glibc's inet_ntop() formats IPv4 through sprintf(),
 * which was a quarter of the cost of writing a request head. */
static void ipv4_text(const uint8_t a[4], char *out)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

static void addr_text(const struct sockaddr *sa, struct addr_text *t)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    t->v6 = false;
    if (sa && sa->sa_family == AF_INET)
        ipv4_text((const uint8_t *)&sin->sin_addr, t->s);
    else if (sa && sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
        ipv4_text(&sin6->sin6_addr.s6_addr[12], t->s);
    else if (sa && sa->sa_family == AF_INET6 &&
             inet_ntop(AF_INET6, &sin6->sin6_addr, t->s, sizeof(t->s)))
        t->v6 = true;
    else
        strcpy(t->s, "unknown");
}

/* Not sent on in either direction: hop-by-hop (RFC 9110 7.6.1). */
static bool hop_by_hop(const struct http_head *h, const struct http_header *hd)
{
    switch (hd->field) {
    case HTTP_FIELD_CONNECTION:
    case HTTP_FIELD_KEEP_ALIVE:
    case HTTP_FIELD_PROXY_CONNECTION:
    case HTTP_FIELD_TE:
    case HTTP_FIELD_TRAILER:
    case HTTP_FIELD_HTTP2_SETTINGS:
        return true;
    case HTTP_FIELD_UPGRADE:
        return !h->upgrade;
    default:
        return hd->listed;
    }
}

/* Not copied as it came: written by lb after the client's headers, or (a
 * client's X-Real-IP without real_ip) dropped, since a backend cannot tell
 * it from one lb wrote. Forwarded without fw->forwarded goes on as it came:
 * RFC 7239 lets each proxy choose whether to add to it. */
static bool forwarding(const struct http_header *hd, const struct http_forward *fw)
{
    switch (hd->field) {
    case HTTP_FIELD_X_FORWARDED_FOR:
    case HTTP_FIELD_X_FORWARDED_PROTO:
    case HTTP_FIELD_X_FORWARDED_PORT:
    case HTTP_FIELD_X_REAL_IP:
        return true;
    case HTTP_FIELD_FORWARDED:
        return fw->forwarded;
    default:
        return false;
    }
}

static void put_header(struct out *o, const char *buf, const struct http_header *hd)
{
    put_span(o, buf, hd->name);
    put(o, ": ", 2);
    put_span(o, buf, hd->value);
    put(o, "\r\n", 2);
}

static void put_lower(struct out *o, const uint8_t *p, size_t n)
{
    char low[64];
    while (n) {
        size_t k = n < sizeof(low) ? n : sizeof(low);
        for (size_t i = 0; i < k; i++)
            low[i] = (char)ascii_lower(p[i]);
        put(o, low, k);
        p += k;
        n -= k;
    }
}

/* The codings of one checked Transfer-Encoding value, canonical: each coding
 * and parameter name lower-cased, parameters as ";name=value", no whitespace,
 * empty elements left out, each coding after ", " but the very first
 * (*first, cleared once one is written). */
static void put_codings(struct out *o, const uint8_t *v, size_t n, bool *first)
{
    size_t i = 0, from;
    for (;;) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        if (i == n)
            return;
        if (!*first)
            put(o, ", ", 2);
        *first = false;
        for (from = i; i < n && (ctype[v[i]] & C_TCHAR); i++)
            ;
        put_lower(o, v + from, i - from);
        while (i < n && v[i] != ',') {
            if (v[i] == ';' || v[i] == '=') {
                put(o, v + i, 1);
                i++;
                continue;
            }
            for (from = i; i < n && (ctype[v[i]] & C_TCHAR); i++)
                ;
            if (i > from && i < n && v[i] == '=')
                put_lower(o, v + from, i - from);
            else if (i > from)
                put(o, v + from, i - from);
            else
                i++; /* OWS */
        }
    }
}

/* Every Transfer-Encoding of h as one canonical line. */
static void put_transfer_encoding(struct out *o, const char *buf, const struct http_head *h)
{
    bool first = true;
    put_str(o, "Transfer-Encoding: ");
    for (unsigned i = 0; i < h->nheaders; i++) {
        const struct http_header *hd = &h->headers[i];
        if (hd->field == HTTP_FIELD_TRANSFER_ENCODING)
            put_codings(o, (const uint8_t *)buf + hd->value.off, hd->value.len, &first);
    }
    put(o, "\r\n", 2);
}

/* Content-Length once, as its first element without leading zeros (all its
 * elements are equal). */
static void put_content_length(struct out *o, const char *buf, const struct http_header *hd)
{
    const char *v = buf + hd->value.off;
    uint32_t n = 0;
    while (v[n] == '0' && ctype[(uint8_t)v[n + 1]] & C_DIGIT)
        n++;
    v += n;
    for (n = 0; ctype[(uint8_t)v[n]] & C_DIGIT; n++)
        ;
    put_span(o, buf, hd->name);
    put(o, ": ", 2);
    put(o, v, n);
    put(o, "\r\n", 2);
}

/* Each header that goes on, as it came, but the framing ones: Content-Length
 * once (put_content_length) and Transfer-Encoding as one canonical line
 * (put_transfer_encoding), each where its first line was, so that the next
 * hop cannot read "5, 5", " , CHUNKED" or a second line its own way. A 1xx
 * or 204 response gets neither (RFC 9110 8.6, RFC 9112 6.1: it has no body
 * and may not carry them). */
static void put_headers(struct out *o, const char *buf, const struct http_head *h,
                        const struct http_forward *fw)
{
    bool bodiless = !fw && (h->status < 200 || h->status == 204);
    bool length_sent = bodiless, te_sent = bodiless;
    for (unsigned i = 0; i < h->nheaders; i++) {
        const struct http_header *hd = &h->headers[i];
        if (hd->underscore || hop_by_hop(h, hd) || (fw && forwarding(hd, fw)))
            continue;
        if (hd->field == HTTP_FIELD_CONTENT_LENGTH) {
            if (!length_sent)
                put_content_length(o, buf, hd);
            length_sent = true;
        } else if (hd->field == HTTP_FIELD_TRANSFER_ENCODING) {
            if (!te_sent)
                put_transfer_encoding(o, buf, h);
            te_sent = true;
        } else {
            put_header(o, buf, hd);
        }
    }
}

/* The non-empty values of every header of this field, joined with ", ", and
 * ", " after them when there was any. */
static void put_values(struct out *o, const char *buf, const struct http_head *h, uint8_t field)
{
    for (unsigned i = 0; i < h->nheaders; i++) {
        const struct http_header *hd = &h->headers[i];
        if (hd->field == field && hd->value.len) {
            put_span(o, buf, hd->value);
            put(o, ", ", 2);
        }
    }
}

/* A quoted-string at v[*i] (RFC 9110 5.6.4): moves *i past it; false when
 * it is not one (no closing quote, a control byte, a lone '\'). */
static bool quoted_skip(const uint8_t *v, size_t n, size_t *i)
{
    size_t k = *i + 1;
    while (k < n && v[k] != '"') {
        if (v[k] == '\\')
            k++;
        if (k == n || !(ctype[v[k]] & C_FIELD))
            return false;
        k++;
    }
    if (k == n)
        return false;
    *i = k + 1;
    return true;
}

/* A Forwarded value (RFC 7239 4): elements separated by ",", each pairs
 * token "=" (token / quoted-string) separated by ";"; whitespace only
 * around the commas. Empty elements or pairs are refused. */
static bool forwarded_valid(const uint8_t *v, size_t n)
{
    size_t i = 0;
    for (;;) {
        while (i < n && is_ows(v[i]))
            i++;
        for (;;) { /* one pair */
            size_t from = i;
            while (i < n && (ctype[v[i]] & C_TCHAR))
                i++;
            if (i == from || i == n || v[i] != '=')
                return false;
            from = ++i;
            if (i < n && v[i] == '"') {
                if (!quoted_skip(v, n, &i))
                    return false;
            } else {
                while (i < n && (ctype[v[i]] & C_TCHAR))
                    i++;
                if (i == from)
                    return false;
            }
            if (i == n || v[i] != ';')
                break;
            i++;
        }
        while (i < n && is_ows(v[i]))
            i++;
        if (i == n)
            return true;
        if (v[i] != ',')
            return false;
        i++;
    }
}

/* Every non-empty Forwarded value of h is well formed, so lb's element can
 * follow them without being read as part of one. */
static bool forwarded_all_valid(const char *buf, const struct http_head *h)
{
    for (unsigned i = 0; i < h->nheaders; i++) {
        const struct http_header *hd = &h->headers[i];
        if (hd->field == HTTP_FIELD_FORWARDED && hd->value.len &&
            !forwarded_valid((const uint8_t *)buf + hd->value.off, hd->value.len))
            return false;
    }
    return true;
}

/* host=<Host> for a Forwarded element: as a token when it is one, else a
 * quoted-string (a Host value holds no '"' or '\', so quoting is wrapping). */
static void put_forwarded_host(struct out *o, const char *buf, const struct http_header *host)
{
    bool token = host->value.len > 0;
    for (uint32_t i = 0; i < host->value.len; i++)
        token = token && (ctype[(uint8_t)buf[host->value.off + i]] & C_TCHAR);
    put_str(o, ";host=");
    if (!token)
        put(o, "\"", 1);
    put_span(o, buf, host->value);
    if (!token)
        put(o, "\"", 1);
}

static size_t request_emit(const char *buf, const struct http_head *h,
                           const struct http_forward *fw, struct out *o)
{
    struct addr_text client;
    addr_text(fw->client, &client);

    put_span(o, buf, h->method);
    put(o, " ", 1);
    put_span(o, buf, h->target);
    put_str(o, h->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    put_headers(o, buf, h, fw);
    if (fw->connection) {
        put_str(o, "Connection: ");
        put_str(o, fw->connection);
        put(o, "\r\n", 2);
    }
    put_str(o, "X-Forwarded-For: ");
    put_values(o, buf, h, HTTP_FIELD_X_FORWARDED_FOR);
    put_str(o, client.s);
    put_str(o, "\r\nX-Forwarded-Proto: ");
    put_str(o, fw->proto);
    put_str(o, "\r\nX-Forwarded-Port: ");
    put_uint(o, fw->port);
    put(o, "\r\n", 2);
    if (fw->real_ip) {
        put_str(o, "X-Real-IP: ");
        put_str(o, client.s);
        put(o, "\r\n", 2);
    }
    if (fw->forwarded) {
        put_str(o, "Forwarded: ");
        if (forwarded_all_valid(buf, h))
            put_values(o, buf, h, HTTP_FIELD_FORWARDED);
        put_str(o, client.v6 ? "for=\"[" : "for=");
        put_str(o, client.s);
        put_str(o, client.v6 ? "]\";proto=" : ";proto=");
        put_str(o, fw->proto);
        if (h->host >= 0)
            put_forwarded_host(o, buf, &h->headers[h->host]);
        put(o, "\r\n", 2);
    }
    put(o, "\r\n", 2);
    return out_result(o);
}

size_t http_request_write(const char *buf, const struct http_head *h, const struct http_forward *fw,
                          char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    return request_emit(buf, h, fw, &o);
}

size_t http_request_size(const char *buf, const struct http_head *h, const struct http_forward *fw)
{
    struct out o = {NULL, 0, 0};
    request_emit(buf, h, fw, &o);
    return o.len;
}

static size_t response_emit(const char *buf, const struct http_head *h, const char *connection,
                            struct out *o)
{
    char status[4] = {(char)('0' + h->status / 100), (char)('0' + h->status / 10 % 10),
                      (char)('0' + h->status % 10), ' '};
    put_str(o, h->version_minor ? "HTTP/1.1 " : "HTTP/1.0 ");
    put(o, status, 4);
    put_span(o, buf, h->reason);
    put(o, "\r\n", 2);
    put_headers(o, buf, h, NULL);
    if (connection) {
        put_str(o, "Connection: ");
        put_str(o, connection);
        put(o, "\r\n", 2);
    }
    put(o, "\r\n", 2);
    return out_result(o);
}

size_t http_response_write(const char *buf, const struct http_head *h, const char *connection,
                           char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    return response_emit(buf, h, connection, &o);
}

size_t http_response_size(const char *buf, const struct http_head *h, const char *connection)
{
    struct out o = {NULL, 0, 0};
    response_emit(buf, h, connection, &o);
    return o.len;
}
