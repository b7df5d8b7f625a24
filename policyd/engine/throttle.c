/*
 * throttle: the table of throttled keys.  See the header.
 *
 * Records live in a fixed array; an open-addressing index (linear
 * probing, backward-shift deletion) maps (kind, key) to a record, found by
 * the key's keyed hash and told apart by the key itself.  Keys
 * dropped from the table wait in a bounded list until the store has
 * deleted them from rw:throttle.
 */
#include "throttle.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define PENDING_DELETES 256

struct slot {
    struct throttle_record r;
    uint64_t hash;
    size_t len; /* of r.key */
    bool used;
    bool dirty;   /* to be written to the store */
    bool written; /* the store has had it: missing from a full read means deleted there */
    bool seen;    /* in the current sync */
};

struct throttle_table {
    unsigned capacity, count, next_free;
    struct slot *slot;
    uint32_t *index; /* slot number + 1; 0 empty */
    size_t mask;
    struct throttle_record *deleted; /* kind and key of records to delete from the store */
    unsigned deleted_count;
};

struct throttle_table *throttle_table_new(unsigned capacity)
{
    struct throttle_table *t = xcalloc(1, sizeof(*t));
    size_t isize;

    if (capacity < 1)
        capacity = 1;
    isize = power_of_two_at_least((size_t)capacity * 2, 4); /* the index at most half full */
    t->capacity = capacity;
    t->slot = xcalloc(capacity, sizeof(*t->slot));
    t->index = xcalloc(isize, sizeof(*t->index));
    t->deleted = xcalloc(PENDING_DELETES, sizeof(*t->deleted));
    t->mask = isize - 1;
    return t;
}

void throttle_table_free(struct throttle_table *t)
{
    if (t == NULL)
        return;
    free(t->slot);
    free(t->index);
    free(t->deleted);
    free(t);
}

unsigned throttle_count(const struct throttle_table *t)
{
    return t->count;
}

static uint64_t record_hash(const struct throttle_record *r)
{
    return culprit_key_hash(r->kind, r->key, strlen(r->key));
}

/* The index position of (kind, key), or of the empty place where it would go.  The key
 * decides, not its hash: two keys of one hash are two records. */
static size_t index_find(const struct throttle_table *t, enum culprit_kind kind, const char *key,
                         size_t len, uint64_t hash)
{
    size_t i = (size_t)hash & t->mask;

    while (t->index[i] != 0) {
        const struct slot *s = &t->slot[t->index[i] - 1];

        if (s->hash == hash && s->r.kind == kind && s->len == len &&
            memcmp(s->r.key, key, len) == 0)
            return i;
        i = (i + 1) & t->mask;
    }
    return i;
}

struct throttle_record *throttle_find(const struct throttle_table *t, enum culprit_kind kind,
                                      const char *key, size_t len, uint64_t hash)
{
    size_t i;

    if (t->count == 0)
        return NULL;
    if (len > CULPRIT_KEY_MAX)
        len = CULPRIT_KEY_MAX; /* as records keep keys */
    i = index_find(t, kind, key, len, hash);
    return t->index[i] ? &t->slot[t->index[i] - 1].r : NULL;
}

void throttle_changed(struct throttle_table *t, struct throttle_record *r)
{
    /* r is the first member of its slot. */
    struct slot *s = (struct slot *)(void *)r;

    (void)t;
    s->dirty = true;
}

static void index_remove(struct throttle_table *t, size_t i)
{
    size_t j = i;

    t->index[i] = 0;
    for (;;) {
        size_t home;

        j = (j + 1) & t->mask;
        if (t->index[j] == 0)
            return;
        home = (size_t)t->slot[t->index[j] - 1].hash & t->mask;
        /* Move j back to the hole unless its home lies cyclically in (i, j]. */
        if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
            t->index[i] = t->index[j];
            t->index[j] = 0;
            i = j;
        }
    }
}

/* Take a record out; if the store had it, remember to delete it there. */
static void drop(struct throttle_table *t, size_t i)
{
    struct slot *s = &t->slot[t->index[i] - 1];

    if (s->written && t->deleted_count < PENDING_DELETES)
        t->deleted[t->deleted_count++] = s->r;
    index_remove(t, i);
    s->used = false;
    t->count--;
}

bool throttle_put(struct throttle_table *t, const struct throttle_record *r, bool dirty)
{
    uint64_t hash = record_hash(r);
    size_t len = strlen(r->key);
    size_t i = index_find(t, r->kind, r->key, len, hash);
    struct slot *s;

    if (t->index[i] != 0) {
        s = &t->slot[t->index[i] - 1];
        if (r->changed < s->r.changed)
            return false;
    } else {
        unsigned n;

        if (t->count == t->capacity)
            return false;
        /* Round-robin from the last slot taken: no scan from 0 per insert. */
        for (n = t->next_free; t->slot[n].used; n = n + 1 == t->capacity ? 0 : n + 1)
            ;
        t->next_free = n + 1 == t->capacity ? 0 : n + 1;
        s = &t->slot[n];
        memset(s, 0, sizeof(*s));
        s->used = true;
        s->hash = hash;
        s->len = len;
        t->index[i] = n + 1;
        t->count++;
    }
    {
        uint64_t hits = s->r.hits;
        double last_logged = s->r.last_logged;

        s->r = *r;
        s->r.hits = hits; /* ours, not the record's */
        s->r.last_logged = last_logged;
    }
    s->dirty = dirty;
    s->seen = true;
    /* Back before its delete went out: the delete is moot. */
    for (unsigned k = 0; k < t->deleted_count; k++)
        if (t->deleted[k].kind == r->kind && strcmp(t->deleted[k].key, r->key) == 0)
            t->deleted[k--] = t->deleted[--t->deleted_count];
    return true;
}

unsigned throttle_expire(struct throttle_table *t, double now)
{
    unsigned dropped = 0;

    for (size_t i = 0; i <= t->mask; i++) {
        const struct slot *s;

        if (t->index[i] == 0)
            continue;
        s = &t->slot[t->index[i] - 1];
        if (s->r.until != 0 && s->r.until <= now) {
            drop(t, i);
            dropped++;
            i--; /* a record may have shifted into i */
        }
    }
    return dropped;
}

void throttle_each(const struct throttle_table *t,
                   bool (*fn)(void *ctx, const struct throttle_record *r), void *ctx)
{
    for (unsigned n = 0; n < t->capacity; n++)
        if (t->slot[n].used && !fn(ctx, &t->slot[n].r))
            return;
}

void throttle_collect(struct throttle_table *t,
                      void (*fn)(void *ctx, bool set, const struct throttle_record *r), void *ctx)
{
    for (unsigned n = 0; n < t->capacity; n++) {
        struct slot *s = &t->slot[n];

        if (s->used && s->dirty && !s->r.local) {
            fn(ctx, true, &s->r);
            s->dirty = false;
            s->written = true;
        }
    }
    for (unsigned n = 0; n < t->deleted_count; n++)
        fn(ctx, false, &t->deleted[n]);
    t->deleted_count = 0;
}

void throttle_rewrite_all(struct throttle_table *t)
{
    for (unsigned n = 0; n < t->capacity; n++)
        if (t->slot[n].used)
            t->slot[n].dirty = true;
}

void throttle_sync_begin(struct throttle_table *t)
{
    for (unsigned n = 0; n < t->capacity; n++)
        t->slot[n].seen = false;
}

void throttle_sync_record(struct throttle_table *t, const struct throttle_record *r)
{
    uint64_t hash = record_hash(r);
    size_t len = strlen(r->key);
    size_t i = index_find(t, r->kind, r->key, len, hash);

    if (t->index[i] != 0) {
        struct slot *s = &t->slot[t->index[i] - 1];

        s->seen = true;
        s->written = true;
        /* Ours is newer: it goes out at the next write.  (Records are made with times in
         * whole milliseconds, as the store keeps them, so a copy of ours reads equal.) */
        if (r->changed < s->r.changed && !s->r.local)
            s->dirty = true;
        if (r->changed <= s->r.changed)
            return;
        throttle_put(t, r, false);
        return;
    }
    if (throttle_put(t, r, false)) {
        struct slot *s = &t->slot[t->index[index_find(t, r->kind, r->key, len, hash)] - 1];

        s->written = true;
    }
}

unsigned throttle_sync_end(struct throttle_table *t)
{
    unsigned dropped = 0;

    for (size_t i = 0; i <= t->mask; i++) {
        struct slot *s;

        if (t->index[i] == 0)
            continue;
        s = &t->slot[t->index[i] - 1];
        /* Written before and not there now: someone deleted it (not dirty: not changed
         * since either). */
        if (!s->seen && s->written && !s->dirty) {
            s->written = false; /* nothing to delete in the store */
            drop(t, i);
            dropped++;
            i--;
        }
    }
    return dropped;
}
