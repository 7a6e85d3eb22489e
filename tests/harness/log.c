/* harness/log: what a log file (lb's, a backend's) says: whether it holds
 * a text, on how many lines, waiting (bounded) until it does, and the line
 * itself. */
#include <stdlib.h>
#include <string.h>

#include "tests/harness/internal.h"

bool harness_log_contains(const char *path, const char *needle)
{
    char *text = harness_slurp(path);
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

int harness_log_count(const char *path, const char *needle)
{
    char *text = harness_slurp(path);
    int count = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (memmem(p, len, needle, strlen(needle)))
            count++;
        p += len + (eol ? 1 : 0);
    }
    free(text);
    return count;
}

bool harness_log_wait(const char *path, const char *needle, int count, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (harness_log_count(path, needle) < count) {
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
    return true;
}

const char *harness_log_line(const char *path, const char *needle)
{
    const char *text = harness_read_file(path);
    const char *hit = strstr(text, needle);
    if (!hit)
        return NULL;
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    char *line = harness_keep(len + 1);
    memcpy(line, start, len);
    line[len] = '\0';
    return line;
}
