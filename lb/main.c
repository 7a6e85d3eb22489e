/* main: command line, config load, the one event loop, and what runs on
 * it: the runtime (listeners, pools, sessions) and, beside it, the admin
 * API, which takes part in reloads through its reload hook.
 *   lb -c FILE      run in the foreground, log to stderr (never blocking)
 *   lb -t -c FILE   validate FILE and exit
 * SIGINT/SIGTERM stop gracefully (a second one stops at once); SIGHUP
 * reloads the configuration file in place; SIGUSR1 reopens the access log
 * (logrotate); SIGUSR2 starts a binary upgrade (lb/upgrade.h); SIGCHLD
 * reaps the access log's writers and an upgrade's new process; SIGPIPE is
 * ignored. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "config/config.h"
#include "lb/access_log.h"
#include "lb/admin/admin.h"
#include "lb/io/listen_socket.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/names.h"
#include "lb/notify.h"
#include "lb/privileges.h"
#include "lb/reload.h"
#include "lb/runtime.h"
#include "lb/tls_conf.h"
#include "lb/upgrade.h"

static const char usage_text[] =
    "usage: lb -c FILE [-a ADDR] [-t]\n"
    "       lb -V | -h\n"
    "  -c FILE  configuration file (JSON)\n"
    "  -a ADDR, --admin-listen ADDR\n"
    "           the admin API listens on ADDR instead of admin.listen (also\n"
    "           across reloads): one port per process sharing a config file\n"
    "  -t       check the configuration and exit: 0 if valid, 1 if not\n"
    "  -V       print the version and exit\n"
    "  -h       print this help and exit\n";

/* At exit, how long the last log lines may wait for stderr's reader. */
#define LOG_END_MS 1000

/* SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD: caught on the loop. */
#define NSIGNALS 6

struct signal_ctx {
    struct runtime *rt;
    int signo;
};

/* What SIGUSR2 hands over: the runtime's and the admin API's sockets. */
struct upgrade_ctx {
    struct runtime *rt;
    struct admin *admin; /* NULL until it runs */
};

/* --upgrade-fd: this process is a binary upgrade's new one; -1: not. */
static int upgrade_fd = -1;

static void on_stop_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct signal_ctx *ctx = arg;
    upgrade_abort(); /* a new process must not serve beside a stopped lb */
    runtime_stop(ctx->rt, ctx->signo == SIGINT ? "SIGINT" : "SIGTERM");
}

/* SIGHUP: reload. A reload runs to completion inside one loop callback, so
 * reloads are serialized; SIGHUPs that arrive meanwhile make exactly one
 * more reload after it. */
static void on_hup_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reload_request(arg);
}

/* SIGUSR1: the access log is opened again, by its path: after logrotate
 * renamed it, a new file. Without an access log it means nothing. */
static void on_reopen_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    char err[1024];
    const char *path = access_log_path();
    if (!path) {
        log_info(
            "SIGUSR1 received: no access log to reopen (\"log\": {\"access_log\"} is not set)");
        return;
    }
    if (access_log_reopen(err, sizeof(err)) < 0)
        log_error("SIGUSR1: %s; the file open before stays in use", err);
    else
        log_info("SIGUSR1: access log %s reopened", access_log_path());
}

/* The new binary serves the sockets: this process stops accepting. */
static void on_upgraded(void *arg, pid_t pid, const int *unused, size_t n)
{
    struct upgrade_ctx *u = arg;
    char why[64];
    snprintf(why, sizeof(why), "binary upgrade to pid %ld", (long)pid);
    admin_hand_off(u->admin);
    runtime_hand_off(u->rt, why, unused, n);
}

/* SIGUSR2: a binary upgrade. */
static void on_upgrade_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct upgrade_ctx *u = arg;
    char err[1024];
    if (!u->admin) {
        log_warn("SIGUSR2: lb is still starting; no binary upgrade (send it again once it runs)");
        return;
    }
    if (u->rt->stopping) {
        log_warn("SIGUSR2: lb is stopping; no binary upgrade");
        return;
    }
    size_t n = 0;
    int *fds = calloc(u->rt->nlisteners + 1, sizeof(int));
    if (!fds) {
        log_error("SIGUSR2: binary upgrade: out of memory; this process keeps serving");
        return;
    }
    for (size_t i = 0; i < u->rt->nlisteners; i++)
        if (listener_fd(u->rt->listeners[i]) >= 0)
            fds[n++] = listener_fd(u->rt->listeners[i]);
    if (admin_listen_fd(u->admin) >= 0)
        fds[n++] = admin_listen_fd(u->admin);
    /* A new process whose start waits for etcd gets that long more. */
    const struct lb_fleet_conf *fc = &u->rt->cfg->fleet;
    unsigned wait_ms = UPGRADE_READY_MS + (fc->enabled ? fc->start_timeout_ms : 0);
    if (upgrade_start(u->rt->base, fds, n, wait_ms, on_upgraded, u, err, sizeof(err)) < 0)
        log_error("SIGUSR2: binary upgrade: %s; this process keeps serving", err);
    free(fds);
}

/* SIGCHLD: the access log's writers and an upgrade's new process that
 * ended are reaped. */
static void on_child_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (!access_log_reaped(pid, status))
            upgrade_reaped(pid, status);
}

/* Raises the soft descriptor limit to the hard one: each session takes
 * two. runtime_fd_budget() then says how many sessions that allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static int run(struct lb_config *cfg)
{
    struct runtime rt;
    struct admin *admin = NULL;
    char err[1024];
    int rc = 1;

    log_set_level(cfg->log_level);
    log_set_format(cfg->log_format);
    raise_fd_limit();
    notify_init();
    /* The changelist makes the watch changes of one loop turn one
     * epoll_ctl per descriptor at the next wait (docs/architecture.md):
     * about three calls fewer per proxied connection. libevent warns
     * against it for descriptors shared through dup(): lb's only shared
     * ones are the listening sockets a binary upgrade hands over, and
     * acceptor_free() closes those only after the queued EPOLL_CTL_DEL
     * ran (lb/io/acceptor.c). */
    struct event_config *ecfg = event_config_new();
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = ecfg ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg)
        event_config_free(ecfg);
    if (!base || event_base_priority_init(base, LB_PRIORITIES) < 0) {
        log_error("cannot create the event loop");
        if (base)
            event_base_free(base);
        config_free(cfg);
        return 1;
    }
    log_attach(base);
    /* Signals are caught before any listener opens: a supervisor may send
     * SIGHUP or SIGTERM as soon as the port answers. They are handled once
     * the loop runs. */
    struct signal_ctx sint = {&rt, SIGINT}, sterm = {&rt, SIGTERM};
    struct upgrade_ctx uctx = {&rt, NULL};
    const struct {
        int signo;
        event_callback_fn fn;
        void *arg;
    } handlers[NSIGNALS] = {
        {SIGINT, on_stop_signal, &sint},     {SIGTERM, on_stop_signal, &sterm},
        {SIGHUP, on_hup_signal, &rt},        {SIGUSR1, on_reopen_signal, NULL},
        {SIGUSR2, on_upgrade_signal, &uctx}, {SIGCHLD, on_child_signal, NULL},
    };
    struct event *evs[NSIGNALS] = {NULL};
    for (size_t i = 0; i < NSIGNALS; i++) {
        evs[i] = evsignal_new(base, handlers[i].signo, handlers[i].fn, handlers[i].arg);
        if (!evs[i] || evsignal_add(evs[i], NULL) < 0) {
            log_error("cannot install signal handlers");
            config_free(cfg);
            goto out;
        }
    }
    /* A binary upgrade's new process: the old one's sockets, before any
     * listener binds. */
    if (upgrade_fd >= 0 && upgrade_receive(upgrade_fd, err, sizeof(err)) < 0) {
        log_error("%s", err);
        config_free(cfg);
        goto out;
    }
    if (runtime_start(&rt, base, cfg, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    /* The admin API is part of the start: an address in use fails it. */
    admin = admin_start(&rt, err, sizeof(err));
    if (!admin) {
        log_error("%s", err);
        runtime_free(&rt);
        goto out;
    }
    /* Every socket is bound and every certificate read: root is no longer
     * needed. */
    if (privileges_drop(rt.cfg, err, sizeof(err)) < 0) {
        log_error("%s", err);
        admin_stop(admin);
        runtime_free(&rt);
        goto out;
    }
    /* Opened as the user lb runs as, like every reopen after it. */
    if (rt.cfg->access_log && access_log_open(rt.cfg->access_log, err, sizeof(err)) < 0) {
        log_error("%s", err);
        admin_stop(admin);
        runtime_free(&rt);
        goto out;
    }
    reload_set_hook(&rt, admin_reload_hook(admin));
    runtime_ready(&rt);
    log_info("lb %s started (pid %ld, config %s)", LB_VERSION, (long)getpid(), rt.cfg->path);
    char status[200];
    runtime_status_line(&rt, status, sizeof(status));
    uctx.admin = admin;
    if (upgrade_fd >= 0) {
        if (upgrade_ready(err, sizeof(err)) < 0) { /* the old process stops accepting */
            log_error("%s", err);
            reload_set_hook(&rt, NULL);
            admin_stop(admin);
            runtime_free(&rt);
            goto out;
        }
        notify_ready_main(status);
    } else {
        notify_ready(status); /* systemd: the listeners are bound */
    }
    if (event_base_dispatch(base) < 0)
        log_error("event loop failed");
    else
        rc = 0;
    reload_set_hook(&rt, NULL);
    admin_stop(admin);
    runtime_free(&rt);
out:
    for (size_t i = 0; i < NSIGNALS; i++)
        if (evs[i])
            event_free(evs[i]);
    notify_close();
    upgrade_free();
    listen_socket_inherit_end(NULL, 0); /* after a failed start, what it did not take */
    log_detach();
    event_base_free(base);
    libevent_global_shutdown();
    if (rc == 0)
        log_info("exiting");
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int test_only = 0;
    int opt;

    /* Until the loop catches them (and for lb -t), the signals whose
     * default would kill lb and that mean nothing here are ignored. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    upgrade_init(argc, argv);
    opterr = 0;
    static const struct option longopts[] = {
        {"admin-listen", required_argument, NULL, 'a'},
        {"upgrade-fd", required_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "c:a:thV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'a':
            config_set_admin_listen(optarg);
            break;
        case 't':
            test_only = 1;
            break;
        case 'U': { /* internal: lb's own SIGUSR2 passes it (lb/upgrade.h) */
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 3 || v > 1 << 20) {
                fprintf(stderr, "lb: --upgrade-fd needs a descriptor number\n");
                return 2;
            }
            upgrade_fd = (int)v;
            break;
        }
        case 'V':
            printf("lb %s\n", LB_VERSION);
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            if (optopt == 'c')
                fprintf(stderr, "lb: option -c needs a file\n");
            else if (optopt == 'a')
                fprintf(stderr, "lb: option -a (--admin-listen) needs an address\n");
            else if (optopt == 0)
                fprintf(stderr, "lb: unknown option %s\n", argv[optind - 1]);
            else
                fprintf(stderr, "lb: unknown option -%c\n", optopt);
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lb: unexpected argument \"%s\"\n", argv[optind]);
        fputs(usage_text, stderr);
        return 2;
    }
    if (!path) {
        fprintf(stderr, "lb: no configuration file given (-c FILE)\n");
        fputs(usage_text, stderr);
        return 2;
    }

    struct lb_config *cfg = NULL;
    char err[1024];
    if (config_load(path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* Before anything listens (no loop runs yet): lb -t and the start both
     * fail on a backend host name that does not resolve. */
    if (names_resolve_now(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        config_free(cfg);
        return 1;
    }
    if (test_only) {
        /* The certificates, keys and cipher strings too, as a start would. */
        struct tls_set tls;
        if (tls_set_build(cfg, &tls, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            config_free(cfg);
            return 1;
        }
        tls_set_free(&tls);
        if (cfg->unlinked == 1)
            printf("configuration ok (pool \"%s\", which a listener names, is not in the file: "
                   "it must come from etcd)\n",
                   cfg->unlinked_pool);
        else if (cfg->unlinked)
            printf("configuration ok (pool \"%s\" and %zu more names that listeners use are not "
                   "in the file: they must come from etcd)\n",
                   cfg->unlinked_pool, cfg->unlinked - 1);
        else
            printf("configuration ok\n");
        config_free(cfg);
        return 0;
    }
    /* From here on lines go through log.c's buffer, never a blocking write
     * to stderr; the last ones get a bounded wait for a slow reader. */
    log_init();
    int rc = run(cfg);
    log_end(LOG_END_MS);
    access_log_end(LOG_END_MS); /* its last lines are in the file when lb exits */
    return rc;
}
