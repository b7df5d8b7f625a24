/*
 * quarantine: recent queue IDs per key and the ones on hold.  See the header.
 */
#include "quarantine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "throttle.h"
#include "xalloc.h"

enum id_state { ID_QUEUED, ID_ASKED, ID_HELD, ID_RELEASING, ID_WOULD };

struct id_entry {
    char id[QUEUE_ID_MAX + 1];
    unsigned char state;
    unsigned char tries; /* holds asked that postsuper did not do */
    double queued;       /* when queued (END-OF-MESSAGE) */
    double at;           /* held: since when; queued after a failed try: not before */
};

struct key_entry {
    bool used;
    enum culprit_kind kind;
    uint64_t hash;
    char key[CULPRIT_KEY_MAX + 1];
    size_t len;
    struct id_entry *ids; /* a ring of cap entries, count of them from head, oldest first */
    unsigned cap, count, head;
    double last_use;
    unsigned held;
    unsigned busy; /* asked or releasing: handed to postsuper, no answer yet (never evicted) */
    unsigned released;
    double released_at;
};

struct quarantine {
    struct quarantine_settings set;
    struct key_entry *slots;
    size_t mask; /* slots - 1 (a power of two, twice the keys allowed) */
    unsigned keys;
    uint64_t sample; /* where make_room looks next */
    struct id_entry *spare; /* an evicted key's ring, for the next new key */
    unsigned spare_cap;
    uint64_t version;
    struct quarantine_stats stats;
};

struct quarantine *quarantine_new(const struct quarantine_settings *s)
{
    struct quarantine *q = xcalloc(1, sizeof(*q));
    size_t n;

    q->set = *s;
    if (q->set.slots < 1)
        q->set.slots = 1;
    if (q->set.per_key < 1)
        q->set.per_key = 1;
    /* At most half full: probes stay short. */
    n = power_of_two_at_least((size_t)q->set.slots * 2, 16);
    q->slots = xcalloc(n, sizeof(*q->slots));
    q->mask = n - 1;
    return q;
}

void quarantine_free(struct quarantine *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i <= q->mask; i++)
        free(q->slots[i].ids);
    free(q->spare);
    free(q->slots);
    free(q);
}

static struct id_entry *at(const struct key_entry *k, unsigned i)
{
    return &k->ids[(k->head + i) % k->cap];
}

/* Drop the key's oldest entry. */
static void drop_oldest(struct quarantine *q, struct key_entry *k)
{
    struct id_entry *e = at(k, 0);

    if (e->state == ID_HELD || e->state == ID_RELEASING) {
        k->held--;
        q->stats.held--;
        q->stats.forgotten_held++;
        q->version++;
    }
    if (e->state == ID_ASKED || e->state == ID_RELEASING)
        k->busy--;
    k->head = (k->head + 1) % k->cap;
    k->count--;
    q->stats.ids--;
}

/* Keep only the newest per_key entries, in a ring of cap >= count. */
static void resize(struct key_entry *k, unsigned cap)
{
    struct id_entry *ids = xcalloc(cap, sizeof(*ids));

    for (unsigned i = 0; i < k->count; i++)
        ids[i] = *at(k, i);
    free(k->ids);
    k->ids = ids;
    k->cap = cap;
    k->head = 0;
}

void quarantine_reconfigure(struct quarantine *q, const struct quarantine_settings *s)
{
    q->set.per_key = s->per_key < 1 ? 1 : s->per_key;
    q->set.lookback = s->lookback;
    for (size_t i = 0; i <= q->mask; i++) {
        struct key_entry *k = &q->slots[i];

        if (!k->used)
            continue;
        while (k->count > q->set.per_key)
            drop_oldest(q, k);
        if (k->cap > q->set.per_key)
            resize(k, q->set.per_key);
    }
}

static struct key_entry *find(const struct quarantine *q, enum culprit_kind kind,
                              const char *key, size_t len, uint64_t hash)
{
    for (size_t i = hash & q->mask;; i = (i + 1) & q->mask) {
        struct key_entry *k = &q->slots[i];

        if (!k->used)
            return NULL;
        if (k->hash == hash && k->kind == kind && k->len == len && memcmp(k->key, key, len) == 0)
            return k;
    }
}

/* Remove a key (backward-shift deletion keeps the probe chains whole). */
static void remove_key(struct quarantine *q, struct key_entry *k)
{
    size_t hole = (size_t)(k - q->slots);

    q->stats.ids -= k->count;
    q->stats.held -= k->held;
    /* Its ring serves the next new key: key churn costs no allocation. */
    if (q->spare == NULL || k->cap > q->spare_cap) {
        free(q->spare);
        q->spare = k->ids;
        q->spare_cap = k->cap;
    } else {
        free(k->ids);
    }
    memset(k, 0, sizeof(*k));
    q->keys--;
    for (size_t i = (hole + 1) & q->mask; q->slots[i].used; i = (i + 1) & q->mask) {
        size_t home = q->slots[i].hash & q->mask;

        /* Move it into the hole unless its home lies cyclically in (hole, i]. */
        if (hole <= i ? (home <= hole || home > i) : (home <= hole && home > i)) {
            q->slots[hole] = q->slots[i];
            memset(&q->slots[i], 0, sizeof(q->slots[i]));
            hole = i;
        }
    }
}

static bool evictable(const struct key_entry *k)
{
    return k->used && k->held == 0 && k->busy == 0;
}

/*
 * Room for a new key: of MAKE_ROOM_SAMPLE slots looked at, the key used least lately that
 * holds nothing and has nothing with postsuper goes (Redis's sampled LRU: bounded work per
 * new key, whatever the table size); only when none of them can go, every slot is looked at.
 */
#define MAKE_ROOM_SAMPLE 32
static bool make_room(struct quarantine *q)
{
    struct key_entry *victim = NULL;

    /* A small table is looked at whole (exact LRU). */
    for (unsigned n = 0; q->mask >= 2 * MAKE_ROOM_SAMPLE && n < MAKE_ROOM_SAMPLE; n++) {
        struct key_entry *k = &q->slots[(q->sample++ * 0x9E3779B97F4A7C15ULL >> 20) & q->mask];

        if (evictable(k) && (victim == NULL || k->last_use < victim->last_use))
            victim = k;
    }
    if (victim == NULL)
        for (size_t i = 0; i <= q->mask; i++)
            if (evictable(&q->slots[i]) &&
                (victim == NULL || q->slots[i].last_use < victim->last_use))
                victim = &q->slots[i];
    if (victim == NULL)
        return false;
    remove_key(q, victim);
    q->stats.keys_evicted++;
    return true;
}

static struct key_entry *find_or_add(struct quarantine *q, enum culprit_kind kind,
                                     const char *key, size_t len, uint64_t hash)
{
    struct key_entry *k = find(q, kind, key, len, hash);
    size_t i;

    if (k != NULL)
        return k;
    if (len > CULPRIT_KEY_MAX)
        return NULL;
    if (q->keys >= q->set.slots && !make_room(q))
        return NULL;
    for (i = hash & q->mask; q->slots[i].used; i = (i + 1) & q->mask)
        ;
    k = &q->slots[i];
    k->used = true;
    k->kind = kind;
    k->hash = hash;
    memcpy(k->key, key, len);
    k->key[len] = '\0';
    k->len = len;
    if (q->spare != NULL) {
        k->ids = q->spare;
        k->cap = q->spare_cap > q->set.per_key ? q->set.per_key : q->spare_cap;
        q->spare = NULL;
        q->spare_cap = 0;
    }
    q->keys++;
    return k;
}

/* Append an ID (the oldest goes when per_key are kept). */
static struct id_entry *push(struct quarantine *q, struct key_entry *k)
{
    struct id_entry *e;

    if (k->count >= q->set.per_key)
        drop_oldest(q, k);
    if (k->count == k->cap)
        resize(k, k->cap == 0 ? 8 : k->cap * 2 > q->set.per_key ? q->set.per_key : k->cap * 2);
    e = &k->ids[(k->head + k->count) % k->cap];
    memset(e, 0, sizeof(*e));
    k->count++;
    q->stats.ids++;
    return e;
}

static void set_held(struct quarantine *q, struct key_entry *k, struct id_entry *e, double now)
{
    e->state = ID_HELD;
    e->at = now;
    k->held++;
    q->stats.held++;
    q->stats.held_total++;
    q->version++;
}

bool quarantine_note(struct quarantine *q, enum culprit_kind kind, const char *key, size_t len,
                     uint64_t hash, const char *id, size_t idlen, double now, bool held)
{
    struct key_entry *k;
    struct id_entry *e;

    if (!queue_id_valid(id, idlen) || len == 0)
        return false;
    k = find_or_add(q, kind, key, len, hash);
    if (k == NULL)
        return false;
    k->last_use = now;
    /* The same message again (a second hook at END-OF-MESSAGE, maybe after another
     * session's): once is enough. */
    for (unsigned i = k->count, seen = 0; i > 0 && seen < 8; i--, seen++) {
        e = at(k, i - 1);
        if (strlen(e->id) == idlen && memcmp(e->id, id, idlen) == 0) {
            if (held && e->state == ID_QUEUED)
                set_held(q, k, e, now);
            return true;
        }
    }
    e = push(q, k);
    memcpy(e->id, id, idlen);
    e->id[idlen] = '\0';
    e->queued = now;
    e->state = ID_QUEUED;
    if (held)
        set_held(q, k, e, now);
    return true;
}

static bool due(const struct quarantine *q, const struct id_entry *e, double now)
{
    return e->state == ID_QUEUED && e->queued >= now - q->set.lookback && e->at <= now;
}

static void info_of(const struct quarantine *q, const struct key_entry *k, double now,
                    struct quarantine_key_info *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = k->kind;
    out->key = k->key;
    out->hash = k->hash;
    out->held = k->held;
    out->released = k->released;
    out->released_at = k->released_at;
    for (unsigned i = 0; i < k->count; i++) {
        const struct id_entry *e = at(k, i);

        switch (e->state) {
        case ID_QUEUED:
            out->queued++;
            out->due += due(q, e, now);
            break;
        case ID_ASKED:
            out->asked++;
            break;
        case ID_HELD:
        case ID_RELEASING: /* still held until postsuper says */
            break;
        case ID_WOULD:
            out->would++;
            break;
        }
        if ((e->state == ID_HELD || e->state == ID_RELEASING) &&
            (out->held_since == 0 || e->at < out->held_since))
            out->held_since = e->at;
    }
}

void quarantine_each(const struct quarantine *q, double now, bool detail,
                     bool (*fn)(void *ctx, const struct quarantine_key_info *k), void *ctx)
{
    for (size_t i = 0; i <= q->mask; i++) {
        const struct key_entry *k = &q->slots[i];
        struct quarantine_key_info info;

        if (!k->used)
            continue;
        if (detail) {
            info_of(q, k, now, &info);
        } else {
            memset(&info, 0, sizeof(info));
            info.kind = k->kind;
            info.key = k->key;
            info.hash = k->hash;
            info.held = k->held;
            info.asked = k->busy;
        }
        if (!fn(ctx, &info))
            return;
    }
}

bool quarantine_info(const struct quarantine *q, enum culprit_kind kind, const char *key,
                     size_t len, uint64_t hash, double now, struct quarantine_key_info *out)
{
    const struct key_entry *k = find(q, kind, key, len, hash);

    if (k == NULL)
        return false;
    info_of(q, k, now, out);
    return true;
}

/* Append id to a space-separated list; false when it does not fit. */
static bool append_id(char *out, size_t outlen, size_t *n, const char *id)
{
    size_t l = strlen(id);

    if (*n + (*n > 0) + l + 1 > outlen)
        return false;
    if (*n > 0)
        out[(*n)++] = ' ';
    memcpy(out + *n, id, l + 1);
    *n += l;
    return true;
}

static unsigned mark(struct quarantine *q, struct key_entry *k, enum id_state from,
                     enum id_state to, bool only_due, double now, char *out, size_t outlen)
{
    unsigned taken = 0;
    size_t n = 0;

    if (outlen > 0)
        out[0] = '\0';
    for (unsigned i = 0; i < k->count && taken < QUARANTINE_BATCH; i++) {
        struct id_entry *e = at(k, i);

        if (e->state != from || (only_due && !due(q, e, now)))
            continue;
        if (!append_id(out, outlen, &n, e->id))
            break;
        e->state = (unsigned char)to;
        if (to == ID_ASKED || to == ID_RELEASING)
            k->busy++;
        taken++;
    }
    return taken;
}

unsigned quarantine_take(struct quarantine *q, enum culprit_kind kind, const char *key,
                         size_t len, uint64_t hash, enum quarantine_op op, double now, char *out,
                         size_t outlen)
{
    struct key_entry *k = find(q, kind, key, len, hash);

    if (outlen > 0)
        out[0] = '\0';
    if (k == NULL)
        return 0;
    if (op == QUARANTINE_HOLD)
        return mark(q, k, ID_QUEUED, ID_ASKED, true, now, out, outlen);
    return mark(q, k, ID_HELD, ID_RELEASING, false, now, out, outlen);
}

unsigned quarantine_would(struct quarantine *q, enum culprit_kind kind, const char *key,
                          size_t len, uint64_t hash, double now, char *out, size_t outlen)
{
    struct key_entry *k = find(q, kind, key, len, hash);

    if (outlen > 0)
        out[0] = '\0';
    if (k == NULL)
        return 0;
    return mark(q, k, ID_QUEUED, ID_WOULD, true, now, out, outlen);
}

/* Remove the entries marked gone (state 255), keeping the order. */
static void compact(struct quarantine *q, struct key_entry *k)
{
    unsigned kept = 0;

    for (unsigned i = 0; i < k->count; i++) {
        struct id_entry *e = at(k, i);

        if (e->state == 255) {
            q->stats.ids--;
            continue;
        }
        if (kept != i)
            *at(k, kept) = *e;
        kept++;
    }
    k->count = kept;
}

unsigned quarantine_done(struct quarantine *q, enum culprit_kind kind, const char *key,
                         size_t len, uint64_t hash, enum quarantine_op op, const char *done,
                         size_t done_len, bool failed, double now)
{
    struct key_entry *k = find(q, kind, key, len, hash);
    unsigned n = 0;
    bool gone = false;

    if (k == NULL)
        return 0;
    for (unsigned i = 0; i < k->count; i++) {
        struct id_entry *e = at(k, i);

        if ((op == QUARANTINE_HOLD && e->state == ID_ASKED) ||
            (op == QUARANTINE_RELEASE && e->state == ID_RELEASING))
            k->busy--;
        if (op == QUARANTINE_HOLD && e->state == ID_ASKED) {
            if (failed) {
                e->state = ID_QUEUED;
                e->at = now + QUARANTINE_RETRY;
            } else if (queue_id_listed(done, done_len, e->id, strlen(e->id))) {
                set_held(q, k, e, now);
                n++;
            } else if (e->tries++ == 0) {
                /* Maybe still in the making (not yet a ready queue file): once more. */
                e->state = ID_QUEUED;
                e->at = now + QUARANTINE_RETRY;
            } else {
                e->state = 255; /* delivered, deleted, or never queued */
                gone = true;
            }
        } else if (op == QUARANTINE_RELEASE && e->state == ID_RELEASING) {
            if (failed) {
                e->state = ID_HELD;
                continue;
            }
            n += queue_id_listed(done, done_len, e->id, strlen(e->id));
            /* Released, or no longer on hold (deleted or released by hand): either way not
             * RelayWatch's to hold. */
            e->state = 255;
            gone = true;
            k->held--;
            q->stats.held--;
            q->version++;
        }
    }
    if (gone)
        compact(q, k);
    if (op == QUARANTINE_RELEASE && !failed) {
        k->released = n;
        k->released_at = now;
        q->stats.released_total += n;
        q->version++;
    }
    return n;
}

void quarantine_tick(struct quarantine *q, double now)
{
    for (size_t i = 0; i <= q->mask; i++) {
        struct key_entry *k = &q->slots[i];
        bool gone = false;

        if (!k->used)
            continue;
        for (unsigned j = 0; j < k->count; j++) {
            struct id_entry *e = at(k, j);

            if ((e->state == ID_QUEUED || e->state == ID_WOULD) &&
                e->queued < now - q->set.lookback) {
                e->state = 255;
                gone = true;
            } else if (e->state == ID_HELD && e->at < now - QUARANTINE_HELD_MAX_AGE) {
                /* Deleted by hand long ago, or left for good: it stops taking a key's
                 * place (forgotten_held counts it). */
                e->state = 255;
                gone = true;
                k->held--;
                q->stats.held--;
                q->stats.forgotten_held++;
                q->version++;
            }
        }
        if (gone)
            compact(q, k);
        /* A key with nothing left goes, unless a release's figure is still worth showing. */
        if (k->count == 0 && (k->released_at == 0 || k->released_at < now - q->set.lookback)) {
            remove_key(q, k);
            i--; /* the shift may have moved another key into this slot */
        }
    }
}

void quarantine_get_stats(const struct quarantine *q, struct quarantine_stats *out)
{
    *out = q->stats;
    out->keys = q->keys;
}

uint64_t quarantine_held_version(const struct quarantine *q)
{
    return q->version;
}

/* ------------------------------------------------------------ save/load */

static size_t save_key(const struct key_entry *k, char *out, size_t outlen)
{
    size_t n;
    int w = snprintf(out, outlen, "quarantine-key %u %.3f %s:%s\n", k->released, k->released_at,
                     culprit_kind_name(k->kind), k->key);

    if (w < 0 || (size_t)w >= outlen)
        return 0;
    n = (size_t)w;
    for (unsigned i = 0; i < k->count; i++) {
        const struct id_entry *e = at(k, i);
        /* Asked and not answered (a stop in between): maybe held, so kept as held; a
         * release of one that was not does no harm. */
        char state = e->state == ID_HELD || e->state == ID_RELEASING || e->state == ID_ASKED
                         ? 'h'
                     : e->state == ID_WOULD ? 'w'
                                            : 'q';

        w = snprintf(out + n, outlen - n, "quarantine-id %s %c %.3f %.3f\n", e->id, state,
                     e->queued, state == 'h' ? (e->state == ID_ASKED ? e->queued : e->at) : 0.0);
        if (w < 0 || (size_t)w >= outlen - n)
            return 0;
        n += (size_t)w;
    }
    return n;
}

size_t quarantine_save(const struct quarantine *q, char *out, size_t outlen)
{
    size_t n = 0;

    if (outlen > 0)
        out[0] = '\0';
    /* Keys holding something first: they matter after a restart (release). */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i <= q->mask; i++) {
            const struct key_entry *k = &q->slots[i];
            size_t w;

            if (!k->used || (pass == 0) != (k->held + k->busy > 0))
                continue;
            w = save_key(k, out + n, outlen - n);
            if (w == 0) {
                out[n] = '\0'; /* a key that does not fit whole is left out */
                continue;
            }
            n += w;
        }
    return n;
}

unsigned quarantine_load(struct quarantine *q, const char *text, size_t len, double now)
{
    struct key_entry *k = NULL;
    unsigned loaded = 0;

    for (size_t i = 0; i < len;) {
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t l = nl ? (size_t)(nl - line) : len - i;
        char buf[CULPRIT_KEY_MAX + 128];

        i += l + 1;
        if (l >= sizeof(buf))
            continue;
        memcpy(buf, line, l);
        buf[l] = '\0';
        if (strncmp(buf, "quarantine-key ", 15) == 0) {
            unsigned released;
            double released_at;
            int used = 0;
            enum culprit_kind kind;
            char key[CULPRIT_KEY_MAX + 1];
            const char *member;

            k = NULL;
            if (sscanf(buf, "quarantine-key %u %lf %n", &released, &released_at, &used) != 2 ||
                used == 0)
                continue;
            member = buf + used;
            if (!throttle_parse_member(member, strlen(member), &kind, key, sizeof(key)))
                continue;
            k = find_or_add(q, kind, key, strlen(key), culprit_key_hash(kind, key, strlen(key)));
            if (k != NULL) {
                k->released = released;
                k->released_at = released_at;
                k->last_use = now;
            }
        } else if (strncmp(buf, "quarantine-id ", 14) == 0 && k != NULL) {
            char id[QUEUE_ID_MAX + 2], state;
            double queued, held_at;
            struct id_entry *e;

            if (sscanf(buf, "quarantine-id %25s %c %lf %lf", id, &state, &queued, &held_at) != 4 ||
                !queue_id_valid(id, strlen(id)) || (state != 'q' && state != 'h' && state != 'w'))
                continue;
            e = push(q, k);
            memcpy(e->id, id, strlen(id) + 1);
            e->queued = queued;
            e->state = state == 'w' ? ID_WOULD : ID_QUEUED;
            if (state == 'h') {
                set_held(q, k, e, held_at);
                q->stats.held_total--; /* held by an earlier run */
            }
            loaded++;
        }
    }
    return loaded;
}
