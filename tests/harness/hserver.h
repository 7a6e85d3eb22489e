/* harness/hserver: HTTP backends as harness_server functions: an echo of
 * the request as received, pattern downloads, uploads counted and hashed,
 * and the broken or special backends (garbage, close, 101 tunnel, 100
 * Continue, a raw recorder of what lb sends). Bodies use harness_stream_fill's
 * pattern and harness_fnv1a. */
#ifndef LB_TESTS_HARNESS_HSERVER_H
#define LB_TESTS_HARNESS_HSERVER_H

/* For every request on the connection (keep-alive, pipelined, request
 * bodies with Content-Length or chunked): 200, Content-Type text/plain,
 * "X-Backend: <arg (const char *)>", "X-Peer-Port: <lb's port>",
 * "X-Conn-Request: <1 for the connection's first request, 2...>", and
 *   GET /big/N      N pattern bytes with Content-Length
 *   GET /chunked/N  N pattern bytes chunked, chunk sizes 1, 7, 100, 4096,
 *                   65536 and then 65521 repeated
 *   anything else   the request line and header lines exactly as received
 *                   (CRLFs kept), then "body-bytes: N\n" and
 *                   "body-fnv: %016llx\n" (harness_fnv1a of the decoded
 *                   body): POST /upload uses this.
 * The connection closes after a request with "Connection: close" or an
 * HTTP/1.0 one without keep-alive, or after a request it cannot parse. */
void harness_fn_http_echo(int fd, void *arg);
/* Reads a request head, answers "HELLO\r\n\r\n", then drains. */
void harness_fn_http_garbage(int fd, void *arg);
/* Reads a request head, then closes without a byte. */
void harness_fn_http_close(int fd, void *arg);
/* Answers a request head with "HTTP/1.1 101 Switching Protocols",
 * "Upgrade: websocket", "Connection: Upgrade", then echoes bytes until EOF
 * and shuts down its write side. */
void harness_fn_http_upgrade(int fd, void *arg);
/* Reads a request head, sends "HTTP/1.1 100 Continue", reads its
 * Content-Length body, answers 200 with "got N\n". */
void harness_fn_http_continue(int fd, void *arg);
/* Records each connection: appends to file arg (const char *) one line
 * "conn: <first 16 bytes in hex>" then answers every request as
 * harness_fn_http_echo does (name "raw"), the PROXY header, if any, is
 * taken off before the first request. */
void harness_fn_http_record(int fd, void *arg);

#endif
