/* test: how a test file registers its Check suite. Each tests/unit/test_*.c
 * and tests/integration/test_*.c ends with LB_TEST_SUITE(name_suite) and
 * build/lb-tests runs every registered suite in one SRunner. */
#ifndef LB_TEST_H
#define LB_TEST_H

#include <check.h>

void test_register(Suite *(*make)(void));

#define LB_TEST_SUITE(fn)                                                                          \
    static void __attribute__((constructor)) test_register_##fn(void)                              \
    {                                                                                              \
        test_register(fn);                                                                         \
    }

#endif
