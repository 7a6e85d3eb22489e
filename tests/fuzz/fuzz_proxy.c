/* fuzz_proxy: proxy_parse() (lb/proto/proxy_proto.h) on any bytes, whole and
 * as a prefix, as a session sees a header arrive in two reads. The first
 * two bytes of the input choose where the prefix ends; the rest is what
 * the peer sent. The contract checked: an answer decided on the prefix
 * (OK or INVALID) is the answer on the whole, with the same header, length
 * and reason; a whole that needs more had a prefix that needed more; OK
 * consumes at most what was given; no NEED_MORE once PROXY_HEADER_MAX
 * bytes are in. Any difference traps. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lb/proto/proxy_proto.h"

static void same_addr(const struct proxy_addr *a, const struct proxy_addr *b)
{
    if (a->local != b->local || a->version != b->version ||
        memcmp(&a->src, &b->src, sizeof(a->src)) != 0 ||
        memcmp(&a->dst, &b->dst, sizeof(a->dst)) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = ((size_t)data[0] << 8 | data[1]);
    data += 2;
    size -= 2;
    split = size ? split % (size + 1) : 0;

    struct proxy_addr whole, part;
    size_t whole_len = 0, part_len = 0;
    const char *whole_why = NULL, *part_why = NULL;
    memset(&whole, 0, sizeof(whole));
    memset(&part, 0, sizeof(part));
    enum proxy_result w = proxy_parse(data, size, &whole, &whole_len, &whole_why);
    enum proxy_result p = proxy_parse(data, split, &part, &part_len, &part_why);

    if (w == PROXY_OK && (whole_len == 0 || whole_len > size))
        __builtin_trap();
    if (w == PROXY_NEED_MORE && size >= PROXY_HEADER_MAX)
        __builtin_trap();
    if (w == PROXY_INVALID && !whole_why)
        __builtin_trap();
    if (p == PROXY_OK) {
        if (w != PROXY_OK || part_len != whole_len)
            __builtin_trap();
        same_addr(&whole, &part);
    } else if (p == PROXY_INVALID) {
        if (w != PROXY_INVALID || strcmp(whole_why, part_why) != 0)
            __builtin_trap();
    }
    return 0;
}
