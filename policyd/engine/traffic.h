/*
 * traffic: what the policy requests say about the mail this host handles.
 *
 * Counts, per sliding window and since start: N_c (SMTP sessions), N_f
 * (queued messages, "nf"), the maillog's from= lines ("nf_log": queued
 * messages plus refused recipients), N_r (recipients asked for), each
 * split into relay and inbound by local_domains, the distinct relay
 * recipient domains, and the culprits behind relay mail.  Pure: the
 * caller passes each request and the time; no I/O, and nothing is
 * allocated after traffic_new.
 *
 * Sessions are told apart by (client_address, client_port, server_address,
 * server_port) in a bounded table of recent sessions, since with Postfix's
 * default smtpd_delay_reject = yes the first request of a session is a
 * RCPT; a CONNECT request always starts a session.  Transactions are
 * Postfix's `instance`.
 */
#ifndef RELAYWATCH_TRAFFIC_H
#define RELAYWATCH_TRAFFIC_H

#include <stdbool.h>
#include <stdint.h>

#include "culprits.h"
#include "policy_request.h"
#include "dns_types.h"
#include "window_counter.h"

struct config;
struct traffic;

enum traffic_counter {
    TC_SESSIONS,         /* nc */
    TC_MESSAGES,         /* nf */
    TC_MESSAGES_LOGGED,  /* nf_log */
    TC_RECIPIENTS,       /* nr */
    TC_MESSAGES_RELAY,   /* nf_relay */
    TC_MESSAGES_INBOUND, /* nf_inbound */
    TC_RECIPIENTS_RELAY, /* nr_relay */
    TC_RECIPIENTS_INBOUND,
    TC_REFUSED,          /* recipients asked for but not accepted: nf_log - nf */
    /* The daemon's own DNS lookups, per type and outcome (TC_DNS below). */
    TC_DNS_FIRST,
    TC_COUNT = TC_DNS_FIRST + DNS_TYPES * DNS_OUTCOMES
};

#define TC_DNS(type, outcome) ((enum traffic_counter)(TC_DNS_FIRST + (type) * DNS_OUTCOMES + (outcome)))

/* What one request started, for the lookups it causes. */
struct traffic_news {
    bool new_session;     /* its first request */
    bool new_transaction; /* the first request of a transaction (RCPT or later) */
    bool relay_recipient; /* a RCPT (not a repeat) to a relay domain */
    bool relay;           /* a RCPT to a relay domain, repeat or not */
    bool relay_message;   /* an END-OF-MESSAGE of a transaction with a relay recipient */
    uint64_t relay_domain; /* its domain's hash (hash64, case folded), 0 for none */
    /* Who to blame for what it costs: the culprit keys (culprit_key_hash), 0 for none. */
    uint64_t who, sender_domain;
};

struct traffic *traffic_new(const struct config *cfg);
void traffic_free(struct traffic *t);

/* Take the keys that can change while running (local_domains, timeouts). */
void traffic_reconfigure(struct traffic *t, const struct config *cfg);

/* Account for one request at time now (seconds); news (may be NULL) says what it started. */
void traffic_request(struct traffic *t, const struct policy_request *req, double now,
                     struct traffic_news *news);

/* A request's culprit keys as the tables know them: the SASL user or else the client
 * address, the client address too for a SASL user, and the sender domain (folded). */
struct request_key {
    enum culprit_kind kind;
    const char *key; /* into the request, or into folded */
    size_t len;
    uint64_t hash; /* culprit_key_hash */
    char folded[CULPRIT_KEY_MAX];
};
/* Fills out[0..3); returns how many.  news: what traffic_request said of req (its culprit
 * hashes are used; zeros are worked out). */
unsigned traffic_request_keys(const struct policy_request *req, const struct traffic_news *news,
                              struct request_key out[3]);

/* DNS events of one cause (a request, or one answer): per type and outcome. */
struct dns_counts {
    uint32_t n[DNS_TYPES][DNS_OUTCOMES];
    uint64_t used; /* bit type * DNS_OUTCOMES + outcome: which n are not 0 */
};

static inline void dns_counts_add(struct dns_counts *c, enum dns_type type,
                                  enum dns_outcome outcome)
{
    c->n[type][outcome]++;
    c->used |= 1ULL << (type * DNS_OUTCOMES + outcome);
}

/* Count DNS events (lookups' ends, queries sent) at now, also on the culprits named by tag
 * when they are still tracked; c is emptied. */
void traffic_dns(struct traffic *t, struct dns_counts *c, struct resolver_tag tag, double now);

/* Settle transactions that went quiet; call about once a second. */
void traffic_tick(struct traffic *t, double now);

const struct window_set *traffic_windows(const struct traffic *t);
uint64_t traffic_total(const struct traffic *t, enum traffic_counter c);
uint64_t traffic_window(const struct traffic *t, enum traffic_counter c, unsigned w, double now);
uint64_t traffic_relay_domains(const struct traffic *t, unsigned w, double now);

/* Culprits of one table: keyed by SASL user or client address, or by sender domain. */
unsigned traffic_culprits(const struct traffic *t, bool by_sender_domain, unsigned w, double now,
                          struct culprit_view *out, unsigned max);

/* The busiest keys of both tables in the longest window at the last request or tick (max / 2
 * of each); returns how many. */
unsigned traffic_busiest(const struct traffic *t, struct culprit_view *out, unsigned max);

/*
 * For a shared store: this run's counts per minute for the last `backlog`
 * minutes (kept to be written again after a failed write or a Redis that
 * lost them), and the relay domains noted since the last collect.  Off
 * until enabled (the memory store needs none of it).  Plain data: the
 * daemon hands it to the store.
 */
void traffic_store_enable(struct traffic *t, unsigned backlog_minutes);

/* Where traffic_store_collect hands what changed; pointers live for the call. */
struct traffic_changes {
    /* A minute of the backlog changed since the last collect: its counts (enum traffic_counter). */
    void (*minute)(void *ctx, int64_t minute, const uint64_t *counts);
    /* A relay domain first noted in `minute` since the last collect: its hash64_stable
     * (case folded), the same in every process, so the store counts a name once. */
    void (*domain)(void *ctx, int64_t minute, uint64_t hash);
    /* Any count changed since the last collect: the run's totals (enum traffic_counter). */
    void (*totals)(void *ctx, const uint64_t *totals);
};
/* Hand what changed since the last call to `to`, in that order; then it counts as written. */
void traffic_store_collect(struct traffic *t, const struct traffic_changes *to, void *ctx);
/* Mark every minute still held, and the totals, as changed (a failed write, a new connection). */
void traffic_store_rewrite_all(struct traffic *t);
/* Counts of earlier runs of this host in one minute: into the windows, not the totals. */
void traffic_add_history(struct traffic *t, int64_t minute, const uint64_t *counts);
/* Minutes lost because they left the backlog before they could be written. */
uint64_t traffic_store_dropped_minutes(const struct traffic *t);
/* Minutes of the backlog waiting to be handed to the store (0 until enabled): about 1 while
 * writes succeed; a failed write marks every minute held (traffic_store_rewrite_all). */
unsigned traffic_store_unwritten_minutes(const struct traffic *t);

/* Whether END-OF-MESSAGE requests have been seen (then nf counts there). */
bool traffic_counts_at_end_of_message(const struct traffic *t);

/* Transactions seen but not yet settled (no END-OF-MESSAGE yet). */
unsigned traffic_open_transactions(const struct traffic *t);

/* Live sessions (seen within session_timeout) and open transactions pushed out of their
 * tables by newer ones since start: the tables (session_slots) are too small for the load. */
uint64_t traffic_sessions_evicted(const struct traffic *t);
uint64_t traffic_transactions_evicted(const struct traffic *t);

#endif
