/*
 * Fuzz target for the syslog header reader and the Postfix line
 * classifier: any bytes, no crash, no read past the line, and what they
 * read holds together: every slice inside the line, times within their
 * ranges, a tag and host without spaces, an address that inet_pton takes,
 * the same answer with a trailing CR.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log_line.h"
#include "log_time_check.h"
#include "maillog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_slice(struct log_slice s, const char *line, size_t size, int spaces)
{
    if (s.ptr == NULL || s.ptr < line || s.len > size || s.ptr + s.len > line + size)
        abort();
    if (!spaces && memchr(s.ptr, ' ', s.len) != NULL)
        abort();
}

static void check_event(unsigned flags, const struct maillog_event *ev, const char *line,
                        size_t size)
{
    char addr[64];
    unsigned char bin[16];

    if (flags != ev->flags || (flags != 0 && !(flags & MAILLOG_POSTFIX)))
        abort();
    if (flags == 0)
        return;
    check_slice(ev->program, line, size, 0);
    /* "connect from unknown[unknown]" is a connection with no address: nothing named.  A
     * refusal at RCPT names its client; other refusals none. */
    if ((flags & MAILLOG_CONNECT) && ev->client_addr.len == 0 && ev->client_name.len == 0) {
        if (ev->client_addr.ptr != NULL || ev->client_name.ptr != NULL)
            abort();
    } else if ((flags & (MAILLOG_CONNECT | MAILLOG_CLIENT)) ||
               ((flags & MAILLOG_REFUSED) && ev->client_addr.ptr != NULL)) {
        check_slice(ev->client_name, line, size, 0);
        check_slice(ev->client_addr, line, size, 0);
        if (ev->client_addr.len == 0 || ev->client_addr.len > 45)
            abort();
        memcpy(addr, ev->client_addr.ptr, ev->client_addr.len);
        addr[ev->client_addr.len] = '\0';
        if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1)
            abort();
    }
    if (flags & MAILLOG_CLIENT)
        check_slice(ev->sasl_username, line, size, 1);
    if ((flags & MAILLOG_CONNECT) && (flags & (MAILLOG_QUEUED | MAILLOG_CLIENT | MAILLOG_REFUSED)))
        abort();
}

static void run(const char *line, size_t size, enum log_line_result *r, struct log_line *l,
                unsigned *flags)
{
    struct maillog_event ev;

    *r = log_line_parse(line, size, l);
    *flags = 0;
    if (*r == LOG_LINE_UNPARSED) {
        if (l->time.present || l->message.ptr != NULL || l->tag.ptr != NULL)
            abort();
        return;
    }
    if (!l->time.present)
        abort();
    check_time(&l->time);
    check_slice(l->host, line, size, 0);
    check_slice(l->tag, line, size, 0);
    check_slice(l->message, line, size, 1);
    if ((*r == LOG_LINE_TAGGED) != (l->tag.len > 0) || l->pid < -1)
        abort();
    *flags = maillog_classify(l->tag, l->message, &ev);
    check_event(*flags, &ev, line, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copies of exactly the input's size, so that AddressSanitizer sees any overread. */
    char *line = malloc(size ? size : 1);
    char *cr = malloc(size + 1);
    struct log_line l, l2;
    enum log_line_result r, r2;
    unsigned f, f2;

    memcpy(line, data, size);
    run(line, size, &r, &l, &f);
    if (log_line_parse(line, size, NULL) != r)
        abort();

    /* One trailing CR changes nothing (unless there is one already). */
    if (size == 0 || line[size - 1] != '\r') {
        memcpy(cr, data, size);
        cr[size] = '\r';
        run(cr, size + 1, &r2, &l2, &f2);
        if (r2 != r || f2 != f || l2.message.len != l.message.len || l2.pid != l.pid ||
            l2.tag.len != l.tag.len)
            abort();
    }
    free(cr);
    free(line);
    return 0;
}
