/* harness/core: the per-test fixture (temp dir, setup and teardown), the
 * clock, strings freed at teardown and files in the temp dir. */
#ifndef LB_TESTS_HARNESS_CORE_H
#define LB_TESTS_HARNESS_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <check.h>

/* Default bound for "until ready" waits, and for lb to exit after SIGTERM;
 * both times harness_slow() (lb under LB_TEST_WRAPPER runs many times
 * slower). */
#define HARNESS_WAIT_MS (5000 * harness_slow())
#define HARNESS_STOP_MS (15000 * harness_slow())
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
/* The repository's root (LB_BUILD_DIR's parent), for examples/ (freed at
 * teardown). */
const char *harness_repo_root(void);
/* Removes path and everything under it (subfolders too), best effort. */
void harness_remove_tree(const char *path);

/* The command lb runs under (LB_TEST_WRAPPER, e.g. valgrind and its
 * options; "@DIR@" in it stands for the test's temp dir), or NULL. */
const char *harness_wrapper(void);
/* How many times slower lb is: LB_TEST_SLOW when set (1 to 100), else 10
 * under a wrapper, else 1. */
int harness_slow(void);
/* Under a wrapper, tells why this test cannot pass there (tight timing,
 * descriptor limits, memory counts) and returns from the test, which then
 * passes having checked nothing: "SKIP under LB_TEST_WRAPPER: why". */
#define HARNESS_SKIP_WRAPPED(why)                                                                  \
    do {                                                                                           \
        if (harness_wrapper()) {                                                                   \
            fprintf(stderr, "SKIP under LB_TEST_WRAPPER: %s: %s\n", __func__, (why));              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* For one check of a test (a memory count): true under a wrapper, after the
 * line "SKIP under LB_TEST_WRAPPER: test: why (this check only)". */
#define HARNESS_WRAPPED_SKIPS_CHECK(why)                                                           \
    (harness_wrapper() &&                                                                          \
     fprintf(stderr, "SKIP under LB_TEST_WRAPPER: %s: %s (this check only)\n", __func__, (why)) >= \
         0)

long harness_now_ms(void);
void harness_sleep_ms(long ms);

/* printf into a string freed at teardown. */
char *harness_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes text to NAME in the temp dir; returns the path (freed at teardown). */
const char *harness_write_file(const char *name, const char *text);
/* Whole file as a string (freed at teardown); "" when missing. */
const char *harness_read_file(const char *path);

#endif
