/* admin_http: the admin API's HTTP/1.1 server (see admin_http.h). One
 * connection goes through HANDSHAKE (TLS only: the handshake, within the
 * first request's deadline), WAIT (reading a request head), QUEUED (its head,
 * or its whole request, waits for its turn), SERVING (in a handler), BODY
 * (reading a body the API agreed to), WRITE (sending the answer) and,
 * before it closes after an
 * error, LINGER (discarding a little of what the client still sends, so
 * that it reads the answer instead of a reset). Requests are served from
 * one queue, one per pass of the event loop, and only in a pass that has
 * no traffic event to run (the queue's timer has the lowest priority);
 * should traffic keep every pass busy, a request that waited ADMIN_LATE_MS
 * is served anyway, so the API is slow then but never unreachable.
 *
 * Every read and write goes through the connection ops (lb/io/conn.h), plain
 * TCP or TLS alike. What TLS adds: after a read, the layer may hold more
 * bytes that no socket event announces (conn_pending: read on); a read may
 * wait for writability (conn_read_wants_write) and a write for readability
 * (conn_tls_wants), so rev and wev are watched for what the last step
 * waits for, not only for what its name says. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lb/admin/admin_http.h"
#include "lb/admin/admin_request.h"
#include "lb/clock.h"
#include "lb/io/acceptor.h"
#include "lb/io/conn.h"
#include "lb/io/conn_tls.h"
#include "lb/io/sock.h"
#include "lb/io/tls_ctx.h"
#include "lb/log.h"
#include "lb/runtime.h"

/* Requests served per pass of the event loop, whatever the admin load. */
#define ADMIN_REQUESTS_PER_PASS 1
/* The longest a queued request waits while traffic keeps the loop busy. */
#define ADMIN_LATE_MS 100
/* Connections accepted per readiness of the listening socket. */
#define ADMIN_ACCEPTS_PER_PASS 16
#define ADMIN_READ_CHUNK 4096
/* After an error answer: at most this much of the rest of the request is
 * read and thrown away, for at most this long, before the close. */
#define ADMIN_LINGER_BYTES (64 * 1024)
#define ADMIN_LINGER_MS 1000
#define ADMIN_EMFILE_PAUSE_MS 100
#define ADMIN_WRITE_IOV 8 /* pieces of the answer offered to one writev */

enum conn_state {
    CONN_HANDSHAKE,
    CONN_WAIT,
    CONN_QUEUED,
    CONN_SERVING,
    CONN_BODY,
    CONN_WRITE,
    CONN_LINGER
};

struct admin_conn {
    struct admin_server *srv;
    struct conn io;      /* plain TCP, or TLS over the socket */
    struct tls_ctx *tls; /* the context io's SSL came from (a reference); NULL: plain */
    enum conn_state state;
    struct event rev, wev, timer;
    struct evbuffer *in, *out;
    struct sockaddr_storage peer;
    uint64_t deadline_ms; /* of the current state (monotonic) */
    char *head;           /* the parsed head, NUL-split; NULL in WAIT */
    size_t head_len;      /* bytes of in that the head takes */
    size_t scanned;       /* bytes of in searched for the head's end */
    bool head_seen;       /* head() has been asked */
    bool body_read;       /* the body is in c->in, handed to request() */
    bool keep_alive;      /* the client allows another request */
    bool http10;          /* an HTTP/1.0 request: keep-alive is said, not assumed */
    bool expect_continue; /* "Expect: 100-continue" */
    bool close_after;     /* close once out is written */
    bool input_left;      /* unread request bytes may follow: linger */
    size_t lingered;      /* bytes thrown away in LINGER */
    struct admin_request req;
    char method[ADMIN_METHOD_MAX + 1];
    /* admin_http_defer(): told if c closes before its answer. */
    void (*abandoned)(void *arg);
    void *abandoned_arg;
    TAILQ_ENTRY(admin_conn) link;       /* srv->conns */
    TAILQ_ENTRY(admin_conn) queue_link; /* srv->queue while QUEUED */
};

TAILQ_HEAD(admin_conn_list, admin_conn);

/* A connection refused at max_connections, closed once its client has
 * read the 503: its request may still be on the way, and a close with
 * input unread (or arriving after it) would reset the answer away. */
struct admin_refused {
    int fd;
    struct event ev; /* readable (input to drop, or EOF) or ADMIN_LINGER_MS */
    struct admin_server *srv;
    LIST_ENTRY(admin_refused) link;
};
/* Refused connections lingering at once, at most (within the 16
 * descriptors the runtime's budget keeps for lb itself); more are closed
 * at once. */
#define ADMIN_REFUSED_LINGER_MAX 4

struct admin_server {
    struct event_base *base;
    const struct admin_http_handler *h;
    void *arg;
    struct acceptor *acc;    /* the listening socket; NULL when none */
    struct tls_ctx *tls;     /* new connections speak TLS with it (a reference); NULL: plain */
    struct event work_timer; /* LB_PRIORITY_ADMIN: serves the queue when the loop is idle */
    struct event late_timer; /* default priority: serves it when traffic never lets up */
    unsigned max_connections;
    unsigned request_timeout_ms;
    struct admin_conn_list conns;
    struct admin_conn_list queue;
    LIST_HEAD(, admin_refused) refused; /* lingering 503s */
    unsigned nrefused;
    struct admin_http_stats stats;
    unsigned in_handler; /* > 0 while a handler runs */
    bool dying;          /* admin_http_free() was called from a handler */
};

static void conn_close(struct admin_conn *c);
static void conn_timeout(struct admin_conn *c);
static void conn_wait_request(struct admin_conn *c, bool fresh_deadline);
static void server_free_now(struct admin_server *srv);

/* --- small helpers --- */

static const char *status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}

static void conn_arm_timer(struct admin_conn *c, uint64_t ms)
{
    c->deadline_ms = clock_ms(CLOCK_MONOTONIC) + ms;
    struct timeval tv = clock_timeval(ms);
    evtimer_add(&c->timer, &tv);
}

/* Watches ev of c; false when it cannot, and c was closed. */
static bool conn_watch(struct admin_conn *c, struct event *ev)
{
    if (event_add(ev, NULL) < 0) {
        log_error("admin: cannot watch a connection: %s; closing it", strerror(errno));
        conn_close(c);
        return false;
    }
    return true;
}

/* What the last step of c's stream that could not go on waits for
 * (CONN_WANT_NONE: the obvious, for plain TCP). */
static enum conn_want conn_wants(const struct admin_conn *c)
{
    return c->io.ops->wants ? c->io.ops->wants(&c->io) : CONN_WANT_NONE;
}

/* Watches c for input (rev), and reads on the next pass when the TLS
 * layer already holds some: no socket event would announce it. */
static void conn_read_later(struct admin_conn *c)
{
    if (conn_watch(c, &c->rev) && conn_pending(&c->io) > 0)
        event_active(&c->rev, EV_READ, 1);
}

/* Reads at most max bytes of c's stream into c->in: what conn_readv
 * returns (-1 with ENOMEM when c->in cannot grow). */
static ssize_t conn_fill(struct admin_conn *c, size_t max)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    int nvec = evbuffer_reserve_space(c->in, (ev_ssize_t)max, vec, 2);
    if (nvec < 0) {
        errno = ENOMEM;
        return -1;
    }
    size_t room = max;
    for (int i = 0; i < nvec; i++) {
        if (vec[i].iov_len > room)
            vec[i].iov_len = room;
        room -= vec[i].iov_len;
        iov[i] = (struct iovec){vec[i].iov_base, vec[i].iov_len};
    }
    ssize_t n = conn_readv(&c->io, iov, nvec);
    int used = 0;
    for (size_t left = n > 0 ? (size_t)n : 0; left > 0; used++) {
        if (vec[used].iov_len > left)
            vec[used].iov_len = left;
        left -= vec[used].iov_len;
    }
    int saved = errno;
    evbuffer_commit_space(c->in, vec, used);
    errno = saved;
    return n;
}

/* Writes what c->out holds as far as c's stream takes it now: the bytes
 * written (drained from c->out), or -1 with errno (EAGAIN: wait, as
 * conn_wants() says). */
static ssize_t conn_send(struct admin_conn *c)
{
    struct evbuffer_iovec vec[ADMIN_WRITE_IOV];
    struct iovec iov[ADMIN_WRITE_IOV];
    int nvec = evbuffer_peek(c->out, -1, NULL, vec, ADMIN_WRITE_IOV);
    if (nvec > ADMIN_WRITE_IOV)
        nvec = ADMIN_WRITE_IOV;
    if (nvec <= 0)
        return 0;
    for (int i = 0; i < nvec; i++)
        iov[i] = (struct iovec){vec[i].iov_base, vec[i].iov_len};
    ssize_t n = conn_writev(&c->io, iov, nvec);
    if (n > 0)
        evbuffer_drain(c->out, (size_t)n);
    return n;
}

/* An answer the server itself gives ({"error": MESSAGE}; MESSAGE holds no
 * character JSON would escape), then a close. */
static void conn_fail(struct admin_conn *c, int status, const char *message)
{
    struct evbuffer *body = evbuffer_new();
    if (body)
        evbuffer_add_printf(body, "{\n  \"error\": \"%s\"\n}\n", message);
    c->input_left = true;
    admin_http_reply(c, status, "application/json", NULL, body, true);
}

/* --- the queue: a few requests per pass --- */

static void queue_push(struct admin_conn *c)
{
    struct admin_server *srv = c->srv;
    c->state = CONN_QUEUED;
    event_del(&c->rev);
    event_del(&c->wev); /* a read that waited for writability is over */
    TAILQ_INSERT_TAIL(&srv->queue, c, queue_link);
    if (!evtimer_pending(&srv->work_timer, NULL)) {
        struct timeval now = {0, 0};
        evtimer_add(&srv->work_timer, &now);
    }
    if (!evtimer_pending(&srv->late_timer, NULL)) {
        struct timeval late = clock_timeval(ADMIN_LATE_MS);
        evtimer_add(&srv->late_timer, &late);
    }
}

static void queue_remove(struct admin_conn *c)
{
    if (c->state == CONN_QUEUED)
        TAILQ_REMOVE(&c->srv->queue, c, queue_link);
}

/* Runs a handler on c (SERVING); false when srv was freed from inside it.
 * A handler never frees c: admin_http_reply() only queues the answer. */
static bool server_call(struct admin_server *srv, struct admin_conn *c, bool head)
{
    srv->in_handler++;
    if (head)
        srv->h->head(srv->arg, c, &c->req);
    else
        srv->h->request(srv->arg, c, &c->req);
    srv->in_handler--;
    if (srv->dying && srv->in_handler == 0) {
        server_free_now(srv);
        return false;
    }
    return true;
}

/* The whole request of c is in: hand it to the API. */
static bool serve_request(struct admin_conn *c)
{
    c->state = CONN_SERVING;
    c->body_read = true;
    c->req.body = "";
    if (c->req.content_length > 0) {
        unsigned char *all = evbuffer_pullup(c->in, (ssize_t)(c->head_len + c->req.content_length));
        if (!all) {
            conn_fail(c, 500, "out of memory");
            return true;
        }
        c->req.body = (const char *)all + c->head_len;
    }
    return server_call(c->srv, c, false);
}

/* The head of c is complete in c->in: parse it and ask the API whether to
 * read the body. */
static bool serve_head(struct admin_conn *c)
{
    struct admin_server *srv = c->srv;
    c->state = CONN_SERVING;
    c->head = malloc(c->head_len + 1);
    if (!c->head) {
        log_error("admin: out of memory reading a request; closing the connection");
        conn_close(c);
        return true;
    }
    evbuffer_copyout(c->in, c->head, c->head_len);
    c->head[c->head_len - 2] = '\0'; /* drop the empty line's CRLF */
    const char *why = NULL;
    struct admin_head h;
    int status = admin_head_parse(c->head, c->head_len - 2, &h, &why);
    /* What the parse got, even on an error: the answer to a HEAD has no
     * body, and a Content-Length said means input is left. */
    const struct sockaddr *peer = c->req.peer;
    c->req = h.req;
    c->req.peer = peer;
    memcpy(c->method, h.method, sizeof(c->method));
    if (h.req.method_name)
        c->req.method_name = c->method;
    if (status == 0) {
        c->http10 = h.http10;
        c->keep_alive = h.keep_alive;
        c->expect_continue = h.expect_continue;
    }
    if (status != 0) {
        c->keep_alive = false;
        conn_fail(c, status, why);
        return true;
    }
    c->head_seen = true;
    if (!server_call(srv, c, true))
        return false;
    if (c->state != CONN_SERVING)
        return true; /* answered (401...) */
    if (c->req.content_length > ADMIN_BODY_MAX) {
        char msg[64];
        snprintf(msg, sizeof(msg), "request body over %d bytes", ADMIN_BODY_MAX);
        conn_fail(c, 413, msg);
        return true;
    }
    if (evbuffer_get_length(c->in) >= c->head_len + c->req.content_length)
        return serve_request(c);
    /* The body is the client's to send within the request's deadline,
     * which may have passed while the head waited in the queue. */
    uint64_t now = clock_ms(CLOCK_MONOTONIC);
    if (now >= c->deadline_ms) {
        conn_timeout(c);
        return true;
    }
    struct timeval left = clock_timeval(c->deadline_ms - now);
    evtimer_add(&c->timer, &left);
    c->state = CONN_BODY;
    if (c->expect_continue) {
        evbuffer_add_printf(c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        /* 25 bytes: they fit unless the client reads none of its answers. */
        if (conn_send(c) < 0 || evbuffer_get_length(c->out) > 0) {
            conn_close(c);
            return true;
        }
    }
    conn_read_later(c);
    return true;
}

/* Serves up to max requests from the queue; the timers follow what is
 * left. */
static void serve_queue(struct admin_server *srv, int max)
{
    for (int n = 0; n < max; n++) {
        struct admin_conn *c = TAILQ_FIRST(&srv->queue);
        if (!c)
            break;
        TAILQ_REMOVE(&srv->queue, c, queue_link);
        c->state = CONN_SERVING;
        bool alive = c->head_seen ? serve_request(c) : serve_head(c);
        if (!alive)
            return; /* srv was freed */
    }
    if (TAILQ_EMPTY(&srv->queue)) {
        evtimer_del(&srv->work_timer);
        evtimer_del(&srv->late_timer);
        return;
    }
    struct timeval now = {0, 0}, late = clock_timeval(ADMIN_LATE_MS);
    if (!evtimer_pending(&srv->work_timer, NULL))
        evtimer_add(&srv->work_timer, &now); /* the rest at a later pass */
    evtimer_add(&srv->late_timer, &late);
}

static void on_work_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    serve_queue(arg, ADMIN_REQUESTS_PER_PASS);
}

/* Traffic kept every pass busy for ADMIN_LATE_MS: one request now. */
static void on_late_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    serve_queue(arg, 1);
}

/* --- reading --- */

/* True when a LF not preceded by CR is among c->in's first upto bytes
 * (from where the last search stopped): a client that ends its lines with
 * LF alone gets its 400 at once, not after waiting for a CRLFCRLF that
 * never comes. */
static bool head_has_bare_lf(struct admin_conn *c, size_t upto)
{
    size_t from = c->scanned; /* bytes before it were checked, but for the last */
    if (upto > ADMIN_HEAD_MAX)
        upto = ADMIN_HEAD_MAX;
    if (upto <= from)
        return false;
    char buf[ADMIN_HEAD_MAX + 1];
    size_t back = from > 0 ? 1 : 0; /* the byte before, for a CR */
    struct evbuffer_ptr at;
    evbuffer_ptr_set(c->in, &at, from - back, EVBUFFER_PTR_SET);
    ssize_t n = evbuffer_copyout_from(c->in, &at, buf, upto - from + back);
    for (ssize_t i = (ssize_t)back; i < n; i++)
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            return true;
    return false;
}

/* Looks for the end of a head in c->in; queues c when it is there. */
static void conn_check_head(struct admin_conn *c)
{
    size_t len = evbuffer_get_length(c->in);
    /* Blank lines before a request line are allowed (RFC 9112 2.2). */
    while (len >= 2) {
        unsigned char two[2];
        evbuffer_copyout(c->in, two, 2);
        if (two[0] != '\r' || two[1] != '\n')
            break;
        evbuffer_drain(c->in, 2);
        len -= 2;
        c->scanned = 0;
    }
    /* From where the last search stopped: a client trickling a byte at a
     * time costs O(head), not O(head^2). */
    struct evbuffer_ptr from;
    evbuffer_ptr_set(c->in, &from, c->scanned, EVBUFFER_PTR_SET);
    struct evbuffer_ptr end = evbuffer_search(c->in, "\r\n\r\n", 4, &from);
    if (head_has_bare_lf(c, end.pos >= 0 ? (size_t)end.pos + 4 : len)) {
        c->keep_alive = false;
        conn_fail(c, 400, "malformed request head");
        return;
    }
    if (end.pos >= 0 && (size_t)end.pos + 4 <= ADMIN_HEAD_MAX) {
        c->head_len = (size_t)end.pos + 4;
        queue_push(c);
        return;
    }
    c->scanned = len >= 3 ? len - 3 : 0;
    if (len >= ADMIN_HEAD_MAX) {
        char msg[64];
        snprintf(msg, sizeof(msg), "request head over %d bytes", ADMIN_HEAD_MAX);
        c->keep_alive = false;
        conn_fail(c, 431, msg);
    }
}

/* A read of c found nothing now: when it waits for writability (TLS),
 * watch that instead of readability until then. */
static void conn_read_blocked(struct admin_conn *c)
{
    if (!conn_read_wants_write(&c->io))
        return;
    event_del(&c->rev);
    conn_watch(c, &c->wev);
}

/* Reads what c's stream has for its state (WAIT, BODY, LINGER), on while
 * the TLS layer holds more: no socket event would come for it. */
static void conn_read(struct admin_conn *c)
{
    for (;;) {
        ssize_t n;
        if (c->state == CONN_LINGER) {
            char scratch[ADMIN_READ_CHUNK];
            struct iovec iov = {scratch, sizeof(scratch)};
            n = conn_readv(&c->io, &iov, 1);
            if (n > 0)
                c->lingered += (size_t)n;
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                conn_read_blocked(c);
                return;
            }
            if (n <= 0 || c->lingered >= ADMIN_LINGER_BYTES) {
                conn_close(c);
                return;
            }
        } else {
            n = conn_fill(c, ADMIN_READ_CHUNK);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                conn_read_blocked(c);
                return;
            }
            if (n <= 0) { /* EOF or error: nothing can be answered */
                conn_close(c);
                return;
            }
            if (c->state == CONN_WAIT) {
                conn_check_head(c);
            } else if (c->state == CONN_BODY &&
                       evbuffer_get_length(c->in) >= c->head_len + c->req.content_length) {
                queue_push(c); /* head_seen: request() is next */
            }
            if (c->state != CONN_WAIT && c->state != CONN_BODY)
                return; /* queued or answered: the rest is read after the answer */
        }
        if (conn_pending(&c->io) == 0)
            return;
    }
}

static void conn_handshake(struct admin_conn *c);
static void conn_flush(struct admin_conn *c);

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *c = arg;
    switch (c->state) {
    case CONN_HANDSHAKE:
        conn_handshake(c);
        break;
    case CONN_WAIT:
    case CONN_BODY:
    case CONN_LINGER:
        conn_read(c);
        break;
    case CONN_WRITE: /* a TLS write that waited for readability */
        conn_flush(c);
        break;
    case CONN_QUEUED:
    case CONN_SERVING: /* a read planned before the head was complete */
        break;
    }
}

/* --- writing --- */

static void conn_written(struct admin_conn *c)
{
    event_del(&c->wev);
    if (!c->close_after) {
        conn_wait_request(c, true);
        return;
    }
    if (!c->input_left) {
        conn_close(c);
        return;
    }
    /* Lingering close: the client may still be sending what we will not
     * read; a close now would reset the connection and could destroy the
     * answer before the client reads it. */
    c->io.ops->shutdown_write(&c->io);
    c->state = CONN_LINGER;
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    conn_arm_timer(c, ADMIN_LINGER_MS);
    conn_read_later(c);
}

static void conn_flush(struct admin_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        ssize_t n = conn_send(c);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            conn_close(c);
            return;
        }
    }
    if (evbuffer_get_length(c->out) > 0) {
        /* A TLS write may wait for readability (a record to read first). */
        bool want_read = conn_wants(c) == CONN_WANT_READ;
        struct event *wait = want_read ? &c->rev : &c->wev;
        event_del(want_read ? &c->wev : &c->rev);
        if (!event_pending(wait, want_read ? EV_READ : EV_WRITE, NULL))
            conn_watch(c, wait);
        return;
    }
    event_del(&c->rev);
    conn_written(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *c = arg;
    switch (c->state) {
    case CONN_HANDSHAKE:
        conn_handshake(c);
        break;
    case CONN_WRITE:
        conn_flush(c);
        break;
    case CONN_WAIT:
    case CONN_BODY:
    case CONN_LINGER: /* a TLS read that waited for writability */
        event_del(&c->wev);
        if (conn_watch(c, &c->rev))
            conn_read(c);
        break;
    case CONN_QUEUED:
    case CONN_SERVING:
        event_del(&c->wev);
        break;
    }
}

static void append_date(struct evbuffer *out)
{
    static time_t cached_at;
    static char cached[40];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        cached_at = now;
    }
    evbuffer_add(out, cached, strlen(cached));
}

void admin_http_reply(struct admin_conn *c, int status, const char *type, const char *extra,
                      struct evbuffer *body, bool close)
{
    struct admin_server *srv = c->srv;
    size_t len = body ? evbuffer_get_length(body) : 0;
    size_t consumed = c->head_len + (c->body_read ? c->req.content_length : 0);
    c->abandoned = NULL;
    queue_remove(c);
    event_del(&c->rev);
    /* An answer before the body was read (a refusal on the head) closes:
     * what the client still sends is not read. */
    if (close || !c->keep_alive || !c->body_read || srv->dying)
        c->close_after = true;
    if ((!c->body_read && c->req.content_length > 0) || evbuffer_get_length(c->in) > consumed)
        c->input_left = true;
    evbuffer_add_printf(c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
                        status, status_text(status), type, len);
    append_date(c->out);
    if (extra)
        evbuffer_add(c->out, extra, strlen(extra));
    if (c->close_after)
        evbuffer_add_printf(c->out, "Connection: close\r\n");
    else if (c->http10)
        evbuffer_add_printf(c->out, "Connection: keep-alive\r\n");
    evbuffer_add(c->out, "\r\n", 2);
    if (body && c->req.method != ADMIN_HEAD)
        evbuffer_add_buffer(c->out, body);
    if (body)
        evbuffer_free(body);
    c->state = CONN_WRITE;
    conn_arm_timer(c, srv->request_timeout_ms);
    /* Send what the socket takes now; the rest, and what follows the
     * answer (the next request, or the close), from on_writable(), so that
     * c outlives the handler that called us. */
    if (conn_send(c) < 0 && errno != EAGAIN && errno != EINTR) {
        evbuffer_drain(c->out, evbuffer_get_length(c->out)); /* the client is gone */
        c->close_after = true;
        c->input_left = false;
    }
    /* Should this fail, the deadline closes c. */
    if (!srv->dying && event_add(&c->wev, NULL) < 0)
        log_error("admin: cannot watch a connection: %s", strerror(errno));
}

/* --- connections --- */

/* The request did not arrive whole within its deadline: 408, close. */
static void conn_timeout(struct admin_conn *c)
{
    char msg[80];
    c->srv->stats.timeouts++;
    snprintf(msg, sizeof(msg), "request not complete within %u ms", c->srv->request_timeout_ms);
    c->keep_alive = false;
    conn_fail(c, 408, msg);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *c = arg;
    uint64_t now = clock_ms(CLOCK_MONOTONIC);
    if (now < c->deadline_ms) { /* a coarse timer woke early */
        struct timeval tv = clock_timeval(c->deadline_ms - now);
        evtimer_add(&c->timer, &tv);
        return;
    }
    struct admin_server *srv = c->srv;
    if (c->state == CONN_HANDSHAKE) {
        srv->stats.timeouts++;
        log_debug("admin: closing a connection whose TLS handshake did not end within %u ms",
                  srv->request_timeout_ms);
        conn_close(c);
        return;
    }
    if (c->state == CONN_WAIT) {
        /* Bytes that reached the socket in time count: the loop may come
         * to the timer before the read (a stalled loop, a stopped lb). */
        if (conn_fill(c, ADMIN_HEAD_MAX) > 0)
            conn_check_head(c);
        if (c->state != CONN_WAIT)
            return; /* queued (serve_head() looks at the deadline), or refused */
    }
    bool partial =
        (c->state == CONN_WAIT && evbuffer_get_length(c->in) > 0) || c->state == CONN_BODY;
    if (c->state == CONN_LINGER || (c->state == CONN_WAIT && !partial)) {
        conn_close(c); /* an idle keep-alive connection, or done lingering */
        return;
    }
    if (c->state == CONN_QUEUED || c->state == CONN_SERVING)
        return;     /* our turn: serve_head() looks at the deadline again */
    if (!partial) { /* the client does not read its answer */
        srv->stats.timeouts++;
        log_debug("admin: closing a connection whose client does not read");
        conn_close(c);
        return;
    }
    conn_timeout(c);
}

/* Ready for the next request on c (the first, or one after an answer):
 * what is left in c->in belongs to it, and its deadline starts now
 * (fresh_deadline) or is the one already set (the first request after a
 * TLS handshake: both within one request_timeout_ms). */
static void conn_wait_request(struct admin_conn *c, bool fresh_deadline)
{
    evbuffer_drain(c->in, c->head_len + (c->head_seen ? c->req.content_length : 0));
    free(c->head);
    c->head = NULL;
    c->head_len = 0;
    c->scanned = 0;
    c->head_seen = false;
    c->body_read = false;
    c->http10 = false;
    c->expect_continue = false;
    c->close_after = false;
    c->input_left = false;
    memset(&c->req, 0, sizeof(c->req));
    c->req.peer = (const struct sockaddr *)&c->peer;
    c->state = CONN_WAIT;
    if (fresh_deadline)
        conn_arm_timer(c, c->srv->request_timeout_ms);
    if (evbuffer_get_length(c->in) > 0) { /* pipelined */
        conn_check_head(c);
        if (c->state != CONN_WAIT)
            return;
    }
    conn_read_later(c);
}

/* Drives c's TLS handshake as far as the socket allows; once done, the
 * first request follows within the same deadline. A failed one (a client
 * that speaks plain HTTP, or no TLS it shares with us) is closed. */
static void conn_handshake(struct admin_conn *c)
{
    const char *why = NULL;
    int done = conn_tls_handshake(&c->io, &why);
    if (done < 0) {
        char peer[128];
        c->srv->stats.tls_handshake_failures++;
        log_debug("admin: TLS handshake with %s failed: %s; closing the connection",
                  sockaddr_text((const struct sockaddr *)&c->peer, peer, sizeof(peer)), why);
        conn_close(c);
        return;
    }
    if (done == 0) {
        bool want_write = conn_tls_wants(&c->io) == CONN_WANT_WRITE;
        event_del(want_write ? &c->rev : &c->wev);
        conn_watch(c, want_write ? &c->wev : &c->rev);
        return;
    }
    event_del(&c->wev);
    conn_wait_request(c, false);
}

void admin_http_defer(struct admin_conn *c, void (*abandoned)(void *arg), void *arg)
{
    c->abandoned = abandoned;
    c->abandoned_arg = arg;
}

static void conn_close(struct admin_conn *c)
{
    struct admin_server *srv = c->srv;
    if (c->abandoned) { /* deferred, never answered */
        void (*fn)(void *) = c->abandoned;
        c->abandoned = NULL;
        fn(c->abandoned_arg);
    }
    queue_remove(c);
    event_del(&c->rev);
    event_del(&c->wev);
    evtimer_del(&c->timer);
    c->io.ops->close(&c->io); /* a TLS one sends close_notify first */
    tls_ctx_unref(c->tls);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free(c->head);
    TAILQ_REMOVE(&srv->conns, c, link);
    srv->stats.open--;
    free(c);
}

static void refused_free(struct admin_refused *r)
{
    event_del(&r->ev);
    close(r->fd);
    LIST_REMOVE(r, link);
    r->srv->nrefused--;
    free(r);
}

/* Drops what the refused client sends until it closes, or the linger
 * time is over. */
static void on_refused(evutil_socket_t fd, short what, void *arg)
{
    struct admin_refused *r = arg;
    char scratch[ADMIN_READ_CHUNK];
    ssize_t n = what & EV_READ ? recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) : 0;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0 || (what & EV_TIMEOUT))
        refused_free(r);
}

/* After the 503: the write side is shut (the client reads the answer and
 * its end), and the socket lingers until the client closes, like an
 * answered connection's lingering close, unless too many already do. */
static void refused_linger(struct admin_server *srv, int fd)
{
    struct admin_refused *r =
        srv->nrefused < ADMIN_REFUSED_LINGER_MAX ? calloc(1, sizeof(*r)) : NULL;
    struct timeval tv = clock_timeval(ADMIN_LINGER_MS);
    if (r) {
        r->fd = fd;
        r->srv = srv;
        event_assign(&r->ev, srv->base, fd, EV_READ | EV_PERSIST, on_refused, r);
    }
    if (!r || shutdown(fd, SHUT_WR) < 0 || event_add(&r->ev, &tv) < 0) {
        free(r);
        close(fd);
        return;
    }
    LIST_INSERT_HEAD(&srv->refused, r, link);
    srv->nrefused++;
}

/* Best effort, then a short linger: at the connection limit. */
static void refuse(struct admin_server *srv, int fd)
{
    char text[256];
    char body[96];
    int blen =
        snprintf(body, sizeof(body), "{\n  \"error\": \"too many admin connections (%u)\"\n}\n",
                 srv->max_connections);
    int n = snprintf(text, sizeof(text),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     blen, body);
    /* What the client sent already is read first: closing with unread
     * input would reset the connection, and the answer with it. */
    char scratch[ADMIN_READ_CHUNK];
    ssize_t r = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
    ssize_t w = send(fd, text, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)r;
    (void)w;
    refused_linger(srv, fd);
    srv->stats.rejected++;
}

/* c->io becomes a TLS server connection over fd with a new SSL of t, and
 * c holds a reference to t for that SSL's life. 0, or -1 (out of memory:
 * c->io is plain TCP over fd again). */
static int conn_start_tls(struct admin_conn *c, struct tls_ctx *t, int fd)
{
    SSL *ssl = SSL_new(tls_ctx_ssl(t));
    if (!ssl) {
        ERR_clear_error();
        return -1;
    }
    SSL_set_accept_state(ssl);
    if (conn_tls_init(&c->io, fd, ssl) < 0) /* frees ssl */
        return -1;
    c->tls = tls_ctx_ref(t);
    return 0;
}

static void conn_start(struct admin_server *srv, int fd, const struct sockaddr *peer,
                       socklen_t peerlen)
{
    struct admin_conn *c = calloc(1, sizeof(*c));
    if (c) {
        c->in = evbuffer_new();
        c->out = evbuffer_new();
    }
    if (!c || !c->in || !c->out) {
        log_error("admin: out of memory, closing a new connection");
        if (c) {
            if (c->in)
                evbuffer_free(c->in);
            if (c->out)
                evbuffer_free(c->out);
            free(c);
        }
        close(fd);
        return;
    }
    c->srv = srv;
    conn_tcp_init(&c->io, fd);
    if (srv->tls && conn_start_tls(c, srv->tls, fd) < 0) {
        log_error("admin: out of memory, closing a new connection");
        close(fd);
        evbuffer_free(c->in);
        evbuffer_free(c->out);
        free(c);
        return;
    }
    memcpy(&c->peer, peer, peerlen < sizeof(c->peer) ? peerlen : sizeof(c->peer));
    event_assign(&c->rev, srv->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    event_assign(&c->wev, srv->base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    evtimer_assign(&c->timer, srv->base, on_conn_timer, c);
    TAILQ_INSERT_TAIL(&srv->conns, c, link);
    srv->stats.open++;
    srv->stats.accepted++;
    if (!c->tls) {
        conn_wait_request(c, true);
        return;
    }
    /* The handshake and the first request share one deadline. */
    c->state = CONN_HANDSHAKE;
    conn_arm_timer(c, srv->request_timeout_ms);
    conn_handshake(c); /* the ClientHello may be in already */
}

static void on_accept(void *arg, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    struct admin_server *srv = arg;
    if (srv->stats.open >= srv->max_connections && srv->tls) {
        /* No handshake for a connection that is refused anyway: the client
         * sees its handshake fail. */
        srv->stats.rejected++;
        log_debug("admin: %u connections open; closing a new TLS connection", srv->max_connections);
        close(fd);
    } else if (srv->stats.open >= srv->max_connections)
        refuse(srv, fd);
    else
        conn_start(srv, fd, peer, peerlen);
}

/* --- the server --- */

struct admin_server *admin_http_new(struct event_base *base, const struct admin_http_handler *h,
                                    void *arg)
{
    struct admin_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->base = base;
    srv->h = h;
    srv->arg = arg;
    srv->max_connections = 64;
    srv->request_timeout_ms = 10000;
    TAILQ_INIT(&srv->conns);
    LIST_INIT(&srv->refused);
    TAILQ_INIT(&srv->queue);
    evtimer_assign(&srv->work_timer, base, on_work_timer, srv);
    event_priority_set(&srv->work_timer, LB_PRIORITY_ADMIN); /* fails on a base without it */
    evtimer_assign(&srv->late_timer, base, on_late_timer, srv);
    return srv;
}

static void server_close_listener(struct admin_server *srv)
{
    acceptor_free(srv->acc); /* closes the socket */
    srv->acc = NULL;
}

/* One line a second when the admin socket runs out of descriptors. */
static time_t starved_logged;

int admin_http_listen(struct admin_server *srv, int fd)
{
    static const struct acceptor_conf conf = {
        .owner = "admin",
        .batch = ADMIN_ACCEPTS_PER_PASS,
        .pause_ms = ADMIN_EMFILE_PAUSE_MS,
        .starved_logged = &starved_logged,
    };
    server_close_listener(srv);
    srv->acc = acceptor_new(srv->base, fd, &conf, on_accept, srv); /* closes fd on failure */
    return srv->acc ? 0 : -1;
}

void admin_http_set_limits(struct admin_server *srv, unsigned max_connections,
                           unsigned request_timeout_ms)
{
    srv->max_connections = max_connections;
    srv->request_timeout_ms = request_timeout_ms;
}

void admin_http_set_tls(struct admin_server *srv, struct tls_ctx *t)
{
    struct tls_ctx *old = srv->tls;
    srv->tls = t ? tls_ctx_ref(t) : NULL;
    tls_ctx_unref(old);
}

bool admin_http_tls(const struct admin_server *srv)
{
    return srv->tls != NULL;
}

const struct admin_http_stats *admin_http_stats(const struct admin_server *srv)
{
    return &srv->stats;
}

int admin_http_fd(const struct admin_server *srv)
{
    return srv->acc ? acceptor_fd(srv->acc) : -1;
}

void admin_http_stop_accepting(struct admin_server *srv)
{
    server_close_listener(srv);
}

static void server_free_now(struct admin_server *srv)
{
    server_close_listener(srv);
    while (!TAILQ_EMPTY(&srv->conns))
        conn_close(TAILQ_FIRST(&srv->conns));
    while (!LIST_EMPTY(&srv->refused))
        refused_free(LIST_FIRST(&srv->refused));
    evtimer_del(&srv->work_timer);
    evtimer_del(&srv->late_timer);
    tls_ctx_unref(srv->tls);
    free(srv);
}

void admin_http_free(struct admin_server *srv)
{
    if (!srv)
        return;
    if (srv->in_handler > 0) { /* finished by server_call() */
        srv->dying = true;
        server_close_listener(srv);
        return;
    }
    server_free_now(srv);
}
