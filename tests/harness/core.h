/* harness/core: the per-test fixture (temp dir, setup and teardown), the
 * clock, strings freed at teardown and files in the temp dir. */
#ifndef LB_TESTS_HARNESS_CORE_H
#define LB_TESTS_HARNESS_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>

#define HARNESS_WAIT_MS 5000     /* default bound for "until ready" waits */
#define HARNESS_STOP_MS 15000    /* bound for lb to exit after SIGTERM */
#define HARNESS_TCASE_TIMEOUT 60 /* seconds, for tcase_set_timeout */

/* Check fixture pair. setup makes the temp dir; teardown (and an atexit
 * hook, for the no-fork mode) kills every process spawned and, when the test
 * got that far, removes the dir (kept when LB_IT_KEEP is set). A failed
 * test keeps its dir for reading. Teardown also frees the strings and JSON
 * documents handed out and closes the sockets of harness_listen_held. */
void harness_setup(void);
void harness_teardown(void);
/* A test case with that fixture pair and HARNESS_TCASE_TIMEOUT, for an
 * integration suite (add it to the suite with suite_add_tcase). */
TCase *harness_tcase(const char *name);
const char *harness_dir(void);
/* Removes path and everything under it (subfolders too), best effort. */
void harness_remove_tree(const char *path);

long harness_now_ms(void);
void harness_sleep_ms(long ms);

/* printf into a string freed at teardown. */
char *harness_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes text to NAME in the temp dir; returns the path (freed at teardown). */
const char *harness_write_file(const char *name, const char *text);
/* Whole file as a string (freed at teardown); "" when missing. */
const char *harness_read_file(const char *path);

#endif
