/* access_log: the access log file and its writer processes (see
 * lb/access_log.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lb/access_log.h"
#include "lb/io/fds.h"
#include "lb/log.h"

/* What a writer reads at once; it writes the whole lines of it. */
#define WRITER_BUF (64 * 1024)
/* The pipe's size asked for (Linux' default limit for a user). */
#define WRITER_PIPE_SIZE (1024 * 1024)
/* A writer whose writes fail says so at most this often. */
#define WRITER_REPORT_S 10

static struct {
    char *path;    /* the file in use; NULL: stderr */
    pid_t current; /* its writer; 0: none (it exited) */
    pid_t *pids;   /* every writer not reaped yet, current included */
    size_t npids;
} al;

/* --- the writer process --- */

/* "access log PATH: write failed: ..." on stderr, at most every
 * WRITER_REPORT_S unless now. */
static void writer_report(const char *path, int e, unsigned long long lost, time_t *reported,
                          bool now)
{
    time_t t = time(NULL);
    if (!now && t - *reported < WRITER_REPORT_S)
        return;
    *reported = t;
    char line[LOG_LINE_MAX];
    size_t len = log_format_line(line, LB_LOG_ERROR,
                                 "access log %s: write failed: %s; %llu lines lost so far", path,
                                 strerror(e), lost);
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere else to say it */
    }
}

/* Writes every byte of p, or counts the lines of what failed as lost. To
 * a FIFO, pieces of whole lines of at most PIPE_BUF bytes, which the
 * kernel writes whole: they never mix with another writer's (a binary
 * upgrade's two lb processes). */
static void writer_put(int out, const char *p, size_t n, bool fifo, const char *path,
                       unsigned long long *lost, int *error, time_t *reported)
{
    while (n > 0) {
        size_t piece = n;
        if (fifo && piece > PIPE_BUF) {
            const char *nl = memrchr(p, '\n', PIPE_BUF);
            piece = nl ? (size_t)(nl + 1 - p) : PIPE_BUF;
        }
        ssize_t w = write(out, p, piece);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        *error = w < 0 ? errno : EIO;
        for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++)
            (*lost)++;
        writer_report(path, *error, *lost, reported, false);
        return;
    }
}

/* The writer: copies whole lines from the pipe to the file until lb closes
 * the pipe, then exits. It ignores the signals a terminal or systemd sends
 * the whole group (SIGINT, SIGTERM, SIGHUP): it stops when lb does, after
 * the last line. Holds no descriptor of lb's but its own three. */
static void __attribute__((noreturn)) writer_main(int in, int out, const char *path)
{
    static char buf[WRITER_BUF];
    const int ignored[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE};
    unsigned long long lost = 0;
    int error = 0;
    time_t reported = 0;
    size_t have = 0;

    prctl(PR_SET_NAME, "lb-access-log");
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        signal(ignored[i], SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    /* Only in, out and 0-2 stay open: not lb's sockets, not the pipe of an
     * older writer (which must see its end when lb closes it). */
    const int keep[] = {in, out};
    fds_close_others(keep, 2);
    struct stat st;
    bool fifo = fstat(out, &st) == 0 && S_ISFIFO(st.st_mode);
    for (;;) {
        ssize_t n = read(in, buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        const char *nl = memrchr(buf, '\n', have);
        size_t whole = nl ? (size_t)(nl + 1 - buf) : have == sizeof(buf) ? have : 0;
        if (whole == 0)
            continue;
        writer_put(out, buf, whole, fifo, path, &lost, &error, &reported);
        memmove(buf, buf + whole, have - whole);
        have -= whole;
    }
    writer_put(out, buf, have, fifo, path, &lost, &error, &reported);
    if (lost > 0) /* the last count, however recent the one before */
        writer_report(path, error, lost, &reported, true);
    _exit(0);
}

/* --- in lb --- */

static void forget(pid_t pid)
{
    for (size_t i = 0; i < al.npids; i++)
        if (al.pids[i] == pid) {
            al.pids[i] = al.pids[--al.npids];
            return;
        }
}

/* Opens path for appending: a regular file (or a FIFO with a reader, or a
 * device like /dev/null), never blocking on a FIFO without one. */
static int open_file(const char *path, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);

    if (fd < 0) {
        snprintf(err, errlen, "access log %s: cannot open: %s%s", path, strerror(errno),
                 errno == ENXIO ? " (a FIFO that nothing reads)" : "");
        return -1;
    }
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode) || S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "access log %s: not a file", path);
        close(fd);
        return -1;
    }
    /* The writer may wait; lb never writes to this fd. */
    fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
    return fd;
}

/* Opens path and forks its writer into next (path copied, the pipe's
 * write end). */
static int writer_start(const char *path, struct access_log_next *next, char *err, size_t errlen)
{
    int p[2];
    pid_t *pids = realloc(al.pids, (al.npids + 1) * sizeof(*pids));

    memset(next, 0, sizeof(*next));
    next->fd = -1;
    next->change = true;
    if (pids)
        al.pids = pids;
    if (!pids || !(next->path = strdup(path))) {
        snprintf(err, errlen, "access log %s: out of memory", path);
        return -1;
    }
    int fd = open_file(path, err, errlen);
    if (fd < 0)
        goto fail;
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "access log %s: cannot make a pipe: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    fcntl(p[1], F_SETPIPE_SZ, WRITER_PIPE_SIZE); /* a smaller one works too */
    pid_t pid = fork();
    if (pid == 0)
        writer_main(p[0], fd, next->path);
    int e = errno;
    close(p[0]);
    close(fd);
    if (pid < 0) {
        snprintf(err, errlen, "access log %s: cannot start its writer: %s", path, strerror(e));
        close(p[1]);
        goto fail;
    }
    fcntl(p[1], F_SETFL, O_WRONLY | O_NONBLOCK);
    al.pids[al.npids++] = pid;
    next->fd = p[1];
    next->pid = pid;
    return 0;
fail:
    free(next->path);
    next->path = NULL;
    return -1;
}

int access_log_prepare(const char *path, struct access_log_next *next, char *err, size_t errlen)
{
    memset(next, 0, sizeof(*next));
    next->fd = -1;
    if (!path || !al.path)
        next->change = (path == NULL) != (al.path == NULL);
    else
        next->change = strcmp(path, al.path) != 0;
    if (!next->change || !path)
        return 0;
    return writer_start(path, next, err, errlen);
}

void access_log_commit(struct access_log_next *next)
{
    if (!next->change)
        return;
    log_access_set_fd(next->fd); /* the previous writer's pipe ends */
    free(al.path);
    al.path = next->path;
    al.current = next->fd >= 0 ? next->pid : 0;
    memset(next, 0, sizeof(*next));
    next->fd = -1;
}

void access_log_abort(struct access_log_next *next)
{
    if (next->fd >= 0)
        close(next->fd); /* its writer sees the end at once and exits */
    free(next->path);
    memset(next, 0, sizeof(*next));
    next->fd = -1;
}

int access_log_open(const char *path, char *err, size_t errlen)
{
    struct access_log_next next;

    if (writer_start(path, &next, err, errlen) < 0)
        return -1;
    access_log_commit(&next);
    return 0;
}

const char *access_log_path(void)
{
    return al.path;
}

int access_log_reopen(char *err, size_t errlen)
{
    if (!al.path)
        return 0;
    char *path = strdup(al.path);
    if (!path) {
        snprintf(err, errlen, "access log %s: out of memory", al.path);
        return -1;
    }
    int rc = access_log_open(path, err, errlen);
    free(path);
    return rc;
}

bool access_log_reaped(pid_t pid, int status)
{
    bool known = false;
    for (size_t i = 0; i < al.npids; i++)
        known |= al.pids[i] == pid;
    if (!known)
        return false;
    forget(pid);
    if (pid == al.current) {
        al.current = 0;
        if (WIFSIGNALED(status))
            log_error("access log %s: its writer (pid %ld) was killed by signal %d; access lines "
                      "are dropped until SIGUSR1 opens the file again",
                      al.path, (long)pid, WTERMSIG(status));
        else
            log_error("access log %s: its writer (pid %ld) exited with status %d; access lines "
                      "are dropped until SIGUSR1 opens the file again",
                      al.path, (long)pid, WEXITSTATUS(status));
    }
    return true;
}

void access_log_end(int timeout_ms)
{
    struct timespec nap = {0, 5 * 1000 * 1000};
    int waited = 0;

    log_access_set_fd(-1);
    while (al.npids > 0) {
        int status;
        pid_t pid = waitpid(al.pids[al.npids - 1], &status, WNOHANG);
        if (pid != 0) { /* exited, or not ours to wait for */
            al.npids--;
            continue;
        }
        if (waited >= timeout_ms)
            break;
        nanosleep(&nap, NULL);
        waited += 5;
    }
    free(al.pids);
    free(al.path);
    memset(&al, 0, sizeof(al));
}
