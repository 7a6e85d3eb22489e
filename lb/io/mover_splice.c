/* mover_splice: the ring that moves to splice(2) once a flow carries bulk
 * (HAProxy's splice-auto idea). Small exchanges stay on the ring, where one
 * read and one write per message cost least; once a read fills a whole
 * buffer, the flow waits for the ring to empty (so bytes keep their order)
 * and from then on moves them socket -> pipe -> socket inside the kernel.
 * A pipe's fill level is not enough to know it is full (it holds pages, not
 * bytes), so a splice into it that moves nothing while it holds bytes
 * stalls the flow until the pipe has drained. */
#include <errno.h>
#include <fcntl.h>

#include "lb/io/mover.h"

/* What one splice into the pipe asks for: more than a pipe holds (64 KiB
 * by default), so each call takes what fits. */
#define SPLICE_CHUNK (1u << 20)

static bool is_tcp(const struct conn *c)
{
    return c->ops == &conn_tcp_ops;
}

static ssize_t splice_fill(struct mover *m, struct conn *src)
{
    struct mover_splice *sp = &m->splice;
    ssize_t n;
    do {
        n = splice(src->fd, NULL, sp->pipe[1], NULL, SPLICE_CHUNK,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        sp->held += (uint32_t)n;
    else if (n < 0 && errno == EAGAIN && sp->held > 0)
        sp->stalled = true; /* the socket is empty or the pipe full: wait for the drain */
    return n;
}

static ssize_t splice_flush(struct mover *m, struct conn *dst)
{
    struct mover_splice *sp = &m->splice;
    ssize_t total = 0;
    while (sp->held > 0) {
        ssize_t n =
            splice(sp->pipe[0], NULL, dst->fd, NULL, sp->held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        sp->held -= (uint32_t)n;
        sp->stalled = false;
        total += n;
        if (m->spliced)
            *m->spliced += (uint64_t)n;
    }
    return total;
}

static ssize_t auto_fill(struct mover *m, struct conn *src)
{
    if (m->splice.on)
        return splice_fill(m, src);
    ssize_t n = mover_ring_ops.fill(m, src);
    if (n > 0 && (size_t)n >= m->ring.size && m->splice.pipes && is_tcp(src))
        m->splice.wanted = true;
    return n;
}

static ssize_t auto_flush(struct mover *m, struct conn *dst)
{
    struct mover_splice *sp = &m->splice;
    if (sp->on)
        return splice_flush(m, dst);
    ssize_t n = mover_ring_ops.flush(m, dst);
    if (n >= 0 && sp->wanted && m->ring.len == 0 && is_tcp(dst)) {
        sp->wanted = false; /* one try per full read: no pipe now, maybe later */
        if (pipepool_get(sp->pipes, sp->pipe) == 0)
            sp->on = true;
    }
    return n;
}

static size_t auto_held(const struct mover *m)
{
    return m->splice.on ? m->splice.held : m->ring.len;
}

static bool auto_full(const struct mover *m)
{
    return m->splice.on ? m->splice.stalled : mover_ring_ops.full(m);
}

static void auto_release(struct mover *m)
{
    struct mover_splice *sp = &m->splice;
    mover_ring_ops.release(m);
    if (sp->on)
        pipepool_put(sp->pipes, sp->pipe, sp->held == 0);
    sp->on = sp->wanted = sp->stalled = false;
    sp->held = 0;
}

const struct mover_ops mover_auto_ops = {
    .name = "auto",
    .fill = auto_fill,
    .flush = auto_flush,
    .held = auto_held,
    .full = auto_full,
    .release = auto_release,
};

void mover_auto_init(struct mover *m, struct bufpool *bufs, struct pipepool *pipes)
{
    mover_ring_init_pooled(m, bufs);
    m->ops = &mover_auto_ops;
    m->splice.pipes = pipes;
    m->splice.pipe[0] = m->splice.pipe[1] = -1;
}

void mover_no_splice(struct mover *m)
{
    struct mover_splice *sp = &m->splice;
    if (m->ops != &mover_auto_ops)
        return;
    if (sp->on && sp->held == 0) {
        pipepool_put(sp->pipes, sp->pipe, true);
        sp->on = sp->stalled = false;
    }
    sp->wanted = false;
    if (!sp->on)
        sp->pipes = NULL;
}
