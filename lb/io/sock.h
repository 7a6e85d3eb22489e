/* sock: small helpers on plain sockets shared by the data path, the admin
 * API and the listeners: printing an address, socket options, and telling
 * a descriptor shortage from a peer's fault. */
#ifndef LB_IO_SOCK_H
#define LB_IO_SOCK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config/config.h"

/* accept() or socket() failed for want of descriptors or kernel memory: the
 * caller pauses and retries rather than treating it as the peer's fault. */
static inline bool errno_starved(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* "1.2.3.4:80" or "[::1]:80" into buf; returns buf. */
const char *sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);

/* TCP_NODELAY on fd: the relay writes what it has at once. */
void sock_set_nodelay(int fd);
/* Turns on TCP keepalive on fd when ka says so, for a peer that vanishes
 * without a reset. A failure is logged at debug; the connection goes on
 * without keepalive. owner and name ("listener", "web") say whose socket. */
void sock_set_keepalive(int fd, const struct lb_keepalive_conf *ka, const char *owner,
                        const char *name);

#endif
