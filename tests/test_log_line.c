/*
 * Unit tests of the syslog/journald header reader (log_line) and the
 * Postfix line classifier (maillog): every header format relaywatch analyze
 * reads, what each Postfix line counts as, and lines that must never crash
 * or count (1 MB, NUL bytes, random bytes).
 *
 * Optional argument: the path of tests/data/maillog_samples.txt (real
 * samples from fail2ban's and postfix_exporter's test data, see there),
 * whose lines are checked against the expectation written above each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log_line.h"
#include "maillog.h"
#include "sample_lines.h"

static const char *samples_path;

static enum log_line_result parse(const char *line, struct log_line *out)
{
    return log_line_parse(line, strlen(line), out);
}

static void assert_slice(struct log_slice s, const char *want)
{
    assert_non_null(s.ptr);
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.ptr, want);
}

/* Classify a whole line: its header, then its message. */
static unsigned classify(const char *line, struct maillog_event *ev)
{
    struct log_line l;

    assert_int_equal(parse(line, &l), LOG_LINE_TAGGED);
    return maillog_classify(l.tag, l.message, ev);
}

static void test_rfc3164(void **state)
{
    struct log_line l;

    (void)state;
    assert_int_equal(parse("Oct  2 05:30:01 mx postfix/smtpd[123]: connect from a[10.0.0.1]", &l),
                     LOG_LINE_TAGGED);
    assert_true(l.time.present);
    assert_false(l.time.has_year);
    assert_false(l.time.has_offset);
    assert_int_equal(l.time.month, 10);
    assert_int_equal(l.time.day, 2);
    assert_int_equal(l.time.hour, 5);
    assert_int_equal(l.time.minute, 30);
    assert_true(l.time.second == 1.0);
    assert_slice(l.host, "mx");
    assert_slice(l.tag, "postfix/smtpd");
    assert_int_equal(l.pid, 123);
    assert_slice(l.message, "connect from a[10.0.0.1]");

    /* Zero-padded (Postfix's maillog_file), no host, a trailing CR. */
    assert_int_equal(parse("Oct 02 05:30:01 postfix/smtpd[7]: x\r", &l), LOG_LINE_TAGGED);
    assert_int_equal(l.time.day, 2);
    assert_int_equal(l.host.len, 0);
    assert_non_null(l.host.ptr);
    assert_slice(l.tag, "postfix/smtpd");
    assert_slice(l.message, "x");
    assert_int_equal(parse("Oct 12 05:30:01 mx named: loaded", &l), LOG_LINE_TAGGED);
    assert_int_equal(l.pid, -1);
    assert_slice(l.tag, "named");
    /* A host that is an IPv6 address is not taken for a tag. */
    assert_int_equal(parse("Oct 12 05:30:01 2001:db8::1 unbound[5]: [5:0] info: x", &l),
                     LOG_LINE_TAGGED);
    assert_slice(l.host, "2001:db8::1");
    assert_slice(l.tag, "unbound");
    assert_slice(l.message, "[5:0] info: x");
    /* An empty message. */
    assert_int_equal(parse("Oct 12 05:30:01 mx prog[1]:", &l), LOG_LINE_TAGGED);
    assert_int_equal(l.message.len, 0);
}

static void test_rfc3339(void **state)
{
    struct log_line l;

    (void)state;
    assert_int_equal(parse("2023-10-12T05:30:01.123456+02:00 mx postfix/smtpd[9]: m", &l),
                     LOG_LINE_TAGGED);
    assert_true(l.time.has_year && l.time.has_offset);
    assert_int_equal(l.time.year, 2023);
    assert_int_equal(l.time.offset_minutes, 120);
    assert_true(l.time.second > 1.123455 && l.time.second < 1.123457);
    /* journalctl -o short-iso: no colon in the offset. */
    assert_int_equal(parse("2023-10-12T05:30:01-0330 mx postfix/smtpd[9]: m", &l), LOG_LINE_TAGGED);
    assert_int_equal(l.time.offset_minutes, -210);
    assert_int_equal(parse("2023-10-12T05:30:01Z mx postfix/smtpd[9]: m", &l), LOG_LINE_TAGGED);
    assert_true(l.time.has_offset);
    assert_int_equal(l.time.offset_minutes, 0);
    /* Without offset: local time. */
    assert_int_equal(parse("2023-10-12T05:30:01 mx postfix/smtpd[9]: m", &l), LOG_LINE_TAGGED);
    assert_false(l.time.has_offset);
    /* Broken times are not read. */
    assert_int_equal(parse("2023-02-29T05:30:01Z mx p[1]: m", &l), LOG_LINE_UNPARSED);
    assert_int_equal(parse("2023-10-12T24:30:01Z mx p[1]: m", &l), LOG_LINE_UNPARSED);
    assert_int_equal(parse("2023-10-12T05:30:01+24:00 mx p[1]: m", &l), LOG_LINE_UNPARSED);
    assert_null(l.message.ptr);
}

static void test_rfc5424(void **state)
{
    struct log_line l;

    (void)state;
    assert_int_equal(parse("<22>1 2023-10-12T05:30:01.5Z mx postfix/qmgr 31 - [a b=\"]\"] m", &l),
                     LOG_LINE_TAGGED);
    assert_slice(l.host, "mx");
    assert_slice(l.tag, "postfix/qmgr");
    assert_int_equal(l.pid, 31);
    assert_slice(l.message, "m");
    assert_int_equal(parse("<22>1 2023-10-12T05:30:01Z - - - - - m", &l), LOG_LINE_UNTAGGED);
    assert_int_equal(l.host.len, 0);
    assert_int_equal(l.pid, -1);
    /* NILVALUE time: nothing to count the line at. */
    assert_int_equal(parse("<22>1 - mx app 1 - - m", &l), LOG_LINE_UNPARSED);
}

static void test_unparsed(void **state)
{
    struct log_line l;

    (void)state;
    assert_int_equal(log_line_parse(NULL, 0, &l), LOG_LINE_UNPARSED);
    assert_int_equal(log_line_parse("", 0, NULL), LOG_LINE_UNPARSED);
    assert_int_equal(parse("connect from a[10.0.0.1]", &l), LOG_LINE_UNPARSED);
    assert_int_equal(parse("Oct 12", &l), LOG_LINE_UNPARSED);
    assert_int_equal(parse("oct 12 05:30:01 mx p[1]: m", &l), LOG_LINE_UNPARSED);
    assert_int_equal(parse("Oct 12 05:30:01", &l), LOG_LINE_UNTAGGED);
    /* A pid that is no number, an unclosed one, a tag too long. */
    assert_int_equal(parse("Oct 12 05:30:01 mx p[x]: m", &l), LOG_LINE_UNTAGGED);
    assert_int_equal(l.tag.len, 0);
    assert_int_equal(l.pid, -1);
    assert_slice(l.host, "mx");
    assert_slice(l.message, "p[x]: m");
    assert_int_equal(parse("Oct 12 05:30:01 mx p[12: m", &l), LOG_LINE_UNTAGGED);
    assert_int_equal(parse("Oct 12 05:30:01 mx p[]: m", &l), LOG_LINE_UNTAGGED);
    assert_int_equal(parse("Oct 12 05:30:01 mx p[12345678901]: m", &l), LOG_LINE_UNTAGGED);
    {
        char line[200];

        memset(line, 0, sizeof(line));
        memcpy(line, "Oct 12 05:30:01 mx ", 19);
        memset(line + 19, 'a', 129);
        memcpy(line + 19 + 129, ": m", 3);
        assert_int_equal(parse(line, &l), LOG_LINE_UNTAGGED);
        line[19 + 128] = ':';
        line[19 + 129] = ' ';
        assert_int_equal(parse(line, &l), LOG_LINE_TAGGED);
        assert_int_equal(l.tag.len, 128);
    }
}

static void test_classify(void **state)
{
    struct maillog_event ev;
    struct log_slice tag = {"postfix/smtpd", 13};

    (void)state;
    /* disconnect and postscreen's CONNECT are not connects; nor is a bad address. */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: disconnect from a[10.0.0.1]",
                              &ev),
                     MAILLOG_POSTFIX);
    assert_int_equal(
        classify("Oct 12 05:30:01 mx postfix/postscreen[1]: CONNECT from [10.0.0.1]:4 to [10.0.0.2]:25",
                 &ev),
        MAILLOG_POSTFIX);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: connect from a[10.0.0.256]", &ev),
                     MAILLOG_POSTFIX);
    assert_int_equal(ev.client_addr.len, 0);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: connect from a[10.0.0.1]x", &ev),
                     MAILLOG_POSTFIX);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: connect from [10.0.0.1]", &ev),
                     MAILLOG_POSTFIX);
    /* Only smtpd's connects count: smtp's own is the client side. */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtp[1]: connect from a[10.0.0.1]", &ev),
                     MAILLOG_POSTFIX);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: connect from a[::1]", &ev),
                     MAILLOG_POSTFIX | MAILLOG_CONNECT);
    assert_slice(ev.client_addr, "::1");
    assert_slice(ev.client_name, "a");
    /* smtpd_client_port_logging = yes: NAME[ADDR]:PORT, in connect and client= lines. */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: connect from a[10.0.0.1]:4711",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_CONNECT);
    assert_slice(ev.client_addr, "10.0.0.1");
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: connect from a[10.0.0.1]:471100",
                              &ev),
                     MAILLOG_POSTFIX);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: ABCDEF: client=a[10.0.0.1]:25, "
                              "sasl_method=PLAIN, sasl_username=u",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_CLIENT);
    assert_slice(ev.sasl_username, "u");
    /* smtpd could not get the peer's address: a connection still, without an address. */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtps/smtpd[1]: connect from unknown[unknown]",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_CONNECT);
    assert_int_equal(ev.client_addr.len, 0);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: connect from unknown[unknown]x",
                              &ev),
                     MAILLOG_POSTFIX);

    /* Not Postfix: another program, or a tag that only starts like one. */
    assert_int_equal(classify("Oct 12 05:30:01 mx sendmail[1]: connect from a[10.0.0.1]", &ev), 0);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfixx/smtpd[1]: connect from a[10.0.0.1]", &ev),
                     0);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix[1]: connect from a[10.0.0.1]", &ev), 0);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/[1]: connect from a[10.0.0.1]", &ev), 0);
    assert_null(ev.program.ptr);

    /* qmgr: the queued line needs the queue ID, size, nrcpt and "(queue active)". */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/qmgr[1]: 3372E982BC: from=<a@b>, size=1, "
                              "nrcpt=1 (queue active)",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_QUEUED | MAILLOG_FROM);
    assert_slice(ev.queue_id, "3372E982BC");
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/qmgr[1]: 3372E982BC: from=<a@b>, status="
                              "expired, returned to sender",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_FROM);
    assert_int_equal(ev.queue_id.len, 0);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/qmgr[1]: not-an-id: from=<a@b>, size=1, "
                              "nrcpt=1 (queue active)",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_FROM);
    /* Cut short (a syslog daemon's line limit): not counted as queued. */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/qmgr[1]: 3372E982BC: from=<a@b>, size=1, "
                              "nrcpt=1",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_FROM);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/qmgr[1]: 3372E982BC: from=<a@b>, size=1 "
                              "(queue active)",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_FROM);
    /* A sender holding ">, size=" itself. */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/qmgr[1]: 3372E982BC: from=<a>, size=<@b>, "
                              "size=9, nrcpt=2 (queue active)",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_QUEUED | MAILLOG_FROM);

    /* Refusals: smtpd and cleanup; reject_warning is none; milter-reject is one. */
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: NOQUEUE: reject: CONNECT from "
                              "a[10.0.0.1]: 421 no",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_REFUSED);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: 3372E982BC: milter-reject: "
                              "END-OF-MESSAGE from a[10.0.0.1]: 5.7.1 no; from=<a@b> to=<c@d>",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_REFUSED | MAILLOG_FROM);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: NOQUEUE: milter-reject: CONNECT "
                              "from unknown[unknown]: 451 4.7.1 Service unavailable",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_REFUSED);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: NOQUEUE: reject_warning: RCPT "
                              "from a[10.0.0.1]: 554 no; from=<a@b>",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_FROM);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/qmgr[1]: NOQUEUE: reject: x", &ev),
                     MAILLOG_POSTFIX);

    /* client=: a bare one, a SASL one with a comma in the name, an unparsable address. */
    assert_int_equal(maillog_classify(tag, (struct log_slice){"ABCDEF: client=a[10.0.0.1]", 26}, &ev),
                     MAILLOG_POSTFIX | MAILLOG_CLIENT);
    assert_int_equal(ev.sasl_username.len, 0);
    assert_non_null(ev.sasl_username.ptr);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: ABCDEF: client=a[10.0.0.1], "
                              "sasl_method=PLAIN, sasl_username=x, y, orig_client=b[10.0.0.2]",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_CLIENT);
    assert_slice(ev.sasl_username, "x, y");
    assert_slice(ev.queue_id, "ABCDEF");
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: ABCDEF: client=a[IPv6:::ffff:1.2.3.4]",
                              &ev),
                     MAILLOG_POSTFIX | MAILLOG_CLIENT);
    assert_slice(ev.client_addr, "::ffff:1.2.3.4");
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: ABCDEF: client=a[x]", &ev),
                     MAILLOG_POSTFIX);
    assert_int_equal(classify("Oct 12 05:30:01 mx postfix/smtpd[1]: ABCDEF: client=a[10.0.0.1]x",
                              &ev),
                     MAILLOG_POSTFIX);
    assert_int_equal(maillog_classify((struct log_slice){NULL, 0}, tag, NULL), 0);
}

/* A 1 MB line, NUL bytes and random bytes: read to their end, never a crash, never a count. */
static void test_garbage(void **state)
{
    const size_t big = 1 << 20;
    char *line = malloc(big);
    struct log_line l;
    struct maillog_event ev;
    uint32_t x = 12345;

    (void)state;
    assert_non_null(line);
    memset(line, 'a', big);
    assert_int_equal(log_line_parse(line, big, &l), LOG_LINE_UNPARSED);
    memcpy(line, "Oct 12 05:30:01 mx postfix/smtpd[1]: connect from ", 50);
    assert_int_equal(log_line_parse(line, big, &l), LOG_LINE_TAGGED);
    assert_int_equal(l.message.len, big - 37);
    assert_int_equal(maillog_classify(l.tag, l.message, &ev), MAILLOG_POSTFIX);
    memset(line + 50, 'x', big - 50);
    memcpy(line + big - 20, "[10.0.0.1]", 10);
    assert_int_equal(maillog_classify(l.tag, l.message, &ev), MAILLOG_POSTFIX);

    /* A NUL byte in the address or the tag stops either being read. */
    {
        static const char nul_addr[] = "Oct 12 05:30:01 mx postfix/smtpd[1]: connect from a[10.0\0.0.1]";
        static const char nul_tag[] = "Oct 12 05:30:01 mx post\0fix/smtpd[1]: connect from a[10.0.0.1]";

        assert_int_equal(log_line_parse(nul_addr, sizeof(nul_addr) - 1, &l), LOG_LINE_TAGGED);
        assert_int_equal(maillog_classify(l.tag, l.message, &ev), MAILLOG_POSTFIX);
        assert_int_equal(log_line_parse(nul_tag, sizeof(nul_tag) - 1, &l), LOG_LINE_UNTAGGED);
    }

    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)(round * 7 % 300);

        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            line[i] = (char)(x >> 16);
        }
        if (round % 2)
            memcpy(line, "Oct 12 05:30:01 ", n < 16 ? n : 16);
        if (log_line_parse(line, n, &l) != LOG_LINE_UNPARSED) {
            assert_true(l.message.ptr >= line && l.message.ptr + l.message.len <= line + n);
            maillog_classify(l.tag, l.message, &ev);
        }
    }
    free(line);
}

#define OR_NONE(s) (s).len ? (int)(s).len : 1, (s).len ? (s).ptr : "-"

/* "KIND [TIME HOST TAG PID FLAGS NAME ADDR USER]", as tests/data/maillog_samples.txt says. */
static void describe_line(const char *line, size_t len, char *got, size_t size)
{
    static const char *const names[] = {"POSTFIX", "CONNECT", "QUEUED", "FROM", "REFUSED", "CLIENT"};
    char tbuf[64], flags[64] = "", pid[24] = "-";
    struct log_line l;
    struct maillog_event ev;
    enum log_line_result r = log_line_parse(line, len, &l);
    unsigned fl;

    if (r == LOG_LINE_UNPARSED) {
        snprintf(got, size, "UNPARSED");
        return;
    }
    fl = maillog_classify(l.tag, l.message, &ev);
    for (unsigned i = 0; i < 6; i++)
        if (fl & (1u << i))
            snprintf(flags + strlen(flags), sizeof(flags) - strlen(flags), "%s%s",
                     flags[0] ? "," : "", names[i]);
    if (l.pid >= 0)
        snprintf(pid, sizeof(pid), "%ld", l.pid);
    sample_time_text(&l.time, tbuf, sizeof(tbuf));
    snprintf(got, size, "%s %s %.*s %.*s %s %s %.*s %.*s %.*s",
             r == LOG_LINE_TAGGED ? "TAGGED" : "UNTAGGED", tbuf, OR_NONE(l.host), OR_NONE(l.tag),
             pid, flags[0] ? flags : "-", OR_NONE(ev.client_name), OR_NONE(ev.client_addr),
             OR_NONE(ev.sasl_username));
}

static void test_samples_file(void **state)
{
    (void)state;
    if (samples_path == NULL) {
        skip();
        return;
    }
    assert_true(sample_lines_check(samples_path, describe_line) >= 30);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3164),   cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_rfc5424),   cmocka_unit_test(test_unparsed),
        cmocka_unit_test(test_classify),  cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_samples_file),
    };

    if (argc > 1)
        samples_path = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
