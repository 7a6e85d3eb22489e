/* harness/conf: the usual test config (one listener "web" to pool "app")
 * as text for lb's config file. */
#include "tests/harness/internal.h"

const char *harness_config(const struct harness_conf *c)
{
    return harness_strf(
        "{\n"
        "  \"log\": {\"level\": \"info\"},\n"
        "  \"shutdown_grace_ms\": %u,\n"
        "  \"listeners\": [{\"name\": \"web\", \"listen\": \"%s\", \"mode\": \"tcp\",\n"
        "                 \"pool\": \"app\", \"max_connections\": %u, \"idle_timeout_ms\": %u}],\n"
        "  \"pools\": [{\"name\": \"app\", \"strategy\": \"%s\", \"connect_timeout_ms\": %u,\n"
        "             \"retries\": %u, %s\"backends\": [%s]}]\n"
        "}\n",
        c->grace_ms ? c->grace_ms : 10000, c->listen,
        c->max_connections ? c->max_connections : 10000,
        c->idle_timeout_ms ? c->idle_timeout_ms : 300000, c->strategy ? c->strategy : "roundrobin",
        c->connect_timeout_ms ? c->connect_timeout_ms : 3000, c->retries,
        c->pool_extra ? c->pool_extra : "", c->backends);
}
