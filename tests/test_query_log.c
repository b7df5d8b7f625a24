/*
 * Unit tests of the query-log line parser: every form BIND's `queries`
 * category takes (file channel with or without print-time, -category,
 * -severity; syslog RFC 3164 and RFC 5424), the lines it must skip and the
 * lines it must count as errors.  Many lines are copied from a real BIND
 * 9.18 (file and syslog channels) and from util-linux logger (RFC 5424).
 *
 * Optional argument: the path of tests/data/query_log_samples.txt, whose
 * lines are checked against the expectation written above each of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "query_log.h"
#include "sample_lines.h"

static const char *samples_path;

/* Times as the line gives them: BIND's own, syslog without a year, ISO 8601 with and without an offset. */
#define NO_TIME {false, false, false, 0, 0, 0, 0, 0, 0.0, 0}
#define BIND_T(y, mo, d, h, mi, s) {true, true, false, y, mo, d, h, mi, s, 0}
#define SYSLOG_T(mo, d, h, mi, s) {true, false, false, 0, mo, d, h, mi, s, 0}
#define ISO_T(y, mo, d, h, mi, s, off) {true, true, true, y, mo, d, h, mi, s, off}
/* The rest of a case that is not a query. */
#define NOT_READ NULL, NULL, NULL, NULL, NULL, NO_TIME

struct query_case {
    const char *line;
    enum query_log_result result;
    const char *client, *qname, *qclass, *qtype, *view; /* QUERY only; view NULL: none */
    struct log_time time;
};

/* The same query with the prefixes BIND and the syslog daemons put before "client". */
#define Q_MX "client @0x7f3787b5d098 127.0.0.1#17814 (dom0001.test): query: dom0001.test IN MX +E(0)D (127.0.0.1)"
#define Q_A "client @0x7f3787b5d098 10.0.0.5#5353 (a.test): query: a.test IN MX + (10.0.0.1)"

static const struct query_case queries[] = {
    /* BIND 9.18 file channel, print-time yes (as tests/dns_servers.py configures it). */
    {"24-Nov-2026 22:41:21.962 " Q_MX, QUERY_LOG_QUERY, "127.0.0.1", "dom0001.test", "IN", "MX",
     NULL, BIND_T(2026, 11, 24, 22, 41, 21.962)},
    /* print-category and print-severity. */
    {"24-Nov-2026 22:41:21.962 queries: info: client @0x7f3787b5d098 10.0.0.5#5353 (Example.COM): "
     "query: Example.COM IN A + (10.0.0.1)",
     QUERY_LOG_QUERY, "10.0.0.5", "Example.COM", "IN", "A", NULL,
     BIND_T(2026, 11, 24, 22, 41, 21.962)},
    /* print-category alone; print-severity alone without print-time (real 9.18). */
    {"01-Jan-2027 00:00:00.000 queries: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX",
     NULL, BIND_T(2027, 1, 1, 0, 0, 0.0)},
    {"info: client @0x7f498aac2c98 ::1#53202 (a.test): view external: query: a.test IN MX +E(0)K (::1)",
     QUERY_LOG_QUERY, "::1", "a.test", "IN", "MX", "external", NO_TIME},
    /* No print-time: the line starts with "client". */
    {Q_MX, QUERY_LOG_QUERY, "127.0.0.1", "dom0001.test", "IN", "MX", NULL, NO_TIME},
    /* BIND 9.9/9.11: no client object; older still: no (name), no server address. */
    {"client 192.0.2.1#53 (x.test): query: x.test IN PTR -E (192.0.2.53)", QUERY_LOG_QUERY,
     "192.0.2.1", "x.test", "IN", "PTR", NULL, NO_TIME},
    {"client 10.1.2.3#1024: query: a.example IN MX +", QUERY_LOG_QUERY, "10.1.2.3", "a.example", "IN",
     "MX", NULL, NO_TIME},
    /* Views; a view name may hold spaces; a TSIG-signed query adds /key NAME (real 9.18). */
    {"client @0x7f3787b5d098 10.0.0.5#5353 (a.test): view internal: query: a.test IN MX +E(0)K (10.0.0.1)",
     QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", "internal", NO_TIME},
    {"25-Nov-2026 03:16:47.789 client @0x7f498aac1098 127.0.0.1#58710/key tkey (a.test): view internal "
     "view: query: a.test IN MX +SE(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "a.test", "IN", "MX", "internal view",
     BIND_T(2026, 11, 25, 3, 16, 47.789)},
    {"client 10.0.0.5#5353/key k.example: view v: query: a.test IN A +S", QUERY_LOG_QUERY,
     "10.0.0.5", "a.test", "IN", "A", "v", NO_TIME},
    {"client 10.0.0.5#5353/key k.example: query: a.test IN A +S", QUERY_LOG_QUERY, "10.0.0.5",
     "a.test", "IN", "A", NULL, NO_TIME},
    /* IPv6 clients; a scope is dropped from the client (and allowed on the server). */
    {"client @0x7f3787b5d098 2001:db8::5#41234 (a.test): query: a.test IN AAAA +E(0)K (2001:db8::53)",
     QUERY_LOG_QUERY, "2001:db8::5", "a.test", "IN", "AAAA", NULL, NO_TIME},
    {"client @0x7f3787b5d098 fe80::1%eth0#53 (a.test): query: a.test IN MX +E(0)K (fe80::53%eth0)",
     QUERY_LOG_QUERY, "fe80::1", "a.test", "IN", "MX", NULL, NO_TIME},
    {"client fe80::a:b:c:d%2#5353 (a.test): query: a.test IN MX + (fe80::53%2)", QUERY_LOG_QUERY,
     "fe80::a:b:c:d", "a.test", "IN", "MX", NULL, NO_TIME},
    {"client ::ffff:192.0.2.7#1234 (a.test): query: a.test IN MX + (::ffff:192.0.2.53)",
     QUERY_LOG_QUERY, "::ffff:192.0.2.7", "a.test", "IN", "MX", NULL, NO_TIME},
    {"client 2001:DB8:0:0:0:0:0:1#1 (a.test): query: a.test IN MX +", QUERY_LOG_QUERY,
     "2001:DB8:0:0:0:0:0:1", "a.test", "IN", "MX", NULL, NO_TIME},
    /* Types and classes as BIND names them (real 9.18 lines). */
    {"25-Nov-2026 03:16:37.761 client @0x7f66e3e6c098 127.0.0.1#39032 (dom0001.test): query: "
     "dom0001.test IN TYPE65534 +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "dom0001.test", "IN", "TYPE65534", NULL,
     BIND_T(2026, 11, 25, 3, 16, 37.761)},
    {"25-Nov-2026 03:16:37.781 client @0x7f66e010e898 127.0.0.1#44035 (dom0001.test): query: "
     "dom0001.test IN ANY +E(0)TDK (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "dom0001.test", "IN", "ANY", NULL,
     BIND_T(2026, 11, 25, 3, 16, 37.781)},
    {"25-Nov-2026 03:16:37.801 client @0x7f66e3e6c098 127.0.0.1#34898 (version.bind): query: "
     "version.bind CH TXT +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "version.bind", "CH", "TXT", NULL,
     BIND_T(2026, 11, 25, 3, 16, 37.801)},
    {"client 127.0.0.1#51248 (dom0001.test): query: dom0001.test IN NSAP-PTR +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "dom0001.test", "IN", "NSAP-PTR", NULL, NO_TIME},
    {"client 127.0.0.1#1 (a.test): query: a.test CLASS254 TYPE1 +", QUERY_LOG_QUERY, "127.0.0.1",
     "a.test", "CLASS254", "TYPE1", NULL, NO_TIME},
    /* Names: the root, escapes (a space is \032, a parenthesis \)), case kept. */
    {"client @0x7f66e3e6c098 127.0.0.1#60125 (.): query: . IN NS +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", ".", "IN", "NS", NULL, NO_TIME},
    {"client 127.0.0.1#47966 (weird\\032name.test): query: weird\\032name.test IN A +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "weird\\032name.test", "IN", "A", NULL, NO_TIME},
    {"client 127.0.0.1#47966 (a\\).test): query: a\\).test IN A + (127.0.0.1)", QUERY_LOG_QUERY,
     "127.0.0.1", "a\\).test", "IN", "A", NULL, NO_TIME},
    /* EDNS client-subnet (real 9.18 with dig +subnet). */
    {"25-Nov-2026 03:16:37.905 client @0x7f66e3e6c098 127.0.0.1#53093 (dom0001.test): query: "
     "dom0001.test IN MX +E(0)K (127.0.0.1) [ECS 192.0.2.0/24/0]",
     QUERY_LOG_QUERY, "127.0.0.1", "dom0001.test", "IN", "MX", NULL,
     BIND_T(2026, 11, 25, 3, 16, 37.905)},
    /* print-time iso8601 (local, no offset) and iso8601-utc (real 9.18). */
    {"2026-11-25T03:16:47.757 client @0x7f498aac1098 127.0.0.1#59012 (a.test): view external: query: "
     "a.test IN MX +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "a.test", "IN", "MX", "external",
     BIND_T(2026, 11, 25, 3, 16, 47.757)},
    {"2026-11-25T03:16:47.757Z queries: client @0x7f498aac1098 127.0.0.1#59012 (a.test): query: "
     "a.test IN MX +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "a.test", "IN", "MX", NULL,
     ISO_T(2026, 11, 25, 3, 16, 47.757, 0)},
    /* RFC 3164 as rsyslog and syslog-ng write files: no year. */
    {"Nov 24 22:41:21 ns1 named[1234]: client @0x7f3787b5d098 127.0.0.1#17814 (a.test): query: a.test "
     "IN MX +E(0)D (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "a.test", "IN", "MX", NULL, SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"Nov 24 22:41:21 ns1 named[1234]: queries: info: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test",
     "IN", "MX", NULL, SYSLOG_T(11, 24, 22, 41, 21.0)},
    /* On the wire: with a PRI (local1.notice = 141), a space-padded day. */
    {"<141>Nov 24 22:41:21 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX",
     NULL, SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"<141>Nov  4 22:41:21 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX",
     NULL, SYSLOG_T(11, 4, 22, 41, 21.0)},
    {"Nov 04 02:03:04 ns1 named: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     SYSLOG_T(11, 4, 2, 3, 4.0)},
    /* What named itself sends to /dev/log (real 9.18, local1.info): no host. */
    {"<142>Nov 25 03:20:25 named[1424]: queries: info: client @0x7f2c9a0d0098 127.0.0.1#51748 (a.test): "
     "query: a.test IN MX +E(0)K (127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "a.test", "IN", "MX", NULL, SYSLOG_T(11, 25, 3, 20, 25.0)},
    /* journalctl -o short-precise and -o short-iso. */
    {"Nov 24 22:41:21.962345 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN",
     "MX", NULL, SYSLOG_T(11, 24, 22, 41, 21.962345)},
    {"2026-11-24T22:41:21+0100 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN",
     "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.0, 60)},
    /* rsyslog's RFC 3339 file format (Debian's default). */
    {"2026-11-24T22:41:21.962345+01:00 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test",
     "IN", "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.962345, 60)},
    /* RFC 3339 with a space for the "T". */
    {"2026-11-24 22:41:21 " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     BIND_T(2026, 11, 24, 22, 41, 21.0)},
    /* A host called "client" is passed over. */
    {"Nov 24 22:41:21 client named[1234]: client 10.0.0.5#5353 (a.test): query: a.test IN A + (10.0.0.1)",
     QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "A", NULL, SYSLOG_T(11, 24, 22, 41, 21.0)},
    /* RFC 5424: offset, Z, negative offset, structured data, BOM, no time. */
    {"<141>1 2026-11-24T22:41:21.962+01:00 ns1 named 1234 - - " Q_A, QUERY_LOG_QUERY, "10.0.0.5",
     "a.test", "IN", "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.962, 60)},
    {"<141>1 2026-11-24T21:41:21.962Z ns1 named 1234 - - " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test",
     "IN", "MX", NULL, ISO_T(2026, 11, 24, 21, 41, 21.962, 0)},
    {"<141>1 2026-11-24T16:11:21.5-05:30 ns1 named 1234 - - " Q_A, QUERY_LOG_QUERY, "10.0.0.5",
     "a.test", "IN", "MX", NULL, ISO_T(2026, 11, 24, 16, 11, 21.5, -330)},
    {"<141>1 2026-11-24T22:41:21.962+01:00 ns1 named 1234 - [x@1 a=\"b\"] " Q_A, QUERY_LOG_QUERY,
     "10.0.0.5", "a.test", "IN", "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.962, 60)},
    {"<142>1 2026-11-25T03:20:31.034178+00:00 vm named 1424 - [timeQuality tzKnown=\"1\" "
     "isSynced=\"0\"] client @0x7f2c9a0d0098 127.0.0.1#51748 (a.test): query: a.test IN MX +E(0)K "
     "(127.0.0.1)",
     QUERY_LOG_QUERY, "127.0.0.1", "a.test", "IN", "MX", NULL,
     ISO_T(2026, 11, 25, 3, 20, 31.034178, 0)},
    /* Structured data that looks like a query is not read as one. */
    {"<141>1 2026-11-24T22:41:21Z ns1 named 1234 q [x@1 a=\"client 1.2.3.4#5 (b.test): query: b.test "
     "IN A + \\] \\\"\"][y@1] " Q_A,
     QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.0, 0)},
    {"<141>1 2026-11-24T22:41:21.962+01:00 ns1 named 1234 - - \xEF\xBB\xBF" Q_A, QUERY_LOG_QUERY,
     "10.0.0.5", "a.test", "IN", "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.962, 60)},
    {"<141>1 - ns1 named 1234 - - " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     NO_TIME},
    /* Headers that are not quite RFC 5424: the time is kept, the query still found. */
    {"<141>1 2026-11-24T22:41:21Z ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN",
     "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.0, 0)},
    {"<141>1 2026-11-24T22:41:21Z ns1 named 1234 - [x@1 a=\"b\" " Q_A, QUERY_LOG_QUERY, "10.0.0.5",
     "a.test", "IN", "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.0, 0)},
    {"<141>10 - ns1 named 1234 - - " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     NO_TIME},
    /* rsyslog's forwarding format: a PRI, then RFC 3339. */
    {"<13>2026-11-24T22:41:21.962+01:00 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test",
     "IN", "MX", NULL, ISO_T(2026, 11, 24, 22, 41, 21.962, 60)},
    /* Not a PRI (over 191, empty): an unknown prefix, no time. */
    {"<192>Nov 24 22:41:21 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX",
     NULL, NO_TIME},
    {"<>Nov 24 22:41:21 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX",
     NULL, NO_TIME},
    /* A day with no padding at all. */
    {"Nov 4 22:41:21 ns1 named[1234]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     SYSLOG_T(11, 4, 22, 41, 21.0)},
    /* Dates: leap days, a leap second, single-digit BIND day. */
    {"29-Feb-2028 23:59:60.999 " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     BIND_T(2028, 2, 29, 23, 59, 60.999)},
    {"Feb 29 00:00:00 ns1 named[1]: " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     SYSLOG_T(2, 29, 0, 0, 0.0)},
    {"4-Jul-2026 12:00:00.000 " Q_A, QUERY_LOG_QUERY, "10.0.0.5", "a.test", "IN", "MX", NULL,
     BIND_T(2026, 7, 4, 12, 0, 0.0)},

    /* Well-formed lines of other kinds: skipped. */
    {"24-Nov-2026 22:41:21.962 general: info: zone a.test/IN: loaded serial 1", QUERY_LOG_OTHER, NOT_READ},
    {"Nov 24 22:41:21 ns1 postfix/smtpd[4321]: connect from unknown[192.0.2.1]", QUERY_LOG_OTHER, NOT_READ},
    {"", QUERY_LOG_OTHER, NOT_READ},
    {"\r", QUERY_LOG_OTHER, NOT_READ},
    {"25-Nov-2026 03:16:37.925 query-errors: info: client @0x7f66e3e6c098 127.0.0.1#60125 (.): query "
     "failed (REFUSED) for ./IN/NS at query.c:5708",
     QUERY_LOG_OTHER, NOT_READ},
    {"24-Nov-2026 22:41:21.962 security: info: client @0x7f3787b5d098 10.0.0.5#5353 (a.test): query "
     "(cache) 'a.test/MX/IN' denied",
     QUERY_LOG_OTHER, NOT_READ},
    {"25-Nov-2026 03:16:38.005 security: error: client @0x7f66e3e6c098 127.0.0.1#33216: request has "
     "invalid signature: TSIG k1: tsig verify failure (BADKEY)",
     QUERY_LOG_OTHER, NOT_READ},
    /* Another program's "query:" with no client: not BIND's. */
    {"Nov 24 22:41:21 db1 postgres[99]: query: SELECT 1", QUERY_LOG_OTHER, NOT_READ},
    /* "client" glued to what precedes it is not the word. */
    {"<141>1 2026-11-24T22:41:21Z ns1 named 1234 - -" Q_A, QUERY_LOG_OTHER, NOT_READ},
    {"<141>1 2026-11-24T22:41:21Z ns1 named 1234 - [x@1 a=\"client 1.2.3.4#5 (b.test): query: b IN A +\"]",
     QUERY_LOG_OTHER, NOT_READ},

    /* Query lines that cannot be read: counted as errors. */
    {"client 10.0.0.5 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},     /* no #port */
    {"client 10.0.0.5# (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#65536 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#123456 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.256#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 010.0.0.5#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 2001:db8:::5#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 2001:db8::5::1#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 1:2:3:4:5:6:7:8:9#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 12345::1#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5%eth0#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client fe80::1%#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client mail.example#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client @0xZZ 10.0.0.5#53 (a.test): query: a.test IN A + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test IN + (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ}, /* no type */
    {"client 10.0.0.5#53 (a.test): query: a.test IN A (10.0.0.1)", QUERY_LOG_ERROR, NOT_READ}, /* no flags */
    {"client 10.0.0.5#53 (a.test): query: a.test IN A", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test IN", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: ", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query:", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query:  a.test IN A +", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test in a +", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test IN A + (10.0.0.1) extra", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test IN A + (10.0.0.1) ", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test IN A + (10.0.0.1", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test IN A + (mail.example)", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): query: a.test IN A + (10.0.0.1) [ECS ]", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test: query: a.test IN A +", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test): view : query: a.test IN A +", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53 (a.test) junk: query: a.test IN A +", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53/key : query: a.test IN A +", QUERY_LOG_ERROR, NOT_READ},
    /* Flags that are not BIND's. */
    {"client 10.0.0.5#53: query: a.test IN A *", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53: query: a.test IN A +E(", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53: query: a.test IN A +E()", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53: query: a.test IN A +e", QUERY_LOG_ERROR, NOT_READ},
    {"client 10.0.0.5#53: query: a.test IN A ++", QUERY_LOG_ERROR, NOT_READ},
    /* Timestamps begun but broken: month names are case-sensitive, values checked. */
    {"24-nov-2026 22:41:21.962 " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"24-Nov-2026 25:41:21.962 " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"24-Nov-2026 22:61:21.962 " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"31-Apr-2026 22:41:21.962 " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"29-Feb-2027 22:41:21.962 " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"24-Nov-2026 22:41:21. " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"24-Nov-2026 22:41 " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"nov 24 22:41:21 ns1 named[1234]: " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"Nov 32 22:41:21 ns1 named[1234]: " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"2026-13-24T22:41:21Z " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"2026-11-24T22:41:21+24:00 " Q_A, QUERY_LOG_ERROR, NOT_READ},
    {"<141>1 2026-11-24 ns1 named 1234 - - " Q_A, QUERY_LOG_ERROR, NOT_READ},
};

static bool slice_is(struct query_log_slice s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static void check_inside(struct query_log_slice s, const char *line, size_t len)
{
    assert_non_null(s.ptr);
    assert_true(s.ptr >= line && s.ptr + s.len <= line + len);
}

/* Checks one line against its case; returns nothing, fails the test with the line printed. */
static void check_case(const struct query_case *c, const char *line, size_t len)
{
    struct query_log_entry e;
    enum query_log_result r;

    memset(&e, 0x5A, sizeof(e)); /* whatever the caller had there */
    r = query_log_parse(line, len, &e);
    if (r != c->result)
        fail_msg("%d instead of %d for: %.*s", (int)r, (int)c->result, (int)len, line);
    if (r != QUERY_LOG_QUERY) {
        /* Nothing half-filled is left behind. */
        assert_false(e.time.present);
        assert_null(e.client.ptr);
        assert_null(e.qname.ptr);
        assert_null(e.view.ptr);
        return;
    }
    check_inside(e.client, line, len);
    check_inside(e.qname, line, len);
    check_inside(e.qclass, line, len);
    check_inside(e.qtype, line, len);
    check_inside(e.view, line, len);
    if (!slice_is(e.client, c->client) || !slice_is(e.qname, c->qname) ||
        !slice_is(e.qclass, c->qclass) || !slice_is(e.qtype, c->qtype) ||
        !slice_is(e.view, c->view ? c->view : ""))
        fail_msg("client [%.*s] qname [%.*s] class [%.*s] type [%.*s] view [%.*s] for: %s",
                 (int)e.client.len, e.client.ptr, (int)e.qname.len, e.qname.ptr,
                 (int)e.qclass.len, e.qclass.ptr, (int)e.qtype.len, e.qtype.ptr, (int)e.view.len,
                 e.view.ptr, c->line);
    if (e.time.present != c->time.present || e.time.has_year != c->time.has_year ||
        e.time.has_offset != c->time.has_offset || e.time.year != c->time.year ||
        e.time.month != c->time.month || e.time.day != c->time.day ||
        e.time.hour != c->time.hour || e.time.minute != c->time.minute ||
        e.time.second != c->time.second || e.time.offset_minutes != c->time.offset_minutes)
        fail_msg("time %d %d %d %04d-%02d-%02d %02d:%02d:%.9f %+d for: %s", e.time.present,
                 e.time.has_year, e.time.has_offset, e.time.year, e.time.month, e.time.day,
                 e.time.hour, e.time.minute, e.time.second, e.time.offset_minutes, c->line);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        const struct query_case *c = &queries[i];
        size_t len = strlen(c->line);
        char *copy = malloc(len + 1);

        /* An exact-size copy: a read past the end is the sanitizer's to see. */
        assert_non_null(copy);
        memcpy(copy, c->line, len);
        check_case(c, copy, len);
        /* The same with a trailing CR (a file written on Windows, or by a relay). */
        if (len == 0 || copy[len - 1] != '\r') {
            char *cr = malloc(len + 1);

            assert_non_null(cr);
            memcpy(cr, c->line, len);
            cr[len] = '\r';
            check_case(c, cr, len + 1);
            free(cr);
        }
        free(copy);
    }
}

/* Month names as BIND and syslog write them (C locale), and nothing else. */
static void test_months(void **state)
{
    static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *const wrong[] = {"JAN", "jan", "Jum", "Mai", "Okt", "Dez", "Sept", "Ju",
                                        "Fev", "Mrz", "Apl", "Sap", "Nob", "Dic", "Xyz", "Avr"};
    char line[256];
    struct query_log_entry e;

    (void)state;
    for (int m = 1; m <= 12; m++) {
        snprintf(line, sizeof(line), "05-%s-2026 01:02:03.004 %s", names[m - 1], Q_A);
        assert_int_equal(query_log_parse(line, strlen(line), &e), QUERY_LOG_QUERY);
        assert_int_equal(e.time.month, m);
        assert_int_equal(e.time.day, 5);
        snprintf(line, sizeof(line), "%s 15 01:02:03 ns1 named[1]: %s", names[m - 1], Q_A);
        assert_int_equal(query_log_parse(line, strlen(line), &e), QUERY_LOG_QUERY);
        assert_int_equal(e.time.month, m);
        assert_int_equal(e.time.day, 15);
    }
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        snprintf(line, sizeof(line), "05-%s-2026 01:02:03.004 %s", wrong[i], Q_A);
        if (query_log_parse(line, strlen(line), &e) == QUERY_LOG_QUERY && e.time.present)
            fail_msg("month %s taken", wrong[i]);
        snprintf(line, sizeof(line), "%s 15 01:02:03 ns1 named[1]: %s", wrong[i], Q_A);
        if (query_log_parse(line, strlen(line), &e) == QUERY_LOG_QUERY && e.time.present)
            fail_msg("month %s taken", wrong[i]);
    }
}

/* Every flag combination BIND writes: + or - (RD), S, E or E(n), T, D, C, V, K. */
static void test_flags(void **state)
{
    static const char *const good[] = {"+", "-", "+E(0)K", "+SE(0)DC", "-EDC", "+T", "+ET",
                                       "+E(0)TDCK", "-E(0)", "+V", "+E(0)V", "-SE(0)TDCVK"};
    static const char *const bad[] = {"*", "E", "+e", "+E(", "+E()", "+E(0", "+E(x)", "++",
                                      "+-", "+E(0)k", "+(0)", "+ E"};
    char line[256];
    struct query_log_entry e;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(line, sizeof(line), "client 10.0.0.5#53 (a.test): query: a.test IN MX %s (10.0.0.1)",
                 good[i]);
        if (query_log_parse(line, strlen(line), &e) != QUERY_LOG_QUERY)
            fail_msg("flags %s refused", good[i]);
        assert_true(slice_is(e.qtype, "MX"));
        snprintf(line, sizeof(line), "client 10.0.0.5#53: query: a.test IN MX %s", good[i]);
        if (query_log_parse(line, strlen(line), &e) != QUERY_LOG_QUERY)
            fail_msg("flags %s refused at the end", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), "client 10.0.0.5#53 (a.test): query: a.test IN MX %s (10.0.0.1)",
                 bad[i]);
        if (query_log_parse(line, strlen(line), &e) != QUERY_LOG_ERROR)
            fail_msg("flags %s accepted", bad[i]);
    }
}

/* Addresses: the client is exactly what inet_pton takes; the scope is not part of it. */
static void test_addresses(void **state)
{
    static const char *const good[] = {
        "0.0.0.0", "255.255.255.255", "192.0.2.1", "::", "::1", "1::", "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "fe80::1", "FE80::ABCD", "::ffff:1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "2001:db8:0:1::"};
    static const char *const bad[] = {
        "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1..2.3", ":::", ":1::", "1:", "1:::2",
        "1:2:3:4:5:6:7:8::", "1:2:3:4:5:6:7:8:9", "12345::", "1::2::3", "::1.2.3", "g::1",
        "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.04", "", "1.2.3.4:53"};
    char line[256];
    struct query_log_entry e;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(line, sizeof(line), "client %s#53: query: a.test IN A + (%s)", good[i], good[i]);
        if (query_log_parse(line, strlen(line), &e) != QUERY_LOG_QUERY || !slice_is(e.client, good[i]))
            fail_msg("address %s not read", good[i]);
        if (strchr(good[i], ':') != NULL) {
            snprintf(line, sizeof(line), "client %s%%lo#53: query: a.test IN A +", good[i]);
            if (query_log_parse(line, strlen(line), &e) != QUERY_LOG_QUERY ||
                !slice_is(e.client, good[i]))
                fail_msg("address %s with a scope not read", good[i]);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), "client %s#53: query: a.test IN A +", bad[i]);
        if (query_log_parse(line, strlen(line), &e) != QUERY_LOG_ERROR)
            fail_msg("client address %s accepted", bad[i]);
        snprintf(line, sizeof(line), "client 10.0.0.5#53: query: a.test IN A + (%s)", bad[i]);
        if (query_log_parse(line, strlen(line), &e) != QUERY_LOG_ERROR)
            fail_msg("server address %s accepted", bad[i]);
    }
}

/* NUL bytes anywhere: never a query, never a read past the line. */
static void test_nul_bytes(void **state)
{
    static const char base[] = "24-Nov-2026 22:41:21.962 " Q_MX;
    const size_t len = sizeof(base) - 1;
    struct query_log_entry e;

    (void)state;
    for (size_t i = 0; i < len; i++) {
        char *line = malloc(len);
        enum query_log_result r;

        assert_non_null(line);
        memcpy(line, base, len);
        line[i] = '\0';
        r = query_log_parse(line, len, &e);
        /*
         * In the time: a broken time (ERROR); where the date's shape is not
         * taken, an unknown prefix (QUERY without time); the space before
         * "client": no word "client" (OTHER).  From "client" on: never a query.
         */
        if (i < strlen("24-Nov-2026 22:41:21.962 ")) {
            assert_true(r == QUERY_LOG_ERROR || r == QUERY_LOG_OTHER ||
                        (r == QUERY_LOG_QUERY && !e.time.present));
        } else if (r != QUERY_LOG_ERROR && r != QUERY_LOG_OTHER) {
            fail_msg("NUL at %zu: %d", i, (int)r);
        }
        free(line);
    }
    /* A NUL inside the marker: no marker, another kind of line. */
    {
        static const char l[] = "client 10.0.0.5#53 (a.test): qu\0ery: a.test IN A +";

        assert_int_equal(query_log_parse(l, sizeof(l) - 1, &e), QUERY_LOG_OTHER);
    }
    /* The length is what counts, not a NUL terminator. */
    assert_int_equal(query_log_parse(base, len - strlen(" (127.0.0.1)"), &e), QUERY_LOG_QUERY);
    assert_true(slice_is(e.qtype, "MX"));
    assert_int_equal(query_log_parse(base, len - 1, &e), QUERY_LOG_ERROR);
}

/* No output wanted; no line at all. */
static void test_edges(void **state)
{
    struct query_log_entry e;

    (void)state;
    assert_int_equal(query_log_parse(Q_A, strlen(Q_A), NULL), QUERY_LOG_QUERY);
    assert_int_equal(query_log_parse(NULL, 0, &e), QUERY_LOG_OTHER);
    /* The view slice is empty but never NULL. */
    assert_int_equal(query_log_parse(Q_A, strlen(Q_A), &e), QUERY_LOG_QUERY);
    assert_non_null(e.view.ptr);
    assert_int_equal(e.view.len, 0);
}

/* Long and hostile lines: bounded names, linear time. */
static void test_long_lines(void **state)
{
    const size_t n = 1u << 20;
    char *line = malloc(n);
    struct query_log_entry e;
    size_t at;

    (void)state;
    assert_non_null(line);

    /* A qname of 1024 characters is read; one more is refused. */
    at = (size_t)snprintf(line, n, "client 10.0.0.5#53: query: ");
    memset(line + at, 'a', 1024);
    memcpy(line + at + 1024, " IN A +", 7);
    assert_int_equal(query_log_parse(line, at + 1024 + 7, &e), QUERY_LOG_QUERY);
    assert_int_equal(e.qname.len, 1024);
    memset(line + at, 'a', 1025);
    memcpy(line + at + 1025, " IN A +", 7);
    assert_int_equal(query_log_parse(line, at + 1025 + 7, &e), QUERY_LOG_ERROR);

    /* A megabyte of "client " words before the marker: each is tried once. */
    for (at = 0; at + 7 < n - 64; at += 7)
        memcpy(line + at, "client ", 7);
    at += (size_t)snprintf(line + at, 64, "1.2.3.4#5: query: a IN A +");
    assert_int_equal(query_log_parse(line, at, &e), QUERY_LOG_QUERY);
    assert_true(slice_is(e.client, "1.2.3.4"));
    for (at = 0; at + 16 < n - 64; at += 16)
        memcpy(line + at, "client 1.2.3.4# ", 16);
    at += (size_t)snprintf(line + at, 64, ": query: a IN A +");
    assert_int_equal(query_log_parse(line, at, &e), QUERY_LOG_ERROR);

    /* A megabyte of view name. */
    at = (size_t)snprintf(line, n, "client 10.0.0.5#53: view ");
    memset(line + at, 'v', n - 64 - at);
    at = n - 64;
    at += (size_t)snprintf(line + at, 64, ": query: a IN A +");
    assert_int_equal(query_log_parse(line, at, &e), QUERY_LOG_QUERY);
    assert_int_equal(e.view.len, n - 64 - strlen("client 10.0.0.5#53: view "));
    free(line);
}

/* ------------------------------------------------------ unbound, dnsmasq */

struct resolver_case {
    const char *line;
    enum query_log_result result;
    bool reply;
    const char *client, *qname, *qclass, *qtype;
    bool unix_time;
    int64_t unix_seconds;
    struct log_time time;
};

#define R_NOT_READ false, NULL, NULL, NULL, NULL, false, 0, NO_TIME
#define UB "[1700000000] unbound[1234:0] "

static const struct resolver_case resolvers[] = {
    /* unbound's own file: the Unix time; queries, replies, both tags. */
    {UB "info: 192.0.2.25 example.com. MX IN", QUERY_LOG_QUERY, false, "192.0.2.25", "example.com",
     "IN", "MX", true, 1700000000, NO_TIME},
    {UB "info: 192.0.2.25 example.com. MX IN NOERROR 0.000123 0 55", QUERY_LOG_QUERY, true,
     "192.0.2.25", "example.com", "IN", "MX", true, 1700000000, NO_TIME},
    {UB "query: 192.0.2.25 Example.COM. AAAA IN", QUERY_LOG_QUERY, false, "192.0.2.25",
     "Example.COM", "IN", "AAAA", true, 1700000000, NO_TIME},
    {UB "reply: ::ffff:192.0.2.25 a.test. TYPE65534 CLASS254 SERVFAIL 12.000001 0 12 on dot ::1 853",
     QUERY_LOG_QUERY, true, "::ffff:192.0.2.25", "a.test", "CLASS254", "TYPE65534", true,
     1700000000, NO_TIME},
    {UB "info: 192.0.2.25 . NS IN", QUERY_LOG_QUERY, false, "192.0.2.25", ".", "IN", "NS", true,
     1700000000, NO_TIME},
    {UB "info: 192.0.2.25 x.test. NSAP-PTR IN", QUERY_LOG_QUERY, false, "192.0.2.25", "x.test", "IN",
     "NSAP-PTR", true, 1700000000, NO_TIME},
    {"[0] unbound[1:0] info: 10.0.0.1 a. A IN", QUERY_LOG_QUERY, false, "10.0.0.1", "a", "IN", "A",
     true, 0, NO_TIME},
    {"[999999999999] my-resolver[4294967:abc] info: 10.0.0.1 a. A IN", QUERY_LOG_QUERY, false,
     "10.0.0.1", "a", "IN", "A", true, 999999999999LL, NO_TIME},
    /* log-time-ascii, log-time-iso; syslog (any tag), RFC 5424, stderr inside syslog. */
    {"Nov 05 23:30:33 unbound[12636:0] query: 192.168.1.5 wikipedia.org. A IN", QUERY_LOG_QUERY,
     false, "192.168.1.5", "wikipedia.org", "IN", "A", false, 0, SYSLOG_T(11, 5, 23, 30, 33.0)},
    {"2026-11-24T22:41:21.962+01:00 unbound[1234:0] info: 192.0.2.25 example.com. MX IN",
     QUERY_LOG_QUERY, false, "192.0.2.25", "example.com", "IN", "MX", false, 0,
     ISO_T(2026, 11, 24, 22, 41, 21.962, 60)},
    {"Nov 24 22:41:21 ns1 unbound: [1234:0] info: 192.0.2.25 example.com. MX IN", QUERY_LOG_QUERY,
     false, "192.0.2.25", "example.com", "IN", "MX", false, 0, SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"Nov 24 22:41:21 ns1 unbound[1234]: [1234:3] reply: 192.0.2.25 example.com. MX IN NOERROR "
     "0.000000 1 72",
     QUERY_LOG_QUERY, true, "192.0.2.25", "example.com", "IN", "MX", false, 0,
     SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"<30>1 2026-03-24T00:17:39+01:00 fw unbound 6739 - [meta sequenceId=\"530\"] [6739:1] query: "
     "192.168.1.1 epr.elastic.co. AAAA IN",
     QUERY_LOG_QUERY, false, "192.168.1.1", "epr.elastic.co", "IN", "AAAA", false, 0,
     ISO_T(2026, 3, 24, 0, 17, 39.0, 60)},
    {"2024-08-30T10:58:03.062168+02:00 h unbound[122]: [1725008283] unbound[122:0] info: 127.0.0.1 "
     "google.com. HTTPS IN",
     QUERY_LOG_QUERY, false, "127.0.0.1", "google.com", "IN", "HTTPS", true, 1725008283, NO_TIME},
    /* unbound lines that are no client query. */
    {UB "notice: init module 0: validator", QUERY_LOG_OTHER, R_NOT_READ},
    {UB "info: sending query: a.test. A IN", QUERY_LOG_OTHER, R_NOT_READ},
    {UB "info: 28RDdc mod1 rep a.test. HTTPS IN", QUERY_LOG_OTHER, R_NOT_READ},
    {UB "info: 192.0.2.25 - - - FORMERR - - -", QUERY_LOG_OTHER, R_NOT_READ},
    {UB "reply: 192.0.2.25 - - - FORMERR - - - on udp 192.0.2.53 53", QUERY_LOG_OTHER, R_NOT_READ},
    {UB "reply: 192.0.2.25 null TYPE0 CLASS0 REFUSED 0.000000 1 12", QUERY_LOG_OTHER, R_NOT_READ},
    {UB "info: 192.0.2.25 toolong&", QUERY_LOG_OTHER, R_NOT_READ},
    {UB "info: (inet_ntop_error) a.test. A IN", QUERY_LOG_OTHER, R_NOT_READ},
    {"[1700000000] unbound[1234] info: 192.0.2.25 a.test. A IN", QUERY_LOG_OTHER, R_NOT_READ},
    {"[17000x] unbound[1234:0] info: 192.0.2.25 a.test. A IN", QUERY_LOG_OTHER, R_NOT_READ},
    {"[1234567890123] unbound[1:0] info: 192.0.2.25 a.test. A IN", QUERY_LOG_OTHER, R_NOT_READ},
    /* unbound query lines that do not read. */
    {UB "query: 192.0.2.25 a.test. A", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "query: 192.0.2.25 a.test A IN", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "query: 192.0.2.256 a.test. A IN", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "query: fe80::1%eth0 a.test. A IN", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "query: 192.0.2.25 a.test. A IN NOERROR 0.000123 0 55", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "reply: 192.0.2.25 a.test. A IN", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "info: 192.0.2.25 a.test. a IN", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "info: 192.0.2.25 a.test. A IN NOERROR", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "info: 192.0.2.25 a.test. A IN NOERROR 0.00012 0 55", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "info: 192.0.2.25 a.test. A IN NOERROR 0.000123 0 55 trailing", QUERY_LOG_ERROR, R_NOT_READ},
    {UB "info: 192.0.2.25 a.test. A IN NOERROR 0.000123 0 55 on UDP 1.2.3.4 53", QUERY_LOG_ERROR,
     R_NOT_READ},
    {UB "info: 192.0.2.25 a.test. A IN NOERROR 0.000123 0 55 on udp 1.2.3.4", QUERY_LOG_ERROR,
     R_NOT_READ},
    {UB "info: 192.0.2.25 a.test. A IN ", QUERY_LOG_ERROR, R_NOT_READ},
    {"Nov 31 22:41:21 unbound[1234:0] info: 192.0.2.25 a.test. A IN", QUERY_LOG_ERROR, R_NOT_READ},

    /* dnsmasq: syslog, its own file, stderr; log-queries=extra and =proto. */
    {"Nov 24 22:41:21 dnsmasq[123]: query[MX] example.com from 192.0.2.25", QUERY_LOG_QUERY, false,
     "192.0.2.25", "example.com", "IN", "MX", false, 0, SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"Nov  4 22:41:21 gw dnsmasq[123]: query[AAAA] a.test from 2001:db8::25", QUERY_LOG_QUERY,
     false, "2001:db8::25", "a.test", "IN", "AAAA", false, 0, SYSLOG_T(11, 4, 22, 41, 21.0)},
    {"dnsmasq[123]: 1 192.0.2.25/41234 query[MX] example.com from 192.0.2.25", QUERY_LOG_QUERY,
     false, "192.0.2.25", "example.com", "IN", "MX", false, 0, NO_TIME},
    {"Nov 24 22:41:21 dnsmasq[123]: 17 query[PTR] 25.2.0.192.in-addr.arpa from 192.0.2.25",
     QUERY_LOG_QUERY, false, "192.0.2.25", "25.2.0.192.in-addr.arpa", "IN", "PTR", false, 0,
     SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"Nov 24 22:41:21 dnsmasq[123]: TCP 4294967295 ::1/53 query[NSAP_PTR] . from ::1",
     QUERY_LOG_QUERY, false, "::1", ".", "IN", "NSAP_PTR", false, 0, SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"Nov 24 22:41:21 dnsmasq[123]: query[type=65] example.com from 192.0.2.25", QUERY_LOG_QUERY,
     false, "192.0.2.25", "example.com", "IN", "type=65", false, 0, SYSLOG_T(11, 24, 22, 41, 21.0)},
    {"<30>1 2026-11-24T22:41:21Z gw dnsmasq 123 - - query[A] a.test from 10.0.0.1", QUERY_LOG_QUERY,
     false, "10.0.0.1", "a.test", "IN", "A", false, 0, ISO_T(2026, 11, 24, 22, 41, 21.0, 0)},
    /* dnsmasq's other lines. */
    {"Nov 24 22:41:21 dnsmasq[123]: forwarded example.com to 8.8.8.8", QUERY_LOG_OTHER, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: reply example.com is 192.0.2.1", QUERY_LOG_OTHER, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: cached example.com is NXDOMAIN", QUERY_LOG_OTHER, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: config a.lan is NXDOMAIN", QUERY_LOG_OTHER, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: auth[A] a.test from 192.0.2.25", QUERY_LOG_OTHER, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: dnssec-query[DS] a.test to 127.0.0.1#5053", QUERY_LOG_OTHER,
     R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: 1 192.0.2.25/41234 forwarded a.test to 8.8.8.8", QUERY_LOG_OTHER,
     R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: UDP query[A] a.test from 192.0.2.25", QUERY_LOG_OTHER, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq-dhcp[123]: DHCPACK(eth0) 192.0.2.25 00:11:22:33:44:55 host",
     QUERY_LOG_OTHER, R_NOT_READ},
    /* dnsmasq query lines that do not read. */
    {"Nov 24 22:41:21 dnsmasq[123]: query[MX] example.com from", QUERY_LOG_ERROR, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[MX] example.com from 192.0.2.256", QUERY_LOG_ERROR,
     R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[MX] example.com from 192.0.2.25 x", QUERY_LOG_ERROR,
     R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[MX] example.com to 192.0.2.25", QUERY_LOG_ERROR, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[mx] example.com from 192.0.2.25", QUERY_LOG_ERROR,
     R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[] example.com from 192.0.2.25", QUERY_LOG_ERROR, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[type=] example.com from 192.0.2.25", QUERY_LOG_ERROR,
     R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[type=123456] a from 192.0.2.25", QUERY_LOG_ERROR, R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[A] <name unprintable> from 192.0.2.25", QUERY_LOG_ERROR,
     R_NOT_READ},
    {"Nov 24 22:41:21 dnsmasq[123]: query[A] a.test from fe80::1%eth0", QUERY_LOG_ERROR, R_NOT_READ},
    {"nov 24 22:41:21 dnsmasq[123]: query[A] a.test from 192.0.2.25", QUERY_LOG_ERROR, R_NOT_READ},
};

static void check_resolver_case(const struct resolver_case *c, const char *line, size_t len)
{
    struct query_log_entry e;
    enum query_log_result r;

    memset(&e, 0x5A, sizeof(e));
    r = query_log_parse(line, len, &e);
    if (r != c->result)
        fail_msg("%d instead of %d for: %.*s", (int)r, (int)c->result, (int)len, line);
    if (r != QUERY_LOG_QUERY) {
        assert_false(e.time.present);
        /* Only an unbound line of another kind keeps its own file's Unix time. */
        if (r == QUERY_LOG_OTHER && len > 0 && line[0] == '[' && e.unix_time) {
            assert_int_equal(e.unix_seconds, strtoll(line + 1, NULL, 10));
        } else {
            assert_false(e.unix_time);
            assert_int_equal(e.unix_seconds, 0);
        }
        assert_false(e.reply);
        assert_null(e.client.ptr);
        assert_null(e.qname.ptr);
        assert_null(e.qclass.ptr);
        assert_null(e.view.ptr);
        return;
    }
    check_inside(e.client, line, len);
    check_inside(e.qname, line, len);
    check_inside(e.qtype, line, len);
    check_inside(e.view, line, len);
    assert_int_equal(e.view.len, 0);
    if (!slice_is(e.client, c->client) || !slice_is(e.qname, c->qname) ||
        !slice_is(e.qclass, c->qclass) || !slice_is(e.qtype, c->qtype) || e.reply != c->reply ||
        e.unix_time != c->unix_time || e.unix_seconds != c->unix_seconds)
        fail_msg("client [%.*s] qname [%.*s] class [%.*s] type [%.*s] reply %d unix %d %lld for: %s",
                 (int)e.client.len, e.client.ptr, (int)e.qname.len, e.qname.ptr,
                 (int)e.qclass.len, e.qclass.ptr, (int)e.qtype.len, e.qtype.ptr, e.reply,
                 e.unix_time, (long long)e.unix_seconds, c->line);
    if (e.time.present != c->time.present || e.time.has_year != c->time.has_year ||
        e.time.has_offset != c->time.has_offset || e.time.year != c->time.year ||
        e.time.month != c->time.month || e.time.day != c->time.day ||
        e.time.hour != c->time.hour || e.time.minute != c->time.minute ||
        e.time.second != c->time.second || e.time.offset_minutes != c->time.offset_minutes)
        fail_msg("time %d %04d-%02d-%02d %02d:%02d:%.9f %+d for: %s", e.time.present, e.time.year,
                 e.time.month, e.time.day, e.time.hour, e.time.minute, e.time.second,
                 e.time.offset_minutes, c->line);
}

/* unbound's and dnsmasq's query logs, exact-size copies, with and without a trailing CR. */
static void test_resolvers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(resolvers) / sizeof(resolvers[0]); i++) {
        const struct resolver_case *c = &resolvers[i];
        size_t len = strlen(c->line);
        char *copy = malloc(len + 1);

        assert_non_null(copy);
        memcpy(copy, c->line, len);
        check_resolver_case(c, copy, len);
        copy[len] = '\r';
        check_resolver_case(c, copy, len + 1);
        free(copy);
    }
}

/* BIND's query lines never come out as replies nor with a Unix time. */
static void test_bind_not_reply(void **state)
{
    struct query_log_entry e;

    (void)state;
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        if (queries[i].result != QUERY_LOG_QUERY)
            continue;
        assert_int_equal(query_log_parse(queries[i].line, strlen(queries[i].line), &e),
                         QUERY_LOG_QUERY);
        assert_false(e.reply);
        assert_false(e.unix_time);
    }
}

/* A NUL anywhere in an unbound or dnsmasq query line: never a query. */
static void test_resolver_nul_bytes(void **state)
{
    static const char *const bases[] = {
        UB "info: 192.0.2.25 example.com. MX IN NOERROR 0.000123 0 55 on udp 192.0.2.53 53",
        "Nov 24 22:41:21 dnsmasq[123]: UDP 1 192.0.2.25/41234 query[MX] example.com from 192.0.2.25",
    };
    struct query_log_entry e;

    (void)state;
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        size_t len = strlen(bases[b]);

        for (size_t i = 0; i < len; i++) {
            char *line = malloc(len);
            enum query_log_result r;

            assert_non_null(line);
            memcpy(line, bases[b], len);
            line[i] = '\0';
            r = query_log_parse(line, len, &e);
            /* In the time or the header an unknown prefix may leave a query without its time. */
            if (r == QUERY_LOG_QUERY && (e.time.present || e.unix_time))
                fail_msg("NUL at %zu of %s: a query", i, bases[b]);
            free(line);
        }
    }
}

/*
 * tests/data/query_log_samples.txt (path as argv[1]): each sample line is
 * preceded by "#> KIND [CLIENT QNAME CLASS TYPE TIME [VIEW...]]" (TIME as
 * sample_time_text writes it).
 */
static void describe_query(const char *line, size_t len, char *got, size_t size)
{
    struct query_log_entry e;
    enum query_log_result r = query_log_parse(line, len, &e);
    char tbuf[64];

    if (r == QUERY_LOG_QUERY) {
        if (e.unix_time)
            snprintf(tbuf, sizeof(tbuf), "@%lld", (long long)e.unix_seconds);
        else
            sample_time_text(&e.time, tbuf, sizeof(tbuf));
        snprintf(got, size, "%s %.*s %.*s %.*s %.*s %s%s%.*s", e.reply ? "REPLY" : "QUERY",
                 (int)e.client.len, e.client.ptr,
                 (int)e.qname.len, e.qname.ptr, (int)e.qclass.len, e.qclass.ptr, (int)e.qtype.len,
                 e.qtype.ptr, tbuf, e.view.len ? " " : "", (int)e.view.len, e.view.ptr);
    } else {
        snprintf(got, size, "%s", r == QUERY_LOG_OTHER ? "OTHER" : "ERROR");
    }
}

static void test_samples_file(void **state)
{
    (void)state;
    if (samples_path == NULL) {
        skip();
        return;
    }
    assert_true(sample_lines_check(samples_path, describe_query) > 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),      cmocka_unit_test(test_months),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_addresses),  cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_edges),      cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_resolvers),  cmocka_unit_test(test_bind_not_reply),
        cmocka_unit_test(test_resolver_nul_bytes),
        cmocka_unit_test(test_samples_file),
    };

    if (argc > 1)
        samples_path = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
