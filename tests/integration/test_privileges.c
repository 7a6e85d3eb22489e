/* Integration: "user" and "group". lb started as root with "user":
 * "nobody" runs as nobody (/proc/PID/status) once its listeners and admin
 * API are bound, serves, reloads, and a reload that needs a new port below
 * 1024 fails with the reason; as root without "user" it warns; a user or
 * group the system does not know is a config error. The tests that start
 * lb as root skip themselves (passing, with a line) when not run as root. */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define LB LB_BUILD_DIR "/lb"
#define WARN_ROOT "warn: running as root; set \"user\" to drop privileges"

/* Returns from the test (which passes) when not root. */
#define SKIP_UNLESS_ROOT()                                                                         \
    do {                                                                                           \
        if (geteuid() != 0) {                                                                      \
            fprintf(stderr, "SKIP %s: needs root (lb must start as root to drop it)\n", __func__); \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* The value fields of "NAME:" in /proc/PID/status, e.g. "65534\t65534\t..." */
static const char *status_field(pid_t pid, const char *name)
{
    const char *text = harness_read_file(harness_strf("/proc/%ld/status", (long)pid));
    const char *key = harness_strf("\n%s:\t", name);
    const char *p = strstr(text, key);
    ck_assert_msg(p != NULL, "/proc/%ld/status has no %s line", (long)pid, name);
    p += strlen(key);
    return harness_strf("%.*s", (int)strcspn(p, "\n"), p);
}

/* A port below 1024 that nothing listens on (bound and closed now, as root). */
static int free_low_port(void)
{
    for (int port = 900; port < 1024; port++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        if (rc == 0)
            return port;
    }
    ck_abort_msg("no free port from 900 to 1023");
    return -1;
}

/* The config lb reads as nobody on a reload must be readable by it: the
 * temp dir (0700 from mkdtemp) is opened up. */
static void open_dir_to_all(void)
{
    ck_assert_msg(chmod(harness_dir(), 0755) == 0, "chmod %s", harness_dir());
}

/* SIGHUP, then the next "reload " line (ok or failed), whole. */
static const char *hup_line(struct harness_lb *lb)
{
    int before = harness_log_count(lb->log, "reload ");
    harness_lb_signal(lb, SIGHUP);
    ck_assert_msg(harness_log_wait(lb->log, "reload ", before + 1, HARNESS_WAIT_MS),
                  "no reload line after SIGHUP; log %s", lb->log);
    const char *text = harness_read_file(lb->log), *p = text;
    for (int i = 0; i <= before; i++)
        p = strstr(p, "reload ") + 1;
    p--;
    return harness_strf("%.*s", (int)strcspn(p, "\n"), p);
}

START_TEST(drops_to_nobody)
{
    SKIP_UNLESS_ROOT();
    struct passwd *pw = getpwnam("nobody");
    ck_assert_msg(pw != NULL, "this system has no user nobody");
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    open_dir_to_all();
    int bport = harness_free_port(), lport = harness_free_port(), aport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "echo");
    json_t *cfg = harness_cfg(
        &(struct harness_conf){.listen = harness_lo(lport),
                               .backends = harness_strf("{\"address\": \"127.0.0.1:%d\"}", bport)});
    harness_jset(cfg, "user", json_string("nobody"));
    harness_jset(cfg, "admin", json_pack("{s:s}", "listen", harness_lo(aport)));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    ck_assert(harness_log_wait(lb.log, "started (pid", 1, HARNESS_WAIT_MS));
    ck_assert(harness_wait_listening(aport, HARNESS_WAIT_MS));
    const char *want_uid =
        harness_strf("%ld\t%ld\t%ld\t%ld", (long)uid, (long)uid, (long)uid, (long)uid);
    const char *want_gid =
        harness_strf("%ld\t%ld\t%ld\t%ld", (long)gid, (long)gid, (long)gid, (long)gid);
    ck_assert_str_eq(status_field(lb.pid, "Uid"), want_uid);
    ck_assert_str_eq(status_field(lb.pid, "Gid"), want_gid);
    /* nobody's supplementary groups, not root's. */
    ck_assert_str_eq(status_field(lb.pid, "Groups"), harness_strf("%ld ", (long)gid));
    ck_assert_int_eq(harness_log_count(lb.log, harness_strf("info: running as user nobody (uid "
                                                            "%ld, gid %ld)",
                                                            (long)uid, (long)gid)),
                     1);
    ck_assert_int_eq(harness_log_count(lb.log, WARN_ROOT), 0);

    int fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "as nobody");
    close(fd);
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/pools", NULL, NULL);
    ck_assert_int_eq(r.status, 200);

    /* A reload (read as nobody) that adds a listener on a high port. */
    int lport2 = harness_free_port();
    harness_jappend(cfg, "listeners", harness_listener_json("web2", harness_lo(lport2), "app"));
    harness_lb_rewrite_json(&lb, cfg);
    ck_assert_str_eq(hup_line(&lb), "reload ok: generation 2 (listeners +1 -0, backends +0 -0)");
    fd = harness_connect_ok("127.0.0.1", lport2);
    harness_echo_roundtrip(fd, "after reload");
    close(fd);

    /* One that needs a port below 1024: refused, and said why. */
    int low = free_low_port();
    harness_jappend(cfg, "listeners", harness_listener_json("low", harness_lo(low), "app"));
    harness_lb_rewrite_json(&lb, cfg);
    ck_assert_str_eq(hup_line(&lb),
                     harness_strf("reload failed: listener low: cannot listen on 127.0.0.1:%d: "
                                  "Permission denied (lb runs as nobody; ports below 1024 need "
                                  "root or CAP_NET_BIND_SERVICE) (generation 2 stays in force)",
                                  low));
    ck_assert(!harness_port_listening(low));
    fd = harness_connect_ok("127.0.0.1", lport);
    harness_echo_roundtrip(fd, "still serving");
    close(fd);

    /* "user" applies at start only. */
    json_array_remove(json_object_get(cfg, "listeners"), 2);
    json_object_del(cfg, "user");
    harness_lb_rewrite_json(&lb, cfg);
    ck_assert_str_eq(hup_line(&lb), "reload failed: \"user\" and \"group\" apply at start only (lb "
                                    "runs as nobody): restart lb to change them (generation 2 "
                                    "stays in force)");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A binary upgrade of an lb that dropped to nobody: the new process runs
 * as nobody from its first instruction, yet serves a port below 1024, as
 * it takes the socket the root start bound. */
START_TEST(upgrade_keeps_low_port)
{
    SKIP_UNLESS_ROOT();
    HARNESS_SKIP_WRAPPED("the forked child is valgrind's until its exec, and valgrind cannot "
                         "create that child's log file as nobody");
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); /* the new lb ends up ours */
    open_dir_to_all();
    harness_lb_install_copy();
    int bport = harness_free_port(), low = free_low_port(), aport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "echo");
    json_t *cfg = harness_cfg(
        &(struct harness_conf){.listen = harness_lo(low),
                               .backends = harness_strf("{\"address\": \"127.0.0.1:%d\"}", bport)});
    harness_jset(cfg, "user", json_string("nobody"));
    harness_jset(cfg, "admin", json_pack("{s:s}", "listen", harness_lo(aport)));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, low);
    ck_assert(harness_log_wait(lb.log, "started (pid", 1, HARNESS_WAIT_MS));

    harness_lb_signal(&lb, SIGUSR2);
    pid_t pid = harness_lb_upgrade_pid(&lb, 1);
    ck_assert(harness_log_wait(lb.log, "serves the listening sockets", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_wait_exit(&lb, HARNESS_WAIT_MS), 0);
    int fd = harness_connect_ok("127.0.0.1", low);
    harness_echo_roundtrip(fd, "served by the new process");
    close(fd);
    struct passwd *pw = getpwnam("nobody");
    ck_assert(pw != NULL);
    ck_assert_str_eq(status_field(pid, "Uid"),
                     harness_strf("%ld\t%ld\t%ld\t%ld", (long)pw->pw_uid, (long)pw->pw_uid,
                                  (long)pw->pw_uid, (long)pw->pw_uid));
    ck_assert_int_eq(
        harness_jint(harness_call(aport, "GET", "/api/v1/status", NULL, NULL).json, "pid"), pid);
    ck_assert_int_eq(harness_log_count(lb.log, "info: running as user nobody"), 2);
    kill(pid, SIGTERM);
    ck_assert_int_eq(harness_wait_exit(pid, HARNESS_WAIT_MS), 0);
}
END_TEST

/* A reload reads the certificates and keys again, as nobody: a key only
 * root can read (read at start, as root) fails it, naming the file; once
 * readable, the reload goes through. */
START_TEST(reload_reads_keys_as_user)
{
    SKIP_UNLESS_ROOT();
    open_dir_to_all();
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *cert =
        harness_pki_issue(&pki, "localhost", &(struct harness_cert_opts){.sans = "localhost"});
    const char *key = harness_pki_key(cert);
    ck_assert(chmod(pki.dir, 0755) == 0 && chmod(cert, 0644) == 0 && chmod(key, 0600) == 0);
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport),
                                                     .backends = "{\"address\": \"127.0.0.1:9\"}"});
    harness_jset(cfg, "user", json_string("nobody"));
    harness_jset(cfg, "listeners.0.tls",
                 harness_jparse(harness_strf("{\"certificates\": [{\"cert\": \"%s\", \"key\": "
                                             "\"%s\"}]}",
                                             cert, key)));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    ck_assert(harness_log_wait(lb.log, "started (pid", 1, HARNESS_WAIT_MS));
    const char *line = hup_line(&lb);
    const char *head = harness_strf("reload failed: %s:", lb.config);
    const char *tail = harness_strf(": listeners[0].tls: %s: cannot read: Permission denied "
                                    "(generation 1 stays in force)",
                                    key);
    ck_assert_msg(strncmp(line, head, strlen(head)) == 0 && strlen(line) > strlen(tail) &&
                      strcmp(line + strlen(line) - strlen(tail), tail) == 0,
                  "want '%s...%s', got: %s", head, tail, line);
    ck_assert(chmod(key, 0644) == 0);
    ck_assert_str_eq(hup_line(&lb), "reload ok: generation 2 (listeners +0 -0, backends +0 -0)");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* "group" names the group instead of the user's primary one. */
START_TEST(group_named)
{
    SKIP_UNLESS_ROOT();
    struct group *gr = getgrnam("nogroup");
    ck_assert_msg(gr != NULL, "this system has no group nogroup");
    gid_t gid = gr->gr_gid;
    /* daemon's primary group is daemon, not nogroup (Debian). */
    ck_assert_msg(getpwnam("daemon") != NULL, "this system has no user daemon");
    uid_t uid = getpwnam("daemon")->pw_uid;
    ck_assert(getpwnam("daemon")->pw_gid != gid);
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport),
                                                     .backends = "{\"address\": \"127.0.0.1:9\"}"});
    harness_jset(cfg, "user", json_string("daemon"));
    harness_jset(cfg, "group", json_string("nogroup"));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    ck_assert(harness_log_wait(lb.log, "started (pid", 1, HARNESS_WAIT_MS));
    ck_assert_str_eq(status_field(lb.pid, "Uid"), harness_strf("%ld\t%ld\t%ld\t%ld", (long)uid,
                                                               (long)uid, (long)uid, (long)uid));
    ck_assert_str_eq(status_field(lb.pid, "Gid"), harness_strf("%ld\t%ld\t%ld\t%ld", (long)gid,
                                                               (long)gid, (long)gid, (long)gid));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A drop that the system refuses is fatal at start: lb started as nobody
 * (by setpriv) cannot become daemon. */
START_TEST(drop_refused_is_fatal)
{
    SKIP_UNLESS_ROOT();
    if (access("/usr/bin/setpriv", X_OK) != 0) {
        fprintf(stderr, "SKIP %s: needs /usr/bin/setpriv (util-linux)\n", __func__);
        return;
    }
    open_dir_to_all();
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport),
                                                     .backends = "{\"address\": \"127.0.0.1:9\"}"});
    harness_jset(cfg, "user", json_string("daemon"));
    const char *path = harness_write_file("daemon.json", harness_jtext(cfg));
    char *argv[] = {"/usr/bin/setpriv",
                    "--reuid=nobody",
                    "--regid=nogroup",
                    "--clear-groups",
                    LB,
                    "-c",
                    (char *)path,
                    NULL};
    const char *out, *err;
    ck_assert_int_eq(harness_run(argv, &out, &err, HARNESS_WAIT_MS), 1);
    const char *want = "error: cannot drop privileges: initgroups(daemon): Operation not "
                       "permitted\n";
    size_t n = strlen(err), w = strlen(want);
    ck_assert_msg(n >= w && strcmp(err + n - w, want) == 0, "stderr: %s", err);
    ck_assert(strstr(err, "started (pid") == NULL);
    ck_assert(!harness_port_listening(lport));
}
END_TEST

START_TEST(root_without_user_warns)
{
    SKIP_UNLESS_ROOT();
    int lport = harness_free_port();
    struct harness_lb lb;
    harness_lb_start_json(
        &lb,
        harness_cfg(&(struct harness_conf){.listen = harness_lo(lport),
                                           .backends = "{\"address\": \"127.0.0.1:9\"}"}),
        lport);
    ck_assert(harness_log_wait(lb.log, "started (pid", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, WARN_ROOT), 1);
    ck_assert_str_eq(status_field(lb.pid, "Uid"), "0\t0\t0\t0");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* Runs `lb -t -c` and `lb -c` on text; both must fail with want. */
static void expect_config_error(const char *text, const char *want_after_path)
{
    const char *path = harness_write_file("bad.json", text);
    const char *want = harness_strf("%s:%s\n", path, want_after_path);
    char *check[] = {LB, "-t", "-c", (char *)path, NULL};
    char *start[] = {LB, "-c", (char *)path, NULL};
    const char *out, *err;
    ck_assert_int_eq(harness_run(check, &out, &err, HARNESS_WAIT_MS), 1);
    ck_assert_str_eq(out, "");
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(harness_run(start, &out, &err, HARNESS_WAIT_MS), 1);
    ck_assert_str_eq(err, want);
}

#define LISTENERS_AND_POOLS                                                                        \
    "\"listeners\": [{\"name\": \"web\", \"listen\": \"127.0.0.1:8080\", \"pool\": \"app\"}],\n"   \
    " \"pools\": [{\"name\": \"app\", \"backends\": [{\"address\": \"127.0.0.1:9001\"}]}]}\n"

START_TEST(unknown_user)
{
    expect_config_error("{\"user\": \"no-such-user-lb\",\n " LISTENERS_AND_POOLS,
                        "1:10: user: unknown user \"no-such-user-lb\"");
}
END_TEST

START_TEST(unknown_group)
{
    expect_config_error(
        "{\"user\": \"nobody\", \"group\": \"no-such-group-lb\",\n " LISTENERS_AND_POOLS,
        "1:29: group: unknown group \"no-such-group-lb\"");
}
END_TEST

START_TEST(group_without_user)
{
    expect_config_error("{\"group\": \"nogroup\",\n " LISTENERS_AND_POOLS,
                        "1:11: group: \"group\" needs \"user\"");
}
END_TEST

static Suite *privileges_suite(void)
{
    Suite *s = suite_create("privileges");
    TCase *tc = harness_tcase("privileges");
    tcase_add_test(tc, drops_to_nobody);
    tcase_add_test(tc, upgrade_keeps_low_port);
    tcase_add_test(tc, reload_reads_keys_as_user);
    tcase_add_test(tc, group_named);
    tcase_add_test(tc, drop_refused_is_fatal);
    tcase_add_test(tc, root_without_user_warns);
    tcase_add_test(tc, unknown_user);
    tcase_add_test(tc, unknown_group);
    tcase_add_test(tc, group_without_user);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(privileges_suite)
