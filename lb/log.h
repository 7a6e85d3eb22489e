/* log: one line per event on stderr, "2026-11-27T23:40:01.123Z info: ...",
 * or with "format": "json" one JSON object a line, {"time": ..., "level":
 * ..., "msg": ...}. Access lines (a session's end, an HTTP request) are
 * events with fields, "... info: session end client=... reason=\"...\"" or
 * {"time", "level", "event", "client", ...}, the same fields either way;
 * they go to the access log when lb/access_log.c opened one, else stderr.
 * Logging never blocks the event loop: a line goes whole into a bounded
 * buffer that is written without blocking whenever stderr accepts bytes, so
 * a partial write never cuts a line (lines over LOG_LINE_MAX are cut when
 * formatted). When stderr does not drain and a line
 * does not fit, it is dropped whole and counted, and once output flows
 * again "warn: N log lines dropped: stderr was not draining" comes before
 * the next line. */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <stdint.h>

#include "config/config.h"

struct event_base;

/* Bytes of lines held while stderr does not drain: the most memory a
 * stalled stderr costs. */
#define LOG_BUFFER_MAX (1024 * 1024)
/* A longer line is cut to this many bytes, its newline included. */
#define LOG_LINE_MAX 4096

/* Looks at what fd 2 is and picks how to write to it without blocking: a
 * regular file (or another file that never blocks, like /dev/null) takes
 * plain write()s; a socket (journald) send(MSG_DONTWAIT | MSG_NOSIGNAL); a
 * pipe, FIFO or terminal is opened again through /proc/self/fd/2 with
 * O_NONBLOCK, a file description of lb's own (the one shared with the
 * parent shell keeps its flags), or, when that fails, gets O_NONBLOCK set
 * on fd 2 itself until log_end(). Called once, before the first line;
 * log_msg() calls it when nobody did. */
void log_init(void);
/* From now on buffered bytes are written when the loop reports fd 2
 * writable (an EV_WRITE event, pending only while the buffer holds bytes).
 * Lines logged before are kept and go out then. */
void log_attach(struct event_base *base);
/* Drops the event, before base is freed. Lines logged after it are still
 * written when stderr takes them at once, else kept for log_end(). */
void log_detach(void);
/* At exit: writes what is buffered (and the dropped-lines line, if owed),
 * waiting for a slow reader at most timeout_ms in all, then frees what
 * log_init() took (fd 2 gets its flags back). A later line starts afresh. */
void log_end(int timeout_ms);
/* Lines dropped since log_init(): the buffer was full, or stderr failed
 * (EPIPE...). */
uint64_t log_lines_dropped(void);

/* Lines dropped from the access log's stream since log_init(). */
uint64_t log_access_lines_dropped(void);
/* From now on access lines go to fd, a pipe's write end with O_NONBLOCK
 * that log.c then owns (lb/access_log.c's writer reads the other end). The
 * previous fd is closed once it took what it could at once; the lines it
 * did not take go to fd. -1: access lines go to stderr again (what the old
 * fd does not take at once is dropped and counted). */
void log_access_set_fd(int fd);

void log_set_level(enum lb_log_level level);
void log_set_format(enum lb_log_format format);
bool log_enabled(enum lb_log_level level);
void log_msg(enum lb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line as log_msg() makes it (the format set, the time now), into buf
 * (LOG_LINE_MAX bytes, not NUL-terminated); its length, newline included.
 * For a process that writes to stderr itself (the access log's writer). */
size_t log_format_line(char *buf, enum lb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A field of an access line. In text: key=value (STR: a name lb knows to
 * be safe), key="value" (QUOTED: lb's own words; TEXT: what a client
 * sent, escaped as config_text_escape() does, cut after max bytes with
 * "..."), or a number. In JSON: a string (TEXT escaped for JSON, valid
 * UTF-8 kept, any other byte \u00XX, cut the same way), or a number. str
 * NULL is "-". */
enum log_field_kind { LOG_FIELD_STR, LOG_FIELD_QUOTED, LOG_FIELD_TEXT, LOG_FIELD_NUM };
struct log_field {
    const char *key;
    enum log_field_kind kind;
    const char *str;
    unsigned long long num; /* TEXT: the most bytes of str shown */
};
#define LOG_STR(k, v)                                                                              \
    {                                                                                              \
        (k), LOG_FIELD_STR, (v), 0                                                                 \
    }
#define LOG_QUOTED(k, v)                                                                           \
    {                                                                                              \
        (k), LOG_FIELD_QUOTED, (v), 0                                                              \
    }
#define LOG_TEXT(k, v, max)                                                                        \
    {                                                                                              \
        (k), LOG_FIELD_TEXT, (v), (max)                                                            \
    }
#define LOG_NUM(k, v)                                                                              \
    {                                                                                              \
        (k), LOG_FIELD_NUM, NULL, (unsigned long long)(v)                                          \
    }

/* An access line: event ("session end", "request") and its n fields, to
 * the access log when one is open, else stderr. A field that does not fit
 * in LOG_LINE_MAX is left out with the ones after it: the line stays
 * whole (valid JSON). */
void log_access(enum lb_log_level level, const char *event, const struct log_field *f, size_t n);

/* True at most once a second per *last (a static of the caller's): for a
 * line that a lasting condition would repeat on every event. */
static inline bool log_second_passed(time_t *last)
{
    time_t now = time(NULL);
    if (now == *last)
        return false;
    *last = now;
    return true;
}

#define log_error(...) log_msg(LB_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LB_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LB_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LB_LOG_DEBUG))                                                             \
            log_msg(LB_LOG_DEBUG, __VA_ARGS__);                                                    \
    } while (0)

#endif
