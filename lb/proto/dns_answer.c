/* dns_answer: a DNS response turned into backends (dns_answer.h). Names
 * are read into text with their compression pointers followed strictly
 * backwards, so a message cannot make the reader loop. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/proto/dns_answer.h"

#define DNS_HEADER 12
#define DNS_CLASS_IN 1
/* A name on the wire, its length bytes and labels, is at most 255. */
#define DNS_WIRE_NAME_MAX 255

/* One record of the answer or additional section, its name as text. */
struct rr {
    char name[DNS_NAME_MAX + 2];
    unsigned type, klass;
    uint32_t ttl;
    size_t rdata, rdlen; /* offset and length in the message */
};

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Reads the name at *off into out (lower case, labels joined by '.', ""
 * for the root) and moves *off past it (past its first pointer, if any).
 * 0, or -1 with *why. */
static int read_name(const unsigned char *msg, size_t len, size_t *off, char *out, const char **why)
{
    size_t pos = *off, n = 0, wire = 0, bound = *off;
    int jumped = 0;
    for (;;) {
        if (pos >= len) {
            *why = "message truncated";
            return -1;
        }
        unsigned c = msg[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len) {
                *why = "message truncated";
                return -1;
            }
            size_t to = (size_t)(c & 0x3f) << 8 | msg[pos + 1];
            /* Strictly backwards from where this part of the name began:
             * each jump lands earlier, so the walk ends. */
            if (to >= bound) {
                *why = "bad compression pointer";
                return -1;
            }
            if (!jumped)
                *off = pos + 2;
            jumped = 1;
            bound = to;
            pos = to;
            continue;
        }
        if (c & 0xc0) {
            *why = "bad label type";
            return -1;
        }
        if (c == 0) {
            if (!jumped)
                *off = pos + 1;
            out[n] = '\0';
            return 0;
        }
        wire += c + 1;
        if (wire + 1 > DNS_WIRE_NAME_MAX) {
            *why = "name too long";
            return -1;
        }
        if (pos + 1 + c > len) {
            *why = "message truncated";
            return -1;
        }
        if (n > 0)
            out[n++] = '.';
        for (unsigned i = 0; i < c; i++) {
            unsigned char ch = msg[pos + 1 + i];
            if (ch >= 'A' && ch <= 'Z')
                ch = (unsigned char)(ch - 'A' + 'a');
            /* Printable, and no '.' inside a label: the text form must
             * say the same name. */
            if (ch <= 0x20 || ch >= 0x7f || ch == '.') {
                *why = "bad name";
                return -1;
            }
            out[n++] = (char)ch;
        }
        pos += 1 + c;
    }
}

static int read_rr(const unsigned char *msg, size_t len, size_t *off, struct rr *rr,
                   const char **why)
{
    if (read_name(msg, len, off, rr->name, why) < 0)
        return -1;
    if (*off + 10 > len) {
        *why = "message truncated";
        return -1;
    }
    const unsigned char *p = msg + *off;
    rr->type = get16(p);
    rr->klass = get16(p + 2);
    rr->ttl = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    rr->rdlen = get16(p + 8);
    rr->rdata = *off + 10;
    if (rr->rdata + rr->rdlen > len) {
        *why = "message truncated";
        return -1;
    }
    *off = rr->rdata + rr->rdlen;
    /* RFC 2181 8: a TTL with the top bit set is taken as 0. */
    if (rr->ttl > 0x7fffffffu)
        rr->ttl = 0;
    return 0;
}

static void use_ttl(struct dns_answer *a, uint32_t ttl)
{
    if (a->ttl_set == 0 || ttl < a->ttl)
        a->ttl = ttl;
    a->ttl_set = 1;
}

int dns_answer_add(struct dns_answer *a, const struct sockaddr *sa, unsigned short port,
                   unsigned weight, unsigned priority)
{
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return 0;
    if (a->nbackends >= DNS_BACKENDS_MAX) {
        a->dropped++;
        return 0;
    }
    if (a->nbackends == a->backends_cap) {
        size_t cap = a->backends_cap ? a->backends_cap * 2 : 8;
        if (cap > DNS_BACKENDS_MAX)
            cap = DNS_BACKENDS_MAX;
        struct dns_backend *v = realloc(a->backends, cap * sizeof(*v));
        if (!v)
            return -1;
        a->backends = v;
        a->backends_cap = cap;
    }
    struct dns_backend *b = &a->backends[a->nbackends++];
    memset(b, 0, sizeof(*b));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&b->addr;
        memcpy(s4, sa, sizeof(*s4));
        s4->sin_port = htons(port);
        b->addrlen = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&b->addr;
        memcpy(s6, sa, sizeof(*s6));
        s6->sin6_port = htons(port);
        b->addrlen = sizeof(*s6);
    }
    b->weight = weight;
    b->priority = priority;
    return 0;
}

/* Adds the address in rr (an A or AAAA record). 0, or -1 with *why. */
static int add_address(struct dns_answer *a, const unsigned char *msg, const struct rr *rr,
                       unsigned short port, unsigned weight, unsigned priority, const char **why)
{
    if (rr->type == DNS_TYPE_A) {
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        if (rr->rdlen != 4) {
            *why = "bad A record";
            return -1;
        }
        memcpy(&s4.sin_addr, msg + rr->rdata, 4);
        if (dns_answer_add(a, (struct sockaddr *)&s4, port, weight, priority) < 0) {
            *why = "out of memory";
            return -1;
        }
    } else {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
        if (rr->rdlen != 16) {
            *why = "bad AAAA record";
            return -1;
        }
        memcpy(&s6.sin6_addr, msg + rr->rdata, 16);
        if (dns_answer_add(a, (struct sockaddr *)&s6, port, weight, priority) < 0) {
            *why = "out of memory";
            return -1;
        }
    }
    return 0;
}

static int is_address(unsigned type)
{
    return type == DNS_TYPE_A || type == DNS_TYPE_AAAA;
}

/* The name NAME stands for after the CNAMEs of the records (at most
 * DNS_CNAME_MAX followed): copied into out. 0, or -1 with *why for a bad
 * CNAME. */
static int follow_cnames(struct dns_answer *a, const unsigned char *msg, size_t len,
                         const struct rr *rrs, size_t n, const char *name, char *out,
                         const char **why)
{
    strcpy(out, name);
    for (unsigned hops = 0; hops < DNS_CNAME_MAX; hops++) {
        size_t i;
        for (i = 0; i < n; i++)
            if (rrs[i].type == DNS_TYPE_CNAME && rrs[i].klass == DNS_CLASS_IN &&
                strcmp(rrs[i].name, out) == 0)
                break;
        if (i == n)
            return 0;
        size_t off = rrs[i].rdata;
        char target[DNS_NAME_MAX + 2];
        if (read_name(msg, len, &off, target, why) < 0 || off != rrs[i].rdata + rrs[i].rdlen) {
            *why = "bad CNAME record";
            return -1;
        }
        use_ttl(a, rrs[i].ttl);
        strcpy(out, target);
    }
    return 0; /* a longer chain (or a loop): what it reached has no records */
}

static int name_cmp(const void *x, const void *y)
{
    const struct rr *a = *(const struct rr *const *)x, *b = *(const struct rr *const *)y;
    return strcmp(a->name, b->name);
}

/* The SRV records of name: targets; their addresses come from the
 * address records (sorted by name for an O(log n) lookup each). */
static int expand_srv(struct dns_answer *a, const unsigned char *msg, size_t len,
                      const struct rr *rrs, size_t n, const char *name, const char **why)
{
    const struct rr **addrs = malloc((n ? n : 1) * sizeof(*addrs));
    size_t naddrs = 0;
    int rc = -1;
    if (!addrs) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (is_address(rrs[i].type) && rrs[i].klass == DNS_CLASS_IN)
            addrs[naddrs++] = &rrs[i];
    qsort(addrs, naddrs, sizeof(*addrs), name_cmp);
    for (size_t i = 0; i < n; i++) {
        const struct rr *rr = &rrs[i];
        if (rr->type != DNS_TYPE_SRV || rr->klass != DNS_CLASS_IN || strcmp(rr->name, name) != 0)
            continue;
        if (rr->rdlen < 7) {
            *why = "bad SRV record";
            goto out;
        }
        const unsigned char *p = msg + rr->rdata;
        unsigned priority = get16(p), weight = get16(p + 2), port = get16(p + 4);
        size_t off = rr->rdata + 6;
        struct rr key;
        if (read_name(msg, len, &off, key.name, why) < 0 || off != rr->rdata + rr->rdlen) {
            *why = "bad SRV record";
            goto out;
        }
        a->nrecords++;
        use_ttl(a, rr->ttl);
        if (key.name[0] == '\0' || port == 0) /* "." : not offered here */
            continue;
        const struct rr *kp = &key, **hit = bsearch(&kp, addrs, naddrs, sizeof(*addrs), name_cmp);
        if (!hit) {
            if (a->ntargets == a->targets_cap) {
                size_t cap = a->targets_cap ? a->targets_cap * 2 : 4;
                struct dns_target *v = realloc(a->targets, cap * sizeof(*v));
                if (!v) {
                    *why = "out of memory";
                    goto out;
                }
                a->targets = v;
                a->targets_cap = cap;
            }
            struct dns_target *t = &a->targets[a->ntargets++];
            strcpy(t->name, key.name);
            t->port = (unsigned short)port;
            t->weight = weight;
            t->priority = priority;
            continue;
        }
        /* Every address record of the target's name (they sit together). */
        while (hit > addrs && strcmp(hit[-1]->name, key.name) == 0)
            hit--;
        for (; hit < addrs + naddrs && strcmp((*hit)->name, key.name) == 0; hit++) {
            if (add_address(a, msg, *hit, (unsigned short)port, weight, priority, why) < 0)
                goto out;
            use_ttl(a, (*hit)->ttl);
        }
    }
    rc = 0;
out:
    free(addrs);
    return rc;
}

int dns_answer_parse(const unsigned char *msg, size_t len, unsigned qtype, unsigned short port,
                     unsigned weight, struct dns_answer *out, const char **why)
{
    char qname[DNS_NAME_MAX + 2], name[DNS_NAME_MAX + 2];
    struct rr *rrs = NULL;
    size_t off = DNS_HEADER, n = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (len < DNS_HEADER) {
        *why = "message truncated";
        return -1;
    }
    if (!(msg[2] & 0x80)) {
        *why = "not a response";
        return -1;
    }
    out->rcode = msg[3] & 0x0f;
    unsigned qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8), ar = get16(msg + 10);
    if (qd != 1) {
        *why = "question does not match";
        return -1;
    }
    if (read_name(msg, len, &off, qname, why) < 0)
        return -1;
    if (off + 4 > len) {
        *why = "message truncated";
        return -1;
    }
    if (get16(msg + off) != qtype || get16(msg + off + 2) != DNS_CLASS_IN) {
        *why = "question does not match";
        return -1;
    }
    off += 4;
    /* Each record takes at least 11 bytes: counts beyond what the message
     * can hold are refused before anything is allocated for them. */
    size_t total = (size_t)an + ns + ar;
    if (total > (len - off) / 11) {
        *why = "message truncated";
        return -1;
    }
    if (total && !(rrs = malloc(total * sizeof(*rrs)))) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < total; i++) {
        struct rr rr;
        if (read_rr(msg, len, &off, &rr, why) < 0)
            goto out;
        if (i >= an && i < (size_t)an + ns)
            continue; /* authority: nothing lb uses */
        rrs[n++] = rr;
    }
    if (follow_cnames(out, msg, len, rrs, n, qname, name, why) < 0)
        goto out;
    if (qtype == DNS_TYPE_SRV) {
        if (expand_srv(out, msg, len, rrs, n, name, why) < 0)
            goto out;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (rrs[i].type != qtype || rrs[i].klass != DNS_CLASS_IN ||
                strcmp(rrs[i].name, name) != 0)
                continue;
            out->nrecords++;
            if (add_address(out, msg, &rrs[i], port, weight, 0, why) < 0)
                goto out;
            use_ttl(out, rrs[i].ttl);
        }
    }
    if (out->nrecords == 0)
        out->ttl = 0; /* a CNAME alone is no answer to keep */
    rc = 0;
out:
    free(rrs);
    return rc;
}

static int backend_cmp(const void *x, const void *y)
{
    const struct dns_backend *a = x, *b = y;
    if (a->addr.ss_family != b->addr.ss_family)
        return a->addr.ss_family == AF_INET ? -1 : 1;
    int c;
    unsigned pa, pb;
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)&a->addr, *t = (const void *)&b->addr;
        c = memcmp(&s->sin_addr, &t->sin_addr, 4);
        pa = ntohs(s->sin_port);
        pb = ntohs(t->sin_port);
    } else {
        const struct sockaddr_in6 *s = (const void *)&a->addr, *t = (const void *)&b->addr;
        c = memcmp(&s->sin6_addr, &t->sin6_addr, 16);
        pa = ntohs(s->sin6_port);
        pb = ntohs(t->sin6_port);
    }
    if (c)
        return c;
    if (pa != pb)
        return pa < pb ? -1 : 1;
    /* The same address and port: the one to keep first. */
    if (a->priority != b->priority)
        return a->priority < b->priority ? -1 : 1;
    return a->weight > b->weight ? -1 : a->weight < b->weight;
}

void dns_answer_finish(struct dns_answer *a, int srv_weights)
{
    size_t n = 0;
    if (a->nbackends > 1)
        qsort(a->backends, a->nbackends, sizeof(*a->backends), backend_cmp);
    for (size_t i = 0; i < a->nbackends; i++) {
        struct dns_backend *b = &a->backends[i];
        if (n > 0) {
            struct dns_backend *k = &a->backends[n - 1];
            struct dns_backend x = *b, y = *k;
            x.priority = y.priority = 0;
            x.weight = y.weight = 0;
            if (backend_cmp(&x, &y) == 0)
                continue; /* sorted: the kept one came first */
        }
        a->backends[n++] = *b;
    }
    a->nbackends = n;
    if (!srv_weights)
        return;
    unsigned largest = 0;
    for (size_t i = 0; i < n; i++)
        if (a->backends[i].weight > largest)
            largest = a->backends[i].weight;
    for (size_t i = 0; i < n; i++) {
        unsigned w = a->backends[i].weight;
        if (largest > 256)
            w = (unsigned)((uint64_t)w * 256 / largest);
        a->backends[i].weight = w ? w : 1;
    }
}

void dns_answer_free(struct dns_answer *a)
{
    free(a->backends);
    free(a->targets);
    memset(a, 0, sizeof(*a));
}
