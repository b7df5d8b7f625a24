/*
 * status_page: see status_page.h.
 */
#include "status_page.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "defense.h"
#include "hold_service.h"
#include "http.h"
#include "json_text.h"
#include "quarantine.h"
#include "signal_history.h"
#include "store.h"
#include "throttle.h"

/* How many code points of each kind of string the page shows. */
#define SHOW_KEY 120
#define SHOW_TEXT 300
#define SHOW_CULPRITS 5

/* The badges' colours (the browser test looks for them in the screenshot). */
#define QUIET_COLOUR "#1a7f37"
#define LOUD_COLOUR "#cf222e"

/* One chart's geometry, in SVG units. */
#define CHART_W 320
#define CHART_H 120
#define PLOT_LEFT 44
#define PLOT_RIGHT 312
#define PLOT_TOP 8
#define PLOT_BOTTOM 96
#define HOUR 3600.0

static const char *const signal_titles[DS_COUNT] = {
    [DS_MX] = "MX queries",
    [DS_A] = "A and AAAA queries",
    [DS_PTR] = "PTR queries",
    [DS_NC] = "SMTP sessions (N_c)",
    [DS_NF] = "from= lines (nf_log)",
    [DS_RELAY_RCPT] = "relay recipients",
    [DS_RELAY_DOMAINS] = "relay recipient domains",
    [DS_ALPHA] = "alpha = N_c / nf_log",
};

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 24px;color:#1f2328;background:#fff}"
    "h1{font-size:22px;margin:16px 0 8px}h2{font-size:17px;margin:24px 0 8px}"
    ".badge{display:inline-block;padding:6px 22px;border-radius:6px;color:#fff;"
    "font-size:26px;font-weight:700;letter-spacing:1px}"
    ".quiet{background:" QUIET_COLOUR "}.loud{background:" LOUD_COLOUR "}"
    ".small{display:inline-block;padding:1px 8px;border-radius:4px;color:#fff;font-weight:600}"
    ".state{display:flex;gap:16px;align-items:center}.state>div{flex:1}.t{white-space:nowrap}"
    ".muted{color:#59636e}.charts{display:flex;flex-wrap:wrap;gap:12px}"
    "figure{margin:0;border:1px solid #d1d9e0;border-radius:6px;padding:6px;width:320px}"
    "figcaption{font-size:13px}"
    "table{border-collapse:collapse;font-size:13px}"
    "th,td{border-bottom:1px solid #d1d9e0;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f6f8fa}td.n{text-align:right}code{overflow-wrap:anywhere}"
    "#throttled td:first-child,#held td:first-child{min-width:16em}";

/* s escaped for HTML text and attribute values, at most max code points ("..." past them). */
/* U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: marks that would turn the text
 * around them, so that a hostile key could make a table row read otherwise. */
static bool bidi_control(const unsigned char *p, size_t seq)
{
    if (seq == 2)
        return p[0] == 0xd8 && p[1] == 0x9c;
    if (seq != 3 || p[0] != 0xe2)
        return false;
    return (p[1] == 0x80 && (p[2] == 0x8e || p[2] == 0x8f || (p[2] >= 0xaa && p[2] <= 0xae))) ||
           (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9);
}

static void put_text(struct http_body *b, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0, shown = 0;

    while (i < len) {
        size_t seq = utf8_sequence(p + i, len - i);

        if (shown == max) {
            http_body_printf(b, "&hellip;");
            return;
        }
        shown++;
        if (seq == 0 || (seq == 1 && (p[i] < 0x20 || p[i] == 0x7f)) || bidi_control(p + i, seq)) {
            http_body_append(b, "\xef\xbf\xbd", 3); /* U+FFFD */
            i += seq ? seq : 1; /* a mark whole; an invalid byte alone */
            continue;
        }
        switch (p[i]) {
        case '&': http_body_append(b, "&amp;", 5); break;
        case '<': http_body_append(b, "&lt;", 4); break;
        case '>': http_body_append(b, "&gt;", 4); break;
        case '"': http_body_append(b, "&quot;", 6); break;
        case '\'': http_body_append(b, "&#39;", 5); break;
        default: http_body_append(b, s + i, seq); break;
        }
        i += seq;
    }
}

/* A time as local time, or "-" for none. */
static void put_time(struct http_body *b, double t)
{
    time_t secs = (time_t)t;
    struct tm tm;
    char text[64];

    if (t <= 0 || localtime_r(&secs, &tm) == NULL ||
        strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        http_body_printf(b, "-");
        return;
    }
    http_body_printf(b, "<span class=\"t\">%s</span>", text);
}

/* A duration for a person: "45s", "12m", "3h05m", "2d04h". */
static void put_duration(struct http_body *b, double seconds)
{
    long s = seconds > 0 ? (long)(seconds + 0.5) : 0;

    if (s < 60)
        http_body_printf(b, "%lds", s);
    else if (s < 3600)
        http_body_printf(b, "%ldm", s / 60);
    else if (s < 86400)
        http_body_printf(b, "%ldh%02ldm", s / 3600, s % 3600 / 60);
    else
        http_body_printf(b, "%ldd%02ldh", s / 86400, s % 86400 / 3600);
}

static void put_badge(struct http_body *b, bool loud, const char *cls)
{
    http_body_printf(b, "<span class=\"%s %s\">%s</span>", cls, loud ? "loud" : "quiet",
                     loud ? "LOUD" : "QUIET");
}

static void put_more(struct http_body *b, unsigned more, unsigned columns)
{
    if (more > 0)
        http_body_printf(b, "<tr><td colspan=\"%u\" class=\"muted\">and %u more</td></tr>",
                         columns, more);
}

/* ------------------------------------------------------------- the head */

static const char *detect_window_name(const struct config *cfg)
{
    for (unsigned w = 0; w < cfg->window_count; w++)
        if (cfg->window_seconds[w] == cfg->detect_window)
            return cfg->window_name[w];
    return "?";
}

static void put_state(struct http_body *b, const struct status_sources *s,
                      const struct detector_view *v, const struct defense_stats *st, double now)
{
    const struct detector *det = defense_detector(s->defense);
    bool loud = v->state == DETECTOR_LOUD;

    http_body_printf(b, "<h1>RelayWatch on ");
    put_text(b, s->cfg->host_id, SHOW_KEY);
    http_body_printf(b, "</h1><div class=\"state\" id=\"state\">");
    put_badge(b, loud, "badge");
    http_body_printf(b, "<div>");
    if (v->since > 0) {
        http_body_printf(b, "%s since ", loud ? "loud" : "quiet");
        put_time(b, v->since);
        http_body_printf(b, " (");
        put_duration(b, now - v->since);
        http_body_printf(b, ")");
    } else {
        http_body_printf(b, "%s since start (", loud ? "loud" : "quiet");
        put_duration(b, s->wall_now - s->started);
        http_body_printf(b, " ago)");
    }
    if (s->cfg->monitor_only)
        http_body_printf(b, "; <b>monitor_only</b>: nothing is refused");
    http_body_printf(b, "<br><span class=\"muted\">");
    put_text(b, detector_reason(det), SHOW_TEXT);
    http_body_printf(b, "</span>");
    if (v->loud_condition && !loud)
        http_body_printf(b, "<br><b>the loud condition holds</b> (since %.0fs)",
                         now - v->condition_since);
    http_body_printf(b, "</div></div>");
    http_body_printf(b, "<p class=\"muted\">detect_window %s; MX figures from %s; %llu minutes "
                        "learned; %llu incidents since start",
                     detect_window_name(s->cfg), detector_dns_source_name(v->dns_source),
                     (unsigned long long)v->samples_learned, (unsigned long long)st->incidents);
    if (s->cfg->tdns_client[0] != '\0') {
        http_body_printf(b, "; tdns_client ");
        put_text(b, s->cfg->tdns_client, SHOW_KEY);
    }
    if (v->missing[0] != '\0') {
        http_body_printf(b, "; missing: ");
        put_text(b, v->missing, SHOW_TEXT);
    }
    http_body_printf(b, "</p>");
}

/* ----------------------------------------------------------- the charts */

/* The smallest 1, 2 or 5 times a power of ten at or above v (v > 0). */
static double nice_ceiling(double v)
{
    double p = pow(10, floor(log10(v)));

    if (v <= p)
        return p;
    if (v <= 2 * p)
        return 2 * p;
    if (v <= 5 * p)
        return 5 * p;
    return 10 * p;
}

static double chart_x(double at, double now)
{
    double x = PLOT_LEFT + (at - (now - HOUR)) / HOUR * (PLOT_RIGHT - PLOT_LEFT);

    return x < PLOT_LEFT ? PLOT_LEFT : x > PLOT_RIGHT ? PLOT_RIGHT : x;
}

static double chart_y(double v, double top)
{
    return PLOT_BOTTOM - v / top * (PLOT_BOTTOM - PLOT_TOP);
}

/* The samples within the last hour, from first on (the ring holds at most an hour). */
static unsigned first_in_hour(const struct signal_history *h, double now)
{
    unsigned i = 0;

    while (i < h->count && signal_history_at(h, i)->at < now - HOUR)
        i++;
    return i;
}

/* One polyline per run of judged values (a value not judged breaks the line). */
static void put_series(struct http_body *b, const struct signal_history *h, unsigned from,
                       int sig, bool baseline, double top, double now)
{
    bool open = false;

    for (unsigned i = from; i < h->count; i++) {
        const struct signal_minute *m = signal_history_at(h, i);
        double v = baseline ? m->baseline[sig] : m->value[sig];

        if (v < 0 || !isfinite(v)) {
            if (open)
                http_body_printf(b, "\"/>");
            open = false;
            continue;
        }
        if (!open)
            http_body_printf(b, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" "
                                "stroke-width=\"%s\"%s points=\"",
                             baseline ? "baseline" : "value", baseline ? "#8c959f" : "#0969da",
                             baseline ? "1.5" : "2",
                             baseline ? " stroke-dasharray=\"5 3\"" : "");
        http_body_printf(b, "%s%.1f,%.1f", open ? " " : "", chart_x(m->at, now),
                         chart_y(v, top));
        open = true;
    }
    if (open)
        http_body_printf(b, "\"/>");
}

/* A signal's figure: alpha, a ratio, to two decimals; counts as they are. */
static void format_value(char *out, size_t len, int sig, double v)
{
    if (sig == DS_ALPHA)
        snprintf(out, len, "%.2f", v);
    else
        snprintf(out, len, "%.4g", v);
}

static void put_chart(struct http_body *b, const struct signal_history *h, int sig,
                      const struct detector_view *v, double now)
{
    unsigned from = first_in_hour(h, now);
    double top = 0;
    const char *name = detector_signal_name(sig);
    char label[32];

    for (unsigned i = from; i < h->count; i++) {
        const struct signal_minute *m = signal_history_at(h, i);

        top = fmax(top, fmax(m->value[sig], m->baseline[sig]));
    }
    /* Headroom above the highest line, so that it does not run along the frame. */
    top = top > 0 && isfinite(top) ? nice_ceiling(top * 1.1) : 1;
    http_body_printf(b, "<figure><figcaption><b>%s</b> <span class=\"muted\">(%s)</span>: ",
                     signal_titles[sig], name);
    if (v->value[sig] >= 0) {
        format_value(label, sizeof(label), sig, v->value[sig]);
        http_body_printf(b, "now %s", label);
    } else {
        http_body_printf(b, "not judged now");
    }
    format_value(label, sizeof(label), sig, v->baseline[sig]);
    http_body_printf(b, ", baseline %s%s</figcaption>", label,
                     v->hourly[sig] ? " (this hour's)" : "");
    http_body_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" "
                        "data-signal=\"%s\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                        "role=\"img\"><title>%s over the last hour</title>",
                     name, CHART_W, CHART_H, CHART_W, CHART_H, name);
    /* Loud minutes first, under everything else. */
    for (unsigned i = from; i < h->count; i++) {
        const struct signal_minute *m = signal_history_at(h, i);
        double x0 = chart_x(m->at, now), x1 = chart_x(m->at + 60, now);

        if (m->loud && x1 > x0)
            http_body_printf(b, "<rect class=\"loud\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
                                "height=\"%d\" fill=\"#ffd8d3\"/>",
                             x0, PLOT_TOP, x1 - x0, PLOT_BOTTOM - PLOT_TOP);
    }
    http_body_printf(b, "<g stroke=\"#d1d9e0\" stroke-width=\"1\">"
                        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/></g>",
                     PLOT_LEFT, PLOT_BOTTOM, PLOT_RIGHT, PLOT_BOTTOM, PLOT_LEFT, PLOT_TOP,
                     PLOT_LEFT, PLOT_BOTTOM);
    snprintf(label, sizeof(label), "%.4g", top);
    http_body_printf(b, "<g font-size=\"11\" fill=\"#59636e\" font-family=\"sans-serif\">"
                        "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>"
                        "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>"
                        "<text x=\"%d\" y=\"%d\">-60 min</text>"
                        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">-30</text>"
                        "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">now</text></g>",
                     PLOT_LEFT - 4, PLOT_TOP + 10, label, PLOT_LEFT - 4, PLOT_BOTTOM, PLOT_LEFT,
                     PLOT_BOTTOM + 16, (PLOT_LEFT + PLOT_RIGHT) / 2, PLOT_BOTTOM + 16,
                     PLOT_RIGHT, PLOT_BOTTOM + 16);
    put_series(b, h, from, sig, true, top, now);
    put_series(b, h, from, sig, false, top, now);
    if (h->count > from) {
        const struct signal_minute *last = signal_history_at(h, h->count - 1);

        if (last->value[sig] >= 0)
            http_body_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#0969da\"/>",
                             chart_x(last->at, now), chart_y(last->value[sig], top));
    } else {
        http_body_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#59636e\" "
                            "text-anchor=\"middle\">no sample yet</text>",
                         (PLOT_LEFT + PLOT_RIGHT) / 2, (PLOT_TOP + PLOT_BOTTOM) / 2);
    }
    http_body_printf(b, "</svg></figure>");
}

static void put_charts(struct http_body *b, const struct status_sources *s,
                       const struct signal_history *h, const struct detector_view *v,
                       double now)
{
    http_body_printf(b, "<h2>Signals, last hour</h2><p class=\"muted\">Each signal per "
                        "detect_window (%s), sampled once a minute: <b style=\"color:#0969da\">"
                        "the value</b>, <b style=\"color:#8c959f\">the learned baseline</b> "
                        "(dashed); loud minutes shaded. Samples: %u.</p>"
                        "<div class=\"charts\">",
                     detect_window_name(s->cfg), h->count - first_in_hour(h, now));
    for (int sig = 0; sig < DS_COUNT; sig++)
        put_chart(b, h, sig, v, now);
    http_body_printf(b, "</div>");
}

/* -------------------------------------------------------------- the lists */

struct rows {
    struct http_body *b;
    double now;
    unsigned shown, more;
};

/* Whether one more row fits (STATUS_PAGE_ROWS); a row past them is only counted. */
static bool row_room(struct rows *t)
{
    if (t->shown == STATUS_PAGE_ROWS) {
        t->more++;
        return false;
    }
    t->shown++;
    return true;
}

/* A list's end: "and N more", or "none" for an empty one, and the table's close. */
static void end_rows(const struct rows *t, unsigned columns)
{
    put_more(t->b, t->more, columns);
    if (t->shown == 0)
        http_body_printf(t->b, "<tr><td colspan=\"%u\" class=\"muted\">none</td></tr>", columns);
    http_body_printf(t->b, "</table>");
}

static bool throttle_row(void *arg, const struct throttle_record *r)
{
    struct rows *t = arg;

    if (!throttle_in_force(r, t->now))
        return true;
    if (!row_room(t))
        return true;
    http_body_printf(t->b, "<tr><td><code>%s:", culprit_kind_name(r->kind));
    put_text(t->b, r->key, SHOW_KEY);
    http_body_printf(t->b, "</code></td><td><code>");
    put_text(t->b, r->action, SHOW_KEY);
    http_body_printf(t->b, "</code></td><td>%s, by ", throttle_source_name(r->source));
    put_text(t->b, r->host, SHOW_KEY);
    http_body_printf(t->b, "</td><td>");
    put_text(t->b, r->reason, SHOW_TEXT);
    http_body_printf(t->b, "</td><td>");
    put_time(t->b, r->since);
    http_body_printf(t->b, "</td><td>");
    if (r->until > 0) {
        put_time(t->b, r->until);
        http_body_printf(t->b, " (in ");
        put_duration(t->b, r->until - t->now);
        http_body_printf(t->b, ")");
    } else {
        http_body_printf(t->b, "until released");
    }
    http_body_printf(t->b, "</td><td class=\"n\">%llu</td></tr>", (unsigned long long)r->hits);
    return true;
}

static void put_throttled(struct http_body *b, const struct status_sources *s)
{
    struct rows t = {b, s->wall_now, 0, 0};

    http_body_printf(b, "<h2>Throttled keys</h2><table id=\"throttled\"><tr><th>key</th>"
                        "<th>action</th><th>source</th><th>reason</th><th>since</th>"
                        "<th>until</th><th>answers</th></tr>");
    throttle_each(defense_throttles_const(s->defense), throttle_row, &t);
    end_rows(&t, 7);
}

static bool held_row(void *arg, const struct quarantine_key_info *k)
{
    struct rows *t = arg;

    if (k->held == 0 && k->asked == 0 && k->released_at == 0)
        return true;
    if (!row_room(t))
        return true;
    http_body_printf(t->b, "<tr><td><code>%s:", culprit_kind_name(k->kind));
    put_text(t->b, k->key, SHOW_KEY);
    http_body_printf(t->b, "</code></td><td class=\"n\">%u</td><td class=\"n\">%u</td><td>",
                     k->held, k->asked);
    put_time(t->b, k->held_since);
    http_body_printf(t->b, "</td><td>");
    if (k->released_at > 0) {
        http_body_printf(t->b, "%u at ", k->released);
        put_time(t->b, k->released_at);
    } else {
        http_body_printf(t->b, "-");
    }
    http_body_printf(t->b, "</td></tr>");
    return true;
}

static void put_held(struct http_body *b, const struct status_sources *s)
{
    struct rows t = {b, s->wall_now, 0, 0};

    http_body_printf(b, "<h2>Held messages</h2>");
    if (s->holds == NULL) {
        http_body_printf(b, "<p class=\"muted\">no quarantine</p>");
        return;
    }
    http_body_printf(b, "<table id=\"held\"><tr><th>key</th><th>held</th><th>being held</th>"
                        "<th>held since</th><th>released</th></tr>");
    quarantine_each(hold_service_ledger(s->holds), s->wall_now, true, held_row, &t);
    end_rows(&t, 5);
}

static void put_incidents(struct http_body *b, const struct status_sources *s,
                          const struct defense_stats *st, double now)
{
    struct defense_incident in;
    unsigned i;

    http_body_printf(b, "<h2>Incidents</h2><p class=\"muted\">%llu since start; the open one "
                        "and the last %d ended ones are kept.</p>",
                     (unsigned long long)st->incidents, DEFENSE_INCIDENTS_KEPT);
    http_body_printf(b, "<table id=\"incidents\"><tr><th>started</th><th>ended</th>"
                        "<th>why</th><th>culprits</th><th>peak per %s</th>"
                        "<th>relay answers</th></tr>",
                     detect_window_name(s->cfg));
    for (i = 0; defense_incident_at(s->defense, i, &in); i++) {
        const uint64_t *ans = in.answers, *would = in.would_have;

        http_body_printf(b, "<tr><td>");
        put_time(b, in.start);
        http_body_printf(b, "</td><td>");
        if (in.end > 0) {
            put_time(b, in.end);
            http_body_printf(b, " (");
            put_duration(b, in.end - in.start);
            http_body_printf(b, ")");
        } else {
            put_badge(b, true, "small");
            http_body_printf(b, " open for ");
            put_duration(b, now - in.start);
        }
        http_body_printf(b, "</td><td>");
        put_text(b, in.start_reason, SHOW_TEXT);
        if (in.end > 0) {
            http_body_printf(b, "<br><span class=\"muted\">");
            put_text(b, in.end_reason, SHOW_TEXT);
            http_body_printf(b, "</span>");
        }
        http_body_printf(b, "</td><td>");
        for (unsigned c = 0; c < in.culprit_count && c < SHOW_CULPRITS; c++) {
            http_body_printf(b, "%s<code>", c ? "<br>" : "");
            put_text(b, in.culprits[c], SHOW_KEY);
            http_body_printf(b, "</code>");
        }
        if (in.culprit_count > SHOW_CULPRITS)
            http_body_printf(b, "<br>and %u more", in.culprit_count - SHOW_CULPRITS);
        if (in.culprit_count == 0)
            http_body_printf(b, "none identified");
        /* Both, whatever monitor_only says now: it may have changed by a reload since. */
        http_body_printf(b, "</td><td>MX %.0f, relay domains %.0f, relay recipients %.0f</td>"
                            "<td>deferred %llu, refused %llu, held %llu",
                         in.peak[DS_MX], in.peak[DS_RELAY_DOMAINS], in.peak[DS_RELAY_RCPT],
                         (unsigned long long)ans[AK_DEFER], (unsigned long long)ans[AK_REJECT],
                         (unsigned long long)ans[AK_HOLD]);
        if (would[AK_DEFER] + would[AK_REJECT] + would[AK_HOLD] > 0)
            http_body_printf(b, "<br>monitor_only, would have: deferred %llu, refused %llu, "
                                "held %llu",
                             (unsigned long long)would[AK_DEFER],
                             (unsigned long long)would[AK_REJECT],
                             (unsigned long long)would[AK_HOLD]);
        http_body_printf(b, "</td></tr>");
    }
    if (i == 0)
        http_body_printf(b, "<tr><td colspan=\"6\" class=\"muted\">none</td></tr>");
    http_body_printf(b, "</table>");
}

static void put_other_hosts(struct http_body *b, const struct status_sources *s)
{
    const struct store_state *st = s->store;
    unsigned shown = 0, more = 0;

    if (!st->shared)
        return;
    http_body_printf(b, "<h2>Other hosts in the store</h2><table id=\"hosts\"><tr><th>host</th>"
                        "<th>state</th><th>last write</th></tr>");
    for (unsigned i = 0; i < st->host_count; i++) {
        const struct store_host *h = &st->hosts[i];

        if (strcmp(h->host, s->cfg->host_id) == 0)
            continue;
        if (shown == STATUS_PAGE_ROWS) {
            more++;
            continue;
        }
        shown++;
        http_body_printf(b, "<tr><td>");
        put_text(b, h->host, SHOW_KEY);
        http_body_printf(b, "</td><td>");
        put_badge(b, strcmp(h->state, "loud") == 0, "small");
        http_body_printf(b, "</td><td>");
        put_time(b, h->updated);
        http_body_printf(b, "</td></tr>");
    }
    put_more(b, more, 3);
    if (shown == 0)
        http_body_printf(b, "<tr><td colspan=\"3\" class=\"muted\">none%s</td></tr>",
                         st->connected ? "" : " (store unreachable)");
    http_body_printf(b, "</table>");
}

/* ---------------------------------------------------------------- the page */

void status_page(struct http_body *b, const struct status_sources *s,
                 const struct signal_history *history, double now)
{
    struct detector_view v;
    struct defense_stats st;

    detector_get_view(defense_detector(s->defense), &v);
    defense_get_stats(s->defense, &st);
    http_body_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                        "<meta http-equiv=\"refresh\" content=\"%d\">"
                        "<meta name=\"viewport\" content=\"width=device-width\">"
                        "<title>%s: ",
                     STATUS_PAGE_REFRESH, v.state == DETECTOR_LOUD ? "LOUD" : "quiet");
    put_text(b, s->cfg->host_id, SHOW_KEY);
    http_body_printf(b, " (RelayWatch)</title><style>%s</style></head><body>", style);
    put_state(b, s, &v, &st, now);
    put_charts(b, s, history, &v, now);
    put_throttled(b, s);
    put_held(b, s);
    put_incidents(b, s, &st, now);
    put_other_hosts(b, s);
    http_body_printf(b, "<p class=\"muted\">RelayWatch %s; this page as of ", RELAYWATCH_VERSION);
    put_time(b, s->wall_now);
    http_body_printf(b, ", refreshed every %d s; the same figures as JSON: GET /status, "
                        "Prometheus: GET /metrics.</p></body></html>\n",
                     STATUS_PAGE_REFRESH);
}
