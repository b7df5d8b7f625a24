/*
 * Fuzz target for the rw:throttle record text: the input up to its first
 * newline is the field ("KIND:KEY"), the rest the value, each in a buffer
 * of exactly its length.  No crash, no read past either; a record that
 * parses holds together (kind and source in range, strings terminated
 * within their arrays, times in range), and formatting it gives a value
 * that parses to a record formatting to the very same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "throttle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *exact_copy(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);

    if (c == NULL)
        abort();
    memcpy(c, p, n);
    return c;
}

static void check_string(const char *s, size_t cap, int may_be_empty)
{
    size_t n = strnlen(s, cap);

    if (n == cap || (n == 0 && !may_be_empty))
        abort();
}

static void check_record(const struct throttle_record *r)
{
    if ((unsigned)r->kind > CULPRIT_SENDER_DOMAIN || (unsigned)r->source >= THROTTLE_SOURCES)
        abort();
    check_string(r->key, sizeof(r->key), 0);
    check_string(r->host, sizeof(r->host), 0);
    check_string(r->action, sizeof(r->action), 0);
    check_string(r->reason, sizeof(r->reason), 1);
    if (!(r->changed >= 0 && r->changed < 1e11) || !(r->since >= 0 && r->since < 1e11) ||
        !(r->until >= 0 && r->until < 1e11))
        abort();
    if (strpbrk(r->host, " \t\r\n") || strpbrk(r->action, "\t\r\n") ||
        strpbrk(r->reason, "\t\r\n"))
        abort();
}

/* Format r, parse that back, format again: the two values must be the same text. */
static void check_stable(const struct throttle_record *r)
{
    char field[CULPRIT_KEY_MAX + 32], v1[1024], v2[1024];
    struct throttle_record back;
    size_t n1, n2, flen;
    const char *kind = culprit_kind_name(r->kind);

    flen = strlen(kind);
    memcpy(field, kind, flen);
    field[flen++] = ':';
    memcpy(field + flen, r->key, strlen(r->key));
    flen += strlen(r->key);
    n1 = throttle_record_format(r, v1, sizeof(v1));
    if (n1 >= sizeof(v1) - 1 || n1 != strlen(v1))
        abort(); /* 1024 bytes hold any record */
    if (!throttle_record_parse(field, flen, v1, n1, &back))
        abort();
    check_record(&back);
    if (back.kind != r->kind || strcmp(back.key, r->key) != 0 || back.source != r->source ||
        back.escalated != r->escalated || strcmp(back.action, r->action) != 0 ||
        strcmp(back.reason, r->reason) != 0 || strcmp(back.host, r->host) != 0)
        abort();
    n2 = throttle_record_format(&back, v2, sizeof(v2));
    if (n1 != n2 || memcmp(v1, v2, n1) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t flen = nl ? (size_t)(nl - data) : size;
    size_t vlen = nl ? size - flen - 1 : 0;
    char *field = exact_copy(data, flen), *value = exact_copy(nl ? nl + 1 : data, vlen);
    struct throttle_record r;
    enum culprit_kind kind;
    char key[CULPRIT_KEY_MAX + 1];

    if (throttle_parse_member(field, flen, &kind, key, sizeof(key))) {
        if ((unsigned)kind > CULPRIT_SENDER_DOMAIN)
            abort();
        check_string(key, sizeof(key), 0);
    }
    if (throttle_record_parse(field, flen, value, vlen, &r)) {
        check_record(&r);
        check_stable(&r);
    }
    free(field);
    free(value);
    return 0;
}
