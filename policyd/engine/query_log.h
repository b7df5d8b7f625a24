/*
 * query_log: one line of a BIND 9 query log, read as a pure function over
 * a buffer (no I/O, no allocation): the `queries` category as a file
 * channel writes it (with or without print-time, print-category,
 * print-severity; with or without the client object's @0x...; with a
 * view; any flags) or as syslog delivers it (RFC 3164 or RFC 5424 header,
 * any facility).  Unit-tested and fuzzed.
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
    struct query_log_slice view;   /* empty without "view NAME:" */
};

enum query_log_result {
    QUERY_LOG_QUERY, /* a query line: out is filled */
    QUERY_LOG_OTHER, /* a line of another kind, well formed (another category, a syslog line
                      * that is not BIND's query log): skipped, not an error */
    QUERY_LOG_ERROR  /* looks like a query line but cannot be read: counted as an error */
};

/* Read one line (without its newline; a trailing CR is allowed). */
enum query_log_result query_log_parse(const char *line, size_t len, struct query_log_entry *out);

#endif
