/* etcd_msg: requests to and answers from etcd's v3 HTTP gateway as JSON
 * (jansson). Keys and values travel in base64 (OpenSSL's block codec);
 * int64 fields are strings, which proto3's JSON mapping omits when zero
 * or false. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "lb/proto/etcd_msg.h"

/* base64 of src[0..len), malloc'd and NUL-terminated; NULL: out of memory. */
static char *b64_encode(const void *src, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, src, (int)len);
    return out;
}

/* Decodes the base64 text s (at most max decoded bytes) into a malloc'd,
 * NUL-terminated copy; -1 when it is not strict base64 or too long. */
static int b64_decode(const char *s, size_t max, char **out, size_t *outlen)
{
    size_t n = strlen(s);
    if (n % 4 != 0 || n / 4 * 3 > max + 2)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool pad_ok = c == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '=');
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || pad_ok))
            return -1;
    }
    char *buf = malloc(n / 4 * 3 + 1);
    if (!buf)
        return -1;
    int got = n ? EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)s, (int)n) : 0;
    if (got < 0) {
        free(buf);
        return -1;
    }
    size_t len = (size_t)got - (n && s[n - 1] == '=') - (n > 1 && s[n - 2] == '=');
    if (len > max) {
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

/* prefix's range end: the prefix with its last byte that is not 0xff
 * raised by one and what follows dropped ("\0" when every byte is 0xff:
 * to the end of the keyspace, as etcd reads it). */
static size_t prefix_end(const char *prefix, char *end)
{
    size_t n = strlen(prefix);
    memcpy(end, prefix, n);
    while (n > 0 && (unsigned char)end[n - 1] == 0xff)
        n--;
    if (n == 0) {
        end[0] = '\0';
        return 1;
    }
    end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    return n;
}

/* {"key": b64(prefix), "range_end": b64(end of prefix)} plus more, as text. */
static char *prefix_body(const char *prefix, json_t *more)
{
    char *end = malloc(strlen(prefix) + 1);
    char *key = b64_encode(prefix, strlen(prefix));
    char *range_end = NULL;
    char *text = NULL;
    if (end && key) {
        size_t n = prefix_end(prefix, end);
        range_end = b64_encode(end, n);
    }
    if (range_end && more && json_object_set_new(more, "key", json_string(key)) == 0 &&
        json_object_set_new(more, "range_end", json_string(range_end)) == 0)
        text = json_dumps(more, JSON_COMPACT);
    json_decref(more);
    free(end);
    free(key);
    free(range_end);
    return text;
}

char *etcd_range_body(const char *prefix, int64_t revision)
{
    json_t *o = json_object();
    if (o && revision > 0) {
        char rev[32];
        snprintf(rev, sizeof(rev), "%" PRId64, revision);
        json_object_set_new(o, "revision", json_string(rev));
    }
    return prefix_body(prefix, o);
}

char *etcd_probe_body(const char *prefix)
{
    json_t *o = json_pack("{s:i, s:s, s:s, s:b}", "limit", 1, "sort_order", "DESCEND",
                          "sort_target", "MOD", "keys_only", 1);
    return prefix_body(prefix, o);
}

char *etcd_watch_body(const char *prefix, int64_t start_revision)
{
    json_t *create = json_object();
    if (create) {
        char rev[32];
        snprintf(rev, sizeof(rev), "%" PRId64, start_revision);
        json_object_set_new(create, "start_revision", json_string(rev));
        json_object_set_new(create, "progress_notify", json_true());
    }
    char *inner = prefix_body(prefix, create);
    if (!inner)
        return NULL;
    char *text = NULL;
    if (asprintf(&text, "{\"create_request\":%s}", inner) < 0)
        text = NULL;
    free(inner);
    return text;
}

char *etcd_put_body(const char *key, const char *value, size_t value_len)
{
    char *k = b64_encode(key, strlen(key));
    char *v = b64_encode(value, value_len);
    json_t *o = k && v ? json_pack("{s:s, s:s}", "key", k, "value", v) : NULL;
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    free(k);
    free(v);
    return text;
}

/* An int64 field: a string of decimal digits (proto3's JSON), or a JSON
 * integer; absent is 0. -1 for anything else, or a negative value. */
static int get_int64(json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out < 0 ? -1 : 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) > 19)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    long long n = strtoll(s, NULL, 10);
    if (errno)
        return -1;
    *out = n;
    return 0;
}

/* A boolean field; absent is false. -1 when it is not a boolean. */
static int get_bool(json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    *out = v && json_is_true(v);
    return !v || json_is_boolean(v) ? 0 : -1;
}

static int fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return -1;
}

/* The message of an error answer, made printable and bounded. */
static void set_error(struct etcd_msg *m, int code, const char *text)
{
    size_t o = 0;
    m->code = code;
    for (const char *p = text ? text : ""; *p && o + 5 < sizeof(m->error); p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            m->error[o++] = (char)c;
        else
            o += (size_t)snprintf(m->error + o, sizeof(m->error) - o, "\\x%02x", c);
    }
    m->error[o] = '\0';
}

/* {"error": "text", "code": N} (unary calls) or {"error": {"grpc_code": N,
 * "message": "text"}} (a stream's error): true when root is one. */
static bool error_answer(json_t *root, struct etcd_msg *m)
{
    json_t *e = json_object_get(root, "error");
    if (!e)
        return false;
    if (json_is_object(e)) {
        json_t *code = json_object_get(e, "grpc_code");
        set_error(m, json_is_integer(code) ? (int)json_integer_value(code) : -1,
                  json_string_value(json_object_get(e, "message")));
        return true;
    }
    json_t *code = json_object_get(root, "code");
    const char *msg = json_string_value(json_object_get(root, "message"));
    set_error(m, json_is_integer(code) ? (int)json_integer_value(code) : -1,
              msg ? msg : json_string_value(e));
    return true;
}

/* One mvccpb.KeyValue object into kv (deleted: no value expected). A key
 * or value that cannot be decoded within its bound leaves the kv in the
 * answer with bad set (its key "" when the key is the bad part), so one
 * such key does not make the whole answer unreadable. */
static int parse_kv(json_t *o, bool deleted, struct etcd_kv *kv, char *err, size_t errlen)
{
    if (!json_is_object(o))
        return fail(err, errlen, "a key is not an object");
    const char *key = json_string_value(json_object_get(o, "key"));
    if (!key)
        return fail(err, errlen, "a key is missing");
    if (get_int64(o, "mod_revision", &kv->mod_revision) < 0)
        return fail(err, errlen, "a mod_revision is not an integer");
    kv->deleted = deleted;
    if (b64_decode(key, ETCD_KEY_MAX, &kv->key, &kv->key_len) < 0 || kv->key_len == 0) {
        free(kv->key);
        kv->key_len = 0;
        if (!(kv->key = strdup("")))
            return fail(err, errlen, "out of memory");
        kv->bad = "the key is empty, not base64 or over 1024 bytes";
        return 0;
    }
    if (deleted)
        return 0;
    json_t *v = json_object_get(o, "value");
    const char *value = v ? json_string_value(v) : "";
    if (!value || b64_decode(value, ETCD_VALUE_MAX, &kv->value, &kv->value_len) < 0) {
        kv->value = NULL;
        kv->value_len = 0;
        kv->bad = "the value is not base64 or over 1 MiB";
    }
    return 0;
}

static int parse_header(json_t *root, struct etcd_msg *m, char *err, size_t errlen)
{
    json_t *h = json_object_get(root, "header");
    if (h && !json_is_object(h))
        return fail(err, errlen, "header is not an object");
    if (get_int64(h, "revision", &m->revision) < 0)
        return fail(err, errlen, "header.revision is not an integer");
    return 0;
}

static int alloc_kvs(struct etcd_msg *m, json_t *list, char *err, size_t errlen)
{
    if (!json_is_array(list))
        return fail(err, errlen, "the list of keys is not an array");
    size_t n = json_array_size(list);
    if (n > ETCD_KVS_MAX)
        return fail(err, errlen, "too many keys in one answer");
    if (n && !(m->kvs = calloc(n, sizeof(*m->kvs))))
        return fail(err, errlen, "out of memory");
    return 0;
}

static int parse_range(json_t *root, struct etcd_msg *m, char *err, size_t errlen)
{
    if (parse_header(root, m, err, errlen) < 0)
        return -1;
    if (get_bool(root, "more", &m->more) < 0)
        return fail(err, errlen, "more is not a boolean");
    json_t *kvs = json_object_get(root, "kvs");
    if (!kvs)
        return 0;
    if (alloc_kvs(m, kvs, err, errlen) < 0)
        return -1;
    /* Counted before it is filled, so that a half-filled one is freed. */
    for (size_t i = 0; i < json_array_size(kvs); i++)
        if (parse_kv(json_array_get(kvs, i), false, &m->kvs[m->nkvs++], err, errlen) < 0)
            return -1;
    return 0;
}

static int parse_watch(json_t *root, struct etcd_msg *m, char *err, size_t errlen)
{
    json_t *r = json_object_get(root, "result");
    if (!json_is_object(r))
        return fail(err, errlen, "no result object");
    if (parse_header(r, m, err, errlen) < 0 || get_int64(r, "watch_id", &m->watch_id) < 0 ||
        get_bool(r, "created", &m->created) < 0 || get_bool(r, "canceled", &m->canceled) < 0 ||
        get_int64(r, "compact_revision", &m->compact_revision) < 0)
        return fail(err, errlen, "a field of the watch result has the wrong type");
    const char *reason = json_string_value(json_object_get(r, "cancel_reason"));
    if (m->canceled && reason && *reason)
        set_error(m, -1, reason);
    json_t *events = json_object_get(r, "events");
    if (!events)
        return 0;
    if (alloc_kvs(m, events, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < json_array_size(events); i++) {
        json_t *ev = json_array_get(events, i);
        json_t *type = json_object_get(ev, "type");
        const char *t = type ? json_string_value(type) : "PUT";
        if (!json_is_object(ev) || !t || (strcmp(t, "PUT") != 0 && strcmp(t, "DELETE") != 0))
            return fail(err, errlen, "an event is not a PUT or a DELETE");
        if (parse_kv(json_object_get(ev, "kv"), strcmp(t, "DELETE") == 0, &m->kvs[m->nkvs++], err,
                     errlen) < 0)
            return -1;
    }
    return 0;
}

int etcd_msg_parse(const char *text, size_t len, enum etcd_msg_kind kind, struct etcd_msg *m,
                   char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, errlen, "not JSON");
    int rc = 0;
    if (!json_is_object(root))
        rc = fail(err, errlen, "not a JSON object");
    else if (error_answer(root, m))
        rc = 0;
    else if (kind == ETCD_RANGE)
        rc = parse_range(root, m, err, errlen);
    else if (kind == ETCD_WATCH)
        rc = parse_watch(root, m, err, errlen);
    else
        rc = parse_header(root, m, err, errlen);
    json_decref(root);
    return rc;
}

void etcd_msg_free(struct etcd_msg *m)
{
    for (size_t i = 0; i < m->nkvs; i++) {
        free(m->kvs[i].key);
        free(m->kvs[i].value);
    }
    free(m->kvs);
    m->kvs = NULL;
    m->nkvs = 0;
}
