/* admin_request: an admin request's head, path, route and PATCH body, read
 * without a socket (see lb/admin/admin_request.h). admin_http.c splits the
 * head with admin_head_parse(); admin.c routes with admin_path_parse() and
 * admin_route_find() and checks a PATCH with admin_change_parse(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "lb/admin/admin_internal.h"
#include "lb/admin/admin_request.h"

#define CONTENT_TYPE_JSON "application/json"

/* --- the head --- */

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static unsigned method_bit(const char *m)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {{"GET", ADMIN_GET},        {"HEAD", ADMIN_HEAD},     {"POST", ADMIN_POST},
                   {"PUT", ADMIN_PUT},        {"DELETE", ADMIN_DELETE}, {"PATCH", ADMIN_PATCH},
                   {"OPTIONS", ADMIN_OPTIONS}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i].name) == 0)
            return methods[i].bit;
    return ADMIN_OTHER;
}

/* True when the comma-separated list s holds token (any case). */
static bool list_has(const char *s, const char *token)
{
    size_t n = strlen(token);
    while (*s) {
        s += strspn(s, " \t,");
        size_t len = strcspn(s, ",");
        size_t end = len;
        while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        if (end == n && strncasecmp(s, token, n) == 0)
            return true;
        s += len;
    }
    return false;
}

int admin_head_parse(char *head, size_t len, struct admin_head *h, const char **why)
{
    struct admin_request *r = &h->req;
    bool http10 = false, has_length = false, conn_close = false, conn_keep = false;

    memset(h, 0, sizeof(*h));
    /* A NUL would end the scans below early: refused like any control byte. */
    if (memchr(head, '\0', len)) {
        *why = "malformed request head";
        return 400;
    }
    /* Every line ends in CRLF; no other CR or LF, no control byte but tab. */
    for (char *p = head; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\r' && p[1] == '\n') {
            p[0] = '\0';
            p[1] = '\0';
            p++;
            continue;
        }
        if (ch == '\r' || ch == '\n' || (ch < 0x20 && ch != '\t') || ch == 0x7f) {
            *why = "malformed request head";
            return 400;
        }
    }
    char *line = head;
    char *end = head + strlen(head); /* the request line */

    /* METHOD SP TARGET SP HTTP/1.x */
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') || sp1 == line || sp2 == sp1 + 1) {
        *why = "malformed request line";
        return 400;
    }
    *sp1 = *sp2 = '\0';
    for (char *m = line; *m; m++)
        if (!is_tchar((unsigned char)*m)) {
            *why = "malformed request line";
            return 400;
        }
    if (sp1 - line > ADMIN_METHOD_MAX) {
        *why = "method name too long";
        return 501;
    }
    for (char *t = sp1 + 1; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f) {
            *why = "malformed request line";
            return 400;
        }
    const char *version = sp2 + 1;
    if (strcmp(version, "HTTP/1.0") == 0) {
        http10 = true;
    } else if (strcmp(version, "HTTP/1.1") != 0) {
        if (strncmp(version, "HTTP/", 5) == 0 && version[5] >= '0' && version[5] <= '9') {
            *why = "only HTTP/1.0 and HTTP/1.1 are supported";
            return 505;
        }
        *why = "malformed request line";
        return 400;
    }
    memcpy(h->method, line, (size_t)(sp1 - line) + 1);
    r->method_name = h->method;
    r->method = method_bit(h->method);
    r->target = sp1 + 1;

    /* Header lines: NAME ":" OWS VALUE OWS. */
    for (line = end + 2; *line; line = end + 2) {
        end = line + strlen(line);
        if (*line == ' ' || *line == '\t') {
            *why = "obsolete line folding in a header";
            return 400;
        }
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            *why = "malformed header line";
            return 400;
        }
        *colon = '\0';
        for (char *n = line; *n; n++)
            if (!is_tchar((unsigned char)*n)) {
                *why = "malformed header line";
                return 400;
            }
        char *v = colon + 1;
        v += strspn(v, " \t");
        char *ve = end;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            *--ve = '\0';

        if (strcasecmp(line, "Content-Length") == 0) {
            size_t n = strspn(v, "0123456789");
            if (n == 0 || v[n] != '\0' || n > 9) {
                *why = n > 9 && v[n] == '\0' ? "request body too large" : "bad Content-Length";
                return n > 9 && v[n] == '\0' ? 413 : 400;
            }
            size_t len = (size_t)strtoul(v, NULL, 10);
            if (has_length && len != r->content_length) {
                *why = "conflicting Content-Length headers";
                return 400;
            }
            has_length = true;
            r->content_length = len;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            *why = "Transfer-Encoding is not supported: send Content-Length";
            return 501;
        } else if (strcasecmp(line, "Connection") == 0) {
            conn_close |= list_has(v, "close");
            conn_keep |= list_has(v, "keep-alive");
        } else if (strcasecmp(line, "Expect") == 0) {
            if (strcasecmp(v, "100-continue") != 0) {
                *why = "only Expect: 100-continue is supported";
                return 417;
            }
            h->expect_continue = !http10;
        } else if (strcasecmp(line, "Authorization") == 0) {
            if (r->authorization) {
                *why = "more than one Authorization header";
                return 400;
            }
            r->authorization = v;
        } else if (strcasecmp(line, "Content-Type") == 0) {
            if (r->content_type) {
                *why = "more than one Content-Type header";
                return 400;
            }
            r->content_type = v;
        }
    }
    h->http10 = http10;
    h->keep_alive = http10 ? conn_keep && !conn_close : !conn_close;
    return 0;
}

/* --- the path and the route --- */

static const struct admin_route routes[] = {
    {{NULL}, true, ADMIN_GET, "GET", ADMIN_ROUTE_DASHBOARD},
    {{"healthz", NULL}, true, ADMIN_GET, "GET", ADMIN_ROUTE_HEALTHZ},
    {{"metrics", NULL}, false, ADMIN_GET, "GET", ADMIN_ROUTE_METRICS},
    {{"api", "v1", "status", NULL}, false, ADMIN_GET, "GET", ADMIN_ROUTE_STATUS},
    {{"api", "v1", "listeners", NULL}, false, ADMIN_GET, "GET", ADMIN_ROUTE_LISTENERS},
    {{"api", "v1", "pools", NULL}, false, ADMIN_GET, "GET", ADMIN_ROUTE_POOLS},
    {{"api", "v1", "pools", "*", NULL}, false, ADMIN_GET, "GET", ADMIN_ROUTE_POOL},
    {{"api", "v1", "pools", "*", "backends", "*", NULL},
     false,
     ADMIN_GET | ADMIN_PATCH,
     "GET, PATCH",
     ADMIN_ROUTE_BACKEND},
    {{"api", "v1", "reload", NULL}, false, ADMIN_POST, "POST", ADMIN_ROUTE_RELOAD},
};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s in place ("%5B%3A%3A1%5D%3A9002" is "[::1]:9002"); a
 * '%' not followed by two hex digits stays as it is. False when the result
 * would hold a NUL. */
static bool segment_decode(char *s)
{
    char *o = s;
    for (const char *i = s; *i; i++) {
        int hi, lo;
        if (*i == '%' && (hi = hex_value(i[1])) >= 0 && (lo = hex_value(i[2])) >= 0) {
            *o = (char)(hi * 16 + lo);
            if (*o == '\0')
                return false;
            o++;
            i += 2;
            continue;
        }
        *o++ = *i;
    }
    *o = '\0';
    return true;
}

int admin_path_parse(const char *uri, struct admin_path *p)
{
    memset(p, 0, sizeof(*p));
    if (!uri || uri[0] != '/')
        return -1;
    p->buf = strndup(uri + 1, strcspn(uri + 1, "?#"));
    if (!p->buf)
        return -1;
    char *s = p->buf;
    if (*s == '\0')
        return 0; /* "/": no segment */
    for (;;) {
        char *slash = strchr(s, '/');
        if (slash)
            *slash = '\0';
        if (*s == '\0' || p->n == ADMIN_MAX_SEGMENTS || !segment_decode(s))
            goto fail;
        p->seg[p->n++] = s;
        if (!slash)
            return 0;
        s = slash + 1;
    }
fail:
    free(p->buf);
    p->buf = NULL;
    p->n = 0;
    return -1;
}

const struct admin_route *admin_route_find(const struct admin_path *p)
{
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++) {
        const char *const *pat = routes[r].pattern;
        size_t i = 0;
        while (i < p->n && pat[i] && (strcmp(pat[i], "*") == 0 || strcmp(pat[i], p->seg[i]) == 0))
            i++;
        if (i == p->n && pat[i] == NULL)
            return &routes[r];
    }
    return NULL;
}

/* --- a PATCH of a backend --- */

/* True for "application/json", with any parameters ("; charset=utf-8"). */
static bool content_type_json(const char *type)
{
    size_t n = strlen(CONTENT_TYPE_JSON);
    if (!type)
        return false;
    while (*type == ' ' || *type == '\t')
        type++;
    if (strncasecmp(type, CONTENT_TYPE_JSON, n) != 0)
        return false;
    type += n;
    while (*type == ' ' || *type == '\t')
        type++;
    return *type == '\0' || *type == ';';
}

/* Reads one key of the PATCH body into c. 0, or -1 with msg. */
static int change_key(const char *key, json_t *v, struct admin_change *c, char *msg, size_t msglen)
{
    static const struct {
        const char *verb;
        enum backend_admin state;
    } states[] = {
        {"drain", BACKEND_DRAINING}, {"disable", BACKEND_DISABLED}, {"enable", BACKEND_ENABLED}};
    char q[ADMIN_ESCAPE_SIZE];

    if (strcmp(key, "weight") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > LB_WEIGHT_MAX) {
            snprintf(msg, msglen, "\"weight\" must be an integer from 0 to %d", LB_WEIGHT_MAX);
            return -1;
        }
        c->set_weight = true;
        c->weight = (unsigned)json_integer_value(v);
        return 0;
    }
    if (strcmp(key, "state") == 0) {
        for (size_t i = 0; json_is_string(v) && i < sizeof(states) / sizeof(states[0]); i++) {
            if (strcmp(json_string_value(v), states[i].verb) == 0) {
                c->set_state = true;
                c->state = states[i].state;
                return 0;
            }
        }
        snprintf(msg, msglen, "\"state\" must be \"drain\", \"disable\" or \"enable\"");
        return -1;
    }
    snprintf(msg, msglen, "unknown key \"%s\" (expected \"state\" or \"weight\")",
             config_text_escape(q, sizeof(q), key, ADMIN_ECHO_MAX));
    return -1;
}

/* Replaces, in place, each byte of s that is not printable ASCII with '?':
 * jansson's messages quote the client's text near the error. */
static const char *printable(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return s;
}

int admin_change_parse(const char *content_type, const char *body, size_t len,
                       struct admin_change *c, char *msg, size_t msglen)
{
    if (!content_type_json(content_type)) {
        snprintf(msg, msglen, "Content-Type must be application/json");
        return 415;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(msg, msglen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 printable(jerr.text));
        return 400;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    memset(c, 0, sizeof(*c));
    if (!json_is_object(root)) {
        snprintf(msg, msglen, "the body must be a JSON object");
        rc = 400;
    } else if (json_object_size(root) == 0) {
        snprintf(msg, msglen, "the body must set \"state\" or \"weight\"");
        rc = 400;
    }
    json_object_foreach(root, key, v)
    {
        if (rc == 0 && change_key(key, v, c, msg, msglen) < 0)
            rc = 400;
    }
    json_decref(root);
    return rc;
}
