/* session_sni: PREREAD for a tcp listener with SNI routes ("sni_routes").
 * The client's TLS ClientHello is read without decrypting anything
 * (lb/proto/tls_hello.h), the pool its server name routes to becomes the
 * session's, and the untouched bytes, ClientHello included, go to a
 * backend of that pool. No server name, no matching route, or bytes that
 * are no ClientHello (plain TCP, another protocol, a hello too long): the
 * listener's own pool, as nginx's ssl_preread and HAProxy's req.ssl_sni do.
 *
 * Not peeked, taken: each read moves the client's bytes off the socket
 * into the relay's up mover, where they stay as the first bytes of the up
 * flow — the relay writes them to the backend once it is connected, as it
 * does with whatever a client sends while its backend connects
 * (relay_attach_server()). So nothing is lost, nothing is copied, and the
 * loop cannot spin: MSG_PEEK would leave an incomplete ClientHello in the
 * socket, which would then stay readable until the rest came, whereas a
 * socket read to its end is readable again only when more bytes arrive.
 * Bounded by the mover's room (one pooled buffer, RUNTIME_BUF_SIZE, not
 * less than TLS_HELLO_MAX): what has not become a ClientHello when it is
 * full goes to the default pool. The wait ends at request_timeout_ms from
 * the accept (the PROXY header of accept_proxy, which comes first, counts
 * in it): "request timeout". */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "lb/clock.h"
#include "lb/io/sock.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/proto/tls_hello.h"
#include "lb/runtime.h"
#include "lb/session_internal.h"
#include "lb/upstream.h"

_Static_assert(RUNTIME_BUF_SIZE >= TLS_HELLO_MAX,
               "a ClientHello of TLS_HELLO_MAX bytes must fit in the up mover");

bool session_sni_wanted(const struct session *s)
{
    return !s->http_mode && listener_has_routes(s->listener);
}

/* A debug line about s's client (a client could cause one per
 * connection: never above debug). */
static void sni_debug(const struct session *s, const char *what)
{
    char client[INET6_ADDRSTRLEN + 16];
    sockaddr_text((const struct sockaddr *)&s->client_addr, client, sizeof(client));
    log_debug("listener %s: client %s: %s", s->listener->name, client, what);
}

/* The pool is decided: h is the ClientHello read, NULL when there is none
 * (why says what came instead). The session goes on to PICK, its bytes
 * waiting in the up mover. */
static void sni_route(struct session *s, const struct tls_hello *h, const char *why)
{
    struct listener *l = s->listener;
    event_del(&s->client.rev);
    event_del(&s->idle_timer);
    struct pool *p = h && h->has_server_name ? listener_route(l, h->server_name) : NULL;
    if (p) {
        l->sni_routed++;
        upstream_set_pool(&s->upstream, p);
    } else {
        l->sni_default++;
    }
    if (log_enabled(LB_LOG_DEBUG)) {
        char line[TLS_SERVER_NAME_MAX + 160];
        if (h && h->has_server_name)
            snprintf(line, sizeof(line), "sni: server name \"%s\", %s pool %s", h->server_name,
                     p ? "route to" : "no route, default", (p ? p : l->pool)->name);
        else
            snprintf(line, sizeof(line), "sni: %s, default pool %s", h ? "no server name" : why,
                     l->pool->name);
        sni_debug(s, line);
    }
    session_preread_done(s);
}

static void on_sni_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    if (log_enabled(LB_LOG_DEBUG))
        sni_debug(s, "sni: no complete ClientHello within request_timeout_ms");
    session_close(s, SESSION_END_REQUEST_TIMEOUT);
}

/* One read of the client into the up mover, then a look at all it holds. */
static void on_sni_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    struct mover *m = &s->relay.up.mover;
    ssize_t n = m->ops->fill(m, &s->client.conn);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        if (errno == ENOMEM) {
            log_error("listener %s: out of memory for a relay buffer; closing a session",
                      s->listener->name);
            session_close(s, SESSION_END_INTERNAL_ERROR);
            return;
        }
        if (log_enabled(LB_LOG_DEBUG))
            sni_debug(s, strerror(errno));
        session_close(s, SESSION_END_CLIENT_ERROR);
        return;
    }
    if (n == 0 && s->relay.up.bytes == 0) { /* connected and left (a TCP probe) */
        session_close(s, SESSION_END_CLIENT_CLOSED);
        return;
    }
    s->relay.up.bytes += (uint64_t)n; /* the backend's bytes_out gets them at the connect */
    size_t len;
    const char *bytes = mover_span(m, &len);
    struct tls_hello h;
    const char *why = "not a ClientHello";
    enum tls_hello_result r = tls_hello_parse(bytes, len, &h, &why);
    if (r == TLS_HELLO_OK)
        sni_route(s, &h, NULL);
    else if (r == TLS_HELLO_INVALID)
        sni_route(s, NULL, why);
    else if (n == 0) /* half-closed inside a hello: the relay reads the end again */
        sni_route(s, NULL, "end of stream inside a ClientHello");
    else if (mover_full(m)) /* cannot be while RUNTIME_BUF_SIZE >= TLS_HELLO_MAX */
        sni_route(s, NULL, "ClientHello too long");
}

void session_sni_wait(struct session *s)
{
    struct listener *l = s->listener;
    struct event_base *base = l->rt->base;
    event_assign(&s->client.rev, base, s->client.conn.fd, EV_READ | EV_PERSIST, on_sni_readable, s);
    evtimer_assign(&s->idle_timer, base, on_sni_timeout, s);
    uint64_t spent = clock_ms(CLOCK_MONOTONIC) - s->start_ms;
    uint64_t left = spent < l->request_timeout_ms ? l->request_timeout_ms - spent : 0;
    struct timeval tv = clock_timeval(left);
    if (event_add(&s->client.rev, NULL) < 0 || evtimer_add(&s->idle_timer, &tv) < 0) {
        log_error("listener %s: cannot watch a socket: %s; closing a session", l->name,
                  strerror(errno));
        session_close(s, SESSION_END_INTERNAL_ERROR);
    }
}
