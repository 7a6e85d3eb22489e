/* harness/server: harness_server forks a server process (tracked with the
 * other children) that accepts and forks one process per connection to run
 * the test's function (the server leads a process group, which teardown
 * kills whole); the ready-made functions (echo, name, hold, http);
 * and harness_listen_held's never-accepting sockets, closed at teardown. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness/internal.h"

#define MAX_HELD 16
#define HTTP_HEAD_MAX (16 * 1024)

static int held[MAX_HELD]; /* harness_listen_held's sockets, closed at teardown */
static int nheld;

/* --- the server process --- */

/* Closes every descriptor from 3 up but keep. */
static void close_all_but(int keep)
{
    if (keep > 3)
        close_range(3, (unsigned)keep - 1, 0);
    close_range((unsigned)keep + 1, ~0U, 0);
}

/* Runs in the connection process: never returns. */
static void serve_one(int listen_fd, int fd, pid_t server, harness_conn_fn fn, void *arg)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != server)
        _exit(0);
    close(listen_fd);
    signal(SIGCHLD, SIG_DFL);
    fn(fd, arg);
    close(fd);
    _exit(0);
}

/* Runs in the server process: tells the test (on status) 0 once it
 * listens, else the errno of what failed; then accepts forever. Only
 * _exit: the test process's atexit handlers and Check are not ours. */
static void serve(const struct sockaddr_storage *ss, socklen_t len, harness_conn_fn fn, void *arg,
                  pid_t parent, int status)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    setpgid(0, 0); /* teardown kills the group: the server and its connections */
    /* A copy of a client socket of the test would keep that connection
     * open after the test closed it. */
    close_all_but(status);
    signal(SIGCHLD, SIG_IGN); /* connection processes are reaped for us */
    signal(SIGPIPE, SIG_IGN);
    int err = 0;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (ss->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 128) < 0)
        err = errno ? errno : EINVAL;
    if (write(status, &err, sizeof(err)) != sizeof(err) || err)
        _exit(1);
    close(status);
    pid_t self = getpid();
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                harness_sleep_ms(10);
            continue;
        }
        pid_t kid = fork();
        if (kid == 0)
            serve_one(fd, c, self, fn, arg);
        close(c); /* the connection process has it, or (fork failed) it is dropped */
    }
}

pid_t harness_server(const char *host, int port, harness_conn_fn fn, void *arg)
{
    struct sockaddr_storage ss;
    socklen_t len;
    const char *where = harness_hostport(host, port);
    ck_assert_msg(harness_fill_addr(host, port, &ss, &len) == 0,
                  "harness_server: %s is not an IPv4 or IPv6 address", host);
    int status[2];
    ck_assert_msg(pipe2(status, O_CLOEXEC) == 0, "harness: pipe: %s", strerror(errno));
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "harness: fork: %s", strerror(errno));
    if (pid == 0)
        serve(&ss, len, fn, arg, parent, status[1]);
    setpgid(pid, pid); /* as the child does: whichever runs first */
    close(status[1]);
    harness_child_track(pid, true);

    int err = -1; /* -1: no word within the wait; -2: died without one */
    if (harness_wait_fd(status[0], POLLIN, harness_now_ms() + HARNESS_WAIT_MS)) {
        int word;
        ssize_t n;
        while ((n = read(status[0], &word, sizeof(word))) < 0 && errno == EINTR)
            ;
        err = n == (ssize_t)sizeof(word) ? word : -2;
    }
    close(status[0]);
    if (err != 0) {
        harness_wait_exit(pid, 0); /* SIGKILL and reap */
        const char *why = err > 0     ? strerror(err)
                          : err == -1 ? harness_strf("not listening after %d ms", HARNESS_WAIT_MS)
                                      : "the server process died before listening";
        ck_abort_msg("harness_server on %s: %s", where, why);
    }
    return pid;
}

/* --- ready-made connection functions --- */

bool harness_write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads and discards until EOF or an error. */
static void drain(int fd)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

void harness_fn_echo(int fd, void *arg)
{
    (void)arg;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (!harness_write_full(fd, buf, (size_t)n))
            return;
    }
    shutdown(fd, SHUT_WR);
}

void harness_fn_name(int fd, void *arg)
{
    const char *name = arg;
    if (harness_write_full(fd, name, strlen(name)) && harness_write_full(fd, "\n", 1))
        shutdown(fd, SHUT_WR);
    drain(fd);
}

void harness_fn_hold(int fd, void *arg)
{
    (void)arg;
    drain(fd);
}

/* The value of header name in the head (case-insensitive), copied into
 * out (cap bytes, trimmed); false when absent. */
bool harness_head_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, nlen) != 0 || p[nlen] != ':')
            continue;
        const char *v = p + nlen + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strcspn(v, "\r\n");
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        snprintf(out, cap, "%.*s", (int)vlen, v);
        return true;
    }
    return false;
}

/* Whether the connection stays open after answering this head. */
bool harness_head_keep_alive(const char *head)
{
    size_t line = strcspn(head, "\r\n");
    bool keep = !(line >= 8 && strncmp(head + line - 8, "HTTP/1.0", 8) == 0);
    char conn[128];
    if (harness_head_value(head, "Connection", conn, sizeof(conn))) {
        if (strcasestr(conn, "close"))
            keep = false;
        else if (strcasestr(conn, "keep-alive"))
            keep = true;
    }
    return keep;
}

void harness_fn_http(int fd, void *arg)
{
    const char *body = arg ? arg : "ok\n";
    char buf[HTTP_HEAD_MAX + 1];
    size_t len = 0;
    for (;;) {
        char *end;
        while (buf[len] = '\0', (end = strstr(buf, "\r\n\r\n")) == NULL) {
            if (len == HTTP_HEAD_MAX) {
                static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                          "Connection: close\r\n\r\n";
                harness_write_full(fd, bad, sizeof(bad) - 1);
                shutdown(fd, SHUT_WR);
                return;
            }
            ssize_t n = recv(fd, buf + len, HTTP_HEAD_MAX - len, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return; /* EOF (or an error) between requests: done */
            len += (size_t)n;
        }
        end[2] = '\0'; /* the head, with its last line's CRLF */
        size_t used = (size_t)(end + 4 - buf);
        bool keep = harness_head_keep_alive(buf);
        bool head_only = strncmp(buf, "HEAD ", 5) == 0;
        char value[32];
        unsigned long long skip = harness_head_value(buf, "Content-Length", value, sizeof(value))
                                      ? strtoull(value, NULL, 10)
                                      : 0;
        /* Drop the head, then as much of the body as is here. */
        size_t here = len - used < skip ? len - used : (size_t)skip;
        memmove(buf, buf + used + here, len - used - here);
        len -= used + here;
        skip -= here;
        while (skip > 0) {
            char scratch[4096];
            ssize_t n = recv(fd, scratch, skip < sizeof(scratch) ? skip : sizeof(scratch), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return;
            skip -= (unsigned long long)n;
        }
        char answer[256];
        int alen = snprintf(answer, sizeof(answer),
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %zu\r\n%s\r\n",
                            strlen(body), keep ? "" : "Connection: close\r\n");
        if (!harness_write_full(fd, answer, (size_t)alen) ||
            (!head_only && !harness_write_full(fd, body, strlen(body))))
            return;
        if (!keep) {
            shutdown(fd, SHUT_WR);
            drain(fd);
            return;
        }
    }
}

/* --- a held accept queue --- */

int harness_listen_held(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_msg(harness_fill_addr(host, port, &ss, &len) == 0,
                  "harness_listen_held: %s is not an IPv4 or IPv6 address", host);
    ck_assert_msg(nheld < MAX_HELD, "harness: too many held sockets");
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "harness: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 0) < 0) {
        int err = errno;
        close(fd);
        ck_abort_msg("harness_listen_held on %s: %s", harness_hostport(host, port), strerror(err));
    }
    held[nheld++] = fd;
    return fd;
}

void harness_held_close(void)
{
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    nheld = 0;
}
