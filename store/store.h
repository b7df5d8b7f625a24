/*
 * store: where a host's counts go so that operators and a fleet of MX
 * hosts share them.  `memory` keeps nothing outside the process; `redis`
 * writes to a Redis server with hiredis on the daemon's libev loop.
 *
 * Nothing here is on the policy request path: the store pulls the counts
 * from the daemon once per flush interval (collect callback), writes them
 * in one pipeline, and reads the fleet's counts back on the same rhythm.
 * Values written are absolute per daemon run ("<counter>@<run>" fields),
 * so a rewrite is harmless: after a failure or a reconnect the daemon
 * marks its recent minutes dirty again and they are written again, which
 * restores a Redis that lost them, without ever counting twice.
 *
 * Callbacks never run before store_new returns; all run on the loop.
 * hiredis types stay inside store/: one file per backend (store_memory.c,
 * store_redis.c) behind store.c.  The feed's blocking writer is
 * query_writer.h; the CLI's rw:throttle client in throttle_store.h.
 */
#ifndef RELAYWATCH_STORE_H
#define RELAYWATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct store;
struct store_batch;

#define STORE_MAX_COUNTERS 64
#define STORE_MAX_WINDOWS 8
#define STORE_MAX_HOSTS 64
#define STORE_HOST_MAX 64
#define STORE_MAX_MINUTES 60 /* the fleet view reads windows of up to an hour */

struct store_settings {
    const char *url; /* "memory", "redis://HOST:PORT[/DB]", "redis+unix:///PATH[?db=N]" */
    const char *password;
    const char *host_id;
    double flush_interval, timeout, retention; /* seconds */
    unsigned counter_count;
    const char *const *counter_names; /* as in Redis fields and /status */
    unsigned window_count;
    const double *window_seconds;
    /* This host's address as the upstream DNS server logs it: its query counts (from
     * relaywatch feed) are read back on every fleet read.  NULL or "": none. */
    const char *tdns_client;
    /* With password: the Redis ACL user AUTH names (AUTH user password).  NULL or "": AUTH
     * with the password alone, as the default user. */
    const char *username;
};

/* The upstream server's query types the daemon shows (rw:{CLIENT}:q:MINUTE fields). */
enum store_tdns_type { TDNS_A, TDNS_AAAA, TDNS_MX, TDNS_PTR, TDNS_TYPES };

/* The daemon's side. */
struct store_source {
    /* Fill b with what changed since the last call (store_batch_* below; b lives for the
     * call).  Only a shared store calls it: memory keeps nothing outside the process. */
    void (*collect)(void *ctx, struct store_batch *b);
    /* The last batch did not reach Redis, or the connection is new: mark
     * everything still held dirty again. */
    void (*rewrite_all)(void *ctx);
    /* Once after start: this host's counts from earlier runs, per minute. */
    void (*history)(void *ctx, int64_t minute, const uint64_t *counts);
    /* Once after start: the learned baselines this host saved (rw:{HOST}:baseline); text
     * NULL when there are none. */
    void (*baseline)(void *ctx, const char *text, size_t len);
    /* Every fleet read: the whole of rw:throttle, one call per field between a call with
     * begin and one with end (fields are NULL then). */
    void (*throttles)(void *ctx, bool begin, bool end, const char *field, size_t flen,
                      const char *value, size_t vlen);
    void *ctx;
};

void store_batch_minute(struct store_batch *b, int64_t minute, const uint64_t *counts);
void store_batch_domain(struct store_batch *b, int64_t minute, uint64_t hash);
void store_batch_totals(struct store_batch *b, const uint64_t *counts);
/* The host's busiest relay senders now (members "KIND:KEY", scored by recipients in the
 * longest window); replaces the previous list. */
void store_batch_culprits(struct store_batch *b, const char *const *members, const uint64_t *scores,
                          unsigned n);

/* Write a field of the fleet's throttle table rw:throttle, unless Redis holds a record that
 * changed later; value NULL: delete the field unless its record changed after `changed`. */
void store_batch_throttle(struct store_batch *b, const char *field, const char *value,
                          double changed);
/* This host's detector state ("quiet" or "loud"; rw:{HOST}:state) for the fleet view. */
void store_batch_state(struct store_batch *b, const char *state);
/* Save this host's learned baselines (rw:{HOST}:baseline, kept store_retention). */
void store_batch_baseline(struct store_batch *b, const char *text);

#define STORE_CULPRITS 20

/* One host as the fleet view read it from Redis. */
struct store_host {
    char host[STORE_HOST_MAX];
    double updated; /* its last write, Unix time */
    char state[8];  /* its detector state as it wrote it ("" not written: an older version) */
    uint64_t totals[STORE_MAX_COUNTERS];
    uint64_t window[STORE_MAX_WINDOWS][STORE_MAX_COUNTERS]; /* whole minutes */
    uint64_t domains[STORE_MAX_WINDOWS];
    unsigned culprit_count;
    struct {
        char member[280]; /* KIND:KEY */
        uint64_t recipients;
    } culprits[STORE_CULPRITS];
};

struct store_state {
    const char *backend; /* "memory" or "redis" */
    bool shared;         /* a backend other hosts can see */
    bool connected;
    uint64_t flushes, failures, dropped_domains;
    const char *last_error; /* NULL: none */
    unsigned host_count;    /* in the last fleet read */
    const struct store_host *hosts;
    /* tdns_client's counts per window (whole minutes, an hour at most), as last read. */
    bool tdns_read;   /* read at least once */
    double tdns_updated; /* the feed's last write for the client, Unix time; 0: never */
    uint64_t tdns[STORE_MAX_WINDOWS][TDNS_TYPES];
};

/* NULL with a one-line reason in err for an unusable url. */
struct store *store_new(struct ev_loop *loop, const struct store_settings *settings,
                        const struct store_source *source, char *err, size_t errlen);

/* Write what is pending now, then call done (at once for memory, or when
 * Redis answered or store_timeout passed). */
void store_flush_final(struct store *s, void (*done)(void *arg), void *arg);

void store_free(struct store *s);

void store_get_state(const struct store *s, struct store_state *out);

/* The fleet's throttle table (see throttle_store.h). */
#define STORE_THROTTLE_KEY "rw:throttle"

#endif
