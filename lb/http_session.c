/* http_session: a session of an http listener, one request at a time
 * (lb/session_internal.h). After PREREAD (the PROXY header, when the
 * listener takes one) it loops through
 *   WAIT     nothing of the next request yet (a keep-alive client between
 *            requests; the first request counts from the accept): the idle
 *            timeout closes it without a word;
 *   HEAD     the request head arrives, within request_timeout_ms (408) and
 *            max_header_bytes (431), and is checked and parsed
 *            (lb/proto/http_head.h: 400, 501, 505);
 *   CONNECT  the pool's strategy picks a backend for this request and the
 *            upstream takes one of its idle connections or connects (503
 *            none available, 502 every try failed);
 *   EXCHANGE the head lb wrote anew goes to the backend, the request body
 *            after it, framed (lb/proto/http_body.h) so that not a byte of
 *            the next request goes along; the response head comes back
 *            within response_timeout_ms (504), is checked (502) and written
 *            anew, and its body follows, framed too. Both bodies stream at
 *            once through one bounded buffer each way (backpressure as in
 *            the relay). A response complete and a request complete end the
 *            exchange: the backend connection goes back to its idle pool
 *            when both sides allow, and the client's next request starts
 *            (pipelined bytes already held are parsed at once);
 *   ANSWER   lb's own error page goes out, then LINGER: lb's write side is
 *            shut and what the client still sends is read and dropped for
 *            a moment, so the close cannot become a reset that destroys
 *            the answer;
 *   TUNNEL   after a 101 to an upgrade, the session's relay moves bytes
 *            both ways as in tcp mode, bound to that backend.
 * Bytes are never copied inside lb except heads: a head is parsed where it
 * was read and written anew into a small buffer of its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "config/config.h"
#include "lb/clock.h"
#include "lb/http_reuse.h"
#include "lb/io/sock.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/proto/http_body.h"
#include "lb/proto/http_head.h"
#include "lb/runtime.h"
#include "lb/session_internal.h"
#include "lb/upstream.h"

/* A backend's response head longer than this is a 502 (HAProxy and nginx
 * refuse far less: a buffer of 16 KiB and 4 KiB). */
#define HTTP_RESPONSE_HEAD_MAX (64 * 1024)
/* After an error answer: how long lb reads and drops what the client still
 * sends before it closes (nginx's lingering close). */
#define HTTP_LINGER_MS 2000
/* Source bytes of the target kept for the access log. */
#define HTTP_LOG_PATH_MAX 256

enum http_phase { HP_WAIT, HP_HEAD, HP_CONNECT, HP_EXCHANGE, HP_ANSWER, HP_LINGER, HP_TUNNEL };
enum rq_state { RQ_BODY, RQ_DONE };
enum rs_state { RS_HEAD, RS_BODY, RS_DONE };

/* A linear buffer: bytes held are [start, end). Heads are parsed in place,
 * so a head always starts at start and grows towards cap. */
struct hbuf {
    char *data; /* NULL while nothing is held (given back) */
    uint32_t start, end, cap;
    bool big; /* malloc'd for a head longer than a pooled buffer */
};

/* Bytes lb writes before the held ones: a head written anew, or lb's answer. */
struct hout {
    char *data;
    uint32_t len, off;
};

struct http_state {
    enum http_phase phase;
    struct hbuf in;    /* from the client */
    struct hbuf out;   /* from the backend */
    struct hout up;    /* the request head for the backend (kept for a retry) */
    struct hout down;  /* the response head, or lb's answer, for the client */
    uint32_t up_fwd;   /* body bytes at in.start to write to the backend */
    uint32_t down_fwd; /* body bytes at out.start to write to the client */
    struct http_body up_body, down_body;
    enum rq_state rq;
    enum rs_state rs;
    size_t head_scanned; /* http_head_end()'s progress on the head at in.start */
    size_t resp_scanned;

    /* The request in flight. */
    struct http_head_facts {
        bool keep_alive, method_head, upgrade, v10, idempotent, has_body;
    } req;
    bool close_after;    /* the client's connection closes after this response */
    bool backend_dirty;  /* the backend connection cannot carry another request */
    bool response_begun; /* a byte of the final response went to the client */
    bool retried;        /* a reused connection failed once already */
    bool awaiting;       /* the request is out: the response timeout runs */
    bool client_eof;     /* the client half-closed after its request */
    /* A TLS read that must write first (conn_read_wants_write()): the side's
     * write event is on for it, and its read is tried again from there. */
    bool client_rww, server_rww;
    bool interim_sent;   /* a 1xx of the backend's went to the client */
    bool logged;         /* the request's log line is written */
    const char *refused; /* why lb refused the request with no backend slot ("queue full"); NULL */
    unsigned port;       /* the listener port the client reached (X-Forwarded-Port) */
    int status;          /* the final response's */
    uint64_t req_start_ms;
    uint64_t last_active_ms;                 /* monotonic-coarse, at the last byte moved */
    uint64_t req_from_client, req_to_client; /* bytes, this request */
    unsigned requests;                       /* on this connection */
    char method[24];
    char path[HTTP_LOG_PATH_MAX + 2]; /* as sent, cut after HTTP_LOG_PATH_MAX + 1 bytes */
    /* A read's http_step(), run after the other events that are ready in
     * this turn of the loop (step_later()). */
    struct event step_ev;
    /* While the client's reads are off for backpressure during an
     * exchange, no event would see it reset (libevent reports a reset to
     * read and write interest only): the session is parked in
     * rt->http_parked, and the runtime's probe asks its socket for an
     * error once a second (http_session_probe_parked()), as the relay's
     * parked sides are. A client that resets while its upload waits for a
     * backend that does not read ends then, not at a timeout. */
    LIST_ENTRY(http_state) parked_link;
    bool parked;
    struct session *owner;
};

static const struct {
    int status;
    const char *reason, *message;
} answers[] = {
    {400, "Bad Request", "Your request is malformed or ambiguous."},
    {408, "Request Timeout", "Your request did not arrive in time."},
    {431, "Request Header Fields Too Large", "Your request head is too large."},
    {501, "Not Implemented", "The request method is not supported."},
    {505, "HTTP Version Not Supported", "Only HTTP/1.0 and HTTP/1.1 are supported."},
    {502, "Bad Gateway", "The backend could not be reached or sent an invalid response."},
    {503, "Service Unavailable", "No backend is available to handle your request."},
    {504, "Gateway Timeout", "The backend did not answer in time."},
};

static void http_step(struct session *s);
static void http_answer(struct session *s, int status, const char *why);
static void http_next_request(struct session *s);

static struct runtime *rt_of(const struct session *s)
{
    return s->listener->rt;
}

static uint64_t now_coarse(void)
{
    return clock_ms(CLOCK_MONOTONIC_COARSE);
}

/* Buffers. */

static bool hbuf_get(struct session *s, struct hbuf *b)
{
    if (b->data)
        return true;
    b->data = bufpool_get(&rt_of(s)->bufs);
    b->cap = (uint32_t)rt_of(s)->bufs.size;
    b->start = b->end = 0;
    b->big = false;
    return b->data != NULL;
}

static void hbuf_put(struct session *s, struct hbuf *b)
{
    if (!b->data)
        return;
    if (b->big)
        free(b->data);
    else
        bufpool_put(&rt_of(s)->bufs, b->data);
    b->data = NULL;
    b->start = b->end = b->cap = 0;
    b->big = false;
}

/* Nothing held: the buffer goes back (an idle connection holds none). */
static void hbuf_settle(struct session *s, struct hbuf *b)
{
    if (b->data && b->start == b->end)
        hbuf_put(s, b);
}

/* Room for a head of up to max bytes at start: moves the held bytes to the
 * front, or into a bigger buffer. false when max is reached (or no memory:
 * *nomem). */
static bool hbuf_make_room(struct session *s, struct hbuf *b, uint32_t max, bool *nomem)
{
    *nomem = false;
    if (b->end < b->cap)
        return true;
    uint32_t held = b->end - b->start;
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, held);
        b->start = 0;
        b->end = held;
        return true;
    }
    if (b->cap >= max)
        return false;
    char *big = malloc(max);
    if (!big) {
        *nomem = true;
        return false;
    }
    memcpy(big, b->data, held);
    hbuf_put(s, b);
    b->data = big;
    b->big = true;
    b->cap = max;
    b->start = 0;
    b->end = held;
    return true;
}

static void hout_clear(struct hout *o)
{
    free(o->data);
    o->data = NULL;
    o->len = o->off = 0;
}

static bool up_pending(const struct http_state *h)
{
    return h->up.off < h->up.len || h->up_fwd > 0;
}

static bool down_pending(const struct http_state *h)
{
    return h->down.off < h->down.len || h->down_fwd > 0;
}

/* I/O on a connection. */

/* Reads once into b's room: > 0, 0 at EOF, -1 with errno. */
static ssize_t read_into(struct conn *c, struct hbuf *b)
{
    struct iovec iov = {b->data + b->end, b->cap - b->end};
    ssize_t n = conn_readv(c, &iov, 1);
    if (n > 0)
        b->end += (uint32_t)n;
    return n;
}

/* Writes o's rest, then n bytes at p: the bytes written of p (o's are
 * consumed first), or -1 with errno (EAGAIN: full). *all: everything went. */
static ssize_t write_out(struct conn *c, struct hout *o, const char *p, uint32_t n, bool *all)
{
    struct iovec iov[2];
    int cnt = 0;
    uint32_t head = o->len - o->off;
    if (head > 0)
        iov[cnt++] = (struct iovec){o->data + o->off, head};
    if (n > 0)
        iov[cnt++] = (struct iovec){(void *)p, n};
    *all = true;
    if (cnt == 0)
        return 0;
    ssize_t w = conn_writev(c, iov, cnt);
    if (w < 0) {
        *all = false;
        return -1;
    }
    uint32_t took = (uint32_t)w;
    if (took < head) {
        o->off += took;
        *all = false;
        return 0;
    }
    o->off = o->len;
    took -= head;
    *all = took == n;
    return took;
}

static bool write_blocked(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Events. */

/* The backend connection's read event (lb/http_reuse.h), NULL without one. */
static struct event *srev(struct session *s)
{
    return s->upstream.idle ? &s->upstream.idle->rev : NULL;
}

/* Turns ev on or off. 0, or -1 when it could not be added (epoll out of
 * memory or over its limit): the session is closed then, and freed. */
static void close_watch(struct session *s, bool want)
{
    struct http_state *h = s->http;
    want = want && !h->client_eof && (h->phase == HP_CONNECT || h->phase == HP_EXCHANGE);
    if (want == h->parked)
        return;
    h->parked = want;
    if (want)
        LIST_INSERT_HEAD(&rt_of(s)->http_parked, h, parked_link);
    else
        LIST_REMOVE(h, parked_link);
}

static int watch(struct session *s, struct event *ev, bool on)
{
    if (!ev || !event_initialized(ev))
        return 0; /* a backend side never set up: nothing to watch */
    struct http_state *h = s->http;
    if (ev == &s->client.rev)
        close_watch(s, !on);
    /* A TLS read that must write first waits for writability, not for
     * bytes (a readable socket would call back for nothing, again and
     * again): its side's read is off and its write on until then. */
    bool rww = false;
    if (ev == &s->client.rev || ev == &s->client.wev)
        rww = h->client_rww;
    else if (ev == srev(s) || ev == &s->upstream.server.wev)
        rww = h->server_rww;
    if (rww)
        on = ev == &s->client.wev || ev == &s->upstream.server.wev;
    /* Bytes a TLS layer already holds raise no socket event: a read that
     * is (or stays) on is called for them. */
    const struct conn *c = ev == &s->client.rev ? &s->client.conn
                           : ev == srev(s)      ? &s->upstream.server.conn
                                                : NULL;
    bool kick = on && c && conn_pending(c) > 0;
    if (on == (event_pending(ev, EV_READ | EV_WRITE, NULL) != 0)) {
        if (kick)
            event_active(ev, EV_READ, 0);
        return 0;
    }
    if (!on) {
        event_del(ev);
        return 0;
    }
    if (event_add(ev, NULL) == 0) {
        if (kick)
            event_active(ev, EV_READ, 0);
        return 0;
    }
    log_error("listener %s: cannot watch a socket: %s; closing a session", s->listener->name,
              strerror(errno));
    session_close(s, SESSION_END_INTERNAL_ERROR);
    return -1;
}

/* What a read brought is acted on once every descriptor ready in this turn
 * of the loop was read: the step goes to the end of libevent's queue of
 * active events (one per session however many of its reads came first).
 * So a turn reads what is ready, then writes what that caused, as HAProxy
 * does; interleaving the two let the first write's wakeup of a backend
 * preempt lb before the turn's other reads, and each backend woke for
 * fewer requests (scenario f's nginx backends: 0.75 wakeups per request
 * before, 0.60 after; docs/performance.md). */
static void step_later(struct session *s)
{
    event_active(&s->http->step_ev, EV_TIMEOUT, 1);
}

static bool step_pending(const struct session *s)
{
    return event_pending(&s->http->step_ev, EV_TIMEOUT, NULL) != 0;
}

static void on_step_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_step(arg);
}

static void timer_set(struct session *s, unsigned ms)
{
    event_del(&s->idle_timer);
    if (ms == 0)
        return;
    struct timeval tv = clock_timeval(ms);
    evtimer_add(&s->idle_timer, &tv);
}

/* The log. */

static int status_class(int status)
{
    return status >= 100 && status < 600 ? status / 100 - 1 : 4;
}

static void http_log_request(struct session *s)
{
    struct http_state *h = s->http;
    if (h->logged)
        return;
    h->logged = true;
    struct upstream *u = &s->upstream;
    int status = h->status;
    /* The backend the request went to; after failed connects, the last
     * one tried (the pool holds it still). */
    struct backend *b = u->backend;
    if (!b && u->pick.ntried > 0)
        b = (struct backend *)u->pick.tried[u->pick.ntried - 1];
    s->listener->http_status[status_class(status)]++;
    if (b)
        b->http_status[status_class(status)]++;
    uint64_t ms = clock_ms(CLOCK_MONOTONIC) - h->req_start_ms;
    struct pool *pool = u->pool;
    if (pool) {
        double sec = (double)ms / 1000.0;
        for (int i = 0; i < LB_REQ_BUCKETS; i++)
            if (sec <= lb_req_bucket_s[i])
                pool->req_buckets[i]++;
        pool->req_count++;
        pool->req_sum_s += sec;
    }
    if (!log_enabled(LB_LOG_INFO))
        return;
    char client[INET6_ADDRSTRLEN + 16];
    sockaddr_text((struct sockaddr *)&s->client_addr, client, sizeof(client));
    const struct log_field f[] = {
        LOG_STR("client", client),
        LOG_STR("listener", s->listener->name),
        LOG_STR("pool", pool ? pool->name : NULL),
        LOG_STR("backend", b ? b->id : NULL),
        LOG_STR("method", h->method[0] ? h->method : NULL),
        LOG_TEXT("path", h->path[0] ? h->path : NULL, HTTP_LOG_PATH_MAX),
        LOG_NUM("status", status),
        LOG_NUM("bytes_from_client", h->req_from_client),
        LOG_NUM("bytes_to_client", h->req_to_client),
        LOG_NUM("duration_ms", ms),
        LOG_QUOTED("reason", h->refused), /* only when refused: the last field */
    };
    size_t n = sizeof(f) / sizeof(f[0]) - (h->refused ? 0 : 1);
    log_access(LB_LOG_INFO, "request", f, n);
}

/* The end of a request: nothing of it is in flight any more. */

/* Closes the client gracefully: lb's write side ends, then what the client
 * still sends is dropped until it closes or HTTP_LINGER_MS pass. */
static void http_linger(struct session *s)
{
    struct http_state *h = s->http;
    h->phase = HP_LINGER;
    upstream_release(&s->upstream, false);
    s->client.conn.ops->shutdown_write(&s->client.conn);
    hbuf_put(s, &h->in);
    watch(s, &s->client.wev, false);
    timer_set(s, HTTP_LINGER_MS);
    watch(s, &s->client.rev, true);
}

/* The response has gone out whole, and the request is complete or will
 * not be read any further. */
static void http_exchange_done(struct session *s)
{
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    http_log_request(s);
    hout_clear(&h->up);
    hout_clear(&h->down);
    bool backend_ok = h->rq == RQ_DONE && !h->backend_dirty && u->state == UPSTREAM_CONNECTED;
    /* The read event stays on into the idle pool: no system call. */
    watch(s, &u->server.wev, false);
    if (backend_ok)
        upstream_keep(u);
    else
        upstream_release(u, false);
    hbuf_put(s, &h->out);
    if (h->close_after || h->client_eof || h->rq != RQ_DONE || rt_of(s)->stopping) {
        if (h->rq == RQ_DONE && h->in.start == h->in.end) {
            /* Nothing more is coming that we would drop: close outright. */
            session_close(s, SESSION_END_HTTP_CLOSE);
            return;
        }
        http_linger(s);
        return;
    }
    http_next_request(s);
}

/* The client side. */

/* The response head (or a 1xx, or lb's answer) and the body bytes held go
 * to the client; the write event stays on while some wait. 0, or -1 when
 * the session ended. */
static int client_write(struct session *s)
{
    struct http_state *h = s->http;
    bool all;
    const char *p = h->out.data ? h->out.data + h->out.start : NULL;
    ssize_t w = write_out(&s->client.conn, &h->down, p, h->down_fwd, &all);
    if (w < 0 && !write_blocked()) {
        log_debug("client error: send: %s", strerror(errno));
        session_close(s, SESSION_END_CLIENT_ERROR);
        return -1;
    }
    if (w > 0) {
        h->out.start += (uint32_t)w;
        h->down_fwd -= (uint32_t)w;
        h->last_active_ms = now_coarse();
    }
    if (h->down.len > 0 && h->down.off == h->down.len) {
        h->req_to_client += h->down.len;
        s->relay.down.bytes += h->down.len;
        if (h->phase != HP_ANSWER)
            hout_clear(&h->down);
    }
    h->req_to_client += (uint64_t)(w > 0 ? w : 0);
    s->relay.down.bytes += (uint64_t)(w > 0 ? w : 0);
    if (h->out.data && h->out.start == h->out.end && h->rs != RS_HEAD)
        h->out.start = h->out.end = 0;
    return watch(s, &s->client.wev, !all);
}

/* lb answers the client itself with status and closes (after the page). why
 * goes to the debug log. */
static void http_answer(struct session *s, int status, const char *why)
{
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    /* A TLS record made of what was offered may be waiting for the socket:
     * those bytes must go next, so it is too late as well. */
    bool half_written = (h->down.len > 0 && h->down.off > 0 && h->down.off < h->down.len) ||
                        conn_write_held(&s->client.conn);
    if (h->response_begun || half_written) { /* too late for an answer: the client sees a cut */
        log_debug("listener %s: %s after the response began; closing", s->listener->name, why);
        session_close(s, SESSION_END_BACKEND_ERROR);
        return;
    }
    log_debug("listener %s: answering %d: %s", s->listener->name, status, why);
    size_t k = 0;
    while (k < sizeof(answers) / sizeof(answers[0]) - 1 && answers[k].status != status)
        k++;
    char body[256];
    int blen =
        snprintf(body, sizeof(body), "<html><body><h1>%d %s</h1>\n<p>%s</p>\n</body></html>\n",
                 status, answers[k].reason, answers[k].message);
    char *page = malloc(512);
    if (!page) {
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    int len = snprintf(page, 512,
                       "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n%s",
                       status, answers[k].reason, blen, body);
    h->status = status;
    h->response_begun = true;
    h->req_to_client = (uint64_t)len;          /* for the log line, written now */
    if (h->req_from_client == 0 && h->in.data) /* a head refused before it was taken */
        h->req_from_client = h->in.end - h->in.start;
    http_log_request(s);
    h->req_to_client = 0;
    /* The backend (if any) and what it sent are of no more use. */
    watch(s, srev(s), false);
    watch(s, &u->server.wev, false);
    upstream_release(u, h->rq != RQ_DONE || h->rs != RS_HEAD);
    hbuf_put(s, &h->out);
    hout_clear(&h->up);
    h->down_fwd = 0;
    hout_clear(&h->down);
    h->down.data = page;
    h->down.len = (uint32_t)len;
    h->phase = HP_ANSWER;
    h->close_after = true;
    watch(s, &s->client.rev, false);
    timer_set(s, s->listener->idle_timeout_ms ? s->listener->idle_timeout_ms : HTTP_LINGER_MS);
    if (client_write(s) == 0)
        http_step(s);
}

/* Copies the request's method and (cut) target for the log, which escapes
 * it for its format. */
static void http_note_request(struct http_state *h, const char *buf, const struct http_head *r)
{
    uint32_t mlen = r->method.len < sizeof(h->method) - 1 ? r->method.len : sizeof(h->method) - 1;
    memcpy(h->method, buf + r->method.off, mlen);
    h->method[mlen] = '\0';
    uint32_t tlen = r->target.len <= HTTP_LOG_PATH_MAX ? r->target.len : HTTP_LOG_PATH_MAX + 1;
    memcpy(h->path, buf + r->target.off, tlen);
    h->path[tlen] = '\0';
}

static bool method_idempotent(const char *m)
{
    static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
        if (strcmp(m, idem[i]) == 0)
            return true;
    return false;
}

static void on_upstream_connected(struct upstream *u);
static void on_upstream_failed(struct upstream *u, enum session_end why);

/* A complete head is at in.start: parse it, write it anew, pick. */
static void http_take_head(struct session *s, size_t head_len)
{
    struct http_state *h = s->http;
    struct listener *l = s->listener;
    const char *buf = h->in.data + h->in.start;
    struct http_head *r = malloc(sizeof(*r));
    if (!r) {
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    const char *why = "";
    int status = http_request_parse(buf, head_len, r, &why);
    if (status != 0) {
        free(r);
        http_answer(s, status, why);
        return;
    }
    http_note_request(h, buf, r);
    h->req.keep_alive = r->keep_alive;
    h->req.method_head = r->method_head;
    h->req.upgrade = r->upgrade;
    h->req.v10 = r->version_minor == 0;
    h->req.idempotent = method_idempotent(h->method);
    h->req.has_body = r->chunked || r->content_length > 0;

    upstream_follow_reload(&s->upstream); /* a reload since the last request: its settings */
    struct pool *pool = s->upstream.pool;
    bool reuse = pool->reuse_max_idle > 0 && pool->send_proxy == LB_PROXY_OFF;
    struct http_forward fw = {
        .client = (const struct sockaddr *)&s->client_addr,
        .proto = s->tls ? "https" : "http",
        .port = h->port,
        .real_ip = l->x_real_ip,
        .forwarded = l->forwarded,
        .connection = r->upgrade ? "upgrade"
                      : reuse    ? "keep-alive"
                                 : "close",
    };
    size_t need = http_request_size(buf, r, &fw);
    hout_clear(&h->up);
    h->up.data = malloc(need ? need : 1);
    if (!h->up.data || http_request_write(buf, r, &fw, h->up.data, need) != need) {
        free(r);
        log_error("listener %s: out of memory for a request head; closing a session", l->name);
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    h->up.len = (uint32_t)need;
    h->up.off = 0;
    if (r->chunked)
        http_body_init(&h->up_body, HTTP_BODY_CHUNKED, 0);
    else if (r->content_length > 0)
        http_body_init(&h->up_body, HTTP_BODY_LENGTH, (uint64_t)r->content_length);
    else
        http_body_init(&h->up_body, HTTP_BODY_NONE, 0);
    free(r);
    h->in.start += (uint32_t)head_len;
    h->head_scanned = 0;
    h->rq = http_body_done(&h->up_body) ? RQ_DONE : RQ_BODY;
    h->up_fwd = 0;

    /* Pick and connect. The client stays watched (no event changes per
     * request): its body bytes, a pipelined request, or its end of stream
     * are read meanwhile, as far as the buffer allows. */
    h->phase = HP_CONNECT;
    h->req_from_client = head_len;
    timer_set(s, 0);
    struct upstream *u = &s->upstream;
    u->reuse = reuse;
    pick_key_ip(&u->pick, (struct sockaddr *)&s->client_addr, s->client_len);
    upstream_connect(u);
}

/* Feeds the request body bytes held after up_fwd: they become up_fwd, up
 * to the body's end. false when the session ended (a bad body). */
static bool http_feed_request(struct session *s)
{
    struct http_state *h = s->http;
    if (h->rq != RQ_BODY || !h->in.data)
        return true;
    uint32_t from = h->in.start + h->up_fwd;
    if (from >= h->in.end)
        return true;
    bool done = false;
    const char *why = "";
    ssize_t n = http_body_feed(&h->up_body, h->in.data + from, h->in.end - from, &done, &why);
    if (n < 0) {
        h->backend_dirty = true;
        http_answer(s, 400, why);
        return false;
    }
    h->up_fwd += (uint32_t)n;
    h->req_from_client += (uint64_t)n;
    if (done)
        h->rq = RQ_DONE;
    return true;
}

/* The client sent bytes (or ended): a head to complete, a body to pass on,
 * or (lingering) bytes to drop. */
static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    struct http_state *h = s->http;
    if (h->phase == HP_LINGER) {
        char drop[4096];
        struct iovec iov = {drop, sizeof(drop)};
        ssize_t n = conn_readv(&s->client.conn, &iov, 1);
        if (n == 0 || (n < 0 && !write_blocked()))
            session_close(s, h->status >= 400 ? SESSION_END_HTTP_ERROR : SESSION_END_HTTP_CLOSE);
        else if (n > 0 && conn_pending(&s->client.conn) > 0)
            event_active(&s->client.rev, EV_READ, 0);
        return;
    }
    if (h->client_rww) {
        watch(s, &s->client.rev, false); /* its write event reads again */
        return;
    }
    /* Called again in the turn of a read (what a TLS layer holds) before
     * the step has taken the heads already read: the step reads on. */
    if ((h->phase == HP_WAIT || h->phase == HP_HEAD) && step_pending(s))
        return;
    if (!hbuf_get(s, &h->in)) {
        log_error("listener %s: out of memory for a request buffer; closing a session",
                  s->listener->name);
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    if (h->phase == HP_WAIT || h->phase == HP_HEAD) {
        bool nomem;
        uint32_t max = s->listener->max_header_bytes;
        if (max < h->in.cap && h->in.end - h->in.start >= max) {
            http_answer(s, 431, "request head too large");
            return;
        }
        if (!hbuf_make_room(s, &h->in, max, &nomem)) {
            if (nomem)
                session_close(s, SESSION_END_INTERNAL_ERROR);
            else
                http_answer(s, 431, "request head too large");
            return;
        }
    } else if (h->in.end == h->in.cap) {
        watch(s, &s->client.rev, false); /* full: http_step() watches again once it drains */
        return;
    }
    ssize_t n = read_into(&s->client.conn, &h->in);
    if (n < 0 && write_blocked()) {
        hbuf_settle(s, &h->in);
        if (conn_read_wants_write(&s->client.conn)) {
            h->client_rww = true;
            watch(s, &s->client.rev, false);
            watch(s, &s->client.wev, true);
        }
        return;
    }
    if (n > 0 && conn_pending(&s->client.conn) > 0)
        event_active(&s->client.rev, EV_READ, 0); /* what OpenSSL holds, next */
    if (n <= 0) {
        if (n < 0)
            log_debug("client error: recv: %s", strerror(errno));
        bool in_request = h->phase == HP_CONNECT || h->phase == HP_EXCHANGE;
        if (n == 0 && in_request && h->rq == RQ_DONE) {
            /* Half-closed after a whole request: its answer still goes out,
             * then the connection closes. */
            h->client_eof = true;
            watch(s, &s->client.rev, false);
            return;
        }
        /* Gone between requests, within a head, or within a body (then the
         * backend gets a reset: it must not take the cut for a whole one). */
        if (in_request && h->rq == RQ_BODY)
            upstream_release(&s->upstream, true);
        session_close(s, n < 0 ? SESSION_END_CLIENT_ERROR : SESSION_END_CLIENT_CLOSED);
        return;
    }
    h->last_active_ms = now_coarse();
    s->relay.up.bytes += (uint64_t)n;
    if (h->phase == HP_WAIT) {
        h->phase = HP_HEAD;
        if (h->requests > 1) { /* the first one counts from the accept */
            h->req_start_ms = clock_ms(CLOCK_MONOTONIC);
            timer_set(s, s->listener->request_timeout_ms);
        }
    }
    if (h->phase == HP_HEAD) {
        step_later(s);
        return;
    }
    if (!http_feed_request(s))
        return;
    step_later(s);
}

int http_session_probe_parked(struct runtime *rt)
{
    int ended = 0;
    struct http_state *h = LIST_FIRST(&rt->http_parked);
    while (h) {
        struct http_state *next = LIST_NEXT(h, parked_link);
        struct session *s = h->owner;
        int err = s->client.conn.ops->error(&s->client.conn);
        if (err) { /* a reset while its reads are off */
            log_debug("client error: %s", strerror(err));
            if (h->rq == RQ_BODY) /* the backend must not take the cut for a whole body */
                upstream_release(&s->upstream, true);
            session_close(s, SESSION_END_CLIENT_ERROR); /* unparks h */
            ended++;
        }
        h = next;
    }
    return ended;
}

static void on_client_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    struct http_state *h = s->http;
    if (h->client_rww) { /* the read that had to write first goes on */
        h->client_rww = false;
        if (watch(s, &s->client.rev, true) < 0)
            return;
        event_active(&s->client.rev, EV_READ, 0);
    }
    if (client_write(s) == 0)
        http_step(s);
}

/* The backend side. */

static void http_backend_failed(struct session *s, bool error);

/* The request head, then the body bytes held, go to the backend; the write
 * event stays on while some wait. 0, or -1 when the session ended or
 * moved on (a retry). */
static int backend_write(struct session *s)
{
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    bool all;
    const char *p = h->in.data ? h->in.data + h->in.start : NULL;
    uint32_t head_off = h->up.off;
    ssize_t w = write_out(&u->server.conn, &h->up, p, h->up_fwd, &all);
    if (w < 0 && !write_blocked()) {
        log_debug("backend error: send: %s", strerror(errno));
        http_backend_failed(s, true);
        return -1;
    }
    if (w > 0) {
        h->in.start += (uint32_t)w;
        h->up_fwd -= (uint32_t)w;
    }
    /* The backend's bytes_out counts the rewritten head too (a retry's
     * second copy included: it went to a backend). */
    uint64_t sent = (uint64_t)(h->up.off - head_off) + (uint64_t)(w > 0 ? w : 0);
    if (sent > 0) {
        h->last_active_ms = now_coarse();
        if (u->backend)
            u->backend->bytes_out += sent;
    }
    return watch(s, &u->server.wev, !all);
}

/* Parses the response head at out.start when it is complete. false when
 * the session ended or moved on (tunnel). */
static bool http_take_response_head(struct session *s);

static void on_server_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    if (h->server_rww) {
        watch(s, srev(s), false); /* its write event reads again */
        return;
    }
    if (!hbuf_get(s, &h->out)) {
        log_error("listener %s: out of memory for a response buffer; closing a session",
                  s->listener->name);
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    if (h->rs == RS_HEAD) {
        bool nomem;
        if (!hbuf_make_room(s, &h->out, HTTP_RESPONSE_HEAD_MAX, &nomem)) {
            if (nomem)
                session_close(s, SESSION_END_INTERNAL_ERROR);
            else
                http_answer(s, 502, "response head too large");
            return;
        }
    } else if (h->out.end == h->out.cap) {
        watch(s, srev(s), false);
        return;
    }
    ssize_t n = read_into(&u->server.conn, &h->out);
    if (n < 0 && write_blocked()) {
        hbuf_settle(s, &h->out);
        if (conn_read_wants_write(&u->server.conn)) {
            h->server_rww = true;
            watch(s, srev(s), false);
            watch(s, &u->server.wev, true);
        }
        return;
    }
    if (n > 0 && conn_pending(&u->server.conn) > 0)
        event_active(srev(s), EV_READ, 0); /* what OpenSSL holds, next */
    if (n < 0) {
        log_debug("backend error: recv: %s", strerror(errno));
        http_backend_failed(s, true);
        return;
    }
    if (n == 0) {
        http_backend_failed(s, false);
        return;
    }
    if (u->backend)
        u->backend->bytes_in += (uint64_t)n;
    h->last_active_ms = now_coarse();
    if (h->rs == RS_HEAD) {
        /* http_step() parses the head once it is complete. */
    } else if (h->rs == RS_BODY) {
        uint32_t from = h->out.start + h->down_fwd;
        bool done = false;
        const char *why = "";
        ssize_t k =
            http_body_feed(&h->down_body, h->out.data + from, h->out.end - from, &done, &why);
        if (k < 0) {
            log_debug("listener %s: backend %s: invalid response body: %s", s->listener->name,
                      u->backend ? u->backend->id : "-", why);
            session_close(s, SESSION_END_BACKEND_ERROR);
            return;
        }
        h->down_fwd += (uint32_t)k;
        if (done) {
            h->rs = RS_DONE;
            if (from + (uint32_t)k < h->out.end) { /* bytes nobody asked for */
                h->backend_dirty = true;
                h->out.end = from + (uint32_t)k;
            }
        }
    } else { /* RS_DONE: more than the response */
        h->backend_dirty = true;
        h->out.end -= (uint32_t)n;
        watch(s, srev(s), false);
    }
    step_later(s);
}

static void on_server_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    struct http_state *h = s->http;
    if (h->server_rww && srev(s)) { /* the read that had to write first goes on */
        h->server_rww = false;
        if (watch(s, srev(s), true) < 0)
            return;
        event_active(srev(s), EV_READ, 0);
    }
    if (backend_write(s) == 0)
        http_step(s);
}

/* The backend connection ended (error: failed) before the response did. */
static void http_backend_failed(struct session *s, bool error)
{
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    bool nothing_back =
        h->rs == RS_HEAD && !h->interim_sent && (!h->out.data || h->out.start == h->out.end);
    if (h->rs == RS_DONE) {
        /* lb holds the whole response: only the connection is lost (a
         * backend that answered early and closed or reset under the rest of
         * the request). The response goes on; the rest of the request goes
         * nowhere, and the client connection closes after it. */
        h->backend_dirty = true;
        h->close_after = true;
        watch(s, srev(s), false);
        watch(s, &u->server.wev, false);
        if (h->rq != RQ_DONE || up_pending(h)) {
            h->rq = RQ_DONE;
            h->in.start += h->up_fwd;
            h->up_fwd = 0;
            h->up.off = h->up.len;
        }
        if (h->phase != HP_TUNNEL) /* a tunnel's relay sees the end itself */
            http_step(s);
        return;
    }
    if (h->rs == RS_BODY && !error && h->down_body.kind == HTTP_BODY_UNTIL_CLOSE) {
        h->rs = RS_DONE; /* the end of a body that ends with the connection */
        h->backend_dirty = true;
        h->close_after = true;
        watch(s, srev(s), false);
        http_step(s);
        return;
    }
    if (nothing_back && u->reused && !h->retried && h->req.idempotent && !h->req.has_body) {
        /* A reused connection the backend had closed (its keep-alive timeout
         * crossed our request): once more on a fresh one. */
        h->retried = true;
        log_debug("listener %s: backend %s: reused connection closed; retrying on a new one",
                  s->listener->name, u->backend ? u->backend->id : "-");
        watch(s, srev(s), false);
        watch(s, &u->server.wev, false);
        h->up.off = 0;
        hbuf_put(s, &h->out);
        h->phase = HP_CONNECT;
        timer_set(s, 0);
        upstream_reconnect(u);
        return;
    }
    if (h->rs == RS_HEAD) {
        if (u->backend)
            log_warn("pool %s backend %s: connection %s before a response", u->pool->name,
                     u->backend->id, error ? "failed" : "closed");
        http_answer(s, 502, error ? "backend failed" : "backend closed");
        return;
    }
    /* Mid-body: the client must not take the cut for a whole response. */
    log_warn("pool %s backend %s: connection %s within a response", u->pool->name,
             u->backend ? u->backend->id : "-", error ? "failed" : "closed");
    h->status = h->status ? h->status : 502;
    http_log_request(s);
    session_close(s, SESSION_END_BACKEND_ERROR);
}

/* The backend's response head, when complete. */
static bool http_take_response_head(struct session *s)
{
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    for (;;) {
        const char *buf = h->out.data + h->out.start;
        size_t len = h->out.end - h->out.start;
        size_t head_len = http_head_end(buf, len, &h->resp_scanned);
        if (head_len == 0)
            return true;
        struct http_head *r = malloc(sizeof(*r));
        if (!r) {
            session_close(s, SESSION_END_INTERNAL_ERROR);
            return false;
        }
        struct http_head req;
        req.method_head = h->req.method_head;
        req.upgrade = h->req.upgrade;
        const char *why = "";
        if (http_response_parse(buf, head_len, &req, r, &why) != 0) {
            free(r);
            log_warn("pool %s backend %s: invalid response: %s", u->pool->name,
                     u->backend ? u->backend->id : "-", why);
            h->backend_dirty = true;
            http_answer(s, 502, why);
            return false;
        }
        h->resp_scanned = 0;
        bool interim = r->status < 200 && r->status != 101;
        if (interim && h->req.v10) { /* an HTTP/1.0 client gets no 1xx */
            free(r);
            h->out.start += (uint32_t)head_len;
            continue;
        }
        const char *connection = NULL;
        if (!interim) {
            h->status = r->status;
            if (r->status == 101)
                connection = "upgrade";
            else {
                h->close_after = h->close_after || !h->req.keep_alive || r->body_until_close ||
                                 rt_of(s)->stopping;
                if (!r->keep_alive)
                    h->backend_dirty = true;
                connection = h->close_after ? "close" : h->req.v10 ? "keep-alive" : NULL;
            }
        }
        size_t need = http_response_size(buf, r, connection);
        hout_clear(&h->down);
        h->down.data = malloc(need ? need : 1);
        if (!h->down.data || http_response_write(buf, r, connection, h->down.data, need) != need) {
            free(r);
            session_close(s, SESSION_END_INTERNAL_ERROR);
            return false;
        }
        h->down.len = (uint32_t)need;
        h->down.off = 0;
        h->out.start += (uint32_t)head_len;
        if (interim) {
            free(r);
            /* The backend answers: from now on the idle timeout, not the
             * response timeout, bounds the wait (the final head may wait
             * behind a 1xx a slow client takes in slowly). */
            h->awaiting = true;
            timer_set(s, s->listener->idle_timeout_ms);
            h->interim_sent = true; /* a retry elsewhere would send another */
            return true;            /* goes out before the next head is looked at */
        }
        h->response_begun = true;
        timer_set(s, s->listener->idle_timeout_ms);
        if (r->status == 101) {
            free(r);
            h->rs = RS_DONE;
            h->phase = HP_TUNNEL;
            /* What either side sends from now on is the tunnel's: it waits
             * in the sockets until the 101 is out and the relay reads. */
            watch(s, srev(s), false);
            watch(s, &s->client.rev, false);
            return true; /* http_step() opens the tunnel once the head is out */
        }
        if (r->chunked)
            http_body_init(&h->down_body, HTTP_BODY_CHUNKED, 0);
        else if (r->content_length >= 0)
            http_body_init(&h->down_body, HTTP_BODY_LENGTH, (uint64_t)r->content_length);
        else if (r->body_until_close)
            http_body_init(&h->down_body, HTTP_BODY_UNTIL_CLOSE, 0);
        else
            http_body_init(&h->down_body, HTTP_BODY_NONE, 0);
        free(r);
        h->rs = http_body_done(&h->down_body) ? RS_DONE : RS_BODY;
        h->down_fwd = 0;
        uint32_t from = h->out.start;
        if (h->rs == RS_BODY && from < h->out.end) {
            bool done = false;
            why = "";
            ssize_t k =
                http_body_feed(&h->down_body, h->out.data + from, h->out.end - from, &done, &why);
            if (k < 0) {
                log_debug("listener %s: invalid response body: %s", s->listener->name, why);
                session_close(s, SESSION_END_BACKEND_ERROR);
                return false;
            }
            h->down_fwd = (uint32_t)k;
            if (done)
                h->rs = RS_DONE;
        }
        if (h->rs == RS_DONE && h->out.start + h->down_fwd < h->out.end) {
            h->backend_dirty = true;
            h->out.end = h->out.start + h->down_fwd;
        }
        return true;
    }
}

/* The tunnel of an upgrade: the relay takes both connections and the
 * bytes each side sent past the heads. */
static void http_open_tunnel(struct session *s)
{
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    http_log_request(s);
    event_del(&h->step_ev);
    close_watch(s, false);
    watch(s, &s->client.rev, false);
    watch(s, &s->client.wev, false);
    watch(s, &u->server.wev, false);
    if (u->idle) { /* the relay watches the connection from now on */
        http_reuse_unwatch(u->idle);
        u->idle = NULL;
    }
    timer_set(s, 0);
    struct runtime *rt = rt_of(s);
    uint64_t up_bytes = s->relay.up.bytes, down_bytes = s->relay.down.bytes;
    relay_stop(&s->relay);
    relay_init(&s->relay, rt->base, &rt->relays, &s->client, session_on_relay_end);
    s->relay.up.bytes = up_bytes; /* the session's log counts the whole connection */
    s->relay.down.bytes = down_bytes;
    /* The rings start with what is held: bytes the client sent after its
     * request head, and the backend after its 101. */
    if (hbuf_get(s, &h->in) && hbuf_get(s, &h->out)) {
        mover_ring_init(&s->relay.up.mover, h->in.data, h->in.cap);
        s->relay.up.mover.ring.head = h->in.start;
        s->relay.up.mover.ring.len = h->in.end - h->in.start;
        mover_ring_init(&s->relay.down.mover, h->out.data, h->out.cap);
        s->relay.down.mover.ring.head = h->out.start;
        s->relay.down.mover.ring.len = h->out.end - h->out.start;
    } else {
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    h->phase = HP_TUNNEL;
    s->phase = SESSION_RELAYING;
    s->relay.up.count = u->backend ? &u->backend->bytes_out : NULL;
    s->relay.down.count = u->backend ? &u->backend->bytes_in : NULL;
    evtimer_assign(&s->idle_timer, rt->base, session_on_idle_timer, s);
    if (relay_watch_client(&s->relay) < 0)
        return;
    if (relay_attach_server(&s->relay, &u->server) < 0)
        return;
    session_idle_arm(s);
}

/* EXCHANGE: writes what waits and can go, parses a response head that is
 * complete, and decides what to watch; ends the exchange once the response
 * is out whole. */
static void http_exchange_step(struct session *s)
{
    struct http_state *h = s->http;
    struct upstream *u = &s->upstream;
    if (up_pending(h) && !event_pending(&u->server.wev, EV_WRITE, NULL) && backend_write(s) < 0)
        return;
    for (;;) {
        if (down_pending(h) && !event_pending(&s->client.wev, EV_WRITE, NULL) &&
            client_write(s) < 0)
            return;
        /* A response head (a 1xx's, then the final one) waits until the one
         * before it is out. */
        if (h->rs != RS_HEAD || down_pending(h) || !h->out.data || h->out.start == h->out.end)
            break;
        uint32_t before = h->out.start;
        if (!http_take_response_head(s))
            return;
        if (h->out.start == before)
            break; /* not complete yet */
    }
    if (h->phase == HP_TUNNEL) {
        if (!down_pending(h))
            http_open_tunnel(s);
        return;
    }
    /* The request is out: the response head must come within the pool's
     * response timeout. */
    if (h->rs == RS_HEAD && h->rq == RQ_DONE && !up_pending(h) && !h->awaiting) {
        h->awaiting = true;
        timer_set(s, u->pool->response_timeout_ms);
    }
    if (h->rs == RS_DONE && !down_pending(h)) {
        /* The response is out whole. A request body still coming is not
         * read on: the connection closes. */
        if (h->rq != RQ_DONE || up_pending(h)) {
            h->backend_dirty = true;
            h->close_after = true;
        }
        http_exchange_done(s);
        return;
    }
    hbuf_settle(s, &h->in); /* all sent: no buffer while nothing waits (the head is in up) */
    bool read_client = !h->client_eof && (!h->in.data || h->in.end < h->in.cap);
    if (watch(s, &s->client.rev, read_client) < 0)
        return;
    /* The backend is read for a head once the one before it is out (a 1xx
     * still going to the client holds the next head back), for a body while
     * the buffer has room, and after the response, so that bytes it should
     * not send (or its close) are seen, and the event stays on as the idle
     * pool wants it. */
    bool read_backend = h->rs == RS_HEAD   ? !down_pending(h)
                        : h->rs == RS_BODY ? !h->out.data || h->out.end < h->out.cap
                                           : true;
    watch(s, srev(s), read_backend);
}

/* Decides what to watch and moves on when a part of the exchange is done. */
static void http_step(struct session *s)
{
    struct http_state *h = s->http;
    switch (h->phase) {
    case HP_WAIT:
    case HP_HEAD: {
        if (!h->in.data || h->in.start == h->in.end) {
            hbuf_settle(s, &h->in);
            watch(s, &s->client.rev, true);
            return;
        }
        size_t head_len =
            http_head_end(h->in.data + h->in.start, h->in.end - h->in.start, &h->head_scanned);
        if (head_len == 0) {
            if (h->in.end - h->in.start >= s->listener->max_header_bytes) {
                http_answer(s, 431, "request head too large");
                return;
            }
            h->phase = HP_HEAD;
            watch(s, &s->client.rev, true);
            return;
        }
        if (head_len > s->listener->max_header_bytes) {
            http_answer(s, 431, "request head too large");
            return;
        }
        http_take_head(s, head_len);
        return;
    }
    case HP_ANSWER:
        if (!down_pending(h))
            http_linger(s);
        return;
    case HP_CONNECT:
    case HP_LINGER:
        return;
    case HP_TUNNEL:
    case HP_EXCHANGE:
        http_exchange_step(s);
        return;
    }
}

/* The upstream has a connection for the request. */
static void on_upstream_connected(struct upstream *u)
{
    struct session *s = u->owner;
    struct http_state *h = s->http;
    /* A pool's PROXY header went out right after the TCP connect (the
     * upstream's on_tcp_connected, before a TLS handshake). */
    struct event_base *base = rt_of(s)->base;
    if (u->idle) { /* a reused connection: its read event is on already */
        u->idle->on_read = on_server_readable;
        u->idle->owner = s;
    } else if (!(u->idle = http_reuse_watch(rt_of(s), u->server.conn.fd, on_server_readable, s))) {
        log_error("listener %s: out of memory for a backend connection; closing a session",
                  s->listener->name);
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    event_assign(&u->server.wev, base, u->server.conn.fd, EV_WRITE | EV_PERSIST, on_server_writable,
                 s);
    h->phase = HP_EXCHANGE;
    h->server_rww = false; /* a new connection, or one that waited for nothing */
    h->rs = RS_HEAD;
    h->resp_scanned = 0;
    h->awaiting = false;
    timer_set(s, s->listener->idle_timeout_ms);
    if (!http_feed_request(s))
        return;
    http_step(s);
}

static void on_upstream_failed(struct upstream *u, enum session_end why)
{
    struct session *s = u->owner;
    if (why == SESSION_END_NO_BACKEND)
        http_answer(s, 503, "no backend available");
    else if (why == SESSION_END_QUEUE_TIMEOUT || why == SESSION_END_QUEUE_FULL) {
        s->http->refused = session_end_text(why);
        http_answer(s, 503, s->http->refused);
    } else
        http_answer(s, 502, session_end_text(why));
}

/* Timeouts, by phase. */
static void on_http_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    struct http_state *h = s->http;
    if (step_pending(s)) { /* bytes read this turn, not yet looked at, come first */
        timer_set(s, 1);
        return;
    }
    switch (h->phase) {
    case HP_WAIT: /* nothing of a request came: no answer, like nginx */
        session_close(s, h->requests == 1 ? SESSION_END_REQUEST_TIMEOUT : SESSION_END_IDLE_TIMEOUT);
        return;
    case HP_HEAD:
        http_answer(s, 408, "request head timeout");
        return;
    case HP_CONNECT:
        return;
    case HP_EXCHANGE: {
        if (h->rs == RS_HEAD && h->awaiting && !h->interim_sent) {
            log_warn("pool %s backend %s: no response within %u ms", s->upstream.pool->name,
                     s->upstream.backend ? s->upstream.backend->id : "-",
                     s->upstream.pool->response_timeout_ms);
            http_answer(s, 504, "response timeout");
            return;
        }
        unsigned idle = s->listener->idle_timeout_ms;
        uint64_t quiet = now_coarse() - h->last_active_ms;
        if (idle > 0 && quiet < idle) {
            timer_set(s, (unsigned)(idle - quiet));
            return;
        }
        /* Silence with none of the body held for the backend: the client
         * stopped sending. With bytes held, lb's reads of the client are
         * off because the backend takes none (backpressure): its fault. */
        if (!h->response_begun && h->rq == RQ_BODY && !up_pending(h)) {
            http_answer(s, 408, "request body stalled");
            return;
        }
        if (!h->response_begun) {
            http_answer(s, 504, "backend stalled");
            return;
        }
        h->status = h->status ? h->status : 504;
        http_log_request(s);
        session_close(s, SESSION_END_IDLE_TIMEOUT);
        return;
    }
    case HP_ANSWER:
    case HP_LINGER:
        session_close(s, h->status >= 400 ? SESSION_END_HTTP_ERROR : SESSION_END_HTTP_CLOSE);
        return;
    case HP_TUNNEL:
        return;
    }
}

/* Ready for the client's next request (or its first). */
static void http_next_request(struct session *s)
{
    struct http_state *h = s->http;
    h->phase = HP_WAIT;
    h->rq = RQ_DONE;
    h->rs = RS_HEAD;
    h->up_fwd = h->down_fwd = 0;
    h->close_after = h->backend_dirty = h->response_begun = h->retried = false;
    h->awaiting = h->logged = h->interim_sent = false;
    h->refused = NULL;
    h->status = 0;
    h->method[0] = h->path[0] = '\0';
    h->req_from_client = h->req_to_client = 0;
    h->head_scanned = 0;
    if (h->requests++ > 0) {
        h->req_start_ms = clock_ms(CLOCK_MONOTONIC);
        bool pipelined = h->in.data && h->in.start < h->in.end;
        if (pipelined)
            h->phase = HP_HEAD;
        timer_set(s, pipelined ? s->listener->request_timeout_ms : s->listener->idle_timeout_ms);
    }
    http_step(s);
}

void http_session_begin(struct session *s)
{
    struct http_state *h = calloc(1, sizeof(*h));
    if (!h) {
        log_error("listener %s: out of memory, closing a new connection", s->listener->name);
        session_close(s, SESSION_END_INTERNAL_ERROR);
        return;
    }
    s->http = h;
    struct event_base *base = rt_of(s)->base;
    event_assign(&s->client.rev, base, s->client.conn.fd, EV_READ | EV_PERSIST, on_client_readable,
                 s);
    event_assign(&s->client.wev, base, s->client.conn.fd, EV_WRITE | EV_PERSIST, on_client_writable,
                 s);
    if (event_initialized(&s->idle_timer))
        event_del(&s->idle_timer); /* PREREAD's */
    evtimer_assign(&s->idle_timer, base, on_http_timer, s);
    event_assign(&h->step_ev, base, -1, 0, on_step_ev, s);
    h->owner = s;
    s->upstream.on_connected = on_upstream_connected;
    s->upstream.on_failed = on_upstream_failed;
    h->req_start_ms = clock_ms(CLOCK_MONOTONIC);
    h->last_active_ms = now_coarse();
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    if (getsockname(s->client.conn.fd, (struct sockaddr *)&local, &llen) == 0)
        h->port = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
                                                    : ((struct sockaddr_in *)&local)->sin_port);
    /* The first request's head must arrive within request_timeout_ms of
     * the accept (a PROXY header's wait included), or of the end of the
     * TLS handshake, which had a timeout of its own. */
    unsigned left = s->listener->request_timeout_ms;
    uint64_t spent = clock_ms(CLOCK_MONOTONIC) - (s->tls_done_ms ? s->tls_done_ms : s->start_ms);
    left = spent < left ? left - (unsigned)spent : 1;
    timer_set(s, left);
    http_next_request(s); /* may end s */
}

void http_session_free(struct session *s)
{
    struct http_state *h = s->http;
    if (event_initialized(&s->idle_timer))
        event_del(&s->idle_timer);
    /* In a tunnel the rings are these buffers: relay_stop() has run. */
    event_del(&h->step_ev);
    close_watch(s, false);
    hbuf_put(s, &h->in);
    hbuf_put(s, &h->out);
    hout_clear(&h->up);
    hout_clear(&h->down);
    free(h);
    s->http = NULL;
}

bool http_session_idle(const struct session *s)
{
    const struct http_state *h = s->http;
    return h->phase == HP_WAIT && (!h->in.data || h->in.start == h->in.end);
}
