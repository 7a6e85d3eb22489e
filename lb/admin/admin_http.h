/* admin_http: the small HTTP/1.1 server under the admin API. It is built
 * for a hostile network, not for speed: a bounded number of connections,
 * a deadline for each whole request that trickled bytes do not extend, the
 * request head handed to the API (for the token) before any body is read,
 * bodies bounded, and one request served per pass of the event
 * loop so that an admin flood cannot starve the data path. With a TLS
 * context it serves HTTPS: each connection's handshake (non-blocking) and
 * its first request share that request's deadline, and a handshake that
 * fails (a plain HTTP client) closes the connection. */
#ifndef LB_ADMIN_HTTP_H
#define LB_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
struct admin_conn;
struct admin_server;
struct tls_ctx;

/* Request methods, as bits so a route can list the ones it takes. */
enum admin_method {
    ADMIN_GET = 1 << 0,
    ADMIN_HEAD = 1 << 1,
    ADMIN_POST = 1 << 2,
    ADMIN_PUT = 1 << 3,
    ADMIN_DELETE = 1 << 4,
    ADMIN_PATCH = 1 << 5,
    ADMIN_OPTIONS = 1 << 6,
    ADMIN_OTHER = 1 << 7, /* any other token */
};

/* Largest request head (request line and headers) and body accepted. */
#define ADMIN_HEAD_MAX (16 * 1024)
#define ADMIN_BODY_MAX (64 * 1024)

/* One parsed request. The strings are NUL-terminated and live until the
 * answer is sent. Only the headers the API uses are kept. */
struct admin_request {
    unsigned method;         /* one enum admin_method bit */
    const char *method_name; /* as sent: a token of at most 16 characters */
    const char *target;      /* as sent: "/api/v1/pools/app?x=1" */
    const char *authorization;
    const char *content_type;
    size_t content_length;
    const char *body; /* content_length bytes (plus a NUL); NULL at head time */
    const struct sockaddr *peer;
};

/* What the API does with requests. Both run on the loop; the connection
 * stays valid until admin_http_reply() is called for it, which each call
 * must do (once) before it returns, except that head() may return false to
 * let the body be read, and request() may call admin_http_defer() to
 * answer later. */
struct admin_http_handler {
    /* The head is in, the body (if any) not yet read: answer now (and
     * return true) to refuse the request without reading its body. */
    bool (*head)(void *arg, struct admin_conn *c, const struct admin_request *req);
    /* The whole request is in. */
    void (*request)(void *arg, struct admin_conn *c, const struct admin_request *req);
};

struct admin_http_stats {
    unsigned open;                   /* connections open now */
    uint64_t accepted;               /* connections ever accepted */
    uint64_t rejected;               /* closed at once: max_connections were open */
    uint64_t timeouts;               /* closed because a request or answer missed its deadline */
    uint64_t tls_handshake_failures; /* closed because their TLS handshake failed */
};

/* A server on base with no listening socket yet; NULL on ENOMEM. */
struct admin_server *admin_http_new(struct event_base *base, const struct admin_http_handler *h,
                                    void *arg);
/* Serves fd (a bound, listening, non-blocking socket; owned from now on,
 * even on failure). A socket served before is closed; its connections go
 * on. 0, or -1 (ENOMEM). */
int admin_http_listen(struct admin_server *srv, int fd);
/* Limits for connections accepted from now on, and for every request
 * started from now on. */
void admin_http_set_limits(struct admin_server *srv, unsigned max_connections,
                           unsigned request_timeout_ms);
/* Connections accepted from now on speak TLS with t (a server context; srv
 * takes its own reference and drops the one it had), or plain HTTP (t
 * NULL). Open connections go on as they started: each one's SSL keeps a
 * reference to the context it came from. At max_connections a TLS server
 * closes a new connection at once (no 503: it would take a handshake). */
void admin_http_set_tls(struct admin_server *srv, struct tls_ctx *t);
/* Whether new connections speak TLS. */
bool admin_http_tls(const struct admin_server *srv);
const struct admin_http_stats *admin_http_stats(const struct admin_server *srv);
/* The listening socket served, -1 when none. */
int admin_http_fd(const struct admin_server *srv);
/* No more accepts, for good: the listening socket closes (a binary
 * upgrade's new process serves its copy); open connections go on. */
void admin_http_stop_accepting(struct admin_server *srv);
/* Closes the listening socket and every connection, and frees srv. Safe
 * from inside a handler: the connection being answered then gets its
 * answer if the socket takes it at once. */
void admin_http_free(struct admin_server *srv);

/* Answers the request on c with status, Content-Type type and body (taken,
 * may be NULL for none); extra is more header lines, each ending in
 * "\r\n" (NULL: none). close: close the connection after this answer. A
 * HEAD request gets the headers only. */
void admin_http_reply(struct admin_conn *c, int status, const char *type, const char *extra,
                      struct evbuffer *body, bool close);
/* From request(): the answer comes later, from another callback on the
 * loop (the caller bounds how long). Should c close before it is answered
 * (the server freed: the admin API stopped or moved away), abandoned(arg)
 * runs first and c must not be used after it. The request's strings stay
 * valid until the answer. */
void admin_http_defer(struct admin_conn *c, void (*abandoned)(void *arg), void *arg);

#endif
