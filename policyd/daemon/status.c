/*
 * status: JSON, text and Prometheus views.  See status.h and relaywatchd(8),
 * HTTP VIEWS, which documents every field and metric.  The JSON is
 * built with jansson (views.h, json_text.h): field order is the order set.
 */
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "defense.h"
#include "hold_service.h"
#include "fastpath.h"
#include "http.h"
#include "json_text.h"
#include "log.h"
#include "resolver.h"
#include "server.h"
#include "store.h"
#include "traffic.h"
#include "views.h"

#define TOP_CULPRITS 10

static const struct {
    const char *json;
    enum traffic_counter counter;
} fields[] = {
    {"nc", TC_SESSIONS},
    {"nf", TC_MESSAGES},
    {"nf_log", TC_MESSAGES_LOGGED},
    {"nr", TC_RECIPIENTS},
    {"nf_relay", TC_MESSAGES_RELAY},
    {"nf_inbound", TC_MESSAGES_INBOUND},
    {"nr_relay", TC_RECIPIENTS_RELAY},
    {"nr_inbound", TC_RECIPIENTS_INBOUND},
    {"refused", TC_REFUSED},
};

#define FIELD_COUNT (sizeof(fields) / sizeof(fields[0]))

static json_t *object(void)
{
    return json_must(json_object());
}

/* A counter (they stay far below 2^63). */
static json_t *count(uint64_t n)
{
    return json_integer((json_int_t)n);
}

/* A key fit for a terminal: control bytes and invalid UTF-8 shown as '?'. */
static void printable(char *out, size_t outlen, const char *in)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t len = strlen(in), i = 0, n = 0;

    while (i < len && n + 4 < outlen) {
        size_t seq = utf8_sequence(p + i, len - i);

        if (seq == 0 || (seq == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
            out[n++] = '?';
            i++;
        } else {
            memcpy(out + n, in + i, seq);
            n += seq;
            i += seq;
        }
    }
    out[n] = '\0';
}

/* N_c / nf_log to 4 decimals; null while nf_log is 0. */
static json_t *alpha(uint64_t nc, uint64_t nf_log)
{
    if (nf_log == 0)
        return json_null();
    return json_fixed((double)nc / (double)nf_log, 4);
}

/* Both culprit tables' busiest keys in window w, most recipients first. */
static unsigned gather_culprits(const struct traffic *t, unsigned w, double now,
                                struct culprit_view *out)
{
    unsigned n = traffic_culprits(t, false, w, now, out, TOP_CULPRITS);

    n += traffic_culprits(t, true, w, now, out + n, TOP_CULPRITS);
    /* Merge the two sorted runs by recipients, then messages. */
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && (out[j].recipients > out[j - 1].recipients ||
                                       (out[j].recipients == out[j - 1].recipients &&
                                        out[j].messages > out[j - 1].messages));
             j--) {
            struct culprit_view tmp = out[j];
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    return n;
}

static json_t *store_json(const struct store_state *st, uint64_t dropped)
{
    json_t *o = object();

    json_set_field(o, "backend", json_textz(st->backend));
    json_set_field(o, "connected", json_boolean(st->connected));
    json_set_field(o, "flushes", count(st->flushes));
    json_set_field(o, "failures", count(st->failures));
    json_set_field(o, "dropped_minutes", count(dropped));
    json_set_field(o, "dropped_domains", count(st->dropped_domains));
    json_set_field(o, "last_error", st->last_error ? json_textz(st->last_error) : json_null());
    return o;
}

/*
 * Counts indexed by traffic_counter into o: the mail fields, then "dns" (queries sent
 * upstream per type, as the name server logs them) and "dns_detail" (every outcome per type).
 */
static void counts_json(json_t *o, const uint64_t *v)
{
    json_t *dns = object(), *detail = object();

    for (size_t f = 0; f < FIELD_COUNT; f++)
        json_set_field(o, fields[f].json, count(v[fields[f].counter]));
    for (int type = 0; type < DNS_TYPES; type++)
        json_set_field(dns, dns_type_name(type), count(v[TC_DNS(type, DNS_UPSTREAM)]));
    json_set_field(o, "dns", dns);
    for (int type = 0; type < DNS_TYPES; type++) {
        json_t *outcomes = object();

        for (int oc = 0; oc < DNS_OUTCOMES; oc++)
            json_set_field(outcomes, dns_outcome_name(oc), count(v[TC_DNS(type, oc)]));
        json_set_field(detail, dns_type_name(type), outcomes);
    }
    json_set_field(o, "dns_detail", detail);
}

/* Whether the feed's counts for tdns_client are too old to trust (or were never read). */
static bool tdns_stale(const struct status_sources *s)
{
    double age = s->store->tdns_updated > 0 ? s->wall_now - s->store->tdns_updated : -1;

    return !s->store->tdns_read || age < 0 || age > s->cfg->tdns_stale_after;
}

/* The upstream DNS server's counts for this host in window w: null without tdns_client or
 * for windows longer than the store reads (an hour). */
static json_t *tdns_window_json(const struct status_sources *s, unsigned w)
{
    const struct window_set *ws = traffic_windows(s->traffic);
    const uint64_t *v = s->store->tdns[w];
    json_t *o;

    if (s->cfg->tdns_client[0] == '\0' || w >= STORE_MAX_WINDOWS ||
        ws->seconds[w] > STORE_MAX_MINUTES * 60.0)
        return json_null();
    o = object();
    json_set_field(o, "mx", count(v[TDNS_MX]));
    json_set_field(o, "a", count(v[TDNS_A]));
    json_set_field(o, "aaaa", count(v[TDNS_AAAA]));
    json_set_field(o, "ptr", count(v[TDNS_PTR]));
    json_set_field(o, "stale", json_boolean(tdns_stale(s)));
    return o;
}

/* The feed behind tdns: whose counts, how fresh. */
static json_t *tdns_json(const struct status_sources *s)
{
    json_t *o;

    if (s->cfg->tdns_client[0] == '\0')
        return json_null();
    o = object();
    json_set_field(o, "client", json_textz(s->cfg->tdns_client));
    if (s->store->tdns_updated > 0) {
        json_set_field(o, "updated", json_whole(s->store->tdns_updated));
        json_set_field(o, "age_seconds", json_whole(s->wall_now - s->store->tdns_updated));
    } else {
        json_set_field(o, "updated", json_null());
        json_set_field(o, "age_seconds", json_null());
    }
    json_set_field(o, "stale_after_seconds", json_whole(s->cfg->tdns_stale_after));
    json_set_field(o, "stale", json_boolean(tdns_stale(s)));
    return o;
}

static json_t *resolver_json(const struct resolver_stats *r)
{
    json_t *o;

    if (r == NULL)
        return json_null();
    o = object();
    json_set_field(o, "servers", json_textz(r->servers));
    json_set_field(o, "outstanding", json_integer(r->outstanding));
    json_set_field(o, "outstanding_peak", json_integer(r->outstanding_peak));
    json_set_field(o, "max_outstanding", json_integer(r->max_outstanding));
    json_set_field(o, "waiting", json_integer(r->waiting));
    json_set_field(o, "cache_entries", json_integer(r->cache_entries));
    json_set_field(o, "cache_size", json_integer(r->cache_size));
    json_set_field(o, "evictions", count(r->evictions));
    json_set_field(o, "invalid_names", count(r->invalid_names));
    json_set_field(o, "dropped_waiters", count(r->dropped_waiters));
    json_set_field(o, "unmatched_packets", count(r->unmatched_packets));
    return o;
}

/* The windows the store holds counts for (up to an hour, see store.h); domains NULL: none
 * (distinct domains do not add up across hosts, so the fleet has none). */
static json_t *stored_windows_json(const struct window_set *ws,
                                   const uint64_t (*window)[STORE_MAX_COUNTERS],
                                   const uint64_t *domains)
{
    json_t *windows = object();

    for (unsigned w = 0; w < ws->count; w++) {
        json_t *o;

        if (ws->seconds[w] > STORE_MAX_MINUTES * 60.0)
            continue;
        o = object();
        json_set_field(o, "seconds", json_whole(ws->seconds[w]));
        counts_json(o, window[w]);
        json_set_field(o, "alpha", alpha(window[w][TC_SESSIONS], window[w][TC_MESSAGES_LOGGED]));
        json_set_field(o, "relay_domains", domains ? count(domains[w]) : json_null());
        json_set_field(o, "tdns", json_null());
        json_set_field(windows, ws->name[w], o);
    }
    return windows;
}

/* A signal's value, null when it has none (negative) or it is not a number. */
static json_t *value_or_null(double v)
{
    return v < 0 || !isfinite(v) ? json_null() : json_sig6(v);
}

static const char *detect_window_name(const struct status_sources *s)
{
    for (unsigned w = 0; w < s->cfg->window_count; w++)
        if (s->cfg->window_seconds[w] == s->cfg->detect_window)
            return s->cfg->window_name[w];
    return "?";
}

struct text_ctx {
    struct http_body *b;
    double now;
    unsigned n;
};

static bool text_throttle(void *arg, const struct throttle_record *r)
{
    struct text_ctx *t = arg;

    if (!throttle_in_force(r, t->now))
        return true;
    if (t->n++ == 0)
        http_body_printf(t->b, "\nthrottled keys\n");
    http_body_printf(t->b, "  %s:%s  %s  (%s, %llu answers, %s%.0fs)\n    %s\n",
                     culprit_kind_name(r->kind), r->key, r->action, throttle_source_name(r->source),
                     (unsigned long long)r->hits, r->until ? "ends in " : "until released",
                     r->until ? r->until - t->now : 0, r->reason);
    return true;
}

/* {"DUNNO":n,...}: counts by answer kind. */
static json_t *by_action_json(const uint64_t *counts)
{
    json_t *o = object();

    for (int a = 0; a < AK_COUNT; a++)
        json_set_field(o, action_kind_name(a), count(counts[a]));
    return o;
}

/* One line per key holding messages (or released lately); the same keys as view_held. */
static bool held_line(void *arg, const struct quarantine_key_info *k)
{
    struct http_body *b = arg;

    if (k->held == 0 && k->asked == 0 && k->released_at == 0)
        return true;
    http_body_printf(b, "%u %u %.3f %u %.3f %s:%s\n", k->held, k->asked, k->held_since,
                     k->released, k->released_at, culprit_kind_name(k->kind), k->key);
    return true;
}

void status_held_text(struct http_body *b, const struct hold_service *holds, double wall_now)
{
    if (holds != NULL)
        quarantine_each(hold_service_ledger(holds), wall_now, true, held_line, b);
}

static void quarantine_json(json_t *host, const struct status_sources *s)
{
    struct hold_service_stats hs;
    json_t *o;

    if (s->holds == NULL)
        return;
    hold_service_get_stats(s->holds, &hs);
    o = object();
    json_set_field(o, "enabled", json_boolean(hs.enabled));
    json_set_field(o, "postsuper_runner", json_boolean(hs.runner));
    json_set_field(o, "unavailable", json_textz(hs.unavailable));
    json_set_field(o, "end_of_message_seen", json_boolean(hs.end_of_message_seen));
    json_set_field(o, "keys", json_integer(hs.q.keys));
    json_set_field(o, "queue_ids", count(hs.q.ids));
    json_set_field(o, "held", count(hs.q.held));
    json_set_field(o, "held_total", count(hs.q.held_total));
    json_set_field(o, "released_total", count(hs.q.released_total));
    json_set_field(o, "forgotten_held", count(hs.q.forgotten_held));
    json_set_field(o, "postsuper_runs", count(hs.runs));
    json_set_field(o, "postsuper_failures", count(hs.failures));
    json_set_field(o, "held_keys", view_held(hold_service_ledger(s->holds), s->wall_now));
    json_set_field(host, "quarantine", o);
}

/* The detector's view, the baselines, incidents, answers and throttled keys, into host. */
static void defense_json(json_t *host, const struct status_sources *s)
{
    const struct detector *det = defense_detector(s->defense);
    struct detector_view v;
    struct defense_stats st;
    struct fast_stats fs;
    json_t *o = object(), *signals = object(), *baselines = object(), *incidents = object();
    json_t *fast = object(), *site = object();

    detector_get_view(det, &v);
    defense_get_stats(s->defense, &st);
    json_set_field(o, "state", json_textz(detector_state_name(v.state)));
    json_set_field(o, "since", json_time(v.since));
    json_set_field(o, "reason", json_textz(detector_reason(det)));
    json_set_field(o, "window", json_textz(detect_window_name(s)));
    json_set_field(o, "dns_source", json_textz(detector_dns_source_name(v.dns_source)));
    json_set_field(o, "missing", json_textz(v.missing));
    json_set_field(o, "loud_condition", json_boolean(v.loud_condition));
    json_set_field(o, "condition_since", json_time(v.condition_since));
    json_set_field(o, "minutes_learned", count(v.samples_learned));
    for (int i = 0; i < DS_COUNT; i++) {
        json_t *sig = object();

        json_set_field(sig, "value", value_or_null(v.value[i]));
        json_set_field(sig, "baseline", json_sig6(v.baseline[i]));
        json_set_field(sig, "hourly", json_boolean(v.hourly[i]));
        json_set_field(signals, detector_signal_name(i), sig);
    }
    json_set_field(o, "signals", signals);
    json_set_field(host, "detector", o);
    for (int i = 0; i < DS_COUNT; i++)
        json_set_field(baselines, detector_signal_name(i), json_sig6(v.baseline[i]));
    json_set_field(host, "baselines", baselines);
    json_set_field(incidents, "started", count(st.incidents));
    json_set_field(incidents, "open_since", json_time(st.incident_start));
    json_set_field(host, "incidents", incidents);
    json_set_field(host, "monitor_only", json_boolean(s->cfg->monitor_only));
    json_set_field(host, "relay_answers", by_action_json(st.actions));
    json_set_field(host, "would_answer", by_action_json(st.would_have));
    defense_fast_stats(s->defense, &fs);
    json_set_field(fast, "enabled", json_boolean(s->cfg->fast_path));
    json_set_field(fast, "window_seconds", json_sig6(s->cfg->fast_window));
    json_set_field(fast, "stops", count(st.fast_stops));
    json_set_field(fast, "keys", json_integer(fs.keys));
    json_set_field(fast, "keys_with_history", json_integer(fs.keys_with_history));
    json_set_field(fast, "periods_learned", count(fs.learned));
    json_set_field(site, "domains", json_sig6(fs.site_domains));
    json_set_field(site, "mx", json_sig6(fs.site_mx));
    json_set_field(fast, "site_usual", site);
    json_set_field(host, "fast_path", fast);
    quarantine_json(host, s);
    json_set_field(host, "throttled", view_throttled(s->defense, s->wall_now));
}

/* The other hosts sharing the store, as it holds them, onto hosts. */
static void other_hosts_json(json_t *hosts, const struct status_sources *s,
                             const struct window_set *ws)
{
    const struct store_state *st = s->store;

    for (unsigned i = 0; i < st->host_count; i++) {
        const struct store_host *h = &st->hosts[i];
        json_t *o, *totals, *culprits;

        if (strcmp(h->host, s->cfg->host_id) == 0)
            continue;
        o = object();
        totals = object();
        culprits = json_must(json_array());
        json_set_field(o, "host", json_textz(h->host));
        /* A host of an older version writes no state: shown quiet, as it was then. */
        json_set_field(o, "state", json_textz(h->state[0] ? h->state : "quiet"));
        json_set_field(o, "source", json_string("store"));
        json_set_field(o, "updated", json_fixed(h->updated, 3));
        counts_json(totals, h->totals);
        json_set_field(o, "totals", totals);
        json_set_field(o, "windows",
            stored_windows_json(ws, (const uint64_t(*)[STORE_MAX_COUNTERS])h->window, h->domains));
        for (unsigned c = 0; c < h->culprit_count; c++) {
            const char *m = h->culprits[c].member, *colon = strchr(m, ':');
            json_t *culprit;

            if (colon == NULL)
                continue;
            culprit = object();
            json_set_field(culprit, "kind", json_text(m, (size_t)(colon - m)));
            json_set_field(culprit, "key", json_textz(colon + 1));
            json_set_field(culprit, "window", json_textz(ws->name[window_set_longest(ws)]));
            json_set_field(culprit, "recipients", count(h->culprits[c].recipients));
            json_add_item(culprits, culprit);
        }
        json_set_field(o, "culprits", culprits);
        json_add_item(hosts, o);
    }
}

/* Sums over every host the store holds (this one included, all its runs); null unshared. */
static json_t *fleet_json(const struct status_sources *s, const struct window_set *ws)
{
    const struct store_state *st = s->store;
    uint64_t totals[STORE_MAX_COUNTERS] = {0};
    uint64_t window[STORE_MAX_WINDOWS][STORE_MAX_COUNTERS];
    json_t *o, *totals_json;

    if (!st->shared)
        return json_null();
    memset(window, 0, sizeof(window));
    for (unsigned i = 0; i < st->host_count; i++)
        for (unsigned c = 0; c < STORE_MAX_COUNTERS; c++) {
            totals[c] += st->hosts[i].totals[c];
            for (unsigned w = 0; w < ws->count && w < STORE_MAX_WINDOWS; w++)
                window[w][c] += st->hosts[i].window[w][c];
        }
    o = object();
    totals_json = object();
    json_set_field(o, "hosts", json_integer(st->host_count));
    counts_json(totals_json, totals);
    json_set_field(o, "totals", totals_json);
    json_set_field(o, "windows", stored_windows_json(ws, (const uint64_t(*)[STORE_MAX_COUNTERS])window, NULL));
    return o;
}

void status_json(struct http_body *b, const struct status_sources *s, double now)
{
    const struct traffic *t = s->traffic;
    const struct window_set *ws = traffic_windows(t);
    unsigned longest = window_set_longest(ws);
    struct culprit_view culprits[2 * TOP_CULPRITS];
    unsigned n = gather_culprits(t, longest, now, culprits);
    json_t *top = object(), *hosts = json_must(json_array()), *host = object();
    json_t *totals = object(), *windows = object(), *culprit_list = json_must(json_array());
    json_t *connections = object();
    uint64_t v[TC_COUNT];

    json_set_field(top, "version", json_string(RELAYWATCH_VERSION));
    json_set_field(host, "host", json_textz(s->cfg->host_id));
    json_set_field(host, "state", json_textz(detector_state_name(detector_state(defense_detector(s->defense)))));
    json_set_field(host, "uptime_seconds", json_whole(now - s->started));
    json_set_field(host, "messages_counted_at",
        json_string(traffic_counts_at_end_of_message(t) ? "end-of-message" : "rcpt"));
    for (int c = 0; c < TC_COUNT; c++)
        v[c] = traffic_total(t, (enum traffic_counter)c);
    counts_json(totals, v);
    json_set_field(host, "totals", totals);
    for (unsigned w = 0; w < ws->count; w++) {
        json_t *o = object();

        for (int c = 0; c < TC_COUNT; c++)
            v[c] = traffic_window(t, (enum traffic_counter)c, w, now);
        json_set_field(o, "seconds", json_whole(ws->seconds[w]));
        counts_json(o, v);
        json_set_field(o, "alpha", alpha(v[TC_SESSIONS], v[TC_MESSAGES_LOGGED]));
        json_set_field(o, "relay_domains", count(traffic_relay_domains(t, w, now)));
        json_set_field(o, "tdns", tdns_window_json(s, w));
        json_set_field(windows, ws->name[w], o);
    }
    json_set_field(host, "windows", windows);
    for (unsigned i = 0; i < n; i++) {
        const struct culprit_view *c = &culprits[i];
        json_t *o = object();

        json_set_field(o, "kind", json_textz(culprit_kind_name(c->kind)));
        json_set_field(o, "key", json_textz(c->key));
        json_set_field(o, "window", json_textz(ws->name[longest]));
        json_set_field(o, "messages", count(c->messages));
        json_set_field(o, "recipients", count(c->recipients));
        json_set_field(o, "domains", count(c->domains));
        json_set_field(o, "dns_lookups", count(c->dns_lookups));
        json_set_field(o, "dns_upstream", count(c->dns_upstream));
        json_set_field(o, "exact", json_boolean(c->exact));
        json_add_item(culprit_list, o);
    }
    json_set_field(host, "culprits", culprit_list);
    json_set_field(connections, "open", json_integer(s->server->connections));
    json_set_field(connections, "accepted", count(s->server->accepted));
    json_set_field(connections, "refused", count(s->server->refused));
    json_set_field(connections, "evicted_idle", count(s->server->evicted_idle));
    json_set_field(connections, "protocol_errors", count(s->server->protocol_errors));
    json_set_field(host, "connections", connections);
    {
        json_t *log_object = object();

        json_set_field(log_object, "dropped", count(log_dropped_total()));
        json_set_field(host, "log", log_object);
    }
    json_set_field(host, "requests", count(s->server->requests));
    json_set_field(host, "open_transactions", json_integer(traffic_open_transactions(t)));
    json_set_field(host, "store", store_json(s->store, traffic_store_dropped_minutes(t)));
    json_set_field(host, "resolver", resolver_json(s->resolver));
    json_set_field(host, "tdns", tdns_json(s));
    defense_json(host, s);
    json_add_item(hosts, host);
    other_hosts_json(hosts, s, ws);
    json_set_field(top, "hosts", hosts);
    json_set_field(top, "fleet", fleet_json(s, ws));
    view_put_json(b, top, true);
}

/* One outcome's count over every query type. */
static uint64_t all_types(const uint64_t (*v)[DNS_OUTCOMES], enum dns_outcome o)
{
    uint64_t n = 0;

    for (int ty = 0; ty < DNS_TYPES; ty++)
        n += v[ty][o];
    return n;
}

void status_text(struct http_body *b, const struct status_sources *s, double now)
{
    const struct traffic *t = s->traffic;
    const struct window_set *ws = traffic_windows(t);
    unsigned longest = window_set_longest(ws);
    struct culprit_view culprits[2 * TOP_CULPRITS];
    unsigned n;

    http_body_printf(b, "host %s: %s, up %.0fs, %u connections, messages counted at %s\n",
                     s->cfg->host_id,
                     detector_state_name(detector_state(defense_detector(s->defense))),
                     now - s->started, s->server->connections,
                     traffic_counts_at_end_of_message(t) ? "END-OF-MESSAGE" : "first RCPT");
    {
        const struct detector *det = defense_detector(s->defense);
        struct detector_view v;
        struct text_ctx tc = {b, s->wall_now, 0};

        detector_get_view(det, &v);
        http_body_printf(b, "detector (%s, MX from %s): %s\n", detect_window_name(s),
                         detector_dns_source_name(v.dns_source), detector_reason(det));
        http_body_printf(b, "baselines per %s:", detect_window_name(s));
        for (int i = 0; i < DS_COUNT; i++)
            http_body_printf(b, " %s %.3g", detector_signal_name(i), v.baseline[i]);
        http_body_printf(b, "%s\n", s->cfg->monitor_only ? "; monitor_only" : "");
        if (v.missing[0])
            http_body_printf(b, "missing: %s\n", v.missing);
        throttle_each(defense_throttles_const(s->defense), text_throttle, &tc);
        http_body_printf(b, "\n");
    }
    http_body_printf(b, "%-8s %10s %10s %10s %10s %10s %10s %8s\n", "window", "N_c", "N_f",
                     "from=", "N_r", "relay rcpt", "domains", "alpha");
    for (unsigned w = 0; w <= ws->count; w++) {
        bool total = w == ws->count;
        uint64_t nc = total ? traffic_total(t, TC_SESSIONS) : traffic_window(t, TC_SESSIONS, w, now);
        uint64_t nf = total ? traffic_total(t, TC_MESSAGES) : traffic_window(t, TC_MESSAGES, w, now);
        uint64_t nfl = total ? traffic_total(t, TC_MESSAGES_LOGGED)
                             : traffic_window(t, TC_MESSAGES_LOGGED, w, now);
        uint64_t nr = total ? traffic_total(t, TC_RECIPIENTS)
                            : traffic_window(t, TC_RECIPIENTS, w, now);
        uint64_t rr = total ? traffic_total(t, TC_RECIPIENTS_RELAY)
                            : traffic_window(t, TC_RECIPIENTS_RELAY, w, now);
        char alpha[16], domains[24];

        if (nfl == 0)
            snprintf(alpha, sizeof(alpha), "-");
        else
            snprintf(alpha, sizeof(alpha), "%.2f", (double)nc / (double)nfl);
        if (total)
            snprintf(domains, sizeof(domains), "-");
        else
            snprintf(domains, sizeof(domains), "%llu",
                     (unsigned long long)traffic_relay_domains(t, w, now));
        http_body_printf(b, "%-8s %10llu %10llu %10llu %10llu %10llu %10s %8s\n",
                         total ? "total" : ws->name[w], (unsigned long long)nc,
                         (unsigned long long)nf, (unsigned long long)nfl, (unsigned long long)nr,
                         (unsigned long long)rr, domains, alpha);
    }
    if (s->resolver != NULL) {
        http_body_printf(b, "\nown DNS lookups: queries sent upstream, and how lookups ended\n");
        http_body_printf(b, "%-8s %8s %8s %8s %8s %8s %8s %8s %8s\n", "window", "MX", "A",
                         "AAAA", "PTR", "cached", "failed", "timeout", "skipped");
        for (unsigned w = 0; w <= ws->count; w++) {
            bool total = w == ws->count;
            uint64_t v[DNS_TYPES][DNS_OUTCOMES];

            for (int ty = 0; ty < DNS_TYPES; ty++)
                for (int o = 0; o < DNS_OUTCOMES; o++)
                    v[ty][o] = total ? traffic_total(t, TC_DNS(ty, o))
                                     : traffic_window(t, TC_DNS(ty, o), w, now);
            http_body_printf(b, "%-8s %8llu %8llu %8llu %8llu %8llu %8llu %8llu %8llu\n",
                             total ? "total" : ws->name[w],
                             (unsigned long long)v[DNS_MX][DNS_UPSTREAM],
                             (unsigned long long)v[DNS_A][DNS_UPSTREAM],
                             (unsigned long long)v[DNS_AAAA][DNS_UPSTREAM],
                             (unsigned long long)v[DNS_PTR][DNS_UPSTREAM],
                             (unsigned long long)(all_types(v, DNS_HIT) + all_types(v, DNS_MERGED)),
                             (unsigned long long)all_types(v, DNS_SERVFAIL),
                             (unsigned long long)all_types(v, DNS_TIMEOUT),
                             (unsigned long long)all_types(v, DNS_SKIPPED));
        }
        http_body_printf(b, "resolver %s: %u in flight (peak %u, cap %u), cache %u of %u\n",
                         s->resolver->servers, s->resolver->outstanding,
                         s->resolver->outstanding_peak, s->resolver->max_outstanding,
                         s->resolver->cache_entries, s->resolver->cache_size);
    }
    if (s->cfg->tdns_client[0] != '\0') {
        http_body_printf(b, "\nupstream DNS server's view of %s (relaywatch feed)%s\n",
                         s->cfg->tdns_client, tdns_stale(s) ? ": STALE" : "");
        http_body_printf(b, "%-8s %8s %8s %8s %8s\n", "window", "MX", "A", "AAAA", "PTR");
        for (unsigned w = 0; w < ws->count && w < STORE_MAX_WINDOWS; w++)
            if (ws->seconds[w] <= STORE_MAX_MINUTES * 60.0)
                http_body_printf(b, "%-8s %8llu %8llu %8llu %8llu\n", ws->name[w],
                                 (unsigned long long)s->store->tdns[w][TDNS_MX],
                                 (unsigned long long)s->store->tdns[w][TDNS_A],
                                 (unsigned long long)s->store->tdns[w][TDNS_AAAA],
                                 (unsigned long long)s->store->tdns[w][TDNS_PTR]);
    }
    n = gather_culprits(t, longest, now, culprits);
    http_body_printf(b, "\ntop relay senders, last %s:\n", ws->name[longest]);
    if (n == 0)
        http_body_printf(b, "  (none)\n");
    for (unsigned i = 0; i < n; i++) {
        char key[4 * CULPRIT_KEY_MAX + 1];

        printable(key, sizeof(key), culprits[i].key);
        http_body_printf(b,
                         "  %-14s %-32s %8llu msgs %8llu rcpts %6llu domains %7llu DNS queries%s\n",
                         culprit_kind_name(culprits[i].kind), key,
                         (unsigned long long)culprits[i].messages,
                         (unsigned long long)culprits[i].recipients,
                         (unsigned long long)culprits[i].domains,
                         (unsigned long long)culprits[i].dns_upstream,
                         culprits[i].exact ? "" : " (at least)");
    }
}

static void metric_head(struct http_body *b, const char *name, const char *type, const char *help)
{
    http_body_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One gauge per counting window for a traffic counter. */
/* A metric with one sample and no labels. */
static void metric_one(struct http_body *b, const char *name, const char *type, const char *help,
                       uint64_t value)
{
    metric_head(b, name, type, help);
    http_body_printf(b, "%s %llu\n", name, (unsigned long long)value);
}

static void metric_windows(struct http_body *b, const char *name, const char *help,
                           const struct status_sources *s, enum traffic_counter c, double now)
{
    const struct window_set *ws = traffic_windows(s->traffic);

    metric_head(b, name, "gauge", help);
    for (unsigned w = 0; w < ws->count; w++)
        http_body_printf(b, "%s{window=\"%s\"} %llu\n", name, ws->name[w],
                         (unsigned long long)traffic_window(s->traffic, c, w, now));
}

/* A counter by answer kind, the kinds still at 0 left out. */
static void metric_by_action(struct http_body *b, const char *name, const char *help,
                             const uint64_t *counts)
{
    metric_head(b, name, "counter", help);
    for (int a = 0; a < AK_COUNT; a++)
        if (counts[a] > 0)
            http_body_printf(b, "%s{action=\"%s\"} %llu\n", name, action_kind_name(a),
                             (unsigned long long)counts[a]);
}

void status_metrics(struct http_body *b, const struct status_sources *s, double now)
{
    const struct traffic *t = s->traffic;
    const struct window_set *ws = traffic_windows(t);
    const struct policy_server_stats *st = s->server;
    uint64_t cumulative = 0;

    metric_head(b, "relaywatch_requests_total", "counter",
                "Policy requests answered, by protocol_state and action.");
    for (int state = 0; state < STATUS_STATES; state++)
        for (int a = 0; a < AK_COUNT; a++)
            if (s->requests[state][a] > 0)
                http_body_printf(b, "relaywatch_requests_total{state=\"%s\",action=\"%s\"} %llu\n",
                                 state == PS_UNKNOWN ? "none" : policy_state_name(state),
                                 action_kind_name(a), (unsigned long long)s->requests[state][a]);
    {
        struct defense_stats ds;
        struct detector_view v;

        defense_get_stats(s->defense, &ds);
        detector_get_view(defense_detector(s->defense), &v);
        metric_one(b, "relaywatch_loud", "gauge",
                   "1 while the detector says loud (relaying spam).",
                   ds.state == DETECTOR_LOUD);
        metric_one(b, "relaywatch_incidents_total", "counter",
                   "Incidents (quiet to loud) started.",
                   ds.incidents);
        metric_by_action(b, "relaywatch_relay_answers_total",
                         "Answers to relay recipients while throttling applied, by action.",
                         ds.actions);
        metric_by_action(b, "relaywatch_monitor_would_answer_total",
                         "monitor_only: answers that would have been given, by action.",
                         ds.would_have);
        metric_one(b, "relaywatch_throttles_total", "counter",
                   "Keys throttled by this daemon (detector, fast path and limits).",
                   ds.throttled_total);
        {
            struct fast_stats fs;

            defense_fast_stats(s->defense, &fs);
            metric_one(b, "relaywatch_fast_stops_total", "counter",
                       "Keys the fast path throttled (monitor_only: would have throttled).",
                       ds.fast_stops);
            metric_head(b, "relaywatch_fast_keys", "gauge",
                        "Keys the fast path tracks, by whether they have a learned level.");
            http_body_printf(b, "relaywatch_fast_keys{history=\"yes\"} %u\n", fs.keys_with_history);
            http_body_printf(b, "relaywatch_fast_keys{history=\"no\"} %u\n",
                             fs.keys - fs.keys_with_history);
            metric_head(b, "relaywatch_fast_site_usual", "gauge",
                        "The site's usual per fast_window (median of the learned key levels).");
            http_body_printf(b, "relaywatch_fast_site_usual{signal=\"domains\"} %.6g\n",
                             fs.site_domains);
            http_body_printf(b, "relaywatch_fast_site_usual{signal=\"mx\"} %.6g\n", fs.site_mx);
        }
        if (s->holds != NULL) {
            struct hold_service_stats hs;

            hold_service_get_stats(s->holds, &hs);
            metric_one(b, "relaywatch_held_messages", "gauge",
                       "Queued messages RelayWatch holds now (postsuper -h, or HOLD as queued).",
                       hs.q.held);
            metric_one(b, "relaywatch_held_messages_total", "counter",
                       "Messages put on hold since start.",
                       hs.q.held_total);
            metric_one(b, "relaywatch_released_messages_total", "counter",
                       "Held messages released since start (relaywatch release).",
                       hs.q.released_total);
            metric_head(b, "relaywatch_postsuper_runs_total", "counter",
                        "postsuper runs asked of the privileged runner, by result.");
            http_body_printf(b, "relaywatch_postsuper_runs_total{result=\"ok\"} %llu\n",
                             (unsigned long long)(hs.runs - hs.failures));
            http_body_printf(b, "relaywatch_postsuper_runs_total{result=\"failed\"} %llu\n",
                             (unsigned long long)hs.failures);
            metric_one(b, "relaywatch_postsuper_runner_up", "gauge",
                       "1 while the privileged postsuper runner is there.",
                       hs.runner ? 1 : 0);
        }
        metric_one(b, "relaywatch_throttled_keys", "gauge",
                   "Records in the throttle table (released keys' grace included).",
                   throttle_count(defense_throttles_const(s->defense)));
        metric_one(b, "relaywatch_alerts_dropped_total", "counter",
                   "Incident alerts not handed to alert_command (one was still pending).",
                   ds.alerts_dropped);
        metric_one(b, "relaywatch_log_dropped_total", "counter",
                   "Log lines lost because the log sink fell behind or refused them.",
                   log_dropped_total());
        metric_head(b, "relaywatch_detector_signal", "gauge",
                    "The detector's last sample per signal, over detect_window (alpha: a ratio).");
        for (int i = 0; i < DS_COUNT; i++)
            if (v.value[i] >= 0)
                http_body_printf(b, "relaywatch_detector_signal{signal=\"%s\"} %.6g\n",
                                 detector_signal_name(i), v.value[i]);
        metric_head(b, "relaywatch_detector_baseline", "gauge",
                    "The learned baseline in use per signal, over detect_window.");
        for (int i = 0; i < DS_COUNT; i++)
            http_body_printf(b, "relaywatch_detector_baseline{signal=\"%s\"} %.6g\n",
                             detector_signal_name(i), v.baseline[i]);
        metric_head(b, "relaywatch_detector_threshold", "gauge",
                    "The loud threshold per signal (mx, relay_domains) from its baseline.");
        http_body_printf(b, "relaywatch_detector_threshold{signal=\"mx\"} %.6g\n",
                         v.mx_threshold);
        http_body_printf(b, "relaywatch_detector_threshold{signal=\"relay_domains\"} %.6g\n",
                         v.domains_threshold);
        metric_head(b, "relaywatch_detector_alpha_band", "gauge",
                    "alpha's band (bound low, high): outside it alpha counts toward loud.");
        http_body_printf(b, "relaywatch_detector_alpha_band{bound=\"low\"} %.6g\n", v.alpha_low);
        http_body_printf(b, "relaywatch_detector_alpha_band{bound=\"high\"} %.6g\n", v.alpha_high);
    }
    metric_one(b, "relaywatch_sessions_total", "counter",
               "SMTP sessions seen (N_c).",
               traffic_total(t, TC_SESSIONS));
    metric_head(b, "relaywatch_messages_total", "counter", "Queued messages (N_f), by direction.");
    http_body_printf(b, "relaywatch_messages_total{direction=\"relay\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_MESSAGES_RELAY));
    http_body_printf(b, "relaywatch_messages_total{direction=\"inbound\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_MESSAGES_INBOUND));
    metric_one(b, "relaywatch_maillog_from_lines_total", "counter",
               "from= lines the maillog holds: queued messages plus refused recipients (nf_log).",
               traffic_total(t, TC_MESSAGES_LOGGED));
    metric_head(b, "relaywatch_recipients_total", "counter",
                "Recipients asked for in RCPT requests (N_r), by direction.");
    http_body_printf(b, "relaywatch_recipients_total{direction=\"relay\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_RECIPIENTS_RELAY));
    http_body_printf(b, "relaywatch_recipients_total{direction=\"inbound\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_RECIPIENTS_INBOUND));
    metric_one(b, "relaywatch_recipients_refused_total", "counter",
               "Recipients asked for but not accepted.",
               traffic_total(t, TC_REFUSED));

    metric_windows(b, "relaywatch_window_sessions", "N_c in each counting window.", s, TC_SESSIONS,
                   now);
    metric_windows(b, "relaywatch_window_messages", "N_f in each counting window.", s, TC_MESSAGES,
                   now);
    metric_windows(b, "relaywatch_window_maillog_from_lines", "nf_log in each counting window.", s,
                   TC_MESSAGES_LOGGED, now);
    metric_windows(b, "relaywatch_window_recipients", "N_r in each counting window.", s,
                   TC_RECIPIENTS, now);
    metric_head(b, "relaywatch_alpha", "gauge",
                "alpha = N_c / nf_log in each counting window (absent while nf_log is 0).");
    for (unsigned w = 0; w < ws->count; w++) {
        uint64_t nfl = traffic_window(t, TC_MESSAGES_LOGGED, w, now);
        if (nfl > 0)
            http_body_printf(b, "relaywatch_alpha{window=\"%s\"} %.6f\n", ws->name[w],
                             (double)traffic_window(t, TC_SESSIONS, w, now) / (double)nfl);
    }
    metric_head(b, "relaywatch_relay_domains", "gauge",
                "Distinct relay recipient domains in each counting window (estimate).");
    for (unsigned w = 0; w < ws->count; w++)
        http_body_printf(b, "relaywatch_relay_domains{window=\"%s\"} %llu\n", ws->name[w],
                         (unsigned long long)traffic_relay_domains(t, w, now));

    metric_head(b, "relaywatch_dns_queries_sent_total", "counter",
                "The daemon's own DNS query packets sent to name servers, by type (retries "
                "included: what the server's query log shows).");
    for (int ty = 0; ty < DNS_TYPES; ty++)
        http_body_printf(b, "relaywatch_dns_queries_sent_total{type=\"%s\"} %llu\n",
                         dns_type_name(ty), (unsigned long long)traffic_total(t, TC_DNS(ty, DNS_UPSTREAM)));
    metric_head(b, "relaywatch_dns_lookups_total", "counter",
                "The daemon's own DNS lookups, by type and how they ended.");
    for (int ty = 0; ty < DNS_TYPES; ty++)
        for (int o = 0; o < DNS_OUTCOMES; o++)
            if (o != DNS_UPSTREAM)
                http_body_printf(b, "relaywatch_dns_lookups_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                                 dns_type_name(ty), dns_outcome_name(o),
                                 (unsigned long long)traffic_total(t, TC_DNS(ty, o)));
    metric_head(b, "relaywatch_window_dns_queries_sent", "gauge",
                "DNS query packets sent upstream in each counting window, by type.");
    for (unsigned w = 0; w < ws->count; w++)
        for (int ty = 0; ty < DNS_TYPES; ty++)
            http_body_printf(b, "relaywatch_window_dns_queries_sent{window=\"%s\",type=\"%s\"} %llu\n",
                             ws->name[w], dns_type_name(ty),
                             (unsigned long long)traffic_window(t, TC_DNS(ty, DNS_UPSTREAM), w, now));
    if (s->cfg->tdns_client[0] != '\0') {
        static const char *const names[TDNS_TYPES] = {"a", "aaaa", "mx", "ptr"};

        metric_head(b, "relaywatch_window_tdns_queries", "gauge",
                    "Queries the upstream DNS server logged from tdns_client in each counting "
                    "window (up to an hour), by type, from relaywatch feed.");
        for (unsigned w = 0; w < ws->count && w < STORE_MAX_WINDOWS; w++)
            if (ws->seconds[w] <= STORE_MAX_MINUTES * 60.0)
                for (int ty = 0; ty < TDNS_TYPES; ty++)
                    http_body_printf(b, "relaywatch_window_tdns_queries{window=\"%s\",type=\"%s\"} %llu\n",
                                     ws->name[w], names[ty],
                                     (unsigned long long)s->store->tdns[w][ty]);
        metric_one(b, "relaywatch_tdns_stale", "gauge",
                   "1 while the feed has written nothing for tdns_client for tdns_stale_after.",
                   tdns_stale(s) ? 1 : 0);
    }
    if (s->resolver != NULL) {
        metric_one(b, "relaywatch_dns_outstanding", "gauge",
                   "DNS queries in flight now.",
                   s->resolver->outstanding);
        metric_one(b, "relaywatch_dns_cache_entries", "gauge",
                   "Entries in the DNS cache (in flight included).",
                   s->resolver->cache_entries);
        metric_one(b, "relaywatch_dns_cache_evictions_total", "counter",
                   "DNS cache entries evicted (least recently used) to make room.",
                   s->resolver->evictions);
    }

    metric_one(b, "relaywatch_connections", "gauge",
               "Policy connections open now.",
               st->connections);
    metric_one(b, "relaywatch_max_connections", "gauge",
               "max_connections: policy connections the daemon keeps open at most.",
               s->cfg->max_connections);
    metric_one(b, "relaywatch_connections_accepted_total", "counter",
               "Policy connections accepted.",
               st->accepted);
    metric_one(b, "relaywatch_connections_refused_total", "counter",
               "Policy connections closed at once because max_connections was reached.",
               st->refused);
    metric_one(b, "relaywatch_connections_evicted_idle_total", "counter",
               "Idle policy connections closed at max_connections to let a new one in.",
               st->evicted_idle);
    metric_one(b, "relaywatch_protocol_errors_total", "counter",
               "Policy connections closed for breaking the protocol.",
               st->protocol_errors);
    metric_one(b, "relaywatch_connections_refused_per_peer_total", "counter",
               "Policy connections closed at once because their uid or address was at "
               "max_connections_per_peer.",
               st->peer_refused);
    metric_one(b, "relaywatch_request_timeouts_total", "counter",
               "Policy connections closed because a request was not whole within "
               "request_timeout of its first byte.",
               st->request_timeouts);
    metric_one(b, "relaywatch_open_transactions", "gauge",
               "Transactions with RCPTs seen and no END-OF-MESSAGE yet.",
               traffic_open_transactions(t));
    metric_one(b, "relaywatch_sessions_evicted_total", "counter",
               "Live sessions pushed out of the session table by newer ones (session_slots "
               "too small for the load).",
               traffic_sessions_evicted(t));
    metric_one(b, "relaywatch_transactions_evicted_total", "counter",
               "Open transactions pushed out of the transaction table by newer ones; their "
               "recipients are not counted as refused.",
               traffic_transactions_evicted(t));
    metric_head(b, "relaywatch_request_duration_seconds", "histogram",
                "Time from a request's last byte read to its answer written.");
    for (unsigned i = 0; i < LATENCY_BUCKETS; i++) {
        cumulative += st->latency_count[i];
        http_body_printf(b, "relaywatch_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                         latency_bucket_bounds[i], (unsigned long long)cumulative);
    }
    cumulative += st->latency_count[LATENCY_BUCKETS];
    http_body_printf(b, "relaywatch_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                     (unsigned long long)cumulative);
    http_body_printf(b, "relaywatch_request_duration_seconds_sum %.9f\n", st->latency_sum);
    http_body_printf(b, "relaywatch_request_duration_seconds_count %llu\n",
                     (unsigned long long)cumulative);
    metric_head(b, "relaywatch_store_up", "gauge",
                "1 while the store is usable (always for memory), 0 while Redis is unreachable.");
    http_body_printf(b, "relaywatch_store_up{backend=\"%s\"} %d\n", s->store->backend,
                     s->store->connected ? 1 : 0);
    metric_one(b, "relaywatch_store_flushes_total", "counter",
               "Writes to the store that succeeded.",
               s->store->flushes);
    metric_one(b, "relaywatch_store_failures_total", "counter",
               "Store rounds that failed (error, timeout, lost connection).",
               s->store->failures);
    metric_one(b, "relaywatch_store_dropped_minute_records_total", "counter",
               "Minutes of counts that left the backlog before they could be written.",
               traffic_store_dropped_minutes(t));
    metric_one(b, "relaywatch_store_unwritten_minute_records", "gauge",
               "Minutes of counts waiting to be written to the store (about 1 while writes "
               "succeed; after a failed write every minute held, up to store_backlog).",
               traffic_store_unwritten_minutes(t));
    metric_head(b, "relaywatch_start_time_seconds", "gauge", "When the daemon started (Unix time).");
    http_body_printf(b, "relaywatch_start_time_seconds %.0f\n", s->started);
}
