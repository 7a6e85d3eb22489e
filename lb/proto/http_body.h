/* http_body: where an HTTP/1.1 message body ends. Told how the body is
 * delimited (by the head, parsed elsewhere) and fed the bytes after the
 * head in whatever pieces they arrive, it says how many belong to the body
 * and when it ended. It never copies: the caller forwards the bytes as they
 * are (chunked bodies in their chunked form, trailers included), so the
 * framer only validates and counts, in a small fixed struct, with no
 * allocation. Chunked framing is checked strictly (RFC 9112 §7.1): a body
 * whose end two parsers could see at different bytes is refused, so no
 * request can be smuggled behind it. */
#ifndef LB_PROTO_HTTP_BODY_H
#define LB_PROTO_HTTP_BODY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A chunk line (size, extensions and its CRLF) longer than this is invalid. */
#define HTTP_BODY_LINE_MAX 4096
/* The trailer section (its fields' lines and the final CRLF) may be this
 * long and hold this many fields. */
#define HTTP_BODY_TRAILER_MAX (16 * 1024)
#define HTTP_BODY_TRAILER_FIELDS_MAX 64

enum http_body_kind {
    HTTP_BODY_NONE,        /* no body (e.g. GET, 204, 304, a response to HEAD) */
    HTTP_BODY_LENGTH,      /* Content-Length bytes */
    HTTP_BODY_CHUNKED,     /* Transfer-Encoding: chunked */
    HTTP_BODY_UNTIL_CLOSE, /* a response that ends when the server closes */
};

struct http_body {
    enum http_body_kind kind;
    uint8_t state;          /* http_body.c's chunked parser state */
    uint8_t digits;         /* significant hex digits of the chunk size read so far */
    uint16_t line;          /* bytes of the chunk line read so far */
    uint16_t trailer_bytes; /* bytes of the trailer section read so far */
    uint16_t trailers;      /* trailer fields begun so far */
    uint64_t left;          /* LENGTH: body bytes left; CHUNKED: the chunk's size or
                             * its data bytes left */
    uint64_t payload;       /* body bytes seen, chunk data only */
    const char *error;      /* why the body is invalid, once it is */
};

/* Starts a body of this kind; length is the Content-Length for LENGTH and
 * ignored otherwise. NONE and LENGTH 0 are done at once. */
void http_body_init(struct http_body *b, enum http_body_kind kind, uint64_t length);

/* Takes the next len (<= SSIZE_MAX) bytes after those fed before and
 * returns how many of them belong to the body (<= len: the rest is the next
 * message, e.g. a pipelined request). Always sets *done: true once the
 * body's last byte has been among the bytes fed (NONE: at once, with 0;
 * LENGTH: after length bytes; CHUNKED: after the last chunk, the trailer
 * section and the final CRLF; UNTIL_CLOSE: never, the caller ends it at
 * EOF); after that every call returns 0. Returns -1 and sets *why (a short
 * static reason for the log) on an invalid body, and so does every later
 * call: the caller answers 400 (502 for a response) and closes. The result
 * is the same however the bytes are split between calls. Chunk data is
 * skipped without being read, so a call costs O(1) plus the framing bytes
 * among buf[0..len). */
ssize_t http_body_feed(struct http_body *b, const char *buf, size_t len, bool *done,
                       const char **why);

/* How many of the next bytes are body data the framer need not see: the
 * rest of a LENGTH body or of the current chunk's data, UINT64_MAX for
 * UNTIL_CLOSE, else 0 (the next byte is framing, the body is done or
 * invalid). A caller that moves bytes without reading them (splice) may move
 * up to this many and report them with http_body_skip(). */
uint64_t http_body_unseen(const struct http_body *b);

/* Counts n (<= http_body_unseen(b)) bytes moved without being fed, as feeding
 * them would; returns whether the body is done with them. */
bool http_body_skip(struct http_body *b, uint64_t n);

/* Whether the body's last byte has been fed (never for UNTIL_CLOSE). */
bool http_body_done(const struct http_body *b);

/* For logs and metrics: body bytes seen so far, chunk data only (not the
 * chunk lines, the CRLFs after the data, or the trailer section). */
uint64_t http_body_payload(const struct http_body *b);

#endif
