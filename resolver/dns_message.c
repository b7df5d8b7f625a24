/*
 * dns_message: DNS wire format, both directions.  See the header.
 *
 * Every read is checked against the buffer's end; compression pointers
 * may only point backwards, which also ends every loop.
 */
#include "dns_message.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define HEADER_SIZE 12

static bool host_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

/* Each byte of a name as it is kept: lower case, '.', or 0 for one that may not appear. */
static const unsigned char name_byte[256] = {
    ['-'] = '-', ['.'] = '.', ['_'] = '_',
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
    ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
    ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f', ['G'] = 'g',
    ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n',
    ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't', ['U'] = 'u',
    ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y', ['Z'] = 'z',
    ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g',
    ['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n',
    ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u',
    ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y', ['z'] = 'z',
};

size_t dns_name_normalise(const char *name, size_t len, char *out)
{
    size_t label = 0;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = name_byte[(unsigned char)name[i]];

        if (ch == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (ch == 0 || ++label > 63) {
            return 0;
        }
        out[i] = (char)ch;
    }
    if (label == 0)
        return 0; /* an empty last label: "example.com.." */
    out[len] = '\0';
    return len;
}

/* A dotted-quad IPv4 address, strictly (as inet_pton takes it); false if it is not one. */
static bool parse_ipv4(const char *s, size_t len, unsigned char a[4])
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        unsigned v = 0, digits = 0;

        while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(s[i++] - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[i - digits] == '0'))
            return false;
        a[part] = (unsigned char)v;
        if (part < 3 && (i >= len || s[i++] != '.'))
            return false;
    }
    return i == len;
}

size_t dns_reverse_name(const char *addr, size_t len, char *out)
{
    char text[INET6_ADDRSTRLEN + 1];
    unsigned char a[16];
    int n = 0;

    if (len == 0 || len >= sizeof(text))
        return 0;
    memcpy(text, addr, len);
    text[len] = '\0';
    if (parse_ipv4(addr, len, a)) {
        /* By hand: this runs for every new SMTP session, and snprintf is slow. */
        for (int i = 3; i >= 0; i--) {
            if (a[i] >= 100)
                out[n++] = (char)('0' + a[i] / 100);
            if (a[i] >= 10)
                out[n++] = (char)('0' + a[i] / 10 % 10);
            out[n++] = (char)('0' + a[i] % 10);
            out[n++] = '.';
        }
        memcpy(out + n, "in-addr.arpa", 13);
        n += 12;
    } else if (inet_pton(AF_INET6, text, a) == 1) {
        static const char hex[] = "0123456789abcdef";

        for (int i = 15; i >= 0; i--) {
            out[n++] = hex[a[i] & 15];
            out[n++] = '.';
            out[n++] = hex[a[i] >> 4];
            out[n++] = '.';
        }
        memcpy(out + n, "ip6.arpa", 9);
        n += 8;
    }
    return n > 0 ? (size_t)n : 0;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t dns_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype,
                       uint16_t udp_size)
{
    size_t n = HEADER_SIZE, len = strlen(name);
    size_t need = HEADER_SIZE + len + 2 + 4 + (udp_size ? 11 : 0);
    const char *p = name, *end = name + len;

    if (len == 0 || len > DNS_NAME_MAX || need > cap)
        return 0;
    memset(buf, 0, HEADER_SIZE);
    put16(buf, id);
    buf[2] = 0x01; /* RD */
    put16(buf + 4, 1);
    put16(buf + 10, udp_size ? 1 : 0);
    while (p < end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t l = (size_t)((dot ? dot : end) - p);

        if (l == 0 || l > 63)
            return 0;
        buf[n++] = (uint8_t)l;
        memcpy(buf + n, p, l);
        n += l;
        p += l + (dot ? 1 : 0);
        if (dot && p == end)
            break; /* a trailing dot */
    }
    buf[n++] = 0;
    put16(buf + n, qtype);
    put16(buf + n + 2, 1); /* IN */
    n += 4;
    if (udp_size) {
        buf[n++] = 0; /* root */
        put16(buf + n, DNS_QTYPE_OPT);
        put16(buf + n + 2, udp_size);
        memset(buf + n + 4, 0, 6); /* extended rcode, version, flags, rdlength */
        n += 10;
    }
    return n;
}

/*
 * Read the name at *off into out (lower case, no trailing dot; may be NULL)
 * and move *off past it.  host tells whether it is a host name (only
 * letters, digits, '-' and '_').  -1 if malformed.
 */
static int read_name(const uint8_t *buf, size_t len, size_t *off, char *out, bool *host)
{
    size_t pos = *off, n = 0, wire = 0;
    bool jumped = false;

    *host = true;
    for (;;) {
        uint8_t l;

        if (pos >= len)
            return -1;
        l = buf[pos];
        if ((l & 0xC0) == 0xC0) {
            size_t target;

            if (pos + 1 >= len)
                return -1;
            target = (size_t)(l & 0x3F) << 8 | buf[pos + 1];
            if (target >= pos)
                return -1; /* only backwards: no loops */
            if (!jumped)
                *off = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if (l & 0xC0)
            return -1; /* extended label types */
        pos++;
        if (l == 0)
            break;
        if (pos + l > len)
            return -1;
        wire += (size_t)l + 1;
        if (wire > 254)
            return -1;
        if (n > 0 && out)
            out[n] = '.';
        if (n > 0)
            n++;
        for (size_t i = 0; i < l; i++) {
            unsigned char ch = buf[pos + i];

            if (ch >= 'A' && ch <= 'Z')
                ch = (unsigned char)(ch + 32);
            if (!host_char(ch))
                *host = false;
            if (out)
                out[n] = (char)ch;
            n++;
        }
        pos += l;
    }
    if (!jumped)
        *off = pos;
    if (out)
        out[n] = '\0';
    if (n == 0)
        *host = false; /* the root is not a host */
    return 0;
}

int dns_parse_question(const uint8_t *buf, size_t len, char *qname, uint16_t *qtype)
{
    size_t off = HEADER_SIZE;
    char name[256];
    bool host;

    if (len < HEADER_SIZE || get16(buf + 4) < 1)
        return -1;
    if (read_name(buf, len, &off, name, &host) != 0 || off + 4 > len)
        return -1;
    if (strlen(name) > DNS_NAME_MAX)
        return -1;
    memcpy(qname, name, strlen(name) + 1);
    *qtype = get16(buf + off);
    return 0;
}

int dns_parse_reply(const uint8_t *buf, size_t len, struct dns_reply *out)
{
    size_t off = HEADER_SIZE;
    unsigned qd, an, ns;
    bool host;
    char name[256];

    memset(out, 0, sizeof(*out));
    if (len < HEADER_SIZE || !(buf[2] & 0x80))
        return -1; /* not an answer */
    out->id = get16(buf);
    out->truncated = (buf[2] & 0x02) != 0;
    out->rcode = buf[3] & 0x0F;
    qd = get16(buf + 4);
    an = get16(buf + 6);
    ns = get16(buf + 8);
    if (qd != 1)
        return -1;
    if (read_name(buf, len, &off, name, &host) != 0 || off + 4 > len || strlen(name) > DNS_NAME_MAX)
        return -1;
    memcpy(out->qname, name, strlen(name) + 1);
    out->qtype = get16(buf + off);
    off += 4;
    out->ttl = UINT32_MAX;
    for (unsigned i = 0; i < an + ns; i++) {
        uint16_t type, rdlen;
        uint32_t ttl;
        size_t rdata;

        if (read_name(buf, len, &off, NULL, &host) != 0 || off + 10 > len)
            return -1;
        type = get16(buf + off);
        ttl = get32(buf + off + 4);
        if (ttl > 0x7FFFFFFF)
            ttl = 0; /* RFC 2181 8: treat as zero */
        rdlen = get16(buf + off + 8);
        rdata = off + 10;
        if (rdata + rdlen > len)
            return -1;
        off = rdata + rdlen;
        if (i < an) {
            if (type != out->qtype && type != DNS_QTYPE_CNAME)
                continue;
            if (ttl < out->ttl)
                out->ttl = ttl;
            if (type != out->qtype)
                continue;
            out->answers++;
            if (out->target[0] == '\0' && (type == DNS_QTYPE_PTR || type == DNS_QTYPE_MX)) {
                size_t at = rdata + (type == DNS_QTYPE_MX ? 2 : 0);

                if (at > off || read_name(buf, off, &at, name, &host) != 0 || at != off)
                    return -1;
                if (host && strlen(name) <= DNS_NAME_MAX)
                    memcpy(out->target, name, strlen(name) + 1);
            }
        } else if (type == DNS_QTYPE_SOA) {
            size_t at = rdata;
            uint32_t minimum;

            /* MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM. */
            if (read_name(buf, off, &at, NULL, &host) != 0 ||
                read_name(buf, off, &at, NULL, &host) != 0 || at + 20 != off)
                return -1;
            minimum = get32(buf + at + 16);
            if (minimum > 0x7FFFFFFF)
                minimum = 0;
            if (!out->has_negative_ttl) {
                out->has_negative_ttl = true;
                out->negative_ttl = ttl < minimum ? ttl : minimum;
            }
        }
    }
    if (out->ttl == UINT32_MAX)
        out->ttl = 0;
    return 0;
}
