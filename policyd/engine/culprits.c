/*
 * culprits: Space-Saving heavy hitters with windowed figures.  See the header.
 *
 * Entries live in one array; an open-addressing index (linear probing,
 * twice the slots, backward-shift deletion) maps a key's hash to its
 * entry.  Scores are kept in Space-Saving's stream summary: a list of
 * score buckets, lowest first, each holding the entries with that score in
 * a ring (oldest first).  The entry to replace is the oldest of the lowest
 * bucket, found at once; raising a score by w walks past at most w - 1
 * buckets (callers add 1 message or 1 recipient).  So the work of an
 * update does not grow with culprit_slots or with how many keys senders
 * make up, and no update allocates: the buckets come from a pool of
 * `slots`, as there are never more buckets than entries.
 */
#include "culprits.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* 256 registers per bucket: about 6.5 % error, exact for a few; culprit shares and
 * limit_domains are judged on it. */
#define DOMAIN_PRECISION 8

#define NONE UINT32_MAX /* no entry, no bucket */

/* The entries whose score is `score`, and its neighbours in score order. */
struct score_bucket {
    uint64_t score;
    uint32_t first;      /* the oldest entry of the ring; NONE for a bucket in the pool */
    uint32_t lower, higher; /* buckets; NONE at the ends.  In the pool, higher links it. */
};

struct culprit {
    bool used;
    enum culprit_kind kind;
    uint64_t hash;
    uint64_t error;
    double since; /* when this key took the slot */
    uint16_t key_len;
    char key[CULPRIT_KEY_MAX + 1];
    struct window_counter *messages, *recipients;
    struct window_counter *dns_lookups, *dns_upstream;
    struct distinct_counter *domains;
};

/* The low half of the key's hash beside the entry's number: a probe passes other keys without
 * reading their entries, and a slot's home is known without them. */
struct index_slot {
    uint32_t n;    /* entry number + 1; 0 empty */
    uint32_t hash; /* the key's hash, low 32 bits */
};

/* An entry's place in the stream summary, apart from the entry: a raise or a replacement
 * touches its ring neighbours, and these are a few bytes each, not an entry's cache lines. */
struct summary_place {
    uint32_t bucket;       /* its score's bucket */
    uint32_t older, newer; /* its ring in the bucket */
};

struct culprit_table {
    const struct window_set *ws;
    unsigned slots, used;
    uint64_t evictions; /* none yet: every tracked key's figures are complete */
    struct culprit *entry;
    struct summary_place *place; /* one per entry */
    struct score_bucket *bucket; /* slots of them */
    uint32_t lowest;             /* the bucket with the lowest score; NONE while empty */
    uint32_t pool;               /* unused buckets, linked by higher */
    struct index_slot *index;
    size_t index_mask;
    double next_decay;
};

static const char *const kind_names[] = {
    [CULPRIT_SASL_USERNAME] = "sasl_username",
    [CULPRIT_CLIENT_ADDRESS] = "client_address",
    [CULPRIT_SENDER_DOMAIN] = "sender_domain",
};

const char *culprit_kind_name(enum culprit_kind kind)
{
    return kind_names[kind];
}

struct culprit_table *culprit_table_new(const struct window_set *ws, unsigned slots)
{
    struct culprit_table *t = xcalloc(1, sizeof(*t));
    size_t isize;

    if (slots < 1)
        slots = 1;
    isize = power_of_two_at_least((size_t)slots * 2, 4); /* the index at most half full */
    t->ws = ws;
    t->slots = slots;
    t->entry = xcalloc(slots, sizeof(*t->entry));
    t->index = xcalloc(isize, sizeof(*t->index));
    t->place = xcalloc(slots, sizeof(*t->place));
    t->bucket = xcalloc(slots, sizeof(*t->bucket));
    t->index_mask = isize - 1;
    t->lowest = NONE;
    for (unsigned i = 0; i < slots; i++) {
        t->bucket[i].first = NONE;
        t->bucket[i].higher = i + 1 < slots ? i + 1 : NONE;
    }
    t->pool = 0;
    for (unsigned i = 0; i < slots; i++) {
        t->entry[i].messages = window_counter_new(ws);
        t->entry[i].recipients = window_counter_new(ws);
        t->entry[i].dns_lookups = window_counter_new(ws);
        t->entry[i].dns_upstream = window_counter_new(ws);
        t->entry[i].domains = distinct_counter_new(ws, DOMAIN_PRECISION);
    }
    return t;
}

void culprit_table_free(struct culprit_table *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < t->slots; i++) {
        window_counter_free(t->entry[i].messages);
        window_counter_free(t->entry[i].recipients);
        window_counter_free(t->entry[i].dns_lookups);
        window_counter_free(t->entry[i].dns_upstream);
        distinct_counter_free(t->entry[i].domains);
    }
    free(t->entry);
    free(t->place);
    free(t->bucket);
    free(t->index);
    free(t);
}

static bool same_key(const struct culprit *e, enum culprit_kind kind, uint64_t hash,
                     const char *key, size_t len)
{
    return e->used && e->hash == hash && e->kind == kind && e->key_len == len &&
           memcmp(e->key, key, len) == 0;
}

/* The index position holding entry for (kind, key), or the empty one where it would go. */
static size_t index_find(const struct culprit_table *t, enum culprit_kind kind, uint64_t hash,
                         const char *key, size_t len)
{
    size_t pos = (size_t)hash & t->index_mask;

    for (;;) {
        const struct index_slot *v = &t->index[pos];
        if (v->n == 0 ||
            (v->hash == (uint32_t)hash && same_key(&t->entry[v->n - 1], kind, hash, key, len)))
            return pos;
        pos = (pos + 1) & t->index_mask;
    }
}

/* Remove entry number n from the index, shifting back what followed it. */
static void index_remove(struct culprit_table *t, uint32_t n)
{
    size_t hole = (size_t)t->entry[n].hash & t->index_mask;
    size_t j;

    while (t->index[hole].n != n + 1)
        hole = (hole + 1) & t->index_mask;
    for (j = (hole + 1) & t->index_mask; t->index[j].n != 0; j = (j + 1) & t->index_mask) {
        size_t home = (size_t)t->index[j].hash & t->index_mask;

        /* Move it into the hole unless its home lies after the hole (cyclically). */
        if (((j - home) & t->index_mask) >= ((j - hole) & t->index_mask)) {
            t->index[hole] = t->index[j];
            hole = j;
        }
    }
    t->index[hole].n = 0;
}

/* ---------------------------------------------------------- stream summary */

/* A bucket from the pool for score, linked between lower and higher. */
static uint32_t bucket_new(struct culprit_table *t, uint64_t score, uint32_t lower, uint32_t higher)
{
    uint32_t b = t->pool;
    struct score_bucket *sb = &t->bucket[b];

    /* Each bucket in use holds an entry, and an entry is in one bucket: the pool of `slots`
     * cannot run dry while an entry waits for one. */
    t->pool = sb->higher;
    sb->score = score;
    sb->first = NONE;
    sb->lower = lower;
    sb->higher = higher;
    if (lower != NONE)
        t->bucket[lower].higher = b;
    else
        t->lowest = b;
    if (higher != NONE)
        t->bucket[higher].lower = b;
    return b;
}

static void bucket_drop(struct culprit_table *t, uint32_t b)
{
    struct score_bucket *sb = &t->bucket[b];

    if (sb->lower != NONE)
        t->bucket[sb->lower].higher = sb->higher;
    else
        t->lowest = sb->higher;
    if (sb->higher != NONE)
        t->bucket[sb->higher].lower = sb->lower;
    sb->first = NONE;
    sb->higher = t->pool;
    t->pool = b;
}

/* Put entry n last (newest) in bucket b's ring. */
static void ring_join(struct culprit_table *t, uint32_t n, uint32_t b)
{
    struct summary_place *e = &t->place[n];
    uint32_t first = t->bucket[b].first;

    e->bucket = b;
    if (first == NONE) {
        e->older = e->newer = n;
        t->bucket[b].first = n;
        return;
    }
    e->newer = first;
    e->older = t->place[first].older;
    t->place[e->older].newer = n;
    t->place[first].older = n;
}

/* Take entry n out of its bucket's ring; returns whether the bucket is left empty. */
static bool ring_leave(struct culprit_table *t, uint32_t n)
{
    struct summary_place *e = &t->place[n];
    struct score_bucket *sb = &t->bucket[e->bucket];

    if (e->newer == n) {
        sb->first = NONE;
        return true;
    }
    t->place[e->older].newer = e->newer;
    t->place[e->newer].older = e->older;
    if (sb->first == n)
        sb->first = e->newer;
    return false;
}

/* A new entry n with score 0: 0 is never above the lowest score. */
static void score_start(struct culprit_table *t, uint32_t n)
{
    uint32_t b = t->lowest;

    if (b == NONE || t->bucket[b].score != 0)
        b = bucket_new(t, 0, NONE, b);
    ring_join(t, n, b);
}

/* Raise entry n's score by w > 0: past the buckets in between, at most w - 1 of them. */
static void score_raise(struct culprit_table *t, uint32_t n, uint64_t w)
{
    uint32_t from = t->place[n].bucket;
    uint64_t score = t->bucket[from].score;
    uint64_t target = score > UINT64_MAX - w ? UINT64_MAX : score + w;
    uint32_t below = from, above = t->bucket[from].higher;
    bool emptied;

    if (target == score)
        return; /* saturated */
    while (above != NONE && t->bucket[above].score < target) {
        below = above;
        above = t->bucket[above].higher;
    }
    emptied = ring_leave(t, n);
    /* An emptied bucket goes back to the pool before one is taken: with every score
     * different, every bucket is in use. */
    if (emptied && below == from && (above == NONE || t->bucket[above].score != target)) {
        /* Alone in its bucket and nothing in between: the bucket moves up with it. */
        t->bucket[from].score = target;
        ring_join(t, n, from);
        return;
    }
    if (emptied)
        bucket_drop(t, from);
    if (above != NONE && t->bucket[above].score == target)
        ring_join(t, n, above);
    else
        ring_join(t, n, bucket_new(t, target, below, above));
}

static uint64_t score_of(const struct culprit_table *t, uint32_t n)
{
    return t->bucket[t->place[n].bucket].score;
}

/* Halve every score; equal halves merge into one bucket (order is kept, so only neighbours). */
static void scores_halve(struct culprit_table *t)
{
    uint32_t b = t->lowest;

    while (b != NONE) {
        uint32_t higher = t->bucket[b].higher;
        uint32_t lower = t->bucket[b].lower;

        t->bucket[b].score >>= 1;
        if (lower != NONE && t->bucket[lower].score == t->bucket[b].score) {
            while (t->bucket[b].first != NONE) {
                uint32_t n = t->bucket[b].first;
                ring_leave(t, n);
                ring_join(t, n, lower);
            }
            bucket_drop(t, b);
        }
        b = higher;
    }
}

size_t culprit_fold_domain(const char *domain, size_t len, char *out)
{
    size_t n = len < CULPRIT_KEY_MAX ? len : CULPRIT_KEY_MAX;

    for (size_t i = 0; i < n; i++) {
        char ch = domain[i];
        out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    return n;
}

uint64_t culprit_key_hash(enum culprit_kind kind, const char *key, size_t len)
{
    /* What is kept of a key (CULPRIT_KEY_MAX bytes) is what is hashed, so a key read back
     * from the store (a throttle record) finds the same entry. */
    if (len > CULPRIT_KEY_MAX)
        len = CULPRIT_KEY_MAX;
    return hash64_mix(hash64(key, len, 0), (uint64_t)kind);
}

void culprit_add_dns(struct culprit_table *t, uint64_t hash, const struct window_clock *clk,
                     uint32_t lookups, uint32_t upstream)
{
    /* By hash alone: 64 bits tell keys apart well enough for a count. */
    for (size_t pos = (size_t)hash & t->index_mask; t->index[pos].n != 0;
         pos = (pos + 1) & t->index_mask) {
        struct culprit *e;

        if (t->index[pos].hash != (uint32_t)hash)
            continue;
        e = &t->entry[t->index[pos].n - 1];

        if (e->hash == hash) {
            if (lookups)
                window_counter_add_at(e->dns_lookups, t->ws, clk, lookups);
            if (upstream)
                window_counter_add_at(e->dns_upstream, t->ws, clk, upstream);
            return;
        }
    }
}

void culprit_add(struct culprit_table *t, enum culprit_kind kind, const char *key, size_t len,
                 uint64_t hash, double now, const struct window_clock *clk, uint32_t messages,
                 uint32_t recipients, uint64_t domain_hash)
{
    size_t stored_len = len > CULPRIT_KEY_MAX ? CULPRIT_KEY_MAX : len;
    size_t pos;
    uint32_t n;
    struct culprit *e;

    /* A cut key is looked up by its cut form; the hash of the whole keeps it apart. */
    pos = index_find(t, kind, hash, key, stored_len);
    if (t->index[pos].n != 0) {
        n = t->index[pos].n - 1;
        e = &t->entry[n];
    } else {
        uint64_t inherited = 0;

        if (t->used < t->slots) {
            n = t->used++;
            score_start(t, n);
        } else {
            /* Space-Saving: the newcomer takes the lowest score's slot, and the score with it
             * (the most the newcomer can have sent unseen); the oldest of those goes. */
            n = t->bucket[t->lowest].first;
            inherited = t->bucket[t->lowest].score;
            index_remove(t, n);
            t->evictions++;
            pos = index_find(t, kind, hash, key, stored_len);
        }
        e = &t->entry[n];
        e->used = true;
        e->kind = kind;
        e->hash = hash;
        e->error = inherited;
        e->since = now;
        e->key_len = (uint16_t)stored_len;
        memcpy(e->key, key, stored_len);
        e->key[stored_len] = '\0';
        window_counter_restart_at(e->messages, t->ws, clk);
        window_counter_restart_at(e->recipients, t->ws, clk);
        window_counter_restart_at(e->dns_lookups, t->ws, clk);
        window_counter_restart_at(e->dns_upstream, t->ws, clk);
        distinct_counter_restart_at(e->domains, t->ws, clk);
        t->index[pos].n = n + 1;
        t->index[pos].hash = (uint32_t)hash;
    }
    if (messages || recipients)
        score_raise(t, n, (uint64_t)messages + recipients);
    if (messages)
        window_counter_add_at(e->messages, t->ws, clk, messages);
    if (recipients)
        window_counter_add_at(e->recipients, t->ws, clk, recipients);
    if (domain_hash)
        distinct_counter_add_at(e->domains, t->ws, clk, domain_hash);
}

void culprit_tick(struct culprit_table *t, double now)
{
    double period = t->ws->seconds[window_set_longest(t->ws)];

    if (t->next_decay == 0)
        t->next_decay = now + period;
    if (now < t->next_decay)
        return;
    t->next_decay = now + period;
    scores_halve(t);
    for (unsigned i = 0; i < t->used; i++)
        t->entry[i].error >>= 1;
}

static int compare_views(const void *a, const void *b)
{
    const struct culprit_view *x = a, *y = b;

    if (x->recipients != y->recipients)
        return x->recipients < y->recipients ? 1 : -1;
    if (x->messages != y->messages)
        return x->messages < y->messages ? 1 : -1;
    return strcmp(x->key, y->key);
}

unsigned culprit_top(const struct culprit_table *t, unsigned w, double now,
                     struct culprit_view *out, unsigned max)
{
    unsigned n = 0;

    if (max == 0)
        return 0;
    /* Keep the best `max` seen so far in out, sorted; slots are few, so insertion is fine. */
    for (unsigned i = 0; i < t->used; i++) {
        const struct culprit *e = &t->entry[i];
        struct culprit_view v;

        v.recipients = window_counter_sum(e->recipients, t->ws, w, now);
        v.messages = window_counter_sum(e->messages, t->ws, w, now);
        if (v.recipients == 0 && v.messages == 0)
            continue;
        v.kind = e->kind;
        memcpy(v.key, e->key, (size_t)e->key_len + 1);
        v.domains = distinct_counter_estimate(e->domains, t->ws, w, now);
        v.dns_lookups = window_counter_sum(e->dns_lookups, t->ws, w, now);
        v.dns_upstream = window_counter_sum(e->dns_upstream, t->ws, w, now);
        v.score = score_of(t, i);
        v.error = e->error;
        /* Space-Saving: true count <= count since entry + error.  No error, or
         * tracked since before the window began: the figures are complete. */
        v.exact = t->evictions == 0 || e->error == 0 || e->since <= now - t->ws->seconds[w];
        if (n < max) {
            out[n++] = v;
        } else if (compare_views(&v, &out[n - 1]) < 0) {
            out[n - 1] = v;
        } else {
            continue;
        }
        for (unsigned j = n - 1; j > 0 && compare_views(&out[j], &out[j - 1]) < 0; j--) {
            struct culprit_view tmp = out[j];
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    }
    return n;
}
