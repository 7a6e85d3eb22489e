/* harness/proc: processes spawned for a test, tracked by PID and killed at
 * teardown (they also die with the test process: PR_SET_PDEATHSIG); lb's
 * start (file, fd limit or pipe), stop with the sanitizer check, signals,
 * config rewrite, and what /proc says of a process. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness/internal.h"

#ifndef LB_BUILD_DIR
#error "LB_BUILD_DIR must name the build directory (the Makefile passes it)"
#endif

#define MAX_CHILDREN 64

struct child {
    pid_t pid;
    bool reaped;
    bool group; /* pid leads a process group: kill all of it */
};

static struct child children[MAX_CHILDREN];
static const char *lb_binary; /* harness_lb_install_copy(); NULL: the build's */
static int nchildren;
static int pipes[MAX_CHILDREN]; /* read ends of harness_lb_start_pipe, closed at teardown */
static int npipes;

/* --- processes --- */

static struct child *child_find(pid_t pid)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i].pid == pid)
            return &children[i];
    return NULL;
}

void harness_children_kill(void)
{
    for (int i = 0; i < nchildren; i++) {
        if (children[i].reaped)
            continue;
        kill(children[i].group ? -children[i].pid : children[i].pid, SIGKILL);
        waitpid(children[i].pid, NULL, 0);
        children[i].reaped = true;
    }
    nchildren = 0;
    lb_binary = NULL;
}

void harness_track(pid_t pid)
{
    harness_child_track(pid, false);
}

/* --- the client loop --- */

static void loop_fail(struct harness_loop *l, long attempt, const char *what, const char *detail)
{
    if (__atomic_add_fetch(&l->failed, 1, __ATOMIC_SEQ_CST) == 1)
        snprintf(l->first_error, sizeof(l->first_error), "connection %ld: %s%s%s", attempt, what,
                 detail[0] ? ": " : "", detail);
}

/* The child: no Check calls in here. */
static void loop_run(struct harness_loop *l, int port, const char *const answers[])
{
    for (long attempt = 1; !__atomic_load_n(&l->stop, __ATOMIC_SEQ_CST); attempt++) {
        int fd = harness_connect("127.0.0.1", port, 3000);
        if (fd < 0) {
            loop_fail(l, attempt, "connect", strerror(errno));
            harness_sleep_ms(1);
            continue;
        }
        char buf[64];
        ssize_t n = harness_read_eof(fd, buf, sizeof(buf), 3000);
        close(fd);
        int k = 0;
        while (n > 0 && answers[k] && strcmp(buf, answers[k]) != 0)
            k++;
        if (n <= 0 || !answers[k]) {
            if (n > 0)
                buf[strcspn(buf, "\n")] = '\0';
            loop_fail(l, attempt,
                      n < 0    ? "no answer before the deadline"
                      : n == 0 ? "empty answer"
                               : "unexpected answer",
                      n > 0 ? buf : "");
            continue;
        }
        __atomic_add_fetch(&l->answered[k], 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&l->ok, 1, __ATOMIC_SEQ_CST);
    }
}

struct harness_loop *harness_loop_start(int port, const char *const answers[])
{
    struct harness_loop *l =
        mmap(NULL, sizeof(*l), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(l != MAP_FAILED);
    memset(l, 0, sizeof(*l));
    size_t n = 0;
    while (answers[n])
        n++;
    ck_assert_uint_le(n, HARNESS_LOOP_ANSWERS);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == parent)
            loop_run(l, port, answers);
        _exit(0);
    }
    l->pid = pid;
    harness_child_track(pid, false);
    return l;
}

void harness_loop_progress(struct harness_loop *l, long count)
{
    long want = __atomic_load_n(&l->ok, __ATOMIC_SEQ_CST) + count;
    long deadline = harness_now_ms() + 4 * HARNESS_WAIT_MS;
    while (__atomic_load_n(&l->ok, __ATOMIC_SEQ_CST) < want) {
        ck_assert_msg(__atomic_load_n(&l->failed, __ATOMIC_SEQ_CST) == 0,
                      "the client loop failed: %s", l->first_error);
        ck_assert_msg(harness_now_ms() < deadline, "the client loop is stuck at %ld connections",
                      l->ok);
        harness_sleep_ms(2);
    }
}

struct harness_loop harness_loop_stop(struct harness_loop *l)
{
    __atomic_store_n(&l->stop, 1, __ATOMIC_SEQ_CST);
    ck_assert_msg(harness_wait_exit(l->pid, 2 * HARNESS_WAIT_MS) == 0,
                  "the client loop did not stop");
    struct harness_loop done = *l;
    munmap(l, sizeof(*l));
    return done;
}

const char *harness_lb_install_copy(void)
{
    const char *path = harness_strf("%s/lb", harness_dir());
    const char *tmp = harness_strf("%s.new", path);
    char *argv[] = {"/bin/cp", LB_BUILD_DIR "/lb", (char *)tmp, NULL};
    ck_assert_int_eq(harness_run(argv, NULL, NULL, HARNESS_WAIT_MS), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
    lb_binary = path;
    return path;
}

pid_t harness_lb_upgrade_pid(struct harness_lb *lb, int nth)
{
    static const char started[] = "info: binary upgrade: started ";
    ck_assert_msg(harness_lb_log_wait(lb, started, nth, HARNESS_WAIT_MS),
                  "no upgrade %d started in %s", nth, lb->log);
    const char *at = harness_read_file(lb->log);
    for (int i = 0; i < nth; i++)
        at = strstr(at, started) + 1;
    const char *p = strstr(at, "(pid ");
    ck_assert(p != NULL);
    pid_t pid = (pid_t)atoi(p + 5);
    ck_assert_int_gt(pid, 0);
    harness_track(pid);
    return pid;
}

void harness_child_track(pid_t pid, bool group)
{
    ck_assert_msg(nchildren < MAX_CHILDREN, "harness: too many children");
    children[nchildren].pid = pid;
    children[nchildren].reaped = false;
    children[nchildren].group = group;
    nchildren++;
}

void harness_pipes_close(void)
{
    for (int i = 0; i < npipes; i++)
        if (pipes[i] >= 0)
            close(pipes[i]);
    npipes = 0;
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
    harness_child_track(pid, false);
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
    int n = harness_next_file_number();
    const char *out_path = harness_strf("%s/run-%d.out", harness_dir(), n);
    const char *err_path = harness_strf("%s/run-%d.err", harness_dir(), n);
    pid_t pid = harness_spawn(argv, out_path, err_path);
    int status = harness_wait_exit(pid, timeout_ms);
    if (out)
        *out = harness_read_file(out_path);
    if (err)
        *err = harness_read_file(err_path);
    return status;
}

/* --- lb and backends --- */

pid_t harness_backend(const char *host, int port, const char *name, const char *mode)
{
    return harness_backend_status(host, port, name, mode, NULL);
}

pid_t harness_backend_status(const char *host, int port, const char *name, const char *mode,
                             const char *status_file)
{
    const char *listen = harness_hostport(host, port);
    const char *log = harness_strf("%s/backend-%s-%d.log", harness_dir(), name, port);
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
                  harness_log_tail(log));
    return pid;
}

void harness_lb_start(struct harness_lb *lb, const char *config_json, int wait_port)
{
    harness_lb_start_limited(lb, config_json, wait_port, 0);
}

/* Writes config_json and names lb's config and log files. */
static void lb_files(struct harness_lb *lb, const char *config_json)
{
    int n = harness_next_file_number();
    snprintf(lb->config, sizeof(lb->config), "%s",
             harness_write_file(harness_strf("lb-%d.json", n), config_json));
    snprintf(lb->log, sizeof(lb->log), "%s/lb-%d.log", harness_dir(), n);
    lb->pipe = -1;
}

/* Appends word to argv (at most max words, the last one NULL). */
static void argv_add(char **argv, int *n, int max, char *word)
{
    ck_assert_msg(*n < max - 1, "harness: LB_TEST_WRAPPER has too many words");
    argv[(*n)++] = word;
    argv[*n] = NULL;
}

/* prog as a path: itself when it holds a '/', else the first executable
 * of that name in PATH (the child execs with execv, which does not search). */
static char *path_find(const char *prog)
{
    if (strchr(prog, '/'))
        return (char *)prog;
    const char *path = getenv("PATH");
    char *copy = harness_strf("%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *full = harness_strf("%s/%s", d, prog);
        if (access(full, X_OK) == 0)
            return full;
    }
    ck_abort_msg("harness: LB_TEST_WRAPPER names %s, not found in PATH", prog);
    return NULL;
}

/* The command that starts lb on its config: under LB_TEST_WRAPPER its words
 * (split at spaces, "@DIR@" replaced by the temp dir) come first; with
 * nofile > 0 a shell sets the descriptor limit (soft and hard, so lb cannot
 * raise it back) and execs the rest. Freed at teardown. */
/* Words lb_argv's array holds, its NULL included. */
#define LB_ARGV_MAX 64

static char **lb_argv(const struct harness_lb *lb, int nofile)
{
    enum { MAX_WORDS = LB_ARGV_MAX };
    char **argv = (char **)harness_keep(MAX_WORDS * sizeof(char *));
    int n = 0;
    argv[0] = NULL;
    if (nofile > 0) {
        argv_add(argv, &n, MAX_WORDS, "/bin/sh");
        argv_add(argv, &n, MAX_WORDS, "-c");
        argv_add(argv, &n, MAX_WORDS, harness_strf("ulimit -n %d && exec \"$@\"", nofile));
        argv_add(argv, &n, MAX_WORDS, "sh");
    }
    const char *wrapper = harness_wrapper();
    if (wrapper) {
        char *copy = harness_strf("%s", wrapper);
        for (char *save = NULL, *w = strtok_r(copy, " ", &save); w;
             w = strtok_r(NULL, " ", &save)) {
            char *at = strstr(w, "@DIR@");
            if (at)
                w = harness_strf("%.*s%s%s", (int)(at - w), w, harness_dir(), at + 5);
            argv_add(argv, &n, MAX_WORDS, n == (nofile > 0 ? 4 : 0) ? path_find(w) : w);
        }
    }
    argv_add(argv, &n, MAX_WORDS, lb_binary ? (char *)lb_binary : LB_BUILD_DIR "/lb");
    argv_add(argv, &n, MAX_WORDS, "-c");
    argv_add(argv, &n, MAX_WORDS, (char *)lb->config);
    return argv;
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
                         lb->config, lb->log, harness_log_tail(lb->log));
        if (harness_now_ms() >= deadline)
            ck_abort_msg("lb not listening on port %d after %d ms; log %s:\n%s", wait_port,
                         HARNESS_WAIT_MS, lb->log, harness_log_tail(lb->log));
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
    lb->pid = spawn_fds(lb_argv(lb, 0), p[1], p[1]);
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
    lb->pid = harness_spawn(lb_argv(lb, nofile), lb->log, NULL);
    lb_wait_started(lb, wait_port);
}

void harness_lb_start_args(struct harness_lb *lb, const char *config_json, int admin_port,
                           const char *const args[])
{
    lb_files(lb, config_json);
    char **argv = lb_argv(lb, 0);
    int n = 0;
    while (argv[n])
        n++;
    for (int k = 0; args[k]; k++)
        argv_add(argv, &n, LB_ARGV_MAX, (char *)args[k]);
    lb->pid = harness_spawn(argv, lb->log, NULL);
    lb_wait_started(lb, admin_port);
    ck_assert_msg(harness_lb_log_wait(lb, " started (pid ", 1, HARNESS_WAIT_MS),
                  "lb on admin port %d: no start line; log %s:\n%s", admin_port, lb->log,
                  harness_log_tail(lb->log));
}

void harness_lb_start_admin(struct harness_lb *lb, const char *config_json, int admin_port)
{
    const char *args[] = {"--admin-listen", harness_lo(admin_port), NULL};
    harness_lb_start_args(lb, config_json, admin_port, args);
}

void harness_assert_no_sanitizer_report(const char *text, const char *where)
{
    static const char *reports[] = {"AddressSanitizer", "LeakSanitizer", "runtime error"};
    for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
        const char *hit = strstr(text, reports[i]);
        ck_assert_msg(hit == NULL, "%s holds a %s report:\n%.*s", where, reports[i],
                      HARNESS_LOG_TAIL, hit ? hit : "");
    }
}

/* The number after the first "label" in text ("1,234" is 1234); -1 when
 * text has no label. */
static long valgrind_count(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    if (!p)
        return -1;
    p += strlen(label);
    while (*p == ' ')
        p++;
    long n = 0;
    for (; (*p >= '0' && *p <= '9') || *p == ','; p++)
        if (*p != ',')
            n = n * 10 + (*p - '0');
    return n;
}

/* Under a wrapper that writes TEMPDIR/valgrind-PID.log (valgrind's
 * --log-file=@DIR@/valgrind-%p.log): fails the test when lb's log there
 * counts an error or bytes definitely or indirectly lost. */
static void lb_check_valgrind(const struct harness_lb *lb)
{
    if (!harness_wrapper())
        return;
    const char *path = harness_strf("%s/valgrind-%ld.log", harness_dir(), (long)lb->pid);
    const char *text = harness_read_file(path);
    if (!*text)
        return;
    static const char *labels[] = {"ERROR SUMMARY:", "definitely lost:", "indirectly lost:"};
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
        long n = valgrind_count(text, labels[i]);
        ck_assert_msg(n <= 0, "valgrind log %s: %s %ld; config %s:\n%s", path, labels[i], n,
                      lb->config, text);
    }
}

void harness_lb_check_clean(const struct harness_lb *lb)
{
    harness_assert_no_sanitizer_report(harness_read_file(lb->log),
                                       harness_strf("lb log %s", lb->log));
    lb_check_valgrind(lb);
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
                  lb->log, harness_log_tail(lb->log));
    harness_lb_check_clean(lb);
    return status;
}

int harness_lb_stop(struct harness_lb *lb)
{
    kill(lb->pid, SIGTERM);
    return harness_lb_wait_exit(lb, HARNESS_STOP_MS);
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

void harness_lb_rewrite(const struct harness_lb *lb, const char *text)
{
    const char *tmp = harness_strf("%s.tmp", lb->config);
    FILE *f = fopen(tmp, "w");
    ck_assert_msg(f != NULL, "cannot write %s: %s", tmp, strerror(errno));
    fputs(text, f);
    ck_assert(fclose(f) == 0);
    ck_assert_msg(rename(tmp, lb->config) == 0, "rename %s: %s", tmp, strerror(errno));
}
