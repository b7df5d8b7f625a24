/* Unit tests of the DNS wire-format functions the resolver uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns_message.h"

/* A message built by hand, the way a name server would write it. */
struct msg {
    uint8_t b[1024];
    size_t n;
};

static void put8(struct msg *m, unsigned v)
{
    m->b[m->n++] = (uint8_t)v;
}

static void put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

/* Labels of a dotted name, ending with the root, or with a pointer to ptr (if ptr). */
static void put_name(struct msg *m, const char *name, unsigned ptr)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);

        put8(m, (unsigned)l);
        memcpy(m->b + m->n, name, l);
        m->n += l;
        name += l + (dot != NULL);
    }
    if (ptr)
        put16(m, 0xC000 | ptr);
    else
        put8(m, 0);
}

static void header(struct msg *m, unsigned rcode, unsigned an, unsigned ns)
{
    m->n = 0;
    put16(m, 0x1234);
    put8(m, 0x81); /* QR, RD */
    put8(m, 0x80 | rcode);
    put16(m, 1);
    put16(m, an);
    put16(m, ns);
    put16(m, 0);
}

static void question(struct msg *m, const char *name, unsigned qtype)
{
    put_name(m, name, 0);
    put16(m, qtype);
    put16(m, 1);
}

/* A record header with its name a pointer to the question's name (offset 12). */
static size_t rr(struct msg *m, unsigned type, uint32_t ttl)
{
    put16(m, 0xC00C);
    put16(m, type);
    put16(m, 1);
    put32(m, ttl);
    put16(m, 0); /* rdlength, patched by rr_end */
    return m->n;
}

static void rr_end(struct msg *m, size_t start)
{
    size_t len = m->n - start;
    m->b[start - 2] = (uint8_t)(len >> 8);
    m->b[start - 1] = (uint8_t)len;
}

/* A reply without error to one question, answered by one record of the same type: the
 * record is begun (rr), the caller writes its data and ends it (rr_end). */
static size_t one_answer(struct msg *m, const char *qname, unsigned qtype, uint32_t ttl)
{
    header(m, 0, 1, 0);
    question(m, qname, qtype);
    return rr(m, qtype, ttl);
}

static void soa(struct msg *m, uint32_t ttl, uint32_t minimum)
{
    size_t at = rr(m, DNS_QTYPE_SOA, ttl);

    put_name(m, "ns1.example", 0);
    put_name(m, "hostmaster.example", 0);
    put32(m, 1);
    put32(m, 3600);
    put32(m, 600);
    put32(m, 86400);
    put32(m, minimum);
    rr_end(m, at);
}

static void test_normalise(void **state)
{
    char out[DNS_NAME_MAX + 1], label[70], longname[300];

    (void)state;
    assert_int_equal(dns_name_normalise("Mail.EXAMPLE.org.", 17, out), 16);
    assert_string_equal(out, "mail.example.org");
    assert_int_equal(dns_name_normalise("_dmarc.x-y.test", 15, out), 15);
    assert_int_equal(dns_name_normalise("[192.0.2.1]", 11, out), 0);
    assert_int_equal(dns_name_normalise("a..b", 4, out), 0);
    /* Only one trailing dot is dropped: two would leave a key the packets never match. */
    assert_int_equal(dns_name_normalise("example.com..", 13, out), 0);
    assert_int_equal(dns_name_normalise("..", 2, out), 0);
    assert_int_equal(dns_name_normalise(".", 1, out), 0);
    assert_int_equal(dns_name_normalise("", 0, out), 0);
    assert_int_equal(dns_name_normalise("a b.test", 8, out), 0);
    memset(label, 'a', 64);
    assert_int_equal(dns_name_normalise(label, 63, out), 63);
    assert_int_equal(dns_name_normalise(label, 64, out), 0);
    /* 253 bytes is the most a name can have in text. */
    for (size_t i = 0; i < sizeof(longname); i++)
        longname[i] = i % 10 == 9 ? '.' : 'x';
    assert_int_equal(dns_name_normalise(longname, 253, out), 253);
    assert_int_equal(dns_name_normalise(longname, 254, out), 0);
}

static void test_reverse(void **state)
{
    char out[DNS_NAME_MAX + 1];

    (void)state;
    assert_int_equal(dns_reverse_name("127.0.2.10", 10, out), strlen("10.2.0.127.in-addr.arpa"));
    assert_string_equal(out, "10.2.0.127.in-addr.arpa");
    assert_true(dns_reverse_name("2001:db8::1", 11, out) > 0);
    assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    assert_int_equal(dns_reverse_name("unknown", 7, out), 0);
    assert_int_equal(dns_reverse_name("127.0.0.1x", 10, out), 0);
    assert_int_equal(dns_reverse_name("", 0, out), 0);
}

static void test_query_round_trip(void **state)
{
    uint8_t q[512];
    char name[DNS_NAME_MAX + 1];
    uint16_t qtype;
    size_t n;

    (void)state;
    n = dns_build_query(q, sizeof(q), 7, "mx.example.org", DNS_QTYPE_MX, 1232);
    /* header 12 + name 16 + type/class 4 + OPT 11 */
    assert_int_equal(n, 12 + 16 + 4 + 11);
    assert_int_equal(q[2], 0x01); /* RD, a query */
    assert_int_equal(q[5], 1);    /* one question */
    assert_int_equal(q[11], 1);   /* one additional: OPT */
    assert_int_equal(q[n - 8] << 8 | q[n - 7], 1232);
    assert_int_equal(dns_parse_question(q, n, name, &qtype), 0);
    assert_string_equal(name, "mx.example.org");
    assert_int_equal(qtype, DNS_QTYPE_MX);
    /* Too small a buffer, or a label over 63 bytes: nothing built. */
    assert_int_equal(dns_build_query(q, 20, 7, "mx.example.org", DNS_QTYPE_MX, 0), 0);
    assert_int_equal(dns_build_query(q, sizeof(q), 7,
                                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
                                     DNS_QTYPE_A, 0),
                     0);
    /* A question cut short is malformed. */
    assert_int_equal(dns_parse_question(q, 20, name, &qtype), -1);
}

static void test_mx_answer(void **state)
{
    struct msg m;
    struct dns_reply r;
    size_t at;

    (void)state;
    header(&m, 0, 2, 0);
    question(&m, "Example.ORG", DNS_QTYPE_MX);
    at = rr(&m, DNS_QTYPE_MX, 300);
    put16(&m, 10);
    put_name(&m, "mx1", 12); /* mx1 + pointer to example.org */
    rr_end(&m, at);
    at = rr(&m, DNS_QTYPE_MX, 100);
    put16(&m, 20);
    put_name(&m, "mx2", 12);
    rr_end(&m, at);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), 0);
    assert_int_equal(r.id, 0x1234);
    assert_int_equal(r.rcode, 0);
    assert_int_equal(r.qtype, DNS_QTYPE_MX);
    assert_string_equal(r.qname, "example.org");
    assert_int_equal(r.answers, 2);
    assert_int_equal(r.ttl, 100);
    assert_string_equal(r.target, "mx1.example.org");
    assert_false(r.has_negative_ttl);
    /* Every shorter prefix of it is malformed, never read past. */
    for (size_t n = 0; n < m.n; n++)
        assert_int_equal(dns_parse_reply(m.b, n, &r), -1);
}

static void test_ptr_and_cname(void **state)
{
    struct msg m;
    struct dns_reply r;
    size_t at;

    (void)state;
    at = one_answer(&m, "9.0.0.127.in-addr.arpa", DNS_QTYPE_PTR, 3600);
    put_name(&m, "host9.example.test", 0);
    rr_end(&m, at);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), 0);
    assert_int_equal(r.answers, 1);
    assert_string_equal(r.target, "host9.example.test");

    /* A CNAME then the A: answered, with the lower TTL of the two. */
    header(&m, 0, 2, 0);
    question(&m, "www.example.test", DNS_QTYPE_A);
    at = rr(&m, DNS_QTYPE_CNAME, 50);
    put_name(&m, "web.example.test", 0);
    rr_end(&m, at);
    at = rr(&m, DNS_QTYPE_A, 500);
    put32(&m, 0x7f000001);
    rr_end(&m, at);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), 0);
    assert_int_equal(r.answers, 1);
    assert_int_equal(r.ttl, 50);
    assert_string_equal(r.target, "");

    /* A PTR target that is no host name is not handed on. */
    at = one_answer(&m, "9.0.0.127.in-addr.arpa", DNS_QTYPE_PTR, 3600);
    put_name(&m, "bad name.test", 0);
    rr_end(&m, at);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), 0);
    assert_int_equal(r.answers, 1);
    assert_string_equal(r.target, "");
}

static void test_negative(void **state)
{
    struct msg m;
    struct dns_reply r;

    (void)state;
    /* NXDOMAIN: the negative TTL is the lower of the SOA's TTL and MINIMUM (RFC 2308). */
    header(&m, DNS_RCODE_NXDOMAIN, 0, 1);
    question(&m, "nope.example.test", DNS_QTYPE_MX);
    soa(&m, 600, 60);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), 0);
    assert_int_equal(r.rcode, DNS_RCODE_NXDOMAIN);
    assert_int_equal(r.answers, 0);
    assert_true(r.has_negative_ttl);
    assert_int_equal(r.negative_ttl, 60);

    header(&m, 0, 0, 1);
    question(&m, "a.example.test", DNS_QTYPE_MX);
    soa(&m, 30, 3600);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), 0);
    assert_int_equal(r.rcode, 0);
    assert_int_equal(r.answers, 0);
    assert_int_equal(r.negative_ttl, 30);

    /* SERVFAIL without any record. */
    header(&m, DNS_RCODE_SERVFAIL, 0, 0);
    question(&m, "a.example.test", DNS_QTYPE_MX);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), 0);
    assert_int_equal(r.rcode, DNS_RCODE_SERVFAIL);
    assert_false(r.has_negative_ttl);
}

static void test_malformed(void **state)
{
    struct msg m;
    struct dns_reply r;
    size_t at;

    (void)state;
    /* A pointer to itself, or forwards: refused, no loop. */
    at = one_answer(&m, "loop.test", DNS_QTYPE_PTR, 10);
    put16(&m, 0xC000 | (unsigned)m.n);
    rr_end(&m, at);
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), -1);

    /* A query is not an answer. */
    header(&m, 0, 0, 0);
    question(&m, "q.test", DNS_QTYPE_A);
    m.b[2] = 0x01;
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), -1);

    /* An rdlength past the end. */
    at = one_answer(&m, "a.test", DNS_QTYPE_A, 10);
    put32(&m, 1);
    rr_end(&m, at);
    m.b[at - 1] = 200;
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), -1);

    /* An MX whose exchange runs past its rdata. */
    at = one_answer(&m, "a.test", DNS_QTYPE_MX, 10);
    put16(&m, 10);
    put_name(&m, "mx.a.test", 0);
    rr_end(&m, at);
    m.b[at - 1] = 5;
    assert_int_equal(dns_parse_reply(m.b, m.n, &r), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalise),       cmocka_unit_test(test_reverse),
        cmocka_unit_test(test_query_round_trip), cmocka_unit_test(test_mx_answer),
        cmocka_unit_test(test_ptr_and_cname),   cmocka_unit_test(test_negative),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
