/*
 * The defense replayed with a simulated clock (no sleeping): the real
 * traffic and defense modules fed policy requests as handle_request in
 * main.c feeds them (news when defense_wants_news(), then defense_decide),
 * with traffic_tick four times and defense_tick once per simulated second
 * as the daemon's timer does.  dns_lookups is empty, so relay domains
 * stand in for MX; local_domains = example.edu.
 *
 * Every scenario starts from 30 simulated minutes of ordinary quiet
 * traffic (inbound mail to example.edu, three relay senders to five
 * domains) so that the detector has learned its baselines: the newsletter
 * runs them in full; the others load the baselines they taught (as a
 * restart with a store does) and run 10 minutes of the same traffic, which
 * keeps the binary at a few seconds.  Then a relay burst (a new domain
 * every 0.5 s), static limits, blocks and releases, alerts, and the
 * throttle table's sync with the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "config.h"
#include "culprits.h"
#include "decision.h"
#include "defense.h"
#include "detector.h"
#include "http.h"
#include "json_text.h"
#include "policy_request.h"
#include "quarantine.h"
#include "server.h"
#include "status.h"
#include "store.h"
#include "throttle.h"
#include "traffic.h"
#include "views.h"

#include "engine_setup.h"

#define T0 1699999200.0 /* a multiple of 3600 */
#define STEP 0.25       /* the daemon's timer */
#define QUIET_START (30 * 60.0)
#define LEAD_IN (10 * 60.0)
#define ANS 400
#define ALERT_COPY 8192

#define CULPRIT "203.0.113.66"
#define DEFER_PREFIX "action=DEFER 4.7.1 "
#define DEFAULT_CULPRIT "action=DEFER 4.7.1 Too much relay mail from you: sending paused, try again later"
#define DEFAULT_ESCALATE "action=REJECT 5.7.1 Relay refused: this sender is sending spam"
#define DEFAULT_BLOCK "action=REJECT 5.7.1 Sending blocked by the mail administrator"
#define DEFAULT_LIMIT "action=DEFER 4.7.1 Sending limit reached: try again later"
/* The scenarios with relay bursts test the detector, the culprits and the limits: the per-key
 * fast path (which would stop a burst within seconds) is off for them. */
#define SLOW_PATH "fast_path = no\n"

/* ------------------------------------------------------------ the simulation */

struct sim {
    struct config *cfg;
    struct traffic *t;
    struct defense *d;
    double now;       /* the last request's or tick's time */
    long step;        /* next step: its time is T0 + step * STEP */
    double next_tick; /* the next traffic_tick */
    unsigned ticks;
    unsigned port, txn;
    /* The detector as seen at each defense_tick. */
    bool ever_loud;
    double loud_at, quiet_at; /* the first went-loud, the first went-quiet after it */
    unsigned loud_count;      /* transitions to loud */
    double max_relay_domains, min_alpha, max_alpha;
    /* Alerts: taken by the loop as the daemon does, unless keep_alerts. */
    bool keep_alerts;
    unsigned alerts_taken;
    /* Ordinary traffic and what it was answered. */
    const char *loud_relay_expect; /* the answer to other relay RCPTs while loud */
    unsigned ord_relay, ord_relay_loud, ord_inbound, ord_bad;
    char ord_bad_first[2 * ANS + 256];
};

static int sim_hour(double now)
{
    time_t t = (time_t)now;
    struct tm tm;

    gmtime_r(&t, &tm);
    return tm.tm_hour;
}

static struct sim *sim_new(const char *overrides)
{
    struct sim *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    engine_open(&s->cfg, &s->t, &s->d, "mx-test", overrides);
    s->now = T0;
    s->next_tick = T0;
    s->port = 10000;
    s->min_alpha = 1e9;
    s->loud_relay_expect = "action=DUNNO";
    return s;
}

static void sim_free(struct sim *s)
{
    engine_close(s->cfg, s->t, s->d);
    free(s);
}

static bool sim_loud(const struct sim *s)
{
    return detector_state(defense_detector(s->d)) == DETECTOR_LOUD;
}

static void sim_defend(struct sim *s, double now)
{
    struct defense_inputs in;
    struct detector_view v;
    bool was_loud = sim_loud(s);
    const struct defense_alert *alert;

    memset(&in, 0, sizeof(in));
    in.now = now;
    in.hour = sim_hour(now);
    in.own_dns = false;
    in.tdns = false;
    in.missing = "";
    defense_tick(s->d, &in);
    detector_get_view(defense_detector(s->d), &v);
    if (v.value[DS_RELAY_DOMAINS] > s->max_relay_domains)
        s->max_relay_domains = v.value[DS_RELAY_DOMAINS];
    if (v.value[DS_ALPHA] >= 0) {
        if (v.value[DS_ALPHA] < s->min_alpha)
            s->min_alpha = v.value[DS_ALPHA];
        if (v.value[DS_ALPHA] > s->max_alpha)
            s->max_alpha = v.value[DS_ALPHA];
    }
    if (!was_loud && sim_loud(s)) {
        s->loud_count++;
        if (!s->ever_loud) {
            s->ever_loud = true;
            s->loud_at = now;
            print_message("  went loud at +%.0fs: %s\n", now - T0,
                          detector_reason(defense_detector(s->d)));
        }
    }
    if (was_loud && !sim_loud(s) && s->quiet_at == 0) {
        s->quiet_at = now;
        print_message("  went quiet at +%.0fs: %s\n", now - T0,
                      detector_reason(defense_detector(s->d)));
    }
    alert = defense_pending_alert(s->d);
    if (alert != NULL && !s->keep_alerts) {
        s->alerts_taken++;
        defense_alert_taken(s->d);
    }
}

/* The daemon's timer up to time t: traffic_tick every 0.25 s, defense_tick every fourth. */
static void sim_advance(struct sim *s, double t)
{
    while (s->next_tick <= t) {
        traffic_tick(s->t, s->next_tick);
        if (s->ticks++ % 4 == 0)
            sim_defend(s, s->next_tick);
        s->now = s->next_tick;
        s->next_tick += STEP;
    }
    if (t > s->now)
        s->now = t;
}

/* One policy request at time at (or now, if earlier), as handle_request does it; the answer
 * ("action=...", without its blank line) into ans. */
static enum action_kind sim_request(struct sim *s, double at, const char *state, const char *client,
                                    unsigned port, const char *sasl, const char *sender,
                                    const char *instance, const char *rcpt, unsigned rcount,
                                    char *ans)
{
    char text[1536];
    struct policy_parser p;
    struct policy_request req;
    struct traffic_news news = {0};
    struct decision dec;
    bool want;
    int n;

    n = snprintf(text, sizeof(text),
                 "request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
                 "client_address=%s\nclient_name=unknown\nclient_port=%u\n"
                 "server_address=192.0.2.1\nserver_port=25\nsender=%s\nrecipient=%s\n"
                 "recipient_count=%u\ninstance=%s\nsasl_username=%s\n\n",
                 state, client, port, sender, rcpt, rcount, instance, sasl);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    policy_parser_init(&p);
    assert_int_equal(policy_parser_next(&p, text, (size_t)n, &req), POLICY_PARSE_REQUEST);
    sim_advance(s, at);
    want = defense_wants_news(s->d);
    traffic_request(s->t, &req, s->now, want ? &news : NULL);
    defense_decide(s->d, &req, &news, s->now, &dec);
    /* The answer is complete: "action=" ACTION "\n\n". */
    assert_true(dec.answer_len > 9 && dec.answer_len < ANS);
    assert_int_equal(strlen(dec.answer), dec.answer_len);
    assert_memory_equal(dec.answer + dec.answer_len - 2, "\n\n", 2);
    memcpy(ans, dec.answer, dec.answer_len - 2);
    ans[dec.answer_len - 2] = '\0';
    assert_memory_equal(ans, "action=", 7);
    assert_string_equal(ans + 7, dec.action);
    return dec.kind;
}

#define MAX_RCPTS 4

struct message {
    unsigned n;
    enum action_kind kind[MAX_RCPTS];
    char ans[MAX_RCPTS][ANS];
};

/* One session with one message: CONNECT, a RCPT per recipient, and END-OF-MESSAGE with the
 * recipients accepted if any was (a client whose every RCPT was refused quits). */
static void sim_message(struct sim *s, double at, const char *client, const char *sasl,
                        const char *sender, const char *const *rcpts, unsigned n,
                        struct message *m)
{
    char instance[64], ans[ANS];
    unsigned port = s->port++, accepted = 0;

    if (s->port > 60000)
        s->port = 10000;
    snprintf(instance, sizeof(instance), "%x.%x.%x.0", 0x1000 + (port % 4000), s->txn++,
             port);
    assert_true(n >= 1 && n <= MAX_RCPTS);
    assert_int_equal(sim_request(s, at, "CONNECT", client, port, "", "", "", "", 0, ans),
                     AK_DUNNO);
    m->n = n;
    for (unsigned i = 0; i < n; i++) {
        m->kind[i] = sim_request(s, at, "RCPT", client, port, sasl, sender, instance, rcpts[i], 0,
                                 m->ans[i]);
        if (m->kind[i] == AK_DUNNO)
            accepted++;
    }
    if (accepted > 0)
        assert_int_equal(sim_request(s, at, "END-OF-MESSAGE", client, port, sasl, sender,
                                     instance, "", accepted, ans),
                         AK_DUNNO);
}

/* An ordinary relay message: its answer must be DUNNO, or loud_relay_expect while loud. */
static void ordinary_relay(struct sim *s, double at, const char *client, const char *sasl,
                           const char *sender, const char *rcpt)
{
    struct message m;
    bool loud;

    sim_advance(s, at);
    loud = sim_loud(s);
    sim_message(s, at, client, sasl, sender, &rcpt, 1, &m);
    s->ord_relay++;
    if (loud)
        s->ord_relay_loud++;
    if (strcmp(m.ans[0], loud ? s->loud_relay_expect : "action=DUNNO") != 0) {
        if (s->ord_bad++ == 0)
            snprintf(s->ord_bad_first, sizeof(s->ord_bad_first),
                     "+%.0fs %s %s -> %s (%s)", at - T0, client, rcpt, m.ans[0],
                     loud ? "loud" : "quiet");
    }
}

/* The ordinary traffic of second sec: inbound every 7 s from many MTAs; relay from bob and
 * carol (no SASL) and alice (SASL, from the webmail host 198.51.100.30) every 100-150 s to five
 * domains in all.  No relay client sends more than 36 recipients an hour. */
static void quiet_traffic(struct sim *s, long sec, double t)
{
    char rcpt[128], sender[128], client[64];

    if (sec % 7 == 0) {
        struct message m;
        const char *r = rcpt;

        snprintf(client, sizeof(client), "198.18.0.%ld", 1 + (sec / 7) % 50);
        snprintf(sender, sizeof(sender), "someone%ld@far%ld.test", sec % 13, (sec / 7) % 50);
        snprintf(rcpt, sizeof(rcpt), "user%ld@example.edu", sec % 17);
        sim_message(s, t, client, "", sender, &r, 1, &m);
        s->ord_inbound++;
        if (m.kind[0] != AK_DUNNO && s->ord_bad++ == 0)
            snprintf(s->ord_bad_first, sizeof(s->ord_bad_first), "+%.0fs inbound %s -> %s",
                     t - T0, rcpt, m.ans[0]);
    }
    if (sec % 120 == 5) {
        snprintf(rcpt, sizeof(rcpt), "x%ld@partner%ld.test", sec % 11, (sec / 120) % 2);
        ordinary_relay(s, t, "198.51.100.20", "", "bob@example.edu", rcpt);
    }
    if (sec % 150 == 11) {
        snprintf(rcpt, sizeof(rcpt), "y%ld@partner%ld.test", sec % 11, 1 + (sec / 150) % 2);
        ordinary_relay(s, t, "198.51.100.21", "", "carol@example.edu", rcpt);
    }
    if (sec % 100 == 17) {
        snprintf(rcpt, sizeof(rcpt), "z%ld@friends%ld.test", sec % 11, 1 + (sec / 100) % 2);
        ordinary_relay(s, t, "198.51.100.30", "alice", "alice@example.edu", rcpt);
    }
}

/* A relay burst: a message to a new domain every 0.5 s, and an inbound one every 10 s. */
struct burst {
    const char *client, *sasl, *sender;
    double start, end;
    unsigned sent, next_domain;
    unsigned count[AK_COUNT];
    double first_at[AK_COUNT], last_at[AK_COUNT];
    char first_ans[AK_COUNT][ANS];
    unsigned inbound, inbound_bad;
    char inbound_bad_first[ANS + 64];
};

static void burst_init(struct burst *b, const char *client, const char *sasl, const char *sender,
                       double start, double end)
{
    memset(b, 0, sizeof(*b));
    b->client = client;
    b->sasl = sasl;
    b->sender = sender;
    b->start = start;
    b->end = end;
}

/* Forget the answers so far (the domains go on). */
static void burst_reset_answers(struct burst *b)
{
    memset(b->count, 0, sizeof(b->count));
    memset(b->first_at, 0, sizeof(b->first_at));
    memset(b->last_at, 0, sizeof(b->last_at));
    memset(b->first_ans, 0, sizeof(b->first_ans));
}

static void burst_note(struct burst *b, double at, enum action_kind k, const char *ans)
{
    if (b->count[k]++ == 0) {
        b->first_at[k] = at;
        snprintf(b->first_ans[k], ANS, "%s", ans);
    }
    b->last_at[k] = at;
}

static void burst_send(struct sim *s, struct burst *b, double at, bool inbound_too)
{
    char rcpt[128];
    const char *r = rcpt;
    struct message m;

    snprintf(rcpt, sizeof(rcpt), "u%u@r%u.example", b->sent, ++b->next_domain);
    sim_message(s, at, b->client, b->sasl, b->sender, &r, 1, &m);
    b->sent++;
    burst_note(b, at, m.kind[0], m.ans[0]);
    if (inbound_too) {
        snprintf(rcpt, sizeof(rcpt), "info@example.edu");
        sim_message(s, at, b->client, b->sasl, b->sender, &r, 1, &m);
        b->inbound++;
        if (m.kind[0] != AK_DUNNO && b->inbound_bad++ == 0)
            snprintf(b->inbound_bad_first, sizeof(b->inbound_bad_first), "+%.0fs %s", at - T0, m.ans[0]);
    }
}

/* A newsletter: total single-recipient messages spread evenly over [start, end). */
struct newsletter {
    const char *client, *sender;
    double start, end;
    unsigned total, sent, not_dunno;
    char not_dunno_first[ANS + 64];
};

static void newsletter_step(struct sim *s, struct newsletter *nl, double t)
{
    static const char *const domains[] = {"gmail.test", "yahoo.test", "outlook.test", "gmx.test",
                                          "aol.test"};
    double every = (nl->end - nl->start) / nl->total;

    while (nl->sent < nl->total && nl->start + nl->sent * every < t + STEP) {
        double at = nl->start + nl->sent * every;
        char rcpt[128];
        const char *r = rcpt;
        struct message m;

        snprintf(rcpt, sizeof(rcpt), "reader%u@%s", nl->sent, domains[nl->sent % 5]);
        sim_message(s, at < t ? t : at, nl->client, "", nl->sender, &r, 1, &m);
        nl->sent++;
        if (m.kind[0] != AK_DUNNO && nl->not_dunno++ == 0)
            snprintf(nl->not_dunno_first, sizeof(nl->not_dunno_first), "+%.0fs %s", at - T0, m.ans[0]);
    }
}

/* Run the simulation up to time until: ordinary traffic, and a burst and a newsletter if any. */
static void sim_run(struct sim *s, double until, struct burst *b, struct newsletter *nl)
{
    for (;;) {
        double t = T0 + (double)s->step * STEP;
        long sec = s->step / 4;

        if (t >= until)
            break;
        sim_advance(s, t);
        if (s->step % 4 == 0)
            quiet_traffic(s, sec, t);
        if (b != NULL && t >= b->start && t < b->end && s->step % 2 == 0)
            burst_send(s, b, t + 0.05, s->step % 40 == 0);
        if (nl != NULL)
            newsletter_step(s, nl, t);
        s->step++;
    }
    sim_advance(s, until);
}

/* Run until the detector is loud (true) or until (false). */
static bool sim_run_until_loud(struct sim *s, double until, struct burst *b)
{
    while (!sim_loud(s) && s->now < until)
        sim_run(s, s->now + 1, b, NULL);
    return sim_loud(s);
}

static bool sim_run_until_quiet(struct sim *s, double until, struct burst *b)
{
    while (sim_loud(s) && s->now < until)
        sim_run(s, s->now + 1, b, NULL);
    return !sim_loud(s);
}

static struct throttle_record *find_key(struct sim *s, enum culprit_kind kind, const char *key)
{
    return throttle_find(defense_throttles(s->d), kind, key, strlen(key),
                         culprit_key_hash(kind, key, strlen(key)));
}

/* One relay RCPT (in its own session) from client; returns the answer's kind. */
static enum action_kind one_relay(struct sim *s, double at, const char *client, const char *sasl,
                                  const char *rcpt, char *ans)
{
    struct message m;

    sim_message(s, at, client, sasl, "someone@example.edu", &rcpt, 1, &m);
    strcpy(ans, m.ans[0]);
    return m.kind[0];
}

static void check_quiet(struct sim *s)
{
    assert_false(s->ever_loud);
    assert_int_equal(throttle_count(defense_throttles(s->d)), 0);
    assert_int_equal(s->ord_bad, 0);
}

/* 30 simulated minutes of ordinary traffic from a cold start; returns the time it ended. */
static double quiet_start_full(struct sim *s)
{
    sim_run(s, T0 + QUIET_START, NULL, NULL);
    check_quiet(s);
    return s->now;
}

/*
 * The baselines the detector learned in quiet_start_full (detector_save), computed once.  Each
 * scenario but the newsletter's starts from them, as a daemon restarting with a store does
 * (detector_load), then runs LEAD_IN of ordinary traffic so that every detection window is
 * full: the same detector state as after the full quiet start, at a third of the
 * simulated time (a defense_tick costs about 0.25 ms: traffic_relay_domains merges 60 x 4096
 * registers).
 */
static char learned[16384];

static const char *learned_baselines(void)
{
    if (learned[0] == '\0') {
        struct sim *s = sim_new("");

        quiet_start_full(s);
        assert_true(detector_save(defense_detector(s->d), learned, sizeof(learned)) > 0);
        sim_free(s);
    }
    return learned;
}

/* The baselines of 30 quiet minutes and LEAD_IN of ordinary traffic; returns the time. */
static double quiet_start(struct sim *s)
{
    const char *text = learned_baselines();

    assert_true(detector_load(defense_detector_mut(s->d), text, strlen(text)) >= 8);
    sim_run(s, T0 + LEAD_IN, NULL, NULL);
    check_quiet(s);
    return s->now;
}

/* ------------------------------------------------------------ 1. newsletter */

static void newsletter_run(const char *overrides)
{
    struct sim *s = sim_new(overrides);
    struct newsletter nl;
    struct defense_stats st;
    double nl_start;

    nl_start = quiet_start_full(s);
    memset(&nl, 0, sizeof(nl));
    nl.client = "192.0.2.10";
    nl.sender = "news@lists.example.edu";
    nl.start = nl_start;
    nl.end = nl.start + 20 * 60;
    nl.total = 5000;
    sim_run(s, nl.end + 60, NULL, &nl);
    defense_get_stats(s->d, &st);
    print_message("  newsletter (%s): %u sent, max relay domains %.0f/10m, alpha %.2f-%.2f, "
                  "detector %s: %s\n",
                  overrides[0] ? overrides : "no exemption", nl.sent, s->max_relay_domains,
                  s->min_alpha, s->max_alpha, detector_state_name(st.state),
                  detector_reason(defense_detector(s->d)));
    assert_int_equal(nl.sent, 5000);
    assert_false(s->ever_loud);
    assert_int_equal(st.incidents, 0);
    if (nl.not_dunno)
        print_message("  first non-DUNNO: %s\n", nl.not_dunno_first);
    assert_int_equal(nl.not_dunno, 0);
    if (s->ord_bad)
        print_message("  ordinary: %s\n", s->ord_bad_first);
    assert_int_equal(s->ord_bad, 0);
    assert_int_equal(throttle_count(defense_throttles(s->d)), 0);
    assert_int_equal(st.throttled_total, 0);
    assert_int_equal(st.actions[AK_DEFER] + st.actions[AK_REJECT] + st.actions[AK_HOLD], 0);
    /* The newsletter was counted all the same: 5000 relay messages, each its own session. */
    assert_true(traffic_total(s->t, TC_MESSAGES_RELAY) >= 5000);
    sim_free(s);
}

/* The windows (windows = 1m, 10m, 1h): the detector's and the limits'. */
#define W_DETECT 1
#define W_LIMIT 2

/* A key's figures in window w, if its table tracks it (culprit_slots: at most 1000). */
static bool key_view(struct sim *s, enum culprit_kind kind, unsigned w, const char *key,
                     struct culprit_view *out)
{
    static struct culprit_view v[1000];
    unsigned n = traffic_culprits(s->t, kind == CULPRIT_SENDER_DOMAIN, w, s->now, v, 1000);

    for (unsigned i = 0; i < n; i++)
        if (v[i].kind == kind && strcmp(v[i].key, key) == 0) {
            *out = v[i];
            return true;
        }
    return false;
}

/* A key's share of the host's relay domains in the detector's window, as pick_culprits
 * judges it (dns_lookups is empty: no share of queries). */
static double key_share(struct sim *s, const struct culprit_view *v)
{
    uint64_t all = traffic_relay_domains(s->t, W_DETECT, s->now);

    return all ? (double)(v->domains < all ? v->domains : all) / (double)all : 0;
}

#define LIST_SENDER "news@lists.example.edu"
#define LIST_DOMAIN "lists.example.edu"
#define LIST_SERVERS 30

/*
 * A mailing list to subscribers in many domains: a message to a new domain every 0.5 s for
 * `seconds`, from a pool of LIST_SERVERS outbound servers in turn (none of which stands out),
 * all with sender LIST_SENDER.  The host goes loud, and the list's sender domain is the only
 * key that meets the culprit rules.  Returns the sim; the list's answers by kind in count.
 */
static struct sim *list_run(const char *overrides, double seconds, unsigned *count)
{
    struct sim *s = sim_new(overrides);
    double start = quiet_start(s), t;
    unsigned i = 0;

    memset(count, 0, AK_COUNT * sizeof(*count));
    for (t = start; t < start + seconds; t += 0.5, i++) {
        char client[32], rcpt[64];
        const char *r = rcpt;
        struct message m;

        sim_run(s, t, NULL, NULL);
        snprintf(client, sizeof(client), "192.0.2.%u", 10 + i % LIST_SERVERS);
        snprintf(rcpt, sizeof(rcpt), "reader%u@sub%u.test", i, i);
        sim_message(s, t, client, "", LIST_SENDER, &r, 1, &m);
        count[m.kind[0]]++;
    }
    sim_run(s, t + 2, NULL, NULL);
    return s;
}

/* The list as a culprit would see it: loud, its sender domain among the busiest with the
 * culprit's figures, and no client that meets them. */
static void check_list_is_culprit(struct sim *s)
{
    struct culprit_view v;
    const struct config *c = s->cfg;

    assert_true(s->ever_loud);
    assert_true(sim_loud(s));
    assert_true(key_view(s, CULPRIT_SENDER_DOMAIN, W_DETECT, LIST_DOMAIN, &v));
    print_message("  %s: %llu relay domains, share %.2f of the host's\n", LIST_DOMAIN,
                  (unsigned long long)v.domains, key_share(s, &v));
    assert_true(v.domains >= c->culprit_min_domains);
    assert_true(key_share(s, &v) >= c->culprit_min_share);
    for (unsigned i = 0; i < LIST_SERVERS; i++) {
        char client[32];

        snprintf(client, sizeof(client), "192.0.2.%u", 10 + i);
        assert_true(key_view(s, CULPRIT_CLIENT_ADDRESS, W_DETECT, client, &v));
        assert_true(v.domains < c->culprit_min_domains || key_share(s, &v) < c->culprit_min_share);
    }
}

/* never_throttle_senders keeps the list's sender domain from being throttled while its burst
 * of domains makes the host loud; without it, the same list is throttled. */
static void test_newsletter_exempt(void **state)
{
    unsigned count[AK_COUNT];
    struct sim *s;
    struct throttle_record *r;
    struct defense_stats st;

    (void)state;
    s = list_run(SLOW_PATH "never_throttle_senders = " LIST_DOMAIN, 180, count);
    check_list_is_culprit(s);
    print_message("  exempt: %u DUNNO, %u DEFER\n", count[AK_DUNNO], count[AK_DEFER]);
    assert_int_equal(count[AK_DUNNO], 360);
    assert_null(find_key(s, CULPRIT_SENDER_DOMAIN, LIST_DOMAIN));
    assert_int_equal(throttle_count(defense_throttles(s->d)), 0);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.throttled_total, 0);
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);

    /* The control: the same list without the exemption. */
    s = list_run(SLOW_PATH, 180, count);
    check_list_is_culprit(s);
    print_message("  not exempt: %u DUNNO, %u DEFER\n", count[AK_DUNNO], count[AK_DEFER]);
    r = find_key(s, CULPRIT_SENDER_DOMAIN, LIST_DOMAIN);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    assert_true(count[AK_DEFER] > 0);
    assert_int_equal(count[AK_DUNNO] + count[AK_DEFER], 360);
    assert_int_equal(throttle_count(defense_throttles(s->d)), 1);
    sim_free(s);
}

static void test_newsletter_not_exempt(void **state)
{
    (void)state;
    newsletter_run("");
}

/* ------------------------------------------------------------ 2. relay burst */

/* The quiet start, then CULPRIT's burst for `burst` seconds: returns the sim with the burst's
 * answers in *b. */
static struct sim *burst_run(const char *overrides, struct burst *b, double burst, double after)
{
    struct sim *s = sim_new(overrides);
    double start;

    start = quiet_start(s);
    burst_init(b, CULPRIT, "", "info@bulk-sender.test", start, start + burst);
    sim_run(s, start + burst + after, b, NULL);
    return s;
}

/* CULPRIT's burst over [start, end) until it is throttled (within two minutes): its record. */
static struct throttle_record *burst_until_throttled(struct sim *s, struct burst *b, double start,
                                                     double end)
{
    struct throttle_record *r;

    burst_init(b, CULPRIT, "", "info@bulk-sender.test", start, end);
    while ((r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT)) == NULL && s->now < start + 120)
        sim_run(s, s->now + 1, b, NULL);
    assert_non_null(r);
    return r;
}

static void check_culprit_record(struct sim *s, const char *action)
{
    struct throttle_record *r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);

    assert_non_null(r);
    print_message("  record: %s:%s source %s since +%.0fs until +%.0fs action '%s' reason '%s'\n",
                  culprit_kind_name(r->kind), r->key, throttle_source_name(r->source),
                  r->since - T0, r->until - T0, r->action, r->reason);
    assert_int_equal(r->kind, CULPRIT_CLIENT_ADDRESS);
    assert_string_equal(r->key, CULPRIT);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    assert_non_null(strstr(r->reason, "relay domains"));
    assert_string_equal(r->host, "mx-test");
    assert_string_equal(r->action, action);
    assert_true(r->until - r->since == 3600.0); /* throttle_cooldown's default */
    assert_false(r->escalated);
}

static void test_relay_burst_defaults(void **state)
{
    struct burst b;
    struct sim *s;
    struct defense_stats st;

    (void)state;
    s = burst_run(SLOW_PATH, &b, 180, 0);
    assert_true(s->ever_loud);
    print_message("  burst: first DEFER %.1fs after the burst started (loud after %.1fs); "
                  "%u DUNNO, %u DEFER\n",
                  b.first_at[AK_DEFER] - b.start, s->loud_at - b.start, b.count[AK_DUNNO],
                  b.count[AK_DEFER]);
    assert_true(b.count[AK_DEFER] > 0);
    assert_true(b.first_at[AK_DEFER] - b.start <= 60.0);
    assert_true(strncmp(b.first_ans[AK_DEFER], DEFER_PREFIX, strlen(DEFER_PREFIX)) == 0);
    assert_string_equal(b.first_ans[AK_DEFER], DEFAULT_CULPRIT);
    /* Once throttled, every relay RCPT of the culprit is deferred. */
    assert_true(b.last_at[AK_DUNNO] < b.first_at[AK_DEFER]);
    assert_int_equal(b.count[AK_REJECT] + b.count[AK_HOLD] + b.count[AK_OTHER], 0);
    /* Inbound mail is never touched, not even the culprit's. */
    assert_true(b.inbound > 0);
    if (b.inbound_bad)
        print_message("  culprit inbound: %s\n", b.inbound_bad_first);
    assert_int_equal(b.inbound_bad, 0);
    if (s->ord_bad)
        print_message("  ordinary: %s\n", s->ord_bad_first);
    assert_true(s->ord_relay_loud > 0);
    assert_int_equal(s->ord_bad, 0);
    check_culprit_record(s, &DEFAULT_CULPRIT[7]);
    /* Only the culprit: its sender domain is not throttled (a client stood out). */
    assert_int_equal(throttle_count(defense_throttles(s->d)), 1);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.state, DETECTOR_LOUD);
    assert_int_equal(st.incidents, 1);
    assert_int_equal(st.throttled_total, 1);
    assert_int_equal(st.actions[AK_DEFER], b.count[AK_DEFER]);
    sim_free(s);
}

static void test_relay_burst_loud_relay_action(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH "loud_relay_action = DEFER_IF_PERMIT 4.7.1 busy");
    double start;

    (void)state;
    s->loud_relay_expect = "action=DEFER_IF_PERMIT 4.7.1 busy";
    start = quiet_start(s);
    burst_init(&b, CULPRIT, "", "info@bulk-sender.test", start, start + 360);
    sim_run(s, start + 360, &b, NULL);
    assert_true(s->ever_loud);
    print_message("  other relay RCPTs while loud: %u of %u\n", s->ord_relay_loud, s->ord_relay);
    if (s->ord_bad)
        print_message("  ordinary: %s\n", s->ord_bad_first);
    /* Ordinary relay mail got DUNNO while quiet and DEFER_IF_PERMIT while loud. */
    assert_true(s->ord_relay_loud >= 2);
    assert_int_equal(s->ord_bad, 0);
    /* The culprit itself gets culprit_action, not loud_relay_action. */
    assert_true(b.count[AK_DEFER] > 0);
    assert_string_equal(b.first_ans[AK_DEFER], DEFAULT_CULPRIT);
    assert_true(b.first_at[AK_DEFER] - b.start <= 60.0);
    assert_int_equal(b.inbound_bad, 0);
    sim_free(s);
}

static void test_relay_burst_hold(void **state)
{
    struct burst b;
    struct sim *s;

    (void)state;
    s = burst_run(SLOW_PATH "culprit_action = HOLD quarantined", &b, 120, 0);
    assert_true(b.count[AK_HOLD] > 0);
    print_message("  first HOLD %.1fs after the burst started\n", b.first_at[AK_HOLD] - b.start);
    assert_string_equal(b.first_ans[AK_HOLD], "action=HOLD quarantined");
    assert_true(b.first_at[AK_HOLD] - b.start <= 60.0);
    assert_int_equal(b.count[AK_DEFER] + b.count[AK_REJECT], 0);
    assert_true(b.last_at[AK_DUNNO] < b.first_at[AK_HOLD]);
    assert_int_equal(s->ord_bad, 0);
    assert_int_equal(b.inbound_bad, 0);
    check_culprit_record(s, "HOLD quarantined");
    sim_free(s);
}

/* ------------------------------------------------------------ 3. SASL culprit */

static void test_sasl_culprit(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH);
    double start;
    struct throttle_record *r;
    char ans[ANS];

    (void)state;
    start = quiet_start(s);
    /* mallory, from the webmail host alice also sends from, with the site's sender domain. */
    burst_init(&b, "198.51.100.30", "mallory", "mallory@example.edu", start, start + 240);
    sim_run(s, start + 240, &b, NULL);
    assert_true(s->ever_loud);
    print_message("  mallory: first DEFER %.1fs after the burst started\n",
                  b.first_at[AK_DEFER] - b.start);
    assert_true(b.count[AK_DEFER] > 0);
    assert_true(b.first_at[AK_DEFER] - b.start <= 60.0);
    assert_string_equal(b.first_ans[AK_DEFER], DEFAULT_CULPRIT);
    r = find_key(s, CULPRIT_SASL_USERNAME, "mallory");
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    assert_non_null(strstr(r->reason, "relay domains"));
    /* Neither the shared client address nor the shared sender domain. */
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.30"));
    assert_null(find_key(s, CULPRIT_SENDER_DOMAIN, "example.edu"));
    assert_int_equal(throttle_count(defense_throttles(s->d)), 1);
    /* alice, same client address, same sender domain: her relay mail goes on (the quiet
     * traffic sent hers every 100 s throughout). */
    if (s->ord_bad)
        print_message("  ordinary: %s\n", s->ord_bad_first);
    assert_int_equal(s->ord_bad, 0);
    assert_true(s->ord_relay_loud > 0);
    assert_int_equal(one_relay(s, s->now + 1, "198.51.100.30", "alice", "a@friends1.test", ans),
                     AK_DUNNO);
    assert_int_equal(one_relay(s, s->now + 1, "198.51.100.30", "mallory", "a@friends1.test", ans),
                     AK_DEFER);
    sim_free(s);
}

/* ------------------------------------------------------------ 4. never throttled */

static void test_never_throttle_client_cidr(void **state)
{
    struct burst b;
    struct sim *s;
    struct defense_stats st;

    (void)state;
    s = burst_run(SLOW_PATH "never_throttle_clients = 192.0.2.99, 203.0.113.0/24", &b, 240, 0);
    /* The burst is seen all the same. */
    assert_true(s->ever_loud);
    assert_int_equal(b.count[AK_DEFER] + b.count[AK_REJECT] + b.count[AK_HOLD] +
                         b.count[AK_OTHER],
                     0);
    assert_true(b.count[AK_DUNNO] >= 480);
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT));
    assert_int_equal(throttle_count(defense_throttles(s->d)), 0);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.throttled_total, 0);
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);
}

static void test_never_throttle_sasl_user(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH "never_throttle_sasl_users = mallory");
    double start;

    (void)state;
    start = quiet_start(s);
    burst_init(&b, "198.51.100.30", "mallory", "mallory@example.edu", start, start + 240);
    sim_run(s, start + 240, &b, NULL);
    assert_true(s->ever_loud);
    assert_int_equal(b.count[AK_DEFER] + b.count[AK_REJECT] + b.count[AK_HOLD] +
                         b.count[AK_OTHER],
                     0);
    assert_null(find_key(s, CULPRIT_SASL_USERNAME, "mallory"));
    assert_int_equal(throttle_count(defense_throttles(s->d)), 0);
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);
}

/* ------------------------------------------------------------ 5. escalation */

static void test_escalation(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH "escalate_after = 5m");
    double start, since;
    struct throttle_record *r;

    (void)state;
    start = quiet_start(s);
    burst_init(&b, CULPRIT, "", "info@bulk-sender.test", start, start + 600);
    sim_run(s, start + 600, &b, NULL);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);
    assert_non_null(r);
    since = r->since;
    print_message("  throttled at +%.0fs (%.1fs into the burst); first REJECT %.1fs later: %s\n",
                  since - T0, since - start, b.first_at[AK_REJECT] - since,
                  b.first_ans[AK_REJECT]);
    assert_true(b.count[AK_DEFER] > 0);
    assert_true(b.count[AK_REJECT] > 0);
    /* DEFER for escalate_after, then REJECT for good. */
    assert_true(b.first_at[AK_DEFER] >= since);
    assert_true(b.last_at[AK_DEFER] < since + 300);
    assert_true(b.first_at[AK_REJECT] >= since + 300);
    assert_true(b.first_at[AK_REJECT] <= since + 301);
    assert_string_equal(b.first_ans[AK_REJECT], DEFAULT_ESCALATE);
    assert_true(strncmp(b.first_ans[AK_REJECT], "action=REJECT 5.7.1", 19) == 0);
    assert_true(b.last_at[AK_DUNNO] < b.first_at[AK_DEFER]);
    assert_true(r->escalated);
    assert_string_equal(r->action, &DEFAULT_ESCALATE[7]);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    assert_true(r->changed >= since + 300);
    assert_true(r->since == since);
    assert_int_equal(s->ord_bad, 0);
    assert_int_equal(b.inbound_bad, 0);
    sim_free(s);
}

/* The culprit stops once throttled; its retry just before escalate_after is deferred, the
 * one at escalate_after rejected. */
static void test_escalate_at_threshold(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH "escalate_after = 5m");
    struct throttle_record *r;
    double start, since;
    char ans[ANS];

    (void)state;
    start = quiet_start(s);
    r = burst_until_throttled(s, &b, start, start + 600);
    since = r->since;
    assert_int_equal(one_relay(s, since + 299.9, CULPRIT, "", "late@r1.example", ans), AK_DEFER);
    assert_string_equal(ans, DEFAULT_CULPRIT);
    assert_false(find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT)->escalated);
    assert_int_equal(one_relay(s, since + 300, CULPRIT, "", "late@r1.example", ans), AK_REJECT);
    assert_string_equal(ans, DEFAULT_ESCALATE);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);
    assert_true(r->escalated);
    assert_true(r->since == since);
    assert_true(r->changed == since + 300);
    sim_free(s);
}

/* ------------------------------------------------------------ 5b. the culprit rules */

#define KEY_CLIENT "198.51.100.77"

/* Relay mail from n clients, each with its own sender domain, to a new domain each, one every
 * 0.5 s (none of them stands out); then on until the host is loud. */
static void spray_until_loud(struct sim *s, unsigned n)
{
    double t = s->now;

    for (unsigned i = 0; i < n; i++, t += 0.5) {
        char client[32], sender[64], rcpt[64];
        const char *r = rcpt;
        struct message m;

        sim_run(s, t, NULL, NULL);
        snprintf(client, sizeof(client), "198.18.%u.%u", 1 + i / 250, 1 + i % 250);
        snprintf(sender, sizeof(sender), "x@spray%u.test", i);
        snprintf(rcpt, sizeof(rcpt), "y@dom%u.test", i);
        sim_message(s, t, client, "", sender, &r, 1, &m);
        assert_string_equal(m.ans[0], "action=DUNNO");
    }
    sim_run(s, t + 0.5, NULL, NULL);
    assert_true(sim_run_until_loud(s, s->now + 120, NULL));
    print_message("  loud after a spray of %u relay domains: %llu relay domains in 10m\n", n,
                  (unsigned long long)traffic_relay_domains(s->t, W_DETECT, s->now));
}

/*
 * While loud, KEY_CLIENT sends to a new domain every 2 s.  After each message, at the tick
 * that follows it, it must be throttled exactly when its figures meet the culprit rules:
 * at least culprit_min_domains relay domains, and at least culprit_min_share of the host's.
 * Returns its relay domains when it was throttled (0: not within max messages); *share_before:
 * its share at the tick before, *share_at: at that tick.
 */
static uint64_t culprit_crossing(struct sim *s, unsigned max, double *share_before,
                                 double *share_at)
{
    const struct config *c = s->cfg;

    *share_before = *share_at = 0;
    for (unsigned i = 1; i <= max; i++) {
        char rcpt[64];
        const char *r = rcpt;
        struct message m;
        struct culprit_view v;
        double share;
        bool meets, throttled;

        /* Half a second before a defense_tick (every whole second from T0). */
        double at = T0 + floor(s->now - T0) + 0.5;

        snprintf(rcpt, sizeof(rcpt), "k%u@kdom%u.test", i, i);
        sim_message(s, at, KEY_CLIENT, "", "k@k-shop.test", &r, 1, &m);
        assert_string_equal(m.ans[0], "action=DUNNO");
        sim_run(s, at + 0.5, NULL, NULL); /* the tick after it */
        assert_true(sim_loud(s));
        assert_true(key_view(s, CULPRIT_CLIENT_ADDRESS, W_DETECT, KEY_CLIENT, &v));
        share = key_share(s, &v);
        meets = v.domains >= c->culprit_min_domains && share >= c->culprit_min_share;
        throttled = find_key(s, CULPRIT_CLIENT_ADDRESS, KEY_CLIENT) != NULL;
        print_message("  after %u domains: estimate %llu, share %.3f: %s\n", i,
                      (unsigned long long)v.domains, share, throttled ? "throttled" : "not throttled");
        if (throttled != meets)
            fail_msg("%s with %llu relay domains, share %.3f", throttled ? "throttled" : "not throttled",
                     (unsigned long long)v.domains, share);
        if (throttled) {
            assert_int_equal(find_key(s, CULPRIT_CLIENT_ADDRESS, KEY_CLIENT)->source,
                             THROTTLE_DETECTOR);
            *share_at = share;
            return v.domains;
        }
        *share_before = share;
        sim_run(s, s->now + 1, NULL, NULL);
    }
    return 0;
}

/* culprit_min_domains (10): with a share well over culprit_min_share all along, the key is
 * throttled at its 10th relay domain, not at its 9th. */
static void test_culprit_min_domains(void **state)
{
    struct sim *s = sim_new(SLOW_PATH);
    double before, at;

    (void)state;
    assert_int_equal(s->cfg->culprit_min_domains, 10);
    quiet_start(s);
    spray_until_loud(s, 70);
    assert_true(culprit_crossing(s, 20, &before, &at) == 10);
    assert_true(before >= 0.1);
    assert_null(find_key(s, CULPRIT_SENDER_DOMAIN, "k-shop.test"));
    assert_int_equal(throttle_count(defense_throttles(s->d)), 1);
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);
}

/* culprit_min_share (0.1): with enough relay domains, the key is throttled at the first tick
 * its share of the host's relay domains reaches 0.1, not before. */
static void test_culprit_min_share(void **state)
{
    struct sim *s = sim_new(SLOW_PATH);
    double before, at;
    uint64_t domains;

    (void)state;
    assert_true(s->cfg->culprit_min_share == 0.1);
    quiet_start(s);
    spray_until_loud(s, 110);
    domains = culprit_crossing(s, 30, &before, &at);
    print_message("  throttled at %llu relay domains: share %.3f, %.3f at the tick before\n",
                  (unsigned long long)domains, at, before);
    assert_true(domains > 10);
    assert_true(before >= 0.09 && before < 0.1);
    assert_true(at >= 0.1 && at < 0.11);
    assert_int_equal(throttle_count(defense_throttles(s->d)), 1);
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);
}

/* ------------------------------------------------------------ 6. cool-down */

static void test_cooldown(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH "throttle_cooldown = 10m");
    double start, since, until, again;
    struct throttle_record *r;
    struct culprit_view v;
    struct defense_incident in;
    char ans[ANS];

    (void)state;
    start = quiet_start(s);
    /* Two minutes of burst, then the culprit stops. */
    burst_init(&b, CULPRIT, "", "info@bulk-sender.test", start, start + 120);
    sim_run(s, start + 120, &b, NULL);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);
    assert_non_null(r);
    since = r->since;
    until = r->until;
    assert_true(until - since == 600.0);
    /* The status page's incidents: the open one, its culprit, nothing ended yet. */
    assert_true(defense_incident_at(s->d, 0, &in));
    assert_true(in.end == 0 && in.start > start && in.start < start + 120);
    assert_true(strncmp(in.start_reason, "loud: ", 6) == 0);
    assert_string_equal(in.end_reason, "");
    assert_int_equal(in.culprit_count, 1);
    assert_string_equal(in.culprits[0], "client_address:" CULPRIT);
    assert_false(defense_incident_at(s->d, 1, &in));
    assert_true(b.count[AK_DEFER] > 0);
    /* Still throttled 90 s before the cool-down ends (an old domain: nothing new). */
    sim_run(s, until - 90, NULL, NULL);
    assert_int_equal(one_relay(s, until - 90, CULPRIT, "", "again@r1.example", ans), AK_DEFER);
    assert_string_equal(ans, DEFAULT_CULPRIT);
    /* At the end of the cool-down the record goes.  The incident is still loud and the key is
     * a culprit by the window's figures (its sends of the last 10 minutes), but it sent no
     * relay mail in the last minute: it is not throttled again. */
    sim_run(s, until + 2, NULL, NULL);
    assert_true(sim_loud(s));
    assert_true(key_view(s, CULPRIT_CLIENT_ADDRESS, W_DETECT, CULPRIT, &v));
    print_message("  at the end of the cool-down (+%.0fs, detector loud, culprit silent since "
                  "+%.0fs): %llu relay domains in 10m, share %.2f\n",
                  s->now - T0, until - 90 - T0, (unsigned long long)v.domains, key_share(s, &v));
    assert_true(v.domains >= s->cfg->culprit_min_domains);
    assert_true(key_share(s, &v) >= s->cfg->culprit_min_share);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);
    if (r != NULL)
        fail_msg("throttled again though silent for 90 s: %s", r->reason);
    /* It sends again: that answer is DUNNO (nothing in force), the next tick throttles it. */
    again = s->now;
    assert_int_equal(one_relay(s, again, CULPRIT, "", "back@r2.example", ans), AK_DUNNO);
    sim_run(s, again + 1.25, NULL, NULL);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    print_message("  sent again at +%.0fs: throttled again since +%.0fs until +%.0fs\n",
                  again - T0, r->since - T0, r->until - T0);
    assert_true(r->since > again && r->since <= again + 1.25);
    assert_true(r->until - r->since == 600.0);
    assert_int_equal(one_relay(s, s->now, CULPRIT, "", "back@r2.example", ans), AK_DEFER);
    until = r->until;
    /* Quiet again: the relay domains of the burst leave the window, then detect_quiet_after;
     * by then the second cool-down is over too. */
    assert_true(sim_run_until_quiet(s, start + 3600, NULL));
    print_message("  quiet again at +%.0fs\n", s->quiet_at - T0);
    assert_true(s->quiet_at > until);
    /* Ended, and kept: the ring's newest. */
    assert_true(defense_incident_at(s->d, 0, &in));
    assert_true(in.end >= s->quiet_at - 1 && in.end <= s->quiet_at);
    assert_true(strncmp(in.start_reason, "loud: ", 6) == 0);
    assert_true(strncmp(in.end_reason, "quiet: ", 7) == 0);
    assert_true(in.peak[DS_RELAY_DOMAINS] >= 20);
    assert_false(defense_incident_at(s->d, 1, &in));
    sim_run(s, s->now + 2, NULL, NULL);
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT));
    assert_int_equal(throttle_count(defense_throttles(s->d)), 0);
    assert_int_equal(one_relay(s, s->now + 1, CULPRIT, "", "back@r1.example", ans), AK_DUNNO);
    assert_string_equal(ans, "action=DUNNO");
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);
}

/* ------------------------------------------------------------ 7. block and release */

static void test_block_release(void **state)
{
    struct sim *s = sim_new(SLOW_PATH "release_grace = 5m");
    const char *key = "198.51.100.7";
    struct throttle_record *r;
    struct burst b;
    char err[512], ans[ANS];
    double t, released, start;

    (void)state;
    quiet_start(s);
    t = s->now;
    /* Before: DUNNO. */
    assert_int_equal(one_relay(s, t, key, "", "a@partner0.test", ans), AK_DUNNO);
    /* Blocked by hand, until released: block_action on relay, nothing on inbound. */
    err[0] = '\0';
    assert_true(defense_block(s->d, "client_address:198.51.100.7", 0, s->now, err, sizeof(err)));
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, key);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_MANUAL);
    assert_true(r->until == 0);
    assert_int_equal(one_relay(s, t + 1, key, "", "b@partner0.test", ans), AK_REJECT);
    assert_string_equal(ans, DEFAULT_BLOCK);
    assert_int_equal(one_relay(s, t + 1, key, "", "postmaster@example.edu", ans), AK_DUNNO);
    assert_int_equal(one_relay(s, t + 1, "198.51.100.20", "", "c@partner0.test", ans), AK_DUNNO);
    /* Still blocked a while later (no duration: no end). */
    sim_run(s, t + 300, NULL, NULL);
    assert_int_equal(one_relay(s, t + 300, key, "", "d@partner0.test", ans), AK_REJECT);
    /* Released: DUNNO. */
    assert_true(defense_release(s->d, "client_address:198.51.100.7", s->now, err, sizeof(err)));
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, key);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_RELEASED);
    assert_int_equal(one_relay(s, t + 301, key, "", "e@partner0.test", ans), AK_DUNNO);
    assert_string_equal(ans, "action=DUNNO");
    /* Bad members. */
    err[0] = '\0';
    assert_false(defense_block(s->d, "nokind:x", 0, s->now, err, sizeof(err)));
    assert_non_null(strstr(err, "nokind:x"));
    err[0] = '\0';
    assert_false(defense_release(s->d, "nokind:x", s->now, err, sizeof(err)));
    assert_true(err[0] != '\0');
    err[0] = '\0';
    assert_false(defense_block(s->d, "client_address:", 0, s->now, err, sizeof(err)));
    assert_true(err[0] != '\0');

    /* Now the key bursts: the detector throttles it; released by hand, it is left alone for
     * release_grace although the incident goes on, then throttled again. */
    sim_run(s, s->now + 301, NULL, NULL); /* the first grace is over */
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, key));
    start = s->now;
    burst_init(&b, key, "", "info@bulk-sender.test", start, start + 3600);
    while (b.count[AK_DEFER] == 0 && s->now < start + 120)
        sim_run(s, s->now + 1, &b, NULL);
    assert_true(b.count[AK_DEFER] > 0);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, key);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    sim_run(s, s->now + 30, &b, NULL);
    assert_true(sim_loud(s));
    released = s->now;
    assert_true(defense_release(s->d, "client_address:198.51.100.7", released, err, sizeof(err)));
    burst_reset_answers(&b);
    sim_run(s, released + 299, &b, NULL);
    assert_true(sim_loud(s));
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, key);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_RELEASED);
    assert_int_equal(b.count[AK_DEFER] + b.count[AK_REJECT], 0);
    assert_true(b.count[AK_DUNNO] >= 590);
    /* The grace ends: the next tick throttles it again. */
    sim_run(s, released + 320, &b, NULL);
    print_message("  released at +%.0fs: DUNNO until +%.1fs, DEFER again from +%.1fs\n",
                  released - T0, b.last_at[AK_DUNNO] - T0, b.first_at[AK_DEFER] - T0);
    assert_true(b.count[AK_DEFER] > 0);
    /* release_grace to the tick: the burst's last DUNNO within half a second before it ends, its
     * first DEFER within half a second after. */
    assert_true(b.last_at[AK_DUNNO] >= released + 299.5);
    assert_true(b.first_at[AK_DEFER] >= released + 300);
    assert_true(b.first_at[AK_DEFER] <= released + 300.5);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, key);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);
}

/* A released key hides only what is automatic: a block by hand of another key of the same
 * request (here its client address) still applies, whatever key is looked at first. */
static void test_release_does_not_hide_block(void **state)
{
    struct sim *s = sim_new("");
    char err[512], ans[ANS];
    double t;

    (void)state;
    sim_run(s, T0 + 5, NULL, NULL);
    t = s->now;
    assert_true(defense_block(s->d, "client_address:192.0.2.1", 0, t, err, sizeof(err)));
    assert_true(defense_release(s->d, "sasl_username:alice", t, err, sizeof(err)));
    assert_int_equal(one_relay(s, t + 1, "192.0.2.1", "alice", "x@partner0.test", ans),
                     AK_REJECT);
    assert_string_equal(ans, DEFAULT_BLOCK);
    /* The other way round: bob blocked, his client address released. */
    assert_true(defense_block(s->d, "sasl_username:bob", 0, t, err, sizeof(err)));
    assert_true(defense_release(s->d, "client_address:192.0.2.2", t, err, sizeof(err)));
    assert_int_equal(one_relay(s, t + 1, "192.0.2.2", "bob", "x@partner0.test", ans), AK_REJECT);
    assert_string_equal(ans, DEFAULT_BLOCK);
    sim_free(s);
}

/* never_throttle_senders with an upper-case local part matches that sender as it is written
 * (the domain in any case); a block by hand applies to exempt senders all the same. */
static void test_never_throttle_sender_case(void **state)
{
    struct sim *s = sim_new("limit_sender_domain = 5\nnever_throttle_senders = News@Example.com");
    const char *rcpt = "x@partner0.test";
    struct throttle_record *r;
    struct message m;
    char err[512];

    (void)state;
    for (unsigned i = 0; i < 8; i++)
        sim_message(s, T0 + 1 + i, "198.51.100.50", "", "other@example.com", &rcpt, 1, &m);
    sim_run(s, s->now + 2, NULL, NULL);
    r = find_key(s, CULPRIT_SENDER_DOMAIN, "example.com");
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_LIMIT);
    sim_message(s, s->now, "198.51.100.51", "", "other@example.com", &rcpt, 1, &m);
    assert_string_equal(m.ans[0], DEFAULT_LIMIT);
    sim_message(s, s->now, "198.51.100.51", "", "News@example.com", &rcpt, 1, &m);
    assert_string_equal(m.ans[0], "action=DUNNO");
    sim_message(s, s->now, "198.51.100.51", "", "News@EXAMPLE.COM", &rcpt, 1, &m);
    assert_string_equal(m.ans[0], "action=DUNNO");
    /* Blocked by hand: the exempt sender too. */
    assert_true(defense_block(s->d, "sender_domain:example.com", 0, s->now, err, sizeof(err)));
    sim_message(s, s->now + 1, "198.51.100.51", "", "News@example.com", &rcpt, 1, &m);
    assert_string_equal(m.ans[0], DEFAULT_BLOCK);
    sim_free(s);
}

/* ------------------------------------------------------------ 8. monitor_only */

static void test_monitor_only(void **state)
{
    struct burst b;
    struct sim *s;
    struct defense_stats st;
    struct throttle_record *r;

    (void)state;
    /* escalate_after passes during the burst: monitor_only writes no escalation either. */
    s = burst_run(SLOW_PATH "monitor_only = yes\nescalate_after = 1m", &b, 180, 0);
    assert_true(s->ever_loud);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    assert_true(r->hits > 0);
    assert_true(r->local);
    assert_true(s->now - r->since > 60);
    assert_false(r->escalated);
    assert_int_equal(b.count[AK_DUNNO], b.sent);
    assert_int_equal(b.inbound_bad, 0);
    assert_int_equal(s->ord_bad, 0);
    defense_get_stats(s->d, &st);
    print_message("  monitor_only: would have deferred %llu, deferred %llu, %u culprit RCPTs\n",
                  (unsigned long long)st.would_have[AK_DEFER],
                  (unsigned long long)st.actions[AK_DEFER], b.sent);
    assert_true(st.would_have[AK_DEFER] > 0);
    assert_true(st.would_have[AK_DEFER] == r->hits);
    assert_int_equal(st.actions[AK_DEFER], 0);
    assert_int_equal(st.actions[AK_REJECT] + st.actions[AK_HOLD], 0);
    assert_int_equal(st.would_have[AK_REJECT], 0);
    sim_free(s);
}

/* ------------------------------------------------------------ 9. static limits */

/* The limit client sends count messages of n recipients (domains cycling over ndomains, or all
 * new when ndomains is 0), one every `every` seconds, from client (with SASL user sasl, "":
 * none) as sender; returns the index (1-based) of the first message with a non-DUNNO answer, 0
 * if none, and that answer in ans.  domains_before, if not NULL, gets the client's relay domains
 * in limit_window before each message (at the tick that judged it), from index 1. */
static unsigned limit_send(struct sim *s, const char *client, const char *sasl,
                           const char *sender, unsigned count, unsigned n, unsigned ndomains,
                           double every, char *first_ans, unsigned *not_dunno_after,
                           uint64_t *domains_before)
{
    unsigned first = 0;
    double t = s->now;

    *not_dunno_after = 0;
    for (unsigned i = 1; i <= count; i++) {
        char rbuf[MAX_RCPTS][128];
        const char *rcpts[MAX_RCPTS];
        struct message m;
        struct culprit_view v;

        sim_run(s, t, NULL, NULL);
        if (domains_before != NULL)
            domains_before[i] = key_view(s, CULPRIT_CLIENT_ADDRESS, W_LIMIT, client, &v)
                                    ? v.domains
                                    : 0;
        for (unsigned j = 0; j < n; j++) {
            unsigned dom = ndomains ? (i * n + j) % ndomains : i;
            snprintf(rbuf[j], sizeof(rbuf[j]), "r%u.%u@lim%u.test", i, j, dom);
            rcpts[j] = rbuf[j];
        }
        sim_message(s, s->now, client, sasl, sender, rcpts, n, &m);
        for (unsigned j = 0; j < n; j++) {
            if (m.kind[j] != AK_DUNNO) {
                if (first == 0) {
                    first = i;
                    strcpy(first_ans, m.ans[j]);
                }
            } else if (first != 0) {
                (*not_dunno_after)++; /* a DUNNO after the limit was hit */
            }
        }
        t += every;
    }
    return first;
}

static unsigned limit_client(struct sim *s, const char *client, unsigned count, unsigned n,
                             unsigned ndomains, double every, char *first_ans,
                             unsigned *not_dunno_after)
{
    return limit_send(s, client, "", "shop@shop.test", count, n, ndomains, every, first_ans,
                      not_dunno_after, NULL);
}

/* A limit's throttle: source, the reason's words (the count that passed it first), the
 * cool-down. */
static void check_limit_record(struct sim *s, enum culprit_kind kind, const char *key,
                               const char *limit, const char *count)
{
    struct throttle_record *r = find_key(s, kind, key);

    assert_non_null(r);
    print_message("  %s:%s: %s\n", culprit_kind_name(kind), key, r->reason);
    assert_int_equal(r->source, THROTTLE_LIMIT);
    assert_non_null(strstr(r->reason, limit));
    assert_non_null(strstr(r->reason, count));
    assert_true(r->until - r->since == 3600.0);
}

/* The end of a limit scenario: ordinary traffic untouched, never loud, `throttles` keys
 * throttled. */
static void limit_done(struct sim *s, unsigned throttles)
{
    assert_int_equal(s->ord_bad, 0);
    assert_false(s->ever_loud);
    assert_int_equal(throttle_count(defense_throttles(s->d)), throttles);
    sim_free(s);
}

/* At the limit (50) a key is left alone; the 51st puts it over (51 > 50), the next tick
 * throttles it, and the 52nd is the first refused (a message every 5 s). */
static void test_limit_client_recipients(void **state)
{
    struct sim *s = sim_new("limit_client_address = 50");
    char ans[ANS], other_ans[ANS];
    unsigned first, dunno_after, ofirst, odunno;

    (void)state;
    quiet_start(s);
    first = limit_client(s, "198.51.100.40", 60, 1, 3, 5.0, ans, &dunno_after);
    print_message("  limit_client_address = 50: first refused recipient #%u: %s\n", first, ans);
    assert_int_equal(first, 52);
    assert_string_equal(ans, DEFAULT_LIMIT);
    assert_int_equal(dunno_after, 0);
    check_limit_record(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.40", "limit_client_address",
                       "51 recipients in 1h > 50");
    /* Another client at exactly 50 recipients an hour is left alone, as is ordinary traffic. */
    ofirst = limit_client(s, "198.51.100.41", 50, 1, 3, 5.0, other_ans, &odunno);
    sim_run(s, s->now + 2, NULL, NULL);
    assert_int_equal(ofirst, 0);
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.41"));
    limit_done(s, 1);
}

static void test_limit_client_messages(void **state)
{
    struct sim *s = sim_new("limit_client_address = 50\nlimit_count = messages");
    char ans[ANS];
    unsigned first, dunno_after;

    (void)state;
    quiet_start(s);
    /* 2 recipients a message: 100 recipients by message 50, still not over 50 messages. */
    first = limit_client(s, "198.51.100.40", 60, 2, 3, 5.0, ans, &dunno_after);
    print_message("  limit_count = messages: first refused at message #%u: %s\n", first, ans);
    assert_int_equal(first, 52);
    assert_string_equal(ans, DEFAULT_LIMIT);
    assert_int_equal(dunno_after, 0);
    check_limit_record(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.40", "limit_client_address",
                       "51 messages in 1h > 50");
    limit_done(s, 1);
}

/* limit_sasl_username and limit_sender_domain at their limits; a limit's throttle is never
 * escalated. */
static void test_limit_sasl_and_sender_domain(void **state)
{
    struct sim *s = sim_new("limit_sasl_username = 20\nlimit_sender_domain = 40\nescalate_after = 1m");
    struct throttle_record *r;
    char ans[ANS];
    unsigned first, dunno_after;

    (void)state;
    quiet_start(s);
    /* erin at exactly 20: left alone; dave: the 21st puts him over, the 22nd is refused. */
    first = limit_send(s, "198.51.100.60", "erin", "erin@erin.test", 20, 1, 3, 5.0, ans,
                       &dunno_after, NULL);
    assert_int_equal(first, 0);
    first = limit_send(s, "198.51.100.60", "dave", "dave@dave.test", 25, 1, 3, 5.0, ans,
                       &dunno_after, NULL);
    print_message("  limit_sasl_username = 20: first refused #%u: %s\n", first, ans);
    assert_int_equal(first, 22);
    assert_string_equal(ans, DEFAULT_LIMIT);
    assert_int_equal(dunno_after, 0);
    assert_null(find_key(s, CULPRIT_SASL_USERNAME, "erin"));
    check_limit_record(s, CULPRIT_SASL_USERNAME, "dave", "limit_sasl_username",
                       "21 recipients in 1h > 20");
    /* Their shared client address and their sender domains are under their limits (none, 40). */
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.60"));
    assert_null(find_key(s, CULPRIT_SENDER_DOMAIN, "dave.test"));
    /* Past escalate_after: still limit_action. */
    r = find_key(s, CULPRIT_SASL_USERNAME, "dave");
    assert_int_equal(one_relay(s, r->since + 120, "198.51.100.60", "dave", "x@lim1.test", ans),
                     AK_DEFER);
    assert_string_equal(ans, DEFAULT_LIMIT);
    assert_false(find_key(s, CULPRIT_SASL_USERNAME, "dave")->escalated);

    /* A sender domain: 41 recipients put it over 40. */
    first = limit_send(s, "198.51.100.61", "", "sales@bulk.test", 45, 1, 3, 5.0, ans,
                       &dunno_after, NULL);
    print_message("  limit_sender_domain = 40: first refused #%u: %s\n", first, ans);
    assert_int_equal(first, 42);
    assert_int_equal(dunno_after, 0);
    check_limit_record(s, CULPRIT_SENDER_DOMAIN, "bulk.test", "limit_sender_domain",
                       "41 recipients in 1h > 40");
    assert_null(find_key(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.61"));
    limit_done(s, 2);
}

/* limit_domains = 20: each message is judged by the client's relay domains in the hour as the
 * last tick saw them (an estimate, a little high from 20 on): at 20 it passes, over 20 it is
 * refused.  Sender domains have no domain limit. */
static void test_limit_domains(void **state)
{
    struct sim *s = sim_new("limit_domains = 20");
    uint64_t before[31] = {0};
    struct culprit_view v;
    char ans[ANS];
    unsigned first, dunno_after, at_limit = 0;

    (void)state;
    quiet_start(s);
    /* A new domain every 30 s: not a burst (about 20 in the 10m window), over 20 in the hour. */
    first = limit_send(s, "198.51.100.42", "", "shop@shop.test", 30, 1, 0, 30.0, ans,
                       &dunno_after, before);
    print_message("  limit_domains = 20: first refused at domain #%u (estimate before it %llu): "
                  "%s (max relay domains %.0f/10m)\n",
                  first, (unsigned long long)before[first], ans, s->max_relay_domains);
    assert_false(s->ever_loud);
    assert_true(first >= 20 && first <= 24);
    for (unsigned i = 1; i < first; i++) {
        assert_true(before[i] <= 20);
        at_limit += before[i] == 20;
    }
    assert_true(at_limit > 0); /* a message sent at the limit passed */
    assert_true(before[first] > 20);
    assert_string_equal(ans, DEFAULT_LIMIT);
    assert_int_equal(dunno_after, 0);
    check_limit_record(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.42", "limit_domains",
                       "relay domains in 1h > 20");
    /* The estimate after 30 distinct domains, within 7 %. */
    assert_true(key_view(s, CULPRIT_CLIENT_ADDRESS, W_LIMIT, "198.51.100.42", &v));
    print_message("  the client's estimate after 30 distinct domains: %llu\n",
                  (unsigned long long)v.domains);
    assert_true(v.domains >= 28 && v.domains <= 32);
    /* Its sender domain shop.test has as many, and is not throttled: no domain limit for sender
     * domains; nor is the site's own (bob, carol, alice: five relay domains). */
    assert_true(key_view(s, CULPRIT_SENDER_DOMAIN, W_LIMIT, "shop.test", &v));
    assert_true(v.domains > 20);
    assert_null(find_key(s, CULPRIT_SENDER_DOMAIN, "shop.test"));
    assert_null(find_key(s, CULPRIT_SENDER_DOMAIN, "example.edu"));
    limit_done(s, 1);
}

/* monitor_only holds back what RelayWatch decides by itself (here a limit's throttle), not
 * an operator's block. */
static void test_monitor_only_block(void **state)
{
    struct sim *s = sim_new("monitor_only = yes\nlimit_client_address = 5");
    struct throttle_record *r;
    struct defense_stats st;
    char ans[ANS], err[512];
    unsigned first, dunno_after;

    (void)state;
    quiet_start(s);
    first = limit_client(s, "198.51.100.40", 8, 1, 3, 5.0, ans, &dunno_after);
    assert_int_equal(first, 0);
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, "198.51.100.40");
    assert_non_null(r);
    assert_int_equal(r->source, THROTTLE_LIMIT);
    assert_true(r->local);
    defense_get_stats(s->d, &st);
    assert_true(st.would_have[AK_DEFER] > 0);
    assert_int_equal(st.actions[AK_DEFER], 0);
    /* Blocked by hand: enforced, a new key and the would-be throttled one alike. */
    assert_true(defense_block(s->d, "client_address:198.51.100.7", 0, s->now, err, sizeof(err)));
    assert_int_equal(one_relay(s, s->now + 1, "198.51.100.7", "", "a@partner0.test", ans),
                     AK_REJECT);
    assert_string_equal(ans, DEFAULT_BLOCK);
    assert_true(defense_block(s->d, "client_address:198.51.100.40", 0, s->now, err, sizeof(err)));
    assert_int_equal(one_relay(s, s->now + 1, "198.51.100.40", "", "a@partner0.test", ans),
                     AK_REJECT);
    assert_string_equal(ans, DEFAULT_BLOCK);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.actions[AK_REJECT], 2);
    assert_int_equal(st.would_have[AK_REJECT], 0);
    assert_int_equal(s->ord_bad, 0);
    sim_free(s);
}

/* ------------------------------------------------------------ 10. alerts */

static unsigned long long json_number(const char *json, const char *name)
{
    char pat[64];
    const char *p;
    unsigned long long v = 0;

    snprintf(pat, sizeof(pat), "\"%s\":", name);
    p = strstr(json, pat);
    assert_non_null(p);
    assert_int_equal(sscanf(p + strlen(pat), "%llu", &v), 1);
    return v;
}

static void test_alerts(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH "detect_quiet_after = 2m"); /* the end comes sooner */
    double start;
    const struct defense_alert *alert;
    char start_alert[ALERT_COPY], end_alert[ALERT_COPY], *json;
    struct defense_stats st;

    (void)state;
    s->keep_alerts = true;
    start = quiet_start(s);
    assert_null(defense_pending_alert(s->d));
    burst_init(&b, CULPRIT, "", "info@bulk-sender.test", start, start + 180);
    assert_true(sim_run_until_loud(s, start + 120, &b));
    alert = defense_pending_alert(s->d);
    assert_non_null(alert);
    json = view_alert(alert); /* as the daemon hands it to alert_command */
    snprintf(start_alert, sizeof(start_alert), "%s", json);
    free(json);
    print_message("  start alert: %s", start_alert);
    assert_non_null(strstr(start_alert, "\"event\":\"start\""));
    assert_non_null(strstr(start_alert, "\"host\":\"mx-test\""));
    assert_non_null(strstr(start_alert, "\"duration_seconds\":null"));
    assert_non_null(strstr(start_alert, "\"client_address:" CULPRIT "\""));
    defense_alert_taken(s->d);
    assert_null(defense_pending_alert(s->d));
    /* No more alerts while the incident goes on. */
    sim_run(s, start + 180, &b, NULL);
    assert_null(defense_pending_alert(s->d));
    assert_true(sim_run_until_quiet(s, start + 3600, &b));
    alert = defense_pending_alert(s->d);
    assert_non_null(alert);
    json = view_alert(alert);
    snprintf(end_alert, sizeof(end_alert), "%s", json);
    free(json);
    print_message("  end alert: %s", end_alert);
    assert_non_null(strstr(end_alert, "\"event\":\"end\""));
    assert_non_null(strstr(end_alert, "\"host\":\"mx-test\""));
    assert_non_null(strstr(end_alert, "\"client_address:" CULPRIT "\""));
    assert_non_null(strstr(end_alert, "\"monitor_only\":false"));
    assert_true(json_number(end_alert, "duration_seconds") ==
                (unsigned long long)(s->quiet_at - s->loud_at + 0.5));
    assert_true(json_number(end_alert, "deferred") > 0);
    assert_true(json_number(end_alert, "deferred") == b.count[AK_DEFER]);
    assert_int_equal(json_number(end_alert, "rejected"), 0);
    defense_alert_taken(s->d);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.incidents, 1);
    assert_int_equal(st.alerts_dropped, 0);
    assert_true(st.incident_start == 0);
    sim_free(s);
}

/* The incident's alert carries the culprits' held messages (the quarantine's ledger). */
static void test_alert_held_count(void **state)
{
    struct burst b;
    struct sim *s = sim_new(SLOW_PATH);
    struct quarantine_settings qs = {64, 100, 3600};
    struct quarantine *q = quarantine_new(&qs);
    uint64_t h = culprit_key_hash(CULPRIT_CLIENT_ADDRESS, CULPRIT, strlen(CULPRIT));
    static const char *const ids[] = {"11111A766D1", "22222A766D1", "33333A766D1",
                                      "44444A766D1", "55555A766D1"};
    const struct defense_alert *alert;
    char *json;
    double start;

    (void)state;
    s->keep_alerts = true;
    defense_set_quarantine(s->d, q);
    start = quiet_start(s);
    /* Two held already, three queued (a stop holds them: "being held"). */
    for (unsigned i = 0; i < 5; i++)
        assert_true(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, CULPRIT, strlen(CULPRIT), h,
                                    ids[i], strlen(ids[i]), start - 60, i < 2));
    /* Someone else's queued message counts for nobody here. */
    assert_true(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.1", 9,
                                culprit_key_hash(CULPRIT_CLIENT_ADDRESS, "192.0.2.1", 9),
                                "66666A766D1", 11, start - 60, false));
    burst_init(&b, CULPRIT, "", "info@bulk-sender.test", start, start + 180);
    assert_true(sim_run_until_loud(s, start + 120, &b));
    alert = defense_pending_alert(s->d);
    assert_non_null(alert);
    json = view_alert(alert);
    print_message("  start alert: %s", json);
    assert_non_null(strstr(json, "\"quarantine\":{\"held\":2,\"being_held\":3}"));
    free(json);
    defense_alert_taken(s->d);
    sim_free(s);
    quarantine_free(q);
}

/* The alert's JSON (views.c) of an incident whose culprits' names came from the wire: quotes,
 * backslashes and control characters escaped, bytes that are not UTF-8 as U+FFFD; the
 * fields in the order alert_command always got them; integers as integers. */
static void test_alert_json_names_from_the_wire(void **state)
{
    static const char *const order[] = {"event", "host", "start", "end", "duration_seconds",
                                        "reason", "window", "peak", "culprits", "quarantine",
                                        "answers", "monitor_only", "would_have"};
    struct defense_alert a;
    char *text;
    json_t *o, *culprits, *peak;
    const char *name;
    json_t *v;
    size_t i = 0;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.event = "start";
    snprintf(a.host, sizeof(a.host), "mx-test");
    a.start = T0;
    snprintf(a.reason, sizeof(a.reason), "relay domains 40 > 8\nfrom the wire");
    snprintf(a.window, sizeof(a.window), "1m");
    for (int k = 0; k < DS_COUNT; k++)
        a.peak[k] = k == 0 ? 3.0 : k == 1 ? 12.5 : 1234567.0;
    a.culprit_count = 3;
    snprintf(a.culprits[0], sizeof(a.culprits[0]), "sasl_username:ev\"il\\\x01\x1f\x7f\xff\xc3\xa9");
    snprintf(a.culprits[1], sizeof(a.culprits[1]), "sender_domain:cut\xc3");
    snprintf(a.culprits[2], sizeof(a.culprits[2]), "sender_domain:\xed\xa0\x80.example");
    a.held = 2;
    a.being_held = 3;
    a.answers[AK_DEFER] = 7;
    a.would_have[AK_REJECT] = 4;

    text = view_alert(&a);
    assert_non_null(text);
    assert_true(strlen(text) > 2 && strcmp(text + strlen(text) - 2, "}\n") == 0);
    o = json_loads(text, 0, NULL);
    assert_non_null(o); /* valid JSON, and UTF-8 (jansson checks) */
    json_object_foreach(o, name, v) {
        assert_true(i < sizeof(order) / sizeof(order[0]));
        assert_string_equal(name, order[i++]);
    }
    assert_int_equal(i, sizeof(order) / sizeof(order[0]));
    assert_string_equal(json_string_value(json_object_get(o, "event")), "start");
    assert_string_equal(json_string_value(json_object_get(o, "host")), "mx-test");
    assert_string_equal(json_string_value(json_object_get(o, "start")), "2023-11-14T22:00:00Z");
    assert_true(json_is_null(json_object_get(o, "end")));
    assert_true(json_is_null(json_object_get(o, "duration_seconds")));
    assert_string_equal(json_string_value(json_object_get(o, "reason")),
                        "relay domains 40 > 8\nfrom the wire");
    culprits = json_object_get(o, "culprits");
    assert_int_equal(json_array_size(culprits), 3);
    assert_string_equal(json_string_value(json_array_get(culprits, 0)),
                        "sasl_username:ev\"il\\\x01\x1f\x7f\xef\xbf\xbd\xc3\xa9");
    assert_string_equal(json_string_value(json_array_get(culprits, 1)),
                        "sender_domain:cut\xef\xbf\xbd");
    /* A surrogate's encoding is not UTF-8: each of its bytes is replaced. */
    assert_string_equal(json_string_value(json_array_get(culprits, 2)),
                        "sender_domain:\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd.example");
    /* Escaped, not raw: no control byte in the text but its final newline. */
    assert_non_null(strstr(text, "ev\\\"il\\\\\\u0001\\u001"));
    for (const char *c = text; c[1] != '\0'; c++)
        assert_true((unsigned char)*c >= 0x20);
    peak = json_object_get(o, "peak");
    assert_int_equal(json_object_size(peak), DS_COUNT);
    assert_true(json_is_integer(json_object_get(peak, detector_signal_name(0))));
    assert_int_equal(json_integer_value(json_object_get(peak, detector_signal_name(0))), 3);
    assert_true(json_real_value(json_object_get(peak, detector_signal_name(1))) == 12.5);
    /* "%.6g" as before: 1234567 was 1.23457e+06. */
    assert_true(json_real_value(json_object_get(peak, detector_signal_name(2))) == 1234570.0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "quarantine"), "held")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(o, "quarantine"), "being_held")), 3);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "answers"), "deferred")), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "answers"), "held")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(o, "would_have"), "rejected")), 4);
    assert_true(json_is_false(json_object_get(o, "monitor_only")));
    json_decref(o);
    free(text);

    /* The end: its duration in whole seconds, an integer. */
    a.event = "end";
    a.end = T0 + 90.6;
    text = view_alert(&a);
    o = json_loads(text, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "end")), "2023-11-14T22:01:30Z");
    assert_true(json_is_integer(json_object_get(o, "duration_seconds")));
    assert_int_equal(json_integer_value(json_object_get(o, "duration_seconds")), 91);
    json_decref(o);
    free(text);
}

/* GET /throttle (views.c): the throttles in force with keys from the wire, and the held keys
 * of the quarantine's ledger (only those holding, asked for or released). */
static void test_throttle_view_json(void **state)
{
    struct sim *s = sim_new("");
    struct quarantine_settings qs = {64, 100, 3600};
    struct quarantine *q = quarantine_new(&qs);
    static const char odd[] = "b\"a\\d\x02\xfe";
    char member[64], err[256];
    struct http_body b = {0};
    json_t *o, *throttled, *held, *r;
    double now = T0 + 10;

    (void)state;
    snprintf(member, sizeof(member), "sasl_username:%s", odd);
    assert_true(defense_block(s->d, member, 600, now, err, sizeof(err)));
    assert_true(defense_block(s->d, "sender_domain:spam.example", 0, now, err, sizeof(err)));
    /* Released by hand: a record, but no throttle in force. */
    assert_true(defense_block(s->d, "client_address:192.0.2.99", 0, now, err, sizeof(err)));
    assert_true(defense_release(s->d, "client_address:192.0.2.99", now, err, sizeof(err)));
    /* A key on hold, and one with a queued message only (not news). */
    assert_true(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.5", 9,
                                culprit_key_hash(CULPRIT_CLIENT_ADDRESS, "192.0.2.5", 9),
                                "11111A766D1", 11, now, true));
    assert_true(quarantine_note(q, CULPRIT_CLIENT_ADDRESS, "192.0.2.6", 9,
                                culprit_key_hash(CULPRIT_CLIENT_ADDRESS, "192.0.2.6", 9),
                                "22222A766D1", 11, now, false));
    view_throttle(&b, s->d, q, now + 1);
    http_body_append(&b, "", 1);
    assert_true(b.len > 2 && b.data[b.len - 2] == '\n');
    o = json_loads(b.data, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 2);
    throttled = json_object_get(o, "throttled");
    assert_int_equal(json_array_size(throttled), 2);
    for (size_t i = 0; i < 2; i++) {
        const char *key;

        r = json_array_get(throttled, i);
        key = json_string_value(json_object_get(r, "key"));
        assert_true(json_is_integer(json_object_get(r, "answers")));
        assert_string_equal(json_string_value(json_object_get(r, "source")), "manual");
        assert_string_equal(json_string_value(json_object_get(r, "since")), "2023-11-14T22:00:10Z");
        if (strcmp(json_string_value(json_object_get(r, "kind")), "sasl_username") == 0) {
            assert_string_equal(key, "b\"a\\d\x02\xef\xbf\xbd");
            assert_string_equal(json_string_value(json_object_get(r, "until")),
                                "2023-11-14T22:10:10Z");
        } else {
            assert_string_equal(key, "spam.example");
            assert_true(json_is_null(json_object_get(r, "until"))); /* until released */
        }
    }
    held = json_object_get(o, "held");
    assert_int_equal(json_array_size(held), 1);
    r = json_array_get(held, 0);
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "client_address");
    assert_string_equal(json_string_value(json_object_get(r, "key")), "192.0.2.5");
    assert_int_equal(json_integer_value(json_object_get(r, "messages")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "being_held")), 0);
    assert_string_equal(json_string_value(json_object_get(r, "since")), "2023-11-14T22:00:10Z");
    assert_true(json_is_null(json_object_get(r, "released_at")));
    json_decref(o);
    free(b.data);

    /* Without a quarantine the held array is empty, not absent. */
    memset(&b, 0, sizeof(b));
    view_throttle(&b, s->d, NULL, now + 1);
    http_body_append(&b, "", 1);
    o = json_loads(b.data, 0, NULL);
    assert_non_null(o);
    assert_true(json_is_array(json_object_get(o, "held")));
    assert_int_equal(json_array_size(json_object_get(o, "held")), 0);
    json_decref(o);
    free(b.data);
    quarantine_free(q);
    sim_free(s);
}

/* GET /status (status.c): the host object's fields in the order scripts always got them, and
 * numbers of the types they had (whole seconds as integers, %.6g figures, null alpha). */
static void test_status_json_fields(void **state)
{
    static const char *const order[] = {
        "host", "state", "uptime_seconds", "messages_counted_at", "totals", "windows", "culprits",
        "connections", "log", "requests", "open_transactions", "store", "resolver", "tdns", "detector",
        "baselines", "incidents", "monitor_only", "relay_answers", "would_answer", "fast_path",
        "throttled"};
    struct sim *s = sim_new("");
    struct policy_server_stats server;
    uint64_t requests[STATUS_STATES][AK_COUNT];
    struct store_state store = {.backend = "memory", .connected = true};
    struct status_sources src = {s->cfg, s->t, &server, (const uint64_t(*)[AK_COUNT])requests,
                                 T0 - 100.4, &store, NULL, T0, s->d, NULL};
    struct http_body b = {0};
    json_t *top, *host, *w, *fast;
    const char *name;
    json_t *v;
    size_t i = 0;
    char err[256];

    (void)state;
    memset(&server, 0, sizeof(server));
    memset(requests, 0, sizeof(requests));
    assert_true(defense_block(s->d, "client_address:192.0.2.1", 0, T0, err, sizeof(err)));
    status_json(&b, &src, T0);
    http_body_append(&b, "", 1);
    assert_true(b.data[b.len - 2] == '\n');
    top = json_loads(b.data, 0, NULL);
    assert_non_null(top);
    assert_int_equal(json_object_size(top), 3);
    assert_non_null(json_object_get(top, "version"));
    assert_true(json_is_null(json_object_get(top, "fleet")));
    assert_int_equal(json_array_size(json_object_get(top, "hosts")), 1);
    host = json_array_get(json_object_get(top, "hosts"), 0);
    json_object_foreach(host, name, v) {
        assert_true(i < sizeof(order) / sizeof(order[0]));
        assert_string_equal(name, order[i++]);
    }
    assert_int_equal(i, sizeof(order) / sizeof(order[0]));
    assert_true(json_is_integer(json_object_get(host, "uptime_seconds")));
    assert_int_equal(json_integer_value(json_object_get(host, "uptime_seconds")), 100);
    w = json_object_get(json_object_get(host, "windows"), "1m");
    assert_true(json_is_integer(json_object_get(w, "seconds")));
    assert_true(json_is_null(json_object_get(w, "alpha")));
    assert_true(json_is_null(json_object_get(host, "resolver")));
    fast = json_object_get(host, "fast_path");
    assert_true(json_is_integer(json_object_get(fast, "window_seconds")));
    assert_true(json_is_boolean(json_object_get(fast, "enabled")));
    assert_int_equal(json_array_size(json_object_get(host, "throttled")), 1);
    json_decref(top);
    free(b.data);
    sim_free(s);
}

/* END-OF-MESSAGE of a stopped key's relay message (RCPTs accepted before the stop): HOLD, so
 * that Postfix holds it as it is queued; nobody else's, no inbound mail, not in monitor_only,
 * not with quarantine = no. */
static void eom_case(const char *overrides, enum action_kind want_blocked, unsigned want_would)
{
    struct sim *s = sim_new(overrides);
    char ans[ANS], err[256];
    struct defense_stats st;
    const char *blocked = "198.51.100.7", *other = "198.51.100.8";

    quiet_start(s);
    /* A relay RCPT accepted, then the key is blocked, then its message ends. */
    assert_int_equal(sim_request(s, s->now, "RCPT", blocked, 40001, "", "a@example.edu",
                                 "aaaa.1.1.0", "x@partner0.test", 0, ans),
                     AK_DUNNO);
    assert_int_equal(sim_request(s, s->now, "RCPT", other, 40002, "", "b@example.edu",
                                 "bbbb.1.1.0", "y@partner0.test", 0, ans),
                     AK_DUNNO);
    assert_int_equal(sim_request(s, s->now, "RCPT", blocked, 40003, "", "a@example.edu",
                                 "cccc.1.1.0", "me@example.edu", 0, ans),
                     AK_DUNNO); /* inbound */
    assert_true(defense_block(s->d, "client_address:198.51.100.7", 0, s->now, err, sizeof(err)));
    assert_int_equal(sim_request(s, s->now, "END-OF-MESSAGE", blocked, 40001, "", "a@example.edu",
                                 "aaaa.1.1.0", "", 1, ans),
                     want_blocked);
    if (want_blocked == AK_HOLD)
        assert_string_equal(ans, "action=HOLD relay mail of a sender RelayWatch stopped");
    else
        assert_string_equal(ans, "action=DUNNO");
    assert_int_equal(sim_request(s, s->now, "END-OF-MESSAGE", other, 40002, "", "b@example.edu",
                                 "bbbb.1.1.0", "", 1, ans),
                     AK_DUNNO);
    assert_int_equal(sim_request(s, s->now, "END-OF-MESSAGE", blocked, 40003, "", "a@example.edu",
                                 "cccc.1.1.0", "", 1, ans),
                     AK_DUNNO);
    defense_get_stats(s->d, &st);
    assert_int_equal(st.would_have[AK_HOLD], want_would);
    assert_int_equal(st.actions[AK_HOLD], want_blocked == AK_HOLD ? 1 : 0);
    sim_free(s);
}

static void test_hold_at_end_of_message(void **state)
{
    (void)state;
    eom_case(SLOW_PATH, AK_HOLD, 0);
    eom_case(SLOW_PATH "quarantine = no", AK_DUNNO, 0);
    eom_case(SLOW_PATH "monitor_only = yes", AK_DUNNO, 1);
}

/* ------------------------------------------------------------ 11. the store's sync */

struct collected {
    unsigned sets, dels;
    char set_keys[16][CULPRIT_KEY_MAX + 32];
    char del_keys[16][CULPRIT_KEY_MAX + 32];
    struct throttle_record last_set;
};

static void collect_cb(void *ctx, bool set, const struct throttle_record *r)
{
    struct collected *c = ctx;

    if (set) {
        if (c->sets < 16)
            snprintf(c->set_keys[c->sets], sizeof(c->set_keys[0]), "%s:%s",
                     culprit_kind_name(r->kind), r->key);
        c->sets++;
        c->last_set = *r;
    } else {
        if (c->dels < 16)
            snprintf(c->del_keys[c->dels], sizeof(c->del_keys[0]), "%s:%s",
                     culprit_kind_name(r->kind), r->key);
        c->dels++;
    }
}

static struct collected collect(struct throttle_table *t)
{
    struct collected c;

    memset(&c, 0, sizeof(c));
    throttle_collect(t, collect_cb, &c);
    return c;
}

static struct throttle_record record(enum culprit_kind kind, const char *key,
                                     enum throttle_source source, double changed, double until,
                                     const char *host, const char *action)
{
    struct throttle_record r;

    memset(&r, 0, sizeof(r));
    r.kind = kind;
    snprintf(r.key, sizeof(r.key), "%s", key);
    r.source = source;
    r.changed = r.since = changed;
    r.until = until;
    snprintf(r.host, sizeof(r.host), "%s", host);
    snprintf(r.action, sizeof(r.action), "%s", action);
    snprintf(r.reason, sizeof(r.reason), "test");
    return r;
}

static const struct throttle_record *tfind(struct throttle_table *t, enum culprit_kind kind,
                                           const char *key)
{
    return throttle_find(t, kind, key, strlen(key), culprit_key_hash(kind, key, strlen(key)));
}

static bool has_key(const struct collected *c, bool set, const char *member)
{
    unsigned n = set ? c->sets : c->dels;

    for (unsigned i = 0; i < n && i < 16; i++)
        if (strcmp(set ? c->set_keys[i] : c->del_keys[i], member) == 0)
            return true;
    return false;
}

static void test_throttle_store_sync(void **state)
{
    struct throttle_table *t = throttle_table_new(16);
    struct throttle_record a, b, c, d, released, older;
    struct throttle_record *found;
    struct collected got;

    (void)state;
    a = record(CULPRIT_CLIENT_ADDRESS, "198.51.100.1", THROTTLE_DETECTOR, 100, 4000, "mx1",
               "DEFER 4.7.1 x");
    b = record(CULPRIT_SASL_USERNAME, "bob", THROTTLE_MANUAL, 100, 0, "cli", "REJECT 5.7.1 y");
    assert_true(throttle_put(t, &a, true));
    assert_true(throttle_put(t, &b, true));
    /* Dirty records go out once. */
    got = collect(t);
    assert_int_equal(got.sets, 2);
    assert_int_equal(got.dels, 0);
    assert_true(has_key(&got, true, "client_address:198.51.100.1"));
    assert_true(has_key(&got, true, "sasl_username:bob"));
    got = collect(t);
    assert_int_equal(got.sets + got.dels, 0);
    /* A change in place goes out again. */
    found = throttle_find(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.1", 12,
                          culprit_key_hash(CULPRIT_CLIENT_ADDRESS, "198.51.100.1", 12));
    assert_non_null(found);
    found->escalated = true;
    found->changed = 150;
    throttle_changed(t, found);
    got = collect(t);
    assert_int_equal(got.sets, 1);
    assert_true(got.last_set.escalated);
    assert_string_equal(got.set_keys[0], "client_address:198.51.100.1");
    /* An older record is refused by put. */
    older = record(CULPRIT_SASL_USERNAME, "bob", THROTTLE_DETECTOR, 50, 0, "mx2", "DEFER old");
    assert_false(throttle_put(t, &older, true));
    assert_string_equal(tfind(t, CULPRIT_SASL_USERNAME, "bob")->action, "REJECT 5.7.1 y");
    /* A record of ours not written yet. */
    c = record(CULPRIT_SENDER_DOMAIN, "spam.test", THROTTLE_LIMIT, 160, 4000, "mx1", "DEFER z");
    assert_true(throttle_put(t, &c, true));

    /* A full read: a newer "released" record for a, b as we wrote it, a new key d of another
     * host, c missing (not written yet: kept). */
    released = record(CULPRIT_CLIENT_ADDRESS, "198.51.100.1", THROTTLE_RELEASED, 200, 3800, "cli",
                      "DUNNO");
    d = record(CULPRIT_CLIENT_ADDRESS, "192.0.2.99", THROTTLE_MANUAL, 120, 0, "mx2",
               "REJECT 5.7.1 w");
    throttle_sync_begin(t);
    throttle_sync_record(t, &released);
    throttle_sync_record(t, &b);
    throttle_sync_record(t, &d);
    assert_int_equal(throttle_sync_end(t), 0);
    assert_int_equal(throttle_count(t), 4);
    found = throttle_find(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.1", 12,
                          culprit_key_hash(CULPRIT_CLIENT_ADDRESS, "198.51.100.1", 12));
    assert_non_null(found);
    assert_int_equal(found->source, THROTTLE_RELEASED);
    assert_string_equal(found->action, "DUNNO");
    assert_string_equal(found->host, "cli");
    assert_true(found->changed == 200);
    assert_non_null(tfind(t, CULPRIT_CLIENT_ADDRESS, "192.0.2.99"));
    assert_string_equal(tfind(t, CULPRIT_CLIENT_ADDRESS, "192.0.2.99")->host, "mx2");
    assert_non_null(tfind(t, CULPRIT_SENDER_DOMAIN, "spam.test"));
    /* What came from the store is not written back; c (ours, dirty) is. */
    got = collect(t);
    assert_int_equal(got.sets, 1);
    assert_string_equal(got.set_keys[0], "sender_domain:spam.test");
    assert_int_equal(got.dels, 0);

    /* A second read without b (deleted by someone: we wrote it before) and without d (taken
     * from the store): both dropped; c and a are there. */
    throttle_sync_begin(t);
    throttle_sync_record(t, &released);
    throttle_sync_record(t, &c);
    assert_int_equal(throttle_sync_end(t), 2);
    assert_null(tfind(t, CULPRIT_SASL_USERNAME, "bob"));
    assert_null(tfind(t, CULPRIT_CLIENT_ADDRESS, "192.0.2.99"));
    assert_non_null(tfind(t, CULPRIT_SENDER_DOMAIN, "spam.test"));
    assert_non_null(tfind(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.1"));
    assert_int_equal(throttle_count(t), 2);
    /* Deleted there already: nothing to delete. */
    got = collect(t);
    assert_int_equal(got.sets + got.dels, 0);

    /* Expired records leave the table and, written before, the store. */
    assert_int_equal(throttle_expire(t, 3900), 1); /* the release (until 3800) */
    assert_null(tfind(t, CULPRIT_CLIENT_ADDRESS, "198.51.100.1"));
    got = collect(t);
    assert_int_equal(got.sets, 0);
    assert_int_equal(got.dels, 1);
    assert_true(has_key(&got, false, "client_address:198.51.100.1"));
    assert_int_equal(throttle_expire(t, 4000), 1);
    assert_int_equal(throttle_count(t), 0);
    throttle_table_free(t);
}

/* "Ours is newer: it goes out at the next write" (throttle.c): a read that finds an older
 * version of a record we hold keeps ours, and ours is written again. */
static void test_throttle_sync_older_in_store(void **state)
{
    struct throttle_table *t = throttle_table_new(16);
    struct throttle_record ours, theirs;
    struct collected got;

    (void)state;
    ours = record(CULPRIT_SASL_USERNAME, "mallory", THROTTLE_MANUAL, 300, 0, "cli",
                  "REJECT 5.7.1 blocked");
    theirs = record(CULPRIT_SASL_USERNAME, "mallory", THROTTLE_DETECTOR, 250, 4000, "mx2",
                    "DEFER 4.7.1 paused");
    assert_true(throttle_put(t, &ours, true));
    got = collect(t);
    assert_int_equal(got.sets, 1);
    /* Someone wrote an older version over ours. */
    throttle_sync_begin(t);
    throttle_sync_record(t, &theirs);
    assert_int_equal(throttle_sync_end(t), 0);
    assert_string_equal(tfind(t, CULPRIT_SASL_USERNAME, "mallory")->action,
                        "REJECT 5.7.1 blocked");
    got = collect(t);
    throttle_table_free(t);
    if (got.sets == 0)
        print_message("  the store keeps the older record: ours (newer) is not written again\n");
    assert_int_equal(got.sets, 1);
    assert_string_equal(got.last_set.action, "REJECT 5.7.1 blocked");
}

/* A detector throttle runs out while loud and the culprit still sends: the same tick throttles
 * it again, and the store gets the new record, not a delete that would follow it. */
static void test_rethrottle_at_expiry(void **state)
{
    struct sim *s = sim_new(SLOW_PATH "throttle_cooldown = 10m");
    struct throttle_table *t = defense_throttles(s->d);
    struct throttle_record *r;
    struct collected got;
    struct burst b;
    double start, until;

    (void)state;
    start = quiet_start(s);
    r = burst_until_throttled(s, &b, start, start + 3600);
    until = r->until;
    got = collect(t);
    assert_true(has_key(&got, true, "client_address:" CULPRIT));
    sim_run(s, until - 1, &b, NULL);
    collect(t);
    sim_run(s, until + 1.5, &b, NULL);
    assert_true(sim_loud(s));
    r = find_key(s, CULPRIT_CLIENT_ADDRESS, CULPRIT);
    assert_non_null(r);
    print_message("  cool-down until +%.0fs; throttled again since +%.0fs\n", until - T0,
                  r->since - T0);
    assert_int_equal(r->source, THROTTLE_DETECTOR);
    assert_true(r->since == until);
    got = collect(t);
    if (got.dels > 0)
        print_message("  the store is told to delete %s after the new record\n", got.del_keys[0]);
    assert_true(has_key(&got, true, "client_address:" CULPRIT));
    assert_int_equal(got.dels, 0);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newsletter_exempt),
        cmocka_unit_test(test_newsletter_not_exempt),
        cmocka_unit_test(test_relay_burst_defaults),
        cmocka_unit_test(test_relay_burst_loud_relay_action),
        cmocka_unit_test(test_relay_burst_hold),
        cmocka_unit_test(test_sasl_culprit),
        cmocka_unit_test(test_never_throttle_client_cidr),
        cmocka_unit_test(test_never_throttle_sasl_user),
        cmocka_unit_test(test_escalation),
        cmocka_unit_test(test_escalate_at_threshold),
        cmocka_unit_test(test_culprit_min_domains),
        cmocka_unit_test(test_culprit_min_share),
        cmocka_unit_test(test_cooldown),
        cmocka_unit_test(test_block_release),
        cmocka_unit_test(test_release_does_not_hide_block),
        cmocka_unit_test(test_never_throttle_sender_case),
        cmocka_unit_test(test_monitor_only),
        cmocka_unit_test(test_monitor_only_block),
        cmocka_unit_test(test_limit_client_recipients),
        cmocka_unit_test(test_limit_client_messages),
        cmocka_unit_test(test_limit_sasl_and_sender_domain),
        cmocka_unit_test(test_limit_domains),
        cmocka_unit_test(test_alerts),
        cmocka_unit_test(test_alert_held_count),
        cmocka_unit_test(test_alert_json_names_from_the_wire),
        cmocka_unit_test(test_throttle_view_json),
        cmocka_unit_test(test_status_json_fields),
        cmocka_unit_test(test_hold_at_end_of_message),
        cmocka_unit_test(test_throttle_store_sync),
        cmocka_unit_test(test_throttle_sync_older_in_store),
        cmocka_unit_test(test_rethrottle_at_expiry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
