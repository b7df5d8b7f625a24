/*
 * json_text: jansson values made from RelayWatch's own data, for every JSON it writes
 * (relaywatchd's /status, /throttle and alerts; relaywatch list --json).
 *
 * Strings: jansson refuses a string that is not UTF-8, and names from the wire (SASL user
 * names, sender domains, records another host or the CLI wrote) are chosen by whoever sends
 * the mail.  json_text replaces each byte that is not part of valid UTF-8 with U+FFFD and
 * keeps the rest, as the hand-written escaper before it did: a view is always written and an
 * alert never dropped for a name.  Control characters are escaped by jansson (\n, \u0001).
 *
 * Numbers: the views give the values they always gave: an integer stays a JSON integer, a
 * rounded figure stays a real of the same value, though jansson writes it its own way
 * (alpha 1.0000 comes out as 1.0, 1e+06 as 1000000.0).  JSON_TEXT_FLAGS dumps reals with 15
 * significant digits, enough for every figure rounded here to come out as the shortest
 * decimal that means it.
 *
 * Every function returns a new reference the caller owns (json_object_set_new takes it);
 * out of memory aborts, as the daemon's other allocations do.  Nothing blocks.
 */
#ifndef RELAYWATCH_JSON_TEXT_H
#define RELAYWATCH_JSON_TEXT_H

#include <stddef.h>

#include <jansson.h>

/* Compact, fields in the order they were set, reals to 15 digits. */
#define JSON_TEXT_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

/* Length of the valid UTF-8 sequence at p (at most n bytes, n > 0), 0 if invalid. */
size_t utf8_sequence(const unsigned char *p, size_t n);

/* The len bytes at s as a JSON string, invalid UTF-8 as U+FFFD (see above). */
json_t *json_text(const char *s, size_t len);
json_t *json_textz(const char *s); /* NUL-terminated */

/* Unix time t as an RFC 3339 string in UTC ("2026-11-25T05:30:00Z"), null for t <= 0. */
json_t *json_time(double t);

/* v rounded to a whole number ("%.0f"), a JSON integer. */
json_t *json_whole(double v);
/* v to 6 significant digits ("%.6g"): an integer when that prints as one, else a real. */
json_t *json_sig6(double v);
/* v with decimals digits after the point ("%.*f"), a real. */
json_t *json_fixed(double v, int decimals);

/* Abort if v is NULL (jansson's only failure for the values made here is out of memory). */
json_t *json_must(json_t *v);

/* obj[name] = v and array += v, taking v (NULL aborts: out of memory upstream). */
void json_set_field(json_t *obj, const char *name, json_t *v);
void json_add_item(json_t *array, json_t *v);

/* One entry of GET /throttle's "held" array, which relaywatch list --json writes too (from
 * GET /held): {kind,key,messages,being_held,since,released,released_at}, times as json_time. */
json_t *json_held_entry(const char *kind, const char *key, unsigned messages,
                        unsigned being_held, double since, unsigned released, double released_at);

#endif
