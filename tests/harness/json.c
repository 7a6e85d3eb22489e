/* harness/json: JSON documents read and written by dotted path
 * ("pools.0.name"), failing the test when a value is missing or of another
 * type; small constructors and the text of a document; and the list of
 * documents kept for the test (admin answers, configs) and released at
 * teardown. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness/internal.h"

static json_t **kept; /* documents released at teardown */
static size_t nkept, kept_cap;

json_t *harness_jkeep(json_t *j)
{
    ck_assert_msg(j != NULL, "harness: no JSON document to keep");
    if (nkept == kept_cap) {
        kept_cap = kept_cap ? kept_cap * 2 : 64;
        kept = realloc(kept, kept_cap * sizeof(*kept));
        ck_assert_msg(kept != NULL, "harness: out of memory");
    }
    kept[nkept++] = j;
    return j;
}

void harness_json_release(void)
{
    for (size_t i = 0; i < nkept; i++)
        json_decref(kept[i]);
    nkept = 0;
    free(kept);
    kept = NULL;
    kept_cap = 0;
}

json_t *harness_jget(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        if (json_is_array(j))
            j = json_array_get(j, strtoul(part, NULL, 10));
        else
            j = json_object_get(j, part);
        ck_assert_msg(j != NULL, "no %s (at %s)", path, part);
    }
    return j;
}

long long harness_jint(json_t *j, const char *path)
{
    json_t *v = harness_jget(j, path);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", path);
    return json_integer_value(v);
}

const char *harness_jstr(json_t *j, const char *path)
{
    json_t *v = harness_jget(j, path);
    ck_assert_msg(json_is_string(v), "%s is not a string", path);
    return json_string_value(v);
}

/* --- building documents --- */

static bool is_index(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The container at the path's segment part inside j, created (an array
 * when next is an index, else an object) when j lacks it. */
static json_t *descend(json_t *j, const char *part, const char *next, const char *path)
{
    json_t *child;
    if (json_is_array(j)) {
        ck_assert_msg(is_index(part), "harness_jset %s: %s indexes an array", path, part);
        size_t i = strtoul(part, NULL, 10);
        ck_assert_msg(i <= json_array_size(j), "harness_jset %s: index %zu past the end (%zu)",
                      path, i, json_array_size(j));
        child = json_array_get(j, i);
        if (!child) {
            child = is_index(next) ? json_array() : json_object();
            ck_assert(json_array_append_new(j, child) == 0);
        }
    } else {
        ck_assert_msg(json_is_object(j), "harness_jset %s: %s is not in an object or array", path,
                      part);
        child = json_object_get(j, part);
        if (!child) {
            child = is_index(next) ? json_array() : json_object();
            ck_assert(json_object_set_new(j, part, child) == 0);
        }
    }
    ck_assert_msg(json_is_object(child) || json_is_array(child),
                  "harness_jset %s: %s holds neither an object nor an array", path, part);
    return child;
}

/* Splits path into at most max segments of buf; returns how many. */
static int split_path(char *buf, size_t cap, const char *path, char *parts[], int max)
{
    int n = snprintf(buf, cap, "%s", path);
    ck_assert_msg(n > 0 && (size_t)n < cap, "harness: path '%s' empty or too long", path);
    int count = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save)) {
        ck_assert_msg(count < max, "harness: path '%s' too deep", path);
        parts[count++] = p;
    }
    ck_assert_msg(count > 0, "harness: path '%s' has no segment", path);
    return count;
}

#define MAX_SEGMENTS 16

void harness_jset(json_t *root, const char *path, json_t *value)
{
    ck_assert_msg(value != NULL, "harness_jset %s: no value", path);
    char buf[256];
    char *parts[MAX_SEGMENTS];
    int n = split_path(buf, sizeof(buf), path, parts, MAX_SEGMENTS);
    json_t *j = root;
    for (int i = 0; i + 1 < n; i++)
        j = descend(j, parts[i], parts[i + 1], path);
    const char *last = parts[n - 1];
    if (json_is_array(j)) {
        ck_assert_msg(is_index(last), "harness_jset %s: %s indexes an array", path, last);
        size_t i = strtoul(last, NULL, 10);
        ck_assert_msg(i <= json_array_size(j), "harness_jset %s: index %zu past the end (%zu)",
                      path, i, json_array_size(j));
        int rc = i == json_array_size(j) ? json_array_append_new(j, value)
                                         : json_array_set_new(j, i, value);
        ck_assert(rc == 0);
    } else {
        ck_assert_msg(json_is_object(j), "harness_jset %s: not an object or array", path);
        ck_assert(json_object_set_new(j, last, value) == 0);
    }
}

void harness_jappend(json_t *root, const char *path, json_t *value)
{
    json_t *list = harness_jget(root, path);
    ck_assert_msg(json_is_array(list), "harness_jappend: %s is not an array", path);
    ck_assert_msg(value != NULL, "harness_jappend %s: no value", path);
    ck_assert(json_array_append_new(list, value) == 0);
}

void harness_jdel(json_t *root, const char *path)
{
    const char *dot = strrchr(path, '.');
    json_t *parent = dot ? harness_jget(root, harness_strf("%.*s", (int)(dot - path), path)) : root;
    const char *last = dot ? dot + 1 : path;
    int rc = json_is_array(parent) ? json_array_remove(parent, strtoul(last, NULL, 10))
                                   : json_object_del(parent, last);
    ck_assert_msg(rc == 0, "harness_jdel: no %s", path);
}

json_t *harness_jarray(json_t *first, ...)
{
    json_t *a = json_array();
    ck_assert(a != NULL);
    va_list ap;
    va_start(ap, first);
    for (json_t *v = first; v; v = va_arg(ap, json_t *))
        ck_assert(json_array_append_new(a, v) == 0);
    va_end(ap);
    return a;
}

json_t *harness_jparse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    ck_assert_msg(j != NULL, "harness_jparse: %s at %d:%d in: %s", err.text, err.line, err.column,
                  text);
    return j;
}

const char *harness_jtext(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    ck_assert_msg(text != NULL, "harness: json_dumps failed");
    const char *kept = harness_strf("%s\n", text);
    free(text);
    return kept;
}
