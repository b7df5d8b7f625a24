/*
 * store_wiring: what the store writes (counts, throttles, baselines) collected from the
 * engine, and what it reads back (earlier runs' counts, baselines, other hosts' throttles)
 * handed to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "config.h"
#include "defense.h"
#include "detector.h"
#include "fastpath.h"
#include "hold_service.h"
#include "log.h"
#include "quarantine.h"
#include "resolver.h"
#include "store.h"
#include "throttle.h"

static void on_flushed(void *arg)
{
    struct daemon_state *d = arg;

    ev_break(d->loop, EVBREAK_ALL);
}

/* Every request answered: write the last counts, then leave. */
void on_drained(void *arg)
{
    struct daemon_state *d = arg;

    store_flush_final(d->store, on_flushed, d);
}

static void store_rewrite_all(void *ctx)
{
    struct daemon_state *d = ctx;

    traffic_store_rewrite_all(d->traffic);
    throttle_rewrite_all(defense_throttles(d->defense));
    d->baseline_saved_learned = UINT64_MAX; /* save again */
    d->baseline_saved_at = 0;
}

static void store_history(void *ctx, int64_t minute, const uint64_t *counts)
{
    struct daemon_state *d = ctx;

    /* Earlier runs' minutes (this run's own fields are left out by the store). */
    for (int c = 0; c < TC_COUNT && !d->history_seen; c++)
        d->history_seen = counts[c] != 0;
    traffic_add_history(d->traffic, minute, counts);
}

static void store_baseline(void *ctx, const char *text, size_t len)
{
    struct daemon_state *d = ctx;
    struct quarantine_stats qs;

    d->baseline_read = true;
    if (text != NULL) {
        log_info("baselines: %u learned values read back from the store",
                 detector_load(defense_detector_mut(d->defense), text, len));
        log_info("fast path: %u keys' usual levels read back from the store",
                 defense_fast_load(d->defense, text, len, ev_time()));
        log_info("quarantine: %u queue IDs of earlier runs read back from the store",
                 hold_service_load(d->holds, text, len, ev_time()));
        quarantine_get_stats(hold_service_ledger(d->holds), &qs);
        d->holds_saved_version = quarantine_held_version(hold_service_ledger(d->holds));
        d->holds_saved_ids = qs.ids;
    } else
        log_info("baselines: none in the store yet; starting from baseline_start");
}

static void throttle_to_store(void *ctx, bool set, const struct throttle_record *r)
{
    struct store_batch *b = ctx;
    char field[CULPRIT_KEY_MAX + 32], value[THROTTLE_ACTION_MAX + THROTTLE_REASON_MAX + 200];

    snprintf(field, sizeof(field), "%s:%s", culprit_kind_name(r->kind), r->key);
    if (set)
        throttle_record_format(r, value, sizeof(value));
    store_batch_throttle(b, field, set ? value : NULL, r->changed);
}

/* What traffic_store_collect hands on goes into the batch; the busiest keys go with the totals. */
struct traffic_to_store {
    const struct traffic *traffic;
    struct store_batch *b;
};

static void minute_to_store(void *ctx, int64_t minute, const uint64_t *counts)
{
    const struct traffic_to_store *to = ctx;

    store_batch_minute(to->b, minute, counts);
}

static void domain_to_store(void *ctx, int64_t minute, uint64_t hash)
{
    const struct traffic_to_store *to = ctx;

    store_batch_domain(to->b, minute, hash);
}

/* The run's totals, and with them the busiest keys now as "KIND:KEY" members. */
static void totals_to_store(void *ctx, const uint64_t *totals)
{
    const struct traffic_to_store *to = ctx;
    struct culprit_view v[STORE_CULPRITS];
    char text[STORE_CULPRITS][CULPRIT_KEY_MAX + 24];
    const char *members[STORE_CULPRITS];
    uint64_t scores[STORE_CULPRITS];
    unsigned n = traffic_busiest(to->traffic, v, STORE_CULPRITS);

    store_batch_totals(to->b, totals);
    for (unsigned i = 0; i < n; i++) {
        snprintf(text[i], sizeof(text[i]), "%s:%s", culprit_kind_name(v[i].kind), v[i].key);
        members[i] = text[i];
        scores[i] = v[i].recipients;
    }
    store_batch_culprits(to->b, members, scores, n);
}

static const struct traffic_changes traffic_changes_to_store = {minute_to_store, domain_to_store,
                                                                totals_to_store};

static void store_collect_all(void *ctx, struct store_batch *b)
{
    struct daemon_state *d = ctx;
    struct detector_view view;
    struct fast_stats fs;
    struct quarantine_stats qs;
    struct traffic_to_store to = {d->traffic, b};
    bool changed;
    double now = ev_time();

    detector_get_view(defense_detector(d->defense), &view);
    defense_fast_stats(d->defense, &fs);

    traffic_store_collect(d->traffic, &traffic_changes_to_store, &to);
    throttle_collect(defense_throttles(d->defense), throttle_to_store, b);
    store_batch_state(b, detector_state_name(detector_state(defense_detector(d->defense))));
    /* Saved when the detector learned something (once a minute at most), or the fast path
     * did (keys' periods end at any second: once a minute at most, and when stopping); not
     * before the stored ones were read, or this run would overwrite what earlier runs
     * learned. */
    quarantine_get_stats(hold_service_ledger(d->holds), &qs);
    /* The quarantine's held IDs soon (a release after a crash needs them: within 5 s), the
     * others once a minute at most. */
    changed = view.samples_learned != d->baseline_saved_learned ||
              (quarantine_held_version(hold_service_ledger(d->holds)) != d->holds_saved_version &&
               (d->stopping || now - d->baseline_saved_at >= 5)) ||
              ((fs.learned != d->fast_saved_learned || qs.ids != d->holds_saved_ids) &&
               (d->stopping || now - d->baseline_saved_at >= 60));
    if (d->baseline_read && changed) {
        /* The detector's baselines, then the fast path's levels (the busiest keys first, as
         * many as fit): one text, one key. */
        enum { DETECTOR_TEXT = 16384, FAST_TEXT = 256 * 1024, HOLDS_TEXT = 1024 * 1024 };
        char *text = malloc(DETECTOR_TEXT + FAST_TEXT + HOLDS_TEXT);
        size_t n;

        if (text != NULL) {
            d->baseline_saved_learned = view.samples_learned;
            d->fast_saved_learned = fs.learned;
            d->baseline_saved_at = now;
            n = detector_save(defense_detector(d->defense), text, DETECTOR_TEXT);
            if (n >= DETECTOR_TEXT)
                n = strlen(text);
            n += defense_fast_save(d->defense, now, text + n, FAST_TEXT);
            n += hold_service_save(d->holds, text + n, HOLDS_TEXT);
            d->holds_saved_version = quarantine_held_version(hold_service_ledger(d->holds));
            d->holds_saved_ids = qs.ids;
            if (n > 0)
                store_batch_baseline(b, text);
            free(text);
        }
    }
}

static void store_throttles(void *ctx, bool begin, bool end, const char *field, size_t flen,
                            const char *value, size_t vlen)
{
    struct daemon_state *d = ctx;
    struct throttle_table *t = defense_throttles(d->defense);
    struct throttle_record r;

    if (begin) {
        throttle_sync_begin(t);
    } else if (end) {
        unsigned gone = throttle_sync_end(t);

        if (gone > 0)
            log_info("throttle: %u key(s) deleted from the store by someone else: dropped", gone);
    } else if (throttle_record_parse(field, flen, value, vlen, &r)) {
        size_t len = strlen(r.key);
        const struct throttle_record *had =
            throttle_find(t, r.kind, r.key, len, culprit_key_hash(r.kind, r.key, len));

        if (had == NULL || had->changed < r.changed)
            log_info("throttle %s:%s from the store (%s by %s): %s", culprit_kind_name(r.kind),
                     r.key, throttle_source_name(r.source), r.host, r.reason);
        throttle_sync_record(t, &r);
    } else {
        log_warning("store: rw:throttle field '%.*s' has a value this version cannot read; "
                    "ignored",
                    (int)(flen < 200 ? flen : 200), field);
    }
}

_Static_assert(TC_COUNT <= STORE_MAX_COUNTERS, "the store holds every traffic counter");

/* The counters the store writes, in traffic's order (enum traffic_counter); the DNS ones,
 * "dns_<type>_<outcome>", are filled in at start. */
static char dns_counter_names[DNS_TYPES * DNS_OUTCOMES][32];
static const char *store_counter_names[TC_COUNT] = {
    [TC_SESSIONS] = "nc",
    [TC_MESSAGES] = "nf",
    [TC_MESSAGES_LOGGED] = "nf_log",
    [TC_RECIPIENTS] = "nr",
    [TC_MESSAGES_RELAY] = "nf_relay",
    [TC_MESSAGES_INBOUND] = "nf_inbound",
    [TC_RECIPIENTS_RELAY] = "nr_relay",
    [TC_RECIPIENTS_INBOUND] = "nr_inbound",
    [TC_REFUSED] = "refused",
};

struct store *open_store(struct daemon_state *d, char *err, size_t errlen)
{
    const struct config *c = d->cfg;
    struct store_settings set = {c->store,
                                 c->redis_password,
                                 c->host_id,
                                 c->store_flush_interval,
                                 c->store_timeout,
                                 c->store_retention,
                                 TC_COUNT,
                                 store_counter_names,
                                 c->window_count,
                                 c->window_seconds,
                                 c->tdns_client,
                                 c->redis_username};
    struct store_source src = {store_collect_all, store_rewrite_all, store_history,
                               store_baseline, store_throttles, d};
    struct store_state state;
    struct store *s;

    for (int t = 0; t < DNS_TYPES; t++)
        for (int o = 0; o < DNS_OUTCOMES; o++) {
            char *name = dns_counter_names[t * DNS_OUTCOMES + o];

            snprintf(name, sizeof(dns_counter_names[0]), "dns_%s_%s", dns_type_name(t),
                     dns_outcome_name(o));
            store_counter_names[TC_DNS(t, o)] = name;
        }

    s = store_new(d->loop, &set, &src, err, errlen);
    if (s == NULL)
        return NULL;
    /* A store others see gets this run's recent minutes, and again after it lost them. */
    store_get_state(s, &state);
    if (state.shared)
        traffic_store_enable(d->traffic, (unsigned)(c->store_backlog / 60.0));
    return s;
}
