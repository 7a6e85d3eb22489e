/* Integration: reloads that move a listener between a wildcard and a
 * specific address of the same port (`*:P` and `127.0.0.1:P`), under a
 * steady load of new connections, refuse none of them and lose no byte,
 * and hand over the clients queued on the old socket even when full. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/test.h"

#define LOADERS 2
#define MOVES 6

static json_t *config(const char *listen, int bport)
{
    json_t *pool = harness_pool_json(
        "app", NULL, harness_jarray(harness_backend_json(harness_lo(bport), "echo"), NULL));
    json_t *cfg = json_pack("{s:{s:s}, s:[o], s:[o]}", "log", "level", "info", "listeners",
                            harness_listener_json("web", listen, "app"), "pools", pool);
    return harness_jkeep(cfg);
}

static volatile sig_atomic_t loader_stop;

static void on_term(int sig)
{
    (void)sig;
    loader_stop = 1;
}

/* A child: new connections to 127.0.0.1:port one after another, each
 * echoing 16 bytes, until SIGTERM; writes "ok failed\n" to out. */
static void loader(int port, int out)
{
    signal(SIGTERM, on_term);
    unsigned long ok = 0, failed = 0;
    while (!loader_stop) {
        int fd = harness_connect("127.0.0.1", port, 4000);
        if (fd < 0) {
            failed++;
            continue;
        }
        char want[17], got[17] = {0};
        snprintf(want, sizeof(want), "%016lu", ok);
        if (harness_send_all(fd, want, 16, 4000) && harness_recv_n(fd, got, 16, 4000) == 16 &&
            memcmp(got, want, 16) == 0)
            ok++;
        else
            failed++;
        close(fd);
    }
    char line[64];
    int n = snprintf(line, sizeof(line), "%lu %lu\n", ok, failed);
    if (write(out, line, (size_t)n) != n)
        _exit(2);
    _exit(0);
}

START_TEST(move_under_load)
{
    int port = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "echo", "echo");
    const char *wild = harness_strf("*:%d", port), *local = harness_strf("127.0.0.1:%d", port);
    struct harness_lb lb;
    harness_lb_start_json(&lb, config(local, bport), port);
    ck_assert(harness_log_wait(lb.log, "started (pid", 1, HARNESS_WAIT_MS));

    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t kids[LOADERS];
    for (int i = 0; i < LOADERS; i++) {
        kids[i] = fork();
        ck_assert_int_ge(kids[i], 0);
        if (kids[i] == 0) {
            close(pipefd[0]);
            loader(port, pipefd[1]);
        }
    }
    close(pipefd[1]);

    for (int m = 1; m <= MOVES; m++) {
        harness_sleep_ms(300);
        bool to_wild = m % 2 == 1;
        harness_lb_rewrite_json(&lb, config(to_wild ? wild : local, bport));
        harness_lb_signal(&lb, SIGHUP);
        ck_assert_msg(harness_log_wait(lb.log, "reload ok", m, HARNESS_WAIT_MS), "log %s", lb.log);
        const char *handover =
            harness_strf("info: listener web on %s hands over to listener web on %s",
                         to_wild ? local : wild, to_wild ? wild : local);
        ck_assert_msg(harness_log_count(lb.log, handover) == (m + 1) / 2, "no '%s' in %s", handover,
                      lb.log);
    }
    harness_sleep_ms(1500); /* connections whose SYN was dropped come back after 1 s */

    unsigned long ok = 0, failed = 0;
    for (int i = 0; i < LOADERS; i++)
        kill(kids[i], SIGTERM);
    FILE *in = fdopen(pipefd[0], "r");
    for (int i = 0; i < LOADERS; i++) {
        unsigned long a = 0, b = 0;
        ck_assert_int_eq(fscanf(in, "%lu %lu", &a, &b), 2);
        ok += a;
        failed += b;
    }
    fclose(in);
    for (int i = 0; i < LOADERS; i++) {
        int st;
        ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    ck_assert_msg(failed == 0, "%lu of %lu connections failed across %d moves", failed, ok + failed,
                  MOVES);
    ck_assert_msg(ok >= 100, "only %lu connections made", ok);
    ck_assert_int_eq(harness_log_count(lb.log, "reason=\"backend error\""), 0);
    ck_assert_int_eq(harness_log_count(lb.log, "reason=\"client error\""), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

/* A move while the listener is at max_connections: the clients whose
 * handshake completed on the old socket are taken over when it closes
 * (after its second of draining), not reset, even though the new listener
 * is full by then. */
START_TEST(move_when_full_keeps_queued_clients)
{
    int port = harness_free_port(), bport = harness_free_port();
    harness_server("127.0.0.1", bport, harness_fn_echo, NULL);
    const char *wild = harness_strf("*:%d", port), *local = harness_strf("127.0.0.1:%d", port);
    json_t *cfg = config(local, bport);
    harness_jset(cfg, "listeners.0.max_connections", json_integer(1));
    struct harness_lb lb;
    harness_lb_start_json(&lb, cfg, port);
    int c1 = harness_connect_ok("127.0.0.1", port);
    harness_echo_roundtrip(c1, "one"); /* the listener is full now */
    int c2 = harness_connect_ok("127.0.0.1", port), c3 = harness_connect_ok("127.0.0.1", port);
    ck_assert(harness_send_all(c2, "two", 3, HARNESS_WAIT_MS));
    ck_assert(harness_send_all(c3, "three", 5, HARNESS_WAIT_MS));
    cfg = config(wild, bport);
    harness_jset(cfg, "listeners.0.max_connections", json_integer(1));
    harness_lb_rewrite_json(&lb, cfg);
    harness_lb_signal(&lb, SIGHUP);
    ck_assert(harness_log_wait(lb.log, "reload ok", 1, HARNESS_WAIT_MS));
    harness_sleep_ms(1500); /* the old socket's drain is over */
    char buf[8] = {0};
    ck_assert_int_eq(harness_recv_n(c2, buf, 3, HARNESS_WAIT_MS), 3);
    ck_assert_str_eq(buf, "two");
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(harness_recv_n(c3, buf, 5, HARNESS_WAIT_MS), 5);
    ck_assert_str_eq(buf, "three");
    close(c1);
    close(c2);
    close(c3);
    ck_assert(harness_log_wait(lb.log, "reason=\"client closed\"", 3, HARNESS_WAIT_MS));
    ck_assert_int_eq(harness_log_count(lb.log, "reason=\"client error\""), 0);
    ck_assert_int_eq(harness_lb_stop(&lb), 0);
}
END_TEST

static Suite *reload_move_suite(void)
{
    Suite *s = suite_create("reload_move");
    TCase *tc = harness_tcase("move_under_load");
    tcase_add_test(tc, move_under_load);
    tcase_add_test(tc, move_when_full_keeps_queued_clients);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(reload_move_suite)
