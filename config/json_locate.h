/* json_locate: finds where a value sits in raw JSON text, given its path of
 * object keys and array indices. jansson reports positions only for syntax
 * errors; the loader uses this to point every other error at its value.
 * Internal to config/. */
#ifndef LB_JSON_LOCATE_H
#define LB_JSON_LOCATE_H

#include <stddef.h>

/* One step of a path: an object key, or (key == NULL) an array index. */
struct json_step {
    const char *key;
    size_t index;
};

/* Walks TEXT (LEN bytes, already accepted by jansson) along STEPS and
 * returns 0 with *offset set to the byte offset of the value's first
 * character; with AT_KEY set and the last step a key, to the offset of that
 * key's opening quote instead. NSTEPS == 0 locates the root value. Returns
 * -1 if the path does not exist. Never reads outside TEXT. */
int json_locate(const char *text, size_t len, const struct json_step *steps, size_t nsteps,
                int at_key, size_t *offset);

/* Turns a byte offset into a 1-based line and a 1-based column counted in
 * bytes (a tab or a UTF-8 byte is one column). */
void json_line_col(const char *text, size_t len, size_t offset, unsigned *line, unsigned *col);

#endif
