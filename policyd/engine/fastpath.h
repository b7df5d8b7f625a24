/*
 * fastpath: each relay sender key judged by its own short-window figures,
 * on every relay RCPT, so that a relay is stopped within its first
 * recipients instead of after the host-level detector has seen a burst
 * for detect_loud_after.
 *
 * For each key (SASL user, else client address) the table counts, over
 * the last `window` seconds, the distinct relay domains it sent to and
 * the MX queries it caused that went upstream.  A key is over its limit
 * when either figure passes max(floor, factor x usual), where usual is
 * the key's own learned level when it has one, else the site's usual (the
 * median of the learned levels of the keys that have one, once at least
 * site_min_keys have one; before that, 0: the floor alone).
 *
 * A key's level is its peak figure per window, learned once a learning
 * period (learn_period) is over from periods in which it was not
 * throttled (the caller says which keys are), and fading with `halflife`
 * when the key no longer sends as much.  Levels are saved as text lines
 * ("fast DOMAINS MX TIME KIND:KEY") beside the detector's baselines and
 * read back at start.
 *
 * Identity is the key's name (kind and bytes compared), not its hash; MX
 * queries, which arrive with the key's hash only, go to the tracked key of
 * that hash.  Memory: `slots` entries fixed at fast_table_new (1.5 KiB
 * each, 128 recent domains among them) and 192 bytes per set of 8, no
 * allocation afterwards; a new key takes the least valuable way of its
 * set (no level, then the lowest level, then the longest idle), chosen
 * from the set's own line of hashes, times and ranks.  Work per RCPT: one
 * set's hashes, one key's entry, one group of 8 recent domains (one cache
 * line), 16 buckets.  Pure:
 * no I/O, the clock is passed in (a clock that steps back is taken as
 * standing still: the table keeps its own time, which never runs back).
 */
#ifndef RELAYWATCH_FASTPATH_H
#define RELAYWATCH_FASTPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "culprits.h"

#define FAST_LEARN_PERIOD 60.0 /* fast_learn_period's default */
#define FAST_SITE_MIN_KEYS 10  /* fast_site_min_keys's default */

struct fast_settings {
    double window;   /* seconds */
    unsigned min_domains, min_mx;
    double factor;
    double halflife; /* seconds */
    unsigned slots;  /* taken by fast_table_new only */
    double learn_period;    /* seconds: a key's peak is learned once per period */
    unsigned site_min_keys; /* keys with a level before the site's usual counts */
};

/* One key's figures at a relay RCPT, and the limit they were judged by.  While both figures
 * are within their floors (the usual case) nothing else is worked out: the limits are the
 * floors, span and the usual levels 0. */
struct fast_verdict {
    bool over;                       /* a figure passed its limit */
    bool history;                    /* judged by its own level (else the site's) */
    unsigned domains, mx;            /* in the window, this RCPT included */
    double span;                     /* seconds since the window's first counted event */
    unsigned limit_domains, limit_mx;
    double usual_domains, usual_mx;  /* the level the limits came from */
    size_t entry;                    /* the key's place, for fast_entry_stopped (until the
                                        table's next call) */
};

struct fast_stats {
    unsigned keys;            /* tracked */
    unsigned keys_with_history;
    double site_domains, site_mx; /* the site's usual (median of learned levels) */
    uint64_t learned;         /* periods folded into levels */
};

struct fast_table;

struct fast_table *fast_table_new(const struct fast_settings *s);
void fast_table_free(struct fast_table *t);

/* New window, floors, factor and half-life (slots stays). */
void fast_reconfigure(struct fast_table *t, const struct fast_settings *s);

/*
 * A relay RCPT of key (kind, len bytes, hash = culprit_key_hash) to the domain
 * with hash domain_hash (not 0), at time now: counted, and the key's figures
 * judged.
 */
void fast_note_rcpt(struct fast_table *t, enum culprit_kind kind, const char *key, size_t len,
                    uint64_t hash, uint64_t domain_hash, double now, struct fast_verdict *out);

/* MX queries sent upstream for the key with this hash (ignored when not tracked). */
void fast_note_mx(struct fast_table *t, uint64_t hash, uint32_t n, double now);

/* The key was throttled: its learning period under way is not learned (a throttle shorter
 * than the period has ended before the period does).  Nothing if the key is not tracked. */
void fast_mark_stopped(struct fast_table *t, enum culprit_kind kind, const char *key, size_t len,
                       uint64_t hash);

/* The same for the key fast_note_rcpt just gave a verdict for (v->entry): no lookup. */
void fast_entry_stopped(struct fast_table *t, size_t entry);

/* Whether a key is throttled now: its period is not learned. */
typedef bool fast_stopped_fn(void *ctx, enum culprit_kind kind, const char *key, uint64_t hash);

/* About once a second: learn the periods that are over, recompute the site's usual. */
void fast_tick(struct fast_table *t, double now, fast_stopped_fn *stopped, void *ctx);

/* The same for every period under way, however short (before a save at shutdown). */
void fast_learn_now(struct fast_table *t, double now, fast_stopped_fn *stopped, void *ctx);

void fast_get_stats(const struct fast_table *t, struct fast_stats *out);

/* The learned levels as text lines, highest first, whole lines only; returns the length
 * (at most outlen - 1, NUL-terminated). */
size_t fast_save(const struct fast_table *t, double now, char *out, size_t outlen);

/* Take the "fast ..." lines of text (other lines are skipped); returns how many levels were
 * taken.  Levels fade from the time saved to now. */
unsigned fast_load(struct fast_table *t, const char *text, size_t len, double now);

#endif
