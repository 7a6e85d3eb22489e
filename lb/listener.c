/* listener: one listening socket and its accept policy; the accept loop
 * itself is lb/io/acceptor.c. Stops accepting at max_connections (new
 * clients wait in the kernel backlog) and, when the process runs out of
 * file descriptors, pauses for a moment instead of spinning on a listen
 * socket it cannot serve. When a reload moves a
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

#include "lb/clock.h"
#include "lb/io/acceptor.h"
#include "lb/io/listen_socket.h"
#include "lb/log.h"
#include "lb/io/tls_ctx.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/runtime.h"

#define EMFILE_PAUSE_MS 100
/* Clients accepted per readiness of a listening socket; the rest wait for
 * the loop's next pass, after the events that came meanwhile. */
#define ACCEPTS_PER_PASS 64
/* How long a moved listener keeps accepting on its old socket: handshakes
 * under way there complete within a round trip, new ones go elsewhere. */
#define MOVE_DRAIN_MS 1000

static int route_cmp(const void *a, const void *b)
{
    return strcmp(((const struct listener_route *)a)->name,
                  ((const struct listener_route *)b)->name);
}

void listener_routes_free(struct listener_routes *r)
{
    struct listener_route *sets[2] = {r->exact, r->wild};
    size_t counts[2] = {r->nexact, r->nwild};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < counts[k]; i++) {
            free(sets[k][i].name);
            pool_release(sets[k][i].pool);
        }
        free(sets[k]);
    }
    *r = (struct listener_routes){0};
}

int listener_routes_build(struct listener_routes *r, const struct lb_listener_conf *c,
                          struct pool *const *pools)
{
    *r = (struct listener_routes){0};
    if (c->nsni_routes == 0)
        return 0;
    size_t nwild = 0;
    for (size_t i = 0; i < c->nsni_routes; i++)
        nwild += strncmp(c->sni_routes[i].server_name, "*.", 2) == 0;
    size_t nexact = c->nsni_routes - nwild;
    r->exact = nexact ? calloc(nexact, sizeof(*r->exact)) : NULL;
    r->wild = nwild ? calloc(nwild, sizeof(*r->wild)) : NULL;
    if ((nexact && !r->exact) || (nwild && !r->wild)) {
        listener_routes_free(r);
        return -1;
    }
    for (size_t i = 0; i < c->nsni_routes; i++) {
        const struct lb_sni_route_conf *rc = &c->sni_routes[i];
        bool wild = strncmp(rc->server_name, "*.", 2) == 0;
        struct listener_route *e = wild ? &r->wild[r->nwild] : &r->exact[r->nexact];
        if (!(e->name = strdup(rc->server_name + (wild ? 2 : 0)))) {
            listener_routes_free(r);
            return -1;
        }
        e->pool = pools[rc->pool_index];
        e->pool->refs++;
        if (wild)
            r->nwild++;
        else
            r->nexact++;
    }
    /* The config refuses a name twice, so no two entries compare equal. */
    if (r->nexact)
        qsort(r->exact, r->nexact, sizeof(*r->exact), route_cmp);
    if (r->nwild)
        qsort(r->wild, r->nwild, sizeof(*r->wild), route_cmp);
    return 0;
}

void listener_set_routes(struct listener *l, struct listener_routes *r)
{
    listener_routes_free(&l->routes);
    l->routes = *r;
    *r = (struct listener_routes){0};
}

bool listener_has_routes(const struct listener *l)
{
    return l->routes.nexact + l->routes.nwild > 0;
}

static struct pool *route_find(const struct listener_route *v, size_t n, const char *name)
{
    if (n == 0)
        return NULL;
    struct listener_route key = {.name = (char *)name};
    const struct listener_route *hit = bsearch(&key, v, n, sizeof(*v), route_cmp);
    return hit ? hit->pool : NULL;
}

struct pool *listener_route(const struct listener *l, const char *server_name)
{
    struct pool *p = route_find(l->routes.exact, l->routes.nexact, server_name);
    if (p)
        return p;
    const char *dot = strchr(server_name, '.');
    if (!dot || dot == server_name || dot[1] == '\0') /* the first label must not be empty */
        return NULL;
    return route_find(l->routes.wild, l->routes.nwild, dot + 1);
}

void listener_destroy(struct listener *l)
{
    if (!l)
        return;
    listener_close(l);
    pool_release(l->pool);
    listener_routes_free(&l->routes);
    tls_ctx_unref(l->tls);
    free(l->name);
    free(l->listen);
    free(l);
}

struct listener *listener_create(struct runtime *rt, const struct lb_listener_conf *c,
                                 struct pool *const *pools, listener_client_fn *on_client)
{
    struct listener *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->rt = rt;
    l->pool = pools[c->pool_index];
    l->pool->refs++;
    l->name = strdup(c->name);
    l->listen = strdup(c->listen);
    if (!l->name || !l->listen || listener_routes_build(&l->routes, c, pools) < 0) {
        listener_destroy(l);
        return NULL;
    }
    memcpy(&l->addr, &c->addr, sizeof(l->addr));
    l->addrlen = c->addrlen;
    l->mode = c->mode;
    l->on_client = on_client;
    l->max_connections = c->max_connections;
    l->idle_timeout_ms = c->idle_timeout_ms;
    l->keepalive = c->keepalive;
    l->splice = c->splice;
    l->reuse_port = c->reuse_port;
    l->accept_proxy = c->accept_proxy;
    l->request_timeout_ms = c->request_timeout_ms;
    l->max_header_bytes = c->max_header_bytes;
    l->x_real_ip = c->x_real_ip;
    l->forwarded = c->forwarded;
    return l;
}

void listener_set_tls(struct listener *l, struct tls_ctx *tls, const struct lb_listener_conf *c)
{
    struct tls_ctx *old = l->tls;
    l->tls = tls ? tls_ctx_ref(tls) : NULL;
    tls_ctx_unref(old);
    l->handshake_timeout_ms = c->tls.handshake_timeout_ms;
}

void listener_refresh(struct listener *l)
{
    /* While a session waits for a descriptor, a new client would take the
     * one it waits for: accept nothing until the waiters are served. */
    bool on = !(l->full || l->rt->fd_full || l->rt->conn_full || l->rt->fd_waiters > 0);
    if (l->acc)
        acceptor_enable(l->acc, on);
    if (l->drain_acc)
        acceptor_enable(l->drain_acc, on);
}

static void on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct listener *l = arg;
    l->on_client(l, fd, sa, salen);
    if (l->active >= l->max_connections && !l->full) {
        l->full = true;
        log_debug("listener %s: %u connections open, pausing accepts", l->name, l->max_connections);
        listener_refresh(l);
    }
}

/* A client of a moved listener's old socket: the SYN filter came along. */
static void on_drain_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
    listen_socket_unstop(fd);
    on_accept(arg, fd, sa, salen);
}

static void starved_note(void *arg, char *buf, size_t len)
{
    const struct listener *l = arg;
    snprintf(buf, len, " (open sessions: %llu)", (unsigned long long)l->rt->active);
}

/* One line a second for every listener together when they run out. */
static time_t starved_logged;

int listener_open(struct listener *l, bool reuseport, char *err, size_t errlen)
{
    const char *step;
    int fd = listen_socket_open(&l->addr, l->addrlen, reuseport || l->reuse_port, &step);
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
    const struct acceptor_conf conf = {
        .owner = "listener",
        .name = l->name,
        .batch = ACCEPTS_PER_PASS,
        .pause_ms = EMFILE_PAUSE_MS,
        .starved_logged = &starved_logged,
        .starved_note = starved_note,
    };
    l->acc = acceptor_new(l->rt->base, fd, &conf, on_accept, l); /* closes fd on failure */
    if (!l->acc) {
        snprintf(err, errlen, "listener %s: out of memory", l->name);
        return -1;
    }
    listener_refresh(l); /* born disabled while sessions hold every descriptor */
    return 0;
}

int listener_fd(const struct listener *l)
{
    return l->acc ? acceptor_fd(l->acc) : -1;
}

int listener_rename(struct listener *l, const char *name)
{
    char *copy = strdup(name);
    if (!copy || (l->acc && acceptor_rename(l->acc, name) < 0) ||
        (l->drain_acc && acceptor_rename(l->drain_acc, name) < 0)) {
        free(copy);
        return -1;
    }
    free(l->name);
    l->name = copy;
    return 0;
}

static void drain_end(struct listener *l)
{
    acceptor_free(l->drain_acc); /* closes the old socket */
    l->drain_acc = NULL;
    if (l->drain_timer)
        event_free(l->drain_timer);
    l->drain_timer = NULL;
}

/* Accepts what is still queued on a moved listener's old socket (as far as
 * the descriptor budget allows), even when l is at max_connections: those
 * clients' handshakes completed, and closing the socket would reset them. */
static void drain_old_queue(struct listener *l)
{
    while (l->drain_acc && !l->rt->fd_full) {
        struct sockaddr_storage sa;
        socklen_t len;
        int fd = acceptor_accept(l->drain_acc, &sa, &len);
        if (fd < 0)
            break; /* EAGAIN: the queue is empty; anything else: give up */
        on_drain_accept(l, fd, (struct sockaddr *)&sa, len);
    }
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    drain_old_queue(l);
    drain_end(l);
    if (l->leaving) {
        l->leaving = false;
        log_info("listener %s: socket closed; the other reuse_port processes take its clients",
                 l->name);
        runtime_listener_left(l->rt);
    } else {
        log_debug("listener %s: old socket closed after the move", l->name);
    }
}

/* Makes acc l's draining socket: a SYN filter stops new handshakes on it
 * (each client resends its SYN, which another socket of the port takes
 * once this one is closed), what the kernel queued or completes meanwhile
 * is accepted as l's, and it closes after ms. -1 when the filter or the
 * timer cannot be set: nothing changed. */
static int drain_start(struct listener *l, struct acceptor *acc, unsigned ms)
{
    int fd = acceptor_fd(acc);
    struct timeval tv = clock_timeval(ms);
    l->drain_timer = evtimer_new(l->rt->base, on_drain_timer, l);
    if (!l->drain_timer || acceptor_rename(acc, l->name) < 0 || listen_socket_stop(fd) < 0 ||
        evtimer_add(l->drain_timer, &tv) < 0) {
        drain_end(l);
        listen_socket_unstop(fd); /* clients accepted from now on must not inherit a filter */
        return -1;
    }
    l->drain_acc = acc;
    acceptor_set_handler(acc, on_drain_accept, l);
    listener_refresh(l);
    return 0;
}

void listener_adopt(struct listener *l, struct listener *old)
{
    if (!old->acc)
        return;
    drain_end(l); /* a second move within the drain time: the older socket goes */
    if (drain_start(l, old->acc, MOVE_DRAIN_MS) < 0) {
        listener_drain(old, l); /* cannot stop new handshakes: take the queue, close */
        return;
    }
    old->acc = NULL;
}

bool listener_leave(struct listener *l, unsigned ms)
{
    if (!l->acc)
        return false;
    drain_old_queue(l); /* a move's old socket, if it still drains, goes now */
    drain_end(l);
    if (!l->reuse_port || ms == 0 ||
        drain_start(l, l->acc, ms < MOVE_DRAIN_MS ? ms : MOVE_DRAIN_MS) < 0) {
        listener_close(l);
        return false;
    }
    l->acc = NULL;
    l->leaving = true;
    return true;
}

void listener_drain(struct listener *l, struct listener *into)
{
    /* Not beyond the descriptors sessions may use: the rest is reset. */
    while (l->acc && !l->rt->fd_full) {
        struct sockaddr_storage sa;
        socklen_t len;
        int fd = acceptor_accept(l->acc, &sa, &len);
        if (fd < 0)
            break; /* EAGAIN: the queue is empty; anything else: give up */
        into->on_client(into, fd, (struct sockaddr *)&sa, len);
    }
    drain_old_queue(l); /* and the old socket of a move, if it is still draining */
    listener_close(l);
}

void listener_close(struct listener *l)
{
    drain_end(l);
    l->leaving = false;
    acceptor_free(l->acc);
    l->acc = NULL;
}

void listener_hand_off(struct listener *l)
{
    drain_old_queue(l);
    listener_close(l);
}

void listener_resume(struct listener *l)
{
    if (l->full && l->active < l->max_connections) {
        l->full = false;
        listener_refresh(l);
    }
    /* A descriptor was just freed: try again now. */
    if (l->acc)
        acceptor_resume(l->acc);
    if (l->drain_acc)
        acceptor_resume(l->drain_acc);
}
