/* http_reuse: idle backend connections kept for the next request (http
 * mode, the pool's "keepalive"), so a request usually pays no connect. Per
 * backend, newest first, at most the pool's reuse_max_idle. Each one is
 * watched while idle: the backend closing it, sending anything unasked, or
 * reuse_idle_timeout_ms passing closes it at once. They count against the
 * descriptor budget, and are the first thing given up when descriptors run
 * short. */
#ifndef LB_HTTP_REUSE_H
#define LB_HTTP_REUSE_H

#include <stdbool.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "lb/io/conn.h"

struct runtime;
struct backend;

struct http_idle {
    TAILQ_ENTRY(http_idle) link; /* in backend->idle, newest first */
    TAILQ_ENTRY(http_idle) lru;  /* in rt->idle, newest first */
    struct backend *b;           /* a reference */
    struct runtime *rt;
    struct conn conn;
    struct event ev; /* readable (EOF or bytes) or timed out: closed */
};

/* Keeps c, a backend connection of b that has just finished a response and
 * holds no byte of another, for the next request; closes it instead when
 * reuse is off, b takes no new requests (down, draining, disabled, removed),
 * lb stops, or descriptors are short. c is closed either way afterwards
 * (c->fd -1): the idle pool owns it. */
void http_reuse_put(struct runtime *rt, struct backend *b, struct conn *c);
/* Takes b's newest idle connection into *out: true, or false when there is
 * none. */
bool http_reuse_take(struct backend *b, struct conn *out);
/* Closes b's idle connections (removed by a reload, disabled). */
void http_reuse_flush(struct backend *b);
/* Closes every idle connection of rt (stop). */
void http_reuse_flush_all(struct runtime *rt);
/* Closes rt's oldest idle connection: true, or false when none is left. */
bool http_reuse_trim(struct runtime *rt);

#endif
