/*
 * defense: the detector, the culprits, the limits and the throttle table,
 * and each request's answer.  See the header.
 */
#include "defense.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "fastpath.h"
#include "log.h"
#include "name_set.h"
#include "quarantine.h"
#include "traffic.h"
#include "xalloc.h"

_Static_assert(CONFIG_BASELINE_SIGNALS == DS_COUNT, "baseline_start names every signal");

#define ANSWER_MAX DECISION_ANSWER_MAX
_Static_assert(ANSWER_MAX >= THROTTLE_ACTION_MAX + 16, "an answer holds any action text");
/* Distinct action texts kept (configured ones, and those of records from other hosts).  An
 * answer handed to the server is valid until the next reload; what outlives the request's
 * handling (held answers, unfinished sends) the connection copies. */
#define ANSWERS_MAX 256
#define CULPRIT_VIEWS 32        /* keys looked at per table and tick */
#define INCIDENT_CULPRITS DEFENSE_ALERT_CULPRITS
#define LOG_EVERY 60.0 /* seconds between log lines about answers to the same key */
/* END-OF-MESSAGE of a stopped key's message (quarantine): Postfix holds it itself. */
#define HOLD_ACTION "HOLD relay mail of a sender RelayWatch stopped"

/* An action with its answer ready: the hot path formats nothing.  Never changed once made. */
struct action {
    enum action_kind kind;
    char text[THROTTLE_ACTION_MAX];
    char answer[ANSWER_MAX];
    size_t answer_len;
};

struct incident {
    bool open;
    double start, end;
    char start_reason[512];
    char end_reason[512];
    double peak[DS_COUNT];
    unsigned culprit_count;
    char culprits[INCIDENT_CULPRITS][CULPRIT_KEY_MAX + 20];
    uint64_t answers[AK_COUNT]; /* relay answers during the incident, by kind */
    uint64_t would_have[AK_COUNT];
};

_Static_assert(sizeof(((struct incident *)0)->culprits) ==
                   sizeof(((struct defense_alert *)0)->culprits),
               "an alert carries the incident's culprits as they are");

struct defense {
    const struct config *cfg;
    const struct traffic *traffic;
    struct detector *det;
    struct throttle_table *throttles;
    double full_logged_at; /* the last "throttle table is full" error (one a minute) */
    struct fast_table *fast;
    unsigned detect_w, limit_w, short_w; /* window indexes */
    const struct action *culprit, *escalate, *loud_relay, *limit, *block, *dunno, *hold;
    struct action *answers; /* ANSWERS_MAX, interned */
    unsigned answer_count;
    bool answers_full_logged;
    struct name_set *never_users, *never_senders;
    bool limits_on;
    struct incident incident;
    /* The last ended incidents, for the status page: nothing else keeps them. */
    struct incident ended[DEFENSE_INCIDENTS_KEPT];
    unsigned ended_count, ended_next;
    struct defense_stats stats;
    struct defense_alert alert;
    bool alert_pending;
    double wall; /* wall-clock time of the tick under way */
    struct culprit_view views[CULPRIT_VIEWS], recent[CULPRIT_VIEWS];
    struct culprit_view *all; /* every tracked key (culprit_slots), for the limits */
    const struct quarantine *quarantine; /* for the alerts' held counts; NULL: none */
    unsigned all_count;
};

/* Record times as the store keeps them (milliseconds), so a record read back equals ours. */
static double to_ms(double t)
{
    return floor(t * 1000.0 + 0.5) / 1000.0;
}

/* ------------------------------------------------------------- actions */

static enum action_kind kind_of(const char *text)
{
    size_t wl = strcspn(text, " \t");

    if (wl == 5 && strncasecmp(text, "DUNNO", 5) == 0)
        return AK_DUNNO;
    if (wl == 4 && strncasecmp(text, "HOLD", 4) == 0)
        return AK_HOLD;
    if ((wl == 6 && strncasecmp(text, "REJECT", 6) == 0) || text[0] == '5')
        return AK_REJECT;
    if (strncasecmp(text, "DEFER", 5) == 0 || text[0] == '4')
        return AK_DEFER;
    return AK_OTHER;
}

/* The action for text, made once and kept; NULL when ANSWERS_MAX texts are taken. */
static const struct action *intern(struct defense *d, const char *text)
{
    struct action *a;
    int n;

    for (unsigned i = 0; i < d->answer_count; i++)
        if (strcmp(d->answers[i].text, text) == 0)
            return &d->answers[i];
    if (d->answer_count == ANSWERS_MAX) {
        if (!d->answers_full_logged)
            log_error("more than %d distinct actions seen; '%s' is answered with culprit_action",
                      ANSWERS_MAX, text);
        d->answers_full_logged = true;
        return NULL;
    }
    a = &d->answers[d->answer_count++];
    snprintf(a->text, sizeof(a->text), "%s", text);
    a->kind = kind_of(a->text);
    n = snprintf(a->answer, sizeof(a->answer), "action=%s\n\n", a->text);
    a->answer_len = n < 0 ? 0 : (size_t)n < sizeof(a->answer) ? (size_t)n : sizeof(a->answer) - 1;
    return a;
}

static void answer_with(const struct action *a, struct decision *out)
{
    out->kind = a->kind;
    out->action = a->text;
    out->answer = a->answer;
    out->answer_len = a->answer_len;
}

/* The answer for a record's action text (records from other hosts or relaywatch block may
 * carry texts this configuration does not have). */
static void answer_text(struct defense *d, const char *text, struct decision *out)
{
    const struct action *a = intern(d, text);

    answer_with(a != NULL ? a : d->culprit, out);
}

/* ------------------------------------------------------------ settings */

static unsigned window_index(const struct window_set *ws, double seconds)
{
    for (unsigned w = 0; w < ws->count; w++)
        if (ws->seconds[w] == seconds)
            return w;
    return window_set_longest(ws); /* config_check refuses this; stay safe anyway */
}

static void detector_settings_from(const struct config *c, const struct window_set *ws,
                                   unsigned w, struct detector_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->window = c->detect_window;
    s->loud_after = c->detect_loud_after;
    s->quiet_after = c->detect_quiet_after;
    s->mx_factor = c->detect_mx_factor;
    s->min_mx = c->detect_min_mx;
    s->domains_factor = c->detect_domains_factor;
    s->min_domains = c->detect_min_domains;
    s->min_messages = c->detect_min_messages;
    s->alpha_low = c->detect_alpha_low;
    s->alpha_high = c->detect_alpha_high;
    s->alpha_factor = c->detect_alpha_factor;
    memcpy(s->start, c->baseline_start, sizeof(s->start));
    s->hour_days = c->baseline_hour_days;
    snprintf(s->window_name, sizeof(s->window_name), "%s", ws->name[w]);
}

static void fast_settings_from(const struct config *c, struct fast_settings *s)
{
    s->window = c->fast_window;
    s->min_domains = c->fast_min_domains;
    s->min_mx = c->fast_min_mx;
    s->factor = c->fast_factor;
    s->halflife = c->fast_halflife;
    s->slots = c->fast_slots;
    s->learn_period = c->fast_learn_period;
    s->site_min_keys = c->fast_site_min_keys;
}

static void apply_config(struct defense *d, const struct config *c)
{
    const struct window_set *ws = traffic_windows(d->traffic);

    d->cfg = c;
    d->detect_w = window_index(ws, c->detect_window);
    d->limit_w = window_index(ws, c->limit_window);
    d->short_w = 0;
    for (unsigned w = 1; w < ws->count; w++)
        if (ws->seconds[w] < ws->seconds[d->short_w])
            d->short_w = w;
    /* The five configured texts first: a full table never refuses them. */
    if (d->answer_count + 6 > ANSWERS_MAX)
        d->answer_count = 0; /* after 40+ reloads; held answers are the connections' copies */
    d->dunno = intern(d, "DUNNO");
    d->hold = intern(d, HOLD_ACTION);
    d->culprit = intern(d, c->culprit_action);
    d->escalate = intern(d, c->culprit_escalate_action);
    d->loud_relay = intern(d, c->loud_relay_action);
    d->limit = intern(d, c->limit_action);
    d->block = intern(d, c->block_action);
    name_set_free(d->never_users);
    name_set_free(d->never_senders);
    d->never_users = name_set_new(c->never_throttle_sasl_users, c->never_throttle_sasl_user_count, 0);
    /* The list holds domains lower-cased (config.c) and local parts as written: compared as
     * they are, they match a request's sender with its domain folded. */
    d->never_senders = name_set_new(c->never_throttle_senders, c->never_throttle_sender_count, 0);
    if (d->fast != NULL) {
        struct fast_settings fs;

        fast_settings_from(c, &fs);
        fast_reconfigure(d->fast, &fs);
    }
    d->limits_on = c->limit_sasl_username || c->limit_client_address || c->limit_sender_domain ||
                   c->limit_domains;
}

struct defense *defense_new(const struct config *cfg, const struct traffic *t)
{
    struct defense *d = xcalloc(1, sizeof(*d));
    struct detector_settings s;

    d->traffic = t;
    d->answers = xcalloc(ANSWERS_MAX, sizeof(*d->answers));
    {
        struct fast_settings fs;

        /* Made even while fast_path is off, so that a reload can turn it on. */
        fast_settings_from(cfg, &fs);
        d->fast = fast_table_new(&fs);
    }
    apply_config(d, cfg);
    detector_settings_from(cfg, traffic_windows(t), d->detect_w, &s);
    d->det = detector_new(&s);
    d->throttles = throttle_table_new(cfg->throttle_slots);
    /* culprit_slots and throttle_slots take effect at a restart only: sized once. */
    d->all_count = cfg->culprit_slots;
    d->all = xcalloc(d->all_count, sizeof(*d->all));
    return d;
}

void defense_free(struct defense *d)
{
    if (d == NULL)
        return;
    detector_free(d->det);
    throttle_table_free(d->throttles);
    fast_table_free(d->fast);
    free(d->all);
    free(d->answers);
    name_set_free(d->never_users);
    name_set_free(d->never_senders);
    free(d);
}

void defense_reconfigure(struct defense *d, const struct config *cfg)
{
    struct detector_settings s;

    apply_config(d, cfg);
    detector_settings_from(cfg, traffic_windows(d->traffic), d->detect_w, &s);
    detector_reconfigure(d->det, &s);
}

bool defense_wants_news(const struct defense *d)
{
    return d->cfg->fast_path || d->cfg->quarantine || throttle_count(d->throttles) > 0 ||
           detector_state(d->det) == DETECTOR_LOUD;
}

/* ------------------------------------------------------------ requests */

/* Whether a sender is on never_throttle_senders: the address, or its domain. */
static bool sender_exempt(const struct defense *d, struct policy_slice sender)
{
    struct policy_slice domain;
    char folded[512];

    if (name_set_count(d->never_senders) == 0 || sender.len == 0 || sender.len >= sizeof(folded))
        return false;
    domain = policy_address_domain(sender);
    /* user@Domain: the local part as sent, the domain folded (as the list holds it). */
    memcpy(folded, sender.ptr, sender.len);
    for (size_t i = sender.len - domain.len; i < sender.len; i++)
        if (folded[i] >= 'A' && folded[i] <= 'Z')
            folded[i] = (char)(folded[i] + 32);
    return name_set_has(d->never_senders, folded, sender.len) ||
           (domain.len > 0 &&
            name_set_has(d->never_senders, folded + (sender.len - domain.len), domain.len));
}

static bool request_exempt(const struct defense *d, const struct policy_request *req)
{
    const struct config *c = d->cfg;
    struct policy_slice user = req->attr[PA_SASL_USERNAME];
    struct policy_slice client = req->attr[PA_CLIENT_ADDRESS];

    return (user.len > 0 && name_set_count(d->never_users) > 0 &&
            name_set_has(d->never_users, user.ptr, user.len)) ||
           config_address_in(client.ptr, client.len, c->never_throttle_nets,
                             c->never_throttle_client_count) ||
           sender_exempt(d, req->attr[PA_SENDER]);
}

/*
 * The request's throttle record in force, if any: a block by hand first, then any other.
 * A released key's record (its grace) is none, and sets *released: nothing automatic
 * applies to that key, the loud state's action included.
 */
static struct throttle_record *record_for(struct defense *d, const struct policy_request *req,
                                          const struct traffic_news *news, double now,
                                          bool *released)
{
    struct throttle_record *found = NULL;
    struct policy_slice user = req->attr[PA_SASL_USERNAME];
    struct policy_slice client = req->attr[PA_CLIENT_ADDRESS];
    uint64_t hashes[3];
    enum culprit_kind kinds[3];
    struct policy_slice keys[3];
    struct policy_slice sender_domain = policy_address_domain(req->attr[PA_SENDER]);
    char domain[CULPRIT_KEY_MAX];
    unsigned n = 0;

    if (news->who) {
        hashes[n] = news->who;
        keys[n] = user.len > 0 ? user : client;
        kinds[n++] = user.len > 0 ? CULPRIT_SASL_USERNAME : CULPRIT_CLIENT_ADDRESS;
    }
    /* An authenticated client's address may be blocked too. */
    if (user.len > 0 && client.len > 0) {
        hashes[n] = culprit_key_hash(CULPRIT_CLIENT_ADDRESS, client.ptr, client.len);
        keys[n] = client;
        kinds[n++] = CULPRIT_CLIENT_ADDRESS;
    }
    if (news->sender_domain) {
        /* Known by its folded form, as traffic hashed it. */
        hashes[n] = news->sender_domain;
        keys[n].ptr = domain;
        keys[n].len = culprit_fold_domain(sender_domain.ptr, sender_domain.len, domain);
        kinds[n++] = CULPRIT_SENDER_DOMAIN;
    }
    *released = false;
    for (unsigned i = 0; i < n; i++) {
        struct throttle_record *r =
            throttle_find(d->throttles, kinds[i], keys[i].ptr, keys[i].len, hashes[i]);

        if (r == NULL || (r->until != 0 && r->until <= now))
            continue;
        if (r->source == THROTTLE_RELEASED)
            *released = true;
        else if (found == NULL || (r->source == THROTTLE_MANUAL && found->source != THROTTLE_MANUAL))
            found = r;
    }
    return found;
}

static void count_answer(struct defense *d, enum action_kind kind, bool would)
{
    if (would) {
        d->stats.would_have[kind]++;
        if (d->incident.open)
            d->incident.would_have[kind]++;
    } else {
        d->stats.actions[kind]++;
        if (d->incident.open)
            d->incident.answers[kind]++;
    }
}

static bool throttle_key(struct defense *d, const struct culprit_view *v,
                         enum throttle_source source, const struct action *a, double now,
                         const char *reason);

/* The key a relay RCPT is judged by (SASL user, else client address): its length, 0 for none. */
static size_t fast_key(const struct policy_request *req, const struct traffic_news *news,
                       struct culprit_view *v, uint64_t *hash)
{
    struct policy_slice user = req->attr[PA_SASL_USERNAME];
    struct policy_slice client = req->attr[PA_CLIENT_ADDRESS];
    struct policy_slice key = user.len > 0 ? user : client;
    size_t len = key.len < CULPRIT_KEY_MAX ? key.len : CULPRIT_KEY_MAX;

    if (key.len == 0)
        return 0;
    v->kind = user.len > 0 ? CULPRIT_SASL_USERNAME : CULPRIT_CLIENT_ADDRESS;
    memcpy(v->key, key.ptr, len);
    v->key[len] = '\0';
    *hash = news->who ? news->who : culprit_key_hash(v->kind, v->key, len);
    return len;
}

/* The fast path: count the relay RCPT for its key, and stop the key at once when it is far
 * over what is usual for it. */
static void fast_check(struct defense *d, const struct policy_request *req,
                       const struct traffic_news *news, double now)
{
    struct culprit_view v;
    struct fast_verdict fv;
    uint64_t hash;
    char reason[THROTTLE_REASON_MAX];
    const struct throttle_record *r;
    const char *verb, *what;
    unsigned figure, limit;
    double usual, floor_value;
    size_t len;

    len = fast_key(req, news, &v, &hash);
    if (len == 0)
        return;
    fast_note_rcpt(d->fast, v.kind, v.key, len, hash, news->relay_domain, now, &fv);
    if (!fv.over && throttle_count(d->throttles) == 0)
        return; /* the usual case: no lookup */
    /* A key throttled already, or released (its grace), is left alone; a throttled key's
     * learning period is not learned, even if the throttle ends before the period does. */
    r = throttle_find(d->throttles, v.kind, v.key, len, hash);
    if (r != NULL) {
        if (throttle_in_force(r, now))
            fast_entry_stopped(d->fast, fv.entry);
        return;
    }
    if (!fv.over || request_exempt(d, req))
        return; /* never_throttle_*: counted and learned, never stopped */
    if (fv.domains > fv.limit_domains) {
        verb = "sent to";
        what = "new relay domains";
        figure = fv.domains;
        limit = fv.limit_domains;
        usual = fv.usual_domains;
        floor_value = d->cfg->fast_min_domains;
    } else {
        verb = "caused";
        what = "MX queries sent upstream";
        figure = fv.mx;
        limit = fv.limit_mx;
        usual = fv.usual_mx;
        floor_value = d->cfg->fast_min_mx;
    }
    snprintf(reason, sizeof(reason),
             "fast: %s:%s %s %u %s in %.1fs; %s %.1f per %gs (limit %u: the larger of %.0f and "
             "%g x that); %u new relay domains and %u upstream MX queries in the window",
             culprit_kind_name(v.kind), v.key, verb, figure, what, fv.span,
             fv.history ? "its usual is" : "it has no history, the site's usual is", usual,
             d->cfg->fast_window, limit, floor_value, d->cfg->fast_factor, fv.domains, fv.mx);
    d->wall = now;
    if (throttle_key(d, &v, THROTTLE_FAST, d->culprit, now, reason))
        d->stats.fast_stops++;
}

/* quarantine: a message of a stopped key that Postfix is about to queue (its RCPTs came
 * before the stop) is held as it is queued. */
static void end_of_message(struct defense *d, const struct policy_request *req,
                           const struct traffic_news *news, double now, struct decision *out)
{
    bool released;
    struct throttle_record *r;

    if (!d->cfg->quarantine || !news->relay_message || throttle_count(d->throttles) == 0)
        return;
    r = record_for(d, req, news, now, &released);
    if (r == NULL || (r->source != THROTTLE_MANUAL && request_exempt(d, req)))
        return;
    if (d->cfg->monitor_only || r->local) {
        count_answer(d, AK_HOLD, true);
        if (r->last_logged + LOG_EVERY <= now) { /* once a minute per key, as the answers */
            log_info("monitor_only: would hold message %.*s of %s:%s as it is queued",
                     (int)req->attr[PA_QUEUE_ID].len, req->attr[PA_QUEUE_ID].ptr,
                     culprit_kind_name(r->kind), r->key);
            r->last_logged = now;
        }
        return;
    }
    count_answer(d, AK_HOLD, false);
    answer_with(d->hold, out);
}

void defense_decide(struct defense *d, const struct policy_request *req,
                    const struct traffic_news *news, double now, struct decision *out)
{
    struct throttle_record *r;
    struct decision verdict;
    bool loud, released, manual;

    answer_with(d->dunno, out);
    if (req->state == PS_END_OF_MESSAGE) {
        end_of_message(d, req, news, now, out);
        return;
    }
    /* Only relay RCPTs: inbound mail (local_domains) is never touched. */
    if (req->state != PS_RCPT || !news->relay)
        return;
    if (d->cfg->fast_path && news->relay_recipient)
        fast_check(d, req, news, now);
    loud = detector_state(d->det) == DETECTOR_LOUD;
    if (!loud && throttle_count(d->throttles) == 0)
        return;
    r = record_for(d, req, news, now, &released);
    manual = r != NULL && r->source == THROTTLE_MANUAL;
    /* never_throttle_* keeps automatic throttling away, not an operator's block. */
    if (!manual && request_exempt(d, req))
        return;
    if (r != NULL) {
        /* monitor_only changes nothing for the fleet: no escalation written. */
        if ((r->source == THROTTLE_DETECTOR || r->source == THROTTLE_FAST) && !r->escalated && d->cfg->escalate_after > 0 &&
            !d->cfg->monitor_only && now - r->since >= d->cfg->escalate_after) {
            /* Still sending after escalate_after: the stronger action, for the fleet too. */
            r->escalated = true;
            snprintf(r->action, sizeof(r->action), "%s", d->escalate->text);
            r->changed = to_ms(now);
            throttle_changed(d->throttles, r);
            log_warning("throttle %s:%s escalated to '%s': still sending %.0fs after it was "
                        "throttled (escalate_after %.0fs)",
                        culprit_kind_name(r->kind), r->key, r->action, now - r->since,
                        d->cfg->escalate_after);
        }
        answer_text(d, r->action, &verdict);
        r->hits++;
        if (r->last_logged + LOG_EVERY <= now) {
            bool held_back = d->cfg->monitor_only && r->source != THROTTLE_MANUAL;

            /* Once a minute per key; the reason was logged when it was throttled. */
            log_info("%s%s to %s:%s (%s throttle by %s, %llu answers so far)",
                     held_back ? "monitor_only: would answer " : "answered ",
                     verdict.action, culprit_kind_name(r->kind), r->key,
                     throttle_source_name(r->source), r->host, (unsigned long long)r->hits);
            r->last_logged = now;
        }
    } else if (loud && !released) {
        verdict = *out;
        answer_with(d->loud_relay, &verdict);
    } else {
        return;
    }
    if (verdict.kind == AK_DUNNO) {
        count_answer(d, AK_DUNNO, false);
        return;
    }
    /* monitor_only holds back what RelayWatch decided by itself, not an operator's block. */
    if (d->cfg->monitor_only && !manual) {
        count_answer(d, verdict.kind, true);
        return;
    }
    count_answer(d, verdict.kind, false);
    *out = verdict;
}

/* ---------------------------------------------------------------- tick */

static void incident_add_culprit(struct incident *in, const struct throttle_record *r)
{
    char member[sizeof(in->culprits[0])];

    if (!in->open || in->culprit_count == INCIDENT_CULPRITS)
        return;
    snprintf(member, sizeof(member), "%s:%s", culprit_kind_name(r->kind), r->key);
    for (unsigned i = 0; i < in->culprit_count; i++)
        if (strcmp(in->culprits[i], member) == 0)
            return; /* throttled again after its cool-down: named once */
    memcpy(in->culprits[in->culprit_count++], member, sizeof(member));
}

static bool view_exempt(const struct defense *d, const struct culprit_view *v)
{
    const struct config *c = d->cfg;
    size_t len = strlen(v->key);

    switch (v->kind) {
    case CULPRIT_SASL_USERNAME:
        return name_set_has(d->never_users, v->key, len);
    case CULPRIT_CLIENT_ADDRESS:
        return config_address_in(v->key, len, c->never_throttle_nets,
                                 c->never_throttle_client_count);
    case CULPRIT_SENDER_DOMAIN:
        /* Culprit keys hold sender domains folded already. */
        return name_set_has(d->never_senders, v->key, len);
    }
    return false;
}

/* Throttle a key: a new record, logged, in the incident. */
static bool throttle_key(struct defense *d, const struct culprit_view *v,
                         enum throttle_source source, const struct action *a, double now,
                         const char *reason)
{
    struct throttle_record r;

    memset(&r, 0, sizeof(r));
    r.kind = v->kind;
    snprintf(r.key, sizeof(r.key), "%s", v->key);
    (void)now;
    r.source = source;
    r.changed = r.since = to_ms(d->wall);
    r.until = r.since + d->cfg->throttle_cooldown;
    snprintf(r.host, sizeof(r.host), "%s", d->cfg->host_id);
    snprintf(r.action, sizeof(r.action), "%s", a->text);
    snprintf(r.reason, sizeof(r.reason), "%s", reason);
    /* monitor_only's throttles stay here: a host of the fleet not in monitor_only would
     * enforce them. */
    r.local = d->cfg->monitor_only;
    if (!throttle_put(d->throttles, &r, true)) {
        /* Said once a minute: the fast path would try again at every RCPT of the key. */
        if (d->stats.throttle_full++ == 0 || d->wall - d->full_logged_at >= 60) {
            d->full_logged_at = d->wall;
            log_error("cannot throttle %s:%s: the throttle table is full (throttle_slots %u; "
                      "%llu throttles dropped so far)",
                      culprit_kind_name(r.kind), r.key, d->cfg->throttle_slots,
                      (unsigned long long)d->stats.throttle_full);
        }
        return false;
    }
    /* Its fast-path period under way is not learned (a relay's figures). */
    if (d->fast != NULL && r.kind != CULPRIT_SENDER_DOMAIN)
        fast_mark_stopped(d->fast, r.kind, r.key, strlen(r.key),
                          culprit_key_hash(r.kind, r.key, strlen(r.key)));
    d->stats.throttled_total++;
    incident_add_culprit(&d->incident, &r);
    log_warning("%sthrottle %s:%s with '%s' until %.0fs from now: %s",
                d->cfg->monitor_only ? "monitor_only: would " : "", culprit_kind_name(r.kind),
                r.key, r.action, d->cfg->throttle_cooldown, r.reason);
    return true;
}

static bool has_record(const struct defense *d, const struct culprit_view *v)
{
    size_t len = strlen(v->key);

    return throttle_find(d->throttles, v->kind, v->key, len,
                         culprit_key_hash(v->kind, v->key, len)) != NULL;
}

/* Whether a key sent relay mail in the shortest window (the last minute by default): the
 * busiest CULPRIT_VIEWS keys of that window are looked at. */
static bool still_sending(struct defense *d, bool by_sender_domain, const struct culprit_view *v,
                          double now)
{
    unsigned n = traffic_culprits(d->traffic, by_sender_domain, d->short_w, now, d->recent,
                                  CULPRIT_VIEWS);

    for (unsigned i = 0; i < n; i++)
        if (d->recent[i].kind == v->kind && strcmp(d->recent[i].key, v->key) == 0)
            return true;
    return false;
}

/* While loud: the keys behind the burst, by their share of relay domains and of MX queries. */
static void pick_culprits(struct defense *d, double now, uint64_t domains, uint64_t upstream)
{
    const struct config *c = d->cfg;
    bool who_found = false;

    for (int table = 0; table < 2; table++) {
        bool by_sender_domain = table == 1;
        unsigned n;

        /* Sender domains are shared by many senders (and forged): only when no SASL user or
         * client stands out. */
        if (by_sender_domain && who_found)
            break;
        n = traffic_culprits(d->traffic, by_sender_domain, d->detect_w, now, d->views,
                             CULPRIT_VIEWS);
        for (unsigned i = 0; i < n; i++) {
            const struct culprit_view *v = &d->views[i];
            /* A key's distinct domains are a coarser estimate than the host's: never more
             * than all of them. */
            uint64_t key_domains = v->domains < domains ? v->domains : domains;
            double dom_share = domains ? (double)key_domains / (double)domains : 0;
            double mx_share = upstream ? fmin(1.0, (double)v->dns_upstream / (double)upstream) : 0;
            double share = fmax(dom_share, mx_share);
            char reason[THROTTLE_REASON_MAX];

            if (v->domains < c->culprit_min_domains || share < c->culprit_min_share)
                continue;
            if (!by_sender_domain)
                who_found = true;
            /* A key that stopped stays in the window for a while: once its throttle ran out,
             * it is throttled again only if it is still at it. */
            if (has_record(d, v) || view_exempt(d, v) || !still_sending(d, by_sender_domain, v, now))
                continue;
            snprintf(reason, sizeof(reason),
                     "culprit of the relay burst: %llu of %llu relay domains (%.0f%%), %llu of "
                     "%llu queries sent upstream (%.0f%%), %llu messages, %llu recipients in %s; %s",
                     (unsigned long long)key_domains, (unsigned long long)domains,
                     100 * dom_share, (unsigned long long)v->dns_upstream,
                     (unsigned long long)upstream, 100 * mx_share,
                     (unsigned long long)v->messages, (unsigned long long)v->recipients,
                     traffic_windows(d->traffic)->name[d->detect_w], detector_reason(d->det));
            throttle_key(d, v, THROTTLE_DETECTOR, d->culprit, now, reason);
        }
    }
}

static void check_limits(struct defense *d, double now)
{
    const struct config *c = d->cfg;
    const char *wname = traffic_windows(d->traffic)->name[d->limit_w];

    for (int table = 0; table < 2; table++) {
        unsigned n = traffic_culprits(d->traffic, table == 1, d->limit_w, now, d->all,
                                      d->all_count);

        for (unsigned i = 0; i < n; i++) {
            const struct culprit_view *v = &d->all[i];
            unsigned limit = v->kind == CULPRIT_SASL_USERNAME    ? c->limit_sasl_username
                             : v->kind == CULPRIT_CLIENT_ADDRESS ? c->limit_client_address
                                                                 : c->limit_sender_domain;
            uint64_t count = c->limit_count_messages ? v->messages : v->recipients;
            char reason[THROTTLE_REASON_MAX];

            if (limit > 0 && count > limit)
                snprintf(reason, sizeof(reason), "over limit_%s: %llu %s in %s > %u",
                         culprit_kind_name(v->kind), (unsigned long long)count,
                         c->limit_count_messages ? "messages" : "recipients", wname, limit);
            /* Not for sender domains: a site's own domain is shared by all its users. */
            else if (c->limit_domains > 0 && v->kind != CULPRIT_SENDER_DOMAIN &&
                     v->domains > c->limit_domains)
                snprintf(reason, sizeof(reason), "over limit_domains: %llu relay domains in %s > %u",
                         (unsigned long long)v->domains, wname, c->limit_domains);
            else
                continue;
            if (has_record(d, v) || view_exempt(d, v))
                continue;
            throttle_key(d, v, THROTTLE_LIMIT, d->limit, now, reason);
        }
    }
}

/* The incident as it stands, for alert_command (the daemon renders it). */
static void incident_alert(struct defense *d, const char *event, const char *reason)
{
    struct incident *in = &d->incident;
    struct defense_alert *a = &d->alert;

    if (d->alert_pending) {
        d->stats.alerts_dropped++;
        return;
    }
    memset(a, 0, sizeof(*a));
    a->event = event;
    snprintf(a->host, sizeof(a->host), "%s", d->cfg->host_id);
    a->start = in->start;
    a->end = in->end;
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    snprintf(a->window, sizeof(a->window), "%s", traffic_windows(d->traffic)->name[d->detect_w]);
    memcpy(a->peak, in->peak, sizeof(a->peak));
    a->culprit_count = in->culprit_count;
    memcpy(a->culprits, in->culprits, sizeof(a->culprits));
    /* The culprits' queued messages: on hold, and being put on hold (at the start the holds
     * are under way: they follow the stop by a second or so). */
    for (unsigned i = 0; d->quarantine != NULL && i < in->culprit_count; i++) {
        struct quarantine_key_info k;
        enum culprit_kind kind;
        char key[CULPRIT_KEY_MAX + 1];

        if (throttle_parse_member(in->culprits[i], strlen(in->culprits[i]), &kind, key,
                                  sizeof(key)) &&
            quarantine_info(d->quarantine, kind, key, strlen(key),
                            culprit_key_hash(kind, key, strlen(key)), d->wall, &k)) {
            a->held += k.held;
            a->being_held += k.asked + (d->cfg->monitor_only ? 0 : k.due);
        }
    }
    memcpy(a->answers, in->answers, sizeof(a->answers));
    a->monitor_only = d->cfg->monitor_only;
    memcpy(a->would_have, in->would_have, sizeof(a->would_have));
    d->alert_pending = true;
}

static void culprit_list(const struct incident *in, char *out, size_t len)
{
    size_t n = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < in->culprit_count && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "", in->culprits[i]);
    if (in->culprit_count == 0)
        snprintf(out, len, "none identified");
}

/* Whether a key is throttled now (its fast-path period is not learned). */
static bool key_stopped(void *ctx, enum culprit_kind kind, const char *key, uint64_t hash)
{
    struct defense *d = ctx;
    const struct throttle_record *r = throttle_find(d->throttles, kind, key, strlen(key), hash);

    return r != NULL && throttle_in_force(r, d->wall);
}

void defense_learn_now(struct defense *d, double wall)
{
    d->wall = wall;
    fast_learn_now(d->fast, wall, key_stopped, d);
}

void defense_dns(struct defense *d, uint64_t who, uint32_t mx_upstream, double now)
{
    if (who != 0 && mx_upstream > 0)
        fast_note_mx(d->fast, who, mx_upstream, now);
}

size_t defense_fast_save(const struct defense *d, double now, char *out, size_t outlen)
{
    return fast_save(d->fast, now, out, outlen);
}

unsigned defense_fast_load(struct defense *d, const char *text, size_t len, double now)
{
    return fast_load(d->fast, text, len, now);
}

void defense_fast_stats(const struct defense *d, struct fast_stats *out)
{
    fast_get_stats(d->fast, out);
}

static bool fast_culprit(void *arg, const struct throttle_record *r)
{
    struct defense *d = arg;

    if (r->source == THROTTLE_FAST && throttle_in_force(r, d->wall) &&
        r->since >= d->wall - d->cfg->detect_window)
        incident_add_culprit(&d->incident, r);
    return true;
}

void defense_tick(struct defense *d, const struct defense_inputs *in)
{
    const struct traffic *t = d->traffic;
    unsigned w = d->detect_w;
    double now = in->now;
    struct detector_sample s = {0};
    struct detector_view view;
    enum detector_event ev;
    uint64_t upstream = 0;

    /* Records carry wall-clock times (the CLI's and other hosts' clocks); the counts go by
     * the counting clock. */
    d->wall = in->wall != 0 ? in->wall : now;
    throttle_expire(d->throttles, d->wall);
    fast_tick(d->fast, d->wall, key_stopped, d);
    s.now = now;
    s.hour = in->hour;
    s.warming_up = in->warming_up;
    s.own_dns = in->own_dns;
    if (in->own_dns) {
        s.own_mx = traffic_window(t, TC_DNS(DNS_MX, DNS_UPSTREAM), w, now);
        s.own_a = traffic_window(t, TC_DNS(DNS_A, DNS_UPSTREAM), w, now) +
                  traffic_window(t, TC_DNS(DNS_AAAA, DNS_UPSTREAM), w, now);
        s.own_ptr = traffic_window(t, TC_DNS(DNS_PTR, DNS_UPSTREAM), w, now);
        upstream = s.own_mx + s.own_a + s.own_ptr;
    }
    s.tdns = in->tdns;
    s.tdns_mx = in->tdns_mx;
    s.tdns_a = in->tdns_a;
    s.tdns_ptr = in->tdns_ptr;
    s.nc = traffic_window(t, TC_SESSIONS, w, now);
    s.nf = traffic_window(t, TC_MESSAGES_LOGGED, w, now);
    s.relay_rcpt = traffic_window(t, TC_RECIPIENTS_RELAY, w, now);
    s.relay_domains = traffic_relay_domains(t, w, now);
    ev = detector_observe(d->det, &s);
    detector_get_view(d->det, &view);
    d->stats.state = view.state;

    if (ev == DETECTOR_WENT_LOUD) {
        memset(&d->incident, 0, sizeof(d->incident));
        d->incident.open = true;
        d->incident.start = now;
        snprintf(d->incident.start_reason, sizeof(d->incident.start_reason), "%s",
                 detector_reason(d->det));
        d->stats.incidents++;
        d->stats.incident_start = now;
        log_warning("incident %llu started: %s%s%s%s", (unsigned long long)d->stats.incidents,
                    detector_reason(d->det), in->missing[0] || view.missing[0] ? "; missing: " : "",
                    in->missing, view.missing);
    }
    if (d->incident.open) {
        for (int i = 0; i < DS_COUNT; i++)
            if (view.value[i] > d->incident.peak[i])
                d->incident.peak[i] = view.value[i];
        if (ev == DETECTOR_WENT_LOUD) {
            /* Keys the fast path stopped within the window belong to this incident too. */
            throttle_each(d->throttles, fast_culprit, d);
            pick_culprits(d, now, s.relay_domains, upstream);
            incident_alert(d, "start", d->incident.start_reason);
        }
    }
    if (view.state == DETECTOR_LOUD && ev != DETECTOR_WENT_LOUD)
        pick_culprits(d, now, s.relay_domains, upstream);
    if (d->limits_on)
        check_limits(d, now);
    if (ev == DETECTOR_WENT_QUIET && d->incident.open) {
        char culprits[1024];

        d->incident.end = now;
        culprit_list(&d->incident, culprits, sizeof(culprits));
        log_warning("incident %llu ended after %.0fs: %s; peak MX %.0f, relay domains %.0f, relay "
                    "recipients %.0f per %s; culprits: %s; relay mail deferred %llu, refused %llu, "
                    "held %llu%s",
                    (unsigned long long)d->stats.incidents, now - d->incident.start,
                    detector_reason(d->det), d->incident.peak[DS_MX],
                    d->incident.peak[DS_RELAY_DOMAINS], d->incident.peak[DS_RELAY_RCPT],
                    traffic_windows(t)->name[w], culprits,
                    (unsigned long long)d->incident.answers[AK_DEFER],
                    (unsigned long long)d->incident.answers[AK_REJECT],
                    (unsigned long long)d->incident.answers[AK_HOLD],
                    d->cfg->monitor_only ? " (monitor_only: nothing was refused)" : "");
        incident_alert(d, "end", detector_reason(d->det));
        d->incident.open = false;
        d->stats.incident_start = 0;
        snprintf(d->incident.end_reason, sizeof(d->incident.end_reason), "%s",
                 detector_reason(d->det));
        d->ended[d->ended_next] = d->incident;
        d->ended_next = (d->ended_next + 1) % DEFENSE_INCIDENTS_KEPT;
        if (d->ended_count < DEFENSE_INCIDENTS_KEPT)
            d->ended_count++;
    }
}

static void incident_view(const struct incident *in, struct defense_incident *out)
{
    out->start = in->start;
    out->end = in->open ? 0 : in->end;
    out->start_reason = in->start_reason;
    out->end_reason = in->open ? "" : in->end_reason;
    memcpy(out->peak, in->peak, sizeof(out->peak));
    out->culprit_count = in->culprit_count;
    out->culprits = in->culprits;
    memcpy(out->answers, in->answers, sizeof(out->answers));
    memcpy(out->would_have, in->would_have, sizeof(out->would_have));
}

bool defense_incident_at(const struct defense *d, unsigned i, struct defense_incident *out)
{
    if (d->incident.open) {
        if (i == 0) {
            incident_view(&d->incident, out);
            return true;
        }
        i--;
    }
    if (i >= d->ended_count)
        return false;
    incident_view(&d->ended[(d->ended_next + DEFENSE_INCIDENTS_KEPT - 1 - i) %
                            DEFENSE_INCIDENTS_KEPT],
                  out);
    return true;
}

/* ------------------------------------------------------------- outside */

const struct defense_alert *defense_pending_alert(const struct defense *d)
{
    return d->alert_pending ? &d->alert : NULL;
}

void defense_alert_taken(struct defense *d)
{
    d->alert_pending = false;
}

bool defense_request_exempt(const struct defense *d, const struct policy_request *req)
{
    return request_exempt(d, req);
}

void defense_set_quarantine(struct defense *d, const struct quarantine *q)
{
    d->quarantine = q;
}

struct throttle_table *defense_throttles(struct defense *d)
{
    return d->throttles;
}

const struct throttle_table *defense_throttles_const(const struct defense *d)
{
    return d->throttles;
}

const struct detector *defense_detector(const struct defense *d)
{
    return d->det;
}

struct detector *defense_detector_mut(struct defense *d)
{
    return d->det;
}

void defense_get_stats(const struct defense *d, struct defense_stats *out)
{
    *out = d->stats;
    out->state = detector_state(d->det);
}

static bool member_record(const char *member, struct throttle_record *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (!throttle_parse_member(member, strlen(member), &r->kind, r->key, sizeof(r->key))) {
        snprintf(err, errlen, "'%s' is not KIND:KEY with KIND sasl_username, client_address or "
                              "sender_domain", member);
        return false;
    }
    if (r->kind != CULPRIT_SASL_USERNAME)
        for (char *p = r->key; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
    return true;
}

bool defense_block(struct defense *d, const char *member, double duration, double now,
                   char *err, size_t errlen)
{
    struct throttle_record r;

    if (!member_record(member, &r, err, errlen))
        return false;
    r.source = THROTTLE_MANUAL;
    r.changed = r.since = to_ms(now);
    r.until = duration > 0 ? r.since + duration : 0;
    snprintf(r.host, sizeof(r.host), "%s", d->cfg->host_id);
    snprintf(r.action, sizeof(r.action), "%s", d->block->text);
    snprintf(r.reason, sizeof(r.reason), "blocked by hand with relaywatch block");
    if (!throttle_put(d->throttles, &r, true)) {
        snprintf(err, errlen, "the throttle table is full (throttle_slots %u)",
                 d->cfg->throttle_slots);
        return false;
    }
    log_warning("throttle %s:%s with '%s' %s: blocked by hand", culprit_kind_name(r.kind), r.key,
                r.action, duration > 0 ? "for a while" : "until released");
    return true;
}

bool defense_release(struct defense *d, const char *member, double now, char *err, size_t errlen)
{
    struct throttle_record r;

    if (!member_record(member, &r, err, errlen))
        return false;
    r.source = THROTTLE_RELEASED;
    r.changed = r.since = to_ms(now);
    r.until = r.since + (d->cfg->release_grace > 0 ? d->cfg->release_grace : 1);
    snprintf(r.host, sizeof(r.host), "%s", d->cfg->host_id);
    snprintf(r.action, sizeof(r.action), "DUNNO");
    snprintf(r.reason, sizeof(r.reason), "released by hand with relaywatch release");
    if (!throttle_put(d->throttles, &r, true)) {
        snprintf(err, errlen, "the throttle table is full (throttle_slots %u)",
                 d->cfg->throttle_slots);
        return false;
    }
    log_warning("release %s:%s by hand: nothing automatic applies to it for %.0fs",
                culprit_kind_name(r.kind), r.key, d->cfg->release_grace);
    return true;
}
