/* admin: the JSON admin API and Prometheus /metrics on their own listener,
 * served by libevent's evhttp on lb's one event loop. One callback checks
 * the bearer token, routes by path and method, and answers; the JSON views
 * live in lb/admin_json.c. Operator changes (drain, disable, enable, weight)
 * go through backend_refresh(), the same path health takes. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "lb/admin.h"
#include "lb/admin_internal.h"
#include "lb/log.h"
#include "lb/metrics.h"
#include "lb/runtime.h"

#define ADMIN_MAX_BODY (1024 * 1024) /* evhttp itself refuses larger bodies */
#define ADMIN_BODY_LIMIT (64 * 1024) /* we answer larger bodies with a JSON 413 */
#define ADMIN_MAX_HEADERS (16 * 1024)
#define ADMIN_TIMEOUT_S 10 /* a slow client cannot hold a connection longer */
#define ADMIN_MAX_SEGMENTS 8
#define ADMIN_EMFILE_PAUSE_MS 100
#define ADMIN_JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
#define ADMIN_METHODS                                                                              \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)
#define CONTENT_TYPE_JSON "application/json"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct admin {
    struct runtime *rt;
    struct evhttp *http;
    struct evconnlistener *evl; /* owned by http once bound */
    struct event *resume_timer; /* re-enables accepting after EMFILE */
    bool linked;                /* in the admins list */
    LIST_ENTRY(admin) link;
};

/* evconnlistener's error callback gets evhttp's context, not ours: this
 * list finds the admin of an evhttp (one per lb process in practice). */
static LIST_HEAD(admin_list, admin) admins = LIST_HEAD_INITIALIZER(admins);

/* A request path split into percent-decoded segments ("/api/v1/pools/app"
 * is api, v1, pools, app); they point into buf. */
struct admin_path {
    char *buf;
    char *seg[ADMIN_MAX_SEGMENTS];
    size_t n;
};

struct admin_route {
    const char *pattern[ADMIN_MAX_SEGMENTS + 1]; /* NULL-terminated; "*" matches one segment */
    bool public;                                 /* served without the token */
    unsigned methods;                            /* evhttp_cmd_type bits */
    const char *allow;                           /* the Allow header of a 405 */
    void (*handle)(struct admin *a, struct evhttp_request *req, const struct admin_path *p);
};

/* --- answers --- */

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

/* Sends out (freed here) with the given status and Content-Type. */
static void reply_send(struct evhttp_request *req, int code, const char *type, struct evbuffer *out)
{
    char q[ADMIN_ESCAPE_SIZE];
    const char *uri = evhttp_request_get_uri(req);
    /* Before the send: it may free req (the client is gone). */
    log_debug("admin: %s %s: %d", method_name(evhttp_request_get_command(req)),
              config_text_escape(q, sizeof(q), uri ? uri : "-", ADMIN_ECHO_MAX), code);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, code, NULL, out);
    evbuffer_free(out);
}

/* The last resort when building an answer ran out of memory. */
static void reply_oom(struct evhttp_request *req)
{
    static const char text[] = "{\n  \"error\": \"out of memory\"\n}\n";
    struct evbuffer *out = evbuffer_new();
    if (!out || evbuffer_add_reference(out, text, sizeof(text) - 1, NULL, NULL) < 0) {
        if (out)
            evbuffer_free(out);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    reply_send(req, HTTP_INTERNAL, CONTENT_TYPE_JSON, out);
}

static int dump_to_evbuffer(const char *buf, size_t size, void *data)
{
    return evbuffer_add(data, buf, size);
}

/* Answers with body, pretty-printed, plus a newline; takes the reference.
 * A NULL body (it could not be built) answers 500 out of memory. */
static void reply_json(struct evhttp_request *req, int code, json_t *body)
{
    struct evbuffer *out = body ? evbuffer_new() : NULL;
    if (!out || json_dump_callback(body, dump_to_evbuffer, out, ADMIN_JSON_FLAGS) < 0 ||
        evbuffer_add(out, "\n", 1) < 0) {
        json_decref(body);
        if (out)
            evbuffer_free(out);
        reply_oom(req);
        return;
    }
    json_decref(body);
    reply_send(req, code, CONTENT_TYPE_JSON, out);
}

/* Answers {"error": MESSAGE}. Client text in the message must already be
 * config_text_escape()d. */
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(req, code, json_pack("{s:s}", "error", msg));
}

/* --- requests: path, token, body --- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s in place ("%5B%3A%3A1%5D%3A9002" is "[::1]:9002"); a
 * '%' not followed by two hex digits stays as it is. False when the result
 * would hold a NUL. */
static bool segment_decode(char *s)
{
    char *o = s;
    for (const char *i = s; *i; i++) {
        int hi, lo;
        if (*i == '%' && (hi = hex_value(i[1])) >= 0 && (lo = hex_value(i[2])) >= 0) {
            *o = (char)(hi * 16 + lo);
            if (*o == '\0')
                return false;
            o++;
            i += 2;
            continue;
        }
        *o++ = *i;
    }
    *o = '\0';
    return true;
}

/* Splits the request's path (before any '?' or '#') into decoded segments.
 * 0, or -1 when no route can match it (not "/...", an empty segment, too
 * many segments, a NUL) or memory ran out; p->buf is then NULL. */
static int path_parse(struct evhttp_request *req, struct admin_path *p)
{
    const char *uri = evhttp_request_get_uri(req);
    memset(p, 0, sizeof(*p));
    if (!uri || uri[0] != '/')
        return -1;
    p->buf = strndup(uri + 1, strcspn(uri + 1, "?#"));
    if (!p->buf)
        return -1;
    char *s = p->buf;
    for (;;) {
        char *slash = strchr(s, '/');
        if (slash)
            *slash = '\0';
        if (*s == '\0' || p->n == ADMIN_MAX_SEGMENTS || !segment_decode(s))
            goto fail;
        p->seg[p->n++] = s;
        if (!slash)
            return 0;
        s = slash + 1;
    }
fail:
    free(p->buf);
    p->buf = NULL;
    p->n = 0;
    return -1;
}

/* True when given equals want. Runs over the longer of the two whatever
 * the content, so the time says nothing about where they differ. */
static bool token_equal(const char *given, const char *want)
{
    size_t glen = strlen(given), wlen = strlen(want);
    size_t n = glen > wlen ? glen : wlen;
    volatile unsigned char diff = glen != wlen;
    for (size_t i = 0; i < n; i++) {
        unsigned char g = i < glen ? (unsigned char)given[i] : 0;
        unsigned char w = i < wlen ? (unsigned char)want[i] : 0;
        diff |= g ^ w;
    }
    return diff == 0;
}

/* True when no token is configured or the request carries
 * "Authorization: Bearer TOKEN". */
static bool request_authorized(const struct admin *a, struct evhttp_request *req)
{
    const char *token = a->rt->cfg->admin.token;
    if (!token)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return token_equal(h, token);
}

/* True for "application/json", with any parameters ("; charset=utf-8"). */
static bool content_type_json(const char *type)
{
    size_t n = strlen(CONTENT_TYPE_JSON);
    if (!type)
        return false;
    while (*type == ' ' || *type == '\t')
        type++;
    if (strncasecmp(type, CONTENT_TYPE_JSON, n) != 0)
        return false;
    type += n;
    while (*type == ' ' || *type == '\t')
        type++;
    return *type == '\0' || *type == ';';
}

/* --- lookups --- */

/* By id (name, or address when unnamed), else by address as written (the
 * first backend with it, for a named backend). O(n). */
static struct backend *backend_find(const struct pool *pool, const char *key)
{
    for (size_t i = 0; i < pool->nbackends; i++)
        if (strcmp(pool->backends[i]->id, key) == 0)
            return pool->backends[i];
    for (size_t i = 0; i < pool->nbackends; i++)
        if (strcmp(pool->backends[i]->address, key) == 0)
            return pool->backends[i];
    return NULL;
}

/* The pool named in segment 3, or NULL after answering 404. */
static struct pool *request_pool(struct admin *a, struct evhttp_request *req,
                                 const struct admin_path *p)
{
    char q[ADMIN_ESCAPE_SIZE];
    struct pool *pool = runtime_find_pool(a->rt, p->seg[3]);
    if (!pool)
        reply_error(req, HTTP_NOTFOUND, "no pool named \"%s\"",
                    config_text_escape(q, sizeof(q), p->seg[3], ADMIN_ECHO_MAX));
    return pool;
}

/* --- PATCH of a backend --- */

struct backend_change {
    bool set_state;
    enum backend_admin state;
    const char *verb; /* "drain", "disable", "enable" */
    bool set_weight;
    unsigned weight;
};

/* Reads one key of the PATCH body into c. 0, or -1 after answering 400. */
static int change_key(struct evhttp_request *req, const char *key, json_t *v,
                      struct backend_change *c)
{
    static const struct {
        const char *verb;
        enum backend_admin state;
    } states[] = {
        {"drain", BACKEND_DRAINING}, {"disable", BACKEND_DISABLED}, {"enable", BACKEND_ENABLED}};
    char q[ADMIN_ESCAPE_SIZE];

    if (strcmp(key, "weight") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > LB_WEIGHT_MAX) {
            reply_error(req, HTTP_BADREQUEST, "\"weight\" must be an integer from 0 to %d",
                        LB_WEIGHT_MAX);
            return -1;
        }
        c->set_weight = true;
        c->weight = (unsigned)json_integer_value(v);
        return 0;
    }
    if (strcmp(key, "state") == 0) {
        for (size_t i = 0; json_is_string(v) && i < sizeof(states) / sizeof(states[0]); i++) {
            if (strcmp(json_string_value(v), states[i].verb) == 0) {
                c->set_state = true;
                c->state = states[i].state;
                c->verb = states[i].verb;
                return 0;
            }
        }
        reply_error(req, HTTP_BADREQUEST, "\"state\" must be \"drain\", \"disable\" or \"enable\"");
        return -1;
    }
    reply_error(req, HTTP_BADREQUEST, "unknown key \"%s\" (expected \"state\" or \"weight\")",
                config_text_escape(q, sizeof(q), key, ADMIN_ECHO_MAX));
    return -1;
}

/* Replaces, in place, each byte of s that is not printable ASCII with '?':
 * jansson's messages quote the client's text near the error. */
static const char *printable(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return s;
}

/* Checks the Content-Type and parses the whole body into c before anything
 * changes. 0, or -1 after answering 400 or 415. */
static int change_parse(struct evhttp_request *req, struct backend_change *c)
{
    const char *type = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (!content_type_json(type)) {
        reply_error(req, 415, "Content-Type must be application/json");
        return -1;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *data = len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (!data) {
        reply_oom(req);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        reply_error(req, HTTP_BADREQUEST, "invalid JSON at line %d, column %d: %s", jerr.line,
                    jerr.column, printable(jerr.text));
        return -1;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    memset(c, 0, sizeof(*c));
    if (!json_is_object(root)) {
        reply_error(req, HTTP_BADREQUEST, "the body must be a JSON object");
        rc = -1;
    } else if (json_object_size(root) == 0) {
        reply_error(req, HTTP_BADREQUEST, "the body must set \"state\" or \"weight\"");
        rc = -1;
    }
    json_object_foreach(root, key, v)
    {
        if (rc == 0 && change_key(req, key, v, c) < 0)
            rc = -1;
    }
    json_decref(root);
    return rc;
}

/* Applies a validated change: the weight first (the one step that can fail,
 * ENOMEM, leaving b unchanged), then the state. 0 or -1. */
static int change_apply(struct pool *pool, struct backend *b, const struct backend_change *c)
{
    if (c->set_weight)
        b->weight_overridden = true; /* even when unchanged: a reload keeps it */
    if (c->set_weight && c->weight != b->weight) {
        unsigned was = b->weight;
        if (pool_set_backend_weight(pool, b, c->weight) < 0)
            return -1;
        log_info("admin: pool %s backend %s weight %u (was %u)", pool->name, b->id, c->weight, was);
        backend_refresh(b);
        pool_note_available(pool); /* weight 0 takes it out, like down */
    }
    if (c->set_state && c->state != b->admin) {
        const char *was = backend_state_name(b);
        b->admin = c->state;
        backend_refresh(b);
        log_info("admin: pool %s backend %s state %s (was %s)", pool->name, b->id, c->verb, was);
        if (c->state == BACKEND_DISABLED)
            backend_close_sessions(b, "backend disabled");
    }
    return 0;
}

/* --- handlers --- */

static void handle_healthz(struct admin *a, struct evhttp_request *req, const struct admin_path *p)
{
    (void)a;
    (void)p;
    reply_json(req, HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static void handle_metrics(struct admin *a, struct evhttp_request *req, const struct admin_path *p)
{
    (void)p;
    struct evbuffer *out = evbuffer_new();
    if (!out || metrics_render(a->rt, out) < 0) {
        if (out)
            evbuffer_free(out);
        reply_oom(req);
        return;
    }
    reply_send(req, HTTP_OK, CONTENT_TYPE_METRICS, out);
}

static void handle_status(struct admin *a, struct evhttp_request *req, const struct admin_path *p)
{
    (void)p;
    reply_json(req, HTTP_OK, admin_json_status(a->rt));
}

static void handle_listeners(struct admin *a, struct evhttp_request *req,
                             const struct admin_path *p)
{
    (void)p;
    reply_json(req, HTTP_OK, admin_json_listeners(a->rt));
}

static void handle_pools(struct admin *a, struct evhttp_request *req, const struct admin_path *p)
{
    (void)p;
    reply_json(req, HTTP_OK, admin_json_pools(a->rt));
}

static void handle_pool(struct admin *a, struct evhttp_request *req, const struct admin_path *p)
{
    struct pool *pool = request_pool(a, req, p);
    if (pool)
        reply_json(req, HTTP_OK, admin_json_pool(a->rt, pool));
}

static void handle_backend(struct admin *a, struct evhttp_request *req, const struct admin_path *p)
{
    char q[ADMIN_ESCAPE_SIZE];
    struct pool *pool = request_pool(a, req, p);
    if (!pool)
        return;
    struct backend *b = backend_find(pool, p->seg[5]);
    if (!b) {
        reply_error(req, HTTP_NOTFOUND, "pool \"%s\" has no backend \"%s\"", pool->name,
                    config_text_escape(q, sizeof(q), p->seg[5], ADMIN_ECHO_MAX));
        return;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_PATCH) {
        struct backend_change c;
        if (change_parse(req, &c) < 0)
            return;
        if (change_apply(pool, b, &c) < 0) {
            reply_error(req, HTTP_INTERNAL, "out of memory");
            return;
        }
    }
    reply_json(req, HTTP_OK, admin_json_backend(a->rt, b));
}

/* Reloads like SIGHUP, synchronously, and answers with the outcome. */
static void handle_reload(struct admin *a, struct evhttp_request *req, const struct admin_path *p)
{
    (void)p;
    struct reload_result res;
    char err[1024];
    if (runtime_reload(a->rt, &res, err, sizeof(err)) < 0) {
        reply_error(req, HTTP_BADREQUEST, "%s", err);
        return;
    }
    json_t *body = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I}", "status", "ok", "generation", (json_int_t)res.generation,
        "listeners_added", (json_int_t)res.listeners_added, "listeners_removed",
        (json_int_t)res.listeners_removed, "backends_added", (json_int_t)res.backends_added,
        "backends_removed", (json_int_t)res.backends_removed);
    reply_json(req, HTTP_OK, body); /* NULL body: a 500 out of memory */
}

static const struct admin_route routes[] = {
    {{"healthz", NULL}, true, EVHTTP_REQ_GET, "GET", handle_healthz},
    {{"metrics", NULL}, false, EVHTTP_REQ_GET, "GET", handle_metrics},
    {{"api", "v1", "status", NULL}, false, EVHTTP_REQ_GET, "GET", handle_status},
    {{"api", "v1", "listeners", NULL}, false, EVHTTP_REQ_GET, "GET", handle_listeners},
    {{"api", "v1", "pools", NULL}, false, EVHTTP_REQ_GET, "GET", handle_pools},
    {{"api", "v1", "pools", "*", NULL}, false, EVHTTP_REQ_GET, "GET", handle_pool},
    {{"api", "v1", "pools", "*", "backends", "*", NULL},
     false,
     EVHTTP_REQ_GET | EVHTTP_REQ_PATCH,
     "GET, PATCH",
     handle_backend},
    {{"api", "v1", "reload", NULL}, false, EVHTTP_REQ_POST, "POST", handle_reload},
};

static const struct admin_route *route_find(const struct admin_path *p)
{
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++) {
        const char *const *pat = routes[r].pattern;
        size_t i = 0;
        while (i < p->n && pat[i] && (strcmp(pat[i], "*") == 0 || strcmp(pat[i], p->seg[i]) == 0))
            i++;
        if (i == p->n && pat[i] == NULL)
            return &routes[r];
    }
    return NULL;
}

/* evhttp's one callback: token, body size, path, method, then the route's
 * handler. Every answer is JSON except /metrics. */
static void admin_on_request(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    struct admin_path path;
    const struct admin_route *route = path_parse(req, &path) == 0 ? route_find(&path) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);

    if (!(route && route->public) && !request_authorized(a, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        reply_error(req, 401, "missing or invalid bearer token");
    } else if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > ADMIN_BODY_LIMIT) {
        reply_error(req, 413, "request body over %d bytes", ADMIN_BODY_LIMIT);
    } else if (!route) {
        reply_error(req, HTTP_NOTFOUND, "no such path");
    } else if (!(route->methods & (method == EVHTTP_REQ_HEAD ? EVHTTP_REQ_GET : method))) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", route->allow);
        reply_error(req, HTTP_BADMETHOD, "method %s not allowed", method_name(method));
    } else {
        route->handle(a, req, &path);
    }
    free(path.buf);
}

/* --- the listener --- */

static struct admin *admin_of_http(const void *http)
{
    struct admin *a;
    LIST_FOREACH(a, &admins, link)
    {
        if (a->http == http)
            return a;
    }
    return NULL;
}

static void on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin *a = arg;
    evconnlistener_enable(a->evl);
}

/* Out of descriptors: pause accepting for a moment instead of spinning on
 * a listen socket that cannot be served. */
static void on_accept_error(struct evconnlistener *evl, void *ctx)
{
    int err = errno;
    struct admin *a = admin_of_http(ctx);
    if (!a)
        return;
    if (!errno_starved(err)) {
        log_warn("admin: accept failed: %s", strerror(err));
        return;
    }
    static time_t last_logged;
    time_t now = time(NULL);
    if (now != last_logged) {
        last_logged = now;
        log_error("admin: accept failed: %s; pausing accepts for %d ms", strerror(err),
                  ADMIN_EMFILE_PAUSE_MS);
    }
    evconnlistener_disable(evl);
    struct timeval tv = {0, ADMIN_EMFILE_PAUSE_MS * 1000};
    evtimer_add(a->resume_timer, &tv);
}

/* A bound, listening, non-blocking socket on conf's address, or -1 with
 * the reason in err. */
static int admin_socket(const struct lb_admin_conf *conf, char *err, size_t errlen)
{
    int fd = socket(conf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "admin: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (conf->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&conf->addr, conf->addrlen) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "admin: cannot listen on %s: %s", conf->listen, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void admin_free(struct admin *a)
{
    if (!a)
        return;
    if (a->linked)
        LIST_REMOVE(a, link);
    if (a->http)
        evhttp_free(a->http); /* closes the listener and every connection */
    if (a->resume_timer)
        event_free(a->resume_timer);
    free(a);
}

/* The evhttp server on fd: limits, timeouts, the one callback. fd is
 * owned by the listener from here on, even on failure. 0 or -1 (ENOMEM). */
static int admin_serve(struct admin *a, int fd)
{
    /* evhttp_accept_socket_with_handle() does these two steps, but on a
     * failure it may or may not have closed fd; doing them here keeps the
     * ownership plain. */
    struct evconnlistener *evl = evconnlistener_new(
        a->rt->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!evl) {
        close(fd);
        return -1;
    }
    struct timeval timeout = {ADMIN_TIMEOUT_S, 0};
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
    evhttp_set_timeout_tv(a->http, &timeout);
    evhttp_set_allowed_methods(a->http, ADMIN_METHODS);
    evhttp_set_flags(a->http, EVHTTP_SERVER_LINGERING_CLOSE); /* a 413 is read, not reset */
    evhttp_set_gencb(a->http, admin_on_request, a);
    if (!evhttp_bind_listener(a->http, evl)) {
        evconnlistener_free(evl);
        return -1;
    }
    a->evl = evl;
    evconnlistener_set_error_cb(evl, on_accept_error);
    return 0;
}

int admin_start(struct runtime *rt, char *err, size_t errlen)
{
    const struct lb_admin_conf *conf = &rt->cfg->admin;
    if (!conf->enabled)
        return 0;
    int fd = admin_socket(conf, err, errlen);
    if (fd < 0)
        return -1;
    struct admin *a = calloc(1, sizeof(*a));
    if (!a) {
        close(fd);
        goto nomem;
    }
    a->rt = rt;
    a->http = evhttp_new(rt->base);
    a->resume_timer = evtimer_new(rt->base, on_resume_timer, a);
    if (!a->http || !a->resume_timer) {
        close(fd);
        goto nomem;
    }
    if (admin_serve(a, fd) < 0)
        goto nomem;
    LIST_INSERT_HEAD(&admins, a, link);
    a->linked = true;
    rt->admin = a;
    log_info("admin API listening on %s", conf->listen);
    return 0;

nomem:
    snprintf(err, errlen, "admin: out of memory");
    admin_free(a);
    return -1;
}

void admin_stop(struct runtime *rt)
{
    admin_free(rt->admin);
    rt->admin = NULL;
}
