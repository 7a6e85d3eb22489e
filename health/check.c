/* check: runs the active checks of one target on the loop. A fixed-rate
 * timer starts one check at a time: non-blocking connect, for https a TLS
 * handshake (on an SSL from the caller, health_check_set_tls), then for
 * http and https the request and the response (check_http.c judges it),
 * all bounded by one timeout. Each verdict feeds the rise/fall state
 * machine and reaches lb/ through the registered callback, which may free
 * the check. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "health/health.h"
#include "health/health_internal.h"

enum check_phase { PHASE_IDLE, PHASE_CONNECT, PHASE_SEND, PHASE_HANDSHAKE, PHASE_READ };

struct health_check {
    struct event_base *base;
    struct lb_health_conf conf; /* a deep copy */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *request; /* what a check sends: the prefix, then (http, https) the request */
    size_t request_len;
    size_t prefix_len;                  /* health_check_set_prefix(); sent before any TLS */
    struct health_tls tls;              /* https: health_check_set_tls() */
    struct lb_tls_client_conf tls_conf; /* a deep copy of tls.conf */
    health_cb cb;
    void *arg;
    struct health_sm sm;
    struct health_info info;

    struct event *timer;   /* starts the next check */
    struct event *timeout; /* bounds the check in flight */
    struct event *io;      /* the in-flight check's socket */
    bool started;
    bool due;   /* the timer fired while a check was in flight */
    bool in_cb; /* cb is running: health_check_free only marks */
    bool freed; /* health_check_free was called from cb */

    /* The check in flight (phase != PHASE_IDLE). */
    enum check_phase phase;
    int fd;
    struct timespec begun;
    short waiting; /* what check_wait waits for */
    SSL *ssl;      /* https, once connected */
    void *hold;    /* what tls.done gets back after SSL_free */
    size_t sent;
    char *buf;
    size_t len, cap;
};

/* An http or https check: one that sends a request and judges the answer. */
static bool check_is_http(enum lb_check_type type)
{
    return type == LB_CHECK_HTTP || type == LB_CHECK_HTTPS;
}

static void check_begin(struct health_check *hc);

/* Monotonic microseconds since `since`, at least 1: a finished check always
 * took some time, and 0 would read as "none". */
static uint64_t check_elapsed_us(const struct timespec *since)
{
    struct timespec now;
    int64_t ns;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ns = (int64_t)(now.tv_sec - since->tv_sec) * 1000000000 + (now.tv_nsec - since->tv_nsec);
    return ns > 0 ? (uint64_t)(ns + 999) / 1000 : 1;
}

/* Wall-clock milliseconds, for health_info (the admin API shows dates). */
static int64_t check_unix_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* strerror(err) with a lowercase first letter: "connection refused". */
static void check_errno_text(char *dst, size_t cap, int err)
{
    char tmp[128];
    const char *s = strerror_r(err, tmp, sizeof(tmp));

    snprintf(dst, cap, "%s", s);
    dst[0] = (char)tolower((unsigned char)dst[0]);
}

/* Ends the check in flight, if any: deletes its events, ends its TLS,
 * closes its socket and drops its buffer. Safe to call when idle. TLS ends
 * with a quiet SSL_shutdown (marked closed, no close_notify sent: the
 * reset below would beat it anyway), then the SSL is freed and its hold
 * handed back. The close resets the connection (SO_LINGER 0), so that a
 * check every second leaves no TIME_WAIT sockets to eat the local ports,
 * as HAProxy does. */
static void check_cleanup(struct health_check *hc)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    event_del(hc->io);
    event_del(hc->timeout);
    if (hc->ssl) {
        if (SSL_is_init_finished(hc->ssl)) {
            SSL_set_quiet_shutdown(hc->ssl, 1);
            SSL_shutdown(hc->ssl);
        }
        SSL_free(hc->ssl);
        ERR_clear_error();
        hc->ssl = NULL;
        hc->tls.done(hc->tls.arg, hc->hold);
        hc->hold = NULL;
    }
    if (hc->fd >= 0) {
        setsockopt(hc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(hc->fd);
    }
    hc->fd = -1;
    free(hc->buf);
    hc->buf = NULL;
    hc->len = hc->cap = 0;
    hc->sent = 0;
    hc->phase = PHASE_IDLE;
}

/* Frees everything; the check must be idle and not inside cb. Also takes a
 * half-built check from health_check_new (events may be NULL). */
static void check_destroy(struct health_check *hc)
{
    if (hc->io)
        event_free(hc->io);
    if (hc->timeout)
        event_free(hc->timeout);
    if (hc->timer)
        event_free(hc->timer);
    free(hc->conf.method);
    free(hc->conf.path);
    free(hc->conf.host);
    free(hc->conf.expect_body);
    free(hc->tls_conf.ca);
    free(hc->tls_conf.server_name);
    free(hc->tls_conf.cert);
    free(hc->tls_conf.key);
    free(hc->tls_conf.min_version);
    free(hc->tls_conf.ciphers);
    free(hc->tls_conf.ciphersuites);
    free(hc->request);
    free(hc);
}

/* The verdict on the check in flight: text is the detail when ok, else the
 * error. Records it, calls cb, then starts the next check if it is already
 * due. hc may be freed on return: callers return at once and touch nothing. */
static void check_finish(struct health_check *hc, bool ok, const char *text)
{
    struct health_report r;

    check_cleanup(hc);
    r.ok = ok;
    r.transition = health_sm_record(&hc->sm, ok);
    r.error = ok ? "" : text;
    r.detail = ok ? text : "";
    r.duration_us = check_elapsed_us(&hc->begun);
    r.sm = &hc->sm;
    hc->info.last_check_unix_ms = check_unix_ms();
    hc->info.last_duration_us = r.duration_us;
    snprintf(hc->info.last_error, sizeof(hc->info.last_error), "%s", r.error);

    hc->in_cb = true;
    hc->cb(hc->arg, &r);
    hc->in_cb = false;
    if (hc->freed) {
        check_destroy(hc);
        return;
    }
    if (hc->due)
        check_begin(hc);
}

/* Fails the check in flight with strerror(err). Same contract as
 * check_finish. */
static void check_fail_errno(struct health_check *hc, int err)
{
    char text[HEALTH_ERROR_MAX];

    check_errno_text(text, sizeof(text), err);
    check_finish(hc, false, text);
}

static void check_io_cb(evutil_socket_t fd, short what, void *arg);

/* Waits for the socket to be ready for `what` (EV_READ is persistent). 0,
 * or -1 when libevent fails (the caller fails the check). */
static int check_wait(struct health_check *hc, short what)
{
    event_del(hc->io);
    hc->waiting = what;
    if (what == EV_READ)
        what |= EV_PERSIST;
    if (event_assign(hc->io, hc->base, hc->fd, what, check_io_cb, hc) < 0)
        return -1;
    return event_add(hc->io, NULL);
}

static void check_handshake_begin(struct health_check *hc);
static void check_tls_read(struct health_check *hc);
static void check_tls_fail(struct health_check *hc, int err, const char *what);

/* Waits as OpenSSL asks after SSL_ERROR_WANT_READ or _WRITE (err); any
 * other err fails the check as `what` ("tls handshake failed"). Same
 * contract as check_finish. */
static void check_tls_wait(struct health_check *hc, int err, const char *what)
{
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        check_tls_fail(hc, err, what);
        return;
    }
    ERR_clear_error();
    if (check_wait(hc, err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE) < 0)
        check_finish(hc, false, "internal error: event_add");
}

/* Sends what is left of the request: in the clear up to the end of the
 * prefix, then through TLS once an https check has shaken hands. On the
 * last byte, waits for the response (an https check that has sent its
 * prefix shakes hands first). Same contract as check_finish. */
static void check_send(struct health_check *hc)
{
    bool tls = hc->conf.type == LB_CHECK_HTTPS;
    size_t end = tls && !hc->ssl ? hc->prefix_len : hc->request_len;

    while (hc->sent < end) {
        if (hc->ssl) {
            errno = 0;
            int r = SSL_write(hc->ssl, hc->request + hc->sent, (int)(end - hc->sent));
            if (r <= 0) {
                check_tls_wait(hc, SSL_get_error(hc->ssl, r), "tls write failed");
                return;
            }
            hc->sent += (size_t)r;
            continue;
        }
        ssize_t n = send(hc->fd, hc->request + hc->sent, end - hc->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (check_wait(hc, EV_WRITE) < 0)
                check_finish(hc, false, "internal error: event_add");
            return;
        }
        if (n < 0) {
            check_fail_errno(hc, errno);
            return;
        }
        hc->sent += (size_t)n;
    }
    if (!check_is_http(hc->conf.type)) { /* a tcp check sent its prefix */
        check_finish(hc, true, "tcp connect ok");
        return;
    }
    if (tls && !hc->ssl) {
        check_handshake_begin(hc);
        return;
    }
    hc->phase = PHASE_READ;
    if (hc->ssl) { /* the response may be in OpenSSL's hands already */
        check_tls_read(hc);
        return;
    }
    if (check_wait(hc, EV_READ) < 0)
        check_finish(hc, false, "internal error: event_add");
}

/* Grows the response buffer when it is full, up to CHECK_HTTP_READ_MAX.
 * 0, or -1 on ENOMEM. */
static int check_buf_room(struct health_check *hc)
{
    if (hc->len < hc->cap)
        return 0;
    size_t cap = hc->cap ? hc->cap * 2 : 1024;
    char *buf;
    if (cap > CHECK_HTTP_READ_MAX)
        cap = CHECK_HTTP_READ_MAX;
    buf = realloc(hc->buf, cap);
    if (!buf)
        return -1;
    hc->buf = buf;
    hc->cap = cap;
    return 0;
}

/* check_read through TLS: reads until OpenSSL has nothing more (bytes it
 * already decrypted, SSL_pending, raise no event on the socket, so one
 * event drains them all), then waits for the socket as it asks. The end of
 * the stream (close_notify, or a close without it: SSL_ERROR_ZERO_RETURN
 * either way, lb/io/tls_ctx.h) is the http check's EOF. Same contract as
 * check_finish. */
static void check_tls_read(struct health_check *hc)
{
    char msg[HEALTH_ERROR_MAX];

    for (;;) {
        enum check_verdict v;
        bool eof = false;
        if (check_buf_room(hc) < 0) {
            check_finish(hc, false, "out of memory");
            return;
        }
        errno = 0;
        int r = SSL_read(hc->ssl, hc->buf + hc->len, (int)(hc->cap - hc->len));
        if (r <= 0) {
            int err = SSL_get_error(hc->ssl, r);
            if (err == SSL_ERROR_WANT_READ && hc->waiting == EV_READ) {
                ERR_clear_error();
                return;
            }
            if (err != SSL_ERROR_ZERO_RETURN &&
                !(err == SSL_ERROR_SYSCALL && errno == 0 && ERR_peek_error() == 0)) {
                check_tls_wait(hc, err, "tls read failed");
                return;
            }
            ERR_clear_error();
            eof = true;
        } else {
            hc->len += (size_t)r;
        }
        v = check_http_judge(&hc->conf, hc->buf, hc->len, eof || hc->len == CHECK_HTTP_READ_MAX,
                             msg, sizeof(msg));
        if (v != CHECK_PENDING) {
            check_finish(hc, v == CHECK_OK, msg);
            return;
        }
    }
}

/* Reads what the socket holds (up to CHECK_HTTP_READ_MAX in all) and asks
 * check_http_judge for a verdict. Same contract as check_finish. */
static void check_read(struct health_check *hc)
{
    char msg[HEALTH_ERROR_MAX];
    enum check_verdict v;
    ssize_t n;

    if (hc->ssl) {
        check_tls_read(hc);
        return;
    }
    if (check_buf_room(hc) < 0) {
        check_finish(hc, false, "out of memory");
        return;
    }
    n = recv(hc->fd, hc->buf + hc->len, hc->cap - hc->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        check_fail_errno(hc, errno);
        return;
    }
    hc->len += (size_t)n;
    v = check_http_judge(&hc->conf, hc->buf, hc->len, n == 0 || hc->len == CHECK_HTTP_READ_MAX, msg,
                         sizeof(msg));
    if (v != CHECK_PENDING)
        check_finish(hc, v == CHECK_OK, msg);
}

/* Fails the check in flight after an SSL call that returned err (neither
 * WANT_READ nor WANT_WRITE): "WHAT: " and why, in order of use to an
 * operator: the certificate verification's reason ("certificate verify
 * failed: hostname mismatch"), OpenSSL's reason ("wrong version number"),
 * "closed by the peer", strerror. Reads OpenSSL's error queue, then
 * clears it. Same contract as check_finish. */
static void check_tls_fail(struct health_check *hc, int err, const char *what)
{
    char text[HEALTH_ERROR_MAX], why[128];
    int saved = errno;
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    long v = SSL_get_verify_result(hc->ssl);

    if ((SSL_get_verify_mode(hc->ssl) & SSL_VERIFY_PEER) && v != X509_V_OK)
        snprintf(why, sizeof(why), "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else if (r)
        snprintf(why, sizeof(why), "%s", r);
    else if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && saved == 0))
        snprintf(why, sizeof(why), "closed by the peer");
    else if (err == SSL_ERROR_SYSCALL)
        check_errno_text(why, sizeof(why), saved);
    else
        snprintf(why, sizeof(why), "tls error");
    ERR_clear_error();
    snprintf(text, sizeof(text), "%s: %s", what, why);
    check_finish(hc, false, text);
}

/* One step of the TLS handshake; when done, the request goes out through
 * TLS. Same contract as check_finish. */
static void check_handshake(struct health_check *hc)
{
    errno = 0;
    int r = SSL_do_handshake(hc->ssl);
    if (r == 1) {
        hc->phase = PHASE_SEND;
        check_send(hc);
        return;
    }
    check_tls_wait(hc, SSL_get_error(hc->ssl, r), "tls handshake failed");
}

/* The connection is up (and the prefix sent): takes an SSL for it from the
 * caller and starts the handshake. Same contract as check_finish. */
static void check_handshake_begin(struct health_check *hc)
{
    hc->phase = PHASE_HANDSHAKE;
    if (!hc->tls.ssl_new) {
        check_finish(hc, false, "tls handshake failed: no TLS context");
        return;
    }
    hc->ssl = hc->tls.ssl_new(hc->tls.arg, hc->fd, &hc->hold);
    if (!hc->ssl) {
        check_finish(hc, false, "tls handshake failed: cannot make an SSL (out of memory?)");
        return;
    }
    check_handshake(hc);
}

/* The connect has completed, well or not (SO_ERROR says which). */
static void check_connected(struct health_check *hc)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(hc->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        check_fail_errno(hc, err);
        return;
    }
    if (!check_is_http(hc->conf.type) && hc->request_len == 0) {
        check_finish(hc, true, "tcp connect ok");
        return;
    }
    hc->phase = PHASE_SEND;
    check_send(hc);
}

/* The socket of the check in flight is ready: go on with its phase. */
static void check_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct health_check *hc = arg;

    (void)fd;
    (void)what;
    switch (hc->phase) {
    case PHASE_CONNECT:
        check_connected(hc);
        break;
    case PHASE_SEND:
        check_send(hc);
        break;
    case PHASE_HANDSHAKE:
        check_handshake(hc);
        break;
    case PHASE_READ:
        check_read(hc);
        break;
    case PHASE_IDLE:
        break;
    }
}

/* timeout_ms passed since the check began, whatever phase it is in. */
static void check_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct health_check *hc = arg;
    char text[HEALTH_ERROR_MAX];

    (void)fd;
    (void)what;
    if (hc->phase == PHASE_HANDSHAKE)
        snprintf(text, sizeof(text), "tls handshake timed out after %u ms", hc->conf.timeout_ms);
    else
        snprintf(text, sizeof(text), "timeout after %u ms", hc->conf.timeout_ms);
    check_finish(hc, false, text);
}

/* The next check is due; if one is still in flight, it starts as soon as
 * that one ends (check_finish sees `due`). */
static void check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct health_check *hc = arg;

    (void)fd;
    (void)what;
    if (hc->phase != PHASE_IDLE) {
        hc->due = true;
        return;
    }
    check_begin(hc);
}

/* Milliseconds as a struct timeval for libevent. */
static void ms_to_tv(unsigned ms, struct timeval *tv)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

/* Starts one check: arms the timer for the next one (fixed rate, counted
 * from this start), the timeout, and a non-blocking connect. Called idle.
 * Same contract as check_finish: hc may be freed on return. */
static void check_begin(struct health_check *hc)
{
    struct timeval tv;
    int fd;

    hc->due = false;
    hc->phase = PHASE_CONNECT;
    /* Timers count from libevent's cached time, which may be a whole busy
     * loop iteration old: refresh it so the timeout bounds this check. */
    event_base_update_cache_time(hc->base);
    clock_gettime(CLOCK_MONOTONIC, &hc->begun);
    ms_to_tv(health_next_delay_ms(hc->conf.interval_ms ? hc->conf.interval_ms : 1, health_random()),
             &tv);
    if (evtimer_add(hc->timer, &tv) < 0) {
        check_finish(hc, false, "internal error: event_add");
        return;
    }
    ms_to_tv(hc->conf.timeout_ms, &tv);
    if (evtimer_add(hc->timeout, &tv) < 0) {
        check_finish(hc, false, "internal error: event_add");
        return;
    }
    fd = socket(hc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        check_fail_errno(hc, errno);
        return;
    }
    hc->fd = fd;
    if (connect(fd, (struct sockaddr *)&hc->addr, hc->addrlen) == 0) {
        check_connected(hc);
        return;
    }
    if (errno != EINPROGRESS) {
        check_fail_errno(hc, errno);
        return;
    }
    if (check_wait(hc, EV_WRITE) < 0)
        check_finish(hc, false, "internal error: event_add");
}

/* "1.2.3.4:80" or "[::1]:80": the Host header when neither conf->host nor
 * host_header gives one. */
static void check_addr_text(const struct sockaddr_storage *ss, char *dst, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "";

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(dst, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
        return;
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
    snprintf(dst, cap, "%s:%u", ip, ntohs(s4->sin_port));
}

/* strdup that keeps NULL: 0, or -1 on ENOMEM. */
static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

/* Copies the target address, replacing its port with conf->port when set.
 * -1 for a family other than IPv4/IPv6 or a length that does not fit. */
static int check_set_addr(struct health_check *hc, const struct sockaddr *addr, socklen_t addrlen,
                          unsigned port)
{
    if (addrlen > sizeof(hc->addr))
        return -1;
    if (!(addr->sa_family == AF_INET && addrlen >= sizeof(struct sockaddr_in)) &&
        !(addr->sa_family == AF_INET6 && addrlen >= sizeof(struct sockaddr_in6)))
        return -1;
    memcpy(&hc->addr, addr, addrlen);
    hc->addrlen = addrlen;
    if (port == 0)
        return 0;
    if (addr->sa_family == AF_INET)
        ((struct sockaddr_in *)&hc->addr)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&hc->addr)->sin6_port = htons((uint16_t)port);
    return 0;
}

/* Deep-copies conf and prepares the events; nothing runs until
 * health_check_start. NULL on ENOMEM or an address that is neither IPv4
 * nor IPv6. */
struct health_check *health_check_new(struct event_base *base, const struct lb_health_conf *conf,
                                      const struct sockaddr *addr, socklen_t addrlen,
                                      const char *host_header, health_cb cb, void *arg)
{
    struct health_check *hc = calloc(1, sizeof(*hc));
    char host[INET6_ADDRSTRLEN + 16];

    if (!hc)
        return NULL;
    hc->base = base;
    hc->fd = -1;
    hc->cb = cb;
    hc->arg = arg;
    hc->conf = *conf;
    hc->conf.method = hc->conf.path = hc->conf.host = hc->conf.expect_body = NULL;
    health_sm_init(&hc->sm, conf->rise, conf->fall);
    if (check_set_addr(hc, addr, addrlen, conf->port) < 0)
        goto fail;
    if (dup_opt(&hc->conf.method, conf->method) < 0 || dup_opt(&hc->conf.path, conf->path) < 0 ||
        dup_opt(&hc->conf.host, conf->host) < 0 ||
        dup_opt(&hc->conf.expect_body, conf->expect_body) < 0)
        goto fail;
    if (check_is_http(conf->type)) {
        const char *h = conf->host ? conf->host : host_header;
        if (!h) {
            check_addr_text(&hc->addr, host, sizeof(host));
            h = host;
        }
        if (!(hc->request = check_http_request(conf, h, &hc->request_len)))
            goto fail;
    }
    hc->timer = evtimer_new(base, check_timer_cb, hc);
    hc->timeout = evtimer_new(base, check_timeout_cb, hc);
    hc->io = event_new(base, -1, 0, check_io_cb, hc);
    if (!hc->timer || !hc->timeout || !hc->io)
        goto fail;
    return hc;

fail:
    check_destroy(hc);
    return NULL;
}

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The TLS settings an https check compares (not "enabled", "verify" or
 * "where": the check has its own verify, and the rest changes nothing of
 * how it connects). */
static bool tls_same(const struct lb_tls_client_conf *a, const struct lb_tls_client_conf *b)
{
    return str_same(a->ca, b->ca) && str_same(a->server_name, b->server_name) &&
           str_same(a->cert, b->cert) && str_same(a->key, b->key) &&
           str_same(a->min_version, b->min_version) && str_same(a->ciphers, b->ciphers) &&
           str_same(a->ciphersuites, b->ciphersuites);
}

bool health_check_matches(const struct health_check *hc, const struct lb_health_conf *conf,
                          const struct sockaddr *addr, socklen_t addrlen, const char *host_header,
                          const struct lb_tls_client_conf *tls)
{
    const struct lb_health_conf *c = &hc->conf;
    if (c->type != conf->type || c->interval_ms != conf->interval_ms ||
        c->timeout_ms != conf->timeout_ms || c->rise != conf->rise || c->fall != conf->fall ||
        c->port != conf->port || c->status_min != conf->status_min ||
        c->status_max != conf->status_max || !str_same(c->expect_body, conf->expect_body) ||
        c->send_proxy != conf->send_proxy)
        return false;

    struct health_check probe = {0};
    if (check_set_addr(&probe, addr, addrlen, conf->port) < 0 || probe.addrlen != hc->addrlen ||
        memcmp(&probe.addr, &hc->addr, hc->addrlen) != 0)
        return false;
    if (conf->type == LB_CHECK_HTTPS &&
        (c->verify != conf->verify || !hc->tls.conf || !tls || !tls_same(&hc->tls_conf, tls)))
        return false;
    if (!check_is_http(conf->type))
        return true;
    /* method, path and Host all live in the request bytes. */
    char host[INET6_ADDRSTRLEN + 16];
    const char *h = conf->host ? conf->host : host_header;
    if (!h) {
        check_addr_text(&probe.addr, host, sizeof(host));
        h = host;
    }
    size_t len;
    char *req = check_http_request(conf, h, &len);
    bool same = req && len == hc->request_len - hc->prefix_len &&
                memcmp(req, hc->request + hc->prefix_len, len) == 0;
    free(req);
    return same;
}

int health_check_set_tls(struct health_check *hc, const struct health_tls *tls)
{
    const struct lb_tls_client_conf *c = tls->conf;
    struct lb_tls_client_conf *d = &hc->tls_conf;

    hc->tls = *tls;
    if (!c)
        return 0;
    hc->tls.conf = d;
    if (dup_opt(&d->ca, c->ca) < 0 || dup_opt(&d->server_name, c->server_name) < 0 ||
        dup_opt(&d->cert, c->cert) < 0 || dup_opt(&d->key, c->key) < 0 ||
        dup_opt(&d->min_version, c->min_version) < 0 || dup_opt(&d->ciphers, c->ciphers) < 0 ||
        dup_opt(&d->ciphersuites, c->ciphersuites) < 0)
        return -1;
    return 0;
}

int health_check_set_prefix(struct health_check *hc, const void *bytes, size_t len)
{
    char *req = malloc(len + hc->request_len + 1);
    if (!req)
        return -1;
    memcpy(req, bytes, len);
    if (hc->request)
        memcpy(req + len, hc->request, hc->request_len);
    req[len + hc->request_len] = '\0';
    free(hc->request);
    hc->request = req;
    hc->request_len += len;
    hc->prefix_len = len;
    return 0;
}

/* The first check runs from a 0-delay timer, so cb never runs inside this
 * call. Starting twice is harmless. */
int health_check_start(struct health_check *hc)
{
    struct timeval now = {0, 0};

    if (hc->started)
        return 0;
    if (evtimer_add(hc->timer, &now) < 0)
        return -1;
    hc->started = true;
    return 0;
}

/* Closes the check in flight and deletes every event at once. From inside
 * cb the memory itself goes when cb returns (check_finish sees `freed`). */
void health_check_free(struct health_check *hc)
{
    if (!hc)
        return;
    check_cleanup(hc);
    event_del(hc->timer);
    hc->due = false;
    if (hc->in_cb) {
        hc->freed = true;
        return;
    }
    check_destroy(hc);
}

/* The check's state machine; valid until health_check_free. */
const struct health_sm *health_check_sm(const struct health_check *hc)
{
    return &hc->sm;
}

/* The last check's outcome; last_check_unix_ms 0 before the first. */
const struct health_info *health_check_info(const struct health_check *hc)
{
    return &hc->info;
}

/* Passive ejection while active checks run; true when it was up. */
bool health_check_force_down(struct health_check *hc)
{
    return health_sm_force_down(&hc->sm);
}
