/* http_body: the body framer (see lb/proto/http_body.h). LENGTH and
 * UNTIL_CLOSE only count; CHUNKED runs a byte-at-a-time state machine over
 * the framing (chunk lines, the CRLF after each chunk's data, the trailer
 * section) and steps over chunk data in one subtraction. */
#include <string.h>

#include "lb/proto/http_body.h"

/* The chunked parser's states, in the order a body goes through them. BWS
 * (SP / HTAB) may stand before ';' and '=' and after them, nowhere else in a
 * chunk line (RFC 9112 §7.1.1): the _WS states are where it was seen. */
enum chunk_state {
    CK_SIZE_FIRST,   /* a chunk line begins: its first hex digit */
    CK_SIZE,         /* more hex digits, or what ends the size */
    CK_SIZE_WS,      /* BWS after the size: ';' must follow */
    CK_EXT_NAME_PRE, /* after ';': BWS, then the first byte of a name */
    CK_EXT_NAME,     /* in an extension name (a token) */
    CK_EXT_NAME_WS,  /* BWS after a name: '=' or ';' must follow */
    CK_EXT_VAL_PRE,  /* after '=': BWS, then a token or a quoted-string */
    CK_EXT_VAL,      /* in a token value */
    CK_EXT_QUOTED,   /* in a quoted-string value */
    CK_EXT_ESCAPE,   /* after a backslash in a quoted-string */
    CK_EXT_VAL_END,  /* after a quoted-string's closing quote */
    CK_EXT_VAL_WS,   /* BWS after a value: ';' must follow */
    CK_LINE_LF,      /* the chunk line's CR seen: its LF */
    CK_DATA,         /* chunk data: left bytes of it */
    CK_DATA_CR,      /* after the data: its CR */
    CK_DATA_LF,      /* after the data: its LF */
    CK_TRAILER,      /* a trailer line begins: a field name, or the final CR */
    CK_TRAILER_NAME, /* in a field name */
    CK_TRAILER_VAL,  /* in a field value, up to its CR */
    CK_TRAILER_LF,   /* a field line's CR seen: its LF */
    CK_FINAL_LF,     /* the final CR seen: its LF */
    CK_DONE,
    CK_INVALID, /* b->error says why; every later feed fails with it */
};

/* tchar (RFC 9110 §5.6.2): what tokens (extension names, token values,
 * field names) are made of. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* A field value's and a quoted-string's bytes: VCHAR, obs-text, SP and
 * HTAB; no other control byte, no DEL. */
static bool is_text(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The reason a byte is wrong where a chunk line's size, a name or a value
 * should go on: a bare LF or another control byte (NUL) is named as such;
 * the rest, CR (the line ends too early) and HTAB included, by what was
 * expected. */
static const char *line_error(unsigned char c, const char *otherwise)
{
    if (c == '\n')
        return "bare LF in chunk line";
    if (c != '\r' && c != '\t' && (c < 0x20 || c == 0x7f))
        return "control byte in chunk line";
    return otherwise;
}

/* Where a size, a name or a value may end: BWS (then only what ws_state
 * allows), ';' or the line's CR. Any other byte is wrong with `otherwise`. */
static const char *chunk_element_end(struct http_body *b, unsigned char c, uint8_t ws_state,
                                     const char *otherwise)
{
    if (is_ws(c))
        b->state = ws_state;
    else if (c == ';')
        b->state = CK_EXT_NAME_PRE;
    else if (c == '\r')
        b->state = CK_LINE_LF;
    else
        return line_error(c, otherwise);
    return NULL;
}

/* One byte of a chunk line. Called with b->line already counting it. */
static const char *chunk_line_byte(struct http_body *b, unsigned char c)
{
    int v;

    switch (b->state) {
    case CK_SIZE_FIRST:
        if ((v = hex_value(c)) < 0)
            return c == '\r' || c == ';' ? "chunk size is empty"
                                         : line_error(c, "chunk size is not hex");
        b->left = (uint64_t)v;
        b->digits = v != 0;
        b->state = CK_SIZE;
        return NULL;
    case CK_SIZE:
        if ((v = hex_value(c)) < 0)
            return chunk_element_end(b, c, CK_SIZE_WS, "chunk size is not hex");
        /* Leading zeros are not digits here; 16 digits cannot overflow. */
        if ((b->digits || v) && ++b->digits > 16)
            return "chunk size over 16 hex digits";
        b->left = b->left << 4 | (uint64_t)v;
        return NULL;
    case CK_EXT_NAME_PRE:
        if (is_ws(c))
            return NULL;
        if (!is_tchar(c))
            return line_error(c, "bad chunk extension name");
        b->state = CK_EXT_NAME;
        return NULL;
    case CK_EXT_NAME:
        if (is_tchar(c))
            return NULL;
        if (c == '=') {
            b->state = CK_EXT_VAL_PRE;
            return NULL;
        }
        return chunk_element_end(b, c, CK_EXT_NAME_WS, "bad chunk extension name");
    case CK_EXT_VAL_PRE:
        if (is_ws(c))
            return NULL;
        if (c == '"')
            b->state = CK_EXT_QUOTED;
        else if (is_tchar(c))
            b->state = CK_EXT_VAL;
        else
            return line_error(c, "bad chunk extension value");
        return NULL;
    case CK_EXT_VAL:
        if (is_tchar(c))
            return NULL;
        return chunk_element_end(b, c, CK_EXT_VAL_WS, "bad chunk extension value");
    case CK_EXT_QUOTED:
        if (c == '"')
            b->state = CK_EXT_VAL_END;
        else if (c == '\\')
            b->state = CK_EXT_ESCAPE;
        else if (c == '\r' || c == '\n')
            return "unterminated quoted-string in chunk extension";
        else if (!is_text(c))
            return "control byte in chunk line";
        return NULL;
    case CK_EXT_ESCAPE:
        if (c == '\r' || c == '\n')
            return "unterminated quoted-string in chunk extension";
        if (!is_text(c))
            return "control byte in chunk line";
        b->state = CK_EXT_QUOTED;
        return NULL;
    case CK_EXT_VAL_END:
        return chunk_element_end(b, c, CK_EXT_VAL_WS, "bad chunk extension value");
    case CK_SIZE_WS:
    case CK_EXT_NAME_WS:
    case CK_EXT_VAL_WS:
        if (is_ws(c))
            return NULL;
        if (c == ';')
            b->state = CK_EXT_NAME_PRE;
        else if (c == '=' && b->state == CK_EXT_NAME_WS)
            b->state = CK_EXT_VAL_PRE;
        else
            return line_error(c, "whitespace in chunk line not before ';' or '='");
        return NULL;
    case CK_LINE_LF:
        if (c != '\n')
            return "CR without LF in chunk line";
        if (b->left == 0) {
            b->state = CK_TRAILER;
            b->trailer_bytes = 0;
            b->trailers = 0;
        } else {
            b->state = CK_DATA;
        }
        return NULL;
    }
    return "chunked parser lost its state"; /* not reached */
}

/* One byte of the trailer section. Called with b->trailer_bytes already
 * counting it. Field lines are checked as header lines are: a token name
 * right before the colon, then text; no obs-fold. */
static const char *chunk_trailer_byte(struct http_body *b, unsigned char c)
{
    switch (b->state) {
    case CK_TRAILER:
        if (c == '\r') {
            b->state = CK_FINAL_LF;
            return NULL;
        }
        if (is_ws(c))
            return "trailer line begins with whitespace (obs-fold)";
        if (c == ':')
            return "empty trailer field name";
        if (c == '\n')
            return "bare LF in trailer section";
        if (!is_tchar(c))
            return "bad trailer field name";
        if (++b->trailers > HTTP_BODY_TRAILER_FIELDS_MAX)
            return "too many trailer fields";
        b->state = CK_TRAILER_NAME;
        return NULL;
    case CK_TRAILER_NAME:
        if (is_tchar(c))
            return NULL;
        if (c == ':')
            b->state = CK_TRAILER_VAL;
        else if (is_ws(c))
            return "whitespace before colon in trailer field";
        else if (c == '\r' || c == '\n')
            return "trailer field without colon";
        else
            return "bad trailer field name";
        return NULL;
    case CK_TRAILER_VAL:
        if (c == '\r')
            b->state = CK_TRAILER_LF;
        else if (c == '\n')
            return "bare LF in trailer section";
        else if (!is_text(c))
            return "control byte in trailer field";
        return NULL;
    case CK_TRAILER_LF:
        if (c != '\n')
            return "CR without LF in trailer section";
        b->state = CK_TRAILER;
        return NULL;
    case CK_FINAL_LF:
        if (c != '\n')
            return "CR without LF at the end of the chunked body";
        b->state = CK_DONE;
        return NULL;
    }
    return "chunked parser lost its state"; /* not reached */
}

/* One framing byte: the bounds first, so that no line or section grows
 * past them whatever it holds. */
static const char *chunk_byte(struct http_body *b, unsigned char c)
{
    switch (b->state) {
    /* The CRLF after the data is checked, not skipped (llhttp 8.1 skips it):
     * a chunk longer than its size would otherwise run on into what one
     * side reads as the next chunk line and the other as data. */
    case CK_DATA_CR:
        if (c != '\r')
            return "chunk data not followed by CRLF";
        b->state = CK_DATA_LF;
        return NULL;
    case CK_DATA_LF:
        if (c != '\n')
            return "chunk data not followed by CRLF";
        b->state = CK_SIZE_FIRST;
        b->line = 0;
        return NULL;
    case CK_TRAILER:
    case CK_TRAILER_NAME:
    case CK_TRAILER_VAL:
    case CK_TRAILER_LF:
    case CK_FINAL_LF:
        if (++b->trailer_bytes > HTTP_BODY_TRAILER_MAX)
            return "trailer section over 16 KiB";
        return chunk_trailer_byte(b, c);
    default:
        if (++b->line > HTTP_BODY_LINE_MAX)
            return "chunk line over 4 KiB";
        return chunk_line_byte(b, c);
    }
}

static ssize_t chunked_feed(struct http_body *b, const unsigned char *p, size_t len, bool *done,
                            const char **why)
{
    size_t i = 0;

    while (i < len && b->state != CK_DONE) {
        if (b->state == CK_DATA) {
            size_t n = len - i < b->left ? len - i : (size_t)b->left;
            i += n;
            b->left -= n;
            b->payload += n;
            if (b->left == 0)
                b->state = CK_DATA_CR;
            continue;
        }
        const char *err = chunk_byte(b, p[i++]);
        if (err) {
            b->state = CK_INVALID;
            b->error = err;
            *why = err;
            return -1;
        }
    }
    *done = b->state == CK_DONE;
    return (ssize_t)i;
}

void http_body_init(struct http_body *b, enum http_body_kind kind, uint64_t length)
{
    memset(b, 0, sizeof(*b));
    b->kind = kind;
    b->state = CK_SIZE_FIRST;
    if (kind == HTTP_BODY_LENGTH)
        b->left = length;
}

ssize_t http_body_feed(struct http_body *b, const char *buf, size_t len, bool *done,
                       const char **why)
{
    switch (b->kind) {
    case HTTP_BODY_LENGTH: {
        size_t n = len < b->left ? len : (size_t)b->left;
        b->left -= n;
        b->payload += n;
        *done = b->left == 0;
        return (ssize_t)n;
    }
    case HTTP_BODY_UNTIL_CLOSE:
        b->payload += len;
        *done = false;
        return (ssize_t)len;
    case HTTP_BODY_CHUNKED:
        *done = false;
        if (b->state == CK_INVALID) {
            *why = b->error;
            return -1;
        }
        return chunked_feed(b, (const unsigned char *)buf, len, done, why);
    case HTTP_BODY_NONE:
    default:
        *done = true;
        return 0;
    }
}

uint64_t http_body_unseen(const struct http_body *b)
{
    switch (b->kind) {
    case HTTP_BODY_LENGTH:
        return b->left;
    case HTTP_BODY_UNTIL_CLOSE:
        return UINT64_MAX;
    case HTTP_BODY_CHUNKED:
        return b->state == CK_DATA ? b->left : 0;
    default:
        return 0;
    }
}

bool http_body_skip(struct http_body *b, uint64_t n)
{
    if (n == 0) /* all a caller may skip where the next byte is framing */
        return http_body_done(b);
    b->payload += n;
    if (b->kind == HTTP_BODY_UNTIL_CLOSE)
        return false;
    b->left -= n;
    if (b->kind == HTTP_BODY_CHUNKED && b->left == 0)
        b->state = CK_DATA_CR;
    return http_body_done(b);
}

bool http_body_done(const struct http_body *b)
{
    switch (b->kind) {
    case HTTP_BODY_LENGTH:
        return b->left == 0;
    case HTTP_BODY_CHUNKED:
        return b->state == CK_DONE;
    case HTTP_BODY_UNTIL_CLOSE:
        return false;
    default:
        return true;
    }
}

uint64_t http_body_payload(const struct http_body *b)
{
    return b->payload;
}
