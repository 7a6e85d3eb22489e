/* harness/netns: a network namespace of the test's own and its loopback
 * interface (root only). */
#ifndef LB_TESTS_HARNESS_NETNS_H
#define LB_TESTS_HARNESS_NETNS_H

#include <stdbool.h>

/* Moves the test process (Check forks one per test) into a network
 * namespace of its own, with its loopback up; lb and backends started
 * afterwards live there too, and it all goes away with the process. False,
 * with a "skipped" line on stderr naming test, when that cannot be done
 * (not root, or Check's no-fork mode). */
bool harness_netns_enter(const char *test);
/* Takes the namespace's loopback interface up or down. */
void harness_loopback_set(bool up);
/* Gives the namespace's loopback one more IPv4 address (e.g. 192.0.2.1),
 * one that is not in 127.0.0.0/8. */
void harness_loopback_add(const char *ipv4);

#endif
