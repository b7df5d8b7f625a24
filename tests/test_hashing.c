/*
 * Keyed hashing (policyd/engine/window_counter.h) and the tables that must not trust a hash
 * alone: hash64 depends on the key set by hash_set_key and on nothing else, hash64_stable on
 * no key at all (the store reads it back in other processes); a name_set and the throttle
 * table take a name for a listed one only when the names are equal, whatever hash is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "name_set.h"
#include "throttle.h"
#include "window_counter.h"

static const unsigned char key_a[HASH_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8,
                                                    9, 10, 11, 12, 13, 14, 15, 16};
static const unsigned char key_b[HASH_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8,
                                                    9, 10, 11, 12, 13, 14, 15, 17};

static void test_keyed(void **state)
{
    const char *name = "flood.example";
    uint64_t a, b;

    (void)state;
    hash_set_key(key_a);
    a = hash64(name, strlen(name), 0);
    assert_true(hash64(name, strlen(name), 0) == a); /* the same key: the same value */
    hash_set_key(key_b);                              /* one bit of the key */
    b = hash64(name, strlen(name), 0);
    assert_true(b != a);
    hash_set_key(key_a);
    assert_true(hash64(name, strlen(name), 0) == a);
    /* Different names under one key differ, and so do the two halves of the value. */
    assert_true(hash64("flood.examplf", 13, 0) != a);
    assert_true((uint32_t)a != (uint32_t)(a >> 32));
}

static void test_fold_case(void **state)
{
    char upper[700], lower[700];

    (void)state;
    hash_set_key(key_a);
    assert_true(hash64("Example.COM", 11, 1) == hash64("example.com", 11, 0));
    assert_true(hash64("Example.COM", 11, 1) == hash64("example.com", 11, 1));
    assert_true(hash64("Example.COM", 11, 0) != hash64("example.com", 11, 0));
    /* Past the 256-byte buffer the pieces still fold and still count. */
    for (size_t i = 0; i < sizeof(upper); i++) {
        upper[i] = (char)('A' + i % 26);
        lower[i] = (char)('a' + i % 26);
    }
    assert_true(hash64(upper, sizeof(upper), 1) == hash64(lower, sizeof(lower), 1));
    assert_true(hash64(upper, 600, 1) != hash64(upper, 601, 1));
    lower[650] = '#'; /* in the last piece */
    assert_true(hash64(upper, sizeof(upper), 1) != hash64(lower, sizeof(lower), 1));
    lower[650] = upper[650];
    lower[100] = '#'; /* in the first piece: carried on to the end */
    assert_true(hash64(upper, sizeof(upper), 1) != hash64(lower, sizeof(lower), 1));
    assert_true(hash64("", 0, 1) == hash64("", 0, 0));
}

static void test_stable_has_no_key(void **state)
{
    uint64_t v;

    (void)state;
    hash_set_key(key_a);
    v = hash64_stable("Relay.Example", 13, 1);
    hash_set_key(key_b);
    assert_true(hash64_stable("relay.example", 13, 1) == v);
    /* Pinned (SipHash-2-4 of "relay.example" under "relaywatch-store", checked against an
     * implementation of the paper's algorithm): other processes, runs and hosts read it back. */
    assert_true(v == UINT64_C(0xaa1992b0c027c759));
    assert_true(v != hash64("relay.example", 13, 1));
}

static void test_name_set_compares_names(void **state)
{
    char *users[] = {"alice", "Bob", "carol@example.org"};
    char *domains[] = {"Local.Example", "other.example"};
    struct name_set *s, *d;

    (void)state;
    hash_set_key(key_a);
    s = name_set_new(users, 3, 0);
    d = name_set_new(domains, 2, 1);
    assert_int_equal(name_set_count(s), 3);
    assert_true(name_set_has(s, "alice", 5));
    assert_true(name_set_has(s, "carol@example.org", 17));
    assert_false(name_set_has(s, "bob", 3)); /* user names as written */
    assert_false(name_set_has(s, "alic", 4));
    assert_false(name_set_has(s, "alice\0", 6));
    /* A name given with a listed name's hash is still not that name. */
    assert_true(name_set_has_hashed(s, hash64("alice", 5, 0), "alice", 5));
    assert_false(name_set_has_hashed(s, hash64("alice", 5, 0), "mallory", 7));
    assert_false(name_set_has_hashed(s, hash64("alice", 5, 0), "alicf", 5));
    /* Domains fold. */
    assert_true(name_set_has(d, "local.example", 13));
    assert_true(name_set_has(d, "LOCAL.EXAMPLE", 13));
    assert_true(name_set_has_hashed(d, hash64("OTHER.example", 13, 1), "OTHER.example", 13));
    assert_false(name_set_has_hashed(d, hash64("other.example", 13, 1), "other.exampl3", 13));
    assert_false(name_set_has(NULL, "alice", 5));
    name_set_free(s);
    name_set_free(d);
}

static void test_throttle_compares_keys(void **state)
{
    struct throttle_table *t = throttle_table_new(8);
    struct throttle_record r;
    uint64_t h = culprit_key_hash(CULPRIT_CLIENT_ADDRESS, "198.51.100.1", 12);

    (void)state;
    memset(&r, 0, sizeof(r));
    r.kind = CULPRIT_CLIENT_ADDRESS;
    snprintf(r.key, sizeof(r.key), "198.51.100.1");
    r.changed = 100;
    assert_true(throttle_put(t, &r, false));
    assert_non_null(throttle_find(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.1", 12, h));
    /* Another key handed in with this key's hash: not this key's record. */
    assert_null(throttle_find(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.2", 12, h));
    assert_null(throttle_find(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.10", 13, h));
    assert_null(throttle_find(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.", 11, h));
    assert_null(throttle_find(t, CULPRIT_SASL_USERNAME, "198.51.100.1", 12, h));
    throttle_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyed),
        cmocka_unit_test(test_fold_case),
        cmocka_unit_test(test_stable_has_no_key),
        cmocka_unit_test(test_name_set_compares_names),
        cmocka_unit_test(test_throttle_compares_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
