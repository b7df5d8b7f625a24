/*
 * Fuzz target for the query-log line parser: any bytes, no crash, no read
 * past the line, and what it reads holds together: every slice inside the
 * line (but dnsmasq's class, a static "IN"), the client an address inet_pton
 * takes (no '#', no scope), names and words within their bounds, times
 * within their ranges (a Unix time and a calendar time never both), and
 * the same answer with a trailing CR.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log_time_check.h"
#include "query_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_slice(struct query_log_slice s, const char *line, size_t size, size_t max,
                        int may_be_empty)
{
    if (s.ptr == NULL || s.ptr < line || s.len > size || s.ptr + s.len > line + size)
        abort();
    if (s.len > max || (!may_be_empty && s.len == 0))
        abort();
}

/*
 * Upper-case letters, digits, '-' (BIND's and unbound's "NSAP-PTR") and '_'
 * (dnsmasq's "NSAP_PTR"), or dnsmasq's "type=DIGITS".
 */
static void check_word(struct query_log_slice s)
{
    size_t i = 0;

    if (s.len > 5 && memcmp(s.ptr, "type=", 5) == 0) {
        for (i = 5; i < s.len; i++)
            if (s.ptr[i] < '0' || s.ptr[i] > '9')
                abort();
        return;
    }
    for (; i < s.len; i++) {
        char c = s.ptr[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            abort();
    }
}

static void check_entry(enum query_log_result r, const struct query_log_entry *e, const char *line,
                        size_t size)
{
    char addr[64];
    unsigned char bin[16];

    if (r != QUERY_LOG_QUERY) {
        if (r != QUERY_LOG_OTHER && r != QUERY_LOG_ERROR)
            abort();
        /* Nothing half-filled; an unbound line of another kind keeps its Unix time alone. */
        if (e->client.ptr || e->qname.ptr || e->qclass.ptr || e->qtype.ptr || e->view.ptr ||
            e->time.present || e->reply)
            abort();
        if (e->unix_time ? r != QUERY_LOG_OTHER || e->unix_seconds < 0 ||
                               e->unix_seconds > 999999999999LL
                         : e->unix_seconds != 0)
            abort();
        return;
    }
    check_slice(e->client, line, size, 45, 0); /* INET6_ADDRSTRLEN - 1 */
    check_slice(e->qname, line, size, 1024, 0);
    if (e->qclass.ptr < line || e->qclass.ptr >= line + size) {
        /* dnsmasq logs no class: a static "IN". */
        if (e->qclass.len != 2 || memcmp(e->qclass.ptr, "IN", 2) != 0)
            abort();
    } else {
        check_slice(e->qclass, line, size, 32, 0);
    }
    if (e->unix_time ? (e->time.present || e->unix_seconds < 0 || e->unix_seconds > 999999999999LL)
                     : e->unix_seconds != 0)
        abort();
    check_slice(e->qtype, line, size, 32, 0);
    check_slice(e->view, line, size, size, 1);
    check_word(e->qclass);
    check_word(e->qtype);
    for (size_t i = 0; i < e->qname.len; i++)
        if ((unsigned char)e->qname.ptr[i] <= ' ' || (unsigned char)e->qname.ptr[i] >= 0x7F)
            abort();
    if (memchr(e->client.ptr, '#', e->client.len) || memchr(e->client.ptr, '%', e->client.len))
        abort();
    /* The client is an address exactly as inet_pton reads it. */
    memcpy(addr, e->client.ptr, e->client.len);
    addr[e->client.len] = '\0';
    if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1)
        abort();
    check_time(&e->time);
}

static int same_entry(const struct query_log_entry *a, const struct query_log_entry *b,
                      const char *la, const char *lb, size_t size)
{
#define SAME_SLICE(f)                                                                              \
    (a->f.len == b->f.len && (a->f.ptr == NULL) == (b->f.ptr == NULL) &&                           \
     (a->f.ptr == NULL || a->f.ptr - la == b->f.ptr - lb))
    /* A class outside the line (dnsmasq's static "IN") is the same pointer in both. */
    int outside = a->qclass.ptr != NULL && (a->qclass.ptr < la || a->qclass.ptr >= la + size);
    int same_class = outside ? a->qclass.ptr == b->qclass.ptr && a->qclass.len == b->qclass.len
                             : SAME_SLICE(qclass);

    return SAME_SLICE(client) && SAME_SLICE(qname) && same_class && SAME_SLICE(qtype) &&
           SAME_SLICE(view) && a->reply == b->reply && a->unix_time == b->unix_time &&
           a->unix_seconds == b->unix_seconds && a->time.present == b->time.present &&
           a->time.has_year == b->time.has_year && a->time.has_offset == b->time.has_offset &&
           a->time.year == b->time.year && a->time.month == b->time.month &&
           a->time.day == b->time.day && a->time.hour == b->time.hour &&
           a->time.minute == b->time.minute && a->time.second == b->time.second &&
           a->time.offset_minutes == b->time.offset_minutes;
#undef SAME_SLICE
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that AddressSanitizer sees any overread. */
    char *line = malloc(size ? size : 1);
    struct query_log_entry e, e2;
    enum query_log_result r;

    memcpy(line, data, size);
    r = query_log_parse(line, size, &e);
    check_entry(r, &e, line, size);
    if (query_log_parse(line, size, NULL) != r)
        abort();

    /* One trailing CR changes nothing (unless there is one already). */
    if (size == 0 || line[size - 1] != '\r') {
        char *cr = malloc(size + 1);

        memcpy(cr, data, size);
        cr[size] = '\r';
        if (query_log_parse(cr, size + 1, &e2) != r || !same_entry(&e, &e2, line, cr, size))
            abort();
        free(cr);
    }
    free(line);
    return 0;
}
