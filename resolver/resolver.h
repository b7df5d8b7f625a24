/*
 * resolver: the daemon's own DNS lookups, with c-ares on the daemon's
 * libev loop, a bounded cache, and an account of every lookup.
 *
 * A lookup ends in exactly one way: answered from the cache (hit), joined
 * to the same lookup already in flight (merged), not made because
 * dns_max_outstanding queries are in flight (skipped), or sent upstream
 * and then answered, NXDOMAIN, no data, failed (SERVFAIL, REFUSED, a bad
 * answer) or timed out.  Besides, every query packet written to a name
 * server is reported as `upstream` (retries and TCP retries included):
 * that is what the server's query log shows.  All of it goes to one count
 * callback with the type and the caller's tag, so the daemon can put it
 * in its windows and on its culprits.
 *
 * Nothing blocks: sockets are non-blocking and watched by the loop.
 * c-ares types stay inside resolver/.
 */
#ifndef RELAYWATCH_RESOLVER_H
#define RELAYWATCH_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "dns_types.h"

struct ev_loop;
struct resolver;

/* Every count: one lookup's end, or one packet sent (DNS_UPSTREAM). */
typedef void resolver_count_fn(void *ctx, enum dns_type type, enum dns_outcome outcome,
                               struct resolver_tag tag);

/*
 * A lookup's end, for callers that wait or go on (PTR, then A of the name).
 * outcome is never DNS_UPSTREAM; target is the first PTR/MX target name or
 * "" (valid during the call only).  DNS_SKIPPED here also means "no answer
 * will come" (shutdown, too many waiting).
 */
typedef void resolver_done_fn(void *arg, enum dns_type type, enum dns_outcome outcome,
                              const char *target, struct resolver_tag tag);

struct resolver_settings {
    const char *servers;      /* "system" (resolv.conf) or "IP[:PORT],..." */
    double timeout;           /* first try, seconds; c-ares doubles it each round */
    unsigned tries;
    unsigned max_outstanding; /* distinct queries in flight */
    unsigned cache_size;      /* entries, in flight included */
    double max_ttl;           /* seconds */
};

/* NULL with a one-line reason in err (a bad server list, no memory). */
struct resolver *resolver_new(struct ev_loop *loop, const struct resolver_settings *settings,
                              resolver_count_fn *count, void *ctx, char *err, size_t errlen);

/* Ends every lookup in flight (done callbacks see DNS_SKIPPED, nothing is counted). */
void resolver_free(struct resolver *r);

/*
 * Look (name, type) up.  For DNS_PTR, name is an address (IPv4 or IPv6
 * text); otherwise a domain name.  A name that is neither is not looked
 * up and not counted (see invalid_names).  done (may be NULL) runs once,
 * maybe before this returns (cache hit, skipped).
 */
void resolver_lookup(struct resolver *r, enum dns_type type, const char *name, size_t len,
                     struct resolver_tag tag, resolver_done_fn *done, void *arg);

struct resolver_stats {
    const char *servers; /* as configured */
    unsigned outstanding, outstanding_peak, max_outstanding;
    unsigned cache_entries, cache_size;
    unsigned waiting; /* done callbacks waiting for answers */
    uint64_t evictions, invalid_names, dropped_waiters, unmatched_packets;
};

void resolver_get_stats(const struct resolver *r, struct resolver_stats *out);

const char *dns_type_name(enum dns_type t);       /* "a", "aaaa", "mx", "ptr" */
const char *dns_outcome_name(enum dns_outcome o); /* "hit", "merged", "upstream", ... */

#endif
