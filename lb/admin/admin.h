/* admin: the JSON admin API and Prometheus /metrics on their own listener,
 * on lb's one event loop (the HTTP side is lb/admin_http.c). */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct runtime;
struct admin_http_stats;

/* Opens the admin listener of rt->cfg->admin (nothing when it is not
 * enabled). 0, or -1 with the reason in err (e.g. the address is in use). */
int admin_start(struct runtime *rt, char *err, size_t errlen);
/* Closes the listener and every admin connection and frees everything;
 * safe when never started, and from inside an admin request. */
void admin_stop(struct runtime *rt);
/* The admin server's counters, or NULL when there is none. */
const struct admin_http_stats *admin_stats(const struct runtime *rt);

/* What a reload does to the admin listener, prepared before the commit. */
struct admin_plan {
    int fd;        /* a new listening socket for the new address; -1: none */
    bool enable;   /* the new file has an admin listener */
    int shared_fd; /* the old socket that was let share its port; -1: none */
};
/* Binds what the new file's admin listener needs (nothing when the address
 * is unchanged). 0, or -1 with err and nothing changed. */
int admin_reload_prepare(struct runtime *rt, const struct lb_admin_conf *next,
                         struct admin_plan *plan, char *err, size_t errlen);
/* Applies the plan once rt->cfg is the new config: a moved listener takes
 * its new socket (open admin connections go on, under the new access
 * rules), a removed one closes with its connections, a new one opens. */
void admin_reload_commit(struct runtime *rt, struct admin_plan *plan);
/* Undoes a prepared plan that is not committed. */
void admin_reload_abort(struct admin_plan *plan);

#endif
