/*
 * defense: what RelayWatch does about relay mail.  It joins the detector
 * (quiet or loud), the culprits of a loud incident, the static limits, the
 * throttle table and the never_throttle lists, and gives each request its
 * answer.
 *
 * defense_decide is on the hot path: a few hash lookups, no allocation,
 * no I/O, and nothing at all while nothing is throttled, no limit is set
 * and the host is quiet.  defense_tick (about once a second) does the
 * rest: it samples the counts, runs the detector, picks culprits, checks
 * the limits, escalates and expires throttles, and opens and closes
 * incidents.  Log lines say why each thing was done; alerts (one at the
 * start and one at the end of an incident) are handed to the caller as
 * data (struct defense_alert), which the daemon renders.
 */
#ifndef RELAYWATCH_DEFENSE_H
#define RELAYWATCH_DEFENSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decision.h"
#include "detector.h"
#include "policy_request.h"
#include "throttle.h"

struct config;
struct traffic;
struct traffic_news;

struct defense;

/* Signals from outside the traffic counts, read by the caller at each tick. */
struct defense_inputs {
    double now;      /* counting clock (Unix seconds) */
    double wall;     /* wall clock: throttle records' times (0: the same as now) */
    int hour;        /* local hour of day */
    bool warming_up; /* the daemon started less than a detect_window ago: do not learn */
    bool own_dns;    /* the daemon makes its own lookups */
    bool tdns;       /* tdns_client is set and its counts are fresh */
    uint64_t tdns_mx, tdns_a, tdns_ptr; /* over the detection window */
    const char *missing; /* signals known to be missing, for the reasons ("" none) */
};

struct defense *defense_new(const struct config *cfg, const struct traffic *t);
void defense_free(struct defense *d);

/* Take the keys that can change while running (every defense key). */
void defense_reconfigure(struct defense *d, const struct config *cfg);

/* Whether defense_decide needs the request's culprit hashes (traffic_news.who/sender_domain). */
bool defense_wants_news(const struct defense *d);

/* The answer to one request; news is what traffic_request said of it; wall is the wall
 * clock (throttle records' times). */
void defense_decide(struct defense *d, const struct policy_request *req,
                    const struct traffic_news *news, double wall, struct decision *out);

/* MX queries sent upstream that a request of the key with hash who caused (the fast path
 * counts them); now on the wall clock, as defense_decide's. */
void defense_dns(struct defense *d, uint64_t who, uint32_t mx_upstream, double now);

/* The fast path's learned levels, saved beside the baselines and read back (fastpath.h). */
struct fast_stats;
size_t defense_fast_save(const struct defense *d, double now, char *out, size_t outlen);
unsigned defense_fast_load(struct defense *d, const char *text, size_t len, double now);
void defense_fast_stats(const struct defense *d, struct fast_stats *out);
/* Learn the fast path's periods under way now (at shutdown, before the last save). */
void defense_learn_now(struct defense *d, double wall);

/* About once a second. */
void defense_tick(struct defense *d, const struct defense_inputs *in);

/* An incident alert as it stood at the tick that raised it (its start or its end). */
#define DEFENSE_ALERT_CULPRITS 16
struct defense_alert {
    const char *event;      /* "start" or "end" */
    char host[256];         /* host_id (cut at 255 bytes) */
    double start, end;      /* counting clock; end 0: the incident is still open */
    char reason[512];       /* the detector's reason: why it started, or why it ended */
    char window[16];        /* detect_window's name, the window of the peaks */
    double peak[DS_COUNT];  /* the highest value of each signal so far */
    unsigned culprit_count;
    char culprits[DEFENSE_ALERT_CULPRITS][CULPRIT_KEY_MAX + 20]; /* "KIND:KEY", as from the wire */
    unsigned held, being_held;   /* the culprits' queued messages: on hold, being put on hold */
    uint64_t answers[AK_COUNT];  /* relay answers during the incident, by kind */
    bool monitor_only;
    uint64_t would_have[AK_COUNT]; /* monitor_only: what would have been answered */
};

/* The alert waiting to be handed to alert_command; NULL: none.  It stays valid and unchanged
 * until defense_alert_taken (a new incident's alert is dropped and counted meanwhile). */
const struct defense_alert *defense_pending_alert(const struct defense *d);
void defense_alert_taken(struct defense *d);

/* The incidents the status page shows: the open one, if any, then the last
 * DEFENSE_INCIDENTS_KEPT ended ones (a fixed ring), newest first.  The pointers stay valid
 * until the next defense_tick. */
#define DEFENSE_INCIDENTS_KEPT 5
struct defense_incident {
    double start, end;        /* counting clock; end 0: still open */
    const char *start_reason; /* the detector's reason for going loud */
    const char *end_reason;   /* and for going quiet ("" while open) */
    double peak[DS_COUNT];    /* the highest value of each signal */
    unsigned culprit_count;
    const char (*culprits)[CULPRIT_KEY_MAX + 20]; /* "KIND:KEY", as from the wire */
    uint64_t answers[AK_COUNT];    /* relay answers during it, by kind */
    uint64_t would_have[AK_COUNT]; /* monitor_only: what would have been answered */
};
/* The i-th (0: newest); false past the last. */
bool defense_incident_at(const struct defense *d, unsigned i, struct defense_incident *out);

/* Whether a request is on a never_throttle_* list. */
bool defense_request_exempt(const struct defense *d, const struct policy_request *req);

/* The quarantine's ledger, for the held counts in the alerts (NULL: none). */
struct quarantine;
void defense_set_quarantine(struct defense *d, const struct quarantine *q);

/* The throttle table, for the store's sync and the views. */
struct throttle_table *defense_throttles(struct defense *d);
const struct throttle_table *defense_throttles_const(const struct defense *d);

/* Blocks and releases by hand (relaywatch block/release through HTTP with a memory store):
 * false with the reason in err. */
bool defense_block(struct defense *d, const char *member, double duration, double now,
                   char *err, size_t errlen);
bool defense_release(struct defense *d, const char *member, double now, char *err,
                     size_t errlen);

/* The detector, for views and baselines. */
const struct detector *defense_detector(const struct defense *d);
struct detector *defense_detector_mut(struct defense *d);

/* Counters for /metrics and /status. */
struct defense_stats {
    enum detector_state state;
    uint64_t incidents;            /* incidents started */
    double incident_start;         /* 0: none open */
    uint64_t actions[AK_COUNT];    /* answers given for relay, by kind */
    uint64_t would_have[AK_COUNT]; /* monitor_only: what would have been answered */
    uint64_t throttled_total;      /* keys throttled (by detector and limits) */
    uint64_t throttle_full;        /* throttles dropped: the table was full */
    uint64_t alerts_dropped;       /* alerts not handed on (one still pending) */
    uint64_t fast_stops;           /* keys throttled by the fast path (monitor_only: would) */
};
void defense_get_stats(const struct defense *d, struct defense_stats *out);

#endif
