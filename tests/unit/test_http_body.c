/* test_http_body: the body framer, asserted exactly: how many bytes belong
 * to each body and its payload, for valid and invalid chunked bodies fed
 * whole, byte by byte and split at every point (the same answer each way),
 * the bounds at their limit and one past it, 1 GiB bodies streamed in
 * 64 KiB pieces, and chunk data stepped over without being read. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lb/proto/http_body.h"
#include "tests/rng.h"
#include "tests/test.h"

#define GIB (1024ULL * 1024 * 1024)
#define PIECE (64 * 1024)

/* ck_assert for loops: Check's ck_assert sends a message to its parent
 * process even when it holds, this one only when it fails. */
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #expr);                                          \
    } while (0)

/* What feeding one input gives: how many bytes the body took (-1 if it was
 * invalid), whether it ended, its payload and the reason it was refused. */
struct outcome {
    ssize_t body;
    bool done;
    uint64_t payload;
    const char *why;
};

/* Feeds in[0..len) to a new framer in pieces cut at cuts[0..ncuts)
 * (ascending), checking the contract on every call: a call that does not
 * end the body takes all it is given, once done every call takes 0 and
 * stays done, http_body_done() agrees, and an invalid body stays invalid
 * with the same reason. */
static struct outcome feed_cuts(enum http_body_kind kind, uint64_t length, const char *in,
                                size_t len, const size_t *cuts, size_t ncuts)
{
    struct http_body b;
    struct outcome o = {.body = -1};
    size_t at = 0;

    http_body_init(&b, kind, length);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        bool done;
        const char *why = NULL;
        ssize_t n = http_body_feed(&b, in + at, end - at, &done, &why);
        if (n < 0) {
            CHECK(n == -1 && why != NULL && !o.done);
            const char *again = NULL;
            CHECK(http_body_feed(&b, "\r\n", 2, &done, &again) == -1 && again == why);
            CHECK(!http_body_done(&b) && http_body_unseen(&b) == 0);
            o.why = why;
            return o;
        }
        CHECK((size_t)n <= end - at);
        CHECK(http_body_done(&b) == done);
        if (o.done)
            CHECK(n == 0 && done);
        else if (done)
            o.body = (ssize_t)(at + n), o.done = true;
        else
            CHECK((size_t)n == end - at);
        at = end;
    }
    if (!o.done)
        o.body = (ssize_t)len;
    o.payload = http_body_payload(&b);
    return o;
}

static bool outcome_same(struct outcome a, struct outcome b)
{
    if (a.body != b.body || a.done != b.done)
        return false;
    if (a.body < 0)
        return strcmp(a.why, b.why) == 0;
    return a.payload == b.payload;
}

static void outcome_assert_same(struct outcome got, struct outcome whole, const char *how,
                                size_t cut)
{
    if (!outcome_same(got, whole))
        ck_abort_msg("fed %s (%zu): body %zd done %d payload %" PRIu64 " (%s); whole: body %zd "
                     "done %d payload %" PRIu64 " (%s)",
                     how, cut, got.body, got.done, got.payload, got.why ? got.why : "-", whole.body,
                     whole.done, whole.payload, whole.why ? whole.why : "-");
}

/* Feeds the input whole, then byte by byte, split at every point (sampled
 * past 1 KiB), split at every pair of points (up to 200 bytes) and in random
 * pieces, and asserts every way gives what feeding it whole gave. Returns
 * that. */
static struct outcome feed_all_ways(enum http_body_kind kind, uint64_t length, const char *in,
                                    size_t len)
{
    struct outcome whole = feed_cuts(kind, length, in, len, NULL, 0);
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    ck_assert_ptr_nonnull(cuts);

    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    outcome_assert_same(feed_cuts(kind, length, in, len, cuts, len ? len - 1 : 0), whole,
                        "byte by byte", 0);
    for (size_t i = 0; i <= len; i++) {
        if (len > 1024 && i % 97 && i > 8 && len - i > 8)
            continue;
        outcome_assert_same(feed_cuts(kind, length, in, len, &i, 1), whole, "split at", i);
    }
    if (len <= 200) {
        for (size_t i = 0; i <= len; i++) {
            for (size_t j = i; j <= len; j++) {
                size_t two[2] = {i, j};
                outcome_assert_same(feed_cuts(kind, length, in, len, two, 2), whole,
                                    "split at two points, the first", i);
            }
        }
    }
    rng_seed(len);
    for (int run = 0; run < 20; run++) {
        size_t ncuts = 0;
        for (size_t at = 1 + rng() % 17; at < len; at += 1 + rng() % 17)
            cuts[ncuts++] = at;
        outcome_assert_same(feed_cuts(kind, length, in, len, cuts, ncuts), whole,
                            "in random pieces, run", (size_t)run);
    }
    free(cuts);
    return whole;
}

/* ---- NONE, LENGTH, UNTIL_CLOSE ---- */

START_TEST(test_none)
{
    struct http_body b;
    bool done = false;
    const char *why = NULL;

    http_body_init(&b, HTTP_BODY_NONE, 99);
    ck_assert(http_body_done(&b));
    ck_assert_int_eq(http_body_feed(&b, "GET / HTTP/1.1\r\n", 16, &done, &why), 0);
    ck_assert(done);
    ck_assert_int_eq(http_body_feed(&b, NULL, 0, &done, &why), 0);
    ck_assert(done);
    ck_assert_ptr_null(why);
    ck_assert_uint_eq(http_body_payload(&b), 0);
    ck_assert_uint_eq(http_body_unseen(&b), 0);

    struct outcome o = feed_all_ways(HTTP_BODY_NONE, 0, "abc", 3);
    ck_assert_int_eq(o.body, 0);
    ck_assert(o.done);
}
END_TEST

START_TEST(test_length)
{
    static const char in[] = "hello worldGET / HTTP/1.1\r\n\r\n";
    struct outcome o = feed_all_ways(HTTP_BODY_LENGTH, 11, in, sizeof(in) - 1);
    ck_assert_int_eq(o.body, 11);
    ck_assert(o.done);
    ck_assert_uint_eq(o.payload, 11);

    /* Exactly the body: done with its last byte. */
    o = feed_all_ways(HTTP_BODY_LENGTH, 11, in, 11);
    ck_assert_int_eq(o.body, 11);
    ck_assert(o.done);

    /* Short of it: all taken, not done. */
    o = feed_all_ways(HTTP_BODY_LENGTH, 12, in, 11);
    ck_assert_int_eq(o.body, 11);
    ck_assert(!o.done);
    ck_assert_uint_eq(o.payload, 11);

    /* Content-Length: 0 is done at once and takes nothing. */
    o = feed_all_ways(HTTP_BODY_LENGTH, 0, in, sizeof(in) - 1);
    ck_assert_int_eq(o.body, 0);
    ck_assert(o.done);

    /* Chunked framing in a LENGTH body is only bytes. */
    static const char framing[] = "0\r\n\r\n";
    o = feed_all_ways(HTTP_BODY_LENGTH, 3, framing, sizeof(framing) - 1);
    ck_assert_int_eq(o.body, 3);
    ck_assert(o.done);
}
END_TEST

START_TEST(test_until_close)
{
    static const char in[] = "HTTP/1.1 200 OK\r\n\r\n0\r\n\r\n";
    struct outcome o = feed_all_ways(HTTP_BODY_UNTIL_CLOSE, 0, in, sizeof(in) - 1);
    ck_assert_int_eq(o.body, sizeof(in) - 1);
    ck_assert(!o.done);
    ck_assert_uint_eq(o.payload, sizeof(in) - 1);

    struct http_body b;
    bool done = true;
    const char *why = NULL;
    http_body_init(&b, HTTP_BODY_UNTIL_CLOSE, 5);
    ck_assert(!http_body_done(&b));
    ck_assert_int_eq(http_body_feed(&b, in, 10, &done, &why), 10);
    ck_assert(!done);
    ck_assert_int_eq(http_body_feed(&b, in, 0, &done, &why), 0);
    ck_assert(!done);
    ck_assert_uint_eq(http_body_payload(&b), 10);
    ck_assert_uint_eq(http_body_unseen(&b), UINT64_MAX);
}
END_TEST

/* ---- CHUNKED: valid bodies ---- */

/* A body, what follows it (not the body's) and the body's payload. The
 * sizes come from sizeof, so a body may hold NUL. */
struct valid_case {
    const char *name;
    const char *body;
    size_t body_len;
    const char *rest;
    size_t rest_len;
    uint64_t payload;
};
#define VALID(name, body, rest, payload)                                                           \
    {                                                                                              \
        name, body, sizeof(body) - 1, rest, sizeof(rest) - 1, payload                              \
    }

static const struct valid_case valid_cases[] = {
    VALID("one chunk", "5\r\nhello\r\n0\r\n\r\n", "", 5),
    VALID("several chunks", "3\r\nabc\r\n5\r\ndefgh\r\n1\r\ni\r\n0\r\n\r\n", "", 9),
    VALID("only the last chunk", "0\r\n\r\n", "", 0),
    VALID("pipelined request after it", "4\r\nWiki\r\n0\r\n\r\n",
          "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 4),
    VALID("framing inside the data is data", "c\r\n0\r\n\r\nGET /x \r\n0\r\n\r\n", "0\r\n\r\n", 12),
    VALID("binary data", "4\r\n\0\r\n\xff\r\n0\r\n\r\n", "\0", 4),
    VALID("upper and lower hex",
          "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n1a\r\n"
          "ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\nB\r\n0123456789a\r\n0\r\n\r\n",
          "", 63),
    VALID("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "", 5),
    VALID("more than 16 digits, leading zeros", "00000000000000000000000001\r\nx\r\n0\r\n\r\n", "",
          1),
    VALID("a 16-digit size", "0000000000000001\r\nx\r\n0\r\n\r\n", "", 1),
    VALID("token extensions", "5;name=value\r\nhello\r\n0;last\r\n\r\n", "", 5),
    VALID("several extensions", "5;a;b=1;c=\"\";!#$%&'*+-.^_`|~=~\r\nhello\r\n0\r\n\r\n", "", 5),
    VALID("quoted extension values", "5;a=\"q v;\\\"x\\\\ =\";b=\"\t\xe9\"\r\nhello\r\n0\r\n\r\n",
          "", 5),
    VALID("BWS around ';' and '='", "5 ; a = b ;c\t;\td=\"x\";e =f\r\nhello\r\n0 ;z\r\n\r\n", "",
          5),
    VALID(
        "trailers",
        "5\r\nhello\r\n0\r\nChecksum: abc\r\nX-Empty:\r\nX-Tab:\tv \tw\t\r\nX-Obs: caf\xc3\xa9\r\n"
        "X-Odd: a:b\"c\"\r\n\r\n",
        "POST / HTTP/1.1\r\n", 5),
    VALID("a trailer after extensions", "2;x=\"y\"\r\nhi\r\n0;x\r\nT: 1\r\n\r\n",
          "\r\nGET / HTTP/1.1\r\n\r\n", 2),
};

START_TEST(test_chunked_valid)
{
    const struct valid_case *c = &valid_cases[_i];
    size_t len = c->body_len + c->rest_len;
    char *in = malloc(len + 1);
    ck_assert_ptr_nonnull(in);
    memcpy(in, c->body, c->body_len);
    memcpy(in + c->body_len, c->rest, c->rest_len);

    struct outcome o = feed_all_ways(HTTP_BODY_CHUNKED, 0, in, len);
    if (o.body != (ssize_t)c->body_len || !o.done || o.payload != c->payload)
        ck_abort_msg("%s: body %zd (want %zu), done %d, payload %" PRIu64 " (want %" PRIu64 "), %s",
                     c->name, o.body, c->body_len, o.done, o.payload, c->payload,
                     o.why ? o.why : "valid");
    free(in);
}
END_TEST

/* Bodies cut short are not invalid: all taken, not done, payload so far. */
START_TEST(test_chunked_incomplete)
{
    static const struct {
        const char *in;
        uint64_t payload, unseen;
    } cases[] = {
        {"", 0, 0},
        {"5", 0, 0},
        {"5\r", 0, 0},
        {"5\r\n", 0, 5},
        {"5\r\nhel", 3, 2},
        {"5\r\nhello", 5, 0},
        {"5\r\nhello\r", 5, 0},
        {"5\r\nhello\r\n", 5, 0},
        {"5\r\nhello\r\n0", 5, 0},
        {"5\r\nhello\r\n0\r\n", 5, 0},
        {"5\r\nhello\r\n0\r\nX: y\r\n", 5, 0},
        {"5\r\nhello\r\n0\r\n\r", 5, 0},
        {"5;a=\"b", 0, 0},
        {"ffffffffffffffff\r\nabc", 3, UINT64_MAX - 3},
        {"FFFFFFFFFFFFFFFF;big\r\n", 0, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].in);
        struct outcome o = feed_all_ways(HTTP_BODY_CHUNKED, 0, cases[i].in, len);
        if (o.body != (ssize_t)len || o.done || o.payload != cases[i].payload)
            ck_abort_msg("\"%s\": body %zd done %d payload %" PRIu64 " (%s)", cases[i].in, o.body,
                         o.done, o.payload, o.why ? o.why : "valid");

        struct http_body b;
        bool done;
        const char *why;
        http_body_init(&b, HTTP_BODY_CHUNKED, 0);
        CHECK(http_body_feed(&b, cases[i].in, len, &done, &why) == (ssize_t)len);
        if (http_body_unseen(&b) != cases[i].unseen)
            ck_abort_msg("\"%s\": unseen %" PRIu64, cases[i].in, http_body_unseen(&b));
    }
}
END_TEST

/* ---- CHUNKED: invalid bodies ---- */

struct invalid_case {
    const char *in;
    size_t len;
    const char *why;
};
#define INVALID(in, why)                                                                           \
    {                                                                                              \
        in, sizeof(in) - 1, why                                                                    \
    }

static const struct invalid_case invalid_cases[] = {
    /* After the data: CRLF and nothing else. */
    INVALID("5\r\nhello0\r\n\r\n", "chunk data not followed by CRLF"),
    INVALID("3\r\nhello\r\n0\r\n\r\n", "chunk data not followed by CRLF"),
    INVALID("5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF"),
    INVALID("5\r\nhello\r0\r\n\r\n", "chunk data not followed by CRLF"),
    INVALID("5\r\nhello\r\r\n0\r\n\r\n", "chunk data not followed by CRLF"),
    INVALID("5\r\nhello\n\n0\r\n\r\n", "chunk data not followed by CRLF"),
    INVALID("4\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF"),
    /* Line ends: CRLF exactly. */
    INVALID("5\nhello\n0\n\n", "bare LF in chunk line"),
    INVALID("5;a=b\nhello\r\n0\r\n\r\n", "bare LF in chunk line"),
    INVALID("5\rhello\r\n0\r\n\r\n", "CR without LF in chunk line"),
    INVALID("5\r\r\nhello\r\n0\r\n\r\n", "CR without LF in chunk line"),
    INVALID("5\r\nhello\r\n0\n\r\n", "bare LF in chunk line"),
    INVALID("5\r\nhello\r\n0\r\n\n", "bare LF in trailer section"),
    /* The size: 1*HEXDIG, at most 16 significant digits. */
    INVALID("0x10\r\n", "chunk size is not hex"),
    INVALID("+5\r\n", "chunk size is not hex"),
    INVALID("-5\r\n", "chunk size is not hex"),
    INVALID(" 5\r\n", "chunk size is not hex"),
    INVALID("\t5\r\n", "chunk size is not hex"),
    INVALID("g\r\n", "chunk size is not hex"),
    INVALID("5g\r\n", "chunk size is not hex"),
    INVALID("\r\n", "chunk size is empty"),
    INVALID(";a\r\n", "chunk size is empty"),
    INVALID("5\r\nhello\r\n\r\n", "chunk size is empty"),
    INVALID("10000000000000000\r\n", "chunk size over 16 hex digits"),
    INVALID("ffffffffffffffffff\r\n", "chunk size over 16 hex digits"),
    INVALID("00001ffffffffffffffff\r\n", "chunk size over 16 hex digits"),
    /* BWS only around ';' and '='. */
    INVALID("5 \r\nhello\r\n0\r\n\r\n", "whitespace in chunk line not before ';' or '='"),
    INVALID("5 5\r\n", "whitespace in chunk line not before ';' or '='"),
    INVALID("5;a \r\n", "whitespace in chunk line not before ';' or '='"),
    INVALID("5;a b\r\n", "whitespace in chunk line not before ';' or '='"),
    INVALID("5;a=b \r\n", "whitespace in chunk line not before ';' or '='"),
    INVALID("5;a=\"b\" \r\n", "whitespace in chunk line not before ';' or '='"),
    /* Extensions: ;token[=token|quoted-string]. */
    INVALID("5;\r\nhello\r\n0\r\n\r\n", "bad chunk extension name"),
    INVALID("5;=b\r\n", "bad chunk extension name"),
    INVALID("5;a@b\r\n", "bad chunk extension name"),
    INVALID("5;a;;b\r\n", "bad chunk extension name"),
    INVALID("5;\xe9\r\n", "bad chunk extension name"),
    INVALID("5;a=\r\n", "bad chunk extension value"),
    INVALID("5;a=@\r\n", "bad chunk extension value"),
    INVALID("5;a=b=c\r\n", "bad chunk extension value"),
    INVALID("5;a=\"b\"c\r\n", "bad chunk extension value"),
    INVALID("5;a==b\r\n", "bad chunk extension value"),
    INVALID("5;a=\"abc\r\nhello\r\n0\r\n\r\n", "unterminated quoted-string in chunk extension"),
    INVALID("5;a=\"abc\\\r\n", "unterminated quoted-string in chunk extension"),
    INVALID("5;a=\"ab\nc\"\r\n", "unterminated quoted-string in chunk extension"),
    /* Control bytes in a chunk line. */
    INVALID("\0\r\n", "control byte in chunk line"),
    INVALID("5\0\r\n", "control byte in chunk line"),
    INVALID("5;a\0\r\n", "control byte in chunk line"),
    INVALID("5;a=\"\0\"\r\n", "control byte in chunk line"),
    INVALID("5;a=\"\\\x7f\"\r\n", "control byte in chunk line"),
    INVALID("5;a=b\x7f\r\n", "control byte in chunk line"),
    INVALID("5;a=\x01\r\n", "control byte in chunk line"),
    /* Trailers: header lines, then the final CRLF. */
    INVALID("0\r\nA: b\r\n c\r\n\r\n", "trailer line begins with whitespace (obs-fold)"),
    INVALID("0\r\n\tA: b\r\n\r\n", "trailer line begins with whitespace (obs-fold)"),
    INVALID("0\r\nAbc\r\n\r\n", "trailer field without colon"),
    INVALID("0\r\nA : b\r\n\r\n", "whitespace before colon in trailer field"),
    INVALID("0\r\nA\t: b\r\n\r\n", "whitespace before colon in trailer field"),
    INVALID("0\r\n: b\r\n\r\n", "empty trailer field name"),
    INVALID("0\r\nA(: b\r\n\r\n", "bad trailer field name"),
    INVALID("0\r\n@: b\r\n\r\n", "bad trailer field name"),
    INVALID("0\r\nA: b\0\r\n\r\n", "control byte in trailer field"),
    INVALID("0\r\nA: b\x7f\r\n\r\n", "control byte in trailer field"),
    INVALID("0\r\nA: b\rc\r\n\r\n", "CR without LF in trailer section"),
    INVALID("0\r\nA: b\n\r\n", "bare LF in trailer section"),
    /* Where the final CRLF should be. */
    INVALID("0\r\n\rX", "CR without LF at the end of the chunked body"),
    INVALID("0\r\n\r\r\n", "CR without LF at the end of the chunked body"),
    INVALID("5\r\nhello\r\n0\r\nGET / HTTP/1.1\r\n\r\n",
            "whitespace before colon in trailer field"),
    INVALID("0\r\nHost: a\r\nX\r\n\r\n", "trailer field without colon"),
};

START_TEST(test_chunked_invalid)
{
    const struct invalid_case *c = &invalid_cases[_i];
    struct outcome o = feed_all_ways(HTTP_BODY_CHUNKED, 0, c->in, c->len);
    if (o.body != -1 || strcmp(o.why, c->why) != 0)
        ck_abort_msg("case %d \"%s\": body %zd, %s (want %s)", _i, c->in, o.body,
                     o.why ? o.why : "valid", c->why);
}
END_TEST

/* A body is refused at its first byte that cannot be right, not later:
 * everything before it is taken, and nothing is forwarded past it. */
START_TEST(test_chunked_refused_where)
{
    static const struct {
        const char *in;
        size_t at; /* the first bad byte */
    } cases[] = {
        {"3\r\nhello\r\n0\r\n\r\n", 6},
        {"5\r\nhello0\r\n", 8},
        {"5\r\nhelloX\n", 8},
        {"5\r\nhello\rX", 9},
        {"5\nhello", 1},
        {"5\rhello", 2},
        {"0x10\r\n", 1},
        {"10000000000000000\r\n", 16},
        {"5 \r\n", 2},
        {"5;a=\"b\r\n", 6},
        {"0\r\nA : b\r\n\r\n", 4},
        {"0\r\nA: b\r\n c\r\n", 9},
        {"0\r\n\rX", 4},
        {"0\r\nAbc\r\n\r\n", 6},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t at = cases[i].at;
        struct outcome o = feed_all_ways(HTTP_BODY_CHUNKED, 0, cases[i].in, at);
        if (o.body != (ssize_t)at || o.done)
            ck_abort_msg("\"%s\": its first %zu bytes: body %zd done %d (%s)", cases[i].in, at,
                         o.body, o.done, o.why ? o.why : "valid");
        o = feed_all_ways(HTTP_BODY_CHUNKED, 0, cases[i].in, at + 1);
        if (o.body != -1)
            ck_abort_msg("\"%s\": its first %zu bytes: body %zd, not refused", cases[i].in, at + 1,
                         o.body);
    }
}
END_TEST

/* ---- CHUNKED: the bounds, at their limit and one past ---- */

/* A buffer of text built from pieces. */
struct text {
    char *p;
    size_t len;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    t->p = realloc(t->p, t->len + n);
    ck_assert_ptr_nonnull(t->p);
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void text_str(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

static void text_repeat(struct text *t, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        text_add(t, &c, 1);
}

/* "<zeros>5<ext>\r\nhello\r\n" with a chunk line of exactly line_len bytes,
 * its CRLF included: zeros, or an extension value, fill it. */
static void text_chunk_line(struct text *t, size_t line_len, bool ext)
{
    if (ext) {
        text_str(t, "5;a=");
        text_repeat(t, 'v', line_len - 6);
    } else {
        text_repeat(t, '0', line_len - 3);
        text_str(t, "5");
    }
    text_str(t, "\r\nhello\r\n");
}

static struct outcome feed_text(struct text *t)
{
    struct outcome o = feed_all_ways(HTTP_BODY_CHUNKED, 0, t->p, t->len);
    free(t->p);
    t->p = NULL;
    t->len = 0;
    return o;
}

START_TEST(test_chunked_line_bound)
{
    struct text t = {0};
    for (int ext = 0; ext < 2; ext++) {
        /* Two chunks with lines at the bound: the count starts again per line. */
        text_chunk_line(&t, HTTP_BODY_LINE_MAX, ext);
        text_chunk_line(&t, HTTP_BODY_LINE_MAX, ext);
        text_str(&t, "0\r\n\r\n");
        struct outcome o = feed_text(&t);
        ck_assert_int_eq(o.body, 2 * (HTTP_BODY_LINE_MAX + 7) + 5);
        ck_assert(o.done);
        ck_assert_uint_eq(o.payload, 10);

        text_chunk_line(&t, HTTP_BODY_LINE_MAX + 1, ext);
        o = feed_text(&t);
        ck_assert_int_eq(o.body, -1);
        ck_assert_str_eq(o.why, "chunk line over 4 KiB");
    }

    /* The last chunk's line too. */
    text_repeat(&t, '0', HTTP_BODY_LINE_MAX - 2);
    text_str(&t, "\r\n\r\n");
    struct outcome o = feed_text(&t);
    ck_assert_int_eq(o.body, HTTP_BODY_LINE_MAX + 2);
    ck_assert(o.done);
    text_repeat(&t, '0', HTTP_BODY_LINE_MAX - 1);
    text_str(&t, "\r\n\r\n");
    o = feed_text(&t);
    ck_assert_int_eq(o.body, -1);
    ck_assert_str_eq(o.why, "chunk line over 4 KiB");

    /* A line that never ends is refused at the bound, not read on. */
    text_str(&t, "5;a=\"");
    text_repeat(&t, 'q', 3 * HTTP_BODY_LINE_MAX);
    o = feed_text(&t);
    ck_assert_int_eq(o.body, -1);
    ck_assert_str_eq(o.why, "chunk line over 4 KiB");
}
END_TEST

START_TEST(test_chunked_trailer_bound)
{
    struct text t = {0};

    /* One long field: "0\r\n" + "X: " + value + "\r\n" + "\r\n", the
     * section being all but the "0\r\n". */
    for (size_t over = 0; over < 2; over++) {
        text_str(&t, "0\r\nX: ");
        text_repeat(&t, 'a', HTTP_BODY_TRAILER_MAX - 7 + over);
        text_str(&t, "\r\n\r\n");
        struct outcome o = feed_text(&t);
        if (!over) {
            ck_assert_int_eq(o.body, 3 + HTTP_BODY_TRAILER_MAX);
            ck_assert(o.done);
        } else {
            ck_assert_int_eq(o.body, -1);
            ck_assert_str_eq(o.why, "trailer section over 16 KiB");
        }
    }

    /* Many short fields add up to the same bound. */
    text_str(&t, "0\r\n");
    for (int i = 0; i < 40; i++) {
        text_str(&t, "X: ");
        text_repeat(&t, 'b', 500);
        text_str(&t, "\r\n");
    }
    text_str(&t, "\r\n");
    struct outcome o = feed_text(&t);
    ck_assert_int_eq(o.body, -1);
    ck_assert_str_eq(o.why, "trailer section over 16 KiB");

    /* At most HTTP_BODY_TRAILER_FIELDS_MAX fields. */
    for (int over = 0; over < 2; over++) {
        text_str(&t, "0\r\n");
        for (int i = 0; i < HTTP_BODY_TRAILER_FIELDS_MAX + over; i++)
            text_str(&t, "A: b\r\n");
        text_str(&t, "\r\n");
        o = feed_text(&t);
        if (!over) {
            ck_assert_int_eq(o.body, 3 + 6 * HTTP_BODY_TRAILER_FIELDS_MAX + 2);
            ck_assert(o.done);
        } else {
            ck_assert_int_eq(o.body, -1);
            ck_assert_str_eq(o.why, "too many trailer fields");
        }
    }
}
END_TEST

/* ---- skipping bytes moved unseen (splice) ---- */

START_TEST(test_skip)
{
    struct http_body b;
    bool done;
    const char *why = NULL;

    http_body_init(&b, HTTP_BODY_LENGTH, 10);
    ck_assert_uint_eq(http_body_unseen(&b), 10);
    ck_assert_int_eq(http_body_feed(&b, "abc", 3, &done, &why), 3);
    ck_assert_uint_eq(http_body_unseen(&b), 7);
    ck_assert(!http_body_skip(&b, 6));
    ck_assert(http_body_skip(&b, 1));
    ck_assert(http_body_done(&b));
    ck_assert_uint_eq(http_body_payload(&b), 10);
    ck_assert_int_eq(http_body_feed(&b, "x", 1, &done, &why), 0);
    ck_assert(done);

    http_body_init(&b, HTTP_BODY_UNTIL_CLOSE, 0);
    ck_assert(!http_body_skip(&b, 1000));
    ck_assert_uint_eq(http_body_payload(&b), 1000);
    ck_assert_uint_eq(http_body_unseen(&b), UINT64_MAX);

    /* Chunked: only the data may be skipped, and the CRLF after it is
     * still checked. */
    http_body_init(&b, HTTP_BODY_CHUNKED, 0);
    ck_assert_uint_eq(http_body_unseen(&b), 0);
    ck_assert_int_eq(http_body_feed(&b, "a\r\nhel", 6, &done, &why), 6);
    ck_assert_uint_eq(http_body_unseen(&b), 7);
    ck_assert(!http_body_skip(&b, 7));
    ck_assert_uint_eq(http_body_unseen(&b), 0);
    ck_assert(!http_body_skip(&b, 0));
    ck_assert_int_eq(http_body_feed(&b, "\r\n2\r\n", 5, &done, &why), 5);
    ck_assert(!http_body_skip(&b, 2));
    ck_assert_int_eq(http_body_feed(&b, "\r\n0\r\n", 5, &done, &why), 5);
    /* At framing, skipping 0 changes nothing: the final CRLF still ends it. */
    ck_assert(!http_body_skip(&b, 0));
    ck_assert_int_eq(http_body_feed(&b, "\r\nGET", 5, &done, &why), 2);
    ck_assert(done);
    ck_assert_uint_eq(http_body_payload(&b), 12);
    ck_assert(http_body_skip(&b, 0));

    http_body_init(&b, HTTP_BODY_CHUNKED, 0);
    ck_assert_int_eq(http_body_feed(&b, "3\r\n", 3, &done, &why), 3);
    ck_assert(!http_body_skip(&b, 3));
    ck_assert_int_eq(http_body_feed(&b, "x\r\n", 3, &done, &why), -1);
    ck_assert_str_eq(why, "chunk data not followed by CRLF");
}
END_TEST

/* ---- large bodies in 64 KiB pieces, O(1) memory ---- */

START_TEST(test_length_1gib)
{
    static char piece[PIECE];
    const uint64_t length = GIB + 12345; /* ends inside a piece */
    struct http_body b;
    uint64_t fed = 0, body = 0;
    bool done = false;
    const char *why = NULL;

    memset(piece, 'x', sizeof(piece));
    http_body_init(&b, HTTP_BODY_LENGTH, length);
    while (!done) {
        ssize_t n = http_body_feed(&b, piece, sizeof(piece), &done, &why);
        CHECK(n >= 0);
        fed += sizeof(piece);
        body += (uint64_t)n;
        CHECK(done == (fed >= length));
        CHECK((uint64_t)n == (done ? sizeof(piece) - (fed - length) : sizeof(piece)));
    }
    ck_assert_uint_eq(body, length);
    ck_assert_uint_eq(http_body_payload(&b), length);
    ck_assert_int_eq(http_body_feed(&b, piece, sizeof(piece), &done, &why), 0);
}
END_TEST

/* A chunked body made as it is fed: random chunk sizes (many tiny, many
 * large), size lines with leading zeros and extensions now and then, a
 * trailer, then a pipelined request. Chunk data is whatever the buffer
 * held, framing-like text included. */
struct chunked_gen {
    uint64_t payload_left; /* of the chunks not begun */
    uint64_t data_left;    /* of the current chunk */
    uint64_t body_len;     /* bytes of the body made so far */
    char frame[160];
    size_t frame_len, frame_at;
    int stage; /* 0: chunks, 1: the request after the body, 2: the end */
    bool chunks;
};

static bool gen_frame(struct chunked_gen *g)
{
    const char *crlf = g->chunks ? "\r\n" : "";
    int n;

    if (g->stage == 0 && g->payload_left) {
        uint64_t size = rng() % 2 ? 1 + rng() % 64 : 1 + rng() % (2 * 1024 * 1024);
        if (size > g->payload_left)
            size = g->payload_left;
        const char *ext = rng() % 3 ? "" : rng() % 2 ? ";name=token" : " ; q = \"a \\\" b\"";
        n = snprintf(g->frame, sizeof(g->frame), "%s%0*" PRIx64 "%s\r\n", crlf,
                     (int)(rng() % 4 ? 1 : rng() % 30), size, ext);
        g->data_left = size;
        g->payload_left -= size;
        g->body_len += (uint64_t)n + size;
        g->chunks = true;
    } else if (g->stage == 0) {
        n = snprintf(g->frame, sizeof(g->frame), "%s0;end=1\r\nTrailer-Sum: 42\r\n\r\n", crlf);
        g->body_len += (uint64_t)n;
        g->stage = 1;
    } else if (g->stage == 1) {
        n = snprintf(g->frame, sizeof(g->frame), "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        g->stage = 2;
    } else {
        return false;
    }
    g->frame_len = (size_t)n;
    g->frame_at = 0;
    return true;
}

/* Fills buf with up to cap more bytes of the stream; 0 at its end. */
static size_t gen_fill(struct chunked_gen *g, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        size_t k;
        if (g->frame_at < g->frame_len) {
            k = g->frame_len - g->frame_at < cap - n ? g->frame_len - g->frame_at : cap - n;
            memcpy(buf + n, g->frame + g->frame_at, k);
            g->frame_at += k;
        } else if (g->data_left) {
            k = g->data_left < cap - n ? (size_t)g->data_left : cap - n;
            g->data_left -= k;
        } else if (gen_frame(g)) {
            continue;
        } else {
            break;
        }
        n += k;
    }
    return n;
}

START_TEST(test_chunked_1gib)
{
    static char piece[PIECE];
    struct chunked_gen g = {.payload_left = GIB};
    struct http_body b;
    uint64_t body = 0;
    size_t n, pieces = 0, after = 0;
    bool done = false;
    const char *why = NULL;

    for (size_t i = 0; i < sizeof(piece); i++)
        piece[i] = "0\r\n\r\n;x\n"[i % 9];
    rng_seed(1);
    http_body_init(&b, HTTP_BODY_CHUNKED, 0);
    while ((n = gen_fill(&g, piece, sizeof(piece))) > 0) {
        bool was_done = done;
        ssize_t took = http_body_feed(&b, piece, n, &done, &why);
        if (took < 0)
            ck_abort_msg("refused at byte %" PRIu64 ": %s", body, why);
        CHECK(!was_done || took == 0);
        CHECK(done || (size_t)took == n);
        body += (uint64_t)took;
        after += n - (size_t)took;
        pieces++;
    }
    ck_assert(done);
    ck_assert_uint_eq(body, g.body_len);
    ck_assert_uint_eq(after, strlen("GET /next HTTP/1.1\r\nHost: x\r\n\r\n"));
    ck_assert_uint_eq(http_body_payload(&b), GIB);
    ck_assert_uint_gt(pieces, GIB / PIECE);
}
END_TEST

/* ---- chunk data is stepped over, never read ---- */

/* len bytes of address space no byte of which may be read (PROT_NONE),
 * between two readable pages. Returns the start of the unreadable part. */
static char *guarded_map(size_t len, void **map, size_t *map_len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *map_len = page + len + page;
    *map = mmap(NULL, *map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ck_assert_ptr_ne(*map, MAP_FAILED);
    char *p = *map;
    ck_assert_int_eq(mprotect(p, page, PROT_READ | PROT_WRITE), 0);
    ck_assert_int_eq(mprotect(p + page + len, page, PROT_READ | PROT_WRITE), 0);
    return p + page;
}

/* A LENGTH and an UNTIL_CLOSE body of 1 GiB fed in one call over memory
 * that faults when read: counting them reads nothing. */
START_TEST(test_length_unread)
{
    void *map;
    size_t map_len;
    char *data = guarded_map(GIB, &map, &map_len);
    struct http_body b;
    bool done;
    const char *why = NULL;

    http_body_init(&b, HTTP_BODY_LENGTH, GIB - 1);
    ck_assert_int_eq(http_body_feed(&b, data, GIB, &done, &why), GIB - 1);
    ck_assert(done);
    http_body_init(&b, HTTP_BODY_UNTIL_CLOSE, 0);
    ck_assert_int_eq(http_body_feed(&b, data, GIB, &done, &why), GIB);
    ck_assert_uint_eq(http_body_payload(&b), GIB);
    munmap(map, map_len);
}
END_TEST

/* One chunk of 1 GiB whose data faults when read, its framing in the
 * readable pages around it, fed in one call: only the framing is read. */
START_TEST(test_chunked_unread)
{
    static const char line[] = "0000040000000;n=\"v\"\r\n"; /* 1 GiB */
    static const char end[] = "\r\n0\r\nT: 1\r\n\r\nGET";
    void *map;
    size_t map_len;
    char *data = guarded_map(GIB, &map, &map_len);
    struct http_body b;
    bool done;
    const char *why = NULL;

    memcpy(data - (sizeof(line) - 1), line, sizeof(line) - 1);
    memcpy(data + GIB, end, sizeof(end) - 1);
    size_t body = sizeof(line) - 1 + GIB + sizeof(end) - 1 - 3;
    http_body_init(&b, HTTP_BODY_CHUNKED, 0);
    ssize_t n = http_body_feed(&b, data - (sizeof(line) - 1), body + 3, &done, &why);
    if (n < 0)
        ck_abort_msg("refused: %s", why);
    ck_assert_uint_eq((size_t)n, body);
    ck_assert(done);
    ck_assert_uint_eq(http_body_payload(&b), GIB);
    munmap(map, map_len);
}
END_TEST

Suite *http_body_suite(void)
{
    Suite *s = suite_create("http_body");

    TCase *tc = tcase_create("kinds");
    tcase_add_test(tc, test_none);
    tcase_add_test(tc, test_length);
    tcase_add_test(tc, test_until_close);
    tcase_add_test(tc, test_skip);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunked");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_chunked_valid, 0, sizeof(valid_cases) / sizeof(valid_cases[0]));
    tcase_add_test(tc, test_chunked_incomplete);
    tcase_add_loop_test(tc, test_chunked_invalid, 0,
                        sizeof(invalid_cases) / sizeof(invalid_cases[0]));
    tcase_add_test(tc, test_chunked_refused_where);
    tcase_add_test(tc, test_chunked_line_bound);
    tcase_add_test(tc, test_chunked_trailer_bound);
    suite_add_tcase(s, tc);

    tc = tcase_create("large");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_length_1gib);
    tcase_add_test(tc, test_chunked_1gib);
    tcase_add_test(tc, test_length_unread);
    tcase_add_test(tc, test_chunked_unread);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(http_body_suite)
