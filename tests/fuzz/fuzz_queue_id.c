/*
 * Fuzz target for queue_id_valid: the input in a buffer of exactly its length.  No crash, no
 * read past it; whatever is accepted is safe to hand to postsuper as one argument: 6 to
 * QUEUE_ID_MAX letters and digits, never "ALL", never starting with '-', and accepted again
 * when copied into a buffer of its own (the verdict depends on the bytes alone).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);

    if (s == NULL)
        abort();
    memcpy(s, data, size);
    if (queue_id_valid(s, size)) {
        char again[QUEUE_ID_MAX];

        if (size < 6 || size > QUEUE_ID_MAX || s[0] == '-')
            abort(); /* (and so never "ALL") */
        for (size_t i = 0; i < size; i++)
            if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z') ||
                  (s[i] >= 'a' && s[i] <= 'z')))
                abort();
        memcpy(again, s, size);
        if (!queue_id_valid(again, size))
            abort();
    }
    free(s);
    return 0;
}
