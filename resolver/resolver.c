/*
 * resolver: c-ares on libev, a bounded cache, and lookup accounting.
 *
 * c-ares tells us which sockets to watch through its socket-state
 * callback (one ev_io each) and when to wake it through ares_timeout()
 * (one ev_timer).  Its socket functions are ours, so that every query
 * packet it writes is seen: the question is read back out of the packet
 * (UDP datagram, or the TCP stream's length-prefixed messages) and
 * counted as `upstream`, retries included, which is exactly what the
 * name server logs.
 *
 * The cache is a fixed array of entries (allocated at start) with a
 * chained hash index (keyed hash, chains of at most CHAIN_MAX) and an LRU
 * list of finished entries; an entry in flight is the merge point for
 * identical lookups and is never evicted.
 * Times are the loop's (ev_now, no system call per lookup); an entry stored
 * "in the future" after the clock went back is not trusted.
 */
#include "resolver.h"

#include <ares.h>
#include <errno.h>
#include <ev.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium/crypto_shorthash.h>

#include "dns_message.h"
#include "log.h"
#include "xalloc.h"

#define FAILURE_TTL 30.0 /* SERVFAIL and timeouts: RFC 2308 7 allows up to 5 minutes */
#define EDNS_UDP_SIZE 1232
#define MAX_SOCKETS 64
#define ANSWERS_PER_EVENT 16
#define QUESTION_MAX (12 + 256 + 4)
/* The longest a bucket's chain may grow: past it a finished entry of that chain makes room.
 * A keyed hash keeps chains near one entry; this bounds them whatever happens. */
#define CHAIN_MAX 16

enum entry_state { E_FREE, E_PENDING, E_DONE };

struct waiter {
    struct waiter *next;
    resolver_done_fn *done;
    void *arg;
    struct resolver_tag tag;
};

/* The fields a lookup reads come first, so that finding an entry touches one cache line. */
struct entry {
    uint64_t hash;
    uint32_t chain; /* next entry in the hash bucket or free list, index + 1 */
    uint8_t type, state, outcome;
    bool server_failed; /* in flight: a server answered SERVFAIL, REFUSED or the like */
    double stored, expires; /* the loop's time (ev_now) */
    char name[DNS_NAME_MAX + 1];
    uint32_t lru_prev, lru_next; /* index + 1; finished entries only */
    uint64_t moved;              /* r->lookups when it last went to the front */
    struct resolver *r;
    struct resolver_tag tag; /* who caused the query in flight */
    struct waiter *waiters;
    char target[DNS_NAME_MAX + 1];
};

/* A socket c-ares opened through us. */
struct sock {
    ev_io io;
    struct resolver *r;
    int fd; /* -1: slot free */
    bool stream;
    /* TCP: the message being written, its length prefix first. */
    uint8_t msg[QUESTION_MAX];
    size_t have_len, msg_len, msg_got;
};

struct resolver {
    struct ev_loop *loop;
    ares_channel channel;
    bool channel_ok, destroying;
    ev_timer timer;
    resolver_count_fn *count;
    void *ctx;
    struct resolver_settings set;
    char *servers;
    struct entry *entry;
    uint32_t *bucket; /* index + 1 */
    uint32_t bucket_mask;
    unsigned char key[crypto_shorthash_KEYBYTES]; /* name_hash's, secret, new each start */
    uint32_t free_list, lru_head, lru_tail; /* index + 1 */
    uint64_t lookups;
    unsigned used, outstanding, outstanding_peak, waiting, max_waiting;
    struct waiter *spare; /* freed waiters, used again before malloc */
    double first_timeout; /* seconds, as c-ares has it (whole milliseconds) */
    unsigned reads_left;  /* UDP answers c-ares may still read in this loop pass */
    uint64_t evictions, invalid_names, dropped_waiters, unmatched_packets;
    struct sock socks[MAX_SOCKETS];
};

static const uint16_t qtype_of[DNS_TYPES] = {
    [DNS_A] = DNS_QTYPE_A, [DNS_AAAA] = DNS_QTYPE_AAAA, [DNS_MX] = DNS_QTYPE_MX,
    [DNS_PTR] = DNS_QTYPE_PTR};

const char *dns_type_name(enum dns_type t)
{
    static const char *const names[DNS_TYPES] = {"a", "aaaa", "mx", "ptr"};
    return names[t];
}

const char *dns_outcome_name(enum dns_outcome o)
{
    static const char *const names[DNS_OUTCOMES] = {
        "hit", "merged", "upstream", "answered", "nxdomain", "nodata", "servfail", "timeout",
        "skipped"};
    return names[o];
}

static int type_of_qtype(uint16_t qtype)
{
    for (int t = 0; t < DNS_TYPES; t++)
        if (qtype_of[t] == qtype)
            return t;
    return -1;
}

/* SipHash under the resolver's secret key (drawn at start): the names come from senders, who
 * cannot then pick names that share a bucket.  The type moves the bucket, so a name's MX and A
 * entries are apart. */
static uint64_t name_hash(const struct resolver *r, enum dns_type type, const char *name,
                          size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;

    crypto_shorthash(out, (const unsigned char *)name, len, r->key);
    memcpy(&h, out, sizeof(h));
    return h ^ (0x9E3779B97F4A7C15ULL * (uint64_t)type);
}

/* ------------------------------------------------------------------ cache */

/* The entry of (type, name), or NULL; *chain: how long its bucket's chain is. */
static struct entry *entry_find(struct resolver *r, uint64_t hash, enum dns_type type,
                                const char *name, unsigned *chain)
{
    *chain = 0;
    for (uint32_t i = r->bucket[hash & r->bucket_mask]; i != 0; i = r->entry[i - 1].chain) {
        struct entry *e = &r->entry[i - 1];
        if (e->hash == hash && e->type == type && strcmp(e->name, name) == 0)
            return e;
        ++*chain;
    }
    return NULL;
}

static uint32_t entry_number(const struct resolver *r, const struct entry *e)
{
    return (uint32_t)(e - r->entry) + 1;
}

static void lru_remove(struct resolver *r, struct entry *e)
{
    if (e->lru_prev)
        r->entry[e->lru_prev - 1].lru_next = e->lru_next;
    else
        r->lru_head = e->lru_next;
    if (e->lru_next)
        r->entry[e->lru_next - 1].lru_prev = e->lru_prev;
    else
        r->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = 0;
}

static void lru_push(struct resolver *r, struct entry *e)
{
    uint32_t n = entry_number(r, e);

    e->moved = r->lookups;
    e->lru_prev = 0;
    e->lru_next = r->lru_head;
    if (r->lru_head)
        r->entry[r->lru_head - 1].lru_prev = n;
    else
        r->lru_tail = n;
    r->lru_head = n;
}

static void unhash(struct resolver *r, struct entry *e)
{
    uint32_t *p = &r->bucket[e->hash & r->bucket_mask], n = entry_number(r, e);

    while (*p != n)
        p = &r->entry[*p - 1].chain;
    *p = e->chain;
    e->chain = 0;
}

/* A free entry, evicting the least recently used finished one; NULL if all are in flight. */
static struct entry *entry_take(struct resolver *r)
{
    struct entry *e;

    if (r->free_list) {
        e = &r->entry[r->free_list - 1];
        r->free_list = e->chain;
        e->chain = 0;
        r->used++;
        return e;
    }
    if (r->lru_tail == 0)
        return NULL;
    e = &r->entry[r->lru_tail - 1];
    lru_remove(r, e);
    unhash(r, e);
    r->evictions++;
    return e;
}

/* Room in a full chain: its last finished entry (the oldest there), evicted; NULL if every
 * entry of the chain is in flight. */
static struct entry *entry_take_in_chain(struct resolver *r, uint64_t hash)
{
    struct entry *last = NULL;

    for (uint32_t i = r->bucket[hash & r->bucket_mask]; i != 0; i = r->entry[i - 1].chain)
        if (r->entry[i - 1].state == E_DONE)
            last = &r->entry[i - 1];
    if (last != NULL) {
        lru_remove(r, last);
        unhash(r, last);
        r->evictions++;
    }
    return last;
}

/* ---------------------------------------------------------- loop plumbing */

static void reschedule(struct resolver *r)
{
    struct timeval tv, *tvp;

    if (r->destroying)
        return;
    ev_timer_stop(r->loop, &r->timer);
    tvp = ares_timeout(r->channel, NULL, &tv);
    if (tvp != NULL) {
        /* ares_timeout() rounds down to whole milliseconds: with less than 1 ms left it says 0,
         * the query has not timed out yet when the timer fires, and the loop would spin (and
         * walk every query in flight each time) until it has.  One millisecond more. */
        ev_timer_set(&r->timer, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6 + 0.001, 0.);
        ev_timer_start(r->loop, &r->timer);
    }
}

/*
 * After a send or a socket event: ares_timeout() walks every query in flight, too costly to
 * run that often under load.  No query's deadline is sooner than one first-try timeout from
 * when it was sent, so it is enough that the timer fires within that; timer_cb then asks
 * c-ares for the exact time.
 */
static void wake_within_timeout(struct resolver *r)
{
    if (r->destroying)
        return;
    if (ev_is_active(&r->timer) && ev_timer_remaining(r->loop, &r->timer) <= r->first_timeout)
        return;
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_set(&r->timer, r->first_timeout, 0.);
    ev_timer_start(r->loop, &r->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct resolver *r = w->data;

    (void)loop;
    (void)revents;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    reschedule(r);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sock *s = (struct sock *)w;
    struct resolver *r = s->r;
    int fd = s->fd;

    (void)loop;
    r->reads_left = ANSWERS_PER_EVENT;
    /* s may be closed (and reused) inside ares_process_fd: read what we need first. */
    ares_process_fd(r->channel, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    wake_within_timeout(r);
}

static struct sock *sock_find(struct resolver *r, int fd)
{
    for (int i = 0; i < MAX_SOCKETS; i++)
        if (r->socks[i].fd == fd)
            return &r->socks[i];
    return NULL;
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    struct sock *s = sock_find(r, fd);

    if (s == NULL)
        return; /* not one of ours (cannot happen: every socket comes from sock_open) */
    ev_io_stop(r->loop, &s->io);
    if (readable || writable) {
        ev_io_set(&s->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
        ev_io_start(r->loop, &s->io);
    }
}

/* ------------------------------------------------- c-ares socket functions */

static ares_socket_t sock_open(int domain, int type, int protocol, void *user)
{
    struct resolver *r = user;
    struct sock *s = sock_find(r, -1);
    int fd;

    if (s == NULL) {
        errno = EMFILE;
        return ARES_SOCKET_BAD;
    }
    fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return ARES_SOCKET_BAD;
    if (type == SOCK_STREAM) {
        /* c-ares does its own socket set-up only without socket functions: queries written
         * one after another on a TCP connection must not wait for Nagle. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    memset(s, 0, sizeof(*s));
    s->r = r;
    s->fd = fd;
    s->stream = type == SOCK_STREAM;
    ev_io_init(&s->io, io_cb, fd, EV_READ);
    return fd;
}

static int sock_close(ares_socket_t fd, void *user)
{
    struct resolver *r = user;
    struct sock *s = sock_find(r, fd);

    if (s != NULL) {
        ev_io_stop(r->loop, &s->io);
        s->fd = -1;
    }
    return close(fd);
}

static int sock_connect(ares_socket_t fd, const struct sockaddr *addr, ares_socklen_t len,
                        void *user)
{
    (void)user;
    return connect(fd, addr, len);
}

static struct entry *pending_entry(struct resolver *r, const uint8_t *msg, size_t len,
                                   int *type_out);

/*
 * A UDP answer came in.  c-ares 1.18 retries a SERVFAIL, REFUSED or NOTIMP
 * answer and, after the last try, ends the query as if the server had been
 * unreachable; note the failure on the lookup so that it counts as servfail,
 * not timeout.  (A TCP answer is read in pieces; failures over TCP are rare
 * enough to leave them as c-ares reports them.)
 */
static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
                                  struct sockaddr *from, ares_socklen_t *fromlen, void *user)
{
    struct resolver *r = user;
    const uint8_t *msg = buf;
    struct sock *s = sock_find(r, fd);
    struct entry *e;
    int type;
    ssize_t n;

    /* A burst of answers is taken a few at a time: c-ares reads a UDP socket until it is
     * empty, and policy requests waiting in the same loop would wait for all of them.  The
     * socket stays readable, so the loop comes back to it after the others had their turn. */
    if (s != NULL && !s->stream) {
        if (r->reads_left == 0) {
            errno = EAGAIN;
            return -1;
        }
        r->reads_left--;
    }
    n = recvfrom(fd, buf, len, flags, from, fromlen);

    if (n >= 12 && (msg[2] & 0x80) && s != NULL && !s->stream) {
        unsigned rcode = msg[3] & 0x0F;

        if (rcode != DNS_RCODE_NOERROR && rcode != DNS_RCODE_NXDOMAIN &&
            (e = pending_entry(r, msg, (size_t)n, &type)) != NULL)
            e->server_failed = true;
    }
    return n;
}

/* The lookup in flight a message (query or answer) is about; NULL if none.  *type_out is its
 * type, -1 if the question is none of ours. */
static struct entry *pending_entry(struct resolver *r, const uint8_t *msg, size_t len,
                                   int *type_out)
{
    char qname[DNS_NAME_MAX + 1];
    uint16_t qtype;
    struct entry *e;
    unsigned chain;
    int type;

    *type_out = -1;
    if (dns_parse_question(msg, len, qname, &qtype) != 0 || (type = type_of_qtype(qtype)) < 0)
        return NULL;
    *type_out = type;
    e = entry_find(r, name_hash(r, (enum dns_type)type, qname, strlen(qname)),
                   (enum dns_type)type, qname, &chain);
    return e != NULL && e->state == E_PENDING ? e : NULL;
}

/* One query packet went out: count it for the lookup in flight that asked it. */
static void sent_query(struct resolver *r, const uint8_t *msg, size_t len)
{
    struct resolver_tag tag = {0, 0};
    int type;
    struct entry *e = pending_entry(r, msg, len, &type);

    if (e != NULL)
        tag = e->tag;
    else
        r->unmatched_packets++;
    if (type >= 0)
        r->count(r->ctx, (enum dns_type)type, DNS_UPSTREAM, tag);
}

/* Follow the TCP stream: 2-byte length, message, and so on; partial writes allowed. */
static void sent_stream(struct sock *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (s->have_len < 2) {
            s->msg_len = s->msg_len << 8 | *p++;
            n--;
            if (++s->have_len == 2)
                s->msg_got = 0;
            continue;
        }
        {
            size_t take = s->msg_len - s->msg_got < n ? s->msg_len - s->msg_got : n;

            if (s->msg_got < sizeof(s->msg)) {
                size_t keep = sizeof(s->msg) - s->msg_got < take ? sizeof(s->msg) - s->msg_got
                                                                 : take;
                memcpy(s->msg + s->msg_got, p, keep);
            }
            s->msg_got += take;
            p += take;
            n -= take;
        }
        if (s->msg_got == s->msg_len) {
            sent_query(s->r, s->msg, s->msg_len < sizeof(s->msg) ? s->msg_len : sizeof(s->msg));
            s->have_len = 0;
            s->msg_len = 0;
        }
    }
}

static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov, int iovcnt, void *user)
{
    struct resolver *r = user;
    ssize_t n = writev(fd, iov, iovcnt);
    struct sock *s;

    if (n <= 0 || (s = sock_find(r, fd)) == NULL)
        return n;
    if (s->stream) {
        size_t left = (size_t)n;

        for (int i = 0; i < iovcnt && left > 0; i++) {
            size_t part = iov[i].iov_len < left ? iov[i].iov_len : left;
            sent_stream(s, iov[i].iov_base, part);
            left -= part;
        }
    } else {
        uint8_t msg[QUESTION_MAX];
        size_t got = 0;

        for (int i = 0; i < iovcnt && got < sizeof(msg); i++) {
            size_t part = iov[i].iov_len < sizeof(msg) - got ? iov[i].iov_len : sizeof(msg) - got;
            memcpy(msg + got, iov[i].iov_base, part);
            got += part;
        }
        sent_query(r, msg, got);
    }
    return n;
}

static const struct ares_socket_functions socket_functions = {
    sock_open, sock_close, sock_connect, sock_recvfrom, sock_sendv};

/* ------------------------------------------------------------- lookups */

static enum dns_outcome classify(int status, const unsigned char *abuf, int alen, double *ttl,
                                 char *target)
{
    struct dns_reply reply;

    *ttl = FAILURE_TTL;
    target[0] = '\0';
    if (abuf != NULL && alen > 0 && (status == ARES_SUCCESS || status == ARES_ENOTFOUND ||
                                     status == ARES_ENODATA)) {
        if (dns_parse_reply(abuf, (size_t)alen, &reply) != 0)
            return DNS_SERVFAIL;
        if (reply.rcode == DNS_RCODE_NXDOMAIN || (reply.rcode == DNS_RCODE_NOERROR &&
                                                  reply.answers == 0)) {
            /* Without an SOA there is no negative TTL: not cached (RFC 2308 5). */
            *ttl = reply.has_negative_ttl ? reply.negative_ttl : 0;
            return reply.rcode == DNS_RCODE_NXDOMAIN ? DNS_NXDOMAIN : DNS_NODATA;
        }
        if (reply.rcode != DNS_RCODE_NOERROR)
            return DNS_SERVFAIL;
        *ttl = reply.ttl;
        memcpy(target, reply.target, strlen(reply.target) + 1);
        return DNS_ANSWERED;
    }
    switch (status) {
    case ARES_ENOTFOUND:
        *ttl = 0;
        return DNS_NXDOMAIN;
    case ARES_ENODATA:
        *ttl = 0;
        return DNS_NODATA;
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
        return DNS_TIMEOUT;
    default:
        return DNS_SERVFAIL;
    }
}

static void finish_waiters(struct resolver *r, struct waiter *w, enum dns_type type,
                           enum dns_outcome outcome, const char *target)
{
    while (w != NULL) {
        struct waiter *next = w->next;

        r->waiting--;
        w->done(w->arg, type, outcome, target, w->tag);
        w->next = r->spare;
        r->spare = w;
        w = next;
    }
}

static void answer_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct entry *e = arg;
    struct resolver *r = e->r;
    enum dns_type type = (enum dns_type)e->type;
    struct waiter *w = e->waiters;
    enum dns_outcome outcome;
    char target[DNS_NAME_MAX + 1];
    double ttl;

    (void)timeouts;
    e->waiters = NULL;
    r->outstanding--;
    if (status == ARES_EDESTRUCTION || r->destroying) {
        e->state = E_DONE;
        e->expires = 0;
        lru_push(r, e);
        finish_waiters(r, w, type, DNS_SKIPPED, "");
        return;
    }
    outcome = classify(status, abuf, alen, &ttl, target);
    if (outcome == DNS_TIMEOUT && e->server_failed)
        outcome = DNS_SERVFAIL; /* answered, with a failure, on the last tries */
    if (ttl > r->set.max_ttl)
        ttl = r->set.max_ttl;
    e->state = E_DONE;
    e->outcome = (uint8_t)outcome;
    e->stored = ev_now(r->loop);
    e->expires = e->stored + ttl;
    memcpy(e->target, target, strlen(target) + 1);
    lru_push(r, e);
    r->count(r->ctx, type, outcome, e->tag);
    /* The waiters may look more up, which may evict e: they get copies. */
    finish_waiters(r, w, type, outcome, target);
}

static bool add_waiter(struct resolver *r, struct entry *e, resolver_done_fn *done, void *arg,
                       struct resolver_tag tag)
{
    struct waiter *w;

    if (r->waiting >= r->max_waiting) {
        r->dropped_waiters++;
        return false;
    }
    if (r->spare != NULL) {
        w = r->spare;
        r->spare = w->next;
    } else if ((w = malloc(sizeof(*w))) == NULL) {
        r->dropped_waiters++;
        return false;
    }
    w->done = done;
    w->arg = arg;
    w->tag = tag;
    w->next = e->waiters;
    e->waiters = w;
    r->waiting++;
    return true;
}

void resolver_lookup(struct resolver *r, enum dns_type type, const char *name, size_t len,
                     struct resolver_tag tag, resolver_done_fn *done, void *arg)
{
    char key[DNS_NAME_MAX + 1];
    size_t klen = type == DNS_PTR ? dns_reverse_name(name, len, key)
                                  : dns_name_normalise(name, len, key);
    uint64_t hash;
    struct entry *e;
    unsigned chain;
    double now;
    uint8_t query[QUESTION_MAX + 16];
    size_t qlen;

    if (klen == 0 || r->destroying) {
        r->invalid_names += klen == 0;
        if (done)
            done(arg, type, DNS_SKIPPED, "", tag);
        return;
    }
    r->lookups++;
    hash = name_hash(r, type, key, klen);
    e = entry_find(r, hash, type, key, &chain);
    now = ev_now(r->loop);
    if (e != NULL && e->state == E_PENDING) {
        r->count(r->ctx, type, DNS_MERGED, tag);
        if (done && !add_waiter(r, e, done, arg, tag))
            done(arg, type, DNS_SKIPPED, "", tag);
        return;
    }
    /* Stored in the future: the clock went back; ask again rather than trust it. */
    if (e != NULL && e->expires > now && e->stored <= now) {
        char target[DNS_NAME_MAX + 1];

        /* To the front only when it has not been there lately: moving touches two other
         * entries, and order among the recently used does not decide evictions. */
        if (r->lookups - e->moved > r->set.cache_size / 8) {
            lru_remove(r, e);
            lru_push(r, e);
        }
        r->count(r->ctx, type, DNS_HIT, tag);
        if (done) {
            memcpy(target, e->target, strlen(e->target) + 1);
            done(arg, type, (enum dns_outcome)e->outcome, target, tag);
        }
        return;
    }
    if (r->outstanding >= r->set.max_outstanding) {
        r->count(r->ctx, type, DNS_SKIPPED, tag);
        if (done)
            done(arg, type, DNS_SKIPPED, "", tag);
        return;
    }
    if (e != NULL) {
        lru_remove(r, e); /* expired: asked again in the same entry */
    } else {
        e = chain < CHAIN_MAX ? entry_take(r) : entry_take_in_chain(r, hash);
        /* Every entry in flight: cannot happen for the whole cache while max_outstanding <
         * size; for one chain, only with CHAIN_MAX lookups of one bucket in flight. */
        if (e == NULL) {
            r->count(r->ctx, type, DNS_SKIPPED, tag);
            if (done)
                done(arg, type, DNS_SKIPPED, "", tag);
            return;
        }
        e->hash = hash;
        e->type = (uint8_t)type;
        memcpy(e->name, key, klen + 1);
        e->chain = r->bucket[hash & r->bucket_mask];
        r->bucket[hash & r->bucket_mask] = entry_number(r, e);
    }
    e->state = E_PENDING;
    e->server_failed = false;
    e->tag = tag;
    e->target[0] = '\0';
    e->waiters = NULL;
    if (++r->outstanding > r->outstanding_peak)
        r->outstanding_peak = r->outstanding;
    if (done && !add_waiter(r, e, done, arg, tag))
        done(arg, type, DNS_SKIPPED, "", tag);
    /* c-ares 1.18's ares_send() keeps the caller's query ID (only ares_query() draws one):
     * a fixed ID would leave the source port as the only defence against forged answers, and
     * would put every query in flight in one bucket of c-ares's ID table, which it then
     * scans (expanding names) for every answer. */
    qlen = dns_build_query(query, sizeof(query), (uint16_t)arc4random(), key, qtype_of[type],
                           EDNS_UDP_SIZE);
    /* May call answer_cb before it returns (no server, no memory). */
    ares_send(r->channel, query, (int)qlen, answer_cb, e);
    wake_within_timeout(r);
}

/* ------------------------------------------------------------- lifecycle */

struct resolver *resolver_new(struct ev_loop *loop, const struct resolver_settings *settings,
                              resolver_count_fn *count, void *ctx, char *err, size_t errlen)
{
    static bool library_ready;
    struct resolver *r;
    struct ares_options opts;
    int status, optmask;
    uint32_t buckets = 16;

    if (!library_ready) {
        status = ares_library_init(ARES_LIB_INIT_ALL);
        if (status != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares: %s", ares_strerror(status));
            return NULL;
        }
        library_ready = true;
    }
    r = xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->count = count;
    r->ctx = ctx;
    r->set = *settings;
    if (r->set.cache_size < 2)
        r->set.cache_size = 2;
    if (r->set.max_outstanding >= r->set.cache_size)
        r->set.max_outstanding = r->set.cache_size - 1;
    if (r->set.max_outstanding == 0)
        r->set.max_outstanding = 1;
    r->max_waiting = 16 * r->set.max_outstanding + 64;
    arc4random_buf(r->key, sizeof(r->key));
    r->servers = xstrdup(settings->servers);
    r->entry = xcalloc(r->set.cache_size, sizeof(*r->entry));
    while (buckets < r->set.cache_size)
        buckets <<= 1;
    r->bucket = xcalloc(buckets, sizeof(*r->bucket));
    r->set.servers = r->servers;
    r->bucket_mask = buckets - 1;
    for (uint32_t i = 0; i < r->set.cache_size; i++) {
        r->entry[i].r = r;
        r->entry[i].chain = i + 2 <= r->set.cache_size ? i + 2 : 0;
    }
    r->free_list = 1;
    for (int i = 0; i < MAX_SOCKETS; i++)
        r->socks[i].fd = -1;
    ev_init(&r->timer, timer_cb);
    r->timer.data = r;

    memset(&opts, 0, sizeof(opts));
    opts.flags = ARES_FLAG_EDNS;
    opts.ednspsz = EDNS_UDP_SIZE;
    opts.timeout = (int)(settings->timeout * 1000.0 + 0.5);
    r->first_timeout = opts.timeout / 1000.0;
    opts.tries = (int)settings->tries;
    opts.sock_state_cb = sock_state_cb;
    opts.sock_state_cb_data = r;
    optmask = ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
              ARES_OPT_SOCK_STATE_CB;
    status = ares_init_options(&r->channel, &opts, optmask);
    if (status != ARES_SUCCESS) {
        snprintf(err, errlen, "resolver: c-ares: %s", ares_strerror(status));
        free(r->servers);
        free(r->entry);
        free(r->bucket);
        free(r);
        return NULL;
    }
    r->channel_ok = true;
    ares_set_socket_functions(r->channel, &socket_functions, r);
    if (strcmp(settings->servers, "system") != 0) {
        status = ares_set_servers_ports_csv(r->channel, settings->servers);
        if (status != ARES_SUCCESS) {
            snprintf(err, errlen, "resolver: name servers '%s': %s", settings->servers,
                     ares_strerror(status));
            resolver_free(r);
            return NULL;
        }
    }
    return r;
}

void resolver_free(struct resolver *r)
{
    if (r == NULL)
        return;
    r->destroying = true;
    ev_timer_stop(r->loop, &r->timer);
    if (r->channel_ok)
        ares_destroy(r->channel); /* ends every query: answer_cb with ARES_EDESTRUCTION */
    for (int i = 0; i < MAX_SOCKETS; i++)
        if (r->socks[i].fd >= 0) {
            ev_io_stop(r->loop, &r->socks[i].io);
            close(r->socks[i].fd);
        }
    while (r->spare != NULL) {
        struct waiter *w = r->spare;
        r->spare = w->next;
        free(w);
    }
    free(r->servers);
    free(r->entry);
    free(r->bucket);
    free(r);
}

void resolver_get_stats(const struct resolver *r, struct resolver_stats *out)
{
    out->servers = r->servers;
    out->outstanding = r->outstanding;
    out->outstanding_peak = r->outstanding_peak;
    out->max_outstanding = r->set.max_outstanding;
    out->cache_entries = r->used;
    out->cache_size = r->set.cache_size;
    out->waiting = r->waiting;
    out->evictions = r->evictions;
    out->invalid_names = r->invalid_names;
    out->dropped_waiters = r->dropped_waiters;
    out->unmatched_packets = r->unmatched_packets;
}
