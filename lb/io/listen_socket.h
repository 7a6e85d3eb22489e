/* listen_socket: the listening sockets of the listeners and of the admin
 * API — bound and listening without blocking — and the two steps that let
 * a reload move an address to an overlapping one (`*:80` and
 * `127.0.0.1:80`) without refusing a connection. */
#ifndef LB_LISTEN_SOCKET_H
#define LB_LISTEN_SOCKET_H

#include <stdbool.h>
#include <sys/socket.h>

/* A bound, listening, non-blocking, close-on-exec socket on addr, or -1
 * with errno set and *step naming the call that failed ("socket", "bind"
 * or "listen"). reuseport: SO_REUSEPORT, so the bind succeeds beside an
 * overlapping socket that has it too (listen_socket_share()). */
int listen_socket_open(const struct sockaddr_storage *addr, socklen_t addrlen, bool reuseport,
                       const char **step);

/* A binary upgrade (lb/upgrade.c): fd, a listening TCP socket received
 * from the old process, is kept (owned from now on) until
 * listen_socket_open() is asked for its exact address, which then returns
 * it instead of binding: the new process serves the very same socket. -1
 * (fd closed) when it is not a listening TCP socket. */
int listen_socket_inherit(int fd, size_t index);
/* The start is over: closes the inherited sockets no listener took; how
 * many, their indexes (as listen_socket_inherit() got them) in unused, at
 * most cap. */
size_t listen_socket_inherit_end(size_t *unused, size_t cap);

/* True when a and b are the same address and port. */
bool listen_socket_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* True when a and b are different addresses that bind() would not allow
 * side by side: the same family and port, one of them the wildcard. */
bool listen_socket_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Lets an open listening socket share its port with an overlapping one
 * opened with reuseport (on) — the kernel sends each client to the more
 * specific address — or stops it (off). 0 or -1. */
int listen_socket_share(int fd, bool on);
/* Stops new handshakes on a listening socket: their SYNs are dropped, so
 * the clients send them again a second later, to whatever listens then.
 * Handshakes under way complete and queue for accept() as before. 0 or -1.
 * Accepted sockets inherit the filter: listen_socket_unstop() them. */
int listen_socket_stop(int fd);
void listen_socket_unstop(int fd);

#endif
