/*
 * analysis: the study's counts per period (see analysis.h).
 *
 * Three open-addressing tables, each grown by doubling: periods by their
 * index, DNS clients by their address text (compared, the hash only
 * finds the slot), and DNS counts by (period, client) and, for the
 * backtest, by (minute, client).  An offline tool may allocate; what it
 * must not do is grow with the lines, and none of these does.
 */
#include "analysis.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "window_counter.h" /* hash64 */
#include "xalloc.h"

/* ------------------------------------------------------------ time */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t analysis_seconds(int year, int month, int day, int hour, int minute, int second)
{
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

void analysis_fields(int64_t seconds, int *year, int *month, int *day, int *hour, int *minute,
                     int *second)
{
    int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
    int64_t rest = seconds - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);

    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = m;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *hour = (int)(rest / 3600);
    *minute = (int)(rest % 3600 / 60);
    *second = (int)(rest % 60);
}

void analysis_file_init(struct analysis_file *f, int ref_year, int ref_month)
{
    memset(f, 0, sizeof(*f));
    f->ref_year = ref_year;
    f->ref_month = ref_month;
}

int64_t analysis_time(struct analysis_file *f, const struct log_time *t)
{
    int year = t->year;

    if (!t->has_year) {
        if (f->year == 0) {
            f->year = t->month <= f->ref_month ? f->ref_year : f->ref_year - 1;
        } else if (t->month + 6 < f->last_month) {
            f->year++; /* December, then January: a new year */
        }
        year = f->year;
        /* A line from the old year after the turn (lines a little out of order): the year
         * before, without turning back. */
        if (t->month > f->last_month + 6 && f->last_month != 0)
            year--;
        else
            f->last_month = t->month;
    }
    if (t->has_offset) {
        f->has_offset = true;
        f->offset_minutes = t->offset_minutes;
    }
    return analysis_seconds(year, t->month, t->day, t->hour, t->minute, (int)t->second);
}

/* ------------------------------------------------------------ tables */

struct period {
    int64_t index; /* start / period_seconds */
    bool used;
    bool has_offset;
    int offset_minutes;
    uint64_t lines, nc, nf, nf_log, refused;
};

struct client {
    char text[ANALYSIS_CLIENT_MAX];
    uint64_t hash;
    uint64_t total[AD_COUNT];
    bool used;
};

/* DNS counts of one client in one period (or minute). */
struct dns_cell {
    int64_t index;
    uint32_t client; /* + 1: 0 is a free slot */
    uint32_t n[AD_COUNT];
};

struct analysis {
    struct analysis_settings s;
    struct analysis_input input;
    struct period *periods;
    size_t period_mask, period_count;
    struct client *clients;
    size_t client_mask, client_count;
    struct dns_cell *cells, *minutes;
    size_t cell_mask, cell_count, minute_mask, minute_count;
    uint32_t *only; /* mx_clients as client ids + 1 (0: not seen yet) */
};

/* Period and minute indexes are the logs' times, not names from the wire: a mix will do. */
static uint64_t mix64(uint64_t x)
{
    return hash64_mix(0, x);
}

static struct period *period_at(struct analysis *a, int64_t index)
{
    size_t i;

    if ((a->period_count + 1) * 2 > a->period_mask + 1) {
        struct period *old = a->periods;
        size_t old_slots = a->period_mask + 1;

        a->period_mask = old_slots * 2 - 1;
        a->periods = xcalloc(a->period_mask + 1, sizeof(*a->periods));
        for (size_t j = 0; j < old_slots; j++) {
            if (!old[j].used)
                continue;
            for (i = mix64((uint64_t)old[j].index) & a->period_mask; a->periods[i].used;
                 i = (i + 1) & a->period_mask)
                ;
            a->periods[i] = old[j];
        }
        free(old);
    }
    for (i = mix64((uint64_t)index) & a->period_mask; a->periods[i].used;
         i = (i + 1) & a->period_mask)
        if (a->periods[i].index == index)
            return &a->periods[i];
    a->periods[i].used = true;
    a->periods[i].index = index;
    a->period_count++;
    return &a->periods[i];
}

/* The slot of a client's text: its own, or the free one it would take. */
static size_t client_slot(const struct analysis *a, const char *text, size_t len, uint64_t h)
{
    size_t i;

    /* Query-log clients are whoever asks the name server: a keyed hash, names compared. */
    for (i = h & a->client_mask; a->clients[i].used; i = (i + 1) & a->client_mask)
        if (a->clients[i].hash == h && strlen(a->clients[i].text) == len &&
            memcmp(a->clients[i].text, text, len) == 0)
            break;
    return i;
}

/* The client's id + 1; 0 when not counted. */
static uint32_t client_find(const struct analysis *a, const char *text, size_t len)
{
    size_t i;

    if (len == 0 || len >= ANALYSIS_CLIENT_MAX)
        return 0;
    i = client_slot(a, text, len, hash64(text, len, 0));
    return a->clients[i].used ? (uint32_t)i + 1 : 0;
}

/* The same, added if new and there is room; 0 when the table is full. */
static uint32_t client_id(struct analysis *a, const char *text, size_t len)
{
    uint64_t h;
    size_t i;

    if (len == 0 || len >= ANALYSIS_CLIENT_MAX)
        return 0;
    h = hash64(text, len, 0);
    i = client_slot(a, text, len, h);
    if (a->clients[i].used)
        return (uint32_t)i + 1;
    if (a->client_count >= ANALYSIS_CLIENTS)
        return 0;
    a->clients[i].used = true;
    a->clients[i].hash = h;
    memcpy(a->clients[i].text, text, len);
    a->clients[i].text[len] = '\0';
    a->client_count++;
    return (uint32_t)i + 1;
}

static size_t cell_slot(const struct dns_cell *cells, size_t mask, int64_t index, uint32_t client)
{
    size_t i;

    for (i = mix64((uint64_t)index * 65599u + client) & mask; cells[i].client != 0;
         i = (i + 1) & mask)
        if (cells[i].index == index && cells[i].client == client)
            break;
    return i;
}

static const struct dns_cell *cell_find(const struct dns_cell *cells, size_t mask, int64_t index,
                                        uint32_t client)
{
    size_t i = cell_slot(cells, mask, index, client);

    return cells[i].client != 0 ? &cells[i] : NULL;
}

static struct dns_cell *cell_at(struct dns_cell **cells, size_t *mask, size_t *count,
                                int64_t index, uint32_t client)
{
    size_t i;

    if ((*count + 1) * 2 > *mask + 1) {
        struct dns_cell *old = *cells;
        size_t old_slots = *mask + 1;

        *mask = old_slots * 2 - 1;
        *cells = xcalloc(*mask + 1, sizeof(**cells));
        for (size_t j = 0; j < old_slots; j++) {
            if (old[j].client == 0)
                continue;
            for (i = mix64((uint64_t)old[j].index * 65599u + old[j].client) & *mask;
                 (*cells)[i].client != 0; i = (i + 1) & *mask)
                ;
            (*cells)[i] = old[j];
        }
        free(old);
    }
    i = cell_slot(*cells, *mask, index, client);
    if ((*cells)[i].client != 0)
        return &(*cells)[i];
    (*cells)[i].index = index;
    (*cells)[i].client = client;
    (*count)++;
    return &(*cells)[i];
}

struct analysis *analysis_new(const struct analysis_settings *s)
{
    struct analysis *a = xcalloc(1, sizeof(*a));

    a->s = *s;
    if (a->s.period_seconds <= 0)
        a->s.period_seconds = 86400;
    a->period_mask = 255;
    a->periods = xcalloc(a->period_mask + 1, sizeof(*a->periods));
    a->client_mask = ANALYSIS_CLIENTS * 2 - 1; /* fixed: never more than half full */
    a->clients = xcalloc(a->client_mask + 1, sizeof(*a->clients));
    a->cell_mask = a->minute_mask = 1023;
    a->cells = xcalloc(a->cell_mask + 1, sizeof(*a->cells));
    a->minutes = xcalloc(a->minute_mask + 1, sizeof(*a->minutes));
    if (s->mx_client_count > 0) {
        a->only = xcalloc(s->mx_client_count, sizeof(*a->only));
        for (size_t i = 0; i < s->mx_client_count; i++)
            a->only[i] = client_id(a, s->mx_clients[i], strlen(s->mx_clients[i]));
    }
    return a;
}

void analysis_free(struct analysis *a)
{
    if (a == NULL)
        return;
    free(a->periods);
    free(a->clients);
    free(a->cells);
    free(a->minutes);
    free(a->only);
    free(a);
}

const struct analysis_input *analysis_input(const struct analysis *a)
{
    return &a->input;
}

size_t analysis_memory(const struct analysis *a)
{
    return (a->period_mask + 1) * sizeof(*a->periods) + (a->client_mask + 1) * sizeof(*a->clients) +
           (a->cell_mask + a->minute_mask + 2) * sizeof(*a->cells);
}

/* ------------------------------------------------------------ lines */

static int dns_type(struct query_log_slice t)
{
    if (t.len == 2 && (t.ptr[0] | 0x20) == 'm' && (t.ptr[1] | 0x20) == 'x')
        return AD_MX;
    if (t.len == 1 && (t.ptr[0] | 0x20) == 'a')
        return AD_A;
    if (t.len == 4 && strncasecmp(t.ptr, "aaaa", 4) == 0)
        return AD_AAAA;
    if (t.len == 3 && strncasecmp(t.ptr, "ptr", 3) == 0)
        return AD_PTR;
    return -1;
}

static bool is_postfix_tag(struct log_slice tag)
{
    return tag.len >= 7 && memcmp(tag.ptr, "postfix", 7) == 0 &&
           (tag.len == 7 || tag.ptr[7] == '/' || tag.ptr[7] == '-');
}

static void count_query(struct analysis *a, const struct query_log_entry *q, int64_t time,
                        struct period *p)
{
    int type = dns_type(q->qtype);
    uint32_t id;

    if (type < 0)
        return;
    /* A client named on the command line is always in the table (added at start). */
    id = a->only == NULL ? client_id(a, q->client.ptr, q->client.len)
                         : client_find(a, q->client.ptr, q->client.len);
    if (id == 0)
        return;
    if (a->only != NULL) {
        bool wanted = false;

        for (size_t i = 0; i < a->s.mx_client_count; i++)
            wanted |= a->only[i] == id;
        if (!wanted)
            return;
    }
    a->clients[id - 1].total[type]++;
    cell_at(&a->cells, &a->cell_mask, &a->cell_count, p->index, id)->n[type]++;
    if (a->s.per_minute_dns) {
        int64_t minute = time >= 0 ? time / 60 : -((-time + 59) / 60);

        cell_at(&a->minutes, &a->minute_mask, &a->minute_count, minute, id)->n[type]++;
    }
}

enum analysis_kind analysis_take(struct analysis *a, struct analysis_file *f, const char *text,
                                 size_t len, struct analysis_line *out)
{
    struct analysis_line local;
    enum log_line_result r;
    struct period *p = NULL;
    int64_t index;

    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof(*out));
    a->input.lines++;
    r = log_line_parse(text, len, &out->header);
    if (r == LOG_LINE_TAGGED && is_postfix_tag(out->header.tag)) {
        out->kind = AL_MAILLOG;
        maillog_classify(out->header.tag, out->header.message, &out->mail);
    } else {
        enum query_log_result q = query_log_parse(text, len, &out->query);

        if (q == QUERY_LOG_QUERY && out->query.reply) {
            out->kind = AL_OTHER;
            a->input.reply_lines++;
            out->header.time = out->query.time;
        } else if (q == QUERY_LOG_QUERY) {
            out->kind = AL_QUERY;
            out->header.time = out->query.time;
        } else if (q == QUERY_LOG_OTHER && (r != LOG_LINE_UNPARSED || out->query.unix_time)) {
            out->kind = AL_OTHER;
        } else {
            out->kind = AL_UNPARSED;
        }
    }
    if (out->kind != AL_UNPARSED && !out->header.time.present && out->query.unix_time) {
        /* unbound's own file: a Unix time, read as the local time it was (its offset kept). */
        int offset = a->s.local_offset != NULL ? a->s.local_offset(out->query.unix_seconds) : 0;
        struct log_time *t = &out->header.time;
        int second;

        analysis_fields(out->query.unix_seconds + offset * 60, &t->year, &t->month, &t->day,
                        &t->hour, &t->minute, &second);
        t->second = second;
        t->present = t->has_year = t->has_offset = true;
        t->offset_minutes = offset;
    }
    if (out->kind != AL_UNPARSED && out->header.time.present) {
        out->time = analysis_time(f, &out->header.time);
        out->timed = true;
        f->has_time = true;
        f->last_time = out->time;
    } else if (out->kind != AL_UNPARSED && f->has_time) {
        out->time = f->last_time; /* BIND's file channel without print-time */
        out->timed = true;
    } else {
        out->kind = AL_UNPARSED;
    }
    switch (out->kind) {
    case AL_MAILLOG: a->input.maillog_lines++; break;
    case AL_QUERY: a->input.querylog_lines++; break;
    case AL_OTHER: a->input.other_lines++; break;
    case AL_UNPARSED: a->input.unparsed_lines++; return AL_UNPARSED;
    }
    out->in_range = (!a->s.has_from || out->time >= a->s.from) &&
                    (!a->s.has_to || out->time < a->s.to);
    if (!out->in_range)
        return out->kind;
    index = out->time >= 0 ? out->time / a->s.period_seconds
                           : -((-out->time + a->s.period_seconds - 1) / a->s.period_seconds);
    p = period_at(a, index);
    p->lines++;
    if (!p->has_offset && out->header.time.has_offset) {
        p->has_offset = true;
        p->offset_minutes = out->header.time.offset_minutes;
    }
    if (out->kind == AL_MAILLOG) {
        unsigned fl = out->mail.flags;

        p->nc += (fl & MAILLOG_CONNECT) != 0;
        p->nf += (fl & MAILLOG_QUEUED) != 0;
        p->nf_log += (fl & MAILLOG_FROM) != 0;
        p->refused += (fl & MAILLOG_REFUSED) != 0;
    } else if (out->kind == AL_QUERY) {
        count_query(a, &out->query, out->time, p);
    }
    return out->kind;
}

/* ------------------------------------------------------------ results */

size_t analysis_top_clients(const struct analysis *a, const char **out, uint64_t *mx, size_t max)
{
    size_t n = 0;

    /* Insertion into a short sorted list: max is small (the callers ask for a few). */
    for (size_t i = 0; i <= a->client_mask; i++) {
        const struct client *c = &a->clients[i];
        size_t j;

        if (!c->used || c->total[AD_MX] + c->total[AD_A] + c->total[AD_AAAA] + c->total[AD_PTR] == 0)
            continue;
        for (j = n; j > 0 && mx[j - 1] < c->total[AD_MX]; j--)
            if (j < max) {
                out[j] = out[j - 1];
                mx[j] = mx[j - 1];
            }
        if (j < max) {
            out[j] = c->text;
            mx[j] = c->total[AD_MX];
            if (n < max)
                n++;
        }
    }
    return n;
}

static int by_start(const void *x, const void *y)
{
    const struct analysis_period *p = x, *q = y;

    return (p->start > q->start) - (p->start < q->start);
}

/* Ids + 1 of the named clients that were seen (0 for the others). */
static void ids_of(const struct analysis *a, const char *const *clients, size_t n, uint32_t *ids)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = client_find(a, clients[i], strlen(clients[i]));
}

struct analysis_period *analysis_periods(const struct analysis *a, const char *const *clients,
                                         size_t client_count, size_t *count)
{
    struct analysis_period *out;
    uint32_t *ids = xcalloc(client_count + 1, sizeof(*ids));
    size_t n = 0;

    *count = 0;
    if (a->period_count == 0) {
        free(ids);
        return NULL;
    }
    ids_of(a, clients, client_count, ids);
    out = xcalloc(a->period_count, sizeof(*out));
    for (size_t i = 0; i <= a->period_mask; i++) {
        const struct period *p = &a->periods[i];
        struct analysis_period *o;

        if (!p->used)
            continue;
        o = &out[n++];
        o->start = p->index * a->s.period_seconds;
        o->has_offset = p->has_offset;
        o->offset_minutes = p->offset_minutes;
        o->lines = p->lines;
        o->nc = p->nc;
        o->nf = p->nf;
        o->nf_log = p->nf_log;
        o->refused = p->refused;
        for (size_t c = 0; c < client_count; c++) {
            const struct dns_cell *cell;

            if (ids[c] == 0)
                continue;
            cell = cell_find(a->cells, a->cell_mask, p->index, ids[c]);
            if (cell != NULL)
                for (int t = 0; t < AD_COUNT; t++)
                    o->dns[t] += cell->n[t];
        }
    }
    free(ids);
    qsort(out, n, sizeof(*out), by_start);
    *count = n;
    return out;
}

void analysis_minute_dns(const struct analysis *a, const char *const *clients,
                         size_t client_count, int64_t minute, uint64_t out[3])
{
    out[0] = out[1] = out[2] = 0;
    for (size_t c = 0; c < client_count; c++) {
        uint32_t id = client_find(a, clients[c], strlen(clients[c]));
        const struct dns_cell *cell;

        if (id == 0)
            continue;
        cell = cell_find(a->minutes, a->minute_mask, minute, id);
        if (cell == NULL)
            continue;
        out[0] += cell->n[AD_MX];
        out[1] += cell->n[AD_A] + cell->n[AD_AAAA];
        out[2] += cell->n[AD_PTR];
    }
}
