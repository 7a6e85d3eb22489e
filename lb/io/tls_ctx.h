/* tls_ctx: OpenSSL contexts for lb built from plain settings (file names,
 * version and cipher strings, ALPN names), checked the way an operator
 * needs: each mistake is one line naming the file or the setting, and a
 * certificate about to expire is a warning. A server context picks its
 * certificate by SNI; a client context verifies the server's certificate
 * and name. lb/tls_conf.c builds them from the config.
 *
 * A struct tls_ctx is reference counted so that a reload can build new
 * contexts and drop its reference to the old ones while established
 * sessions keep theirs: whoever makes an SSL from a tls_ctx holds a
 * reference (tls_ctx_ref) until that SSL is freed, since the SSL's
 * callbacks read the tls_ctx. Single-threaded, like the rest of lb.
 *
 * Errors, written to err (one line, no newline, truncated to errlen) with
 * NULL returned and OpenSSL's error queue cleared:
 *   PATH: cannot read: No such file or directory    (strerror of open)
 *   PATH: not a regular file                         (a FIFO, a directory: never waited on)
 *   PATH: not a PEM certificate
 *   PATH: not a PEM private key (or an encrypted one)
 *   KEY does not match the certificate in CERT
 *   CERT: expired on 2020-02-01 00:00:00 UTC
 *   CERT: not valid before 2030-02-01 00:00:00 UTC
 *   CERT: cannot use the certificate chain: OPENSSL'S REASON   (e.g. "ee key too small")
 *   KEY: cannot use the key: OPENSSL'S REASON
 *   CA: no certificate in it                         (the client's CA file)
 *   cannot load the system's trusted CAs: OPENSSL'S REASON
 *   a client certificate needs both cert and key
 *   no certificate: a TLS server needs at least one
 *   unknown min_version "TLSv1.1" (accepted: "TLSv1.2", "TLSv1.3")
 *   ciphers "X" rejected by OpenSSL: OPENSSL'S REASON      (e.g. "no cipher match")
 *   ciphersuites "X" rejected by OpenSSL: OPENSSL'S REASON
 *   alpn name N is empty or longer than 255 bytes     (N counts from 0)
 *   OPENSSL FUNCTION failed: OPENSSL'S REASON        (out of memory and the like)
 *   out of memory
 * Dates are the certificate's leaf notBefore/notAfter in UTC. Only the
 * first certificate of a PEM (the leaf) is checked for dates.
 *
 * What a caller of the SSL objects must know (OpenSSL 3.0, seen in
 * tests/integration/test_tls_ctx.c):
 * - End of stream: with SSL_OP_IGNORE_UNEXPECTED_EOF (set on every
 *   context here) a peer that closes without close_notify makes SSL_read
 *   return 0 with SSL_ERROR_ZERO_RETURN and SSL_get_shutdown() ==
 *   SSL_RECEIVED_SHUTDOWN, exactly as a close_notify does: the two cannot
 *   be told apart (without the option it is SSL_ERROR_SSL, reason
 *   SSL_R_UNEXPECTED_EOF_WHILE_READING).
 * - Resumption: an SSL freed without SSL_shutdown() (SSL_SENT_SHUTDOWN
 *   not set) has its session removed from its cache and marked not
 *   resumable (OpenSSL's ssl_clear_bad_session). A client's session then
 *   never resumes; a server's leaves the session id cache (TLS 1.2
 *   without tickets), while tickets still resume. End a normal session
 *   with SSL_shutdown() (or SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN) for a
 *   quiet close) before SSL_free.
 * - TLS 1.3 tickets arrive after the handshake: a client must read them
 *   (SSL_read) before SSL_get1_session() has a resumable session, and a
 *   side that closes its socket with those bytes unread resets the
 *   connection (TCP RST, ECONNRESET on a socketpair).
 * - OpenSSL's error queue is per thread, shared by every SSL: read the
 *   reason (ERR_peek_error) right after the failing call, then clear it. */
#ifndef LB_IO_TLS_CTX_H
#define LB_IO_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#define TLS_WARN_DAYS 14 /* a certificate expiring sooner gives a warning */

struct tls_cert_files {
    const char *cert; /* PEM: the certificate, then its chain (sent as is) */
    const char *key;  /* PEM: its private key, unencrypted */
};

struct tls_server_opts {
    const struct tls_cert_files *certs;
    size_t ncerts;            /* >= 1; certs[0] is the default */
    const char *min_version;  /* "TLSv1.2" (NULL means this) or "TLSv1.3" */
    const char *ciphers;      /* TLS <= 1.2 cipher list; NULL: OpenSSL's default */
    const char *ciphersuites; /* TLS 1.3 ciphersuites; NULL: OpenSSL's default */
    const char *const *alpn;  /* protocol names in preference order ("http/1.1"); may be NULL */
    size_t nalpn;
};

struct tls_client_opts {
    bool verify;             /* verify the server's certificate (and name) */
    const char *ca;          /* PEM file of trusted CAs; NULL with verify: the system store */
    const char *server_name; /* DNS name or IP literal: SNI (DNS names only) and, with
                              * verify, the name checked; NULL: no SNI, no name check */
    const char *cert, *key;  /* an optional client certificate (both or neither) */
    const char *min_version; /* as for a server */
    const char *ciphers, *ciphersuites;
};

struct tls_ctx;

/* A server context with every certificate of o loaded and checked (file
 * readable, a certificate, a key that matches it, valid now). Options: TLS
 * 1.2 at least (or 1.3), no compression, no renegotiation,
 * SSL_OP_IGNORE_UNEXPECTED_EOF (a peer that closes without close_notify
 * reads as an ordinary end of stream: SSL_read returns 0 with
 * SSL_ERROR_ZERO_RETURN), the server's cipher preference, partial writes
 * with a moving write buffer, buffers released when idle, resumption by
 * tickets and by the server session cache. ALPN: the first of o->alpn
 * that the client offers; none in common (or no o->alpn) goes on without
 * ALPN.
 *
 * SNI: each certificate has its own SSL_CTX, configured alike; the
 * servername callback of the default one (certs[0]) moves the SSL to the
 * SSL_CTX of the certificate whose names match the name the client sent
 * (SSL_set_SSL_CTX). A certificate's names are its subjectAltName DNS
 * names, or its subject CN when it has none. Matching ignores case; a name
 * "*.example.com" matches one more leftmost label ("a.example.com", not
 * "example.com" or "a.b.example.com"). An exact name wins over a
 * wildcard, then the earlier certificate; no match or no SNI keeps the
 * default. SSL_set_SSL_CTX changes the certificate only: the options,
 * verify settings and the session cache stay the default SSL_CTX's
 * (OpenSSL's session_ctx), so a session resumes whichever certificate it
 * was made with. Session tickets are encrypted with one set of keys for
 * the process's life, shared by every server context (a context a reload
 * builds opens the tickets of the one before). Every SSL_CTX has the same session id
 * context ("lb").
 *
 * Returns NULL with err filled on error. On success, warn (when not NULL)
 * is "" or the warnings, "; "-separated:
 *   CERT expires on 2026-12-05 19:42:00 UTC (in 3 days)
 * for each certificate that expires within TLS_WARN_DAYS days ("in 1
 * day", "in less than a day"; days rounded to the nearest). */
struct tls_ctx *tls_server_ctx_new(const struct tls_server_opts *o, char *err, size_t errlen,
                                   char *warn, size_t warnlen);

/* A client context: with o->verify, SSL_VERIFY_PEER against o->ca (or the
 * system store) and, through tls_client_ssl_new, the server's certificate
 * checked for o->server_name (a DNS name against its DNS names, partial
 * wildcards refused; an IP literal against its IP addresses); without,
 * nothing is verified. o->cert and o->key, when set, are checked like a
 * server's and sent when the server asks. Same versions, ciphers and
 * SSL_OP_IGNORE_UNEXPECTED_EOF, modes and no compression as a server.
 * NULL with err filled on error. */
struct tls_ctx *tls_client_ctx_new(const struct tls_client_opts *o, char *err, size_t errlen);

/* The SSL_CTX to make SSL objects from: a server's default certificate's
 * (SNI moves the SSL to another one during the handshake by itself). */
SSL_CTX *tls_ctx_ssl(const struct tls_ctx *t);

/* The client's server_name, or NULL (none, or a server context). */
const char *tls_client_server_name(const struct tls_ctx *t);

/* A new SSL of client context t on the connected socket fd, in connect
 * state, with the SNI (server_name when it is a DNS name, none for an IP
 * literal) and, when t verifies, the name or IP address to check set. The
 * caller drives the handshake and frees the SSL (before its last
 * reference to t). NULL when OpenSSL fails (error queue cleared). */
SSL *tls_client_ssl_new(struct tls_ctx *t, int fd);

/* Why the peer's certificate was not accepted, after a handshake that
 * verified it: "certificate verify failed: " and OpenSSL's reason
 * (X509_verify_cert_error_string: "hostname mismatch", "unable to get
 * local issuer certificate", "certificate has expired"...), into
 * buf[0..len); NULL when it verified or nothing was verified. */
const char *tls_verify_error(const SSL *ssl, char *buf, size_t len);

/* Another reference to t; t itself. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *t);
/* Drops a reference; the last frees t and its SSL_CTXs (OpenSSL's own
 * references keep an SSL_CTX alive while an SSL still uses it). NULL is
 * ignored. */
void tls_ctx_unref(struct tls_ctx *t);

#endif
