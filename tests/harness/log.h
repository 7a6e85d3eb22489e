/* harness/log: reading log files (lb's, a backend's) for a text, a count
 * of lines or one line, with a bounded wait for lines still to come. */
#ifndef LB_TESTS_HARNESS_LOG_H
#define LB_TESTS_HARNESS_LOG_H

#include <stdbool.h>

bool harness_log_contains(const char *path, const char *needle);
/* How many lines hold needle. */
int harness_log_count(const char *path, const char *needle);
/* True once the log holds needle at least count times (bounded). */
bool harness_log_wait(const char *path, const char *needle, int count, long timeout_ms);
/* The first line holding needle (freed at teardown), or NULL. */
const char *harness_log_line(const char *path, const char *needle);

#endif
