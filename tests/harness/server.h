/* harness/server: backends written as a C function in the test itself,
 * each served in a process of its own that dies with the test, and a
 * listening socket whose accept queue is held full on purpose. */
#ifndef LB_TESTS_HARNESS_SERVER_H
#define LB_TESTS_HARNESS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Serves one accepted connection: fd is blocking, and closed by the
 * harness when the function returns. The function runs in a process of
 * its own (no Check calls in it: report through what it sends), so it may
 * block, loop until the peer closes, or crash: a crash ends only that
 * connection. arg is what the test passed to harness_server, as it was
 * then (the process has its own copy of the test's memory). */
typedef void (*harness_conn_fn)(int fd, void *arg);

/* Forks a server process that listens on host:port (an IPv4 or IPv6
 * literal, "::1" without brackets; SO_REUSEADDR, so a port a killed
 * server left in TIME_WAIT can be served again) and, for each connection it
 * accepts, forks a connection process that runs fn(fd, arg): connections
 * are served at once and side by side. Returns once the port is listening
 * (the server says so after listen(), so no probing connection reaches
 * fn); fails the test when it cannot listen there or does not say so within
 * HARNESS_WAIT_MS. The server is tracked like harness_spawn's processes
 * (PR_SET_PDEATHSIG, SIGKILLed at teardown) and leads a process group of
 * its own with its connection processes, which teardown SIGKILLs whole;
 * they also have PR_SET_PDEATHSIG on the server. It holds none of the
 * test's descriptors: a socket the test closes is closed. Kill the server
 * (kill + harness_wait_exit) to take the backend away; the connections it
 * serves then end too. */
pid_t harness_server(const char *host, int port, harness_conn_fn fn, void *arg);

/* Writes all len bytes to the blocking socket fd, waiting as long as it
 * takes (for the connection functions, which have no deadline): false on an
 * error (the peer went away; never SIGPIPE). */
bool harness_write_full(int fd, const void *buf, size_t len);
/* Echoes what it reads until EOF, then shuts down its write side and
 * closes (the peer sees every byte, then EOF). arg is unused. */
void harness_fn_echo(int fd, void *arg);
/* Writes arg (a const char *) and a newline, shuts down its write side
 * (the peer reads "NAME\n" then EOF), then reads and discards until the
 * peer closes, so what the peer still sends draws no reset. The demo
 * backend's name mode, as a function. */
void harness_fn_name(int fd, void *arg);
/* Reads and discards, never answers, and closes only after the peer has
 * (a backend that accepts and says nothing). arg is unused. */
void harness_fn_hold(int fd, void *arg);
/* Answers every HTTP/1.1 request head (pipelined ones too; a request body
 * with Content-Length is read and discarded) with 200, Content-Type
 * text/plain and the body arg (a const char *; NULL: "ok\n"). The
 * connection stays open for the next request unless the request says
 * "Connection: close" or is HTTP/1.0 without "Connection: keep-alive"
 * (then the answer carries "Connection: close" and the write side is shut
 * down after it). A head over 16 KiB gets a 400 and the connection closes.
 * Enough for tests, not a full server: no chunked request bodies. */
void harness_fn_http(int fd, void *arg);

/* A listening socket on host:port (port 0: any free port, see
 * harness_sock_port) in the test process itself, with backlog 0, that
 * nobody ever accepts on: a backend that accepts the SYN but whose accept
 * queue is held. On Linux, the first connect to it completes (the kernel
 * finishes the handshake and queues the connection, which fills a backlog
 * of 0, and nobody accepts it, so it stays queued); every connect after
 * that one gets no SYN-ACK (a SYN to a full accept queue is dropped) and
 * stays in SYN_SENT, retransmitting, until its own timeout: a client such
 * as lb sees a connect that neither succeeds nor fails. The socket alone
 * does not do that: the test makes that first connect itself
 * (harness_connect, which returns once it completed) and keeps it. Returns
 * the listening descriptor, closed at teardown (do not close it yourself).
 * Fails the test when it cannot listen there. */
int harness_listen_held(const char *host, int port);

#endif
