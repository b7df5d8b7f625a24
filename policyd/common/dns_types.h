/*
 * dns_types: the names the resolver and the counting engine share for a
 * lookup's type, its outcome and who caused it.  Plain C, no c-ares: the
 * engine counts lookups without linking the resolver (resolver/).
 */
#ifndef RELAYWATCH_DNS_TYPES_H
#define RELAYWATCH_DNS_TYPES_H

#include <stdint.h>

enum dns_type { DNS_A, DNS_AAAA, DNS_MX, DNS_PTR, DNS_TYPES };

enum dns_outcome {
    DNS_HIT,
    DNS_MERGED,
    DNS_UPSTREAM, /* a query packet sent, not a lookup's end */
    DNS_ANSWERED,
    DNS_NXDOMAIN,
    DNS_NODATA,
    DNS_SERVFAIL,
    DNS_TIMEOUT,
    DNS_SKIPPED,
    DNS_OUTCOMES
};

/* The caller's names for who caused a lookup; the resolver only hands them back. */
struct resolver_tag {
    uint64_t who, sender_domain;
};

#endif
