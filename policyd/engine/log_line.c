/*
 * log_line: a syslog or journald line's header (see log_line.h).
 *
 * The time: BIND's own "24-Nov-2026 22:41:21.962" (print-time yes or
 * local), ISO 8601 "2026-11-24T22:41:21.962[Z|+01:00|+0100]" (BIND's
 * print-time iso8601 and iso8601-utc, rsyslog's RFC 3339 file format,
 * journalctl -o short-iso; a space for the "T" is taken too, optionally
 * after a <PRI>), an RFC 3164 header "Nov  4 22:41:21" (optionally after a
 * <PRI>, optionally with a fraction as journalctl -o short-precise writes
 * it), or an RFC 5424 header "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD
 * [BOM]" (its structured data is skipped as a whole; a header that breaks
 * after its timestamp keeps the time and the rest is read as message).  A
 * timestamp that starts in one of these shapes but is broken or out of
 * range (25:00, 31-Apr, "nov") is *bad.
 *
 * Then, outside RFC 5424: "[HOST ]TAG[[PID]]: MESSAGE".  A word that ends
 * in ":" and reads as a tag is the tag (no host), so a host never needs
 * guessing: hostnames and addresses (even IPv6 ones) do not end in ":".
 * TAG is printable ASCII without '[', ']' or ':' (at most TAG_MAX bytes);
 * PID is 1 to 10 digits.
 *
 * Decisions:
 *  - RFC 3164 carries no year: time.year is 0 and February 29 is accepted.
 *  - An RFC 5424 NILVALUE timestamp ("-") means no time: UNPARSED for
 *    log_line_parse, which needs one.  Its "-" APP-NAME or PROCID is none.
 *  - On UNPARSED, *out is all zero (pid 0, not -1: nothing was read).
 *
 * Linear in the line, no allocation, no locale.
 */
#include "log_line.h"

#include <string.h>

#define TAG_MAX 128
#define PID_DIGITS 9 /* fits a 32-bit long */

#define IS_DIGIT(c) ((unsigned char)((unsigned char)(c) - '0') < 10u)
#define IS_ALPHA(c) ((unsigned char)(((unsigned char)(c) | 0x20) - 'a') < 26u)
/* Printable ASCII without space: what BIND's presentation form of a name holds. */
#define IS_GRAPH(c) ((unsigned char)((unsigned char)(c) - 0x21) < 0x5Eu)

/* ------------------------------------------------------------------ time */

/* "Jan".."Dec" as BIND and syslog write them (C locale, case as is): 1..12, or 0. */
static int month_name(const char *p)
{
    switch (p[0]) {
    case 'J':
        if (p[1] == 'a' && p[2] == 'n')
            return 1;
        if (p[1] == 'u' && p[2] == 'n')
            return 6;
        if (p[1] == 'u' && p[2] == 'l')
            return 7;
        return 0;
    case 'F':
        return p[1] == 'e' && p[2] == 'b' ? 2 : 0;
    case 'M':
        if (p[1] == 'a' && p[2] == 'r')
            return 3;
        if (p[1] == 'a' && p[2] == 'y')
            return 5;
        return 0;
    case 'A':
        if (p[1] == 'p' && p[2] == 'r')
            return 4;
        if (p[1] == 'u' && p[2] == 'g')
            return 8;
        return 0;
    case 'S':
        return p[1] == 'e' && p[2] == 'p' ? 9 : 0;
    case 'O':
        return p[1] == 'c' && p[2] == 't' ? 10 : 0;
    case 'N':
        return p[1] == 'o' && p[2] == 'v' ? 11 : 0;
    case 'D':
        return p[1] == 'e' && p[2] == 'c' ? 12 : 0;
    default:
        return 0;
    }
}

/* Exactly n digits at p (the caller has checked that n bytes are there). */
static bool fixed_digits(const char *p, int n, int *val)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!IS_DIGIT(p[i]))
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *val = v;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Whether the fields are a real moment (no year: February 29 allowed). */
static bool time_valid(const struct log_time *t)
{
    static const unsigned char days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (t->month < 1 || t->month > 12 || t->day < 1 || t->day > days[t->month])
        return false;
    if (t->month == 2 && t->day == 29 && t->has_year && !leap_year(t->year))
        return false;
    /* 60: a leap second. */
    return t->hour <= 23 && t->minute <= 59 && t->second < 61.0;
}

/*
 * "HH:MM:SS" with an optional fraction ".D+", at p.  Returns the end, or
 * NULL.  The seconds are computed as one division so that "21.962" is the
 * double nearest 21.962; digits past the ninth are read but not used.
 */
static const char *parse_clock(const char *p, const char *end, struct log_time *t)
{
    int sec;

    if (end - p < 8 || p[2] != ':' || p[5] != ':' || !fixed_digits(p, 2, &t->hour) ||
        !fixed_digits(p + 3, 2, &t->minute) || !fixed_digits(p + 6, 2, &sec))
        return NULL;
    p += 8;
    if (p < end && *p == '.') {
        long long whole = sec;
        long long scale = 1;
        const char *f = ++p;

        while (p < end && IS_DIGIT(*p)) {
            if (scale < 1000000000LL) {
                whole = whole * 10 + (*p - '0');
                scale *= 10;
            }
            p++;
        }
        if (p == f)
            return NULL;
        t->second = (double)whole / (double)scale;
    } else {
        t->second = sec;
    }
    return p;
}

/*
 * ISO 8601 / RFC 3339 at p: "YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM|-HH:MM|+HHMM]"
 * (RFC 3339 allows a space for the "T").
 * Returns the end or NULL; *t is filled (not yet validated).
 */
static const char *parse_iso(const char *p, const char *end, struct log_time *t)
{
    if (end - p < 19 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != ' ') ||
        !fixed_digits(p, 4, &t->year) || !fixed_digits(p + 5, 2, &t->month) ||
        !fixed_digits(p + 8, 2, &t->day))
        return NULL;
    t->has_year = true;
    p = parse_clock(p + 11, end, t);
    if (p == NULL)
        return NULL;
    if (p < end && *p == 'Z') {
        t->has_offset = true;
        t->offset_minutes = 0;
        return p + 1;
    }
    if (p < end && (*p == '+' || *p == '-')) {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;

        p++;
        if (end - p < 4 || !fixed_digits(p, 2, &oh))
            return NULL;
        p += 2;
        if (*p == ':')
            p++;
        if (end - p < 2 || !fixed_digits(p, 2, &om) || oh > 23 || om > 59)
            return NULL;
        t->has_offset = true;
        t->offset_minutes = sign * (oh * 60 + om);
        return p + 2;
    }
    return p;
}

/* RFC 3164 at p (month name checked by the caller): "Mmm dd HH:MM:SS", day space- or 0-padded. */
static const char *parse_rfc3164(const char *p, const char *end, struct log_time *t)
{
    t->month = month_name(p);
    p += 4;
    if (end - p < 3)
        return NULL;
    if (p[0] == ' ' && IS_DIGIT(p[1])) {
        t->day = p[1] - '0';
        p += 2;
    } else if (IS_DIGIT(p[0]) && IS_DIGIT(p[1])) {
        t->day = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
    } else if (IS_DIGIT(p[0]) && p[1] == ' ') {
        t->day = p[0] - '0';
        p += 1;
    } else {
        return NULL;
    }
    if (p >= end || *p != ' ')
        return NULL;
    return parse_clock(p + 1, end, t);
}

/* BIND's print-time: "DD-Mmm-YYYY HH:MM:SS.mmm" (day one or two digits). */
static const char *parse_bind_time(const char *p, const char *end, struct log_time *t)
{
    if (IS_DIGIT(p[1])) {
        t->day = (p[0] - '0') * 10 + (p[1] - '0');
        p += 3;
    } else {
        t->day = p[0] - '0';
        p += 2;
    }
    t->month = month_name(p);
    p += 4;
    if (end - p < 5 || !fixed_digits(p, 4, &t->year) || p[4] != ' ')
        return NULL;
    t->has_year = true;
    return parse_clock(p + 5, end, t);
}

/* "<PRI>" with PRI 0..191: the end, or NULL. */
static const char *parse_pri(const char *p, const char *end)
{
    int v = 0;
    const char *d = ++p;

    while (p < end && IS_DIGIT(*p) && p - d < 3)
        v = v * 10 + (*p++ - '0');
    if (p == d || p >= end || *p != '>' || v > 191)
        return NULL;
    return p + 1;
}

/* One RFC 5424 header field (HOSTNAME, APP-NAME, PROCID, MSGID) and its space. */
static const char *skip_field(const char *p, const char *end)
{
    const char *s = p;

    while (p < end && IS_GRAPH(*p))
        p++;
    if (p == s || p >= end || *p != ' ')
        return NULL;
    return p + 1;
}

/* RFC 5424 STRUCTURED-DATA: "-" or one or more [ID PARAM="VALUE" ...], value escapes \" \\ \]. */
static const char *skip_sd(const char *p, const char *end)
{
    if (p < end && *p == '-')
        return p + 1;
    if (p >= end || *p != '[')
        return NULL;
    while (p < end && *p == '[') {
        bool quoted = false;

        for (p++;; p++) {
            if (p >= end)
                return NULL;
            if (quoted) {
                if (*p == '\\') {
                    if (++p >= end)
                        return NULL;
                } else if (*p == '"') {
                    quoted = false;
                }
            } else if (*p == '"') {
                quoted = true;
            } else if (*p == ']') {
                break;
            }
        }
        p++;
    }
    return p;
}

/* After "<PRI>1 ": TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [SP [BOM] MSG]. */
static const char *parse_rfc5424(const char *p, const char *end, struct log_time *t,
                                 bool *bad, struct log_slice fields[4])
{
    const char *q;

    if (p < end && *p == '-') {
        q = p + 1;
    } else {
        q = parse_iso(p, end, t);
        if (q == NULL || !time_valid(t)) {
            *bad = true;
            return p;
        }
        t->present = true;
    }
    if (q >= end || *q != ' ')
        goto bad_header;
    for (int i = 0; i < 4 && q != NULL; i++) {
        const char *f = q + (i == 0);

        q = skip_field(f, end);
        if (q != NULL) {
            fields[i].ptr = f;
            fields[i].len = (size_t)(q - 1 - f);
        }
    }
    if (q == NULL)
        goto bad_header;
    q = skip_sd(q, end);
    if (q == NULL)
        goto bad_header;
    if (q < end) {
        if (*q != ' ')
            goto bad_header;
        q++;
        if (end - q >= 3 && (unsigned char)q[0] == 0xEF && (unsigned char)q[1] == 0xBB &&
            (unsigned char)q[2] == 0xBF)
            q += 3;
    }
    return q;
bad_header:
    /* Not a well-formed header after all: search from after the version. */
    memset(fields, 0, 4 * sizeof fields[0]);
    return p;
}

/*
 * Reads a known timestamp shape at the start of the line (see the top of
 * the file) into *t.  Returns where the message starts (the line itself if
 * nothing is known).  *bad: a timestamp began but is broken.
 */
static const char *parse_prefix(const char *p, const char *end, struct log_time *t, bool *bad,
                                struct log_slice fields[4])
{
    const char *q;

    if (p < end && *p == '<') {
        q = parse_pri(p, end);
        if (q == NULL)
            return p;
        p = q;
        /* RFC 5424: VERSION is "1" today; any 1-2 digit version is taken alike. */
        if (end - p >= 2 && IS_DIGIT(p[0]) && p[0] != '0') {
            if (p[1] == ' ')
                return parse_rfc5424(p + 2, end, t, bad, fields);
            if (end - p >= 3 && IS_DIGIT(p[1]) && p[2] == ' ')
                return parse_rfc5424(p + 3, end, t, bad, fields);
        }
    }
    if (end - p < 4)
        return p;
    /*
     * A shape is taken once its first bytes match (three letters, a space
     * and a day; 1-2 digits, "-", three letters, "-"; four digits and "-"):
     * from there on a wrong month name ("nov") or value is a broken time.
     */
    if (IS_ALPHA(p[0])) {
        if (end - p < 6 || !IS_ALPHA(p[1]) || !IS_ALPHA(p[2]) || p[3] != ' ' ||
            !(IS_DIGIT(p[4]) || (p[4] == ' ' && IS_DIGIT(p[5]))))
            return p;
        q = month_name(p) ? parse_rfc3164(p, end, t) : NULL;
    } else if (IS_DIGIT(p[0])) {
        if (IS_DIGIT(p[1]) && IS_DIGIT(p[2]) && IS_DIGIT(p[3]) && end - p >= 5 && p[4] == '-') {
            q = parse_iso(p, end, t);
        } else {
            const char *m = p + (IS_DIGIT(p[1]) ? 2 : 1);

            if (end - m < 5 || m[0] != '-' || !IS_ALPHA(m[1]) || !IS_ALPHA(m[2]) ||
                !IS_ALPHA(m[3]) || m[4] != '-')
                return p;
            q = month_name(m + 1) ? parse_bind_time(p, end, t) : NULL;
        }
    } else {
        return p;
    }
    if (q == NULL || !time_valid(t) || (q < end && *q != ' ')) {
        *bad = true;
        return p;
    }
    t->present = true;
    return q < end ? q + 1 : q;
}


/* ------------------------------------------------------------ the header */

const char *log_line_time_prefix(const char *p, const char *end, struct log_time *t, bool *bad)
{
    struct log_slice fields[4];

    return parse_prefix(p, end, t, bad, fields);
}

/*
 * Whether the word [p, wend) reads as "TAG:" or "TAG[PID]:": fills tag and
 * pid.  The caller has checked that it ends in ':'.
 */
static bool tag_word(const char *p, const char *wend, struct log_slice *tag, long *pid)
{
    const char *s = p;

    while (p < wend && IS_GRAPH(*p) && *p != '[' && *p != ']' && *p != ':')
        p++;
    if (p == s || p - s > TAG_MAX)
        return false;
    tag->ptr = s;
    tag->len = (size_t)(p - s);
    *pid = -1;
    if (*p == '[') {
        const char *d = ++p;
        long v = 0;

        while (p < wend && IS_DIGIT(*p) && p - d < PID_DIGITS)
            v = v * 10 + (*p++ - '0');
        if (p == d || p + 1 >= wend || p[0] != ']')
            return false;
        p++;
        *pid = v;
    }
    return p + 1 == wend && *p == ':';
}

/* The end of the word at p (up to a space or the end). */
static const char *word_end(const char *p, const char *end)
{
    const char *s = memchr(p, ' ', (size_t)(end - p));

    return s != NULL ? s : end;
}

/* A word "TAG...:" at p followed by a space or the end: the message after it, or NULL. */
static const char *read_tag(const char *p, const char *end, struct log_line *out)
{
    const char *w = word_end(p, end);

    if (w == p || w[-1] != ':' || !tag_word(p, w, &out->tag, &out->pid))
        return NULL;
    return w < end ? w + 1 : w;
}

/* An RFC 5424 PROCID: a number, or none. */
static long procid(struct log_slice f)
{
    long v = 0;

    if (f.len == 0 || f.len > PID_DIGITS)
        return -1;
    for (size_t i = 0; i < f.len; i++) {
        if (!IS_DIGIT(f.ptr[i]))
            return -1;
        v = v * 10 + (f.ptr[i] - '0');
    }
    return v;
}

static bool nil(struct log_slice f)
{
    return f.len == 1 && f.ptr[0] == '-';
}

enum log_line_result log_line_parse(const char *line, size_t len, struct log_line *out)
{
    static const struct log_line zero;
    struct log_line scratch;
    struct log_slice fields[4] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    const char *end, *p, *q;
    bool bad = false;

    if (out == NULL)
        out = &scratch;
    *out = zero;
    if (line == NULL || len == 0)
        return LOG_LINE_UNPARSED;
    end = line + len;
    if (end[-1] == '\r')
        end--;

    p = parse_prefix(line, end, &out->time, &bad, fields);
    if (bad || !out->time.present) {
        *out = zero;
        return LOG_LINE_UNPARSED;
    }
    out->pid = -1;
    out->host.ptr = out->tag.ptr = p;
    if (fields[0].ptr != NULL) {
        /* RFC 5424: the header says it all. */
        if (!nil(fields[0]))
            out->host = fields[0];
        if (!nil(fields[1]))
            out->tag = fields[1];
        out->pid = procid(fields[2]);
        out->message.ptr = p;
        out->message.len = (size_t)(end - p);
        return out->tag.len > 0 ? LOG_LINE_TAGGED : LOG_LINE_UNTAGGED;
    }
    q = read_tag(p, end, out);
    if (q == NULL) {
        const char *h = word_end(p, end);

        if (h > p && h < end) {
            out->host.ptr = p;
            out->host.len = (size_t)(h - p);
            q = read_tag(h + 1, end, out);
            if (q == NULL)
                p = h + 1;
        }
    }
    if (q == NULL) {
        out->tag.ptr = p;
        out->tag.len = 0;
        out->pid = -1;
        out->message.ptr = p;
        out->message.len = (size_t)(end - p);
        return LOG_LINE_UNTAGGED;
    }
    out->message.ptr = q;
    out->message.len = (size_t)(end - q);
    return LOG_LINE_TAGGED;
}
