/*
 * feed: BIND query-log lines in, per-client per-type per-minute counts out
 * to the shared store.  See feed.h and relaywatch(1), "feed".
 *
 * Counts are held in one bounded table keyed by (client, minute, type) and
 * written as absolute values for this run (store_query_writer), so a failed
 * write is simply made again at the next flush and nothing is counted
 * twice.  Reading never waits for Redis: a flush happens once per
 * store_flush_interval between reads.
 */
#include "feed.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "query_log.h"
#include "query_writer.h"
#include "window_counter.h"
#include "xalloc.h"

#define TABLE_SLOTS (1u << 18) /* (client, minute, type) counts held: about 25 MB at most */
#define TABLE_LIMIT (TABLE_SLOTS / 4 * 3)
#define CLIENT_MAX 48          /* IPv6 text and a scope */
#define TYPE_MAX 16
#define LINE_MAX_BYTES 65536
#define FOLLOW_POLL 0.25       /* seconds between looks at a followed file */

struct count_entry {
    uint64_t hash;
    int64_t minute;
    uint64_t count;
    bool used, dirty;
    char client[CLIENT_MAX];
    char type[TYPE_MAX];
};

struct feed {
    const struct config *cfg;
    struct store_query_writer *writer;
    struct count_entry *table;
    unsigned used;
    struct ip_network *keep; /* feed_clients, parsed */
    size_t keep_count;
    /* Figures for the summary. */
    uint64_t lines, queries, other, errors, filtered, dropped, late, written, flush_failures;
    /* Memory stays bounded by forgetting minutes over an hour older than the newest seen,
     * once they are written; a line for a forgotten minute is late (its count would start
     * again from 0 and overwrite the one written). */
    int64_t newest_minute, forgotten_before;
    uint64_t by_type[5]; /* A, AAAA, MX, PTR, other */
    bool store_down;
    double next_flush;
    /* Time conversion: lines come in order, so the minute's start is worked out once. */
    int c_year, c_month, c_day, c_hour, c_minute, c_offset;
    bool c_has_offset, c_valid;
    double c_base;
};

static volatile sig_atomic_t stop_requested, summary_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_usr1(int sig)
{
    (void)sig;
    summary_requested = 1;
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double monotonic_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ clients */

/* Whether feed_clients keeps this client (all are kept without a list). */
static bool client_kept(const struct feed *f, const char *client)
{
    return f->keep_count == 0 || address_in_networks(client, strlen(client), f->keep, f->keep_count);
}

/* ------------------------------------------------------------ counting */

/* Keyed (feed_run draws the key): the clients and types in a query log are whoever queries the
 * name server, so names that share a slot must not be theirs to pick. */
static uint64_t key_hash(const char *client, size_t clen, int64_t minute, const char *type,
                         size_t tlen)
{
    uint64_t h = hash64_mix(hash64(client, clen, 0), (uint64_t)minute);

    h = hash64_mix(h, hash64(type, tlen, 0));
    return h ? h : 1;
}

static bool flush_counts(struct feed *f);

/*
 * The table is full: drop the counts of minutes more than an hour before the newest one seen
 * that are already in the store, and put the rest back (linear probing has no cheap delete).
 */
static void forget_old_minutes(struct feed *f)
{
    static struct count_entry *keep;
    unsigned kept = 0;
    int64_t before = f->newest_minute - 60;

    if (keep == NULL && (keep = malloc(sizeof(*keep) * TABLE_LIMIT)) == NULL)
        abort();
    flush_counts(f); /* what is forgotten must be in the store first */
    for (unsigned i = 0; i < TABLE_SLOTS; i++) {
        struct count_entry *e = &f->table[i];

        if (e->used && (e->minute >= before || e->dirty))
            keep[kept++] = *e;
    }
    if (kept == f->used)
        return; /* nothing old and written: new counts are dropped (and counted) */
    memset(f->table, 0, sizeof(*f->table) * TABLE_SLOTS);
    for (unsigned i = 0; i < kept; i++) {
        size_t pos = keep[i].hash & (TABLE_SLOTS - 1);

        while (f->table[pos].used)
            pos = (pos + 1) & (TABLE_SLOTS - 1);
        f->table[pos] = keep[i];
    }
    f->used = kept;
    if (before > f->forgotten_before)
        f->forgotten_before = before;
}

static void count_query(struct feed *f, const struct query_log_slice *client, int64_t minute,
                        const struct query_log_slice *qtype)
{
    uint64_t h;
    size_t pos;
    struct count_entry *e;
    char type[TYPE_MAX];
    size_t tlen = qtype->len < TYPE_MAX - 1 ? qtype->len : TYPE_MAX - 1;

    /* Types as BIND prints them, upper case: "MX", "A", "TYPE65534". */
    for (size_t i = 0; i < tlen; i++) {
        char ch = qtype->ptr[i];
        type[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    type[tlen] = '\0';
    if (minute < f->forgotten_before) {
        f->late++;
        return;
    }
    if (minute > f->newest_minute)
        f->newest_minute = minute;
    h = key_hash(client->ptr, client->len, minute, type, tlen);
    for (pos = h & (TABLE_SLOTS - 1);; pos = (pos + 1) & (TABLE_SLOTS - 1)) {
        e = &f->table[pos];
        if (!e->used)
            break;
        if (e->hash == h && e->minute == minute && strlen(e->client) == client->len &&
            memcmp(e->client, client->ptr, client->len) == 0 && strcmp(e->type, type) == 0)
            goto found;
    }
    if (f->used >= TABLE_LIMIT) {
        forget_old_minutes(f);
        if (f->used >= TABLE_LIMIT) {
            f->dropped++;
            return;
        }
        /* The table was rebuilt: find this key's empty slot again. */
        for (pos = h & (TABLE_SLOTS - 1); f->table[pos].used; pos = (pos + 1) & (TABLE_SLOTS - 1))
            ;
        e = &f->table[pos];
    }
    e->used = true;
    e->hash = h;
    e->minute = minute;
    memcpy(e->client, client->ptr, client->len);
    e->client[client->len] = '\0';
    memcpy(e->type, type, tlen + 1);
    f->used++;
found:
    e->count++;
    e->dirty = true;
    if (strcmp(type, "A") == 0)
        f->by_type[0]++;
    else if (strcmp(type, "AAAA") == 0)
        f->by_type[1]++;
    else if (strcmp(type, "MX") == 0)
        f->by_type[2]++;
    else if (strcmp(type, "PTR") == 0)
        f->by_type[3]++;
    else
        f->by_type[4]++;
}

/* The Unix time of a line's time stamp (see struct log_time). */
static double line_time(struct feed *f, const struct log_time *t)
{
    if (!t->present)
        return now_seconds();
    if (!f->c_valid || t->minute != f->c_minute || t->hour != f->c_hour || t->day != f->c_day ||
        t->month != f->c_month || (t->has_year && t->year != f->c_year) ||
        t->has_offset != f->c_has_offset || (t->has_offset && t->offset_minutes != f->c_offset)) {
        struct tm tm = {0};
        time_t base;

        tm.tm_year = (t->has_year ? t->year : 0) - 1900;
        if (!t->has_year) {
            /* RFC 3164 has no year: this year, or last year for a December line read in
             * January. */
            time_t now = time(NULL);
            struct tm lt;

            localtime_r(&now, &lt);
            tm.tm_year = lt.tm_year;
            if (t->month > lt.tm_mon + 2)
                tm.tm_year--;
        }
        tm.tm_mon = t->month - 1;
        tm.tm_mday = t->day;
        tm.tm_hour = t->hour;
        tm.tm_min = t->minute;
        tm.tm_isdst = -1;
        /* With an offset (RFC 5424) the time is UTC plus it; without, it is the log
         * host's local time, as BIND and syslog write it. */
        base = t->has_offset ? timegm(&tm) - (time_t)t->offset_minutes * 60 : mktime(&tm);
        f->c_base = (double)base;
        f->c_valid = true;
        f->c_year = t->year;
        f->c_month = t->month;
        f->c_day = t->day;
        f->c_hour = t->hour;
        f->c_minute = t->minute;
        f->c_has_offset = t->has_offset;
        f->c_offset = t->offset_minutes;
    }
    return f->c_base + t->second;
}

static void feed_line(struct feed *f, const char *line, size_t len)
{
    struct query_log_entry q;
    char client[CLIENT_MAX];

    f->lines++;
    switch (query_log_parse(line, len, &q)) {
    case QUERY_LOG_OTHER:
        f->other++;
        return;
    case QUERY_LOG_ERROR:
        f->errors++;
        return;
    case QUERY_LOG_QUERY:
        break;
    }
    if (q.reply) {
        /* unbound's log-replies: the query line (log-queries) is the one counted. */
        f->other++;
        return;
    }
    if (q.client.len == 0 || q.client.len >= CLIENT_MAX || q.qtype.len == 0) {
        f->errors++;
        return;
    }
    f->queries++;
    if (f->keep_count > 0) {
        memcpy(client, q.client.ptr, q.client.len);
        client[q.client.len] = '\0';
        if (!client_kept(f, client)) {
            f->filtered++;
            return;
        }
    }
    count_query(f, &q.client,
                (int64_t)((q.unix_time ? (double)q.unix_seconds : line_time(f, &q.time)) / 60.0),
                &q.qtype);
}

/* ------------------------------------------------------------ the store */

/* Write every count that changed; false if Redis did not take them (they stay dirty). */
static bool flush_counts(struct feed *f)
{
    char err[256];
    unsigned n = 0;

    for (unsigned i = 0; i < TABLE_SLOTS; i++) {
        struct count_entry *e = &f->table[i];

        if (e->used && e->dirty) {
            store_query_writer_set(f->writer, e->client, e->minute, e->type, e->count);
            n++;
        }
    }
    if (n == 0)
        return true;
    if (!store_query_writer_flush(f->writer, err, sizeof(err))) {
        f->flush_failures++;
        if (!f->store_down)
            fprintf(stderr, "relaywatch feed: store %s: %s; counts are kept and written again "
                            "once it answers\n", f->cfg->store, err);
        f->store_down = true;
        /* Redis may come back empty (a restart without persistence): once it answers,
         * write every count held again, not only the new ones.  Absolute values make
         * that harmless. */
        for (unsigned i = 0; i < TABLE_SLOTS; i++)
            if (f->table[i].used)
                f->table[i].dirty = true;
        return false;
    }
    if (f->store_down)
        fprintf(stderr, "relaywatch feed: store %s answers again\n", f->cfg->store);
    f->store_down = false;
    for (unsigned i = 0; i < TABLE_SLOTS; i++)
        f->table[i].dirty = false;
    f->written += n;
    return true;
}

static void maybe_flush(struct feed *f)
{
    double now = monotonic_seconds();

    if (now < f->next_flush)
        return;
    flush_counts(f);
    f->next_flush = now + f->cfg->store_flush_interval;
}

static void print_summary(const struct feed *f)
{
    printf("relaywatch feed: %llu lines, %llu queries, %llu other lines, %llu errors, "
           "%llu queries of clients not in feed_clients, %llu not counted (table full), "
           "%llu late (minutes already forgotten); "
           "A %llu, AAAA %llu, MX %llu, PTR %llu, other types %llu; %u counts held, %llu "
           "written, %llu failed flushes; run %s\n",
           (unsigned long long)f->lines, (unsigned long long)f->queries,
           (unsigned long long)f->other, (unsigned long long)f->errors,
           (unsigned long long)f->filtered, (unsigned long long)f->dropped,
           (unsigned long long)f->late,
           (unsigned long long)f->by_type[0], (unsigned long long)f->by_type[1],
           (unsigned long long)f->by_type[2], (unsigned long long)f->by_type[3],
           (unsigned long long)f->by_type[4], f->used, (unsigned long long)f->written,
           (unsigned long long)f->flush_failures, store_query_writer_run(f->writer));
    fflush(stdout);
}

/* ------------------------------------------------------------ input */

struct line_reader {
    char *buf;
    size_t len, cap;
    bool skipping; /* inside a line longer than LINE_MAX_BYTES */
};

/* Feed every complete line in r; keep the partial last one. */
static void take_lines(struct feed *f, struct line_reader *r)
{
    size_t start = 0;

    for (;;) {
        char *nl = memchr(r->buf + start, '\n', r->len - start);
        size_t end;

        if (nl == NULL)
            break;
        end = (size_t)(nl - r->buf);
        if (r->skipping) {
            r->skipping = false;
        } else {
            size_t n = end - start;

            if (n > 0 && r->buf[start + n - 1] == '\r')
                n--;
            feed_line(f, r->buf + start, n);
        }
        start = end + 1;
    }
    memmove(r->buf, r->buf + start, r->len - start);
    r->len -= start;
    if (r->len >= LINE_MAX_BYTES) {
        /* A line this long is no query-log line: count it once and skip to its end. */
        if (!r->skipping) {
            f->lines++;
            f->errors++;
        }
        r->skipping = true;
        r->len = 0;
    }
}

/* Read what fd has now; returns bytes read, 0 at end, -1 on error. */
static ssize_t read_some(struct feed *f, int fd, struct line_reader *r)
{
    ssize_t n = read(fd, r->buf + r->len, r->cap - r->len);

    if (n > 0) {
        r->len += (size_t)n;
        take_lines(f, r);
    }
    return n;
}

static int feed_stream(struct feed *f, int fd, const char *name)
{
    struct line_reader r = {malloc(4 * LINE_MAX_BYTES), 0, 4 * LINE_MAX_BYTES, false};
    ssize_t n;

    if (r.buf == NULL)
        abort();
    while (!stop_requested && (n = read_some(f, fd, &r)) != 0) {
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "relaywatch feed: reading %s: %s\n", name, strerror(errno));
            free(r.buf);
            return 1;
        }
        if (summary_requested) {
            summary_requested = 0;
            print_summary(f);
        }
        maybe_flush(f);
    }
    if (r.len > 0 && !r.skipping)
        feed_line(f, r.buf, r.len); /* a last line without its newline */
    free(r.buf);
    return 0;
}

/* Like tail -F: read to the end, then wait for more; reopen when the file is replaced
 * (rotated by rename) and start again from 0 when it is truncated. */
static int feed_follow(struct feed *f, const char *path)
{
    struct line_reader r = {malloc(4 * LINE_MAX_BYTES), 0, 4 * LINE_MAX_BYTES, false};
    int fd = -1;
    struct stat st, now;
    off_t offset = 0;
    bool warned = false;

    if (r.buf == NULL)
        abort();
    while (!stop_requested) {
        ssize_t n;

        if (fd < 0) {
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                if (!warned)
                    fprintf(stderr, "relaywatch feed: %s: %s; waiting for it\n", path,
                            strerror(errno));
                warned = true;
                usleep((useconds_t)(FOLLOW_POLL * 1e6));
                maybe_flush(f);
                continue;
            }
            warned = false;
            fstat(fd, &st);
            offset = 0;
        }
        n = read_some(f, fd, &r);
        if (n > 0) {
            offset += n;
            maybe_flush(f);
            continue;
        }
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "relaywatch feed: reading %s: %s\n", path, strerror(errno));
            close(fd);
            fd = -1;
            continue;
        }
        if (summary_requested) {
            summary_requested = 0;
            print_summary(f);
        }
        maybe_flush(f);
        if (stat(path, &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
            /* Rotated: take what was written to the old file since, then the new one. */
            while (read_some(f, fd, &r) > 0)
                ;
            if (r.len > 0 && !r.skipping)
                feed_line(f, r.buf, r.len);
            close(fd);
            fd = -1;
            r.len = 0;
            r.skipping = false;
            continue;
        }
        if (now.st_size < offset) {
            /* Truncated in place (copytruncate): start again from its beginning. */
            lseek(fd, 0, SEEK_SET);
            offset = 0;
            r.len = 0;
            r.skipping = false;
            continue;
        }
        usleep((useconds_t)(FOLLOW_POLL * 1e6));
    }
    if (fd >= 0)
        close(fd);
    free(r.buf);
    return 0;
}

/* A syslog receiver: one datagram, one message (RFC 5426). */
static int feed_syslog(struct feed *f, const char *hostport)
{
    char host[256], *colon;
    struct addrinfo hints = {0}, *res;
    int fd, rc;
    static char dgram[LINE_MAX_BYTES];

    snprintf(host, sizeof(host), "%s", hostport);
    colon = strrchr(host, ':');
    if (colon == NULL) {
        fprintf(stderr, "relaywatch feed: --syslog-udp wants HOST:PORT, not '%s'\n", hostport);
        return 2;
    }
    *colon = '\0';
    if (host[0] == '[' && colon > host + 1 && colon[-1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "relaywatch feed: --syslog-udp %s: %s\n", hostport, gai_strerror(rc));
        return 2;
    }
    fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "relaywatch feed: --syslog-udp %s: %s\n", hostport, strerror(errno));
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return 2;
    }
    freeaddrinfo(res);
    {
        /* Bursts of log lines must not be lost in the socket while Redis is written. */
        int size = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    fprintf(stderr, "relaywatch feed: receiving syslog on udp %s\n", hostport);
    while (!stop_requested) {
        struct pollfd p = {fd, POLLIN, 0};
        int ready = poll(&p, 1, 250);

        if (ready > 0) {
            /* Take what is there now, then look at the clock. */
            for (int i = 0; i < 1024; i++) {
                ssize_t n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);

                if (n <= 0)
                    break;
                while (n > 0 && (dgram[n - 1] == '\n' || dgram[n - 1] == '\r' ||
                                 dgram[n - 1] == '\0'))
                    n--;
                feed_line(f, dgram, (size_t)n);
            }
        }
        if (summary_requested) {
            summary_requested = 0;
            print_summary(f);
        }
        maybe_flush(f);
    }
    close(fd);
    return 0;
}

int feed_run(const struct config *cfg, const struct feed_options *o)
{
    struct feed f;
    char err[512];
    int rc;
    struct sigaction sa;

    memset(&f, 0, sizeof(f));
    f.cfg = cfg;
    if (!hash_set_random_key()) {
        fprintf(stderr, "relaywatch feed: cannot initialise libsodium\n");
        return 2;
    }
    f.writer = store_query_writer_new(cfg->store, cfg->redis_username, cfg->redis_password,
                                      cfg->store_timeout, cfg->store_retention, err,
                                      sizeof(err));
    if (f.writer == NULL) {
        fprintf(stderr, "relaywatch feed: %s\n", err);
        return 2;
    }
    if (cfg->feed_client_count > 0) {
        f.keep = xcalloc(cfg->feed_client_count, sizeof(*f.keep));
        for (size_t i = 0; i < cfg->feed_client_count; i++)
            if (ip_network_parse(cfg->feed_clients[i], &f.keep[f.keep_count]))
                f.keep_count++;
    }
    /* calloc: pages of the table cost memory only once counts land in them. */
    f.table = xcalloc(TABLE_SLOTS, sizeof(*f.table));
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    f.next_flush = monotonic_seconds() + cfg->store_flush_interval;

    if (o->syslog_udp != NULL) {
        rc = feed_syslog(&f, o->syslog_udp);
    } else if (strcmp(o->path, "-") == 0) {
        rc = feed_stream(&f, STDIN_FILENO, "standard input");
    } else if (o->follow) {
        rc = feed_follow(&f, o->path);
    } else {
        int fd = open(o->path, O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
            fprintf(stderr, "relaywatch feed: %s: %s\n", o->path, strerror(errno));
            rc = 1;
        } else {
            rc = feed_stream(&f, fd, o->path);
            close(fd);
        }
    }
    if (rc != 2) {
        /* The last counts: a few tries before giving up on a store that is away. */
        for (int attempt = 0; attempt < 3 && !flush_counts(&f); attempt++)
            sleep(1);
        if (f.store_down) {
            fprintf(stderr, "relaywatch feed: the store did not take the last counts; "
                            "they are lost\n");
            rc = 1;
        }
        print_summary(&f);
    }
    store_query_writer_free(f.writer);
    free(f.table);
    free(f.keep);
    return rc;
}
