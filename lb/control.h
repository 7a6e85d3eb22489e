/* control: the operator's verbs on a backend — drain, disable, enable, and
 * a weight that wins over the file's — in one place: what each changes, in
 * which order, and the one line each logs. The admin API calls them; a
 * reload carries what they set over to the next generation
 * (pool_adopt_backend()). */
#ifndef LB_CONTROL_H
#define LB_CONTROL_H

#include "lb/pool.h"

/* Sets b's admin state (BACKEND_DRAINING: no new sessions, open ones go
 * on; BACKEND_DISABLED: the same, and its open sessions are closed at once;
 * BACKEND_ENABLED: health decides again), refreshes its availability and
 * logs "admin: pool P backend B state drain (was up)". Nothing when b
 * already has that state. b must be in a pool. 0, or -1 (b in no pool, or removed by a reload). */
int backend_set_admin_state(struct backend *b, enum backend_admin state);
/* The word that asks for state ("enable", "drain", "disable"): in the
 * admin API's PATCH, etcd's backend states and the log line. */
const char *backend_admin_verb(enum backend_admin state);
/* Gives b the operator's weight (0..LB_WEIGHT_MAX), in full at once: a
 * reload keeps it over the file's, even when it equals b's weight now.
 * Logs "admin: pool P backend B weight N (was M)" and notes the pool's
 * availability when the weight changed (weight 0 takes b out, like down).
 * 0, or -1 with b's weight unchanged (the strategy could not rebuild:
 * ENOMEM; b in no pool, or removed by a reload). */
int backend_set_weight_override(struct backend *b, unsigned weight);
/* Ends the operator's weight: b takes weight (the config's) again and a
 * reload no longer keeps an override. Logged like a weight change when it
 * changes. 0 or -1 like backend_set_weight_override(). */
int backend_clear_weight_override(struct backend *b, unsigned weight);

#endif
