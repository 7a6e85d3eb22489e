/* test_http_head: HTTP/1.x heads, asserted exactly: the parsed spans and
 * flags, where a head ends at every split point, each rejection with its
 * status and reason, the framing of responses, and the bytes written on
 * (hop-by-hop headers, forwarding headers, sizes). */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/proto/http_head.h"
#include "tests/test.h"

/* ck_assert for loops: only a failure talks to Check's parent. */
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #expr);                                          \
    } while (0)

/* A span of buf as a string (in one of a few rotating static buffers). */
static const char *sp(const char *buf, struct http_span s)
{
    static char bufs[4][512];
    static int next;
    char *out = bufs[next++ % 4];
    ck_assert_uint_lt(s.len, sizeof(bufs[0]));
    memcpy(out, buf + s.off, s.len);
    out[s.len] = '\0';
    return out;
}

/* Parses the request head at the start of s (its whole length must be the
 * head) and asserts success. */
static void req_ok(const char *s, struct http_head *h)
{
    const char *why = NULL;
    size_t len = strlen(s);
    ck_assert_uint_eq(http_head_end(s, len, NULL), len);
    int rc = http_request_parse(s, len, h, &why);
    ck_assert_msg(rc == 0, "parse failed: %d %s", rc, why ? why : "");
    ck_assert_uint_eq(h->head_len, len);
}

/* The request a response in these tests answers: REQ_GET (false), REQ_HEAD
 * (true) or REQ_UPGRADE (a GET that asks for a websocket upgrade). */
enum { REQ_GET, REQ_HEAD, REQ_UPGRADE };

static const struct http_head *req_of(int kind)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    };
    static struct http_head reqs[3];
    const char *why = NULL;
    ck_assert_int_eq(http_request_parse(heads[kind], strlen(heads[kind]), &reqs[kind], &why), 0);
    return &reqs[kind];
}

static void resp_ok(const char *s, int req, struct http_head *h)
{
    const char *why = NULL;
    size_t len = strlen(s);
    ck_assert_uint_eq(http_head_end(s, len, NULL), len);
    int rc = http_response_parse(s, len, req_of(req), h, &why);
    ck_assert_msg(rc == 0, "parse failed: %d %s", rc, why ? why : "");
}

/* ---- parse ---- */

START_TEST(test_request_spans)
{
    static const char s[] = "GET /index.html?q=1 HTTP/1.1\r\n"
                            "Host: example.com\r\n"
                            "User-Agent: t/1\r\n"
                            "Accept: \t */* \t\r\n"
                            "X-Empty:\r\n"
                            "X-Blank:  \t \r\n"
                            "X-Tab: a\tb\r\n"
                            "X-Utf8: caf\xc3\xa9\r\n"
                            "\r\n";
    struct http_head h;
    req_ok(s, &h);
    ck_assert_str_eq(sp(s, h.method), "GET");
    ck_assert_uint_eq(h.method.off, 0);
    ck_assert_str_eq(sp(s, h.target), "/index.html?q=1");
    ck_assert_uint_eq(h.target.off, 4);
    ck_assert(!h.method_head);
    ck_assert_int_eq(h.version_minor, 1);
    ck_assert_uint_eq(h.nheaders, 7);
    const char *names[] = {"Host", "User-Agent", "Accept", "X-Empty", "X-Blank", "X-Tab", "X-Utf8"};
    const char *values[] = {"example.com", "t/1", "*/*", "", "", "a\tb", "caf\xc3\xa9"};
    for (unsigned i = 0; i < 7; i++) {
        ck_assert_str_eq(sp(s, h.headers[i].name), names[i]);
        ck_assert_str_eq(sp(s, h.headers[i].value), values[i]);
        ck_assert(!h.headers[i].listed);
    }
    ck_assert_uint_eq(h.headers[0].name.off, 30);
    ck_assert_uint_eq(h.headers[0].value.off, 36);
    ck_assert_int_eq(h.headers[0].field, HTTP_FIELD_HOST);
    ck_assert_int_eq(h.headers[1].field, HTTP_FIELD_OTHER);
    ck_assert_int_eq(h.host, 0);
    ck_assert_int_eq(h.content_length, -1);
    ck_assert(!h.chunked && !h.body_until_close && !h.upgrade && !h.expect_continue);
    ck_assert(h.keep_alive);
}
END_TEST

START_TEST(test_request_fields_any_case)
{
    static const char s[] = "POST / HTTP/1.1\r\n"
                            "x-forwarded-FOR: 1.2.3.4\r\n"
                            "CONTENT-LENGTH: 3\r\n"
                            "hOsT: a\r\n"
                            "te: trailers\r\n"
                            "Transfer-Encodings: x\r\n"
                            "\r\n";
    struct http_head h;
    req_ok(s, &h);
    ck_assert_int_eq(h.headers[0].field, HTTP_FIELD_X_FORWARDED_FOR);
    ck_assert_int_eq(h.headers[1].field, HTTP_FIELD_CONTENT_LENGTH);
    ck_assert_int_eq(h.headers[2].field, HTTP_FIELD_HOST);
    ck_assert_int_eq(h.headers[3].field, HTTP_FIELD_TE);
    ck_assert_int_eq(h.headers[4].field, HTTP_FIELD_OTHER);
    ck_assert_int_eq(h.host, 2);
    ck_assert_int_eq(h.content_length, 3);
}
END_TEST

/* Every name lb acts on, in three cases, and near misses; in a response,
 * where "1" is a valid value for each. */
START_TEST(test_field_names)
{
    static const struct {
        const char *name;
        int field;
    } cases[] = {
        {"Connection", HTTP_FIELD_CONNECTION},
        {"Content-Length", HTTP_FIELD_CONTENT_LENGTH},
        {"Expect", HTTP_FIELD_EXPECT},
        {"Forwarded", HTTP_FIELD_FORWARDED},
        {"Host", HTTP_FIELD_HOST},
        {"HTTP2-Settings", HTTP_FIELD_HTTP2_SETTINGS},
        {"Keep-Alive", HTTP_FIELD_KEEP_ALIVE},
        {"Proxy-Connection", HTTP_FIELD_PROXY_CONNECTION},
        {"TE", HTTP_FIELD_TE},
        {"Trailer", HTTP_FIELD_TRAILER},
        {"Transfer-Encoding", HTTP_FIELD_TRANSFER_ENCODING},
        {"Upgrade", HTTP_FIELD_UPGRADE},
        {"X-Forwarded-For", HTTP_FIELD_X_FORWARDED_FOR},
        {"X-Forwarded-Port", HTTP_FIELD_X_FORWARDED_PORT},
        {"X-Forwarded-Proto", HTTP_FIELD_X_FORWARDED_PROTO},
        {"X-Real-IP", HTTP_FIELD_X_REAL_IP},
        {"Connectio", HTTP_FIELD_OTHER},
        {"Connections", HTTP_FIELD_OTHER},
        {"T", HTTP_FIELD_OTHER},
        {"TEE", HTTP_FIELD_OTHER},
        {"X-Forwarded-Fo", HTTP_FIELD_OTHER},
        {"X-Forwarded-Host", HTTP_FIELD_OTHER},
        {"Cookie", HTTP_FIELD_OTHER},
        {"Hosts", HTTP_FIELD_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int form = 0; form < 3; form++) {
            char name[32], s[128];
            size_t n = strlen(cases[i].name);
            for (size_t k = 0; k <= n; k++) {
                char c = cases[i].name[k];
                name[k] = form == 0 ? c : form == 1 ? (char)tolower(c) : (char)toupper(c);
            }
            snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\n%s: 1\r\n\r\n", name);
            struct http_head h;
            resp_ok(s, false, &h);
            ck_assert_msg(h.headers[0].field == cases[i].field, "%s: %d", name, h.headers[0].field);
        }
    }
}
END_TEST

START_TEST(test_request_content_length)
{
    static const struct {
        const char *head;
        int64_t length;
    } cases[] = {
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", 7},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX: y\r\nContent-Length: 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5 , 005\r\nContent-Length: 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", INT64_MAX},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_head h;
        req_ok(cases[i].head, &h);
        ck_assert_msg(h.content_length == cases[i].length, "case %zu: %lld", i,
                      (long long)h.content_length);
        ck_assert(!h.chunked);
    }
}
END_TEST

START_TEST(test_request_chunked)
{
    static const char *const heads[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip;q=1 , chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        struct http_head h;
        req_ok(heads[i], &h);
        ck_assert_msg(h.chunked, "case %zu", i);
        ck_assert_int_eq(h.content_length, -1);
    }
}
END_TEST

START_TEST(test_request_keep_alive)
{
    static const struct {
        const char *head;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-closed\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_head h;
        req_ok(cases[i].head, &h);
        ck_assert_msg(h.keep_alive == cases[i].keep_alive, "case %zu", i);
    }
}
END_TEST

START_TEST(test_request_upgrade_expect)
{
    static const struct {
        const char *head;
        bool upgrade, expect;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: "
         "websocket\r\n\r\n",
         true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", true,
         false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade:\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: \t\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "
         "h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
         false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket, H2C\r\n\r\n",
         false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false, false},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", false,
         true},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n", false, true},
        {"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-ish\r\n\r\n", false, false},
        {"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_head h;
        req_ok(cases[i].head, &h);
        ck_assert_msg(h.upgrade == cases[i].upgrade, "case %zu: upgrade", i);
        ck_assert_msg(h.expect_continue == cases[i].expect, "case %zu: expect", i);
    }
}
END_TEST

START_TEST(test_request_forms)
{
    struct http_head h;
    req_ok("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", &h);
    ck_assert(h.method_head);
    req_ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &h);
    ck_assert_str_eq(sp("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", h.target), "*");
    ck_assert(!h.method_head);
    static const char abs[] = "GET http://b.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n";
    req_ok(abs, &h);
    ck_assert_str_eq(sp(abs, h.target), "http://b.example/p");
    req_ok("GET HTTPS://B.Example:8443?q=1 HTTP/1.1\r\nHost: b.example:8443\r\n\r\n", &h);
    req_ok("GET hTTp://[2001:DB8::1] HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", &h);
    static const char m[] = "OPTIONS * HTTP/1.1\r\nHost: [2001:db8::1]:1900\r\n\r\n";
    req_ok(m, &h);
    ck_assert_str_eq(sp(m, h.method), "OPTIONS");
    ck_assert_str_eq(sp(m, h.headers[h.host].value), "[2001:db8::1]:1900");
    static const char v10[] = "GET / HTTP/1.0\r\n\r\n";
    req_ok(v10, &h);
    ck_assert_int_eq(h.version_minor, 0);
    ck_assert_int_eq(h.host, -1);
    ck_assert_uint_eq(h.nheaders, 0);
}
END_TEST

START_TEST(test_request_empty_lines)
{
    static const char s[] = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct http_head h;
    req_ok(s, &h);
    ck_assert_uint_eq(h.method.off, 8);
    ck_assert_str_eq(sp(s, h.method), "GET");
    ck_assert_uint_eq(h.head_len, sizeof(s) - 1);

    static const char five[] = "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *why = NULL;
    size_t end = http_head_end(five, sizeof(five) - 1, NULL);
    ck_assert_uint_eq(end, sizeof(five) - 1);
    ck_assert_int_eq(http_request_parse(five, end, &h, &why), 400);
    ck_assert_str_eq(why, "too many empty lines before the request line");
}
END_TEST

START_TEST(test_request_connection_listed)
{
    static const char s[] = "GET / HTTP/1.1\r\n"
                            "Host: a\r\n"
                            "Connection: x-a, , X-B ,host,Content-Length,x-forwarded-for\r\n"
                            "X-A: 1\r\n"
                            "x-b: 2\r\n"
                            "X-C: 3\r\n"
                            "Content-Length: 0\r\n"
                            "X-Forwarded-For: 1.1.1.1\r\n"
                            "\r\n";
    struct http_head h;
    req_ok(s, &h);
    bool listed[] = {false, false, true, true, false, false, false};
    ck_assert_uint_eq(h.nheaders, 7);
    for (unsigned i = 0; i < h.nheaders; i++)
        ck_assert_msg(h.headers[i].listed == listed[i], "header %u", i);
}
END_TEST

/* 99 headers X-0..X-98 and a Connection that lists the odd ones (and many
 * names that match nothing): exactly the odd ones are listed, whatever the
 * hash buckets they share. */
START_TEST(test_request_connection_lists_many)
{
    static char s[16384];
    int n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nConnection: keep-alive");
    for (int i = 1; i < 99; i += 2)
        n += snprintf(s + n, sizeof(s) - n, ", x-%d", i);
    for (int i = 0; i < 500; i++)
        n += snprintf(s + n, sizeof(s) - n, ",y%d", i);
    n += snprintf(s + n, sizeof(s) - n, "\r\n");
    for (int i = 0; i < 98; i++)
        n += snprintf(s + n, sizeof(s) - n, "X-%d: v\r\n", i);
    n += snprintf(s + n, sizeof(s) - n, "Host: a\r\n\r\n");
    ck_assert_int_lt(n, (int)sizeof(s));
    struct http_head h;
    req_ok(s, &h);
    ck_assert_uint_eq(h.nheaders, 100);
    for (int i = 0; i < 98; i++)
        CHECK(h.headers[1 + i].listed == (i % 2 == 1));
    ck_assert(!h.headers[0].listed && !h.headers[99].listed);
    ck_assert(h.keep_alive);
}
END_TEST

static size_t head_with_headers(char *s, size_t cap, unsigned n)
{
    size_t len = (size_t)snprintf(s, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 1; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "X-%u: %u\r\n", i, i);
    len += (size_t)snprintf(s + len, cap - len, "\r\n");
    ck_assert_uint_lt(len, cap);
    return len;
}

START_TEST(test_request_header_limit)
{
    static char s[8192];
    struct http_head h;
    const char *why = NULL;
    size_t len = head_with_headers(s, sizeof(s), HTTP_MAX_HEADERS);
    ck_assert_int_eq(http_request_parse(s, len, &h, &why), 0);
    ck_assert_uint_eq(h.nheaders, HTTP_MAX_HEADERS);
    ck_assert_str_eq(sp(s, h.headers[99].name), "X-99");

    len = head_with_headers(s, sizeof(s), HTTP_MAX_HEADERS + 1);
    ck_assert_int_eq(http_request_parse(s, len, &h, &why), 431);
    ck_assert_str_eq(why, "too many headers");
}
END_TEST

/* Every byte in a header name, a header value, the target and Host, against
 * the RFCs' grammar written out independently here. */
static bool rfc_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool rfc_field_byte(int c)
{
    return c == ' ' || c == '\t' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static bool rfc_host_byte(int c) /* RFC 3986 reg-name, IP-literal, port */
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c && strchr("-._~!$&'()*+,;=:[]%", c));
}

/* The reason lb's own scan gives for the byte c where it does not belong
 * (llhttp would refuse most of these too, and must not be what catches
 * them), else `otherwise`. */
static const char *stray_why(int c, const char *otherwise)
{
    if (c == '\n')
        return "bare LF";
    if (c == '\r')
        return "CR not followed by LF";
    if (c < 0x20 || c == 0x7f)
        return "control byte";
    return otherwise;
}

/* Parses fmt with its %c replaced by the byte c (NUL included); 0 and NULL
 * when it passes, else the status and the reason. */
static int parse_with_byte(const char *fmt, int c, const char **why)
{
    char s[128];
    int n = snprintf(s, sizeof(s), fmt, '\x01'); /* a placeholder no format holds */
    char *at = memchr(s, '\x01', (size_t)n);
    ck_assert_ptr_nonnull(at);
    ck_assert_ptr_null(memchr(at + 1, '\x01', (size_t)(s + n - at - 1)));
    *at = (char)c;
    struct http_head h;
    *why = NULL;
    int rc = http_request_parse(s, (size_t)n, &h, why);
    if (rc == 0)
        *why = NULL;
    return rc;
}

/* Asserts that fmt with the byte c passes (want NULL) or fails with 400 and
 * exactly the reason want. */
static void byte_case(const char *what, const char *fmt, int c, const char *want)
{
    const char *why;
    int rc = parse_with_byte(fmt, c, &why);
    if (want ? rc != 400 || !why || strcmp(why, want) != 0 : rc != 0)
        ck_abort_msg("%s byte 0x%02x: want %s, got %d %s", what, c, want ? want : "ok", rc,
                     why ? why : "");
}

START_TEST(test_request_every_byte)
{
    for (int c = 0; c < 256; c++) {
        if (c != ':')
            byte_case("name", "GET / HTTP/1.1\r\nHost: a\r\nX%cY: v\r\n\r\n", c,
                      rfc_tchar(c)            ? NULL
                      : c == ' ' || c == '\t' ? "whitespace in or after a header name"
                                              : stray_why(c, "header name is not a token"));
        const char *value_why = rfc_field_byte(c) ? NULL : stray_why(c, NULL);
        byte_case("value", "GET / HTTP/1.1\r\nHost: a\r\nX: a%cb\r\n\r\n", c, value_why);
        /* At each place of a value long enough to be read word by word. */
        for (int at = 0; at < 16; at++) {
            char fmt[80];
            snprintf(fmt, sizeof(fmt), "GET / HTTP/1.1\r\nHost: a\r\nX: <%.*s%%c%.*s>\r\n\r\n", at,
                     "0123456789abcdef", 15 - at, "0123456789abcdef");
            byte_case("long value", fmt, c, value_why);
        }
        byte_case("target", "GET /a%cb HTTP/1.1\r\nHost: a\r\n\r\n", c,
                  c >= 0x21 && c <= 0x7e ? NULL
                  : c == ' '             ? "malformed HTTP version"
                                         : stray_why(c, "non-ASCII byte in request target"));
        byte_case("Host", "GET / HTTP/1.1\r\nHost: a%cb\r\n\r\n", c,
                  rfc_host_byte(c)    ? NULL
                  : rfc_field_byte(c) ? "invalid Host"
                                      : stray_why(c, NULL));
        /* A method byte: a token that is not GET is llhttp's to refuse. */
        const char *why;
        int rc = parse_with_byte("G%cT / HTTP/1.1\r\nHost: a\r\n\r\n", c, &why);
        if (c == 'E' ? rc != 0 : rc != (rfc_tchar(c) ? 501 : 400))
            ck_abort_msg("method byte 0x%02x: %d", c, rc);
    }
}
END_TEST

/* ---- http_head_end ---- */

START_TEST(test_head_end_every_split)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n", "GET / HTTP/1.0\r\n\r\n",
        "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nX: \r\r\n\r\n", /* a bad head, found whole */
    };
    static const char body[] = "BODY\r\n\r\nMORE";
    char buf[256];
    for (size_t c = 0; c < sizeof(heads) / sizeof(heads[0]); c++) {
        size_t len = strlen(heads[c]);
        memcpy(buf, heads[c], len);
        memcpy(buf + len, body, sizeof(body));
        size_t scanned = 0;
        for (size_t k = 0; k <= len; k++) {
            size_t want = k == len ? len : 0;
            CHECK(http_head_end(buf, k, NULL) == want);
            /* The same, told how far the previous call looked. */
            CHECK(http_head_end(buf, k, &scanned) == want);
            CHECK(want || scanned == k);
        }
        ck_assert_uint_eq(http_head_end(buf, len + sizeof(body) - 1, NULL), len);
    }
    /* From the last byte alone: the whole head in one call after many. */
    size_t scanned = 0;
    const char *s = heads[0];
    size_t len = strlen(s);
    ck_assert_uint_eq(http_head_end(s, len - 1, &scanned), 0);
    ck_assert_uint_eq(scanned, len - 1);
    ck_assert_uint_eq(http_head_end(s, len, &scanned), len);
}
END_TEST

START_TEST(test_head_end_bare_lf)
{
    ck_assert_uint_eq(http_head_end("GET / HTTP/1.1\nHost: a\n\n", 24, NULL), 15);
    ck_assert_uint_eq(http_head_end("GET / HTTP/1.1\r\nHost: a\nX", 25, NULL), 24);
    ck_assert_uint_eq(http_head_end("\n", 1, NULL), 1);
    ck_assert_uint_eq(http_head_end("\r\n\n", 3, NULL), 3);
    ck_assert_uint_eq(http_head_end("\r\n", 2, NULL), 0);
    ck_assert_uint_eq(http_head_end("\r\n\r\n", 4, NULL), 0);
    ck_assert_uint_eq(http_head_end("\r", 1, NULL), 0);
    ck_assert_uint_eq(http_head_end("", 0, NULL), 0);
    /* Past the empty lines lb skips, CRLFCRLF ends the (then rejected) head. */
    ck_assert_uint_eq(http_head_end("\r\n\r\n\r\n\r\n\r\n\r\n", 12, NULL), 12);
}
END_TEST

/* ---- rejections ---- */

struct bad {
    const char *name;
    const char *head;
    size_t len;
    int code;
    const char *why;
    int req; /* responses: the REQ_* they answer */
};
#define BAD(name, head, code, why)                                                                 \
    {                                                                                              \
        name, head, sizeof(head) - 1, code, why, REQ_GET                                           \
    }
#define BAD_TO(req, name, head, code, why)                                                         \
    {                                                                                              \
        name, head, sizeof(head) - 1, code, why, req                                               \
    }

static const struct bad bad_requests[] = {
    BAD("space before colon", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        400, "whitespace in or after a header name"),
    BAD("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400,
        "whitespace in or after a header name"),
    BAD("TE and CL",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400, "both Content-Length and Transfer-Encoding"),
    BAD("CL and TE",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400, "both Content-Length and Transfer-Encoding"),
    BAD("CL differing",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
        "differing Content-Length values"),
    BAD("CL list differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400,
        "differing Content-Length values"),
    BAD("CL +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("CL -1", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("CL 0x5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("CL 5 5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("CL trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
        400, "Content-Length out of range"),
    BAD("CL huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400, "Content-Length out of range"),
    BAD("TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
        "final transfer coding is not chunked"),
    BAD("TE chunked, gzip",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400,
        "final transfer coding is not chunked"),
    BAD("TE chunked, chunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
        "chunked named more than once"),
    BAD("TE chunked twice",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
        400, "chunked named more than once"),
    BAD("TE chunked with a parameter",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("TE quoted parameter",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip;x=\"a,chunked\"\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , \r\n\r\n", 400,
        "empty element in Transfer-Encoding"),
    BAD("TE no value", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400,
        "empty element in Transfer-Encoding"),
    BAD("TE leading comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n",
        400, "empty element in Transfer-Encoding"),
    BAD("TE space comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  , chunked\r\n\r\n",
        400, "empty element in Transfer-Encoding"),
    BAD("TE double comma",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,, chunked\r\n\r\n", 400,
        "empty element in Transfer-Encoding"),
    BAD("TE identity, chunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 400,
        "identity transfer coding"),
    BAD("TE Identity on its own line",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Identity\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
        400, "identity transfer coding"),
    BAD("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "Transfer-Encoding in HTTP/1.0"),
    BAD("bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF"),
    BAD("bare LF after a header", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "bare LF"),
    BAD("bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare LF"),
    BAD("bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF"),
    BAD("CR without LF in a value", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400,
        "CR not followed by LF"),
    BAD("CR without LF in the target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "CR not followed by LF"),
    BAD("CR without LF in a name", "GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n", 400,
        "CR not followed by LF"),
    BAD("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400, "control byte"),
    BAD("SOH in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400, "control byte"),
    BAD("DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, "control byte"),
    BAD("NUL in a name", "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n", 400, "control byte"),
    BAD("HTAB in the request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "control byte"),
    BAD("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400,
        "obs-fold (a header line starts with whitespace)"),
    BAD("obs-fold with HTAB", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", 400,
        "obs-fold (a header line starts with whitespace)"),
    BAD("obs-fold first line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400,
        "obs-fold (a header line starts with whitespace)"),
    BAD("empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400, "empty header name"),
    BAD("name not a token", "GET / HTTP/1.1\r\nHost: a\r\nX(a): b\r\n\r\n", 400,
        "header name is not a token"),
    BAD("non-ASCII name", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n", 400,
        "header name is not a token"),
    BAD("line without colon", "GET / HTTP/1.1\r\nHost: a\r\nJunk\r\n\r\n", 400,
        "header line without a colon"),
    BAD("HTTP/0.9", "GET /\r\n\r\n", 400, "request line without a version (HTTP/0.9)"),
    BAD("no target", "GET\r\n\r\n", 400, "incomplete request line"),
    BAD("method not a token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method is not a token"),
    BAD("space before the method", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "method is not a token"),
    BAD("two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty request target"),
    BAD("control byte in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "control byte"),
    BAD("DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "control byte"),
    BAD("NUL in target", "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "control byte"),
    BAD("non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "non-ASCII byte in request target"),
    BAD("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP version not supported"),
    BAD("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "HTTP version not supported"),
    BAD("HTTP/0.9 by name", "GET / HTTP/0.9\r\n\r\n", 505, "HTTP version not supported"),
    BAD("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP version not supported"),
    BAD("HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"),
    BAD("HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"),
    BAD("lowercase http", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"),
    BAD("space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed request line"),
    BAD("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "duplicate Host"),
    BAD("duplicate Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400,
        "duplicate Host"),
    BAD("missing Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, "missing Host"),
    BAD("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"),
    BAD("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "invalid Host"),
    BAD("Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"),
    BAD("CONNECT", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 501,
        "CONNECT is not supported"),
    BAD("CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 501,
        "CONNECT is not supported"),
    BAD("asterisk-form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "asterisk-form without OPTIONS"),
    BAD("asterisk-form with M-SEARCH", "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "asterisk-form without OPTIONS"),
    BAD("authority-form with GET", "GET a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n", 400,
        "authority-form without CONNECT"),
    BAD("authority-form with OPTIONS", "OPTIONS [::1]:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "authority-form without CONNECT"),
    BAD("absolute-form ftp", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "request target scheme is not http or https"),
    BAD("absolute-form userinfo", "GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "userinfo in the request target"),
    BAD("absolute-form userinfo only", "GET http://a@/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "userinfo in the request target"),
    BAD("absolute-form other host", "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "request target and Host differ"),
    BAD("absolute-form other port", "GET http://a:8080/x HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "request target and Host differ"),
    BAD("absolute-form longer host", "GET https://ab?q HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "request target and Host differ"),
    BAD("absolute-form no authority", "GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "request target without an authority"),
    BAD("absolute-form empty authority", "GET http:///a HTTP/1.1\r\nHost: \r\n\r\n", 400,
        "request target without an authority"),
    BAD("absolute-form without Host", "GET http://a/ HTTP/1.0\r\n\r\n", 400,
        "absolute-form without Host"),
    BAD("unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "unknown method"),
    BAD("lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "unknown method"),
    /* Passes lb's scan; llhttp, the second opinion, refuses it. */
    BAD("target not a URI form", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400,
        "Invalid characters in url"),
    BAD("TE chunked then an empty element",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", 400,
        "empty element in Transfer-Encoding"),
};

START_TEST(test_request_rejected)
{
    const struct bad *b = &bad_requests[_i];
    struct http_head h;
    const char *why = NULL;
    size_t end = http_head_end(b->head, b->len, NULL);
    ck_assert_msg(end > 0, "%s: no head found", b->name);
    int rc = http_request_parse(b->head, end, &h, &why);
    ck_assert_msg(rc == b->code && why && strcmp(why, b->why) == 0,
                  "%s: want %d \"%s\", got %d \"%s\"", b->name, b->code, b->why, rc,
                  why ? why : "(null)");
}
END_TEST

START_TEST(test_request_head_len)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET";
    struct http_head h;
    const char *why = NULL;
    ck_assert_int_eq(http_request_parse(s, sizeof(s) - 1, &h, &why), 400);
    ck_assert_str_eq(why, "bytes after the head");
    ck_assert_int_eq(http_request_parse(s, sizeof(s) - 6, &h, &why), 400);
    ck_assert_str_eq(why, "incomplete head");
    ck_assert_int_eq(http_request_parse(s, 0, &h, &why), 400);
    ck_assert_str_eq(why, "incomplete head");
    ck_assert_int_eq(http_request_parse(s, sizeof(s) - 4, &h, &why), 0);
}
END_TEST

/* ---- responses ---- */

struct framing {
    const char *head;
    int to_head; /* REQ_* */
    int status;
    int64_t length;
    bool chunked, until_close, keep_alive, upgrade;
};

static const struct framing framings[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false, 200, 3, false, false, true, false},
    {"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n", false, 200, 3, false,
     false, true, false},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 200, -1, true, false, true,
     false},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, 200, -1, false, true, false,
     false},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, 200, -1, false, true,
     false, false},
    {"HTTP/1.1 200 OK\r\n\r\n", false, 200, -1, false, true, false, false},
    {"HTTP/1.1 204 No Content\r\n\r\n", false, 204, 0, false, false, true, false},
    {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false, 204, 0, false, false, true,
     false},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, 304, 0, false, false, true,
     false},
    {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, 304, 0, false, false,
     true, false},
    {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, 200, 0, false, false, true, false},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, 200, 0, false, false, true,
     false},
    {"HTTP/1.1 200 OK\r\n\r\n", true, 200, 0, false, false, true, false},
    {"HTTP/1.1 100 Continue\r\n\r\n", false, 100, 0, false, false, true, false},
    {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, 103, 0, false, false, true, false},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     REQ_UPGRADE, 101, 0, false, false, false, true},
    {"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false, 200, 3, false, false, false, false},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n", false, 200, 3, false,
     false, true, false},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, 200, -1, false, true, false,
     false},
    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n", false, 200, 3, false,
     false, false, false},
    {"HTTP/1.1 599 x\r\nContent-Length: 0\r\n\r\n", false, 599, 0, false, false, true, false},
};

START_TEST(test_response_framing)
{
    const struct framing *f = &framings[_i];
    struct http_head h;
    resp_ok(f->head, f->to_head, &h);
    ck_assert_int_eq(h.status, f->status);
    ck_assert_int_eq(h.content_length, f->length);
    ck_assert_int_eq(h.chunked, f->chunked);
    ck_assert_int_eq(h.body_until_close, f->until_close);
    ck_assert_int_eq(h.keep_alive, f->keep_alive);
    ck_assert_int_eq(h.upgrade, f->upgrade);
    ck_assert_int_eq(h.host, -1);
}
END_TEST

START_TEST(test_response_spans)
{
    static const char s[] = "HTTP/1.1 404 Not  Found\r\nServer: x\r\nContent-Length: 0\r\n\r\n";
    struct http_head h;
    resp_ok(s, false, &h);
    ck_assert_int_eq(h.version_minor, 1);
    ck_assert_str_eq(sp(s, h.reason), "Not  Found");
    ck_assert_uint_eq(h.reason.off, 13);
    ck_assert_uint_eq(h.nheaders, 2);
    ck_assert_str_eq(sp(s, h.headers[0].name), "Server");
    ck_assert_str_eq(sp(s, h.headers[1].value), "0");
    static const char bare[] = "HTTP/1.1 200\r\n\r\n";
    resp_ok(bare, false, &h);
    ck_assert_int_eq(h.status, 200);
    ck_assert_uint_eq(h.reason.len, 0);
    /* A Host in a response is only a header. */
    resp_ok("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\nContent-Length: 0\r\n\r\n", false, &h);
    ck_assert_int_eq(h.host, -1);
}
END_TEST

static const struct bad bad_responses[] = {
    BAD("101 to a plain request",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        502, "101 without an upgrade"),
    BAD_TO(REQ_HEAD, "101 to a HEAD", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 502,
           "101 without an upgrade"),
    BAD_TO(REQ_UPGRADE, "101 without Upgrade", "HTTP/1.1 101 Switching Protocols\r\n\r\n", 502,
           "101 without an upgrade"),
    BAD_TO(REQ_UPGRADE, "101 with an empty Upgrade",
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade:\r\nConnection: upgrade\r\n\r\n", 502,
           "101 without an upgrade"),
    BAD_TO(REQ_UPGRADE, "101 in HTTP/1.0",
           "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 502,
           "101 without an upgrade"),
    BAD("status 099", "HTTP/1.1 099 x\r\n\r\n", 400, "invalid status code"),
    BAD("status 600", "HTTP/1.1 600 x\r\n\r\n", 400, "invalid status code"),
    BAD("status 20", "HTTP/1.1 20 x\r\n\r\n", 400, "invalid status code"),
    BAD("status 2000", "HTTP/1.1 2000 x\r\n\r\n", 400, "invalid status code"),
    BAD("status 2x0", "HTTP/1.1 2x0 x\r\n\r\n", 400, "invalid status code"),
    BAD("no status", "HTTP/1.1\r\n\r\n", 400, "malformed status line"),
    BAD("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", 505, "HTTP version not supported"),
    BAD("leading CRLF", "\r\nHTTP/1.1 200 OK\r\n\r\n", 400, "malformed HTTP version"),
    BAD("NUL in reason", "HTTP/1.1 200 O\0K\r\n\r\n", 400, "control byte"),
    BAD("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", 400, "bare LF"),
    BAD("CR without LF", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", 400, "CR not followed by LF"),
    BAD("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 400,
        "obs-fold (a header line starts with whitespace)"),
    BAD("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n", 400,
        "whitespace in or after a header name"),
    BAD("CL differing", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400,
        "differing Content-Length values"),
    BAD("CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400, "both Content-Length and Transfer-Encoding"),
    BAD("TE chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
        "chunked named more than once"),
    BAD("TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "Transfer-Encoding in HTTP/1.0"),
    BAD("CL on 304 still checked", "HTTP/1.1 304 x\r\nContent-Length: x\r\n\r\n", 400,
        "invalid Content-Length"),
};

START_TEST(test_response_rejected)
{
    const struct bad *b = &bad_responses[_i];
    struct http_head h;
    const char *why = NULL;
    size_t end = http_head_end(b->head, b->len, NULL);
    ck_assert_msg(end > 0, "%s: no head found", b->name);
    int rc = http_response_parse(b->head, end, req_of(b->req), &h, &why);
    ck_assert_msg(rc == b->code && why && strcmp(why, b->why) == 0,
                  "%s: want %d \"%s\", got %d \"%s\"", b->name, b->code, b->why, rc,
                  why ? why : "(null)");
}
END_TEST

START_TEST(test_response_header_limit)
{
    static char s[8192];
    size_t len = (size_t)snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\n");
    for (unsigned i = 0; i <= HTTP_MAX_HEADERS; i++)
        len += (size_t)snprintf(s + len, sizeof(s) - len, "X-%u: %u\r\n", i, i);
    len += (size_t)snprintf(s + len, sizeof(s) - len, "\r\n");
    struct http_head h;
    const char *why = NULL;
    ck_assert_int_eq(http_response_parse(s, len, req_of(REQ_GET), &h, &why), 431);
    ck_assert_str_eq(why, "too many headers");
}
END_TEST

/* ---- write ---- */

static struct sockaddr_in client4(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40000)};
    ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 client6(const char *ip)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return sin6;
}

/* The request head written for fw, NUL-terminated; asserts that size() says
 * the same and that one byte less of room writes nothing. */
static const char *req_write(const char *s, const struct http_forward *fw)
{
    static char out[4096];
    struct http_head h;
    req_ok(s, &h);
    size_t n = http_request_size(s, &h, fw);
    ck_assert_uint_lt(n, sizeof(out));
    ck_assert_uint_eq(http_request_write(s, &h, fw, out, n - 1), 0);
    memset(out, '#', sizeof(out));
    ck_assert_uint_eq(http_request_write(s, &h, fw, out, n), n);
    ck_assert_int_eq(out[n], '#');
    ck_assert_uint_eq(http_request_write(s, &h, fw, out, sizeof(out)), n);
    out[n] = '\0';
    return out;
}

static const char *resp_write(const char *s, int to_head, const char *connection)
{
    static char out[4096];
    struct http_head h;
    resp_ok(s, to_head, &h);
    size_t n = http_response_size(s, &h, connection);
    ck_assert_uint_lt(n, sizeof(out));
    ck_assert_uint_eq(http_response_write(s, &h, connection, out, n - 1), 0);
    memset(out, '#', sizeof(out));
    ck_assert_uint_eq(http_response_write(s, &h, connection, out, n), n);
    ck_assert_int_eq(out[n], '#');
    out[n] = '\0';
    return out;
}

START_TEST(test_write_plain_get)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {
        .client = (struct sockaddr *)&c, .proto = "http", .port = 8080, .connection = "keep-alive"};
    ck_assert_str_eq(req_write("GET /a?b=c HTTP/1.1\r\n"
                               "Host: Example.COM:8080\r\n"
                               "Accept:   */*  \r\n"
                               "X-Empty:\r\n"
                               "\r\n",
                               &fw),
                     "GET /a?b=c HTTP/1.1\r\n"
                     "Host: Example.COM:8080\r\n"
                     "Accept: */*\r\n"
                     "X-Empty: \r\n"
                     "Connection: keep-alive\r\n"
                     "X-Forwarded-For: 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 8080\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_http10_no_connection)
{
    struct sockaddr_in c = client4("10.0.0.1");
    struct http_forward fw = {.client = (struct sockaddr *)&c, .proto = "https", .port = 443};
    ck_assert_str_eq(req_write("\r\nHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &fw),
                     "HEAD / HTTP/1.0\r\n"
                     "X-Forwarded-For: 10.0.0.1\r\n"
                     "X-Forwarded-Proto: https\r\n"
                     "X-Forwarded-Port: 443\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_xff_merged)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {.client = (struct sockaddr *)&c, .proto = "http", .port = 80};
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\n"
                               "X-Forwarded-For: 203.0.113.1, 198.51.100.2\r\n"
                               "Host: a\r\n"
                               "x-forwarded-for:\r\n"
                               "X-Forwarded-For:  10.0.0.1 \r\n"
                               "\r\n",
                               &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "X-Forwarded-For: 203.0.113.1, 198.51.100.2, 10.0.0.1, 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_forwarding_replaced)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {
        .client = (struct sockaddr *)&c, .proto = "http", .port = 80, .real_ip = true};
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\n"
                               "Host: a\r\n"
                               "X-Forwarded-Proto: https\r\n"
                               "X-Real-IP: 6.6.6.6\r\n"
                               "X-Forwarded-Port: 443\r\n"
                               "Forwarded: for=6.6.6.6\r\n"
                               "\r\n",
                               &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "Forwarded: for=6.6.6.6\r\n"
                     "X-Forwarded-For: 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "X-Real-IP: 192.0.2.7\r\n"
                     "\r\n");
    /* Without real_ip lb drops the client's X-Real-IP; without forwarded it
     * leaves the client's Forwarded as it came. */
    fw.real_ip = false;
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\n"
                               "Forwarded: for=6.6.6.6;x=\"\r\n\r\n",
                               &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "Forwarded: for=6.6.6.6;x=\"\r\n"
                     "X-Forwarded-For: 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_hop_by_hop)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {
        .client = (struct sockaddr *)&c, .proto = "http", .port = 80, .connection = "close"};
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\n"
                               "Host: a\r\n"
                               "Connection: keep-alive, X-Secret\r\n"
                               "Keep-Alive: timeout=5\r\n"
                               "TE: trailers\r\n"
                               "Trailer: X-Sum\r\n"
                               "Proxy-Connection: keep-alive\r\n"
                               "Upgrade: h2c\r\n"
                               "x-secret: 1\r\n"
                               "X-Secrets: kept\r\n"
                               "Connection: x-other\r\n"
                               "X-Other: 2\r\n"
                               "\r\n",
                               &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "X-Secrets: kept\r\n"
                     "Connection: close\r\n"
                     "X-Forwarded-For: 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "\r\n");
}
END_TEST

/* Connection may not strip framing, routing or forwarding headers: a client
 * naming them must not make lb and the backend see different messages. */
START_TEST(test_write_connection_cannot_strip)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {.client = (struct sockaddr *)&c, .proto = "http", .port = 80};
    ck_assert_str_eq(req_write("POST / HTTP/1.1\r\n"
                               "Host: a\r\n"
                               "Connection: content-length, Host, X-Forwarded-For\r\n"
                               "Content-Length: 5\r\n"
                               "X-Forwarded-For: 203.0.113.1\r\n"
                               "\r\n",
                               &fw),
                     "POST / HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "Content-Length: 5\r\n"
                     "X-Forwarded-For: 203.0.113.1, 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "\r\n");
    ck_assert_str_eq(req_write("POST / HTTP/1.1\r\n"
                               "Host: a\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "Connection: Transfer-Encoding\r\n"
                               "\r\n",
                               &fw),
                     "POST / HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "X-Forwarded-For: 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "\r\n");
}
END_TEST

/* A request head and what the backend gets of it before lb's forwarding
 * headers (client 192.0.2.7, http, port 80). */
struct write_case {
    const char *in, *out;
};

static void ck_writes(const struct write_case *cases, size_t n)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {.client = (struct sockaddr *)&c, .proto = "http", .port = 80};
    static const char tail[] = "X-Forwarded-For: 192.0.2.7\r\n"
                               "X-Forwarded-Proto: http\r\n"
                               "X-Forwarded-Port: 80\r\n"
                               "\r\n";
    for (size_t i = 0; i < n; i++) {
        char want[512];
        snprintf(want, sizeof(want), "%s%s", cases[i].out, tail);
        ck_assert_str_eq(req_write(cases[i].in, &fw), want);
    }
}

START_TEST(test_write_content_length_canonical)
{
    static const struct write_case cases[] = {
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"},
        {"POST / HTTP/1.1\r\ncontent-length: 5\r\nHost: a\r\nContent-Length: 005\r\n\r\n",
         "POST / HTTP/1.1\r\ncontent-length: 5\r\nHost: a\r\n"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"},
    };
    ck_writes(cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

/* A request header whose name holds '_' is not sent on, whatever it looks
 * like, and does not count as the field it resembles. */
START_TEST(test_write_underscore_dropped)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {
        .client = (struct sockaddr *)&c, .proto = "http", .port = 80, .real_ip = true};
    static const char s[] = "POST / HTTP/1.1\r\n"
                            "Host: a\r\n"
                            "X_Forwarded_For: 6.6.6.6\r\n"
                            "X_Real_IP: 6.6.6.6\r\n"
                            "Transfer_Encoding: chunked\r\n"
                            "Content_Length: 99\r\n"
                            "Content-Length: 3\r\n"
                            "_Host: evil\r\n"
                            "My_Header: x\r\n"
                            "X-Kept: y\r\n"
                            "\r\n";
    struct http_head h;
    req_ok(s, &h);
    ck_assert(!h.chunked);
    ck_assert_int_eq(h.content_length, 3);
    ck_assert_int_eq(h.host, 0);
    ck_assert(!h.headers[0].underscore);
    ck_assert(h.headers[1].underscore);
    ck_assert(!h.headers[8].underscore);
    ck_assert_str_eq(req_write(s, &fw), "POST / HTTP/1.1\r\n"
                                        "Host: a\r\n"
                                        "Content-Length: 3\r\n"
                                        "X-Kept: y\r\n"
                                        "X-Forwarded-For: 192.0.2.7\r\n"
                                        "X-Forwarded-Proto: http\r\n"
                                        "X-Forwarded-Port: 80\r\n"
                                        "X-Real-IP: 192.0.2.7\r\n"
                                        "\r\n");
    /* A response's headers go back to the client as they came. */
    ck_assert_str_eq(resp_write("HTTP/1.1 204 No Content\r\nX_Y: 1\r\n\r\n", false, NULL),
                     "HTTP/1.1 204 No Content\r\nX_Y: 1\r\n\r\n");
}
END_TEST

/* Transfer-Encoding goes on as one line, codings lower-cased and joined by
 * ", ", however the client or backend spelt and split it. */
START_TEST(test_write_transfer_encoding_canonical)
{
    static const struct write_case cases[] = {
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"},
        {"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: gzip\t,\tchunked\r\n\r\n",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nHost: a\r\nTransfer-Encoding: "
         "Chunked\r\n\r\n",
         "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nHost: a\r\n"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: GZip ; Q=Ab ;r=1,chunked\r\n\r\n",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip;q=Ab;r=1, chunked\r\n"},
    };
    ck_writes(cases, sizeof(cases) / sizeof(cases[0]));
    ck_assert_str_eq(resp_write("HTTP/1.1 200 OK\r\nTransfer-Encoding: ,GZIP,\r\n"
                                "Transfer-Encoding: x , Chunked\r\n\r\n",
                                false, NULL),
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, x, chunked\r\n\r\n");
}
END_TEST

/* An h2c upgrade goes on as a plain request: no Upgrade, no HTTP2-Settings
 * (named in Connection or not). */
START_TEST(test_write_h2c_plain)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {
        .client = (struct sockaddr *)&c, .proto = "http", .port = 80, .connection = "keep-alive"};
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\n"
                               "Host: a\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: h2c\r\n"
                               "HTTP2-Settings: AAMAAABkAAQAAP__\r\n"
                               "\r\n",
                               &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "Connection: keep-alive\r\n"
                     "X-Forwarded-For: 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_upgrade)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {
        .client = (struct sockaddr *)&c, .proto = "http", .port = 80, .connection = "upgrade"};
    ck_assert_str_eq(req_write("GET /chat HTTP/1.1\r\n"
                               "Host: a\r\n"
                               "Connection: keep-alive, Upgrade\r\n"
                               "Upgrade: websocket\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "\r\n",
                               &fw),
                     "GET /chat HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "Upgrade: websocket\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Connection: upgrade\r\n"
                     "X-Forwarded-For: 192.0.2.7\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_ipv6_forwarded)
{
    struct sockaddr_in6 c = client6("2001:db8::1");
    struct http_forward fw = {.client = (struct sockaddr *)&c,
                              .proto = "https",
                              .port = 8443,
                              .real_ip = true,
                              .forwarded = true};
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\n"
                               "Host: example.com:8443\r\n"
                               "Forwarded: for=198.51.100.1;proto=http\r\n"
                               "X-Forwarded-For: 198.51.100.1\r\n"
                               "\r\n",
                               &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: example.com:8443\r\n"
                     "X-Forwarded-For: 198.51.100.1, 2001:db8::1\r\n"
                     "X-Forwarded-Proto: https\r\n"
                     "X-Forwarded-Port: 8443\r\n"
                     "X-Real-IP: 2001:db8::1\r\n"
                     "Forwarded: for=198.51.100.1;proto=http, "
                     "for=\"[2001:db8::1]\";proto=https;host=\"example.com:8443\"\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_forwarded_forms)
{
    struct sockaddr_in6 mapped = client6("::ffff:192.0.2.9");
    struct http_forward fw = {
        .client = (struct sockaddr *)&mapped, .proto = "http", .port = 80, .forwarded = true};
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: example.com\r\n"
                     "X-Forwarded-For: 192.0.2.9\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "Forwarded: for=192.0.2.9;proto=http;host=example.com\r\n"
                     "\r\n");
    /* No Host (HTTP/1.0), no client address. */
    fw.client = NULL;
    ck_assert_str_eq(req_write("GET / HTTP/1.0\r\n\r\n", &fw),
                     "GET / HTTP/1.0\r\n"
                     "X-Forwarded-For: unknown\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "Forwarded: for=unknown;proto=http\r\n"
                     "\r\n");
    /* An empty Host is quoted. */
    struct sockaddr_in c = client4("100.64.10.250");
    fw.client = (struct sockaddr *)&c;
    ck_assert_str_eq(req_write("GET / HTTP/1.1\r\nHost:\r\n\r\n", &fw),
                     "GET / HTTP/1.1\r\n"
                     "Host: \r\n"
                     "X-Forwarded-For: 100.64.10.250\r\n"
                     "X-Forwarded-Proto: http\r\n"
                     "X-Forwarded-Port: 80\r\n"
                     "Forwarded: for=100.64.10.250;proto=http;host=\"\"\r\n"
                     "\r\n");
}
END_TEST

/* The client's Forwarded values go on before lb's element only when every
 * one is well formed; else lb's element alone, so that an open quote or a
 * stray ';' cannot take lb's element into the client's. */
START_TEST(test_write_forwarded_client_checked)
{
    struct sockaddr_in c = client4("192.0.2.7");
    struct http_forward fw = {
        .client = (struct sockaddr *)&c, .proto = "http", .port = 80, .forwarded = true};
    static const char tail[] = "X-Forwarded-For: 192.0.2.7\r\n"
                               "X-Forwarded-Proto: http\r\n"
                               "X-Forwarded-Port: 80\r\n"
                               "Forwarded: ";
    static const char lb[] = "for=192.0.2.7;proto=http;host=a\r\n\r\n";
    static const struct {
        const char *values; /* the client's Forwarded lines */
        const char *kept;   /* what goes before lb's element */
    } cases[] = {
        {"Forwarded: for=1.2.3.4\r\n", "for=1.2.3.4, "},
        {"Forwarded: for=\"[2001:db8::1]:80\";proto=https, for=unknown\r\n"
         "Forwarded: by=_x;host=\"a\\\"b\"\r\n",
         "for=\"[2001:db8::1]:80\";proto=https, for=unknown, by=_x;host=\"a\\\"b\", "},
        {"Forwarded:\r\nForwarded: for=1.2.3.4\r\n", "for=1.2.3.4, "},
        {"Forwarded: for=\"1.2.3.4\r\n", ""},
        {"Forwarded: for=\"1.2.3.4\\\"\r\n", ""},
        {"Forwarded: for=1.2.3.4;\r\n", ""},
        {"Forwarded: for=1.2.3.4,\r\n", ""},
        {"Forwarded: for=1.2.3.4;;proto=http\r\n", ""},
        {"Forwarded: for\r\n", ""},
        {"Forwarded: for=\r\n", ""},
        {"Forwarded: for = 1.2.3.4\r\n", ""},
        {"Forwarded: for=1.2.3.4 proto=http\r\n", ""},
        {"Forwarded: for=[::1]\r\n", ""},
        {"Forwarded: for=1.2.3.4\r\nForwarded: for=\"x\r\n", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[512], want[1024];
        snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", cases[i].values);
        snprintf(want, sizeof(want), "GET / HTTP/1.1\r\nHost: a\r\n%s%s%s", tail, cases[i].kept,
                 lb);
        ck_assert_msg(strcmp(req_write(in, &fw), want) == 0, "case %zu: %s", i, req_write(in, &fw));
    }
}
END_TEST

START_TEST(test_write_request_sizes)
{
    struct sockaddr_in6 c = client6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
    struct http_forward fw = {.client = (struct sockaddr *)&c,
                              .proto = "https",
                              .port = 65535,
                              .real_ip = true,
                              .forwarded = true,
                              .connection = "keep-alive"};
    static char s[8192];
    size_t len = head_with_headers(s, sizeof(s), HTTP_MAX_HEADERS);
    struct http_head h;
    const char *why = NULL;
    ck_assert_int_eq(http_request_parse(s, len, &h, &why), 0);
    static char out[16384];
    size_t n = http_request_size(s, &h, &fw);
    /* Every cap below n writes nothing; n and more write n bytes. */
    for (size_t cap = 0; cap < n; cap++)
        CHECK(http_request_write(s, &h, &fw, out, cap) == 0);
    ck_assert_uint_eq(http_request_write(s, &h, &fw, out, n), n);
    ck_assert_uint_eq(http_request_write(s, &h, &fw, out, sizeof(out)), n);
    ck_assert_uint_eq(n, len + strlen("Connection: keep-alive\r\n"
                                      "X-Forwarded-For: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\r\n"
                                      "X-Forwarded-Proto: https\r\n"
                                      "X-Forwarded-Port: 65535\r\n"
                                      "X-Real-IP: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\r\n"
                                      "Forwarded: for=\"[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]\""
                                      ";proto=https;host=a\r\n"));
    ck_assert_int_eq(memcmp(out, s, len - 2), 0);
}
END_TEST

START_TEST(test_write_response_hop_by_hop)
{
    ck_assert_str_eq(resp_write("HTTP/1.1 200 OK\r\n"
                                "Connection: close, X-Drop\r\n"
                                "Keep-Alive: timeout=5\r\n"
                                "Transfer-Encoding: chunked\r\n"
                                "X-Drop: 1\r\n"
                                "Upgrade: h2c\r\n"
                                "Trailer: X-Sum\r\n"
                                "Proxy-Connection: close\r\n"
                                "Set-Cookie: a=b\r\n"
                                "\r\n",
                                false, "keep-alive"),
                     "HTTP/1.1 200 OK\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "Set-Cookie: a=b\r\n"
                     "Connection: keep-alive\r\n"
                     "\r\n");
    ck_assert_str_eq(resp_write("HTTP/1.0 404 Not Found\r\n"
                                "Content-Length: 3, 3\r\n"
                                "Connection: Content-Length\r\n"
                                "\r\n",
                                false, NULL),
                     "HTTP/1.0 404 Not Found\r\n"
                     "Content-Length: 3\r\n"
                     "\r\n");
}
END_TEST

START_TEST(test_write_response_forms)
{
    ck_assert_str_eq(resp_write("HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                "\r\n",
                                REQ_UPGRADE, "upgrade"),
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Connection: upgrade\r\n"
                     "\r\n");
    /* A 1xx or 204 loses the framing headers it may not carry. */
    ck_assert_str_eq(
        resp_write("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\nX: 1\r\n\r\n", false, NULL),
        "HTTP/1.1 204 No Content\r\nX: 1\r\n\r\n");
    ck_assert_str_eq(resp_write("HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n"
                                "Link: </a>\r\n\r\n",
                                false, NULL),
                     "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
    ck_assert_str_eq(resp_write("HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n", false, NULL),
                     "HTTP/1.1 100 Continue\r\n\r\n");
    /* A 304 keeps the length of the representation it stands for. */
    ck_assert_str_eq(
        resp_write("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", false, NULL),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n");
    /* An answer to HEAD keeps the length it describes. */
    ck_assert_str_eq(resp_write("HTTP/1.1 200\r\nContent-Length: 0100\r\n\r\n", true, "close"),
                     "HTTP/1.1 200 \r\n"
                     "Content-Length: 100\r\n"
                     "Connection: close\r\n"
                     "\r\n");
}
END_TEST

Suite *http_head_suite(void)
{
    Suite *s = suite_create("http_head");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_request_spans);
    tcase_add_test(tc, test_request_fields_any_case);
    tcase_add_test(tc, test_field_names);
    tcase_add_test(tc, test_request_content_length);
    tcase_add_test(tc, test_request_chunked);
    tcase_add_test(tc, test_request_keep_alive);
    tcase_add_test(tc, test_request_upgrade_expect);
    tcase_add_test(tc, test_request_forms);
    tcase_add_test(tc, test_request_empty_lines);
    tcase_add_test(tc, test_request_connection_listed);
    tcase_add_test(tc, test_request_connection_lists_many);
    tcase_add_test(tc, test_request_header_limit);
    tcase_add_test(tc, test_request_head_len);
    tcase_add_test(tc, test_request_every_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("head_end");
    tcase_add_test(tc, test_head_end_every_split);
    tcase_add_test(tc, test_head_end_bare_lf);
    suite_add_tcase(s, tc);

    tc = tcase_create("rejected");
    tcase_add_loop_test(tc, test_request_rejected, 0,
                        sizeof(bad_requests) / sizeof(bad_requests[0]));
    tcase_add_loop_test(tc, test_response_rejected, 0,
                        sizeof(bad_responses) / sizeof(bad_responses[0]));
    tcase_add_test(tc, test_response_header_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_add_loop_test(tc, test_response_framing, 0, sizeof(framings) / sizeof(framings[0]));
    tcase_add_test(tc, test_response_spans);
    suite_add_tcase(s, tc);

    tc = tcase_create("write");
    tcase_add_test(tc, test_write_plain_get);
    tcase_add_test(tc, test_write_http10_no_connection);
    tcase_add_test(tc, test_write_xff_merged);
    tcase_add_test(tc, test_write_forwarding_replaced);
    tcase_add_test(tc, test_write_hop_by_hop);
    tcase_add_test(tc, test_write_connection_cannot_strip);
    tcase_add_test(tc, test_write_content_length_canonical);
    tcase_add_test(tc, test_write_transfer_encoding_canonical);
    tcase_add_test(tc, test_write_underscore_dropped);
    tcase_add_test(tc, test_write_h2c_plain);
    tcase_add_test(tc, test_write_upgrade);
    tcase_add_test(tc, test_write_ipv6_forwarded);
    tcase_add_test(tc, test_write_forwarded_forms);
    tcase_add_test(tc, test_write_forwarded_client_checked);
    tcase_add_test(tc, test_write_request_sizes);
    tcase_add_test(tc, test_write_response_hop_by_hop);
    tcase_add_test(tc, test_write_response_forms);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(http_head_suite)
