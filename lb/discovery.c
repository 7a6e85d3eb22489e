/* discovery: backends from DNS answers (discovery.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "lb/discovery.h"
#include "lb/io/resolver.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/proto/dns_answer.h"

static const char *const TYPE_NAMES[] = {"A", "AAAA", "SRV"};

const char *discovery_type_name(enum lb_dns_type t)
{
    return (unsigned)t < 3 ? TYPE_NAMES[t] : "?";
}

static unsigned qtype_of(enum lb_dns_type t)
{
    return t == LB_DNS_SRV ? DNS_TYPE_SRV : t == LB_DNS_AAAA ? DNS_TYPE_AAAA : DNS_TYPE_A;
}

static int64_t now_unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* "10.0.0.5:8080" or "[fd00::5]:8080": a discovered backend's id and
 * address, as a file would write it. */
static void backend_id(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
    }
}

static void discovery_ask(struct discovery *d);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    discovery_ask(arg);
}

static void schedule(struct discovery *d, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(d->timer, &tv);
}

/* A fresh entry has its first result: the set's wait may be over. */
static void first_result(struct discovery *d)
{
    struct discovery_set *set = d->set;
    if (!d->fresh || d->resolutions + d->failures != 1 || set->waiting == 0)
        return;
    if (--set->waiting == 0 && set->ready_ev)
        event_active(set->ready_ev, EV_TIMEOUT, 0);
}

static void discovery_failed(struct discovery *d, const char *why)
{
    d->asking = false;
    d->failures++;
    d->last_unix_ms = now_unix_ms();
    snprintf(d->error, sizeof(d->error), "%s", why);
    if (!d->failing) {
        d->failing = true;
        log_warn("dns: pool %s: %s %s: %s (keeping %zu backends)", d->pool, d->conf.name,
                 discovery_type_name(d->conf.type), why, d->nbackends);
    }
    schedule(d, d->conf.refresh_ms);
    first_result(d);
}

static bool same_set(const struct discovery *d, const struct dns_answer *a)
{
    if (d->nbackends != a->nbackends)
        return false;
    for (size_t i = 0; i < a->nbackends; i++) {
        const struct discovery_backend *x = &d->backends[i];
        const struct dns_backend *y = &a->backends[i];
        if (x->addrlen != y->addrlen || memcmp(&x->addr, &y->addr, y->addrlen) != 0 ||
            x->weight != y->weight || x->priority != y->priority)
            return false;
    }
    return true;
}

/* The question and its targets' lookups are all in: the answer replaces
 * the last good one, or fails. */
static void discovery_done(struct discovery *d)
{
    struct dns_answer *a = d->pending;
    d->pending = NULL;
    dns_answer_finish(a, d->conf.type == LB_DNS_SRV);
    if (a->nbackends == 0) {
        discovery_failed(d, a->nrecords ? "no address for any SRV target" : "empty answer");
        dns_answer_free(a);
        free(a);
        return;
    }
    /* The copy first: out of memory fails this answer before anything
     * counts it a success. */
    bool changed = !d->answered || !same_set(d, a);
    struct discovery_backend *v = NULL;
    if (changed && !(v = calloc(a->nbackends, sizeof(*v)))) {
        discovery_failed(d, "out of memory");
        dns_answer_free(a);
        free(a);
        return;
    }
    d->asking = false;
    d->resolutions++;
    d->last_unix_ms = d->last_ok_unix_ms = now_unix_ms();
    d->error[0] = '\0';
    d->ttl_s = a->ttl;
    if (d->failing) {
        d->failing = false;
        log_info("dns: pool %s: %s %s answers again", d->pool, d->conf.name,
                 discovery_type_name(d->conf.type));
    }
    if (changed) {
        for (size_t i = 0; i < a->nbackends; i++) {
            v[i].addr = a->backends[i].addr;
            v[i].addrlen = a->backends[i].addrlen;
            v[i].weight = a->backends[i].weight;
            v[i].priority = a->backends[i].priority;
            backend_id(&v[i].addr, v[i].id, sizeof(v[i].id));
        }
        if (a->dropped)
            log_warn("dns: pool %s: %s %s: %zu records beyond %d dropped", d->pool, d->conf.name,
                     discovery_type_name(d->conf.type), a->dropped, DNS_BACKENDS_MAX);
        if (d->fresh) /* a committed one's change is logged as its pool takes it */
            log_info("dns: pool %s: %s %s: %zu backends", d->pool, d->conf.name,
                     discovery_type_name(d->conf.type), a->nbackends);
        free(d->backends);
        d->backends = v;
        d->nbackends = a->nbackends;
        d->answered = true;
        d->changes++;
    }
    /* The TTL is respected, with refresh_ms as a floor. */
    uint64_t wait = (uint64_t)a->ttl * 1000;
    if (wait < d->conf.refresh_ms)
        wait = d->conf.refresh_ms;
    if (wait > 86400000)
        wait = 86400000;
    schedule(d, (unsigned)wait);
    dns_answer_free(a);
    free(a);
    first_result(d);
    /* A pool that could not take it (out of memory) takes the next answer
     * as a change, whether or not DNS changed again. */
    if (changed && !d->fresh && d->set->changed && d->set->changed(d->set->arg, d) < 0)
        d->answered = false;
}

struct target_ask {
    struct discovery *d;
    unsigned short port;
    unsigned weight, priority;
};

static void on_target(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct target_ask *t = arg;
    struct discovery *d = t->d;
    /* Being freed: c-ares may still call with ARES_SUCCESS (a lookup whose
     * A answer came and whose AAAA one is cancelled), which must not run
     * the changed hook in the middle of a commit. */
    if (status == ARES_EDESTRUCTION || d->closing) {
        ares_freeaddrinfo(ai);
        free(t);
        return;
    }
    for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n; n = n->ai_next) {
        if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
            continue;
        dns_answer_add(d->pending, n->ai_addr, t->port, t->weight, t->priority);
        if (n->ai_ttl >= 0 && (unsigned)n->ai_ttl < d->pending->ttl)
            d->pending->ttl = (unsigned)n->ai_ttl;
    }
    ares_freeaddrinfo(ai);
    free(t);
    if (--d->targets_left == 0)
        discovery_done(d);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct discovery *d = arg;
    const char *why = NULL;
    if (status == ARES_EDESTRUCTION || d->closing)
        return;
    if (status != ARES_SUCCESS) {
        discovery_failed(d, ares_strerror(status));
        return;
    }
    struct dns_answer *a = calloc(1, sizeof(*a));
    if (!a) {
        discovery_failed(d, "out of memory");
        return;
    }
    if (dns_answer_parse(abuf, (size_t)alen, qtype_of(d->conf.type), (unsigned short)d->conf.port,
                         d->conf.weight, a, &why) < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "bad answer: %s", why);
        dns_answer_free(a);
        free(a);
        discovery_failed(d, msg);
        return;
    }
    d->pending = a;
    if (a->ntargets == 0) {
        discovery_done(d);
        return;
    }
    /* SRV targets the answer gave no address for: asked now, all at once
     * (the hosts file first, as getaddrinfo would). */
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    d->targets_left = 1; /* held until every lookup is started: one can answer inside */
    for (size_t i = 0; i < a->ntargets; i++) {
        struct target_ask *t = malloc(sizeof(*t));
        if (!t)
            continue; /* that target's addresses are missing this time */
        *t = (struct target_ask){d, a->targets[i].port, a->targets[i].weight,
                                 a->targets[i].priority};
        d->targets_left++;
        ares_getaddrinfo(resolver_channel(d->res), a->targets[i].name, NULL, &hints, on_target, t);
    }
    resolver_kick(d->res);
    if (--d->targets_left == 0)
        discovery_done(d);
}

static void discovery_ask(struct discovery *d)
{
    if (d->asking)
        return;
    d->asking = true;
    ares_query(resolver_channel(d->res), d->conf.name, 1 /* IN */, (int)qtype_of(d->conf.type),
               on_answer, d);
    resolver_kick(d->res);
}

static void discovery_free(struct discovery *d)
{
    if (!d)
        return;
    d->closing = true;     /* callbacks from here on do nothing */
    resolver_free(d->res); /* its callbacks run now (ARES_EDESTRUCTION, or not) */
    if (d->timer)
        event_free(d->timer);
    if (d->pending) {
        dns_answer_free(d->pending);
        free(d->pending);
    }
    free(d->backends);
    free(d->pool);
    free(d->key);
    free(d->conf.name);
    free(d->conf.resolvers);
    free(d);
}

static void conf_take(struct discovery *d, const struct lb_dns_conf *c)
{
    d->conf.type = c->type;
    d->conf.port = c->port;
    d->conf.weight = c->weight;
    d->conf.max_connections = c->max_connections;
    d->conf.refresh_ms = c->refresh_ms;
}

static struct discovery *discovery_new(struct discovery_set *set, const char *pool,
                                       const struct lb_dns_conf *c, char *err, size_t errlen)
{
    struct discovery *d = calloc(1, sizeof(*d));
    if (!d || !(d->pool = strdup(pool)) || !(d->key = strdup(c->key)) ||
        !(d->conf.name = strdup(c->name)) ||
        (c->resolvers && !(d->conf.resolvers = strdup(c->resolvers))) ||
        !(d->timer = evtimer_new(set->base, on_timer, d))) {
        discovery_free(d);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->set = set;
    conf_take(d, c);
    if (!(d->res = resolver_new(set->base, c->resolvers, err, errlen))) {
        discovery_free(d);
        return NULL;
    }
    return d;
}

struct discovery *discovery_find(const struct discovery_set *set, const char *pool, const char *key)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->v[i]->pool, pool) == 0 && strcmp(set->v[i]->key, key) == 0)
            return set->v[i];
    return NULL;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct discovery_set *set = arg;
    void (*ready)(void *) = set->ready;
    set->ready = NULL;
    if (ready)
        ready(set->ready_arg);
}

void discovery_set_init(struct discovery_set *set, struct event_base *base,
                        int (*changed)(void *arg, const struct discovery *d), void *arg)
{
    memset(set, 0, sizeof(*set));
    set->base = base;
    set->changed = changed;
    set->arg = arg;
}

void discovery_set_free(struct discovery_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        discovery_free(set->v[i]);
    free(set->v);
    if (set->ready_ev)
        event_free(set->ready_ev);
    memset(set, 0, sizeof(*set));
}

long discovery_prepare(struct discovery_set *set, const struct lb_config *cfg,
                       void (*ready)(void *arg), void *arg, char *err, size_t errlen)
{
    size_t total = set->n, fresh = 0;
    for (size_t i = 0; i < cfg->npools; i++)
        total += cfg->pools[i].ndns;
    if (total == 0)
        return 0;
    if (!set->ready_ev && !(set->ready_ev = event_new(set->base, -1, 0, on_ready, set))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct discovery **v = realloc(set->v, total * sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    set->v = v;
    size_t old_n = set->n;
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct lb_pool_conf *pc = &cfg->pools[i];
        for (size_t k = 0; k < pc->ndns; k++) {
            struct discovery *d = discovery_find(set, pc->name, pc->dns[k].key);
            if (d) {
                d->kept = true;
                continue;
            }
            if (!(d = discovery_new(set, pc->name, &pc->dns[k], err, errlen))) {
                discovery_abort(set);
                return -1;
            }
            d->fresh = true;
            set->v[set->n++] = d;
            fresh++;
        }
    }
    (void)old_n;
    set->waiting = fresh;
    set->ready = fresh ? ready : NULL;
    set->ready_arg = arg;
    /* Asked once all are made: an answer from /etc/hosts or a cache can
     * come inside the call, and first_result() must count right. */
    for (size_t i = 0; i < set->n; i++)
        if (set->v[i]->fresh)
            discovery_ask(set->v[i]);
    return (long)fresh;
}

void discovery_commit(struct discovery_set *set, const struct lb_config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++) {
        struct discovery *d = set->v[i];
        if (!d->fresh && !d->kept) {
            discovery_free(d);
            continue;
        }
        d->fresh = d->kept = false;
        set->v[n++] = d;
    }
    set->n = n;
    set->waiting = 0;
    set->ready = NULL;
    for (size_t i = 0; i < cfg->npools; i++)
        for (size_t k = 0; k < cfg->pools[i].ndns; k++) {
            struct discovery *d = discovery_find(set, cfg->pools[i].name, cfg->pools[i].dns[k].key);
            if (d)
                conf_take(d, &cfg->pools[i].dns[k]);
        }
}

void discovery_abort(struct discovery_set *set)
{
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++) {
        struct discovery *d = set->v[i];
        if (d->fresh) {
            discovery_free(d);
            continue;
        }
        d->kept = false;
        set->v[n++] = d;
    }
    set->n = n;
    set->waiting = 0;
    set->ready = NULL;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int discovery_fill_pool(const struct discovery_set *set, struct pool *pool,
                        const struct lb_pool_conf *pc)
{
    size_t total = pool->nbackends, n = 0;
    for (size_t k = 0; k < pc->ndns; k++) {
        const struct discovery *d = discovery_find(set, pc->name, pc->dns[k].key);
        total += d ? d->nbackends : 0;
    }
    if (total == pool->nbackends)
        return 0;
    /* The ids taken so far, sorted: a repeat costs O(log n) to find. */
    const char **ids = malloc(total * sizeof(*ids));
    if (!ids)
        return -1;
    for (size_t i = 0; i < pool->nbackends; i++)
        ids[n++] = pool->backends[i]->id;
    qsort(ids, n, sizeof(*ids), id_cmp);
    size_t sorted = n;
    /* Maglev needs a table larger than the backends it holds. */
    size_t cap = pool->strategy == LB_STRATEGY_IPHASH ? pool->hash_table_size - 1 : (size_t)-1;
    for (size_t k = 0; k < pc->ndns; k++) {
        const struct discovery *d = discovery_find(set, pc->name, pc->dns[k].key);
        for (size_t i = 0; d && i < d->nbackends; i++) {
            const struct discovery_backend *db = &d->backends[i];
            const char *id = db->id;
            /* One entry's ids are distinct (dns_answer_finish()): only the
             * file's and the earlier entries' can repeat them. */
            if (bsearch(&id, ids, sorted, sizeof(*ids), id_cmp) || pool->nbackends >= cap)
                continue;
            /* The file's settings as this config says (a reload's plan
             * builds before discovery_commit() gives them to d). */
            const struct lb_dns_conf *dc = &pc->dns[k];
            unsigned weight = dc->type == LB_DNS_SRV ? db->weight : dc->weight;
            struct backend *b =
                pool_add_backend(pool, db->id, NULL, db->id, (const struct sockaddr *)&db->addr,
                                 db->addrlen, weight);
            if (!b || !(b->dns = strdup(d->conf.name))) {
                free(ids);
                return -1;
            }
            b->max_conns = dc->max_connections;
            b->priority = db->priority;
            ids[n++] = b->id;
        }
        /* Keep the lookups O(log n): the additions join the sorted part. */
        qsort(ids, n, sizeof(*ids), id_cmp);
        sorted = n;
    }
    free(ids);
    return 0;
}
