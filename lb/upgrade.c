/* upgrade: see lb/upgrade.h. The two processes talk over a SOCK_SEQPACKET
 * socket pair, so each message arrives whole:
 *   old -> new  "lb-upgrade 1 K more"  with K listening sockets attached
 *               (SCM_RIGHTS), as many messages as it takes, the last
 *               "lb-upgrade 1 K last";
 *   new -> old  "ready PID I J ..."    the new process serves; I, J...: the
 *                                      places (from 0, in the order sent)
 *                                      of the sockets its config has no
 *                                      listener for, which the old one
 *                                      drains and closes.
 * The end of the socket before "ready" is a failed upgrade. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "lb/io/fds.h"
#include "lb/io/listen_socket.h"
#include "lb/log.h"
#include "lb/upgrade.h"

/* Sockets per message, below the kernel's SCM_MAX_FD (253). */
#define FDS_PER_MSG 200
/* How long the new process waits for the old one's sockets. */
#define RECEIVE_MS 5000
/* The most sockets an upgrade hands over. */
#define UPGRADE_FDS_MAX 4096

static struct {
    char exe[PATH_MAX]; /* the binary, as /proc/self/exe said at start */
    char **argv;        /* the arguments, without any --upgrade-fd */
    int argc;
    /* The old process's side of an upgrade under way. */
    pid_t pid;        /* the new process; 0: none */
    int sock;         /* our end of the pair; -1 */
    struct event *ev; /* readable sock */
    struct event *timer;
    upgrade_ready_fn *fn;
    void *arg;
    int *fds; /* what was sent, in order */
    size_t nfds;
    bool ready; /* "ready" came: we hand off */
    unsigned timeout_ms;
    /* The new process's side. */
    int parent; /* --upgrade-fd; -1 */
} up = {.sock = -1, .parent = -1};

void upgrade_init(int argc, char **argv)
{
    /* The path as started, not resolved: a symlink swapped to a new
     * version, or a file a package replaced, is what runs next. Without a
     * slash (found on $PATH), the kernel's record of the file. */
    char cwd[PATH_MAX];
    if (argc > 0 && argv[0][0] == '/') {
        snprintf(up.exe, sizeof(up.exe), "%s", argv[0]);
    } else if (argc > 0 && strchr(argv[0], '/') && getcwd(cwd, sizeof(cwd))) {
        if ((size_t)snprintf(up.exe, sizeof(up.exe), "%s/%s", cwd, argv[0]) >= sizeof(up.exe))
            up.exe[0] = '\0';
    } else {
        ssize_t n = readlink("/proc/self/exe", up.exe, sizeof(up.exe) - 1);
        up.exe[n > 0 ? n : 0] = '\0';
    }
    up.argv = calloc((size_t)argc + 2, sizeof(char *));
    if (!up.argv)
        return;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "--upgrade-fd", 12) != 0)
            up.argv[up.argc++] = argv[i];
}

/* --- the old process --- */

static void watch_end(void)
{
    free(up.fds);
    up.fds = NULL;
    up.nfds = 0;
    if (up.ev)
        event_free(up.ev);
    if (up.timer)
        event_free(up.timer);
    up.ev = up.timer = NULL;
    if (up.sock >= 0)
        close(up.sock);
    up.sock = -1;
}

static void on_message(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    pid_t pid = up.pid;
    if (n > 0) {
        buf[n] = '\0';
        long said = 0;
        int used = 0;
        if (sscanf(buf, "ready %ld%n", &said, &used) == 1 && said == (long)pid) {
            /* The sockets it has no listener for. */
            int *unused = calloc(up.nfds + 1, sizeof(int));
            size_t nunused = 0;
            for (char *p = buf + used, *end; unused && *p; p = end) {
                unsigned long i = strtoul(p, &end, 10);
                if (end == p)
                    break;
                if (i < up.nfds)
                    unused[nunused++] = up.fds[i];
            }
            up.ready = true;
            log_info("binary upgrade: the new process (pid %ld) serves the listening sockets; "
                     "this one accepts no more and stops once its sessions end",
                     (long)pid);
            up.fn(up.arg, pid, unused, nunused); /* before watch_end frees what they name */
            free(unused);
            watch_end();
            return;
        }
        log_error("binary upgrade: the new process (pid %ld) said something else than ready; "
                  "stopping it, this one keeps serving",
                  (long)pid);
        kill(pid, SIGTERM);
    }
    /* The end: the new process failed; it says why on stderr, and its
     * status is logged when it is reaped. */
    watch_end();
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_error("binary upgrade: the new process (pid %ld) was not ready within %u ms; stopping "
              "it, this one keeps serving",
              (long)up.pid, up.timeout_ms);
    kill(up.pid, SIGTERM);
    watch_end();
}

/* Sends the n sockets in messages of FDS_PER_MSG. */
static int send_fds(int sock, const int *fds, size_t n)
{
    size_t sent = 0;
    do {
        size_t k = n - sent < FDS_PER_MSG ? n - sent : FDS_PER_MSG;
        char text[64];
        int len =
            snprintf(text, sizeof(text), "lb-upgrade 1 %zu %s", k, sent + k == n ? "last" : "more");
        struct iovec iov = {text, (size_t)len};
        union {
            char buf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
            struct cmsghdr align;
        } c;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        memset(&c, 0, sizeof(c)); /* the padding goes out too */
        if (k > 0) {
            msg.msg_control = c.buf;
            msg.msg_controllen = CMSG_SPACE(k * sizeof(int));
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(k * sizeof(int));
            memcpy(CMSG_DATA(cm), fds + sent, k * sizeof(int));
        }
        ssize_t w;
        do
            w = sendmsg(sock, &msg, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w < 0)
            return -1;
        sent += k;
    } while (sent < n);
    return 0;
}

int upgrade_start(struct event_base *base, const int *fds, size_t n, unsigned timeout_ms,
                  upgrade_ready_fn *fn, void *arg, char *err, size_t errlen)
{
    int sv[2];
    char fdarg[32];
    sigset_t all, was;
    if (up.ready) {
        snprintf(err, errlen, "this process handed its sockets to pid %ld already", (long)up.pid);
        return -1;
    }
    if (up.sock >= 0) {
        snprintf(err, errlen, "an upgrade is under way already (new process pid %ld)",
                 (long)up.pid);
        return -1;
    }
    if (!up.argv || !up.exe[0]) {
        snprintf(err, errlen, "the path of lb's binary is unknown");
        return -1;
    }
    if (n > UPGRADE_FDS_MAX) {
        snprintf(err, errlen, "%zu listening sockets, more than the %d an upgrade hands over", n,
                 UPGRADE_FDS_MAX);
        return -1;
    }
    int *copy = malloc((n + 1) * sizeof(int));
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(copy, fds, n * sizeof(int));
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        free(copy);
        return -1;
    }
    snprintf(fdarg, sizeof(fdarg), "--upgrade-fd=%d", sv[1]);
    up.argv[up.argc] = fdarg;
    up.argv[up.argc + 1] = NULL;
    /* Signals wait until the child dropped libevent's handlers, which
     * would write into this process's signal socket. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &was);
    pid_t pid = fork();
    if (pid == 0) {
        static const int caught[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD};
        for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
            signal(caught[i], SIG_DFL);
        /* Only the pair's end crosses the exec: every other descriptor is
         * close-on-exec (lb opens them so; this makes sure). */
        fds_cloexec_others(sv[1]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(up.exe, up.argv);
        char line[LOG_LINE_MAX];
        size_t len = log_format_line(line, LB_LOG_ERROR, "binary upgrade: cannot run %s: %s",
                                     up.exe, strerror(errno));
        if (write(STDERR_FILENO, line, len) < 0) {
            /* nowhere else to say it */
        }
        _exit(127);
    }
    int e = errno;
    sigprocmask(SIG_SETMASK, &was, NULL);
    up.argv[up.argc] = NULL;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        free(copy);
        snprintf(err, errlen, "fork: %s", strerror(e));
        return -1;
    }
    up.pid = pid;
    up.sock = sv[0];
    up.fn = fn;
    up.arg = arg;
    up.fds = copy;
    up.nfds = n;
    log_info("binary upgrade: started %s (pid %ld) with %zu listening socket%s", up.exe, (long)pid,
             n, n == 1 ? "" : "s");
    if (send_fds(sv[0], fds, n) < 0) {
        if (errno == EPIPE || errno == ECONNRESET) {
            /* It ended before it took them: its status is logged when it
             * is reaped. */
            watch_end();
            return 0;
        }
        snprintf(err, errlen, "cannot send the sockets to the new process (pid %ld): %s", (long)pid,
                 strerror(errno));
        kill(pid, SIGTERM);
        watch_end();
        return -1;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    up.timeout_ms = timeout_ms;
    up.ev = event_new(base, sv[0], EV_READ | EV_PERSIST, on_message, NULL);
    up.timer = evtimer_new(base, on_timeout, NULL);
    if (!up.ev || !up.timer || event_add(up.ev, NULL) < 0 || evtimer_add(up.timer, &tv) < 0) {
        snprintf(err, errlen, "out of memory");
        kill(pid, SIGTERM);
        watch_end();
        return -1;
    }
    return 0;
}

bool upgrade_abort(void)
{
    if (up.sock < 0 || up.ready)
        return false;
    log_warn("binary upgrade: abandoned, as lb stops; the new process (pid %ld) is stopped",
             (long)up.pid);
    kill(up.pid, SIGTERM);
    watch_end();
    return true;
}

bool upgrade_reaped(pid_t pid, int status)
{
    if (pid == 0 || pid != up.pid)
        return false;
    if (up.ready) {
        /* It served, then ended while this process still drains. */
        if (WIFSIGNALED(status))
            log_warn("binary upgrade: the new process (pid %ld) was killed by signal %d", (long)pid,
                     WTERMSIG(status));
        else
            log_warn("binary upgrade: the new process (pid %ld) has exited with status %d",
                     (long)pid, WEXITSTATUS(status));
        up.pid = 0;
        return true;
    }
    watch_end();
    up.pid = 0;
    if (WIFSIGNALED(status))
        log_error("binary upgrade failed: the new process (pid %ld) was killed by signal %d "
                  "before it was ready; this one keeps serving",
                  (long)pid, WTERMSIG(status));
    else
        log_error("binary upgrade failed: the new process (pid %ld) exited with status %d "
                  "before it was ready (its reason is logged above); this one keeps serving",
                  (long)pid, WEXITSTATUS(status));
    return true;
}

void upgrade_free(void)
{
    watch_end();
    free(up.argv);
    up.argv = NULL;
    if (up.parent >= 0)
        close(up.parent);
    up.parent = -1;
}

/* --- the new process --- */

int upgrade_receive(int fd, char *err, size_t errlen)
{
    long deadline_left = RECEIVE_MS;
    size_t got = 0, refused = 0, index = 0;

    up.parent = fd;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)deadline_left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "binary upgrade: no sockets from the old process within %d ms",
                     RECEIVE_MS);
            return -1;
        }
        char text[64];
        union {
            char buf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
            struct cmsghdr align;
        } c;
        struct iovec iov = {text, sizeof(text) - 1};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = c.buf,
                             .msg_controllen = sizeof(c.buf)};
        ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "binary upgrade: the old process closed the socket (%s)",
                     n < 0 ? strerror(errno) : "end of file");
            return -1;
        }
        text[n] = '\0';
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int s;
                memcpy(&s, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (listen_socket_inherit(s, index++) == 0)
                    got++;
                else
                    refused++;
            }
        }
        size_t k;
        char more[8];
        if (sscanf(text, "lb-upgrade 1 %zu %7s", &k, more) != 2 || (msg.msg_flags & MSG_CTRUNC)) {
            snprintf(err, errlen,
                     "binary upgrade: a message from the old process is not one of "
                     "this version's");
            listen_socket_inherit_end(NULL, 0);
            return -1;
        }
        if (strcmp(more, "last") == 0)
            break;
    }
    if (refused)
        log_warn("binary upgrade: %zu descriptors from the old process are not listening TCP "
                 "sockets; closed",
                 refused);
    log_info("binary upgrade: %zu listening socket%s from the old process", got,
             got == 1 ? "" : "s");
    return 0;
}

int upgrade_ready(char *err, size_t errlen)
{
    if (up.parent < 0)
        return 0;
    size_t unused[UPGRADE_FDS_MAX];
    size_t n = listen_socket_inherit_end(unused, UPGRADE_FDS_MAX);
    if (n)
        log_info("binary upgrade: %zu socket%s of the old process %s no listener in this config: "
                 "it drains and closes %s",
                 n, n == 1 ? "" : "s", n == 1 ? "has" : "have", n == 1 ? "it" : "them");
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof(text), "ready %ld", (long)getpid());
    for (size_t i = 0; i < n && i < UPGRADE_FDS_MAX && len + 12 < sizeof(text); i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, " %zu", unused[i]);
    ssize_t w = send(up.parent, text, len, MSG_NOSIGNAL);
    int e = errno;
    close(up.parent);
    up.parent = -1;
    if (w < 0) {
        /* The old process stopped (or died) meanwhile: serving beside
         * whatever replaced it would be worse than not serving. */
        snprintf(err, errlen, "binary upgrade: the old process is gone (%s); not taking over",
                 strerror(e));
        return -1;
    }
    return 0;
}
