/* names: the host names of a config's backends ("app1.internal:8080")
 * resolved without blocking the loop (lb/io/resolver.h: c-ares, the
 * system's resolvers and /etc/hosts), before the config is used: at start
 * before the listeners open, at each reload before it commits, and by
 * `lb -t`. A name gets its first IPv4 address, else its first IPv6 one;
 * it is not looked up again until the next reload (names that change
 * belong in a "dns" entry: lb/discovery.h). */
#ifndef LB_NAMES_H
#define LB_NAMES_H

#include <stddef.h>

struct event_base;
struct lb_config;
struct names_job;

/* Called once when every name has its answer: err NULL when all resolved
 * (cfg's addresses are filled in), else "file:line:col: json.path: cannot
 * resolve \"host\": reason" for the first name in file order that did
 * not. Runs from the loop, never from inside names_start(); the job is
 * freed after it returns. */
typedef void (*names_done_fn)(void *arg, const char *err);

/* The number of backends of cfg written with a host name. */
size_t names_count(const struct lb_config *cfg);

/* Starts resolving cfg's host names on base: *job set and 1 (done will be
 * called), 0 when there is none (nothing started), or -1 with err. cfg
 * must live until done runs or names_cancel(). */
int names_start(struct event_base *base, struct lb_config *cfg, names_done_fn done, void *arg,
                struct names_job **job, char *err, size_t errlen);
/* Stops a job before its done ran (done is not called). */
void names_cancel(struct names_job *job);

/* Resolves cfg's names on a loop of its own, waiting for the answers (for
 * `lb -t` and the start, before lb serves anything). 0, or -1 with err. */
int names_resolve_now(struct lb_config *cfg, char *err, size_t errlen);

#endif
