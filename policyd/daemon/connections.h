/*
 * connections: the listeners and connections of one protocol (the policy
 * protocol or HTTP) on the daemon's libev loop.
 *
 * A conn_set owns its listening sockets (a unix socket file it created is
 * removed with its listener), accepts (non-blocking, close-on-exec), at its
 * limit closes the connection idle longest to make room (the protocol says
 * which are idle, conn_idle) and refuses at once only when none is, refuses
 * past a per-peer limit if one is set
 * (peers: a uid on unix sockets, an address on TCP, an IPv6 /64; loopback
 * addresses are counted but never limited, since any local process may use any
 * of them and Postfix's own connections come from there), pauses accepting for a second when
 * descriptors or memory run out, names each peer, runs one timer per
 * connection and closes what is left when freed.  The protocol owns what
 * is read and written: its connection struct begins with struct conn, and
 * the layer calls it through struct conn_ops.  Nothing here blocks, except
 * the name lookup of an inet: endpoint when listening starts or changes.
 */
#ifndef RELAYWATCH_CONNECTIONS_H
#define RELAYWATCH_CONNECTIONS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct endpoint;
struct conn_set;

#define CONN_PEER_MAX 80

/* The first member of a protocol's connection; the protocol only reads
 * these fields (conn_touch and conn_expire_within move the timer). */
struct conn {
    ev_io io; /* first: the protocol's io callback casts its watcher to its connection */
    ev_timer timer;
    struct conn_set *set;
    struct conn *prev, *next;
    void *owner;        /* the set's owner, as given to conn_set_new */
    int fd;
    ev_tstamp active;   /* the timer runs out conn_set_limits' timeout after this */
    ev_tstamp deadline; /* or at this time, if set (conn_expire_within) */
    char peer[CONN_PEER_MAX]; /* 192.0.2.1:5678, [2001:db8::1]:5678, unix:/path(pid 42 uid 7) */
    uint64_t peer_id;         /* the peer as the per-peer table knows it (layer's own) */
    unsigned char peer_kind;  /* 0: not in the table */
    bool idle;                /* on the set's idle list (layer's own) */
    struct conn *idle_prev, *idle_next;
};

struct conn_ops {
    size_t size;              /* of the protocol's connection struct, zeroed at accept */
    int accepts_per_event;    /* how long one readable listener may hold the loop */
    const char *key;          /* configuration key of the endpoints, for messages */
    /* Just accepted (fd, peer, owner set; reading; timer running): set up the
     * rest.  False: out of memory; the connection is dropped without close(). */
    bool (*open)(struct conn *c);
    /* The io watcher's callback; the watcher is c->io, the events conn_watch's. */
    void (*io)(struct ev_loop *loop, ev_io *w, int revents);
    /* The timer ran out: true keeps the connection for another timeout
     * (waiting on purpose is not idleness), false closes it. */
    bool (*timeout)(struct conn *c);
    /* About to be closed (by anyone): release what open() took. */
    void (*close)(struct conn *c);
    /* One connection refused at the limit (none was idle); first: the first
     * refusal or eviction since the count was last at or below 90 % of the limit. */
    void (*refused)(void *owner, bool first);
    /* The connection idle longest closed at the limit to let a new one in
     * (about to be closed: its close() follows); first as for refused. */
    void (*evicted)(void *owner, bool first);
    /* The count came down to 90 % of the limit after refusals or evictions
     * (may be NULL). */
    void (*below_limit)(void *owner, unsigned long refused, unsigned long evicted);
    /* Accepting on listener (its endpoint's spec) failed with err for want of
     * descriptors or memory: every listener pauses for a second. */
    void (*paused)(void *owner, const char *listener, int err);
    /* One connection refused at the per-peer limit (may be NULL).  log_due:
     * the first for this peer in a minute; then `refused` says how many were
     * refused since the last line, this one included. */
    void (*peer_refused)(void *owner, const char *peer, bool log_due, unsigned long refused);
};

/* ops must outlive the set (a static const). */
struct conn_set *conn_set_new(struct ev_loop *loop, const struct conn_ops *ops, void *owner,
                              unsigned max, double timeout);

/* The limit and the timeout from now on (reload); open connections stay. */
void conn_set_limits(struct conn_set *set, unsigned max, double timeout);

/* At most per_peer connections of one peer from now on (0: no limit, the
 * default); open connections stay. */
void conn_set_peer_limit(struct conn_set *set, unsigned per_peer);

/*
 * Rate-limits a protocol's log lines about c's peer: true at most once a
 * minute per peer (while the peer has a connection open); *events is then
 * the number of calls since the last true, this one included.
 */
bool conn_peer_log_due(struct conn *c, unsigned long *events);

/*
 * Listen on exactly eps[0..n): endpoints already open stay (a unix socket
 * file gets mode again), new ones are opened (unix files with mode),
 * others are closed.  All or nothing: -1 with "KEY: SPEC: reason" in err
 * and the listeners as they were.  After the first call each change is
 * logged ("KEY: SPEC: opened" / "closed").
 */
int conn_set_listen(struct conn_set *set, const struct endpoint *eps, size_t n, unsigned mode,
                    char *err, size_t errlen);

/* Serve fd, a socket already listening on ep (opened before root was given up), as if
 * conn_set_listen had opened it: the set closes it and removes its unix socket file. */
void conn_set_adopt(struct conn_set *set, const struct endpoint *ep, int fd);

/* Close the listeners for good and call done(arg) once no connection is
 * left (at once if none is). */
void conn_set_drain(struct conn_set *set, void (*done)(void *arg), void *arg);

unsigned conn_set_count(const struct conn_set *set);
/* The open connections, newest first (follow ->next); NULL when none. */
struct conn *conn_set_first(const struct conn_set *set);
void conn_set_close_all(struct conn_set *set);

/* Close the listeners and every connection (without calling drain's done). */
void conn_set_free(struct conn_set *set);

/* Wait for these events (EV_READ, EV_WRITE; 0: none) on c. */
void conn_watch(struct conn *c, int events);

/* Activity: the timer starts over from now (checked only when it runs out). */
static inline void conn_touch(struct conn *c, struct ev_loop *loop)
{
    c->active = ev_now(loop);
}

/* c is between requests (true: it becomes the newest idle connection, the
 * last to be closed for a new one) or busy, with part of a request or an
 * answer pending (false: never closed for a new one).  Not idle at accept. */
void conn_idle(struct conn *c, bool idle);

/* Let the timer run out within seconds from now at the latest. */
void conn_expire_within(struct conn *c, double seconds);

/* Undo conn_expire_within: the idle timeout alone counts again. */
void conn_expire_cancel(struct conn *c);

/* Close c (ops->close first); c is freed. */
void conn_close(struct conn *c);

#endif
