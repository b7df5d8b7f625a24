/* For the unit tests that run the engine as relaywatchd wires it: a configuration parsed from
 * text, the counting over it and the defence over both. Header only, included after cmocka.h
 * (its functions assert); what engine_open makes, engine_close frees. */
#ifndef RELAYWATCH_TESTS_ENGINE_SETUP_H
#define RELAYWATCH_TESTS_ENGINE_SETUP_H

#include <stdio.h>

#include "config.h"
#include "defense.h"
#include "traffic.h"

/* The tests' configuration: no DNS lookups, example.edu local, host_id as given, then the
 * case's own lines (overrides); it must parse and check without a problem. */
static inline void engine_open(struct config **cfg, struct traffic **t, struct defense **d,
                               const char *host_id, const char *overrides)
{
    char buf[4096];
    int n = snprintf(buf, sizeof(buf),
                     "dns_lookups =\nlocal_domains = example.edu\nhost_id = %s\n%s\n", host_id,
                     overrides);

    assert_true(n > 0 && (size_t)n < sizeof(buf));
    *cfg = config_new();
    assert_int_equal(config_parse_buffer(*cfg, buf, (size_t)n, "test", config_report_stderr,
                                         NULL),
                     0);
    assert_int_equal(config_check(*cfg, config_report_stderr, NULL), 0);
    *t = traffic_new(*cfg);
    *d = defense_new(*cfg, *t);
}

static inline void engine_close(struct config *cfg, struct traffic *t, struct defense *d)
{
    defense_free(d);
    traffic_free(t);
    config_free(cfg);
}

#endif
