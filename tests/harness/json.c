/* harness/json: reading JSON documents by dotted path ("pools.0.name"),
 * failing the test when a value is missing or of another type, and the list
 * of documents kept for the test (admin answers, configs) and released at
 * teardown. */
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
