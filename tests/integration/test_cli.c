/* Integration: lb's command line. -t checks a config (exit 0/1 and the
 * message), -V, -h, bad flags (exit 2), and a plain `lb -c FILE` run that
 * logs its listener line in the agreed format and exits 0 on SIGTERM. */
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define LB LB_BUILD_DIR "/lb"
#define RUN_MS 10000

/* A good config (the files whose errors name a line and column are
 * literal text, below). */
static json_t *valid_config(int lport, int bport)
{
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport), .strategy = "roundrobin", .retries = 2});
    harness_jset(cfg, "pools.0.backends",
                 harness_jarray(json_pack("{s:s, s:i, s:s}", "address", harness_lo(bport), "weight",
                                          1, "name", "b1"),
                                harness_backend_json(harness_hostport("::1", bport), NULL), NULL));
    return cfg;
}

/* The first line of text (freed at teardown). */
static const char *first_line(const char *text)
{
    const char *nl = strchr(text, '\n');
    return harness_strf("%.*s", (int)(nl ? nl - text : (long)strlen(text)), text);
}

/* Runs lb to completion; its stderr must hold no sanitizer report. */
static int run_lb(char *const argv[], const char **out, const char **err)
{
    int status = harness_run(argv, out, err, RUN_MS);
    harness_assert_no_sanitizer_report(*err, "lb stderr");
    return status;
}

START_TEST(check_valid)
{
    const char *path = harness_write_file("ok.json", harness_jtext(valid_config(8080, 9001)));
    char *argv[] = {LB, "-t", "-c", (char *)path, NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_msg(status == 0, "lb -t on a valid config: status %d, stderr: %s", status, err);
    ck_assert_str_eq(out, "configuration ok\n");
}
END_TEST

/* An unknown key on line 6: the message names the file, that line, and the key. */
START_TEST(check_unknown_key)
{
    const char *text = "{\n"
                       "  \"log\": {\"level\": \"info\"},\n"
                       "  \"listeners\": [{\"name\": \"web\", \"listen\": \"127.0.0.1:8080\",\n"
                       "                 \"pool\": \"app\"}],\n"
                       "  \"pools\": [{\"name\": \"app\", \"backends\": [{\"address\": "
                       "\"127.0.0.1:9001\"}]}],\n"
                       "  \"bogus\": true\n"
                       "}\n";
    const char *path = harness_write_file("unknown.json", text);
    char *argv[] = {LB, "-t", "-c", (char *)path, NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_msg(status == 1, "status %d (want 1), stderr: %s", status, err);
    ck_assert_str_eq(out, "");
    const char *line = first_line(err);
    const char *prefix = harness_strf("%s:6:", path);
    ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0,
                  "stderr '%s' does not start with '%s'", line, prefix);
    ck_assert_msg(strstr(line, "bogus") != NULL, "stderr '%s' does not name the key", line);
}
END_TEST

/* A bad value on line 4: FILE:4:COL: pools[0].strategy... */
START_TEST(check_bad_value)
{
    const char *text = "{\n"
                       "  \"listeners\": [{\"name\": \"web\", \"listen\": \"127.0.0.1:8080\", "
                       "\"pool\": \"app\"}],\n"
                       "  \"pools\": [{\"name\": \"app\",\n"
                       "             \"strategy\": \"fastest\",\n"
                       "             \"backends\": [{\"address\": \"127.0.0.1:9001\"}]}]\n"
                       "}\n";
    const char *path = harness_write_file("badvalue.json", text);
    char *argv[] = {LB, "-t", "-c", (char *)path, NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_msg(status == 1, "status %d (want 1), stderr: %s", status, err);
    ck_assert_str_eq(out, "");
    const char *line = first_line(err);
    /* "strategy": "fastest" — the value starts at column 26 of line 4. */
    const char *prefix = harness_strf("%s:4:26: ", path);
    ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0,
                  "stderr '%s' does not start with '%s'", line, prefix);
    ck_assert_msg(strstr(line, "strategy") != NULL, "stderr '%s' does not name the path", line);
}
END_TEST

START_TEST(check_syntax_error)
{
    const char *path =
        harness_write_file("syntax.json", "{\n  \"log\": {\"level\": \"info\"},\n  ]\n");
    char *argv[] = {LB, "-t", "-c", (char *)path, NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_msg(status == 1, "status %d (want 1), stderr: %s", status, err);
    ck_assert_str_eq(out, "");
    const char *prefix = harness_strf("%s:3:", path);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "stderr '%s' does not start with '%s'",
                  err, prefix);
}
END_TEST

START_TEST(check_missing_file)
{
    const char *path = harness_strf("%s/does-not-exist.json", harness_dir());
    char *argv[] = {LB, "-t", "-c", (char *)path, NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_msg(status == 1, "status %d (want 1), stderr: %s", status, err);
    ck_assert_str_eq(out, "");
    ck_assert_msg(strstr(err, path) != NULL, "stderr '%s' does not name the file", err);
}
END_TEST

/* -c naming a FIFO or a directory is refused within a second (a FIFO with
 * no writer must not block the open or the read), with the exact reason. */
START_TEST(check_not_regular_file)
{
    const char *fifo = harness_strf("%s/fifo.json", harness_dir());
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    const char *paths[] = {fifo, harness_dir()};
    const char *kinds[] = {"a FIFO", "a directory"};
    for (int i = 0; i < 2; i++) {
        char *argv[] = {LB, "-t", "-c", (char *)paths[i], NULL};
        const char *out, *err;
        long t0 = harness_now_ms();
        int status = harness_run(argv, &out, &err, 1000);
        ck_assert_msg(status == 1, "-c %s: status %d (want 1, -2 is a timeout), stderr: %s",
                      paths[i], status, err);
        ck_assert_msg(harness_now_ms() - t0 < 1000, "-c %s took %ld ms", paths[i],
                      harness_now_ms() - t0);
        harness_assert_no_sanitizer_report(err, "lb stderr");
        ck_assert_str_eq(out, "");
        ck_assert_str_eq(err, harness_strf("%s: not a regular file (%s)\n", paths[i], kinds[i]));
    }
}
END_TEST

START_TEST(flag_version)
{
    char *argv[] = {LB, "-V", NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_int_eq(status, 0);
    ck_assert_str_eq(out, "lb " LB_VERSION "\n");
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(flag_help)
{
    char *argv[] = {LB, "-h", NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_int_eq(status, 0);
    ck_assert_msg(strcasestr(out, "usage") != NULL, "-h stdout has no usage: '%s'", out);
    ck_assert_msg(strstr(out, "-c") != NULL, "-h usage does not mention -c: '%s'", out);
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(flag_unknown)
{
    char *argv[] = {LB, "-Z", NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_int_eq(status, 2);
    ck_assert_str_eq(out, "");
    ck_assert_msg(strcasestr(err, "usage") != NULL, "stderr has no usage: '%s'", err);
}
END_TEST

START_TEST(flag_missing_config)
{
    char *argv[] = {LB, NULL};
    const char *out, *err;
    int status = run_lb(argv, &out, &err);
    ck_assert_int_eq(status, 2);
    ck_assert_str_eq(out, "");
    ck_assert_msg(strcasestr(err, "usage") != NULL, "stderr has no usage: '%s'", err);
}
END_TEST

/* -a / --admin-listen: its address is checked like admin.listen (lb -t
 * says so, naming the option); without a value, the usage and exit 2. */
START_TEST(flag_admin_listen)
{
    const char *path = harness_write_file("ok.json", harness_jtext(valid_config(8080, 9001)));
    const char *out, *err;
    char *good[] = {LB, "-t", "-c", (char *)path, "--admin-listen", "127.0.0.1:9191", NULL};
    int status = run_lb(good, &out, &err);
    ck_assert_msg(status == 0, "lb -t --admin-listen: status %d, stderr: %s", status, err);
    ck_assert_str_eq(out, "configuration ok\n");

    char *bad[] = {LB, "-t", "-c", (char *)path, "-a", "127.0.0.1:8080", NULL};
    status = run_lb(bad, &out, &err);
    ck_assert_int_eq(status, 1);
    ck_assert_str_eq(err, harness_strf("%s: --admin-listen \"127.0.0.1:8080\": same address as "
                                       "listener \"web\" (\"127.0.0.1:8080\")\n",
                                       path));

    char *missing[] = {LB, "-c", (char *)path, "-a", NULL};
    status = run_lb(missing, &out, &err);
    ck_assert_int_eq(status, 2);
    ck_assert_str_eq(first_line(err), "lb: option -a (--admin-listen) needs an address");
    ck_assert_msg(strcasestr(err, "usage") != NULL, "stderr has no usage: '%s'", err);

    /* A long option may be abbreviated (getopt_long); an unknown one is named. */
    char *abbreviated[] = {LB, "-c", (char *)path, "--admin", NULL};
    status = run_lb(abbreviated, &out, &err);
    ck_assert_int_eq(status, 2);
    ck_assert_str_eq(first_line(err), "lb: option -a (--admin-listen) needs an address");
    char *unknown[] = {LB, "-c", (char *)path, "--admin-port", "1", NULL};
    status = run_lb(unknown, &out, &err);
    ck_assert_int_eq(status, 2);
    ck_assert_str_eq(first_line(err), "lb: unknown option --admin-port");
}
END_TEST

/* lb -c runs in the foreground and logs "TIMESTAMP info: listener web
 * listening on ADDR" (optionally followed by " (details)") to stderr. */
START_TEST(run_foreground)
{
    int lport = harness_free_port();
    int bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "http");
    struct harness_lb lb;
    harness_lb_start_json(&lb, valid_config(lport, bport), lport);
    const char *want = harness_strf("info: listener web listening on 127.0.0.1:%d", lport);
    ck_assert_msg(harness_log_wait(lb.log, want, 1, HARNESS_WAIT_MS), "no '%s' in %s", want,
                  lb.log);
    const char *line = harness_log_line(lb.log, want);
    regex_t re;
    const char *pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                          "info: listener web listening on 127\\.0\\.0\\.1:[0-9]+( \\(.*\\))?$";
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int match = regexec(&re, line, 0, NULL, 0);
    regfree(&re);
    ck_assert_msg(match == 0, "log line '%s' is not in the agreed format", line);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *check = harness_tcase("check");
    tcase_add_test(check, check_valid);
    tcase_add_test(check, check_unknown_key);
    tcase_add_test(check, check_bad_value);
    tcase_add_test(check, check_syntax_error);
    tcase_add_test(check, check_missing_file);
    tcase_add_test(check, check_not_regular_file);
    suite_add_tcase(s, check);

    TCase *flags = harness_tcase("flags");
    tcase_add_test(flags, flag_version);
    tcase_add_test(flags, flag_help);
    tcase_add_test(flags, flag_unknown);
    tcase_add_test(flags, flag_missing_config);
    tcase_add_test(flags, flag_admin_listen);
    suite_add_tcase(s, flags);

    TCase *run = harness_tcase("run");
    tcase_add_test(run, run_foreground);
    suite_add_tcase(s, run);
    return s;
}

LB_TEST_SUITE(cli_suite)
