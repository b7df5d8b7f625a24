/*
 * signal_history: the detector's signals and baselines over the last hour, one sample a
 * minute, for the status page's charts (GET /).
 *
 * Contract: a fixed ring of SIGNAL_HISTORY_MINUTES samples inside the struct (the caller
 * embeds it; nothing is allocated).  signal_history_note is called at every detector tick
 * (about once a second) and keeps a sample only when the minute of the counting clock
 * (floor(now / 60)) differs from the last one kept, so the first tick keeps one at once and
 * then one each minute; the rest cost a comparison.  Each sample is the detector's view as it
 * stood then: every signal's value over the detection window (negative: not judged) and the
 * baseline in use, and whether the host was loud.  No I/O, no allocation.
 */
#ifndef RELAYWATCH_SIGNAL_HISTORY_H
#define RELAYWATCH_SIGNAL_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "detector.h"

#define SIGNAL_HISTORY_MINUTES 60

struct signal_minute {
    double at; /* counting clock when taken */
    double value[DS_COUNT];    /* as detector_view.value: negative when not judged */
    double baseline[DS_COUNT];
    bool loud;
};

struct signal_history {
    struct signal_minute ring[SIGNAL_HISTORY_MINUTES];
    unsigned count; /* samples kept, up to SIGNAL_HISTORY_MINUTES */
    unsigned next;  /* where the next one goes */
    int64_t minute; /* floor(at / 60) of the last one kept; meaningless while count is 0 */
};

void signal_history_init(struct signal_history *h);

/* Keep v as the sample of now's minute unless that minute already has one. */
void signal_history_note(struct signal_history *h, double now, const struct detector_view *v);

/* The i-th sample kept, oldest first (i < count). */
const struct signal_minute *signal_history_at(const struct signal_history *h, unsigned i);

#endif
