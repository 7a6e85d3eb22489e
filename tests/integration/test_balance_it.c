/* Integration: each strategy's choices seen from outside. The backends are
 * harness_fn_name servers (they answer NAME\n and close their side), so a
 * client learns which backend lb picked by reading until EOF. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define MAX_BACKENDS 8
#define NSOURCES 50 /* iphash: client source addresses 127.0.0.2 .. */

struct setup {
    struct harness_lb lb;
    int lport;
};

/* Starts name-mode backends called names[i] and lb over them; weights may
 * be NULL (all 1). */
static void start(struct setup *s, const char *strategy, int n, const char *const names[],
                  const unsigned *weights)
{
    json_t *backends = json_array();
    for (int i = 0; i < n; i++) {
        int port = harness_free_port();
        harness_server("127.0.0.1", port, harness_fn_name, (void *)names[i]);
        json_array_append_new(backends, harness_backend_weighted(harness_lo(port), names[i],
                                                                 weights ? (int)weights[i] : 1));
    }
    s->lport = harness_free_port();
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(s->lport),
        .strategy = strategy,
        .retries = 2,
    });
    harness_jset(cfg, "pools.0.backends", backends);
    harness_lb_start_json(&s->lb, cfg, s->lport);
}

/* The names of count successive connections, space separated. */
static const char *fetch_sequence(struct setup *s, int count)
{
    const char *seq = "";
    for (int i = 0; i < count; i++) {
        const char *name = harness_fetch_name(NULL, "127.0.0.1", s->lport);
        ck_assert_msg(name != NULL, "connection %d through lb got no name; log %s", i, s->lb.log);
        seq = harness_strf("%s%s%s", seq, i ? " " : "", name);
    }
    return seq;
}

static void stop(struct setup *s)
{
    ck_assert_int_eq(harness_lb_stop(&s->lb), 0);
}

START_TEST(roundrobin_cycle)
{
    static const char *const names[] = {"b1", "b2", "b3"};
    struct setup s;
    start(&s, "roundrobin", 3, names, NULL);
    ck_assert_str_eq(fetch_sequence(&s, 9), "b1 b2 b3 b1 b2 b3 b1 b2 b3");
    ck_assert_msg(harness_log_wait(s.lb.log, "session end", 9, HARNESS_WAIT_MS),
                  "fewer than 9 session end lines in %s", s.lb.log);
    for (int i = 0; i < 3; i++) {
        const char *b = harness_strf("listener=web pool=app backend=%s ", names[i]);
        ck_assert_int_eq(harness_log_count(s.lb.log, b), 3);
    }
    stop(&s);
}
END_TEST

START_TEST(weighted_cycle)
{
    static const char *const names[] = {"a", "b", "c"};
    static const unsigned weights[] = {5, 1, 1};
    struct setup s;
    start(&s, "weighted", 3, names, weights);
    /* Earliest deadline first (README, Strategies): two cycles of 7. */
    ck_assert_str_eq(fetch_sequence(&s, 14), "a a a b a c a a a a b a c a");
    stop(&s);
}
END_TEST

/* Opens a connection through lb and reads the 3-byte "bN\n" greeting, but
 * keeps the connection open: its session stays active on that backend. */
static int hold(struct setup *s, char name[3])
{
    int fd = harness_connect("127.0.0.1", s->lport, HARNESS_WAIT_MS);
    ck_assert_msg(fd >= 0, "connect to lb failed");
    char buf[4] = {0};
    ck_assert_int_eq(harness_recv_n(fd, buf, 3, HARNESS_WAIT_MS), 3);
    ck_assert_msg(buf[2] == '\n', "unexpected greeting '%s'", buf);
    memcpy(name, buf, 2);
    name[2] = '\0';
    return fd;
}

/* One short connection; waits until lb logged its end so that the next
 * pick sees the counts settled. */
static const char *fetch_settled(struct setup *s, int *ended)
{
    const char *name = harness_fetch_name(NULL, "127.0.0.1", s->lport);
    ck_assert_msg(name != NULL, "connection through lb got no name; log %s", s->lb.log);
    ++*ended;
    ck_assert_msg(harness_log_wait(s->lb.log, "session end", *ended, HARNESS_WAIT_MS),
                  "session %d did not end in the log %s", *ended, s->lb.log);
    return name;
}

START_TEST(leastconn_avoids_busy)
{
    static const char *const names[] = {"b1", "b2", "b3"};
    struct setup s;
    start(&s, "leastconn", 3, names, NULL);
    int ended = 0;

    /* All idle: ties rotate, so three connections meet three backends. */
    const char *first[3];
    for (int i = 0; i < 3; i++)
        first[i] = fetch_settled(&s, &ended);
    ck_assert_msg(strcmp(first[0], first[1]) && strcmp(first[1], first[2]) &&
                      strcmp(first[0], first[2]),
                  "idle ties did not rotate: %s %s %s", first[0], first[1], first[2]);

    /* X busy: the next connections alternate between the two others. */
    char x[3], y[3], z[3], again[3];
    int hx = hold(&s, x);
    const char *seq[4];
    for (int i = 0; i < 4; i++) {
        seq[i] = fetch_settled(&s, &ended);
        ck_assert_msg(strcmp(seq[i], x) != 0, "connection %d went to busy %s", i, x);
    }
    ck_assert_msg(strcmp(seq[0], seq[1]) && strcmp(seq[1], seq[2]) && strcmp(seq[2], seq[3]),
                  "ties did not rotate while %s was busy: %s %s %s %s", x, seq[0], seq[1], seq[2],
                  seq[3]);

    /* Fill up: each held connection goes where nothing is held yet. */
    int hy = hold(&s, y);
    ck_assert_msg(strcmp(y, x) != 0, "second held connection joined busy %s", x);
    int hz = hold(&s, z);
    ck_assert_msg(strcmp(z, x) && strcmp(z, y), "third held connection got %s (busy: %s %s)", z, x,
                  y);

    /* X frees up: the only backend at 0 sessions gets the next one. */
    close(hx);
    ended++;
    ck_assert_msg(harness_log_wait(s.lb.log, "session end", ended, HARNESS_WAIT_MS),
                  "held session on %s did not end", x);
    int hagain = hold(&s, again);
    ck_assert_msg(strcmp(again, x) == 0, "after %s freed up the pick was %s", x, again);

    close(hy);
    close(hz);
    close(hagain);
    stop(&s);
}
END_TEST

START_TEST(iphash_stable)
{
    static const char *const names[] = {"b1", "b2", "b3"};
    struct setup s;
    start(&s, "iphash", 3, names, NULL);

    const char *home = harness_fetch_name(NULL, "127.0.0.1", s.lport);
    ck_assert_msg(home != NULL, "no name through lb; log %s", s.lb.log);
    for (int i = 1; i < 20; i++) {
        const char *got = harness_fetch_name(NULL, "127.0.0.1", s.lport);
        ck_assert_msg(got && strcmp(got, home) == 0, "127.0.0.1 connection %d: %s, first was %s", i,
                      got ? got : "(none)", home);
    }

    int count[3] = {0};
    for (int a = 0; a < NSOURCES; a++) {
        const char *src = harness_strf("127.0.0.%d", a + 2);
        const char *one = harness_fetch_name(src, "127.0.0.1", s.lport);
        const char *two = harness_fetch_name(src, "127.0.0.1", s.lport);
        ck_assert_msg(one && two, "no name for source %s", src);
        ck_assert_msg(strcmp(one, two) == 0, "source %s moved from %s to %s", src, one, two);
        for (int i = 0; i < 3; i++)
            count[i] += strcmp(one, names[i]) == 0;
    }
    int used = (count[0] > 0) + (count[1] > 0) + (count[2] > 0);
    ck_assert_msg(used >= 2, "%d sources all hashed to one backend (b1 %d, b2 %d, b3 %d)", NSOURCES,
                  count[0], count[1], count[2]);
    stop(&s);
}
END_TEST

static Suite *balance_it_suite(void)
{
    Suite *s = suite_create("balance_it");
    TCase *tc;
#define ADD_TCASE(name, fn)                                                                        \
    tc = harness_tcase(name);                                                                      \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    ADD_TCASE("roundrobin", roundrobin_cycle);
    ADD_TCASE("weighted", weighted_cycle);
    ADD_TCASE("leastconn", leastconn_avoids_busy);
    ADD_TCASE("iphash", iphash_stable);
#undef ADD_TCASE
    return s;
}

LB_TEST_SUITE(balance_it_suite)
