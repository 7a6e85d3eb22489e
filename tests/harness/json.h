/* harness/json: JSON documents read and written by dotted path, small
 * constructors, a document's text, and documents kept until teardown. */
#ifndef LB_TESTS_HARNESS_JSON_H
#define LB_TESTS_HARNESS_JSON_H

#include <jansson.h>

/* Who owns what: a document the harness hands out (harness_call's answers,
 * harness_cfg) is kept until teardown; never json_decref it. A fragment
 * (harness_jarray, harness_jparse, harness_backend_json and the other
 * constructors, or jansson's own json_pack) is a new reference, meant for a
 * call that steals it (harness_jset, harness_jappend, json_array_append_new,
 * json_object_set_new); to put one value in two places, json_deep_copy it. */

/* Keeps j until teardown (it takes over the caller's reference) and
 * returns it. */
json_t *harness_jkeep(json_t *j);

/* The JSON value at a dotted path ("pools.0.backends.1.id"); fails the test
 * when absent (or, for jint/jstr, of another type). */
json_t *harness_jget(json_t *j, const char *path);
long long harness_jint(json_t *j, const char *path);
const char *harness_jstr(json_t *j, const char *path);

/* Sets the value at a dotted path in root, stealing the reference to value.
 * A segment of digits indexes an array (the array's size appends); any
 * other segment is an object key. Missing containers on the way are
 * created: an array when the next segment is an index, else an object. A
 * key that exists keeps its place in the object. Fails the test when the
 * path runs through a value that is neither object nor array, or past the
 * end of an array. */
void harness_jset(json_t *root, const char *path, json_t *value);
/* Appends value (stolen) to the array at path, which must exist. */
void harness_jappend(json_t *root, const char *path, json_t *value);
/* Removes the key or array element at path; fails the test when absent. */
void harness_jdel(json_t *root, const char *path);

/* A new array of the values up to a NULL, each stolen. */
json_t *harness_jarray(json_t *first, ...);
/* JSON text as a new value (objects may not repeat a key, as in lb's
 * loader); fails the test on bad text. */
json_t *harness_jparse(const char *text);
/* The document as text: indented by 2, keys in insertion order, a final
 * newline (freed at teardown). */
const char *harness_jtext(json_t *j);

#endif
