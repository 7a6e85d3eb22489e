/* config_internal: helpers shared by the files of config/ and nobody else. */
#ifndef LB_CONFIG_INTERNAL_H
#define LB_CONFIG_INTERNAL_H

#include <stddef.h>

/* Longest text an echoed value is cut to, in source bytes. */
#define CONFIG_ECHO_MAX 64
/* A buffer that always holds config_escape()'s output. */
#define CONFIG_ESCAPE_SIZE (CONFIG_ECHO_MAX * 4 + 4)

/* Copies SRC into DST (CAP bytes, always terminated) so it is safe inside a
 * one-line log message: printable ASCII as is, \" \\ \n \r \t, every other
 * byte as \xNN, cut after CONFIG_ECHO_MAX source bytes with "...".
 * Returns DST. */
char *config_escape(char *dst, size_t cap, const char *src);

#endif
