/*
 * views: see views.h.
 */
#include "views.h"

#include <stdbool.h>

#include "defense.h"
#include "http.h"
#include "json_text.h"
#include "quarantine.h"
#include "throttle.h"

/* json_dump_callback's writer: the body grows as needed. */
static int body_write(const char *buffer, size_t size, void *data)
{
    http_body_append(data, buffer, size);
    return 0;
}

void view_put_json(struct http_body *b, json_t *v, bool newline)
{
    json_dump_callback(v, body_write, b, JSON_TEXT_FLAGS);
    if (newline)
        http_body_append(b, "\n", 1);
    json_decref(v);
}

struct throttled_walk {
    json_t *array;
    double now;
};

static bool throttled_record(void *arg, const struct throttle_record *r)
{
    struct throttled_walk *w = arg;
    json_t *o;

    if (!throttle_in_force(r, w->now))
        return true;
    o = json_must(json_object());
    json_set_field(o, "kind", json_textz(culprit_kind_name(r->kind)));
    json_set_field(o, "key", json_textz(r->key));
    json_set_field(o, "action", json_textz(r->action));
    json_set_field(o, "reason", json_textz(r->reason));
    json_set_field(o, "since", json_time(r->since));
    json_set_field(o, "until", json_time(r->until)); /* null: until released */
    json_set_field(o, "source", json_textz(throttle_source_name(r->source)));
    json_set_field(o, "host", json_textz(r->host));
    json_set_field(o, "answers", json_integer((json_int_t)r->hits));
    json_add_item(w->array, o);
    return true;
}

json_t *view_throttled(const struct defense *d, double wall_now)
{
    struct throttled_walk w = {json_must(json_array()), wall_now};

    throttle_each(defense_throttles_const(d), throttled_record, &w);
    return w.array;
}

static bool held_key(void *arg, const struct quarantine_key_info *k)
{
    /* Keys that never held a message and have none asked for are not news. */
    if (k->held == 0 && k->asked == 0 && k->released_at == 0)
        return true;
    json_add_item(arg, json_held_entry(culprit_kind_name(k->kind), k->key, k->held, k->asked,
                                       k->held_since, k->released, k->released_at));
    return true;
}

json_t *view_held(const struct quarantine *ledger, double wall_now)
{
    json_t *array = json_must(json_array());

    if (ledger != NULL)
        quarantine_each(ledger, wall_now, true, held_key, array);
    return array;
}

void view_throttle(struct http_body *b, const struct defense *d, const struct quarantine *ledger,
                   double wall_now)
{
    json_t *o = json_must(json_object());

    json_set_field(o, "throttled", view_throttled(d, wall_now));
    json_set_field(o, "held", view_held(ledger, wall_now));
    view_put_json(b, o, true);
}

/* {"deferred":n,"rejected":n,"held":n} of counts by answer kind. */
static json_t *answer_counts(const uint64_t *counts)
{
    json_t *o = json_must(json_object());

    json_set_field(o, "deferred", json_integer((json_int_t)counts[AK_DEFER]));
    json_set_field(o, "rejected", json_integer((json_int_t)counts[AK_REJECT]));
    json_set_field(o, "held", json_integer((json_int_t)counts[AK_HOLD]));
    return o;
}

char *view_alert(const struct defense_alert *a)
{
    json_t *o = json_must(json_object()), *peak = json_must(json_object());
    json_t *culprits = json_must(json_array()), *quarantine = json_must(json_object());
    struct http_body b = {0};

    json_set_field(o, "event", json_textz(a->event));
    json_set_field(o, "host", json_textz(a->host));
    json_set_field(o, "start", json_time(a->start));
    json_set_field(o, "end", json_time(a->end));
    json_set_field(o, "duration_seconds", a->end > 0 ? json_whole(a->end - a->start) : json_null());
    json_set_field(o, "reason", json_textz(a->reason));
    json_set_field(o, "window", json_textz(a->window));
    for (int s = 0; s < DS_COUNT; s++)
        json_set_field(peak, detector_signal_name(s), json_sig6(a->peak[s]));
    json_set_field(o, "peak", peak);
    for (unsigned i = 0; i < a->culprit_count; i++)
        json_add_item(culprits, json_textz(a->culprits[i]));
    json_set_field(o, "culprits", culprits);
    json_set_field(quarantine, "held", json_integer(a->held));
    json_set_field(quarantine, "being_held", json_integer(a->being_held));
    json_set_field(o, "quarantine", quarantine);
    json_set_field(o, "answers", answer_counts(a->answers));
    json_set_field(o, "monitor_only", json_boolean(a->monitor_only));
    json_set_field(o, "would_have", answer_counts(a->would_have));
    view_put_json(&b, o, true);
    http_body_append(&b, "", 1);
    return b.data;
}
