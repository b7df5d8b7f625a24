/*
 * Fuzz target for the policy request parser.  The first input byte picks
 * how many bytes arrive per read, so every input is also a split-feed test:
 * the requests found must be the same as when the whole input is parsed at
 * once, and every slice must lie inside the request it came from.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): release builds define NDEBUG, and the corpus replay runs there too. */
#define require(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_policy_request: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct outcome {
    enum policy_parse_result result;
    size_t consumed;
    unsigned requests;
};

static void check_slices(const char *base, const struct policy_request *req)
{
    for (int a = 0; a < PA_COUNT; a++) {
        const struct policy_slice *s = &req->attr[a];
        if (s->ptr == NULL)
            continue;
        require(s->ptr >= base && s->ptr + s->len <= base + req->size);
        require(memchr(s->ptr, '\n', s->len) == NULL);
    }
    require(req->attr[PA_REQUEST].ptr != NULL);
    require(req->attributes >= 1 && req->attributes <= POLICY_MAX_ATTRIBUTES);
    require(req->size <= POLICY_MAX_REQUEST);
}

/* Parse buf as it arrives `step` bytes at a time. */
static struct outcome run(const char *buf, size_t len, size_t step)
{
    struct policy_parser p;
    struct outcome o = {POLICY_PARSE_MORE, 0, 0};
    size_t avail = 0;

    policy_parser_init(&p);
    while (avail < len) {
        avail = avail + step > len ? len : avail + step;
        for (;;) {
            struct policy_request req;
            enum policy_parse_result r =
                policy_parser_next(&p, buf + o.consumed, avail - o.consumed, &req);

            if (r == POLICY_PARSE_MORE)
                break;
            if (r == POLICY_PARSE_ERROR) {
                require(p.error != PE_NONE);
                o.result = r;
                return o;
            }
            check_slices(buf + o.consumed, &req);
            o.consumed += req.size;
            o.requests++;
        }
    }
    o.result = POLICY_PARSE_MORE;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole, split;
    char *buf;
    size_t step;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 97 + 1;
    /* An exact-size copy, so that a read past the end is caught by ASan. */
    buf = malloc(size - 1 ? size - 1 : 1);
    memcpy(buf, data + 1, size - 1);
    whole = run(buf, size - 1, size - 1 ? size - 1 : 1);
    split = run(buf, size - 1, step);
    require(whole.result == split.result);
    require(whole.requests == split.requests);
    require(whole.consumed == split.consumed);
    free(buf);
    return 0;
}
