/*
 * culprits: the keys (SASL users, client addresses, sender domains) that
 * send the most relay mail, with bounded memory however many keys arrive.
 *
 * A Space-Saving summary of `slots` entries: a key already tracked is
 * counted exactly; a new key takes the slot of the entry with the lowest
 * score (its score inherited as the new entry's error bound), so a key
 * that sends more than its share (over 1/slots of the traffic) is never
 * pushed out once tracked; its figures are exact unless it was pushed out
 * before it grew, which `exact` tells.
 * Scores are halved once per longest window so that yesterday's sender
 * does not hold a slot forever.  Each entry keeps windowed messages,
 * recipients and distinct recipient domains.  An update's work does not
 * grow with `slots` or with the number of keys senders make up (it grows
 * only with the score added).  No I/O; no allocation after
 * culprit_table_new.
 */
#ifndef RELAYWATCH_CULPRITS_H
#define RELAYWATCH_CULPRITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "window_counter.h"

#define CULPRIT_KEY_MAX 255 /* longer keys are cut, and known by what is kept */

enum culprit_kind { CULPRIT_SASL_USERNAME, CULPRIT_CLIENT_ADDRESS, CULPRIT_SENDER_DOMAIN };

struct culprit_table;

struct culprit_view {
    enum culprit_kind kind;
    char key[CULPRIT_KEY_MAX + 1];
    uint64_t messages, recipients, domains; /* in the window asked for */
    uint64_t dns_lookups, dns_upstream;      /* the daemon's lookups it caused, queries sent */
    uint64_t score, error;                  /* Space-Saving's count and its error bound */
    bool exact; /* tracked for the whole window: the figures are exact, not lower bounds */
};

struct culprit_table *culprit_table_new(const struct window_set *ws, unsigned slots);
void culprit_table_free(struct culprit_table *t);

/*
 * Count for key, whose hash is culprit_key_hash(kind, key, len): messages
 * and recipients to add, and the hash of one relay recipient domain (0:
 * none).  now is in seconds; clk is the table's window set's clock at now
 * (window_clock_set).
 */
void culprit_add(struct culprit_table *t, enum culprit_kind kind, const char *key, size_t len,
                 uint64_t hash, double now, const struct window_clock *clk, uint32_t messages,
                 uint32_t recipients, uint64_t domain_hash);

/* A domain as it is kept as a key: A-Z folded to a-z, cut to CULPRIT_KEY_MAX bytes (out's
 * size); returns the length kept. */
size_t culprit_fold_domain(const char *domain, size_t len, char *out);

/* The hash by which a key is known (for culprit_add_dns). */
uint64_t culprit_key_hash(enum culprit_kind kind, const char *key, size_t len);

/* Add DNS lookups and queries sent to the key with this hash, if it is tracked;
 * never takes a slot. */
void culprit_add_dns(struct culprit_table *t, uint64_t hash, const struct window_clock *clk,
                     uint32_t lookups, uint32_t upstream);

/* Age the scores; call about once a second. */
void culprit_tick(struct culprit_table *t, double now);

/*
 * The busiest keys in window w, most recipients first (then messages),
 * leaving out keys with nothing in that window.  Returns how many were
 * written to out (at most max).
 */
unsigned culprit_top(const struct culprit_table *t, unsigned w, double now,
                     struct culprit_view *out, unsigned max);

const char *culprit_kind_name(enum culprit_kind kind);

#endif
