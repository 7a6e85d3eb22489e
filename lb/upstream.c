/* upstream: picks a backend and connects to it without blocking, retrying
 * other backends on failure (see lb/upstream.h). A try is: the TCP
 * connect, the owner's plain-text first bytes (the PROXY header), then,
 * for a pool with "tls", the TLS handshake, all within the pool's
 * connect_timeout_ms. Each failed try is counted (backend failed, passive
 * ejection) and logged; a try that found no free descriptor is not a try:
 * it waits and comes back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "lb/clock.h"
#include "lb/http_reuse.h"
#include "lb/io/conn_tls.h"
#include "lb/io/sock.h"
#include "lb/io/tls_ctx.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/pool_health.h"
#include "lb/runtime.h"
#include "lb/upstream.h"

/* Retry period for a connect that found no free file descriptor. */
#define FD_WAIT_MS 100

void upstream_init(struct upstream *u, void *owner, struct listener *l, struct pool *pool,
                   void (*on_connected)(struct upstream *),
                   void (*on_failed)(struct upstream *, enum session_end))
{
    u->owner = owner;
    u->listener = l;
    u->pool = pool;
    pool->refs++;
    u->routed = false;
    u->backend = NULL;
    memset(&u->server, 0, sizeof(u->server));
    memset(&u->timer, 0, sizeof(u->timer));
    conn_tcp_init(&u->server.conn, -1);
    u->state = UPSTREAM_IDLE;
    u->fd_wait_ms = 0;
    u->fd_waiting = false;
    u->reuse = u->reused = false;
    u->idle = NULL;
    u->tls = NULL;
    u->try_start_ms = 0;
    u->queued = u->requeue = false;
    u->granted = NULL;
    u->queue_deadline_ms = 0;
    u->on_connected = on_connected;
    u->on_failed = on_failed;
    u->on_tcp_connected = NULL;
}

/* u got its descriptor (or gives up): accepting may resume once no
 * upstream waits any more. */
static void upstream_fd_wait_over(struct upstream *u)
{
    struct runtime *rt = u->listener->rt;
    if (!u->fd_waiting)
        return;
    u->fd_waiting = false;
    if (--rt->fd_waiters == 0)
        for (size_t i = 0; i < rt->nlisteners; i++)
            listener_refresh(rt->listeners[i]);
}

static void upstream_close_server(struct upstream *u, bool reset)
{
    if (u->idle) { /* its read event goes before the descriptor does */
        http_reuse_unwatch(u->idle);
        u->idle = NULL;
    }
    if (event_initialized(&u->server.wev))
        event_del(&u->server.wev);
    if (event_initialized(&u->server.rev))
        event_del(&u->server.rev);
    if (reset)
        u->server.conn.ops->reset(&u->server.conn);
    u->server.conn.ops->close(&u->server.conn); /* a TLS one's close_notify, then its SSL */
    conn_tcp_init(&u->server.conn, -1);
    tls_ctx_unref(u->tls); /* after the SSL it served */
    u->tls = NULL;
}

static void on_queue_event(evutil_socket_t fd, short what, void *arg);

/* Hands the slots free in pool to the sessions at the head of its queue,
 * oldest first, as long as the strategy finds a backend with room: each
 * gets its slot reserved now and connects from the loop. O(1) per slot. */
void upstream_queue_serve(struct pool *pool)
{
    struct upstream *h;
    while ((h = TAILQ_FIRST(&pool->queue)) != NULL) {
        struct backend *b = pool_pick(pool, &h->pick);
        if (b == NULL)
            return;
        TAILQ_REMOVE(&pool->queue, h, queue_link);
        pool->nqueued--;
        h->queued = false;
        h->granted = b;
        b->refs++;
        b->reserved++;
        event_active(&h->timer, EV_TIMEOUT, 1);
    }
}

/* Ends u's wait in its pool's queue, and gives back a slot reserved for it
 * (to the next in the queue). */
static void queue_leave(struct upstream *u)
{
    if (u->queued) {
        TAILQ_REMOVE(&u->pool->queue, u, queue_link);
        u->pool->nqueued--;
        u->queued = false;
    }
    u->requeue = false;
    struct backend *b = u->granted;
    if (b) {
        u->granted = NULL;
        b->reserved--;
        if (b->pool)
            upstream_queue_serve(b->pool);
        backend_release(b);
    }
}

/* Ends u's hold on its backend (after a failed try, or at release); the
 * slot goes to the head of the backend's pool's queue. */
static void upstream_drop_backend(struct upstream *u)
{
    struct backend *b = u->backend;
    LIST_REMOVE(u, backend_link);
    pool_conn_end(u->pool, b);
    u->backend = NULL;
    if (b->pool && b->pool->nqueued > 0)
        upstream_queue_serve(b->pool);
    backend_release(b);
}

void upstream_keep(struct upstream *u)
{
    struct backend *b = u->backend;
    if (event_initialized(&u->server.wev))
        event_del(&u->server.wev);
    if (event_initialized(&u->server.rev))
        event_del(&u->server.rev);
    /* A TLS connection whose layer already holds bytes (a close_notify
     * read ahead with the response, or anything unasked) would never wake
     * its idle read event: it is closed instead. */
    if (b && u->state == UPSTREAM_CONNECTED && conn_pending(&u->server.conn) == 0) {
        if (u->idle) { /* the SSL's context reference goes with the connection */
            u->idle->tls = u->tls;
            u->tls = NULL;
        }
        http_reuse_put(u->listener->rt, b, &u->server.conn, u->idle);
        u->idle = NULL;
    }
    upstream_release(u, false);
}

void upstream_release(struct upstream *u, bool reset)
{
    queue_leave(u);
    u->queue_deadline_ms = 0;
    upstream_fd_wait_over(u);
    if (event_initialized(&u->timer))
        event_del(&u->timer);
    upstream_close_server(u, reset);
    if (u->backend)
        upstream_drop_backend(u);
    u->state = UPSTREAM_IDLE;
    u->reused = false;
    u->pick.ntried = 0; /* a next connect starts with all its tries */
    u->fd_wait_ms = 0;
}

void upstream_free(struct upstream *u, bool reset)
{
    upstream_release(u, reset);
    pool_release(u->pool);
    u->pool = NULL;
}

/* The try on u->backend failed (what: "connect failed", "TLS handshake
 * failed"): count it (failed, passive ejection), log it, and release the
 * backend and its socket. */
static void upstream_try_failed(struct upstream *u, const char *what, const char *why)
{
    struct backend *b = u->backend;
    b->failed++;
    log_warn("pool %s backend %s %s: %s", u->pool->name, b->id, what, why);
    backend_connect_result(b, false);
    upstream_close_server(u, false);
    upstream_drop_backend(u);
    u->state = UPSTREAM_IDLE;
}

static void upstream_connected(struct upstream *u)
{
    u->state = UPSTREAM_CONNECTED;
    if (event_initialized(&u->server.wev))
        event_del(&u->server.wev);
    u->backend->total++;
    backend_connect_result(u->backend, true);
    u->on_connected(u);
}

/* What is left of the current try's connect_timeout_ms (at least 1 ms). */
static struct timeval upstream_time_left(const struct upstream *u)
{
    uint64_t spent = clock_ms(CLOCK_MONOTONIC) - u->try_start_ms;
    uint64_t limit = u->pool->connect_timeout_ms;
    return clock_timeval(spent < limit ? limit - spent : 1);
}

static void upstream_handshake_step(struct upstream *u);

/* The try ran out of connect_timeout_ms (connect or TLS handshake, what
 * says which): a failed try, then the next one. */
static void upstream_try_timed_out(struct upstream *u, const char *what)
{
    char why[64];
    snprintf(why, sizeof(why), "timed out after %u ms", u->pool->connect_timeout_ms);
    upstream_try_failed(u, what, why);
    upstream_connect(u);
}

static void on_handshake_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct upstream *u = arg;
    if (what & EV_TIMEOUT) {
        upstream_try_timed_out(u, "TLS handshake failed");
        return;
    }
    upstream_handshake_step(u);
}

/* Drives the handshake as far as the socket allows: connected, waiting
 * for the socket (within what is left of the try's time), or a failed try
 * with the reason (the certificate's, when it did not verify). */
static void upstream_handshake_step(struct upstream *u)
{
    const char *why = NULL;
    int r = conn_tls_handshake(&u->server.conn, &why);
    if (r > 0) {
        upstream_connected(u);
        return;
    }
    if (r < 0) {
        char buf[160];
        const char *verify = tls_verify_error(conn_tls_ssl(&u->server.conn), buf, sizeof(buf));
        upstream_try_failed(u, "TLS handshake failed", verify ? verify : why);
        upstream_connect(u);
        return;
    }
    short ev = conn_tls_wants(&u->server.conn) == CONN_WANT_WRITE ? EV_WRITE : EV_READ;
    struct timeval tv = upstream_time_left(u);
    if (event_initialized(&u->server.wev))
        event_del(&u->server.wev);
    event_assign(&u->server.wev, u->listener->rt->base, u->server.conn.fd, ev, on_handshake_io, u);
    if (event_add(&u->server.wev, &tv) < 0) {
        log_error("listener %s: cannot watch a socket: %s; closing a session", u->listener->name,
                  strerror(errno));
        u->on_failed(u, SESSION_END_INTERNAL_ERROR);
    }
}

/* The server side becomes a TLS connection through the pool's client
 * context (holding its reference) and starts the handshake. */
static void upstream_tls_start(struct upstream *u)
{
    int fd = u->server.conn.fd;
    SSL *ssl = tls_client_ssl_new(u->pool->tls, fd);
    if (!ssl || conn_tls_init(&u->server.conn, fd, ssl) < 0) {
        log_error("pool %s: out of memory for a TLS session; closing a session", u->pool->name);
        u->on_failed(u, SESSION_END_INTERNAL_ERROR);
        return;
    }
    u->tls = tls_ctx_ref(u->pool->tls);
    u->state = UPSTREAM_HANDSHAKE;
    upstream_handshake_step(u);
}

/* The TCP connect is done: the owner's plain-text first bytes (the PROXY
 * header, before any TLS record, as HAProxy's "send-proxy ssl"), then the
 * handshake or, for plain TCP, connected. */
static void upstream_tcp_connected(struct upstream *u)
{
    const char *why = u->on_tcp_connected ? u->on_tcp_connected(u) : NULL;
    if (why) {
        log_debug("listener %s: backend %s: cannot send the PROXY header: %s", u->listener->name,
                  u->backend->id, why);
        u->on_failed(u, SESSION_END_BACKEND_ERROR);
        return;
    }
    if (u->pool->tls)
        upstream_tls_start(u);
    else
        upstream_connected(u);
}

static void on_connect_done(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *u = arg;
    if (what & EV_TIMEOUT) {
        upstream_try_timed_out(u, "connect failed");
        return;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        upstream_try_failed(u, "connect failed", strerror(err));
        upstream_connect(u);
        return;
    }
    event_del(&u->server.wev);
    upstream_tcp_connected(u);
}

static void on_fd_wait_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    upstream_connect(arg);
}

/* socket() failed with err. Out of descriptors (or kernel memory), the
 * client waits: accepts pause and the connect is tried again every
 * FD_WAIT_MS, for up to connect_timeout_ms, since a session ending anywhere
 * frees two descriptors. Any other error ends the session. */
static void upstream_wait_fd(struct upstream *u, int err)
{
    struct pool *pool = u->pool;
    if (!errno_starved(err) || u->fd_wait_ms >= pool->connect_timeout_ms) {
        log_error("pool %s: cannot create a socket: %s", pool->name, strerror(err));
        u->on_failed(u, SESSION_END_CONNECT_FAILED);
        return;
    }
    static time_t last_logged;
    if (log_second_passed(&last_logged))
        log_error("pool %s: cannot create a socket: %s; clients wait for a free descriptor",
                  pool->name, strerror(err));
    if (!u->fd_waiting) {
        struct runtime *rt = u->listener->rt;
        u->fd_waiting = true;
        if (rt->fd_waiters++ == 0) /* every listener stops while one waits */
            for (size_t i = 0; i < rt->nlisteners; i++)
                listener_refresh(rt->listeners[i]);
    }
    u->state = UPSTREAM_WAIT_FD;
    u->fd_wait_ms += FD_WAIT_MS;
    evtimer_assign(&u->timer, u->listener->rt->base, on_fd_wait_timer, u);
    struct timeval tv = {0, FD_WAIT_MS * 1000};
    evtimer_add(&u->timer, &tv);
}

void upstream_set_pool(struct upstream *u, struct pool *pool)
{
    pool->refs++;
    pool_release(u->pool);
    u->pool = pool;
    u->routed = true;
}

/* A reload replaced u's pool while it was still connecting (the retired
 * generation picks nothing): retry in the current pool that serves its
 * listener (or, for a removed listener's or an SNI route's, the current
 * pool of the same name). */
void upstream_follow_reload(struct upstream *u)
{
    if (!u->pool->retired)
        return;
    struct listener *l = u->listener;
    struct pool *cur = l->retired || u->routed ? runtime_find_pool(l->rt, u->pool->name) : l->pool;
    if (!cur || cur == u->pool)
        return;
    cur->refs++;
    pool_release(u->pool);
    u->pool = cur;
}

/* u holds b from now on (counted as one of its connections). */
static void upstream_hold(struct upstream *u, struct backend *b)
{
    u->backend = b;
    b->refs++;
    LIST_INSERT_HEAD(&b->upstreams, u, backend_link);
    pool_conn_start(u->pool, b);
}

/* Takes an idle connection of b when it has one: true when u is connected
 * (on_connected has run). */
static bool upstream_take_idle(struct upstream *u, struct backend *b)
{
    if (!u->reuse || u->pool->reuse_max_idle == 0)
        return false;
    /* The owner sets its callback. */
    u->idle = http_reuse_take(b, u->pool->tls, &u->server.conn, NULL, NULL);
    if (!u->idle)
        return false;
    u->tls = u->idle->tls; /* a TLS connection's context reference */
    u->idle->tls = NULL;
    upstream_hold(u, b);
    u->reused = true;
    u->state = UPSTREAM_CONNECTED;
    b->reused++;
    b->total++;
    u->on_connected(u);
    return true;
}

/* Starts a connect to b on a new socket: 1 when under way or done (u's
 * callbacks take it from there), 0 when it failed at once (counted; try
 * another), -1 when no socket could be made (u waits or failed). */
static int upstream_try(struct upstream *u, struct backend *b)
{
    struct pool *pool = u->pool;
    int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        u->pick.ntried--; /* this try never reached the backend */
        upstream_wait_fd(u, errno);
        return -1;
    }
    upstream_fd_wait_over(u);
    sock_set_nodelay(fd);
    sock_set_keepalive(fd, &pool->keepalive, "pool", pool->name);
    conn_tcp_init(&u->server.conn, fd);
    upstream_hold(u, b);
    u->state = UPSTREAM_CONNECTING;
    u->try_start_ms = clock_ms(CLOCK_MONOTONIC);

    if (connect(fd, (struct sockaddr *)&b->addr, b->addrlen) == 0) {
        upstream_tcp_connected(u);
        return 1;
    }
    if (errno == EINPROGRESS) {
        struct timeval tv = clock_timeval(pool->connect_timeout_ms);
        event_assign(&u->server.wev, u->listener->rt->base, fd, EV_WRITE, on_connect_done, u);
        if (event_add(&u->server.wev, &tv) < 0) {
            log_error("listener %s: cannot watch a socket: %s; closing a session",
                      u->listener->name, strerror(errno));
            u->on_failed(u, SESSION_END_INTERNAL_ERROR);
        }
        return 1;
    }
    /* Immediate failure: account for it like a late one. */
    upstream_try_failed(u, "connect failed", strerror(errno));
    return 0;
}

/* Every available backend of u's pool is full (or others wait already):
 * u joins the tail of the queue, for what is left of queue_timeout_ms, or
 * is refused when the queue is full. */
static void queue_join(struct upstream *u)
{
    struct pool *pool = u->pool;
    if (pool->nqueued >= pool->queue_max) {
        pool->queue_full++;
        u->on_failed(u, SESSION_END_QUEUE_FULL);
        return;
    }
    upstream_fd_wait_over(u);
    uint64_t now = clock_ms(CLOCK_MONOTONIC);
    if (u->queue_deadline_ms == 0)
        u->queue_deadline_ms = now + pool->queue_timeout_ms;
    TAILQ_INSERT_TAIL(&pool->queue, u, queue_link);
    u->queued = true;
    u->state = UPSTREAM_QUEUED;
    if (++pool->nqueued > pool->queue_max_seen)
        pool->queue_max_seen = pool->nqueued;
    if (event_initialized(&u->timer))
        event_del(&u->timer);
    evtimer_assign(&u->timer, u->listener->rt->base, on_queue_event, u);
    struct timeval tv = clock_timeval(u->queue_deadline_ms > now ? u->queue_deadline_ms - now : 0);
    evtimer_add(&u->timer, &tv);
}

/* u->timer while queued: a slot was granted, a reload moved the queue, or
 * the queue timeout passed. */
static void on_queue_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct upstream *u = arg;
    event_del(&u->timer);
    struct backend *b = u->granted;
    if (b) {
        u->granted = NULL;
        b->reserved--;
        u->state = UPSTREAM_IDLE;
        /* Drained, disabled or removed since: the slot helps no one here. */
        if (!backend_available(b) || b->removed || b->pool != u->pool) {
            if (b->pool)
                upstream_queue_serve(b->pool);
            backend_release(b);
            upstream_connect(u);
            return;
        }
        u->pick.tried[u->pick.ntried++] = b;
        int r = upstream_take_idle(u, b) ? 1 : upstream_try(u, b);
        backend_release(b);
        if (r == 0)
            upstream_connect(u);
        return;
    }
    if (u->requeue) {
        u->requeue = false;
        u->state = UPSTREAM_IDLE;
        upstream_connect(u);
        return;
    }
    if (!u->queued)
        return;
    TAILQ_REMOVE(&u->pool->queue, u, queue_link);
    u->pool->nqueued--;
    u->queued = false;
    u->state = UPSTREAM_IDLE;
    u->pool->queue_timeouts++;
    u->on_failed(u, SESSION_END_QUEUE_TIMEOUT);
}

void upstream_queue_move(struct pool *pool)
{
    struct upstream *u;
    while ((u = TAILQ_FIRST(&pool->queue)) != NULL) {
        TAILQ_REMOVE(&pool->queue, u, queue_link);
        pool->nqueued--;
        u->queued = false;
        u->requeue = true;
        event_active(&u->timer, EV_TIMEOUT, 1);
    }
}

void upstream_connect(struct upstream *u)
{
    upstream_follow_reload(u);
    struct pool *pool = u->pool;
    /* First come, first served: while others wait (once they had any room
     * there is), a new session waits behind them. */
    if (u->pick.ntried == 0 && pool->nqueued > 0 && !pool->retired) {
        upstream_queue_serve(pool);
        if (pool->nqueued > 0) {
            queue_join(u);
            return;
        }
    }
    while (u->pick.ntried <= pool->retries && u->pick.ntried < LB_MAX_TRIES) {
        struct backend *b = pool_pick(pool, &u->pick);
        if (!b && u->pick.ntried == 0 && pool_has_available(pool)) {
            queue_join(u); /* every available backend is full */
            return;
        }
        if (!b) {
            if (u->pick.ntried == 0)
                pool->rejected++;
            u->on_failed(u,
                         u->pick.ntried == 0 ? SESSION_END_NO_BACKEND : SESSION_END_CONNECT_FAILED);
            return;
        }
        u->pick.tried[u->pick.ntried++] = b;
        if (upstream_take_idle(u, b) || upstream_try(u, b) != 0)
            return;
    }
    u->on_failed(u, SESSION_END_CONNECT_FAILED);
}

void upstream_reconnect(struct upstream *u)
{
    struct backend *b = u->backend;
    b->refs++;     /* across the drop */
    b->reserved++; /* and its slot: no waiter in the queue takes it meanwhile */
    upstream_close_server(u, false);
    upstream_drop_backend(u);
    b->reserved--;
    u->reused = false;
    u->state = UPSTREAM_IDLE;
    /* The fresh connect is made whatever the pool's retries (the reused
     * connection's failure was no failure of the backend), but counted as a
     * try: further ones stay within retries. A backend no longer available
     * gets none. */
    int r = 0;
    if (backend_available(b) && u->pick.ntried < LB_MAX_TRIES) {
        u->pick.tried[u->pick.ntried++] = b;
        r = upstream_try(u, b);
    }
    backend_release(b);
    if (r == 0)
        upstream_connect(u);
}
