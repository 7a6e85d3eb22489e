/* Integration: the session's phases through a real lb. The client is
 * watched from accept, so one that resets or goes away while its backend
 * connect is still under way ends the session at once (logged "client
 * error" / "client closed"), and no other backend is tried; one that sends
 * its request and half-closes meanwhile still gets it delivered. The slow
 * connect is a backend whose accept queue is held full, so lb's SYN gets
 * no answer. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "tests/harness.h"
#include "tests/test.h"

/* A backend whose accept queue is held full (harness_listen_held and one
 * connection that fills it): lb's SYN to it gets no answer. */
struct held {
    int lfd, filler;
    int port;
};

static void held_open(struct held *h)
{
    h->lfd = harness_listen_held("127.0.0.1", 0);
    h->port = harness_sock_port(h->lfd);
    h->filler = harness_connect("127.0.0.1", h->port, HARNESS_WAIT_MS);
    ck_assert_int_ge(h->filler, 0);
}

/* lb in front of the held backend "slow" and a live echo backend "live",
 * round-robin from "slow", with retries (which must not be used). */
static int start_lb(struct harness_lb *lb, const struct held *h)
{
    int eport = harness_free_port();
    harness_server("127.0.0.1", eport, harness_fn_echo, NULL);
    int lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(lport), .retries = 2, .connect_timeout_ms = 5000});
    harness_jset(cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(h->port), "slow"),
                                harness_backend_json(harness_lo(eport), "live"), NULL));
    harness_lb_start_json(lb, cfg, lport);
    return lport;
}

static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

START_TEST(client_reset_during_connect)
{
    struct held h;
    held_open(&h);
    struct harness_lb lb;
    int lport = start_lb(&lb, &h);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    harness_sleep_ms(200); /* lb's connect to "slow" is under way */
    ck_assert_int_eq(harness_log_count(lb.log, "session end"), 0);
    reset_close(fd);
    ck_assert_msg(harness_log_wait(lb.log, "reason=\"client error\"", 1, 500),
                  "no \"client error\" within 0.5 s of the reset:\n%s", harness_read_file(lb.log));
    const char *line = harness_log_line(lb.log, "session end");
    ck_assert_ptr_nonnull(strstr(line, "backend=slow bytes_from_client=0 bytes_from_backend=0 "));
    /* No retry: neither a failed connect nor a session on "live". */
    harness_sleep_ms(300);
    ck_assert_int_eq(harness_log_count(lb.log, "connect failed"), 0);
    ck_assert_int_eq(harness_log_count(lb.log, "session end"), 1);
    harness_lb_stop(&lb);
    close(h.filler);
}
END_TEST

START_TEST(client_gone_during_connect)
{
    struct held h;
    held_open(&h);
    struct harness_lb lb;
    int lport = start_lb(&lb, &h);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    harness_sleep_ms(200);
    close(fd); /* a FIN without a byte: the client gave up */
    ck_assert_msg(harness_log_wait(lb.log, "reason=\"client closed\"", 1, 500),
                  "no \"client closed\" within 0.5 s:\n%s", harness_read_file(lb.log));
    harness_sleep_ms(300);
    ck_assert_int_eq(harness_log_count(lb.log, "connect failed"), 0);
    ck_assert_int_eq(harness_log_count(lb.log, "session end"), 1);
    harness_lb_stop(&lb);
    close(h.filler);
}
END_TEST

/* A request sent and half-closed while the connect is under way is not a
 * client that gave up: once the backend takes the connection it gets the
 * request and the FIN, and its answer reaches the client. */
START_TEST(request_sent_during_connect_is_delivered)
{
    struct held h;
    held_open(&h);
    struct harness_lb lb;
    int lport = start_lb(&lb, &h);
    int fd = harness_connect("127.0.0.1", lport, HARNESS_WAIT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert(harness_send_all(fd, "request", 7, HARNESS_WAIT_MS));
    shutdown(fd, SHUT_WR);
    harness_sleep_ms(200);
    ck_assert_int_eq(harness_log_count(lb.log, "session end"), 0);
    /* Make room in the queue: lb's retransmitted SYN gets in (about 1 s
     * after the first), and the test accepts it as the backend. */
    int first = accept(h.lfd, NULL, NULL);
    ck_assert_int_ge(first, 0);
    close(first);
    ck_assert(harness_readable(h.lfd, 5000));
    int be = accept(h.lfd, NULL, NULL);
    ck_assert_int_ge(be, 0);
    char buf[64] = {0};
    ck_assert_int_eq(harness_read_eof(be, buf, sizeof(buf), HARNESS_WAIT_MS), 7);
    ck_assert_str_eq(buf, "request");
    ck_assert(harness_send_all(be, "answer", 6, HARNESS_WAIT_MS));
    close(be);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS), 6);
    ck_assert_str_eq(buf, "answer");
    close(fd);
    ck_assert(harness_log_wait(lb.log, "reason=\"client closed\"", 1, HARNESS_WAIT_MS));
    const char *line = harness_log_line(lb.log, "session end");
    ck_assert_ptr_nonnull(strstr(line, "backend=slow bytes_from_client=7 bytes_from_backend=6 "));
    ck_assert_int_eq(harness_log_count(lb.log, "connect failed"), 0);
    harness_lb_stop(&lb);
    close(h.filler);
}
END_TEST

static Suite *session_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("session");
    tcase_add_checked_fixture(tc, harness_setup, harness_teardown);
    tcase_set_timeout(tc, HARNESS_TCASE_TIMEOUT);
    tcase_add_test(tc, client_reset_during_connect);
    tcase_add_test(tc, client_gone_during_connect);
    tcase_add_test(tc, request_sent_during_connect_is_delivered);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(session_suite)
