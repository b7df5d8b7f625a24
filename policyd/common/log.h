/*
 * log: one line per event, to syslog (facility mail, ident relaywatchd) or,
 * with relaywatchd -e, to stderr as "relaywatchd[PID]: LEVEL: message".
 */
#ifndef RELAYWATCH_LOG_H
#define RELAYWATCH_LOG_H

#include <stdbool.h>

void log_open(bool to_stderr);
void log_close(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
