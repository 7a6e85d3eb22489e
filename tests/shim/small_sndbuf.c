/* small_sndbuf: an LD_PRELOAD shim for the tests. Every socket the process
 * accepts gets a 4 KiB send buffer, so that a client that reads slowly
 * fills lb's side within a few kilobytes, as a slow client far away does:
 * what lb writes to it then waits in lb (tests/integration/test_http.c). */
#include <dlfcn.h>
#include <sys/socket.h>

static void shrink(int fd)
{
    int size = 4096;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int c = real(fd, addr, len, flags);
    shrink(c);
    return c;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return accept4(fd, addr, len, 0);
}
