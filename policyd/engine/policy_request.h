/*
 * policy_request: the Postfix policy delegation protocol, parsed with no I/O.
 *
 * A connection owns one read buffer and one policy_parser.  The caller
 * appends bytes to the buffer and calls policy_parser_next(); it answers
 * POLICY_PARSE_MORE until a whole request (attribute lines ended by an
 * empty line) is in the buffer, then POLICY_PARSE_REQUEST with every known
 * attribute as a slice of that buffer.  Work is linear in the bytes fed:
 * the parser remembers how far it has scanned, so a request split at any
 * byte costs no rescanning.  Limits follow Postfix's own (attr_scan_plain:
 * 4 x line_length_limit = 8192 bytes per name or value).
 */
#ifndef RELAYWATCH_POLICY_REQUEST_H
#define RELAYWATCH_POLICY_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_MAX_NAME 8192       /* bytes in an attribute name */
#define POLICY_MAX_VALUE 8192      /* bytes in an attribute value */
#define POLICY_MAX_ATTRIBUTES 256  /* lines in one request, known or not */
#define POLICY_MAX_REQUEST 65536   /* bytes in one request, line ends included */

/* Every attribute Postfix 3.7-3.9 sends, plus tls_sni from 3.12. */
enum policy_attr {
    PA_REQUEST,
    PA_PROTOCOL_STATE,
    PA_PROTOCOL_NAME,
    PA_HELO_NAME,
    PA_QUEUE_ID,
    PA_SENDER,
    PA_RECIPIENT,
    PA_RECIPIENT_COUNT,
    PA_CLIENT_ADDRESS,
    PA_CLIENT_NAME,
    PA_REVERSE_CLIENT_NAME,
    PA_CLIENT_PORT,
    PA_SERVER_ADDRESS,
    PA_SERVER_PORT,
    PA_INSTANCE,
    PA_SASL_METHOD,
    PA_SASL_USERNAME,
    PA_SASL_SENDER,
    PA_SIZE,
    PA_CCERT_SUBJECT,
    PA_CCERT_ISSUER,
    PA_CCERT_FINGERPRINT,
    PA_CCERT_PUBKEY_FINGERPRINT,
    PA_ENCRYPTION_PROTOCOL,
    PA_ENCRYPTION_CIPHER,
    PA_ENCRYPTION_KEYSIZE,
    PA_ETRN_DOMAIN,
    PA_STRESS,
    PA_POLICY_CONTEXT,
    PA_COMPATIBILITY_LEVEL,
    PA_MAIL_VERSION,
    PA_TLS_SNI,
    PA_COUNT
};

/* The protocol_state values Postfix sends; anything else is PS_OTHER. */
enum policy_state {
    PS_UNKNOWN, /* attribute absent or empty */
    PS_CONNECT,
    PS_EHLO,
    PS_HELO,
    PS_MAIL,
    PS_RCPT,
    PS_DATA,
    PS_END_OF_MESSAGE,
    PS_VRFY,
    PS_ETRN,
    PS_OTHER
};

/* A value: bytes inside the connection's read buffer, not NUL-terminated.
 * ptr is NULL when the attribute was not sent (len 0 may also mean sent empty). */
struct policy_slice {
    const char *ptr;
    size_t len;
};

/* The domain of an address: what follows its last '@'; empty if none. */
struct policy_slice policy_address_domain(struct policy_slice addr);

struct policy_request {
    struct policy_slice attr[PA_COUNT];
    enum policy_state state;
    unsigned attributes; /* lines in the request, unknown names included */
    size_t size;         /* bytes the request took in the buffer */
};

enum policy_parse_result {
    POLICY_PARSE_MORE,    /* no complete request yet: feed more bytes */
    POLICY_PARSE_REQUEST, /* *req holds a request of req->size bytes */
    POLICY_PARSE_ERROR    /* the peer broke the protocol: close without answer */
};

enum policy_error {
    PE_NONE,
    PE_NUL_BYTE,
    PE_NO_EQUALS,
    PE_EMPTY_NAME,
    PE_NAME_TOO_LONG,
    PE_VALUE_TOO_LONG,
    PE_TOO_MANY_ATTRIBUTES,
    PE_REQUEST_TOO_LARGE,
    PE_NOT_POLICY_REQUEST
};

struct policy_parser {
    size_t scanned;    /* bytes of the current request already checked */
    size_t line_start; /* offset of the line being scanned */
    size_t equals;     /* 1 + offset of the first '=' in that line, 0 while none */
    size_t nul;        /* 1 + offset of the first NUL at or after scanned, 0 if none seen */
    unsigned lines;    /* complete attribute lines so far */
    enum policy_error error;
    size_t error_line; /* 1-based line of the error within the request */
    /* Known attributes found so far, as offsets into the request (the buffer
     * may move between calls): value at off, len bytes; off 0 = not sent. */
    struct {
        uint32_t off, len;
    } slot[PA_COUNT];
};

void policy_parser_init(struct policy_parser *p);

/*
 * Look at buf[0..len), which starts at the first byte of the current
 * request.  After POLICY_PARSE_REQUEST the caller drops req->size bytes
 * from the front of its buffer (or advances its base by that much) before
 * the next call; the parser is reset for the next request by itself.
 * After POLICY_PARSE_ERROR, p->error and p->error_line say what and where.
 * The buffer may move (realloc) between calls that return MORE.
 */
enum policy_parse_result policy_parser_next(struct policy_parser *p, const char *buf, size_t len,
                                            struct policy_request *req);

const char *policy_error_text(enum policy_error e);
const char *policy_attr_name(enum policy_attr a);
const char *policy_state_name(enum policy_state s);

/* The attribute for a name, or -1 for a name we do not know. */
int policy_attr_lookup(const char *name, size_t len);

#endif
