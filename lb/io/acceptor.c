/* acceptor: see acceptor.h. The socket's event is pending exactly while the
 * owner enables it and no pause holds it, so a disabled acceptor costs the
 * loop nothing and one out of descriptors wakes it once per pause, not on
 * every pass. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lb/clock.h"
#include "lb/io/acceptor.h"
#include "lb/io/sock.h"
#include "lb/log.h"

struct acceptor {
    struct event_base *base;
    int fd;
    struct event *ev;     /* EV_READ | EV_PERSIST on fd, pending while watching */
    struct event *resume; /* ends a pause */
    struct acceptor_conf conf;
    char *name; /* conf.name's copy; NULL without */
    acceptor_fn *fn;
    void *arg;
    bool enabled;  /* the owner's wish */
    bool paused;   /* out of descriptors, until resume fires */
    bool watching; /* ev is pending */
    bool *freed;   /* set when freed from inside fn */
};

/* Makes ev pending exactly when the owner enables a and no pause holds it. */
static void acceptor_update(struct acceptor *a)
{
    bool want = a->enabled && !a->paused;
    if (want == a->watching)
        return;
    if (!want) {
        event_del(a->ev);
        a->watching = false;
        return;
    }
    if (event_add(a->ev, NULL) < 0) {
        log_error("%s%s%s: cannot watch the listening socket: %s", a->conf.owner,
                  a->name ? " " : "", a->name ? a->name : "", strerror(errno));
        return;
    }
    a->watching = true;
}

int acceptor_accept(struct acceptor *a, struct sockaddr_storage *sa, socklen_t *salen)
{
    for (;;) {
        *salen = sizeof(*sa);
        int fd = accept4(a->fd, (struct sockaddr *)sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED))
            return fd;
    }
}

/* accept() failed with err: a queue found empty ends the batch quietly, a
 * shortage of descriptors pauses (one line a second), anything else is
 * logged and the next readiness tries again. */
static void acceptor_failed(struct acceptor *a, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
        return;
    const char *sep = a->name ? " " : "", *name = a->name ? a->name : "";
    if (!errno_starved(err)) {
        log_warn("%s%s%s: accept failed: %s", a->conf.owner, sep, name, strerror(err));
        return;
    }
    /* The pending client stays in the backlog; retry shortly, or sooner
     * when the owner frees a descriptor (acceptor_resume()). */
    static time_t unshared; /* for an owner that gave no state of its own */
    if (log_second_passed(a->conf.starved_logged ? a->conf.starved_logged : &unshared)) {
        char note[128] = "";
        if (a->conf.starved_note)
            a->conf.starved_note(a->arg, note, sizeof(note));
        log_error("%s%s%s: accept failed: %s%s; pausing accepts for %u ms", a->conf.owner, sep,
                  name, strerror(err), note, a->conf.pause_ms);
    }
    acceptor_pause(a);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct acceptor *a = arg;
    bool freed = false;
    a->freed = &freed;
    for (unsigned i = 0; i < a->conf.batch && a->watching; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int cfd = accept4(a->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            acceptor_failed(a, errno);
            break;
        }
        a->fn(a->arg, cfd, (struct sockaddr *)&sa, len);
        if (freed)
            return;
    }
    a->freed = NULL;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct acceptor *a = arg;
    a->paused = false;
    acceptor_update(a);
}

struct acceptor *acceptor_new(struct event_base *base, int fd, const struct acceptor_conf *conf,
                              acceptor_fn *fn, void *arg)
{
    struct acceptor *a = calloc(1, sizeof(*a));
    if (!a)
        goto fail;
    a->base = base;
    a->fd = fd;
    a->conf = *conf;
    a->fn = fn;
    a->arg = arg;
    a->name = conf->name ? strdup(conf->name) : NULL;
    a->conf.name = NULL; /* the copy is a->name */
    a->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, a);
    a->resume = evtimer_new(base, on_resume, a);
    if ((conf->name && !a->name) || !a->ev || !a->resume || event_add(a->ev, NULL) < 0)
        goto fail;
    a->enabled = a->watching = true;
    return a;
fail:
    if (a) {
        a->fd = -1; /* closed below */
        acceptor_free(a);
    }
    close(fd);
    return NULL;
}

static void close_later(evutil_socket_t unused, short what, void *arg)
{
    (void)unused;
    (void)what;
    close((int)(intptr_t)arg);
}

void acceptor_free(struct acceptor *a)
{
    if (!a)
        return;
    if (a->freed)
        *a->freed = true;
    if (a->ev)
        event_free(a->ev);
    if (a->resume)
        event_free(a->resume);
    /* The socket may live on in another process (a binary upgrade sent or
     * took it, lb/upgrade.h): closed now, before the loop's next wait
     * applied the EPOLL_CTL_DEL that event_free() only queued (the
     * changelist), it would stay in epoll's set, reported ready forever.
     * So it closes once that wait ran. */
    struct timeval now = {0, 0};
    if (a->fd >= 0 && (!a->base || event_base_once(a->base, -1, EV_TIMEOUT, close_later,
                                                   (void *)(intptr_t)a->fd, &now) < 0))
        close(a->fd);
    free(a->name);
    free(a);
}

int acceptor_fd(const struct acceptor *a)
{
    return a->fd;
}

void acceptor_set_handler(struct acceptor *a, acceptor_fn *fn, void *arg)
{
    a->fn = fn;
    a->arg = arg;
}

int acceptor_rename(struct acceptor *a, const char *name)
{
    char *copy = name ? strdup(name) : NULL;
    if (name && !copy)
        return -1;
    free(a->name);
    a->name = copy;
    return 0;
}

void acceptor_enable(struct acceptor *a, bool on)
{
    a->enabled = on;
    acceptor_update(a);
}

void acceptor_pause(struct acceptor *a)
{
    a->paused = true;
    acceptor_update(a);
    struct timeval tv = clock_timeval(a->conf.pause_ms);
    evtimer_add(a->resume, &tv);
}

void acceptor_resume(struct acceptor *a)
{
    if (!a->paused)
        return;
    a->paused = false;
    evtimer_del(a->resume);
    acceptor_update(a);
}

bool acceptor_paused(const struct acceptor *a)
{
    return a->paused;
}
