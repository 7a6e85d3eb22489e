/* harness/json: JSON documents read by dotted path, and documents kept
 * until teardown. */
#ifndef LB_TESTS_HARNESS_JSON_H
#define LB_TESTS_HARNESS_JSON_H

#include <jansson.h>

/* Keeps j until teardown (it takes over the caller's reference) and
 * returns it. */
json_t *harness_jkeep(json_t *j);

/* The JSON value at a dotted path ("pools.0.backends.1.id"); fails the test
 * when absent (or, for jint/jstr, of another type). */
json_t *harness_jget(json_t *j, const char *path);
long long harness_jint(json_t *j, const char *path);
const char *harness_jstr(json_t *j, const char *path);

#endif
