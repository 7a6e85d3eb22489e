/* admin: the JSON admin API, Prometheus /metrics and the dashboard page
 * (GET /, lb/admin/dashboard.html built in) on their own listener,
 * served by lb/admin/admin_http.c on lb's one event loop. Access is decided on
 * the request head, before any body is read: with a token, the request
 * must carry it; without one, the client must be on loopback. Then routing
 * by path and method, and the answer; the JSON views live in
 * lb/admin/admin_json.c. Operator changes (drain, disable, enable, weight)
 * are the control verbs of lb/control.h. A reload moves, opens or closes
 * the admin listener as the new file says, and turns its TLS on, off, or
 * to a new certificate for the connections that follow. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "lb/admin/admin.h"
#include "lb/admin/admin_http.h"
#include "lb/admin/admin_internal.h"
#include "lb/admin/admin_request.h"
#include "lb/admin/dashboard.h"
#include "lb/control.h"
#include "lb/fleet.h"
#include "lb/io/listen_socket.h"
#include "lb/io/tls_ctx.h"
#include "lb/log.h"
#include "lb/admin/metrics.h"
#include "lb/io/sock.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/reload.h"
#include "lb/runtime.h"

#define ADMIN_JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
#define CONTENT_TYPE_JSON "application/json"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_HTML "text/html; charset=utf-8"

/* What a reload does to the admin listener, between its prepare and its
 * commit or abort. */
struct admin_plan {
    int fd;              /* a new listening socket for the new address; -1: none */
    bool enable;         /* the new file has an admin listener */
    int shared_fd;       /* the old socket that was let share its port; -1: none */
    struct tls_ctx *tls; /* the new file's admin TLS context (a reference); NULL: plain */
};

struct admin {
    struct runtime *rt;
    struct admin_server *srv;     /* NULL while the file has no "admin" */
    struct sockaddr_storage addr; /* what srv listens on */
    struct admin_plan plan;
    struct reload_hook hook;
};

/* A request being answered: where the answer goes, and the header lines it
 * carries besides the usual ones (Allow, WWW-Authenticate). */
struct admin_call {
    struct admin *a;
    struct admin_conn *conn;
    const struct admin_request *req;
    const char *extra;
};

/* --- answers --- */

/* Sends out (freed here) with the given status and Content-Type. */
static void reply_send(struct admin_call *call, int code, const char *type, struct evbuffer *out)
{
    char q[ADMIN_ESCAPE_SIZE];
    log_debug("admin: %s %s: %d", call->req->method_name,
              config_text_escape(q, sizeof(q), call->req->target, ADMIN_ECHO_MAX), code);
    admin_http_reply(call->conn, code, type, call->extra, out, false);
}

/* The last resort when building an answer ran out of memory. */
static void reply_oom(struct admin_call *call)
{
    static const char text[] = "{\n  \"error\": \"out of memory\"\n}\n";
    struct evbuffer *out = evbuffer_new();
    if (out && evbuffer_add_reference(out, text, sizeof(text) - 1, NULL, NULL) < 0) {
        evbuffer_free(out);
        out = NULL;
    }
    admin_http_reply(call->conn, 500, CONTENT_TYPE_JSON, NULL, out, true);
}

static int dump_to_evbuffer(const char *buf, size_t size, void *data)
{
    return evbuffer_add(data, buf, size);
}

/* Answers with body, pretty-printed, plus a newline; takes the reference.
 * A NULL body (it could not be built) answers 500 out of memory. */
static void reply_json(struct admin_call *call, int code, json_t *body)
{
    struct evbuffer *out = body ? evbuffer_new() : NULL;
    if (!out || json_dump_callback(body, dump_to_evbuffer, out, ADMIN_JSON_FLAGS) < 0 ||
        evbuffer_add(out, "\n", 1) < 0) {
        json_decref(body);
        if (out)
            evbuffer_free(out);
        reply_oom(call);
        return;
    }
    json_decref(body);
    reply_send(call, code, CONTENT_TYPE_JSON, out);
}

/* Answers {"error": MESSAGE}. Client text in the message must already be
 * config_text_escape()d. */
static void reply_error(struct admin_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct admin_call *call, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(call, code, json_pack("{s:s}", "error", msg));
}

/* --- requests: path, token, body --- */

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

/* 0 when the request may go on, else the status that refuses it: 401
 * when a token is configured and the request lacks "Authorization: Bearer
 * TOKEN"; 403 without a token for a client not on loopback (a socket from
 * before a reload may still take those). */
static int request_access(const struct admin *a, const struct admin_request *req)
{
    const char *token = a->rt->cfg->admin.token;
    if (!token)
        return config_address_is_loopback(req->peer) ? 0 : 403;
    const char *h = req->authorization;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 401;
    h += 7;
    while (*h == ' ')
        h++;
    return token_equal(h, token) ? 0 : 401;
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
static struct pool *request_pool(struct admin_call *call, const struct admin_path *p)
{
    char q[ADMIN_ESCAPE_SIZE];
    struct pool *pool = runtime_find_pool(call->a->rt, p->seg[3]);
    if (!pool)
        reply_error(call, 404, "no pool named \"%s\"",
                    config_text_escape(q, sizeof(q), p->seg[3], ADMIN_ECHO_MAX));
    return pool;
}

/* --- PATCH of a backend --- */

/* Applies a validated change through the control verbs: the weight first
 * (the one step that can fail, ENOMEM, leaving b unchanged), then the
 * state. 0 or -1. */
static int change_apply(struct backend *b, const struct admin_change *c)
{
    if (c->set_weight && backend_set_weight_override(b, c->weight) < 0)
        return -1;
    if (c->set_state && backend_set_admin_state(b, c->state) < 0)
        return -1;
    return 0;
}

/* A PATCH with the fleet on: the change applies here at once, then is
 * written to etcd as the backend's state (PREFIX"state/POOL/ID", merged
 * with what etcd has for it), so that every instance follows; the answer
 * waits for etcd's (within the fleet's timeout_ms per endpoint). */
struct patch_wait {
    struct admin *a;
    struct admin_conn *conn;
    const struct admin_request *req;
    struct fleet_put *put;
    char *pool, *backend;
};

static void patch_wait_free(struct patch_wait *w)
{
    free(w->pool);
    free(w->backend);
    free(w);
}

/* The connection closed first (the admin API stopped or moved). */
static void on_patch_abandoned(void *arg)
{
    struct patch_wait *w = arg;
    fleet_put_cancel(w->put);
    patch_wait_free(w);
}

/* The backend (looked up again: a reload may have run meanwhile) with
 * "fleet": what etcd made of the write. 200 when etcd took it, 502 when
 * not (the change holds on this instance only). */
static void patch_answer(struct admin_call *call, const char *pool_name, const char *id,
                         int64_t revision, const char *err)
{
    struct runtime *rt = call->a->rt;
    struct pool *pool = runtime_find_pool(rt, pool_name);
    struct backend *b = NULL;
    for (size_t i = 0; pool && i < pool->nbackends && !b; i++)
        if (pool->backends[i] && strcmp(pool->backends[i]->id, id) == 0)
            b = pool->backends[i];
    json_t *body = b ? admin_json_backend(rt, b) : json_pack("{s:s}", "id", id);
    const char *prefix = rt->fleet ? rt->fleet->conf.prefix : "";
    char *key = NULL;
    if (asprintf(&key, "%sstate/%s/%s", prefix, pool_name, id) < 0)
        key = NULL;
    json_t *fleet = json_pack("{s:s?, s:b, s:o, s:s?}", "key", key, "written", err == NULL,
                              "revision", err ? json_null() : json_integer(revision), "error", err);
    free(key);
    if (body && (!fleet || json_object_set_new(body, "fleet", fleet) < 0)) {
        json_decref(body);
        body = NULL;
    }
    reply_json(call, err ? 502 : 200, body);
}

static void on_patch_written(void *arg, int64_t revision, const char *err)
{
    struct patch_wait *w = arg;
    struct admin_call call = {w->a, w->conn, w->req, NULL};
    char e[512];
    if (err)
        snprintf(e, sizeof(e), "etcd did not take the change: %s", err);
    patch_answer(&call, w->pool, w->backend, revision, err ? e : NULL);
    patch_wait_free(w);
}

/* Writes b's state to etcd; the answer follows from on_patch_written(). */
static void patch_write(struct admin_call *call, struct backend *b, const struct admin_change *c)
{
    struct fleet *f = call->a->rt->fleet;
    const struct fleet_state *st = fleet_state_find(f, b->pool->name, b->id);
    int state = c->set_state ? (int)c->state : st ? st->state : -1;
    int weight = c->set_weight ? (int)c->weight : st ? st->weight : -1;
    char *value = fleet_state_text(state, weight);
    struct patch_wait *w = calloc(1, sizeof(*w));
    char err[512];
    if (!value || !w || !(w->pool = strdup(b->pool->name)) || !(w->backend = strdup(b->id))) {
        free(value);
        if (w)
            patch_wait_free(w);
        reply_error(call, 500, "out of memory");
        return;
    }
    w->a = call->a;
    w->conn = call->conn;
    w->req = call->req;
    w->put = fleet_put_state(f, w->pool, w->backend, value, on_patch_written, w, err, sizeof(err));
    free(value);
    if (!w->put) {
        char e[600];
        snprintf(e, sizeof(e), "etcd did not take the change: %s", err);
        patch_answer(call, w->pool, w->backend, 0, e);
        patch_wait_free(w);
        return;
    }
    admin_http_defer(call->conn, on_patch_abandoned, w);
}

/* --- handlers --- */

/* The dashboard: one static page (lb/admin/dashboard.h), public like
 * /healthz since it holds no data; the API calls it makes carry the
 * operator's token. Never cached, never sniffed as anything else, never
 * framed, and its policy lets only its own inline script and style run. */
static void handle_dashboard(struct admin_call *call, const struct admin_path *p)
{
    (void)p;
    char extra[1400];
    snprintf(extra, sizeof(extra),
             "Cache-Control: no-store\r\n"
             "X-Content-Type-Options: nosniff\r\n"
             "X-Frame-Options: DENY\r\n"
             "Referrer-Policy: no-referrer\r\n"
             "Content-Security-Policy: %s\r\n",
             dashboard_csp);
    struct evbuffer *out = evbuffer_new();
    if (!out || evbuffer_add_reference(out, dashboard_html, dashboard_html_len, NULL, NULL) < 0) {
        if (out)
            evbuffer_free(out);
        reply_oom(call);
        return;
    }
    call->extra = extra;
    reply_send(call, 200, CONTENT_TYPE_HTML, out);
}

static void handle_healthz(struct admin_call *call, const struct admin_path *p)
{
    (void)p;
    reply_json(call, 200, json_pack("{s:s}", "status", "ok"));
}

/* The admin server's counters (NULL once a reload closed it). */
static const struct admin_http_stats *admin_stats(const struct admin *a)
{
    return a->srv ? admin_http_stats(a->srv) : NULL;
}

static void handle_metrics(struct admin_call *call, const struct admin_path *p)
{
    (void)p;
    struct evbuffer *out = evbuffer_new();
    if (!out || metrics_render_with_admin(call->a->rt, admin_stats(call->a), out) < 0) {
        if (out)
            evbuffer_free(out);
        reply_oom(call);
        return;
    }
    reply_send(call, 200, CONTENT_TYPE_METRICS, out);
}

static void handle_status(struct admin_call *call, const struct admin_path *p)
{
    (void)p;
    reply_json(call, 200, admin_json_status(call->a->rt, admin_stats(call->a)));
}

static void handle_listeners(struct admin_call *call, const struct admin_path *p)
{
    (void)p;
    reply_json(call, 200, admin_json_listeners(call->a->rt));
}

static void handle_pools(struct admin_call *call, const struct admin_path *p)
{
    (void)p;
    reply_json(call, 200, admin_json_pools(call->a->rt));
}

static void handle_pool(struct admin_call *call, const struct admin_path *p)
{
    struct pool *pool = request_pool(call, p);
    if (pool)
        reply_json(call, 200, admin_json_pool(call->a->rt, pool));
}

static void handle_backend(struct admin_call *call, const struct admin_path *p)
{
    char q[ADMIN_ESCAPE_SIZE];
    struct pool *pool = request_pool(call, p);
    if (!pool)
        return;
    struct backend *b = backend_find(pool, p->seg[5]);
    if (!b) {
        reply_error(call, 404, "pool \"%s\" has no backend \"%s\"", pool->name,
                    config_text_escape(q, sizeof(q), p->seg[5], ADMIN_ECHO_MAX));
        return;
    }
    if (call->req->method == ADMIN_PATCH) {
        struct admin_change c;
        char msg[1024];
        int refused = admin_change_parse(call->req->content_type, call->req->body,
                                         call->req->content_length, &c, msg, sizeof(msg));
        if (refused != 0) {
            reply_error(call, refused, "%s", msg);
            return;
        }
        if (change_apply(b, &c) < 0) {
            reply_error(call, 500, "out of memory");
            return;
        }
        if (call->a->rt->fleet) {
            patch_write(call, b, &c);
            return;
        }
    }
    reply_json(call, 200, admin_json_backend(call->a->rt, b));
}

/* Reloads like SIGHUP, synchronously, and answers with the outcome. */
static void handle_reload(struct admin_call *call, const struct admin_path *p)
{
    (void)p;
    struct reload_result res;
    char err[1024];
    int rc = reload_run(call->a->rt, &res, err, sizeof(err));
    if (rc < 0) {
        reply_error(call, 400, "%s", err);
        return;
    }
    if (rc == 1) { /* waits for host names: /api/v1/status tells the outcome */
        reply_json(call, 202,
                   json_pack("{s:s, s:s, s:I}", "status", "pending", "reason", err, "generation",
                             (json_int_t)call->a->rt->generation));
        return;
    }
    json_t *body = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I}", "status", "ok", "generation", (json_int_t)res.generation,
        "listeners_added", (json_int_t)res.listeners_added, "listeners_removed",
        (json_int_t)res.listeners_removed, "backends_added", (json_int_t)res.backends_added,
        "backends_removed", (json_int_t)res.backends_removed);
    reply_json(call, 200, body); /* NULL body: a 500 out of memory */
}

/* The handler of each route of lb/admin/admin_request.c. */
static void (*const handlers[ADMIN_ROUTES])(struct admin_call *call, const struct admin_path *p) = {
    [ADMIN_ROUTE_DASHBOARD] = handle_dashboard, [ADMIN_ROUTE_HEALTHZ] = handle_healthz,
    [ADMIN_ROUTE_METRICS] = handle_metrics,     [ADMIN_ROUTE_STATUS] = handle_status,
    [ADMIN_ROUTE_LISTENERS] = handle_listeners, [ADMIN_ROUTE_POOLS] = handle_pools,
    [ADMIN_ROUTE_POOL] = handle_pool,           [ADMIN_ROUTE_BACKEND] = handle_backend,
    [ADMIN_ROUTE_RELOAD] = handle_reload,
};

/* The head is in: access only (admin_http refuses a body over
 * ADMIN_BODY_MAX itself, after this). True when answered: the body is then
 * never read. */
static bool admin_on_head(void *arg, struct admin_conn *conn, const struct admin_request *req)
{
    struct admin *a = arg;
    struct admin_call call = {a, conn, req, NULL};
    struct admin_path path;
    const struct admin_route *route =
        admin_path_parse(req->target, &path) == 0 ? admin_route_find(&path) : NULL;
    free(path.buf);
    if (route && route->public)
        return false;
    int refused = request_access(a, req);
    if (refused == 401) {
        call.extra = "WWW-Authenticate: Bearer\r\n";
        reply_error(&call, 401, "missing or invalid bearer token");
    } else if (refused == 403) {
        reply_error(&call, 403, "the admin API has no token: it serves loopback clients only");
    }
    return refused != 0;
}

/* The whole request is in: path, method, then the route's handler. Every
 * answer is JSON except /metrics and the dashboard. */
static void admin_on_request(void *arg, struct admin_conn *conn, const struct admin_request *req)
{
    struct admin *a = arg;
    struct admin_call call = {a, conn, req, NULL};
    struct admin_path path;
    const struct admin_route *route =
        admin_path_parse(req->target, &path) == 0 ? admin_route_find(&path) : NULL;
    unsigned method = req->method == ADMIN_HEAD ? ADMIN_GET : req->method;

    if (!route) {
        reply_error(&call, 404, "no such path");
    } else if (!(route->methods & method)) {
        char allow[64];
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", route->allow);
        call.extra = allow;
        reply_error(&call, 405, "method %s not allowed", req->method_name);
    } else {
        handlers[route->id](&call, &path);
    }
    free(path.buf);
}

static const struct admin_http_handler admin_handler = {admin_on_head, admin_on_request};

/* --- the listener --- */

/* A listening socket for conf, or -1 with err. beside: the old admin
 * socket when the new address overlaps it, which is then let share the
 * port so that both can be open until the commit. */
static int admin_socket(const struct lb_admin_conf *conf, int beside, char *err, size_t errlen)
{
    if (beside >= 0 && listen_socket_share(beside, true) < 0)
        beside = -1;
    const char *step;
    int fd = listen_socket_open(&conf->addr, conf->addrlen, beside >= 0, &step);
    if (fd < 0) {
        if (strcmp(step, "socket") == 0)
            snprintf(err, errlen, "admin: socket: %s", strerror(errno));
        else
            snprintf(err, errlen, "admin: cannot listen on %s: %s", conf->listen, strerror(errno));
        if (beside >= 0)
            listen_socket_share(beside, false);
    }
    return fd;
}

/* Applies a->rt->cfg's admin limits, and tls (NULL: plain HTTP) to the
 * connections that follow. */
static void admin_configure(struct admin *a, struct tls_ctx *tls)
{
    const struct lb_admin_conf *conf = &a->rt->cfg->admin;
    admin_http_set_limits(a->srv, conf->max_connections, conf->request_timeout_ms);
    admin_http_set_tls(a->srv, tls);
    memcpy(&a->addr, &conf->addr, sizeof(a->addr));
}

/* Serves fd (owned from here on) as the admin API, over TLS with tls when
 * not NULL. 0 or -1 (ENOMEM). */
static int admin_open(struct admin *a, int fd, struct tls_ctx *tls)
{
    a->srv = admin_http_new(a->rt->base, &admin_handler, a);
    if (!a->srv) {
        close(fd);
        return -1;
    }
    if (admin_http_listen(a->srv, fd) < 0) {
        admin_http_free(a->srv);
        a->srv = NULL;
        return -1;
    }
    admin_configure(a, tls);
    log_info("admin API listening on %s%s", a->rt->cfg->admin.listen, tls ? " (HTTPS)" : "");
    return 0;
}

/* Closes the listener and every connection; a stays, for a reload that
 * opens one again. */
static void admin_close(struct admin *a)
{
    admin_http_free(a->srv); /* deferred when called from an admin request */
    a->srv = NULL;
}

/* The reload hook: binds what the new file's admin listener needs (nothing
 * when the address is unchanged) and takes a reference to its TLS context
 * (tls->admin, built and checked with the plan). 0, or -1 with err (abort
 * then undoes what was taken). */
static int admin_reload_prepare(void *arg, const struct lb_config *next_cfg,
                                const struct tls_set *tls, char *err, size_t errlen)
{
    struct admin *a = arg;
    const struct lb_admin_conf *next = &next_cfg->admin;
    struct admin_plan *plan = &a->plan;
    plan->fd = -1;
    plan->shared_fd = -1;
    plan->enable = next->enabled;
    plan->tls = next->enabled && tls->admin ? tls_ctx_ref(tls->admin) : NULL;
    if (!next->enabled || (a->srv && listen_socket_same(&a->addr, &next->addr)))
        return 0;
    int beside =
        a->srv && listen_socket_overlap(&a->addr, &next->addr) ? admin_http_fd(a->srv) : -1;
    plan->fd = admin_socket(next, beside, err, errlen);
    if (plan->fd < 0)
        return -1;
    plan->shared_fd = beside;
    return 0;
}

/* The reload hook: undoes a prepared plan that is not committed. */
static void admin_reload_abort(void *arg)
{
    struct admin *a = arg;
    struct admin_plan *plan = &a->plan;
    if (plan->fd >= 0)
        close(plan->fd);
    if (plan->shared_fd >= 0)
        listen_socket_share(plan->shared_fd, false);
    plan->fd = plan->shared_fd = -1;
    tls_ctx_unref(plan->tls);
    plan->tls = NULL;
}

/* The reload hook: applies the plan once a->rt->cfg is the new config. */
static void admin_reload_commit(void *arg)
{
    struct admin *a = arg;
    struct admin_plan *plan = &a->plan;
    const char *listen = a->rt->cfg->admin.listen;
    int fd = plan->fd;
    struct tls_ctx *tls = plan->tls; /* our reference, dropped below */
    plan->fd = plan->shared_fd = -1;
    plan->tls = NULL;
    if (!plan->enable) {
        if (a->srv) {
            log_info("admin API closed (no \"admin\" in the configuration any more)");
            admin_close(a);
        }
    } else if (!a->srv) {
        if (fd < 0 || admin_open(a, fd, tls) < 0)
            log_error("reload: admin: out of memory; the admin API stays closed");
    } else if (fd < 0) { /* same address: the socket stays */
        /* Open connections go on as they started (plain, or with the
         * certificate they were made with); new ones follow the file. */
        if (admin_http_tls(a->srv) != (tls != NULL))
            log_info("admin API on %s: new connections use %s", listen,
                     tls ? "HTTPS" : "plain HTTP");
        admin_configure(a, tls);
    } else if (admin_http_listen(a->srv, fd) < 0) {
        /* The old socket closes now; open admin connections go on, each request
         * checked against the new file's token, or against loopback without one. */
        log_error("reload: admin: cannot watch the new socket; the admin API is closed");
        admin_close(a);
    } else {
        admin_configure(a, tls);
        log_info("admin API moved: listening on %s%s", listen, tls ? " (HTTPS)" : "");
    }
    tls_ctx_unref(tls);
}

struct admin *admin_start(struct runtime *rt, char *err, size_t errlen)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "admin: out of memory");
        return NULL;
    }
    a->rt = rt;
    a->plan.fd = a->plan.shared_fd = -1;
    a->hook =
        (struct reload_hook){a, admin_reload_prepare, admin_reload_commit, admin_reload_abort};
    const struct lb_admin_conf *conf = &rt->cfg->admin;
    if (!conf->enabled)
        return a;
    int fd = admin_socket(conf, -1, err, errlen);
    if (fd < 0) {
        free(a);
        return NULL;
    }
    if (admin_open(a, fd, rt->tls.admin) < 0) {
        snprintf(err, errlen, "admin: out of memory");
        free(a);
        return NULL;
    }
    return a;
}

int admin_listen_fd(const struct admin *a)
{
    return a->srv ? admin_http_fd(a->srv) : -1;
}

void admin_hand_off(struct admin *a)
{
    if (a->srv)
        admin_http_stop_accepting(a->srv);
}

const struct reload_hook *admin_reload_hook(struct admin *a)
{
    return &a->hook;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    admin_reload_abort(a); /* nothing, unless stopped between prepare and commit */
    if (a->srv)
        admin_close(a);
    free(a);
}
