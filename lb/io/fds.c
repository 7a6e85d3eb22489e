/* fds: see lb/io/fds.h. Runs in a child between fork and exec or _exit:
 * no allocation (opendir's is the one exception, on the fallback path of
 * a single-threaded parent). */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lb/io/fds.h"

static bool kept(int fd, const int *keep, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keep[i] == fd)
            return true;
    return false;
}

/* fn(fd) for every open descriptor from 3 up but the kept ones. */
static void fds_walk(const int *keep, size_t n, void (*fn)(int fd))
{
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int self = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end;
            long fd = strtol(e->d_name, &end, 10);
            if (*end || end == e->d_name || fd < 3 || fd == self || kept((int)fd, keep, n))
                continue;
            fn((int)fd);
        }
        closedir(d);
        return;
    }
    struct rlimit rl;
    int max =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20) ? (int)rl.rlim_cur : 1 << 20;
    for (int fd = 3; fd < max; fd++)
        if (!kept(fd, keep, n))
            fn(fd);
}

static void do_close(int fd)
{
    close(fd);
}

static void do_cloexec(int fd)
{
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void fds_close_others(const int *keep, size_t n)
{
    /* close_range over the gaps between the kept ones, in order. */
    int sorted[8];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 8; i++)
        if (keep[i] >= 3)
            sorted[k++] = keep[i];
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    unsigned lo = 3;
    bool ok = true;
    for (size_t i = 0; i < k && ok; i++) {
        if ((unsigned)sorted[i] > lo)
            ok = close_range(lo, (unsigned)sorted[i] - 1, 0) == 0;
        lo = (unsigned)sorted[i] + 1;
    }
    if (ok && close_range(lo, ~0U, 0) == 0)
        return;
    fds_walk(keep, n, do_close);
}

void fds_cloexec_others(int keep)
{
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        fds_walk(&keep, 1, do_cloexec);
    fcntl(keep, F_SETFD, 0);
}
