/* session: one client connection paired with one backend connection.
 * It connects without blocking (retrying other backends on failure), then
 * relays both ways through two bounded ring buffers: a full buffer stops
 * reading its source, EOF on one side becomes shutdown(SHUT_WR) on the other
 * once the buffer has drained, and no bytes either way for idle_timeout_ms
 * closes both. Each session ends in exactly one log line. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "lb/clock.h"
#include "lb/log.h"
#include "lb/balance/balance.h"
#include "lb/io/sock.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/pool_health.h"
#include "lb/runtime.h"
#include "lb/session.h"

/* Per direction; 16 KiB like HAProxy's default bufsize: large enough for
 * full-speed loopback transfers, small enough for 10,000s of sessions. */
#define RELAY_BUF_SIZE (16 * 1024)
/* Retry period for a connect that found no free file descriptor. */
#define FD_WAIT_MS 100

struct ring {
    uint32_t head; /* offset of the first byte held */
    uint32_t len;  /* bytes held */
    char *data;    /* RELAY_BUF_SIZE bytes, in struct session's bufs */
};

/* One socket of the session. */
struct side {
    int fd;
    struct event rev, wev;
    bool read_eof;             /* the peer sent FIN */
    bool write_shut;           /* we sent FIN (shutdown SHUT_WR) */
    const char *closed_reason; /* logged when this side closes first */
    const char *error_reason;  /* logged when this side fails */
};

/* One direction: bytes read from src, held in ring, written to dst. */
struct flow {
    struct session *s;
    struct side *src, *dst;
    struct ring ring;
    uint64_t bytes;          /* read from src */
    uint64_t *backend_bytes; /* the backend's counter for this direction */
};

enum session_state { SESSION_CONNECTING, SESSION_RELAYING };

struct session {
    LIST_ENTRY(session) link;
    LIST_ENTRY(session) park_link;    /* in rt->parked while parked */
    LIST_ENTRY(session) backend_link; /* in backend->sessions while backend is set */
    bool parked;
    struct listener *listener;
    struct pool *pool;
    struct backend *backend; /* NULL until a backend is picked */
    enum session_state state;
    struct side client, server;
    struct flow up;      /* client -> backend */
    struct flow down;    /* backend -> client */
    struct event timer;  /* connecting: wait for a free descriptor; relaying: idle */
    unsigned fd_wait_ms; /* time spent waiting for a descriptor to connect */
    bool fd_waiting;     /* counted in rt->fd_waiters */
    uint64_t start_ms;
    uint64_t last_active_ms;
    const char *first_closed; /* the side that sent FIN first */
    struct pick_ctx pick;
    struct sockaddr_storage client_addr;
    socklen_t client_len;
    /* Last, and left uninitialised: only the fields above are zeroed at
     * accept, not 32 KiB per connection. */
    char bufs[2][RELAY_BUF_SIZE];
};

static void session_connect(struct session *s);
static void session_end(struct session *s, const char *reason);
static void session_wait_fd(struct session *s, int err);

/* --- ring buffer: iovecs over the free space and over the held bytes --- */

static int ring_space(struct ring *r, struct iovec iov[2])
{
    uint32_t tail = (r->head + r->len) % RELAY_BUF_SIZE;
    if (r->len == RELAY_BUF_SIZE)
        return 0;
    if (tail >= r->head) {
        iov[0] = (struct iovec){r->data + tail, RELAY_BUF_SIZE - tail};
        if (r->head == 0)
            return 1;
        iov[1] = (struct iovec){r->data, r->head};
        return 2;
    }
    iov[0] = (struct iovec){r->data + tail, r->head - tail};
    return 1;
}

static int ring_held(struct ring *r, struct iovec iov[2])
{
    uint32_t first = RELAY_BUF_SIZE - r->head;
    if (r->len <= first) {
        iov[0] = (struct iovec){r->data + r->head, r->len};
        return 1;
    }
    iov[0] = (struct iovec){r->data + r->head, first};
    iov[1] = (struct iovec){r->data, r->len - first};
    return 2;
}

static void ring_consume(struct ring *r, uint32_t n)
{
    r->len -= n;
    /* An empty ring restarts at 0 so the next read is one contiguous span. */
    r->head = r->len == 0 ? 0 : (r->head + n) % RELAY_BUF_SIZE;
}

/* --- relay --- */

/* Makes the coming close() send a reset instead of a FIN. */
static void side_reset(struct side *side)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (side->fd >= 0)
        setsockopt(side->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void side_shut_write(struct side *side)
{
    if (side->write_shut)
        return;
    side->write_shut = true;
    /* ENOTCONN when the peer already went away: the session ends anyway. */
    shutdown(side->fd, SHUT_WR);
}

/* Adds ev (with tv, may be NULL). On failure (epoll out of memory or over
 * its watch limit) the session cannot go on: it ends. -1 then (s freed). */
static int session_watch(struct session *s, struct event *ev, const struct timeval *tv)
{
    if (event_add(ev, tv) == 0)
        return 0;
    log_error("listener %s: cannot watch a socket: %s; closing a session", s->listener->name,
              strerror(errno));
    session_end(s, "internal error");
    return -1;
}

/* A side lb no longer watches (its reads stopped by EOF or backpressure,
 * nothing to write to it) would never report a reset from its peer: the
 * session is parked and runtime probes it once a second
 * (session_probe()). */
static void session_park(struct session *s)
{
    if (s->parked)
        return;
    s->parked = true;
    LIST_INSERT_HEAD(&s->listener->rt->parked, s, park_link);
}

static void session_unpark(struct session *s)
{
    if (!s->parked)
        return;
    s->parked = false;
    LIST_REMOVE(s, park_link);
}

static bool side_unwatched(struct side *side)
{
    return !event_pending(&side->rev, EV_READ, NULL) && !event_pending(&side->wev, EV_WRITE, NULL);
}

struct session *session_parked_next(struct session *s)
{
    return LIST_NEXT(s, park_link);
}

void session_probe(struct session *s)
{
    struct side *sides[2] = {&s->client, &s->server};
    bool any = false;
    for (int i = 0; i < 2; i++) {
        if (!side_unwatched(sides[i]))
            continue;
        any = true;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(sides[i]->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
            log_debug("%s: %s (found by the probe)", sides[i]->error_reason, strerror(err));
            session_end(s, sides[i]->error_reason);
            return;
        }
    }
    if (!any)
        session_unpark(s);
}

static bool flow_done(const struct flow *f)
{
    return f->src->read_eof && f->ring.len == 0 && f->dst->write_shut;
}

/* Ends the session when both directions are finished. Returns true when it
 * did (s is freed then). */
static bool session_check_done(struct session *s)
{
    if (!flow_done(&s->up) || !flow_done(&s->down))
        return false;
    session_end(s, s->first_closed);
    return true;
}

/* Writes what the ring holds to f->dst. Called with bytes just read, and
 * when dst becomes writable. Returns -1 when the session ended (s freed). */
static int flow_flush(struct flow *f)
{
    struct session *s = f->s;
    struct ring *r = &f->ring;

    while (r->len > 0) {
        struct iovec iov[2];
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)ring_held(r, iov)};
        ssize_t n = sendmsg(f->dst->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            log_debug("%s: send: %s", f->dst->error_reason, strerror(errno));
            session_end(s, f->dst->error_reason);
            return -1;
        }
        ring_consume(r, (uint32_t)n);
        s->last_active_ms = clock_ms(CLOCK_MONOTONIC_COARSE);
        if (r->len > 0)
            break; /* the socket buffer is full: wait for EV_WRITE */
    }

    if (r->len > 0) {
        if (!event_pending(&f->dst->wev, EV_WRITE, NULL) &&
            session_watch(s, &f->dst->wev, NULL) < 0)
            return -1;
    } else {
        event_del(&f->dst->wev);
        if (f->src->read_eof) {
            side_shut_write(f->dst);
            if (session_check_done(s))
                return -1;
        }
    }
    /* Room again: resume reading the source unless it is finished. */
    if (!f->src->read_eof && r->len < RELAY_BUF_SIZE &&
        !event_pending(&f->src->rev, EV_READ, NULL) && session_watch(s, &f->src->rev, NULL) < 0)
        return -1;
    return 0;
}

/* Reads once from f->src into the ring and forwards at once. */
static void flow_read(struct flow *f)
{
    struct session *s = f->s;
    struct ring *r = &f->ring;
    struct iovec iov[2];
    int niov = ring_space(r, iov);
    if (niov == 0) { /* cannot happen: rev is off while the ring is full */
        event_del(&f->src->rev);
        return;
    }

    ssize_t n = niov == 1 ? recv(f->src->fd, iov[0].iov_base, iov[0].iov_len, 0)
                          : readv(f->src->fd, iov, niov);
    if (n > 0) {
        r->len += (uint32_t)n;
        f->bytes += (uint64_t)n;
        if (f->backend_bytes)
            *f->backend_bytes += (uint64_t)n;
        s->last_active_ms = clock_ms(CLOCK_MONOTONIC_COARSE);
        if (flow_flush(f) < 0)
            return;
        if (r->len == RELAY_BUF_SIZE) {
            event_del(&f->src->rev); /* backpressure: dst is slower */
            session_park(s);
        }
        return;
    }
    if (n == 0) {
        f->src->read_eof = true;
        event_del(&f->src->rev);
        session_park(s);
        if (!s->first_closed)
            s->first_closed = f->src->closed_reason;
        if (r->len == 0) {
            side_shut_write(f->dst);
            session_check_done(s);
        }
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return;
    log_debug("%s: recv: %s", f->src->error_reason, strerror(errno));
    session_end(s, f->src->error_reason);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flow_read(arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flow_flush(arg);
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    uint64_t idle = s->listener->idle_timeout_ms;
    if (idle == 0) /* a reload turned the idle timeout off */
        return;
    uint64_t quiet = clock_ms(CLOCK_MONOTONIC_COARSE) - s->last_active_ms;
    if (quiet >= idle) {
        session_end(s, "idle timeout");
        return;
    }
    /* Activity since the timer was armed: sleep for what is left. Moving
     * bytes only stores a timestamp; the timer is re-armed here, rarely. */
    struct timeval tv = clock_timeval(idle - quiet);
    evtimer_add(&s->timer, &tv);
}

static void session_relay_start(struct session *s)
{
    struct event_base *base = s->listener->rt->base;
    s->state = SESSION_RELAYING;
    s->backend->total++;
    backend_connect_result(s->backend, true);
    s->up.backend_bytes = &s->backend->bytes_out;
    s->down.backend_bytes = &s->backend->bytes_in;

    event_assign(&s->server.rev, base, s->server.fd, EV_READ | EV_PERSIST, on_readable, &s->down);
    event_assign(&s->server.wev, base, s->server.fd, EV_WRITE | EV_PERSIST, on_writable, &s->up);
    if (session_watch(s, &s->client.rev, NULL) < 0 || session_watch(s, &s->server.rev, NULL) < 0)
        return;

    s->last_active_ms = clock_ms(CLOCK_MONOTONIC_COARSE);
    if (event_initialized(&s->timer))
        event_del(&s->timer);
    evtimer_assign(&s->timer, base, on_idle_timer, s);
    if (s->listener->idle_timeout_ms > 0) {
        unsigned ms = s->listener->idle_timeout_ms;
        struct timeval tv = clock_timeval(ms);
        evtimer_add(&s->timer, &tv);
    }
}

/* The connect to s->backend failed: count it (failed, passive ejection),
 * log it, and release the backend and its socket. */
static void session_drop_backend(struct session *s, const char *why)
{
    struct backend *b = s->backend;
    b->failed++;
    log_warn("pool %s backend %s connect failed: %s", s->pool->name, b->id, why);
    backend_connect_result(b, false);
    if (event_initialized(&s->server.wev))
        event_del(&s->server.wev);
    close(s->server.fd);
    s->server.fd = -1;
    LIST_REMOVE(s, backend_link);
    pool_conn_end(s->pool, b);
    backend_release(b);
    s->backend = NULL;
}

/* ... then try the next backend the strategy offers. */
static void session_connect_failed(struct session *s, const char *why)
{
    session_drop_backend(s, why);
    session_connect(s);
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    if (what & EV_TIMEOUT) {
        char why[64];
        snprintf(why, sizeof(why), "timed out after %u ms", s->pool->connect_timeout_ms);
        session_connect_failed(s, why);
        return;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        session_connect_failed(s, strerror(err));
        return;
    }
    session_relay_start(s);
}

static void on_fd_wait_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_connect(arg);
}

/* socket() failed with err. Out of descriptors (or kernel memory), the
 * client waits: accepts pause and the connect is tried again every
 * FD_WAIT_MS, for up to connect_timeout_ms, since a session ending anywhere
 * frees two descriptors. Any other error ends the session. */
static void session_wait_fd(struct session *s, int err)
{
    struct pool *pool = s->pool;
    bool starved = errno_starved(err);
    if (!starved || s->fd_wait_ms >= pool->connect_timeout_ms) {
        log_error("pool %s: cannot create a socket: %s", pool->name, strerror(err));
        session_end(s, "connect failed");
        return;
    }
    static time_t last_logged;
    if (log_second_passed(&last_logged))
        log_error("pool %s: cannot create a socket: %s; clients wait for a free descriptor",
                  pool->name, strerror(err));
    if (!s->fd_waiting) {
        s->fd_waiting = true;
        s->listener->rt->fd_waiters++;
        listener_pause(s->listener);
    }
    s->fd_wait_ms += FD_WAIT_MS;
    evtimer_assign(&s->timer, s->listener->rt->base, on_fd_wait_timer, s);
    struct timeval tv = {0, FD_WAIT_MS * 1000};
    evtimer_add(&s->timer, &tv);
}

/* s got its descriptor (or ends): accepting may resume once no session
 * waits any more. */
static void session_fd_wait_over(struct session *s)
{
    struct runtime *rt = s->listener->rt;
    if (!s->fd_waiting)
        return;
    s->fd_waiting = false;
    if (--rt->fd_waiters == 0)
        for (size_t i = 0; i < rt->nlisteners; i++)
            listener_refresh(rt->listeners[i]);
}

/* A reload replaced the session's pool while it was still connecting (the
 * old generation has no strategy state left): retry in the current pool
 * that serves its listener (or, for a removed listener, the current pool
 * of the same name). */
static void session_follow_reload(struct session *s)
{
    if (!s->pool->retired)
        return;
    struct listener *l = s->listener;
    struct pool *cur = l->retired ? runtime_find_pool(l->rt, s->pool->name) : l->pool;
    if (!cur || cur == s->pool)
        return;
    cur->refs++;
    pool_release(s->pool);
    s->pool = cur;
}

void session_idle_rearm_all(struct runtime *rt)
{
    struct session *s;
    LIST_FOREACH(s, &rt->sessions, link)
    {
        unsigned ms = s->listener->idle_timeout_ms;
        if (s->state != SESSION_RELAYING || ms == 0 || evtimer_pending(&s->timer, NULL))
            continue;
        struct timeval tv = clock_timeval(ms);
        evtimer_add(&s->timer, &tv);
    }
}

/* Picks a backend and starts a non-blocking connect, until one is under
 * way or the tries (1 + retries) are used up. */
static void session_connect(struct session *s)
{
    session_follow_reload(s);
    struct pool *pool = s->pool;
    struct event_base *base = s->listener->rt->base;

    while (s->pick.ntried <= pool->retries && s->pick.ntried < LB_MAX_TRIES) {
        struct backend *b = pool_pick(pool, &s->pick);
        if (!b) {
            if (s->pick.ntried == 0)
                pool->rejected++;
            session_end(s, s->pick.ntried == 0 ? "no backend" : "connect failed");
            return;
        }
        s->pick.tried[s->pick.ntried++] = b;

        int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            s->pick.ntried--; /* this try never reached the backend */
            session_wait_fd(s, errno);
            return;
        }
        session_fd_wait_over(s);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        sock_set_keepalive(fd, &pool->keepalive, "pool", pool->name);
        s->server.fd = fd;
        s->backend = b;
        b->refs++;
        LIST_INSERT_HEAD(&b->sessions, s, backend_link);
        pool_conn_start(pool, b);

        if (connect(fd, (struct sockaddr *)&b->addr, b->addrlen) == 0) {
            session_relay_start(s);
            return;
        }
        if (errno == EINPROGRESS) {
            unsigned ms = pool->connect_timeout_ms;
            struct timeval tv = clock_timeval(ms);
            event_assign(&s->server.wev, base, fd, EV_WRITE, on_connected, s);
            session_watch(s, &s->server.wev, &tv);
            return;
        }
        /* Immediate failure: account for it like a late one, then loop. */
        session_drop_backend(s, strerror(errno));
    }
    session_end(s, "connect failed");
}

static void session_log(struct session *s, const char *reason)
{
    if (!log_enabled(LB_LOG_INFO))
        return;
    char client[INET6_ADDRSTRLEN + 16];
    sockaddr_text((struct sockaddr *)&s->client_addr, client, sizeof(client));
    uint64_t duration = clock_ms(CLOCK_MONOTONIC) - s->start_ms;
    log_info("session end client=%s listener=%s pool=%s backend=%s bytes_from_client=%llu "
             "bytes_from_backend=%llu duration_ms=%llu reason=\"%s\"",
             client, s->listener->name, s->pool->name, s->backend ? s->backend->id : "-",
             (unsigned long long)s->up.bytes, (unsigned long long)s->down.bytes,
             (unsigned long long)duration, reason);
}

static void session_end(struct session *s, const char *reason)
{
    struct listener *l = s->listener;
    session_log(s, reason);
    session_fd_wait_over(s);

    if (event_initialized(&s->client.rev))
        event_del(&s->client.rev);
    if (event_initialized(&s->client.wev))
        event_del(&s->client.wev);
    if (event_initialized(&s->server.rev))
        event_del(&s->server.rev);
    if (event_initialized(&s->server.wev))
        event_del(&s->server.wev);
    if (event_initialized(&s->timer))
        event_del(&s->timer);
    session_unpark(s);
    /* One side failed (reset): pass the reset on, so the other peer cannot
     * take a truncated stream for a complete one. */
    if (reason == s->client.error_reason)
        side_reset(&s->server);
    else if (reason == s->server.error_reason)
        side_reset(&s->client);
    if (s->client.fd >= 0)
        close(s->client.fd);
    if (s->server.fd >= 0)
        close(s->server.fd);
    if (s->backend) {
        LIST_REMOVE(s, backend_link);
        pool_conn_end(s->pool, s->backend);
        backend_release(s->backend);
    }
    pool_release(s->pool);
    LIST_REMOVE(s, link);
    free(s);
    runtime_session_ended(l->rt, l);
}

static const char *const end_text[] = {
    [SESSION_END_CLIENT_CLOSED] = "client closed",
    [SESSION_END_BACKEND_CLOSED] = "backend closed",
    [SESSION_END_CLIENT_ERROR] = "client error",
    [SESSION_END_BACKEND_ERROR] = "backend error",
    [SESSION_END_IDLE_TIMEOUT] = "idle timeout",
    [SESSION_END_NO_BACKEND] = "no backend",
    [SESSION_END_CONNECT_FAILED] = "connect failed",
    [SESSION_END_BACKEND_DISABLED] = "backend disabled",
    [SESSION_END_SHUTDOWN] = "shutdown",
    [SESSION_END_INTERNAL_ERROR] = "internal error",
};

const char *session_end_text(enum session_end why)
{
    return (unsigned)why < sizeof(end_text) / sizeof(end_text[0]) ? end_text[why] : "?";
}

void session_abort(struct session *s, enum session_end why)
{
    session_end(s, session_end_text(why));
}

void backend_close_sessions(struct backend *b, enum session_end why)
{
    while (!LIST_EMPTY(&b->sessions))
        session_end(LIST_FIRST(&b->sessions), session_end_text(why));
}

void session_start(struct listener *l, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct runtime *rt = l->rt;
    struct session *s = malloc(sizeof(*s));
    if (!s) {
        log_error("listener %s: out of memory, closing a new connection", l->name);
        close(fd);
        return;
    }
    memset(s, 0, offsetof(struct session, bufs));
    s->listener = l;
    s->pool = l->pool;
    s->pool->refs++;
    s->start_ms = clock_ms(CLOCK_MONOTONIC);
    if (salen > sizeof(s->client_addr))
        salen = sizeof(s->client_addr);
    memcpy(&s->client_addr, sa, salen);
    s->client_len = salen;
    pick_key_ip(&s->pick, (struct sockaddr *)&s->client_addr, salen);

    s->client =
        (struct side){.fd = fd, .closed_reason = "client closed", .error_reason = "client error"};
    s->server =
        (struct side){.fd = -1, .closed_reason = "backend closed", .error_reason = "backend error"};
    s->up = (struct flow){.s = s, .src = &s->client, .dst = &s->server, .ring.data = s->bufs[0]};
    s->down = (struct flow){.s = s, .src = &s->server, .dst = &s->client, .ring.data = s->bufs[1]};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sock_set_keepalive(fd, &l->keepalive, "listener", l->name);
    /* Client events are set up now but added only once the backend is
     * connected: until then the client's bytes wait in the kernel. */
    event_assign(&s->client.rev, rt->base, fd, EV_READ | EV_PERSIST, on_readable, &s->up);
    event_assign(&s->client.wev, rt->base, fd, EV_WRITE | EV_PERSIST, on_writable, &s->down);

    LIST_INSERT_HEAD(&rt->sessions, s, link);
    runtime_session_started(rt, l);
    session_connect(s);
}
