/* prom_check: validates Prometheus text format 0.0.4 line by line, the way
 * a scraper would read lb's /metrics, plus the family, histogram and
 * uniqueness rules a scraper does not always enforce. Strict on purpose:
 * it accepts what the format allows and lb needs, nothing looser. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/prom_check.h"

#define MAX_LABELS 16

struct series {
    char *key; /* name{labels}, as written */
    int lineno;
};

/* One validation pass. */
struct checker {
    char *err;
    size_t errlen;
    int lineno;
    const char *line; /* the current line, NUL-terminated */

    char family[256]; /* current family ("" before the first) */
    char type[16];    /* its TYPE, "" until seen */
    bool help;        /* its HELP was seen */
    bool sampled;     /* it has had a sample */
    char **families;  /* every family opened so far */
    size_t nfamilies;

    struct series *series;
    size_t nseries, cap;

    /* The open histogram series (key = family + labels without le). */
    bool hopen, hinf, hsum;
    char *hkey;
    double hle, hcount, hinf_count;
};

/* A parsed sample line. */
struct sample {
    char name[256];
    char key[1024]; /* labels other than le, as written, for histogram identity */
    bool has_le;
    double le;
    double value;
};

static bool fail(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct checker *c, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "line %d: %s: %.200s", c->lineno, why, c->line ? c->line : "");
    return false;
}

static bool is_name_start(int ch)
{
    return isalpha(ch) || ch == '_' || ch == ':';
}

static bool is_name_char(int ch)
{
    return isalnum(ch) || ch == '_' || ch == ':';
}

/* Reads a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or, with label set, a
 * label name (no ':'), into out; advances *p. false when none is there. */
static bool parse_name(const char **p, char *out, size_t outlen, bool label)
{
    const char *s = *p;
    if (!is_name_start((unsigned char)*s) || (label && *s == ':'))
        return false;
    size_t n = 0;
    while (is_name_char((unsigned char)s[n]) && !(label && s[n] == ':'))
        n++;
    if (n >= outlen)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return true;
}

/* A sample value: a decimal float, +Inf, -Inf or NaN (the whole of s). */
static bool parse_float(const char *s, double *v)
{
    if (strcmp(s, "+Inf") == 0) {
        *v = INFINITY;
        return true;
    }
    if (strcmp(s, "-Inf") == 0) {
        *v = -INFINITY;
        return true;
    }
    if (strcmp(s, "NaN") == 0) {
        *v = NAN;
        return true;
    }
    if (*s == '\0' || strspn(s, "0123456789.eE+-") != strlen(s))
        return false;
    char *end;
    *v = strtod(s, &end);
    return *end == '\0' && end != s;
}

static bool is_timestamp(const char *s)
{
    if (*s == '-')
        s++;
    return *s != '\0' && strspn(s, "0123456789") == strlen(s);
}

/* Checks HELP text: any bytes, with \ only as \\ or \n. */
static bool help_text_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\\' && s[1] != '\\' && s[1] != 'n')
            return false;
        else if (*s == '\\')
            s++;
    return true;
}

/* Ends the open histogram series; false when it lacked its _count. */
static bool histogram_close(struct checker *c)
{
    if (!c->hopen)
        return true;
    c->hopen = false;
    return fail(c, "histogram series %s ended without _sum and _count", c->hkey);
}

/* Starts family name (at a HELP or TYPE line); false when it was seen
 * before (repeated or interleaved). */
static bool family_open(struct checker *c, const char *name)
{
    if (strcmp(c->family, name) == 0)
        return true;
    if (!histogram_close(c))
        return false;
    for (size_t i = 0; i < c->nfamilies; i++)
        if (strcmp(c->families[i], name) == 0)
            return fail(c, "family %s appears again (repeated or interleaved)", name);
    char **grown = realloc(c->families, (c->nfamilies + 1) * sizeof(*grown));
    if (!grown)
        return fail(c, "out of memory");
    c->families = grown;
    c->families[c->nfamilies++] = strdup(name);
    snprintf(c->family, sizeof(c->family), "%s", name);
    c->type[0] = '\0';
    c->help = false;
    c->sampled = false;
    return true;
}

static bool check_comment(struct checker *c, const char *s)
{
    bool help = strncmp(s, "# HELP ", 7) == 0;
    if (!help && strncmp(s, "# TYPE ", 7) != 0)
        return fail(c, "comment other than # HELP or # TYPE");
    const char *p = s + 7;
    char name[256];
    if (!parse_name(&p, name, sizeof(name), false) || *p != ' ')
        return fail(c, "bad metric name");
    p++;
    if (!family_open(c, name))
        return false;
    if (c->sampled)
        return fail(c, "%s after the family's samples", help ? "HELP" : "TYPE");
    if (help) {
        if (c->help)
            return fail(c, "second HELP for %s", name);
        if (!help_text_ok(p))
            return fail(c, "bad escape in HELP text");
        c->help = true;
        return true;
    }
    if (c->type[0])
        return fail(c, "second TYPE for %s", name);
    if (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram"))
        return fail(c, "unknown type '%s'", p);
    snprintf(c->type, sizeof(c->type), "%s", p);
    return true;
}

/* Reads a quoted label value at *p (after the opening quote) into out,
 * unescaped; advances past the closing quote. */
static bool parse_label_value(const char **p, char *out, size_t outlen)
{
    const char *s = *p;
    size_t n = 0;
    for (; *s != '"'; s++) {
        char ch = *s;
        if (ch == '\0')
            return false;
        if (ch == '\\') {
            s++;
            if (*s == '\\' || *s == '"')
                ch = *s;
            else if (*s == 'n')
                ch = '\n';
            else
                return false;
        }
        if (n + 1 >= outlen)
            return false;
        out[n++] = ch;
    }
    out[n] = '\0';
    *p = s + 1;
    return true;
}

/* Parses `{name="value",...}` at *p into sm (le apart); advances *p. */
static bool parse_labels(struct checker *c, const char **p, struct sample *sm)
{
    char names[MAX_LABELS][128];
    size_t nlabels = 0;
    const char *s = *p + 1;
    if (*s == '}') {
        *p = s + 1;
        return true;
    }
    for (;;) {
        const char *start = s;
        char name[128], value[1024];
        if (!parse_name(&s, name, sizeof(name), true))
            return fail(c, "bad label name");
        if (strncmp(name, "__", 2) == 0)
            return fail(c, "reserved label name %s", name);
        for (size_t i = 0; i < nlabels; i++)
            if (strcmp(names[i], name) == 0)
                return fail(c, "label %s twice", name);
        if (nlabels == MAX_LABELS)
            return fail(c, "too many labels");
        snprintf(names[nlabels++], sizeof(names[0]), "%s", name);
        if (s[0] != '=' || s[1] != '"')
            return fail(c, "label %s: expected =\"", name);
        s += 2;
        if (!parse_label_value(&s, value, sizeof(value)))
            return fail(c, "label %s: bad value (escape or quote)", name);
        if (strcmp(name, "le") == 0) {
            if (!parse_float(value, &sm->le))
                return fail(c, "le \"%s\" is not a number", value);
            sm->has_le = true;
        } else {
            size_t used = strlen(sm->key);
            snprintf(sm->key + used, sizeof(sm->key) - used, "%.*s,", (int)(s - start), start);
        }
        if (*s == '}') {
            *p = s + 1;
            return true;
        }
        if (*s != ',')
            return fail(c, "expected , or } after label %s", name);
        s++;
    }
}

/* Remembers the series (name and labels as written) for the duplicate
 * check at the end. */
static bool series_add(struct checker *c, const char *s, size_t len)
{
    if (c->nseries == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        struct series *grown = realloc(c->series, cap * sizeof(*grown));
        if (!grown)
            return fail(c, "out of memory");
        c->series = grown;
        c->cap = cap;
    }
    c->series[c->nseries].key = strndup(s, len);
    c->series[c->nseries].lineno = c->lineno;
    c->nseries++;
    return true;
}

static bool check_bucket(struct checker *c, const struct sample *sm)
{
    if (!sm->has_le)
        return fail(c, "bucket without le");
    if (!c->hopen || strcmp(c->hkey, sm->key) != 0) {
        if (!histogram_close(c))
            return false;
        free(c->hkey);
        c->hkey = strdup(sm->key);
        c->hopen = true;
        c->hinf = c->hsum = false;
        c->hle = -INFINITY;
        c->hcount = 0;
    }
    if (c->hinf)
        return fail(c, "bucket after le=\"+Inf\"");
    if (!(sm->le > c->hle))
        return fail(c, "le not above the previous bucket's");
    if (sm->value < c->hcount)
        return fail(c, "bucket count below the previous bucket's");
    c->hle = sm->le;
    c->hcount = sm->value;
    if (isinf(sm->le)) {
        c->hinf = true;
        c->hinf_count = sm->value;
    }
    return true;
}

/* The histogram rules for a sample of family c->family; suffix is what
 * follows the family name: _bucket, _sum or _count. */
static bool check_histogram(struct checker *c, const struct sample *sm, const char *suffix)
{
    if (strcmp(suffix, "_bucket") == 0)
        return check_bucket(c, sm);
    if (sm->has_le)
        return fail(c, "le on %s", suffix);
    if (!c->hopen || strcmp(c->hkey, sm->key) != 0 || !c->hinf)
        return fail(c, "%s before the series' le=\"+Inf\" bucket", suffix);
    if (strcmp(suffix, "_sum") == 0) {
        if (c->hsum)
            return fail(c, "second _sum");
        c->hsum = true;
        return true;
    }
    if (!c->hsum)
        return fail(c, "_count before _sum");
    if (sm->value != c->hinf_count)
        return fail(c, "_count %g differs from le=\"+Inf\" %g", sm->value, c->hinf_count);
    c->hopen = false;
    return true;
}

/* Which part of the current family the sample name is: "" for the family
 * itself (counter, gauge), a histogram suffix, or NULL when it is not
 * part of it. */
static const char *family_suffix(const struct checker *c, const char *name)
{
    size_t n = strlen(c->family);
    if (n == 0 || strncmp(name, c->family, n) != 0)
        return NULL;
    const char *suffix = name + n;
    if (strcmp(c->type, "histogram") == 0) {
        if (!strcmp(suffix, "_bucket") || !strcmp(suffix, "_sum") || !strcmp(suffix, "_count"))
            return suffix;
        return NULL;
    }
    return *suffix == '\0' ? suffix : NULL;
}

static bool check_sample(struct checker *c, const char *s)
{
    struct sample sm = {0};
    const char *p = s;
    if (!parse_name(&p, sm.name, sizeof(sm.name), false))
        return fail(c, "bad metric name");
    if (*p == '{' && !parse_labels(c, &p, &sm))
        return false;
    if (*p != ' ')
        return fail(c, "expected a space before the value");
    if (!series_add(c, s, (size_t)(p - s)))
        return false;
    p++;
    char value[64];
    size_t n = strcspn(p, " ");
    if (n >= sizeof(value))
        return fail(c, "value too long");
    memcpy(value, p, n);
    value[n] = '\0';
    if (!parse_float(value, &sm.value))
        return fail(c, "bad value '%s'", value);
    p += n;
    if (*p == ' ' && !is_timestamp(p + 1))
        return fail(c, "bad timestamp");

    const char *suffix = family_suffix(c, sm.name);
    if (suffix == NULL)
        return fail(c, "sample of %s outside its family (no HELP/TYPE first, or interleaved)",
                    sm.name);
    if (!c->help || !c->type[0])
        return fail(c, "sample before the family's %s", c->help ? "TYPE" : "HELP");
    c->sampled = true;
    bool counting = strcmp(c->type, "counter") == 0 || *suffix == '_';
    if (counting && strcmp(suffix, "_sum") != 0 && !(sm.value >= 0))
        return fail(c, "negative or NaN count");
    if (*suffix == '_')
        return check_histogram(c, &sm, suffix);
    return true;
}

static int series_cmp(const void *a, const void *b)
{
    return strcmp(((const struct series *)a)->key, ((const struct series *)b)->key);
}

/* After the last line: no open histogram series, no series twice. */
static bool check_end(struct checker *c)
{
    c->line = NULL;
    if (!histogram_close(c))
        return false;
    qsort(c->series, c->nseries, sizeof(*c->series), series_cmp);
    for (size_t i = 1; i < c->nseries; i++)
        if (strcmp(c->series[i - 1].key, c->series[i].key) == 0) {
            c->lineno = c->series[i].lineno;
            return fail(c, "series %.150s also on line %d", c->series[i].key,
                        c->series[i - 1].lineno);
        }
    return true;
}

static void checker_free(struct checker *c)
{
    for (size_t i = 0; i < c->nfamilies; i++)
        free(c->families[i]);
    free(c->families);
    for (size_t i = 0; i < c->nseries; i++)
        free(c->series[i].key);
    free(c->series);
    free(c->hkey);
}

bool prom_check(const char *text, char *err, size_t errlen)
{
    struct checker c = {.err = err, .errlen = errlen};
    bool ok = true;
    char *line = NULL;
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n') {
        snprintf(err, errlen, "text is empty or does not end with a newline");
        return false;
    }
    for (const char *s = text; ok && *s; s = strchr(s, '\n') + 1) {
        size_t n = strcspn(s, "\n");
        free(line);
        line = strndup(s, n);
        c.line = line;
        c.lineno++;
        if (n == 0)
            ok = fail(&c, "empty line");
        else if (line[0] == '#')
            ok = check_comment(&c, line);
        else
            ok = check_sample(&c, line);
    }
    if (ok)
        ok = check_end(&c);
    free(line);
    checker_free(&c);
    return ok;
}

bool prom_value(const char *text, const char *series, double *value)
{
    size_t n = strlen(series);
    for (const char *s = text; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
        if (strncmp(s, series, n) != 0 || s[n] != ' ')
            continue;
        char buf[64];
        size_t len = strcspn(s + n + 1, " \n");
        if (len >= sizeof(buf))
            return false;
        memcpy(buf, s + n + 1, len);
        buf[len] = '\0';
        return parse_float(buf, value);
    }
    return false;
}
