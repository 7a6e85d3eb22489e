/* runtime: the live side of one lb process, built from a struct lb_config —
 * listeners and pools (their modules: lb/listener.h, lb/pool.h), the open
 * sessions, the descriptor budget, counters, and the stop sequence. Config
 * stays an immutable value; this is what changes. */
#ifndef LB_RUNTIME_H
#define LB_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config/config.h"
#include "lb/relay.h"
#include "lb/tls_conf.h"

struct event_base;
struct event;
struct listener;
struct pool;
struct session;
struct reload_hook;
struct names_job;
struct discovery_set;
struct fleet;
struct fleet_docset;

/* Event priorities of lb's one event_base (main() sets LB_PRIORITIES):
 * libevent runs a pass's callbacks of the best priority only, so the data
 * path and health, at the default (1), always go before admin requests. */
#define LB_PRIORITIES 3
#define LB_PRIORITY_ADMIN 2

/* A flow's buffer; 16 KiB like HAProxy's default bufsize: large enough for
 * full-speed loopback transfers. Taken only while a flow holds bytes. */
#define RUNTIME_BUF_SIZE (16 * 1024)
/* Free buffers kept for reuse (16 MiB); more are freed. */
#define RUNTIME_BUFS_CACHED 1024
/* Pipes for splice(2) open at once, at most (and at most a quarter of the
 * sessions' descriptors, see runtime_fd_budget()). */
#define RUNTIME_PIPES_MAX 4096

LIST_HEAD(session_list, session);
TAILQ_HEAD(http_idle_list, http_idle);

struct runtime {
    struct event_base *base;
    struct lb_config *cfg;
    struct tls_set tls;  /* cfg's TLS contexts (lb/tls_conf.h); holders take their own refs */
    struct pool **pools; /* same order as cfg->pools */
    size_t npools;
    struct listener **listeners;
    size_t nlisteners;
    struct session_list sessions;
    struct bufpool bufs;                        /* the relay's buffers (RUNTIME_BUF_SIZE) */
    struct pipepool pipes;                      /* splice's pipes; max set by pipes_fit() */
    unsigned pipes_cap;                         /* pipes allowed while no session is open */
    uint64_t spliced_bytes;                     /* bytes moved through the pipes */
    struct relay_shared relays;                 /* parked sessions, put-off shutdowns */
    LIST_HEAD(listener_list, listener) retired; /* removed listeners with open sessions */
    unsigned generation;                        /* 1 for the first config, +1 per reload */
    struct event *reload_ev;                    /* reload_request() */
    /* A reload waiting for its config's host names (lb/names.h): the
     * config read, and whether a SIGHUP came meanwhile (the file is read
     * again once this one is done). */
    struct names_job *names_job;
    struct lb_config *next_cfg; /* the config a reload waits to apply */
    bool reload_waiting;        /* for names_job, or the new "dns" entries' first answers */
    bool reload_again;
    bool notify_reload; /* systemd was told RELOADING=1: READY=1 follows the outcome */
    bool starting;      /* runtime_start() to runtime_ready(): a reload asked for waits */
    /* DNS discovery's entries (lb/discovery.h), outside the generations. */
    struct discovery_set *dns;
    /* The fleet (lb/fleet.h): pools from etcd; NULL without "fleet". */
    struct fleet *fleet;
    bool fleet_again;       /* etcd's documents changed while a reload waited */
    struct event *fleet_ev; /* runtime_fleet_changed(): reload_fleet() from the loop */
    bool applying_fleet;    /* the config being applied is etcd's change, not a SIGHUP */
    uint64_t fleet_applied, fleet_apply_failed;
    /* The documents the config being applied was made from
     * (fleet_docset_take() at its merge), for fleet_applied() at its
     * commit; n 0 when it has none. */
    struct fleet_docset *fleet_merged;
    const struct reload_hook *reload_hook; /* reload_set_hook(); NULL: none */
    struct event *probe_timer;             /* probes the parked sessions once a second */
    uint64_t active;                       /* open sessions, all listeners */
    uint64_t total;
    unsigned fd_waiters; /* sessions waiting for a descriptor to connect */
    /* http mode's idle backend connections, newest first (lb/http_reuse.h);
     * one descriptor each. */
    struct http_idle_list idle;
    /* http sessions whose client reads are off for backpressure: probed
     * for a reset with the relay's parked sides (lb/http_session.c). */
    LIST_HEAD(http_parked_list, http_state) http_parked;
    unsigned nidle;
    /* Descriptors (runtime_fd_budget()): the process limit, those kept back
     * for the admin API, health checks and lb itself, and what sessions may
     * use (two each: 2 * active in use). At the limit accepts pause
     * (fd_full). */
    unsigned fd_limit, fd_reserve, fd_data_max;
    bool fd_full;
    /* The config's global "max_connections" (0: none): at it, every
     * listener stops accepting until a session ends. */
    bool conn_full;
    uint64_t conn_full_count; /* times the global limit paused accepting */
    bool stopping;
    bool handed_off;  /* a binary upgrade's new process serves the sockets */
    bool stop_asked;  /* handed off, then SIGTERM/SIGINT: the next one closes the sessions */
    unsigned leaving; /* stopping: reuse_port listeners still draining (listener_leave) */
    struct event *grace_timer;

    /* For the admin API's status. */
    int64_t started_unix_ms;
    int64_t config_loaded_unix_ms;
    uint64_t reloads_ok, reloads_failed;
    char reload_last_error[1024]; /* "" when none */
};

/* Builds pools, starts their health checks and opens every listener of
 * cfg. On failure returns -1 with the reason in err and leaves nothing
 * open. rt takes ownership of cfg (freed on failure too). */
int runtime_start(struct runtime *rt, struct event_base *base, struct lb_config *cfg, char *err,
                  size_t errlen);
/* Ends the start once what else main starts with it (the admin API) runs
 * too: computes the descriptor budget and logs it, each pool's checks and
 * each listener, so that a start that fails logs its error only. A reload
 * asked for while the start waited for DNS is requested now (it runs from
 * the loop). */
void runtime_ready(struct runtime *rt);
/* Stops accepting at once, lets sessions run for shutdown_grace_ms, then
 * closes what is left and leaves the event loop. */
void runtime_stop(struct runtime *rt, const char *why);
/* The same for a binary upgrade whose new process now serves the sockets
 * (lb/upgrade.c): every listener closes its copy of its socket (the new
 * process has it), except the n unused ones the new config has no
 * listener for, which first accept what their queue holds; no STOPPING=1
 * goes to systemd (the new process is the service now). The first
 * runtime_stop() after it only says so; the second closes the sessions. */
void runtime_hand_off(struct runtime *rt, const char *why, const int *unused, size_t n);
/* "generation 3: 2 listeners, 4 pools, 12 open sessions": the one-line
 * summary systemd shows (STATUS=, lb/notify.h). */
void runtime_status_line(const struct runtime *rt, char *buf, size_t cap);
void runtime_free(struct runtime *rt);

/* Called by the session code when a session starts (after accept) and
 * when it ends: each holds two of the data path's descriptors. */
void runtime_session_started(struct runtime *rt, struct listener *l);
void runtime_session_ended(struct runtime *rt, struct listener *l);
/* A stopping listener's reuse_port socket closed (listener_leave()): lb
 * exits once none drains and no session is open. */
void runtime_listener_left(struct runtime *rt);
/* Computes the descriptor reserve for rt->cfg and what is left for
 * sessions (at start, after each reload); logs it when it changed. */
void runtime_fd_budget(struct runtime *rt);

/* Starts following cfg's fleet (rt->fleet). 0, or -1 with err (its TLS
 * settings, out of memory). */
int runtime_fleet_init(struct runtime *rt, const struct lb_config *cfg, char *err, size_t errlen);
/* etcd's documents changed: reload_fleet() runs from the loop (once for
 * all the changes until then), or after the start. */
void runtime_fleet_changed(struct runtime *rt);
/* The documents a config is made from: taken now (commit false, at the
 * merge), or in force (commit true, at its commit: fleet_applied()). */
void runtime_fleet_merged(struct runtime *rt, bool commit);
/* The config made from them was not applied. */
void runtime_fleet_merged_drop(struct runtime *rt);
/* Gives every backend its state from etcd (after a start or a reload made
 * backends that may have one). */
void runtime_fleet_states_apply(struct runtime *rt);

/* Pool i of a config takes its TLS contexts from set (new references). */
void runtime_pool_tls(struct pool *pool, const struct tls_set *set, size_t i);

/* The current generation's pool called name, or NULL. */
struct pool *runtime_find_pool(const struct runtime *rt, const char *name);

#endif
