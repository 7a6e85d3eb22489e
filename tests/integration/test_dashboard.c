/* Integration: the dashboard (GET / of the admin listener) against a real
 * lb and real demo backends. Its headers and bytes are read over plain
 * HTTP; the page itself runs in Debian's headless Chromium, driven by
 * tests/browser/dashboard.js (playwright-core), which reports as JSON what
 * the page showed and what happened on the way, judged here: the page
 * loads with no console error, no failed request and nothing asked of
 * another origin; it shows the running lb's backends with counters that
 * move under traffic; a click on Drain makes the backend show draining
 * and no new connection reach it (the backends' own answers and the API
 * say so); HTML in the text lb shows (a health check's expected body, a
 * pool name in a reload error: names themselves are [A-Za-z0-9_.-]) is
 * shown as text and runs nothing; a token is asked for, refused when
 * wrong and kept for the tab; and all of it over TLS. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "tests/test.h"
#include "tests/harness.h"

#define NODE "/usr/bin/node"
#define CHROMIUM "/usr/bin/chromium"
#define TOKEN "dash-token-123"
#define XSS_BODY "<img src=x onerror=alert(1)>"
#define XSS_POOL "<script>alert(2)</script>"

/* --- running the browser --- */

/* Fails the test, saying what to run, when the browser tests' tools are
 * missing (make test installs them: scripts/install-deps and
 * scripts/install-node-deps). */
static void need_browser(void)
{
    const char *mod =
        harness_strf("%s/tests/browser/node_modules/playwright-core", harness_repo_root());
    ck_assert_msg(access(NODE, X_OK) == 0 && access(CHROMIUM, X_OK) == 0,
                  "no %s or %s: run scripts/install-deps", NODE, CHROMIUM);
    ck_assert_msg(access(mod, R_OK) == 0, "no %s: run scripts/install-node-deps", mod);
}

/* Runs tests/browser/dashboard.js with opts (stolen; see the script for its
 * keys) and returns its report (kept until teardown), after asserting it
 * ran to its end. */
static json_t *browse(json_t *opts)
{
    need_browser();
    json_object_set_new(opts, "wait_ms", json_integer(10000 * harness_slow()));
    json_object_set_new(opts, "timeout_ms", json_integer(40000 * harness_slow()));
    char *text = json_dumps(opts, JSON_COMPACT);
    json_decref(opts);
    ck_assert_ptr_nonnull(text);
    char *argv[] = {NODE,
                    (char *)harness_strf("%s/tests/browser/dashboard.js", harness_repo_root()),
                    (char *)harness_strf("%s", text), NULL};
    free(text);
    const char *out = NULL, *err = NULL;
    int status = harness_run(argv, &out, &err, 50000 * harness_slow());
    ck_assert_msg(status == 0, "dashboard.js: exit %d\nstderr:\n%s\nstdout:\n%s", status, err, out);
    return harness_jkeep(harness_jparse(out));
}

/* Asserts the array at path of the report is empty. */
static void assert_none(json_t *report, const char *path)
{
    json_t *a = harness_jget(report, path);
    ck_assert_msg(json_is_array(a) && json_array_size(a) == 0, "%s is not empty: %s", path,
                  harness_jtext(a));
}

/* Nothing went wrong on the way: no console error or warning, no script
 * error, no failed request, no answer of 400 or more, no request to
 * another origin, no dialog, no CSP violation. */
static void assert_clean(json_t *report)
{
    json_t *console = harness_jget(report, "console");
    size_t i;
    json_t *m;
    json_array_foreach(console, i, m)
    {
        const char *type = harness_jstr(m, "type");
        ck_assert_msg(strcmp(type, "error") != 0 && strcmp(type, "warning") != 0, "console %s: %s",
                      type, harness_jstr(m, "text"));
    }
    assert_none(report, "page_errors");
    assert_none(report, "failed_requests");
    assert_none(report, "bad_responses");
    assert_none(report, "foreign_requests");
    assert_none(report, "dialogs");
    assert_none(report, "csp_violations");
}

/* A row's cell as the page shows it. */
static const char *cell(json_t *report, const char *row, const char *field)
{
    return harness_jstr(report, harness_strf("rows.%s.%s", row, field));
}

/* A count as the page shows it ("1,234"), as a number. */
static long long count_of(const char *text)
{
    long long n = 0;
    for (const char *p = text; *p; p++) {
        if (*p == ',')
            continue;
        ck_assert_msg(*p >= '0' && *p <= '9', "not a count: \"%s\"", text);
        n = n * 10 + (*p - '0');
    }
    return n;
}

/* --- lb, its backends and its API --- */

struct dash {
    struct harness_lb lb;
    int lport, aport;
    const char *url; /* the dashboard */
};

/* The usual config (tcp, roundrobin) in front of name backends app1 and
 * app2 (started here), with the admin API on a port of its own. */
static json_t *dash_config(struct dash *d, const char *mode)
{
    int p1 = harness_free_port(), p2 = harness_free_port();
    d->lport = harness_free_port();
    d->aport = harness_free_port();
    harness_backend("127.0.0.1", p1, "app1", mode);
    harness_backend("127.0.0.1", p2, "app2", mode);
    const char *backends = harness_strf("{\"address\": \"%s\", \"name\": \"app1\"}, "
                                        "{\"address\": \"%s\", \"name\": \"app2\"}",
                                        harness_lo(p1), harness_lo(p2));
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(d->lport), .strategy = "roundrobin", .backends = backends});
    harness_jset(cfg, "admin.listen", json_string(harness_lo(d->aport)));
    d->url = harness_strf("http://127.0.0.1:%d/", d->aport);
    return cfg;
}

static void dash_start(struct dash *d, json_t *cfg)
{
    /* Wait on the admin port: a probe of the listener would be a session. */
    harness_lb_start_json(&d->lb, cfg, d->aport);
}

/* GET /api/v1/pools/app/backends/id (headers: the token's, or NULL). */
static json_t *api_backend(struct dash *d, const char *id, const char *headers)
{
    struct harness_reply r = harness_call(
        d->aport, "GET", harness_strf("/api/v1/pools/app/backends/%s", id), headers, NULL);
    ck_assert_msg(r.status == 200 && r.json, "GET backend %s: %d %s", id, r.status, r.body);
    return r.json;
}

/* How many of the n names in the comma-separated list are name. */
static int names_count(const char *list, const char *name)
{
    int n = 0;
    size_t len = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        n += l == len && strncmp(p, name, len) == 0;
        p = end ? end + 1 : NULL;
    }
    return n;
}

/* The base64 SHA-256 of len bytes at data, as a CSP source. */
static const char *csp_hash(const char *data, size_t len)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    ck_assert_int_eq(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, md, (int)mdlen);
    return harness_strf("'sha256-%s'", b64);
}

/* The text of the one <tag> element of html. */
static const char *element_text(const char *html, const char *tag, size_t *len)
{
    const char *open = harness_strf("<%s>", tag), *close = harness_strf("</%s>", tag);
    const char *a = strstr(html, open);
    ck_assert_msg(a != NULL, "no %s in the page", open);
    a += strlen(open);
    const char *b = strstr(a, close);
    ck_assert_msg(b != NULL, "no %s in the page", close);
    ck_assert_msg(strstr(a, open) == NULL || strstr(a, open) > b, "two %s", open);
    *len = (size_t)(b - a);
    return a;
}

/* --- tests --- */

/* GET / and HEAD / answer the built-in page, the very bytes of
 * lb/admin/dashboard.html, with the hardening headers and a CSP whose
 * hashes are those of its script and style; public even with a token,
 * while the data it reads is not. */
START_TEST(page_headers_and_bytes)
{
    struct dash d;
    json_t *cfg = dash_config(&d, "name");
    harness_jset(cfg, "admin.token", json_string(TOKEN));
    dash_start(&d, cfg);

    const char *file =
        harness_read_file(harness_strf("%s/lb/admin/dashboard.html", harness_repo_root()));
    ck_assert_msg(strlen(file) > 1000, "lb/admin/dashboard.html not read");

    struct harness_reply r = harness_call(d.aport, "GET", "/", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, file);
    const char *h = r.headers;
    ck_assert_str_eq(harness_http_header(h, "Content-Type"), "text/html; charset=utf-8");
    ck_assert_str_eq(harness_http_header(h, "Content-Length"), harness_strf("%zu", strlen(file)));
    ck_assert_str_eq(harness_http_header(h, "Cache-Control"), "no-store");
    ck_assert_str_eq(harness_http_header(h, "X-Content-Type-Options"), "nosniff");
    ck_assert_str_eq(harness_http_header(h, "X-Frame-Options"), "DENY");
    ck_assert_str_eq(harness_http_header(h, "Referrer-Policy"), "no-referrer");
    size_t slen, clen;
    const char *script = element_text(file, "script", &slen);
    const char *style = element_text(file, "style", &clen);
    const char *want = harness_strf(
        "default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(script, slen), csp_hash(style, clen));
    ck_assert_str_eq(harness_http_header(h, "Content-Security-Policy"), want);

    /* HEAD: the same head, no body; a query changes nothing. */
    r = harness_call(d.aport, "HEAD", "/", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "");
    ck_assert_str_eq(harness_http_header(r.headers, "Content-Length"),
                     harness_strf("%zu", strlen(file)));
    ck_assert_str_eq(harness_http_header(r.headers, "Content-Security-Policy"), want);
    r = harness_call(d.aport, "GET", "/?from=bookmark", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, file);

    /* The page is public; what it reads needs the token. */
    r = harness_call(d.aport, "GET", "/api/v1/pools", NULL, NULL);
    ck_assert_int_eq(r.status, 401);
    r = harness_call(d.aport, "POST", "/", NULL, "");
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(harness_http_header(r.headers, "Allow"), "GET");
    harness_lb_stop(&d.lb);
}
END_TEST

/* The page shows the running lb (its version and pid) and its backends,
 * and under traffic their counters, rates and charts move; the totals it
 * shows are the API's. */
START_TEST(shows_backends_and_traffic)
{
    struct dash d;
    dash_start(&d, dash_config(&d, "name"));
    /* 2.5 s of connections, one after the other: two polls of the page at
     * least see them. */
    json_t *opts =
        json_pack("{s:s, s:[s,s], s:s, s:i}", "url", d.url, "rows", "app/app1", "app/app2",
                  "traffic", harness_lo(d.lport), "traffic_ms", 2500 * harness_slow());
    json_t *rep = browse(opts);
    assert_clean(rep);
    ck_assert_int_eq(harness_jint(rep, "document.status"), 200);

    const char *summary = harness_jstr(rep, "page.summary");
    ck_assert_msg(strstr(summary, "version " LB_VERSION) &&
                      strstr(summary, harness_strf("pid %d ", (int)d.lb.pid)),
                  "summary: %s", summary);
    const char *rows[] = {"app/app1", "app/app2"};
    const char *ids[] = {"app1", "app2"};
    long long made = harness_jint(rep, "traffic.connections");
    ck_assert_msg(made >= 2, "only %lld connections", made); /* one for each backend */
    long long grown = 0;
    for (int i = 0; i < 2; i++) {
        const char *k = rows[i];
        ck_assert_str_eq(cell(rep, k, "id"), ids[i]);
        ck_assert_str_eq(cell(rep, k, "state"), "up");
        ck_assert_str_eq(cell(rep, k, "weight"), "1");
        ck_assert_str_eq(cell(rep, k, "health"), "up (no checks)");
        json_t *b = api_backend(&d, ids[i], NULL);
        ck_assert_str_eq(cell(rep, k, "address"), harness_jstr(b, "address"));
        long long before = count_of(harness_jstr(rep, harness_strf("traffic.before.%s.total", k)));
        long long after = count_of(harness_jstr(rep, harness_strf("traffic.after.%s.total", k)));
        /* Nothing else connected: the page's last total is the API's. */
        ck_assert_int_eq(after, harness_jint(b, "total_connections"));
        ck_assert_msg(after > before, "%s: total %lld then %lld", k, before, after);
        grown += after - before;
        /* A rate above zero was shown, and the charts drew it. */
        double cps = json_number_value(harness_jget(rep, harness_strf("traffic.max_cps.%s", k)));
        double bps =
            json_number_value(harness_jget(rep, harness_strf("traffic.max_bps_value.%s", k)));
        ck_assert_msg(cps > 0 && bps > 0, "%s: no rate shown (%g conn/s, %g bytes/s)", k, cps, bps);
        for (int c = 0; c < 2; c++) {
            const char *chart = c ? "bps" : "cps";
            long long top = harness_jint(rep, harness_strf("traffic.charts.%s.%s.top", k, chart));
            long long height =
                harness_jint(rep, harness_strf("traffic.charts.%s.%s.height", k, chart));
            ck_assert_msg(top < height / 2, "%s: the %s chart has no peak (top %lld of %lld)", k,
                          chart, top, height);
        }
    }
    ck_assert_int_eq(grown, made);
    harness_lb_stop(&d.lb);
}
END_TEST

/* Drain by a click: the page shows draining, the API says so, and no new
 * connection reaches the backend (every answer comes from the other one,
 * and its connection count stays). Then Enable and Set weight by clicks. */
START_TEST(drain_click_stops_traffic)
{
    struct dash d;
    dash_start(&d, dash_config(&d, "name"));
    const char *names = harness_fetch_names(d.lport, 4);
    ck_assert_msg(names_count(names, "app1") == 2 && names_count(names, "app2") == 2,
                  "before the drain: %s", names);

    json_t *rep = browse(json_pack("{s:s, s:[s,s], s:[{s:s, s:s, s:s}]}", "url", d.url, "rows",
                                   "app/app1", "app/app2", "steps", "click", "drain", "row",
                                   "app/app1", "until", "draining"));
    assert_clean(rep);
    ck_assert_str_eq(harness_jstr(rep, "steps.0.row.state"), "draining");
    ck_assert_str_eq(harness_jstr(rep, "steps.0.banner"), "Drain app/app1: done");
    ck_assert_str_eq(cell(rep, "app/app2", "state"), "up");

    json_t *b = api_backend(&d, "app1", NULL);
    ck_assert_str_eq(harness_jstr(b, "state"), "draining");
    long long total = harness_jint(b, "total_connections");
    names = harness_fetch_names(d.lport, 6);
    ck_assert_str_eq(names, "app2,app2,app2,app2,app2,app2");
    b = api_backend(&d, "app1", NULL);
    ck_assert_int_eq(harness_jint(b, "total_connections"), total);
    ck_assert_int_eq(harness_jint(b, "active_connections"), 0);

    /* Enable brings it back; Set weight changes the weight. */
    rep =
        browse(json_pack("{s:s, s:[s,s], s:[{s:s, s:s, s:s}, {s:i, s:s, s:s}]}", "url", d.url,
                         "rows", "app/app1", "app/app2", "steps", "click", "enable", "row",
                         "app/app1", "until", "up", "weight", 3, "row", "app/app2", "until", "3"));
    assert_clean(rep);
    ck_assert_str_eq(harness_jstr(rep, "steps.1.banner"), "Set weight 3 on app/app2: done");
    ck_assert_str_eq(harness_jstr(api_backend(&d, "app1", NULL), "state"), "up");
    ck_assert_int_eq(harness_jint(api_backend(&d, "app2", NULL), "weight"), 3);
    names = harness_fetch_names(d.lport, 4);
    ck_assert_msg(names_count(names, "app1") == 2, "after enable: %s", names);
    harness_lb_stop(&d.lb);
}
END_TEST

/* HTML in what lb shows stays text: a health check's error quoting its
 * expected body, and a reload error quoting a bad pool name. No element is
 * made of it, nothing runs, no dialog opens. */
START_TEST(html_is_shown_as_text)
{
    struct dash d;
    json_t *cfg = dash_config(&d, "http");
    harness_jset(cfg, "pools.0.health_check",
                 harness_jparse("{\"type\": \"http\", \"path\": \"/\", \"interval_ms\": 200, "
                                "\"timeout_ms\": 1000, \"rise\": 1, \"fall\": 1, "
                                "\"expect_body\": \"" XSS_BODY "\"}"));
    dash_start(&d, cfg);
    const char *want = "body does not contain \"" XSS_BODY "\"";
    long end = harness_now_ms() + HARNESS_WAIT_MS;
    json_t *b;
    while (!json_is_string(json_object_get(
               json_object_get(b = api_backend(&d, "app1", NULL), "health"), "last_error")) &&
           harness_now_ms() < end)
        harness_sleep_ms(50);
    ck_assert_str_eq(harness_jstr(b, "health.last_error"), want);

    /* A reload with a pool named in HTML fails; its error names it. */
    harness_jset(cfg, "pools.0.name", json_string(XSS_POOL));
    harness_jset(cfg, "listeners.0.pool", json_string(XSS_POOL));
    harness_lb_rewrite_json(&d.lb, cfg);
    harness_lb_signal(&d.lb, SIGHUP);
    ck_assert(harness_lb_log_wait(&d.lb, "reload failed", 1, HARNESS_WAIT_MS));

    json_t *rep = browse(json_pack("{s:s, s:[s,s]}", "url", d.url, "rows", "app/app1", "app/app2"));
    assert_clean(rep);
    ck_assert_str_eq(cell(rep, "app/app1", "error"), want);
    ck_assert_str_eq(cell(rep, "app/app2", "error"), want);
    ck_assert_str_eq(cell(rep, "app/app1", "state"), "down");
    const char *reload = harness_jstr(rep, "page.reload_error");
    ck_assert_msg(strstr(reload, "(got \"" XSS_POOL "\")") != NULL, "reload error shown: %s",
                  reload);
    ck_assert_int_eq(harness_jint(rep, "page.img_elements"), 0);
    ck_assert_int_eq(harness_jint(rep, "page.script_elements"), 1);
    harness_lb_stop(&d.lb);
}
END_TEST

/* With a token: the page asks for it (401), says a wrong one is refused,
 * works once the right one is typed, and keeps it for the tab (a reload of
 * the page needs no typing). The only errors on the way are the 401s. */
START_TEST(token_asked_and_kept)
{
    struct dash d;
    json_t *cfg = dash_config(&d, "name");
    harness_jset(cfg, "admin.token", json_string(TOKEN));
    dash_start(&d, cfg);
    json_t *rep = browse(json_pack("{s:s, s:s, s:s, s:[s,s], s:b}", "url", d.url, "token", TOKEN,
                                   "wrong_token", "not-the-token", "rows", "app/app1", "app/app2",
                                   "reload", 1));
    const char *prompt = harness_jstr(rep, "auth.prompt");
    ck_assert_msg(strstr(prompt, "401 missing or invalid bearer token") &&
                      strstr(prompt, "this admin API needs a token"),
                  "prompt: %s", prompt);
    const char *refused = harness_jstr(rep, "auth.refused");
    ck_assert_msg(strstr(refused, "401 missing or invalid bearer token") &&
                      strstr(refused, "the token was refused"),
                  "refused: %s", refused);
    ck_assert_str_eq(cell(rep, "app/app1", "state"), "up");
    ck_assert_str_eq(harness_jstr(rep, "page.session_token"), TOKEN);
    ck_assert_str_eq(harness_jstr(rep, "page.token_state"), "token set for this tab");
    ck_assert_str_eq(harness_jstr(rep, "page.banner"), "");

    /* The 401s (and Chromium's console line for each) and nothing else. */
    size_t i;
    json_t *v;
    json_array_foreach(harness_jget(rep, "bad_responses"), i, v)
    {
        const char *s = json_string_value(v);
        ck_assert_msg(strncmp(s, "401 GET /api/v1/", 16) == 0, "answer %s", s);
    }
    ck_assert_int_ge(json_array_size(harness_jget(rep, "bad_responses")), 2);
    json_array_foreach(harness_jget(rep, "console"), i, v)
    {
        const char *type = harness_jstr(v, "type"), *text = harness_jstr(v, "text");
        ck_assert_msg(strcmp(type, "error") != 0 || strstr(text, "status of 401"), "console %s: %s",
                      type, text);
        ck_assert_msg(strcmp(type, "warning") != 0, "console warning: %s", text);
    }
    assert_none(rep, "page_errors");
    assert_none(rep, "failed_requests");
    assert_none(rep, "foreign_requests");
    assert_none(rep, "dialogs");
    assert_none(rep, "csp_violations");
    harness_lb_stop(&d.lb);
}
END_TEST

/* Over HTTPS (a test CA's certificate for 127.0.0.1, pinned in Chromium
 * rather than errors ignored) with a token: the page loads clean, and a
 * click on Drain drains. */
START_TEST(over_tls_with_token)
{
    struct dash d;
    struct harness_pki pki;
    harness_pki_init(&pki);
    const char *cert =
        harness_pki_issue(&pki, "admin", &(struct harness_cert_opts){.sans = "IP:127.0.0.1"});
    json_t *cfg = dash_config(&d, "name");
    harness_jset(cfg, "admin.token", json_string(TOKEN));
    harness_jset(cfg, "admin.tls",
                 json_pack("{s:s, s:s}", "cert", cert, "key", harness_pki_key(cert)));
    d.url = harness_strf("https://127.0.0.1:%d/", d.aport);
    dash_start(&d, cfg);

    json_t *rep =
        browse(json_pack("{s:s, s:s, s:s, s:[s,s], s:[{s:s, s:s, s:s}]}", "url", d.url, "pin", cert,
                         "token", TOKEN, "rows", "app/app1", "app/app2", "steps", "click", "drain",
                         "row", "app/app1", "until", "draining"));
    ck_assert_int_eq(harness_jint(rep, "document.status"), 200);
    ck_assert_str_eq(harness_jstr(rep, "document.tls.subject"), "admin");
    ck_assert_str_eq(harness_jstr(rep, "steps.0.row.state"), "draining");
    assert_none(rep, "failed_requests");
    assert_none(rep, "page_errors");
    assert_none(rep, "foreign_requests");
    assert_none(rep, "csp_violations");
    ck_assert_str_eq(harness_fetch_names(d.lport, 4), "app2,app2,app2,app2");
    harness_lb_stop(&d.lb);
    harness_pki_free(&pki);
}
END_TEST

static Suite *dashboard_suite(void)
{
    Suite *s = suite_create("dashboard");
    TCase *tc = harness_tcase("dashboard");
    tcase_set_timeout(tc, 2 * HARNESS_TCASE_TIMEOUT); /* Chromium starts in each test */
    tcase_add_test(tc, page_headers_and_bytes);
    tcase_add_test(tc, shows_backends_and_traffic);
    tcase_add_test(tc, drain_click_stops_traffic);
    tcase_add_test(tc, html_is_shown_as_text);
    tcase_add_test(tc, token_asked_and_kept);
    tcase_add_test(tc, over_tls_with_token);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(dashboard_suite)
