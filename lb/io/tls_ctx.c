/* tls_ctx: SSL_CTX building and checking (see tls_ctx.h). Each file is
 * opened and parsed here first, so that an error can name the file and
 * say what is wrong with it in words; only then is it given to OpenSSL.
 * SNI: one SSL_CTX per certificate, alike but for the certificate, and a
 * servername callback that moves the SSL to the right one; the default
 * SSL_CTX stays the SSL's session_ctx, so session cache and tickets are
 * the same whatever the certificate. (The other way, one SSL_CTX and
 * SSL_use_cert_and_key in a cert callback, would load each chain into
 * every SSL; SSL_CTX_use_certificate_chain_file builds each SSL_CTX's
 * chain once.) */
#include "lb/io/tls_ctx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* One certificate of a server context, with the names SNI matches. */
struct tls_cert {
    SSL_CTX *ctx;
    char **names; /* lower-case DNS names (or the CN), "*.x" for a wildcard */
    size_t nnames;
};

struct tls_ctx {
    int refs;
    bool server;
    struct tls_cert *certs; /* a server's, certs[0] the default; a client's one SSL_CTX */
    size_t ncerts;
    unsigned char *alpn; /* the server's ALPN list in wire format (length-prefixed names) */
    size_t alpnlen;
    char *server_name; /* a client's, or NULL */
    bool server_name_ip;
    bool verify;
};

/* --- errors --- */

static void put(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void put(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* OpenSSL's reason for the oldest error in its queue, then the queue
 * emptied. */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
    return buf;
}

/* "2020-02-01 00:00:00 UTC" */
static const char *asn1_date(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (!ASN1_TIME_to_tm(t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "(unreadable date)");
    return buf;
}

/* --- files --- */

/* A password callback that gives none: an encrypted key fails to load
 * rather than prompting on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Opens a certificate, key or CA file for reading. Anything but a regular
 * file (a FIFO, a directory) is refused at once: the open does not wait
 * for a FIFO's writer, so a reload on the loop never hangs on one (and the
 * path-based loads that follow each check read a file this let through). */
static FILE *open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        put(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        put(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        put(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

static X509 *read_cert(const char *path, char *err, size_t errlen)
{
    FILE *f = open_file(path, err, errlen);
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, no_password, NULL);
    fclose(f);
    if (!x)
        put(err, errlen, "%s: not a PEM certificate", path);
    ERR_clear_error();
    return x;
}

static EVP_PKEY *read_key(const char *path, char *err, size_t errlen)
{
    FILE *f = open_file(path, err, errlen);
    if (!f)
        return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, no_password, NULL);
    fclose(f);
    if (!k)
        put(err, errlen, "%s: not a PEM private key (or an encrypted one)", path);
    ERR_clear_error();
    return k;
}

/* Appends "; " and the warning when warn already holds one. */
static void add_warning(char *warn, size_t warnlen, const char *text)
{
    if (!warn || warnlen == 0)
        return;
    size_t used = strlen(warn);
    if (used < warnlen)
        snprintf(warn + used, warnlen - used, "%s%s", used ? "; " : "", text);
}

/* The leaf's validity now: false with err filled when expired or not yet
 * valid; a warning when it expires within TLS_WARN_DAYS. */
static bool check_dates(const char *path, X509 *x, char *err, size_t errlen, char *warn,
                        size_t warnlen)
{
    char date[64];
    const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
    if (X509_cmp_current_time(nb) > 0) {
        put(err, errlen, "%s: not valid before %s", path, asn1_date(nb, date, sizeof(date)));
        return false;
    }
    if (X509_cmp_current_time(na) < 0) {
        put(err, errlen, "%s: expired on %s", path, asn1_date(na, date, sizeof(date)));
        return false;
    }
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, na)) {
        long left = (long)days * 86400 + secs;
        if (left < (long)TLS_WARN_DAYS * 86400) {
            long rounded = (left + 43200) / 86400;
            char in[32], text[600];
            if (rounded == 0)
                snprintf(in, sizeof(in), "in less than a day");
            else
                snprintf(in, sizeof(in), "in %ld day%s", rounded, rounded == 1 ? "" : "s");
            snprintf(text, sizeof(text), "%s expires on %s (%s)", path,
                     asn1_date(na, date, sizeof(date)), in);
            add_warning(warn, warnlen, text);
        }
    }
    ERR_clear_error();
    return true;
}

/* Loads files->cert (with its chain) and files->key into ctx after
 * checking them; the leaf in *leaf (the caller frees it) when leaf is not
 * NULL. */
static bool use_cert_files(SSL_CTX *ctx, const struct tls_cert_files *files, X509 **leaf, char *err,
                           size_t errlen, char *warn, size_t warnlen)
{
    char why[256];
    bool ok = false;
    EVP_PKEY *key = NULL;
    X509 *x = read_cert(files->cert, err, errlen);
    if (!x)
        goto out;
    key = read_key(files->key, err, errlen);
    if (!key)
        goto out;
    if (X509_check_private_key(x, key) != 1) {
        put(err, errlen, "%s does not match the certificate in %s", files->key, files->cert);
        goto out;
    }
    if (!check_dates(files->cert, x, err, errlen, warn, warnlen))
        goto out;
    if (SSL_CTX_use_certificate_chain_file(ctx, files->cert) != 1) {
        put(err, errlen, "%s: cannot use the certificate chain: %s", files->cert,
            ossl_reason(why, sizeof(why)));
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        put(err, errlen, "%s: cannot use the key: %s", files->key, ossl_reason(why, sizeof(why)));
        goto out;
    }
    ok = true;
out:
    EVP_PKEY_free(key);
    if (ok && leaf)
        *leaf = x;
    else
        X509_free(x);
    ERR_clear_error();
    return ok;
}

/* --- settings common to servers and clients --- */

static bool parse_min_version(const char *v, int *out, char *err, size_t errlen)
{
    if (!v || strcmp(v, "TLSv1.2") == 0)
        *out = TLS1_2_VERSION;
    else if (strcmp(v, "TLSv1.3") == 0)
        *out = TLS1_3_VERSION;
    else {
        put(err, errlen, "unknown min_version \"%s\" (accepted: \"TLSv1.2\", \"TLSv1.3\")", v);
        return false;
    }
    return true;
}

static SSL_CTX *new_ssl_ctx(const SSL_METHOD *method, int min_version, const char *ciphers,
                            const char *ciphersuites, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) {
        put(err, errlen, "SSL_CTX_new failed: %s", ossl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1) {
        put(err, errlen, "SSL_CTX_set_min_proto_version failed: %s", ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        put(err, errlen, "ciphers \"%s\" rejected by OpenSSL: %s", ciphers,
            ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (ciphersuites && SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1) {
        put(err, errlen, "ciphersuites \"%s\" rejected by OpenSSL: %s", ciphersuites,
            ossl_reason(why, sizeof(why)));
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

static void free_ctx(struct tls_ctx *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncerts; i++) {
        SSL_CTX_free(t->certs[i].ctx);
        for (size_t j = 0; j < t->certs[i].nnames; j++)
            free(t->certs[i].names[j]);
        free(t->certs[i].names);
    }
    free(t->certs);
    free(t->alpn);
    free(t->server_name);
    free(t);
    ERR_clear_error();
}

/* --- server: SNI --- */

static bool add_name(struct tls_cert *c, const unsigned char *name, int len)
{
    if (len <= 0 || memchr(name, '\0', (size_t)len))
        return true; /* not a name a client can send */
    char **names = realloc(c->names, (c->nnames + 1) * sizeof(*names));
    if (!names)
        return false;
    c->names = names;
    char *s = malloc((size_t)len + 1);
    if (!s)
        return false;
    for (int i = 0; i < len; i++)
        s[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    s[len] = '\0';
    c->names[c->nnames++] = s;
    return true;
}

/* c's names: the subjectAltName DNS names, or the subject CN when there is
 * none. */
static bool collect_names(struct tls_cert *c, X509 *x)
{
    bool ok = true;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; ok && gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS)
            ok = add_name(c, ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    if (ok && c->nnames == 0) {
        const X509_NAME *subject = X509_get_subject_name(x);
        int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (at >= 0) {
            const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
            ok = add_name(c, ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn));
        }
    }
    ERR_clear_error();
    return ok;
}

/* 2 when pattern (lower case) is host exactly (any case), 1 when it is a
 * wildcard "*.rest" and host is one label then ".rest", else 0. */
static int name_match(const char *pattern, const char *host)
{
    if (strcasecmp(pattern, host) == 0)
        return 2;
    if (pattern[0] != '*' || pattern[1] != '.')
        return 0;
    const char *dot = strchr(host, '.');
    if (!dot || dot == host)
        return 0;
    return strcasecmp(dot + 1, pattern + 2) == 0 ? 1 : 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct tls_ctx *t = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!host)
        return SSL_TLSEXT_ERR_OK;
    size_t best = 0;
    int best_score = 0;
    for (size_t i = 0; i < t->ncerts && best_score < 2; i++)
        for (size_t j = 0; j < t->certs[i].nnames; j++) {
            int score = name_match(t->certs[i].names[j], host);
            if (score > best_score) {
                best = i;
                best_score = score;
            }
        }
    if (best_score > 0 && SSL_get_SSL_CTX(ssl) != t->certs[best].ctx)
        SSL_set_SSL_CTX(ssl, t->certs[best].ctx);
    return SSL_TLSEXT_ERR_OK;
}

/* --- server: ALPN --- */

/* The first of the server's names the client offers; none: no ALPN. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct tls_ctx *t = arg;
    for (size_t i = 0; i < t->alpnlen; i += 1 + (size_t)t->alpn[i]) {
        const unsigned char *mine = t->alpn + i;
        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            if (j + 1u + in[j] > inlen)
                break;
            if (in[j] == mine[0] && memcmp(in + j + 1, mine + 1, mine[0]) == 0) {
                *out = mine + 1;
                *outlen = mine[0];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static bool build_alpn(struct tls_ctx *t, const struct tls_server_opts *o, char *err, size_t errlen)
{
    size_t len = 0;
    for (size_t i = 0; i < o->nalpn; i++) {
        size_t n = o->alpn[i] ? strlen(o->alpn[i]) : 0;
        if (n == 0 || n > 255) {
            put(err, errlen, "alpn name %zu is empty or longer than 255 bytes", i);
            return false;
        }
        len += 1 + n;
    }
    if (len == 0)
        return true;
    t->alpn = malloc(len);
    if (!t->alpn) {
        put(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < o->nalpn; i++) {
        size_t n = strlen(o->alpn[i]);
        t->alpn[t->alpnlen] = (unsigned char)n;
        memcpy(t->alpn + t->alpnlen + 1, o->alpn[i], n);
        t->alpnlen += 1 + n;
    }
    return true;
}

/* --- the API --- */

static const unsigned char session_id_context[] = "lb";

/* Session ticket keys: one set for the process's life, shared by every
 * server context. Each SSL_CTX would otherwise make keys of its own, and
 * a reload, which builds new contexts, would make every client's ticket
 * useless at once: a full handshake for every returning client in the same
 * second. Made from OpenSSL's random generator on first use; a restart
 * makes new ones (as nginx does without ssl_session_ticket_key). */
static struct {
    bool ready;
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
} ticket_keys;

static char ticket_digest[] = "SHA256";

/* OpenSSL's ticket key callback: enc 1 encrypts a new ticket with the
 * keys; enc 0 opens one: 1 when it is ours, 0 (then a full handshake) when
 * other keys made it, -1 on an error. */
static int on_ticket_key(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, ticket_keys.hmac,
                                          sizeof(ticket_keys.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, ticket_digest, 0),
        OSSL_PARAM_construct_end(),
    };
    const EVP_CIPHER *aes = EVP_aes_256_cbc();
    if (enc) {
        memcpy(key_name, ticket_keys.name, sizeof(ticket_keys.name));
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes)) <= 0 ||
            !EVP_EncryptInit_ex(cctx, aes, NULL, ticket_keys.aes, iv) ||
            !EVP_MAC_CTX_set_params(hctx, params))
            return -1;
        return 1;
    }
    if (memcmp(key_name, ticket_keys.name, sizeof(ticket_keys.name)) != 0)
        return 0;
    if (!EVP_MAC_CTX_set_params(hctx, params) ||
        !EVP_DecryptInit_ex(cctx, aes, NULL, ticket_keys.aes, iv))
        return -1;
    return 1;
}

static bool ticket_keys_ready(char *err, size_t errlen)
{
    char why[256];
    if (ticket_keys.ready)
        return true;
    if (RAND_bytes(ticket_keys.name, sizeof(ticket_keys.name)) <= 0 ||
        RAND_bytes(ticket_keys.aes, sizeof(ticket_keys.aes)) <= 0 ||
        RAND_bytes(ticket_keys.hmac, sizeof(ticket_keys.hmac)) <= 0) {
        put(err, errlen, "RAND_bytes failed: %s", ossl_reason(why, sizeof(why)));
        return false;
    }
    ticket_keys.ready = true;
    return true;
}

struct tls_ctx *tls_server_ctx_new(const struct tls_server_opts *o, char *err, size_t errlen,
                                   char *warn, size_t warnlen)
{
    put(err, errlen, "%s", "");
    put(warn, warnlen, "%s", "");
    int min_version;
    if (o->ncerts == 0 || !o->certs) {
        put(err, errlen, "no certificate: a TLS server needs at least one");
        return NULL;
    }
    if (!parse_min_version(o->min_version, &min_version, err, errlen) ||
        !ticket_keys_ready(err, errlen))
        return NULL;
    struct tls_ctx *t = calloc(1, sizeof(*t));
    if (!t || !(t->certs = calloc(o->ncerts, sizeof(*t->certs)))) {
        free(t);
        put(err, errlen, "out of memory");
        return NULL;
    }
    t->refs = 1;
    t->server = true;
    if (!build_alpn(t, o, err, errlen))
        goto fail;
    for (size_t i = 0; i < o->ncerts; i++) {
        struct tls_cert *c = &t->certs[i];
        c->ctx =
            new_ssl_ctx(TLS_server_method(), min_version, o->ciphers, o->ciphersuites, err, errlen);
        if (!c->ctx)
            goto fail;
        t->ncerts = i + 1;
        SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_session_id_context(c->ctx, session_id_context, sizeof(session_id_context) - 1);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(c->ctx, on_ticket_key);
        SSL_CTX_set_tlsext_servername_callback(c->ctx, on_servername);
        SSL_CTX_set_tlsext_servername_arg(c->ctx, t);
        SSL_CTX_set_alpn_select_cb(c->ctx, on_alpn, t);
        X509 *leaf = NULL;
        if (!use_cert_files(c->ctx, &o->certs[i], &leaf, err, errlen, warn, warnlen))
            goto fail;
        bool ok = collect_names(c, leaf);
        X509_free(leaf);
        if (!ok) {
            put(err, errlen, "out of memory");
            goto fail;
        }
    }
    return t;
fail:
    if (warn && warnlen)
        warn[0] = '\0';
    free_ctx(t);
    return NULL;
}

struct tls_ctx *tls_client_ctx_new(const struct tls_client_opts *o, char *err, size_t errlen)
{
    char why[256];
    put(err, errlen, "%s", "");
    int min_version;
    if (!parse_min_version(o->min_version, &min_version, err, errlen))
        return NULL;
    struct tls_ctx *t = calloc(1, sizeof(*t));
    if (!t || !(t->certs = calloc(1, sizeof(*t->certs)))) {
        free(t);
        put(err, errlen, "out of memory");
        return NULL;
    }
    t->refs = 1;
    t->verify = o->verify;
    if (o->server_name) {
        unsigned char addr[16];
        t->server_name_ip = inet_pton(AF_INET, o->server_name, addr) == 1 ||
                            inet_pton(AF_INET6, o->server_name, addr) == 1;
        if (!(t->server_name = strdup(o->server_name))) {
            put(err, errlen, "out of memory");
            goto fail;
        }
    }
    SSL_CTX *ctx =
        new_ssl_ctx(TLS_client_method(), min_version, o->ciphers, o->ciphersuites, err, errlen);
    if (!ctx)
        goto fail;
    t->certs[0].ctx = ctx;
    t->ncerts = 1;
    if (o->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (o->ca) {
            FILE *f = open_file(o->ca, err, errlen);
            if (!f)
                goto fail;
            fclose(f);
            if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
                put(err, errlen, "%s: no certificate in it", o->ca);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            put(err, errlen, "cannot load the system's trusted CAs: %s",
                ossl_reason(why, sizeof(why)));
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->cert || o->key) {
        if (!o->cert || !o->key) {
            put(err, errlen, "a client certificate needs both cert and key");
            goto fail;
        }
        const struct tls_cert_files files = {o->cert, o->key};
        if (!use_cert_files(ctx, &files, NULL, err, errlen, NULL, 0))
            goto fail;
    }
    ERR_clear_error();
    return t;
fail:
    free_ctx(t);
    return NULL;
}

SSL_CTX *tls_ctx_ssl(const struct tls_ctx *t)
{
    return t->certs[0].ctx;
}

const char *tls_client_server_name(const struct tls_ctx *t)
{
    return t->server ? NULL : t->server_name;
}

SSL *tls_client_ssl_new(struct tls_ctx *t, int fd)
{
    SSL *ssl = SSL_new(t->certs[0].ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    SSL_set_connect_state(ssl);
    if (t->server_name && !t->server_name_ip && SSL_set_tlsext_host_name(ssl, t->server_name) != 1)
        goto fail;
    if (t->verify && t->server_name) {
        if (t->server_name_ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->server_name) != 1)
                goto fail;
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(ssl, t->server_name) != 1)
                goto fail;
        }
    }
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

const char *tls_verify_error(const SSL *ssl, char *buf, size_t len)
{
    if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
        return NULL;
    long r = SSL_get_verify_result(ssl);
    if (r == X509_V_OK)
        return NULL;
    snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(r));
    return buf;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *t)
{
    t->refs++;
    return t;
}

void tls_ctx_unref(struct tls_ctx *t)
{
    if (t && --t->refs == 0)
        free_ctx(t);
}
