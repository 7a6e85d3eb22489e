/* pool_health: what health means for lb's pools (lb/pool_health.c): the
 * active checks of health/, passive ejection and slow start turned into
 * each backend's availability, and each transition logged once. */
#ifndef LB_POOL_HEALTH_H
#define LB_POOL_HEALTH_H

#include <stdbool.h>

#include "config/config.h"

struct pool;
struct backend;
struct event_base;

/* Health (lb/pool_health.c). pool_health_start takes the pool's check,
 * passive and slow-start settings from conf and starts every backend's
 * checks on base. 0, or -1 (ENOMEM; nothing left running). */
int pool_health_start(struct pool *pool, const struct lb_pool_conf *conf, struct event_base *base);
/* Stops b's checks and timers; b keeps its last state. Whoever started
 * them stops them: the runtime when it stops, a reload for the backends it
 * removes. */
void backend_health_stop(struct backend *b);
/* backend_health_stop() for every backend of pool (one a reload adopted
 * into a newer pool is not in it any more). */
void pool_health_stop(struct pool *pool);
/* A connect to b from real traffic succeeded or failed (passive ejection). */
void backend_connect_result(struct backend *b, bool ok);
/* Recomputes b->up from health, ejection and the admin state, tells the
 * strategy, and logs a pool that has just run out of (or regained)
 * available backends. */
void backend_refresh(struct backend *b);
/* "up", "down", "draining" or "disabled", as the admin API shows it. */
const char *backend_state_name(const struct backend *b);
/* Logs, once per change, that the pool has no available backend or has
 * some again. Called after any change of a backend's availability. */
void pool_note_available(struct pool *pool);

#endif
