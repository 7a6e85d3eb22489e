/* harness/netns: a network namespace of the test's own (root only), so a
 * test can take its loopback down or give it an address outside
 * 127.0.0.0/8 without touching the machine's. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/harness/internal.h"

bool harness_netns_enter(const char *test)
{
    const char *fork_mode = getenv("CK_FORK");
    if (fork_mode && strcmp(fork_mode, "no") == 0) {
        fprintf(stderr,
                "%s: skipped: needs Check's fork mode (it moves the test process into a "
                "network namespace)\n",
                test);
        return false;
    }
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "%s: skipped: cannot create a network namespace (%s; needs root)\n", test,
                strerror(errno));
        return false;
    }
    harness_loopback_set(true);
    return true;
}

static void loopback_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", ifname);
    ck_assert_msg(ioctl(s, req, ifr) == 0, "ioctl %lu on %s: %s", req, ifname, strerror(errno));
    close(s);
}

void harness_loopback_set(bool up)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    loopback_ioctl("lo", SIOCGIFFLAGS, &ifr);
    if (up)
        ifr.ifr_flags |= IFF_UP;
    else
        ifr.ifr_flags &= ~IFF_UP;
    loopback_ioctl("lo", SIOCSIFFLAGS, &ifr);
}

void harness_loopback_add(const char *ipv4)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, ipv4, &sin->sin_addr), 1);
    loopback_ioctl("lo:1", SIOCSIFADDR, &ifr);
    sin->sin_addr.s_addr = htonl(0xffffffffu);
    loopback_ioctl("lo:1", SIOCSIFNETMASK, &ifr);
}
