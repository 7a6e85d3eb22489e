/* harness: what the integration tests share. A temp dir per test, free
 * loopback ports, child processes (lb, demo-backend, servers running a
 * function of the test) that never outlive the test, lb configs built as
 * JSON documents, and socket, HTTP and log helpers. Every wait has a
 * deadline, so a broken lb fails a test instead of hanging it.
 *
 * One header for the tests; the helpers are declared by concern in
 * tests/harness/NAME.h and defined in the matching tests/harness/NAME.c:
 *   core   temp dir, setup/teardown, clock, strings and files freed at teardown
 *   proc   spawned processes, lb start/stop/signal/rewrite/pipe, /proc counts
 *   net    ports and addresses, connect/send/recv with deadlines, byte streams
 *   log    log file contents, counts and waits
 *   http   HTTP client, admin API calls
 *   json   JSON documents by dotted path, documents kept until teardown
 *   conf   lb configs built as JSON documents (the usual one, pieces)
 *   netns  a network namespace of the test's own
 *   server backends from a C function (harness_server), a held accept queue
 *   hconn  a keep-alive HTTP client connection, responses one at a time
 *   hserver HTTP backends as harness_server functions (echo, big, broken)
 *   pki    a test CA and certificates made with the openssl tool (back-dated,
 *          expired, RSA, behind an intermediate) */
#ifndef LB_TESTS_HARNESS_H
#define LB_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "tests/harness/core.h"
#include "tests/harness/proc.h"
#include "tests/harness/net.h"
#include "tests/harness/log.h"
#include "tests/harness/http.h"
#include "tests/harness/json.h"
#include "tests/harness/conf.h"
#include "tests/harness/netns.h"
#include "tests/harness/server.h"
#include "tests/harness/hconn.h"
#include "tests/harness/hserver.h"
#include "tests/harness/pki.h"

#endif
