/*
 * throttle_record: one rw:throttle entry as text, both ways.  Pure
 * functions over buffers given with their lengths (a Redis reply is not
 * NUL-terminated); no allocation.
 *
 * Value: "v1 CHANGED SINCE UNTIL SOURCE ESCALATED HOST\tACTION\tREASON".
 */
#include "throttle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_COUNT (CULPRIT_SENDER_DOMAIN + 1)
#define TIME_MAX 1e11       /* past year 5000: no clock gives that */
#define TIME_TEXT_MAX 20    /* "99999999999.999" and some leeway */

static const char *const source_names[THROTTLE_SOURCES] = {"detector", "limit", "manual",
                                                            "released", "fast"};

const char *throttle_source_name(enum throttle_source s)
{
    return (unsigned)s < THROTTLE_SOURCES ? source_names[s] : "unknown";
}

/* ------------------------------------------------------------ writing */

struct out {
    char *p;
    size_t cap, len; /* len: what is written, at most cap - 1 */
};

static void put(struct out *o, const char *s, size_t n)
{
    size_t room = o->cap > o->len ? o->cap - 1 - o->len : 0;

    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* s (at most max bytes of it) with the characters that would break the line turned into c. */
static void put_clean(struct out *o, const char *s, size_t max, const char *bad, char c)
{
    size_t n = strnlen(s, max);

    for (size_t i = 0; i < n; i++)
        put(o, strchr(bad, s[i]) ? &c : s + i, 1);
}

/* Whole milliseconds (so that what is printed reads back as the same double), 0 for a time
 * out of range (NaN too). */
static double clamp_time(double t)
{
    double ms = floor(t * 1000 + 0.5);

    return ms >= 0 && ms < TIME_MAX * 1000 ? ms / 1000 : 0;
}

size_t throttle_record_format(const struct throttle_record *r, char *out, size_t outlen)
{
    struct out o = {out, outlen, 0};
    char head[128];
    int n;

    if (outlen == 0)
        return 0;
    out[0] = '\0';
    n = snprintf(head, sizeof(head), "v1 %.3f %.3f %.3f %s %d ", clamp_time(r->changed),
                 clamp_time(r->since), clamp_time(r->until), throttle_source_name(r->source),
                 r->escalated ? 1 : 0);
    put(&o, head, (size_t)n);
    if (strnlen(r->host, sizeof(r->host)) == 0)
        put(&o, "-", 1);
    else
        put_clean(&o, r->host, sizeof(r->host), " \t\r\n", '_');
    put(&o, "\t", 1);
    if (strnlen(r->action, sizeof(r->action)) == 0)
        put(&o, "DUNNO", 5);
    else
        put_clean(&o, r->action, sizeof(r->action), "\t\r\n", ' ');
    put(&o, "\t", 1);
    put_clean(&o, r->reason, sizeof(r->reason), "\t\r\n", ' ');
    return o.len;
}

/* ------------------------------------------------------------ reading */

/* A slice of the value being read. */
struct cursor {
    const char *p, *end;
};

/* The bytes up to the next delim; the cursor moves past it.  False: no delim. */
static bool next_part(struct cursor *c, char delim, const char **s, size_t *n)
{
    const char *d = memchr(c->p, delim, (size_t)(c->end - c->p));

    if (d == NULL)
        return false;
    *s = c->p;
    *n = (size_t)(d - c->p);
    c->p = d + 1;
    return true;
}

/* Copy s into a buffer of cap bytes if it fits and holds none of the bytes in bad (nor NUL). */
static bool copy_text(char *dst, size_t cap, const char *s, size_t n, const char *bad,
                      bool may_be_empty)
{
    if (n >= cap || (n == 0 && !may_be_empty))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(bad, s[i]) != NULL)
            return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* A Unix time as format writes it: digits, optionally a dot and more digits; no sign. */
static bool parse_time(const char *s, size_t n, double *out)
{
    char buf[TIME_TEXT_MAX + 1];
    size_t i = 0, digits = 0;

    if (n == 0 || n > TIME_TEXT_MAX)
        return false;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    digits = i;
    if (i < n && s[i] == '.') {
        size_t frac = ++i;

        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == frac)
            return false;
    }
    if (digits == 0 || i != n)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return *out < TIME_MAX;
}

static bool parse_source(const char *s, size_t n, enum throttle_source *out)
{
    for (unsigned i = 0; i < THROTTLE_SOURCES; i++)
        if (strlen(source_names[i]) == n && memcmp(source_names[i], s, n) == 0) {
            *out = (enum throttle_source)i;
            return true;
        }
    return false;
}

bool throttle_parse_member(const char *member, size_t len, enum culprit_kind *kind, char *key,
                           size_t keylen)
{
    const char *colon = member != NULL ? memchr(member, ':', len) : NULL;
    size_t klen;

    if (colon == NULL || keylen == 0)
        return false;
    klen = (size_t)(colon - member);
    for (unsigned k = 0; k < KIND_COUNT; k++) {
        const char *name = culprit_kind_name((enum culprit_kind)k);

        if (strlen(name) == klen && memcmp(name, member, klen) == 0) {
            *kind = (enum culprit_kind)k;
            return copy_text(key, keylen, colon + 1, len - klen - 1, "", false);
        }
    }
    return false;
}

bool throttle_record_parse(const char *field, size_t field_len, const char *value,
                           size_t value_len, struct throttle_record *out)
{
    struct cursor c = {value, value + value_len};
    const char *s;
    size_t n;
    double *times[3];

    memset(out, 0, sizeof(*out));
    if (field == NULL || value == NULL)
        return false;
    times[0] = &out->changed;
    times[1] = &out->since;
    times[2] = &out->until;
    if (!throttle_parse_member(field, field_len, &out->kind, out->key, sizeof(out->key)))
        return false;
    if (!next_part(&c, ' ', &s, &n) || n != 2 || memcmp(s, "v1", 2) != 0)
        return false;
    for (unsigned i = 0; i < 3; i++)
        if (!next_part(&c, ' ', &s, &n) || !parse_time(s, n, times[i]))
            return false;
    if (!next_part(&c, ' ', &s, &n) || !parse_source(s, n, &out->source))
        return false;
    if (!next_part(&c, ' ', &s, &n) || n != 1 || (s[0] != '0' && s[0] != '1'))
        return false;
    out->escalated = s[0] == '1';
    if (!next_part(&c, '\t', &s, &n) ||
        !copy_text(out->host, sizeof(out->host), s, n, " \r\n", false))
        return false;
    if (!next_part(&c, '\t', &s, &n) ||
        !copy_text(out->action, sizeof(out->action), s, n, "\r\n", false))
        return false;
    /* The rest is the reason: a third tab means the line is not ours. */
    return copy_text(out->reason, sizeof(out->reason), c.p, (size_t)(c.end - c.p), "\t\r\n",
                     true);
}
