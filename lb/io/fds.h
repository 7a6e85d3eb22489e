/* fds: a forked child's descriptors, for the processes lb starts (the
 * access log's writer, a binary upgrade's new lb): only what it needs may
 * cross. close_range(2) does it in one call; on a kernel without it (or
 * without CLOSE_RANGE_CLOEXEC, before 5.11) the descriptors are walked
 * one by one from /proc/self/fd, or up to the descriptor limit. */
#ifndef LB_IO_FDS_H
#define LB_IO_FDS_H

#include <stddef.h>

/* Closes every descriptor from 3 up but the n of keep. */
void fds_close_others(const int *keep, size_t n);
/* Marks every descriptor from 3 up close-on-exec but keep, which loses
 * the mark (it crosses the exec). */
void fds_cloexec_others(int keep);

#endif
