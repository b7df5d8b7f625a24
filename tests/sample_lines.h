/*
 * sample_lines: the unit tests' sample files (tests/data/NAME_samples.txt),
 * where each sample line follows its expectation "#> TEXT" and other lines
 * starting with "#" are comments.  A test describes what its parser made
 * of a line as text; the file's expectation must be that text.  Include
 * after cmocka.h (it fails through cmocka).
 */
#ifndef RELAYWATCH_TEST_SAMPLE_LINES_H
#define RELAYWATCH_TEST_SAMPLE_LINES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log_line.h"

/* What the parser under test made of line[0..len), written to got. */
typedef void sample_describe(const char *line, size_t len, char *got, size_t size);

/* Checks every sample of the file; returns how many there were. */
static unsigned sample_lines_check(const char *path, sample_describe *describe)
{
    char buf[8192], want[sizeof(buf)], got[2 * sizeof(buf)];
    unsigned lineno = 0, samples = 0;
    int have_want = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        fail_msg("cannot open %s", path);
    while (fgets(buf, sizeof(buf), f) != NULL) {
        size_t len = strlen(buf);

        lineno++;
        if (len > 0 && buf[len - 1] == '\n')
            buf[--len] = '\0';
        if (strncmp(buf, "#> ", 3) == 0) {
            memcpy(want, buf + 3, len - 3 + 1);
            have_want = 1;
            continue;
        }
        if (len == 0 || buf[0] == '#')
            continue;
        if (!have_want)
            fail_msg("%s:%u: a sample without a \"#> \" line before it", path, lineno);
        describe(buf, len, got, sizeof(got));
        if (strcmp(got, want) != 0)
            fail_msg("%s:%u:\n  want: %s\n  got:  %s", path, lineno, want, got);
        have_want = 0;
        samples++;
    }
    fclose(f);
    print_message("%u samples from %s\n", samples, path);
    return samples;
}

/*
 * A line's time as the sample files write it: "-" (none),
 * YYYY-MM-DDTHH:MM:SS.ffffff with "Z" or "+HH:MM" when the line gives an
 * offset, or --MM-DDTHH:MM:SS.ffffff without a year.
 */
static void sample_time_text(const struct log_time *t, char *buf, size_t size)
{
    int n;

    if (!t->present) {
        snprintf(buf, size, "-");
        return;
    }
    if (t->has_year)
        n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%09.6f", t->year, t->month, t->day, t->hour,
                     t->minute, t->second);
    else
        n = snprintf(buf, size, "--%02d-%02dT%02d:%02d:%09.6f", t->month, t->day, t->hour, t->minute,
                     t->second);
    if (t->has_offset && n > 0 && (size_t)n < size) {
        int off = t->offset_minutes;

        if (off == 0)
            snprintf(buf + n, size - (size_t)n, "Z");
        else
            snprintf(buf + n, size - (size_t)n, "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 60,
                     abs(off) % 60);
    }
}

#endif
