/*
 * name_set: a sorted array of (hash, name); see the header.
 */
#include "name_set.h"

#include <stdlib.h>
#include <string.h>

#include "window_counter.h"
#include "xalloc.h"

struct member {
    uint64_t hash;
    char *name;
    size_t len;
};

struct name_set {
    size_t count;
    int fold;
    struct member *m;
};

static int by_hash(const void *a, const void *b)
{
    uint64_t x = ((const struct member *)a)->hash, y = ((const struct member *)b)->hash;

    return x < y ? -1 : x > y;
}

struct name_set *name_set_new(char *const *names, size_t n, int fold_case)
{
    struct name_set *s = xcalloc(1, sizeof(*s));

    s->count = n;
    s->fold = fold_case;
    s->m = xcalloc(n ? n : 1, sizeof(*s->m));
    for (size_t i = 0; i < n; i++) {
        s->m[i].name = xstrdup(names[i]);
        s->m[i].len = strlen(names[i]);
        s->m[i].hash = hash64(names[i], s->m[i].len, fold_case);
    }
    qsort(s->m, n, sizeof(*s->m), by_hash);
    return s;
}

void name_set_free(struct name_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++)
        free(s->m[i].name);
    free(s->m);
    free(s);
}

size_t name_set_count(const struct name_set *s)
{
    return s ? s->count : 0;
}

static bool same(const char *a, const char *b, size_t len, int fold)
{
    if (!fold)
        return memcmp(a, b, len) == 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

        x = x >= 'A' && x <= 'Z' ? (unsigned char)(x + 32) : x;
        y = y >= 'A' && y <= 'Z' ? (unsigned char)(y + 32) : y;
        if (x != y)
            return false;
    }
    return true;
}

bool name_set_has_hashed(const struct name_set *s, uint64_t hash, const char *name, size_t len)
{
    size_t lo = 0, hi = s ? s->count : 0;

    /* The first member whose hash is not below hash, then every member of that hash. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->m[mid].hash < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; s != NULL && lo < s->count && s->m[lo].hash == hash; lo++)
        if (s->m[lo].len == len && same(s->m[lo].name, name, len, s->fold))
            return true;
    return false;
}

bool name_set_has(const struct name_set *s, const char *name, size_t len)
{
    if (s == NULL || s->count == 0)
        return false;
    return name_set_has_hashed(s, hash64(name, len, s->fold), name, len);
}
