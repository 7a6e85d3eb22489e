/* proxy_proto: parses and writes PROXY protocol headers (see
 * lb/proto/proxy_proto.h). Written from HAProxy's proxy-protocol.txt; the
 * parser is strict because every byte it sees comes from a client that may
 * be hostile, and it says no as soon as the bytes allow. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lb/proto/proxy_proto.h"

#define V1_SIG "PROXY "
#define V1_SIG_LEN 6
#define V1_ADDR4_MAX 15 /* "255.255.255.255" */
#define V1_ADDR6_MAX 45 /* INET6_ADDRSTRLEN - 1: the longest form inet_pton takes */
#define V1_LOCAL "PROXY UNKNOWN\r\n"

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
#define V2_FIXED_LEN 16 /* signature, version and command, family, length */
#define V2_VERSION 0x2
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_FAM_UNSPEC 0x00
#define V2_FAM_TCP4 0x11
#define V2_FAM_TCP6 0x21
#define V2_FAM_UNIX 0x31
#define V2_ADDR4_LEN 12   /* two IPv4 addresses, two ports */
#define V2_ADDR6_LEN 36   /* two IPv6 addresses, two ports */
#define V2_ADDRUN_LEN 216 /* two 108-byte socket paths */
#define V2_TLV_CRC32C 0x03

static enum proxy_result fail(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return PROXY_INVALID;
}

/* ---- CRC32c (Castagnoli, reflected, as RFC 4960 appendix B computes it) ---- */

static uint32_t crc32c_table[256];

/* The table is built on first use; lb has one thread. */
static uint32_t crc32c_update(uint32_t crc, const unsigned char *p, size_t n)
{
    if (crc32c_table[1] == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c >> 1) ^ (0x82f63b78u & -(c & 1)); /* the polynomial, reflected */
            crc32c_table[i] = c;
        }
    }
    while (n--)
        crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

/* ---- v1: "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n" ---- */

enum v1_proto { V1_TCP4, V1_TCP6, V1_UNKNOWN };

/* f[0..n) is the protocol field, whole when a space or the line's end
 * follows it. A part is fine while it can still become one of the three;
 * so "UNKNOWN" too must be followed by a space or the CR. */
static enum proxy_result v1_proto(const char *f, size_t n, bool whole, enum v1_proto *proto,
                                  const char **why)
{
    static const char *const names[] = {
        [V1_TCP4] = "TCP4", [V1_TCP6] = "TCP6", [V1_UNKNOWN] = "UNKNOWN"};
    bool prefix = false;
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(names[i]);
        if (n > len || memcmp(f, names[i], n) != 0)
            continue;
        if (n == len) {
            *proto = (enum v1_proto)i;
            return PROXY_OK;
        }
        prefix = true;
    }
    if (prefix && !whole)
        return PROXY_NEED_MORE;
    return fail(why, "v1: bad protocol");
}

/* f[0..n) is an address of the protocol's family. While it is a part only
 * its characters and length are checked; whole, inet_pton of that family
 * alone decides (an IPv6 address in a TCP4 line is invalid). */
static bool v1_addr(enum v1_proto proto, const char *f, size_t n, bool whole,
                    struct sockaddr_storage *ss)
{
    int family = proto == V1_TCP4 ? AF_INET : AF_INET6;
    const char *alphabet = family == AF_INET ? "0123456789." : "0123456789abcdefABCDEF:.";
    size_t max = family == AF_INET ? V1_ADDR4_MAX : V1_ADDR6_MAX;
    char text[V1_ADDR6_MAX + 1];
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr(alphabet, f[i]))
            return false;
    if (!whole)
        return true;
    memcpy(text, f, n);
    text[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
}

/* f[0..n) (n >= 1) is a port, or its first bytes: decimal 0..65535, no
 * sign, no leading zero but "0" itself. Each check holds for a part too. */
static bool v1_port(const char *f, size_t n, struct sockaddr_storage *ss)
{
    unsigned long v = 0;
    if (n > 5 || (f[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(f[i] - '0');
    }
    if (v > 65535)
        return false;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)v);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)v);
    return true;
}

/* The fields of line[0..n), the text after "PROXY " and before the CR (or
 * all that arrived so far, when !complete). Fields are separated by one
 * space each; the last one of an incomplete line may be a part. OK with
 * *a filled when the fields are all there, NEED_MORE when they are right
 * so far. */
static enum proxy_result v1_fields(const char *line, size_t n, bool complete, struct proxy_addr *a,
                                   const char **why)
{
    static const char *const bad_field[] = {NULL, "v1: bad source address",
                                            "v1: bad destination address", "v1: bad source port",
                                            "v1: bad destination port"};
    const char *p = line, *end = line + n;
    enum v1_proto proto = V1_UNKNOWN;
    int k;
    for (k = 0;; k++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t flen = (size_t)((sp ? sp : end) - p);
        bool whole = sp || complete;
        if (k > 4)
            return fail(why, "v1: extra field");
        if (flen == 0 && whole)
            return fail(why, "v1: empty field");
        if (k == 0) {
            enum proxy_result r = v1_proto(p, flen, whole, &proto, why);
            if (r != PROXY_OK)
                return r;
            if (proto == V1_UNKNOWN) {
                /* The spec: whatever follows UNKNOWN up to the CRLF is ignored. */
                a->local = true;
                return complete ? PROXY_OK : PROXY_NEED_MORE;
            }
        } else if (flen > 0 && k <= 2) {
            if (!v1_addr(proto, p, flen, whole, k == 1 ? &a->src : &a->dst))
                return fail(why, bad_field[k]);
        } else if (flen > 0) {
            if (!v1_port(p, flen, k == 3 ? &a->src : &a->dst))
                return fail(why, bad_field[k]);
        }
        if (!sp)
            break;
        p = sp + 1;
    }
    if (!complete)
        return PROXY_NEED_MORE;
    if (k < 4)
        return fail(why, "v1: missing field");
    return PROXY_OK;
}

/* buf starts with "PROXY ". The line must end in CRLF within PROXY_V1_MAX
 * bytes and hold printable US-ASCII only. The fields before the first byte
 * that is not text are judged first, so the reason names the first fault
 * in the line, however its bytes were split into reads. */
static enum proxy_result v1_parse(const unsigned char *buf, size_t len, struct proxy_addr *out,
                                  size_t *consumed, const char **why)
{
    size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    size_t end = V1_SIG_LEN; /* the text is buf[V1_SIG_LEN..end) */
    while (end < n && buf[end] >= 0x20 && buf[end] <= 0x7e)
        end++;
    bool cr = end < n && buf[end] == '\r';
    struct proxy_addr a = {.version = 1};
    enum proxy_result r = v1_fields((const char *)buf + V1_SIG_LEN, end - V1_SIG_LEN, cr, &a, why);
    if (r == PROXY_INVALID)
        return r;
    if (end < n && !cr)
        return fail(why, buf[end] == '\n' ? "v1: bare lf" : "v1: not printable ascii");
    /* A CR in the last byte allowed leaves no room for its LF. */
    if (!cr || end + 1 == PROXY_V1_MAX)
        return len >= PROXY_V1_MAX ? fail(why, "v1: no crlf within 107 bytes") : PROXY_NEED_MORE;
    if (end + 1 == len)
        return PROXY_NEED_MORE;
    if (buf[end + 1] != '\n')
        return fail(why, "v1: cr without lf");
    *out = a;
    *consumed = end + 2;
    return PROXY_OK;
}

/* ---- v2: the signature, then version and command, family, length ---- */

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The TLVs of buf[off..total), of which buf[0..avail) has arrived: each
 * one's 3-byte header and value must end exactly within total, and a
 * CRC32C TLV (at most one) holds 4 bytes; *crc is the offset of its value,
 * 0 when there is none. A TLV is judged as soon as its header arrives. */
static enum proxy_result v2_tlvs(const unsigned char *buf, size_t avail, size_t off, size_t total,
                                 size_t *crc, const char **why)
{
    *crc = 0;
    while (off < total) {
        if (total - off < 3)
            return fail(why, "v2: truncated tlv");
        if (avail < off + 3)
            return PROXY_NEED_MORE;
        size_t vlen = get16(buf + off + 1);
        if (vlen > total - off - 3)
            return fail(why, "v2: truncated tlv");
        if (buf[off] == V2_TLV_CRC32C) {
            if (vlen != 4)
                return fail(why, "v2: bad crc32c length");
            if (*crc)
                return fail(why, "v2: two crc32c tlvs");
            *crc = off + 3;
        }
        off += 3 + vlen;
    }
    return PROXY_OK;
}

/* The checksum of buf[0..total) with the 4 bytes at crc taken as zeros. */
static bool v2_crc_ok(const unsigned char *buf, size_t total, size_t crc)
{
    static const unsigned char zeros[4];
    uint32_t c = crc32c_update(0xffffffffu, buf, crc);
    c = crc32c_update(c, zeros, 4);
    c = crc32c_update(c, buf + crc + 4, total - crc - 4);
    return ~c == get32(buf + crc);
}

static void v2_addrs(const unsigned char *block, int fam, struct proxy_addr *a)
{
    if (fam == V2_FAM_TCP4) {
        struct sockaddr_in *s = (struct sockaddr_in *)&a->src, *d = (struct sockaddr_in *)&a->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, block, 4);
        memcpy(&d->sin_addr, block + 4, 4);
        memcpy(&s->sin_port, block + 8, 2);
        memcpy(&d->sin_port, block + 10, 2);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&a->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, block, 16);
        memcpy(&d->sin6_addr, block + 16, 16);
        memcpy(&s->sin6_port, block + 32, 2);
        memcpy(&d->sin6_port, block + 34, 2);
    }
}

/* buf starts with the 12-byte signature. Each fixed byte is judged as it
 * arrives; TCP over IPv4 and IPv6 carry addresses, UNSPEC and UNIX stream
 * are taken as LOCAL (lb routes on IP only), UDP has no place on a TCP
 * connection. */
static enum proxy_result v2_parse(const unsigned char *buf, size_t len, struct proxy_addr *out,
                                  size_t *consumed, const char **why)
{
    if (len < 13)
        return PROXY_NEED_MORE;
    if (buf[12] >> 4 != V2_VERSION)
        return fail(why, "v2: bad version");
    int cmd = buf[12] & 0x0f;
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return fail(why, "v2: bad command");
    if (len < 14)
        return PROXY_NEED_MORE;
    if (cmd == V2_CMD_LOCAL) {
        /* The spec: a LOCAL header (the proxy in front checking us) keeps
         * the connection's own addresses, and its family and block are
         * ignored, whatever they hold. Only its length counts. */
        if (len < V2_FIXED_LEN)
            return PROXY_NEED_MORE;
        size_t total = V2_FIXED_LEN + (size_t)get16(buf + 14);
        if (total > PROXY_HEADER_MAX)
            return fail(why, "v2: header too long");
        if (len < total)
            return PROXY_NEED_MORE;
        *out = (struct proxy_addr){.local = true, .version = 2};
        *consumed = total;
        return PROXY_OK;
    }
    int fam = buf[13];
    size_t addr_len;
    switch (fam) {
    case V2_FAM_UNSPEC:
        addr_len = 0;
        break;
    case V2_FAM_TCP4:
        addr_len = V2_ADDR4_LEN;
        break;
    case V2_FAM_TCP6:
        addr_len = V2_ADDR6_LEN;
        break;
    case V2_FAM_UNIX:
        addr_len = V2_ADDRUN_LEN;
        break;
    case 0x12:
    case 0x22:
    case 0x32:
        return fail(why, "v2: udp family");
    default:
        return fail(why, "v2: bad family");
    }
    if (len < V2_FIXED_LEN)
        return PROXY_NEED_MORE;
    size_t total = V2_FIXED_LEN + (size_t)get16(buf + 14);
    if (total > PROXY_HEADER_MAX)
        return fail(why, "v2: header too long");
    if (total < V2_FIXED_LEN + addr_len)
        return fail(why, "v2: address block too short");
    size_t crc;
    size_t avail = len < total ? len : total;
    enum proxy_result r = v2_tlvs(buf, avail, V2_FIXED_LEN + addr_len, total, &crc, why);
    if (r != PROXY_OK)
        return r;
    if (len < total)
        return PROXY_NEED_MORE;
    if (crc && !v2_crc_ok(buf, total, crc))
        return fail(why, "v2: crc32c mismatch");
    struct proxy_addr a = {.version = 2};
    a.local = fam == V2_FAM_UNSPEC || fam == V2_FAM_UNIX;
    if (!a.local)
        v2_addrs(buf + V2_FIXED_LEN, fam, &a);
    *out = a;
    *consumed = total;
    return PROXY_OK;
}

/* ---- the entry points ---- */

/* true when p[0..len) agrees with sig as far as both go. */
static bool prefix_of(const unsigned char *p, size_t len, const void *sig, size_t sig_len)
{
    return memcmp(p, sig, len < sig_len ? len : sig_len) == 0;
}

enum proxy_result proxy_parse(const void *buf, size_t len, struct proxy_addr *out, size_t *consumed,
                              const char **why)
{
    const unsigned char *p = buf;
    if (len == 0)
        return PROXY_NEED_MORE;
    if (p[0] == 'P') {
        if (!prefix_of(p, len, V1_SIG, V1_SIG_LEN))
            return fail(why, "not a proxy protocol header");
        return len < V1_SIG_LEN ? PROXY_NEED_MORE : v1_parse(p, len, out, consumed, why);
    }
    if (p[0] == v2_sig[0]) {
        if (!prefix_of(p, len, v2_sig, sizeof(v2_sig)))
            return fail(why, "not a proxy protocol header");
        return len < sizeof(v2_sig) ? PROXY_NEED_MORE : v2_parse(p, len, out, consumed, why);
    }
    return fail(why, "not a proxy protocol header");
}

/* The pair of addresses a header carries for src and dst, both AF_INET or
 * both AF_INET6 (see proxy_write_v1()'s contract); false when the header
 * must be the LOCAL one. */
static bool header_addrs(const struct sockaddr *src, const struct sockaddr *dst,
                         struct sockaddr_storage *s, struct sockaddr_storage *d)
{
    const struct sockaddr *in[2] = {src, dst};
    struct sockaddr_storage *ss[2] = {s, d};
    for (int i = 0; i < 2; i++) {
        memset(ss[i], 0, sizeof(*ss[i]));
        if (!in[i])
            return false;
        if (in[i]->sa_family == AF_INET) {
            memcpy(ss[i], in[i], sizeof(struct sockaddr_in));
        } else if (in[i]->sa_family == AF_INET6) {
            struct sockaddr_in6 six;
            memcpy(&six, in[i], sizeof(six));
            if (IN6_IS_ADDR_V4MAPPED(&six.sin6_addr)) {
                struct sockaddr_in *sin = (struct sockaddr_in *)ss[i];
                sin->sin_family = AF_INET;
                sin->sin_port = six.sin6_port;
                memcpy(&sin->sin_addr, &six.sin6_addr.s6_addr[12], 4);
            } else {
                memcpy(ss[i], &six, sizeof(six));
            }
        } else {
            return false;
        }
    }
    if (s->ss_family == d->ss_family)
        return true;
    /* One of each: the IPv4 one becomes ::ffff:a.b.c.d. */
    struct sockaddr_storage *four = s->ss_family == AF_INET ? s : d;
    struct sockaddr_in sin;
    memcpy(&sin, four, sizeof(sin));
    struct sockaddr_in6 *six = (struct sockaddr_in6 *)four;
    memset(four, 0, sizeof(*four));
    six->sin6_family = AF_INET6;
    six->sin6_port = sin.sin_port;
    six->sin6_addr.s6_addr[10] = six->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&six->sin6_addr.s6_addr[12], &sin.sin_addr, 4);
    return true;
}

static size_t put(void *buf, size_t cap, const void *bytes, size_t len)
{
    if (len > cap)
        return 0;
    memcpy(buf, bytes, len);
    return len;
}

size_t proxy_write_local(int version, void *buf, size_t cap)
{
    if (version == 1)
        return put(buf, cap, V1_LOCAL, sizeof(V1_LOCAL) - 1);
    if (version != 2)
        return 0;
    unsigned char h[V2_FIXED_LEN];
    memcpy(h, v2_sig, sizeof(v2_sig));
    h[12] = V2_VERSION << 4 | V2_CMD_LOCAL;
    h[13] = V2_FAM_UNSPEC;
    h[14] = h[15] = 0;
    return put(buf, cap, h, sizeof(h));
}

size_t proxy_write_v1(void *buf, size_t cap, const struct sockaddr *src, const struct sockaddr *dst)
{
    struct sockaddr_storage s, d;
    if (!header_addrs(src, dst, &s, &d))
        return proxy_write_local(1, buf, cap);
    char line[PROXY_V1_MAX + 1], sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
    unsigned sport, dport;
    const char *proto;
    if (s.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (struct sockaddr_in *)&s, *d4 = (struct sockaddr_in *)&d;
        inet_ntop(AF_INET, &s4->sin_addr, sa, sizeof(sa));
        inet_ntop(AF_INET, &d4->sin_addr, da, sizeof(da));
        sport = ntohs(s4->sin_port);
        dport = ntohs(d4->sin_port);
        proto = "TCP4";
    } else {
        const struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&s;
        const struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&d;
        inet_ntop(AF_INET6, &s6->sin6_addr, sa, sizeof(sa));
        inet_ntop(AF_INET6, &d6->sin6_addr, da, sizeof(da));
        sport = ntohs(s6->sin6_port);
        dport = ntohs(d6->sin6_port);
        proto = "TCP6";
    }
    /* At most 104 bytes: inet_ntop writes an IPv6 address in 39 or fewer. */
    int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", proto, sa, da, sport, dport);
    if (n < 0 || (size_t)n >= sizeof(line))
        return 0;
    return put(buf, cap, line, (size_t)n);
}

size_t proxy_write_v2(void *buf, size_t cap, const struct sockaddr *src, const struct sockaddr *dst)
{
    struct sockaddr_storage s, d;
    if (!header_addrs(src, dst, &s, &d))
        return proxy_write_local(2, buf, cap);
    unsigned char h[V2_FIXED_LEN + V2_ADDR6_LEN];
    size_t addr_len;
    memcpy(h, v2_sig, sizeof(v2_sig));
    h[12] = V2_VERSION << 4 | V2_CMD_PROXY;
    unsigned char *block = h + V2_FIXED_LEN;
    if (s.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (struct sockaddr_in *)&s, *d4 = (struct sockaddr_in *)&d;
        h[13] = V2_FAM_TCP4;
        addr_len = V2_ADDR4_LEN;
        memcpy(block, &s4->sin_addr, 4);
        memcpy(block + 4, &d4->sin_addr, 4);
        memcpy(block + 8, &s4->sin_port, 2);
        memcpy(block + 10, &d4->sin_port, 2);
    } else {
        const struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&s;
        const struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&d;
        h[13] = V2_FAM_TCP6;
        addr_len = V2_ADDR6_LEN;
        memcpy(block, &s6->sin6_addr, 16);
        memcpy(block + 16, &d6->sin6_addr, 16);
        memcpy(block + 32, &s6->sin6_port, 2);
        memcpy(block + 34, &d6->sin6_port, 2);
    }
    h[14] = 0;
    h[15] = (unsigned char)addr_len;
    return put(buf, cap, h, V2_FIXED_LEN + addr_len);
}
