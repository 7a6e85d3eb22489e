/* session: one accepted client through its phases —
 *   ACCEPTED   the client socket is set up and watched from now on;
 *   PREREAD    bytes needed before the pick: the PROXY header of a
 *              listener with accept_proxy, then, with SNI routes, the TLS
 *              ClientHello (lb/session_sni.c; later also a TLS handshake
 *              or an HTTP head);
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

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lb/clock.h"
#include "lb/io/conn_tls.h"
#include "lb/io/sock.h"
#include "lb/io/tls_ctx.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/proto/proxy_proto.h"
#include "lb/relay.h"
#include "lb/runtime.h"
#include "lb/session.h"
#include "lb/session_internal.h"
#include "lb/upstream.h"

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
    [SESSION_END_BAD_PROXY] = "bad proxy header",
    [SESSION_END_PROXY_TIMEOUT] = "proxy header timeout",
    [SESSION_END_HTTP_ERROR] = "http error",
    [SESSION_END_HTTP_CLOSE] = "http close",
    [SESSION_END_REQUEST_TIMEOUT] = "request timeout",
    [SESSION_END_TLS_FAILED] = "tls handshake failed",
    [SESSION_END_TLS_TIMEOUT] = "tls handshake timeout",
    [SESSION_END_QUEUE_TIMEOUT] = "queue timeout",
    [SESSION_END_QUEUE_FULL] = "queue full",
};

const char *session_end_text(enum session_end why)
{
    return (unsigned)why < sizeof(end_text) / sizeof(end_text[0]) ? end_text[why] : "?";
}

static void session_log(struct session *s, enum session_end why)
{
    /* A failed TLS handshake costs a scanner nothing: one line each at
     * info would let anyone fill the log. They are counted on the
     * listener, and their line is a debug one. */
    bool handshake = why == SESSION_END_TLS_FAILED || why == SESSION_END_TLS_TIMEOUT;
    if (!log_enabled(handshake ? LB_LOG_DEBUG : LB_LOG_INFO))
        return;
    char client[INET6_ADDRSTRLEN + 16];
    sockaddr_text((struct sockaddr *)&s->client_addr, client, sizeof(client));
    uint64_t duration = clock_ms(CLOCK_MONOTONIC) - s->start_ms;
    const struct upstream *u = &s->upstream;
    const struct log_field f[] = {
        LOG_STR("client", client),
        LOG_STR("listener", s->listener->name),
        LOG_STR("pool", u->pool->name),
        LOG_STR("backend", u->backend ? u->backend->id : NULL),
        LOG_NUM("bytes_from_client", s->relay.up.bytes),
        LOG_NUM("bytes_from_backend", s->relay.down.bytes),
        LOG_NUM("duration_ms", duration),
        LOG_QUOTED("reason", session_end_text(why)),
    };
    log_access(handshake ? LB_LOG_DEBUG : LB_LOG_INFO, "session end", f, sizeof(f) / sizeof(f[0]));
}

/* The one way a session ends: its log line, every event off, both
 * connections closed (a failed side's reset passed on to the other peer,
 * so it cannot take a cut stream for a complete one), the backend and pool
 * references dropped, the listener's and runtime's counts updated. */
void session_close(struct session *s, enum session_end why)
{
    struct listener *l = s->listener;
    session_log(s, why);
    relay_stop(&s->relay);
    if (event_initialized(&s->idle_timer))
        event_del(&s->idle_timer);
    if (why == SESSION_END_BACKEND_ERROR)
        s->client.conn.ops->reset(&s->client.conn);
    if (s->http)
        http_session_free(s);
    upstream_free(&s->upstream, why == SESSION_END_CLIENT_ERROR);
    s->client.conn.ops->close(&s->client.conn);
    tls_ctx_unref(s->tls); /* after the SSL it made is freed */
    free(s->preread);
    LIST_REMOVE(s, link);
    free(s);
    runtime_session_ended(l->rt, l);
}

void session_on_relay_end(struct relay *r, enum relay_end how)
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

void session_on_idle_timer(evutil_socket_t fd, short what, void *arg)
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

void session_idle_arm(struct session *s)
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

/* send_proxy: the PROXY header goes to the fresh backend connection
 * before any byte of the client's, in plain text right after the TCP
 * connect (before a TLS handshake: the upstream's on_tcp_connected, in
 * both modes). It is at most 107 bytes on a socket that has sent nothing,
 * so one write takes it whole (a partial one counts as a failure rather
 * than leave a cut header). NULL, or why it failed. */
static const char *session_send_proxy(struct upstream *u)
{
    struct session *s = u->owner;
    if (u->pool->send_proxy == LB_PROXY_OFF)
        return NULL;
    struct sockaddr_storage local;
    const struct sockaddr *dst = &s->proxied_dst.sa;
    if (dst->sa_family == 0) {
        socklen_t len = sizeof(local);
        if (getsockname(s->client.conn.fd, (struct sockaddr *)&local, &len) < 0)
            return strerror(errno);
        dst = (const struct sockaddr *)&local;
    }
    const struct sockaddr *src = (const struct sockaddr *)&s->client_addr;
    unsigned char hdr[PROXY_V1_MAX];
    size_t n = u->pool->send_proxy == LB_PROXY_V1 ? proxy_write_v1(hdr, sizeof(hdr), src, dst)
                                                  : proxy_write_v2(hdr, sizeof(hdr), src, dst);
    struct iovec iov = {hdr, n};
    ssize_t w = n > 0 ? conn_writev(&u->server.conn, &iov, 1) : -1;
    if (w < 0)
        return n > 0 ? strerror(errno) : "cannot write the header";
    return (size_t)w == n ? NULL : "short write";
}

/* CONNECTING -> RELAYING: the upstream's server side joins the relay (a
 * TLS one never splices: the movers would move its ciphertext). */
static void on_upstream_connected(struct upstream *u)
{
    struct session *s = u->owner;
    if (u->server.conn.ops != &conn_tcp_ops)
        relay_no_splice(&s->relay);
    s->phase = SESSION_RELAYING;
    /* What the client sent while the backend connected goes to it now. */
    u->backend->bytes_out += s->relay.up.bytes;
    s->relay.up.count = &u->backend->bytes_out;
    s->relay.down.count = &u->backend->bytes_in;
    evtimer_assign(&s->idle_timer, s->listener->rt->base, session_on_idle_timer, s);
    if (relay_attach_server(&s->relay, &u->server) < 0)
        return;
    session_idle_arm(s);
}

static void on_upstream_failed(struct upstream *u, enum session_end why)
{
    session_close(u->owner, why);
}

/* accept_proxy: ends s for what came instead of a PROXY header (counted
 * on the listener; the detail goes to the debug log only, a client could
 * send one per connection). */
static void session_proxy_reject(struct session *s, enum session_end why, const char *detail)
{
    s->listener->proxy_rejected++;
    if (log_enabled(LB_LOG_DEBUG)) {
        char client[INET6_ADDRSTRLEN + 16];
        sockaddr_text((struct sockaddr *)&s->client_addr, client, sizeof(client));
        log_debug("listener %s: client %s: %s", s->listener->name, client, detail);
    }
    session_close(s, why);
}

static void on_proxy_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_proxy_reject(arg, SESSION_END_PROXY_TIMEOUT,
                         "no complete PROXY header within request_timeout_ms");
}

static void session_advance(struct session *s);

/* The PROXY header's addresses become the session's: iphash, the log,
 * X-Forwarded-For and a send_proxy header see the client it names. */
static void session_take_proxy(struct session *s, const struct proxy_addr *pa)
{
    if (pa->local)
        return;
    socklen_t len =
        pa->src.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    memcpy(&s->client_addr, &pa->src, len);
    s->client_len = len;
    memcpy(&s->proxied_dst, &pa->dst,
           pa->dst.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

/* PREREAD with accept_proxy. The client's bytes are peeked so that only
 * the header itself is taken off the socket: what the client sent after
 * it stays there for the relay. Bytes of a header not complete yet are
 * taken off and kept (s->preread) — all of them belong to the header, and
 * left in the socket they would keep it readable. */
static void on_proxy_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct session *s = arg;
    unsigned char buf[PROXY_HEADER_MAX];
    size_t have = s->preread_len;
    if (have)
        memcpy(buf, s->preread, have);
    ssize_t n;
    do
        n = recv(fd, buf + have, sizeof(buf) - have, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n < 0) {
        session_close(s, SESSION_END_CLIENT_ERROR);
        return;
    }
    if (n == 0) { /* a peer that connects and leaves (a TCP probe) is not an error */
        if (have == 0)
            session_close(s, SESSION_END_CLIENT_CLOSED);
        else
            session_proxy_reject(s, SESSION_END_BAD_PROXY, "closed inside the PROXY header");
        return;
    }
    struct proxy_addr pa;
    size_t used = 0;
    const char *why = "";
    enum proxy_result res = proxy_parse(buf, have + (size_t)n, &pa, &used, &why);
    if (res == PROXY_INVALID) {
        session_proxy_reject(s, SESSION_END_BAD_PROXY, why);
        return;
    }
    /* The parser never ends a header inside bytes it called incomplete
     * before; checked anyway, since take sizes a read into buf. */
    if (res == PROXY_OK && (used <= have || used - have > (size_t)n)) {
        session_proxy_reject(s, SESSION_END_BAD_PROXY, "header ends where it cannot");
        return;
    }
    size_t take = res == PROXY_OK ? used - have : (size_t)n;
    if (recv(fd, buf + have, take, 0) != (ssize_t)take) { /* what MSG_PEEK saw is there */
        session_close(s, SESSION_END_CLIENT_ERROR);
        return;
    }
    if (res == PROXY_NEED_MORE) { /* kept at its size: a v1 line is at most 107 bytes */
        unsigned char *kept = realloc(s->preread, have + (size_t)n);
        if (!kept) {
            log_error("listener %s: out of memory for a PROXY header; closing a session",
                      s->listener->name);
            session_close(s, SESSION_END_INTERNAL_ERROR);
            return;
        }
        s->preread = kept;
        memcpy(s->preread + have, buf + have, (size_t)n);
        s->preread_len = have + (size_t)n;
        return;
    }
    free(s->preread);
    s->preread = NULL;
    s->preread_len = 0;
    event_del(&s->client.rev);
    event_del(&s->idle_timer);
    session_take_proxy(s, &pa);
    s->proxy_pending = false;
    session_advance(s);
}

void session_preread_done(struct session *s)
{
    s->phase = SESSION_PICK;
    if (relay_watch_client(&s->relay) < 0)
        return;
    session_advance(s);
}

/* PREREAD: waits for the PROXY header, within request_timeout_ms. The
 * client side's read event and the idle timer serve for it; the relay and
 * the idle timeout take them over afterwards. */
static void session_proxy_wait(struct session *s)
{
    struct event_base *base = s->listener->rt->base;
    event_assign(&s->client.rev, base, s->client.conn.fd, EV_READ | EV_PERSIST, on_proxy_readable,
                 s);
    evtimer_assign(&s->idle_timer, base, on_proxy_timeout, s);
    struct timeval tv = clock_timeval(s->listener->request_timeout_ms);
    if (event_add(&s->client.rev, NULL) < 0 || evtimer_add(&s->idle_timer, &tv) < 0) {
        log_error("listener %s: cannot watch a socket: %s; closing a session", s->listener->name,
                  strerror(errno));
        session_close(s, SESSION_END_INTERNAL_ERROR);
    }
}

/* A TLS listener's client failed its handshake: counted on the listener,
 * the reason in the debug log only (a scanner could cause one per
 * connection). */
static void session_tls_fail(struct session *s, enum session_end why, const char *detail)
{
    s->listener->tls_handshake_failures++;
    if (log_enabled(LB_LOG_DEBUG)) {
        char client[INET6_ADDRSTRLEN + 16];
        sockaddr_text((struct sockaddr *)&s->client_addr, client, sizeof(client));
        log_debug("listener %s: client %s: tls handshake failed: %s", s->listener->name, client,
                  detail);
    }
    session_close(s, why);
}

static void on_tls_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_tls_fail(arg, SESSION_END_TLS_TIMEOUT,
                     "no complete handshake within handshake_timeout_ms");
}

/* One step of the handshake, as far as the socket allows; when it is done
 * the session goes on (session_advance()). */
static void session_tls_step(struct session *s)
{
    struct conn *c = &s->client.conn;
    const char *why = NULL;
    int r = conn_tls_handshake(c, &why);
    if (r < 0) {
        /* A peer that connects and leaves without a byte (a TCP health
         * check of lb's port) is no failed handshake. */
        SSL *ssl = conn_tls_ssl(c);
        if (BIO_number_read(SSL_get_rbio(ssl)) == 0) {
            session_close(s, SESSION_END_CLIENT_CLOSED);
            return;
        }
        session_tls_fail(s, SESSION_END_TLS_FAILED, why);
        return;
    }
    if (r == 0) {
        bool wr = conn_tls_wants(c) == CONN_WANT_WRITE;
        struct event *on = wr ? &s->client.wev : &s->client.rev;
        struct event *off = wr ? &s->client.rev : &s->client.wev;
        event_del(off);
        if (!event_pending(on, EV_READ | EV_WRITE, NULL) && event_add(on, NULL) < 0) {
            log_error("listener %s: cannot watch a socket: %s; closing a session",
                      s->listener->name, strerror(errno));
            session_close(s, SESSION_END_INTERNAL_ERROR);
        }
        return;
    }
    event_del(&s->client.rev);
    event_del(&s->client.wev);
    event_del(&s->idle_timer);
    s->tls_done = true;
    s->tls_done_ms = clock_ms(CLOCK_MONOTONIC);
    s->listener->tls_handshakes++;
    if (SSL_session_reused(conn_tls_ssl(c)))
        s->listener->tls_resumed++;
    session_advance(s);
}

static void on_tls_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_tls_step(arg);
}

/* PREREAD on a TLS listener: the handshake (after a PROXY header, which
 * comes in plain text before it, as with HAProxy's accept-proxy and ssl),
 * within the listener's handshake_timeout_ms; the relay or http mode then
 * read the client through the TLS connection. */
static void session_tls_begin(struct session *s)
{
    struct event_base *base = s->listener->rt->base;
    int fd = s->client.conn.fd;
    event_assign(&s->client.rev, base, fd, EV_READ | EV_PERSIST, on_tls_event, s);
    event_assign(&s->client.wev, base, fd, EV_WRITE | EV_PERSIST, on_tls_event, s);
    evtimer_assign(&s->idle_timer, base, on_tls_timeout, s);
    struct timeval tv = clock_timeval(s->listener->handshake_timeout_ms);
    if (evtimer_add(&s->idle_timer, &tv) < 0) {
        log_error("listener %s: cannot arm a timer: %s; closing a session", s->listener->name,
                  strerror(errno));
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    session_tls_step(s); /* the ClientHello may be there already */
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
        /* Its steps in order, each once: the PROXY header, the TLS
         * handshake or (without TLS) the ClientHello of SNI routes. */
        if (s->proxy_pending) {
            session_proxy_wait(s);
            return;
        }
        if (s->tls && !s->tls_done) {
            session_tls_begin(s);
            return;
        }
        if (s->http_mode) {
            s->phase = SESSION_HTTP;
            http_session_begin(s);
            return;
        }
        if (session_sni_wanted(s)) { /* lb/session_sni.c */
            session_sni_wait(s);
            return;
        }
        s->phase = SESSION_PICK;
        /* The relay reads the client from here on when PREREAD read it
         * first. */
        if ((s->listener_proxy || s->tls) && relay_watch_client(&s->relay) < 0)
            return;
        /* fall through */
    case SESSION_PICK:
        pick_key_ip(&s->upstream.pick, (struct sockaddr *)&s->client_addr, s->client_len);
        s->phase = SESSION_CONNECTING;
        upstream_connect(&s->upstream);
        return;
    case SESSION_CONNECTING:
    case SESSION_RELAYING:
    case SESSION_HTTP:
        return;
    }
}

void session_stop_idle(struct runtime *rt)
{
    struct session *s = LIST_FIRST(&rt->sessions);
    while (s) {
        struct session *next = LIST_NEXT(s, link);
        if (s->http && http_session_idle(s))
            session_close(s, SESSION_END_SHUTDOWN);
        s = next;
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
    int ended = http_session_probe_parked(rt);
    struct relay *r = LIST_FIRST(&rt->relays.parked);
    while (r) {
        struct relay *next = relay_parked_next(r);
        if (relay_probe(r) < 0) /* may end r's session, never another one */
            ended++;
        r = next;
    }
    return ended;
}

/* A TLS listener's client: its connection becomes a TLS one (server side,
 * the listener's current context). 0, or -1 with fd closed and s freed. */
static int session_tls_init(struct session *s, int fd)
{
    struct listener *l = s->listener;
    SSL *ssl = SSL_new(tls_ctx_ssl(l->tls));
    if (ssl)
        SSL_set_accept_state(ssl);
    if (!ssl || conn_tls_init(&s->client.conn, fd, ssl) < 0) {
        ERR_clear_error();
        log_error("listener %s: out of memory for a TLS session, closing a new connection",
                  l->name);
        close(fd);
        free(s);
        return -1;
    }
    s->tls = tls_ctx_ref(l->tls);
    return 0;
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
    s->http_mode = l->mode == LB_MODE_HTTP; /* a reload may change the listener's */
    s->start_ms = clock_ms(CLOCK_MONOTONIC);
    if (salen > sizeof(s->client_addr))
        salen = sizeof(s->client_addr);
    memcpy(&s->client_addr, sa, salen);
    s->client_len = salen;
    conn_tcp_init(&s->client.conn, fd);
    s->proxy_pending = s->listener_proxy = l->accept_proxy;
    if (l->tls && session_tls_init(s, fd) < 0)
        return;
    sock_set_nodelay(fd);
    sock_set_keepalive(fd, &l->keepalive, "listener", l->name);
    upstream_init(&s->upstream, s, l, l->pool, on_upstream_connected, on_upstream_failed);
    s->upstream.on_tcp_connected = session_send_proxy;
    relay_init(&s->relay, rt->base, &rt->relays, &s->client, session_on_relay_end);
    /* splice(2) would move ciphertext past OpenSSL: a TLS client's flows
     * use the ring. */
    struct pipepool *pipes = l->splice && !s->tls ? &rt->pipes : NULL;
    mover_auto_init(&s->relay.up.mover, &rt->bufs, pipes);
    mover_auto_init(&s->relay.down.mover, &rt->bufs, pipes);
    s->relay.up.mover.spliced = s->relay.down.mover.spliced = &rt->spliced_bytes;

    LIST_INSERT_HEAD(&rt->sessions, s, link);
    runtime_session_started(rt, l);
    /* With accept_proxy, TLS or SNI routes the relay reads only after
     * PREREAD; in http mode the relay reads only in an upgrade's tunnel. */
    if (!s->listener_proxy && !s->tls && !s->http_mode && !session_sni_wanted(s) &&
        relay_watch_client(&s->relay) < 0)
        return;
    session_advance(s);
}
