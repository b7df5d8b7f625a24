/*
 * queue_id: the Postfix queue IDs that may reach postsuper(1), and everything else refused.
 *
 * The valid samples were written by a real Postfix (Debian bookworm's 3.7, a private
 * instance, five messages sent with swaks, read from its maillog) with
 * enable_long_queue_ids = no and = yes; ../shared/notes/real-servers.md has them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "queue_id.h"

static bool valid(const char *s)
{
    return queue_id_valid(s, strlen(s));
}

static void test_real_short_ids(void **state)
{
    static const char *const ids[] = {"14E9AA766D1", "31558A766D1", "48483A766D1", "DB113A766A1",
                                      "EE497A766A1", "7CE1CA7611A"};

    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        assert_true(valid(ids[i]));
}

static void test_real_long_ids(void **state)
{
    static const char *const ids[] = {"4jjlNN6lMqz1bhJ7", "4jjlNP0QFkz1bgKj", "4jjlNP1D0wz1bgKj",
                                      "4jjlNP2048z1bgKj", "4jjlNP2Lkcz1bgKj"};

    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        assert_true(valid(ids[i]));
}

/* Each length limit at and past its edge. */
static void test_lengths(void **state)
{
    (void)state;
    assert_false(valid(""));
    assert_false(valid("14E9A"));                  /* 5: microseconds without an inode */
    assert_true(valid("14E9A1"));                  /* 6 */
    assert_true(valid("14E9A0123456789ABCDEF"));   /* 21: a 64-bit inode */
    assert_false(valid("14E9A0123456789ABCDEF0")); /* 22 */
    assert_false(valid("4jjlNN6lMqz"));            /* long form without an inode */
    assert_true(valid("4jjlNN6lMqz1"));            /* 12 */
    assert_true(valid("4jjlNN6lMqz1bhJ71bhJ71bh")); /* 24 = QUEUE_ID_MAX */
    assert_false(valid("4jjlNN6lMqz1bhJ71bhJ71bhJ"));
    assert_int_equal(strlen("4jjlNN6lMqz1bhJ71bhJ71bh"), QUEUE_ID_MAX);
}

/* What a hostile sender or local user would like postsuper to see. */
static void test_refused(void **state)
{
    static const char *const bad[] = {
        "ALL", "all", "-", "-d", "-h", "-H", "-dALL", "--", "-c/etc", "../../etc/passwd",
        "/var/spool/postfix/hold/14E9AA766D1", "14E9AA766D1/", "14E9AA766D1\n", " 14E9AA766D1",
        "14E9AA766D1 ALL", "14e9aa766d1", /* short IDs are upper case */
        "14E9AG766D1", "14E9A_766D1", "deferred", "hold", "MAILER-DAEMON", "postmaster@example.org",
        "4jjlNN6lMqy1bhJ7",   /* no z at index 10 */
        "4jjlNN6lMqz1bhz7",   /* z inside the inode */
        "4jjlNA6lMqz1bhJ7",   /* a vowel */
        "4jjlNN6lMqz1bh-7", "4jjlNN6lM z1bhJ7", "4jjl\xc3\xa9\x36lMqz1bhJ7", /* \x36: the 6 after the UTF-8 */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* A NUL inside: the bytes counted, not the C string. */
    assert_false(queue_id_valid("14E9AA\0766D1", 12));
    assert_true(queue_id_valid("14E9AA766D1 trailing", 11));
    assert_false(queue_id_valid(NULL, 0));
}

/* queue_id_listed: whole words of a space-separated list only. */
static void test_listed(void **state)
{
    static const char list[] = "14E9AA766D1 4jjlNN6lMqz1bhJ7 31558A766D1";

    (void)state;
    assert_true(queue_id_listed(list, strlen(list), "14E9AA766D1", 11));
    assert_true(queue_id_listed(list, strlen(list), "4jjlNN6lMqz1bhJ7", 16));
    assert_true(queue_id_listed(list, strlen(list), "31558A766D1", 11));
    assert_false(queue_id_listed(list, strlen(list), "14E9AA766D", 10)); /* a prefix */
    assert_false(queue_id_listed(list, strlen(list), "1558A766D1", 10));  /* a suffix */
    assert_false(queue_id_listed(list, strlen(list) - 1, "31558A766D1", 11)); /* cut */
    assert_false(queue_id_listed("", 0, "14E9AA766D1", 11));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_short_ids),
        cmocka_unit_test(test_real_long_ids),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_listed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
