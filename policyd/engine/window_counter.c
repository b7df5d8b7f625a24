/*
 * window_counter: sliding-window counts and distinct counts.  See the header.
 *
 * Each window has a ring of buckets and the number of its newest bucket
 * ("head").  Adding at a later bucket first clears the buckets skipped
 * since head, so no per-bucket timestamps are needed; reading sums the
 * buckets that are both written (not older than head - buckets) and
 * still inside the window at the time of reading.
 */
#include "window_counter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium/core.h>
#include <sodium/crypto_shorthash.h>
#include <sodium/randombytes.h>

#include "xalloc.h"

void window_set_init(struct window_set *ws, const double *seconds, const char *const *names,
                     unsigned count, unsigned buckets)
{
    memset(ws, 0, sizeof(*ws));
    ws->count = count > WINDOW_MAX ? WINDOW_MAX : count;
    ws->buckets = buckets < 1 ? 1 : buckets;
    for (unsigned w = 0; w < ws->count; w++) {
        ws->seconds[w] = seconds[w];
        ws->width[w] = seconds[w] / ws->buckets;
        snprintf(ws->name[w], sizeof(ws->name[w]), "%s", names[w]);
    }
}

unsigned window_set_longest(const struct window_set *ws)
{
    unsigned best = 0;

    for (unsigned w = 1; w < ws->count; w++)
        if (ws->seconds[w] > ws->seconds[best])
            best = w;
    return best;
}

static int64_t bucket_of(const struct window_set *ws, unsigned w, double now)
{
    return (int64_t)floor(now / ws->width[w]);
}

/* Index of bucket k in window w's ring. */
static size_t slot_of(const struct window_set *ws, unsigned w, int64_t k)
{
    int64_t nb = ws->buckets;

    return (size_t)w * (size_t)nb + (size_t)(((k % nb) + nb) % nb);
}

void window_clock_set(struct window_clock *clk, const struct window_set *ws, double now)
{
    for (unsigned w = 0; w < ws->count; w++) {
        int64_t k = bucket_of(ws, w, now);
        int64_t nb = ws->buckets;

        clk->bucket[w] = k;
        clk->slot[w] = (unsigned)(((k % nb) + nb) % nb);
    }
}

/*
 * Move window w's head to bucket k, clearing what it skipped; returns
 * false when k is older than the ring holds (a clock step backwards far
 * enough: the event is dropped rather than put in the wrong bucket).
 */
static int advance(int64_t *head, const struct window_set *ws, unsigned w, int64_t k,
                   void (*clear)(void *ctx, size_t slot), void *ctx)
{
    int64_t nb = ws->buckets;

    if (k > head[w]) {
        int64_t from = k - head[w] > nb ? k - nb + 1 : head[w] + 1;
        for (int64_t j = from; j <= k; j++)
            clear(ctx, slot_of(ws, w, j));
        head[w] = k;
        return 1;
    }
    return k > head[w] - nb;
}

/* The range of buckets [lo, hi] that count for window w at now; nothing before floor. */
static int live_range(const int64_t *head, const int64_t *floor_, const struct window_set *ws,
                      unsigned w, double now, int64_t *lo, int64_t *hi)
{
    int64_t k = bucket_of(ws, w, now);
    int64_t nb = ws->buckets;

    *hi = head[w] < k ? head[w] : k;
    *lo = k - nb + 1;
    if (head[w] - nb + 1 > *lo)
        *lo = head[w] - nb + 1;
    if (floor_[w] > *lo)
        *lo = floor_[w];
    return *lo <= *hi;
}

/* ------------------------------------------------------------ counts */

struct window_counter {
    uint64_t total;
    int64_t head[WINDOW_MAX];
    int64_t floor[WINDOW_MAX]; /* buckets before this are not read (see restart_at) */
    uint32_t bucket[]; /* count * buckets */
};

struct window_counter *window_counter_new(const struct window_set *ws)
{
    size_t n = (size_t)ws->count * ws->buckets;
    struct window_counter *c = xcalloc(1, sizeof(*c) + n * sizeof(uint32_t));

    window_counter_reset(c, ws);
    return c;
}

void window_counter_free(struct window_counter *c)
{
    free(c);
}

void window_counter_reset(struct window_counter *c, const struct window_set *ws)
{
    c->total = 0;
    for (unsigned w = 0; w < WINDOW_MAX; w++)
        c->head[w] = c->floor[w] = INT64_MIN / 2;
    memset(c->bucket, 0, (size_t)ws->count * ws->buckets * sizeof(uint32_t));
}

void window_counter_restart_at(struct window_counter *c, const struct window_set *ws,
                               const struct window_clock *clk)
{
    c->total = 0;
    for (unsigned w = 0; w < ws->count; w++) {
        c->head[w] = c->floor[w] = clk->bucket[w];
        c->bucket[(size_t)w * ws->buckets + clk->slot[w]] = 0;
    }
}

static void clear_count(void *ctx, size_t slot)
{
    ((uint32_t *)ctx)[slot] = 0;
}

void window_counter_add_at(struct window_counter *c, const struct window_set *ws,
                           const struct window_clock *clk, uint32_t n)
{
    c->total = c->total > UINT64_MAX - n ? UINT64_MAX : c->total + n;
    for (unsigned w = 0; w < ws->count; w++) {
        uint32_t *b;

        if (clk->bucket[w] != c->head[w] &&
            !advance(c->head, ws, w, clk->bucket[w], clear_count, c->bucket))
            continue;
        b = &c->bucket[(size_t)w * ws->buckets + clk->slot[w]];
        *b = *b > UINT32_MAX - n ? UINT32_MAX : *b + n;
    }
}

void window_counter_add_history(struct window_counter *c, const struct window_set *ws,
                                const struct window_clock *clk, uint32_t n)
{
    uint64_t total = c->total;

    window_counter_add_at(c, ws, clk, n);
    c->total = total;
}

void window_counter_add(struct window_counter *c, const struct window_set *ws, double now,
                        uint32_t n)
{
    struct window_clock clk;

    window_clock_set(&clk, ws, now);
    window_counter_add_at(c, ws, &clk, n);
}

uint64_t window_counter_sum(const struct window_counter *c, const struct window_set *ws,
                            unsigned w, double now)
{
    int64_t lo, hi;
    uint64_t sum = 0;

    if (w >= ws->count || !live_range(c->head, c->floor, ws, w, now, &lo, &hi))
        return 0;
    for (int64_t k = lo; k <= hi; k++)
        sum += c->bucket[slot_of(ws, w, k)];
    return sum;
}

uint64_t window_counter_total(const struct window_counter *c)
{
    return c->total;
}

/* ---------------------------------------------------- distinct counts */

/* The last estimate per window: reading the registers of every bucket is the costly part, and
 * it changes only when a register rises or the window's buckets move (relaywatch analyze's
 * backtest asks once a simulated second). */
struct estimate_cache {
    bool valid;
    uint64_t generation;
    int64_t lo, hi;
    uint64_t value;
};

struct distinct_counter {
    unsigned precision;
    size_t registers; /* per bucket: 2^precision */
    uint64_t generation; /* raised whenever a register rises */
    struct estimate_cache *cache; /* [WINDOW_MAX]: written by the const estimate */
    int64_t head[WINDOW_MAX];
    int64_t floor[WINDOW_MAX];
    uint8_t reg[]; /* count * buckets * registers */
};

struct distinct_counter *distinct_counter_new(const struct window_set *ws, unsigned precision)
{
    size_t m = (size_t)1 << precision;
    struct distinct_counter *c =
        xcalloc(1, sizeof(*c) + (size_t)ws->count * ws->buckets * m);

    c->precision = precision;
    c->registers = m;
    c->cache = xcalloc(WINDOW_MAX, sizeof(*c->cache));
    distinct_counter_reset(c, ws);
    return c;
}

void distinct_counter_free(struct distinct_counter *c)
{
    if (c != NULL)
        free(c->cache);
    free(c);
}

void distinct_counter_reset(struct distinct_counter *c, const struct window_set *ws)
{
    for (unsigned w = 0; w < WINDOW_MAX; w++)
        c->head[w] = c->floor[w] = INT64_MIN / 2;
    memset(c->reg, 0, (size_t)ws->count * ws->buckets * c->registers);
    c->generation++;
}

void distinct_counter_restart_at(struct distinct_counter *c, const struct window_set *ws,
                                 const struct window_clock *clk)
{
    for (unsigned w = 0; w < ws->count; w++) {
        c->head[w] = c->floor[w] = clk->bucket[w];
        memset(c->reg + ((size_t)w * ws->buckets + clk->slot[w]) * c->registers, 0,
               c->registers);
    }
    c->generation++;
}

struct clear_sketch {
    uint8_t *reg;
    size_t m;
};

static void clear_sketch(void *ctx, size_t slot)
{
    struct clear_sketch *cs = ctx;

    memset(cs->reg + slot * cs->m, 0, cs->m);
}

void distinct_counter_add_at(struct distinct_counter *c, const struct window_set *ws,
                             const struct window_clock *clk, uint64_t hash)
{
    size_t index = (size_t)(hash >> (64 - c->precision));
    uint64_t rest = hash << c->precision;
    /* Rank: position of the first 1 bit in what is left of the hash. */
    uint8_t rank = rest == 0 ? (uint8_t)(64 - c->precision + 1) : (uint8_t)(__builtin_clzll(rest) + 1);
    struct clear_sketch cs = {c->reg, c->registers};

    for (unsigned w = 0; w < ws->count; w++) {
        uint8_t *r;

        if (clk->bucket[w] != c->head[w]) {
            c->generation++; /* buckets cleared */
            if (!advance(c->head, ws, w, clk->bucket[w], clear_sketch, &cs))
                continue;
        }
        r = &c->reg[((size_t)w * ws->buckets + clk->slot[w]) * c->registers + index];
        if (*r < rank) {
            *r = rank;
            c->generation++;
        }
    }
}

void distinct_counter_add(struct distinct_counter *c, const struct window_set *ws, double now,
                          uint64_t hash)
{
    struct window_clock clk;

    window_clock_set(&clk, ws, now);
    distinct_counter_add_at(c, ws, &clk, hash);
}

uint64_t distinct_counter_estimate(const struct distinct_counter *c, const struct window_set *ws,
                                   unsigned w, double now)
{
    uint8_t merged[1 << 16];
    size_t m = c->registers;
    int64_t lo, hi;
    double sum = 0, estimate;
    size_t zeros = 0;

    struct estimate_cache *cache;

    if (w >= ws->count || !live_range(c->head, c->floor, ws, w, now, &lo, &hi))
        return 0;
    cache = &c->cache[w];
    if (cache->valid && cache->generation == c->generation && cache->lo == lo && cache->hi == hi)
        return cache->value;
    memset(merged, 0, m);
    for (int64_t k = lo; k <= hi; k++) {
        const uint8_t *r = &c->reg[slot_of(ws, w, k) * m];
        for (size_t j = 0; j < m; j++)
            if (r[j] > merged[j])
                merged[j] = r[j];
    }
    for (size_t j = 0; j < m; j++) {
        sum += ldexp(1.0, -merged[j]);
        zeros += merged[j] == 0;
    }
    if (zeros == m) {
        estimate = 0;
    } else {
        estimate = (0.7213 / (1.0 + 1.079 / (double)m)) * (double)m * (double)m / sum;
        /* Few items: linear counting is far more accurate, and exact when no two collide. */
        if (estimate <= 2.5 * (double)m && zeros > 0)
            estimate = (double)m * log((double)m / (double)zeros);
    }
    *cache = (struct estimate_cache){true, c->generation, lo, hi, (uint64_t)llround(estimate)};
    return cache->value;
}

/* ------------------------------------------------------------- hashing */

static uint64_t finalize(uint64_t x)
{
    /* splitmix64's finaliser: every input bit affects every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* The default key: tests and fuzzers; relaywatchd replaces it with a random one at start. */
static unsigned char process_key[HASH_KEY_BYTES] = "relaywatch-tests";
/* Public on purpose (hash64_stable): the same in every process, run and host. */
static const unsigned char stable_key[HASH_KEY_BYTES] = "relaywatch-store";

void hash_set_key(const unsigned char key[HASH_KEY_BYTES])
{
    memcpy(process_key, key, HASH_KEY_BYTES);
}

bool hash_set_random_key(void)
{
    unsigned char key[HASH_KEY_BYTES];

    if (sodium_init() < 0)
        return false;
    randombytes_buf(key, sizeof(key));
    hash_set_key(key);
    return true;
}

static uint64_t siphash(const unsigned char *key, const char *data, size_t len, int fold_case)
{
    unsigned char out[crypto_shorthash_BYTES];
    unsigned char buf[256];
    uint64_t h;

    if (!fold_case) {
        crypto_shorthash(out, (const unsigned char *)data, len, key);
    } else {
        /* Folded through a buffer: for up to 256 bytes (every DNS name, every culprit key)
         * the same as hash64 of the folded bytes.  A longer name goes on in pieces, each
         * hashed with the hash so far in front (still one keyed function of the whole). */
        size_t used = 0;

        do {
            size_t n = len < sizeof(buf) - used ? len : sizeof(buf) - used;

            for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)data[i];
                buf[used + i] = ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
            }
            crypto_shorthash(out, buf, used + n, key);
            data += n;
            len -= n;
            memcpy(buf, out, sizeof(out));
            used = sizeof(out);
        } while (len > 0);
    }
    /* Little-endian whatever the machine: hash64_stable values are shared between hosts. */
    h = 0;
    for (int i = 7; i >= 0; i--)
        h = h << 8 | out[i];
    return h;
}

uint64_t hash64(const char *data, size_t len, int fold_case)
{
    return siphash(process_key, data, len, fold_case);
}

uint64_t hash64_stable(const char *data, size_t len, int fold_case)
{
    return siphash(stable_key, data, len, fold_case);
}

size_t power_of_two_at_least(size_t n, size_t floor)
{
    size_t p = floor;

    while (p < n)
        p <<= 1;
    return p;
}

uint64_t hash64_mix(uint64_t h, uint64_t v)
{
    return finalize(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}
