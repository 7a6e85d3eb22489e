/* conn: the connection-ops table every side of a session does its I/O
 * through (Redis's ConnectionType, nginx's c->recv/c->send). Plain TCP is
 * the first implementation (lb/io/conn_tcp.c); a TLS layer is another, so
 * the relay never calls read(2) or send(2) on a socket itself. */
#ifndef LB_IO_CONN_H
#define LB_IO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct conn;

/* What a layer's last step waits for, when it is not the obvious: a TLS
 * read may have to write first (an alert, or the refusal of a server's
 * renegotiation, while the socket is full; OpenSSL 3.0 puts off the answer
 * to a KeyUpdate until the next write), so the reader must wait for
 * writability and read again then. */
enum conn_want { CONN_WANT_NONE = 0, CONN_WANT_READ = 1, CONN_WANT_WRITE = 2 };

struct conn_ops {
    const char *name;
    /* Reads into iov: > 0 bytes, 0 at end of stream, -1 with errno set
     * (EAGAIN / EWOULDBLOCK: nothing now, wait for readability). */
    ssize_t (*readv)(struct conn *c, const struct iovec *iov, int iovcnt);
    /* Writes from iov: >= 0 bytes taken (possibly fewer than offered), -1
     * with errno set (EAGAIN: full, wait for writability). Never raises
     * SIGPIPE. */
    ssize_t (*writev)(struct conn *c, const struct iovec *iov, int iovcnt);
    /* Ends the stream towards the peer (TCP FIN) after what was written.
     * Errors are ignored: a peer that went away ends the session anyway. */
    void (*shutdown_write)(struct conn *c);
    /* Makes the coming close abort the connection (TCP RST) rather than
     * end it, so the peer cannot take a cut stream for a complete one. */
    void (*reset)(struct conn *c);
    /* Releases the layer and closes the descriptor; c->fd becomes -1. */
    void (*close)(struct conn *c);
    /* Bytes the layer has already taken off the socket and holds for the
     * next readv (decrypted TLS records): no socket event announces them,
     * so the relay asks after each read. 0 for plain TCP. */
    size_t (*pending)(const struct conn *c);
    /* The socket's pending error (SO_ERROR), 0 when none: how the probe
     * finds a reset on a side no event watches. */
    int (*error)(const struct conn *c);
    /* After a readv or writev that failed with EAGAIN: what it waits for.
     * NULL when always the obvious (a read the socket's readability, a
     * write its writability), as for plain TCP. */
    enum conn_want (*wants)(const struct conn *c);
    /* After a writev that failed with EAGAIN or took fewer bytes than
     * offered: true when the layer has already committed to bytes it was
     * offered but did not count as taken (a TLS record made of them waits
     * for the socket), so the next writev must offer them again, first —
     * the caller may not replace them with others (lb's own error page in
     * place of a response). NULL: never (plain TCP). */
    bool (*write_held)(const struct conn *c);
};

struct conn {
    const struct conn_ops *ops;
    int fd;      /* -1 when closed */
    void *layer; /* the implementation's own state; NULL for plain TCP */
};

extern const struct conn_ops conn_tcp_ops;

/* The plain socket's reset (SO_LINGER 0) and pending error (SO_ERROR), for
 * layers over a socket whose own are the same (TLS). */
void conn_tcp_reset(struct conn *c);
int conn_tcp_error(const struct conn *c);

/* c becomes a plain TCP (or any stream socket) connection over fd. */
static inline void conn_tcp_init(struct conn *c, int fd)
{
    c->ops = &conn_tcp_ops;
    c->fd = fd;
    c->layer = NULL;
}

static inline ssize_t conn_readv(struct conn *c, const struct iovec *iov, int iovcnt)
{
    return c->ops->readv(c, iov, iovcnt);
}

static inline ssize_t conn_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    return c->ops->writev(c, iov, iovcnt);
}

static inline size_t conn_pending(const struct conn *c)
{
    return c->ops->pending(c);
}

/* The bytes c was last offered and did not take must be offered again. */
static inline bool conn_write_held(const struct conn *c)
{
    return c->ops->write_held && c->ops->write_held(c);
}

/* The last readv of c failed with EAGAIN until the socket is writable. */
static inline bool conn_read_wants_write(const struct conn *c)
{
    return c->ops->wants && c->ops->wants(c) == CONN_WANT_WRITE;
}

#endif
