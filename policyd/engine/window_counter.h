/*
 * window_counter: counts over sliding time windows, with no I/O.
 *
 * A window_set names the windows (1m, 10m, 1h by default) and how many
 * buckets each is cut into.  A window_counter keeps, per window, a ring of
 * saturating 32-bit buckets: bucket k covers [k * width, (k + 1) * width)
 * with width = window / buckets, and the window's sum is that of the last
 * `buckets` buckets up to now (the current one partly filled), so a window
 * is exact to within one bucket width.  A distinct_counter does the same
 * with HyperLogLog sketches for "how many different".  The clock is a
 * parameter everywhere: tests set it, the daemon passes the loop's time.
 * Adding never allocates; counters are allocated once, at start.
 */
#ifndef RELAYWATCH_WINDOW_COUNTER_H
#define RELAYWATCH_WINDOW_COUNTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WINDOW_MAX 8

struct window_set {
    unsigned count;   /* windows */
    unsigned buckets; /* buckets per window */
    double seconds[WINDOW_MAX];
    double width[WINDOW_MAX]; /* seconds per bucket */
    char name[WINDOW_MAX][16]; /* "1m", "10m", "1h": as configured */
};

/* Windows from their lengths in seconds (at most WINDOW_MAX, each > 0). */
void window_set_init(struct window_set *ws, const double *seconds, const char *const *names,
                     unsigned count, unsigned buckets);

/* The index of the longest window. */
unsigned window_set_longest(const struct window_set *ws);

/*
 * The bucket of each window at one instant.  Computing it costs a division
 * per window, so a caller that adds to many counters at the same time
 * computes it once (the *_at functions); the others do it themselves.
 */
struct window_clock {
    int64_t bucket[WINDOW_MAX];
    unsigned slot[WINDOW_MAX]; /* bucket's place in its ring */
};

void window_clock_set(struct window_clock *clk, const struct window_set *ws, double now);

struct window_counter;

struct window_counter *window_counter_new(const struct window_set *ws);
void window_counter_free(struct window_counter *c);
void window_counter_reset(struct window_counter *c, const struct window_set *ws);

/*
 * Start afresh at clk's time: nothing before it is counted any more.  Cheap
 * (clears one bucket per window; the rest are cleared as time reaches
 * them), for counters that are handed from one key to another.
 */
void window_counter_restart_at(struct window_counter *c, const struct window_set *ws,
                               const struct window_clock *clk);

/* Add n at time now (seconds); buckets saturate at UINT32_MAX, the total at UINT64_MAX. */
void window_counter_add(struct window_counter *c, const struct window_set *ws, double now,
                        uint32_t n);

void window_counter_add_at(struct window_counter *c, const struct window_set *ws,
                           const struct window_clock *clk, uint32_t n);

/* As window_counter_add_at, but the total (since start) is left alone: for counts
 * of an earlier run read back from the store. */
void window_counter_add_history(struct window_counter *c, const struct window_set *ws,
                                const struct window_clock *clk, uint32_t n);

/* The sum over window w at time now. */
uint64_t window_counter_sum(const struct window_counter *c, const struct window_set *ws,
                            unsigned w, double now);

/* Everything ever added. */
uint64_t window_counter_total(const struct window_counter *c);

struct distinct_counter;

/* precision p: 2^p one-byte registers per bucket; standard error about 1.04 / sqrt(2^p). */
struct distinct_counter *distinct_counter_new(const struct window_set *ws, unsigned precision);
void distinct_counter_free(struct distinct_counter *c);
void distinct_counter_reset(struct distinct_counter *c, const struct window_set *ws);

/* As window_counter_restart_at. */
void distinct_counter_restart_at(struct distinct_counter *c, const struct window_set *ws,
                                 const struct window_clock *clk);

/* Note one item by its 64-bit hash (see hash64). */
void distinct_counter_add(struct distinct_counter *c, const struct window_set *ws, double now,
                          uint64_t hash);

void distinct_counter_add_at(struct distinct_counter *c, const struct window_set *ws,
                             const struct window_clock *clk, uint64_t hash);

/* Estimated number of different items in window w; small counts come out exact in practice. */
uint64_t distinct_counter_estimate(const struct distinct_counter *c, const struct window_set *ws,
                                   unsigned w, double now);

/*
 * Hashing names from the wire.  Every table keyed by such names (culprits, throttles, fast
 * path, quarantine, sessions, distinct counts) indexes by hash64, which is SipHash-2-4
 * (libsodium's crypto_shorthash) under a secret key: whoever picks the names cannot know
 * which of them share a slot, so no input makes a probe or a chain long.  The key is the
 * caller's to set, once, before any table is filled (relaywatchd draws it at random at
 * start): the engine stays pure and reproducible, and unit tests and fuzzers run on the fixed
 * default key.  Changing the key empties nothing: call it before tables are made.
 * Lookups compare the names; a few counts go by the 64-bit hash alone (a session's or a
 * transaction's key, DNS counts credited to a tracked key, distinct counts), where two names
 * meet only by a 2^-64 chance that nobody can steer without the key.
 */
#define HASH_KEY_BYTES 16

void hash_set_key(const unsigned char key[HASH_KEY_BYTES]);

/* For programs at start: a key from the system's random source (libsodium's; may block
 * until the kernel's pool is ready, once, at boot).  False if libsodium cannot start. */
bool hash_set_random_key(void);

/* The keyed 64-bit hash of bytes; fold_case hashes A-Z as a-z. */
uint64_t hash64(const char *data, size_t len, int fold_case);

/*
 * The same under a fixed, public key: for hashes that leave the process (the relay domains
 * PFADDed to the store, counted across restarts and hosts), which a per-process key would
 * make differ for the same name.  Never index an in-memory table by it.
 */
uint64_t hash64_stable(const char *data, size_t len, int fold_case);

/* Mix one more value into a hash (for keys made of several parts). */
uint64_t hash64_mix(uint64_t h, uint64_t v);

/* The smallest power of two >= n and >= floor (floor a power of two): hash tables' sizes. */
size_t power_of_two_at_least(size_t n, size_t floor);

#endif
