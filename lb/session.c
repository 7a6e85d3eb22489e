/* session: one accepted client through its phases —
 *   ACCEPTED   the client socket is set up and watched from now on;
 *   PREREAD    bytes needed before the pick (none in tcp mode today; a
 *              PROXY header, a TLS handshake or an HTTP head later);
 *   PICK       the pick key is chosen (the client's IP by default);
 *   CONNECTING the upstream picks a backend and connects, retrying others;
 *   RELAYING   the relay moves bytes both ways until both are done.
 * A client that resets, or goes away without sending a byte, while its
 * backend connect is under way ends the session at once: no further
 * backend is tried. (One whose reads are off by then — it filled the up
 * mover, or half-closed after its request — is found by the probe of
 * parked sessions, within a second.) Each session ends in session_close(),
 * in exactly one log line. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "lb/clock.h"
#include "lb/io/sock.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/relay.h"
#include "lb/runtime.h"
#include "lb/session.h"
#include "lb/upstream.h"

enum session_phase {
    SESSION_ACCEPTED,
    SESSION_PREREAD,
    SESSION_PICK,
    SESSION_CONNECTING,
    SESSION_RELAYING,
};

struct session {
    LIST_ENTRY(session) link; /* in rt->sessions */
    struct listener *listener;
    enum session_phase phase;
    struct relay_side client;
    struct upstream upstream;
    struct relay relay;
    struct event idle_timer; /* while relaying, when the listener has an idle timeout */
    uint64_t start_ms;
    struct sockaddr_storage client_addr;
    socklen_t client_len;
    /* No buffers: each flow takes one from rt->bufs only while it holds
     * bytes (lb/io/bufpool.h), so an idle session is just this struct. */
};

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

static void session_log(struct session *s, enum session_end why)
{
    if (!log_enabled(LB_LOG_INFO))
        return;
    char client[INET6_ADDRSTRLEN + 16];
    sockaddr_text((struct sockaddr *)&s->client_addr, client, sizeof(client));
    uint64_t duration = clock_ms(CLOCK_MONOTONIC) - s->start_ms;
    const struct upstream *u = &s->upstream;
    log_info("session end client=%s listener=%s pool=%s backend=%s bytes_from_client=%llu "
             "bytes_from_backend=%llu duration_ms=%llu reason=\"%s\"",
             client, s->listener->name, u->pool->name, u->backend ? u->backend->id : "-",
             (unsigned long long)s->relay.up.bytes, (unsigned long long)s->relay.down.bytes,
             (unsigned long long)duration, session_end_text(why));
}

/* The one way a session ends: its log line, every event off, both
 * connections closed (a failed side's reset passed on to the other peer,
 * so it cannot take a cut stream for a complete one), the backend and pool
 * references dropped, the listener's and runtime's counts updated. */
static void session_close(struct session *s, enum session_end why)
{
    struct listener *l = s->listener;
    session_log(s, why);
    relay_stop(&s->relay);
    if (event_initialized(&s->idle_timer))
        event_del(&s->idle_timer);
    if (why == SESSION_END_BACKEND_ERROR)
        s->client.conn.ops->reset(&s->client.conn);
    upstream_free(&s->upstream, why == SESSION_END_CLIENT_ERROR);
    s->client.conn.ops->close(&s->client.conn);
    LIST_REMOVE(s, link);
    free(s);
    runtime_session_ended(l->rt, l);
}

static void on_relay_end(struct relay *r, enum relay_end how)
{
    struct session *s = (struct session *)((char *)r - offsetof(struct session, relay));
    static const enum session_end map[] = {
        [RELAY_END_CLIENT_CLOSED] = SESSION_END_CLIENT_CLOSED,
        [RELAY_END_SERVER_CLOSED] = SESSION_END_BACKEND_CLOSED,
        [RELAY_END_CLIENT_ERROR] = SESSION_END_CLIENT_ERROR,
        [RELAY_END_SERVER_ERROR] = SESSION_END_BACKEND_ERROR,
        [RELAY_END_WATCH_FAILED] = SESSION_END_INTERNAL_ERROR,
        [RELAY_END_NO_MEMORY] = SESSION_END_INTERNAL_ERROR,
    };
    if (how == RELAY_END_WATCH_FAILED)
        log_error("listener %s: cannot watch a socket: %s; closing a session", s->listener->name,
                  strerror(errno));
    else if (how == RELAY_END_NO_MEMORY)
        log_error("listener %s: out of memory for a relay buffer; closing a session",
                  s->listener->name);
    session_close(s, map[how]);
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    uint64_t idle = s->listener->idle_timeout_ms;
    if (idle == 0) /* a reload turned the idle timeout off */
        return;
    uint64_t quiet = clock_ms(CLOCK_MONOTONIC_COARSE) - s->relay.last_active_ms;
    if (quiet >= idle) {
        session_close(s, SESSION_END_IDLE_TIMEOUT);
        return;
    }
    /* Activity since the timer was armed: sleep for what is left. Moving
     * bytes only stores a timestamp; the timer is re-armed here, rarely. */
    struct timeval tv = clock_timeval(idle - quiet);
    evtimer_add(&s->idle_timer, &tv);
}

static void session_idle_arm(struct session *s)
{
    unsigned ms = s->listener->idle_timeout_ms;
    if (ms == 0)
        return;
    struct timeval tv = clock_timeval(ms);
    evtimer_add(&s->idle_timer, &tv);
}

void session_idle_rearm_all(struct runtime *rt)
{
    struct session *s;
    LIST_FOREACH(s, &rt->sessions, link)
    {
        if (s->phase == SESSION_RELAYING && !evtimer_pending(&s->idle_timer, NULL))
            session_idle_arm(s);
    }
}

/* CONNECTING -> RELAYING: the upstream's server side joins the relay. */
static void on_upstream_connected(struct upstream *u)
{
    struct session *s = u->owner;
    s->phase = SESSION_RELAYING;
    /* What the client sent while the backend connected goes to it now. */
    u->backend->bytes_out += s->relay.up.bytes;
    s->relay.up.count = &u->backend->bytes_out;
    s->relay.down.count = &u->backend->bytes_in;
    evtimer_assign(&s->idle_timer, s->listener->rt->base, on_idle_timer, s);
    if (relay_attach_server(&s->relay, &u->server) < 0)
        return;
    session_idle_arm(s);
}

static void on_upstream_failed(struct upstream *u, enum session_end why)
{
    session_close(u->owner, why);
}

/* Moves s through the phases that need nothing from outside; a phase that
 * waits (PREREAD for bytes, CONNECTING for the backend) returns, and its
 * event calls back here or into the next phase. */
static void session_advance(struct session *s)
{
    switch (s->phase) {
    case SESSION_ACCEPTED:
        s->phase = SESSION_PREREAD;
        /* fall through */
    case SESSION_PREREAD:
        /* tcp mode reads nothing before the pick. */
        s->phase = SESSION_PICK;
        /* fall through */
    case SESSION_PICK:
        pick_key_ip(&s->upstream.pick, (struct sockaddr *)&s->client_addr, s->client_len);
        s->phase = SESSION_CONNECTING;
        upstream_connect(&s->upstream);
        return;
    case SESSION_CONNECTING:
    case SESSION_RELAYING:
        return;
    }
}

void session_abort(struct session *s, enum session_end why)
{
    session_close(s, why);
}

void backend_close_sessions(struct backend *b, enum session_end why)
{
    while (!LIST_EMPTY(&b->upstreams))
        session_close(LIST_FIRST(&b->upstreams)->owner, why);
}

int session_probe_parked(struct runtime *rt)
{
    int ended = 0;
    struct relay *r = LIST_FIRST(&rt->relays.parked);
    while (r) {
        struct relay *next = relay_parked_next(r);
        if (relay_probe(r) < 0) /* may end r's session, never another one */
            ended++;
        r = next;
    }
    return ended;
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
    memset(s, 0, sizeof(*s));
    s->listener = l;
    s->phase = SESSION_ACCEPTED;
    s->start_ms = clock_ms(CLOCK_MONOTONIC);
    if (salen > sizeof(s->client_addr))
        salen = sizeof(s->client_addr);
    memcpy(&s->client_addr, sa, salen);
    s->client_len = salen;
    conn_tcp_init(&s->client.conn, fd);
    sock_set_nodelay(fd);
    sock_set_keepalive(fd, &l->keepalive, "listener", l->name);
    upstream_init(&s->upstream, s, l, l->pool, on_upstream_connected, on_upstream_failed);
    relay_init(&s->relay, rt->base, &rt->relays, &s->client, on_relay_end);
    struct pipepool *pipes = l->splice ? &rt->pipes : NULL;
    mover_auto_init(&s->relay.up.mover, &rt->bufs, pipes);
    mover_auto_init(&s->relay.down.mover, &rt->bufs, pipes);
    s->relay.up.mover.spliced = s->relay.down.mover.spliced = &rt->spliced_bytes;

    LIST_INSERT_HEAD(&rt->sessions, s, link);
    runtime_session_started(rt, l);
    if (relay_watch_client(&s->relay) < 0)
        return;
    session_advance(s);
}
