/* http_head: one HTTP/1.x request or response head, from bytes to a checked
 * structure and back. lb checks the bytes strictly itself, llhttp parses them
 * again and both must agree; the head sent on is written anew from the parts
 * (never the peer's raw bytes), without hop-by-hop headers and with the
 * forwarding headers. No allocation: spans point into the caller's buffer. */
#ifndef LB_PROTO_HTTP_HEAD_H
#define LB_PROTO_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* More header lines than this in one head is a 431. */
#define HTTP_MAX_HEADERS 100
/* Empty lines (CRLF) skipped before a request line (RFC 9112 2.2); more is a
 * 400. A response gets none. */
#define HTTP_MAX_EMPTY_LINES 4

/* Bytes [off, off + len) of the buffer the head was parsed from. */
struct http_span {
    uint32_t off, len;
};

/* The header fields lb acts on; everything else is HTTP_FIELD_OTHER. */
enum http_field {
    HTTP_FIELD_OTHER,
    HTTP_FIELD_CONNECTION,
    HTTP_FIELD_CONTENT_LENGTH,
    HTTP_FIELD_EXPECT,
    HTTP_FIELD_FORWARDED,
    HTTP_FIELD_HOST,
    HTTP_FIELD_HTTP2_SETTINGS,
    HTTP_FIELD_KEEP_ALIVE,
    HTTP_FIELD_PROXY_CONNECTION,
    HTTP_FIELD_TE,
    HTTP_FIELD_TRAILER,
    HTTP_FIELD_TRANSFER_ENCODING,
    HTTP_FIELD_UPGRADE,
    HTTP_FIELD_X_FORWARDED_FOR,
    HTTP_FIELD_X_FORWARDED_PORT,
    HTTP_FIELD_X_FORWARDED_PROTO,
    HTTP_FIELD_X_REAL_IP,
};

struct http_header {
    struct http_span name;  /* as sent (case kept) */
    struct http_span value; /* without the whitespace around it; may be empty */
    uint8_t field;          /* enum http_field */
    bool listed;            /* named in Connection: hop-by-hop, not sent on */
    bool underscore;        /* request: the name holds '_', so it is not sent on */
};

struct http_head {
    struct http_span method, target; /* requests */
    bool method_head;                /* request: HEAD (its response has no body) */
    int status;                      /* responses: 100..599 */
    struct http_span reason;         /* responses; may be empty */
    int version_minor;               /* HTTP/1.0 or HTTP/1.1 */
    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned nheaders;
    int host; /* index of Host in headers, -1 when there is none */

    /* How the body after this head is framed. Chunked wins; else
     * content_length >= 0 bytes follow; else body_until_close; else there is
     * no body. A response that has no body (1xx, 204, 304, an answer to HEAD)
     * has content_length 0 and neither flag, whatever its headers say. */
    int64_t content_length; /* -1: no Content-Length */
    bool chunked;           /* the final transfer coding is chunked */
    bool body_until_close;  /* response: the body ends when the backend closes */

    /* The connection may carry another message after this one (version,
     * Connection; never after a close-delimited body or a 101). */
    bool keep_alive;
    /* Request: HTTP/1.1, Connection names upgrade and Upgrade has a value
     * that does not name h2c (an h2c request goes on as a plain one).
     * Response: a 101, which http_response_parse() accepts only as the
     * upgrade the request asked for. */
    bool upgrade;
    bool expect_continue; /* request: HTTP/1.1 with Expect: 100-continue */
    uint32_t head_len;    /* bytes of the head: leading CRLFs and final CRLFCRLF included */
};

/* The length of the complete head at the start of buf[0, len): through its
 * CRLFCRLF, after at most HTTP_MAX_EMPTY_LINES empty lines. 0 while more bytes
 * are needed. A line ended by a bare LF ends the search early: the length
 * through that LF is returned, so the parser rejects it at once instead of
 * the caller waiting for a CRLFCRLF that will never come. *scanned (0 before
 * the first call for a head, NULL to scan from the start) keeps how far the
 * earlier calls looked, so a head that arrives byte by byte is read once. */
size_t http_head_end(const char *buf, size_t len, size_t *scanned);

/* Parses and checks the request head buf[0, head_len), head_len as
 * http_head_end() gave it. Returns 0 with *h filled, or the status to answer
 * with *why a short static reason for the log:
 * - 400: malformed or ambiguous; among others a Transfer-Encoding with an
 *   empty list element or the coding identity, or whose codings do not end
 *   in chunked; the asterisk-form target "*" with a method other than
 *   OPTIONS; the authority-form with any method; an absolute-form target
 *   whose scheme is not http or https, that holds userinfo, or whose
 *   authority differs from Host (ignoring case) or has no Host beside it;
 * - 431: more than HTTP_MAX_HEADERS headers;
 * - 501: a method llhttp does not know, or CONNECT (lb is a reverse proxy
 *   and tunnels nowhere);
 * - 505: a version other than HTTP/1.0 and HTTP/1.1.
 * *h is undefined after an error. */
int http_request_parse(const char *buf, size_t head_len, struct http_head *h, const char **why);

/* Parses and checks a backend's response head, likewise (the same codes,
 * which the caller turns into its 502), to the request req as parsed: a HEAD
 * gets a response without a body, and a 101 is 502 "101 without an upgrade"
 * unless req->upgrade and the response is HTTP/1.1 with an Upgrade value. */
int http_response_parse(const char *buf, size_t head_len, const struct http_head *req,
                        struct http_head *h, const char **why);

/* What lb tells the backend about the client. */
struct http_forward {
    const struct sockaddr *client; /* the client (the PROXY header's address when there
                                      was one); NULL or not IP: "unknown" */
    const char *proto;             /* "http" or "https" */
    unsigned port;                 /* the listener port the client connected to */
    bool real_ip;                  /* also X-Real-IP */
    bool forwarded;                /* also RFC 7239 Forwarded */
    const char *connection;        /* the Connection value lb writes ("keep-alive",
                                      "close", "upgrade"), NULL for none */
};

/* Writes the request head for the backend into out[0, cap):
 * - the request line: method, target, the client's version;
 * - every header of h in order, except the hop-by-hop ones (Connection and
 *   the headers it names, Keep-Alive, TE, Trailer, Proxy-Connection,
 *   HTTP2-Settings, Upgrade unless h->upgrade), the forwarding ones, and
 *   every header whose name holds '_' (all of them, not only look-alikes of
 *   a field lb acts on: backends that map '_' to '-' would read
 *   "X_Forwarded_For" as lb's own header);
 * - Content-Length once, as one length, and Transfer-Encoding as one line,
 *   every coding of every Transfer-Encoding line lower-cased and joined by
 *   ", ", each where its first line was;
 * - Connection as fw says; X-Forwarded-For (the client's values in order,
 *   then the client), X-Forwarded-Proto, X-Forwarded-Port;
 * - X-Real-IP when fw->real_ip (a client's X-Real-IP is dropped either way);
 * - Forwarded when fw->forwarded: the client's elements, then lb's, but lb's
 *   alone when any client Forwarded value is not well formed RFC 7239
 *   (token=token|quoted-string pairs split by ';', elements by ','); without
 *   fw->forwarded the client's Forwarded goes on as it came;
 * - the empty line.
 * Connection never removes Host, Content-Length, Transfer-Encoding or a
 * forwarding header. buf and h as parsed. Returns the length, 0 when cap is
 * too small (out then holds no complete head). */
size_t http_request_write(const char *buf, const struct http_head *h, const struct http_forward *fw,
                          char *out, size_t cap);
/* The length http_request_write() writes for the same arguments. */
size_t http_request_size(const char *buf, const struct http_head *h, const struct http_forward *fw);

/* Writes the response head for the client, likewise: the status line (the
 * backend's version, status and reason), the headers but the hop-by-hop ones
 * (Upgrade stays on a 101), Content-Length and Transfer-Encoding canonical as
 * in requests (neither on a 1xx or 204), Connection: connection unless NULL,
 * the empty line. Returns the length, 0 when cap is too small. */
size_t http_response_write(const char *buf, const struct http_head *h, const char *connection,
                           char *out, size_t cap);
/* The length http_response_write() writes for the same arguments. */
size_t http_response_size(const char *buf, const struct http_head *h, const char *connection);

#endif
