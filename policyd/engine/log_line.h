/*
 * log_line: the header of one syslog or journald line, read as a pure
 * function over a buffer (no I/O, no allocation): the time as written, the
 * host, the program tag, the pid and where the message starts.  Shared by
 * relaywatch feed (query_log) and relaywatch analyze, so both read the same
 * formats the same way.  Unit-tested and fuzzed.
 *
 * Formats: RFC 3164 "Oct 12 05:30:01 host prog[pid]: msg" (day space- or
 * zero-padded, optional fraction; also journalctl -o short/short-precise and
 * Postfix's own maillog_file, which writes "%b %d %H:%M:%S host prog[pid]: "),
 * RFC 3339 "2023-10-12T05:30:01[.frac][Z|+02:00|+0200] host prog[pid]: msg"
 * (rsyslog's file format, journalctl -o short-iso/short-iso-precise), either
 * optionally after "<PRI>", and RFC 5424 "<PRI>1 TIME HOST APP PROCID MSGID
 * SD MSG".  The host is optional: a first word that reads as "TAG[PID]:" or
 * "TAG:" is the tag.  BIND's print-time "24-Nov-2026 22:41:21.962" is read as
 * a time too (query_log needs it).
 */
#ifndef RELAYWATCH_LOG_LINE_H
#define RELAYWATCH_LOG_LINE_H

#include <stdbool.h>
#include <stddef.h>

/* When the line says it happened, as written: the caller turns it into Unix time. */
struct log_time {
    bool present;    /* false: no time on the line (print-time off, no syslog header) */
    bool has_year;   /* RFC 3164 headers carry none */
    bool has_offset; /* RFC 3339 carries a UTC offset ("Z" is 0); BIND's own is local time */
    int year, month, day, hour, minute; /* month 1..12; year 0 without one */
    double second;                      /* with its fraction */
    int offset_minutes;                 /* east of UTC */
};

/* Bytes of the caller's line; never NULL once set, len may be 0. */
struct log_slice {
    const char *ptr;
    size_t len;
};

struct log_line {
    struct log_time time;
    struct log_slice host;    /* len 0: none on the line */
    struct log_slice tag;     /* the program: "postfix/smtpd", "named"; len 0: none */
    long pid;                 /* -1: none */
    struct log_slice message; /* after "TAG[PID]: " (or after the time and host if untagged) */
};

enum log_line_result {
    LOG_LINE_TAGGED,   /* time and tag read: every field above filled */
    LOG_LINE_UNTAGGED, /* time read, no "TAG:" after it (syslogd's "-- MARK --"): message is
                        * what follows the time and host */
    LOG_LINE_UNPARSED  /* no known time at the start, or a broken one: *out all zero */
};

/* Read one line (without its newline; a trailing CR is allowed and not part of the message). */
enum log_line_result log_line_parse(const char *line, size_t len, struct log_line *out);

/*
 * The time prefix alone, for readers that skip host and tag themselves
 * (query_log): reads a known time shape at p into *t (t->present) and
 * returns where the rest starts, after the time's space (for RFC 5424 after
 * its whole header); p itself if no shape is known.  *bad: a time began but
 * is broken (25:00, 31-Apr, "nov").
 */
const char *log_line_time_prefix(const char *p, const char *end, struct log_time *t, bool *bad);

#endif
