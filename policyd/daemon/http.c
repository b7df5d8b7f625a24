/*
 * http: a small HTTP/1.1 server for the operators' read-only views.
 *
 * One response per connection, then close.  Everything is bounded so that
 * a scraper gone wrong (or a hostile peer) can never slow policy answers
 * on the shared loop:
 *
 *   - at most HTTP_MAX_CONNECTIONS at once; past that a new connection is
 *     accepted and closed at once;
 *   - a request head of at most HTTP_HEAD_MAX bytes (431 past it), read
 *     into one fixed buffer per connection;
 *   - one deadline of HTTP_DEADLINE seconds from accept to the last byte
 *     written (slow senders and slow readers alike are closed);
 *   - non-blocking reads and writes only; the write watcher runs only
 *     while the socket is full.
 *
 * After the response the connection is half-closed and what the peer
 * still sends is read and thrown away for a short while ("lingering
 * close"), so that closing with unread input (a request body, the rest
 * of an oversized head) does not turn into a reset that destroys the
 * response before the peer has read it.
 *
 * Oddities (malformed requests, timeouts, the limit) are logged at most
 * once per category every HTTP_LOG_INTERVAL seconds, with a count of the
 * ones not logged, never once per request.
 *
 * The connection layer (connections.h) accepts, enforces the limit, names
 * peers and runs the deadline; this file reads requests and writes responses.
 *
 * On the control socket it also asks who is calling.  The kernel's record
 * of the connecting process (SO_PEERCRED, SO_PEERGROUPS: its uid, gid and
 * supplementary groups when it called connect) decides, rather than the
 * group database (getgrouplist): that is what the process holds, a process
 * that dropped a group is not admitted through it, and no NSS lookup (LDAP,
 * NIS) can stall the loop.
 */
#include "http.h"

#include <errno.h>
#include <ev.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "connections.h"
#include "listen_socket.h"
#include "log.h"
#include "xalloc.h"

#define HTTP_MAX_CONNECTIONS 64
#define HTTP_HEAD_MAX 8192
#define HTTP_DEADLINE 10.0
#define HTTP_LINGER 2.0          /* longest wait for the peer's EOF after the response */
#define HTTP_LINGER_BYTES 65536  /* most input thrown away after the response */
#define HTTP_ACCEPTS_PER_EVENT 16
#define HTTP_LOG_INTERVAL 300.0
#define HTTP_UNIX_MODE 0660
#define HTTP_PEER_GROUPS 256 /* supplementary groups read at once; more are read in a second call */

/* ------------------------------------------------------------ http_body */

static void body_reserve(struct http_body *b, size_t more)
{
    size_t need, cap;

    if (more > SIZE_MAX - b->len - 1)
        abort();
    need = b->len + more + 1; /* always room for a terminating NUL */
    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void http_body_append(struct http_body *b, const char *data, size_t len)
{
    body_reserve(b, len);
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void http_body_printf(struct http_body *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    body_reserve(b, 128);
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    if ((size_t)n >= b->cap - b->len) {
        body_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Sent with every HTML response (the status page): it shows strings from the wire, and
 * should one slip through unescaped, nothing but the page's own inline styles may load or run;
 * no other site may frame it. */
#define HTML_HEADERS                                                                         \
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "               \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"                        \
    "X-Content-Type-Options: nosniff\r\n"                                                    \
    "Referrer-Policy: no-referrer\r\n"

/* ----------------------------------------------------------------- types */

enum http_oddity {
    ODD_LIMIT,      /* connection limit reached */
    ODD_TIMEOUT,    /* deadline passed before the response was out */
    ODD_TOO_LARGE,  /* request head over HTTP_HEAD_MAX */
    ODD_BAD,        /* malformed request line or header */
    ODD_METHOD,     /* not GET or HEAD */
    ODD_ACCEPT,     /* accept failed for want of resources */
    ODD_DENIED,     /* a change refused for want of privilege */
    ODD_COUNT
};

enum conn_phase { PHASE_READ, PHASE_WRITE, PHASE_LINGER };

struct http_conn {
    struct conn base; /* first: the layer's part (fd, peer, watchers, deadline) */
    enum conn_phase phase;
    bool may_change;   /* the control socket admitted this peer */
    long uid;          /* the peer's uid on the control socket, -1 unknown */
    size_t in_len;
    char *out;
    size_t out_len, out_off;
    size_t drained;
    char in[HTTP_HEAD_MAX];
};

struct http_server {
    struct ev_loop *loop;
    http_handler_fn *handler;
    void *ctx;
    char *spec;
    bool control;   /* the control socket: peers' credentials are asked */
    gid_t group;    /* admitted besides uid 0 and ours; (gid_t)-1: none */
    struct conn_set *conns;
    struct {
        bool logged;
        ev_tstamp last;
        unsigned long suppressed;
    } odd[ODD_COUNT];
};

static struct http_server *server_of(const struct http_conn *c)
{
    return c->base.owner;
}

/* -------------------------------------------------------------- helpers */

/*
 * Log an oddity unless one of its category was logged less than
 * HTTP_LOG_INTERVAL ago; then count it for the next line instead.
 */
static void oddity(struct http_server *srv, enum http_oddity kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void oddity(struct http_server *srv, enum http_oddity kind, const char *fmt, ...)
{
    ev_tstamp now = ev_now(srv->loop);
    char msg[300], more[96] = "";
    va_list ap;

    if (srv->odd[kind].logged && now - srv->odd[kind].last < HTTP_LOG_INTERVAL) {
        srv->odd[kind].suppressed++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (srv->odd[kind].suppressed > 0)
        snprintf(more, sizeof(more), " (%lu similar since the last report)",
                 srv->odd[kind].suppressed);
    log_warning("http %s: %s%s; such events are logged at most every %.0f minutes", srv->spec, msg,
                more, HTTP_LOG_INTERVAL / 60);
    srv->odd[kind].logged = true;
    srv->odd[kind].last = now;
    srv->odd[kind].suppressed = 0;
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---------------------------------------------------------- connections */

/* The response is out: half-close and wait briefly for the peer's EOF. */
static void linger(struct http_conn *c)
{
    free(c->out);
    c->out = NULL;
    c->phase = PHASE_LINGER;
    if (shutdown(c->base.fd, SHUT_WR) != 0) {
        conn_close(&c->base);
        return;
    }
    /* What is left of the deadline, but never more than HTTP_LINGER. */
    conn_expire_within(&c->base, HTTP_LINGER);
    conn_watch(&c->base, EV_READ);
    /* Served: at the limit it may be closed to let a new request in. */
    conn_idle(&c->base, true);
}

/* Write what is pending; on EAGAIN wait for EV_WRITE. */
static void flush(struct http_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->base.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (c->phase != PHASE_WRITE) {
                    c->phase = PHASE_WRITE;
                    conn_watch(&c->base, EV_WRITE);
                }
                return;
            }
            conn_close(&c->base); /* EPIPE, ECONNRESET: the peer is gone */
            return;
        }
        c->out_off += (size_t)n;
    }
    linger(c);
}

/* Build the whole response (head and, unless HEAD, body) and start writing. */
static void respond(struct http_conn *c, int code, const char *content_type,
                    const char *extra_headers, const struct http_body *body, bool head_only)
{
    struct http_body out = {0};
    size_t body_len = body ? body->len : 0;

    http_body_printf(&out,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "Cache-Control: no-store\r\n"
                     "%s"
                     "\r\n",
                     code, reason_phrase(code), content_type, body_len,
                     extra_headers ? extra_headers : "");
    if (!head_only && body_len > 0)
        http_body_append(&out, body->data, body_len);
    c->out = out.data;
    c->out_len = out.len;
    c->out_off = 0;
    flush(c);
}

static void respond_error(struct http_conn *c, int code, const char *extra_headers)
{
    struct http_body body = {0};

    http_body_printf(&body, "%d %s\n", code, reason_phrase(code));
    respond(c, code, "text/plain; charset=utf-8", extra_headers, &body, false);
    free(body.data);
}

/* RFC 9110 tchar: the characters of a method or a header name. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Where stop ends a non-empty token (a method, a header name) at p, or NULL. */
static char *token_end(char *p, size_t len, char stop)
{
    char *e = memchr(p, stop, len);

    if (e == NULL || e == p)
        return NULL;
    for (char *q = p; q < e; q++)
        if (!is_tchar((unsigned char)*q))
            return NULL;
    return e;
}

/* Length of the line at p (without its LF or CRLF); *next after it. */
static size_t line_at(char *p, char *end, char **next)
{
    /* The caller found the empty line that ends the head, so every line has its LF. */
    char *lf = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)(lf - p);

    *next = lf + 1;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    return len;
}

enum parse_result { PARSE_OK, PARSE_BAD, PARSE_VERSION };

/*
 * Check the head in c->in[0, head_len) (it ends with the empty line) and
 * split out the method and the target, NUL-terminated in place.
 */
static enum parse_result parse_head(struct http_conn *c, size_t head_len, char **method,
                                    char **target)
{
    char *p = c->in, *end = c->in + head_len;
    char *line, *next, *sp1, *sp2, *version, *tstart;
    size_t len;

    /* RFC 9112 2.2: ignore empty lines before the request line. */
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    line = p;
    len = line_at(p, end, &next);

    /* METHOD SP TARGET SP HTTP/D.D, exactly. */
    sp1 = token_end(line, len, ' ');
    if (sp1 == NULL)
        return PARSE_BAD;
    tstart = sp1 + 1;
    sp2 = memchr(tstart, ' ', (size_t)(line + len - tstart));
    if (sp2 == NULL || sp2 == tstart)
        return PARSE_BAD;
    for (char *q = tstart; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return PARSE_BAD;
    version = sp2 + 1;
    if (line + len - version != 8 || memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' ||
        version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9')
        return PARSE_BAD;
    /* The origin form (/path) is what clients send to a server; also take
     * the absolute form (http://host/path) that a proxy-minded client may. */
    if (*tstart != '/') {
        if (sp2 - tstart < 8 || strncmp(tstart, "http://", 7) != 0)
            return PARSE_BAD;
        tstart = memchr(tstart + 7, '/', (size_t)(sp2 - (tstart + 7)));
        if (tstart == NULL)
            return PARSE_BAD;
    }

    /* Header fields: name ":" value and nothing else; obsolete line folding,
     * white space before the colon and control bytes are refused. */
    for (p = next; p < end;) {
        char *colon, *fl = p;
        size_t fl_len = line_at(p, end, &p);

        if (fl_len == 0)
            break; /* the empty line that ends the head */
        colon = token_end(fl, fl_len, ':');
        if (colon == NULL)
            return PARSE_BAD;
        for (char *q = colon + 1; q < fl + fl_len; q++) {
            unsigned char ch = (unsigned char)*q;

            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return PARSE_BAD;
        }
    }

    if (version[5] != '1')
        return PARSE_VERSION;
    *sp1 = '\0';
    *sp2 = '\0';
    *method = line;
    *target = tstart;
    return PARSE_OK;
}

/* The head is complete in c->in[0, head_len): answer it. */
static void handle_head(struct http_conn *c, size_t head_len)
{
    struct http_server *srv = server_of(c);
    char *method, *target, *query;
    bool head_only;
    enum parse_result r = parse_head(c, head_len, &method, &target);

    conn_watch(&c->base, 0);
    if (r == PARSE_VERSION) {
        oddity(srv, ODD_BAD, "%s: HTTP version other than 1.x; answered 505", c->base.peer);
        respond_error(c, 505, NULL);
        return;
    }
    if (r != PARSE_OK) {
        oddity(srv, ODD_BAD, "%s: malformed request line or header; answered 400", c->base.peer);
        respond_error(c, 400, NULL);
        return;
    }
    head_only = strcmp(method, "HEAD") == 0;
    /* POST carries its parameters in the query (relaywatch block/release); a body is
     * neither needed nor read. */
    if (!head_only && strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        oddity(srv, ODD_METHOD, "%s: method %.20s; answered 405", c->base.peer, method);
        respond_error(c, 405, "Allow: GET, HEAD, POST\r\n");
        return;
    }
    query = strchr(target, '?');
    if (query != NULL)
        *query++ = '\0';
    else
        query = target + strlen(target);
    {
        struct http_body body = {0};
        const char *content_type = NULL;
        int code = srv->handler(srv->ctx, head_only ? "GET" : method, target, query,
                                c->may_change, &body, &content_type);

        if (code < 100 || code > 999)
            code = 500;
        if (code == 403 && srv->control)
            oddity(srv, ODD_DENIED, "%s: uid %ld is not root, relaywatchd's user or in "
                   "control_group: %s %.100s refused (403)", c->base.peer, c->uid, method, target);
        else if (code == 403)
            oddity(srv, ODD_DENIED, "%s: %s %.100s refused (403): changes go through "
                   "control_socket", c->base.peer, method, target);
        if (content_type == NULL)
            content_type = "text/plain; charset=utf-8";
        /* The handler's 405: a POST where only reading is possible. */
        respond(c, code, content_type,
                code == 405                                 ? "Allow: GET, HEAD\r\n"
                : strncmp(content_type, "text/html", 9) == 0 ? HTML_HEADERS
                                                             : NULL,
                &body, head_only);
        free(body.data);
    }
}

/* Find the empty line that ends the head; its end offset, or 0. */
static size_t head_end(const char *buf, size_t len, size_t from)
{
    /* Resume a little before the new bytes: the terminator may straddle reads. */
    size_t i = from > 3 ? from - 3 : 0;

    /* Leading empty lines are not the end of the head. */
    size_t start = 0;
    while (start < len && (buf[start] == '\r' || buf[start] == '\n'))
        start++;
    if (i < start)
        i = start;
    for (; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static void read_head(struct http_conn *c)
{
    for (;;) {
        size_t before = c->in_len, end;
        ssize_t n;

        if (c->in_len == sizeof(c->in)) {
            oddity(server_of(c), ODD_TOO_LARGE, "%s: request head over %d bytes; answered 431",
                   c->base.peer, HTTP_HEAD_MAX);
            conn_watch(&c->base, 0);
            respond_error(c, 431, NULL);
            return;
        }
        n = recv(c->base.fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(&c->base);
            return;
        }
        if (n == 0) {
            conn_close(&c->base); /* the peer gave up before the head was complete */
            return;
        }
        c->in_len += (size_t)n;
        conn_idle(&c->base, false); /* a request under way is never closed for a new one */
        end = head_end(c->in, c->in_len, before);
        if (end > 0) {
            handle_head(c, end);
            return;
        }
    }
}

/* After the response: throw input away until EOF, a cap or the timer. */
static void drain_input(struct http_conn *c)
{
    char sink[4096];

    for (;;) {
        ssize_t n = recv(c->base.fd, sink, sizeof(sink), 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(&c->base);
            return;
        }
        c->drained += (size_t)n;
        if (c->drained > HTTP_LINGER_BYTES) {
            conn_close(&c->base);
            return;
        }
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_conn *c = (struct http_conn *)w;

    (void)loop;
    (void)revents;
    switch (c->phase) {
    case PHASE_READ:
        read_head(c);
        break;
    case PHASE_WRITE:
        flush(c);
        break;
    case PHASE_LINGER:
        drain_input(c);
        break;
    }
}

/* ------------------------------------------------- the connection layer's calls */

static bool conn_opened(struct conn *base)
{
    ((struct http_conn *)base)->phase = PHASE_READ;
    ((struct http_conn *)base)->uid = -1;
    /* Nothing sent yet: at the limit closed for a newer one, so connections that send
     * nothing cannot keep the views from everyone else. */
    conn_idle(base, true);
    return true;
}

/* Whether the process at the other end of fd had gid among its groups when it connected. */
static bool peer_in_group(int fd, gid_t primary, gid_t gid)
{
    gid_t some[HTTP_PEER_GROUPS], *groups = some;
    socklen_t len = sizeof(some);
    bool found = primary == gid;

    if (found)
        return true;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
        /* ERANGE: len says how much room the list needs. */
        if (errno != ERANGE || (groups = malloc(len)) == NULL)
            return false;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
            len = 0;
    }
    for (size_t i = 0; i < len / sizeof(gid_t) && !found; i++)
        found = groups[i] == gid;
    if (groups != some)
        free(groups);
    return found;
}

/* The control socket: who is calling decides, once, whether it may change anything. */
static bool control_opened(struct conn *base)
{
    struct http_conn *c = (struct http_conn *)base;
    struct http_server *srv = server_of(c);
    struct ucred cred;
    socklen_t len = sizeof(cred);

    conn_opened(base);
    if (getsockopt(base->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred))
        return true; /* unknown: may read, not change */
    c->uid = (long)cred.uid;
    c->may_change = cred.uid == 0 || cred.uid == geteuid() ||
                    (srv->group != (gid_t)-1 && peer_in_group(base->fd, cred.gid, srv->group));
    return true;
}

static bool deadline_passed(struct conn *base)
{
    struct http_conn *c = (struct http_conn *)base;

    if (c->phase == PHASE_READ)
        oddity(server_of(c), ODD_TIMEOUT, "%s: no complete request within %.0fs; closed",
               c->base.peer, HTTP_DEADLINE);
    else if (c->phase == PHASE_WRITE)
        oddity(server_of(c), ODD_TIMEOUT, "%s: response not read within %.0fs; closed",
               c->base.peer, HTTP_DEADLINE);
    return false;
}

static void conn_gone(struct conn *base)
{
    free(((struct http_conn *)base)->out);
}

static void refused(void *owner, bool first)
{
    (void)first; /* oddity() limits itself, episode or not */
    oddity(owner, ODD_LIMIT, "%d connections open; refusing new ones until some close",
           HTTP_MAX_CONNECTIONS);
}

static void evicted(void *owner, bool first)
{
    (void)first;
    oddity(owner, ODD_LIMIT, "%d connections open; closing the one idle longest for each new one",
           HTTP_MAX_CONNECTIONS);
}

static void accept_paused(void *owner, const char *listener, int err)
{
    (void)listener;
    oddity(owner, ODD_ACCEPT, "accept: %s; pausing for 1s", strerror(err));
}

#define HTTP_CONN_OPS(name, on_open)                                                         \
    {                                                                                        \
        .size = sizeof(struct http_conn), .accepts_per_event = HTTP_ACCEPTS_PER_EVENT,       \
        .key = name, .open = on_open, .io = io_cb, .timeout = deadline_passed,               \
        .close = conn_gone, .refused = refused, .evicted = evicted, .below_limit = NULL,     \
        .paused = accept_paused,                                                             \
    }

static const struct conn_ops http_conn_ops = HTTP_CONN_OPS("http_listen", conn_opened);
static const struct conn_ops control_conn_ops = HTTP_CONN_OPS("control_socket", control_opened);

/* ------------------------------------------------------------- the API */

static struct http_server *server_new(struct ev_loop *loop, const struct endpoint *ep,
                                      const struct conn_ops *ops, http_handler_fn *handler,
                                      void *ctx)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));

    srv->loop = loop;
    srv->handler = handler;
    srv->ctx = ctx;
    srv->spec = xstrdup(ep->spec ? ep->spec : "?");
    srv->group = (gid_t)-1;
    srv->conns = conn_set_new(loop, ops, srv, HTTP_MAX_CONNECTIONS, HTTP_DEADLINE);
    return srv;
}

struct http_server *http_server_new(struct ev_loop *loop, const struct endpoint *ep,
                                    http_handler_fn *handler, void *ctx, char *err, size_t errlen)
{
    struct http_server *srv = server_new(loop, ep, &http_conn_ops, handler, ctx);

    if (conn_set_listen(srv->conns, ep, 1, HTTP_UNIX_MODE, err, errlen) != 0) {
        http_server_free(srv);
        return NULL;
    }
    return srv;
}

int http_control_open(const struct endpoint *ep, gid_t gid, char *err, size_t errlen)
{
    mode_t old_mask;
    gid_t old_egid = getegid();
    int fd, n;

    /* Root makes the file 0660 and of control_group as bind creates it (umask, effective
     * gid), and never touches its path afterwards: in a directory the daemon's user can
     * write, a chmod or chown by name could be turned onto another file through a symlink.
     * 0660 keeps out whoever is neither its owner nor in its group; the credentials asked at
     * accept are what admits. */
    if (gid != (gid_t)-1 && setegid(gid) != 0) {
        snprintf(err, errlen, "control_socket: %s: cannot take group %ld: %s", ep->spec,
                 (long)gid, strerror(errno));
        return -1;
    }
    old_mask = umask(0117);
    n = listen_socket_open(ep, "control_socket", LISTEN_SOCKET_MODE_AS_MADE, &fd, err, errlen);
    umask(old_mask);
    if (gid != (gid_t)-1 && setegid(old_egid) != 0)
        abort(); /* root's own group back: cannot fail, and going on without it must not */
    return n == 1 ? fd : -1;
}

struct http_server *http_control_new(struct ev_loop *loop, const struct endpoint *ep, int fd,
                                     gid_t gid, http_handler_fn *handler, void *ctx)
{
    struct http_server *srv = server_new(loop, ep, &control_conn_ops, handler, ctx);

    srv->control = true;
    srv->group = gid;
    conn_set_adopt(srv->conns, ep, fd);
    return srv;
}

void http_server_free(struct http_server *srv)
{
    if (srv == NULL)
        return;
    conn_set_free(srv->conns);
    free(srv->spec);
    free(srv);
}
