/* conn_tcp: the connection ops over a plain stream socket — recv/readv,
 * sendmsg without SIGPIPE, shutdown(SHUT_WR), SO_LINGER 0 for a reset. */
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>

#include "lb/io/conn.h"

static ssize_t tcp_readv(struct conn *c, const struct iovec *iov, int iovcnt)
{
    ssize_t n;
    do {
        n = iovcnt == 1 ? recv(c->fd, iov[0].iov_base, iov[0].iov_len, 0)
                        : readv(c->fd, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t tcp_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do {
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

static void tcp_shutdown_write(struct conn *c)
{
    /* ENOTCONN when the peer already went away: the session ends anyway. */
    shutdown(c->fd, SHUT_WR);
}

void conn_tcp_reset(struct conn *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (c->fd >= 0)
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void tcp_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static size_t tcp_pending(const struct conn *c)
{
    (void)c;
    return 0;
}

int conn_tcp_error(const struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return 0; /* cannot tell: the session goes on */
    return err;
}

const struct conn_ops conn_tcp_ops = {
    .name = "tcp",
    .readv = tcp_readv,
    .writev = tcp_writev,
    .shutdown_write = tcp_shutdown_write,
    .reset = conn_tcp_reset,
    .close = tcp_close,
    .pending = tcp_pending,
    .error = conn_tcp_error,
};
