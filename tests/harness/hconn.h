/* harness/hconn: a keep-alive HTTP/1.1 client connection to lb: raw bytes
 * out, one response at a time in (Content-Length, chunked, or until close;
 * HEAD answers without a body; 1xx on request), a body either kept or only
 * counted, hashed and checked against harness_stream_fill's pattern (for
 * bodies too big to hold), and whether the server closed after it. */
#ifndef LB_TESTS_HARNESS_HCONN_H
#define LB_TESTS_HARNESS_HCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HARNESS_FNV_INIT 0xcbf29ce484222325ULL

/* FNV-1a 64 of len bytes, continuing from h (start with HARNESS_FNV_INIT). */
uint64_t harness_fnv1a(uint64_t h, const void *buf, size_t len);

struct harness_hconn {
    int fd;
    char *buf; /* bytes received and not yet consumed */
    size_t len, cap;
    bool eof; /* the server closed its side */
};

enum {
    HCONN_HEAD = 1,    /* the response to a HEAD: no body */
    HCONN_INTERIM = 2, /* return a 1xx as its own response (else skipped) */
    HCONN_STREAM = 4,  /* do not keep the body: count, hash, check the pattern */
};

struct harness_hresp {
    int status;
    const char *head;    /* status line and header lines, each with CRLF, without the empty line */
    const char *headers; /* the header lines alone (for harness_http_header) */
    const char *body;    /* decoded body, NUL-terminated (NULL with HCONN_STREAM) */
    size_t body_len;
    const char
        *raw; /* the body bytes as they came (chunked framing included; NULL with HCONN_STREAM) */
    size_t raw_len;
    uint64_t hash; /* harness_fnv1a of the decoded body */
    bool pattern;  /* the decoded body is harness_stream_fill from offset 0 */
    bool chunked;
    bool until_close; /* framed by the server's close */
};

/* Connects to 127.0.0.1:port; fails the test when it cannot. */
void harness_hconn_open(struct harness_hconn *c, int port);
/* Sends bytes (bounded by HARNESS_WAIT_MS); false on error. */
bool harness_hconn_send(struct harness_hconn *c, const void *buf, size_t len);
bool harness_hconn_sends(struct harness_hconn *c, const char *text);
/* Reads one response within timeout_ms. 0, or -1 (timeout, EOF before a
 * whole response, not HTTP). */
int harness_hconn_read(struct harness_hconn *c, struct harness_hresp *r, int flags,
                       long timeout_ms);
/* Reads everything until the server closes (bounded): the bytes, NUL
 * terminated, freed at teardown; *len their count. NULL on timeout. */
const char *harness_hconn_read_all(struct harness_hconn *c, size_t *len, long timeout_ms);
/* True when the server closes the connection within ms with no byte
 * left unread or arriving (a response after this is a failure). */
bool harness_hconn_expect_closed(struct harness_hconn *c, long ms);
/* True when nothing arrives and the connection stays open for ms. */
bool harness_hconn_quiet(struct harness_hconn *c, long ms);
void harness_hconn_close(struct harness_hconn *c);

#endif
