/* test_listener_routes: a listener's SNI routes (lb/listener.h) built from
 * a config's routes over pools: each name finds its pool (exact before
 * wildcard, a wildcard one label deep) among thousands, given in an order
 * that is not sorted; each route holds a pool reference, which freeing the
 * routes (or replacing them) gives back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "tests/test.h"

#define NPOOLS 7
#define NEXACT 3000
#define NWILD 2000

struct fixture {
    struct pool *pools[NPOOLS];
    struct lb_listener_conf conf;
    char (*names)[48];
};

/* Routes "hN.exact.test" -> pool N % NPOOLS and "*.wN.test" -> pool
 * (N + 3) % NPOOLS, shuffled (a fixed permutation), plus "*.exact.test"
 * -> pool 0, which every exact name also matches. */
static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < NPOOLS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        f->pools[i] = pool_new(name, LB_STRATEGY_ROUNDROBIN);
        ck_assert_ptr_nonnull(f->pools[i]);
    }
    size_t n = NEXACT + NWILD + 1;
    f->conf.sni_routes = calloc(n, sizeof(*f->conf.sni_routes));
    f->names = calloc(n, sizeof(*f->names));
    ck_assert(f->conf.sni_routes && f->names);
    for (size_t k = 0; k < n; k++) {
        size_t i = (k * 7919) % n; /* 7919 is prime and does not divide n */
        struct lb_sni_route_conf *r = &f->conf.sni_routes[k];
        if (i < NEXACT) {
            snprintf(f->names[k], sizeof(f->names[k]), "h%zu.exact.test", i);
            r->pool_index = i % NPOOLS;
        } else if (i < NEXACT + NWILD) {
            snprintf(f->names[k], sizeof(f->names[k]), "*.w%zu.test", i - NEXACT);
            r->pool_index = (i - NEXACT + 3) % NPOOLS;
        } else {
            snprintf(f->names[k], sizeof(f->names[k]), "*.exact.test");
            r->pool_index = 0;
        }
        r->server_name = f->names[k];
    }
    f->conf.nsni_routes = n;
}

static void fixture_free(struct fixture *f)
{
    for (int i = 0; i < NPOOLS; i++) {
        ck_assert_uint_eq(f->pools[i]->refs, 1); /* only the owner's is left */
        pool_release(f->pools[i]);
    }
    free(f->conf.sni_routes);
    free(f->names);
}

static struct pool *route(const struct listener *l, const char *fmt, size_t v)
{
    char name[64];
    snprintf(name, sizeof(name), fmt, v);
    return listener_route(l, name);
}

START_TEST(thousands_of_routes)
{
    struct fixture f;
    fixture_init(&f);
    struct listener l = {0};
    ck_assert(!listener_has_routes(&l));
    ck_assert_ptr_null(listener_route(&l, "a.test"));

    struct listener_routes r;
    ck_assert_int_eq(listener_routes_build(&r, &f.conf, f.pools), 0);
    ck_assert_uint_eq(r.nexact, NEXACT);
    ck_assert_uint_eq(r.nwild, NWILD + 1);
    unsigned refs = 0;
    for (int i = 0; i < NPOOLS; i++)
        refs += f.pools[i]->refs - 1;
    ck_assert_uint_eq(refs, NEXACT + NWILD + 1);
    listener_set_routes(&l, &r);
    ck_assert_uint_eq(r.nexact + r.nwild, 0);
    ck_assert(listener_has_routes(&l));

    for (size_t i = 0; i < NEXACT; i++) {
        ck_assert_ptr_eq(route(&l, "h%zu.exact.test", i), f.pools[i % NPOOLS]);
        /* not exact: the wildcard of exact.test */
        ck_assert_ptr_eq(route(&l, "x%zu.exact.test", i), f.pools[0]);
    }
    for (size_t i = 0; i < NWILD; i++) {
        struct pool *want = f.pools[(i + 3) % NPOOLS];
        ck_assert_ptr_eq(route(&l, "a.w%zu.test", i), want);
        ck_assert_ptr_eq(route(&l, "some-host.w%zu.test", i), want);
        ck_assert_ptr_null(route(&l, "w%zu.test", i));     /* no label before */
        ck_assert_ptr_null(route(&l, "a.b.w%zu.test", i)); /* two labels */
        ck_assert_ptr_null(route(&l, ".w%zu.test", i));    /* an empty label */
    }
    ck_assert_ptr_null(listener_route(&l, "exact.test"));
    ck_assert_ptr_null(listener_route(&l, "h1.exact.test.")); /* "exact.test." is no suffix */
    ck_assert_ptr_null(listener_route(&l, "zzz"));
    ck_assert_ptr_null(listener_route(&l, ""));
    ck_assert_ptr_null(route(&l, "a.w%zu.test", NWILD));

    /* Replaced by none (a reload that removed them): the references go. */
    struct listener_routes none;
    struct lb_listener_conf empty = {0};
    ck_assert_int_eq(listener_routes_build(&none, &empty, f.pools), 0);
    listener_set_routes(&l, &none);
    ck_assert(!listener_has_routes(&l));
    ck_assert_ptr_null(listener_route(&l, "h1.exact.test"));
    fixture_free(&f);
}
END_TEST

static Suite *listener_routes_suite(void)
{
    Suite *s = suite_create("listener_routes");
    TCase *tc = tcase_create("listener_routes");
    tcase_add_test(tc, thousands_of_routes);
    suite_add_tcase(s, tc);
    return s;
}

LB_TEST_SUITE(listener_routes_suite)
