/*
 * connections: see connections.h.
 */
#include "connections.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "listen_socket.h"
#include "log.h"
#include "xalloc.h"

#define ACCEPT_PAUSE 1.0 /* seconds without accepting after EMFILE and the like */

struct listener {
    ev_io io;
    struct conn_set *set;
    struct listener *next;
    struct endpoint ep; /* copy of the endpoint's identity (strings owned) */
};

struct conn_set {
    struct ev_loop *loop;
    const struct conn_ops *ops;
    void *owner;
    unsigned max;
    double timeout;
    struct listener *listeners;
    bool listened; /* conn_set_listen succeeded once: later changes are logged */
    struct conn *conns;
    unsigned count;
    bool full; /* refusing at the limit until the count is down to 90 % */
    unsigned long refused_while_full;
    ev_timer accept_pause;
    void (*drained)(void *); /* draining: called when the last connection goes */
    void *drained_arg;
};

/* -------------------------------------------------------------- listeners */

static char *dup_or_null(const char *s)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = xstrdup(s);
    return d;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents);

static void listener_close(struct listener *l)
{
    ev_io_stop(l->set->loop, &l->io);
    close(l->io.fd);
    if (l->ep.kind == ENDPOINT_UNIX)
        unlink(l->ep.path); /* we made it */
    free(l->ep.spec);
    free(l->ep.host);
    free(l->ep.port);
    free(l->ep.path);
    free(l);
}

static void close_listeners(struct listener *l)
{
    while (l != NULL) {
        struct listener *next = l->next;

        listener_close(l);
        l = next;
    }
}

/* A listener for fd, listening on ep, onto *list (not accepting yet). */
static void listener_add(struct conn_set *set, const struct endpoint *ep, int fd,
                         struct listener **list)
{
    struct listener *l = xcalloc(1, sizeof(*l));

    l->set = set;
    l->ep.kind = ep->kind;
    l->ep.spec = dup_or_null(ep->spec);
    l->ep.host = dup_or_null(ep->host);
    l->ep.port = dup_or_null(ep->port);
    l->ep.path = dup_or_null(ep->path);
    ev_io_init(&l->io, accept_cb, fd, EV_READ);
    l->next = *list;
    *list = l;
}

/* Open every socket of ep onto *list (not accepting yet); -1 with err. */
static int open_endpoint(struct conn_set *set, const struct endpoint *ep, unsigned mode,
                         struct listener **list, char *err, size_t errlen)
{
    int fds[LISTEN_SOCKET_MAX];
    int n = listen_socket_open(ep, set->ops->key, mode, fds, err, errlen);

    for (int i = 0; i < n; i++)
        listener_add(set, ep, fds[i], list);
    return n > 0 ? 0 : -1;
}

static bool listening_on(const struct listener *list, const struct endpoint *ep)
{
    for (const struct listener *l = list; l != NULL; l = l->next)
        if (endpoint_equal(&l->ep, ep))
            return true;
    return false;
}

static bool wanted(const struct endpoint *eps, size_t n, const struct endpoint *ep)
{
    for (size_t i = 0; i < n; i++)
        if (endpoint_equal(&eps[i], ep))
            return true;
    return false;
}

int conn_set_listen(struct conn_set *set, const struct endpoint *eps, size_t n, unsigned mode,
                    char *err, size_t errlen)
{
    struct listener *added = NULL, **pp;
    const char *key = set->ops->key;

    /* Open what is new first, so that a failure leaves everything as it was. */
    for (size_t i = 0; i < n; i++) {
        if (listening_on(set->listeners, &eps[i]))
            continue;
        if (open_endpoint(set, &eps[i], mode, &added, err, errlen) != 0) {
            close_listeners(added);
            return -1;
        }
    }
    for (pp = &set->listeners; *pp != NULL;) {
        struct listener *l = *pp;

        if (wanted(eps, n, &l->ep)) {
            if (l->ep.kind == ENDPOINT_UNIX && chmod(l->ep.path, mode) != 0)
                log_warning("%s: %s: chmod: %s", key, l->ep.spec, strerror(errno));
            pp = &l->next;
            continue;
        }
        log_info("%s: %s: closed", key, l->ep.spec);
        *pp = l->next;
        listener_close(l);
    }
    while (added != NULL) {
        struct listener *next = added->next;

        if (set->listened)
            log_info("%s: %s: opened", key, added->ep.spec);
        added->next = set->listeners;
        set->listeners = added;
        if (!ev_is_active(&set->accept_pause))
            ev_io_start(set->loop, &added->io);
        added = next;
    }
    set->listened = true;
    return 0;
}

void conn_set_adopt(struct conn_set *set, const struct endpoint *ep, int fd)
{
    listener_add(set, ep, fd, &set->listeners);
    if (!ev_is_active(&set->accept_pause))
        ev_io_start(set->loop, &set->listeners->io);
    set->listened = true;
}

static void accepting(struct conn_set *set, bool on)
{
    for (struct listener *l = set->listeners; l != NULL; l = l->next) {
        if (on)
            ev_io_start(set->loop, &l->io);
        else
            ev_io_stop(set->loop, &l->io);
    }
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn_set *set = w->data;

    (void)loop;
    (void)revents;
    accepting(set, true);
}

/* ------------------------------------------------------------ connections */

static void name_peer(struct conn *c, const struct listener *l, const struct sockaddr_storage *ss)
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

/*
 * Activity only records the time; the timer, when it runs out, starts
 * again for the rest of the period (libev's "let the timer time out"
 * pattern), so activity costs no timer-heap update.
 */
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, timer));
    struct conn_set *set = c->set;
    ev_tstamp due = c->deadline > 0 ? c->deadline : c->active + set->timeout;
    ev_tstamp left = due - ev_now(loop);

    (void)revents;
    if (left <= 0) {
        if (!set->ops->timeout(c)) {
            conn_close(c);
            return;
        }
        left = set->timeout;
    }
    ev_timer_set(w, left, 0.0);
    ev_timer_start(loop, w);
}

/* Take the accepted fd on as a connection; false when out of memory. */
static bool conn_open(struct conn_set *set, const struct listener *l, int fd,
                      const struct sockaddr_storage *ss)
{
    struct conn *c = calloc(1, set->ops->size);
    int one = 1;

    if (c == NULL)
        return false;
    if (ss->ss_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->set = set;
    c->owner = set->owner;
    c->fd = fd;
    name_peer(c, l, ss);
    ev_io_init(&c->io, set->ops->io, fd, EV_READ);
    ev_io_start(set->loop, &c->io);
    c->active = ev_now(set->loop);
    ev_timer_init(&c->timer, timer_cb, set->timeout, 0.0);
    ev_timer_start(set->loop, &c->timer);
    if (!set->ops->open(c)) {
        ev_io_stop(set->loop, &c->io);
        ev_timer_stop(set->loop, &c->timer);
        free(c);
        return false;
    }
    c->next = set->conns;
    if (set->conns)
        set->conns->prev = c;
    set->conns = c;
    set->count++;
    return true;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = (struct listener *)w;
    struct conn_set *set = l->set;

    (void)revents;
    for (int i = 0; i < set->ops->accepts_per_event; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(w->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            /* A listener that stays readable must not spin the loop. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                set->ops->paused(set->owner, l->ep.spec, errno);
                accepting(set, false);
                ev_timer_stop(loop, &set->accept_pause);
                ev_timer_set(&set->accept_pause, ACCEPT_PAUSE, 0.0);
                ev_timer_start(loop, &set->accept_pause);
            }
            return; /* EAGAIN, ECONNABORTED, EINTR: nothing more now */
        }
        if (set->count >= set->max) {
            /* Closing at once lets the client fall back now instead of
             * waiting out its timeout in our listen backlog. */
            bool first = !set->full;

            set->full = true;
            set->refused_while_full++;
            set->ops->refused(set->owner, first);
            close(fd);
            continue;
        }
        if (!conn_open(set, l, fd, &ss)) {
            log_warning("out of memory accepting a connection on %s", l->ep.spec);
            close(fd);
            return;
        }
    }
}

void conn_close(struct conn *c)
{
    struct conn_set *set = c->set;

    set->ops->close(c);
    ev_io_stop(set->loop, &c->io);
    ev_timer_stop(set->loop, &c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        set->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    set->count--;
    free(c);
    /* The episode ends well below the limit, so a server turning connections
     * over at the limit does not log twice per connection. */
    if (set->full && set->count <= set->max * 9 / 10) {
        if (set->ops->below_limit != NULL)
            set->ops->below_limit(set->owner, set->refused_while_full);
        set->full = false;
        set->refused_while_full = 0;
    }
    if (set->drained != NULL && set->count == 0) {
        void (*done)(void *) = set->drained;

        set->drained = NULL;
        done(set->drained_arg);
    }
}

void conn_watch(struct conn *c, int events)
{
    ev_io_stop(c->set->loop, &c->io);
    if (events == 0)
        return;
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(c->set->loop, &c->io);
}

void conn_expire_within(struct conn *c, double seconds)
{
    struct ev_loop *loop = c->set->loop;
    ev_tstamp now = ev_now(loop);
    ev_tstamp due = c->deadline > 0 ? c->deadline : c->active + c->set->timeout;

    if (due - now > 0 && due - now < seconds)
        seconds = due - now;
    c->deadline = now + seconds;
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, seconds, 0.0);
    ev_timer_start(loop, &c->timer);
}

/* -------------------------------------------------------------------- set */

struct conn_set *conn_set_new(struct ev_loop *loop, const struct conn_ops *ops, void *owner,
                              unsigned max, double timeout)
{
    struct conn_set *set = xcalloc(1, sizeof(*set));

    set->loop = loop;
    set->ops = ops;
    set->owner = owner;
    set->max = max;
    set->timeout = timeout;
    ev_init(&set->accept_pause, accept_pause_cb);
    set->accept_pause.data = set;
    return set;
}

void conn_set_limits(struct conn_set *set, unsigned max, double timeout)
{
    set->max = max;
    set->timeout = timeout;
}

void conn_set_drain(struct conn_set *set, void (*done)(void *arg), void *arg)
{
    ev_timer_stop(set->loop, &set->accept_pause);
    close_listeners(set->listeners);
    set->listeners = NULL;
    if (set->count == 0) {
        done(arg);
        return;
    }
    set->drained = done;
    set->drained_arg = arg;
}

unsigned conn_set_count(const struct conn_set *set)
{
    return set->count;
}

struct conn *conn_set_first(const struct conn_set *set)
{
    return set->conns;
}

void conn_set_close_all(struct conn_set *set)
{
    while (set->conns != NULL)
        conn_close(set->conns);
}

void conn_set_free(struct conn_set *set)
{
    if (set == NULL)
        return;
    set->drained = NULL;
    conn_set_close_all(set);
    close_listeners(set->listeners);
    ev_timer_stop(set->loop, &set->accept_pause);
    free(set);
}
