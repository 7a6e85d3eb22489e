/* upgrade: a new lb binary takes over without refusing a connection.
 *
 * SIGUSR2 to a running lb (the old process) forks and executes the binary
 * at the path lb was started from (where a package upgrade put the new
 * one), with the same arguments and `--upgrade-fd N`: N is the new
 * process's end of a unix socket pair over which the old one sends every
 * listening socket it has, the admin API's included (SCM_RIGHTS). The new
 * process loads its config as a start would; a listener whose address is
 * one of those sockets' serves that very socket (the kernel's accept queue
 * is shared, so no client sees a closed port at any moment), any other
 * address is bound anew. Once it serves, it says "ready" over the socket
 * and tells systemd it is the service's main process now (MAINPID=, with
 * READY=1). The old process then never accepts again and lets its sessions
 * finish within shutdown_grace_ms, then exits.
 *
 * A new process that fails (a config that does not load, an address in
 * use, a binary that does not run) exits before "ready", and the old one
 * just goes on serving: an upgrade to a bad config changes nothing. The
 * old process waits UPGRADE_READY_MS at most, then stops the new one. */
#ifndef LB_UPGRADE_H
#define LB_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct event_base;

/* How long the old process waits for the new one's "ready", at least
 * (plus the fleet's start_timeout_ms when it has one). */
#define UPGRADE_READY_MS 60000

/* At start: the binary's path (argv[0] made absolute, or /proc/self/exe
 * when it has no slash) and the arguments a new process gets. */
void upgrade_init(int argc, char **argv);

/* Called in the old process once the new one serves: stop accepting.
 * unused: the n of the sockets sent that the new config has no listener
 * for (drain and close them: nobody else will accept on them). */
typedef void upgrade_ready_fn(void *arg, pid_t pid, const int *unused, size_t n);

/* SIGUSR2: starts the new process and hands it the n listening sockets
 * fds; waits timeout_ms for its "ready". -1 with err when it cannot (an
 * upgrade already under way, fork or socketpair failed): nothing
 * changed. */
int upgrade_start(struct event_base *base, const int *fds, size_t n, unsigned timeout_ms,
                  upgrade_ready_fn *fn, void *arg, char *err, size_t errlen);
/* lb stops (SIGTERM, SIGINT) while an upgrade waits for "ready": the new
 * process is stopped and the upgrade abandoned, so it never serves beside
 * a stopped lb. True when there was one. */
bool upgrade_abort(void);
/* SIGCHLD: true when pid was the new process; its exit before "ready" is
 * logged with its status. */
bool upgrade_reaped(pid_t pid, int status);
/* Frees what upgrade_start() holds (at exit). */
void upgrade_free(void);

/* In the new process (--upgrade-fd fd): receives the sockets, each kept by
 * lb/io/listen_socket.c for the listener of its address. -1 with err when
 * the old process sends nothing usable within a few seconds. */
int upgrade_receive(int fd, char *err, size_t errlen);
/* The new process serves: closes the sockets no listener took and says
 * "ready" to the old one, naming them. -1 with err when the old process
 * is gone: this one must not serve then (exit). 0 without an upgrade. */
int upgrade_ready(char *err, size_t errlen);

#endif
