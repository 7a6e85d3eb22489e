/* admin_internal: what the files of the admin API (lb/admin/admin.c, the
 * routes and handlers, and lb/admin/admin_json.c, the JSON views of the
 * runtime) share and nobody else uses. */
#ifndef LB_ADMIN_INTERNAL_H
#define LB_ADMIN_INTERNAL_H

#include <stddef.h>

#include <jansson.h>

struct runtime;
struct pool;
struct backend;
struct admin_http_stats;

/* Longest client text echoed in an error or a log line, in source bytes. */
#define ADMIN_ECHO_MAX 64
/* A buffer that always holds config_text_escape()'s output for max ADMIN_ECHO_MAX. */
#define ADMIN_ESCAPE_SIZE (ADMIN_ECHO_MAX * 4 + 4)

/* The JSON views of the API (docs/admin-api.md). Each returns a new
 * reference, or NULL when out of memory. They only read the runtime. */
/* admin: the admin server's counters ("admin": null when NULL). */
json_t *admin_json_status(const struct runtime *rt, const struct admin_http_stats *admin);
json_t *admin_json_listeners(const struct runtime *rt);
json_t *admin_json_pools(const struct runtime *rt);
json_t *admin_json_pool(const struct runtime *rt, const struct pool *pool);
json_t *admin_json_backend(const struct runtime *rt, const struct backend *b);

#endif
