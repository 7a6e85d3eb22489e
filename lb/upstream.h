/* upstream: a session's side towards a backend — the pick (through the
 * pool's strategy, on the session's key), the non-blocking connect with
 * its timeout, what goes first in plain text (the PROXY header), the TLS
 * handshake of a pool with "tls" (within the same connect timeout),
 * retries on other backends, the wait for a free descriptor, and the
 * backend counters. A session owns one at a time (in tcp mode,
 * one for its whole life; HTTP keep-alive will use several in turn). */
#ifndef LB_UPSTREAM_H
#define LB_UPSTREAM_H

#include <stdbool.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "lb/balance/balance.h"
#include "lb/relay.h"
#include "lb/session.h"

struct listener;
struct pool;
struct backend;
struct http_idle;
struct tls_ctx;

enum upstream_state {
    UPSTREAM_IDLE,       /* no backend: before the first pick, or after release */
    UPSTREAM_QUEUED,     /* every available backend full: waits in the pool's queue */
    UPSTREAM_WAIT_FD,    /* no descriptor for a socket: tries again shortly */
    UPSTREAM_CONNECTING, /* connect() under way to backend */
    UPSTREAM_HANDSHAKE,  /* TCP connected; the TLS handshake under way (pool "tls") */
    UPSTREAM_CONNECTED,  /* server side ready; the relay has it */
};

struct upstream {
    void *owner;               /* the session */
    struct listener *listener; /* its runtime, and who pauses while we wait for a descriptor */
    struct pool *pool;         /* a reference; moves to the new generation after a reload */
    struct backend *backend;   /* a reference while set */
    struct relay_side server;
    struct pick_ctx pick; /* the key (set by the owner) and the backends tried */
    enum upstream_state state;
    struct event timer; /* connect timeout is on server.wev; this one: descriptor wait */
    unsigned fd_wait_ms;
    bool fd_waiting; /* counted in rt->fd_waiters */
    bool reuse; /* set by the owner (http mode): take an idle connection when the backend has one */
    bool reused; /* the server connection came from the backend's idle ones */
    bool routed; /* pool is an SNI route's, not the listener's: a reload moves it by name */
    /* http mode: the server connection's read event, which outlives the
     * session when the connection goes back to the idle ones
     * (lb/http_reuse.h); NULL in tcp mode. */
    struct http_idle *idle;
    /* A TLS server side (pool "tls"): the reference its SSL needs for as
     * long as it lives (lb/io/tls_ctx.h), taken when the SSL is made and
     * dropped after the connection closes; it goes with the connection
     * into the idle ones and back. NULL for plain TCP. */
    struct tls_ctx *tls;
    uint64_t try_start_ms; /* when the current try's connect began: the handshake's deadline */
    LIST_ENTRY(upstream) backend_link; /* in backend->upstreams while backend is set */
    /* The pool's queue (state QUEUED): u->pool's, oldest first. A freed
     * slot is reserved for the head at once (granted, counted in the
     * backend's reserved, with a reference) and u->timer, also the queue
     * timeout, is made active: the connect runs from the loop, never from
     * inside the session that freed the slot. */
    TAILQ_ENTRY(upstream) queue_link;
    bool queued;                /* in u->pool->queue */
    bool requeue;               /* a reload retired the pool it waited in: connect again */
    struct backend *granted;    /* a slot reserved for u; NULL when none */
    uint64_t queue_deadline_ms; /* monotonic; 0 before the first wait of this connect */
    void (*on_connected)(struct upstream *u);                /* state CONNECTED */
    void (*on_failed)(struct upstream *u, enum session_end); /* NO_BACKEND, CONNECT_FAILED, ... */
    /* Optional, set by the owner: called once a new connection's TCP
     * connect is done, before any TLS, to write what goes first in plain
     * text on u->server.conn (still plain TCP then): the pool's PROXY
     * header. NULL, or why it failed: then the try ends and on_failed runs
     * with SESSION_END_BACKEND_ERROR (no other backend is tried). Not
     * called for a reused connection. */
    const char *(*on_tcp_connected)(struct upstream *u);
};

/* Sets u up for owner on pool (takes a pool reference); no backend yet. */
void upstream_init(struct upstream *u, void *owner, struct listener *l, struct pool *pool,
                   void (*on_connected)(struct upstream *),
                   void (*on_failed)(struct upstream *, enum session_end));
/* Before the first pick (u IDLE): u connects to pool instead, an SNI
 * route's (takes a reference on it, drops the old pool's). After a reload
 * that retires it, u follows the current pool of the same name (not the
 * listener's). */
void upstream_set_pool(struct upstream *u, struct pool *pool);
/* Picks a backend and connects, retrying others up to the pool's retries,
 * until one is connected (on_connected) or none is left (on_failed). Either
 * may be called before this returns. With the pool's "tls", a try is
 * connected only once the TLS handshake is done (the server side is then
 * a conn_tls): a handshake that fails (certificate or name not verified,
 * no TLS, a reset) or does not end within connect_timeout_ms of the
 * connect's start is a failed try like a refused connect (counted, logged
 * with its reason, the next backend tried). */
void upstream_connect(struct upstream *u);
/* Gives up the backend: closes the server connection (with a reset when
 * reset is set: the client's side failed), ends the backend's count of it
 * and drops the backend reference. u is IDLE afterwards and may connect
 * again (upstream_connect) or be freed. */
void upstream_release(struct upstream *u, bool reset);
/* Like upstream_release(), but the server connection, which has finished a
 * response and holds no byte of another, is kept idle for a later request
 * (lb/http_reuse.h) rather than closed — unless its TLS layer holds bytes
 * already taken off the socket (conn_pending()), which no idle read event
 * would announce. */
void upstream_keep(struct upstream *u);
/* A reused connection failed before any answer: closes it and connects
 * afresh to the same backend (never reusing; whatever the pool's retries,
 * but counted among the tries), then as upstream_connect() (other
 * backends, when that fails and retries are left). */
void upstream_reconnect(struct upstream *u);
/* When a reload replaced u's pool, u takes the current one of its
 * listener (of the same name, for a routed one or a removed listener's;
 * upstream_connect() does this itself; an owner that reads the pool's
 * settings before connecting calls it first). */
void upstream_follow_reload(struct upstream *u);
/* Hands the slots free in pool to the sessions at the head of its queue,
 * oldest first, as long as its strategy finds a backend with room (each
 * gets its slot reserved now and connects from the loop). Set as the
 * pool's room hook (pool_set_room_hook()) too. */
void upstream_queue_serve(struct pool *pool);
/* A reload retired pool: the sessions waiting in its queue connect again
 * from the loop, in their order, in the current generation (picked there,
 * or queued at its tail with the time they have left). */
void upstream_queue_move(struct pool *pool);
/* upstream_release(), then drops the pool reference too; u is done. */
void upstream_free(struct upstream *u, bool reset);

#endif
