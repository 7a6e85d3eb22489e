/* config_address: "host:port", "[ipv6]:port" and, for listen addresses,
 * "*:port" turned into a sockaddr. Host names are resolved once, at load,
 * with getaddrinfo (first result); lb never re-resolves them. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_internal.h"

/* What a DNS name may hold; anything else is not worth a lookup. */
#define HOST_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_"

static int address_bad(const char *text, int passive, const char *why, char *err, size_t errlen)
{
    char q[CONFIG_ESCAPE_SIZE];

    config_escape(q, sizeof(q), text);
    if (why)
        snprintf(err, errlen, "bad address \"%s\" (%s)", q, why);
    else
        snprintf(err, errlen, "bad address \"%s\" (expected host:port, [ipv6]:port%s)", q,
                 passive ? " or *:port" : "");
    return -1;
}

/* Parses PORT (decimal, 1..65535) into *out. */
static int address_port(const char *port, unsigned short *out, char *err, size_t errlen)
{
    char q[CONFIG_ESCAPE_SIZE];
    size_t n = strlen(port);
    int digits = n > 0 && strspn(port, "0123456789") == n;
    unsigned long v = digits && n <= 5 ? strtoul(port, NULL, 10) : 0;

    if (v >= 1 && v <= 65535) {
        *out = (unsigned short)v;
        return 0;
    }
    config_escape(q, sizeof(q), port);
    if (digits)
        snprintf(err, errlen, "port must be 1..65535 (got %s)", q);
    else
        snprintf(err, errlen, "port must be 1..65535 (got \"%s\")", q);
    return -1;
}

/* Resolves HOST with getaddrinfo restricted by FAMILY and FLAGS and keeps
 * the first result. Returns the getaddrinfo error code. */
static int address_resolve(const char *host, int family, int flags, struct sockaddr_storage *addr,
                           socklen_t *addrlen)
{
    struct addrinfo hints, *res;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags; /* no AI_ADDRCONFIG: loopback-only hosts must work */
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return rc;
    if (res->ai_addrlen > sizeof(*addr)) {
        freeaddrinfo(res);
        return EAI_FAMILY;
    }
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void address_set_port(struct sockaddr_storage *addr, unsigned short port)
{
    if (addr->ss_family == AF_INET)
        ((struct sockaddr_in *)addr)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
}

/* Fills ADDR from HOST, already split from its port. */
static int address_host(const char *text, const char *host, int bracketed, int passive,
                        struct sockaddr_storage *addr, socklen_t *addrlen, char *err, size_t errlen)
{
    char q[CONFIG_ESCAPE_SIZE];
    int rc;

    if (bracketed) {
        if (address_resolve(host, AF_INET6, AI_NUMERICHOST, addr, addrlen) != 0)
            return address_bad(text, passive, "not an IPv6 address", err, errlen);
        return 0;
    }
    if (strcmp(host, "*") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)addr;
        if (!passive)
            return address_bad(text, passive, "\"*\" is only allowed in listen addresses", err,
                               errlen);
        memset(addr, 0, sizeof(*addr));
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        *addrlen = sizeof(*sin);
        return 0;
    }
    /* Digits and dots only: an IPv4 literal, never a name. inet_pton
     * refuses the legacy forms getaddrinfo would take ("1.2.3", "0x7f.1"). */
    if (strspn(host, "0123456789.") == strlen(host)) {
        struct sockaddr_in *sin = (struct sockaddr_in *)addr;
        memset(addr, 0, sizeof(*addr));
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return address_bad(text, passive, "not an IPv4 address", err, errlen);
        sin->sin_family = AF_INET;
        *addrlen = sizeof(*sin);
        return 0;
    }
    if (strspn(host, HOST_CHARS) != strlen(host))
        return address_bad(text, passive, "bad host name", err, errlen);
    rc = address_resolve(host, AF_UNSPEC, 0, addr, addrlen);
    if (rc != 0) {
        config_escape(q, sizeof(q), host);
        snprintf(err, errlen, "cannot resolve host \"%s\": %s", q, gai_strerror(rc));
        return -1;
    }
    return 0;
}

int config_parse_address(const char *text, int passive, struct sockaddr_storage *addr,
                         socklen_t *addrlen, char *err, size_t errlen)
{
    const char *host, *port, *colon;
    size_t hostlen;
    int bracketed = text[0] == '[';
    unsigned short portnum;
    char *hostcopy;
    int rc;

    if (bracketed) {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return address_bad(text, passive, NULL, err, errlen);
        host = text + 1;
        hostlen = (size_t)(close - host);
        port = close + 2;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return address_bad(text, passive, NULL, err, errlen);
        host = text;
        hostlen = (size_t)(colon - text);
        port = colon + 1;
        if (memchr(host, ':', hostlen))
            return address_bad(text, passive, "an IPv6 address needs brackets: [ipv6]:port", err,
                               errlen);
    }
    if (hostlen == 0)
        return address_bad(text, passive, NULL, err, errlen);
    if (address_port(port, &portnum, err, errlen) < 0)
        return -1;
    hostcopy = strndup(host, hostlen);
    if (!hostcopy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = address_host(text, hostcopy, bracketed, passive, addr, addrlen, err, errlen);
    free(hostcopy);
    if (rc < 0)
        return -1;
    address_set_port(addr, portnum);
    return 0;
}

static int address_is_any(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

int config_address_clash(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return -1;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        if (x->sin_port != y->sin_port)
            return -1;
        if (x->sin_addr.s_addr == y->sin_addr.s_addr)
            return 1;
    } else {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        if (x->sin6_port != y->sin6_port)
            return -1;
        if (memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
            x->sin6_scope_id == y->sin6_scope_id)
            return 1;
    }
    return address_is_any(a) || address_is_any(b) ? 0 : -1;
}

int config_address_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family != AF_INET6)
        return 0;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}
