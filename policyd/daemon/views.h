/*
 * views: the daemon's JSON, built with jansson (see json_text.h for strings and numbers):
 * GET /throttle, the throttled and held keys that /status shows too, and the incident alert
 * handed to alert_command.  status.c builds the rest of /status with the same pieces.
 *
 * The json_t functions return a new reference the caller owns; view_put_json takes the one
 * it is given.  Out of memory aborts.  Nothing blocks.
 */
#ifndef RELAYWATCH_VIEWS_H
#define RELAYWATCH_VIEWS_H

#include <stdbool.h>

#include <jansson.h>

struct http_body;
struct defense;
struct defense_alert;
struct quarantine;

/* Append v to b, compact, with a final newline when newline is set; drops v. */
void view_put_json(struct http_body *b, json_t *v, bool newline);

/* The throttles in force at wall_now (Unix time): [{kind,key,action,reason,since,until,source,
 * host,answers},...], until null for "until released". */
json_t *view_throttled(const struct defense *d, double wall_now);

/* The keys of the quarantine's ledger (hold_service_ledger) holding messages, having some
 * asked for, or released lately: [{kind,key,messages,being_held,since,released,released_at},
 * ...]; [] for a NULL ledger (no quarantine). */
json_t *view_held(const struct quarantine *ledger, double wall_now);

/* GET /throttle: {"throttled":[...],"held":[...]} and a newline. */
void view_throttle(struct http_body *b, const struct defense *d, const struct quarantine *ledger,
                   double wall_now);

/* The alert as alert_command reads it (one JSON object and a newline), NUL-terminated; the
 * caller frees it. */
char *view_alert(const struct defense_alert *a);

#endif
