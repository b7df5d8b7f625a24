/*
 * log_time_check: the fuzz targets' check of a line's time (struct
 * log_time): absent and all zero, or every field within its range.
 */
#ifndef RELAYWATCH_FUZZ_LOG_TIME_CHECK_H
#define RELAYWATCH_FUZZ_LOG_TIME_CHECK_H

#include <stdlib.h>

#include "log_line.h"

static void check_time(const struct log_time *t)
{
    if (!t->present) {
        if (t->has_year || t->has_offset || t->month != 0 || t->second != 0.0)
            abort();
        return;
    }
    if (t->month < 1 || t->month > 12 || t->day < 1 || t->day > 31 || t->hour < 0 ||
        t->hour > 23 || t->minute < 0 || t->minute > 59 || !(t->second >= 0.0) ||
        !(t->second < 61.0))
        abort();
    if (t->has_year ? (t->year < 0 || t->year > 9999) : t->year != 0)
        abort();
    if (t->has_offset ? (t->offset_minutes < -(23 * 60 + 59) || t->offset_minutes > 23 * 60 + 59)
                      : t->offset_minutes != 0)
        abort();
}

#endif
