/* harness: the integration-test helpers declared in harness.h. Children are
 * tracked by PID and killed at teardown (and die with the test process via
 * PR_SET_PDEATHSIG); all socket helpers poll against a deadline; strings
 * handed to tests live in a list freed at teardown. */
#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/test.h"
#include "tests/harness.h"

#ifndef LB_BUILD_DIR
#error "LB_BUILD_DIR must name the build directory (the Makefile passes it)"
#endif

#define MAX_CHILDREN 64
#define LOG_TAIL 3000 /* bytes of a log quoted in a failure message */
#define MAX_PORTS 256

struct child {
    pid_t pid;
    bool reaped;
};

struct alloc {
    struct alloc *next;
    char data[];
};

static char dir[256];
static struct child children[MAX_CHILDREN];
static int nchildren;
static struct alloc *allocs;
static int nfiles;              /* numbering for lb config/log files */
static int ports[MAX_PORTS];    /* handed out by harness_free_port* */
static int pipes[MAX_CHILDREN]; /* read ends of harness_lb_start_pipe, closed at teardown */
static int npipes;
static int nports;
static bool atexit_done;

/* --- time, memory, files --- */

long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static char *keep(size_t len)
{
    struct alloc *a = malloc(sizeof(*a) + len);
    ck_assert_msg(a != NULL, "harness: out of memory");
    a->next = allocs;
    allocs = a;
    return a->data;
}

char *harness_strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    char *s = keep((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *harness_dir(void)
{
    return dir;
}

const char *harness_write_file(const char *name, const char *text)
{
    const char *path = harness_strf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "harness: cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_msg(fclose(f) == 0, "harness: cannot write %s", path);
    return path;
}

/* The whole file, malloc'd (the caller frees); "" when missing. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ck_assert_msg(buf != NULL, "harness: out of memory");
    size_t n;
    while (f && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_msg(buf != NULL, "harness: out of memory");
        }
    }
    if (f)
        fclose(f);
    buf[len] = '\0';
    return buf;
}

const char *harness_read_file(const char *path)
{
    char *text = slurp(path);
    size_t len = strlen(text);
    char *s = keep(len + 1);
    memcpy(s, text, len + 1);
    free(text);
    return s;
}

/* The end of a log, for failure messages. */
static const char *log_tail(const char *path)
{
    const char *text = harness_read_file(path);
    size_t len = strlen(text);
    return len > LOG_TAIL ? text + len - LOG_TAIL : text;
}

/* --- processes --- */

static struct child *child_find(pid_t pid)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i].pid == pid)
            return &children[i];
    return NULL;
}

static void kill_all(void)
{
    for (int i = 0; i < nchildren; i++) {
        if (children[i].reaped)
            continue;
        kill(children[i].pid, SIGKILL);
        waitpid(children[i].pid, NULL, 0);
        children[i].reaped = true;
    }
    nchildren = 0;
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void free_allocs(void)
{
    while (allocs) {
        struct alloc *next = allocs->next;
        free(allocs);
        allocs = next;
    }
}

static void harness_atexit(void)
{
    kill_all();
}

void harness_setup(void)
{
    if (!atexit_done) {
        atexit(harness_atexit);
        atexit_done = true;
    }
    snprintf(dir, sizeof(dir), "/tmp/lb-it-XXXXXX");
    ck_assert_msg(mkdtemp(dir) != NULL, "harness: mkdtemp: %s", strerror(errno));
    nfiles = 0;
    nports = 0;
}

#define MAX_JSON_KEPT 4096
static json_t *json_kept[MAX_JSON_KEPT]; /* harness_call answers, freed at teardown */
static int njson_kept;

void harness_teardown(void)
{
    for (int i = 0; i < njson_kept; i++)
        json_decref(json_kept[i]);
    njson_kept = 0;
    kill_all();
    for (int i = 0; i < npipes; i++)
        if (pipes[i] >= 0)
            close(pipes[i]);
    npipes = 0;
    if (getenv("LB_IT_KEEP"))
        fprintf(stderr, "harness: kept %s\n", dir);
    else
        remove_dir();
    free_allocs();
}

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void child_exec(char *const argv[], pid_t parent, int out, int err)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(127);
    close_range(3, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    setenv("ASAN_OPTIONS", "detect_leaks=1:exitcode=23", 0);
    setenv("UBSAN_OPTIONS", "print_stacktrace=1", 0);
    execv(argv[0], argv);
    static const char msg[] = "harness: exec failed\n";
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(127);
    _exit(127);
}

/* Forks and execs argv with stdout to out and stderr to err (the caller
 * keeps and closes them); the PID is remembered for teardown. */
static pid_t spawn_fds(char *const argv[], int out, int err)
{
    ck_assert_msg(nchildren < MAX_CHILDREN, "harness: too many children");
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "harness: fork: %s", strerror(errno));
    if (pid == 0)
        child_exec(argv, parent, out, err);
    children[nchildren].pid = pid;
    children[nchildren].reaped = false;
    nchildren++;
    return pid;
}

pid_t harness_spawn(char *const argv[], const char *out_path, const char *err_path)
{
    int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ck_assert_msg(out >= 0, "harness: open %s: %s", out_path, strerror(errno));
    int err = out;
    if (err_path) {
        err = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        ck_assert_msg(err >= 0, "harness: open %s: %s", err_path, strerror(errno));
    }
    pid_t pid = spawn_fds(argv, out, err);
    close(out);
    if (err != out)
        close(err);
    return pid;
}

/* One waitpid(WNOHANG): 1 and *status when pid has exited, else 0. */
static int reap(pid_t pid, int *status)
{
    struct child *c = child_find(pid);
    if (c && c->reaped)
        return 0;
    int ws;
    pid_t r = waitpid(pid, &ws, WNOHANG);
    if (r != pid)
        return 0;
    if (c)
        c->reaped = true;
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return 1;
}

int harness_wait_exit(pid_t pid, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    int status;
    for (;;) {
        if (reap(pid, &status))
            return status;
        if (harness_now_ms() >= deadline)
            break;
        harness_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    struct child *c = child_find(pid);
    if (c)
        c->reaped = true;
    return -2;
}

int harness_run(char *const argv[], const char **out, const char **err, long timeout_ms)
{
    int n = ++nfiles;
    const char *out_path = harness_strf("%s/run-%d.out", dir, n);
    const char *err_path = harness_strf("%s/run-%d.err", dir, n);
    pid_t pid = harness_spawn(argv, out_path, err_path);
    int status = harness_wait_exit(pid, timeout_ms);
    if (out)
        *out = harness_read_file(out_path);
    if (err)
        *err = harness_read_file(err_path);
    return status;
}

/* --- ports --- */

static int fill_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof(*s4);
    return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}

static int free_port_on(const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (fill_addr(host, 0, &ss, &len) < 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    close(fd);
    return port;
}

/* Never hands out the same port twice in one test, so two "free" ports
 * asked for in a row cannot collide. */
static int free_port_new(const char *host)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int port = free_port_on(host);
        if (port <= 0)
            return -1;
        bool seen = false;
        for (int i = 0; i < nports && !seen; i++)
            seen = ports[i] == port;
        if (seen)
            continue;
        if (nports < MAX_PORTS)
            ports[nports++] = port;
        return port;
    }
    return -1;
}

int harness_free_port(void)
{
    int port = free_port_new("127.0.0.1");
    ck_assert_msg(port > 0, "harness: no free port on 127.0.0.1");
    return port;
}

int harness_free_port6(void)
{
    return free_port_new("::1");
}

bool harness_have_ipv6(void)
{
    return free_port_on("::1") > 0;
}

bool harness_wait_port(const char *host, int port, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int fd = harness_connect(host, port, 200);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
}

/* Scans one /proc/net/tcp-style file for a LISTEN (state 0A) socket. */
static bool proc_listening(const char *file, int port)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return false;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned lport, state;
        if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &lport, &state) != 2)
            continue;
        found = (int)lport == port && state == 0x0A;
    }
    fclose(f);
    return found;
}

bool harness_port_listening(int port)
{
    return proc_listening("/proc/net/tcp", port) || proc_listening("/proc/net/tcp6", port);
}

bool harness_wait_listening(int port, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (!harness_port_listening(port)) {
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
    return true;
}

bool harness_wait_not_listening(int port, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (harness_port_listening(port)) {
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
    return true;
}

/* --- lb and backends --- */

pid_t harness_backend(const char *host, int port, const char *name, const char *mode)
{
    return harness_backend_status(host, port, name, mode, NULL);
}

pid_t harness_backend_status(const char *host, int port, const char *name, const char *mode,
                             const char *status_file)
{
    const char *listen =
        strchr(host, ':') ? harness_strf("[%s]:%d", host, port) : harness_strf("%s:%d", host, port);
    const char *log = harness_strf("%s/backend-%s-%d.log", dir, name, port);
    char *argv[] = {LB_BUILD_DIR "/demo-backend",
                    "-l",
                    (char *)listen,
                    "-n",
                    (char *)name,
                    "-m",
                    (char *)mode,
                    status_file ? "-s" : NULL,
                    (char *)status_file,
                    NULL};
    pid_t pid = harness_spawn(argv, log, NULL);
    bool up = harness_wait_port(host, port, HARNESS_WAIT_MS);
    ck_assert_msg(up, "demo-backend %s on %s did not come up; log %s:\n%s", name, listen, log,
                  log_tail(log));
    return pid;
}

const char *harness_config(const struct harness_conf *c)
{
    return harness_strf(
        "{\n"
        "  \"log\": {\"level\": \"info\"},\n"
        "  \"shutdown_grace_ms\": %u,\n"
        "  \"listeners\": [{\"name\": \"web\", \"listen\": \"%s\", \"mode\": \"tcp\",\n"
        "                 \"pool\": \"app\", \"max_connections\": %u, \"idle_timeout_ms\": %u}],\n"
        "  \"pools\": [{\"name\": \"app\", \"strategy\": \"%s\", \"connect_timeout_ms\": %u,\n"
        "             \"retries\": %u, %s\"backends\": [%s]}]\n"
        "}\n",
        c->grace_ms ? c->grace_ms : 10000, c->listen,
        c->max_connections ? c->max_connections : 10000,
        c->idle_timeout_ms ? c->idle_timeout_ms : 300000, c->strategy ? c->strategy : "roundrobin",
        c->connect_timeout_ms ? c->connect_timeout_ms : 3000, c->retries,
        c->pool_extra ? c->pool_extra : "", c->backends);
}

void harness_lb_start(struct harness_lb *lb, const char *config_json, int wait_port)
{
    harness_lb_start_limited(lb, config_json, wait_port, 0);
}

/* Writes config_json and names lb's config and log files. */
static void lb_files(struct harness_lb *lb, const char *config_json)
{
    int n = ++nfiles;
    snprintf(lb->config, sizeof(lb->config), "%s",
             harness_write_file(harness_strf("lb-%d.json", n), config_json));
    snprintf(lb->log, sizeof(lb->log), "%s/lb-%d.log", dir, n);
    lb->pipe = -1;
}

/* Waits until wait_port is listening; fails the test with the log when lb
 * exits first or the wait times out. */
static void lb_wait_started(struct harness_lb *lb, int wait_port)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    for (;;) {
        if (harness_port_listening(wait_port))
            return;
        int status;
        harness_lb_drain(lb);
        if (reap(lb->pid, &status))
            ck_abort_msg("lb exited at start with status %d; config %s; log %s:\n%s", status,
                         lb->config, lb->log, log_tail(lb->log));
        if (harness_now_ms() >= deadline)
            ck_abort_msg("lb not listening on port %d after %d ms; log %s:\n%s", wait_port,
                         HARNESS_WAIT_MS, lb->log, log_tail(lb->log));
        harness_sleep_ms(10);
    }
}

void harness_lb_start_pipe(struct harness_lb *lb, const char *config_json, int wait_port)
{
    lb_files(lb, config_json);
    harness_write_file(strrchr(lb->log, '/') + 1, "");
    int p[2];
    ck_assert_msg(pipe2(p, O_CLOEXEC) == 0, "harness: pipe: %s", strerror(errno));
    ck_assert_msg(npipes < MAX_CHILDREN, "harness: too many pipes");
    pipes[npipes++] = p[0];
    char *argv[] = {LB_BUILD_DIR "/lb", "-c", lb->config, NULL};
    lb->pid = spawn_fds(argv, p[1], p[1]);
    close(p[1]);
    ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    /* lb->pipe is set only now: the test decides when the pipe is read, so
     * a failed start shows no log. */
    lb_wait_started(lb, wait_port);
    lb->pipe = p[0];
}

size_t harness_lb_drain(struct harness_lb *lb)
{
    if (lb->pipe < 0)
        return 0;
    size_t total = 0;
    char buf[65536];
    FILE *f = fopen(lb->log, "a");
    ck_assert_msg(f != NULL, "harness: open %s: %s", lb->log, strerror(errno));
    for (;;) {
        ssize_t n = read(lb->pipe, buf, sizeof(buf));
        if (n <= 0)
            break;
        ck_assert(fwrite(buf, 1, (size_t)n, f) == (size_t)n);
        total += (size_t)n;
    }
    ck_assert(fclose(f) == 0);
    return total;
}

bool harness_lb_log_wait(struct harness_lb *lb, const char *needle, int count, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        harness_lb_drain(lb);
        if (harness_log_count(lb->log, needle) >= count)
            return true;
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
}

/* Closes lb's pipe after reading it to its end (bounded): lb has exited, so
 * only what it wrote before remains. */
static void lb_pipe_close(struct harness_lb *lb)
{
    long deadline = harness_now_ms() + HARNESS_WAIT_MS;
    while (harness_now_ms() < deadline) {
        harness_lb_drain(lb);
        struct pollfd p = {.fd = lb->pipe, .events = POLLIN};
        if (poll(&p, 1, 10) > 0 && (p.revents & POLLHUP) && !(p.revents & POLLIN))
            break;
    }
    harness_lb_drain(lb);
    for (int i = 0; i < npipes; i++)
        if (pipes[i] == lb->pipe)
            pipes[i] = -1;
    close(lb->pipe);
    lb->pipe = -1;
}

void harness_lb_start_limited(struct harness_lb *lb, const char *config_json, int wait_port,
                              int nofile)
{
    lb_files(lb, config_json);
    if (nofile > 0) {
        /* The shell sets soft and hard limits, so lb cannot raise it back. */
        char *argv[] = {"/bin/sh",
                        "-c",
                        harness_strf("ulimit -n %d && exec \"$0\" -c \"$1\"", nofile),
                        LB_BUILD_DIR "/lb",
                        lb->config,
                        NULL};
        lb->pid = harness_spawn(argv, lb->log, NULL);
    } else {
        char *argv[] = {LB_BUILD_DIR "/lb", "-c", lb->config, NULL};
        lb->pid = harness_spawn(argv, lb->log, NULL);
    }
    lb_wait_started(lb, wait_port);
}

void harness_assert_no_sanitizer_report(const char *text, const char *where)
{
    static const char *reports[] = {"AddressSanitizer", "LeakSanitizer", "runtime error"};
    for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
        const char *hit = strstr(text, reports[i]);
        ck_assert_msg(hit == NULL, "%s holds a %s report:\n%.*s", where, reports[i], LOG_TAIL,
                      hit ? hit : "");
    }
}

void harness_lb_check_clean(const struct harness_lb *lb)
{
    harness_assert_no_sanitizer_report(harness_read_file(lb->log),
                                       harness_strf("lb log %s", lb->log));
}

int harness_lb_wait_exit(struct harness_lb *lb, long timeout_ms)
{
    int status;
    if (lb->pipe >= 0) {
        /* Keep reading: an lb blocked on a full pipe could not exit. */
        long deadline = harness_now_ms() + timeout_ms;
        for (;;) {
            harness_lb_drain(lb);
            if (reap(lb->pid, &status))
                break;
            if (harness_now_ms() >= deadline) {
                status = harness_wait_exit(lb->pid, 0);
                break;
            }
            harness_sleep_ms(5);
        }
        lb_pipe_close(lb);
    } else {
        status = harness_wait_exit(lb->pid, timeout_ms);
    }
    ck_assert_msg(status != -2, "lb did not exit within %ld ms (killed); log %s:\n%s", timeout_ms,
                  lb->log, log_tail(lb->log));
    harness_lb_check_clean(lb);
    return status;
}

int harness_lb_stop(struct harness_lb *lb)
{
    kill(lb->pid, SIGTERM);
    return harness_lb_wait_exit(lb, HARNESS_STOP_MS);
}

/* --- logs --- */

bool harness_log_contains(const char *path, const char *needle)
{
    char *text = slurp(path);
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

int harness_log_count(const char *path, const char *needle)
{
    char *text = slurp(path);
    int count = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (memmem(p, len, needle, strlen(needle)))
            count++;
        p += len + (eol ? 1 : 0);
    }
    free(text);
    return count;
}

bool harness_log_wait(const char *path, const char *needle, int count, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (harness_log_count(path, needle) < count) {
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(10);
    }
    return true;
}

const char *harness_log_line(const char *path, const char *needle)
{
    const char *text = harness_read_file(path);
    const char *hit = strstr(text, needle);
    if (!hit)
        return NULL;
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    char *line = keep(len + 1);
    memcpy(line, start, len);
    line[len] = '\0';
    return line;
}

/* --- sockets --- */

static long remaining(long deadline)
{
    long left = deadline - harness_now_ms();
    return left > 0 ? left : 0;
}

static bool wait_fd(int fd, short events, long deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, (int)remaining(deadline));
        if (r > 0)
            return true;
        if (r == 0 || errno != EINTR)
            return false;
    }
}

int harness_connect_from(const char *src, const char *host, int port, long timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (fill_addr(host, port, &ss, &len) < 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (src) {
        struct sockaddr_storage sa;
        socklen_t salen;
        if (fill_addr(src, 0, &sa, &salen) < 0 || bind(fd, (struct sockaddr *)&sa, salen) < 0)
            goto fail;
    }
    long deadline = harness_now_ms() + timeout_ms;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        if (!wait_fd(fd, POLLOUT, deadline)) {
            errno = ETIMEDOUT;
            goto fail;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err) {
            errno = err;
            goto fail;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int harness_connect(const char *host, int port, long timeout_ms)
{
    return harness_connect_from(NULL, host, port, timeout_ms);
}

bool harness_send_all(int fd, const void *buf, size_t len, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (!wait_fd(fd, POLLOUT, deadline))
            return false;
    }
    return true;
}

ssize_t harness_recv_n(int fd, void *buf, size_t len, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno != EAGAIN && errno != EINTR)
            return got > 0 ? (ssize_t)got : -1;
        if (!wait_fd(fd, POLLIN, deadline))
            break;
    }
    return (ssize_t)got;
}

ssize_t harness_read_eof(int fd, void *buf, size_t cap, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    size_t got = 0;
    char *p = buf;
    for (;;) {
        char scratch[1];
        char *dst = got + 1 < cap ? p + got : scratch;
        size_t room = got + 1 < cap ? cap - 1 - got : 1;
        ssize_t n = recv(fd, dst, room, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0) {
            if (dst == scratch)
                return -1; /* more than cap - 1 bytes */
            got += (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (!wait_fd(fd, POLLIN, deadline))
            return -1;
    }
    if (cap > 0)
        p[got] = '\0';
    return (ssize_t)got;
}

long harness_wait_closed(int fd, long timeout_ms)
{
    long start = harness_now_ms();
    long deadline = start + timeout_ms;
    char scratch[4096];
    for (;;) {
        ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return harness_now_ms() - start;
        if (n > 0)
            continue;
        if (!wait_fd(fd, POLLIN, deadline))
            return -1;
    }
}

bool harness_readable(int fd, long timeout_ms)
{
    return wait_fd(fd, POLLIN, harness_now_ms() + timeout_ms);
}

const char *harness_fetch_name(const char *src, const char *host, int port)
{
    int fd = harness_connect_from(src, host, port, HARNESS_WAIT_MS);
    if (fd < 0)
        return NULL;
    char buf[256];
    ssize_t n = harness_read_eof(fd, buf, sizeof(buf), HARNESS_WAIT_MS);
    close(fd);
    if (n <= 0)
        return NULL;
    if (buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return harness_strf("%s", buf);
}

/* --- HTTP client --- */

#define HTTP_RESPONSE_MAX (64 * 1024 * 1024)

/* Reads until EOF into a malloc'd buffer (the caller frees); -1 on timeout,
 * error before EOF with nothing read, or more than HTTP_RESPONSE_MAX. */
static ssize_t http_read_all(int fd, char **out, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap + 1);
    ck_assert_msg(buf != NULL, "harness: out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= HTTP_RESPONSE_MAX)
                goto fail;
            cap *= 2;
            buf = realloc(buf, cap + 1);
            ck_assert_msg(buf != NULL, "harness: out of memory");
        }
        ssize_t n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            if (len > 0)
                break; /* a reset after the answer: keep what came */
            goto fail;
        }
        if (!wait_fd(fd, POLLIN, deadline))
            goto fail;
    }
    buf[len] = '\0';
    *out = buf;
    return (ssize_t)len;
fail:
    free(buf);
    return -1;
}

/* Decodes a chunked body in place; its new length, or -1 when malformed. */
static ssize_t http_unchunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(body + in, len - in, "\r\n", 2);
        if (!eol)
            return -1;
        char *end;
        unsigned long size = strtoul(body + in, &end, 16);
        if (end == body + in)
            return -1;
        in = (size_t)(eol - body) + 2;
        if (size == 0)
            return (ssize_t)out;
        if (size > len - in)
            return -1;
        memmove(body + out, body + in, size);
        out += size;
        in += size + 2;
        if (in > len)
            return -1;
    }
}

const char *harness_http_header(const char *resp_headers, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = resp_headers;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            const char *end = p + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            return harness_strf("%.*s", (int)(end - v), v);
        }
        p = eol ? eol + 2 : NULL;
    }
    return NULL;
}

/* Splits a whole response into status, headers and body. 0 or -1. */
static int http_parse(char *resp, size_t len, int *status, const char **resp_headers,
                      const char **resp_body)
{
    int code;
    if (sscanf(resp, "HTTP/1.%*[01] %3d", &code) != 1)
        return -1;
    char *head_end = memmem(resp, len, "\r\n\r\n", 4);
    if (!head_end)
        return -1;
    char *line_end = strstr(resp, "\r\n");
    const char *headers = harness_strf("%.*s", (int)(head_end + 2 - (line_end + 2)), line_end + 2);
    char *body = head_end + 4;
    size_t blen = len - (size_t)(body - resp);
    const char *te = harness_http_header(headers, "Transfer-Encoding");
    const char *cl = harness_http_header(headers, "Content-Length");
    if (te && strcasecmp(te, "chunked") == 0) {
        ssize_t n = http_unchunk(body, blen);
        if (n < 0)
            return -1;
        blen = (size_t)n;
    } else if (cl && strtoul(cl, NULL, 10) < blen) {
        blen = strtoul(cl, NULL, 10);
    }
    char *copy = keep(blen + 1);
    memcpy(copy, body, blen);
    copy[blen] = '\0';
    if (status)
        *status = code;
    if (resp_headers)
        *resp_headers = headers;
    if (resp_body)
        *resp_body = copy;
    return 0;
}

int harness_http_to(const char *host, int port, const char *method, const char *path,
                    const char *headers, const void *body, size_t len, int *status,
                    const char **resp_headers, const char **resp_body)
{
    int fd = harness_connect(host, port, HARNESS_WAIT_MS);
    if (fd < 0)
        return -1;
    const char *hostport =
        strchr(host, ':') ? harness_strf("[%s]:%d", host, port) : harness_strf("%s:%d", host, port);
    const char *length = body ? harness_strf("Content-Length: %zu\r\n", len) : "";
    const char *head = harness_strf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s%s\r\n",
                                    method, path, hostport, headers ? headers : "", length);
    /* A server may answer and close before reading all of a large body:
     * a failed send is not an error as long as an answer arrives. */
    if (harness_send_all(fd, head, strlen(head), HARNESS_WAIT_MS) && body)
        harness_send_all(fd, body, len, HARNESS_WAIT_MS);
    char *resp;
    ssize_t n = http_read_all(fd, &resp, HARNESS_WAIT_MS);
    close(fd);
    if (n < 0)
        return -1;
    int rc = http_parse(resp, (size_t)n, status, resp_headers, resp_body);
    free(resp);
    return rc;
}

int harness_http(int port, const char *method, const char *path, const char *headers,
                 const char *body, int *status, const char **resp_headers, const char **resp_body)
{
    return harness_http_to("127.0.0.1", port, method, path, headers, body, body ? strlen(body) : 0,
                           status, resp_headers, resp_body);
}

/* --- process inspection --- */

void harness_lb_signal(const struct harness_lb *lb, int sig)
{
    ck_assert_msg(kill(lb->pid, sig) == 0, "harness: kill(%ld, %d): %s", (long)lb->pid, sig,
                  strerror(errno));
}

int harness_fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            count++;
    closedir(d);
    return count;
}

long harness_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) != 1)
            kb = -1;
    fclose(f);
    return kb;
}

static uint64_t stream_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void harness_stream_fill(unsigned char *buf, uint64_t off, size_t n)
{
    uint64_t block = stream_mix(off / 8);
    for (size_t i = 0; i < n; i++) {
        uint64_t pos = off + i;
        if (pos % 8 == 0)
            block = stream_mix(pos / 8);
        buf[i] = (unsigned char)(block >> (8 * (pos % 8)));
    }
}

json_t *harness_jget(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        if (json_is_array(j))
            j = json_array_get(j, strtoul(part, NULL, 10));
        else
            j = json_object_get(j, part);
        ck_assert_msg(j != NULL, "no %s (at %s)", path, part);
    }
    return j;
}

long long harness_jint(json_t *j, const char *path)
{
    json_t *v = harness_jget(j, path);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", path);
    return json_integer_value(v);
}

const char *harness_jstr(json_t *j, const char *path)
{
    json_t *v = harness_jget(j, path);
    ck_assert_msg(json_is_string(v), "%s is not a string", path);
    return json_string_value(v);
}

struct harness_reply harness_call(int port, const char *method, const char *path,
                                  const char *headers, const char *body)
{
    struct harness_reply r = {0};
    int rc = harness_http(port, method, path, headers, body, &r.status, &r.headers, &r.body);
    ck_assert_msg(rc == 0, "%s %s: no HTTP answer", method, path);
    const char *type = harness_http_header(r.headers, "Content-Type");
    if (type && strcmp(type, "application/json") == 0) {
        json_error_t err;
        r.json = json_loads(r.body, 0, &err);
        ck_assert_msg(r.json != NULL, "%s %s: bad JSON (%s): %s", method, path, err.text, r.body);
        ck_assert_int_lt(njson_kept, MAX_JSON_KEPT);
        json_kept[njson_kept++] = r.json;
        size_t len = strlen(r.body);
        ck_assert_msg(len > 0 && r.body[len - 1] == '\n', "no final newline: %s", r.body);
    }
    return r;
}

bool harness_netns_enter(const char *test)
{
    const char *fork_mode = getenv("CK_FORK");
    if (fork_mode && strcmp(fork_mode, "no") == 0) {
        fprintf(stderr,
                "%s: skipped: needs Check's fork mode (it moves the test process into a "
                "network namespace)\n",
                test);
        return false;
    }
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "%s: skipped: cannot create a network namespace (%s; needs root)\n", test,
                strerror(errno));
        return false;
    }
    harness_loopback_set(true);
    return true;
}

static void loopback_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", ifname);
    ck_assert_msg(ioctl(s, req, ifr) == 0, "ioctl %lu on %s: %s", req, ifname, strerror(errno));
    close(s);
}

void harness_loopback_set(bool up)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    loopback_ioctl("lo", SIOCGIFFLAGS, &ifr);
    if (up)
        ifr.ifr_flags |= IFF_UP;
    else
        ifr.ifr_flags &= ~IFF_UP;
    loopback_ioctl("lo", SIOCSIFFLAGS, &ifr);
}

void harness_loopback_add(const char *ipv4)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, ipv4, &sin->sin_addr), 1);
    loopback_ioctl("lo:1", SIOCSIFADDR, &ifr);
    sin->sin_addr.s_addr = htonl(0xffffffffu);
    loopback_ioctl("lo:1", SIOCSIFNETMASK, &ifr);
}

void harness_lb_rewrite(const struct harness_lb *lb, const char *text)
{
    const char *tmp = harness_strf("%s.tmp", lb->config);
    FILE *f = fopen(tmp, "w");
    ck_assert_msg(f != NULL, "cannot write %s: %s", tmp, strerror(errno));
    fputs(text, f);
    ck_assert(fclose(f) == 0);
    ck_assert_msg(rename(tmp, lb->config) == 0, "rename %s: %s", tmp, strerror(errno));
}
