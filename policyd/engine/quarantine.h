/*
 * quarantine: which queued messages each key (SASL user, client address,
 * sender domain) got into Postfix's queue lately, and which of them
 * RelayWatch put on hold, so that a stopped key's mail can be held
 * (postsuper -h) and released with the key (postsuper -H).
 *
 * The queue IDs come from END-OF-MESSAGE requests (queue_id).  Per key at
 * most `per_key` IDs are kept, the oldest forgotten first (a forgotten held
 * ID stays on hold in Postfix: it is counted and logged by the caller);
 * IDs older than `lookback` that are not held are forgotten.  At most
 * `slots` keys are kept: a new key takes the place of the key used least
 * lately that holds nothing.  Keys are found by their hash and known by
 * comparing their names.
 *
 * An ID goes queued -> asked (handed to postsuper) -> held, or back to
 * queued once when postsuper did not find it (its queue file may still
 * have been in the making), then forgotten.  Release: held -> releasing ->
 * forgotten, counted as released.  A held ID is forgotten after
 * QUARANTINE_HELD_MAX_AGE.  A key with IDs held or with postsuper is never
 * the one to make room; a new key takes the place of the key used least
 * lately among a sample of slots (bounded work per new key).
 *
 * Pure: no I/O; memory is allocated when a key first needs room (per key,
 * doubling up to per_key entries), never per request otherwise.  Returned
 * strings and views live until the next call that changes the table.
 */
#ifndef RELAYWATCH_QUARANTINE_H
#define RELAYWATCH_QUARANTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "culprits.h"
#include "queue_id.h"

/* A postsuper request's IDs: enough to move a stopped relay's queue in a few rounds, small
 * enough for one datagram (QUARANTINE_BATCH x (QUEUE_ID_MAX + 1) bytes). */
#define QUARANTINE_BATCH 500
#define QUARANTINE_RETRY 2.0 /* seconds before a hold postsuper did not do is asked again */
/* A held ID is forgotten after this long (deleted by hand, or left on hold for good): it
 * no longer keeps its key's place.  Postfix's maximal_queue_lifetime is 5 days. */
#define QUARANTINE_HELD_MAX_AGE (7 * 86400.0)

struct quarantine_settings {
    unsigned slots;   /* keys */
    unsigned per_key; /* IDs per key */
    double lookback;  /* seconds */
};

enum quarantine_op { QUARANTINE_HOLD, QUARANTINE_RELEASE };

/* What the table knows of one key. */
struct quarantine_key_info {
    enum culprit_kind kind;
    const char *key;
    uint64_t hash;
    unsigned queued;   /* IDs not held, not asked */
    unsigned due;      /* of those, the ones a hold would ask for now */
    unsigned asked;    /* handed to postsuper for a hold, no answer yet ("being held") */
    unsigned held;     /* on hold by RelayWatch */
    double held_since; /* the first of them, Unix time; 0: none held */
    unsigned released; /* released by the last release */
    double released_at;
    unsigned would;    /* monitor_only: IDs it would have held */
};

struct quarantine_stats {
    unsigned keys;
    uint64_t ids;             /* IDs kept */
    uint64_t held;            /* on hold now */
    uint64_t held_total;      /* put on hold since start */
    uint64_t released_total;  /* released since start */
    uint64_t forgotten_held;  /* held IDs forgotten (per_key or slots full): still on hold */
    uint64_t keys_evicted;    /* keys dropped to make room */
};

struct quarantine;

struct quarantine *quarantine_new(const struct quarantine_settings *s);
void quarantine_free(struct quarantine *q);
/* per_key and lookback change at once; slots only with a new table. */
void quarantine_reconfigure(struct quarantine *q, const struct quarantine_settings *s);

/*
 * A message of key (len bytes, hash culprit_key_hash(kind, key, len)) was queued with the
 * given queue ID at now; held: Postfix holds it already (RelayWatch answered HOLD).
 * false: not a queue ID, or no room (every key holds something).
 */
bool quarantine_note(struct quarantine *q, enum culprit_kind kind, const char *key, size_t len,
                     uint64_t hash, const char *id, size_t idlen, double now, bool held);

/* Visit every key (due counted at now); fn must not change the table.  Without detail only
 * kind, key, hash, held and asked (asked or releasing) are filled, without looking at the
 * key's IDs. */
void quarantine_each(const struct quarantine *q, double now, bool detail,
                     bool (*fn)(void *ctx, const struct quarantine_key_info *k), void *ctx);

/* One key's figures; false when the table does not know it. */
bool quarantine_info(const struct quarantine *q, enum culprit_kind kind, const char *key,
                     size_t len, uint64_t hash, double now, struct quarantine_key_info *out);

/*
 * The IDs a hold (the key's queued IDs that are due: queued within lookback) or a release
 * (its held IDs) would ask postsuper for, space-separated into out (at most
 * QUARANTINE_BATCH, as many as fit); they are marked asked.  Returns how many.
 */
unsigned quarantine_take(struct quarantine *q, enum culprit_kind kind, const char *key,
                         size_t len, uint64_t hash, enum quarantine_op op, double now, char *out,
                         size_t outlen);

/*
 * postsuper's answer to a take: done holds the IDs it held (released), space-separated.
 * The key's other asked IDs were not found: a hold is asked again once after
 * QUARANTINE_RETRY, then forgotten; a release forgets them (no longer on hold).  failed:
 * postsuper did not run; every asked ID goes back to where it was.  Returns how many were
 * done.
 */
unsigned quarantine_done(struct quarantine *q, enum culprit_kind kind, const char *key,
                         size_t len, uint64_t hash, enum quarantine_op op, const char *done,
                         size_t done_len, bool failed, double now);

/* monitor_only: the key's due IDs as take would give them, marked as would-have-been-held
 * (never asked for again).  Returns how many. */
unsigned quarantine_would(struct quarantine *q, enum culprit_kind kind, const char *key,
                          size_t len, uint64_t hash, double now, char *out, size_t outlen);

/* About once a second: forget IDs past lookback that are not held, and keys left empty. */
void quarantine_tick(struct quarantine *q, double now);

void quarantine_get_stats(const struct quarantine *q, struct quarantine_stats *out);

/* A counter that moves whenever held IDs change (to save them soon). */
uint64_t quarantine_held_version(const struct quarantine *q);

/*
 * The table as text, for the store (beside the baselines): keys with held IDs first.
 * Lines "quarantine-key RELEASED RELEASED_AT KIND:KEY" then its IDs, one
 * "quarantine-id ID STATE QUEUED_AT HELD_AT" line each (STATE q queued, h held, w would).
 * As many keys as fit whole; returns the length written.  Other lines are ignored by
 * quarantine_load, and quarantine lines by the other loaders.
 */
size_t quarantine_save(const struct quarantine *q, char *out, size_t outlen);
/* Returns how many IDs were read back (asked ones come back queued). */
unsigned quarantine_load(struct quarantine *q, const char *text, size_t len, double now);

#endif
