/*
 * analyze: `relaywatch analyze`, the study's statistics and the backtest
 * over log files (see relaywatch(1), "analyze").  Reads the files
 * (log_input), counts (analysis), replays (backtest) and prints a table,
 * CSV or JSON on standard output, an SVG chart to a file.  Blocks on its
 * files; runs to completion.
 */
#ifndef RELAYWATCH_ANALYZE_H
#define RELAYWATCH_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>

struct config;

#define ANALYZE_MAX_FILES 1024
#define ANALYZE_MAX_CLIENTS 64

struct analyze_options {
    const char *files[ANALYZE_MAX_FILES]; /* --maillog and --querylog, in command-line order */
    bool querylog_only[ANALYZE_MAX_FILES]; /* named by --querylog and never by --maillog */
    size_t file_count;
    const char *mx_clients[ANALYZE_MAX_CLIENTS];
    size_t mx_client_count;
    const char *by;   /* "day" (default), "hour", "minute" */
    const char *from, *to, *year;
    bool backtest, json, csv;
    const char *svg;
};

/* Take one analyze option at argv[*i] (advancing *i past its argument): 1 taken, 0 not an
 * analyze option, -1 a usage error (printed). */
int analyze_option(struct analyze_options *o, int argc, char **argv, int *i);

/* Run it: 0, 1 (a file unreadable or truncated: named on stderr), 2 (usage). */
int analyze_run(const struct config *cfg, const struct analyze_options *o);

#endif
