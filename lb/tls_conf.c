/* tls_conf: a config's "tls" blocks turned into contexts (lb/tls_conf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/io/tls_ctx.h"
#include "lb/log.h"
#include "lb/tls_conf.h"

#define TLS_CONF_CERTS_MAX 64 /* certificates of one listener built on the stack */

/* "where: why", or "fallback: why" without a position. */
static void tls_conf_fail(const char *where, const char *fallback, const char *why, char *err,
                          size_t errlen)
{
    snprintf(err, errlen, "%s: %s", where ? where : fallback, why);
}

struct tls_ctx *tls_conf_server(const struct lb_tls_server_conf *c, const char *fallback_where,
                                char *err, size_t errlen)
{
    struct tls_cert_files stack[TLS_CONF_CERTS_MAX];
    struct tls_cert_files *files = stack;
    char why[1024], warn[2048];
    struct tls_ctx *t;

    if (c->ncerts > TLS_CONF_CERTS_MAX && !(files = calloc(c->ncerts, sizeof(*files)))) {
        tls_conf_fail(c->where, fallback_where, "out of memory", err, errlen);
        return NULL;
    }
    for (size_t i = 0; i < c->ncerts; i++)
        files[i] = (struct tls_cert_files){c->certs[i].cert, c->certs[i].key};
    struct tls_server_opts o = {
        .certs = files,
        .ncerts = c->ncerts,
        .min_version = c->min_version,
        .ciphers = c->ciphers,
        .ciphersuites = c->ciphersuites,
        .alpn = (const char *const *)c->alpn,
        .nalpn = c->nalpn,
    };
    warn[0] = '\0';
    t = tls_server_ctx_new(&o, why, sizeof(why), warn, sizeof(warn));
    if (files != stack)
        free(files);
    if (!t) {
        tls_conf_fail(c->where, fallback_where, why, err, errlen);
        return NULL;
    }
    if (warn[0])
        log_warn("%s: %s", c->where ? c->where : fallback_where, warn);
    return t;
}

struct tls_ctx *tls_conf_client(const struct lb_tls_client_conf *c, int verify,
                                const char *fallback_where, char *err, size_t errlen)
{
    char why[1024];
    struct tls_client_opts o = {
        .verify = verify != 0,
        .ca = c->ca,
        .server_name = c->server_name,
        .cert = c->cert,
        .key = c->key,
        .min_version = c->min_version,
        .ciphers = c->ciphers,
        .ciphersuites = c->ciphersuites,
    };
    struct tls_ctx *t = tls_client_ctx_new(&o, why, sizeof(why));
    if (!t)
        tls_conf_fail(c->where, fallback_where, why, err, errlen);
    return t;
}

struct tls_ctx *tls_conf_fleet(const struct lb_config *cfg, size_t i, char *err, size_t errlen)
{
    const struct lb_fleet_endpoint *e = &cfg->fleet.endpoints[i];
    char fallback[512];
    err[0] = '\0';
    if (!e->tls)
        return NULL;
    struct lb_tls_client_conf c = cfg->fleet.tls;
    if (!c.server_name)
        c.server_name = e->host;
    snprintf(fallback, sizeof(fallback), "%s: fleet.etcd[%zu]", cfg->path, i);
    return tls_conf_client(&c, c.verify, fallback, err, errlen);
}

int tls_set_build(const struct lb_config *cfg, struct tls_set *set, char *err, size_t errlen)
{
    char fallback[512];

    memset(set, 0, sizeof(*set));
    set->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*set->listeners));
    set->pools = calloc(cfg->npools ? cfg->npools : 1, sizeof(*set->pools));
    set->checks = calloc(cfg->npools ? cfg->npools : 1, sizeof(*set->checks));
    set->nlisteners = cfg->nlisteners;
    set->npools = cfg->npools;
    if (!set->listeners || !set->pools || !set->checks) {
        snprintf(err, errlen, "%s: out of memory", cfg->path);
        goto fail;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct lb_tls_server_conf *c = &cfg->listeners[i].tls;
        snprintf(fallback, sizeof(fallback), "%s: listeners[%zu].tls", cfg->path, i);
        if (c->enabled && !(set->listeners[i] = tls_conf_server(c, fallback, err, errlen)))
            goto fail;
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct lb_pool_conf *p = &cfg->pools[i];
        snprintf(fallback, sizeof(fallback), "%s: pools[%zu].tls", cfg->path, i);
        if (p->tls.enabled &&
            !(set->pools[i] = tls_conf_client(&p->tls, p->tls.verify, fallback, err, errlen)))
            goto fail;
        if (p->health.type != LB_CHECK_HTTPS)
            continue;
        if (set->pools[i] && p->health.verify == p->tls.verify) {
            set->checks[i] = tls_ctx_ref(set->pools[i]); /* the same settings */
            continue;
        }
        snprintf(fallback, sizeof(fallback), "%s: pools[%zu].health_check", cfg->path, i);
        if (!(set->checks[i] = tls_conf_client(&p->tls, p->health.verify, fallback, err, errlen)))
            goto fail;
    }
    if (cfg->admin.enabled && cfg->admin.tls.enabled) {
        snprintf(fallback, sizeof(fallback), "%s: admin.tls", cfg->path);
        if (!(set->admin = tls_conf_server(&cfg->admin.tls, fallback, err, errlen)))
            goto fail;
    }
    /* The fleet builds its own (its start comes first); checked here so
     * that lb -t and a reload refuse what it could not build. */
    for (size_t i = 0; i < cfg->fleet.nendpoints; i++) {
        struct tls_ctx *t = tls_conf_fleet(cfg, i, err, errlen);
        if (!t && err[0])
            goto fail;
        tls_ctx_unref(t);
    }
    return 0;
fail:
    tls_set_free(set);
    return -1;
}

void tls_set_free(struct tls_set *set)
{
    for (size_t i = 0; set->listeners && i < set->nlisteners; i++)
        tls_ctx_unref(set->listeners[i]);
    for (size_t i = 0; set->pools && i < set->npools; i++)
        tls_ctx_unref(set->pools[i]);
    for (size_t i = 0; set->checks && i < set->npools; i++)
        tls_ctx_unref(set->checks[i]);
    tls_ctx_unref(set->admin);
    free(set->listeners);
    free(set->pools);
    free(set->checks);
    memset(set, 0, sizeof(*set));
}
