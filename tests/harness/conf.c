/* harness/conf: lb configs as jansson documents. harness_cfg builds the
 * usual test config, harness_config is its text (so the text and the
 * document are one way of making a config), and a few constructors make
 * the pieces tests put together with harness_jset. */
#include <stdlib.h>
#include <string.h>

#include "tests/harness/internal.h"

/* Parses the old text fields of struct harness_conf: wrap[0] text wrap[1],
 * with trailing ", " removed first. */
static json_t *parse_inside(const char *text, const char *wrap, const char *what)
{
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == ',' || text[len - 1] == '\n'))
        len--;
    const char *doc = harness_strf("%c%.*s%c", wrap[0], (int)len, text, wrap[1]);
    json_error_t err;
    json_t *j = json_loads(doc, JSON_REJECT_DUPLICATES, &err);
    ck_assert_msg(j != NULL, "harness_cfg: %s is not JSON (%s): %s", what, err.text, text);
    return j;
}

json_t *harness_cfg(const struct harness_conf *c)
{
    json_t *listener = json_object();
    ck_assert(listener != NULL);
    json_object_set_new(listener, "name", json_string("web"));
    if (c->listen)
        json_object_set_new(listener, "listen", json_string(c->listen));
    json_object_set_new(listener, "mode", json_string("tcp"));
    json_object_set_new(listener, "pool", json_string("app"));
    json_object_set_new(listener, "max_connections",
                        json_integer(c->max_connections ? c->max_connections : 10000));
    json_object_set_new(listener, "idle_timeout_ms",
                        json_integer(c->idle_timeout_ms ? c->idle_timeout_ms : 300000));

    json_t *pool = json_pack("{s:s, s:s, s:I, s:I}", "name", "app", "strategy",
                             c->strategy ? c->strategy : "roundrobin", "connect_timeout_ms",
                             (json_int_t)(c->connect_timeout_ms ? c->connect_timeout_ms : 3000),
                             "retries", (json_int_t)c->retries);
    ck_assert(pool != NULL);
    if (c->pool_extra) {
        json_t *extra = parse_inside(c->pool_extra, "{}", "pool_extra");
        const char *key;
        json_t *v;
        json_object_foreach(extra, key, v)
        {
            ck_assert_msg(json_object_get(pool, key) == NULL,
                          "harness_cfg: pool_extra repeats key \"%s\"", key);
            json_object_set(pool, key, v);
        }
        json_decref(extra);
    }
    json_object_set_new(pool, "backends",
                        c->backends ? parse_inside(c->backends, "[]", "backends") : json_array());

    json_t *cfg = json_pack("{s:{s:s}, s:I, s:[o], s:[o]}", "log", "level", "info",
                            "shutdown_grace_ms", (json_int_t)(c->grace_ms ? c->grace_ms : 10000),
                            "listeners", listener, "pools", pool);
    ck_assert(cfg != NULL);
    return harness_jkeep(cfg);
}

const char *harness_config(const struct harness_conf *c)
{
    return harness_jtext(harness_cfg(c));
}

json_t *harness_backend_json(const char *address, const char *name)
{
    json_t *b = json_pack("{s:s}", "address", address);
    ck_assert(b != NULL);
    if (name)
        json_object_set_new(b, "name", json_string(name));
    return b;
}

json_t *harness_backend_weighted(const char *address, const char *name, int weight)
{
    json_t *b = harness_backend_json(address, name);
    json_object_set_new(b, "weight", json_integer(weight));
    return b;
}

json_t *harness_listener_json(const char *name, const char *listen, const char *pool)
{
    json_t *l = json_pack("{s:s, s:s, s:s}", "name", name, "listen", listen, "pool", pool);
    ck_assert(l != NULL);
    return l;
}

json_t *harness_pool_json(const char *name, const char *strategy, json_t *backends)
{
    json_t *p = json_pack("{s:s}", "name", name);
    ck_assert(p != NULL);
    if (strategy)
        json_object_set_new(p, "strategy", json_string(strategy));
    json_object_set_new(p, "backends", backends ? backends : json_array());
    return p;
}

void harness_lb_start_json(struct harness_lb *lb, json_t *cfg, int wait_port)
{
    harness_lb_start(lb, harness_jtext(cfg), wait_port);
}

void harness_lb_rewrite_json(const struct harness_lb *lb, json_t *cfg)
{
    harness_lb_rewrite(lb, harness_jtext(cfg));
}
