/* admin: the JSON admin API and Prometheus /metrics on their own listener,
 * on lb's one event loop (the HTTP side is lb/admin/admin_http.c). main.c
 * starts it once the runtime runs, registers its reload hook, and stops it
 * before the runtime goes; the runtime knows nothing of it. */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include <stddef.h>

struct runtime;
struct admin;
struct reload_hook;

/* The admin API of rt: opens the listener of rt->cfg->admin, or none when
 * the file has no "admin" (a reload may open one later). NULL with the
 * reason in err (the address is in use, out of memory); nothing is left
 * open then. */
struct admin *admin_start(struct runtime *rt, char *err, size_t errlen);
/* What a reload does to the admin listener, for reload_set_hook(): a new
 * address is bound before the commit (the reload fails whole if it cannot
 * be); at the commit a moved listener takes its new socket (open admin
 * connections go on, under the new access rules), a removed one closes
 * with its connections, a new one opens; the new file's TLS context (the
 * plan's tls->admin, or none: plain HTTP) serves the connections accepted
 * after the commit, while open ones keep theirs. Lives as long as a. */
const struct reload_hook *admin_reload_hook(struct admin *a);
/* The listening socket, -1 without one: what a binary upgrade hands over. */
int admin_listen_fd(const struct admin *a);
/* A binary upgrade's new process serves the socket now: this one closes
 * its copy and accepts no more; open admin connections go on. */
void admin_hand_off(struct admin *a);
/* Closes the listener and every admin connection and frees a (NULL: does
 * nothing). Not from inside an admin request. */
void admin_stop(struct admin *a);

#endif
