/* test_dns_answer: the DNS answer parser (lb/proto/dns_answer.h) on
 * messages built here byte by byte: A, AAAA, CNAME chains and loops, SRV
 * with and without additional records, NXDOMAIN, every truncation of a
 * good message, bad pointers and labels, the 512-backend cap, and
 * dns_answer_finish()'s merge and SRV weight mapping. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tests/test.h"
#include "lb/proto/dns_answer.h"

/* A message under construction. */
struct msg {
    unsigned char b[65536];
    size_t n;
};

static void put8(struct msg *m, unsigned v)
{
    m->b[m->n++] = (unsigned char)v;
}

static void put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void put32(struct msg *m, unsigned v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

/* "web.test" as labels and a 0. */
static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (unsigned)len);
        memcpy(m->b + m->n, name, len);
        m->n += len;
        name += len + (dot ? 1 : 0);
    }
    put8(m, 0);
}

/* The header (QR set, RCODE rcode) and one question. */
static void start(struct msg *m, unsigned rcode, unsigned an, unsigned ns, unsigned ar,
                  const char *qname, unsigned qtype)
{
    m->n = 0;
    put16(m, 0x1234);
    put16(m, 0x8180 | rcode);
    put16(m, 1);
    put16(m, an);
    put16(m, ns);
    put16(m, ar);
    put_name(m, qname);
    put16(m, qtype);
    put16(m, 1);
}

/* A record head with owner name as a pointer to offset ptr (0: written
 * out as NAME). */
static void rr_head(struct msg *m, const char *name, unsigned ptr, unsigned type, unsigned ttl,
                    unsigned rdlen)
{
    if (ptr)
        put16(m, 0xc000 | ptr);
    else
        put_name(m, name);
    put16(m, type);
    put16(m, 1);
    put32(m, ttl);
    put16(m, rdlen);
}

static void rr_a(struct msg *m, const char *name, unsigned ptr, unsigned ttl, const char *ip)
{
    struct in_addr a;
    inet_pton(AF_INET, ip, &a);
    rr_head(m, name, ptr, DNS_TYPE_A, ttl, 4);
    memcpy(m->b + m->n, &a, 4);
    m->n += 4;
}

static void rr_aaaa(struct msg *m, const char *name, unsigned ttl, const char *ip)
{
    struct in6_addr a;
    inet_pton(AF_INET6, ip, &a);
    rr_head(m, name, 0, DNS_TYPE_AAAA, ttl, 16);
    memcpy(m->b + m->n, &a, 16);
    m->n += 16;
}

static size_t name_len(const char *name)
{
    return *name ? strlen(name) + 2 : 1;
}

static void rr_cname(struct msg *m, const char *name, unsigned ttl, const char *target)
{
    rr_head(m, name, 0, DNS_TYPE_CNAME, ttl, (unsigned)name_len(target));
    put_name(m, target);
}

static void rr_srv(struct msg *m, const char *name, unsigned ttl, unsigned prio, unsigned weight,
                   unsigned port, const char *target)
{
    rr_head(m, name, 0, DNS_TYPE_SRV, ttl, (unsigned)(6 + name_len(target)));
    put16(m, prio);
    put16(m, weight);
    put16(m, port);
    put_name(m, target);
}

/* "1.2.3.4:80 w1 p0" for backend i. */
static const char *backend_text(const struct dns_answer *a, size_t i, char *buf, size_t cap)
{
    const struct dns_backend *b = &a->backends[i];
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (b->addr.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)&b->addr;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
        port = ntohs(s->sin_port);
        ck_assert_uint_eq(b->addrlen, sizeof(*s));
    } else {
        const struct sockaddr_in6 *s = (const void *)&b->addr;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
        port = ntohs(s->sin6_port);
        ck_assert_uint_eq(b->addrlen, sizeof(*s));
    }
    snprintf(buf, cap, "%s:%u w%u p%u", host, port, b->weight, b->priority);
    return buf;
}

/* All backends as "a, b, c". */
static const char *all_text(const struct dns_answer *a)
{
    static char out[8192];
    char one[128];
    out[0] = '\0';
    for (size_t i = 0; i < a->nbackends; i++) {
        if (i)
            strcat(out, ", ");
        strcat(out, backend_text(a, i, one, sizeof(one)));
    }
    return out;
}

static void parse_ok(const struct msg *m, unsigned qtype, struct dns_answer *a)
{
    const char *why = NULL;
    int rc = dns_answer_parse(m->b, m->n, qtype, 8080, 5, a, &why);
    ck_assert_msg(rc == 0, "parse failed: %s", why ? why : "?");
}

static void parse_bad(const struct msg *m, unsigned qtype, const char *want)
{
    struct dns_answer a;
    const char *why = NULL;
    ck_assert_int_eq(dns_answer_parse(m->b, m->n, qtype, 8080, 5, &a, &why), -1);
    ck_assert_str_eq(why, want);
    dns_answer_free(&a);
}

START_TEST(test_a_records)
{
    static struct msg m;
    struct dns_answer a;
    start(&m, 0, 3, 0, 0, "Web.Test", DNS_TYPE_A);
    rr_a(&m, NULL, 12, 30, "10.0.0.3"); /* owner: a pointer to the question's name */
    rr_a(&m, "web.test", 0, 10, "10.0.0.1");
    rr_a(&m, "WEB.test", 0, 20, "10.0.0.2");
    parse_ok(&m, DNS_TYPE_A, &a);
    ck_assert_uint_eq(a.rcode, 0);
    ck_assert_uint_eq(a.nrecords, 3);
    ck_assert_uint_eq(a.ttl, 10);
    dns_answer_finish(&a, 0);
    ck_assert_str_eq(all_text(&a), "10.0.0.1:8080 w5 p0, 10.0.0.2:8080 w5 p0, 10.0.0.3:8080 w5 p0");
    dns_answer_free(&a);
}
END_TEST

START_TEST(test_aaaa_and_other_records_ignored)
{
    static struct msg m;
    struct dns_answer a;
    start(&m, 0, 3, 0, 1, "web.test", DNS_TYPE_AAAA);
    rr_aaaa(&m, "web.test", 60, "fd00::2");
    rr_a(&m, "web.test", 0, 60, "10.0.0.1"); /* not the type asked */
    rr_aaaa(&m, "other.test", 60, "fd00::9");
    /* A record of class CH: ignored. */
    put_name(&m, "web.test");
    put16(&m, DNS_TYPE_AAAA);
    put16(&m, 3);
    put32(&m, 60);
    put16(&m, 16);
    memset(m.b + m.n, 1, 16);
    m.n += 16;
    parse_ok(&m, DNS_TYPE_AAAA, &a);
    dns_answer_finish(&a, 0);
    ck_assert_str_eq(all_text(&a), "fd00::2:8080 w5 p0");
    ck_assert_uint_eq(a.nrecords, 1);
    dns_answer_free(&a);
}
END_TEST

START_TEST(test_cname_chain_loop_and_nxdomain)
{
    static struct msg m;
    struct dns_answer a;
    start(&m, 0, 3, 0, 0, "www.test", DNS_TYPE_A);
    rr_cname(&m, "www.test", 5, "web.test");
    rr_cname(&m, "web.test", 100, "real.test");
    rr_a(&m, "real.test", 0, 50, "10.0.0.7");
    parse_ok(&m, DNS_TYPE_A, &a);
    ck_assert_str_eq(all_text(&a), "10.0.0.7:8080 w5 p0");
    ck_assert_uint_eq(a.ttl, 5); /* the CNAME's counts */
    dns_answer_free(&a);

    start(&m, 0, 3, 0, 0, "a.test", DNS_TYPE_A);
    rr_cname(&m, "a.test", 5, "b.test");
    rr_cname(&m, "b.test", 5, "a.test");
    rr_a(&m, "c.test", 0, 5, "10.0.0.7");
    parse_ok(&m, DNS_TYPE_A, &a); /* a loop: no records, no error */
    ck_assert_uint_eq(a.nrecords, 0);
    ck_assert_uint_eq(a.nbackends, 0);
    ck_assert_uint_eq(a.ttl, 0);
    dns_answer_free(&a);

    start(&m, 3, 0, 0, 0, "nosuch.test", DNS_TYPE_A);
    parse_ok(&m, DNS_TYPE_A, &a);
    ck_assert_uint_eq(a.rcode, 3);
    ck_assert_uint_eq(a.nrecords, 0);
    dns_answer_free(&a);
}
END_TEST

START_TEST(test_srv)
{
    static struct msg m;
    struct dns_answer a;
    start(&m, 0, 4, 0, 3, "_web._tcp.test", DNS_TYPE_SRV);
    rr_srv(&m, "_web._tcp.test", 30, 10, 3, 9001, "b1.test");
    rr_srv(&m, "_web._tcp.test", 30, 20, 1, 9003, "B3.test");
    rr_srv(&m, "_web._tcp.test", 20, 10, 1, 9002, "b2.test");
    rr_srv(&m, "_web._tcp.test", 30, 0, 0, 0, ""); /* "." : skipped */
    rr_a(&m, "b1.test", 0, 40, "10.0.0.1");
    rr_aaaa(&m, "b1.test", 40, "fd00::1");
    rr_a(&m, "b3.test", 0, 5, "10.0.0.3");
    parse_ok(&m, DNS_TYPE_SRV, &a);
    ck_assert_uint_eq(a.nrecords, 4);
    ck_assert_uint_eq(a.ttl, 5);
    ck_assert_uint_eq(a.ntargets, 1);
    ck_assert_str_eq(a.targets[0].name, "b2.test");
    ck_assert_uint_eq(a.targets[0].port, 9002);
    ck_assert_uint_eq(a.targets[0].weight, 1);
    ck_assert_uint_eq(a.targets[0].priority, 10);
    dns_answer_finish(&a, 1);
    ck_assert_str_eq(all_text(&a),
                     "10.0.0.1:9001 w3 p10, 10.0.0.3:9003 w1 p20, fd00::1:9001 w3 p10");
    dns_answer_free(&a);
}
END_TEST

START_TEST(test_every_truncation_fails)
{
    static struct msg m, cut;
    start(&m, 0, 2, 0, 1, "_web._tcp.test", DNS_TYPE_SRV);
    rr_srv(&m, "_web._tcp.test", 30, 10, 3, 9001, "b1.test");
    rr_srv(&m, "_web._tcp.test", 30, 10, 3, 9002, "b2.test");
    rr_a(&m, "b1.test", 0, 40, "10.0.0.1");
    for (size_t len = 0; len < m.n; len++) {
        struct dns_answer a;
        const char *why = NULL;
        memcpy(cut.b, m.b, len);
        cut.n = len;
        int rc = dns_answer_parse(cut.b, cut.n, DNS_TYPE_SRV, 0, 1, &a, &why);
        if (rc != -1)
            ck_abort_msg("a message cut at %zu of %zu parsed", len, m.n);
        dns_answer_free(&a);
    }
}
END_TEST

START_TEST(test_malformed)
{
    static struct msg m;
    /* A pointer forward (to itself). */
    start(&m, 0, 1, 0, 0, "web.test", DNS_TYPE_A);
    size_t at = m.n;
    rr_a(&m, NULL, (unsigned)at, 30, "10.0.0.1");
    parse_bad(&m, DNS_TYPE_A, "bad compression pointer");
    /* A label of 64. */
    start(&m, 0, 0, 0, 0, "web.test", DNS_TYPE_A);
    m.n = 12;
    put8(&m, 64);
    memset(m.b + m.n, 'a', 64);
    m.n += 64;
    put8(&m, 0);
    put16(&m, 1);
    put16(&m, 1);
    parse_bad(&m, DNS_TYPE_A, "bad label type");
    /* An A record of 5 bytes. */
    start(&m, 0, 1, 0, 0, "web.test", DNS_TYPE_A);
    rr_head(&m, "web.test", 0, DNS_TYPE_A, 30, 5);
    memset(m.b + m.n, 1, 5);
    m.n += 5;
    parse_bad(&m, DNS_TYPE_A, "bad A record");
    /* Not a response; another type than asked; counts too large. */
    start(&m, 0, 0, 0, 0, "web.test", DNS_TYPE_A);
    m.b[2] &= 0x7f;
    parse_bad(&m, DNS_TYPE_A, "not a response");
    start(&m, 0, 0, 0, 0, "web.test", DNS_TYPE_A);
    parse_bad(&m, DNS_TYPE_SRV, "question does not match");
    start(&m, 0, 60000, 0, 0, "web.test", DNS_TYPE_A);
    parse_bad(&m, DNS_TYPE_A, "message truncated");
    /* A name over 255 bytes on the wire. */
    start(&m, 0, 0, 0, 0, "web.test", DNS_TYPE_A);
    m.n = 12;
    for (int i = 0; i < 5; i++) {
        put8(&m, 60);
        memset(m.b + m.n, 'a', 60);
        m.n += 60;
    }
    put8(&m, 0);
    put16(&m, 1);
    put16(&m, 1);
    parse_bad(&m, DNS_TYPE_A, "name too long");
}
END_TEST

START_TEST(test_cap_and_finish)
{
    static struct msg m;
    struct dns_answer a;
    start(&m, 0, 600, 0, 0, "big.test", DNS_TYPE_A);
    for (unsigned i = 0; i < 600; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.0.%u.%u", i / 256, i % 256);
        rr_a(&m, NULL, 12, 30, ip);
    }
    parse_ok(&m, DNS_TYPE_A, &a);
    ck_assert_uint_eq(a.nbackends, DNS_BACKENDS_MAX);
    ck_assert_uint_eq(a.dropped, 600 - DNS_BACKENDS_MAX);
    dns_answer_free(&a);

    /* Duplicates merge: the lowest priority, then the largest weight. */
    memset(&a, 0, sizeof(a));
    struct sockaddr_in s = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.0.0.1", &s.sin_addr);
    dns_answer_add(&a, (struct sockaddr *)&s, 80, 7, 20);
    dns_answer_add(&a, (struct sockaddr *)&s, 80, 2, 10);
    dns_answer_add(&a, (struct sockaddr *)&s, 80, 4, 10);
    dns_answer_add(&a, (struct sockaddr *)&s, 81, 0, 10);
    dns_answer_finish(&a, 1);
    ck_assert_str_eq(all_text(&a), "10.0.0.1:80 w4 p10, 10.0.0.1:81 w1 p10");
    dns_answer_free(&a);

    /* Weights above 256: scaled, at least 1. */
    memset(&a, 0, sizeof(a));
    dns_answer_add(&a, (struct sockaddr *)&s, 1, 1000, 0);
    dns_answer_add(&a, (struct sockaddr *)&s, 2, 10, 0);
    dns_answer_add(&a, (struct sockaddr *)&s, 3, 1, 0);
    dns_answer_finish(&a, 1);
    ck_assert_str_eq(all_text(&a), "10.0.0.1:1 w256 p0, 10.0.0.1:2 w2 p0, 10.0.0.1:3 w1 p0");
    dns_answer_free(&a);
}
END_TEST

static Suite *dns_answer_suite(void)
{
    Suite *s = suite_create("dns_answer");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_a_records);
    tcase_add_test(tc, test_aaaa_and_other_records_ignored);
    tcase_add_test(tc, test_cname_chain_loop_and_nxdomain);
    tcase_add_test(tc, test_srv);
    tcase_add_test(tc, test_every_truncation_fails);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_cap_and_finish);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(dns_answer_suite)
