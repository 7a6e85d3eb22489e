/* Unit: the admin HTTP server's place in the event loop. On a base with
 * lb's priorities, a request is served at once when the loop is idle, only
 * after ADMIN_LATE_MS (100 ms) when a traffic-priority event is active in
 * every pass, and never by starving that traffic. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lb/admin/admin_http.h"
#include "lb/clock.h"
#include "lb/runtime.h"
#include "tests/test.h"

static bool on_head(void *arg, struct admin_conn *c, const struct admin_request *req)
{
    (void)arg;
    (void)c;
    (void)req;
    return false;
}

static void on_request(void *arg, struct admin_conn *c, const struct admin_request *req)
{
    (void)req;
    (*(int *)arg)++;
    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, "ok\n", 3);
    admin_http_reply(c, 200, "text/plain", NULL, body, true);
}

static const struct admin_http_handler handler = {on_head, on_request};

struct run {
    struct event_base *base;
    struct event *busy; /* re-armed every pass: traffic that never lets up */
    unsigned busy_passes;
    uint64_t start_ms, answered_ms;
    int client;
    char answer[256];
};

static void on_busy(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct run *r = arg;
    r->busy_passes++;
    struct timeval now = {0, 0};
    evtimer_add(r->busy, &now);
}

static void on_answer(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct run *r = arg;
    ssize_t n = recv(fd, r->answer, sizeof(r->answer) - 1, 0);
    if (n > 0 && r->answered_ms == 0) {
        r->answer[n] = '\0';
        r->answered_ms = clock_ms(CLOCK_MONOTONIC);
        event_base_loopbreak(r->base);
    }
}

/* One GET, with or without busy traffic; fills r. */
static void serve_one(struct run *r, bool busy, int *served)
{
    memset(r, 0, sizeof(*r));
    r->base = event_base_new();
    ck_assert_ptr_nonnull(r->base);
    ck_assert_int_eq(event_base_priority_init(r->base, LB_PRIORITIES), 0);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    struct admin_server *srv = admin_http_new(r->base, &handler, served);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(admin_http_listen(srv, lfd), 0);

    r->client = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(r->client, (struct sockaddr *)&sin, sizeof(sin)), 0);
    const char *req = "GET / HTTP/1.1\r\n\r\n";
    ck_assert_int_eq(send(r->client, req, strlen(req), 0), (ssize_t)strlen(req));
    struct event *answer = event_new(r->base, r->client, EV_READ | EV_PERSIST, on_answer, r);
    event_add(answer, NULL);
    r->busy = evtimer_new(r->base, on_busy, r);
    if (busy) {
        struct timeval now = {0, 0};
        evtimer_add(r->busy, &now);
    }
    r->start_ms = clock_ms(CLOCK_MONOTONIC);
    struct timeval limit = {2, 0};
    event_base_loopexit(r->base, &limit);
    event_base_dispatch(r->base);

    event_free(r->busy);
    event_free(answer);
    admin_http_free(srv);
    close(r->client);
    event_base_free(r->base);
}

START_TEST(idle_loop_serves_at_once)
{
    struct run r;
    int served = 0;
    serve_one(&r, false, &served);
    ck_assert_int_eq(served, 1);
    ck_assert_msg(r.answered_ms > 0, "no answer within 2 s");
    ck_assert_msg(strncmp(r.answer, "HTTP/1.1 200 OK\r\n", 17) == 0, "answer: %s", r.answer);
    ck_assert_uint_lt(r.answered_ms - r.start_ms, 80);
}
END_TEST

START_TEST(busy_loop_serves_late_but_serves)
{
    struct run r;
    int served = 0;
    serve_one(&r, true, &served);
    ck_assert_int_eq(served, 1);
    ck_assert_msg(r.answered_ms > 0, "the admin request starved for 2 s");
    ck_assert_msg(strncmp(r.answer, "HTTP/1.1 200 OK\r\n", 17) == 0, "answer: %s", r.answer);
    uint64_t took = r.answered_ms - r.start_ms;
    ck_assert_msg(took >= 90 && took < 1000, "answered after %llu ms", (unsigned long long)took);
    /* The traffic ran in every pass meanwhile. */
    ck_assert_uint_gt(r.busy_passes, 100);
}
END_TEST

static Suite *admin_http_suite(void)
{
    Suite *s = suite_create("admin_http");
    TCase *tc = tcase_create("priority");
    tcase_add_test(tc, idle_loop_serves_at_once);
    tcase_add_test(tc, busy_loop_serves_late_but_serves);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(admin_http_suite)
