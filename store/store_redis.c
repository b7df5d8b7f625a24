/*
 * store_redis: the Redis backend, on hiredis's async API attached to the
 * daemon's libev loop.  See store.h and relaywatchd(8), REDIS STORE.
 *
 * Work comes in rounds, one at a time: every flush interval the writes of
 * what the daemon collected, then (if they all succeeded) the fleet read.
 * A round is over when every reply it awaits is back (`outstanding` falls
 * to 0), or when the connection goes.
 *
 * Debian's hiredis 0.14 has no command timeout, so every round carries its
 * own deadline: if its replies are not all back by store_timeout, the
 * connection is dropped (redisAsyncFree from the timer, never from a
 * hiredis callback) and re-made with a backoff of 1 s doubling to 30 s.
 */
#include <ev.h>
#include <fcntl.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "redis_address.h"
#include "store.h"
#include "store_backend.h"
#include "xalloc.h"

#define BACKOFF_MIN 1.0
#define BACKOFF_MAX 30.0
#define MAX_ARGS 64
#define DOMAINS_PER_FLUSH 65536 /* past this a flush drops domain hashes (counted) */

/* The Redis backend's state. */
struct store_backend {
    struct ev_loop *loop;
    struct store_settings set;
    double window_seconds[STORE_MAX_WINDOWS];
    struct store_source src;
    struct redis_address addr;
    char *password, *username, *host_id, *url; /* username: NULL for none */
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

/* What the daemon's collect fills in one write round; relay domains are gathered per minute
 * and sent as PFADDs of up to 512 at a time. */
struct store_batch {
    struct store_backend *s;
    int64_t domain_minute;
    unsigned domain_count;
    char (*domain_text)[17];
};

static void connect_now(struct store_backend *s);
static void finish_round(struct store_backend *s);
static void flush_round(struct store_backend *s);

static void set_error(struct store_backend *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct store_backend *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
    va_end(ap);
    s->has_error = true;
}

static const char *where(const struct store_backend *s)
{
    return s->url;
}

/* ---------------------------------------------------------- connection */

/* Replies awaited from now on must be back within store_timeout. */
static void arm_deadline(struct store_backend *s)
{
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_set(&s->deadline, s->set.timeout, 0.0);
    ev_timer_start(s->loop, &s->deadline);
}

static void schedule_reconnect(struct store_backend *s)
{
    ev_timer_stop(s->loop, &s->reconnect);
    ev_timer_set(&s->reconnect, s->backoff, 0.0);
    ev_timer_start(s->loop, &s->reconnect);
    s->backoff = s->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : s->backoff * 2;
}

/* The store is unusable for now: say so once, not per attempt. */
static void went_down(struct store_backend *s, const char *why)
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
    struct store_backend *s = ac->data;

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
    struct store_backend *s = priv;
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
    struct store_backend *s = ac->data;
    redisReply *r = reply;

    (void)priv;
    if (r == NULL || s == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[300];

        /* The user may be named (not the password): which one the server refused. */
        if (s->username != NULL)
            snprintf(why, sizeof(why), "AUTH as user '%s' refused: %s", s->username, r->str);
        else
            snprintf(why, sizeof(why), "AUTH refused: %s", r->str);
        went_down(s, why);
        s->setup_failed = true;
        redisAsyncDisconnect(s->ac);
    }
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct store_backend *s = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        ev_timer_stop(s->loop, &s->deadline);
        s->ac = NULL;
        went_down(s, ac->errstr);
        schedule_reconnect(s);
        return;
    }
    if (s->password != NULL && s->password[0] != '\0') {
        if (s->username != NULL)
            redisAsyncCommand(s->ac, setup_cb, NULL, "AUTH %s %s", s->username, s->password);
        else
            redisAsyncCommand(s->ac, setup_cb, NULL, "AUTH %s", s->password);
    }
    /* SELECT (or PING) answers last: its reply says the connection is ready. */
    if (s->addr.db != 0)
        redisAsyncCommand(s->ac, ready_cb, s, "SELECT %d", s->addr.db);
    else
        redisAsyncCommand(s->ac, ready_cb, s, "PING");
}

static void connect_now(struct store_backend *s)
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
    arm_deadline(s);
    redisLibevAttach(s->loop, ac);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store_backend *s = w->data;

    (void)loop;
    (void)revents;
    if (s->ac == NULL)
        connect_now(s);
}

/* ------------------------------------------------------------- writing */

/* One reply fewer awaited: the last one ends the round. */
static void reply_arrived(struct store_backend *s)
{
    if (s->outstanding > 0 && --s->outstanding == 0)
        finish_round(s);
}

static void round_reply(struct store_backend *s, redisReply *r)
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
    reply_arrived(s);
}

static void write_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    round_reply(priv, reply);
}

/* One command of the round under way, its reply to cb with priv: awaited (outstanding), or
 * false and the round failed when it cannot be sent (no connection). */
static bool send_command(struct store_backend *s, redisCallbackFn *cb, void *priv, int argc,
                         const char **argv)
{
    size_t local[MAX_ARGS];
    size_t *lens = argc <= MAX_ARGS ? local : malloc(sizeof(*lens) * (size_t)argc);
    bool sent;

    if (lens == NULL)
        abort();
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    sent = s->ac != NULL && redisAsyncCommandArgv(s->ac, cb, priv, argc, argv, lens) == REDIS_OK;
    if (sent)
        s->outstanding++;
    else
        s->round_failed = true;
    if (lens != local)
        free(lens);
    return sent;
}

/* A write: its reply only has to be no error. */
static void send_write(struct store_backend *s, int argc, const char **argv)
{
    send_command(s, write_cb, s, argc, argv);
}

static void key_of(const struct store_backend *s, char *out, size_t len, const char *kind,
                   int64_t minute)
{
    /* One hash tag per host: all of a host's keys share a Redis Cluster slot. */
    if (minute >= 0)
        snprintf(out, len, "rw:{%s}:%s:%" PRId64, s->host_id, kind, minute);
    else
        snprintf(out, len, "rw:{%s}:%s", s->host_id, kind);
}

/* HSET key <counter>@<run> value ... for every counter; then EXPIRE. */
static void write_counts(struct store_backend *s, const char *key, const uint64_t *counts)
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
    send_write(s, argc, argv);
    snprintf(ttl, sizeof(ttl), "%.0f", s->set.retention);
    {
        const char *ex[3] = {"EXPIRE", key, ttl};
        send_write(s, 3, ex);
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
                           STORE_THROTTLE_KEY, field, value};

    if (value == NULL) {
        snprintf(when, sizeof(when), "%.3f", changed);
        argv[5] = when;
    }
    send_write(b->s, 6, argv);
}

/* SET rw:{HOST}:KIND value, kept store_retention. */
static void write_text(struct store_backend *s, const char *kind, const char *value)
{
    char key[160], ttl[32];
    const char *argv[5] = {"SET", key, value, "EX", ttl};

    key_of(s, key, sizeof(key), kind, -1);
    snprintf(ttl, sizeof(ttl), "%.0f", s->set.retention);
    send_write(s, 5, argv);
}

void store_batch_state(struct store_batch *b, const char *state)
{
    write_text(b->s, "state", state);
}

void store_batch_baseline(struct store_batch *b, const char *text)
{
    write_text(b->s, "baseline", text);
}

static void send_domains(struct store_batch *b)
{
    struct store_backend *s = b->s;
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
        send_write(s, argc, argv);
    }
    snprintf(ttl, sizeof(ttl), "%.0f", s->set.retention);
    {
        const char *ex[3] = {"EXPIRE", key, ttl};
        send_write(s, 3, ex);
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
    struct store_backend *s = b->s;
    char key[160], ttl[24], score[STORE_CULPRITS][24];
    const char *argv[2 + 2 * STORE_CULPRITS];
    int argc = 0;

    if (s->ac == NULL)
        return;
    key_of(s, key, sizeof(key), "culprits", -1);
    {
        const char *del[2] = {"DEL", key};
        send_write(s, 2, del);
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
    send_write(s, argc, argv);
    snprintf(ttl, sizeof(ttl), "%.0f", s->set.retention);
    {
        const char *ex[3] = {"EXPIRE", key, ttl};
        send_write(s, 3, ex);
    }
}

/* ------------------------------------------------------------- reading */

static int counter_index(const struct store_backend *s, const char *field, size_t len)
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
static void sum_fields(const struct store_backend *s, const redisReply *r, uint64_t *sums,
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
enum read_kind {
    READ_TOTALS,       /* a host's run totals, rw:{HOST}:t */
    READ_MINUTE,       /* a host's counts of one minute, rw:{HOST}:m:MINUTE */
    READ_DOMAINS,      /* PFCOUNT of a host's relay domains over window w */
    READ_CULPRITS,     /* a host's busiest senders, rw:{HOST}:culprits */
    READ_STATE,        /* a host's detector state, rw:{HOST}:state */
    READ_TDNS_MINUTE,  /* tdns_client's query counts of one minute, rw:{CLIENT}:q:MINUTE */
    READ_TDNS_UPDATED, /* the feed's last write for tdns_client, rw:{CLIENT}:q:updated */
    READ_THROTTLES,    /* the fleet's throttle table, rw:throttle */
    READ_BASELINE,     /* this host's learned baselines, rw:{HOST}:baseline */
};

struct read_tag {
    struct store_backend *s;
    enum read_kind kind;
    unsigned host; /* index in next_hosts */
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
static int64_t window_minutes(const struct store_backend *s, unsigned w)
{
    int64_t m = (int64_t)((s->window_seconds[w] + 59.0) / 60.0);

    if (m > STORE_MAX_MINUTES)
        return 0;
    return m < 1 ? 1 : m;
}

/* One minute of tdns_client's query counts (fields TYPE@RUN, summed over the feed's runs). */
static void add_tdns(struct store_backend *s, const redisReply *r, int64_t age)
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

static void read_minute(struct store_backend *s, struct store_host *h, int64_t minute,
                        const redisReply *r)
{
    int64_t age = now_minute() - minute;
    uint64_t own[STORE_MAX_COUNTERS] = {0};

    for (unsigned w = 0; w < s->set.window_count; w++)
        if (age < window_minutes(s, w))
            sum_fields(s, r, h->window[w], NULL);
    /* This host's earlier runs, once, for the daemon's own windows. */
    if (!s->history_done && strcmp(h->host, s->host_id) == 0) {
        sum_fields(s, r, own, s->run);
        s->src.history(s->src.ctx, minute, own);
    }
}

static void read_culprits(struct store_host *h, const redisReply *r)
{
    /* ZREVRANGE ... WITHSCORES: member, score pairs. */
    h->culprit_count = 0;
    for (size_t i = 0; i + 1 < r->elements && h->culprit_count < STORE_CULPRITS; i += 2) {
        unsigned c = h->culprit_count++;
        snprintf(h->culprits[c].member, sizeof(h->culprits[c].member), "%.*s",
                 (int)r->element[i]->len, r->element[i]->str);
        h->culprits[c].recipients = strtoull(r->element[i + 1]->str, NULL, 10);
    }
}

static void read_throttles(struct store_backend *s, const redisReply *r)
{
    s->src.throttles(s->src.ctx, true, false, NULL, 0, NULL, 0);
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            s->src.throttles(s->src.ctx, false, false, r->element[i]->str, r->element[i]->len,
                             r->element[i + 1]->str, r->element[i + 1]->len);
    s->src.throttles(s->src.ctx, false, true, NULL, 0, NULL, 0);
}

/* A read's answer (not an error) into the fleet view under way, or to the daemon. */
static void read_answer(struct store_backend *s, const struct read_tag *t, const redisReply *r)
{
    struct store_host *h = &s->next_hosts[t->host];

    switch (t->kind) {
    case READ_TOTALS:
        sum_fields(s, r, h->totals, NULL);
        break;
    case READ_MINUTE:
        read_minute(s, h, t->minute, r);
        break;
    case READ_DOMAINS:
        if (r->type == REDIS_REPLY_INTEGER)
            h->domains[t->w] = (uint64_t)r->integer;
        break;
    case READ_CULPRITS:
        if (r->type == REDIS_REPLY_ARRAY)
            read_culprits(h, r);
        break;
    case READ_STATE:
        if (r->type == REDIS_REPLY_STRING &&
            ((r->len == 5 && memcmp(r->str, "quiet", 5) == 0) ||
             (r->len == 4 && memcmp(r->str, "loud", 4) == 0)))
            snprintf(h->state, sizeof(h->state), "%.*s", (int)r->len, r->str);
        break;
    case READ_TDNS_MINUTE:
        add_tdns(s, r, now_minute() - t->minute);
        break;
    case READ_TDNS_UPDATED:
        if (r->type == REDIS_REPLY_STRING)
            s->next_tdns_updated = strtod(r->str, NULL);
        break;
    case READ_THROTTLES:
        if (r->type == REDIS_REPLY_ARRAY && s->src.throttles)
            read_throttles(s, r);
        break;
    case READ_BASELINE:
        /* Told even when there is none (or it cannot be read), so that the daemon saves its
         * own only after. */
        if (s->src.baseline) {
            s->baseline_done = true;
            if (r->type == REDIS_REPLY_STRING)
                s->src.baseline(s->src.ctx, r->str, r->len);
            else
                s->src.baseline(s->src.ctx, NULL, 0);
        }
        break;
    }
}

static void read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct read_tag *t = priv;
    struct store_backend *s = t->s;
    redisReply *r = reply;

    (void)ac;
    if (r != NULL && r->type != REDIS_REPLY_ERROR)
        read_answer(s, t, r);
    /* This host's baselines unreadable (a key of another type): none, said once; the first
     * save replaces the key.  Not answered at all (a lost connection): asked again. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR && t->kind == READ_BASELINE &&
        s->src.baseline) {
        log_warning("store: rw:{%s}:baseline cannot be read (%s): learning from "
                    "baseline_start; the first save replaces it",
                    s->host_id, r->str);
        s->baseline_done = true;
        s->src.baseline(s->src.ctx, NULL, 0);
    }
    free(t);
    /* A bad key of some host (another version, a hand edit) leaves that figure out;
     * it does not fail the round. Only a lost connection does. */
    if (r == NULL)
        s->round_failed = true;
    reply_arrived(s);
}

static void send_read(struct store_backend *s, enum read_kind kind, unsigned host, int64_t minute,
                      unsigned w, int argc, const char **argv)
{
    struct read_tag *t = xmalloc(sizeof(*t));

    *t = (struct read_tag){s, kind, host, minute, w};
    if (!send_command(s, read_cb, t, argc, argv))
        free(t);
}

/* The most minutes a window reads. */
static int64_t longest_minutes(const struct store_backend *s)
{
    int64_t longest = 1;

    for (unsigned w = 0; w < s->set.window_count; w++)
        if (window_minutes(s, w) > longest)
            longest = window_minutes(s, w);
    return longest;
}

/* Ask for what the fleet view shows of one host: its totals, state, culprits, recent minutes
 * and relay domains per window. */
static void read_host(struct store_backend *s, unsigned hi, int64_t now_m, int64_t longest)
{
    const struct store_host *h = &s->next_hosts[hi];
    char key[200];
    const char *hgetall[2] = {"HGETALL", key}, *get[2] = {"GET", key};
    const char *zrevrange[5] = {"ZREVRANGE", key, "0", "19", "WITHSCORES"};

    snprintf(key, sizeof(key), "rw:{%s}:t", h->host);
    send_read(s, READ_TOTALS, hi, 0, 0, 2, hgetall);
    snprintf(key, sizeof(key), "rw:{%s}:state", h->host);
    send_read(s, READ_STATE, hi, 0, 0, 2, get);
    snprintf(key, sizeof(key), "rw:{%s}:culprits", h->host);
    send_read(s, READ_CULPRITS, hi, 0, 0, 5, zrevrange);
    for (int64_t m = now_m - longest + 1; m <= now_m; m++) {
        snprintf(key, sizeof(key), "rw:{%s}:m:%" PRId64, h->host, m);
        send_read(s, READ_MINUTE, hi, m, 0, 2, hgetall);
    }
    for (unsigned w = 0; w < s->set.window_count; w++) {
        static char keys[STORE_MAX_MINUTES][200];
        const char *pfcount[1 + STORE_MAX_MINUTES];
        int64_t n = window_minutes(s, w);
        int argc = 0;

        if (n == 0)
            continue;
        pfcount[argc++] = "PFCOUNT";
        for (int64_t k = 0; k < n; k++) {
            snprintf(keys[k], sizeof(keys[k]), "rw:{%s}:d:%" PRId64, h->host, now_m - k);
            pfcount[argc++] = keys[k];
        }
        send_read(s, READ_DOMAINS, hi, 0, w, argc, pfcount);
    }
}

/* rw:hosts answered: the fleet's hosts, the most recent writers first. */
static void hosts_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct store_backend *s = priv;
    redisReply *r = reply;
    int64_t now_m = now_minute(), longest = longest_minutes(s);

    (void)ac;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        s->next_host_count = 0;
        /* WITHSCORES: member, score pairs. */
        for (size_t i = 0; i + 1 < r->elements && s->next_host_count < STORE_MAX_HOSTS; i += 2) {
            unsigned hi = s->next_host_count++;
            struct store_host *h = &s->next_hosts[hi];

            memset(h, 0, sizeof(*h));
            snprintf(h->host, sizeof(h->host), "%.*s", (int)r->element[i]->len,
                     r->element[i]->str);
            h->updated = strtod(r->element[i + 1]->str, NULL);
            read_host(s, hi, now_m, longest);
        }
    }
    round_reply(s, r);
}

/* The second half of a round: the fleet view, the fleet's throttles, this host's stored
 * baselines (until read once) and tdns_client's query counts. */
static void start_reading(struct store_backend *s)
{
    char min[32], limit[16];
    /* The most recent writers first, and no more than the view holds. */
    const char *argv[8] = {"ZREVRANGEBYSCORE", "rw:hosts", "+inf", min, "WITHSCORES",
                           "LIMIT", "0", limit};
    const char *throttles[2] = {"HGETALL", STORE_THROTTLE_KEY};
    char key[200];
    const char *get[2] = {"GET", key}, *hgetall[2] = {"HGETALL", key};

    s->reading = true;
    s->round_failed = false;
    snprintf(min, sizeof(min), "%.0f", ev_time() - s->set.retention);
    snprintf(limit, sizeof(limit), "%d", STORE_MAX_HOSTS);
    arm_deadline(s);
    send_command(s, hosts_cb, s, 8, argv);
    send_read(s, READ_THROTTLES, 0, 0, 0, 2, throttles);
    /* Asked again at every read until an answer came. */
    if (!s->baseline_done) {
        snprintf(key, sizeof(key), "rw:{%s}:baseline", s->host_id);
        send_read(s, READ_BASELINE, 0, 0, 0, 2, get);
    }
    if (s->tdns_client != NULL) {
        /* The upstream server's view of this host, as relaywatch feed wrote it. */
        int64_t now_m = now_minute(), longest = longest_minutes(s);

        memset(s->next_tdns, 0, sizeof(s->next_tdns));
        s->next_tdns_updated = 0;
        for (int64_t m = now_m - longest + 1; m <= now_m; m++) {
            snprintf(key, sizeof(key), "rw:{%s}:q:%" PRId64, s->tdns_client, m);
            send_read(s, READ_TDNS_MINUTE, 0, m, 0, 2, hgetall);
        }
        snprintf(key, sizeof(key), "rw:{%s}:q:updated", s->tdns_client);
        send_read(s, READ_TDNS_UPDATED, 0, 0, 0, 2, get);
    }
    if (s->outstanding == 0)
        finish_round(s);
}

/* --------------------------------------------------------------- rounds */

/* A round (the writes, then the fleet read) has all its replies, or failed. */
static void finish_round(struct store_backend *s)
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
    struct store_backend *s = w->data;
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

static void flush_round(struct store_backend *s)
{
    struct store_batch b = {s, 0, 0, NULL};
    char now[32];
    const char *zadd[4] = {"ZADD", "rw:hosts", now, s->host_id};

    s->round_failed = false;
    s->reading = false;
    b.domain_text = xmalloc(sizeof(*b.domain_text) * DOMAINS_PER_FLUSH);
    arm_deadline(s);
    s->src.collect(s->src.ctx, &b);
    send_domains(&b);
    free(b.domain_text);
    snprintf(now, sizeof(now), "%.3f", ev_time());
    send_write(s, 4, zadd);
    {
        /* Hosts silent for longer than the retention leave the fleet. */
        char cutoff[32];
        const char *trim[4] = {"ZREMRANGEBYSCORE", "rw:hosts", "-inf", cutoff};

        snprintf(cutoff, sizeof(cutoff), "(%.0f", ev_time() - s->set.retention);
        send_write(s, 4, trim);
    }
    if (s->outstanding == 0)
        finish_round(s);
}

static void flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store_backend *s = w->data;

    (void)loop;
    (void)revents;
    if (s->connected && s->outstanding == 0)
        flush_round(s);
}

/* ------------------------------------------------------ the backend's ops */

static void free_backend(struct store_backend *s)
{
    free(s->url);
    free(s->host_id);
    free(s->tdns_client);
    free(s->password);
    free(s->username);
    redis_address_clear(&s->addr);
    free(s);
}

static int redis_open(struct store_backend **out, struct ev_loop *loop,
                      const struct store_settings *set, const struct store_source *source,
                      char *err, size_t errlen)
{
    struct store_backend *s = xcalloc(1, sizeof(*s));

    s->loop = loop;
    s->set = *set;
    s->src = *source;
    s->url = xstrdup(set->url);
    s->host_id = xstrdup(set->host_id);
    if (set->tdns_client != NULL && set->tdns_client[0] != '\0')
        s->tdns_client = strdup(set->tdns_client);
    s->password = set->password ? strdup(set->password) : NULL;
    if (set->username != NULL && set->username[0] != '\0')
        s->username = xstrdup(set->username);
    for (unsigned w = 0; w < set->window_count && w < STORE_MAX_WINDOWS; w++)
        s->window_seconds[w] = set->window_seconds[w];
    if (set->counter_count > STORE_MAX_COUNTERS)
        s->set.counter_count = STORE_MAX_COUNTERS;
    if (redis_address_parse(&s->addr, set->url, err, errlen) != 0) {
        free_backend(s);
        return -1;
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
    *out = s;
    return 0;
}

static void redis_flush_final(struct store_backend *s, void (*done)(void *arg), void *arg)
{
    ev_timer_stop(s->loop, &s->flush_timer);
    ev_timer_stop(s->loop, &s->reconnect);
    if (!s->connected) {
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

static void redis_close(struct store_backend *s)
{
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
    free_backend(s);
}

static void redis_get_state(const struct store_backend *s, struct store_state *out)
{
    out->connected = s->connected && s->healthy;
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

const struct store_backend_ops store_redis_backend = {
    .name = "redis",
    .shared = true,
    .open = redis_open,
    .flush_final = redis_flush_final,
    .close = redis_close,
    .get_state = redis_get_state,
};
