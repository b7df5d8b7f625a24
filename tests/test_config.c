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

/* parse() of the one line "key = value", named in the test's output. */
static unsigned parse_setting(struct config *c, const char *key, const char *value,
                              struct reports *r)
{
    char line[300];

    snprintf(line, sizeof(line), "%s = %s\n", key, value);
    print_message("case: %s", line);
    return parse(c, line, r);
}

/* A value or a line, and whether the parser takes it. */
struct accepted_case {
    const char *text;
    int ok;
};

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
        unsigned problems = parse_setting(c, "idle_timeout", cases[i].text, &r);

        if (cases[i].want < 0) {
            assert_int_equal(problems, 1);
            assert_non_null(strstr(r.lines[0], "relaywatch.conf:1: idle_timeout"));
            assert_true(c->idle_timeout == 330.0); /* unchanged */
        } else {
            assert_int_equal(problems, 0);
            assert_true(c->idle_timeout == cases[i].want);
        }
        config_free(c);
    }
}

/* A line without '=' is reported by its first word: the rest may be a secret. */
static void test_missing_equals_hides_the_value(void **state)
{
    struct config *c = config_new();
    struct reports r;

    (void)state;
    assert_int_equal(parse(c, "redis_password s3cret-value\n", &r), 1);
    assert_string_equal(r.lines[0], "relaywatch.conf:1: missing '=' after 'redis_password'");
    config_free(c);
}

/* host_id names this host in store keys: at most 63 characters. */
static void test_host_id_length(void **state)
{
    char line[128];
    struct config *c = config_new();
    struct reports r;

    (void)state;
    snprintf(line, sizeof(line), "host_id = %.63s\n",
             "mx-123456789012345678901234567890123456789012345678901234567890");
    assert_int_equal(strlen(line), strlen("host_id = \n") + 63);
    assert_int_equal(parse(c, line, &r), 0);
    assert_int_equal(strlen(c->host_id), 63);
    snprintf(line, sizeof(line), "host_id = x%.63s\n",
             "mx-123456789012345678901234567890123456789012345678901234567890");
    assert_int_equal(parse(c, line, &r), 1);
    assert_non_null(strstr(r.lines[0], "host_id: longer than 63 characters"));
    assert_int_equal(strlen(c->host_id), 63); /* unchanged */
    config_free(c);
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
    assert_string_equal(r.lines[2], "relaywatch.conf:5: missing '=' after 'no'");
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
    static const struct accepted_case cases[] = {
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

        assert_int_equal(parse_setting(c, "listen", cases[i].text, &r), cases[i].ok ? 0 : 1);
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
    static const struct accepted_case cases[] = {
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
        /* Only a unix socket tells who is calling. */
        {"control_socket = unix:/run/x/control.sock", 1},
        {"control_socket =", 1},
        {"control_socket = inet:127.0.0.1:10042", 0},
        {"control_socket = unix:/a unix:/b", 0},
        {"control_group = mailadm", 1},
        {"control_group = 1234", 1},
        {"control_group = root", 0},
        {"control_group = 0", 0},
        {"control_group = a b", 0},
        {"control_group = -x", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *c = config_new();
        struct reports r;

        print_message("case: %s\n", cases[i].text);
        assert_int_equal(parse(c, cases[i].text, &r), cases[i].ok ? 0 : 1);
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

/* After the override, config_check finds exactly one problem: expected. */
static void check_one_problem(struct config *c, const char *override, const char *expected)
{
    struct reports r;

    memset(&r, 0, sizeof(r));
    config_parse_override(c, override, collect, &r);
    memset(&r, 0, sizeof(r));
    assert_int_equal(config_check(c, collect, &r), 1);
    assert_string_equal(r.lines[0], expected);
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
    check_one_problem(c, "listen=inet:127.0.0.1:9",
                      "-o:0: http_listen: 'inet:127.0.0.1:9' is also a policy listen endpoint");
    /* Nor may the control socket be another listener. */
    config_parse_override(c, "listen=unix:/tmp/p.sock", collect, &r);
    config_parse_override(c, "http_listen=unix:/tmp/h.sock", collect, &r);
    check_one_problem(c, "control_socket=unix:/tmp/h.sock",
                      "-o:0: control_socket: 'unix:/tmp/h.sock' is also a http_listen endpoint");
    check_one_problem(c, "control_socket=unix:/tmp/p.sock",
                      "-o:0: control_socket: 'unix:/tmp/p.sock' is also a policy listen "
                      "endpoint");
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

/* Every key has its entry in relaywatch.conf(5): .TP, then \fBkey\fR (default: ...). */
static void test_man_page_documents_every_key(void **state)
{
    const char *const *names = config_key_names();
    FILE *f = fopen(RELAYWATCH_CONF_MAN, "rb");
    static char text[1 << 20];
    size_t n;

    (void)state;
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    for (size_t i = 0; names[i] != NULL; i++) {
        char entry[128];

        snprintf(entry, sizeof(entry), "\n.TP\n\\fB%s\\fR (default: ", names[i]);
        if (strstr(text, entry) == NULL)
            fail_msg("relaywatch.conf.5 has no entry for the key %s", names[i]);
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

/* The text a writer puts out, NUL-terminated (free it). */
static char *written(void (*write_defaults)(FILE *), const struct config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    if (write_defaults)
        write_defaults(out);
    else
        config_write_set(c, out);
    assert_int_equal(fclose(out), 0);
    return text;
}

/* -p: one "name = value" line per key in table order; every default parses, and -n of a file
 * that sets every key to it gives the same text back. */
static void test_write_defaults(void **state)
{
    const char *const *names = config_key_names();
    char *text = written(config_write_defaults, NULL), *again;
    struct config *c = config_new(), *d = config_new();
    struct reports r;
    char *line = text, host_line[300];
    size_t n = 0;

    (void)state;
    for (; *line; n++) {
        char *nl = strchr(line, '\n');
        size_t len = strlen(names[n]);

        assert_non_null(nl);
        assert_non_null(names[n]);
        print_message("line: %.*s\n", (int)(nl - line), line);
        assert_memory_equal(line, names[n], len);
        /* "name = value", or "name =" for an empty value. */
        assert_true((strncmp(line + len, " = ", 3) == 0 && line + len + 3 < nl) ||
                    strncmp(line + len, " =\n", 3) == 0);
        line = nl + 1;
    }
    assert_null(names[n]);
    assert_non_null(strstr(text, "\nmax_connections = 2048\n"));
    assert_non_null(strstr(text, "\nredis_password =\n"));
    assert_non_null(strstr(text, "\nwindows = 1m, 10m, 1h\n"));
    snprintf(host_line, sizeof(host_line), "\nhost_id = %s\n", c->host_id);
    assert_non_null(strstr(text, host_line));

    assert_int_equal(parse(d, text, &r), 0);
    assert_int_equal(config_check(d, collect, &r), 0);
    again = written(NULL, d);
    assert_string_equal(again, text);
    free(again);
    free(text);
    config_free(c);
    config_free(d);
}

/* -n: only what the file and -o set, as written, the last value of a key set twice; the
 * password never. */
static void test_write_set(void **state)
{
    struct config *c = config_new();
    struct reports r;
    char *text = written(NULL, c);

    (void)state;
    assert_string_equal(text, "");
    free(text);
    assert_int_equal(parse(c, "idle_timeout = 5m\nredis_password = s3cret\nmax_connections = 9\n"
                              "windows = 1m,\n \t 10m\nidle_timeout = 6m\nlimit_window = 10m\n",
                           &r),
                     0);
    assert_int_equal(config_parse_override(c, "dns_lookups =", collect, &r), 0);
    assert_int_equal(config_parse_override(c, "max_connections=bogus", collect, &r), 1);
    text = written(NULL, c);
    assert_string_equal(text, "max_connections = 9\n"
                              "idle_timeout = 6m\n"
                              "redis_password = (set)\n"
                              "windows = 1m, 10m\n"
                              "dns_lookups =\n"
                              "limit_window = 10m\n");
    free(text);
    assert_int_equal(config_parse_override(c, "redis_password=", collect, &r), 0);
    text = written(NULL, c);
    assert_non_null(strstr(text, "\nredis_password =\n"));
    free(text);
    config_free(c);
}

struct warnings {
    unsigned count;
    char text[4][600];
};

static void collect_warning(void *ctx, const char *message)
{
    struct warnings *w = ctx;

    if (w->count < 4)
        snprintf(w->text[w->count], sizeof(w->text[0]), "%s", message);
    w->count++;
}

/* The restart warnings for a reload from the configuration `running` to `next`. */
static unsigned restarts(const char *running, const char *next, struct warnings *w)
{
    struct config *a = config_new(), *b = config_new();
    struct reports r;
    unsigned n;

    assert_int_equal(parse(a, running, &r), 0);
    assert_int_equal(parse(b, next, &r), 0);
    memset(w, 0, sizeof(*w));
    n = config_restart_changes(a, b, collect_warning, w);
    assert_int_equal(n, w->count);
    config_free(a);
    config_free(b);
    return n;
}

static void test_restart_keys(void **state)
{
    /* Every restart-only key, a value that differs from its default, and how its group's
     * warning names it. */
    static const struct {
        const char *key, *value, *named;
    } restart_only[] = {
        {"windows", "1m", "windows"},
        {"culprit_slots", "5", "culprit_slots"},
        {"session_slots", "128", "session_slots"},
        {"throttle_slots", "32", "throttle_slots"},
        {"fast_slots", "32", "fast_slots"},
        {"user", "nobody", "user"},
        {"postfix_config_directory", "/etc/postfix-out", "postfix_config_directory"},
        {"quarantine_slots", "32", "quarantine_slots"},
        {"store", "redis://127.0.0.1:6379", "store"},
        {"host_id", "another-host", "host_id"},
        {"redis_password", "x", "redis_password"},
        {"redis_username", "rw", "redis_username"},
        {"store_flush_interval", "2s", "store_* keys"},
        {"store_timeout", "1s", "store_* keys"},
        {"store_retention", "2d", "store_* keys"},
        {"store_backlog", "2h", "store_* keys"},
        {"resolver", "127.0.0.1", "resolver"},
        {"dns_timeout", "1s", "dns_timeout"},
        {"dns_tries", "3", "dns_tries"},
        {"dns_max_outstanding", "10", "dns_max_outstanding"},
        {"dns_cache_size", "100", "dns_cache_*"},
        {"dns_cache_max_ttl", "1h", "dns_cache_*"},
        {"dns_lookups", "", "turning dns_lookups on or off"},
        {"control_socket", "unix:/tmp/c.sock", "control_socket"},
        {"control_group", "mailadm", "control_group"},
    };
    /* Keys that take effect on SIGHUP, changed to another valid value. */
    static const char *const reloadable[] = {
        "max_connections = 5", "idle_timeout = 1m", "dns_wait = 1s", "log_requests = yes",
        "culprit_action = DUNNO", "quarantine = no", "local_domains = example.org",
        "dns_lookups = sender_mx", "listen = inet:127.0.0.1:1", "http_listen =",
        "count_messages_at = rcpt", "limit_count = messages", "detect_alpha_band = 0.3-0.6",
        "never_throttle_clients = 10.0.0.0/8", "unix_socket_mode = 0600",
        "quarantine_messages = 5", "fast_window = 5s", "baseline_start = mx=4",
        "tdns_client = 192.0.2.1", "alert_command = /bin/true",
    };
    struct warnings w;

    (void)state;
    for (size_t i = 0; i < sizeof(restart_only) / sizeof(restart_only[0]); i++) {
        char next[200], prefix[100];

        snprintf(next, sizeof(next), "%s = %s\n", restart_only[i].key, restart_only[i].value);
        snprintf(prefix, sizeof(prefix), "%s changed: ", restart_only[i].key);
        print_message("case: %s", next);
        assert_int_equal(restarts("", next, &w), 1);
        assert_memory_equal(w.text[0], prefix, strlen(prefix));
        assert_non_null(strstr(w.text[0] + strlen(prefix), restart_only[i].named));
        assert_non_null(strstr(w.text[0], "take effect at the next restart"));
    }
    for (size_t i = 0; i < sizeof(reloadable) / sizeof(reloadable[0]); i++) {
        print_message("case: %s\n", reloadable[i]);
        assert_int_equal(restarts("", reloadable[i], &w), 0);
    }
    /* The same value written another way is no change. */
    assert_int_equal(restarts("", "windows = 1m 10m,1h\ndns_timeout = 2000ms\n"
                                  "dns_cache_max_ttl = 24h\nculprit_slots = 0100\n",
                              &w),
                     0);
    /* Turning the quarantine on waits for a restart, turning it off does not. */
    assert_int_equal(restarts("quarantine = no\n", "quarantine = yes\n", &w), 1);
    assert_string_equal(w.text[0], "quarantine changed: user, postfix_config_directory, "
                                   "quarantine_slots, control_socket, control_group and turning "
                                   "quarantine on take effect at the next restart (they are "
                                   "fixed when root is given up)");
    assert_int_equal(restarts("dns_lookups =\n", "dns_lookups = client_ptr\n", &w), 1);
    assert_int_equal(restarts("dns_lookups = , \n", "dns_lookups =\n", &w), 0);
    /* One warning per group, naming every changed key of it. */
    assert_int_equal(restarts("", "fast_slots = 64\nresolver = 127.0.0.1\nculprit_slots = 7\n",
                              &w),
                     2);
    assert_string_equal(w.text[0], "culprit_slots, fast_slots changed: windows, culprit_slots, "
                                   "session_slots, throttle_slots and fast_slots take effect at "
                                   "the next restart; counting goes on with the running values");
    assert_non_null(strstr(w.text[1], "resolver changed: resolver, dns_timeout"));
}

/* The bounds of the numeric keys, a row each: "key least below greatest above", where below
 * and above are one past each bound, refused ("-": nothing below, as 0 is the least). */
static void test_numeric_bounds(void **state)
{
    static const char *const rows[] = {
        "max_connections       1     0     1000000   1000001",
        "idle_timeout          1s    999ms 365d      366d",
        "shutdown_timeout      0     -     365d      366d",
        "culprit_slots         1     0     1000      1001",
        "session_slots         64    63    16777216  16777217",
        "session_timeout       1s    0.5s  1d        400d",
        "transaction_timeout   1s    0.5s  1d        400d",
        "store_flush_interval  100ms 99ms  1d        400d",
        "store_timeout         100ms 99ms  1d        400d",
        "store_retention       1h    3599s 365d      366d",
        "store_backlog         2m    119s  1d        86401s",
        "dns_timeout           10ms  9ms   60s       61s",
        "dns_tries             1     0     10        11",
        "dns_wait              0     -     60s       60001ms",
        "dns_max_outstanding   1     0     65536     65537",
        "dns_cache_size        16    15    4194304   4194305",
        "dns_cache_max_ttl     0     -     365d      366d",
        "tdns_stale_after      1s    0.5s  1d        400d",
        "detect_window         1m    59s   1d        400d",
        "detect_mx_factor      1     0.99  1000000   1000001",
        "detect_min_mx         1     0     100000000 100000001",
        "detect_domains_factor 1     0.99  1000000   1000001",
        "detect_min_domains    1     0     100000000 100000001",
        "detect_min_messages   1     0     100000000 100000001",
        "detect_alpha_factor   1     0.99  100       100.5",
        "baseline_hour_days    0     -     365       366",
        "culprit_min_share     0     -0.1  1         1.01",
        "culprit_min_domains   1     0     100000000 100000001",
        "throttle_cooldown     1s    0.5s  1d        400d",
        "throttle_slots        16    15    1000000   1000001",
        "limit_window          1m    59s   1d        400d",
        "limit_sasl_username   0     -     1000000000 1000000001",
        "limit_domains         0     -     1000000000 1000000001",
        "fast_window           100ms 99ms  1d        400d",
        "fast_min_domains      1     0     1000000   1000001",
        "fast_min_mx           1     0     1000000   1000001",
        "fast_factor           1     0.99  1000      1000.5",
        "fast_halflife         1m    59s   1d        400d",
        "fast_slots            16    15    65536     65537",
        "fast_learn_period     1s    0.5s  1d        400d",
        "fast_site_min_keys    1     0     65536     65537",
        "quarantine_lookback   1s    0.5s  1d        400d",
        "quarantine_messages   1     0     100000    100001",
        "quarantine_slots      16    15    65536     65537",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char key[40], low[16], below[16], high[16], above[16];
        const char *values[4] = {low, high, below, above};
        int fields = sscanf(rows[i], "%39s %15s %15s %15s %15s", key, low, below, high, above);

        assert_int_equal(fields, 5);
        for (size_t v = 0; v < 4; v++) {
            struct config *c;
            struct reports r;

            if (strcmp(values[v], "-") == 0)
                continue;
            c = config_new();
            assert_int_equal(parse_setting(c, key, values[v], &r), v < 2 ? 0 : 1);
            config_free(c);
        }
    }
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
        cmocka_unit_test(test_write_defaults),
        cmocka_unit_test(test_write_set),
        cmocka_unit_test(test_restart_keys),
        cmocka_unit_test(test_numeric_bounds),
        cmocka_unit_test(test_dns_keys),
        cmocka_unit_test(test_defense_keys),
        cmocka_unit_test(test_man_page_documents_every_key),
        cmocka_unit_test(test_nul_and_key_names),
        cmocka_unit_test(test_missing_equals_hides_the_value),
        cmocka_unit_test(test_host_id_length),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
