/*
 * duration: lengths of time as configuration files write them.
 *
 * "45" (seconds), "45s", "1.5m", "2h", "1d", "300ms".  Pure functions over
 * the caller's buffers: nothing is allocated, nothing blocks.
 */
#ifndef RELAYWATCH_DURATION_H
#define RELAYWATCH_DURATION_H

#include <stdbool.h>
#include <stddef.h>

/* The longest duration duration_parse accepts, in seconds (365 days). */
#define DURATION_MAX_SECONDS (365.0 * 86400)

/*
 * Parse text (NUL-terminated) into *seconds.  False, *seconds untouched, for
 * anything but a non-negative decimal number with an optional ms, s, m, h or d
 * suffix, or for more than DURATION_MAX_SECONDS.
 */
bool duration_parse(const char *text, double *seconds);

/*
 * Write seconds in the largest unit that holds it exactly ("1d", "90s", "250ms"),
 * truncated to size bytes like snprintf.  Returns buf.
 */
const char *duration_format(double seconds, char *buf, size_t size);

#endif
