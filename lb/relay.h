/* relay: the two flows of a session — client to server ("up") and server
 * to client ("down") — over two connections (lb/io/conn.h), each flow
 * moving its bytes through a mover (lb/io/mover.h). Bounded: a full mover
 * stops reading its source. An end of stream on one side becomes a
 * shutdown of the other's write side once the flow has drained. A side no
 * event watches (reads stopped, nothing to write) is parked and probed
 * for a reset. That shutdown waits for the end of the event loop's turn:
 * when the other peer's end of stream arrived in the same turn, the relay
 * ends without it (the owner's close sends both FINs). The relay knows nothing of pools, backends
 * or listeners: its owner (lb/session.c) decides what an end means. */
#ifndef LB_RELAY_H
#define LB_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "lb/io/conn.h"
#include "lb/io/mover.h"

/* How a relay ended; the owner's on_end gets it exactly once. */
enum relay_end {
    RELAY_END_CLIENT_CLOSED, /* both flows finished and the client's end of stream came
                              * first, or the client ended its stream before sending a
                              * byte while no server was attached */
    RELAY_END_SERVER_CLOSED, /* both flows finished; the server's came first */
    RELAY_END_CLIENT_ERROR,  /* the client's connection failed (reset, write error) */
    RELAY_END_SERVER_ERROR,  /* the server's connection failed */
    RELAY_END_WATCH_FAILED,  /* the event loop could not watch a socket (epoll) */
    RELAY_END_NO_MEMORY,     /* a mover found no memory for bytes that arrived */
};

/* One connection of the relay and its two events. */
struct relay_side {
    struct conn conn;
    struct event rev, wev;
    bool read_eof;         /* the peer ended its stream */
    bool write_shut;       /* we ended ours (conn's shutdown_write; or, when that ended the
                            * relay, the owner's close) */
    bool read_wants_write; /* the last read waits for writability (a TLS read that
                            * must write first): rev is off, wev on, and the read
                            * is retried when the socket is writable */
};

struct relay;

/* One direction: bytes read from src, held in mover, written to dst. */
struct relay_flow {
    struct relay *r;
    struct relay_side *src, *dst; /* the server side is NULL until attached */
    struct mover mover;
    uint64_t bytes;    /* read from src */
    uint64_t *count;   /* also counts them when set (the backend's counter) */
    bool shut_pending; /* drained after src's end: dst's shutdown waits for the turn's end */
};

LIST_HEAD(relay_list, relay);

/* What the relays of one event loop share (lb/runtime.c holds one). */
struct relay_shared {
    struct relay_list parked; /* relays with a side no event watches, for relay_probe() */
    struct relay_list ending; /* relays with a shutdown put off to the end of the turn */
    struct event end_turn;    /* runs those shutdowns, after the turn's other callbacks */
};

void relay_shared_init(struct relay_shared *sh, struct event_base *base);
/* Call once no relay of sh runs any more. */
void relay_shared_free(struct relay_shared *sh);

struct relay {
    struct event_base *base;
    struct relay_side *client, *server; /* server: NULL until relay_attach_server() */
    struct relay_flow up, down;
    struct relay_shared *shared;
    LIST_ENTRY(relay) park_link; /* in shared->parked */
    LIST_ENTRY(relay) end_link;  /* in shared->ending */
    bool parked, ending;
    int first_closed;        /* 0 client, 1 server, -1: no end of stream yet */
    uint64_t last_active_ms; /* monotonic-coarse, at the last byte moved */
    /* Called once when the relay ends; it must relay_stop() r and close
     * both connections (a clean end leaves the last FIN to that close), and
     * may free r: the relay touches nothing of r after calling it. */
    void (*on_end)(struct relay *r, enum relay_end how);
};

/* Sets r up with its client side (conn set, events not yet assigned). The
 * caller then initialises r->up.mover and r->down.mover (e.g.
 * mover_ring_init) before relay_watch_client(). */
void relay_init(struct relay *r, struct event_base *base, struct relay_shared *shared,
                struct relay_side *client, void (*on_end)(struct relay *, enum relay_end));
/* Starts reading the client: before a server is attached its bytes wait in
 * the up mover (until it is full); a client that resets, or ends its stream
 * without having sent a byte, ends the relay. 0, or -1 when it ended. */
int relay_watch_client(struct relay *r);
/* server is connected: both flows start, and what the client sent
 * meanwhile goes out (and what the down mover was given to start with,
 * an HTTP upgrade's bytes after the 101). 0, or -1 when the relay ended. */
int relay_attach_server(struct relay *r, struct relay_side *server);
/* Neither flow of r moves to splice(2) from now on: a side of r is not
 * plain TCP (TLS; splice would move its ciphertext around OpenSSL). Call
 * it once that side is known, before the flows have moved a byte through
 * a pipe (at the latest when the server is attached, for the server side;
 * before relay_watch_client(), for the client's). The movers refuse to
 * splice to or from a conn that is not plain TCP anyway; this makes it the
 * whole session's rule, both flows. */
void relay_no_splice(struct relay *r);
/* Stops every event of r, unparks it, forgets its put-off shutdowns, and releases both movers (what
 * they hold is dropped); connections stay open (their owners close them). Safe to call more than
 * once. */
void relay_stop(struct relay *r);
/* For a parked relay: asks each side no event watches for a pending error
 * and ends the relay on one; unparks it when every side is watched again.
 * 0, or -1 when it ended. */
int relay_probe(struct relay *r);
/* The parked relay after r in its list (for walking it while probing). */
struct relay *relay_parked_next(struct relay *r);

#endif
