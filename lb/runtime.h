/* runtime: the live side of one lb process, built from a struct lb_config —
 * listeners, pools with their backends, open sessions, counters, and the
 * stop sequence. Config stays an immutable value; this is what changes. */
#ifndef LB_RUNTIME_H
#define LB_RUNTIME_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config/config.h"
#include "lb/pool.h"

struct event_base;
struct event;

/* accept() or socket() failed for want of descriptors or kernel memory: the
 * caller pauses and retries rather than treating it as the peer's fault. */
static inline bool errno_starved(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}
/* Event priorities of lb's one event_base (main() sets LB_PRIORITIES):
 * libevent runs a pass's callbacks of the best priority only, so the data
 * path and health, at the default (1), always go before admin requests. */
#define LB_PRIORITIES 3
#define LB_PRIORITY_ADMIN 2

struct evconnlistener;
struct session;

struct listener {
    struct runtime *rt;
    char *name;
    char *listen; /* as written */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    enum lb_mode mode;
    struct pool *pool;
    unsigned max_connections;
    unsigned idle_timeout_ms;
    struct lb_keepalive_conf keepalive;
    struct evconnlistener *evl; /* NULL once closed */
    /* The old socket of a moved listener, drained for a moment. */
    struct evconnlistener *drain_evl;
    struct event *drain_timer;
    struct event *resume_timer; /* re-enables accept after EMFILE/ENFILE */
    bool full;                  /* at max_connections: accept disabled */
    bool starved;               /* out of file descriptors: accept paused */
    uint64_t active;            /* open sessions */
    uint64_t total;             /* sessions ever accepted */
    bool retired;               /* removed by a reload; freed with its last session */
    bool draining;              /* listener_drain() runs: not freed yet */
    LIST_ENTRY(listener) retired_link;
};

LIST_HEAD(session_list, session);

struct runtime {
    struct event_base *base;
    struct lb_config *cfg;
    struct pool **pools; /* same order as cfg->pools */
    size_t npools;
    struct listener **listeners;
    size_t nlisteners;
    struct session_list sessions;
    struct session_list parked;                 /* sessions with a side lb does not watch */
    LIST_HEAD(listener_list, listener) retired; /* removed listeners with open sessions */
    unsigned generation;                        /* 1 for the first config, +1 per reload */
    struct event *reload_ev;                    /* runtime_request_reload() */
    struct event *probe_timer;                  /* probes the parked sessions once a second */
    uint64_t active;                            /* open sessions, all listeners */
    uint64_t total;
    unsigned fd_waiters; /* sessions waiting for a descriptor to connect */
    /* Descriptors (runtime_fd_budget()): the process limit, those kept back
     * for the admin API, health checks and lb itself, and what sessions may
     * use (two each: 2 * active in use). At the limit accepts pause
     * (fd_full). */
    unsigned fd_limit, fd_reserve, fd_data_max;
    bool fd_full;
    bool stopping;
    struct event *grace_timer;

    /* For the admin API's status. */
    int64_t started_unix_ms;
    int64_t config_loaded_unix_ms;
    uint64_t reloads_ok, reloads_failed;
    char reload_last_error[1024]; /* "" when none */
    struct admin *admin;          /* NULL without an "admin" key */
};

struct admin;

/* Builds pools and opens every listener of cfg. On failure returns -1 with
 * the reason in err and leaves nothing open. rt takes ownership of cfg. */
int runtime_start(struct runtime *rt, struct event_base *base, struct lb_config *cfg, char *err,
                  size_t errlen);
/* Stops accepting at once, lets sessions run for shutdown_grace_ms, then
 * closes what is left and leaves the event loop. */
void runtime_stop(struct runtime *rt, const char *why);
void runtime_free(struct runtime *rt);

/* What a successful reload changed. */
struct reload_result {
    unsigned generation;
    size_t listeners_added, listeners_removed;
    size_t backends_added, backends_removed;
};
/* Re-reads rt's config file and applies it in place, all or nothing (see
 * lb/reload.c). 0 with *res filled, or -1 with the reason in err and
 * nothing changed. Counts and logs the outcome either way. */
int runtime_reload(struct runtime *rt, struct reload_result *res, char *err, size_t errlen);
/* SIGHUP: a reload at the loop's next turn. Requests made before it runs
 * (a burst of SIGHUPs, or one during a reload) make one reload, not one
 * each. */
void runtime_request_reload(struct runtime *rt);
/* After a reload changed idle timeouts: arms the idle timer of open
 * sessions whose listener now has one. */
void session_idle_rearm_all(struct runtime *rt);
int runtime_reload_init(struct runtime *rt); /* by runtime_start */
/* Called by the session code when a session starts (after accept) and
 * when it ends: each holds two of the data path's descriptors. */
void runtime_session_started(struct runtime *rt, struct listener *l);
void runtime_session_ended(struct runtime *rt, struct listener *l);
/* Computes the descriptor reserve for rt->cfg and what is left for
 * sessions (at start, after each reload); logs it when it changed. */
void runtime_fd_budget(struct runtime *rt);

/* The current generation's pool called name, or NULL. */
struct pool *runtime_find_pool(const struct runtime *rt, const char *name);
/* A listener for c sending clients to pool (takes a pool reference); not
 * open yet. NULL on ENOMEM. */
struct listener *listener_create(struct runtime *rt, const struct lb_listener_conf *c,
                                 struct pool *pool);
/* Closes and frees l, dropping its pool reference. */
void listener_destroy(struct listener *l);
/* Binds and listens (reuseport: beside an overlapping socket that shares
 * its port). 0, or -1 with the reason in err. */
int listener_open(struct listener *l, bool reuseport, char *err, size_t errlen);
/* The listening socket, -1 when closed. */
int listener_fd(const struct listener *l);
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
void listener_close(struct listener *l);
/* Enables or disables accepting as the listener's state says. */
void listener_refresh(struct listener *l);
/* Pauses accepting for a moment: the process is out of descriptors. */
void listener_pause(struct listener *l);
/* Re-enables accepting once the listener has room again. */
void listener_resume(struct listener *l);

/* Takes ownership of fd, an accepted non-blocking client socket. */
void session_start(struct listener *l, int fd, const struct sockaddr *sa, socklen_t salen);
/* Checks the sides of a parked session that lb does not watch for a reset
 * (SO_ERROR) and ends it if one was reset; unparks it when every side is
 * watched again. */
void session_probe(struct session *s);
struct session *session_parked_next(struct session *s);
/* Ends every open session of b at once (admin "disable"). */
void backend_close_sessions(struct backend *b, const char *reason);
/* Ends an open session at once (stop after the grace period). */
void session_abort(struct session *s, const char *reason);

/* "1.2.3.4:80" or "[::1]:80" into buf; returns buf. */
const char *sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);

#endif
