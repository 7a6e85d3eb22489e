/* test_tls_hello: the ClientHello reader, asserted on hellos built here
 * (whole, split over records of 1, 7 and 100 bytes, fed one byte at a
 * time), on one curl 7.88 sent, and, for each malformed shape, the exact
 * length at which it is refused and the reason given. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lb/proto/tls_hello.h"
#include "tests/test.h"

#define CHECK(expr, ...)                                                                           \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

#define BUFSZ 70000

static uint8_t *put16(uint8_t *p, unsigned v)
{
    *p++ = (uint8_t)(v >> 8);
    *p++ = (uint8_t)v;
    return p;
}

/* A server_name extension holding host_name name: its bytes at e. */
static size_t sni_ext(uint8_t *e, const char *name)
{
    size_t n = strlen(name);
    uint8_t *p = put16(e, 0);
    p = put16(p, (unsigned)n + 5);
    p = put16(p, (unsigned)n + 3);
    *p++ = 0;
    p = put16(p, (unsigned)n);
    memcpy(p, name, n);
    return (size_t)(p + n - e);
}

/* A ClientHello message, its 4-byte header included: legacy_version
 * 0x0303, a random of 0x11 bytes, a session id of sid bytes, two cipher
 * suites, the null compression method, then, when ext is not NULL, the
 * extensions block: a 2-byte length and ext_len bytes. */
static size_t msg(uint8_t *m, size_t sid, const uint8_t *ext, size_t ext_len)
{
    uint8_t *p = m + 4;
    p = put16(p, 0x0303);
    memset(p, 0x11, 32);
    p += 32;
    *p++ = (uint8_t)sid;
    memset(p, 0x22, sid);
    p += sid;
    p = put16(p, 4);
    p = put16(p, 0x1301);
    p = put16(p, 0xc02f);
    *p++ = 1;
    *p++ = 0;
    if (ext) {
        p = put16(p, (unsigned)ext_len);
        memcpy(p, ext, ext_len);
        p += ext_len;
    }
    size_t body = (size_t)(p - m) - 4;
    m[0] = 1;
    m[1] = (uint8_t)(body >> 16);
    m[2] = (uint8_t)(body >> 8);
    m[3] = (uint8_t)body;
    return (size_t)(p - m);
}

/* The message m[0..n) in handshake records of frag bytes each (the last
 * shorter): their bytes at out, record version 0x0301. */
static size_t records(uint8_t *out, const uint8_t *m, size_t n, size_t frag)
{
    uint8_t *p = out;
    for (size_t off = 0; off < n; off += frag) {
        size_t k = n - off < frag ? n - off : frag;
        *p++ = 22;
        p = put16(p, 0x0301);
        p = put16(p, (unsigned)k);
        memcpy(p, m + off, k);
        p += k;
    }
    return (size_t)(p - out);
}

/* A hello with extensions ext[0..ext_len) in one record: its bytes at out. */
static size_t hello(uint8_t *out, const uint8_t *ext, size_t ext_len)
{
    static uint8_t m[BUFSZ];
    return records(out, m, msg(m, 32, ext, ext_len), 16384);
}

/* b[0..n) is a whole ClientHello naming name (NULL: none): every shorter
 * prefix needs more, the whole reads OK, hello_len n. */
static void check_ok(const char *what, const uint8_t *b, size_t n, const char *name)
{
    struct tls_hello h;
    const char *why = NULL;
    for (size_t i = 0; i < n; i++)
        CHECK(tls_hello_parse(b, i, &h, &why) == TLS_HELLO_NEED_MORE,
              "%s: prefix of %zu bytes: not NEED_MORE (%s)", what, i, why ? why : "-");
    CHECK(tls_hello_parse(b, n, &h, &why) == TLS_HELLO_OK, "%s: not OK: %s", what, why ? why : "-");
    CHECK(h.hello_len == n, "%s: hello_len %zu, want %zu", what, h.hello_len, n);
    CHECK(h.version == 0x0303, "%s: version %04x", what, h.version);
    if (name) {
        CHECK(h.has_server_name, "%s: no server name", what);
        CHECK(strcmp(h.server_name, name) == 0, "%s: server name '%s', want '%s'", what,
              h.server_name, name);
    } else {
        CHECK(!h.has_server_name && h.server_name[0] == '\0', "%s: a server name '%s'", what,
              h.server_name);
    }
}

/* b[0..n) is refused with reason once its first at bytes are in: every
 * shorter prefix needs more, and every longer one, n included, gets the
 * same reason. */
static void check_bad(const char *what, const uint8_t *b, size_t n, size_t at, const char *reason)
{
    struct tls_hello h;
    CHECK(at <= n, "%s: the test's at %zu is past its %zu bytes", what, at, n);
    for (size_t i = 0; i <= n; i++) {
        const char *why = NULL;
        enum tls_hello_result rc = tls_hello_parse(b, i, &h, &why);
        if (i < at) {
            CHECK(rc == TLS_HELLO_NEED_MORE, "%s: prefix of %zu bytes: %d (%s), want NEED_MORE",
                  what, i, rc, why ? why : "-");
        } else {
            CHECK(rc == TLS_HELLO_INVALID, "%s: prefix of %zu bytes: %d, want INVALID", what, i,
                  rc);
            CHECK(why && strcmp(why, reason) == 0, "%s: at %zu bytes: reason '%s', want '%s'", what,
                  i, why ? why : "(null)", reason);
        }
    }
}

/* ---- valid hellos ---- */

static const uint8_t curl_hello[] =
    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xce\x76\x83\x5a\x57"
    "\x0a\xa8\xde\x09\xd2\xe8\x06\x21\x46\xac\x4a\x6c\x51\xb3\x0b\xc9"
    "\x8b\x82\xa8\xdd\xea\x99\x22\x85\x5a\x6e\x73\x20\x0a\x3f\xb0\x40"
    "\xc9\x6e\x2b\x0f\x98\xbc\xc6\x45\xa1\x3c\x9c\xad\xeb\xdb\x62\x7f"
    "\x35\x15\x39\x41\x40\x5f\x03\xde\x98\xc9\xf3\xc6\x00\x3e\x13\x02"
    "\x13\x03\x13\x01\xc0\x2c\xc0\x30\x00\x9f\xcc\xa9\xcc\xa8\xcc\xaa"
    "\xc0\x2b\xc0\x2f\x00\x9e\xc0\x24\xc0\x28\x00\x6b\xc0\x23\xc0\x27"
    "\x00\x67\xc0\x0a\xc0\x14\x00\x39\xc0\x09\xc0\x13\x00\x33\x00\x9d"
    "\x00\x9c\x00\x3d\x00\x3c\x00\x35\x00\x2f\x00\xff\x01\x00\x01\x75"
    "\x00\x00\x00\x14\x00\x12\x00\x00\x0f\x61\x70\x69\x2e\x65\x78\x61"
    "\x6d\x70\x6c\x65\x2e\x63\x6f\x6d\x00\x0b\x00\x04\x03\x00\x01\x02"
    "\x00\x0a\x00\x16\x00\x14\x00\x1d\x00\x17\x00\x1e\x00\x19\x00\x18"
    "\x01\x00\x01\x01\x01\x02\x01\x03\x01\x04\x00\x10\x00\x0e\x00\x0c"
    "\x02\x68\x32\x08\x68\x74\x74\x70\x2f\x31\x2e\x31\x00\x16\x00\x00"
    "\x00\x17\x00\x00\x00\x31\x00\x00\x00\x0d\x00\x2a\x00\x28\x04\x03"
    "\x05\x03\x06\x03\x08\x07\x08\x08\x08\x09\x08\x0a\x08\x0b\x08\x04"
    "\x08\x05\x08\x06\x04\x01\x05\x01\x06\x01\x03\x03\x03\x01\x03\x02"
    "\x04\x02\x05\x02\x06\x02\x00\x2b\x00\x09\x08\x03\x04\x03\x03\x03"
    "\x02\x03\x01\x00\x2d\x00\x02\x01\x01\x00\x33\x00\x26\x00\x24\x00"
    "\x1d\x00\x20\xed\x7a\x73\xa9\x0a\xbd\x9e\xa6\x38\x86\x9e\xf9\x76"
    "\x8b\xce\xc9\x5f\xb2\x5c\x53\xda\x7f\xab\xe0\x6d\x60\x0a\x56\xb3"
    "\x25\x97\x63\x00\x15\x00\xae\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00";

START_TEST(curl_client_hello)
{
    check_ok("curl 7.88", curl_hello, sizeof(curl_hello) - 1, "api.example.com");
}
END_TEST

START_TEST(hello_without_extensions)
{
    static uint8_t b[BUFSZ];
    check_ok("no extensions", b, hello(b, NULL, 0), NULL);
    uint8_t m[200];
    size_t n = msg(m, 0, NULL, 0); /* no session id either */
    check_ok("no session id", b, records(b, m, n, 100), NULL);
}
END_TEST

START_TEST(server_name_lower_cased_among_other_extensions)
{
    static uint8_t b[BUFSZ];
    uint8_t e[600], *p = e;
    p = put16(p, 0x000a); /* supported_groups: x25519 */
    p = put16(p, 4);
    p = put16(p, 2);
    p = put16(p, 0x001d);
    p += sni_ext(p, "Api.Example-1_x.COM");
    p = put16(p, 0x0010); /* ALPN: http/1.1 */
    p = put16(p, 11);
    p = put16(p, 9);
    *p++ = 8;
    memcpy(p, "http/1.1", 8);
    p += 8;
    p = put16(p, 0x0015); /* padding, empty */
    p = put16(p, 0);
    check_ok("sni among others", b, hello(b, e, (size_t)(p - e)), "api.example-1_x.com");
    /* No server_name among extensions. */
    check_ok("extensions without sni", b, hello(b, e, 8), NULL);
    /* An empty extensions block. */
    check_ok("empty extensions", b, hello(b, e, 0), NULL);
    /* A name of 255 bytes, the most. */
    char name[256];
    memset(name, 'a', 255);
    name[255] = '\0';
    check_ok("255-byte name", b, hello(b, e, sni_ext(e, name)), name);
}
END_TEST

START_TEST(split_over_records)
{
    static uint8_t m[BUFSZ], b[BUFSZ];
    uint8_t e[100];
    size_t n = msg(m, 32, e, sni_ext(e, "split.example"));
    size_t frags[] = {1, 2, 7, 100};
    for (unsigned i = 0; i < 4; i++) {
        char what[40];
        snprintf(what, sizeof(what), "records of %zu bytes", frags[i]);
        check_ok(what, b, records(b, m, n, frags[i]), "split.example");
    }
}
END_TEST

START_TEST(other_name_types_skipped)
{
    static uint8_t b[BUFSZ];
    uint8_t e[100], *p = e;
    p = put16(p, 0);
    p = put16(p, 2 + 3 + 2 + 3 + 4);
    p = put16(p, 3 + 2 + 3 + 4);
    *p++ = 7; /* a name type lb does not know, 2 bytes */
    p = put16(p, 2);
    *p++ = 'x';
    *p++ = 'y';
    *p++ = 0;
    p = put16(p, 4);
    memcpy(p, "ab.c", 4);
    p += 4;
    check_ok("unknown name type first", b, hello(b, e, (size_t)(p - e)), "ab.c");
}
END_TEST

START_TEST(bytes_after_the_hello_not_looked_at)
{
    static uint8_t b[BUFSZ];
    uint8_t e[100];
    size_t n = hello(b, e, sni_ext(e, "after.example"));
    memcpy(b + n, "\x17\x03\x03\x00\x05hello", 10); /* early data, say */
    struct tls_hello h;
    ck_assert_int_eq(tls_hello_parse(b, n + 10, &h, NULL), TLS_HELLO_OK);
    ck_assert_uint_eq(h.hello_len, n);
    ck_assert_str_eq(h.server_name, "after.example");
}
END_TEST

/* ---- malformed ---- */

/* Offsets in a one-record hello with a 32-byte session id. */
enum {
    REC_TYPE = 0,
    REC_VER = 1,
    REC_LEN = 3,
    HS_TYPE = 5,
    HS_LEN = 6,
    CL_VER = 9,
    SID_LEN = 43,
    CS_LEN = 76,
    COMP_LEN = 82,
    EXT_LEN = 84,
    EXT0 = 86
};

START_TEST(record_layer_faults)
{
    static uint8_t b[BUFSZ], m[BUFSZ];
    uint8_t e[100];
    size_t n = hello(b, e, sni_ext(e, "a.example"));
    b[REC_TYPE] = 23;
    check_bad("application data record", b, n, 1, "not a TLS handshake record");
    b[REC_TYPE] = 22;
    b[REC_VER] = 2;
    check_bad("record version 2.x", b, n, 2, "bad record version");
    b[REC_VER] = 3;
    put16(b + REC_LEN, 0);
    check_bad("empty record", b, n, 5, "empty handshake record");
    put16(b + REC_LEN, 16385);
    check_bad("record over 16384", b, n, 5, "record too long");
    /* The message's second record is not a handshake one. */
    size_t mn = msg(m, 32, e, sni_ext(e, "a.example"));
    n = records(b, m, mn, 50);
    b[55] = 21;
    check_bad("alert record inside the hello", b, n, 56,
              "client hello continued in a record that is not a handshake");
}
END_TEST

START_TEST(handshake_faults)
{
    static uint8_t b[BUFSZ];
    uint8_t e[100];
    size_t n = hello(b, e, sni_ext(e, "a.example"));
    b[HS_TYPE] = 2;
    check_bad("server hello", b, n, HS_TYPE + 1, "not a client hello");
    b[HS_TYPE] = 1;
    b[HS_LEN] = 0x01; /* 65536 + ... */
    check_bad("message longer than the limit", b, n, HS_LEN + 3, "client hello too long");
    b[HS_LEN] = 0;
    b[CL_VER] = 2;
    check_bad("client version 2.x", b, n, CL_VER + 2, "bad client version");
    b[CL_VER] = 3;
    b[SID_LEN] = 33;
    check_bad("session id of 33", b, n, SID_LEN + 1, "session id too long");
    b[SID_LEN] = 32;
    put16(b + CS_LEN, 3);
    check_bad("odd cipher suites length", b, n, CS_LEN + 2, "bad cipher suites length");
    put16(b + CS_LEN, 0);
    check_bad("no cipher suites", b, n, CS_LEN + 2, "bad cipher suites length");
    put16(b + CS_LEN, 4);
    b[COMP_LEN] = 0;
    check_bad("no compression method", b, n, COMP_LEN + 1, "no compression method");
    b[COMP_LEN] = 1;
    unsigned ext_len = (unsigned)b[EXT_LEN] << 8 | b[EXT_LEN + 1];
    put16(b + EXT_LEN, ext_len - 1);
    check_bad("extensions short of the end", b, n, EXT_LEN + 2,
              "extensions do not fill the client hello");
    put16(b + EXT_LEN, ext_len);
    put16(b + EXT0 + 2, ext_len); /* the extension's own length, past the end */
    check_bad("extension past the end", b, n, EXT0 + 4, "extension beyond the client hello");
}
END_TEST

START_TEST(truncated_messages)
{
    static uint8_t b[BUFSZ];
    /* A message that ends inside its random: its length says 20 bytes. */
    size_t n = hello(b, NULL, 0);
    b[HS_LEN + 2] = 20;
    check_bad("ends in the random", b, n, CL_VER + 2, "truncated client hello");
    /* One that ends right after the compression methods' length. */
    n = hello(b, NULL, 0);
    b[HS_LEN + 2] = (uint8_t)(COMP_LEN + 1 - CL_VER);
    check_bad("ends before its compression method", b, n, COMP_LEN + 1, "truncated client hello");
    /* Extensions whose 2-byte length does not fit. */
    n = hello(b, NULL, 0);
    b[HS_LEN + 2] = (uint8_t)(EXT_LEN + 1 - CL_VER);
    check_bad("one byte of an extensions length", b, n, EXT_LEN, "truncated client hello");
}
END_TEST

START_TEST(server_name_faults)
{
    static uint8_t b[BUFSZ];
    uint8_t e[700], *p;
    size_t k = sni_ext(e, "a.example");
    memcpy(e + k, e, k);
    size_t n = hello(b, e, 2 * k);
    check_bad("server_name twice", b, n, EXT0 + k + 4, "server_name twice");

    char name[300];
    memset(name, 'a', 256);
    name[256] = '\0';
    n = hello(b, e, sni_ext(e, name));
    check_bad("256-byte name", b, n, EXT0 + 9, "bad server name");
    n = hello(b, e, sni_ext(e, ""));
    check_bad("empty name", b, n, EXT0 + 9, "bad server name");
    n = hello(b, e, sni_ext(e, "a b"));
    check_bad("a space", b, n, EXT0 + 9 + 2, "bad server name");
    n = hello(b, e, sni_ext(e, "a\x01"));
    check_bad("a control byte", b, n, EXT0 + 9 + 2, "bad server name");

    /* Two host names in one list. */
    p = e;
    p = put16(p, 0);
    p = put16(p, 2 + 2 * 4);
    p = put16(p, 2 * 4);
    for (int i = 0; i < 2; i++) {
        *p++ = 0;
        p = put16(p, 1);
        *p++ = 'x';
    }
    n = hello(b, e, (size_t)(p - e));
    check_bad("two host names", b, n, EXT0 + 6 + 4 + 3, "two host names in server_name");

    /* A list length that does not match the extension's. */
    k = sni_ext(e, "a.example");
    put16(e + 4, 3);
    n = hello(b, e, k);
    check_bad("list length", b, n, EXT0 + 6, "bad server_name extension");
    /* An entry longer than its list. */
    k = sni_ext(e, "a.example");
    put16(e + 7, 10);
    n = hello(b, e, k);
    check_bad("entry longer than the list", b, n, EXT0 + 9, "bad server_name extension");
    /* An extension too short for a list length. */
    p = put16(e, 0);
    p = put16(p, 1);
    *p++ = 0;
    n = hello(b, e, (size_t)(p - e));
    check_bad("one-byte server_name", b, n, EXT0 + 4, "bad server_name extension");
}
END_TEST

START_TEST(never_need_more_past_the_limit)
{
    /* One-byte records make the wire six times the message: the reader
     * refuses once the bytes it would need pass TLS_HELLO_MAX. */
    static uint8_t m[BUFSZ], b[7 * BUFSZ];
    static uint8_t e[4000];
    uint8_t *p = put16(e, 0x0015); /* padding of 3000 bytes */
    p = put16(p, 3000);
    memset(p, 0, 3000);
    p += 3000;
    size_t n = records(b, m, msg(m, 32, e, (size_t)(p - e)), 1);
    ck_assert_uint_gt(n, TLS_HELLO_MAX);
    struct tls_hello h;
    const char *why = NULL;
    ck_assert_int_eq(tls_hello_parse(b, TLS_HELLO_MAX, &h, &why), TLS_HELLO_INVALID);
    ck_assert_str_eq(why, "client hello too long");
    ck_assert_int_eq(tls_hello_parse(b, n, &h, &why), TLS_HELLO_INVALID);
    for (size_t i = 0; i < TLS_HELLO_MAX; i += 97)
        CHECK(tls_hello_parse(b, i, &h, &why) != TLS_HELLO_OK, "OK at %zu", i);
}
END_TEST

static Suite *tls_hello_suite(void)
{
    Suite *s = suite_create("tls_hello");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, curl_client_hello);
    tcase_add_test(tc, hello_without_extensions);
    tcase_add_test(tc, server_name_lower_cased_among_other_extensions);
    tcase_add_test(tc, split_over_records);
    tcase_add_test(tc, other_name_types_skipped);
    tcase_add_test(tc, bytes_after_the_hello_not_looked_at);
    tcase_add_test(tc, record_layer_faults);
    tcase_add_test(tc, handshake_faults);
    tcase_add_test(tc, truncated_messages);
    tcase_add_test(tc, server_name_faults);
    tcase_add_test(tc, never_need_more_past_the_limit);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(tls_hello_suite)
