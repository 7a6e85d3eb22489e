/* listener: one listening socket and its accept policy. Stops accepting at
 * max_connections (new clients wait in the kernel backlog) and, when the
 * process runs out of file descriptors, pauses for a moment instead of
 * spinning on a listen socket it cannot serve. When a reload moves a
 * listener to an overlapping address, the new listener also drains the old
 * socket for a moment (listener_adopt()); a listener a reload removes
 * accepts what is already queued before it closes (listener_drain()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "lb/io/listen_socket.h"
#include "lb/log.h"
#include "lb/io/sock.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/session.h"
#include "lb/runtime.h"

#define EMFILE_PAUSE_MS 100
/* How long a moved listener keeps accepting on its old socket: handshakes
 * under way there complete within a round trip, new ones go elsewhere. */
#define MOVE_DRAIN_MS 1000

void listener_destroy(struct listener *l)
{
    if (!l)
        return;
    listener_close(l);
    pool_release(l->pool);
    free(l->name);
    free(l->listen);
    free(l);
}

struct listener *listener_create(struct runtime *rt, const struct lb_listener_conf *c,
                                 struct pool *pool)
{
    struct listener *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->rt = rt;
    l->name = strdup(c->name);
    l->listen = strdup(c->listen);
    if (!l->name || !l->listen) {
        listener_destroy(l);
        return NULL;
    }
    memcpy(&l->addr, &c->addr, sizeof(l->addr));
    l->addrlen = c->addrlen;
    l->mode = c->mode;
    l->pool = pool;
    l->pool->refs++;
    l->max_connections = c->max_connections;
    l->idle_timeout_ms = c->idle_timeout_ms;
    l->keepalive = c->keepalive;
    return l;
}

void listener_refresh(struct listener *l)
{
    if (!l->evl)
        return;
    /* While a session waits for a descriptor, a new client would take the
     * one it waits for: accept nothing until the waiters are served. */
    bool off = l->full || l->starved || l->rt->fd_full || l->rt->fd_waiters > 0;
    if (off)
        evconnlistener_disable(l->evl);
    else
        evconnlistener_enable(l->evl);
    if (l->drain_evl && off)
        evconnlistener_disable(l->drain_evl);
    else if (l->drain_evl)
        evconnlistener_enable(l->drain_evl);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct listener *l = arg;
    if (evl == l->drain_evl)
        listen_socket_unstop(fd); /* the old socket's SYN filter came along */
    session_start(l, fd, sa, (socklen_t)salen);
    if (l->active >= l->max_connections && !l->full) {
        l->full = true;
        log_debug("listener %s: %u connections open, pausing accepts", l->name, l->max_connections);
        listener_refresh(l);
    }
}

static void on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    l->starved = false;
    listener_refresh(l);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    (void)evl;
    struct listener *l = arg;
    int err = errno;
    if (!errno_starved(err)) {
        log_warn("listener %s: accept failed: %s", l->name, strerror(err));
        return;
    }
    /* The pending client stays in the backlog; retry shortly, or sooner
     * when a session ends and frees a descriptor. */
    static time_t last_logged;
    if (log_second_passed(&last_logged))
        log_error("listener %s: accept failed: %s (open sessions: %llu); pausing accepts "
                  "for %d ms",
                  l->name, strerror(err), (unsigned long long)l->rt->active, EMFILE_PAUSE_MS);
    listener_pause(l);
}

void listener_pause(struct listener *l)
{
    if (!l->evl)
        return;
    l->starved = true;
    listener_refresh(l);
    struct timeval tv = {0, EMFILE_PAUSE_MS * 1000};
    evtimer_add(l->resume_timer, &tv);
}

int listener_open(struct listener *l, bool reuseport, char *err, size_t errlen)
{
    const char *step;
    int fd = listen_socket_open(&l->addr, l->addrlen, reuseport, &step);
    if (fd < 0) {
        if (strcmp(step, "socket") == 0)
            snprintf(err, errlen, "listener %s: socket: %s", l->name, strerror(errno));
        else if (strcmp(step, "bind") == 0)
            snprintf(err, errlen, "listener %s: cannot listen on %s: %s", l->name, l->listen,
                     strerror(errno));
        else
            snprintf(err, errlen, "listener %s: listen on %s: %s", l->name, l->listen,
                     strerror(errno));
        return -1;
    }
    l->resume_timer = evtimer_new(l->rt->base, on_resume_timer, l);
    l->evl = l->resume_timer
                 ? evconnlistener_new(l->rt->base, on_accept, l,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd)
                 : NULL;
    if (!l->evl) {
        snprintf(err, errlen, "listener %s: out of memory", l->name);
        if (l->resume_timer)
            event_free(l->resume_timer);
        l->resume_timer = NULL;
        close(fd);
        return -1;
    }
    evconnlistener_set_error_cb(l->evl, on_accept_error);
    listener_refresh(l); /* born disabled while sessions hold every descriptor */
    return 0;
}

int listener_fd(const struct listener *l)
{
    return l->evl ? evconnlistener_get_fd(l->evl) : -1;
}

static void drain_end(struct listener *l)
{
    if (l->drain_evl)
        evconnlistener_free(l->drain_evl); /* closes the old socket */
    l->drain_evl = NULL;
    if (l->drain_timer)
        event_free(l->drain_timer);
    l->drain_timer = NULL;
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    log_debug("listener %s: old socket closed after the move", l->name);
    drain_end(l);
}

void listener_adopt(struct listener *l, struct listener *old)
{
    if (!old->evl)
        return;
    drain_end(l); /* a second move within the drain time: the older socket goes */
    int fd = evconnlistener_get_fd(old->evl);
    struct timeval tv = {MOVE_DRAIN_MS / 1000, MOVE_DRAIN_MS % 1000 * 1000};
    l->drain_timer = evtimer_new(l->rt->base, on_drain_timer, l);
    if (!l->drain_timer || listen_socket_stop(fd) < 0 || evtimer_add(l->drain_timer, &tv) < 0) {
        drain_end(l);
        listener_drain(old, l); /* cannot stop new handshakes: take the queue, close */
        return;
    }
    l->drain_evl = old->evl;
    old->evl = NULL;
    evconnlistener_set_cb(l->drain_evl, on_accept, l);
    evconnlistener_set_error_cb(l->drain_evl, on_accept_error);
    listener_refresh(l);
}

void listener_drain(struct listener *l, struct listener *into)
{
    int lfd = l->evl ? evconnlistener_get_fd(l->evl) : -1;
    /* Not beyond the descriptors sessions may use: the rest is reset. */
    while (lfd >= 0 && !l->rt->fd_full) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* EAGAIN: the queue is empty; anything else: give up */
        }
        session_start(into, fd, (struct sockaddr *)&sa, len);
    }
    listener_close(l); /* with the old socket it may still drain */
}

void listener_close(struct listener *l)
{
    drain_end(l);
    if (l->evl) {
        evconnlistener_free(l->evl);
        l->evl = NULL;
    }
    if (l->resume_timer) {
        event_free(l->resume_timer);
        l->resume_timer = NULL;
    }
}

void listener_resume(struct listener *l)
{
    bool changed = false;
    if (l->full && l->active < l->max_connections) {
        l->full = false;
        changed = true;
    }
    if (l->starved) { /* a descriptor was just freed: try again now */
        l->starved = false;
        evtimer_del(l->resume_timer);
        changed = true;
    }
    if (changed)
        listener_refresh(l);
}
