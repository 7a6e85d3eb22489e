/* bufpool: the relay's fixed-size buffers, taken when bytes arrive and
 * given back when drained, so an idle session holds no buffer memory. A
 * bounded free list keeps recently used buffers, so a busy relay does not
 * allocate per read; what a burst leaves beyond the bound is freed. */
#ifndef LB_IO_BUFPOOL_H
#define LB_IO_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct bufpool {
    size_t size;         /* bytes per buffer */
    unsigned max_cached; /* free-list bound */
    unsigned cached;     /* buffers on the free list */
    void *free;          /* the free list, linked through each buffer's first bytes */
    uint64_t in_use;     /* buffers handed out and not given back */
};

void bufpool_init(struct bufpool *p, size_t size, unsigned max_cached);
/* A buffer of p->size bytes (contents undefined), or NULL (ENOMEM). */
void *bufpool_get(struct bufpool *p);
/* Gives buf (from bufpool_get) back. */
void bufpool_put(struct bufpool *p, void *buf);
/* Frees the cached buffers (at exit; buffers in use stay theirs). */
void bufpool_drain(struct bufpool *p);

#endif
