/* harness/conf: the usual test config of lb. */
#ifndef LB_TESTS_HARNESS_CONF_H
#define LB_TESTS_HARNESS_CONF_H

/* The usual test config: one listener "web" on listen to pool "app".
 * backends is the inside of the pool's "backends" array. Zero fields take
 * lb's usual values (strategy roundrobin, max_connections 10000, idle
 * 300000 ms, grace 10000 ms, connect timeout 3000 ms); retries is as given. */
struct harness_conf {
    const char *listen; /* "127.0.0.1:PORT" or "[::1]:PORT" */
    const char *strategy;
    const char *backends;
    unsigned retries;
    unsigned max_connections;
    unsigned idle_timeout_ms;
    unsigned grace_ms;
    unsigned connect_timeout_ms;
    const char *pool_extra; /* more pool keys, each followed by ", " */
};
const char *harness_config(const struct harness_conf *c);

#endif
