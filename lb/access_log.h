/* access_log: the access log file ("log": {"access_log": PATH}). Session
 * and request lines go there instead of stderr, through a pipe to a writer
 * process of lb's own: the loop only ever writes to the pipe without
 * blocking (lb/log.c's access stream), and the writer, forked for the file,
 * is the one that waits when the disk is slow. A full pipe and buffer drop
 * lines, counted (lb_access_log_lines_dropped_total), rather than stall
 * traffic.
 *
 * Each open (the start, SIGUSR1, a reload that changes the path) opens the
 * file in lb, as the user lb runs as, and forks a new writer for it; the
 * previous writer gets the end of its pipe, writes what the pipe still
 * holds to the file it had open, and exits. So after logrotate renames the
 * file and sends SIGUSR1, lines logged before the signal are in the old
 * file and lines logged after it in the new one, and none is lost. The
 * writer writes whole lines only, so two lb processes appending to one file
 * (a binary upgrade) never mix their lines. */
#ifndef LB_ACCESS_LOG_H
#define LB_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Opens path (O_APPEND, created 0640) and makes it where access lines go
 * from now on; the writer of the previous file finishes and exits. -1 with
 * err ("access log PATH: cannot open: ..."): nothing changed. */
int access_log_open(const char *path, char *err, size_t errlen);

/* A reload's new access log, opened before the commit, so that a path lb
 * cannot open fails the reload and changes nothing. */
struct access_log_next {
    bool change; /* the path differs from the one in use */
    char *path;  /* NULL: back to stderr */
    int fd;      /* the pipe to its writer; -1 for none */
    pid_t pid;   /* that writer */
};
/* When path (NULL: none) differs from the one in use, opens it and starts
 * its writer into next; else next says there is nothing to change. -1 with
 * err when the file cannot be opened. */
int access_log_prepare(const char *path, struct access_log_next *next, char *err, size_t errlen);
/* Makes next the access log (the old writer finishes), or does nothing. */
void access_log_commit(struct access_log_next *next);
/* The reload failed: next's writer ends without a line. */
void access_log_abort(struct access_log_next *next);
/* The path of the file in use; NULL when access lines go to stderr. */
const char *access_log_path(void);
/* SIGUSR1: opens the same path again (a new file after a rename). -1 with
 * err when it cannot: the old file stays in use. 0 when no access log is
 * configured (nothing to do). */
int access_log_reopen(char *err, size_t errlen);
/* A child exited (SIGCHLD): true when it was one of the writers. One that
 * exits while still in use is logged: its lines are dropped until the next
 * reopen. */
bool access_log_reaped(pid_t pid, int status);
/* At exit, after log_end() wrote the last lines into the pipe: waits, at most timeout_ms, for the
 * writers to put the last lines in the file and exit. */
void access_log_end(int timeout_ms);

#endif
