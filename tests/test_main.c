/* test_main: runs every suite registered with LB_TEST_SUITE in one SRunner,
 * so `make test` ends with Check's one summary line per build.
 * `build/lb-tests SUITE [TCASE]` runs one suite (or one test case). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/test.h"

#define MAX_SUITES 64

static Suite *(*makers[MAX_SUITES])(void);
static int nmakers;

void test_register(Suite *(*make)(void))
{
    if (nmakers == MAX_SUITES) {
        fprintf(stderr, "test_main: too many suites\n");
        abort();
    }
    makers[nmakers++] = make;
}

int main(int argc, char **argv)
{
    if (nmakers == 0) {
        fprintf(stderr, "test_main: no suite registered\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(NULL);
    for (int i = 0; i < nmakers; i++)
        srunner_add_suite(sr, makers[i]());
    const char *suite = argc > 1 ? argv[1] : NULL;
    const char *tcase = argc > 2 ? argv[2] : NULL;
    srunner_run(sr, suite, tcase, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
