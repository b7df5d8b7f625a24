/*
 * detector: quiet or loud, from windowed counts.  See the header.
 *
 * Baselines are running means of clipped per-minute values: each quiet
 * minute's value counts at most 3 x baseline + the signal's minimum volume,
 * so a burst that slips into learning (before its condition held) moves a
 * baseline by little.  The mean weighs the last day (global) or the last
 * week of that hour (hourly) once that much data exists, so a site's
 * growth is followed.  Nothing is learned while loud or while the loud
 * condition is pending.
 */
#include "detector.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define HOURS 24
#define GLOBAL_SPAN 1440.0      /* minutes a global mean weighs: a day */
#define HOURLY_SPAN (7 * 60.0) /* an hour's minutes over a week */

struct baseline {
    double value;
    uint64_t n; /* minutes learned */
};

struct detector {
    struct detector_settings set;
    enum detector_state state;
    double since;
    double condition_since; /* the pending transition's condition has held since; 0: not */
    int64_t learned_minute; /* the last minute learned from */
    struct baseline global[DS_COUNT];
    struct baseline hourly[DS_COUNT][HOURS];
    struct detector_view view;
    char reason[512];
};

static const char *const signal_names[DS_COUNT] = {
    [DS_MX] = "mx",           [DS_A] = "a",
    [DS_PTR] = "ptr",         [DS_NC] = "nc",
    [DS_NF] = "nf",           [DS_RELAY_RCPT] = "relay_rcpt",
    [DS_RELAY_DOMAINS] = "relay_domains", [DS_ALPHA] = "alpha",
};

const char *detector_signal_name(enum detector_signal s)
{
    return (unsigned)s < DS_COUNT ? signal_names[s] : "?";
}

const char *detector_dns_source_name(enum detector_dns_source s)
{
    static const char *const names[DNS_SOURCES] = {"tdns", "own lookups", "relay domains"};

    return (unsigned)s < DNS_SOURCES ? names[s] : "?";
}

const char *detector_state_name(enum detector_state s)
{
    return s == DETECTOR_LOUD ? "loud" : "quiet";
}

static void reset_baselines(struct detector *d)
{
    for (int s = 0; s < DS_COUNT; s++) {
        d->global[s].value = d->set.start[s];
        d->global[s].n = 0;
        for (int h = 0; h < HOURS; h++)
            d->hourly[s][h] = d->global[s];
    }
}

struct detector *detector_new(const struct detector_settings *s)
{
    struct detector *d = xcalloc(1, sizeof(*d));

    d->set = *s;
    d->state = DETECTOR_QUIET;
    d->learned_minute = -1;
    reset_baselines(d);
    snprintf(d->reason, sizeof(d->reason), "quiet: just started, baselines from %s",
             "baseline_start");
    return d;
}

void detector_free(struct detector *d)
{
    free(d);
}

void detector_reconfigure(struct detector *d, const struct detector_settings *s)
{
    /* Cold-start values that were never learned from follow the new configuration. */
    for (int i = 0; i < DS_COUNT; i++) {
        if (d->global[i].n == 0)
            d->global[i].value = s->start[i];
        for (int h = 0; h < HOURS; h++)
            if (d->hourly[i][h].n == 0)
                d->hourly[i][h].value = s->start[i];
    }
    d->set = *s;
}

enum detector_state detector_state(const struct detector *d)
{
    return d->state;
}

const char *detector_reason(const struct detector *d)
{
    return d->reason;
}

double detector_since(const struct detector *d)
{
    return d->since;
}

/* The baseline of signal s for hour h: the hour's own once it has hour_days of data. */
static double baseline_of(const struct detector *d, int s, int h, bool *hourly)
{
    const struct baseline *hb = &d->hourly[s][(unsigned)h % HOURS];

    *hourly = d->set.hour_days > 0 && hb->n >= (uint64_t)d->set.hour_days * 60;
    return *hourly ? hb->value : d->global[s].value;
}

static void learn(struct baseline *b, double x, double clip, double span)
{
    double weight;

    if (x > clip)
        x = clip;
    b->n++;
    /* The cold-start value counts as one minute until real minutes outweigh it. */
    weight = 1.0 / ((double)b->n + 1.0 < span ? (double)b->n + 1.0 : span);
    b->value += weight * (x - b->value);
}

/* The minimum volume of a signal, the floor under its clip. */
static double signal_floor(const struct detector_settings *set, int s)
{
    switch (s) {
    case DS_MX:
    case DS_A:
    case DS_PTR:
        return (double)set->min_mx;
    case DS_RELAY_DOMAINS:
        return (double)set->min_domains;
    default:
        return (double)set->min_messages;
    }
}

static void learn_minute(struct detector *d, const double *value, int hour)
{
    for (int s = 0; s < DS_COUNT; s++) {
        bool hourly;
        double b = baseline_of(d, s, hour, &hourly);
        double clip;

        if (value[s] < 0)
            continue; /* not judged (alpha without enough messages) */
        if (s == DS_ALPHA)
            clip = b * 2 + 0.5; /* a ratio: no volume floor */
        else
            clip = 3 * b + signal_floor(&d->set, s);
        learn(&d->global[s], value[s], clip, GLOBAL_SPAN);
        learn(&d->hourly[s][(unsigned)hour % HOURS], value[s], clip, HOURLY_SPAN);
    }
}

/* How many times its baseline a value is: "x133". */
static void format_ratio(char *out, size_t len, double value, double base)
{
    if (base > 0)
        snprintf(out, len, "x%.0f", value / base);
    else
        snprintf(out, len, "x-");
}

/* The loud thresholds for baselines base, into v (the view shows them beside the signals). */
static void thresholds_of(const struct detector_settings *set, const double *base,
                          struct detector_view *v)
{
    v->mx_threshold = fmax((double)set->min_mx, set->mx_factor * base[DS_MX]);
    v->domains_threshold =
        fmax((double)set->min_domains, set->domains_factor * base[DS_RELAY_DOMAINS]);
    if (set->alpha_low > 0 || set->alpha_high > 0) {
        v->alpha_low = set->alpha_low;
        v->alpha_high = set->alpha_high;
    } else {
        v->alpha_low = base[DS_ALPHA] / set->alpha_factor;
        v->alpha_high = base[DS_ALPHA] * set->alpha_factor;
    }
}

enum detector_event detector_observe(struct detector *d, const struct detector_sample *smp)
{
    const struct detector_settings *set = &d->set;
    struct detector_view *v = &d->view;
    double value[DS_COUNT], base[DS_COUNT];
    double mx_threshold, dom_threshold, low, high;
    bool mx_burst, dom_burst, alpha_out, judged_alpha, loud_cond, quiet_cond;
    enum detector_event ev = DETECTOR_NO_CHANGE;
    int64_t minute = (int64_t)floor(smp->now / 60.0);

    /* The DNS figures: the upstream server's view and ours, whichever shows more (each
     * misses what the other asks); with neither, relay domains stand in for MX. */
    if (smp->tdns || smp->own_dns) {
        uint64_t mx = 0, a = 0, ptr = 0;

        if (smp->own_dns) {
            mx = smp->own_mx;
            a = smp->own_a;
            ptr = smp->own_ptr;
        }
        if (smp->tdns) {
            mx = smp->tdns_mx > mx ? smp->tdns_mx : mx;
            a = smp->tdns_a > a ? smp->tdns_a : a;
            ptr = smp->tdns_ptr > ptr ? smp->tdns_ptr : ptr;
        }
        value[DS_MX] = (double)mx;
        value[DS_A] = (double)a;
        value[DS_PTR] = (double)ptr;
        v->dns_source = smp->tdns ? DNS_FROM_TDNS : DNS_FROM_OWN;
    } else {
        value[DS_MX] = (double)smp->relay_domains;
        value[DS_A] = value[DS_PTR] = -1; /* unknown: neither judged nor learned */
        v->dns_source = DNS_FROM_RELAY_DOMAINS;
    }
    value[DS_NC] = (double)smp->nc;
    value[DS_NF] = (double)smp->nf;
    value[DS_RELAY_RCPT] = (double)smp->relay_rcpt;
    value[DS_RELAY_DOMAINS] = (double)smp->relay_domains;
    judged_alpha = smp->nf >= set->min_messages && smp->nf > 0;
    value[DS_ALPHA] = judged_alpha ? (double)smp->nc / (double)smp->nf : -1;

    for (int s = 0; s < DS_COUNT; s++) {
        base[s] = baseline_of(d, s, smp->hour, &v->hourly[s]);
        v->value[s] = value[s];
        v->baseline[s] = base[s];
    }
    thresholds_of(set, base, v);
    mx_threshold = v->mx_threshold;
    dom_threshold = v->domains_threshold;
    low = v->alpha_low;
    high = v->alpha_high;
    mx_burst = value[DS_MX] >= mx_threshold;
    dom_burst = value[DS_RELAY_DOMAINS] >= dom_threshold;
    alpha_out = judged_alpha && (value[DS_ALPHA] < low || value[DS_ALPHA] > high);
    /* MX alone could be a cold cache or a resolver problem; mail to many new domains or
     * alpha leaving its band says the mail itself changed. */
    loud_cond = mx_burst && (dom_burst || alpha_out);
    /* Leaving: the burst has fallen below half the thresholds that started it. */
    quiet_cond = !(value[DS_MX] >= mx_threshold / 2 &&
                   (value[DS_RELAY_DOMAINS] >= dom_threshold / 2 || alpha_out));
    v->loud_condition = loud_cond;
    v->quiet_condition = quiet_cond;
    v->missing[0] = '\0';
    if (v->dns_source == DNS_FROM_RELAY_DOMAINS)
        snprintf(v->missing, sizeof(v->missing),
                 "no DNS counts (own lookups off, tdns off or stale): MX from relay domains");
    else if (!judged_alpha)
        snprintf(v->missing, sizeof(v->missing), "alpha not judged: %llu from= lines < %llu",
                 (unsigned long long)smp->nf, (unsigned long long)set->min_messages);

    if (d->state == DETECTOR_QUIET) {
        if (!loud_cond) {
            d->condition_since = 0;
        } else if (d->condition_since == 0) {
            d->condition_since = smp->now;
        }
        if (loud_cond && smp->now - d->condition_since >= set->loud_after) {
            char r1[32], r2[32], alpha[96] = "";

            format_ratio(r1, sizeof(r1), value[DS_MX], base[DS_MX]);
            format_ratio(r2, sizeof(r2), value[DS_RELAY_DOMAINS], base[DS_RELAY_DOMAINS]);
            if (judged_alpha)
                snprintf(alpha, sizeof(alpha), ", alpha %.2f %s %.2f-%.2f", value[DS_ALPHA],
                         alpha_out ? "outside" : "within", low, high);
            snprintf(d->reason, sizeof(d->reason),
                     "loud: MX %.0f/%s vs baseline %.1f (%s), %.0f relay domains vs %.1f (%s)%s, "
                     "A %.0f, PTR %.0f, %.0f sessions, %.0f from= lines; MX from %s; held for %.0fs",
                     value[DS_MX], set->window_name, base[DS_MX], r1, value[DS_RELAY_DOMAINS],
                     base[DS_RELAY_DOMAINS], r2, alpha, fmax(value[DS_A], 0),
                     fmax(value[DS_PTR], 0), value[DS_NC], value[DS_NF],
                     detector_dns_source_name(v->dns_source), smp->now - d->condition_since);
            d->state = DETECTOR_LOUD;
            d->since = smp->now;
            d->condition_since = 0;
            ev = DETECTOR_WENT_LOUD;
        }
    } else {
        if (!quiet_cond)
            d->condition_since = 0;
        else if (d->condition_since == 0)
            d->condition_since = smp->now;
        if (quiet_cond && smp->now - d->condition_since >= set->quiet_after) {
            char why[160];

            if (value[DS_MX] < mx_threshold / 2)
                snprintf(why, sizeof(why), "MX %.0f/%s below %.0f (half the loud threshold)",
                         value[DS_MX], set->window_name, mx_threshold / 2);
            else
                snprintf(why, sizeof(why),
                         "relay domains %.0f/%s below %.0f (half the loud threshold), alpha %s",
                         value[DS_RELAY_DOMAINS], set->window_name, dom_threshold / 2,
                         judged_alpha ? "in band" : "not judged");
            snprintf(d->reason, sizeof(d->reason), "quiet: %s for %.0fs; loud for %.0fs", why,
                     smp->now - d->condition_since, smp->now - d->since);
            d->state = DETECTOR_QUIET;
            d->since = smp->now;
            d->condition_since = 0;
            ev = DETECTOR_WENT_QUIET;
        }
    }
    v->state = d->state;
    v->since = d->since;
    v->condition_since = d->condition_since;

    /* Learn once per minute, from quiet minutes with nothing pending. */
    if (minute != d->learned_minute) {
        d->learned_minute = minute;
        if (d->state == DETECTOR_QUIET && d->condition_since == 0 && ev == DETECTOR_NO_CHANGE &&
            !smp->warming_up)
            learn_minute(d, value, smp->hour);
    }
    v->samples_learned = d->global[DS_NC].n;
    return ev;
}

void detector_get_view(const struct detector *d, struct detector_view *out)
{
    *out = d->view;
    out->state = d->state;
    out->since = d->since;
    if (d->view.samples_learned == 0 && d->learned_minute < 0) {
        /* Nothing observed yet: show the cold-start baselines. */
        for (int s = 0; s < DS_COUNT; s++) {
            out->baseline[s] = d->global[s].value;
            out->value[s] = -1;
        }
        thresholds_of(&d->set, out->baseline, out);
    }
}

size_t detector_save(const struct detector *d, char *out, size_t outlen)
{
    size_t n = 0;

    for (int s = 0; s < DS_COUNT; s++) {
        if (d->global[s].n == 0)
            continue;
        if (n < outlen)
            n += (size_t)snprintf(out + n, outlen - n, "%s global %llu %.6g\n", signal_names[s],
                                  (unsigned long long)d->global[s].n, d->global[s].value);
        for (int h = 0; h < HOURS; h++)
            if (d->hourly[s][h].n > 0 && n < outlen)
                n += (size_t)snprintf(out + n, outlen - n, "%s h%02d %llu %.6g\n",
                                      signal_names[s], h,
                                      (unsigned long long)d->hourly[s][h].n,
                                      d->hourly[s][h].value);
    }
    if (n >= outlen && outlen > 0)
        out[outlen - 1] = '\0';
    return n;
}

unsigned detector_load(struct detector *d, const char *text, size_t len)
{
    unsigned taken = 0;
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t linelen = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[128], name[32], slot[16];
        unsigned long long n;
        double value;

        if (linelen < sizeof(line)) {
            memcpy(line, p, linelen);
            line[linelen] = '\0';
            if (sscanf(line, "%31s %15s %llu %lf", name, slot, &n, &value) == 4 &&
                isfinite(value) && value >= 0 && n > 0) {
                int s;

                for (s = 0; s < DS_COUNT && strcmp(name, signal_names[s]) != 0; s++)
                    ;
                if (s < DS_COUNT) {
                    struct baseline *b = NULL;

                    if (strcmp(slot, "global") == 0) {
                        b = &d->global[s];
                    } else if (slot[0] == 'h' && slot[1] >= '0' && slot[1] <= '2' &&
                               slot[2] >= '0' && slot[2] <= '9' && slot[3] == '\0') {
                        int h = (slot[1] - '0') * 10 + (slot[2] - '0');

                        if (h < HOURS)
                            b = &d->hourly[s][h];
                    }
                    if (b != NULL) {
                        b->value = value;
                        b->n = n;
                        taken++;
                    }
                }
            }
        }
        p += linelen + 1;
    }
    return taken;
}
