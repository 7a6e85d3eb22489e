/* check_http: the protocol half of the http check, with no socket in sight:
 * the request it sends and the verdict on the response bytes read so far.
 * The status line is parsed strictly; a backend's bytes are hostile, so
 * nothing of them is echoed and the buffer they sit in is bounded by the
 * caller (CHECK_HTTP_READ_MAX). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health/health_internal.h"

#define STATUS_LINE_MIN 13 /* "HTTP/1.1 200" and one of ' ' or '\r' */

/* Builds "METHOD PATH HTTP/1.1" with Host, User-Agent, Accept and
 * Connection: close, so that the backend ends the response with EOF. */
char *check_http_request(const struct lb_health_conf *conf, const char *host, size_t *len)
{
    const char *method = conf->method ? conf->method : "GET";
    const char *path = conf->path ? conf->path : "/";
    char *req = NULL;
    int n;

    n = asprintf(&req,
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lb-health-check\r\n"
                 "Accept: */*\r\nConnection: close\r\n\r\n",
                 method, path, host);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return req;
}

/* Quotes the expected text for an error message: printable ASCII as is, "
 * and \ backslashed, any other byte as \xNN; cut after CHECK_HTTP_QUOTE_MAX
 * output characters (never inside an escape) with "...". */
static void http_quote(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    size_t i;

    for (i = 0; src[i]; i++) {
        unsigned char c = (unsigned char)src[i];
        char tmp[5];
        int n;
        if (c == '"' || c == '\\')
            n = snprintf(tmp, sizeof(tmp), "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            n = snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        else
            n = snprintf(tmp, sizeof(tmp), "%c", c);
        if (o + (size_t)n > CHECK_HTTP_QUOTE_MAX || o + (size_t)n + 4 > cap)
            break;
        memcpy(dst + o, tmp, (size_t)n);
        o += (size_t)n;
    }
    if (src[i] && o + 4 <= cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

/* Parses "HTTP/1.0 " or "HTTP/1.1 ", three digits, then ' ' or CRLF, as far
 * as len bytes go. 1: *status is set; 0: a valid prefix, more bytes needed;
 * -1: not an HTTP/1.x status line (known as soon as one byte is wrong). */
static int http_status_line(const char *buf, size_t len, unsigned *status)
{
    static const char proto[] = "HTTP/1.";
    size_t i;

    for (i = 0; i < len && i < STATUS_LINE_MIN + 1; i++) {
        char c = buf[i];
        int good;
        if (i < 7)
            good = c == proto[i];
        else if (i == 7)
            good = c == '0' || c == '1';
        else if (i == 8)
            good = c == ' ';
        else if (i < 12)
            good = c >= '0' && c <= '9';
        else if (i == 12)
            good = c == ' ' || c == '\r';
        else
            good = buf[12] == ' ' || c == '\n';
        if (!good)
            return -1;
    }
    if (len < STATUS_LINE_MIN || (buf[12] == '\r' && len < STATUS_LINE_MIN + 1))
        return 0;
    *status = (unsigned)((buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0'));
    return 1;
}

/* With expect_body: whether the body (after the blank line ending the
 * headers) holds it. False also while the headers are not complete. */
static bool http_body_has(const char *buf, size_t len, const char *expect)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    const char *body;

    if (!end)
        return false;
    body = end + 4;
    return memmem(body, len - (size_t)(body - buf), expect, strlen(expect)) != NULL;
}

/* The verdict, in order: status line (bad / closed before it), status
 * range, then the body when conf->expect_body is set. */
enum check_verdict check_http_judge(const struct lb_health_conf *conf, const char *buf, size_t len,
                                    bool eof, char *msg, size_t msglen)
{
    char quoted[CHECK_HTTP_QUOTE_MAX + 4];
    unsigned status = 0;
    int r = http_status_line(buf, len, &status);

    msg[0] = '\0';
    if (r < 0) {
        snprintf(msg, msglen, "bad http response");
        return CHECK_FAIL;
    }
    if (r == 0) {
        if (!eof)
            return CHECK_PENDING;
        snprintf(msg, msglen, "connection closed before response");
        return CHECK_FAIL;
    }
    snprintf(msg, msglen, "%s status %03u", conf->type == LB_CHECK_HTTPS ? "https" : "http",
             status);
    if (status < conf->status_min || status > conf->status_max)
        return CHECK_FAIL;
    if (!conf->expect_body || http_body_has(buf, len, conf->expect_body))
        return CHECK_OK;
    if (!eof)
        return CHECK_PENDING;
    http_quote(quoted, sizeof(quoted), conf->expect_body);
    snprintf(msg, msglen, "body does not contain \"%s\"", quoted);
    return CHECK_FAIL;
}
