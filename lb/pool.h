/* pool: the runtime side of a pool and its backends (live state, counters),
 * kept apart from the immutable config. A pool's strategy (lb/balance/)
 * picks its backends; a session's upstream calls pool_pick() and never
 * knows which strategy answers. */
#ifndef LB_POOL_H
#define LB_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config/config.h"
#include "health/health.h"

/* What the operator asked for a backend (admin API). */
enum backend_admin {
    BACKEND_ENABLED,  /* normal: health decides */
    BACKEND_DRAINING, /* no new sessions; open ones go on */
    BACKEND_DISABLED, /* no new sessions; open ones were closed */
};

/* Upper bounds (seconds) of the health-check duration histogram buckets. */
#define LB_CHECK_BUCKETS 12
extern const double lb_check_bucket_s[LB_CHECK_BUCKETS];

/* HTTP status classes 1xx..5xx: counters indexed by status / 100 - 1. */
#define LB_HTTP_CLASSES 5
/* Upper bounds (seconds) of the HTTP request duration histogram buckets. */
#define LB_REQ_BUCKETS 14
extern const double lb_req_bucket_s[LB_REQ_BUCKETS];

/* How many backends one session may try (first pick + retries). */
#define LB_MAX_TRIES 16

struct pool;
struct tls_ctx;
struct session;
struct upstream;
struct balance_ops;
struct pick_ctx;
struct event;
struct event_base;

struct backend {
    struct pool *pool;
    char *id;      /* name, or address as written: identity within the pool */
    char *name;    /* NULL when unnamed */
    char *address; /* as written */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned index;      /* position in pool->backends (config order) */
    unsigned weight;     /* 0..LB_WEIGHT_MAX, from the config (or the admin) */
    unsigned eff_weight; /* what strategies balance with: weight, ramped during slow start */
    bool up;             /* false: down or ejected (health); never picked */

    uint64_t active;    /* open sessions using this backend (http: requests in exchange) */
    unsigned max_conns; /* "max_connections": at active + reserved, no new session; 0: none */
    unsigned reserved;  /* slots handed to queued sessions that have not connected yet */
    uint64_t total;     /* sessions ever connected */
    uint64_t failed;    /* failed connect attempts */
    uint64_t bytes_in;  /* bytes received from the backend */
    uint64_t bytes_out; /* bytes sent to the backend */
    /* http mode: responses clients got to requests sent to it (lb's own 502
     * and 504 for it included), by class; and connections kept idle for reuse
     * (lb/http_reuse.h). */
    uint64_t http_status[LB_HTTP_CLASSES];
    uint64_t reused;                          /* requests that went on an idle connection */
    TAILQ_HEAD(backend_idle, http_idle) idle; /* newest first */
    unsigned nidle;
    unsigned refs; /* pool + each session holding it */

    /* Health (lb/pool_health.c): up == !health_down && !ejected. */
    struct health_check *check; /* active checks; NULL without */
    struct health_passive passive;
    struct event *eject_timer; /* ends a passive ejection (no active checks) */
    struct event *ramp_timer;  /* slow start steps */
    uint64_t up_since_ms;      /* monotonic, when it last came up */
    bool health_down;          /* the active checks say down */
    bool ejected;              /* passive ejection without active checks */
    /* Health check durations, for the Prometheus histogram. */
    uint64_t check_buckets[LB_CHECK_BUCKETS]; /* count <= lb_check_bucket_s[i] */
    uint64_t check_count;
    double check_sum_s;

    enum backend_admin admin; /* operator's override (admin API) */
    bool weight_overridden;   /* the admin set weight: a reload keeps it */
    bool removed;             /* dropped by a reload: no health, no passive ejection */
    /* DNS discovery (lb/discovery.h): the name it came from (NULL: the
     * file's), and its SRV priority: while a backend of a lower priority
     * is up, the others stand by (never picked), as HAProxy's backup
     * servers do. */
    char *dns;
    unsigned priority;
    bool standby;
    LIST_HEAD(backend_upstreams, upstream) upstreams; /* sessions' upstreams on it */
};

struct pool {
    char *name;
    enum lb_strategy strategy;
    const struct balance_ops *ops;
    void *state; /* strategy-private; NULL before pool_build(), or retired */
    struct backend **backends;
    size_t nbackends;
    size_t navailable; /* backends with backend_available() */
    unsigned connect_timeout_ms;
    unsigned retries;
    unsigned hash_table_size;
    struct lb_keepalive_conf keepalive; /* for the sockets to backends (traffic only) */
    enum lb_proxy_version send_proxy;   /* PROXY header written to each backend connection */
    unsigned refs;
    /* A reload put a newer generation in its place (pool_retire()): no
     * strategy state, no backends of its own left to pick; sessions that
     * hold it only end, connecting ones move to the new generation. */
    bool retired;
    /* Its backends have more than one SRV priority: pool_tiers() keeps
     * standby right as they come and go. */
    bool tiers;

    /* Health (lb/pool_health.c). */
    struct event_base *base; /* NULL: no health (unit tests) */
    bool has_checks;         /* active checks run on every backend */
    struct lb_passive_conf passive;
    unsigned slow_start_ms;
    bool empty_logged; /* "has no available backend" was logged */
    uint64_t rejected; /* clients closed at once: no backend available */
    /* Sessions waiting for a slot while every available backend is full
     * ("queue"), oldest first; the queue belongs to this generation (a
     * reload moves what waits to the next one). The pool only holds it:
     * lb/upstream.c queues, serves and times out. */
    TAILQ_HEAD(pool_queue, upstream) queue;
    unsigned nqueued;
    unsigned queue_max;        /* 0: no queue, a session finding every backend full is refused */
    unsigned queue_timeout_ms; /* a queued session is refused after it */
    uint64_t queue_max_seen;   /* the longest the queue has been */
    uint64_t queue_timeouts;   /* queued sessions refused after queue_timeout_ms */
    uint64_t queue_full;       /* sessions refused at once: every backend full, queue full */
    /* http mode: request durations (head complete to response end). */
    uint64_t req_buckets[LB_REQ_BUCKETS]; /* count <= lb_req_bucket_s[i], cumulative */
    uint64_t req_count;
    double req_sum_s;
    /* http mode: idle backend connections kept for reuse, per backend. */
    unsigned reuse_max_idle;
    unsigned reuse_idle_timeout_ms;
    unsigned response_timeout_ms;
    /* TLS (lb/tls_conf.h): to the backends (NULL: plain TCP), and for the
     * https checks; one reference each, set after pool_prepare(). */
    struct tls_ctx *tls;
    struct tls_ctx *check_tls;
};

static inline bool backend_available(const struct backend *b)
{
    return b->up && b->eff_weight > 0 && !b->standby;
}

/* At its max_connections (counting the slots reserved for queued
 * sessions): the strategy's pick skips it. */
static inline bool backend_full(const struct backend *b)
{
    return b->max_conns > 0 && b->active + b->reserved >= b->max_conns;
}

/* Builds a pool (with its strategy state) from its config; NULL on ENOMEM. */
struct pool *pool_create(const struct lb_pool_conf *conf);
struct pool *pool_prepare(const struct lb_pool_conf *conf);
void pool_adopt_backend(struct pool *pool, size_t i, struct backend *old);
/* Lower-level constructors, used by pool_create and by unit tests. */
struct pool *pool_new(const char *name, enum lb_strategy strategy);
struct backend *pool_add_backend(struct pool *pool, const char *id, const char *name,
                                 const char *address, const struct sockaddr *addr,
                                 socklen_t addrlen, unsigned weight);
int pool_build(struct pool *pool); /* strategy init once all backends are added */
/* Drops one pool reference (refs starts at 1 for the pool's owner; each
 * listener and session takes one with refs++); the last frees the strategy
 * state and the pool's reference to each backend. The pool knows nothing of
 * health: whoever started a backend's checks stops them before its last
 * reference goes (lb/pool_health.h). */
void pool_release(struct pool *pool);
/* A reload replaced pool by its next generation, which has adopted the
 * backends that stay: pool is marked retired and its strategy state freed
 * (it never picks again). What is left in it was removed. */
void pool_retire(struct pool *pool);

/* An available backend with room (not backend_full()), as the pool's
 * strategy answers (see balance_ops.pick) with the full ones skipped: each
 * full one the strategy offers is taken as tried and the strategy asked
 * again. NULL when none is available, or when every available one is
 * full (pool_has_available() tells which). */
struct backend *pool_pick(struct pool *pool, const struct pick_ctx *ctx);
/* True when pool can pick at all: not retired, a strategy state, and an
 * available backend (full or not). */
bool pool_has_available(const struct pool *pool);
void pool_conn_start(struct pool *pool, struct backend *b);
void pool_conn_end(struct pool *pool, struct backend *b);
/* What a backend that becomes available calls when its pool has sessions
 * queued (lb/upstream.c serves them; the pool knows nothing of sessions).
 * Set once at start; NULL (unit tests): nothing. */
void pool_set_room_hook(void (*fn)(struct pool *pool));
/* Changes b's state and tells the strategy. 0, or -1 when the strategy could
 * not rebuild (state unchanged). */
int pool_set_backend_up(struct pool *pool, struct backend *b, bool up);
/* Sets weight and eff_weight (a new weight applies in full at once). */
int pool_set_backend_weight(struct pool *pool, struct backend *b, unsigned weight);
/* Sets eff_weight alone (slow start), at most weight and at least 1 when
 * weight is not 0. */
int pool_set_backend_eff_weight(struct pool *pool, struct backend *b, unsigned eff_weight);

/* Drops one reference to b (the pool's own or a session's); the last one
 * frees it. A session that outlives its pool finds b->pool NULL. */
void backend_release(struct backend *b);

#endif
