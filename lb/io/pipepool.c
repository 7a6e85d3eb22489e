/* pipepool: a bounded set of pipes for splice(2) (see lb/io/pipepool.h). */
#include <fcntl.h>
#include <unistd.h>

#include "lb/io/pipepool.h"

void pipepool_init(struct pipepool *p, unsigned max)
{
    p->max = max;
    p->open = 0;
    p->cached = 0;
}

int pipepool_get(struct pipepool *p, int fds[2])
{
    if (p->cached > 0) {
        p->cached--;
        fds[0] = p->cache[p->cached][0];
        fds[1] = p->cache[p->cached][1];
        return 0;
    }
    if (p->open >= p->max || pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    p->open++;
    return 0;
}

void pipepool_put(struct pipepool *p, int fds[2], int empty)
{
    if (empty && p->cached < PIPEPOOL_CACHED && p->open <= p->max) {
        p->cache[p->cached][0] = fds[0];
        p->cache[p->cached][1] = fds[1];
        p->cached++;
    } else {
        close(fds[0]);
        close(fds[1]);
        p->open--;
    }
    fds[0] = fds[1] = -1;
}

void pipepool_drain(struct pipepool *p)
{
    while (p->cached > 0) {
        p->cached--;
        close(p->cache[p->cached][0]);
        close(p->cache[p->cached][1]);
        p->open--;
    }
}
