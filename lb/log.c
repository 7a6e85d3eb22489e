/* log: levelled, timestamped lines through bounded buffers that are
 * written without blocking (log.h says how). There are two streams: stderr,
 * and the access log's pipe once lb/access_log.c opened one. A line is
 * formatted whole (text or JSON), then either fits in its stream's buffer
 * or is dropped whole; bytes leave a buffer only from its head, so a
 * partial write never cuts or mixes lines. Single-threaded like the rest of
 * lb; no signal handler logs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
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

/* Dropped-lines notices that may wait in a buffer at once. */
#define LOG_NOTICES_MAX 16
/* "2026-11-27T23:40:01.123Z": the time every line starts with. */
#define LOG_STAMP_SIZE 25

enum log_sink {
    LOG_SINK_NONE,  /* the fd is not open: every line is dropped */
    LOG_SINK_WRITE, /* write(): a file, or a non-blocking pipe, FIFO or tty */
    LOG_SINK_SEND,  /* send(MSG_DONTWAIT | MSG_NOSIGNAL): a socket */
};

/* A notice still in the buffer: where it ends (counted like taken) and the
 * number it reports, owed again if the stream fails before it is written. */
struct log_notice {
    uint64_t end;
    uint64_t count;
};

/* One place lines go: its buffer and the descriptor it drains into. */
struct log_stream {
    const char *notice; /* the tail of its dropped-lines notice */
    char *buf;          /* LOG_BUFFER_MAX bytes */
    enum log_sink sink;
    int fd;         /* what lines are written to; -1: not open */
    bool reopened;  /* fd is ours to close */
    bool pipe;      /* fd is a pipe or FIFO: write whole lines, PIPE_BUF at most */
    int fd2_flags;  /* stderr: fd 2's flags before we set O_NONBLOCK on it; -1: untouched */
    size_t head;    /* buf[head .. head + len) waits to be written */
    size_t len;     /* 0 whenever head is 0 and nothing waits */
    uint64_t taken; /* bytes that ever left the buffer (written or lost) */
    struct log_notice notices[LOG_NOTICES_MAX]; /* ring, oldest first */
    size_t notice_first, nnotices;
    uint64_t dropped;    /* lines dropped since it opened */
    uint64_t unreported; /* of those, lines no notice in the buffer reports yet */
    struct event *ev;    /* EV_WRITE on fd, between log_attach and log_detach */
    bool armed;          /* ev is pending: the buffer holds bytes */
    bool flushing;       /* in log_flush() */
    /* The lines of one loop turn go out in one write: soon is made active
     * (no system call) by the turn's first line and flushes once the
     * turn's callbacks ran. NULL while not attached: lines go out at once. */
    struct event *soon;
    bool soon_pending;
};

static enum lb_log_level log_level = LB_LOG_INFO;
static enum lb_log_format log_format_kind = LB_LOG_TEXT;

/* Static, so a stalled reader cannot make them fail; their pages cost
 * memory only once lines reach them. */
static char err_buf[LOG_BUFFER_MAX], acc_buf[LOG_BUFFER_MAX];

#define STREAM_INIT(b, n)                                                                          \
    {                                                                                              \
        .notice = (n), .buf = (b), .fd = -1, .fd2_flags = -1                                       \
    }
static struct log_stream err = STREAM_INIT(err_buf, "stderr was not draining");
static struct log_stream acc = STREAM_INIT(acc_buf, "the access log was not draining");
static bool log_ready;              /* log_init() ran */
static struct event_base *log_base; /* between log_attach and log_detach */

void log_set_level(enum lb_log_level level)
{
    log_level = level;
}

void log_set_format(enum lb_log_format format)
{
    log_format_kind = format;
}

bool log_enabled(enum lb_log_level level)
{
    return level <= log_level;
}

/* --- formatting --- */

/* The current time, "2026-11-27T23:40:01.123Z", into stamp. */
static void log_stamp(char stamp[LOG_STAMP_SIZE])
{
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(stamp, LOG_STAMP_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, LOG_STAMP_SIZE - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

/* A line being built in LOG_LINE_MAX bytes. cap leaves room for what ends
 * it ("}" and the newline), so a line cut short still ends well. */
struct log_line {
    char *p;
    size_t n, cap;
    bool full; /* something did not fit: nothing more is added */
};

static void line_raw(struct log_line *l, const char *s, size_t len)
{
    if (l->full || l->n + len > l->cap) {
        l->full = true;
        return;
    }
    memcpy(l->p + l->n, s, len);
    l->n += len;
}

static void line_str(struct log_line *l, const char *s)
{
    line_raw(l, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at c (2 to 4 bytes: no overlong
 * form, no surrogate, nothing past U+10FFFF), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *c)
{
    unsigned char b = c[0], lo = 0x80, hi = 0xbf;
    size_t n;
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        lo = b == 0xe0 ? 0xa0 : 0x80;
        hi = b == 0xed ? 0x9f : 0xbf;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        lo = b == 0xf0 ? 0x90 : 0x80;
        hi = b == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (c[1] < lo || c[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (c[i] < 0x80 || c[i] > 0xbf)
            return 0;
    return n;
}

/* A JSON string: at most max bytes of s (then "..."), between quotes,
 * escaped so that any input gives valid JSON: valid UTF-8 as it is, any
 * other byte over 0x7e and every control byte \u00XX. Cut when the line
 * is full; its closing quote always fits. */
static void line_json_str(struct log_line *l, const char *s, size_t max)
{
    static const char hex[] = "0123456789abcdef";

    if (l->full || l->n + 2 > l->cap) {
        l->full = true;
        return;
    }
    l->p[l->n++] = '"';
    l->cap--; /* the closing quote's room */
    const unsigned char *c = (const unsigned char *)s, *end = c;
    while (*end && (size_t)(end - c) < max)
        end++;
    for (; c < end; c++) {
        char esc[6];
        size_t k = 0, u = *c > 0x7e ? utf8_seq(c) : 0;
        if (u > 0 && c + u <= end) {
            line_raw(l, (const char *)c, u);
            c += u - 1;
            if (l->full)
                break;
            continue;
        }
        if (*c == '"' || *c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)*c;
        } else if (*c == '\n' || *c == '\r' || *c == '\t') {
            esc[k++] = '\\';
            esc[k++] = *c == '\n' ? 'n' : *c == '\r' ? 'r' : 't';
        } else if (*c < 0x20 || *c > 0x7e) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*c >> 4];
            esc[5] = hex[*c & 15];
            k = 6;
        } else {
            esc[k++] = (char)*c;
        }
        line_raw(l, esc, k);
        if (l->full)
            break;
    }
    if (*end && !l->full)
        line_raw(l, "...", 3);
    l->cap++;
    l->p[l->n++] = '"';
}

/* The start of every line: "TIME level: " or {"time":…,"level":…. */
static void line_start(struct log_line *l, char *buf, enum lb_log_level level)
{
    char stamp[LOG_STAMP_SIZE];

    l->p = buf;
    l->n = 0;
    l->cap = LOG_LINE_MAX - (log_format_kind == LB_LOG_JSON ? 2 : 1);
    l->full = false;
    log_stamp(stamp);
    if (log_format_kind == LB_LOG_JSON) {
        line_str(l, "{\"time\":\"");
        line_str(l, stamp);
        line_str(l, "\",\"level\":\"");
        line_str(l, config_log_level_name(level));
        line_str(l, "\"");
    } else {
        line_str(l, stamp);
        line_str(l, " ");
        line_str(l, config_log_level_name(level));
        line_str(l, ": ");
    }
}

/* Ends the line ("}" in JSON, then the newline); its length. */
static size_t line_end(struct log_line *l)
{
    if (log_format_kind == LB_LOG_JSON)
        l->p[l->n++] = '}';
    l->p[l->n++] = '\n';
    return l->n;
}

/* A free-text line: "TIME level: text", {"time","level","msg"} in JSON.
 * Its length, the newline included. */
static size_t log_vformat(char *buf, enum lb_log_level level, const char *fmt, va_list ap)
{
    struct log_line l;
    char text[LOG_LINE_MAX];

    line_start(&l, buf, level);
    int m = vsnprintf(text, sizeof(text), fmt, ap);
    if (m < 0)
        text[0] = '\0';
    if (log_format_kind == LB_LOG_JSON) {
        line_str(&l, ",\"msg\":");
        line_json_str(&l, text, SIZE_MAX);
    } else {
        size_t len = strlen(text);
        if (len > l.cap - l.n)
            len = l.cap - l.n; /* cut: the newline still fits */
        line_raw(&l, text, len);
    }
    return line_end(&l);
}

size_t log_format_line(char *buf, enum lb_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_vformat(buf, level, fmt, ap);
    va_end(ap);
    return n;
}

/* An event line: "TIME level: EVENT k=v k=\"v\"", or in JSON
 * {"time","level","event", k: v...} with numbers as numbers. */
static size_t log_event_format(char *buf, enum lb_log_level level, const char *event,
                               const struct log_field *f, size_t n)
{
    struct log_line l;
    char num[24], text[LOG_LINE_MAX];

    line_start(&l, buf, level);
    if (log_format_kind == LB_LOG_JSON) {
        line_str(&l, ",\"event\":");
        line_json_str(&l, event, SIZE_MAX);
    } else {
        line_str(&l, event);
    }
    for (size_t i = 0; i < n && !l.full; i++) {
        size_t start = l.n;
        bool is_num = f[i].kind == LOG_FIELD_NUM, is_text = f[i].kind == LOG_FIELD_TEXT;
        if (is_num)
            snprintf(num, sizeof(num), "%llu", f[i].num);
        const char *v = is_num ? num : f[i].str ? f[i].str : "-";
        size_t max = is_text && f[i].str ? (size_t)f[i].num : SIZE_MAX;
        if (log_format_kind == LB_LOG_JSON) {
            line_str(&l, ",\"");
            line_str(&l, f[i].key);
            line_str(&l, "\":");
            if (is_num)
                line_str(&l, v);
            else
                line_json_str(&l, v, max);
        } else {
            bool q = f[i].kind == LOG_FIELD_QUOTED || is_text;
            line_str(&l, " ");
            line_str(&l, f[i].key);
            line_str(&l, q ? "=\"" : "=");
            if (is_text && f[i].str)
                line_str(&l, config_text_escape(text, sizeof(text), v, max));
            else
                line_str(&l, v);
            if (q)
                line_str(&l, "\"");
        }
        if (l.full)
            l.n = start; /* what did not fit goes whole: the line stays valid */
    }
    return line_end(&l);
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

/* --- opening stderr --- */

/* A pipe, FIFO or terminal: a file description of our own with O_NONBLOCK,
 * so the one fd 2 shares with the parent shell keeps blocking. */
static void log_open_nonblocking(void)
{
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        err.fd = fd;
        err.reopened = true;
        return;
    }
    int flags = fcntl(STDERR_FILENO, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK) &&
        fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK) == 0)
        err.fd2_flags = flags;
}

void log_init(void)
{
    struct stat st;

    if (log_ready)
        return;
    log_ready = true;
    err.fd = STDERR_FILENO;
    event_set_log_callback(log_libevent);
    if (fstat(STDERR_FILENO, &st) < 0) {
        err.sink = LOG_SINK_NONE;
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        err.sink = LOG_SINK_SEND;
        return;
    }
    err.sink = LOG_SINK_WRITE;
    err.pipe = S_ISFIFO(st.st_mode);
    if (err.pipe || isatty(STDERR_FILENO))
        log_open_nonblocking();
}

uint64_t log_lines_dropped(void)
{
    return err.dropped;
}

uint64_t log_access_lines_dropped(void)
{
    return acc.dropped;
}

/* --- a stream's buffer --- */

/* Appends n bytes; the caller checked that they fit. */
static void buf_put(struct log_stream *st, const char *p, size_t n)
{
    if (st->head + st->len + n > LOG_BUFFER_MAX) {
        memmove(st->buf, st->buf + st->head, st->len);
        st->head = 0;
    }
    memcpy(st->buf + st->head + st->len, p, n);
    st->len += n;
}

/* n bytes at the head are gone (written, or lost); so are the notices
 * among them. */
static void buf_take(struct log_stream *st, size_t n)
{
    st->head += n;
    st->len -= n;
    st->taken += n;
    if (st->len == 0)
        st->head = 0;
    while (st->nnotices > 0 && st->notices[st->notice_first].end <= st->taken) {
        st->notice_first = (st->notice_first + 1) % LOG_NOTICES_MAX;
        st->nnotices--;
    }
}

/* The dropped-lines notice for st->unreported, into line; its length. */
static size_t notice_format(struct log_stream *st, char *line)
{
    return log_format_line(line, LB_LOG_WARN, "%llu log lines dropped: %s",
                           (unsigned long long)st->unreported, st->notice);
}

/* Appends a notice formatted for st->unreported (the caller checked that
 * it fits and that the ring has room); those lines are reported now. */
static void notice_put(struct log_stream *st, const char *line, size_t n)
{
    buf_put(st, line, n);
    size_t slot = (st->notice_first + st->nnotices) % LOG_NOTICES_MAX;
    st->notices[slot] = (struct log_notice){st->taken + st->len, st->unreported};
    st->nnotices++;
    st->unreported = 0;
}

/* Queues the notice that is owed, if any, when it fits. */
static void notice_owed(struct log_stream *st)
{
    char line[LOG_LINE_MAX];

    if (st->unreported == 0 || st->nnotices == LOG_NOTICES_MAX)
        return;
    size_t n = notice_format(st, line);
    if (st->len + n <= LOG_BUFFER_MAX)
        notice_put(st, line, n);
}

/* The stream failed (EPIPE, EIO...): what the buffer holds is lost. Each
 * line in it counts as dropped, one whose head was written too; a notice
 * does not, but the count it carried is owed again. */
static void buf_discard(struct log_stream *st)
{
    uint64_t lines = 0;
    const char *p = st->buf + st->head, *end = p + st->len;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    for (size_t i = 0; i < st->nnotices; i++)
        st->unreported += st->notices[(st->notice_first + i) % LOG_NOTICES_MAX].count;
    lines -= st->nnotices;
    st->dropped += lines;
    st->unreported += lines;
    buf_take(st, st->len); /* the notices go with it */
}

/* --- writing --- */

/* Writes a piece of the n bytes at p. On a pipe the piece is whole lines
 * of at most PIPE_BUF bytes, which the kernel writes in one go or not at
 * all: lb's lines never interleave with those of other processes that
 * share the pipe (a container's stdout, a `2>&1 |` of several programs).
 * The head is always at the start of a line there, and a line is at most
 * LOG_LINE_MAX <= PIPE_BUF bytes, so a piece always holds one. */
static ssize_t write_some(struct log_stream *st, const char *p, size_t n)
{
    ssize_t w;

    if (st->pipe && n > PIPE_BUF) {
        const char *nl = memrchr(p, '\n', PIPE_BUF);
        n = nl ? (size_t)(nl + 1 - p) : PIPE_BUF;
    }
    do {
        if (st->sink == LOG_SINK_SEND)
            w = send(st->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        else
            w = write(st->fd, p, n);
    } while (w < 0 && errno == EINTR);
    return w;
}

/* The EV_WRITE event is pending exactly while the buffer holds bytes. When
 * it cannot be added (not attached, or an fd epoll refuses), the next line
 * tries the write instead. */
static void stream_arm(struct log_stream *st)
{
    bool want = st->ev && st->len > 0;

    if (want == st->armed)
        return;
    if (want) {
        st->armed = event_add(st->ev, NULL) == 0;
    } else {
        event_del(st->ev);
        st->armed = false;
    }
}

/* Writes from the head of the buffer until it is empty or the fd would
 * block, first queueing an owed notice when it fits. Never blocks. */
static void stream_flush(struct log_stream *st)
{
    if (st->flushing)
        return; /* a line libevent logs from inside event_add() */
    st->flushing = true;
    for (;;) {
        notice_owed(st);
        if (st->len == 0)
            break;
        if (st->sink == LOG_SINK_NONE) {
            buf_discard(st);
            break;
        }
        ssize_t w = write_some(st, st->buf + st->head, st->len);
        if (w > 0) {
            buf_take(st, (size_t)w);
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        buf_discard(st);
        break;
    }
    stream_arm(st);
    st->flushing = false;
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stream_flush(arg);
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct log_stream *st = arg;
    st->soon_pending = false;
    stream_flush(st);
}

static void stream_detach(struct log_stream *st)
{
    if (st->ev)
        event_free(st->ev);
    st->ev = NULL;
    st->armed = false;
    if (st->soon)
        event_free(st->soon);
    st->soon = NULL;
    st->soon_pending = false;
}

static void stream_attach(struct log_stream *st)
{
    stream_detach(st);
    if (log_base && st->sink != LOG_SINK_NONE && st->fd >= 0) {
        st->ev = event_new(log_base, st->fd, EV_WRITE | EV_PERSIST, on_writable, st);
        st->soon = event_new(log_base, -1, 0, on_soon, st);
    }
    stream_flush(st);
}

void log_attach(struct event_base *base)
{
    log_init();
    log_base = base;
    stream_attach(&err);
    if (acc.fd >= 0)
        stream_attach(&acc);
}

void log_detach(void)
{
    stream_detach(&err);
    stream_detach(&acc);
    log_base = NULL;
}

static long log_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes what st buffers, waiting for a slow reader until deadline. */
static void stream_drain(struct log_stream *st, long deadline)
{
    for (;;) {
        stream_flush(st);
        long left = deadline - log_now_ms();
        if (st->len == 0 || left <= 0 || st->fd < 0)
            break;
        struct pollfd p = {.fd = st->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            break;
    }
}

/* What st still holds is lost, counted; its fd is closed when ours. */
static void stream_close(struct log_stream *st)
{
    stream_detach(st);
    if (st->sink != LOG_SINK_NONE && st->len > 0) {
        st->sink = LOG_SINK_NONE;
        buf_discard(st);
    }
    if (st->reopened)
        close(st->fd);
    st->fd = -1;
    st->reopened = false;
}

void log_access_set_fd(int fd)
{
    if (acc.fd >= 0) {
        stream_flush(&acc); /* what the old fd takes at once, it gets */
        if (fd >= 0) {      /* the rest goes to the new one */
            stream_detach(&acc);
            close(acc.fd);
        } else {
            stream_close(&acc);
        }
    }
    if (fd < 0)
        return;
    acc.fd = fd;
    acc.reopened = true;
    acc.sink = LOG_SINK_WRITE;
    acc.pipe = true;
    stream_attach(&acc);
}

void log_end(int timeout_ms)
{
    if (!log_ready)
        return;
    log_detach();
    long deadline = log_now_ms() + timeout_ms;
    if (acc.fd >= 0) {
        stream_drain(&acc, deadline);
        stream_close(&acc);
    }
    stream_drain(&err, deadline);
    if (err.reopened)
        close(err.fd);
    if (err.fd2_flags >= 0)
        fcntl(STDERR_FILENO, F_SETFL, err.fd2_flags);
    event_set_log_callback(NULL);
    err = (struct log_stream)STREAM_INIT(err_buf, "stderr was not draining");
    acc = (struct log_stream)STREAM_INIT(acc_buf, "the access log was not draining");
    log_ready = false;
}

/* Accepts a line into the buffer, after the notice that is owed, if any:
 * a line never goes out before the news of the lines dropped before it. */
static bool stream_accept(struct log_stream *st, const char *line, size_t n)
{
    char notice[LOG_LINE_MAX];
    size_t nn = 0;

    if (st->unreported > 0) {
        if (st->nnotices == LOG_NOTICES_MAX)
            return false;
        nn = notice_format(st, notice);
    }
    if (st->len + nn + n > LOG_BUFFER_MAX)
        return false;
    if (nn > 0)
        notice_put(st, notice, nn);
    buf_put(st, line, n);
    return true;
}

/* A formatted line into st: written at once when the fd takes it, else
 * buffered, else dropped and counted. */
static void stream_put(struct log_stream *st, const char *line, size_t n)
{
    if (st->soon && !st->armed) { /* written at the end of this loop turn */
        if (!stream_accept(st, line, n)) {
            stream_flush(st); /* full: make room now */
            if (!stream_accept(st, line, n)) {
                st->dropped++;
                st->unreported++;
                return;
            }
        }
        if (!st->soon_pending) {
            st->soon_pending = true;
            event_active(st->soon, EV_TIMEOUT, 1);
        }
        return;
    }
    /* With the event pending the loop writes once the fd takes bytes; else
     * try now, so the line finds as much room as there can be. */
    if (!st->armed)
        stream_flush(st);
    if (!stream_accept(st, line, n)) {
        st->dropped++;
        st->unreported++;
        return;
    }
    if (!st->armed)
        stream_flush(st);
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
    stream_put(&err, line, n);
}

void log_access(enum lb_log_level level, const char *event, const struct log_field *f, size_t n)
{
    if (!log_enabled(level))
        return;

    char line[LOG_LINE_MAX];
    size_t len = log_event_format(line, level, event, f, n);
    log_init();
    stream_put(acc.fd >= 0 ? &acc : &err, line, len);
}
