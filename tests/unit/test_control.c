/* test_control: the backend control verbs (lb/control.h) on pools built by
 * hand, without health or an event loop: after each verb the backend's
 * availability, the pool's count of available backends and the weight, the
 * exact log lines, and that what a verb set survives a reload's adoption of
 * the backend into the next generation (pool_adopt_backend()). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lb/balance/balance.h"
#include "lb/control.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/pool_health.h"
#include "tests/test.h"

/* --- the log, into a file the test reads --- */

static int saved_stderr = -1;
static char log_path[64];

/* Points fd 2 at a fresh file and starts the log afresh. */
static void log_capture(void)
{
    snprintf(log_path, sizeof(log_path), "/tmp/lb-test-control-XXXXXX");
    int fd = mkstemp(log_path);
    ck_assert_int_ge(fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    close(fd);
    log_set_level(LB_LOG_INFO);
    log_init();
}

static void log_release(void)
{
    log_end(0);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
    if (log_path[0])
        unlink(log_path);
    log_path[0] = '\0';
}

/* Everything logged so far, each line without its timestamp, one string
 * (static; the next call replaces it). */
static const char *logged(void)
{
    static char text[8192];
    FILE *f = fopen(log_path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    text[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        const char *rest = strchr(line, ' '); /* after "2026-11-27T23:40:01.123Z" */
        ck_assert_ptr_nonnull(rest);
        ck_assert_uint_lt(strlen(text) + strlen(rest + 1), sizeof(text));
        strcat(text, rest + 1);
    }
    fclose(f);
    return text;
}

/* --- pools --- */

/* A pool "p" of n backends "a", "b", ... with weights (all 1 when NULL),
 * addresses 127.0.0.1:9001+i, built for strategy s. */
static struct pool *pool_make(enum lb_strategy s, size_t n, const unsigned *weights)
{
    struct pool *pool = pool_new("p", s);
    ck_assert_ptr_nonnull(pool);
    for (size_t i = 0; i < n; i++) {
        char name[8], address[32];
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9001 + i)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        snprintf(name, sizeof(name), "%c", (char)('a' + i));
        snprintf(address, sizeof(address), "127.0.0.1:%zu", 9001 + i);
        ck_assert_ptr_nonnull(pool_add_backend(pool, NULL, name, address, (struct sockaddr *)&sin,
                                               sizeof(sin), weights ? weights[i] : 1));
    }
    ck_assert_int_eq(pool_build(pool), 0);
    return pool;
}

/* The ids of n successive picks, concatenated ("-" for none). */
static const char *pick_seq(struct pool *pool, size_t n)
{
    static char out[64];
    struct pick_ctx ctx = {0};
    out[0] = '\0';
    for (size_t i = 0; i < n && i + 1 < sizeof(out); i++) {
        struct backend *b = pool_pick(pool, &ctx);
        strcat(out, b ? b->id : "-");
    }
    return out;
}

static void setup(void)
{
    log_capture();
}

static void teardown(void)
{
    log_release();
}

START_TEST(drain_then_enable)
{
    struct pool *pool = pool_make(LB_STRATEGY_ROUNDROBIN, 3, NULL);
    struct backend *b = pool->backends[1];

    ck_assert_int_eq(backend_set_admin_state(b, BACKEND_DRAINING), 0);
    ck_assert_int_eq(b->admin, BACKEND_DRAINING);
    ck_assert(!b->up);
    ck_assert(!backend_available(b));
    ck_assert_uint_eq(pool->navailable, 2);
    ck_assert_uint_eq(b->weight, 1);
    ck_assert_uint_eq(b->eff_weight, 1);
    ck_assert(!b->weight_overridden);
    ck_assert_str_eq(backend_state_name(b), "draining");
    ck_assert_str_eq(pick_seq(pool, 4), "acac");

    /* Asked again: nothing changes, nothing is logged. */
    ck_assert_int_eq(backend_set_admin_state(b, BACKEND_DRAINING), 0);
    ck_assert_uint_eq(pool->navailable, 2);

    ck_assert_int_eq(backend_set_admin_state(b, BACKEND_ENABLED), 0);
    ck_assert_int_eq(b->admin, BACKEND_ENABLED);
    ck_assert(b->up);
    ck_assert(backend_available(b));
    ck_assert_uint_eq(pool->navailable, 3);
    ck_assert_str_eq(backend_state_name(b), "up");
    ck_assert_str_eq(logged(), "info: admin: pool p backend b state drain (was up)\n"
                               "info: admin: pool p backend b state enable (was draining)\n");
    pool_release(pool);
}
END_TEST

START_TEST(disable_then_drain_then_enable)
{
    struct pool *pool = pool_make(LB_STRATEGY_LEASTCONN, 2, NULL);
    struct backend *a = pool->backends[0];

    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_DISABLED), 0);
    ck_assert_int_eq(a->admin, BACKEND_DISABLED);
    ck_assert(!backend_available(a));
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert_str_eq(backend_state_name(a), "disabled");
    ck_assert_str_eq(pick_seq(pool, 3), "bbb");

    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_DRAINING), 0);
    ck_assert(!backend_available(a));
    ck_assert_uint_eq(pool->navailable, 1);

    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_ENABLED), 0);
    ck_assert(backend_available(a));
    ck_assert_uint_eq(pool->navailable, 2);
    ck_assert_str_eq(logged(), "info: admin: pool p backend a state disable (was up)\n"
                               "info: admin: pool p backend a state drain (was disabled)\n"
                               "info: admin: pool p backend a state enable (was draining)\n");
    pool_release(pool);
}
END_TEST

/* Enabling a backend its health holds down leaves it down. */
START_TEST(enable_keeps_health_down)
{
    struct pool *pool = pool_make(LB_STRATEGY_ROUNDROBIN, 2, NULL);
    struct backend *a = pool->backends[0];
    a->health_down = true;
    backend_refresh(a);
    ck_assert_uint_eq(pool->navailable, 1);

    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_DRAINING), 0);
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_ENABLED), 0);
    ck_assert(!a->up);
    ck_assert(!backend_available(a));
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert_str_eq(backend_state_name(a), "down");
    ck_assert_str_eq(logged(), "info: admin: pool p backend a state drain (was down)\n"
                               "info: admin: pool p backend a state enable (was draining)\n");
    pool_release(pool);
}
END_TEST

/* The pool's last available backend: its "no available backend" line, and
 * the one when it has one again. */
START_TEST(last_backend)
{
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 1, NULL);
    struct backend *a = pool->backends[0];

    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_DISABLED), 0);
    ck_assert_uint_eq(pool->navailable, 0);
    ck_assert_ptr_null(pool_pick(pool, &(struct pick_ctx){0}));
    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_ENABLED), 0);
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert_ptr_eq(pool_pick(pool, &(struct pick_ctx){0}), a);
    ck_assert_str_eq(logged(), "error: pool p has no available backend\n"
                               "info: admin: pool p backend a state disable (was up)\n"
                               "info: pool p has an available backend again (1 of 1)\n"
                               "info: admin: pool p backend a state enable (was disabled)\n");
    pool_release(pool);
}
END_TEST

START_TEST(weight_override)
{
    const unsigned w[] = {1, 1};
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 2, w);
    struct backend *a = pool->backends[0], *b = pool->backends[1];

    ck_assert_int_eq(backend_set_weight_override(a, 3), 0);
    ck_assert_uint_eq(a->weight, 3);
    ck_assert_uint_eq(a->eff_weight, 3);
    ck_assert(a->weight_overridden);
    ck_assert(backend_available(a));
    ck_assert_uint_eq(pool->navailable, 2);
    ck_assert_str_eq(pick_seq(pool, 8), "aabaaaba");

    /* The weight it has already: overridden all the same, nothing logged. */
    ck_assert(!b->weight_overridden);
    ck_assert_int_eq(backend_set_weight_override(b, 1), 0);
    ck_assert(b->weight_overridden);
    ck_assert_uint_eq(b->weight, 1);

    /* Weight 0 takes it out like down; the last one out is logged. */
    ck_assert_int_eq(backend_set_weight_override(a, 0), 0);
    ck_assert_uint_eq(a->weight, 0);
    ck_assert(a->up);
    ck_assert(!backend_available(a));
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert_int_eq(backend_set_weight_override(b, 0), 0);
    ck_assert_uint_eq(pool->navailable, 0);
    ck_assert_ptr_null(pool_pick(pool, &(struct pick_ctx){0}));
    ck_assert_int_eq(backend_set_weight_override(b, 2), 0);
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert_str_eq(pick_seq(pool, 3), "bbb");

    /* Over the largest weight: the largest. */
    ck_assert_int_eq(backend_set_weight_override(a, LB_WEIGHT_MAX + 1), 0);
    ck_assert_uint_eq(a->weight, LB_WEIGHT_MAX);
    ck_assert_str_eq(logged(), "info: admin: pool p backend a weight 3 (was 1)\n"
                               "info: admin: pool p backend a weight 0 (was 3)\n"
                               "info: admin: pool p backend b weight 0 (was 1)\n"
                               "error: pool p has no available backend\n"
                               "info: admin: pool p backend b weight 2 (was 0)\n"
                               "info: pool p has an available backend again (1 of 2)\n"
                               "info: admin: pool p backend a weight 256 (was 0)\n");
    pool_release(pool);
}
END_TEST

/* Both verbs on one drained backend: the weight is kept for when it is
 * enabled again. */
START_TEST(weight_while_drained)
{
    struct pool *pool = pool_make(LB_STRATEGY_WEIGHTED, 2, NULL);
    struct backend *a = pool->backends[0];
    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_DRAINING), 0);
    ck_assert_int_eq(backend_set_weight_override(a, 4), 0);
    ck_assert_uint_eq(a->weight, 4);
    ck_assert(!backend_available(a));
    ck_assert_uint_eq(pool->navailable, 1);
    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_ENABLED), 0);
    ck_assert(backend_available(a));
    ck_assert_uint_eq(pool->navailable, 2);
    /* Weights 4 and 1, earliest deadline first (nginx's order was a a b a a). */
    ck_assert_str_eq(pick_seq(pool, 5), "aaaba");
    pool_release(pool);
}
END_TEST

/* What a reload does to a backend that stays: the next generation's pool
 * is built from the file (here every weight 2, and a new backend c), adopts
 * the old backends by id, then builds its strategy. The operator's weight
 * and state survive; a weight the operator did not set follows the file. */
START_TEST(override_survives_adoption)
{
    struct pool *old = pool_make(LB_STRATEGY_WEIGHTED, 2, NULL);
    struct backend *a = old->backends[0], *b = old->backends[1];
    ck_assert_int_eq(backend_set_weight_override(a, 5), 0);
    ck_assert_int_eq(backend_set_admin_state(b, BACKEND_DRAINING), 0);

    const unsigned w[] = {2, 2, 1};
    struct pool *next = pool_new("p", LB_STRATEGY_WEIGHTED);
    ck_assert_ptr_nonnull(next);
    for (size_t i = 0; i < 3; i++) {
        char name[8], address[32];
        snprintf(name, sizeof(name), "%c", (char)('a' + i));
        snprintf(address, sizeof(address), "127.0.0.1:%zu", 9001 + i);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9001 + i)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_ptr_nonnull(pool_add_backend(next, NULL, name, address, (struct sockaddr *)&sin,
                                               sizeof(sin), w[i]));
    }
    pool_adopt_backend(next, 0, a);
    pool_adopt_backend(next, 1, b);
    ck_assert_int_eq(pool_build(next), 0);
    pool_retire(old);

    ck_assert_ptr_eq(next->backends[0], a);
    ck_assert_ptr_eq(a->pool, next);
    ck_assert(a->weight_overridden);
    ck_assert_uint_eq(a->weight, 5);
    ck_assert_uint_eq(a->eff_weight, 5);
    ck_assert(backend_available(a));
    ck_assert_ptr_eq(next->backends[1], b);
    ck_assert(!b->weight_overridden);
    ck_assert_uint_eq(b->weight, 2);
    ck_assert_int_eq(b->admin, BACKEND_DRAINING);
    ck_assert(!backend_available(b));
    ck_assert_uint_eq(next->navailable, 2);
    /* a 5, c 1 (b drained), earliest deadline first (nginx's: a a a c a a). */
    ck_assert_str_eq(pick_seq(next, 6), "aaaaca");

    /* The verbs act on the new generation from now on. */
    ck_assert_int_eq(backend_set_admin_state(b, BACKEND_ENABLED), 0);
    ck_assert_uint_eq(next->navailable, 3);
    ck_assert_int_eq(backend_set_weight_override(a, 1), 0);
    ck_assert_uint_eq(a->weight, 1);
    ck_assert_str_eq(logged(), "info: admin: pool p backend a weight 5 (was 1)\n"
                               "info: admin: pool p backend b state drain (was up)\n"
                               "info: admin: pool p backend b state enable (was draining)\n"
                               "info: admin: pool p backend a weight 1 (was 5)\n");
    pool_release(old);
    pool_release(next);
}
END_TEST

/* A backend that outlived its pool (a session held it): the verbs refuse. */
START_TEST(no_pool)
{
    struct pool *pool = pool_make(LB_STRATEGY_ROUNDROBIN, 1, NULL);
    struct backend *a = pool->backends[0];
    a->refs++; /* a session's */
    pool_release(pool);
    ck_assert_ptr_null(a->pool);
    ck_assert_int_eq(backend_set_admin_state(a, BACKEND_DISABLED), -1);
    ck_assert_int_eq(backend_set_weight_override(a, 3), -1);
    ck_assert_int_eq(a->admin, BACKEND_ENABLED);
    ck_assert_uint_eq(a->weight, 1);
    ck_assert_str_eq(logged(), "");
    backend_release(a);
}
END_TEST

static Suite *control_suite(void)
{
    Suite *s = suite_create("control");
    TCase *tc = tcase_create("verbs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, drain_then_enable);
    tcase_add_test(tc, disable_then_drain_then_enable);
    tcase_add_test(tc, enable_keeps_health_down);
    tcase_add_test(tc, last_backend);
    tcase_add_test(tc, weight_override);
    tcase_add_test(tc, weight_while_drained);
    suite_add_tcase(s, tc);
    tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, override_survives_adoption);
    tcase_add_test(tc, no_pool);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(control_suite)
