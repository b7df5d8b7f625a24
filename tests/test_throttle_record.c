/*
 * Unit tests of the rw:throttle record text: round trips of every source
 * and kind, IPv6 client keys, values cut to fit, and malformed fields and
 * values (each given with its exact length, in buffers with no NUL after
 * them, so that a read past the end shows under AddressSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "throttle.h"

/* A copy of s without its NUL, in a buffer of exactly its length. */
static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);

    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static bool parse(const char *field, const char *value, struct throttle_record *out)
{
    size_t fl = strlen(field), vl = strlen(value);
    char *f = exact(field, fl), *v = exact(value, vl);
    bool ok = throttle_record_parse(f, fl, v, vl, out);

    free(f);
    free(v);
    return ok;
}

/* Parse with a NUL byte in the value at position at. */
static bool parse_with_nul(const char *field, const char *value, size_t at)
{
    struct throttle_record r;
    size_t vl = strlen(value);
    char *v = exact(value, vl);
    bool ok;

    v[at] = '\0';
    ok = throttle_record_parse(field, strlen(field), v, vl, &r);
    free(v);
    return ok;
}

static struct throttle_record sample(enum culprit_kind kind, const char *key,
                                     enum throttle_source source)
{
    struct throttle_record r;

    memset(&r, 0, sizeof(r));
    r.kind = kind;
    snprintf(r.key, sizeof(r.key), "%s", key);
    r.source = source;
    r.changed = 1764048600.125;
    r.since = 1764048000.5;
    r.until = source == THROTTLE_MANUAL ? 0 : 1764051600;
    r.escalated = source == THROTTLE_DETECTOR;
    snprintf(r.host, sizeof(r.host), "mx1.example.net");
    snprintf(r.action, sizeof(r.action), "DEFER 4.7.1 Relay mail from you is paused");
    snprintf(r.reason, sizeof(r.reason), "culprit of a loud incident: 4000 relay recipients");
    return r;
}

static void assert_same(const struct throttle_record *a, const struct throttle_record *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->key, b->key);
    assert_int_equal(a->source, b->source);
    assert_true(a->changed == b->changed);
    assert_true(a->since == b->since);
    assert_true(a->until == b->until);
    assert_int_equal(a->escalated, b->escalated);
    assert_string_equal(a->host, b->host);
    assert_string_equal(a->action, b->action);
    assert_string_equal(a->reason, b->reason);
}

static void field_of(const struct throttle_record *r, char *out, size_t len)
{
    snprintf(out, len, "%s:%s", culprit_kind_name(r->kind), r->key);
}

static void round_trip(const struct throttle_record *r)
{
    char field[300], value[1024];
    struct throttle_record back;
    size_t n = throttle_record_format(r, value, sizeof(value));

    assert_int_equal(n, strlen(value));
    field_of(r, field, sizeof(field));
    assert_true(parse(field, value, &back));
    assert_same(r, &back);
}

static void test_source_names(void **state)
{
    (void)state;
    assert_string_equal(throttle_source_name(THROTTLE_DETECTOR), "detector");
    assert_string_equal(throttle_source_name(THROTTLE_LIMIT), "limit");
    assert_string_equal(throttle_source_name(THROTTLE_MANUAL), "manual");
    assert_string_equal(throttle_source_name(THROTTLE_RELEASED), "released");
    assert_string_equal(throttle_source_name(THROTTLE_SOURCES), "unknown");
}

static void test_format_exact_text(void **state)
{
    struct throttle_record r = sample(CULPRIT_SASL_USERNAME, "alice", THROTTLE_DETECTOR);
    char value[1024];

    (void)state;
    throttle_record_format(&r, value, sizeof(value));
    assert_string_equal(value, "v1 1764048600.125 1764048000.500 1764051600.000 detector 1 "
                               "mx1.example.net\tDEFER 4.7.1 Relay mail from you is paused\t"
                               "culprit of a loud incident: 4000 relay recipients");
}

static void test_round_trips(void **state)
{
    static const char *const keys[] = {"alice", "203.0.113.7", "example.com"};

    (void)state;
    for (int k = CULPRIT_SASL_USERNAME; k <= CULPRIT_SENDER_DOMAIN; k++)
        for (int s = 0; s < THROTTLE_SOURCES; s++) {
            struct throttle_record r = sample((enum culprit_kind)k, keys[k],
                                              (enum throttle_source)s);
            round_trip(&r);
        }
    {
        /* An empty reason, times 0, a key with spaces and colons, UTF-8. */
        struct throttle_record r = sample(CULPRIT_SASL_USERNAME, "bob smith:x", THROTTLE_MANUAL);

        r.reason[0] = '\0';
        r.changed = r.since = r.until = 0;
        snprintf(r.host, sizeof(r.host), "cli");
        snprintf(r.action, sizeof(r.action), "REJECT 5.7.1 Sending blocked by the mail "
                                             "administrator");
        round_trip(&r);
        snprintf(r.reason, sizeof(r.reason), "gesperrt f\xc3\xbcr 2h");
        round_trip(&r);
    }
}

static void test_ipv6_client_keys(void **state)
{
    struct throttle_record r = sample(CULPRIT_CLIENT_ADDRESS, "2001:db8::1", THROTTLE_LIMIT);
    struct throttle_record back;
    enum culprit_kind kind;
    char key[CULPRIT_KEY_MAX + 1];
    static const char member[] = "client_address:2001:db8::1";

    (void)state;
    round_trip(&r);
    assert_true(throttle_parse_member(member, strlen(member), &kind, key, sizeof(key)));
    assert_int_equal(kind, CULPRIT_CLIENT_ADDRESS);
    assert_string_equal(key, "2001:db8::1");
    assert_true(parse("client_address:::ffff:192.0.2.1",
                      "v1 1 2 3 limit 0 mx1\tDEFER 4.7.1 x\tover the limit", &back));
    assert_string_equal(back.key, "::ffff:192.0.2.1");
    assert_true(back.changed == 1 && back.since == 2 && back.until == 3);
}

static void test_parse_member(void **state)
{
    enum culprit_kind kind = CULPRIT_SASL_USERNAME;
    char key[CULPRIT_KEY_MAX + 1], small[6], longkey[400];
    static const char *const bad[] = {"",
                                      "alice",
                                      ":alice",
                                      "sasl_username:",
                                      "sasl_username",
                                      "SASL_USERNAME:alice",
                                      "sasl_user:alice",
                                      "sasl_usernamex:alice",
                                      " sasl_username:alice",
                                      "recipient:bob@example.org"};

    (void)state;
    assert_true(throttle_parse_member("sender_domain:example.com", 25, &kind, key, sizeof(key)));
    assert_int_equal(kind, CULPRIT_SENDER_DOMAIN);
    assert_string_equal(key, "example.com");
    /* Only len bytes count: what follows is not read. */
    assert_true(throttle_parse_member("sasl_username:alice:more", 19, &kind, key, sizeof(key)));
    assert_int_equal(kind, CULPRIT_SASL_USERNAME);
    assert_string_equal(key, "alice");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *m = exact(bad[i], strlen(bad[i]));

        assert_false(throttle_parse_member(m, strlen(bad[i]), &kind, key, sizeof(key)));
        free(m);
    }
    /* A NUL byte in the key. */
    assert_false(throttle_parse_member("sasl_username:al\0ce", 19, &kind, key, sizeof(key)));
    /* Keys that do not fit. */
    assert_true(throttle_parse_member("sasl_username:alice", 19, &kind, small, sizeof(small)));
    assert_false(throttle_parse_member("sasl_username:alices", 20, &kind, small, sizeof(small)));
    assert_false(throttle_parse_member("sasl_username:a", 15, &kind, key, 0));
    memcpy(longkey, "sasl_username:", 14);
    memset(longkey + 14, 'a', CULPRIT_KEY_MAX);
    assert_true(throttle_parse_member(longkey, 14 + CULPRIT_KEY_MAX, &kind, key, sizeof(key)));
    assert_int_equal(strlen(key), CULPRIT_KEY_MAX);
    longkey[14 + CULPRIT_KEY_MAX] = 'a';
    assert_false(throttle_parse_member(longkey, 15 + CULPRIT_KEY_MAX, &kind, key, sizeof(key)));
}

static void test_format_cleans_and_cuts(void **state)
{
    struct throttle_record r = sample(CULPRIT_SENDER_DOMAIN, "example.com", THROTTLE_MANUAL);
    struct throttle_record back;
    char value[1024], small[40];
    size_t n, full;

    (void)state;
    snprintf(r.reason, sizeof(r.reason), "line one\nline\ttwo\r");
    snprintf(r.host, sizeof(r.host), "bad host\tname");
    snprintf(r.action, sizeof(r.action), "HOLD\tnow");
    full = throttle_record_format(&r, value, sizeof(value));
    assert_true(parse("sender_domain:example.com", value, &back));
    assert_string_equal(back.reason, "line one line two ");
    assert_string_equal(back.host, "bad_host_name");
    assert_string_equal(back.action, "HOLD now");
    /* An empty host and action. */
    r.host[0] = r.action[0] = '\0';
    throttle_record_format(&r, value, sizeof(value));
    assert_true(parse("sender_domain:example.com", value, &back));
    assert_string_equal(back.host, "-");
    assert_string_equal(back.action, "DUNNO");
    /* Out-of-range times are written as 0; milliseconds are rounded. */
    r.changed = -5;
    r.since = 1e12;
    r.until = 12.3456;
    throttle_record_format(&r, value, sizeof(value));
    assert_memory_equal(value, "v1 0.000 0.000 12.346 manual 0 -\t", 33);
    /* Cut like snprintf: the length written, NUL-terminated within outlen. */
    memset(small, 'x', sizeof(small));
    n = throttle_record_format(&r, small, 20);
    assert_int_equal(n, 19);
    assert_int_equal(strlen(small), 19);
    assert_memory_equal(small, value, 19);
    assert_int_equal(small[20], 'x');
    assert_int_equal(throttle_record_format(&r, small, 1), 0);
    assert_int_equal(small[0], '\0');
    assert_int_equal(throttle_record_format(&r, small, 0), 0);
    assert_true(full > 19);
    /* A cut value does not parse. */
    assert_false(parse("sender_domain:example.com", small, &back));
}

static void test_longest_parts(void **state)
{
    struct throttle_record r = sample(CULPRIT_SASL_USERNAME, "x", THROTTLE_RELEASED);
    char value[1024];

    (void)state;
    memset(r.key, 'k', CULPRIT_KEY_MAX);
    r.key[CULPRIT_KEY_MAX] = '\0';
    memset(r.host, 'h', sizeof(r.host) - 1);
    r.host[sizeof(r.host) - 1] = '\0';
    memset(r.action, 'a', sizeof(r.action) - 1);
    r.action[sizeof(r.action) - 1] = '\0';
    memset(r.reason, 'r', sizeof(r.reason) - 1);
    r.reason[sizeof(r.reason) - 1] = '\0';
    r.changed = r.since = r.until = 99999999999.999;
    assert_true(throttle_record_format(&r, value, sizeof(value)) < sizeof(value) - 1);
    round_trip(&r);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "v1",
        "v1 ",
        "v2 1 2 3 manual 0 cli\tREJECT\treason",
        "V1 1 2 3 manual 0 cli\tREJECT\treason",
        "v1  1 2 3 manual 0 cli\tREJECT\treason",
        "v1 1 2 manual 0 cli\tREJECT\treason",
        "v1 -1 2 3 manual 0 cli\tREJECT\treason",
        "v1 +1 2 3 manual 0 cli\tREJECT\treason",
        "v1 1e3 2 3 manual 0 cli\tREJECT\treason",
        "v1 nan 2 3 manual 0 cli\tREJECT\treason",
        "v1 inf 2 3 manual 0 cli\tREJECT\treason",
        "v1 1. 2 3 manual 0 cli\tREJECT\treason",
        "v1 .5 2 3 manual 0 cli\tREJECT\treason",
        "v1 1.2.3 2 3 manual 0 cli\tREJECT\treason",
        "v1 100000000000 2 3 manual 0 cli\tREJECT\treason",
        "v1 000000000000000000001 2 3 manual 0 cli\tREJECT\treason",
        "v1 1 2 3 Manual 0 cli\tREJECT\treason",
        "v1 1 2 3 blocked 0 cli\tREJECT\treason",
        "v1 1 2 3 manual 2 cli\tREJECT\treason",
        "v1 1 2 3 manual 01 cli\tREJECT\treason",
        "v1 1 2 3 manual  cli\tREJECT\treason",
        "v1 1 2 3 manual 0 \tREJECT\treason",
        "v1 1 2 3 manual 0 two words\tREJECT\treason",
        "v1 1 2 3 manual 0 cli\t\treason",
        "v1 1 2 3 manual 0 cli\tREJECT",
        "v1 1 2 3 manual 0 cli REJECT reason",
        "v1 1 2 3 manual 0 cli\tREJECT\treason\tmore",
        "v1 1 2 3 manual 0 cli\tREJECT\treason\n",
        "v1 1 2 3 manual 0 cli\tREJECT\r\treason",
        "v1\t1 2 3 manual 0 cli\tREJECT\treason",
    };
    struct throttle_record r;

    (void)state;
    assert_true(parse("sasl_username:alice", "v1 1 2 3 manual 0 cli\tREJECT\treason", &r));
    assert_true(parse("sasl_username:alice", "v1 1 2 3 manual 0 cli\tREJECT\t", &r));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse("sasl_username:alice", bad[i], &r))
            fail_msg("accepted value %zu: '%s'", i, bad[i]);
    }
    /* Bad fields with a good value. */
    assert_false(parse("sasl_username:", "v1 1 2 3 manual 0 cli\tREJECT\treason", &r));
    assert_false(parse("recipient:bob", "v1 1 2 3 manual 0 cli\tREJECT\treason", &r));
    assert_false(parse("alice", "v1 1 2 3 manual 0 cli\tREJECT\treason", &r));
    /* NUL bytes anywhere in the value. */
    {
        const char *good = "v1 1 2 3 manual 0 cli\tREJECT\treason";

        for (size_t at = 0; at < strlen(good); at++)
            if (parse_with_nul("sasl_username:alice", good, at))
                fail_msg("accepted a NUL at %zu", at);
    }
    /* Over-long host, action and reason. */
    {
        char value[2048];
        int n;

        n = snprintf(value, sizeof(value), "v1 1 2 3 manual 0 %0*d\tREJECT\treason",
                     THROTTLE_HOST_MAX, 0);
        assert_true(n > 0);
        assert_false(parse("sasl_username:alice", value, &r));
        snprintf(value, sizeof(value), "v1 1 2 3 manual 0 %0*d\tREJECT\treason",
                 THROTTLE_HOST_MAX - 1, 0);
        assert_true(parse("sasl_username:alice", value, &r));
        snprintf(value, sizeof(value), "v1 1 2 3 manual 0 cli\t%0*d\treason", THROTTLE_ACTION_MAX,
                 0);
        assert_false(parse("sasl_username:alice", value, &r));
        snprintf(value, sizeof(value), "v1 1 2 3 manual 0 cli\tREJECT\t%0*d", THROTTLE_REASON_MAX,
                 0);
        assert_false(parse("sasl_username:alice", value, &r));
        snprintf(value, sizeof(value), "v1 1 2 3 manual 0 cli\tREJECT\t%0*d",
                 THROTTLE_REASON_MAX - 1, 0);
        assert_true(parse("sasl_username:alice", value, &r));
    }
    /* Every prefix of a good value is refused but the whole (no read past the length). */
    {
        const char *good = "v1 1764048600.125 1764048000.500 0.000 detector 1 mx1\tDEFER\tr";
        size_t n = strlen(good);

        for (size_t len = 0; len < n - 1; len++) {
            char *v = exact(good, len);

            assert_false(throttle_record_parse("sasl_username:a", 15, v, len, &r));
            free(v);
        }
        assert_true(parse("sasl_username:a", good, &r));
    }
    assert_false(throttle_record_parse(NULL, 0, "v1", 2, &r));
    assert_false(throttle_record_parse("sasl_username:a", 15, NULL, 0, &r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_names),
        cmocka_unit_test(test_format_exact_text),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_ipv6_client_keys),
        cmocka_unit_test(test_parse_member),
        cmocka_unit_test(test_format_cleans_and_cuts),
        cmocka_unit_test(test_longest_parts),
        cmocka_unit_test(test_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
