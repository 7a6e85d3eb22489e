/* privileges: the drop from root at start (initgroups, setgid, setuid, in
 * that order, each checked), the warning when root stays root, and what a
 * reload may and may not change. */
#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lb/log.h"
#include "lb/privileges.h"

/* Who lb runs as since privileges_drop ("user", "group" as written). */
static char run_user[256];
static char run_group[256];
static bool dropped;

/* a and b both NULL or the same string. */
static bool same_name(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int privileges_drop(const struct lb_config *cfg, char *err, size_t errlen)
{
    snprintf(run_user, sizeof(run_user), "%s", cfg->user ? cfg->user : "");
    snprintf(run_group, sizeof(run_group), "%s", cfg->group ? cfg->group : "");
    if (!cfg->user) {
        if (geteuid() == 0)
            log_warn("running as root; set \"user\" to drop privileges");
        return 0;
    }
    /* Started as that user and group already (not root): nothing to give
     * up, and initgroups would be refused. */
    if (geteuid() != 0 && geteuid() == cfg->uid && getuid() == cfg->uid && getegid() == cfg->gid &&
        getgid() == cfg->gid) {
        log_info("running as user %s (uid %ld, gid %ld)", cfg->user, (long)cfg->uid,
                 (long)cfg->gid);
        return 0;
    }
    /* The supplementary groups first (root's would stay otherwise), then
     * the group while lb may still change it, then the user. */
    if (initgroups(cfg->user, cfg->gid) < 0) {
        snprintf(err, errlen, "cannot drop privileges: initgroups(%s): %s", cfg->user,
                 strerror(errno));
        return -1;
    }
    if (setgid(cfg->gid) < 0) {
        snprintf(err, errlen, "cannot drop privileges: setgid(%ld): %s", (long)cfg->gid,
                 strerror(errno));
        return -1;
    }
    if (setuid(cfg->uid) < 0) {
        snprintf(err, errlen, "cannot drop privileges: setuid(%ld): %s", (long)cfg->uid,
                 strerror(errno));
        return -1;
    }
    if (getuid() != cfg->uid || geteuid() != cfg->uid || getgid() != cfg->gid ||
        getegid() != cfg->gid || (cfg->uid != 0 && setuid(0) == 0)) {
        snprintf(err, errlen, "cannot drop privileges: still uid %ld gid %ld after setuid(%ld)",
                 (long)geteuid(), (long)getegid(), (long)cfg->uid);
        return -1;
    }
    dropped = cfg->uid != 0;
    log_info("running as user %s (uid %ld, gid %ld)", cfg->user, (long)cfg->uid, (long)cfg->gid);
    return 0;
}

int privileges_check_reload(const struct lb_config *cfg, char *err, size_t errlen)
{
    const char *user = run_user[0] ? run_user : NULL;
    const char *group = run_group[0] ? run_group : NULL;
    if (same_name(cfg->user, user) && same_name(cfg->group, group))
        return 0;
    snprintf(err, errlen,
             "\"user\" and \"group\" apply at start only (lb runs as %s): restart lb to change "
             "them",
             user ? user : "the user that started it");
    return -1;
}

void privileges_explain(char *err, size_t errlen)
{
    if (!dropped || !strstr(err, "cannot listen on ") || !strstr(err, strerror(EACCES)))
        return;
    size_t len = strlen(err);
    snprintf(err + len, errlen - len,
             " (lb runs as %s; ports below 1024 need root or CAP_NET_BIND_SERVICE)", run_user);
}
