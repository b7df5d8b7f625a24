/*
 * analyze_svg: the SVG picture of relaywatch analyze (contract in analyze_svg.h).
 *
 * Every line is written straight to the stream in one pass over the points per line (six
 * lines, the shading), grouping on the fly: nothing is allocated and nothing is kept.
 */
#include "analyze_svg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

/* The page: a plot area on the left, the legend on the right. */
#define PAGE_W 1060
#define PAGE_H 780
#define PLOT_L 96
#define PLOT_R 820
#define TOP_Y0 110  /* top panel: DNS queries */
#define TOP_Y1 375
#define BOT_Y0 440  /* bottom panel: N_c and N_f */
#define BOT_Y1 700
#define LEGEND_X 842

/* Points drawn per line, at most (the header's contract says 2000). */
#define ANALYZE_SVG_MAX_DRAWN 2000

/* Strings from outside are cut to what the page can show (code points). */
#define TITLE_MAX 110
#define CLIENTS_MAX 80
#define OFFSET_MAX 16

enum series { S_MX, S_A, S_AAAA, S_PTR, S_NC, S_NF, S_COUNT };

struct series_style {
    const char *colour;
    const char *dash; /* "" or a stroke-dasharray, so that lines differ without colour too */
};
/* Colours far apart from each other and from the shading. */
static const struct series_style styles[S_COUNT] = {
    [S_MX] = {"#d62728", ""},           /* red */
    [S_A] = {"#1f77b4", ""},            /* blue */
    [S_AAAA] = {"#2ca02c", "6,3"},      /* green */
    [S_PTR] = {"#9467bd", "2,3"},       /* purple */
    [S_NC] = {"#ff7f0e", ""},           /* orange */
    [S_NF] = {"#17becf", "6,3"},        /* cyan */
};
/* The loud shading: gold at 35 % over white is (255, 236, 166) on the page. */
#define LOUD_FILL "#ffc000"
#define LOUD_OPACITY "0.35"

struct svg_out {
    FILE *f;
    int err; /* the first write's errno, or 0 */
};

__attribute__((format(printf, 2, 3)))
static void put(struct svg_out *o, const char *fmt, ...)
{
    if (o->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int r = vfprintf(o->f, fmt, ap);
    va_end(ap);
    if (r < 0)
        o->err = errno ? errno : EIO;
}

/* A coordinate with one decimal, without %f (the locale's decimal comma would break it). */
static void put_num(struct svg_out *o, double v)
{
    if (!isfinite(v))
        v = 0;
    if (v > 1e9)
        v = 1e9;
    if (v < -1e9)
        v = -1e9;
    long tenths = lround(v * 10);
    const char *sign = tenths < 0 ? "-" : "";
    if (tenths < 0)
        tenths = -tenths;
    if (tenths % 10)
        put(o, "%s%ld.%ld", sign, tenths / 10, tenths % 10);
    else
        put(o, "%s%ld", sign, tenths / 10);
}

static uint64_t value_of(const struct analyze_point *p, enum series s)
{
    switch (s) {
    case S_MX: return p->mx;
    case S_A: return p->a;
    case S_AAAA: return p->aaaa;
    case S_PTR: return p->ptr;
    case S_NC: return p->nc;
    case S_NF: return p->nf_log;
    default: return 0;
    }
}

/* The length of the UTF-8 sequence at s[0..len) encoding an XML 1.0 character, or 0. */
static size_t xml_char_len(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    if (c < 0x80)
        return (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') && c != 0x7f ? 1 : 0;
    size_t need;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe ||
        cp == 0xffff || (cp >= 0x80 && cp <= 0x9f))
        return 0;
    return need;
}

/* text, escaped for XML character data and attribute values, at most max code points. */
static void put_text(struct svg_out *o, const char *text, size_t max)
{
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    size_t len = strlen((const char *)s), shown = 0;
    for (size_t i = 0; i < len; shown++) {
        if (shown == max) {
            put(o, "\xe2\x80\xa6"); /* an ellipsis: the rest is left out */
            return;
        }
        size_t l = xml_char_len(s + i, len - i);
        if (l == 0) {
            put(o, "\xef\xbf\xbd");
            i++;
            continue;
        }
        switch (s[i]) {
        case '&': put(o, "&amp;"); break;
        case '<': put(o, "&lt;"); break;
        case '>': put(o, "&gt;"); break;
        case '"': put(o, "&quot;"); break;
        case '\'': put(o, "&#39;"); break;
        case '\t': case '\n': case '\r': put(o, " "); break;
        default: put(o, "%.*s", (int)l, (const char *)s + i);
        }
        i += l;
    }
}

/* 35801 as "35,801"; from ten million on, three significant digits and a suffix ("18.4E"),
 * so that a huge count fits the legend. */
static void format_count(char *buf, size_t size, uint64_t v)
{
    static const char *const suffix[] = {"", "k", "M", "G", "T", "P", "E"};
    if (v >= 10000000) {
        int k = 0;
        uint64_t scaled = v; /* v / 1000^k, kept with one more digit for the decimal */
        while (scaled >= 1000 * 1000 && k < 5)
            scaled /= 1000, k++;
        /* now 1000 <= scaled < 1e6 and v ~ scaled * 1000^k; show scaled / 1000 */
        k++;
        uint64_t whole = scaled / 1000, tenths = scaled % 1000 / 100;
        if (whole >= 100)
            snprintf(buf, size, "%llu%s", (unsigned long long)whole, suffix[k]);
        else
            snprintf(buf, size, "%llu.%llu%s", (unsigned long long)whole,
                     (unsigned long long)tenths, suffix[k]);
        return;
    }
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t j = 0;
    for (int i = 0; i < n && j + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = '\0';
}

static const char *period_unit(int period_seconds)
{
    switch (period_seconds) {
    case 86400: return "day";
    case 3600: return "hour";
    case 60: return "minute";
    default: return NULL;
    }
}

/* "per hour", or "per 300 s" for a period of no name. */
static void put_per_period(struct svg_out *o, int period_seconds)
{
    const char *unit = period_unit(period_seconds);
    if (unit)
        put(o, "per %s", unit);
    else
        put(o, "per %d s", period_seconds);
}

/* The time axis and the grouping of periods, shared by every line. */
struct frame {
    double t_min, t_end;  /* the first period's start, the last period's end */
    double period;        /* seconds */
    double group;         /* periods per drawn point (1: none grouped) */
    double span_periods;  /* periods from t_min to t_end */
};

static double x_of(const struct frame *fr, double t)
{
    double w = fr->t_end - fr->t_min;
    if (!(w > 0))
        return PLOT_L;
    return PLOT_L + (t - fr->t_min) / w * (PLOT_R - PLOT_L);
}

/* The drawn point (group) a period belongs to: 0 .. ANALYZE_SVG_MAX_DRAWN. */
static int64_t group_of(const struct frame *fr, int64_t start)
{
    double g = floor(((double)start - fr->t_min) / fr->period / fr->group);
    if (!(g >= 0))
        return 0;
    if (g > ANALYZE_SVG_MAX_DRAWN)
        return ANALYZE_SVG_MAX_DRAWN;
    return (int64_t)g;
}

static double group_start(const struct frame *fr, int64_t g)
{
    return fr->t_min + (double)g * fr->group * fr->period;
}

static double group_end(const struct frame *fr, int64_t g)
{
    double end = group_start(fr, g + 1);
    return end > fr->t_end ? fr->t_end : end;
}

/* A panel's vertical scale: log10(1 + v) from 0 to log10(1 + 10^decades). */
struct panel {
    double y0, y1;   /* top and bottom in page units */
    int decades;
    double top_log;
};

static double y_of(const struct panel *pn, double v)
{
    double f = log10(1 + v) / pn->top_log;
    if (f > 1)
        f = 1;
    return pn->y1 - f * (pn->y1 - pn->y0);
}

static void panel_scale(struct panel *pn, uint64_t max)
{
    double d = ceil(log10(1 + (double)max));
    pn->decades = d < 1 ? 1 : (int)d;
    pn->top_log = log10(1 + pow(10, pn->decades));
}

/* 10^j as 1, 10, 100, 1k ... 100E. */
static void put_decade(struct svg_out *o, int j)
{
    static const char *const suffix[] = {"", "k", "M", "G", "T", "P", "E", "Z", "Y"};
    static const char *const mantissa[] = {"1", "10", "100"};
    if (j < 0 || j >= 27) {
        put(o, "1e%d", j);
        return;
    }
    put(o, "%s%s", mantissa[j % 3], suffix[j / 3]);
}

static void draw_panel_frame(struct svg_out *o, const struct panel *pn, const char *heading,
                             const char *quantity, int period_seconds, bool empty)
{
    /* Heading above the panel, the y axis title turned along the axis. */
    put(o, "<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", PLOT_L,
        (int)pn->y0 - 8, heading);
    double mid = (pn->y0 + pn->y1) / 2;
    put(o, "<text transform=\"translate(22,");
    put_num(o, mid);
    put(o, ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">%s ", quantity);
    put_per_period(o, period_seconds);
    put(o, " (log scale)</text>\n");

    /* Decade grid lines and their values; every other value when there are many. */
    int every = pn->decades > 10 ? 2 : 1;
    double last_label = 1e9; /* y of the label below, so that no two overlap */
    put(o, "<g font-size=\"11\" text-anchor=\"end\">\n");
    for (int j = -1; j <= pn->decades; j++) {
        double v = j < 0 ? 0 : pow(10, j);
        double y = y_of(pn, v);
        if (j >= 0 && j < pn->decades) {
            put(o, "<line x1=\"%d\" x2=\"%d\" y1=\"", PLOT_L, PLOT_R);
            put_num(o, y);
            put(o, "\" y2=\"");
            put_num(o, y);
            put(o, "\" stroke=\"#d0d0d0\" stroke-width=\"1\"/>\n");
        }
        if ((j >= 0 && j % every != 0 && j != pn->decades) || last_label - y < 12)
            continue;
        last_label = y;
        put(o, "<line x1=\"%d\" x2=\"%d\" y1=\"", PLOT_L - 5, PLOT_L);
        put_num(o, y);
        put(o, "\" y2=\"");
        put_num(o, y);
        put(o, "\" stroke=\"#000000\"/>\n<text x=\"%d\" y=\"", PLOT_L - 8);
        put_num(o, y + 4);
        put(o, "\">");
        if (j < 0)
            put(o, "0");
        else
            put_decade(o, j);
        put(o, "</text>\n");
    }
    put(o, "</g>\n");
    put(o, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#000000\"/>\n",
        PLOT_L, (int)pn->y0, PLOT_R - PLOT_L, (int)(pn->y1 - pn->y0));
    if (empty)
        put(o, "<text x=\"%d\" y=\"%d\" font-size=\"20\" fill=\"#808080\" "
               "text-anchor=\"middle\">no data</text>\n",
            (PLOT_L + PLOT_R) / 2, (int)mid);
}

/* Seconds between time ticks: the first of these giving at most 10 ticks. */
static double tick_step(double span)
{
    static const double steps[] = {
        1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
        86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400, 91 * 86400, 182 * 86400,
        364 * 86400,
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span / steps[i] <= 10)
            return steps[i];
    return 364.0 * 86400 * ceil(span / (364.0 * 86400) / 10);
}

/* Time grid lines over both panels and their labels under the bottom one: times of day with
 * the date under the first and wherever the day changes, or dates alone for steps of days. */
static void draw_time_axis(struct svg_out *o, const struct frame *fr, const char *offset_text)
{
    double span = fr->t_end - fr->t_min;
    /* Beyond about ±30,000 years gmtime has nothing to say: no ticks. */
    if (span > 0 && fabs(fr->t_min) < 1e12 && fabs(fr->t_end) < 1e12) {
        double step = tick_step(span);
        double t = ceil(fr->t_min / step) * step;
        int last_day = -1, last_year = -1, last_mon = -1;
        put(o, "<g font-size=\"11\" text-anchor=\"middle\">\n");
        for (int count = 0; t <= fr->t_end && count < 40; t += step, count++) {
            double x = x_of(fr, t);
            for (int panel = 0; panel < 2; panel++) {
                put(o, "<line x1=\"");
                put_num(o, x);
                put(o, "\" x2=\"");
                put_num(o, x);
                put(o, "\" y1=\"%d\" y2=\"%d\" stroke=\"#d0d0d0\"/>\n",
                    panel ? BOT_Y0 : TOP_Y0, panel ? BOT_Y1 + 5 : TOP_Y1);
            }
            time_t tt = (time_t)t;
            struct tm tm;
            if (!gmtime_r(&tt, &tm))
                continue;
            bool new_day = tm.tm_mday != last_day || tm.tm_mon != last_mon ||
                           tm.tm_year != last_year;
            put(o, "<text x=\"");
            put_num(o, x);
            put(o, "\" y=\"%d\">", BOT_Y1 + 18);
            if (step >= 86400)
                put(o, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
            else if (step >= 60)
                put(o, "%02d:%02d", tm.tm_hour, tm.tm_min);
            else
                put(o, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
            put(o, "</text>\n");
            if (step < 86400 && new_day) {
                put(o, "<text x=\"");
                put_num(o, x);
                put(o, "\" y=\"%d\">%04d-%02d-%02d</text>\n", BOT_Y1 + 32, tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday);
            }
            last_day = tm.tm_mday, last_mon = tm.tm_mon, last_year = tm.tm_year;
        }
        put(o, "</g>\n");
    }
    put(o, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">"
           "time as the logs wrote it",
        (PLOT_L + PLOT_R) / 2, BOT_Y1 + 54);
    if (offset_text && *offset_text) {
        put(o, " (UTC");
        put_text(o, offset_text, OFFSET_MAX);
        put(o, ")");
    }
    put(o, "</text>\n");
}

/* The translucent bands of loud periods, runs of consecutive loud groups merged. */
static void draw_loud(struct svg_out *o, const struct frame *fr, const struct analyze_point *p,
                        size_t n)
{
    int64_t first = -1, last = -1;
    put(o, "<g fill=\"" LOUD_FILL "\" fill-opacity=\"" LOUD_OPACITY "\">\n");
    for (size_t i = 0; i <= n; i++) {
        int64_t g = i < n ? group_of(fr, p[i].start) : -1;
        if (i < n && !p[i].loud)
            continue;
        if (i < n && first >= 0 && (g == last || g == last + 1)) {
            last = g;
            continue;
        }
        if (first >= 0) {
            double x0 = x_of(fr, group_start(fr, first)), x1 = x_of(fr, group_end(fr, last));
            if (x1 - x0 < 1)
                x1 = x0 + 1; /* a loud minute among a year's stays visible */
            put(o, "<rect x=\"");
            put_num(o, x0);
            put(o, "\" y=\"%d\" width=\"", TOP_Y0);
            put_num(o, x1 - x0);
            put(o, "\" height=\"%d\"/>\n", BOT_Y1 - TOP_Y0);
        }
        first = last = g;
    }
    put(o, "</g>\n");
}

/* The drawn points of one line, in order: each group of periods and its highest value. */
struct group_iter {
    const struct frame *fr;
    const struct analyze_point *p;
    size_t n, i;
    enum series s;
};

static bool next_group(struct group_iter *it, int64_t *group, uint64_t *max)
{
    if (it->i >= it->n)
        return false;
    *group = group_of(it->fr, it->p[it->i].start);
    *max = value_of(&it->p[it->i], it->s);
    for (it->i++; it->i < it->n && group_of(it->fr, it->p[it->i].start) == *group; it->i++) {
        uint64_t v = value_of(&it->p[it->i], it->s);
        *max = v > *max ? v : *max;
    }
    return true;
}

/* Lines with at most this many points get a marker on each (one day by hour, a month by
 * day): with few points the reader wants to see where the values are. */
#define MARKERS_UP_TO 60

/* One line: a path through the groups' highest values, broken where groups are missing;
 * markers on every point of a short line, and on an isolated point of any (a path of one
 * point draws nothing). */
static void draw_series(struct svg_out *o, const struct frame *fr, const struct panel *pn,
                        const struct analyze_point *p, size_t n, enum series s)
{
    if (n == 0)
        return;
    struct group_iter it = {.fr = fr, .p = p, .n = n, .s = s};
    int64_t g, prev = -2;
    uint64_t max;
    size_t groups = 0;
    put(o, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\"",
        styles[s].colour);
    if (*styles[s].dash)
        put(o, " stroke-dasharray=\"%s\"", styles[s].dash);
    put(o, " d=\"");
    while (next_group(&it, &g, &max)) {
        put(o, g == prev + 1 ? " L" : " M");
        put_num(o, (x_of(fr, group_start(fr, g)) + x_of(fr, group_end(fr, g))) / 2);
        put(o, " ");
        put_num(o, y_of(pn, (double)max));
        prev = g;
        groups++;
    }
    put(o, "\"/>\n");

    /* Markers: a second pass, one group ahead, to know whether a point has a neighbour. */
    bool all = groups <= MARKERS_UP_TO;
    it.i = 0;
    int64_t cur, next = -1;
    uint64_t cur_max, next_max = 0;
    bool have = next_group(&it, &cur, &cur_max);
    prev = -2;
    put(o, "<g fill=\"%s\">\n", styles[s].colour);
    while (have) {
        bool more = next_group(&it, &next, &next_max);
        bool isolated = cur != prev + 1 && (!more || next != cur + 1);
        if (all || isolated) {
            put(o, "<circle cx=\"");
            put_num(o, (x_of(fr, group_start(fr, cur)) + x_of(fr, group_end(fr, cur))) / 2);
            put(o, "\" cy=\"");
            put_num(o, y_of(pn, (double)cur_max));
            put(o, "\" r=\"%s\"/>\n", all ? "3" : "2");
        }
        prev = cur;
        cur = next, cur_max = next_max, have = more;
    }
    put(o, "</g>\n");
}

static void legend_entry(struct svg_out *o, int y, enum series s, const char *name,
                         const char *what, uint64_t peak, int period_seconds)
{
    char count[32];
    format_count(count, sizeof count, peak);
    put(o, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"",
        LEGEND_X, LEGEND_X + 28, y - 4, y - 4, styles[s].colour);
    if (*styles[s].dash)
        put(o, " stroke-dasharray=\"%s\"", styles[s].dash);
    put(o, "/>\n<text x=\"%d\" y=\"%d\" font-size=\"13\">%s <tspan font-size=\"11\">%s</tspan>"
           "</text>\n",
        LEGEND_X + 36, y, name, what);
    put(o, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#505050\">peak %s ", LEGEND_X + 36,
        y + 14, count);
    put_per_period(o, period_seconds);
    put(o, "</text>\n");
}

int analyze_svg_write(FILE *out, const struct analyze_point *p, size_t n, int period_seconds,
                      const char *title, const char *mx_clients, const char *offset_text)
{
    if (!out || (n > 0 && !p)) {
        errno = EINVAL;
        return -1;
    }
    struct svg_out o = {.f = out, .err = 0};
    if (period_seconds < 1)
        period_seconds = 1;

    struct frame fr = {.period = period_seconds, .group = 1};
    uint64_t peak[S_COUNT] = {0};
    size_t loud_periods = 0;
    if (n > 0) {
        double lo = (double)p[0].start, hi = lo;
        for (size_t i = 0; i < n; i++) {
            double t = (double)p[i].start;
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
            for (int s = 0; s < S_COUNT; s++) {
                uint64_t v = value_of(&p[i], (enum series)s);
                peak[s] = v > peak[s] ? v : peak[s];
            }
            loud_periods += p[i].loud;
        }
        fr.t_min = lo;
        fr.t_end = hi + fr.period;
        fr.span_periods = (fr.t_end - fr.t_min) / fr.period;
        if (fr.span_periods > ANALYZE_SVG_MAX_DRAWN)
            fr.group = ceil(fr.span_periods / ANALYZE_SVG_MAX_DRAWN);
    }
    struct panel top = {.y0 = TOP_Y0, .y1 = TOP_Y1}, bottom = {.y0 = BOT_Y0, .y1 = BOT_Y1};
    uint64_t top_max = 0, bottom_max = peak[S_NC] > peak[S_NF] ? peak[S_NC] : peak[S_NF];
    for (int s = S_MX; s <= S_PTR; s++)
        top_max = peak[s] > top_max ? peak[s] : top_max;
    panel_scale(&top, top_max);
    panel_scale(&bottom, bottom_max);

    put(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n<title>",
        PAGE_W, PAGE_H, PAGE_W, PAGE_H);
    put_text(&o, title, TITLE_MAX);
    put(&o, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", PAGE_W, PAGE_H);

    /* Title and subtitle: whose queries, the period, the time covered, any grouping. */
    put(&o, "<text x=\"%d\" y=\"30\" font-size=\"19\" font-weight=\"bold\">", PLOT_L);
    put_text(&o, title, TITLE_MAX);
    put(&o, "</text>\n<text x=\"%d\" y=\"52\" font-size=\"12\" fill=\"#303030\">"
            "DNS queries of ",
        PLOT_L);
    put_text(&o, mx_clients && *mx_clients ? mx_clients : "(no client named)", CLIENTS_MAX);
    put(&o, "; one point ");
    put_per_period(&o, period_seconds);
    char count[32];
    format_count(count, sizeof count, n);
    put(&o, ", %s period%s", count, n == 1 ? "" : "s");
    format_count(count, sizeof count, loud_periods);
    put(&o, ", %s loud</text>\n", count);
    if (fr.group > 1) {
        put(&o, "<text x=\"%d\" y=\"68\" font-size=\"12\" fill=\"#303030\">"
                "Too many periods to draw one by one: each point is the highest of a group of "
                "%.0f periods; a group is shaded if any of its periods is loud.</text>\n",
            PLOT_L, fr.group);
    }

    /* The shading first, so that grid and lines stay on top of it. */
    if (n > 0)
        draw_loud(&o, &fr, p, n);
    draw_panel_frame(&o, &top, "The mail host's DNS queries, by type", "queries",
                     period_seconds, n == 0);
    draw_panel_frame(&o, &bottom, "SMTP connections N<tspan font-size=\"10\" baseline-shift=\"sub\">c</tspan>"
                     " and from= lines N"
                     "<tspan font-size=\"10\" baseline-shift=\"sub\">f</tspan>",
                     "connections, messages", period_seconds, n == 0);
    draw_time_axis(&o, &fr, offset_text); /* n == 0: its title alone */
    for (int s = 0; s < S_COUNT; s++)
        draw_series(&o, &fr, s < S_NC ? &top : &bottom, p, n, (enum series)s);

    /* The legend, beside each panel; the shading's entry under the top panel's lines. */
    legend_entry(&o, TOP_Y0 + 14, S_MX, "MX", "queries", peak[S_MX], period_seconds);
    legend_entry(&o, TOP_Y0 + 50, S_A, "A", "queries", peak[S_A], period_seconds);
    legend_entry(&o, TOP_Y0 + 86, S_AAAA, "AAAA", "queries", peak[S_AAAA], period_seconds);
    legend_entry(&o, TOP_Y0 + 122, S_PTR, "PTR", "queries", peak[S_PTR], period_seconds);
    int ly = TOP_Y0 + 160;
    put(&o, "<rect x=\"%d\" y=\"%d\" width=\"28\" height=\"16\" fill=\"" LOUD_FILL
            "\" fill-opacity=\"" LOUD_OPACITY "\" stroke=\"#c09000\"/>\n"
            "<text x=\"%d\" y=\"%d\" font-size=\"13\">loud period</text>\n"
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#505050\">the relay detector "
            "fired</text>\n",
        LEGEND_X, ly - 12, LEGEND_X + 36, ly, LEGEND_X + 36, ly + 14);
    legend_entry(&o, BOT_Y0 + 14, S_NC, "N<tspan font-size=\"10\" baseline-shift=\"sub\">c</tspan>",
                 "SMTP connections", peak[S_NC], period_seconds);
    legend_entry(&o, BOT_Y0 + 50, S_NF, "N<tspan font-size=\"10\" baseline-shift=\"sub\">f</tspan>",
                 "from= lines", peak[S_NF], period_seconds);
    put(&o, "</svg>\n");

    if (!o.err && fflush(out) != 0)
        o.err = errno ? errno : EIO;
    if (!o.err && ferror(out))
        o.err = EIO;
    if (o.err) {
        errno = o.err;
        return -1;
    }
    return 0;
}
