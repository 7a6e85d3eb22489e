/* reload: applies the config file again to the running process, all or
 * nothing, in place (lb/reload.c). */
#ifndef LB_RELOAD_H
#define LB_RELOAD_H

#include <stddef.h>

struct runtime;

/* What a successful reload changed. */
struct reload_result {
    unsigned generation;
    size_t listeners_added, listeners_removed;
    size_t backends_added, backends_removed;
};
/* Re-reads rt's config file and applies it in place, all or nothing. 0
 * with *res filled, or -1 with the reason in err and nothing changed.
 * Counts and logs the outcome either way. */
int reload_run(struct runtime *rt, struct reload_result *res, char *err, size_t errlen);
/* SIGHUP: a reload at the loop's next turn. Requests made before it runs
 * (a burst of SIGHUPs, or one during a reload) make one reload, not one
 * each. */
void reload_request(struct runtime *rt);
/* Sets up reload_request()'s event; by runtime_start. 0 or -1 (ENOMEM). */
int reload_init(struct runtime *rt);

#endif
