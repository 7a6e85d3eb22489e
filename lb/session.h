/* session: one accepted client, through its phases to the end of its one
 * log line (lb/session.c). */
#ifndef LB_SESSION_H
#define LB_SESSION_H

#include <sys/socket.h>

struct listener;
struct runtime;
struct session;
struct backend;

/* Takes ownership of fd, an accepted non-blocking client socket. */
void session_start(struct listener *l, int fd, const struct sockaddr *sa, socklen_t salen);
/* Checks the sides of a parked session that lb does not watch for a reset
 * (SO_ERROR) and ends it if one was reset; unparks it when every side is
 * watched again. */
void session_probe(struct session *s);
struct session *session_parked_next(struct session *s);
/* Ends every open session of b at once (admin "disable"). */
void backend_close_sessions(struct backend *b, const char *reason);
/* Ends an open session at once (stop after the grace period). */
void session_abort(struct session *s, const char *reason);
/* After a reload changed idle timeouts: arms the idle timer of open
 * sessions whose listener now has one. */
void session_idle_rearm_all(struct runtime *rt);

#endif
