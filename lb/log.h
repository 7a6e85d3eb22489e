/* log: one line per event on stderr, "2026-11-27T23:40:01.123Z info: ...",
 * written with a single write(2) so lines never interleave. */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

void log_set_level(enum lb_log_level level);
bool log_enabled(enum lb_log_level level);
void log_msg(enum lb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LB_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LB_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LB_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LB_LOG_DEBUG))                                                             \
            log_msg(LB_LOG_DEBUG, __VA_ARGS__);                                                    \
    } while (0)

#endif
