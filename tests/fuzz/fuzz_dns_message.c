/* Fuzz target for the DNS answer reader: any bytes, no crash, no read past the end. */
#include <stdint.h>
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
        memcpy(text, buf, size);
        dns_name_normalise(text, size, out);
        dns_reverse_name(text, size, out);
    }
    free(buf);
    return 0;
}
