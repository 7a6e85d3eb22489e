/* notify: sd_notify's datagrams, by hand (notify.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lb/log.h"
#include "lb/notify.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

void notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(notify_addr.sun_path)) {
        log_warn("NOTIFY_SOCKET \"%.100s\" is not a socket path; systemd is not told lb's state",
                 path);
        unsetenv("NOTIFY_SOCKET");
        return;
    }
    memset(&notify_addr, 0, sizeof(notify_addr));
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, path, n);
    if (path[0] == '@')
        notify_addr.sun_path[0] = '\0'; /* the abstract namespace: no NUL at the end */
    notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (notify_fd < 0)
        log_warn("NOTIFY_SOCKET: cannot make a socket: %s; systemd is not told lb's state",
                 strerror(errno));
    /* Left in the environment: a binary upgrade's new process (lb/upgrade.c)
     * reports to the same socket. */
}

void notify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}

static void notify_send(const char *msg)
{
    static int failed_logged;
    if (notify_fd < 0)
        return;
    ssize_t r;
    do
        r = sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
                   notify_len);
    while (r < 0 && errno == EINTR);
    if (r < 0 && !failed_logged) { /* once: systemd gone, or its queue full */
        failed_logged = 1;
        log_warn("NOTIFY_SOCKET: cannot tell systemd: %s", strerror(errno));
    }
}

/* A STATUS= value on one line: control characters become spaces. */
static void status_line(char *dst, size_t cap, const char *status)
{
    size_t i = 0;
    for (; status && status[i] && i + 1 < cap; i++)
        dst[i] = (unsigned char)status[i] < 0x20 ? ' ' : status[i];
    dst[i] = '\0';
}

void notify_ready(const char *status)
{
    char line[512], msg[600];
    status_line(line, sizeof(line), status);
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", line);
    notify_send(msg);
}

void notify_ready_main(const char *status)
{
    char line[512], msg[640];
    status_line(line, sizeof(line), status);
    snprintf(msg, sizeof(msg), "MAINPID=%ld\nREADY=1\nSTATUS=%s", (long)getpid(), line);
    notify_send(msg);
}

void notify_reloading(void)
{
    char msg[128];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* systemd compares it with its own */
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    notify_send(msg);
}

void notify_stopping(const char *status)
{
    char line[512], msg[600];
    status_line(line, sizeof(line), status);
    snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", line);
    notify_send(msg);
}
