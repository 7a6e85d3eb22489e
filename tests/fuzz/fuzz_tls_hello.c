/* fuzz_tls_hello: tls_hello_parse() (lb/proto/tls_hello.h), the ClientHello
 * reader of SNI routing, on any bytes, whole and as a prefix (the first two
 * bytes of the input choose where it ends), as a session peeks at a hello
 * arriving in two reads. An answer decided on the prefix (OK or INVALID) is
 * the answer on the whole, with the same name, version, length and reason;
 * OK never claims more bytes than were given; the name is lower-case,
 * NUL-ended and present exactly when has_server_name says; no NEED_MORE
 * once TLS_HELLO_MAX bytes are in. Any difference traps. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lb/proto/tls_hello.h"

static void check_hello(const struct tls_hello *h, size_t len)
{
    size_t n = strnlen(h->server_name, sizeof(h->server_name));
    if (n == sizeof(h->server_name) || h->hello_len == 0 || h->hello_len > len ||
        h->has_server_name != (n > 0))
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (h->server_name[i] >= 'A' && h->server_name[i] <= 'Z')
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

    struct tls_hello whole, part;
    const char *whole_why = NULL, *part_why = NULL;
    memset(&whole, 0, sizeof(whole));
    memset(&part, 0, sizeof(part));
    enum tls_hello_result w = tls_hello_parse(data, size, &whole, &whole_why);
    enum tls_hello_result p = tls_hello_parse(data, split, &part, &part_why);

    if (w == TLS_HELLO_OK)
        check_hello(&whole, size);
    if (w == TLS_HELLO_NEED_MORE && size >= TLS_HELLO_MAX)
        __builtin_trap();
    if (w == TLS_HELLO_INVALID && !whole_why)
        __builtin_trap();
    if (p == TLS_HELLO_OK) {
        if (w != TLS_HELLO_OK || part.hello_len != whole.hello_len ||
            part.version != whole.version || part.has_server_name != whole.has_server_name ||
            strcmp(part.server_name, whole.server_name) != 0)
            __builtin_trap();
    } else if (p == TLS_HELLO_INVALID) {
        if (w != TLS_HELLO_INVALID || strcmp(whole_why, part_why) != 0)
            __builtin_trap();
    }
    return 0;
}
