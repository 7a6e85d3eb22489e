/* fleet: lb follows a desired state kept in etcd (docs/fleet.md). Under
 * the config's fleet.prefix, each key "pools/<name>" holds one pool in
 * the file's JSON shape. The fleet reads them all (a linearizable range),
 * then watches the prefix from the next revision, and keeps the last good
 * version of each document: one that the config loader refuses is logged
 * with its key and shown in the status, and the version before it stays.
 * Each change of the documents calls the changed hook, and the runtime
 * applies file + documents like a reload (lb/reload.c: reload_fleet()).
 *
 * Faults: the fleet talks to one endpoint at a time, over lb/http_client.c.
 * A connection that fails, an error answer, or a liveness probe (a
 * linearizable count of the prefix, every second) unanswered within
 * timeout_ms moves it to the next endpoint, where the watch resumes from
 * the last revision seen: no change is missed or applied twice. A watch
 * whose revision was compacted away reads everything again. When no
 * endpoint answers for DOWN_AFTER_MS (fleet.c; longer than an election),
 * what is in force stays; that is logged once, and the state says
 * "unreachable" until one answers again. */
#ifndef LB_FLEET_H
#define LB_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct event_base;
struct event;
struct http_client;
struct resolver;
struct tls_ctx;

/* A document as read from etcd. */
struct fleet_doc {
    char *key;    /* the whole key: "/lb/prod/pools/web" */
    char *name;   /* its last part: "web" */
    char *source; /* "etcd /lb/prod/pools/web", for the loader's messages */
    char *text;   /* the value */
    size_t len;
    int64_t mod_revision;
    bool gone; /* deleted in etcd, kept because a file listener names it */
};

/* An operator's state for one backend, PREFIX"state/<pool>/<backend>":
 * {"state": "drain" | "disable" | "enable", "weight": 0..256}, either or
 * both. */
struct fleet_state {
    char *key;
    char *pool;
    char *backend; /* the backend's id: its name, or its address */
    int state;     /* enum backend_admin (lb/pool.h); -1: not set */
    int weight;    /* -1: not set */
    int64_t mod_revision;
};

/* A document refused: its key and the loader's message. */
struct fleet_reject {
    char *key;
    char *error;
    int64_t mod_revision;
};

enum fleet_phase {
    FLEET_READING,  /* the full read (range) */
    FLEET_PROBING,  /* a new endpoint's liveness probe before the watch resumes */
    FLEET_WATCHING, /* the watch is set up (and probed every second) */
    FLEET_WAITING,  /* every endpoint failed: the next round starts soon */
};

struct fleet {
    struct event_base *base;
    /* A copy of the config's fleet block (strings owned). */
    struct lb_fleet_conf conf;
    struct tls_ctx *tls[LB_FLEET_ENDPOINTS_MAX]; /* per endpoint: https; NULL: http */
    /* Endpoints given by host name: resolved on the loop (c-ares, the
     * config's "resolvers") into conf.endpoints[i].addr before a connect,
     * again after the answer's TTL and after each fault of the endpoint. */
    struct resolver *res; /* made on first use */
    char *resolvers;      /* the config's, c-ares' CSV; NULL: the system's */
    bool resolving;       /* a lookup for the endpoint in use is out */
    int64_t ep_expires_ms[LB_FLEET_ENDPOINTS_MAX];
    /* The config whose pools the documents are checked against (its file
     * folder, its resolvers); set by the owner, not owned. */
    const struct lb_config *base_cfg;
    size_t ep;              /* the endpoint in use */
    size_t failed_in_round; /* endpoints failed in a row */
    enum fleet_phase phase;
    bool synced; /* a full read has been done */
    bool up;     /* the endpoint in use answers */
    bool down_logged;
    bool need_full;            /* the next connect reads everything (first, or compacted) */
    int64_t revision;          /* every change through it is in docs */
    struct http_client *req;   /* a range or a probe */
    struct http_client *watch; /* the watch stream */
    bool watch_created;
    int64_t watch_started_ms;
    unsigned probes_behind; /* probes in a row that saw a change the watch did not bring */
    unsigned rounds_failed; /* rounds of faults since the last watch set up */
    struct event *timer;    /* the next probe, or the next round */
    /* The answer being read: a range's whole body, or the watch's
     * current line. */
    char *buf;
    size_t buf_len, buf_cap;
    char *wbuf;
    size_t wbuf_len, wbuf_cap;
    /* The documents in force, sorted by name; refused ones. */
    struct fleet_doc *docs;
    size_t ndocs;
    size_t doc_bytes; /* their texts' bytes together */
    /* The documents of the config in force (fleet_applied()): what a
     * document refused late goes back to (name, text, len only). */
    struct fleet_doc *applied;
    size_t napplied;
    struct fleet_reject *rejects;
    size_t nrejects;
    struct fleet_state *states; /* sorted by key */
    size_t nstates;
    /* fleet_put_state()s under way. */
    struct fleet_put *puts;
    /* For the status. */
    char error[256];          /* the last fault ("" while up) */
    int64_t last_ok_unix_ms;  /* the last answer of the endpoint in use */
    int64_t failing_since_ms; /* the first fault since the last answer; 0: none */
    uint64_t changes;         /* document changes taken */
    uint64_t rejected;        /* documents refused, ever */
    uint64_t reconnects;      /* endpoint switches */
    /* Why the documents could not be applied last ("" when they were):
     * set by the owner (a listener's pool deleted, say). */
    char apply_error[1024];
    /* The documents changed (a full read, or a watch message). */
    void (*changed)(void *arg);
    void *arg;
    /* Whether pool NAME must stay (a listener names it and the file has
     * none of that name): then a delete of its document is refused, the
     * last version kept; who says which listener. NULL: never. */
    bool (*needed)(void *arg, const char *name, char *who, size_t cap);
    /* A backend's state changed: st is its new state, NULL when its key
     * was deleted (the backend is enabled, its weight the config's). */
    void (*state_changed)(void *arg, const char *pool, const char *backend,
                          const struct fleet_state *st);
};

/* A copy of the documents as they are now (names and texts): taken when
 * a config is made from them, handed to fleet_applied() once that config
 * is in force (a reload may wait meanwhile, and the documents change). 0,
 * or -1 when out of memory (out empty). */
struct fleet_docset {
    struct fleet_doc *v;
    size_t n;
};
int fleet_docset_take(const struct fleet *f, struct fleet_docset *out);
void fleet_docset_free(struct fleet_docset *set);
/* The config in force was made from set (taken over, emptied): what a
 * document refused late goes back to. */
void fleet_applied(struct fleet *f, struct fleet_docset *set);
/* err is the fault of a config made with the documents: when it starts
 * with a document's source ("etcd KEY:"), that document goes back to its
 * version last applied (or goes, when it had none) and is refused with
 * err; true then, and the caller tries again without it. */
bool fleet_blame(struct fleet *f, const char *err);
/* Documents whose delete was refused (a file listener named their pool)
 * are deleted now if nothing needs them any more (after a reload). true
 * when one went. */
bool fleet_recheck_gone(struct fleet *f);

/* The state of backend id BACKEND of pool POOL, or NULL. */
const struct fleet_state *fleet_state_find(const struct fleet *f, const char *pool,
                                           const char *backend);
/* "{"state": "drain", "weight": 3}" for a state (-1 parts left out),
 * malloc'd; NULL when out of memory. */
char *fleet_state_text(int state, int weight);
/* Writes value as the state of BACKEND of POOL, through the endpoint in
 * use (etcd's put; bounded by timeout_ms). done(arg, revision, NULL) once
 * etcd took it, or done(arg, 0, why) (also when the fleet is freed first).
 * NULL with the reason in err when it cannot start; no callback then. */
struct fleet_put *fleet_put_state(struct fleet *f, const char *pool, const char *backend,
                                  const char *value,
                                  void (*done)(void *arg, int64_t revision, const char *err),
                                  void *arg, char *err, size_t errlen);
/* Drops a put: its done is never called (the write may still happen). */
void fleet_put_cancel(struct fleet_put *p);

/* Makes f follow cfg's etcd (cfg stays base_cfg); nothing is sent until
 * fleet_run(). 0, or -1 with err (an https endpoint's TLS settings that
 * cannot be built, out of memory). */
int fleet_init(struct fleet *f, struct event_base *base, const struct lb_config *cfg,
               void (*changed)(void *arg), void *arg, char *err, size_t errlen);
/* Starts the full read. */
void fleet_run(struct fleet *f);
/* The config's fleet block after a reload: other endpoints, token,
 * timeouts or TLS take effect at once (the connection starts again; with
 * https endpoints it always does, their certificates may be new), other
 * endpoints or another prefix also read everything again. 0, or -1 with
 * err (the old settings stay). */
int fleet_configure(struct fleet *f, const struct lb_config *cfg, char *err, size_t errlen);
void fleet_free(struct fleet *f);

/* The documents as config_merge() takes them, in a malloc'd array (NULL
 * and 0 when there are none; f NULL has none). 0, or -1 when out of
 * memory. */
int fleet_docs(const struct fleet *f, struct config_doc **out, size_t *n);

/* The phase's word for the status: "reading", "probing", "watching",
 * "unreachable". */
const char *fleet_state_name(const struct fleet *f);

#endif
