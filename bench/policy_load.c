/* policy_load: closed-loop load generator for Postfix policy servers.
 *
 * Each of -c connections behaves like a Postfix smtpd process: it sends one
 * smtpd_access_policy request (protocol_state=RCPT), waits for the complete
 * answer, validates it and only then sends the next request, keeping the
 * connection open. Throughput is therefore limited by the server's latency,
 * which is exactly what a Postfix installation experiences.
 *
 * Requests sent during the warm-up (-w) are not counted. A request counts if
 * it was sent inside the measurement window; the window closes when -d
 * seconds have passed (or -n counted requests have been sent) and the
 * requests still in flight have been answered, so every counted request has
 * a latency and every answer is validated.
 *
 * --hold N SECONDS opens N connections, sends one request on each, and keeps
 * them open and idle, to measure a server's memory per connection.
 */
#ifndef _GNU_SOURCE /* the top-level CMakeLists may define it already */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"

enum {
    REQUEST_BUF_SIZE = 2048,    /* generated requests are about 800 bytes */
    ANSWER_BUF_SIZE = 4096,     /* a longer answer is invalid anyway */
    MAX_PARALLEL_CONNECTS = 128, /* avoid overflowing the server's listen backlog */
    MAX_ACTION_KINDS = 16,
    ACTION_KIND_LEN = 16,
};

/* ---------------------------------------------------------------------------
 * Latency histogram: log-linear buckets over nanoseconds. Values below 256 ns
 * have their own bucket; above that every power of two is split into 128
 * buckets, so a reported percentile is within 0.4% (half a bucket) of the
 * true value, at a fixed 58 KiB regardless of the number of requests. */
enum {
    HIST_SUB_BITS = 7,
    HIST_SUB = 1 << HIST_SUB_BITS,
    HIST_LINEAR = 2 * HIST_SUB,
    HIST_BUCKETS = HIST_LINEAR + (64 - HIST_SUB_BITS - 1) * HIST_SUB,
};

struct histogram {
    uint64_t count;
    uint64_t min_ns, max_ns;
    double sum_ns;
    uint64_t buckets[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t ns)
{
    if (ns < HIST_LINEAR)
        return (unsigned)ns;
    unsigned exponent = 63u - (unsigned)__builtin_clzll(ns); /* >= HIST_SUB_BITS + 1 */
    unsigned shift = exponent - HIST_SUB_BITS;
    unsigned mantissa = (unsigned)(ns >> shift) - HIST_SUB; /* 0 .. HIST_SUB-1 */
    return HIST_LINEAR + (exponent - HIST_SUB_BITS - 1) * HIST_SUB + mantissa;
}

/* Midpoint of the range of values that map to bucket index. */
static double hist_bucket_value(unsigned index)
{
    if (index < HIST_LINEAR)
        return index;
    unsigned k = index - HIST_LINEAR;
    unsigned shift = k / HIST_SUB + 1;
    uint64_t lower = (uint64_t)(HIST_SUB + k % HIST_SUB) << shift;
    uint64_t width = (uint64_t)1 << shift;
    return (double)lower + (double)(width - 1) / 2.0;
}

static void hist_record(struct histogram *h, uint64_t ns)
{
    if (h->count == 0 || ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    h->count++;
    h->sum_ns += (double)ns;
    h->buckets[hist_index(ns)]++;
}

/* Value at the given quantile (per_million / 1e6), in nanoseconds. */
static double hist_quantile(const struct histogram *h, uint64_t per_million)
{
    if (h->count == 0)
        return 0.0;
    uint64_t rank = (h->count * per_million + 999999) / 1000000;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            double v = hist_bucket_value(i);
            /* The exact extremes are known; don't report beyond them. */
            if (v > (double)h->max_ns)
                v = (double)h->max_ns;
            if (v < (double)h->min_ns)
                v = (double)h->min_ns;
            return v;
        }
    }
    return (double)h->max_ns;
}

/* ---------------------------------------------------------------------------
 * Request generation. Every field is derived from a hash of the request's
 * sequence number, so the mix is varied and reproducible and needs no
 * tables proportional to the number of users (-u 1000000 costs nothing). */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64 finalizer: cheap and well distributed. */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct text_out {
    char *buf;
    size_t size;
    size_t len;
    bool truncated;
};

static void out_printf(struct text_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_printf(struct text_out *o, const char *fmt, ...)
{
    if (o->truncated)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->size - o->len) {
        o->truncated = true;
        return;
    }
    o->len += (size_t)n;
}

static const char *const popular_recipient_domains[] = {
    "example.com", "example.net",  "example.org",   "mail.example",
    "corp.example", "isp.example", "webmail.example", "university.example",
};

/* Distinct client addresses in the mix (--clients), 0 for a new one per request: with a
 * bounded pool the daemon's PTR lookups can be answered from its cache. */
static uint32_t client_pool;

/* Distinct sender domains in the mix (--senders), 0 for the usual few hundred
 * (customerN.example for users, senderN.example for port-25 mail): many make the daemon's
 * sender-domain culprit table replace entries on most requests. */
static uint32_t sender_domain_pool;

/* Writes the request numbered seq into buf and returns its length
 * (0 if it did not fit, which cannot happen with REQUEST_BUF_SIZE). */
static size_t build_request(char *buf, size_t size, uint64_t seq, uint32_t users)
{
    uint64_t r1 = mix64(seq);
    uint64_t r2 = mix64(r1);
    uint64_t r3 = mix64(r2);
    struct text_out o = {.buf = buf, .size = size, .len = 0, .truncated = false};

    /* Mostly authenticated submission (the traffic a relay watcher cares
     * about), the rest unauthenticated port-25 mail with empty SASL fields. */
    bool authenticated = users > 0 && r1 % 100 < 85;
    bool ipv6 = (r1 >> 8) % 100 < 5;
    bool has_rdns = (r1 >> 16) % 100 < 70;
    bool rdns_confirmed = has_rdns && (r1 >> 24) % 10 != 0;
    bool tls = authenticated || (r1 >> 32) % 100 < 75;
    bool tls13 = (r1 >> 40) % 100 < 80;
    uint32_t isp = (uint32_t)((r1 >> 48) % 300);

    uint64_t ra = client_pool ? mix64(UINT64_C(0xC11E) + r2 % client_pool) : r2;
    unsigned a = 11 + (unsigned)(ra % 212); /* 11..222 */
    if (a == 127)
        a = 128;
    unsigned b = (unsigned)(ra >> 8) & 255, c = (unsigned)(ra >> 16) & 255;
    unsigned d = 1 + (unsigned)((ra >> 24) % 254);
    unsigned v6_hi = (unsigned)(ra >> 32) & 0xffff, v6_lo = (unsigned)(ra >> 48) & 0xffff;
    /* With a bounded pool an address is one of the pool, network part included. */
    if (client_pool)
        isp = (uint32_t)(ra % 300), ipv6 = (ra >> 40) % 100 < 5;

    uint32_t user = users > 0 ? (uint32_t)((r3 >> 16) % users) : 0;
    uint32_t user_domain = user % 97;
    char sender_domain[40];

    if (sender_domain_pool)
        snprintf(sender_domain, sizeof sender_domain, "s%" PRIu32 ".senders.example",
                 (uint32_t)(mix64(r3 ^ UINT64_C(0x5E4D)) % sender_domain_pool));
    else if (authenticated)
        snprintf(sender_domain, sizeof sender_domain, "customer%" PRIu32 ".example", user_domain);
    else
        snprintf(sender_domain, sizeof sender_domain, "sender%" PRIu32 ".example", isp);

    out_printf(&o,
               "request=smtpd_access_policy\n"
               "protocol_state=RCPT\n"
               "protocol_name=ESMTP\n");
    if (ipv6)
        out_printf(&o, "client_address=2001:db8:%x:%x::%x\n", isp, v6_hi, v6_lo);
    else
        out_printf(&o, "client_address=%u.%u.%u.%u\n", a, b, c, d);

    /* client_name is "unknown" unless the PTR name resolves back to the
     * address; reverse_client_name is the bare PTR lookup result. */
    char ptr_name[80];
    if (!has_rdns)
        snprintf(ptr_name, sizeof ptr_name, "unknown");
    else if (ipv6)
        snprintf(ptr_name, sizeof ptr_name, "v6-%x-%x.isp%" PRIu32 ".example", v6_hi, v6_lo, isp);
    else
        snprintf(ptr_name, sizeof ptr_name, "host-%u-%u-%u-%u.dyn.isp%" PRIu32 ".example", a, b, c,
                 d, isp);
    out_printf(&o,
               "client_name=%s\n"
               "reverse_client_name=%s\n"
               "client_port=%u\n"
               "server_address=192.0.2.25\n"
               "server_port=%u\n",
               rdns_confirmed ? ptr_name : "unknown", ptr_name,
               1024u + (unsigned)(r3 % 64512u), authenticated ? 587u : 25u);

    if (authenticated) {
        if ((r3 >> 8) & 1)
            out_printf(&o, "helo_name=[192.168.%u.%u]\n", c, d);
        else
            out_printf(&o, "helo_name=DESKTOP-%06" PRIX64 "\n", (r3 >> 24) & 0xffffff);
        if ((r3 >> 56) % 10 != 0)
            out_printf(&o, "sender=user%" PRIu32 "@%s\n", user, sender_domain);
        else
            out_printf(&o, "sender=alias%u.user%" PRIu32 "@%s\n", (unsigned)(r3 >> 60), user,
                       sender_domain);
    } else {
        if (has_rdns)
            out_printf(&o, "helo_name=%s\n", ptr_name);
        else
            out_printf(&o, "helo_name=mail%u.sender%" PRIu32 ".example\n", d, isp);
        if ((r3 >> 56) % 100 < 3)
            out_printf(&o, "sender=\n"); /* null sender: a bounce */
        else
            out_printf(&o, "sender=news%u@%s\n", c, sender_domain);
    }

    uint64_t rcpt_pick = (r2 >> 40) % 100;
    if (rcpt_pick < 40)
        out_printf(&o, "recipient=rcpt%u@%s\n", (unsigned)(r3 >> 32) % 100000,
                   popular_recipient_domains[rcpt_pick % 8]);
    else
        out_printf(&o, "recipient=rcpt%u@dest%u.example\n", (unsigned)(r3 >> 32) % 100000,
                   (unsigned)((r3 >> 44) % 5000));

    uint64_t size_param = (r3 >> 4) % 100 < 30 ? 0 : 500 + r1 % 2000000;
    out_printf(&o,
               "recipient_count=0\n"
               "queue_id=%010" PRIX64 "\n"
               "instance=%" PRIx64 ".%" PRIx64 ".%" PRIx64 ".0\n"
               "size=%" PRIu64 "\n"
               "etrn_domain=\n"
               "stress=\n",
               r2 & UINT64_C(0xffffffffff), (r1 >> 4) & 0xffff, 0x65000000 + ((r3 >> 28) & 0xffffff),
               (r3 >> 12) & 0xfffff, size_param);

    if (authenticated)
        out_printf(&o,
                   "sasl_method=%s\n"
                   "sasl_username=user%" PRIu32 "@customer%" PRIu32 ".example\n",
                   (r3 >> 9) & 1 ? "PLAIN" : "LOGIN", user, user_domain);
    else
        out_printf(&o, "sasl_method=\nsasl_username=\n");

    out_printf(&o,
               "sasl_sender=\n"
               "ccert_subject=\n"
               "ccert_issuer=\n"
               "ccert_fingerprint=\n"
               "ccert_pubkey_fingerprint=\n"
               "encryption_protocol=%s\n"
               "encryption_cipher=%s\n"
               "encryption_keysize=%u\n"
               "policy_context=\n"
               "compatibility_level=3.6\n"
               "mail_version=3.7.11\n"
               "\n",
               tls ? (tls13 ? "TLSv1.3" : "TLSv1.2") : "",
               tls ? (tls13 ? "TLS_AES_256_GCM_SHA384" : "ECDHE-RSA-AES256-GCM-SHA384") : "",
               tls ? 256u : 0u);
    return o.truncated ? 0 : o.len;
}

/* ---------------------------------------------------------------------------
 * Answer checking. */

/* Length of the first complete answer in buf (up to and including its
 * terminating empty line), or 0 if none is complete yet. An empty line is
 * "\n" or "\r\n" so that a CRLF answer is framed and then rejected rather
 * than waited for until the timeout. */
static size_t answer_length(const char *buf, size_t len)
{
    if (len >= 1 && buf[0] == '\n')
        return 1;
    if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
        return 2;
    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++) {
        size_t rest = len - (size_t)(p - buf) - 1;
        if (rest >= 1 && p[1] == '\n')
            return (size_t)(p - buf) + 2;
        if (rest >= 2 && p[1] == '\r' && p[2] == '\n')
            return (size_t)(p - buf) + 3;
    }
    return 0;
}

/* A valid answer is exactly "action=VALUE\n\n" with a non-empty VALUE that
 * contains no CR; that is the only reply Postfix accepts. */
static bool answer_is_valid(const char *buf, size_t len)
{
    static const char prefix[] = "action=";
    const size_t prefix_len = sizeof prefix - 1;
    if (len < prefix_len + 3 || memcmp(buf, prefix, prefix_len) != 0)
        return false;
    if (buf[len - 1] != '\n' || buf[len - 2] != '\n')
        return false;
    const char *value = buf + prefix_len;
    size_t value_len = len - 2 - prefix_len;
    return memchr(value, '\n', value_len) == NULL && memchr(value, '\r', value_len) == NULL;
}

/* ---------------------------------------------------------------------------
 * Run state. One event loop, one global state: callbacks reach it directly. */

enum conn_state {
    CONN_UNSTARTED,     /* connect() not yet issued */
    CONN_CONNECTING,
    CONN_WAITING,       /* request sent (or being sent), answer pending */
    CONN_IDLE,          /* between requests, or holding */
    CONN_CLOSED,
};

struct conn {
    ev_io io;           /* EV_WRITE while connecting, then EV_READ for good */
    ev_io write_io;     /* only started after a short write */
    int fd;
    enum conn_state state;
    bool counted;       /* the request in flight was sent inside the window */
    uint64_t started_ns; /* request sent, or connect issued */
    size_t req_len, req_sent;
    size_t ans_len;
    char req[REQUEST_BUF_SIZE];
    char ans[ANSWER_BUF_SIZE];
    bool eom_next; /* --eom: the next request ends the transaction of the last one */
};

enum phase { PHASE_WARMUP, PHASE_MEASURE, PHASE_DRAIN, PHASE_HOLD, PHASE_DONE };

struct action_kind {
    char name[ACTION_KIND_LEN];
    uint64_t count;
};

static struct {
    /* options */
    const char *target_spec;
    struct endpoint target;
    unsigned conn_count;
    double duration_s;
    uint64_t request_limit;     /* 0: run for duration_s */
    double warmup_s;
    double timeout_s;
    uint32_t users;
    bool json;
    bool hold;
    double hold_s;
    bool dump;
    uint64_t dump_count;
    long server_pid;            /* 0: unknown */

    struct ev_loop *loop;
    struct conn *conns;
    enum phase phase;
    ev_timer phase_timer;       /* end of warm-up, then end of duration, or end of hold */
    ev_timer housekeeping_timer; /* request timeouts */
    ev_timer connect_retry_timer;
    ev_signal sigint_watcher, sigterm_watcher;

    unsigned next_unstarted;    /* conns[] below this have had connect() issued */
    unsigned connecting;
    unsigned open_conns;
    uint64_t next_seq;

    uint64_t window_start_ns, window_end_ns;
    struct rusage usage_start, usage_end;
    double server_cpu_start_s, server_cpu_end_s; /* negative: not available */
    double busy_start_s, busy_end_s;    /* all CPUs, from /proc/stat */
    uint64_t sent_in_window;
    uint64_t in_flight;         /* all requests awaiting an answer */
    uint64_t answered;          /* counted requests answered (valid or not) */
    struct histogram latency;

    uint64_t invalid_answers;
    uint64_t conn_errors;
    uint64_t timeouts;
    bool reported_invalid;

    bool hold_ready;

    struct action_kind actions[MAX_ACTION_KINDS];
    unsigned action_kinds;
    uint64_t other_actions;
} run;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void tally_action(const char *answer, size_t len)
{
    /* Group by the action's first word (DUNNO, OK, DEFER_IF_PERMIT, 450...). */
    const char *value = answer + 7;
    size_t n = 0;
    while (n < ACTION_KIND_LEN - 1 && value + n < answer + len && value[n] != ' ' &&
           value[n] != '\t' && value[n] != '\n')
        n++;
    for (unsigned i = 0; i < run.action_kinds; i++) {
        if (strncmp(run.actions[i].name, value, n) == 0 && run.actions[i].name[n] == '\0') {
            run.actions[i].count++;
            return;
        }
    }
    if (run.action_kinds == MAX_ACTION_KINDS) {
        run.other_actions++;
        return;
    }
    struct action_kind *k = &run.actions[run.action_kinds++];
    memcpy(k->name, value, n);
    k->name[n] = '\0';
    k->count = 1;
}

static void print_escaped(FILE *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n')
            fputs("\\n", out);
        else if (ch == '\r')
            fputs("\\r", out);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
}

static void report_invalid(const char *what, const char *data, size_t len)
{
    run.invalid_answers++;
    if (run.reported_invalid)
        return;
    run.reported_invalid = true; /* one example is enough to debug a server */
    fprintf(stderr, "policy_load: invalid answer (%s): \"", what);
    print_escaped(stderr, data, len > 200 ? 200 : len);
    fprintf(stderr, "\"%s\n", len > 200 ? "..." : "");
}

static void finish_run(void);
static void start_more_connects(void);
static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);

static void maybe_finish(void)
{
    /* Drain waits for warm-up requests too, so that every answer is
     * validated and a stuck request ends as a timeout, not unnoticed. */
    if (run.phase == PHASE_DRAIN && run.in_flight == 0)
        finish_run();
    else if (run.open_conns == 0 && run.connecting == 0 && run.next_unstarted == run.conn_count &&
             run.phase != PHASE_DONE)
        finish_run(); /* every connection failed: nothing more will happen */
}

static void check_hold_ready(void);

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    if (c->state == CONN_CONNECTING)
        run.connecting--;
    else if (c->state != CONN_UNSTARTED)
        run.open_conns--;
    if (c->state == CONN_WAITING)
        run.in_flight--;
    ev_io_stop(run.loop, &c->io);
    ev_io_stop(run.loop, &c->write_io);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = CONN_CLOSED;
    if (run.hold)
        check_hold_ready();
}

/* A connection error; the connection is not reopened, since an error makes
 * the run fail anyway and reconnecting would hide a crashing server. */
static void conn_fail(struct conn *c, const char *what, int err)
{
    bool was_connecting = c->state == CONN_CONNECTING;
    run.conn_errors++;
    if (run.conn_errors <= 5)
        fprintf(stderr, "policy_load: connection %u: %s%s%s\n", (unsigned)(c - run.conns), what,
                err != 0 ? ": " : "", err != 0 ? strerror(err) : "");
    conn_close(c);
    if (was_connecting)
        start_more_connects();
    maybe_finish();
}

/* Returns false if the connection failed. */
static bool flush_request(struct conn *c)
{
    while (c->req_sent < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_sent, c->req_len - c->req_sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->req_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(run.loop, &c->write_io);
            return true;
        }
        conn_fail(c, "send", n < 0 ? errno : 0);
        return false;
    }
    /* ev_io_stop on an inactive watcher costs nothing, unlike toggling
     * watchers per request, which would mean an epoll_ctl per request. */
    ev_io_stop(run.loop, &c->write_io);
    return true;
}

static void enter_drain(void);

/* --eom: each RCPT request is followed by the END-OF-MESSAGE request of its transaction
 * (the same attributes, one recipient accepted), as Postfix sends it with the hook in
 * smtpd_end_of_data_restrictions: the daemon's queue-ID bookkeeping works on every message. */
static bool eom_mode;

/* The request in buf (len bytes) turned into its END-OF-MESSAGE; returns the new length. */
static size_t to_end_of_message(char *buf, size_t len, size_t size)
{
    static const char *const from[] = {"protocol_state=RCPT\n", "recipient_count=0\n"};
    static const char *const to[] = {"protocol_state=END-OF-MESSAGE\n", "recipient_count=1\n"};
    char out[REQUEST_BUF_SIZE];

    for (int i = 0; i < 2; i++) {
        char *at = memmem(buf, len, from[i], strlen(from[i]));
        size_t head, fl = strlen(from[i]), tl = strlen(to[i]);

        if (at == NULL || len - fl + tl > size || len - fl + tl > sizeof(out))
            return 0;
        head = (size_t)(at - buf);
        memcpy(out, buf, head);
        memcpy(out + head, to[i], tl);
        memcpy(out + head + tl, at + fl, len - head - fl);
        len = len - fl + tl;
        memcpy(buf, out, len);
    }
    return len;
}

static void send_request(struct conn *c)
{
    if (eom_mode && c->eom_next)
        c->req_len = to_end_of_message(c->req, c->req_len, sizeof c->req);
    else
        c->req_len = build_request(c->req, sizeof c->req, run.next_seq++, run.users);
    c->eom_next = eom_mode && !c->eom_next;
    if (c->req_len == 0) {
        fprintf(stderr, "policy_load: internal error: request does not fit its buffer\n");
        abort();
    }
    c->req_sent = 0;
    c->ans_len = 0;
    c->state = CONN_WAITING;
    run.in_flight++;
    c->counted = run.phase == PHASE_MEASURE;
    if (c->counted)
        run.sent_in_window++;
    c->started_ns = now_ns();
    if (!flush_request(c))
        return;
    if (c->counted && run.request_limit > 0 && run.sent_in_window >= run.request_limit)
        enter_drain();
}

static bool may_send(void)
{
    return run.phase == PHASE_WARMUP || run.phase == PHASE_MEASURE;
}

static void connection_established(struct conn *c)
{
    run.connecting--;
    run.open_conns++;
    c->state = CONN_IDLE;
    ev_io_stop(run.loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_READ);
    ev_io_start(run.loop, &c->io);
    start_more_connects();
    if (may_send() || run.phase == PHASE_HOLD)
        send_request(c);
}

static void start_connect(struct conn *c)
{
    int fd = socket(run.target.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->state = CONN_CONNECTING; /* so conn_fail's accounting matches */
        run.connecting++;
        conn_fail(c, "socket", errno);
        return;
    }
    c->fd = fd;
    c->state = CONN_CONNECTING;
    c->started_ns = now_ns();
    run.connecting++;
    ev_io_init(&c->io, on_readable, fd, EV_WRITE);
    ev_io_init(&c->write_io, on_writable, fd, EV_WRITE);
    c->io.data = c;
    c->write_io.data = c;
    if (connect(fd, (const struct sockaddr *)&run.target.addr, run.target.addrlen) == 0) {
        connection_established(c);
        return;
    }
    if (errno == EINPROGRESS) {
        ev_io_start(run.loop, &c->io);
        return;
    }
    if (errno == EAGAIN && run.target.family == AF_UNIX) {
        /* Unix-socket backlog full: retry this connection shortly. */
        close(fd);
        c->fd = -1;
        c->state = CONN_UNSTARTED;
        run.connecting--;
        run.next_unstarted = (unsigned)(c - run.conns);
        if (!ev_is_active(&run.connect_retry_timer))
            ev_timer_start(run.loop, &run.connect_retry_timer);
        return;
    }
    conn_fail(c, "connect", errno);
}

static void start_more_connects(void)
{
    while (run.next_unstarted < run.conn_count && run.connecting < MAX_PARALLEL_CONNECTS &&
           !ev_is_active(&run.connect_retry_timer) && run.phase != PHASE_DONE &&
           run.phase != PHASE_DRAIN) {
        struct conn *c = &run.conns[run.next_unstarted++];
        start_connect(c);
    }
}

static void on_connect_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    start_more_connects();
}

static void handle_answer(struct conn *c, uint64_t received_ns, size_t len)
{
    run.in_flight--;
    if (c->counted) {
        run.answered++;
        hist_record(&run.latency, received_ns - c->started_ns);
        if (received_ns > run.window_end_ns)
            run.window_end_ns = received_ns;
    }
    if (answer_is_valid(c->ans, len)) {
        if (c->counted)
            tally_action(c->ans, len);
    } else
        report_invalid("not a single action= line", c->ans, len);
    c->state = CONN_IDLE;

    if (len != c->ans_len) {
        /* More bytes than one answer for one request: framing is lost. */
        report_invalid("data after the answer", c->ans + len, c->ans_len - len);
        conn_close(c);
        maybe_finish();
        return;
    }
    c->ans_len = 0;
    if (run.hold) {
        check_hold_ready();
        return;
    }
    if (may_send())
        send_request(c);
    else
        maybe_finish();
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct conn *c = w->data;
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t err_len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
            err = errno;
        if (err != 0)
            conn_fail(c, "connect", err);
        else
            connection_established(c);
        return;
    }

    ssize_t n = recv(c->fd, c->ans + c->ans_len, sizeof c->ans - c->ans_len, 0);
    if (n == 0) {
        conn_fail(c, c->state == CONN_WAITING ? "closed by server before answering"
                                              : "closed by server while idle",
                  0);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_fail(c, "recv", errno);
        return;
    }
    uint64_t received_ns = now_ns();
    c->ans_len += (size_t)n;
    if (c->state != CONN_WAITING) {
        report_invalid("data without a request", c->ans, c->ans_len);
        conn_close(c);
        maybe_finish();
        return;
    }
    size_t len = answer_length(c->ans, c->ans_len);
    if (len > 0) {
        handle_answer(c, received_ns, len);
    } else if (c->ans_len == sizeof c->ans) {
        report_invalid("no end of answer in 4 KiB", c->ans, c->ans_len);
        conn_close(c);
        maybe_finish();
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    flush_request(w->data);
}

static void on_housekeeping(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    uint64_t now = now_ns();
    uint64_t limit_ns = (uint64_t)(run.timeout_s * 1e9);
    for (unsigned i = 0; i < run.next_unstarted; i++) {
        struct conn *c = &run.conns[i];
        if ((c->state == CONN_WAITING || c->state == CONN_CONNECTING) &&
            now - c->started_ns > limit_ns) {
            run.timeouts++;
            conn_fail(c, c->state == CONN_WAITING ? "no answer within timeout" : "connect timeout",
                      0);
        }
    }
}

/* CPU time (user + system, all threads) used so far by run.server_pid,
 * or -1. Sampling it at the window's edges gives the server's cost per
 * request, which stays meaningful even when this generator, not the
 * server, limits the request rate. */
static double server_cpu_s(void)
{
    if (run.server_pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", run.server_pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may contain spaces and parentheses; the
     * fields after the last ')' are plain numbers. */
    const char *p = strrchr(buf, ')');
    unsigned long utime, stime;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy time of all CPUs together (everything but idle and iowait), or -1.
 * Compared with this generator's and the server's own CPU time it shows
 * how much else ran during the window: other processes, which distort the
 * figures, and interrupt work. */
static double system_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle,
                   &iowait, &irq, &softirq, &steal);
    fclose(f);
    if (n != 8)
        return -1;
    (void)idle;
    (void)iowait;
    return (double)(user + nice + system + irq + softirq + steal) / (double)sysconf(_SC_CLK_TCK);
}

static void start_window(void)
{
    run.phase = PHASE_MEASURE;
    run.window_start_ns = now_ns();
    run.window_end_ns = run.window_start_ns;
    getrusage(RUSAGE_SELF, &run.usage_start);
    run.server_cpu_start_s = server_cpu_s();
    run.busy_start_s = system_busy_s();
    if (run.request_limit == 0) {
        ev_timer_stop(run.loop, &run.phase_timer);
        ev_timer_set(&run.phase_timer, run.duration_s, 0.0);
        ev_timer_start(run.loop, &run.phase_timer);
    }
}

static void enter_drain(void)
{
    run.phase = PHASE_DRAIN;
    ev_timer_stop(run.loop, &run.phase_timer);
    maybe_finish();
}

static void finish_run(void)
{
    if (run.phase == PHASE_MEASURE || run.phase == PHASE_DRAIN) {
        getrusage(RUSAGE_SELF, &run.usage_end);
        run.server_cpu_end_s = server_cpu_s();
        run.busy_end_s = system_busy_s();
        if (run.answered == 0)
            run.window_end_ns = now_ns();
    }
    run.phase = PHASE_DONE;
    ev_break(run.loop, EVBREAK_ALL);
}

static void on_phase_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    switch (run.phase) {
    case PHASE_WARMUP:
        start_window();
        break;
    case PHASE_MEASURE:
        enter_drain();
        break;
    case PHASE_HOLD:
        finish_run();
        break;
    default:
        break;
    }
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    /* Interrupting a run still reports what was measured so far. */
    if (run.phase == PHASE_MEASURE)
        enter_drain();
    else
        finish_run();
}

static void check_hold_ready(void)
{
    if (run.hold_ready || run.phase != PHASE_HOLD || run.next_unstarted < run.conn_count)
        return;
    /* Ready once every connection is answered or gone; a linear scan is
     * fine for the few thousand calls a hold run makes. */
    for (unsigned i = 0; i < run.conn_count; i++)
        if (run.conns[i].state != CONN_IDLE && run.conns[i].state != CONN_CLOSED)
            return;
    run.hold_ready = true;
    /* run.sh waits for this line before sampling the server's memory. */
    printf("holding %u connections (%" PRIu64 " invalid answers, %" PRIu64
           " connection errors)\n",
           run.open_conns, run.invalid_answers, run.conn_errors);
    fflush(stdout);
    ev_timer_set(&run.phase_timer, run.hold_s, 0.0);
    ev_timer_start(run.loop, &run.phase_timer);
}

/* ---------------------------------------------------------------------------
 * Output. */

static double timeval_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static double client_cpu_s(void)
{
    return timeval_s(&run.usage_end.ru_utime) - timeval_s(&run.usage_start.ru_utime) +
           timeval_s(&run.usage_end.ru_stime) - timeval_s(&run.usage_start.ru_stime);
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_results(void)
{
    double seconds = (double)(run.window_end_ns - run.window_start_ns) / 1e9;
    double rate = seconds > 0 ? (double)run.answered / seconds : 0.0;
    double cpu_s = client_cpu_s();
    double cpu_pct = seconds > 0 ? 100.0 * cpu_s / seconds : 0.0;
    double cpu_us_per_req = run.answered > 0 ? cpu_s * 1e6 / (double)run.answered : 0.0;
    const struct histogram *h = &run.latency;
    double mean_us = h->count > 0 ? h->sum_ns / (double)h->count / 1e3 : 0.0;
    struct {
        const char *text_name, *json_name;
        double us;
    } lat[] = {
        {"latency_min_us", "min", (double)h->min_ns / 1e3},
        {"latency_mean_us", "mean", mean_us},
        {"latency_p50_us", "p50", hist_quantile(h, 500000) / 1e3},
        {"latency_p90_us", "p90", hist_quantile(h, 900000) / 1e3},
        {"latency_p99_us", "p99", hist_quantile(h, 990000) / 1e3},
        {"latency_p99.9_us", "p99_9", hist_quantile(h, 999000) / 1e3},
        {"latency_max_us", "max", (double)h->max_ns / 1e3},
    };
    uint64_t errors = run.invalid_answers + run.conn_errors;
    bool have_server_cpu = run.server_cpu_start_s >= 0 && run.server_cpu_end_s >= 0;
    double server_cpu = have_server_cpu ? run.server_cpu_end_s - run.server_cpu_start_s : 0.0;
    double server_cpu_pct = seconds > 0 ? 100.0 * server_cpu / seconds : 0.0;
    double server_us_per_req = run.answered > 0 ? server_cpu * 1e6 / (double)run.answered : 0.0;
    bool have_busy = run.busy_start_s >= 0 && run.busy_end_s >= 0;
    double busy_pct = have_busy && seconds > 0 ? 100.0 * (run.busy_end_s - run.busy_start_s) / seconds
                                               : 0.0;
    /* Negative values are tick-rounding noise. */
    double other_pct = busy_pct - cpu_pct - (have_server_cpu ? server_cpu_pct : 0.0);
    if (other_pct < 0)
        other_pct = 0;

    if (run.json) {
        printf("{\"target\":");
        print_json_string(run.target_spec);
        printf(",\"connections\":%u,\"users\":%" PRIu32 ",\"warmup_s\":%.3f"
               ",\"requests\":%" PRIu64 ",\"seconds\":%.6f,\"requests_per_s\":%.1f,\"latency_us\":{",
               run.conn_count, run.users, run.warmup_s, run.answered, seconds, rate);
        for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++)
            printf("%s\"%s\":%.1f", i > 0 ? "," : "", lat[i].json_name, lat[i].us);
        printf("},\"errors\":%" PRIu64 ",\"invalid_answers\":%" PRIu64
               ",\"connection_errors\":%" PRIu64 ",\"timeouts\":%" PRIu64
               ",\"client_cpu_pct\":%.1f,\"client_cpu_us_per_request\":%.2f,\"actions\":{",
               errors, run.invalid_answers, run.conn_errors, run.timeouts, cpu_pct,
               cpu_us_per_req);
        for (unsigned i = 0; i < run.action_kinds; i++) {
            printf("%s", i > 0 ? "," : "");
            print_json_string(run.actions[i].name);
            printf(":%" PRIu64, run.actions[i].count);
        }
        if (run.other_actions > 0)
            printf("%s\"(other)\":%" PRIu64, run.action_kinds > 0 ? "," : "", run.other_actions);
        printf("}");
        if (have_busy)
            printf(",\"all_cpus_busy_pct\":%.1f,\"other_cpu_pct\":%.1f", busy_pct, other_pct);
        if (have_server_cpu)
            printf(",\"server_cpu_pct\":%.1f,\"server_cpu_us_per_request\":%.2f", server_cpu_pct,
                   server_us_per_req);
        printf("}\n");
        return;
    }

    printf("target              %s\n", run.target_spec);
    printf("connections         %u\n", run.conn_count);
    printf("sasl_users          %" PRIu32 "\n", run.users);
    printf("warmup_s            %.1f (excluded)\n", run.warmup_s);
    printf("requests            %" PRIu64 "\n", run.answered);
    printf("seconds             %.3f\n", seconds);
    printf("requests/s          %.1f\n", rate);
    for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++)
        printf("%-19s %.1f\n", lat[i].text_name, lat[i].us);
    printf("errors              %" PRIu64 " (invalid answers %" PRIu64 ", connection errors %" PRIu64
           ", of which timeouts %" PRIu64 ")\n",
           errors, run.invalid_answers, run.conn_errors, run.timeouts);
    printf("actions            ");
    if (run.action_kinds == 0 && run.other_actions == 0)
        printf(" -");
    for (unsigned i = 0; i < run.action_kinds; i++)
        printf(" %s=%" PRIu64, run.actions[i].name, run.actions[i].count);
    if (run.other_actions > 0)
        printf(" (other)=%" PRIu64, run.other_actions);
    printf("\n");
    printf("client_cpu          %.1f%% of one core, %.2f us per request\n", cpu_pct,
           cpu_us_per_req);
    if (have_server_cpu)
        printf("server_cpu          %.1f%% of one core, %.2f us per request\n", server_cpu_pct,
               server_us_per_req);
    if (have_busy)
        printf("other_cpu           %.1f%% of one core (all CPUs busy %.1f%%, less %s)\n", other_pct,
               busy_pct, have_server_cpu ? "generator and server" : "generator");
}

/* ---------------------------------------------------------------------------
 * Options. */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: policy_load -s inet:HOST:PORT|unix:PATH [options]\n"
            "  -c N          connections (default 64)\n"
            "  -d SECONDS    measured duration (default 10)\n"
            "  -n REQUESTS   measure this many requests instead of a duration\n"
            "  -w SECONDS    warm-up, excluded from the figures (default 1)\n"
            "  -u N          distinct SASL users in the mix, 0 for none (default 1000)\n"
            "  --clients N   distinct client addresses in the mix, 0: a new one per request\n"
            "                (default 0)\n"
            "  --senders N   distinct sender domains in the mix, 0: a few hundred (default 0)\n"
            "  -t SECONDS    answer/connect timeout, counted as an error (default 10)\n"
            "  --eom         follow each RCPT request with its transaction's END-OF-MESSAGE\n"
            "                request (half the requests, each with a queue ID)\n"
            "  --json        print one JSON object instead of text\n"
            "  --server-pid PID\n"
            "                also report that process's CPU use during the window\n"
            "  --hold N SECONDS\n"
            "                open N connections, send one request on each, keep them\n"
            "                open and idle for SECONDS (or until SIGTERM), then exit\n"
            "  --dump N      print the first N requests of the mix and exit (no -s)\n"
            "Exit status: 0 if every answer was valid and no connection failed.\n");
}

static bool parse_double(const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min))
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool raise_fd_limit(unsigned needed)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return false;
    if (rl.rlim_cur >= needed)
        return true;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= needed ? needed : rl.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= needed;
}

static int parse_options(int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_HOLD, OPT_DUMP, OPT_SERVER_PID, OPT_CLIENTS, OPT_SENDERS, OPT_EOM };
    static const struct option long_options[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"senders", required_argument, NULL, OPT_SENDERS},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"dump", required_argument, NULL, OPT_DUMP},
        {"server-pid", required_argument, NULL, OPT_SERVER_PID},
        {"eom", no_argument, NULL, OPT_EOM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    run.conn_count = 64;
    run.duration_s = 10;
    run.warmup_s = 1;
    run.timeout_s = 10;
    run.users = 1000;

    int opt;
    uint64_t v;
    while ((opt = getopt_long(argc, argv, "s:c:d:n:w:u:t:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 's':
            run.target_spec = optarg;
            break;
        case 'c':
            if (!parse_u64(optarg, 1, 1000000, &v))
                goto bad;
            run.conn_count = (unsigned)v;
            break;
        case 'd':
            if (!parse_double(optarg, 0.001, &run.duration_s))
                goto bad;
            break;
        case 'n':
            if (!parse_u64(optarg, 1, UINT64_MAX, &run.request_limit))
                goto bad;
            break;
        case 'w':
            if (!parse_double(optarg, 0, &run.warmup_s))
                goto bad;
            break;
        case 'u':
            if (!parse_u64(optarg, 0, UINT32_MAX, &v))
                goto bad;
            run.users = (uint32_t)v;
            break;
        case 't':
            if (!parse_double(optarg, 0.001, &run.timeout_s))
                goto bad;
            break;
        case OPT_JSON:
            run.json = true;
            break;
        case OPT_HOLD:
            /* "--hold N SECONDS": the second value is the next argument. */
            if (!parse_u64(optarg, 1, 1000000, &v) || optind >= argc ||
                !parse_double(argv[optind], 0, &run.hold_s))
                goto bad;
            run.hold = true;
            run.conn_count = (unsigned)v;
            optind++;
            break;
        case OPT_CLIENTS:
            if (!parse_u64(optarg, 0, UINT32_MAX, &v))
                goto bad;
            client_pool = (uint32_t)v;
            break;
        case OPT_SENDERS:
            if (!parse_u64(optarg, 0, UINT32_MAX, &v))
                goto bad;
            sender_domain_pool = (uint32_t)v;
            break;
        case OPT_EOM:
            eom_mode = true;
            break;
        case OPT_SERVER_PID:
            if (!parse_u64(optarg, 1, INT32_MAX, &v))
                goto bad;
            run.server_pid = (long)v;
            break;
        case OPT_DUMP:
            if (!parse_u64(optarg, 0, UINT64_MAX, &run.dump_count))
                goto bad;
            run.dump = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if ((run.target_spec == NULL && !run.dump) || optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "policy_load: bad value for option %s\n", argv[optind - 1]);
    usage(stderr);
    return -1;
}

int main(int argc, char **argv)
{
    if (parse_options(argc, argv) < 0)
        return 2;
    if (run.dump) {
        char request[REQUEST_BUF_SIZE];
        for (uint64_t seq = 0; seq < run.dump_count; seq++) {
            size_t len = build_request(request, sizeof request, seq, run.users);
            fwrite(request, 1, len, stdout);
        }
        return 0;
    }
    char err[512];
    if (endpoint_parse(run.target_spec, &run.target, err, sizeof err) < 0) {
        fprintf(stderr, "policy_load: %s\n", err);
        return 2;
    }
    if (!raise_fd_limit(run.conn_count + 64)) {
        fprintf(stderr, "policy_load: cannot raise the open files limit to %u\n",
                run.conn_count + 64);
        return 2;
    }
    run.server_cpu_start_s = run.server_cpu_end_s = -1;
    run.busy_start_s = run.busy_end_s = -1;
    if (run.server_pid > 0 && server_cpu_s() < 0)
        fprintf(stderr, "policy_load: cannot read /proc/%ld/stat; no server CPU figures\n",
                run.server_pid);
    run.conns = calloc(run.conn_count, sizeof *run.conns);
    if (run.conns == NULL) {
        fprintf(stderr, "policy_load: out of memory\n");
        return 2;
    }
    for (unsigned i = 0; i < run.conn_count; i++)
        run.conns[i].fd = -1;

    signal(SIGPIPE, SIG_IGN);
    run.loop = EV_DEFAULT;
    ev_timer_init(&run.phase_timer, on_phase_timer, 0.0, 0.0);
    ev_timer_init(&run.housekeeping_timer, on_housekeeping, 0.25, 0.25);
    ev_timer_init(&run.connect_retry_timer, on_connect_retry, 0.01, 0.0);
    ev_timer_start(run.loop, &run.housekeeping_timer);
    ev_signal_init(&run.sigint_watcher, on_stop_signal, SIGINT);
    ev_signal_init(&run.sigterm_watcher, on_stop_signal, SIGTERM);
    ev_signal_start(run.loop, &run.sigint_watcher);
    ev_signal_start(run.loop, &run.sigterm_watcher);

    if (run.hold) {
        run.phase = PHASE_HOLD;
    } else {
        run.phase = PHASE_WARMUP;
        ev_timer_set(&run.phase_timer, run.warmup_s, 0.0);
        ev_timer_start(run.loop, &run.phase_timer);
    }
    start_more_connects();
    if (run.phase != PHASE_DONE)
        ev_run(run.loop, 0);

    if (run.hold) {
        if (!run.hold_ready)
            fprintf(stderr, "policy_load: stopped before all %u connections were answered\n",
                    run.conn_count);
        fprintf(stderr, "policy_load: held %u connections, %" PRIu64 " invalid answers, %" PRIu64
                        " connection errors\n",
                run.open_conns, run.invalid_answers, run.conn_errors);
    } else {
        if (run.window_start_ns == 0)
            fprintf(stderr,
                    "policy_load: stopped during warm-up, nothing measured (%" PRIu64
                    " invalid answers, %" PRIu64 " connection errors)\n",
                    run.invalid_answers, run.conn_errors);
        else
            print_results();
        if (run.answered > 0) {
            double cpu_pct = 100.0 * client_cpu_s() /
                             ((double)(run.window_end_ns - run.window_start_ns) / 1e9);
            if (cpu_pct > 90.0)
                fprintf(stderr,
                        "policy_load: warning: the load generator used %.0f%% of a core; "
                        "it may be the bottleneck\n",
                        cpu_pct);
        }
    }
    for (unsigned i = 0; i < run.conn_count; i++)
        conn_close(&run.conns[i]);
    free(run.conns);

    bool failed = run.invalid_answers > 0 || run.conn_errors > 0 ||
                  (!run.hold && run.answered == 0) || (run.hold && !run.hold_ready);
    return failed ? 1 : 0;
}
