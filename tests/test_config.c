/* Unit tests of the main.cf-style configuration parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

struct reports {
    unsigned count;
    char lines[16][600];
};

static void collect(void *ctx, const char *source, unsigned line, const char *message)
{
    struct reports *r = ctx;

    if (r->count < 16)
        snprintf(r->lines[r->count], sizeof(r->lines[0]), "%s:%u: %s", source, line, message);
    r->count++;
}

static unsigned parse(struct config *c, const char *text, struct reports *r)
{
    memset(r, 0, sizeof(*r));
    return config_parse_buffer(c, text, strlen(text), "relaywatch.conf", collect, r);
}

static void test_defaults(void **state)
{
    struct config *c = config_new();
    struct reports r = {0};

    (void)state;
    assert_int_equal(c->listen_count, 1);
    assert_int_equal(c->listen[0].kind, ENDPOINT_INET);
    assert_string_equal(c->listen[0].host, "127.0.0.1");
    assert_string_equal(c->listen[0].port, "10040");
    assert_non_null(c->http_listen);
    assert_string_equal(c->http_listen->spec, "inet:127.0.0.1:10041");
    assert_string_equal(c->store, "memory");
    assert_string_equal(c->redis_password, "");
    assert_string_equal(c->resolver, "system");
    assert_string_equal(c->tdns_client, "");
    assert_int_equal(c->local_domain_count, 0);
    assert_true(strlen(c->host_id) > 0);
    assert_int_equal(c->max_connections, 2048);
    assert_true(c->idle_timeout > 300); /* longer than Postfix's max_idle */
    assert_int_equal(c->unix_socket_mode, 0666);
    assert_false(c->log_requests);
    assert_int_equal(config_check(c, collect, &r), 0);
    config_free(c);
}

static void test_full_file(void **state)
{
    const char *text = "# RelayWatch\n"
                       "listen = inet:127.0.0.1:10040, unix:/run/relaywatch/policy.sock\n"
                       "    inet:[::1]:10040\n"
                       "\n"
                       "   # an indented comment does not end the list above\n"
                       "unix_socket_mode = 0660\n"
                       "max_connections=5000\n"
                       "idle_timeout = 10m\r\n"
                       "shutdown_timeout = 3\n"
                       "log_requests = YES\n"
                       "host_id = mx1.example.org\n"
                       "local_domains = Example.ORG,example.net\n"
                       "\texample.com\n"
                       "resolver = 127.0.0.53, 127.0.0.1:5353 [::1]:53\n"
                       "tdns_client = 198.51.100.25\n"
                       "redis_password = s3cret = with equals\n"
                       "http_listen =\n";
    struct config *c = config_new();
    struct reports r;

    (void)state;
    assert_int_equal(parse(c, text, &r), 0);
    assert_int_equal(c->listen_count, 3);
    assert_string_equal(c->listen[1].path, "/run/relaywatch/policy.sock");
    assert_int_equal(c->listen[1].kind, ENDPOINT_UNIX);
    assert_string_equal(c->listen[2].host, "::1");
    assert_string_equal(c->listen[2].port, "10040");
    assert_int_equal(c->unix_socket_mode, 0660);
    assert_int_equal(c->max_connections, 5000);
    assert_true(c->idle_timeout == 600.0);
    assert_true(c->shutdown_timeout == 3.0);
    assert_true(c->log_requests);
    assert_string_equal(c->host_id, "mx1.example.org");
    assert_int_equal(c->local_domain_count, 3);
    assert_string_equal(c->local_domains[0], "example.org");
    assert_string_equal(c->local_domains[2], "example.com");
    assert_string_equal(c->tdns_client, "198.51.100.25");
    assert_string_equal(c->redis_password, "s3cret = with equals");
    assert_null(c->http_listen);
    config_free(c);
}

static void test_durations(void **state)
{
    static const struct {
        const char *text;
        double want; /* < 0: refused */
    } cases[] = {
        {"45", 45},    {"45s", 45},   {"2m", 120},  {"1h", 3600}, {"1d", 86400},
        {"1.5m", 90},  {"0s", -1},    {"10x", -1},  {"m", -1},    {"-5s", -1},
        {"5 s", -1},   {"10ms", -1},  {"1500ms", 1.5},  {"", -1},     {"400d", -1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *c = config_new();
        struct reports r;
        char line[64];

        snprintf(line, sizeof(line), "idle_timeout = %s\n", cases[i].text);
        print_message("case: %s", line);
        if (cases[i].want < 0) {
            assert_int_equal(parse(c, line, &r), 1);
            assert_non_null(strstr(r.lines[0], "relaywatch.conf:1: idle_timeout"));
            assert_true(c->idle_timeout == 330.0); /* unchanged */
        } else {
            assert_int_equal(parse(c, line, &r), 0);
            assert_true(c->idle_timeout == cases[i].want);
        }
        config_free(c);
    }
}

static void test_every_problem_with_its_line(void **state)
{
    const char *text = "listen = inet:127.0.0.1:10040\n"  /* 1 */
                       "lisen = inet:127.0.0.1:10040\n"   /* 2: typo */
                       "# comment\n"                      /* 3 */
                       "max_connections = lots\n"         /* 4 */
                       "no equals sign here\n"            /* 5 */
                       "listen = inet:127.0.0.1:99999\n"  /* 6 */
                       "store = redis://nohostport\n"     /* 7 */
                       "listen = tcp:1.2.3.4:5,\n"        /* 8 */
                       "   unix:relative.sock\n"          /* 9: continues 8 */
                       "tdns_client = not-an-ip\n"        /* 10 */
                       "= value\n"                        /* 11 */
                       "log_requests = maybe\n";          /* 12 */
    struct config *c = config_new();
    struct reports r;

    (void)state;
    assert_int_equal(parse(c, text, &r), 9);
    assert_string_equal(r.lines[0], "relaywatch.conf:2: unknown configuration key 'lisen'");
    assert_non_null(strstr(r.lines[1], "relaywatch.conf:4: max_connections"));
    assert_non_null(strstr(r.lines[2], "relaywatch.conf:5: missing '='"));
    assert_non_null(strstr(r.lines[3], "relaywatch.conf:6: listen: bad port"));
    assert_non_null(strstr(r.lines[4], "relaywatch.conf:7: store"));
    assert_non_null(strstr(r.lines[5], "relaywatch.conf:8: listen: bad endpoint 'tcp:1.2.3.4:5'"));
    assert_non_null(strstr(r.lines[6], "relaywatch.conf:10: tdns_client"));
    assert_non_null(strstr(r.lines[7], "relaywatch.conf:11: missing name"));
    assert_non_null(strstr(r.lines[8], "relaywatch.conf:12: log_requests"));
    config_free(c);
}

static void test_endpoints(void **state)
{
    static const struct {
        const char *value;
        int ok;
    } cases[] = {
        {"inet:127.0.0.1:1", 1},
        {"inet:localhost:10040", 1},
        {"inet:[::1]:10040", 1},
        {"unix:/tmp/x.sock", 1},
        {"inet:127.0.0.1:10040 inet:127.0.0.1:10040", 0},
        {"inet:127.0.0.1", 0},
        {"inet::10040", 0},
        {"inet:::1:10040", 0},
        {"inet:[::1]10040", 0},
        {"inet:[]:10040", 0},
        {"inet:[nonsense]:10040", 0},
        {"inet:[127.0.0.1]:10040", 0},
        {"inet:127.0.0.1:0", 0},
        {"inet:127.0.0.1:65536", 0},
        {"inet:127.0.0.1:10a", 0},
        {"unix:", 0},
        {"unix:sock", 0},
        {"unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         0},
        {"", 0},
        {",", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *c = config_new();
        struct reports r;
        char line[300];

        snprintf(line, sizeof(line), "listen = %s\n", cases[i].value);
        print_message("case: %s", line);
        assert_int_equal(parse(c, line, &r), cases[i].ok ? 0 : 1);
        if (!cases[i].ok) {
            /* A refused value leaves the previous one in place. */
            assert_int_equal(c->listen_count, 1);
            assert_string_equal(c->listen[0].spec, "inet:127.0.0.1:10040");
        }
        config_free(c);
    }
}

static void test_store_and_resolver_values(void **state)
{
    static const struct {
        const char *line;
        int ok;
    } cases[] = {
        {"store = memory", 1},
        {"store = redis://127.0.0.1:6379", 1},
        {"store = redis://127.0.0.1:6379/2", 1},
        {"store = redis+unix:///run/redis/redis.sock", 1},
        {"store = redis+unix:///run/redis/redis.sock?db=3", 1},
        {"store = redis://127.0.0.1", 0},
        {"store = redis://127.0.0.1:6379/x", 0},
        {"store = redis+unix://relative", 0},
        {"store = redis+unix:///x?database=1", 0},
        {"store = memcached", 0},
        {"resolver = system", 1},
        {"resolver = 127.0.0.1", 1},
        {"resolver = ::1", 1},
        {"resolver = 127.0.0.1:53, [::1]:5353", 1},
        {"resolver = system 127.0.0.1", 0},
        {"resolver = dns.example", 0},
        {"resolver = 127.0.0.1:0", 0},
        {"resolver =", 0},
        {"host_id = mx 1", 0},
        {"host_id = mx{1}", 0},
        {"host_id =", 0},
        {"unix_socket_mode = 0600", 1},
        {"unix_socket_mode = 0999", 0},
        {"unix_socket_mode = 01777", 0},
        {"max_connections = 0", 0},
        {"max_connections = 1000001", 0},
        {"local_domains = a..b/c", 0},
        {"http_listen = inet:127.0.0.1:1 inet:127.0.0.1:2", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *c = config_new();
        struct reports r;

        print_message("case: %s\n", cases[i].line);
        assert_int_equal(parse(c, cases[i].line, &r), cases[i].ok ? 0 : 1);
        config_free(c);
    }
}

static void test_continuation_without_setting(void **state)
{
    struct config *c = config_new();
    struct reports r;

    (void)state;
    assert_int_equal(parse(c, "\n  inet:127.0.0.1:1\nlisten = inet:127.0.0.1:2\n", &r), 1);
    assert_non_null(strstr(r.lines[0], "relaywatch.conf:2: continuation line"));
    assert_string_equal(c->listen[0].port, "2");
    config_free(c);
}

static void test_overrides_and_checks(void **state)
{
    struct config *c = config_new();
    struct reports r = {0};

    (void)state;
    assert_int_equal(config_parse_override(c, "max_connections=77", collect, &r), 0);
    assert_int_equal(c->max_connections, 77);
    assert_int_equal(config_parse_override(c, "listen = unix:/tmp/a.sock", collect, &r), 0);
    assert_string_equal(c->listen[0].path, "/tmp/a.sock");
    assert_int_equal(config_parse_override(c, "nosuchkey=1", collect, &r), 1);
    assert_string_equal(r.lines[0], "-o:0: unknown configuration key 'nosuchkey'");
    assert_int_equal(config_parse_override(c, "novalue", collect, &r), 1);
    assert_int_equal(config_check(c, collect, &r), 0);

    assert_int_equal(config_parse_override(c, "store=redis://127.0.0.1:6379", collect, &r), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(config_check(c, collect, &r), 0);

    /* The HTTP endpoint may not also be a policy endpoint; the problem is where it was set. */
    config_parse_override(c, "store=memory", collect, &r);
    config_parse_override(c, "http_listen=inet:127.0.0.1:9", collect, &r);
    config_parse_override(c, "listen=inet:127.0.0.1:9", collect, &r);
    memset(&r, 0, sizeof(r));
    assert_int_equal(config_check(c, collect, &r), 1);
    assert_string_equal(r.lines[0], "-o:0: http_listen: 'inet:127.0.0.1:9' is also a policy "
                                    "listen endpoint");
    config_free(c);
}

static void test_dns_keys(void **state)
{
    struct config *c = config_new();
    struct reports r;

    (void)state;
    /* Defaults: every lookup the study's server made, answers never wait. */
    assert_int_equal(c->dns_lookups, DNS_LOOKUP_CLIENT_PTR | DNS_LOOKUP_CLIENT_A |
                                         DNS_LOOKUP_SENDER_MX | DNS_LOOKUP_RECIPIENT_MX);
    assert_true(c->dns_wait == 0);
    assert_true(c->dns_timeout == 2.0);
    assert_int_equal(c->dns_tries, 2);
    assert_int_equal(c->dns_max_outstanding, 1000);
    assert_int_equal(c->dns_cache_size, 10000);
    assert_true(c->dns_cache_max_ttl == 86400);

    assert_int_equal(parse(c, "dns_lookups = recipient_mx,sender_mx\ndns_wait = 250ms\n"
                              "dns_timeout = 300ms\ndns_cache_max_ttl = 0\n",
                           &r),
                     0);
    assert_int_equal(c->dns_lookups, DNS_LOOKUP_SENDER_MX | DNS_LOOKUP_RECIPIENT_MX);
    assert_true(c->dns_wait == 0.25);
    assert_true(c->dns_timeout == 0.3);
    assert_true(c->dns_cache_max_ttl == 0);
    assert_int_equal(parse(c, "dns_lookups =\n", &r), 0);
    assert_int_equal(c->dns_lookups, 0);

    assert_int_equal(parse(c, "dns_lookups = client_ptr, mx\n", &r), 1);
    assert_string_equal(r.lines[0], "relaywatch.conf:1: dns_lookups: 'mx' is not client_ptr, "
                                    "client_a, sender_mx or recipient_mx");
    assert_int_equal(parse(c, "dns_lookups = client_a\n", &r), 1);
    assert_non_null(strstr(r.lines[0], "it needs client_ptr"));
    assert_int_equal(c->dns_lookups, 0); /* unchanged */
    assert_int_equal(parse(c, "dns_wait = 61s\ndns_tries = 0\ndns_timeout = 5ms\n", &r), 3);
    assert_int_equal(parse(c, "dns_max_outstanding = 65537\ndns_cache_size = 15\n", &r), 2);

    /* Every query in flight holds a cache entry. */
    assert_int_equal(parse(c, "dns_cache_size = 100\ndns_max_outstanding = 100\n", &r), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(config_check(c, collect, &r), 1);
    assert_non_null(strstr(r.lines[0], "relaywatch.conf:2: dns_max_outstanding: 100 must be below "
                                       "dns_cache_size (100)"));
    config_free(c);
}

static void test_defense_keys(void **state)
{
    struct config *c = config_new();
    struct reports r;

    (void)state;
    assert_string_equal(c->culprit_action,
                        "DEFER 4.7.1 Too much relay mail from you: sending paused, try again later");
    assert_string_equal(c->loud_relay_action, "DUNNO");
    assert_true(c->detect_window == 600 && c->detect_loud_after == 20);
    assert_true(c->baseline_start[0] == 2 && c->baseline_start[7] == 0.5);
    assert_false(c->monitor_only);
    memset(&r, 0, sizeof(r));
    assert_int_equal(config_check(c, collect, &r), 0);

    assert_int_equal(parse(c, "culprit_action = HOLD quarantined by relaywatch\n"
                              "loud_relay_action = defer_if_permit 4.7.1 busy\n"
                              "limit_action = 450 4.7.1 slow down\n"
                              "baseline_start = mx=5, alpha=0.4\n"
                              "detect_alpha_band = 0.35-0.70\n"
                              "never_throttle_clients = 192.0.2.0/24, 2001:db8::1\n"
                              "never_throttle_senders = @Lists.Example.COM, news@Example.org\n"
                              "limit_count = messages\nmonitor_only = yes\n"
                              "alert_command = /usr/local/bin/page --now\n",
                           &r),
                     0);
    assert_string_equal(c->culprit_action, "HOLD quarantined by relaywatch");
    assert_true(c->baseline_start[0] == 5 && c->baseline_start[7] == 0.4);
    assert_true(c->baseline_start[1] == 10); /* not given: built in */
    assert_true(c->detect_alpha_low == 0.35 && c->detect_alpha_high == 0.70);
    assert_string_equal(c->never_throttle_senders[0], "lists.example.com");
    assert_string_equal(c->never_throttle_senders[1], "news@example.org");
    assert_true(c->limit_count_messages && c->monitor_only);
    assert_true(config_address_in("192.0.2.77", 10, c->never_throttle_nets, 2));
    assert_false(config_address_in("192.0.3.1", 9, c->never_throttle_nets, 2));
    assert_true(config_address_in("2001:db8::1", 11, c->never_throttle_nets, 2));
    assert_false(config_address_in("2001:db8::2", 11, c->never_throttle_nets, 2));

    assert_int_equal(parse(c, "culprit_action = DISCARD\n", &r), 1);
    assert_non_null(strstr(r.lines[0], "relaywatch.conf:1: culprit_action: 'DISCARD' is not DUNNO"));
    assert_int_equal(parse(c, "culprit_action = DUNNO please\n", &r), 1);
    assert_int_equal(parse(c, "culprit_action = 250 ok\n", &r), 1);
    assert_int_equal(parse(c, "culprit_action = 4xx nope\n", &r), 1);
    assert_int_equal(parse(c, "baseline_start = mx=1, bogus=2\n", &r), 1);
    assert_non_null(strstr(r.lines[0], "'bogus=2' is not NAME=VALUE"));
    assert_int_equal(parse(c, "detect_alpha_band = 0.7-0.3\n", &r), 1);
    assert_int_equal(parse(c, "never_throttle_clients = 10.0.0.0/33\n", &r), 1);
    assert_int_equal(parse(c, "culprit_min_share = 1.5\n", &r), 1);
    assert_int_equal(parse(c, "limit_count = bytes\n", &r), 1);
    assert_int_equal(parse(c, "alert_command = page\n", &r), 1);
    assert_int_equal(parse(c, "detect_window = 30s\n", &r), 1);

    /* The windows the detector and the limits judge must be counted. */
    assert_int_equal(parse(c, "detect_window = 5m\nlimit_window = 2h\n", &r), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(config_check(c, collect, &r), 2);
    assert_non_null(strstr(r.lines[0], "relaywatch.conf:1: detect_window: 300s is not one of the windows"));
    assert_non_null(strstr(r.lines[1], "relaywatch.conf:2: limit_window: 7200s is not one of the windows"));
    config_free(c);
}

/* Every key has its row in a README table: | `key` | default | meaning |. */
static void test_readme_documents_every_key(void **state)
{
    const char *const *names = config_key_names();
    FILE *f = fopen(RELAYWATCH_README, "rb");
    static char text[1 << 20];
    size_t n;

    (void)state;
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    for (size_t i = 0; names[i] != NULL; i++) {
        char row[128];

        snprintf(row, sizeof(row), "\n| `%s` |", names[i]);
        if (strstr(text, row) == NULL)
            fail_msg("README.md has no row for the key %s", names[i]);
    }
}

static void test_nul_and_key_names(void **state)
{
    const char text[] = "max_connections = 5\0\nlog_requests = yes\n";
    struct config *c = config_new();
    struct reports r;
    const char *const *names = config_key_names();
    size_t n = 0;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(config_parse_buffer(c, text, sizeof(text) - 1, "f", collect, &r), 1);
    assert_non_null(strstr(r.lines[0], "f:1: NUL"));
    assert_true(c->log_requests);
    while (names[n] != NULL)
        n++;
    assert_true(n >= 13);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_every_problem_with_its_line),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_store_and_resolver_values),
        cmocka_unit_test(test_continuation_without_setting),
        cmocka_unit_test(test_overrides_and_checks),
        cmocka_unit_test(test_dns_keys),
        cmocka_unit_test(test_defense_keys),
        cmocka_unit_test(test_readme_documents_every_key),
        cmocka_unit_test(test_nul_and_key_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
