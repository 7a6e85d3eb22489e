/* Integration: DNS, against a real DNS server the test starts (Debian's
 * dnsmasq, on a loopback port, authoritative for "test." so unknown names
 * get NXDOMAIN). DNS discovery: A records added and removed at runtime
 * become and stop being backends within the refresh, with the state of
 * those that stay carried over; SRV weights and priorities honoured (a
 * higher priority stands by until the lower one has no backend left); a
 * server that stops answering keeps the last set, logged once. Backend
 * host names: resolved without blocking at start, by `lb -t` and at
 * reload (which waits for them; a name that does not resolve fails the
 * reload whole, with where it was written, while traffic flows). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tests/test.h"
#include "tests/harness.h"

#define DNS_TCASE_TIMEOUT 90
#define REFRESH_MS 200

struct dnsmasq {
    pid_t pid;
    int port;
    const char *hosts; /* its --addn-hosts file, re-read on SIGHUP */
    const char *log;
    const char *const *extra; /* more options (NULL-ended), e.g. --srv-host= */
    int ttl;                  /* of its answers (--local-ttl) */
};

static void setup(void)
{
    harness_setup();
}

static void teardown(void)
{
    harness_teardown();
}

/* Starts dnsmasq on 127.0.0.1:d->port serving d->hosts (and d->extra),
 * nothing else: no /etc/hosts, no upstream, no config file, in the
 * foreground as root (it re-reads the hosts file in the test's folder). */
static void dnsmasq_start(struct dnsmasq *d)
{
    char *argv[32];
    int n = 0;
    argv[n++] = "/usr/sbin/dnsmasq";
    argv[n++] = "--keep-in-foreground";
    argv[n++] = "--conf-file=/dev/null";
    argv[n++] = "--no-resolv";
    argv[n++] = "--no-hosts";
    argv[n++] = "--no-poll";
    argv[n++] = "--bind-interfaces";
    argv[n++] = "--listen-address=127.0.0.1";
    argv[n++] = "--user=root";
    argv[n++] = "--pid-file=";
    argv[n++] = "--local=/test/";
    argv[n++] = harness_strf("--local-ttl=%d", d->ttl);
    argv[n++] = harness_strf("--port=%d", d->port);
    argv[n++] = harness_strf("--addn-hosts=%s", d->hosts);
    for (size_t i = 0; d->extra && d->extra[i] && n < 31; i++)
        argv[n++] = (char *)d->extra[i];
    argv[n] = NULL;
    if (!d->log)
        d->log = harness_strf("%s/dnsmasq-%d.log", harness_dir(), d->port);
    d->pid = harness_spawn(argv, d->log, NULL);
    ck_assert_msg(harness_wait_port("127.0.0.1", d->port, HARNESS_WAIT_MS),
                  "dnsmasq never listened on %d; log: %s", d->port, harness_read_file(d->log));
}

static void dnsmasq_stop(struct dnsmasq *d)
{
    kill(d->pid, SIGTERM);
    ck_assert_int_ge(harness_wait_exit(d->pid, HARNESS_WAIT_MS), 0);
    d->pid = -1;
}

/* Rewrites the hosts file and has dnsmasq read it again. */
static void dnsmasq_hosts(struct dnsmasq *d, const char *text)
{
    char *tmp = harness_strf("%s.new", d->hosts);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(rename(tmp, d->hosts), 0);
    kill(d->pid, SIGHUP);
}

/* The ids of pool app's backends as the API lists them, joined by ",". */
static const char *pool_ids(int aport)
{
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    json_t *list = harness_jget(r.json, "backends");
    char *out = harness_strf("%s", "");
    for (size_t i = 0; i < json_array_size(list); i++)
        out = harness_strf("%s%s%s", out, i ? "," : "",
                           json_string_value(json_object_get(json_array_get(list, i), "id")));
    return out;
}

/* Waits (bounded) until the API lists exactly ids; fails with what it
 * listed last. */
static void wait_ids(int aport, const char *ids)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    const char *got;
    while (strcmp(got = pool_ids(aport), ids) != 0 && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert_msg(strcmp(got, ids) == 0, "pool app lists \"%s\", want \"%s\"", got, ids);
}

static int count_of(const char *list, const char *name)
{
    int n = 0;
    size_t len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += len)
        if ((p == list || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
            n++;
    return n;
}

/* The usual config with an admin listener, the root "resolvers" set to
 * dnsmasq and BACKENDS (JSON text) in pool app. */
static json_t *dns_cfg(int lport, int aport, int dport, const char *strategy, const char *backends)
{
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport), .strategy = strategy, .backends = backends});
    harness_jset(cfg, "admin", json_pack("{s:s}", "listen", harness_lo(aport)));
    harness_jset(cfg, "resolvers", harness_jarray(json_string(harness_lo(dport)), NULL));
    return cfg;
}

static void lb_start(struct harness_lb *lb, json_t *cfg, int lport, int aport)
{
    harness_lb_start_json(lb, cfg, lport);
    ck_assert_msg(harness_log_wait(lb->log, "started (pid", 1, HARNESS_WAIT_MS),
                  "lb never logged its start; log %s", lb->log);
    ck_assert(harness_wait_listening(aport, HARNESS_WAIT_MS));
}

START_TEST(dns_a_records_follow_the_server)
{
    int lport = harness_free_port(), aport = harness_free_port(), bport = harness_free_port();
    struct dnsmasq d = {.port = harness_free_port()};
    d.hosts = harness_write_file("hosts", "127.0.0.11 web.test\n127.0.0.12 web.test\n");
    dnsmasq_start(&d);
    harness_server("127.0.0.11", bport, harness_fn_name, "b11");
    harness_server("127.0.0.12", bport, harness_fn_name, "b12");
    harness_server("127.0.0.13", bport, harness_fn_name, "b13");
    const char *id11 = harness_strf("127.0.0.11:%d", bport);
    const char *id12 = harness_strf("127.0.0.12:%d", bport);
    const char *id13 = harness_strf("127.0.0.13:%d", bport);

    struct harness_lb lb;
    json_t *cfg = dns_cfg(lport, aport, d.port, "roundrobin",
                          harness_strf("{\"dns\": \"Web.Test\", \"type\": \"A\", \"port\": %d, "
                                       "\"refresh_ms\": %d}",
                                       bport, REFRESH_MS));
    lb_start(&lb, cfg, lport, aport);
    /* The first answer came before the listener opened. */
    ck_assert(harness_log_contains(lb.log, "dns: pool app: web.test A: 2 backends\n"));
    ck_assert_str_eq(pool_ids(aport), harness_strf("%s,%s", id11, id12));
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "backends.0.dns"), "web.test");
    ck_assert_str_eq(harness_jstr(r.json, "discovery.0.dns"), "web.test");
    ck_assert_str_eq(harness_jstr(r.json, "discovery.0.type"), "A");
    ck_assert_str_eq(harness_jstr(r.json, "discovery.0.resolvers"), harness_lo(d.port));
    ck_assert_str_eq(harness_jstr(r.json, "discovery.0.answer.1.address"), id12);
    ck_assert(json_is_null(harness_jget(r.json, "discovery.0.error")));
    ck_assert_str_eq(harness_fetch_names(lport, 4), "b11,b12,b11,b12");

    /* A session held on b11 across the changes: its backend's state goes
     * on (one active connection), and the removal drains it, not cuts. */
    int held = harness_connect_ok("127.0.0.1", lport);
    char name[8] = {0};
    ck_assert_int_eq(harness_recv_n(held, name, 4, HARNESS_WAIT_MS), 4);
    ck_assert_str_eq(name, "b11\n");

    dnsmasq_hosts(&d, "127.0.0.11 web.test\n127.0.0.12 web.test\n127.0.0.13 web.test\n");
    ck_assert(harness_lb_log_wait(&lb, "dns: pool app: web.test A: 3 backends (+1 -0)", 1,
                                  HARNESS_WAIT_MS));
    wait_ids(aport, harness_strf("%s,%s,%s", id11, id12, id13));
    r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_int_eq(harness_jint(r.json, "backends.0.active_connections"), 1);
    ck_assert_int_eq(harness_jint(r.json, "backends.0.total_connections"), 3);
    ck_assert_int_eq(harness_jint(r.json, "backends.2.total_connections"), 0);
    ck_assert_int_eq(count_of(harness_fetch_names(lport, 6), "b13"), 2);

    dnsmasq_hosts(&d, "127.0.0.12 web.test\n127.0.0.13 web.test\n");
    ck_assert(harness_lb_log_wait(&lb, "dns: pool app: web.test A: 2 backends (+0 -1)", 1,
                                  HARNESS_WAIT_MS));
    wait_ids(aport, harness_strf("%s,%s", id12, id13));
    const char *after = harness_fetch_names(lport, 4);
    ck_assert_int_eq(count_of(after, "b11"), 0);
    ck_assert_int_eq(count_of(after, "b12"), 2);
    ck_assert_int_eq(count_of(after, "b13"), 2);
    /* (b11 said its name and half-closed; the session is open until the
     * client closes: drained, not cut.) */
    r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(harness_jint(r.json, "connections.active"), 1);
    close(held);

    /* The server goes away: the last set stays, said once. */
    dnsmasq_stop(&d);
    ck_assert(harness_lb_log_wait(&lb, "dns: pool app: web.test A: ", 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&lb, "(keeping 2 backends)", 1, HARNESS_WAIT_MS));
    harness_sleep_ms(REFRESH_MS * 5);
    ck_assert_int_eq(harness_log_count(lb.log, "(keeping 2 backends)"), 1);
    ck_assert_int_eq(count_of(harness_fetch_names(lport, 2), "b13"), 1);
    r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_ptr_nonnull(harness_jstr(r.json, "discovery.0.error"));
    ck_assert_int_ge(harness_jint(r.json, "discovery.0.failures"), 3);
    ck_assert_int_eq(json_array_size(harness_jget(r.json, "discovery.0.answer")), 2);
    struct harness_reply m = harness_call(aport, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(
        strstr(m.body, "lb_dns_backends{pool=\"app\",dns=\"web.test\",type=\"A\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(m.body, "lb_dns_resolutions_total{pool=\"app\",dns=\"web.test\","
                                         "type=\"A\",result=\"error\"} "));

    /* Back: said once too. */
    dnsmasq_start(&d);
    ck_assert(
        harness_lb_log_wait(&lb, "dns: pool app: web.test A answers again", 1, HARNESS_WAIT_MS));
    r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert(json_is_null(harness_jget(r.json, "discovery.0.error")));
    long long changes = harness_jint(r.json, "discovery.0.changes");

    /* A reload keeps the entry and its answer (no new question waited
     * for: the reload applies at once) and applies its new settings. */
    harness_jset(cfg, "pools.0.backends.0.weight", json_integer(7));
    harness_jset(cfg, "pools.0.backends.0.max_connections", json_integer(3));
    harness_lb_rewrite_json(&lb, cfg);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "reload ok: generation 2 (listeners +0 -0, backends +0 -0)",
                                  1, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, "asking 1 new"), 0);
    r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_str_eq(pool_ids(aport), harness_strf("%s,%s", id12, id13));
    ck_assert_int_eq(harness_jint(r.json, "backends.0.weight"), 7);
    ck_assert_int_eq(harness_jint(r.json, "backends.1.max_connections"), 3);
    ck_assert_int_eq(harness_jint(r.json, "discovery.0.changes"), changes);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* PATCHes pool app's backend ID with BODY; expects 200. */
static void patch(int aport, const char *id, const char *body)
{
    struct harness_reply r =
        harness_call(aport, "PATCH", harness_strf("/api/v1/pools/app/backends/%s", id),
                     "Content-Type: application/json\r\n", body);
    ck_assert_msg(r.status == 200, "PATCH %s: %d %s", id, r.status, r.body);
}

START_TEST(dns_srv_weights_and_priorities)
{
    int lport = harness_free_port(), aport = harness_free_port();
    int p1 = harness_free_port(), p2 = harness_free_port(), p3 = harness_free_port();
    const char *extra[] = {harness_strf("--srv-host=_web._tcp.test,b1.test,%d,10,3", p1),
                           harness_strf("--srv-host=_web._tcp.test,b2.test,%d,10,1", p2),
                           harness_strf("--srv-host=_web._tcp.test,b3.test,%d,20,1", p3),
                           "--host-record=b1.test,127.0.0.21",
                           "--host-record=b2.test,127.0.0.22",
                           "--host-record=b3.test,127.0.0.23",
                           NULL};
    struct dnsmasq d = {.port = harness_free_port(), .extra = extra};
    d.hosts = harness_write_file("hosts", "");
    dnsmasq_start(&d);
    harness_server("127.0.0.21", p1, harness_fn_name, "b1");
    harness_server("127.0.0.22", p2, harness_fn_name, "b2");
    harness_server("127.0.0.23", p3, harness_fn_name, "b3");
    const char *id1 = harness_strf("127.0.0.21:%d", p1), *id2 = harness_strf("127.0.0.22:%d", p2),
               *id3 = harness_strf("127.0.0.23:%d", p3);

    struct harness_lb lb;
    lb_start(&lb,
             dns_cfg(lport, aport, d.port, "weighted",
                     harness_strf("{\"dns\": \"_web._tcp.test\", \"type\": \"SRV\", "
                                  "\"refresh_ms\": %d}",
                                  REFRESH_MS)),
             lport, aport);
    ck_assert_str_eq(pool_ids(aport), harness_strf("%s,%s,%s", id1, id2, id3));
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_int_eq(harness_jint(r.json, "backends.0.weight"), 3);
    ck_assert_int_eq(harness_jint(r.json, "backends.0.priority"), 10);
    ck_assert_str_eq(harness_jstr(r.json, "backends.0.state"), "up");
    ck_assert_int_eq(harness_jint(r.json, "backends.1.weight"), 1);
    ck_assert_str_eq(harness_jstr(r.json, "backends.1.state"), "up");
    ck_assert_int_eq(harness_jint(r.json, "backends.2.priority"), 20);
    ck_assert_str_eq(harness_jstr(r.json, "backends.2.state"), "standby");
    ck_assert_int_eq(harness_jint(r.json, "available_backends"), 2);
    ck_assert(json_is_null(harness_jget(r.json, "discovery.0.port")));

    /* Weights 3:1 within priority 10; priority 20 never. */
    const char *names = harness_fetch_names(lport, 8);
    ck_assert_msg(count_of(names, "b1") == 6 && count_of(names, "b2") == 2, "got %s", names);

    /* Priority 10 drained whole: 20 takes over; one back: 20 stands by. */
    patch(aport, id1, "{\"state\": \"drain\"}");
    patch(aport, id2, "{\"state\": \"drain\"}");
    r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "backends.2.state"), "up");
    ck_assert_str_eq(harness_fetch_names(lport, 3), "b3,b3,b3");
    patch(aport, id2, "{\"state\": \"enable\"}");
    r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "backends.2.state"), "standby");
    ck_assert_str_eq(harness_fetch_names(lport, 2), "b2,b2");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

START_TEST(dns_host_names_at_start_test_and_reload)
{
    int lport = harness_free_port(), aport = harness_free_port(), bport = harness_free_port();
    struct dnsmasq d = {.port = harness_free_port()};
    d.hosts = harness_write_file("hosts", "127.0.0.31 app1.test\n127.0.0.32 app2.test\n");
    dnsmasq_start(&d);
    harness_server("127.0.0.31", bport, harness_fn_name, "b31");
    harness_server("127.0.0.32", bport, harness_fn_name, "b32");
    const char *one = harness_strf("{\"address\": \"app1.test:%d\"}", bport);
    const char *two = harness_strf("%s, {\"address\": \"APP2.test:%d\"}", one, bport);
    const char *bad = harness_strf("%s, {\"address\": \"nosuch.test:%d\"}", one, bport);

    /* lb -t and the start: the name that does not resolve, where. */
    const char *path =
        harness_write_file("bad.json", harness_jtext(dns_cfg(lport, aport, d.port, NULL, bad)));
    const char *out, *err;
    int status = harness_run((char *[]){LB_BUILD_DIR "/lb", "-t", "-c", (char *)path, NULL}, &out,
                             &err, HARNESS_WAIT_MS);
    ck_assert_int_eq(status, 1);
    ck_assert_msg(strstr(err, harness_strf("%s:", path)) == err &&
                      strstr(err, ": pools[0].backends[1].address: cannot resolve "
                                  "\"nosuch.test\": Domain name not found\n"),
                  "lb -t said: %s", err);
    status = harness_run((char *[]){LB_BUILD_DIR "/lb", "-c", (char *)path, NULL}, &out, &err,
                         HARNESS_WAIT_MS);
    ck_assert_int_eq(status, 1);
    ck_assert_ptr_nonnull(strstr(err, "cannot resolve \"nosuch.test\": Domain name not found"));
    ck_assert(!harness_port_listening(lport));

    struct harness_lb lb;
    lb_start(&lb, dns_cfg(lport, aport, d.port, NULL, one), lport, aport);
    ck_assert_str_eq(harness_fetch_names(lport, 2), "b31,b31");
    int held = harness_connect_ok("127.0.0.1", lport); /* traffic across the reloads */

    /* Rejected whole, with where; the pool as it was. */
    harness_lb_rewrite_json(&lb, dns_cfg(lport, aport, d.port, NULL, bad));
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "reload: resolving 2 host names", 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&lb, "reload failed: ", 1, HARNESS_WAIT_MS));
    const char *line = harness_log_line(lb.log, "reload failed: ");
    ck_assert_msg(strstr(line, harness_strf("reload failed: %s:", lb.config)) &&
                      strstr(line, ": pools[0].backends[1].address: cannot resolve "
                                   "\"nosuch.test\": Domain name not found (generation 1 "
                                   "stays in force)"),
                  "%s", line);
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_ptr_nonnull(
        strstr(harness_jstr(r.json, "reloads.last_error"), "cannot resolve \"nosuch.test\""));
    ck_assert_str_eq(pool_ids(aport), harness_strf("app1.test:%d", bport));
    ck_assert_str_eq(harness_fetch_names(lport, 2), "b31,b31");

    /* Applied once both names are in. */
    harness_lb_rewrite_json(&lb, dns_cfg(lport, aport, d.port, NULL, two));
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "reload ok: generation 2 (listeners +0 -0, backends +1 -0)",
                                  1, HARNESS_WAIT_MS));
    ck_assert_str_eq(harness_fetch_names(lport, 2), "b31,b32");

    /* Through the API: 202, the outcome follows in the log and status. */
    r = harness_call(aport, "POST", "/api/v1/reload", NULL, NULL);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(harness_jstr(r.json, "status"), "pending");
    ck_assert_str_eq(harness_jstr(r.json, "reason"), "resolving 2 host names");
    ck_assert(harness_lb_log_wait(&lb, "reload ok: generation 3", 1, HARNESS_WAIT_MS));

    /* A new "dns" entry: the reload waits for its first answer, so the
     * pool it commits already has its backends. */
    const char *with_dns = harness_strf(
        "%s, {\"dns\": \"app2.test\", \"port\": %d, \"refresh_ms\": 60000}", one, bport);
    harness_lb_rewrite_json(&lb, dns_cfg(lport, aport, d.port, NULL, with_dns));
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&lb, "reload ok: generation 4", 1, HARNESS_WAIT_MS));
    ck_assert(harness_log_contains(lb.log, "reload: asking 1 new \"dns\" entries\n"));
    ck_assert(harness_log_contains(lb.log, "dns: pool app: app2.test A: 1 backends\n"));
    ck_assert_str_eq(pool_ids(aport), harness_strf("app1.test:%d,127.0.0.32:%d", bport, bport));

    char name[8] = {0};
    ck_assert_int_eq(harness_recv_n(held, name, 4, HARNESS_WAIT_MS), 4);
    ck_assert_str_eq(name, "b31\n");
    close(held);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* The answer's TTL (3 s here) wins over a shorter refresh_ms (200). */
/* A SIGHUP while the start waits for a "dns" entry's first answer (from a
 * server that never answers) waits too: the start ends (the question
 * times out, the pool starts empty), then the reload runs. */
START_TEST(dns_sighup_while_starting)
{
    int lport = harness_free_port(), aport = harness_free_port(), bport = harness_free_port();
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    ck_assert(udp >= 0 && bind(udp, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
              getsockname(udp, (struct sockaddr *)&sa, &salen) == 0);
    const char *entry =
        harness_strf("{\"dns\": \"web.test\", \"type\": \"A\", \"port\": %d}", bport);
    json_t *cfg = dns_cfg(lport, aport, ntohs(sa.sin_port), NULL, entry);
    struct harness_lb lb = {.pipe = -1};
    snprintf(lb.config, sizeof(lb.config), "%s",
             harness_write_file("silent.json", harness_jtext(cfg)));
    snprintf(lb.log, sizeof(lb.log), "%s/silent.log", harness_dir());
    lb.pid = harness_spawn((char *[]){LB_BUILD_DIR "/lb", "-c", lb.config, NULL}, lb.log, NULL);
    ck_assert_msg(harness_lb_log_wait(&lb, "asking 1 \"dns\" entries before the listeners open", 1,
                                      HARNESS_WAIT_MS),
                  "no wait for DNS; log %s", lb.log);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert_msg(harness_lb_log_wait(&lb,
                                      "info: reload: lb is still starting; the reload runs once "
                                      "it has started",
                                      1, HARNESS_WAIT_MS),
                  "the SIGHUP was not held; log %s", lb.log);
    ck_assert_msg(harness_lb_log_wait(&lb, "info: reload ok: generation 2", 1, 2 * HARNESS_WAIT_MS),
                  "no reload after the start; log %s", lb.log);
    const char *text = harness_read_file(lb.log);
    const char *started = strstr(text, " started (pid ");
    const char *reloaded = strstr(text, "info: reload ok: generation 2");
    ck_assert_msg(started && started < reloaded, "the reload ran before the start ended: %s", text);
    ck_assert(harness_wait_listening(aport, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
    close(udp);
}
END_TEST

START_TEST(dns_ttl_is_respected)
{
    int lport = harness_free_port(), aport = harness_free_port(), bport = harness_free_port();
    struct dnsmasq d = {.port = harness_free_port(), .ttl = 3};
    d.hosts = harness_write_file("hosts", "127.0.0.41 ttl.test\n");
    dnsmasq_start(&d);
    harness_server("127.0.0.41", bport, harness_fn_name, "b41");
    struct harness_lb lb;
    lb_start(&lb,
             dns_cfg(lport, aport, d.port, NULL,
                     harness_strf("{\"dns\": \"ttl.test\", \"port\": %d, \"refresh_ms\": %d}",
                                  bport, REFRESH_MS)),
             lport, aport);
    harness_sleep_ms(1500); /* a refresh_ms pace would have asked 7 times */
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_int_eq(harness_jint(r.json, "discovery.0.ttl_s"), 3);
    ck_assert_int_eq(harness_jint(r.json, "discovery.0.resolutions"), 1);
    ck_assert_str_eq(harness_fetch_names(lport, 1), "b41");
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *dns_suite(void)
{
    Suite *s = suite_create("dns");
    TCase *tc;
#define ADD_TCASE(name, fn)                                                                        \
    tc = tcase_create(name);                                                                       \
    tcase_add_checked_fixture(tc, setup, teardown);                                                \
    tcase_set_timeout(tc, DNS_TCASE_TIMEOUT);                                                      \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    ADD_TCASE("a_records", dns_a_records_follow_the_server);
    ADD_TCASE("srv", dns_srv_weights_and_priorities);
    ADD_TCASE("host_names", dns_host_names_at_start_test_and_reload);
    ADD_TCASE("ttl", dns_ttl_is_respected);
    ADD_TCASE("sighup_while_starting", dns_sighup_while_starting);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(dns_suite)
