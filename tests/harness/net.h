/* harness/net: loopback ports, client sockets whose every wait has a
 * deadline, and a deterministic byte stream for byte-exact transfers. */
#ifndef LB_TESTS_HARNESS_NET_H
#define LB_TESTS_HARNESS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A loopback port nothing listens on now (bind port 0, read it, close);
 * never the same port twice in one test. */
int harness_free_port(void);
int harness_free_port6(void); /* on ::1; -1 when the machine has no ::1 */
bool harness_have_ipv6(void);

/* "HOST:PORT", or "[HOST]:PORT" for an IPv6 literal (freed at teardown). */
const char *harness_hostport(const char *host, int port);
/* "127.0.0.1:PORT" (freed at teardown). */
const char *harness_lo(int port);

/* The local port of socket fd (fails the test when it has none). */
int harness_sock_port(int fd);

/* True once host:port completes a TCP connect (probing connects). */
bool harness_wait_port(const char *host, int port, long timeout_ms);
/* True once something is in LISTEN on the port (reads /proc/net/tcp{,6};
 * unlike harness_wait_port it opens no connection, so no session starts). */
bool harness_port_listening(int port);
/* The same for an IPv4 socket bound to hexaddr, written as /proc/net/tcp
 * does ("0100007F" for 127.0.0.1, "00000000" for *). */
bool harness_listening_on(const char *hexaddr, int port);
bool harness_wait_listening(int port, long timeout_ms);
bool harness_wait_not_listening(int port, long timeout_ms);

/* Connects to host:port (IPv4 or IPv6 literal) within timeout_ms; the fd is
 * blocking, every later helper polls with its own deadline. -1 on failure
 * (errno set: ECONNREFUSED, ETIMEDOUT...). */
int harness_connect(const char *host, int port, long timeout_ms);
/* Same, from source address src (e.g. "127.0.0.2"). */
int harness_connect_from(const char *src, const char *host, int port, long timeout_ms);
bool harness_send_all(int fd, const void *buf, size_t len, long timeout_ms);
/* harness_connect within HARNESS_WAIT_MS; fails the test (naming the port
 * and the error) when the connect fails. */
int harness_connect_ok(const char *host, int port);
/* Sends msg on fd and expects exactly msg back (an echo backend behind
 * lb) within HARNESS_WAIT_MS; fails the test otherwise. */
void harness_echo_roundtrip(int fd, const char *msg);
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
/* n fetches of names from 127.0.0.1:port, one connection each, joined by
 * "," (freed at teardown); fails the test when one gets no name. */
const char *harness_fetch_names(int port, int n);

/* A deterministic pseudo-random byte stream: n bytes from offset off, the
 * same for the same offsets, so a receiver can check any chunk alone. */
void harness_stream_fill(unsigned char *buf, uint64_t off, size_t n);

/* Pieces harness_stream_echo() sends at once, at most. */
#define HARNESS_STREAM_CHUNK (256 * 1024)
struct harness_stream {
    uint64_t total, sent, received;
    unsigned char *out, *in, *want;
    size_t out_len, out_pos;
};
/* Sends total bytes of harness_stream_fill's pattern through fd (to an echo
 * backend behind lb), half-closes after the last, and checks every byte
 * that comes back until all did, then a clean EOF. Before each wait
 * step(arg, bytes received so far) may act (a reload, an upgrade); NULL:
 * none. Fails the test when the stream stalls past deadline_ms, ends early
 * or brings a wrong byte. */
void harness_stream_echo(int fd, uint64_t total, long deadline_ms,
                         void (*step)(void *arg, uint64_t received), void *arg);

#endif
