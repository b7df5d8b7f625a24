/*
 * quarantine: the queue-ID bookkeeping behind the holds (policyd/engine/quarantine.h): bounded
 * memory per key, the oldest forgotten first, holds and releases as postsuper answers them,
 * a restart in between (save and load), keys told apart by name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarantine.h"

#define T0 1800000000.0

static struct quarantine *table(unsigned slots, unsigned per_key, double lookback)
{
    struct quarantine_settings s = {slots, per_key, lookback};

    return quarantine_new(&s);
}

/* A short-form ID for message n (upper-case hex, 11 characters). */
static const char *qid(unsigned n)
{
    static char buf[8][16];
    static unsigned next;
    char *b = buf[next++ % 8];

    snprintf(b, 16, "%05XA766D1", 0x10000 + n);
    return b;
}

static uint64_t h(enum culprit_kind kind, const char *key)
{
    return culprit_key_hash(kind, key, strlen(key));
}

static bool note(struct quarantine *q, const char *key, unsigned n, double now, bool held)
{
    const char *id = qid(n);

    return quarantine_note(q, CULPRIT_CLIENT_ADDRESS, key, strlen(key),
                           h(CULPRIT_CLIENT_ADDRESS, key), id, strlen(id), now, held);
}

static struct quarantine_key_info info(struct quarantine *q, const char *key, double now)
{
    struct quarantine_key_info k;

    memset(&k, 0, sizeof(k));
    if (!quarantine_info(q, CULPRIT_CLIENT_ADDRESS, key, strlen(key),
                         h(CULPRIT_CLIENT_ADDRESS, key), now, &k))
        k.key = NULL;
    return k;
}

static unsigned take(struct quarantine *q, const char *key, enum quarantine_op op, double now,
                     char *out, size_t len)
{
    return quarantine_take(q, CULPRIT_CLIENT_ADDRESS, key, strlen(key),
                           h(CULPRIT_CLIENT_ADDRESS, key), op, now, out, len);
}

static unsigned done(struct quarantine *q, const char *key, enum quarantine_op op,
                     const char *ids, bool failed, double now)
{
    return quarantine_done(q, CULPRIT_CLIENT_ADDRESS, key, strlen(key),
                           h(CULPRIT_CLIENT_ADDRESS, key), op, ids, strlen(ids), failed, now);
}

static void test_hold_and_release(void **state)
{
    struct quarantine *q = table(64, 100, 3600);
    struct quarantine_stats st;
    struct quarantine_key_info k;
    char ids[4096], expect[256];

    (void)state;
    for (unsigned i = 1; i <= 3; i++)
        assert_true(note(q, "192.0.2.7", i, T0 + i, false));
    assert_true(note(q, "198.51.100.1", 9, T0, false));
    k = info(q, "192.0.2.7", T0 + 10);
    assert_non_null(k.key);
    assert_int_equal(k.queued, 3);
    assert_int_equal(k.due, 3);
    assert_int_equal(k.held, 0);

    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 10, ids, sizeof(ids)), 3);
    snprintf(expect, sizeof(expect), "%s %s %s", qid(1), qid(2), qid(3));
    assert_string_equal(ids, expect);
    k = info(q, "192.0.2.7", T0 + 10);
    assert_int_equal(k.asked, 3);
    assert_int_equal(k.due, 0);
    /* Asked already: not asked twice. */
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 10, ids, sizeof(ids)), 0);

    /* postsuper held two; the third was not (yet) a ready queue file. */
    snprintf(expect, sizeof(expect), "%s %s", qid(1), qid(3));
    assert_int_equal(done(q, "192.0.2.7", QUARANTINE_HOLD, expect, false, T0 + 11), 2);
    k = info(q, "192.0.2.7", T0 + 11);
    assert_int_equal(k.held, 2);
    assert_true(k.held_since == T0 + 11);
    assert_int_equal(k.queued, 1);
    assert_int_equal(k.due, 0); /* asked again only after QUARANTINE_RETRY */
    k = info(q, "192.0.2.7", T0 + 11 + QUARANTINE_RETRY);
    assert_int_equal(k.due, 1);
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 14, ids, sizeof(ids)), 1);
    assert_string_equal(ids, qid(2));
    /* Not found again: forgotten (delivered). */
    assert_int_equal(done(q, "192.0.2.7", QUARANTINE_HOLD, "", false, T0 + 14), 0);
    k = info(q, "192.0.2.7", T0 + 14);
    assert_int_equal(k.queued + k.asked, 0);
    assert_int_equal(k.held, 2);
    /* Someone else's message is untouched. */
    k = info(q, "198.51.100.1", T0 + 14);
    assert_int_equal(k.queued, 1);
    assert_int_equal(k.held, 0);

    /* Release: the two held; postsuper freed one (the other was deleted by hand). */
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_RELEASE, T0 + 20, ids, sizeof(ids)), 2);
    snprintf(expect, sizeof(expect), "%s %s", qid(1), qid(3));
    assert_string_equal(ids, expect);
    assert_int_equal(done(q, "192.0.2.7", QUARANTINE_RELEASE, qid(3), false, T0 + 21), 1);
    k = info(q, "192.0.2.7", T0 + 21);
    assert_int_equal(k.held, 0);
    assert_int_equal(k.released, 1);
    assert_true(k.released_at == T0 + 21);
    quarantine_get_stats(q, &st);
    assert_int_equal(st.held, 0);
    assert_int_equal(st.held_total, 2);
    assert_int_equal(st.released_total, 1);
    quarantine_free(q);
}

static void test_failed_run_goes_back(void **state)
{
    struct quarantine *q = table(64, 100, 3600);
    char ids[4096];

    (void)state;
    note(q, "192.0.2.7", 1, T0, false);
    note(q, "192.0.2.7", 2, T0, false);
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0, ids, sizeof(ids)), 2);
    assert_int_equal(done(q, "192.0.2.7", QUARANTINE_HOLD, "", true, T0), 0);
    /* Back to queued, asked again later, and a failed run is not a "not found". */
    assert_int_equal(info(q, "192.0.2.7", T0).due, 0);
    assert_int_equal(info(q, "192.0.2.7", T0 + QUARANTINE_RETRY).due, 2);
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 5, ids, sizeof(ids)), 2);
    assert_int_equal(done(q, "192.0.2.7", QUARANTINE_HOLD, ids, false, T0 + 5), 2);
    /* A release that failed leaves them held. */
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_RELEASE, T0 + 6, ids, sizeof(ids)), 2);
    assert_int_equal(done(q, "192.0.2.7", QUARANTINE_RELEASE, "", true, T0 + 6), 0);
    assert_int_equal(info(q, "192.0.2.7", T0 + 6).held, 2);
    assert_int_equal(info(q, "192.0.2.7", T0 + 6).released, 0);
    quarantine_free(q);
}

static void test_bounded_per_key_oldest_forgotten_first(void **state)
{
    struct quarantine *q = table(64, 5, 3600);
    struct quarantine_stats st;
    char ids[4096], expect[256];

    (void)state;
    for (unsigned i = 1; i <= 8; i++)
        assert_true(note(q, "192.0.2.7", i, T0 + i, false));
    quarantine_get_stats(q, &st);
    assert_int_equal(st.ids, 5);
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 9, ids, sizeof(ids)), 5);
    snprintf(expect, sizeof(expect), "%s %s %s %s %s", qid(4), qid(5), qid(6), qid(7), qid(8));
    assert_string_equal(ids, expect);
    assert_int_equal(done(q, "192.0.2.7", QUARANTINE_HOLD, ids, false, T0 + 9), 5);
    /* A held ID pushed out is counted: it stays on hold in Postfix, RelayWatch forgot it. */
    assert_true(note(q, "192.0.2.7", 9, T0 + 10, false));
    quarantine_get_stats(q, &st);
    assert_int_equal(st.forgotten_held, 1);
    assert_int_equal(st.held, 4);
    assert_int_equal(info(q, "192.0.2.7", T0 + 10).held, 4);
    /* A smaller per_key trims at once, the oldest first. */
    {
        struct quarantine_settings s = {64, 2, 3600};

        quarantine_reconfigure(q, &s);
    }
    quarantine_get_stats(q, &st);
    assert_int_equal(st.ids, 2);
    assert_int_equal(info(q, "192.0.2.7", T0 + 10).held, 1);
    assert_int_equal(info(q, "192.0.2.7", T0 + 10).queued, 1);
    quarantine_free(q);
}

static void test_lookback(void **state)
{
    struct quarantine *q = table(64, 100, 600);
    char ids[4096];

    (void)state;
    note(q, "192.0.2.7", 1, T0, false);
    note(q, "192.0.2.7", 2, T0 + 500, false);
    /* At T0 + 700 the first is older than the lookback: not held. */
    assert_int_equal(info(q, "192.0.2.7", T0 + 700).due, 1);
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 700, ids, sizeof(ids)), 1);
    assert_string_equal(ids, qid(2));
    done(q, "192.0.2.7", QUARANTINE_HOLD, ids, false, T0 + 700);
    /* The tick forgets what is past the lookback and not held; held IDs stay. */
    quarantine_tick(q, T0 + 2000);
    assert_int_equal(info(q, "192.0.2.7", T0 + 2000).queued, 0);
    assert_int_equal(info(q, "192.0.2.7", T0 + 2000).held, 1);
    /* ... until QUARANTINE_HELD_MAX_AGE: then forgotten (counted), and the key goes. */
    quarantine_tick(q, T0 + 700 + QUARANTINE_HELD_MAX_AGE - 1);
    assert_int_equal(info(q, "192.0.2.7", T0 + 700 + QUARANTINE_HELD_MAX_AGE).held, 1);
    quarantine_tick(q, T0 + 701 + QUARANTINE_HELD_MAX_AGE);
    {
        struct quarantine_stats st;

        quarantine_get_stats(q, &st);
        assert_int_equal(st.held, 0);
        assert_int_equal(st.forgotten_held, 1);
        assert_int_equal(st.keys, 0);
    }
    quarantine_free(q);
}

static void test_keys_bounded_and_by_name(void **state)
{
    struct quarantine *q = table(16, 10, 3600);
    struct quarantine_stats st;
    char key[32], ids[4096];

    (void)state;
    for (unsigned i = 0; i < 16; i++) {
        snprintf(key, sizeof(key), "192.0.2.%u", i);
        assert_true(note(q, key, i, T0 + i, false));
    }
    /* Key 0 holds something and key 1's hold is with postsuper: neither is the one to go. */
    take(q, "192.0.2.0", QUARANTINE_HOLD, T0 + 20, ids, sizeof(ids));
    done(q, "192.0.2.0", QUARANTINE_HOLD, ids, false, T0 + 20);
    assert_int_equal(take(q, "192.0.2.1", QUARANTINE_HOLD, T0 + 20, ids, sizeof(ids)), 1);
    assert_true(note(q, "203.0.113.1", 99, T0 + 21, false));
    quarantine_get_stats(q, &st);
    assert_int_equal(st.keys, 16);
    assert_int_equal(st.keys_evicted, 1);
    assert_non_null(info(q, "192.0.2.0", T0 + 21).key);
    assert_non_null(info(q, "192.0.2.1", T0 + 21).key);
    assert_null(info(q, "192.0.2.2", T0 + 21).key); /* the least lately used that may go */
    assert_non_null(info(q, "203.0.113.1", T0 + 21).key);
    /* postsuper's answer for key 1 still finds its IDs. */
    assert_int_equal(done(q, "192.0.2.1", QUARANTINE_HOLD, ids, false, T0 + 22), 1);

    /* The same hash, another name: another key (identity by name, not by hash). */
    assert_true(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.99", 10,
                                h(CULPRIT_CLIENT_ADDRESS, "192.0.2.5"), qid(50), 11, T0 + 22,
                                false));
    assert_int_equal(info(q, "192.0.2.5", T0 + 22).queued, 1);
    {
        struct quarantine_key_info k;

        assert_true(quarantine_info(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.99", 10,
                                    h(CULPRIT_CLIENT_ADDRESS, "192.0.2.5"), T0 + 22, &k));
        assert_string_equal(k.key, "192.0.2.99");
        assert_int_equal(k.queued, 1);
    }
    /* The same name under another kind is another key too. */
    assert_false(quarantine_info(q, CULPRIT_SENDER_DOMAIN, "192.0.2.5", 9,
                                 h(CULPRIT_SENDER_DOMAIN, "192.0.2.5"), T0, &(struct quarantine_key_info){0}));
    quarantine_free(q);
}

static void test_every_key_holding_refuses_new(void **state)
{
    struct quarantine *q = table(16, 10, 3600);
    char key[32], ids[4096];

    (void)state;
    for (unsigned i = 0; i < 16; i++) {
        snprintf(key, sizeof(key), "192.0.2.%u", i);
        assert_true(note(q, key, i, T0, true)); /* held as queued (HOLD answered) */
    }
    assert_false(note(q, "203.0.113.1", 99, T0, false));
    assert_int_equal(take(q, "192.0.2.3", QUARANTINE_HOLD, T0, ids, sizeof(ids)), 0);
    assert_int_equal(info(q, "192.0.2.3", T0).held, 1);
    quarantine_free(q);
}

static void test_not_queue_ids_refused(void **state)
{
    struct quarantine *q = table(16, 10, 3600);
    static const char *const bad[] = {"ALL", "-d", "../../etc/passwd", "14e9aa766d1", "", "x y"};
    struct quarantine_stats st;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.7", 9,
                                     h(CULPRIT_CLIENT_ADDRESS, "192.0.2.7"), bad[i],
                                     strlen(bad[i]), T0, false));
    /* A long-form ID is one. */
    assert_true(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.7", 9,
                                h(CULPRIT_CLIENT_ADDRESS, "192.0.2.7"), "4jjlNN6lMqz1bhJ7", 16, T0,
                                false));
    /* The same message noted twice (two hooks at END-OF-MESSAGE) counts once. */
    assert_true(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.7", 9,
                                h(CULPRIT_CLIENT_ADDRESS, "192.0.2.7"), "4jjlNN6lMqz1bhJ7", 16, T0,
                                true));
    quarantine_get_stats(q, &st);
    assert_int_equal(st.ids, 1);
    assert_int_equal(st.held, 1);
    quarantine_free(q);
}

static void test_restart_in_between(void **state)
{
    struct quarantine *q = table(64, 100, 3600), *again;
    struct quarantine_stats st;
    char ids[4096], text[65536];
    size_t n;

    (void)state;
    for (unsigned i = 1; i <= 4; i++)
        note(q, "192.0.2.7", i, T0 + i, false);
    assert_true(quarantine_note(q, CULPRIT_SASL_USERNAME, "zombie user", 11,
                                h(CULPRIT_SASL_USERNAME, "zombie user"), qid(7), 11, T0, false));
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 10, ids, sizeof(ids)), 4);
    done(q, "192.0.2.7", QUARANTINE_HOLD, ids, false, T0 + 10);
    note(q, "192.0.2.7", 5, T0 + 11, false);
    /* One asked when the daemon stopped, no answer: maybe held, so it comes back held (a
     * release of an ID that was not held does no harm; one forgotten would stay held). */
    assert_int_equal(take(q, "192.0.2.7", QUARANTINE_HOLD, T0 + 12, ids, sizeof(ids)), 1);
    n = quarantine_save(q, text, sizeof(text));
    assert_true(n > 0 && n < sizeof(text));
    assert_int_equal(strlen(text), n);
    quarantine_free(q);

    again = table(64, 100, 3600);
    /* Lines of the other loaders (baselines, fast path) around it are skipped. */
    {
        char mixed[70000];

        snprintf(mixed, sizeof(mixed), "mx global 5 2.5\nfast 1 2 3 client_address:1.2.3.4\n%s"
                 "quarantine-id NOTANID q 1 0\n", text);
        assert_int_equal(quarantine_load(again, mixed, strlen(mixed), T0 + 100), 6);
    }
    quarantine_get_stats(again, &st);
    assert_int_equal(st.ids, 6);
    assert_int_equal(st.held, 5);
    assert_int_equal(st.held_total, 0); /* held by the earlier run */
    assert_int_equal(info(again, "192.0.2.7", T0 + 100).held, 5);
    assert_true(info(again, "192.0.2.7", T0 + 100).held_since == T0 + 10);
    assert_int_equal(info(again, "192.0.2.7", T0 + 100).due, 0);
    {
        struct quarantine_key_info k;

        assert_true(quarantine_info(again, CULPRIT_SASL_USERNAME, "zombie user", 11,
                                    h(CULPRIT_SASL_USERNAME, "zombie user"), T0 + 100, &k));
        assert_int_equal(k.queued, 1);
    }
    /* And a release after the restart frees what the earlier run held. */
    assert_int_equal(take(again, "192.0.2.7", QUARANTINE_RELEASE, T0 + 200, ids, sizeof(ids)), 5);
    /* During the release they are still held, not "being held" too. */
    assert_int_equal(info(again, "192.0.2.7", T0 + 200).held, 5);
    assert_int_equal(info(again, "192.0.2.7", T0 + 200).asked, 0);
    assert_int_equal(done(again, "192.0.2.7", QUARANTINE_RELEASE, ids, false, T0 + 201), 5);
    assert_int_equal(info(again, "192.0.2.7", T0 + 201).released, 5);
    quarantine_free(again);

    /* Saving into too small a buffer leaves out keys, never cuts one: a buffer that holds
     * exactly the first key's lines gets that key and nothing else. */
    q = table(64, 100, 3600);
    note(q, "192.0.2.7", 1, T0, false);
    note(q, "192.0.2.7", 2, T0, false);
    assert_true(quarantine_note(q, CULPRIT_SASL_USERNAME, "zombie user", 11,
                                h(CULPRIT_SASL_USERNAME, "zombie user"), qid(7), 11, T0, false));
    n = quarantine_save(q, text, sizeof(text));
    {
        const char *second = strstr(text + 1, "quarantine-key ");
        size_t first_len;
        char small[4096];

        assert_non_null(second);
        first_len = (size_t)(second - text);
        assert_int_equal(quarantine_save(q, small, first_len + 1), first_len);
        assert_memory_equal(small, text, first_len);
        assert_int_equal(small[first_len], '\0');
        /* One byte less: that key does not fit whole; the other, smaller one may. */
        n = quarantine_save(q, small, first_len);
        assert_true(n < first_len);
        assert_true(n == 0 || (small[n - 1] == '\n' && strstr(text, small) != NULL));
    }
    quarantine_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_and_release),
        cmocka_unit_test(test_failed_run_goes_back),
        cmocka_unit_test(test_bounded_per_key_oldest_forgotten_first),
        cmocka_unit_test(test_lookback),
        cmocka_unit_test(test_keys_bounded_and_by_name),
        cmocka_unit_test(test_every_key_holding_refuses_new),
        cmocka_unit_test(test_not_queue_ids_refused),
        cmocka_unit_test(test_restart_in_between),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
