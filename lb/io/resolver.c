/* resolver: a c-ares channel on lb's event loop (see resolver.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lb/io/resolver.h"

/* The sockets of one channel: c-ares opens one per server it talks to
 * (UDP, and TCP for truncated answers), so a few at most. */
struct resolver_sock {
    ares_socket_t fd;
    struct event *ev;
    short what; /* EV_READ | EV_WRITE wanted */
};

struct resolver {
    struct event_base *base;
    ares_channel channel;
    struct event *timer;
    struct resolver_sock *socks;
    size_t nsocks, socks_cap;
    char *servers; /* as given; NULL: the system's */
    int freeing;
};

static int library_users;

static void resolver_arm(struct resolver *r)
{
    struct timeval tv, *t;
    if (r->freeing)
        return;
    t = ares_timeout(r->channel, NULL, &tv);
    if (t)
        evtimer_add(r->timer, t);
    else
        evtimer_del(r->timer);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    struct resolver *r = arg;
    ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    resolver_arm(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct resolver *r = arg;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    resolver_arm(r);
}

/* c-ares wants fd watched for reading and/or writing, or no more. An
 * event freed here may be the one whose callback is running: libevent
 * allows that, and on_sock does not touch it after ares_process_fd(). */
static void on_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = arg;
    short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    size_t i;
    for (i = 0; i < r->nsocks && r->socks[i].fd != fd; i++)
        ;
    if (i < r->nsocks) {
        struct resolver_sock *s = &r->socks[i];
        if (what == s->what)
            return;
        event_free(s->ev);
        s->ev = NULL;
        if (what == 0) {
            r->socks[i] = r->socks[--r->nsocks];
            return;
        }
    } else {
        if (what == 0)
            return;
        if (r->nsocks == r->socks_cap) {
            size_t cap = r->socks_cap ? r->socks_cap * 2 : 4;
            struct resolver_sock *v = realloc(r->socks, cap * sizeof(*v));
            if (!v)
                return; /* unwatched: the query ends by its timeout */
            r->socks = v;
            r->socks_cap = cap;
        }
        i = r->nsocks++;
        r->socks[i].fd = fd;
    }
    struct resolver_sock *s = &r->socks[i];
    s->what = what;
    s->ev = event_new(r->base, fd, (short)(what | EV_PERSIST), on_sock, r);
    if (!s->ev || event_add(s->ev, NULL) < 0) {
        if (s->ev)
            event_free(s->ev);
        r->socks[i] = r->socks[--r->nsocks]; /* unwatched: ends by its timeout */
    }
}

struct resolver *resolver_new(struct event_base *base, const char *servers, char *err,
                              size_t errlen)
{
    struct ares_options opts;
    int rc;
    struct resolver *r = calloc(1, sizeof(*r));
    if (!r || (servers && !(r->servers = strdup(servers)))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (library_users == 0 && (rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(r->servers);
        free(r);
        return NULL;
    }
    library_users++;
    r->base = base;
    memset(&opts, 0, sizeof(opts));
    opts.sock_state_cb = on_sock_state;
    opts.sock_state_cb_data = r;
    opts.timeout = RESOLVER_TIMEOUT_MS;
    opts.tries = RESOLVER_TRIES;
    rc = ares_init_options(&r->channel, &opts,
                           ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        r->channel = NULL;
        resolver_free(r);
        return NULL;
    }
    if (servers && (rc = ares_set_servers_ports_csv(r->channel, servers)) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: resolvers \"%s\": %s", servers, ares_strerror(rc));
        resolver_free(r);
        return NULL;
    }
    if (!(r->timer = evtimer_new(base, on_timer, r))) {
        snprintf(err, errlen, "out of memory");
        resolver_free(r);
        return NULL;
    }
    return r;
}

ares_channel resolver_channel(struct resolver *r)
{
    return r->channel;
}

void resolver_kick(struct resolver *r)
{
    resolver_arm(r);
}

const char *resolver_servers(const struct resolver *r)
{
    return r->servers ? r->servers : "system";
}

void resolver_free(struct resolver *r)
{
    if (!r)
        return;
    r->freeing = 1;
    if (r->channel)
        ares_destroy(r->channel); /* callbacks run, then on_sock_state closes */
    for (size_t i = 0; i < r->nsocks; i++)
        event_free(r->socks[i].ev);
    free(r->socks);
    if (r->timer)
        event_free(r->timer);
    free(r->servers);
    free(r);
    if (--library_users == 0)
        ares_library_cleanup();
}
