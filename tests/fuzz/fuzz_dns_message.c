/* Fuzz target for the DNS answer reader: any bytes, no crash, no read past the end. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that AddressSanitizer sees any overread. */
    uint8_t *buf = malloc(size ? size : 1);
    struct dns_reply r;
    char name[DNS_NAME_MAX + 1];
    uint16_t qtype;

    memcpy(buf, data, size);
    if (dns_parse_reply(buf, size, &r) == 0) {
        /* What it read is text the resolver can use as it is. */
        if (strlen(r.qname) > DNS_NAME_MAX || strlen(r.target) > DNS_NAME_MAX)
            abort();
    }
    dns_parse_question(buf, size, name, &qtype);
    if (size > 0 && size <= DNS_NAME_MAX) {
        char text[DNS_NAME_MAX + 1];
        char out[DNS_NAME_MAX + 1];
        unsigned char a4[4], a6[16];
        char want[DNS_NAME_MAX + 1];
        size_t got;

        memcpy(text, buf, size);
        dns_name_normalise(text, size, out);
        got = dns_reverse_name(text, size, out);
        /* The IPv4 parser is ours: it must take exactly what inet_pton takes. */
        if (memchr(text, '\0', size) == NULL && size < 64) {
            char z[64];

            memcpy(z, text, size);
            z[size] = '\0';
            if (inet_pton(AF_INET, z, a4) == 1) {
                snprintf(want, sizeof(want), "%u.%u.%u.%u.in-addr.arpa", a4[3], a4[2], a4[1],
                         a4[0]);
                if (got != strlen(want) || memcmp(out, want, got) != 0)
                    abort();
            } else if (inet_pton(AF_INET6, z, a6) != 1 && got != 0) {
                abort();
            }
        }
    }
    free(buf);
    return 0;
}
