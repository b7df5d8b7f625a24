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
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "listen_socket.h"
#include "log.h"
#include "xalloc.h"

#define ACCEPT_PAUSE 1.0 /* seconds without accepting after EMFILE and the like */
/* The per-peer table: at most max peers in at least twice as many slots, so
 * probes stay short; the cap bounds them whatever the hash does. */
#define PEER_PROBE_MAX 32
#define PEER_LOG_EVERY 60.0 /* seconds between log lines about one peer */

enum peer_kind { PEER_NONE, PEER_UID, PEER_IPV4, PEER_IPV6_NET };

/* One peer with connections open: a slot of the table (kind 0: empty). */
struct peer {
    uint64_t id; /* uid, IPv4 address, or the upper 64 bits of an IPv6 address */
    unsigned char kind;
    unsigned count;
    double refused_logged_at, noted_logged_at;
    unsigned long refused_unlogged, noted_unlogged;
};

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
    /* Idle connections, the one idle longest first: the one to close at the limit. */
    struct conn *idle_head, *idle_tail;
    bool full; /* at the limit (refusing or evicting) until the count is down to 90 % */
    unsigned per_peer; /* 0: no per-peer limit */
    struct peer *peers; /* open addressing, peer_mask + 1 slots */
    size_t peer_mask;
    uint64_t peer_seed; /* keys the slot hash: peers cannot aim at one run of slots */
    unsigned long refused_while_full, evicted_while_full;
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
static void conn_release(struct conn *c);

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

/* -------------------------------------------------------------- peers */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t peer_home(const struct conn_set *set, const struct peer *p)
{
    return (size_t)mix64(p->id ^ set->peer_seed ^ ((uint64_t)p->kind << 62)) & set->peer_mask;
}

/* The slot of (kind, id), taking an empty one if add; NULL if none within the cap. */
static struct peer *peer_find(struct conn_set *set, unsigned char kind, uint64_t id, bool add)
{
    struct peer key = {.id = id, .kind = kind};
    size_t pos = peer_home(set, &key);

    for (int i = 0; i < PEER_PROBE_MAX; i++, pos = (pos + 1) & set->peer_mask) {
        struct peer *p = &set->peers[pos];

        if (p->kind == kind && p->id == id)
            return p;
        if (p->kind == PEER_NONE) {
            if (!add)
                return NULL;
            *p = key;
            return p;
        }
    }
    return NULL;
}

/* Empty p's slot, moving later entries of its run back (entries only get
 * nearer their home, so every one stays within the probe cap). */
static void peer_remove(struct conn_set *set, struct peer *p)
{
    size_t hole = (size_t)(p - set->peers), pos = hole;

    for (;;) {
        size_t home;

        pos = (pos + 1) & set->peer_mask;
        if (set->peers[pos].kind == PEER_NONE)
            break;
        home = peer_home(set, &set->peers[pos]);
        /* Movable into the hole when its home is not in (hole, pos]. */
        if (((pos - home) & set->peer_mask) >= ((pos - hole) & set->peer_mask)) {
            set->peers[hole] = set->peers[pos];
            hole = pos;
        }
    }
    memset(&set->peers[hole], 0, sizeof(set->peers[hole]));
}

/* A table for up to max peers (reload: entries move over). */
static void peers_size(struct conn_set *set, unsigned max)
{
    size_t slots = 16, old_slots = set->peers ? set->peer_mask + 1 : 0;
    struct peer *old = set->peers;

    while (slots < (size_t)max * 2)
        slots *= 2;
    if (slots <= old_slots)
        return;
    set->peers = xcalloc(slots, sizeof(*set->peers));
    set->peer_mask = slots - 1;
    for (size_t i = 0; i < old_slots; i++) {
        struct peer *p;

        if (old[i].kind == PEER_NONE)
            continue;
        p = peer_find(set, old[i].kind, old[i].id, true);
        if (p != NULL)
            *p = old[i];
        /* else: its connections go untracked (their close finds nothing) */
    }
    free(old);
}

/* Who is calling: uid for unix sockets, address or /64 for TCP.  *limited:
 * the per-peer limit applies (not on loopback, where Postfix calls from and
 * any local process can choose among the addresses). */
static unsigned char peer_of(int fd, const struct sockaddr_storage *ss, uint64_t *id,
                             bool *limited)
{
    *limited = true;
    if (ss->ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
            return PEER_NONE;
        *id = cred.uid;
        return PEER_UID;
    }
    if (ss->ss_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);

        *id = a;
        *limited = (a >> 24) != 127;
        return PEER_IPV4;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(a)) {
            uint32_t v4 = (uint32_t)a->s6_addr[12] << 24 | (uint32_t)a->s6_addr[13] << 16 |
                          (uint32_t)a->s6_addr[14] << 8 | a->s6_addr[15];

            *id = v4;
            *limited = (v4 >> 24) != 127;
            return PEER_IPV4;
        }
        *id = 0;
        for (int i = 0; i < 8; i++)
            *id = *id << 8 | a->s6_addr[i];
        *limited = !IN6_IS_ADDR_LOOPBACK(a);
        return PEER_IPV6_NET;
    }
    return PEER_NONE;
}

static void peer_label(const struct peer *p, char *buf, size_t len)
{
    if (p->kind == PEER_UID) {
        snprintf(buf, len, "uid %llu", (unsigned long long)p->id);
    } else if (p->kind == PEER_IPV4) {
        snprintf(buf, len, "%u.%u.%u.%u", (unsigned)(p->id >> 24) & 255,
                 (unsigned)(p->id >> 16) & 255, (unsigned)(p->id >> 8) & 255,
                 (unsigned)p->id & 255);
    } else {
        snprintf(buf, len, "%x:%x:%x:%x::/64", (unsigned)(p->id >> 48) & 0xffff,
                 (unsigned)(p->id >> 32) & 0xffff, (unsigned)(p->id >> 16) & 0xffff,
                 (unsigned)p->id & 0xffff);
    }
}

/* Once a minute per peer at most: true, with the events since the last true. */
static bool log_due(double *logged_at, unsigned long *unlogged, double now,
                    unsigned long *events)
{
    ++*unlogged;
    if (*logged_at != 0 && now - *logged_at < PEER_LOG_EVERY)
        return false;
    *events = *unlogged;
    *logged_at = now;
    *unlogged = 0;
    return true;
}

bool conn_peer_log_due(struct conn *c, unsigned long *events)
{
    struct peer *p = c->peer_kind ? peer_find(c->set, c->peer_kind, c->peer_id, false) : NULL;

    *events = 1;
    if (p == NULL)
        return true;
    return log_due(&p->noted_logged_at, &p->noted_unlogged, ev_now(c->set->loop), events);
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
static struct conn *conn_open(struct conn_set *set, const struct listener *l, int fd,
                              const struct sockaddr_storage *ss)
{
    struct conn *c = calloc(1, set->ops->size);
    int one = 1;

    if (c == NULL)
        return NULL;
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
        conn_idle(c, false);
        ev_io_stop(set->loop, &c->io);
        ev_timer_stop(set->loop, &c->timer);
        free(c);
        return NULL;
    }
    c->next = set->conns;
    if (set->conns)
        set->conns->prev = c;
    set->conns = c;
    set->count++;
    return c;
}

/* Refuse fd if its peer is at the per-peer limit; else count it there (*pp, or NULL
 * when untracked).  True: refused and closed. */
static bool peer_refuses(struct conn_set *set, int fd, const struct sockaddr_storage *ss,
                         struct peer **pp)
{
    uint64_t id = 0;
    bool limited;
    unsigned char kind = peer_of(fd, ss, &id, &limited);
    struct peer *p = kind != PEER_NONE ? peer_find(set, kind, id, true) : NULL;
    unsigned long refused;
    char label[64];

    *pp = p;
    if (p == NULL && kind != PEER_NONE && limited && set->per_peer != 0) {
        /* No room to count it (a run of the table crowded by many peers): refused, never
         * let in unlimited. */
        if (set->ops->peer_refused != NULL)
            set->ops->peer_refused(set->owner, "", false, 0);
        close(fd);
        return true;
    }
    if (p == NULL || !limited || set->per_peer == 0 || p->count < set->per_peer)
        return false;
    if (set->ops->peer_refused != NULL) {
        bool due = log_due(&p->refused_logged_at, &p->refused_unlogged, ev_now(set->loop),
                           &refused);

        peer_label(p, label, sizeof(label));
        set->ops->peer_refused(set->owner, label, due, due ? refused : 0);
    }
    close(fd);
    return true;
}

/* Idle connections looked at per new connection at the limit: bounded work per accept. */
#define IDLE_CHECKS_MAX 16

/*
 * At the limit: the connection to close for a new one, the one idle longest
 * whose socket holds nothing unread, or NULL (then the new one is refused).
 * "Idle" is what the daemon has read; a request Postfix has just written may
 * wait in the socket unread (this accept ran first), and closing then would
 * reset the connection and lose it.  Such a connection leaves the idle list
 * (its read callback puts it back once answered).  One at end of stream (the
 * peer left) may go.
 */
static struct conn *idle_to_close(struct conn_set *set)
{
    for (int i = 0; i < IDLE_CHECKS_MAX && set->idle_head != NULL; i++) {
        struct conn *c = set->idle_head;
        char byte;
        ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

        if (n > 0) {
            conn_idle(c, false);
            continue;
        }
        return c; /* nothing waiting (EAGAIN), the peer gone (0), or a broken socket */
    }
    return NULL;
}

/*
 * Close victim, idle longest, so that the new connection gets its place; returns
 * p's slot (the new connection's peer) as it is after that close.  Between
 * requests nothing is lost: Postfix's client (attr_clnt_request in
 * src/util/attr_clnt.c) finds the closed connection readable before it writes,
 * reconnects after smtpd_policy_service_retry_delay and sends the request again
 * (smtpd_policy_service_try_limit, 2 by default); an smtpd between sessions
 * reconnects at its next request.  Whoever idles longest goes first, so a local
 * process holding connections idle loses them to Postfix's new ones instead of
 * locking Postfix out.
 */
static struct peer *evict_idle(struct conn_set *set, struct conn *victim, struct peer *p)
{
    struct peer key = {0};
    bool first = !set->full;

    if (p != NULL)
        key = *p;
    set->full = true;
    set->evicted_while_full++;
    if (set->ops->evicted != NULL)
        set->ops->evicted(set->owner, first);
    /* conn_release, not conn_close: the count stays at the limit, so the episode goes on
     * (a small limit would otherwise end one at each eviction). */
    conn_release(victim);
    /* The close may have moved p's entry back in its run, or emptied it (the same peer). */
    return p != NULL ? peer_find(set, key.kind, key.id, true) : NULL;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = (struct listener *)w;
    struct conn_set *set = l->set;

    (void)revents;
    for (int i = 0; i < set->ops->accepts_per_event; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        struct peer *p;
        struct conn *c, *victim;
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
        victim = set->count >= set->max ? idle_to_close(set) : NULL;
        if (set->count >= set->max && victim == NULL) {
            /* Closing at once lets the client fall back now instead of
             * waiting out its timeout in our listen backlog. */
            bool first = !set->full;

            set->full = true;
            set->refused_while_full++;
            set->ops->refused(set->owner, first);
            close(fd);
            continue;
        }
        if (peer_refuses(set, fd, &ss, &p))
            continue;
        if (victim != NULL)
            p = evict_idle(set, victim, p);
        c = conn_open(set, l, fd, &ss);
        if (c == NULL) {
            if (p != NULL && p->count == 0)
                peer_remove(set, p);
            log_warning("out of memory accepting a connection on %s", l->ep.spec);
            close(fd);
            return;
        }
        if (p != NULL) {
            p->count++;
            c->peer_kind = p->kind;
            c->peer_id = p->id;
        }
    }
}

/* Close c without ending an episode at the limit or a drain (conn_close does). */
static void conn_release(struct conn *c)
{
    struct conn_set *set = c->set;

    conn_idle(c, false);
    set->ops->close(c);
    if (c->peer_kind != PEER_NONE) {
        struct peer *p = peer_find(set, c->peer_kind, c->peer_id, false);

        if (p != NULL && --p->count == 0)
            peer_remove(set, p);
    }
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
}

void conn_close(struct conn *c)
{
    struct conn_set *set = c->set;

    conn_release(c);
    /* The episode ends well below the limit, so a server turning connections
     * over at the limit does not log twice per connection. */
    if (set->full && set->count <= set->max * 9 / 10) {
        if (set->ops->below_limit != NULL)
            set->ops->below_limit(set->owner, set->refused_while_full, set->evicted_while_full);
        set->full = false;
        set->refused_while_full = 0;
        set->evicted_while_full = 0;
    }
    if (set->drained != NULL && set->count == 0) {
        void (*done)(void *) = set->drained;

        set->drained = NULL;
        done(set->drained_arg);
    }
}

void conn_idle(struct conn *c, bool idle)
{
    struct conn_set *set = c->set;

    if (c->idle) {
        if (c->idle_prev)
            c->idle_prev->idle_next = c->idle_next;
        else
            set->idle_head = c->idle_next;
        if (c->idle_next)
            c->idle_next->idle_prev = c->idle_prev;
        else
            set->idle_tail = c->idle_prev;
        c->idle_prev = c->idle_next = NULL;
    }
    c->idle = idle;
    if (!idle)
        return;
    c->idle_prev = set->idle_tail;
    if (set->idle_tail)
        set->idle_tail->idle_next = c;
    else
        set->idle_head = c;
    set->idle_tail = c;
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

void conn_expire_cancel(struct conn *c)
{
    /* The timer may run out early once; timer_cb then starts it over for the rest. */
    c->deadline = 0;
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
    if (getrandom(&set->peer_seed, sizeof(set->peer_seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(set->peer_seed))
        set->peer_seed = mix64((uint64_t)time(NULL) ^ (uint64_t)getpid() << 32);
    peers_size(set, max);
    ev_init(&set->accept_pause, accept_pause_cb);
    set->accept_pause.data = set;
    return set;
}

void conn_set_limits(struct conn_set *set, unsigned max, double timeout)
{
    set->max = max;
    set->timeout = timeout;
    peers_size(set, max);
}

void conn_set_peer_limit(struct conn_set *set, unsigned per_peer)
{
    set->per_peer = per_peer;
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
    free(set->peers);
    free(set);
}
