/* tls_conf: the TLS contexts a config asks for, built from its "tls"
 * blocks with lb/io/tls_ctx.h — the one place that turns TLS settings into
 * OpenSSL contexts, for the start, every reload and `lb -t` alike, so all
 * three refuse the same mistakes with the same words:
 *   FILE:LINE:COL: listeners[0].tls: /etc/lb/site.key does not match the certificate in ...
 * (the block's position, then tls_ctx's message). A certificate that
 * expires within TLS_WARN_DAYS is a warning in the log, not an error. */
#ifndef LB_TLS_CONF_H
#define LB_TLS_CONF_H

#include <stddef.h>

#include "config/config.h"

struct tls_ctx;

/* Every context of one config, one reference each; NULL where the config
 * asks for none. */
struct tls_set {
    struct tls_ctx **listeners; /* [cfg->nlisteners]: termination */
    struct tls_ctx **pools;     /* [cfg->npools]: to the backends (pool "tls" enabled) */
    struct tls_ctx **checks;    /* [cfg->npools]: the https checks (the pool's settings
                                 * with the check's verify) */
    struct tls_ctx *admin;      /* the admin API's HTTPS */
    size_t nlisteners, npools;
};

/* A server context for c (enabled); NULL with err filled. */
struct tls_ctx *tls_conf_server(const struct lb_tls_server_conf *c, const char *fallback_where,
                                char *err, size_t errlen);
/* A client context for c (enabled or not: an https check uses a disabled
 * block's settings too) verifying as verify says; fallback_where prefixes
 * errors when c has no position (no "tls" key). NULL with err filled. */
struct tls_ctx *tls_conf_client(const struct lb_tls_client_conf *c, int verify,
                                const char *fallback_where, char *err, size_t errlen);

/* The context of cfg's fleet endpoint i: for https, its "tls" settings,
 * the name verified its server_name or else the endpoint's address. NULL
 * with err "" for an http endpoint, NULL with err set on a fault. */
struct tls_ctx *tls_conf_fleet(const struct lb_config *cfg, size_t i, char *err, size_t errlen);

/* Builds every context cfg needs into set (zeroed first). 0, or -1 with
 * the first error in err and set empty. */
int tls_set_build(const struct lb_config *cfg, struct tls_set *set, char *err, size_t errlen);
/* Drops the set's references (holders that took their own keep theirs). */
void tls_set_free(struct tls_set *set);

#endif
