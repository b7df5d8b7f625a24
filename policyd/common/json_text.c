/*
 * json_text: see json_text.h.
 */
#include "json_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xalloc.h"

json_t *json_must(json_t *v)
{
    if (v == NULL)
        abort();
    return v;
}

void json_set_field(json_t *obj, const char *name, json_t *v)
{
    if (json_object_set_new(obj, name, json_must(v)) != 0)
        abort();
}

void json_add_item(json_t *array, json_t *v)
{
    if (json_array_append_new(array, json_must(v)) != 0)
        abort();
}

size_t utf8_sequence(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        len = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

json_t *json_text(const char *s, size_t len)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    size_t bad = 0, i = 0, o = 0;
    char *clean;
    json_t *v;

    for (i = 0; i < len;) {
        size_t n = utf8_sequence(p + i, len - i);

        bad += n == 0;
        i += n ? n : 1;
    }
    /* NUL is valid UTF-8; json_stringn keeps it and writes it as \u0000. */
    if (bad == 0)
        return json_must(json_stringn(s, len));
    clean = xmalloc(len + 2 * bad + 1);
    for (i = 0; i < len;) {
        size_t n = utf8_sequence(p + i, len - i);

        if (n == 0) {
            memcpy(clean + o, replacement, 3);
            o += 3;
            i++;
        } else {
            memcpy(clean + o, s + i, n);
            o += n;
            i += n;
        }
    }
    v = json_must(json_stringn(clean, o));
    free(clean);
    return v;
}

json_t *json_textz(const char *s)
{
    return json_text(s, strlen(s));
}

json_t *json_time(double t)
{
    time_t sec = (time_t)t;
    struct tm tm;
    char text[32];

    if (t <= 0)
        return json_must(json_null());
    if (gmtime_r(&sec, &tm) == NULL ||
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_must(json_null()); /* a year past what struct tm or the text holds */
    return json_must(json_string(text));
}

/* The number printf wrote: an integer if it has neither point nor exponent. */
static json_t *number_from_text(const char *text)
{
    if (strpbrk(text, ".eE") == NULL)
        return json_must(json_integer((json_int_t)strtoll(text, NULL, 10)));
    return json_must(json_real(strtod(text, NULL)));
}

/* Infinite or NaN figures were printed as inf/nan, which is not JSON: null now. */
json_t *json_whole(double v)
{
    char text[64];

    if (!isfinite(v))
        return json_must(json_null());
    snprintf(text, sizeof(text), "%.0f", v);
    return number_from_text(text);
}

json_t *json_sig6(double v)
{
    char text[64];

    if (!isfinite(v))
        return json_must(json_null());
    snprintf(text, sizeof(text), "%.6g", v);
    return number_from_text(text);
}

json_t *json_fixed(double v, int decimals)
{
    char text[400];

    if (!isfinite(v))
        return json_must(json_null());
    snprintf(text, sizeof(text), "%.*f", decimals, v);
    return json_must(json_real(strtod(text, NULL)));
}

json_t *json_held_entry(const char *kind, const char *key, unsigned messages,
                        unsigned being_held, double since, unsigned released, double released_at)
{
    json_t *o = json_must(json_object());

    json_set_field(o, "kind", json_textz(kind));
    json_set_field(o, "key", json_textz(key));
    json_set_field(o, "messages", json_integer(messages));
    json_set_field(o, "being_held", json_integer(being_held));
    json_set_field(o, "since", json_time(since));
    json_set_field(o, "released", json_integer(released));
    json_set_field(o, "released_at", json_time(released_at));
    return o;
}
