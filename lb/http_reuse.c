/* http_reuse: the backend connections of http mode between requests
 * (lb/http_reuse.h). */
#include <stdlib.h>

#include "lb/clock.h"
#include "lb/http_reuse.h"
#include "lb/io/tls_ctx.h"
#include "lb/pool.h"
#include "lb/runtime.h"

static void idle_close(struct http_idle *i)
{
    struct backend *b = i->b;
    struct runtime *rt = i->rt;
    TAILQ_REMOVE(&b->idle, i, link);
    TAILQ_REMOVE(&rt->idle, i, lru);
    b->nidle--;
    rt->nidle--;
    event_del(&i->timer);
    event_del(&i->rev);
    i->conn.ops->close(&i->conn); /* a TLS one's close_notify */
    tls_ctx_unref(i->tls);
    backend_release(b);
    free(i);
}

/* The connection's read event: in use, the owner's; idle, the backend
 * closed it or sent something nobody asked for, and it can carry no
 * request. */
static void on_conn_readable(evutil_socket_t fd, short what, void *arg)
{
    struct http_idle *i = arg;
    if (!i->idle) {
        i->on_read(fd, what, i->owner);
        return;
    }
    idle_close(i);
}

/* Unused for the pool's idle timeout. */
static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    idle_close(arg);
}

struct http_idle *http_reuse_watch(struct runtime *rt, int fd, event_callback_fn on_read,
                                   void *owner)
{
    struct http_idle *i = calloc(1, sizeof(*i));
    if (!i)
        return NULL;
    i->rt = rt;
    i->on_read = on_read;
    i->owner = owner;
    conn_tcp_init(&i->conn, -1);
    event_assign(&i->rev, rt->base, fd, EV_READ | EV_PERSIST, on_conn_readable, i);
    evtimer_assign(&i->timer, rt->base, on_idle_timeout, i);
    return i;
}

void http_reuse_unwatch(struct http_idle *i)
{
    event_del(&i->rev);
    event_del(&i->timer);
    free(i);
}

static bool backend_takes_requests(const struct backend *b)
{
    return b->pool && !b->pool->retired && !b->removed && b->admin == BACKEND_ENABLED &&
           backend_available(b);
}

void http_reuse_put(struct runtime *rt, struct backend *b, struct conn *c, struct http_idle *i)
{
    const struct pool *pool = b->pool;
    /* Room for a new session's two descriptors stays free beside it. */
    bool short_fds =
        2 * rt->active + rt->nidle + 2 * (uint64_t)rt->pipes.open + 4 > rt->fd_data_max;
    if (!i || rt->stopping || short_fds || !backend_takes_requests(b) ||
        pool->reuse_max_idle == 0) {
        struct tls_ctx *tls = i ? i->tls : NULL;
        if (i)
            http_reuse_unwatch(i);
        c->ops->close(c);
        tls_ctx_unref(tls); /* after the SSL it served */
        return;
    }
    if (b->nidle >= pool->reuse_max_idle)
        idle_close(TAILQ_LAST(&b->idle, backend_idle));
    i->b = b;
    b->refs++;
    i->conn = *c;
    conn_tcp_init(c, -1);
    i->idle = true;
    i->owner = NULL;
    TAILQ_INSERT_HEAD(&b->idle, i, link);
    TAILQ_INSERT_HEAD(&rt->idle, i, lru);
    b->nidle++;
    rt->nidle++;
    struct timeval tv = clock_timeval(pool->reuse_idle_timeout_ms);
    /* The read event stays as it was: added, or added now (a response that
     * filled the buffer had it off). */
    if ((!event_pending(&i->rev, EV_READ, NULL) && event_add(&i->rev, NULL) < 0) ||
        evtimer_add(&i->timer, &tv) < 0)
        idle_close(i);
}

struct http_idle *http_reuse_take(struct backend *b, const struct tls_ctx *tls, struct conn *out,
                                  event_callback_fn on_read, void *owner)
{
    struct http_idle *i;
    while ((i = TAILQ_FIRST(&b->idle)) && i->tls != tls)
        idle_close(i); /* made before a reload, with other settings */
    if (!i)
        return NULL;
    TAILQ_REMOVE(&b->idle, i, link);
    TAILQ_REMOVE(&i->rt->idle, i, lru);
    b->nidle--;
    i->rt->nidle--;
    event_del(&i->timer);
    *out = i->conn;
    conn_tcp_init(&i->conn, -1);
    i->idle = false;
    i->on_read = on_read;
    i->owner = owner;
    i->b = NULL;
    backend_release(b); /* the pool holds b; the upstream takes its own reference */
    return i;
}

void http_reuse_flush(struct backend *b)
{
    while (!TAILQ_EMPTY(&b->idle))
        idle_close(TAILQ_FIRST(&b->idle));
}

void http_reuse_flush_all(struct runtime *rt)
{
    while (http_reuse_trim(rt))
        ;
}

bool http_reuse_trim(struct runtime *rt)
{
    struct http_idle *i = TAILQ_LAST(&rt->idle, http_idle_list);
    if (!i)
        return false;
    idle_close(i);
    return true;
}
