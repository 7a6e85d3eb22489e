/* harness/proc: child processes that never outlive the test (lb,
 * demo-backend, any program), and an lb's start, stop, signals, config
 * rewrite, log pipe and descriptor and memory counts. */
#ifndef LB_TESTS_HARNESS_PROC_H
#define LB_TESTS_HARNESS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct harness_lb {
    pid_t pid;
    char config[512]; /* config file path */
    char log[512];    /* stdout + stderr of lb (with a pipe: what was drained) */
    int pipe;         /* read end of lb's stdout + stderr (harness_lb_start_pipe), else -1 */
};

/* fork/exec argv[0] with stdout to out_path and stderr to err_path (NULL:
 * same file as stdout), stdin from /dev/null, other fds closed and
 * PR_SET_PDEATHSIG=SIGKILL. The PID is remembered for teardown. */
pid_t harness_spawn(char *const argv[], const char *out_path, const char *err_path);
/* Waits up to timeout_ms for pid: its exit status (0..255), -1 when killed
 * by a signal, -2 on timeout (the process is then SIGKILLed and reaped). */
int harness_wait_exit(pid_t pid, long timeout_ms);
/* Runs argv to completion (bounded); fills *out / *err (freed at teardown)
 * with what it wrote and returns harness_wait_exit's status. */
int harness_run(char *const argv[], const char **out, const char **err, long timeout_ms);

/* Starts LB_BUILD_DIR/demo-backend -l HOST:PORT -n NAME -m MODE (host "::1"
 * gets brackets) and waits until it accepts. Fails the test otherwise. */
pid_t harness_backend(const char *host, int port, const char *name, const char *mode);
/* The same; in http mode the backend answers with the status held in
 * status_file (200 when it is missing or holds no status from 100 to 599). */
pid_t harness_backend_status(const char *host, int port, const char *name, const char *mode,
                             const char *status_file);

/* Writes config_json to the temp dir, starts LB_BUILD_DIR/lb -c FILE with
 * its output in lb->log, waits until wait_port is listening (fails the test
 * with the log when lb exits or the wait times out). Under LB_TEST_WRAPPER
 * (harness_wrapper()) lb runs behind that command, here and in the
 * variants below. */
void harness_lb_start(struct harness_lb *lb, const char *config_json, int wait_port);
/* pid, a process the harness did not start (a binary upgrade's new lb,
 * which the test's subreaper adopts), is killed and reaped at teardown. */
void harness_track(pid_t pid);
/* Copies the build's lb to TEMPDIR/lb through a temporary file renamed over
 * it, as dpkg replaces a binary (a process running the old file keeps it),
 * and makes it the binary harness_lb_start and its variants run until
 * teardown (instead of LB_BUILD_DIR/lb); its path. */
const char *harness_lb_install_copy(void);
/* A binary upgrade's new lb: the pid the nth "binary upgrade: started"
 * line of lb's log gives (waited for), tracked for teardown. */
pid_t harness_lb_upgrade_pid(struct harness_lb *lb, int nth);

/* A client loop: a child process making short connections to
 * 127.0.0.1:port one after another, each of which must bring one of the
 * answers (the whole text, then EOF) within 3 s, until
 * harness_loop_stop(). Its counts are shared with the test. */
#define HARNESS_LOOP_ANSWERS 8
struct harness_loop {
    long ok, failed;
    long answered[HARNESS_LOOP_ANSWERS]; /* per answer, in the order given */
    int stop;
    pid_t pid;
    char first_error[256]; /* what the first failure was */
};
/* answers: up to HARNESS_LOOP_ANSWERS texts, NULL-terminated. */
struct harness_loop *harness_loop_start(int port, const char *const answers[]);
/* Waits (bounded) until the loop made count more good connections; fails
 * the test at the loop's first failure. */
void harness_loop_progress(struct harness_loop *l, long count);
/* Stops the loop, waits for its child, and returns its final counts (the
 * shared page is gone then). */
struct harness_loop harness_loop_stop(struct harness_loop *l);
/* The same with `--admin-listen 127.0.0.1:admin_port` after -c FILE; waits
 * for the admin port and lb's "started" line (its listeners may share a
 * port with another lb, so a listening port proves nothing). */
void harness_lb_start_admin(struct harness_lb *lb, const char *config_json, int admin_port);
/* The same with args (NULL-terminated) after -c FILE instead, which must
 * put the admin API on admin_port. */
void harness_lb_start_args(struct harness_lb *lb, const char *config_json, int admin_port,
                           const char *const args[]);
/* The same, with lb's file descriptor limit (soft and hard) set to nofile. */
void harness_lb_start_limited(struct harness_lb *lb, const char *config_json, int wait_port,
                              int nofile);
/* The same, but lb's stdout and stderr are one pipe that nothing reads
 * (a stalled journald or log shipper) until the test calls
 * harness_lb_drain(); what it drains is appended to lb->log, so the log
 * helpers and the sanitizer check work on it. The pipe is closed at exit
 * (harness_lb_wait_exit drains it to the end first) or at teardown. */
void harness_lb_start_pipe(struct harness_lb *lb, const char *config_json, int wait_port);
/* Reads what lb's pipe holds now (nothing without one) into lb->log;
 * returns the bytes read. */
size_t harness_lb_drain(struct harness_lb *lb);
/* harness_log_wait on lb->log, draining lb's pipe (if any) meanwhile. */
bool harness_lb_log_wait(struct harness_lb *lb, const char *needle, int count, long timeout_ms);
/* SIGTERM, bounded wait; fails the test (after SIGKILL) on timeout, or when
 * the log holds a sanitizer report. Returns lb's exit status (-1: signal). */
int harness_lb_stop(struct harness_lb *lb);
/* Waits (bounded) for an lb already told to stop; same checks as above.
 * With a pipe, drains it while waiting and to its end after the exit. */
int harness_lb_wait_exit(struct harness_lb *lb, long timeout_ms);
/* Fails the test when the log holds AddressSanitizer, LeakSanitizer or
 * "runtime error"; under a wrapper, also when lb's valgrind log
 * (TEMPDIR/valgrind-PID.log, if any) counts an error or bytes definitely or
 * indirectly lost. */
void harness_lb_check_clean(const struct harness_lb *lb);
/* The same check on any text (e.g. the stderr of `lb -t`); where names it. */
void harness_assert_no_sanitizer_report(const char *text, const char *where);

/* Replaces lb's config file with text in one rename, so a reload never
 * reads half a file. */
void harness_lb_rewrite(const struct harness_lb *lb, const char *text);
/* Sends sig to lb (e.g. SIGHUP: reload). */
void harness_lb_signal(const struct harness_lb *lb, int sig);
/* Open file descriptors of pid (the entries of /proc/PID/fd); -1 when
 * they cannot be read. */
int harness_fd_count(pid_t pid);
/* Resident memory of pid in KiB (VmRSS in /proc/PID/status); -1 when it
 * cannot be read. */
long harness_rss_kb(pid_t pid);

#endif
