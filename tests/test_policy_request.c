/* Unit tests of the policy request parser: framing, slots, limits, split feeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy_request.h"

/* A request as Postfix 3.7 sends it at RCPT time. */
static const char postfix_rcpt[] =
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "protocol_name=ESMTP\n"
    "client_address=203.0.113.7\n"
    "client_name=mail.example.net\n"
    "reverse_client_name=mail.example.net\n"
    "client_port=40001\n"
    "server_address=127.0.0.1\n"
    "server_port=25\n"
    "helo_name=mail.example.net\n"
    "sender=alice@example.net\n"
    "recipient=bob@example.org\n"
    "recipient_count=0\n"
    "queue_id=\n"
    "instance=1a2b.6361e6c2.8b1f0.0\n"
    "size=1234\n"
    "etrn_domain=\n"
    "stress=\n"
    "sasl_method=PLAIN\n"
    "sasl_username=alice\n"
    "sasl_sender=\n"
    "ccert_subject=\n"
    "ccert_issuer=\n"
    "ccert_fingerprint=\n"
    "ccert_pubkey_fingerprint=\n"
    "encryption_protocol=TLSv1.3\n"
    "encryption_cipher=TLS_AES_256_GCM_SHA384\n"
    "encryption_keysize=256\n"
    "policy_context=submission\n"
    "compatibility_level=3.6\n"
    "mail_version=3.7.11\n"
    "\n";

static void assert_slice(struct policy_slice s, const char *want)
{
    assert_non_null(s.ptr);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static enum policy_parse_result parse_all(const char *buf, size_t len, struct policy_request *req,
                                          struct policy_parser *p)
{
    policy_parser_init(p);
    return policy_parser_next(p, buf, len, req);
}

static void test_full_request_fills_every_slot(void **state)
{
    struct policy_parser p;
    struct policy_request req;

    (void)state;
    assert_int_equal(parse_all(postfix_rcpt, strlen(postfix_rcpt), &req, &p), POLICY_PARSE_REQUEST);
    assert_int_equal(req.size, strlen(postfix_rcpt));
    assert_int_equal(req.attributes, 31);
    assert_int_equal(req.state, PS_RCPT);
    assert_slice(req.attr[PA_REQUEST], "smtpd_access_policy");
    assert_slice(req.attr[PA_PROTOCOL_NAME], "ESMTP");
    assert_slice(req.attr[PA_CLIENT_ADDRESS], "203.0.113.7");
    assert_slice(req.attr[PA_CLIENT_NAME], "mail.example.net");
    assert_slice(req.attr[PA_REVERSE_CLIENT_NAME], "mail.example.net");
    assert_slice(req.attr[PA_CLIENT_PORT], "40001");
    assert_slice(req.attr[PA_SERVER_ADDRESS], "127.0.0.1");
    assert_slice(req.attr[PA_SERVER_PORT], "25");
    assert_slice(req.attr[PA_HELO_NAME], "mail.example.net");
    assert_slice(req.attr[PA_SENDER], "alice@example.net");
    assert_slice(req.attr[PA_RECIPIENT], "bob@example.org");
    assert_slice(req.attr[PA_RECIPIENT_COUNT], "0");
    assert_slice(req.attr[PA_QUEUE_ID], "");
    assert_slice(req.attr[PA_INSTANCE], "1a2b.6361e6c2.8b1f0.0");
    assert_slice(req.attr[PA_SIZE], "1234");
    assert_slice(req.attr[PA_SASL_METHOD], "PLAIN");
    assert_slice(req.attr[PA_SASL_USERNAME], "alice");
    assert_slice(req.attr[PA_SASL_SENDER], "");
    assert_slice(req.attr[PA_ENCRYPTION_PROTOCOL], "TLSv1.3");
    assert_slice(req.attr[PA_ENCRYPTION_CIPHER], "TLS_AES_256_GCM_SHA384");
    assert_slice(req.attr[PA_ENCRYPTION_KEYSIZE], "256");
    assert_slice(req.attr[PA_POLICY_CONTEXT], "submission");
    assert_slice(req.attr[PA_COMPATIBILITY_LEVEL], "3.6");
    assert_slice(req.attr[PA_MAIL_VERSION], "3.7.11");
    assert_slice(req.attr[PA_STRESS], "");
    assert_null(req.attr[PA_TLS_SNI].ptr); /* not sent */
    /* Values are slices of the caller's buffer, not copies. */
    assert_true(req.attr[PA_SENDER].ptr > postfix_rcpt &&
                req.attr[PA_SENDER].ptr < postfix_rcpt + sizeof(postfix_rcpt));
}

static void test_every_state_is_recognised(void **state)
{
    static const struct {
        const char *text;
        enum policy_state want;
    } cases[] = {
        {"CONNECT", PS_CONNECT},
        {"EHLO", PS_EHLO},
        {"HELO", PS_HELO},
        {"MAIL", PS_MAIL},
        {"RCPT", PS_RCPT},
        {"DATA", PS_DATA},
        {"END-OF-MESSAGE", PS_END_OF_MESSAGE},
        {"VRFY", PS_VRFY},
        {"ETRN", PS_ETRN},
        {"BDAT", PS_OTHER},
        {"rcpt", PS_OTHER},
        {"", PS_UNKNOWN},
    };
    char buf[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_parser p;
        struct policy_request req;
        int n = snprintf(buf, sizeof(buf), "request=smtpd_access_policy\nprotocol_state=%s\n\n",
                         cases[i].text);

        assert_int_equal(parse_all(buf, (size_t)n, &req, &p), POLICY_PARSE_REQUEST);
        assert_int_equal(req.state, cases[i].want);
        if (cases[i].want != PS_OTHER && cases[i].want != PS_UNKNOWN)
            assert_string_equal(policy_state_name(req.state), cases[i].text);
    }
}

/* Feeding the request one more byte at a time: MORE until the last byte, then the same result. */
static void test_split_at_every_byte(void **state)
{
    size_t n = strlen(postfix_rcpt);
    struct policy_parser p;
    struct policy_request req;
    char *buf = malloc(n);

    (void)state;
    policy_parser_init(&p);
    for (size_t k = 0; k < n; k++) {
        /* Copy into a fresh buffer each time: the parser must not keep pointers across calls. */
        memset(buf, 'X', n);
        memcpy(buf, postfix_rcpt, k + 1);
        if (k + 1 < n) {
            assert_int_equal(policy_parser_next(&p, buf, k + 1, &req), POLICY_PARSE_MORE);
        } else {
            assert_int_equal(policy_parser_next(&p, buf, k + 1, &req), POLICY_PARSE_REQUEST);
        }
    }
    assert_int_equal(req.size, n);
    assert_slice(req.attr[PA_RECIPIENT], "bob@example.org");
    assert_slice(req.attr[PA_MAIL_VERSION], "3.7.11");
    free(buf);
}

/* Every split into two reads gives the same request. */
static void test_split_in_two_everywhere(void **state)
{
    size_t n = strlen(postfix_rcpt);

    (void)state;
    for (size_t cut = 0; cut <= n; cut++) {
        struct policy_parser p;
        struct policy_request req;
        enum policy_parse_result r;

        policy_parser_init(&p);
        r = policy_parser_next(&p, postfix_rcpt, cut, &req);
        if (cut < n) {
            assert_int_equal(r, POLICY_PARSE_MORE);
            r = policy_parser_next(&p, postfix_rcpt, n, &req);
        }
        assert_int_equal(r, POLICY_PARSE_REQUEST);
        assert_slice(req.attr[PA_SASL_USERNAME], "alice");
        assert_int_equal(req.attributes, 31);
    }
}

static void test_several_requests_in_one_buffer(void **state)
{
    const char buf[] = "request=smtpd_access_policy\nprotocol_state=CONNECT\n\n"
                       "request=smtpd_access_policy\r\nprotocol_state=RCPT\r\nrecipient=a@b\r\n\r\n"
                       "request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n\n"
                       "request=smtpd_acc"; /* the start of a fourth */
    size_t off = 0, len = sizeof(buf) - 1;
    enum policy_state want[] = {PS_CONNECT, PS_RCPT, PS_END_OF_MESSAGE};
    struct policy_parser p;
    struct policy_request req;

    (void)state;
    policy_parser_init(&p);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(policy_parser_next(&p, buf + off, len - off, &req), POLICY_PARSE_REQUEST);
        assert_int_equal(req.state, want[i]);
        if (i == 1)
            assert_slice(req.attr[PA_RECIPIENT], "a@b"); /* CR is not part of the value */
        off += req.size;
    }
    assert_int_equal(policy_parser_next(&p, buf + off, len - off, &req), POLICY_PARSE_MORE);
}

static void test_unknown_repeated_and_odd_values(void **state)
{
    const char buf[] = "request=smtpd_access_policy\n"
                       "tls_sni=mx.example.org\n"
                       "future_attribute=whatever\n"
                       "sender=first@example.org\n"
                       "sender=last@example.org\n"
                       "ccert_subject=CN+3Dx=y\n"
                       "recipient=\n"
                       "helo_name=with\rcarriage\n"
                       "\n";
    struct policy_parser p;
    struct policy_request req;

    (void)state;
    assert_int_equal(parse_all(buf, sizeof(buf) - 1, &req, &p), POLICY_PARSE_REQUEST);
    assert_int_equal(req.attributes, 8);
    assert_slice(req.attr[PA_TLS_SNI], "mx.example.org");
    assert_slice(req.attr[PA_SENDER], "last@example.org");
    assert_slice(req.attr[PA_CCERT_SUBJECT], "CN+3Dx=y"); /* first '=' splits */
    assert_slice(req.attr[PA_RECIPIENT], "");
    assert_slice(req.attr[PA_HELO_NAME], "with\rcarriage");
    assert_int_equal(req.state, PS_UNKNOWN);
    assert_null(req.attr[PA_PROTOCOL_STATE].ptr);
}

struct bad_case {
    const char *name;
    const char *text;
    size_t len; /* 0: strlen */
    enum policy_error want;
    size_t line;
    int needs_end; /* 1: only detected at the empty line */
};

static void test_malformed_requests(void **state)
{
    static const char with_nul[] = "request=smtpd_access_policy\nsender=a\0b\n\n";
    static const struct bad_case cases[] = {
        {"no equals", "request=smtpd_access_policy\nbogus line\n\n", 0, PE_NO_EQUALS, 2, 0},
        {"empty name", "request=smtpd_access_policy\n=value\n\n", 0, PE_EMPTY_NAME, 2, 0},
        {"nul byte", with_nul, sizeof(with_nul) - 1, PE_NUL_BYTE, 2, 0},
        {"no request attribute", "protocol_state=RCPT\n\n", 0, PE_NOT_POLICY_REQUEST, 1, 1},
        {"wrong request", "request=junk\n\n", 0, PE_NOT_POLICY_REQUEST, 1, 1},
        {"request prefix", "request=smtpd_access_policyX\n\n", 0, PE_NOT_POLICY_REQUEST, 1, 1},
        {"empty request", "\n", 0, PE_NOT_POLICY_REQUEST, 1, 1},
        {"crlf empty request", "\r\n", 0, PE_NOT_POLICY_REQUEST, 1, 1},
        {"http", "GET / HTTP/1.0\r\n\r\n", 0, PE_NO_EQUALS, 1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->text);
        struct policy_parser p;
        struct policy_request req;

        print_message("case: %s\n", c->name);
        assert_int_equal(parse_all(c->text, len, &req, &p), POLICY_PARSE_ERROR);
        assert_int_equal(p.error, c->want);
        assert_int_equal(p.error_line, c->line);
        assert_string_not_equal(policy_error_text(p.error), "unknown error");
        if (!c->needs_end) {
            /* Detected before the empty line arrives: drop the last byte. */
            assert_int_equal(parse_all(c->text, len - 1, &req, &p), POLICY_PARSE_ERROR);
        }
    }
}

/* Build "request=smtpd_access_policy\n" + NAME=VALUE with given sizes + "\n\n". */
static char *request_with(size_t name_len, size_t value_len, const char *line_end, size_t *len)
{
    size_t cap = 64 + name_len + value_len;
    char *buf = malloc(cap);
    size_t n = (size_t)snprintf(buf, cap, "request=smtpd_access_policy\n");

    memset(buf + n, 'n', name_len);
    n += name_len;
    buf[n++] = '=';
    memset(buf + n, 'v', value_len);
    n += value_len;
    n += (size_t)snprintf(buf + n, cap - n, "%s\n", line_end);
    *len = n;
    return buf;
}

static void test_name_and_value_limits(void **state)
{
    static const struct {
        size_t name, value;
        const char *end;
        enum policy_parse_result want;
        enum policy_error error;
    } cases[] = {
        {POLICY_MAX_NAME, 10, "\n", POLICY_PARSE_REQUEST, PE_NONE},
        {POLICY_MAX_NAME + 1, 10, "\n", POLICY_PARSE_ERROR, PE_NAME_TOO_LONG},
        {10, POLICY_MAX_VALUE, "\n", POLICY_PARSE_REQUEST, PE_NONE},
        {10, POLICY_MAX_VALUE, "\r\n", POLICY_PARSE_REQUEST, PE_NONE},
        {10, POLICY_MAX_VALUE + 1, "\n", POLICY_PARSE_ERROR, PE_VALUE_TOO_LONG},
        {10, POLICY_MAX_VALUE + 1, "\r\n", POLICY_PARSE_ERROR, PE_VALUE_TOO_LONG},
        {10, POLICY_MAX_VALUE + 2, "\n", POLICY_PARSE_ERROR, PE_VALUE_TOO_LONG},
        {10, 0, "\n", POLICY_PARSE_REQUEST, PE_NONE},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *buf = request_with(cases[i].name, cases[i].value, cases[i].end, &len);
        struct policy_parser p;
        struct policy_request req;

        print_message("case: name %zu value %zu\n", cases[i].name, cases[i].value);
        assert_int_equal(parse_all(buf, len, &req, &p), cases[i].want);
        if (cases[i].want == POLICY_PARSE_ERROR) {
            assert_int_equal(p.error, cases[i].error);
            assert_int_equal(p.error_line, 2);
        }
        free(buf);
    }
}

static void test_attribute_count_limit(void **state)
{
    for (int extra = 0; extra <= 1; extra++) {
        size_t cap = 64 + (POLICY_MAX_ATTRIBUTES + 1) * 8;
        char *buf = malloc(cap);
        size_t n = (size_t)snprintf(buf, cap, "request=smtpd_access_policy\n");
        struct policy_parser p;
        struct policy_request req;

        (void)state;
        for (int i = 1; i < POLICY_MAX_ATTRIBUTES + extra; i++)
            n += (size_t)snprintf(buf + n, cap - n, "x%d=1\n", i % 10);
        buf[n++] = '\n';
        if (extra == 0) {
            assert_int_equal(parse_all(buf, n, &req, &p), POLICY_PARSE_REQUEST);
            assert_int_equal(req.attributes, POLICY_MAX_ATTRIBUTES);
        } else {
            assert_int_equal(parse_all(buf, n, &req, &p), POLICY_PARSE_ERROR);
            assert_int_equal(p.error, PE_TOO_MANY_ATTRIBUTES);
            assert_int_equal(p.error_line, POLICY_MAX_ATTRIBUTES + 1);
        }
        free(buf);
    }
}

/* A request of exactly `total` bytes made of 8000-byte values. */
static char *request_of_size(size_t total)
{
    char *buf = malloc(total);
    size_t n = (size_t)snprintf(buf, total, "request=smtpd_access_policy\n");

    while (total - n > 1) {
        size_t room = total - n - 1; /* keep one byte for the final empty line */
        size_t line = room > 8004 ? 8004 : room;

        if (room - line > 0 && room - line < 4)
            line -= 4; /* leave room for one more minimal line "a=\n" */
        buf[n] = 'a';
        buf[n + 1] = '=';
        memset(buf + n + 2, 'v', line - 3);
        buf[n + line - 1] = '\n';
        n += line;
    }
    buf[n++] = '\n';
    return buf;
}

static void test_request_size_limit(void **state)
{
    struct policy_parser p;
    struct policy_request req;
    char *ok = request_of_size(POLICY_MAX_REQUEST);
    char *big = request_of_size(POLICY_MAX_REQUEST + 1);

    (void)state;
    assert_int_equal(parse_all(ok, POLICY_MAX_REQUEST, &req, &p), POLICY_PARSE_REQUEST);
    assert_int_equal(req.size, POLICY_MAX_REQUEST);
    assert_int_equal(parse_all(big, POLICY_MAX_REQUEST + 1, &req, &p), POLICY_PARSE_ERROR);
    assert_int_equal(p.error, PE_REQUEST_TOO_LARGE);
    free(ok);
    free(big);
}

static void test_attribute_lookup(void **state)
{
    (void)state;
    for (int a = 0; a < PA_COUNT; a++) {
        const char *name = policy_attr_name((enum policy_attr)a);
        assert_int_equal(policy_attr_lookup(name, strlen(name)), a);
    }
    assert_int_equal(policy_attr_lookup("sende", 5), -1);
    assert_int_equal(policy_attr_lookup("senders", 7), -1);
    assert_int_equal(policy_attr_lookup("", 0), -1);
    assert_int_equal(policy_attr_lookup("zzz", 3), -1);
    assert_int_equal(policy_attr_lookup("aaa", 3), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_request_fills_every_slot),
        cmocka_unit_test(test_every_state_is_recognised),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_split_in_two_everywhere),
        cmocka_unit_test(test_several_requests_in_one_buffer),
        cmocka_unit_test(test_unknown_repeated_and_odd_values),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_name_and_value_limits),
        cmocka_unit_test(test_attribute_count_limit),
        cmocka_unit_test(test_request_size_limit),
        cmocka_unit_test(test_attribute_lookup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
