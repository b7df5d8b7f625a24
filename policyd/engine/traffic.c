/*
 * traffic: live counting from policy requests.  See traffic.h.
 *
 * When a message counts:
 *  - nf: at END-OF-MESSAGE once such requests have been seen (the hook is
 *    in smtpd_end_of_data_restrictions), else at the first RCPT of a
 *    transaction; once per transaction either way.
 *  - nf_log, the study's N_f (from= lines in the maillog): a queued message
 *    is one line, and Postfix writes one more for every recipient it
 *    refuses.  At END-OF-MESSAGE the transaction's RCPT requests minus its
 *    accepted recipient_count were refused; a transaction that never gets
 *    there (every recipient refused, or the client gave up) is settled
 *    when its session moves on to another transaction or session, or after
 *    transaction_timeout, and all its RCPTs count as refused.  One pushed
 *    out of its table under load (more open at once than the table holds)
 *    is counted as evicted, never as refused: its end is unknown.
 */
#include "traffic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "name_set.h"
#include "xalloc.h"

#define PENDING_DOMAINS 8192 /* distinct relay domains kept between two collects */

struct minute_counts {
    int64_t minute;
    uint64_t v[TC_COUNT];
    bool dirty;
};

#define PROBE_LIMIT 4
#define WINDOW_BUCKETS 60
/* Culprits: coarser buckets, since a key's rings are cleared whenever it takes a slot. */
#define CULPRIT_BUCKETS 12
#define DOMAIN_PRECISION 12 /* 4096 registers: about 1.6 % error at scale */

/* Both tables' entries start with this; key 0 marks an empty slot. */
struct slot {
    uint64_t key;
    double last;
};

struct session {
    struct slot s;
    uint32_t pid;     /* smtpd's process id from `instance`, 0 while unknown */
    uint64_t txn_key; /* the transaction it is in, 0 if none */
};

struct transaction {
    struct slot s;
    uint64_t last_rcpt; /* hash of the last recipient asked for */
    uint32_t rcpts;
    bool relay;   /* at least one relay recipient */
    bool counted; /* nf already counted */
    bool open;    /* RCPTs seen, not yet settled */
    bool settled; /* settled without END-OF-MESSAGE: its RCPTs counted as refused */
};

struct traffic {
    struct window_set ws;
    struct window_set culprit_ws;
    struct window_clock clk, culprit_clk; /* at the request being counted */
    struct window_counter *counter[TC_COUNT];
    struct distinct_counter *relay_domains;
    struct culprit_table *senders; /* SASL user or client address */
    struct culprit_table *sender_domains;
    struct session *sessions;
    struct transaction *txns;
    size_t mask; /* both tables: slots - 1 */
    unsigned open_txns;
    uint64_t sessions_evicted, txns_evicted; /* live entries that lost their slot */
    size_t scan_cursor; /* where traffic_tick goes on looking for quiet transactions */
    double last_now;    /* the time of the last request or tick */
    double clocks_at;   /* the time clk and culprit_clk are both set for, -1 if none */
    bool eom_mode;
    int count_at; /* the count_messages_at key */
    double session_timeout, transaction_timeout;
    struct name_set *local_domains;
    /* For a shared store (NULL until traffic_store_enable). */
    struct minute_counts *minutes;
    unsigned minute_slots;
    uint64_t dropped_minutes;
    /* Open addressing by the keyed hash (0 empty); what goes to the store is the stable
     * hash beside it (hash64_stable: the same name counts once across restarts). */
    uint64_t *pending_domain, *pending_stable;
    int64_t *pending_minute;
    unsigned pending_count;
    uint64_t run_totals_dirty;
};

struct traffic *traffic_new(const struct config *cfg)
{
    struct traffic *t = xcalloc(1, sizeof(*t));
    const char *names[WINDOW_MAX];
    size_t slots = power_of_two_at_least(cfg->session_slots, 64);

    for (unsigned w = 0; w < cfg->window_count; w++)
        names[w] = cfg->window_name[w];
    window_set_init(&t->ws, cfg->window_seconds, names, cfg->window_count, WINDOW_BUCKETS);
    window_set_init(&t->culprit_ws, cfg->window_seconds, names, cfg->window_count,
                    CULPRIT_BUCKETS);
    for (int c = 0; c < TC_COUNT; c++)
        t->counter[c] = window_counter_new(&t->ws);
    t->relay_domains = distinct_counter_new(&t->ws, DOMAIN_PRECISION);
    t->senders = culprit_table_new(&t->culprit_ws, cfg->culprit_slots);
    t->sender_domains = culprit_table_new(&t->culprit_ws, cfg->culprit_slots);
    /* calloc: untouched pages of a large table cost no memory until used. */
    t->sessions = xcalloc(slots, sizeof(*t->sessions));
    t->txns = xcalloc(slots, sizeof(*t->txns));
    t->mask = slots - 1;
    t->clocks_at = -1;
    traffic_reconfigure(t, cfg);
    return t;
}

void traffic_free(struct traffic *t)
{
    if (t == NULL)
        return;
    for (int c = 0; c < TC_COUNT; c++)
        window_counter_free(t->counter[c]);
    distinct_counter_free(t->relay_domains);
    culprit_table_free(t->senders);
    culprit_table_free(t->sender_domains);
    free(t->sessions);
    free(t->txns);
    name_set_free(t->local_domains);
    free(t->minutes);
    free(t->pending_domain);
    free(t->pending_minute);
    free(t->pending_stable);
    free(t);
}

void traffic_store_enable(struct traffic *t, unsigned backlog_minutes)
{
    t->minute_slots = backlog_minutes < 2 ? 2 : backlog_minutes;
    t->minutes = xcalloc(t->minute_slots, sizeof(*t->minutes));
    t->pending_domain = xcalloc(PENDING_DOMAINS * 2, sizeof(*t->pending_domain));
    t->pending_minute = xcalloc(PENDING_DOMAINS * 2, sizeof(*t->pending_minute));
    t->pending_stable = xcalloc(PENDING_DOMAINS * 2, sizeof(*t->pending_stable));
}

unsigned traffic_busiest(const struct traffic *t, struct culprit_view *out, unsigned max)
{
    unsigned w = window_set_longest(&t->culprit_ws);
    unsigned n = culprit_top(t->senders, w, t->last_now, out, max / 2);

    return n + culprit_top(t->sender_domains, w, t->last_now, out + n, max / 2);
}

void traffic_store_collect(struct traffic *t, const struct traffic_changes *to, void *ctx)
{
    uint64_t totals[TC_COUNT];

    if (t->minutes == NULL)
        return;
    for (unsigned i = 0; i < t->minute_slots; i++) {
        struct minute_counts *m = &t->minutes[i];
        if (m->dirty) {
            to->minute(ctx, m->minute, m->v);
            m->dirty = false;
        }
    }
    for (size_t pos = 0; pos < PENDING_DOMAINS * 2 && t->pending_count > 0; pos++)
        if (t->pending_domain[pos] != 0) {
            to->domain(ctx, t->pending_minute[pos], t->pending_stable[pos]);
            t->pending_domain[pos] = 0;
            t->pending_count--;
        }
    if (t->run_totals_dirty) {
        for (int c = 0; c < TC_COUNT; c++)
            totals[c] = window_counter_total(t->counter[c]);
        t->run_totals_dirty = 0;
        to->totals(ctx, totals);
    }
}

void traffic_store_rewrite_all(struct traffic *t)
{
    if (t->minutes == NULL)
        return;
    for (unsigned i = 0; i < t->minute_slots; i++)
        if (t->minutes[i].minute != 0)
            t->minutes[i].dirty = true;
    t->run_totals_dirty = 1;
}

void traffic_add_history(struct traffic *t, int64_t minute, const uint64_t *counts)
{
    struct window_clock clk;

    /* The middle of the minute (the 10m and 1h windows see it, as well as whole minutes
     * can), but never after now: the current minute goes in now. */
    double when = (double)minute * 60.0 + 30.0;

    if (t->last_now > 0 && when > t->last_now)
        when = t->last_now;
    window_clock_set(&clk, &t->ws, when);
    for (int c = 0; c < TC_COUNT; c++)
        if (counts[c] > 0)
            window_counter_add_history(t->counter[c], &t->ws, &clk,
                                       counts[c] > UINT32_MAX ? UINT32_MAX : (uint32_t)counts[c]);
}

uint64_t traffic_store_dropped_minutes(const struct traffic *t)
{
    return t->dropped_minutes;
}

unsigned traffic_store_unwritten_minutes(const struct traffic *t)
{
    unsigned n = 0;

    for (unsigned i = 0; t->minutes != NULL && i < t->minute_slots; i++)
        n += t->minutes[i].dirty;
    return n;
}

void traffic_reconfigure(struct traffic *t, const struct config *cfg)
{
    name_set_free(t->local_domains);
    t->local_domains = name_set_new(cfg->local_domains, cfg->local_domain_count, 1);
    t->session_timeout = cfg->session_timeout;
    t->count_at = cfg->count_messages_at;
    if (t->count_at == COUNT_AT_END_OF_MESSAGE)
        t->eom_mode = true;
    else if (t->count_at == COUNT_AT_RCPT)
        t->eom_mode = false;
    t->transaction_timeout = cfg->transaction_timeout;
}

/* ----------------------------------------------------------------- tables */

/*
 * The slot for key: its own, or one to claim (empty, expired, else the
 * stalest of the probe range).  *found tells which; a claimed slot still
 * holds its old content for the caller to settle.
 */
static struct slot *slot_for(void *base, size_t size, size_t mask, uint64_t key, double now,
                             double timeout, bool *found)
{
    size_t pos = (size_t)key & mask;
    struct slot *expired = NULL, *stalest = NULL;

    /* Slots are never emptied again, so a key is never found past an empty one. */
    for (int i = 0; i < PROBE_LIMIT; i++, pos = (pos + 1) & mask) {
        struct slot *s = (struct slot *)((char *)base + pos * size);

        if (s->key == key) {
            *found = true;
            return s;
        }
        if (s->key == 0) {
            *found = false;
            return expired ? expired : s;
        }
        if (expired == NULL && s->last + timeout < now)
            expired = s;
        if (stalest == NULL || s->last < stalest->last)
            stalest = s;
    }
    *found = false;
    return expired ? expired : stalest;
}

static uint64_t nonzero(uint64_t h)
{
    return h ? h : 1;
}

/* Count at the time of the request being handled (t->clk), or at now when settling later. */
static void count(struct traffic *t, enum traffic_counter c, double now, uint32_t n)
{
    if (n == 0)
        return;
    window_counter_add_at(t->counter[c], &t->ws, &t->clk, n);
    if (t->minutes != NULL) {
        int64_t minute = (int64_t)(now / 60.0);
        struct minute_counts *m = &t->minutes[(uint64_t)minute % t->minute_slots];

        if (m->minute != minute) {
            if (m->dirty)
                t->dropped_minutes++;
            memset(m, 0, sizeof(*m));
            m->minute = minute;
        }
        m->v[c] += n;
        m->dirty = true;
        t->run_totals_dirty = 1;
    }
}

/* Note a relay domain (hash: its keyed hash) for the store's HyperLogLog, once between two
 * collects. */
static void note_domain(struct traffic *t, double now, uint64_t hash, struct policy_slice domain)
{
    size_t pos;

    if (t->minutes == NULL)
        return;
    pos = (size_t)hash & (PENDING_DOMAINS * 2 - 1);
    while (t->pending_domain[pos] != 0) {
        if (t->pending_domain[pos] == hash)
            return;
        pos = (pos + 1) & (PENDING_DOMAINS * 2 - 1);
    }
    if (t->pending_count == PENDING_DOMAINS)
        return; /* more distinct domains in one flush interval than kept: the estimate lags */
    t->pending_domain[pos] = hash;
    t->pending_stable[pos] = hash64_stable(domain.ptr, domain.len, 1);
    t->pending_minute[pos] = (int64_t)(now / 60.0);
    t->pending_count++;
}

/* A transaction that will not reach END-OF-MESSAGE: its RCPTs were refused. */
static void settle(struct traffic *t, struct transaction *x, double now)
{
    if (!x->open)
        return;
    x->open = false;
    x->settled = true;
    t->open_txns--;
    /* Without END-OF-MESSAGE requests nothing tells refused from accepted. */
    if (t->eom_mode) {
        count(t, TC_MESSAGES_LOGGED, now, x->rcpts);
        count(t, TC_REFUSED, now, x->rcpts);
    }
}

/* An open transaction that lost its slot to a newer one: counted as evicted, and its
 * RCPTs stay where they are (asked for, neither queued nor refused). */
static void evict(struct traffic *t, struct transaction *x)
{
    if (!x->open)
        return;
    x->open = false;
    t->open_txns--;
    t->txns_evicted++;
}

static struct transaction *transaction_for(struct traffic *t, uint64_t key, double now)
{
    bool found;
    struct transaction *x = (struct transaction *)slot_for(
        t->txns, sizeof(*t->txns), t->mask, key, now, t->transaction_timeout * 4, &found);

    if (!found) {
        /* Only a transaction quiet for transaction_timeout had its RCPTs refused. */
        if (x->s.last + t->transaction_timeout < now)
            settle(t, x, now);
        else
            evict(t, x);
        memset(x, 0, sizeof(*x));
        x->s.key = key;
    }
    x->s.last = now;
    return x;
}

/* ---------------------------------------------------------- attributes */

static uint64_t slice_hash(struct policy_slice v)
{
    return v.ptr ? hash64(v.ptr, v.len, 0) : 0;
}

static bool is_local(const struct traffic *t, uint64_t domain_hash, struct policy_slice domain)
{
    return name_set_has_hashed(t->local_domains, domain_hash, domain.ptr, domain.len);
}

/* smtpd's pid: the hex number before the first '.' of instance. */
static uint32_t instance_pid(struct policy_slice v)
{
    uint32_t pid = 0;

    for (size_t i = 0; i < v.len && i < 8; i++) {
        char ch = v.ptr[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return ch == '.' ? pid : 0;
        pid = pid * 16 + (uint32_t)d;
    }
    return 0;
}

static void culprit_hashes(const struct policy_request *req, struct traffic_news *news);

/* Charge the request's culprits (their keys' hashes go in news, see culprit_hashes). */
static void blame(struct traffic *t, const struct policy_request *req, struct traffic_news *news,
                  double now, uint32_t messages, uint32_t recipients, uint64_t domain_hash)
{
    struct policy_slice user = req->attr[PA_SASL_USERNAME];
    struct policy_slice client = req->attr[PA_CLIENT_ADDRESS];
    struct policy_slice sender_domain = policy_address_domain(req->attr[PA_SENDER]);

    if (news->who == 0 && news->sender_domain == 0)
        culprit_hashes(req, news); /* not worked out yet (both 0 again is harmless) */
    if (user.len > 0)
        culprit_add(t->senders, CULPRIT_SASL_USERNAME, user.ptr, user.len, news->who, now,
                    &t->culprit_clk, messages, recipients, domain_hash);
    else if (client.len > 0)
        culprit_add(t->senders, CULPRIT_CLIENT_ADDRESS, client.ptr, client.len, news->who, now,
                    &t->culprit_clk, messages, recipients, domain_hash);
    if (sender_domain.len > 0) {
        /* Domains compare case-insensitively: fold them before they become keys. */
        char folded[CULPRIT_KEY_MAX];
        size_t n = culprit_fold_domain(sender_domain.ptr, sender_domain.len, folded);

        culprit_add(t->sender_domains, CULPRIT_SENDER_DOMAIN, folded, n, news->sender_domain,
                    now, &t->culprit_clk, messages, recipients, domain_hash);
    }
}

/* ------------------------------------------------------------- counting */

/* Find or start the request's session; returns it (never NULL). */
static struct session *session_for(struct traffic *t, const struct policy_request *req,
                                   uint64_t txn_key, double now)
{
    uint64_t key = nonzero(hash64_mix(
        hash64_mix(hash64_mix(slice_hash(req->attr[PA_CLIENT_ADDRESS]),
                              slice_hash(req->attr[PA_CLIENT_PORT])),
                   slice_hash(req->attr[PA_SERVER_ADDRESS])),
        slice_hash(req->attr[PA_SERVER_PORT])));
    uint32_t pid = instance_pid(req->attr[PA_INSTANCE]);
    bool found;
    struct session *s = (struct session *)slot_for(t->sessions, sizeof(*t->sessions), t->mask,
                                                   key, now, t->session_timeout, &found);
    /* A request of the transaction the session is in belongs to it however long ago
     * the last one was (a slow DATA phase). */
    bool expired = found && s->s.last + t->session_timeout < now &&
                   !(txn_key != 0 && s->txn_key == txn_key);

    /* A new session: CONNECT says so; otherwise a tuple not seen lately, or
     * seen in another smtpd process (the client port was reused). */
    if (!found || expired || req->state == PS_CONNECT || (pid && s->pid && pid != s->pid)) {
        /* Another session's slot: that session is not over, so neither is its transaction
         * (the transaction table settles it, or finds it again). */
        if (!found && s->s.key != 0 && s->s.last + t->session_timeout >= now)
            t->sessions_evicted++;
        if (found && s->txn_key != 0) {
            bool txn_found;
            struct transaction *x = (struct transaction *)slot_for(
                t->txns, sizeof(*t->txns), t->mask, s->txn_key, now, 1e300, &txn_found);
            if (txn_found)
                settle(t, x, now);
        }
        memset(s, 0, sizeof(*s));
        s->s.key = key;
        count(t, TC_SESSIONS, now, 1);
    }
    s->s.last = now;
    if (pid)
        s->pid = pid;
    return s;
}

/* The culprit keys a request's costs go to, as blame() chooses them. */
static void culprit_hashes(const struct policy_request *req, struct traffic_news *news)
{
    struct policy_slice user = req->attr[PA_SASL_USERNAME];
    struct policy_slice client = req->attr[PA_CLIENT_ADDRESS];
    struct policy_slice sender_domain = policy_address_domain(req->attr[PA_SENDER]);
    char folded[CULPRIT_KEY_MAX];

    news->who = user.len > 0     ? culprit_key_hash(CULPRIT_SASL_USERNAME, user.ptr, user.len)
                : client.len > 0 ? culprit_key_hash(CULPRIT_CLIENT_ADDRESS, client.ptr, client.len)
                                 : 0;
    news->sender_domain =
        sender_domain.len > 0
            ? culprit_key_hash(CULPRIT_SENDER_DOMAIN, folded,
                               culprit_fold_domain(sender_domain.ptr, sender_domain.len, folded))
            : 0;
}

unsigned traffic_request_keys(const struct policy_request *req, const struct traffic_news *news,
                              struct request_key out[3])
{
    struct policy_slice user = req->attr[PA_SASL_USERNAME];
    struct policy_slice client = req->attr[PA_CLIENT_ADDRESS];
    struct policy_slice sender_domain = policy_address_domain(req->attr[PA_SENDER]);
    unsigned n = 0;

    if (user.len > 0) {
        out[n].kind = CULPRIT_SASL_USERNAME;
        out[n].key = user.ptr;
        out[n++].len = user.len < CULPRIT_KEY_MAX ? user.len : CULPRIT_KEY_MAX;
    }
    if (client.len > 0) {
        out[n].kind = CULPRIT_CLIENT_ADDRESS;
        out[n].key = client.ptr;
        out[n++].len = client.len < CULPRIT_KEY_MAX ? client.len : CULPRIT_KEY_MAX;
    }
    if (sender_domain.len > 0) {
        out[n].kind = CULPRIT_SENDER_DOMAIN;
        out[n].len = culprit_fold_domain(sender_domain.ptr, sender_domain.len, out[n].folded);
        out[n].key = out[n].folded;
        n++;
    }
    /* The hashes traffic_request worked out already are taken, not worked out again. */
    for (unsigned i = 0; i < n; i++)
        out[i].hash = i == 0 && out[i].kind != CULPRIT_SENDER_DOMAIN && news->who
                          ? news->who
                      : out[i].kind == CULPRIT_SENDER_DOMAIN && news->sender_domain
                          ? news->sender_domain
                          : culprit_key_hash(out[i].kind, out[i].key, out[i].len);
    return n;
}

void traffic_dns(struct traffic *t, struct dns_counts *c, struct resolver_tag tag, double now)
{
    uint32_t lookups = 0, upstream = 0;

    if (c->used == 0)
        return;
    /* Lookups answered from the cache count at the time of their request: the clocks are
     * already set for it. */
    if (now != t->clocks_at) {
        window_clock_set(&t->clk, &t->ws, now);
        window_clock_set(&t->culprit_clk, &t->culprit_ws, now);
        t->clocks_at = now;
    }
    while (c->used != 0) {
        unsigned bit = (unsigned)__builtin_ctzll(c->used);
        unsigned type = bit / DNS_OUTCOMES, outcome = bit % DNS_OUTCOMES;
        uint32_t n = c->n[type][outcome];

        c->used &= c->used - 1;
        c->n[type][outcome] = 0;
        count(t, TC_DNS(type, outcome), now, n);
        if (outcome == DNS_UPSTREAM)
            upstream += n;
        else
            lookups += n;
    }
    /* Once per cause, not per lookup: a request's four lookups cost one culprit update. */
    if (tag.who)
        culprit_add_dns(t->senders, tag.who, &t->culprit_clk, lookups, upstream);
    if (tag.sender_domain)
        culprit_add_dns(t->sender_domains, tag.sender_domain, &t->culprit_clk, lookups, upstream);
}

void traffic_request(struct traffic *t, const struct policy_request *req, double now,
                     struct traffic_news *news)
{
    struct session *s;
    struct transaction *x = NULL;
    struct policy_slice instance = req->attr[PA_INSTANCE];
    uint64_t key, sessions_before;
    struct traffic_news ignored;

    if (news == NULL)
        news = &ignored;
    memset(news, 0, sizeof(*news));
    switch (req->state) {
    case PS_CONNECT:
    case PS_EHLO:
    case PS_HELO:
    case PS_MAIL:
    case PS_RCPT:
    case PS_DATA:
    case PS_END_OF_MESSAGE:
        break;
    default:
        return; /* VRFY, ETRN and unknown states say nothing about mail */
    }
    key = instance.len > 0 && req->state >= PS_RCPT ? nonzero(hash64(instance.ptr, instance.len, 0))
                                                    : 0;

    window_clock_set(&t->clk, &t->ws, now);
    window_clock_set(&t->culprit_clk, &t->culprit_ws, now);
    t->clocks_at = now;
    t->last_now = now;
    sessions_before = window_counter_total(t->counter[TC_SESSIONS]);
    s = session_for(t, req, key, now);
    news->new_session = window_counter_total(t->counter[TC_SESSIONS]) != sessions_before;
    /* For the caller's lookups; otherwise blame() works them out when relay mail needs them. */
    if (news != &ignored)
        culprit_hashes(req, news);
    if (key != 0) {
        if (s->txn_key != key) {
            news->new_transaction = true;
            /* The session moved on: its previous transaction is over. */
            if (s->txn_key != 0) {
                bool found;
                struct transaction *old = (struct transaction *)slot_for(
                    t->txns, sizeof(*t->txns), t->mask, s->txn_key, now, 1e300, &found);
                if (found)
                    settle(t, old, now);
            }
            s->txn_key = key;
        }
        x = transaction_for(t, key, now);
    }

    if (req->state == PS_RCPT) {
        struct policy_slice domain = policy_address_domain(req->attr[PA_RECIPIENT]);
        uint64_t domain_hash = domain.len ? nonzero(hash64(domain.ptr, domain.len, 1)) : 0;
        /* An address without a domain (RCPT TO:<postmaster>) is this host's own. */
        bool relay = domain.len > 0 && !is_local(t, domain_hash, domain);

        news->relay = relay;
        news->relay_domain = relay ? domain_hash : 0;
        if (x != NULL) {
            /* The same recipient again at once: a second hook asking about the same RCPT
             * (say in smtpd_relay_restrictions and smtpd_recipient_restrictions). */
            uint64_t rcpt = nonzero(slice_hash(req->attr[PA_RECIPIENT]));

            if (x->last_rcpt == rcpt)
                return;
            x->last_rcpt = rcpt;
        }
        count(t, TC_RECIPIENTS, now, 1);
        count(t, relay ? TC_RECIPIENTS_RELAY : TC_RECIPIENTS_INBOUND, now, 1);
        news->relay_recipient = relay;
        if (relay) {
            distinct_counter_add_at(t->relay_domains, &t->ws, &t->clk, domain_hash);
            note_domain(t, now, domain_hash, domain);
            blame(t, req, news, now, 0, 1, domain_hash);
        }
        if (x != NULL) {
            x->rcpts++;
            x->relay |= relay;
            if (!x->open) {
                x->open = true;
                t->open_txns++;
            }
            if (!t->eom_mode && !x->counted) {
                x->counted = true;
                count(t, TC_MESSAGES, now, 1);
                count(t, TC_MESSAGES_LOGGED, now, 1);
                count(t, relay ? TC_MESSAGES_RELAY : TC_MESSAGES_INBOUND, now, 1);
                if (relay)
                    blame(t, req, news, now, 1, 0, 0);
            }
        }
    } else if (req->state == PS_END_OF_MESSAGE && x != NULL) {
        struct policy_slice rc = req->attr[PA_RECIPIENT_COUNT];
        uint32_t accepted = 0, refused;

        for (size_t i = 0; i < rc.len && rc.ptr[i] >= '0' && rc.ptr[i] <= '9'; i++)
            accepted = accepted > 100000000 ? accepted : accepted * 10 + (uint32_t)(rc.ptr[i] - '0');
        if (t->count_at == COUNT_AT_AUTO)
            t->eom_mode = true;
        news->relay_message = x->relay;
        if (!x->counted) {
            x->counted = true;
            count(t, TC_MESSAGES, now, 1);
            count(t, TC_MESSAGES_LOGGED, now, 1);
            count(t, x->relay ? TC_MESSAGES_RELAY : TC_MESSAGES_INBOUND, now, 1);
            if (x->relay)
                blame(t, req, news, now, 1, 0, 0);
        }
        /* Settled early (a DATA phase longer than transaction_timeout): its RCPTs
         * were counted as refused then, and cannot be taken back now. */
        refused = x->settled ? 0 : x->rcpts > accepted ? x->rcpts - accepted : 0;
        count(t, TC_MESSAGES_LOGGED, now, refused);
        count(t, TC_REFUSED, now, refused);
        if (x->open) {
            x->open = false;
            t->open_txns--;
        }
    }
}

/* Slots looked at per tick: a full pass over the default 65536 takes a second at 4 ticks a
 * second, and no single tick holds up policy answers for long. */
#define SCAN_PER_TICK 16384

void traffic_tick(struct traffic *t, double now)
{
    size_t slots = t->mask + 1;

    t->last_now = now;
    culprit_tick(t->senders, now);
    culprit_tick(t->sender_domains, now);
    if (t->open_txns == 0)
        return;
    window_clock_set(&t->clk, &t->ws, now);
    t->clocks_at = -1;
    for (size_t n = 0; n < SCAN_PER_TICK && n < slots; n++) {
        struct transaction *x = &t->txns[t->scan_cursor];

        t->scan_cursor = (t->scan_cursor + 1) & t->mask;
        if (x->open && x->s.last + t->transaction_timeout < now)
            settle(t, x, now);
    }
}

const struct window_set *traffic_windows(const struct traffic *t)
{
    return &t->ws;
}

uint64_t traffic_total(const struct traffic *t, enum traffic_counter c)
{
    return window_counter_total(t->counter[c]);
}

uint64_t traffic_window(const struct traffic *t, enum traffic_counter c, unsigned w, double now)
{
    return window_counter_sum(t->counter[c], &t->ws, w, now);
}

uint64_t traffic_relay_domains(const struct traffic *t, unsigned w, double now)
{
    return distinct_counter_estimate(t->relay_domains, &t->ws, w, now);
}

unsigned traffic_culprits(const struct traffic *t, bool by_sender_domain, unsigned w, double now,
                          struct culprit_view *out, unsigned max)
{
    return culprit_top(by_sender_domain ? t->sender_domains : t->senders, w, now, out, max);
}

bool traffic_counts_at_end_of_message(const struct traffic *t)
{
    return t->eom_mode;
}

unsigned traffic_open_transactions(const struct traffic *t)
{
    return t->open_txns;
}

uint64_t traffic_sessions_evicted(const struct traffic *t)
{
    return t->sessions_evicted;
}

uint64_t traffic_transactions_evicted(const struct traffic *t)
{
    return t->txns_evicted;
}
