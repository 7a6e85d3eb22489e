/* metrics: lb's counters in the Prometheus text exposition format 0.0.4,
 * for GET /metrics on the admin listener. */
#ifndef LB_METRICS_H
#define LB_METRICS_H

struct runtime;
struct evbuffer;
struct admin_http_stats;

/* Appends the whole exposition to out: the runtime's metrics and, when
 * admin is not NULL, the admin API's counters (lb_admin_*). 0, or -1 on
 * ENOMEM. */
int metrics_render_with_admin(const struct runtime *rt, const struct admin_http_stats *admin,
                              struct evbuffer *out);
/* The same without an admin API. */
int metrics_render(const struct runtime *rt, struct evbuffer *out);

#endif
