/*
 * status: the operators' views of the daemon, rendered from its counters:
 * GET /status (JSON, the same as `relaywatch status --json`),
 * GET /status?format=text (for a person) and GET /metrics (Prometheus).
 */
#ifndef RELAYWATCH_STATUS_H
#define RELAYWATCH_STATUS_H

#include <stdint.h>

#include "decision.h"
#include "policy_request.h"

struct config;
struct traffic;
struct http_body;
struct policy_server_stats;
struct store_state;
struct resolver_stats;
struct defense;
struct hold_service;

#define STATUS_STATES (PS_OTHER + 1)

struct status_sources {
    const struct config *cfg;
    const struct traffic *traffic;
    const struct policy_server_stats *server;
    const uint64_t (*requests)[AK_COUNT]; /* [STATUS_STATES][AK_COUNT] */
    double started;                       /* wall-clock start time, seconds */
    const struct store_state *store;
    const struct resolver_stats *resolver; /* NULL: no lookups of its own (dns_lookups empty) */
    double wall_now; /* Unix time now, for the age of the feed's counts */
    const struct defense *defense;
    const struct hold_service *holds; /* the quarantine; NULL: none */
};

void status_json(struct http_body *b, const struct status_sources *s, double now);
void status_text(struct http_body *b, const struct status_sources *s, double now);
void status_metrics(struct http_body *b, const struct status_sources *s, double now);

/* The keys holding messages (or released lately) as text, for relaywatch list and release
 * (GET /held): one line per key, "HELD BEING_HELD HELD_SINCE RELEASED RELEASED_AT KIND:KEY"
 * (Unix times, 0 for none).  GET /throttle's "held" array is views.h's view_held. */
void status_held_text(struct http_body *b, const struct hold_service *holds, double wall_now);

#endif
