/*
 * Fuzz target for the baselines text read back from the store
 * (rw:{HOST}:baseline, detector_load): any bytes, in a buffer of exactly
 * their length.  No crash, no read past it; what was taken saves as text
 * that loads again into the same baselines (save, load, save: equal).
 * The same text's fast-path lines (fast_load): no crash, and what was
 * taken saves and loads again as the same number of keys.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detector.h"
#include "fastpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void settings(struct detector_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->window = 600;
    s->loud_after = 20;
    s->quiet_after = 600;
    s->mx_factor = s->domains_factor = 10;
    s->min_mx = s->min_domains = s->min_messages = 20;
    s->alpha_factor = 1.5;
    for (int i = 0; i < DS_COUNT; i++)
        s->start[i] = 1;
    s->hour_days = 3;
    strcpy(s->window_name, "10m");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char first[64 * 1024], second[64 * 1024];
    struct detector_settings s;
    struct detector *a, *b;
    char *copy = malloc(size ? size : 1);
    size_t n1, n2;

    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    settings(&s);
    a = detector_new(&s);
    detector_load(a, copy, size);
    n1 = detector_save(a, first, sizeof(first));
    b = detector_new(&s);
    detector_load(b, first, n1 < sizeof(first) ? n1 : sizeof(first) - 1);
    n2 = detector_save(b, second, sizeof(second));
    if (n1 < sizeof(first) && (n1 != n2 || memcmp(first, second, n1) != 0))
        abort();
    detector_free(a);
    detector_free(b);
    {
        static const struct fast_settings fs = {10, 50, 50, 4, 604800, 64, FAST_LEARN_PERIOD,
                                                 FAST_SITE_MIN_KEYS};
        struct fast_table *f = fast_table_new(&fs), *g = fast_table_new(&fs);
        unsigned taken = fast_load(f, copy, size, 1700000000.0);
        size_t n = fast_save(f, 1700000000.0, first, sizeof(first));
        struct fast_stats st;

        fast_get_stats(f, &st);
        if (taken > 0 && st.keys_with_history == 0)
            abort();
        if (fast_load(g, first, n, 1700000000.0) != st.keys_with_history)
            abort();
        fast_table_free(f);
        fast_table_free(g);
    }
    free(copy);
    return 0;
}
