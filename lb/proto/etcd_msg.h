/* etcd_msg: the JSON bodies of etcd's v3 HTTP gateway, for the fleet
 * (lb following a desired state kept in etcd): the range, watch and put
 * requests lb sends, and what it makes of the answers. In that API keys
 * and values are base64 and 64-bit integers are JSON strings. An answer is
 * an outside input: every field is checked, keys and values are bounded,
 * and nothing here touches a socket (tests/fuzz/fuzz_etcd.c). */
#ifndef LB_PROTO_ETCD_MSG_H
#define LB_PROTO_ETCD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what one answer may hold; more fails the parse. */
#define ETCD_KEY_MAX 1024 /* bytes of a key, decoded */
#define ETCD_VALUE_MAX                                                                             \
    (1u << 20) /* bytes of a value, decoded (etcd's default request limit is 1.5 MiB) */
#define ETCD_KVS_MAX 100000 /* keys of one range answer, events of one watch message */

/* One key: from a range answer, or one event of a watch message. key and
 * value are NUL-terminated copies (a value may hold NULs: value_len
 * counts them). A DELETE event has no value (NULL, 0). */
struct etcd_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t mod_revision;
    bool deleted;
    /* Why this key could not be read (NULL: it could): its key is "" when
     * the key itself was the fault, value NULL when the value was. */
    const char *bad;
};

/* One answer of the gateway. */
struct etcd_msg {
    int64_t revision;    /* header.revision: the store's revision the answer is of (0: none) */
    struct etcd_kv *kvs; /* range: the keys (kvs); watch: the events, in order */
    size_t nkvs;
    bool more; /* range: more keys than the limit asked for */
    /* watch only: */
    int64_t watch_id;
    bool created;             /* the watch is set up */
    bool canceled;            /* the server ended the watch (see compact_revision, error) */
    int64_t compact_revision; /* > 0: canceled because the start revision was compacted away;
                               * the oldest revision still kept */
    /* An error answer ({"error": ..., "code": N}, or a watch's
     * result.cancel_reason): its gRPC code (0: none) and message. */
    int code;
    char error[256];
};

/* The body of POST /v3/kv/range for every key under prefix (revision 0:
 * the latest), of POST /v3/watch creating a watch on the prefix from
 * start_revision (with prev_kv off and progress notifications on), and of
 * POST /v3/kv/put. Each is a malloc'd NUL-terminated string, NULL when out
 * of memory. */
char *etcd_range_body(const char *prefix, int64_t revision);
char *etcd_watch_body(const char *prefix, int64_t start_revision);
/* The liveness probe: a linearizable range (a member without a leader
 * cannot answer it) of the prefix's one key changed last, keys only: its
 * mod_revision says whether a watch missed a change. */
char *etcd_probe_body(const char *prefix);
char *etcd_put_body(const char *key, const char *value, size_t value_len);

enum etcd_msg_kind { ETCD_RANGE, ETCD_WATCH, ETCD_PUT };

/* Parses one answer body text[0..len) of that kind into *m, which it
 * first zeroes (free it with etcd_msg_free() whatever the result). An
 * error object ({"error", "code"}) parses fine, with m->code and m->error
 * set. 0, or -1 with a short reason in err (no byte of the answer is
 * echoed into it except a bounded, escaped error message). */
int etcd_msg_parse(const char *text, size_t len, enum etcd_msg_kind kind, struct etcd_msg *m,
                   char *err, size_t errlen);
void etcd_msg_free(struct etcd_msg *m);

/* The gRPC code etcd answers for a compacted revision, and for a request
 * the cluster cannot serve now (no leader, a timeout). */
#define ETCD_CODE_OUT_OF_RANGE 11
#define ETCD_CODE_UNAVAILABLE 14

#endif
