/*
 * Fuzz target for the postsuper runner's two parsers: the daemon's request and postsuper's
 * output.  No crash, no read past the input; a request accepted is "h" or "r", a space, and
 * space-separated Postfix queue IDs (each accepted by queue_id_valid, none starting with '-',
 * never "ALL"); postsuper's output saying every ID done reads back as exactly the request's
 * IDs, and output against another request gives only that request's ID.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postsuper_runner.h"
#include "queue_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1), op;
    unsigned count;
    const char *why;

    if (s == NULL)
        abort();
    memcpy(s, data, size);
    if (postsuper_request_check(s, size, &op, &count, &why)) {
        unsigned words = 0;

        if ((op != 'h' && op != 'r') || s[0] != op || s[1] != ' ' || count == 0)
            abort();
        for (size_t i = 2; i <= size;) {
            size_t w = 0;

            while (i + w < size && s[i + w] != ' ')
                w++;
            if (!queue_id_valid(s + i, w) || s[i] == '-' || (w == 3 && memcmp(s + i, "ALL", 3) == 0))
                abort();
            words++;
            i += w + 1;
        }
        if (words != count)
            abort();
        {
            /* postsuper's output for this request, every ID done: read back, it gives the
             * request's IDs in their order, all of them. */
            static char output[POSTSUPER_REQUEST_MAX * 4];
            char out[POSTSUPER_ANSWER_MAX];
            size_t o = 0;
            unsigned done;

            for (size_t i = 2; i <= size;) {
                size_t w = 0;

                while (i + w < size && s[i + w] != ' ')
                    w++;
                o += (size_t)snprintf(output + o, sizeof(output) - o, "postsuper: %.*s: %s\n",
                                      (int)w, s + i,
                                      op == 'h' ? "placed on hold" : "released from hold");
                i += w + 1;
            }
            done = postsuper_output_done(output, o, op, s, size, out, sizeof(out));
            if (done != count || strlen(out) != size - 2 || memcmp(out, s + 2, size - 2) != 0)
                abort();
        }
    } else {
        char out[64];
        /* Any output against a fixed request: what comes out is that request's ID. */
        unsigned done = postsuper_output_done(s, size, 'h', "h 14E9AA766D1", 13, out, sizeof(out));

        if (done > 0 && strncmp(out, "14E9AA766D1", 11) != 0)
            abort();
    }
    free(s);
    return 0;
}
