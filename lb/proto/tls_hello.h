/* tls_hello: the server name a TLS client asks for, read off its
 * ClientHello without decrypting anything (what nginx's ssl_preread and
 * HAProxy's req.ssl_sni give), for routing a tcp listener's connections
 * by name. No sockets and no events: the session peeks at what the client
 * sent and hands the bytes here until there is an answer. */
#ifndef LB_PROTO_TLS_HELLO_H
#define LB_PROTO_TLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>

/* The most bytes lb reads for a ClientHello, record headers included
 * (a ClientHello with post-quantum key shares is about 1.8 KB; one that
 * does not end within this many bytes is refused). */
#define TLS_HELLO_MAX 16384
#define TLS_SERVER_NAME_MAX 255

struct tls_hello {
    /* The host_name of the server_name extension, lower-cased, NUL-ended;
     * "" when the client sent none (then has_server_name is false). */
    char server_name[TLS_SERVER_NAME_MAX + 1];
    bool has_server_name;
    unsigned version; /* the ClientHello's legacy_version: 0x0303 for TLS 1.2 and 1.3 */
    size_t hello_len; /* the bytes the ClientHello took, record headers included */
};

enum tls_hello_result { TLS_HELLO_INVALID = -1, TLS_HELLO_NEED_MORE = 0, TLS_HELLO_OK = 1 };

/* Parses the ClientHello at the start of buf[0..len), what the client sent
 * so far: TLS records of content type handshake (22), the message possibly
 * split over several of them, as RFC 8446 5.1 allows.
 * - TLS_HELLO_OK: *out holds what the hello says; the bytes are not
 *   consumed (the TLS server, or the backend, reads them all).
 * - TLS_HELLO_NEED_MORE: buf is a valid prefix of a ClientHello; call again
 *   with more. Never once len >= TLS_HELLO_MAX.
 * - TLS_HELLO_INVALID: buf cannot be (the start of) a ClientHello; *why,
 *   when why is not NULL, is a static, short, lower-case reason ("not a
 *   TLS handshake record", "bad server name"), decided as soon as the
 *   faulty byte is in, whatever the split.
 * What is checked: record type 22, version 3.x, length 1..16384; the
 * first message a client_hello (1) whose length fits; legacy_version 3.x;
 * session id at most 32 bytes; cipher suites an even, non-zero length;
 * at least one compression method; the extensions, when present, filling
 * the message exactly, each within it, server_name at most once; in
 * server_name a well-formed list holding at most one host_name of 1 to
 * 255 bytes of letters, digits, '-', '_' and '.' (other name types are
 * skipped). Nothing after the ClientHello is looked at. *out is written
 * only on TLS_HELLO_OK, *why only on TLS_HELLO_INVALID. */
enum tls_hello_result tls_hello_parse(const void *buf, size_t len, struct tls_hello *out,
                                      const char **why);

#endif
