/* demo-backend: a tiny single-process libevent server that stands in for a
 * real backend in `make run` and in the integration tests. One listener, one
 * mode for every connection: http (hello from NAME; a request for /10m gets a
 * 10 MiB body instead, for scripts/bench), echo, name, silent, sink.
 * Usage: demo-backend -l ADDR:PORT [-n NAME] [-m MODE] [-s STATUS_FILE]. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define HTTP_HEADER_MAX (16 * 1024)
#define ECHO_PENDING_MAX (1024 * 1024) /* stop reading above this much unsent */
#define ECHO_RESUME_AT (512 * 1024)    /* and resume once it drains to this */
#define BIG_PATH "/10m"                /* http mode: the path of the big body */
#define BIG_LEN (10 * 1024 * 1024)     /* and its size */

enum mode { MODE_HTTP, MODE_ECHO, MODE_NAME, MODE_SILENT, MODE_SINK };

static const char *mode_names[] = {"http", "echo", "name", "silent", "sink"};

struct conn {
    struct bufferevent *bev;
    struct conn *prev, *next;
    bool closing;      /* free once the output is written */
    bool shut_after;   /* shutdown(SHUT_WR) before that free */
    bool write_shut;   /* name mode: our write side is already shut */
    bool read_paused;  /* echo mode: too much pending output */
    uint64_t received; /* sink mode */
};

static enum mode mode = MODE_HTTP;
static const char *name = "demo";
static const char *status_file; /* -s: http mode answers with the status it holds */
static char *big_body;          /* BIG_LEN bytes, made at the first request for it */
static struct conn *conns;      /* every open connection, freed at exit */
static struct event_base *base;

static void conn_free(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

/* Stops reading and frees c once everything queued is written; with shut,
 * our write side is shut down first so the peer sees a clean FIN. */
static void conn_finish(struct conn *c, bool shut)
{
    bufferevent_disable(c->bev, EV_READ);
    c->closing = true;
    c->shut_after = shut;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return;
    if (shut)
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    conn_free(c);
}

/* Parses one request head (len bytes, without the final \r\n\r\n) and says
 * whether the connection stays open after the answer. */
static bool http_keep_alive(const char *head, size_t len)
{
    const char *eol = memchr(head, '\n', len);
    size_t line_len = eol ? (size_t)(eol - head) : len;
    bool http10 = line_len >= 8 && memmem(head, line_len, "HTTP/1.0", 8) != NULL;
    bool keep = !http10;
    const char *p = eol ? eol + 1 : head + len;
    const char *end = head + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t n = (size_t)(line_end - p);
        if (n > 11 && strncasecmp(p, "connection:", 11) == 0) {
            char value[256];
            size_t vlen = n - 11 < sizeof(value) - 1 ? n - 11 : sizeof(value) - 1;
            memcpy(value, p + 11, vlen);
            value[vlen] = '\0';
            if (strcasestr(value, "close"))
                keep = false;
            else if (strcasestr(value, "keep-alive"))
                keep = true;
        }
        p = line_end + 1;
    }
    return keep;
}

/* The status to answer with: 200, or the number in the status file (-s)
 * when it holds one from 100 to 599, so a test can make the backend fail
 * its health checks and recover without restarting it. */
static int http_status(void)
{
    if (!status_file)
        return 200;
    FILE *f = fopen(status_file, "r");
    int status = 200;
    if (f) {
        if (fscanf(f, "%d", &status) != 1 || status < 100 || status > 599)
            status = 200;
        fclose(f);
    }
    return status;
}

/* Copies the value of the request header name (lower case, with its
 * colon) in head (len bytes) into value (cap bytes), without the spaces
 * around it: true, or false when head has none. */
static bool http_header(const char *head, size_t len, const char *name, char *value, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p && ++p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t n = (size_t)(line_end - p);
        if (n > nlen && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(line_end - v);
            while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(value, v, vlen);
            value[vlen] = '\0';
            return true;
        }
        p = nl;
    }
    return false;
}

/* Whether the request line in head (len bytes) asks for BIG_PATH. */
static bool http_wants_big(const char *head, size_t len)
{
    const char *sp = memchr(head, ' ', len);
    size_t plen = strlen(BIG_PATH);
    if (!sp)
        return false;
    size_t rest = len - (size_t)(sp + 1 - head);
    return rest >= plen && memcmp(sp + 1, BIG_PATH, plen) == 0 &&
           (rest == plen || sp[1 + plen] == ' ' || sp[1 + plen] == '\r');
}

/* xff: the request's X-Forwarded-For (echoed in a header of the answer,
 * so that curl -v through lb shows who lb said the client was), or NULL. */
static void http_answer(struct conn *c, bool big, const char *xff)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int status = http_status();
    if (big && !big_body) {
        big_body = malloc(BIG_LEN);
        if (big_body)
            memset(big_body, 'x', BIG_LEN);
    }
    if (big && big_body) {
        /* The body is referenced, not copied: every answer shares it. */
        evbuffer_add_printf(out,
                            "HTTP/1.1 %d %s\r\nContent-Type: application/octet-stream\r\n"
                            "Content-Length: %d\r\n\r\n",
                            status, status == 200 ? "OK" : "Status", BIG_LEN);
        evbuffer_add_reference(out, big_body, BIG_LEN, NULL, NULL);
        return;
    }
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n", status,
                        status == 200 ? "OK" : "Status");
    if (xff)
        evbuffer_add_printf(out, "X-Echo-Forwarded-For: %s\r\n", xff);
    evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\nhello from %s\n", strlen(name) + 12, name);
}

static void http_bad_request(struct conn *c)
{
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 12\r\nConnection: close\r\n\r\nbad request\n";
    evbuffer_add(bufferevent_get_output(c->bev), resp, sizeof(resp) - 1);
    conn_finish(c, true);
}

/* Answers every complete request head in the input (pipelining allowed). */
static void http_read(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (pos.pos < 0) {
            if (evbuffer_get_length(in) > HTTP_HEADER_MAX)
                http_bad_request(c);
            return;
        }
        size_t head_len = (size_t)pos.pos;
        if (head_len + 4 > HTTP_HEADER_MAX) {
            http_bad_request(c);
            return;
        }
        const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len + 4);
        bool keep = head && http_keep_alive(head, head_len);
        bool big = head && http_wants_big(head, head_len);
        char xff[256];
        bool has_xff = head && http_header(head, head_len, "x-forwarded-for:", xff, sizeof(xff));
        evbuffer_drain(in, head_len + 4);
        http_answer(c, big, has_xff ? xff : NULL);
        if (!keep) {
            conn_finish(c, true);
            return;
        }
    }
}

static void echo_read(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_buffer(out, bufferevent_get_input(c->bev));
    if (evbuffer_get_length(out) > ECHO_PENDING_MAX) {
        bufferevent_disable(c->bev, EV_READ);
        c->read_paused = true;
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    switch (mode) {
    case MODE_HTTP:
        http_read(c);
        return;
    case MODE_ECHO:
        echo_read(c);
        return;
    case MODE_SINK:
        c->received += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    case MODE_NAME:
    case MODE_SILENT:
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
    if (c->read_paused && !c->closing && pending <= ECHO_RESUME_AT) {
        c->read_paused = false;
        bufferevent_enable(bev, EV_READ);
    }
    if (pending > 0)
        return;
    if (c->closing) {
        conn_finish(c, c->shut_after);
        return;
    }
    if (mode == MODE_NAME && !c->write_shut) {
        c->write_shut = true;
        shutdown(bufferevent_getfd(bev), SHUT_WR);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        conn_free(c);
        return;
    }
    if (!(what & BEV_EVENT_EOF))
        return;
    if (mode == MODE_SINK) {
        evbuffer_add_printf(bufferevent_get_output(c->bev), "%" PRIu64 "\n", c->received);
        conn_finish(c, false);
        return;
    }
    /* echo finishes the pending echo and shuts down; http flushes answers. */
    conn_finish(c, mode == MODE_ECHO);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    (void)arg;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        free(c);
        return;
    }
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    if (mode == MODE_ECHO)
        bufferevent_setwatermark(c->bev, EV_WRITE, ECHO_RESUME_AT, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (mode == MODE_NAME)
        evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\n", name);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

/* "1.2.3.4:80" or "[::1]:80" into addr; 0 or -1. */
static int parse_address(const char *text, struct sockaddr_storage *addr, socklen_t *len)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text)
        return -1;
    size_t hlen = (size_t)(colon - text);
    if (hlen >= sizeof(host))
        return -1;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
        return -1;
    memset(addr, 0, sizeof(*addr));
    if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']')
            return -1;
        host[hlen - 1] = '\0';
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
        return inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    *len = sizeof(*sin);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

static int parse_mode(const char *text)
{
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
        if (strcmp(text, mode_names[i]) == 0) {
            mode = (enum mode)i;
            return 0;
        }
    }
    return -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: demo-backend -l ADDR:PORT [-n NAME] [-m http|echo|name|silent|sink] "
                    "[-s STATUS_FILE]\n");
}

int main(int argc, char **argv)
{
    const char *listen_text = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "l:n:m:s:")) != -1) {
        switch (opt) {
        case 'l':
            listen_text = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 's':
            status_file = optarg;
            break;
        case 'm':
            if (parse_mode(optarg) < 0) {
                fprintf(stderr, "demo-backend: unknown mode '%s'\n", optarg);
                return 1;
            }
            break;
        default:
            usage();
            return 1;
        }
    }
    if (!listen_text || optind != argc) {
        usage();
        return 1;
    }
    struct sockaddr_storage addr;
    socklen_t addrlen;
    if (parse_address(listen_text, &addr, &addrlen) < 0) {
        fprintf(stderr, "demo-backend: bad address '%s' (want ADDR:PORT or [IPv6]:PORT)\n",
                listen_text);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "demo-backend: cannot create event base\n");
        return 1;
    }
    struct evconnlistener *listener = evconnlistener_new_bind(
        base, accept_cb, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        128, (struct sockaddr *)&addr, (int)addrlen);
    if (!listener) {
        fprintf(stderr, "demo-backend: cannot listen on %s: %s\n", listen_text, strerror(errno));
        event_base_free(base);
        return 1;
    }
    struct event *sigint = evsignal_new(base, SIGINT, signal_cb, NULL);
    struct event *sigterm = evsignal_new(base, SIGTERM, signal_cb, NULL);
    if (!sigint || !sigterm || evsignal_add(sigint, NULL) < 0 || evsignal_add(sigterm, NULL) < 0) {
        fprintf(stderr, "demo-backend: cannot install signal handlers\n");
        return 1;
    }
    fprintf(stderr, "demo-backend %s listening on %s (%s)\n", name, listen_text, mode_names[mode]);
    event_base_dispatch(base);

    while (conns)
        conn_free(conns);
    evconnlistener_free(listener);
    event_free(sigint);
    event_free(sigterm);
    event_base_free(base);
    free(big_body);
    return 0;
}
