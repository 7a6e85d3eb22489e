/* log: levelled, timestamped lines on stderr, one write(2) each. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lb/log.h"

#define LOG_LINE_MAX 4096

static enum lb_log_level log_level = LB_LOG_INFO;

void log_set_level(enum lb_log_level level)
{
    log_level = level;
}

bool log_enabled(enum lb_log_level level)
{
    return level <= log_level;
}

void log_msg(enum lb_log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    char line[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: ", (long)(tv.tv_usec / 1000),
                  config_log_level_name(level));

    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    line[n++] = '\n';

    ssize_t off = 0;
    while ((size_t)off < n) {
        ssize_t w = write(STDERR_FILENO, line + off, n - (size_t)off);
        if (w <= 0)
            return; /* nowhere to report a failing stderr */
        off += w;
    }
}
