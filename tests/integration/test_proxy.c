/* Integration: the PROXY protocol through a real lb. A listener with
 * "accept_proxy" takes a v1 or v2 header (whole or in pieces) and uses the
 * client it names (log, and the header lb sends on); anything else, or a
 * header that does not arrive within request_timeout_ms, closes the client
 * and is counted. A pool with "send_proxy" writes the header before the
 * client's bytes, which an echo backend sends back so the test sees them
 * byte for byte; its health checks send a LOCAL one. HAProxy from Debian
 * sends v2 in front of lb and parses v2 behind it. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "tests/harness.h"
#include "tests/test.h"

/* lb on a free port in front of one echo backend, with the admin API;
 * listener and pool keys as JSON text ("" for none). */
struct rig {
    struct harness_lb lb;
    int port, aport, eport;
};

static void rig_start(struct rig *r, const char *listener_keys, const char *pool_keys)
{
    r->eport = harness_free_port();
    harness_server("127.0.0.1", r->eport, harness_fn_echo, NULL);
    r->port = harness_free_port();
    r->aport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(r->port),
        .backends = harness_strf("{\"address\": \"%s\"}", harness_lo(r->eport)),
        .pool_extra = pool_keys});
    json_t *extra = harness_jparse(harness_strf("{%s}", listener_keys));
    const char *key;
    json_t *v;
    json_object_foreach(extra, key, v)
    {
        harness_jset(cfg, harness_strf("listeners.0.%s", key), json_incref(v));
    }
    json_decref(extra);
    harness_jset(cfg, "admin.listen", json_string(harness_lo(r->aport)));
    harness_lb_start_json(&r->lb, cfg, r->port);
}

/* Connects to port, sends what, half-closes, and reads everything back
 * until EOF into buf (cap bytes); how many came. *cport (when not NULL):
 * the client's own port. */
static size_t roundtrip(int port, const void *what, size_t len, char *buf, size_t cap, int *cport)
{
    int fd = harness_connect_ok("127.0.0.1", port);
    if (cport)
        *cport = harness_sock_port(fd);
    ck_assert(harness_send_all(fd, what, len, HARNESS_WAIT_MS));
    shutdown(fd, SHUT_WR);
    ssize_t n = harness_read_eof(fd, buf, cap, HARNESS_WAIT_MS);
    ck_assert_int_ge(n, 0);
    close(fd);
    return (size_t)n;
}

static void ck_bytes(const char *got, size_t got_len, const void *want, size_t want_len)
{
    ck_assert_msg(got_len == want_len && memcmp(got, want, want_len) == 0,
                  "got %zu bytes '%.*s', want %zu '%.*s'", got_len, (int)got_len, got, want_len,
                  (int)want_len, (const char *)want);
}

static long long proxy_rejected(int aport)
{
    struct harness_reply rep = harness_call(aport, "GET", "/api/v1/listeners", NULL, NULL);
    ck_assert_int_eq(rep.status, 200);
    ck_assert_ptr_nonnull(rep.json);
    return harness_jint(rep.json, "listeners.0.proxy_rejected");
}

/* A v1 header from the client names the client; lb's own v1 header to
 * the backend carries the same four fields, then the client's bytes. */
START_TEST(accept_v1_send_v1)
{
    struct rig r;
    rig_start(&r, "\"accept_proxy\": true", "\"send_proxy\": \"v1\", ");
    const char *hdr = "PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\n";
    const char *msg = harness_strf("%shello", hdr);
    char got[256];
    size_t n = roundtrip(r.port, msg, strlen(msg), got, sizeof(got), NULL);
    ck_bytes(got, n, msg, strlen(msg));
    ck_assert(harness_log_wait(r.lb.log, "client=192.0.2.7:5555 ", 1, HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(r.lb.log, "bytes_from_client=5 bytes_from_backend=49 "));
    ck_assert_int_eq(proxy_rejected(r.aport), 0);
    harness_lb_stop(&r.lb);
}
END_TEST

/* The v2 header of an IPv6 client, with a TLV, arriving in three pieces;
 * lb re-writes it as v2 without the TLV. */
static const unsigned char SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static size_t v2_tcp6(unsigned char *out, bool with_tlv)
{
    static const unsigned char addrs[36] = {
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, /* 2001:db8::7 */
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, /* 2001:db8::1 */
        0x1f, 0x90,                                                    /* 8080 */
        0x01, 0xbb};                                                   /* 443 */
    size_t n = 0;
    memcpy(out, SIG, 12);
    n = 12;
    out[n++] = 0x21; /* v2, PROXY */
    out[n++] = 0x21; /* TCP over IPv6 */
    unsigned len = 36 + (with_tlv ? 5 : 0);
    out[n++] = (unsigned char)(len >> 8);
    out[n++] = (unsigned char)len;
    memcpy(out + n, addrs, 36);
    n += 36;
    if (with_tlv) { /* PP2_TYPE_NOOP, 2 bytes */
        static const unsigned char tlv[5] = {0x04, 0x00, 0x02, 'x', 'y'};
        memcpy(out + n, tlv, 5);
        n += 5;
    }
    return n;
}

START_TEST(accept_v2_in_pieces_send_v2)
{
    struct rig r;
    rig_start(&r, "\"accept_proxy\": true", "\"send_proxy\": \"v2\", ");
    unsigned char in[128], want[128];
    size_t in_len = v2_tcp6(in, true), want_len = v2_tcp6(want, false);
    memcpy(in + in_len, "data", 4);
    memcpy(want + want_len, "data", 4);
    in_len += 4;
    want_len += 4;
    int fd = harness_connect_ok("127.0.0.1", r.port);
    size_t cuts[] = {5, 20, in_len};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert(harness_send_all(fd, in + off, cuts[i] - off, HARNESS_WAIT_MS));
        off = cuts[i];
        harness_sleep_ms(100);
    }
    shutdown(fd, SHUT_WR);
    char got[256];
    ssize_t n = harness_read_eof(fd, got, sizeof(got), HARNESS_WAIT_MS);
    close(fd);
    ck_assert_int_ge(n, 0);
    ck_bytes(got, (size_t)n, want, want_len);
    ck_assert(harness_log_wait(r.lb.log, "client=[2001:db8::7]:8080 ", 1, HARNESS_WAIT_MS));
    harness_lb_stop(&r.lb);
}
END_TEST

/* Without accept_proxy, send_proxy names the real client and the address
 * it connected to; UNKNOWN and LOCAL headers keep the real client too. */
START_TEST(send_proxy_names_the_real_client)
{
    struct rig r;
    rig_start(&r, "", "\"send_proxy\": \"v1\", ");
    int cport;
    char got[256];
    size_t n = roundtrip(r.port, "hi", 2, got, sizeof(got), &cport);
    const char *want = harness_strf("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nhi", cport, r.port);
    ck_bytes(got, n, want, strlen(want));
    harness_lb_stop(&r.lb);

    struct rig r2;
    rig_start(&r2, "\"accept_proxy\": true", "\"send_proxy\": \"v1\", ");
    unsigned char local[16 + 2];
    memcpy(local, SIG, 12);
    local[12] = 0x20; /* v2, LOCAL */
    local[13] = 0x00;
    local[14] = local[15] = 0;
    memcpy(local + 16, "ok", 2);
    const char *inputs[2] = {"PROXY UNKNOWN whatever\r\nok", (const char *)local};
    size_t lens[2] = {strlen(inputs[0]), sizeof(local)};
    for (int i = 0; i < 2; i++) {
        n = roundtrip(r2.port, inputs[i], lens[i], got, sizeof(got), &cport);
        want = harness_strf("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nok", cport, r2.port);
        ck_bytes(got, n, want, strlen(want));
    }
    ck_assert_int_eq(proxy_rejected(r2.aport), 0);
    harness_lb_stop(&r2.lb);
}
END_TEST

/* What is not a PROXY header closes the client before any backend is
 * involved, each counted and logged as "bad proxy header". */
START_TEST(accept_proxy_rejects_the_rest)
{
    struct rig r;
    rig_start(&r, "\"accept_proxy\": true", "");
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",   "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "\r\n\r\n\0\r\nQUIT\n\x31\x11\0\x0c",
    };
    size_t nbad = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < nbad; i++) {
        int fd = harness_connect_ok("127.0.0.1", r.port);
        size_t len = i == nbad - 1 ? 16 : strlen(bad[i]);
        ck_assert(harness_send_all(fd, bad[i], len, HARNESS_WAIT_MS));
        ck_assert_msg(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0, "input %zu: not closed", i);
        close(fd);
    }
    ck_assert(
        harness_log_wait(r.lb.log, "reason=\"bad proxy header\"", (int)nbad, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(r.lb.log, "backend=- "), (int)nbad);
    ck_assert_int_eq(proxy_rejected(r.aport), (long long)nbad);
    struct harness_reply rep = harness_call(r.aport, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(
        rep.body, harness_strf("lb_listener_proxy_rejected_total{listener=\"web\"} %zu\n", nbad)));
    /* A peer that connects and leaves without a byte is no error. */
    close(harness_connect_ok("127.0.0.1", r.port));
    ck_assert(harness_log_wait(r.lb.log, "reason=\"client closed\"", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(proxy_rejected(r.aport), (long long)nbad);
    harness_lb_stop(&r.lb);
}
END_TEST

/* A header still incomplete after request_timeout_ms closes the client. */
START_TEST(accept_proxy_times_out)
{
    struct rig r;
    rig_start(&r, "\"accept_proxy\": true, \"request_timeout_ms\": 300", "");
    int fd = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(fd, "PROXY TCP4 ", 11, HARNESS_WAIT_MS));
    long t0 = harness_now_ms();
    ck_assert(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0);
    long waited = harness_now_ms() - t0;
    ck_assert_msg(waited >= 250, "closed after %ld ms, before the timeout", waited);
    close(fd);
    ck_assert(harness_log_wait(r.lb.log, "reason=\"proxy header timeout\"", 1, HARNESS_WAIT_MS));
    ck_assert_int_eq(proxy_rejected(r.aport), 1);
    harness_lb_stop(&r.lb);
}
END_TEST

/* Around the header: one that is complete cancels the deadline (the
 * session outlives request_timeout_ms, and the client's bytes sent after a
 * pause still arrive); a stream that ends inside a header, and one that
 * turns bad after a good start, are rejected; and lb stops cleanly with a
 * header still incomplete (no leak under ASan). */
START_TEST(accept_proxy_edges)
{
    struct rig r;
    rig_start(&r, "\"accept_proxy\": true, \"request_timeout_ms\": 300", "");
    int fd = harness_connect_ok("127.0.0.1", r.port);
    const char *hdr = "PROXY TCP4 192.0.2.9 198.51.100.1 4000 443\r\n";
    ck_assert(harness_send_all(fd, hdr, strlen(hdr), HARNESS_WAIT_MS));
    harness_sleep_ms(600);
    ck_assert(harness_send_all(fd, "late", 4, HARNESS_WAIT_MS));
    shutdown(fd, SHUT_WR);
    char got[64];
    ssize_t n = harness_read_eof(fd, got, sizeof(got), HARNESS_WAIT_MS);
    close(fd);
    ck_bytes(got, (size_t)(n < 0 ? 0 : n), "late", 4);

    fd = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(fd, "PROXY TCP4 1.2", 14, HARNESS_WAIT_MS));
    harness_sleep_ms(50);
    shutdown(fd, SHUT_WR);
    ck_assert(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0);
    close(fd);

    fd = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(fd, "PROXY TCP4 1.2.3.4 ", 19, HARNESS_WAIT_MS));
    harness_sleep_ms(50);
    ck_assert(harness_send_all(fd, "5.6.7.8 1 2 3\r\n", 15, HARNESS_WAIT_MS));
    ck_assert(harness_wait_closed(fd, HARNESS_WAIT_MS) >= 0);
    close(fd);
    ck_assert(harness_log_wait(r.lb.log, "reason=\"bad proxy header\"", 2, HARNESS_WAIT_MS));
    ck_assert_int_eq(proxy_rejected(r.aport), 2);
    ck_assert_int_eq(harness_log_count(r.lb.log, "proxy header timeout"), 0);

    fd = harness_connect_ok("127.0.0.1", r.port);
    ck_assert(harness_send_all(fd, "PROXY TCP6 ::1", 14, HARNESS_WAIT_MS));
    harness_sleep_ms(50);
    ck_assert_int_eq(harness_lb_stop(&r.lb), 0);
    close(fd);
}
END_TEST

/* iphash picks by the PROXY header's client, not the peer (always
 * 127.0.0.1 here, which alone would always give one backend): each of 24
 * header addresses gets the same backend three times over, and they spread
 * over more than one. */
START_TEST(iphash_uses_the_proxied_client)
{
    static const char *const names[3] = {"n0", "n1", "n2"};
    json_t *backends = json_array();
    for (int i = 0; i < 3; i++) {
        int port = harness_free_port();
        harness_server("127.0.0.1", port, harness_fn_name, (void *)names[i]);
        json_array_append_new(backends, harness_backend_json(harness_lo(port), names[i]));
    }
    int lport = harness_free_port();
    json_t *cfg =
        harness_cfg(&(struct harness_conf){.listen = harness_lo(lport), .strategy = "iphash"});
    harness_jset(cfg, "pools.0.backends", backends);
    harness_jset(cfg, "listeners.0.accept_proxy", json_true());
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, lport);
    bool seen[3] = {false, false, false};
    for (int ip = 1; ip <= 24; ip++) {
        char first[8] = "";
        for (int round = 0; round < 3; round++) {
            const char *hdr =
                harness_strf("PROXY TCP4 10.0.%d.%d 127.0.0.1 1234 80\r\n", ip, ip * 7);
            /* No half-close: a client that ends its stream without a byte
             * while its backend connects has given up. */
            int fd = harness_connect_ok("127.0.0.1", lport);
            ck_assert(harness_send_all(fd, hdr, strlen(hdr), HARNESS_WAIT_MS));
            char got[16];
            ssize_t n = harness_read_eof(fd, got, sizeof(got) - 1, HARNESS_WAIT_MS);
            close(fd);
            got[n < 0 ? 0 : n] = '\0';
            ck_assert_msg(n == 3 && got[0] == 'n' && got[2] == '\n', "answer '%s'", got);
            if (round == 0)
                memcpy(first, got, 4);
            else
                ck_assert_str_eq(got, first);
        }
        seen[first[1] - '0'] = true;
    }
    ck_assert_msg(seen[0] + seen[1] + seen[2] >= 2, "24 clients all went to one backend");
    harness_lb_stop(&lb);
}
END_TEST

/* A backend that writes the first bytes of each connection to a file of
 * its own (arg: the directory), one file per connection. */
static void fn_record(int fd, void *arg)
{
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0)
        return;
    char path[600];
    snprintf(path, sizeof(path), "%s/conn-%d", (const char *)arg, (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) {
        fwrite(buf, 1, (size_t)n, f);
        fclose(f);
    }
}

/* The bytes of one connection fn_record wrote into dir, 0 when none yet. */
static size_t first_recorded(const char *dir, char *buf, size_t cap)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *e;
    while (n == 0 && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "conn-", 5) != 0)
            continue;
        FILE *f = fopen(harness_strf("%s/%s", dir, e->d_name), "r");
        if (f) {
            n = fread(buf, 1, cap, f);
            fclose(f);
        }
    }
    closedir(d);
    return n;
}

/* Health checks of a send_proxy pool send a LOCAL header first: v1
 * "PROXY UNKNOWN", v2 the 16-byte LOCAL one. */
START_TEST(health_check_sends_local)
{
    for (int v = 1; v <= 2; v++) {
        const char *dir = harness_strf("%s/rec%d", harness_dir(), v);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        int bport = harness_free_port();
        harness_server("127.0.0.1", bport, fn_record, (void *)dir);
        int port = harness_free_port();
        json_t *cfg = harness_cfg(&(struct harness_conf){
            .listen = harness_lo(port),
            .backends = harness_strf("{\"address\": \"%s\"}", harness_lo(bport)),
            .pool_extra = harness_strf("\"send_proxy\": \"v%d\", \"health_check\": {\"type\": "
                                       "\"tcp\", \"interval_ms\": 100, \"send_proxy\": true}, ",
                                       v)});
        struct harness_lb lb;
        harness_lb_start_json(&lb, cfg, port);
        const char *want = v == 1 ? "PROXY UNKNOWN\r\n" : "\r\n\r\n\0\r\nQUIT\n\x20\0\0\0";
        size_t want_len = v == 1 ? 15 : 16;
        char got[64];
        size_t got_len = 0;
        long until = harness_now_ms() + HARNESS_WAIT_MS;
        while (got_len == 0 && harness_now_ms() < until) {
            harness_sleep_ms(50);
            got_len = first_recorded(dir, got, sizeof(got));
        }
        ck_assert_msg(got_len > 0, "no check connection recorded");
        ck_bytes(got, got_len, want, want_len);
        harness_lb_stop(&lb);
    }
}
END_TEST

/* Real peers: HAProxy sends v2 in front of lb (lb logs the client HAProxy
 * names and passes it on in its own v1 header), and parses lb's v2 behind
 * it (it answers with the client address it read from it). */
START_TEST(haproxy_in_front_and_behind)
{
    if (access("/usr/sbin/haproxy", X_OK) != 0) {
        /* scripts/install-deps installs it; a machine without it cannot run this. */
        ck_abort_msg("haproxy is not installed (scripts/install-deps installs it)");
    }
    struct rig r;
    rig_start(&r, "\"accept_proxy\": true", "\"send_proxy\": \"v1\", ");
    int hfront = harness_free_port(), hback = harness_free_port(), lb2 = harness_free_port();
    const char *cfg = harness_write_file(
        "haproxy.cfg",
        harness_strf("global\n    nbthread 1\ndefaults\n    timeout connect 3s\n"
                     "    timeout client 10s\n    timeout server 10s\n"
                     "listen front\n    mode tcp\n    bind 127.0.0.1:%d\n"
                     "    server lb 127.0.0.1:%d send-proxy-v2\n"
                     "frontend back\n    mode http\n    bind 127.0.0.1:%d accept-proxy\n"
                     "    http-request return status 200 content-type text/plain "
                     "lf-string \"%%[src]:%%[src_port]\"\n",
                     hfront, r.port, hback));
    char *const argv[] = {"/usr/sbin/haproxy", "-f", (char *)cfg, "-db", NULL};
    harness_spawn(argv, harness_strf("%s/haproxy.log", harness_dir()), NULL);
    ck_assert(harness_wait_port("127.0.0.1", hfront, HARNESS_WAIT_MS));
    ck_assert(harness_wait_port("127.0.0.1", hback, HARNESS_WAIT_MS));

    int cport;
    char got[256];
    size_t len = roundtrip(hfront, "via haproxy", 11, got, sizeof(got), &cport);
    const char *want =
        harness_strf("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nvia haproxy", cport, hfront);
    ck_bytes(got, len, want, strlen(want));
    ck_assert(harness_log_wait(r.lb.log, harness_strf("client=127.0.0.1:%d ", cport), 1,
                               HARNESS_WAIT_MS));

    /* Behind: lb (send_proxy v2) in front of HAProxy's accept-proxy. */
    json_t *c2 = harness_cfg(
        &(struct harness_conf){.listen = harness_lo(lb2),
                               .backends = harness_strf("{\"address\": \"%s\"}", harness_lo(hback)),
                               .pool_extra = "\"send_proxy\": \"v2\", "});
    harness_jset(c2, "listeners.0.name", json_string("web2"));
    struct harness_lb lbb;
    harness_lb_start_json(&lbb, c2, lb2);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    len = roundtrip(lb2, req, strlen(req), got, sizeof(got) - 1, &cport);
    ck_assert_uint_gt(len, 0);
    got[len] = '\0';
    ck_assert_msg(strstr(got, "200") && strstr(got, harness_strf("\r\n\r\n127.0.0.1:%d", cport)),
                  "HAProxy answered:\n%s", got);
    harness_lb_stop(&lbb);
    harness_lb_stop(&r.lb);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = harness_tcase("proxy");
    tcase_add_test(tc, accept_v1_send_v1);
    tcase_add_test(tc, accept_v2_in_pieces_send_v2);
    tcase_add_test(tc, send_proxy_names_the_real_client);
    tcase_add_test(tc, accept_proxy_rejects_the_rest);
    tcase_add_test(tc, accept_proxy_times_out);
    tcase_add_test(tc, accept_proxy_edges);
    tcase_add_test(tc, iphash_uses_the_proxied_client);
    tcase_add_test(tc, health_check_sends_local);
    tcase_add_test(tc, haproxy_in_front_and_behind);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(proxy_suite)
