/* discovery: backends from DNS ("dns" entries of a pool's backends; docs
 * /scale-out.md). Each entry asks its name (A, AAAA or SRV; SRV targets'
 * addresses from the answer's additional records, else asked in turn) on
 * a resolver of its own (lb/io/resolver.h), again after max(refresh_ms,
 * the answer's TTL), and keeps the last good answer: a failure or an
 * empty answer changes nothing but the entry's error, logged once per
 * transition. A changed answer calls the set's changed hook with the
 * pool's name, and the runtime rebuilds that pool like a reload would
 * (lb/reload.c: reload_pool()): backends that stay keep their state by
 * id (the address, "10.0.0.5:8080"), new ones start fresh, removed ones
 * drain.
 * Entries live outside the config's generations: a reload keeps an entry
 * whose pool and key (type, name, port, resolvers) it still has, with its
 * answer; a new entry gets its first answer (or failure) before the
 * reload commits, so a pool never starts empty for lack of waiting. */
#ifndef LB_DISCOVERY_H
#define LB_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"

struct event_base;
struct event;
struct pool;
struct resolver;

/* "[ffff:...:ffff]:65535" */
#define DISCOVERY_ID_MAX 56

struct discovery_backend {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned weight;   /* 1..LB_WEIGHT_MAX */
    unsigned priority; /* SRV; 0 for A and AAAA */
    char id[DISCOVERY_ID_MAX];
};

struct discovery_set;

struct discovery {
    struct discovery_set *set;
    char *pool;              /* the pool's name */
    char *key;               /* lb_dns_conf.key */
    struct lb_dns_conf conf; /* a copy: name, type, port, weight, ... (strings owned) */
    struct resolver *res;
    struct event *timer; /* the next question */
    /* The last good answer, sorted by address (dns_answer_finish()). */
    struct discovery_backend *backends;
    size_t nbackends;
    bool answered;           /* a good answer came once */
    bool failing;            /* the last question failed (logged once) */
    bool asking;             /* a question (or its SRV targets' lookups) is out */
    bool fresh;              /* made by discovery_prepare(), not committed yet */
    bool kept;               /* discovery_prepare() found it in the new config */
    bool closing;            /* being freed: c-ares callbacks do nothing */
    unsigned ttl_s;          /* of the last good answer */
    int64_t last_unix_ms;    /* the last answer or failure */
    int64_t last_ok_unix_ms; /* the last good answer; 0: none */
    char error[256];         /* the last failure's reason; "" after a good answer */
    uint64_t resolutions, failures, changes;
    /* A question in progress. */
    struct dns_answer *pending;
    size_t targets_left;
};

struct discovery_set {
    struct event_base *base;
    struct discovery **v;
    size_t n;
    /* A committed entry's answer changed. */
    int (*changed)(void *arg, const struct discovery *d); /* -1: not taken (retried) */
    void *arg;
    /* discovery_prepare()'s wait: every fresh entry has had its first
     * answer or failure; run from the loop. */
    void (*ready)(void *arg);
    void *ready_arg;
    size_t waiting;
    struct event *ready_ev;
};

void discovery_set_init(struct discovery_set *set, struct event_base *base,
                        int (*changed)(void *arg, const struct discovery *d), void *arg);
void discovery_set_free(struct discovery_set *set);

/* Matches cfg's entries with the set's: those it keeps are marked, new
 * ones are made (fresh) and asked. Returns the number of fresh entries
 * (0: ready is never called), after which ready(arg) runs once every one
 * has its first result; or -1 with err (out of memory, a resolver that
 * could not be made), the set unchanged. */
long discovery_prepare(struct discovery_set *set, const struct lb_config *cfg,
                       void (*ready)(void *arg), void *arg, char *err, size_t errlen);
/* cfg is in force: entries it no longer has are freed, fresh ones kept,
 * the kept ones take its settings (weight, limits, refresh). */
void discovery_commit(struct discovery_set *set, const struct lb_config *cfg);
/* The config was not applied: fresh entries are freed, marks cleared. */
void discovery_abort(struct discovery_set *set);

/* Adds to pool (before pool_build()) the backends of each of pc's "dns"
 * entries, in entry order, after pc's own: a backend whose id the pool
 * already has (a file backend, another entry's) is skipped, and so is
 * any beyond what an iphash pool's table can hold. 0, or -1 on ENOMEM. */
int discovery_fill_pool(const struct discovery_set *set, struct pool *pool,
                        const struct lb_pool_conf *pc);
/* The entry of pool POOL with key KEY, or NULL. */
struct discovery *discovery_find(const struct discovery_set *set, const char *pool,
                                 const char *key);
const char *discovery_type_name(enum lb_dns_type t);

#endif
