/*
 * backtest: Postfix's log lines turned back into the policy requests that
 * made them, through the daemon's traffic and defense (see backtest.h).
 *
 * Two small tables join the lines: smtpd processes (the session each is
 * in: one at a time per process) and messages in flight (client, user,
 * sender and how often the message entered the active queue, by queue
 * ID).  Both are fixed arrays whose entries are overwritten by newer ones,
 * sets of 4 for messages, the oldest replaced: a line whose message was
 * pushed out counts for nothing rather than for the wrong client.
 */
#include "backtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "policy_request.h"
#include "traffic.h"
#include "window_counter.h" /* hash64 */
#include "xalloc.h"

#define PROCESS_SLOTS 4096
#define MESSAGE_SETS 16384 /* x 4: messages in flight at once */
#define MESSAGE_WAYS 4
#define LOG_LINES_MAX 20000
#define ADDR_TEXT 46
#define NAME_TEXT 256
#define USER_TEXT 256
#define SENDER_TEXT 320
#define QUEUE_ID_TEXT 32

struct process {
    long pid;
    uint32_t session; /* its current session's number (this run's, from 1) */
    char addr[ADDR_TEXT];
    char name[NAME_TEXT];
};

struct message {
    int64_t seen;       /* 0: free */
    char queue_id[QUEUE_ID_TEXT];
    long pid;
    uint32_t session;
    unsigned passes;    /* qmgr's "from=" lines: the first pass's deliveries are the RCPTs */
    char addr[ADDR_TEXT];
    char name[NAME_TEXT];
    char user[USER_TEXT];
    char sender[SENDER_TEXT];
};

struct backtest {
    const struct config *cfg;
    struct traffic *traffic;
    struct defense *defense;
    const struct analysis *dns;
    char (*clients)[ANALYSIS_CLIENT_MAX];
    const char **client_ptrs;
    size_t client_count;
    bool started;
    int64_t clock;      /* the last tick */
    int64_t max_gap;    /* seconds ticked through at most between two lines */
    /* The clock is the lines' time as written plus shift: it grows when the written time
     * is set back (summer time ending), so that the repeated hour follows the first instead
     * of piling into one second. */
    int64_t shift;
    bool has_offset;    /* the last line's UTC offset, for the times printed */
    int offset_minutes;
    int64_t started_at;
    uint32_t sessions;
    struct process *processes;
    struct message *messages;
    struct backtest_incident *incidents;
    size_t incident_count, incident_room;
    struct backtest_log_line *log;
    size_t log_count;
    uint64_t log_dropped;
    struct backtest_stats stats;
    /* The loud stretches, [start, end) pairs; the last may be open (end 0). */
    int64_t (*loud)[2];
    size_t loud_count, loud_room;
};

static void capture(void *ctx, const char *level, const char *message)
{
    struct backtest *b = ctx;
    struct backtest_log_line *l;

    if (b->log_count >= LOG_LINES_MAX) {
        b->log_dropped++;
        return;
    }
    l = &b->log[b->log_count++];
    l->time = b->clock - b->shift;
    l->has_offset = b->has_offset;
    l->offset_minutes = b->offset_minutes;
    snprintf(l->level, sizeof(l->level), "%s", level);
    snprintf(l->text, sizeof(l->text), "%s", message);
}

struct backtest *backtest_new(const struct config *cfg, const struct analysis *dns)
{
    struct backtest *b = xcalloc(1, sizeof(*b));

    b->cfg = cfg;
    b->dns = dns;
    b->traffic = traffic_new(cfg);
    b->defense = defense_new(cfg, b->traffic);
    b->processes = xcalloc(PROCESS_SLOTS, sizeof(*b->processes));
    b->messages = xcalloc((size_t)MESSAGE_SETS * MESSAGE_WAYS, sizeof(*b->messages));
    b->log = xcalloc(LOG_LINES_MAX, sizeof(*b->log));
    /* The longest window, the detector's quiet time and the fast path's learning, twice. */
    b->max_gap = 0;
    for (unsigned i = 0; i < cfg->window_count; i++)
        if (cfg->window_seconds[i] > b->max_gap)
            b->max_gap = (int64_t)cfg->window_seconds[i];
    b->max_gap = 2 * (b->max_gap + (int64_t)cfg->detect_quiet_after + (int64_t)cfg->detect_loud_after +
                      (int64_t)cfg->fast_learn_period) + 86400;
    return b;
}

void backtest_free(struct backtest *b)
{
    if (b == NULL)
        return;
    if (b->started)
        log_capture(NULL, NULL); /* an input error ended the run before backtest_finish */
    defense_free(b->defense);
    traffic_free(b->traffic);
    free(b->processes);
    free(b->messages);
    free(b->log);
    free(b->incidents);
    free(b->loud);
    free(b->clients);
    free(b->client_ptrs);
    free(b);
}

void backtest_set_dns_clients(struct backtest *b, const char *const *clients, size_t n)
{
    free(b->clients);
    free(b->client_ptrs);
    b->clients = xcalloc(n + 1, sizeof(*b->clients));
    b->client_ptrs = xcalloc(n + 1, sizeof(*b->client_ptrs));
    for (size_t i = 0; i < n; i++) {
        snprintf(b->clients[i], sizeof(b->clients[i]), "%s", clients[i]);
        b->client_ptrs[i] = b->clients[i];
    }
    b->client_count = n;
}

/* ------------------------------------------------------------ the clock */

static void take_alert(struct backtest *b)
{
    const struct defense_alert *a = defense_pending_alert(b->defense);
    struct backtest_incident *in;

    if (a == NULL)
        return;
    if (strcmp(a->event, "start") == 0) {
        if (b->incident_count == b->incident_room) {
            b->incident_room = b->incident_room ? b->incident_room * 2 : 8;
            b->incidents = xrealloc(b->incidents, b->incident_room * sizeof(*b->incidents));
        }
        in = &b->incidents[b->incident_count++];
        memset(in, 0, sizeof(*in));
        in->start = (int64_t)a->start - b->shift;
        in->has_offset = b->has_offset;
        in->offset_minutes = b->offset_minutes;
        snprintf(in->reason, sizeof(in->reason), "%s", a->reason);
    } else if (b->incident_count > 0) {
        in = &b->incidents[b->incident_count - 1];
        in->end = (int64_t)a->end - b->shift;
        in->end_has_offset = b->has_offset;
        in->end_offset_minutes = b->offset_minutes;
        snprintf(in->end_reason, sizeof(in->end_reason), "%s", a->reason);
    } else {
        defense_alert_taken(b->defense);
        return;
    }
    /* The end's list holds every culprit of the incident; the start's those known then. */
    in->culprit_count = a->culprit_count;
    for (unsigned i = 0; i < a->culprit_count && i < DEFENSE_ALERT_CULPRITS; i++)
        snprintf(in->culprits[i], sizeof(in->culprits[i]), "%s", a->culprits[i]);
    defense_alert_taken(b->defense);
}

static void note_loudness(struct backtest *b, int64_t now)
{
    bool loud = detector_state(defense_detector(b->defense)) == DETECTOR_LOUD;
    bool open = b->loud_count > 0 && b->loud[b->loud_count - 1][1] == 0;

    if (loud && !open) {
        if (b->loud_count == b->loud_room) {
            b->loud_room = b->loud_room ? b->loud_room * 2 : 8;
            b->loud = xrealloc(b->loud, b->loud_room * sizeof(*b->loud));
        }
        b->loud[b->loud_count][0] = now - b->shift;
        b->loud[b->loud_count][1] = 0;
        b->loud_count++;
    } else if (!loud && open) {
        b->loud[b->loud_count - 1][1] = now - b->shift;
    }
}

/* One second of the daemon's clock: what its timer does. */
static void tick(struct backtest *b, int64_t now)
{
    struct defense_inputs in = {0};
    int year, month, day, hour, minute, second;
    double window = b->cfg->detect_window;

    b->clock = now;
    b->stats.ticks++;
    traffic_tick(b->traffic, (double)now);
    /* The hour of day and the query log's minutes are the lines' time as written. */
    analysis_fields(now - b->shift, &year, &month, &day, &hour, &minute, &second);
    in.now = (double)now;
    in.wall = (double)now;
    in.hour = hour;
    in.warming_up = (double)(now - b->started_at) < window;
    in.own_dns = false;
    in.missing = "";
    if (b->dns != NULL && b->client_count > 0) {
        /* The minutes the store would hold for the window ending now, as the feed writes them. */
        int64_t written = now - b->shift;
        int64_t last = written >= 0 ? written / 60 : -((-written + 59) / 60);
        int64_t minutes = (int64_t)(window / 60.0 + 0.5);

        in.tdns = true;
        for (int64_t m = last - (minutes > 0 ? minutes - 1 : 0); m <= last; m++) {
            uint64_t n[3];

            analysis_minute_dns(b->dns, b->client_ptrs, b->client_count, m, n);
            in.tdns_mx += n[0];
            in.tdns_a += n[1];
            in.tdns_ptr += n[2];
        }
    }
    defense_tick(b->defense, &in);
    take_alert(b);
    note_loudness(b, now);
}

static void advance(struct backtest *b, int64_t to)
{
    if (!b->started) {
        b->started = true;
        b->started_at = to;
        b->clock = to - 1;
        log_capture(capture, b);
    }
    /* A gap in the logs (a night without mail is not one; a missing week or a line from a
     * host with a wrong clock is): every window has emptied long before its end, so only its
     * last stretch is ticked, not a second per second of it. */
    if (to - b->clock > b->max_gap)
        b->clock = to - b->max_gap;
    while (b->clock < to)
        tick(b, b->clock + 1);
}

/*
 * The clock's time for a line: its time as written plus the shift, which takes up the clock
 * being set back.  With an offset on the lines, a change of offset says by how much; without
 * one, a step back of half an hour to two hours is taken as summer time ending (lines a
 * little out of order, from several processes, are not).  A line still behind the clock is
 * taken at the clock's time.
 */
static int64_t clock_of(struct backtest *b, const struct analysis_line *l)
{
    const struct log_time *t = &l->header.time;
    int64_t at;

    if (!b->started) {
        b->has_offset = t->has_offset;
        b->offset_minutes = t->offset_minutes;
        return l->time;
    }
    if (t->has_offset && b->has_offset && t->offset_minutes != b->offset_minutes)
        b->shift += (int64_t)(b->offset_minutes - t->offset_minutes) * 60;
    b->has_offset = t->has_offset;
    b->offset_minutes = t->offset_minutes;
    at = l->time + b->shift;
    if (!t->has_offset && at <= b->clock - 1800 && at >= b->clock - 7200) {
        b->shift += b->clock - at;
        at = b->clock;
    }
    return at > b->clock ? at : b->clock;
}

void backtest_finish(struct backtest *b)
{
    if (b->started)
        log_capture(NULL, NULL);
}

/* ------------------------------------------------------------ requests */

static void put(struct policy_request *req, enum policy_attr a, const char *text)
{
    req->attr[a].ptr = text;
    req->attr[a].len = strlen(text);
}

static void ask(struct backtest *b, struct policy_request *req)
{
    struct traffic_news news;
    struct decision out;

    b->stats.requests++;
    traffic_request(b->traffic, req, (double)b->clock, &news);
    defense_decide(b->defense, req, &news, (double)b->clock, &out);
    if (req->state != PS_RCPT)
        return;
    b->stats.rcpts++;
    b->stats.relay_rcpts += news.relay;
    if (out.kind < AK_COUNT)
        b->stats.answers[out.kind]++;
    if (out.kind != AK_DUNNO && b->stats.first_stop == 0) {
        b->stats.first_stop = b->clock - b->shift;
        b->stats.first_stop_has_offset = b->has_offset;
        b->stats.first_stop_offset_minutes = b->offset_minutes;
    }
}

static void copy_slice(char *dst, size_t room, struct log_slice s)
{
    size_t n = s.len < room - 1 ? s.len : room - 1;

    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

/* The text between "key<" and the next ">" in the message, into dst; false if none. */
static bool angle_field(struct log_slice msg, const char *key, char *dst, size_t room)
{
    size_t klen = strlen(key);
    const char *end = msg.ptr + msg.len;

    for (const char *p = msg.ptr; p + klen <= end; p++) {
        const char *q;

        if (memcmp(p, key, klen) != 0 || (p > msg.ptr && p[-1] != ' '))
            continue;
        p += klen;
        q = memchr(p, '>', (size_t)(end - p));
        if (q == NULL)
            return false;
        copy_slice(dst, room, (struct log_slice){p, (size_t)(q - p)});
        return true;
    }
    return false;
}

static struct process *process_of(struct backtest *b, long pid)
{
    return &b->processes[(unsigned long)pid % PROCESS_SLOTS];
}

/* The message with this queue ID, or a slot for it when add (the oldest of its set). */
static struct message *message_of(struct backtest *b, struct log_slice qid, bool add)
{
    struct message *set, *oldest;

    if (qid.len == 0 || qid.len >= QUEUE_ID_TEXT)
        return NULL;
    set = &b->messages[(hash64(qid.ptr, qid.len, 0) % MESSAGE_SETS) * MESSAGE_WAYS];
    oldest = &set[0];
    for (int i = 0; i < MESSAGE_WAYS; i++) {
        if (set[i].seen != 0 && strlen(set[i].queue_id) == qid.len &&
            memcmp(set[i].queue_id, qid.ptr, qid.len) == 0)
            return &set[i];
        if (set[i].seen < oldest->seen)
            oldest = &set[i];
    }
    if (!add)
        return NULL;
    memset(oldest, 0, sizeof(*oldest));
    copy_slice(oldest->queue_id, sizeof(oldest->queue_id), qid);
    return oldest;
}

/* The session smtpd process pid is in with the line's client; a line without its connect
 * (the log began later, the slot was another process's) starts one. */
static void session_of(struct backtest *b, struct process *p, long pid,
                       const struct maillog_event *e)
{
    if (p->pid == pid && strlen(p->addr) == e->client_addr.len &&
        memcmp(p->addr, e->client_addr.ptr, e->client_addr.len) == 0)
        return;
    p->pid = pid;
    p->session = ++b->sessions;
    copy_slice(p->addr, sizeof(p->addr), e->client_addr);
    copy_slice(p->name, sizeof(p->name), e->client_name);
}

static bool is_program(struct log_slice p, const char *name)
{
    return p.len == strlen(name) && memcmp(p.ptr, name, p.len) == 0;
}

/* A session's request: addresses and ports as smtpd's process and session number give them. */
static void session_request(struct policy_request *req, enum policy_state state, long pid,
                            uint32_t session, const char *addr, const char *name,
                            char *port_text, char *instance, const char *txn)
{
    memset(req, 0, sizeof(*req));
    req->state = state;
    put(req, PA_REQUEST, "smtpd_access_policy");
    put(req, PA_PROTOCOL_STATE, state == PS_CONNECT ? "CONNECT" : "RCPT");
    put(req, PA_CLIENT_ADDRESS, addr);
    put(req, PA_CLIENT_NAME, name);
    snprintf(port_text, 16, "%u", 1024 + session % 64512);
    put(req, PA_CLIENT_PORT, port_text);
    put(req, PA_SERVER_ADDRESS, "0.0.0.0");
    put(req, PA_SERVER_PORT, "25");
    if (txn != NULL) {
        snprintf(instance, 96, "%ld.%x.%s", pid, session, txn);
        put(req, PA_INSTANCE, instance);
    }
}

void backtest_line(struct backtest *b, const struct analysis_line *l)
{
    const struct maillog_event *e = &l->mail;
    struct log_slice msg = l->header.message;
    long pid = l->header.pid;
    struct policy_request req;
    char port[16], instance[96], rcpt[SENDER_TEXT];

    if (l->kind != AL_MAILLOG || !l->timed)
        return;
    advance(b, clock_of(b, l));

    if ((e->flags & MAILLOG_CONNECT) && is_program(e->program, "smtpd")) {
        struct process *p = process_of(b, pid);

        p->pid = 0; /* a CONNECT always starts a session */
        session_of(b, p, pid, e);
        session_request(&req, PS_CONNECT, pid, p->session, p->addr, p->name, port, instance, NULL);
        ask(b, &req);
        return;
    }
    if ((e->flags & MAILLOG_CLIENT) && is_program(e->program, "smtpd")) {
        struct message *m = message_of(b, e->queue_id, true);
        struct process *p = process_of(b, pid);

        if (m == NULL)
            return;
        m->seen = l->time;
        m->pid = pid;
        session_of(b, p, pid, e);
        m->session = p->session;
        copy_slice(m->addr, sizeof(m->addr), e->client_addr);
        copy_slice(m->name, sizeof(m->name), e->client_name);
        copy_slice(m->user, sizeof(m->user), e->sasl_username);
        return;
    }
    if (e->flags & MAILLOG_QUEUED) {
        struct message *m = message_of(b, e->queue_id, false);

        if (m != NULL) {
            m->seen = l->time;
            m->passes++;
            angle_field(msg, "from=<", m->sender, sizeof(m->sender));
        }
        return;
    }
    if ((e->flags & MAILLOG_REFUSED) && is_program(e->program, "smtpd")) {
        char sender[SENDER_TEXT];
        struct process *p = process_of(b, pid);

        /* A refusal at RCPT names its client; others (at MAIL, DATA, a milter's) are no RCPT. */
        if (e->client_addr.len == 0 || !angle_field(msg, "to=<", rcpt, sizeof(rcpt)))
            return;
        if (!angle_field(msg, "from=<", sender, sizeof(sender)))
            sender[0] = '\0';
        session_of(b, p, pid, e);
        session_request(&req, PS_RCPT, pid, p->session, p->addr, p->name, port, instance,
                        "NOQUEUE");
        put(&req, PA_SENDER, sender);
        put(&req, PA_RECIPIENT, rcpt);
        ask(b, &req);
        return;
    }
    /* A delivery line: "QUEUEID: to=<R>, ..." from smtp, lmtp, local, virtual, pipe, ... */
    if ((e->flags & MAILLOG_POSTFIX) && msg.len > 0 && !is_program(e->program, "smtpd") &&
        !is_program(e->program, "qmgr") && !is_program(e->program, "cleanup")) {
        const char *colon = memchr(msg.ptr, ':', msg.len);
        struct log_slice qid;
        struct message *m;

        if (colon == NULL || (size_t)(msg.ptr + msg.len - colon) < 6 || memcmp(colon, ": to=<", 6) != 0)
            return;
        qid = (struct log_slice){msg.ptr, (size_t)(colon - msg.ptr)};
        m = message_of(b, qid, false);
        /* qmgr's line comes before the first pass's deliveries (passes 1); later passes are
         * retries of the same recipients, not new ones. */
        if (m == NULL || m->passes > 1 ||
            !angle_field((struct log_slice){colon + 2, (size_t)(msg.ptr + msg.len - colon - 2)},
                         "to=<", rcpt, sizeof(rcpt)))
            return;
        m->seen = l->time;
        if (!is_program(e->program, "smtp")) {
            /* Delivered here: this site's own, whatever local_domains says. */
            char *at = strrchr(rcpt, '@');

            if (at != NULL)
                *at = '\0';
        }
        session_request(&req, PS_RCPT, m->pid, m->session, m->addr, m->name, port, instance,
                        m->queue_id);
        put(&req, PA_SENDER, m->sender);
        put(&req, PA_RECIPIENT, rcpt);
        put(&req, PA_SASL_USERNAME, m->user);
        ask(b, &req);
    }
}

/* ------------------------------------------------------------ results */

const struct backtest_incident *backtest_incidents(const struct backtest *b, size_t *count)
{
    *count = b->incident_count;
    return b->incidents;
}

const struct backtest_log_line *backtest_log(const struct backtest *b, size_t *count,
                                             uint64_t *dropped)
{
    *count = b->log_count;
    *dropped = b->log_dropped;
    return b->log;
}

bool backtest_loud(const struct backtest *b, int64_t from, int64_t to)
{
    for (size_t i = 0; i < b->loud_count; i++) {
        int64_t end = b->loud[i][1] != 0 ? b->loud[i][1] : b->clock - b->shift + 1;

        if (b->loud[i][0] < to && end > from)
            return true;
    }
    return false;
}

void backtest_get_stats(const struct backtest *b, struct backtest_stats *out)
{
    struct defense_stats ds;

    *out = b->stats;
    defense_get_stats(b->defense, &ds);
    out->fast_stops = ds.fast_stops;
}
