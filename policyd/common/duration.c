/* duration: see duration.h. */
#include "duration.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

bool duration_parse(const char *text, double *seconds)
{
    char *end;
    double v, unit = 1;

    /* A leading digit: strtod would also take signs, "inf", "nan" and hex. */
    if (!isdigit((unsigned char)*text))
        return false;
    errno = 0;
    v = strtod(text, &end);
    if (errno != 0)
        return false;
    if (*end != '\0') {
        switch (*end) {
        case 's': unit = 1; break;
        case 'm':
            /* "ms": milliseconds, for short timeouts and waits. */
            if (end[1] == 's' && end[2] == '\0') {
                *seconds = v / 1000.0;
                return true;
            }
            unit = 60;
            break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return false;
        }
        if (end[1] != '\0')
            return false;
    }
    v *= unit;
    if (v > DURATION_MAX_SECONDS)
        return false;
    *seconds = v;
    return true;
}

const char *duration_format(double seconds, char *buf, size_t size)
{
    static const struct {
        double length;
        const char *suffix;
    } units[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        double n = seconds / units[i].length;

        if (seconds >= units[i].length && n == floor(n)) {
            snprintf(buf, size, "%.0f%s", n, units[i].suffix);
            return buf;
        }
    }
    if (seconds == 0)
        snprintf(buf, size, "0s");
    else
        snprintf(buf, size, "%gms", seconds * 1000.0);
    return buf;
}
