/*
 * policy_request: incremental parser for Postfix policy requests.
 * See policy_request.h for the contract.  No I/O, no allocation.
 */
#include "policy_request.h"

#include <stdlib.h>
#include <string.h>

static const struct attr_entry {
    const char *name;
    unsigned char len;
    unsigned char attr;
} attr_table[] = {
    {"ccert_fingerprint", 17, PA_CCERT_FINGERPRINT},
    {"ccert_issuer", 12, PA_CCERT_ISSUER},
    {"ccert_pubkey_fingerprint", 24, PA_CCERT_PUBKEY_FINGERPRINT},
    {"ccert_subject", 13, PA_CCERT_SUBJECT},
    {"client_address", 14, PA_CLIENT_ADDRESS},
    {"client_name", 11, PA_CLIENT_NAME},
    {"client_port", 11, PA_CLIENT_PORT},
    {"compatibility_level", 19, PA_COMPATIBILITY_LEVEL},
    {"encryption_cipher", 17, PA_ENCRYPTION_CIPHER},
    {"encryption_keysize", 18, PA_ENCRYPTION_KEYSIZE},
    {"encryption_protocol", 19, PA_ENCRYPTION_PROTOCOL},
    {"etrn_domain", 11, PA_ETRN_DOMAIN},
    {"helo_name", 9, PA_HELO_NAME},
    {"instance", 8, PA_INSTANCE},
    {"mail_version", 12, PA_MAIL_VERSION},
    {"policy_context", 14, PA_POLICY_CONTEXT},
    {"protocol_name", 13, PA_PROTOCOL_NAME},
    {"protocol_state", 14, PA_PROTOCOL_STATE},
    {"queue_id", 8, PA_QUEUE_ID},
    {"recipient", 9, PA_RECIPIENT},
    {"recipient_count", 15, PA_RECIPIENT_COUNT},
    {"request", 7, PA_REQUEST},
    {"reverse_client_name", 19, PA_REVERSE_CLIENT_NAME},
    {"sasl_method", 11, PA_SASL_METHOD},
    {"sasl_sender", 11, PA_SASL_SENDER},
    {"sasl_username", 13, PA_SASL_USERNAME},
    {"sender", 6, PA_SENDER},
    {"server_address", 14, PA_SERVER_ADDRESS},
    {"server_port", 11, PA_SERVER_PORT},
    {"size", 4, PA_SIZE},
    {"stress", 6, PA_STRESS},
    {"tls_sni", 7, PA_TLS_SNI},
};

#define ATTR_TABLE_LEN (sizeof(attr_table) / sizeof(attr_table[0]))

/*
 * Attribute names by length: a name is compared only with the two or three
 * of its length.  Built once, on first use.
 */
#define NAME_LEN_MAX 24

static uint8_t by_len[NAME_LEN_MAX + 1][8]; /* table indexes + 1, 0-terminated; at most 6 share a length */

static void build_by_len(void)
{
    for (size_t i = 0; i < ATTR_TABLE_LEN; i++) {
        uint8_t *row = by_len[attr_table[i].len];
        size_t n = 0;

        while (row[n] != 0)
            n++;
        row[n] = (uint8_t)(i + 1);
    }
}

int policy_attr_lookup(const char *name, size_t len)
{
    static int built;

    if (!built) {
        build_by_len();
        built = 1;
    }
    if (len == 0 || len > NAME_LEN_MAX)
        return -1;
    for (const uint8_t *row = by_len[len]; *row != 0; row++) {
        const struct attr_entry *e = &attr_table[*row - 1];

        if (e->name[0] == name[0] && memcmp(e->name, name, len) == 0)
            return e->attr;
    }
    return -1;
}

const char *policy_attr_name(enum policy_attr a)
{
    for (size_t i = 0; i < ATTR_TABLE_LEN; i++)
        if (attr_table[i].attr == a)
            return attr_table[i].name;
    return "?";
}

static const char *const state_names[] = {
    [PS_UNKNOWN] = "",
    [PS_CONNECT] = "CONNECT",
    [PS_EHLO] = "EHLO",
    [PS_HELO] = "HELO",
    [PS_MAIL] = "MAIL",
    [PS_RCPT] = "RCPT",
    [PS_DATA] = "DATA",
    [PS_END_OF_MESSAGE] = "END-OF-MESSAGE",
    [PS_VRFY] = "VRFY",
    [PS_ETRN] = "ETRN",
    [PS_OTHER] = "OTHER",
};

const char *policy_state_name(enum policy_state s)
{
    if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
        return "OTHER";
    return state_names[s];
}

static enum policy_state state_of(struct policy_slice v)
{
    if (v.ptr == NULL || v.len == 0)
        return PS_UNKNOWN;
    for (int s = PS_CONNECT; s < PS_OTHER; s++) {
        const char *n = state_names[s];
        size_t l = strlen(n);
        if (v.len == l && memcmp(v.ptr, n, l) == 0)
            return (enum policy_state)s;
    }
    return PS_OTHER;
}

static const char *const error_texts[] = {
    [PE_NONE] = "no error",
    [PE_NUL_BYTE] = "NUL byte in request",
    [PE_NO_EQUALS] = "attribute line without '='",
    [PE_EMPTY_NAME] = "attribute line with an empty name",
    [PE_NAME_TOO_LONG] = "attribute name longer than 8192 bytes",
    [PE_VALUE_TOO_LONG] = "attribute value longer than 8192 bytes",
    [PE_TOO_MANY_ATTRIBUTES] = "more than 256 attributes in one request",
    [PE_REQUEST_TOO_LARGE] = "request larger than 65536 bytes",
    [PE_NOT_POLICY_REQUEST] = "request without request=smtpd_access_policy",
};

const char *policy_error_text(enum policy_error e)
{
    if ((unsigned)e >= sizeof(error_texts) / sizeof(error_texts[0]))
        return "unknown error";
    return error_texts[e];
}

void policy_parser_init(struct policy_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static enum policy_parse_result fail(struct policy_parser *p, enum policy_error e)
{
    p->error = e;
    p->error_line = p->lines + 1;
    return POLICY_PARSE_ERROR;
}

/*
 * Scan with memchr, which is vectorised in libc: on the hot path a request
 * is a few hundred bytes, and a byte-at-a-time loop was the daemon's largest
 * cost under load.  Each call looks only at bytes not seen before.
 */
enum policy_parse_result policy_parser_next(struct policy_parser *p, const char *buf, size_t len,
                                            struct policy_request *req)
{
    size_t i = p->scanned;

    /* One look for a NUL over everything new, not one per line. */
    if (p->nul == 0 && i < len) {
        const char *z = memchr(buf + i, '\0', len - i);
        if (z != NULL)
            p->nul = (size_t)(z - buf) + 1;
    }
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len; /* bytes [i, end) are line content */
        size_t line_len;

        /* The newline at `end` is a byte of the request too. */
        if ((nl ? end + 1 : end) > POLICY_MAX_REQUEST) {
            p->scanned = i;
            return fail(p, PE_REQUEST_TOO_LARGE);
        }
        if (p->nul != 0 && p->nul - 1 < end) {
            p->scanned = i;
            return fail(p, PE_NUL_BYTE);
        }
        if (p->equals == 0) {
            const char *eq = memchr(buf + i, '=', end - i);

            if (eq != NULL) {
                if ((size_t)(eq - buf) == p->line_start) {
                    p->scanned = i;
                    return fail(p, PE_EMPTY_NAME);
                }
                p->equals = (size_t)(eq - buf) + 1;
            }
        }
        if (p->equals == 0 ? end - p->line_start > POLICY_MAX_NAME
                           : p->equals - 1 - p->line_start > POLICY_MAX_NAME) {
            p->scanned = i;
            return fail(p, PE_NAME_TOO_LONG);
        }
        /* One byte of slack while the line is open: a CR before the newline is not value. */
        if (p->equals != 0 && end - p->equals > POLICY_MAX_VALUE + 1) {
            p->scanned = i;
            return fail(p, PE_VALUE_TOO_LONG);
        }
        if (nl == NULL) {
            i = end;
            break;
        }
        line_len = end - p->line_start;
        if (line_len > 0 && buf[end - 1] == '\r')
            line_len--;
        if (line_len == 0) {
            /* The empty line that ends a request. */
            unsigned lines = p->lines;
            struct policy_slice r;

            for (int a = 0; a < PA_COUNT; a++) {
                req->attr[a].ptr = p->slot[a].off ? buf + p->slot[a].off : NULL;
                req->attr[a].len = p->slot[a].len;
            }
            policy_parser_init(p);
            if (lines == 0) {
                p->error = PE_NOT_POLICY_REQUEST;
                p->error_line = 1;
                return POLICY_PARSE_ERROR;
            }
            req->attributes = lines;
            req->size = end + 1;
            r = req->attr[PA_REQUEST];
            if (r.ptr == NULL || r.len != 19 || memcmp(r.ptr, "smtpd_access_policy", 19) != 0) {
                p->error = PE_NOT_POLICY_REQUEST;
                p->error_line = lines;
                return POLICY_PARSE_ERROR;
            }
            req->state = state_of(req->attr[PA_PROTOCOL_STATE]);
            return POLICY_PARSE_REQUEST;
        }
        if (p->equals == 0) {
            p->scanned = end;
            return fail(p, PE_NO_EQUALS);
        }
        if (p->line_start + line_len - p->equals > POLICY_MAX_VALUE) {
            p->scanned = end;
            return fail(p, PE_VALUE_TOO_LONG);
        }
        if (++p->lines > POLICY_MAX_ATTRIBUTES) {
            p->lines--;
            p->scanned = end;
            return fail(p, PE_TOO_MANY_ATTRIBUTES);
        }
        {
            /* A known attribute takes its slot; a repeated one, the last value. The value
             * starts after '=', so offset 0 can mean "not sent". */
            int a = policy_attr_lookup(buf + p->line_start, p->equals - 1 - p->line_start);
            if (a >= 0) {
                p->slot[a].off = (uint32_t)p->equals;
                p->slot[a].len = (uint32_t)(p->line_start + line_len - p->equals);
            }
        }
        p->line_start = end + 1;
        p->equals = 0;
        i = end + 1;
    }
    p->scanned = i;
    return POLICY_PARSE_MORE;
}

struct policy_slice policy_address_domain(struct policy_slice addr)
{
    struct policy_slice d = {NULL, 0};
    const char *at = addr.len > 0 ? memrchr(addr.ptr, '@', addr.len) : NULL;

    if (at != NULL) {
        d.ptr = at + 1;
        d.len = addr.len - (size_t)(d.ptr - addr.ptr);
    }
    return d;
}
