/* bufpool: a free list of equal-sized buffers (see lb/io/bufpool.h). */
#include <stdlib.h>

#include "lb/io/bufpool.h"

void bufpool_init(struct bufpool *p, size_t size, unsigned max_cached)
{
    p->size = size < sizeof(void *) ? sizeof(void *) : size;
    p->max_cached = max_cached;
    p->cached = 0;
    p->free = NULL;
    p->in_use = 0;
}

void *bufpool_get(struct bufpool *p)
{
    void *buf = p->free;
    if (buf) {
        p->free = *(void **)buf;
        p->cached--;
    } else if (!(buf = malloc(p->size))) {
        return NULL;
    }
    p->in_use++;
    return buf;
}

void bufpool_put(struct bufpool *p, void *buf)
{
    p->in_use--;
    if (p->cached >= p->max_cached) {
        free(buf);
        return;
    }
    *(void **)buf = p->free;
    p->free = buf;
    p->cached++;
}

void bufpool_drain(struct bufpool *p)
{
    while (p->free) {
        void *next = *(void **)p->free;
        free(p->free);
        p->free = next;
    }
    p->cached = 0;
}
