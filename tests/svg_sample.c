/*
 * svg_sample CASE OUT.svg: analyze_svg_write on synthetic data, for analyze_svg_test.py.
 *   sample  4 days by hour from 2026-03-01: quiet (1-5 MX an hour), a gap of 5 hours on the
 *           second day, a relay burst (~1500 MX an hour) on the third, loud from its second hour
 *   empty   no points          one     one point (a day)
 *   huge    100,000 minutes, a burst, one count of UINT64_MAX
 *   escape  a title, client and offset with <&"'> , a control byte and bytes not UTF-8
 *   full    the sample to OUT (give /dev/full), with stdio's buffer and with one larger than
 *           the document: each must return -1 with errno ENOSPC
 * Exit 0, or 1 with a message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "analyze_svg.h"

#define DAY0 1772323200 /* 2026-03-01 00:00 as written */

static struct analyze_point points[100000];

/* A fixed pseudo-random sequence: the same picture every run. */
static uint32_t seed = 12345;
static uint64_t between(uint64_t lo, uint64_t hi)
{
    seed = seed * 1103515245u + 12345u;
    return lo + (seed >> 16) % (hi - lo + 1);
}

static size_t sample(void)
{
    size_t n = 0;
    for (int h = 0; h < 96; h++) {
        if (h >= 30 && h < 35)
            continue; /* the logs say nothing for 5 hours */
        struct analyze_point *p = &points[n++];
        memset(p, 0, sizeof *p);
        p->start = DAY0 + (int64_t)h * 3600;
        bool burst = h >= 58 && h < 70;
        p->mx = burst ? between(1300, 1700) : between(1, 5);
        p->a = burst ? between(900, 1100) : between(1, 8);
        p->aaaa = burst ? between(200, 400) : between(0, 3);
        p->ptr = between(0, 4);
        p->nc = burst ? between(600, 900) : between(2, 12);
        p->nf_log = burst ? between(1400, 1600) : between(1, 6);
        p->nf = p->nf_log;
        p->loud = burst && h > 58;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: svg_sample sample|empty|one|huge|escape|full OUT.svg\n");
        return 2;
    }
    const char *what = argv[1];
    FILE *out = fopen(argv[2], "w");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    int period = 3600, r;
    size_t n = 0;
    const char *title = "mail.example.org: a relay on the third day";
    const char *clients = "192.0.2.25";
    const char *offset = "+02:00";
    if (!strcmp(what, "sample") || !strcmp(what, "full")) {
        n = sample();
    } else if (!strcmp(what, "empty")) {
        title = "nothing in the logs";
    } else if (!strcmp(what, "one")) {
        period = 86400;
        points[0] = (struct analyze_point){.start = DAY0, .mx = 30, .a = 12, .aaaa = 3,
                                           .ptr = 7, .nc = 40, .nf = 25, .nf_log = 25};
        n = 1;
    } else if (!strcmp(what, "huge")) {
        period = 60;
        n = sizeof points / sizeof points[0];
        for (size_t i = 0; i < n; i++) {
            bool burst = i >= 50000 && i < 53000;
            points[i] = (struct analyze_point){
                .start = DAY0 + (int64_t)i * 60, .mx = burst ? between(20, 30) : between(0, 1),
                .a = between(0, 2), .nc = between(0, 3), .nf_log = burst ? 30 : between(0, 1),
                .loud = burst};
        }
        points[n / 3].nc = UINT64_MAX;
        offset = "";
    } else if (!strcmp(what, "escape")) {
        sample();
        n = 24;
        title = "<b>&amp; \"quoted\" 'single' </title><script>alert(1)</script> \x01 \xff\xfe ]]>";
        clients = "<script>&\"";
        offset = "\"><x/>";
    } else {
        fprintf(stderr, "svg_sample: unknown case %s\n", what);
        return 2;
    }
    if (!strcmp(what, "full")) {
        /* Twice: with stdio's buffer a write fails midway; with a buffer larger than the
         * document only the final fflush can tell. */
        static char big[1 << 20];
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                fclose(out);
                if (!(out = fopen(argv[2], "w")) || setvbuf(out, big, _IOFBF, sizeof big)) {
                    perror(argv[2]);
                    return 1;
                }
            }
            errno = 0;
            r = analyze_svg_write(out, points, n, period, title, clients, offset);
            int saved = errno;
            if (r != -1 || saved != ENOSPC) {
                fprintf(stderr, "svg_sample: on a full disk (%s buffer): returned %d, errno %d "
                        "(%s)\n", pass ? "1 MiB" : "stdio's", r, saved, strerror(saved));
                return 1;
            }
        }
        fclose(out);
        return 0;
    }
    errno = 0;
    r = analyze_svg_write(out, points, n, period, title, clients, offset);
    int saved = errno;
    fclose(out);
    if (r != 0) {
        fprintf(stderr, "svg_sample: analyze_svg_write returned %d: %s\n", r, strerror(saved));
        return 1;
    }
    return 0;
}
