/* harness/core: the temp dir of each test, setup and teardown (which call
 * the other files' cleanups in order), the clock, and the list of strings
 * handed to tests and freed at teardown, with the file helpers built on
 * it. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness/internal.h"

struct alloc {
    struct alloc *next;
    char data[];
};

static char dir[256];
static struct alloc *allocs;
static int nfiles; /* numbering for lb config/log files */
static bool atexit_done;

/* --- time, memory, files --- */

const char *harness_wrapper(void)
{
    const char *w = getenv("LB_TEST_WRAPPER");
    return w && *w ? w : NULL;
}

int harness_slow(void)
{
    static int slow;
    if (slow == 0) {
        const char *s = getenv("LB_TEST_SLOW");
        int n = s ? atoi(s) : 0;
        slow = n >= 1 && n <= 100 ? n : harness_wrapper() ? 10 : 1;
    }
    return slow;
}

long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

char *harness_keep(size_t len)
{
    struct alloc *a = malloc(sizeof(*a) + len);
    ck_assert_msg(a != NULL, "harness: out of memory");
    a->next = allocs;
    allocs = a;
    return a->data;
}

char *harness_strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    char *s = harness_keep((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *harness_repo_root(void)
{
    const char *build = LB_BUILD_DIR;
    const char *slash = strrchr(build, '/');
    ck_assert_msg(slash != NULL, "LB_BUILD_DIR %s is not a path", build);
    return harness_strf("%.*s", (int)(slash - build), build);
}

const char *harness_dir(void)
{
    return dir;
}

int harness_next_file_number(void)
{
    return ++nfiles;
}

const char *harness_write_file(const char *name, const char *text)
{
    const char *path = harness_strf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "harness: cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_msg(fclose(f) == 0, "harness: cannot write %s", path);
    return path;
}

char *harness_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ck_assert_msg(buf != NULL, "harness: out of memory");
    size_t n;
    while (f && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_msg(buf != NULL, "harness: out of memory");
        }
    }
    if (f)
        fclose(f);
    buf[len] = '\0';
    return buf;
}

const char *harness_read_file(const char *path)
{
    char *text = harness_slurp(path);
    size_t len = strlen(text);
    char *s = harness_keep(len + 1);
    memcpy(s, text, len + 1);
    free(text);
    return s;
}

const char *harness_log_tail(const char *path)
{
    const char *text = harness_read_file(path);
    size_t len = strlen(text);
    return len > HARNESS_LOG_TAIL ? text + len - HARNESS_LOG_TAIL : text;
}

/* --- setup and teardown --- */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void harness_remove_tree(const char *path)
{
    nftw(path, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* The temp dir and everything in it, subfolders too (a harness_pki's). */
static void remove_dir(void)
{
    harness_remove_tree(dir);
}

static void free_allocs(void)
{
    while (allocs) {
        struct alloc *next = allocs->next;
        free(allocs);
        allocs = next;
    }
}

static void harness_atexit(void)
{
    harness_children_kill();
}

void harness_setup(void)
{
    if (!atexit_done) {
        atexit(harness_atexit);
        atexit_done = true;
    }
    snprintf(dir, sizeof(dir), "/tmp/lb-it-XXXXXX");
    ck_assert_msg(mkdtemp(dir) != NULL, "harness: mkdtemp: %s", strerror(errno));
    nfiles = 0;
    harness_ports_reset();
}

void harness_teardown(void)
{
    harness_json_release();
    harness_children_kill();
    harness_pipes_close();
    harness_held_close();
    if (getenv("LB_IT_KEEP"))
        fprintf(stderr, "harness: kept %s\n", dir);
    else
        remove_dir();
    free_allocs();
}

TCase *harness_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, harness_setup, harness_teardown);
    tcase_set_timeout(tc, HARNESS_TCASE_TIMEOUT);
    return tc;
}
