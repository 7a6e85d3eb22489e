/* Integration: `make install DESTDIR=... PREFIX=...` into the test's
 * folder, as a packager or an operator runs it: every file where it
 * belongs with its mode, the man pages well-formed for man-db (lexgrog
 * finds their NAME, groff warns about nothing), the systemd unit with the
 * install's paths, Type=notify and its hardening, accepted by
 * `systemd-analyze verify`, the example config good for `lb -t`, and an
 * /etc/lb/lb.json already there never overwritten. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

/* Runs make install into dir with these variables (NULL-terminated). */
static void make_install(const char *dir, const char *prefix)
{
    char *argv[] = {"/usr/bin/env",
                    "-u",
                    "MAKEFLAGS",
                    "-u",
                    "MAKELEVEL",
                    "-u",
                    "MFLAGS",
                    "make",
                    "-s",
                    "--no-print-directory",
                    "-C",
                    (char *)harness_repo_root(),
                    "install",
                    harness_strf("DESTDIR=%s", dir),
                    harness_strf("BUILD=%s", LB_BUILD_DIR),
                    prefix ? harness_strf("PREFIX=%s", prefix) : NULL,
                    NULL};
    const char *out = NULL, *err = NULL;
    int rc = harness_run(argv, &out, &err, 60000);
    ck_assert_msg(rc == 0, "make install exited %d: %s%s", rc, out, err);
}

static void expect_file(const char *path, mode_t mode)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0 && S_ISREG(st.st_mode), "%s was not installed", path);
    ck_assert_msg((st.st_mode & 07777) == mode, "%s has mode %o, want %o", path,
                  (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

static const char *run_out(char *const argv[], int want_rc)
{
    const char *out = NULL, *err = NULL;
    int rc = harness_run(argv, &out, &err, HARNESS_WAIT_MS);
    ck_assert_msg(rc == want_rc, "%s exited %d: %s%s", argv[0], rc, out, err);
    ck_assert_msg(err[0] == '\0', "%s wrote on stderr: %s", argv[0], err);
    return out;
}

START_TEST(install_files)
{
    const char *root = harness_strf("%s/root", harness_dir());
    make_install(root, "/usr");
    const char *sbin = harness_strf("%s/usr/sbin/lb", root);
    const char *man8 = harness_strf("%s/usr/share/man/man8/lb.8", root);
    const char *man5 = harness_strf("%s/usr/share/man/man5/lb.json.5", root);
    const char *unit = harness_strf("%s/usr/lib/systemd/system/lb.service", root);
    const char *conf = harness_strf("%s/etc/lb/lb.json", root);
    expect_file(sbin, 0755);
    expect_file(man8, 0644);
    expect_file(man5, 0644);
    expect_file(unit, 0644);
    expect_file(conf, 0644);
    expect_file(harness_strf("%s/etc/logrotate.d/lb", root), 0644);
    static const char *const docs[] = {
        "README.md",     "config.md",        "admin-api.md",         "fleet.md",
        "dashboard.png", "examples/lb.json", "examples/lb@.service", "examples/lb.logrotate"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        expect_file(harness_strf("%s/usr/share/doc/lb/%s", root, docs[i]), 0644);

    /* The binary is the build's; the example config is good. */
    char *version[] = {(char *)sbin, "-V", NULL};
    ck_assert_str_eq(run_out(version, 0), harness_strf("lb %s\n", LB_VERSION));
    char *check[] = {(char *)sbin, "-t", "-c", (char *)conf, NULL};
    ck_assert_str_eq(run_out(check, 0), "configuration ok\n");

    /* The man pages: man-db finds what they are, groff has no warning. */
    char *lex8[] = {"/usr/bin/lexgrog", (char *)man8, NULL};
    ck_assert_str_eq(run_out(lex8, 0),
                     harness_strf("%s: \"lb - TCP and HTTP/1.1 load balancer\"\n", man8));
    char *lex5[] = {"/usr/bin/lexgrog", (char *)man5, NULL};
    ck_assert_str_eq(run_out(lex5, 0),
                     harness_strf("%s: \"lb.json - configuration file of lb(8)\"\n", man5));
    const char *pages[] = {man8, man5};
    for (int i = 0; i < 2; i++) {
        char *groff[] = {"/usr/bin/groff", "-man", "-ww", "-z", (char *)pages[i], NULL};
        run_out(groff, 0);
    }

    /* The unit: the install's paths, notify, a user of its own, hardening. */
    const char *text = harness_read_file(unit);
    static const char *const lines[] = {
        "\nType=notify\n",
        "\nExecStartPre=/usr/sbin/lb -t -c /etc/lb/lb.json\n",
        "\nExecStart=/usr/sbin/lb -c /etc/lb/lb.json\n",
        "\nExecReload=/bin/kill -HUP $MAINPID\n",
        "\nUser=lb\n",
        "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n",
        "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
        "\nNoNewPrivileges=yes\n",
        "\nProtectSystem=strict\n",
        "\nPrivateTmp=yes\n",
        "\nLogsDirectory=lb\n",
        "\nNotifyAccess=all\n",
        "\nKillMode=control-group\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        ck_assert_msg(strstr(text, lines[i]), "lb.service has no line %s", lines[i] + 1);
    ck_assert_ptr_null(strstr(text, "@SBINDIR@"));
    if (access("/usr/bin/systemd-analyze", X_OK) == 0) {
        /* With the installed binary and man pages where verify looks. */
        char *copy = harness_strf("%s", "");
        const char *from = text;
        for (const char *at; (at = strstr(from, "/usr/sbin/lb")); from = at + 12)
            copy = harness_strf("%s%.*s%s", copy, (int)(at - from), from, sbin);
        copy = harness_strf("%s%s", copy, from);
        const char *file = harness_write_file("lb.service", copy);
        setenv("MANPATH", harness_strf("%s/usr/share/man", root), 1);
        char *verify[] = {"/usr/bin/systemd-analyze", "verify", (char *)file, NULL};
        const char *out = NULL, *err = NULL;
        int rc = harness_run(verify, &out, &err, 4 * HARNESS_WAIT_MS);
        unsetenv("MANPATH");
        ck_assert_msg(rc == 0 && out[0] == '\0' && err[0] == '\0',
                      "systemd-analyze verify: status %d: %s%s", rc, out, err);
    } else {
        fprintf(stderr, "SKIP %s: no systemd-analyze here (the unit was not verified)\n", __func__);
    }

    /* Again, over a config in use: it stays as it is. */
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"mine\": true}\n", f);
    fclose(f);
    make_install(root, "/usr");
    ck_assert_str_eq(harness_read_file(conf), "{\"mine\": true}\n");

    /* The default prefix: /usr/local, the unit saying so. */
    const char *local = harness_strf("%s/local", harness_dir());
    make_install(local, NULL);
    expect_file(harness_strf("%s/usr/local/sbin/lb", local), 0755);
    ck_assert_ptr_nonnull(
        strstr(harness_read_file(harness_strf("%s/usr/local/lib/systemd/system/lb.service", local)),
               "\nExecStart=/usr/local/sbin/lb -c /etc/lb/lb.json\n"));
}
END_TEST

static Suite *install_suite(void)
{
    Suite *s = suite_create("install");
    TCase *tc = harness_tcase("install");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, install_files);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(install_suite)
