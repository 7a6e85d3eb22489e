/* log: one line per event on stderr, "2026-11-27T23:40:01.123Z info: ...".
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

void log_set_level(enum lb_log_level level);
bool log_enabled(enum lb_log_level level);
void log_msg(enum lb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
