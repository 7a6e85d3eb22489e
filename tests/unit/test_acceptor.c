/* test_acceptor: lb/io/acceptor.c on a real loopback socket and event
 * loop: a bounded batch per readiness, the sockets it hands over, enable
 * and disable, the pause when accept() finds no free descriptor (the
 * descriptor limit lowered in the test's own process) with its one log
 * line, the pause's end by its timer or at once, a handler that frees the
 * acceptor, and the synchronous accept of a drain. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "lb/io/acceptor.h"
#include "lb/io/listen_socket.h"
#include "lb/log.h"
#include "tests/test.h"

#define MAX_CLIENTS 16

static struct event_base *base;
static int saved_stderr = -1;
static char log_path[64];

struct owner {
    struct acceptor *a;
    int accepted;
    int fds[MAX_CLIENTS];
    bool all_nonblock_cloexec;
    bool free_in_handler;
    int notes;
};

static void on_client(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct owner *o = arg;
    ck_assert_int_eq(sa->sa_family, AF_INET);
    ck_assert_uint_eq(salen, sizeof(struct sockaddr_in));
    if (!(fcntl(fd, F_GETFL) & O_NONBLOCK) || !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
        o->all_nonblock_cloexec = false;
    ck_assert_int_lt(o->accepted, MAX_CLIENTS);
    o->fds[o->accepted++] = fd;
    if (o->free_in_handler) {
        acceptor_free(o->a);
        o->a = NULL;
    }
}

static void note(void *arg, char *buf, size_t len)
{
    struct owner *o = arg;
    o->notes++;
    snprintf(buf, len, " (note %d)", o->notes);
}

static void setup(void)
{
    snprintf(log_path, sizeof(log_path), "/tmp/lb-test-acceptor-XXXXXX");
    int fd = mkstemp(log_path);
    ck_assert_int_ge(fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    close(fd);
    log_set_level(LB_LOG_INFO);
    log_init();
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
}

static void teardown(void)
{
    event_base_free(base);
    base = NULL;
    log_end(0);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    unlink(log_path);
}

/* Everything logged so far, each line without its timestamp. */
static const char *logged(void)
{
    static char text[4096];
    FILE *f = fopen(log_path, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    text[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        const char *rest = strchr(line, ' ');
        ck_assert_ptr_nonnull(rest);
        ck_assert_uint_lt(strlen(text) + strlen(rest + 1), sizeof(text));
        strcat(text, rest + 1);
    }
    fclose(f);
    return text;
}

/* A listening socket on 127.0.0.1 and an ephemeral port, put in *port. */
static int listen_loopback(int *port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char *step;
    int fd = listen_socket_open(&ss, sizeof(*sin), false, &step);
    ck_assert_int_ge(fd, 0);
    socklen_t len = sizeof(*sin);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)sin, &len), 0);
    *port = ntohs(sin->sin_port);
    return fd;
}

/* A client connected to port (complete once it is in the backlog). */
static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

/* One pass of the loop that runs what is ready now, waiting at most ms for
 * something to be. */
static void loop_once(int ms)
{
    struct timeval tv = {ms / 1000, ms % 1000 * 1000};
    event_base_loopexit(base, &tv);
    event_base_loop(base, EVLOOP_ONCE);
}

static struct acceptor *make(struct owner *o, int fd, unsigned batch, time_t *logged_at)
{
    const struct acceptor_conf conf = {
        .owner = "test",
        .name = "t1",
        .batch = batch,
        .pause_ms = 100,
        .starved_logged = logged_at,
        .starved_note = note,
    };
    memset(o, 0, sizeof(*o));
    o->all_nonblock_cloexec = true;
    o->a = acceptor_new(base, fd, &conf, on_client, o);
    ck_assert_ptr_nonnull(o->a);
    return o->a;
}

static void owner_close(struct owner *o)
{
    for (int i = 0; i < o->accepted; i++)
        close(o->fds[i]);
    acceptor_free(o->a);
}

START_TEST(batch_per_readiness)
{
    int port, lfd = listen_loopback(&port);
    struct owner o;
    struct acceptor *a = make(&o, lfd, 3, NULL);
    ck_assert_int_eq(acceptor_fd(a), lfd);
    int c[5];
    for (int i = 0; i < 5; i++)
        c[i] = connect_to(port);
    loop_once(1000);
    ck_assert_int_eq(o.accepted, 3);
    loop_once(1000);
    ck_assert_int_eq(o.accepted, 5);
    ck_assert(o.all_nonblock_cloexec);
    ck_assert_str_eq(logged(), "");
    for (int i = 0; i < 5; i++)
        close(c[i]);
    owner_close(&o);
}
END_TEST

START_TEST(disable_enable)
{
    int port, lfd = listen_loopback(&port);
    struct owner o;
    struct acceptor *a = make(&o, lfd, 16, NULL);
    acceptor_enable(a, false);
    int c = connect_to(port);
    loop_once(100);
    ck_assert_int_eq(o.accepted, 0);
    acceptor_enable(a, true);
    acceptor_enable(a, true); /* twice: no harm */
    loop_once(1000);
    ck_assert_int_eq(o.accepted, 1);
    close(c);
    owner_close(&o);
}
END_TEST

/* The descriptor limit put right at what is open: the next accept() fails
 * with EMFILE. Returns the limit to put back. */
static struct rlimit starve(void)
{
    struct rlimit old, rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0);
    ck_assert_int_ge(probe, 0);
    close(probe);
    rl = old;
    rl.rlim_cur = (rlim_t)probe;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    return old;
}

START_TEST(starved_pauses_then_timer_resumes)
{
    int port, lfd = listen_loopback(&port);
    struct owner o;
    time_t logged_at = 0;
    struct acceptor *a = make(&o, lfd, 16, &logged_at);
    int c1 = connect_to(port), c2 = connect_to(port);
    struct rlimit old = starve();
    loop_once(1000);
    ck_assert_int_eq(o.accepted, 0);
    ck_assert(acceptor_paused(a));
    /* Paused: the socket, still readable, wakes nobody. */
    loop_once(50);
    ck_assert_int_eq(o.accepted, 0);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ck_assert_str_eq(logged(), "error: test t1: accept failed: Too many open files (note 1); "
                               "pausing accepts for 100 ms\n");
    /* The timer ends the pause; the next readiness takes both clients. */
    for (int i = 0; i < 20 && o.accepted < 2; i++)
        loop_once(100);
    ck_assert(!acceptor_paused(a));
    ck_assert_int_eq(o.accepted, 2);
    ck_assert_int_eq(o.notes, 1);
    close(c1);
    close(c2);
    owner_close(&o);
}
END_TEST

START_TEST(starved_resume_now)
{
    int port, lfd = listen_loopback(&port);
    struct owner o;
    time_t logged_at = 0;
    struct acceptor *a = make(&o, lfd, 16, &logged_at);
    int c1 = connect_to(port);
    struct rlimit old = starve();
    loop_once(1000);
    ck_assert(acceptor_paused(a));
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* The owner freed a descriptor: no waiting for the timer. */
    acceptor_resume(a);
    ck_assert(!acceptor_paused(a));
    acceptor_resume(a); /* not paused: nothing */
    loop_once(50);
    ck_assert_int_eq(o.accepted, 1);

    /* Starved again, renamed meanwhile (a second later, or a state that
     * has not logged yet); a disabled acceptor stays off when its pause
     * ends. */
    ck_assert_int_eq(acceptor_rename(a, "t2"), 0);
    logged_at = 0;
    int c2 = connect_to(port);
    old = starve();
    loop_once(1000);
    ck_assert(acceptor_paused(a));
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    acceptor_enable(a, false);
    acceptor_resume(a);
    loop_once(50);
    ck_assert_int_eq(o.accepted, 1);
    acceptor_enable(a, true);
    loop_once(1000);
    ck_assert_int_eq(o.accepted, 2);
    ck_assert_str_eq(logged(), "error: test t1: accept failed: Too many open files (note 1); "
                               "pausing accepts for 100 ms\n"
                               "error: test t2: accept failed: Too many open files (note 2); "
                               "pausing accepts for 100 ms\n");
    close(c1);
    close(c2);
    owner_close(&o);
}
END_TEST

START_TEST(handler_frees_acceptor)
{
    int port, lfd = listen_loopback(&port);
    struct owner o;
    make(&o, lfd, 16, NULL);
    o.free_in_handler = true;
    int c1 = connect_to(port), c2 = connect_to(port);
    loop_once(1000);
    ck_assert_int_eq(o.accepted, 1);
    ck_assert_ptr_null(o.a);
    loop_once(50);
    ck_assert_int_eq(o.accepted, 1);
    close(c1);
    close(c2);
    owner_close(&o);
}
END_TEST

START_TEST(accept_now)
{
    int port, lfd = listen_loopback(&port);
    struct owner o;
    struct acceptor *a = make(&o, lfd, 16, NULL);
    int c = connect_to(port);
    struct sockaddr_storage sa;
    socklen_t len;
    int fd = acceptor_accept(a, &sa, &len);
    ck_assert_int_ge(fd, 0);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(sa.ss_family, AF_INET);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    errno = 0;
    ck_assert_int_eq(acceptor_accept(a, &sa, &len), -1);
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
    close(fd);
    close(c);
    owner_close(&o);
}
END_TEST

static Suite *acceptor_suite(void)
{
    Suite *s = suite_create("acceptor");
    TCase *tc = tcase_create("accept");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, batch_per_readiness);
    tcase_add_test(tc, disable_enable);
    tcase_add_test(tc, handler_frees_acceptor);
    tcase_add_test(tc, accept_now);
    suite_add_tcase(s, tc);
    tc = tcase_create("starved");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, starved_pauses_then_timer_resumes);
    tcase_add_test(tc, starved_resume_now);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(acceptor_suite)
