/*
 * store: memory (nothing leaves the process) and Redis on hiredis's async
 * API, attached to the daemon's libev loop.  See store.h and the README's
 * "Redis key schema".
 *
 * Debian's hiredis 0.14 has no command timeout, so every flush carries its
 * own deadline: if its replies are not all back by store_timeout, the
 * connection is dropped (redisAsyncFree from the timer, never from a
 * hiredis callback) and re-made with a backoff of 1 s doubling to 30 s.
 */
#include "store.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "redis_address.h"

#define BACKOFF_MIN 1.0
#define BACKOFF_MAX 30.0
#define MAX_ARGS 64
#define DOMAINS_PER_FLUSH 65536 /* past this a flush drops domain hashes (counted) */

struct store {
    struct ev_loop *loop;
    struct store_settings set;
    char *names_buf[STORE_MAX_COUNTERS];
    double window_seconds[STORE_MAX_WINDOWS];
    struct store_source src;
    bool redis;
    struct redis_address addr;
    char *password, *host_id, *url;
    char run[40];
    redisAsyncContext *ac;
    bool connected, down_logged, ever_connected;
    bool setup_failed;   /* this connection's AUTH/SELECT was refused */
    bool errors_logged;  /* an error reply was logged in this episode */
    bool healthy;        /* the last round had no error reply */
    double backoff;
    ev_timer flush_timer, deadline, reconnect;
    unsigned outstanding; /* replies awaited in this round (writes, then reads) */
    bool round_failed, reading;
    uint64_t flushes, failures, dropped_domains;
    char last_error[256];
    bool has_error;
    struct store_host hosts[STORE_MAX_HOSTS], next_hosts[STORE_MAX_HOSTS];
    unsigned host_count, next_host_count;
    char *tdns_client; /* NULL: none */
    uint64_t tdns[STORE_MAX_WINDOWS][TDNS_TYPES], next_tdns[STORE_MAX_WINDOWS][TDNS_TYPES];
    double tdns_updated, next_tdns_updated;
    bool tdns_read;
    bool history_done;
    bool baseline_done; /* this host's stored baselines were read (or found absent) */
    void (*final_done)(void *);
    void *final_arg;
    bool final_round; /* the round under way is the last write before exit */
};

struct store_batch {
    struct store *s;
    int64_t domain_minute;
    unsigned domain_count;
    char (*domain_text)[17];
};

static void connect_now(struct store *s);
static void finish_round(struct store *s);
static void flush_round(struct store *s);

static void set_error(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct store *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
    va_end(ap);
    s->has_error = true;
}

/* ------------------------------------------------------------ parsing */

/* redis://HOST:PORT[/DB] or redis+unix:///PATH[?db=N]; config.c checked the form. */
int redis_address_parse(struct redis_address *a, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "redis://", 8) == 0) {
        const char *hp = url + 8, *slash = strchr(hp, '/');
        size_t n = slash ? (size_t)(slash - hp) : strlen(hp);
        char *hostport = strndup(hp, n), *colon = hostport ? strrchr(hostport, ':') : NULL;

        if (colon == NULL) {
            free(hostport);
            snprintf(err, errlen, "store: bad Redis address '%s'", url);
            return -1;
        }
        *colon = '\0';
        a->port = atoi(colon + 1);
        a->db = slash ? atoi(slash + 1) : 0;
        {
            /* hiredis resolves a name inside redisAsyncConnect, blocking the loop on
             * every reconnect: resolve it once, here at start, and connect by address. */
            struct addrinfo hints = {0}, *res;
            char addr[INET6_ADDRSTRLEN];
            int rc;

            hints.ai_socktype = SOCK_STREAM;
            rc = getaddrinfo(hostport, NULL, &hints, &res);
            if (rc != 0) {
                snprintf(err, errlen, "store: %s: %s", url, gai_strerror(rc));
                free(hostport);
                return -1;
            }
            rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0,
                             NI_NUMERICHOST);
            freeaddrinfo(res);
            if (rc != 0) {
                snprintf(err, errlen, "store: %s: %s", url, gai_strerror(rc));
                free(hostport);
                return -1;
            }
            free(hostport);
            a->host = strdup(addr);
        }
        return a->host ? 0 : -1;
    }
    if (strncmp(url, "redis+unix://", 13) == 0) {
        const char *p = url + 13, *q = strchr(p, '?');

        a->path = q ? strndup(p, (size_t)(q - p)) : strdup(p);
        a->db = q ? atoi(q + 4) : 0;
        return a->path ? 0 : -1;
    }
    snprintf(err, errlen, "store: '%s' is not a Redis address", url);
    return -1;
}

static const char *where(const struct store *s)
{
    return s->url;
}

/* ---------------------------------------------------------- connection */

static void schedule_reconnect(struct store *s)
{
    ev_timer_stop(s->loop, &s->reconnect);
    ev_timer_set(&s->reconnect, s->backoff, 0.0);
    ev_timer_start(s->loop, &s->reconnect);
    s->backoff = s->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : s->backoff * 2;
}

/* The store is unusable for now: say so once, not per attempt. */
static void went_down(struct store *s, const char *why)
{
    set_error(s, "%s", why);
    if (!s->down_logged)
        log_warning("store: %s unreachable: %s; counting goes on in memory and is written "
                    "when it is back",
                    where(s), why);
    s->down_logged = true;
    s->connected = false;
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct store *s = ac->data;

    if (s == NULL)
        return;
    s->ac = NULL;
    ev_timer_stop(s->loop, &s->deadline); /* nothing is awaited on a closed connection */
    if (s->connected || status != REDIS_OK)
        went_down(s, status == REDIS_OK ? "connection closed" : ac->errstr);
    s->connected = false;
    if (s->outstanding > 0) {
        /* Callbacks of the lost replies have run with no reply; the round is over. */
        s->outstanding = 0;
        s->round_failed = true;
        finish_round(s);
    }
    if (s->final_done == NULL)
        schedule_reconnect(s);
}

static void ready_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct store *s = priv;
    redisReply *r = reply;

    (void)ac;
    if (r == NULL)
        return; /* the connection went: disconnect_cb says so */
    if (r->type == REDIS_REPLY_ERROR) {
        char why[300];

        snprintf(why, sizeof(why), "Redis refused the connection setup: %s", r->str);
        if (!s->setup_failed)
            went_down(s, why);
        s->setup_failed = true;
        redisAsyncDisconnect(s->ac);
        return;
    }
    /* The last setup reply: ready, unless AUTH was refused before it. */
    if (s->setup_failed) {
        redisAsyncDisconnect(s->ac);
        return;
    }
    ev_timer_stop(s->loop, &s->deadline);
    if (priv == s && !s->connected) {
        s->connected = true;
        s->healthy = true;
        s->backoff = BACKOFF_MIN;
        s->has_error = false;
        if (s->down_logged || !s->ever_connected)
            log_info("store: %s connected", where(s));
        s->down_logged = false;
        s->ever_connected = true;
        /* Whatever Redis has lost meanwhile is written again. */
        s->src.rewrite_all(s->src.ctx);
    }
}

static void setup_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct store *s = ac->data;
    redisReply *r = reply;

    (void)priv;
    if (r == NULL || s == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[300];

        snprintf(why, sizeof(why), "AUTH refused: %s", r->str);
        went_down(s, why);
        s->setup_failed = true;
        redisAsyncDisconnect(s->ac);
    }
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct store *s = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        ev_timer_stop(s->loop, &s->deadline);
        s->ac = NULL;
        went_down(s, ac->errstr);
        schedule_reconnect(s);
        return;
    }
    if (s->password != NULL && s->password[0] != '\0')
        redisAsyncCommand(s->ac, setup_cb, NULL, "AUTH %s", s->password);
    /* SELECT (or PING) answers last: its reply says the connection is ready. */
    if (s->addr.db != 0)
        redisAsyncCommand(s->ac, ready_cb, s, "SELECT %d", s->addr.db);
    else
        redisAsyncCommand(s->ac, ready_cb, s, "PING");
}

static void connect_now(struct store *s)
{
    redisAsyncContext *ac = s->addr.path ? redisAsyncConnectUnix(s->addr.path)
                                    : redisAsyncConnect(s->addr.host, s->addr.port);

    if (ac == NULL) {
        went_down(s, "out of memory");
        schedule_reconnect(s);
        return;
    }
    if (ac->err) {
        went_down(s, ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    s->ac = ac;
    s->setup_failed = false;
    /* Not for alert_command's children. */
    fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
    /* Setting up has a deadline too: a server that accepts and never answers. */
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_set(&s->deadline, s->set.timeout, 0.0);
    ev_timer_start(s->loop, &s->deadline);
    redisLibevAttach(s->loop, ac);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store *s = w->data;

    (void)loop;
    (void)revents;
    if (s->ac == NULL)
        connect_now(s);
}

/* ------------------------------------------------------------- writing */

static void round_reply(struct store *s, redisReply *r)
{
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r != NULL) {
            set_error(s, "%s", r->str);
            if (!s->errors_logged)
                log_warning("store: %s answers errors: %s; counts are written again when it "
                            "accepts them",
                            where(s), r->str);
            s->errors_logged = true;
        }
        s->round_failed = true;
    }
    if (s->outstanding > 0 && --s->outstanding == 0)
        finish_round(s);
}

static void write_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    round_reply(priv, reply);
}

static void send_argv(struct store *s, redisCallbackFn *cb, int argc, const char **argv,
                      const size_t *lens)
{
    if (s->ac == NULL || redisAsyncCommandArgv(s->ac, cb, s, argc, argv, lens) != REDIS_OK) {
        s->round_failed = true;
        return;
    }
    s->outstanding++;
}

/* Send argv as given, computing lengths. */
static void send_strings(struct store *s, redisCallbackFn *cb, int argc, const char **argv)
{
    size_t local[MAX_ARGS];
    size_t *lens = argc <= MAX_ARGS ? local : malloc(sizeof(*lens) * (size_t)argc);

    if (lens == NULL)
        abort();
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    send_argv(s, cb, argc, argv, lens);
    if (lens != local)
        free(lens);
}

static void key_of(const struct store *s, char *out, size_t len, const char *kind, int64_t minute)
{
    /* One hash tag per host: all of a host's keys share a Redis Cluster slot. */
    if (minute >= 0)
        snprintf(out, len, "rw:{%s}:%s:%" PRId64, s->host_id, kind, minute);
    else
        snprintf(out, len, "rw:{%s}:%s", s->host_id, kind);
}

/* HSET key <counter>@<run> value ... for every counter; then EXPIRE. */
static void write_counts(struct store *s, const char *key, const uint64_t *counts)
{
    char fields[STORE_MAX_COUNTERS][96], values[STORE_MAX_COUNTERS][24], ttl[24];
    const char *argv[2 + 2 * STORE_MAX_COUNTERS];
    int argc = 0;

    argv[argc++] = "HSET";
    argv[argc++] = key;
    /* Only counters that are not 0: an absent field reads as 0, and most of the DNS
     * outcome counters stay 0 most of the time. */
    for (unsigned i = 0; i < s->set.counter_count; i++) {
        if (counts[i] == 0)
            continue;
        snprintf(fields[i], sizeof(fields[i]), "%s@%s", s->set.counter_names[i], s->run);
        snprintf(values[i], sizeof(values[i]), "%" PRIu64, counts[i]);
        argv[argc++] = fields[i];
        argv[argc++] = values[i];
    }
    if (argc == 2)
        return;
    send_strings(s, write_cb, argc, argv);
    snprintf(ttl, sizeof(ttl), "%.0f", s->set.retention);
    {
        const char *ex[3] = {"EXPIRE", key, ttl};
        send_strings(s, write_cb, 3, ex);
    }
}

void store_batch_minute(struct store_batch *b, int64_t minute, const uint64_t *counts)
{
    char key[160];

    if (b->s->ac == NULL)
        return;
    key_of(b->s, key, sizeof(key), "m", minute);
    write_counts(b->s, key, counts);
}

/*
 * Writes to rw:throttle are conditional, in Redis itself: a record replaces the field only if
 * the field's record did not change later (its CHANGED time), and a delete removes only a
 * record that did not change after the one deleted.  So a daemon writing everything again
 * (after a reconnect) or deleting an expired record never undoes a newer release or block.
 */
static const char throttle_set_script[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if cur then "
    "  local c = tonumber(string.match(cur, '^v1 (%S+)')) "
    "  local n = tonumber(string.match(ARGV[2], '^v1 (%S+)')) "
    "  if c and n and c > n then return 0 end "
    "end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1";
static const char throttle_delete_script[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if not cur then return 0 end "
    "local c = tonumber(string.match(cur, '^v1 (%S+)')) "
    "if c and c > tonumber(ARGV[2]) then return 0 end "
    "redis.call('HDEL', KEYS[1], ARGV[1]) return 1";

void store_batch_throttle(struct store_batch *b, const char *field, const char *value,
                          double changed)
{
    char when[32];
    const char *argv[6] = {"EVAL", value ? throttle_set_script : throttle_delete_script, "1",
                           "rw:throttle", field, value};

    if (value == NULL) {
        snprintf(when, sizeof(when), "%.3f", changed);
        argv[5] = when;
    }
    send_strings(b->s, write_cb, 6, argv);
}

void store_batch_state(struct store_batch *b, const char *state)
{
    char key[STORE_HOST_MAX + 32], ttl[32];
    const char *argv[5] = {"SET", key, state, "EX", ttl};

    snprintf(key, sizeof(key), "rw:{%s}:state", b->s->host_id);
    snprintf(ttl, sizeof(ttl), "%.0f", b->s->set.retention);
    send_strings(b->s, write_cb, 5, argv);
}

void store_batch_baseline(struct store_batch *b, const char *text)
{
    char key[STORE_HOST_MAX + 32], ttl[32];
    const char *argv[5] = {"SET", key, text, "EX", ttl};

    snprintf(key, sizeof(key), "rw:{%s}:baseline", b->s->host_id);
    snprintf(ttl, sizeof(ttl), "%.0f", b->s->set.retention);
    send_strings(b->s, write_cb, 5, argv);
}

static void send_domains(struct store_batch *b)
{
    struct store *s = b->s;
    const char *argv[2 + 512];
    char key[160], ttl[24];
    unsigned i = 0;

    if (b->domain_count == 0)
        return;
    key_of(s, key, sizeof(key), "d", b->domain_minute);
    while (i < b->domain_count) {
        int argc = 0;

        argv[argc++] = "PFADD";
        argv[argc++] = key;
        while (i < b->domain_count && argc < 2 + 512)
            argv[argc++] = b->domain_text[i++];
        send_strings(s, write_cb, argc, argv);
    }
    snprintf(ttl, sizeof(ttl), "%.0f", s->set.retention);
    {
        const char *ex[3] = {"EXPIRE", key, ttl};
        send_strings(s, write_cb, 3, ex);
    }
    b->domain_count = 0;
}

void store_batch_domain(struct store_batch *b, int64_t minute, uint64_t hash)
{
    if (b->s->ac == NULL)
        return;
    if (b->domain_count > 0 && minute != b->domain_minute)
        send_domains(b);
    if (b->domain_count == DOMAINS_PER_FLUSH) {
        b->s->dropped_domains++;
        return;
    }
    b->domain_minute = minute;
    snprintf(b->domain_text[b->domain_count++], 17, "%016" PRIx64, hash);
}

void store_batch_totals(struct store_batch *b, const uint64_t *counts)
{
    char key[160];

    if (b->s->ac == NULL)
        return;
    key_of(b->s, key, sizeof(key), "t", -1);
    write_counts(b->s, key, counts);
}

void store_batch_culprits(struct store_batch *b, const char *const *members, const uint64_t *scores,
                          unsigned n)
{
    struct store *s = b->s;
    char key[160], ttl[24], score[STORE_CULPRITS][24];
    const char *argv[2 + 2 * STORE_CULPRITS];
    int argc = 0;

    if (s->ac == NULL)
        return;
    key_of(s, key, sizeof(key), "culprits", -1);
    {
        const char *del[2] = {"DEL", key};
        send_strings(s, write_cb, 2, del);
    }
    if (n == 0)
        return;
    if (n > STORE_CULPRITS)
        n = STORE_CULPRITS;
    argv[argc++] = "ZADD";
    argv[argc++] = key;
    for (unsigned i = 0; i < n; i++) {
        snprintf(score[i], sizeof(score[i]), "%" PRIu64, scores[i]);
        argv[argc++] = score[i];
        argv[argc++] = members[i];
    }
    send_strings(s, write_cb, argc, argv);
    snprintf(ttl, sizeof(ttl), "%.0f", s->set.retention);
    {
        const char *ex[3] = {"EXPIRE", key, ttl};
        send_strings(s, write_cb, 3, ex);
    }
}

/* ------------------------------------------------------------- reading */

static int counter_index(const struct store *s, const char *field, size_t len)
{
    for (unsigned i = 0; i < s->set.counter_count; i++) {
        size_t n = strlen(s->set.counter_names[i]);
        if (n == len && memcmp(field, s->set.counter_names[i], n) == 0)
            return (int)i;
    }
    return -1;
}

/* Sum an HGETALL reply's "<counter>@<run>" fields into sums; runs equal to
 * skip_run (if not NULL) are left out. */
static void sum_fields(const struct store *s, const redisReply *r, uint64_t *sums,
                       const char *skip_run)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        const char *at;
        int c;

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        at = memchr(f->str, '@', f->len);
        if (at == NULL)
            continue;
        if (skip_run && strcmp(at + 1, skip_run) == 0)
            continue;
        c = counter_index(s, f->str, (size_t)(at - f->str));
        if (c >= 0)
            sums[c] += strtoull(v->str, NULL, 10);
    }
}

/* What a read reply is for. */
struct read_tag {
    struct store *s;
    unsigned host;  /* index in next_hosts */
    int what; /* 0: totals, 1: a minute, 2: PFCOUNT of window `w`, 3: culprits, 4: a tdns
               * minute, 5: tdns updated, 6: rw:throttle, 7: this host's baselines, 8: a
               * host's state */
    int64_t minute;
    unsigned w;
};

static int64_t now_minute(void)
{
    return (int64_t)(ev_time() / 60.0);
}

/* Minutes a window reads: whole minutes, the current one included.  The
 * fleet view reads an hour at most, so that its cost stays bounded; longer
 * windows are not shown for other hosts (STORE_MAX_MINUTES). */
static int64_t window_minutes(const struct store *s, unsigned w)
{
    int64_t m = (int64_t)((s->window_seconds[w] + 59.0) / 60.0);

    if (m > STORE_MAX_MINUTES)
        return 0;
    return m < 1 ? 1 : m;
}

/* One minute of tdns_client's query counts (fields TYPE@RUN, summed over the feed's runs). */
static void add_tdns(struct store *s, const redisReply *r, int64_t age)
{
    static const char *const names[TDNS_TYPES] = {"A", "AAAA", "MX", "PTR"};

    if (r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        const char *at;

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            (at = memchr(f->str, '@', f->len)) == NULL)
            continue;
        for (int t = 0; t < TDNS_TYPES; t++)
            if ((size_t)(at - f->str) == strlen(names[t]) &&
                memcmp(f->str, names[t], strlen(names[t])) == 0)
                for (unsigned w = 0; w < s->set.window_count; w++)
                    if (age < window_minutes(s, w))
                        s->next_tdns[w][t] += strtoull(v->str, NULL, 10);
    }
}

static void read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct read_tag *t = priv;
    struct store *s = t->s;
    redisReply *r = reply;

    (void)ac;
    if (r != NULL && r->type != REDIS_REPLY_ERROR) {
        struct store_host *h = &s->next_hosts[t->host];

        if (t->what == 0) {
            sum_fields(s, r, h->totals, NULL);
        } else if (t->what == 1) {
            int64_t age = now_minute() - t->minute;
            uint64_t own[STORE_MAX_COUNTERS] = {0};

            for (unsigned w = 0; w < s->set.window_count; w++)
                if (age < window_minutes(s, w))
                    sum_fields(s, r, h->window[w], NULL);
            /* This host's earlier runs, once, for the daemon's own windows. */
            if (!s->history_done && strcmp(h->host, s->host_id) == 0) {
                sum_fields(s, r, own, s->run);
                s->src.history(s->src.ctx, t->minute, own);
            }
        } else if (t->what == 2 && r->type == REDIS_REPLY_INTEGER) {
            h->domains[t->w] = (uint64_t)r->integer;
        } else if (t->what == 4) {
            add_tdns(s, r, now_minute() - t->minute);
        } else if (t->what == 5 && r->type == REDIS_REPLY_STRING) {
            s->next_tdns_updated = strtod(r->str, NULL);
        } else if (t->what == 8 && r->type == REDIS_REPLY_STRING) {
            if ((r->len == 5 && memcmp(r->str, "quiet", 5) == 0) ||
                (r->len == 4 && memcmp(r->str, "loud", 4) == 0))
                snprintf(h->state, sizeof(h->state), "%.*s", (int)r->len, r->str);
        } else if (t->what == 6 && r->type == REDIS_REPLY_ARRAY && s->src.throttles) {
            s->src.throttles(s->src.ctx, true, false, NULL, 0, NULL, 0);
            for (size_t i = 0; i + 1 < r->elements; i += 2)
                if (r->element[i]->type == REDIS_REPLY_STRING &&
                    r->element[i + 1]->type == REDIS_REPLY_STRING)
                    s->src.throttles(s->src.ctx, false, false, r->element[i]->str,
                                     r->element[i]->len, r->element[i + 1]->str,
                                     r->element[i + 1]->len);
            s->src.throttles(s->src.ctx, false, true, NULL, 0, NULL, 0);
        } else if (t->what == 7 && s->src.baseline) {
            /* Told even when there is none (or it cannot be read), so that the daemon saves
             * its own only after. */
            s->baseline_done = true;
            if (r->type == REDIS_REPLY_STRING)
                s->src.baseline(s->src.ctx, r->str, r->len);
            else
                s->src.baseline(s->src.ctx, NULL, 0);
        } else if (t->what == 3 && r->type == REDIS_REPLY_ARRAY) {
            /* ZREVRANGE ... WITHSCORES: member, score pairs. */
            h->culprit_count = 0;
            for (size_t i = 0; i + 1 < r->elements && h->culprit_count < STORE_CULPRITS; i += 2) {
                unsigned c = h->culprit_count++;
                snprintf(h->culprits[c].member, sizeof(h->culprits[c].member), "%.*s",
                         (int)r->element[i]->len, r->element[i]->str);
                h->culprits[c].recipients = strtoull(r->element[i + 1]->str, NULL, 10);
            }
        }
    }
    /* This host's baselines unreadable (a key of another type): none, said once; the first
     * save replaces the key.  Not answered at all (a lost connection): asked again. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR && t->what == 7 && s->src.baseline) {
        log_warning("store: rw:{%s}:baseline cannot be read (%s): learning from "
                    "baseline_start; the first save replaces it",
                    s->host_id, r->str);
        s->baseline_done = true;
        s->src.baseline(s->src.ctx, NULL, 0);
    }
    free(t);
    /* A bad key of some host (another version, a hand edit) leaves that figure out;
     * it does not fail the round. Only a lost connection does. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        if (s->outstanding > 0 && --s->outstanding == 0)
            finish_round(s);
        return;
    }
    round_reply(s, r);
}

static void send_read(struct store *s, unsigned host, int what, int64_t minute, unsigned w,
                      int argc, const char **argv)
{
    struct read_tag *t = calloc(1, sizeof(*t));
    size_t local[MAX_ARGS];
    size_t *lens = argc <= MAX_ARGS ? local : malloc(sizeof(*lens) * (size_t)argc);

    if (t == NULL || lens == NULL)
        abort();
    t->s = s;
    t->host = host;
    t->what = what;
    t->minute = minute;
    t->w = w;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (s->ac == NULL || redisAsyncCommandArgv(s->ac, read_cb, t, argc, argv, lens) != REDIS_OK) {
        free(t);
        s->round_failed = true;
    } else {
        s->outstanding++;
    }
    if (lens != local)
        free(lens);
}

static void hosts_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct store *s = priv;
    redisReply *r = reply;
    int64_t now_m = now_minute(), longest = 1;

    (void)ac;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        for (unsigned w = 0; w < s->set.window_count; w++)
            if (window_minutes(s, w) > longest)
                longest = window_minutes(s, w);
        s->next_host_count = 0;
        /* WITHSCORES: member, score pairs. */
        for (size_t i = 0; i + 1 < r->elements && s->next_host_count < STORE_MAX_HOSTS; i += 2) {
            unsigned hi = s->next_host_count++;
            struct store_host *h = &s->next_hosts[hi];
            char key[200];
            const char *argv[2 + STORE_MAX_MINUTES];

            memset(h, 0, sizeof(*h));
            snprintf(h->host, sizeof(h->host), "%.*s", (int)r->element[i]->len,
                     r->element[i]->str);
            h->updated = strtod(r->element[i + 1]->str, NULL);
            snprintf(key, sizeof(key), "rw:{%s}:t", h->host);
            argv[0] = "HGETALL";
            argv[1] = key;
            send_read(s, hi, 0, 0, 0, 2, argv);
            {
                const char *get[2] = {"GET", key};

                snprintf(key, sizeof(key), "rw:{%s}:state", h->host);
                send_read(s, hi, 8, 0, 0, 2, get);
            }
            {
                const char *zr[5] = {"ZREVRANGE", key, "0", "19", "WITHSCORES"};
                snprintf(key, sizeof(key), "rw:{%s}:culprits", h->host);
                send_read(s, hi, 3, 0, 0, 5, zr);
                argv[0] = "HGETALL";
            }
            for (int64_t m = now_m - longest + 1; m <= now_m; m++) {
                snprintf(key, sizeof(key), "rw:{%s}:m:%" PRId64, h->host, m);
                send_read(s, hi, 1, m, 0, 2, argv);
            }
            for (unsigned w = 0; w < s->set.window_count; w++) {
                static char keys[STORE_MAX_MINUTES][200];
                int64_t n = window_minutes(s, w);
                int argc = 0;

                if (n == 0)
                    continue;
                argv[argc++] = "PFCOUNT";
                for (int64_t k = 0; k < n; k++) {
                    snprintf(keys[k], sizeof(keys[k]), "rw:{%s}:d:%" PRId64, h->host,
                             now_m - k);
                    argv[argc++] = keys[k];
                }
                send_read(s, hi, 2, 0, w, argc, argv);
            }
        }
    }
    round_reply(s, r);
}

static void start_reading(struct store *s)
{
    char min[32], limit[16];
    /* The most recent writers first, and no more than the view holds. */
    const char *argv[8] = {"ZREVRANGEBYSCORE", "rw:hosts", "+inf", min, "WITHSCORES",
                           "LIMIT", "0", limit};

    s->reading = true;
    s->round_failed = false;
    snprintf(min, sizeof(min), "%.0f", ev_time() - s->set.retention);
    snprintf(limit, sizeof(limit), "%d", STORE_MAX_HOSTS);
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_set(&s->deadline, s->set.timeout, 0.0);
    ev_timer_start(s->loop, &s->deadline);
    send_strings(s, hosts_cb, 8, argv);
    {
        /* The fleet's throttles; and once, the baselines this host learned before. */
        const char *hgetall[2] = {"HGETALL", "rw:throttle"};
        char key[STORE_HOST_MAX + 32];
        const char *get[2] = {"GET", key};

        send_read(s, 0, 6, 0, 0, 2, hgetall);
        /* Asked again at every read until an answer came. */
        if (!s->baseline_done) {
            snprintf(key, sizeof(key), "rw:{%s}:baseline", s->host_id);
            send_read(s, 0, 7, 0, 0, 2, get);
        }
    }
    if (s->tdns_client != NULL) {
        /* The upstream server's view of this host, as relaywatch feed wrote it. */
        int64_t now_m = now_minute(), longest = 1;
        char key[200];
        const char *get[2] = {"GET", key};

        memset(s->next_tdns, 0, sizeof(s->next_tdns));
        s->next_tdns_updated = 0;
        for (unsigned w = 0; w < s->set.window_count; w++)
            if (window_minutes(s, w) > longest)
                longest = window_minutes(s, w);
        for (int64_t m = now_m - longest + 1; m <= now_m; m++) {
            const char *hget[2] = {"HGETALL", key};

            snprintf(key, sizeof(key), "rw:{%s}:q:%" PRId64, s->tdns_client, m);
            send_read(s, 0, 4, m, 0, 2, hget);
        }
        snprintf(key, sizeof(key), "rw:{%s}:q:updated", s->tdns_client);
        send_read(s, 0, 5, 0, 0, 2, get);
    }
    if (s->outstanding == 0)
        finish_round(s);
}

/* --------------------------------------------------------------- rounds */

/* A round (the writes, then the fleet read) has all its replies, or failed. */
static void finish_round(struct store *s)
{
    bool was_reading = s->reading;

    ev_timer_stop(s->loop, &s->deadline);
    s->reading = false;
    /* History is added to the windows once, whatever became of the round. */
    if (was_reading)
        s->history_done = true;
    if (s->round_failed) {
        s->failures++;
        s->healthy = false;
        /* Only a failed write needs the counts written again. */
        if (!was_reading)
            s->src.rewrite_all(s->src.ctx);
    } else if (was_reading) {
        memcpy(s->hosts, s->next_hosts, sizeof(s->hosts[0]) * s->next_host_count);
        s->host_count = s->next_host_count;
        if (s->tdns_client != NULL) {
            memcpy(s->tdns, s->next_tdns, sizeof(s->tdns));
            s->tdns_updated = s->next_tdns_updated;
            s->tdns_read = true;
        }
    } else {
        s->flushes++;
        if (!s->healthy && s->errors_logged)
            log_info("store: %s accepts writes again", where(s));
        s->healthy = true;
        s->errors_logged = false;
        s->has_error = false;
    }
    if (s->final_done != NULL) {
        void (*done)(void *) = s->final_done;

        /* A round that was under way when the daemon began to stop: now the last write. */
        if (!s->final_round && s->connected && s->ac != NULL) {
            s->final_round = true;
            flush_round(s);
            return;
        }
        s->final_done = NULL;
        done(s->final_arg);
        return;
    }
    if (!was_reading && !s->round_failed && s->connected)
        start_reading(s);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store *s = w->data;
    redisAsyncContext *ac = s->ac;
    char why[128];

    (void)loop;
    (void)revents;
    snprintf(why, sizeof(why), "did not answer within %.3gs", s->set.timeout);
    went_down(s, why);
    s->round_failed = true;
    /* Dropping the connection runs the waiting callbacks with no reply (they
     * end the round); disconnect_cb is told nothing, we reconnect here. */
    s->ac = NULL;
    if (ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    if (s->outstanding > 0) {
        s->outstanding = 0;
        finish_round(s);
    }
    if (s->final_done == NULL)
        schedule_reconnect(s);
}

static void flush_round(struct store *s)
{
    struct store_batch b = {s, 0, 0, NULL};
    char now[32];
    const char *zadd[4] = {"ZADD", "rw:hosts", now, s->host_id};

    s->round_failed = false;
    s->reading = false;
    b.domain_text = malloc(sizeof(*b.domain_text) * DOMAINS_PER_FLUSH);
    if (b.domain_text == NULL)
        abort();
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_set(&s->deadline, s->set.timeout, 0.0);
    ev_timer_start(s->loop, &s->deadline);
    s->src.collect(s->src.ctx, &b);
    send_domains(&b);
    free(b.domain_text);
    snprintf(now, sizeof(now), "%.3f", ev_time());
    send_strings(s, write_cb, 4, zadd);
    {
        /* Hosts silent for longer than the retention leave the fleet. */
        char cutoff[32];
        const char *trim[4] = {"ZREMRANGEBYSCORE", "rw:hosts", "-inf", cutoff};

        snprintf(cutoff, sizeof(cutoff), "(%.0f", ev_time() - s->set.retention);
        send_strings(s, write_cb, 4, trim);
    }
    if (s->outstanding == 0)
        finish_round(s);
}

static void flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store *s = w->data;

    (void)loop;
    (void)revents;
    if (s->connected && s->outstanding == 0)
        flush_round(s);
}

/* ------------------------------------------------------------------ API */

struct store *store_new(struct ev_loop *loop, const struct store_settings *set,
                        const struct store_source *source, char *err, size_t errlen)
{
    struct store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        abort();
    s->loop = loop;
    s->set = *set;
    s->src = *source;
    s->url = strdup(set->url);
    s->host_id = strdup(set->host_id);
    if (set->tdns_client != NULL && set->tdns_client[0] != '\0')
        s->tdns_client = strdup(set->tdns_client);
    s->password = set->password ? strdup(set->password) : NULL;
    if (s->url == NULL || s->host_id == NULL)
        abort();
    for (unsigned w = 0; w < set->window_count && w < STORE_MAX_WINDOWS; w++)
        s->window_seconds[w] = set->window_seconds[w];
    if (set->counter_count > STORE_MAX_COUNTERS)
        s->set.counter_count = STORE_MAX_COUNTERS;
    if (strcmp(set->url, "memory") == 0)
        return s;
    s->redis = true;
    if (redis_address_parse(&s->addr, set->url, err, errlen) != 0) {
        store_free(s);
        return NULL;
    }
    /* Fields of this run: start time and pid make it unique per host. */
    snprintf(s->run, sizeof(s->run), "%lx.%x", (unsigned long)ev_time(), (unsigned)getpid());
    s->backoff = BACKOFF_MIN;
    ev_timer_init(&s->flush_timer, flush_cb, set->flush_interval, set->flush_interval);
    ev_timer_init(&s->deadline, deadline_cb, set->timeout, 0.0);
    ev_timer_init(&s->reconnect, reconnect_cb, 0.0, 0.0);
    s->flush_timer.data = s->deadline.data = s->reconnect.data = s;
    ev_timer_start(loop, &s->flush_timer);
    connect_now(s);
    return s;
}

void store_flush_final(struct store *s, void (*done)(void *arg), void *arg)
{
    ev_timer_stop(s->loop, &s->flush_timer);
    ev_timer_stop(s->loop, &s->reconnect);
    if (!s->redis || !s->connected) {
        done(arg);
        return;
    }
    s->final_done = done;
    s->final_arg = arg;
    if (s->outstanding == 0) {
        s->final_round = true;
        flush_round(s);
    }
    /* else: when the round under way ends, finish_round starts the last write */
}

void store_free(struct store *s)
{
    if (s == NULL)
        return;
    if (s->redis) {
        ev_timer_stop(s->loop, &s->flush_timer);
        ev_timer_stop(s->loop, &s->deadline);
        ev_timer_stop(s->loop, &s->reconnect);
        s->final_done = NULL;
        s->connected = false;
        if (s->ac != NULL) {
            redisAsyncContext *ac = s->ac;
            ac->data = NULL; /* no callbacks into a store being freed */
            s->ac = NULL;
            redisAsyncFree(ac);
        }
    }
    free(s->url);
    free(s->host_id);
    free(s->tdns_client);
    free(s->password);
    free(s->addr.host);
    free(s->addr.path);
    free(s);
}

void store_get_state(const struct store *s, struct store_state *out)
{
    memset(out, 0, sizeof(*out));
    out->backend = s->redis ? "redis" : "memory";
    out->shared = s->redis;
    out->connected = s->redis ? s->connected && s->healthy : true;
    out->flushes = s->flushes;
    out->failures = s->failures;
    out->dropped_domains = s->dropped_domains;
    out->last_error = s->has_error ? s->last_error : NULL;
    out->host_count = s->host_count;
    out->hosts = s->hosts;
    out->tdns_read = s->tdns_read;
    out->tdns_updated = s->tdns_updated;
    memcpy(out->tdns, s->tdns, sizeof(out->tdns));
}

/* ------------------------------------------------------ the feed's writer */

struct store_query_writer {
    struct redis_address addr;
    char *password;
    double timeout, retention;
    char run[40];
    redisContext *c;
    bool failed;           /* this batch cannot reach Redis */
    char error[256];
    unsigned pending;      /* replies owed by the queued commands */
    char (*clients)[64];   /* clients written in this batch, for their :updated keys */
    unsigned client_count, client_cap;
};

struct store_query_writer *store_query_writer_new(const char *url, const char *password,
                                                  double timeout, double retention, char *err,
                                                  size_t errlen)
{
    struct store_query_writer *w;

    if (strncmp(url, "redis://", 8) != 0 && strncmp(url, "redis+unix://", 13) != 0) {
        snprintf(err, errlen, "store is '%s': the feed needs a shared store (store = "
                              "redis://HOST:PORT or redis+unix:///PATH)", url);
        return NULL;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        abort();
    if (redis_address_parse(&w->addr, url, err, errlen) != 0) {
        free(w);
        return NULL;
    }
    w->password = password && *password ? strdup(password) : NULL;
    w->timeout = timeout;
    w->retention = retention;
    snprintf(w->run, sizeof(w->run), "%lx.%x", (unsigned long)time(NULL), (unsigned)getpid());
    return w;
}

void store_query_writer_free(struct store_query_writer *w)
{
    if (w == NULL)
        return;
    if (w->c)
        redisFree(w->c);
    free(w->addr.host);
    free(w->addr.path);
    free(w->password);
    free(w->clients);
    free(w);
}

const char *store_query_writer_run(const struct store_query_writer *w)
{
    return w->run;
}

static void writer_fail(struct store_query_writer *w, const char *what)
{
    if (!w->failed)
        snprintf(w->error, sizeof(w->error), "%s", what);
    w->failed = true;
}

/* One command's reply; false (and the batch failed) on an error. */
static bool writer_reply_ok(struct store_query_writer *w)
{
    redisReply *r = NULL;
    bool ok;

    if (redisGetReply(w->c, (void **)&r) != REDIS_OK || r == NULL) {
        writer_fail(w, w->c->errstr[0] ? w->c->errstr : "no reply");
        return false;
    }
    ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        writer_fail(w, r->str);
    freeReplyObject(r);
    return ok;
}

static void writer_connect(struct store_query_writer *w)
{
    struct timeval tv = {(time_t)w->timeout,
                         (suseconds_t)((w->timeout - (double)(time_t)w->timeout) * 1e6)};

    w->c = w->addr.path ? redisConnectUnixWithTimeout(w->addr.path, tv)
                        : redisConnectWithTimeout(w->addr.host, w->addr.port, tv);
    if (w->c == NULL || w->c->err) {
        writer_fail(w, w->c ? w->c->errstr : "cannot connect");
        if (w->c)
            redisFree(w->c);
        w->c = NULL;
        return;
    }
    redisSetTimeout(w->c, tv);
    if (w->password) {
        redisAppendCommand(w->c, "AUTH %s", w->password);
        if (!writer_reply_ok(w))
            return;
    }
    if (w->addr.db != 0) {
        redisAppendCommand(w->c, "SELECT %d", w->addr.db);
        writer_reply_ok(w);
    }
}

void store_query_writer_set(struct store_query_writer *w, const char *client, int64_t minute,
                            const char *type, uint64_t count)
{
    char key[160], field[80], value[24], ttl[24];

    if (w->failed)
        return;
    if (w->c == NULL) {
        writer_connect(w);
        if (w->failed)
            return;
    }
    snprintf(key, sizeof(key), "rw:{%s}:q:%" PRId64, client, minute);
    snprintf(field, sizeof(field), "%s@%s", type, w->run);
    snprintf(value, sizeof(value), "%" PRIu64, count);
    snprintf(ttl, sizeof(ttl), "%.0f", w->retention);
    redisAppendCommand(w->c, "HSET %s %s %s", key, field, value);
    redisAppendCommand(w->c, "EXPIRE %s %s", key, ttl);
    w->pending += 2;
    if (w->client_count == 0 || strcmp(w->clients[w->client_count - 1], client) != 0) {
        if (w->client_count == w->client_cap) {
            unsigned cap = w->client_cap ? w->client_cap * 2 : 64;
            void *p = realloc(w->clients, cap * sizeof(*w->clients));
            if (p == NULL)
                abort();
            w->clients = p;
            w->client_cap = cap;
        }
        snprintf(w->clients[w->client_count++], sizeof(w->clients[0]), "%s", client);
    }
}

bool store_query_writer_flush(struct store_query_writer *w, char *err, size_t errlen)
{
    char now[24], ttl[24], key[160];

    if (!w->failed && w->c != NULL && w->client_count > 0) {
        snprintf(now, sizeof(now), "%ld", (long)time(NULL));
        snprintf(ttl, sizeof(ttl), "%.0f", w->retention);
        for (unsigned i = 0; i < w->client_count; i++) {
            /* The same client may come back in a batch: one SET each time is harmless. */
            snprintf(key, sizeof(key), "rw:{%s}:q:updated", w->clients[i]);
            redisAppendCommand(w->c, "SET %s %s EX %s", key, now, ttl);
            w->pending++;
        }
    }
    while (!w->failed && w->pending > 0) {
        w->pending--;
        writer_reply_ok(w);
    }
    w->pending = 0;
    w->client_count = 0;
    if (!w->failed)
        return true;
    snprintf(err, errlen, "%s", w->error);
    if (w->c)
        redisFree(w->c);
    w->c = NULL;
    w->failed = false;
    return false;
}
