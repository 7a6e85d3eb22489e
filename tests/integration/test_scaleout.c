/* Integration: several lb processes acting as one. Two instances with the
 * same pool (listed in a different order) send each of 10,000 client
 * addresses from 127.0.0.0/8 to the same backend (iphash, Maglev), also
 * after the same health transition on both and after a reload of one;
 * "reuse_port" lets two processes share one port (each with its own
 * admin port from `lb -a`), and without it the second one fails to bind. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tests/test.h"
#include "tests/harness.h"

#define NBACKENDS 5
#define NCLIENTS 10000 /* the count; fewer under a wrapper (valgrind) */
#define INFLIGHT 32    /* connections the client keeps open at once */
#define NAME_MAX_LEN 16

static const char *const names[NBACKENDS] = {"b1", "b2", "b3", "b4", "b5"};

/* Client address i: 127.1.0.1, 127.1.0.2, ... 250 per /24, all routed to
 * the loopback device (so a socket may bind them), none 127.0.0.1. */
static struct in_addr client_addr(int i)
{
    struct in_addr a;
    a.s_addr =
        htonl((127u << 24) | (1u << 16) | ((unsigned)(i / 250) << 8) | (unsigned)(i % 250 + 1));
    return a;
}

static int name_index(const char *name)
{
    for (int k = 0; k < NBACKENDS; k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return -1;
}

struct slot {
    int fd;
    int client;
    bool connected;
    size_t len;
    char buf[NAME_MAX_LEN];
    long started;
};

/* Opens client i's connection to 127.0.0.1:port, bound to its address. */
static void slot_open(struct slot *s, int i, int port)
{
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = client_addr(i)};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_msg(s->fd >= 0, "socket: %s", strerror(errno));
    ck_assert_msg(bind(s->fd, (struct sockaddr *)&src, sizeof(src)) == 0, "bind %s: %s",
                  inet_ntoa(src.sin_addr), strerror(errno));
    int rc = connect(s->fd, (struct sockaddr *)&dst, sizeof(dst));
    ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect from %s: %s", inet_ntoa(src.sin_addr),
                  strerror(errno));
    s->client = i;
    s->connected = rc == 0;
    s->len = 0;
    s->started = harness_now_ms();
}

/* One step of slot s after poll said revents: false while it goes on;
 * true once its answer is complete (then got[client] is set). */
static bool slot_step(struct slot *s, short revents, signed char *got)
{
    const char *from = inet_ntoa(client_addr(s->client));
    if (!s->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        ck_assert_msg(err == 0, "connect from %s: %s", from, strerror(err));
        if (!(revents & POLLOUT))
            return false;
        s->connected = true;
        return false;
    }
    ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    ck_assert_msg(n >= 0, "read from %s: %s", from, strerror(errno));
    if (n > 0) {
        s->len += (size_t)n;
        ck_assert_msg(s->len < sizeof(s->buf) - 1, "client %s: answer too long", from);
        return false;
    }
    s->buf[s->len] = '\0';
    ck_assert_msg(s->len > 1 && s->buf[s->len - 1] == '\n', "client %s got \"%s\" then EOF", from,
                  s->buf);
    s->buf[s->len - 1] = '\0';
    int k = name_index(s->buf);
    ck_assert_msg(k >= 0, "client %s got an unknown name \"%s\"", from, s->buf);
    got[s->client] = (signed char)k;
    close(s->fd);
    s->fd = -1;
    return true;
}

/* Each of n clients connects to 127.0.0.1:port from its own address and
 * reads the backend's name to EOF, INFLIGHT at a time; got[i] is the
 * index of client i's backend. Fails the test when one connection fails,
 * or takes longer than HARNESS_WAIT_MS. */
static void fetch_all(int port, int n, signed char *got)
{
    struct slot slots[INFLIGHT];
    struct pollfd pfd[INFLIGHT];
    int next = 0, done = 0;

    for (int j = 0; j < INFLIGHT; j++)
        slots[j].fd = -1;
    while (done < n) {
        for (int j = 0; j < INFLIGHT; j++) {
            if (slots[j].fd < 0 && next < n)
                slot_open(&slots[j], next++, port);
            pfd[j].fd = slots[j].fd;
            pfd[j].events = slots[j].fd < 0 ? 0 : slots[j].connected ? POLLIN : POLLOUT;
            pfd[j].revents = 0;
            if (slots[j].fd >= 0)
                ck_assert_msg(harness_now_ms() - slots[j].started < HARNESS_WAIT_MS,
                              "client %s: no answer within %d ms",
                              inet_ntoa(client_addr(slots[j].client)), HARNESS_WAIT_MS);
        }
        int rc = poll(pfd, INFLIGHT, 100);
        ck_assert_msg(rc >= 0 || errno == EINTR, "poll: %s", strerror(errno));
        for (int j = 0; j < INFLIGHT && rc > 0; j++)
            if (slots[j].fd >= 0 && pfd[j].revents && slot_step(&slots[j], pfd[j].revents, got))
                done++;
    }
}

/* How many clients the two answers send to different backends; the first
 * few are named in *first. */
static int disagreements(const signed char *a, const signed char *b, int n, const char **first)
{
    int count = 0;
    *first = "";
    for (int i = 0; i < n; i++) {
        if (a[i] == b[i])
            continue;
        if (count++ < 5)
            *first = harness_strf("%s %s: %s vs %s;", *first, inet_ntoa(client_addr(i)),
                                  names[a[i]], names[b[i]]);
    }
    return count;
}

static void assert_agree(const signed char *a, const signed char *b, int n, const char *when)
{
    const char *first;
    int d = disagreements(a, b, n, &first);
    ck_assert_msg(d == 0, "%s: %d of %d clients disagree:%s", when, d, n, first);
}

/* Every backend but skip (-1: none) has some clients of got. */
static void assert_spread(const signed char *got, int n, int skip, const char *when)
{
    int count[NBACKENDS] = {0};
    for (int i = 0; i < n; i++)
        count[got[i]]++;
    for (int k = 0; k < NBACKENDS; k++)
        if (k == skip)
            ck_assert_msg(count[k] == 0, "%s: %d clients on %s, which is down", when, count[k],
                          names[k]);
        else
            ck_assert_msg(count[k] > 0, "%s: no client on %s (of %d)", when, names[k], n);
}

struct instance {
    struct harness_lb lb;
    int lport, aport;
    json_t *cfg;
};

/* The pool: backends in the order given by order[], iphash, tcp checks
 * (every 100 ms, a generous timeout so a loaded machine marks nothing down
 * by mistake; 2 failures down, 2 successes up). */
static json_t *instance_cfg(struct instance *in, const int bport[], const int order[])
{
    json_t *cfg = harness_cfg(&(struct harness_conf){
        .listen = harness_lo(in->lport), .strategy = "iphash", .retries = 0});
    json_t *backends = json_array();
    for (int j = 0; j < NBACKENDS; j++)
        json_array_append_new(backends,
                              harness_backend_json(harness_lo(bport[order[j]]), names[order[j]]));
    harness_jset(cfg, "pools.0.backends", backends);
    harness_jset(cfg, "pools.0.health_check",
                 json_pack("{s:s, s:i, s:i, s:i, s:i}", "type", "tcp", "interval_ms", 100,
                           "timeout_ms", 2000, "rise", 2, "fall", 2));
    harness_jset(cfg, "admin", json_pack("{s:s}", "listen", harness_lo(in->aport)));
    return cfg;
}

/* Waits (bounded) until backend name's state on in is want. */
static void wait_state(const struct instance *in, const char *name, const char *want)
{
    long end = harness_now_ms() + HARNESS_WAIT_MS;
    const char *path = harness_strf("/api/v1/pools/app/backends/%s", name);
    for (;;) {
        struct harness_reply r = harness_call(in->aport, "GET", path, NULL, NULL);
        ck_assert_int_eq(r.status, 200);
        const char *state = harness_jstr(r.json, "state");
        if (strcmp(state, want) == 0)
            return;
        ck_assert_msg(harness_now_ms() < end, "%s on lb %d is %s, not %s; log %s", name, in->aport,
                      state, want, in->lb.log);
        harness_sleep_ms(20);
    }
}

START_TEST(agreement)
{
    static const int order_a[NBACKENDS] = {0, 1, 2, 3, 4};
    static const int order_b[NBACKENDS] = {3, 0, 4, 2, 1};
    static const int order_a2[NBACKENDS] = {4, 3, 2, 1, 0};
    int n = harness_wrapper() ? 500 : NCLIENTS;
    int bport[NBACKENDS];
    pid_t bpid[NBACKENDS];
    for (int k = 0; k < NBACKENDS; k++) {
        bport[k] = harness_free_port();
        bpid[k] = harness_backend("127.0.0.1", bport[k], names[k], "name");
    }
    struct instance a = {.lport = harness_free_port(), .aport = harness_free_port()};
    struct instance b = {.lport = harness_free_port(), .aport = harness_free_port()};
    a.cfg = instance_cfg(&a, bport, order_a);
    b.cfg = instance_cfg(&b, bport, order_b);
    harness_lb_start_json(&a.lb, a.cfg, a.lport);
    harness_lb_start_json(&b.lb, b.cfg, b.lport);
    for (int k = 0; k < NBACKENDS; k++) {
        wait_state(&a, names[k], "up");
        wait_state(&b, names[k], "up");
    }

    signed char *first_a = calloc((size_t)n, 1), *got_a = calloc((size_t)n, 1),
                *got_b = calloc((size_t)n, 1);
    ck_assert(first_a && got_a && got_b);

    /* All up: the same choice for every client, and every backend used. */
    fetch_all(a.lport, n, first_a);
    fetch_all(b.lport, n, got_b);
    assert_agree(first_a, got_b, n, "all up");
    assert_spread(first_a, n, -1, "all up");

    /* b3 goes away; both see it down. Its clients move, the same way on
     * both; every other client stays where it was. */
    kill(bpid[2], SIGKILL);
    ck_assert_int_eq(harness_wait_exit(bpid[2], HARNESS_WAIT_MS), -1);
    wait_state(&a, "b3", "down");
    wait_state(&b, "b3", "down");
    fetch_all(a.lport, n, got_a);
    fetch_all(b.lport, n, got_b);
    assert_agree(got_a, got_b, n, "b3 down");
    assert_spread(got_a, n, 2, "b3 down");
    for (int i = 0; i < n; i++)
        ck_assert_msg(first_a[i] == 2 || got_a[i] == first_a[i],
                      "client %s moved from %s to %s when b3 went down", inet_ntoa(client_addr(i)),
                      names[first_a[i]], names[got_a[i]]);

    /* A reloads (its backends listed in yet another order, a longer idle
     * timeout): b3 stays down there, and the two still agree. */
    harness_jset(a.cfg, "pools.0.backends", json_array());
    for (int j = 0; j < NBACKENDS; j++)
        harness_jappend(a.cfg, "pools.0.backends",
                        harness_backend_json(harness_lo(bport[order_a2[j]]), names[order_a2[j]]));
    harness_jset(a.cfg, "listeners.0.idle_timeout_ms", json_integer(600000));
    harness_lb_rewrite_json(&a.lb, a.cfg);
    harness_lb_signal(&a.lb, SIGHUP);
    ck_assert_msg(harness_log_wait(a.lb.log, "info: reload ok: generation 2", 1, HARNESS_WAIT_MS),
                  "no reload; log %s", a.lb.log);
    wait_state(&a, "b3", "down");
    fetch_all(a.lport, n, got_a);
    assert_agree(got_a, got_b, n, "b3 down, A reloaded");

    /* b3 comes back: both send every client where it went at first. */
    bpid[2] = harness_backend("127.0.0.1", bport[2], names[2], "name");
    wait_state(&a, "b3", "up");
    wait_state(&b, "b3", "up");
    fetch_all(a.lport, n, got_a);
    fetch_all(b.lport, n, got_b);
    assert_agree(first_a, got_a, n, "b3 back on A (against the first answers)");
    assert_agree(first_a, got_b, n, "b3 back on B (against the first answers)");

    free(first_a);
    free(got_a);
    free(got_b);
    ck_assert_int_eq(harness_lb_stop(&a.lb), 0);
    ck_assert_int_eq(harness_lb_stop(&b.lb), 0);
}
END_TEST

/* The listeners of the lb whose admin API is on aport: web's total
 * connections (and that it says reuse_port is want). */
static long long web_total(int aport, bool want_reuse)
{
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/listeners", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    json_t *web = harness_jget(r.json, "listeners.0");
    ck_assert_str_eq(harness_jstr(web, "name"), "web");
    ck_assert_msg(json_is_true(json_object_get(web, "reuse_port")) == want_reuse,
                  "lb on %d: reuse_port is not %s: %s", aport, want_reuse ? "true" : "false",
                  harness_jtext(web));
    return harness_jint(web, "total_connections");
}

/* count clients through 127.0.0.1:port, each getting "b1" and EOF. */
static void fetch_b1(int port, int count)
{
    for (int i = 0; i < count; i++) {
        const char *name = harness_fetch_name(NULL, "127.0.0.1", port);
        ck_assert_msg(name && strcmp(name, "b1") == 0, "client %d on port %d got %s", i, port,
                      name ? name : "no answer");
    }
}

/* One listener web on lport with reuse_port and max_connections, the file's
 * own admin on fport (each process replaces it with -a), one backend. */
static json_t *shared_cfg(int lport, int fport, int bport, bool reuse_port, int max_connections)
{
    json_t *cfg = harness_cfg(&(struct harness_conf){.listen = harness_lo(lport),
                                                     .max_connections = (unsigned)max_connections});
    harness_jset(cfg, "pools.0.backends",
                 harness_jarray(harness_backend_json(harness_lo(bport), "b1"), NULL));
    harness_jset(cfg, "listeners.0.reuse_port", json_boolean(reuse_port));
    harness_jset(cfg, "admin", json_pack("{s:s}", "listen", harness_lo(fport)));
    return cfg;
}

/* Two processes of one config file on one port, each with its own admin
 * port from -a (the file's admin.listen is never bound, also after a
 * reload): the kernel gives each of them clients, and each reloads alone. */
START_TEST(reuse_port_shared)
{
    int lport = harness_free_port(), fport = harness_free_port(), bport = harness_free_port();
    int aport[2] = {harness_free_port(), harness_free_port()};
    harness_backend("127.0.0.1", bport, "b1", "name");
    json_t *cfg = shared_cfg(lport, fport, bport, true, 0);
    struct harness_lb lb[2];
    for (int k = 0; k < 2; k++)
        harness_lb_start_admin(&lb[k], harness_jtext(cfg), aport[k]);
    ck_assert_msg(!harness_port_listening(fport), "the file's admin port %d is bound", fport);
    for (int k = 0; k < 2; k++)
        ck_assert_msg(harness_log_contains(lb[k].log, "(mode tcp, pool app, strategy roundrobin, "
                                                      "1 backends, reuse_port)"),
                      "no reuse_port in the listener line; log %s", lb[k].log);

    /* 200 clients: the kernel spreads them (by their ports) over both. */
    fetch_b1(lport, 200);
    long long t0 = web_total(aport[0], true), t1 = web_total(aport[1], true);
    ck_assert_msg(t0 + t1 == 200 && t0 > 0 && t1 > 0, "200 clients: %lld on one, %lld on the other",
                  t0, t1);

    /* The first one reloads (same file, a longer idle timeout): it keeps
     * its socket in the group and its -a admin port. */
    harness_jset(cfg, "listeners.0.idle_timeout_ms", json_integer(600000));
    harness_lb_rewrite_json(&lb[0], cfg);
    harness_lb_signal(&lb[0], SIGHUP);
    ck_assert_msg(harness_lb_log_wait(&lb[0], "info: reload ok: generation 2", 1, HARNESS_WAIT_MS),
                  "no reload; log %s", lb[0].log);
    ck_assert_msg(!harness_port_listening(fport),
                  "after the reload the file's admin port is bound");
    fetch_b1(lport, 200);
    long long u0 = web_total(aport[0], true), u1 = web_total(aport[1], true);
    ck_assert_msg(u0 + u1 == 400 && u0 > t0 && u1 > t1,
                  "200 more clients: %lld more on the reloaded one, %lld on the other", u0 - t0,
                  u1 - t1);

    ck_assert_int_eq(harness_lb_stop(&lb[1]), 0);
    ck_assert_int_eq(harness_lb_stop(&lb[0]), 0);
}
END_TEST

/* Open sessions of the lb whose admin API is on aport. */
static long long active_of(int aport)
{
    struct harness_reply r = harness_call(aport, "GET", "/api/v1/status", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    return harness_jint(r.json, "connections.active");
}

/* Connections waiting in the accept queues of the IPv4 sockets listening
 * on port (the rx_queue of /proc/net/tcp's LISTEN rows). */
static long long accept_queue(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert_msg(f != NULL, "/proc/net/tcp: %s", strerror(errno));
    char line[512];
    long long total = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned lport, state;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %lx:%lx", &lport, &state, &tx, &rx) == 4 &&
            (int)lport == port && state == 0x0A)
            total += (long long)rx;
    }
    fclose(f);
    return total;
}

/* One of two processes stops while clients wait in its accept queue (it
 * is at max_connections): none is reset. Those it had queued are served by
 * it; a new client goes to the other one (the SYN the stopping socket
 * drops is resent), and the stopping one exits once its sessions end. */
START_TEST(reuse_port_stop_one)
{
    enum { CLIENTS = 40, LATER = 20 };
    int lport = harness_free_port(), fport = harness_free_port(), bport = harness_free_port();
    int aport[2] = {harness_free_port(), harness_free_port()};
    harness_backend("127.0.0.1", bport, "echo", "echo");
    struct harness_lb keep, stop;
    harness_lb_start_admin(&keep, harness_jtext(shared_cfg(lport, fport, bport, true, 0)),
                           aport[0]);
    harness_lb_start_admin(&stop, harness_jtext(shared_cfg(lport, fport, bport, true, 1)),
                           aport[1]);

    /* The stopping one takes one session; its other clients wait in its
     * queue, connected (the kernel completed their handshakes). */
    int fd[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fd[i] = harness_connect_ok("127.0.0.1", lport);
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    long long queued;
    for (;;) {
        long long a = active_of(aport[0]), b = active_of(aport[1]);
        queued = accept_queue(lport);
        if (b == 1 && a + b + queued == CLIENTS)
            break;
        ck_assert_msg(harness_now_ms() < deadline,
                      "%d clients: %lld open on one, %lld on the other, %lld queued", CLIENTS, a, b,
                      queued);
        harness_sleep_ms(20);
    }
    ck_assert_msg(queued > 0, "no client waits in the queue of the one at max_connections");

    harness_lb_signal(&stop, SIGTERM);
    ck_assert_msg(harness_lb_log_wait(&stop,
                                      "SIGTERM: stopped accepting (reuse_port sockets hand "
                                      "new clients to the other processes)",
                                      1, HARNESS_WAIT_MS),
                  "no stop line; log %s", stop.log);
    /* New clients meanwhile: all served, none refused. */
    for (int i = 0; i < LATER; i++) {
        int c = harness_connect_ok("127.0.0.1", lport);
        harness_echo_roundtrip(c, harness_strf("later %d", i));
        close(c);
    }
    /* Every client that was waiting gets its bytes echoed. */
    for (int i = 0; i < CLIENTS; i++) {
        harness_echo_roundtrip(fd[i], harness_strf("client %d", i));
        close(fd[i]);
    }
    ck_assert_int_eq(harness_lb_wait_exit(&stop, HARNESS_WAIT_MS), 0);
    ck_assert_msg(harness_log_contains(stop.log, "info: listener web: socket closed; the other "
                                                 "reuse_port processes take its clients"),
                  "no socket closed line; log %s", stop.log);
    ck_assert_int_eq(harness_log_count(stop.log, "session end"), (int)queued + 1);
    ck_assert_int_eq(harness_lb_stop(&keep), 0);
}
END_TEST

/* Without reuse_port on both sockets the second process cannot bind the
 * port: it fails at start with the kernel's reason, and the first one
 * serves on. A reload turns reuse_port on for a kept socket (then a second
 * process starts beside it); turning it off keeps it on, with a warning. */
START_TEST(reuse_port_needed)
{
    int lport = harness_free_port(), fport = harness_free_port(), bport = harness_free_port();
    int aport[2] = {harness_free_port(), harness_free_port()};
    harness_backend("127.0.0.1", bport, "b1", "name");
    const char *off =
        harness_write_file("off.json", harness_jtext(shared_cfg(lport, fport, bport, false, 0)));
    const char *on =
        harness_write_file("on.json", harness_jtext(shared_cfg(lport, fport, bport, true, 0)));
    const char *want = harness_strf("error: listener web: cannot listen on 127.0.0.1:%d: Address "
                                    "already in use",
                                    lport);
    struct harness_lb first;
    harness_lb_start_admin(&first, harness_read_file(off), aport[0]);
    web_total(aport[0], false);
    for (int k = 0; k < 2; k++) {
        char *argv[] = {LB_BUILD_DIR "/lb",           "-c", (char *)(k ? on : off), "-a",
                        (char *)harness_lo(aport[1]), NULL};
        const char *out, *err;
        int status = harness_run(argv, &out, &err, HARNESS_WAIT_MS);
        ck_assert_msg(status == 1 && strstr(err, want),
                      "second lb (%s reuse_port) beside one without: status %d, stderr %s",
                      k ? "with" : "without", status, err);
    }
    fetch_b1(lport, 3);

    /* Turned on by a reload: a second process with reuse_port joins. */
    harness_lb_rewrite(&first, harness_read_file(on));
    harness_lb_signal(&first, SIGHUP);
    ck_assert_msg(harness_lb_log_wait(&first, "info: reload ok: generation 2", 1, HARNESS_WAIT_MS),
                  "no reload; log %s", first.log);
    web_total(aport[0], true);
    struct harness_lb second;
    harness_lb_start_admin(&second, harness_read_file(on), aport[1]);
    fetch_b1(lport, 100);
    long long t0 = web_total(aport[0], true), t1 = web_total(aport[1], true);
    ck_assert_msg(t0 + t1 == 103 && t0 > 3 && t1 > 0,
                  "100 clients: %lld on the first, %lld on the second", t0 - 3, t1);

    /* Turned off by a reload: it stays on, and says so. */
    harness_lb_rewrite(&first, harness_read_file(off));
    harness_lb_signal(&first, SIGHUP);
    ck_assert_msg(harness_lb_log_wait(&first, "info: reload ok: generation 3", 1, HARNESS_WAIT_MS),
                  "no reload; log %s", first.log);
    ck_assert_msg(harness_log_contains(first.log, "warn: reload: listener web: reuse_port stays on "
                                                  "until lb restarts"),
                  "no warning; log %s", first.log);
    web_total(aport[0], true);
    ck_assert_int_eq(harness_lb_stop(&second), 0);
    ck_assert_int_eq(harness_lb_stop(&first), 0);
}
END_TEST

#define UNIT_WORDS 32

/* Fills words with the words of the unit's first line starting with key
 * (e.g. "ExecStart=") after the key, %i replaced by instance,
 * NULL-terminated (the strings are freed at teardown); returns words.
 * Fails the test when the unit has no such line. */
static char **unit_words(char *words[UNIT_WORDS], const char *unit, const char *key,
                         const char *instance)
{
    const char *at = unit;
    while (at && strncmp(at, key, strlen(key)) != 0)
        at = (at = strchr(at, '\n')) ? at + 1 : NULL;
    ck_assert_msg(at != NULL, "examples/lb@.service has no %s line", key);
    at += strlen(key);
    char *line = harness_strf("%.*s", (int)strcspn(at, "\n"), at);
    int n = 0;
    for (char *save = NULL, *w = strtok_r(line, " ", &save); w && n < UNIT_WORDS - 1;
         w = strtok_r(NULL, " ", &save)) {
        char *pct = strstr(w, "%i");
        words[n++] = pct ? harness_strf("%.*s%s%s", (int)(pct - w), w, instance, pct + 2) : w;
    }
    words[n] = NULL;
    return words;
}

/* examples/lb@.service as written: its ExecStartPre and ExecStart run lb
 * on /etc/lb/lb.json with the admin API on 127.0.0.1:91%i; here two
 * instances (01, 02) of it share one reuse_port listener and each answer
 * on their own admin port, its ExecReload reloads one, and
 * systemd-analyze (where installed) finds nothing to say about the unit. */
START_TEST(systemd_unit)
{
    const char *root = harness_repo_root();
    const char *unit = harness_read_file(harness_strf("%s/examples/lb@.service", root));
    ck_assert_msg(unit[0] != '\0', "cannot read examples/lb@.service");
    static const char *const instance[2] = {"01", "02"};
    static const int aport[2] = {9101, 9102};
    for (int k = 0; k < 2; k++)
        ck_assert_msg(!harness_port_listening(aport[k]),
                      "port %d, the example's admin port of lb@%s, is in use here", aport[k],
                      instance[k]);
    int lport = harness_free_port(), bport = harness_free_port();
    harness_backend("127.0.0.1", bport, "b1", "name");
    const char *config = harness_jtext(shared_cfg(lport, harness_free_port(), bport, true, 0));

    struct harness_lb lb[2];
    for (int k = 0; k < 2; k++) {
        char *pre_words[UNIT_WORDS], *start_words[UNIT_WORDS];
        char **pre = unit_words(pre_words, unit, "ExecStartPre=", instance[k]);
        char **start = unit_words(start_words, unit, "ExecStart=", instance[k]);
        ck_assert_str_eq(pre[0], "/usr/local/sbin/lb");
        ck_assert_str_eq(start[0], "/usr/local/sbin/lb");
        ck_assert_msg(strcmp(start[1], "-c") == 0 && strcmp(start[2], "/etc/lb/lb.json") == 0,
                      "ExecStart does not start with lb -c /etc/lb/lb.json");
        /* ExecStartPre: lb -t on the same file and address. */
        const char *path = harness_write_file("lb.json", config);
        pre[0] = LB_BUILD_DIR "/lb";
        for (int w = 1; pre[w]; w++)
            if (strcmp(pre[w], "/etc/lb/lb.json") == 0)
                pre[w] = (char *)path;
        const char *out, *err;
        int status = harness_run(pre, &out, &err, HARNESS_WAIT_MS);
        ck_assert_msg(status == 0 && strcmp(out, "configuration ok\n") == 0,
                      "ExecStartPre of lb@%s: status %d, %s%s", instance[k], status, out, err);
        harness_lb_start_args(&lb[k], config, aport[k], (const char *const *)start + 3);
    }
    fetch_b1(lport, 100);
    long long t0 = web_total(aport[0], true), t1 = web_total(aport[1], true);
    ck_assert_msg(t0 + t1 == 100 && t0 > 0 && t1 > 0, "100 clients: %lld on lb@01, %lld on lb@02",
                  t0, t1);

    /* ExecReload: kill -HUP $MAINPID. */
    char *reload_words[UNIT_WORDS];
    char **reload = unit_words(reload_words, unit, "ExecReload=", "01");
    ck_assert_str_eq(reload[0], "/bin/kill");
    ck_assert_str_eq(reload[1], "-HUP");
    ck_assert_str_eq(reload[2], "$MAINPID");
    reload[2] = harness_strf("%d", (int)lb[0].pid);
    ck_assert_int_eq(harness_run(reload, NULL, NULL, HARNESS_WAIT_MS), 0);
    ck_assert_msg(harness_lb_log_wait(&lb[0], "info: reload ok: generation 2", 1, HARNESS_WAIT_MS),
                  "lb@01 did not reload; log %s", lb[0].log);
    ck_assert_int_eq(harness_log_count(lb[1].log, "reload"), 0);
    fetch_b1(lport, 10);

    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(harness_lb_stop(&lb[k]), 0);

    if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
        fprintf(stderr, "SKIP %s: no systemd-analyze here (the unit was not verified)\n", __func__);
        return;
    }
    /* The unit with this machine's paths, as an instance file. */
    const char *copy = unit;
    const char *lb_path = LB_BUILD_DIR "/lb";
    while (strstr(copy, "/usr/local/sbin/lb")) {
        const char *at = strstr(copy, "/usr/local/sbin/lb");
        copy = harness_strf("%.*s%s%s", (int)(at - copy), copy, lb_path,
                            at + strlen("/usr/local/sbin/lb"));
    }
    const char *file = harness_write_file("lb@01.service", copy);
    char *verify[] = {"/usr/bin/systemd-analyze", "verify", (char *)file, NULL};
    const char *out, *err;
    int status = harness_run(verify, &out, &err, 4 * HARNESS_WAIT_MS);
    ck_assert_msg(status == 0 && err[0] == '\0' && out[0] == '\0',
                  "systemd-analyze verify: status %d: %s%s", status, out, err);
}
END_TEST

static Suite *scaleout_suite(void)
{
    Suite *s = suite_create("scaleout");
    TCase *tc = harness_tcase("agreement");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, agreement);
    suite_add_tcase(s, tc);
    tc = harness_tcase("reuse_port");
    tcase_add_test(tc, reuse_port_shared);
    tcase_add_test(tc, reuse_port_stop_one);
    tcase_add_test(tc, reuse_port_needed);
    tcase_add_test(tc, systemd_unit);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(scaleout_suite)
