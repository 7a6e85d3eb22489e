/*
 * bench-tls-shim: an LD_PRELOAD library for wrk in scripts/bench's TLS
 * scenarios (g, h, i). scripts/bench compiles it into its work dir:
 *
 *   cc -O2 -shared -fPIC -o tls-shim.so scripts/bench-tls-shim.c -lssl -ldl
 *
 * It does three things to the wrk it is loaded into:
 *
 * - It counts, client side, every handshake wrk completes and how many of
 *   them resumed a session, and prints one line at exit on stderr:
 *   "BENCH_TLS handshakes=N resumed=M". This is how the bench knows, for
 *   every proxy alike, whether a run did full handshakes or resumed ones.
 * - With BENCH_TLS_FRESH=1 in the environment it makes every handshake a
 *   full one: wrk 4.1 reconnects with SSL_clear() on the same SSL, which
 *   keeps the last session (and the TLS 1.3 ticket it holds), so that
 *   wrk -H "Connection: close" over https resumes nearly every time. The
 *   shim drops the session before each SSL_clear(), so the next
 *   ClientHello offers nothing to resume. No server is told anything.
 * - With BENCH_TLS_MAX=1.2 every SSL wrk makes is capped at TLS 1.2.
 *
 * Nothing here is linked into lb.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long handshakes, resumed;

/* The real function named, from the library after this one (libssl). */
static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);

    if (f == NULL) {
        fprintf(stderr, "bench-tls-shim: %s not found\n", name);
        abort();
    }
    return f;
}

/* wrk's reconnect: forget the session first when BENCH_TLS_FRESH=1. */
int SSL_clear(SSL *s)
{
    static int (*real)(SSL *);
    const char *fresh = getenv("BENCH_TLS_FRESH");

    if (real == NULL)
        real = (int (*)(SSL *))next("SSL_clear");
    if (fresh != NULL && strcmp(fresh, "1") == 0)
        SSL_set_session(s, NULL);
    return real(s);
}

/* Counts the handshakes that complete, and the resumed ones among them. */
int SSL_connect(SSL *s)
{
    static int (*real)(SSL *);
    int rc;

    if (real == NULL)
        real = (int (*)(SSL *))next("SSL_connect");
    rc = real(s);
    if (rc == 1) {
        __atomic_fetch_add(&handshakes, 1, __ATOMIC_RELAXED);
        if (SSL_session_reused(s))
            __atomic_fetch_add(&resumed, 1, __ATOMIC_RELAXED);
    }
    return rc;
}

/* Caps the new SSL at TLS 1.2 when BENCH_TLS_MAX=1.2. */
SSL *SSL_new(SSL_CTX *ctx)
{
    static SSL *(*real)(SSL_CTX *);
    const char *max = getenv("BENCH_TLS_MAX");
    SSL *s;

    if (real == NULL)
        real = (SSL * (*)(SSL_CTX *)) next("SSL_new");
    s = real(ctx);
    if (s != NULL && max != NULL && strcmp(max, "1.2") == 0)
        SSL_set_max_proto_version(s, TLS1_2_VERSION);
    return s;
}

__attribute__((destructor)) static void report(void)
{
    fprintf(stderr, "BENCH_TLS handshakes=%lu resumed=%lu\n", handshakes, resumed);
}
