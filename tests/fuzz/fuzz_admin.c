/* fuzz_admin: an admin API request (lb/admin/admin_request.h) on any bytes,
 * as lb/admin/admin_http.c and lb/admin/admin.c read it: the head is found
 * (blank lines before it skipped, a bare LF refused, at most
 * ADMIN_HEAD_MAX bytes: what conn_check_head() does on its evbuffer),
 * split by admin_head_parse(), its target routed by admin_path_parse() and
 * admin_route_find(), and the body of a PATCH (the bytes after the head,
 * when its Content-Length of them are in) checked by admin_change_parse().
 *
 * Checked, trapping otherwise: a refusal is a documented status with a
 * reason; a parsed head's strings lie in the head, its method is a known
 * bit and at most ADMIN_METHOD_MAX long; a path has 1..ADMIN_MAX_SEGMENTS
 * non-empty segments ("/" alone none) and a route matches as many as its
 * pattern has; a
 * PATCH body is accepted with something to change, or refused with 400 or
 * 415 and a message of printable ASCII (it goes into a JSON answer, which
 * must stay valid UTF-8 whatever the client sent). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/admin_request.h"

static bool in_head(const char *s, const char *head, size_t len)
{
    return s == NULL || (s >= head && s + strlen(s) <= head + len);
}

static void check_path(const char *target)
{
    struct admin_path p;
    if (admin_path_parse(target, &p) < 0) {
        if (p.buf || p.n)
            __builtin_trap();
        return;
    }
    /* No segment only for "/" (with or without a query). */
    if (!p.buf || p.n > ADMIN_MAX_SEGMENTS ||
        (p.n == 0 && (target[0] != '/' || (target[1] && !strchr("?#", target[1])))))
        __builtin_trap();
    for (size_t i = 0; i < p.n; i++)
        if (!p.seg[i] || !*p.seg[i])
            __builtin_trap();
    const struct admin_route *r = admin_route_find(&p);
    if (r) {
        size_t n = 0;
        while (r->pattern[n])
            n++;
        if (n != p.n || r->id >= ADMIN_ROUTES || !r->methods || !r->allow)
            __builtin_trap();
    }
    free(p.buf);
}

static void check_change(const struct admin_request *req, const char *body)
{
    struct admin_change c;
    char msg[1024];
    msg[0] = '\0';
    int status =
        admin_change_parse(req->content_type, body, req->content_length, &c, msg, sizeof(msg));
    if (status == 0) {
        if ((!c.set_state && !c.set_weight) || (c.set_weight && c.weight > LB_WEIGHT_MAX))
            __builtin_trap();
        return;
    }
    if ((status != 400 && status != 415) || !msg[0])
        __builtin_trap();
    for (const char *m = msg; *m; m++)
        if ((unsigned char)*m < 0x20 || (unsigned char)*m > 0x7e)
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    while (size >= 2 && buf[0] == '\r' && buf[1] == '\n') {
        buf += 2;
        size -= 2;
    }
    const char *end = memmem(buf, size, "\r\n\r\n", 4);
    size_t upto = end ? (size_t)(end - buf) + 4 : size;
    for (size_t i = 0; i < upto && i < ADMIN_HEAD_MAX; i++)
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            return 0; /* 400 before any parse */
    if (!end || upto > ADMIN_HEAD_MAX)
        return 0; /* more to wait for, or 431 */
    size_t head_len = upto;

    /* As serve_head() does: a copy, the final empty line's CRLF dropped. */
    char *head = malloc(head_len + 1);
    if (!head)
        abort();
    memcpy(head, buf, head_len);
    head[head_len] = '\0';
    head[head_len - 2] = '\0';
    struct admin_head h;
    const char *why = NULL;
    int status = admin_head_parse(head, head_len - 2, &h, &why);
    if (status != 0) {
        if ((status != 400 && status != 413 && status != 417 && status != 501 && status != 505) ||
            !why || !*why)
            __builtin_trap();
        free(head);
        return 0;
    }
    const struct admin_request *req = &h.req;
    if (!req->method_name || req->method_name != h.method || strlen(h.method) == 0 ||
        strlen(h.method) > ADMIN_METHOD_MAX || !req->target || !*req->target ||
        !in_head(req->target, head, head_len) || !in_head(req->authorization, head, head_len) ||
        !in_head(req->content_type, head, head_len) || req->method == 0 ||
        (req->method & (req->method - 1)) != 0 || req->method > ADMIN_OTHER ||
        (h.http10 && h.expect_continue))
        __builtin_trap();
    check_path(req->target);
    if (req->method == ADMIN_PATCH && req->content_length <= ADMIN_BODY_MAX &&
        size - head_len >= req->content_length) {
        /* As serve_request() hands it: the body, a NUL after it. */
        char *body = malloc(req->content_length + 1);
        if (!body)
            abort();
        memcpy(body, buf + head_len, req->content_length);
        body[req->content_length] = '\0';
        check_change(req, body);
        free(body);
    }
    free(head);
    return 0;
}
