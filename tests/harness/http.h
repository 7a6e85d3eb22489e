/* harness/http: one HTTP/1.1 request per connection to lb's admin API or to
 * an HTTP backend, the answer split into status, headers and body; JSON
 * answers of the admin API parsed. */
#ifndef LB_TESTS_HARNESS_HTTP_H
#define LB_TESTS_HARNESS_HTTP_H

#include <stddef.h>

#include <jansson.h>

/* One HTTP/1.1 request to 127.0.0.1:port with "Connection: close", the
 * answer read until EOF (bounded by HARNESS_WAIT_MS). headers: extra header
 * lines, each ending in "\r\n" (NULL: none). body: NULL for none, else sent
 * with its Content-Length. Fills *status, *resp_headers (the header lines
 * after the status line, as received) and *resp_body (chunked bodies
 * decoded); the strings are freed at teardown and any out pointer may be
 * NULL. Returns 0, or -1 when the connect fails or the answer is not HTTP. */
int harness_http(int port, const char *method, const char *path, const char *headers,
                 const char *body, int *status, const char **resp_headers, const char **resp_body);
/* The same to any loopback host ("127.0.0.1", "::1"), with a body of len
 * bytes (which may hold NULs). */
int harness_http_to(const char *host, int port, const char *method, const char *path,
                    const char *headers, const void *body, size_t len, int *status,
                    const char **resp_headers, const char **resp_body);
/* The value of header name (case-insensitive) in resp_headers, without
 * surrounding spaces (freed at teardown); NULL when absent. */
const char *harness_http_header(const char *resp_headers, const char *name);

/* One answer of the admin API. */
struct harness_reply {
    int status;
    const char *headers;
    const char *body;
    json_t *json; /* parsed when Content-Type is application/json, else NULL */
};
/* One request to 127.0.0.1:port (fails the test without an answer). A JSON
 * answer is parsed (freed at teardown) and must end in a newline. */
struct harness_reply harness_call(int port, const char *method, const char *path,
                                  const char *headers, const char *body);

#endif
