/* harness/internal: what the tests/harness/ files share and the tests
 * do not see. The state behind it (temp dir, spawned PIDs, kept strings and
 * documents, held sockets) lives in one file each; the others reach it
 * only through these functions. */
#ifndef LB_TESTS_HARNESS_INTERNAL_H
#define LB_TESTS_HARNESS_INTERNAL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <check.h>

#include "tests/harness.h"

#define HARNESS_LOG_TAIL 3000 /* bytes of a log quoted in a failure message */

/* --- core.c --- */

/* len bytes freed at teardown (fails the test when out of memory). */
char *harness_keep(size_t len);
/* The whole file, malloc'd (the caller frees); "" when missing. */
char *harness_slurp(const char *path);
/* The end of a log (at most HARNESS_LOG_TAIL bytes), for failure messages. */
const char *harness_log_tail(const char *path);
/* 1, 2, 3... in each test: numbers the config, log and run files. */
int harness_next_file_number(void);

/* --- proc.c --- */

/* Remembers pid for teardown (SIGKILL and reap); with group, pid leads a
 * process group of its own and the whole group is SIGKILLed. */
void harness_child_track(pid_t pid, bool group);
/* SIGKILLs and reaps every tracked process not reaped yet (teardown, exit). */
void harness_children_kill(void);
/* Closes the read ends of lb pipes still open (teardown). */
void harness_pipes_close(void);

/* --- net.c --- */

/* host (IPv4 or IPv6 literal, no brackets) and port into *ss; 0 or -1. */
int harness_fill_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);
/* poll for events until the deadline (harness_now_ms clock); true on an event. */
bool harness_wait_fd(int fd, short events, long deadline);
/* Forgets the ports handed out (setup). */
void harness_ports_reset(void);

/* --- json.c --- */

/* Drops every document kept for the test (teardown). */
void harness_json_release(void);

/* --- server.c --- */

/* Closes the listening sockets of harness_listen_held (teardown). */
void harness_held_close(void);

/* --- server.c: for the HTTP backends (server.c, hserver.c) --- */

/* The value of header name in head (status or request line first, CRLF
 * lines, case-insensitive name), without the blanks around it, into out:
 * true, or false when head has none. */
bool harness_head_value(const char *head, const char *name, char *out, size_t cap);
/* Whether a connection stays open after answering the request head: not
 * HTTP/1.0 unless Connection says keep-alive, not Connection: close. */
bool harness_head_keep_alive(const char *head);

#endif
