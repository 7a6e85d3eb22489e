/* resolver: one c-ares channel driven by lb's event loop, so that no DNS
 * lookup ever blocks it. c-ares tells which of its sockets it wants to
 * read or write (ARES_OPT_SOCK_STATE_CB); each gets a libevent event, and
 * one timer follows ares_timeout(). Queries are c-ares' own calls on
 * resolver_channel(), each followed by resolver_kick(). Every owner of
 * queries (a start or reload resolving host names, each DNS discovery
 * entry) has its own channel, so freeing it cancels exactly its queries:
 * c-ares 1.18 cannot cancel one query. */
#ifndef LB_IO_RESOLVER_H
#define LB_IO_RESOLVER_H

#include <stddef.h>

#include <ares.h>

struct event_base;
struct resolver;

/* Per try, and tries per server: a server that does not answer costs at
 * most RESOLVER_TIMEOUT_MS * RESOLVER_TRIES per lookup before the next. */
#define RESOLVER_TIMEOUT_MS 1000
#define RESOLVER_TRIES 2

/* A channel on base. SERVERS: NULL for the system's (/etc/resolv.conf,
 * read now; /etc/hosts is read by ares_getaddrinfo), else c-ares' CSV
 * form, "127.0.0.1:8600,[::1]:53", which replaces them. NULL with the
 * reason in err on failure. */
struct resolver *resolver_new(struct event_base *base, const char *servers, char *err,
                              size_t errlen);
/* The channel, for ares_query(), ares_getaddrinfo() and the like. */
ares_channel resolver_channel(struct resolver *r);
/* Re-arms the timer after queries were started. */
void resolver_kick(struct resolver *r);
/* Cancels what is pending (each callback runs now, with ARES_EDESTRUCTION:
 * it must not start anything on r) and frees r. NULL: nothing. */
void resolver_free(struct resolver *r);

/* "127.0.0.1:53" from SERVERS' first entry, or "system" for NULL: for
 * log lines. */
const char *resolver_servers(const struct resolver *r);

#endif
