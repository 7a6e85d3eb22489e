/* http_reuse: the idle backend connections of http mode (lb/http_reuse.h). */
#include <stdlib.h>

#include <event2/event.h>

#include "lb/clock.h"
#include "lb/http_reuse.h"
#include "lb/pool.h"
#include "lb/runtime.h"

static void idle_close(struct http_idle *i)
{
    struct backend *b = i->b;
    struct runtime *rt = i->rt;
    event_del(&i->ev);
    TAILQ_REMOVE(&b->idle, i, link);
    TAILQ_REMOVE(&rt->idle, i, lru);
    b->nidle--;
    rt->nidle--;
    i->conn.ops->close(&i->conn);
    backend_release(b);
    free(i);
}

/* The backend closed it, sent something nobody asked for, or it stayed
 * unused for the pool's idle timeout: none of it can carry a request. */
static void on_idle_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    idle_close(arg);
}

static bool backend_takes_requests(const struct backend *b)
{
    return b->pool && !b->pool->retired && !b->removed && b->admin == BACKEND_ENABLED &&
           backend_available(b);
}

void http_reuse_put(struct runtime *rt, struct backend *b, struct conn *c)
{
    const struct pool *pool = b->pool;
    /* Room for a new session's two descriptors stays free beside it. */
    bool short_fds =
        2 * rt->active + rt->nidle + 2 * (uint64_t)rt->pipes.open + 4 > rt->fd_data_max;
    struct http_idle *i = NULL;
    if (!rt->stopping && !short_fds && backend_takes_requests(b) && pool->reuse_max_idle > 0)
        i = malloc(sizeof(*i));
    if (!i) {
        c->ops->close(c);
        return;
    }
    if (b->nidle >= pool->reuse_max_idle)
        idle_close(TAILQ_LAST(&b->idle, backend_idle));
    i->b = b;
    b->refs++;
    i->rt = rt;
    i->conn = *c;
    c->fd = -1;
    event_assign(&i->ev, rt->base, i->conn.fd, EV_READ, on_idle_event, i);
    struct timeval tv = clock_timeval(pool->reuse_idle_timeout_ms);
    TAILQ_INSERT_HEAD(&b->idle, i, link);
    TAILQ_INSERT_HEAD(&rt->idle, i, lru);
    b->nidle++;
    rt->nidle++;
    if (event_add(&i->ev, &tv) < 0)
        idle_close(i);
}

bool http_reuse_take(struct backend *b, struct conn *out)
{
    struct http_idle *i = TAILQ_FIRST(&b->idle);
    if (!i)
        return false;
    *out = i->conn;
    i->conn.fd = -1; /* idle_close's close() of a closed conn does nothing */
    conn_tcp_init(&i->conn, -1);
    idle_close(i);
    return true;
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
