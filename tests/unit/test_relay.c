/* Unit: the relay (lb/relay.c) over socketpair()s and loopback TCP pairs,
 * without a listener, pool or session: bytes both ways, half-close from
 * either side, bytes a client sends before the server is attached,
 * backpressure (a full mover stops reading, and reading resumes byte-exact),
 * a reset and a write error on either side, the probe of a parked side (also
 * one that lost its last watch after being unparked), and
 * bytes a connection layer holds that no socket event announces, a read
 * that must wait for writability (TLS), and pooled
 * buffers held only while bytes wait, and the move to splice(2) for bulk. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "lb/clock.h"
#include "lb/relay.h"
#include "tests/test.h"

#define RIG_BUF 4096
#define RIG_WAIT_MS 3000

struct rig {
    struct event_base *base;
    struct relay_shared shared;
    struct relay r;
    struct relay_side client, server;
    int cpeer, speer; /* the test's ends: the client and the backend */
    int ends;         /* on_end calls */
    enum relay_end how;
    char bufs[2][RIG_BUF];
};

static struct rig *rig_of(struct relay *r)
{
    return (struct rig *)((char *)r - offsetof(struct rig, r));
}

/* Like the session: stop, then close both connections. */
static void on_end(struct relay *r, enum relay_end how)
{
    struct rig *g = rig_of(r);
    g->ends++;
    g->how = how;
    relay_stop(r);
    g->client.conn.ops->close(&g->client.conn);
    g->server.conn.ops->close(&g->server.conn);
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A connected loopback TCP pair: *a and *b, both non-blocking. */
static void tcp_pair(int *a, int *b)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(*a, (struct sockaddr *)&sin, sizeof(sin)), 0);
    *b = accept(l, NULL, NULL);
    ck_assert_int_ge(*b, 0);
    close(l);
    set_nonblock(*a);
    set_nonblock(*b);
}

static void unix_pair(int *a, int *b)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    *a = sv[0];
    *b = sv[1];
}

/* The relay's client side over one pair, its server side (not attached
 * yet) over another; tcp picks loopback TCP pairs instead of socketpairs. */
static void rig_init(struct rig *g, bool tcp)
{
    memset(g, 0, sizeof(*g));
    g->base = event_base_new();
    ck_assert_ptr_nonnull(g->base);
    relay_shared_init(&g->shared, g->base);
    int c, s;
    if (tcp) {
        tcp_pair(&g->cpeer, &c);
        tcp_pair(&s, &g->speer);
    } else {
        unix_pair(&g->cpeer, &c);
        unix_pair(&s, &g->speer);
    }
    conn_tcp_init(&g->client.conn, c);
    conn_tcp_init(&g->server.conn, s);
    relay_init(&g->r, g->base, &g->shared, &g->client, on_end);
    mover_ring_init(&g->r.up.mover, g->bufs[0], RIG_BUF);
    mover_ring_init(&g->r.down.mover, g->bufs[1], RIG_BUF);
}

static void rig_start(struct rig *g, bool attach)
{
    ck_assert_int_eq(relay_watch_client(&g->r), 0);
    if (attach)
        ck_assert_int_eq(relay_attach_server(&g->r, &g->server), 0);
}

static void rig_free(struct rig *g)
{
    if (g->ends == 0)
        relay_stop(&g->r);
    g->client.conn.ops->close(&g->client.conn);
    g->server.conn.ops->close(&g->server.conn);
    close(g->cpeer);
    close(g->speer);
    relay_shared_free(&g->shared);
    event_base_free(g->base);
}

/* Runs the loop without blocking, a few passes. */
static void rig_spin(struct rig *g)
{
    for (int i = 0; i < 8; i++)
        event_base_loop(g->base, EVLOOP_NONBLOCK);
}

/* Runs the loop until the relay ended (bounded). */
static void rig_run_to_end(struct rig *g)
{
    uint64_t until = clock_ms(CLOCK_MONOTONIC) + RIG_WAIT_MS;
    while (g->ends == 0 && clock_ms(CLOCK_MONOTONIC) < until) {
        event_base_loop(g->base, EVLOOP_NONBLOCK);
        poll(NULL, 0, 1);
    }
    ck_assert_msg(g->ends == 1, "the relay did not end within %d ms", RIG_WAIT_MS);
}

static void put(int fd, const char *text)
{
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* Reads exactly strlen(want) bytes from fd while running the loop; then,
 * when eof is set, expects the end of stream. */
static void expect(struct rig *g, int fd, const char *want, bool eof)
{
    size_t len = strlen(want), got = 0;
    char buf[256];
    ck_assert(len < sizeof(buf));
    uint64_t until = clock_ms(CLOCK_MONOTONIC) + RIG_WAIT_MS;
    bool seen_eof = false;
    while ((got < len || (eof && !seen_eof)) && clock_ms(CLOCK_MONOTONIC) < until) {
        event_base_loop(g->base, EVLOOP_NONBLOCK);
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            seen_eof = true;
        else
            poll(NULL, 0, 1);
        if (seen_eof)
            break;
    }
    buf[got] = '\0';
    ck_assert_str_eq(buf, want);
    if (eof)
        ck_assert_msg(seen_eof, "no end of stream after \"%s\"", want);
}

START_TEST(both_ways_client_closes_first)
{
    struct rig g;
    rig_init(&g, false);
    rig_start(&g, true);
    put(g.cpeer, "hello");
    expect(&g, g.speer, "hello", false);
    shutdown(g.cpeer, SHUT_WR);
    expect(&g, g.speer, "", true); /* the FIN is passed on */
    ck_assert_int_eq(g.ends, 0);
    put(g.speer, "world!");
    shutdown(g.speer, SHUT_WR);
    expect(&g, g.cpeer, "world!", true);
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_CLIENT_CLOSED);
    ck_assert_uint_eq(g.r.up.bytes, 5);
    ck_assert_uint_eq(g.r.down.bytes, 6);
    rig_free(&g);
}
END_TEST

START_TEST(server_closes_first)
{
    struct rig g;
    rig_init(&g, false);
    uint64_t counted = 0;
    rig_start(&g, true);
    g.r.down.count = &counted;
    put(g.speer, "banner");
    shutdown(g.speer, SHUT_WR);
    expect(&g, g.cpeer, "banner", true);
    ck_assert_int_eq(g.ends, 0); /* the client may still talk */
    put(g.cpeer, "late");
    expect(&g, g.speer, "late", false);
    shutdown(g.cpeer, SHUT_WR);
    expect(&g, g.speer, "", true);
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_SERVER_CLOSED);
    ck_assert_uint_eq(counted, 6);
    rig_free(&g);
}
END_TEST

/* Conn ops that count the shutdowns the relay asks for. */
static int shutdowns;
static void counting_shutdown(struct conn *c)
{
    shutdowns++;
    conn_tcp_ops.shutdown_write(c);
}

/* Both peers end their streams in the same loop turn (a server that answers
 * and closes while its client closes): the relay ends without a shutdown,
 * the owner's close sends both FINs. A lone end of stream still becomes a
 * shutdown at the end of the turn (server_closes_first, and here the other
 * way round). */
START_TEST(both_ends_in_one_turn_need_no_shutdown)
{
    static struct conn_ops counting;
    counting = conn_tcp_ops;
    counting.shutdown_write = counting_shutdown;
    for (int lone = 0; lone < 2; lone++) {
        struct rig g;
        rig_init(&g, true);
        g.client.conn.ops = g.server.conn.ops = &counting;
        shutdowns = 0;
        rig_start(&g, true);
        shutdown(g.cpeer, SHUT_WR);
        if (!lone)
            shutdown(g.speer, SHUT_WR);
        poll(NULL, 0, 20); /* both FINs are there before the loop's next turn */
        event_base_loop(g.base, EVLOOP_NONBLOCK);
        if (lone) {
            ck_assert_int_eq(g.ends, 0);
            ck_assert_int_eq(shutdowns, 1); /* towards the server */
            expect(&g, g.speer, "", true);
            shutdown(g.speer, SHUT_WR);
            rig_run_to_end(&g);
            ck_assert_int_eq(g.how, RELAY_END_CLIENT_CLOSED);
            ck_assert_int_eq(shutdowns, 1);
        } else {
            ck_assert_int_eq(g.ends, 1);
            ck_assert_int_eq(shutdowns, 0);
        }
        rig_free(&g);
    }
}
END_TEST

/* Bytes and the FIN a client sends while no server is attached wait in
 * the up mover and go out, in order, once it is. */
START_TEST(client_bytes_wait_for_the_server)
{
    struct rig g;
    rig_init(&g, false);
    rig_start(&g, false);
    put(g.cpeer, "early");
    shutdown(g.cpeer, SHUT_WR);
    rig_spin(&g);
    ck_assert_int_eq(g.ends, 0);
    ck_assert_uint_eq(g.r.up.bytes, 5);
    ck_assert(g.r.parked); /* the client is unwatched: the probe looks after it */
    ck_assert_int_eq(relay_attach_server(&g.r, &g.server), 0);
    expect(&g, g.speer, "early", true);
    put(g.speer, "ok");
    shutdown(g.speer, SHUT_WR);
    expect(&g, g.cpeer, "ok", true);
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_CLIENT_CLOSED);
    rig_free(&g);
}
END_TEST

/* A client that goes away without a byte before the server is attached
 * ends the relay at once. */
START_TEST(client_gone_before_the_server)
{
    struct rig g;
    rig_init(&g, false);
    rig_start(&g, false);
    shutdown(g.cpeer, SHUT_WR);
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_CLIENT_CLOSED);
    ck_assert_uint_eq(g.r.up.bytes, 0);
    rig_free(&g);
}
END_TEST

START_TEST(client_reset_before_the_server)
{
    struct rig g;
    rig_init(&g, true);
    rig_start(&g, false);
    struct linger lg = {1, 0};
    setsockopt(g.cpeer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(g.cpeer);
    g.cpeer = -1;
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_CLIENT_ERROR);
    rig_free(&g);
}
END_TEST

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 11));
}

/* A byte stream client -> backend through a rig: pattern() bytes from
 * offset base; sent and got count from there. */
struct stream {
    size_t base, total; /* total: how many to send in all */
    size_t sent, got;
};

/* One write of the stream's next bytes; true when some went. */
static bool stream_write(struct rig *g, struct stream *st)
{
    unsigned char buf[65536];
    size_t n = 0;
    while (n < sizeof(buf) && st->sent + n < st->total) {
        buf[n] = pattern(st->base + st->sent + n);
        n++;
    }
    ssize_t w = n ? write(g->cpeer, buf, n) : 0;
    if (w <= 0)
        return false;
    st->sent += (size_t)w;
    return true;
}

/* Writes while the backend reads nothing, until everything between them
 * is full (50 writes in a row take nothing). */
static void stream_fill_until_stuck(struct rig *g, struct stream *st)
{
    for (int idle = 0; idle < 50;) {
        idle = stream_write(g, st) ? 0 : idle + 1;
        rig_spin(g);
    }
}

/* The backend reads (and the client goes on writing) until all total
 * bytes arrived; each checked against pattern(). */
static void stream_drain(struct rig *g, struct stream *st)
{
    unsigned char buf[65536];
    uint64_t until = clock_ms(CLOCK_MONOTONIC) + 20000;
    while (st->got < st->total && clock_ms(CLOCK_MONOTONIC) < until) {
        stream_write(g, st);
        event_base_loop(g->base, EVLOOP_NONBLOCK);
        ssize_t r = read(g->speer, buf, sizeof(buf));
        /* One assertion per read, not per byte: each passing ck_assert
         * costs Check a write to its parent, 64 Ki of them per read. */
        ssize_t bad = -1;
        for (ssize_t i = 0; i < r && bad < 0; i++)
            if (buf[i] != pattern(st->base + st->got + (size_t)i))
                bad = i;
        ck_assert_msg(bad < 0, "byte %zu differs", st->base + st->got + (size_t)bad);
        if (r > 0)
            st->got += (size_t)r;
    }
    ck_assert_uint_eq(st->got, st->total);
}

/* The backend reads nothing: the up mover fills, the relay stops reading
 * the client (and parks), and once the backend reads, every byte arrives
 * in order. */
START_TEST(backpressure_stops_and_resumes)
{
    struct rig g;
    rig_init(&g, false);
    rig_start(&g, true);
    struct stream st = {.total = 4u << 20};
    stream_fill_until_stuck(&g, &st);
    ck_assert_uint_lt(st.sent, st.total); /* the chain is full */
    ck_assert(mover_full(&g.r.up.mover));
    ck_assert(!event_pending(&g.client.rev, EV_READ, NULL));
    ck_assert(g.r.parked);
    ck_assert_int_eq(g.ends, 0);
    stream_drain(&g, &st); /* the backend reads now */
    ck_assert_uint_eq(g.r.up.bytes, st.total);
    ck_assert(event_pending(&g.client.rev, EV_READ, NULL));
    rig_free(&g);
}
END_TEST

START_TEST(server_reset_is_an_error)
{
    struct rig g;
    rig_init(&g, true);
    rig_start(&g, true);
    put(g.cpeer, "x");
    expect(&g, g.speer, "x", false);
    struct linger lg = {1, 0};
    setsockopt(g.speer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(g.speer);
    g.speer = -1;
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_SERVER_ERROR);
    rig_free(&g);
}
END_TEST

/* The backend went away entirely: writing the client's next bytes to it
 * fails (EPIPE, never SIGPIPE), a backend error. */
START_TEST(write_to_a_closed_server_is_an_error)
{
    struct rig g;
    rig_init(&g, false);
    rig_start(&g, true);
    close(g.speer);
    g.speer = -1;
    rig_spin(&g);
    put(g.cpeer, "anyone?");
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_SERVER_ERROR);
    rig_free(&g);
}
END_TEST

/* A half-closed client no event watches any more is parked; its reset is
 * found by the probe. */
START_TEST(probe_finds_a_reset_on_a_parked_side)
{
    struct rig g;
    rig_init(&g, true);
    rig_start(&g, true);
    shutdown(g.cpeer, SHUT_WR);
    expect(&g, g.speer, "", true);
    ck_assert(g.r.parked);
    ck_assert_ptr_eq(LIST_FIRST(&g.shared.parked), &g.r);
    ck_assert_int_eq(relay_probe(&g.r), 0); /* nothing wrong yet */
    ck_assert_int_eq(g.ends, 0);
    struct linger lg = {1, 0};
    setsockopt(g.cpeer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(g.cpeer);
    g.cpeer = -1;
    poll(NULL, 0, 50); /* the RST reaches the relay's socket */
    ck_assert_int_eq(relay_probe(&g.r), -1);
    ck_assert_int_eq(g.how, RELAY_END_CLIENT_ERROR);
    ck_assert(LIST_EMPTY(&g.shared.parked));
    rig_free(&g);
}
END_TEST

/* A layer that has already taken bytes off the socket (as TLS does with
 * records) hands them out one at a time: no socket event announces them,
 * so the relay must ask pending() and read on its own. */
struct stash {
    const char *data;
    size_t len, off;
};

static ssize_t stash_readv(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct stash *st = c->layer;
    if (st->off < st->len && iovcnt > 0 && iov[0].iov_len > 0) {
        ((char *)iov[0].iov_base)[0] = st->data[st->off++];
        return 1;
    }
    return conn_tcp_ops.readv(c, iov, iovcnt);
}

static size_t stash_pending(const struct conn *c)
{
    const struct stash *st = c->layer;
    return st->len - st->off;
}

START_TEST(layer_pending_bytes_are_read_without_an_event)
{
    struct rig g;
    rig_init(&g, false);
    struct conn_ops ops = conn_tcp_ops;
    ops.name = "stash";
    ops.readv = stash_readv;
    ops.pending = stash_pending;
    struct stash st = {"abcdef", 6, 0};
    g.client.conn.ops = &ops;
    g.client.conn.layer = &st;
    rig_start(&g, true);
    expect(&g, g.speer, "abcdef", false);
    ck_assert_uint_eq(g.r.up.bytes, 6);
    put(g.cpeer, "gh"); /* then the socket's own bytes */
    expect(&g, g.speer, "gh", false);
    rig_free(&g);
}
END_TEST

/* A layer whose first read must write first (what a TLS read that has an
 * alert to send into a full socket says): it asks for writability, and then
 * hands out the socket's bytes only to a read made while the side's read
 * event is off, the relay's retry once the socket is writable; a read its
 * read event made meanwhile would be the loop spinning on a readable
 * socket, counted. */
static struct {
    struct relay_side *side;
    bool said, wanting;
    int spins;
} ww;

static ssize_t ww_readv(struct conn *c, const struct iovec *iov, int iovcnt)
{
    if (!ww.said) {
        ww.said = ww.wanting = true;
        errno = EAGAIN;
        return -1;
    }
    if (ww.wanting && event_pending(&ww.side->rev, EV_READ, NULL)) {
        ww.spins++;
        errno = EAGAIN;
        return -1;
    }
    ww.wanting = false;
    return conn_tcp_ops.readv(c, iov, iovcnt);
}

static enum conn_want ww_wants(const struct conn *c)
{
    (void)c;
    return ww.wanting ? CONN_WANT_WRITE : CONN_WANT_NONE;
}

/* A rig whose client side is that layer, started (attached or not). */
static void ww_rig(struct rig *g, bool attach)
{
    static struct conn_ops ops;
    ops = conn_tcp_ops;
    ops.name = "wants-write";
    ops.readv = ww_readv;
    ops.wants = ww_wants;
    rig_init(g, false);
    memset(&ww, 0, sizeof(ww));
    ww.side = &g->client;
    g->client.conn.ops = &ops;
    rig_start(g, attach);
}

START_TEST(read_that_must_write_first_waits_for_writability)
{
    struct rig g;
    ww_rig(&g, true);
    put(g.cpeer, "abc");
    expect(&g, g.speer, "abc", false);
    ck_assert_int_eq(ww.spins, 0);
    ck_assert(!g.client.read_wants_write);
    ck_assert(event_pending(&g.client.rev, EV_READ, NULL)); /* reads watched again */
    put(g.cpeer, "de");
    expect(&g, g.speer, "de", false);
    ck_assert_uint_eq(g.r.up.bytes, 5);
    rig_free(&g);
}
END_TEST

/* The same before the server is attached: the client's write event
 * belongs to the down flow, which has no source yet. */
START_TEST(read_that_must_write_first_before_the_server)
{
    struct rig g;
    ww_rig(&g, false);
    put(g.cpeer, "abc");
    rig_spin(&g);
    ck_assert_int_eq(ww.spins, 0);
    ck_assert_uint_eq(g.r.up.bytes, 3); /* read on the retry, held for the server */
    ck_assert(event_pending(&g.client.rev, EV_READ, NULL));
    ck_assert_int_eq(relay_attach_server(&g.r, &g.server), 0);
    expect(&g, g.speer, "abc", false);
    rig_free(&g);
}
END_TEST

/* The down flow drains into the client while the client's read waits for
 * writability: the write event it waits on must stay. */
START_TEST(read_that_must_write_first_survives_a_drained_flush)
{
    struct rig g;
    ww_rig(&g, true);
    put(g.cpeer, "abc");
    put(g.speer, "xyz");
    expect(&g, g.cpeer, "xyz", false);
    expect(&g, g.speer, "abc", false);
    ck_assert_int_eq(ww.spins, 0);
    ck_assert(!g.client.read_wants_write);
    rig_free(&g);
}
END_TEST

/* A side can lose its last watch after the probe unparked the relay: the
 * client half-closed (its reads are off for good) while the down flow
 * waited to write to it, so the probe saw every side watched. Once the
 * down flow drains, nothing watches the client: the relay parks again and
 * the probe finds the client's reset. */
START_TEST(drained_side_is_parked_again)
{
    struct rig g;
    rig_init(&g, true);
    /* Fill the path from lb to the client, so the down flow must wait. */
    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    size_t filled = 0;
    for (int idle = 0; idle < 5;) {
        ssize_t w = write(g.client.conn.fd, junk, sizeof(junk));
        if (w <= 0) {
            idle++;
            poll(NULL, 0, 20);
            continue;
        }
        idle = 0;
        filled += (size_t)w;
    }
    rig_start(&g, true);
    put(g.cpeer, "req");
    shutdown(g.cpeer, SHUT_WR);
    expect(&g, g.speer, "req", true);
    ck_assert(g.r.parked);
    put(g.speer, "answer");
    rig_spin(&g);
    ck_assert(event_pending(&g.client.wev, EV_WRITE, NULL));
    ck_assert_int_eq(relay_probe(&g.r), 0);
    ck_assert(!g.r.parked); /* every side watched */
    size_t want = filled + 6, got = 0;
    char buf[65536];
    uint64_t until = clock_ms(CLOCK_MONOTONIC) + RIG_WAIT_MS;
    while (got < want && clock_ms(CLOCK_MONOTONIC) < until) {
        event_base_loop(g.base, EVLOOP_NONBLOCK);
        ssize_t n = read(g.cpeer, buf, sizeof(buf));
        if (n > 0)
            got += (size_t)n;
        else
            poll(NULL, 0, 1);
    }
    ck_assert_uint_eq(got, want);
    rig_spin(&g);
    ck_assert(!event_pending(&g.client.rev, EV_READ, NULL));
    ck_assert(!event_pending(&g.client.wev, EV_WRITE, NULL));
    ck_assert(g.r.parked);
    struct linger lg = {1, 0};
    setsockopt(g.cpeer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(g.cpeer);
    g.cpeer = -1;
    poll(NULL, 0, 50);
    ck_assert_int_eq(relay_probe(&g.r), -1);
    ck_assert_int_eq(g.how, RELAY_END_CLIENT_ERROR);
    rig_free(&g);
}
END_TEST

/* Pooled movers hold a buffer only while bytes wait in them: none for an
 * idle relay, one while the backend does not read, none again once it
 * has, and the freed buffer is reused rather than allocated again. */
START_TEST(pooled_buffers_only_while_bytes_wait)
{
    struct rig g;
    rig_init(&g, false);
    struct bufpool pool;
    bufpool_init(&pool, RIG_BUF, 4);
    mover_ring_init_pooled(&g.r.up.mover, &pool);
    mover_ring_init_pooled(&g.r.down.mover, &pool);
    rig_start(&g, true);
    put(g.cpeer, "ping");
    expect(&g, g.speer, "ping", false);
    put(g.speer, "pong");
    expect(&g, g.cpeer, "pong", false);
    ck_assert_uint_eq(pool.in_use, 0); /* idle: no buffer held */
    ck_assert_uint_eq(pool.cached, 1); /* the one used, kept for reuse */
    /* The backend stops reading: the up flow fills and keeps its buffer. */
    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    for (int idle = 0; idle < 20;) {
        if (write(g.cpeer, junk, sizeof(junk)) <= 0)
            idle++;
        rig_spin(&g);
    }
    ck_assert(mover_full(&g.r.up.mover));
    ck_assert_uint_eq(pool.in_use, 1);
    ck_assert_uint_eq(pool.cached, 0);
    char buf[65536];
    uint64_t until = clock_ms(CLOCK_MONOTONIC) + RIG_WAIT_MS;
    while ((mover_held(&g.r.up.mover) > 0 || read(g.speer, buf, sizeof(buf)) > 0) &&
           clock_ms(CLOCK_MONOTONIC) < until) {
        event_base_loop(g.base, EVLOOP_NONBLOCK);
        while (read(g.speer, buf, sizeof(buf)) > 0)
            ;
    }
    rig_spin(&g);
    while (read(g.speer, buf, sizeof(buf)) > 0)
        rig_spin(&g);
    ck_assert_uint_eq(mover_held(&g.r.up.mover), 0);
    ck_assert_uint_eq(pool.in_use, 0);
    ck_assert_uint_eq(pool.cached, 1);
    rig_free(&g);
    bufpool_drain(&pool);
    ck_assert_uint_eq(pool.cached, 0);
}
END_TEST

/* Moves total bytes of pattern() client -> backend through the rig, the
 * backend reading as they come (byte-exact). */
static void pump(struct rig *g, size_t total)
{
    struct stream st = {.total = total};
    stream_drain(g, &st);
}

/* The auto mover: small messages stay on the ring; a flow that fills a
 * whole buffer in one read moves to a pipe, byte-exact, counted, and the
 * pipe goes back to the pool at the end. Half-close still passes on. */
START_TEST(auto_mover_splices_bulk_only)
{
    struct rig g;
    rig_init(&g, true);
    struct bufpool bufs;
    struct pipepool pipes;
    uint64_t spliced = 0;
    bufpool_init(&bufs, RIG_BUF, 4);
    pipepool_init(&pipes, 2);
    mover_auto_init(&g.r.up.mover, &bufs, &pipes);
    mover_auto_init(&g.r.down.mover, &bufs, &pipes);
    g.r.up.mover.spliced = g.r.down.mover.spliced = &spliced;
    rig_start(&g, true);
    for (int i = 0; i < 20; i++) {
        put(g.cpeer, "small");
        expect(&g, g.speer, "small", false);
    }
    ck_assert_uint_eq(spliced, 0);
    ck_assert(!g.r.up.mover.splice.on);
    pump(&g, 8u << 20);
    ck_assert(g.r.up.mover.splice.on);
    ck_assert_uint_eq(pipes.open, 1);
    ck_assert_uint_gt(spliced, 0);
    ck_assert_uint_eq(g.r.up.bytes, 100 + (8u << 20));
    ck_assert(!g.r.down.mover.splice.on); /* the other direction carried nothing */
    shutdown(g.cpeer, SHUT_WR);
    expect(&g, g.speer, "", true);
    shutdown(g.speer, SHUT_WR);
    expect(&g, g.cpeer, "", true);
    rig_run_to_end(&g);
    ck_assert_int_eq(g.how, RELAY_END_CLIENT_CLOSED);
    ck_assert_uint_eq(pipes.open, 1); /* empty: kept for reuse */
    ck_assert_uint_eq(pipes.cached, 1);
    rig_free(&g);
    pipepool_drain(&pipes);
    ck_assert_uint_eq(pipes.open, 0);
    bufpool_drain(&bufs);
}
END_TEST

/* No pipe free: the flow stays on the ring, byte-exact all the same. */
START_TEST(auto_mover_without_a_pipe_copies)
{
    struct rig g;
    rig_init(&g, true);
    struct bufpool bufs;
    struct pipepool pipes;
    uint64_t spliced = 0;
    bufpool_init(&bufs, RIG_BUF, 4);
    pipepool_init(&pipes, 0);
    mover_auto_init(&g.r.up.mover, &bufs, &pipes);
    mover_auto_init(&g.r.down.mover, &bufs, &pipes);
    g.r.up.mover.spliced = &spliced;
    rig_start(&g, true);
    pump(&g, 4u << 20);
    ck_assert(!g.r.up.mover.splice.on);
    ck_assert_uint_eq(spliced, 0);
    ck_assert_uint_eq(g.r.up.bytes, 4u << 20);
    rig_free(&g);
    bufpool_drain(&bufs);
}
END_TEST

/* relay_no_splice() (a TLS side): both flows stay on the ring though pipes
 * are free and the flow carries bulk over plain sockets, byte-exact. */
START_TEST(no_splice_keeps_the_ring)
{
    struct rig g;
    rig_init(&g, true);
    struct bufpool bufs;
    struct pipepool pipes;
    uint64_t spliced = 0;
    bufpool_init(&bufs, RIG_BUF, 4);
    pipepool_init(&pipes, 2);
    mover_auto_init(&g.r.up.mover, &bufs, &pipes);
    mover_auto_init(&g.r.down.mover, &bufs, &pipes);
    g.r.up.mover.spliced = g.r.down.mover.spliced = &spliced;
    relay_no_splice(&g.r);
    rig_start(&g, true);
    pump(&g, 4u << 20);
    ck_assert(!g.r.up.mover.splice.on);
    ck_assert_uint_eq(spliced, 0);
    ck_assert_uint_eq(pipes.open, 0);
    ck_assert_uint_eq(g.r.up.bytes, 4u << 20);
    rig_free(&g);
    pipepool_drain(&pipes);
    bufpool_drain(&bufs);
}
END_TEST

/* A spliced flow whose backend stops reading: the pipe stalls, the relay
 * stops reading the client and parks; once the backend reads again every
 * byte arrives in order. */
START_TEST(auto_mover_backpressure)
{
    struct rig g;
    rig_init(&g, true);
    struct bufpool bufs;
    struct pipepool pipes;
    bufpool_init(&bufs, RIG_BUF, 4);
    pipepool_init(&pipes, 2);
    mover_auto_init(&g.r.up.mover, &bufs, &pipes);
    mover_auto_init(&g.r.down.mover, &bufs, &pipes);
    rig_start(&g, true);
    pump(&g, 1u << 20);
    ck_assert(g.r.up.mover.splice.on);
    struct stream st = {.base = 1u << 20, .total = SIZE_MAX};
    stream_fill_until_stuck(&g, &st);
    ck_assert(mover_full(&g.r.up.mover));
    ck_assert(!event_pending(&g.client.rev, EV_READ, NULL));
    ck_assert(g.r.parked);
    st.total = st.sent; /* nothing more: the backend reads what is under way */
    stream_drain(&g, &st);
    ck_assert_uint_eq(g.r.up.bytes, st.base + st.sent);
    ck_assert(event_pending(&g.client.rev, EV_READ, NULL));
    rig_free(&g);
    pipepool_drain(&pipes);
    bufpool_drain(&bufs);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay_unit");
    TCase *tc = tcase_create("relay_unit");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, both_ways_client_closes_first);
    tcase_add_test(tc, server_closes_first);
    tcase_add_test(tc, both_ends_in_one_turn_need_no_shutdown);
    tcase_add_test(tc, client_bytes_wait_for_the_server);
    tcase_add_test(tc, client_gone_before_the_server);
    tcase_add_test(tc, client_reset_before_the_server);
    tcase_add_test(tc, backpressure_stops_and_resumes);
    tcase_add_test(tc, server_reset_is_an_error);
    tcase_add_test(tc, write_to_a_closed_server_is_an_error);
    tcase_add_test(tc, probe_finds_a_reset_on_a_parked_side);
    tcase_add_test(tc, layer_pending_bytes_are_read_without_an_event);
    tcase_add_test(tc, read_that_must_write_first_waits_for_writability);
    tcase_add_test(tc, read_that_must_write_first_before_the_server);
    tcase_add_test(tc, read_that_must_write_first_survives_a_drained_flush);
    tcase_add_test(tc, drained_side_is_parked_again);
    tcase_add_test(tc, pooled_buffers_only_while_bytes_wait);
    tcase_add_test(tc, auto_mover_splices_bulk_only);
    tcase_add_test(tc, auto_mover_without_a_pipe_copies);
    tcase_add_test(tc, no_splice_keeps_the_ring);
    tcase_add_test(tc, auto_mover_backpressure);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(relay_suite)
