/* notify: systemd's readiness protocol (sd_notify(3)) without libsystemd.
 * Under a unit with Type=notify, systemd passes $NOTIFY_SOCKET, a unix
 * datagram socket's path (a leading '@' is the abstract namespace); lb
 * sends it one datagram per state change: READY=1 once its listeners are
 * bound, RELOADING=1 with MONOTONIC_USEC (systemd 253 wants it) when a
 * reload begins and READY=1 when it is over, STOPPING=1 on shutdown, each
 * with a STATUS= line. A send never blocks the loop (the socket is
 * non-blocking; a datagram the socket does not take is dropped) and
 * without $NOTIFY_SOCKET nothing is sent. */
#ifndef LB_NOTIFY_H
#define LB_NOTIFY_H

/* Reads $NOTIFY_SOCKET (and unsets it, so that nothing lb starts inherits
 * it) and opens the socket. Without it, or with one that cannot be used
 * (logged once), every later call does nothing. */
void notify_init(void);
void notify_close(void);

/* "READY=1\nSTATUS=...". */
void notify_ready(const char *status);
/* "RELOADING=1\nMONOTONIC_USEC=...\nSTATUS=reloading". */
void notify_reloading(void);
/* A binary upgrade's new process serves: MAINPID= this process, READY=1
 * and STATUS= (the unit needs NotifyAccess=all, as the old process is the
 * main one until then). */
void notify_ready_main(const char *status);
/* "STOPPING=1\nSTATUS=...". */
void notify_stopping(const char *status);

#endif
