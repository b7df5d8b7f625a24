/* Unit tests of the counting parts: windows, distinct counts, culprits, traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "defense.h"
#include "culprits.h"
#include "http.h"
#include "json_text.h"
#include "policy_request.h"
#include "status.h"
#include "store.h"
#include "server.h"
#include "traffic.h"
#include "window_counter.h"

static const double default_seconds[] = {60, 600, 3600};
static const char *const default_names[] = {"1m", "10m", "1h"};

static void three_windows(struct window_set *ws)
{
    window_set_init(ws, default_seconds, default_names, 3, 60);
}

static void test_window_expiry(void **state)
{
    struct window_set ws;
    struct window_counter *c;
    double t0 = 1699999200.0; /* a multiple of 3600: a bucket boundary for all three widths */

    (void)state;
    three_windows(&ws);
    c = window_counter_new(&ws);
    window_counter_add(c, &ws, t0 + 0.2, 5);
    window_counter_add(c, &ws, t0 + 30, 2);
    assert_int_equal(window_counter_sum(c, &ws, 0, t0 + 30), 7);
    /* The 1m window covers the 60 one-second buckets up to now. */
    assert_int_equal(window_counter_sum(c, &ws, 0, t0 + 59.9), 7);
    assert_int_equal(window_counter_sum(c, &ws, 0, t0 + 60.0), 2); /* bucket of t0 is out */
    assert_int_equal(window_counter_sum(c, &ws, 0, t0 + 90.0), 0);
    assert_int_equal(window_counter_sum(c, &ws, 1, t0 + 90.0), 7);
    /* 10-second buckets: the one holding t0 + 30 is in until t0 + 640. */
    assert_int_equal(window_counter_sum(c, &ws, 1, t0 + 600.0), 2);
    assert_int_equal(window_counter_sum(c, &ws, 1, t0 + 640.0), 0);
    assert_int_equal(window_counter_sum(c, &ws, 2, t0 + 3599.0), 7);
    assert_int_equal(window_counter_sum(c, &ws, 2, t0 + 3600.0), 0);
    assert_int_equal(window_counter_total(c), 7);
    /* Adding after a long gap clears the old ring. */
    window_counter_add(c, &ws, t0 + 100000, 1);
    for (unsigned w = 0; w < 3; w++)
        assert_int_equal(window_counter_sum(c, &ws, w, t0 + 100000), 1);
    /* Reading a time before the newest bucket counts only what is not newer. */
    window_counter_add(c, &ws, t0 + 100010, 4);
    assert_int_equal(window_counter_sum(c, &ws, 0, t0 + 100005), 1);
    /* A clock step back within the ring lands in its bucket; further back it is dropped. */
    window_counter_add(c, &ws, t0 + 100003, 2);
    assert_int_equal(window_counter_sum(c, &ws, 0, t0 + 100010), 7);
    window_counter_add(c, &ws, t0 + 50000, 100);
    assert_int_equal(window_counter_sum(c, &ws, 2, t0 + 100010), 7);
    window_counter_free(c);
}

static void test_window_saturates(void **state)
{
    struct window_set ws;
    struct window_counter *c;

    (void)state;
    three_windows(&ws);
    c = window_counter_new(&ws);
    window_counter_add(c, &ws, 1000.5, UINT32_MAX - 1);
    window_counter_add(c, &ws, 1000.6, 5);
    assert_int_equal(window_counter_sum(c, &ws, 0, 1000.7), UINT32_MAX);
    window_counter_add(c, &ws, 1001.5, 3); /* the next bucket is not saturated */
    assert_true(window_counter_sum(c, &ws, 0, 1001.7) == (uint64_t)UINT32_MAX + 3);
    window_counter_free(c);
}

static void test_window_sliding_per_second(void **state)
{
    struct window_set ws;
    struct window_counter *c;

    (void)state;
    three_windows(&ws);
    c = window_counter_new(&ws);
    /* One event per second for 10 minutes: the 1m window always holds 60 (59 at a boundary's
     * first instant is not possible: reading at .5 s into each second). */
    for (int s = 0; s < 600; s++)
        window_counter_add(c, &ws, 5000.5 + s, 1);
    assert_int_equal(window_counter_sum(c, &ws, 0, 5599.5), 60);
    assert_int_equal(window_counter_sum(c, &ws, 1, 5599.5), 600);
    assert_int_equal(window_counter_sum(c, &ws, 2, 5599.5), 600);
    window_counter_free(c);
}

static void test_window_restart(void **state)
{
    struct window_set ws;
    struct window_counter *c;
    struct distinct_counter *d;
    struct window_clock clk;

    (void)state;
    three_windows(&ws);
    c = window_counter_new(&ws);
    d = distinct_counter_new(&ws, 6);
    for (int i = 0; i < 30; i++) {
        window_counter_add(c, &ws, 2000.5 + i, 1);
        distinct_counter_add(d, &ws, 2000.5 + i, hash64((const char *)&i, sizeof(i), 0));
    }
    /* Handed to another key at 2040: what came before is gone from every window. */
    window_clock_set(&clk, &ws, 2040.2);
    window_counter_restart_at(c, &ws, &clk);
    distinct_counter_restart_at(d, &ws, &clk);
    for (unsigned w = 0; w < 3; w++) {
        assert_int_equal(window_counter_sum(c, &ws, w, 2040.3), 0);
        assert_int_equal(distinct_counter_estimate(d, &ws, w, 2040.3), 0);
    }
    window_counter_add(c, &ws, 2040.4, 2);
    window_counter_add(c, &ws, 2075.0, 3);
    distinct_counter_add(d, &ws, 2075.0, 42);
    assert_int_equal(window_counter_sum(c, &ws, 2, 2075.0), 5);
    assert_int_equal(window_counter_sum(c, &ws, 0, 2100.5), 3); /* 2040 has left the 1m window */
    assert_int_equal(distinct_counter_estimate(d, &ws, 2, 2075.0), 1);
    assert_int_equal(window_counter_total(c), 5);
    window_counter_free(c);
    distinct_counter_free(d);
}

static void test_distinct_counts(void **state)
{
    struct window_set ws;
    struct distinct_counter *d;
    char name[64];
    uint64_t est;

    (void)state;
    three_windows(&ws);
    d = distinct_counter_new(&ws, 12);
    assert_int_equal(distinct_counter_estimate(d, &ws, 0, 100.0), 0);
    for (int i = 0; i < 5; i++) {
        int n = snprintf(name, sizeof(name), "domain%d.example", i);
        distinct_counter_add(d, &ws, 100.0, hash64(name, (size_t)n, 1));
        distinct_counter_add(d, &ws, 100.0, hash64(name, (size_t)n, 1)); /* repeats */
    }
    /* Case does not make a different domain. */
    distinct_counter_add(d, &ws, 100.0, hash64("DOMAIN0.EXAMPLE", 15, 1));
    assert_int_equal(distinct_counter_estimate(d, &ws, 0, 100.0), 5);
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(name, sizeof(name), "d%d.example", i);
        distinct_counter_add(d, &ws, 110.0, hash64(name, (size_t)n, 1));
    }
    est = distinct_counter_estimate(d, &ws, 1, 110.0);
    assert_true(est > 20005 * 0.95 && est < 20005 * 1.05);
    /* Window expiry: after a minute only later additions count. */
    assert_int_equal(distinct_counter_estimate(d, &ws, 0, 171.0), 0);
    assert_true(distinct_counter_estimate(d, &ws, 1, 171.0) == est);
    distinct_counter_free(d);
}

/* culprit_add at time now, with the clock computed for it. */
static void add_at(struct culprit_table *t, const struct window_set *ws, enum culprit_kind kind,
                   const char *key, size_t len, double now, uint32_t messages, uint32_t recipients,
                   uint64_t domain_hash)
{
    struct window_clock clk;

    window_clock_set(&clk, ws, now);
    culprit_add(t, kind, key, len, culprit_key_hash(kind, key, len), now, &clk, messages, recipients,
                domain_hash);
}

static void test_culprits_heavy_hitters_among_a_million(void **state)
{
    struct window_set ws;
    struct culprit_table *t;
    struct culprit_view top[5];
    char key[32];
    const char *heavy[] = {"spammer1", "spammer2", "spammer3"};
    unsigned n;

    (void)state;
    three_windows(&ws);
    t = culprit_table_new(&ws, 100);
    /* 1,000,000 keys sending one message to one recipient each; three keys share one in every
     * 10 requests, so each sends more than 1/slots of the traffic (Space-Saving's bound). */
    for (int i = 0; i < 1000000; i++) {
        int len = snprintf(key, sizeof(key), "user%d", i);
        double now = 10000.0 + i / 1000000.0;

        add_at(t, &ws, CULPRIT_SASL_USERNAME, key, (size_t)len, now, 1, 1,
                    hash64(key, (size_t)len, 1));
        if (i % 10 == 0) {
            const char *h = heavy[(i / 10) % 3];
            char domain[32];
            int dl = snprintf(domain, sizeof(domain), "dom%d.test", (i / 10) % 40);

            add_at(t, &ws, CULPRIT_SASL_USERNAME, h, strlen(h), now, 0, 1,
                        hash64(domain, (size_t)dl, 1));
        }
    }
    n = culprit_top(t, 2, 10001.0, top, 5);
    assert_int_equal(n, 5);
    for (int i = 0; i < 3; i++) {
        /* 100,000 heavy requests in all, shared round-robin: 33334, 33333, 33333. */
        uint64_t want = i < 1 ? 33334 : 33333;
        int found = 0;
        for (int j = 0; j < 3; j++)
            if (strcmp(top[j].key, heavy[i]) == 0) {
                assert_int_equal(top[j].recipients, want);
                assert_int_equal(top[j].messages, 0);
                assert_true(top[j].exact);
                assert_true(top[j].domains >= 40 * 0.75 && top[j].domains <= 40 * 1.25);
                found = 1;
            }
        assert_true(found);
    }
    /* The rest are one-recipient keys with inherited error: not exact. */
    assert_true(top[3].recipients <= 2);
    assert_false(top[3].exact);
    assert_string_equal(culprit_kind_name(top[0].kind), "sasl_username");
    culprit_table_free(t);
}

/* A plain Space-Saving summary to hold the stream summary to: the newcomer takes the entry
 * with the lowest score, of those the one that has had its score longest. */
struct reference_entry {
    char key[16];
    uint64_t score, error, since; /* since: when it got its score */
};

static void reference_add(struct reference_entry *r, unsigned slots, unsigned *used,
                          const char *key, uint64_t w, uint64_t clock)
{
    unsigned i, low = 0;

    for (i = 0; i < *used; i++)
        if (strcmp(r[i].key, key) == 0)
            break;
    if (i == *used && *used < slots) {
        (*used)++;
        snprintf(r[i].key, sizeof(r[i].key), "%s", key);
        r[i].score = r[i].error = 0;
    } else if (i == *used) {
        for (i = 1; i < slots; i++)
            if (r[i].score < r[low].score ||
                (r[i].score == r[low].score && r[i].since < r[low].since))
                low = i;
        i = low;
        snprintf(r[i].key, sizeof(r[i].key), "%s", key);
        r[i].error = r[i].score;
    }
    r[i].score += w;
    r[i].since = clock;
}

enum { SUMMARY_SLOTS = 6, SUMMARY_KEYS = 30 };

struct summary_run {
    struct window_set ws;
    struct culprit_table *t;
    struct reference_entry ref[SUMMARY_SLOTS];
    unsigned used;
    uint64_t rnd, clock, total;
};

/* The table and the reference hold the same keys, scores and errors, and (before any
 * halving) the scores add up to everything counted, Space-Saving's invariant. */
static void summary_compare(struct summary_run *r, bool halved)
{
    struct culprit_view top[SUMMARY_SLOTS + 1];
    unsigned n = culprit_top(r->t, 2, 500.0, top, SUMMARY_SLOTS + 1);
    uint64_t sum = 0;

    assert_int_equal(n, r->used);
    for (unsigned i = 0; i < n; i++) {
        unsigned j;
        for (j = 0; j < r->used && strcmp(r->ref[j].key, top[i].key) != 0; j++)
            ;
        assert_true(j < r->used);
        assert_int_equal(top[i].score, r->ref[j].score);
        assert_int_equal(top[i].error, r->ref[j].error);
        sum += top[i].score;
    }
    if (!halved)
        assert_int_equal(sum, r->total);
}

static void summary_updates(struct summary_run *r, unsigned updates, bool halved)
{
    for (unsigned u = 1; u <= updates; u++) {
        char key[16];
        unsigned k, w;

        r->rnd = r->rnd * 6364136223846793005u + 1442695040888963407u;
        /* Skewed: low key numbers come far more often. */
        k = (unsigned)((r->rnd >> 33) % SUMMARY_KEYS);
        k = k % (1 + (unsigned)((r->rnd >> 20) % SUMMARY_KEYS));
        w = 1 + (unsigned)((r->rnd >> 50) % 4);
        snprintf(key, sizeof(key), "k%u", k);
        add_at(r->t, &r->ws, CULPRIT_SASL_USERNAME, key, strlen(key), 500.0, w - w / 2, w / 2, 0);
        reference_add(r->ref, SUMMARY_SLOTS, &r->used, key, w, ++r->clock);
        r->total += w;
        if (u % 97 == 0 || u == updates || halved)
            summary_compare(r, halved);
    }
}

static int compare_reference_age(const void *a, const void *b)
{
    const struct reference_entry *x = a, *y = b;

    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return x->since < y->since ? -1 : x->since > y->since;
}

/* The table's scores halve at the tick of time now; the reference's halve too, entries of
 * equal halves ordered by their scores before, then by age. */
static void summary_halve(struct summary_run *r, double now)
{
    culprit_tick(r->t, now);
    qsort(r->ref, r->used, sizeof(r->ref[0]), compare_reference_age);
    for (unsigned i = 0; i < r->used; i++) {
        r->ref[i].score >>= 1;
        r->ref[i].error >>= 1;
        r->ref[i].since = ++r->clock;
    }
    summary_compare(r, true);
}

/* Random weights and few slots: the stream summary keeps exactly the entries, scores and
 * errors a plain Space-Saving summary keeps, through every shape of bucket list (scores
 * all different, raises past several buckets, a bucket emptied); halving merges equal
 * scores into one bucket, the lower ones' entries counting as older, and it goes on
 * agreeing afterwards. */
static void test_culprits_stream_summary_is_space_saving(void **state)
{
    struct summary_run r = {.rnd = 12345};

    (void)state;
    three_windows(&r.ws);
    r.t = culprit_table_new(&r.ws, SUMMARY_SLOTS);
    summary_updates(&r, 20000, false);
    culprit_tick(r.t, 500.0);
    summary_halve(&r, 500.0 + 3600.0);
    /* Halving often keeps scores low, so that halves meet and the lowest are shared. */
    for (int round = 0; round < 300; round++) {
        summary_updates(&r, 1 + round % 40, true);
        summary_halve(&r, 500.0 + 3600.0 * (round + 2));
    }
    culprit_table_free(r.t);
}

static void test_culprits_kinds_and_decay(void **state)
{
    struct window_set ws;
    struct culprit_table *t;
    struct culprit_view top[4];
    unsigned n;

    (void)state;
    three_windows(&ws);
    t = culprit_table_new(&ws, 2);
    /* The same text under two kinds is two keys. */
    add_at(t, &ws, CULPRIT_SASL_USERNAME, "x", 1, 100.0, 1, 3, 0);
    add_at(t, &ws, CULPRIT_CLIENT_ADDRESS, "x", 1, 100.0, 1, 1, 0);
    n = culprit_top(t, 0, 100.0, top, 4);
    assert_int_equal(n, 2);
    assert_int_equal(top[0].kind, CULPRIT_SASL_USERNAME);
    assert_int_equal(top[0].recipients, 3);
    assert_int_equal(top[1].kind, CULPRIT_CLIENT_ADDRESS);
    /* A third key takes the lowest slot and inherits its score as error. */
    add_at(t, &ws, CULPRIT_SASL_USERNAME, "y", 1, 101.0, 0, 1, 0);
    n = culprit_top(t, 0, 101.0, top, 4);
    assert_int_equal(n, 2);
    assert_string_equal(top[1].key, "y");
    assert_int_equal(top[1].error, 2);
    assert_false(top[1].exact);
    /* Figures leave the window; scores halve once per longest window. */
    assert_int_equal(culprit_top(t, 0, 200.0, top, 4), 0);
    culprit_tick(t, 200.0);
    culprit_tick(t, 200.0 + 3600.0);
    n = culprit_top(t, 2, 200.0, top, 4);
    assert_int_equal(top[0].score, 2); /* 5 >> 1 */
    culprit_table_free(t);
}

/* ------------------------------------------------------------ traffic */

struct fake_request {
    char text[2048];
    size_t len;
};

/* Build and parse a request from "name=value" pairs; the text lives in fr. */
static void make_request(struct fake_request *fr, struct policy_request *req, const char *state,
                         const char *port, const char *instance, const char *recipient,
                         const char *extra)
{
    struct policy_parser p;

    fr->len = (size_t)snprintf(fr->text, sizeof(fr->text),
                               "request=smtpd_access_policy\nprotocol_state=%s\n"
                               "client_address=198.51.100.9\nclient_port=%s\n"
                               "server_address=127.0.0.1\nserver_port=25\n"
                               "sender=Mallory@Sender.Example\ninstance=%s\nrecipient=%s\n%s\n",
                               state, port, instance, recipient, extra);
    policy_parser_init(&p);
    assert_int_equal(policy_parser_next(&p, fr->text, fr->len, req), POLICY_PARSE_REQUEST);
}

static void send_request(struct traffic *t, double now, const char *state, const char *port,
                         const char *instance, const char *recipient, const char *extra)
{
    struct fake_request fr;
    struct policy_request req;

    make_request(&fr, &req, state, port, instance, recipient, extra);
    traffic_request(t, &req, now, NULL);
}

static struct config *counting_config(const char *overrides)
{
    struct config *c = config_new();
    char buf[512];

    snprintf(buf, sizeof(buf), "local_domains = local.test\ntransaction_timeout = 30s\n%s",
             overrides);
    assert_int_equal(config_parse_buffer(c, buf, strlen(buf), "test", NULL, NULL), 0);
    return c;
}

static void test_traffic_end_of_message_mode(void **state)
{
    struct config *cfg = counting_config("");
    struct traffic *t = traffic_new(cfg);
    double now = 50000.0;

    (void)state;
    /* Session 1, CONNECT seen; message 1: three RCPTs, one refused later, two accepted. */
    send_request(t, now, "CONNECT", "4000", "", "", "");
    send_request(t, now, "RCPT", "4000", "a1.1.1.0", "x@relay1.test", "sasl_username=alice\n");
    send_request(t, now, "RCPT", "4000", "a1.1.1.0", "y@RELAY2.test", "sasl_username=alice\n");
    send_request(t, now, "RCPT", "4000", "a1.1.1.0", "z@local.test", "sasl_username=alice\n");
    send_request(t, now, "END-OF-MESSAGE", "4000", "a1.1.1.0", "",
                 "recipient_count=2\nsasl_username=alice\n");
    /* Message 2 on the same session: every recipient refused, no END-OF-MESSAGE. */
    send_request(t, now + 1, "RCPT", "4000", "a1.2.1.1", "p@Local.Test", "");
    send_request(t, now + 1, "RCPT", "4000", "a1.2.1.1", "q@relay3.test", "");
    assert_int_equal(traffic_open_transactions(t), 1);
    /* Message 3 moves the session on, which settles message 2. */
    send_request(t, now + 2, "RCPT", "4000", "a1.3.1.2", "r@relay1.test", "");
    assert_int_equal(traffic_open_transactions(t), 1);
    send_request(t, now + 2, "END-OF-MESSAGE", "4000", "a1.3.1.2", "", "recipient_count=1\n");
    /* Session 2 without CONNECT (smtpd_delay_reject = yes); it quits after RCPT. */
    send_request(t, now + 3, "RCPT", "4001", "b2.1.1.0", "s@relay4.test", "");
    assert_true(traffic_counts_at_end_of_message(t));

    assert_int_equal(traffic_total(t, TC_SESSIONS), 2);
    assert_int_equal(traffic_total(t, TC_MESSAGES), 2);
    assert_int_equal(traffic_total(t, TC_RECIPIENTS), 7);
    assert_int_equal(traffic_total(t, TC_RECIPIENTS_INBOUND), 2);
    assert_int_equal(traffic_total(t, TC_RECIPIENTS_RELAY), 5);
    assert_int_equal(traffic_total(t, TC_MESSAGES_RELAY), 2);
    /* from= lines: 2 queued + 1 refused in message 1 + 2 refused in message 2. */
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 5);
    /* The abandoned transaction of session 2 is settled after transaction_timeout. */
    traffic_tick(t, now + 20);
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 5);
    /* A tick looks at a quarter of the default 65536 slots: a full pass takes four. */
    for (int i = 0; i < 4; i++)
        traffic_tick(t, now + 40);
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 6);
    assert_int_equal(traffic_open_transactions(t), 0);
    assert_int_equal(traffic_window(t, TC_SESSIONS, 0, now + 40), 2);
    assert_int_equal(traffic_window(t, TC_SESSIONS, 0, now + 70), 0);
    assert_int_equal(traffic_relay_domains(t, 0, now + 40), 4);

    {
        struct culprit_view v[4];
        unsigned n = traffic_culprits(t, false, 1, now + 40, v, 4);
        assert_int_equal(n, 2);
        /* Without SASL the client address is the key: messages 2 and 3, session 2. */
        assert_string_equal(v[0].key, "198.51.100.9");
        assert_int_equal(v[0].kind, CULPRIT_CLIENT_ADDRESS);
        assert_int_equal(v[0].recipients, 3);
        assert_int_equal(v[0].messages, 1);
        assert_string_equal(v[1].key, "alice");
        assert_int_equal(v[1].kind, CULPRIT_SASL_USERNAME);
        assert_int_equal(v[1].recipients, 2);
        assert_int_equal(v[1].messages, 1);
        assert_int_equal(v[1].domains, 2);
        n = traffic_culprits(t, true, 1, now + 40, v, 4);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].key, "sender.example");
        assert_int_equal(v[0].recipients, 5);
    }
    traffic_free(t);
    config_free(cfg);
}

static void test_traffic_sessions(void **state)
{
    struct config *cfg = counting_config("session_timeout = 60s\nsession_slots = 64\n");
    struct traffic *t = traffic_new(cfg);
    double now = 70000.0;
    char port[16];

    (void)state;
    send_request(t, now, "RCPT", "5000", "10.1.1.0", "a@relay.test", "");
    send_request(t, now + 1, "RCPT", "5000", "10.1.1.0", "b@relay.test", "");
    assert_int_equal(traffic_total(t, TC_SESSIONS), 1);
    /* The same client port in another smtpd process (pid 0x11): a new session. */
    send_request(t, now + 2, "RCPT", "5000", "11.1.1.0", "a@relay.test", "");
    assert_int_equal(traffic_total(t, TC_SESSIONS), 2);
    /* A CONNECT always starts one. */
    send_request(t, now + 3, "CONNECT", "5000", "", "", "");
    assert_int_equal(traffic_total(t, TC_SESSIONS), 3);
    /* Quiet for longer than session_timeout: the next request is a new session. */
    send_request(t, now + 100, "RCPT", "5000", "", "a@relay.test", "");
    assert_int_equal(traffic_total(t, TC_SESSIONS), 4);
    /* Far more sessions than slots: each counts once, the table stays its size. */
    for (int i = 0; i < 10000; i++) {
        snprintf(port, sizeof(port), "%d", 10000 + i);
        send_request(t, now + 200, "RCPT", port, "20.1.1.0", "a@relay.test", "");
        send_request(t, now + 200, "RCPT", port, "20.1.1.0", "b@relay.test", "");
    }
    assert_int_equal(traffic_total(t, TC_SESSIONS), 10004);
    traffic_free(t);
    config_free(cfg);
}

/* More open transactions than the tables hold: those pushed out are counted as evicted and
 * never as refused; only those that then time out count their RCPTs as refused. */
static void test_traffic_evictions_are_not_refusals(void **state)
{
    struct config *cfg =
        counting_config("session_slots = 64\ncount_messages_at = end-of-message\n");
    struct traffic *t = traffic_new(cfg);
    double now = 90000.0;
    char port[16], instance[32];
    unsigned open;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        snprintf(port, sizeof(port), "%d", 30000 + i);
        snprintf(instance, sizeof(instance), "%x.1.1.0", 0x100 + i);
        send_request(t, now, "RCPT", port, instance, "a@relay.test", "");
    }
    open = traffic_open_transactions(t);
    assert_int_equal(traffic_total(t, TC_SESSIONS), 1000);
    assert_int_equal(traffic_total(t, TC_RECIPIENTS), 1000);
    assert_int_equal(traffic_total(t, TC_REFUSED), 0);
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 0);
    assert_true(open > 0 && open <= 64);
    assert_int_equal(traffic_transactions_evicted(t) + open, 1000);
    assert_true(traffic_sessions_evicted(t) >= 1000 - 64);
    /* An evicted transaction that reaches END-OF-MESSAGE after all refuses nothing. */
    send_request(t, now + 1, "END-OF-MESSAGE", "30000", "100.1.1.0", "", "recipient_count=1\n");
    assert_int_equal(traffic_total(t, TC_REFUSED), 0);
    assert_int_equal(traffic_total(t, TC_MESSAGES), 1);
    open = traffic_open_transactions(t); /* its new slot may have pushed one more out */
    assert_int_equal(traffic_transactions_evicted(t) + open, 1000);
    /* Those still in the table time out (transaction_timeout = 30s): their RCPTs were refused. */
    traffic_tick(t, now + 40);
    assert_int_equal(traffic_open_transactions(t), 0);
    assert_int_equal(traffic_total(t, TC_REFUSED), open);
    traffic_free(t);
    config_free(cfg);
}

static void test_traffic_rcpt_mode(void **state)
{
    struct config *cfg = counting_config("");
    struct traffic *t = traffic_new(cfg);

    (void)state;
    /* No END-OF-MESSAGE hook: a message counts at its first RCPT. */
    send_request(t, 100.0, "RCPT", "6000", "30.1.1.0", "a@relay.test", "");
    send_request(t, 100.0, "RCPT", "6000", "30.1.1.0", "b@relay.test", "");
    send_request(t, 100.0, "RCPT", "6000", "30.1.1.1", "c@local.test", "");
    assert_false(traffic_counts_at_end_of_message(t));
    assert_int_equal(traffic_total(t, TC_MESSAGES), 2);
    assert_int_equal(traffic_total(t, TC_MESSAGES_RELAY), 1);
    assert_int_equal(traffic_total(t, TC_MESSAGES_INBOUND), 1);
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 2);
    traffic_free(t);
    config_free(cfg);
    /* Told that the END-OF-MESSAGE hook is there, a first transaction abandoned after a restart
     * is not a message. */
    cfg = counting_config("count_messages_at = end-of-message\n");
    t = traffic_new(cfg);
    send_request(t, 100.0, "RCPT", "6000", "31.1.1.0", "a@relay.test", "");
    send_request(t, 100.0, "RCPT", "6000", "31.1.1.1", "b@relay.test", "");
    send_request(t, 100.0, "END-OF-MESSAGE", "6000", "31.1.1.1", "", "recipient_count=1\n");
    assert_int_equal(traffic_total(t, TC_MESSAGES), 1);
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 2); /* 1 queued + 1 abandoned RCPT */
    /* VRFY, ETRN say nothing about mail. */
    send_request(t, 100.0, "VRFY", "6001", "", "", "");
    assert_int_equal(traffic_total(t, TC_SESSIONS), 1);
    traffic_free(t);
    config_free(cfg);
}

static void test_traffic_double_hook_and_slow_data(void **state)
{
    struct config *cfg = counting_config("session_timeout = 60s\n");
    struct traffic *t = traffic_new(cfg);
    double now = 90000.0;

    (void)state;
    /* Two hooks ask about each RCPT: each recipient counts once. */
    send_request(t, now, "RCPT", "8000", "50.1.1.0", "a@relay.test", "");
    send_request(t, now, "RCPT", "8000", "50.1.1.0", "a@relay.test", "");
    send_request(t, now, "RCPT", "8000", "50.1.1.0", "b@relay.test", "");
    send_request(t, now, "RCPT", "8000", "50.1.1.0", "b@relay.test", "");
    send_request(t, now, "END-OF-MESSAGE", "8000", "50.1.1.0", "", "recipient_count=2\n");
    assert_int_equal(traffic_total(t, TC_RECIPIENTS), 2);
    assert_int_equal(traffic_total(t, TC_REFUSED), 0);
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 1);
    /* A DATA phase longer than session_timeout and transaction_timeout (30 s here): the
     * END-OF-MESSAGE is still the same session, and its refusals are not counted twice. */
    send_request(t, now + 1, "RCPT", "8000", "50.1.1.1", "c@relay.test", "");
    send_request(t, now + 1, "RCPT", "8000", "50.1.1.1", "d@relay.test", "");
    for (int i = 0; i < 4; i++)
        traffic_tick(t, now + 100);
    assert_int_equal(traffic_total(t, TC_REFUSED), 2);
    send_request(t, now + 120, "END-OF-MESSAGE", "8000", "50.1.1.1", "", "recipient_count=2\n");
    assert_int_equal(traffic_total(t, TC_SESSIONS), 1);
    assert_int_equal(traffic_total(t, TC_MESSAGES), 2);
    assert_int_equal(traffic_total(t, TC_REFUSED), 2);
    assert_int_equal(traffic_total(t, TC_MESSAGES_LOGGED), 1 + 2 + 1);
    traffic_free(t);
    config_free(cfg);
}

/* What a request started (for its lookups), and DNS counts on the host and its culprits. */
static void test_traffic_dns_news_and_culprits(void **state)
{
    struct config *cfg = counting_config("local_domains=example.org");
    struct traffic *t = traffic_new(cfg);
    struct fake_request fr;
    struct policy_request req;
    struct traffic_news news;
    struct culprit_view top[4];
    struct resolver_tag tag;
    struct dns_counts dc = {{{0}}, 0};
    unsigned n;

    (void)state;
    make_request(&fr, &req, "RCPT", "4000", "A1.1", "bob@far.example", "sasl_username=alice\n");
    traffic_request(t, &req, 10.0, &news);
    assert_true(news.new_session);
    assert_true(news.new_transaction);
    assert_true(news.relay_recipient);
    assert_true(news.who == culprit_key_hash(CULPRIT_SASL_USERNAME, "alice", 5));
    /* The sender domain's key is folded to lower case, as the culprit table keeps it. */
    assert_true(news.sender_domain == culprit_key_hash(CULPRIT_SENDER_DOMAIN, "sender.example", 14));

    make_request(&fr, &req, "RCPT", "4000", "A1.1", "carol@example.org", "sasl_username=alice\n");
    traffic_request(t, &req, 11.0, &news);
    assert_false(news.new_session);
    assert_false(news.new_transaction);
    assert_false(news.relay_recipient); /* local */

    tag.who = culprit_key_hash(CULPRIT_SASL_USERNAME, "alice", 5);
    tag.sender_domain = culprit_key_hash(CULPRIT_SENDER_DOMAIN, "sender.example", 14);
    /* One request's events at once, then answers one by one. */
    dns_counts_add(&dc, DNS_MX, DNS_UPSTREAM);
    dns_counts_add(&dc, DNS_MX, DNS_UPSTREAM);
    traffic_dns(t, &dc, tag, 12.0);
    assert_int_equal(dc.used, 0); /* emptied */
    dns_counts_add(&dc, DNS_MX, DNS_ANSWERED);
    traffic_dns(t, &dc, tag, 12.5);
    dns_counts_add(&dc, DNS_PTR, DNS_HIT);
    traffic_dns(t, &dc, tag, 12.5);
    /* A key that is not tracked: the host counts it, no culprit does. */
    tag.who = culprit_key_hash(CULPRIT_SASL_USERNAME, "nobody", 6);
    tag.sender_domain = 0;
    dns_counts_add(&dc, DNS_MX, DNS_UPSTREAM);
    traffic_dns(t, &dc, tag, 13.0);

    assert_int_equal(traffic_window(t, TC_DNS(DNS_MX, DNS_UPSTREAM), 0, 13.0), 3);
    assert_int_equal(traffic_window(t, TC_DNS(DNS_MX, DNS_ANSWERED), 0, 13.0), 1);
    assert_int_equal(traffic_window(t, TC_DNS(DNS_PTR, DNS_HIT), 0, 13.0), 1);
    assert_int_equal(traffic_total(t, TC_DNS(DNS_A, DNS_UPSTREAM)), 0);
    /* Out of the 1m window a minute later, still in the 1h one. */
    assert_int_equal(traffic_window(t, TC_DNS(DNS_MX, DNS_UPSTREAM), 0, 75.0), 0);
    assert_int_equal(traffic_window(t, TC_DNS(DNS_MX, DNS_UPSTREAM), 2, 75.0), 3);

    n = traffic_culprits(t, false, 2, 13.0, top, 4);
    assert_int_equal(n, 1);
    assert_string_equal(top[0].key, "alice");
    assert_int_equal(top[0].dns_upstream, 2);
    assert_int_equal(top[0].dns_lookups, 2);
    n = traffic_culprits(t, true, 2, 13.0, top, 4);
    assert_int_equal(n, 1);
    assert_string_equal(top[0].key, "sender.example");
    assert_int_equal(top[0].dns_upstream, 2);
    traffic_free(t);
    config_free(cfg);
}

/* What traffic_store_collect handed over in one call. */
struct collected {
    unsigned minute_count, domain_count, totals_count;
    int64_t minutes[8], domain_minutes[8];
    uint64_t nr[8];           /* TC_RECIPIENTS of each minute */
    uint64_t total_sessions;  /* from the totals */
};

static void collected_minute(void *ctx, int64_t minute, const uint64_t *counts)
{
    struct collected *c = ctx;

    assert_true(c->minute_count < 8);
    c->minutes[c->minute_count] = minute;
    c->nr[c->minute_count++] = counts[TC_RECIPIENTS];
}

static void collected_domain(void *ctx, int64_t minute, uint64_t hash)
{
    struct collected *c = ctx;

    assert_true(hash != 0);
    assert_true(c->domain_count < 8);
    c->domain_minutes[c->domain_count++] = minute;
}

static void collected_totals(void *ctx, const uint64_t *totals)
{
    struct collected *c = ctx;

    c->totals_count++;
    c->total_sessions = totals[TC_SESSIONS];
}

static struct collected collect(struct traffic *t)
{
    static const struct traffic_changes to = {collected_minute, collected_domain,
                                              collected_totals};
    struct collected c;

    memset(&c, 0, sizeof(c));
    traffic_store_collect(t, &to, &c);
    return c;
}

/* The store's backlog: what changed is handed once, all of it again after rewrite_all, and a
 * minute pushed out of the backlog before it was handed is counted as dropped. */
static void test_traffic_store_backlog(void **state)
{
    struct config *cfg = counting_config("");
    struct traffic *t = traffic_new(cfg);
    struct collected c;
    double m0 = 1000 * 60.0; /* the start of minute 1000 */

    (void)state;
    /* Not enabled (a memory store): nothing is kept, nothing handed. */
    send_request(t, m0 + 1, "RCPT", "7000", "70.1.1.0", "a@relay.test", "");
    c = collect(t);
    assert_int_equal(c.minute_count + c.domain_count + c.totals_count, 0);
    traffic_free(t);

    t = traffic_new(cfg);
    traffic_store_enable(t, 3);
    c = collect(t);
    assert_int_equal(c.minute_count + c.domain_count + c.totals_count, 0);
    send_request(t, m0 + 1, "RCPT", "7000", "70.1.1.0", "a@relay.test", "");
    send_request(t, m0 + 2, "RCPT", "7000", "70.1.1.0", "b@relay.test", "");
    c = collect(t);
    assert_int_equal(c.minute_count, 1);
    assert_int_equal(c.minutes[0], 1000);
    assert_int_equal(c.nr[0], 2);
    assert_int_equal(c.domain_count, 1); /* relay.test, once */
    assert_int_equal(c.domain_minutes[0], 1000);
    assert_int_equal(c.totals_count, 1);
    assert_int_equal(c.total_sessions, 1);
    /* Handed: nothing changed since. */
    c = collect(t);
    assert_int_equal(c.minute_count + c.domain_count + c.totals_count, 0);
    /* A failed write or a new connection: every minute held, and the totals, again. */
    traffic_store_rewrite_all(t);
    c = collect(t);
    assert_int_equal(c.minute_count, 1);
    assert_int_equal(c.nr[0], 2);
    assert_int_equal(c.domain_count, 0);
    assert_int_equal(c.totals_count, 1);

    /* Minutes 1001..1004 with no collect in between: 1003 takes 1000's place (handed, not
     * dropped), 1004 takes 1001's (never handed: dropped). */
    for (int k = 1; k <= 4; k++) {
        char rcpt[32];

        snprintf(rcpt, sizeof(rcpt), "r%d@relay.test", k);
        send_request(t, m0 + 60.0 * k + 1, "RCPT", "7000", "70.1.1.0", rcpt, "");
    }
    assert_int_equal(traffic_store_dropped_minutes(t), 1);
    c = collect(t);
    assert_int_equal(c.minute_count, 3);
    for (unsigned i = 0; i < c.minute_count; i++)
        assert_true(c.minutes[i] >= 1002 && c.minutes[i] <= 1004);
    traffic_store_rewrite_all(t);
    c = collect(t);
    assert_int_equal(c.minute_count, 3); /* the backlog holds 3 minutes */
    traffic_free(t);

    /* A backlog of fewer than 2 minutes is 2: the current minute and the one before. */
    t = traffic_new(cfg);
    traffic_store_enable(t, 1);
    send_request(t, m0 + 1, "RCPT", "7000", "70.1.1.0", "a@relay.test", "");
    send_request(t, m0 + 61, "RCPT", "7000", "70.1.1.0", "b@relay.test", "");
    assert_int_equal(traffic_store_dropped_minutes(t), 0);
    c = collect(t);
    assert_int_equal(c.minute_count, 2);
    traffic_free(t);
    config_free(cfg);
}

static void count_done(void *arg)
{
    (*(int *)arg)++;
}

/* The store's dispatch by URL: memory keeps nothing outside the process, is done at once and
 * is always "connected"; anything else is Redis, and not a Redis address is refused.  Neither
 * touches the loop here. */
static void test_store_memory_backend(void **state)
{
    struct store_source src = {0};
    struct store_settings set = {.url = "memory", .host_id = "mx1"};
    struct store_state st;
    struct store *s;
    char err[200] = "";
    int done = 0;

    (void)state;
    s = store_new(NULL, &set, &src, err, sizeof(err));
    assert_non_null(s);
    store_get_state(s, &st);
    assert_string_equal(st.backend, "memory");
    assert_false(st.shared);
    assert_true(st.connected);
    assert_int_equal(st.host_count, 0);
    assert_null(st.last_error);
    store_flush_final(s, count_done, &done);
    assert_int_equal(done, 1);
    store_free(s);

    set.url = "memcached://127.0.0.1:11211";
    assert_null(store_new(NULL, &set, &src, err, sizeof(err)));
    assert_non_null(strstr(err, "not a Redis address"));
}

static void test_status_json_alpha_null(void **state)
{
    struct config *cfg = counting_config("");
    struct traffic *t = traffic_new(cfg);
    struct policy_server_stats stats;
    uint64_t requests[STATUS_STATES][AK_COUNT];
    struct store_state store = {.backend = "memory", .connected = true};
    struct defense *def = defense_new(cfg, t);
    struct status_sources src = {cfg, t, &stats, (const uint64_t(*)[AK_COUNT])requests, 0, &store,
                                 NULL, 0, def, NULL};
    struct http_body b = {0};

    (void)state;
    memset(&stats, 0, sizeof(stats));
    memset(requests, 0, sizeof(requests));
    /* A session but no message yet: alpha has no value. */
    send_request(t, 100.0, "CONNECT", "7000", "", "", "sasl_username=\"odd\\\\name\"\\x01\n");
    status_json(&b, &src, 100.5);
    assert_non_null(strstr(b.data, "\"1m\":{\"seconds\":60,\"nc\":1,\"nf\":0,\"nf_log\":0"));
    assert_non_null(strstr(b.data, "\"alpha\":null"));
    free(b.data);
    memset(&b, 0, sizeof(b));
    send_request(t, 100.0, "RCPT", "7000", "40.1.1.0", "a@relay.test", "");
    send_request(t, 100.0, "END-OF-MESSAGE", "7000", "40.1.1.0", "", "recipient_count=1\n");
    send_request(t, 100.0, "CONNECT", "7001", "", "", "");
    status_json(&b, &src, 100.5);
    {
        /* alpha = 2 sessions / 1 from= line, a JSON real (it was printed "2.0000"). */
        json_t *top = json_loads(b.data, 0, NULL);
        json_t *a = json_object_get(json_object_get(json_object_get(json_array_get(
                                        json_object_get(top, "hosts"), 0), "windows"), "1m"),
                                    "alpha");

        assert_true(json_is_real(a));
        assert_true(json_real_value(a) == 2.0);
        json_decref(top);
    }
    free(b.data);
    /* JSON strings: quotes, backslashes, control bytes escaped, bad UTF-8 as U+FFFD. */
    {
        json_t *text = json_text("a\"b\\c\x01\xc3\xa9\xff", 9);
        char *dumped = json_dumps(text, JSON_TEXT_FLAGS | JSON_ENCODE_ANY);

        assert_string_equal(dumped, "\"a\\\"b\\\\c\\u0001\xc3\xa9\xef\xbf\xbd\"");
        free(dumped);
        json_decref(text);
    }
    defense_free(def);
    traffic_free(t);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_expiry),
        cmocka_unit_test(test_window_saturates),
        cmocka_unit_test(test_window_sliding_per_second),
        cmocka_unit_test(test_window_restart),
        cmocka_unit_test(test_distinct_counts),
        cmocka_unit_test(test_culprits_heavy_hitters_among_a_million),
        cmocka_unit_test(test_culprits_kinds_and_decay),
        cmocka_unit_test(test_culprits_stream_summary_is_space_saving),
        cmocka_unit_test(test_traffic_end_of_message_mode),
        cmocka_unit_test(test_traffic_sessions),
        cmocka_unit_test(test_traffic_evictions_are_not_refusals),
        cmocka_unit_test(test_traffic_rcpt_mode),
        cmocka_unit_test(test_traffic_double_hook_and_slow_data),
        cmocka_unit_test(test_traffic_dns_news_and_culprits),
        cmocka_unit_test(test_traffic_store_backlog),
        cmocka_unit_test(test_store_memory_backend),
        cmocka_unit_test(test_status_json_alpha_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
