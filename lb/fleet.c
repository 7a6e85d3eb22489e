/* fleet: pools kept in etcd, read and watched on the loop (fleet.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "lb/fleet.h"
#include "lb/http_client.h"
#include "lb/log.h"
#include "lb/proto/etcd_msg.h"

/* A range answer or one watch message larger than this is refused (and
 * the connection counted a fault): etcd's own default request limit is
 * 1.5 MiB, and a full read of many pools stays far below it. */
#define FLEET_ANSWER_MAX (64u << 20)
#define PROBE_EVERY_MS 1000
#define ROUND_PAUSE_MS 500
/* etcd is said unreachable (logged, shown) once no endpoint has answered
 * for this long: a leader election (a second or two with etcd's
 * defaults, while members answer "leader changed") is not an outage. */
#define DOWN_AFTER_MS 5000

static int64_t now_unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static const struct lb_fleet_endpoint *endpoint(const struct fleet *f)
{
    return &f->conf.endpoints[f->ep];
}

/* A key for a log line: etcd keys are any bytes. */
static const char *key_text(char *buf, size_t cap, const char *key)
{
    return config_text_escape(buf, cap, key, 200);
}

static void schedule(struct fleet *f, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_del(f->timer);
    evtimer_add(f->timer, &tv);
}

static void cancel_all(struct fleet *f)
{
    http_client_cancel(f->req);
    f->req = NULL;
    http_client_cancel(f->watch);
    f->watch = NULL;
    f->watch_created = false;
    f->buf_len = f->wbuf_len = 0;
    evtimer_del(f->timer);
}

/* The endpoint in use failed (why): the next one is tried, at once while
 * some of this round are left, else after a pause; all failing is logged
 * once. */
static void fleet_fault(struct fleet *f, const char *why)
{
    const struct lb_fleet_endpoint *was = endpoint(f);
    cancel_all(f);
    snprintf(f->error, sizeof(f->error), "%s: %s", was->url, why);
    if (f->failing_since_ms == 0)
        f->failing_since_ms = now_unix_ms();
    f->failed_in_round++;
    f->ep = (f->ep + 1) % f->conf.nendpoints;
    f->reconnects++;
    f->phase = FLEET_WAITING; /* the timer connects anew */
    if (f->failed_in_round < f->conf.nendpoints) {
        if (f->up)
            log_warn("fleet: etcd %s: %s; going on with %s", was->url, why, endpoint(f)->url);
        f->up = false;
        schedule(f, 0);
        return;
    }
    f->up = false;
    f->failed_in_round = 0;
    /* Never read: nothing to wait out (the start says what it does). */
    if (!f->down_logged && (!f->synced || now_unix_ms() - f->failing_since_ms >= DOWN_AFTER_MS)) {
        f->down_logged = true;
        log_error("fleet: no etcd endpoint answers (last: %s); the %zu pools from etcd in force "
                  "stay, and lb serves on",
                  f->error, f->ndocs);
    }
    schedule(f, ROUND_PAUSE_MS);
}

static void mark_ok(struct fleet *f)
{
    f->failed_in_round = 0;
    f->failing_since_ms = 0;
    f->last_ok_unix_ms = now_unix_ms();
    f->error[0] = '\0';
    if (!f->up && f->down_logged)
        log_info("fleet: etcd answers again at %s (revision %" PRId64 ")", endpoint(f)->url,
                 f->revision);
    f->down_logged = false;
    f->up = true;
}

/* --- documents --------------------------------------------------------- */

enum key_kind { KEY_OTHER, KEY_POOL };

/* What key (key_len bytes, NUL-terminated) is under the prefix; a pool's
 * name in *name. */
static enum key_kind key_kind(const struct fleet *f, const char *key, size_t key_len,
                              const char **name)
{
    size_t p = strlen(f->conf.prefix);
    if (strlen(key) != key_len || key_len <= p || memcmp(key, f->conf.prefix, p) != 0)
        return KEY_OTHER;
    const char *rest = key + p;
    if (strncmp(rest, "pools/", 6) == 0 && rest[6] && !strchr(rest + 6, '/')) {
        *name = rest + 6;
        return KEY_POOL;
    }
    return KEY_OTHER;
}

static void doc_free(struct fleet_doc *d)
{
    free(d->key);
    free(d->name);
    free(d->source);
    free(d->text);
}

static long doc_find(const struct fleet *f, const char *name)
{
    for (size_t i = 0; i < f->ndocs; i++)
        if (strcmp(f->docs[i].name, name) == 0)
            return (long)i;
    return -1;
}

static long reject_find(const struct fleet *f, const char *key)
{
    for (size_t i = 0; i < f->nrejects; i++)
        if (strcmp(f->rejects[i].key, key) == 0)
            return (long)i;
    return -1;
}

static void reject_drop(struct fleet *f, const char *key)
{
    long i = reject_find(f, key);
    if (i < 0)
        return;
    free(f->rejects[i].key);
    free(f->rejects[i].error);
    memmove(&f->rejects[i], &f->rejects[i + 1],
            (f->nrejects - (size_t)i - 1) * sizeof(*f->rejects));
    f->nrejects--;
}

static void reject_add(struct fleet *f, const char *key, const char *error, int64_t rev)
{
    char k[1024];
    long i = reject_find(f, key);
    f->rejected++;
    log_error("fleet: %s refused: %s (%s)", key_text(k, sizeof(k), key), error,
              doc_find(f, strrchr(key, '/') + 1) >= 0 ? "its last good version stays"
                                                      : "no version of it is in force");
    if (i < 0) {
        struct fleet_reject *v = realloc(f->rejects, (f->nrejects + 1) * sizeof(*v));
        if (!v)
            return;
        f->rejects = v;
        i = (long)f->nrejects;
        f->rejects[i] = (struct fleet_reject){0};
        if (!(f->rejects[i].key = strdup(key)))
            return;
        f->nrejects++;
    }
    char *e = strdup(error);
    if (e) {
        free(f->rejects[i].error);
        f->rejects[i].error = e;
    }
    f->rejects[i].mod_revision = rev;
}

/* A PUT of a pool document: checked, then in force. true when the
 * documents changed. */
static bool doc_put(struct fleet *f, const struct etcd_kv *kv, const char *name)
{
    char k[1024], err[1024];
    struct fleet_doc d = {0};
    if (asprintf(&d.source, "etcd %s", key_text(k, sizeof(k), kv->key)) < 0) {
        d.source = NULL;
        goto nomem;
    }
    struct config_doc cd = {d.source, name, kv->value, kv->value_len};
    if (config_check_doc(f->base_cfg, &cd, err, sizeof(err)) < 0) {
        free(d.source);
        reject_add(f, kv->key, err, kv->mod_revision);
        return false;
    }
    reject_drop(f, kv->key);
    long i = doc_find(f, name);
    if (i >= 0 && f->docs[i].len == kv->value_len &&
        memcmp(f->docs[i].text, kv->value, kv->value_len) == 0) {
        f->docs[i].mod_revision = kv->mod_revision;
        free(d.source);
        return false;
    }
    if (!(d.key = strdup(kv->key)) || !(d.name = strdup(name)) ||
        !(d.text = malloc(kv->value_len + 1)))
        goto nomem;
    memcpy(d.text, kv->value, kv->value_len);
    d.text[kv->value_len] = '\0';
    d.len = kv->value_len;
    d.mod_revision = kv->mod_revision;
    if (i >= 0) {
        doc_free(&f->docs[i]);
        f->docs[i] = d;
    } else {
        struct fleet_doc *v = realloc(f->docs, (f->ndocs + 1) * sizeof(*v));
        if (!v)
            goto nomem;
        f->docs = v;
        size_t at = 0;
        while (at < f->ndocs && strcmp(f->docs[at].name, name) < 0)
            at++;
        memmove(&f->docs[at + 1], &f->docs[at], (f->ndocs - at) * sizeof(*f->docs));
        f->docs[at] = d;
        f->ndocs++;
    }
    log_info("fleet: %s taken (revision %" PRId64 ")", d.source + 5, kv->mod_revision);
    f->changes++;
    return true;
nomem:
    doc_free(&d);
    log_error("fleet: %s: out of memory taking it", key_text(k, sizeof(k), kv->key));
    return false;
}

static bool doc_delete(struct fleet *f, const char *key, const char *name)
{
    char k[1024], who[128];
    long i = doc_find(f, name);
    if (i >= 0 && f->needed && f->needed(f->arg, name, who, sizeof(who))) {
        char why[300];
        snprintf(why, sizeof(why), "deleted, but %s names pool \"%s\" and the file has none", who,
                 name);
        reject_add(f, key, why, 0);
        return false;
    }
    reject_drop(f, key);
    if (i < 0)
        return false;
    doc_free(&f->docs[i]);
    memmove(&f->docs[i], &f->docs[i + 1], (f->ndocs - (size_t)i - 1) * sizeof(*f->docs));
    f->ndocs--;
    f->changes++;
    log_info("fleet: %s deleted", key_text(k, sizeof(k), key));
    return true;
}

static bool kv_apply(struct fleet *f, const struct etcd_kv *kv)
{
    const char *name;
    if (key_kind(f, kv->key, kv->key_len, &name) != KEY_POOL)
        return false;
    return kv->deleted ? doc_delete(f, kv->key, name) : doc_put(f, kv, name);
}

/* A full read: the answer's pools replace the documents (a document the
 * loader refuses keeps its last good version; one gone is deleted). */
static bool apply_full(struct fleet *f, const struct etcd_msg *m)
{
    bool changed = false;
    bool *seen = calloc(f->ndocs + 1, sizeof(*seen));
    char **keep = calloc(f->ndocs + 1, sizeof(*keep));
    size_t nkeep = f->ndocs;
    for (size_t i = 0; keep && i < f->ndocs; i++)
        keep[i] = strdup(f->docs[i].name);
    for (size_t i = 0; i < m->nkvs; i++) {
        const char *name;
        if (key_kind(f, m->kvs[i].key, m->kvs[i].key_len, &name) != KEY_POOL)
            continue;
        changed |= kv_apply(f, &m->kvs[i]);
        for (size_t k = 0; seen && keep && k < nkeep; k++)
            if (keep[k] && strcmp(keep[k], name) == 0)
                seen[k] = true;
    }
    /* What was there before and is not now. */
    for (size_t k = 0; seen && keep && k < nkeep; k++) {
        if (seen[k] || !keep[k])
            continue;
        long i = doc_find(f, keep[k]);
        if (i >= 0) {
            char *key = strdup(f->docs[i].key);
            if (key)
                changed |= doc_delete(f, key, keep[k]);
            free(key);
        }
    }
    for (size_t k = 0; keep && k < nkeep; k++)
        free(keep[k]);
    free(keep);
    free(seen);
    return changed;
}

/* --- the exchanges ------------------------------------------------------- */

static void fleet_connect(struct fleet *f);

static struct http_client *post(struct fleet *f, const char *path, char *body, int whole,
                                const struct http_client_ops *ops)
{
    char err[256];
    size_t len;
    if (!body) {
        fleet_fault(f, "out of memory");
        return NULL;
    }
    const struct lb_fleet_endpoint *e = endpoint(f);
    char *req = http_client_post(e->authority, path, f->conf.token, body, &len);
    free(body);
    struct http_client *c =
        req ? http_client_start(f->base, (const struct sockaddr *)&e->addr, e->addrlen, req, len,
                                f->conf.timeout_ms, whole, ops, f, err, sizeof(err))
            : NULL;
    free(req);
    if (!c)
        fleet_fault(f, req ? err : "out of memory");
    return c;
}

static int buf_add(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > FLEET_ANSWER_MAX)
        return -1;
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 1)
            c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int on_req_body(void *arg, const char *p, size_t n)
{
    struct fleet *f = arg;
    if (buf_add(&f->buf, &f->buf_len, &f->buf_cap, p, n) == 0)
        return 0;
    f->req = NULL; /* freed by the client once this returns */
    fleet_fault(f, "answer too large or out of memory");
    return -1;
}

static void start_watch(struct fleet *f);

static void on_req_done(void *arg, int status, const char *err)
{
    static const char *const what[] = {"read", "probe", "probe", "read"};
    struct fleet *f = arg;
    char e[512];
    f->req = NULL;
    if (err) {
        snprintf(e, sizeof(e), "%s: %s", what[f->phase], err);
        fleet_fault(f, e);
        return;
    }
    struct etcd_msg m;
    int rc = etcd_msg_parse(f->buf, f->buf_len, ETCD_RANGE, &m, e, sizeof(e));
    f->buf_len = 0;
    if (status != 200 && (rc < 0 || m.code == 0)) {
        snprintf(m.error, sizeof(m.error), "HTTP status %d", status);
        m.code = -1;
        rc = 0;
    }
    if (rc < 0 || m.code != 0) {
        char why[600];
        snprintf(why, sizeof(why), "%s: %s", what[f->phase], rc < 0 ? e : m.error);
        etcd_msg_free(&m);
        fleet_fault(f, why);
        return;
    }
    if (f->phase == FLEET_READING) {
        bool changed = apply_full(f, &m);
        bool first = !f->synced;
        f->revision = m.revision;
        f->synced = true;
        f->need_full = false;
        etcd_msg_free(&m);
        mark_ok(f);
        log_info("fleet: read %zu pools from etcd %s (revision %" PRId64 ")", f->ndocs,
                 endpoint(f)->url, f->revision);
        if ((changed || first) && f->changed)
            f->changed(f->arg);
        start_watch(f);
        return;
    }
    etcd_msg_free(&m);
    mark_ok(f);
    if (f->phase == FLEET_PROBING)
        start_watch(f);
    else
        schedule(f, PROBE_EVERY_MS);
}

static const struct http_client_ops req_ops = {NULL, on_req_body, on_req_done};

/* One line of the watch stream: one message. 0, or -1 after a fault. */
static int watch_message(struct fleet *f, const char *line, size_t len)
{
    struct etcd_msg m;
    char e[512];
    if (etcd_msg_parse(line, len, ETCD_WATCH, &m, e, sizeof(e)) < 0 || m.code != 0) {
        char why[600];
        snprintf(why, sizeof(why), "watch: %s", m.code ? m.error : e);
        etcd_msg_free(&m);
        fleet_fault(f, why);
        return -1;
    }
    if (m.canceled) {
        if (m.compact_revision > 0) {
            log_warn("fleet: etcd compacted revision %" PRId64 " away (the oldest kept is %" PRId64
                     "): reading everything again",
                     f->revision + 1, m.compact_revision);
            etcd_msg_free(&m);
            cancel_all(f);
            f->need_full = true;
            f->phase = FLEET_WAITING;
            schedule(f, 0);
            return -1;
        }
        char why[600];
        snprintf(why, sizeof(why), "watch canceled: %s", m.error[0] ? m.error : "no reason");
        etcd_msg_free(&m);
        fleet_fault(f, why);
        return -1;
    }
    if (m.created)
        f->watch_created = true;
    bool changed = false;
    int64_t last = 0;
    for (size_t i = 0; i < m.nkvs; i++) {
        if (m.kvs[i].mod_revision <= f->revision)
            continue; /* seen already (a watch resumed where a read reached) */
        changed |= kv_apply(f, &m.kvs[i]);
        if (m.kvs[i].mod_revision > last)
            last = m.kvs[i].mod_revision;
    }
    if (last > f->revision)
        f->revision = last;
    else if (m.nkvs == 0 && !m.created && m.revision > f->revision)
        f->revision = m.revision; /* a progress notification: all through it was sent */
    etcd_msg_free(&m);
    f->last_ok_unix_ms = now_unix_ms();
    if (changed && f->changed)
        f->changed(f->arg);
    return 0;
}

static int on_watch_body(void *arg, const char *p, size_t n)
{
    struct fleet *f = arg;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (buf_add(&f->wbuf, &f->wbuf_len, &f->wbuf_cap, p, take) < 0) {
            f->watch = NULL;
            fleet_fault(f, "watch: message too large or out of memory");
            return -1;
        }
        if (!nl)
            break;
        p += take + 1;
        n -= take + 1;
        size_t len = f->wbuf_len;
        f->wbuf_len = 0;
        if (len == 0)
            continue;
        struct http_client *self = f->watch;
        f->watch = NULL; /* a fault below must not cancel the client running this */
        if (watch_message(f, f->wbuf, len) < 0)
            return -1;
        f->watch = self;
    }
    return 0;
}

static void on_watch_done(void *arg, int status, const char *err)
{
    struct fleet *f = arg;
    char why[300];
    f->watch = NULL;
    if (err)
        snprintf(why, sizeof(why), "watch: %s", err);
    else
        snprintf(why, sizeof(why), "watch: the stream ended (HTTP status %d)", status);
    fleet_fault(f, why);
}

static int on_watch_head(void *arg, int status)
{
    struct fleet *f = arg;
    if (status == 200)
        return 0;
    char why[64];
    snprintf(why, sizeof(why), "watch: HTTP status %d", status);
    f->watch = NULL;
    fleet_fault(f, why);
    return -1;
}

static const struct http_client_ops watch_ops = {on_watch_head, on_watch_body, on_watch_done};

static void start_watch(struct fleet *f)
{
    f->phase = FLEET_WATCHING;
    f->watch_created = false;
    f->wbuf_len = 0;
    f->watch =
        post(f, "/v3/watch", etcd_watch_body(f->conf.prefix, f->revision + 1), 0, &watch_ops);
    if (f->watch)
        schedule(f, PROBE_EVERY_MS);
}

static void fleet_connect(struct fleet *f)
{
    cancel_all(f);
    if (f->need_full || !f->synced) {
        f->phase = FLEET_READING;
        f->req = post(f, "/v3/kv/range", etcd_range_body(f->conf.prefix, 0), 1, &req_ops);
    } else {
        f->phase = FLEET_PROBING;
        f->req = post(f, "/v3/kv/range", etcd_count_body(f->conf.prefix), 1, &req_ops);
    }
}

/* The probe every second while watching; else the next attempt. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fleet *f = arg;
    if (f->phase != FLEET_WATCHING) {
        fleet_connect(f);
        return;
    }
    if (f->req) /* the last probe is still out: its own timeout ends it */
        return;
    f->req = post(f, "/v3/kv/range", etcd_count_body(f->conf.prefix), 1, &req_ops);
}

/* --- setup --------------------------------------------------------------- */

static void conf_free(struct lb_fleet_conf *c)
{
    for (size_t i = 0; i < c->nendpoints; i++) {
        free(c->endpoints[i].url);
        free(c->endpoints[i].authority);
    }
    free(c->endpoints);
    free(c->prefix);
    free(c->token);
    memset(c, 0, sizeof(*c));
}

static int conf_copy(struct lb_fleet_conf *dst, const struct lb_fleet_conf *src)
{
    *dst = *src;
    dst->endpoints = calloc(src->nendpoints, sizeof(*dst->endpoints));
    dst->prefix = strdup(src->prefix);
    dst->token = src->token ? strdup(src->token) : NULL;
    int ok = dst->endpoints && dst->prefix && (!src->token || dst->token);
    for (size_t i = 0; ok && i < src->nendpoints; i++) {
        dst->endpoints[i] = src->endpoints[i];
        dst->endpoints[i].url = strdup(src->endpoints[i].url);
        dst->endpoints[i].authority = strdup(src->endpoints[i].authority);
        ok = dst->endpoints[i].url && dst->endpoints[i].authority;
    }
    if (!ok) {
        if (!dst->endpoints)
            dst->nendpoints = 0;
        conf_free(dst);
        return -1;
    }
    return 0;
}

static bool conf_same(const struct lb_fleet_conf *a, const struct lb_fleet_conf *b)
{
    if (a->nendpoints != b->nendpoints || strcmp(a->prefix, b->prefix) != 0 ||
        !a->token != !b->token || (a->token && strcmp(a->token, b->token) != 0) ||
        a->timeout_ms != b->timeout_ms)
        return false;
    for (size_t i = 0; i < a->nendpoints; i++)
        if (strcmp(a->endpoints[i].url, b->endpoints[i].url) != 0)
            return false;
    return true;
}

int fleet_init(struct fleet *f, struct event_base *base, const struct lb_fleet_conf *conf,
               const struct lb_config *base_cfg, void (*changed)(void *arg), void *arg)
{
    memset(f, 0, sizeof(*f));
    f->base = base;
    f->base_cfg = base_cfg;
    f->changed = changed;
    f->arg = arg;
    f->need_full = true;
    if (conf_copy(&f->conf, conf) < 0)
        return -1;
    if (!(f->timer = evtimer_new(base, on_timer, f))) {
        conf_free(&f->conf);
        return -1;
    }
    return 0;
}

void fleet_run(struct fleet *f)
{
    fleet_connect(f);
}

int fleet_configure(struct fleet *f, const struct lb_fleet_conf *conf)
{
    if (conf_same(&f->conf, conf)) {
        f->conf.start_timeout_ms = conf->start_timeout_ms;
        return 0;
    }
    struct lb_fleet_conf c;
    if (conf_copy(&c, conf) < 0)
        return -1;
    bool other_prefix = strcmp(c.prefix, f->conf.prefix) != 0;
    conf_free(&f->conf);
    f->conf = c;
    f->ep = 0;
    f->failed_in_round = 0;
    if (other_prefix)
        f->need_full = true;
    log_info("fleet: following etcd %s%s with new settings", f->conf.endpoints[0].url,
             f->conf.nendpoints > 1 ? " (and others)" : "");
    fleet_connect(f);
    return 0;
}

void fleet_free(struct fleet *f)
{
    cancel_all(f);
    if (f->timer)
        event_free(f->timer);
    f->timer = NULL;
    for (size_t i = 0; i < f->ndocs; i++)
        doc_free(&f->docs[i]);
    free(f->docs);
    for (size_t i = 0; i < f->nrejects; i++) {
        free(f->rejects[i].key);
        free(f->rejects[i].error);
    }
    free(f->rejects);
    free(f->buf);
    free(f->wbuf);
    conf_free(&f->conf);
    memset(f, 0, sizeof(*f));
}

int fleet_docs(const struct fleet *f, struct config_doc **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!f || f->ndocs == 0)
        return 0;
    struct config_doc *v = calloc(f->ndocs, sizeof(*v));
    if (!v)
        return -1;
    for (size_t i = 0; i < f->ndocs; i++)
        v[i] = (struct config_doc){f->docs[i].source, f->docs[i].name, f->docs[i].text,
                                   f->docs[i].len};
    *out = v;
    *n = f->ndocs;
    return 0;
}

const char *fleet_state_name(const struct fleet *f)
{
    if (f->down_logged)
        return "unreachable";
    if (!f->up)
        return f->synced ? "reconnecting" : "reading";
    return f->phase == FLEET_WATCHING ? "watching" : "reconnecting";
}
