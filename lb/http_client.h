/* http_client: one HTTP/1.1 exchange with a server lb itself talks to (the
 * fleet's etcd gateway), on the loop: a non-blocking connect, the request
 * written, the response head parsed by lb/proto/http_head.c, its body
 * handed over as it arrives with any chunked framing taken off. Each
 * exchange has a connection of its own ("Connection: close"), plain or
 * TLS (through the connection ops, lb/io/conn.h): the
 * requests lb makes this way are few, and a connection never outlives the
 * exchange that a fault or a timeout ended. The server's bytes are
 * outside input: the head is bounded (HTTP_CLIENT_HEAD_MAX), the framing
 * checked, and nothing of them reaches an error message. */
#ifndef LB_HTTP_CLIENT_H
#define LB_HTTP_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct http_client;
struct tls_ctx;

#define HTTP_CLIENT_HEAD_MAX (16 * 1024)

struct http_client_ops {
    /* The head is in: its status. 0 to go on, -1 to end the exchange (the
     * client is freed after the call; on_done is not called). */
    int (*on_head)(void *arg, int status);
    /* Body bytes, in order, framing removed, as they arrive. 0 or -1 as
     * above. */
    int (*on_body)(void *arg, const char *p, size_t n);
    /* The exchange is over: err NULL when the whole response came (status
     * is its status), else why not ("connection refused", "timed out",
     * "bad response head"...). The client is freed after the call. */
    void (*on_done)(void *arg, int status, const char *err);
};

/* Connects to addr and sends request (the whole text: request line,
 * headers, body; copied) at once; with tls (a client context, of which
 * the client takes a reference) over TLS, the server verified as tls says
 * (a failed handshake is "TLS handshake: certificate verify failed:
 * hostname mismatch" and the like). timeout_ms bounds the connect and the
 * wait for the head; with whole, the entire exchange (a watch stream
 * passes 0: after its head it may be silent for as long as it likes).
 * NULL with the reason in err (no descriptor, out of memory): no callback
 * will come. */
struct http_client *http_client_start(struct event_base *base, const struct sockaddr *addr,
                                      socklen_t addrlen, struct tls_ctx *tls, const char *request,
                                      size_t len, unsigned timeout_ms, int whole,
                                      const struct http_client_ops *ops, void *arg, char *err,
                                      size_t errlen);
/* TCP keepalive on c's socket: probes after idle_s without traffic, every
 * interval_s, count unanswered ones end the connection (on_done then says
 * so). For a stream that may be silent for long. */
void http_client_keepalive(struct http_client *c, unsigned idle_s, unsigned interval_s,
                           unsigned count);
/* Ends the exchange at once (the connection is reset); no callback comes.
 * NULL does nothing. */
void http_client_cancel(struct http_client *c);

/* "POST PATH HTTP/1.1" with Host, Content-Type: application/json, an
 * Authorization when auth is not NULL, Content-Length, Connection: close,
 * then body. malloc'd, its length in *len; NULL when out of memory. */
char *http_client_post(const char *authority, const char *path, const char *auth, const char *body,
                       size_t *len);

#endif
