/* test_config: config_load() and config_parse_address(). Each error class is
 * checked by its exact message, position included; each successful load by
 * every field it sets. Config texts are written with ' for " to stay
 * readable, then saved to a temp file under /tmp. */
#include <arpa/inet.h>
#include <glob.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "tests/test.h"

static char tmp_path[64];

/* Writes TEXT, with every ' turned into ", to a fresh temp file. */
static void tmp_write(const char *text)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    int fd;

    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i <= n; i++)
        buf[i] = text[i] == '\'' ? '"' : text[i];
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/lb-test-config-XXXXXX");
    fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
    free(buf);
}

/* Loads TEXT; on success returns the config, else NULL with ERR filled. */
static struct lb_config *load_text(const char *text, char *err, size_t errlen)
{
    struct lb_config *cfg = (void *)1;
    int rc;

    tmp_write(text);
    rc = config_load(tmp_path, &cfg, err, errlen);
    unlink(tmp_path);
    if (rc < 0)
        ck_assert_ptr_null(cfg);
    else
        ck_assert_int_eq(rc, 0);
    return cfg;
}

static struct lb_config *load_ok(const char *text)
{
    char err[512];
    struct lb_config *cfg = load_text(text, err, sizeof(err));

    ck_assert_msg(cfg != NULL, "unexpected error: %s", err);
    return cfg;
}

/* Asserts that TEXT fails with exactly "<tmp file>EXPECT". */
#define ck_config_error(text, expect) check_error(__LINE__, text, expect)

static void check_error(int line, const char *text, const char *expect)
{
    char err[1024];
    size_t n;

    ck_assert_msg(load_text(text, err, sizeof(err)) == NULL, "line %d: loaded", line);
    n = strlen(tmp_path);
    ck_assert_msg(strncmp(err, tmp_path, n) == 0, "line %d: no file name in '%s'", line, err);
    ck_assert_msg(strcmp(err + n, expect) == 0, "line %d:\n got '%s'\nwant '%s'", line, err + n,
                  expect);
}

/* One valid listener and pool, for tests that change something else. */
#define LISTENER "{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app'}"
#define POOL "{'name': 'app', 'backends': [{'address': '127.0.0.1:9001'}]}"
#define MINIMAL "{'listeners': [" LISTENER "], 'pools': [" POOL "]}"

static unsigned sa_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void ck_ipv4(const struct sockaddr_storage *ss, socklen_t len, const char *ip, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char buf[INET_ADDRSTRLEN];

    ck_assert_int_eq(ss->ss_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    ck_assert_str_eq(buf, ip);
    ck_assert_uint_eq(sa_port(ss), port);
}

static void ck_ipv6(const struct sockaddr_storage *ss, socklen_t len, const char *ip, unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN];

    ck_assert_int_eq(ss->ss_family, AF_INET6);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
    ck_assert_str_eq(buf, ip);
    ck_assert_uint_eq(sa_port(ss), port);
}

/* --- successful loads --- */

START_TEST(test_defaults)
{
    struct lb_config *cfg = load_ok(MINIMAL);

    ck_assert_ptr_nonnull(cfg->path);
    ck_assert_int_eq(cfg->log_level, LB_LOG_INFO);
    ck_assert_uint_eq(cfg->shutdown_grace_ms, 10000);
    ck_assert_uint_eq(cfg->nlisteners, 1);
    ck_assert_str_eq(cfg->listeners[0].name, "web");
    ck_assert_str_eq(cfg->listeners[0].listen, "127.0.0.1:8080");
    ck_ipv4(&cfg->listeners[0].addr, cfg->listeners[0].addrlen, "127.0.0.1", 8080);
    ck_assert_int_eq(cfg->listeners[0].mode, LB_MODE_TCP);
    ck_assert_str_eq(cfg->listeners[0].pool, "app");
    ck_assert_uint_eq(cfg->listeners[0].pool_index, 0);
    ck_assert_uint_eq(cfg->listeners[0].max_connections, 10000);
    ck_assert_uint_eq(cfg->listeners[0].idle_timeout_ms, 300000);
    ck_assert_uint_eq(cfg->npools, 1);
    ck_assert_str_eq(cfg->pools[0].name, "app");
    ck_assert_int_eq(cfg->pools[0].strategy, LB_STRATEGY_ROUNDROBIN);
    ck_assert_uint_eq(cfg->pools[0].connect_timeout_ms, 3000);
    ck_assert_uint_eq(cfg->pools[0].retries, 2);
    ck_assert_uint_eq(cfg->pools[0].hash_table_size, 65537);
    ck_assert_uint_eq(cfg->pools[0].nbackends, 1);
    ck_assert_ptr_null(cfg->pools[0].backends[0].name);
    ck_assert_str_eq(cfg->pools[0].backends[0].address, "127.0.0.1:9001");
    ck_assert_str_eq(cfg->pools[0].backends[0].id, "127.0.0.1:9001");
    ck_assert_uint_eq(cfg->pools[0].backends[0].weight, 1);
    ck_ipv4(&cfg->pools[0].backends[0].addr, cfg->pools[0].backends[0].addrlen, "127.0.0.1", 9001);
    config_free(cfg);
}
END_TEST

START_TEST(test_all_fields)
{
    struct lb_config *cfg =
        load_ok("{\n"
                "  'log': {'level': 'debug'},\n"
                "  'shutdown_grace_ms': 0,\n"
                "  'listeners': [\n"
                "    {'name': 'web', 'listen': '127.0.0.1:8080', 'mode': 'tcp', 'pool': 'app',\n"
                "     'max_connections': 1, 'idle_timeout_ms': 0},\n"
                "    {'name': 'Other_1.x-y', 'listen': '*:9090', 'pool': 'db',\n"
                "     'max_connections': 1000000, 'idle_timeout_ms': 86400000}\n"
                "  ],\n"
                "  'pools': [\n"
                "    {'name': 'app', 'strategy': 'iphash', 'connect_timeout_ms': 1, 'retries': 0,\n"
                "     'hash_table_size': 7,\n"
                "     'backends': [\n"
                "       {'address': '127.0.0.1:9001', 'weight': 256, 'name': 'app1'},\n"
                "       {'address': '[::1]:9002', 'weight': 0}\n"
                "     ]},\n"
                "    {'name': 'db', 'connect_timeout_ms': 3600000, 'retries': 15,\n"
                "     'hash_table_size': 1048573, 'backends': [{'address': '10.1.2.3:65535'}]}\n"
                "  ]\n"
                "}\n");
    struct lb_listener_conf *l;
    struct lb_pool_conf *p;

    ck_assert_int_eq(cfg->log_level, LB_LOG_DEBUG);
    ck_assert_uint_eq(cfg->shutdown_grace_ms, 0);
    ck_assert_uint_eq(cfg->nlisteners, 2);
    l = &cfg->listeners[0];
    ck_assert_uint_eq(l->max_connections, 1);
    ck_assert_uint_eq(l->idle_timeout_ms, 0);
    ck_assert_uint_eq(l->pool_index, 0);
    l = &cfg->listeners[1];
    ck_assert_str_eq(l->name, "Other_1.x-y");
    ck_assert_str_eq(l->listen, "*:9090");
    ck_ipv4(&l->addr, l->addrlen, "0.0.0.0", 9090);
    ck_assert_str_eq(l->pool, "db");
    ck_assert_uint_eq(l->pool_index, 1);
    ck_assert_uint_eq(l->max_connections, 1000000);
    ck_assert_uint_eq(l->idle_timeout_ms, 86400000);

    ck_assert_uint_eq(cfg->npools, 2);
    p = &cfg->pools[0];
    ck_assert_int_eq(p->strategy, LB_STRATEGY_IPHASH);
    ck_assert_uint_eq(p->connect_timeout_ms, 1);
    ck_assert_uint_eq(p->retries, 0);
    ck_assert_uint_eq(p->hash_table_size, 7);
    ck_assert_uint_eq(p->nbackends, 2);
    ck_assert_str_eq(p->backends[0].name, "app1");
    ck_assert_str_eq(p->backends[0].id, "app1");
    ck_assert_str_eq(p->backends[0].address, "127.0.0.1:9001");
    ck_assert_uint_eq(p->backends[0].weight, 256);
    ck_assert_ptr_null(p->backends[1].name);
    ck_assert_str_eq(p->backends[1].id, "[::1]:9002");
    ck_assert_uint_eq(p->backends[1].weight, 0);
    ck_ipv6(&p->backends[1].addr, p->backends[1].addrlen, "::1", 9002);
    p = &cfg->pools[1];
    ck_assert_str_eq(p->name, "db");
    ck_assert_int_eq(p->strategy, LB_STRATEGY_ROUNDROBIN);
    ck_assert_uint_eq(p->connect_timeout_ms, 3600000);
    ck_assert_uint_eq(p->retries, 15);
    ck_assert_uint_eq(p->hash_table_size, 1048573);
    ck_ipv4(&p->backends[0].addr, p->backends[0].addrlen, "10.1.2.3", 65535);
    config_free(cfg);
}
END_TEST

START_TEST(test_strategies_and_levels)
{
    static const char *const strategies[] = {"roundrobin", "weighted", "leastconn", "iphash"};
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    char text[512];

    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof(text),
                 "{'log': {'level': '%s'}, 'listeners': [" LISTENER "], 'pools': [{'name': "
                 "'app', 'strategy': '%s', 'backends': [{'address': '127.0.0.1:9001'}]}]}",
                 levels[i], strategies[i]);
        struct lb_config *cfg = load_ok(text);
        ck_assert_int_eq(cfg->pools[0].strategy, i);
        ck_assert_str_eq(config_strategy_name(cfg->pools[0].strategy), strategies[i]);
        ck_assert_int_eq(cfg->log_level, i);
        ck_assert_str_eq(config_log_level_name(cfg->log_level), levels[i]);
        config_free(cfg);
    }
    ck_assert_str_eq(config_mode_name(LB_MODE_TCP), "tcp");
    ck_assert_str_eq(config_mode_name(LB_MODE_HTTP), "http");
    ck_assert_str_eq(config_mode_name((enum lb_mode)42), "unknown");
    ck_assert_str_eq(config_strategy_name((enum lb_strategy)42), "unknown");
}
END_TEST

START_TEST(test_escaped_keys_and_utf8)
{
    /* Keys spelled with escapes are the same keys; multi-byte text before a
     * value shifts its column by bytes. */
    struct lb_config *cfg = load_ok("{'listeners': [{'n\\u0061me': 'web', 'listen': "
                                    "'127.0.0.1:8080', 'pool': 'app'}], 'pools': [" POOL "]}");
    ck_assert_str_eq(cfg->listeners[0].name, "web");
    config_free(cfg);
    ck_config_error("{'listeners': [{'name': 'w\\u00e9b', 'listen': '127.0.0.1:8080', 'pool': "
                    "'app'}], 'p\\u00f6ols': []}",
                    ":1:82: (root): unknown key \"p\\xc3\\xb6ols\" (did you mean \"pools\"?)");
    ck_config_error("{'listeners': [{'name': 'w\\u00e9b', 'listen': '127.0.0.1:8080', "
                    "'pool': 'app'}], 'pools': [" POOL "]}",
                    ":1:25: listeners[0].name: must be 1 to 64 characters of A-Z a-z 0-9 _ . - "
                    "(got \"w\\xc3\\xa9b\")");
    ck_config_error("{'x\xc3\xa9\\\"\\\\': 1, 'listeners': [], 'pools': []}",
                    ":1:2: (root): unknown key \"x\\xc3\\xa9\\\"\\\\\"");
    ck_config_error("{'\xc3\xa9\xc3\xa9': [{'a': ']'}], 'listeners': 5, 'pools': []}",
                    ":1:2: (root): unknown key \"\\xc3\\xa9\\xc3\\xa9\"");
}
END_TEST

START_TEST(test_addresses)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256], name[CONFIG_HOST_MAX + 1];
    unsigned short port = 0;

    ck_assert_int_eq(
        config_parse_address("1.2.3.4:80", 0, &ss, &len, name, &port, err, sizeof(err)), 0);
    ck_ipv4(&ss, len, "1.2.3.4", 80);
    ck_assert_int_eq(
        config_parse_address("[2001:db8::5]:443", 0, &ss, &len, name, &port, err, sizeof(err)), 0);
    ck_ipv6(&ss, len, "2001:db8::5", 443);
    ck_assert_int_eq(config_parse_address("[::]:1", 1, &ss, &len, name, &port, err, sizeof(err)),
                     0);
    ck_ipv6(&ss, len, "::", 1);
    ck_assert_int_eq(config_parse_address("*:65535", 1, &ss, &len, name, &port, err, sizeof(err)),
                     0);
    ck_ipv4(&ss, len, "0.0.0.0", 65535);

    /* localhost is 127.0.0.1 without a lookup, listen addresses too. */
    ck_assert_int_eq(
        config_parse_address("LocalHost:8080", 0, &ss, &len, name, &port, err, sizeof(err)), 0);
    ck_ipv4(&ss, len, "127.0.0.1", 8080);
    ck_assert_int_eq(config_parse_address("localhost:81", CONFIG_ADDR_PASSIVE, &ss, &len, name,
                                          &port, err, sizeof(err)),
                     0);
    ck_ipv4(&ss, len, "127.0.0.1", 81);
    /* A host name is handed back, lower-cased, never looked up here. */
    ck_assert_int_eq(config_parse_address("App1.Example_x:8080", CONFIG_ADDR_NAME, &ss, &len, name,
                                          &port, err, sizeof(err)),
                     1);
    ck_assert_str_eq(name, "app1.example_x");
    ck_assert_uint_eq(port, 8080);
    ck_assert_int_eq(config_parse_address("app1.example:8080", CONFIG_ADDR_PASSIVE, &ss, &len, name,
                                          &port, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "bad address \"app1.example:8080\" (an IP address is needed here (or "
                          "localhost); host names are resolved for backends only)");
    ck_assert_int_eq(
        config_parse_address("a b:80", CONFIG_ADDR_NAME, &ss, &len, name, &port, err, sizeof(err)),
        -1);
    ck_assert_str_eq(err, "bad address \"a b:80\" (bad host name)");

    ck_assert_int_eq(config_parse_address("*:80", 0, &ss, &len, name, &port, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "bad address \"*:80\" (\"*\" is only allowed in listen addresses)");
    ck_assert_int_eq(config_parse_address("foo", 0, &ss, &len, name, &port, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "bad address \"foo\" (expected host:port, [ipv6]:port)");
    ck_assert_int_eq(config_parse_address("foo", 1, &ss, &len, name, &port, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "bad address \"foo\" (expected host:port, [ipv6]:port or *:port)");
    ck_assert_int_eq(config_parse_address(":80", 0, &ss, &len, name, &port, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "bad address \":80\" (expected host:port, [ipv6]:port)");
    ck_assert_int_eq(config_parse_address("[::1]80", 0, &ss, &len, name, &port, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "bad address \"[::1]80\" (expected host:port, [ipv6]:port)");
    ck_assert_int_eq(config_parse_address("::1:80", 0, &ss, &len, name, &port, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "bad address \"::1:80\" (an IPv6 address needs brackets: [ipv6]:port)");
    ck_assert_int_eq(config_parse_address("[foo]:80", 0, &ss, &len, name, &port, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "bad address \"[foo]:80\" (not an IPv6 address)");
    ck_assert_int_eq(config_parse_address("1.2.3:80", 0, &ss, &len, name, &port, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "bad address \"1.2.3:80\" (not an IPv4 address)");
    ck_assert_int_eq(config_parse_address("1.2.3.4:0", 0, &ss, &len, name, &port, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "port must be 1..65535 (got 0)");
    ck_assert_int_eq(
        config_parse_address("1.2.3.4:65536", 0, &ss, &len, name, &port, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "port must be 1..65535 (got 65536)");
    ck_assert_int_eq(
        config_parse_address("1.2.3.4:http", 0, &ss, &len, name, &port, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "port must be 1..65535 (got \"http\")");
    ck_assert_int_eq(config_parse_address("1.2.3.4:", 0, &ss, &len, name, &port, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "port must be 1..65535 (got \"\")");
    ck_assert_int_eq(
        config_parse_address("1.2.3.4:-1", 0, &ss, &len, name, &port, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "port must be 1..65535 (got \"-1\")");
}
END_TEST

START_TEST(test_examples)
{
    glob_t g;
    char err[512];

    ck_assert_int_eq(glob("config/examples/*.json", 0, NULL, &g), 0);
    ck_assert_uint_ge(g.gl_pathc, 5);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct lb_config *cfg;
        ck_assert_msg(config_load(g.gl_pathv[i], &cfg, err, sizeof(err)) == 0, "%s", err);
        config_free(cfg);
    }
    globfree(&g);
}
END_TEST

START_TEST(test_example_demo)
{
    struct lb_config *cfg;
    char err[512];

    ck_assert_msg(config_load("config/examples/demo.json", &cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg->listeners[0].name, "web");
    ck_ipv4(&cfg->listeners[0].addr, cfg->listeners[0].addrlen, "127.0.0.1", 8080);
    ck_assert_str_eq(cfg->pools[0].name, "demo");
    ck_assert_int_eq(cfg->pools[0].strategy, LB_STRATEGY_WEIGHTED);
    ck_assert_uint_eq(cfg->pools[0].nbackends, 3);
    for (unsigned i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "app%u", i + 1);
        ck_assert_str_eq(cfg->pools[0].backends[i].id, name);
        ck_ipv4(&cfg->pools[0].backends[i].addr, cfg->pools[0].backends[i].addrlen, "127.0.0.1",
                9001 + i);
    }
    config_free(cfg);
}
END_TEST

/* --- file-level errors --- */

START_TEST(test_missing_file)
{
    struct lb_config *cfg = (void *)1;
    char err[256];

    ck_assert_int_eq(config_load("/nonexistent/lb.json", &cfg, err, sizeof(err)), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, "/nonexistent/lb.json: cannot read: No such file or directory");
}
END_TEST

/* A FIFO, a directory or a device is refused at once, without reading (a
 * FIFO without a writer would block a read, and a blocking open too). */
START_TEST(test_not_regular_file)
{
    struct lb_config *cfg = (void *)1;
    char err[256], fifo[64], want[128];

    snprintf(fifo, sizeof(fifo), "/tmp/lb-test-fifo-%ld", (long)getpid());
    unlink(fifo);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(config_load(fifo, &cfg, err, sizeof(err)), -1);
    ck_assert_ptr_null(cfg);
    unlink(fifo);
    snprintf(want, sizeof(want), "%s: not a regular file (a FIFO)", fifo);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(config_load("/tmp", &cfg, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/tmp: not a regular file (a directory)");
    ck_assert_int_eq(config_load("/dev/null", &cfg, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/dev/null: not a regular file (a character device)");
    ck_assert_ptr_null(cfg);
}
END_TEST

/* Writes N bytes of C to a fresh temp file (tmp_path). */
static void tmp_fill(char c, size_t n)
{
    char *buf = malloc(n);
    int fd;

    ck_assert_ptr_nonnull(buf);
    memset(buf, c, n);
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/lb-test-config-XXXXXX");
    fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
    free(buf);
}

/* 16 MiB is the limit: a byte more is "too large", exactly it is read (and
 * here, all spaces, found empty). */
START_TEST(test_too_large)
{
    struct lb_config *cfg = (void *)1;
    char err[256], want[256];

    tmp_fill(' ', 16 * 1024 * 1024 + 1);
    ck_assert_int_eq(config_load(tmp_path, &cfg, err, sizeof(err)), -1);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof(want), "%s: file is too large (more than 16777216 bytes)", tmp_path);
    ck_assert_str_eq(err, want);
    unlink(tmp_path);
    tmp_fill(' ', 16 * 1024 * 1024);
    ck_assert_int_eq(config_load(tmp_path, &cfg, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: file is empty", tmp_path);
    ck_assert_str_eq(err, want);
    unlink(tmp_path);
}
END_TEST

/* A UTF-8 byte order mark is skipped: the file loads, and line:col count
 * from the byte after it, so an error is where it would be without it. */
START_TEST(test_bom)
{
    struct lb_config *cfg = load_ok("\xef\xbb\xbf" MINIMAL);

    ck_assert_str_eq(cfg->listeners[0].name, "web");
    config_free(cfg);
    ck_config_error("{'listeners': 5, 'pools': []}", ":1:15: listeners: must be an array");
    ck_config_error("\xef\xbb\xbf{'listeners': 5, 'pools': []}",
                    ":1:15: listeners: must be an array");
    ck_config_error("{'a' 1}", ":1:6: syntax error: ':' expected near '1'");
    ck_config_error("\xef\xbb\xbf{'a' 1}", ":1:6: syntax error: ':' expected near '1'");
    ck_config_error("\xef\xbb\xbf{\n  'a': tru\n}", ":2:8: syntax error: invalid token near 'tru'");
    ck_config_error("\xef\xbb\xbf", ": file is empty");
    ck_config_error("\xef\xbb\xbf \n", ": file is empty");
    /* Only at the very start: anywhere else it is a stray token. */
    ck_config_error(" \xef\xbb\xbf{}", ":1:2: syntax error: invalid token near '\\xef\\xbb\\xbf'");
}
END_TEST

START_TEST(test_empty_and_root)
{
    ck_config_error("", ": file is empty");
    ck_config_error(" \n\t\n", ": file is empty");
    ck_config_error("\n  [1, 2]", ":2:3: (root): must be an object");
    ck_config_error("'x'", ":1:1: (root): must be an object");
    ck_config_error("{}", ":1:1: (root): missing required key \"listeners\"");
    ck_config_error("{'listeners': []}", ":1:1: (root): missing required key \"pools\"");
}
END_TEST

START_TEST(test_syntax)
{
    /* Positions point at the first byte of the token jansson rejects. */
    ck_config_error("{\n  'listeners': [\n    {'name': 'web',}\n  ]\n}",
                    ":3:20: syntax error: string or '}' expected near '}'");
    ck_config_error("{\n  'a': tru\n}", ":2:8: syntax error: invalid token near 'tru'");
    ck_config_error("{'a': 1\n\n", ":1:8: syntax error: '}' expected near end of file");
    ck_config_error("{'a' 1}", ":1:6: syntax error: ':' expected near '1'");
    ck_config_error("{'\xc3\xa9': 'x\n'}", ":1:8: syntax error: unexpected newline near '\\\"x'");
    ck_config_error("{'a': 'x\xff'}",
                    ":1:7: syntax error: unable to decode byte 0xff near '\\\"x'");
    ck_config_error("{'a': 1} 2", ":1:10: syntax error: end of file expected near '2'");
    ck_config_error("{'a': 99999999999999999999}",
                    ":1:7: syntax error: too big integer near '99999999999999999999'");
    /* jansson quotes file bytes raw; lb escapes them like any echo: a
     * multi-byte character, a lone byte of one that jansson cut (the
     * message would not even be UTF-8), a backslash, a quote. A byte that
     * is not UTF-8 at all jansson names itself, without quoting it. */
    ck_config_error("{'a': \xc3\xa9}", ":1:7: syntax error: invalid token near '\\xc3\\xa9'");
    ck_config_error("{'a': '\\\xc3\xa9'}",
                    ":1:7: syntax error: invalid escape near '\\\"\\\\\\xc3'");
    ck_config_error("{'a': '\\u12\xc3\xa9'}",
                    ":1:7: syntax error: invalid escape near '\\\"\\\\u12\\xc3'");
    ck_config_error("{'a': 1, 'b': \xff}", ":1:15: syntax error: unable to decode byte 0xff");
    ck_config_error("\xff", ":1:1: syntax error: unable to decode byte 0xff");
    ck_config_error("\xef\xbb\xbf[1,\n \xc3\x28]",
                    ":2:2: syntax error: unable to decode byte 0xc3");
    ck_config_error("{'a': '\x01'}", ":1:7: syntax error: control character 0x1 near '\\\"'");
}
END_TEST

START_TEST(test_duplicate_key)
{
    ck_config_error("{\n  'listeners': [],\n  'listeners': []\n}",
                    ":3:3: syntax error: duplicate object key near '\\\"listeners\\\"'");
    ck_config_error("{'listeners': [{'name': 'a', 'name': 'b'}]}",
                    ":1:30: syntax error: duplicate object key near '\\\"name\\\"'");
}
END_TEST

/* --- schema errors --- */

START_TEST(test_unknown_keys)
{
    ck_config_error("{\n  'listeners': [],\n  'admni': {}\n}",
                    ":3:3: (root): unknown key \"admni\" (did you mean \"admin\"?)");
    ck_config_error("{'log': {'levle': 'info'}, 'listeners': [], 'pools': []}",
                    ":1:10: log: unknown key \"levle\" (did you mean \"level\"?)");
    ck_config_error("{'listeners': [{'name': 'web', 'port': 80}], 'pools': [" POOL "]}",
                    ":1:32: listeners[0]: unknown key \"port\" (did you mean \"pool\"?)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'stratgey': 'x'}]}",
                    ":1:103: pools[0]: unknown key \"stratgey\" (did you mean \"strategy\"?)");
    ck_config_error(
        "{\n"
        "  'listeners': [" LISTENER "],\n"
        "  'pools': [{'name': 'app', 'backends': [\n"
        "    {'address': '127.0.0.1:9001'},\n"
        "    {'address': '127.0.0.1:9002', 'wieght': 2}\n"
        "  ]}]\n"
        "}",
        ":5:35: pools[0].backends[1]: unknown key \"wieght\" (did you mean \"weight\"?)");
}
END_TEST

START_TEST(test_missing_keys)
{
    ck_config_error("{'listeners': [\n  {'listen': '*:80', 'pool': 'app'}], 'pools': [" POOL "]}",
                    ":2:3: listeners[0]: missing required key \"name\"");
    ck_config_error("{'listeners': [{'name': 'web', 'pool': 'app'}], 'pools': [" POOL "]}",
                    ":1:16: listeners[0]: missing required key \"listen\"");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:80'}], 'pools': [" POOL "]}",
                    ":1:16: listeners[0]: missing required key \"pool\"");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'backends': []}]}",
                    ":1:87: pools[0]: missing required key \"name\"");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app'}]}",
                    ":1:87: pools[0]: missing required key \"backends\"");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'weight': 1}]}]}",
                    ":1:116: pools[0].backends[0]: missing required key \"address\" (or "
                    "\"dns\")");
}
END_TEST

START_TEST(test_wrong_types)
{
    ck_config_error("{'log': 'info', 'listeners': [], 'pools': []}",
                    ":1:9: log: must be an object");
    ck_config_error("{'log': {'level': 3}, 'listeners': [], 'pools': []}",
                    ":1:19: log.level: must be a string");
    ck_config_error("{'listeners': {}, 'pools': []}", ":1:15: listeners: must be an array");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': 'app'}",
                    ":1:86: pools: must be an array");
    ck_config_error("{'listeners': ['web'], 'pools': [" POOL "]}",
                    ":1:16: listeners[0]: must be an object");
    ck_config_error("{'listeners': [{'name': 5, 'listen': '*:80', 'pool': 'app'}], 'pools': [" POOL
                    "]}",
                    ":1:25: listeners[0].name: must be a string");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': 80, 'pool': 'app'}], 'pools': [" POOL
                    "]}",
                    ":1:42: listeners[0].listen: must be a string");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'address': '127.0.0.1:9001', 'weight': '5'}]}]}",
                    ":1:156: pools[0].backends[0].weight: must be an integer from 0 to 256 (got a "
                    "string)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'address': '127.0.0.1:9001', 'weight': true}]}]}",
                    ":1:156: pools[0].backends[0].weight: must be an integer from 0 to 256 (got a "
                    "boolean)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'address': '127.0.0.1:9001', 'weight': null}]}]}",
                    ":1:156: pools[0].backends[0].weight: must be an integer from 0 to 256 (got "
                    "null)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'address': '127.0.0.1:9001', 'name': ['x']}]}]}",
                    ":1:154: pools[0].backends[0].name: must be a string");
}
END_TEST

/* A pool whose one backend has the given extra text, e.g. ", 'weight': 3". */
#define POOL_WITH_BACKEND(extra)                                                                   \
    "{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': [{'address': "            \
    "'127.0.0.1:9001'" extra "}]}]}"

START_TEST(test_ranges)
{
    ck_config_error(
        POOL_WITH_BACKEND(", 'weight': -4"),
        ":1:156: pools[0].backends[0].weight: must be an integer from 0 to 256 (got -4)");
    ck_config_error(POOL_WITH_BACKEND(", 'weight': 257"),
                    ":1:156: pools[0].backends[0].weight: must be an integer from 0 to 256 (got "
                    "257)");
    ck_config_error(POOL_WITH_BACKEND(", 'weight': 1.0"),
                    ":1:156: pools[0].backends[0].weight: must be an integer from 0 to 256 (got a "
                    "real number)");
    ck_config_error("{'shutdown_grace_ms': 3600001, 'listeners': [], 'pools': []}",
                    ":1:23: shutdown_grace_ms: must be an integer from 0 to 3600000 (got 3600001)");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:80', 'pool': 'app', "
                    "'max_connections': 0}], 'pools': [" POOL "]}",
                    ":1:84: listeners[0].max_connections: must be an integer from 1 to 1000000 "
                    "(got 0)");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:80', 'pool': 'app', "
                    "'idle_timeout_ms': 86400001}], 'pools': [" POOL "]}",
                    ":1:84: listeners[0].idle_timeout_ms: must be an integer from 0 to 86400000 "
                    "(got 86400001)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', "
                    "'connect_timeout_ms': 0, 'backends': []}]}",
                    ":1:125: pools[0].connect_timeout_ms: must be an integer from 1 to 3600000 "
                    "(got 0)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', "
                    "'retries': 16, 'backends': []}]}",
                    ":1:114: pools[0].retries: must be an integer from 0 to 15 (got 16)");
}
END_TEST

START_TEST(test_hash_table_size)
{
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', "
                    "'hash_table_size': 65536, 'backends': []}]}",
                    ":1:122: pools[0].hash_table_size: must be a prime from 7 to 1048573 (got "
                    "65536)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', "
                    "'hash_table_size': 5, 'backends': []}]}",
                    ":1:122: pools[0].hash_table_size: must be a prime from 7 to 1048573 (got 5)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', "
                    "'hash_table_size': 'big', 'backends': []}]}",
                    ":1:122: pools[0].hash_table_size: must be a prime from 7 to 1048573 (got a "
                    "string)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', "
                    "'hash_table_size': 7, 'backends': [{'address': '127.0.0.1:1'}, {'address': "
                    "'127.0.0.1:2'}, {'address': '127.0.0.1:3'}, {'address': '127.0.0.1:4'}, "
                    "{'address': '127.0.0.1:5'}, {'address': '127.0.0.1:6'}, {'address': "
                    "'127.0.0.1:7'}]}]}",
                    ":1:122: pools[0].hash_table_size: must be larger than the number of backends "
                    "(7)");
}
END_TEST

START_TEST(test_empty_arrays)
{
    ck_config_error("{'listeners': [], 'pools': []}",
                    ":1:15: listeners: must contain at least one listener");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': []}",
                    ":1:86: pools: must contain at least one pool");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': []}]}",
                    ":1:115: pools[0].backends: must contain at least one backend");
}
END_TEST

START_TEST(test_enums)
{
    ck_config_error(
        "{'log': {'level': 'verbose'}, 'listeners': [], 'pools': []}",
        ":1:19: log.level: must be one of \"error\", \"warn\", \"info\", \"debug\" (got "
        "\"verbose\")");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'strategy': "
                    "'random', 'backends': []}]}",
                    ":1:115: pools[0].strategy: must be one of \"roundrobin\", \"weighted\", "
                    "\"leastconn\", \"iphash\" (got \"random\")");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:80', 'pool': 'app', "
                    "'mode': 'udp'}], 'pools': [" POOL "]}",
                    ":1:73: listeners[0].mode: must be \"tcp\" or \"http\" (got \"udp\")");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:80', 'pool': 'app', "
                    "'mode': 'HTTP'}], 'pools': [" POOL "]}",
                    ":1:73: listeners[0].mode: must be \"tcp\" or \"http\" (got \"HTTP\")");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:80', 'pool': 'app', "
                    "'mode': 1}], 'pools': [" POOL "]}",
                    ":1:73: listeners[0].mode: must be a string");
}
END_TEST

START_TEST(test_names)
{
    ck_config_error("{'listeners': [{'name': '', 'listen': '*:80', 'pool': 'app'}], 'pools': [" POOL
                    "]}",
                    ":1:25: listeners[0].name: must be 1 to 64 characters of A-Z a-z 0-9 _ . - "
                    "(got \"\")");
    ck_config_error(POOL_WITH_BACKEND(", 'name': 'a b'"),
                    ":1:154: pools[0].backends[0].name: must be 1 to 64 characters of A-Z a-z 0-9 "
                    "_ . - (got \"a b\")");
    /* 65 characters: one too many. */
    ck_config_error(
        POOL_WITH_BACKEND(
            ", 'name': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"),
        ":1:154: pools[0].backends[0].name: must be 1 to 64 characters of A-Z a-z 0-9 "
        "_ . - (got "
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\")");
}
END_TEST

START_TEST(test_address_errors)
{

    ck_config_error("{'listeners': [{'name': 'web', 'listen': 'foo', 'pool': 'app'}], 'pools': "
                    "[" POOL "]}",
                    ":1:42: listeners[0].listen: bad address \"foo\" (expected host:port, "
                    "[ipv6]:port or *:port)");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:70000', 'pool': 'app'}], "
                    "'pools': [" POOL "]}",
                    ":1:42: listeners[0].listen: port must be 1..65535 (got 70000)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'address': 'foo'}]}]}",
                    ":1:128: pools[0].backends[0].address: bad address \"foo\" (expected "
                    "host:port, [ipv6]:port)");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'address': '*:80'}]}]}",
                    ":1:128: pools[0].backends[0].address: bad address \"*:80\" (\"*\" is only "
                    "allowed in listen addresses)");

    ck_config_error("{'listeners': [{'name': 'web', 'listen': 'web.example:80', 'pool': "
                    "'app'}], 'pools': [" POOL "]}",
                    ":1:42: listeners[0].listen: bad address \"web.example:80\" (an IP address "
                    "is needed here (or localhost); host names are resolved for backends only)");

    /* A backend's host name is left for the resolver (lb/names.c), with
     * where it was written for its error; the loader looks nothing up. */
    struct lb_config *cfg = load_ok("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', "
                                    "'backends': [{'address': 'NoSuch.invalid:80'}]}]}");
    const struct lb_backend_conf *b = &cfg->pools[0].backends[0];
    ck_assert_str_eq(b->host, "nosuch.invalid");
    ck_assert_uint_eq(b->port, 80);
    ck_assert_uint_eq(b->addrlen, 0);
    ck_assert_str_eq(b->address, "NoSuch.invalid:80");
    ck_assert_ptr_nonnull(strstr(b->where, ":1:128: pools[0].backends[0].address"));
    config_free(cfg);
}
END_TEST

START_TEST(test_duplicates)
{
    ck_config_error(
        "{'listeners': [" LISTENER ",\n"
        "  {'name': 'web', 'listen': '127.0.0.1:8081', 'pool': 'app'}],\n"
        " 'pools': [" POOL "]}",
        ":2:12: listeners[1].name: duplicate listener name \"web\" (also listeners[0])");
    ck_config_error("{'listeners': [" LISTENER ",\n"
                    "  {'name': 'web2', 'listen': '127.0.0.1:8080', 'pool': 'app'}],\n"
                    " 'pools': [" POOL "]}",
                    ":2:30: listeners[1].listen: same address as listener \"web\" "
                    "(\"127.0.0.1:8080\")");
    ck_config_error("{'listeners': [" LISTENER ",\n"
                    "  {'name': 'web2', 'listen': '*:8080', 'pool': 'app'}],\n"
                    " 'pools': [" POOL "]}",
                    ":2:30: listeners[1].listen: overlaps listener \"web\" (\"127.0.0.1:8080\")");
    ck_config_error("{'listeners': [" LISTENER "],\n"
                    " 'pools': [" POOL ",\n"
                    "  {'name': 'app', 'backends': [{'address': '127.0.0.1:9001'}]}]}",
                    ":3:12: pools[1].name: duplicate pool name \"app\" (also pools[0])");
    ck_config_error("{'listeners': [" LISTENER "],\n"
                    " 'pools': [{'name': 'app', 'backends': [\n"
                    "  {'address': '127.0.0.1:9001'},\n"
                    "  {'address': '127.0.0.1:9002', 'name': 'b'},\n"
                    "  {'address': '127.0.0.1:9001'}]}]}",
                    ":5:15: pools[0].backends[2].address: duplicate backend id \"127.0.0.1:9001\" "
                    "(also backends[0])");
    ck_config_error("{'listeners': [" LISTENER "],\n"
                    " 'pools': [{'name': 'app', 'backends': [\n"
                    "  {'address': '127.0.0.1:9001', 'name': 'x'},\n"
                    "  {'address': '127.0.0.1:9002', 'name': 'y'},\n"
                    "  {'address': '127.0.0.1:9003', 'name': 'y'},\n"
                    "  {'address': '127.0.0.1:9004', 'name': 'x'}]}]}",
                    ":5:41: pools[0].backends[2].name: duplicate backend id \"y\" (also "
                    "backends[1])");
}
END_TEST

START_TEST(test_missing_pool)
{
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '*:80', 'pool': 'nope'}],\n"
                    " 'pools': [" POOL "]}",
                    ":1:58: listeners[0].pool: no pool named \"nope\"");
}
END_TEST

START_TEST(test_hostile_text)
{
    /* Control characters and long values never reach the log line raw. */
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'strategy': "
                    "'x\\ny\\u001b[31m\\t\\'', 'backends': []}]}",
                    ":1:115: pools[0].strategy: must be one of \"roundrobin\", \"weighted\", "
                    "\"leastconn\", \"iphash\" (got \"x\\ny\\x1b[31m\\t\\\"\")");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [{'name': 'app', 'backends': "
                    "[{'address': 'a\\r\\nb:1'}]}]}",
                    ":1:128: pools[0].backends[0].address: bad address \"a\\r\\nb:1\" (bad host "
                    "name)");
}
END_TEST

START_TEST(test_error_truncation)
{
    struct lb_config *cfg;
    char err[16];

    tmp_write("{'listeners': 5}");
    memset(err, 'z', sizeof(err));
    ck_assert_int_eq(config_load(tmp_path, &cfg, err, 10), -1);
    ck_assert_uint_eq(strlen(err), 9);
    ck_assert_int_eq(strncmp(err, tmp_path, 9), 0);
    ck_assert_int_eq(err[10], 'z');
    memset(err, 'z', sizeof(err));
    ck_assert_int_eq(config_load(tmp_path, &cfg, err, 0), -1);
    ck_assert_int_eq(err[0], 'z');
    ck_assert_ptr_null(cfg);
    unlink(tmp_path);
}
END_TEST

/* A pool with health_check / passive / slow_start_ms (inner is the inside
 * of the pool object after its name). */
#define HC_CONFIG(inner)                                                                           \
    "{'listeners': [" LISTENER "], 'pools': [{'name': 'app', " inner                               \
    ", 'backends': [{'address': '127.0.0.1:9001'}]}]}"

START_TEST(test_health_defaults)
{
    struct lb_config *cfg = load_ok(MINIMAL);
    const struct lb_pool_conf *p = &cfg->pools[0];
    ck_assert_int_eq(p->health.type, LB_CHECK_NONE);
    ck_assert_uint_eq(p->passive.max_failures, 0);
    ck_assert_uint_eq(p->slow_start_ms, 0);
    config_free(cfg);

    cfg = load_ok(HC_CONFIG("'health_check': {'type': 'http'}, 'passive': {}"));
    p = &cfg->pools[0];
    ck_assert_int_eq(p->health.type, LB_CHECK_HTTP);
    ck_assert_uint_eq(p->health.interval_ms, 2000);
    ck_assert_uint_eq(p->health.timeout_ms, 1000);
    ck_assert_uint_eq(p->health.rise, 2);
    ck_assert_uint_eq(p->health.fall, 3);
    ck_assert_uint_eq(p->health.port, 0);
    ck_assert_str_eq(p->health.method, "GET");
    ck_assert_str_eq(p->health.path, "/");
    ck_assert_ptr_null(p->health.host);
    ck_assert_uint_eq(p->health.status_min, 200);
    ck_assert_uint_eq(p->health.status_max, 399);
    ck_assert_ptr_null(p->health.expect_body);
    ck_assert_uint_eq(p->passive.max_failures, 3);
    ck_assert_uint_eq(p->passive.ejection_ms, 30000);
    config_free(cfg);

    cfg = load_ok(HC_CONFIG("'health_check': {'type': 'tcp'}"));
    ck_assert_int_eq(cfg->pools[0].health.type, LB_CHECK_TCP);
    ck_assert_ptr_null(cfg->pools[0].health.path);
    config_free(cfg);
}
END_TEST

START_TEST(test_health_fields)
{
    struct lb_config *cfg = load_ok(HC_CONFIG(
        "'health_check': {'type': 'http', 'interval_ms': 500, 'timeout_ms': 200, 'rise': 4, "
        "'fall': 5, 'path': '/healthz?full=1', 'method': 'HEAD', 'host': 'app.local:8080', "
        "'expect_status': '204', 'expect_body': 'all good', 'port': 9100}, "
        "'passive': {'max_failures': 7, 'ejection_ms': 1500}, 'slow_start_ms': 20000"));
    const struct lb_pool_conf *p = &cfg->pools[0];
    ck_assert_uint_eq(p->health.interval_ms, 500);
    ck_assert_uint_eq(p->health.timeout_ms, 200);
    ck_assert_uint_eq(p->health.rise, 4);
    ck_assert_uint_eq(p->health.fall, 5);
    ck_assert_str_eq(p->health.path, "/healthz?full=1");
    ck_assert_str_eq(p->health.method, "HEAD");
    ck_assert_str_eq(p->health.host, "app.local:8080");
    ck_assert_uint_eq(p->health.status_min, 204);
    ck_assert_uint_eq(p->health.status_max, 204);
    ck_assert_str_eq(p->health.expect_body, "all good");
    ck_assert_uint_eq(p->health.port, 9100);
    ck_assert_uint_eq(p->passive.max_failures, 7);
    ck_assert_uint_eq(p->passive.ejection_ms, 1500);
    ck_assert_uint_eq(p->slow_start_ms, 20000);
    config_free(cfg);

    cfg = load_ok(HC_CONFIG("'health_check': {'type': 'http', 'expect_status': 301}"));
    ck_assert_uint_eq(cfg->pools[0].health.status_min, 301);
    ck_assert_uint_eq(cfg->pools[0].health.status_max, 301);
    config_free(cfg);
    cfg = load_ok(HC_CONFIG("'health_check': {'type': 'http', 'expect_status': '100-599'}"));
    ck_assert_uint_eq(cfg->pools[0].health.status_min, 100);
    ck_assert_uint_eq(cfg->pools[0].health.status_max, 599);
    config_free(cfg);
}
END_TEST

START_TEST(test_health_errors)
{
    ck_config_error(HC_CONFIG("'health_check': {'type': 'udp'}"),
                    ":1:128: pools[0].health_check.type: must be \"tcp\", \"http\" or "
                    "\"https\" (got \"udp\")");
    ck_config_error(HC_CONFIG("'health_check': {'interval_ms': 100}"),
                    ":1:119: pools[0].health_check: missing required key \"type\"");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'tcp', 'intervall_ms': 100}"),
                    ":1:135: pools[0].health_check: unknown key \"intervall_ms\" (did you mean "
                    "\"interval_ms\"?)");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'tcp', 'path': '/'}"),
                    ":1:135: pools[0].health_check: key \"path\" only applies to \"type\": "
                    "\"http\" or \"https\"");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'tcp', 'interval_ms': 5}"),
                    ":1:150: pools[0].health_check.interval_ms: must be an integer from 10 to "
                    "86400000 (got 5)");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'tcp', 'rise': 0}"),
                    ":1:143: pools[0].health_check.rise: must be an integer from 1 to 100 (got "
                    "0)");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'tcp', 'port': 70000}"),
                    ":1:143: pools[0].health_check.port: must be an integer from 1 to 65535 "
                    "(got 70000)");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'path': 'healthz'}"),
                    ":1:144: pools[0].health_check.path: must be a path starting with \"/\", "
                    "without spaces or control characters (got \"healthz\")");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'path': '/a b'}"),
                    ":1:144: pools[0].health_check.path: must be a path starting with \"/\", "
                    "without spaces or control characters (got \"/a b\")");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'method': 'get'}"),
                    ":1:146: pools[0].health_check.method: must be an HTTP method in capitals, "
                    "like \"GET\" (got \"get\")");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'host': 'a\\r\\nX: y'}"),
                    ":1:144: pools[0].health_check.host: must be a host name, optionally with "
                    ":port (got \"a\\r\\nX: y\")");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'expect_status': '2xx'}"),
                    ":1:153: pools[0].health_check.expect_status: must be a status code or range "
                    "from 100 to 599, like \"200\" or \"200-399\" (got \"2xx\")");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'expect_status': '399-200'}"),
                    ":1:153: pools[0].health_check.expect_status: must be a status code or range "
                    "from 100 to 599, like \"200\" or \"200-399\" (got \"399-200\")");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'expect_status': 600}"),
                    ":1:153: pools[0].health_check.expect_status: must be a status code or range "
                    "from 100 to 599, like \"200\" or \"200-399\" (got 600)");
    ck_config_error(HC_CONFIG("'health_check': {'type': 'http', 'expect_body': ''}"),
                    ":1:151: pools[0].health_check.expect_body: must be 1 to 1024 characters of "
                    "printable ASCII (got \"\")");
    ck_config_error(HC_CONFIG("'health_check': 'http'"),
                    ":1:119: pools[0].health_check: must be an object");
    ck_config_error(HC_CONFIG("'passive': {'max_failures': -1}"),
                    ":1:131: pools[0].passive.max_failures: must be an integer from 0 to 1000 "
                    "(got -1)");
    ck_config_error(HC_CONFIG("'passive': {'ejection_ms': 0}"),
                    ":1:130: pools[0].passive.ejection_ms: must be an integer from 1 to 86400000 "
                    "(got 0)");
    ck_config_error(HC_CONFIG("'slow_start_ms': 'fast'"),
                    ":1:120: pools[0].slow_start_ms: must be an integer from 0 to 3600000 (got a "
                    "string)");
}
END_TEST

/* A listener with the given extra keys (tls, sni_routes), pools app and api. */
#define TLS_CONFIG(lextra, pextra)                                                                 \
    "{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8443', 'pool': 'app'" lextra "}], "       \
    "'pools': [{'name': 'app', 'backends': [{'address': '127.0.0.1:9001'}]" pextra "}, "           \
    "{'name': 'api', 'backends': [{'address': '127.0.0.1:9002'}]}]}"

START_TEST(test_tls_keys)
{
    struct lb_config *cfg = load_ok(TLS_CONFIG("", ""));
    ck_assert_int_eq(cfg->listeners[0].tls.enabled, 0);
    ck_assert_uint_eq(cfg->listeners[0].tls.handshake_timeout_ms, 10000);
    ck_assert_int_eq(cfg->pools[0].tls.enabled, 0);
    ck_assert_int_eq(cfg->admin.tls.enabled, 0);
    ck_assert_uint_eq(cfg->listeners[0].nsni_routes, 0);
    config_free(cfg);

    cfg = load_ok(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a.pem', 'key': '/k/a.key'}, "
                             "{'cert': 'd/b.pem', 'key': 'b.key'}]}",
                             ""));
    const struct lb_tls_server_conf *t = &cfg->listeners[0].tls;
    ck_assert_int_eq(t->enabled, 1);
    ck_assert_uint_eq(t->ncerts, 2);
    ck_assert_str_eq(t->certs[0].cert, "/tmp/a.pem"); /* against the config file's folder */
    ck_assert_str_eq(t->certs[0].key, "/k/a.key");
    ck_assert_str_eq(t->certs[1].cert, "/tmp/d/b.pem");
    ck_assert_str_eq(t->min_version, "TLSv1.2");
    ck_assert_ptr_null(t->ciphers);
    ck_assert_ptr_null(t->ciphersuites);
    ck_assert_uint_eq(t->nalpn, 0);
    ck_assert_uint_eq(t->handshake_timeout_ms, 10000);
    ck_assert_msg(strncmp(t->where, tmp_path, strlen(tmp_path)) == 0, "%s", t->where);
    ck_assert_str_eq(t->where + strlen(tmp_path), ":1:82: listeners[0].tls");
    config_free(cfg);

    cfg = load_ok(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a', 'key': "
                             "'b'}], 'min_version': 'TLSv1.3', 'ciphers': 'HIGH:!aNULL', "
                             "'ciphersuites': 'TLS_AES_128_GCM_SHA256', 'alpn': ['h2', "
                             "'http/1.1'], 'handshake_timeout_ms': 500}",
                             ", 'tls': {'ca': 'ca.pem', 'server_name': 'app.internal', 'cert': "
                             "'c.pem', 'key': 'c.key', 'verify': false}, 'health_check': "
                             "{'type': 'https'}"));
    t = &cfg->listeners[0].tls;
    ck_assert_str_eq(t->min_version, "TLSv1.3");
    ck_assert_str_eq(t->ciphers, "HIGH:!aNULL");
    ck_assert_str_eq(t->ciphersuites, "TLS_AES_128_GCM_SHA256");
    ck_assert_uint_eq(t->nalpn, 2);
    ck_assert_str_eq(t->alpn[0], "h2");
    ck_assert_str_eq(t->alpn[1], "http/1.1");
    ck_assert_uint_eq(t->handshake_timeout_ms, 500);
    const struct lb_tls_client_conf *c = &cfg->pools[0].tls;
    ck_assert_int_eq(c->enabled, 1);
    ck_assert_int_eq(c->verify, 0);
    ck_assert_str_eq(c->ca, "/tmp/ca.pem");
    ck_assert_str_eq(c->server_name, "app.internal");
    ck_assert_str_eq(c->cert, "/tmp/c.pem");
    ck_assert_str_eq(c->key, "/tmp/c.key");
    ck_assert_str_eq(c->min_version, "TLSv1.2");
    ck_assert_int_eq(cfg->pools[0].health.type, LB_CHECK_HTTPS);
    ck_assert_int_eq(cfg->pools[0].health.verify, 0); /* the pool's */
    ck_assert_str_eq(cfg->pools[0].health.path, "/");
    config_free(cfg);

    /* An https check without a pool "tls" verifies; its own "verify" wins. */
    cfg = load_ok(TLS_CONFIG("", ", 'health_check': {'type': 'https', 'path': '/h'}"));
    ck_assert_int_eq(cfg->pools[0].health.verify, 1);
    ck_assert_int_eq(cfg->pools[0].tls.enabled, 0);
    config_free(cfg);
    cfg = load_ok(TLS_CONFIG("", ", 'tls': {'enabled': false}, 'health_check': {'type': 'https', "
                                 "'verify': false}"));
    ck_assert_int_eq(cfg->pools[0].health.verify, 0);
    ck_assert_int_eq(cfg->pools[0].tls.enabled, 0);
    ck_assert_int_eq(cfg->pools[0].tls.verify, 1);
    config_free(cfg);

    cfg = load_ok(TLS_CONFIG(", 'sni_routes': [{'server_name': 'API.Example', 'pool': 'api'}, "
                             "{'server_name': '*.example', 'pool': 'app'}]",
                             ""));
    ck_assert_uint_eq(cfg->listeners[0].nsni_routes, 2);
    ck_assert_str_eq(cfg->listeners[0].sni_routes[0].server_name, "api.example");
    ck_assert_uint_eq(cfg->listeners[0].sni_routes[0].pool_index, 1);
    ck_assert_str_eq(cfg->listeners[0].sni_routes[1].server_name, "*.example");
    ck_assert_uint_eq(cfg->listeners[0].sni_routes[1].pool_index, 0);
    config_free(cfg);

    cfg = load_ok("{'listeners': [" LISTENER "], 'pools': [" POOL "], 'admin': {'listen': "
                  "'127.0.0.1:9090', 'tls': {'cert': 'adm.pem', 'key': 'adm.key'}}}");
    ck_assert_int_eq(cfg->admin.tls.enabled, 1);
    ck_assert_uint_eq(cfg->admin.tls.ncerts, 1);
    ck_assert_str_eq(cfg->admin.tls.certs[0].cert, "/tmp/adm.pem");
    ck_assert_str_eq(cfg->admin.tls.min_version, "TLSv1.2");
    config_free(cfg);
}
END_TEST

START_TEST(test_tls_errors)
{
    ck_config_error(TLS_CONFIG(", 'tls': {}", ""),
                    ":1:82: listeners[0].tls: missing required key \"certificates\"");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': []}", ""),
                    ":1:99: listeners[0].tls.certificates: must contain at least one certificate");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a'}]}", ""),
                    ":1:100: listeners[0].tls.certificates[0]: missing required key \"key\"");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': '', 'key': 'k'}]}", ""),
                    ":1:109: listeners[0].tls.certificates[0].cert: must be a file name of 1 to "
                    "4096 bytes");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a', 'key': 'k', 'pass': "
                               "'x'}]}",
                               ""),
                    ":1:126: listeners[0].tls.certificates[0]: unknown key \"pass\"");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a', 'key': 'k'}], "
                               "'min_version': 'TLSv1.1'}",
                               ""),
                    ":1:143: listeners[0].tls.min_version: must be one of \"TLSv1.2\", "
                    "\"TLSv1.3\" (got \"TLSv1.1\")");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a', 'key': 'k'}], "
                               "'alpn': []}",
                               ""),
                    ":1:136: listeners[0].tls.alpn: must be an array of 1 to 16 protocol "
                    "names, like [\"http/1.1\"]");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a', 'key': 'k'}], "
                               "'alpn': ['h2', '']}",
                               ""),
                    ":1:143: listeners[0].tls.alpn[1]: must be a protocol name of 1 to 255 bytes");
    ck_config_error(TLS_CONFIG(", 'mode': 'http', 'tls': {'certificates': [{'cert': 'a', 'key': "
                               "'k'}], 'alpn': ['http/1.1', 'h2']}",
                               ""),
                    ":1:165: listeners[0].tls.alpn[1]: \"mode\": \"http\" speaks HTTP/1.x only: "
                    "\"http/1.1\" or \"http/1.0\" (got \"h2\")");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a', 'key': 'k'}], "
                               "'handshake_timeout_ms': 10}",
                               ""),
                    ":1:152: listeners[0].tls.handshake_timeout_ms: must be an integer from 100 "
                    "to 3600000 (got 10)");
    ck_config_error(TLS_CONFIG(", 'tls': {'certificates': [{'cert': 'a', 'key': 'k'}]}, "
                               "'sni_routes': [{'server_name': 'a', 'pool': 'api'}]",
                               ""),
                    ":1:129: listeners[0]: key \"sni_routes\" only applies to a \"mode\": \"tcp\" "
                    "listener without \"tls\" (it routes TLS it does not decrypt)");
    ck_config_error(TLS_CONFIG(", 'mode': 'http', 'sni_routes': [{'server_name': 'a', 'pool': "
                               "'api'}]",
                               ""),
                    ":1:91: listeners[0]: key \"sni_routes\" only applies to a \"mode\": \"tcp\" "
                    "listener without \"tls\" (it routes TLS it does not decrypt)");
    ck_config_error(TLS_CONFIG(", 'sni_routes': [{'server_name': 'a b', 'pool': 'api'}]", ""),
                    ":1:106: listeners[0].sni_routes[0].server_name: must be a DNS name like "
                    "\"api.example.com\" or a wildcard like \"*.example.com\" (got \"a b\")");
    ck_config_error(TLS_CONFIG(", 'sni_routes': [{'server_name': 'a', 'pool': 'api'}, "
                               "{'server_name': 'A', 'pool': 'app'}]",
                               ""),
                    ":1:143: listeners[0].sni_routes[1].server_name: duplicate server_name "
                    "\"a\" (also sni_routes[0])");
    ck_config_error(TLS_CONFIG(", 'sni_routes': [{'server_name': 'a', 'pool': 'nope'}]", ""),
                    ":1:119: listeners[0].sni_routes[0].pool: no pool named \"nope\"");
    ck_config_error(TLS_CONFIG(", 'sni_routes': [{'server_name': 'a'}]", ""),
                    ":1:90: listeners[0].sni_routes[0]: missing required key \"pool\"");
    ck_config_error(TLS_CONFIG("", ", 'tls': {'cert': 'c.pem'}"),
                    ":1:156: pools[0].tls: a client certificate needs both \"cert\" and \"key\"");
    ck_config_error(TLS_CONFIG("", ", 'tls': {'server_name': 'a/b'}"),
                    ":1:171: pools[0].tls.server_name: must be a DNS name or an IP address, like "
                    "\"app.internal\" (got \"a/b\")");
    ck_config_error(TLS_CONFIG("", ", 'tls': {'verify': 'yes'}"),
                    ":1:166: pools[0].tls.verify: must be true or false (got a string)");
    ck_config_error(TLS_CONFIG("", ", 'tls': {'ciphers': ''}"),
                    ":1:167: pools[0].tls.ciphers: must be 1 to 1024 characters of printable "
                    "ASCII (got \"\")");
    ck_config_error(TLS_CONFIG("", ", 'health_check': {'type': 'http', 'verify': false}"),
                    ":1:181: pools[0].health_check: key \"verify\" only applies to \"type\": "
                    "\"https\"");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [" POOL "], 'admin': {'listen': "
                    "'127.0.0.1:9090', 'tls': {'cert': 'adm.pem'}}}",
                    ":1:195: admin.tls: missing required key \"key\"");
    ck_config_error("{'listeners': [" LISTENER "], 'pools': [" POOL "], 'admin': {'listen': "
                    "'127.0.0.1:9090', 'tls': {'cert': 'a', 'key': 'b', 'alpn': ['h2']}}}",
                    ":1:221: admin.tls: unknown key \"alpn\"");
}
END_TEST

/* A listener, or a pool, with the given "tcp_keepalive" value. */
#define KA_LISTENER(ka)                                                                            \
    "{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app', "                   \
    "'tcp_keepalive': " ka "}], 'pools': [" POOL "]}"
#define KA_POOL(ka) HC_CONFIG("'tcp_keepalive': " ka)

static void ck_keepalive(const struct lb_keepalive_conf *ka, unsigned idle, unsigned interval,
                         unsigned count)
{
    ck_assert_int_eq(ka->enabled, 1);
    ck_assert_uint_eq(ka->idle_s, idle);
    ck_assert_uint_eq(ka->interval_s, interval);
    ck_assert_uint_eq(ka->count, count);
}

START_TEST(test_keepalive)
{
    /* Absent: off on both, the OS default. */
    struct lb_config *cfg = load_ok(MINIMAL);
    ck_assert_int_eq(cfg->listeners[0].keepalive.enabled, 0);
    ck_assert_int_eq(cfg->pools[0].keepalive.enabled, 0);
    config_free(cfg);

    /* {}: on with the defaults. */
    cfg = load_ok("{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app', "
                  "'tcp_keepalive': {}}], 'pools': [{'name': 'app', 'tcp_keepalive': {}, "
                  "'backends': [{'address': '127.0.0.1:9001'}]}]}");
    ck_keepalive(&cfg->listeners[0].keepalive, 60, 10, 6);
    ck_keepalive(&cfg->pools[0].keepalive, 60, 10, 6);
    config_free(cfg);

    /* Each key alone; the others keep their defaults. Only the listener's
     * or only the pool's: the other stays off. */
    cfg = load_ok(KA_LISTENER("{'idle': 7}"));
    ck_keepalive(&cfg->listeners[0].keepalive, 7, 10, 6);
    ck_assert_int_eq(cfg->pools[0].keepalive.enabled, 0);
    config_free(cfg);
    cfg = load_ok(KA_POOL("{'interval': 3}"));
    ck_assert_int_eq(cfg->listeners[0].keepalive.enabled, 0);
    ck_keepalive(&cfg->pools[0].keepalive, 60, 3, 6);
    config_free(cfg);
    cfg = load_ok(KA_POOL("{'count': 2}"));
    ck_keepalive(&cfg->pools[0].keepalive, 60, 10, 2);
    config_free(cfg);

    /* The bounds of each range are accepted. */
    cfg = load_ok(KA_LISTENER("{'idle': 1, 'interval': 1, 'count': 1}"));
    ck_keepalive(&cfg->listeners[0].keepalive, 1, 1, 1);
    config_free(cfg);
    cfg = load_ok(KA_POOL("{'idle': 32767, 'interval': 32767, 'count': 127}"));
    ck_keepalive(&cfg->pools[0].keepalive, 32767, 32767, 127);
    config_free(cfg);
}
END_TEST

#define SPLICE_LISTENER(v)                                                                         \
    "{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app', "                   \
    "'splice': " v "}], 'pools': [" POOL "]}"

/* A listener's "splice": on by default, a boolean, nothing else. */
START_TEST(test_splice)
{
    struct lb_config *cfg = load_ok(KA_LISTENER("{}"));
    ck_assert_int_eq(cfg->listeners[0].splice, 1);
    config_free(cfg);
    cfg = load_ok(SPLICE_LISTENER("false"));
    ck_assert_int_eq(cfg->listeners[0].splice, 0);
    config_free(cfg);
    cfg = load_ok(SPLICE_LISTENER("true"));
    ck_assert_int_eq(cfg->listeners[0].splice, 1);
    config_free(cfg);
    ck_config_error(SPLICE_LISTENER("'yes'"),
                    ":1:85: listeners[0].splice: must be true or false (got a string)");
    ck_config_error(SPLICE_LISTENER("1"),
                    ":1:85: listeners[0].splice: must be true or false (got an integer)");
}
END_TEST

/* A listener's "reuse_port": off by default, a boolean. */
START_TEST(test_reuse_port)
{
    struct lb_config *cfg = load_ok(KA_LISTENER("{}"));
    ck_assert_int_eq(cfg->listeners[0].reuse_port, 0);
    config_free(cfg);
    cfg = load_ok("{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app', "
                  "'reuse_port': true}], 'pools': [" POOL "]}");
    ck_assert_int_eq(cfg->listeners[0].reuse_port, 1);
    config_free(cfg);
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app', "
                    "'reuse_port': 'yes'}], 'pools': [" POOL "]}",
                    ":1:89: listeners[0].reuse_port: must be true or false (got a string)");
}
END_TEST

#define PROXY_LISTENER(kv)                                                                         \
    "{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app', " kv "}], "         \
    "'pools': [" POOL "]}"
#define PROXY_POOL(kv)                                                                             \
    "{'listeners': [" LISTENER "], 'pools': [{'name': 'app', " kv                                  \
    ", 'backends': [{'address': '127.0.0.1:9001'}]}]}"

/* PROXY protocol: a listener's "accept_proxy" (off by default) and its
 * "request_timeout_ms"; a pool's "send_proxy" ("v1", "v2"; off by default)
 * and its health check's "send_proxy", which needs the pool's. */
START_TEST(test_proxy_keys)
{
    struct lb_config *cfg = load_ok(KA_LISTENER("{}"));
    ck_assert_int_eq(cfg->listeners[0].accept_proxy, 0);
    ck_assert_uint_eq(cfg->listeners[0].request_timeout_ms, 10000);
    ck_assert_int_eq(cfg->pools[0].send_proxy, LB_PROXY_OFF);
    ck_assert_int_eq(cfg->pools[0].health.send_proxy, LB_PROXY_OFF);
    config_free(cfg);
    cfg = load_ok(PROXY_LISTENER("'accept_proxy': true, 'request_timeout_ms': 250"));
    ck_assert_int_eq(cfg->listeners[0].accept_proxy, 1);
    ck_assert_uint_eq(cfg->listeners[0].request_timeout_ms, 250);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'send_proxy': 'v1'"));
    ck_assert_int_eq(cfg->pools[0].send_proxy, LB_PROXY_V1);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'send_proxy': 'v2', 'health_check': {'type': 'tcp', "
                             "'send_proxy': true}"));
    ck_assert_int_eq(cfg->pools[0].send_proxy, LB_PROXY_V2);
    ck_assert_int_eq(cfg->pools[0].health.send_proxy, LB_PROXY_V2);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'send_proxy': 'off'"));
    ck_assert_int_eq(cfg->pools[0].send_proxy, LB_PROXY_OFF);
    config_free(cfg);
    /* Without the check's key: on the traffic port the checks send the
     * pool's header, on another port none; false turns it off. */
    cfg = load_ok(PROXY_POOL("'send_proxy': 'v1', 'health_check': {'type': 'http'}"));
    ck_assert_int_eq(cfg->pools[0].health.send_proxy, LB_PROXY_V1);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'send_proxy': 'v1', 'health_check': {'type': 'tcp', 'port': 81}"));
    ck_assert_int_eq(cfg->pools[0].health.send_proxy, LB_PROXY_OFF);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'send_proxy': 'v2', 'health_check': {'type': 'tcp', 'port': 81, "
                             "'send_proxy': true}"));
    ck_assert_int_eq(cfg->pools[0].health.send_proxy, LB_PROXY_V2);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'send_proxy': 'v2', 'health_check': {'type': 'tcp', "
                             "'send_proxy': false}"));
    ck_assert_int_eq(cfg->pools[0].health.send_proxy, LB_PROXY_OFF);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'health_check': {'type': 'tcp'}"));
    ck_assert_int_eq(cfg->pools[0].health.send_proxy, LB_PROXY_OFF);
    config_free(cfg);

    ck_config_error(PROXY_LISTENER("'accept_proxy': 'yes'"),
                    ":1:91: listeners[0].accept_proxy: must be true or false (got a string)");
    ck_config_error(PROXY_LISTENER("'request_timeout_ms': 99"),
                    ":1:97: listeners[0].request_timeout_ms: must be an integer from 100 to "
                    "3600000 (got 99)");
    ck_config_error(PROXY_POOL("'send_proxy': 'v3'"),
                    ":1:117: pools[0].send_proxy: must be one of \"off\", \"v1\", \"v2\" "
                    "(got \"v3\")");
    ck_config_error(PROXY_POOL("'send_proxy': true"),
                    ":1:117: pools[0].send_proxy: must be a string");
    ck_config_error(PROXY_POOL("'health_check': {'type': 'tcp', 'send_proxy': true}"),
                    ":1:149: pools[0].health_check.send_proxy: needs the pool's \"send_proxy\" "
                    "(\"v1\" or \"v2\"): the check sends that version");
    ck_config_error(PROXY_POOL("'send_proxy': 'v1', 'health_check': {'type': 'tcp', "
                               "'send_proxy': 1}"),
                    ":1:169: pools[0].health_check.send_proxy: must be true or false (got an "
                    "integer)");
}
END_TEST

START_TEST(test_keepalive_errors)
{
    ck_config_error(KA_LISTENER("{'idle': 0}"),
                    ":1:101: listeners[0].tcp_keepalive.idle: must be an integer from 1 to 32767 "
                    "(got 0)");
    ck_config_error(KA_LISTENER("{'idle': 32768}"),
                    ":1:101: listeners[0].tcp_keepalive.idle: must be an integer from 1 to 32767 "
                    "(got 32768)");
    ck_config_error(KA_LISTENER("{'interval': 0}"),
                    ":1:105: listeners[0].tcp_keepalive.interval: must be an integer from 1 to "
                    "32767 (got 0)");
    ck_config_error(KA_LISTENER("{'interval': 32768}"),
                    ":1:105: listeners[0].tcp_keepalive.interval: must be an integer from 1 to "
                    "32767 (got 32768)");
    ck_config_error(KA_LISTENER("{'count': 0}"),
                    ":1:102: listeners[0].tcp_keepalive.count: must be an integer from 1 to 127 "
                    "(got 0)");
    ck_config_error(KA_LISTENER("{'count': 128}"),
                    ":1:102: listeners[0].tcp_keepalive.count: must be an integer from 1 to 127 "
                    "(got 128)");
    ck_config_error(KA_POOL("{'idle': 0}"),
                    ":1:129: pools[0].tcp_keepalive.idle: must be an integer from 1 to 32767 "
                    "(got 0)");
    ck_config_error(KA_POOL("{'idle': 32768}"),
                    ":1:129: pools[0].tcp_keepalive.idle: must be an integer from 1 to 32767 "
                    "(got 32768)");
    ck_config_error(KA_POOL("{'interval': 0}"),
                    ":1:133: pools[0].tcp_keepalive.interval: must be an integer from 1 to 32767 "
                    "(got 0)");
    ck_config_error(KA_POOL("{'interval': 32768}"),
                    ":1:133: pools[0].tcp_keepalive.interval: must be an integer from 1 to 32767 "
                    "(got 32768)");
    ck_config_error(KA_POOL("{'count': 0}"),
                    ":1:130: pools[0].tcp_keepalive.count: must be an integer from 1 to 127 "
                    "(got 0)");
    ck_config_error(KA_POOL("{'count': 128}"),
                    ":1:130: pools[0].tcp_keepalive.count: must be an integer from 1 to 127 "
                    "(got 128)");

    /* Unknown keys, with and without a hint, inside and for the object. */
    ck_config_error(KA_LISTENER("{'idel': 5}"),
                    ":1:93: listeners[0].tcp_keepalive: unknown key \"idel\" (did you mean "
                    "\"idle\"?)");
    ck_config_error(KA_POOL("{'idle': 5, 'intervall': 5}"),
                    ":1:132: pools[0].tcp_keepalive: unknown key \"intervall\" (did you mean "
                    "\"interval\"?)");
    ck_config_error(KA_POOL("{'probes': 3}"),
                    ":1:121: pools[0].tcp_keepalive: unknown key \"probes\"");
    ck_config_error("{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'pool': 'app', "
                    "'tcp_keepalve': {}}], 'pools': [" POOL "]}",
                    ":1:75: listeners[0]: unknown key \"tcp_keepalve\" (did you mean "
                    "\"tcp_keepalive\"?)");
    ck_config_error(HC_CONFIG("'tcp_keep_alive': {}"),
                    ":1:103: pools[0]: unknown key \"tcp_keep_alive\" (did you mean "
                    "\"tcp_keepalive\"?)");

    /* Wrong types. */
    ck_config_error(KA_LISTENER("true"), ":1:92: listeners[0].tcp_keepalive: must be an object");
    ck_config_error(KA_POOL("[]"), ":1:120: pools[0].tcp_keepalive: must be an object");
    ck_config_error(KA_LISTENER("{'idle': '60'}"),
                    ":1:101: listeners[0].tcp_keepalive.idle: must be an integer from 1 to 32767 "
                    "(got a string)");
    ck_config_error(KA_POOL("{'count': 1.5}"),
                    ":1:130: pools[0].tcp_keepalive.count: must be an integer from 1 to 127 (got "
                    "a real number)");
    ck_config_error(KA_POOL("{'interval': null}"),
                    ":1:133: pools[0].tcp_keepalive.interval: must be an integer from 1 to 32767 "
                    "(got null)");
}
END_TEST

/* A listener in "mode": "http" with the given extra keys (kv may be empty). */
#define HTTP_LISTENER(kv)                                                                          \
    "{'listeners': [{'name': 'web', 'listen': '127.0.0.1:8080', 'mode': 'http', 'pool': 'app'" kv  \
    "}], 'pools': [" POOL "]}"

static void ck_http_listener(const struct lb_listener_conf *l, unsigned max_header_bytes,
                             int x_real_ip, int forwarded)
{
    ck_assert_int_eq(l->mode, LB_MODE_HTTP);
    ck_assert_uint_eq(l->max_header_bytes, max_header_bytes);
    ck_assert_int_eq(l->x_real_ip, x_real_ip);
    ck_assert_int_eq(l->forwarded, forwarded);
}

static void ck_reuse(const struct lb_pool_conf *p, unsigned max_idle, unsigned idle_timeout_ms,
                     unsigned response_timeout_ms)
{
    ck_assert_uint_eq(p->reuse_max_idle, max_idle);
    ck_assert_uint_eq(p->reuse_idle_timeout_ms, idle_timeout_ms);
    ck_assert_uint_eq(p->response_timeout_ms, response_timeout_ms);
}

/* HTTP mode: a listener's "mode": "http" with "max_header_bytes",
 * "x_real_ip" and "forwarded" (defaults stored in tcp mode too); a pool's
 * "keepalive" (connection reuse, not "tcp_keepalive") and
 * "response_timeout_ms", valid whatever its listeners' modes. */
START_TEST(test_http_keys)
{
    struct lb_config *cfg = load_ok(MINIMAL);
    ck_assert_int_eq(cfg->listeners[0].mode, LB_MODE_TCP);
    ck_assert_uint_eq(cfg->listeners[0].max_header_bytes, 32768);
    ck_assert_int_eq(cfg->listeners[0].x_real_ip, 0);
    ck_assert_int_eq(cfg->listeners[0].forwarded, 0);
    ck_reuse(&cfg->pools[0], 32, 60000, 60000);
    config_free(cfg);

    cfg = load_ok(HTTP_LISTENER(""));
    ck_http_listener(&cfg->listeners[0], 32768, 0, 0);
    ck_assert_uint_eq(cfg->listeners[0].request_timeout_ms, 10000);
    ck_reuse(&cfg->pools[0], 32, 60000, 60000);
    config_free(cfg);
    cfg = load_ok(HTTP_LISTENER(", 'max_header_bytes': 1024, 'x_real_ip': true, 'forwarded': "
                                "false, 'request_timeout_ms': 100"));
    ck_http_listener(&cfg->listeners[0], 1024, 1, 0);
    ck_assert_uint_eq(cfg->listeners[0].request_timeout_ms, 100);
    config_free(cfg);
    cfg = load_ok(HTTP_LISTENER(", 'max_header_bytes': 1048576, 'x_real_ip': false, "
                                "'forwarded': true"));
    ck_http_listener(&cfg->listeners[0], 1048576, 0, 1);
    config_free(cfg);
    cfg = load_ok(PROXY_LISTENER("'mode': 'tcp', 'request_timeout_ms': 3600000"));
    ck_assert_int_eq(cfg->listeners[0].mode, LB_MODE_TCP);
    ck_assert_uint_eq(cfg->listeners[0].max_header_bytes, 32768);
    config_free(cfg);

    /* {}: the defaults; each member alone keeps the other's default. */
    cfg = load_ok(PROXY_POOL("'keepalive': {}"));
    ck_reuse(&cfg->pools[0], 32, 60000, 60000);
    ck_assert_int_eq(cfg->pools[0].keepalive.enabled, 0);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'keepalive': {'max_idle': 0}"));
    ck_reuse(&cfg->pools[0], 0, 60000, 60000);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'keepalive': {'idle_timeout_ms': 100}, 'response_timeout_ms': 100"));
    ck_reuse(&cfg->pools[0], 32, 100, 100);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'keepalive': {'max_idle': 10000, 'idle_timeout_ms': 3600000}, "
                             "'response_timeout_ms': 86400000, 'tcp_keepalive': {'idle': 5}"));
    ck_reuse(&cfg->pools[0], 10000, 3600000, 86400000);
    ck_keepalive(&cfg->pools[0].keepalive, 5, 10, 6);
    config_free(cfg);
}
END_TEST

/* Limits: the global "max_connections" (top level), a backend's
 * "max_connections" and a pool's "queue"; absent, none of them limits
 * (0), and the queue holds nobody. */
START_TEST(test_limit_keys)
{
    struct lb_config *cfg = load_ok(MINIMAL);
    ck_assert_uint_eq(cfg->max_connections, 0);
    ck_assert_uint_eq(cfg->pools[0].backends[0].max_connections, 0);
    ck_assert_uint_eq(cfg->pools[0].queue_max, 0);
    ck_assert_uint_eq(cfg->pools[0].queue_timeout_ms, 5000);
    config_free(cfg);
    cfg =
        load_ok("{'max_connections': 10000000, 'listeners': [" LISTENER "], 'pools': [" POOL "]}");
    ck_assert_uint_eq(cfg->max_connections, 10000000);
    config_free(cfg);
    cfg = load_ok(POOL_WITH_BACKEND(", 'max_connections': 1"));
    ck_assert_uint_eq(cfg->pools[0].backends[0].max_connections, 1);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'queue': {}"));
    ck_assert_uint_eq(cfg->pools[0].queue_max, 0);
    ck_assert_uint_eq(cfg->pools[0].queue_timeout_ms, 5000);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'queue': {'max': 1000000, 'timeout_ms': 1}"));
    ck_assert_uint_eq(cfg->pools[0].queue_max, 1000000);
    ck_assert_uint_eq(cfg->pools[0].queue_timeout_ms, 1);
    config_free(cfg);
    cfg = load_ok(PROXY_POOL("'queue': {'timeout_ms': 3600000}"));
    ck_assert_uint_eq(cfg->pools[0].queue_max, 0);
    ck_assert_uint_eq(cfg->pools[0].queue_timeout_ms, 3600000);
    config_free(cfg);

    ck_config_error("{'max_connections': 0, 'listeners': [], 'pools': []}",
                    ":1:21: max_connections: must be an integer from 1 to 10000000 (got 0)");
    ck_config_error("{'max_connections': 10000001, 'listeners': [], 'pools': []}",
                    ":1:21: max_connections: must be an integer from 1 to 10000000 (got 10000001)");
    ck_config_error("{'max_connections': '5', 'listeners': [], 'pools': []}",
                    ":1:21: max_connections: must be an integer from 1 to 10000000 (got a string)");
    ck_config_error(POOL_WITH_BACKEND(", 'max_connections': 0"),
                    ":1:165: pools[0].backends[0].max_connections: must be an integer from 1 to "
                    "1000000 (got 0)");
    ck_config_error(POOL_WITH_BACKEND(", 'max_connections': 1000001"),
                    ":1:165: pools[0].backends[0].max_connections: must be an integer from 1 to "
                    "1000000 (got 1000001)");
    ck_config_error(POOL_WITH_BACKEND(", 'max_conns': 5"),
                    ":1:146: pools[0].backends[0]: unknown key \"max_conns\"");
    ck_config_error(PROXY_POOL("'queue': {'max': -1}"),
                    ":1:120: pools[0].queue.max: must be an integer from 0 to 1000000 (got -1)");
    ck_config_error(
        PROXY_POOL("'queue': {'max': 1000001}"),
        ":1:120: pools[0].queue.max: must be an integer from 0 to 1000000 (got 1000001)");
    ck_config_error(
        PROXY_POOL("'queue': {'timeout_ms': 0}"),
        ":1:127: pools[0].queue.timeout_ms: must be an integer from 1 to 3600000 (got 0)");
    ck_config_error(
        PROXY_POOL("'queue': {'timeout_ms': 3600001}"),
        ":1:127: pools[0].queue.timeout_ms: must be an integer from 1 to 3600000 (got 3600001)");
    ck_config_error(PROXY_POOL("'queue': {'timeout': 100}"),
                    ":1:113: pools[0].queue: unknown key \"timeout\"");
    ck_config_error(PROXY_POOL("'queue': 10"), ":1:112: pools[0].queue: must be an object");
}
END_TEST

START_TEST(test_http_errors)
{
    /* Listener keys: ranges and types. */
    ck_config_error(HTTP_LISTENER(", 'max_header_bytes': 1023"),
                    ":1:111: listeners[0].max_header_bytes: must be an integer from 1024 to "
                    "1048576 (got 1023)");
    ck_config_error(HTTP_LISTENER(", 'max_header_bytes': 1048577"),
                    ":1:111: listeners[0].max_header_bytes: must be an integer from 1024 to "
                    "1048576 (got 1048577)");
    ck_config_error(HTTP_LISTENER(", 'max_header_bytes': '32k'"),
                    ":1:111: listeners[0].max_header_bytes: must be an integer from 1024 to "
                    "1048576 (got a string)");
    ck_config_error(HTTP_LISTENER(", 'max_header_bytes': 4096.0"),
                    ":1:111: listeners[0].max_header_bytes: must be an integer from 1024 to "
                    "1048576 (got a real number)");
    ck_config_error(HTTP_LISTENER(", 'x_real_ip': 'yes'"),
                    ":1:104: listeners[0].x_real_ip: must be true or false (got a string)");
    ck_config_error(HTTP_LISTENER(", 'forwarded': 1"),
                    ":1:104: listeners[0].forwarded: must be true or false (got an integer)");
    ck_config_error(HTTP_LISTENER(", 'forwarded': null"),
                    ":1:104: listeners[0].forwarded: must be true or false (got null)");
    ck_config_error(HTTP_LISTENER(", 'max_header_byte': 1024"),
                    ":1:91: listeners[0]: unknown key \"max_header_byte\" (did you mean "
                    "\"max_header_bytes\"?)");

    /* The http-only keys on a tcp listener, by default or said, at the key. */
    ck_config_error(PROXY_LISTENER("'max_header_bytes': 1024"),
                    ":1:75: listeners[0]: key \"max_header_bytes\" only applies to \"mode\": "
                    "\"http\"");
    ck_config_error(PROXY_LISTENER("'mode': 'tcp', 'x_real_ip': false"),
                    ":1:90: listeners[0]: key \"x_real_ip\" only applies to \"mode\": \"http\"");
    ck_config_error(PROXY_LISTENER("'forwarded': true, 'mode': 'tcp'"),
                    ":1:75: listeners[0]: key \"forwarded\" only applies to \"mode\": \"http\"");

    /* Pool keys: "keepalive" and "response_timeout_ms". */
    ck_config_error(PROXY_POOL("'keepalive': {'max_idle': -1}"),
                    ":1:129: pools[0].keepalive.max_idle: must be an integer from 0 to 10000 (got "
                    "-1)");
    ck_config_error(PROXY_POOL("'keepalive': {'max_idle': 10001}"),
                    ":1:129: pools[0].keepalive.max_idle: must be an integer from 0 to 10000 (got "
                    "10001)");
    ck_config_error(PROXY_POOL("'keepalive': {'max_idle': '32'}"),
                    ":1:129: pools[0].keepalive.max_idle: must be an integer from 0 to 10000 (got "
                    "a string)");
    ck_config_error(PROXY_POOL("'keepalive': {'idle_timeout_ms': 99}"),
                    ":1:136: pools[0].keepalive.idle_timeout_ms: must be an integer from 100 to "
                    "3600000 (got 99)");
    ck_config_error(PROXY_POOL("'keepalive': {'idle_timeout_ms': 3600001}"),
                    ":1:136: pools[0].keepalive.idle_timeout_ms: must be an integer from 100 to "
                    "3600000 (got 3600001)");
    ck_config_error(PROXY_POOL("'keepalive': {'idle_timeout_ms': 1.5}"),
                    ":1:136: pools[0].keepalive.idle_timeout_ms: must be an integer from 100 to "
                    "3600000 (got a real number)");
    ck_config_error(PROXY_POOL("'keepalive': {'max_idle': 4, 'max_idel': 5}"),
                    ":1:132: pools[0].keepalive: unknown key \"max_idel\" (did you mean "
                    "\"max_idle\"?)");
    ck_config_error(PROXY_POOL("'keepalive': {'idle': 60}"),
                    ":1:117: pools[0].keepalive: unknown key \"idle\"");
    ck_config_error(PROXY_POOL("'keepalive': true"),
                    ":1:116: pools[0].keepalive: must be an object");
    ck_config_error(PROXY_POOL("'keep_alive': {}"),
                    ":1:103: pools[0]: unknown key \"keep_alive\" (did you mean \"keepalive\"?)");
    ck_config_error(PROXY_POOL("'response_timeout_ms': 99"),
                    ":1:126: pools[0].response_timeout_ms: must be an integer from 100 to "
                    "86400000 (got 99)");
    ck_config_error(PROXY_POOL("'response_timeout_ms': 86400001"),
                    ":1:126: pools[0].response_timeout_ms: must be an integer from 100 to "
                    "86400000 (got 86400001)");
    ck_config_error(PROXY_POOL("'response_timeout_ms': '60s'"),
                    ":1:126: pools[0].response_timeout_ms: must be an integer from 100 to "
                    "86400000 (got a string)");
}
END_TEST

#define ADMIN_CONFIG(inner) "{'listeners': [" LISTENER "], 'pools': [" POOL "], 'admin': " inner "}"

START_TEST(test_admin)
{
    struct lb_config *cfg = load_ok(MINIMAL);
    ck_assert_int_eq(cfg->admin.enabled, 0);
    config_free(cfg);

    cfg = load_ok(ADMIN_CONFIG("{'listen': '127.0.0.1:9090'}"));
    ck_assert_int_eq(cfg->admin.enabled, 1);
    ck_assert_str_eq(cfg->admin.listen, "127.0.0.1:9090");
    ck_assert_int_eq(cfg->admin.addr.ss_family, AF_INET);
    ck_assert_ptr_null(cfg->admin.token);
    config_free(cfg);

    cfg = load_ok(ADMIN_CONFIG("{'listen': '*:9090', 'token': 's3cret-Token'}"));
    ck_assert_str_eq(cfg->admin.token, "s3cret-Token");
    config_free(cfg);
    cfg = load_ok(ADMIN_CONFIG("{'listen': '[::1]:9090'}"));
    ck_assert_int_eq(cfg->admin.addr.ss_family, AF_INET6);
    config_free(cfg);

    ck_config_error(ADMIN_CONFIG("{'listen': '*:9090'}"),
                    ":1:170: admin.listen: a non-loopback admin address needs a \"token\" (got "
                    "\"*:9090\")");
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:8080'}"),
                    ":1:170: admin.listen: same address as listener \"web\" (\"127.0.0.1:8080\")");
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:9090', 'token': 'two words'}"),
                    ":1:197: admin.token: must be 1 to 1024 characters of printable ASCII without "
                    "spaces");
    ck_config_error(ADMIN_CONFIG("{'token': 'x'}"),
                    ":1:159: admin: missing required key \"listen\"");
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:9090', 'tokn': 'x'}"),
                    ":1:188: admin: unknown key \"tokn\" (did you mean \"token\"?)");
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:99999'}"),
                    ":1:170: admin.listen: port must be 1..65535 (got 99999)");

    /* Limits: defaults, bounds. */
    cfg = load_ok(ADMIN_CONFIG("{'listen': '127.0.0.1:9090'}"));
    ck_assert_uint_eq(cfg->admin.max_connections, 64);
    ck_assert_uint_eq(cfg->admin.request_timeout_ms, 10000);
    config_free(cfg);
    cfg = load_ok(ADMIN_CONFIG(
        "{'listen': '127.0.0.1:9090', 'max_connections': 1, 'request_timeout_ms': 100}"));
    ck_assert_uint_eq(cfg->admin.max_connections, 1);
    ck_assert_uint_eq(cfg->admin.request_timeout_ms, 100);
    config_free(cfg);
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:9090', 'max_connections': 0}"),
                    ":1:207: admin.max_connections: must be an integer from 1 to 10000 (got 0)");
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:9090', 'max_connections': 10001}"),
                    ":1:207: admin.max_connections: must be an integer from 1 to 10000 (got "
                    "10001)");
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:9090', 'request_timeout_ms': 99}"),
                    ":1:210: admin.request_timeout_ms: must be an integer from 100 to 3600000 "
                    "(got 99)");
    ck_config_error(ADMIN_CONFIG("{'listen': '127.0.0.1:9090', 'request_timeout_ms': '1s'}"),
                    ":1:210: admin.request_timeout_ms: must be an integer from 100 to 3600000 "
                    "(got a string)");
}
END_TEST

/* lb --admin-listen ADDR: replaces admin.listen (the key is no longer
 * required; without "admin" the API runs with its defaults); its faults
 * name the option. */
START_TEST(test_admin_listen_override)
{
    config_set_admin_listen("127.0.0.1:9191");
    struct lb_config *cfg = load_ok(MINIMAL);
    ck_assert_int_eq(cfg->admin.enabled, 1);
    ck_assert_str_eq(cfg->admin.listen, "127.0.0.1:9191");
    ck_assert_uint_eq(cfg->admin.max_connections, 64);
    config_free(cfg);
    cfg = load_ok(ADMIN_CONFIG("{'listen': '127.0.0.1:9090', 'max_connections': 5}"));
    ck_assert_str_eq(cfg->admin.listen, "127.0.0.1:9191");
    ck_assert_uint_eq(cfg->admin.max_connections, 5);
    config_free(cfg);
    cfg = load_ok(ADMIN_CONFIG("{'token': 'abc'}"));
    ck_assert_str_eq(cfg->admin.listen, "127.0.0.1:9191");
    ck_assert_str_eq(cfg->admin.token, "abc");
    config_free(cfg);
    ck_config_error(ADMIN_CONFIG("{'lissten': '127.0.0.1:9090'}"),
                    ":1:160: admin: unknown key \"lissten\" (did you mean \"listen\"?)");

    config_set_admin_listen("*:9191");
    ck_config_error(MINIMAL, ": --admin-listen \"*:9191\": a non-loopback admin address needs a "
                             "\"token\" (got \"*:9191\")");
    cfg = load_ok(ADMIN_CONFIG("{'token': 'abc'}"));
    ck_assert_str_eq(cfg->admin.listen, "*:9191");
    config_free(cfg);
    config_set_admin_listen("127.0.0.1:8080");
    ck_config_error(MINIMAL, ": --admin-listen \"127.0.0.1:8080\": same address as listener "
                             "\"web\" (\"127.0.0.1:8080\")");
    config_set_admin_listen("admin.example:9191");
    ck_config_error(MINIMAL, ": --admin-listen \"admin.example:9191\": bad address "
                             "\"admin.example:9191\" (an IP address is needed here (or localhost); "
                             "host names are resolved for backends only)");
    config_set_admin_listen(NULL);
    cfg = load_ok(MINIMAL);
    ck_assert_int_eq(cfg->admin.enabled, 0);
    config_free(cfg);
}
END_TEST

/* "fleet": the etcd endpoints, prefix, token and timeouts; with it a
 * listener may name a pool the file lacks (left unlinked), and "pools"
 * may be empty or absent. */
#define FLEET "'fleet': {'etcd': ['http://127.0.0.1:2379', 'http://[::1]:2380/'], 'prefix': '/lb/'}"

START_TEST(test_fleet_keys)
{
    struct lb_config *cfg = load_ok("{'listeners': [" LISTENER "], 'pools': [" POOL "]}");
    ck_assert_int_eq(cfg->fleet.enabled, 0);
    config_free(cfg);

    cfg = load_ok("{'listeners': [" LISTENER "], " FLEET "}");
    ck_assert_int_eq(cfg->fleet.enabled, 1);
    ck_assert_uint_eq(cfg->fleet.nendpoints, 2);
    ck_assert_str_eq(cfg->fleet.endpoints[0].url, "http://127.0.0.1:2379");
    ck_assert_str_eq(cfg->fleet.endpoints[0].authority, "127.0.0.1:2379");
    ck_ipv4(&cfg->fleet.endpoints[0].addr, cfg->fleet.endpoints[0].addrlen, "127.0.0.1", 2379);
    ck_assert_str_eq(cfg->fleet.endpoints[1].authority, "[::1]:2380");
    ck_ipv6(&cfg->fleet.endpoints[1].addr, cfg->fleet.endpoints[1].addrlen, "::1", 2380);
    ck_assert_str_eq(cfg->fleet.prefix, "/lb/");
    ck_assert_ptr_null(cfg->fleet.token);
    ck_assert_uint_eq(cfg->fleet.timeout_ms, 2000);
    ck_assert_uint_eq(cfg->fleet.start_timeout_ms, 10000);
    ck_assert_uint_eq(cfg->npools, 0);
    ck_assert_uint_eq(cfg->unlinked, 1);
    ck_assert_str_eq(cfg->unlinked_pool, "app");
    config_free(cfg);

    cfg = load_ok("{'listeners': [" LISTENER "], 'pools': [], 'fleet': {'etcd': "
                  "['http://localhost:2379'], 'prefix': '/a/b/', 'token': 'eyJ.x', "
                  "'timeout_ms': 100, 'start_timeout_ms': 0}}");
    ck_assert_str_eq(cfg->fleet.token, "eyJ.x");
    ck_assert_uint_eq(cfg->fleet.timeout_ms, 100);
    ck_assert_uint_eq(cfg->fleet.start_timeout_ms, 0);
    ck_ipv4(&cfg->fleet.endpoints[0].addr, cfg->fleet.endpoints[0].addrlen, "127.0.0.1", 2379);
    config_free(cfg);

    /* https: TLS on, the pool "tls" keys; http ones stay plain. */
    cfg = load_ok("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['https://127.0.0.1:2379', "
                  "'http://127.0.0.1:2380'], 'prefix': '/lb/', 'tls': {'server_name': "
                  "'etcd.test', 'verify': false}}}");
    ck_assert_int_eq(cfg->fleet.endpoints[0].tls, 1);
    ck_assert_int_eq(cfg->fleet.endpoints[1].tls, 0);
    ck_assert_str_eq(cfg->fleet.endpoints[0].host, "127.0.0.1");
    ck_assert_int_eq(cfg->fleet.tls.enabled, 1);
    ck_assert_int_eq(cfg->fleet.tls.verify, 0);
    ck_assert_str_eq(cfg->fleet.tls.server_name, "etcd.test");
    config_free(cfg);

    /* A host name, resolved by the fleet: kept as a name and a port. */
    cfg =
        load_ok("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['https://Etcd-1.internal:2379'], "
                "'prefix': '/lb/'}}");
    ck_assert_int_eq(cfg->fleet.endpoints[0].name, 1);
    ck_assert_str_eq(cfg->fleet.endpoints[0].host, "etcd-1.internal");
    ck_assert_uint_eq(cfg->fleet.endpoints[0].port, 2379);
    ck_assert_uint_eq(cfg->fleet.endpoints[0].addrlen, 0);
    ck_assert_str_eq(cfg->fleet.endpoints[0].authority, "Etcd-1.internal:2379");
    config_free(cfg);

    /* With the pool in the file, nothing is unlinked. */
    cfg = load_ok("{'listeners': [" LISTENER "], 'pools': [" POOL "], " FLEET "}");
    ck_assert_uint_eq(cfg->unlinked, 0);
    ck_assert_uint_eq(cfg->listeners[0].pool_index, 0);
    config_free(cfg);
}
END_TEST

START_TEST(test_fleet_errors)
{
    ck_config_error("{'listeners': [" LISTENER "]}",
                    ":1:1: (root): missing required key \"pools\"");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'prefix': '/lb/'}}",
                    ":1:86: fleet: missing required key \"etcd\"");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': [], 'prefix': '/lb/'}}",
                    ":1:95: fleet.etcd: must be an array of 1 to 16 endpoint URLs");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://127.0.0.1:1'], "
                    "'prefix': '/lb/', 'tls': {'verify': false}}}",
                    ":1:144: fleet.tls: no endpoint in \"etcd\" is https://");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['https://127.0.0.1:1'], "
                    "'prefix': '/lb/', 'tls': {'enabled': false}}}",
                    ":1:145: fleet.tls: https endpoints need TLS (it says \"enabled\": false)");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['127.0.0.1:1'], "
                    "'prefix': '/lb/'}}",
                    ":1:96: fleet.etcd[0]: must be \"http://ADDRESS:PORT\" or "
                    "\"https://ADDRESS:PORT\"");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://127.0.0.1:1/v3'], "
                    "'prefix': '/lb/'}}",
                    ":1:96: fleet.etcd[0]: must be \"http://ADDRESS:PORT\" or "
                    "\"https://ADDRESS:PORT\" (no path)");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://bad_host!:2379'], "
                    "'prefix': '/lb/'}}",
                    ":1:96: fleet.etcd[0]: bad address \"bad_host!:2379\" (bad host name)");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://etcd1:0'], "
                    "'prefix': '/lb/'}}",
                    ":1:96: fleet.etcd[0]: port must be 1..65535 (got 0)");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://127.0.0.1:1'], "
                    "'prefix': '/lb'}}",
                    ":1:129: fleet.prefix: must be 1 to 256 characters of printable ASCII without "
                    "spaces, ending with \"/\" (e.g. \"/lb/prod/\")");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://127.0.0.1:1'], "
                    "'prefix': '/lb/', 'token': 'a b'}}",
                    ":1:146: fleet.token: must be 1 to 4096 characters of printable ASCII "
                    "without spaces");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://127.0.0.1:1'], "
                    "'prefix': '/lb/', 'timeout_ms': 99}}",
                    ":1:151: fleet.timeout_ms: must be an integer from 100 to 60000 (got 99)");
    ck_config_error("{'listeners': [" LISTENER "], 'fleet': {'etcd': ['http://127.0.0.1:1'], "
                    "'prefix': '/lb/', 'etc': 1}}",
                    ":1:137: fleet: unknown key \"etc\" (did you mean \"etcd\"?)");
}
END_TEST

/* A loaded config merged with documents: a document replaces the file's
 * pool of its name or adds one; errors name the document's source, and
 * every pool a listener names must then exist. */
static struct lb_config *merge(const struct lb_config *base, const char *const texts[][2], size_t n,
                               char *err, size_t errlen)
{
    struct config_doc docs[4];
    for (size_t i = 0; i < n; i++)
        docs[i] = (struct config_doc){texts[i][0], strrchr(texts[i][0], '/') + 1, texts[i][1],
                                      strlen(texts[i][1])};
    struct lb_config *out = (void *)1;
    int rc = config_merge(base, docs, n, &out, err, errlen);
    if (rc < 0)
        ck_assert_ptr_null(out);
    return out;
}

START_TEST(test_fleet_merge)
{
    char err[1024];
    struct lb_config *base = load_ok(
        "{'listeners': [" LISTENER ", {'name': 'api', 'listen': '127.0.0.1:8081', 'pool': 'api'}], "
        "'pools': [" POOL
        ", {'name': 'spare', 'backends': [{'address': '127.0.0.1:9009'}]}], " FLEET "}");
    ck_assert_uint_eq(base->unlinked, 1);
    const char *const docs[][2] = {
        {"etcd /lb/pools/api", "{\"strategy\": \"leastconn\", \"backends\": "
                               "[{\"address\": \"127.0.0.1:9101\"}]}"},
        {"etcd /lb/pools/app", "{\"name\": \"app\", \"backends\": [{\"address\": "
                               "\"127.0.0.1:9201\"}, {\"address\": \"127.0.0.1:9202\"}]}"},
    };
    struct lb_config *m = merge(base, docs, 2, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_uint_eq(m->npools, 3);
    ck_assert_str_eq(m->pools[0].name, "spare");
    ck_assert_int_eq(m->pools[0].from_doc, 0);
    ck_assert_str_eq(m->pools[1].name, "api");
    ck_assert_int_eq(m->pools[1].from_doc, 1);
    ck_assert_int_eq(m->pools[1].replaces_file, 0);
    ck_assert_int_eq(m->pools[1].strategy, LB_STRATEGY_LEASTCONN);
    ck_assert_str_eq(m->pools[2].name, "app");
    ck_assert_int_eq(m->pools[2].replaces_file, 1);
    ck_assert_uint_eq(m->pools[2].nbackends, 2);
    ck_assert_uint_eq(m->unlinked, 0);
    ck_assert_uint_eq(m->listeners[0].pool_index, 2);
    ck_assert_uint_eq(m->listeners[1].pool_index, 1);
    ck_assert_str_eq(m->path, base->path);
    config_free(m);

    /* The document's own positions, under its source. */
    const char *const bad[][2] = {
        {"etcd /lb/pools/api", "{\n  \"backends\": [{\"address\": \"127.0.0.1:99999\"}]}"}};
    ck_assert_ptr_null(merge(base, bad, 1, err, sizeof(err)));
    ck_assert_str_eq(err, "etcd /lb/pools/api:2:28: backends[0].address: port must be 1..65535 "
                          "(got 99999)");
    const char *const syntax[][2] = {{"etcd /lb/pools/api", "{\"backends\": ["}};
    ck_assert_ptr_null(merge(base, syntax, 1, err, sizeof(err)));
    ck_assert_str_eq(err, "etcd /lb/pools/api:1:15: syntax error: ']' expected near end of file");
    const char *const array[][2] = {{"etcd /lb/pools/api", "[]"}};
    ck_assert_ptr_null(merge(base, array, 1, err, sizeof(err)));
    ck_assert_str_eq(err, "etcd /lb/pools/api:1:1: (root): must be an object (a pool, as in the "
                          "file's \"pools\")");
    const char *const named[][2] = {
        {"etcd /lb/pools/api",
         "{\"name\": \"web\", \"backends\": [{\"address\": \"1.2.3.4:5\"}]}"}};
    ck_assert_ptr_null(merge(base, named, 1, err, sizeof(err)));
    ck_assert_str_eq(err, "etcd /lb/pools/api:1:10: name: must be \"api\" (its key's last part) or "
                          "left out");
    /* Without the document listener api has no pool. */
    ck_assert_ptr_null(merge(base, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err,
                                 ": listeners[1].pool: no pool named \"api\" in the file or at "
                                 "etcd's /lb/pools/api"));

    /* config_check_doc: one document alone. */
    struct config_doc d = {"etcd /lb/pools/x", "x", "{\"backends\": []}", 16};
    ck_assert_int_eq(config_check_doc(base, &d, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "etcd /lb/pools/x:1:14: backends: must contain at least one backend");
    d = (struct config_doc){"etcd /lb/pools/a b", "a b", docs[0][1], strlen(docs[0][1])};
    ck_assert_int_eq(config_check_doc(base, &d, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "etcd /lb/pools/a b: name: "));
    d = (struct config_doc){"etcd /lb/pools/ok", "ok", docs[0][1], strlen(docs[0][1])};
    ck_assert_int_eq(config_check_doc(base, &d, err, sizeof(err)), 0);
    config_free(base);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *ok = tcase_create("load");
    TCase *bad = tcase_create("errors");

    tcase_add_test(ok, test_defaults);
    tcase_add_test(ok, test_all_fields);
    tcase_add_test(ok, test_strategies_and_levels);
    tcase_add_test(ok, test_escaped_keys_and_utf8);
    tcase_add_test(ok, test_addresses);
    tcase_add_test(ok, test_examples);
    tcase_add_test(ok, test_example_demo);
    suite_add_tcase(s, ok);

    tcase_add_test(bad, test_missing_file);
    tcase_add_test(bad, test_not_regular_file);
    tcase_add_test(bad, test_too_large);
    tcase_add_test(bad, test_bom);
    tcase_add_test(bad, test_empty_and_root);
    tcase_add_test(bad, test_syntax);
    tcase_add_test(bad, test_duplicate_key);
    tcase_add_test(bad, test_unknown_keys);
    tcase_add_test(bad, test_missing_keys);
    tcase_add_test(bad, test_wrong_types);
    tcase_add_test(bad, test_ranges);
    tcase_add_test(bad, test_hash_table_size);
    tcase_add_test(bad, test_empty_arrays);
    tcase_add_test(bad, test_enums);
    tcase_add_test(bad, test_names);
    tcase_add_test(bad, test_address_errors);
    tcase_add_test(bad, test_duplicates);
    tcase_add_test(bad, test_missing_pool);
    tcase_add_test(bad, test_hostile_text);
    tcase_add_test(bad, test_error_truncation);
    tcase_add_test(ok, test_health_defaults);
    tcase_add_test(ok, test_health_fields);
    tcase_add_test(bad, test_health_errors);
    tcase_add_test(ok, test_tls_keys);
    tcase_add_test(bad, test_tls_errors);
    tcase_add_test(bad, test_admin);
    tcase_add_test(ok, test_keepalive);
    tcase_add_test(bad, test_keepalive_errors);
    tcase_add_test(bad, test_splice);
    tcase_add_test(bad, test_reuse_port);
    tcase_add_test(bad, test_admin_listen_override);
    tcase_add_test(bad, test_proxy_keys);
    tcase_add_test(ok, test_http_keys);
    tcase_add_test(bad, test_http_errors);
    tcase_add_test(bad, test_limit_keys);
    tcase_add_test(ok, test_fleet_keys);
    tcase_add_test(bad, test_fleet_errors);
    tcase_add_test(ok, test_fleet_merge);
    suite_add_tcase(s, bad);
    return s;
}

LB_TEST_SUITE(config_suite)
