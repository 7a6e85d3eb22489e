/* conn_tls: the connection ops over a TLS session (OpenSSL) on a stream
 * socket, so that the relay and http mode move decrypted bytes through the
 * same readv/writev as plain TCP (lb/io/conn.h). The handshake is driven
 * apart, before the connection carries any data; after it, a read may need
 * the socket writable (an alert or a renegotiation refusal it must send
 * while the socket is full), which the ops' wants (and conn_tls_wants())
 * says. A TLS listener's sessions use one for their client side
 * (lb/session.c). */
#ifndef LB_IO_CONN_TLS_H
#define LB_IO_CONN_TLS_H

#include <openssl/ssl.h>

#include "lb/io/conn.h"

extern const struct conn_ops conn_tls_ops;

/* c becomes a TLS connection over fd, through ssl (a server's or a
 * client's, set up by its caller: SNI, verification), which c owns from
 * now on, even on failure. 0, or -1 with errno ENOMEM (then c is plain TCP
 * over fd, and ssl is freed). */
int conn_tls_init(struct conn *c, int fd, SSL *ssl);

/* Drives the handshake as far as the socket allows: 1 when it is done, 0
 * when it waits for the socket (conn_tls_wants() says for what), -1 when it
 * failed: *why is then a short reason for the log ("wrong version number",
 * "certificate verify failed", "closed by the peer"), valid until the next
 * call on c. */
int conn_tls_handshake(struct conn *c, const char **why);

/* What the last handshake step, or the last readv or writev that failed
 * with EAGAIN, waits for: CONN_WANT_READ or CONN_WANT_WRITE (a read that
 * must write first: watch for writability and read again then). The ops'
 * wants says the same. */
enum conn_want conn_tls_wants(const struct conn *c);

/* Why the last readv or writev failed with EPROTO (a TLS protocol error:
 * "decryption failed or bad record mac"), for the log. */
const char *conn_tls_last_error(const struct conn *c);

/* The session, for the caller's own questions (ALPN, the peer's
 * certificate, whether it was resumed). */
SSL *conn_tls_ssl(const struct conn *c);

#endif
