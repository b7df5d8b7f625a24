/*
 * maillog: a Postfix log line's meaning (see maillog.h).
 *
 * Postfix writes these lines itself (smtpd.c, qmgr_active.c, cleanup), so
 * the shapes are matched strictly at the start of the message; only the
 * "from=<" of nf_log is searched anywhere, as the study counted it.  Names
 * and addresses come from the wire (PTR names, SASL user names), so every
 * slice is bounded and an address must parse as one.
 *
 * sasl_username runs to the next ", sasl_sender=", ", orig_queue_id=" or
 * ", orig_client=" (what smtpd may log after it) or the end; a user name
 * that itself holds one of those is cut there: Postfix's line cannot say
 * otherwise.
 */
#ifndef _GNU_SOURCE /* memmem; the top-level CMakeLists defines it already */
#define _GNU_SOURCE
#endif
#include "maillog.h"

#include <string.h>

#include "address.h"
#include "queue_id.h"

#define ADDR_MAX 45 /* INET6_ADDRSTRLEN - 1 */
#define NAME_MAX_TEXT 255

static bool starts(const char *p, const char *end, const char *lit, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}
#define STARTS(p, end, lit) starts(p, end, lit, sizeof(lit) - 1)

static bool is(struct log_slice s, const char *lit, size_t n)
{
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}
#define IS(s, lit) is(s, lit, sizeof(lit) - 1)

/* "postfix" or "postfix-INSTANCE", then at least one "/": the program after the last "/". */
static bool postfix_program(struct log_slice tag, struct log_slice *program)
{
    const char *end = tag.ptr + tag.len;
    const char *slash = tag.len ? memrchr(tag.ptr, '/', tag.len) : NULL;
    const char *first = tag.len ? memchr(tag.ptr, '/', tag.len) : NULL;

    if (slash == NULL || slash + 1 == end || !STARTS(tag.ptr, end, "postfix") ||
        !(first == tag.ptr + 7 || tag.ptr[7] == '-'))
        return false;
    program->ptr = slash + 1;
    program->len = (size_t)(end - slash - 1);
    return true;
}

/*
 * "NAME[ADDR]" at p: fills name and addr (without "IPv6:"), returns the end
 * (after "]"), or NULL if the shape or the address is wrong.
 */
static const char *name_addr(const char *p, const char *end, struct log_slice *name,
                             struct log_slice *addr)
{
    const char *open, *close, *a;
    char text[ADDR_MAX + 1];
    size_t n;

    open = memchr(p, '[', (size_t)(end - p) < NAME_MAX_TEXT + 1 ? (size_t)(end - p)
                                                                 : NAME_MAX_TEXT + 1);
    if (open == NULL || open == p)
        return NULL;
    a = open + 1;
    if (STARTS(a, end, "IPv6:"))
        a += 5;
    close = memchr(a, ']', (size_t)(end - a) < ADDR_MAX + 1 ? (size_t)(end - a) : ADDR_MAX + 1);
    if (close == NULL)
        return NULL;
    n = (size_t)(close - a);
    if (n > ADDR_MAX) /* an empty one is no address either: address_is_ip says so */
        return NULL;
    memcpy(text, a, n);
    text[n] = '\0';
    if (memchr(text, '\0', n) != NULL || !address_is_ip(text))
        return NULL;
    for (const char *c = p; c < open; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7F)
            return NULL;
    name->ptr = p;
    name->len = (size_t)(open - p);
    addr->ptr = a;
    addr->len = n;
    p = close + 1;
    /* smtpd_client_port_logging = yes makes it NAME[ADDR]:PORT (up to 5 digits: a sixth is
     * text after the port, which the callers refuse). */
    if (p + 1 < end && *p == ':' && p[1] >= '0' && p[1] <= '9') {
        const char *d = p + 1;

        while (d < end && d - p <= 5 && *d >= '0' && *d <= '9')
            d++;
        p = d;
    }
    return p;
}

/* A refusal at RCPT: "...reject: RCPT from NAME[ADDR]: ..." names its client. */
static void rcpt_client(const char *p, const char *end, struct maillog_event *out)
{
    static const char lead[] = "reject: RCPT from ";
    const char *at = memmem(p, (size_t)(end - p), lead, sizeof(lead) - 1);
    const char *q;

    if (at == NULL)
        return;
    q = name_addr(at + sizeof(lead) - 1, end, &out->client_name, &out->client_addr);
    if (q == NULL || q == end || *q != ':') {
        out->client_name.len = out->client_addr.len = 0;
        out->client_name.ptr = out->client_addr.ptr = NULL;
    }
}

/* "QUEUEID: " at the start: the rest after it, or NULL. */
static const char *queue_id_prefix(const char *p, const char *end, struct log_slice *id)
{
    const char *colon = memchr(p, ':', (size_t)(end - p) < QUEUE_ID_MAX + 1 ? (size_t)(end - p)
                                                                           : QUEUE_ID_MAX + 1);

    if (colon == NULL || colon + 1 >= end || colon[1] != ' ' ||
        !queue_id_valid(p, (size_t)(colon - p)))
        return NULL;
    id->ptr = p;
    id->len = (size_t)(colon - p);
    return colon + 2;
}

/* qmgr's "from=<...>, size=N, nrcpt=N (queue active)" after the queue ID. */
static bool queued(const char *p, const char *end)
{
    static const char tail[] = " (queue active)";
    const char *q;

    if (!STARTS(p, end, "from=<") || (size_t)(end - p) < sizeof(tail) - 1 ||
        memcmp(end - (sizeof(tail) - 1), tail, sizeof(tail) - 1) != 0)
        return false;
    /* The sender may hold anything; the size and count follow its last ">, size=". */
    q = NULL;
    for (const char *s = p; (s = memmem(s, (size_t)(end - s), ">, size=", 8)) != NULL; s++)
        q = s;
    return q != NULL && memmem(q, (size_t)(end - q), ", nrcpt=", 8) != NULL;
}

/* The end of the SASL user name at p: the next key smtpd logs after it, or the end. */
static const char *username_end(const char *p, const char *end)
{
    static const char *const next[] = {", sasl_sender=", ", orig_queue_id=", ", orig_client="};
    const char *best = end;

    for (size_t i = 0; i < sizeof(next) / sizeof(next[0]); i++) {
        const char *k = memmem(p, (size_t)(best - p), next[i], strlen(next[i]));

        if (k != NULL)
            best = k;
    }
    return best;
}

static void client_line(const char *p, const char *end, struct maillog_event *out)
{
    static const char key[] = "sasl_username=";
    const char *q = name_addr(p + 7, end, &out->client_name, &out->client_addr);

    if (q == NULL || (q < end && *q != ','))
        return;
    out->flags |= MAILLOG_CLIENT;
    out->sasl_username.ptr = end;
    out->sasl_username.len = 0;
    /* ", sasl_method=M, sasl_username=U": the method is a mechanism name, no ", ". */
    if (STARTS(q, end, ", sasl_method=")) {
        const char *k = memmem(q, (size_t)(end - q), ", sasl_username=", 16);

        if (k != NULL) {
            const char *u = k + 2 + sizeof(key) - 1;

            out->sasl_username.ptr = u;
            out->sasl_username.len = (size_t)(username_end(u, end) - u);
        }
    }
}

unsigned maillog_classify(struct log_slice tag, struct log_slice message,
                          struct maillog_event *out)
{
    static const struct maillog_event zero;
    struct maillog_event scratch;
    const char *p, *end, *rest;
    bool smtpd;

    if (out == NULL)
        out = &scratch;
    *out = zero;
    if (tag.ptr == NULL || message.ptr == NULL || !postfix_program(tag, &out->program))
        return 0;
    out->flags = MAILLOG_POSTFIX;
    p = message.ptr;
    end = p + message.len;
    smtpd = IS(out->program, "smtpd");

    if (memmem(p, message.len, "from=<", 6) != NULL)
        out->flags |= MAILLOG_FROM;

    if (smtpd && STARTS(p, end, "connect from ")) {
        const char *q = name_addr(p + 13, end, &out->client_name, &out->client_addr);

        if (q == end) {
            out->flags |= MAILLOG_CONNECT;
        } else {
            out->client_name = out->client_addr = zero.client_addr;
            /* smtpd could not get the peer's address (a reset right after the accept, a
             * proxy that timed out): a connection all the same, with no address. */
            if (end - p == 13 + 16 && memcmp(p + 13, "unknown[unknown]", 16) == 0)
                out->flags |= MAILLOG_CONNECT;
        }
        return out->flags;
    }
    if ((smtpd || IS(out->program, "cleanup")) &&
        (STARTS(p, end, "NOQUEUE: reject: ") || STARTS(p, end, "NOQUEUE: milter-reject: "))) {
        out->flags |= MAILLOG_REFUSED;
        rcpt_client(p, end, out);
        return out->flags;
    }
    rest = queue_id_prefix(p, end, &out->queue_id);
    if (rest == NULL)
        return out->flags;
    if ((smtpd || IS(out->program, "cleanup")) &&
        (STARTS(rest, end, "reject: ") || STARTS(rest, end, "milter-reject: ")))
        out->flags |= MAILLOG_REFUSED;
    else if (IS(out->program, "qmgr") && queued(rest, end))
        out->flags |= MAILLOG_QUEUED;
    else if (smtpd && STARTS(rest, end, "client="))
        client_line(rest, end, out);
    if (!(out->flags & (MAILLOG_REFUSED | MAILLOG_QUEUED | MAILLOG_CLIENT)))
        out->queue_id = zero.queue_id;
    return out->flags;
}
