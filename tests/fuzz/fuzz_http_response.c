/* fuzz_http_response: what lb/http_session.c does with a backend's answer,
 * on any bytes: the response head (http_head_end(), http_response_parse(),
 * http_response_size() and http_response_write()) and the body after it
 * (http_body_feed(), http_body_unseen() and http_body_skip()), framed as the
 * session frames it.
 *
 * Input: byte 0 chooses the request answered (GET, HEAD, or a GET asking
 * for an upgrade) and the Connection lb writes; with its top bit set, the
 * bytes are a body alone, chunked or (bit 6) of a Content-Length taken
 * from the next two bytes. Bytes 1-4 seed the sizes of the pieces the body
 * arrives in. The rest is what the backend sent.
 *
 * Checked, trapping otherwise: a refusal is a documented status (502 for
 * an unasked 101) with a reason; the size is what the writer writes; the head lb writes for the
 * client, parsed again, is the same status with the same framing; and the
 * body's result (the bytes that belong to it, whether it ended, the
 * payload, the reason it is invalid) is the same fed in one piece, fed in
 * the random pieces, and with the data bytes skipped as splice moves them
 * (http_body_skip()) rather than fed. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/proto/http_body.h"
#include "lb/proto/http_head.h"

/* What a body made of the bytes fed. */
struct body_result {
    int64_t taken; /* bytes of the body, or -1 when it is invalid */
    bool done;
    uint64_t payload;
    const char *why;
};

static uint32_t next_piece(uint32_t *seed)
{
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    /* Mostly small pieces (framing split anywhere), sometimes large ones. */
    return *seed % 8 == 0 ? *seed % 4096 + 1 : *seed % 7 + 1;
}

/* Feeds buf[0, len) in pieces (all of it at once when seed is 0); with
 * skip, bytes the framer need not see are skipped, not fed. */
static struct body_result body_run(enum http_body_kind kind, uint64_t length, const char *buf,
                                   size_t len, uint32_t seed, bool skip)
{
    struct http_body b;
    struct body_result r = {0, false, 0, NULL};
    http_body_init(&b, kind, length);
    size_t off = 0;
    r.done = http_body_done(&b);
    while (off < len && !r.done) {
        size_t piece = seed ? next_piece(&seed) : len;
        if (piece > len - off)
            piece = len - off;
        uint64_t unseen = http_body_unseen(&b);
        if (skip && unseen > 0) {
            size_t n = unseen < piece ? (size_t)unseen : piece;
            r.done = http_body_skip(&b, n);
            off += n;
            r.taken += (int64_t)n;
            continue;
        }
        bool done = false;
        const char *why = NULL;
        ssize_t n = http_body_feed(&b, buf + off, piece, &done, &why);
        if (n < 0) {
            if (!why || !*why)
                __builtin_trap();
            r.taken = -1;
            r.why = why;
            r.payload = 0;
            r.done = false;
            return r;
        }
        if ((size_t)n > piece || (n < (ssize_t)piece && !done))
            __builtin_trap(); /* a body that did not end takes every byte */
        off += (size_t)n;
        r.taken += n;
        r.done = done;
        if (done && n < (ssize_t)piece)
            break;
    }
    if (r.done != http_body_done(&b) && kind != HTTP_BODY_UNTIL_CLOSE)
        __builtin_trap();
    r.payload = http_body_payload(&b);
    return r;
}

static void same_result(const struct body_result *a, const struct body_result *b)
{
    if (a->taken != b->taken || a->done != b->done)
        __builtin_trap();
    if (a->taken < 0 ? strcmp(a->why, b->why) != 0 : a->payload != b->payload)
        __builtin_trap();
}

static void check_body(enum http_body_kind kind, uint64_t length, const char *buf, size_t len,
                       uint32_t seed)
{
    struct body_result whole = body_run(kind, length, buf, len, 0, false);
    struct body_result pieces = body_run(kind, length, buf, len, seed | 1, false);
    struct body_result skipped = body_run(kind, length, buf, len, seed | 1, true);
    same_result(&whole, &pieces);
    same_result(&whole, &skipped);
    if (kind == HTTP_BODY_LENGTH && whole.taken >= 0 &&
        (whole.done != (len >= length) || (uint64_t)whole.taken != (len < length ? len : length)))
        __builtin_trap();
}

/* The request the response answers, parsed as the session parsed it. */
static const struct http_head *request_of(unsigned kind)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    };
    static struct http_head reqs[3];
    static bool parsed[3];
    if (!parsed[kind]) {
        const char *why;
        if (http_request_parse(heads[kind], strlen(heads[kind]), &reqs[kind], &why) != 0)
            __builtin_trap();
        parsed[kind] = true;
    }
    return &reqs[kind];
}

static void check_head(const char *buf, size_t len, uint8_t opts, uint32_t seed)
{
    static const char *const connections[] = {NULL, "close", "keep-alive", "upgrade"};
    size_t head_len = http_head_end(buf, len, NULL);
    if (head_len == 0)
        return;
    const struct http_head *req = request_of(opts % 3);
    struct http_head *r = malloc(sizeof(*r));
    struct http_head *again = malloc(sizeof(*again));
    if (!r || !again)
        abort();
    const char *why = NULL;
    int status = http_response_parse(buf, head_len, req, r, &why);
    if (status != 0) {
        if ((status != 400 && status != 431 && status != 501 && status != 502 && status != 505) ||
            !why || !*why)
            __builtin_trap();
        goto out;
    }
    if (r->status < 100 || r->status > 599 || r->head_len != head_len)
        __builtin_trap();

    const char *connection = connections[(opts >> 2) & 3];
    size_t need = http_response_size(buf, r, connection);
    char *out = malloc(need + 1);
    if (!out)
        abort();
    if (need == 0 || http_response_write(buf, r, connection, out, need - 1) != 0 ||
        http_response_write(buf, r, connection, out, need) != need)
        __builtin_trap();
    /* What the client gets is one head with the same status and framing. */
    if (http_head_end(out, need, NULL) != need)
        __builtin_trap();
    status = http_response_parse(out, need, req, again, &why);
    if (status == 431 && r->nheaders + 1 > HTTP_MAX_HEADERS) {
        free(out);
        goto out;
    }
    if (status != 0 || again->status != r->status || again->chunked != r->chunked ||
        again->content_length != r->content_length ||
        again->body_until_close != r->body_until_close)
        __builtin_trap();
    free(out);

    /* The body, as the session frames it. */
    if (r->status == 101 || r->status < 200)
        goto out;
    if (r->chunked)
        check_body(HTTP_BODY_CHUNKED, 0, buf + head_len, len - head_len, seed);
    else if (r->content_length >= 0)
        check_body(HTTP_BODY_LENGTH, (uint64_t)r->content_length, buf + head_len, len - head_len,
                   seed);
    else if (r->body_until_close)
        check_body(HTTP_BODY_UNTIL_CLOSE, 0, buf + head_len, len - head_len, seed);
    else
        check_body(HTTP_BODY_NONE, 0, buf + head_len, len - head_len, seed);
out:
    free(again);
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint8_t opts = data[0];
    uint32_t seed =
        (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
    const char *buf = (const char *)data + 5;
    size_t len = size - 5;
    if (!(opts & 0x80)) {
        check_head(buf, len, opts, seed);
    } else if (!(opts & 0x40)) {
        check_body(HTTP_BODY_CHUNKED, 0, buf, len, seed);
    } else if (len >= 2) {
        uint64_t length = (uint64_t)(uint8_t)buf[0] << 8 | (uint8_t)buf[1];
        check_body(HTTP_BODY_LENGTH, length, buf + 2, len - 2, seed);
    }
    return 0;
}
