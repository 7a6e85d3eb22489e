/* harness/net: loopback ports (free ones, listening ones), client sockets
 * with a deadline on every wait (connect, send, receive, EOF, close), the
 * name a name-mode backend answers, and a deterministic byte stream for
 * transfers checked byte by byte. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness/internal.h"

#define MAX_PORTS 256

static int ports[MAX_PORTS]; /* handed out by harness_free_port* */
static int nports;

void harness_ports_reset(void)
{
    nports = 0;
}

/* --- ports --- */

int harness_fill_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof(*s4);
    return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}

static int free_port_on(const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (harness_fill_addr(host, 0, &ss, &len) < 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    close(fd);
    return port;
}

/* Never hands out the same port twice in one test, so two "free" ports
 * asked for in a row cannot collide. */
static int free_port_new(const char *host)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int port = free_port_on(host);
        if (port <= 0)
            return -1;
        bool seen = false;
        for (int i = 0; i < nports && !seen; i++)
            seen = ports[i] == port;
        if (seen)
            continue;
        if (nports < MAX_PORTS)
            ports[nports++] = port;
        return port;
    }
    return -1;
}

int harness_free_port(void)
{
    int port = free_port_new("127.0.0.1");
    ck_assert_msg(port > 0, "harness: no free port on 127.0.0.1");
    return port;
}

int harness_free_port6(void)
{
    return free_port_new("::1");
}

bool harness_have_ipv6(void)
{
    return free_port_on("::1") > 0;
}

const char *harness_hostport(const char *host, int port)
{
    return strchr(host, ':') ? harness_strf("[%s]:%d", host, port)
                             : harness_strf("%s:%d", host, port);
}

const char *harness_lo(int port)
{
    return harness_strf("127.0.0.1:%d", port);
}

int harness_sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    ck_assert_msg(getsockname(fd, (struct sockaddr *)&ss, &len) == 0, "harness: getsockname: %s",
                  strerror(errno));
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

bool harness_wait_port(const char *host, int port, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int fd = harness_connect(host, port, 200);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
}

/* Scans one /proc/net/tcp-style file for a LISTEN (state 0A) socket on
 * port, bound to hexaddr when it is not NULL. Line by line: the file holds
 * every socket of the machine, TIME_WAIT ones included (thousands after a
 * benchmark). */
static bool proc_listening(const char *file, const char *hexaddr, int port)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return false;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        char laddr[40];
        unsigned lport, state;
        if (sscanf(line, " %*d: %39[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", laddr, &lport, &state) !=
            3)
            continue;
        found = (int)lport == port && state == 0x0A &&
                (hexaddr == NULL || strcasecmp(laddr, hexaddr) == 0);
    }
    fclose(f);
    return found;
}

bool harness_port_listening(int port)
{
    return proc_listening("/proc/net/tcp", NULL, port) ||
           proc_listening("/proc/net/tcp6", NULL, port);
}

bool harness_listening_on(const char *hexaddr, int port)
{
    return proc_listening("/proc/net/tcp", hexaddr, port);
}

bool harness_wait_listening(int port, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (!harness_port_listening(port)) {
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
    return true;
}

bool harness_wait_not_listening(int port, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (harness_port_listening(port)) {
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
    return true;
}

/* --- sockets --- */

static long remaining(long deadline)
{
    long left = deadline - harness_now_ms();
    return left > 0 ? left : 0;
}

bool harness_wait_fd(int fd, short events, long deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, (int)remaining(deadline));
        if (r > 0)
            return true;
        if (r == 0 || errno != EINTR)
            return false;
    }
}

int harness_connect_from(const char *src, const char *host, int port, long timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (harness_fill_addr(host, port, &ss, &len) < 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (src) {
        struct sockaddr_storage sa;
        socklen_t salen;
        if (harness_fill_addr(src, 0, &sa, &salen) < 0 ||
            bind(fd, (struct sockaddr *)&sa, salen) < 0)
            goto fail;
    }
    long deadline = harness_now_ms() + timeout_ms;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        if (!harness_wait_fd(fd, POLLOUT, deadline)) {
            errno = ETIMEDOUT;
            goto fail;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err) {
            errno = err;
            goto fail;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int harness_connect(const char *host, int port, long timeout_ms)
{
    return harness_connect_from(NULL, host, port, timeout_ms);
}

bool harness_send_all(int fd, const void *buf, size_t len, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (!harness_wait_fd(fd, POLLOUT, deadline))
            return false;
    }
    return true;
}

ssize_t harness_recv_n(int fd, void *buf, size_t len, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno != EAGAIN && errno != EINTR)
            return got > 0 ? (ssize_t)got : -1;
        if (!harness_wait_fd(fd, POLLIN, deadline))
            break;
    }
    return (ssize_t)got;
}

ssize_t harness_read_eof(int fd, void *buf, size_t cap, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    size_t got = 0;
    char *p = buf;
    for (;;) {
        char scratch[1];
        char *dst = got + 1 < cap ? p + got : scratch;
        size_t room = got + 1 < cap ? cap - 1 - got : 1;
        ssize_t n = recv(fd, dst, room, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0) {
            if (dst == scratch)
                return -1; /* more than cap - 1 bytes */
            got += (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (!harness_wait_fd(fd, POLLIN, deadline))
            return -1;
    }
    if (cap > 0)
        p[got] = '\0';
    return (ssize_t)got;
}

long harness_wait_closed(int fd, long timeout_ms)
{
    long start = harness_now_ms();
    long deadline = start + timeout_ms;
    char scratch[4096];
    for (;;) {
        ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return harness_now_ms() - start;
        if (n > 0)
            continue;
        if (!harness_wait_fd(fd, POLLIN, deadline))
            return -1;
    }
}

bool harness_readable(int fd, long timeout_ms)
{
    return harness_wait_fd(fd, POLLIN, harness_now_ms() + timeout_ms);
}

const char *harness_fetch_name(const char *src, const char *host, int port)
{
    int fd = harness_connect_from(src, host, port, HARNESS_WAIT_MS);
    if (fd < 0)
        return NULL;
    char buf[256];
    ssize_t n = harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS);
    close(fd);
    if (n <= 0)
        return NULL;
    if (buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return harness_strf("%s", buf);
}

const char *harness_fetch_names(int port, int n)
{
    char *out = harness_strf("%s", "");
    for (int i = 0; i < n; i++) {
        const char *name = harness_fetch_name(NULL, "127.0.0.1", port);
        ck_assert_msg(name != NULL, "fetch %d of %d through port %d got no name", i + 1, n, port);
        out = harness_strf("%s%s%s", out, i ? "," : "", name);
    }
    return out;
}

/* --- a deterministic byte stream --- */

static uint64_t stream_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void harness_stream_fill(unsigned char *buf, uint64_t off, size_t n)
{
    uint64_t block = stream_mix(off / 8);
    for (size_t i = 0; i < n; i++) {
        uint64_t pos = off + i;
        if (pos % 8 == 0)
            block = stream_mix(pos / 8);
        buf[i] = (unsigned char)(block >> (8 * (pos % 8)));
    }
}

/* The bytes of the pattern from off go out through fd as far as it takes
 * them; shuts the write side after the last. */
static void stream_send(int fd, struct harness_stream *st)
{
    if (st->out_pos == st->out_len) {
        uint64_t left = st->total - st->sent;
        st->out_len = left < HARNESS_STREAM_CHUNK ? (size_t)left : HARNESS_STREAM_CHUNK;
        st->out_pos = 0;
        harness_stream_fill(st->out, st->sent, st->out_len);
    }
    ssize_t n = send(fd, st->out + st->out_pos, st->out_len - st->out_pos, MSG_NOSIGNAL);
    if (n > 0) {
        st->out_pos += (size_t)n;
        st->sent += (uint64_t)n;
        if (st->sent == st->total)
            ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    } else {
        ck_assert_msg(errno == EAGAIN, "send after %llu bytes: %s", (unsigned long long)st->sent,
                      strerror(errno));
    }
}

/* What came back is checked against the pattern, byte for byte. */
static void stream_recv(int fd, struct harness_stream *st)
{
    ssize_t n = recv(fd, st->in, HARNESS_STREAM_CHUNK, 0);
    ck_assert_msg(n != 0, "EOF after %llu of %llu bytes", (unsigned long long)st->received,
                  (unsigned long long)st->total);
    if (n < 0) {
        ck_assert_msg(errno == EAGAIN, "recv after %llu bytes: %s",
                      (unsigned long long)st->received, strerror(errno));
        return;
    }
    harness_stream_fill(st->want, st->received, (size_t)n);
    if (memcmp(st->in, st->want, (size_t)n) != 0) {
        size_t i = 0;
        while (st->in[i] == st->want[i])
            i++;
        ck_abort_msg("byte %llu differs", (unsigned long long)(st->received + i));
    }
    st->received += (uint64_t)n;
}

void harness_stream_echo(int fd, uint64_t total, long deadline_ms,
                         void (*step)(void *arg, uint64_t received), void *arg)
{
    struct harness_stream st = {.total = total};
    st.out = malloc(HARNESS_STREAM_CHUNK);
    st.in = malloc(HARNESS_STREAM_CHUNK);
    st.want = malloc(HARNESS_STREAM_CHUNK);
    ck_assert(st.out && st.in && st.want);
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    long deadline = harness_now_ms() + deadline_ms;
    while (st.received < total) {
        ck_assert_msg(harness_now_ms() < deadline, "stream stalled: sent %llu received %llu",
                      (unsigned long long)st.sent, (unsigned long long)st.received);
        if (step)
            step(arg, st.received);
        struct pollfd p = {.fd = fd, .events = POLLIN | (st.sent < total ? POLLOUT : 0)};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        if (p.revents & POLLOUT && st.sent < total)
            stream_send(fd, &st);
        if (p.revents & (POLLIN | POLLHUP | POLLERR))
            stream_recv(fd, &st);
    }
    free(st.out);
    free(st.in);
    free(st.want);
    fcntl(fd, F_SETFL, flags);
    char extra[16];
    ck_assert_msg(harness_read_eof(fd, extra, sizeof(extra), HARNESS_WAIT_MS) == 0,
                  "no clean EOF after the stream");
}

int harness_connect_ok(const char *host, int port)
{
    int fd = harness_connect(host, port, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "connect to %s port %d: %s", host, port, strerror(errno));
    return fd;
}

void harness_echo_roundtrip(int fd, const char *msg)
{
    size_t len = strlen(msg);
    char buf[256] = {0};
    ck_assert(len < sizeof(buf));
    ck_assert_msg(harness_send_all(fd, msg, len, HARNESS_WAIT_MS), "send failed");
    ssize_t n = harness_recv_n(fd, buf, len, HARNESS_WAIT_MS);
    ck_assert_msg(n == (ssize_t)len && memcmp(buf, msg, len) == 0, "echo of '%s' came back as '%s'",
                  msg, buf);
}
