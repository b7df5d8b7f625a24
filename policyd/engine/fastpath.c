/*
 * fastpath: per-key short-window figures and their limits.  See the header.
 */
#include "fastpath.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define FAST_WAYS 8
#define FAST_DOMAINS 128 /* recent domains kept per key */
#define FAST_GROUP 8     /* slots looked at per domain, in one cache line: bounded work */
#define FAST_BUCKETS 16
#define FAST_TICKS 16.0  /* a recent domain's time is kept in 1/16 s */
#define FAST_LINE_MAX (CULPRIT_KEY_MAX + 128)

/* A recent domain of a key: its hash's high half ^ the entry's salt, and when it was last
 * seen (table ticks, 0: empty).  Eight bytes, so that a domain's group is one cache line. */
struct seen_slot {
    uint32_t tag;
    uint32_t at;
};

struct fast_entry {
    enum culprit_kind kind; /* its hash (0: empty) is in its set's line */
    /* The window: FAST_BUCKETS buckets of window / FAST_BUCKETS seconds; bucket_at is the
     * index (time / width) of the newest, 0 before the first. */
    int64_t bucket_at;
    uint32_t domains[FAST_BUCKETS], mx[FAST_BUCKETS];
    uint64_t sum_domains, sum_mx; /* over the buckets */
    /* The learning period under way (0: none), its peaks, and whether the key was throttled
     * during it (then it is not learned). */
    double period_start;
    unsigned peak_domains, peak_mx;
    bool stopped;
    /* The learned level, as it was at level_at. */
    bool has_level;
    double level_domains, level_mx, level_at;
    uint32_t born; /* table tick the key took this entry: older seen slots are a former key's */
    uint32_t salt; /* tags are domain hashes ^ salt: a former key's do not match */
    size_t len;
    char key[CULPRIT_KEY_MAX + 1];
    /* Domains sent to lately, FAST_DOMAINS / FAST_GROUP groups of FAST_GROUP slots: one is
     * new again once it was not seen for a window.  Not cleared when the entry changes hands
     * (born and salt tell): a new key costs no 1 KiB memset. */
    _Alignas(64) struct seen_slot seen[FAST_DOMAINS];
};

/* A set's ways as a new key or a lookup needs them, so that neither touches the entries
 * (each in cache lines of its own): the hashes (0: empty), the last RCPT, and the rank of
 * the learned level, log2(level) + level_at / halflife, which orders the ways as their faded
 * levels do at any time (-INFINITY: no level). */
struct fast_set {
    _Alignas(64) uint64_t hash[FAST_WAYS];
    double last[FAST_WAYS];
    double rank[FAST_WAYS];
};

struct fast_table {
    struct fast_settings set;
    double width; /* a bucket's seconds */
    struct fast_entry *entries;
    struct fast_set *setv;
    size_t sets; /* power of two; entries = sets * FAST_WAYS */
    double epoch; /* time of tick 0: the first time seen, less a second */
    /* The table's own clock: the times passed in plus skew, which grows when they step back,
     * so that windows and ticks never run backwards (an NTP step, a restored VM). */
    double clock, skew;
    uint32_t generation; /* entries handed out: salts */
    double site_domains, site_mx;
    double site_at; /* when the site's usual was last worked out */
    bool site_stale;
    uint64_t learned;
    double *scratch; /* levels, for the median */
};

static void set_settings(struct fast_table *t, const struct fast_settings *s)
{
    bool new_window = t->set.window != s->window;
    double scale = t->set.window > 0 ? s->window / t->set.window : 1;
    unsigned slots = t->set.slots;

    t->set = *s;
    t->set.slots = slots;
    t->width = s->window / FAST_BUCKETS;
    if (new_window && t->entries != NULL) {
        /* The buckets' times mean something else now: start the windows again. */
        for (size_t i = 0; i < t->sets * FAST_WAYS; i++) {
            struct fast_entry *e = &t->entries[i];

            e->bucket_at = 0;
            memset(e->domains, 0, sizeof(e->domains));
            memset(e->mx, 0, sizeof(e->mx));
            e->sum_domains = e->sum_mx = 0;
            e->born = 0;
            memset(e->seen, 0, sizeof(e->seen));
            /* Levels are per window: a level of 20 per 10 s is about 60 per 30 s. */
            e->level_domains *= scale;
            e->level_mx *= scale;
            e->peak_domains = e->peak_mx = 0;
        }
    }
}

static double rank_of(const struct fast_table *t, const struct fast_entry *e)
{
    if (!e->has_level)
        return -INFINITY;
    return log2(fmax(e->level_domains, 1e-9)) +
           (t->set.halflife > 0 ? e->level_at / t->set.halflife : 0);
}

/* Entry i's key hash, 0 for an empty entry. */
static uint64_t hash_at(const struct fast_table *t, size_t i)
{
    return t->setv[i / FAST_WAYS].hash[i % FAST_WAYS];
}

static void rank_all(struct fast_table *t)
{
    for (size_t i = 0; i < t->sets * FAST_WAYS; i++)
        t->setv[i / FAST_WAYS].rank[i % FAST_WAYS] = rank_of(t, &t->entries[i]);
}

struct fast_table *fast_table_new(const struct fast_settings *s)
{
    struct fast_table *t = xcalloc(1, sizeof(*t));
    size_t n;

    t->set.slots = s->slots;
    t->sets = power_of_two_at_least((s->slots + FAST_WAYS - 1) / FAST_WAYS, 1);
    n = t->sets * FAST_WAYS;
    t->entries = aligned_alloc(64, n * sizeof(*t->entries));
    t->setv = aligned_alloc(64, t->sets * sizeof(*t->setv));
    t->scratch = xcalloc(n, sizeof(*t->scratch) * 2);
    if (t->entries == NULL || t->setv == NULL)
        abort();
    memset(t->entries, 0, n * sizeof(*t->entries));
    memset(t->setv, 0, t->sets * sizeof(*t->setv));
    for (size_t i = 0; i < n; i++)
        t->setv[i / FAST_WAYS].rank[i % FAST_WAYS] = -INFINITY;
    set_settings(t, s);
    return t;
}

void fast_table_free(struct fast_table *t)
{
    if (t == NULL)
        return;
    free(t->entries);
    free(t->setv);
    free(t->scratch);
    free(t);
}

void fast_reconfigure(struct fast_table *t, const struct fast_settings *s)
{
    set_settings(t, s);
    rank_all(t); /* the halflife is in the ranks */
    t->site_stale = true;
}

/* ------------------------------------------------------------- entries */

static size_t set_index(const struct fast_table *t, uint64_t hash)
{
    return (size_t)(hash ^ (hash >> 29)) & (t->sets - 1);
}

static double faded(const struct fast_table *t, double level, double at, double now)
{
    if (now <= at || t->set.halflife <= 0)
        return level;
    return level * exp2(-(now - at) / t->set.halflife);
}

/* The table's time for now: never before the last one, never below 1 (or NaN). */
static double clock_of(struct fast_table *t, double now)
{
    if (!(now >= 1))
        now = 1;
    if (now > 1e15)
        now = 1e15; /* far beyond any real clock: keeps the arithmetic exact enough */
    if (now + t->skew < t->clock)
        t->skew = t->clock - now;
    t->clock = now + t->skew;
    return t->clock;
}

/* Ticks run out after 2^31 / FAST_TICKS s (4 years): move the epoch up to a window ago and
 * every recent domain's time with it (older ones are stale: emptied). */
static void rebase_ticks(struct fast_table *t, double now)
{
    double new_epoch = now - t->set.window - 1;
    double shift = floor((new_epoch - t->epoch) * FAST_TICKS);
    uint32_t delta;

    if (shift <= 0)
        return;
    delta = shift >= UINT32_MAX ? UINT32_MAX : (uint32_t)shift;
    t->epoch += delta / FAST_TICKS;
    for (size_t i = 0; i < t->sets * FAST_WAYS; i++) {
        struct fast_entry *e = &t->entries[i];

        e->born = e->born > delta ? e->born - delta : 1;
        for (unsigned k = 0; k < FAST_DOMAINS; k++)
            e->seen[k].at = e->seen[k].at > delta ? e->seen[k].at - delta : 0;
    }
}

/* Table ticks: 1/FAST_TICKS s since the epoch, from 1 (0 is "never"); now from clock_of. */
static uint32_t tick_of(struct fast_table *t, double now)
{
    double v;

    if (t->epoch == 0)
        t->epoch = now - 1;
    v = (now - t->epoch) * FAST_TICKS;
    if (v >= 2147483648.0) {
        rebase_ticks(t, now);
        v = (now - t->epoch) * FAST_TICKS;
    }
    return v < 1 ? 1 : v >= UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)v + 1;
}

static struct fast_entry *find(const struct fast_table *t, enum culprit_kind kind,
                               const char *key, size_t len, uint64_t hash, size_t *index)
{
    size_t set = set_index(t, hash);
    const struct fast_set *ways = &t->setv[set];

    for (unsigned i = 0; i < FAST_WAYS; i++) {
        struct fast_entry *e;

        if (ways->hash[i] != hash)
            continue;
        e = &t->entries[set * FAST_WAYS + i];
        if (e->kind == kind && e->len == len && memcmp(e->key, key, len) == 0) {
            *index = set * FAST_WAYS + i;
            return e;
        }
    }
    return NULL;
}

/* The key's entry, taking the least worth way of its set for a new key: no level before a
 * level, a lower level before a higher one, then the longest idle. */
static struct fast_entry *find_or_add(struct fast_table *t, enum culprit_kind kind,
                                      const char *key, size_t len, uint64_t hash, double now,
                                      size_t *index)
{
    struct fast_entry *victim;
    struct fast_set *ways;
    size_t set;
    unsigned way = 0;

    if (len > CULPRIT_KEY_MAX)
        len = CULPRIT_KEY_MAX; /* as the culprit tables keep it (and culprit_key_hash hashes) */
    hash = hash ? hash : 1;
    victim = find(t, kind, key, len, hash, index);
    if (victim != NULL)
        return victim;
    set = set_index(t, hash);
    ways = &t->setv[set];
    for (unsigned i = 0; i < FAST_WAYS; i++) {
        if (ways->hash[i] == 0) {
            way = i;
            break;
        }
        if (ways->rank[i] < ways->rank[way] ||
            (ways->rank[i] == ways->rank[way] && ways->last[i] < ways->last[way]))
            way = i;
    }
    *index = set * FAST_WAYS + way;
    victim = &t->entries[*index];
    if (victim->has_level)
        t->site_stale = true;
    memset(victim, 0, offsetof(struct fast_entry, seen));
    victim->born = tick_of(t, now);
    victim->salt = (uint32_t)(((hash ^ ++t->generation) * 0x9E3779B97F4A7C15ull) >> 32);
    victim->kind = kind;
    victim->len = len;
    memcpy(victim->key, key, len);
    victim->key[len] = '\0';
    ways->hash[way] = hash;
    ways->last[way] = now;
    ways->rank[way] = -INFINITY;
    return victim;
}

/* Move e's window to now (old buckets emptied); returns the newest bucket's index. */
static int64_t advance(const struct fast_table *t, struct fast_entry *e, double now)
{
    int64_t b = (int64_t)floor(now / t->width);

    if (b == e->bucket_at) {
        /* the common case: nothing leaves the window */
    } else if (e->bucket_at == 0 || b - e->bucket_at >= FAST_BUCKETS) {
        memset(e->domains, 0, sizeof(e->domains));
        memset(e->mx, 0, sizeof(e->mx));
        e->sum_domains = e->sum_mx = 0;
    } else {
        for (int64_t i = e->bucket_at + 1; i <= b; i++) {
            e->sum_domains -= e->domains[i % FAST_BUCKETS];
            e->sum_mx -= e->mx[i % FAST_BUCKETS];
            e->domains[i % FAST_BUCKETS] = 0;
            e->mx[i % FAST_BUCKETS] = 0;
        }
    }
    if (b > e->bucket_at)
        e->bucket_at = b; /* a clock that steps back keeps the newest bucket */
    return e->bucket_at;
}

static unsigned clamp32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* Seconds since the oldest bucket with something in it began. */
static double window_span(const struct fast_table *t, const struct fast_entry *e, double now)
{
    for (unsigned k = FAST_BUCKETS; k-- > 0;) {
        int64_t idx = e->bucket_at - (int64_t)k;
        unsigned slot = (unsigned)(((idx % FAST_BUCKETS) + FAST_BUCKETS) % FAST_BUCKETS);

        if (e->domains[slot] || e->mx[slot])
            return fmax(0, now - (double)idx * t->width);
    }
    return 0;
}

/*
 * Whether domain_hash is new for e (not seen within a window); notes it.  The FAST_GROUP
 * slots of the hash's group: the domain's, else an empty or stale one, else the oldest of
 * them (a key sending to more than FAST_DOMAINS domains a window may see a few counted
 * twice).
 */
static bool new_domain(struct fast_table *t, struct fast_entry *e, uint64_t domain_hash,
                       double now)
{
    struct seen_slot *group =
        &e->seen[(domain_hash & (FAST_DOMAINS / FAST_GROUP - 1)) * FAST_GROUP];
    uint32_t tag = (uint32_t)(domain_hash >> 32) ^ e->salt;
    uint32_t tnow = tick_of(t, now);
    double back = t->set.window * FAST_TICKS;
    uint32_t fresh_after = back >= tnow ? 0 : tnow - (uint32_t)back;
    unsigned take = 0;
    uint32_t take_at = UINT32_MAX;

    for (unsigned k = 0; k < FAST_GROUP; k++) {
        /* A former key's slot is as good as empty. */
        uint32_t at = group[k].at >= e->born ? group[k].at : 0;

        if (at != 0 && group[k].tag == tag) {
            group[k].at = tnow;
            return at <= fresh_after;
        }
        if (at < take_at) {
            take = k; /* empty and stale slots are the oldest */
            take_at = at;
        }
    }
    group[take].tag = tag;
    group[take].at = tnow;
    return true;
}

static unsigned limit_of(double floor_value, double factor, double usual)
{
    double l = ceil(factor * usual);

    if (l < floor_value)
        l = floor_value;
    return l > 4e9 ? 4000000000u : (unsigned)l;
}

static void judge(const struct fast_table *t, const struct fast_entry *e, double now,
                  struct fast_verdict *out)
{
    out->domains = clamp32(e->sum_domains);
    out->mx = clamp32(e->sum_mx);
    out->history = e->has_level;
    /* Under the floors nothing can be over (every limit is at least its floor): the usual
     * case costs no more. */
    if (out->domains <= t->set.min_domains && out->mx <= t->set.min_mx) {
        out->over = false;
        out->span = 0;
        out->limit_domains = t->set.min_domains;
        out->limit_mx = t->set.min_mx;
        out->usual_domains = out->usual_mx = 0;
        return;
    }
    out->span = window_span(t, e, now);
    if (e->has_level) {
        out->usual_domains = faded(t, e->level_domains, e->level_at, now);
        out->usual_mx = faded(t, e->level_mx, e->level_at, now);
    } else {
        out->usual_domains = t->site_domains;
        out->usual_mx = t->site_mx;
    }
    out->limit_domains = limit_of(t->set.min_domains, t->set.factor, out->usual_domains);
    out->limit_mx = limit_of(t->set.min_mx, t->set.factor, out->usual_mx);
    out->over = out->domains > out->limit_domains || out->mx > out->limit_mx;
}

static void note_peaks(struct fast_entry *e, double now)
{
    if (e->period_start == 0)
        e->period_start = now > 0 ? now : 1e-9;
    if (e->sum_domains > e->peak_domains)
        e->peak_domains = clamp32(e->sum_domains);
    if (e->sum_mx > e->peak_mx)
        e->peak_mx = clamp32(e->sum_mx);
}

void fast_note_rcpt(struct fast_table *t, enum culprit_kind kind, const char *key, size_t len,
                    uint64_t hash, uint64_t domain_hash, double now, struct fast_verdict *out)
{
    size_t index;
    struct fast_entry *e;
    int64_t b;

    now = clock_of(t, now);
    e = find_or_add(t, kind, key, len, hash, now, &index);
    b = advance(t, e, now);

    t->setv[index / FAST_WAYS].last[index % FAST_WAYS] = now;
    if (domain_hash != 0 && new_domain(t, e, domain_hash, now)) {
        e->domains[b % FAST_BUCKETS]++;
        e->sum_domains++;
    }
    note_peaks(e, now);
    judge(t, e, now, out);
    out->entry = index;
}

void fast_note_mx(struct fast_table *t, uint64_t hash, uint32_t n, double now)
{
    size_t set;
    int64_t b;

    now = clock_of(t, now);
    hash = hash ? hash : 1;
    set = set_index(t, hash);
    for (unsigned i = 0; i < FAST_WAYS; i++) {
        struct fast_entry *e = &t->entries[set * FAST_WAYS + i];

        if (t->setv[set].hash[i] != hash)
            continue;
        b = advance(t, e, now);
        e->mx[b % FAST_BUCKETS] += n;
        e->sum_mx += n;
        note_peaks(e, now);
        return;
    }
}

/* ------------------------------------------------------------ learning */

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), compare_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void site_usual(struct fast_table *t, double now)
{
    size_t n = 0, total = t->sets * FAST_WAYS;
    double *dom = t->scratch, *mx = t->scratch + total;

    for (size_t i = 0; i < total; i++) {
        const struct fast_entry *e = &t->entries[i];

        if (hash_at(t, i) == 0 || !e->has_level)
            continue;
        dom[n] = faded(t, e->level_domains, e->level_at, now);
        mx[n++] = faded(t, e->level_mx, e->level_at, now);
    }
    /* With few keys the median says little (one list server would be "the site"). */
    t->site_domains = n >= t->set.site_min_keys ? median(dom, n) : 0;
    t->site_mx = n >= t->set.site_min_keys ? median(mx, n) : 0;
    t->site_at = now;
    t->site_stale = false;
}

static void learn(struct fast_table *t, double now, double period, fast_stopped_fn *stopped,
                  void *ctx)
{
    for (size_t i = 0; i < t->sets * FAST_WAYS; i++) {
        struct fast_entry *e = &t->entries[i];

        if (hash_at(t, i) == 0 || e->period_start == 0 || now - e->period_start < period)
            continue;
        /* A throttled key's period says what a relay does, not what the key usually does:
         * throttled at any time during it (marked), or still now. */
        if (!e->stopped && (stopped == NULL || !stopped(ctx, e->kind, e->key, hash_at(t, i)))) {
            double d = faded(t, e->level_domains, e->level_at, now);
            double m = faded(t, e->level_mx, e->level_at, now);

            e->level_domains = fmax(d, (double)e->peak_domains);
            e->level_mx = fmax(m, (double)e->peak_mx);
            e->level_at = now;
            e->has_level = true;
            t->setv[i / FAST_WAYS].rank[i % FAST_WAYS] = rank_of(t, e);
            t->learned++;
            t->site_stale = true;
        }
        e->period_start = 0;
        e->peak_domains = e->peak_mx = 0;
        e->stopped = false;
    }
    if (t->site_stale || now - t->site_at >= t->set.learn_period)
        site_usual(t, now);
}

void fast_tick(struct fast_table *t, double now, fast_stopped_fn *stopped, void *ctx)
{
    learn(t, clock_of(t, now), t->set.learn_period, stopped, ctx);
}

void fast_learn_now(struct fast_table *t, double now, fast_stopped_fn *stopped, void *ctx)
{
    learn(t, clock_of(t, now), 0, stopped, ctx);
}

void fast_entry_stopped(struct fast_table *t, size_t entry)
{
    if (entry < t->sets * FAST_WAYS)
        t->entries[entry].stopped = true;
}

void fast_mark_stopped(struct fast_table *t, enum culprit_kind kind, const char *key, size_t len,
                       uint64_t hash)
{
    size_t index;
    struct fast_entry *e;

    if (len > CULPRIT_KEY_MAX)
        len = CULPRIT_KEY_MAX;
    e = find(t, kind, key, len, hash ? hash : 1, &index);
    if (e != NULL)
        e->stopped = true;
}

void fast_get_stats(const struct fast_table *t, struct fast_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < t->sets * FAST_WAYS; i++) {
        if (hash_at(t, i) == 0)
            continue;
        out->keys++;
        out->keys_with_history += t->entries[i].has_level;
    }
    out->site_domains = t->site_domains;
    out->site_mx = t->site_mx;
    out->learned = t->learned;
}

/* ------------------------------------------------------------ save/load */

struct ranked {
    const struct fast_entry *e;
    double domains, mx;
};

static int compare_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;

    if (x->domains != y->domains)
        return x->domains < y->domains ? 1 : -1;
    return x->mx < y->mx ? 1 : x->mx > y->mx ? -1 : 0;
}

size_t fast_save(const struct fast_table *t, double now, char *out, size_t outlen)
{
    size_t total = t->sets * FAST_WAYS, n = 0, len = 0;
    struct ranked *r;

    if (outlen == 0)
        return 0;
    out[0] = '\0';
    /* The table's clock (const: as clock_of would give it, without moving it). */
    now = fmin(fmax(now, 1), 1e15) + t->skew;
    if (now < t->clock)
        now = t->clock;
    r = xcalloc(total ? total : 1, sizeof(*r));
    for (size_t i = 0; i < total; i++) {
        const struct fast_entry *e = &t->entries[i];

        if (hash_at(t, i) == 0 || !e->has_level)
            continue;
        r[n].e = e;
        r[n].domains = faded(t, e->level_domains, e->level_at, now);
        r[n++].mx = faded(t, e->level_mx, e->level_at, now);
    }
    qsort(r, n, sizeof(*r), compare_ranked);
    for (size_t i = 0; i < n; i++) {
        char line[FAST_LINE_MAX];
        int w = snprintf(line, sizeof(line), "fast %.6g %.6g %.3f %s:%s\n", r[i].domains,
                         r[i].mx, now, culprit_kind_name(r[i].e->kind), r[i].e->key);

        if (w < 0 || (size_t)w >= sizeof(line) || len + (size_t)w >= outlen)
            continue; /* whole lines only */
        memcpy(out + len, line, (size_t)w + 1);
        len += (size_t)w;
    }
    free(r);
    return len;
}

static bool parse_kind(const char *s, size_t n, enum culprit_kind *kind)
{
    static const enum culprit_kind kinds[] = {CULPRIT_SASL_USERNAME, CULPRIT_CLIENT_ADDRESS,
                                              CULPRIT_SENDER_DOMAIN};

    for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const char *name = culprit_kind_name(kinds[i]);

        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            *kind = kinds[i];
            return true;
        }
    }
    return false;
}

unsigned fast_load(struct fast_table *t, const char *text, size_t len, double now)
{
    const char *p = text, *end = text + len;
    unsigned taken = 0;

    now = clock_of(t, now);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t linelen = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[FAST_LINE_MAX];
        double dom, mx, at;
        int used = 0;

        if (linelen > 5 && linelen < sizeof(line) && memcmp(p, "fast ", 5) == 0 &&
            memchr(p, '\0', linelen) == NULL) {
            memcpy(line, p, linelen);
            line[linelen] = '\0';
            if (sscanf(line, "fast %lf %lf %lf %n", &dom, &mx, &at, &used) == 3 && used > 0 &&
                isfinite(dom) && isfinite(mx) && isfinite(at) && dom >= 0 && mx >= 0 &&
                dom <= 1e9 && mx <= 1e9 && at >= 0) {
                const char *member = line + used, *colon = strchr(member, ':');
                enum culprit_kind kind;
                size_t klen = colon ? strlen(colon + 1) : 0;

                if (colon != NULL && klen > 0 && klen <= CULPRIT_KEY_MAX &&
                    parse_kind(member, (size_t)(colon - member), &kind)) {
                    const char *key = colon + 1;
                    size_t index;
                    struct fast_entry *e = find_or_add(
                        t, kind, key, klen, culprit_key_hash(kind, key, klen), now, &index);
                    double d = faded(t, dom, at, now), m = faded(t, mx, at, now);

                    if (e->has_level) {
                        d = fmax(d, faded(t, e->level_domains, e->level_at, now));
                        m = fmax(m, faded(t, e->level_mx, e->level_at, now));
                    }
                    e->level_domains = d;
                    e->level_mx = m;
                    e->level_at = now;
                    e->has_level = true;
                    t->setv[index / FAST_WAYS].rank[index % FAST_WAYS] = rank_of(t, e);
                    t->setv[index / FAST_WAYS].last[index % FAST_WAYS] = now;
                    taken++;
                }
            }
        }
        p += linelen + (nl != NULL);
    }
    if (taken > 0)
        site_usual(t, now);
    return taken;
}
