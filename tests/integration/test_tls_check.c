/* Integration: https health checks through a real lb against real HTTPS
 * backends (Node's https module, tests/http/node-https-backend.js) with
 * certificates from the harness's PKI. A backend answering 200 with the
 * right CA and server_name is up (the check sent the SNI and the http
 * check's request); 500 takes it down with "https status 500"; a wrong
 * server_name, an unknown CA, a silent backend and a plain-HTTP backend
 * each take it down with their TLS reason, in the log and in the admin
 * API's last_error, while lb goes on serving; "verify": false accepts a
 * self-signed backend; a reload that changes the TLS settings starts a new
 * check, one that changes nothing (or only the files' contents) keeps it
 * running with the reloaded contexts. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/harness/pki.h"
#include "tests/test.h"

/* The rig: lb with a listener on lport to pool "app" (the backends under
 * test, with an https check), a second listener on pport to pool "plain"
 * (a demo backend in name mode, no check: proves lb still serves) and the
 * admin API on aport. */
struct rig {
    int lport, pport, aport;
    struct harness_lb lb;
    json_t *cfg;
};

/* Starts node-https-backend.js on a free port answering status, with
 * cert (and its key beside it); *log is the file of its request lines. */
static int node_https_start(const char *cert, const char *key, int status, const char **log)
{
    int port = harness_free_port();
    *log = harness_strf("%s/node-https-%d.log", harness_dir(), port);
    harness_write_file(harness_strf("node-https-%d.log", port), "");
    char *argv[] = {"/usr/bin/node",
                    (char *)harness_strf("%s/../tests/http/node-https-backend.js", LB_BUILD_DIR),
                    (char *)harness_strf("%d", port),
                    (char *)cert,
                    (char *)key,
                    (char *)harness_strf("%d", status),
                    (char *)*log,
                    NULL};
    harness_spawn(argv, harness_strf("%s/node-https-%d.out", harness_dir(), port), NULL);
    ck_assert_msg(harness_wait_listening(port, HARNESS_WAIT_MS),
                  "node https backend not listening");
    return port;
}

/* The checks' timeout: 300 ms, times harness_slow() (a handshake under
 * valgrind takes longer than 300 ms). */
#define CHECK_TIMEOUT_MS (300 * harness_slow())

/* An https "health_check" on /healthz: rise 1, fall 1, every 100 ms,
 * timeout CHECK_TIMEOUT_MS; verify < 0 leaves the key out. */
static json_t *https_check(int verify)
{
    json_t *c = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i}", "type", "https", "path", "/healthz",
                          "interval_ms", 100, "timeout_ms", CHECK_TIMEOUT_MS, "rise", 1, "fall", 1);
    if (verify >= 0)
        json_object_set_new(c, "verify", json_boolean(verify));
    return c;
}

/* The pool's "tls" for its checks only ("enabled": false: the traffic
 * stays plain); ca and server_name NULL leave the key out. */
static json_t *check_tls(const char *ca, const char *server_name)
{
    json_t *t = json_pack("{s:b}", "enabled", 0);
    if (ca)
        json_object_set_new(t, "ca", json_string(ca));
    if (server_name)
        json_object_set_new(t, "server_name", json_string(server_name));
    return t;
}

/* The rig's config with backend b1 on bport under the https check (tls
 * may be NULL: no pool "tls"); not started. */
static void rig_cfg(struct rig *r, int bport, json_t *tls, json_t *check)
{
    r->lport = harness_free_port();
    r->pport = harness_free_port();
    r->aport = harness_free_port();
    r->cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(r->lport)});
    harness_jset(r->cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(bport), "b1"), NULL));
    if (tls)
        harness_jset(r->cfg, "pools.0.tls", tls);
    harness_jset(r->cfg, "pools.0.health_check", check);
    int nport = harness_free_port();
    harness_backend("127.0.0.1", nport, "n1", "name");
    harness_jappend(r->cfg, "listeners",
                    harness_listener_json("side", harness_lo(r->pport), "plain"));
    harness_jappend(
        r->cfg, "pools",
        harness_pool_json("plain", NULL,
                          harness_jarray(harness_backend_json(harness_lo(nport), "n1"), NULL)));
    harness_jset(r->cfg, "admin.listen", json_string(harness_lo(r->aport)));
}

static void rig_go(struct rig *r, int bport, json_t *tls, json_t *check)
{
    rig_cfg(r, bport, tls, check);
    harness_lb_start_json(&r->lb, r->cfg, r->lport);
    ck_assert_msg(harness_wait_listening(r->aport, HARNESS_WAIT_MS), "admin API not listening");
}

/* b1's "health" object from the admin API. */
static json_t *b1_health(const struct rig *r)
{
    struct harness_reply rep =
        harness_call(r->aport, "GET", "/api/v1/pools/app/backends/b1", NULL, NULL);
    ck_assert_msg(rep.status == 200 && rep.json, "GET b1: %d %s", rep.status, rep.body);
    return harness_jget(rep.json, "health");
}

/* Waits (bounded) until b1 has had at least n checks counted as the
 * admin API shows them: consecutive successes + failures >= n after the
 * first check. Returns its health then. */
static json_t *b1_checked(const struct rig *r, long long n)
{
    long end = harness_now_ms() + HARNESS_WAIT_MS;
    for (;;) {
        json_t *h = b1_health(r);
        if (!json_is_null(harness_jget(h, "last_check")) &&
            harness_jint(h, "consecutive_successes") + harness_jint(h, "consecutive_failures") >= n)
            return h;
        ck_assert_msg(harness_now_ms() < end, "b1 not checked %lld times: %s", n, harness_jtext(h));
        harness_sleep_ms(20);
    }
}

/* Asserts b1 went down once with reason (the log line and last_error). */
static void assert_down(struct rig *r, const char *reason)
{
    const char *line = harness_strf("warn: pool app backend b1 DOWN: %s (1/1 failures)", reason);
    ck_assert_msg(harness_log_wait(r->lb.log, line, 1, HARNESS_WAIT_MS), "no '%s' in log %s", line,
                  r->lb.log);
    json_t *h = b1_health(r);
    ck_assert_str_eq(harness_jstr(h, "checks"), "https");
    ck_assert_str_eq(harness_jstr(h, "status"), "down");
    ck_assert_str_eq(harness_jstr(h, "last_error"), reason);
    /* lb goes on serving its other pool. */
    ck_assert_str_eq(harness_fetch_name(NULL, "127.0.0.1", r->pport), "n1");
}

/* The PKI's server certificate for app.test (and its key). */
static const char *app_cert(struct harness_pki *pki)
{
    return harness_pki_issue(pki, "app", &(struct harness_cert_opts){.sans = "app.test"});
}

START_TEST(https_check_up)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *cert = app_cert(&pki), *log;
    int bport = node_https_start(cert, harness_pki_key(cert), 200, &log);
    struct rig r;
    rig_go(&r, bport, check_tls(pki.ca_cert, "app.test"), https_check(-1));
    ck_assert(harness_log_wait(r.lb.log,
                               harness_strf("info: pool app: https health checks every 100 ms "
                                            "(timeout %d ms, rise 1, fall 1)",
                                            CHECK_TIMEOUT_MS),
                               1, HARNESS_WAIT_MS));
    json_t *h = b1_checked(&r, 3);
    ck_assert_str_eq(harness_jstr(h, "checks"), "https");
    ck_assert_str_eq(harness_jstr(h, "status"), "up");
    ck_assert(json_is_null(harness_jget(h, "last_error")));
    ck_assert_int_eq(harness_jint(h, "consecutive_failures"), 0);
    ck_assert_int_eq(harness_jint(h, "transitions"), 0);
    /* The http check's request, through TLS, with the SNI. */
    const char *want = harness_strf("GET /healthz host=%s sni=app.test\n", harness_lo(bport));
    ck_assert_msg(strncmp(harness_read_file(log), want, strlen(want)) == 0, "node saw:\n%s",
                  harness_read_file(log));
    ck_assert_int_eq(harness_log_count(r.lb.log, " DOWN: "), 0);
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

START_TEST(https_500_down)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *cert = app_cert(&pki), *log;
    int bport = node_https_start(cert, harness_pki_key(cert), 500, &log);
    struct rig r;
    rig_go(&r, bport, check_tls(pki.ca_cert, "app.test"), https_check(-1));
    assert_down(&r, "https status 500");
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

START_TEST(wrong_server_name_down)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *cert = app_cert(&pki), *log;
    int bport = node_https_start(cert, harness_pki_key(cert), 200, &log);
    struct rig r;
    rig_go(&r, bport, check_tls(pki.ca_cert, "other.test"), https_check(-1));
    assert_down(&r, "tls handshake failed: certificate verify failed: hostname mismatch");
    ck_assert_str_eq(harness_read_file(log), ""); /* no request went out */
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

START_TEST(unknown_ca_down)
{
    struct harness_pki pki, other;
    harness_pki_init(&pki);
    harness_pki_init(&other);
    const char *cert = app_cert(&pki), *log;
    int bport = node_https_start(cert, harness_pki_key(cert), 200, &log);
    struct rig r;
    rig_go(&r, bport, check_tls(other.ca_cert, "app.test"), https_check(-1));
    assert_down(&r, "tls handshake failed: certificate verify failed: unable to get local issuer "
                    "certificate");
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

/* A self-signed certificate for self.test made with the openssl tool
 * (the PKI signs everything with its CA); its key is beside it. */
static const char *self_signed(void)
{
    const char *cert = harness_strf("%s/self.pem", harness_dir());
    const char *key = harness_strf("%s/self.key", harness_dir());
    char *argv[] = {"/usr/bin/openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=self.test",
                    "-addext",
                    "subjectAltName=DNS:self.test",
                    "-keyout",
                    (char *)key,
                    "-out",
                    (char *)cert,
                    NULL};
    const char *out, *err;
    ck_assert_msg(harness_run(argv, &out, &err, HARNESS_WAIT_MS) == 0, "openssl req: %s", err);
    return cert;
}

START_TEST(self_signed_verify_false_up)
{
    const char *cert = self_signed(), *log;
    int bport = node_https_start(cert, harness_strf("%s/self.key", harness_dir()), 200, &log);
    struct rig r;
    /* No pool "tls" at all: the system's CAs, no server_name, verify off. */
    rig_go(&r, bport, NULL, https_check(0));
    json_t *h = b1_checked(&r, 2);
    ck_assert_str_eq(harness_jstr(h, "status"), "up");
    ck_assert(json_is_null(harness_jget(h, "last_error")));
    ck_assert_int_eq(harness_log_count(r.lb.log, " DOWN: "), 0);
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

START_TEST(self_signed_verify_on_down)
{
    const char *cert = self_signed(), *log;
    int bport = node_https_start(cert, harness_strf("%s/self.key", harness_dir()), 200, &log);
    struct rig r;
    rig_go(&r, bport, check_tls(NULL, "self.test"), https_check(-1));
    assert_down(&r, "tls handshake failed: certificate verify failed: self-signed certificate");
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

START_TEST(silent_backend_handshake_timeout)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    int bport = harness_free_port();
    harness_server("127.0.0.1", bport, harness_fn_hold, NULL);
    struct rig r;
    rig_go(&r, bport, check_tls(pki.ca_cert, "app.test"), https_check(-1));
    assert_down(&r, harness_strf("tls handshake timed out after %d ms", CHECK_TIMEOUT_MS));
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

/* A plain-HTTP server's answer to a ClientHello (nginx's, Node's): 400 in
 * the clear, then the close. */
static void fn_plain_400(int fd, void *arg)
{
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    char buf[4096];
    (void)arg;
    if (read(fd, buf, sizeof(buf)) > 0)
        harness_write_full(fd, resp, sizeof(resp) - 1);
}

START_TEST(plain_http_backend_down)
{
    struct harness_pki pki;
    harness_pki_init(&pki);
    int bport = harness_free_port();
    harness_server("127.0.0.1", bport, fn_plain_400, NULL);
    struct rig r;
    rig_go(&r, bport, check_tls(pki.ca_cert, "app.test"), https_check(-1));
    assert_down(&r, "tls handshake failed: wrong version number");
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

/* Rewrites lb's config with r->cfg, sends SIGHUP and waits for reload
 * generation gen. */
static void reload(struct rig *r, int gen)
{
    harness_lb_rewrite_json(&r->lb, r->cfg);
    harness_lb_signal(&r->lb, SIGHUP);
    ck_assert_msg(harness_log_wait(r->lb.log, harness_strf("info: reload ok: generation %d", gen),
                                   1, HARNESS_WAIT_MS),
                  "reload %d failed; log %s", gen, r->lb.log);
}

/* Waits (bounded) until b1's status is want; returns its health then. */
static json_t *b1_wait_status(const struct rig *r, const char *want)
{
    long end = harness_now_ms() + HARNESS_WAIT_MS;
    for (;;) {
        json_t *h = b1_health(r);
        if (strcmp(harness_jstr(h, "status"), want) == 0)
            return h;
        ck_assert_msg(harness_now_ms() < end, "b1 not %s: %s; log %s", want, harness_jtext(h),
                      r->lb.log);
        harness_sleep_ms(20);
    }
}

/* Reloads and the check: one that changes nothing, or only the contents
 * of the CA file, keeps it running (its run of successes goes on right
 * after the reload, and it logs its own UP again), and its next
 * connection uses the reloaded CA; one that changes server_name or verify
 * starts a new check (transitions start over, up without an UP line). */
START_TEST(reload_keeps_or_replaces_check)
{
    struct harness_pki pki, other;
    harness_pki_init(&pki);
    harness_pki_init(&other);
    const char *cert = app_cert(&pki), *log;
    const char *good_ca = harness_read_file(pki.ca_cert);
    const char *ca = harness_write_file("ca-copy.pem", good_ca);
    int bport = node_https_start(cert, harness_pki_key(cert), 200, &log);
    struct rig r;
    rig_go(&r, bport, check_tls(ca, "app.test"), https_check(-1));
    long long before = harness_jint(b1_checked(&r, 3), "consecutive_successes");

    /* Nothing changed: kept (a new check would be at its first or second
     * success, one every 100 ms, not at 3 or more). */
    reload(&r, 2);
    ck_assert_int_ge(harness_jint(b1_health(&r), "consecutive_successes"), before);

    /* Another CA under the same name: kept, and its next check uses it.
     * That next check fails (the backend's certificate is not of that CA)
     * and may come before the API is asked: then the run of successes is
     * over and only the failure shows. */
    harness_write_file("ca-copy.pem", harness_read_file(other.ca_cert));
    reload(&r, 3);
    json_t *kept = b1_health(&r);
    if (harness_jint(kept, "consecutive_successes") < before)
        ck_assert_int_ge(harness_jint(kept, "consecutive_failures"), 1);
    ck_assert_msg(harness_log_wait(r.lb.log,
                                   "warn: pool app backend b1 DOWN: tls handshake failed: "
                                   "certificate verify failed: unable to get local issuer "
                                   "certificate (1/1 failures)",
                                   1, HARNESS_WAIT_MS),
                  "the reloaded CA was not used; log %s", r.lb.log);
    harness_write_file("ca-copy.pem", good_ca);
    reload(&r, 4);
    ck_assert_msg(harness_log_wait(r.lb.log,
                                   "info: pool app backend b1 UP: https status 200 (1/1 successes)",
                                   1, HARNESS_WAIT_MS),
                  "the kept check did not come back up; log %s", r.lb.log);
    ck_assert_int_eq(harness_jint(b1_health(&r), "transitions"), 2);

    /* Another server_name: a new check, whose first transition this is. */
    harness_jset(r.cfg, "pools.0.tls.server_name", json_string("other.test"));
    reload(&r, 5);
    ck_assert_msg(harness_log_wait(r.lb.log,
                                   "warn: pool app backend b1 DOWN: tls handshake failed: "
                                   "certificate verify failed: hostname mismatch (1/1 failures)",
                                   1, HARNESS_WAIT_MS),
                  "no hostname mismatch; log %s", r.lb.log);
    ck_assert_int_eq(harness_jint(b1_health(&r), "transitions"), 1);

    /* verify off: a new check again, up from the start. */
    harness_jset(r.cfg, "pools.0.health_check.verify", json_false());
    reload(&r, 6);
    json_t *h = b1_wait_status(&r, "up");
    ck_assert_int_eq(harness_jint(h, "transitions"), 0);
    h = b1_checked(&r, 2);
    ck_assert_str_eq(harness_jstr(h, "status"), "up");
    ck_assert(json_is_null(harness_jget(h, "last_error")));
    ck_assert_int_eq(harness_log_count(r.lb.log, " UP: "), 1);
    ck_assert_int_eq(harness_log_count(r.lb.log, " DOWN: "), 2);
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
}
END_TEST

static Suite *tls_check_suite(void)
{
    Suite *s = suite_create("tls_check");
    TCase *tc = harness_tcase("tls_check");
    tcase_add_test(tc, https_check_up);
    tcase_add_test(tc, https_500_down);
    tcase_add_test(tc, wrong_server_name_down);
    tcase_add_test(tc, unknown_ca_down);
    tcase_add_test(tc, self_signed_verify_false_up);
    tcase_add_test(tc, self_signed_verify_on_down);
    tcase_add_test(tc, silent_backend_handshake_timeout);
    tcase_add_test(tc, plain_http_backend_down);
    tcase_add_test(tc, reload_keeps_or_replaces_check);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(tls_check_suite)
