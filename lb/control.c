/* control: the backend control verbs (see control.h). Each goes through
 * backend_refresh(), the path health takes, so that the strategy, the
 * pool's count of available backends and the "no available backend" line
 * follow an operator's change exactly as they follow a check's. */
#include "lb/control.h"
#include "lb/http_reuse.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/pool_health.h"
#include "lb/session.h"

const char *backend_admin_verb(enum backend_admin state)
{
    switch (state) {
    case BACKEND_DRAINING:
        return "drain";
    case BACKEND_DISABLED:
        return "disable";
    case BACKEND_ENABLED:
        break;
    }
    return "enable";
}

int backend_set_admin_state(struct backend *b, enum backend_admin state)
{
    struct pool *pool = b->pool;
    if (!pool || b->removed)
        return -1;
    if (state == b->admin)
        return 0;
    const char *was = backend_state_name(b);
    b->admin = state;
    backend_refresh(b);
    log_info("admin: pool %s backend %s state %s (was %s)", pool->name, b->id,
             backend_admin_verb(state), was);
    if (state != BACKEND_ENABLED)
        http_reuse_flush(b); /* an idle connection would carry no new request */
    if (state == BACKEND_DISABLED)
        backend_close_sessions(b, SESSION_END_BACKEND_DISABLED);
    return 0;
}

int backend_set_weight_override(struct backend *b, unsigned weight)
{
    struct pool *pool = b->pool;
    if (!pool || b->removed)
        return -1;
    if (weight > LB_WEIGHT_MAX)
        weight = LB_WEIGHT_MAX;
    b->weight_overridden = true; /* even when unchanged: a reload keeps it */
    if (weight == b->weight)
        return 0;
    unsigned was = b->weight;
    if (pool_set_backend_weight(pool, b, weight) < 0)
        return -1;
    log_info("admin: pool %s backend %s weight %u (was %u)", pool->name, b->id, weight, was);
    backend_refresh(b);
    pool_note_available(pool);
    return 0;
}

int backend_clear_weight_override(struct backend *b, unsigned weight)
{
    if (!b->weight_overridden)
        return 0;
    if (backend_set_weight_override(b, weight) < 0)
        return -1;
    b->weight_overridden = false;
    return 0;
}
