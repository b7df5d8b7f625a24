/*
 * analyze_svg: `relaywatch analyze --svg FILE`, the study's Figures 2 and 4 as one picture.
 *
 * Contract:
 * - One complete SVG 1.1 document (UTF-8, no script, no external font, image or style sheet)
 *   is written to out: a title, a subtitle, two panels stacked on one time axis and a legend.
 *   Top: the mail host's DNS queries per period by type (MX, A, AAAA, PTR, one line each);
 *   bottom: N_c (SMTP connections) and N_f (nf_log, the from= lines: the study's N_f) per
 *   period.  Loud periods are one translucent band across both panels, in the legend too.
 * - Both y axes are logarithmic, log10(1 + count), so that 0 sits on the axis: the study's
 *   quiet host asks ~30 MX a day and ~35,801 while relaying, three decades apart; on a linear
 *   axis the quiet days would lie flat on zero and a browser-sized picture could not show
 *   what the host does when nothing is wrong.
 * - At most 2000 points per line (about three per unit of the plot's width): a longer series
 *   is cut into groups of k consecutive periods (k the smallest that fits), each group drawn
 *   at its highest period
 *   (a burst stays visible; the unit stays "per period") and shaded if any of its periods is
 *   loud; the subtitle says so.  The document stays under about 1 MB whatever n is.
 * - Periods missing from the series (gaps) break the lines: they are not drawn as zero.
 * - Strings from the command line and the logs (title, mx_clients, offset_text) are escaped
 *   for XML; bytes that are not UTF-8 or not XML characters become U+FFFD; each is cut to a
 *   length the picture can show.
 * - Numbers are written without printf's %f, so the caller's locale cannot change them.
 * - No allocation; period_seconds < 1 is taken as 1.  Returns 0, or -1 with errno set if a
 *   write (or the final fflush) failed; out is left open.
 */
#ifndef RELAYWATCH_ANALYZE_SVG_H
#define RELAYWATCH_ANALYZE_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct analyze_point {
    int64_t start;            /* the period's start: seconds since 1970 of the time as the logs wrote it
                                 (timegm of the written fields; the offset, if any, is in offset_text) */
    uint64_t nc, nf, nf_log;  /* SMTP connections, queued messages, from= lines */
    uint64_t mx, a, aaaa, ptr;/* the mail host's DNS queries */
    bool loud;                /* the backtest found the host relaying in this period */
};
/* Write a complete SVG document of n points (in time order, consecutive periods of
 * period_seconds each, gaps allowed) to out.  title: free text (from the command line and the
 * logs: XML-escape it); mx_clients: the DNS client(s) counted, shown in the subtitle (escape);
 * offset_text: "" or "+02:00", appended to axis time labels' legend.  Returns 0, or -1 if a
 * write failed (errno set).  Never crashes on n == 0 (draws empty axes saying "no data") or
 * on one point, or on huge counts. */
int analyze_svg_write(FILE *out, const struct analyze_point *p, size_t n, int period_seconds,
                      const char *title, const char *mx_clients, const char *offset_text);

#endif
