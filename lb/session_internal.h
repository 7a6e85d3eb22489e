/* session_internal: what the session modules share — the session itself
 * and the steps both modes use. lb/session.c has the phases up to the pick
 * and tcp mode's relay; lb/http_session.c takes an http listener's sessions
 * from there, one request at a time. */
#ifndef LB_SESSION_INTERNAL_H
#define LB_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/event_struct.h>

#include "lb/relay.h"
#include "lb/session.h"
#include "lb/upstream.h"

struct http_state;

enum session_phase {
    SESSION_ACCEPTED,
    SESSION_PREREAD,
    SESSION_PICK,
    SESSION_CONNECTING,
    SESSION_RELAYING,
    SESSION_HTTP, /* http mode: lb/http_session.c has it from here on */
};

struct session {
    LIST_ENTRY(session) link; /* in rt->sessions */
    struct listener *listener;
    enum session_phase phase;
    bool http_mode; /* the listener's mode when it was accepted */
    struct relay_side client;
    struct upstream upstream;
    struct relay relay;      /* tcp mode, and an http upgrade's tunnel */
    struct event idle_timer; /* while relaying, when the listener has an idle timeout;
                              * http mode's timeouts */
    uint64_t start_ms;
    struct sockaddr_storage client_addr; /* the PROXY header's source, when it gave one */
    socklen_t client_len;
    /* The address the client reached, when a PROXY header said it (for
     * send_proxy); family 0: the client socket's own (getsockname). */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } proxied_dst;
    /* A TLS listener's context when the client was accepted (a reference,
     * held while its SSL lives; a reload may give the listener another),
     * and whether the handshake is done. NULL: plain TCP. */
    struct tls_ctx *tls;
    bool tls_done;
    uint64_t tls_done_ms; /* when the handshake completed (CLOCK_MONOTONIC) */
    bool listener_proxy;  /* the listener's accept_proxy when accepted */
    bool proxy_pending;   /* the PROXY header is still to come */
    /* PREREAD: the bytes of a PROXY header that came in pieces (NULL when
     * none are waiting). */
    unsigned char *preread;
    size_t preread_len;
    /* http mode: the state of its requests (lb/http_session.c); NULL in
     * tcp mode. */
    struct http_state *http;
    /* No buffers: each flow takes one from rt->bufs only while it holds
     * bytes (lb/io/bufpool.h), so an idle session is just this struct. */
};

/* The one way a session ends (lb/session.c). */
void session_close(struct session *s, enum session_end why);
/* The idle timer's callback of a relaying session (the tunnel of an http
 * upgrade too), and its first arming. */
void session_idle_arm(struct session *s);
void session_on_idle_timer(evutil_socket_t fd, short what, void *arg);
/* The relay's end callback: ends the session with the matching reason. */
void session_on_relay_end(struct relay *r, enum relay_end how);
/* The end of PREREAD in tcp mode: the relay reads the client from now on
 * (what PREREAD took off the socket into the up mover goes first), and s
 * picks and connects. */
void session_preread_done(struct session *s);

/* lb/session_sni.c: */
/* True when s's PREREAD reads a TLS ClientHello to pick the pool (a tcp
 * session of a listener with SNI routes). */
bool session_sni_wanted(const struct session *s);
/* PREREAD with SNI routes (after the PROXY header, if any): reads the
 * ClientHello into the relay's up mover within what is left of
 * request_timeout_ms since the accept, points s's upstream at the routed
 * pool (the listener's pool when none matches), then
 * session_preread_done(). */
void session_sni_wait(struct session *s);

/* lb/http_session.c: */
/* s (an http listener's, after PREREAD) reads its first request. */
void http_session_begin(struct session *s);
/* Frees what http mode holds for s (session_close()). */
void http_session_free(struct session *s);
/* Ends the parked http sessions (reads off for backpressure) whose client
 * reset; how many (the runtime's probe, with session_probe_parked()). */
int http_session_probe_parked(struct runtime *rt);
/* lb is stopping: true when s waits between requests (it may close now). */
bool http_session_idle(const struct session *s);

#endif
