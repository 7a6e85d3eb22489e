/* Integration: the log's formats and the access log file.
 *   - "format": "json" gives one JSON object a line with the same fields, in
 *     the same order, as the text line it replaces (a reload switches it);
 *   - "access_log" takes the session and request lines off stderr into a
 *     file, written by a writer process that holds no socket of lb's;
 *     SIGUSR1 after a rename puts the lines before it in the old file and
 *     those after it in the new one; a reload to a path lb cannot open fails
 *     and changes nothing;
 *   - a file that stops taking lines (a FIFO nobody reads, a disk that
 *     hangs) costs access lines, counted, never traffic. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"
#include "tests/prom_check.h"

#define SLOW_SESSIONS 10000
#define SLOW_TCASE_TIMEOUT 180
#define ACCESS_NOTICE "log lines dropped: the access log was not draining"

/* Listener "web" (tcp) to an echo backend and "api" (http) to an HTTP
 * one, the admin API on aport; access_log NULL: none. */
static json_t *config(int lport, int hport, int aport, int eport, int bport, const char *format,
                      const char *access_log)
{
    json_t *cfg = harness_jkeep(json_pack(
        "{s:{s:s, s:s}, s:{s:s}, s:[o, {s:s, s:s, s:s, s:s}], s:[o, o]}", "log", "level", "info",
        "format", format, "admin", "listen", harness_lo(aport), "listeners",
        harness_listener_json("web", harness_lo(lport), "echoes"), "name", "api", "listen",
        harness_lo(hport), "mode", "http", "pool", "app", "pools",
        harness_pool_json("echoes", NULL,
                          harness_jarray(harness_backend_json(harness_lo(eport), "e1"), NULL)),
        harness_pool_json("app", NULL,
                          harness_jarray(harness_backend_json(harness_lo(bport), "b1"), NULL))));
    if (access_log)
        harness_jset(cfg, "log.access_log", json_string(access_log));
    return cfg;
}

/* One short echo session through lb: text out, the same text back. */
static void session(int lport, int i)
{
    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, harness_strf("session %05d\n", i));
    close(fd);
}

static void request(int hport, const char *path)
{
    int status = 0;
    ck_assert_int_eq(harness_http(hport, "GET", path, NULL, NULL, &status, NULL, NULL), 0);
    ck_assert_int_eq(status, 200);
}

/* The fields of a text event line after "level: EVENT ", in order, as a
 * JSON object of strings (a quoted value without its quotes). */
static json_t *text_fields(const char *line, const char *event, json_t **keys)
{
    const char *p = strstr(line, event);
    ck_assert_msg(p != NULL, "no %s in %s", event, line);
    p += strlen(event);
    json_t *o = harness_jkeep(json_object());
    *keys = harness_jkeep(json_array());
    while (*p == ' ') {
        p++;
        const char *eq = strchr(p, '=');
        ck_assert_msg(eq != NULL, "no = in %s", p);
        char *key = harness_strf("%.*s", (int)(eq - p), p);
        const char *v = eq + 1, *end;
        if (*v == '"') {
            v++;
            for (end = v; *end && !(*end == '"' && end[-1] != '\\'); end++)
                ;
            p = end + 1;
        } else {
            end = v + strcspn(v, " \n");
            p = end;
        }
        json_object_set_new(o, key, json_stringn(v, (size_t)(end - v)));
        json_array_append_new(*keys, json_string(key));
    }
    return o;
}

/* The JSON line of the log with "event": event and "listener": listener,
 * parsed. */
static json_t *json_event(const char *log, const char *event, const char *listener)
{
    const char *text = harness_read_file(log);
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        ck_assert(eol != NULL);
        if (*p == '{') {
            json_t *j = harness_jkeep(harness_jparse(harness_strf("%.*s", (int)(eol - p), p)));
            const char *e = json_string_value(json_object_get(j, "event"));
            const char *l = json_string_value(json_object_get(j, "listener"));
            if (e && l && strcmp(e, event) == 0 && strcmp(l, listener) == 0)
                return j;
        }
        p = eol + 1;
    }
    ck_abort_msg("no JSON %s line of listener %s in %s", event, listener, log);
    return NULL;
}

/* A JSON event line has time, level and event first, then the text line's
 * fields in its order, numbers as JSON integers, the rest the same text. */
static void same_fields(json_t *j, json_t *text, json_t *keys, const char *event,
                        const char *const numbers[])
{
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach(j, k, v)
    {
        if (i == 0) {
            ck_assert_str_eq(k, "time");
            ck_assert_uint_eq(strlen(json_string_value(v)), 24);
        } else if (i == 1) {
            ck_assert_str_eq(k, "level");
            ck_assert_str_eq(json_string_value(v), "info");
        } else if (i == 2) {
            ck_assert_str_eq(k, "event");
            ck_assert_str_eq(json_string_value(v), event);
        } else {
            ck_assert_msg(i - 3 < json_array_size(keys), "extra JSON field %s", k);
            ck_assert_str_eq(k, json_string_value(json_array_get(keys, i - 3)));
            const char *tv = json_string_value(json_object_get(text, k));
            bool num = false;
            for (size_t n = 0; numbers[n]; n++)
                num |= strcmp(numbers[n], k) == 0;
            if (num) {
                ck_assert_msg(json_is_integer(v), "%s is not a number", k);
                if (strcmp(k, "duration_ms") != 0) /* the one field that may differ */
                    ck_assert_str_eq(harness_strf("%lld", (long long)json_integer_value(v)), tv);
            } else if (strcmp(k, "client") != 0 && strcmp(k, "path") != 0) {
                /* client: another port each time; path: escaped for each
                 * format (checked apart) */
                ck_assert_msg(json_is_string(v), "%s is not a string", k);
                ck_assert_str_eq(json_string_value(v), tv);
            }
        }
        i++;
    }
    ck_assert_uint_eq(i, 3 + json_array_size(keys));
}

/* Text, then a reload to JSON: every line after it is a JSON object, and
 * a session's and a request's lines carry the text lines' fields. */
START_TEST(json_lines_same_fields)
{
    int lport = harness_free_port(), hport = harness_free_port(), aport = harness_free_port();
    int eport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", eport, "e1", "echo");
    harness_backend("127.0.0.1", bport, "b1", "http");
    json_t *cfg = config(lport, hport, aport, eport, bport, "text", NULL);
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, aport);

    session(lport, 1);
    request(hport, "/a%20b?q=\"x\"");
    ck_assert(harness_lb_log_wait(&lb, "info: session end client=", 2, HARNESS_WAIT_MS));
    const char *tsess = harness_log_line(lb.log, "info: session end client=");
    const char *treq = harness_log_line(lb.log, "info: request client=");
    ck_assert(tsess && treq);

    harness_jset(cfg, "log.format", json_string("json"));
    harness_lb_rewrite_json(&lb, cfg);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "\"msg\":\"reload ok", 1, HARNESS_WAIT_MS));
    size_t before = strlen(harness_read_file(lb.log));
    session(lport, 2);
    request(hport, "/a%20b?q=\"x\"");
    ck_assert(harness_lb_log_wait(&lb, "\"event\":\"session end\"", 2, HARNESS_WAIT_MS));

    json_t *keys;
    json_t *t = text_fields(tsess, "session end", &keys);
    static const char *const sess_nums[] = {"bytes_from_client", "bytes_from_backend",
                                            "duration_ms", NULL};
    same_fields(json_event(lb.log, "session end", "web"), t, keys, "session end", sess_nums);
    ck_assert_str_eq(harness_jstr(t, "reason"), "client closed");
    t = text_fields(treq, "request", &keys);
    static const char *const req_nums[] = {"status", "bytes_from_client", "bytes_to_client",
                                           "duration_ms", NULL};
    json_t *jreq = json_event(lb.log, "request", "api");
    same_fields(jreq, t, keys, "request", req_nums);
    ck_assert_int_eq(harness_jint(jreq, "status"), 200);
    ck_assert_str_eq(harness_jstr(jreq, "path"), "/a%20b?q=\"x\"");
    ck_assert_str_eq(harness_jstr(t, "path"), "/a%20b?q=\\\"x\\\"");

    /* Stopping: every line since the reload, the free-text ones too, is
     * one JSON object with time, level and msg or event. */
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    const char *text = harness_read_file(lb.log) + before;
    int lines = 0, msgs = 0;
    for (const char *p = text; *p; lines++) {
        const char *eol = strchr(p, '\n');
        ck_assert(eol != NULL);
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(eol - p), 0, &e);
        ck_assert_msg(json_is_object(j), "line %d is not a JSON object: %.*s", lines,
                      (int)(eol - p), p);
        ck_assert(json_is_string(json_object_get(j, "time")));
        ck_assert(json_is_string(json_object_get(j, "level")));
        ck_assert(json_is_string(json_object_get(j, "msg")) ||
                  json_is_string(json_object_get(j, "event")));
        msgs += json_object_get(j, "msg") != NULL;
        json_decref(j);
        p = eol + 1;
    }
    ck_assert_int_ge(lines, 5); /* 2 session ends, a request, stopping, exiting */
    ck_assert_int_ge(msgs, 2);
    ck_assert(harness_log_contains(lb.log, "{\"time\":"));
    ck_assert(harness_log_contains(lb.log, "\"level\":\"info\",\"msg\":\"exiting\"}"));
}
END_TEST

/* Every line of path is whole and a session end of listener web; their
 * number. */
static int count_session_lines(const char *path)
{
    const char *text = harness_read_file(path);
    int n = 0;
    for (const char *p = text; *p; n++) {
        const char *eol = strchr(p, '\n');
        ck_assert_msg(eol != NULL, "line %d of %s is cut: %s", n, path, p);
        ck_assert_msg(strstr(harness_strf("%.*s", (int)(eol - p), p),
                             "info: session end client=127.0.0.1:") != NULL,
                      "line %d of %s: %.*s", n, path, (int)(eol - p), p);
        p = eol + 1;
    }
    return n;
}

/* The pid of lb's one child (the access log's writer), 0 for none. */
static pid_t writer_pid(pid_t lb)
{
    const char *kids = harness_read_file(harness_strf("/proc/%d/task/%d/children", lb, lb));
    return kids ? (pid_t)atoi(kids) : 0;
}

/* What the writer's descriptors 3 and up are: one pipe and the file, and
 * no socket (or only the wrapper's files, with LB_TEST_WRAPPER). */
static void assert_writer_fds(pid_t w, const char *path)
{
    int pipes = 0, files = 0;
    for (int fd = 3; fd < 4096; fd++) {
        char link[512];
        ssize_t n = readlink(harness_strf("/proc/%d/fd/%d", w, fd), link, sizeof(link) - 1);
        if (n < 0)
            continue;
        link[n] = '\0';
        ck_assert_msg(strncmp(link, "socket:", 7) != 0, "the writer holds fd %d, %s", fd, link);
        if (strncmp(link, "pipe:", 5) == 0)
            pipes++;
        else if (strcmp(link, path) == 0)
            files++;
        else
            ck_assert_msg(harness_wrapper() != NULL, "the writer holds fd %d, %s", fd, link);
    }
    ck_assert_int_eq(pipes, 1);
    ck_assert_int_eq(files, 1);
}

static bool wait_count(const char *path, int want)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    while (harness_now_ms() < deadline) {
        if (access(path, F_OK) == 0 && harness_log_count(path, "session end") >= want)
            return harness_log_count(path, "session end") == want;
        harness_sleep_ms(10);
    }
    return false;
}

START_TEST(reopen_after_rename)
{
    int lport = harness_free_port(), hport = harness_free_port(), aport = harness_free_port();
    int eport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", eport, "e1", "echo");
    harness_backend("127.0.0.1", bport, "b1", "http");
    const char *path = harness_strf("%s/access.log", harness_dir());
    const char *rotated = harness_strf("%s/access.log.1", harness_dir());
    json_t *cfg = config(lport, hport, aport, eport, bport, "text", path);
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, aport);

    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "log.access_log.path"), path);
    ck_assert_int_eq(harness_jint(r.json, "log.access_log.dropped"), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    /* The writer holds its pipe and the file: no socket of lb's (under
     * valgrind the tool's own descriptors come along: counted apart). */
    pid_t w = writer_pid(lb.pid);
    ck_assert_int_gt(w, 0);
    assert_writer_fds(w, path);

    for (int i = 0; i < 3; i++)
        session(lport, i);
    ck_assert(wait_count(path, 3));
    ck_assert_int_eq(harness_log_count(lb.log, "session end"), 0); /* not on stderr */

    /* logrotate: rename, then SIGUSR1. */
    ck_assert_int_eq(rename(path, rotated), 0);
    harness_lb_signal(&lb, SIGUSR1);
    ck_assert(harness_lb_log_wait(&lb, harness_strf("info: SIGUSR1: access log %s reopened", path),
                                  1, HARNESS_WAIT_MS));
    for (int i = 3; i < 5; i++)
        session(lport, i);
    ck_assert(wait_count(path, 2));
    ck_assert_int_eq(count_session_lines(rotated), 3);
    ck_assert_int_eq(count_session_lines(path), 2);
    ck_assert(harness_log_contains(rotated, "bytes_from_client=14 bytes_from_backend=14"));
    /* The old writer is gone: one child again. */
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    while (kill(w, 0) == 0 && harness_now_ms() < deadline)
        harness_sleep_ms(10);
    ck_assert_msg(kill(w, 0) < 0, "the old writer %d is still there", w);
    ck_assert_int_ne(writer_pid(lb.pid), w);

    /* A reload to a path lb cannot open fails whole. */
    harness_jset(cfg, "log.access_log", json_string("/nonexistent-dir/access.log"));
    harness_lb_rewrite_json(&lb, cfg);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb,
                                  "error: reload failed: access log "
                                  "/nonexistent-dir/access.log: cannot open: No such file or "
                                  "directory (generation 1 stays in force)",
                                  1, HARNESS_WAIT_MS));
    session(lport, 5);
    ck_assert(wait_count(path, 3));
    r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "log.access_log.path"), path);

    /* A reload without it: the lines are on stderr again. */
    harness_jdel(cfg, "log.access_log");
    harness_lb_rewrite_json(&lb, cfg);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "info: reload ok", 1, HARNESS_WAIT_MS));
    session(lport, 6);
    ck_assert(harness_lb_log_wait(&lb, "info: session end client=", 1, HARNESS_WAIT_MS));
    r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert(json_is_null(harness_jget(r.json, "log.access_log")));
    harness_lb_signal(&lb, SIGUSR1);
    ck_assert(
        harness_lb_log_wait(&lb, "SIGUSR1 received: no access log to reopen", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    ck_assert_int_eq(count_session_lines(path), 3);
    ck_assert_int_eq(count_session_lines(rotated), 3);
}
END_TEST

/* The access log is a FIFO the test does not read (a disk that hangs):
 * 10,000 sessions pass byte-exact, the lines that do not fit are dropped
 * and counted in status and /metrics alike; once it is read every line is
 * whole, and the lines read and the notices' counts add up to them all. */
START_TEST(stalled_file_keeps_serving)
{
    int lport = harness_free_port(), hport = harness_free_port(), aport = harness_free_port();
    int eport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", eport, "e1", "echo");
    harness_backend("127.0.0.1", bport, "b1", "http");
    const char *fifo = harness_strf("%s/access.fifo", harness_dir());
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    int rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ck_assert_int_ge(rd, 0);
    /* Long names: ~350 bytes a line, far more than the pipes and buffers
     * between lb and the FIFO hold (about 2.2 MiB). */
    char longname[65];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    json_t *cfg = config(lport, hport, aport, eport, bport, "text", fifo);
    harness_jset(cfg, "listeners.0.name", json_string(harness_strf("web%.61s", longname)));
    harness_jset(cfg, "pools.0.backends.0.name", json_string(longname));
    harness_jset(cfg, "pools.0.name", json_string(harness_strf("echoes%.58s", longname)));
    harness_jset(cfg, "listeners.0.pool", json_string(harness_strf("echoes%.58s", longname)));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, aport);

    for (int i = 0; i < SLOW_SESSIONS; i++)
        session(lport, i);
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    struct harness_reply r;
    for (;;) {
        r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
        if (harness_jint(r.json, "connections.active") == 0)
            break;
        ck_assert_msg(harness_now_ms() < deadline, "sessions still open");
        harness_sleep_ms(10);
    }
    ck_assert_int_eq(harness_jint(r.json, "connections.total"), SLOW_SESSIONS);
    long long dropped = harness_jint(r.json, "log.access_log.dropped");
    ck_assert_msg(dropped > 0 && dropped < SLOW_SESSIONS, "dropped %lld", dropped);
    ck_assert_int_eq(harness_jint(r.json, "log.dropped"), 0); /* stderr is fine */
    struct harness_reply m = harness_call(aport, "GET", "/metrics", NULL, NULL);
    double v;
    ck_assert(prom_value(m.body, "lb_access_log_lines_dropped_total", &v));
    ck_assert_msg(v == (double)dropped, "metric %.0f, status %lld", v, dropped);

    /* The disk wakes up: read until the notice has come. */
    char *got = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&got, &len);
    deadline = harness_now_ms() + 20000;
    for (;;) {
        char buf[65536];
        ssize_t n = read(rd, buf, sizeof(buf));
        if (n > 0) {
            fwrite(buf, 1, (size_t)n, mem);
            continue;
        }
        fflush(mem);
        if (len > 0 && strstr(got, ACCESS_NOTICE))
            break;
        ck_assert_msg(harness_now_ms() < deadline, "no notice after %zu bytes", len);
        harness_sleep_ms(10);
    }
    fclose(mem);
    long long lines = 0, notices = 0;
    for (const char *p = got; *p;) {
        const char *eol = strchr(p, '\n');
        ck_assert_msg(eol != NULL, "a cut line: %s", p);
        unsigned long long n;
        if (sscanf(p + 25, "warn: %llu log lines dropped", &n) == 1)
            notices += (long long)n;
        else if (strstr(harness_strf("%.*s", (int)(eol - p), p), " info: session end client="))
            lines++;
        else
            ck_abort_msg("not a session line: %.*s", (int)(eol - p), p);
        p = eol + 1;
    }
    free(got);
    ck_assert_int_eq(notices, dropped);
    ck_assert_int_eq(lines + dropped, SLOW_SESSIONS);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(rd);
}
END_TEST

/* dist/lb.logrotate as shipped, with the test's file, no owner (there is
 * no user lb here) and kill instead of systemctl: logrotate itself
 * renames, signals and compresses, and no line is lost. */
START_TEST(logrotate_example)
{
    int lport = harness_free_port(), hport = harness_free_port(), aport = harness_free_port();
    int eport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", eport, "e1", "echo");
    harness_backend("127.0.0.1", bport, "b1", "http");
    const char *path = harness_strf("%s/access.log", harness_dir());
    struct harness_lb lb;
    harness_lb_start_json(&lb, config(lport, hport, aport, eport, bport, "text", path), aport);
    for (int i = 0; i < 4; i++)
        session(lport, i);
    ck_assert(wait_count(path, 4));

    const char *shipped =
        harness_read_file(harness_strf("%s/dist/lb.logrotate", harness_repo_root()));
    ck_assert(shipped != NULL);
    const char *conf = "";
    for (const char *p = shipped; *p;) {
        const char *eol = strchr(p, '\n');
        ck_assert(eol != NULL);
        const char *line = harness_strf("%.*s", (int)(eol - p), p);
        if (strcmp(line, "/var/log/lb/access.log {") == 0)
            line = harness_strf("%s {", path);
        else if (strstr(line, "create 0640 lb lb"))
            line = "    create 0640";
        else if (strstr(line, "systemctl kill --kill-whom=main --signal=USR1 lb.service"))
            line = harness_strf("        kill -USR1 %d", lb.pid);
        conf = harness_strf("%s%s\n", conf, line);
        p = eol + 1;
    }
    ck_assert(strstr(conf, "kill -USR1") && strstr(conf, harness_dir()));
    const char *file = harness_write_file("logrotate.conf", conf);
    const char *state = harness_strf("%s/logrotate.state", harness_dir());
    char *argv[] = {"/usr/sbin/logrotate", "-f", "-s", (char *)state, (char *)file, NULL};
    const char *out, *err;
    ck_assert_msg(harness_run(argv, &out, &err, 4 * HARNESS_WAIT_MS) == 0, "logrotate: %s%s", out,
                  err);
    ck_assert(harness_lb_log_wait(&lb, "SIGUSR1: access log", 1, HARNESS_WAIT_MS));
    for (int i = 4; i < 6; i++)
        session(lport, i);
    ck_assert(wait_count(path, 2));
    /* delaycompress: the first rotation leaves access.log.1 as it is. */
    const char *rotated = harness_strf("%s.1", path);
    ck_assert_int_eq(count_session_lines(rotated), 4);
    ck_assert_int_eq(count_session_lines(path), 2);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *access_log_suite(void)
{
    Suite *s = suite_create("access_log");
    TCase *tc = harness_tcase("json");
    tcase_add_test(tc, json_lines_same_fields);
    suite_add_tcase(s, tc);
    tc = harness_tcase("file");
    tcase_add_test(tc, reopen_after_rename);
    tcase_add_test(tc, logrotate_example);
    suite_add_tcase(s, tc);
    tc = harness_tcase("stalled");
    tcase_set_timeout(tc, SLOW_TCASE_TIMEOUT);
    tcase_add_test(tc, stalled_file_keeps_serving);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(access_log_suite)
