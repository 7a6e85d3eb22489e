/* log: levelled, timestamped lines on stderr through one bounded buffer
 * that is written without blocking (log.h says how). A line is formatted
 * whole, then either fits in the buffer or is dropped whole; bytes leave
 * the buffer only from its head, so a partial write never cuts or mixes
 * lines. Single-threaded like the rest of lb; no signal handler logs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lb/log.h"

_Static_assert(LOG_LINE_MAX <= PIPE_BUF, "a line must fit in one atomic pipe write");

/* Dropped-lines notices that may wait in the buffer at once. */
#define LOG_NOTICES_MAX 16

enum log_sink {
    LOG_SINK_NONE,  /* fd 2 is not open: every line is dropped */
    LOG_SINK_WRITE, /* write(): a file, or a non-blocking pipe, FIFO or tty */
    LOG_SINK_SEND,  /* send(MSG_DONTWAIT | MSG_NOSIGNAL): a socket */
};

/* A notice still in the buffer: where it ends (counted like taken) and the
 * number it reports, owed again if stderr fails before it is written. */
struct log_notice {
    uint64_t end;
    uint64_t count;
};

static enum lb_log_level log_level = LB_LOG_INFO;

/* Static, so a stalled stderr cannot make it fail; its pages cost memory
 * only once lines reach them. */
static char log_buf[LOG_BUFFER_MAX];

static struct {
    bool ready; /* log_init() ran */
    enum log_sink sink;
    int fd;         /* what lines are written to: 2, or our reopen of it */
    bool reopened;  /* fd is ours to close */
    bool pipe;      /* fd is a pipe or FIFO: write whole lines, PIPE_BUF at most */
    int fd2_flags;  /* fd 2's flags before we set O_NONBLOCK on it; -1: untouched */
    size_t head;    /* log_buf[head .. head + len) waits to be written */
    size_t len;     /* 0 whenever head is 0 and nothing waits */
    uint64_t taken; /* bytes that ever left the buffer (written or lost) */
    struct log_notice notices[LOG_NOTICES_MAX]; /* ring, oldest first */
    size_t notice_first, nnotices;
    uint64_t dropped;    /* lines dropped since log_init() */
    uint64_t unreported; /* of those, lines no notice in the buffer reports yet */
    struct event *ev;    /* EV_WRITE on fd, between log_attach and log_detach */
    bool armed;          /* ev is pending: the buffer holds bytes */
    bool flushing;       /* in log_flush() */
} lg = {.fd = -1, .fd2_flags = -1};

void log_set_level(enum lb_log_level level)
{
    log_level = level;
}

bool log_enabled(enum lb_log_level level)
{
    return level <= log_level;
}

/* "TIMESTAMP level: text\n" into line (LOG_LINE_MAX bytes, not
 * NUL-terminated); returns its length, newline included. */
static size_t log_vformat(char *line, enum lb_log_level level, const char *fmt, va_list ap)
{
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, LOG_LINE_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, LOG_LINE_MAX - n, ".%03ldZ %s: ", (long)(tv.tv_usec / 1000),
                          config_log_level_name(level));
    int m = vsnprintf(line + n, LOG_LINE_MAX - n, fmt, ap);
    if (m > 0)
        n += (size_t)m;
    if (n > LOG_LINE_MAX - 1)
        n = LOG_LINE_MAX - 1; /* cut: keep the newline */
    line[n++] = '\n';
    return n;
}

static size_t __attribute__((format(printf, 3, 4)))
log_format(char *line, enum lb_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_vformat(line, level, fmt, ap);
    va_end(ap);
    return n;
}

/* libevent's own warnings (evhttp, epoll) take the same path instead of
 * its blocking fprintf to stderr. */
static void log_libevent(int severity, const char *msg)
{
    enum lb_log_level level = severity >= EVENT_LOG_ERR    ? LB_LOG_ERROR
                              : severity == EVENT_LOG_WARN ? LB_LOG_WARN
                              : severity == EVENT_LOG_MSG  ? LB_LOG_INFO
                                                           : LB_LOG_DEBUG;
    log_msg(level, "libevent: %s", msg);
}

/* A pipe, FIFO or terminal: a file description of our own with O_NONBLOCK,
 * so the one fd 2 shares with the parent shell keeps blocking. */
static void log_open_nonblocking(void)
{
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        lg.fd = fd;
        lg.reopened = true;
        return;
    }
    int flags = fcntl(STDERR_FILENO, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK) &&
        fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK) == 0)
        lg.fd2_flags = flags;
}

void log_init(void)
{
    struct stat st;

    if (lg.ready)
        return;
    lg.ready = true;
    lg.fd = STDERR_FILENO;
    event_set_log_callback(log_libevent);
    if (fstat(STDERR_FILENO, &st) < 0) {
        lg.sink = LOG_SINK_NONE;
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        lg.sink = LOG_SINK_SEND;
        return;
    }
    lg.sink = LOG_SINK_WRITE;
    lg.pipe = S_ISFIFO(st.st_mode);
    if (lg.pipe || isatty(STDERR_FILENO))
        log_open_nonblocking();
}

uint64_t log_lines_dropped(void)
{
    return lg.dropped;
}

/* Appends n bytes; the caller checked that they fit. */
static void log_buf_put(const char *p, size_t n)
{
    if (lg.head + lg.len + n > LOG_BUFFER_MAX) {
        memmove(log_buf, log_buf + lg.head, lg.len);
        lg.head = 0;
    }
    memcpy(log_buf + lg.head + lg.len, p, n);
    lg.len += n;
}

/* n bytes at the head are gone (written, or lost); so are the notices
 * among them. */
static void log_buf_take(size_t n)
{
    lg.head += n;
    lg.len -= n;
    lg.taken += n;
    if (lg.len == 0)
        lg.head = 0;
    while (lg.nnotices > 0 && lg.notices[lg.notice_first].end <= lg.taken) {
        lg.notice_first = (lg.notice_first + 1) % LOG_NOTICES_MAX;
        lg.nnotices--;
    }
}

/* The dropped-lines notice for lg.unreported, into line; its length. */
static size_t log_notice_format(char *line)
{
    return log_format(line, LB_LOG_WARN, "%llu log lines dropped: stderr was not draining",
                      (unsigned long long)lg.unreported);
}

/* Appends a notice formatted for lg.unreported (the caller checked that it
 * fits and that the ring has room); those lines are reported now. */
static void log_notice_put(const char *line, size_t n)
{
    log_buf_put(line, n);
    size_t slot = (lg.notice_first + lg.nnotices) % LOG_NOTICES_MAX;
    lg.notices[slot] = (struct log_notice){lg.taken + lg.len, lg.unreported};
    lg.nnotices++;
    lg.unreported = 0;
}

/* Queues the notice that is owed, if any, when it fits. */
static void log_notice_owed(void)
{
    char line[LOG_LINE_MAX];

    if (lg.unreported == 0 || lg.nnotices == LOG_NOTICES_MAX)
        return;
    size_t n = log_notice_format(line);
    if (lg.len + n <= LOG_BUFFER_MAX)
        log_notice_put(line, n);
}

/* stderr failed (EPIPE, EIO...): what the buffer holds is lost. Each line
 * in it counts as dropped, one whose head was written too; a notice does
 * not, but the count it carried is owed again. */
static void log_buf_discard(void)
{
    uint64_t lines = 0;
    const char *p = log_buf + lg.head, *end = p + lg.len;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    for (size_t i = 0; i < lg.nnotices; i++)
        lg.unreported += lg.notices[(lg.notice_first + i) % LOG_NOTICES_MAX].count;
    lines -= lg.nnotices;
    lg.dropped += lines;
    lg.unreported += lines;
    log_buf_take(lg.len); /* the notices go with it */
}

/* Writes a piece of the n bytes at p. On a pipe the piece is whole lines
 * of at most PIPE_BUF bytes, which the kernel writes in one go or not at
 * all: lb's lines never interleave with those of other processes that
 * share the pipe (a container's stdout, a `2>&1 |` of several programs).
 * The head is always at the start of a line there, and a line is at most
 * LOG_LINE_MAX <= PIPE_BUF bytes, so a piece always holds one. */
static ssize_t log_write_some(const char *p, size_t n)
{
    ssize_t w;

    if (lg.pipe && n > PIPE_BUF) {
        const char *nl = memrchr(p, '\n', PIPE_BUF);
        n = nl ? (size_t)(nl + 1 - p) : PIPE_BUF;
    }
    do {
        if (lg.sink == LOG_SINK_SEND)
            w = send(lg.fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        else
            w = write(lg.fd, p, n);
    } while (w < 0 && errno == EINTR);
    return w;
}

/* The EV_WRITE event is pending exactly while the buffer holds bytes. When
 * it cannot be added (not attached, or an fd epoll refuses), the next line
 * tries the write instead. */
static void log_arm(void)
{
    bool want = lg.ev && lg.len > 0;

    if (want == lg.armed)
        return;
    if (want) {
        lg.armed = event_add(lg.ev, NULL) == 0;
    } else {
        event_del(lg.ev);
        lg.armed = false;
    }
}

/* Writes from the head of the buffer until it is empty or stderr would
 * block, first queueing an owed notice when it fits. Never blocks. */
static void log_flush(void)
{
    if (lg.flushing)
        return; /* a line libevent logs from inside event_add() */
    lg.flushing = true;
    for (;;) {
        log_notice_owed();
        if (lg.len == 0)
            break;
        if (lg.sink == LOG_SINK_NONE) {
            log_buf_discard();
            break;
        }
        ssize_t w = log_write_some(log_buf + lg.head, lg.len);
        if (w > 0) {
            log_buf_take((size_t)w);
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        log_buf_discard();
        break;
    }
    log_arm();
    lg.flushing = false;
}

static void log_on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush();
}

void log_attach(struct event_base *base)
{
    log_init();
    log_detach();
    if (lg.sink != LOG_SINK_NONE)
        lg.ev = event_new(base, lg.fd, EV_WRITE | EV_PERSIST, log_on_writable, NULL);
    log_flush();
}

void log_detach(void)
{
    if (lg.ev)
        event_free(lg.ev);
    lg.ev = NULL;
    lg.armed = false;
}

static long log_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void log_end(int timeout_ms)
{
    if (!lg.ready)
        return;
    log_detach();
    long deadline = log_now_ms() + timeout_ms;
    for (;;) {
        log_flush();
        long left = deadline - log_now_ms();
        if (lg.len == 0 || left <= 0)
            break;
        struct pollfd p = {.fd = lg.fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            break;
    }
    if (lg.reopened)
        close(lg.fd);
    if (lg.fd2_flags >= 0)
        fcntl(STDERR_FILENO, F_SETFL, lg.fd2_flags);
    event_set_log_callback(NULL);
    memset(&lg, 0, sizeof(lg));
    lg.fd = -1;
    lg.fd2_flags = -1;
}

/* Accepts a line into the buffer, after the notice that is owed, if any:
 * a line never goes out before the news of the lines dropped before it. */
static bool log_accept(const char *line, size_t n)
{
    char notice[LOG_LINE_MAX];
    size_t nn = 0;

    if (lg.unreported > 0) {
        if (lg.nnotices == LOG_NOTICES_MAX)
            return false;
        nn = log_notice_format(notice);
    }
    if (lg.len + nn + n > LOG_BUFFER_MAX)
        return false;
    if (nn > 0)
        log_notice_put(notice, nn);
    log_buf_put(line, n);
    return true;
}

void log_msg(enum lb_log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_vformat(line, level, fmt, ap);
    va_end(ap);

    log_init();
    /* With the event pending the loop writes once stderr takes bytes; else
     * try now, so the line finds as much room as there can be. */
    if (!lg.armed)
        log_flush();
    if (!log_accept(line, n)) {
        lg.dropped++;
        lg.unreported++;
        return;
    }
    if (!lg.armed)
        log_flush();
}
