/*
 * analysis: relaywatch analyze's counts, the study's method on log lines.
 * Pure: lines come from the caller (no I/O); it owns its tables (allocated
 * as periods and DNS clients appear, so memory grows with the number of
 * periods and clients, never with the number of lines).
 *
 * Each line is read once: its time (log_line), then as a Postfix line
 * (maillog) or a query-log line (query_log), by content, whatever file it
 * came from.  Per period of `period_seconds` (the logs' own time, as
 * written): nc, nf, nf_log, refused (maillog.h says which lines), the lines
 * seen, and per DNS client its MX, A, AAAA and PTR queries.  Year-less
 * lines take the year of their file's analysis_file, rolling over after
 * December.  Lines outside [from, to) are read and counted as input but
 * not into periods.
 */
#ifndef RELAYWATCH_ANALYSIS_H
#define RELAYWATCH_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log_line.h"
#include "maillog.h"
#include "query_log.h"

enum analysis_dns { AD_MX, AD_A, AD_AAAA, AD_PTR, AD_COUNT };

#define ANALYSIS_CLIENT_MAX 46   /* an address's text (INET6_ADDRSTRLEN) */
#define ANALYSIS_CLIENTS 65536   /* DNS clients told apart; later ones are counted as "other" */

struct analysis_settings {
    int64_t period_seconds;        /* 60, 3600 or 86400 */
    bool has_from, has_to;
    int64_t from, to;              /* analysis_seconds; from inclusive, to exclusive */
    const char *const *mx_clients; /* count only these clients' queries (none: every client's) */
    size_t mx_client_count;
    bool per_minute_dns;           /* keep each client's MX/A/PTR per minute (the backtest's) */
    /* Minutes east of UTC of the local time at a Unix time, for lines that carry only a Unix
     * time (unbound's own log file): the caller's time zone; NULL: UTC. */
    int (*local_offset)(int64_t unix_seconds);
};

/* One file's reading state: the year of its year-less lines, and the last time seen. */
struct analysis_file {
    int ref_year, ref_month;  /* the first year-less line is in ref_year unless its month is
                                 after ref_month (then the year before): a file's mtime, or
                                 --year Y as (Y, 12) */
    int year, last_month;     /* 0: no year-less line yet */
    bool has_time;
    int64_t last_time;        /* analysis_seconds of the last timed line */
    int offset_minutes;       /* of the last line with an offset */
    bool has_offset;
};
void analysis_file_init(struct analysis_file *f, int ref_year, int ref_month);
/* A line's time as analysis_seconds, a year-less one in the file's year (f moves on). */
int64_t analysis_time(struct analysis_file *f, const struct log_time *t);

/* Seconds since 1970 of a time as written (its offset not applied): the logs' own clock. */
int64_t analysis_seconds(int year, int month, int day, int hour, int minute, int second);
/* Back to fields (the inverse, for printing). */
void analysis_fields(int64_t seconds, int *year, int *month, int *day, int *hour, int *minute,
                     int *second);

enum analysis_kind {
    AL_MAILLOG,   /* a Postfix line */
    AL_QUERY,     /* a DNS query-log line (BIND, unbound, dnsmasq) */
    AL_OTHER,     /* a well-formed line of something else */
    AL_UNPARSED   /* no time could be read, or a query line that is broken */
};

/* What one line was, for the caller (the backtest takes the maillog lines). */
struct analysis_line {
    enum analysis_kind kind;
    bool timed;                /* time below is the line's own or its file's last */
    bool in_range;             /* within [from, to): counted into a period */
    int64_t time;              /* analysis_seconds */
    struct log_line header;    /* AL_MAILLOG */
    struct maillog_event mail; /* AL_MAILLOG */
    struct query_log_entry query; /* AL_QUERY */
};

struct analysis_input {
    uint64_t lines, maillog_lines, querylog_lines, other_lines, unparsed_lines;
    uint64_t cut_lines;  /* longer than the reader's cap (counted by the caller) */
    uint64_t reply_lines; /* unbound's log-replies lines: counted as other lines, not queries
                           * (with log-queries on as well, each query would count twice) */
};

struct analysis;

struct analysis *analysis_new(const struct analysis_settings *s);
void analysis_free(struct analysis *a);

/* Read one line (no newline) of the file whose state is f; out may be NULL. */
enum analysis_kind analysis_take(struct analysis *a, struct analysis_file *f, const char *text,
                                 size_t len, struct analysis_line *out);

const struct analysis_input *analysis_input(const struct analysis *a);

/* The DNS clients counted, the most MX queries first: their number, up to max into out
 * (NUL-terminated texts owned by a, valid until analysis_free). */
size_t analysis_top_clients(const struct analysis *a, const char **out, uint64_t *mx, size_t max);

/* One period, for the caller's output. */
struct analysis_period {
    int64_t start;            /* analysis_seconds of its first second */
    bool has_offset;
    int offset_minutes;       /* of the period's first line with one */
    uint64_t lines;           /* timed lines in it */
    uint64_t nc, nf, nf_log, refused;
    uint64_t dns[AD_COUNT];   /* of the clients asked for in analysis_periods */
};

/*
 * Every period with at least one timed line, in time order, with the DNS queries of the given
 * clients summed (NULL/0: none): a new array of *count periods (free() it), or NULL for none.
 */
struct analysis_period *analysis_periods(const struct analysis *a, const char *const *clients,
                                         size_t client_count, size_t *count);

/* The queries of the clients asked for in the minute (analysis_seconds / 60), MX, A + AAAA and
 * PTR: needs per_minute_dns. */
void analysis_minute_dns(const struct analysis *a, const char *const *clients,
                         size_t client_count, int64_t minute, uint64_t out[3]);

/* Bytes held in tables (for the benchmark's memory bound). */
size_t analysis_memory(const struct analysis *a);

#endif
