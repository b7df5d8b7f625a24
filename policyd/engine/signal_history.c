/*
 * signal_history: see the header.
 */
#include "signal_history.h"

#include <math.h>
#include <string.h>

void signal_history_init(struct signal_history *h)
{
    memset(h, 0, sizeof(*h));
}

void signal_history_note(struct signal_history *h, double now, const struct detector_view *v)
{
    int64_t minute = (int64_t)floor(now / 60.0);
    struct signal_minute *m;

    if (h->count > 0 && minute == h->minute)
        return;
    m = &h->ring[h->next];
    m->at = now;
    memcpy(m->value, v->value, sizeof(m->value));
    memcpy(m->baseline, v->baseline, sizeof(m->baseline));
    m->loud = v->state == DETECTOR_LOUD;
    h->minute = minute;
    h->next = (h->next + 1) % SIGNAL_HISTORY_MINUTES;
    if (h->count < SIGNAL_HISTORY_MINUTES)
        h->count++;
}

const struct signal_minute *signal_history_at(const struct signal_history *h, unsigned i)
{
    unsigned oldest = (h->next + SIGNAL_HISTORY_MINUTES - h->count) % SIGNAL_HISTORY_MINUTES;

    return &h->ring[(oldest + i) % SIGNAL_HISTORY_MINUTES];
}
