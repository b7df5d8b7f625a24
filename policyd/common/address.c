/* address: see address.h. */
#include "address.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <sys/socket.h>

/* Longer than any address text, IPv6 with an embedded IPv4 included. */
#define ADDRESS_TEXT_MAX 64

bool address_is_ip(const char *text)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, text, buf) == 1 || inet_pton(AF_INET6, text, buf) == 1;
}

bool ip_network_parse(const char *text, struct ip_network *out)
{
    char addr[ADDRESS_TEXT_MAX];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    unsigned max;

    if (len >= sizeof(addr))
        return false;
    memcpy(addr, text, len);
    addr[len] = '\0';
    out->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(out->family, addr, out->addr) != 1)
        return false;
    max = out->family == AF_INET ? 32u : 128u;
    out->bits = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        unsigned bits = 0;

        if (*p == '\0' || strlen(p) > 3)
            return false;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p))
                return false;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > max)
            return false;
        out->bits = bits;
    }
    return true;
}

bool address_in_networks(const char *text, size_t len, const struct ip_network *networks,
                         size_t count)
{
    unsigned char a[16];
    char addr[ADDRESS_TEXT_MAX];
    int family;

    if (count == 0 || len == 0 || len >= sizeof(addr))
        return false;
    memcpy(addr, text, len);
    addr[len] = '\0';
    family = memchr(addr, ':', len) ? AF_INET6 : AF_INET;
    if (inet_pton(family, addr, a) != 1)
        return false;
    for (size_t i = 0; i < count; i++) {
        const struct ip_network *n = &networks[i];
        unsigned bits = n->bits, bytes = family == AF_INET ? 4 : 16, k;

        if (n->family != family)
            continue;
        for (k = 0; k < bytes && bits > 0; k++, bits = bits > 8 ? bits - 8 : 0) {
            unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));

            if ((a[k] & mask) != (n->addr[k] & mask))
                break;
        }
        if (k == bytes || bits == 0)
            return true;
    }
    return false;
}
