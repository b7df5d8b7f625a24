/*
 * server: the policy listeners and their connections on one libev loop.
 */
#ifndef RELAYWATCH_SERVER_H
#define RELAYWATCH_SERVER_H

#include <stddef.h>

#include <stdint.h>

struct ev_loop;
struct config;
struct decision;
struct policy_request;
struct policy_server;

/* Chooses the answer to one request; must not block. */
typedef void policy_handler_fn(void *ctx, const struct policy_request *req, struct decision *out);

/* Upper bounds (seconds) of the request latency histogram's buckets; +Inf follows. */
#define LATENCY_BUCKETS 12
extern const double latency_bucket_bounds[LATENCY_BUCKETS];

struct policy_server_stats {
    unsigned connections;     /* open now */
    uint64_t accepted;        /* connections accepted since start */
    uint64_t refused;         /* closed at once at max_connections (none idle) */
    uint64_t evicted_idle;    /* idle ones closed at max_connections for a new one */
    uint64_t protocol_errors; /* connections closed for breaking the protocol */
    uint64_t peer_refused;    /* closed at once at max_connections_per_peer */
    uint64_t request_timeouts; /* closed: a request not whole within request_timeout */
    uint64_t requests;        /* answered */
    /* Time from a request's last byte read to its answer written. */
    uint64_t latency_count[LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    double latency_sum;
};

/*
 * Open every listen endpoint of cfg and start serving on loop.  cfg must
 * outlive the server or the next policy_server_reconfigure().  On failure
 * returns NULL with a one-line reason in err.
 */
struct policy_server *policy_server_new(struct ev_loop *loop, const struct config *cfg,
                                        policy_handler_fn *handler, void *ctx, char *err,
                                        size_t errlen);

/*
 * Switch to cfg: listeners that stay are kept (connections untouched),
 * new ones are opened, dropped ones closed.  All or nothing: on failure
 * returns -1 with the reason in err and the old configuration stays.
 */
int policy_server_reconfigure(struct policy_server *srv, const struct config *cfg, char *err,
                              size_t errlen);

/*
 * Stop accepting, close idle connections, let those in the middle of a
 * request finish (up to cfg->shutdown_timeout), then call done(arg).
 */
void policy_server_shutdown(struct policy_server *srv, void (*done)(void *arg), void *arg);

/* Close everything at once. */
void policy_server_free(struct policy_server *srv);

const struct policy_server_stats *policy_server_stats(const struct policy_server *srv);

/*
 * Holding an answer back (dns_wait): called from inside the handler, it
 * keeps the request's answer until policy_server_answer(); the connection
 * reads nothing more meanwhile, so answers stay in order.  If the
 * connection goes away first, cancel(arg) runs and the hold is gone: do
 * not answer it then.  The text written is the handler's answer as it was
 * when the handler returned (the connection keeps a copy, so a reload in
 * between cannot change it); d names that decision and is not read.
 */
struct policy_hold;
struct policy_hold *policy_server_hold(struct policy_server *srv, void (*cancel)(void *arg),
                                       void *arg);
void policy_server_answer(struct policy_hold *h, const struct decision *d);

#endif
