/* health_internal: what the files of health/ share and nobody else uses:
 * the random source behind the jitter and the protocol half of the http
 * check (the request bytes and the verdict on the response so far). */
#ifndef LB_HEALTH_INTERNAL_H
#define LB_HEALTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* Most response bytes an http check buffers; reaching it counts as EOF. */
#define CHECK_HTTP_READ_MAX (64 * 1024)
/* Longest escaped expect_body quoted in an error, before "...". */
#define CHECK_HTTP_QUOTE_MAX 64

/* Uniform in [0, 1) from a small PRNG seeded once from the kernel. */
double health_random(void);

enum check_verdict { CHECK_PENDING, CHECK_OK, CHECK_FAIL };

/* The request an http check sends, NUL-terminated, malloc'd; its length in
 * *len. Uses conf->method, conf->path ("GET", "/" when NULL) and host.
 * NULL on ENOMEM. */
char *check_http_request(const struct lb_health_conf *conf, const char *host, size_t *len);

/* Judges the first len response bytes. eof: no more will come (the peer
 * closed or the read cap was reached). CHECK_PENDING: read more (never when
 * eof). CHECK_OK: msg holds the detail ("http status 200", "https status 200"
 * for an https check). CHECK_FAIL: msg holds the error. msg is always
 * NUL-terminated. */
enum check_verdict check_http_judge(const struct lb_health_conf *conf, const char *buf, size_t len,
                                    bool eof, char *msg, size_t msglen);

#endif
