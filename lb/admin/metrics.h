/* metrics: lb's counters in the Prometheus text exposition format 0.0.4,
 * for GET /metrics on the admin listener. */
#ifndef LB_METRICS_H
#define LB_METRICS_H

struct runtime;
struct evbuffer;

/* Appends the whole exposition to out. 0, or -1 on ENOMEM. */
int metrics_render(const struct runtime *rt, struct evbuffer *out);

#endif
