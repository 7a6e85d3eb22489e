/* test_proxy_proto: the PROXY protocol module, asserted byte for byte: what
 * the writers produce, what the parser makes of valid headers fed whole and
 * one byte at a time, and, for each malformed input, the exact length at
 * which it is refused and the reason given. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lb/proto/proxy_proto.h"
#include "tests/test.h"

/* ck_assert for loops: Check's ck_assert sends a message to its parent
 * process even when it holds, this one only when it fails. */
#define CHECK(expr, ...)                                                                           \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* The v2 signature as a string literal piece (it holds a NUL). */
#define SIG "\r\n\r\n\0\r\nQUIT\n"

/* ---- helpers ---- */

/* An address from text: IPv6 when it holds a ':'. */
static struct sockaddr_storage addr(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* ss holds exactly ip:port (the family ip's text implies). */
static void check_addr(const char *what, const struct sockaddr_storage *ss, const char *ip,
                       unsigned port)
{
    struct sockaddr_storage want = addr(ip, port);
    CHECK(ss->ss_family == want.ss_family, "%s: family %d, want %d (%s)", what, ss->ss_family,
          want.ss_family, ip);
    if (want.ss_family == AF_INET) {
        const struct sockaddr_in *g = (const void *)ss, *w = (const void *)&want;
        CHECK(g->sin_addr.s_addr == w->sin_addr.s_addr, "%s: wrong IPv4 address, want %s", what,
              ip);
        CHECK(g->sin_port == w->sin_port, "%s: port %u, want %u", what, ntohs(g->sin_port), port);
    } else {
        const struct sockaddr_in6 *g = (const void *)ss, *w = (const void *)&want;
        CHECK(memcmp(&g->sin6_addr, &w->sin6_addr, 16) == 0, "%s: wrong IPv6 address, want %s",
              what, ip);
        CHECK(g->sin6_port == w->sin6_port, "%s: port %u, want %u", what, ntohs(g->sin6_port),
              port);
    }
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* got[0..glen) is exactly want[0..wlen); names the first byte that is not. */
static void check_bytes(const char *what, const void *got, size_t glen, const void *want,
                        size_t wlen)
{
    const unsigned char *g = got, *w = want;
    for (size_t i = 0; i < glen && i < wlen; i++)
        CHECK(g[i] == w[i], "%s: byte %zu is 0x%02x, want 0x%02x", what, i, g[i], w[i]);
    CHECK(glen == wlen, "%s: %zu bytes, want %zu", what, glen, wlen);
}

/* proxy_parse() on a copy of bytes[0..len) in a buffer of exactly len
 * bytes, so that the sanitizer build catches a read past len. */
static enum proxy_result parse_exact(const void *bytes, size_t len, struct proxy_addr *out,
                                     size_t *consumed, const char **why)
{
    void *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, bytes, len);
    enum proxy_result r = proxy_parse(copy, len, out, consumed, why);
    free(copy);
    return r;
}

/* What a valid header must parse to: local, or src and dst. */
struct want {
    int version;
    bool local;
    const char *src;
    unsigned sport;
    const char *dst;
    unsigned dport;
};

/* What the client sends after its header: must be left alone, and must not
 * be taken for part of it (it looks like another header). */
static const char trailer[] = "PROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\nGET / HTTP/1.1\r\n";

/* hdr[0..len) is one valid header. Every proper prefix is NEED_MORE with
 * nothing written; the header alone, and the header followed by the
 * client's bytes, are OK with *consumed == len and *out as w says. */
static void check_good(const char *what, const void *hdr, size_t len, const struct want *w)
{
    size_t total = len + sizeof(trailer) - 1;
    unsigned char *buf = malloc(total), *copy = malloc(total);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(copy);
    memcpy(buf, hdr, len);
    memcpy(buf + len, trailer, sizeof(trailer) - 1);
    memcpy(copy, buf, total);

    struct proxy_addr out, untouched;
    memset(&untouched, 0x5a, sizeof(untouched));
    for (size_t i = 0; i < len; i++) {
        const char *why = "untouched";
        size_t consumed = 12345;
        memset(&out, 0x5a, sizeof(out));
        enum proxy_result r = parse_exact(buf, i, &out, &consumed, &why);
        CHECK(r == PROXY_NEED_MORE, "%s: %zu of %zu bytes: result %d (%s), want NEED_MORE", what, i,
              len, r, why);
        CHECK(consumed == 12345 && memcmp(&out, &untouched, sizeof(out)) == 0 &&
                  strcmp(why, "untouched") == 0,
              "%s: %zu of %zu bytes: NEED_MORE wrote an output", what, i, len);
    }
    for (int pass = 0; pass < 2; pass++) {
        size_t n = pass == 0 ? len : total, consumed = 12345;
        const char *why = "untouched";
        memset(&out, 0x5a, sizeof(out));
        /* The header alone in a buffer of its size; then in place, the
         * client's bytes after it. */
        enum proxy_result r = pass == 0 ? parse_exact(buf, n, &out, &consumed, &why)
                                        : proxy_parse(buf, n, &out, &consumed, &why);
        CHECK(r == PROXY_OK, "%s: %zu bytes: result %d (%s), want OK", what, n, r, why);
        CHECK(consumed == len, "%s: %zu bytes: consumed %zu, want %zu", what, n, consumed, len);
        CHECK(strcmp(why, "untouched") == 0, "%s: OK wrote a reason", what);
        CHECK(out.version == w->version, "%s: version %d, want %d", what, out.version, w->version);
        CHECK(out.local == w->local, "%s: local %d, want %d", what, out.local, w->local);
        if (w->local) {
            CHECK(all_zero(&out.src, sizeof(out.src)) && all_zero(&out.dst, sizeof(out.dst)),
                  "%s: a local header's addresses are not zeroed", what);
        } else {
            check_addr(what, &out.src, w->src, w->sport);
            check_addr(what, &out.dst, w->dst, w->dport);
        }
    }
    CHECK(memcmp(buf, copy, total) == 0, "%s: the buffer changed", what);
    free(buf);
    free(copy);
}

/* bytes[0..len) is malformed: each prefix shorter than at is NEED_MORE,
 * and from at bytes on each one is INVALID with reason why (the same
 * however the bytes were split into reads). */
static void check_bad(const char *what, const void *bytes, size_t len, size_t at, const char *why)
{
    ck_assert_msg(at >= 1 && at <= len, "%s: the table is wrong: at %zu of %zu", what, at, len);
    for (size_t i = 0; i <= len; i++) {
        struct proxy_addr out;
        size_t consumed = 12345;
        const char *got = "untouched";
        memset(&out, 0x5a, sizeof(out));
        enum proxy_result r = parse_exact(bytes, i, &out, &consumed, &got);
        if (i < at) {
            CHECK(r == PROXY_NEED_MORE, "%s: %zu bytes: result %d (%s), want NEED_MORE until %zu",
                  what, i, r, got, at);
            continue;
        }
        CHECK(r == PROXY_INVALID, "%s: %zu bytes: result %d, want INVALID from %zu on", what, i, r,
              at);
        CHECK(strcmp(got, why) == 0, "%s: %zu bytes: reason \"%s\", want \"%s\"", what, i, got,
              why);
        CHECK(consumed == 12345, "%s: INVALID wrote *consumed", what);
    }
}

/* ---- writers ---- */

START_TEST(test_write_v1_ipv4)
{
    struct sockaddr_storage s = addr("192.0.2.1", 56324), d = addr("198.51.100.2", 443);
    char buf[PROXY_V1_MAX];
    static const char want[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    size_t n = proxy_write_v1(buf, sizeof(buf), SA(s), SA(d));
    check_bytes("v1 ipv4", buf, n, want, sizeof(want) - 1);
}
END_TEST

START_TEST(test_write_v1_ipv6)
{
    struct sockaddr_storage s = addr("2001:db8::1", 1234), d = addr("2001:db8:0:0:0:0:0:2", 80);
    char buf[PROXY_V1_MAX];
    static const char want[] = "PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n";
    size_t n = proxy_write_v1(buf, sizeof(buf), SA(s), SA(d));
    check_bytes("v1 ipv6", buf, n, want, sizeof(want) - 1);

    /* The longest line a TCP6 header can be, with the extreme ports. */
    s = addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    d = addr("fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0);
    static const char longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                                  " fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 0\r\n";
    n = proxy_write_v1(buf, sizeof(buf), SA(s), SA(d));
    check_bytes("v1 longest", buf, n, longest, sizeof(longest) - 1);
}
END_TEST

START_TEST(test_write_v2_ipv4)
{
    struct sockaddr_storage s = addr("192.0.2.1", 56324), d = addr("198.51.100.2", 443);
    unsigned char buf[64];
    static const unsigned char want[28] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
        0x21,                                                                   /* v2, PROXY */
        0x11,                                                                   /* TCP, IPv4 */
        0x00, 0x0c,                                                             /* 12 bytes */
        192,  0,    2,    1,                                                    /* source */
        198,  51,   100,  2,                                                    /* destination */
        0xdc, 0x04,                                                             /* 56324 */
        0x01, 0xbb,                                                             /* 443 */
    };
    memset(buf, 0xee, sizeof(buf));
    size_t n = proxy_write_v2(buf, sizeof(buf), SA(s), SA(d));
    check_bytes("v2 ipv4", buf, n, want, sizeof(want));
    ck_assert_uint_eq(buf[28], 0xee); /* nothing written past the header */
}
END_TEST

START_TEST(test_write_v2_ipv6)
{
    struct sockaddr_storage s = addr("2001:db8::1", 1234), d = addr("2001:db8::2", 80);
    unsigned char buf[64];
    static const unsigned char want[52] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
        0x21, 0x21, 0x00, 0x24,                      /* v2 PROXY, TCP over IPv6, 36 bytes */
        0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0, /* 2001:db8::1 */
        0,    0,    0,    0,    0,    0,    0,    1, /* 2001:db8::1, cont. */
        0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0, /* 2001:db8::2 */
        0,    0,    0,    0,    0,    0,    0,    2, /* 2001:db8::2, cont. */
        0x04, 0xd2, 0x00, 0x50,                      /* 1234, 80 */
    };
    size_t n = proxy_write_v2(buf, sizeof(buf), SA(s), SA(d));
    check_bytes("v2 ipv6", buf, n, want, sizeof(want));
}
END_TEST

/* A source of one family and a destination of the other: both IPv6, the
 * IPv4 one mapped, whichever side it is on. */
START_TEST(test_write_mixed)
{
    struct sockaddr_storage v4 = addr("192.0.2.1", 56324), v6 = addr("2001:db8::2", 443);
    char buf[PROXY_V1_MAX];
    static const char want1[] = "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 56324 443\r\n";
    size_t n = proxy_write_v1(buf, sizeof(buf), SA(v4), SA(v6));
    check_bytes("v1 v4 to v6", buf, n, want1, sizeof(want1) - 1);
    static const char want2[] = "PROXY TCP6 2001:db8::2 ::ffff:192.0.2.1 443 56324\r\n";
    n = proxy_write_v1(buf, sizeof(buf), SA(v6), SA(v4));
    check_bytes("v1 v6 to v4", buf, n, want2, sizeof(want2) - 1);

    unsigned char b2[64];
    static const unsigned char want3[52] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
        0x21, 0x21, 0x00, 0x24,                      /* v2 PROXY, TCP over IPv6, 36 bytes */
        0,    0,    0,    0,    0,    0,    0,    0, /* ::ffff:192.0.2.1 */
        0,    0,    0xff, 0xff, 192,  0,    2,    1, /* ::ffff:192.0.2.1, cont. */
        0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0, /* 2001:db8::2 */
        0,    0,    0,    0,    0,    0,    0,    2, /* 2001:db8::2, cont. */
        0xdc, 0x04, 0x01, 0xbb,                      /* 56324, 443 */
    };
    n = proxy_write_v2(b2, sizeof(b2), SA(v4), SA(v6));
    check_bytes("v2 v4 to v6", b2, n, want3, sizeof(want3));
}
END_TEST

/* Mapped addresses are written as IPv4; when the other side is IPv6 they
 * stay mapped. */
START_TEST(test_write_mapped)
{
    struct sockaddr_storage s = addr("::ffff:192.0.2.1", 56324);
    struct sockaddr_storage d = addr("::ffff:198.51.100.2", 443);
    struct sockaddr_storage d4 = addr("198.51.100.2", 443), d6 = addr("2001:db8::2", 443);
    char buf[PROXY_V1_MAX];
    static const char want[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    size_t n = proxy_write_v1(buf, sizeof(buf), SA(s), SA(d));
    check_bytes("v1 both mapped", buf, n, want, sizeof(want) - 1);
    n = proxy_write_v1(buf, sizeof(buf), SA(s), SA(d4));
    check_bytes("v1 mapped to ipv4", buf, n, want, sizeof(want) - 1);
    static const char want6[] = "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 56324 443\r\n";
    n = proxy_write_v1(buf, sizeof(buf), SA(s), SA(d6));
    check_bytes("v1 mapped to ipv6", buf, n, want6, sizeof(want6) - 1);

    unsigned char b2[64], b4[64];
    struct sockaddr_storage s4 = addr("192.0.2.1", 56324);
    n = proxy_write_v2(b2, sizeof(b2), SA(s), SA(d));
    ck_assert_uint_eq(n, 28);
    ck_assert_uint_eq(b2[13], 0x11);
    ck_assert_uint_eq(proxy_write_v2(b4, sizeof(b4), SA(s4), SA(d4)), 28);
    check_bytes("v2 both mapped", b2, n, b4, 28);
}
END_TEST

START_TEST(test_write_local)
{
    unsigned char buf[64];
    static const unsigned char v2[16] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
                                         0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00};
    size_t n = proxy_write_local(1, buf, sizeof(buf));
    check_bytes("local v1", buf, n, "PROXY UNKNOWN\r\n", 15);
    n = proxy_write_local(2, buf, sizeof(buf));
    check_bytes("local v2", buf, n, v2, sizeof(v2));
    ck_assert_uint_eq(proxy_write_local(0, buf, sizeof(buf)), 0);
    ck_assert_uint_eq(proxy_write_local(3, buf, sizeof(buf)), 0);

    /* A family lb does not carry, or no address: the local header. */
    struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/tmp/x"};
    struct sockaddr_storage in = addr("192.0.2.1", 80);
    const struct sockaddr *pairs[][2] = {{(struct sockaddr *)&un, SA(in)},
                                         {SA(in), (struct sockaddr *)&un},
                                         {NULL, SA(in)},
                                         {SA(in), NULL}};
    for (size_t i = 0; i < 4; i++) {
        char what[32];
        snprintf(what, sizeof(what), "pair %zu v1", i);
        n = proxy_write_v1(buf, sizeof(buf), pairs[i][0], pairs[i][1]);
        check_bytes(what, buf, n, "PROXY UNKNOWN\r\n", 15);
        snprintf(what, sizeof(what), "pair %zu v2", i);
        n = proxy_write_v2(buf, sizeof(buf), pairs[i][0], pairs[i][1]);
        check_bytes(what, buf, n, v2, sizeof(v2));
    }
}
END_TEST

/* One writer call: version 1 or 2, proxy_write_local() when local. */
struct writer {
    const char *name;
    int version;
    bool local;
    const struct sockaddr *src, *dst;
    size_t len; /* what it must write */
};

static size_t writer_run(const struct writer *w, void *buf, size_t cap)
{
    if (w->local)
        return proxy_write_local(w->version, buf, cap);
    if (w->version == 1)
        return proxy_write_v1(buf, cap, w->src, w->dst);
    return proxy_write_v2(buf, cap, w->src, w->dst);
}

/* Each writer, given less room than it needs, writes nothing and returns
 * 0; given exactly what it needs, writes it all and nothing more. */
START_TEST(test_write_cap)
{
    struct sockaddr_storage s4 = addr("192.0.2.1", 56324), d4 = addr("198.51.100.2", 443);
    struct sockaddr_storage s6 = addr("2001:db8::1", 1234), d6 = addr("2001:db8::2", 80);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    const struct writer writers[] = {
        {"v1 ipv4", 1, false, SA(s4), SA(d4), 45},
        {"v2 ipv4", 2, false, SA(s4), SA(d4), 28},
        {"v1 ipv6", 1, false, SA(s6), SA(d6), 44},
        {"v2 ipv6", 2, false, SA(s6), SA(d6), 52},
        {"v1 unix", 1, false, (struct sockaddr *)&un, SA(d4), 15},
        {"v2 unix", 2, false, (struct sockaddr *)&un, SA(d4), 16},
        {"v1 local", 1, true, NULL, NULL, 15},
        {"v2 local", 2, true, NULL, NULL, 16},
    };
    for (size_t k = 0; k < sizeof(writers) / sizeof(writers[0]); k++) {
        const struct writer *w = &writers[k];
        unsigned char full[128], buf[128];
        size_t need = writer_run(w, full, sizeof(full));
        CHECK(need == w->len, "%s: %zu bytes, want %zu", w->name, need, w->len);
        for (size_t cap = 0; cap <= need; cap++) {
            memset(buf, 0xee, sizeof(buf));
            size_t n = writer_run(w, buf, cap);
            if (cap < need) {
                CHECK(n == 0, "%s: cap %zu of %zu: returned %zu", w->name, cap, need, n);
                for (size_t i = 0; i < sizeof(buf); i++)
                    CHECK(buf[i] == 0xee, "%s: cap %zu: wrote byte %zu", w->name, cap, i);
            } else {
                CHECK(n == need && memcmp(buf, full, need) == 0 && buf[need] == 0xee,
                      "%s: cap %zu: wrong output", w->name, cap);
            }
        }
    }
}
END_TEST

/* What a writer writes, the parser reads back: for v1 and v2, through
 * every byte-at-a-time prefix, with the addresses as the writer's
 * contract says (mapped IPv4 unwrapped, mixed pairs mapped). */
START_TEST(test_round_trip)
{
    static const struct {
        const char *s, *d;
        unsigned sp, dp;
        const char *ws, *wd; /* what the header carries */
    } pairs[] = {
        {"192.0.2.1", "198.51.100.2", 56324, 443, "192.0.2.1", "198.51.100.2"},
        {"0.0.0.0", "255.255.255.255", 0, 65535, "0.0.0.0", "255.255.255.255"},
        {"2001:db8::1", "2001:db8::2", 1234, 80, "2001:db8::1", "2001:db8::2"},
        {"::", "::1", 65535, 0, "::", "::1"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::1:2:3:4", 1, 2,
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::1:2:3:4"},
        {"::ffff:10.1.2.3", "::ffff:10.3.2.1", 7, 8, "10.1.2.3", "10.3.2.1"},
        {"::ffff:10.1.2.3", "10.3.2.1", 7, 8, "10.1.2.3", "10.3.2.1"},
        {"10.1.2.3", "2001:db8::9", 7, 8, "::ffff:10.1.2.3", "2001:db8::9"},
        {"2001:db8::9", "::ffff:10.3.2.1", 7, 8, "2001:db8::9", "::ffff:10.3.2.1"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        struct sockaddr_storage s = addr(pairs[i].s, pairs[i].sp),
                                d = addr(pairs[i].d, pairs[i].dp);
        struct want w = {1, false, pairs[i].ws, pairs[i].sp, pairs[i].wd, pairs[i].dp};
        unsigned char buf[PROXY_V1_MAX];
        char what[64];
        size_t n = proxy_write_v1(buf, sizeof(buf), SA(s), SA(d));
        snprintf(what, sizeof(what), "v1 pair %zu", i);
        CHECK(n > 0, "%s: not written", what);
        check_good(what, buf, n, &w);
        n = proxy_write_v2(buf, sizeof(buf), SA(s), SA(d));
        snprintf(what, sizeof(what), "v2 pair %zu", i);
        CHECK(n > 0, "%s: not written", what);
        w.version = 2;
        check_good(what, buf, n, &w);
    }
    unsigned char buf[32];
    struct want local1 = {1, true, NULL, 0, NULL, 0}, local2 = {2, true, NULL, 0, NULL, 0};
    check_good("local v1", buf, proxy_write_local(1, buf, sizeof(buf)), &local1);
    check_good("local v2", buf, proxy_write_local(2, buf, sizeof(buf)), &local2);
}
END_TEST

/* ---- parser: valid headers ---- */

/* lit is a valid header carrying src:sport -> dst:dport, or a local one. */
#define GOOD(lit, version, src, sport, dst, dport)                                                 \
    do {                                                                                           \
        struct want w_ = {version, false, src, sport, dst, dport};                                 \
        check_good(#lit, lit, sizeof(lit) - 1, &w_);                                               \
    } while (0)
#define GOOD_LOCAL(lit, version)                                                                   \
    do {                                                                                           \
        struct want w_ = {version, true, NULL, 0, NULL, 0};                                        \
        check_good(#lit, lit, sizeof(lit) - 1, &w_);                                               \
    } while (0)

START_TEST(test_parse_v1)
{
    GOOD("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", 1, "192.0.2.1", 56324, "198.51.100.2",
         443);
    GOOD("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 1, "0.0.0.0", 0, "255.255.255.255",
         65535);
    GOOD("PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 1234 80\r\n", 1, "2001:db8::1", 1234,
         "2001:db8::2", 80);
    /* A mapped address stays what the line says: IPv6. */
    GOOD("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", 1, "::ffff:192.0.2.1", 1, "::1", 2);
    GOOD("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
         1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    GOOD_LOCAL("PROXY UNKNOWN\r\n", 1);
    GOOD_LOCAL("PROXY UNKNOWN 192.0.2.1 whatever ~!@#$%^&*()\r\n", 1);
    /* The spec's worst case: 107 bytes exactly, CRLF included. */
    static const char worst[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ck_assert_uint_eq(sizeof(worst) - 1, PROXY_V1_MAX);
    GOOD_LOCAL(worst, 1);
}
END_TEST

START_TEST(test_parse_v2)
{
    GOOD(SIG "\x21\x11\x00\x0c"
             "\xc0\x00\x02\x01"
             "\xc6\x33\x64\x02"
             "\xdc\x04\x01\xbb",
         2, "192.0.2.1", 56324, "198.51.100.2", 443);
    GOOD(SIG "\x21\x21\x00\x24"
             "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
             "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
             "\x04\xd2\x00\x50",
         2, "2001:db8::1", 1234, "2001:db8::2", 80);
    /* LOCAL: the addresses, when any, are ignored. */
    GOOD_LOCAL(SIG "\x20\x00\x00\x00", 2);
    GOOD_LOCAL(SIG "\x20\x11\x00\x0c"
                   "\xc0\x00\x02\x01"
                   "\xc6\x33\x64\x02"
                   "\xdc\x04\x01\xbb",
               2);
    /* PROXY with UNSPEC: nothing to route on, taken as local. */
    GOOD_LOCAL(SIG "\x21\x00\x00\x00", 2);
    GOOD_LOCAL(SIG "\x21\x00\x00\x04"
                   "\x04\x00\x01"
                   "x",
               2);
    /* An address block longer than the family's: the rest is TLVs. */
    GOOD(SIG "\x21\x11\x00\x0f"
             "\x0a\x00\x00\x01"
             "\x0a\x00\x00\x02"
             "\x00\x01\x00\x02"
             "\x04\x00\x00",
         2, "10.0.0.1", 1, "10.0.0.2", 2);
}
END_TEST

/* UNIX stream: 216 bytes of paths, taken as local. */
START_TEST(test_parse_v2_unix)
{
    unsigned char h[16 + 216];
    memcpy(h, SIG "\x21\x31\x00\xd8", 16);
    memset(h + 16, 0, 216);
    strcpy((char *)h + 16, "/run/client.sock");
    strcpy((char *)h + 16 + 108, "/run/lb.sock");
    struct want w = {2, true, NULL, 0, NULL, 0};
    check_good("v2 unix", h, sizeof(h), &w);
}
END_TEST

/* TLVs of all kinds are skipped; a CRC32C is checked over the whole header
 * with its own field zeroed (the values come from an independent
 * implementation of RFC 4960's CRC32c, checked against "123456789" ->
 * 0xe3069283). */
START_TEST(test_parse_v2_tlvs)
{
    /* ALPN "h2", a zero-length NOOP, AUTHORITY "example.com". */
    GOOD(SIG "\x21\x11\x00\x22"
             "\xc0\x00\x02\x01"
             "\xc6\x33\x64\x02"
             "\xdc\x04\x01\xbb"
             "\x01\x00\x02"
             "h2"
             "\x04\x00\x00"
             "\x02\x00\x0b"
             "example.com",
         2, "192.0.2.1", 56324, "198.51.100.2", 443);
    GOOD(SIG "\x21\x11\x00\x13"
             "\xc0\x00\x02\x01"
             "\xc6\x33\x64\x02"
             "\xdc\x04\x01\xbb"
             "\x03\x00\x04"
             "\x20\xec\x95\x49",
         2, "192.0.2.1", 56324, "198.51.100.2", 443);
    GOOD(SIG "\x21\x21\x00\x41"
             "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
             "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
             "\x04\xd2\x00\x50"
             "\x01\x00\x02"
             "h2"
             "\x04\x00\x00"
             "\x03\x00\x04"
             "\xf0\x14\xfb\xf5"
             "\x02\x00\x0b"
             "example.com",
         2, "2001:db8::1", 1234, "2001:db8::2", 80);
}
END_TEST

/* The largest header lb reads: PROXY_HEADER_MAX bytes, a NOOP TLV filling
 * what the addresses leave. One byte more is refused as soon as the length
 * field has arrived. */
START_TEST(test_parse_v2_max)
{
    unsigned char h[PROXY_HEADER_MAX + 1];
    size_t tlv = PROXY_HEADER_MAX - 28 - 3;
    memset(h, 'x', sizeof(h));
    memcpy(h,
           SIG "\x21\x11\x0f\xf0"
               "\xc0\x00\x02\x01"
               "\xc6\x33\x64\x02"
               "\xdc\x04\x01\xbb",
           28);
    h[28] = 0x04;
    h[29] = (unsigned char)(tlv >> 8);
    h[30] = (unsigned char)tlv;
    struct want w = {2, false, "192.0.2.1", 56324, "198.51.100.2", 443};
    check_good("v2 max", h, PROXY_HEADER_MAX, &w);

    h[15] = 0xf1;
    h[30] = (unsigned char)(tlv + 1);
    check_bad("v2 max + 1", h, sizeof(h), 16, "v2: header too long");
    /* The largest length field of all. */
    h[14] = h[15] = 0xff;
    check_bad("v2 length 65535", h, 64, 16, "v2: header too long");
}
END_TEST

/* A wrong CRC32C, refused only once the whole header is in: one bit of the
 * checksum or of the addresses it covers flipped, a TLV after it that it
 * does not cover. */
/* A LOCAL header keeps the connection's addresses and, as the spec says,
 * its family and block are ignored whatever they hold (here a UDP family,
 * bytes that are no TLV, and a checksum TLV that does not match): only
 * its length counts. */
START_TEST(test_parse_v2_local_ignores_its_block)
{
    static const unsigned char h[] = SIG "\x20\x12\x00\x0a"
                                         "\x01\x02\x03"
                                         "\x03\x00\x04\xde\xad\xbe\xef"
                                         "data";
    struct proxy_addr a;
    size_t used = 0;
    const char *why = NULL;
    for (size_t len = 0; len < 26; len++)
        ck_assert_int_eq(proxy_parse(h, len, &a, &used, &why), PROXY_NEED_MORE);
    ck_assert_int_eq(proxy_parse(h, sizeof(h) - 1, &a, &used, &why), PROXY_OK);
    ck_assert_uint_eq(used, 26);
    ck_assert(a.local);
    ck_assert_int_eq(a.version, 2);
    static const unsigned char big[] = SIG "\x20\x00\x0f\xf1";
    ck_assert_int_eq(proxy_parse(big, 16, &a, &used, &why), PROXY_INVALID);
    ck_assert_str_eq(why, "v2: header too long");
}
END_TEST

START_TEST(test_parse_v2_crc_mismatch)
{
    static const unsigned char good[] = SIG "\x21\x11\x00\x13"
                                            "\xc0\x00\x02\x01"
                                            "\xc6\x33\x64\x02"
                                            "\xdc\x04\x01\xbb"
                                            "\x03\x00\x04"
                                            "\x20\xec\x95\x49";
    size_t len = sizeof(good) - 1;
    unsigned char h[64];
    for (size_t byte = 16; byte < len; byte++) {
        if (byte >= 28 && byte < 31)
            continue; /* the TLV's type and length: other faults */
        for (int bit = 0; bit < 8; bit++) {
            char what[48];
            memcpy(h, good, len);
            h[byte] ^= (unsigned char)(1 << bit);
            snprintf(what, sizeof(what), "byte %zu bit %d flipped", byte, bit);
            check_bad(what, h, len, len, "v2: crc32c mismatch");
        }
    }
    /* The same checksum with a NOOP TLV after it (length 0x17). */
    memcpy(h, good, len);
    memcpy(h + len, "\x04\x00\x01z", 4);
    h[15] = 0x17;
    check_bad("a TLV more", h, len + 4, len + 4, "v2: crc32c mismatch");
}
END_TEST

/* ---- parser: malformed input ---- */

/* One malformed input: bytes (a literal, NULs allowed), the prefix at
 * which it must be refused (a literal too, checked to be a prefix), and
 * the reason. */
struct bad {
    const char *name;
    const char *bytes;
    size_t len;
    const char *prefix;
    size_t at;
    const char *why;
};
#define BAD(name, lit, pre, why)                                                                   \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, pre, sizeof(pre) - 1, why                                      \
    }

#define V4 "\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb"

static const struct bad bad[] = {
    /* Neither signature. */
    BAD("GET", "GET / HTTP/1.1\r\n", "G", "not a proxy protocol header"),
    BAD("POST", "POST / HTTP/1.1\r\n", "PO", "not a proxy protocol header"),
    BAD("lower-case proxy", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "p",
        "not a proxy protocol header"),
    BAD("PROXY without its space", "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY\t",
        "not a proxy protocol header"),
    BAD("PROXZ", "PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXZ", "not a proxy protocol header"),
    BAD("TLS hello", "\x16\x03\x01\x02\x00\x01", "\x16", "not a proxy protocol header"),
    BAD("NUL first", "\0PROXY ", "\0", "not a proxy protocol header"),
    BAD("v2 signature byte 2", "\r\r\r\n\0\r\nQUIT\n\x21\x11\x00\x0c" V4, "\r\r",
        "not a proxy protocol header"),
    BAD("v2 signature byte 5", "\r\n\r\n\x01\r\nQUIT\n\x21\x11\x00\x0c" V4, "\r\n\r\n\x01",
        "not a proxy protocol header"),
    BAD("v2 signature byte 12", "\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x0c" V4, "\r\n\r\n\0\r\nQUIT\r",
        "not a proxy protocol header"),
    BAD("v2 lower-case quit", "\r\n\r\n\0\r\nquit\n\x21\x11\x00\x0c" V4, "\r\n\r\n\0\r\nq",
        "not a proxy protocol header"),

    /* v1 fields. */
    BAD("lower-case protocol", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY t", "v1: bad protocol"),
    BAD("TCP5", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP5", "v1: bad protocol"),
    BAD("TCP", "PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP ", "v1: bad protocol"),
    BAD("TCP4X", "PROXY TCP4X 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4X", "v1: bad protocol"),
    BAD("UNKNOWNX", "PROXY UNKNOWNX\r\n", "PROXY UNKNOWNX", "v1: bad protocol"),
    BAD("UNKNOW", "PROXY UNKNOW\r\n", "PROXY UNKNOW\r", "v1: bad protocol"),
    BAD("empty line", "PROXY \r\n", "PROXY \r", "v1: empty field"),
    BAD("double space after PROXY", "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY  ",
        "v1: empty field"),
    BAD("double space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4  ", "v1: empty field"),
    BAD("double space between ports", "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1  ", "v1: empty field"),
    BAD("empty last field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 \r",
        "v1: empty field"),
    BAD("missing field", "PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 80\r",
        "v1: missing field"),
    BAD("only a protocol", "PROXY TCP6\r\n", "PROXY TCP6\r", "v1: missing field"),
    BAD("extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 80 81 82\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 81 ", "v1: extra field"),
    BAD("trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 80 81 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 81 ", "v1: extra field"),
    BAD("port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 65536",
        "v1: bad source port"),
    BAD("port 99999", "PROXY TCP4 1.2.3.4 5.6.7.8 80 99999\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 99999", "v1: bad destination port"),
    BAD("port of six digits", "PROXY TCP4 1.2.3.4 5.6.7.8 80 100000\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 100000", "v1: bad destination port"),
    BAD("port 080", "PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 08",
        "v1: bad source port"),
    BAD("port 00", "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 00",
        "v1: bad destination port"),
    BAD("port +80", "PROXY TCP4 1.2.3.4 5.6.7.8 +80 80\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 +",
        "v1: bad source port"),
    BAD("port -1", "PROXY TCP4 1.2.3.4 5.6.7.8 80 -1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 80 -",
        "v1: bad destination port"),
    BAD("port in hex", "PROXY TCP4 1.2.3.4 5.6.7.8 0x50 80\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 0x",
        "v1: bad source port"),
    BAD("IPv4 1.2.3.256", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.256 ",
        "v1: bad source address"),
    BAD("IPv4 of three parts", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3 ",
        "v1: bad source address"),
    BAD("IPv4 leading zero", "PROXY TCP4 1.2.3.4 05.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4 05.6.7.8 ",
        "v1: bad destination address"),
    BAD("IPv4 too long", "PROXY TCP4 1.2.3.4 1.2.3.4.5.6.7.8.9 1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4.5.6.7.8.", "v1: bad destination address"),
    BAD("IPv4 address in TCP6", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "PROXY TCP6 1.2.3.4 ",
        "v1: bad source address"),
    BAD("IPv6 address in TCP4", "PROXY TCP4 ::1 1.2.3.4 1 2\r\n",
        "PROXY TCP4 :", "v1: bad source address"),
    BAD("IPv6 with a zone", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "PROXY TCP6 fe80::1%",
        "v1: bad source address"),
    BAD("IPv6 :::", "PROXY TCP6 ::1 1:::2 1 2\r\n", "PROXY TCP6 ::1 1:::2 ",
        "v1: bad destination address"),
    BAD("IPv6 in brackets", "PROXY TCP6 [::1] ::1 1 2\r\n", "PROXY TCP6 [",
        "v1: bad source address"),
    BAD("host name", "PROXY TCP4 localhost 1.2.3.4 1 2\r\n", "PROXY TCP4 l",
        "v1: bad source address"),

    /* v1 line ends and bytes. */
    BAD("bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "v1: bare lf"),
    BAD("LF CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "v1: bare lf"),
    BAD("CR without LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        "v1: cr without lf"),
    BAD("CR CR LF", "PROXY UNKNOWN\r\r\n", "PROXY UNKNOWN\r\r", "v1: cr without lf"),
    BAD("NUL in a v1 line", "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4\0",
        "v1: not printable ascii"),
    BAD("NUL after UNKNOWN", "PROXY UNKNOWN \0\r\n", "PROXY UNKNOWN \0", "v1: not printable ascii"),
    BAD("tab", "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4\t", "v1: not printable ascii"),
    BAD("DEL", "PROXY UNKNOWN \x7f\r\n", "PROXY UNKNOWN \x7f", "v1: not printable ascii"),
    BAD("byte over 0x7f", "PROXY UNKNOWN \xc3\xa9\r\n", "PROXY UNKNOWN \xc3",
        "v1: not printable ascii"),
    /* The first fault in the line names it, however the bytes arrive. */
    BAD("bad field before NUL", "PROXY TCP4 ::1\0\r\n", "PROXY TCP4 :", "v1: bad source address"),

    /* v2 fixed bytes. */
    BAD("v2 version 1", SIG "\x11\x11\x00\x0c" V4, SIG "\x11", "v2: bad version"),
    BAD("v2 version 3", SIG "\x31\x11\x00\x0c" V4, SIG "\x31", "v2: bad version"),
    BAD("v2 version 0", SIG "\x01\x11\x00\x0c" V4, SIG "\x01", "v2: bad version"),
    BAD("v2 command 2", SIG "\x22\x11\x00\x0c" V4, SIG "\x22", "v2: bad command"),
    BAD("v2 command 15", SIG "\x2f\x11\x00\x0c" V4, SIG "\x2f", "v2: bad command"),
    BAD("v2 UDP over IPv4", SIG "\x21\x12\x00\x0c" V4, SIG "\x21\x12", "v2: udp family"),
    BAD("v2 UDP over IPv6", SIG "\x21\x22\x00\x24", SIG "\x21\x22", "v2: udp family"),
    BAD("v2 UNIX datagram", SIG "\x21\x32\x00\x00", SIG "\x21\x32", "v2: udp family"),
    BAD("v2 family 4", SIG "\x21\x41\x00\x0c" V4, SIG "\x21\x41", "v2: bad family"),
    BAD("v2 transport 3", SIG "\x21\x13\x00\x0c" V4, SIG "\x21\x13", "v2: bad family"),
    BAD("v2 UNSPEC with TCP", SIG "\x21\x01\x00\x00", SIG "\x21\x01", "v2: bad family"),
    BAD("v2 IPv4 block of 11", SIG "\x21\x11\x00\x0b" V4, SIG "\x21\x11\x00\x0b",
        "v2: address block too short"),
    BAD("v2 IPv4 block of 0", SIG "\x21\x11\x00\x00", SIG "\x21\x11\x00\x00",
        "v2: address block too short"),
    BAD("v2 IPv6 block of 35", SIG "\x21\x21\x00\x23", SIG "\x21\x21\x00\x23",
        "v2: address block too short"),
    BAD("v2 UNIX block of 215", SIG "\x21\x31\x00\xd7", SIG "\x21\x31\x00\xd7",
        "v2: address block too short"),
    BAD("v2 length over the max", SIG "\x21\x11\x0f\xf1" V4, SIG "\x21\x11\x0f\xf1",
        "v2: header too long"),

    /* v2 TLVs. */
    BAD("v2 truncated TLV value", SIG "\x21\x11\x00\x11" V4 "\x04\x00\x03\x01\x02",
        SIG "\x21\x11\x00\x11" V4 "\x04\x00\x03", "v2: truncated tlv"),
    BAD("v2 TLV value past the end", SIG "\x21\x11\x00\x0f" V4 "\x04\x00\x01",
        SIG "\x21\x11\x00\x0f" V4 "\x04\x00\x01", "v2: truncated tlv"),
    BAD("v2 TLV header of 2", SIG "\x21\x11\x00\x0e" V4 "\x04\x00", SIG "\x21\x11\x00\x0e",
        "v2: truncated tlv"),
    BAD("v2 TLV header of 1", SIG "\x21\x00\x00\x01\x04", SIG "\x21\x00\x00\x01",
        "v2: truncated tlv"),
    BAD("v2 second TLV truncated", SIG "\x21\x11\x00\x14" V4 "\x04\x00\x01z\x04\x00\x02z",
        SIG "\x21\x11\x00\x14" V4 "\x04\x00\x01z\x04\x00\x02", "v2: truncated tlv"),
    BAD("v2 CRC32C of 3 bytes", SIG "\x21\x11\x00\x12" V4 "\x03\x00\x03\x01\x02\x03",
        SIG "\x21\x11\x00\x12" V4 "\x03\x00\x03", "v2: bad crc32c length"),
    BAD("v2 CRC32C of 5 bytes", SIG "\x21\x11\x00\x14" V4 "\x03\x00\x05\x20\xec\x95\x49\x00",
        SIG "\x21\x11\x00\x14" V4 "\x03\x00\x05", "v2: bad crc32c length"),
    BAD("v2 two CRC32Cs",
        SIG "\x21\x11\x00\x1a" V4 "\x03\x00\x04\x20\xec\x95\x49\x03\x00\x04\x20\xec\x95\x49",
        SIG "\x21\x11\x00\x1a" V4 "\x03\x00\x04\x20\xec\x95\x49\x03\x00\x04",
        "v2: two crc32c tlvs"),
    BAD("v2 zero CRC32C", SIG "\x21\x11\x00\x13" V4 "\x03\x00\x04\x00\x00\x00\x00",
        SIG "\x21\x11\x00\x13" V4 "\x03\x00\x04\x00\x00\x00\x00", "v2: crc32c mismatch"),
};

START_TEST(test_invalid)
{
    const struct bad *b = &bad[_i];
    ck_assert_msg(memcmp(b->bytes, b->prefix, b->at) == 0, "%s: the table's prefix is not one",
                  b->name);
    check_bad(b->name, b->bytes, b->len, b->at, b->why);
}
END_TEST

/* Longer than 107 bytes without a CRLF in them: refused at byte 107,
 * whether no CR came at all or the CR came as the 107th byte. */
START_TEST(test_invalid_v1_long)
{
    char line[160];
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    check_bad("no CRLF", line, sizeof(line), PROXY_V1_MAX, "v1: no crlf within 107 bytes");
    line[PROXY_V1_MAX - 1] = '\r';
    line[PROXY_V1_MAX] = '\n';
    check_bad("CRLF at 107", line, PROXY_V1_MAX + 1, PROXY_V1_MAX, "v1: no crlf within 107 bytes");
    /* One byte shorter fits. */
    line[PROXY_V1_MAX - 2] = '\r';
    line[PROXY_V1_MAX - 1] = '\n';
    struct want w = {1, true, NULL, 0, NULL, 0};
    check_good("CRLF at 106", line, PROXY_V1_MAX, &w);
}
END_TEST

START_TEST(test_parse_empty_and_null_why)
{
    struct proxy_addr out;
    size_t consumed = 7;
    ck_assert_int_eq(proxy_parse("", 0, &out, &consumed, NULL), PROXY_NEED_MORE);
    ck_assert_int_eq(proxy_parse("GET", 3, &out, &consumed, NULL), PROXY_INVALID);
    ck_assert_int_eq(proxy_parse(SIG "\x21\x12", 14, &out, &consumed, NULL), PROXY_INVALID);
    ck_assert_uint_eq(consumed, 7);
}
END_TEST

static Suite *proxy_proto_suite(void)
{
    Suite *s = suite_create("proxy_proto");
    TCase *tc = tcase_create("write");
    tcase_add_test(tc, test_write_v1_ipv4);
    tcase_add_test(tc, test_write_v1_ipv6);
    tcase_add_test(tc, test_write_v2_ipv4);
    tcase_add_test(tc, test_write_v2_ipv6);
    tcase_add_test(tc, test_write_mixed);
    tcase_add_test(tc, test_write_mapped);
    tcase_add_test(tc, test_write_local);
    tcase_add_test(tc, test_write_cap);
    tcase_add_test(tc, test_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_v1);
    tcase_add_test(tc, test_parse_v2);
    tcase_add_test(tc, test_parse_v2_unix);
    tcase_add_test(tc, test_parse_v2_tlvs);
    tcase_add_test(tc, test_parse_v2_max);
    tcase_add_test(tc, test_parse_v2_crc_mismatch);
    tcase_add_test(tc, test_parse_v2_local_ignores_its_block);
    tcase_add_test(tc, test_parse_empty_and_null_why);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid");
    tcase_add_loop_test(tc, test_invalid, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, test_invalid_v1_long);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(proxy_proto_suite)
