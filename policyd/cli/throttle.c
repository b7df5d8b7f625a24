/*
 * relaywatch list / block / release: see throttle_commands.h.
 *
 * With a Redis store the records are rw:throttle's (policyd/throttle.h):
 * block and release write one record whose `changed` is now, so it beats
 * whatever a daemon wrote before, and every daemon sharing the store
 * obeys within one flush interval (Redis's own AUTH and socket permissions
 * guard it).  With store = memory the daemon holds the only table: GET
 * /throttle on http_listen (the JSON of list --json), POST
 * /throttle?block=KIND:KEY[&duration=SECONDS] and POST
 * /throttle?release=KIND:KEY on control_socket.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "daemon_http.h"
#include "json_text.h"
#include "redis_address.h"
#include "throttle.h"
#include "throttle_commands.h"
#include "throttle_store.h"
#include "xalloc.h"

#define MEMBER_MAX (CULPRIT_KEY_MAX + 32)
#define DURATION_MAX (365.0 * 86400)

/* ------------------------------------------------------------ helpers */

static double now_unix(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RFC 3339 in UTC, whole seconds: 2026-11-25T05:30:00Z. */
static void rfc3339(double t, char *out, size_t len)
{
    time_t s = (time_t)t;
    struct tm tm;

    if (gmtime_r(&s, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, len, "?");
}

static void member_of(const struct throttle_record *r, char *out, size_t len)
{
    snprintf(out, len, "%s:%s", culprit_kind_name(r->kind), r->key);
}

/* KIND:KEY from the command line into r's kind and key, folded as the daemon keys it; false
 * after saying why. */
static bool member_arg(const char *arg, struct throttle_record *r)
{
    if (!throttle_parse_member(arg, strlen(arg), &r->kind, r->key, sizeof(r->key))) {
        fprintf(stderr, "relaywatch: '%s' is not KIND:KEY with KIND one of sasl_username, "
                        "client_address, sender_domain and a KEY of 1 to %d bytes\n",
                arg, CULPRIT_KEY_MAX);
        return false;
    }
    /* Sender domains are folded by the daemon; client addresses come from Postfix in lower
     * case (IPv6); SASL user names are kept as they are. */
    if (r->kind != CULPRIT_SASL_USERNAME)
        for (char *p = r->key; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return true;
}

/* "30m", "2h", "1d", "90s" or seconds ("600"), fractions allowed; above 0, at most 365d. */
static bool parse_block_duration(const char *s, double *out)
{
    static const struct {
        const char *suffix;
        double seconds;
    } units[] = {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    size_t number = strspn(s, "0123456789.");
    char *end;
    double v;

    if (number == 0 || !isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || (size_t)(end - s) != number)
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].suffix) == 0) {
            *out = v * units[i].seconds;
            return *out > 0 && *out <= DURATION_MAX;
        }
    return false;
}

/* Percent-encode everything but RFC 3986's unreserved characters. */
static void url_encode(const char *s, char *out, size_t len)
{
    size_t o = 0;

    for (; *s && o + 4 <= len; s++) {
        unsigned char c = (unsigned char)*s;

        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", c);
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------ records */

struct record_list {
    struct throttle_record *v;
    size_t n, cap;
    unsigned unreadable;
};

static void list_add(struct record_list *l, const struct throttle_record *r)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, cap * sizeof(*l->v));
        l->cap = cap;
    }
    l->v[l->n++] = *r;
}

static void collect_record(void *ctx, const char *field, size_t flen, const char *value,
                           size_t vlen)
{
    struct record_list *l = ctx;
    struct throttle_record r;

    if (throttle_record_parse(field, flen, value, vlen, &r))
        list_add(l, &r);
    else
        l->unreadable++;
}

static int by_since(const void *a, const void *b)
{
    const struct throttle_record *x = a, *y = b;

    if (x->since != y->since)
        return x->since < y->since ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* Connect to the Redis store; NULL after saying why. */
static struct store_throttle_client *open_store(const struct config *cfg)
{
    char err[512];
    struct store_throttle_client *c =
        store_throttle_client_new(cfg->store, cfg->redis_username, cfg->redis_password,
                                  cfg->store_timeout, err, sizeof(err));

    if (c == NULL)
        fprintf(stderr, "relaywatch: %s\n", err);
    return c;
}

/* Every record of rw:throttle into l; false after saying why. */
static bool read_store(struct store_throttle_client *c, struct record_list *l)
{
    char err[512];

    if (store_throttle_read(c, collect_record, l, err, sizeof(err)))
        return true;
    fprintf(stderr, "relaywatch: reading %s: %s\n", STORE_THROTTLE_KEY, err);
    return false;
}

/* ------------------------------------------------------ held messages */

/* What the local daemon holds (GET /held): the quarantine is per host, as its queue is. */
struct held_entry {
    enum culprit_kind kind;
    char key[CULPRIT_KEY_MAX + 1];
    unsigned held, being_held, released;
    double since, released_at;
};

struct held_list {
    struct held_entry *v;
    size_t n;
    bool known; /* the daemon answered */
};

/* GET /held into h; false (said on stderr by daemon_request) when the daemon cannot say. */
static bool fetch_held(const struct config *cfg, const char *command, struct held_list *h)
{
    struct daemon_answer ans;
    size_t i = 0;

    free(h->v);
    memset(h, 0, sizeof(*h));
    if (daemon_request(cfg, command, "GET", "/held", "text/plain", &ans) != 0)
        return false;
    if (ans.code != 200) {
        fprintf(stderr, "relaywatch: relaywatchd at %s answered %d %s to GET /held\n", ans.where,
                ans.code, ans.reason);
        free(ans.raw);
        return false;
    }
    while (i < ans.body_len) {
        const char *line = ans.body + i;
        const char *nl = memchr(line, '\n', ans.body_len - i);
        size_t l = nl ? (size_t)(nl - line) : ans.body_len - i;
        char buf[MEMBER_MAX + 128];
        struct held_entry e;
        int used = 0;
        void *grown;

        i += l + 1;
        if (l >= sizeof(buf))
            continue;
        memcpy(buf, line, l);
        buf[l] = '\0';
        memset(&e, 0, sizeof(e));
        if (sscanf(buf, "%u %u %lf %u %lf %n", &e.held, &e.being_held, &e.since, &e.released,
                   &e.released_at, &used) != 5 || used == 0 ||
            !throttle_parse_member(buf + used, strlen(buf + used), &e.kind, e.key, sizeof(e.key)))
            continue;
        grown = realloc(h->v, (h->n + 1) * sizeof(*h->v));
        if (grown == NULL)
            break;
        h->v = grown;
        h->v[h->n++] = e;
    }
    free(ans.raw);
    h->known = true;
    return true;
}

static const struct held_entry *held_for(const struct held_list *h, enum culprit_kind kind,
                                         const char *key)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].kind == kind && strcmp(h->v[i].key, key) == 0)
            return &h->v[i];
    return NULL;
}

/* ------------------------------------------------------------ output */

static int finish_stdout(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    fprintf(stderr, "relaywatch: writing to stdout: %s\n", strerror(errno));
    return 1;
}

/* The held array, as GET /throttle gives it (null when the daemon could not say). */
static json_t *held_json(const struct held_list *h)
{
    json_t *array;

    if (!h->known)
        return json_null();
    array = json_must(json_array());
    for (size_t i = 0; i < h->n; i++) {
        const struct held_entry *e = &h->v[i];

        json_add_item(array, json_held_entry(culprit_kind_name(e->kind), e->key, e->held,
                                             e->being_held, e->since, e->released,
                                             e->released_at));
    }
    return array;
}

/* The records in force, sorted by since, as GET /throttle gives them (without the daemon's
 * answer counts, which the store does not keep). */
static int print_json(struct record_list *l, const struct held_list *h, double now)
{
    json_t *top = json_must(json_object()), *throttled = json_must(json_array());

    for (size_t i = 0; i < l->n; i++) {
        const struct throttle_record *r = &l->v[i];
        char since[32];
        json_t *o;

        if (!throttle_in_force(r, now))
            continue;
        rfc3339(r->since, since, sizeof(since));
        o = json_must(json_object());
        json_set_field(o, "kind", json_textz(culprit_kind_name(r->kind)));
        json_set_field(o, "key", json_textz(r->key));
        json_set_field(o, "action", json_textz(r->action));
        json_set_field(o, "reason", json_textz(r->reason));
        json_set_field(o, "since", json_textz(since));
        json_set_field(o, "until", r->until != 0 ? json_time(r->until) : json_null());
        json_set_field(o, "source", json_textz(throttle_source_name(r->source)));
        json_set_field(o, "host", json_textz(r->host));
        json_add_item(throttled, o);
    }
    json_set_field(top, "throttled", throttled);
    json_set_field(top, "held", held_json(h));
    json_dumpf(top, stdout, JSON_TEXT_FLAGS);
    putchar('\n');
    json_decref(top);
    return finish_stdout();
}

/* "N since TIME" for a key's held messages, "-" for none. */
static void held_text(const struct held_list *h, enum culprit_kind kind, const char *key,
                      char *out, size_t len)
{
    const struct held_entry *e = held_for(h, kind, key);
    char since[32];

    if (!h->known) {
        snprintf(out, len, "?");
    } else if (e == NULL || e->held + e->being_held == 0) {
        snprintf(out, len, "-");
    } else {
        rfc3339(e->since, since, sizeof(since));
        snprintf(out, len, "%u since %s", e->held + e->being_held, e->since > 0 ? since : "now");
    }
}

/* Keys holding messages whose throttle has ended (the holds stay until released). */
static void print_held_alone(struct record_list *l, const struct held_list *h, double now)
{
    bool header = false;

    for (size_t i = 0; i < h->n; i++) {
        const struct held_entry *e = &h->v[i];
        bool listed = false;
        char m[MEMBER_MAX], held[64];

        if (e->held + e->being_held == 0)
            continue;
        for (size_t j = 0; j < l->n && !listed; j++)
            listed = l->v[j].kind == e->kind && strcmp(l->v[j].key, e->key) == 0 &&
                     throttle_in_force(&l->v[j], now);
        if (listed)
            continue;
        if (!header)
            printf("\nheld on this host, no longer throttled (relaywatch release KIND:KEY frees "
                   "them):\n");
        header = true;
        snprintf(m, sizeof(m), "%s:%s", culprit_kind_name(e->kind), e->key);
        held_text(h, e->kind, e->key, held, sizeof(held));
        printf("  %s  %s\n", m, held);
    }
}

/* A table for a person. */
static int print_table(struct record_list *l, const struct held_list *h, double now)
{
    int wm = (int)strlen("KIND:KEY"), wa = (int)strlen("ACTION");
    unsigned shown = 0;

    for (size_t i = 0; i < l->n; i++) {
        char m[MEMBER_MAX];

        if (!throttle_in_force(&l->v[i], now))
            continue;
        member_of(&l->v[i], m, sizeof(m));
        if ((int)strlen(m) > wm)
            wm = (int)strlen(m);
        if ((int)strlen(l->v[i].action) > wa)
            wa = (int)strlen(l->v[i].action);
        shown++;
    }
    if (shown == 0) {
        printf("nothing is throttled\n");
        print_held_alone(l, h, now);
        return finish_stdout();
    }
    printf("%-*s  %-*s  %-8s  %-20s  %-20s  %-31s  %s\n", wm, "KIND:KEY", wa, "ACTION", "SOURCE",
           "SINCE", "UNTIL", "HELD", "REASON");
    for (size_t i = 0; i < l->n; i++) {
        const struct throttle_record *r = &l->v[i];
        char m[MEMBER_MAX], since[32], until[32], held[64];

        if (!throttle_in_force(r, now))
            continue;
        member_of(r, m, sizeof(m));
        rfc3339(r->since, since, sizeof(since));
        if (r->until != 0)
            rfc3339(r->until, until, sizeof(until));
        else
            snprintf(until, sizeof(until), "until released");
        held_text(h, r->kind, r->key, held, sizeof(held));
        printf("%-*s  %-*s  %-8s  %-20s  %-20s  %-31s  %s\n", wm, m, wa, r->action,
               throttle_source_name(r->source), since, until, held, r->reason);
    }
    print_held_alone(l, h, now);
    return finish_stdout();
}

static int print_list(struct record_list *l, const struct held_list *h, bool json)
{
    double now = now_unix();

    if (l->n > 0)
        qsort(l->v, l->n, sizeof(l->v[0]), by_since);
    if (l->unreadable > 0)
        fprintf(stderr, "relaywatch: %u record(s) of %s could not be read and are left out\n",
                l->unreadable, STORE_THROTTLE_KEY);
    return json ? print_json(l, h, now) : print_table(l, h, now);
}

/* ------------------------------------------------- the daemon's JSON */

/* A string member of o (null or absent: "") into out, cut to whole UTF-8 sequences within
 * cap - 1 bytes, control characters as spaces (the table goes to a terminal); false if it
 * is something else. */
static bool text_member(const json_t *o, const char *name, char *out, size_t cap)
{
    const json_t *v = json_object_get(o, name);
    const char *s;
    size_t len;

    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return false;
    s = json_string_value(v);
    len = json_string_length(v);
    if (len > cap - 1) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--;
    }
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    out[len] = '\0';
    return true;
}

/* 2026-11-25T05:30:00Z (fractions of a second allowed) -> Unix time. */
static bool parse_rfc3339(const char *s, double *out)
{
    struct tm tm;
    double sec;
    int n = 0;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &sec, &n) != 6 ||
        strcmp(s + n, "Z") != 0 || sec < 0 || sec >= 61)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = (int)sec;
    *out = (double)timegm(&tm) + (sec - floor(sec));
    return true;
}

/* One element of GET /throttle's "throttled" array into r; false if it is not a record. */
static bool record_of(const json_t *o, struct throttle_record *r)
{
    char kind[32], since[64], until[64], source[32];
    char member[sizeof(kind) + CULPRIT_KEY_MAX + 2];
    const json_t *until_value = json_object_get(o, "until");

    memset(r, 0, sizeof(*r));
    if (!json_is_object(o) || until_value == NULL || !text_member(o, "kind", kind, sizeof(kind)) ||
        !text_member(o, "key", r->key, sizeof(r->key)) ||
        !text_member(o, "action", r->action, sizeof(r->action)) ||
        !text_member(o, "reason", r->reason, sizeof(r->reason)) ||
        !text_member(o, "since", since, sizeof(since)) ||
        !text_member(o, "until", until, sizeof(until)) ||
        !text_member(o, "source", source, sizeof(source)) ||
        !text_member(o, "host", r->host, sizeof(r->host)))
        return false;
    snprintf(member, sizeof(member), "%s:%s", kind, r->key);
    if (!throttle_parse_member(member, strlen(member), &r->kind, r->key, sizeof(r->key)) ||
        !parse_rfc3339(since, &r->since) ||
        (!json_is_null(until_value) && !parse_rfc3339(until, &r->until)))
        return false;
    r->changed = r->since;
    for (r->source = 0; r->source < THROTTLE_SOURCES; r->source++)
        if (strcmp(source, throttle_source_name(r->source)) == 0)
            return true;
    return false;
}

/* GET /throttle's records into l; false if the body is not that JSON.  (Its "held" array is
 * read from GET /held for the table.) */
static bool records_of(const char *body, size_t len, struct record_list *l)
{
    json_t *top = json_loadb(body, len, 0, NULL);
    const json_t *throttled = json_object_get(top, "throttled");
    bool ok = json_is_array(throttled);

    for (size_t i = 0; ok && i < json_array_size(throttled); i++) {
        struct throttle_record r;

        ok = record_of(json_array_get(throttled, i), &r);
        if (ok)
            list_add(l, &r);
    }
    json_decref(top);
    return ok;
}

/* ------------------------------------------------- via the daemon */

/* One request to the daemon; 0 with a 200 answer, else the exit status after saying why. */
static int ask_daemon(const struct config *cfg, const char *command, const char *method,
                      const char *target, const char *accept, struct daemon_answer *ans)
{
    /* Changes go through the control socket, where the daemon asks who is calling. */
    int rc = strcmp(method, "GET") == 0
                 ? daemon_request(cfg, command, method, target, accept, ans)
                 : daemon_control(cfg, command, method, target, accept, ans);

    if (rc != 0 || ans->code == 200)
        return rc;
    if (ans->code == 400 || ans->code == 403) {
        /* The daemon's reason: its first line (raw is NUL-terminated past the body). */
        size_t n = strcspn(ans->body, "\r\n");

        fprintf(stderr, "relaywatch: relaywatchd at %s refused: %.*s\n", ans->where,
                (int)(n < ans->body_len ? n : ans->body_len), ans->body);
    } else
        fprintf(stderr, "relaywatch: relaywatchd at %s answered %d %s\n", ans->where, ans->code,
                ans->reason);
    free(ans->raw);
    ans->raw = NULL;
    return 1;
}

static int list_via_daemon(const struct config *cfg, bool json)
{
    struct daemon_answer ans;
    struct record_list l = {0};
    int rc = ask_daemon(cfg, "relaywatch list with store = memory", "GET", "/throttle",
                        "application/json", &ans);

    if (rc != 0)
        return rc;
    if (json) {
        rc = daemon_print_body(&ans);
    } else if (records_of(ans.body, ans.body_len, &l)) {
        struct held_list h = {0};

        fetch_held(cfg, "relaywatch list", &h);
        rc = print_list(&l, &h, false);
        free(h.v);
    } else {
        fprintf(stderr, "relaywatch: relaywatchd at %s sent a /throttle answer that is not the "
                        "expected JSON\n", ans.where);
        rc = 1;
    }
    free(l.v);
    free(ans.raw);
    return rc;
}

/* POST /throttle?QUERY and print the daemon's one line. */
static int change_via_daemon(const struct config *cfg, const char *command, const char *query)
{
    struct daemon_answer ans;
    char target[1200];
    int rc;

    snprintf(target, sizeof(target), "/throttle?%s", query);
    rc = ask_daemon(cfg, command, "POST", target, "text/plain", &ans);
    if (rc == 0)
        rc = daemon_print_body(&ans);
    free(ans.raw);
    return rc;
}

/* ------------------------------------------------------------ commands */

int throttle_list(const struct config *cfg, bool json)
{
    struct store_throttle_client *c;
    struct record_list l = {0};
    int rc = 1;

    if (!redis_address_is_redis(cfg->store))
        return list_via_daemon(cfg, json);
    c = open_store(cfg);
    if (c == NULL)
        return 1;
    if (read_store(c, &l)) {
        struct held_list h = {0};

        /* The held counts are this host's daemon's (its Postfix queue); without it, unknown. */
        if (!fetch_held(cfg, "relaywatch list (for the held messages)", &h))
            fprintf(stderr, "relaywatch: the held messages are left out\n");
        rc = print_list(&l, &h, json);
        free(h.v);
    }
    store_throttle_client_free(c);
    free(l.v);
    return rc;
}

/* Write r to rw:throttle; 0, or 1 after saying why. */
static int write_record(struct store_throttle_client *c, const struct throttle_record *r)
{
    char field[MEMBER_MAX], value[1024], err[512];

    member_of(r, field, sizeof(field));
    throttle_record_format(r, value, sizeof(value));
    if (store_throttle_write(c, field, value, err, sizeof(err)))
        return 0;
    fprintf(stderr, "relaywatch: writing %s %s: %s\n", STORE_THROTTLE_KEY, field, err);
    return 1;
}

/* A record made by hand now. */
static void by_hand(struct throttle_record *r, enum throttle_source source, const char *action,
                    double until)
{
    r->source = source;
    r->changed = r->since = now_unix();
    r->until = until == 0 ? 0 : r->since + until;
    r->escalated = false;
    snprintf(r->host, sizeof(r->host), "cli");
    snprintf(r->action, sizeof(r->action), "%s", action);
}

int throttle_block(const struct config *cfg, const char *member, const char *duration)
{
    struct throttle_record r;
    struct store_throttle_client *c;
    char m[MEMBER_MAX], until[48];
    double seconds = 0;
    int rc;

    memset(&r, 0, sizeof(r));
    if (!member_arg(member, &r))
        return 2;
    if (duration != NULL && !parse_block_duration(duration, &seconds)) {
        fprintf(stderr, "relaywatch: '%s' is not a duration (a number with s, m, h or d, or "
                        "seconds; more than 0, at most 365d)\n", duration);
        return 2;
    }
    member_of(&r, m, sizeof(m));
    if (!redis_address_is_redis(cfg->store)) {
        char enc[3 * MEMBER_MAX + 1], query[3 * MEMBER_MAX + 64];

        url_encode(m, enc, sizeof(enc));
        if (duration != NULL)
            snprintf(query, sizeof(query), "block=%s&duration=%.0f", enc, ceil(seconds));
        else
            snprintf(query, sizeof(query), "block=%s", enc);
        return change_via_daemon(cfg, "relaywatch block with store = memory", query);
    }
    by_hand(&r, THROTTLE_MANUAL, cfg->block_action, seconds);
    snprintf(r.reason, sizeof(r.reason), "blocked by hand with relaywatch block%s%s",
             duration ? " for " : "", duration ? duration : "");
    c = open_store(cfg);
    if (c == NULL)
        return 1;
    rc = write_record(c, &r);
    store_throttle_client_free(c);
    if (rc != 0)
        return rc;
    if (r.until != 0) {
        memcpy(until, "until ", 6);
        rfc3339(r.until, until + 6, sizeof(until) - 6);
    } else {
        snprintf(until, sizeof(until), "until released by hand");
    }
    printf("blocked %s %s: its relay mail gets '%s' from every daemon sharing %s within "
           "one flush interval\n", m, until, r.action, cfg->store);
    return finish_stdout();
}

/*
 * After a release: wait (up to RELEASE_WAIT) for this host's daemon to release the key's held
 * messages and say how many it freed.  before: the key's held messages before the release.
 */
#define RELEASE_WAIT 20.0
static void report_release(const struct config *cfg, const struct throttle_record *r,
                           const char *m, const struct held_list *before, double t0)
{
    const struct held_entry *e = before->known ? held_for(before, r->kind, r->key) : NULL;
    unsigned asked = e ? e->held + e->being_held : 0;
    struct held_list now = {0};

    if (!before->known) {
        printf("held messages of %s: unknown (relaywatchd not reachable); it releases them when "
               "it reads the release\n", m);
        return;
    }
    if (asked == 0) {
        printf("no messages of %s were on hold on this host\n", m);
        return;
    }
    for (double waited = 0; waited < RELEASE_WAIT; waited += 0.2) {
        const struct held_entry *x;
        struct timespec ts = {0, 200 * 1000 * 1000};

        if (!fetch_held(cfg, "relaywatch release", &now))
            break;
        x = held_for(&now, r->kind, r->key);
        if (x == NULL || (x->held + x->being_held == 0 && x->released_at >= t0 - 1)) {
            printf("released %u held messages of %s from Postfix's hold queue on this host "
                   "(postsuper -H)%s\n", x ? x->released : 0, m,
                   x && x->released < asked ? "; the others had left the hold queue already"
                                            : "");
            free(now.v);
            return;
        }
        nanosleep(&ts, NULL);
    }
    printf("%u held messages of %s are not released yet; see relaywatch list and the daemon's "
           "log\n", asked, m);
    free(now.v);
}

int throttle_release(const struct config *cfg, const char *member)
{
    struct throttle_record r, *before = NULL;
    struct store_throttle_client *c;
    struct record_list l = {0};
    struct held_list held_then = {0};
    char m[MEMBER_MAX], grace[32], was[THROTTLE_ACTION_MAX + 128];
    double now;
    int rc;

    memset(&r, 0, sizeof(r));
    if (!member_arg(member, &r))
        return 2;
    member_of(&r, m, sizeof(m));
    if (!redis_address_is_redis(cfg->store)) {
        char enc[3 * MEMBER_MAX + 1], query[3 * MEMBER_MAX + 64];

        double t0 = now_unix();

        url_encode(m, enc, sizeof(enc));
        snprintf(query, sizeof(query), "release=%s", enc);
        fetch_held(cfg, "relaywatch release", &held_then);
        rc = change_via_daemon(cfg, "relaywatch release with store = memory", query);
        if (rc == 0) {
            report_release(cfg, &r, m, &held_then, t0);
            rc = finish_stdout();
        }
        free(held_then.v);
        return rc;
    }
    c = open_store(cfg);
    if (c == NULL)
        return 1;
    if (!read_store(c, &l)) {
        store_throttle_client_free(c);
        return 1;
    }
    now = now_unix();
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].kind == r.kind && strcmp(l.v[i].key, r.key) == 0 && throttle_in_force(&l.v[i], now))
            before = &l.v[i];
    if (before != NULL) {
        char since[32];

        rfc3339(before->since, since, sizeof(since));
        snprintf(was, sizeof(was), "was throttled since %s (%s: %s); nothing automatic "
                 "throttles it again", since, throttle_source_name(before->source),
                 before->action);
    } else {
        snprintf(was, sizeof(was), "was not throttled; nothing automatic throttles it");
    }
    by_hand(&r, THROTTLE_RELEASED, "DUNNO", cfg->release_grace);
    /* A grace of 0 still ends (now), rather than meaning "until released". */
    if (r.until == 0)
        r.until = r.since;
    snprintf(r.reason, sizeof(r.reason), "released by hand with relaywatch release");
    /* What this host holds, read before the daemon can act on the release. */
    if (!fetch_held(cfg, "relaywatch release (for the held messages)", &held_then))
        held_then.known = false;
    rc = write_record(c, &r);
    store_throttle_client_free(c);
    free(l.v);
    if (rc != 0) {
        free(held_then.v);
        return rc;
    }
    rfc3339(r.until, grace, sizeof(grace));
    printf("released %s: it %s before %s\n", m, was, grace);
    fflush(stdout);
    report_release(cfg, &r, m, &held_then, r.changed);
    free(held_then.v);
    return finish_stdout();
}
