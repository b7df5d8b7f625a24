/*
 * log: one line per event, to syslog (facility mail, ident relaywatchd) or,
 * with relaywatchd -e, to stderr as "relaywatchd[PID]: LEVEL: message".
 *
 * Lines go through a fixed in-memory queue (64 KiB, allocated once) and are
 * written without blocking.  Until log_queue_start, each line is written at
 * once, waiting up to 1 s for the sink (start-up, the postsuper runner, the
 * CLI, which never calls log_open and writes to stderr).  After it, a line
 * never waits: what the sink does not take now stays queued, and the caller's
 * wakeup function is told the descriptor to watch for writability, where it
 * calls log_flush.  When the queue is full, lines are dropped and counted;
 * once there is room again one warning says how many
 * ("log: N lines dropped: the log sink fell behind").  log_close writes what
 * is left, waiting up to 1 s.
 */
#ifndef RELAYWATCH_LOG_H
#define RELAYWATCH_LOG_H

#include <stdbool.h>

void log_open(bool to_stderr);
void log_close(void);

/* fd: the descriptor to watch for writability, then call log_flush; -1: the one watched is
 * about to be closed (the syslog daemon restarted), stop watching it. */
typedef void log_wakeup_fn(void *ctx, int fd);
void log_queue_start(log_wakeup_fn *wakeup, void *ctx);
/* Writes what the sink takes now; true while lines remain queued. */
bool log_flush(void);
/* Lines lost since start: dropped on a full queue, refused by the sink, or
 * still queued when log_close gave up. */
unsigned long long log_dropped_total(void);

/* Hand every line to fn instead of the sink (fn NULL: the sink again): relaywatch analyze's
 * backtest shows the engine's lines as the daemon would log them, at the logs' time.  level is
 * "info", "warning" or "error"; message lives for the call. */
typedef void log_capture_fn(void *ctx, const char *level, const char *message);
void log_capture(log_capture_fn *fn, void *ctx);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
