/* fleet: pools kept in etcd, read and watched on the loop (fleet.h). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <jansson.h>

#include "lb/control.h"
#include "lb/fleet.h"
#include "lb/http_client.h"
#include "lb/io/resolver.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/proto/etcd_msg.h"
#include "lb/io/tls_ctx.h"
#include "lb/tls_conf.h"

/* A range answer or one watch message larger than this is refused (and
 * the connection counted a fault): etcd's own default request limit is
 * 1.5 MiB, and a full read of many pools stays far below it. */
#define FLEET_ANSWER_MAX (64u << 20)
#define PROBE_EVERY_MS 1000
#define ROUND_PAUSE_MS 500      /* after a round of faults; doubled each round after, */
#define ROUND_PAUSE_MAX_MS 5000 /* up to this */
/* Probes in a row that see a change of the prefix newer than any the
 * watch brought: the watch is dead (a connection a middlebox dropped). */
#define PROBES_BEHIND_MAX 3
/* etcd is said unreachable (logged, shown) once no endpoint has answered
 * for this long: a leader election (a second or two with etcd's
 * defaults, while members answer "leader changed") is not an outage. */
#define DOWN_AFTER_MS 5000
/* What the fleet keeps at most, whatever etcd holds: more is refused (a
 * hostile or mistaken writer cannot make lb grow without end). */
/* Pool documents, and their bytes together (a full read of them, in
 * base64, stays under FLEET_ANSWER_MAX). */
#define FLEET_DOCS_MAX 10000
#define FLEET_DOC_BYTES_MAX (32u << 20)
#define FLEET_STATES_MAX 10000    /* backend states */
#define FLEET_REJECTS_LISTED 1000 /* refusals listed (all are counted) */

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
    f->ep_expires_ms[f->ep] = 0; /* a host name is asked again before the next try */
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
    f->rounds_failed++;
    /* Never read: nothing to wait out (the start says what it does). */
    if (!f->down_logged && (!f->synced || now_unix_ms() - f->failing_since_ms >= DOWN_AFTER_MS)) {
        f->down_logged = true;
        if (f->synced)
            log_error("fleet: no etcd endpoint answers (last: %s); the %zu pools from etcd in "
                      "force stay, and lb serves on",
                      f->error, f->ndocs);
        else
            log_error("fleet: no etcd endpoint answers (last: %s); nothing read from etcd yet",
                      f->error);
    }
    unsigned pause = ROUND_PAUSE_MS;
    for (unsigned r = 1; r < f->rounds_failed && pause < ROUND_PAUSE_MAX_MS; r++)
        pause *= 2;
    schedule(f, pause < ROUND_PAUSE_MAX_MS ? pause : ROUND_PAUSE_MAX_MS);
}

/* The watch is set up: the endpoint works, faults count from zero (an
 * endpoint that answers probes but cannot keep a watch still counts). */
static void watch_established(struct fleet *f)
{
    f->watch_created = true;
    f->failed_in_round = 0;
    f->rounds_failed = 0;
    f->failing_since_ms = 0;
}

static void mark_ok(struct fleet *f)
{
    f->last_ok_unix_ms = now_unix_ms();
    f->error[0] = '\0';
    if (!f->up && f->down_logged)
        log_info("fleet: etcd answers again at %s (revision %" PRId64 ")", endpoint(f)->url,
                 f->revision);
    f->down_logged = false;
    f->up = true;
}

/* --- documents --------------------------------------------------------- */

enum key_kind { KEY_OTHER, KEY_POOL, KEY_STATE };

/* What key (key_len bytes, NUL-terminated) is under the prefix: a pool's
 * name in *name; for a state, *name is "<pool>/<backend>". */
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
    if (strncmp(rest, "state/", 6) != 0)
        return KEY_OTHER;
    const char *slash = strchr(rest + 6, '/');
    if (slash && slash > rest + 6 && slash[1] && !strchr(slash + 1, '/')) {
        *name = rest + 6;
        return KEY_STATE;
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

/* The element of a sorted array (n elements of size bytes at base, sorted
 * by the string at offset off of each) whose string is key, or -1; *at
 * (when not NULL) is where it would go. */
static long sorted_find(const void *base, size_t n, size_t size, size_t off, const char *key,
                        size_t *at)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(*(char *const *)((const char *)base + mid * size + off), key);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at)
        *at = lo;
    return -1;
}

/* The document of pool name (docs are sorted by name), or -1. */
static long doc_search(const struct fleet *f, const char *name, size_t *at)
{
    return sorted_find(f->docs, f->ndocs, sizeof(*f->docs), offsetof(struct fleet_doc, name), name,
                       at);
}

static long doc_find(const struct fleet *f, const char *name)
{
    return doc_search(f, name, NULL);
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

/* key is refused with error; kept: a good version of it stays in force. */
static void reject_add(struct fleet *f, const char *key, const char *error, int64_t rev, bool kept)
{
    char k[1024];
    long i = reject_find(f, key);
    f->rejected++;
    log_error("fleet: %s refused: %s (%s)", key_text(k, sizeof(k), key), error,
              kept ? "its last good version stays" : "no version of it is in force");
    if (i < 0 && f->nrejects >= FLEET_REJECTS_LISTED)
        return; /* counted and logged, not listed */
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
    /* The whole key: fleet_blame() finds the document by it. */
    char whole[ETCD_KEY_MAX * 4 + 4];
    if (asprintf(&d.source, "etcd %s",
                 config_text_escape(whole, sizeof(whole), kv->key, ETCD_KEY_MAX)) < 0) {
        d.source = NULL;
        goto nomem;
    }
    struct config_doc cd = {d.source, name, kv->value, kv->value_len};
    size_t at = 0;
    long i = doc_search(f, name, &at);
    size_t bytes = f->doc_bytes - (i >= 0 ? f->docs[i].len : 0) + kv->value_len;
    if (i < 0 && f->ndocs >= FLEET_DOCS_MAX) {
        snprintf(err, sizeof(err), "%s: over %d pool documents", d.source, FLEET_DOCS_MAX);
    } else if (bytes > FLEET_DOC_BYTES_MAX) {
        snprintf(err, sizeof(err), "%s: the pool documents would hold over %u MiB", d.source,
                 FLEET_DOC_BYTES_MAX >> 20);
    } else if (config_check_doc(f->base_cfg, &cd, err, sizeof(err)) == 0) {
        err[0] = '\0';
    }
    if (err[0]) {
        free(d.source);
        reject_add(f, kv->key, err, kv->mod_revision, i >= 0);
        return false;
    }
    reject_drop(f, kv->key);
    if (i >= 0 && f->docs[i].len == kv->value_len && strcmp(f->docs[i].key, kv->key) == 0 &&
        memcmp(f->docs[i].text, kv->value, kv->value_len) == 0) {
        f->docs[i].gone = false;
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
        f->doc_bytes -= f->docs[i].len;
        doc_free(&f->docs[i]);
        f->docs[i] = d;
    } else {
        struct fleet_doc *v = realloc(f->docs, (f->ndocs + 1) * sizeof(*v));
        if (!v)
            goto nomem;
        f->docs = v;
        memmove(&f->docs[at + 1], &f->docs[at], (f->ndocs - at) * sizeof(*f->docs)); /* sorted */
        f->docs[at] = d;
        f->ndocs++;
    }
    f->doc_bytes += d.len;
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
        reject_add(f, key, why, 0, true);
        f->docs[i].gone = true; /* fleet_recheck_gone() deletes it once nothing needs it */
        return false;
    }
    reject_drop(f, key);
    if (i < 0)
        return false;
    f->doc_bytes -= f->docs[i].len;
    doc_free(&f->docs[i]);
    memmove(&f->docs[i], &f->docs[i + 1], (f->ndocs - (size_t)i - 1) * sizeof(*f->docs));
    f->ndocs--;
    f->changes++;
    log_info("fleet: %s deleted", key_text(k, sizeof(k), key));
    return true;
}

/* --- backend states --------------------------------------------------- */

char *fleet_state_text(int state, int weight)
{
    json_t *o = json_object();
    if (o && state >= 0 && state <= 2)
        json_object_set_new(o, "state", json_string(backend_admin_verb((enum backend_admin)state)));
    if (o && weight >= 0)
        json_object_set_new(o, "weight", json_integer(weight));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return text;
}

/* {"state": ..., "weight": ...}: 0, or -1 with why. */
static int state_parse(const char *text, size_t len, int *state, int *weight, char *err,
                       size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
    const char *key;
    int rc = 0;
    *state = *weight = -1;
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "must be a JSON object like {\"state\": \"drain\", \"weight\": 3}");
        json_decref(o);
        return -1;
    }
    json_object_foreach(o, key, v)
    {
        char q[64];
        if (strcmp(key, "state") == 0) {
            const char *w = json_string_value(v);
            for (int i = 0; w && i <= BACKEND_DISABLED && *state < 0; i++)
                if (strcmp(w, backend_admin_verb((enum backend_admin)i)) == 0)
                    *state = i;
            if (*state < 0) {
                snprintf(err, errlen, "state: must be \"drain\", \"disable\" or \"enable\"");
                rc = -1;
                break;
            }
        } else if (strcmp(key, "weight") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > LB_WEIGHT_MAX) {
                snprintf(err, errlen, "weight: must be an integer from 0 to %d", LB_WEIGHT_MAX);
                rc = -1;
                break;
            }
            *weight = (int)json_integer_value(v);
        } else {
            snprintf(err, errlen, "unknown key \"%s\" (\"state\" and \"weight\" are known)",
                     config_text_escape(q, sizeof(q), key, 12));
            rc = -1;
            break;
        }
    }
    if (rc == 0 && *state < 0 && *weight < 0) {
        snprintf(err, errlen, "must set \"state\", \"weight\" or both");
        rc = -1;
    }
    json_decref(o);
    return rc;
}

/* The state of key (states are sorted by key), or -1. */
static long state_search(const struct fleet *f, const char *key, size_t *at)
{
    return sorted_find(f->states, f->nstates, sizeof(*f->states), offsetof(struct fleet_state, key),
                       key, at);
}

static long state_find(const struct fleet *f, const char *key)
{
    return state_search(f, key, NULL);
}

const struct fleet_state *fleet_state_find(const struct fleet *f, const char *pool,
                                           const char *backend)
{
    for (size_t i = 0; f && i < f->nstates; i++)
        if (strcmp(f->states[i].pool, pool) == 0 && strcmp(f->states[i].backend, backend) == 0)
            return &f->states[i];
    return NULL;
}

static void state_free(struct fleet_state *st)
{
    free(st->key);
    free(st->pool);
    free(st->backend);
}

static void state_put(struct fleet *f, const struct etcd_kv *kv, const char *name)
{
    char k[1024], err[256];
    int state, weight;
    size_t at = 0;
    long i = state_search(f, kv->key, &at);
    int rc = state_parse(kv->value, kv->value_len, &state, &weight, err, sizeof(err));
    if (rc == 0 && i < 0 && f->nstates >= FLEET_STATES_MAX) {
        snprintf(err, sizeof(err), "over %d backend states", FLEET_STATES_MAX);
        rc = -1;
    }
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof(why), "etcd %s: %s", key_text(k, sizeof(k), kv->key), err);
        reject_add(f, kv->key, why, kv->mod_revision, i >= 0);
        return;
    }
    reject_drop(f, kv->key);
    if (i >= 0 && f->states[i].state == state && f->states[i].weight == weight) {
        f->states[i].mod_revision = kv->mod_revision;
        return;
    }
    if (i < 0) {
        struct fleet_state st = {0};
        const char *slash = strchr(name, '/');
        st.key = strdup(kv->key);
        st.pool = strndup(name, (size_t)(slash - name));
        st.backend = strdup(slash + 1);
        struct fleet_state *v = realloc(f->states, (f->nstates + 1) * sizeof(*v));
        if (!st.key || !st.pool || !st.backend || !v) {
            if (v)
                f->states = v;
            state_free(&st);
            log_error("fleet: %s: out of memory taking it", key_text(k, sizeof(k), kv->key));
            return;
        }
        f->states = v;
        memmove(&f->states[at + 1], &f->states[at], (f->nstates - at) * sizeof(*f->states));
        f->nstates++;
        i = (long)at;
        f->states[i] = st;
    }
    f->states[i].state = state;
    f->states[i].weight = weight;
    f->states[i].mod_revision = kv->mod_revision;
    f->changes++;
    log_info("fleet: %s taken (revision %" PRId64 ")", key_text(k, sizeof(k), kv->key),
             kv->mod_revision);
    if (f->state_changed)
        f->state_changed(f->arg, f->states[i].pool, f->states[i].backend, &f->states[i]);
}

static void state_delete(struct fleet *f, const char *key)
{
    char k[1024];
    reject_drop(f, key);
    long i = state_find(f, key);
    if (i < 0)
        return;
    struct fleet_state st = f->states[i];
    memmove(&f->states[i], &f->states[i + 1], (f->nstates - (size_t)i - 1) * sizeof(*f->states));
    f->nstates--;
    f->changes++;
    log_info("fleet: %s deleted", key_text(k, sizeof(k), key));
    if (f->state_changed)
        f->state_changed(f->arg, st.pool, st.backend, NULL);
    state_free(&st);
}

/* doc_delete() of docs[i] (its key and name copied first: the delete
 * frees them). */
static bool doc_delete_at(struct fleet *f, size_t i)
{
    char *key = strdup(f->docs[i].key), *name = strdup(f->docs[i].name);
    bool changed = key && name && doc_delete(f, key, name);
    free(key);
    free(name);
    return changed;
}

bool fleet_recheck_gone(struct fleet *f)
{
    bool changed = false;
    for (size_t i = f->ndocs; i-- > 0;) {
        if (!f->docs[i].gone)
            continue;
        changed |= doc_delete_at(f, i);
    }
    return changed;
}

/* The document whose source starts err ("etcd KEY:..."), which the loader
 * took but a later step refused (a host name that does not resolve, a
 * certificate that cannot be read): it goes back to the version last
 * applied (or goes), and is refused with err. */
bool fleet_blame(struct fleet *f, const char *err)
{
    for (size_t i = 0; i < f->ndocs; i++) {
        size_t n = strlen(f->docs[i].source);
        if (strncmp(err, f->docs[i].source, n) != 0 || err[n] != ':')
            continue;
        char *key = strdup(f->docs[i].key);
        if (!key)
            return false;
        const struct fleet_doc *was = NULL;
        for (size_t k = 0; k < f->napplied; k++)
            if (strcmp(f->applied[k].name, f->docs[i].name) == 0)
                was = &f->applied[k];
        if (was && was->len == f->docs[i].len &&
            memcmp(was->text, f->docs[i].text, was->len) == 0) {
            free(key); /* the version in force fails now: nothing older to go back to */
            return false;
        }
        char *text = was ? malloc(was->len + 1) : NULL;
        if (was && !text) {
            free(key);
            return false;
        }
        f->doc_bytes -= f->docs[i].len;
        if (was) {
            memcpy(text, was->text, was->len + 1);
            free(f->docs[i].text);
            f->docs[i].text = text;
            f->docs[i].len = was->len;
            f->docs[i].mod_revision = was->mod_revision;
            f->doc_bytes += was->len;
        } else {
            doc_free(&f->docs[i]);
            memmove(&f->docs[i], &f->docs[i + 1], (f->ndocs - i - 1) * sizeof(*f->docs));
            f->ndocs--;
        }
        reject_add(f, key, err, 0, was != NULL);
        free(key);
        return true;
    }
    return false;
}

int fleet_docset_take(const struct fleet *f, struct fleet_docset *out)
{
    out->n = 0;
    out->v = f->ndocs ? calloc(f->ndocs, sizeof(*out->v)) : NULL;
    if (f->ndocs && !out->v)
        return -1;
    for (; out->n < f->ndocs; out->n++) {
        const struct fleet_doc *d = &f->docs[out->n];
        struct fleet_doc *c = &out->v[out->n];
        c->len = d->len;
        c->mod_revision = d->mod_revision;
        if (!(c->name = strdup(d->name)) || !(c->text = malloc(d->len + 1))) {
            out->n++; /* freed with the rest */
            fleet_docset_free(out);
            return -1;
        }
        memcpy(c->text, d->text, d->len + 1);
    }
    return 0;
}

void fleet_docset_free(struct fleet_docset *set)
{
    for (size_t k = 0; set && k < set->n; k++)
        doc_free(&set->v[k]);
    if (set) {
        free(set->v);
        set->v = NULL;
        set->n = 0;
    }
}

void fleet_applied(struct fleet *f, struct fleet_docset *set)
{
    for (size_t k = 0; k < f->napplied; k++)
        doc_free(&f->applied[k]);
    free(f->applied);
    f->applied = set->v;
    f->napplied = set->n;
    set->v = NULL;
    set->n = 0;
}

static bool kv_apply(struct fleet *f, const struct etcd_kv *kv)
{
    const char *name;
    enum key_kind kind = key_kind(f, kv->key, kv->key_len, &name);
    if (kv->bad) { /* ours refused (the last good version stays), others ignored */
        if (kind != KEY_OTHER) {
            char k[1024], why[1200];
            snprintf(why, sizeof(why), "etcd %s: %s", key_text(k, sizeof(k), kv->key), kv->bad);
            reject_add(f, kv->key, why, kv->mod_revision,
                       kind == KEY_POOL ? doc_find(f, name) >= 0 : state_find(f, kv->key) >= 0);
        }
        return false;
    }
    switch (kind) {
    case KEY_POOL:
        return kv->deleted ? doc_delete(f, kv->key, name) : doc_put(f, kv, name);
    case KEY_STATE:
        if (kv->deleted)
            state_delete(f, kv->key);
        else
            state_put(f, kv, name);
        return false;
    case KEY_OTHER:
        break;
    }
    return false;
}

/* The keys of a full read, sorted: what is still there is found in
 * O(log n), so a read of n keys costs O(n log n) whatever was there. */
struct answer_keys {
    const char **v; /* NULL (out of memory): every key counts as there */
    size_t n;
};

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void answer_keys_init(struct answer_keys *ak, const struct etcd_msg *m)
{
    ak->n = m->nkvs;
    ak->v = m->nkvs ? malloc(m->nkvs * sizeof(*ak->v)) : NULL;
    for (size_t i = 0; ak->v && i < m->nkvs; i++)
        ak->v[i] = m->kvs[i].key;
    if (ak->v)
        qsort(ak->v, ak->n, sizeof(*ak->v), key_cmp);
}

static bool in_answer(const struct answer_keys *ak, const char *key)
{
    if (ak->n == 0)
        return false;
    return !ak->v || bsearch(&key, ak->v, ak->n, sizeof(*ak->v), key_cmp) != NULL;
}

/* A full read: the answer's pools replace the documents (a document the
 * loader refuses keeps its last good version; one gone is deleted), its
 * states the states, and refusals of keys gone go. */
static bool apply_full(struct fleet *f, const struct etcd_msg *m)
{
    struct answer_keys ak;
    bool changed = false;
    answer_keys_init(&ak, m);
    for (size_t i = f->nrejects; i-- > 0;) {
        if (in_answer(&ak, f->rejects[i].key))
            continue;
        char *key = strdup(f->rejects[i].key);
        if (key)
            reject_drop(f, key);
        free(key);
    }
    for (size_t i = f->ndocs; i-- > 0;) {
        if (i >= f->ndocs || in_answer(&ak, f->docs[i].key))
            continue;
        changed |= doc_delete_at(f, i);
    }
    for (size_t i = f->nstates; i-- > 0;) {
        if (i >= f->nstates || in_answer(&ak, f->states[i].key))
            continue;
        char *key = strdup(f->states[i].key);
        if (key)
            state_delete(f, key);
        free(key);
    }
    /* After the deletes, so that what goes no longer counts against the
     * bounds of what comes. */
    for (size_t i = 0; i < m->nkvs; i++)
        changed |= kv_apply(f, &m->kvs[i]);
    free(ak.v);
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
        req ? http_client_start(f->base, (const struct sockaddr *)&e->addr, e->addrlen,
                                f->tls[f->ep], req, len, f->conf.timeout_ms, whole, ops, f, err,
                                sizeof(err))
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
    /* A probe. etcd behind what lb has seen: another cluster, or one
     * restored from an older snapshot: everything is read again. */
    if (m.revision < f->revision) {
        log_warn("fleet: etcd %s is at revision %" PRId64 ", before the %" PRId64
                 " lb has seen (restored, or another cluster): reading everything again",
                 endpoint(f)->url, m.revision, f->revision);
        etcd_msg_free(&m);
        cancel_all(f);
        f->need_full = true;
        f->phase = FLEET_WAITING;
        schedule(f, 0);
        return;
    }
    int64_t newest = m.nkvs > 0 ? m.kvs[0].mod_revision : 0;
    etcd_msg_free(&m);
    mark_ok(f);
    if (f->phase == FLEET_PROBING) {
        start_watch(f);
        return;
    }
    /* A change of the prefix the watch has not brought, probe after probe
     * (one may be on its way): the stream is dead without a sign. */
    f->probes_behind = newest > f->revision ? f->probes_behind + 1 : 0;
    if (f->probes_behind >= PROBES_BEHIND_MAX) {
        char why[200];
        snprintf(why, sizeof(why),
                 "watch: silent while etcd has revision %" PRId64 " of the prefix (lb has %" PRId64
                 ")",
                 newest, f->revision);
        fleet_fault(f, why);
        return;
    }
    schedule(f, PROBE_EVERY_MS);
}

static const struct http_client_ops req_ops = {NULL, on_req_body, on_req_done};

/* One line of the watch stream: one message. 0, or -1 after a fault. */
static int watch_message(struct fleet *f, const char *line, size_t len)
{
    struct etcd_msg m;
    char e[512];
    int rc = etcd_msg_parse(line, len, ETCD_WATCH, &m, e, sizeof(e));
    if (rc < 0 || (m.code != 0 && !(m.canceled && m.compact_revision > 0))) {
        char why[600];
        snprintf(why, sizeof(why), "watch: %s", rc < 0 ? e : m.error);
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
        watch_established(f);
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
    f->probes_behind = 0;
    f->watch_started_ms = now_unix_ms();
    f->watch =
        post(f, "/v3/watch", etcd_watch_body(f->conf.prefix, f->revision + 1), 0, &watch_ops);
    if (!f->watch)
        return;
    /* A peer that vanishes without a reset (a middlebox that forgot the
     * idle stream) is found by TCP, the rest by the probes. */
    http_client_keepalive(f->watch, 10, 5, 3);
    schedule(f, PROBE_EVERY_MS);
}

/* A host name endpoint's answer: the connect goes on from the timer
 * (an answer may come inside ares_getaddrinfo(), from /etc/hosts). */
static void on_endpoint_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct fleet *f = arg;
    if (status == ARES_EDESTRUCTION) { /* the resolver is being freed */
        ares_freeaddrinfo(ai);
        return;
    }
    f->resolving = false;
    struct lb_fleet_endpoint *e = &f->conf.endpoints[f->ep];
    const struct ares_addrinfo_node *pick = NULL;
    for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n; n = n->ai_next) {
        if (n->ai_family == AF_INET && n->ai_addrlen <= sizeof(e->addr)) {
            pick = n;
            break;
        }
        if (n->ai_family == AF_INET6 && n->ai_addrlen <= sizeof(e->addr) && !pick)
            pick = n;
    }
    if (status != ARES_SUCCESS || !pick) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", e->host,
                 status == ARES_SUCCESS ? "no IPv4 or IPv6 address" : ares_strerror(status));
        ares_freeaddrinfo(ai);
        fleet_fault(f, why);
        return;
    }
    memset(&e->addr, 0, sizeof(e->addr));
    memcpy(&e->addr, pick->ai_addr, pick->ai_addrlen);
    e->addrlen = pick->ai_addrlen;
    config_address_set_port(&e->addr, e->port);
    /* Asked again after its TTL (at least 5 s, at most 5 min), and after
     * any fault of the endpoint. */
    int ttl = pick->ai_ttl < 5 ? 5 : pick->ai_ttl > 300 ? 300 : pick->ai_ttl;
    f->ep_expires_ms[f->ep] = now_unix_ms() + (int64_t)ttl * 1000;
    ares_freeaddrinfo(ai);
    schedule(f, 0);
}

/* Asks for the endpoint in use's name; 0, or -1 after a fault. */
static int resolve_endpoint(struct fleet *f)
{
    char err[256];
    if (!f->res && !(f->res = resolver_new(f->base, f->resolvers, err, sizeof(err)))) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve: %s", err);
        fleet_fault(f, why);
        return -1;
    }
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    f->phase = FLEET_WAITING;
    f->resolving = true;
    ares_getaddrinfo(resolver_channel(f->res), f->conf.endpoints[f->ep].host, NULL, &hints,
                     on_endpoint_answer, f);
    resolver_kick(f->res);
    return 0;
}

static void fleet_connect(struct fleet *f)
{
    cancel_all(f);
    const struct lb_fleet_endpoint *e = endpoint(f);
    if (f->resolving)
        return; /* its answer connects */
    if (e->name && (e->addrlen == 0 || now_unix_ms() >= f->ep_expires_ms[f->ep])) {
        resolve_endpoint(f);
        return;
    }
    if (f->need_full || !f->synced) {
        f->phase = FLEET_READING;
        f->req = post(f, "/v3/kv/range", etcd_range_body(f->conf.prefix, 0), 1, &req_ops);
    } else {
        f->phase = FLEET_PROBING;
        f->req = post(f, "/v3/kv/range", etcd_probe_body(f->conf.prefix), 1, &req_ops);
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
    if (!f->watch_created && now_unix_ms() - f->watch_started_ms >= f->conf.timeout_ms) {
        char why[100];
        snprintf(why, sizeof(why), "watch: not set up within %u ms", f->conf.timeout_ms);
        fleet_fault(f, why);
        return;
    }
    if (f->req) { /* the last probe is still out: its own timeout ends it */
        schedule(f, PROBE_EVERY_MS);
        return;
    }
    f->req = post(f, "/v3/kv/range", etcd_probe_body(f->conf.prefix), 1, &req_ops);
}

/* --- writes ------------------------------------------------------------ */

struct fleet_put {
    struct fleet *f;
    struct fleet_put *next;
    struct http_client *c;
    char *body;   /* etcd's put body */
    size_t tries; /* endpoints tried */
    size_t first; /* the endpoint tried first: the one in use when the write began */
    size_t ep;    /* the endpoint of this try */
    char *buf;    /* the answer */
    size_t len, cap;
    char error[300]; /* the last try's fault */
    void (*done)(void *arg, int64_t revision, const char *err);
    void *arg;
};

static void put_unlink(struct fleet_put *p)
{
    for (struct fleet_put **pp = &p->f->puts; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
}

static void put_free(struct fleet_put *p)
{
    put_unlink(p);
    http_client_cancel(p->c);
    free(p->body);
    free(p->buf);
    free(p);
}

static void put_finish(struct fleet_put *p, int64_t rev, const char *err)
{
    void (*done)(void *, int64_t, const char *) = p->done;
    void *arg = p->arg;
    char e[sizeof(p->error)];
    snprintf(e, sizeof(e), "%s", err ? err : "");
    put_free(p);
    done(arg, rev, err ? e : NULL);
}

static int put_try(struct fleet_put *p);

static int on_put_body(void *arg, const char *b, size_t n)
{
    struct fleet_put *p = arg;
    if (buf_add(&p->buf, &p->len, &p->cap, b, n) == 0)
        return 0;
    p->c = NULL;
    snprintf(p->error, sizeof(p->error), "%s: answer too large", p->f->conf.endpoints[p->ep].url);
    p->len = 0; /* the next endpoint's answer starts afresh */
    if (put_try(p) < 0)
        put_finish(p, 0, p->error);
    return -1;
}

static void on_put_done(void *arg, int status, const char *err)
{
    struct fleet_put *p = arg;
    struct etcd_msg m;
    char e[256];
    p->c = NULL;
    const char *url = p->f->conf.endpoints[p->ep].url;
    if (err) {
        snprintf(p->error, sizeof(p->error), "%s: %s", url, err);
    } else if (etcd_msg_parse(p->buf ? p->buf : "", p->len, ETCD_PUT, &m, e, sizeof(e)) < 0) {
        snprintf(p->error, sizeof(p->error), "%s: HTTP status %d: %s", url, status, e);
    } else {
        if (m.code == 0 && status == 200) {
            int64_t rev = m.revision;
            etcd_msg_free(&m);
            put_finish(p, rev, NULL);
            return;
        }
        snprintf(p->error, sizeof(p->error), "%s: %s", url,
                 m.code ? m.error : "unexpected HTTP status");
        etcd_msg_free(&m);
    }
    p->len = 0;
    if (put_try(p) < 0)
        put_finish(p, 0, p->error);
}

static const struct http_client_ops put_ops = {NULL, on_put_body, on_put_done};

/* The next endpoint, starting with the one in use: 0, or -1 when every
 * one was tried (p->error says the last fault). */
static int put_try(struct fleet_put *p)
{
    struct fleet *f = p->f;
    while (p->tries < f->conf.nendpoints) {
        p->ep = (p->first + p->tries++) % f->conf.nendpoints;
        const struct lb_fleet_endpoint *e = &f->conf.endpoints[p->ep];
        if (e->addrlen == 0) { /* a host name not resolved yet */
            snprintf(p->error, sizeof(p->error), "%s: %s not resolved yet", e->url, e->host);
            continue;
        }
        size_t len;
        char *req = http_client_post(e->authority, "/v3/kv/put", f->conf.token, p->body, &len);
        char err[256];
        if (!req) {
            snprintf(p->error, sizeof(p->error), "out of memory");
            return -1;
        }
        p->c =
            http_client_start(f->base, (const struct sockaddr *)&e->addr, e->addrlen, f->tls[p->ep],
                              req, len, f->conf.timeout_ms, 1, &put_ops, p, err, sizeof(err));
        free(req);
        if (p->c)
            return 0;
        snprintf(p->error, sizeof(p->error), "%s: %s", e->url, err);
    }
    return -1;
}

struct fleet_put *fleet_put_state(struct fleet *f, const char *pool, const char *backend,
                                  const char *value,
                                  void (*done)(void *arg, int64_t revision, const char *err),
                                  void *arg, char *err, size_t errlen)
{
    struct fleet_put *p = calloc(1, sizeof(*p));
    char *key = NULL;
    if (p && asprintf(&key, "%sstate/%s/%s", f->conf.prefix, pool, backend) < 0)
        key = NULL;
    if (key)
        p->body = etcd_put_body(key, value, strlen(value));
    free(key);
    if (!p || !p->body) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->f = f;
    p->first = f->ep;
    p->done = done;
    p->arg = arg;
    p->next = f->puts;
    f->puts = p;
    if (put_try(p) < 0) {
        snprintf(err, errlen, "%s", p->error);
        put_free(p);
        return NULL;
    }
    return p;
}

void fleet_put_cancel(struct fleet_put *p)
{
    if (p)
        put_free(p);
}

/* --- setup --------------------------------------------------------------- */

static void conf_free(struct lb_fleet_conf *c)
{
    for (size_t i = 0; i < c->nendpoints; i++) {
        free(c->endpoints[i].url);
        free(c->endpoints[i].authority);
        free(c->endpoints[i].host);
    }
    free(c->endpoints);
    free(c->prefix);
    free(c->token);
    memset(c, 0, sizeof(*c));
}

/* The fleet's own copy: strings owned, "tls" left out (its contexts are
 * built from the config, fleet_tls_build()). */
static int conf_copy(struct lb_fleet_conf *dst, const struct lb_fleet_conf *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->timeout_ms = src->timeout_ms;
    dst->start_timeout_ms = src->start_timeout_ms;
    dst->enabled = src->enabled;
    dst->endpoints = calloc(src->nendpoints, sizeof(*dst->endpoints));
    dst->prefix = strdup(src->prefix);
    dst->token = src->token ? strdup(src->token) : NULL;
    int ok = dst->endpoints && dst->prefix && (!src->token || dst->token);
    for (size_t i = 0; ok && i < src->nendpoints; i++) {
        const struct lb_fleet_endpoint *s = &src->endpoints[i];
        struct lb_fleet_endpoint *d = &dst->endpoints[i];
        dst->nendpoints++;
        d->addr = s->addr;
        d->addrlen = s->addrlen;
        d->tls = s->tls;
        d->name = s->name;
        d->port = s->port;
        d->url = strdup(s->url);
        d->authority = strdup(s->authority);
        d->host = strdup(s->host);
        ok = d->url && d->authority && d->host;
    }
    if (!ok) {
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

static void tls_drop(struct tls_ctx **v)
{
    for (size_t i = 0; i < LB_FLEET_ENDPOINTS_MAX; i++) {
        tls_ctx_unref(v[i]);
        v[i] = NULL;
    }
}

/* The https endpoints' contexts of cfg into v. 0, or -1 with err. */
static int fleet_tls_build(struct tls_ctx **v, const struct lb_config *cfg, char *err,
                           size_t errlen)
{
    memset(v, 0, LB_FLEET_ENDPOINTS_MAX * sizeof(*v));
    for (size_t i = 0; i < cfg->fleet.nendpoints; i++) {
        v[i] = tls_conf_fleet(cfg, i, err, errlen);
        if (!v[i] && err[0]) {
            tls_drop(v);
            return -1;
        }
    }
    return 0;
}

int fleet_init(struct fleet *f, struct event_base *base, const struct lb_config *cfg,
               void (*changed)(void *arg), void *arg, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->base = base;
    f->base_cfg = cfg;
    f->changed = changed;
    f->arg = arg;
    f->need_full = true;
    if (fleet_tls_build(f->tls, cfg, err, errlen) < 0)
        return -1;
    if (conf_copy(&f->conf, &cfg->fleet) < 0 || !(f->timer = evtimer_new(base, on_timer, f)) ||
        (cfg->resolvers && !(f->resolvers = strdup(cfg->resolvers)))) {
        conf_free(&f->conf);
        tls_drop(f->tls);
        if (f->timer)
            event_free(f->timer);
        f->timer = NULL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void fleet_run(struct fleet *f)
{
    fleet_connect(f);
}

int fleet_configure(struct fleet *f, const struct lb_config *cfg, char *err, size_t errlen)
{
    const struct lb_fleet_conf *conf = &cfg->fleet;
    bool same_resolvers = !f->resolvers == !cfg->resolvers &&
                          (!cfg->resolvers || strcmp(f->resolvers, cfg->resolvers) == 0);
    if (conf_same(&f->conf, conf) && same_resolvers) {
        /* New TLS contexts (the files may be new) for the connections
         * from now on; open ones and writes under way keep theirs. */
        struct tls_ctx *tls[LB_FLEET_ENDPOINTS_MAX];
        if (fleet_tls_build(tls, cfg, err, errlen) < 0)
            return -1;
        tls_drop(f->tls);
        memcpy(f->tls, tls, sizeof(tls));
        f->conf.start_timeout_ms = conf->start_timeout_ms;
        return 0;
    }
    struct lb_fleet_conf c;
    struct tls_ctx *tls[LB_FLEET_ENDPOINTS_MAX];
    if (fleet_tls_build(tls, cfg, err, errlen) < 0)
        return -1;
    if (conf_copy(&c, conf) < 0) {
        tls_drop(tls);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *resolvers = cfg->resolvers ? strdup(cfg->resolvers) : NULL;
    if (cfg->resolvers && !resolvers) {
        conf_free(&c);
        tls_drop(tls);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bool other_prefix = strcmp(c.prefix, f->conf.prefix) != 0;
    bool other_endpoints = c.nendpoints != f->conf.nendpoints;
    for (size_t i = 0; !other_endpoints && i < c.nendpoints; i++)
        other_endpoints = strcmp(c.endpoints[i].url, f->conf.endpoints[i].url) != 0;
    while (f->puts) /* their endpoints go */
        put_finish(f->puts, 0, "the fleet's settings changed (SIGHUP); write again");
    cancel_all(f);         /* their clients hold references to the old contexts, dropped now */
    resolver_free(f->res); /* a lookup under way ends (EDESTRUCTION) */
    f->res = NULL;
    f->resolving = false;
    free(f->resolvers);
    f->resolvers = resolvers;
    memset(f->ep_expires_ms, 0, sizeof(f->ep_expires_ms));
    conf_free(&f->conf);
    f->conf = c;
    tls_drop(f->tls);
    memcpy(f->tls, tls, sizeof(tls));
    f->ep = 0;
    f->failed_in_round = 0;
    if (other_prefix || other_endpoints) /* another cluster has other revisions */
        f->need_full = true;
    log_info("fleet: following etcd %s%s with new settings", f->conf.endpoints[0].url,
             f->conf.nendpoints > 1 ? " (and others)" : "");
    fleet_connect(f);
    return 0;
}

void fleet_free(struct fleet *f)
{
    resolver_free(f->res); /* first: its callbacks end with EDESTRUCTION */
    f->res = NULL;
    free(f->resolvers);
    while (f->puts)
        put_finish(f->puts, 0, "the fleet was turned off");
    cancel_all(f);
    if (f->timer)
        event_free(f->timer);
    f->timer = NULL;
    for (size_t i = 0; i < f->ndocs; i++)
        doc_free(&f->docs[i]);
    free(f->docs);
    for (size_t i = 0; i < f->napplied; i++)
        doc_free(&f->applied[i]);
    free(f->applied);
    for (size_t i = 0; i < f->nrejects; i++) {
        free(f->rejects[i].key);
        free(f->rejects[i].error);
    }
    free(f->rejects);
    for (size_t i = 0; i < f->nstates; i++)
        state_free(&f->states[i]);
    free(f->states);
    free(f->buf);
    free(f->wbuf);
    conf_free(&f->conf);
    tls_drop(f->tls);
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
