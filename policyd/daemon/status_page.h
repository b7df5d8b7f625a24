/*
 * status_page: GET / on http_listen (and the control socket), one self-contained HTML page
 * for a site without Grafana.
 *
 * Contract:
 * - One HTML5 document, UTF-8: inline CSS and inline SVG only, no script, no external
 *   resource of any kind (no src, no href, no url()), no form; it refreshes itself every
 *   STATUS_PAGE_REFRESH seconds (<meta http-equiv="refresh">).  http.c sends every HTML
 *   response with a Content-Security-Policy that allows nothing but inline styles.
 * - It shows: the host's state (quiet/loud, a coloured badge) with its reason; one line chart
 *   per detector signal over the last hour (the value over detect_window and the baseline in
 *   use, a sample a minute from the daemon's signal_history, loud minutes shaded); the
 *   throttled keys; the keys holding messages; the open incident and the last ended ones
 *   (defense_incident_at); the other hosts of a shared store.
 * - Every string that may come from the wire or the store (keys, actions, reasons, culprits,
 *   host names) is HTML-escaped, bytes that are not UTF-8 or are control characters become
 *   U+FFFD, and each is cut to a length the page can show.
 * - Bounded: at most STATUS_PAGE_ROWS rows per list ("and N more"), five culprits per
 *   incident, so the page stays under about 320 KiB whatever the tables hold (10 to 15 KB on
 *   a quiet host).  Rendering reads the daemon's state only.
 */
#ifndef RELAYWATCH_STATUS_PAGE_H
#define RELAYWATCH_STATUS_PAGE_H

#include "status.h"

#define STATUS_PAGE_REFRESH 10
#define STATUS_PAGE_ROWS 30

struct http_body;
struct signal_history;

/* The page into b; now is the counting clock (the history's and the incidents'). */
void status_page(struct http_body *b, const struct status_sources *s,
                 const struct signal_history *history, double now);

#endif
