/* config_address: "host:port", "[ipv6]:port" and, for listen addresses,
 * "*:port" turned into a sockaddr. Nothing here looks a name up: a host
 * name (where CONFIG_ADDR_NAME allows one) is handed back for lb's
 * non-blocking resolver (lb/io/resolver.h), and "localhost" is 127.0.0.1
 * without a lookup (RFC 6761 6.3), wherever an address is taken. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void config_address_set_port(struct sockaddr_storage *addr, unsigned short port)
{
    if (addr->ss_family == AF_INET)
        ((struct sockaddr_in *)addr)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
}

/* Fills ADDR from HOST, already split from its port: 0, 1 for a host name
 * (ADDR untouched) when FLAGS allow one, or -1 with err. */
static int address_host(const char *text, const char *host, int bracketed, unsigned flags,
                        struct sockaddr_storage *addr, socklen_t *addrlen, char *err, size_t errlen)
{
    int passive = (flags & CONFIG_ADDR_PASSIVE) != 0;

    if (bracketed) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
        memset(addr, 0, sizeof(*addr));
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return address_bad(text, passive, "not an IPv6 address", err, errlen);
        sin6->sin6_family = AF_INET6;
        *addrlen = sizeof(*sin6);
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
    if (strcasecmp(host, "localhost") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)addr;
        memset(addr, 0, sizeof(*addr));
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
    if (strlen(host) > CONFIG_HOST_MAX || strspn(host, HOST_CHARS) != strlen(host))
        return address_bad(text, passive, "bad host name", err, errlen);
    if (!(flags & CONFIG_ADDR_NAME))
        return address_bad(text, passive,
                           "an IP address is needed here (or localhost); host names are "
                           "resolved for backends only",
                           err, errlen);
    return 1;
}

int config_parse_address(const char *text, unsigned flags, struct sockaddr_storage *addr,
                         socklen_t *addrlen, char *name, unsigned short *port, char *err,
                         size_t errlen)
{
    int passive = (flags & CONFIG_ADDR_PASSIVE) != 0;
    const char *host, *portstr, *colon;
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
        portstr = close + 2;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return address_bad(text, passive, NULL, err, errlen);
        host = text;
        hostlen = (size_t)(colon - text);
        portstr = colon + 1;
        if (memchr(host, ':', hostlen))
            return address_bad(text, passive, "an IPv6 address needs brackets: [ipv6]:port", err,
                               errlen);
    }
    if (hostlen == 0)
        return address_bad(text, passive, NULL, err, errlen);
    if (address_port(portstr, &portnum, err, errlen) < 0)
        return -1;
    hostcopy = strndup(host, hostlen);
    if (!hostcopy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = address_host(text, hostcopy, bracketed, flags, addr, addrlen, err, errlen);
    if (rc == 1) {
        for (char *c = hostcopy; *c; c++) /* names are compared without case */
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        snprintf(name, CONFIG_HOST_MAX + 1, "%s", hostcopy);
        *port = portnum;
    }
    free(hostcopy);
    if (rc != 0)
        return rc;
    config_address_set_port(addr, portnum);
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
