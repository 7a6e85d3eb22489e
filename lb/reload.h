/* reload: applies the config file again to the running process, all or
 * nothing, in place (lb/reload.c). */
#ifndef LB_RELOAD_H
#define LB_RELOAD_H

#include <stddef.h>

struct runtime;
struct lb_config;
struct tls_set;

/* What a successful reload changed. */
struct reload_result {
    unsigned generation;
    size_t listeners_added, listeners_removed;
    size_t backends_added, backends_removed;
};
/* Re-reads rt's config file and applies it in place, all or nothing. 0
 * with *res filled, or -1 with the reason in err and nothing changed.
 * Counts and logs the outcome either way. A file naming backends by host
 * name is applied once its names are resolved (lb/names.h), without
 * stalling the loop: then 1, with what it waits for in err, and the
 * outcome is logged and counted when it comes (a name that does not
 * resolve fails it whole). A reload asked for while one waits (1 too)
 * runs once that one is done. */
int reload_run(struct runtime *rt, struct reload_result *res, char *err, size_t errlen);
/* Rebuilds pool NAME of the config in force from its file backends and
 * its "dns" entries' answers as they are now (DNS discovery: an answer
 * changed), like a reload of that pool alone: backends that stay keep
 * their state by id, new ones start fresh, removed ones drain, connecting
 * and queued sessions follow. 0 with the counts, or -1 (no such pool,
 * stopping, out of memory: the pool stays as it was). */
int reload_pool(struct runtime *rt, const char *name, size_t *added, size_t *removed);
/* etcd's documents changed (lb/fleet.h): the config in force's file (its
 * text as loaded, not read again) with the documents is applied like a
 * reload, logged and counted as the fleet's (rt->fleet_applied, _failed,
 * fleet->apply_error). While a reload waits, it runs once that one is
 * done (1). 0, 1 or -1 like reload_run(). */
int reload_fleet(struct runtime *rt);
/* Drops a reload waiting for its names (lb is stopping). */
void reload_cancel(struct runtime *rt);
/* How a module with a part of the file of its own (the admin API: main.c
 * registers it) takes part in each reload, all within the reload's one
 * loop callback. prepare, once the new listeners and pools are built (tls:
 * the new config's TLS contexts, to take references from), does
 * what can fail (binding a new socket): 0, or -1 with the reason in err,
 * which fails the reload. commit runs once the new config is in force
 * (rt->cfg), before the removed listeners drain. abort runs instead when
 * the reload fails after prepare was called, prepare's own failure
 * included: it undoes whatever prepare left. */
struct reload_hook {
    void *arg;
    int (*prepare)(void *arg, const struct lb_config *next, const struct tls_set *tls, char *err,
                   size_t errlen);
    void (*commit)(void *arg);
    void (*abort)(void *arg);
};
/* Makes hook (NULL: none) take part in rt's reloads from now on, in place
 * of any other; it must stay valid until replaced. */
void reload_set_hook(struct runtime *rt, const struct reload_hook *hook);

/* SIGHUP: a reload at the loop's next turn. Requests made before it runs
 * (a burst of SIGHUPs, or one during a reload) make one reload, not one
 * each. */
void reload_request(struct runtime *rt);
/* Sets up reload_request()'s event; by runtime_start. 0 or -1 (ENOMEM). */
int reload_init(struct runtime *rt);

#endif
