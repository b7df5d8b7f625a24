/*
 * dns_message: building DNS queries and reading DNS answers, as pure
 * functions over buffers (RFC 1035 wire format).  No I/O, no allocation;
 * unit-tested and fuzzed.  Used by resolver.c only.
 */
#ifndef RELAYWATCH_DNS_MESSAGE_H
#define RELAYWATCH_DNS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 253 /* text form, without the trailing dot */

#define DNS_QTYPE_A 1
#define DNS_QTYPE_SOA 6
#define DNS_QTYPE_CNAME 5
#define DNS_QTYPE_PTR 12
#define DNS_QTYPE_MX 15
#define DNS_QTYPE_AAAA 28
#define DNS_QTYPE_OPT 41

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3

/* What an answer says about its question. */
struct dns_reply {
    uint16_t id;
    unsigned rcode;      /* 0..15 */
    bool truncated;
    uint16_t qtype;
    char qname[DNS_NAME_MAX + 1];
    unsigned answers;    /* records of qtype in the answer section */
    uint32_t ttl;        /* lowest TTL of the answer records (CNAMEs included) */
    bool has_negative_ttl;
    uint32_t negative_ttl; /* RFC 2308: min(SOA TTL, SOA MINIMUM) from the authority section */
    char target[DNS_NAME_MAX + 1]; /* first PTR or MX target, "" if none or not a host name */
};

/*
 * Normalise a domain name for lookup: lower case, no trailing dot; letters,
 * digits, '-' and '_' in labels of 1..63 bytes, DNS_NAME_MAX bytes in all.
 * Returns the length written to out (out has DNS_NAME_MAX + 1 bytes), 0 if
 * name is not such a name (an address literal, a stray character).
 */
size_t dns_name_normalise(const char *name, size_t len, char *out);

/* The reverse-lookup name of an IPv4 or IPv6 address in text form
 * (in-addr.arpa / ip6.arpa); 0 if it is not an address. */
size_t dns_reverse_name(const char *addr, size_t len, char *out);

/*
 * A query for (name, qtype) with recursion desired and an EDNS0 OPT record
 * announcing udp_size (0: none).  Returns its length, 0 if it does not fit.
 */
size_t dns_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype,
                       uint16_t udp_size);

/* The question of a message (query or answer): 0 on success, -1 if malformed. */
int dns_parse_question(const uint8_t *buf, size_t len, char *qname, uint16_t *qtype);

/* Read an answer: 0 on success, -1 if malformed. */
int dns_parse_reply(const uint8_t *buf, size_t len, struct dns_reply *out);

#endif
