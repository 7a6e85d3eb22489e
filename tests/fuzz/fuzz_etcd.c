/* fuzz_etcd: etcd_msg_parse() (lb/proto/etcd_msg.h), the fleet's reader
 * of etcd's v3 gateway answers, on any bytes. The first byte picks the
 * kind (range, watch, put), the rest is the body. On success every key
 * is 1..ETCD_KEY_MAX bytes and NUL-terminated (or "" with a reason in
 * bad), every value at most ETCD_VALUE_MAX (or NULL with bad), a DELETE
 * has no value, revisions are not negative and an error message is
 * printable ASCII. On failure a reason. Any
 * difference traps; a leak fails the run. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lb/proto/etcd_msg.h"

static const enum etcd_msg_kind kinds[3] = {ETCD_RANGE, ETCD_WATCH, ETCD_PUT};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct etcd_msg m;
    char err[256] = "";
    int rc =
        etcd_msg_parse((const char *)data + 1, size - 1, kinds[data[0] % 3], &m, err, sizeof(err));
    if (rc < 0 && err[0] == '\0')
        __builtin_trap();
    if (rc == 0) {
        if (m.nkvs > ETCD_KVS_MAX || m.revision < 0 || m.compact_revision < 0)
            __builtin_trap();
        for (size_t i = 0; i < m.nkvs; i++) {
            const struct etcd_kv *kv = &m.kvs[i];
            if (!kv->key || kv->key_len > ETCD_KEY_MAX || kv->key[kv->key_len] != '\0' ||
                kv->mod_revision < 0 || (kv->key_len == 0 && !kv->bad))
                __builtin_trap();
            if (kv->bad) {
                if (kv->value != NULL)
                    __builtin_trap();
            } else if (kv->deleted ? kv->value != NULL
                                   : kv->value == NULL || kv->value_len > ETCD_VALUE_MAX ||
                                         kv->value[kv->value_len] != '\0')
                __builtin_trap();
        }
        for (const char *p = m.error; *p; p++)
            if (*p < 0x20 || *p > 0x7e)
                __builtin_trap();
    }
    etcd_msg_free(&m);
    return 0;
}
