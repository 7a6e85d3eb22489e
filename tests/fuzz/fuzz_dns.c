/* fuzz_dns: dns_answer_parse() and dns_answer_finish()
 * (lb/proto/dns_answer.h), DNS discovery's answer -> backends expansion,
 * on any bytes. The first byte picks the type asked (A, AAAA or SRV), the
 * rest is the message. On success: at most DNS_BACKENDS_MAX backends, each
 * IPv4 or IPv6 with the matching length; SRV targets lower-case,
 * NUL-ended, at most DNS_NAME_MAX, no trailing dot; after finish the
 * backends strictly increase (no repeat of an address and port) and SRV
 * weights are 1..256. On failure a reason. Any difference traps; a leak
 * fails the run. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lb/proto/dns_answer.h"

static const unsigned types[3] = {DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_SRV};

/* <0, 0, >0 on family, address, port. */
static int order(const struct dns_backend *a, const struct dns_backend *b)
{
    if (a->addr.ss_family != b->addr.ss_family)
        return a->addr.ss_family == AF_INET ? -1 : 1;
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->addr, *y = (const void *)&b->addr;
        int c = memcmp(&x->sin_addr, &y->sin_addr, 4);
        return c ? c : (int)ntohs(x->sin_port) - (int)ntohs(y->sin_port);
    }
    const struct sockaddr_in6 *x = (const void *)&a->addr, *y = (const void *)&b->addr;
    int c = memcmp(&x->sin6_addr, &y->sin6_addr, 16);
    return c ? c : (int)ntohs(x->sin6_port) - (int)ntohs(y->sin6_port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned qtype = types[data[0] % 3];
    struct dns_answer a;
    const char *why = NULL;
    int rc = dns_answer_parse(data + 1, size - 1, qtype, 8080, 3, &a, &why);
    if (rc < 0) {
        if (!why || !*why)
            __builtin_trap();
        dns_answer_free(&a);
        return 0;
    }
    if (rc != 0 || a.nbackends > DNS_BACKENDS_MAX)
        __builtin_trap();
    for (size_t i = 0; i < a.nbackends; i++) {
        const struct dns_backend *b = &a.backends[i];
        if (!(b->addr.ss_family == AF_INET && b->addrlen == sizeof(struct sockaddr_in)) &&
            !(b->addr.ss_family == AF_INET6 && b->addrlen == sizeof(struct sockaddr_in6)))
            __builtin_trap();
    }
    for (size_t i = 0; i < a.ntargets; i++) {
        const char *n = a.targets[i].name;
        size_t len = strnlen(n, sizeof(a.targets[i].name));
        if (len == 0 || len > DNS_NAME_MAX || n[len - 1] == '.')
            __builtin_trap();
        for (size_t k = 0; k < len; k++)
            if (n[k] >= 'A' && n[k] <= 'Z')
                __builtin_trap();
    }
    dns_answer_finish(&a, qtype == DNS_TYPE_SRV);
    for (size_t i = 0; i < a.nbackends; i++) {
        if (i > 0 && order(&a.backends[i - 1], &a.backends[i]) >= 0)
            __builtin_trap();
        if (qtype == DNS_TYPE_SRV && (a.backends[i].weight < 1 || a.backends[i].weight > 256))
            __builtin_trap();
    }
    dns_answer_free(&a);
    return 0;
}
