/* mover_ring: a bounded ring buffer between two connections. Reads go into
 * the free room and writes take the held bytes, each as at most two iovecs,
 * so neither ever copies a byte inside lb. An emptied ring restarts at 0 so
 * the next read is one contiguous span. */
#include <errno.h>

#include "lb/io/mover.h"

static int ring_room(const struct mover_ring *r, struct iovec iov[2])
{
    uint32_t tail = (r->head + r->len) % r->size;
    if (r->len == r->size)
        return 0;
    if (tail >= r->head) {
        iov[0] = (struct iovec){r->data + tail, r->size - tail};
        if (r->head == 0)
            return 1;
        iov[1] = (struct iovec){r->data, r->head};
        return 2;
    }
    iov[0] = (struct iovec){r->data + tail, r->head - tail};
    return 1;
}

static int ring_held_iov(const struct mover_ring *r, struct iovec iov[2])
{
    uint32_t first = r->size - r->head;
    if (r->len <= first) {
        iov[0] = (struct iovec){r->data + r->head, r->len};
        return 1;
    }
    iov[0] = (struct iovec){r->data + r->head, first};
    iov[1] = (struct iovec){r->data, r->len - first};
    return 2;
}

/* A pooled ring that holds nothing gives its buffer back. */
static void ring_give_back(struct mover_ring *r)
{
    int saved = errno;
    bufpool_put(r->pool, r->data);
    r->data = NULL;
    r->head = 0;
    errno = saved;
}

static ssize_t ring_fill(struct mover *m, struct conn *src)
{
    struct mover_ring *r = &m->ring;
    if (r->data == NULL && !(r->data = bufpool_get(r->pool))) {
        errno = ENOMEM;
        return -1;
    }
    struct iovec iov[2];
    int n = ring_room(r, iov);
    if (n == 0) { /* never called full; 0 would read as EOF */
        errno = EAGAIN;
        return -1;
    }
    ssize_t got = conn_readv(src, iov, n);
    if (got > 0)
        r->len += (uint32_t)got;
    else if (r->len == 0 && r->pool)
        ring_give_back(r); /* nothing came: an idle flow holds no buffer */
    return got;
}

static ssize_t ring_flush(struct mover *m, struct conn *dst)
{
    struct mover_ring *r = &m->ring;
    ssize_t total = 0;
    while (r->len > 0) {
        struct iovec iov[2];
        ssize_t n = conn_writev(dst, iov, ring_held_iov(r, iov));
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        r->len -= (uint32_t)n;
        r->head = r->len == 0 ? 0 : (r->head + (uint32_t)n) % r->size;
        total += n;
        if (r->len > 0)
            break; /* a short write: dst's socket buffer is full */
    }
    if (r->len == 0 && r->pool && r->data)
        ring_give_back(r);
    return total;
}

static size_t ring_held(const struct mover *m)
{
    return m->ring.len;
}

static bool ring_full(const struct mover *m)
{
    return m->ring.len == m->ring.size;
}

static void ring_release(struct mover *m)
{
    struct mover_ring *r = &m->ring;
    if (r->pool && r->data)
        ring_give_back(r);
    r->head = 0;
    r->len = 0;
}

const struct mover_ops mover_ring_ops = {
    .name = "ring",
    .fill = ring_fill,
    .flush = ring_flush,
    .held = ring_held,
    .full = ring_full,
    .release = ring_release,
};

void mover_ring_init(struct mover *m, char *buf, uint32_t size)
{
    *m = (struct mover){.ops = &mover_ring_ops};
    m->ring = (struct mover_ring){.head = 0, .len = 0, .size = size, .data = buf};
}

void mover_ring_init_pooled(struct mover *m, struct bufpool *pool)
{
    *m = (struct mover){.ops = &mover_ring_ops};
    m->ring = (struct mover_ring){.size = (uint32_t)pool->size, .data = NULL, .pool = pool};
}
