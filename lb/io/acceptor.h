/* acceptor: a listening socket watched by one event, the one accept loop
 * of the data listeners and the admin API. Each readiness accepts a bounded
 * batch of clients and hands each to the owner; when accept() fails for
 * want of descriptors it pauses for a moment instead of spinning on a
 * socket that stays readable, and the owner may end the pause as soon as
 * it frees a descriptor. */
#ifndef LB_IO_ACCEPTOR_H
#define LB_IO_ACCEPTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <sys/socket.h>

struct event_base;
struct acceptor;

/* One client: fd is accepted, non-blocking and close-on-exec, the callee's
 * from now on. The callee may disable, pause or even free the acceptor. */
typedef void acceptor_fn(void *arg, int fd, const struct sockaddr *sa, socklen_t salen);

struct acceptor_conf {
    /* Its log lines start "OWNER NAME: " ("listener web: "), or "OWNER: "
     * without a name ("admin: "). The name is copied. */
    const char *owner;
    const char *name;
    unsigned batch;    /* accepts per readiness, at most */
    unsigned pause_ms; /* how long accepting pauses when out of descriptors */
    /* log_second_passed() state of the "pausing accepts" line, one for all
     * the acceptors of one kind of owner: a shortage of the whole process
     * logs one line a second per kind, not one per socket. */
    time_t *starved_logged;
    /* Optional: what that line says after the error (" (open sessions:
     * 12)"), written into buf. */
    void (*starved_note)(void *arg, char *buf, size_t len);
};

/* Watches fd (a bound, listening, non-blocking socket, owned from now on,
 * even on failure: then closed) and hands its clients to fn(arg). Starts
 * enabled. NULL on ENOMEM or when the loop cannot watch fd. */
struct acceptor *acceptor_new(struct event_base *base, int fd, const struct acceptor_conf *conf,
                              acceptor_fn *fn, void *arg);
/* Frees a; its socket closes after the loop's next turn (it may be shared
 * with another process, and epoll must drop it first). NULL does
 * nothing. */
void acceptor_free(struct acceptor *a);
int acceptor_fd(const struct acceptor *a);
/* Clients go to fn(arg) from now on (a socket handed to another owner). */
void acceptor_set_handler(struct acceptor *a, acceptor_fn *fn, void *arg);
/* The name its log lines say from now on. 0, or -1 (ENOMEM: unchanged). */
int acceptor_rename(struct acceptor *a, const char *name);
/* Accepting on (as long as no pause holds it) or off. */
void acceptor_enable(struct acceptor *a, bool on);
/* Out of descriptors: no accepting for pause_ms from now. */
void acceptor_pause(struct acceptor *a);
/* Ends a pause now: a descriptor was just freed. */
void acceptor_resume(struct acceptor *a);
bool acceptor_paused(const struct acceptor *a);
/* One accept now, outside the event (draining a socket about to close):
 * the client's fd (non-blocking, close-on-exec) with *sa and *salen
 * filled, or -1 when none is queued (EAGAIN) or accept() failed (errno
 * says which). EINTR and ECONNABORTED are retried. */
int acceptor_accept(struct acceptor *a, struct sockaddr_storage *sa, socklen_t *salen);

#endif
