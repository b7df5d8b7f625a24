/*
 * address: IPv4/IPv6 addresses and networks (IP or IP/LEN) as text.
 *
 * Pure functions over the caller's buffers: nothing is allocated, nothing
 * blocks (inet_pton only), so the hot path may call address_in_networks.
 */
#ifndef RELAYWATCH_ADDRESS_H
#define RELAYWATCH_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* An IP or IP/LEN network, parsed once. */
struct ip_network {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits; /* prefix length; the address's full length without /LEN */
};

/* Whether text (NUL-terminated) is an IPv4 or IPv6 address. */
bool address_is_ip(const char *text);

/*
 * Parse "IP" or "IP/LEN" (LEN decimal, at most 32 for IPv4, 128 for IPv6)
 * into *out.  False for anything else; *out may then be partly written.
 */
bool ip_network_parse(const char *text, struct ip_network *out);

/* Whether an address (text of len bytes, not NUL-terminated) is in one of the networks. */
bool address_in_networks(const char *text, size_t len, const struct ip_network *networks,
                         size_t count);

#endif
