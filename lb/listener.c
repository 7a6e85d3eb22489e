/* listener: one listening socket and its accept policy. Stops accepting at
 * max_connections (new clients wait in the kernel backlog) and, when the
 * process runs out of file descriptors, pauses for a moment instead of
 * spinning on a listen socket it cannot serve. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "lb/log.h"
#include "lb/runtime.h"

#define EMFILE_PAUSE_MS 100

void listener_refresh(struct listener *l)
{
    if (!l->evl)
        return;
    /* While a session waits for a descriptor, a new client would take the
     * one it waits for: accept nothing until the waiters are served. */
    if (l->full || l->starved || l->rt->fd_full || l->rt->fd_waiters > 0)
        evconnlistener_disable(l->evl);
    else
        evconnlistener_enable(l->evl);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)evl;
    struct listener *l = arg;
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
    time_t now = time(NULL);
    if (now != last_logged) {
        last_logged = now;
        log_error("listener %s: accept failed: %s (open sessions: %llu); pausing accepts "
                  "for %d ms",
                  l->name, strerror(err), (unsigned long long)l->rt->active, EMFILE_PAUSE_MS);
    }
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

int listener_open(struct listener *l, char *err, size_t errlen)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket: %s", l->name, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6) /* [::]:80 must not take 0.0.0.0:80 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) < 0) {
        snprintf(err, errlen, "listener %s: cannot listen on %s: %s", l->name, l->listen,
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "listener %s: listen on %s: %s", l->name, l->listen, strerror(errno));
        close(fd);
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
    return 0;
}

void listener_close(struct listener *l)
{
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
