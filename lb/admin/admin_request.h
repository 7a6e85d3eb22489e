/* admin_request: what reading an admin API request takes that needs no
 * socket, no event and no runtime: splitting its head (for admin_http.c),
 * its path and route, and checking a backend PATCH's body (for admin.c).
 * Pure functions on the bytes, so tests/fuzz/fuzz_admin.c drives each on
 * any input. */
#ifndef LB_ADMIN_ADMIN_REQUEST_H
#define LB_ADMIN_ADMIN_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "lb/admin/admin_http.h"
#include "lb/pool.h"

/* The longest method name accepted; a longer one is a 501. */
#define ADMIN_METHOD_MAX 16
/* Path segments a route may have. */
#define ADMIN_MAX_SEGMENTS 8

/* One request head, split. req holds method, method_name (pointing to
 * method below: a struct copied elsewhere must point it again), target,
 * authorization, content_type and content_length, as far as the parse got;
 * its other fields are zero. */
struct admin_head {
    struct admin_request req;
    char method[ADMIN_METHOD_MAX + 1];
    bool http10;          /* an HTTP/1.0 request: keep-alive is said, not assumed */
    bool keep_alive;      /* the client allows another request */
    bool expect_continue; /* "Expect: 100-continue" on HTTP/1.1 */
};

/* Splits head (len bytes and a NUL, CRLF line ends, the final empty line
 * removed) in place into *h (zeroed first; the strings point into head).
 * 0, or the status to refuse the request with and *why: 400 (a NUL, a
 * control byte, a CR or LF outside a CRLF, a malformed request or header
 * line, obs-fold, a bad or conflicting Content-Length, a second
 * Authorization or Content-Type), 413 (a Content-Length of 10 digits or
 * more), 417 (an Expect other than 100-continue), 501 (a method name over
 * ADMIN_METHOD_MAX, any Transfer-Encoding) or 505 (HTTP/ but not 1.0 or
 * 1.1). http10, keep_alive and expect_continue mean something only on 0. */
int admin_head_parse(char *head, size_t len, struct admin_head *h, const char **why);

/* The API's routes (docs/admin-api.md). */
enum admin_route_id {
    ADMIN_ROUTE_DASHBOARD,
    ADMIN_ROUTE_HEALTHZ,
    ADMIN_ROUTE_METRICS,
    ADMIN_ROUTE_STATUS,
    ADMIN_ROUTE_LISTENERS,
    ADMIN_ROUTE_POOLS,
    ADMIN_ROUTE_POOL,
    ADMIN_ROUTE_BACKEND,
    ADMIN_ROUTE_RELOAD,
    ADMIN_ROUTES
};

/* A request path split into percent-decoded segments ("/api/v1/pools/app"
 * is api, v1, pools, app; "/" is none); they point into buf (malloc'ed:
 * free it). */
struct admin_path {
    char *buf;
    char *seg[ADMIN_MAX_SEGMENTS];
    size_t n;
};

struct admin_route {
    const char *pattern[ADMIN_MAX_SEGMENTS + 1]; /* NULL-terminated; "*" matches one segment */
    bool public;                                 /* served to anyone */
    unsigned methods;                            /* enum admin_method bits */
    const char *allow;                           /* the Allow header of a 405 */
    enum admin_route_id id;
};

/* Splits the request's path (before any '?' or '#') into decoded segments
 * ('%' and two hex digits is the byte; any other '%' stays); "/" alone has
 * none (p->n is 0). 0, or -1 when no route can match it (not "/...", an
 * empty segment, more than ADMIN_MAX_SEGMENTS, a NUL decoded) or memory ran
 * out; p->buf is then NULL. */
int admin_path_parse(const char *uri, struct admin_path *p);

/* The route whose pattern p matches, NULL for none. */
const struct admin_route *admin_route_find(const struct admin_path *p);

/* What a backend's PATCH body asks for. */
struct admin_change {
    bool set_state;
    enum backend_admin state;
    bool set_weight;
    unsigned weight;
};

/* Checks a PATCH body (len bytes at body, of Content-Type content_type,
 * NULL for none) into *c before anything changes: 0, or 415 (not
 * application/json) or 400 (not JSON, duplicate keys, not an object, empty,
 * an unknown key, a state other than drain, disable or enable, a weight not
 * an integer 0..LB_WEIGHT_MAX) with the message for the answer in msg
 * (client text escaped). */
int admin_change_parse(const char *content_type, const char *body, size_t len,
                       struct admin_change *c, char *msg, size_t msglen);

#endif
