/*
 * analyze: relaywatch analyze (see analyze.h).
 *
 * Files are read one after the other in the order log_input_order gives
 * (their first time), those named only by --querylog first: the backtest
 * replays the maillog through the daemon's clock, and at each second it
 * needs the mail host's upstream DNS counts of the window ending then, so
 * the query log must be in before the maillog is replayed.  A file named
 * by both (a combined syslog) is read once, with both kinds of line in
 * time order already.
 *
 * journalctl -o json lines ({"MESSAGE": ...} objects, one per line) are
 * recognised by their first byte and turned into the short-iso line
 * journalctl would print, in UTC.
 */
#include "analyze.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "analysis.h"
#include "analyze_svg.h"
#include "backtest.h"
#include "config.h"
#include "json_text.h"
#include "log_input.h"
#include "xalloc.h"

#define SHOWN_UNPARSED 5
#define PROGRESS_LINES (1u << 20)

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line saying what is wrong: -1 (analyze_option's usage error). */
static int usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "relaywatch analyze: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(relaywatch --help shows the usage)\n");
    return -1;
}

int analyze_option(struct analyze_options *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    static const char *const with_value[] = {"--maillog", "--querylog", "--mx-client", "--by",
                                             "--from", "--to", "--year", "--svg"};
    const char *v = NULL;

    if (strcmp(a, "--backtest") == 0) {
        o->backtest = true;
        return 1;
    }
    if (strcmp(a, "--json") == 0 || strcmp(a, "--csv") == 0) {
        if ((a[2] == 'j' && o->csv) || (a[2] == 'c' && o->json))
            return usage("%s: --json and --csv exclude each other", a);
        *(a[2] == 'j' ? &o->json : &o->csv) = true;
        return 1;
    }
    for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
        size_t n = strlen(with_value[k]);

        if (strncmp(a, with_value[k], n) != 0 || (a[n] != '\0' && a[n] != '='))
            continue;
        if (a[n] == '=') {
            v = a + n + 1;
        } else if (*i + 1 < argc) {
            v = argv[++*i];
        } else {
            return usage("option %s needs an argument", with_value[k]);
        }
        if (k <= 1) { /* a file */
            size_t f;

            for (f = 0; f < o->file_count && strcmp(o->files[f], v) != 0; f++)
                ;
            if (f == o->file_count) {
                if (f == ANALYZE_MAX_FILES)
                    return usage("more than %s files", "1024");
                o->files[f] = v;
                o->querylog_only[f] = k == 1;
                o->file_count++;
            } else if (k == 0) {
                o->querylog_only[f] = false;
            }
        } else if (k == 2) {
            if (o->mx_client_count == ANALYZE_MAX_CLIENTS)
                return usage("more than %s --mx-client options", "64");
            o->mx_clients[o->mx_client_count++] = v;
        } else {
            const char **slot[] = {&o->by, &o->from, &o->to, &o->year, &o->svg};

            *slot[k - 3] = v;
        }
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ times */

/* "YYYY-MM-DD[(T| )HH:MM[:SS]]" as analysis_seconds. */
static bool parse_when(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    char sep;

    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
        return false;
    s += n;
    if (*s != '\0') {
        if (sscanf(s, "%c%2d:%2d%n", &sep, &h, &mi, &n) != 3 || (sep != 'T' && sep != ' '))
            return false;
        s += n;
        if (*s == ':' && sscanf(s, ":%2d%n", &sec, &n) == 1)
            s += n;
        if (*s != '\0')
            return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 ||
        mi < 0 || sec < 0)
        return false;
    *out = analysis_seconds(y, mo, d, h, mi, sec);
    return true;
}

static void format_time(int64_t t, bool has_offset, int offset, char *out, size_t room)
{
    int y, mo, d, h, mi, s;

    analysis_fields(t, &y, &mo, &d, &h, &mi, &s);
    if (!has_offset)
        snprintf(out, room, "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d, h, mi, s);
    else if (offset == 0)
        snprintf(out, room, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, s);
    else
        snprintf(out, room, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo, d, h, mi, s,
                 offset < 0 ? '-' : '+', abs(offset) / 60, abs(offset) % 60);
}

/* The year and month year-less lines of a file are counted back from. */
static void file_reference(const struct log_file *f, int year_option, int *year, int *month)
{
    struct tm tm;

    if (year_option > 0) {
        *year = year_option;
        *month = 12;
        return;
    }
    localtime_r(&f->mtime, &tm);
    *year = tm.tm_year + 1900;
    *month = tm.tm_mon + 1;
}

/* Minutes east of UTC here at that time (unbound's own log carries only a Unix time). */
static int local_offset(int64_t unix_seconds)
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL)
        return 0;
    return (int)(tm.tm_gmtoff / 60);
}

/* ------------------------------------------------------------ journald */

/*
 * A journalctl -o json line as the short-iso line journalctl prints (UTC): into buf, its
 * length; 0 if the object lacks what a log line needs.
 */
static size_t journal_line(const char *text, size_t len, char *buf, size_t room)
{
    json_error_t error;
    json_t *o = json_loadb(text, len, JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &error);
    const char *ident, *pid, *host, *message, *usec;
    time_t secs;
    struct tm tm;
    int n = 0;

    if (o == NULL)
        return 0;
    usec = json_string_value(json_object_get(o, "__REALTIME_TIMESTAMP"));
    message = json_string_value(json_object_get(o, "MESSAGE"));
    ident = json_string_value(json_object_get(o, "SYSLOG_IDENTIFIER"));
    pid = json_string_value(json_object_get(o, "SYSLOG_PID"));
    if (pid == NULL)
        pid = json_string_value(json_object_get(o, "_PID"));
    host = json_string_value(json_object_get(o, "_HOSTNAME"));
    if (usec != NULL && message != NULL) {
        long long us = strtoll(usec, NULL, 10);

        secs = (time_t)(us / 1000000);
        gmtime_r(&secs, &tm);
        n = snprintf(buf, room, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld+00:00 %s %s%s%s%s: %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, us % 1000000, host ? host : "localhost", ident ? ident : "unknown",
                     pid ? "[" : "", pid ? pid : "", pid ? "]" : "", message);
    }
    json_decref(o);
    return n > 0 && (size_t)n < room ? (size_t)n : 0;
}

/* ------------------------------------------------------------ reading */

struct run {
    const struct analyze_options *o;
    struct analysis *analysis;
    struct backtest *backtest;
    struct analysis_file file;
    int year_option;
    unsigned shown_unparsed;
    uint64_t cut;
    bool progress;
    uint64_t lines;
    bool named;          /* --mx-client or tdns_client */
    int64_t chosen_minute; /* when the backtest's client was last chosen */
    const char *clients[ANALYZE_MAX_CLIENTS];
    size_t client_count;
    bool chosen; /* the client with the most MX queries, not named */
    char journal[LOG_INPUT_LINE_MAX + 512];
};

static const char *shown_path(const struct log_file *f)
{
    return strcmp(f->path, "-") == 0 ? "standard input" : f->path;
}

static void show_unparsed(struct run *r, const struct log_input_line *l)
{
    char shown[121];
    size_t n = 0;

    if (r->shown_unparsed++ >= SHOWN_UNPARSED)
        return;
    for (size_t i = 0; i < l->len && n < sizeof(shown) - 1; i++)
        shown[n++] = l->text[i] >= 0x20 && l->text[i] < 0x7f ? l->text[i] : '?';
    shown[n] = '\0';
    fprintf(stderr, "relaywatch analyze: %s:%lu: not a log line it can read: %s%s\n",
            shown_path(l->file), l->number, shown, l->len > n ? "..." : "");
}

/* The mail host's DNS clients, unless named: the one with the most MX queries so far. */
static void choose_clients(struct run *r)
{
    uint64_t mx = 0;

    if (r->named)
        return;
    /* A client that asked no MX is no mail host, however many other queries it made. */
    r->client_count = analysis_top_clients(r->analysis, r->clients, &mx, 1) == 1 && mx > 0;
    r->chosen = r->client_count == 1;
}

static int take_line(const struct log_input_line *l, void *arg)
{
    struct run *r = arg;
    struct analysis_line line;
    const char *text = l->text;
    size_t len = l->len;

    if (l->cut)
        r->cut++;
    if (len > 0 && text[0] == '{') {
        size_t n = journal_line(text, len, r->journal, sizeof(r->journal));

        if (n > 0) {
            text = r->journal;
            len = n;
        }
    }
    if (analysis_take(r->analysis, &r->file, text, len, &line) == AL_UNPARSED)
        show_unparsed(r, l);
    else if (r->backtest != NULL && line.kind == AL_MAILLOG && line.in_range) {
        /* A combined log brings its queries along with the mail: the choice is looked at
         * again each minute until made. */
        if (!r->named && r->client_count == 0 && line.time / 60 != r->chosen_minute) {
            r->chosen_minute = line.time / 60;
            choose_clients(r);
            backtest_set_dns_clients(r->backtest, r->clients, r->client_count);
        }
        backtest_line(r->backtest, &line);
    }
    if (r->progress && ++r->lines % PROGRESS_LINES == 0)
        fprintf(stderr, "\r%s: %lu lines ", shown_path(l->file), l->number);
    return 0;
}

/* For log_input_order: a line's time (year-less lines by the file's reference year). */
static int line_time(const struct log_input_line *l, void *arg, int64_t *t)
{
    struct run *r = arg;
    struct analysis_file f;
    struct log_line h;
    struct query_log_entry q;
    const struct log_time *lt = NULL;
    int year, month;

    if (log_line_parse(l->text, l->len, &h) != LOG_LINE_UNPARSED)
        lt = &h.time;
    else if (query_log_parse(l->text, l->len, &q) == QUERY_LOG_QUERY && q.time.present)
        lt = &q.time;
    else if (l->len > 0 && l->text[0] == '{') {
        size_t n = journal_line(l->text, l->len, r->journal, sizeof(r->journal));

        if (n > 0 && log_line_parse(r->journal, n, &h) != LOG_LINE_UNPARSED)
            lt = &h.time;
    }
    if (lt == NULL || !lt->present)
        return 0;
    file_reference(l->file, r->year_option, &year, &month);
    analysis_file_init(&f, year, month);
    /* Order by the instant when the line says it; by the time as written otherwise. */
    *t = analysis_time(&f, lt) - (lt->has_offset ? lt->offset_minutes * 60 : 0);
    return 1;
}

/* ------------------------------------------------------------ output */

static json_t *count(uint64_t n)
{
    return json_integer((json_int_t)n);
}

static bool alpha_of(const struct analysis_period *p, double *alpha)
{
    if (p->nf_log == 0)
        return false;
    *alpha = (double)p->nc / (double)p->nf_log;
    return true;
}

static const char *period_label(const char *by, const struct analysis_period *p, char *buf,
                                size_t room)
{
    char full[40];

    format_time(p->start, p->has_offset, p->offset_minutes, full, sizeof(full));
    if (strcmp(by, "day") == 0)
        snprintf(buf, room, "%.10s", full);
    else
        snprintf(buf, room, "%.10s %.5s", full, full + 11);
    return buf;
}

static void print_text(struct run *r, const struct analysis_period *p, size_t n, const bool *loud,
                       const char *by)
{
    const struct analysis_input *in = analysis_input(r->analysis);
    struct analysis_period total = {0};
    char label[40], alpha_text[16];
    double alpha;

    printf("relaywatch analyze: %zu period%s by %s", n, n == 1 ? "" : "s", by);
    if (r->client_count > 0) {
        printf("; the mail host's DNS queries: client");
        for (size_t i = 0; i < r->client_count; i++)
            printf("%s %s", i ? "," : "", r->clients[i]);
        printf("%s", r->chosen ? " (the most MX queries; --mx-client names another)" : "");
    } else {
        printf("; no DNS queries of the mail host (no query log, or its client sent none)");
    }
    printf("\n\n%-16s %9s %9s %9s %8s %6s %9s %9s %9s %9s%s\n", "period", "nc", "nf", "nf_log",
           "refused", "alpha", "mx", "a", "aaaa", "ptr", r->backtest ? "  loud" : "");
    for (size_t i = 0; i <= n; i++) {
        const struct analysis_period *q = i < n ? &p[i] : &total;

        if (i == n) {
            if (n < 2)
                break;
            snprintf(label, sizeof(label), "total");
        } else {
            period_label(by, q, label, sizeof(label));
            total.nc += q->nc;
            total.nf += q->nf;
            total.nf_log += q->nf_log;
            total.refused += q->refused;
            for (int t = 0; t < AD_COUNT; t++)
                total.dns[t] += q->dns[t];
        }
        if (alpha_of(q, &alpha))
            snprintf(alpha_text, sizeof(alpha_text), "%.2f", alpha);
        else
            snprintf(alpha_text, sizeof(alpha_text), "-");
        printf("%-16s %9llu %9llu %9llu %8llu %6s %9llu %9llu %9llu %9llu%s\n", label,
               (unsigned long long)q->nc, (unsigned long long)q->nf,
               (unsigned long long)q->nf_log, (unsigned long long)q->refused, alpha_text,
               (unsigned long long)q->dns[AD_MX], (unsigned long long)q->dns[AD_A],
               (unsigned long long)q->dns[AD_AAAA], (unsigned long long)q->dns[AD_PTR],
               r->backtest ? (i < n && loud[i] ? "  LOUD" : "") : "");
    }
    printf("\ninput: %llu lines: %llu maillog, %llu query log, %llu other, %llu unparsed\n",
           (unsigned long long)in->lines, (unsigned long long)in->maillog_lines,
           (unsigned long long)in->querylog_lines, (unsigned long long)in->other_lines,
           (unsigned long long)in->unparsed_lines);
    if (r->backtest != NULL) {
        size_t ni, nl;
        uint64_t dropped;
        const struct backtest_incident *inc = backtest_incidents(r->backtest, &ni);
        const struct backtest_log_line *log = backtest_log(r->backtest, &nl, &dropped);
        struct backtest_stats st;
        char a[40], b[40];

        backtest_get_stats(r->backtest, &st);
        printf("\nbacktest: %zu incident%s; %llu RCPTs replayed (%llu relay), answered DEFER %llu, "
               "REJECT %llu, HOLD %llu, other %llu; fast-path stops %llu\n",
               ni, ni == 1 ? "" : "s", (unsigned long long)st.rcpts,
               (unsigned long long)st.relay_rcpts, (unsigned long long)st.answers[AK_DEFER],
               (unsigned long long)st.answers[AK_REJECT], (unsigned long long)st.answers[AK_HOLD],
               (unsigned long long)st.answers[AK_OTHER], (unsigned long long)st.fast_stops);
        for (size_t i = 0; i < ni; i++) {
            format_time(inc[i].start, inc[i].has_offset, inc[i].offset_minutes, a, sizeof(a));
            if (inc[i].end != 0)
                format_time(inc[i].end, inc[i].end_has_offset, inc[i].end_offset_minutes, b, sizeof(b));
            printf("  incident %zu: %s to %s\n    %s\n", i + 1, a,
                   inc[i].end != 0 ? b : "the end of the logs (still loud)", inc[i].reason);
            if (inc[i].end != 0)
                printf("    ended: %s\n", inc[i].end_reason);
            printf("    culprits:");
            for (unsigned c = 0; c < inc[i].culprit_count; c++)
                printf(" %s", inc[i].culprits[c]);
            printf("%s\n", inc[i].culprit_count ? "" : " none named");
        }
        if (nl > 0)
            printf("\nthe daemon would have logged:\n");
        for (size_t i = 0; i < nl; i++) {
            format_time(log[i].time, log[i].has_offset, log[i].offset_minutes, a, sizeof(a));
            printf("  %s %s: %s\n", a, log[i].level, log[i].text);
        }
        if (dropped > 0)
            printf("  ... and %llu more lines\n", (unsigned long long)dropped);
    }
}

static void print_csv(const struct analysis_period *p, size_t n, const bool *loud)
{
    char start[40];
    double alpha;

    printf("start,nc,nf,nf_log,refused,alpha,mx,a,aaaa,ptr,loud\n");
    for (size_t i = 0; i < n; i++) {
        format_time(p[i].start, p[i].has_offset, p[i].offset_minutes, start, sizeof(start));
        printf("%s,%llu,%llu,%llu,%llu,", start, (unsigned long long)p[i].nc,
               (unsigned long long)p[i].nf, (unsigned long long)p[i].nf_log,
               (unsigned long long)p[i].refused);
        if (alpha_of(&p[i], &alpha))
            printf("%.4f", alpha);
        printf(",%llu,%llu,%llu,%llu,%s\n", (unsigned long long)p[i].dns[AD_MX],
               (unsigned long long)p[i].dns[AD_A], (unsigned long long)p[i].dns[AD_AAAA],
               (unsigned long long)p[i].dns[AD_PTR], loud[i] ? "true" : "false");
    }
}

static int print_json(struct run *r, const struct analysis_period *p, size_t n, const bool *loud,
                      const char *by)
{
    const struct analysis_input *in = analysis_input(r->analysis);
    json_t *root = json_object(), *clients = json_array(), *periods = json_array(),
           *incidents = json_array(), *input = json_object();
    char start[40];
    double alpha;
    int rc;

    for (size_t i = 0; i < r->client_count; i++)
        json_add_item(clients, json_textz(r->clients[i]));
    json_set_field(root, "mx_clients", clients);
    json_set_field(root, "mx_client_chosen", json_boolean(r->chosen));
    json_set_field(root, "by", json_textz(by));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object(), *dns = json_object();

        format_time(p[i].start, p[i].has_offset, p[i].offset_minutes, start, sizeof(start));
        json_set_field(o, "start", json_textz(start));
        json_set_field(o, "nc", count(p[i].nc));
        json_set_field(o, "nf", count(p[i].nf));
        json_set_field(o, "nf_log", count(p[i].nf_log));
        json_set_field(o, "refused", count(p[i].refused));
        json_set_field(o, "alpha", alpha_of(&p[i], &alpha) ? json_real(alpha) : json_null());
        json_set_field(dns, "mx", count(p[i].dns[AD_MX]));
        json_set_field(dns, "a", count(p[i].dns[AD_A]));
        json_set_field(dns, "aaaa", count(p[i].dns[AD_AAAA]));
        json_set_field(dns, "ptr", count(p[i].dns[AD_PTR]));
        json_set_field(o, "dns", dns);
        json_set_field(o, "loud", json_boolean(loud[i]));
        json_set_field(o, "lines", count(p[i].lines));
        json_add_item(periods, o);
    }
    json_set_field(root, "periods", periods);
    if (r->backtest != NULL) {
        size_t ni;
        const struct backtest_incident *inc = backtest_incidents(r->backtest, &ni);
        struct backtest_stats st;
        json_t *bt = json_object(), *answers = json_object();

        for (size_t i = 0; i < ni; i++) {
            json_t *o = json_object(), *cl = json_array();

            format_time(inc[i].start, inc[i].has_offset, inc[i].offset_minutes, start, sizeof(start));
            json_set_field(o, "start", json_textz(start));
            if (inc[i].end != 0) {
                format_time(inc[i].end, inc[i].end_has_offset, inc[i].end_offset_minutes, start, sizeof(start));
                json_set_field(o, "end", json_textz(start));
                json_set_field(o, "end_reason", json_textz(inc[i].end_reason));
            } else {
                json_set_field(o, "end", json_null());
            }
            json_set_field(o, "reason", json_textz(inc[i].reason));
            for (unsigned c = 0; c < inc[i].culprit_count; c++)
                json_add_item(cl, json_textz(inc[i].culprits[c]));
            json_set_field(o, "culprits", cl);
            json_add_item(incidents, o);
        }
        backtest_get_stats(r->backtest, &st);
        json_set_field(bt, "rcpts", count(st.rcpts));
        json_set_field(bt, "relay_rcpts", count(st.relay_rcpts));
        for (int k = 0; k < AK_COUNT; k++)
            json_set_field(answers, action_kind_name((enum action_kind)k), count(st.answers[k]));
        json_set_field(bt, "answers", answers);
        json_set_field(bt, "fast_stops", count(st.fast_stops));
        if (st.first_stop != 0) {
            format_time(st.first_stop, st.first_stop_has_offset, st.first_stop_offset_minutes, start, sizeof(start));
            json_set_field(bt, "first_stop", json_textz(start));
        } else {
            json_set_field(bt, "first_stop", json_null());
        }
        json_set_field(root, "backtest", bt);
    }
    json_set_field(root, "incidents", incidents);
    json_set_field(input, "lines", count(in->lines));
    json_set_field(input, "maillog_lines", count(in->maillog_lines));
    json_set_field(input, "querylog_lines", count(in->querylog_lines));
    json_set_field(input, "other_lines", count(in->other_lines));
    json_set_field(input, "unparsed_lines", count(in->unparsed_lines));
    json_set_field(input, "cut_lines", count(r->cut));
    json_set_field(root, "input", input);
    rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    putchar('\n');
    return rc;
}

static int write_svg(struct run *r, const char *path, const struct analysis_period *p, size_t n,
                     const bool *loud, int64_t period_seconds)
{
    struct analyze_point *pts = xcalloc(n + 1, sizeof(*pts));
    char clients[ANALYZE_MAX_CLIENTS * 48] = "", offset[16] = "";
    FILE *f;
    int rc;

    for (size_t i = 0; i < n; i++) {
        pts[i].start = p[i].start;
        pts[i].nc = p[i].nc;
        pts[i].nf = p[i].nf;
        pts[i].nf_log = p[i].nf_log;
        pts[i].mx = p[i].dns[AD_MX];
        pts[i].a = p[i].dns[AD_A];
        pts[i].aaaa = p[i].dns[AD_AAAA];
        pts[i].ptr = p[i].dns[AD_PTR];
        pts[i].loud = loud[i];
    }
    for (size_t i = 0; i < r->client_count; i++)
        snprintf(clients + strlen(clients), sizeof(clients) - strlen(clients), "%s%s",
                 i ? ", " : "", r->clients[i]);
    if (n > 0 && p[0].has_offset) {
        int o = p[0].offset_minutes;

        snprintf(offset, sizeof(offset), "%c%02d:%02d", o < 0 ? '-' : '+', abs(o) / 60, abs(o) % 60);
    }
    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "relaywatch analyze: %s: %s\n", path, strerror(errno));
        free(pts);
        return 1;
    }
    rc = analyze_svg_write(f, pts, n, (int)period_seconds, "relaywatch analyze", clients, offset);
    if (fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "relaywatch analyze: %s: %s\n", path, strerror(errno));
    free(pts);
    return rc != 0 ? 1 : 0;
}

/* ------------------------------------------------------------ the command */

int analyze_run(const struct config *cfg, const struct analyze_options *o)
{
    struct analysis_settings s = {0};
    struct run *r;
    struct log_file *files;
    const char **paths;
    char err[512];
    const char *by = o->by != NULL ? o->by : "day";
    struct analysis_period *periods;
    size_t n = 0;
    bool *loud;
    int rc = 0;

    if (o->file_count == 0) {
        fprintf(stderr, "relaywatch analyze: no input: name files with --maillog and --querylog "
                        "(- for standard input)\n");
        return 2;
    }
    if (strcmp(by, "day") == 0)
        s.period_seconds = 86400;
    else if (strcmp(by, "hour") == 0)
        s.period_seconds = 3600;
    else if (strcmp(by, "minute") == 0)
        s.period_seconds = 60;
    else
        return usage("--by %s: day, hour or minute", by), 2;
    if (o->from != NULL && !(s.has_from = parse_when(o->from, &s.from)))
        return usage("--from %s: not YYYY-MM-DD[THH:MM[:SS]]", o->from), 2;
    if (o->to != NULL && !(s.has_to = parse_when(o->to, &s.to)))
        return usage("--to %s: not YYYY-MM-DD[THH:MM[:SS]]", o->to), 2;

    r = xcalloc(1, sizeof(*r));
    r->o = o;
    if (o->year != NULL) {
        char *end;
        long y = strtol(o->year, &end, 10);

        if (*end != '\0' || y < 1970 || y > 9999) {
            free(r);
            return usage("--year %s: a year from 1970 to 9999", o->year), 2;
        }
        r->year_option = (int)y;
    }
    for (size_t i = 0; i < o->mx_client_count; i++)
        r->clients[r->client_count++] = o->mx_clients[i];
    if (r->client_count == 0 && cfg->tdns_client[0] != '\0')
        r->clients[r->client_count++] = cfg->tdns_client;
    r->named = r->client_count > 0;
    r->chosen_minute = INT64_MIN;
    s.mx_clients = r->client_count > 0 ? r->clients : NULL;
    s.mx_client_count = r->client_count;
    s.per_minute_dns = o->backtest;
    s.local_offset = local_offset;
    r->analysis = analysis_new(&s);
    if (o->backtest)
        r->backtest = backtest_new(cfg, r->analysis);
    r->progress = isatty(STDERR_FILENO);

    files = xcalloc(o->file_count, sizeof(*files));
    paths = xcalloc(o->file_count, sizeof(*paths));
    /* Query logs alone first (see the top of this file), each group by first time. */
    {
        size_t q = 0;

        for (size_t i = 0; i < o->file_count; i++)
            if (o->querylog_only[i])
                paths[q++] = o->files[i];
        if (log_input_order(paths, q, line_time, r, files, err, sizeof(err)) != 0)
            rc = 1;
        for (size_t i = 0, m = q; i < o->file_count; i++)
            if (!o->querylog_only[i])
                paths[m++] = o->files[i];
        if (rc == 0 && log_input_order(paths + q, o->file_count - q, line_time, r, files + q, err,
                                       sizeof(err)) != 0)
            rc = 1;
    }
    for (size_t i = 0; rc == 0 && i < o->file_count; i++) {
        int year, month;

        file_reference(&files[i], r->year_option, &year, &month);
        analysis_file_init(&r->file, year, month);
        if (log_input_read(&files[i], take_line, r, err, sizeof(err)) != 0)
            rc = 1;
    }
    if (r->progress && r->lines >= PROGRESS_LINES)
        fprintf(stderr, "\r%*s\r", 60, "");
    if (rc != 0) {
        fprintf(stderr, "relaywatch analyze: %s\n", err);
        goto out;
    }
    if (r->shown_unparsed > SHOWN_UNPARSED)
        fprintf(stderr, "relaywatch analyze: %u more lines it cannot read (see unparsed_lines)\n",
                r->shown_unparsed - SHOWN_UNPARSED);
    {
        const char *replayed = r->client_count == 1 ? r->clients[0] : NULL;

        choose_clients(r);
        /* A combined log: the backtest chose its mail host from the queries before the mail. */
        if (r->backtest != NULL && r->chosen && replayed != NULL &&
            strcmp(replayed, r->clients[0]) != 0)
            fprintf(stderr, "relaywatch analyze: the backtest took %s as the mail host (the most "
                            "MX queries before the mail began); the whole log says %s: name it "
                            "with --mx-client\n", replayed, r->clients[0]);
    }
    if (r->backtest != NULL)
        backtest_finish(r->backtest);
    periods = analysis_periods(r->analysis, r->clients, r->client_count, &n);
    loud = xcalloc(n + 1, sizeof(*loud));
    for (size_t i = 0; r->backtest != NULL && i < n; i++)
        loud[i] = backtest_loud(r->backtest, periods[i].start, periods[i].start + s.period_seconds);
    if (o->json)
        rc = print_json(r, periods, n, loud, by) != 0 ? 1 : 0;
    else if (o->csv)
        print_csv(periods, n, loud);
    else
        print_text(r, periods, n, loud, by);
    if (rc == 0 && o->svg != NULL)
        rc = write_svg(r, o->svg, periods, n, loud, s.period_seconds);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "relaywatch analyze: standard output: %s\n", strerror(errno));
        rc = 1;
    }
    free(loud);
    free(periods);
out:
    backtest_free(r->backtest);
    analysis_free(r->analysis);
    free(files);
    free(paths);
    free(r);
    return rc;
}
