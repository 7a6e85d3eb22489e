/* proxy_proto: the PROXY protocol header (HAProxy's spec, v1 text and v2
 * binary), parsed from and written to plain byte buffers. No sockets and
 * no events: the session feeds it what a client sent before its data
 * (accept_proxy) and sends what it writes to a backend before any byte
 * of the client's (send_proxy); a health check sends the LOCAL one. */
#ifndef LB_PROTO_PROXY_PROTO_H
#define LB_PROTO_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107      /* the longest v1 line, CRLF included (spec) */
#define PROXY_HEADER_MAX 4096 /* the most lb reads as a header (v2 with TLVs); more is invalid */

struct proxy_addr {
    struct sockaddr_storage src, dst; /* the client and the address it reached; zeroed when local */
    /* v2 LOCAL, v1 UNKNOWN, or a family lb does not route on (v2 UNSPEC or
     * UNIX): use the connection's own addresses. */
    bool local;
    int version; /* 1 or 2 */
};

enum proxy_result { PROXY_INVALID = -1, PROXY_NEED_MORE = 0, PROXY_OK = 1 };

/* Parses the header at the start of buf[0..len), which holds what the peer
 * sent so far. The first bytes say the version: "PROXY " is v1, the 12-byte
 * signature "\r\n\r\n\0\r\nQUIT\n" v2.
 * - PROXY_OK: *out is the header's content and *consumed its length; the
 *   bytes after it are the client's own data, not looked at.
 * - PROXY_NEED_MORE: buf is a valid prefix of a header that is not complete
 *   yet; call again with more bytes. Never once len >= PROXY_HEADER_MAX, so
 *   a reader that holds that many always gets an answer.
 * - PROXY_INVALID: buf cannot be (the start of) a header; *why, when why is
 *   not NULL, is a static, short, lower-case reason for the log ("v1: bad
 *   source port"). Decided as early as the bytes allow: a wrong byte of
 *   either signature, a bad v2 version, command, family, length or TLV
 *   header as soon as it arrives, a v1 field as soon as one of its bytes
 *   cannot belong to it (an address's exact form, a CRC32C, once all of it
 *   is in). The reason names the first fault, however the bytes were split.
 * *out and *consumed are written only on PROXY_OK, *why only on
 * PROXY_INVALID.
 * v1 is "PROXY TCP4|TCP6 src dst sport dport\r\n" (single spaces, the
 * family's own address syntax, ports 0..65535 in decimal without sign or
 * leading zero) or "PROXY UNKNOWN" and then a space and anything, or the
 * CRLF; printable US-ASCII only, PROXY_V1_MAX bytes at most. v2 is command
 * LOCAL (local: as the spec says, its family and block are ignored, only
 * its length counts) or PROXY with family TCP over IPv4 or IPv6 (addresses
 * taken), UNSPEC or UNIX stream (local); UDP and other families are
 * invalid. After a PROXY header's address block the bytes must be whole
 * TLVs; a CRC32C one is verified, the others ignored. */
enum proxy_result proxy_parse(const void *buf, size_t len, struct proxy_addr *out, size_t *consumed,
                              const char **why);

/* Writes the header of a connection from src to dst as the backend should
 * see it, into buf[0..cap): its length, or 0 (nothing written) when cap is
 * too small. Nothing else is written: no NUL after a v1 line, no TLV in v2.
 * An IPv4-mapped IPv6 address is written as IPv4; if src and dst still
 * differ in family, the IPv4 one is written as IPv4-mapped IPv6 so both
 * are IPv6. A NULL address or one neither AF_INET nor AF_INET6 makes the
 * header proxy_write_local()'s. An AF_INET or AF_INET6 address must be a
 * whole sockaddr_in or sockaddr_in6. At most PROXY_V1_MAX bytes for v1
 * (104 in fact), 52 for v2. */
size_t proxy_write_v1(void *buf, size_t cap, const struct sockaddr *src,
                      const struct sockaddr *dst);
size_t proxy_write_v2(void *buf, size_t cap, const struct sockaddr *src,
                      const struct sockaddr *dst);

/* The header of a connection that carries no client's addresses (a health
 * check's): v1 "PROXY UNKNOWN\r\n", v2 LOCAL with family UNSPEC and no
 * address block. Its length, or 0 when cap is too small or version is
 * neither 1 nor 2. */
size_t proxy_write_local(int version, void *buf, size_t cap);

#endif
