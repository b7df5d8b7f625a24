/*
 * throttle: the keys (SASL users, client addresses, sender domains) whose
 * relay mail gets an action other than DUNNO, and why.
 *
 * Entries come from the detector (culprits of a loud incident), from the
 * fast path (a key far over its usual within seconds), from the static
 * limits, and by hand (relaywatch block / release).  The table is
 * shared through the store as the Redis hash `rw:throttle`: field
 * "KIND:KEY", value one throttle_record line (below).  Whoever changed an
 * entry last wins (its `changed` time), so a release by hand beats the
 * daemon that throttled the key, and every host of the fleet obeys.
 *
 * A released key keeps a record (source "released") until its `until`:
 * during that grace the detector and the limits leave the key alone, so an
 * operator's release is not undone a second later by the same incident.
 *
 * Lookups are by (kind, key) in an open-addressing index on culprit_key_hash
 * (keyed: probes stay short whatever the keys), the key compared; no
 * allocation on the request path.  Pure apart from the clock passed in.
 */
#ifndef RELAYWATCH_THROTTLE_H
#define RELAYWATCH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "culprits.h"

#define THROTTLE_ACTION_MAX 256
#define THROTTLE_REASON_MAX 512
#define THROTTLE_HOST_MAX 64

enum throttle_source {
    THROTTLE_DETECTOR, /* a culprit of a loud incident */
    THROTTLE_LIMIT,    /* over a static limit */
    THROTTLE_MANUAL,   /* relaywatch block */
    THROTTLE_RELEASED, /* relaywatch release: a grace during which nothing automatic applies */
    THROTTLE_FAST,     /* the per-key fast path: far over the key's usual in a few seconds */
    THROTTLE_SOURCES
};

/* One entry, as stored in rw:throttle and shown by relaywatch list. */
struct throttle_record {
    enum culprit_kind kind;
    char key[CULPRIT_KEY_MAX + 1];
    enum throttle_source source;
    double changed;           /* Unix time of the last change: the newer record wins */
    double since;             /* Unix time the key was throttled (released) */
    double until;             /* Unix time it ends; 0: until released by hand */
    bool escalated;           /* the detector's action was raised to culprit_escalate_action */
    char host[THROTTLE_HOST_MAX]; /* host_id of who made it, or "cli" */
    char action[THROTTLE_ACTION_MAX]; /* the Postfix action, e.g. "DEFER 4.7.1 ..." */
    char reason[THROTTLE_REASON_MAX];
    /* This daemon's own figures, not stored: answers given to the key, and when one was
     * last logged. */
    uint64_t hits;
    double last_logged;
    bool local; /* kept out of the store (monitor_only's would-be throttles) */
};

/*
 * The store's value of a record (everything but kind and key, which make
 * the field name): "v1 CHANGED SINCE UNTIL SOURCE ESCALATED HOST\tACTION\tREASON".
 * Times are printed with %.3f (out of range: 0); tabs and line ends in the
 * action and reason become spaces, in the host '_'; an empty host is
 * written "-", an empty action "DUNNO".  Returns the length written, at
 * most outlen - 1: a value that does not fit is cut (and always
 * NUL-terminated) like snprintf cuts it.  1024 bytes hold any record.
 */
size_t throttle_record_format(const struct throttle_record *r, char *out, size_t outlen);

/*
 * Parse a field ("KIND:KEY") and its value, neither NUL-terminated; false
 * for anything malformed (another version, a time that is not digits with
 * an optional fraction, an unknown source, a part too long for its array,
 * an empty host or action, a NUL byte, a third tab).
 */
bool throttle_record_parse(const char *field, size_t field_len, const char *value,
                           size_t value_len, struct throttle_record *out);

/* "KIND:KEY" (len bytes, the key after the first colon) -> kind and key;
 * false for an unknown kind, an empty key, a key that does not fit in
 * keylen bytes with its NUL, or a NUL byte. */
bool throttle_parse_member(const char *member, size_t len, enum culprit_kind *kind, char *key,
                           size_t keylen);

const char *throttle_source_name(enum throttle_source s);

/* Whether r throttles its key at time now: not expired, not a release's grace. */
static inline bool throttle_in_force(const struct throttle_record *r, double now)
{
    return r->source != THROTTLE_RELEASED && (r->until == 0 || r->until > now);
}

/* The table in the daemon. */
struct throttle_table;

struct throttle_table *throttle_table_new(unsigned capacity);
void throttle_table_free(struct throttle_table *t);

/* How many records (released ones included). */
unsigned throttle_count(const struct throttle_table *t);

/* The record of a key (cut to CULPRIT_KEY_MAX, as records keep it), or NULL.  hash is
 * culprit_key_hash(kind, key, len).  The caller may change hits and last_logged; other
 * changes go through throttle_changed. */
struct throttle_record *throttle_find(const struct throttle_table *t, enum culprit_kind kind,
                                      const char *key, size_t len, uint64_t hash);

/* A record found with throttle_find was changed in place: write it to the store. */
void throttle_changed(struct throttle_table *t, struct throttle_record *r);

/*
 * Put r (a new or changed record) in the table, replacing the key's record
 * when r is at least as new.  dirty marks it for the store.  Returns false
 * when the table is full (the record is dropped; the caller logs it) or r
 * is older than the record held.
 */
bool throttle_put(struct throttle_table *t, const struct throttle_record *r, bool dirty);

/* Drop records whose until has passed; returns how many (they leave the store too). */
unsigned throttle_expire(struct throttle_table *t, double now);

/* Visit every record; stop when fn returns false. */
void throttle_each(const struct throttle_table *t,
                   bool (*fn)(void *ctx, const struct throttle_record *r), void *ctx);

/*
 * The store's side: records changed since the last call (to HSET) and keys
 * dropped (to HDEL), handed to fn; then nothing is dirty.  set: true for a
 * record to write, false for a field to delete (r holds kind and key).
 */
void throttle_collect(struct throttle_table *t,
                      void (*fn)(void *ctx, bool set, const struct throttle_record *r), void *ctx);

/* Mark every record dirty again (a write failed, a new connection). */
void throttle_rewrite_all(struct throttle_table *t);

/*
 * A full read of rw:throttle: records newer than the table's are taken,
 * and records the table wrote before that are missing from the read are
 * dropped (someone deleted the field).  Call throttle_sync_begin, then
 * throttle_sync_record per field, then throttle_sync_end.
 */
void throttle_sync_begin(struct throttle_table *t);
void throttle_sync_record(struct throttle_table *t, const struct throttle_record *r);
/* Returns how many records were dropped because the store no longer has them. */
unsigned throttle_sync_end(struct throttle_table *t);

#endif
