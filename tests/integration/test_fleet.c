/* Integration: the fleet, against a real etcd cluster the test starts
 * (Debian's etcd 3.4: three members on loopback ports in the test's
 * folder, stopped by PID at teardown). Two lb instances follow one prefix:
 * a pool document added, changed, refused (with its key in the log and
 * the status) and removed reaches both; a listener's pool that only etcd
 * has cannot be deleted from under it. Faults: killing the member lb
 * talks to (the leader) changes nothing visible and a change made
 * meanwhile is taken once; killing a second member leaves one without a
 * quorum: lb keeps what is in force, serves on, says so once in the log
 * and in the status, and follows again once the members are back. A
 * watch whose revision was compacted away reads everything again. At
 * start, an etcd that never answers fails lb when a listener's pool is
 * only in etcd, else lb starts with the file and takes etcd's pools once
 * it answers. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define PREFIX "/lb/test/"
#define ETCD_WAIT_MS (30000 * harness_slow())

struct etcd_member {
    pid_t pid;
    int client, peer;
    const char *name, *dir, *log;
    bool tls; /* its client URL is https, with client certificates required */
};

/* TLS of a cluster: the server's certificate and key, the CA that signs
 * its clients' (and etcdctl's certificate and key). */
struct etcd_tls {
    const char *cert, *key, *ca, *client_cert, *client_key;
};

struct etcd_cluster {
    struct etcd_member m[3];
    size_t n;
    const char *initial;   /* --initial-cluster */
    const char *endpoints; /* "http://127.0.0.1:A,http://..." */
    const struct etcd_tls *tls;
};

static const char *member_url(const struct etcd_member *m)
{
    return harness_strf("%s://127.0.0.1:%d", m->tls ? "https" : "http", m->client);
}

static void etcd_spawn(struct etcd_cluster *c, size_t i)
{
    struct etcd_member *m = &c->m[i];
    char *argv[32] = {"/usr/bin/etcd",
                      "--name",
                      (char *)m->name,
                      "--data-dir",
                      (char *)m->dir,
                      "--listen-client-urls",
                      (char *)member_url(m),
                      "--advertise-client-urls",
                      (char *)member_url(m),
                      "--listen-peer-urls",
                      harness_strf("http://127.0.0.1:%d", m->peer),
                      "--initial-advertise-peer-urls",
                      harness_strf("http://127.0.0.1:%d", m->peer),
                      "--initial-cluster",
                      (char *)c->initial,
                      "--initial-cluster-state",
                      "new",
                      "--initial-cluster-token",
                      "lb-test",
                      NULL};
    if (c->tls) {
        size_t n = 0;
        while (argv[n])
            n++;
        argv[n++] = harness_strf("--cert-file=%s", c->tls->cert);
        argv[n++] = harness_strf("--key-file=%s", c->tls->key);
        argv[n++] = "--client-cert-auth";
        argv[n++] = harness_strf("--trusted-ca-file=%s", c->tls->ca);
        argv[n] = NULL;
    }
    m->pid = harness_spawn(argv, m->log, NULL);
}

/* Runs etcdctl against the members that are up; its output. */
static const char *etcdctl(const struct etcd_cluster *c, const char *const args[])
{
    char *argv[20];
    size_t n = 0;
    argv[n++] = "/usr/bin/etcdctl";
    argv[n++] = "--dial-timeout=2s";
    argv[n++] = "--command-timeout=5s";
    argv[n++] = harness_strf("--endpoints=%s", c->endpoints);
    if (c->tls) {
        argv[n++] = harness_strf("--cacert=%s", c->tls->ca);
        argv[n++] = harness_strf("--cert=%s", c->tls->client_cert);
        argv[n++] = harness_strf("--key=%s", c->tls->client_key);
    }
    for (size_t i = 0; args[i] && n < 19; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    setenv("ETCDCTL_API", "3", 1);
    const char *out = NULL, *err = NULL;
    long deadline = harness_now_ms() + ETCD_WAIT_MS;
    int rc;
    /* A member just killed may fail a first try while the client picks
     * another: retried, bounded. */
    while ((rc = harness_run(argv, &out, &err, ETCD_WAIT_MS)) != 0 && harness_now_ms() < deadline)
        harness_sleep_ms(200);
    ck_assert_msg(rc == 0, "etcdctl %s failed: %s", args[0], err ? err : "");
    return out;
}

static void etcd_put(const struct etcd_cluster *c, const char *key, const char *value)
{
    const char *args[] = {"put", key, value, NULL};
    etcdctl(c, args);
}

static void etcd_del(const struct etcd_cluster *c, const char *key)
{
    const char *args[] = {"del", key, NULL};
    etcdctl(c, args);
}

/* The store's revision now. */
static long long etcd_revision(const struct etcd_cluster *c)
{
    const char *args[] = {"get", "--write-out=json", "/", NULL};
    const char *out = etcdctl(c, args);
    /* Its ids are beyond what a JSON parser takes as integers. */
    const char *p = strstr(out, "\"revision\":");
    ck_assert_ptr_nonnull(p);
    return strtoll(p + 11, NULL, 10);
}

/* Starts n members (1 or 3), with TLS when tls is not NULL, and waits
 * until the cluster has a leader. */
static void etcd_start_tls(struct etcd_cluster *c, size_t n, const struct etcd_tls *tls)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->tls = tls;
    char *initial = harness_strf("%s", ""), *endpoints = harness_strf("%s", "");
    for (size_t i = 0; i < n; i++) {
        struct etcd_member *m = &c->m[i];
        m->client = harness_free_port();
        m->peer = harness_free_port();
        m->name = harness_strf("m%zu", i + 1);
        m->dir = harness_strf("%s/etcd-%s", harness_dir(), m->name);
        m->log = harness_strf("%s/etcd-%s.log", harness_dir(), m->name);
        m->tls = tls != NULL;
        initial =
            harness_strf("%s%s%s=http://127.0.0.1:%d", initial, i ? "," : "", m->name, m->peer);
        endpoints = harness_strf("%s%s%s", endpoints, i ? "," : "", member_url(m));
    }
    c->initial = initial;
    c->endpoints = endpoints;
    for (size_t i = 0; i < n; i++)
        etcd_spawn(c, i);
    const char *args[] = {"put", PREFIX "ready", "1", NULL};
    etcdctl(c, args);
}

static void etcd_start(struct etcd_cluster *c, size_t n)
{
    etcd_start_tls(c, n, NULL);
}

static void etcd_kill(struct etcd_cluster *c, size_t i)
{
    kill(c->m[i].pid, SIGKILL);
    ck_assert_int_eq(harness_wait_exit(c->m[i].pid, HARNESS_WAIT_MS), -1);
    c->m[i].pid = -1;
}

/* The index of the leader among the members that are up: etcdctl's
 * simple lines are "URL, ID, VERSION, DB SIZE, IS LEADER, ...". */
static size_t etcd_leader(const struct etcd_cluster *c)
{
    const char *args[] = {"endpoint", "status", NULL};
    char *out = harness_strf("%s", etcdctl(c, args));
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *comma = strchr(line, ',');
        if (!comma)
            continue;
        *comma = '\0';
        const char *f = comma + 1;
        for (int k = 0; k < 3 && f; k++)
            f = strchr(f + 1, ',');
        if (!f || strncmp(f, ", true,", 7) != 0)
            continue;
        for (size_t i = 0; i < c->n; i++)
            if (strcmp(line, member_url(&c->m[i])) == 0)
                return i;
    }
    ck_abort_msg("no leader among %s", c->endpoints);
    return 0;
}

/* Puts a value from a file (too big for an argument) through sh. */
static void etcd_put_file(const struct etcd_cluster *c, const char *key, const char *path)
{
    char *cmd = harness_strf("ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=%s put %s < %s",
                             c->endpoints, key, path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *out = NULL, *err = NULL;
    ck_assert_msg(harness_run(argv, &out, &err, ETCD_WAIT_MS) == 0, "%s: %s", cmd, err);
}

/* An lb whose only listener takes pool app, which only etcd has. */
static json_t *fleet_cfg(int lport, int aport, const char *endpoints)
{
    json_t *cfg = harness_jkeep(harness_jparse(harness_strf(
        "{\"log\": {\"level\": \"info\"}, \"shutdown_grace_ms\": 1000,"
        " \"listeners\": [{\"name\": \"web\", \"listen\": \"127.0.0.1:%d\", \"pool\": \"app\"}],"
        " \"pools\": [], \"admin\": {\"listen\": \"127.0.0.1:%d\"},"
        " \"fleet\": {\"etcd\": [], \"prefix\": \"" PREFIX "\", \"timeout_ms\": 1000,"
        " \"start_timeout_ms\": 5000}}",
        lport, aport)));
    json_t *eps = harness_jget(cfg, "fleet.etcd");
    char *list = harness_strf("%s", endpoints);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
        json_array_append_new(eps, json_string(tok));
    return cfg;
}

/* A pool document with these backends ("b1=PORT,b2=PORT"). */
static const char *pool_doc(const char *strategy, const char *backends)
{
    char *list = harness_strf("%s", backends), *out = harness_strf("%s", "");
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        *eq = '\0';
        out = harness_strf("%s%s{\"name\": \"%s\", \"address\": \"127.0.0.1:%s\"}", out,
                           *out ? ", " : "", tok, eq + 1);
    }
    return harness_strf("{\"strategy\": \"%s\", \"backends\": [%s]}", strategy, out);
}

/* The names of pool POOL's backends as the API lists them, joined by ","
 * ("-" when there is no such pool). */
static const char *pool_names(int aport, const char *pool)
{
    struct harness_reply r =
        harness_call(aport, "GET", harness_strf("/api/v1/pools/%s", pool), NULL, NULL);
    if (r.status == 404)
        return "-";
    ck_assert_int_eq(r.status, 200);
    json_t *list = harness_jget(r.json, "backends");
    char *out = harness_strf("%s", "");
    for (size_t i = 0; i < json_array_size(list); i++)
        out = harness_strf("%s%s%s", out, i ? "," : "",
                           json_string_value(json_object_get(json_array_get(list, i), "name")));
    return out;
}

static void wait_names(int aport, const char *pool, const char *want)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    const char *got;
    while (strcmp(got = pool_names(aport, pool), want) != 0 && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert_msg(strcmp(got, want) == 0, "pool %s lists \"%s\" on admin port %d, want \"%s\"",
                  pool, got, aport, want);
}

static json_t *fleet_status(int aport)
{
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    return harness_jget(r.json, "fleet");
}

static void wait_state(int aport, const char *want, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    const char *got;
    while (strcmp(got = harness_jstr(fleet_status(aport), "state"), want) != 0 &&
           harness_now_ms() < deadline)
        harness_sleep_ms(50);
    ck_assert_msg(strcmp(got, want) == 0, "fleet state \"%s\", want \"%s\"", got, want);
}

/* Two instances follow one prefix: documents added, changed, refused and
 * removed reach both, and their traffic follows. */
START_TEST(fleet_two_instances)
{
    struct etcd_cluster c;
    etcd_start(&c, 3);
    int b1 = harness_free_port(), b2 = harness_free_port();
    harness_backend("127.0.0.1", b1, "b1", "name");
    harness_backend("127.0.0.1", b2, "b2", "name");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b1=%d", b1)));

    struct harness_lb a, b;
    int la = harness_free_port(), aa = harness_free_port();
    int lb_ = harness_free_port(), ab = harness_free_port();
    harness_lb_start_json(&a, fleet_cfg(la, aa, c.endpoints), la);
    harness_lb_start_json(&b, fleet_cfg(lb_, ab, c.endpoints), lb_);
    ck_assert_str_eq(pool_names(aa, "app"), "b1");
    ck_assert_str_eq(pool_names(ab, "app"), "b1");
    ck_assert_str_eq(harness_fetch_names(la, 2), "b1,b1");
    json_t *st = fleet_status(aa);
    ck_assert_str_eq(harness_jstr(st, "state"), "watching");
    ck_assert_int_eq(json_array_size(harness_jget(st, "pools")), 1);
    ck_assert_str_eq(harness_jstr(st, "pools.0"), "app");
    struct harness_reply r = harness_call(aa, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "source"), "etcd");

    /* Changed: both take it, and traffic follows. */
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b1=%d,b2=%d", b1, b2)));
    wait_names(aa, "app", "b1,b2");
    wait_names(ab, "app", "b1,b2");
    ck_assert_str_eq(harness_fetch_names(lb_, 4), "b1,b2,b1,b2");

    /* Refused: the loader's message with the key, in the log and the
     * status of both; the last good version stays. */
    etcd_put(&c, PREFIX "pools/app", "{\"backends\": [{\"address\": \"127.0.0.1:99999\"}]}");
    const char *refused =
        "fleet: " PREFIX "pools/app refused: etcd " PREFIX "pools/app:1:27: backends[0].address: ";
    ck_assert(harness_lb_log_wait(&a, refused, 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&b, refused, 1, HARNESS_WAIT_MS));
    ck_assert_str_eq(pool_names(aa, "app"), "b1,b2");
    st = fleet_status(ab);
    ck_assert_str_eq(harness_jstr(st, "rejected.0.key"), PREFIX "pools/app");
    ck_assert_ptr_nonnull(
        strstr(harness_jstr(st, "rejected.0.error"), "pools/app:1:27: backends[0].address"));
    ck_assert_str_eq(harness_fetch_names(lb_, 2), "b1,b2");

    /* Another pool added and removed; a good version clears the refusal. */
    etcd_put(&c, PREFIX "pools/extra", pool_doc("leastconn", harness_strf("b2=%d", b2)));
    wait_names(aa, "extra", "b2");
    wait_names(ab, "extra", "b2");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b2=%d", b2)));
    wait_names(aa, "app", "b2");
    wait_names(ab, "app", "b2");
    ck_assert_int_eq(json_array_size(harness_jget(fleet_status(aa), "rejected")), 0);
    etcd_del(&c, PREFIX "pools/extra");
    wait_names(aa, "extra", "-");
    wait_names(ab, "extra", "-");

    /* A pool a listener needs cannot go: the delete is refused, logged. */
    etcd_del(&c, PREFIX "pools/app");
    const char *kept = "fleet: " PREFIX "pools/app refused: deleted, but listener web names pool "
                       "\"app\" and the file has none (its last good version stays)";
    ck_assert(harness_lb_log_wait(&a, kept, 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&b, kept, 1, HARNESS_WAIT_MS));
    ck_assert_str_eq(pool_names(ab, "app"), "b2");
    ck_assert_str_eq(harness_fetch_names(la, 2), "b2,b2");
    /* A document the loader takes and a later step refuses (its CA file
     * cannot be read) is refused with its key; the rest goes on. */
    etcd_put(&c, PREFIX "pools/tls",
             "{\"tls\": {\"ca\": \"/nonexistent/ca.pem\"}, \"backends\": [{\"address\": "
             "\"127.0.0.1:1\"}]}");
    const char *late = "fleet: " PREFIX "pools/tls refused: etcd " PREFIX "pools/tls:1:9: tls: ";
    ck_assert(harness_lb_log_wait(&a, late, 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&b, late, 1, HARNESS_WAIT_MS));
    etcd_put(&c, PREFIX "pools/extra", pool_doc("leastconn", harness_strf("b1=%d", b1)));
    wait_names(aa, "extra", "b1");
    wait_names(ab, "extra", "b1");
    ck_assert_str_eq(pool_names(ab, "tls"), "-");
    st = fleet_status(aa);
    ck_assert_int_eq(json_array_size(harness_jget(st, "rejected")), 2);
    ck_assert_str_eq(harness_jstr(st, "rejected.0.key"), PREFIX "pools/app");
    ck_assert_str_eq(harness_jstr(st, "rejected.1.key"), PREFIX "pools/tls");

    /* Keys elsewhere under the prefix change nothing, a value too large
     * for lb among them; under pools/ it is refused like a bad one. */
    long gens = harness_log_count(a.log, "fleet: generation");
    char *big = malloc(1200001);
    memset(big, 'x', 1200000);
    big[1200000] = '\0';
    const char *bigfile = harness_write_file("big.txt", big);
    free(big);
    etcd_put_file(&c, PREFIX "other/blob", bigfile);
    etcd_put(&c, PREFIX "readme", "not JSON at all");
    etcd_put_file(&c, PREFIX "pools/extra", bigfile);
    const char *toolarge = "fleet: " PREFIX "pools/extra refused: etcd " PREFIX
                           "pools/extra: the value is not base64 or over 1 MiB (its last good "
                           "version stays)";
    ck_assert(harness_lb_log_wait(&a, toolarge, 1, HARNESS_WAIT_MS));
    ck_assert(harness_lb_log_wait(&b, toolarge, 1, HARNESS_WAIT_MS));
    etcd_put(&c, PREFIX "pools/extra", pool_doc("leastconn", harness_strf("b2=%d", b2)));
    wait_names(aa, "extra", "b2");
    wait_names(ab, "extra", "b2");
    ck_assert_int_eq(harness_log_count(a.log, "fleet: generation"), gens + 1);
    ck_assert_str_eq(harness_jstr(fleet_status(ab), "state"), "watching");
    ck_assert_int_eq(harness_log_count(a.log, "going on with"), 0);

    /* The refused delete of app goes once A's file no longer needs it. */
    json_t *spare = fleet_cfg(la, aa, c.endpoints);
    harness_jset(spare, "listeners.0.pool", json_string("spare"));
    harness_jappend(
        spare, "pools",
        harness_pool_json(
            "spare", NULL,
            harness_jarray(harness_backend_json(harness_strf("127.0.0.1:%d", b1), "b1"), NULL)));
    harness_lb_rewrite_json(&a, spare);
    harness_lb_signal(&a, SIGHUP);
    ck_assert(harness_lb_log_wait(&a, "fleet: " PREFIX "pools/app deleted", 1, HARNESS_WAIT_MS));
    wait_names(aa, "app", "-");
    ck_assert_str_eq(pool_names(ab, "app"), "b2");
    ck_assert_int_eq(harness_lb_stop(&a), 0);
    ck_assert_int_eq(harness_lb_stop(&b), 0);
}
END_TEST

/* One backend field ("state", "weight") of pool app's backend id, as the
 * API shows it. */
static const char *backend_field(int aport, const char *id, const char *field)
{
    struct harness_reply r =
        harness_call(aport, "GET", harness_strf("/api/v1/pools/app/backends/%s", id), NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    json_t *v = harness_jget(r.json, field);
    return json_is_string(v) ? json_string_value(v)
                             : harness_strf("%lld", (long long)json_integer_value(v));
}

static void wait_field(int aport, const char *id, const char *field, const char *want)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    const char *got;
    while (strcmp(got = backend_field(aport, id, field), want) != 0 && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert_msg(strcmp(got, want) == 0, "backend %s %s is \"%s\" on admin port %d, want \"%s\"",
                  id, field, got, aport, want);
}

static struct harness_reply patch(int aport, const char *id, const char *body)
{
    return harness_call(aport, "PATCH", harness_strf("/api/v1/pools/app/backends/%s", id),
                        "Content-Type: application/json\r\n", body);
}

/* A backend's state kept in etcd: a drain through one instance's API is
 * written there and stops traffic to it on the other; states put with
 * etcdctl apply everywhere, survive a change of the pool's document, and
 * a deleted one gives the backend back its file state; a bad one is
 * refused; with etcd gone a PATCH says it did not reach it. */
START_TEST(fleet_backend_state)
{
    struct etcd_cluster c;
    etcd_start(&c, 1);
    int b1 = harness_free_port(), b2 = harness_free_port(), b3 = harness_free_port();
    harness_backend("127.0.0.1", b1, "b1", "name");
    harness_backend("127.0.0.1", b2, "b2", "name");
    harness_backend("127.0.0.1", b3, "b3", "name");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b1=%d,b2=%d", b1, b2)));
    struct harness_lb a, b;
    int la = harness_free_port(), aa = harness_free_port();
    int lb_ = harness_free_port(), ab = harness_free_port();
    harness_lb_start_json(&a, fleet_cfg(la, aa, c.endpoints), la);
    harness_lb_start_json(&b, fleet_cfg(lb_, ab, c.endpoints), lb_);

    /* Drained through A: written to etcd, and B stops sending to it. */
    struct harness_reply r = patch(aa, "b1", "{\"state\": \"drain\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "draining");
    ck_assert_str_eq(harness_jstr(r.json, "fleet.key"), PREFIX "state/app/b1");
    ck_assert(json_is_true(harness_jget(r.json, "fleet.written")));
    ck_assert_int_gt(harness_jint(r.json, "fleet.revision"), 0);
    ck_assert(json_is_null(harness_jget(r.json, "fleet.error")));
    const char *get[] = {"get", "--print-value-only", PREFIX "state/app/b1", NULL};
    ck_assert_str_eq(etcdctl(&c, get), "{\"state\":\"drain\"}\n");
    wait_field(ab, "b1", "state", "draining");
    ck_assert_str_eq(harness_fetch_names(lb_, 4), "b2,b2,b2,b2");
    ck_assert(harness_lb_log_wait(&b, "admin: pool app backend b1 state drain (was up)", 1,
                                  HARNESS_WAIT_MS));

    /* A weight through B keeps the drain in etcd's document. */
    r = patch(ab, "b1", "{\"weight\": 3}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(etcdctl(&c, get), "{\"state\":\"drain\",\"weight\":3}\n");
    wait_field(aa, "b1", "weight", "3");
    ck_assert_str_eq(backend_field(aa, "b1", "state"), "draining");

    /* The pool's document changes: the state stays with the backend. */
    etcd_put(&c, PREFIX "pools/app",
             pool_doc("roundrobin", harness_strf("b1=%d,b2=%d,b3=%d", b1, b2, b3)));
    wait_names(ab, "app", "b1,b2,b3");
    ck_assert_str_eq(backend_field(ab, "b1", "state"), "draining");
    ck_assert_str_eq(backend_field(ab, "b1", "weight"), "3");
    ck_assert_str_eq(harness_fetch_names(la, 4), "b2,b3,b2,b3");

    /* etcdctl enables it; a bad state is refused with its key. */
    etcd_put(&c, PREFIX "state/app/b1", "{\"state\": \"enable\"}");
    wait_field(aa, "b1", "state", "up");
    wait_field(ab, "b1", "state", "up");
    wait_field(ab, "b1", "weight", "1");
    etcd_put(&c, PREFIX "state/app/b2", "{\"state\": \"off\"}");
    const char *refused = "fleet: " PREFIX "state/app/b2 refused: etcd " PREFIX
                          "state/app/b2: state: must be \"drain\", \"disable\" or \"enable\"";
    ck_assert(harness_lb_log_wait(&a, refused, 1, HARNESS_WAIT_MS));
    ck_assert_str_eq(harness_jstr(fleet_status(ab), "rejected.0.key"), PREFIX "state/app/b2");
    ck_assert_str_eq(backend_field(ab, "b2", "state"), "up");

    /* Disabled in etcd, then the key deleted: back to the file's state. */
    etcd_put(&c, PREFIX "state/app/b2", "{\"state\": \"disable\", \"weight\": 0}");
    wait_field(ab, "b2", "state", "disabled");
    ck_assert_int_eq(json_array_size(harness_jget(fleet_status(ab), "rejected")), 0);
    etcd_del(&c, PREFIX "state/app/b2");
    wait_field(aa, "b2", "state", "up");
    wait_field(ab, "b2", "weight", "1");
    ck_assert_str_eq(harness_fetch_names(lb_, 3), "b1,b2,b3");

    /* etcd gone: the change holds here, and the answer says etcd did not
     * take it. */
    etcd_kill(&c, 0);
    r = patch(aa, "b3", "{\"state\": \"drain\"}");
    ck_assert_int_eq(r.status, 502);
    ck_assert_str_eq(harness_jstr(r.json, "state"), "draining");
    ck_assert(json_is_false(harness_jget(r.json, "fleet.written")));
    ck_assert_ptr_nonnull(strstr(harness_jstr(r.json, "fleet.error"),
                                 harness_strf("etcd did not take the change: %s: ", c.endpoints)));
    ck_assert_str_eq(backend_field(ab, "b3", "state"), "up");
    ck_assert_int_eq(harness_lb_stop(&a), 0);
    ck_assert_int_eq(harness_lb_stop(&b), 0);
}
END_TEST

/* Losing the leader changes nothing visible; losing a second member
 * keeps what is in force, serving on, logged once and shown; the members
 * back, lb follows again from where it was. */
START_TEST(fleet_member_loss)
{
    struct etcd_cluster c;
    etcd_start(&c, 3);
    int b1 = harness_free_port(), b2 = harness_free_port(), b3 = harness_free_port();
    harness_backend("127.0.0.1", b1, "b1", "name");
    harness_backend("127.0.0.1", b2, "b2", "name");
    harness_backend("127.0.0.1", b3, "b3", "name");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b1=%d", b1)));
    /* lb talks to the leader first: its endpoint is listed first. */
    size_t leader = etcd_leader(&c);
    char *eps = harness_strf("%s", member_url(&c.m[leader]));
    for (size_t i = 0; i < 3; i++)
        if (i != leader)
            eps = harness_strf("%s,%s", eps, member_url(&c.m[i]));
    struct harness_lb a;
    int la = harness_free_port(), aa = harness_free_port();
    harness_lb_start_json(&a, fleet_cfg(la, aa, eps), la);
    ck_assert_str_eq(pool_names(aa, "app"), "b1");
    ck_assert_str_eq(harness_jstr(fleet_status(aa), "endpoint"), member_url(&c.m[leader]));

    /* The leader dies; a change is made at once, through the others. */
    etcd_kill(&c, leader);
    struct etcd_cluster rest = c;
    rest.endpoints = harness_strf("%s", "");
    for (size_t i = 0; i < 3; i++)
        if (i != leader)
            rest.endpoints = harness_strf("%s%s%s", rest.endpoints, *rest.endpoints ? "," : "",
                                          member_url(&c.m[i]));
    etcd_put(&rest, PREFIX "pools/app",
             pool_doc("roundrobin", harness_strf("b1=%d,b2=%d", b1, b2)));
    long long rev = etcd_revision(&rest);
    wait_names(aa, "app", "b1,b2");
    wait_state(aa, "watching", HARNESS_WAIT_MS);
    ck_assert_str_eq(harness_fetch_names(la, 2), "b1,b2");
    /* Taken once: a resumed watch replays nothing. */
    ck_assert_int_eq(
        harness_log_count(a.log,
                          harness_strf("fleet: " PREFIX "pools/app taken (revision %lld)", rev)),
        1);
    ck_assert(!harness_log_contains(a.log, "no etcd endpoint answers"));
    ck_assert_int_ge(harness_jint(fleet_status(aa), "reconnects"), 1);

    /* A second member dies: the last one has no quorum. */
    size_t second = leader == 0 ? 1 : 0;
    etcd_kill(&c, second);
    wait_state(aa, "unreachable", 15000 * harness_slow());
    json_t *st = fleet_status(aa);
    ck_assert_ptr_nonnull(harness_jstr(st, "error"));
    ck_assert_str_eq(pool_names(aa, "app"), "b1,b2");
    ck_assert_str_eq(harness_fetch_names(la, 4), "b1,b2,b1,b2");
    struct harness_reply m = harness_call(aa, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(m.body, "\nlb_fleet_up 0\n"));
    harness_sleep_ms(3000); /* rounds go on failing: still one line */
    ck_assert_int_eq(harness_log_count(a.log, "fleet: no etcd endpoint answers"), 1);

    /* Back: the two members restart; lb follows again from its revision. */
    etcd_spawn(&c, leader);
    etcd_spawn(&c, second);
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b3=%d", b3)));
    wait_names(aa, "app", "b3");
    wait_state(aa, "watching", HARNESS_WAIT_MS);
    ck_assert(harness_lb_log_wait(&a, "fleet: etcd answers again at ", 1, HARNESS_WAIT_MS));
    m = harness_call(aa, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(m.body, "\nlb_fleet_up 1\n"));
    ck_assert_str_eq(harness_fetch_names(la, 2), "b3,b3");
    ck_assert_int_eq(harness_lb_stop(&a), 0);
}
END_TEST

/* A watch resumed from a revision etcd compacted away reads everything
 * again: changes and deletes made meanwhile all show. */
START_TEST(fleet_compacted)
{
    struct etcd_cluster c;
    etcd_start(&c, 3);
    int b1 = harness_free_port(), b2 = harness_free_port();
    harness_backend("127.0.0.1", b1, "b1", "name");
    harness_backend("127.0.0.1", b2, "b2", "name");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b1=%d", b1)));
    etcd_put(&c, PREFIX "pools/old", pool_doc("roundrobin", harness_strf("b1=%d", b1)));
    struct harness_lb a;
    int la = harness_free_port(), aa = harness_free_port();
    /* lb follows member 1 alone. */
    harness_lb_start_json(&a, fleet_cfg(la, aa, member_url(&c.m[0])), la);
    wait_names(aa, "old", "b1");

    /* Member 1 stops (lb cannot reach etcd); the others change the
     * documents and compact the history away, then member 1 comes back. */
    kill(c.m[0].pid, SIGSTOP);
    wait_state(aa, "unreachable", 15000 * harness_slow());
    struct etcd_cluster rest = c;
    rest.endpoints = harness_strf("%s,%s", member_url(&c.m[1]), member_url(&c.m[2]));
    etcd_put(&rest, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b2=%d", b2)));
    etcd_del(&rest, PREFIX "pools/old");
    etcd_put(&rest, PREFIX "pools/new", pool_doc("roundrobin", harness_strf("b2=%d", b2)));
    long long rev = etcd_revision(&rest);
    const char *args[] = {"compact", harness_strf("%lld", rev), NULL};
    etcdctl(&rest, args);
    kill(c.m[0].pid, SIGCONT);
    ck_assert(harness_lb_log_wait(&a, "away (the oldest kept is ", 1, ETCD_WAIT_MS));
    wait_names(aa, "app", "b2");
    wait_names(aa, "old", "-");
    wait_names(aa, "new", "b2");
    wait_state(aa, "watching", HARNESS_WAIT_MS);
    ck_assert_int_eq(harness_lb_stop(&a), 0);
}
END_TEST

/* At start: no etcd answering fails lb when a listener's pool is only in
 * etcd; with the pool in the file lb starts, and takes etcd's once it
 * answers. */
START_TEST(fleet_start_without_etcd)
{
    int port = harness_free_port(), peer = harness_free_port();
    const char *url = harness_strf("http://127.0.0.1:%d", port);
    int la = harness_free_port(), aa = harness_free_port();
    json_t *cfg = fleet_cfg(la, aa, url);
    harness_jset(cfg, "fleet.start_timeout_ms", json_integer(500));
    const char *path = harness_write_file("lb.json", harness_jtext(cfg));
    char *argv[] = {LB_BUILD_DIR "/lb", "-c", (char *)path, NULL};
    const char *out = NULL, *err = NULL;
    ck_assert_int_eq(harness_run(argv, &out, &err, HARNESS_WAIT_MS), 1);
    ck_assert_ptr_nonnull(strstr(
        err,
        harness_strf("fleet: no etcd endpoint answered within 500 ms (last: %s: read: connection "
                     "refused), and pool \"app\" that a listener names is not in the file",
                     url)));

    /* The file has pool app: lb starts with it. */
    int b1 = harness_free_port(), b2 = harness_free_port();
    harness_backend("127.0.0.1", b1, "b1", "name");
    harness_backend("127.0.0.1", b2, "b2", "name");
    harness_jappend(
        cfg, "pools",
        harness_pool_json(
            "app", NULL,
            harness_jarray(harness_backend_json(harness_strf("127.0.0.1:%d", b1), "b1"), NULL)));
    struct harness_lb a;
    harness_lb_start_json(&a, cfg, la);
    ck_assert(harness_lb_log_wait(&a, "fleet: no etcd endpoint answered within 500 ms", 1, 0));
    ck_assert_str_eq(harness_fetch_names(la, 1), "b1");
    ck_assert_str_eq(harness_jstr(fleet_status(aa), "state"), "unreachable");
    struct harness_reply r = harness_call(aa, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "source"), "file");

    /* etcd comes up there with a document for app: it replaces the file's. */
    struct etcd_cluster c;
    memset(&c, 0, sizeof(c));
    c.n = 1;
    c.m[0] = (struct etcd_member){-1,
                                  port,
                                  peer,
                                  "m1",
                                  harness_strf("%s/etcd-m1", harness_dir()),
                                  harness_strf("%s/etcd-m1.log", harness_dir()),
                                  false};
    c.initial = harness_strf("m1=http://127.0.0.1:%d", peer);
    c.endpoints = url;
    etcd_spawn(&c, 0);
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b2=%d", b2)));
    wait_names(aa, "app", "b2");
    wait_state(aa, "watching", HARNESS_WAIT_MS);
    ck_assert_str_eq(harness_fetch_names(la, 1), "b2");
    r = harness_call(aa, "GET", "/api/v1/pools/app", NULL, NULL);
    ck_assert_str_eq(harness_jstr(r.json, "source"), "etcd");
    ck_assert_int_eq(harness_lb_stop(&a), 0);
}
END_TEST

/* etcd over TLS with client certificates: lb verifies the member's
 * certificate (its IP address, or tls.server_name), shows its own, reads,
 * watches and writes; a wrong CA, a wrong name or no client certificate
 * fail with the reason. */
START_TEST(fleet_tls)
{
    struct harness_pki pki, other;
    harness_pki_init(&pki);
    harness_pki_init(&other);
    struct harness_cert_opts server = {.sans = "etcd.test,IP:127.0.0.1"};
    const char *scert = harness_pki_issue(&pki, "etcd", &server);
    const char *ccert = harness_pki_issue(&pki, "lb", NULL);
    struct etcd_tls tls = {scert, harness_pki_key(scert), pki.ca_cert, ccert,
                           harness_pki_key(ccert)};
    struct etcd_cluster c;
    etcd_start_tls(&c, 1, &tls);
    int b1 = harness_free_port(), b2 = harness_free_port();
    harness_backend("127.0.0.1", b1, "b1", "name");
    harness_backend("127.0.0.1", b2, "b2", "name");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b1=%d", b1)));

    int la = harness_free_port(), aa = harness_free_port();
    json_t *cfg = fleet_cfg(la, aa, c.endpoints);
    harness_jset(cfg, "fleet.tls",
                 harness_jparse(harness_strf("{\"ca\": \"%s\", \"cert\": \"%s\", \"key\": \"%s\"}",
                                             pki.ca_cert, ccert, harness_pki_key(ccert))));
    struct harness_lb a;
    harness_lb_start_json(&a, cfg, la);
    ck_assert_str_eq(pool_names(aa, "app"), "b1");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b2=%d", b2)));
    wait_names(aa, "app", "b2");
    struct harness_reply r = patch(aa, "b2", "{\"state\": \"drain\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_true(harness_jget(r.json, "fleet.written")));
    ck_assert_int_eq(harness_lb_stop(&a), 0);

    /* Faults at start (the pool is only in etcd): each named. */
    struct {
        const char *tls, *why;
    } bad[] = {
        {harness_strf("{\"ca\": \"%s\", \"cert\": \"%s\", \"key\": \"%s\"}", other.ca_cert, ccert,
                      harness_pki_key(ccert)),
         "TLS handshake: certificate verify failed: unable to get local issuer certificate"},
        {harness_strf("{\"ca\": \"%s\", \"server_name\": \"other.test\", \"cert\": \"%s\", "
                      "\"key\": \"%s\"}",
                      pki.ca_cert, ccert, harness_pki_key(ccert)),
         "TLS handshake: certificate verify failed: hostname mismatch"},
        {harness_strf("{\"ca\": \"%s\"}", pki.ca_cert), "TLS: sslv3 alert bad certificate"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = fleet_cfg(la, aa, c.endpoints);
        harness_jset(b, "fleet.tls", harness_jparse(bad[i].tls));
        harness_jset(b, "fleet.start_timeout_ms", json_integer(1000));
        const char *path = harness_write_file(harness_strf("bad%zu.json", i), harness_jtext(b));
        char *argv[] = {LB_BUILD_DIR "/lb", "-c", (char *)path, NULL};
        const char *out = NULL, *err = NULL;
        ck_assert_int_eq(harness_run(argv, &out, &err, HARNESS_WAIT_MS), 1);
        const char *want = harness_strf("fleet: no etcd endpoint answered within 1000 ms (last: "
                                        "%s: read: %s",
                                        c.endpoints, bad[i].why);
        ck_assert_msg(strstr(err, want), "case %zu: want \"%s\" in: %s", i, want, err);
    }
}
END_TEST

/* dnsmasq on a loopback port answering for "test." from hosts (an
 * /etc/hosts-style text), nothing else; its PID is the harness's. */
static int dns_start(const char *hosts)
{
    int port = harness_free_port();
    const char *file = harness_write_file("hosts", hosts);
    char *argv[] = {"/usr/sbin/dnsmasq",
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--user=root",
                    "--pid-file=",
                    "--local=/test/",
                    "--local-ttl=1",
                    harness_strf("--port=%d", port),
                    harness_strf("--addn-hosts=%s", file),
                    NULL};
    const char *log = harness_strf("%s/dnsmasq.log", harness_dir());
    harness_spawn(argv, log, NULL);
    ck_assert_msg(harness_wait_port("127.0.0.1", port, HARNESS_WAIT_MS),
                  "dnsmasq never listened on %d; log: %s", port, harness_read_file(log));
    return port;
}

/* Endpoints by host name, resolved on the loop through the config's
 * resolvers: lb follows etcd there; a name that does not resolve is the
 * fault it names. */
START_TEST(fleet_host_names)
{
    struct etcd_cluster c;
    etcd_start(&c, 1);
    int dns = dns_start("127.0.0.1 etcd1.test\n");
    int b1 = harness_free_port();
    harness_backend("127.0.0.1", b1, "b1", "name");
    etcd_put(&c, PREFIX "pools/app", pool_doc("roundrobin", harness_strf("b1=%d", b1)));
    int la = harness_free_port(), aa = harness_free_port();
    const char *url = harness_strf("http://etcd1.test:%d", c.m[0].client);
    json_t *cfg = fleet_cfg(la, aa, harness_strf("http://nosuch.test:%d,%s", c.m[0].client, url));
    harness_jset(cfg, "resolvers",
                 harness_jarray(json_string(harness_strf("127.0.0.1:%d", dns)), NULL));
    struct harness_lb a;
    harness_lb_start_json(&a, cfg, la);
    ck_assert_str_eq(pool_names(aa, "app"), "b1");
    ck_assert_str_eq(harness_jstr(fleet_status(aa), "endpoint"), url);
    ck_assert(harness_log_contains(a.log, harness_strf("fleet: read 1 pools from etcd %s", url)));
    ck_assert_str_eq(harness_fetch_names(la, 1), "b1");
    struct harness_reply r = patch(aa, "b1", "{\"state\": \"drain\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_lb_stop(&a), 0);

    /* Only the name that does not resolve: the start says so. */
    json_t *bad = fleet_cfg(la, aa, harness_strf("http://nosuch.test:%d", c.m[0].client));
    harness_jset(bad, "resolvers",
                 harness_jarray(json_string(harness_strf("127.0.0.1:%d", dns)), NULL));
    harness_jset(bad, "fleet.start_timeout_ms", json_integer(2000));
    const char *path = harness_write_file("bad.json", harness_jtext(bad));
    char *argv[] = {LB_BUILD_DIR "/lb", "-c", (char *)path, NULL};
    const char *out = NULL, *err = NULL;
    ck_assert_int_eq(harness_run(argv, &out, &err, HARNESS_WAIT_MS), 1);
    ck_assert_ptr_nonnull(strstr(err, harness_strf("(last: http://nosuch.test:%d: cannot resolve "
                                                   "nosuch.test: Domain name not found)",
                                                   c.m[0].client)));
}
END_TEST

/* docs/fleet.md's "Try it on one machine" steps, run as written (the sh
 * blocks in order, in a temp dir under the test's, from the repository):
 * what they print is what the page says. Every process they start is
 * theirs to stop (their last block); an EXIT trap stops whatever is left
 * should one fail, and the run is bounded. */
START_TEST(fleet_doc_steps)
{
    static const int ports[] = {8080,  9090,  9101,  9102,  9001,  9002, 9003,
                                12371, 12372, 12373, 12381, 12382, 12383};
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
        ck_assert_msg(!harness_port_listening(ports[i]),
                      "port %d, which docs/fleet.md uses, is in use", ports[i]);
    const char *root = harness_repo_root();
    const char *doc = harness_read_file(harness_strf("%s/docs/fleet.md", root));
    const char *from = strstr(doc, "\n## Try it on one machine"),
               *to = strstr(doc, "\n## The documents");
    ck_assert(from && to && from < to);
    char *script =
        harness_strf("exec 2>&1\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\ncd %s\n", root);
    for (const char *p = from; (p = strstr(p, "```sh\n")) && p < to;) {
        p += 6;
        const char *end = strstr(p, "```");
        ck_assert(end && end < to);
        script = harness_strf("%s%.*s", script, (int)(end - p), p);
        p = end + 3;
    }
    const char *path = harness_write_file("steps.sh", script);
    setenv("TMPDIR", harness_dir(), 1);
    char *argv[] = {"/bin/bash", (char *)path, NULL};
    const char *out = NULL, *err = NULL;
    int rc = harness_run(argv, &out, &err, 120000 * harness_slow());
    unsetenv("TMPDIR");
    ck_assert_msg(rc == 0, "the steps exited %d: %s%s", rc, out, err);
    /* What the page says each step prints, in order. */
    static const char *const expect[] = {
        "is healthy",
        "configuration ok (pool \"app\", which a listener names, is not in the file: it must come "
        "from etcd)",
        "hello from b1",
        "\n3\n3\n",
        "info: fleet: generation 2 in force, etcd revision 3 (backends +2 -0)",
        "\"source\": \"etcd\"",
        "\n404\n",
        "\"key\": \"/lb/prod/state/app/b2\"",
        "\"written\": true",
        "{\"state\":\"drain\"}",
        "\"state\": \"draining\"",
        "error: fleet: /lb/prod/pools/app refused: etcd /lb/prod/pools/app:1:27: "
        "backends[0].address: port must be 1..65535 (got 99999) (its last good version stays)",
        "\"key\": \"/lb/prod/pools/app\"",
    };
    const char *at = out;
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        const char *hit = strstr(at, expect[i]);
        ck_assert_msg(hit,
                      "the steps did not print \"%s\" (after what came before); they "
                      "printed:\n%s",
                      expect[i], out);
        at = hit + strlen(expect[i]);
    }
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
        ck_assert_msg(harness_wait_not_listening(ports[i], HARNESS_WAIT_MS),
                      "port %d still listening after the steps", ports[i]);
}
END_TEST

static Suite *fleet_suite(void)
{
    Suite *s = suite_create("fleet");
    TCase *tc = harness_tcase("fleet");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, fleet_two_instances);
    tcase_add_test(tc, fleet_backend_state);
    tcase_add_test(tc, fleet_tls);
    tcase_add_test(tc, fleet_host_names);
    tcase_add_test(tc, fleet_member_loss);
    tcase_add_test(tc, fleet_compacted);
    tcase_add_test(tc, fleet_start_without_etcd);
    suite_add_tcase(s, tc);
    tc = harness_tcase("doc");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, fleet_doc_steps);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(fleet_suite)
