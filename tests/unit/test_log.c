/* test_log: the log buffer in-process, with fd 2 pointed at a pipe, a
 * socket or a file the test controls. A pipe nobody reads fills, then the
 * buffer, then lines are dropped whole and counted exactly; once read, every
 * line comes out whole and in order, then the drop notice with the exact
 * count, then the lines after it. A closed reader costs lines, not a
 * signal; the exit flush is bounded and delivers to a live reader. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "lb/log.h"
#include "tests/test.h"

#define LINE_LEN 128  /* every test line, newline included */
#define PREFIX_LEN 25 /* "2026-11-27T23:40:01.123Z " */
#define DEADLINE_MS 5000

static int saved_stderr = -1;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Points fd 2 at fd (which it takes) and starts the log afresh. */
static void stderr_to(int fd)
{
    ck_assert_int_lt(saved_stderr, 0);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    close(fd);
    log_set_level(LB_LOG_INFO);
    log_init();
}

/* Teardown: the log lets go of fd 2, which gets the test runner's back. */
static void stderr_restore(void)
{
    log_end(0);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
}

/* fd 2 becomes a new pipe's write end; returns its read end, non-blocking. */
static int stderr_to_pipe(void)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    stderr_to(p[1]);
    return p[0];
}

/* Logs line i: LINE_LEN bytes with the prefix and newline. */
static void log_line(int i)
{
    log_info("line %05d %085d", i, 0);
}

/* What line i reads after its timestamp. */
static const char *line_text(int i)
{
    static char buf[LINE_LEN];
    snprintf(buf, sizeof(buf), "info: line %05d %085d\n", i, 0);
    return buf;
}

struct sink {
    char *data;
    size_t len, cap;
    size_t pos; /* where next_line() reads */
};

/* Reads what fd holds now into s; returns the bytes read. */
static size_t sink_read(struct sink *s, int fd)
{
    size_t got = 0;
    for (;;) {
        if (s->cap - s->len < 65536) {
            s->cap = s->cap ? s->cap * 2 : 1 << 20;
            s->data = realloc(s->data, s->cap);
            ck_assert_ptr_nonnull(s->data);
        }
        ssize_t n = recv(fd, s->data + s->len, s->cap - s->len - 1, MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = read(fd, s->data + s->len, s->cap - s->len - 1);
        if (n <= 0)
            break;
        s->len += (size_t)n;
        got += (size_t)n;
    }
    s->data[s->len] = '\0';
    return got;
}

static int count_lines(const struct sink *s)
{
    int lines = 0;
    for (const char *p = s->data; p && (p = memchr(p, '\n', s->len - (size_t)(p - s->data))); p++)
        lines++;
    return lines;
}

/* Runs base and reads fd until s holds want lines (bounded). */
static void drain_lines(struct event_base *base, int fd, struct sink *s, int want)
{
    long deadline = now_ms() + DEADLINE_MS;
    for (;;) {
        sink_read(s, fd);
        int lines = count_lines(s);
        if (lines >= want)
            return;
        ck_assert_msg(now_ms() < deadline, "only %d of %d lines came out", lines, want);
        if (base)
            event_base_loop(base, EVLOOP_NONBLOCK);
        poll(NULL, 0, 1);
    }
}

/* The next line of s (its first, at the first call) after its timestamp;
 * asserts a timestamp is there. */
static const char *next_line(struct sink *s)
{
    const char *p = s->data + s->pos;
    const char *eol = memchr(p, '\n', s->len - s->pos);
    ck_assert_msg(eol != NULL, "no line %zu bytes in", s->pos);
    ck_assert_msg(eol - p > PREFIX_LEN && p[4] == '-' && p[10] == 'T' && p[23] == 'Z' &&
                      p[24] == ' ',
                  "line %zu bytes in has no timestamp: %.*s", s->pos, (int)(eol - p), p);
    static char buf[8192];
    snprintf(buf, sizeof(buf), "%.*s", (int)(eol + 1 - p - PREFIX_LEN), p + PREFIX_LEN);
    s->pos += (size_t)(eol + 1 - p);
    return buf;
}

/* The first lines go into the pipe until it is full, the next into the
 * 1 MiB buffer until it is full (all exact, the lines are 128 bytes), the
 * rest are dropped and counted. Attached to a loop, the buffer drains (in
 * atomic pieces of whole lines) as the pipe is read: every line whole and
 * in order, then the notice, then what is logged next. fd 2's own file
 * description never turns non-blocking. */
START_TEST(pipe_stall_then_drain)
{
    int rd = stderr_to_pipe();
    ck_assert_int_eq(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);
    int pipe_lines = fcntl(rd, F_GETPIPE_SZ) / LINE_LEN;
    int kept = pipe_lines + LOG_BUFFER_MAX / LINE_LEN;
    int total = kept + 1296;
    for (int i = 0; i < total; i++)
        log_line(i);
    ck_assert_uint_eq(log_lines_dropped(), 1296);
    log_info("short"); /* the notice must come first: neither fits */
    ck_assert_uint_eq(log_lines_dropped(), 1297);

    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    log_attach(base);
    struct sink s = {0};
    drain_lines(base, rd, &s, kept + 1);
    ck_assert_uint_eq(s.len, (size_t)kept * LINE_LEN + PREFIX_LEN +
                                 strlen("warn: 1297 log lines "
                                        "dropped: stderr was "
                                        "not draining\n"));
    for (int i = 0; i < kept; i++)
        ck_assert_str_eq(next_line(&s), line_text(i));
    ck_assert_str_eq(next_line(&s), "warn: 1297 log lines dropped: stderr was not draining\n");

    log_info("after the drain");
    drain_lines(base, rd, &s, kept + 2);
    ck_assert_str_eq(next_line(&s), "info: after the drain\n");
    ck_assert_uint_eq(log_lines_dropped(), 1297);
    ck_assert_int_eq(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);
    log_detach();
    event_base_free(base);
    free(s.data);
    close(rd);
}
END_TEST

/* Before log_attach (and with no loop at all) a line still goes out as
 * soon as stderr takes it: each new line retries the write. */
START_TEST(pipe_unattached_retries)
{
    int rd = stderr_to_pipe();
    int kept = fcntl(rd, F_GETPIPE_SZ) / LINE_LEN + LOG_BUFFER_MAX / LINE_LEN;
    for (int i = 0; i < kept + 3; i++)
        log_line(i);
    ck_assert_uint_eq(log_lines_dropped(), 3);
    struct sink s = {0};
    long deadline = now_ms() + DEADLINE_MS;
    for (int n = 0;; n++) {
        sink_read(&s, rd);
        if (count_lines(&s) >= kept + 2)
            break;
        log_info("next %d", n);
        ck_assert(now_ms() < deadline);
    }
    /* kept lines, the notice, then "next" lines from one that fit on. */
    for (int i = 0; i < kept; i++)
        ck_assert_str_eq(next_line(&s), line_text(i));
    ck_assert_str_eq(next_line(&s), "warn: 3 log lines dropped: stderr was not draining\n");
    const char *next = next_line(&s);
    ck_assert_msg(strncmp(next, "info: next ", 11) == 0, "after the notice: %s", next);
    free(s.data);
    close(rd);
}
END_TEST

/* A reader that went away: each line is dropped and counted (SIGPIPE is
 * ignored, as lb ignores it). A named FIFO without a reader cannot be
 * opened again, so this is also the fallback that sets O_NONBLOCK on fd 2
 * itself, until log_end() puts its flags back. */
START_TEST(fifo_closed_reader)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/lb-test-log-fifo-%ld", (long)getpid());
    unlink(path);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    int rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ck_assert_int_ge(rd, 0);
    int wr = open(path, O_WRONLY | O_CLOEXEC);
    ck_assert_int_ge(wr, 0);
    unlink(path);
    close(rd);
    signal(SIGPIPE, SIG_IGN);
    stderr_to(wr);
    for (int i = 0; i < 5; i++)
        log_line(i);
    ck_assert_uint_eq(log_lines_dropped(), 5);
    ck_assert_int_ne(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);
    log_end(0);
    ck_assert_int_eq(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_uint_eq(log_lines_dropped(), 0);
}
END_TEST

/* An anonymous pipe whose reader is gone: the same, through lb's own
 * non-blocking reopen. */
START_TEST(pipe_closed_reader)
{
    signal(SIGPIPE, SIG_IGN);
    int rd = stderr_to_pipe();
    close(rd);
    for (int i = 0; i < 5; i++)
        log_line(i);
    ck_assert_uint_eq(log_lines_dropped(), 5);
    ck_assert_int_eq(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);
}
END_TEST

/* A regular file takes every line, however many: nothing is dropped. */
START_TEST(regular_file_takes_all)
{
    char path[] = "/tmp/lb-test-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    int rd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(rd, 0);
    unlink(path);
    stderr_to(fd);
    int total = 2 * LOG_BUFFER_MAX / LINE_LEN;
    for (int i = 0; i < total; i++)
        log_line(i);
    ck_assert_uint_eq(log_lines_dropped(), 0);
    struct sink s = {0};
    sink_read(&s, rd);
    ck_assert_uint_eq(s.len, (size_t)total * LINE_LEN);
    for (int i = 0; i < total; i++)
        ck_assert_str_eq(next_line(&s), line_text(i));
    free(s.data);
    close(rd);
}
END_TEST

/* A socket (journald's stream): sent without blocking; once its buffers
 * are full lines are dropped, and what comes out (a 1 MiB buffer sent in
 * partial sends, the rest kept at the head each time) is every line before
 * the first drop, whole and in order, then the notice with the exact
 * count. */
START_TEST(socket_stall_then_drain)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    stderr_to(sv[1]);
    int total = 3 * LOG_BUFFER_MAX / LINE_LEN;
    for (int i = 0; i < total; i++)
        log_line(i);
    uint64_t dropped = log_lines_dropped();
    ck_assert_uint_gt(dropped, 0);
    int kept = total - (int)dropped;
    ck_assert_int_ge(kept, LOG_BUFFER_MAX / LINE_LEN);

    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    log_attach(base);
    struct sink s = {0};
    drain_lines(base, sv[0], &s, kept + 1);
    for (int i = 0; i < kept; i++)
        ck_assert_str_eq(next_line(&s), line_text(i));
    char want[128];
    snprintf(want, sizeof(want), "warn: %llu log lines dropped: stderr was not draining\n",
             (unsigned long long)dropped);
    ck_assert_str_eq(next_line(&s), want);
    log_detach();
    event_base_free(base);
    free(s.data);
    close(sv[0]);
}
END_TEST

/* log_end() never waits past its bound for a reader that never reads. */
START_TEST(end_is_bounded)
{
    int rd = stderr_to_pipe();
    int kept = fcntl(rd, F_GETPIPE_SZ) / LINE_LEN + LOG_BUFFER_MAX / LINE_LEN;
    for (int i = 0; i < kept; i++)
        log_line(i);
    long t0 = now_ms();
    log_end(300);
    long took = now_ms() - t0;
    ck_assert_msg(took >= 290 && took < 1500, "log_end(300) took %ld ms", took);
    close(rd);
}
END_TEST

/* ...and delivers everything, the notice too, to a reader that is slow
 * but alive (here a child that starts reading 100 ms later). */
START_TEST(end_flushes_to_live_reader)
{
    int rd = stderr_to_pipe();
    int kept = fcntl(rd, F_GETPIPE_SZ) / LINE_LEN + LOG_BUFFER_MAX / LINE_LEN;
    for (int i = 0; i < kept + 10; i++)
        log_line(i);
    int report[2];
    ck_assert_int_eq(pipe(report), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Only the parent writes: drop every copy of the write end. */
        for (int fd = 0; fd < 1024; fd++)
            if (fd != rd && fd != report[1])
                close(fd);
        poll(NULL, 0, 100);
        fcntl(rd, F_SETFL, 0);
        size_t total = 0;
        char buf[65536];
        ssize_t n;
        while ((n = read(rd, buf, sizeof(buf))) > 0)
            total += (size_t)n;
        ssize_t w = write(report[1], &total, sizeof(total));
        _exit(w == sizeof(total) ? 0 : 1);
    }
    close(report[1]);
    close(rd);
    log_end(DEADLINE_MS);
    stderr_restore(); /* closes our last write end: the child sees EOF */
    size_t total = 0;
    ck_assert_int_eq(read(report[0], &total, sizeof(total)), (ssize_t)sizeof(total));
    close(report[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_uint_eq(total, (size_t)kept * LINE_LEN + PREFIX_LEN +
                                 strlen("warn: 10 log lines dropped: stderr was not draining\n"));
}
END_TEST

/* The next whole line of s as it is, without its newline. */
static const char *raw_line(struct sink *s)
{
    const char *p = s->data + s->pos;
    const char *eol = memchr(p, '\n', s->len - s->pos);
    ck_assert_msg(eol != NULL, "no line %zu bytes in", s->pos);
    static char buf[8192];
    snprintf(buf, sizeof(buf), "%.*s", (int)(eol - p), p);
    s->pos += (size_t)(eol + 1 - p);
    return buf;
}

/* JSON lines are valid JSON whatever the text holds (quotes, control
 * bytes, bytes over 0x7e), and a line over LOG_LINE_MAX is cut inside its
 * string, still a whole object; text lines are cut at LOG_LINE_MAX too.
 * Events carry their fields in order, numbers as numbers; "-" for none. */
START_TEST(json_lines_valid)
{
    int rd = stderr_to_pipe();
    char big[3 * LOG_LINE_MAX];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_set_format(LB_LOG_JSON);
    log_info("quote \" back \\ tab \t nl \n bell \a utf8 \xc3\xa9 bad \xff\xc3 end");
    log_warn("%s", big);
    const struct log_field f[] = {LOG_STR("client", "127.0.0.1:1"), LOG_STR("backend", NULL),
                                  LOG_NUM("bytes", 12345678901ULL),
                                  LOG_TEXT("path", "/\"a\"\xc3\xa9\x01/long", 10),
                                  LOG_QUOTED("reason", "client closed")};
    log_access(LB_LOG_INFO, "session end", f, 5);
    /* A field too long for a line goes whole, with the ones after it. */
    const struct log_field g[] = {LOG_NUM("n", 1), LOG_STR("huge", big), LOG_NUM("after", 2)};
    log_access(LB_LOG_INFO, "cut", g, 3);
    log_set_format(LB_LOG_TEXT);
    log_access(LB_LOG_INFO, "session end", f, 5);
    log_warn("%s", big);
    log_access(LB_LOG_INFO, "cut", g, 3);

    struct sink sk = {0};
    sink_read(&sk, rd);
    const char *line = raw_line(&sk);
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", e.text, line);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
    ck_assert_str_eq(
        json_string_value(json_object_get(j, "msg")),
        "quote \" back \\ tab \t nl \n bell \a utf8 \xc3\xa9 bad \xc3\xbf\xc3\x83 end");
    /* Valid UTF-8 as it is, other bytes as \u00XX (jansson reads them as
     * U+00FF and U+00C3). */
    ck_assert(strstr(line, "utf8 \xc3\xa9 bad \\u00ff\\u00c3 end") != NULL);
    json_decref(j);

    line = raw_line(&sk);
    ck_assert_uint_eq(strlen(line) + 1, LOG_LINE_MAX); /* with its newline */
    j = json_loads(line, 0, &e);
    ck_assert_msg(j != NULL, "cut line not JSON (%s): %.80s...", e.text, line);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "warn");
    json_decref(j);

    line = raw_line(&sk);
    ck_assert_msg(strstr(line, "\"event\":\"session end\",\"client\":\"127.0.0.1:1\","
                               "\"backend\":\"-\",\"bytes\":12345678901,"
                               "\"path\":\"/\\\"a\\\"\xc3\xa9\\u0001/lo...\","
                               "\"reason\":\"client closed\"}") != NULL,
                  "%s", line);
    line = raw_line(&sk);
    j = json_loads(line, 0, &e);
    ck_assert_msg(j != NULL, "cut event not JSON (%s): %.80s...", e.text, line);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "n")), 1);
    ck_assert_ptr_null(json_object_get(j, "huge"));
    ck_assert_ptr_null(json_object_get(j, "after"));
    json_decref(j);
    line = raw_line(&sk);
    ck_assert_str_eq(line + PREFIX_LEN,
                     "info: session end client=127.0.0.1:1 backend=- "
                     "bytes=12345678901 path=\"/\\\"a\\\"\\xc3\\xa9\\x01/lo...\" "
                     "reason=\"client closed\"");
    line = raw_line(&sk);
    ck_assert_uint_eq(strlen(line) + 1, LOG_LINE_MAX);
    ck_assert_int_eq(line[strlen(line) - 1], 'x'); /* cut inside the text */
    line = raw_line(&sk);
    ck_assert_str_eq(line + PREFIX_LEN, "info: cut n=1");
    free(sk.data);
    close(rd);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("buffer");
    tcase_add_checked_fixture(tc, NULL, stderr_restore);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, pipe_stall_then_drain);
    tcase_add_test(tc, pipe_unattached_retries);
    tcase_add_test(tc, pipe_closed_reader);
    tcase_add_test(tc, fifo_closed_reader);
    tcase_add_test(tc, regular_file_takes_all);
    tcase_add_test(tc, socket_stall_then_drain);
    tcase_add_test(tc, end_is_bounded);
    tcase_add_test(tc, end_flushes_to_live_reader);
    tcase_add_test(tc, json_lines_valid);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(log_suite)
