/* harness/pki: test certificates made at run time with the openssl command
 * line tool (Debian's openssl package), so no private key is committed. A
 * harness_pki is a fresh CA in a directory of its own; each
 * harness_pki_issue writes one certificate and its key there. Every openssl
 * run appends its command and output to DIR/openssl.log, and one that exits
 * non-zero fails the test (ck_abort_msg with the command and the log's
 * tail). EC P-256 keys by default: a CA and a few certificates take a few
 * tens of milliseconds. */
#ifndef LB_TESTS_HARNESS_PKI_H
#define LB_TESTS_HARNESS_PKI_H

#include <stdbool.h>

#define HARNESS_PKI_PATH 256

struct harness_pki {
    char dir[200];                   /* the CA's directory; "" once freed */
    char ca_cert[HARNESS_PKI_PATH];  /* DIR/ca.pem: the root, self-signed, CN "lb test CA" */
    char ca_key[HARNESS_PKI_PATH];   /* DIR/ca.key */
    char int_cert[HARNESS_PKI_PATH]; /* DIR/int.pem, the intermediate (made on first use) */
    char int_key[HARNESS_PKI_PATH];  /* DIR/int.key */
    char log[HARNESS_PKI_PATH];      /* DIR/openssl.log */
    char cnf[HARNESS_PKI_PATH];      /* DIR/ca.cnf, the config of `openssl ca` */
    bool has_int;                    /* int_cert exists */
};

/* Makes a fresh CA (EC P-256 key, CN "lb test CA", valid from a day ago
 * for ten years) in a new directory: under the test's temp dir when
 * harness_setup ran (teardown removes it with the temp dir), else under
 * /tmp (then harness_pki_free must remove it). */
void harness_pki_init(struct harness_pki *p);

/* What harness_pki_issue makes. Zero fields are the defaults. */
struct harness_cert_opts {
    const char *cn;      /* subject CN; NULL: the name given to harness_pki_issue */
    const char *sans;    /* subjectAltName, comma-separated: "a.test,*.b.test,IP:127.0.0.1"
                          * (DNS unless prefixed IP:); NULL: no subjectAltName */
    int not_before_days; /* notBefore is now + this many days, less a minute (0: valid now) */
    int not_after_days;  /* notAfter is now + this many days exactly (0: 365; -1: expired) */
    bool rsa;            /* an RSA 2048 key instead of EC P-256 */
    bool intermediate;   /* signed by the intermediate CA (made on first use), which then
                          * follows the certificate in the .pem */
};

/* Issues the certificate NAME (a leaf: CA:FALSE, serverAuth and clientAuth)
 * signed by the root, or by the intermediate with o->intermediate. Writes
 * DIR/NAME.pem (the certificate, then the intermediate's when
 * o->intermediate) and DIR/NAME.key (unencrypted PEM) and returns the .pem
 * path (freed at teardown). o may be NULL (all defaults). Each name once
 * per pki. */
const char *harness_pki_issue(struct harness_pki *p, const char *name,
                              const struct harness_cert_opts *o);

/* The key beside a .pem path harness_pki_issue returned: the same path
 * ending in .key (freed at teardown). */
const char *harness_pki_key(const char *pem);

/* Removes the directory and everything in it; p->dir becomes "". Safe to
 * call twice, and after teardown removed the directory. */
void harness_pki_free(struct harness_pki *p);

#endif
