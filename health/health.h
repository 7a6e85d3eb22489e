/* health: active checks (tcp, http, https) of one target, the rise/fall state
 * machine, passive failure counting and the slow-start ramp. It knows a
 * target's address and its check settings, not pools or sessions: each
 * check's result reaches lb/ through the callback it registered. */
#ifndef LB_HEALTH_H
#define LB_HEALTH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"

struct event_base;
struct ssl_st; /* OpenSSL's SSL */

#define HEALTH_ERROR_MAX 160

/* The rise/fall state machine. A target starts up. */
struct health_sm {
    unsigned rise, fall;
    bool up;
    unsigned successes; /* consecutive */
    unsigned failures;  /* consecutive */
    uint64_t transitions;
};

void health_sm_init(struct health_sm *sm, unsigned rise, unsigned fall);
/* Records one check result; true when it changed up/down. */
bool health_sm_record(struct health_sm *sm, bool ok);
/* Takes the target down at once (passive ejection while active checks run):
 * it comes back only after `rise` consecutive successes. True when it was up. */
bool health_sm_force_down(struct health_sm *sm);

/* Delay before the next check, jittered so that checks of many targets
 * spread over the interval: uniform in [interval * 4/5, interval], with r
 * uniform in [0, 1). Never more than interval, so `fall` checks fit in
 * fall × interval. */
unsigned health_next_delay_ms(unsigned interval_ms, double r);

/* What one finished check reports. */
struct health_report {
    bool ok;
    bool transition;      /* this check changed sm->up */
    const char *error;    /* "" when ok, else why: "http status 500" */
    const char *detail;   /* when ok: "http status 200" / "https status 200" / "tcp connect ok" */
    uint64_t duration_us; /* connect to verdict */
    const struct health_sm *sm;
};
typedef void (*health_cb)(void *arg, const struct health_report *r);

/* The last check, for the admin API and metrics. */
struct health_info {
    int64_t last_check_unix_ms; /* 0: none yet */
    uint64_t last_duration_us;
    char last_error[HEALTH_ERROR_MAX]; /* "" when the last check passed */
};

struct health_check;

/* A check of addr (port replaced by conf->port when that is set) with the
 * settings of conf (copied; conf may be freed afterwards). host_header is
 * used when conf->host is NULL. cb runs after every check, on the loop.
 * NULL on ENOMEM. */
struct health_check *health_check_new(struct event_base *base, const struct lb_health_conf *conf,
                                      const struct sockaddr *addr, socklen_t addrlen,
                                      const char *host_header, health_cb cb, void *arg);
/* True when hc already checks what health_check_new(conf, addr, addrlen,
 * host_header) would, and for an https check with the TLS settings tls
 * (compared with those given to health_check_set_tls: ca, server_name,
 * cert, key, min_version, ciphers, ciphersuites, and conf->verify; tls is
 * ignored for other types and may then be NULL): a reload keeps such a
 * check (and its state) running. */
bool health_check_matches(const struct health_check *hc, const struct lb_health_conf *conf,
                          const struct sockaddr *addr, socklen_t addrlen, const char *host_header,
                          const struct lb_tls_client_conf *tls);

/* Where an https check gets the TLS of each of its connections: health/
 * builds no OpenSSL context (lb/io does), it drives the SSL it is given.
 * ssl_new returns a client SSL on the connected socket fd, in connect
 * state, with its SNI and verification set up, and sets *hold to what
 * must stay alive as long as that SSL does (a reference to its context);
 * NULL when it cannot make one. After SSL_free, the check hands hold back
 * to done(arg, hold). Each check asks for a new SSL, so one made from a
 * context a reload replaced is used by that check only. */
struct health_tls {
    struct ssl_st *(*ssl_new)(void *arg, int fd, void **hold);
    void (*done)(void *arg, void *hold);
    void *arg;
    const struct lb_tls_client_conf *conf; /* the settings behind ssl_new (copied), for
                                            * health_check_matches */
};
/* Gives an https check its TLS (tls copied, its settings too). Call once,
 * before health_check_start(); an https check without it fails each check
 * with "tls handshake failed: no TLS context". 0, or -1 on ENOMEM. */
int health_check_set_tls(struct health_check *hc, const struct health_tls *tls);
/* Makes every check of hc send bytes first, right after the connect (a
 * PROXY header, when conf->send_proxy is set): a tcp check passes once
 * they are written. Call once, before health_check_start(). 0, or -1 on
 * ENOMEM. */
int health_check_set_prefix(struct health_check *hc, const void *bytes, size_t len);
/* Runs the first check at once, then every health_next_delay_ms(); at most
 * one check is in flight. 0 or -1. */
int health_check_start(struct health_check *hc);
/* Cancels any check in flight; cb is not called again. */
void health_check_free(struct health_check *hc);
const struct health_sm *health_check_sm(const struct health_check *hc);
const struct health_info *health_check_info(const struct health_check *hc);
/* health_sm_force_down on the check's state machine. */
bool health_check_force_down(struct health_check *hc);

/* Passive ejection: consecutive failed connects from real traffic. */
struct health_passive {
    unsigned max_failures; /* 0: off */
    unsigned failures;
};
/* Records a connect result; true when this failure reaches max_failures
 * (the count then starts over). A success resets the count. */
bool health_passive_record(struct health_passive *p, bool ok);

/* Effective weight elapsed_ms after a target came up, ramping linearly from
 * about 1/20 of weight (at least 1) to weight over slow_start_ms. weight 0
 * stays 0; slow_start_ms 0 or elapsed >= slow_start_ms gives weight. */
unsigned health_slow_start_weight(unsigned weight, uint64_t elapsed_ms, unsigned slow_start_ms);

#endif
