/* json_locate: a small scanner over raw JSON text that walks a path of keys
 * and indices and returns where the value starts. It trusts that jansson has
 * already accepted the text, but stays inside the buffer whatever it holds.
 * Keys are compared after decoding escapes (\" \\ \/ \b \f \n \r \t \uXXXX,
 * surrogate pairs), so "n\u0061me" matches the key name. */
#include <string.h>

#include "config/json_locate.h"

struct scan {
    const char *s;
    size_t len;
    size_t pos;
};

/* The byte at the cursor, or -1 at the end of the text. */
static int scan_peek(const struct scan *sc)
{
    return sc->pos < sc->len ? (unsigned char)sc->s[sc->pos] : -1;
}

static int scan_is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void scan_ws(struct scan *sc)
{
    while (scan_is_ws(scan_peek(sc)))
        sc->pos++;
}

/* Skips the string whose opening quote is at the cursor. */
static int scan_skip_string(struct scan *sc)
{
    if (scan_peek(sc) != '"')
        return -1;
    sc->pos++;
    while (sc->pos < sc->len) {
        char c = sc->s[sc->pos++];
        if (c == '\\')
            sc->pos++;
        else if (c == '"')
            return 0;
    }
    return -1;
}

/* Reads 4 hex digits at the cursor. */
static long scan_hex4(struct scan *sc)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int c = scan_peek(sc);
        if (c >= '0' && c <= '9')
            v = v * 16 + (c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (c - 'A' + 10);
        else
            return -1;
        sc->pos++;
    }
    return v;
}

static size_t utf8_encode(unsigned long cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the escape whose backslash was just consumed into OUT (up to 4
 * bytes) and returns its length, or 0 when malformed. */
static size_t scan_escape(struct scan *sc, unsigned char *out)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    int c = scan_peek(sc);
    if (c < 0)
        return 0;
    sc->pos++;
    if (c != 'u') {
        const char *p = c ? strchr(from, c) : NULL;
        if (!p)
            return 0;
        out[0] = (unsigned char)to[p - from];
        return 1;
    }
    long cp = scan_hex4(sc);
    if (cp < 0)
        return 0;
    if (cp >= 0xd800 && cp <= 0xdbff && sc->pos + 1 < sc->len && sc->s[sc->pos] == '\\' &&
        sc->s[sc->pos + 1] == 'u') {
        size_t save = sc->pos;
        sc->pos += 2;
        long lo = scan_hex4(sc);
        if (lo >= 0xdc00 && lo <= 0xdfff)
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        else
            sc->pos = save;
    }
    return utf8_encode((unsigned long)cp, out);
}

/* Decodes the string at the cursor and compares it with KEY, leaving the
 * cursor after the closing quote. Returns 1 if equal, 0 if not, -1 if the
 * string is malformed. */
static int scan_string_equals(struct scan *sc, const char *key)
{
    size_t k = 0;
    int same = 1;

    if (scan_peek(sc) != '"')
        return -1;
    sc->pos++;
    for (;;) {
        unsigned char buf[4];
        size_t n = 1;
        int c = scan_peek(sc);
        if (c < 0)
            return -1;
        sc->pos++;
        if (c == '"')
            break;
        buf[0] = (unsigned char)c;
        if (c == '\\' && (n = scan_escape(sc, buf)) == 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (same && (unsigned char)key[k] == buf[i] && buf[i] != '\0')
                k++;
            else
                same = 0;
        }
    }
    return same && key[k] == '\0';
}

/* Skips one value of any type at the cursor. */
static int scan_skip_value(struct scan *sc)
{
    int c = scan_peek(sc);
    int depth = 0;

    if (c == '"')
        return scan_skip_string(sc);
    if (c != '{' && c != '[') {
        while ((c = scan_peek(sc)) >= 0 && !scan_is_ws(c) && c != ',' && c != ']' && c != '}')
            sc->pos++;
        return 0;
    }
    do {
        c = scan_peek(sc);
        if (c < 0)
            return -1;
        if (c == '"') {
            if (scan_skip_string(sc) < 0)
                return -1;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        sc->pos++;
    } while (depth > 0);
    return 0;
}

/* Moves the cursor from an object's '{' to the value of KEY (or, with
 * AT_KEY, to the key's opening quote). */
static int scan_find_key(struct scan *sc, const char *key, int at_key)
{
    if (scan_peek(sc) != '{')
        return -1;
    sc->pos++;
    for (;;) {
        scan_ws(sc);
        size_t key_at = sc->pos;
        int eq = scan_string_equals(sc, key);
        if (eq < 0)
            return -1;
        scan_ws(sc);
        if (scan_peek(sc) != ':')
            return -1;
        sc->pos++;
        scan_ws(sc);
        if (eq) {
            if (at_key)
                sc->pos = key_at;
            return 0;
        }
        if (scan_skip_value(sc) < 0)
            return -1;
        scan_ws(sc);
        if (scan_peek(sc) != ',')
            return -1;
        sc->pos++;
    }
}

/* Moves the cursor from an array's '[' to its element INDEX. */
static int scan_find_index(struct scan *sc, size_t index)
{
    if (scan_peek(sc) != '[')
        return -1;
    sc->pos++;
    for (size_t i = 0;; i++) {
        scan_ws(sc);
        int c = scan_peek(sc);
        if (c < 0 || c == ']')
            return -1;
        if (i == index)
            return 0;
        if (scan_skip_value(sc) < 0)
            return -1;
        scan_ws(sc);
        if (scan_peek(sc) != ',')
            return -1;
        sc->pos++;
    }
}

int json_locate(const char *text, size_t len, const struct json_step *steps, size_t nsteps,
                int at_key, size_t *offset)
{
    struct scan sc = {text, len, 0};

    scan_ws(&sc);
    for (size_t i = 0; i < nsteps; i++) {
        int rc;
        if (steps[i].key)
            rc = scan_find_key(&sc, steps[i].key, at_key && i + 1 == nsteps);
        else
            rc = scan_find_index(&sc, steps[i].index);
        if (rc < 0)
            return -1;
    }
    if (sc.pos >= len)
        return -1;
    *offset = sc.pos;
    return 0;
}

void json_line_col(const char *text, size_t len, size_t offset, unsigned *line, unsigned *col)
{
    size_t line_start = 0;

    *line = 1;
    if (offset > len)
        offset = len;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            (*line)++;
            line_start = i + 1;
        }
    }
    *col = (unsigned)(offset - line_start + 1);
}
