/* http_reuse: http mode's backend connections between requests (the pool's
 * "keepalive"), so a request usually pays no connect. Each backend
 * connection of http mode has a struct http_idle for its whole life: its
 * one read event stays registered from the connect to the close, whether a
 * session uses the connection (the event calls the session) or it waits
 * idle (the event closes it: the backend closed it or sent something
 * unasked), so handing a connection from request to request costs no
 * system call. Idle ones wait per backend, newest first, at most the
 * pool's reuse_max_idle, each for reuse_idle_timeout_ms; they count against
 * the descriptor budget and are the first thing given up when descriptors
 * run short. */
#ifndef LB_HTTP_REUSE_H
#define LB_HTTP_REUSE_H

#include <stdbool.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "lb/io/conn.h"

struct runtime;
struct backend;
struct tls_ctx;

struct http_idle {
    TAILQ_ENTRY(http_idle) link; /* in backend->idle while idle, newest first */
    TAILQ_ENTRY(http_idle) lru;  /* in rt->idle while idle, newest first */
    struct backend *b;           /* a reference while idle */
    struct runtime *rt;
    struct conn conn; /* while idle (in use, the upstream holds the connection) */
    /* A TLS connection's context reference (its SSL needs it), held here
     * while idle and with the connection: the upstream sets it before
     * http_reuse_put() and takes it back after http_reuse_take(). Dropped
     * after the connection's close. NULL while in use, or for plain TCP. */
    struct tls_ctx *tls;
    struct event rev; /* the connection's read event, for its whole life */
    struct event timer;
    bool idle;
    event_callback_fn on_read; /* in use: the owner's read callback */
    void *owner;
};

/* The read event of a fresh backend connection fd, calling on_read(fd,
 * what, owner); not added yet (the owner adds and deletes rev as it needs).
 * NULL on ENOMEM. */
struct http_idle *http_reuse_watch(struct runtime *rt, int fd, event_callback_fn on_read,
                                   void *owner);
/* Deletes i's event and frees it, before its owner closes the connection
 * (i->tls is the owner's to drop then: NULL while in use). */
void http_reuse_unwatch(struct http_idle *i);
/* Keeps c, a backend connection of b with its watch i, that has just
 * finished a response and holds no byte of another, for the next request;
 * closes both instead when reuse is off, b takes no new requests (down,
 * draining, disabled, removed), lb stops, or descriptors are short. c is
 * closed either way afterwards (c->fd -1): the idle pool owns it, with
 * i->tls (a TLS connection closes with close_notify). */
void http_reuse_put(struct runtime *rt, struct backend *b, struct conn *c, struct http_idle *i);
/* Takes b's newest idle connection made with the TLS context tls (NULL:
 * plain TCP) into *out, its read event now calling on_read(fd, what, owner)
 * (and still added): its watch, or NULL when b has none. Newer ones made
 * otherwise are closed on the way: a reload that kept b built its pool's
 * contexts anew (the CA, server_name, or TLS itself may have changed), so
 * a connection from before it is not reused. */
struct http_idle *http_reuse_take(struct backend *b, const struct tls_ctx *tls, struct conn *out,
                                  event_callback_fn on_read, void *owner);
/* Closes b's idle connections (removed by a reload, disabled). */
void http_reuse_flush(struct backend *b);
/* Closes every idle connection of rt (stop). */
void http_reuse_flush_all(struct runtime *rt);
/* Closes rt's oldest idle connection: true, or false when none is left. */
bool http_reuse_trim(struct runtime *rt);

#endif
