/* Integration: an active/backup pair of lb machines holding a virtual IP
 * with keepalived (VRRP), built from examples/keepalived.conf and
 * examples/lb-check. The test makes its own network: five namespaces named
 * lbt-PID-{lan,a,b,cli,srv}, a bridge in lan and a veth from each of the
 * others to it (eth0 in each, 10.203.0.0/24, VIP 10.203.0.100). lb and
 * keepalived run in a and b, backends in srv, clients in cli (the test
 * process itself, which moves between namespaces with setns(2); processes
 * it starts live in the namespace it is in). A guard process deletes the
 * namespaces and kills what runs in them when the test process ends, however
 * it ends. Root only: skipped with a message elsewhere. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#define HA_VIP "10.203.0.100"
#define HA_PORT 8080
#define HA_ADMIN 9090
#define HA_CLIENTS 50
#define HA_BACKENDS 4
/* The bound: the VIP is on the backup within 5 s of the failure. */
#define HA_FAILOVER_MS 5000
#define KEEPALIVED "/usr/sbin/keepalived"
/* How long a "the VIP stays where it is" is watched: longer than a backup
 * waits before it takes over (3 x advert_int + skew, under 3.7 s with the
 * example's advert_int 1), and than a preempting backup waits (one
 * advert_int). A negative needs some wait; this is the protocol's. */
#define HA_STAYS_MS 4000

enum { NS_LAN, NS_A, NS_B, NS_CLI, NS_SRV, NS_COUNT };
static const char *ns_role[NS_COUNT] = {"lan", "a", "b", "cli", "srv"};
static const char *ns_addr[NS_COUNT] = {NULL, "10.203.0.1", "10.203.0.2", "10.203.0.50",
                                        "10.203.0.10"};

struct ha {
    char ns[NS_COUNT][64];
    int fd[NS_COUNT];
    int root;       /* the test's own namespace, to leave cli before removing it */
    int guard_pipe; /* write end; its close tells the guard to clean up */
    pid_t guard;
};

/* Runs the shell command that kills every process in the test's namespaces
 * and deletes them; best effort, quiet. */
static void ha_remove_all(const struct ha *h)
{
    char cmd[2048] = "";
    size_t len = 0;
    for (int i = NS_COUNT - 1; i >= 0; i--)
        len += (size_t)snprintf(cmd + len, sizeof(cmd) - len,
                                "for p in $(ip netns pids %s 2>/dev/null); do kill -9 $p; done; "
                                "ip netns del %s 2>/dev/null; ",
                                h->ns[i], h->ns[i]);
    if (system(cmd) < 0)
        _exit(1);
}

/* Forks the guard: in a session of its own (Check kills the test's process
 * group), it waits for the pipe to close (the test process exited, or
 * ha_down) and then removes everything. */
static void ha_guard(struct ha *h)
{
    int p[2];
    ck_assert(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        setsid();
        close(p[1]);
        char c;
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        ha_remove_all(h);
        _exit(0);
    }
    close(p[0]);
    h->guard_pipe = p[1];
    h->guard = pid;
}

/* Removes the network now and waits (bounded) for the guard to finish. */
static void ha_down(struct ha *h)
{
    ck_assert(setns(h->root, CLONE_NEWNET) == 0);
    close(h->root);
    for (int i = 0; i < NS_COUNT; i++)
        if (h->fd[i] >= 0)
            close(h->fd[i]);
    close(h->guard_pipe);
    int status = 0;
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    while (waitpid(h->guard, &status, WNOHANG) == 0 && harness_now_ms() < deadline)
        harness_sleep_ms(10);
}

/* The ip tool's path (harness_spawn execs without searching PATH); NULL
 * when iproute2 is not installed. */
static const char *ip_path(void)
{
    static const char *dirs[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (access(dirs[i], X_OK) == 0)
            return dirs[i];
    return NULL;
}

/* Runs argv (short-lived tools: ip) to completion within HARNESS_WAIT_MS,
 * its stdout into out (cap bytes, NUL-terminated; NULL: discarded), stderr
 * to the test's. Not harness_run: the harness tracks 64 children at most
 * and the test runs ip hundreds of times. Exit status, -1 otherwise. */
static int run_tool(char *const argv[], char *out, size_t cap)
{
    int p[2];
    ck_assert(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    for (;;) {
        char buf[4096];
        ssize_t n = harness_readable(p[0], 100) ? read(p[0], buf, sizeof(buf)) : -2;
        if (n == 0 || (n == -1 && errno != EINTR))
            break;
        if (n > 0 && out && len + (size_t)n < cap) {
            memcpy(out + len, buf, (size_t)n);
            len += (size_t)n;
        }
        if (harness_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            break;
        }
    }
    close(p[0]);
    if (out)
        out[len] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs "ip WORDS" (words split on spaces); its exit status. */
static int ip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ip(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    char *argv[32] = {(char *)ip_path()};
    int n = 1;
    for (char *w = strtok(line, " "); w && n < 31; w = strtok(NULL, " "))
        argv[n++] = w;
    argv[n] = NULL;
    return run_tool(argv, NULL, 0);
}

static void ha_enter(const struct ha *h, int which)
{
    ck_assert_msg(setns(h->fd[which], CLONE_NEWNET) == 0, "setns %s: %s", h->ns[which],
                  strerror(errno));
}

/* Builds the network; false (after a "skipped" line) where namespaces
 * cannot be made. The test process ends up in cli. */
static bool ha_up(struct ha *h, const char *test)
{
    const char *fork_mode = getenv("CK_FORK");
    if (fork_mode && strcmp(fork_mode, "no") == 0) {
        fprintf(stderr,
                "%s: skipped: needs Check's fork mode (the test process moves between "
                "network namespaces)\n",
                test);
        return false;
    }
    if (access(KEEPALIVED, X_OK) != 0) {
        fprintf(stderr, "%s: skipped: %s is not installed (scripts/install-deps)\n", test,
                KEEPALIVED);
        return false;
    }
    if (!ip_path()) {
        fprintf(stderr, "%s: skipped: the ip tool (iproute2) is not installed\n", test);
        return false;
    }
    for (int i = 0; i < NS_COUNT; i++) {
        snprintf(h->ns[i], sizeof(h->ns[i]), "lbt-%d-%s", (int)getpid(), ns_role[i]);
        h->fd[i] = -1;
    }
    h->root = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ck_assert(h->root >= 0);
    ha_guard(h);
    if (ip("netns add %s", h->ns[NS_LAN]) != 0) {
        fprintf(stderr,
                "%s: skipped: cannot create a network namespace with `ip netns add` (needs "
                "root, CAP_NET_ADMIN and iproute2)\n",
                test);
        ha_down(h);
        return false;
    }
    for (int i = 1; i < NS_COUNT; i++)
        ck_assert_int_eq(ip("netns add %s", h->ns[i]), 0);
    const char *lan = h->ns[NS_LAN];
    ck_assert_int_eq(ip("-n %s link set lo up", lan), 0);
    ck_assert_int_eq(ip("-n %s link add br0 type bridge", lan), 0);
    ck_assert_int_eq(ip("-n %s link set br0 up", lan), 0);
    for (int i = 1; i < NS_COUNT; i++) {
        const char *ns = h->ns[i];
        ck_assert_int_eq(
            ip("-n %s link add name v-%s type veth peer name eth0 netns %s", lan, ns_role[i], ns),
            0);
        ck_assert_int_eq(ip("-n %s link set v-%s master br0", lan, ns_role[i]), 0);
        ck_assert_int_eq(ip("-n %s link set v-%s up", lan, ns_role[i]), 0);
        ck_assert_int_eq(ip("-n %s link set lo up", ns), 0);
        ck_assert_int_eq(ip("-n %s addr add %s/24 dev eth0", ns, ns_addr[i]), 0);
        ck_assert_int_eq(ip("-n %s link set eth0 up", ns), 0);
    }
    /* The clients' own source addresses, 10.203.0.150 to .199. */
    char batch[HA_CLIENTS * 48] = "";
    size_t len = 0;
    for (int c = 0; c < HA_CLIENTS; c++)
        len += (size_t)snprintf(batch + len, sizeof(batch) - len,
                                "addr add 10.203.0.%d/24 dev eth0\n", 150 + c);
    const char *file = harness_write_file("cli-addrs.batch", batch);
    ck_assert_int_eq(ip("-n %s -batch %s", h->ns[NS_CLI], file), 0);
    for (int i = 0; i < NS_COUNT; i++) {
        const char *path = harness_strf("/run/netns/%s", h->ns[i]);
        h->fd[i] = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(h->fd[i] >= 0, "open %s: %s", path, strerror(errno));
    }
    ha_enter(h, NS_CLI);
    return true;
}

/* Replaces the first `from` in text with `to` (freed at teardown); fails
 * the test when text has no `from` (the example changed). */
static const char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "examples/keepalived.conf has no \"%s\"", from);
    return harness_strf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* Starts keepalived in namespace which (a or b) with examples/keepalived.conf,
 * its check script and VIP made this test's, at that priority. Returns the
 * PID of keepalived's parent process (-n: it does not daemonize); *vrrp_pid
 * file names where it writes its VRRP child's PID. */
static pid_t keepalived_start(const struct ha *h, int which, int priority, const char **vrrp_pid)
{
    const char *root = harness_repo_root();
    const char *conf = harness_read_file(harness_strf("%s/examples/keepalived.conf", root));
    ck_assert_msg(conf[0] != '\0', "cannot read examples/keepalived.conf");
    conf = replace(conf, "script \"/usr/local/bin/lb-check http://127.0.0.1:9090/healthz 1\"",
                   harness_strf("script \"%s/examples/lb-check http://127.0.0.1:%d/healthz 1\"",
                                root, HA_ADMIN));
    conf = replace(conf, "priority 150", harness_strf("priority %d", priority));
    conf = replace(conf, "192.0.2.100/24", HA_VIP "/24");
    const char *role = ns_role[which];
    const char *path = harness_write_file(harness_strf("keepalived-%s.conf", role), conf);
    const char *pid = harness_strf("%s/keepalived-%s.pid", harness_dir(), role);
    *vrrp_pid = harness_strf("%s/keepalived-%s-vrrp.pid", harness_dir(), role);
    const char *log = harness_strf("%s/keepalived-%s.log", harness_dir(), role);
    char *argv[] = {(char *)ip_path(),
                    "netns",
                    "exec",
                    (char *)h->ns[which],
                    KEEPALIVED,
                    "-n",
                    "-l",
                    "-D",
                    "-G",
                    "--vrrp",
                    "-f",
                    (char *)path,
                    "-p",
                    (char *)pid,
                    "-r",
                    (char *)*vrrp_pid,
                    NULL};
    return harness_spawn(argv, log, NULL);
}

/* True when namespace which holds the VIP on eth0. */
static bool has_vip(const struct ha *h, int which)
{
    char out[4096];
    char *argv[] = {(char *)ip_path(),
                    "-n",
                    (char *)h->ns[which],
                    "-4",
                    "-o",
                    "addr",
                    "show",
                    "dev",
                    "eth0",
                    NULL};
    if (run_tool(argv, out, sizeof(out)) != 0)
        return false;
    return strstr(out, " " HA_VIP "/") != NULL;
}

/* Waits up to timeout_ms from `since` for the VIP to be on which; the ms it
 * took from `since`, -1 when it did not get there. */
static long wait_vip(const struct ha *h, int which, long since, long timeout_ms)
{
    for (;;) {
        long now = harness_now_ms();
        if (has_vip(h, which))
            return now - since <= timeout_ms ? now - since : -1;
        if (now - since >= timeout_ms)
            return -1;
        harness_sleep_ms(20);
    }
}

/* The lb config of both machines: tcp on 0.0.0.0:8080, iphash over the srv
 * backends, admin on the namespace's loopback. */
static json_t *ha_lb_config(void)
{
    char backends[512] = "";
    size_t len = 0;
    for (int i = 0; i < HA_BACKENDS; i++)
        len += (size_t)snprintf(backends + len, sizeof(backends) - len,
                                "%s{\"address\": \"10.203.0.10:%d\", \"name\": \"s%d\"}",
                                i ? ", " : "", 8001 + i, i + 1);
    struct harness_conf c = {.listen = harness_strf("0.0.0.0:%d", HA_PORT),
                             .strategy = "iphash",
                             .backends = backends,
                             .grace_ms = 200};
    json_t *cfg = harness_cfg(&c);
    harness_jset(cfg, "admin.listen", json_string(harness_lo(HA_ADMIN)));
    return cfg;
}

static void lb_start_in(const struct ha *h, int which, struct harness_lb *lb)
{
    ha_enter(h, which);
    harness_lb_start_json(lb, ha_lb_config(), HA_PORT);
    ha_enter(h, NS_CLI);
}

static void lb_stop_in(const struct ha *h, int which, struct harness_lb *lb)
{
    ha_enter(h, which);
    harness_lb_stop(lb);
    ha_enter(h, NS_CLI);
}

/* Connections lb in namespace which accepted on its listener so far. */
static long lb_accepted(const struct ha *h, int which)
{
    ha_enter(h, which);
    struct harness_reply r = harness_call(HA_ADMIN, "GET", "/api/v1/listeners", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    long n = (long)json_integer_value(harness_jget(r.json, "listeners.0.total_connections"));
    ha_enter(h, NS_CLI);
    return n;
}

/* Every client (source 10.203.0.150 + i) connects to the VIP once and
 * reads its backend's name into names[i]; asserts that lb in namespace
 * `served` (a or b) accepted every one of them and the other none. */
static void clients_round(const struct ha *h, const char *names[HA_CLIENTS], int served,
                          long other_before)
{
    int other = served == NS_A ? NS_B : NS_A;
    long before = lb_accepted(h, served);
    for (int i = 0; i < HA_CLIENTS; i++) {
        const char *src = harness_strf("10.203.0.%d", 150 + i);
        names[i] = harness_fetch_name(src, HA_VIP, HA_PORT);
        ck_assert_msg(names[i] != NULL, "client %s got no answer from the VIP", src);
    }
    ck_assert_int_eq(lb_accepted(h, served) - before, HA_CLIENTS);
    if (other_before >= 0)
        ck_assert_int_eq(lb_accepted(h, other), other_before);
}

static void same_backends(const char *before[HA_CLIENTS], const char *after[HA_CLIENTS])
{
    int distinct = 0;
    for (int i = 0; i < HA_CLIENTS; i++) {
        ck_assert_msg(strcmp(before[i], after[i]) == 0,
                      "client 10.203.0.%d: backend %s before the failover, %s after", 150 + i,
                      before[i], after[i]);
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen = seen || strcmp(before[j], before[i]) == 0;
        distinct += !seen;
    }
    /* 50 clients over 4 backends: not all on one (the hash spreads them). */
    ck_assert_int_gt(distinct, 1);
}

/* The VIP is on A (higher priority); A's lb stopped: its check fails, A
 * goes to FAULT and B holds the VIP within 5 s; the same clients reach the
 * same backends through B. A's lb back: A's check passes again, but
 * nopreempt keeps the VIP on B. B's keepalived killed outright (SIGKILL,
 * its VRRP child stopped first so it sends no goodbye): A holds the VIP
 * within 5 s, the same backends again, through A. */
START_TEST(ha_failover)
{
    struct ha h;
    if (!ha_up(&h, "ha_failover"))
        return;
    for (int i = 0; i < HA_BACKENDS; i++) {
        ha_enter(&h, NS_SRV);
        harness_server(ns_addr[NS_SRV], 8001 + i, harness_fn_name,
                       (void *)harness_strf("s%d", i + 1));
    }
    ha_enter(&h, NS_CLI);
    struct harness_lb lb_a, lb_b, lb_a2;
    lb_start_in(&h, NS_A, &lb_a);
    lb_start_in(&h, NS_B, &lb_b);
    const char *vrrp_a, *vrrp_b;
    pid_t ka_a = keepalived_start(&h, NS_A, 150, &vrrp_a);
    long t0 = harness_now_ms();
    /* A becomes master once its check has passed `rise` times and it heard
     * no better advertisement (3 advert_int): bounded, not part of the spec. */
    ck_assert_msg(wait_vip(&h, NS_A, t0, 10000 * harness_slow()) >= 0,
                  "A never took the VIP; log:\n%s",
                  harness_read_file(harness_strf("%s/keepalived-a.log", harness_dir())));
    pid_t ka_b = keepalived_start(&h, NS_B, 100, &vrrp_b);
    /* B joins as backup: it must not take the VIP (nopreempt concerns only
     * who keeps it; the higher priority master stays). */
    ck_assert(harness_log_wait(harness_strf("%s/keepalived-b.log", harness_dir()),
                               "(lb_vip) Entering BACKUP STATE", 1, HARNESS_WAIT_MS));
    harness_sleep_ms(HA_STAYS_MS);
    ck_assert(has_vip(&h, NS_A));
    ck_assert(!has_vip(&h, NS_B));

    const char *first[HA_CLIENTS], *again[HA_CLIENTS];
    clients_round(&h, first, NS_A, lb_accepted(&h, NS_B));

    /* 1. A's lb stops (SIGTERM; the VIP is watched while it exits). */
    long stop = harness_now_ms();
    ha_enter(&h, NS_A);
    harness_lb_signal(&lb_a, SIGTERM);
    ha_enter(&h, NS_CLI);
    long took = wait_vip(&h, NS_B, stop, HA_FAILOVER_MS);
    ck_assert_msg(took >= 0, "VIP not on B within %d ms of A's lb stopping", HA_FAILOVER_MS);
    ha_enter(&h, NS_A);
    harness_lb_wait_exit(&lb_a, HARNESS_STOP_MS);
    ha_enter(&h, NS_CLI);
    fprintf(stderr, "ha_failover: A's lb stopped: VIP on B after %ld ms\n", took);
    ck_assert(!has_vip(&h, NS_A));
    clients_round(&h, again, NS_B, -1);
    same_backends(first, again);

    /* 2. A's lb back: A's check passes `rise` times and A leaves FAULT for
     * BACKUP (its second BACKUP); nopreempt: the VIP stays on B and B
     * serves. */
    lb_start_in(&h, NS_A, &lb_a2);
    ck_assert(harness_log_wait(harness_strf("%s/keepalived-a.log", harness_dir()),
                               "(lb_vip) Entering BACKUP STATE", 2, 10000 * harness_slow()));
    harness_sleep_ms(HA_STAYS_MS);
    ck_assert(has_vip(&h, NS_B));
    ck_assert(!has_vip(&h, NS_A));
    clients_round(&h, again, NS_B, lb_accepted(&h, NS_A));
    same_backends(first, again);

    /* 3. B's keepalived killed: its VRRP child stopped first, so nobody
     * says goodbye; A hears no advertisement for 3 advert_int and takes
     * over. B's kernel keeps the VIP (keepalived did not remove it), but
     * A's gratuitous ARPs move the clients to A. */
    pid_t child = (pid_t)atol(harness_read_file(vrrp_b));
    ck_assert_int_gt(child, 1);
    long kill_at = harness_now_ms();
    ck_assert(kill(child, SIGSTOP) == 0);
    ck_assert(kill(ka_b, SIGKILL) == 0);
    ck_assert(kill(child, SIGKILL) == 0);
    ck_assert_int_eq(harness_wait_exit(ka_b, HARNESS_WAIT_MS), -1);
    took = wait_vip(&h, NS_A, kill_at, HA_FAILOVER_MS);
    ck_assert_msg(took >= 0, "VIP not on A within %d ms of B's keepalived dying", HA_FAILOVER_MS);
    fprintf(stderr, "ha_failover: B's keepalived killed: VIP on A after %ld ms\n", took);
    clients_round(&h, again, NS_A, lb_accepted(&h, NS_B));
    same_backends(first, again);

    kill(ka_a, SIGTERM);
    ck_assert_int_eq(harness_wait_exit(ka_a, HARNESS_WAIT_MS), 0);
    (void)vrrp_a;
    lb_stop_in(&h, NS_A, &lb_a2);
    lb_stop_in(&h, NS_B, &lb_b);
    ha_down(&h);
}
END_TEST

static Suite *ha_suite(void)
{
    Suite *s = suite_create("ha");
    TCase *tc = harness_tcase("failover");
    tcase_add_test(tc, ha_failover);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(ha_suite)
