/* dns_answer: a DNS response message (RFC 1035) turned into the backends
 * it names, for DNS discovery (lb/discovery.c): A and AAAA records give
 * addresses, SRV records (RFC 2782) give a port, a weight and a priority
 * per target. No sockets and no c-ares: the resolver hands the answer's
 * bytes here, so this file is fuzzed on its own (tests/fuzz/fuzz_dns.c). */
#ifndef LB_PROTO_DNS_ANSWER_H
#define LB_PROTO_DNS_ANSWER_H

#include <stddef.h>
#include <sys/socket.h>

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_SRV 33

/* The most backends one name expands to; records beyond are dropped (and
 * counted in dropped). */
#define DNS_BACKENDS_MAX 512
/* The longest name in text, without the trailing dot (RFC 1035 2.3.4). */
#define DNS_NAME_MAX 253
/* The CNAMEs followed from the question's name before giving up. */
#define DNS_CNAME_MAX 8

struct dns_backend {
    struct sockaddr_storage addr; /* address and port */
    socklen_t addrlen;
    unsigned weight;   /* A/AAAA: the caller's; SRV: the record's, 0..65535 until finish */
    unsigned priority; /* SRV: the record's; 0 for A/AAAA */
};

/* An SRV target the message gave no address for (nothing in the answer or
 * additional section): the caller resolves it and adds its addresses with
 * dns_answer_add(). */
struct dns_target {
    char name[DNS_NAME_MAX + 1]; /* lower-case, no trailing dot */
    unsigned short port;
    unsigned weight, priority;
};

struct dns_answer {
    unsigned rcode;  /* the header's RCODE: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ... */
    unsigned ttl;    /* the lowest TTL of the records used, seconds; 0 when none */
    int ttl_set;     /* a record set ttl */
    size_t nrecords; /* records of the asked type reached from the question's name */
    size_t dropped;  /* backends beyond DNS_BACKENDS_MAX, not kept */
    struct dns_backend *backends;
    size_t nbackends, backends_cap;
    struct dns_target *targets;
    size_t ntargets, targets_cap;
};

/* Parses the response MSG[0..len) to a query of type QTYPE (DNS_TYPE_A,
 * _AAAA or _SRV) into *out, which it first zeroes (free it with
 * dns_answer_free() whatever the result). The name asked is the
 * question's (the message must hold exactly one question, of QTYPE, class
 * IN); answer records are followed from it through at most DNS_CNAME_MAX
 * CNAMEs (names compared without case). A/AAAA: each address of the final
 * name becomes a backend with PORT and WEIGHT, priority 0. SRV: each
 * record of the final name gives a target; its addresses are the A and
 * AAAA records for the target's name in the answer or additional section,
 * each a backend with the record's port, weight and priority; a target
 * with none goes to targets; a target "." (the service is not offered
 * here, RFC 2782), or port 0, is skipped. Label bytes must be printable
 * ASCII other than '.' (so the text names one name); names are compared
 * as lower-case text. Records of other types, of other names,
 * or of class other than IN are ignored; an A record whose data is not 4
 * bytes, an AAAA record not 16, an SRV or CNAME whose target name is bad,
 * are errors. ttl is the lowest TTL among the records used (CNAMEs, the
 * records of QTYPE, the target addresses); 0 when no record of QTYPE was
 * reached. A CNAME chain longer than DNS_CNAME_MAX, or a loop, ends where
 * it got to: no records (not an error).
 * Returns 0 (an empty answer and an RCODE other than 0 included: rcode
 * and nrecords tell), or -1 with a short, static, lower-case reason in
 * *why ("message truncated", "bad name", "pointer loop", "question does
 * not match", ...) for a message that is not a well-formed response: too
 * short, QR bit clear, a name longer than 255 bytes on the wire, a label
 * over 63, a compression pointer that does not point strictly backwards,
 * a record running past the end, counts larger than the records there.
 * Never reads outside MSG; allocates only within DNS_BACKENDS_MAX
 * backends and as many targets as SRV records. */
int dns_answer_parse(const unsigned char *msg, size_t len, unsigned qtype, unsigned short port,
                     unsigned weight, struct dns_answer *out, const char **why);

/* Adds a backend for SA (AF_INET or AF_INET6; its port replaced by PORT)
 * with WEIGHT and PRIORITY; beyond DNS_BACKENDS_MAX it counts in dropped
 * instead. Returns 0, or -1 when out of memory. */
int dns_answer_add(struct dns_answer *a, const struct sockaddr *sa, unsigned short port,
                   unsigned weight, unsigned priority);

/* Puts the backends in their final form: sorted by family, address, then
 * port; duplicates (same address and port) merged into one keeping the
 * lowest priority and, among those, the largest weight. With SRV_WEIGHTS,
 * weights are the records' and are mapped into lb's 1..256: when every
 * weight is at most 256 it is kept (0 becomes 1), else each becomes
 * max(1, weight * 256 / largest). */
void dns_answer_finish(struct dns_answer *a, int srv_weights);

void dns_answer_free(struct dns_answer *a);

#endif
