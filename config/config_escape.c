/* config_escape: makes outside text (from a config file, or a client of
 * the admin API) safe to echo in a one-line message. A hostile input must
 * not be able to inject newlines, terminal escapes or megabytes into a log. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/config_internal.h"

char *config_text_escape(char *dst, size_t cap, const char *src, size_t max)
{
    size_t o = 0;
    size_t i;

    if (cap == 0)
        return dst;
    for (i = 0; src[i] && i < max; i++) {
        unsigned char c = (unsigned char)src[i];
        char tmp[5];
        size_t n;
        if (c == '"' || c == '\\')
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
        else if (c == '\n')
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\n");
        else if (c == '\r')
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\r");
        else if (c == '\t')
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\t");
        else if (c < 0x20 || c >= 0x7f)
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        else
            n = (size_t)snprintf(tmp, sizeof(tmp), "%c", c);
        if (o + n + 1 > cap)
            break;
        memcpy(dst + o, tmp, n);
        o += n;
    }
    if (src[i] && o + 4 <= cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

char *config_escape(char *dst, size_t cap, const char *src)
{
    return config_text_escape(dst, cap, src, CONFIG_ECHO_MAX);
}
