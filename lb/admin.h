/* admin: the JSON admin API and Prometheus /metrics on their own listener,
 * served by libevent's evhttp on lb's one event loop. */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include <stddef.h>

struct runtime;

/* Opens the admin listener of rt->cfg->admin (nothing when it is not
 * enabled). 0, or -1 with the reason in err (e.g. the address is in use). */
int admin_start(struct runtime *rt, char *err, size_t errlen);
/* Closes the listener and frees everything; safe when never started. */
void admin_stop(struct runtime *rt);

#endif
