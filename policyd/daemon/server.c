/*
 * server: the policy protocol on its listeners' connections (connections.h
 * accepts, limits, names peers and times out idle connections).
 *
 * One libev loop, level-triggered.  Each connection owns a read buffer
 * that starts at CONN_BUFFER_INITIAL bytes and grows only when a request
 * needs it (up to the protocol's request limit), so the normal path does
 * no allocation per request.  Postfix sends one request at a time and
 * waits, so an answer normally leaves with a single write; if the socket
 * is full we stop reading until it drains, which keeps answers in order.
 */
#include "server.h"

#include <errno.h>
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "connections.h"
#include "decision.h"
#include "log.h"
#include "policy_request.h"
#include "xalloc.h"

#define CONN_BUFFER_INITIAL 4096
/* Room for the largest request plus the byte that proves it too large. */
#define CONN_BUFFER_MAX (POLICY_MAX_REQUEST + 4096)
#define ACCEPTS_PER_EVENT 64

struct connection {
    struct conn base; /* first: the layer's part (fd, peer, watchers) */
    char *buf;
    size_t cap;   /* bytes allocated */
    size_t start; /* first byte not yet consumed */
    size_t len;   /* bytes received */
    struct policy_parser parser;
    const char *out; /* answer being written, or NULL */
    size_t out_len, out_off;
    /* An answer that outlives the handler's call (held, or not sent at once) is
     * copied here: the defence's table of answers may be reset by a reload. */
    char own[DECISION_ANSWER_MAX];
    double request_since; /* the first byte of a request not yet whole arrived; 0: none */
    /* An answer held back (policy_server_hold). */
    bool held;
    size_t held_len; /* of the held answer, in own */
    double held_since;
    void (*held_cancel)(void *);
    void *held_arg;
};

struct policy_server {
    struct ev_loop *loop;
    const struct config *cfg;
    policy_handler_fn *handler;
    void *handler_ctx;
    struct policy_server_stats stats;
    struct conn_set *conns;
    struct connection *handling; /* whose request the handler is deciding */
    bool draining;
    ev_timer drain_deadline;
    void (*drained)(void *);
    void *drained_arg;
};

static bool read_more(struct connection *c);
static double monotonic_seconds(void);
static void record_latency(struct policy_server_stats *st, double seconds);

static struct policy_server *server_of(const struct connection *c)
{
    return c->base.owner;
}

/* ------------------------------------------------- the connection layer's calls */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

static bool connection_open(struct conn *base)
{
    struct connection *c = (struct connection *)base;
    struct policy_server *srv = server_of(c);

    c->buf = malloc(CONN_BUFFER_INITIAL);
    if (c->buf == NULL)
        return false;
    c->cap = CONN_BUFFER_INITIAL;
    policy_parser_init(&c->parser);
    srv->stats.connections++;
    srv->stats.accepted++;
    /* Postfix connects when it has a request to send: the first one must be whole within
     * request_timeout of the accept, or a connection that sends nothing at all would hold
     * its slot for idle_timeout. */
    c->request_since = ev_now(srv->loop);
    conn_expire_within(base, srv->cfg->request_timeout);
    /* Nothing read yet: at the limit a connection that sends nothing is closed for a newer
     * one like any idle one (unless its request already waits in the socket: connections.c
     * looks before it closes). */
    conn_idle(base, true);
    return true;
}

static void connection_gone(struct conn *base)
{
    struct connection *c = (struct connection *)base;

    if (c->held && c->held_cancel)
        c->held_cancel(c->held_arg);
    server_of(c)->stats.connections--;
    free(c->buf);
}

static bool idle_timeout(struct conn *base)
{
    struct connection *c = (struct connection *)base;
    struct policy_server *srv = server_of(c);
    unsigned long n;

    /* Waiting for our own answer (dns_wait) is not idleness. */
    if (c->held)
        return true;
    if (c->request_since > 0) {
        /* Postfix writes a request at once: dribbling is someone holding a slot. */
        srv->stats.request_timeouts++;
        if (conn_peer_log_due(base, &n))
            log_warning("%s: request not whole %.0fs after its first byte (or after the accept, "
                        "for the first); closing connection "
                        "(%lu such from this peer since the last line)",
                        c->base.peer, srv->cfg->request_timeout, n);
        return false;
    }
    if (c->len > c->start)
        log_warning("%s: closing connection idle for %.0fs in the middle of a request",
                    c->base.peer, server_of(c)->cfg->idle_timeout);
    return false;
}

static void limit_reached(const struct policy_server *srv)
{
    log_warning("connection limit reached (max_connections = %u): closing the connection idle "
                "longest for each new one, refusing new ones while none is idle",
                srv->cfg->max_connections);
}

static void refused(void *owner, bool first)
{
    struct policy_server *srv = owner;

    if (first)
        limit_reached(srv);
    srv->stats.refused++;
}

static void evicted(void *owner, bool first)
{
    struct policy_server *srv = owner;

    if (first)
        limit_reached(srv);
    srv->stats.evicted_idle++;
}

static void below_limit(void *owner, unsigned long refused, unsigned long evicted)
{
    (void)owner;
    log_info("below the connection limit again; meanwhile %lu connections were refused and "
             "%lu idle ones closed for new ones",
             refused, evicted);
}

static void peer_refused(void *owner, const char *peer, bool log_due, unsigned long refused)
{
    struct policy_server *srv = owner;

    srv->stats.peer_refused++;
    if (log_due)
        log_warning("%s: connection limit per peer reached (max_connections_per_peer = %u); "
                    "%lu connections refused since the last line",
                    peer, srv->cfg->max_connections_per_peer, refused);
}

static void accept_paused(void *owner, const char *listener, int err)
{
    (void)owner;
    log_warning("accept on %s: %s; pausing new connections for 1s", listener, strerror(err));
}

static const struct conn_ops policy_conn_ops = {
    .size = sizeof(struct connection),
    .accepts_per_event = ACCEPTS_PER_EVENT,
    .key = "listen",
    .open = connection_open,
    .io = io_cb,
    .timeout = idle_timeout,
    .close = connection_gone,
    .refused = refused,
    .evicted = evicted,
    .below_limit = below_limit,
    .paused = accept_paused,
    .peer_refused = peer_refused,
};

static void connection_close(struct connection *c)
{
    conn_close(&c->base);
}

/* Append a value to a log line with control bytes made visible and a length cap. */
static size_t put_value(char *dst, size_t room, struct policy_slice v)
{
    size_t n = 0, max = v.len < 200 ? v.len : 200;

    for (size_t i = 0; i < max && n + 1 < room; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        dst[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (max < v.len && n + 3 < room) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
    return n;
}

static void log_request(const struct connection *c, const struct policy_request *req,
                        const struct decision *d)
{
    static const struct {
        const char *label;
        enum policy_attr attr;
        bool bracket;
    } fields[] = {
        {"client_address", PA_CLIENT_ADDRESS, false}, {"client_port", PA_CLIENT_PORT, false},
        {"helo", PA_HELO_NAME, true},                 {"sender", PA_SENDER, true},
        {"recipient", PA_RECIPIENT, true},            {"recipient_count", PA_RECIPIENT_COUNT, false},
        {"sasl_username", PA_SASL_USERNAME, true},    {"queue_id", PA_QUEUE_ID, true},
        {"instance", PA_INSTANCE, true},              {"size", PA_SIZE, false},
    };
    char line[1800];
    size_t n = 0;

    n += (size_t)snprintf(line, sizeof(line), "request peer=%s state=%s", c->base.peer,
                          req->state == PS_OTHER || req->state == PS_UNKNOWN
                              ? "?"
                              : policy_state_name(req->state));
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && n + 16 < sizeof(line); i++) {
        struct policy_slice v = req->attr[fields[i].attr];
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%s", fields[i].label,
                              fields[i].bracket ? "<" : "");
        n += put_value(line + n, sizeof(line) - n - 2, v);
        if (fields[i].bracket)
            line[n++] = '>', line[n] = '\0';
    }
    log_info("%s action=%s", line, d->action);
}

/* The rest of the answer being written, into the connection's own buffer. */
static void own_answer(struct connection *c)
{
    size_t n = c->out_len - c->out_off;

    if (c->out == c->own)
        return;
    if (n > sizeof(c->own))
        n = sizeof(c->own); /* cannot happen: answers are at most DECISION_ANSWER_MAX */
    memcpy(c->own, c->out + c->out_off, n);
    c->out = c->own;
    c->out_len = n;
    c->out_off = 0;
}

/* Write what is pending; false when the connection was closed. */
static bool flush_answer(struct connection *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->base.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            own_answer(c);
            conn_watch(&c->base, EV_WRITE);
            return true;
        }
        log_warning("%s: writing answer: %s", c->base.peer, n < 0 ? strerror(errno) : "closed");
        connection_close(c);
        return false;
    }
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return true;
}

/* A request started and not yet whole must be whole within request_timeout of its
 * first byte; the clock stops while our own answer is pending (held, or a write
 * that blocks), and starts again for what is left once it has gone.  With nothing
 * pending at all the connection is idle (the newest so). */
static void request_clock(struct connection *c)
{
    bool waiting = c->len > c->start && c->out == NULL && !c->held;

    conn_idle(&c->base, c->len == c->start && c->out == NULL && !c->held);
    if (waiting && c->request_since == 0) {
        c->request_since = ev_now(server_of(c)->loop);
        conn_expire_within(&c->base, server_of(c)->cfg->request_timeout);
    } else if (!waiting && c->request_since > 0) {
        c->request_since = 0;
        conn_expire_cancel(&c->base);
    }
}

/* Answer every complete request in the buffer, as long as writes do not block.
 * False when the connection was closed. */
static bool connection_process(struct connection *c)
{
    struct policy_server *srv = server_of(c);

    while (c->out == NULL) {
        struct policy_request req;
        struct decision d;
        double started;
        enum policy_parse_result r =
            policy_parser_next(&c->parser, c->buf + c->start, c->len - c->start, &req);

        if (r == POLICY_PARSE_MORE)
            break;
        if (r == POLICY_PARSE_ERROR) {
            log_warning("%s: %s (request line %zu); closing connection without answer",
                        c->base.peer, policy_error_text(c->parser.error), c->parser.error_line);
            srv->stats.protocol_errors++;
            connection_close(c);
            return false;
        }
        started = monotonic_seconds();
        srv->handling = c;
        srv->handler(srv->handler_ctx, &req, &d);
        srv->handling = NULL;
        if (srv->cfg->log_requests)
            log_request(c, &req, &d);
        c->start += req.size;
        if (c->held) {
            /* Read nothing more until the answer goes out: answers stay in order.
             * What goes out then is this answer, kept here (see own). */
            c->out = d.answer;
            c->out_len = d.answer_len;
            c->out_off = 0;
            own_answer(c);
            c->held_len = c->out_len;
            c->out = NULL;
            c->held_since = started;
            request_clock(c);
            conn_watch(&c->base, 0);
            return true;
        }
        c->out = d.answer;
        c->out_len = d.answer_len;
        c->out_off = 0;
        if (!flush_answer(c))
            return false;
        srv->stats.requests++;
        record_latency(&srv->stats, monotonic_seconds() - started);
    }
    if (c->start == c->len) {
        c->start = c->len = 0;
        /* One large request must not pin a large buffer for the connection's life. */
        if (c->cap > CONN_BUFFER_INITIAL) {
            char *nb = realloc(c->buf, CONN_BUFFER_INITIAL);
            if (nb != NULL) {
                c->buf = nb;
                c->cap = CONN_BUFFER_INITIAL;
            }
        }
    }
    request_clock(c);
    /* Shutting down: a connection with nothing half-received is done. */
    if (srv->draining && c->out == NULL && c->len == 0 && !c->held) {
        connection_close(c);
        return false;
    }
    return true;
}

/* Read what the socket has; false when the connection was closed. */
static bool read_more(struct connection *c)
{
    ssize_t n;

    if (c->len == c->cap) {
        if (c->start > 0) {
            memmove(c->buf, c->buf + c->start, c->len - c->start);
            c->len -= c->start;
            c->start = 0;
        } else {
            /* Only a request larger than the buffer gets here: grow, within the limit. */
            size_t cap = c->cap * 2 > CONN_BUFFER_MAX ? CONN_BUFFER_MAX : c->cap * 2;
            char *nb = cap > c->cap ? realloc(c->buf, cap) : NULL;

            if (nb == NULL) {
                log_warning("%s: request exceeds %zu bytes; closing connection without answer",
                            c->base.peer, c->cap);
                connection_close(c);
                return false;
            }
            c->buf = nb;
            c->cap = cap;
        }
    }
    n = recv(c->base.fd, c->buf + c->len, c->cap - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
        conn_touch(&c->base, server_of(c)->loop);
        return connection_process(c);
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    if (n < 0)
        log_warning("%s: read: %s", c->base.peer, strerror(errno));
    else if (c->len > c->start)
        log_warning("%s: connection closed in the middle of a request", c->base.peer);
    connection_close(c);
    return false;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct connection *c = (struct connection *)w;

    (void)loop;
    if (revents & EV_WRITE) {
        if (!flush_answer(c))
            return;
        if (c->out == NULL) {
            conn_watch(&c->base, EV_READ);
            connection_process(c); /* requests that arrived meanwhile */
        }
        return;
    }
    if (revents & EV_READ)
        read_more(c);
}

/* ---------------------------------------------------------------- server */

struct policy_server *policy_server_new(struct ev_loop *loop, const struct config *cfg,
                                        policy_handler_fn *handler, void *ctx, char *err,
                                        size_t errlen)
{
    struct policy_server *srv = xcalloc(1, sizeof(*srv));

    srv->loop = loop;
    srv->cfg = cfg;
    srv->handler = handler;
    srv->handler_ctx = ctx;
    srv->conns = conn_set_new(loop, &policy_conn_ops, srv, cfg->max_connections,
                              cfg->idle_timeout);
    conn_set_peer_limit(srv->conns, cfg->max_connections_per_peer);
    if (conn_set_listen(srv->conns, cfg->listen, cfg->listen_count, cfg->unix_socket_mode, err,
                        errlen) != 0) {
        conn_set_free(srv->conns);
        free(srv);
        return NULL;
    }
    return srv;
}

int policy_server_reconfigure(struct policy_server *srv, const struct config *cfg, char *err,
                              size_t errlen)
{
    if (conn_set_listen(srv->conns, cfg->listen, cfg->listen_count, cfg->unix_socket_mode, err,
                        errlen) != 0)
        return -1;
    srv->cfg = cfg;
    conn_set_limits(srv->conns, cfg->max_connections, cfg->idle_timeout);
    conn_set_peer_limit(srv->conns, cfg->max_connections_per_peer);
    return 0;
}

static void drained(void *arg)
{
    struct policy_server *srv = arg;
    void (*done)(void *) = srv->drained;

    ev_timer_stop(srv->loop, &srv->drain_deadline);
    srv->drained = NULL;
    if (done != NULL)
        done(srv->drained_arg);
}

static void drain_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct policy_server *srv = w->data;
    unsigned left = conn_set_count(srv->conns);

    (void)loop;
    (void)revents;
    if (left > 0)
        log_warning("shutdown: closing %u connections still in the middle of a request", left);
    conn_set_close_all(srv->conns);
}

void policy_server_shutdown(struct policy_server *srv, void (*done)(void *arg), void *arg)
{
    struct conn *base, *next;

    srv->draining = true;
    srv->drained = done;
    srv->drained_arg = arg;
    ev_timer_init(&srv->drain_deadline, drain_deadline_cb, srv->cfg->shutdown_timeout, 0.0);
    srv->drain_deadline.data = srv;
    conn_set_drain(srv->conns, drained, srv);
    /* "Nothing buffered" is not "idle": a request may wait unread in the
     * socket (the signal and the data can arrive in one loop pass).  Read
     * once more; what arrived is answered, and the connection closed after. */
    for (base = conn_set_first(srv->conns); base != NULL; base = next) {
        struct connection *c = (struct connection *)base;

        next = base->next;
        if (c->out != NULL || c->len != c->start || c->held)
            continue;
        if (!read_more(c))
            continue; /* closed */
        if (c->out == NULL && c->len == c->start)
            connection_close(c);
    }
    if (conn_set_count(srv->conns) > 0) {
        log_info("shutdown: waiting up to %.0fs for %u connections in the middle of a request",
                 srv->cfg->shutdown_timeout, conn_set_count(srv->conns));
        ev_timer_start(srv->loop, &srv->drain_deadline);
    }
}

struct policy_hold *policy_server_hold(struct policy_server *srv, void (*cancel)(void *arg),
                                       void *arg)
{
    struct connection *c = srv->handling;

    if (c == NULL)
        return NULL;
    c->held = true;
    c->held_cancel = cancel;
    c->held_arg = arg;
    return (struct policy_hold *)c;
}

void policy_server_answer(struct policy_hold *h, const struct decision *d)
{
    struct connection *c = (struct connection *)h;
    struct policy_server *srv = server_of(c);

    (void)d; /* its text may be gone (a reload): the connection kept a copy when it held */
    c->held = false;
    c->held_cancel = NULL;
    c->out = c->own;
    c->out_len = c->held_len;
    c->out_off = 0;
    conn_watch(&c->base, EV_READ);
    if (!flush_answer(c))
        return;
    srv->stats.requests++;
    record_latency(&srv->stats, monotonic_seconds() - c->held_since);
    if (c->out == NULL)
        connection_process(c); /* requests that arrived meanwhile */
}

void policy_server_free(struct policy_server *srv)
{
    if (srv == NULL)
        return;
    conn_set_free(srv->conns);
    ev_timer_stop(srv->loop, &srv->drain_deadline);
    free(srv);
}

const struct policy_server_stats *policy_server_stats(const struct policy_server *srv)
{
    return &srv->stats;
}

const double latency_bucket_bounds[LATENCY_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1, 10,
};

static double monotonic_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record_latency(struct policy_server_stats *st, double seconds)
{
    unsigned b = 0;

    while (b < LATENCY_BUCKETS && seconds > latency_bucket_bounds[b])
        b++;
    st->latency_count[b]++;
    st->latency_sum += seconds;
}
