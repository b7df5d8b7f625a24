/*
 * status: JSON, text and Prometheus views.  See status.h and the README's
 * "Status and metrics" section, which documents every field.
 */
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "defense.h"
#include "hold_service.h"
#include "fastpath.h"
#include "http.h"
#include "resolver.h"
#include "server.h"
#include "store.h"
#include "traffic.h"

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

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_sequence(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        len = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

void status_json_string(struct http_body *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    http_body_append(b, "\"", 1);
    while (i < len) {
        size_t n = utf8_sequence(p + i, len - i);

        if (n == 0) {
            http_body_append(b, "\\ufffd", 6);
            i++;
        } else if (n > 1) {
            http_body_append(b, s + i, n);
            i += n;
        } else if (p[i] == '"' || p[i] == '\\') {
            char esc[2] = {'\\', (char)p[i]};
            http_body_append(b, esc, 2);
            i++;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            http_body_printf(b, "\\u%04x", p[i]);
            i++;
        } else {
            http_body_append(b, s + i, 1);
            i++;
        }
    }
    http_body_append(b, "\"", 1);
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

static void json_alpha(struct http_body *b, uint64_t nc, uint64_t nf_log)
{
    if (nf_log == 0)
        http_body_printf(b, "null");
    else
        http_body_printf(b, "%.4f", (double)nc / (double)nf_log);
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

static void json_store(struct http_body *b, const struct store_state *st, uint64_t dropped)
{
    http_body_printf(b,
                     ",\"store\":{\"backend\":\"%s\",\"connected\":%s,\"flushes\":%llu,"
                     "\"failures\":%llu,\"dropped_minutes\":%llu,\"dropped_domains\":%llu,"
                     "\"last_error\":",
                     st->backend, st->connected ? "true" : "false",
                     (unsigned long long)st->flushes, (unsigned long long)st->failures,
                     (unsigned long long)dropped, (unsigned long long)st->dropped_domains);
    if (st->last_error)
        status_json_string(b, st->last_error, strlen(st->last_error));
    else
        http_body_printf(b, "null");
    http_body_printf(b, "}");
}

/*
 * Counts indexed by traffic_counter: the mail fields, then "dns" (queries sent upstream per
 * type, as the name server logs them) and "dns_detail" (every outcome per type).
 */
static void json_counts(struct http_body *b, const uint64_t *v)
{
    for (size_t f = 0; f < FIELD_COUNT; f++)
        http_body_printf(b, "%s\"%s\":%llu", f ? "," : "", fields[f].json,
                         (unsigned long long)v[fields[f].counter]);
    http_body_printf(b, ",\"dns\":{");
    for (int type = 0; type < DNS_TYPES; type++)
        http_body_printf(b, "%s\"%s\":%llu", type ? "," : "", dns_type_name(type),
                         (unsigned long long)v[TC_DNS(type, DNS_UPSTREAM)]);
    http_body_printf(b, "},\"dns_detail\":{");
    for (int type = 0; type < DNS_TYPES; type++) {
        http_body_printf(b, "%s\"%s\":{", type ? "," : "", dns_type_name(type));
        for (int o = 0; o < DNS_OUTCOMES; o++)
            http_body_printf(b, "%s\"%s\":%llu", o ? "," : "", dns_outcome_name(o),
                             (unsigned long long)v[TC_DNS(type, o)]);
        http_body_printf(b, "}");
    }
    http_body_printf(b, "}");
}

/* Whether the feed's counts for tdns_client are too old to trust (or were never read). */
static bool tdns_stale(const struct status_sources *s)
{
    double age = s->store->tdns_updated > 0 ? s->wall_now - s->store->tdns_updated : -1;

    return !s->store->tdns_read || age < 0 || age > s->cfg->tdns_stale_after;
}

/* The upstream DNS server's counts for this host in window w: null without tdns_client or
 * for windows longer than the store reads (an hour). */
static void json_tdns_window(struct http_body *b, const struct status_sources *s, unsigned w)
{
    const struct window_set *ws = traffic_windows(s->traffic);
    const uint64_t *v = s->store->tdns[w];

    if (s->cfg->tdns_client[0] == '\0' || w >= STORE_MAX_WINDOWS ||
        ws->seconds[w] > STORE_MAX_MINUTES * 60.0) {
        http_body_printf(b, ",\"tdns\":null");
        return;
    }
    http_body_printf(b, ",\"tdns\":{\"mx\":%llu,\"a\":%llu,\"aaaa\":%llu,\"ptr\":%llu,"
                        "\"stale\":%s}",
                     (unsigned long long)v[TDNS_MX], (unsigned long long)v[TDNS_A],
                     (unsigned long long)v[TDNS_AAAA], (unsigned long long)v[TDNS_PTR],
                     tdns_stale(s) ? "true" : "false");
}

/* The feed behind tdns: whose counts, how fresh. */
static void json_tdns(struct http_body *b, const struct status_sources *s)
{
    if (s->cfg->tdns_client[0] == '\0') {
        http_body_printf(b, ",\"tdns\":null");
        return;
    }
    http_body_printf(b, ",\"tdns\":{\"client\":");
    status_json_string(b, s->cfg->tdns_client, strlen(s->cfg->tdns_client));
    if (s->store->tdns_updated > 0)
        http_body_printf(b, ",\"updated\":%.0f,\"age_seconds\":%.0f",
                         s->store->tdns_updated, s->wall_now - s->store->tdns_updated);
    else
        http_body_printf(b, ",\"updated\":null,\"age_seconds\":null");
    http_body_printf(b, ",\"stale_after_seconds\":%.0f,\"stale\":%s}",
                     s->cfg->tdns_stale_after, tdns_stale(s) ? "true" : "false");
}

static void json_resolver(struct http_body *b, const struct resolver_stats *r)
{
    if (r == NULL) {
        http_body_printf(b, ",\"resolver\":null");
        return;
    }
    http_body_printf(b, ",\"resolver\":{\"servers\":");
    status_json_string(b, r->servers, strlen(r->servers));
    http_body_printf(b,
                     ",\"outstanding\":%u,\"outstanding_peak\":%u,\"max_outstanding\":%u,"
                     "\"waiting\":%u,\"cache_entries\":%u,\"cache_size\":%u,\"evictions\":%llu,"
                     "\"invalid_names\":%llu,\"dropped_waiters\":%llu,\"unmatched_packets\":%llu}",
                     r->outstanding, r->outstanding_peak, r->max_outstanding, r->waiting,
                     r->cache_entries, r->cache_size, (unsigned long long)r->evictions,
                     (unsigned long long)r->invalid_names, (unsigned long long)r->dropped_waiters,
                     (unsigned long long)r->unmatched_packets);
}

static void json_stored_windows(struct http_body *b, const struct window_set *ws,
                                const uint64_t (*window)[STORE_MAX_COUNTERS],
                                const uint64_t *domains)
{
    bool first = true;

    http_body_printf(b, "\"windows\":{");
    for (unsigned w = 0; w < ws->count; w++) {
        if (ws->seconds[w] > STORE_MAX_MINUTES * 60.0)
            continue; /* not read from the store (see store.h) */
        http_body_printf(b, "%s\"%s\":{\"seconds\":%.0f,", first ? "" : ",", ws->name[w],
                         ws->seconds[w]);
        first = false;
        json_counts(b, window[w]);
        http_body_printf(b, ",\"alpha\":");
        json_alpha(b, window[w][TC_SESSIONS], window[w][TC_MESSAGES_LOGGED]);
        /* Distinct domains do not add up across hosts: none for the fleet. */
        if (domains)
            http_body_printf(b, ",\"relay_domains\":%llu", (unsigned long long)domains[w]);
        else
            http_body_printf(b, ",\"relay_domains\":null");
        http_body_printf(b, ",\"tdns\":null}");
    }
    http_body_printf(b, "}");
}

static void json_number_or_null(struct http_body *b, double v)
{
    if (v < 0 || !isfinite(v))
        http_body_printf(b, "null");
    else
        http_body_printf(b, "%.6g", v);
}

void status_json_time(struct http_body *b, double t)
{
    if (t <= 0) {
        http_body_printf(b, "null");
    } else {
        time_t sec = (time_t)t;
        struct tm tm;
        char text[32];

        gmtime_r(&sec, &tm);
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
        http_body_printf(b, "\"%s\"", text);
    }
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
static void json_by_action(struct http_body *b, const uint64_t *counts)
{
    for (int a = 0; a < AK_COUNT; a++)
        http_body_printf(b, "%s\"%s\":%llu", a ? "," : "{", action_kind_name(a),
                         (unsigned long long)counts[a]);
    http_body_printf(b, "}");
}

struct held_ctx {
    struct http_body *b;
    bool text;
    unsigned n;
};

static bool held_key(void *arg, const struct quarantine_key_info *k)
{
    struct held_ctx *h = arg;

    if (k->held == 0 && k->asked == 0 && k->released_at == 0)
        return true;
    if (h->text) {
        http_body_printf(h->b, "%u %u %.3f %u %.3f %s:%s\n", k->held, k->asked, k->held_since,
                         k->released, k->released_at, culprit_kind_name(k->kind), k->key);
        return true;
    }
    http_body_printf(h->b, "%s{\"kind\":\"%s\",\"key\":", h->n++ ? "," : "",
                     culprit_kind_name(k->kind));
    status_json_string(h->b, k->key, strlen(k->key));
    http_body_printf(h->b, ",\"messages\":%u,\"being_held\":%u,\"since\":", k->held, k->asked);
    status_json_time(h->b, k->held_since);
    http_body_printf(h->b, ",\"released\":%u,\"released_at\":", k->released);
    status_json_time(h->b, k->released_at);
    http_body_printf(h->b, "}");
    return true;
}

void status_held_json(struct http_body *b, const struct hold_service *holds, double wall_now)
{
    struct held_ctx h = {b, false, 0};

    http_body_printf(b, "[");
    if (holds != NULL)
        quarantine_each(hold_service_ledger(holds), wall_now, true, held_key, &h);
    http_body_printf(b, "]");
}

void status_held_text(struct http_body *b, const struct hold_service *holds, double wall_now)
{
    struct held_ctx h = {b, true, 0};

    if (holds != NULL)
        quarantine_each(hold_service_ledger(holds), wall_now, true, held_key, &h);
}

static void json_quarantine(struct http_body *b, const struct status_sources *s)
{
    struct hold_service_stats hs;

    if (s->holds == NULL)
        return;
    hold_service_get_stats(s->holds, &hs);
    http_body_printf(b, ",\"quarantine\":{\"enabled\":%s,\"postsuper_runner\":%s,\"unavailable\":",
                     hs.enabled ? "true" : "false", hs.runner ? "true" : "false");
    status_json_string(b, hs.unavailable, strlen(hs.unavailable));
    http_body_printf(b,
                     ",\"end_of_message_seen\":%s,\"keys\":%u,\"queue_ids\":%llu,\"held\":%llu,"
                     "\"held_total\":%llu,\"released_total\":%llu,\"forgotten_held\":%llu,"
                     "\"postsuper_runs\":%llu,\"postsuper_failures\":%llu,\"held_keys\":",
                     hs.end_of_message_seen ? "true" : "false", hs.q.keys,
                     (unsigned long long)hs.q.ids, (unsigned long long)hs.q.held,
                     (unsigned long long)hs.q.held_total, (unsigned long long)hs.q.released_total,
                     (unsigned long long)hs.q.forgotten_held, (unsigned long long)hs.runs,
                     (unsigned long long)hs.failures);
    status_held_json(b, s->holds, s->wall_now);
    http_body_printf(b, "}");
}

/* The detector's view, the baselines, incidents, answers and throttled keys. */
static void json_defense(struct http_body *b, const struct status_sources *s)
{
    const struct detector *det = defense_detector(s->defense);
    struct detector_view v;
    struct defense_stats st;

    detector_get_view(det, &v);
    defense_get_stats(s->defense, &st);
    http_body_printf(b, ",\"detector\":{\"state\":\"%s\",\"since\":",
                     detector_state_name(v.state));
    status_json_time(b, v.since);
    http_body_printf(b, ",\"reason\":");
    status_json_string(b, detector_reason(det), strlen(detector_reason(det)));
    http_body_printf(b, ",\"window\":\"%s\",\"dns_source\":\"%s\",\"missing\":",
                     detect_window_name(s), detector_dns_source_name(v.dns_source));
    status_json_string(b, v.missing, strlen(v.missing));
    http_body_printf(b, ",\"loud_condition\":%s,\"condition_since\":",
                     v.loud_condition ? "true" : "false");
    status_json_time(b, v.condition_since);
    http_body_printf(b, ",\"minutes_learned\":%llu,\"signals\":{",
                     (unsigned long long)v.samples_learned);
    for (int i = 0; i < DS_COUNT; i++) {
        http_body_printf(b, "%s\"%s\":{\"value\":", i ? "," : "", detector_signal_name(i));
        json_number_or_null(b, v.value[i]);
        http_body_printf(b, ",\"baseline\":%.6g,\"hourly\":%s}", v.baseline[i],
                         v.hourly[i] ? "true" : "false");
    }
    http_body_printf(b, "}},\"baselines\":{");
    for (int i = 0; i < DS_COUNT; i++)
        http_body_printf(b, "%s\"%s\":%.6g", i ? "," : "", detector_signal_name(i), v.baseline[i]);
    http_body_printf(b, "},\"incidents\":{\"started\":%llu,\"open_since\":",
                     (unsigned long long)st.incidents);
    status_json_time(b, st.incident_start);
    http_body_printf(b, "},\"monitor_only\":%s,\"relay_answers\":",
                     s->cfg->monitor_only ? "true" : "false");
    json_by_action(b, st.actions);
    http_body_printf(b, ",\"would_answer\":");
    json_by_action(b, st.would_have);
    {
        struct fast_stats fs;

        defense_fast_stats(s->defense, &fs);
        http_body_printf(b,
                         ",\"fast_path\":{\"enabled\":%s,\"window_seconds\":%g,\"stops\":%llu,"
                         "\"keys\":%u,\"keys_with_history\":%u,\"periods_learned\":%llu,"
                         "\"site_usual\":{\"domains\":%.6g,\"mx\":%.6g}}",
                         s->cfg->fast_path ? "true" : "false", s->cfg->fast_window,
                         (unsigned long long)st.fast_stops, fs.keys, fs.keys_with_history,
                         (unsigned long long)fs.learned, fs.site_domains, fs.site_mx);
    }
    json_quarantine(b, s);
    http_body_printf(b, ",");
    /* {"throttled":[...]} without its braces. */
    {
        size_t start = b->len;

        defense_throttled_json(s->defense, b, s->wall_now);
        if (b->len >= start + 2 && b->data[start] == '{' && b->data[b->len - 1] == '}') {
            memmove(b->data + start, b->data + start + 1, b->len - start - 2);
            b->len -= 2;
        }
    }
}

/* The other hosts sharing the store, as it holds them. */
static void json_other_hosts(struct http_body *b, const struct status_sources *s,
                             const struct window_set *ws)
{
    const struct store_state *st = s->store;

    for (unsigned i = 0; i < st->host_count; i++) {
        const struct store_host *h = &st->hosts[i];

        if (strcmp(h->host, s->cfg->host_id) == 0)
            continue;
        http_body_printf(b, ",{\"host\":");
        status_json_string(b, h->host, strlen(h->host));
        /* A host of an older version writes no state: shown quiet, as it was then. */
        http_body_printf(b, ",\"state\":\"%s\",\"source\":\"store\",\"updated\":%.3f,"
                         "\"totals\":{",
                         h->state[0] ? h->state : "quiet", h->updated);
        json_counts(b, h->totals);
        http_body_printf(b, "},");
        json_stored_windows(b, ws, (const uint64_t(*)[STORE_MAX_COUNTERS])h->window, h->domains);
        http_body_printf(b, ",\"culprits\":[");
        for (unsigned c = 0, shown = 0; c < h->culprit_count; c++) {
            const char *m = h->culprits[c].member, *colon = strchr(m, ':');

            if (colon == NULL)
                continue;
            http_body_printf(b, "%s{\"kind\":", shown++ ? "," : "");
            status_json_string(b, m, (size_t)(colon - m));
            http_body_printf(b, ",\"key\":");
            status_json_string(b, colon + 1, strlen(colon + 1));
            http_body_printf(b, ",\"window\":\"%s\",\"recipients\":%llu}",
                             ws->name[window_set_longest(ws)],
                             (unsigned long long)h->culprits[c].recipients);
        }
        http_body_printf(b, "]}");
    }
}

/* Sums over every host the store holds (this one included, all its runs). */
static void json_fleet(struct http_body *b, const struct status_sources *s,
                       const struct window_set *ws)
{
    const struct store_state *st = s->store;
    uint64_t totals[STORE_MAX_COUNTERS] = {0};
    uint64_t window[STORE_MAX_WINDOWS][STORE_MAX_COUNTERS];

    if (!st->shared) {
        http_body_printf(b, ",\"fleet\":null");
        return;
    }
    memset(window, 0, sizeof(window));
    for (unsigned i = 0; i < st->host_count; i++)
        for (unsigned c = 0; c < STORE_MAX_COUNTERS; c++) {
            totals[c] += st->hosts[i].totals[c];
            for (unsigned w = 0; w < ws->count && w < STORE_MAX_WINDOWS; w++)
                window[w][c] += st->hosts[i].window[w][c];
        }
    http_body_printf(b, ",\"fleet\":{\"hosts\":%u,\"totals\":{", st->host_count);
    json_counts(b, totals);
    http_body_printf(b, "},");
    json_stored_windows(b, ws, (const uint64_t(*)[STORE_MAX_COUNTERS])window, NULL);
    http_body_printf(b, "}");
}

void status_json(struct http_body *b, const struct status_sources *s, double now)
{
    const struct traffic *t = s->traffic;
    const struct window_set *ws = traffic_windows(t);
    unsigned longest = window_set_longest(ws);
    struct culprit_view culprits[2 * TOP_CULPRITS];
    unsigned n;

    http_body_printf(b, "{\"version\":\"%s\",\"hosts\":[{\"host\":", RELAYWATCH_VERSION);
    status_json_string(b, s->cfg->host_id, strlen(s->cfg->host_id));
    http_body_printf(b, ",\"state\":\"%s\",\"uptime_seconds\":%.0f,\"messages_counted_at\":\"%s\"",
                     detector_state_name(detector_state(defense_detector(s->defense))),
                     now - s->started,
                     traffic_counts_at_end_of_message(t) ? "end-of-message" : "rcpt");
    http_body_printf(b, ",\"totals\":{");
    {
        uint64_t v[TC_COUNT];

        for (int c = 0; c < TC_COUNT; c++)
            v[c] = traffic_total(t, (enum traffic_counter)c);
        json_counts(b, v);
    }
    http_body_printf(b, "},\"windows\":{");
    for (unsigned w = 0; w < ws->count; w++) {
        uint64_t v[TC_COUNT];

        for (int c = 0; c < TC_COUNT; c++)
            v[c] = traffic_window(t, (enum traffic_counter)c, w, now);
        http_body_printf(b, "%s\"%s\":{\"seconds\":%.0f,", w ? "," : "", ws->name[w],
                         ws->seconds[w]);
        json_counts(b, v);
        http_body_printf(b, ",\"alpha\":");
        json_alpha(b, v[TC_SESSIONS], v[TC_MESSAGES_LOGGED]);
        http_body_printf(b, ",\"relay_domains\":%llu",
                         (unsigned long long)traffic_relay_domains(t, w, now));
        json_tdns_window(b, s, w);
        http_body_printf(b, "}");
    }
    http_body_printf(b, "},\"culprits\":[");
    n = gather_culprits(t, longest, now, culprits);
    for (unsigned i = 0; i < n; i++) {
        const struct culprit_view *c = &culprits[i];

        http_body_printf(b, "%s{\"kind\":\"%s\",\"key\":", i ? "," : "",
                         culprit_kind_name(c->kind));
        status_json_string(b, c->key, strlen(c->key));
        http_body_printf(b,
                         ",\"window\":\"%s\",\"messages\":%llu,\"recipients\":%llu,"
                         "\"domains\":%llu,\"dns_lookups\":%llu,\"dns_upstream\":%llu,"
                         "\"exact\":%s}",
                         ws->name[longest], (unsigned long long)c->messages,
                         (unsigned long long)c->recipients, (unsigned long long)c->domains,
                         (unsigned long long)c->dns_lookups, (unsigned long long)c->dns_upstream,
                         c->exact ? "true" : "false");
    }
    http_body_printf(b,
                     "],\"connections\":{\"open\":%u,\"accepted\":%llu,\"refused\":%llu,"
                     "\"protocol_errors\":%llu},\"requests\":%llu,\"open_transactions\":%u",
                     s->server->connections, (unsigned long long)s->server->accepted,
                     (unsigned long long)s->server->refused,
                     (unsigned long long)s->server->protocol_errors,
                     (unsigned long long)s->server->requests, traffic_open_transactions(t));
    json_store(b, s->store, traffic_store_dropped_minutes(t));
    json_resolver(b, s->resolver);
    json_tdns(b, s);
    json_defense(b, s);
    http_body_printf(b, "}");
    json_other_hosts(b, s, ws);
    http_body_printf(b, "]");
    json_fleet(b, s, ws);
    http_body_printf(b, "}\n");
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
        metric_head(b, "relaywatch_loud", "gauge", "1 while the detector says loud (relaying spam).");
        http_body_printf(b, "relaywatch_loud %d\n", ds.state == DETECTOR_LOUD);
        metric_head(b, "relaywatch_incidents_total", "counter", "Incidents (quiet to loud) started.");
        http_body_printf(b, "relaywatch_incidents_total %llu\n", (unsigned long long)ds.incidents);
        metric_by_action(b, "relaywatch_relay_answers_total",
                         "Answers to relay recipients while throttling applied, by action.",
                         ds.actions);
        metric_by_action(b, "relaywatch_monitor_would_answer_total",
                         "monitor_only: answers that would have been given, by action.",
                         ds.would_have);
        metric_head(b, "relaywatch_throttles_total", "counter",
                    "Keys throttled by this daemon (detector, fast path and limits).");
        http_body_printf(b, "relaywatch_throttles_total %llu\n",
                         (unsigned long long)ds.throttled_total);
        {
            struct fast_stats fs;

            defense_fast_stats(s->defense, &fs);
            metric_head(b, "relaywatch_fast_stops_total", "counter",
                        "Keys the fast path throttled (monitor_only: would have throttled).");
            http_body_printf(b, "relaywatch_fast_stops_total %llu\n",
                             (unsigned long long)ds.fast_stops);
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
            metric_head(b, "relaywatch_held_messages", "gauge",
                        "Queued messages RelayWatch holds now (postsuper -h, or HOLD as queued).");
            http_body_printf(b, "relaywatch_held_messages %llu\n", (unsigned long long)hs.q.held);
            metric_head(b, "relaywatch_held_messages_total", "counter",
                        "Messages put on hold since start.");
            http_body_printf(b, "relaywatch_held_messages_total %llu\n",
                             (unsigned long long)hs.q.held_total);
            metric_head(b, "relaywatch_released_messages_total", "counter",
                        "Held messages released since start (relaywatch release).");
            http_body_printf(b, "relaywatch_released_messages_total %llu\n",
                             (unsigned long long)hs.q.released_total);
            metric_head(b, "relaywatch_postsuper_runs_total", "counter",
                        "postsuper runs asked of the privileged runner, by result.");
            http_body_printf(b, "relaywatch_postsuper_runs_total{result=\"ok\"} %llu\n",
                             (unsigned long long)(hs.runs - hs.failures));
            http_body_printf(b, "relaywatch_postsuper_runs_total{result=\"failed\"} %llu\n",
                             (unsigned long long)hs.failures);
            metric_head(b, "relaywatch_postsuper_runner_up", "gauge",
                        "1 while the privileged postsuper runner is there.");
            http_body_printf(b, "relaywatch_postsuper_runner_up %d\n", hs.runner ? 1 : 0);
        }
        metric_head(b, "relaywatch_throttled_keys", "gauge",
                    "Records in the throttle table (released keys' grace included).");
        http_body_printf(b, "relaywatch_throttled_keys %u\n",
                         throttle_count(defense_throttles_const(s->defense)));
        metric_head(b, "relaywatch_alerts_dropped_total", "counter",
                    "Incident alerts not handed to alert_command (one was still pending).");
        http_body_printf(b, "relaywatch_alerts_dropped_total %llu\n",
                         (unsigned long long)ds.alerts_dropped);
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
    }
    metric_head(b, "relaywatch_sessions_total", "counter", "SMTP sessions seen (N_c).");
    http_body_printf(b, "relaywatch_sessions_total %llu\n",
                     (unsigned long long)traffic_total(t, TC_SESSIONS));
    metric_head(b, "relaywatch_messages_total", "counter", "Queued messages (N_f), by direction.");
    http_body_printf(b, "relaywatch_messages_total{direction=\"relay\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_MESSAGES_RELAY));
    http_body_printf(b, "relaywatch_messages_total{direction=\"inbound\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_MESSAGES_INBOUND));
    metric_head(b, "relaywatch_maillog_from_lines_total", "counter",
                "from= lines the maillog holds: queued messages plus refused recipients (nf_log).");
    http_body_printf(b, "relaywatch_maillog_from_lines_total %llu\n",
                     (unsigned long long)traffic_total(t, TC_MESSAGES_LOGGED));
    metric_head(b, "relaywatch_recipients_total", "counter",
                "Recipients asked for in RCPT requests (N_r), by direction.");
    http_body_printf(b, "relaywatch_recipients_total{direction=\"relay\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_RECIPIENTS_RELAY));
    http_body_printf(b, "relaywatch_recipients_total{direction=\"inbound\"} %llu\n",
                     (unsigned long long)traffic_total(t, TC_RECIPIENTS_INBOUND));
    metric_head(b, "relaywatch_recipients_refused_total", "counter",
                "Recipients asked for but not accepted.");
    http_body_printf(b, "relaywatch_recipients_refused_total %llu\n",
                     (unsigned long long)traffic_total(t, TC_REFUSED));

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
        metric_head(b, "relaywatch_tdns_stale", "gauge",
                    "1 while the feed has written nothing for tdns_client for tdns_stale_after.");
        http_body_printf(b, "relaywatch_tdns_stale %d\n", tdns_stale(s) ? 1 : 0);
    }
    if (s->resolver != NULL) {
        metric_head(b, "relaywatch_dns_outstanding", "gauge", "DNS queries in flight now.");
        http_body_printf(b, "relaywatch_dns_outstanding %u\n", s->resolver->outstanding);
        metric_head(b, "relaywatch_dns_cache_entries", "gauge", "Entries in the DNS cache (in flight included).");
        http_body_printf(b, "relaywatch_dns_cache_entries %u\n", s->resolver->cache_entries);
        metric_head(b, "relaywatch_dns_cache_evictions_total", "counter",
                    "DNS cache entries evicted (least recently used) to make room.");
        http_body_printf(b, "relaywatch_dns_cache_evictions_total %llu\n",
                         (unsigned long long)s->resolver->evictions);
    }

    metric_head(b, "relaywatch_connections", "gauge", "Policy connections open now.");
    http_body_printf(b, "relaywatch_connections %u\n", st->connections);
    metric_head(b, "relaywatch_connections_accepted_total", "counter",
                "Policy connections accepted.");
    http_body_printf(b, "relaywatch_connections_accepted_total %llu\n",
                     (unsigned long long)st->accepted);
    metric_head(b, "relaywatch_connections_refused_total", "counter",
                "Policy connections closed at once because max_connections was reached.");
    http_body_printf(b, "relaywatch_connections_refused_total %llu\n",
                     (unsigned long long)st->refused);
    metric_head(b, "relaywatch_protocol_errors_total", "counter",
                "Policy connections closed for breaking the protocol.");
    http_body_printf(b, "relaywatch_protocol_errors_total %llu\n",
                     (unsigned long long)st->protocol_errors);
    metric_head(b, "relaywatch_open_transactions", "gauge",
                "Transactions with RCPTs seen and no END-OF-MESSAGE yet.");
    http_body_printf(b, "relaywatch_open_transactions %u\n", traffic_open_transactions(t));
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
    metric_head(b, "relaywatch_store_flushes_total", "counter", "Writes to the store that succeeded.");
    http_body_printf(b, "relaywatch_store_flushes_total %llu\n",
                     (unsigned long long)s->store->flushes);
    metric_head(b, "relaywatch_store_failures_total", "counter",
                "Store rounds that failed (error, timeout, lost connection).");
    http_body_printf(b, "relaywatch_store_failures_total %llu\n",
                     (unsigned long long)s->store->failures);
    metric_head(b, "relaywatch_store_dropped_minutes_total", "counter",
                "Minutes of counts that left the backlog before they could be written.");
    http_body_printf(b, "relaywatch_store_dropped_minutes_total %llu\n",
                     (unsigned long long)traffic_store_dropped_minutes(t));
    metric_head(b, "relaywatch_start_time_seconds", "gauge", "When the daemon started (Unix time).");
    http_body_printf(b, "relaywatch_start_time_seconds %.0f\n", s->started);
}
