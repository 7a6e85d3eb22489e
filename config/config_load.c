/* config_load: reads a JSON file with jansson, validates every key against
 * the schema below and builds one immutable struct lb_config, or writes one
 * "file:line:col: json.path: message" line. Defaults and ranges live in the
 * rule tables at the top of this file and nowhere else. Positions of
 * non-syntax errors come from json_locate.c. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "config/json_locate.h"

/* An integer key: its range and the default used when it is absent. */
struct int_rule {
    const char *key;
    long long min, max, def;
    int prime; /* must also be a prime */
};

static const struct int_rule RULE_SHUTDOWN_GRACE = {"shutdown_grace_ms", 0, 3600000, 10000, 0};
static const struct int_rule RULE_MAX_CONNECTIONS = {"max_connections", 1, 1000000, 10000, 0};
static const struct int_rule RULE_IDLE_TIMEOUT = {"idle_timeout_ms", 0, 86400000, 300000, 0};
static const struct int_rule RULE_REQUEST_TIMEOUT = {"request_timeout_ms", 100, 3600000, 10000, 0};
static const struct int_rule RULE_MAX_HEADER_BYTES = {"max_header_bytes", 1024, 1048576, 32768, 0};
static const struct int_rule RULE_CONNECT_TIMEOUT = {"connect_timeout_ms", 1, 3600000, 3000, 0};
static const struct int_rule RULE_RETRIES = {"retries", 0, 15, 2, 0};
static const struct int_rule RULE_HASH_TABLE_SIZE = {"hash_table_size", 7, 1048573,
                                                     LB_MAGLEV_DEFAULT_SIZE, 1};
static const struct int_rule RULE_WEIGHT = {"weight", 0, LB_WEIGHT_MAX, 1, 0};
static const struct int_rule RULE_SLOW_START = {"slow_start_ms", 0, 3600000, 0, 0};
static const struct int_rule RULE_RESPONSE_TIMEOUT = {"response_timeout_ms", 100, 86400000, 60000,
                                                      0};
static const struct int_rule RULE_REUSE_MAX_IDLE = {"max_idle", 0, 10000, 32, 0};
static const struct int_rule RULE_REUSE_IDLE_TIMEOUT = {"idle_timeout_ms", 100, 3600000, 60000, 0};
static const struct int_rule RULE_HC_INTERVAL = {"interval_ms", 10, 86400000, 2000, 0};
static const struct int_rule RULE_HC_TIMEOUT = {"timeout_ms", 1, 3600000, 1000, 0};
static const struct int_rule RULE_HC_RISE = {"rise", 1, 100, 2, 0};
static const struct int_rule RULE_HC_FALL = {"fall", 1, 100, 3, 0};
static const struct int_rule RULE_HC_PORT = {"port", 1, 65535, 0, 0}; /* 0: traffic port */
static const struct int_rule RULE_PASSIVE_FAILURES = {"max_failures", 0, 1000, 3, 0};
static const struct int_rule RULE_PASSIVE_EJECTION = {"ejection_ms", 1, 86400000, 30000, 0};
/* Absent: no limit of its own (0). */
static const struct int_rule RULE_GLOBAL_MAX_CONNECTIONS = {"max_connections", 1, 10000000, 0, 0};
static const struct int_rule RULE_BACKEND_MAX_CONNECTIONS = {"max_connections", 1, 1000000, 0, 0};
static const struct int_rule RULE_QUEUE_MAX = {"max", 0, 1000000, 0, 0};
static const struct int_rule RULE_QUEUE_TIMEOUT = {"timeout_ms", 1, 3600000, 5000, 0};
static const struct int_rule RULE_ADMIN_MAX_CONNECTIONS = {"max_connections", 1, 10000, 64, 0};
static const struct int_rule RULE_ADMIN_REQUEST_TIMEOUT = {"request_timeout_ms", 100, 3600000,
                                                           10000, 0};
/* The kernel's limits (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT). */
static const struct int_rule RULE_HANDSHAKE_TIMEOUT = {"handshake_timeout_ms", 100, 3600000, 10000,
                                                       0};
static const struct int_rule RULE_DNS_PORT = {"port", 1, 65535, 0, 0};
static const struct int_rule RULE_DNS_REFRESH = {"refresh_ms", 100, 86400000, 5000, 0};
static const struct int_rule RULE_KA_IDLE = {"idle", 1, 32767, 60, 0};
static const struct int_rule RULE_KA_INTERVAL = {"interval", 1, 32767, 10, 0};
static const struct int_rule RULE_KA_COUNT = {"count", 1, 127, 6, 0};
static const struct int_rule RULE_FLEET_TIMEOUT = {"timeout_ms", 100, 60000, 2000, 0};
static const struct int_rule RULE_FLEET_START_TIMEOUT = {"start_timeout_ms", 0, 600000, 10000, 0};

#define DEFAULT_HC_METHOD "GET"
#define DEFAULT_HC_PATH "/"
#define DEFAULT_HC_STATUS_MIN 200
#define DEFAULT_HC_STATUS_MAX 399
#define HC_TEXT_MAX 1024

#define DEFAULT_TLS_MIN_VERSION "TLSv1.2"
#define TLS_ALPN_MAX 16 /* protocol names a listener may offer */
#define TLS_SNI_ROUTES_MAX 10000

#define DEFAULT_LOG_LEVEL LB_LOG_INFO
#define DEFAULT_STRATEGY LB_STRATEGY_ROUNDROBIN
#define DEFAULT_MODE LB_MODE_TCP

/* Largest file accepted: a config is small; this bounds memory and time. */
#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define PATH_DEPTH_MAX 8
#define MESSAGE_MAX 1024

static const char *const LOG_LEVEL_NAMES[] = {"error", "warn", "info", "debug", NULL};
static const char *const STRATEGY_NAMES[] = {"roundrobin", "weighted", "leastconn", "iphash", NULL};
static const char *const MODE_NAMES[] = {"tcp", "http", NULL};

static const char *const ROOT_KEYS[] = {
    "log",   "shutdown_grace_ms", "max_connections", "listeners", "pools", "admin", "user",
    "group", "resolvers",         "fleet",           NULL};
static const char *const FLEET_KEYS[] = {
    "etcd", "prefix", "token", "timeout_ms", "start_timeout_ms", "tls", NULL};
static const char *const FLEET_REQUIRED[] = {"etcd", "prefix", NULL};
static const char *const ADMIN_KEYS[] = {"listen", "token", "max_connections", "request_timeout_ms",
                                         "tls",    NULL};
static const char *const TLS_VERSIONS[] = {"TLSv1.2", "TLSv1.3", NULL};
static const char *const TLS_LISTEN_KEYS[] = {
    "certificates", "min_version", "ciphers", "ciphersuites", "alpn", "handshake_timeout_ms", NULL};
static const char *const TLS_LISTEN_REQUIRED[] = {"certificates", NULL};
static const char *const TLS_CERT_KEYS[] = {"cert", "key", NULL};
static const char *const TLS_ADMIN_KEYS[] = {"cert",    "key",          "min_version",
                                             "ciphers", "ciphersuites", NULL};
static const char *const TLS_POOL_KEYS[] = {"enabled",      "verify", "ca",          "server_name",
                                            "cert",         "key",    "min_version", "ciphers",
                                            "ciphersuites", NULL};
static const char *const SNI_ROUTE_KEYS[] = {"server_name", "pool", NULL};
static const char *const ADMIN_REQUIRED[] = {"listen", NULL};
static const char *const LOG_KEYS[] = {"level", "format", "access_log", NULL};
static const char *const LOG_FORMAT_NAMES[] = {"text", "json", NULL};
static const char *const LISTENER_KEYS[] = {"name",
                                            "listen",
                                            "mode",
                                            "pool",
                                            "max_connections",
                                            "idle_timeout_ms",
                                            "tcp_keepalive",
                                            "splice",
                                            "reuse_port",
                                            "accept_proxy",
                                            "request_timeout_ms",
                                            "max_header_bytes",
                                            "x_real_ip",
                                            "forwarded",
                                            "tls",
                                            "sni_routes",
                                            NULL};
/* Listener keys that only apply to "mode": "http". */
static const char *const LISTENER_HTTP_ONLY[] = {"max_header_bytes", "x_real_ip", "forwarded",
                                                 NULL};
static const char *const LISTENER_REQUIRED[] = {"name", "listen", "pool", NULL};
static const char *const POOL_KEYS[] = {"name",       "strategy",        "connect_timeout_ms",
                                        "retries",    "hash_table_size", "health_check",
                                        "passive",    "slow_start_ms",   "tcp_keepalive",
                                        "send_proxy", "keepalive",       "response_timeout_ms",
                                        "tls",        "queue",           "backends",
                                        NULL};
static const char *const CHECK_KEYS[] = {
    "type",   "interval_ms", "timeout_ms",    "rise",        "fall",       "port",   "path",
    "method", "host",        "expect_status", "expect_body", "send_proxy", "verify", NULL};
static const char *const CHECK_REQUIRED[] = {"type", NULL};
static const char *const CHECK_HTTP_ONLY[] = {"path",          "method",      "host",
                                              "expect_status", "expect_body", NULL};
static const char *const PASSIVE_KEYS[] = {"max_failures", "ejection_ms", NULL};
static const char *const KEEPALIVE_KEYS[] = {"idle", "interval", "count", NULL};
static const char *const REUSE_KEYS[] = {"max_idle", "idle_timeout_ms", NULL};
static const char *const POOL_REQUIRED[] = {"name", "backends", NULL};
static const char *const QUEUE_KEYS[] = {"max", "timeout_ms", NULL};
static const char *const BACKEND_KEYS[] = {"address",   "weight", "name", "max_connections",
                                           "dns",       "type",   "port", "refresh_ms",
                                           "resolvers", NULL};
static const char *const BACKEND_DNS_ONLY[] = {"type", "port", "refresh_ms", "resolvers", NULL};
static const char *const DNS_TYPE_NAMES[] = {"A", "AAAA", "SRV", NULL};

/* State of one load: the raw text for positions, and the JSON path of the
 * value being checked, so an error can say where it is. */
struct loader {
    const char *file; /* for messages: the file, or a document's source */
    const char *base; /* the config file: relative file names are against its folder */
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
    struct json_step path[PATH_DEPTH_MAX];
    size_t depth;
    const char *resolvers; /* the root's "resolvers": a "dns" entry's default */
    /* config_merge(): pools from outside the file, and every pool named
     * must then exist; else (fleet on) a missing one is left unlinked. */
    const struct config_doc *docs;
    size_t ndocs;
    int merging;
};

enum err_at { AT_VALUE, AT_KEY };

static void path_push_key(struct loader *ld, const char *key)
{
    if (ld->depth < PATH_DEPTH_MAX)
        ld->path[ld->depth] = (struct json_step){key, 0};
    ld->depth++;
}

static void path_push_index(struct loader *ld, size_t index)
{
    if (ld->depth < PATH_DEPTH_MAX)
        ld->path[ld->depth] = (struct json_step){NULL, index};
    ld->depth++;
}

static void path_pop(struct loader *ld)
{
    ld->depth--;
}

/* Renders the first N steps of the path as "pools[0].backends[1].weight",
 * or "(root)" for none. */
static void path_format(const struct loader *ld, size_t n, char *buf, size_t cap)
{
    size_t o = 0;

    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, cap, "(root)");
        return;
    }
    for (size_t i = 0; i < n && o < cap; i++) {
        const struct json_step *s = &ld->path[i];
        char q[CONFIG_ESCAPE_SIZE];
        int w;
        if (s->key)
            w = snprintf(buf + o, cap - o, "%s%s", i ? "." : "",
                         config_escape(q, sizeof(q), s->key));
        else
            w = snprintf(buf + o, cap - o, "[%zu]", s->index);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* "file:line:col: json.path" (or "file: json.path" when no position
 * applies) of the value at the current path (AT_KEY: of the key that is
 * the last step, shown under its object's path). */
static void load_position(const struct loader *ld, enum err_at at, char *buf, size_t cap)
{
    char where[512];
    size_t depth = ld->depth < PATH_DEPTH_MAX ? ld->depth : PATH_DEPTH_MAX;
    size_t offset;
    unsigned line, col;

    path_format(ld, at == AT_KEY && depth > 0 ? depth - 1 : depth, where, sizeof(where));
    if (json_locate(ld->text, ld->len, ld->path, depth, at == AT_KEY, &offset) < 0) {
        snprintf(buf, cap, "%s: %s", ld->file, where);
        return;
    }
    json_line_col(ld->text, ld->len, offset, &line, &col);
    snprintf(buf, cap, "%s:%u:%u: %s", ld->file, line, col, where);
}

/* Writes the error for the value at the current path (AT_KEY: for the key
 * that is the last step). Returns -1. */
static int __attribute__((format(printf, 3, 4)))
load_fail(struct loader *ld, enum err_at at, const char *fmt, ...)
{
    char msg[MESSAGE_MAX], where[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    load_position(ld, at, where, sizeof(where));
    snprintf(ld->err, ld->errlen, "%s: %s", where, msg);
    return -1;
}

static int load_oom(struct loader *ld)
{
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->file);
    return -1;
}

/* "a string", "an array"...: what a value is, for "(got ...)". */
static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Levenshtein distance, for "did you mean". Both strings are short. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[LB_NAME_MAX + 1];

    if (la > LB_NAME_MAX || lb > LB_NAME_MAX)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int key_allowed(const char *key, const char *const allowed[])
{
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(key, allowed[i]) == 0)
            return 1;
    return 0;
}

/* Rejects the first key of OBJ (in file order) that ALLOWED does not list. */
static int load_keys(struct loader *ld, json_t *obj, const char *const allowed[])
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        char q[CONFIG_ESCAPE_SIZE];
        const char *best = NULL;
        size_t best_d = 3;
        if (key_allowed(key, allowed))
            continue;
        for (size_t i = 0; allowed[i]; i++) {
            size_t d = edit_distance(key, allowed[i]);
            if (d < best_d) {
                best_d = d;
                best = allowed[i];
            }
        }
        config_escape(q, sizeof(q), key);
        path_push_key(ld, key);
        if (best)
            return load_fail(ld, AT_KEY, "unknown key \"%s\" (did you mean \"%s\"?)", q, best);
        return load_fail(ld, AT_KEY, "unknown key \"%s\"", q);
    }
    return 0;
}

/* Reports the first key of REQUIRED missing from OBJ, at OBJ's '{'. */
static int load_required(struct loader *ld, json_t *obj, const char *const required[])
{
    for (size_t i = 0; required[i]; i++)
        if (!json_object_get(obj, required[i]))
            return load_fail(ld, AT_VALUE, "missing required key \"%s\"", required[i]);
    return 0;
}

/* Checks the object at the current path: its type, then unknown keys, then
 * missing required ones. */
static int load_object(struct loader *ld, json_t *obj, const char *const allowed[],
                       const char *const required[])
{
    if (!json_is_object(obj))
        return load_fail(ld, AT_VALUE, "must be an object");
    if (load_keys(ld, obj, allowed) < 0)
        return -1;
    return required ? load_required(ld, obj, required) : 0;
}

static int is_prime(long long n)
{
    if (n < 2)
        return 0;
    for (long long d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

/* Reads the optional integer RULE->key of OBJ into *out, or its default. */
static int load_uint(struct loader *ld, json_t *obj, const struct int_rule *rule, unsigned *out)
{
    json_t *v = json_object_get(obj, rule->key);
    const char *what = rule->prime ? "a prime" : "an integer";
    long long n;

    if (!v) {
        *out = (unsigned)rule->def;
        return 0;
    }
    path_push_key(ld, rule->key);
    if (!json_is_integer(v))
        return load_fail(ld, AT_VALUE, "must be %s from %lld to %lld (got %s)", what, rule->min,
                         rule->max, json_kind(v));
    n = json_integer_value(v);
    if (n < rule->min || n > rule->max || (rule->prime && !is_prime(n)))
        return load_fail(ld, AT_VALUE, "must be %s from %lld to %lld (got %lld)", what, rule->min,
                         rule->max, n);
    *out = (unsigned)n;
    path_pop(ld);
    return 0;
}

/* Reads the optional boolean KEY of OBJ into *out, or def when absent. */
static int load_bool(struct loader *ld, json_t *obj, const char *key, int def, int *out)
{
    json_t *v = json_object_get(obj, key);

    *out = def;
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        path_push_key(ld, key);
        return load_fail(ld, AT_VALUE, "must be true or false (got %s)", json_kind(v));
    }
    *out = json_is_true(v);
    return 0;
}

/* Reads string KEY of OBJ into *out (owned by jansson), NULL when absent.
 * Required keys were checked by load_required(). */
static int load_string(struct loader *ld, json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        path_push_key(ld, key);
        return load_fail(ld, AT_VALUE, "must be a string");
    }
    *out = json_string_value(v);
    return 0;
}

static int name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > LB_NAME_MAX)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Reads a name (listener, pool, backend): 1..64 of [A-Za-z0-9_.-]. */
static int load_name(struct loader *ld, json_t *obj, const char *key, const char **out)
{
    char q[CONFIG_ESCAPE_SIZE];

    if (load_string(ld, obj, key, out) < 0)
        return -1;
    if (!*out || name_valid(*out))
        return 0;
    path_push_key(ld, key);
    return load_fail(ld, AT_VALUE, "must be 1 to %d characters of A-Z a-z 0-9 _ . - (got \"%s\")",
                     LB_NAME_MAX, config_escape(q, sizeof(q), *out));
}

/* Reads optional KEY of OBJ, one of NAMES, into *out as its index. */
static int load_choice(struct loader *ld, json_t *obj, const char *key, const char *const names[],
                       int def, int *out)
{
    char list[256], q[CONFIG_ESCAPE_SIZE];
    const char *s;
    size_t o = 0;

    if (load_string(ld, obj, key, &s) < 0)
        return -1;
    *out = def;
    if (!s)
        return 0;
    for (int i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s\"%s\"", i ? ", " : "", names[i]);
    }
    path_push_key(ld, key);
    return load_fail(ld, AT_VALUE, "must be one of %s (got \"%s\")", list,
                     config_escape(q, sizeof(q), s));
}

/* Reads the required array KEY of OBJ, which must hold at least one WHAT. */
static int load_array(struct loader *ld, json_t *obj, const char *key, const char *what,
                      json_t **out)
{
    json_t *v = json_object_get(obj, key);

    *out = v;
    path_push_key(ld, key);
    if (!json_is_array(v))
        return load_fail(ld, AT_VALUE, "must be an array");
    if (json_array_size(v) == 0)
        return load_fail(ld, AT_VALUE, "must contain at least one %s", what);
    path_pop(ld);
    return 0;
}

/* Parses the address at KEY of OBJ (a required string) into ADDR; FLAGS
 * as config_parse_address() takes them. A host name (CONFIG_ADDR_NAME)
 * goes to *host and *port, with *where its position, for the resolver. */
static int load_address(struct loader *ld, json_t *obj, const char *key, unsigned flags,
                        struct sockaddr_storage *addr, socklen_t *addrlen, char **text, char **host,
                        unsigned short *port, char **where)
{
    char why[512], name[CONFIG_HOST_MAX + 1], at[1024];
    const char *s;
    int rc;

    if (load_string(ld, obj, key, &s) < 0)
        return -1;
    path_push_key(ld, key);
    rc = config_parse_address(s, flags, addr, addrlen, name, port, why, sizeof(why));
    if (rc < 0)
        return load_fail(ld, AT_VALUE, "%s", why);
    if (rc == 1) {
        load_position(ld, AT_VALUE, at, sizeof(at));
        if (!(*host = strdup(name)) || !(*where = strdup(at)))
            return load_oom(ld);
    }
    path_pop(ld);
    *text = strdup(s);
    return *text ? 0 : load_oom(ld);
}

static int load_file_name(struct loader *ld, json_t *obj, const char *key, char **out);

static int load_log(struct loader *ld, json_t *root, struct lb_config *cfg)
{
    json_t *log = json_object_get(root, "log");
    int level;

    cfg->log_level = DEFAULT_LOG_LEVEL;
    if (!log)
        return 0;
    path_push_key(ld, "log");
    if (load_object(ld, log, LOG_KEYS, NULL) < 0)
        return -1;
    if (load_choice(ld, log, "level", LOG_LEVEL_NAMES, DEFAULT_LOG_LEVEL, &level) < 0)
        return -1;
    cfg->log_level = (enum lb_log_level)level;
    if (load_choice(ld, log, "format", LOG_FORMAT_NAMES, LB_LOG_TEXT, &level) < 0)
        return -1;
    cfg->log_format = (enum lb_log_format)level;
    if (load_file_name(ld, log, "access_log", &cfg->access_log) < 0)
        return -1;
    path_pop(ld);
    return 0;
}

static int load_mode(struct loader *ld, json_t *obj, enum lb_mode *out)
{
    char q[CONFIG_ESCAPE_SIZE];
    const char *s;

    if (load_string(ld, obj, "mode", &s) < 0)
        return -1;
    *out = DEFAULT_MODE;
    if (!s || strcmp(s, MODE_NAMES[LB_MODE_TCP]) == 0)
        return 0;
    if (strcmp(s, MODE_NAMES[LB_MODE_HTTP]) == 0) {
        *out = LB_MODE_HTTP;
        return 0;
    }
    path_push_key(ld, "mode");
    return load_fail(ld, AT_VALUE, "must be \"tcp\" or \"http\" (got \"%s\")",
                     config_escape(q, sizeof(q), s));
}

/* A listener's http-mode keys. They are read in every mode (so a tcp
 * listener stores the defaults), but only an http listener may set them. */
static int load_listener_http(struct loader *ld, json_t *obj, struct lb_listener_conf *l)
{
    if (l->mode != LB_MODE_HTTP) {
        for (size_t k = 0; LISTENER_HTTP_ONLY[k]; k++) {
            if (!json_object_get(obj, LISTENER_HTTP_ONLY[k]))
                continue;
            path_push_key(ld, LISTENER_HTTP_ONLY[k]);
            return load_fail(ld, AT_KEY, "key \"%s\" only applies to \"mode\": \"http\"",
                             LISTENER_HTTP_ONLY[k]);
        }
    }
    if (load_uint(ld, obj, &RULE_MAX_HEADER_BYTES, &l->max_header_bytes) < 0 ||
        load_bool(ld, obj, "x_real_ip", 0, &l->x_real_ip) < 0 ||
        load_bool(ld, obj, "forwarded", 0, &l->forwarded) < 0)
        return -1;
    return 0;
}

/* The optional "tcp_keepalive" object of a listener or pool; absent:
 * keepalive stays off (the OS default), {}: on with the defaults. */
static int load_keepalive(struct loader *ld, json_t *parent, struct lb_keepalive_conf *ka)
{
    json_t *obj = json_object_get(parent, "tcp_keepalive");

    ka->enabled = 0;
    ka->idle_s = (unsigned)RULE_KA_IDLE.def;
    ka->interval_s = (unsigned)RULE_KA_INTERVAL.def;
    ka->count = (unsigned)RULE_KA_COUNT.def;
    if (!obj)
        return 0;
    path_push_key(ld, "tcp_keepalive");
    if (load_object(ld, obj, KEEPALIVE_KEYS, NULL) < 0 ||
        load_uint(ld, obj, &RULE_KA_IDLE, &ka->idle_s) < 0 ||
        load_uint(ld, obj, &RULE_KA_INTERVAL, &ka->interval_s) < 0 ||
        load_uint(ld, obj, &RULE_KA_COUNT, &ka->count) < 0)
        return -1;
    ka->enabled = 1;
    path_pop(ld);
    return 0;
}

static int load_text(struct loader *ld, json_t *obj, const char *key, const char *def,
                     const char *chars, char first, const char *what, char **out);

/* The position of the current path, kept as a TLS block's "where". */
static int load_where(struct loader *ld, char **out)
{
    char where[1024];

    load_position(ld, AT_VALUE, where, sizeof(where));
    *out = strdup(where);
    return *out ? 0 : load_oom(ld);
}

/* Reads the file name at KEY of OBJ (optional: *out stays NULL; a
 * non-empty string) and makes it absolute against the config file's
 * folder, so a reload from another working directory reads the same
 * file. */
static int load_file_name(struct loader *ld, json_t *obj, const char *key, char **out)
{
    const char *s, *slash;
    size_t dir;

    if (load_string(ld, obj, key, &s) < 0)
        return -1;
    if (!s)
        return 0;
    if (s[0] == '\0' || strlen(s) > 4096) {
        path_push_key(ld, key);
        return load_fail(ld, AT_VALUE, "must be a file name of 1 to 4096 bytes");
    }
    slash = strrchr(ld->base, '/');
    dir = s[0] == '/' || !slash ? 0 : (size_t)(slash - ld->base) + 1;
    if (!(*out = malloc(dir + strlen(s) + 1)))
        return load_oom(ld);
    memcpy(*out, ld->base, dir);
    strcpy(*out + dir, s);
    return 0;
}

/* "min_version", "ciphers" and "ciphersuites" of a TLS block. The cipher
 * strings are checked by OpenSSL when the context is built. */
static int load_tls_common(struct loader *ld, json_t *obj, char **min_version, char **ciphers,
                           char **ciphersuites)
{
    int v;

    if (load_choice(ld, obj, "min_version", TLS_VERSIONS, 0, &v) < 0)
        return -1;
    if (!(*min_version = strdup(TLS_VERSIONS[v])))
        return load_oom(ld);
    if (load_text(ld, obj, "ciphers", NULL, NULL, 0, "1 to 1024 characters of printable ASCII",
                  ciphers) < 0 ||
        load_text(ld, obj, "ciphersuites", NULL, NULL, 0, "1 to 1024 characters of printable ASCII",
                  ciphersuites) < 0)
        return -1;
    return 0;
}

/* One {"cert": ..., "key": ...}. The path is at the object. */
static int load_tls_cert(struct loader *ld, json_t *obj, const char *const keys[],
                         struct lb_tls_cert_conf *c)
{
    static const char *const required[] = {"cert", "key", NULL};

    if (load_object(ld, obj, keys, required) < 0 || load_file_name(ld, obj, "cert", &c->cert) < 0 ||
        load_file_name(ld, obj, "key", &c->key) < 0)
        return -1;
    return 0;
}

/* "alpn": an array of 1..TLS_ALPN_MAX protocol names of 1..255 bytes. */
static int load_alpn(struct loader *ld, json_t *obj, struct lb_tls_server_conf *t, int http)
{
    char q[CONFIG_ESCAPE_SIZE];
    json_t *arr = json_object_get(obj, "alpn"), *v;
    size_t i;

    if (!arr)
        return 0;
    path_push_key(ld, "alpn");
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > TLS_ALPN_MAX)
        return load_fail(ld, AT_VALUE,
                         "must be an array of 1 to %d protocol names, like "
                         "[\"http/1.1\"]",
                         TLS_ALPN_MAX);
    if (!(t->alpn = calloc(json_array_size(arr), sizeof(*t->alpn))))
        return load_oom(ld);
    json_array_foreach(arr, i, v)
    {
        path_push_index(ld, i);
        size_t n = json_is_string(v) ? strlen(json_string_value(v)) : 0;
        if (n == 0 || n > 255)
            return load_fail(ld, AT_VALUE, "must be a protocol name of 1 to 255 bytes");
        /* http mode speaks HTTP/1.x: announcing another protocol (h2)
         * would make clients speak what lb cannot read. */
        if (http && strcmp(json_string_value(v), "http/1.1") != 0 &&
            strcmp(json_string_value(v), "http/1.0") != 0)
            return load_fail(ld, AT_VALUE,
                             "\"mode\": \"http\" speaks HTTP/1.x only: \"http/1.1\" or "
                             "\"http/1.0\" (got \"%s\")",
                             config_escape(q, sizeof(q), json_string_value(v)));
        if (!(t->alpn[i] = strdup(json_string_value(v))))
            return load_oom(ld);
        t->nalpn = i + 1;
        path_pop(ld);
    }
    path_pop(ld);
    return 0;
}

/* A listener's optional "tls" object: TLS termination. */
static int load_listener_tls(struct loader *ld, json_t *parent, struct lb_tls_server_conf *t,
                             int http)
{
    json_t *obj = json_object_get(parent, "tls"), *arr, *v;
    size_t i;

    t->handshake_timeout_ms = (unsigned)RULE_HANDSHAKE_TIMEOUT.def;
    if (!obj)
        return 0;
    path_push_key(ld, "tls");
    if (load_object(ld, obj, TLS_LISTEN_KEYS, TLS_LISTEN_REQUIRED) < 0 ||
        load_where(ld, &t->where) < 0)
        return -1;
    if (load_array(ld, obj, "certificates", "certificate", &arr) < 0)
        return -1;
    if (!(t->certs = calloc(json_array_size(arr), sizeof(*t->certs))))
        return load_oom(ld);
    path_push_key(ld, "certificates");
    json_array_foreach(arr, i, v)
    {
        path_push_index(ld, i);
        t->ncerts = i + 1;
        if (load_tls_cert(ld, v, TLS_CERT_KEYS, &t->certs[i]) < 0)
            return -1;
        path_pop(ld);
    }
    path_pop(ld);
    if (load_tls_common(ld, obj, &t->min_version, &t->ciphers, &t->ciphersuites) < 0 ||
        load_alpn(ld, obj, t, http) < 0 ||
        load_uint(ld, obj, &RULE_HANDSHAKE_TIMEOUT, &t->handshake_timeout_ms) < 0)
        return -1;
    t->enabled = 1;
    path_pop(ld);
    return 0;
}

/* The admin API's optional "tls": one certificate. */
static int load_admin_tls(struct loader *ld, json_t *parent, struct lb_tls_server_conf *t)
{
    json_t *obj = json_object_get(parent, "tls");

    t->handshake_timeout_ms = (unsigned)RULE_HANDSHAKE_TIMEOUT.def;
    if (!obj)
        return 0;
    path_push_key(ld, "tls");
    if (load_where(ld, &t->where) < 0)
        return -1;
    if (!(t->certs = calloc(1, sizeof(*t->certs))))
        return load_oom(ld);
    t->ncerts = 1;
    if (load_tls_cert(ld, obj, TLS_ADMIN_KEYS, &t->certs[0]) < 0 ||
        load_tls_common(ld, obj, &t->min_version, &t->ciphers, &t->ciphersuites) < 0)
        return -1;
    t->enabled = 1;
    path_pop(ld);
    return 0;
}

#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:"

/* A pool's optional "tls": TLS to its backends (and its https checks). */
static int load_pool_tls(struct loader *ld, json_t *parent, struct lb_tls_client_conf *t)
{
    json_t *obj = json_object_get(parent, "tls");
    int enabled;

    t->verify = 1;
    if (!obj)
        return 0;
    path_push_key(ld, "tls");
    if (load_object(ld, obj, TLS_POOL_KEYS, NULL) < 0 || load_where(ld, &t->where) < 0 ||
        load_bool(ld, obj, "enabled", 1, &enabled) < 0 ||
        load_bool(ld, obj, "verify", 1, &t->verify) < 0 ||
        load_file_name(ld, obj, "ca", &t->ca) < 0 ||
        load_text(ld, obj, "server_name", NULL, HOST_CHARS, 0,
                  "a DNS name or an IP address, like \"app.internal\"", &t->server_name) < 0 ||
        load_file_name(ld, obj, "cert", &t->cert) < 0 ||
        load_file_name(ld, obj, "key", &t->key) < 0 ||
        load_tls_common(ld, obj, &t->min_version, &t->ciphers, &t->ciphersuites) < 0)
        return -1;
    if (!t->cert != !t->key) {
        path_push_key(ld, t->cert ? "cert" : "key");
        return load_fail(ld, AT_KEY, "a client certificate needs both \"cert\" and \"key\"");
    }
    t->enabled = enabled;
    path_pop(ld);
    return 0;
}

/* An SNI route's "server_name": a DNS name, or "*." and one, stored in
 * lowercase (names in a ClientHello are compared without case). */
static int load_sni_name(struct loader *ld, json_t *obj, char **out)
{
    char q[CONFIG_ESCAPE_SIZE];
    const char *s;

    if (load_string(ld, obj, "server_name", &s) < 0)
        return -1;
    size_t n = strlen(s), skip = strncmp(s, "*.", 2) == 0 ? 2 : 0;
    int ok =
        n > skip && n <= 253 &&
        strspn(s + skip, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
            n - skip;
    if (!ok) {
        path_push_key(ld, "server_name");
        return load_fail(ld, AT_VALUE,
                         "must be a DNS name like \"api.example.com\" or a wildcard like "
                         "\"*.example.com\" (got \"%s\")",
                         config_escape(q, sizeof(q), s));
    }
    if (!(*out = strdup(s)))
        return load_oom(ld);
    for (char *c = *out; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return 0;
}

/* A listener's optional "sni_routes" (tcp mode, no "tls"): pools by the
 * ClientHello's server name. Pool names are linked in load_link(). */
static int load_sni_routes(struct loader *ld, json_t *parent, struct lb_listener_conf *l)
{
    static const char *const required[] = {"server_name", "pool", NULL};
    char q[CONFIG_ESCAPE_SIZE];
    json_t *arr = json_object_get(parent, "sni_routes"), *v;
    size_t i;

    if (!arr)
        return 0;
    if (l->mode != LB_MODE_TCP || l->tls.enabled) {
        path_push_key(ld, "sni_routes");
        return load_fail(ld, AT_KEY,
                         "key \"sni_routes\" only applies to a \"mode\": \"tcp\" listener "
                         "without \"tls\" (it routes TLS it does not decrypt)");
    }
    if (load_array(ld, parent, "sni_routes", "route", &arr) < 0)
        return -1;
    path_push_key(ld, "sni_routes");
    if (json_array_size(arr) > TLS_SNI_ROUTES_MAX)
        return load_fail(ld, AT_VALUE, "must hold at most %d routes", TLS_SNI_ROUTES_MAX);
    if (!(l->sni_routes = calloc(json_array_size(arr), sizeof(*l->sni_routes))))
        return load_oom(ld);
    json_array_foreach(arr, i, v)
    {
        struct lb_sni_route_conf *r = &l->sni_routes[i];
        const char *pool;
        path_push_index(ld, i);
        l->nsni_routes = i + 1;
        if (load_object(ld, v, SNI_ROUTE_KEYS, required) < 0 ||
            load_sni_name(ld, v, &r->server_name) < 0 || load_string(ld, v, "pool", &pool) < 0)
            return -1;
        if (!(r->pool = strdup(pool)))
            return load_oom(ld);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(l->sni_routes[k].server_name, r->server_name) != 0)
                continue;
            path_push_key(ld, "server_name");
            return load_fail(ld, AT_VALUE, "duplicate server_name \"%s\" (also sni_routes[%zu])",
                             config_escape(q, sizeof(q), r->server_name), k);
        }
        path_pop(ld);
    }
    path_pop(ld);
    return 0;
}

/* Checks listener I against the ones before it: names and addresses must
 * not repeat. The path is at listeners[I]. */
static int load_listener_unique(struct loader *ld, struct lb_config *cfg, size_t i)
{
    struct lb_listener_conf *l = &cfg->listeners[i];
    char q[CONFIG_ESCAPE_SIZE], q2[CONFIG_ESCAPE_SIZE];

    for (size_t j = 0; j < i; j++) {
        struct lb_listener_conf *o = &cfg->listeners[j];
        int clash;
        if (strcmp(o->name, l->name) == 0) {
            path_push_key(ld, "name");
            return load_fail(ld, AT_VALUE, "duplicate listener name \"%s\" (also listeners[%zu])",
                             config_escape(q, sizeof(q), l->name), j);
        }
        clash = config_address_clash(&o->addr, &l->addr);
        if (clash < 0)
            continue;
        path_push_key(ld, "listen");
        return load_fail(
            ld, AT_VALUE, "%s listener \"%s\" (\"%s\")", clash ? "same address as" : "overlaps",
            config_escape(q, sizeof(q), o->name), config_escape(q2, sizeof(q2), o->listen));
    }
    return 0;
}

static int load_listener(struct loader *ld, json_t *obj, struct lb_config *cfg, size_t i)
{
    struct lb_listener_conf *l = &cfg->listeners[i];
    const char *name, *pool;

    path_push_index(ld, i);
    if (load_object(ld, obj, LISTENER_KEYS, LISTENER_REQUIRED) < 0)
        return -1;
    if (load_name(ld, obj, "name", &name) < 0)
        return -1;
    if (!(l->name = strdup(name)))
        return load_oom(ld);
    if (load_address(ld, obj, "listen", CONFIG_ADDR_PASSIVE, &l->addr, &l->addrlen, &l->listen,
                     NULL, NULL, NULL) < 0)
        return -1;
    if (load_mode(ld, obj, &l->mode) < 0 || load_string(ld, obj, "pool", &pool) < 0)
        return -1;
    if (!(l->pool = strdup(pool)))
        return load_oom(ld);
    if (load_uint(ld, obj, &RULE_MAX_CONNECTIONS, &l->max_connections) < 0 ||
        load_uint(ld, obj, &RULE_IDLE_TIMEOUT, &l->idle_timeout_ms) < 0 ||
        load_keepalive(ld, obj, &l->keepalive) < 0 ||
        load_bool(ld, obj, "splice", 1, &l->splice) < 0 ||
        load_bool(ld, obj, "reuse_port", 0, &l->reuse_port) < 0 ||
        load_bool(ld, obj, "accept_proxy", 0, &l->accept_proxy) < 0 ||
        load_uint(ld, obj, &RULE_REQUEST_TIMEOUT, &l->request_timeout_ms) < 0 ||
        load_listener_http(ld, obj, l) < 0 ||
        load_listener_tls(ld, obj, &l->tls, l->mode == LB_MODE_HTTP) < 0 ||
        load_sni_routes(ld, obj, l) < 0)
        return -1;
    if (load_listener_unique(ld, cfg, i) < 0)
        return -1;
    path_pop(ld);
    return 0;
}

static int load_backend(struct loader *ld, json_t *obj, struct lb_backend_conf *b)
{
    const char *name;

    if (!json_object_get(obj, "address"))
        return load_fail(ld, AT_VALUE, "missing required key \"address\" (or \"dns\")");
    for (size_t k = 0; BACKEND_DNS_ONLY[k]; k++) {
        if (!json_object_get(obj, BACKEND_DNS_ONLY[k]))
            continue;
        path_push_key(ld, BACKEND_DNS_ONLY[k]);
        return load_fail(ld, AT_KEY, "key \"%s\" only applies to a \"dns\" entry",
                         BACKEND_DNS_ONLY[k]);
    }
    if (load_address(ld, obj, "address", CONFIG_ADDR_NAME, &b->addr, &b->addrlen, &b->address,
                     &b->host, &b->port, &b->where) < 0)
        return -1;
    if (load_uint(ld, obj, &RULE_WEIGHT, &b->weight) < 0 ||
        load_uint(ld, obj, &RULE_BACKEND_MAX_CONNECTIONS, &b->max_connections) < 0 ||
        load_name(ld, obj, "name", &name) < 0)
        return -1;
    if (name && !(b->name = strdup(name)))
        return load_oom(ld);
    if (!(b->id = strdup(name ? name : b->address)))
        return load_oom(ld);
    return 0;
}

/* "resolvers" of a "dns" entry: 1 to 8 IP addresses, each with its port or
 * 53, joined in c-ares' CSV form into *out. Absent: *out stays NULL. */
static int load_resolvers(struct loader *ld, json_t *obj, char **out)
{
    json_t *arr = json_object_get(obj, "resolvers"), *v;
    char buf[8 * 64], why[512], name[CONFIG_HOST_MAX + 1];
    size_t k, used = 0;

    if (!arr)
        return 0;
    path_push_key(ld, "resolvers");
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 8)
        return load_fail(ld, AT_VALUE, "must be an array of 1 to 8 addresses");
    json_array_foreach(arr, k, v)
    {
        struct sockaddr_storage ss;
        socklen_t len;
        unsigned short port;
        char text[64], host[INET6_ADDRSTRLEN];
        const char *s = json_string_value(v);
        path_push_index(ld, k);
        if (!s)
            return load_fail(ld, AT_VALUE, "must be a string (an IP address, with :port or not)");
        /* "10.0.0.2" means port 53; a bare IPv6 address needs brackets. */
        if (strlen(s) < 48 && !strchr(s, ':') && strchr(s, '.'))
            snprintf(text, sizeof(text), "%s:53", s);
        else
            snprintf(text, sizeof(text), "%.63s", s);
        if (config_parse_address(text, 0, &ss, &len, name, &port, why, sizeof(why)) < 0 ||
            strcasecmp(s, "localhost") == 0 || strncasecmp(s, "localhost:", 10) == 0)
            return load_fail(ld, AT_VALUE, "%s",
                             strncasecmp(s, "localhost", 9) == 0
                                 ? "must be an IP address (with :port or not), not a name"
                                 : why);
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
            used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s:%u", used ? "," : "",
                                     host, (unsigned)ntohs(sin->sin_port));
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
            used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s[%s]:%u", used ? "," : "",
                                     host, (unsigned)ntohs(sin6->sin6_port));
        }
        path_pop(ld);
    }
    path_pop(ld);
    *out = strdup(buf);
    return *out ? 0 : load_oom(ld);
}

/* A "dns" entry: {"dns": name, "type", "port", "refresh_ms", "resolvers",
 * "weight", "max_connections"}. */
static int load_dns_entry(struct loader *ld, json_t *obj, const struct lb_pool_conf *p,
                          struct lb_dns_conf *d)
{
    char q[CONFIG_ESCAPE_SIZE], at[1024], key[1024];
    const char *name;
    int type;

    if (json_object_get(obj, "address")) {
        path_push_key(ld, "address");
        return load_fail(ld, AT_KEY, "a backend has \"address\" or \"dns\", not both");
    }
    if (json_object_get(obj, "name")) {
        path_push_key(ld, "name");
        return load_fail(ld, AT_KEY,
                         "a \"dns\" entry's backends are named by their addresses; \"name\" "
                         "is not allowed");
    }
    if (load_string(ld, obj, "dns", &name) < 0)
        return -1;
    path_push_key(ld, "dns");
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--; /* "web.service.consul." is the same name */
    if (n == 0 || n > CONFIG_HOST_MAX ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") < n ||
        name[0] == '.' || strstr(name, ".."))
        return load_fail(ld, AT_VALUE, "bad DNS name \"%s\"", config_escape(q, sizeof(q), name));
    if (!(d->name = strndup(name, n)))
        return load_oom(ld);
    for (char *c = d->name; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    path_pop(ld);
    if (load_choice(ld, obj, "type", DNS_TYPE_NAMES, LB_DNS_A, &type) < 0)
        return -1;
    d->type = (enum lb_dns_type)type;
    if (d->type == LB_DNS_SRV) {
        const char *given = json_object_get(obj, "port") ? "port" : NULL;
        if (!given && json_object_get(obj, "weight"))
            given = "weight";
        if (given) {
            path_push_key(ld, given);
            return load_fail(ld, AT_KEY, "an SRV entry's records give each backend's %s", given);
        }
    } else if (!json_object_get(obj, "port")) {
        return load_fail(ld, AT_VALUE,
                         "missing required key \"port\" (an %s entry's records "
                         "have no port)",
                         DNS_TYPE_NAMES[d->type]);
    }
    if ((d->type != LB_DNS_SRV && load_uint(ld, obj, &RULE_DNS_PORT, &d->port) < 0) ||
        load_uint(ld, obj, &RULE_WEIGHT, &d->weight) < 0 ||
        load_uint(ld, obj, &RULE_BACKEND_MAX_CONNECTIONS, &d->max_connections) < 0 ||
        load_uint(ld, obj, &RULE_DNS_REFRESH, &d->refresh_ms) < 0 ||
        load_resolvers(ld, obj, &d->resolvers) < 0)
        return -1;
    if (!d->resolvers && ld->resolvers && !(d->resolvers = strdup(ld->resolvers)))
        return load_oom(ld);
    for (size_t k = 0; k < p->ndns && &p->dns[k] != d; k++)
        if (p->dns[k].type == d->type && strcmp(p->dns[k].name, d->name) == 0 &&
            p->dns[k].port == d->port) {
            path_push_key(ld, "dns");
            return load_fail(ld, AT_VALUE, "the same \"dns\" entry twice in one pool");
        }
    snprintf(key, sizeof(key), "%s %s %u @%s", DNS_TYPE_NAMES[d->type], d->name, d->port,
             d->resolvers ? d->resolvers : "system");
    load_position(ld, AT_VALUE, at, sizeof(at));
    if (!(d->key = strdup(key)) || !(d->where = strdup(at)))
        return load_oom(ld);
    return 0;
}

struct id_ref {
    const char *id;
    size_t index;
};

static int id_ref_cmp(const void *a, const void *b)
{
    const struct id_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Backend ids must be unique in their pool. Sorting keeps this n log n for
 * big pools; the error names the first repeat in file order. The path is at
 * pools[i]. */
static int load_backends_unique(struct loader *ld, struct lb_pool_conf *p)
{
    struct id_ref *refs = calloc(p->nbackends, sizeof(*refs));
    size_t dup = (size_t)-1, orig = 0;
    char q[CONFIG_ESCAPE_SIZE];

    if (!refs)
        return load_oom(ld);
    for (size_t j = 0; j < p->nbackends; j++)
        refs[j] = (struct id_ref){p->backends[j].id, j};
    qsort(refs, p->nbackends, sizeof(*refs), id_ref_cmp);
    for (size_t j = 1; j < p->nbackends; j++) {
        if (strcmp(refs[j - 1].id, refs[j].id) != 0 || refs[j].index > dup)
            continue;
        /* refs[j - 1] is not always the group's first: find it. */
        size_t k = j - 1;
        while (k > 0 && strcmp(refs[k - 1].id, refs[j].id) == 0)
            k--;
        dup = refs[j].index;
        orig = refs[k].index;
    }
    free(refs);
    if (dup == (size_t)-1)
        return 0;
    path_push_key(ld, "backends");
    path_push_index(ld, p->backends[dup].entry);
    path_push_key(ld, p->backends[dup].name ? "name" : "address");
    return load_fail(ld, AT_VALUE, "duplicate backend id \"%s\" (also backends[%zu])",
                     config_escape(q, sizeof(q), p->backends[dup].id), p->backends[orig].entry);
}

static int load_pool_unique(struct loader *ld, struct lb_config *cfg, size_t i)
{
    char q[CONFIG_ESCAPE_SIZE];

    for (size_t j = 0; j < i; j++) {
        if (strcmp(cfg->pools[j].name, cfg->pools[i].name) != 0)
            continue;
        path_push_key(ld, "name");
        return load_fail(ld, AT_VALUE, "duplicate pool name \"%s\" (also pools[%zu])",
                         config_escape(q, sizeof(q), cfg->pools[i].name), j);
    }
    return 0;
}

/* Reads optional string KEY of OBJ into a copy at *out (def when absent,
 * NULL def: stays NULL): 1..HC_TEXT_MAX bytes all in CHARS (NULL: any
 * printable ASCII), first byte FIRST when FIRST is not 0. */
static int load_text(struct loader *ld, json_t *obj, const char *key, const char *def,
                     const char *chars, char first, const char *what, char **out)
{
    char q[CONFIG_ESCAPE_SIZE];
    const char *s;

    if (load_string(ld, obj, key, &s) < 0)
        return -1;
    if (!s)
        s = def;
    if (s) {
        size_t n = strlen(s);
        int ok = n > 0 && n <= HC_TEXT_MAX && (!first || s[0] == first);
        for (size_t k = 0; ok && k < n; k++)
            ok = chars ? strchr(chars, s[k]) != NULL : (s[k] > 0x20 && s[k] < 0x7f) || s[k] == ' ';
        if (!ok) {
            path_push_key(ld, key);
            return load_fail(ld, AT_VALUE, "must be %s (got \"%s\")", what,
                             config_escape(q, sizeof(q), s));
        }
        if (!(*out = strdup(s)))
            return load_oom(ld);
    }
    return 0;
}

static int parse_status(const char *s, unsigned *out)
{
    if (strlen(s) < 3 || s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
        s[2] > '9')
        return -1;
    *out = (unsigned)((s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0'));
    return 0;
}

/* "expect_status": 200, "200" or "200-399"; codes 100..599. */
static int load_expect_status(struct loader *ld, json_t *obj, struct lb_health_conf *hc)
{
    static const char form[] = "must be a status code or range from 100 to 599, like \"200\" "
                               "or \"200-399\"";
    char q[CONFIG_ESCAPE_SIZE];
    json_t *v = json_object_get(obj, "expect_status");

    hc->status_min = DEFAULT_HC_STATUS_MIN;
    hc->status_max = DEFAULT_HC_STATUS_MAX;
    if (!v)
        return 0;
    path_push_key(ld, "expect_status");
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 100 || n > 599)
            return load_fail(ld, AT_VALUE, "%s (got %lld)", form, (long long)n);
        hc->status_min = hc->status_max = (unsigned)n;
        path_pop(ld);
        return 0;
    }
    if (!json_is_string(v))
        return load_fail(ld, AT_VALUE, "%s (got %s)", form, json_kind(v));
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    int ok = (n == 3 && parse_status(s, &hc->status_min) == 0) ||
             (n == 7 && s[3] == '-' && parse_status(s, &hc->status_min) == 0 &&
              parse_status(s + 4, &hc->status_max) == 0 && hc->status_min <= hc->status_max);
    if (n == 3)
        hc->status_max = hc->status_min;
    if (!ok)
        return load_fail(ld, AT_VALUE, "%s (got \"%s\")", form, config_escape(q, sizeof(q), s));
    path_pop(ld);
    return 0;
}

/* The pool's optional "health_check" object. */
static int load_health_check(struct loader *ld, json_t *pool, struct lb_health_conf *hc,
                             enum lb_proxy_version pool_proxy,
                             const struct lb_tls_client_conf *pool_tls)
{
    static const char *const types[] = {"tcp", "http", "https", NULL};
    char q[CONFIG_ESCAPE_SIZE];
    json_t *obj = json_object_get(pool, "health_check");
    const char *type;
    int send_proxy;

    hc->type = LB_CHECK_NONE;
    if (!obj)
        return 0;
    path_push_key(ld, "health_check");
    if (load_object(ld, obj, CHECK_KEYS, CHECK_REQUIRED) < 0)
        return -1;
    if (load_string(ld, obj, "type", &type) < 0)
        return -1;
    if (strcmp(type, types[0]) == 0) {
        hc->type = LB_CHECK_TCP;
    } else if (strcmp(type, types[1]) == 0) {
        hc->type = LB_CHECK_HTTP;
    } else if (strcmp(type, types[2]) == 0) {
        hc->type = LB_CHECK_HTTPS;
    } else {
        path_push_key(ld, "type");
        return load_fail(ld, AT_VALUE, "must be \"tcp\", \"http\" or \"https\" (got \"%s\")",
                         config_escape(q, sizeof(q), type));
    }
    if (load_bool(ld, obj, "verify", pool_tls->enabled ? pool_tls->verify : 1, &hc->verify) < 0)
        return -1;
    if (hc->type != LB_CHECK_HTTPS && json_object_get(obj, "verify")) {
        path_push_key(ld, "verify");
        return load_fail(ld, AT_KEY, "key \"verify\" only applies to \"type\": \"https\"");
    }
    if (load_uint(ld, obj, &RULE_HC_INTERVAL, &hc->interval_ms) < 0 ||
        load_uint(ld, obj, &RULE_HC_TIMEOUT, &hc->timeout_ms) < 0 ||
        load_uint(ld, obj, &RULE_HC_RISE, &hc->rise) < 0 ||
        load_uint(ld, obj, &RULE_HC_FALL, &hc->fall) < 0 ||
        load_uint(ld, obj, &RULE_HC_PORT, &hc->port) < 0 ||
        load_bool(ld, obj, "send_proxy", -1, &send_proxy) < 0)
        return -1;
    /* The pool's version. Without the key: on the traffic port, which a
     * backend that wants the header would refuse checks on otherwise. */
    if (send_proxy < 0)
        send_proxy = hc->port == 0;
    hc->send_proxy = send_proxy ? pool_proxy : LB_PROXY_OFF;
    if (send_proxy && pool_proxy == LB_PROXY_OFF && json_object_get(obj, "send_proxy")) {
        path_push_key(ld, "send_proxy");
        return load_fail(ld, AT_VALUE,
                         "needs the pool's \"send_proxy\" (\"v1\" or \"v2\"): the check sends "
                         "that version");
    }
    if (hc->type == LB_CHECK_TCP) {
        for (size_t k = 0; CHECK_HTTP_ONLY[k]; k++) {
            if (!json_object_get(obj, CHECK_HTTP_ONLY[k]))
                continue;
            path_push_key(ld, CHECK_HTTP_ONLY[k]);
            return load_fail(ld, AT_KEY,
                             "key \"%s\" only applies to \"type\": \"http\" or \"https\"",
                             CHECK_HTTP_ONLY[k]);
        }
        path_pop(ld);
        return 0;
    }
    if (load_text(ld, obj, "method", DEFAULT_HC_METHOD, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0,
                  "an HTTP method in capitals, like \"GET\"", &hc->method) < 0 ||
        load_text(ld, obj, "path", DEFAULT_HC_PATH, NULL, '/',
                  "a path starting with \"/\", without spaces or control characters",
                  &hc->path) < 0 ||
        load_text(ld, obj, "host", NULL,
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_:[]", 0,
                  "a host name, optionally with :port", &hc->host) < 0 ||
        load_expect_status(ld, obj, hc) < 0 ||
        load_text(ld, obj, "expect_body", NULL, NULL, 0, "1 to 1024 characters of printable ASCII",
                  &hc->expect_body) < 0)
        return -1;
    if (strchr(hc->path, ' ')) {
        path_push_key(ld, "path");
        return load_fail(ld, AT_VALUE,
                         "must be a path starting with \"/\", without spaces or control "
                         "characters (got \"%s\")",
                         config_escape(q, sizeof(q), hc->path));
    }
    path_pop(ld);
    return 0;
}

/* The pool's optional "passive" object; absent: passive ejection is off. */
static int load_passive(struct loader *ld, json_t *pool, struct lb_passive_conf *pc)
{
    json_t *obj = json_object_get(pool, "passive");

    pc->max_failures = 0;
    pc->ejection_ms = (unsigned)RULE_PASSIVE_EJECTION.def;
    if (!obj)
        return 0;
    path_push_key(ld, "passive");
    if (load_object(ld, obj, PASSIVE_KEYS, NULL) < 0 ||
        load_uint(ld, obj, &RULE_PASSIVE_FAILURES, &pc->max_failures) < 0 ||
        load_uint(ld, obj, &RULE_PASSIVE_EJECTION, &pc->ejection_ms) < 0)
        return -1;
    path_pop(ld);
    return 0;
}

/* The pool's optional "keepalive" object: idle backend connections kept for
 * reuse by later requests (http mode; not "tcp_keepalive"). Absent, or a
 * member absent: the defaults. */
static int load_reuse(struct loader *ld, json_t *pool, struct lb_pool_conf *p)
{
    json_t *obj = json_object_get(pool, "keepalive");

    p->reuse_max_idle = (unsigned)RULE_REUSE_MAX_IDLE.def;
    p->reuse_idle_timeout_ms = (unsigned)RULE_REUSE_IDLE_TIMEOUT.def;
    if (!obj)
        return 0;
    path_push_key(ld, "keepalive");
    if (load_object(ld, obj, REUSE_KEYS, NULL) < 0 ||
        load_uint(ld, obj, &RULE_REUSE_MAX_IDLE, &p->reuse_max_idle) < 0 ||
        load_uint(ld, obj, &RULE_REUSE_IDLE_TIMEOUT, &p->reuse_idle_timeout_ms) < 0)
        return -1;
    path_pop(ld);
    return 0;
}

/* The pool's optional "queue" object: where sessions wait when every
 * available backend is at its max_connections. Absent, or a member absent:
 * the defaults (no queue: such a session is refused at once). */
static int load_queue(struct loader *ld, json_t *pool, struct lb_pool_conf *p)
{
    json_t *obj = json_object_get(pool, "queue");

    p->queue_max = (unsigned)RULE_QUEUE_MAX.def;
    p->queue_timeout_ms = (unsigned)RULE_QUEUE_TIMEOUT.def;
    if (!obj)
        return 0;
    path_push_key(ld, "queue");
    if (load_object(ld, obj, QUEUE_KEYS, NULL) < 0 ||
        load_uint(ld, obj, &RULE_QUEUE_MAX, &p->queue_max) < 0 ||
        load_uint(ld, obj, &RULE_QUEUE_TIMEOUT, &p->queue_timeout_ms) < 0)
        return -1;
    path_pop(ld);
    return 0;
}

/* The pool's optional "send_proxy": "off", "v1" or "v2". */
static int load_send_proxy(struct loader *ld, json_t *pool, enum lb_proxy_version *out)
{
    static const char *const versions[] = {"off", "v1", "v2", NULL};
    int v;

    if (load_choice(ld, pool, "send_proxy", versions, LB_PROXY_OFF, &v) < 0)
        return -1;
    *out = (enum lb_proxy_version)v;
    return 0;
}

/* The pool OBJ into cfg->pools[i]: the file's pools[index], or a
 * document's whole (index SIZE_MAX: its path starts at the pool). */
static int load_pool(struct loader *ld, json_t *obj, struct lb_config *cfg, size_t i, size_t index)
{
    struct lb_pool_conf *p = &cfg->pools[i];
    const char *name;
    json_t *arr, *v;
    size_t j;
    int strategy;

    if (index != SIZE_MAX)
        path_push_index(ld, index);
    if (load_object(ld, obj, POOL_KEYS, POOL_REQUIRED) < 0)
        return -1;
    if (load_name(ld, obj, "name", &name) < 0)
        return -1;
    if (!(p->name = strdup(name)))
        return load_oom(ld);
    if (load_pool_unique(ld, cfg, i) < 0)
        return -1;
    if (load_choice(ld, obj, "strategy", STRATEGY_NAMES, DEFAULT_STRATEGY, &strategy) < 0)
        return -1;
    p->strategy = (enum lb_strategy)strategy;
    if (load_uint(ld, obj, &RULE_CONNECT_TIMEOUT, &p->connect_timeout_ms) < 0 ||
        load_uint(ld, obj, &RULE_RETRIES, &p->retries) < 0 ||
        load_uint(ld, obj, &RULE_HASH_TABLE_SIZE, &p->hash_table_size) < 0 ||
        load_uint(ld, obj, &RULE_SLOW_START, &p->slow_start_ms) < 0 ||
        load_send_proxy(ld, obj, &p->send_proxy) < 0 || load_pool_tls(ld, obj, &p->tls) < 0 ||
        load_health_check(ld, obj, &p->health, p->send_proxy, &p->tls) < 0 ||
        load_passive(ld, obj, &p->passive) < 0 || load_keepalive(ld, obj, &p->keepalive) < 0 ||
        load_reuse(ld, obj, p) < 0 || load_queue(ld, obj, p) < 0 ||
        load_uint(ld, obj, &RULE_RESPONSE_TIMEOUT, &p->response_timeout_ms) < 0)
        return -1;
    if (load_array(ld, obj, "backends", "backend", &arr) < 0)
        return -1;
    p->backends = calloc(json_array_size(arr), sizeof(*p->backends));
    p->dns = calloc(json_array_size(arr), sizeof(*p->dns));
    if (!p->backends || !p->dns)
        return load_oom(ld);
    path_push_key(ld, "backends");
    json_array_foreach(arr, j, v)
    {
        path_push_index(ld, j);
        if (load_object(ld, v, BACKEND_KEYS, NULL) < 0)
            return -1;
        p->backends[p->nbackends].entry = j;
        if (json_object_get(v, "dns") ? load_dns_entry(ld, v, p, &p->dns[p->ndns++]) < 0
                                      : load_backend(ld, v, &p->backends[p->nbackends++]) < 0)
            return -1;
        path_pop(ld);
    }
    path_pop(ld);
    if (load_backends_unique(ld, p) < 0)
        return -1;
    if (p->hash_table_size <= p->nbackends) {
        if (json_object_get(obj, "hash_table_size")) {
            path_push_key(ld, "hash_table_size");
            return load_fail(ld, AT_VALUE, "must be larger than the number of backends (%zu)",
                             p->nbackends);
        }
        path_push_key(ld, "backends");
        return load_fail(ld, AT_VALUE, "more backends than hash_table_size (%u) allows",
                         p->hash_table_size);
    }
    if (index != SIZE_MAX)
        path_pop(ld);
    return 0;
}

static size_t pool_index(const struct lb_config *cfg, const char *name)
{
    size_t j;

    for (j = 0; j < cfg->npools; j++)
        if (strcmp(cfg->pools[j].name, name) == 0)
            break;
    return j;
}

/* A pool name that matches none: an error, or with fleet on and the file
 * alone, one to come from etcd. */
static int load_unlinked(struct loader *ld, struct lb_config *cfg, const char *pool)
{
    char q[CONFIG_ESCAPE_SIZE];

    if (!cfg->fleet.enabled)
        return load_fail(ld, AT_VALUE, "no pool named \"%s\"", config_escape(q, sizeof(q), pool));
    if (ld->merging) {
        char q2[CONFIG_ESCAPE_SIZE];
        return load_fail(ld, AT_VALUE, "no pool named \"%s\" in the file or at etcd's %spools/%s",
                         config_escape(q, sizeof(q), pool),
                         config_escape(q2, sizeof(q2), cfg->fleet.prefix), q);
    }
    if (cfg->unlinked++ == 0)
        snprintf(cfg->unlinked_pool, sizeof(cfg->unlinked_pool), "%s", pool);
    path_pop(ld);
    return 0;
}

/* Points each listener (and its SNI routes) at its pool by name. */
static int load_link(struct loader *ld, struct lb_config *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct lb_listener_conf *l = &cfg->listeners[i];
        path_push_key(ld, "listeners");
        path_push_index(ld, i);
        if ((l->pool_index = pool_index(cfg, l->pool)) == cfg->npools) {
            path_push_key(ld, "pool");
            if (load_unlinked(ld, cfg, l->pool) < 0)
                return -1;
        }
        for (size_t k = 0; k < l->nsni_routes; k++) {
            struct lb_sni_route_conf *r = &l->sni_routes[k];
            if ((r->pool_index = pool_index(cfg, r->pool)) < cfg->npools)
                continue;
            path_push_key(ld, "sni_routes");
            path_push_index(ld, k);
            path_push_key(ld, "pool");
            if (load_unlinked(ld, cfg, r->pool) < 0)
                return -1;
            path_pop(ld);
            path_pop(ld);
        }
        path_pop(ld);
        path_pop(ld);
    }
    return 0;
}

/* lb --admin-listen: replaces admin.listen in every load; NULL: none. */
static const char *admin_listen_override;

void config_set_admin_listen(const char *listen)
{
    admin_listen_override = listen;
}

/* A fault of the admin address: at admin.listen in the file, or named
 * after the --admin-listen option that replaced it. */
static int admin_listen_fail(struct loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int admin_listen_fail(struct loader *ld, const char *fmt, ...)
{
    char why[MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (!admin_listen_override) {
        path_push_key(ld, "listen");
        return load_fail(ld, AT_VALUE, "%s", why);
    }
    char q[CONFIG_ESCAPE_SIZE];
    snprintf(ld->err, ld->errlen, "%s: --admin-listen \"%s\": %s", ld->file,
             config_escape(q, sizeof(q), admin_listen_override), why);
    return -1;
}

/* admin.listen, or the --admin-listen address in its place. */
static int load_admin_listen(struct loader *ld, json_t *obj, struct lb_admin_conf *a)
{
    char why[512];

    if (!admin_listen_override)
        return load_address(ld, obj, "listen", CONFIG_ADDR_PASSIVE, &a->addr, &a->addrlen,
                            &a->listen, NULL, NULL, NULL);
    if (config_parse_address(admin_listen_override, CONFIG_ADDR_PASSIVE, &a->addr, &a->addrlen,
                             NULL, NULL, why, sizeof(why)) < 0)
        return admin_listen_fail(ld, "%s", why);
    a->listen = strdup(admin_listen_override);
    return a->listen ? 0 : load_oom(ld);
}

/* The rest of load_admin, after the address. */
static int load_admin_body(struct loader *ld, json_t *obj, struct lb_config *cfg)
{
    struct lb_admin_conf *a = &cfg->admin;
    char q[CONFIG_ESCAPE_SIZE];

    a->enabled = 1;
    if (load_uint(ld, obj, &RULE_ADMIN_MAX_CONNECTIONS, &a->max_connections) < 0 ||
        load_uint(ld, obj, &RULE_ADMIN_REQUEST_TIMEOUT, &a->request_timeout_ms) < 0 ||
        load_admin_tls(ld, obj, &a->tls) < 0)
        return -1;
    const char *token;
    if (load_string(ld, obj, "token", &token) < 0)
        return -1;
    if (token) {
        /* A secret: checked without echoing it into the message. */
        size_t n = strlen(token);
        int ok = n > 0 && n <= HC_TEXT_MAX;
        for (size_t k = 0; ok && k < n; k++)
            ok = token[k] > 0x20 && token[k] < 0x7f;
        if (!ok) {
            path_push_key(ld, "token");
            return load_fail(ld, AT_VALUE,
                             "must be 1 to 1024 characters of printable ASCII without spaces");
        }
        if (!(a->token = strdup(token)))
            return load_oom(ld);
    }
    if (!a->token && !config_address_is_loopback((const struct sockaddr *)&a->addr))
        return admin_listen_fail(ld, "a non-loopback admin address needs a \"token\" (got \"%s\")",
                                 config_escape(q, sizeof(q), a->listen));
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (config_address_clash(&a->addr, &cfg->listeners[i].addr) < 0)
            continue;
        char q2[CONFIG_ESCAPE_SIZE];
        return admin_listen_fail(ld, "same address as listener \"%s\" (\"%s\")",
                                 config_escape(q, sizeof(q), cfg->listeners[i].name),
                                 config_escape(q2, sizeof(q2), cfg->listeners[i].listen));
    }
    path_pop(ld);
    return 0;
}

/* The optional "admin" object: where the admin API listens, and its token.
 * Without a token it may only listen on a loopback address. With
 * --admin-listen the object is optional and its "listen" is replaced. */
static int load_admin(struct loader *ld, json_t *root, struct lb_config *cfg)
{
    struct lb_admin_conf *a = &cfg->admin;
    json_t *obj = json_object_get(root, "admin");

    if (!obj && !admin_listen_override)
        return 0;
    json_t *empty = NULL;
    if (!obj && !(obj = empty = json_object()))
        return load_oom(ld);
    path_push_key(ld, "admin");
    int rc = load_object(ld, obj, ADMIN_KEYS, admin_listen_override ? NULL : ADMIN_REQUIRED) < 0 ||
                     load_admin_listen(ld, obj, a) < 0
                 ? -1
                 : load_admin_body(ld, obj, cfg);
    json_decref(empty);
    return rc;
}

/* "user" and "group", looked up now, so that a name the system does not
 * know fails the load (lb -t too), not the start after the binds. */
static int load_identity(struct loader *ld, json_t *root, struct lb_config *cfg)
{
    char q[CONFIG_ESCAPE_SIZE];
    const char *user, *group;

    if (load_string(ld, root, "user", &user) < 0 || load_string(ld, root, "group", &group) < 0)
        return -1;
    if (group && !user) {
        path_push_key(ld, "group");
        return load_fail(ld, AT_VALUE, "\"group\" needs \"user\"");
    }
    if (!user)
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        path_push_key(ld, "user");
        if (errno != 0)
            return load_fail(ld, AT_VALUE, "cannot look up user \"%s\": %s",
                             config_escape(q, sizeof(q), user), strerror(errno));
        return load_fail(ld, AT_VALUE, "unknown user \"%s\"", config_escape(q, sizeof(q), user));
    }
    cfg->uid = pw->pw_uid;
    cfg->gid = pw->pw_gid;
    if (group) {
        errno = 0;
        struct group *gr = getgrnam(group);
        if (!gr) {
            path_push_key(ld, "group");
            if (errno != 0)
                return load_fail(ld, AT_VALUE, "cannot look up group \"%s\": %s",
                                 config_escape(q, sizeof(q), group), strerror(errno));
            return load_fail(ld, AT_VALUE, "unknown group \"%s\"",
                             config_escape(q, sizeof(q), group));
        }
        cfg->gid = gr->gr_gid;
    }
    cfg->user = strdup(user);
    cfg->group = group ? strdup(group) : NULL;
    if (!cfg->user || (group && !cfg->group))
        return load_oom(ld);
    return 0;
}

/* One endpoint of "fleet"."etcd": "http://ADDRESS:PORT" or "https://..."
 * (a trailing "/" allowed), the address an IP or localhost. */
static int load_fleet_endpoint(struct loader *ld, json_t *v, struct lb_fleet_endpoint *e)
{
    static const char want[] = "must be \"http://ADDRESS:PORT\" or \"https://ADDRESS:PORT\"";
    const char *s = json_string_value(v);
    char hostport[300], why[512], host[64];

    if (!s)
        return load_fail(ld, AT_VALUE, "%s", want);
    size_t skip = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
    size_t n = strlen(s);
    if (!skip || n - skip >= sizeof(hostport))
        return load_fail(ld, AT_VALUE, "%s", want);
    e->tls = skip == 8;
    snprintf(hostport, sizeof(hostport), "%s", s + skip);
    n = strlen(hostport);
    if (n > 0 && hostport[n - 1] == '/')
        hostport[--n] = '\0';
    if (strchr(hostport, '/'))
        return load_fail(ld, AT_VALUE, "%s (no path)", want);
    char name[CONFIG_HOST_MAX + 1];
    int rc = config_parse_address(hostport, CONFIG_ADDR_NAME, &e->addr, &e->addrlen, name, &e->port,
                                  why, sizeof(why));
    if (rc < 0)
        return load_fail(ld, AT_VALUE, "%s", why);
    if (rc == 1) { /* a host name: the fleet resolves it on the loop */
        e->name = 1;
        e->addrlen = 0;
        if (!(e->url = strdup(s)) || !(e->authority = strdup(hostport)) ||
            !(e->host = strdup(name)))
            return load_oom(ld);
        return 0;
    }
    e->port = ntohs(e->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&e->addr)->sin6_port
                                                  : ((struct sockaddr_in *)&e->addr)->sin_port);
    /* The address alone ("[::1]:2379" is ::1, "localhost:2379" 127.0.0.1):
     * what a certificate for the endpoint names when tls.server_name does
     * not say otherwise. */
    if (e->addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&e->addr)->sin6_addr, host, sizeof(host));
    else
        inet_ntop(AF_INET, &((struct sockaddr_in *)&e->addr)->sin_addr, host, sizeof(host));
    if (!(e->url = strdup(s)) || !(e->authority = strdup(hostport)) || !(e->host = strdup(host)))
        return load_oom(ld);
    return 0;
}

/* The optional "fleet" object (docs/fleet.md). */
static int load_fleet(struct loader *ld, json_t *root, struct lb_fleet_conf *f)
{
    json_t *obj = json_object_get(root, "fleet"), *arr, *v;
    const char *prefix, *token;
    size_t k;

    if (!obj)
        return 0;
    path_push_key(ld, "fleet");
    if (load_object(ld, obj, FLEET_KEYS, FLEET_REQUIRED) < 0 ||
        load_uint(ld, obj, &RULE_FLEET_TIMEOUT, &f->timeout_ms) < 0 ||
        load_uint(ld, obj, &RULE_FLEET_START_TIMEOUT, &f->start_timeout_ms) < 0)
        return -1;
    arr = json_object_get(obj, "etcd");
    path_push_key(ld, "etcd");
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > LB_FLEET_ENDPOINTS_MAX)
        return load_fail(ld, AT_VALUE, "must be an array of 1 to %d endpoint URLs",
                         LB_FLEET_ENDPOINTS_MAX);
    if (!(f->endpoints = calloc(json_array_size(arr), sizeof(*f->endpoints))))
        return load_oom(ld);
    json_array_foreach(arr, k, v)
    {
        path_push_index(ld, k);
        f->nendpoints++;
        if (load_fleet_endpoint(ld, v, &f->endpoints[k]) < 0)
            return -1;
        path_pop(ld);
    }
    path_pop(ld);
    int tls = 0;
    for (k = 0; k < f->nendpoints; k++)
        tls |= f->endpoints[k].tls;
    if (load_pool_tls(ld, obj, &f->tls) < 0)
        return -1;
    if (json_object_get(obj, "tls") && !tls) {
        path_push_key(ld, "tls");
        return load_fail(ld, AT_VALUE, "no endpoint in \"etcd\" is https://");
    }
    if (tls && json_object_get(obj, "tls") && !f->tls.enabled) {
        path_push_key(ld, "tls");
        return load_fail(ld, AT_VALUE, "https endpoints need TLS (it says \"enabled\": false)");
    }
    f->tls.enabled = tls;
    if (load_string(ld, obj, "prefix", &prefix) < 0)
        return -1;
    size_t n = prefix ? strlen(prefix) : 0;
    int ok = n > 0 && n <= LB_FLEET_PREFIX_MAX && prefix[n - 1] == '/';
    for (size_t i = 0; ok && i < n; i++)
        ok = prefix[i] > 0x20 && prefix[i] < 0x7f;
    if (!ok) {
        path_push_key(ld, "prefix");
        return load_fail(ld, AT_VALUE,
                         "must be 1 to %d characters of printable ASCII without spaces, ending "
                         "with \"/\" (e.g. \"/lb/prod/\")",
                         LB_FLEET_PREFIX_MAX);
    }
    if (!(f->prefix = strdup(prefix)))
        return load_oom(ld);
    if (load_string(ld, obj, "token", &token) < 0)
        return -1;
    if (token) {
        /* A secret: checked without echoing it into the message. */
        size_t t = strlen(token);
        ok = t > 0 && t <= 4096;
        for (size_t i = 0; ok && i < t; i++)
            ok = token[i] > 0x20 && token[i] < 0x7f;
        if (!ok) {
            path_push_key(ld, "token");
            return load_fail(ld, AT_VALUE,
                             "must be 1 to 4096 characters of printable ASCII without spaces");
        }
        if (!(f->token = strdup(token)))
            return load_oom(ld);
    }
    f->enabled = 1;
    path_pop(ld);
    return 0;
}

static int doc_named(const struct loader *ld, const char *name)
{
    for (size_t i = 0; name && i < ld->ndocs; i++)
        if (strcmp(ld->docs[i].name, name) == 0)
            return 1;
    return 0;
}

static void load_syntax_error(struct loader *ld, const json_error_t *je);

/* A document's pool into cfg->pools[i], its messages under its source. */
static int load_doc(const struct loader *ld, const struct config_doc *d, struct lb_config *cfg,
                    size_t i)
{
    struct loader dl = {.file = d->source,
                        .base = ld->base,
                        .text = d->text,
                        .len = d->len,
                        .err = ld->err,
                        .errlen = ld->errlen,
                        .resolvers = ld->resolvers};
    json_error_t je;
    char q[CONFIG_ESCAPE_SIZE];
    json_t *obj = json_loadb(d->text, d->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    int rc = -1;

    if (!obj) {
        load_syntax_error(&dl, &je);
        return -1;
    }
    json_t *name = json_object_get(obj, "name");
    if (!json_is_object(obj)) {
        load_fail(&dl, AT_VALUE, "must be an object (a pool, as in the file's \"pools\")");
    } else if (name && (!json_is_string(name) || strcmp(json_string_value(name), d->name) != 0)) {
        path_push_key(&dl, "name");
        load_fail(&dl, AT_VALUE, "must be \"%s\" (its key's last part) or left out",
                  config_escape(q, sizeof(q), d->name));
    } else if (name || json_object_set_new(obj, "name", json_string(d->name)) == 0) {
        rc = load_pool(&dl, obj, cfg, i, SIZE_MAX);
    } else {
        load_oom(&dl);
    }
    json_decref(obj);
    return rc;
}

static int load_root(struct loader *ld, json_t *root, struct lb_config *cfg)
{
    static const char *const required[] = {"listeners", NULL};
    json_t *listeners, *pools, *v;
    size_t i, k;

    if (load_object(ld, root, ROOT_KEYS, required) < 0)
        return -1;
    if (load_log(ld, root, cfg) < 0 ||
        load_uint(ld, root, &RULE_SHUTDOWN_GRACE, &cfg->shutdown_grace_ms) < 0 ||
        load_uint(ld, root, &RULE_GLOBAL_MAX_CONNECTIONS, &cfg->max_connections) < 0 ||
        load_identity(ld, root, cfg) < 0 || load_resolvers(ld, root, &cfg->resolvers) < 0 ||
        load_fleet(ld, root, &cfg->fleet) < 0)
        return -1;
    ld->resolvers = cfg->resolvers;
    /* With "fleet" the pools may all be in etcd: "pools" may be empty or
     * absent. */
    pools = json_object_get(root, "pools");
    if (!pools && !cfg->fleet.enabled)
        return load_fail(ld, AT_VALUE, "missing required key \"pools\"");
    if (load_array(ld, root, "listeners", "listener", &listeners) < 0)
        return -1;
    if (cfg->fleet.enabled && (!pools || (json_is_array(pools) && json_array_size(pools) == 0)))
        pools = NULL; /* none (jansson's array calls take NULL as empty) */
    else if (load_array(ld, root, "pools", "pool", &pools) < 0)
        return -1;
    cfg->listeners = calloc(json_array_size(listeners), sizeof(*cfg->listeners));
    cfg->pools = calloc(json_array_size(pools) + ld->ndocs, sizeof(*cfg->pools));
    if (!cfg->listeners || !cfg->pools)
        return load_oom(ld);
    cfg->nlisteners = json_array_size(listeners);
    cfg->npools = json_array_size(pools) + ld->ndocs;
    path_push_key(ld, "listeners");
    json_array_foreach(listeners, i, v)
    {
        if (load_listener(ld, v, cfg, i) < 0)
            return -1;
    }
    path_pop(ld);
    path_push_key(ld, "pools");
    size_t n = 0;
    json_array_foreach(pools, i, v)
    {
        /* A document of the same name replaces the file's pool. */
        if (doc_named(ld, json_string_value(json_object_get(v, "name"))))
            continue;
        if (load_pool(ld, v, cfg, n++, i) < 0)
            return -1;
    }
    path_pop(ld);
    for (i = 0; i < ld->ndocs; i++) {
        if (load_doc(ld, &ld->docs[i], cfg, n) < 0)
            return -1;
        cfg->pools[n].from_doc = 1;
        json_array_foreach(pools, k, v)
        {
            if (strcmp(json_string_value(json_object_get(v, "name")) ?: "", ld->docs[i].name) == 0)
                cfg->pools[n].replaces_file = 1;
        }
        n++;
    }
    cfg->npools = n;
    if (load_link(ld, cfg) < 0)
        return -1;
    return load_admin(ld, root, cfg);
}

/* What a file that is not a regular one is, for "not a regular file (...)". */
static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "an unknown kind of file";
}

/* Reads all of PATH, a regular file of at most CONFIG_FILE_MAX bytes, into
 * a NUL-terminated buffer. Anything else (a FIFO, a directory, /dev/stdin)
 * is refused at once: the open does not wait for a FIFO's writer, so a
 * reload on the loop never hangs on one. */
static int load_read(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    size_t cap = 4096, n = 0;
    char *buf = NULL, *nb;
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0)
        goto fail_errno;
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
        goto fail;
    }
    for (;;) {
        if (!buf || n == cap) {
            /* One byte past the limit tells "too large" from "exactly it". */
            if (buf && cap > CONFIG_FILE_MAX) {
                snprintf(err, errlen, "%s: file is too large (more than %d bytes)", path,
                         CONFIG_FILE_MAX);
                goto fail;
            }
            if (buf)
                cap = cap * 2 > CONFIG_FILE_MAX ? CONFIG_FILE_MAX + 1 : cap * 2;
            if (!(nb = realloc(buf, cap + 1)))
                goto fail_oom;
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail_errno;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;

fail_errno:
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    goto fail;
fail_oom:
    snprintf(err, errlen, "%s: out of memory", path);
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return -1;
}

/* Turns jansson's syntax error into "file:line:col: syntax error: text",
 * with line and column counted like ours: 1-based, in bytes, at the first
 * byte of the token jansson complains about (jansson itself counts
 * characters and points at the token's last one). */
static void load_syntax_error(struct loader *ld, const json_error_t *je)
{
    char text[sizeof(je->text) * 4 + 4];
    size_t off = je->position > 0 ? (size_t)je->position : 0;
    const char *near = strstr(je->text, " near '");
    size_t n = strlen(je->text);
    unsigned line, col;

    if (off > ld->len)
        off = ld->len;
    if (near && n > 0 && je->text[n - 1] == '\'') {
        const char *tok = near + 7;
        size_t toklen = (size_t)(je->text + n - 1 - tok);
        if (toklen <= off && memcmp(ld->text + off - toklen, tok, toklen) == 0)
            off -= toklen;
        else if (off > 0)
            off--;
    } else if (strstr(je->text, "near end of file")) {
        while (off > 0 && memchr(" \t\r\n", ld->text[off - 1], 4))
            off--;
    } else if (strncmp(je->text, "unable to decode byte", 21) == 0) {
        /* An invalid UTF-8 byte with no token before it: jansson's position
         * is that byte's offset. */
    } else if (off > 0) {
        off--;
    }
    /* jansson quotes raw file text, even a lone byte of a cut UTF-8
     * sequence: escape all of it like every other echo of the file. */
    config_text_escape(text, sizeof(text), je->text, sizeof(je->text));
    json_line_col(ld->text, ld->len, off, &line, &col);
    snprintf(ld->err, ld->errlen, "%s:%u:%u: syntax error: %s", ld->file, line, col, text);
}

/* Loads the file's TEXT (owned: kept as the config's text, or freed),
 * with ld's documents. */
static int load_from_text(struct loader *ld, const char *path, char *text, size_t len,
                          struct lb_config **out)
{
    struct lb_config *cfg = NULL;
    json_t *root = NULL;
    json_error_t je;

    *out = NULL;
    ld->file = ld->base = path;
    ld->text = text;
    ld->len = len;
    if (strspn(ld->text, " \t\r\n") == ld->len) {
        snprintf(ld->err, ld->errlen, "%s: file is empty", path);
        goto fail;
    }
    root = json_loadb(ld->text, ld->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        load_syntax_error(ld, &je);
        goto fail;
    }
    if (!(cfg = calloc(1, sizeof(*cfg))) || !(cfg->path = strdup(path))) {
        load_oom(ld);
        goto fail;
    }
    cfg->text = text;
    cfg->text_len = len;
    text = NULL;
    if (load_root(ld, root, cfg) < 0)
        goto fail;
    json_decref(root);
    *out = cfg;
    return 0;

fail:
    config_free(cfg);
    json_decref(root);
    free(text);
    return -1;
}

int config_load(const char *path, struct lb_config **out, char *err, size_t errlen)
{
    struct loader ld = {.err = err, .errlen = errlen};
    char *text = NULL;
    size_t len;

    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    if (load_read(path, &text, &len, err, errlen) < 0)
        return -1;
    /* A UTF-8 byte order mark (some editors write one) is skipped; line 1
     * column 1 is the byte after it. */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        memmove(text, text + 3, len - 3 + 1);
        len -= 3;
    }
    return load_from_text(&ld, path, text, len, out);
}

int config_merge(const struct lb_config *base, const struct config_doc *docs, size_t ndocs,
                 struct lb_config **out, char *err, size_t errlen)
{
    struct loader ld = {.err = err, .errlen = errlen, .docs = docs, .ndocs = ndocs, .merging = 1};
    char *text = malloc(base->text_len + 1);

    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", base->path);
        return -1;
    }
    memcpy(text, base->text, base->text_len + 1);
    return load_from_text(&ld, base->path, text, base->text_len, out);
}

int config_check_doc(const struct lb_config *base, const struct config_doc *doc, char *err,
                     size_t errlen)
{
    struct loader ld = {.file = base->path,
                        .base = base->path,
                        .err = err,
                        .errlen = errlen,
                        .resolvers = base->resolvers};
    struct lb_config *cfg = calloc(1, sizeof(*cfg));

    if (errlen > 0)
        err[0] = '\0';
    if (!cfg || !(cfg->pools = calloc(1, sizeof(*cfg->pools)))) {
        free(cfg);
        snprintf(err, errlen, "%s: out of memory", doc->source);
        return -1;
    }
    cfg->npools = 1;
    int rc = load_doc(&ld, doc, cfg, 0);
    config_free(cfg);
    return rc;
}

static void tls_server_free(struct lb_tls_server_conf *t)
{
    for (size_t i = 0; i < t->ncerts; i++) {
        free(t->certs[i].cert);
        free(t->certs[i].key);
    }
    free(t->certs);
    for (size_t i = 0; i < t->nalpn; i++)
        free(t->alpn[i]);
    free(t->alpn);
    free(t->min_version);
    free(t->ciphers);
    free(t->ciphersuites);
    free(t->where);
}

static void tls_client_free(struct lb_tls_client_conf *t)
{
    free(t->ca);
    free(t->server_name);
    free(t->cert);
    free(t->key);
    free(t->min_version);
    free(t->ciphers);
    free(t->ciphersuites);
    free(t->where);
}

void config_free(struct lb_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->user);
    free(cfg->group);
    free(cfg->resolvers);
    free(cfg->access_log);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct lb_listener_conf *l = &cfg->listeners[i];
        free(l->name);
        free(l->listen);
        free(l->pool);
        tls_server_free(&l->tls);
        for (size_t k = 0; k < l->nsni_routes; k++) {
            free(l->sni_routes[k].server_name);
            free(l->sni_routes[k].pool);
        }
        free(l->sni_routes);
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        struct lb_pool_conf *p = &cfg->pools[i];
        for (size_t j = 0; j < p->nbackends; j++) {
            free(p->backends[j].name);
            free(p->backends[j].address);
            free(p->backends[j].id);
            free(p->backends[j].host);
            free(p->backends[j].where);
        }
        free(p->backends);
        for (size_t j = 0; j < p->ndns; j++) {
            free(p->dns[j].name);
            free(p->dns[j].resolvers);
            free(p->dns[j].key);
            free(p->dns[j].where);
        }
        free(p->dns);
        free(p->name);
        free(p->health.method);
        free(p->health.path);
        free(p->health.host);
        free(p->health.expect_body);
        tls_client_free(&p->tls);
    }
    free(cfg->listeners);
    free(cfg->pools);
    free(cfg->admin.listen);
    free(cfg->admin.token);
    tls_server_free(&cfg->admin.tls);
    for (size_t i = 0; i < cfg->fleet.nendpoints; i++) {
        free(cfg->fleet.endpoints[i].url);
        free(cfg->fleet.endpoints[i].authority);
        free(cfg->fleet.endpoints[i].host);
    }
    tls_client_free(&cfg->fleet.tls);
    free(cfg->fleet.endpoints);
    free(cfg->fleet.prefix);
    free(cfg->fleet.token);
    free(cfg->text);
    free(cfg->path);
    free(cfg);
}

#define NAMES_COUNT(names) (sizeof(names) / sizeof(names[0]) - 1)

static const char *name_of(const char *const names[], size_t n, int i)
{
    return i >= 0 && (size_t)i < n ? names[i] : "unknown";
}

const char *config_strategy_name(enum lb_strategy s)
{
    return name_of(STRATEGY_NAMES, NAMES_COUNT(STRATEGY_NAMES), (int)s);
}

const char *config_mode_name(enum lb_mode m)
{
    return name_of(MODE_NAMES, NAMES_COUNT(MODE_NAMES), (int)m);
}

const char *config_log_level_name(enum lb_log_level l)
{
    return name_of(LOG_LEVEL_NAMES, NAMES_COUNT(LOG_LEVEL_NAMES), (int)l);
}
