/* privileges: lb gives up root once its sockets are bound and its
 * certificates read ("user" and "group" in the config; docs/reliability.md,
 * Privileges). No capability is kept: a reload cannot bind a new port below
 * 1024, and reads its files as that user. */
#ifndef LB_PRIVILEGES_H
#define LB_PRIVILEGES_H

#include <stddef.h>

#include "config/config.h"

/* At start, after every bind and certificate load: with cfg->user set,
 * sets the supplementary groups (the user's, with cfg->gid), then the group,
 * then the user, each checked, and checks that root cannot be taken back;
 * as root without it, logs a warning. Returns 0, or -1 with one line in err
 * (lb must then exit). Remembers who lb became for the reloads. */
int privileges_drop(const struct lb_config *cfg, char *err, size_t errlen);

/* For a reload of cfg: 0 when it names the same user and group as the
 * start, else -1 with err (they apply at start only). */
int privileges_check_reload(const struct lb_config *cfg, char *err, size_t errlen);

/* When lb dropped root and err says a bind was refused ("cannot listen
 * on ...: Permission denied"), appends why to err. */
void privileges_explain(char *err, size_t errlen);

#endif
