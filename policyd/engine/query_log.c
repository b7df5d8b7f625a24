/*
 * query_log: one line of a BIND 9, unbound or dnsmasq query log (see
 * query_log.h).
 *
 * A line with BIND's marker ": query:" is read as BIND's; any other line
 * as unbound's or dnsmasq's (resolver_line, below BIND's code), so that
 * every BIND line reads exactly as before.
 *
 * BIND's lines are read in three steps:
 *
 *  1. The marker ": query:" is looked for.  A line without it is
 *     QUERY_LOG_OTHER: another category, another program, an empty line.
 *  2. What precedes the message is read if it has a known shape, for the
 *     time only, by log_line (relaywatch analyze's code too): BIND's own
 *     "24-Nov-2026 22:41:21.962" (print-time yes or
 *     local), ISO 8601 "2026-11-24T22:41:21.962[Z|+01:00]" (print-time
 *     iso8601 and iso8601-utc, rsyslog's RFC 3339 file format, journalctl
 *     -o short-iso; a space for the "T" is taken too, optionally after a
 *     <PRI>), an RFC 3164 header "Nov  4 22:41:21" (optionally after a
 *     <PRI>, optionally with a fraction as journalctl -o short-precise
 *     writes it), or an RFC 5424 header "<PRI>1 TIMESTAMP HOST APP PROCID
 *     MSGID SD [BOM]" (its structured data is skipped as a whole, so that
 *     nothing inside it is taken for the query; a header that breaks after
 *     its timestamp keeps the time and is searched like an unknown prefix).
 *     A timestamp that starts in one of these shapes but is broken or out
 *     of range (25:00, 31-Apr, "nov") makes a query line QUERY_LOG_ERROR.
 *     Anything else before "client" (print-category, print-severity,
 *     syslog host and tag, unknown prefixes) is skipped: the time is then
 *     absent.
 *  3. The query part, strictly:
 *
 *       client [@0xHEX ]ADDR[%SCOPE]#PORT[/key KEYNAME][ (NAME)][: view VIEW]: query:
 *           QNAME CLASS TYPE FLAGS[ (SERVER)][ [ECS ...]]
 *
 *     "client" is the first word "client" (at the message start or after a
 *     space, before the marker) followed by a valid ADDR#PORT, so that a
 *     syslog host named "client" is passed over.  ADDR is what inet_pton
 *     takes (dotted quad without leading zeros, or IPv6 with at most one
 *     "::" and an optional trailing dotted quad).  FLAGS is "+" or "-" then
 *     upper-case letters, each optionally followed by "(DIGITS)" (S, E(0),
 *     T, D, C, V, K today; older servers write "E" alone).  QNAME, KEYNAME
 *     and NAME are BIND's presentation form: printable ASCII without spaces
 *     (BIND escapes the rest as \DDD).  VIEW may hold spaces.  The
 *     "[ECS address/source/scope]" suffix is what BIND adds when the query
 *     carried an EDNS client-subnet option.  Nothing may follow but one
 *     trailing CR.
 *
 * Decisions:
 *  - QUERY_LOG_ERROR means: the marker is there, a word "client" precedes
 *    it, and yet the line does not read (bad or missing address or port,
 *    missing class/type/flags, truncated, trailing text, broken timestamp,
 *    NUL bytes).  A line with the marker but no word "client" before it
 *    (another program's "query: SELECT ...") is QUERY_LOG_OTHER.
 *  - An IPv6 scope ("fe80::1%eth0#53", BIND itself writes "%2") is dropped:
 *    the client slice is the address alone, exactly what inet_pton accepts.
 *    The server address in parentheses may carry one too.
 *  - Empty view: view.len is 0 and view.ptr points at the marker (never
 *    NULL, so memcmp(view.ptr, x, view.len) is defined).
 *  - On OTHER and ERROR, *out is all zero.
 *  - RFC 3164 carries no year: time.year is 0 and February 29 is accepted.
 *  - An RFC 5424 NILVALUE timestamp ("-") means no time.
 *  - The qname is as logged: escapes kept, case kept, no final dot added.
 *
 * Linear in the line, no allocation, no locale: digits and month names are
 * read by hand.
 */
#ifndef _GNU_SOURCE /* memmem; the top-level CMakeLists defines it already */
#define _GNU_SOURCE
#endif
#include "query_log.h"

#include "log_line.h"

#include <string.h>

#define MARKER ": query:"
#define MARKER_LEN 8

/* Longest presentation-form name: 255 octets, some escaped as \DDD. */
#define NAME_MAX_TEXT 1024
#define WORD_MAX 32  /* class, type, flags */
#define SCOPE_MAX 64 /* an interface name or a number */

#define IS_DIGIT(c) ((unsigned char)((unsigned char)(c) - '0') < 10u)
#define IS_UPPER(c) ((unsigned char)((unsigned char)(c) - 'A') < 26u)
#define IS_ALPHA(c) ((unsigned char)(((unsigned char)(c) | 0x20) - 'a') < 26u)
#define IS_HEX(c) (IS_DIGIT(c) || (unsigned char)(((unsigned char)(c) | 0x20) - 'a') < 6u)
/* Printable ASCII without space: what BIND's presentation form of a name holds. */
#define IS_GRAPH(c) ((unsigned char)((unsigned char)(c) - 0x21) < 0x5Eu)

/* ------------------------------------------------------------- addresses */

/* A dotted quad as inet_pton(AF_INET) takes it (no leading zeros): its end, or NULL. */
static const char *ipv4_end(const char *p, const char *end)
{
    for (int part = 0; part < 4; part++) {
        unsigned v;
        int n = 1;

        if (part > 0) {
            if (p >= end || *p != '.')
                return NULL;
            p++;
        }
        if (p >= end || !IS_DIGIT(*p))
            return NULL;
        v = (unsigned)(*p++ - '0');
        while (p < end && IS_DIGIT(*p)) {
            if (v == 0 || ++n > 3)
                return NULL;
            v = v * 10 + (unsigned)(*p++ - '0');
        }
        if (v > 255)
            return NULL;
    }
    return p;
}

/* An IPv6 address as inet_pton(AF_INET6) takes it: its end, or NULL. */
static const char *ipv6_end(const char *p, const char *end)
{
    int groups = 0;
    bool compressed = false;

    if (p < end && *p == ':') {
        if (end - p < 2 || p[1] != ':')
            return NULL;
        p += 2;
        compressed = true;
        if (p >= end || !IS_HEX(*p))
            return p; /* "::" */
    }
    for (;;) {
        const char *g = p;

        while (p < end && IS_HEX(*p) && p - g < 5)
            p++;
        if (p == g || p - g > 4)
            return NULL;
        if (p < end && *p == '.') {
            /* A trailing dotted quad: the last 32 bits. */
            p = ipv4_end(g, end);
            if (p == NULL || groups > 6)
                return NULL;
            groups += 2;
            break;
        }
        groups++;
        if (p >= end || *p != ':')
            break;
        if (end - p >= 2 && p[1] == ':') {
            if (compressed)
                return NULL;
            compressed = true;
            p += 2;
            if (p >= end || !IS_HEX(*p))
                break; /* ends with "::" */
        } else {
            p++;
        }
        if (groups >= 8)
            return NULL;
    }
    if (compressed ? groups > 7 : groups != 8)
        return NULL;
    return p;
}

/*
 * An address at p, then an optional "%SCOPE" (IPv6 only).  Returns the end
 * of all that, or NULL; *addr_end is the end of the address alone.
 */
static const char *address_end(const char *p, const char *end, const char **addr_end)
{
    const char *q = ipv4_end(p, end);
    const char *s;

    if (q != NULL && (q >= end || (*q != ':' && !IS_HEX(*q)))) {
        *addr_end = q;
        return q;
    }
    q = ipv6_end(p, end);
    if (q == NULL)
        return NULL;
    *addr_end = q;
    if (q < end && *q == '%') {
        s = ++q;
        while (q < end && q - s <= SCOPE_MAX &&
               (IS_DIGIT(*q) || IS_ALPHA(*q) || *q == '_' || *q == '-' || *q == '.'))
            q++;
        if (q == s || q - s > SCOPE_MAX)
            return NULL;
    }
    return q;
}

/*
 * At p, just after "client ": "[@0xHEX ]ADDR[%SCOPE]#PORT".  Fills the
 * client slice; returns the end, or NULL.  Bounded work whatever follows.
 */
static const char *parse_client(const char *p, const char *end, struct query_log_slice *client)
{
    const char *a, *ae, *q;
    unsigned port = 0;

    if (end - p >= 3 && p[0] == '@' && p[1] == '0' && p[2] == 'x') {
        const char *h = p += 3;

        while (p < end && IS_HEX(*p) && p - h <= 16)
            p++;
        if (p == h || p - h > 16 || p >= end || *p != ' ')
            return NULL;
        p++;
    }
    a = p;
    q = address_end(p, end, &ae);
    if (q == NULL || q >= end || *q != '#')
        return NULL;
    p = ++q;
    while (q < end && IS_DIGIT(*q) && q - p < 5)
        port = port * 10 + (unsigned)(*q++ - '0');
    if (q == p || port > 65535 || (q < end && IS_DIGIT(*q)))
        return NULL;
    client->ptr = a;
    client->len = (size_t)(ae - a);
    return q;
}

/* ------------------------------------------------------------ the query */

/* A presentation-form name up to a space or the end: its end, or NULL (empty, long, bad byte). */
static const char *name_end(const char *p, const char *end)
{
    const char *s = p;

    while (p < end && IS_GRAPH(*p))
        p++;
    if (p == s || p - s > NAME_MAX_TEXT || (p < end && *p != ' '))
        return NULL;
    return p;
}

/* " (NAME)" after the port (p at "("): NAME may hold an escaped ")". Its end, or NULL. */
static const char *paren_name_end(const char *p, const char *end)
{
    const char *s = ++p;

    while (p < end && *p != ')') {
        if (!IS_GRAPH(*p))
            return NULL;
        if (*p == '\\' && ++p >= end)
            return NULL;
        p++;
    }
    if (p >= end || p == s || p - s > NAME_MAX_TEXT)
        return NULL;
    return p + 1;
}

/*
 * Between the port and the marker: "[/key KEYNAME][ (NAME)][: view VIEW]".
 * Fills the view; false if anything else is there.
 */
static bool parse_between(const char *p, const char *marker, struct query_log_slice *view)
{
    if (marker - p >= 5 && memcmp(p, "/key ", 5) == 0) {
        const char *k = p += 5;

        while (p < marker && IS_GRAPH(*p) && !(*p == ':' && p + 1 < marker && p[1] == ' '))
            p++;
        if (p == k || p - k > NAME_MAX_TEXT)
            return false;
    }
    if (marker - p >= 2 && p[0] == ' ' && p[1] == '(') {
        p = paren_name_end(p + 1, marker);
        if (p == NULL)
            return false;
    }
    view->ptr = marker;
    view->len = 0;
    if (p == marker)
        return true;
    if (marker - p < 8 || memcmp(p, ": view ", 7) != 0)
        return false;
    p += 7;
    view->ptr = p;
    view->len = (size_t)(marker - p);
    for (; p < marker; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            return false;
    return true;
}

/* An upper-case word ([A-Z][A-Z0-9-]*, at most WORD_MAX) then a space: its end, or NULL. */
static const char *word_end(const char *p, const char *end, bool hyphen)
{
    const char *s = p;

    if (p >= end || !IS_UPPER(*p))
        return NULL;
    while (p < end && (IS_UPPER(*p) || IS_DIGIT(*p) || (hyphen && *p == '-')))
        p++;
    if (p - s > WORD_MAX || p >= end || *p != ' ')
        return NULL;
    return p;
}

/* FLAGS: "+" or "-", then letters each with an optional "(DIGITS)". Its end, or NULL. */
static const char *flags_end(const char *p, const char *end)
{
    const char *s = p;

    if (p >= end || (*p != '+' && *p != '-'))
        return NULL;
    p++;
    while (p < end && IS_UPPER(*p)) {
        p++;
        if (p < end && *p == '(') {
            const char *d = ++p;

            while (p < end && IS_DIGIT(*p) && p - d < 6)
                p++;
            if (p == d || p >= end || *p != ')')
                return NULL;
            p++;
        }
        if (p - s > WORD_MAX)
            return NULL;
    }
    if (p < end && *p != ' ')
        return NULL;
    return p;
}

/* After the marker: " QNAME CLASS TYPE FLAGS[ (SERVER)][ [ECS ...]]" to the end. */
static bool parse_query(const char *p, const char *end, struct query_log_entry *out)
{
    const char *q, *ae;

    if (p >= end || *p != ' ')
        return false;
    q = name_end(++p, end);
    if (q == NULL || q >= end)
        return false;
    out->qname.ptr = p;
    out->qname.len = (size_t)(q - p);
    p = q + 1;
    q = word_end(p, end, false);
    if (q == NULL)
        return false;
    out->qclass.ptr = p;
    out->qclass.len = (size_t)(q - p);
    p = q + 1;
    q = word_end(p, end, true);
    if (q == NULL)
        return false;
    out->qtype.ptr = p;
    out->qtype.len = (size_t)(q - p);
    p = flags_end(q + 1, end);
    if (p == NULL)
        return false;
    if (p == end)
        return true;
    /* p at a space */
    if (end - p >= 2 && p[1] == '(') {
        q = address_end(p + 2, end, &ae);
        if (q == NULL || q >= end || *q != ')')
            return false;
        p = q + 1;
        if (p == end)
            return true;
    }
    if (end - p >= 7 && memcmp(p, " [ECS ", 6) == 0 && end[-1] == ']') {
        for (q = p + 6; q < end - 1; q++)
            if (!IS_GRAPH(*q) || *q == ']')
                return false;
        return q > p + 6;
    }
    return false;
}

/* ------------------------------------------------- unbound and dnsmasq */

/*
 * unbound (util/log.c log_vmsg): its own file writes "[UNIXTIME] IDENT[PID:
 * THREAD] KIND: MSG", or with log-time-ascii "Mmm dd HH:MM:SS IDENT[...]",
 * or with log-time-iso "YYYY-MM-DDTHH:MM:SS.mmm+HH:MM IDENT[...]"; through
 * syslog the message is "[PID:THREAD] KIND: MSG" after syslog's own tag.
 * IDENT is "unbound" unless log-identity says otherwise; THREAD is decimal
 * (hex, "%x", before 1.25).  KIND is "info", or "query"/"reply" with
 * log-tag-queryreply.  MSG for log-queries is "ADDR NAME TYPE CLASS"
 * (util/net_help.c log_query_in) and for log-replies "ADDR NAME TYPE CLASS
 * RCODE SECS.USECS CACHED SIZE[ on PROTO ADDR PORT]" (util/data/msgreply.c
 * log_reply_info).  NAME always ends in '.' (util/data/dname.c dname_str
 * prints bytes other than [A-Za-z0-9_*-] as '?').
 *
 * dnsmasq (src/log.c, src/cache.c log_query): "dnsmasq[PID]: " after a
 * syslog header or, in its own log-facility file, after "%.15s " of ctime
 * (an RFC 3164 time); none on stderr.  A query is "query[TYPE] NAME from
 * ADDR"; log-queries=extra prefixes "SERIAL ADDR/PORT ", =proto also "UDP "
 * or "TCP ".  TYPE is a name or "type=N"; the name is lower-cased by
 * dnsmasq and has no final dot.
 *
 * Decisions (beyond query_log.h's):
 *  - A line whose message begins a query shape (unbound's "query:"/"reply:"
 *    tag; "info:" with an address, a space and a name ending in '.';
 *    dnsmasq's "query[") but breaks later is QUERY_LOG_ERROR; everything
 *    else is QUERY_LOG_OTHER.  So is a reply with no question ("- - -
 *    FORMERR", "null TYPE0 CLASS0 REFUSED").
 *  - dnsmasq's "auth[TYPE]" (its authoritative side) is OTHER: a mail
 *    server's lookups go to the recursive side.
 *  - Names holding a space (dnsmasq prints what isprint() takes, and
 *    "<name unprintable>") are ERROR: a qname never holds one.
 *  - "[UNIXTIME]" inside a syslog line (unbound on stderr under a
 *    supervisor) wins over the syslog time: unix_time is set, time zero.
 */

#define UNIX_DIGITS 12 /* "[1700000000]": up to the year 33658 */
#define KIND_MAX 16    /* unbound's "info", "query", "reply", "notice", ... */
#define TAG_MAX 128    /* a syslog tag, unbound's log-identity */
#define IS_LOWER(c) ((unsigned char)((unsigned char)(c) - 'a') < 26u)

/* An address without a scope (inet_ntop's output) at p: its end, or NULL. */
static const char *plain_address_end(const char *p, const char *end)
{
    const char *ae;
    const char *q = address_end(p, end, &ae);

    return q != NULL && q == ae ? q : NULL;
}

/* 1 to max digits at p: their end, or NULL. */
static const char *digits_end(const char *p, const char *end, int max)
{
    const char *d = p;

    while (p < end && IS_DIGIT(*p) && p - d < max)
        p++;
    if (p == d || (p < end && IS_DIGIT(*p)))
        return NULL;
    return p;
}

/* An upper-case word ([A-Z][A-Z0-9-]*, at most WORD_MAX) ending at a space or the end. */
static const char *upper_end(const char *p, const char *end)
{
    const char *s = p;

    if (p >= end || !IS_UPPER(*p))
        return NULL;
    while (p < end && (IS_UPPER(*p) || IS_DIGIT(*p) || *p == '-') && p - s <= WORD_MAX)
        p++;
    if (p - s > WORD_MAX || (p < end && *p != ' '))
        return NULL;
    return p;
}

/* "[1700000000] " at the start: unbound's own log file.  After it, or p itself. */
static const char *unix_time_prefix(const char *p, const char *end, struct query_log_entry *out)
{
    const char *q;
    int64_t v = 0;

    if (p >= end || *p != '[')
        return p;
    q = digits_end(p + 1, end, UNIX_DIGITS);
    if (q == NULL || end - q < 2 || q[0] != ']' || q[1] != ' ')
        return p;
    for (const char *d = p + 1; d < q; d++)
        v = v * 10 + (*d - '0');
    out->unix_time = true;
    out->unix_seconds = v;
    return q + 2;
}

/*
 * After the client: "NAME. TYPE CLASS", or a reply's "NAME. TYPE CLASS
 * RCODE SECS.USECS CACHED SIZE[ on PROTO ADDR PORT]".  *named: the name
 * (ending in '.') and its space were there.
 */
static bool unbound_query(const char *p, const char *end, struct query_log_entry *out,
                          bool *named)
{
    const char *q = name_end(p, end);

    if (q == NULL || q >= end || q[-1] != '.')
        return false;
    *named = true;
    out->qname.ptr = p;
    /* The root stays "."; any other name loses its final dot, as BIND writes it. */
    out->qname.len = (size_t)(q - p) - (q - p > 1);
    p = q + 1;
    q = upper_end(p, end);
    if (q == NULL || q >= end)
        return false;
    out->qtype.ptr = p;
    out->qtype.len = (size_t)(q - p);
    p = q + 1;
    q = upper_end(p, end);
    if (q == NULL)
        return false;
    out->qclass.ptr = p;
    out->qclass.len = (size_t)(q - p);
    if (q == end)
        return true;
    /* A reply: RCODE, the time it took, whether from the cache, its size. */
    out->reply = true;
    q = upper_end(q + 1, end);
    if (q == NULL || q >= end)
        return false;
    q = digits_end(q + 1, end, UNIX_DIGITS);
    if (q == NULL || end - q < 8 || *q != '.')
        return false;
    p = q + 1;
    q = digits_end(p, end, 6); /* "%6.6d" microseconds: always six digits */
    if (q == NULL || q - p != 6 || q >= end || *q != ' ')
        return false;
    q = digits_end(q + 1, end, 3);
    if (q == NULL || q >= end || *q != ' ')
        return false;
    q = digits_end(q + 1, end, 5);
    if (q == NULL)
        return false;
    if (q == end)
        return true;
    /* log-destaddr (unbound 1.19.3+): " on udp|tcp|dot|doh|unix|raw ADDR PORT". */
    if (end - q < 4 || memcmp(q, " on ", 4) != 0)
        return false;
    p = q += 4;
    while (q < end && IS_LOWER(*q) && q - p < KIND_MAX)
        q++;
    if (q == p || q >= end || *q != ' ')
        return false;
    p = q + 1;
    q = name_end(p, end);
    if (q == NULL || q >= end)
        return false;
    q = digits_end(q + 1, end, 5);
    return q == end;
}

/*
 * unbound's message from its kind on: "info: ", "query: " or "reply: ",
 * then the client address and the query.  Another kind (notice, error,
 * debug, ...) is OTHER; so is an "info:" that does not start with an
 * address, a space and a name ending in '.', and a reply to a query that
 * could not be parsed ("ADDR - - - FORMERR - - -").
 */
static enum query_log_result unbound_message(const char *p, const char *end,
                                             struct query_log_entry *out)
{
    const char *k = p, *q;
    bool named = false, reply;

    while (p < end && IS_LOWER(*p) && p - k < KIND_MAX)
        p++;
    if (end - p < 2 || p[0] != ':' || p[1] != ' ')
        return QUERY_LOG_OTHER;
    if (p - k == 4 && memcmp(k, "info", 4) == 0)
        ;
    else if ((p - k == 5 && memcmp(k, "query", 5) == 0) || (p - k == 5 && memcmp(k, "reply", 5) == 0))
        named = true; /* the tag says what the line is */
    else
        return QUERY_LOG_OTHER;
    p += 2;
    q = plain_address_end(p, end);
    if (q == NULL || q >= end || *q != ' ')
        return named ? QUERY_LOG_ERROR : QUERY_LOG_OTHER;
    out->client.ptr = p;
    out->client.len = (size_t)(q - p);
    p = q + 1;
    /* Replies to what could not be parsed (FORMERR) or was refused before its question was
     * read ("null TYPE0 CLASS0 REFUSED"): no query to count. */
    if (k[0] != 'q' && ((end - p >= 6 && memcmp(p, "- - - ", 6) == 0) ||
                        (end - p >= 5 && memcmp(p, "null ", 5) == 0)))
        return QUERY_LOG_OTHER;
    if (!unbound_query(p, end, out, &named))
        return named ? QUERY_LOG_ERROR : QUERY_LOG_OTHER;
    /* "query:" writes queries only, "reply:" replies only. */
    reply = k[0] == 'r';
    if (k[0] != 'i' && out->reply != reply)
        return QUERY_LOG_ERROR;
    out->view.ptr = out->qname.ptr;
    out->view.len = 0;
    return QUERY_LOG_QUERY;
}

/* "IDENT[PID:TID] " (unbound's file) or "[PID:TID] " (its syslog message): after it, or NULL. */
static const char *unbound_ids_end(const char *p, const char *end, bool ident)
{
    const char *s = p, *q;

    if (ident) {
        while (p < end && IS_GRAPH(*p) && *p != '[' && *p != ']' && *p != ':' && p - s <= TAG_MAX)
            p++;
        if (p == s || p - s > TAG_MAX)
            return NULL;
    }
    if (p >= end || *p != '[')
        return NULL;
    q = digits_end(p + 1, end, 10);
    if (q == NULL || q >= end || *q != ':')
        return NULL;
    /* The thread: decimal ("%d") since 1.25, hex ("%x") before. */
    s = p = q + 1;
    while (p < end && IS_HEX(*p) && p - s < 16)
        p++;
    if (p == s || end - p < 2 || p[0] != ']' || p[1] != ' ')
        return NULL;
    return p + 2;
}

/*
 * dnsmasq's message: "[UDP |TCP ]ID ADDR/PORT query[TYPE] NAME from ADDR"
 * (log-queries=extra) or "query[TYPE] NAME from ADDR".  TYPE is a name
 * ("MX", "NSAP_PTR") or "type=65".  A message that does not reach
 * "query[" is OTHER; one that does and breaks after it is ERROR.
 */
static enum query_log_result dnsmasq_message(const char *p, const char *end,
                                             struct query_log_entry *out)
{
    static const char in_class[] = "IN";
    const char *q, *t;

    if (end - p >= 4 && (memcmp(p, "UDP ", 4) == 0 || memcmp(p, "TCP ", 4) == 0)) {
        p += 4;
        if (p >= end || !IS_DIGIT(*p))
            return QUERY_LOG_OTHER;
    }
    if (p < end && IS_DIGIT(*p)) {
        q = digits_end(p, end, 10);
        if (q == NULL || q >= end || *q != ' ')
            return QUERY_LOG_OTHER;
        p = q + 1;
        q = plain_address_end(p, end);
        if (q != NULL && q < end && *q == '/') {
            q = digits_end(q + 1, end, 5);
            if (q == NULL || q >= end || *q != ' ')
                return QUERY_LOG_OTHER;
            p = q + 1;
        }
    }
    if (end - p < 6 || memcmp(p, "query[", 6) != 0)
        return QUERY_LOG_OTHER;
    t = p += 6;
    if (end - p > 5 && memcmp(p, "type=", 5) == 0) {
        p = digits_end(p + 5, end, 5);
        if (p == NULL)
            return QUERY_LOG_ERROR;
    } else {
        while (p < end && (IS_UPPER(*p) || IS_DIGIT(*p) || *p == '_') && p - t <= WORD_MAX)
            p++;
    }
    if (p == t || p - t > WORD_MAX || end - p < 2 || p[0] != ']' || p[1] != ' ')
        return QUERY_LOG_ERROR;
    out->qtype.ptr = t;
    out->qtype.len = (size_t)(p - t);
    p += 2;
    q = name_end(p, end);
    if (q == NULL || end - q < 6 || memcmp(q, " from ", 6) != 0)
        return QUERY_LOG_ERROR;
    out->qname.ptr = p;
    out->qname.len = (size_t)(q - p);
    p = q + 6;
    q = plain_address_end(p, end);
    if (q != end)
        return QUERY_LOG_ERROR;
    out->client.ptr = p;
    out->client.len = (size_t)(q - p);
    out->qclass.ptr = in_class;
    out->qclass.len = 2;
    out->view.ptr = out->qname.ptr;
    out->view.len = 0;
    return QUERY_LOG_QUERY;
}

/* The message of an unbound or dnsmasq line at p (its header read): QUERY, OTHER or ERROR. */
static enum query_log_result resolver_message(const char *p, const char *end,
                                              struct query_log_entry *out)
{
    const char *q = unix_time_prefix(p, end, out);

    if (q != p) {
        /* unbound logging to stderr, its lines in syslog: its own time is the time. */
        memset(&out->time, 0, sizeof(out->time));
        q = unbound_ids_end(q, end, true);
        return q != NULL ? unbound_message(q, end, out) : QUERY_LOG_OTHER;
    }
    q = unbound_ids_end(p, end, true);
    if (q == NULL)
        q = unbound_ids_end(p, end, false);
    if (q != NULL)
        return unbound_message(q, end, out);
    return dnsmasq_message(p, end, out);
}

/* "[HOST ]TAG[[PID]]: " at p, as in RFC 3164: after it, or NULL. */
static const char *syslog_tag_end(const char *p, const char *end)
{
    for (int word = 0; word < 2; word++) {
        const char *w = memchr(p, ' ', (size_t)(end - p)), *s = p;

        if (w == NULL)
            return NULL;
        while (p < w && IS_GRAPH(*p) && *p != '[' && *p != ']' && *p != ':' && p - s <= TAG_MAX)
            p++;
        if (p > s && p - s <= TAG_MAX) {
            if (p < w && *p == '[') {
                p = digits_end(p + 1, w, 10);
                if (p != NULL && p < w && *p == ']')
                    p++;
                else
                    p = w;
            }
            if (p + 1 == w && *p == ':')
                return w + 1;
        }
        p = w + 1;
    }
    return NULL;
}

/* The message at p, or after a syslog host and tag there; out holds the time alone. */
static enum query_log_result read_message(const char *p, const char *end,
                                          struct query_log_entry *out)
{
    struct query_log_entry timed = *out; /* a second reading starts from the time alone */
    enum query_log_result r = resolver_message(p, end, out);
    const char *q;

    if (r == QUERY_LOG_OTHER && (q = syslog_tag_end(p, end)) != NULL) {
        *out = timed;
        r = resolver_message(q, end, out);
    }
    return r;
}

/*
 * A line without BIND's marker: unbound's or dnsmasq's, or another kind.
 * The time first ("[UNIXTIME] " or what log_line knows), then the message
 * right there (unbound's file, RFC 5424) or after a syslog host and tag.
 * A time that began but is broken is passed over word by word (it holds
 * at most three spaces, "Nov  4 22:41:21 "), so that the query it stamps
 * is seen, and counted as an error.
 */
static enum query_log_result resolver_line(const char *line, const char *end,
                                           struct query_log_entry *out)
{
    static const struct query_log_entry zero;
    const char *p = unix_time_prefix(line, end, out);
    bool bad_time = false;
    enum query_log_result r;

    if (p == line)
        p = log_line_time_prefix(line, end, &out->time, &bad_time);
    r = read_message(p, end, out);
    for (int word = 0; bad_time && r == QUERY_LOG_OTHER && word < 4; word++) {
        p = memchr(p, ' ', (size_t)(end - p));
        if (p == NULL)
            break;
        p++;
        r = read_message(p, end, out);
    }
    if (r == QUERY_LOG_QUERY && bad_time)
        r = QUERY_LOG_ERROR;
    if (r != QUERY_LOG_QUERY) {
        bool unix_time = out->unix_time && r == QUERY_LOG_OTHER;
        int64_t unix_seconds = out->unix_seconds;

        *out = zero;
        /* unbound's other lines in its own file ("[T] unbound[P:0] notice: ...") keep their
         * time: a reader counting lines by time can place them. */
        out->unix_time = unix_time;
        out->unix_seconds = unix_time ? unix_seconds : 0;
    }
    return r;
}

/* ------------------------------------------------------------- the line */

/*
 * The first ": query:" in [p, end): memchr for each ':' (a line has a few)
 * and a fixed-size compare, cheaper than memmem on lines this short.
 */
static const char *find_marker(const char *p, const char *end)
{
    while (end - p >= MARKER_LEN) {
        p = memchr(p, ':', (size_t)(end - p) - (MARKER_LEN - 1));
        if (p == NULL)
            return NULL;
        if (memcmp(p + 1, " query:", MARKER_LEN - 1) == 0)
            return p;
        p++;
    }
    return NULL;
}

enum query_log_result query_log_parse(const char *line, size_t len, struct query_log_entry *out)
{
    static const struct query_log_entry zero;
    struct query_log_entry scratch;
    const char *end, *marker, *msg, *search, *c, *p;
    bool bad_time = false, saw_client = false;

    if (out == NULL)
        out = &scratch;
    *out = zero;
    if (line == NULL || len == 0)
        return QUERY_LOG_OTHER;
    end = line + len;
    if (end[-1] == '\r')
        end--;

    marker = find_marker(line, end);
    if (marker == NULL)
        return resolver_line(line, end, out);

    msg = log_line_time_prefix(line, end, &out->time, &bad_time);
    if (marker < msg) {
        /* The first marker was inside the header (RFC 5424 structured data). */
        marker = find_marker(msg, end);
        if (marker == NULL)
            goto other;
    }

    /* The first word "client" that is followed by a valid ADDR#PORT. */
    p = NULL;
    for (search = msg;; search = c + 1) {
        if ((size_t)(marker - search) >= 7 && memcmp(search, "client ", 7) == 0)
            c = search;
        else
            c = memmem(search, (size_t)(marker - search), "client ", 7);
        if (c == NULL)
            break;
        if (c == msg || c[-1] == ' ') {
            saw_client = true;
            p = parse_client(c + 7, marker, &out->client);
            if (p != NULL)
                break;
        }
    }
    if (p == NULL) {
        if (saw_client)
            goto error;
        goto other;
    }
    if (bad_time || !parse_between(p, marker, &out->view) ||
        !parse_query(marker + MARKER_LEN, end, out))
        goto error;
    return QUERY_LOG_QUERY;

other:
    *out = zero;
    return QUERY_LOG_OTHER;
error:
    *out = zero;
    return QUERY_LOG_ERROR;
}
