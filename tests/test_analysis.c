/*
 * analysis: relaywatch analyze's counts, fed lines here: the civil-time arithmetic against
 * libc's timegm over every day of 1970-2100, year-less lines across New Year (and a line of
 * the old year just after the turn), counting per period by kind of line (postscreen's
 * CONNECT, reject_warning and a queued line's retry each in their place), DNS queries of the
 * named clients only, the client with the most MX queries, [from, to), per-minute DNS, and
 * unparsed lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "analysis.h"
#include "window_counter.h"

static enum analysis_kind take(struct analysis *a, struct analysis_file *f, const char *line)
{
    return analysis_take(a, f, line, strlen(line), NULL);
}

static void test_civil_time(void **state)
{
    (void)state;
    for (time_t t = 0; t < (time_t)4102444800; t += 86400 - 7) {
        struct tm tm;
        int y, mo, d, h, mi, s;

        gmtime_r(&t, &tm);
        assert_int_equal(analysis_seconds(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                                          tm.tm_hour, tm.tm_min, tm.tm_sec),
                         (int64_t)t);
        analysis_fields((int64_t)t, &y, &mo, &d, &h, &mi, &s);
        assert_int_equal(y, tm.tm_year + 1900);
        assert_int_equal(mo, tm.tm_mon + 1);
        assert_int_equal(d, tm.tm_mday);
        assert_int_equal(h * 3600 + mi * 60 + s, tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
    }
}

static void test_year_rollover(void **state)
{
    struct analysis_settings s = {.period_seconds = 86400};
    struct analysis *a = analysis_new(&s);
    struct analysis_file f;
    struct analysis_line l;
    const char *lines[] = {
        "Dec 31 23:59:58 mail postfix/smtpd[1]: connect from a[192.0.2.1]",
        "Jan  1 00:00:01 mail postfix/smtpd[1]: connect from a[192.0.2.1]",
        "Dec 31 23:59:59 mail postfix/smtpd[1]: connect from a[192.0.2.1]", /* late, old year */
        "Jan  2 10:00:00 mail postfix/smtpd[1]: connect from a[192.0.2.1]",
    };
    int64_t want[] = {analysis_seconds(2025, 12, 31, 23, 59, 58),
                      analysis_seconds(2026, 1, 1, 0, 0, 1),
                      analysis_seconds(2025, 12, 31, 23, 59, 59),
                      analysis_seconds(2026, 1, 2, 10, 0, 0)};
    size_t n;
    struct analysis_period *p;

    (void)state;
    analysis_file_init(&f, 2025, 12); /* --year 2025 */
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(analysis_take(a, &f, lines[i], strlen(lines[i]), &l), AL_MAILLOG);
        assert_int_equal(l.time, want[i]);
    }
    p = analysis_periods(a, NULL, 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(p[0].start, analysis_seconds(2025, 12, 31, 0, 0, 0));
    assert_int_equal(p[0].nc, 2);
    assert_int_equal(p[1].nc, 1);
    free(p);

    /* A file last written in March 2026: a December line is of 2025, a February one of 2026. */
    analysis_file_init(&f, 2026, 3);
    assert_int_equal(analysis_take(a, &f, lines[0], strlen(lines[0]), &l), AL_MAILLOG);
    assert_int_equal(l.time, want[0]);
    analysis_file_init(&f, 2026, 3);
    assert_int_equal(take(a, &f, "Feb 10 00:00:00 mail postfix/smtpd[1]: connect from a[192.0.2.1]"),
                     AL_MAILLOG);
    assert_int_equal(f.year, 2026);
    analysis_free(a);
}

static const char *const day_lines[] = {
    "Oct 12 05:30:01 mail postfix/smtpd[100]: connect from unknown[198.51.100.7]",
    "Oct 12 05:30:01 mail postfix/postscreen[99]: CONNECT from [198.51.100.7]:4242 to [192.0.2.25]:25",
    "Oct 12 05:30:02 mail postfix/smtpd[100]: 3F2A81C0A2: client=unknown[198.51.100.7], sasl_method=PLAIN, sasl_username=webform",
    "Oct 12 05:30:02 mail postfix/qmgr[50]: 3F2A81C0A2: from=<a@example.ac.jp>, size=300, nrcpt=1 (queue active)",
    "Oct 12 06:30:02 mail postfix/qmgr[50]: 3F2A81C0A2: from=<a@example.ac.jp>, size=300, nrcpt=1 (queue active)",
    "Oct 12 05:30:04 mail postfix/smtpd[100]: NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 554 5.7.1 <y@d2.example>: Relay access denied; from=<a@example.ac.jp> to=<y@d2.example> proto=ESMTP helo=<x>",
    "Oct 12 05:30:05 mail postfix/smtpd[100]: NOQUEUE: reject_warning: RCPT from unknown[198.51.100.7]: 554 5.7.1 <y@d2.example>: Relay access denied; from=<a@example.ac.jp> to=<y@d2.example> proto=ESMTP helo=<x>",
    "Oct 12 05:31:05 ns named[5]: client 192.0.2.25#3333: query: d1.example IN MX +",
    "Oct 12 05:31:06 ns named[5]: client 192.0.2.25#3333: query: d2.example IN MX +",
    "Oct 12 05:31:07 ns named[5]: client 192.0.2.25#3333: query: d1.example IN AAAA +",
    "Oct 12 05:31:08 ns named[5]: client 192.0.2.99#3333: query: d1.example IN MX +",
    "Oct 12 05:31:09 ns named[5]: client 192.0.2.99#3333: query: 1.2.0.192.in-addr.arpa IN PTR +",
    "Oct 12 05:31:10 ns named[5]: client 192.0.2.25#3333: query: d1.example IN TXT +",
    "Oct 12 05:31:11 ns named[5]: starting BIND 9.18",
    "Oct 13 00:00:01 ns named[5]: client 192.0.2.25#3333: query: d1.example IN A +",
    "garbage without a time",
};

static struct analysis *read_day(const struct analysis_settings *s)
{
    struct analysis *a = analysis_new(s);
    struct analysis_file f;

    analysis_file_init(&f, 2003, 12);
    for (size_t i = 0; i < sizeof(day_lines) / sizeof(day_lines[0]); i++)
        take(a, &f, day_lines[i]);
    return a;
}

static void test_counts(void **state)
{
    struct analysis_settings s = {.period_seconds = 3600};
    struct analysis *a = read_day(&s);
    const struct analysis_input *in = analysis_input(a);
    const char *mail[] = {"192.0.2.25"};
    const char *top[2];
    uint64_t mx[2];
    size_t n;
    struct analysis_period *p;

    (void)state;
    assert_int_equal(in->lines, 16);
    assert_int_equal(in->maillog_lines, 7);
    assert_int_equal(in->querylog_lines, 7);
    assert_int_equal(in->other_lines, 1);
    assert_int_equal(in->unparsed_lines, 1);
    p = analysis_periods(a, mail, 1, &n);
    assert_int_equal(n, 3); /* 05:00, 06:00, and 00:00 the next day */
    assert_int_equal(p[0].start, analysis_seconds(2003, 10, 12, 5, 0, 0));
    assert_int_equal(p[0].nc, 1);       /* postscreen's CONNECT is not one */
    assert_int_equal(p[0].nf, 1);
    assert_int_equal(p[0].nf_log, 3);   /* queued, reject, reject_warning all carry from=< */
    assert_int_equal(p[0].refused, 1);  /* reject_warning refuses nothing */
    assert_int_equal(p[0].dns[AD_MX], 2);
    assert_int_equal(p[0].dns[AD_AAAA], 1);
    assert_int_equal(p[0].dns[AD_PTR], 0); /* the other client's */
    assert_int_equal(p[1].nf, 1);       /* the retry's pass through the active queue */
    assert_int_equal(p[2].dns[AD_A], 1);
    free(p);
    assert_int_equal(analysis_top_clients(a, top, mx, 2), 2);
    assert_string_equal(top[0], "192.0.2.25");
    assert_int_equal(mx[0], 2);
    assert_string_equal(top[1], "192.0.2.99");
    analysis_free(a);
}

static void test_named_clients_and_range(void **state)
{
    const char *other[] = {"192.0.2.99"};
    struct analysis_settings s = {.period_seconds = 86400, .mx_clients = other,
                                  .mx_client_count = 1, .has_from = true,
                                  .from = analysis_seconds(2003, 10, 12, 5, 31, 0),
                                  .has_to = true, .to = analysis_seconds(2003, 10, 13, 0, 0, 0),
                                  .per_minute_dns = true};
    struct analysis *a = read_day(&s);
    const char *top[2];
    uint64_t mx[2], minute[3];
    size_t n;
    struct analysis_period *p;

    (void)state;
    p = analysis_periods(a, other, 1, &n);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].nc, 0); /* 05:30 is before from */
    assert_int_equal(p[0].dns[AD_MX], 1);
    assert_int_equal(p[0].dns[AD_PTR], 1);
    free(p);
    /* Only the named client was counted. */
    assert_int_equal(analysis_top_clients(a, top, mx, 2), 1);
    assert_string_equal(top[0], "192.0.2.99");
    analysis_minute_dns(a, other, 1, analysis_seconds(2003, 10, 12, 5, 31, 0) / 60, minute);
    assert_int_equal(minute[0], 1);
    assert_int_equal(minute[2], 1);
    analysis_minute_dns(a, other, 1, analysis_seconds(2003, 10, 12, 5, 32, 0) / 60, minute);
    assert_int_equal(minute[0] + minute[1] + minute[2], 0);
    analysis_free(a);
}

static void test_offsets_and_untimed(void **state)
{
    struct analysis_settings s = {.period_seconds = 60};
    struct analysis *a = analysis_new(&s);
    struct analysis_file f;
    struct analysis_line l;
    const char *bind_untimed = "client 192.0.2.25#53: query: x.example IN MX +";
    size_t n;
    struct analysis_period *p;

    (void)state;
    analysis_file_init(&f, 2026, 12);
    /* A query line of a channel without print-time, before any time: nowhere to put it. */
    assert_int_equal(take(a, &f, bind_untimed), AL_UNPARSED);
    assert_int_equal(take(a, &f, "2026-03-29T01:59:59.5+01:00 mail postfix/smtpd[7]: connect from a[192.0.2.1]"),
                     AL_MAILLOG);
    assert_int_equal(analysis_take(a, &f, bind_untimed, strlen(bind_untimed), &l), AL_QUERY);
    assert_int_equal(l.time, analysis_seconds(2026, 3, 29, 1, 59, 59)); /* the file's last */
    p = analysis_periods(a, NULL, 0, &n);
    assert_int_equal(n, 1);
    assert_true(p[0].has_offset);
    assert_int_equal(p[0].offset_minutes, 60);
    assert_int_equal(p[0].lines, 2);
    free(p);
    analysis_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil_time),   cmocka_unit_test(test_year_rollover),
        cmocka_unit_test(test_counts),       cmocka_unit_test(test_named_clients_and_range),
        cmocka_unit_test(test_offsets_and_untimed),
    };

    hash_set_random_key();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
