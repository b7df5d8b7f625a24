/*
 * query_log: one line of a resolver's query log, read as a pure function
 * over a buffer (no I/O, no allocation).  Unit-tested and fuzzed.
 *
 *  - BIND 9, the `queries` category as a file channel writes it (with or
 *    without print-time, print-category, print-severity; with or without
 *    the client object's @0x...; with a view; any flags) or as syslog
 *    delivers it (RFC 3164 or RFC 5424 header, any facility).
 *  - unbound, `log-queries: yes` ("ADDR NAME. TYPE CLASS") and
 *    `log-replies: yes` ("ADDR NAME. TYPE CLASS RCODE SECS CACHED SIZE
 *    [on PROTO ADDR PORT]", entry.reply true), tagged "info:" or, with
 *    `log-tag-queryreply: yes`, "query:" / "reply:": in its own log file
 *    ("[UNIXTIME] unbound[PID:TID] info: ...", or after log-time-ascii's
 *    "Nov 24 22:41:21 " or log-time-iso's RFC 3339 time) or through syslog
 *    ("... unbound: [PID:TID] info: ..."; any log-identity).
 *  - dnsmasq, `log-queries` ("query[MX] NAME from ADDR") and
 *    `log-queries=extra` ("[UDP |TCP ]ID ADDR/PORT query[MX] NAME from
 *    ADDR"), through syslog, its log-facility file or stderr.  Only query
 *    lines count: forwarded, reply, cached, config, auth, dnssec-query and
 *    every other dnsmasq line is QUERY_LOG_OTHER.
 *
 * The fields are the same whatever wrote the line, so that counts compare:
 * unbound's final dot is not part of qname (the root stays "."); dnsmasq
 * logs no class, qclass is then a static "IN" (the only slice that may
 * point outside the line).  Types are as the server writes them: BIND and
 * unbound "TYPE65", dnsmasq "type=65" (kept as written: a slice cannot hold
 * text the line lacks; a caller that wants one spelling maps "type=N" to
 * "TYPEN") and dnsmasq's "NSAP_PTR" for BIND's "NSAP-PTR".
 */
#ifndef RELAYWATCH_QUERY_LOG_H
#define RELAYWATCH_QUERY_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log_line.h"

struct query_log_slice {
    const char *ptr; /* into the line */
    size_t len;
};

struct query_log_entry {
    struct log_time time;          /* as written (see log_line.h) */
    struct query_log_slice client; /* address text, IPv4 or IPv6, without #port */
    struct query_log_slice qname;  /* as logged (BIND prints it as asked, case kept) */
    struct query_log_slice qclass; /* "IN" */
    struct query_log_slice qtype;  /* "MX", "A", "PTR", "TYPE65534", ... */
    struct query_log_slice view;   /* empty without "view NAME:" (BIND only) */
    /*
     * unbound's own log file writes "[1700000000]", a Unix time: then
     * unix_time is true, unix_seconds holds it and time.present is false
     * (time is all zero).  Otherwise unix_time is false and unix_seconds 0.
     * Set for QUERY_LOG_OTHER too when unbound's other lines carry it (the
     * only field set then).
     */
    bool unix_time;
    int64_t unix_seconds;
    /*
     * true: an unbound log-replies line (the answer to a query that
     * log-queries, when on, logged as well); false for every query line.
     * A caller that counts queries skips replies when both are logged.
     */
    bool reply;
};

enum query_log_result {
    QUERY_LOG_QUERY, /* a query line (or an unbound reply line, out->reply): out is filled */
    QUERY_LOG_OTHER, /* a line of another kind, well formed (another category, a syslog line
                      * that is no query log, unbound's other messages, dnsmasq's other
                      * lines): skipped, not an error */
    QUERY_LOG_ERROR  /* looks like a query line but cannot be read: counted as an error */
};

/* Read one line (without its newline; a trailing CR is allowed). */
enum query_log_result query_log_parse(const char *line, size_t len, struct query_log_entry *out);

#endif
