/*
 * maillog: what one Postfix log line says, for relaywatch analyze's counts
 * (the study's N_c and N_f) and culprits.  Pure: the message and tag come
 * from log_line_parse; the answer is flags and slices of the same line.
 *
 * A Postfix tag is "postfix[-INSTANCE][/SERVICE...]/PROGRAM"
 * ("postfix/smtpd", "postfix-out/smtpd", "postfix/submission/smtpd"): the
 * program is its last component.  Flags (several may hold for one line):
 *  - CONNECT: smtpd's "connect from NAME[ADDR]" (nc; postscreen's "CONNECT
 *    from" is not one);
 *  - QUEUED: qmgr's "QUEUEID: from=<...>, size=N, nrcpt=N (queue active)" (nf);
 *  - FROM: any Postfix line with "from=<" (nf_log, rejects included);
 *  - REFUSED: smtpd's or cleanup's "NOQUEUE: reject: ", "QUEUEID: reject: "
 *    or "QUEUEID: milter-reject: " (not "reject_warning"); one at RCPT
 *    ("reject: RCPT from NAME[ADDR]: ...") names its client;
 *  - CLIENT: smtpd's "QUEUEID: client=NAME[ADDR][, sasl_method=M,
 *    sasl_username=USER]...", the line that names a queued message's sender.
 * ADDR may be written "[IPv6:...]": the prefix is dropped; an ADDR that is
 * not an IP address makes the line none of CONNECT or CLIENT.
 */
#ifndef RELAYWATCH_MAILLOG_H
#define RELAYWATCH_MAILLOG_H

#include "log_line.h"

enum {
    MAILLOG_POSTFIX = 1 << 0, /* a Postfix tag: program is filled */
    MAILLOG_CONNECT = 1 << 1,
    MAILLOG_QUEUED = 1 << 2,
    MAILLOG_FROM = 1 << 3,
    MAILLOG_REFUSED = 1 << 4,
    MAILLOG_CLIENT = 1 << 5,
};

struct maillog_event {
    unsigned flags;
    struct log_slice program;       /* "smtpd", "qmgr", ... */
    struct log_slice queue_id;      /* QUEUED, CLIENT, and REFUSED after a queue ID */
    struct log_slice client_name;   /* CONNECT, CLIENT, REFUSED at RCPT: "unknown" or the
                                       verified name */
    struct log_slice client_addr;   /* the same lines: the address text without "IPv6:" */
    struct log_slice sasl_username; /* CLIENT after an authenticated session; else len 0 */
};

/* Classify one line's message given its tag; returns out->flags (0: not Postfix). */
unsigned maillog_classify(struct log_slice tag, struct log_slice message,
                          struct maillog_event *out);

#endif
