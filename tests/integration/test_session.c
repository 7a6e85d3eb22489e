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

/* A client of lb whose backend connect to "slow" is under way. */
struct scene {
    struct held h;
    struct harness_lb lb;
    int fd;
};

static void scene_start(struct scene *sc)
{
    held_open(&sc->h);
    int lport = start_lb(&sc->lb, &sc->h);
    sc->fd = harness_connect_ok("127.0.0.1", lport);
}

/* The session ended with reason within 0.5 s, and no other backend was
 * tried: neither a failed connect nor a second session. */
static void scene_ended_at_once(struct scene *sc, const char *reason)
{
    const char *needle = harness_strf("reason=\"%s\"", reason);
    ck_assert_msg(harness_log_wait(sc->lb.log, needle, 1, 500), "no %s within 0.5 s:\n%s", needle,
                  harness_read_file(sc->lb.log));
    const char *line = harness_log_line(sc->lb.log, "session end");
    ck_assert_ptr_nonnull(strstr(line, "backend=slow bytes_from_client=0 bytes_from_backend=0 "));
    harness_sleep_ms(300);
    ck_assert_int_eq(harness_log_count(sc->lb.log, "connect failed"), 0);
    ck_assert_int_eq(harness_log_count(sc->lb.log, "session end"), 1);
    harness_lb_stop(&sc->lb);
    close(sc->h.filler);
}

START_TEST(client_reset_during_connect)
{
    struct scene sc;
    scene_start(&sc);
    harness_sleep_ms(200); /* lb's connect to "slow" is under way */
    ck_assert_int_eq(harness_log_count(sc.lb.log, "session end"), 0);
    reset_close(sc.fd);
    scene_ended_at_once(&sc, "client error");
}
END_TEST

START_TEST(client_gone_during_connect)
{
    struct scene sc;
    scene_start(&sc);
    harness_sleep_ms(200);
    ck_assert_int_eq(harness_log_count(sc.lb.log, "session end"), 0);
    close(sc.fd); /* a FIN without a byte: the client gave up */
    scene_ended_at_once(&sc, "client closed");
}
END_TEST

/* A request sent and half-closed while the connect is under way is not a
 * client that gave up: once the backend takes the connection it gets the
 * request and the FIN, and its answer reaches the client. */
START_TEST(request_sent_during_connect_is_delivered)
{
    struct scene sc;
    scene_start(&sc);
    struct held h = sc.h;
    struct harness_lb lb = sc.lb;
    int fd = sc.fd;
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
    TCase *tc = harness_tcase("session");
    tcase_add_test(tc, client_reset_during_connect);
    tcase_add_test(tc, client_gone_during_connect);
    tcase_add_test(tc, request_sent_during_connect_is_delivered);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(session_suite)
