/* pipepool: the pipes splice(2) moves bytes through, one per spliced flow,
 * bounded in number (each holds two descriptors, which the runtime counts
 * in its descriptor budget) and kept for reuse when given back empty. */
#ifndef LB_IO_PIPEPOOL_H
#define LB_IO_PIPEPOOL_H

#define PIPEPOOL_CACHED 16 /* empty pipes kept open for reuse */

struct pipepool {
    unsigned max;    /* pipes open at once, at most (0: no splicing) */
    unsigned open;   /* pipes open: in use and cached */
    unsigned cached; /* of which kept empty in cache[] */
    int cache[PIPEPOOL_CACHED][2];
};

void pipepool_init(struct pipepool *p, unsigned max);
/* A pipe (fds[0] read end, fds[1] write end, both non-blocking): 0, or -1
 * when max pipes are open or pipe2() failed. */
int pipepool_get(struct pipepool *p, int fds[2]);
/* Gives back a pipe from pipepool_get; empty is false when bytes may
 * still be in it (then it is closed, never reused). */
void pipepool_put(struct pipepool *p, int fds[2], int empty);
/* Closes the cached pipes. */
void pipepool_drain(struct pipepool *p);

#endif
