/* harness/conf: lb configs built as JSON documents (jansson) instead of
 * format strings: the usual test config, pieces of one, and lb started or
 * reloaded from a document. */
#ifndef LB_TESTS_HARNESS_CONF_H
#define LB_TESTS_HARNESS_CONF_H

#include <jansson.h>

#include "tests/harness/proc.h"

/* The usual test config: one listener "web" on listen to pool "app".
 * backends is the inside of the pool's "backends" array as JSON text (NULL:
 * an empty array, for the test to fill). Zero fields take lb's usual values
 * (strategy roundrobin, max_connections 10000, idle 300000 ms, grace
 * 10000 ms, connect timeout 3000 ms); retries is as given. */
struct harness_conf {
    const char *listen; /* "127.0.0.1:PORT" or "[::1]:PORT" (NULL: no "listen" key) */
    const char *strategy;
    const char *backends;
    unsigned retries;
    unsigned max_connections;
    unsigned idle_timeout_ms;
    unsigned grace_ms;
    unsigned connect_timeout_ms;
    const char *pool_extra; /* more pool keys as JSON text, each followed by ", " */
};
/* The usual config as a document kept until teardown, keys in this order:
 *   {"log": {"level": "info"}, "shutdown_grace_ms",
 *    "listeners": [{"name": "web", "listen", "mode": "tcp", "pool": "app",
 *                   "max_connections", "idle_timeout_ms"}],
 *    "pools": [{"name": "app", "strategy", "connect_timeout_ms", "retries",
 *               ...pool_extra..., "backends": [...]}]}
 * Change it with harness_jset ("pools.0.health_check", "listeners.0.
 * idle_timeout_ms", "admin.listen"...). Fails the test when backends or
 * pool_extra is not JSON, or pool_extra repeats a key. */
json_t *harness_cfg(const struct harness_conf *c);
/* harness_cfg's document as text (harness_jtext), freed at teardown. */
const char *harness_config(const struct harness_conf *c);

/* Pieces, each a new reference (see harness/json.h on ownership). */
/* {"address": address, "name": name}; name NULL: no "name" key. */
json_t *harness_backend_json(const char *address, const char *name);
/* The same with "weight": weight after the name. */
json_t *harness_backend_weighted(const char *address, const char *name, int weight);
/* {"name": name, "listen": listen, "pool": pool}. */
json_t *harness_listener_json(const char *name, const char *listen, const char *pool);
/* {"name": name, "strategy": strategy, "backends": backends}, backends
 * stolen (NULL: []); strategy NULL: no "strategy" key. */
json_t *harness_pool_json(const char *name, const char *strategy, json_t *backends);

/* harness_lb_start with the text of cfg (harness_jtext). */
void harness_lb_start_json(struct harness_lb *lb, json_t *cfg, int wait_port);
/* harness_lb_rewrite with the text of cfg (harness_jtext). */
void harness_lb_rewrite_json(const struct harness_lb *lb, json_t *cfg);

#endif
