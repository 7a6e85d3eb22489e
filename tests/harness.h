/* harness: what the integration tests share. A temp dir per test, free
 * loopback ports, child processes (lb, demo-backend) that never outlive the
 * test, and socket and log helpers. Every wait has a deadline, so a broken lb
 * fails a test instead of hanging it. */
#ifndef LB_TESTS_HARNESS_H
#define LB_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define HARNESS_WAIT_MS 5000     /* default bound for "until ready" waits */
#define HARNESS_STOP_MS 15000    /* bound for lb to exit after SIGTERM */
#define HARNESS_TCASE_TIMEOUT 60 /* seconds, for tcase_set_timeout */

struct harness_lb {
    pid_t pid;
    char config[512]; /* config file path */
    char log[512];    /* stdout + stderr of lb (with a pipe: what was drained) */
    int pipe;         /* read end of lb's stdout + stderr (harness_lb_start_pipe), else -1 */
};

/* Check fixture pair. setup makes the temp dir; teardown (and an atexit
 * hook, for the no-fork mode) kills every process spawned and, when the test
 * got that far, removes the dir (kept when LB_IT_KEEP is set). A failed
 * test keeps its dir for reading. */
void harness_setup(void);
void harness_teardown(void);
const char *harness_dir(void);

long harness_now_ms(void);
void harness_sleep_ms(long ms);

/* A loopback port nothing listens on now (bind port 0, read it, close);
 * never the same port twice in one test. */
int harness_free_port(void);
int harness_free_port6(void); /* on ::1; -1 when the machine has no ::1 */
bool harness_have_ipv6(void);

/* printf into a string freed at teardown. */
char *harness_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes text to NAME in the temp dir; returns the path (freed at teardown). */
const char *harness_write_file(const char *name, const char *text);
/* Whole file as a string (freed at teardown); "" when missing. */
const char *harness_read_file(const char *path);

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

/* True once host:port completes a TCP connect (probing connects). */
bool harness_wait_port(const char *host, int port, long timeout_ms);
/* True once something is in LISTEN on the port (reads /proc/net/tcp{,6};
 * unlike harness_wait_port it opens no connection, so no session starts). */
bool harness_port_listening(int port);
bool harness_wait_listening(int port, long timeout_ms);
bool harness_wait_not_listening(int port, long timeout_ms);

/* Starts LB_BUILD_DIR/demo-backend -l HOST:PORT -n NAME -m MODE (host "::1"
 * gets brackets) and waits until it accepts. Fails the test otherwise. */
pid_t harness_backend(const char *host, int port, const char *name, const char *mode);
/* The same; in http mode the backend answers with the status held in
 * status_file (200 when it is missing or holds no status from 100 to 599). */
pid_t harness_backend_status(const char *host, int port, const char *name, const char *mode,
                             const char *status_file);

/* The usual test config: one listener "web" on listen to pool "app".
 * backends is the inside of the pool's "backends" array. Zero fields take
 * lb's usual values (strategy roundrobin, max_connections 10000, idle
 * 300000 ms, grace 10000 ms, connect timeout 3000 ms); retries is as given. */
struct harness_conf {
    const char *listen; /* "127.0.0.1:PORT" or "[::1]:PORT" */
    const char *strategy;
    const char *backends;
    unsigned retries;
    unsigned max_connections;
    unsigned idle_timeout_ms;
    unsigned grace_ms;
    unsigned connect_timeout_ms;
    const char *pool_extra; /* more pool keys, each followed by ", " */
};
const char *harness_config(const struct harness_conf *c);

/* Writes config_json to the temp dir, starts LB_BUILD_DIR/lb -c FILE with
 * its output in lb->log, waits until wait_port is listening (fails the test
 * with the log when lb exits or the wait times out). */
void harness_lb_start(struct harness_lb *lb, const char *config_json, int wait_port);
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
 * "runtime error". */
void harness_lb_check_clean(const struct harness_lb *lb);
/* The same check on any text (e.g. the stderr of `lb -t`); where names it. */
void harness_assert_no_sanitizer_report(const char *text, const char *where);

bool harness_log_contains(const char *path, const char *needle);
/* How many lines hold needle. */
int harness_log_count(const char *path, const char *needle);
/* True once the log holds needle at least count times (bounded). */
bool harness_log_wait(const char *path, const char *needle, int count, long timeout_ms);
/* The first line holding needle (freed at teardown), or NULL. */
const char *harness_log_line(const char *path, const char *needle);

/* Connects to host:port (IPv4 or IPv6 literal) within timeout_ms; the fd is
 * blocking, every later helper polls with its own deadline. -1 on failure
 * (errno set: ECONNREFUSED, ETIMEDOUT...). */
int harness_connect(const char *host, int port, long timeout_ms);
/* Same, from source address src (e.g. "127.0.0.2"). */
int harness_connect_from(const char *src, const char *host, int port, long timeout_ms);
bool harness_send_all(int fd, const void *buf, size_t len, long timeout_ms);
/* Reads until len bytes, EOF or the deadline; returns the bytes read, -1 on
 * a socket error before any byte. */
ssize_t harness_recv_n(int fd, void *buf, size_t len, long timeout_ms);
/* Reads until EOF into buf (at most cap - 1 bytes, then a NUL); returns the
 * bytes read, -1 on timeout, error or when more than cap - 1 bytes arrive. */
ssize_t harness_read_eof(int fd, void *buf, size_t cap, long timeout_ms);
/* Discards input until EOF or reset; returns ms waited, -1 on timeout. */
long harness_wait_closed(int fd, long timeout_ms);
/* True when fd has input (or EOF) within timeout_ms. */
bool harness_readable(int fd, long timeout_ms);

/* Connects, reads until EOF, returns the text without its final newline
 * (freed at teardown), NULL on failure. For name-mode backends behind lb. */
const char *harness_fetch_name(const char *src, const char *host, int port);

/* One HTTP/1.1 request to 127.0.0.1:port with "Connection: close", the
 * answer read until EOF (bounded by HARNESS_WAIT_MS). headers: extra header
 * lines, each ending in "\r\n" (NULL: none). body: NULL for none, else sent
 * with its Content-Length. Fills *status, *resp_headers (the header lines
 * after the status line, as received) and *resp_body (chunked bodies
 * decoded); the strings are freed at teardown and any out pointer may be
 * NULL. Returns 0, or -1 when the connect fails or the answer is not HTTP. */
int harness_http(int port, const char *method, const char *path, const char *headers,
                 const char *body, int *status, const char **resp_headers, const char **resp_body);
/* The same to any loopback host ("127.0.0.1", "::1"), with a body of len
 * bytes (which may hold NULs). */
int harness_http_to(const char *host, int port, const char *method, const char *path,
                    const char *headers, const void *body, size_t len, int *status,
                    const char **resp_headers, const char **resp_body);
/* The value of header name (case-insensitive) in resp_headers, without
 * surrounding spaces (freed at teardown); NULL when absent. */
const char *harness_http_header(const char *resp_headers, const char *name);

/* Moves the test process (Check forks one per test) into a network
 * namespace of its own, with its loopback up; lb and backends started
 * afterwards live there too, and it all goes away with the process. False,
 * with a "skipped" line on stderr naming test, when that cannot be done
 * (not root, or Check's no-fork mode). */
bool harness_netns_enter(const char *test);
/* Takes the namespace's loopback interface up or down. */
void harness_loopback_set(bool up);
/* Gives the namespace's loopback one more IPv4 address (e.g. 192.0.2.1),
 * one that is not in 127.0.0.0/8. */
void harness_loopback_add(const char *ipv4);

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

/* One answer of the admin API. */
struct harness_reply {
    int status;
    const char *headers;
    const char *body;
    json_t *json; /* parsed when Content-Type is application/json, else NULL */
};
/* One request to 127.0.0.1:port (fails the test without an answer). A JSON
 * answer is parsed (freed at teardown) and must end in a newline. */
struct harness_reply harness_call(int port, const char *method, const char *path,
                                  const char *headers, const char *body);

/* A deterministic pseudo-random byte stream: n bytes from offset off, the
 * same for the same offsets, so a receiver can check any chunk alone. */
void harness_stream_fill(unsigned char *buf, uint64_t off, size_t n);

/* The JSON value at a dotted path ("pools.0.backends.1.id"); fails the test
 * when absent (or, for jint/jstr, of another type). */
json_t *harness_jget(json_t *j, const char *path);
long long harness_jint(json_t *j, const char *path);
const char *harness_jstr(json_t *j, const char *path);

#endif
