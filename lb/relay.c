/* relay: moves bytes both ways between a client and a server connection
 * (see lb/relay.h). Each read is forwarded at once; a full mover stops
 * reading its source until the destination drains it (backpressure), and
 * an end of stream is passed on as a shutdown of the other write side once
 * nothing is held any more (half-close). */
#include <errno.h>
#include <string.h>

#include <event2/event.h>

#include "lb/clock.h"
#include "lb/log.h"
#include "lb/relay.h"

/* In debug lines, the words the session log uses for a failing side. */
static const char *const side_error[2] = {"client error", "backend error"};

static int side_id(const struct relay *r, const struct relay_side *side)
{
    return side == r->client ? 0 : 1;
}

static enum relay_end side_error_end(const struct relay *r, const struct relay_side *side)
{
    return side == r->client ? RELAY_END_CLIENT_ERROR : RELAY_END_SERVER_ERROR;
}

static void relay_park(struct relay *r)
{
    if (r->parked)
        return;
    r->parked = true;
    LIST_INSERT_HEAD(&r->shared->parked, r, park_link);
}

static void relay_unpark(struct relay *r)
{
    if (!r->parked)
        return;
    r->parked = false;
    LIST_REMOVE(r, park_link);
}

struct relay *relay_parked_next(struct relay *r)
{
    return LIST_NEXT(r, park_link);
}

/* Adds ev. On failure (epoll out of memory or over its watch limit) the
 * relay cannot go on: it ends. -1 then. */
static int relay_watch(struct relay *r, struct event *ev)
{
    if (event_add(ev, NULL) == 0)
        return 0;
    r->on_end(r, RELAY_END_WATCH_FAILED);
    return -1;
}

static void side_shut_write(struct relay_side *side)
{
    if (side->write_shut)
        return;
    side->write_shut = true;
    side->conn.ops->shutdown_write(&side->conn);
}

static bool side_unwatched(struct relay_side *side)
{
    return !event_pending(&side->rev, EV_READ, NULL) && !event_pending(&side->wev, EV_WRITE, NULL);
}

/* f's source ended and f holds nothing more. */
static bool flow_drained(const struct relay_flow *f)
{
    return f->src && f->dst && f->src->read_eof && mover_held(&f->mover) == 0;
}

static bool flow_done(const struct relay_flow *f)
{
    return flow_drained(f) && f->dst->write_shut;
}

static void relay_unend(struct relay *r)
{
    if (!r->ending)
        return;
    r->ending = false;
    LIST_REMOVE(r, end_link);
    r->up.shut_pending = r->down.shut_pending = false;
}

/* f has drained after its source's end: its destination's stream ends too.
 * When the other flow has drained as well this ends the relay, and the
 * owner's close() sends the FINs: a shutdown would be one system call for
 * nothing. (Both sockets have been read to their end then, so the close
 * cannot turn into a reset for unread bytes.) Otherwise the shutdown waits
 * for the end of the loop's turn (on_end_turn), which is often when the
 * other end of stream has arrived too: a server that answers and closes
 * while its client closes ends both in one turn. */
static void flow_end_stream(struct relay_flow *f)
{
    struct relay *r = f->r;
    struct relay_flow *other = f == &r->up ? &r->down : &r->up;
    if (flow_drained(other)) {
        f->dst->write_shut = other->dst->write_shut = true;
        relay_unend(r);
        return;
    }
    if (f->dst->write_shut || f->shut_pending)
        return;
    f->shut_pending = true;
    if (!r->ending) {
        r->ending = true;
        LIST_INSERT_HEAD(&r->shared->ending, r, end_link);
        event_active(&r->shared->end_turn, EV_TIMEOUT, 1);
    }
}

/* Runs after the other callbacks of the turn (activated during it, at their
 * priority, it comes after them in libevent's queue): the shutdowns that
 * no second end of stream made needless. */
static void on_end_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct relay_shared *sh = arg;
    struct relay *r;
    while ((r = LIST_FIRST(&sh->ending)) != NULL) {
        struct relay_flow *flows[2] = {&r->up, &r->down};
        for (int i = 0; i < 2; i++)
            if (flows[i]->shut_pending)
                side_shut_write(flows[i]->dst);
        relay_unend(r);
    }
}

void relay_shared_init(struct relay_shared *sh, struct event_base *base)
{
    LIST_INIT(&sh->parked);
    LIST_INIT(&sh->ending);
    event_assign(&sh->end_turn, base, -1, 0, on_end_turn, sh);
}

void relay_shared_free(struct relay_shared *sh)
{
    event_del(&sh->end_turn);
}

/* Ends the relay when both flows are finished. True when it did. */
static bool relay_check_done(struct relay *r)
{
    if (!flow_done(&r->up) || !flow_done(&r->down))
        return false;
    r->on_end(r, r->first_closed == 0 ? RELAY_END_CLIENT_CLOSED : RELAY_END_SERVER_CLOSED);
    return true;
}

/* Starts reading f's source again when it has room, and makes up for
 * bytes its layer holds that no socket event will announce. */
static int flow_resume_read(struct relay_flow *f)
{
    struct relay_side *src = f->src;
    if (src->read_eof || src->read_wants_write || mover_full(&f->mover))
        return 0;
    if (!event_pending(&src->rev, EV_READ, NULL) && relay_watch(f->r, &src->rev) < 0)
        return -1;
    if (conn_pending(&src->conn) > 0)
        event_active(&src->rev, EV_READ, 1);
    return 0;
}

/* Writes what f holds to its destination (none yet: the bytes wait).
 * Called with bytes just read, and when dst becomes writable. -1 when the
 * relay ended. */
static int flow_flush(struct relay_flow *f)
{
    struct relay *r = f->r;
    struct relay_side *dst = f->dst;
    if (dst == NULL)
        return flow_resume_read(f); /* no server yet: the bytes wait, reads go on */
    if (mover_held(&f->mover) > 0) {
        ssize_t n = f->mover.ops->flush(&f->mover, &dst->conn);
        if (n < 0) {
            log_debug("%s: send: %s", side_error[side_id(r, dst)], strerror(errno));
            r->on_end(r, side_error_end(r, dst));
            return -1;
        }
        if (n > 0)
            r->last_active_ms = clock_ms(CLOCK_MONOTONIC_COARSE);
    }
    if (mover_held(&f->mover) > 0) {
        if (!event_pending(&dst->wev, EV_WRITE, NULL) && relay_watch(r, &dst->wev) < 0)
            return -1;
    } else {
        if (!dst->read_wants_write) /* else a read of dst's waits for this event */
            event_del(&dst->wev);
        if (!event_pending(&dst->rev, EV_READ, NULL))
            relay_park(r); /* dst's reads are off too: nothing watches it now */
        if (f->src->read_eof) {
            flow_end_stream(f);
            if (relay_check_done(r))
                return -1;
        }
    }
    return flow_resume_read(f);
}

/* Reads once from f's source and forwards at once. */
static void flow_read(struct relay_flow *f)
{
    struct relay *r = f->r;
    struct relay_side *src = f->src;
    if (mover_full(&f->mover)) { /* cannot happen: rev is off while full */
        event_del(&src->rev);
        return;
    }
    ssize_t n = f->mover.ops->fill(&f->mover, &src->conn);
    if (n > 0) {
        f->bytes += (uint64_t)n;
        if (f->count)
            *f->count += (uint64_t)n;
        r->last_active_ms = clock_ms(CLOCK_MONOTONIC_COARSE);
        if (flow_flush(f) < 0)
            return;
        if (mover_full(&f->mover)) {
            event_del(&src->rev); /* backpressure: dst is slower */
            relay_park(r);
        } else if (conn_pending(&src->conn) > 0) {
            event_active(&src->rev, EV_READ, 1);
        }
        return;
    }
    if (n == 0) {
        src->read_eof = true;
        event_del(&src->rev);
        relay_park(r);
        if (r->first_closed < 0)
            r->first_closed = side_id(r, src);
        if (f->dst == NULL) {
            /* No server yet: a client that sent nothing has given up;
             * one that sent bytes half-closed after them, and they go
             * out once the server is there. */
            if (f->bytes == 0)
                r->on_end(r, RELAY_END_CLIENT_CLOSED);
            return;
        }
        if (mover_held(&f->mover) == 0) {
            flow_end_stream(f);
            relay_check_done(r);
        }
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (mover_full(&f->mover)) { /* a pipe that takes nothing more */
            event_del(&src->rev);
            relay_park(r);
            return;
        }
        if (conn_read_wants_write(&src->conn)) {
            /* Reading again while the socket is readable would spin: the
             * read waits for writability (on_writable() retries it). */
            event_del(&src->rev);
            src->read_wants_write = true;
            if (!event_pending(&src->wev, EV_WRITE, NULL))
                relay_watch(r, &src->wev);
            return;
        }
        if (!event_pending(&src->rev, EV_READ, NULL))
            flow_resume_read(f); /* a retry from on_writable(): rev was off */
        return;
    }
    if (errno == ENOMEM) {
        r->on_end(r, RELAY_END_NO_MEMORY);
        return;
    }
    log_debug("%s: recv: %s", side_error[side_id(r, src)], strerror(errno));
    r->on_end(r, side_error_end(r, src));
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
    struct relay_flow *f = arg;
    struct relay_side *side = f->dst;
    if (side->read_wants_write) {
        /* The read that waited for this: retried in this turn, its event
         * still off (flow_read() turns it on again as it goes on). */
        side->read_wants_write = false;
        event_active(&side->rev, EV_READ, 1);
        if (f->src == NULL) { /* the client's, before a server is attached */
            if (mover_held(&f->mover) == 0)
                event_del(&side->wev);
            return;
        }
    }
    flow_flush(f);
}

void relay_init(struct relay *r, struct event_base *base, struct relay_shared *shared,
                struct relay_side *client, void (*on_end)(struct relay *, enum relay_end))
{
    r->base = base;
    r->client = client;
    r->server = NULL;
    r->shared = shared;
    r->parked = r->ending = false;
    r->first_closed = -1;
    r->on_end = on_end;
    r->last_active_ms = clock_ms(CLOCK_MONOTONIC_COARSE);
    r->up.r = r;
    r->up.src = client;
    r->up.dst = NULL;
    r->up.bytes = 0;
    r->up.count = NULL;
    r->up.shut_pending = false;
    r->down.r = r;
    r->down.src = NULL;
    r->down.dst = client;
    r->down.bytes = 0;
    r->down.count = NULL;
    r->down.shut_pending = false;
    client->read_eof = client->write_shut = client->read_wants_write = false;
}

int relay_watch_client(struct relay *r)
{
    struct relay_side *c = r->client;
    event_assign(&c->rev, r->base, c->conn.fd, EV_READ | EV_PERSIST, on_readable, &r->up);
    event_assign(&c->wev, r->base, c->conn.fd, EV_WRITE | EV_PERSIST, on_writable, &r->down);
    return flow_resume_read(&r->up);
}

int relay_attach_server(struct relay *r, struct relay_side *server)
{
    r->server = server;
    server->read_eof = server->write_shut = server->read_wants_write = false;
    r->up.dst = server;
    r->down.src = server;
    event_assign(&server->rev, r->base, server->conn.fd, EV_READ | EV_PERSIST, on_readable,
                 &r->down);
    event_assign(&server->wev, r->base, server->conn.fd, EV_WRITE | EV_PERSIST, on_writable,
                 &r->up);
    r->last_active_ms = clock_ms(CLOCK_MONOTONIC_COARSE);
    if (flow_resume_read(&r->down) < 0)
        return -1;
    /* Bytes the down mover started with (an HTTP upgrade's, sent with the
     * 101) go first. */
    if (mover_held(&r->down.mover) > 0 && flow_flush(&r->down) < 0)
        return -1;
    return flow_flush(&r->up); /* what the client sent while the server connected */
}

static void side_stop(struct relay_side *side)
{
    if (event_initialized(&side->rev))
        event_del(&side->rev);
    if (event_initialized(&side->wev))
        event_del(&side->wev);
}

void relay_no_splice(struct relay *r)
{
    mover_no_splice(&r->up.mover);
    mover_no_splice(&r->down.mover);
}

void relay_stop(struct relay *r)
{
    side_stop(r->client);
    if (r->server)
        side_stop(r->server);
    relay_unpark(r);
    relay_unend(r);
    r->up.mover.ops->release(&r->up.mover);
    r->down.mover.ops->release(&r->down.mover);
}

int relay_probe(struct relay *r)
{
    struct relay_side *sides[2] = {r->client, r->server};
    bool any = false;
    for (int i = 0; i < 2; i++) {
        if (!sides[i] || !side_unwatched(sides[i]))
            continue;
        any = true;
        int err = sides[i]->conn.ops->error(&sides[i]->conn);
        if (err != 0) {
            log_debug("%s: %s (found by the probe)", side_error[i], strerror(err));
            r->on_end(r, side_error_end(r, sides[i]));
            return -1;
        }
    }
    if (!any)
        relay_unpark(r);
    return 0;
}
