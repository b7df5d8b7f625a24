/*
 * log_input: the log files `relaywatch analyze` reads, one line at a time,
 * whatever their compression and the order they were named in.
 *
 * Contract:
 * - A path is a file or "-", standard input.  The content decides the
 *   format, never the name: gzip (magic 1f 8b) is inflated with zlib, every
 *   member of a concatenation included; bzip2, xz and zstd are recognised and
 *   refused (decompress them into a pipe); anything else is read as is.
 * - A truncated or corrupt compressed file, or one that cannot be read, is an
 *   error whose message names the file: never a short result.
 * - Each line goes to the callback without its "\n" (and a "\r" before it),
 *   with its file and 1-based number; NUL bytes pass through.  A line longer
 *   than LOG_INPUT_LINE_MAX comes cut to its first LOG_INPUT_LINE_MAX bytes, flagged;
 *   the rest of it is skipped, so memory per file is fixed (about 200 KiB).
 * - log_input_order puts files in the order of their first timestamp, as the
 *   caller's function reads it: this layer knows no line format.
 */
#ifndef RELAYWATCH_LOG_INPUT_H
#define RELAYWATCH_LOG_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define LOG_INPUT_LINE_MAX 65536
/* Lines log_input_order reads from a file for its first time, at most. */
#define LOG_ORDER_SCAN_LINES 10000

struct log_file {
    const char *path;   /* as given (not copied); "-" is standard input */
    time_t mtime;       /* its modification time, the year of year-less lines;
                           standard input: its own if a regular file, else now */
    bool once;          /* standard input, a pipe, a FIFO (/dev/fd/N of `<(zcat ...)`):
                           readable once, so never looked into before it is read */
    bool timed;         /* a line among the first LOG_ORDER_SCAN_LINES had a time */
    int64_t first_time; /* that time, if timed */
};

struct log_input_line {
    const struct log_file *file;
    unsigned long number; /* 1-based, within the file */
    const char *text;     /* not NUL-terminated; valid only during the call */
    size_t len;
    bool cut;             /* the line was longer: text is its first LOG_INPUT_LINE_MAX bytes */
};

/* Take one line; return 0 to go on, nonzero to stop reading this file. */
typedef int log_input_line_fn(const struct log_input_line *line, void *arg);

/* Set *time and return 1 if the line carries a time (any unit: only its
 * order counts), else return 0. */
typedef int log_time_fn(const struct log_input_line *line, void *arg, int64_t *time);

/*
 * Fill files[0..n) with paths[0..n) in the order to read them: standard
 * input and other files that can be read only once (pipes, FIFOs: anything
 * but a regular file) first, in command-line order, not looked into (a pipe
 * usually carries the oldest, decompressed archive), then files by their
 * first time (ties keep the command-line order), then files without a time
 * in command-line order.  0, or -1 with a message naming the file in err
 * (a file that cannot be opened or decompressed, "-" twice).
 */
int log_input_order(const char *const *paths, size_t n, log_time_fn *first_time, void *arg,
                    struct log_file *files, char *err, size_t errlen);

/*
 * Read the file from its start, each line to fn, until its end or fn says
 * stop: 0; or -1 with a message naming the file in err (lines before the
 * trouble have been delivered: the caller must not present them as whole).
 */
int log_input_read(const struct log_file *file, log_input_line_fn *fn, void *arg,
                   char *err, size_t errlen);

#endif
