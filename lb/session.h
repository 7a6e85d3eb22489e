/* session: one accepted client, through its phases to the end of its one
 * log line (lb/session.c). */
#ifndef LB_SESSION_H
#define LB_SESSION_H

#include <sys/socket.h>

struct listener;
struct runtime;
struct session;
struct backend;

/* Why a session ended: one word each in its log line (session_end_text()). */
enum session_end {
    SESSION_END_CLIENT_CLOSED,    /* the client finished first (FIN), then the backend */
    SESSION_END_BACKEND_CLOSED,   /* the backend finished first */
    SESSION_END_CLIENT_ERROR,     /* the client's connection failed (reset) */
    SESSION_END_BACKEND_ERROR,    /* the backend's connection failed after connect */
    SESSION_END_IDLE_TIMEOUT,     /* no byte either way for idle_timeout_ms */
    SESSION_END_NO_BACKEND,       /* the pool had no available backend */
    SESSION_END_CONNECT_FAILED,   /* every try to connect failed */
    SESSION_END_BACKEND_DISABLED, /* the admin disabled its backend */
    SESSION_END_SHUTDOWN,         /* lb stopped (grace period over) */
    SESSION_END_INTERNAL_ERROR,   /* lb could not watch a socket (epoll out of memory) */
    SESSION_END_BAD_PROXY,        /* accept_proxy: what the client sent first is no PROXY header */
    SESSION_END_PROXY_TIMEOUT,    /* accept_proxy: no complete header within request_timeout_ms */
    SESSION_END_HTTP_ERROR,       /* http: lb answered an error (the request's log line says
                                   * which) and closed */
    SESSION_END_HTTP_CLOSE,       /* http: the exchange asked for a close (Connection: close,
                                   * HTTP/1.0, a body that ends with the connection) */
    SESSION_END_REQUEST_TIMEOUT,  /* http: a request head or body stalled */
    SESSION_END_TLS_FAILED,       /* tls: the client's handshake failed (logged at debug) */
    SESSION_END_TLS_TIMEOUT,      /* tls: no complete handshake within handshake_timeout_ms */
    SESSION_END_QUEUE_TIMEOUT,    /* every backend full: waited queue_timeout_ms in the queue */
    SESSION_END_QUEUE_FULL,       /* every backend full and the pool's queue full (or none) */
};
/* The word for why in the session log line ("client closed", ...). */
const char *session_end_text(enum session_end why);

/* Takes ownership of fd, an accepted non-blocking client socket. */
void session_start(struct listener *l, int fd, const struct sockaddr *sa, socklen_t salen);
/* Once a second (runtime's probe timer): checks the sides of parked
 * sessions that lb does not watch for a reset (SO_ERROR) and ends those
 * with one; unparks those whose sides are all watched again. Returns how
 * many ended. */
int session_probe_parked(struct runtime *rt);
/* Ends every open session of b at once (admin "disable"). */
void backend_close_sessions(struct backend *b, enum session_end why);
/* lb is stopping: ends the http sessions that wait between requests (a
 * keep-alive client loses nothing). */
void session_stop_idle(struct runtime *rt);
/* Ends an open session at once (stop after the grace period). */
void session_abort(struct session *s, enum session_end why);
/* After a reload changed idle timeouts: arms the idle timer of open
 * sessions whose listener now has one. */
void session_idle_rearm_all(struct runtime *rt);

#endif
