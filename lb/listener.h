/* listener: one data listening socket and its accept policy (max_connections,
 * the process's descriptor budget, a pause when accept() finds no free
 * descriptor), the hand-over of a moved socket and the drain of a removed
 * one. Each accepted client goes to the listener's on_client handler
 * (session_start(): a session, lb/session.h). */
#ifndef LB_LISTENER_H
#define LB_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config/config.h"

struct runtime;
struct pool;
struct acceptor;
struct event;
struct tls_ctx;

struct listener;
/* What a listener does with each client it accepts (session_start()): fd
 * is accepted, non-blocking, and the callee's from now on. */
typedef void listener_client_fn(struct listener *l, int fd, const struct sockaddr *sa,
                                socklen_t salen);

/* A tcp listener's SNI routes ("sni_routes"): the pool for a server name
 * in the client's TLS ClientHello (lb/session_sni.c reads it). Two arrays
 * sorted by name, each found by binary search: exact names, and the
 * wildcards by their suffix ("*.example.com" is kept as "example.com").
 * Each route holds a reference to its pool; the names are copies (the
 * config that gave them is freed at the next reload). */
struct listener_route {
    char *name; /* lower case; a wildcard's without its "*." */
    struct pool *pool;
};
struct listener_routes {
    struct listener_route *exact, *wild;
    size_t nexact, nwild;
};

struct listener {
    struct runtime *rt;
    char *name;
    char *listen; /* as written */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    enum lb_mode mode;
    struct pool *pool;
    listener_client_fn *on_client;
    unsigned max_connections;
    unsigned idle_timeout_ms;
    struct lb_keepalive_conf keepalive;
    bool splice;       /* sessions' bulk flows may use splice(2) */
    bool reuse_port;   /* "reuse_port": SO_REUSEPORT stays on the socket */
    bool accept_proxy; /* each client starts with a PROXY header (lb/proto/proxy_proto.h) */
    unsigned request_timeout_ms; /* for what is read before the pick (the PROXY header) */
    /* TLS termination: new clients' handshakes use it (a reload swaps it;
     * each session holds its own reference); NULL: plain TCP. */
    struct tls_ctx *tls;
    unsigned handshake_timeout_ms;
    uint64_t tls_handshakes;         /* completed */
    uint64_t tls_resumed;            /* of those, resumed sessions (ticket or cache) */
    uint64_t tls_handshake_failures; /* failed or timed out (a client leaving before
                                      * any byte is none) */
    struct acceptor *acc;            /* its listening socket (lb/io/acceptor.h); NULL once closed */
    /* The old socket of a moved listener, drained for a moment. */
    struct acceptor *drain_acc;
    struct event *drain_timer;
    bool full;               /* at max_connections: accept disabled */
    uint64_t active;         /* open sessions */
    uint64_t total;          /* sessions ever accepted */
    uint64_t proxy_rejected; /* clients closed for a missing, bad or late PROXY header */
    /* SNI routing (tcp mode without tls; a reload swaps the routes, new
     * clients' ClientHellos are matched against the current ones): */
    struct listener_routes routes;
    uint64_t sni_routed;  /* clients sent to a route's pool */
    uint64_t sni_default; /* clients sent to l->pool: no TLS, no name, no match, or too long */
    /* http mode (lb/http_session.c): */
    unsigned max_header_bytes;
    bool x_real_ip, forwarded;
    uint64_t http_status[5]; /* responses sent to clients, by class 1xx..5xx */
    bool retired;            /* removed by a reload; freed with its last session */
    bool draining;           /* listener_drain() runs: not freed yet */
    bool leaving;            /* listener_leave() drains its socket */
    LIST_ENTRY(listener) retired_link;
};

/* A listener for c sending clients to pools[c->pool_index], or by SNI to
 * the pools of c's routes (pools indexed like the config's; takes a
 * reference on each it uses), each handed to on_client; not open yet. NULL
 * on ENOMEM. */
struct listener *listener_create(struct runtime *rt, const struct lb_listener_conf *c,
                                 struct pool *const *pools, listener_client_fn *on_client);
/* Builds c's SNI routes into r (empty when c has none), resolved to pools
 * (indexed like the config's; a reference on the pool of each route). 0,
 * or -1 on ENOMEM (r is empty then). */
int listener_routes_build(struct listener_routes *r, const struct lb_listener_conf *c,
                          struct pool *const *pools);
/* Drops r's pool references and frees it; r is empty afterwards. */
void listener_routes_free(struct listener_routes *r);
/* l routes by r from now on (a reload's commit): r's contents move into l
 * and r is left empty; l's old routes are freed. */
void listener_set_routes(struct listener *l, struct listener_routes *r);
/* True when l routes by SNI. */
bool listener_has_routes(const struct listener *l);
/* The pool of l's route for server_name (lower case, as tls_hello gives
 * it): the exact name's, else the wildcard's whose suffix is what follows
 * the name's first label ("*.example.com" matches "a.example.com", not
 * "example.com" nor "a.b.example.com"); NULL when none matches (l->pool
 * serves the client then). O(log n) in the routes. */
struct pool *listener_route(const struct listener *l, const char *server_name);
/* l's clients handshake with tls (a new reference; NULL: none) from now
 * on, with c's handshake timeout. */
void listener_set_tls(struct listener *l, struct tls_ctx *tls, const struct lb_listener_conf *c);
/* Closes and frees l, dropping its pool references. */
void listener_destroy(struct listener *l);
/* Binds and listens (reuseport: beside an overlapping socket that shares
 * its port; SO_REUSEPORT is set too when l->reuse_port). 0, or -1 with the
 * reason in err. */
int listener_open(struct listener *l, bool reuseport, char *err, size_t errlen);
/* The listening socket, -1 when closed. */
int listener_fd(const struct listener *l);
/* A reload renamed l: its log lines say name from now on. 0, or -1
 * (ENOMEM: the old name stays). */
int listener_rename(struct listener *l, const char *name);
/* A reload moved old's address to l's overlapping one: l takes old's
 * socket, which stops taking new handshakes (their clients retry, to l's
 * own socket) and is drained for a moment, then closed. old is left
 * closed. */
void listener_adopt(struct listener *l, struct listener *old);
/* Accepts the clients already queued on l's socket (as sessions of into,
 * as far as the descriptor budget allows), then closes l's sockets: a
 * removed listener refuses new clients but does not reset those whose
 * connect had completed. */
void listener_drain(struct listener *l, struct listener *into);
/* lb stops: closes l's socket, or, with reuse_port, leaves its clients
 * to the other processes sharing the port instead of resetting what the
 * kernel queued: new handshakes are refused the way a move refuses them
 * (a SYN filter, so each client resends its SYN and another socket takes
 * it), what completes meanwhile is served, and the socket closes after
 * min(ms, 1 s), then runtime_listener_left() is called. true while it
 * drains; false when it closed at once (no reuse_port, ms 0, or the filter
 * cannot be set). */
bool listener_leave(struct listener *l, unsigned ms);
void listener_close(struct listener *l);
/* A binary upgrade: the new process serves l's socket now. l never accepts
 * again and closes its copy (after the loop's next turn, as any
 * acceptor's: the socket lives on in the other process). A moved
 * listener's old socket still drains, then closes. */
void listener_hand_off(struct listener *l);
/* Enables or disables accepting as the listener's state says. */
void listener_refresh(struct listener *l);
/* A session of l ended: accepting goes on below max_connections, and a
 * pause for want of descriptors ends at once. */
void listener_resume(struct listener *l);

#endif
