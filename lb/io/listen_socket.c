/* listen_socket: see listen_socket.h. The handshake stop is a classic BPF
 * socket filter: on a TCP socket the filter sees the TCP header at offset
 * 0, and it drops every segment with SYN set (a listening socket receives
 * no SYN-ACK), so new clients retry later while the ACKs that complete
 * handshakes already under way still pass. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config/config.h"
#include "lb/io/listen_socket.h"

#define TCP_FLAGS_OFFSET 13
#define TCP_FLAG_SYN 0x02

/* Sockets a binary upgrade handed over, until a listener takes each. */
struct inherited {
    int fd;
    size_t index; /* its place among what the old process sent */
    struct sockaddr_storage addr;
};
static struct inherited *inherited;
static size_t ninherited;

int listen_socket_inherit(int fd, size_t index)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    int listening = 0, type = 0;
    socklen_t ilen = sizeof(int), tlen = sizeof(int);

    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0 ||
        (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) < 0 || !listening ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    struct inherited *more = realloc(inherited, (ninherited + 1) * sizeof(*more));
    if (!more) {
        close(fd);
        return -1;
    }
    inherited = more;
    inherited[ninherited].fd = fd;
    inherited[ninherited].index = index;
    inherited[ninherited].addr = addr;
    ninherited++;
    return 0;
}

size_t listen_socket_inherit_end(size_t *unused, size_t cap)
{
    size_t n = ninherited;
    for (size_t i = 0; i < ninherited; i++) {
        if (i < cap)
            unused[i] = inherited[i].index;
        close(inherited[i].fd);
    }
    free(inherited);
    inherited = NULL;
    ninherited = 0;
    return n;
}

/* The inherited socket bound to exactly addr, taken from the table; -1
 * for none. */
static int inherited_take(const struct sockaddr_storage *addr)
{
    for (size_t i = 0; i < ninherited; i++) {
        if (config_address_clash(&inherited[i].addr, addr) != 1)
            continue;
        int fd = inherited[i].fd;
        inherited[i] = inherited[--ninherited];
        return fd;
    }
    return -1;
}

int listen_socket_open(const struct sockaddr_storage *addr, socklen_t addrlen, bool reuseport,
                       const char **step)
{
    int one = 1;
    int fd = ninherited > 0 ? inherited_take(addr) : -1;
    if (fd >= 0) {
        /* Its file status flags are shared with the old process, which
         * wants O_NONBLOCK too; a SYN filter it may have set goes. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        listen_socket_unstop(fd);
        if (reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        return fd;
    }
    fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *step = "socket";
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (addr->ss_family == AF_INET6) /* [::]:80 must not take 0.0.0.0:80 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)addr, addrlen) < 0) {
        *step = "bind";
        goto fail;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        *step = "listen";
        goto fail;
    }
    return fd;
fail:;
    int err = errno;
    close(fd);
    errno = err;
    return -1;
}

bool listen_socket_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return config_address_clash(a, b) == 1;
}

bool listen_socket_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return config_address_clash(a, b) == 0;
}

int listen_socket_share(int fd, bool on)
{
    int v = on;
    return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, sizeof(v));
}

int listen_socket_stop(int fd)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, TCP_FLAGS_OFFSET),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, TCP_FLAG_SYN, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu), /* keep the whole segment */
        BPF_STMT(BPF_RET | BPF_K, 0),           /* drop */
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

void listen_socket_unstop(int fd)
{
    int unused = 0;
    setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused));
}
