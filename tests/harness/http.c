/* harness/http: a small HTTP/1.1 client for lb's admin API and for HTTP
 * backends behind lb: one request per connection (Connection: close), the
 * answer read to EOF, chunked bodies decoded, headers looked up by name;
 * harness_call parses JSON answers into documents freed at teardown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness/internal.h"

#define HTTP_RESPONSE_MAX (64 * 1024 * 1024)

/* Reads until EOF into a malloc'd buffer (the caller frees); -1 on timeout,
 * error before EOF with nothing read, or more than HTTP_RESPONSE_MAX. */
static ssize_t http_read_all(int fd, char **out, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap + 1);
    ck_assert_msg(buf != NULL, "harness: out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= HTTP_RESPONSE_MAX)
                goto fail;
            cap *= 2;
            buf = realloc(buf, cap + 1);
            ck_assert_msg(buf != NULL, "harness: out of memory");
        }
        ssize_t n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            if (len > 0)
                break; /* a reset after the answer: keep what came */
            goto fail;
        }
        if (!harness_wait_fd(fd, POLLIN, deadline))
            goto fail;
    }
    buf[len] = '\0';
    *out = buf;
    return (ssize_t)len;
fail:
    free(buf);
    return -1;
}

/* Decodes a chunked body in place; its new length, or -1 when malformed. */
static ssize_t http_unchunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(body + in, len - in, "\r\n", 2);
        if (!eol)
            return -1;
        char *end;
        unsigned long size = strtoul(body + in, &end, 16);
        if (end == body + in)
            return -1;
        in = (size_t)(eol - body) + 2;
        if (size == 0)
            return (ssize_t)out;
        if (size > len - in)
            return -1;
        memmove(body + out, body + in, size);
        out += size;
        in += size + 2;
        if (in > len)
            return -1;
    }
}

const char *harness_http_header(const char *resp_headers, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = resp_headers;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            const char *end = p + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            return harness_strf("%.*s", (int)(end - v), v);
        }
        p = eol ? eol + 2 : NULL;
    }
    return NULL;
}

/* Splits a whole response into status, headers and body. 0 or -1. */
static int http_parse(char *resp, size_t len, int *status, const char **resp_headers,
                      const char **resp_body)
{
    int code;
    if (sscanf(resp, "HTTP/1.%*[01] %3d", &code) != 1)
        return -1;
    char *head_end = memmem(resp, len, "\r\n\r\n", 4);
    if (!head_end)
        return -1;
    char *line_end = strstr(resp, "\r\n");
    const char *headers = harness_strf("%.*s", (int)(head_end + 2 - (line_end + 2)), line_end + 2);
    char *body = head_end + 4;
    size_t blen = len - (size_t)(body - resp);
    const char *te = harness_http_header(headers, "Transfer-Encoding");
    const char *cl = harness_http_header(headers, "Content-Length");
    if (te && strcasecmp(te, "chunked") == 0) {
        ssize_t n = http_unchunk(body, blen);
        if (n < 0)
            return -1;
        blen = (size_t)n;
    } else if (cl && strtoul(cl, NULL, 10) < blen) {
        blen = strtoul(cl, NULL, 10);
    }
    char *copy = harness_keep(blen + 1);
    memcpy(copy, body, blen);
    copy[blen] = '\0';
    if (status)
        *status = code;
    if (resp_headers)
        *resp_headers = headers;
    if (resp_body)
        *resp_body = copy;
    return 0;
}

int harness_http_to(const char *host, int port, const char *method, const char *path,
                    const char *headers, const void *body, size_t len, int *status,
                    const char **resp_headers, const char **resp_body)
{
    int fd = harness_connect(host, port, HARNESS_WAIT_MS);
    if (fd < 0)
        return -1;
    const char *hostport = harness_hostport(host, port);
    const char *length = body ? harness_strf("Content-Length: %zu\r\n", len) : "";
    const char *head = harness_strf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s%s\r\n",
                                    method, path, hostport, headers ? headers : "", length);
    /* A server may answer and close before reading all of a large body:
     * a failed send is not an error as long as an answer arrives. */
    if (harness_send_all(fd, head, strlen(head), HARNESS_WAIT_MS) && body)
        harness_send_all(fd, body, len, HARNESS_WAIT_MS);
    char *resp;
    ssize_t n = http_read_all(fd, &resp, HARNESS_WAIT_MS);
    close(fd);
    if (n < 0)
        return -1;
    int rc = http_parse(resp, (size_t)n, status, resp_headers, resp_body);
    free(resp);
    return rc;
}

int harness_http(int port, const char *method, const char *path, const char *headers,
                 const char *body, int *status, const char **resp_headers, const char **resp_body)
{
    return harness_http_to("127.0.0.1", port, method, path, headers, body, body ? strlen(body) : 0,
                           status, resp_headers, resp_body);
}

struct harness_reply harness_call(int port, const char *method, const char *path,
                                  const char *headers, const char *body)
{
    struct harness_reply r = {0};
    int rc = harness_http(port, method, path, headers, body, &r.status, &r.headers, &r.body);
    ck_assert_msg(rc == 0, "%s %s: no HTTP answer", method, path);
    const char *type = harness_http_header(r.headers, "Content-Type");
    if (type && strcmp(type, "application/json") == 0) {
        json_error_t err;
        r.json = json_loads(r.body, 0, &err);
        ck_assert_msg(r.json != NULL, "%s %s: bad JSON (%s): %s", method, path, err.text, r.body);
        harness_jkeep(r.json);
        size_t len = strlen(r.body);
        ck_assert_msg(len > 0 && r.body[len - 1] == '\n', "no final newline: %s", r.body);
    }
    return r;
}
