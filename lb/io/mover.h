/* mover: how one direction of a relay moves bytes from one connection to
 * the other, behind a small ops table so the flow logic never knows: today
 * a bounded ring buffer (lb/io/mover_ring.c); a splice(2) pipe and
 * buffers taken only while bytes are in flight can take its place. */
#ifndef LB_IO_MOVER_H
#define LB_IO_MOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lb/io/bufpool.h"
#include "lb/io/conn.h"
#include "lb/io/pipepool.h"

struct mover;

struct mover_ops {
    const char *name;
    /* Reads once from src into the free room: > 0 bytes, 0 at src's end of
     * stream, -1 with errno (EAGAIN: nothing now; ENOMEM: no buffer).
     * Never called when full. */
    ssize_t (*fill)(struct mover *m, struct conn *src);
    /* Writes what is held to dst until it is all out or dst is full: the
     * bytes written (>= 0; fewer than held means dst is full), or -1 with
     * errno on a write error. */
    ssize_t (*flush)(struct mover *m, struct conn *dst);
    size_t (*held)(const struct mover *m); /* bytes read, not yet written */
    bool (*full)(const struct mover *m);   /* no room: stop reading src */
    void (*release)(struct mover *m);      /* gives back what it holds */
};

/* The ring's state (mover_ring.c). */
struct mover_ring {
    uint32_t head; /* offset of the first byte held */
    uint32_t len;  /* bytes held */
    uint32_t size;
    char *data;           /* size bytes; NULL while empty when pooled */
    struct bufpool *pool; /* where data comes from and goes back; NULL: the caller's */
};

/* The splice state (mover_splice.c). */
struct mover_splice {
    struct pipepool *pipes; /* NULL: never splice */
    int pipe[2];            /* [0] read end, [1] write end; -1 while none */
    uint32_t held;          /* bytes in the pipe */
    bool on;                /* bytes go through the pipe now */
    bool wanted;            /* a read filled a whole buffer: splice once the ring is empty */
    bool stalled;           /* the pipe took nothing more: full until it drains */
};

struct mover {
    const struct mover_ops *ops;
    struct mover_ring ring;
    struct mover_splice splice;
    uint64_t *spliced; /* also counts the bytes that went through a pipe, when set */
};

extern const struct mover_ops mover_ring_ops;
extern const struct mover_ops mover_auto_ops;

/* m becomes a ring over buf (size bytes, which the caller owns and keeps
 * until m is released). */
void mover_ring_init(struct mover *m, char *buf, uint32_t size);
/* m becomes a ring that takes a buffer from pool when bytes arrive and
 * gives it back as soon as they are all written: an idle flow holds no
 * buffer. A fill that finds no memory fails with ENOMEM. */
void mover_ring_init_pooled(struct mover *m, struct bufpool *pool);
/* m starts as a pooled ring (bufs) and, once one read fills a whole
 * buffer, moves its bytes with splice(2) through a pipe from pipes instead:
 * from then on they go socket to pipe to socket inside the kernel, never
 * copied to lb. Only when both connections are plain TCP (conn_tcp_ops)
 * and a pipe is free; otherwise it stays a ring. pipes NULL: a ring only. */
void mover_auto_init(struct mover *m, struct bufpool *bufs, struct pipepool *pipes);

/* m (an auto mover) stays a ring from now on: one of its connections is
 * not plain TCP. A splice already on that holds no byte ends (its pipe goes
 * back); call it before m moves a byte through a pipe. A ring is left as
 * it is. */
void mover_no_splice(struct mover *m);

/* The bytes m holds when they lie in its ring as one span: *len of them
 * at the result. Always so for a ring that was filled and never flushed
 * (a flow's first bytes, held before its destination is there), since an
 * empty ring starts at 0. NULL (*len 0) when m holds nothing or its bytes
 * are in a pipe or wrap around the ring's end. */
static inline const char *mover_span(const struct mover *m, size_t *len)
{
    const struct mover_ring *r = &m->ring;
    if (m->splice.on || r->len == 0 || (size_t)r->head + r->len > r->size) {
        *len = 0;
        return NULL;
    }
    *len = r->len;
    return r->data + r->head;
}

static inline size_t mover_held(const struct mover *m)
{
    return m->ops->held(m);
}

static inline bool mover_full(const struct mover *m)
{
    return m->ops->full(m);
}

#endif
