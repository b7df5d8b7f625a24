/*
 * server: listeners and connections for the policy protocol.
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
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "decision.h"
#include "listen_socket.h"
#include "log.h"
#include "policy_request.h"

#define CONN_BUFFER_INITIAL 4096
/* Room for the largest request plus the byte that proves it too large. */
#define CONN_BUFFER_MAX (POLICY_MAX_REQUEST + 4096)
#define ACCEPTS_PER_EVENT 64
#define PEER_MAX 80

struct listener {
    ev_io io;
    struct policy_server *srv;
    struct listener *next;
    struct endpoint ep; /* copy of the endpoint's identity (strings owned) */
    bool created_path;  /* we made the unix socket file: remove it on close */
};

struct connection {
    ev_io io;
    ev_timer idle;
    struct policy_server *srv;
    struct connection *prev, *next;
    int fd;
    char *buf;
    size_t cap;   /* bytes allocated */
    size_t start; /* first byte not yet consumed */
    size_t len;   /* bytes received */
    struct policy_parser parser;
    ev_tstamp last_activity; /* the idle timer re-arms itself from this */
    const char *out; /* answer being written, or NULL */
    size_t out_len, out_off;
    char peer[PEER_MAX];
    /* An answer held back (policy_server_hold). */
    bool held;
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
    struct listener *listeners;
    struct connection *connections;
    struct connection *handling; /* whose request the handler is deciding */
    unsigned connection_count; /* mirrored in stats.connections */
    bool full;                    /* refusing connections at max_connections */
    unsigned long refused_while_full;
    ev_timer accept_retry;        /* after EMFILE: pause accepting briefly */
    bool draining;
    ev_timer drain_deadline;
    void (*drained)(void *);
    void *drained_arg;
};

static void connection_close(struct connection *c);
static bool read_more(struct connection *c);
static double monotonic_seconds(void);
static void record_latency(struct policy_server_stats *st, double seconds);

/* ---------------------------------------------------------------- helpers */


static char *dup_or_null(const char *s)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

static void endpoint_copy(struct endpoint *dst, const struct endpoint *src)
{
    dst->kind = src->kind;
    dst->spec = dup_or_null(src->spec);
    dst->host = dup_or_null(src->host);
    dst->port = dup_or_null(src->port);
    dst->path = dup_or_null(src->path);
}

static void endpoint_release(struct endpoint *e)
{
    free(e->spec);
    free(e->host);
    free(e->port);
    free(e->path);
}

/* ------------------------------------------------------------- listeners */

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents);

static void listener_close(struct listener *l)
{
    ev_io_stop(l->srv->loop, &l->io);
    close(l->io.fd);
    if (l->created_path)
        unlink(l->ep.path);
    endpoint_release(&l->ep);
    free(l);
}

static struct listener *listener_add(struct policy_server *srv, int fd, const struct endpoint *ep,
                                     bool created_path, struct listener **list)
{
    struct listener *l = calloc(1, sizeof(*l));

    if (l == NULL)
        abort();
    l->srv = srv;
    l->created_path = created_path;
    endpoint_copy(&l->ep, ep);
    ev_io_init(&l->io, accept_cb, fd, EV_READ);
    l->next = *list;
    *list = l;
    return l;
}

static int open_endpoint(struct policy_server *srv, const struct endpoint *ep,
                         struct listener **list, char *err, size_t errlen)
{
    int fds[LISTEN_SOCKET_MAX];
    int n = listen_socket_open(ep, "listen", srv->cfg->unix_socket_mode, fds, err, errlen);

    for (int i = 0; i < n; i++)
        listener_add(srv, fds[i], ep, ep->kind == ENDPOINT_UNIX, list);
    return n > 0 ? 0 : -1;
}

static void close_listeners(struct listener *l)
{
    while (l != NULL) {
        struct listener *next = l->next;
        listener_close(l);
        l = next;
    }
}

static void start_listeners(struct policy_server *srv)
{
    for (struct listener *l = srv->listeners; l != NULL; l = l->next)
        ev_io_start(srv->loop, &l->io);
}

static void stop_listeners(struct policy_server *srv)
{
    for (struct listener *l = srv->listeners; l != NULL; l = l->next)
        ev_io_stop(srv->loop, &l->io);
}

/* ----------------------------------------------------------- connections */

static void format_peer(struct connection *c, const struct listener *l,
                        const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN], port[8];

    if (ss->ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            snprintf(c->peer, sizeof(c->peer), "unix:%s(pid %ld)", l->ep.path, (long)cred.pid);
        else
            snprintf(c->peer, sizeof(c->peer), "unix:%s", l->ep.path);
        return;
    }
    if (getnameinfo((const struct sockaddr *)ss, sizeof(*ss), host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(c->peer, sizeof(c->peer), "unknown");
        return;
    }
    if (ss->ss_family == AF_INET6)
        snprintf(c->peer, sizeof(c->peer), "[%s]:%s", host, port);
    else
        snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

static void accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct policy_server *srv = w->data;

    (void)loop;
    (void)revents;
    if (!srv->draining)
        start_listeners(srv);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = (struct listener *)w;
    struct policy_server *srv = l->srv;

    (void)revents;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        struct connection *c;
        int one = 1;
        bool exhausted;
        int fd = listen_socket_accept(w->fd, &ss, &exhausted);

        if (fd < 0) {
            if (exhausted) {
                log_warning("accept on %s: %s; pausing new connections for 1s", l->ep.spec,
                            strerror(errno));
                stop_listeners(srv);
                ev_timer_set(&srv->accept_retry, 1.0, 0.0);
                ev_timer_start(loop, &srv->accept_retry);
            }
            return; /* EAGAIN, ECONNABORTED, EINTR: nothing more now */
        }
        if (srv->connection_count >= srv->cfg->max_connections) {
            /* Closing at once lets Postfix fall back to its default_action now
             * instead of waiting out its timeout in our listen backlog. */
            if (!srv->full)
                log_warning("connection limit reached (max_connections = %u): refusing new "
                            "connections until some close",
                            srv->cfg->max_connections);
            srv->full = true;
            srv->refused_while_full++;
            srv->stats.refused++;
            close(fd);
            continue;
        }
        if (ss.ss_family != AF_UNIX)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c == NULL || (c->buf = malloc(CONN_BUFFER_INITIAL)) == NULL) {
            log_warning("out of memory accepting a connection on %s", l->ep.spec);
            free(c);
            close(fd);
            return;
        }
        c->cap = CONN_BUFFER_INITIAL;
        c->fd = fd;
        c->srv = srv;
        policy_parser_init(&c->parser);
        format_peer(c, l, &ss);
        c->next = srv->connections;
        if (srv->connections)
            srv->connections->prev = c;
        srv->connections = c;
        srv->stats.connections = ++srv->connection_count;
        srv->stats.accepted++;
        ev_io_init(&c->io, io_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
        c->last_activity = ev_now(loop);
        ev_timer_init(&c->idle, idle_cb, srv->cfg->idle_timeout, 0.0);
        ev_timer_start(loop, &c->idle);
    }
}

static void maybe_drained(struct policy_server *srv)
{
    if (srv->draining && srv->connection_count == 0) {
        ev_timer_stop(srv->loop, &srv->drain_deadline);
        if (srv->drained) {
            void (*done)(void *) = srv->drained;
            srv->drained = NULL;
            done(srv->drained_arg);
        }
    }
}

static void connection_close(struct connection *c)
{
    struct policy_server *srv = c->srv;

    if (c->held && c->held_cancel)
        c->held_cancel(c->held_arg);
    ev_io_stop(srv->loop, &c->io);
    ev_timer_stop(srv->loop, &c->idle);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->connections = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->stats.connections = --srv->connection_count;
    free(c->buf);
    free(c);
    /* The episode ends well below the limit, so a server turning connections
     * over at the limit does not log twice per connection. */
    if (srv->full && srv->connection_count <= srv->cfg->max_connections * 9 / 10) {
        log_info("below the connection limit again; %lu connections were refused meanwhile",
                 srv->refused_while_full);
        srv->full = false;
        srv->refused_while_full = 0;
    }
    maybe_drained(srv);
}

/*
 * Reading only records the time; the timer, when it fires, re-arms itself
 * for the rest of the period (libev's "let the timer time out" pattern),
 * so a request costs no timer-heap update.
 */
static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct connection *c = (struct connection *)((char *)w - offsetof(struct connection, idle));
    ev_tstamp left = c->last_activity + c->srv->cfg->idle_timeout - ev_now(loop);

    (void)revents;
    /* Waiting for our own answer (dns_wait) is not idleness. */
    if (c->held && left <= 0)
        left = c->srv->cfg->idle_timeout;
    if (left > 0) {
        ev_timer_set(w, left, 0.0);
        ev_timer_start(loop, w);
        return;
    }
    if (c->len > c->start)
        log_warning("%s: closing connection idle for %.0fs in the middle of a request", c->peer,
                    c->srv->cfg->idle_timeout);
    connection_close(c);
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

    n += (size_t)snprintf(line, sizeof(line), "request peer=%s state=%s", c->peer,
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

/* Write what is pending; false when the connection was closed. */
static bool flush_answer(struct connection *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_stop(c->srv->loop, &c->io);
            ev_io_set(&c->io, c->fd, EV_WRITE);
            ev_io_start(c->srv->loop, &c->io);
            return true;
        }
        log_warning("%s: writing answer: %s", c->peer, n < 0 ? strerror(errno) : "closed");
        connection_close(c);
        return false;
    }
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return true;
}

/* Answer every complete request in the buffer, as long as writes do not block.
 * False when the connection was closed. */
static bool connection_process(struct connection *c)
{
    struct policy_server *srv = c->srv;

    while (c->out == NULL) {
        struct policy_request req;
        struct decision d;
        double started;
        enum policy_parse_result r =
            policy_parser_next(&c->parser, c->buf + c->start, c->len - c->start, &req);

        if (r == POLICY_PARSE_MORE)
            break;
        if (r == POLICY_PARSE_ERROR) {
            log_warning("%s: %s (request line %zu); closing connection without answer", c->peer,
                        policy_error_text(c->parser.error), c->parser.error_line);
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
            /* Read nothing more until the answer goes out: answers stay in order. */
            c->held_since = started;
            ev_io_stop(srv->loop, &c->io);
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
                            c->peer, c->cap);
                connection_close(c);
                return false;
            }
            c->buf = nb;
            c->cap = cap;
        }
    }
    n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
        c->last_activity = ev_now(c->srv->loop);
        return connection_process(c);
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    if (n < 0)
        log_warning("%s: read: %s", c->peer, strerror(errno));
    else if (c->len > c->start)
        log_warning("%s: connection closed in the middle of a request", c->peer);
    connection_close(c);
    return false;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct connection *c = (struct connection *)w;

    if (revents & EV_WRITE) {
        if (!flush_answer(c))
            return;
        if (c->out == NULL) {
            ev_io_stop(loop, &c->io);
            ev_io_set(&c->io, c->fd, EV_READ);
            ev_io_start(loop, &c->io);
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
    struct policy_server *srv = calloc(1, sizeof(*srv));

    if (srv == NULL)
        abort();
    srv->loop = loop;
    srv->cfg = cfg;
    srv->handler = handler;
    srv->handler_ctx = ctx;
    ev_init(&srv->accept_retry, accept_retry_cb);
    srv->accept_retry.data = srv;
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (open_endpoint(srv, &cfg->listen[i], &srv->listeners, err, errlen) != 0) {
            close_listeners(srv->listeners);
            free(srv);
            return NULL;
        }
    }
    start_listeners(srv);
    return srv;
}

static bool endpoint_wanted(const struct config *cfg, const struct endpoint *ep)
{
    for (size_t i = 0; i < cfg->listen_count; i++)
        if (endpoint_equal(&cfg->listen[i], ep))
            return true;
    return false;
}

static bool endpoint_open(const struct listener *list, const struct endpoint *ep)
{
    for (const struct listener *l = list; l != NULL; l = l->next)
        if (endpoint_equal(&l->ep, ep))
            return true;
    return false;
}

int policy_server_reconfigure(struct policy_server *srv, const struct config *cfg, char *err,
                              size_t errlen)
{
    struct listener *added = NULL, **pp;
    const struct config *old = srv->cfg;

    /* Open what is new first, so that a failure leaves everything as it was. */
    srv->cfg = cfg; /* open_unix reads the new socket mode */
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (endpoint_open(srv->listeners, &cfg->listen[i]))
            continue;
        if (open_endpoint(srv, &cfg->listen[i], &added, err, errlen) != 0) {
            close_listeners(added);
            srv->cfg = old;
            return -1;
        }
    }
    for (pp = &srv->listeners; *pp != NULL;) {
        struct listener *l = *pp;

        if (endpoint_wanted(cfg, &l->ep)) {
            if (l->ep.kind == ENDPOINT_UNIX && chmod(l->ep.path, cfg->unix_socket_mode) != 0)
                log_warning("listen: %s: chmod: %s", l->ep.spec, strerror(errno));
            pp = &l->next;
            continue;
        }
        log_info("listen: %s: closed", l->ep.spec);
        *pp = l->next;
        listener_close(l);
    }
    while (added != NULL) {
        struct listener *next = added->next;

        log_info("listen: %s: opened", added->ep.spec);
        added->next = srv->listeners;
        srv->listeners = added;
        if (!ev_is_active(&srv->accept_retry))
            ev_io_start(srv->loop, &added->io);
        added = next;
    }
    return 0;
}

static void drain_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct policy_server *srv = w->data;

    (void)loop;
    (void)revents;
    if (srv->connection_count > 0)
        log_warning("shutdown: closing %u connections still in the middle of a request",
                    srv->connection_count);
    while (srv->connections != NULL)
        connection_close(srv->connections);
}

void policy_server_shutdown(struct policy_server *srv, void (*done)(void *arg), void *arg)
{
    struct connection *c, *next;

    srv->draining = true;
    srv->drained = done;
    srv->drained_arg = arg;
    ev_timer_stop(srv->loop, &srv->accept_retry);
    close_listeners(srv->listeners);
    srv->listeners = NULL;
    /* "Nothing buffered" is not "idle": a request may wait unread in the
     * socket (the signal and the data can arrive in one loop pass).  Read
     * once more; what arrived is answered, and the connection closed after. */
    for (c = srv->connections; c != NULL; c = next) {
        next = c->next;
        if (c->out != NULL || c->len != c->start || c->held)
            continue;
        if (!read_more(c))
            continue; /* closed */
        if (c->out == NULL && c->len == c->start)
            connection_close(c);
    }
    if (srv->connection_count > 0) {
        log_info("shutdown: waiting up to %.0fs for %u connections in the middle of a request",
                 srv->cfg->shutdown_timeout, srv->connection_count);
        ev_timer_init(&srv->drain_deadline, drain_deadline_cb, srv->cfg->shutdown_timeout, 0.0);
        srv->drain_deadline.data = srv;
        ev_timer_start(srv->loop, &srv->drain_deadline);
    } else {
        maybe_drained(srv);
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
    struct policy_server *srv = c->srv;

    c->held = false;
    c->held_cancel = NULL;
    c->out = d->answer;
    c->out_len = d->answer_len;
    c->out_off = 0;
    ev_io_set(&c->io, c->fd, EV_READ);
    ev_io_start(srv->loop, &c->io);
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
    srv->drained = NULL;
    while (srv->connections != NULL)
        connection_close(srv->connections);
    close_listeners(srv->listeners);
    ev_timer_stop(srv->loop, &srv->accept_retry);
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
