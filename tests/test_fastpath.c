/*
 * The fast path with a simulated clock: the table alone (limits at their
 * thresholds, windows, learning, the site's usual, fading, save and load,
 * eviction), then through the real traffic and defense modules as the
 * daemon drives them: the cases of the end-to-end test (a bot, a SASL bot,
 * a person writing to 40 domains, a bulk sender, a list server with a
 * history read back after a restart), monitor_only, never_throttle and a
 * release.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "culprits.h"
#include "decision.h"
#include "defense.h"
#include "detector.h"
#include "fastpath.h"
#include "policy_request.h"
#include "throttle.h"
#include "traffic.h"

#include "engine_setup.h"
#include "window_counter.h"

#define T0 1700000000.0
#define DAY 86400.0

static const struct fast_settings defaults = {10.0, 50, 50, 4.0, 7 * DAY, 64, FAST_LEARN_PERIOD,
                                              FAST_SITE_MIN_KEYS};

static uint64_t key_hash(enum culprit_kind kind, const char *key)
{
    return culprit_key_hash(kind, key, strlen(key));
}

static uint64_t domain_hash(const char *prefix, unsigned i)
{
    char name[64];
    int n = snprintf(name, sizeof(name), "%s%u.example", prefix, i);

    return hash64(name, (size_t)n, 1);
}

/* One relay RCPT of a client key to domain prefix+i at time at. */
static void rcpt(struct fast_table *t, const char *client, const char *prefix, unsigned i,
                 double at, struct fast_verdict *v)
{
    fast_note_rcpt(t, CULPRIT_CLIENT_ADDRESS, client, strlen(client),
                   key_hash(CULPRIT_CLIENT_ADDRESS, client), domain_hash(prefix, i), at, v);
}

/* n RCPTs to n distinct domains, spread over seconds; returns the 1-based RCPT that was first
 * over the limit, 0 for none. */
static unsigned burst(struct fast_table *t, const char *client, const char *prefix, unsigned n,
                      double start, double seconds)
{
    struct fast_verdict v;
    unsigned first = 0;

    for (unsigned i = 0; i < n; i++) {
        rcpt(t, client, prefix, i, start + seconds * i / (n ? n : 1), &v);
        if (v.over && first == 0)
            first = i + 1;
    }
    return first;
}

static bool never_stopped(void *ctx, enum culprit_kind kind, const char *key, uint64_t hash)
{
    (void)ctx, (void)kind, (void)key, (void)hash;
    return false;
}

static bool stopped_list(void *ctx, enum culprit_kind kind, const char *key, uint64_t hash)
{
    (void)kind, (void)hash;
    return strcmp(key, (const char *)ctx) == 0;
}

/* Learn: a tick after the learning period of every key. */
static void learn_all(struct fast_table *t, double at)
{
    fast_tick(t, at, never_stopped, NULL);
}

/* ------------------------------------------------------------ the table */

static void test_floor_exactly(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;

    (void)state;
    /* 50 new domains is the floor itself: allowed; the 51st is over. */
    for (unsigned i = 0; i < 50; i++) {
        rcpt(t, "192.0.2.7", "bot", i, T0 + i * 0.01, &v);
        assert_false(v.over);
    }
    assert_int_equal(v.domains, 50);
    assert_int_equal(v.limit_domains, 50);
    assert_false(v.history);
    rcpt(t, "192.0.2.7", "bot", 50, T0 + 0.5, &v);
    assert_true(v.over);
    assert_int_equal(v.domains, 51);
    assert_true(v.span >= 0.5 && v.span <= 0.5 + 10.0 / 16 + 1e-9);
    fast_table_free(t);
}

static void test_person_and_bulk_pass(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;

    (void)state;
    /* One message to 40 people in 40 domains, at once. */
    assert_int_equal(burst(t, "198.51.100.1", "friend", 40, T0, 0.1), 0);
    /* A bulk sender: 2,000 recipients in two domains within the window. */
    for (unsigned i = 0; i < 2000; i++) {
        rcpt(t, "198.51.100.2", "big", i % 2, T0 + i * 0.004, &v);
        assert_false(v.over);
    }
    assert_int_equal(v.domains, 2);
    fast_table_free(t);
}

static void test_repeats_count_once_per_window(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;

    (void)state;
    /* 30 domains, then the same 30 again within the window: still 30. */
    burst(t, "192.0.2.8", "d", 30, T0, 1);
    burst(t, "192.0.2.8", "d", 30, T0 + 2, 1);
    rcpt(t, "192.0.2.8", "d", 0, T0 + 3.5, &v);
    assert_int_equal(v.domains, 30);
    /* A window later the first burst has left it, and the domains are new again. */
    rcpt(t, "192.0.2.8", "d", 1, T0 + 14, &v);
    assert_int_equal(v.domains, 1);
    /* 50 new domains spread over 20 s never have more than about 25 in one window. */
    assert_int_equal(burst(t, "192.0.2.9", "slow", 100, T0, 40), 0);
    fast_table_free(t);
}

static void test_mx_limit(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;
    uint64_t h = key_hash(CULPRIT_CLIENT_ADDRESS, "192.0.2.10");

    (void)state;
    rcpt(t, "192.0.2.10", "m", 0, T0, &v);
    fast_note_mx(t, h, 49, T0 + 0.1);
    rcpt(t, "192.0.2.10", "m", 0, T0 + 0.2, &v);
    assert_int_equal(v.mx, 49);
    assert_false(v.over);
    fast_note_mx(t, h, 1, T0 + 0.3);
    rcpt(t, "192.0.2.10", "m", 0, T0 + 0.4, &v);
    assert_false(v.over); /* 50: the floor */
    fast_note_mx(t, h, 1, T0 + 0.5);
    rcpt(t, "192.0.2.10", "m", 0, T0 + 0.6, &v);
    assert_true(v.over);
    assert_int_equal(v.mx, 51);
    assert_int_equal(v.limit_mx, 50);
    /* MX of a key not tracked goes nowhere. */
    fast_note_mx(t, key_hash(CULPRIT_CLIENT_ADDRESS, "192.0.2.11"), 500, T0 + 0.7);
    rcpt(t, "192.0.2.11", "m", 0, T0 + 0.8, &v);
    assert_int_equal(v.mx, 0);
    fast_table_free(t);
}

static void test_own_level(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;
    struct fast_stats st;

    (void)state;
    /* A list server: a post to 120 domains (it is let through: never_throttle, say). */
    burst(t, "192.0.2.20", "list", 120, T0, 3);
    learn_all(t, T0 + FAST_LEARN_PERIOD + 1);
    fast_get_stats(t, &st);
    assert_int_equal(st.keys_with_history, 1);
    assert_int_equal(st.learned, 1);
    /* Its own usual is 120: the limit is 4 x 120 = 480. */
    assert_int_equal(burst(t, "192.0.2.20", "list2-", 480, T0 + 100, 5), 0);
    rcpt(t, "192.0.2.20", "list2-", 480, T0 + 105.1, &v);
    assert_true(v.history);
    assert_true(fabs(v.usual_domains - 120 * exp2(-(105.1 - 61) / (7 * DAY))) < 1e-3);
    assert_int_equal(v.limit_domains, 480);
    assert_true(v.over);
    fast_table_free(t);
}

static void test_learning_period_and_stopped(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_stats st;
    struct fast_verdict v;

    (void)state;
    burst(t, "192.0.2.30", "a", 40, T0, 1);
    burst(t, "192.0.2.31", "b", 45, T0, 1);
    /* One second before the period is over: nothing learned yet. */
    learn_all(t, T0 + FAST_LEARN_PERIOD - 1);
    fast_get_stats(t, &st);
    assert_int_equal(st.keys_with_history, 0);
    /* A stopped key's period is dropped; the other is learned. */
    fast_tick(t, T0 + FAST_LEARN_PERIOD, stopped_list, (void *)"192.0.2.31");
    fast_get_stats(t, &st);
    assert_int_equal(st.keys_with_history, 1);
    rcpt(t, "192.0.2.31", "b", 0, T0 + 200, &v);
    assert_false(v.history);
    rcpt(t, "192.0.2.30", "a", 0, T0 + 200, &v);
    assert_true(v.history);
    fast_table_free(t);
}

static void test_site_usual(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_stats st;
    struct fast_verdict v;
    char key[32], prefix[16];

    (void)state;
    /* Ten keys with usual levels 10, 12, ... 28: the site's usual is their median, 19, so a
     * key without history may reach 4 x 19 = 76. */
    for (unsigned k = 0; k < FAST_SITE_MIN_KEYS; k++) {
        snprintf(key, sizeof(key), "192.0.2.%u", 40 + k);
        snprintf(prefix, sizeof(prefix), "k%u-", k);
        burst(t, key, prefix, 10 + 2 * k, T0, 1);
    }
    learn_all(t, T0 + FAST_LEARN_PERIOD);
    fast_get_stats(t, &st);
    assert_int_equal(st.keys_with_history, FAST_SITE_MIN_KEYS);
    assert_true(fabs(st.site_domains - 19) < 1e-9);
    assert_int_equal(burst(t, "192.0.2.99", "new", 77, T0 + 100, 2), 77);
    rcpt(t, "192.0.2.99", "new", 0, T0 + 102.5, &v);
    assert_false(v.history);
    assert_int_equal(v.limit_domains, 76);
    fast_table_free(t);

    /* One key fewer: the floor alone (one list server is not the site). */
    t = fast_table_new(&defaults);
    for (unsigned k = 0; k + 1 < FAST_SITE_MIN_KEYS; k++) {
        snprintf(key, sizeof(key), "192.0.2.%u", 40 + k);
        snprintf(prefix, sizeof(prefix), "k%u-", k);
        burst(t, key, prefix, 100 + 2 * k, T0, 1);
    }
    learn_all(t, T0 + FAST_LEARN_PERIOD);
    fast_get_stats(t, &st);
    assert_true(st.site_domains == 0);
    rcpt(t, "192.0.2.98", "n", 0, T0 + 100, &v);
    assert_int_equal(v.limit_domains, 50);
    fast_table_free(t);

    /* fast_site_min_keys = 3: three keys (levels 100, 102, 104) are the site. */
    {
        struct fast_settings s = defaults;

        s.site_min_keys = 3;
        t = fast_table_new(&s);
        for (unsigned k = 0; k < 3; k++) {
            snprintf(key, sizeof(key), "192.0.2.%u", 40 + k);
            snprintf(prefix, sizeof(prefix), "k%u-", k);
            burst(t, key, prefix, 100 + 2 * k, T0, 1);
        }
        learn_all(t, T0 + FAST_LEARN_PERIOD);
        fast_get_stats(t, &st);
        assert_true(fabs(st.site_domains - 102) < 1e-9);
        fast_table_free(t);
    }
}

/* fast_learn_period: a key's peak is learned once its period is over, not before. */
static void test_learn_period_setting(void **state)
{
    struct fast_settings s = defaults;
    struct fast_table *t;
    struct fast_stats st;

    (void)state;
    s.learn_period = 300;
    t = fast_table_new(&s);
    burst(t, "192.0.2.60", "lp", 30, T0, 1);
    fast_tick(t, T0 + 299, never_stopped, NULL);
    fast_get_stats(t, &st);
    assert_int_equal(st.keys_with_history, 0);
    fast_tick(t, T0 + 301, never_stopped, NULL);
    fast_get_stats(t, &st);
    assert_int_equal(st.keys_with_history, 1);
    fast_table_free(t);
}

static void test_fading(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;
    double later = T0 + FAST_LEARN_PERIOD + 7 * DAY;

    (void)state;
    burst(t, "192.0.2.50", "f", 100, T0, 2);
    learn_all(t, T0 + FAST_LEARN_PERIOD);
    /* One half-life later the usual level is half: 200 pass, the 201st is over. */
    assert_int_equal(burst(t, "192.0.2.50", "g", 201, later, 1), 201);
    rcpt(t, "192.0.2.50", "g", 201, later + 1, &v);
    assert_true(fabs(v.usual_domains - 50) < 1e-3);
    assert_int_equal(v.limit_domains, 200);
    fast_table_free(t);

    /* A smaller period does not lower the level below its faded value. */
    t = fast_table_new(&defaults);
    burst(t, "192.0.2.50", "f", 100, T0, 2);
    learn_all(t, T0 + FAST_LEARN_PERIOD);
    rcpt(t, "192.0.2.50", "h", 0, later, &v);
    learn_all(t, later + FAST_LEARN_PERIOD);
    assert_int_equal(burst(t, "192.0.2.50", "i", 200, later + 100, 1), 0);
    rcpt(t, "192.0.2.50", "i", 500, later + 101, &v);
    assert_true(v.over);
    assert_true(v.usual_domains > 49.9 && v.usual_domains <= 50);
    fast_table_free(t);
}

static void test_save_load(void **state)
{
    struct fast_table *t = fast_table_new(&defaults), *u;
    char text[4096];
    size_t n;
    struct fast_verdict v;
    struct fast_stats st;
    const char *junk = "mx global 3 0.5\nfast x y z client_address:1.2.3.4\n"
                       "fast 1 1 1 nosuchkind:abc\nfast -1 2 3 client_address:5.6.7.8\n"
                       "fast 1 2 3 client_address:\nfast nan 1 1 sasl_username:bob\n";

    (void)state;
    burst(t, "192.0.2.60", "l", 120, T0, 3);
    fast_note_rcpt(t, CULPRIT_SASL_USERNAME, "alice smith", 11,
                   key_hash(CULPRIT_SASL_USERNAME, "alice smith"), domain_hash("s", 1), T0, &v);
    learn_all(t, T0 + FAST_LEARN_PERIOD);
    n = fast_save(t, T0 + FAST_LEARN_PERIOD, text, sizeof(text));
    assert_true(n > 0 && n == strlen(text));
    /* Highest first, whole lines. */
    assert_non_null(strstr(text, "fast 120 0 "));
    assert_true(strstr(text, "client_address:192.0.2.60") < strstr(text, "sasl_username:alice smith"));
    /* Too small a buffer: whole lines only. */
    assert_int_equal(fast_save(t, T0 + FAST_LEARN_PERIOD, text, 20), 0);
    n = fast_save(t, T0 + FAST_LEARN_PERIOD, text, sizeof(text));

    /* A restart a day later: the levels come back, faded by a day. */
    u = fast_table_new(&defaults);
    assert_int_equal(fast_load(u, junk, strlen(junk), T0 + DAY), 0);
    assert_int_equal(fast_load(u, text, n, T0 + FAST_LEARN_PERIOD + DAY), 2);
    fast_get_stats(u, &st);
    assert_int_equal(st.keys_with_history, 2);
    /* Saved at T0 + 60 as 120; two days less 56 s later, faded by that. */
    assert_int_equal(burst(u, "192.0.2.60", "l2-", 350, T0 + 2 * DAY, 4), 0);
    rcpt(u, "192.0.2.60", "l3-", 0, T0 + 2 * DAY + 4, &v);
    assert_true(v.history);
    assert_true(fabs(v.usual_domains - 120 * exp2(-(2 * DAY + 4 - FAST_LEARN_PERIOD) / (7 * DAY))) <
                0.01);
    fast_note_rcpt(u, CULPRIT_SASL_USERNAME, "alice smith", 11,
                   key_hash(CULPRIT_SASL_USERNAME, "alice smith"), domain_hash("s", 2),
                   T0 + 2 * DAY, &v);
    assert_true(v.history);
    fast_table_free(t);
    fast_table_free(u);
}

static void test_eviction_keeps_levels(void **state)
{
    struct fast_settings s = defaults;
    struct fast_table *t;
    struct fast_stats st;
    struct fast_verdict v;
    char key[32];

    (void)state;
    s.slots = 16; /* two sets of 8 */
    t = fast_table_new(&s);
    burst(t, "192.0.2.70", "keep", 100, T0, 2);
    learn_all(t, T0 + FAST_LEARN_PERIOD);
    /* A flood of new keys, each sending once: the key with a level stays. */
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "10.0.%u.%u", i / 256, i % 256);
        rcpt(t, key, "flood", i, T0 + 100 + i * 0.001, &v);
    }
    fast_get_stats(t, &st);
    assert_int_equal(st.keys, 16);
    assert_int_equal(st.keys_with_history, 1);
    rcpt(t, "192.0.2.70", "keep", 0, T0 + 200, &v);
    assert_true(v.history);
    fast_table_free(t);
}

/* The wall clock steps back an hour (an NTP step, a restored VM): nothing piles up, a bulk
 * sender's one domain stays at most one new domain, windows go on moving, a bot is still
 * stopped. */
static void test_clock_steps_back(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;
    double at = T0;

    (void)state;
    for (unsigned sec = 0; sec < 60; sec++) {
        if (sec == 30)
            at -= 3600;
        for (unsigned i = 0; i < 10; i++) {
            rcpt(t, "192.0.2.80", "bulk", 0, at + i * 0.1, &v);
            assert_false(v.over);
            assert_true(v.domains <= 1); /* new once; then seen all along, never new again */
        }
        at += 1;
    }
    /* A person's 40 domains, and 40 others 20 s later (the first have left the window). */
    assert_int_equal(burst(t, "192.0.2.81", "p", 40, at, 1), 0);
    assert_int_equal(burst(t, "192.0.2.81", "q", 40, at + 20, 1), 0);
    rcpt(t, "192.0.2.81", "q", 0, at + 21.5, &v);
    assert_int_equal(v.domains, 40);
    assert_int_equal(burst(t, "192.0.2.82", "spam", 200, at + 30, 4), 51);
    fast_table_free(t);
}

/* Years of uptime: the recent domains' ticks are moved along (they would run out after
 * about four years), and a domain is new again once a window has passed. */
static void test_years_of_uptime(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;
    double later = T0 + 5 * 365 * DAY;

    (void)state;
    rcpt(t, "192.0.2.90", "old", 0, T0, &v);
    for (unsigned round = 0; round < 2; round++, later += 6 * 365 * DAY) {
        rcpt(t, "192.0.2.90", "d", 0, later, &v);
        assert_int_equal(v.domains, 1);
        rcpt(t, "192.0.2.90", "d", 0, later + 1, &v);
        assert_int_equal(v.domains, 1);
        rcpt(t, "192.0.2.90", "d", 0, later + 20, &v);
        assert_int_equal(v.domains, 1); /* new again, the earlier one out of the window */
        rcpt(t, "192.0.2.90", "d", 1, later + 20.5, &v);
        assert_int_equal(v.domains, 2);
    }
    fast_table_free(t);
}

static void test_same_hash_other_name(void **state)
{
    struct fast_table *t = fast_table_new(&defaults);
    struct fast_verdict v;
    uint64_t h = key_hash(CULPRIT_CLIENT_ADDRESS, "192.0.2.80");

    (void)state;
    /* Two names given the same hash are two keys: identity is the name. */
    for (unsigned i = 0; i < 50; i++)
        fast_note_rcpt(t, CULPRIT_CLIENT_ADDRESS, "192.0.2.80", 10, h, domain_hash("a", i), T0, &v);
    fast_note_rcpt(t, CULPRIT_CLIENT_ADDRESS, "192.0.2.81", 10, h, domain_hash("a", 99), T0, &v);
    assert_int_equal(v.domains, 1);
    /* And a SASL user of the same name is not the client address. */
    fast_note_rcpt(t, CULPRIT_SASL_USERNAME, "192.0.2.80", 10, h, domain_hash("a", 98), T0, &v);
    assert_int_equal(v.domains, 1);
    fast_table_free(t);
}

static void test_reconfigure_window(void **state)
{
    struct fast_settings s = defaults;
    struct fast_table *t = fast_table_new(&s);
    struct fast_verdict v;

    (void)state;
    burst(t, "192.0.2.90", "w", 40, T0, 1);
    s.window = 60;
    s.min_domains = 30;
    fast_reconfigure(t, &s);
    rcpt(t, "192.0.2.90", "w2-", 0, T0 + 2, &v);
    assert_int_equal(v.domains, 1); /* the windows start again */
    assert_int_equal(v.limit_domains, 30);
    fast_table_free(t);

    /* A learned level follows the window: 60 per 10 s is 180 per 30 s (limit 4 x 180). */
    s = defaults;
    t = fast_table_new(&s);
    burst(t, "192.0.2.91", "l", 60, T0, 5);
    learn_all(t, T0 + FAST_LEARN_PERIOD);
    s.window = 30;
    fast_reconfigure(t, &s);
    assert_int_equal(burst(t, "192.0.2.91", "m", 800, T0 + 100, 20), 721);
    fast_table_free(t);
}

/* ------------------------------------------------------------ through the defense */

struct sim {
    struct config *cfg;
    struct traffic *t;
    struct defense *d;
    double now, next_tick;
    unsigned port, txn;
};

static struct sim *sim_new(const char *overrides)
{
    struct sim *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    engine_open(&s->cfg, &s->t, &s->d, "mx-fast", overrides);
    s->now = T0;
    s->next_tick = T0 + 1;
    s->port = 20000;
    return s;
}

static struct throttle_record *find_key(struct sim *s, enum culprit_kind kind, const char *key)
{
    return throttle_find(defense_throttles(s->d), kind, key, strlen(key), key_hash(kind, key));
}

static void sim_free(struct sim *s)
{
    engine_close(s->cfg, s->t, s->d);
    free(s);
}

/* The daemon's ticks (every second here) up to at. */
static void sim_until(struct sim *s, double at)
{
    while (s->next_tick <= at) {
        struct defense_inputs in = {0};

        s->now = s->next_tick;
        s->next_tick += 1;
        traffic_tick(s->t, s->now);
        in.now = s->now;
        in.missing = "";
        defense_tick(s->d, &in);
    }
    if (at > s->now)
        s->now = at;
}

static enum action_kind ask(struct sim *s, const char *state, const char *client, const char *sasl,
                            const char *instance, const char *rcpt, unsigned rcount)
{
    char text[1024];
    struct policy_parser p;
    struct policy_request req;
    struct traffic_news news = {0};
    struct decision dec;
    int n = snprintf(text, sizeof(text),
                     "request=smtpd_access_policy\nprotocol_state=%s\nclient_address=%s\n"
                     "client_port=%u\nserver_address=192.0.2.1\nserver_port=25\n"
                     "sender=someone@sender.test\nrecipient=%s\nrecipient_count=%u\n"
                     "instance=%s\nsasl_username=%s\n\n",
                     state, client, s->port, rcpt, rcount, instance, sasl);

    policy_parser_init(&p);
    assert_int_equal(policy_parser_next(&p, text, (size_t)n, &req), POLICY_PARSE_REQUEST);
    traffic_request(s->t, &req, s->now, defense_wants_news(s->d) ? &news : NULL);
    defense_decide(s->d, &req, &news, s->now, &dec);
    return dec.kind;
}

/* One message of n recipients in domains prefix+first.., at now; returns the RCPTs refused
 * (and counts the accepted ones in *accepted). */
static unsigned message(struct sim *s, const char *client, const char *sasl, const char *prefix,
                        unsigned first, unsigned n, unsigned *accepted)
{
    char instance[32], to[96];
    unsigned refused = 0, ok = 0;

    snprintf(instance, sizeof(instance), "F%u", s->txn++);
    s->port++;
    for (unsigned i = 0; i < n; i++) {
        snprintf(to, sizeof(to), "user%u@%s%u.example", i, prefix, first + i);
        if (ask(s, "RCPT", client, sasl, instance, to, 0) == AK_DUNNO)
            ok++;
        else
            refused++;
    }
    if (ok > 0)
        ask(s, "END-OF-MESSAGE", client, sasl, instance, "", ok);
    if (accepted != NULL)
        *accepted += ok;
    return refused;
}

/* A bot: messages of 20 recipients in 20 new domains, 16 messages a second, for seconds;
 * returns the recipients accepted before the first refusal (escaped). */
static unsigned bot(struct sim *s, const char *client, const char *sasl, double seconds)
{
    unsigned escaped = 0, accepted = 0;
    bool stopped = false;

    for (unsigned m = 0; m < (unsigned)(seconds * 16); m++) {
        unsigned before = accepted;

        sim_until(s, s->now + 1.0 / 16);
        if (message(s, client, sasl, "spam", m * 20, 20, &accepted) > 0 && !stopped) {
            stopped = true;
            escaped += accepted - before;
        } else if (!stopped) {
            escaped += accepted - before;
        }
    }
    return escaped;
}

static void test_defense_bot_and_others(void **state)
{
    struct sim *s = sim_new("fast_path = yes");
    unsigned accepted = 0, escaped;
    const struct throttle_record *r;
    struct defense_stats st;

    (void)state;
    /* A person: one message to 40 recipients in 40 domains. */
    assert_int_equal(message(s, "198.51.100.5", "", "friend", 0, 40, &accepted), 0);
    /* A bulk sender: 100 messages of 10 recipients in one domain. */
    for (unsigned i = 0; i < 100; i++)
        assert_int_equal(message(s, "198.51.100.6", "", "bulk", 0, 10, &accepted), 0);
    escaped = bot(s, "203.0.113.9", "", 3);
    print_message("  bot escaped %u recipients\n", escaped);
    assert_int_equal(escaped, 50); /* the floor, and not one more */
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, "203.0.113.9");
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_FAST);
    assert_non_null(strstr(r->reason, "fast: client_address:203.0.113.9 sent to 51 new relay domains"));
    assert_non_null(strstr(r->reason, "no history"));
    /* Nobody else. */
    assert_int_equal(throttle_count(defense_throttles(s->d)), 1);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.fast_stops, 1);
    /* A minute later the person and the bulk sender still pass. */
    sim_until(s, s->now + 60);
    assert_int_equal(message(s, "198.51.100.5", "", "friend", 100, 40, &accepted), 0);
    assert_int_equal(message(s, "198.51.100.6", "", "bulk", 0, 10, &accepted), 0);
    sim_free(s);
}

static void test_defense_incident_names_fast_stop(void **state)
{
    struct sim *s = sim_new("detect_loud_after = 5s");
    const struct defense_alert *alert;

    (void)state;
    /* The bot goes on being refused; its refused RCPTs still count as relay domains, the
     * host turns loud, and the incident names the key the fast path stopped before.  (The
     * detector judges once it has seen its first window.) */
    sim_until(s, T0 + 660);
    assert_int_equal(bot(s, "203.0.113.30", "", 20), 50);
    alert = defense_pending_alert(s->d);
    assert_non_null(alert);
    assert_string_equal(alert->event, "start");
    assert_int_equal(alert->culprit_count, 1);
    assert_string_equal(alert->culprits[0], "client_address:203.0.113.30");
    sim_free(s);
}

static void test_defense_sasl_bot_shares_address(void **state)
{
    struct sim *s = sim_new("");
    unsigned accepted = 0;

    (void)state;
    /* mallory and alice behind one address: mallory is stopped by SASL name, alice is not. */
    assert_int_equal(bot(s, "192.0.2.200", "mallory", 2), 50);
    assert_non_null(find_key(s, CULPRIT_SASL_USERNAME, "mallory"));
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, "192.0.2.200"));
    assert_int_equal(message(s, "192.0.2.200", "alice", "friend", 0, 40, &accepted), 0);
    assert_int_equal(accepted, 40);
    sim_free(s);
}

static void test_defense_list_server_history_restart(void **state)
{
    struct sim *s = sim_new("never_throttle_clients = 192.0.2.150");
    char text[65536];
    size_t n;
    unsigned accepted = 0;

    (void)state;
    /* History: two posts to 120 domains, let through by never_throttle_clients. */
    for (int post = 0; post < 2; post++) {
        for (unsigned m = 0; m < 6; m++)
            assert_int_equal(message(s, "192.0.2.150", "", "sub", m * 20, 20, &accepted), 0);
        sim_until(s, s->now + 300);
    }
    n = defense_fast_save(s->d, s->now, text, sizeof(text));
    {
        double level = 0;

        /* 120 learned a few minutes ago, a little faded. */
        assert_int_equal(sscanf(text, "fast %lf ", &level), 1);
        assert_true(level > 119.9 && level <= 120);
        assert_non_null(strstr(text, " client_address:192.0.2.150\n"));
    }
    sim_free(s);

    /* A restart without the exemption: its history read back, its posts pass. */
    s = sim_new("");
    assert_int_equal(defense_fast_load(s->d, text, n, s->now + 3600), 1);
    sim_until(s, s->now + 3600);
    accepted = 0;
    for (unsigned m = 0; m < 6; m++)
        assert_int_equal(message(s, "192.0.2.150", "", "sub", m * 20, 20, &accepted), 0);
    assert_int_equal(accepted, 120);
    assert_int_equal(throttle_count(defense_throttles(s->d)), 0);
    /* Without that history the same post is stopped at the floor. */
    sim_free(s);
    s = sim_new("");
    accepted = 0;
    for (unsigned m = 0; m < 6; m++)
        message(s, "192.0.2.150", "", "sub", m * 20, 20, &accepted);
    assert_int_equal(accepted, 50);
    sim_free(s);
}

/* fast_learn_period and fast_site_min_keys reach the table from the configuration. */
static void test_defense_fast_settings(void **state)
{
    struct sim *s = sim_new("fast_site_min_keys = 2\nfast_learn_period = 10s");
    struct fast_stats fs;

    (void)state;
    assert_int_equal(message(s, "198.51.100.40", "", "a", 0, 20, NULL), 0);
    assert_int_equal(message(s, "198.51.100.41", "", "b", 0, 20, NULL), 0);
    sim_until(s, s->now + 12);
    defense_fast_stats(s->d, &fs);
    assert_int_equal(fs.keys_with_history, 2);
    assert_true(fabs(fs.site_domains - 20) < 1e-9);
    sim_free(s);
}

/* A throttle shorter than the learning period: it is over when the period ends, and the
 * bot's burst is still not learned as its usual (it would let 4 x 640 domains through). */
static void test_defense_short_throttle_not_learned(void **state)
{
    struct sim *s = sim_new("throttle_cooldown = 5s");
    struct defense_stats st;

    (void)state;
    assert_int_equal(bot(s, "203.0.113.30", "", 2), 50);
    sim_until(s, s->now + 2 * FAST_LEARN_PERIOD);
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, "203.0.113.30"));
    assert_int_equal(bot(s, "203.0.113.30", "", 2), 50);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.fast_stops, 2);
    sim_free(s);

    /* A period that begins while the key is throttled and outlives the throttle: the RCPTs
     * refused in it mark it. */
    s = sim_new("throttle_cooldown = 90s\ndetect_loud_after = 1h"); /* the detector stays out */
    assert_int_equal(bot(s, "203.0.113.32", "", 2), 50);
    sim_until(s, s->now + FAST_LEARN_PERIOD + 5);
    assert_int_equal(bot(s, "203.0.113.32", "", 2), 0);
    sim_until(s, s->now + 3 * FAST_LEARN_PERIOD);
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, "203.0.113.32"));
    assert_int_equal(bot(s, "203.0.113.32", "", 2), 50);
    sim_free(s);
}

/* The throttle table full: the stop is not counted, the bot passes (nothing can hold it),
 * and the error is logged once, not at every RCPT. */
static void test_defense_throttle_table_full(void **state)
{
    struct sim *s = sim_new("throttle_slots = 16");
    struct defense_stats st;
    char err[256], member[64];

    (void)state;
    for (unsigned i = 0; i < 16; i++) {
        snprintf(member, sizeof(member), "client_address:198.51.100.%u", 100 + i);
        assert_true(defense_block(s->d, member, 3600, s->now, err, sizeof(err)));
    }
    assert_int_equal(bot(s, "203.0.113.31", "", 1), 16 * 20);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.fast_stops, 0);
    assert_true(st.throttle_full > 100); /* every RCPT over the limit tried */
    sim_free(s);
}

static void test_defense_monitor_only_and_release(void **state)
{
    struct sim *s = sim_new("monitor_only = yes");
    struct defense_stats st;
    struct fast_stats fs;
    char err[256];

    (void)state;
    /* monitor_only: the bot is noted (would throttle), nothing refused. */
    assert_int_equal(bot(s, "203.0.113.20", "", 2), 32 * 20);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.fast_stops, 1);
    assert_true(st.would_have[AK_DEFER] > 0);
    assert_int_equal(st.actions[AK_DEFER], 0);
    sim_free(s);

    /* Released by hand: nothing automatic for release_grace, and the key is learned. */
    s = sim_new("release_grace = 1h");
    assert_int_equal(bot(s, "203.0.113.21", "", 1), 50);
    assert_true(defense_release(s->d, "client_address:203.0.113.21", s->now, err, sizeof(err)));
    assert_int_equal(bot(s, "203.0.113.21", "", 2), 32 * 20);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.fast_stops, 1);
    /* The minute it was stopped in is not learned; a later one, let through, is. */
    sim_until(s, s->now + 2 * FAST_LEARN_PERIOD);
    defense_fast_stats(s->d, &fs);
    assert_int_equal(fs.keys_with_history, 0);
    assert_int_equal(bot(s, "203.0.113.21", "", 2), 32 * 20);
    sim_until(s, s->now + 2 * FAST_LEARN_PERIOD);
    defense_fast_stats(s->d, &fs);
    assert_int_equal(fs.keys_with_history, 1);
    sim_free(s);

    /* fast_path = no: the same bot is not stopped within its first seconds, also while the
     * defence looks at every relay RCPT anyway (another key blocked by hand). */
    s = sim_new("fast_path = no");
    assert_int_equal(bot(s, "203.0.113.22", "", 2), 32 * 20);
    assert_true(defense_block(s->d, "client_address:198.51.100.99", 3600, s->now, err,
                              sizeof(err)));
    assert_true(defense_wants_news(s->d));
    assert_int_equal(bot(s, "203.0.113.23", "", 2), 32 * 20);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.fast_stops, 0);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_floor_exactly),
        cmocka_unit_test(test_person_and_bulk_pass),
        cmocka_unit_test(test_repeats_count_once_per_window),
        cmocka_unit_test(test_mx_limit),
        cmocka_unit_test(test_own_level),
        cmocka_unit_test(test_learning_period_and_stopped),
        cmocka_unit_test(test_site_usual),
        cmocka_unit_test(test_learn_period_setting),
        cmocka_unit_test(test_fading),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_eviction_keeps_levels),
        cmocka_unit_test(test_clock_steps_back),
        cmocka_unit_test(test_years_of_uptime),
        cmocka_unit_test(test_same_hash_other_name),
        cmocka_unit_test(test_reconfigure_window),
        cmocka_unit_test(test_defense_bot_and_others),
        cmocka_unit_test(test_defense_incident_names_fast_stop),
        cmocka_unit_test(test_defense_sasl_bot_shares_address),
        cmocka_unit_test(test_defense_list_server_history_restart),
        cmocka_unit_test(test_defense_fast_settings),
        cmocka_unit_test(test_defense_short_throttle_not_learned),
        cmocka_unit_test(test_defense_throttle_table_full),
        cmocka_unit_test(test_defense_monitor_only_and_release),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
