/*
 * detector: is this mail host relaying spam right now?  The study's
 * signature, live: MX queries far above their quiet level while the mail
 * goes to many new domains, or while alpha = N_c / N_f leaves its band.
 *
 * Pure: the caller hands it samples (counts over the detection window
 * ending now, with the time and the local hour of day) about once a
 * second; the detector keeps baselines per signal, learns them from quiet
 * minutes only (each minute's value clipped, so a burst it is meant to
 * find cannot teach it that bursts are normal), by hour of day once an
 * hour has enough days of data, and moves between quiet and loud with
 * hysteresis: the loud condition must hold for loud_after, the quiet one
 * for quiet_after.  Every transition comes with its reason in figures.
 * No I/O, no allocation after detector_new.
 */
#ifndef RELAYWATCH_DETECTOR_H
#define RELAYWATCH_DETECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The signals, each a count over the detection window (alpha is nc / nf_log). */
enum detector_signal {
    DS_MX,            /* MX queries sent upstream (see detector_sample for its sources) */
    DS_A,             /* A (and AAAA) queries sent upstream */
    DS_PTR,           /* PTR queries sent upstream */
    DS_NC,            /* SMTP sessions */
    DS_NF,            /* from= lines (nf_log) */
    DS_RELAY_RCPT,    /* relay recipients */
    DS_RELAY_DOMAINS, /* distinct relay recipient domains */
    DS_ALPHA,         /* nc / nf_log (a ratio, not a count) */
    DS_COUNT
};

/* Where the MX/A/PTR figures come from. */
enum detector_dns_source {
    DNS_FROM_TDNS,          /* the upstream server's log (relaywatch feed), fresh */
    DNS_FROM_OWN,           /* the daemon's own lookups sent upstream */
    DNS_FROM_RELAY_DOMAINS, /* neither: each new relay domain stands for one MX query */
    DNS_SOURCES
};

struct detector_sample {
    double now;   /* seconds (the counting clock; Unix time) */
    int hour;     /* local hour of day, 0-23, for the hourly baselines */
    bool warming_up; /* the counts do not cover a whole window yet: judge, but do not learn */
    /* The daemon's own queries sent upstream (valid when own_dns). */
    bool own_dns;
    uint64_t own_mx, own_a, own_ptr;
    /* The upstream server's counts for this host (valid when tdns; false when off or stale). */
    bool tdns;
    uint64_t tdns_mx, tdns_a, tdns_ptr;
    uint64_t nc, nf, relay_rcpt, relay_domains;
};

struct detector_settings {
    double window;       /* seconds the sample's counts cover (for the reasons' wording) */
    double loud_after;   /* the loud condition must hold this long */
    double quiet_after;  /* the quiet condition must hold this long */
    double mx_factor;    /* MX at least this many times its baseline */
    uint64_t min_mx;     /* and at least this many per window */
    double domains_factor;   /* relay domains at least this many times their baseline */
    uint64_t min_domains;    /* and at least this many */
    uint64_t min_messages;   /* alpha is judged only with at least this many from= lines */
    double alpha_low, alpha_high; /* a fixed band; both 0: learned (baseline / or * alpha_factor) */
    double alpha_factor;
    double start[DS_COUNT];  /* cold-start baselines per window (alpha: the ratio) */
    unsigned hour_days;      /* days of data an hour needs before its own baseline is used */
    char window_name[16];    /* "10m", for the reasons */
};

enum detector_state { DETECTOR_QUIET, DETECTOR_LOUD };

enum detector_event { DETECTOR_NO_CHANGE, DETECTOR_WENT_LOUD, DETECTOR_WENT_QUIET };

struct detector;

struct detector *detector_new(const struct detector_settings *s);
void detector_free(struct detector *d);
void detector_reconfigure(struct detector *d, const struct detector_settings *s);

/* Judge one sample.  Samples must come in time order. */
enum detector_event detector_observe(struct detector *d, const struct detector_sample *s);

enum detector_state detector_state(const struct detector *d);
const char *detector_state_name(enum detector_state s);

/* The reason of the last transition (or of the state at start), e.g.
 * "loud: MX 412/10m vs baseline 3.1 (x133), 380 relay domains vs 2.0 (x190), alpha 0.21 outside 0.35-0.70". */
const char *detector_reason(const struct detector *d);
double detector_since(const struct detector *d); /* time of the last transition; 0: none */

/* What the last sample looked like: the signals, the MX source, what was missing. */
struct detector_view {
    enum detector_state state;
    double since;
    double value[DS_COUNT];    /* the last sample (alpha: -1 when not judged) */
    double baseline[DS_COUNT]; /* the baseline in use for its hour */
    /* The loud thresholds those baselines give: MX and relay domains at or above, alpha
     * outside [alpha_low, alpha_high] (alpha judged only with min_messages). */
    double mx_threshold, domains_threshold, alpha_low, alpha_high;
    bool hourly[DS_COUNT];     /* that baseline is the hour's own */
    enum detector_dns_source dns_source;
    bool loud_condition, quiet_condition;
    double condition_since; /* when the pending condition started holding; 0: none */
    uint64_t samples_learned; /* minutes learned from */
    char missing[128];        /* signals it decided without, e.g. "tdns stale" ("" none) */
};
void detector_get_view(const struct detector *d, struct detector_view *out);

const char *detector_signal_name(enum detector_signal s); /* "mx", "a", ..., "alpha" */
const char *detector_dns_source_name(enum detector_dns_source s);

/*
 * Baselines to and from the store (rw:{HOST}:baseline): a text of
 * "SIGNAL global N VALUE" and "SIGNAL hHH N VALUE" lines.  Load ignores
 * what it does not understand and returns the number of values taken.
 */
size_t detector_save(const struct detector *d, char *out, size_t outlen);
unsigned detector_load(struct detector *d, const char *text, size_t len);

#endif
