/* test_health: the health module asserted exactly: rise/fall sequences,
 * jitter bounds, passive counting, the slow-start ramp, the http verdict,
 * and real tcp/http checks against small servers on 127.0.0.1 (and ::1)
 * running in the test's own event loop; for https, what health itself
 * owns (the status text, a reload's comparison of the TLS settings, every
 * SSL's hold handed back), real handshakes being tests/integration/
 * test_tls_check.c's. Every wait is bounded by a timer. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "health/health.h"
#include "health/health_internal.h"
#include "tests/test.h"

#define MAX_REPORTS 16
#define MAX_CONNS 16

/* ---- pure parts ---- */

struct sm_step {
    bool ok;
    bool transition;
    bool up;
};

/* Feeds steps into sm and asserts each transition flag and state. */
static void sm_run(struct health_sm *sm, const struct sm_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool t = health_sm_record(sm, steps[i].ok);
        ck_assert_msg(t == steps[i].transition, "step %zu: transition %d", i, t);
        ck_assert_msg(sm->up == steps[i].up, "step %zu: up %d", i, sm->up);
    }
}

START_TEST(test_sm_rise2_fall3)
{
    struct health_sm sm;
    /* ok,fail,fail,ok,fail,fail,fail: down exactly at the 7th. */
    static const struct sm_step down[] = {
        {true, false, true},  {false, false, true}, {false, false, true}, {true, false, true},
        {false, false, true}, {false, false, true}, {false, true, false},
    };
    /* ok,fail,ok,ok: up exactly at the last. */
    static const struct sm_step up[] = {
        {true, false, false},
        {false, false, false},
        {true, false, false},
        {true, true, true},
    };

    health_sm_init(&sm, 2, 3);
    ck_assert(sm.up);
    ck_assert_uint_eq(sm.successes, 0);
    ck_assert_uint_eq(sm.failures, 0);
    ck_assert_uint_eq(sm.transitions, 0);
    sm_run(&sm, down, 7);
    ck_assert_uint_eq(sm.failures, 3);
    ck_assert_uint_eq(sm.successes, 0);
    ck_assert_uint_eq(sm.transitions, 1);
    /* Failures while down keep counting, with no transition. */
    ck_assert(!health_sm_record(&sm, false));
    ck_assert_uint_eq(sm.failures, 4);
    sm_run(&sm, up, 4);
    ck_assert_uint_eq(sm.successes, 2);
    ck_assert_uint_eq(sm.failures, 0);
    ck_assert_uint_eq(sm.transitions, 2);
    /* Successes while up keep counting too. */
    ck_assert(!health_sm_record(&sm, true));
    ck_assert_uint_eq(sm.successes, 3);
    sm_run(&sm, down + 4, 3);
    ck_assert_uint_eq(sm.transitions, 3);
}
END_TEST

START_TEST(test_sm_rise1_fall1)
{
    struct health_sm sm;
    static const struct sm_step steps[] = {
        {false, true, false}, {false, false, false}, {true, true, true},
        {true, false, true},  {false, true, false},  {true, true, true},
    };

    health_sm_init(&sm, 1, 1);
    sm_run(&sm, steps, 6);
    ck_assert_uint_eq(sm.transitions, 4);
}
END_TEST

START_TEST(test_sm_force_down)
{
    struct health_sm sm;

    health_sm_init(&sm, 2, 3);
    health_sm_record(&sm, true);
    ck_assert_uint_eq(sm.successes, 1);
    ck_assert(health_sm_force_down(&sm));
    ck_assert(!sm.up);
    ck_assert_uint_eq(sm.successes, 0);
    ck_assert_uint_eq(sm.transitions, 1);
    /* Already down: one success counted so far is dropped. */
    ck_assert(!health_sm_record(&sm, true));
    ck_assert_uint_eq(sm.successes, 1);
    ck_assert(!health_sm_force_down(&sm));
    ck_assert(!sm.up);
    ck_assert_uint_eq(sm.successes, 0);
    ck_assert_uint_eq(sm.transitions, 1);
    /* Back only after rise consecutive successes. */
    ck_assert(!health_sm_record(&sm, true));
    ck_assert(health_sm_record(&sm, true));
    ck_assert(sm.up);
    ck_assert_uint_eq(sm.transitions, 2);
}
END_TEST

/* Asserts 4/5 i <= d <= i (in reals). */
static void jitter_assert(unsigned interval, double r)
{
    unsigned d = health_next_delay_ms(interval, r);

    ck_assert_msg((uint64_t)d * 5 >= (uint64_t)interval * 4, "i=%u r=%.17g d=%u", interval, r, d);
    ck_assert_msg(d <= interval, "i=%u r=%.17g d=%u", interval, r, d);
}

START_TEST(test_jitter_bounds)
{
    static const unsigned intervals[] = {1, 2, 3, 5, 7, 10, 99, 1000, 2000, 86400000, UINT_MAX};
    static const double rs[] = {0.0, 1e-12, 0.1, 0.2, 0.5, 0.8, 0.999999, 0.9999999999999999};
    unsigned min = UINT_MAX, max = 0;

    for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++) {
        for (size_t j = 0; j < sizeof(rs) / sizeof(rs[0]); j++)
            jitter_assert(intervals[i], rs[j]);
        for (int k = 0; k < 2000; k++)
            jitter_assert(intervals[i], health_random());
    }
    for (size_t j = 0; j < sizeof(rs) / sizeof(rs[0]); j++)
        ck_assert_uint_eq(health_next_delay_ms(1, rs[j]), 1);
    ck_assert_uint_eq(health_next_delay_ms(1000, 0.0), 800);
    ck_assert_uint_eq(health_next_delay_ms(1000, 0.5), 900);
    ck_assert_uint_eq(health_next_delay_ms(1000, 0.999999), 1000);
    ck_assert_uint_eq(health_next_delay_ms(7, 0.0), 6); /* ceil(5.6) */
    ck_assert_uint_eq(health_next_delay_ms(7, 0.999999), 7);
    ck_assert_uint_eq(health_next_delay_ms(UINT_MAX, 0.9999999999999999), UINT_MAX);
    /* The random source covers the whole range. */
    for (int k = 0; k < 5000; k++) {
        double r = health_random();
        unsigned d = health_next_delay_ms(1000, r);
        ck_assert(r >= 0.0 && r < 1.0);
        min = d < min ? d : min;
        max = d > max ? d : max;
    }
    ck_assert_uint_le(min, 810);
    ck_assert_uint_ge(max, 990);
}
END_TEST

START_TEST(test_passive)
{
    struct health_passive p = {.max_failures = 3};
    static const bool seq[] = {false, false, true, false, false, false};

    for (size_t i = 0; i < 6; i++)
        ck_assert_msg(health_passive_record(&p, seq[i]) == (i == 5), "step %zu", i);
    ck_assert_uint_eq(p.failures, 0);
    /* The count starts over: three more failures fire again. */
    ck_assert(!health_passive_record(&p, false));
    ck_assert(!health_passive_record(&p, false));
    ck_assert(health_passive_record(&p, false));

    struct health_passive off = {.max_failures = 0};
    for (int i = 0; i < 10; i++)
        ck_assert(!health_passive_record(&off, false));

    struct health_passive one = {.max_failures = 1};
    ck_assert(health_passive_record(&one, false));
    ck_assert(!health_passive_record(&one, true));
    ck_assert(health_passive_record(&one, false));
}
END_TEST

START_TEST(test_slow_start)
{
    /* slow_start 1000 ms; elapsed 0, 50 (1/20), 500, 900, 999, 1000, 5000. */
    static const uint64_t at[] = {0, 50, 500, 900, 999, 1000, 5000};
    static const struct {
        unsigned weight;
        unsigned want[7];
    } rows[] = {
        {0, {0, 0, 0, 0, 0, 0, 0}},
        {1, {1, 1, 1, 1, 1, 1, 1}},
        {5, {1, 1, 3, 5, 5, 5, 5}},
        {100, {5, 5, 50, 90, 100, 100, 100}},
        {256, {13, 13, 128, 231, 256, 256, 256}},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        for (size_t j = 0; j < 7; j++)
            ck_assert_msg(health_slow_start_weight(rows[i].weight, at[j], 1000) == rows[i].want[j],
                          "weight %u at %llu: %u", rows[i].weight, (unsigned long long)at[j],
                          health_slow_start_weight(rows[i].weight, at[j], 1000));
    /* Just before the end of a long ramp, the weight is still below full. */
    ck_assert_uint_eq(health_slow_start_weight(256, 59000, 60000), 252);
    ck_assert_uint_eq(health_slow_start_weight(256, 60000, 60000), 256);
    /* No slow start: full weight at once. */
    ck_assert_uint_eq(health_slow_start_weight(100, 0, 0), 100);
    ck_assert_uint_eq(health_slow_start_weight(0, 0, 0), 0);
    /* Monotonic, within [1, weight], over the whole ramp. */
    for (unsigned w = 1; w <= 256; w *= 2) {
        unsigned prev = 0;
        for (uint64_t t = 0; t <= 10000; t += 7) {
            unsigned v = health_slow_start_weight(w, t, 10000);
            ck_assert_uint_ge(v, prev);
            ck_assert_uint_ge(v, 1);
            ck_assert_uint_le(v, w);
            prev = v;
        }
        ck_assert_uint_eq(prev, w);
    }
}
END_TEST

/* ---- the http verdict on bytes, fed in every split ---- */

static struct lb_health_conf conf_make(enum lb_check_type type, unsigned interval_ms,
                                       unsigned timeout_ms)
{
    struct lb_health_conf c = {
        .type = type,
        .interval_ms = interval_ms,
        .timeout_ms = timeout_ms,
        .rise = 2,
        .fall = 3,
        .method = (char *)"GET",
        .path = (char *)"/health",
        .status_min = 200,
        .status_max = 299,
    };
    return c;
}

/* The verdict on resp when it arrives whole, and the same verdict when it
 * arrives one byte at a time (PENDING until the deciding byte). */
static enum check_verdict judge(const struct lb_health_conf *c, const char *resp, bool eof,
                                char *msg)
{
    size_t len = strlen(resp);
    enum check_verdict whole = check_http_judge(c, resp, len, eof, msg, HEALTH_ERROR_MAX);
    char m2[HEALTH_ERROR_MAX];
    enum check_verdict v = CHECK_PENDING;

    for (size_t i = 0; i <= len && v == CHECK_PENDING; i++)
        v = check_http_judge(c, resp, i, eof && i == len, m2, sizeof(m2));
    ck_assert_int_eq(v, whole);
    ck_assert_str_eq(m2, msg);
    return whole;
}

START_TEST(test_http_judge)
{
    struct lb_health_conf c = conf_make(LB_CHECK_HTTP, 1000, 1000);
    char msg[HEALTH_ERROR_MAX];

    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\n", false, msg), CHECK_OK);
    ck_assert_str_eq(msg, "http status 200");
    ck_assert_int_eq(judge(&c, "HTTP/1.0 204\r\n", false, msg), CHECK_OK);
    ck_assert_str_eq(msg, "http status 204");
    ck_assert_int_eq(judge(&c, "HTTP/1.1 503 Busy\r\n", false, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "http status 503");
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200", false, msg), CHECK_PENDING);
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200\r", false, msg), CHECK_PENDING);
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200", true, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "connection closed before response");
    ck_assert_int_eq(judge(&c, "", true, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "connection closed before response");
    static const char *const bad[] = {
        "HTTP/1.2 200 OK\r\n",  "HTTP/2 200\r\n", "http/1.1 200 OK\r\n", "HTTP/1.1 20 OK\r\n",
        "HTTP/1.1 2000 OK\r\n", "HTTP/1.1 200\n", "HTTP/1.1 200\rX",     "HTTP/1.1  200 OK\r\n",
        "SSH-2.0-OpenSSH\r\n",  "\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(judge(&c, bad[i], false, msg) == CHECK_FAIL, "%s", bad[i]);
        ck_assert_str_eq(msg, "bad http response");
    }
    /* expect_body: only in the body, found across any split. */
    c.expect_body = (char *)"ok";
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\nX: ok\r\n\r\nall ok", false, msg), CHECK_OK);
    ck_assert_str_eq(msg, "http status 200");
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\nX: ok\r\n\r\nnope", false, msg), CHECK_PENDING);
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\nX: ok\r\n\r\nnope", true, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "body does not contain \"ok\"");
    /* A bad status fails before the body is looked at. */
    ck_assert_int_eq(judge(&c, "HTTP/1.1 500 OK\r\n\r\nok", false, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "http status 500");
    /* The expected text is escaped and cut in the message. */
    c.expect_body = (char *)"a\"b\\c\x01\xff";
    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\n\r\n", true, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "body does not contain \"a\\\"b\\\\c\\x01\\xff\"");
    char longtext[200];
    memset(longtext, 'z', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    c.expect_body = longtext;
    ck_assert_int_eq(check_http_judge(&c, "HTTP/1.1 200 OK\r\n\r\n", 19, true, msg, sizeof(msg)),
                     CHECK_FAIL);
    ck_assert_str_eq(msg,
                     "body does not contain "
                     "\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...\"");
}
END_TEST

/* An https check judges the same bytes, its status text says https. */
START_TEST(test_https_judge)
{
    struct lb_health_conf c = conf_make(LB_CHECK_HTTPS, 1000, 1000);
    char msg[HEALTH_ERROR_MAX];

    ck_assert_int_eq(judge(&c, "HTTP/1.1 200 OK\r\n", false, msg), CHECK_OK);
    ck_assert_str_eq(msg, "https status 200");
    ck_assert_int_eq(judge(&c, "HTTP/1.1 500 Oops\r\n", false, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "https status 500");
    ck_assert_int_eq(judge(&c, "SSH-2.0-OpenSSH\r\n", false, msg), CHECK_FAIL);
    ck_assert_str_eq(msg, "bad http response");
}
END_TEST

START_TEST(test_http_request)
{
    struct lb_health_conf c = conf_make(LB_CHECK_HTTP, 1000, 1000);
    size_t len = 0;
    char *req = check_http_request(&c, "example.org:8080", &len);

    ck_assert_ptr_nonnull(req);
    ck_assert_str_eq(req,
                     "GET /health HTTP/1.1\r\nHost: example.org:8080\r\n"
                     "User-Agent: lb-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    ck_assert_uint_eq(len, strlen(req));
    free(req);
}
END_TEST

/* ---- a small server in the test's loop ---- */

enum srv_mode {
    SRV_RESPOND, /* after the request: the response, then close */
    SRV_HOLD,    /* after the request: the response, then stay open */
    SRV_CLOSE,   /* after the request: close without a word */
    SRV_SILENT,  /* accept and never answer */
};

struct srv;

struct conn {
    struct srv *srv;
    struct bufferevent *bev;
    bool responded;
};

struct srv {
    struct event_base *base;
    struct evconnlistener *l;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned port;
    enum srv_mode mode;
    const char *response;
    size_t response_len; /* 0: strlen(response) */
    char request[2048];  /* the first request, NUL-terminated */
    bool have_request;
    int accepted;
    int peer_closed; /* connections the checker closed on us */
    struct conn *conns[MAX_CONNS];
};

static void conn_free(struct conn *c)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (c->srv->conns[i] == c)
            c->srv->conns[i] = NULL;
    bufferevent_free(c->bev);
    free(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (c->srv->mode == SRV_RESPOND && c->responded)
        conn_free(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct srv *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    size_t len;

    if (end.pos < 0)
        return;
    len = (size_t)end.pos + 4;
    if (!srv->have_request && len < sizeof(srv->request)) {
        evbuffer_copyout(in, srv->request, len);
        srv->request[len] = '\0';
        srv->have_request = true;
    }
    evbuffer_drain(in, evbuffer_get_length(in));
    switch (srv->mode) {
    case SRV_RESPOND:
    case SRV_HOLD:
        c->responded = true;
        bufferevent_write(bev, srv->response,
                          srv->response_len ? srv->response_len : strlen(srv->response));
        break;
    case SRV_CLOSE:
        conn_free(c);
        break;
    case SRV_SILENT:
        break;
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        c->srv->peer_closed++;
        conn_free(c);
    }
}

static void srv_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    struct srv *srv = arg;
    struct conn *c = calloc(1, sizeof(*c));
    int i;

    (void)l;
    (void)sa;
    (void)salen;
    ck_assert_ptr_nonnull(c);
    srv->accepted++;
    c->srv = srv;
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(c->bev);
    for (i = 0; i < MAX_CONNS && srv->conns[i]; i++)
        ;
    ck_assert_int_lt(i, MAX_CONNS);
    srv->conns[i] = c;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* A loopback address of family af (AF_INET: 127.0.0.1, AF_INET6: ::1). */
static socklen_t loopback(int af, unsigned port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        s6->sin6_port = htons((uint16_t)port);
        return sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s4->sin_port = htons((uint16_t)port);
    return sizeof(*s4);
}

static unsigned sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Starts srv on an ephemeral loopback port of family af. -1 when af is not
 * available here (no IPv6). */
static int srv_start(struct srv *srv, struct event_base *base, int af, enum srv_mode mode,
                     const char *response)
{
    memset(srv, 0, sizeof(*srv));
    srv->base = base;
    srv->mode = mode;
    srv->response = response;
    srv->addrlen = loopback(af, 0, &srv->addr);
    srv->l =
        evconnlistener_new_bind(base, srv_accept_cb, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                16, (struct sockaddr *)&srv->addr, (int)srv->addrlen);
    if (!srv->l)
        return -1;
    srv->port = sock_port(evconnlistener_get_fd(srv->l));
    srv->addrlen = loopback(af, srv->port, &srv->addr);
    return 0;
}

static void srv_stop(struct srv *srv)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (srv->conns[i])
            conn_free(srv->conns[i]);
    if (srv->l)
        evconnlistener_free(srv->l);
    srv->l = NULL;
}

/* A port on 127.0.0.1 that refuses connections: bound, not listening. The
 * caller closes the returned socket (or listens on it). */
static int closed_port(unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t len = loopback(AF_INET, 0, &ss);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    *port = sock_port(fd);
    return fd;
}

/* ---- running checks ---- */

struct rec {
    struct event_base *base;
    struct health_check *hc;
    int want;    /* break the loop after this many reports */
    int free_at; /* free hc inside the callback of this report (1-based) */
    int count;
    bool ok[MAX_REPORTS];
    bool transition[MAX_REPORTS];
    bool up[MAX_REPORTS];
    char error[MAX_REPORTS][HEALTH_ERROR_MAX];
    char detail[MAX_REPORTS][HEALTH_ERROR_MAX];
    uint64_t duration_us[MAX_REPORTS];
    int64_t at_ms[MAX_REPORTS]; /* monotonic */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rec_cb(void *arg, const struct health_report *r)
{
    struct rec *rec = arg;
    int i = rec->count++;

    ck_assert_int_lt(i, MAX_REPORTS);
    rec->ok[i] = r->ok;
    rec->transition[i] = r->transition;
    rec->up[i] = r->sm->up;
    snprintf(rec->error[i], HEALTH_ERROR_MAX, "%s", r->error);
    snprintf(rec->detail[i], HEALTH_ERROR_MAX, "%s", r->detail);
    rec->duration_us[i] = r->duration_us;
    rec->at_ms[i] = mono_ms();
    ck_assert(r->ok ? r->error[0] == '\0' : r->detail[0] == '\0');
    if (rec->count == rec->free_at) {
        health_check_free(rec->hc);
        rec->hc = NULL;
    }
    if (rec->count >= rec->want)
        event_base_loopbreak(rec->base);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs the loop until something breaks it or ms pass. */
static void loop_run(struct event_base *base, unsigned ms)
{
    struct event *deadline = evtimer_new(base, deadline_cb, base);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    ck_assert_ptr_nonnull(deadline);
    evtimer_add(deadline, &tv);
    event_base_dispatch(base);
    event_free(deadline);
}

/* Starts a check of addr with conf and runs the loop until `want` reports
 * came or deadline_ms passed. rec->hc stays set (and the check running)
 * unless the callback freed it. */
static void check_run(struct rec *rec, struct event_base *base, const struct lb_health_conf *conf,
                      const struct sockaddr_storage *addr, socklen_t addrlen,
                      const char *host_header, int want, unsigned deadline_ms)
{
    memset(rec, 0, sizeof(*rec));
    rec->base = base;
    rec->want = want;
    rec->hc = health_check_new(base, conf, (const struct sockaddr *)addr, addrlen, host_header,
                               rec_cb, rec);
    ck_assert_ptr_nonnull(rec->hc);
    ck_assert_int_eq(health_check_start(rec->hc), 0);
    ck_assert_int_eq(rec->count, 0); /* never synchronously */
    loop_run(base, deadline_ms);
    ck_assert_int_ge(rec->count, want);
}

static void rec_done(struct rec *rec)
{
    health_check_free(rec->hc);
    rec->hc = NULL;
}

/* One check of a server answering `response`; returns its report 0. */
static void http_once(struct rec *rec, const struct lb_health_conf *conf, enum srv_mode mode,
                      const char *response)
{
    struct event_base *base = event_base_new();
    struct srv srv;

    ck_assert_ptr_nonnull(base);
    ck_assert_int_eq(srv_start(&srv, base, AF_INET, mode, response), 0);
    check_run(rec, base, conf, &srv.addr, srv.addrlen, "backend", 1, 5000);
    ck_assert_int_eq(rec->count, 1);
    rec_done(rec);
    srv_stop(&srv);
    event_base_free(base);
}

START_TEST(test_tcp_ok)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_TCP, 10000, 1000);
    struct srv srv;
    struct rec rec;

    ck_assert_int_eq(srv_start(&srv, base, AF_INET, SRV_SILENT, NULL), 0);
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, NULL, 1, 5000);
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(rec.detail[0], "tcp connect ok");
    ck_assert_str_eq(rec.error[0], "");
    ck_assert(!rec.transition[0]);
    ck_assert(rec.up[0]);
    /* The connection is closed at once. */
    loop_run(base, 200);
    ck_assert_int_eq(srv.accepted, 1);
    ck_assert_int_eq(srv.peer_closed, 1);
    rec_done(&rec);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

START_TEST(test_tcp_refused)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_TCP, 10000, 1000);
    struct sockaddr_storage ss;
    unsigned port;
    int fd = closed_port(&port);
    socklen_t len = loopback(AF_INET, port, &ss);
    struct rec rec;

    check_run(&rec, base, &conf, &ss, len, NULL, 1, 5000);
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "connection refused");
    ck_assert_str_eq(rec.detail[0], "");
    rec_done(&rec);
    close(fd);
    event_base_free(base);
}
END_TEST

/* A listener whose accept queue is full, so that the kernel drops the SYNs
 * of any further connect. The fillers are returned for the caller to
 * close. */
static int full_listener(unsigned *port, int fillers[2])
{
    struct sockaddr_storage ss;
    socklen_t len = loopback(AF_INET, 0, &ss);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    ck_assert_int_eq(listen(fd, 0), 0);
    *port = sock_port(fd);
    len = loopback(AF_INET, *port, &ss);
    for (int i = 0; i < 2; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fillers[i], 0);
        int r = connect(fillers[i], (struct sockaddr *)&ss, len);
        ck_assert(r == 0 || errno == EINPROGRESS);
    }
    usleep(50 * 1000); /* let the first handshake land in the queue */
    return fd;
}

START_TEST(test_tcp_timeout)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_TCP, 10000, 200);
    struct sockaddr_storage ss;
    int fillers[2];
    unsigned port;
    int fd = full_listener(&port, fillers);
    socklen_t len = loopback(AF_INET, port, &ss);
    struct rec rec;

    check_run(&rec, base, &conf, &ss, len, NULL, 1, 5000);
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "timeout after 200 ms");
    ck_assert_uint_ge(rec.duration_us[0], 190000);
    ck_assert_uint_lt(rec.duration_us[0], 1000000);
    rec_done(&rec);
    close(fillers[0]);
    close(fillers[1]);
    close(fd);
    event_base_free(base);
}
END_TEST

static const char RESP_200[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nall ok";

START_TEST(test_http_200)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct rec rec;

    http_once(&rec, &conf, SRV_RESPOND, RESP_200);
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(rec.detail[0], "http status 200");
    ck_assert_str_eq(rec.error[0], "");
    ck_assert_uint_gt(rec.duration_us[0], 0);
}
END_TEST

START_TEST(test_http_500)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct rec rec;

    http_once(&rec, &conf, SRV_RESPOND, "HTTP/1.1 500 Internal Server Error\r\n\r\n");
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "http status 500");
    ck_assert_str_eq(rec.detail[0], "");
}
END_TEST

START_TEST(test_http_status_range)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct rec rec;

    conf.status_min = 200;
    conf.status_max = 399;
    http_once(&rec, &conf, SRV_RESPOND, "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(rec.detail[0], "http status 302");
    http_once(&rec, &conf, SRV_RESPOND, "HTTP/1.0 404 Not Found\r\n\r\n");
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "http status 404");
}
END_TEST

START_TEST(test_http_expect_body)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct rec rec;

    conf.expect_body = (char *)"ok";
    http_once(&rec, &conf, SRV_RESPOND, RESP_200);
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(rec.detail[0], "http status 200");
    /* "ok" in a header does not count. */
    http_once(&rec, &conf, SRV_RESPOND, "HTTP/1.1 200 OK\r\nX-State: ok\r\n\r\nnope");
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "body does not contain \"ok\"");
}
END_TEST

/* A server that sends more than the read cap and keeps the connection open:
 * the check stops at the cap, well before its timeout. */
START_TEST(test_http_expect_body_cap)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 3000);
    size_t n = 80 * 1024;
    char *resp = malloc(n + 1);
    struct rec rec;
    int hdr;

    ck_assert_ptr_nonnull(resp);
    hdr = snprintf(resp, n, "HTTP/1.1 200 OK\r\n\r\n");
    memset(resp + hdr, 'x', n - (size_t)hdr);
    resp[n] = '\0';
    memcpy(resp + n - 2, "ok", 2); /* beyond the cap */
    conf.expect_body = (char *)"ok";
    http_once(&rec, &conf, SRV_HOLD, resp);
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "body does not contain \"ok\"");
    ck_assert_uint_lt(rec.duration_us[0], 2000000);
    free(resp);
}
END_TEST

START_TEST(test_http_silent)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 300);
    struct rec rec;

    http_once(&rec, &conf, SRV_SILENT, NULL);
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "timeout after 300 ms");
    ck_assert_uint_ge(rec.duration_us[0], 290000); /* timers may use a coarse clock */
}
END_TEST

START_TEST(test_http_garbage)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct rec rec;

    http_once(&rec, &conf, SRV_RESPOND, "hello there\r\n\r\n");
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "bad http response");
    /* Valid prefix, wrong version: judged as soon as the byte is wrong. */
    http_once(&rec, &conf, SRV_HOLD, "HTTP/1.9 200 OK\r\n\r\n");
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "bad http response");
}
END_TEST

START_TEST(test_http_closed)
{
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct rec rec;

    http_once(&rec, &conf, SRV_CLOSE, NULL);
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "connection closed before response");
    /* Half a status line, then EOF. */
    http_once(&rec, &conf, SRV_RESPOND, "HTTP/1.1 20");
    ck_assert(!rec.ok[0]);
    ck_assert_str_eq(rec.error[0], "connection closed before response");
}
END_TEST

/* The request bytes the server receives, with the Host header from conf,
 * from host_header, and from the address when neither is given. */
START_TEST(test_http_request_bytes)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct srv srv;
    struct rec rec;
    char want[256];

    ck_assert_int_eq(srv_start(&srv, base, AF_INET, SRV_RESPOND, RESP_200), 0);
    conf.method = (char *)"HEAD";
    conf.path = (char *)"/status?full=1";
    conf.host = (char *)"health.example";
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, "backend-a:9001", 1, 5000);
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(srv.request, "HEAD /status?full=1 HTTP/1.1\r\nHost: health.example\r\n"
                                  "User-Agent: lb-health-check\r\nAccept: */*\r\n"
                                  "Connection: close\r\n\r\n");
    rec_done(&rec);

    srv.have_request = false;
    conf.host = NULL;
    conf.method = (char *)"GET";
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, "backend-a:9001", 1, 5000);
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(srv.request, "GET /status?full=1 HTTP/1.1\r\nHost: backend-a:9001\r\n"
                                  "User-Agent: lb-health-check\r\nAccept: */*\r\n"
                                  "Connection: close\r\n\r\n");
    rec_done(&rec);

    srv.have_request = false;
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, NULL, 1, 5000);
    ck_assert(rec.ok[0]);
    snprintf(want, sizeof(want),
             "GET /status?full=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
             "User-Agent: lb-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
             srv.port);
    ck_assert_str_eq(srv.request, want);
    rec_done(&rec);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

/* conf->port replaces the target's port (here a closed one). */
START_TEST(test_port_override)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct sockaddr_storage ss;
    struct srv srv;
    struct rec rec;
    unsigned closed;
    int fd = closed_port(&closed);
    socklen_t len = loopback(AF_INET, closed, &ss);

    ck_assert_int_eq(srv_start(&srv, base, AF_INET, SRV_RESPOND, RESP_200), 0);
    conf.port = srv.port;
    check_run(&rec, base, &conf, &ss, len, "b", 1, 5000);
    ck_assert(rec.ok[0]);
    ck_assert_int_eq(srv.accepted, 1);
    rec_done(&rec);
    /* And the other way round: the target's own port is not used. */
    conf.type = LB_CHECK_TCP;
    conf.port = closed;
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, "b", 1, 5000);
    ck_assert_str_eq(rec.error[0], "connection refused");
    ck_assert_int_eq(srv.accepted, 1);
    rec_done(&rec);
    srv_stop(&srv);
    close(fd);
    event_base_free(base);
}
END_TEST

START_TEST(test_ipv6)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct srv srv;
    struct rec rec;
    char want[256];

    if (srv_start(&srv, base, AF_INET6, SRV_RESPOND, RESP_200) < 0) {
        fprintf(stderr, "test_ipv6: ::1 not available, skipped\n");
        event_base_free(base);
        return;
    }
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, NULL, 1, 5000);
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(rec.detail[0], "http status 200");
    snprintf(want, sizeof(want), "Host: [::1]:%u\r\n", srv.port);
    ck_assert_ptr_nonnull(strstr(srv.request, want));
    rec_done(&rec);
    conf.type = LB_CHECK_TCP;
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, NULL, 1, 5000);
    ck_assert(rec.ok[0]);
    ck_assert_str_eq(rec.detail[0], "tcp connect ok");
    rec_done(&rec);
    /* Port override on IPv6. */
    struct sockaddr_storage ss;
    socklen_t len = loopback(AF_INET6, 1, &ss);
    conf.port = srv.port;
    check_run(&rec, base, &conf, &ss, len, NULL, 1, 5000);
    ck_assert(rec.ok[0]);
    rec_done(&rec);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

/* Consecutive real checks drive the state machine: down after `fall`
 * refused connects (one transition), up again after `rise` successes once
 * the port listens. The checks run at a fixed rate of about interval. */
START_TEST(test_sm_real_checks)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_TCP, 50, 1000);
    struct sockaddr_storage ss;
    unsigned port;
    int fd = closed_port(&port);
    socklen_t len = loopback(AF_INET, port, &ss);
    struct rec rec;
    int64_t took;

    check_run(&rec, base, &conf, &ss, len, NULL, 5, 5000);
    ck_assert_int_eq(rec.count, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert(!rec.ok[i]);
        ck_assert_str_eq(rec.error[i], "connection refused");
        ck_assert(rec.transition[i] == (i == 2));
        ck_assert(rec.up[i] == (i < 2));
    }
    ck_assert_uint_eq(health_check_sm(rec.hc)->transitions, 1);
    took = rec.at_ms[4] - rec.at_ms[0];
    ck_assert_int_ge(took, 4 * 40 - 5);
    ck_assert_int_le(took, 4 * 50 + 400);

    ck_assert_int_eq(listen(fd, 16), 0);
    rec.want = 7;
    loop_run(base, 5000);
    ck_assert_int_eq(rec.count, 7);
    ck_assert(rec.ok[5] && rec.ok[6]);
    ck_assert(!rec.transition[5] && !rec.up[5]);
    ck_assert(rec.transition[6] && rec.up[6]);
    ck_assert_uint_eq(health_check_sm(rec.hc)->transitions, 2);
    rec_done(&rec);
    close(fd);
    event_base_free(base);
}
END_TEST

/* A check slower than the interval: the next starts only when it ends, so
 * checks never overlap and follow each other at the timeout's pace. */
START_TEST(test_slow_checks_do_not_overlap)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 50, 150);
    struct srv srv;
    struct rec rec;

    ck_assert_int_eq(srv_start(&srv, base, AF_INET, SRV_SILENT, NULL), 0);
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, "b", 3, 5000);
    ck_assert_int_eq(rec.count, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(rec.error[i], "timeout after 150 ms");
    ck_assert_int_ge(rec.at_ms[1] - rec.at_ms[0], 145);
    ck_assert_int_le(rec.at_ms[1] - rec.at_ms[0], 400);
    ck_assert_int_ge(rec.at_ms[2] - rec.at_ms[1], 145);
    ck_assert_int_le(srv.accepted, 4);
    rec_done(&rec);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

/* The callback frees its own check, even while the next check is already
 * due: nothing runs after, nothing leaks (ASan). */
START_TEST(test_free_in_callback)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 50, 150);
    struct srv srv;
    struct rec rec;

    ck_assert_int_eq(srv_start(&srv, base, AF_INET, SRV_SILENT, NULL), 0);
    memset(&rec, 0, sizeof(rec));
    rec.base = base;
    rec.want = 99;
    rec.free_at = 1;
    rec.hc = health_check_new(base, &conf, (struct sockaddr *)&srv.addr, srv.addrlen, NULL, rec_cb,
                              &rec);
    ck_assert_ptr_nonnull(rec.hc);
    ck_assert_int_eq(health_check_start(rec.hc), 0);
    loop_run(base, 600);
    ck_assert_int_eq(rec.count, 1);
    ck_assert_ptr_null(rec.hc);
    ck_assert_int_eq(srv.accepted, 1);

    /* Same with a fast tcp check that succeeds. */
    conf.type = LB_CHECK_TCP;
    rec.count = 0;
    rec.hc = health_check_new(base, &conf, (struct sockaddr *)&srv.addr, srv.addrlen, NULL, rec_cb,
                              &rec);
    ck_assert_ptr_nonnull(rec.hc);
    ck_assert_int_eq(health_check_start(rec.hc), 0);
    loop_run(base, 300);
    ck_assert_int_eq(rec.count, 1);
    ck_assert(rec.ok[0]);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

/* Freeing a check in flight closes its socket and cancels it: the server
 * sees the close, the callback never runs. */
START_TEST(test_free_in_flight)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 50, 2000);
    struct srv srv;
    struct rec rec;

    ck_assert_int_eq(srv_start(&srv, base, AF_INET, SRV_SILENT, NULL), 0);
    memset(&rec, 0, sizeof(rec));
    rec.base = base;
    rec.want = 1;
    rec.hc = health_check_new(base, &conf, (struct sockaddr *)&srv.addr, srv.addrlen, NULL, rec_cb,
                              &rec);
    ck_assert_ptr_nonnull(rec.hc);
    ck_assert_int_eq(health_check_start(rec.hc), 0);
    loop_run(base, 150);
    ck_assert_int_eq(srv.accepted, 1);
    ck_assert(srv.have_request);
    rec_done(&rec);
    loop_run(base, 300);
    ck_assert_int_eq(rec.count, 0);
    ck_assert_int_eq(srv.accepted, 1);
    ck_assert_int_eq(srv.peer_closed, 1);
    /* A check never started frees cleanly too. */
    struct health_check *hc = health_check_new(base, &conf, (struct sockaddr *)&srv.addr,
                                               srv.addrlen, NULL, rec_cb, &rec);
    ck_assert_ptr_nonnull(hc);
    ck_assert(health_check_force_down(hc));
    ck_assert(!health_check_force_down(hc));
    ck_assert(!health_check_sm(hc)->up);
    health_check_free(hc);
    health_check_free(NULL);
    /* Neither IPv4 nor IPv6: refused, nothing leaks. */
    struct sockaddr_storage unix_addr = {.ss_family = AF_UNIX};
    ck_assert_ptr_null(health_check_new(base, &conf, (struct sockaddr *)&unix_addr,
                                        sizeof(unix_addr), NULL, rec_cb, &rec));
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

/* A prefix (the PROXY header of a send_proxy pool) goes out first, then
 * the http request; a reload with the same settings keeps the check
 * (health_check_matches looks past the prefix), one with another PROXY
 * version does not. */
START_TEST(test_prefix)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    conf.send_proxy = LB_PROXY_V1;
    struct srv srv;
    struct rec rec;

    ck_assert_int_eq(
        srv_start(&srv, base, AF_INET, SRV_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        0);
    memset(&rec, 0, sizeof(rec));
    rec.base = base;
    rec.want = 1;
    rec.hc =
        health_check_new(base, &conf, (struct sockaddr *)&srv.addr, srv.addrlen, "h", rec_cb, &rec);
    ck_assert_ptr_nonnull(rec.hc);
    ck_assert_int_eq(health_check_set_prefix(rec.hc, "PROXY UNKNOWN\r\n", 15), 0);
    ck_assert(
        health_check_matches(rec.hc, &conf, (struct sockaddr *)&srv.addr, srv.addrlen, "h", NULL));
    struct lb_health_conf other = conf;
    other.send_proxy = LB_PROXY_V2;
    ck_assert(!health_check_matches(rec.hc, &other, (struct sockaddr *)&srv.addr, srv.addrlen, "h",
                                    NULL));
    ck_assert_int_eq(health_check_start(rec.hc), 0);
    loop_run(base, 300);
    ck_assert_int_eq(rec.count, 1);
    ck_assert(rec.ok[0]);
    ck_assert(srv.have_request);
    ck_assert_str_eq(srv.request, "PROXY UNKNOWN\r\nGET /health HTTP/1.1\r\nHost: h\r\n"
                                  "User-Agent: lb-health-check\r\nAccept: */*\r\n"
                                  "Connection: close\r\n\r\n");
    rec_done(&rec);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

/* The TLS of the https tests below: SSLs from a client SSL_CTX of the
 * test's own, each hold a counter the test reads. */
struct tls_rig {
    SSL_CTX *ctx;
    int made, done;
    void *last_hold;
};

static SSL *rig_ssl_new(void *arg, int fd, void **hold)
{
    struct tls_rig *t = arg;
    SSL *ssl = SSL_new(t->ctx);

    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(SSL_set_fd(ssl, fd), 1);
    SSL_set_connect_state(ssl);
    t->made++;
    *hold = t->last_hold = &t->made;
    return ssl;
}

static void rig_ssl_done(void *arg, void *hold)
{
    struct tls_rig *t = arg;

    ck_assert_ptr_eq(hold, t->last_hold);
    t->done++;
}

/* A reload keeps an https check only when its TLS settings (copied by
 * health_check_set_tls, not borrowed) and its verify are the same; a type
 * change from http is a change too. */
START_TEST(test_https_matches)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTPS, 10000, 1000);
    struct sockaddr_storage ss;
    socklen_t len = loopback(AF_INET, 8443, &ss);
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    char ca[] = "/etc/lb/ca.pem", name[] = "app.test";
    struct lb_tls_client_conf tls = {.ca = ca, .server_name = name};
    struct tls_rig rig = {0};
    struct health_tls ht = {rig_ssl_new, rig_ssl_done, &rig, &tls};

    conf.verify = 1;
    struct health_check *hc = health_check_new(base, &conf, sa, len, "h", rec_cb, NULL);
    ck_assert_ptr_nonnull(hc);
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", &tls)); /* no TLS yet */
    ck_assert_int_eq(health_check_set_tls(hc, &ht), 0);
    ck_assert(health_check_matches(hc, &conf, sa, len, "h", &tls));
    ca[1] = 'x'; /* the check keeps its copy */
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", &tls));
    ca[1] = 'e';
    ck_assert(health_check_matches(hc, &conf, sa, len, "h", &tls));
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", NULL));

    struct lb_tls_client_conf t2 = tls;
    t2.server_name = NULL;
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", &t2));
    t2 = tls;
    t2.ca = NULL;
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", &t2));
    t2 = tls;
    t2.cert = (char *)"/etc/lb/c.pem";
    t2.key = (char *)"/etc/lb/c.key";
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", &t2));
    t2 = tls;
    t2.min_version = (char *)"TLSv1.3";
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", &t2));
    t2 = tls;
    t2.enabled = 1; /* the pool's traffic: not the check's business */
    t2.verify = 0;
    ck_assert(health_check_matches(hc, &conf, sa, len, "h", &t2));

    struct lb_health_conf c2 = conf;
    c2.verify = 0;
    ck_assert(!health_check_matches(hc, &c2, sa, len, "h", &tls));
    c2 = conf;
    c2.path = (char *)"/other";
    ck_assert(!health_check_matches(hc, &c2, sa, len, "h", &tls));
    c2 = conf;
    c2.type = LB_CHECK_HTTP;
    ck_assert(!health_check_matches(hc, &c2, sa, len, "h", &tls));
    health_check_free(hc);

    /* An http check does not turn into an https one. */
    c2 = conf;
    c2.type = LB_CHECK_HTTP;
    hc = health_check_new(base, &c2, sa, len, "h", rec_cb, NULL);
    ck_assert_ptr_nonnull(hc);
    ck_assert(health_check_matches(hc, &c2, sa, len, "h", NULL));
    ck_assert(!health_check_matches(hc, &conf, sa, len, "h", &tls));
    health_check_free(hc);
    ck_assert_int_eq(rig.made, 0);
    event_base_free(base);
}
END_TEST

/* A server that accepts and never answers: the handshake times out with
 * its own words, the SSL's hold comes back once per SSL (after the
 * timeout, and when the check is freed in flight), and the next check
 * gets a new SSL. Without health_check_set_tls an https check fails. */
START_TEST(test_https_handshake_timeout)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTPS, 300, 100);
    struct srv srv;
    struct rec rec;
    struct tls_rig rig = {.ctx = SSL_CTX_new(TLS_client_method())};
    struct health_tls ht = {rig_ssl_new, rig_ssl_done, &rig, NULL};

    ck_assert_ptr_nonnull(rig.ctx);
    ck_assert_int_eq(srv_start(&srv, base, AF_INET, SRV_SILENT, NULL), 0);
    memset(&rec, 0, sizeof(rec));
    rec.base = base;
    rec.want = 2;
    rec.hc =
        health_check_new(base, &conf, (struct sockaddr *)&srv.addr, srv.addrlen, "h", rec_cb, &rec);
    ck_assert_ptr_nonnull(rec.hc);
    ck_assert_int_eq(health_check_set_tls(rec.hc, &ht), 0);
    ck_assert_int_eq(health_check_start(rec.hc), 0);
    loop_run(base, 2000);
    ck_assert_int_eq(rec.count, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert(!rec.ok[i]);
        ck_assert_str_eq(rec.error[i], "tls handshake timed out after 100 ms");
    }
    ck_assert_int_eq(rig.made, 2);
    ck_assert_int_eq(rig.done, 2);
    rec_done(&rec);
    ck_assert_int_eq(rig.done, 2);

    /* A check in flight (its ClientHello sent) that is freed hands its
     * hold back. */
    struct lb_health_conf slow = conf_make(LB_CHECK_HTTPS, 10000, 2000);
    memset(&rec, 0, sizeof(rec));
    rec.base = base;
    rec.want = 1;
    rec.hc =
        health_check_new(base, &slow, (struct sockaddr *)&srv.addr, srv.addrlen, "h", rec_cb, &rec);
    ck_assert_ptr_nonnull(rec.hc);
    ck_assert_int_eq(health_check_set_tls(rec.hc, &ht), 0);
    ck_assert_int_eq(health_check_start(rec.hc), 0);
    loop_run(base, 150);
    ck_assert_int_eq(rec.count, 0);
    ck_assert_int_eq(rig.made, 3);
    ck_assert_int_eq(rig.done, 2);
    rec_done(&rec);
    ck_assert_int_eq(rig.done, 3);
    ck_assert_int_eq(srv.accepted, 3);

    /* No TLS given. */
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, "h", 1, 2000);
    ck_assert_str_eq(rec.error[0], "tls handshake failed: no TLS context");
    rec_done(&rec);
    SSL_CTX_free(rig.ctx);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

START_TEST(test_info)
{
    struct event_base *base = event_base_new();
    struct lb_health_conf conf = conf_make(LB_CHECK_HTTP, 10000, 1000);
    struct srv srv;
    struct rec rec;
    int64_t before, after;
    const struct health_info *info;

    ck_assert_int_eq(
        srv_start(&srv, base, AF_INET, SRV_RESPOND, "HTTP/1.1 503 Service Unavailable\r\n\r\n"), 0);
    before = real_ms();
    check_run(&rec, base, &conf, &srv.addr, srv.addrlen, NULL, 1, 5000);
    after = real_ms();
    info = health_check_info(rec.hc);
    ck_assert_str_eq(info->last_error, "http status 503");
    ck_assert_uint_gt(info->last_duration_us, 0);
    ck_assert_uint_eq(info->last_duration_us, rec.duration_us[0]);
    ck_assert_int_ge(info->last_check_unix_ms, before);
    ck_assert_int_le(info->last_check_unix_ms, after);
    rec_done(&rec);

    srv.response = RESP_200;
    struct health_check *hc = health_check_new(base, &conf, (struct sockaddr *)&srv.addr,
                                               srv.addrlen, NULL, rec_cb, &rec);
    ck_assert_ptr_nonnull(hc);
    ck_assert_int_eq(health_check_info(hc)->last_check_unix_ms, 0);
    rec.hc = hc;
    rec.count = 0;
    ck_assert_int_eq(health_check_start(hc), 0);
    loop_run(base, 5000);
    ck_assert_int_eq(rec.count, 1);
    ck_assert_str_eq(health_check_info(hc)->last_error, "");
    ck_assert_uint_gt(health_check_info(hc)->last_duration_us, 0);
    rec_done(&rec);
    srv_stop(&srv);
    event_base_free(base);
}
END_TEST

Suite *health_suite(void)
{
    Suite *s = suite_create("health");
    TCase *pure = tcase_create("pure");
    TCase *checks = tcase_create("checks");

    tcase_set_timeout(pure, 30);
    tcase_add_test(pure, test_sm_rise2_fall3);
    tcase_add_test(pure, test_sm_rise1_fall1);
    tcase_add_test(pure, test_sm_force_down);
    tcase_add_test(pure, test_jitter_bounds);
    tcase_add_test(pure, test_passive);
    tcase_add_test(pure, test_slow_start);
    tcase_add_test(pure, test_http_judge);
    tcase_add_test(pure, test_https_judge);
    tcase_add_test(pure, test_http_request);
    suite_add_tcase(s, pure);

    tcase_set_timeout(checks, 30);
    tcase_add_test(checks, test_tcp_ok);
    tcase_add_test(checks, test_tcp_refused);
    tcase_add_test(checks, test_tcp_timeout);
    tcase_add_test(checks, test_http_200);
    tcase_add_test(checks, test_http_500);
    tcase_add_test(checks, test_http_status_range);
    tcase_add_test(checks, test_http_expect_body);
    tcase_add_test(checks, test_http_expect_body_cap);
    tcase_add_test(checks, test_http_silent);
    tcase_add_test(checks, test_http_garbage);
    tcase_add_test(checks, test_http_closed);
    tcase_add_test(checks, test_http_request_bytes);
    tcase_add_test(checks, test_port_override);
    tcase_add_test(checks, test_ipv6);
    tcase_add_test(checks, test_sm_real_checks);
    tcase_add_test(checks, test_slow_checks_do_not_overlap);
    tcase_add_test(checks, test_free_in_callback);
    tcase_add_test(checks, test_free_in_flight);
    tcase_add_test(checks, test_info);
    tcase_add_test(checks, test_prefix);
    tcase_add_test(checks, test_https_matches);
    tcase_add_test(checks, test_https_handshake_timeout);
    suite_add_tcase(s, checks);
    return s;
}

LB_TEST_SUITE(health_suite)
